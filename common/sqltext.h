/*
 * sqltext.h -- small lexical helpers on SQL text and on libpg_query's JSON
 * parse trees, shared by the statement classifier (sqlscript) and the
 * linter (lint).
 */
#ifndef FERRY_SQLTEXT_H
#define FERRY_SQLTEXT_H

#include <jansson.h>
#include <stddef.h>

/* Whitespace as PostgreSQL's scanner sees it. */
int ferry_sql_is_space(char c);

/* Identifier characters as PostgreSQL's scanner sees them. */
int ferry_sql_is_word_char(char c);

/* Returns the index just past a comment starting at t[i], or i if none
   does. Block comments nest, as in PostgreSQL. */
size_t ferry_sql_comment_end(const char *t, size_t i, size_t end);

/* Returns the index of the first byte at or after i that is neither
   whitespace nor part of a comment (end if there is none). */
size_t ferry_sql_skip_space(const char *t, size_t i, size_t end);

/* A JSON member as a boolean (absent = false) / a string (or NULL). */
int ferry_sql_jtrue(json_t *o, const char *key);
const char *ferry_sql_jstr(json_t *o, const char *key);

/*
 * Length of the well-formed UTF-8 sequence at p (n bytes available), or 0
 * if there is none.
 */
size_t ferry_sql_utf8_seq_len(const unsigned char *p, size_t n);

/*
 * Loads libpg_query's JSON output; invalid UTF-8 inside it (the file's
 * raw bytes in names) becomes U+FFFD first, since jansson refuses it.
 * Returns NULL if it is not JSON. json_decref() the result.
 */
json_t *ferry_sql_load_json(const char *js);

/*
 * Position (1-based) of name in a NULL-terminated list of type names or
 * keywords, 0 if absent: both "is it one of" and "which rank in a family".
 */
int ferry_sql_name_rank(const char *name, const char *const *list);

#endif
