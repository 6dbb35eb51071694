/*
 * pgprobe: connect to a PostgreSQL URL and run one query, for the
 * integration tests of the test sandbox.
 *
 *	pgprobe URL
 *
 * Prints "ok 42" and exits 0 when the server answers and is PostgreSQL 12
 * or newer; prints a one-line error and exits 3 otherwise (2 on bad usage).
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

static const char probe_sql[] =
    "SELECT current_setting('server_version_num')::int >= 120000, 40+2";

/* Prints "pgprobe: WHAT: MSG" on one line, without libpq's newlines. */
static void
report(const char *what, const char *msg)
{
	size_t n = strcspn(msg, "\n");

	fprintf(stderr, "pgprobe: %s: %.*s\n", what, (int)n, msg);
}

/* Runs the probe on an open connection; returns 0 and sets *answer on
 * success, 3 on failure (reported). */
static int
probe(PGconn *conn, int *answer)
{
	PGresult *res = NULL;
	const char *version = NULL;
	int rc = 3;

	res = PQexec(conn, probe_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		report("query failed", PQerrorMessage(conn));
		goto out;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 2) {
		report("query failed", "unexpected result shape");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		version = PQparameterStatus(conn, "server_version");
		report("server older than 12",
		    version != NULL ? version : "unknown version");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "42") != 0) {
		report("unexpected answer", PQgetvalue(res, 0, 1));
		goto out;
	}
	*answer = 42;
	rc = 0;
out:
	PQclear(res);
	return rc;
}

int
main(int argc, char **argv)
{
	PGconn *conn = NULL;
	int answer = 0;
	int rc = 3;

	if (argc != 2 || argv[1][0] == '\0') {
		fprintf(stderr, "usage: pgprobe URL\n");
		return 2;
	}
	conn = PQconnectdb(argv[1]);
	if (conn == NULL) {
		report("cannot connect", "out of memory");
		goto out;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		report("cannot connect", PQerrorMessage(conn));
		goto out;
	}
	rc = probe(conn, &answer);
	if (rc == 0)
		printf("ok %d\n", answer);
out:
	PQfinish(conn);
	if (rc == 0 && fflush(stdout) != 0)
		rc = 3;
	return rc;
}
