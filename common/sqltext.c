/*
 * sqltext.c -- small lexical helpers on SQL text and on libpg_query's JSON
 * parse trees, shared by the statement classifier and the linter.
 */
#include "sqltext.h"

#include <string.h>

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
