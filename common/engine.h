/*
 * engine.h -- compares a database's history with an ordered list of
 * migrations, and applies what is pending, safely.
 *
 * The input is a struct ferry_migrations in apply order, whatever its
 * source (a folder, a signed bundle). The history is Prisma's
 * _prisma_migrations; see history.h. The rules for transaction modes are
 * in sqlscript.h and docs/transaction-modes.md.
 */
#ifndef FERRY_ENGINE_H
#define FERRY_ENGINE_H

#include <signal.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "migrations.h"
#include "sqlscript.h"

enum ferry_state {
	FERRY_STATE_APPLIED,  /* finished, checksum matches */
	FERRY_STATE_PENDING,  /* no live row: will be applied */
	FERRY_STATE_FAILED,   /* unfinished and not rolled back */
	FERRY_STATE_MODIFIED, /* finished, but migration.sql changed */
	FERRY_STATE_MISSING,  /* finished in the database, no local folder */
};

const char *ferry_state_name(enum ferry_state s);

struct ferry_status_entry {
	const char *name;
	enum ferry_state state;
	const struct ferry_migration *local; /* NULL when MISSING */
	/* The row that decided the state (NULL when PENDING with no row). */
	const char *db_checksum;
	const char *started_at;
	const char *finished_at;
	const char *logs;
	int applied_steps;
	int rolled_back_before; /* earlier attempts were rolled back */
	int out_of_order;       /* pending, sorts before an applied one */
	/* Per-statement progress of a FAILED entry: 0-based step in doubt
	   (sent, outcome unknown), or -1. */
	int in_doubt_step;
	int steps_total; /* from progress, or 0 */
};

struct ferry_status;
struct ferry_history_fetch;

/*
 * Reads the history (one query) and compares it with migs. Does not take
 * the lock and changes nothing.
 */
int
ferry_engine_status(struct ferry_db *db, const struct ferry_migrations *migs,
    struct ferry_status **out, struct ferry_err *err);

/*
 * The same with the history read by fetch (history.h), started without
 * the lock (lock_wait_ms -1) before migs were known.
 */
int ferry_engine_status_from(struct ferry_db *db,
    const struct ferry_migrations *migs, struct ferry_history_fetch *fetch,
    struct ferry_status **out, struct ferry_err *err);
void ferry_status_free(struct ferry_status *st);
size_t ferry_status_count(const struct ferry_status *st);
const struct ferry_status_entry *
ferry_status_get(const struct ferry_status *st, size_t i);
/* Whether _prisma_migrations exists; other tables in the schema. */
int ferry_status_has_table(const struct ferry_status *st);
long ferry_status_other_tables(const struct ferry_status *st);
/* Entries in a state. */
size_t ferry_status_n(const struct ferry_status *st, enum ferry_state s);
/* 1 when nothing is pending, failed, modified or missing. */
int ferry_status_up_to_date(const struct ferry_status *st);

/* What happened to one migration during apply. */
enum ferry_outcome {
	FERRY_OUTCOME_APPLIED,
	FERRY_OUTCOME_FAILED,
	FERRY_OUTCOME_WOULD_APPLY, /* dry run */
};

struct ferry_apply_event {
	const char *name;
	enum ferry_outcome outcome;
	enum ferry_mode mode;
	const char *reason; /* why this mode, "" for transaction */
	int64_t elapsed_us;
	int statements;
	int retries;       /* lock-timeout retries */
	int fell_back;     /* transaction attempt re-run per statement */
	const char *error; /* FAILED: the full report, else NULL */
};

struct ferry_apply_opts {
	long lock_wait_ms;         /* migration lock wait, default 10 s */
	long lock_timeout_ms;      /* per statement, default 5 s; 0 off */
	long statement_timeout_ms; /* default 0 (off) */
	int max_retries;           /* lock-timeout retries, default 5 */
	long retry_base_ms;        /* first backoff, default 500 ms */
	int dry_run;
	int allow_modified;
	const char *resume; /* continue this partly applied migration */
	/* For a statement in doubt when resuming: 0 refuse, 1 it was done
	   (skip it), 2 run it again. */
	int in_doubt;
	/* Set from a signal handler to stop between statements; the handler
	   also calls ferry_db_cancel() to stop the statement running. */
	volatile sig_atomic_t *interrupted;
	/* Called after each migration (may be NULL). */
	void (*on_event)(void *ctx, const struct ferry_apply_event *ev);
	void *ctx;
	/* The lock and history, read ahead (history.h) while the
	   migrations were read: started with lock_wait_ms, or -1 for a dry
	   run. NULL: the engine reads them. The caller frees it. */
	struct ferry_history_fetch *fetch;
};

/* Fills opts with the defaults above. */
void ferry_apply_opts_init(struct ferry_apply_opts *opts);

/*
 * Takes the migration lock, creates the history table when the schema is
 * empty (refuses, asking for a baseline, when it is not), refuses on failed
 * migrations (unless resuming one) and on modified ones (unless allowed),
 * then applies every pending migration in order, stopping at the first
 * failure, which is recorded. *applied counts the migrations applied.
 * Returns 0, FERRY_EFINDING (a migration failed or apply refused) or
 * FERRY_EOPER.
 */
int ferry_engine_apply(struct ferry_db *db, const struct ferry_migrations *migs,
    const struct ferry_apply_opts *opts, int *applied, struct ferry_err *err);

/*
 * Records migration `name` as applied without running it (Prisma's
 * resolve --applied), or marks its failed attempt rolled back
 * (resolve --rolled-back), so that the next apply runs it again.
 */
int ferry_engine_resolve_applied(struct ferry_db *db,
    const struct ferry_migrations *migs, const char *name, long lock_wait_ms,
    struct ferry_err *err);
int ferry_engine_resolve_rolled_back(struct ferry_db *db, const char *name,
    long lock_wait_ms, struct ferry_err *err);

/*
 * Records every migration of migs (up to and including up_to, if not
 * NULL) that has no live row as applied without running it, creating the
 * history table if needed: adopting an existing database. *recorded
 * counts the rows written.
 */
int
ferry_engine_baseline(struct ferry_db *db, const struct ferry_migrations *migs,
    const char *up_to, long lock_wait_ms, int *recorded, struct ferry_err *err);

#endif
