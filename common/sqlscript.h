/*
 * sqlscript.h -- a migration.sql split into statements and classified with
 * the real PostgreSQL parser (libpg_query), to choose how it runs.
 *
 * Modes:
 *   transaction    the whole file (its "body") runs in one transaction
 *                  together with its history row;
 *   per-statement  each step runs on its own, with progress recorded, because
 *                  a statement cannot run in a transaction block (CREATE/DROP
 *                  INDEX CONCURRENTLY, REINDEX ... CONCURRENTLY, VACUUM,
 *                  CREATE/DROP DATABASE, ALTER SYSTEM, CREATE/DROP
 *                  TABLESPACE, CLUSTER without a table), or ALTER TYPE ... ADD
 *                  VALUE is followed by another statement, or the file has
 *                  transaction control other than one BEGIN ... COMMIT pair
 *                  wrapping the whole file, or a header comment
 *                  "-- ferry:no-transaction" asks for it;
 *   simple         the parser cannot parse the file (syntax newer than its
 *                  grammar): the whole file is sent as one simple query, an
 *                  implicit transaction, as Prisma does; a warning says so.
 *
 * One BEGIN/START TRANSACTION ... COMMIT/END pair wrapping the whole file is
 * stripped from the body, since a user's COMMIT would otherwise commit
 * Ferry's transaction and break atomicity.
 *
 * Header directives are "-- ferry:<key>[=<value>]" comment lines before the
 * first statement: no-transaction, lock_timeout=<duration>,
 * statement_timeout=<duration> (durations as ferry_parse_duration_ms).
 */
#ifndef FERRY_SQLSCRIPT_H
#define FERRY_SQLSCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum ferry_mode {
	FERRY_MODE_TRANSACTION = 1,
	FERRY_MODE_PER_STATEMENT = 2,
	FERRY_MODE_SIMPLE = 3,
};

/* Statement flags. */
#define FERRY_STMT_NO_TX 0x01      /* cannot run in a transaction block */
#define FERRY_STMT_ADD_VALUE 0x02  /* ALTER TYPE ... ADD VALUE */
#define FERRY_STMT_TX_CONTROL 0x04 /* BEGIN, COMMIT, SAVEPOINT, ... */
#define FERRY_STMT_CONCURRENT 0x08 /* CREATE INDEX CONCURRENTLY */

/*
 * A step: a byte range of the file that per-statement mode runs as one
 * simple query. Normally one statement; a user's BEGIN ... COMMIT block
 * inside a per-statement file is one step (BEGIN and COMMIT included), so
 * its statements stay atomic.
 */
struct ferry_step {
	size_t offset;  /* first byte of the statement's text (no leading
			   whitespace or comments) */
	size_t len;     /* up to and excluding the terminating ';' */
	unsigned flags; /* union of the flags of its statements */
	int line;       /* 1-based line of offset */
	/* For CREATE INDEX CONCURRENTLY: the index name (NULL if unnamed)
	   and schema (NULL if unqualified), to clean up an invalid index
	   left by a failed attempt. */
	char *index_name;
	char *index_schema;
};

struct ferry_script;

/*
 * Parses sql (len bytes, need not be NUL-terminated; name is used in
 * messages). Always succeeds for any input except a directive with a bad
 * value (FERRY_EUSAGE naming the file and line); a file the parser cannot
 * parse gets FERRY_MODE_SIMPLE and a warning. *out is NULL on failure.
 */
int ferry_script_parse(const char *sql, size_t len, const char *name,
    struct ferry_script **out, struct ferry_err *err);
void ferry_script_free(struct ferry_script *s);

enum ferry_mode ferry_script_mode(const struct ferry_script *s);
/* "transaction", "per-statement" or "simple". */
const char *ferry_mode_name(enum ferry_mode mode);

/*
 * Why the mode was chosen, for humans: e.g. "CREATE INDEX CONCURRENTLY at
 * line 3 cannot run in a transaction block". "" for plain transaction.
 */
const char *ferry_script_reason(const struct ferry_script *s);

/* The parser's complaint when the mode is simple, else NULL. */
const char *ferry_script_warning(const struct ferry_script *s);

/* Number of statements the parser found (0 for simple mode). */
size_t ferry_script_nstatements(const struct ferry_script *s);

/* Steps for per-statement mode (also filled for transaction mode). */
size_t ferry_script_nsteps(const struct ferry_script *s);
const struct ferry_step *
ferry_script_step(const struct ferry_script *s, size_t i);

/*
 * The byte range to run in transaction and simple modes: the whole file,
 * or what lies between a wrapping BEGIN and COMMIT.
 */
void
ferry_script_body(const struct ferry_script *s, size_t *offset, size_t *len);

/* Directive values in ms, or -1 when the file sets none. */
int64_t ferry_script_lock_timeout_ms(const struct ferry_script *s);
int64_t ferry_script_statement_timeout_ms(const struct ferry_script *s);

/*
 * Maps a byte offset in the file to a 1-based line and column (column in
 * characters, counting UTF-8 sequences as one).
 */
void ferry_script_line_col(const struct ferry_script *s, size_t offset,
    int *line, int *col);

/*
 * Returns the index of the step whose range contains (or, in the gap
 * before it, precedes) byte offset, for error reports.
 */
size_t ferry_script_step_at(const struct ferry_script *s, size_t offset);

#endif
