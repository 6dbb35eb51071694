/*
 * db.c -- a libpq connection as Ferry uses it.
 */
#include "db.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "log.h"
#include "util.h"

struct ferry_db {
	PGconn *conn;
	PostgresPollingStatusType poll_state; /* while connecting */
	PGcancel *cancel;
	char *schema;
	char *schema_ident;
	char *display;
	int setup_pending; /* session setup not sent yet (ferry_db_finish) */
};

/* Parameters of Prisma's URLs that libpq does not know. */
static const char *const prisma_only[] = {
	"connection_limit",
	"pool_timeout",
	"pgbouncer",
	"socket_timeout",
	"statement_cache_size",
	"sslidentity",
	"sslaccept",
	"max_connections",
	"max_idle_connection_lifetime",
	"single_use_connections",
};

const char *
ferry_db_pick_url(const char *url)
{
	const char *s;

	if (url != NULL)
		return url;
	s = getenv("DIRECT_URL");
	if (s != NULL && *s != '\0')
		return s;
	s = getenv("DATABASE_URL");
	if (s != NULL && *s != '\0')
		return s;
	return "";
}

static int
is_uri(const char *url)
{
	return ferry_starts_with(url, "postgresql://") ||
	    ferry_starts_with(url, "postgres://");
}

/* Decodes %XX escapes of a URL component into a new string. */
static char *
percent_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n) {
			char hex[3] = { s[i + 1], s[i + 2], '\0' };
			char *end = NULL;
			long v = strtol(hex, &end, 16);
			if (end == hex + 2) {
				*o++ = (char)v;
				i += 2;
				continue;
			}
		}
		*o++ = s[i];
	}
	*o = '\0';
	return out;
}

static int
is_libpq_keyword(const char *key)
{
	PQconninfoOption *opts = PQconndefaults(), *o;
	int found = 0;

	for (o = opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, key) == 0)
			found = 1;
	PQconninfoFree(opts);
	return found;
}

/*
 * Rewrites a URI for libpq: takes out "schema" (into *schema) and
 * parameters libpq does not know (logged). Returns a new string.
 */
static char *
translate_uri(const char *url, char **schema)
{
	const char *q = strchr(url, '?'), *p, *amp, *eq;
	struct ferry_buf out;
	char sep = '?';

	*schema = NULL;
	if (q == NULL)
		return xstrdup(url);
	ferry_buf_init(&out, 1 << 20);
	ferry_buf_add(&out, url, (size_t)(q - url));
	for (p = q + 1; *p != '\0'; p = *amp ? amp + 1 : amp) {
		char *key;

		amp = strchr(p, '&');
		if (amp == NULL)
			amp = p + strlen(p);
		if (amp == p)
			continue;
		eq = memchr(p, '=', (size_t)(amp - p));
		key = percent_decode(p, (size_t)((eq ? eq : amp) - p));
		if (strcmp(key, "schema") == 0 && eq != NULL) {
			free(*schema);
			*schema =
			    percent_decode(eq + 1, (size_t)(amp - eq - 1));
		} else if (is_libpq_keyword(key)) {
			ferry_buf_add(&out, &sep, 1);
			ferry_buf_add(&out, p, (size_t)(amp - p));
			sep = '&';
		} else {
			size_t i;
			int known = 0;
			for (i = 0; i < FERRY_NELEM(prisma_only); i++)
				known |= strcmp(key, prisma_only[i]) == 0;
			ferry_log_info(known
			        ? "ignoring a Prisma-only URL "
			          "parameter"
			        : "ignoring an unknown URL parameter",
			    "parameter", key);
		}
		free(key);
	}
	return ferry_buf_detach(&out, NULL);
}

/* The URL with any password replaced by "****". */
static char *
mask_password(const char *url)
{
	const char *scheme_end, *at, *colon, *slash;

	if (!is_uri(url))
		return xstrdup(*url ? url : "(PG* environment)");
	scheme_end = strstr(url, "://") + 3;
	slash = strpbrk(scheme_end, "/?");
	at = strchr(scheme_end, '@');
	if (at == NULL || (slash != NULL && at > slash))
		return xstrdup(url);
	colon = memchr(scheme_end, ':', (size_t)(at - scheme_end));
	if (colon == NULL)
		return xstrdup(url);
	return xasprintf("%.*s:****%s", (int)(colon - url), url, at);
}

/* Joins libpq's multi-line messages into one line. */
static void
one_line(char *s)
{
	char *p;
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (p = s; *p != '\0'; p++)
		if (*p == '\n')
			*p = ';';
}

static int
connect_step(struct ferry_db *db, int until_reading, struct ferry_err *err);

/* Records libpq's reason for a failed connection, on one line. */
static int
connect_failed(struct ferry_db *db, struct ferry_err *err)
{
	char *msg =
	    xstrdup(db->conn ? PQerrorMessage(db->conn) : "out of memory");
	int rc;

	one_line(msg);
	rc = ferry_errf(err, FERRY_EOPER, "cannot connect to %s: %s",
	    db->display, msg);
	free(msg);
	return rc;
}

/* Server notices (from migrations, mostly) go to the log. */
static void
on_notice(void *arg, const char *message)
{
	char *m = xstrdup(message);

	(void)arg;
	one_line(m);
	ferry_log_info("server notice", "notice", m);
	free(m);
}

int
ferry_db_start(const char *url, const char *app_name, struct ferry_db **out,
    struct ferry_err *err)
{
	/* Earlier keywords are overridden by the URL's own parameters. */
	const char *keys[] = { "connect_timeout", "dbname",
		"fallback_application_name", NULL };
	const char *vals[4];
	struct ferry_db *db = xcalloc(1, sizeof(*db));
	char *conninfo = NULL;
	int rc = 0;

	*out = NULL;
	db->display = mask_password(url);
	if (is_uri(url))
		conninfo = translate_uri(url, &db->schema);
	else
		conninfo = xstrdup(url);
	if (db->schema == NULL || *db->schema == '\0') {
		free(db->schema);
		db->schema = xstrdup("public");
	}
	/* libpq waits forever for a server that never answers. */
	vals[0] =
	    getenv("PGCONNECT_TIMEOUT") ? getenv("PGCONNECT_TIMEOUT") : "10";
	vals[1] = conninfo;
	vals[2] = app_name;
	vals[3] = NULL;
	db->conn = PQconnectStartParams(keys, vals, 1);
	db->poll_state = PGRES_POLLING_WRITING;
	if (db->conn == NULL || PQstatus(db->conn) == CONNECTION_BAD)
		rc = connect_failed(db, err);
	else
		rc = connect_step(db, 1, err);
	free(conninfo);
	if (rc != 0) {
		ferry_db_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

/* The connect_timeout in effect (URL, environment or our default). */
static long
connect_timeout_ms(PGconn *conn)
{
	PQconninfoOption *opts = PQconninfo(conn), *o;
	long secs = 10;

	for (o = opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, "connect_timeout") == 0 &&
		    o->val != NULL)
			secs = strtol(o->val, NULL, 10);
	PQconninfoFree(opts);
	/* libpq treats values below 2 s as 2 s; 0 means no limit. */
	if (secs <= 0)
		return -1;
	return (secs < 2 ? 2 : secs) * 1000;
}

/*
 * Drives the connection forward. With until_reading, stops once the
 * startup packet is sent and the server is working on it; otherwise runs
 * to the end. Bounded by connect_timeout.
 */
static int
connect_step(struct ferry_db *db, int until_reading, struct ferry_err *err)
{
	PostgresPollingStatusType st = db->poll_state;
	long limit;
	int64_t deadline;
	struct pollfd pfd;
	int wait;

	if (st == PGRES_POLLING_OK)
		return 0;
	limit = connect_timeout_ms(db->conn);
	deadline = ferry_mono_us() + limit * 1000;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED &&
	    !(until_reading && st == PGRES_POLLING_READING)) {
		pfd.fd = PQsocket(db->conn);
		pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		pfd.revents = 0;
		wait =
		    limit < 0 ? -1 : (int)((deadline - ferry_mono_us()) / 1000);
		if (limit >= 0 && wait <= 0)
			return ferry_errf(err, FERRY_EOPER,
			    "cannot connect to %s: timeout expired",
			    db->display);
		if (pfd.fd >= 0 && poll(&pfd, 1, wait) < 0 && errno != EINTR)
			return ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot connect to %s", db->display);
		if (pfd.fd >= 0 && pfd.revents == 0)
			continue;
		st = PQconnectPoll(db->conn);
	}
	db->poll_state = st;
	if (st == PGRES_POLLING_FAILED)
		return connect_failed(db, err);
	return 0;
}

void
ferry_db_progress(struct ferry_db *db)
{
	PostgresPollingStatusType st = db->poll_state;
	struct pollfd pfd;

	while (st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING) {
		pfd.fd = PQsocket(db->conn);
		pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		pfd.revents = 0;
		if (pfd.fd < 0 || poll(&pfd, 1, 0) <= 0 || pfd.revents == 0)
			break;
		st = PQconnectPoll(db->conn);
	}
	/* A failure is reported by ferry_db_finish(). */
	db->poll_state = st;
}

/*
 * The session setup. Prisma sets search_path to the URL's schema;
 * migrations written for Prisma rely on it. Without the check interval, a
 * killed client's backend runs on (holding the migration lock) until its
 * statement ends. Returns the number of statements (1 or 2) put in sql.
 */
static int
setup_sql(struct ferry_db *db, char *sql[2])
{
	sql[0] = xasprintf("SET search_path TO %s", db->schema_ident);
	sql[1] = NULL;
	if (PQserverVersion(db->conn) < 140000)
		return 1;
	sql[1] = xstrdup("SET client_connection_check_interval = 1000");
	return 2;
}

/*
 * Records a failed session setup. The connection is shut down as well:
 * no statement may run in a session without its search_path (a migration
 * would create its tables in the wrong schema).
 */
static int
setup_failed(struct ferry_db *db, const PGresult *res, struct ferry_err *err)
{
	int rc = ferry_db_err(db, res, FERRY_EOPER, "cannot set up the session",
	    err);

	db->setup_pending = 0;
	if (PQsocket(db->conn) >= 0)
		shutdown(PQsocket(db->conn), SHUT_RDWR);
	return rc;
}

/* Sends the session setup if ferry_db_finish() left it pending. */
static int
flush_setup(struct ferry_db *db, struct ferry_err *err)
{
	char *sql[2], *both;
	PGresult *res;
	int rc = 0, n;

	if (!db->setup_pending)
		return 0;
	db->setup_pending = 0;
	n = setup_sql(db, sql);
	both =
	    xasprintf("%s;%s%s", sql[0], n > 1 ? sql[1] : "", n > 1 ? ";" : "");
	if (!PQsendQuery(db->conn, both))
		rc = setup_failed(db, NULL, err);
	else
		while ((res = PQgetResult(db->conn)) != NULL) {
			if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
				rc = setup_failed(db, res, err);
			PQclear(res);
		}
	free(both);
	free(sql[0]);
	free(sql[1]);
	return rc;
}

int
ferry_db_finish(struct ferry_db *db, struct ferry_err *err)
{
	int rc;

	rc = connect_step(db, 0, err);
	if (rc != 0)
		return rc;
	if (PQstatus(db->conn) != CONNECTION_OK)
		return connect_failed(db, err);
	/* Finished already (ferry_history_fetch_progress does it early). */
	if (db->schema_ident != NULL)
		return 0;
	if (db->cancel == NULL)
		db->cancel = PQgetCancel(db->conn);
	PQsetNoticeProcessor(db->conn, on_notice, NULL);
	db->schema_ident = ferry_db_ident(db, db->schema);
	if (db->schema_ident == NULL)
		return ferry_errf(err, FERRY_EUSAGE,
		    "invalid schema name in the database URL");
	/* Sent with the first query: one round trip fewer. */
	db->setup_pending = 1;
	return 0;
}

int
ferry_db_pipeline_begin(struct ferry_db *db, int *setup_queued)
{
	char *sql[2];
	int i, n, rc = 0;

	*setup_queued = 0;
	if (!PQenterPipelineMode(db->conn))
		return -1;
	if (!db->setup_pending)
		return 0;
	/* Its own Sync: the settings stay whatever fails after them. */
	db->setup_pending = 0;
	n = setup_sql(db, sql);
	for (i = 0; i < n && rc == 0; i++)
		if (!PQsendQueryParams(db->conn, sql[i], 0, NULL, NULL, NULL,
		        NULL, 0))
			rc = -1;
	if (rc == 0 && !PQpipelineSync(db->conn))
		rc = -1;
	free(sql[0]);
	free(sql[1]);
	if (rc == 0)
		*setup_queued = n;
	return rc;
}

int
ferry_db_setup_check(struct ferry_db *db, const PGresult *res,
    struct ferry_err *err)
{
	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
		return 0;
	return setup_failed(db, res, err);
}

int
ferry_db_connecting(const struct ferry_db *db)
{
	return db->poll_state == PGRES_POLLING_READING ||
	    db->poll_state == PGRES_POLLING_WRITING;
}

int
ferry_db_open(const char *url, const char *app_name, struct ferry_db **out,
    struct ferry_err *err)
{
	int rc = ferry_db_start(url, app_name, out, err);

	if (rc == 0)
		rc = ferry_db_finish(*out, err);
	if (rc == 0)
		rc = flush_setup(*out, err);
	if (rc != 0) {
		ferry_db_close(*out);
		*out = NULL;
	}
	return rc;
}

void
ferry_db_close(struct ferry_db *db)
{
	if (db == NULL)
		return;
	if (db->cancel != NULL)
		PQfreeCancel(db->cancel);
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db->schema);
	free(db->schema_ident);
	free(db->display);
	free(db);
}

PGconn *
ferry_db_conn(struct ferry_db *db)
{
	struct ferry_err err;

	/* A caller about to use libpq directly: the session must be set up
	   first. On failure the connection is shut, so its next statement
	   fails; say why. */
	ferry_err_clear(&err);
	if (flush_setup(db, &err) != 0)
		ferry_log_error("cannot use the connection", "error", err.msg);
	return db->conn;
}

const char *
ferry_db_schema(const struct ferry_db *db)
{
	return db->schema;
}

const char *
ferry_db_schema_ident(const struct ferry_db *db)
{
	return db->schema_ident;
}

const char *
ferry_db_display(const struct ferry_db *db)
{
	return db->display;
}

void
ferry_db_cancel(struct ferry_db *db)
{
	char buf[256];

	if (db != NULL && db->cancel != NULL)
		PQcancel(db->cancel, buf, sizeof(buf));
}

int
ferry_db_ok(struct ferry_db *db)
{
	return db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK;
}

int
ferry_db_err(struct ferry_db *db, const PGresult *res, int code,
    const char *what, struct ferry_err *err)
{
	const char *state = NULL, *primary = NULL;
	char *msg;

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	}
	if (primary == NULL)
		primary = PQerrorMessage(db->conn);
	msg = xstrdup(primary);
	one_line(msg);
	if (state != NULL)
		ferry_errf(err, code, "%s: %s (SQLSTATE %s)", what, msg, state);
	else
		ferry_errf(err, code, "%s: %s", what, msg);
	free(msg);
	return code;
}

int
ferry_db_exec(struct ferry_db *db, const char *sql, const char *what,
    struct ferry_err *err)
{
	PGresult *res;
	int rc;

	rc = flush_setup(db, err);
	if (rc != 0)
		return rc;
	if (!PQsendQuery(db->conn, sql))
		return ferry_db_err(db, NULL, FERRY_EOPER, what, err);
	while ((res = PQgetResult(db->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		if (rc == 0 && st != PGRES_COMMAND_OK &&
		    st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
			rc = ferry_db_err(db, res, FERRY_EOPER, what, err);
		PQclear(res);
	}
	return rc;
}

PGresult *
ferry_db_query(struct ferry_db *db, const char *sql, int nparams,
    const char *const *params, const char *what, struct ferry_err *err)
{
	PGresult *res;
	ExecStatusType st;

	if (flush_setup(db, err) != 0)
		return NULL;
	res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		ferry_db_err(db, res, FERRY_EOPER, what, err);
		PQclear(res);
		return NULL;
	}
	return res;
}

char *
ferry_db_literal(struct ferry_db *db, const char *s)
{
	char *q = PQescapeLiteral(db->conn, s, strlen(s)), *r;

	if (q == NULL)
		return NULL;
	r = xstrdup(q);
	PQfreemem(q);
	return r;
}

char *
ferry_db_ident(struct ferry_db *db, const char *s)
{
	char *q = PQescapeIdentifier(db->conn, s, strlen(s)), *r;

	if (q == NULL)
		return NULL;
	r = xstrdup(q);
	PQfreemem(q);
	return r;
}
