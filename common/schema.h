/*
 * schema.h -- the canonical schema document of a PostgreSQL database.
 *
 * A document describes the schemas in scope (the connection's schema,
 * Prisma's "?schema=", plus any named by the caller) object by object:
 * tables with their columns, constraints, indexes, triggers and policies,
 * views, materialized views, sequences, functions and procedures, enums,
 * domains, composite types, and the database's extensions. It is built
 * from the catalogs with a fixed number of queries in one read-only
 * REPEATABLE READ transaction (a consistent snapshot), with the
 * pg_get_*def functions run under search_path = pg_catalog so that every
 * name they print is schema-qualified and their output is stable.
 *
 * A document never holds an OID or an owner. Objects are sorted by name
 * (byte order), so two databases built by the same migrations give the
 * same document whatever their OIDs or the order in which unrelated
 * objects were created. Left out: _prisma_migrations, Ferry's own "ferry"
 * schema and every object that belongs to an extension.
 *
 * The document has two forms:
 *  - JSON (ferry_schema_json), the form saved to a file and loaded back;
 *  - the canonical text (ferry_schema_text), one line per object and per
 *    attribute, whose SHA-256 is the digest (ferry_schema_digest).
 * The text holds everything in the JSON except three fields, which are
 * listed but left out of the digest: the server's full version (its
 * major version is in the digest), the extensions' versions, and which
 * schema in scope was the connection's own (used to print short names).
 *
 * docs/schema.md describes both forms.
 */
#ifndef FERRY_SCHEMA_H
#define FERRY_SCHEMA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "hash.h"

/* The "format" of a document's JSON form and first line of its text. */
#define FERRY_SCHEMA_FORMAT "ferry-schema/1"

/* A document file is refused beyond this size. */
#define FERRY_SCHEMA_MAX_BYTES ((size_t)256 << 20)

struct ferry_schema;

/* ---- The document model ------------------------------------------------
 *
 * Every object kind is described by a table shared by the text rendering,
 * the loader's validation and the diff, so that they cannot disagree. An
 * object is a JSON object with "name" (and "schema" for kinds that live
 * in a schema), its attributes, and its sub-objects (a table's columns,
 * ...), each of those a JSON object with "name" and attributes.
 */

enum ferry_schema_type {
	FERRY_SCHEMA_STR,  /* a string, or null */
	FERRY_SCHEMA_TEXT, /* a string, or null, often several lines long */
	FERRY_SCHEMA_BOOL, /* true or false */
	FERRY_SCHEMA_LIST, /* an array of strings whose order matters */
	FERRY_SCHEMA_SET,  /* an array of strings, kept sorted */
};

struct ferry_schema_attr {
	const char *key; /* JSON key and word in the text */
	enum ferry_schema_type type;
	const char *label; /* in diff lines: "default", "value"; for a BOOL,
			      what turning it on is: "NOT NULL added" */
	const char *off;   /* for a BOOL, turning it off: "NOT NULL dropped" */
	int primary;       /* the diff prints "old → new" without the label */
	int digested;      /* 0: listed in the JSON, left out of the digest */
};

struct ferry_schema_sub {
	const char *key;  /* JSON key: "columns" */
	const char *noun; /* "column" */
	int ordered;      /* order matters (columns): kept, not sorted */
	const struct ferry_schema_attr *attrs;
	size_t nattrs;
};

struct ferry_schema_kind {
	const char *key;    /* JSON key: "materialized_views" */
	const char *word;   /* in the text: "materialized_view" */
	const char *noun;   /* in diff lines: "materialized view" */
	const char *plural; /* "materialized views" */
	int qualified;      /* has a "schema" */
	const struct ferry_schema_attr *attrs;
	size_t nattrs;
	const struct ferry_schema_sub *subs;
	size_t nsubs;
};

/* The kinds, in the order the text and the diff list them. */
const struct ferry_schema_kind *ferry_schema_kinds(size_t *n);

/* ---- Building and loading ---------------------------------------------- */

struct ferry_schema_opts {
	/* Schemas in scope besides the connection's ("ferry" is ignored). */
	const char *const *schemas;
	size_t nschemas;
};

/* What an introspection cost (the benchmark prints it). */
struct ferry_schema_stats {
	int queries;        /* round trips to the server */
	int64_t query_us;   /* time spent waiting for them */
	int64_t elapsed_us; /* the whole build, digest included */
};

/*
 * Builds the document of the database behind db. The connection must not
 * be inside a transaction; it is left outside one. opts and stats may be
 * NULL. Returns 0 and *out (ferry_schema_free it), or FERRY_EOPER.
 */
int ferry_schema_introspect(struct ferry_db *db,
    const struct ferry_schema_opts *opts, struct ferry_schema **out,
    struct ferry_schema_stats *stats, struct ferry_err *err);

/*
 * Loads a document from its JSON form. source names it in messages. The
 * document is validated against the model and its digest recomputed;
 * a document whose recorded digest differs from its content is refused.
 * Returns 0, FERRY_EUSAGE for an invalid document.
 */
int ferry_schema_from_json(const char *text, size_t len, const char *source,
    struct ferry_schema **out, struct ferry_err *err);

/*
 * Makes a document from a JSON form that carries no digest (or one that
 * is not checked): fixtures, tests, documents built by other tools. doc
 * is validated like a loaded one and stays the caller's.
 */
int ferry_schema_build(json_t *doc, struct ferry_schema **out,
    struct ferry_err *err);

/* Loads a document file (JSON form). FERRY_EOPER when unreadable. */
int ferry_schema_load_file(const char *path, struct ferry_schema **out,
    struct ferry_err *err);

/*
 * Loads a document from a source as users give it: a database URL
 * ("postgresql://...", "postgres://...", or libpq "key=value" words,
 * introspected with opts) or the path of a saved document.
 */
int ferry_schema_open(const char *source, const struct ferry_schema_opts *opts,
    struct ferry_schema **out, struct ferry_err *err);

/* Frees a document; NULL is a no-op. */
void ferry_schema_free(struct ferry_schema *s);

/* ---- Reading ----------------------------------------------------------- */

/* The JSON form (borrowed: valid while s lives; do not modify it). */
const json_t *ferry_schema_json(const struct ferry_schema *s);

/* The JSON form as indented text with a final newline (free() it). */
char *ferry_schema_json_text(const struct ferry_schema *s);

/* The canonical text (the digest's input) and its length. */
const char *ferry_schema_text(const struct ferry_schema *s, size_t *len);

/* The digest: lowercase hex SHA-256 of the canonical text. */
const char *ferry_schema_digest(const struct ferry_schema *s);

/* The server's major version (15) and full version ("15.6"). */
int ferry_schema_pg_major(const struct ferry_schema *s);
const char *ferry_schema_pg_version(const struct ferry_schema *s);

/* The connection's schema: short names in messages are relative to it. */
const char *ferry_schema_home(const struct ferry_schema *s);

/* Number of objects (every kind, sub-objects not counted). */
size_t ferry_schema_count(const struct ferry_schema *s);

/*
 * Writes the JSON form to path atomically (a temporary file in the same
 * directory, then rename). Returns 0 or FERRY_EOPER.
 */
int ferry_schema_save_file(const struct ferry_schema *s, const char *path,
    struct ferry_err *err);

#endif
