/*
 * bundle_bench.c -- time ferry_bundle_create (encode, classify each
 * migration with libpg_query, sign) and ferry_bundle_open (verify, decode,
 * check every checksum) on a generated project of 1,000 realistic
 * migrations, about 5 MB of SQL. Prints the median of several runs and
 * the targets; exits 1 when a median misses its target.
 *
 *   bench_bundle [migrations [runs]]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "bundle.h"
#include "hash.h"
#include "keys.h"
#include "migrations.h"
#include "sqlscript.h"
#include "util.h"

#define TARGET_CREATE_MS 300.0
#define TARGET_OPEN_MS 50.0
#define MIGRATION_BYTES 5243 /* 1,000 of them make 5 MiB */

static const char *const types[] = { "bigint", "text", "integer", "timestamptz",
	"boolean", "numeric(12,2)", "jsonb", "uuid" };

/* Appends one realistic migration, a little over MIGRATION_BYTES long. */
static void
gen_sql(struct ferry_buf *b, int i)
{
	int c, s = 0;

	ferry_buf_addf(b,
	    "-- Migration %d: table t%d and its indexes, constraints and "
	    "backfill.\n",
	    i, i);
	ferry_buf_addf(b,
	    "CREATE TABLE \"t%d\" (\n    \"id\" BIGSERIAL NOT NULL,\n", i);
	for (c = 0; c < 24; c++)
		ferry_buf_addf(b, "    \"col_%d_%d\" %s%s,\n", i, c,
		    types[(i + c) % FERRY_NELEM(types)],
		    c % 3 == 0 ? " NOT NULL" : "");
	ferry_buf_addf(b,
	    "    \"created_at\" TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
	    "    CONSTRAINT \"t%d_pkey\" PRIMARY KEY (\"id\")\n);\n\n",
	    i);
	if (i > 0)
		ferry_buf_addf(b,
		    "ALTER TABLE \"t%d\" ADD COLUMN \"parent_id\" BIGINT;\n"
		    "ALTER TABLE \"t%d\" ADD CONSTRAINT \"t%d_parent_fkey\" "
		    "FOREIGN KEY (\"parent_id\") REFERENCES \"t%d\"(\"id\") "
		    "ON DELETE SET NULL ON UPDATE CASCADE;\n\n",
		    i, i, i, i - 1);
	ferry_buf_addf(b,
	    "CREATE OR REPLACE FUNCTION \"t%d_touch\"() RETURNS trigger\n"
	    "LANGUAGE plpgsql AS $$\nBEGIN\n"
	    "    NEW.created_at := coalesce(NEW.created_at, now());\n"
	    "    RETURN NEW;\nEND;\n$$;\n\n",
	    i);
	while (ferry_buf_len(b) < MIGRATION_BYTES) {
		c = s % 24;
		switch (s++ % 4) {
		case 0:
			ferry_buf_addf(b,
			    "CREATE INDEX \"t%d_col_%d_idx_%d\" ON \"t%d\" "
			    "(\"col_%d_%d\", \"created_at\");\n",
			    i, c, s, i, i, c);
			break;
		case 1:
			ferry_buf_addf(b,
			    "COMMENT ON COLUMN \"t%d\".\"col_%d_%d\" IS "
			    "'Column %d of table %d, kept for reporting';\n",
			    i, i, c, c, i);
			break;
		case 2:
			ferry_buf_addf(b,
			    "UPDATE \"t%d\" SET \"col_%d_%d\" = DEFAULT WHERE "
			    "\"id\" IN (SELECT \"id\" FROM \"t%d\" WHERE "
			    "\"created_at\" < now() - interval '%d days' "
			    "LIMIT 1000);\n",
			    i, i, c, i, s);
			break;
		default:
			ferry_buf_addf(b,
			    "INSERT INTO \"t%d\" (\"col_%d_1\", \"col_%d_2\") "
			    "VALUES ('value %d', %d) ON CONFLICT DO "
			    "NOTHING;\n",
			    i, i, i, s, s);
		}
	}
	/* One in ten cannot run in a transaction. */
	if (i % 10 == 9)
		ferry_buf_addf(b,
		    "CREATE INDEX CONCURRENTLY \"t%d_concurrent\" ON \"t%d\" "
		    "(\"id\");\n",
		    i, i);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v and returns its median (v[0] is then the best run). */
static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	struct ferry_migrations *migs = ferry_migrations_new();
	struct ferry_bundle_params p = { 0 };
	struct ferry_seckey *key = NULL;
	struct ferry_bundle *b = NULL;
	struct ferry_err err;
	struct ferry_buf sql;
	int64_t nmig = 1000, runs = 7, t0;
	double *tc, *to, *tp, mc, mo, mp;
	size_t total = 0, len = 0;
	uint8_t *data = NULL;
	int i, r, rc = 0;

	if ((argc > 1 && ferry_parse_int64(argv[1], 1, 1000000, &nmig) != 0) ||
	    (argc > 2 && ferry_parse_int64(argv[2], 1, 1000, &runs) != 0) ||
	    argc > 3) {
		fprintf(stderr, "usage: bench_bundle [migrations [runs]]\n");
		return 2;
	}
	if (ferry_crypto_init() != 0)
		return 3;
	ferry_err_clear(&err);
	if (ferry_seckey_generate("bench", &key, &err) != 0) {
		fprintf(stderr, "bench_bundle: %s\n", err.msg);
		return 3;
	}
	ferry_buf_init(&sql, FERRY_MIGRATION_MAX_BYTES);
	for (i = 0; i < nmig; i++) {
		char name[64];

		ferry_buf_reset(&sql);
		gen_sql(&sql, i);
		snprintf(name, sizeof(name), "2024%02d%02d%06d_table_%d",
		    1 + i / 28 % 12, 1 + i % 28, i, i);
		ferry_migrations_add(migs, name, ferry_buf_str(&sql),
		    ferry_buf_len(&sql), NULL, 0);
		total += ferry_buf_len(&sql);
	}
	ferry_buf_release(&sql);

	tc = xcalloc((size_t)runs, sizeof(*tc));
	to = xcalloc((size_t)runs, sizeof(*to));
	tp = xcalloc((size_t)runs, sizeof(*tp));
	p.project = "bench";
	p.created_unix_ms = 1700000000000LL;
	for (r = 0; r < runs; r++) {
		/* The share of create spent in the SQL parser, for reference. */
		t0 = ferry_mono_us();
		for (i = 0; i < nmig; i++) {
			const struct ferry_migration *e =
			    ferry_migrations_get(migs, (size_t)i);
			struct ferry_script *s = NULL;

			if (ferry_script_parse(e->sql, e->sql_len, e->name, &s,
			        &err) == 0)
				ferry_script_free(s);
		}
		tp[r] = (double)(ferry_mono_us() - t0) / 1000.0;

		free(data);
		data = NULL;
		t0 = ferry_mono_us();
		if (ferry_bundle_create(migs, &p, key, &data, &len, &err) !=
		    0) {
			fprintf(stderr, "bench_bundle: create: %s\n", err.msg);
			rc = 3;
			goto out;
		}
		tc[r] = (double)(ferry_mono_us() - t0) / 1000.0;

		t0 = ferry_mono_us();
		if (ferry_bundle_open(data, len, ferry_seckey_public(key), 1,
		        &b, &err) != 0) {
			fprintf(stderr, "bench_bundle: open: %s\n", err.msg);
			rc = 3;
			goto out;
		}
		to[r] = (double)(ferry_mono_us() - t0) / 1000.0;
		ferry_bundle_free(b);
		b = NULL;
	}
	mc = median(tc, (int)runs);
	mo = median(to, (int)runs);
	mp = median(tp, (int)runs);
	printf("bundle of %" PRId64 " migrations, %.2f MB of SQL, %.2f MB "
	       "file; median of %" PRId64 " runs\n",
	    nmig, (double)total / 1e6, (double)len / 1e6, runs);
	printf("  create + sign:  %8.1f ms  (best %.1f; target < %.0f ms)  "
	       "%s\n",
	    mc, tc[0], TARGET_CREATE_MS,
	    mc < TARGET_CREATE_MS ? "ok" : "MISSED");
	printf("    of which ferry_script_parse alone: %.1f ms\n", mp);
	printf("  verify + open:  %8.1f ms  (best %.1f; target < %.0f ms)  "
	       "%s\n",
	    mo, to[0], TARGET_OPEN_MS, mo < TARGET_OPEN_MS ? "ok" : "MISSED");
	if (mc >= TARGET_CREATE_MS || mo >= TARGET_OPEN_MS)
		rc = 1;
out:
	ferry_bundle_free(b);
	free(data);
	free(tp);
	free(to);
	free(tc);
	ferry_seckey_free(key);
	ferry_migrations_free(migs);
	return rc;
}
