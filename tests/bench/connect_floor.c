/*
 * connect_floor.c -- the floor for a no-op "ferry-agent apply": one libpq
 * connection to argv[1], "select 1", exit. Timed from outside by
 * tests/bench/apply_bench.sh, like ferry-agent, so both pay process start,
 * dynamic linking, the connection and one round trip.
 */
#include <stdio.h>

#include <libpq-fe.h>

int
main(int argc, char **argv)
{
	PGconn *conn;
	PGresult *res;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: bench_connect_floor CONNINFO\n");
		return 2;
	}
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "bench_connect_floor: %s",
		    PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}
	res = PQexec(conn, "select 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		fprintf(stderr, "bench_connect_floor: %s",
		    PQerrorMessage(conn));
		rc = 1;
	}
	PQclear(res);
	PQfinish(conn);
	return rc;
}
