/*
 * history.c -- the _prisma_migrations table and Ferry's progress table.
 */
#include "history.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "util.h"

struct ferry_history {
	struct ferry_history_row *rows;
	size_t n;
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

static char *
dup_or_null(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return xstrdup(PQgetvalue(res, row, col));
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

int
ferry_history_load(struct ferry_db *db, struct ferry_history **out, int *exists,
    long *other_tables, struct ferry_err *err)
{
	struct ferry_history *h = xcalloc(1, sizeof(*h));
	PGresult *res = NULL;
	char *table = NULL, *sql = NULL;
	const char *params[2];
	int has_progress, i, rc = 0;

	*out = NULL;
	table =
	    xasprintf("%s.\"_prisma_migrations\"", ferry_db_schema_ident(db));
	params[0] = table;
	params[1] = ferry_db_schema(db);
	res = ferry_db_query(db,
	    "SELECT to_regclass($1) IS NOT NULL,"
	    " to_regclass('ferry.statement_progress') IS NOT NULL,"
	    " (SELECT count(*) FROM pg_catalog.pg_class c"
	    "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	    "  WHERE n.nspname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
	    "  AND c.relname <> '_prisma_migrations')",
	    2, params, "cannot inspect the database", err);
	if (res == NULL) {
		rc = err->code;
		goto out;
	}
	*exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	has_progress = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	*other_tables = strtol(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);
	res = NULL;
	if (!*exists)
		goto done;
	sql = xasprintf(
	    "SELECT m.id, m.checksum, m.migration_name, "
	    "m.logs, " TS("m.started_at") ", " TS("m.finished_at") ", " TS(
	        "m.rolled_back_at") ", m.applied_steps_count, %s "
	                            "FROM %s m %s ORDER BY "
	                            "m.started_at ASC",
	    has_progress ? "p.state, p.step, p.nsteps" : "NULL, NULL, NULL",
	    table,
	    has_progress ? "LEFT JOIN ferry.statement_progress p "
	                   "ON p.migration_id = m.id"
	                 : "");
	res = ferry_db_query(db, sql, 0, NULL,
	    "cannot read the migration history", err);
	if (res == NULL) {
		rc = err->code;
		goto out;
	}
	h->n = (size_t)PQntuples(res);
	h->rows = xcalloc(h->n ? h->n : 1, sizeof(*h->rows));
	for (i = 0; i < PQntuples(res); i++) {
		struct ferry_history_row *r = &h->rows[i];
		r->id = dup_or_null(res, i, 0);
		r->checksum = dup_or_null(res, i, 1);
		r->name = dup_or_null(res, i, 2);
		r->logs = dup_or_null(res, i, 3);
		r->started_at = dup_or_null(res, i, 4);
		r->finished_at = dup_or_null(res, i, 5);
		r->rolled_back_at = dup_or_null(res, i, 6);
		r->applied_steps_count =
		    (int)strtol(PQgetvalue(res, i, 7), NULL, 10);
		r->progress = parse_progress(
		    PQgetisnull(res, i, 8) ? NULL : PQgetvalue(res, i, 8));
		r->progress_step = (int)strtol(PQgetvalue(res, i, 9), NULL, 10);
		r->progress_nsteps =
		    (int)strtol(PQgetvalue(res, i, 10), NULL, 10);
	}
done:
	*out = h;
	h = NULL;
out:
	PQclear(res);
	free(sql);
	free(table);
	ferry_history_free(h);
	return rc;
}

void
ferry_history_free(struct ferry_history *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->n; i++) {
		struct ferry_history_row *r = &h->rows[i];
		free(r->id);
		free(r->checksum);
		free(r->name);
		free(r->logs);
		free(r->started_at);
		free(r->finished_at);
		free(r->rolled_back_at);
	}
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

int
ferry_history_lock(struct ferry_db *db, long wait_ms, struct ferry_err *err)
{
	PGresult *res;
	char *sql;
	const char *state;
	char holder[512];
	int rc = 0;

	/*
	 * lock_timeout bounds the wait for an advisory lock too; set_config
	 * with is_local keeps it to this implicit transaction.
	 */
	sql = xasprintf("SELECT set_config('lock_timeout', '%ldms', true);"
	                "SELECT pg_advisory_lock(%d)",
	    wait_ms > 0 ? wait_ms : 1, FERRY_ADVISORY_LOCK_KEY);
	if (!PQsendQuery(ferry_db_conn(db), sql)) {
		rc = ferry_db_err(db, NULL, FERRY_EOPER,
		    "cannot take the migration lock", err);
		goto out;
	}
	while ((res = PQgetResult(ferry_db_conn(db))) != NULL) {
		if (rc == 0 && PQresultStatus(res) != PGRES_TUPLES_OK) {
			state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			if (state != NULL && strcmp(state, "55P03") == 0)
				rc = FERRY_EOPER;
			else
				rc = ferry_db_err(db, res, FERRY_EOPER,
				    "cannot take the migration lock", err);
		}
		PQclear(res);
	}
	if (rc != 0 && err->code == 0) {
		describe_lock_holder(db, holder, sizeof(holder));
		ferry_errf(err, FERRY_EOPER,
		    "timed out after %ld ms waiting for the migration lock "
		    "(advisory lock %d, shared with Prisma): held by %s",
		    wait_ms, FERRY_ADVISORY_LOCK_KEY, holder);
	}
out:
	free(sql);
	return rc;
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
