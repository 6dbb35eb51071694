/*
 * history.c -- the _prisma_migrations table and Ferry's progress table.
 */
#include "history.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "util.h"

struct ferry_history {
	struct ferry_history_row *rows;
	size_t n;
	PGresult *res; /* the rows' strings point into it */
	char *ts;      /* their converted timestamps, TS_MAX bytes each */
};

/* Prisma's DDL, column for column. */
static const char create_table_fmt[] =
    "BEGIN; SET LOCAL client_min_messages = warning;\n"
    "%s"
    "CREATE TABLE IF NOT EXISTS %s.\"_prisma_migrations\" (\n"
    "    \"id\"                    VARCHAR(36) PRIMARY KEY NOT NULL,\n"
    "    \"checksum\"              VARCHAR(64) NOT NULL,\n"
    "    \"finished_at\"           TIMESTAMPTZ,\n"
    "    \"migration_name\"        VARCHAR(255) NOT NULL,\n"
    "    \"logs\"                  TEXT,\n"
    "    \"rolled_back_at\"        TIMESTAMPTZ,\n"
    "    \"started_at\"            TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    \"applied_steps_count\"   INTEGER NOT NULL DEFAULT 0\n"
    ");\nCOMMIT;";

static const char create_progress[] =
    "BEGIN; SET LOCAL client_min_messages = warning;\n"
    "CREATE SCHEMA IF NOT EXISTS ferry;\n"
    "CREATE TABLE IF NOT EXISTS ferry.statement_progress (\n"
    "    migration_id   VARCHAR(36) PRIMARY KEY,\n"
    "    migration_name VARCHAR(255) NOT NULL,\n"
    "    checksum       VARCHAR(64) NOT NULL,\n"
    "    nsteps         INTEGER NOT NULL,\n"
    "    step           INTEGER NOT NULL,\n"
    "    state          TEXT NOT NULL\n"
    "        CHECK (state IN ('started', 'done', 'failed')),\n"
    "    updated_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()\n"
    ");\nCOMMIT;";

#define TS(col)                                \
	"to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

int
ferry_history_create(struct ferry_db *db, struct ferry_err *err)
{
	const char *s = ferry_db_schema_ident(db);
	const char *params[1] = { ferry_db_schema(db) };
	char *create_schema = NULL, *sql;
	PGresult *res;
	int rc;

	/*
	 * CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when
	 * the schema exists: only ask for it when the schema is missing.
	 */
	res = ferry_db_query(db,
	    "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", 1,
	    params, "cannot inspect the database", err);
	if (res == NULL)
		return err->code;
	if (PQntuples(res) == 0)
		create_schema = xasprintf("CREATE SCHEMA %s;\n", s);
	PQclear(res);
	sql =
	    xasprintf(create_table_fmt, create_schema ? create_schema : "", s);
	rc = ferry_db_exec(db, sql, "cannot create the history table", err);
	free(sql);
	free(create_schema);
	return rc;
}

int
ferry_history_create_progress(struct ferry_db *db, struct ferry_err *err)
{
	return ferry_db_exec(db, create_progress,
	    "cannot create the ferry.statement_progress table", err);
}

/* A value of res, which the history keeps, or NULL. */
static char *
ptr_or_null(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

static enum ferry_progress
parse_progress(const char *s)
{
	if (s == NULL)
		return FERRY_PROGRESS_NONE;
	if (strcmp(s, "started") == 0)
		return FERRY_PROGRESS_STARTED;
	if (strcmp(s, "done") == 0)
		return FERRY_PROGRESS_DONE;
	return FERRY_PROGRESS_FAILED;
}

/* Size of "YYYY-MM-DDTHH:MM:SS.ffffffZ" with a year of up to 9 digits. */
#define TS_MAX 40

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (Hinnant). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Reads 2 digits at p into *v, then expects sep (or '\0' for none). */
static int
two_digits(const char *p, char sep, int *v)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' ||
	    (sep != '\0' && p[2] != sep))
		return -1;
	*v = (p[0] - '0') * 10 + (p[1] - '0');
	return 0;
}

/*
 * Turns a timestamp as PostgreSQL prints it with DateStyle ISO
 * ("2024-01-02 03:04:05.5": fraction digits only up to the last non-zero
 * one, " BC" before year 1) into what to_char(ts, 'YYYY-MM-DD"T"HH24:MI:
 * SS.US"Z"') prints, the form Ferry has always shown
 * ("2024-01-02T03:04:05.500000Z"), and sets *key to its microseconds
 * since 1970 for sorting. Returns 0, 1 for +/-infinity (to_char prints
 * NULL for those; *key is then the extreme), or -1 for anything else.
 */
static int
iso_to_rfc3339(const char *in, char out[TS_MAX], int64_t *key)
{
	const char *p = in;
	char *o = out;
	int64_t y = 0;
	int mo, d, h, mi, s, frac = 0, i;
	size_t ylen;

	if (strcmp(in, "infinity") == 0 || strcmp(in, "-infinity") == 0) {
		*key = in[0] == '-' ? INT64_MIN : INT64_MAX;
		return 1;
	}
	while (*p >= '0' && *p <= '9' && p - in < 9)
		y = y * 10 + (*p++ - '0');
	ylen = (size_t)(p - in);
	if (ylen < 4 || *p != '-' || two_digits(p + 1, '-', &mo) != 0 ||
	    two_digits(p + 4, ' ', &d) != 0 ||
	    two_digits(p + 7, ':', &h) != 0 ||
	    two_digits(p + 10, ':', &mi) != 0 ||
	    two_digits(p + 13, '\0', &s) != 0)
		return -1;
	/* "YYYY-MM-DD" "T" "HH:MM:SS" as they are. */
	memcpy(o, in, ylen + 6);
	o += ylen + 6;
	*o++ = 'T';
	memcpy(o, p + 7, 8);
	o += 8;
	*o++ = '.';
	p += 15;
	if (*p == '.')
		p++;
	for (i = 0; i < 6; i++) {
		*o = '0';
		if (*p >= '0' && *p <= '9')
			*o = *p++;
		frac = frac * 10 + (*o++ - '0');
	}
	*o++ = 'Z';
	*o = '\0';
	if (strcmp(p, " BC") == 0)
		y = 1 - y; /* 1 BC is year 0 */
	else if (*p != '\0')
		return -1;
	*key = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + s;
	*key = *key * 1000000 + frac;
	return 0;
}

/* A row's place in history order: started_at, then as the server sent. */
struct sort_key {
	int64_t key;
	size_t i;
};

static int
cmp_started(const void *a, const void *b)
{
	const struct sort_key *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

void
ferry_history_free(struct ferry_history *h)
{
	if (h == NULL)
		return;
	PQclear(h->res);
	free(h->ts);
	free(h->rows);
	free(h);
}

size_t
ferry_history_count(const struct ferry_history *h)
{
	return h->n;
}

const struct ferry_history_row *
ferry_history_get(const struct ferry_history *h, size_t i)
{
	return i < h->n ? &h->rows[i] : NULL;
}

/* Names whoever holds the advisory lock, for the timeout message. */
static void
describe_lock_holder(struct ferry_db *db, char *out, size_t outsz)
{
	PGresult *res;
	struct ferry_err ignored;
	char key[32];
	const char *params[1];

	snprintf(key, sizeof(key), "%d", FERRY_ADVISORY_LOCK_KEY);
	params[0] = key;
	ferry_err_clear(&ignored);
	res = ferry_db_query(db,
	    "SELECT a.pid, coalesce(a.application_name, ''),"
	    " coalesce(host(a.client_addr), 'local socket'),"
	    " " TS("a.backend_start") ", coalesce(a.state, '')"
	                              " FROM pg_catalog.pg_locks l"
	                              " JOIN pg_catalog.pg_stat_activity a ON "
	                              "a.pid = l.pid"
	                              " WHERE l.locktype = 'advisory' AND "
	                              "l.granted"
	                              " AND l.classid = 0 AND l.objid = "
	                              "$1::bigint::oid"
	                              " AND l.objsubid = 1"
	                              " AND l.database = (SELECT oid FROM "
	                              "pg_catalog.pg_database"
	                              "  WHERE datname = current_database())",
	    1, params, "lock holder", &ignored);
	if (res == NULL || PQntuples(res) == 0) {
		snprintf(out, outsz, "a backend that has since released it");
	} else {
		snprintf(out, outsz,
		    "backend pid %s (application_name '%s', client %s, "
		    "connected since %s, %s)",
		    PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
		    PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
		    PQgetvalue(res, 0, 4));
	}
	PQclear(res);
}

/* Explains a lock timeout, naming the holder (a query of its own). */
static int
lock_timed_out(struct ferry_db *db, long wait_ms, struct ferry_err *err)
{
	char holder[512];

	describe_lock_holder(db, holder, sizeof(holder));
	return ferry_errf(err, FERRY_EOPER,
	    "timed out after %ld ms waiting for the migration lock "
	    "(advisory lock %d, shared with Prisma): held by %s",
	    wait_ms, FERRY_ADVISORY_LOCK_KEY, holder);
}

/* ------------------------------------------------------------------ */
/* Reading the history a step at a time                                */

/* What a pipeline returns, in order. */
enum item {
	ITEM_RESULT, /* a statement's result */
	ITEM_END,    /* the NULL after it */
	ITEM_SYNC,   /* a Sync */
};

#define MAX_ITEMS 16

enum fetch_state {
	FETCH_CONNECTING, /* the connection is not up yet */
	FETCH_PIPELINE,   /* setup, lock and probe sent, answers coming */
	FETCH_ROWS,       /* the rows query sent, answers coming */
	FETCH_DONE,       /* all answers read, or a failure */
};

struct ferry_history_fetch {
	struct ferry_db *db;
	long lock_wait_ms; /* < 0: no lock */
	int load;          /* probe and read the rows (else lock only) */
	char *table;
	enum fetch_state state;
	struct ferry_err err; /* the failure that ended it, if any */
	int lock_timed_out;
	enum item items[MAX_ITEMS];
	PGresult *res[MAX_ITEMS];
	int nitems, next;
	int setup_at, lock_at, probe_at; /* their first results' items, -1 */
	int nsetup;                      /* setup statements sent */
	int exists, has_progress;
	PGresult *rows[2]; /* set_config, then the rows */
	int nrows;
};

struct ferry_history_fetch *
ferry_history_fetch_new(struct ferry_db *db, long lock_wait_ms, int load)
{
	struct ferry_history_fetch *f = xcalloc(1, sizeof(*f));

	f->db = db;
	f->lock_wait_ms = lock_wait_ms;
	f->load = load;
	f->state = FETCH_CONNECTING;
	f->setup_at = f->lock_at = f->probe_at = -1;
	ferry_err_clear(&f->err);
	return f;
}

void
ferry_history_fetch_free(struct ferry_history_fetch *f)
{
	int i;

	if (f == NULL)
		return;
	for (i = 0; i < f->nitems; i++)
		PQclear(f->res[i]);
	PQclear(f->rows[0]);
	PQclear(f->rows[1]);
	free(f->table);
	free(f);
}

/* Ends the fetch with the connection's error. */
static void
fetch_failed(struct ferry_history_fetch *f, const PGresult *res,
    const char *what)
{
	ferry_db_err(f->db, res, FERRY_EOPER, what, &f->err);
	f->state = FETCH_DONE;
}

/* Records that a statement's result, then its NULL, are coming. */
static int
expect_statement(struct ferry_history_fetch *f)
{
	int at = f->nitems;

	assert(f->nitems + 2 <= MAX_ITEMS);
	f->items[f->nitems++] = ITEM_RESULT;
	f->items[f->nitems++] = ITEM_END;
	return at;
}

static void
expect_sync(struct ferry_history_fetch *f)
{
	assert(f->nitems < MAX_ITEMS);
	f->items[f->nitems++] = ITEM_SYNC;
}

/*
 * Sends, in one pipeline: the session setup still pending from
 * ferry_db_finish(); the lock; the probe. Each in a transaction of its own
 * (its own Sync): the setup stays whatever fails later, lock_timeout is
 * local to the lock's, and the probe runs after the lock is granted.
 */
static void
send_pipeline(struct ferry_history_fetch *f)
{
	PGconn *conn;
	char wait[32], key[32];
	const char *wait_params[1] = { wait }, *key_params[1] = { key };
	const char *table_params[1];
	int setup = 0;

	f->table = xasprintf("%s.\"_prisma_migrations\"",
	    ferry_db_schema_ident(f->db));
	table_params[0] = f->table;
	snprintf(wait, sizeof(wait), "%ldms",
	    f->lock_wait_ms > 0 ? f->lock_wait_ms : 1);
	snprintf(key, sizeof(key), "%d", FERRY_ADVISORY_LOCK_KEY);
	if (ferry_db_pipeline_begin(f->db, &setup) != 0)
		goto failed;
	conn = ferry_db_conn(f->db);
	if (setup > 0) {
		f->setup_at = expect_statement(f);
		f->nsetup = setup;
		while (--setup > 0)
			expect_statement(f);
		expect_sync(f);
	}
	/* lock_timeout bounds the wait for an advisory lock too. */
	if (f->lock_wait_ms >= 0) {
		if (!PQsendQueryParams(conn,
		        "SELECT pg_catalog.set_config('lock_timeout', $1, "
		        "true)",
		        1, NULL, wait_params, NULL, NULL, 0) ||
		    !PQsendQueryParams(conn,
		        "SELECT pg_catalog.pg_advisory_lock($1::bigint)", 1,
		        NULL, key_params, NULL, NULL, 0) ||
		    !PQpipelineSync(conn))
			goto failed;
		f->lock_at = expect_statement(f);
		expect_statement(f);
		expect_sync(f);
	}
	if (f->load) {
		if (!PQsendQueryParams(conn,
		        "SELECT pg_catalog.to_regclass($1) IS NOT NULL,"
		        " pg_catalog.to_regclass('ferry.statement_progress')"
		        " IS NOT NULL",
		        1, NULL, table_params, NULL, NULL, 0) ||
		    !PQpipelineSync(conn))
			goto failed;
		f->probe_at = expect_statement(f);
		expect_sync(f);
	}
	f->state = FETCH_PIPELINE;
	return;
failed:
	fetch_failed(f, NULL, "cannot query the database");
}

/* The first failed result of two, or NULL if both succeeded. */
static const PGresult *
first_failure(const PGresult *a, const PGresult *b)
{
	if (a == NULL || PQresultStatus(a) != PGRES_TUPLES_OK)
		return a;
	if (b == NULL || PQresultStatus(b) != PGRES_TUPLES_OK)
		return b;
	return NULL;
}

/*
 * Rows with DateStyle ISO (for this implicit transaction only) and their
 * timestamps as plain text, converted and sorted here: to_char and ORDER
 * BY cost the server far more than they cost us.
 */
static void
send_rows(struct ferry_history_fetch *f)
{
	char *sql = xasprintf(
	    "SELECT pg_catalog.set_config('DateStyle', 'ISO, YMD', true);"
	    "SELECT m.id, m.checksum, m.migration_name, m.logs,"
	    " m.started_at AT TIME ZONE 'UTC',"
	    " m.finished_at AT TIME ZONE 'UTC',"
	    " m.rolled_back_at AT TIME ZONE 'UTC',"
	    " m.applied_steps_count, %s FROM %s m %s",
	    f->has_progress ? "p.state, p.step, p.nsteps" : "NULL, NULL, NULL",
	    f->table,
	    f->has_progress ? "LEFT JOIN ferry.statement_progress p "
	                      "ON p.migration_id = m.id"
	                    : "");

	if (PQsendQuery(ferry_db_conn(f->db), sql))
		f->state = FETCH_ROWS;
	else
		fetch_failed(f, NULL, "cannot read the migration history");
	free(sql);
}

/* Judges the pipeline's answers, once all are in. */
static void
pipeline_done(struct ferry_history_fetch *f)
{
	const PGresult *cause, *probe;
	const char *state;
	int i;

	f->state = FETCH_DONE;
	for (i = 0; i < f->nsetup; i++)
		if (ferry_db_setup_check(f->db, f->res[f->setup_at + 2 * i],
		        &f->err) != 0)
			return;
	if (f->lock_at >= 0) {
		cause =
		    first_failure(f->res[f->lock_at], f->res[f->lock_at + 2]);
		state = cause != NULL
		    ? PQresultErrorField(cause, PG_DIAG_SQLSTATE)
		    : NULL;
		if (state != NULL && strcmp(state, "55P03") == 0) {
			/* Explained by finish: it takes a query. */
			f->lock_timed_out = 1;
			return;
		}
		if (cause != NULL) {
			fetch_failed(f, cause,
			    "cannot take the migration lock");
			return;
		}
	}
	if (!f->load)
		return;
	probe = f->res[f->probe_at];
	if (first_failure(probe, probe) != NULL) {
		fetch_failed(f, probe, "cannot inspect the database");
		return;
	}
	f->exists = strcmp(PQgetvalue(probe, 0, 0), "t") == 0;
	f->has_progress = strcmp(PQgetvalue(probe, 0, 1), "t") == 0;
	if (f->exists)
		send_rows(f);
}

/* Reads the pipeline's answers that have arrived, in order. */
static void
read_pipeline(struct ferry_history_fetch *f)
{
	PGconn *conn = ferry_db_conn(f->db);
	PGresult *r;
	int ok;

	while (f->next < f->nitems) {
		if (PQisBusy(conn))
			return;
		r = PQgetResult(conn);
		switch (f->items[f->next]) {
		case ITEM_RESULT:
			ok = r != NULL &&
			    PQresultStatus(r) != PGRES_PIPELINE_SYNC;
			if (ok)
				f->res[f->next] = r;
			break;
		case ITEM_END:
			ok = r == NULL;
			break;
		default:
			ok = r != NULL &&
			    PQresultStatus(r) == PGRES_PIPELINE_SYNC;
			PQclear(r);
			break;
		}
		if (!ok) {
			/* Out of step: the connection failed. */
			if (f->items[f->next] != ITEM_SYNC)
				PQclear(r);
			fetch_failed(f, NULL, "cannot query the database");
			return;
		}
		f->next++;
	}
	if (!PQexitPipelineMode(conn)) {
		fetch_failed(f, NULL, "cannot query the database");
		return;
	}
	pipeline_done(f);
}

/* Reads the rows query's answers that have arrived. */
static void
read_rows(struct ferry_history_fetch *f)
{
	PGconn *conn = ferry_db_conn(f->db);
	PGresult *r;

	while (!PQisBusy(conn)) {
		r = PQgetResult(conn);
		if (r == NULL) {
			f->state = FETCH_DONE;
			return;
		}
		if (f->nrows < 2)
			f->rows[f->nrows++] = r;
		else
			PQclear(r);
	}
}

void
ferry_history_fetch_progress(struct ferry_history_fetch *f)
{
	if (f->state == FETCH_CONNECTING) {
		ferry_db_progress(f->db);
		if (ferry_db_connecting(f->db))
			return;
		/* Up (or failed, which finish reports): no waiting here. */
		if (ferry_db_finish(f->db, &f->err) != 0) {
			f->state = FETCH_DONE;
			return;
		}
		send_pipeline(f);
	}
	if (f->state != FETCH_PIPELINE && f->state != FETCH_ROWS)
		return;
	if (!PQconsumeInput(ferry_db_conn(f->db))) {
		fetch_failed(f, NULL, "cannot query the database");
		return;
	}
	if (f->state == FETCH_PIPELINE)
		read_pipeline(f);
	if (f->state == FETCH_ROWS)
		read_rows(f);
}

/* Builds the history from the rows query's result, taking it over. */
static int
history_from_rows(struct ferry_history_fetch *f, struct ferry_history *h,
    struct ferry_err *err)
{
	struct ferry_history_row *rows = NULL;
	struct sort_key *keys = NULL;
	PGresult *res = f->rows[1];
	const char *v;
	char *ts;
	int64_t key, unused;
	size_t n, i;
	int col, t, rc = 0;

	n = (size_t)PQntuples(res);
	rows = xcalloc(n ? n : 1, sizeof(*rows));
	keys = xcalloc(n ? n : 1, sizeof(*keys));
	h->ts = xmalloc((n ? n : 1) * 3 * TS_MAX);
	for (i = 0; i < n; i++) {
		struct ferry_history_row *row = &rows[i];
		char **tsp[3] = { &row->started_at, &row->finished_at,
			&row->rolled_back_at };

		row->id = ptr_or_null(res, (int)i, 0);
		row->checksum = ptr_or_null(res, (int)i, 1);
		row->name = ptr_or_null(res, (int)i, 2);
		row->logs = ptr_or_null(res, (int)i, 3);
		key = 0;
		for (col = 4; col < 7; col++) {
			if (PQgetisnull(res, (int)i, col))
				continue;
			v = PQgetvalue(res, (int)i, col);
			ts = h->ts + (i * 3 + (size_t)(col - 4)) * TS_MAX;
			t = iso_to_rfc3339(v, ts, col == 4 ? &key : &unused);
			if (t < 0) {
				rc = ferry_errf(err, FERRY_EOPER,
				    "cannot read the migration history: "
				    "unexpected timestamp '%.40s'",
				    v);
				goto out;
			}
			if (t == 0)
				*tsp[col - 4] = ts;
		}
		keys[i].key = key;
		keys[i].i = i;
		row->applied_steps_count =
		    (int)strtol(PQgetvalue(res, (int)i, 7), NULL, 10);
		row->progress = parse_progress(ptr_or_null(res, (int)i, 8));
		row->progress_step =
		    (int)strtol(PQgetvalue(res, (int)i, 9), NULL, 10);
		row->progress_nsteps =
		    (int)strtol(PQgetvalue(res, (int)i, 10), NULL, 10);
	}
	/* started_at order; rows that tie keep the server's order. */
	qsort(keys, n, sizeof(*keys), cmp_started);
	h->rows = xcalloc(n ? n : 1, sizeof(*h->rows));
	for (i = 0; i < n; i++)
		h->rows[i] = rows[keys[i].i];
	h->n = n;
	h->res = res;
	f->rows[1] = NULL;
out:
	free(rows);
	free(keys);
	return rc;
}

/* Counts the other tables and views of the schema (for "baseline"). */
static int
count_other_tables(struct ferry_db *db, long *count, struct ferry_err *err)
{
	const char *params[1] = { ferry_db_schema(db) };
	PGresult *res;

	res = ferry_db_query(db,
	    "SELECT count(*) FROM pg_catalog.pg_class c"
	    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	    " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
	    " AND c.relname <> '_prisma_migrations'",
	    1, params, "cannot inspect the database", err);
	if (res == NULL)
		return err->code;
	*count = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int
ferry_history_fetch_finish(struct ferry_history_fetch *f,
    struct ferry_history **out, int *exists, long *other_tables,
    struct ferry_err *err)
{
	struct ferry_history *h = NULL;
	struct pollfd pfd;
	int rc = 0;

	if (out != NULL) {
		*out = NULL;
		*exists = 0;
		*other_tables = 0;
	}
	/* Wait for the connection, and send what waited for it. */
	if (f->state == FETCH_CONNECTING) {
		rc = ferry_db_finish(f->db, err);
		if (rc != 0)
			return rc;
	}
	ferry_history_fetch_progress(f);
	while (f->state != FETCH_DONE) {
		/* Everything is sent: wait for the answers. */
		pfd.fd = PQsocket(ferry_db_conn(f->db));
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd >= 0 && poll(&pfd, 1, -1) < 0 && errno != EINTR) {
			ferry_errf_errno(&f->err, FERRY_EOPER, errno,
			    "cannot query the database");
			break;
		}
		ferry_history_fetch_progress(f);
	}
	if (f->err.code != 0)
		return ferry_errf(err, f->err.code, "%s", f->err.msg);
	if (f->lock_timed_out)
		return lock_timed_out(f->db, f->lock_wait_ms, err);
	if (!f->load)
		return 0;
	h = xcalloc(1, sizeof(*h));
	if (!f->exists) {
		rc = count_other_tables(f->db, other_tables, err);
	} else {
		const PGresult *bad = first_failure(f->rows[0], f->rows[1]);
		if (bad != NULL || f->nrows != 2)
			rc = ferry_db_err(f->db, bad, FERRY_EOPER,
			    "cannot read the migration history", err);
		else
			rc = history_from_rows(f, h, err);
	}
	if (rc != 0) {
		ferry_history_free(h);
		return rc;
	}
	*exists = f->exists;
	*out = h;
	return 0;
}

int
ferry_history_lock_load(struct ferry_db *db, long lock_wait_ms,
    struct ferry_history **out, int *exists, long *other_tables,
    struct ferry_err *err)
{
	struct ferry_history_fetch *f =
	    ferry_history_fetch_new(db, lock_wait_ms, 1);
	int rc = ferry_history_fetch_finish(f, out, exists, other_tables, err);

	ferry_history_fetch_free(f);
	return rc;
}

int
ferry_history_load(struct ferry_db *db, struct ferry_history **out, int *exists,
    long *other_tables, struct ferry_err *err)
{
	return ferry_history_lock_load(db, -1, out, exists, other_tables, err);
}

int
ferry_history_lock(struct ferry_db *db, long wait_ms, struct ferry_err *err)
{
	struct ferry_history_fetch *f =
	    ferry_history_fetch_new(db, wait_ms < 0 ? 0 : wait_ms, 0);
	int rc = ferry_history_fetch_finish(f, NULL, NULL, NULL, err);

	ferry_history_fetch_free(f);
	return rc;
}

int
ferry_history_unlock(struct ferry_db *db, struct ferry_err *err)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%d)",
	    FERRY_ADVISORY_LOCK_KEY);
	return ferry_db_exec(db, sql, "cannot release the migration lock", err);
}

void
ferry_uuid_v4(char out[37])
{
	uint8_t b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
	    b[11], b[12], b[13], b[14], b[15]);
}

void
ferry_history_now(char out[40])
{
	int64_t us = ferry_wall_us();
	char head[24];
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%06dZ", head, (int)(us % 1000000));
}

void
ferry_history_blockers(struct ferry_db *db, char *out, size_t outsz)
{
	struct ferry_err ignored;
	struct ferry_buf b;
	PGresult *res;
	int i;

	ferry_err_clear(&ignored);
	out[0] = '\0';
	res = ferry_db_query(db,
	    "SELECT a.pid, coalesce(a.application_name, ''),"
	    " coalesce(host(a.client_addr), 'local socket'),"
	    " coalesce(a.state, ''), " TS(
	        "a.xact_start") ","
	                        " coalesce((SELECT string_agg(DISTINCT "
	                        "n.nspname || '.' ||"
	                        "   c.relname || ' ' || l.mode, ', ')"
	                        "  FROM pg_catalog.pg_locks l"
	                        "  JOIN pg_catalog.pg_class c ON c.oid = "
	                        "l.relation"
	                        "  JOIN pg_catalog.pg_namespace n ON n.oid = "
	                        "c.relnamespace"
	                        "  WHERE l.pid = a.pid AND l.granted"
	                        "  AND n.nspname NOT IN ('pg_catalog', "
	                        "'information_schema')"
	                        "  AND n.nspname NOT LIKE 'pg_toast%'), 'no "
	                        "table locks')"
	                        " FROM pg_catalog.pg_stat_activity a"
	                        " WHERE a.pid <> pg_backend_pid() AND "
	                        "a.xact_start IS NOT NULL"
	                        " AND a.backend_type = 'client backend'"
	                        " AND a.datname = current_database()"
	                        " ORDER BY a.xact_start LIMIT 3",
	    0, NULL, "blockers", &ignored);
	if (res == NULL)
		return;
	ferry_buf_init(&b, outsz > 0 ? outsz - 1 : 0);
	for (i = 0; i < PQntuples(res); i++)
		ferry_buf_addf(&b,
		    "%spid %s (application_name '%s', client %s, %s, "
		    "transaction since %s, holds %s)",
		    i ? "; " : "", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		    PQgetvalue(res, i, 4), PQgetvalue(res, i, 5));
	ferry_strlcpy(out, ferry_buf_str(&b), outsz);
	ferry_buf_release(&b);
	PQclear(res);
}
