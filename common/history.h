/*
 * history.h -- the migration history table, byte-compatible with Prisma's
 * _prisma_migrations, and Ferry's own per-statement progress, which lives
 * in a "ferry" schema so that Prisma never sees a foreign table beside its
 * own.
 *
 * A row is finished (applied), failed (finished_at and rolled_back_at both
 * NULL) or rolled back. Several rows may carry one name: a rolled-back
 * attempt stays, and the next apply adds a row.
 */
#ifndef FERRY_HISTORY_H
#define FERRY_HISTORY_H

#include "db.h"
#include "err.h"

/* Prisma's advisory lock key: Ferry and Prisma never run at once. */
#define FERRY_ADVISORY_LOCK_KEY 72707369

/* Per-statement progress states. */
enum ferry_progress {
	FERRY_PROGRESS_NONE = 0, /* no progress row */
	FERRY_PROGRESS_STARTED,  /* step `step` sent, outcome unknown */
	FERRY_PROGRESS_DONE,     /* step `step` done */
	FERRY_PROGRESS_FAILED,   /* step `step` failed and left nothing */
};

struct ferry_history_row {
	char *id;
	char *checksum;
	char *name;
	char *logs;           /* NULL when NULL */
	char *started_at;     /* RFC 3339 UTC text */
	char *finished_at;    /* NULL when NULL */
	char *rolled_back_at; /* NULL when NULL */
	int applied_steps_count;
	enum ferry_progress progress;
	int progress_step;   /* 0-based step of the progress state */
	int progress_nsteps; /* steps in the file when it started */
};

struct ferry_history;

/*
 * Reads the whole history in one query, in started_at order. Sets
 * *exists to whether the table exists (an absent table reads as empty)
 * and, only when it does not, *other_tables to the number of other tables
 * and views in the schema (0 when it does: counting scans pg_class).
 * The rows' strings live as long as the history.
 */
int ferry_history_load(struct ferry_db *db, struct ferry_history **out,
    int *exists, long *other_tables, struct ferry_err *err);

/*
 * ferry_history_lock() then ferry_history_load(), with the session setup
 * still pending from ferry_db_finish(), the lock and the catalog probe in
 * one round trip (a pipeline; each in a transaction of its own) and the
 * rows in a second. lock_wait_ms < 0: no lock (status, dry runs).
 */
int ferry_history_lock_load(struct ferry_db *db, long lock_wait_ms,
    struct ferry_history **out, int *exists, long *other_tables,
    struct ferry_err *err);
void ferry_history_free(struct ferry_history *h);
size_t ferry_history_count(const struct ferry_history *h);
const struct ferry_history_row *
ferry_history_get(const struct ferry_history *h, size_t i);

/* Creates the schema (if missing) and the history table. */
int ferry_history_create(struct ferry_db *db, struct ferry_err *err);

/* Creates the "ferry" schema and its progress table, if missing. */
int ferry_history_create_progress(struct ferry_db *db, struct ferry_err *err);

/*
 * ferry_history_lock_load() in steps, so that the server works while the
 * caller does (reads the migrations folder): new prepares it on a
 * connection just started (ferry_db_start) or up; progress sends and reads
 * whatever it can without waiting (call it every now and then); finish
 * waits for the rest and returns what ferry_history_lock_load() would
 * (load 0: only the lock, as ferry_history_lock(); out etc. may be NULL).
 * Freeing it unfinished leaves the connection in the middle of a
 * conversation: close that too.
 */
struct ferry_history_fetch;
struct ferry_history_fetch *
ferry_history_fetch_new(struct ferry_db *db, long lock_wait_ms, int load);
void ferry_history_fetch_progress(struct ferry_history_fetch *f);
int ferry_history_fetch_finish(struct ferry_history_fetch *f,
    struct ferry_history **out, int *exists, long *other_tables,
    struct ferry_err *err);
void ferry_history_fetch_free(struct ferry_history_fetch *f);

/*
 * Takes the session advisory lock, waiting at most wait_ms. On timeout the
 * error names the backend holding it (pid, application, client, since).
 */
int
ferry_history_lock(struct ferry_db *db, long wait_ms, struct ferry_err *err);

/* Releases the migration lock (for a connection that lives on). */
int ferry_history_unlock(struct ferry_db *db, struct ferry_err *err);

/* Writes a new random UUID v4 (36 characters + NUL). */
void ferry_uuid_v4(char out[37]);

/* Current time as an SQL timestamptz literal body, microseconds, UTC. */
void ferry_history_now(char out[40]);

/*
 * Describes the client backends with an open transaction (oldest first)
 * and the relations they hold locks on: the likely blockers after a lock
 * timeout. Writes "" if there are none or on error.
 */
void ferry_history_blockers(struct ferry_db *db, char *out, size_t outsz);

#endif
