/*
 * schemadiff.h -- the differences between two schema documents.
 *
 * A diff lists, kind by kind, the objects B has and A has not (added),
 * those A has and B has not (removed) and those in both that differ
 * (changed), each changed object with one detail per difference: an
 * attribute ("column \"total\": integer → bigint"), an item of a list
 * ("enum \"Role\": value 'AUDITOR' added"), a sub-object added or removed
 * ("index \"users_email_key\" removed"), an order ("column order
 * changed"). It compares exactly what the digest covers, so a diff is
 * empty if and only if the two digests are equal; what the digest leaves
 * out (extension versions) comes back as notes.
 *
 * Renaming shows as a removal and an addition: the catalogs cannot tell a
 * rename from a drop and a create.
 */
#ifndef FERRY_SCHEMADIFF_H
#define FERRY_SCHEMADIFF_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "schema.h"

enum ferry_schema_action {
	FERRY_SCHEMA_ADDED,
	FERRY_SCHEMA_REMOVED,
	FERRY_SCHEMA_CHANGED,
};

/*
 * One difference inside a changed object. Strings and JSON are owned by
 * the diff. For a sub-object added or removed, attr is NULL and the
 * sub-object is new_json / old_json; for an item of a list added or
 * removed, the item is new_value / old_value.
 */
struct ferry_schema_detail {
	enum ferry_schema_action action;
	const char *sub;       /* "column", "index", ...; NULL: the object */
	const char *sub_name;  /* the sub-object's name, or NULL */
	const char *attr;      /* attribute key: "type", "values", ... */
	const char *old_value; /* NULL when absent (or false) */
	const char *new_value;
	const json_t *old_json; /* the sub-object in A, or NULL */
	const json_t *new_json; /* the sub-object in B, or NULL */
	const char *text;       /* "column \"total\": integer → bigint" */
};

/* One object added, removed or changed. */
struct ferry_schema_change {
	enum ferry_schema_action action;
	/* The kind; NULL for a change of the document itself (its scope). */
	const struct ferry_schema_kind *kind;
	const char *schema; /* NULL for kinds outside a schema */
	const char *name;
	const char *display;    /* "\"User\"", or "\"audit\".\"Log\"" */
	const json_t *old_json; /* the object in A, or NULL */
	const json_t *new_json; /* the object in B, or NULL */
	const struct ferry_schema_detail *details;
	size_t ndetails;
};

struct ferry_schema_diff;

/*
 * Compares a (before) with b (after). Refuses, with FERRY_EOPER, documents
 * from different PostgreSQL major versions: the pg_get_*def functions
 * print differently from one major version to the next. The diff keeps
 * its own references: a and b may be freed before it.
 */
int
ferry_schema_diff(const struct ferry_schema *a, const struct ferry_schema *b,
    struct ferry_schema_diff **out, struct ferry_err *err);

void ferry_schema_diff_free(struct ferry_schema_diff *d);

/* 1 if the documents have equal digests (no changes). */
int ferry_schema_diff_equal(const struct ferry_schema_diff *d);

/* The changes, in the model's kind order, then by name. */
size_t ferry_schema_diff_count(const struct ferry_schema_diff *d);
const struct ferry_schema_change *
ferry_schema_diff_change(const struct ferry_schema_diff *d, size_t i);

/* Differences the digest leaves out, as lines of text. */
size_t ferry_schema_diff_nnotes(const struct ferry_schema_diff *d);
const char *ferry_schema_diff_note(const struct ferry_schema_diff *d, size_t i);

/* "added", "removed" or "changed". */
const char *ferry_schema_action_name(enum ferry_schema_action a);

/*
 * Appends the text rendering, Prisma's migrate diff style:
 *
 *   [+] Added tables
 *     - "Comment"
 *   [*] Changed the "User" table
 *     [*] column "total": integer → bigint
 *     [-] index "users_email_key" removed
 *
 * Nothing for an empty diff. Returns 0, or -1 if out is full.
 */
int ferry_schema_diff_text(const struct ferry_schema_diff *d,
    struct ferry_buf *out);

/* The diff as JSON ({"equal", "changes", "notes"}); a new reference. */
json_t *ferry_schema_diff_json(const struct ferry_schema_diff *d);

#endif
