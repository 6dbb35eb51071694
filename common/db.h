/*
 * db.h -- a libpq connection as Ferry uses it.
 *
 * URLs are taken as users paste them for Prisma: "?schema=NAME" becomes
 * the session's search_path and the schema of the history table, and
 * Prisma-only parameters (connection_limit, pool_timeout, pgbouncer, ...)
 * are dropped with a note in the log, since libpq refuses them. Everything
 * else is libpq's: PG* variables, .pgpass, sslmode.
 */
#ifndef FERRY_DB_H
#define FERRY_DB_H

#include <libpq-fe.h>

#include "err.h"

struct ferry_db;

/*
 * Chooses the database URL: url when not NULL, else DIRECT_URL, else
 * DATABASE_URL (DIRECT_URL wins as in Prisma: session advisory locks do
 * not work through PgBouncer in transaction mode), else "" (libpq's PG*
 * variables). Never returns NULL.
 */
const char *ferry_db_pick_url(const char *url);

/*
 * Connects and prepares the session: application_name (unless the URL
 * sets one), search_path = the schema, client_connection_check_interval
 * (so a killed client's backend stops soon and releases its locks).
 * Errors are one line naming the server (password masked) and the cause.
 */
int ferry_db_open(const char *url, const char *app_name, struct ferry_db **out,
    struct ferry_err *err);

/*
 * The same in two steps, so that local work (reading the migrations
 * folder) overlaps the server's connection setup: start returns at once,
 * finish completes the connection (bounded by connect_timeout). The
 * session setup is then sent with the first query, whatever it is
 * (ferry_db_exec, ferry_db_query, a pipeline, or before ferry_db_conn()
 * returns), saving a round trip; if it fails, that query fails with
 * "cannot set up the session: ..." and the connection is shut, so that
 * nothing runs in a session without its search_path. After a failed
 * finish, the caller closes db.
 */
int ferry_db_start(const char *url, const char *app_name, struct ferry_db **out,
    struct ferry_err *err);
int ferry_db_finish(struct ferry_db *db, struct ferry_err *err);

/*
 * Between start and finish: advances the connection as far as it can
 * without waiting (answers the server), so that the server's part of the
 * setup overlaps the caller's local work. Never fails; finish reports.
 */
void ferry_db_progress(struct ferry_db *db);

/* Closes the connection and frees everything; NULL is a no-op. */
void ferry_db_close(struct ferry_db *db);

/* The libpq connection, its session set up (see ferry_db_finish). */
PGconn *ferry_db_conn(struct ferry_db *db);

/*
 * libpq pipeline mode, for several statements in one round trip: begin
 * enters it and, if the session setup is still pending, queues it first
 * (1 or 2 statements, then a Sync of their own), setting *setup_queued to
 * the number of statements, whose results then come first, each for
 * ferry_db_setup_check(). Returns 0 or -1 (see the connection's error
 * message).
 */
int ferry_db_pipeline_begin(struct ferry_db *db, int *setup_queued);

/*
 * Checks the result of a session setup statement queued by begin; on
 * failure as in ferry_db_finish: an error, and the connection shut.
 */
int ferry_db_setup_check(struct ferry_db *db, const PGresult *res,
    struct ferry_err *err);

/* 1 while the connection is being set up (after start, before finish). */
int ferry_db_connecting(const struct ferry_db *db);

/* The schema holding the history table ("public" unless ?schema=). */
const char *ferry_db_schema(const struct ferry_db *db);

/* The schema as a quoted SQL identifier, e.g. "public". */
const char *ferry_db_schema_ident(const struct ferry_db *db);

/* The URL with its password masked, for messages. */
const char *ferry_db_display(const struct ferry_db *db);

/*
 * Sends a cancel request for the query in progress. Safe to call from a
 * signal handler (PQcancel is async-signal-safe).
 */
void ferry_db_cancel(struct ferry_db *db);

/*
 * Runs sql (no parameters, possibly several statements) and checks that
 * every result succeeded. On failure records "<what>: <server message>
 * (SQLSTATE x)" with code FERRY_EOPER.
 */
int ferry_db_exec(struct ferry_db *db, const char *sql, const char *what,
    struct ferry_err *err);

/*
 * Runs a one-statement query with text parameters and returns its result
 * (caller PQclear()s it), or NULL with an error recorded.
 */
PGresult *ferry_db_query(struct ferry_db *db, const char *sql, int nparams,
    const char *const *params, const char *what, struct ferry_err *err);

/*
 * Formats the error in res (or the connection's, if res is NULL) as
 * "<what>: <message> (SQLSTATE x)" into err with the given code.
 */
int ferry_db_err(struct ferry_db *db, const PGresult *res, int code,
    const char *what, struct ferry_err *err);

/* Returns 1 if the connection is still usable. */
int ferry_db_ok(struct ferry_db *db);

/*
 * Quotes s as an SQL literal / identifier into a new string (free()).
 * Never fails for valid input; invalid encoding yields NULL.
 */
char *ferry_db_literal(struct ferry_db *db, const char *s);
char *ferry_db_ident(struct ferry_db *db, const char *s);

#endif
