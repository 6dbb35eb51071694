/*
 * engine.c -- status and apply: the history against the migration list.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <sodium.h>

#include "buf.h"
#include "history.h"
#include "log.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* status                                                              */

struct ferry_status {
	struct ferry_history *hist;
	struct ferry_status_entry *e;
	size_t n;
	int has_table;
	long other_tables;
};

static const char *const state_names[] = { "applied", "pending", "failed",
	"modified", "missing" };

const char *
ferry_state_name(enum ferry_state s)
{
	return state_names[s];
}

static int
cmp_row_name(const void *a, const void *b)
{
	const struct ferry_history_row *x =
	    *(const struct ferry_history_row *const *)a;
	const struct ferry_history_row *y =
	    *(const struct ferry_history_row *const *)b;
	int c = strcmp(x->name, y->name);

	/* Same name: keep history (started_at) order. */
	if (c == 0)
		return x < y ? -1 : x > y;
	return c;
}

static int
row_live_finished(const struct ferry_history_row *r)
{
	return r->finished_at != NULL && r->rolled_back_at == NULL;
}

static int
row_failed(const struct ferry_history_row *r)
{
	return r->finished_at == NULL && r->rolled_back_at == NULL;
}

static void
fill_from_row(struct ferry_status_entry *e, const struct ferry_history_row *r)
{
	e->db_checksum = r->checksum;
	e->started_at = r->started_at;
	e->finished_at = r->finished_at;
	e->logs = r->logs;
	e->applied_steps = r->applied_steps_count;
	e->in_doubt_step = -1;
	if (r->progress != FERRY_PROGRESS_NONE)
		e->steps_total = r->progress_nsteps;
	/* Sent, and neither its success nor its failure recorded. */
	if (row_failed(r) && r->progress == FERRY_PROGRESS_STARTED &&
	    r->progress_step == r->applied_steps_count)
		e->in_doubt_step = r->progress_step;
}

static struct ferry_status_entry *
new_entry(struct ferry_status *st, size_t *cap)
{
	if (st->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		st->e = xrealloc(st->e, *cap * sizeof(*st->e));
	}
	memset(&st->e[st->n], 0, sizeof(st->e[0]));
	st->e[st->n].in_doubt_step = -1;
	return &st->e[st->n++];
}

/* Builds the entries from a loaded history. */
static void
compute_status(struct ferry_status *st, const struct ferry_migrations *migs)
{
	size_t nrows = ferry_history_count(st->hist), nm, i, j, cap = 0;
	const struct ferry_history_row **byname;
	char *matched;
	ssize_t last_applied = -1;

	byname = xcalloc(nrows ? nrows : 1, sizeof(*byname));
	matched = xcalloc(nrows ? nrows : 1, 1);
	for (i = 0; i < nrows; i++)
		byname[i] = ferry_history_get(st->hist, i);
	qsort(byname, nrows, sizeof(*byname), cmp_row_name);

	nm = migs != NULL ? ferry_migrations_count(migs) : 0;
	for (i = 0; i < nm; i++) {
		const struct ferry_migration *m = ferry_migrations_get(migs, i);
		const struct ferry_history_row *fin = NULL, *failed = NULL;
		struct ferry_status_entry *e = new_entry(st, &cap);
		size_t lo = 0, hi = nrows;
		int rolled = 0;

		e->name = m->name;
		e->local = m;
		/* First row with this name. */
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (strcmp(byname[mid]->name, m->name) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (j = lo; j < nrows && strcmp(byname[j]->name, m->name) == 0;
		     j++) {
			/* Rows live in one array: their index, for the
			   missing-locally pass below. */
			matched[byname[j] - ferry_history_get(st->hist, 0)] = 1;
			if (row_live_finished(byname[j]))
				fin = byname[j];
			else if (row_failed(byname[j]))
				failed = byname[j];
			else
				rolled = 1;
		}
		e->rolled_back_before = rolled;
		if (failed != NULL) {
			e->state = FERRY_STATE_FAILED;
			fill_from_row(e, failed);
		} else if (fin != NULL) {
			fill_from_row(e, fin);
			e->state =
			    ferry_migration_checksum_matches(m, fin->checksum)
			    ? FERRY_STATE_APPLIED
			    : FERRY_STATE_MODIFIED;
			last_applied = (ssize_t)i;
		} else {
			e->state = FERRY_STATE_PENDING;
		}
	}
	for (i = 0; i < st->n; i++)
		if (st->e[i].state == FERRY_STATE_PENDING &&
		    (ssize_t)i < last_applied)
			st->e[i].out_of_order = 1;

	/* Rows with no local folder, in history order. */
	for (i = 0; i < nrows; i++) {
		const struct ferry_history_row *r =
		    ferry_history_get(st->hist, i);
		struct ferry_status_entry *e;

		if (matched[i])
			continue;
		if (!row_live_finished(r) && !row_failed(r))
			continue;
		e = new_entry(st, &cap);
		e->name = r->name;
		e->state =
		    row_failed(r) ? FERRY_STATE_FAILED : FERRY_STATE_MISSING;
		fill_from_row(e, r);
	}
	free(byname);
	free(matched);
}

/*
 * Takes the lock first when lock_wait_ms >= 0 (in the same round trip),
 * or finishes fetch, which was started with the lock wait wanted.
 */
static int
load_status(struct ferry_db *db, const struct ferry_migrations *migs,
    struct ferry_history_fetch *fetch, long lock_wait_ms,
    struct ferry_status **out, struct ferry_err *err)
{
	struct ferry_status *st = xcalloc(1, sizeof(*st));
	int rc;

	*out = NULL;
	if (fetch != NULL)
		rc = ferry_history_fetch_finish(fetch, &st->hist,
		    &st->has_table, &st->other_tables, err);
	else
		rc = ferry_history_lock_load(db, lock_wait_ms, &st->hist,
		    &st->has_table, &st->other_tables, err);
	if (rc != 0) {
		free(st);
		return rc;
	}
	compute_status(st, migs);
	*out = st;
	return 0;
}

int
ferry_engine_status(struct ferry_db *db, const struct ferry_migrations *migs,
    struct ferry_status **out, struct ferry_err *err)
{
	return load_status(db, migs, NULL, -1, out, err);
}

int
ferry_engine_status_from(struct ferry_db *db,
    const struct ferry_migrations *migs, struct ferry_history_fetch *fetch,
    struct ferry_status **out, struct ferry_err *err)
{
	return load_status(db, migs, fetch, -1, out, err);
}

void
ferry_status_free(struct ferry_status *st)
{
	if (st == NULL)
		return;
	ferry_history_free(st->hist);
	free(st->e);
	free(st);
}

size_t
ferry_status_count(const struct ferry_status *st)
{
	return st->n;
}

const struct ferry_status_entry *
ferry_status_get(const struct ferry_status *st, size_t i)
{
	return i < st->n ? &st->e[i] : NULL;
}

int
ferry_status_has_table(const struct ferry_status *st)
{
	return st->has_table;
}

long
ferry_status_other_tables(const struct ferry_status *st)
{
	return st->other_tables;
}

size_t
ferry_status_n(const struct ferry_status *st, enum ferry_state s)
{
	size_t i, n = 0;

	for (i = 0; i < st->n; i++)
		n += st->e[i].state == s;
	return n;
}

int
ferry_status_up_to_date(const struct ferry_status *st)
{
	return ferry_status_n(st, FERRY_STATE_APPLIED) == st->n;
}

/* ------------------------------------------------------------------ */
/* apply                                                               */

void
ferry_apply_opts_init(struct ferry_apply_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->lock_wait_ms = 10000;
	opts->lock_timeout_ms = 5000;
	opts->statement_timeout_ms = 0;
	opts->max_retries = 5;
	opts->retry_base_ms = 500;
}

/* One migration being applied. */
struct run {
	struct ferry_db *db;
	const struct ferry_apply_opts *opts;
	const struct ferry_migration *m;
	struct ferry_script *script;
	const char *table; /* "schema"."_prisma_migrations" */
	long lock_timeout_ms;
	long statement_timeout_ms;
	char id[37];
	char started[40];
	struct ferry_apply_event ev;
	struct ferry_buf report; /* failure report, for logs and output */
};

/* Outcome of one attempt to run SQL. */
struct attempt {
	int ok;
	int results_before; /* results that succeeded before the error */
	char sqlstate[6];
	size_t err_offset; /* byte offset of the error in the text sent */
	int has_offset;
	char *message; /* primary, detail, hint, context: owned */
	char *primary;
	int conn_lost;
};

static void
attempt_release(struct attempt *a)
{
	free(a->message);
	free(a->primary);
	memset(a, 0, sizeof(*a));
}

static int
interrupted(const struct run *r)
{
	return r->opts->interrupted != NULL && *r->opts->interrupted;
}

/* Converts a 1-based character position in text to a byte offset. */
static size_t
char_pos_to_byte(const char *text, size_t len, long pos)
{
	size_t i = 0;
	long chars = 0;

	while (i < len && chars < pos - 1) {
		unsigned char c = (unsigned char)text[i++];
		if ((c & 0xc0) != 0x80)
			chars++;
		while (i < len && ((unsigned char)text[i] & 0xc0) == 0x80)
			i++;
	}
	return i;
}

/*
 * Sends text as one simple query and collects every result, counting
 * those that succeeded before an error.
 */
static void
run_text(struct ferry_db *db, const char *text, size_t len, struct attempt *a)
{
	PGconn *conn = ferry_db_conn(db);
	PGresult *res;
	struct ferry_buf msg;

	memset(a, 0, sizeof(*a));
	a->ok = 1;
	if (!PQsendQuery(conn, text)) {
		a->ok = 0;
		a->conn_lost = PQstatus(conn) != CONNECTION_OK;
		a->primary = xstrdup(PQerrorMessage(conn));
		a->message = xstrdup(a->primary);
		return;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_COPY_IN) {
			/* A migration has no data to feed COPY FROM STDIN: end
			   it with an error, which the server reports back. */
			PQputCopyEnd(conn,
			    "COPY FROM STDIN is not supported in "
			    "a migration (no input data)");
			PQclear(res);
			continue;
		}
		if (st == PGRES_COPY_OUT) {
			char *buf = NULL;
			while (PQgetCopyData(conn, &buf, 0) > 0)
				PQfreemem(buf);
			PQclear(res);
			continue;
		}
		if (!a->ok) {
			PQclear(res);
			continue;
		}
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
		    st == PGRES_EMPTY_QUERY) {
			a->results_before++;
		} else {
			const char *f;
			a->ok = 0;
			f = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			ferry_strlcpy(a->sqlstate, f ? f : "",
			    sizeof(a->sqlstate));
			f = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
			if (f != NULL) {
				a->has_offset = 1;
				a->err_offset = char_pos_to_byte(text, len,
				    strtol(f, NULL, 10));
			}
			f = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			a->primary = xstrdup(f ? f : PQerrorMessage(conn));
			ferry_buf_init(&msg, 64 * 1024);
			ferry_buf_adds(&msg, a->primary);
			if (a->sqlstate[0])
				ferry_buf_addf(&msg, " (SQLSTATE %s)",
				    a->sqlstate);
			if ((f = PQresultErrorField(res,
			         PG_DIAG_MESSAGE_DETAIL)) != NULL)
				ferry_buf_addf(&msg, "\nDETAIL: %s", f);
			if ((f = PQresultErrorField(res,
			         PG_DIAG_MESSAGE_HINT)) != NULL)
				ferry_buf_addf(&msg, "\nHINT: %s", f);
			if ((f = PQresultErrorField(res, PG_DIAG_CONTEXT)) !=
			    NULL)
				ferry_buf_addf(&msg, "\nCONTEXT: %s", f);
			a->message = ferry_buf_detach(&msg, NULL);
		}
		PQclear(res);
	}
	if (a->ok && PQstatus(conn) != CONNECTION_OK) {
		a->ok = 0;
		a->conn_lost = 1;
	}
	if (!a->ok && PQstatus(conn) != CONNECTION_OK) {
		a->conn_lost = 1;
		if (a->primary == NULL) {
			a->primary = xstrdup(PQerrorMessage(conn));
			a->message = xstrdup(a->primary);
		}
	}
}

/* The k-th backoff (exponential, capped, with jitter), in ms. */
static long
retry_delay(const struct run *r, int k)
{
	long base = r->opts->retry_base_ms, cap = 30000, d;
	int i;

	d = base;
	for (i = 0; i < k && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* Jitter in [d/2, d]: agents retrying together spread out. */
	return d / 2 + (long)randombytes_uniform((uint32_t)(d / 2 + 1));
}

/* Sleeps ms, or until interrupted. */
static void
sleep_ms(const struct run *r, long d)
{
	while (d > 0 && !interrupted(r)) {
		long step = d < 50 ? d : 50;
		struct timespec ts = { 0, step * 1000000L };
		nanosleep(&ts, NULL);
		d -= step;
	}
}

/* Writes the failure report: where, what, and the server's words. */
static void
build_report(struct run *r, const struct attempt *a, int step, size_t offset,
    int has_offset)
{
	int line = 0, col = 0, nsteps = (int)ferry_script_nsteps(r->script);

	ferry_buf_reset(&r->report);
	if (interrupted(r)) {
		ferry_buf_addf(&r->report,
		    "migration '%s' was interrupted by a signal", r->m->name);
		if (step >= 0)
			ferry_buf_addf(&r->report, " during statement %d",
			    step + 1);
		ferry_buf_adds(&r->report, ": cancelled and rolled back");
		return;
	}
	ferry_buf_addf(&r->report, "migration '%s' failed", r->m->name);
	if (step >= 0 && step < nsteps) {
		if (!has_offset)
			offset =
			    ferry_script_step(r->script, (size_t)step)->offset;
		ferry_script_line_col(r->script, offset, &line, &col);
		ferry_buf_addf(&r->report,
		    " at statement %d of %d (migration.sql line %d, column %d)",
		    step + 1, nsteps, line, col);
	} else if (step >= nsteps && nsteps > 0) {
		ferry_buf_adds(&r->report, " at COMMIT");
	} else if (has_offset) {
		ferry_script_line_col(r->script, offset, &line, &col);
		ferry_buf_addf(&r->report,
		    " at migration.sql line %d, column %d", line, col);
	}
	ferry_buf_addf(&r->report, ": %s",
	    a->message ? a->message : "unknown error");
}

static int
exec_bookkeeping(struct run *r, const char *sql, struct ferry_err *err)
{
	return ferry_db_exec(r->db, sql, "cannot record migration progress",
	    err);
}

/* Inserts the failed row (transaction and simple modes, after rollback). */
static int
record_failure_row(struct run *r, int steps, struct ferry_err *err)
{
	char *logs = ferry_db_literal(r->db, ferry_buf_str(&r->report));
	char *name = ferry_db_literal(r->db, r->m->name);
	char *sql;
	int rc;

	sql = xasprintf("INSERT INTO %s (id, checksum, started_at, "
	                "migration_name, logs, applied_steps_count) "
	                "VALUES ('%s', '%s', '%s', %s, %s, %d)",
	    r->table, r->id, r->m->checksum, r->started, name,
	    logs ? logs : "'(invalid text)'", steps);
	rc = exec_bookkeeping(r, sql, err);
	free(sql);
	free(name);
	free(logs);
	return rc;
}

static void
log_retry(struct run *r, int attempt, long wait_ms, int step)
{
	char blockers[1024], n[16], w[24], s[16];

	ferry_history_blockers(r->db, blockers, sizeof(blockers));
	snprintf(n, sizeof(n), "%d/%d", attempt, r->opts->max_retries);
	snprintf(w, sizeof(w), "%ldms", wait_ms);
	snprintf(s, sizeof(s), "%d", step + 1);
	ferry_log_warn("lock timeout: another transaction holds a lock this "
	               "migration needs; retrying",
	    "migration", r->m->name, "statement", s, "retry", n, "backoff", w,
	    "blocked_by", blockers[0] ? blockers : "unknown (already gone)");
}

enum { RUN_OK = 0, RUN_FAILED = 1, RUN_FALLBACK = 2, RUN_OPER = 3 };

/* Runs the migration and its history row in one transaction. */
static int
run_transaction(struct run *r, struct ferry_err *err)
{
	struct ferry_buf q;
	struct attempt a;
	size_t body_off, body_len, prefix_len;
	char *name = ferry_db_literal(r->db, r->m->name);
	int nprefix, tries = 0, rc = RUN_OK, step;

	ferry_buf_init(&q, r->m->sql_len + 4096);
	ferry_script_body(r->script, &body_off, &body_len);
	for (;;) {
		ferry_uuid_v4(r->id);
		ferry_history_now(r->started);
		ferry_buf_reset(&q);
		ferry_buf_adds(&q, "BEGIN;\n");
		nprefix = 2;
		if (r->lock_timeout_ms > 0) {
			ferry_buf_addf(&q,
			    "SET LOCAL lock_timeout = '%ldms';\n",
			    r->lock_timeout_ms);
			nprefix++;
		}
		if (r->statement_timeout_ms > 0) {
			ferry_buf_addf(&q,
			    "SET LOCAL statement_timeout = '%ldms';\n",
			    r->statement_timeout_ms);
			nprefix++;
		}
		ferry_buf_addf(&q,
		    "INSERT INTO %s (id, checksum, started_at, migration_name) "
		    "VALUES ('%s', '%s', '%s', %s);\n",
		    r->table, r->id, r->m->checksum, r->started, name);
		prefix_len = ferry_buf_len(&q);
		ferry_buf_add(&q, r->m->sql + body_off, body_len);
		/* The newline ends a trailing "--" comment. */
		ferry_buf_addf(&q,
		    "\n;\nUPDATE %s SET finished_at = clock_timestamp(), "
		    "applied_steps_count = 1 WHERE id = '%s';\nCOMMIT;",
		    r->table, r->id);

		run_text(r->db, ferry_buf_str(&q), ferry_buf_len(&q), &a);
		if (a.ok)
			break;
		if (a.conn_lost) {
			rc = ferry_errf(err, FERRY_EOPER,
			    "lost the connection while applying '%s': %s",
			    r->m->name, a.primary);
			rc = RUN_OPER;
			break;
		}
		/* A query refused as a whole (bad encoding) opened nothing. */
		if (PQtransactionStatus(ferry_db_conn(r->db)) != PQTRANS_IDLE)
			ferry_db_exec(r->db, "ROLLBACK", "rollback", NULL);
		step = a.results_before - nprefix;
		if (strcmp(a.sqlstate, "55P03") == 0 && !interrupted(r) &&
		    tries < r->opts->max_retries) {
			long delay = retry_delay(r, tries);
			/* Name the blockers while they still hold the lock. */
			log_retry(r, ++tries, delay, step);
			r->ev.retries = tries;
			sleep_ms(r, delay);
			if (interrupted(r)) {
				build_report(r, &a, step, 0, 0);
				rc = record_failure_row(r, 0, err) == 0
				    ? RUN_FAILED
				    : RUN_OPER;
				break;
			}
			attempt_release(&a);
			continue;
		}
		if ((strcmp(a.sqlstate, "25001") == 0 ||
		        strcmp(a.sqlstate, "55P04") == 0) &&
		    !interrupted(r)) {
			ferry_log_warn("migration cannot run in a transaction; "
			               "it rolled back cleanly and runs again "
			               "statement by statement",
			    "migration", r->m->name, "sqlstate", a.sqlstate,
			    "error", a.primary);
			rc = RUN_FALLBACK;
			break;
		}
		if (step < 0) {
			rc = ferry_errf(err, FERRY_EOPER,
			    "cannot record migration '%s' in the history: %s",
			    r->m->name, a.message);
			rc = RUN_OPER;
			break;
		}
		{
			size_t off = 0;
			int has = a.has_offset && a.err_offset >= prefix_len &&
			    a.err_offset < prefix_len + body_len;
			if (has)
				off = body_off + (a.err_offset - prefix_len);
			build_report(r, &a, step, off, has);
		}
		rc = record_failure_row(r, 0, err) == 0 ? RUN_FAILED : RUN_OPER;
		break;
	}
	attempt_release(&a);
	ferry_buf_release(&q);
	free(name);
	return rc;
}

/*
 * Drops the index a timed-out CREATE INDEX CONCURRENTLY left invalid.
 * Returns 0, or -1 if the drop itself failed (it waits for the same old
 * transactions, so it can time out too).
 */
static int
drop_invalid_index(struct run *r, const struct ferry_step *s)
{
	const char *params[2];
	struct ferry_err e;
	PGresult *res;
	char *sql;
	int rc = 0;

	if (s->index_name == NULL) {
		ferry_log_warn("cannot clean up after CREATE INDEX "
		               "CONCURRENTLY without an index name",
		    "migration", r->m->name);
		return 0;
	}
	ferry_err_clear(&e);
	params[0] = s->index_name;
	params[1] = s->index_schema;
	res = ferry_db_query(r->db,
	    "SELECT format('%I.%I', n.nspname, c.relname)"
	    " FROM pg_catalog.pg_index i"
	    " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
	    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	    " WHERE c.relname = $1 AND NOT i.indisvalid"
	    " AND n.nspname = coalesce($2, current_schema())",
	    2, params, "invalid index", &e);
	if (res != NULL && PQntuples(res) == 1) {
		sql = xasprintf("DROP INDEX CONCURRENTLY IF EXISTS %s",
		    PQgetvalue(res, 0, 0));
		ferry_log_info("dropping the invalid index a timed-out CREATE "
		               "INDEX CONCURRENTLY left behind",
		    "migration", r->m->name, "index", PQgetvalue(res, 0, 0));
		if (ferry_db_exec(r->db, sql, "cannot drop the invalid index",
		        &e) != 0) {
			ferry_log_warn("cannot drop the invalid index yet; "
			               "retrying",
			    "error", e.msg);
			rc = -1;
		}
		free(sql);
	}
	PQclear(res);
	return rc;
}

static int
set_session_timeouts(struct run *r, int reset, struct ferry_err *err)
{
	char sql[256];

	if (reset)
		return ferry_db_exec(r->db,
		    "RESET lock_timeout; RESET statement_timeout",
		    "cannot reset timeouts", err);
	snprintf(sql, sizeof(sql),
	    "SET lock_timeout = %ld; SET statement_timeout = %ld",
	    r->lock_timeout_ms, r->statement_timeout_ms);
	return ferry_db_exec(r->db, sql, "cannot set timeouts", err);
}

/*
 * Runs steps [start, n) one by one, recording before each that it started
 * and after it that it is done. With `resume`, the row r->id exists.
 */
static int
run_per_statement(struct run *r, int start, int resume, struct ferry_err *err)
{
	size_t n = ferry_script_nsteps(r->script);
	char *name = ferry_db_literal(r->db, r->m->name), *sql = NULL;
	struct attempt a;
	int k, tries, cleanup, rc = RUN_OK;
	long delay;

	memset(&a, 0, sizeof(a));
	if (ferry_history_create_progress(r->db, err) != 0) {
		free(name);
		return RUN_OPER;
	}
	if (!resume) {
		ferry_uuid_v4(r->id);
		ferry_history_now(r->started);
		sql = xasprintf("BEGIN;"
		                "INSERT INTO %s (id, checksum, started_at, "
		                "migration_name) VALUES ('%s', '%s', '%s', %s);"
		                "INSERT INTO ferry.statement_progress "
		                "(migration_id, migration_name, checksum, "
		                "nsteps, step, state) "
		                "VALUES ('%s', %s, '%s', %zu, -1, 'done');"
		                "COMMIT",
		    r->table, r->id, r->m->checksum, r->started, name, r->id,
		    name, r->m->checksum, n);
	} else {
		/* Steps before start are done (an in-doubt one the operator
		   said took effect included). */
		sql = xasprintf("UPDATE %s SET logs = NULL, "
		                "applied_steps_count = %d WHERE id = '%s';"
		                "UPDATE ferry.statement_progress SET "
		                "step = %d, state = 'done' "
		                "WHERE migration_id = '%s'",
		    r->table, start, r->id, start - 1, r->id);
	}
	if (exec_bookkeeping(r, sql, err) != 0 ||
	    set_session_timeouts(r, 0, err) != 0) {
		rc = RUN_OPER;
		goto out;
	}
	for (k = start; k < (int)n; k++) {
		const struct ferry_step *s =
		    ferry_script_step(r->script, (size_t)k);
		char *text = xstrndup(r->m->sql + s->offset, s->len);

		tries = 0;
		cleanup = 0;
		for (;;) {
			if (interrupted(r)) {
				a.ok = 0;
				break;
			}
			if (cleanup && drop_invalid_index(r, s) != 0) {
				/* The drop timed out too: another retry. */
				if (tries >= r->opts->max_retries)
					break;
				delay = retry_delay(r, tries);
				log_retry(r, ++tries, delay, k);
				r->ev.retries += 1;
				sleep_ms(r, delay);
				continue;
			}
			cleanup = 0;
			free(sql);
			sql = xasprintf("UPDATE ferry.statement_progress SET "
			                "step = %d, state = 'started', "
			                "updated_at = clock_timestamp() "
			                "WHERE migration_id = '%s'",
			    k, r->id);
			if (exec_bookkeeping(r, sql, err) != 0) {
				free(text);
				rc = RUN_OPER;
				goto out;
			}
			attempt_release(&a);
			run_text(r->db, text, s->len, &a);
			if (a.ok || a.conn_lost)
				break;
			if (strcmp(a.sqlstate, "55P03") != 0 ||
			    interrupted(r) || tries >= r->opts->max_retries)
				break;
			/* Timed out waiting for a lock: nothing was done. */
			free(sql);
			sql = xasprintf("UPDATE ferry.statement_progress SET "
			                "state = 'failed' WHERE migration_id = "
			                "'%s'",
			    r->id);
			exec_bookkeeping(r, sql, err);
			cleanup = (s->flags & FERRY_STMT_CONCURRENT) != 0;
			delay = retry_delay(r, tries);
			log_retry(r, ++tries, delay, k);
			r->ev.retries += 1;
			sleep_ms(r, delay);
		}
		free(text);
		if (a.conn_lost) {
			rc = ferry_errf(err, FERRY_EOPER,
			    "lost the connection while applying statement %d "
			    "of '%s'; its outcome is in doubt: %s",
			    k + 1, r->m->name, a.primary ? a.primary : "");
			rc = RUN_OPER;
			goto out;
		}
		if (!a.ok) {
			char *logs;
			build_report(r, &a, k, s->offset + a.err_offset,
			    a.has_offset);
			logs =
			    ferry_db_literal(r->db, ferry_buf_str(&r->report));
			free(sql);
			sql =
			    xasprintf("UPDATE ferry.statement_progress SET "
			              "state = 'failed', step = %d, "
			              "updated_at = clock_timestamp() "
			              "WHERE migration_id = '%s';"
			              "UPDATE %s SET logs = %s WHERE id = '%s'",
			        k, r->id, r->table, logs ? logs : "NULL",
			        r->id);
			free(logs);
			rc = exec_bookkeeping(r, sql, err) == 0 ? RUN_FAILED
			                                        : RUN_OPER;
			goto out;
		}
		free(sql);
		sql = xasprintf("UPDATE %s SET applied_steps_count = %d "
		                "WHERE id = '%s';"
		                "UPDATE ferry.statement_progress SET state = "
		                "'done', updated_at = clock_timestamp() "
		                "WHERE migration_id = '%s'",
		    r->table, k + 1, r->id, r->id);
		if (exec_bookkeeping(r, sql, err) != 0) {
			rc = RUN_OPER;
			goto out;
		}
	}
	free(sql);
	sql = xasprintf("UPDATE %s SET finished_at = clock_timestamp(), "
	                "logs = NULL WHERE id = '%s'",
	    r->table, r->id);
	if (exec_bookkeeping(r, sql, err) != 0 ||
	    set_session_timeouts(r, 1, err) != 0)
		rc = RUN_OPER;
out:
	attempt_release(&a);
	free(sql);
	free(name);
	return rc;
}

/*
 * The parser could not read the file: run it as Prisma does, as one
 * simple query (an implicit transaction), with the bookkeeping around it.
 */
static int
run_simple(struct run *r, struct ferry_err *err)
{
	char *name = ferry_db_literal(r->db, r->m->name), *sql, *text;
	size_t off, len;
	struct attempt a;
	int rc = RUN_OK;

	ferry_uuid_v4(r->id);
	ferry_history_now(r->started);
	sql = xasprintf("INSERT INTO %s (id, checksum, started_at, "
	                "migration_name) VALUES ('%s', '%s', '%s', %s)",
	    r->table, r->id, r->m->checksum, r->started, name);
	if (exec_bookkeeping(r, sql, err) != 0 ||
	    set_session_timeouts(r, 0, err) != 0) {
		free(sql);
		free(name);
		return RUN_OPER;
	}
	free(sql);
	ferry_script_body(r->script, &off, &len);
	text = xstrndup(r->m->sql + off, len);
	run_text(r->db, text, len, &a);
	free(text);
	if (a.conn_lost) {
		ferry_errf(err, FERRY_EOPER,
		    "lost the connection while applying '%s': %s", r->m->name,
		    a.primary ? a.primary : "");
		rc = RUN_OPER;
		goto out;
	}
	if (!a.ok) {
		char *logs;
		build_report(r, &a, -1, off + a.err_offset, a.has_offset);
		logs = ferry_db_literal(r->db, ferry_buf_str(&r->report));
		sql = xasprintf("UPDATE %s SET logs = %s WHERE id = '%s'",
		    r->table, logs ? logs : "NULL", r->id);
		free(logs);
		rc = exec_bookkeeping(r, sql, err) == 0 ? RUN_FAILED : RUN_OPER;
		free(sql);
		goto out;
	}
	sql = xasprintf("UPDATE %s SET applied_steps_count = 1, finished_at = "
	                "clock_timestamp() WHERE id = '%s'",
	    r->table, r->id);
	if (exec_bookkeeping(r, sql, err) != 0 ||
	    set_session_timeouts(r, 1, err) != 0)
		rc = RUN_OPER;
	free(sql);
out:
	attempt_release(&a);
	free(name);
	return rc;
}

static void
emit(struct run *r)
{
	if (r->opts->on_event != NULL)
		r->opts->on_event(r->opts->ctx, &r->ev);
}

/*
 * Applies one migration (or, with resume_id, continues one). Returns 0,
 * FERRY_EFINDING when it failed (and was recorded), or another error.
 */
static int
apply_one(struct ferry_db *db, const struct ferry_apply_opts *opts,
    const char *table, const struct ferry_migration *m, const char *resume_id,
    int resume_step, struct ferry_err *err)
{
	struct ferry_migration sanitized;
	struct run r;
	char *fixed;
	size_t fixed_len = 0;
	int64_t t0 = ferry_mono_us(), v;
	int rc;

	memset(&r, 0, sizeof(r));
	/*
	 * The server accepts only valid UTF-8. Like Prisma 6.6+, send such a
	 * file with invalid bytes replaced by U+FFFD (usually in comments);
	 * the recorded checksum stays that of the raw file.
	 */
	fixed = ferry_utf8_replace_invalid(m->sql, m->sql_len, &fixed_len);
	if (fixed != NULL) {
		ferry_log_warn("migration.sql is not valid UTF-8; invalid "
		               "bytes "
		               "are sent as U+FFFD",
		    "migration", m->name);
		sanitized = *m;
		sanitized.sql = fixed;
		sanitized.sql_len = fixed_len;
		m = &sanitized;
	}
	r.db = db;
	r.opts = opts;
	r.m = m;
	r.table = table;
	ferry_buf_init(&r.report, 256 * 1024);
	rc = ferry_script_parse(m->sql, m->sql_len, m->name, &r.script, err);
	if (rc != 0)
		goto out;
	r.lock_timeout_ms = opts->lock_timeout_ms;
	r.statement_timeout_ms = opts->statement_timeout_ms;
	if ((v = ferry_script_lock_timeout_ms(r.script)) >= 0)
		r.lock_timeout_ms = (long)v;
	if ((v = ferry_script_statement_timeout_ms(r.script)) >= 0)
		r.statement_timeout_ms = (long)v;
	r.ev.name = m->name;
	r.ev.mode = ferry_script_mode(r.script);
	r.ev.reason = ferry_script_reason(r.script);
	r.ev.statements = (int)ferry_script_nsteps(r.script);
	if (ferry_script_warning(r.script) != NULL)
		ferry_log_warn(ferry_script_warning(r.script), "migration",
		    m->name);
	if (opts->dry_run) {
		r.ev.outcome = FERRY_OUTCOME_WOULD_APPLY;
		emit(&r);
		goto out;
	}
	if (resume_id != NULL) {
		ferry_strlcpy(r.id, resume_id, sizeof(r.id));
		r.ev.mode = FERRY_MODE_PER_STATEMENT;
		rc = run_per_statement(&r, resume_step, 1, err);
	} else {
		switch (r.ev.mode) {
		case FERRY_MODE_TRANSACTION:
			rc = run_transaction(&r, err);
			if (rc == RUN_FALLBACK) {
				r.ev.fell_back = 1;
				r.ev.mode = FERRY_MODE_PER_STATEMENT;
				rc = run_per_statement(&r, 0, 0, err);
			}
			break;
		case FERRY_MODE_PER_STATEMENT:
			rc = run_per_statement(&r, 0, 0, err);
			break;
		default:
			rc = run_simple(&r, err);
			break;
		}
	}
	r.ev.elapsed_us = ferry_mono_us() - t0;
	if (rc == RUN_OK) {
		r.ev.outcome = FERRY_OUTCOME_APPLIED;
		emit(&r);
		rc = 0;
	} else if (rc == RUN_FAILED) {
		r.ev.outcome = FERRY_OUTCOME_FAILED;
		r.ev.error = ferry_buf_str(&r.report);
		emit(&r);
		/* The first line of the report is the one-line error. */
		{
			const char *rep = ferry_buf_str(&r.report);
			const char *nl = strchr(rep, '\n');
			ferry_errf(err,
			    interrupted(&r) ? FERRY_EOPER : FERRY_EFINDING,
			    "%.*s", nl ? (int)(nl - rep) : (int)strlen(rep),
			    rep);
		}
		rc = err->code;
	} else {
		if (err->code == 0)
			ferry_errf(err, FERRY_EOPER, "applying '%s' failed",
			    m->name);
		rc = err->code;
	}
out:
	ferry_script_free(r.script);
	ferry_buf_release(&r.report);
	free(fixed);
	return rc;
}

/* Explains the failed migrations and how to resolve them (P3009). */
static int
refuse_failed(const struct ferry_status *st, struct ferry_err *err)
{
	struct ferry_buf b;
	size_t i;
	int rc;

	ferry_buf_init(&b, 8192);
	ferry_buf_adds(&b,
	    "found failed migrations in the database; new "
	    "migrations will not be applied until they are "
	    "resolved:");
	for (i = 0; i < st->n; i++) {
		const struct ferry_status_entry *e = &st->e[i];
		if (e->state != FERRY_STATE_FAILED)
			continue;
		ferry_buf_addf(&b, " '%s' (started at %s", e->name,
		    e->started_at);
		if (e->in_doubt_step >= 0)
			ferry_buf_addf(&b, ", statement %d in doubt",
			    e->in_doubt_step + 1);
		else if (e->steps_total > 0)
			ferry_buf_addf(&b, ", %d of %d statements done",
			    e->applied_steps, e->steps_total);
		ferry_buf_adds(&b, ");");
	}
	ferry_buf_adds(&b,
	    " fix the cause, then 'ferry-agent resolve "
	    "--rolled-back NAME' to run it again, 'resolve "
	    "--applied NAME' if it was completed by hand, or "
	    "'apply --resume NAME' to continue a statement-by-"
	    "statement migration");
	rc = ferry_errf(err, FERRY_EFINDING, "%s", ferry_buf_str(&b));
	ferry_buf_release(&b);
	return rc;
}

int
ferry_engine_apply(struct ferry_db *db, const struct ferry_migrations *migs,
    const struct ferry_apply_opts *opts, int *applied, struct ferry_err *err)
{
	struct ferry_status *st = NULL;
	const struct ferry_status_entry *resume = NULL;
	char *table = NULL;
	size_t i;
	int rc = 0, start = 0;

	*applied = 0;
	table =
	    xasprintf("%s.\"_prisma_migrations\"", ferry_db_schema_ident(db));
	/* A dry run takes no lock. */
	rc = load_status(db, migs, opts->fetch,
	    opts->dry_run ? -1
	                  : (opts->lock_wait_ms > 0 ? opts->lock_wait_ms : 0),
	    &st, err);
	if (rc != 0)
		goto out;
	if (!st->has_table && st->other_tables > 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "the schema '%s' is not empty (%ld tables or views) but "
		    "has no _prisma_migrations table: baseline it first with "
		    "'ferry-agent baseline' (records the migrations that are "
		    "already there as applied without running them)",
		    ferry_db_schema(db), st->other_tables);
		goto out;
	}
	if (!st->has_table && !opts->dry_run) {
		rc = ferry_history_create(db, err);
		if (rc != 0)
			goto out;
	}
	for (i = 0; i < st->n; i++) {
		const struct ferry_status_entry *e = &st->e[i];
		if (e->state == FERRY_STATE_FAILED && opts->resume != NULL &&
		    strcmp(e->name, opts->resume) == 0)
			resume = e;
	}
	if (opts->resume != NULL && resume == NULL) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "nothing to resume: '%s' is not a failed migration in the "
		    "history",
		    opts->resume);
		goto out;
	}
	if (ferry_status_n(st, FERRY_STATE_FAILED) > (resume ? 1u : 0u)) {
		rc = refuse_failed(st, err);
		goto out;
	}
	for (i = 0; i < st->n; i++) {
		const struct ferry_status_entry *e = &st->e[i];
		if (e->state == FERRY_STATE_MODIFIED && !opts->allow_modified) {
			rc = ferry_errf(err, FERRY_EFINDING,
			    "migration '%s' was modified after it was applied "
			    "(checksum in the database %.12s..., migration.sql "
			    "%.12s...): restore the file, or pass "
			    "--allow-modified to apply the rest anyway",
			    e->name, e->db_checksum, e->local->checksum);
			goto out;
		}
		if (e->state == FERRY_STATE_MISSING)
			ferry_log_warn("migration recorded in the database is "
			               "missing from the migrations folder",
			    "migration", e->name);
	}
	if (resume != NULL) {
		if (resume->local == NULL) {
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "cannot resume '%s': it is not in the migrations "
			    "folder",
			    resume->name);
			goto out;
		}
		if (resume->steps_total == 0) {
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "cannot resume '%s': it ran in one transaction and "
			    "rolled back; use 'resolve --rolled-back %s' and "
			    "apply again",
			    resume->name, resume->name);
			goto out;
		}
		if (!ferry_migration_checksum_matches(resume->local,
		        resume->db_checksum)) {
			rc = ferry_errf(err, FERRY_EFINDING,
			    "cannot resume '%s': migration.sql changed since "
			    "it started; resolve it instead",
			    resume->name);
			goto out;
		}
		start = resume->applied_steps;
		if (resume->in_doubt_step >= 0) {
			if (opts->in_doubt == 0) {
				rc = ferry_errf(err, FERRY_EFINDING,
				    "statement %d of '%s' is in doubt: it was "
				    "sent but its outcome was not recorded "
				    "(the "
				    "process or connection died); check the "
				    "database, then resume with "
				    "--in-doubt=done if it took effect or "
				    "--in-doubt=redo to run it again",
				    resume->in_doubt_step + 1, resume->name);
				goto out;
			}
			if (opts->in_doubt == 1)
				start = resume->in_doubt_step + 1;
		}
		if (!opts->dry_run) {
			const struct ferry_history_row *row = NULL;
			size_t j;
			for (j = 0; j < ferry_history_count(st->hist); j++) {
				row = ferry_history_get(st->hist, j);
				if (strcmp(row->name, resume->name) == 0 &&
				    row_failed(row))
					break;
			}
			rc = apply_one(db, opts, table, resume->local, row->id,
			    start, err);
			if (rc != 0)
				goto out;
			(*applied)++;
		}
	}
	for (i = 0; i < st->n; i++) {
		const struct ferry_status_entry *e = &st->e[i];
		if (e->state != FERRY_STATE_PENDING)
			continue;
		if (opts->interrupted != NULL && *opts->interrupted) {
			rc = ferry_errf(err, FERRY_EOPER,
			    "interrupted before '%s'", e->name);
			goto out;
		}
		if (e->out_of_order)
			ferry_log_warn("applying a migration that sorts before "
			               "one already applied",
			    "migration", e->name);
		rc = apply_one(db, opts, table, e->local, NULL, 0, err);
		if (rc != 0)
			goto out;
		if (!opts->dry_run)
			(*applied)++;
	}
out:
	ferry_status_free(st);
	free(table);
	return rc;
}

/* ------------------------------------------------------------------ */
/* resolve and baseline                                                */

/* SQL inserting m as applied without running it, as Prisma's resolve. */
static char *
applied_row_sql(struct ferry_db *db, const char *table,
    const struct ferry_migration *m)
{
	char id[37], now[40];
	char *name = ferry_db_literal(db, m->name), *sql;

	ferry_uuid_v4(id);
	ferry_history_now(now);
	sql =
	    xasprintf("INSERT INTO %s (id, checksum, started_at, finished_at, "
	              "migration_name, logs, applied_steps_count) VALUES "
	              "('%s', '%s', '%s', '%s', %s, '', 0);",
	        table, id, m->checksum, now, now, name);
	free(name);
	return sql;
}

/* Locks, ensures the table, loads status. */
static int
resolve_prepare(struct ferry_db *db, const struct ferry_migrations *migs,
    long lock_wait_ms, struct ferry_status **st, struct ferry_err *err)
{
	int rc;

	rc = ferry_history_lock(db, lock_wait_ms, err);
	if (rc == 0)
		rc = ferry_history_create(db, err);
	if (rc == 0)
		rc = load_status(db, migs, NULL, -1, st, err);
	return rc;
}

int
ferry_engine_resolve_applied(struct ferry_db *db,
    const struct ferry_migrations *migs, const char *name, long lock_wait_ms,
    struct ferry_err *err)
{
	const struct ferry_migration *m = ferry_migrations_find(migs, name);
	struct ferry_status *st = NULL;
	char *table = NULL, *lit = NULL, *ins = NULL, *sql = NULL;
	size_t i;
	int rc;

	if (m == NULL)
		return ferry_errf(err, FERRY_EUSAGE,
		    "migration '%s' is not in the migrations folder", name);
	rc = resolve_prepare(db, migs, lock_wait_ms, &st, err);
	if (rc != 0)
		goto out;
	for (i = 0; i < st->n; i++) {
		if (strcmp(st->e[i].name, name) == 0 &&
		    (st->e[i].state == FERRY_STATE_APPLIED ||
		        st->e[i].state == FERRY_STATE_MODIFIED)) {
			rc = ferry_errf(err, FERRY_EFINDING,
			    "migration '%s' is already recorded as applied",
			    name);
			goto out;
		}
	}
	table =
	    xasprintf("%s.\"_prisma_migrations\"", ferry_db_schema_ident(db));
	lit = ferry_db_literal(db, name);
	ins = applied_row_sql(db, table, m);
	sql = xasprintf("BEGIN;"
	                "UPDATE %s SET rolled_back_at = clock_timestamp() "
	                "WHERE migration_name = %s AND finished_at IS NULL "
	                "AND rolled_back_at IS NULL;"
	                "%s COMMIT",
	    table, lit, ins);
	rc = ferry_db_exec(db, sql, "cannot record the migration", err);
out:
	free(sql);
	free(ins);
	free(lit);
	free(table);
	ferry_status_free(st);
	return rc;
}

int
ferry_engine_resolve_rolled_back(struct ferry_db *db, const char *name,
    long lock_wait_ms, struct ferry_err *err)
{
	struct ferry_status *st = NULL;
	char *table = NULL, *lit = NULL, *sql = NULL;
	size_t i, nrows = 0, nfailed = 0, nfinished = 0;
	int rc;

	rc = load_status(db, NULL, NULL, lock_wait_ms > 0 ? lock_wait_ms : 0,
	    &st, err);
	if (rc != 0)
		goto out;
	for (i = 0; st->has_table && i < ferry_history_count(st->hist); i++) {
		const struct ferry_history_row *r =
		    ferry_history_get(st->hist, i);
		if (strcmp(r->name, name) != 0)
			continue;
		nrows++;
		nfailed += row_failed(r);
		nfinished += row_live_finished(r);
	}
	if (nrows == 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "migration '%s' has no record in the history: nothing to "
		    "roll back",
		    name);
		goto out;
	}
	if (nfailed == 0 && nfinished == 0) {
		/* Only rolled-back attempts: nothing to do, as in Prisma. */
		ferry_log_info("migration is already marked rolled back",
		    "migration", name);
		goto out;
	}
	if (nfailed == 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "migration '%s' is not in a failed state (it is applied or "
		    "already rolled back); only failed migrations can be "
		    "marked rolled back",
		    name);
		goto out;
	}
	table =
	    xasprintf("%s.\"_prisma_migrations\"", ferry_db_schema_ident(db));
	lit = ferry_db_literal(db, name);
	sql = xasprintf("UPDATE %s SET rolled_back_at = clock_timestamp() "
	                "WHERE migration_name = %s AND finished_at IS NULL "
	                "AND rolled_back_at IS NULL",
	    table, lit);
	rc = ferry_db_exec(db, sql, "cannot mark the migration rolled back",
	    err);
out:
	free(sql);
	free(lit);
	free(table);
	ferry_status_free(st);
	return rc;
}

int
ferry_engine_baseline(struct ferry_db *db, const struct ferry_migrations *migs,
    const char *up_to, long lock_wait_ms, int *recorded, struct ferry_err *err)
{
	struct ferry_status *st = NULL;
	struct ferry_buf sql;
	char *table = NULL, *ins;
	size_t i;
	int rc;

	*recorded = 0;
	ferry_buf_init(&sql, (size_t)1 << 30);
	if (up_to != NULL && ferry_migrations_find(migs, up_to) == NULL)
		return ferry_errf(err, FERRY_EUSAGE,
		    "migration '%s' is not in the migrations folder", up_to);
	rc = resolve_prepare(db, migs, lock_wait_ms, &st, err);
	if (rc != 0)
		goto out;
	if (ferry_status_n(st, FERRY_STATE_FAILED) > 0) {
		rc = refuse_failed(st, err);
		goto out;
	}
	table =
	    xasprintf("%s.\"_prisma_migrations\"", ferry_db_schema_ident(db));
	ferry_buf_adds(&sql, "BEGIN;");
	for (i = 0; i < st->n; i++) {
		const struct ferry_status_entry *e = &st->e[i];
		if (e->state == FERRY_STATE_PENDING) {
			ins = applied_row_sql(db, table, e->local);
			ferry_buf_adds(&sql, ins);
			free(ins);
			(*recorded)++;
		}
		if (up_to != NULL && strcmp(e->name, up_to) == 0)
			break;
	}
	ferry_buf_adds(&sql, "COMMIT");
	rc = ferry_db_exec(db, ferry_buf_str(&sql),
	    "cannot record the baseline", err);
	if (rc != 0)
		*recorded = 0;
out:
	ferry_buf_release(&sql);
	free(table);
	ferry_status_free(st);
	return rc;
}
