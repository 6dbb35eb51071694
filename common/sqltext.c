/*
 * sqltext.c -- small lexical helpers on SQL text and on libpg_query's JSON
 * parse trees, shared by the statement classifier and the linter.
 */
#include "sqltext.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

int
ferry_sql_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v';
}

int
ferry_sql_is_word_char(char c)
{
	unsigned char u = (unsigned char)c;

	return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
	    (u >= '0' && u <= '9') || u == '_' || u == '$' || u >= 0x80;
}

size_t
ferry_sql_comment_end(const char *t, size_t i, size_t end)
{
	const char *nl;
	int depth;

	if (i + 1 < end && t[i] == '-' && t[i + 1] == '-') {
		nl = memchr(t + i, '\n', end - i);
		return nl != NULL ? (size_t)(nl - t) : end;
	}
	if (i + 1 < end && t[i] == '/' && t[i + 1] == '*') {
		/* Block comments nest in PostgreSQL. */
		depth = 1;
		i += 2;
		while (i < end && depth > 0) {
			if (i + 1 < end && t[i] == '/' && t[i + 1] == '*') {
				depth++;
				i += 2;
			} else if (i + 1 < end && t[i] == '*' &&
			    t[i + 1] == '/') {
				depth--;
				i += 2;
			} else {
				i++;
			}
		}
	}
	return i;
}

size_t
ferry_sql_skip_space(const char *t, size_t i, size_t end)
{
	size_t j;

	for (;;) {
		while (i < end && ferry_sql_is_space(t[i]))
			i++;
		j = ferry_sql_comment_end(t, i, end);
		if (j == i)
			return i;
		i = j;
	}
}

int
ferry_sql_jtrue(json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

const char *
ferry_sql_jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/*
 * Returns the length of the well-formed UTF-8 sequence at p (n bytes
 * available), or 0 if there is none.
 */
size_t
ferry_sql_utf8_seq_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/*
 * Loads libpg_query's JSON. Names in it are the file's raw bytes, which
 * jansson refuses unless they are UTF-8: bad bytes (only ever inside JSON
 * strings) become U+FFFD, which keeps the tree's shape.
 */
json_t *
ferry_sql_load_json(const char *js)
{
	const unsigned char *p = (const unsigned char *)js;
	size_t n = strlen(js), i = 0, k, o = 0;
	json_error_t jerr;
	json_t *root;
	char *fixed;

	while (i < n) {
		k = ferry_sql_utf8_seq_len(p + i, n - i);
		if (k == 0)
			break;
		i += k;
	}
	if (i == n)
		return json_loadb(js, n, 0, &jerr);
	fixed = xmalloc(n * 3 + 1);
	for (i = 0; i < n; i += k) {
		k = ferry_sql_utf8_seq_len(p + i, n - i);
		if (k == 0) {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
			k = 1;
		} else {
			memcpy(fixed + o, js + i, k);
			o += k;
		}
	}
	root = json_loadb(fixed, o, 0, &jerr);
	free(fixed);
	return root;
}

int
ferry_sql_name_rank(const char *name, const char *const *list)
{
	int r;

	for (r = 1; *list != NULL; list++, r++)
		if (strcmp(name, *list) == 0)
			return r;
	return 0;
}
