/*
 * cmd_schema.c -- ferry-agent introspect and diff: the canonical schema
 * document of a database, and the differences between two of them.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "log.h"
#include "schema.h"
#include "schemadiff.h"
#include "util.h"

enum {
	OPT_URL = 0x100,
	OPT_SCHEMA,
	OPT_JSON,
	OPT_DIGEST,
	OPT_STATS,
};

#define MAX_SCHEMAS 64

#define SCHEMA_HELP                                                         \
	"  --schema NAME         also take schema NAME (repeatable); the\n" \
	"                        URL's own schema (?schema=, default\n"     \
	"                        public) is always in scope\n"

static const char introspect_usage[] =
    "usage: ferry-agent introspect [--json | --digest] [-o FILE] [options]\n"
    "\n"
    "Prints the canonical schema document of the database: schemas,\n"
    "tables with their columns, constraints, indexes, triggers and\n"
    "row-level-security policies, views, materialized views, sequences,\n"
    "functions and procedures, enums, domains, composite types and\n"
    "extensions, sorted by name, without OIDs or owners. Left out:\n"
    "_prisma_migrations, the ferry schema and objects that belong to an\n"
    "extension. The digest is the SHA-256 of the text form; two databases\n"
    "built by the same migrations have the same digest.\n"
    "\n"
    "Options:\n"
    "  --database-url URL    database (default: DIRECT_URL, then\n"
    "                        DATABASE_URL, then libpq's PG* variables);\n"
    "                        Prisma URLs work as pasted "
    "(?schema=...)\n" SCHEMA_HELP
    "  --json                print the JSON form: the document as saved\n"
    "                        and loaded by 'ferry-agent diff'\n"
    "  --digest              print the digest only\n"
    "  -o, --output FILE     write to FILE (atomically) instead of stdout;\n"
    "                        with --json, a document 'diff' can load\n"
    "  --stats               print the number of catalog queries and the\n"
    "                        time taken on stderr\n"
    "  -h, --help            show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

static const char diff_usage[] =
    "usage: ferry-agent diff A B [--json] [options]\n"
    "\n"
    "Compares two schema documents, each given as a database URL\n"
    "(postgresql://..., introspected now) or the path of a document saved\n"
    "with 'ferry-agent introspect --json -o FILE'. Prints what B has that\n"
    "A has not ([+] added), what A has that B has not ([-] removed) and\n"
    "what changed ([*]), object by object: exit status 0 when they are\n"
    "the same (equal digests), 1 when they differ, 3 when they cannot be\n"
    "compared (a database cannot be read, or the documents come from\n"
    "different PostgreSQL major versions).\n"
    "\n"
    "Options:\n" SCHEMA_HELP
    "  --json                print the differences as JSON\n"
    "  -h, --help            show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

/* Adds a --schema value to opts; returns 0 or a usage exit status. */
static int
add_schema(const char *prog, const char **names, struct ferry_schema_opts *opts,
    const char *name)
{
	if (*name == '\0')
		return ferry_cli_usage_error(prog, "--schema wants a name");
	if (opts->nschemas == MAX_SCHEMAS)
		return ferry_cli_usage_error(prog, "too many --schema options");
	names[opts->nschemas++] = name;
	opts->schemas = names;
	return 0;
}

/* Writes data to path, or to stdout when path is NULL. */
static int
emit(const char *prog, const char *path, const char *data, size_t len)
{
	struct ferry_err err;

	ferry_err_clear(&err);
	if (path != NULL) {
		if (ferry_write_file_atomic(path, data, len, 0644, &err) != 0)
			return ferry_cli_fail(prog, &err);
		return 0;
	}
	if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
		ferry_errf(&err, FERRY_EOPER, "cannot write to stdout");
		return ferry_cli_fail(prog, &err);
	}
	return 0;
}

int
cmd_introspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "database-url", required_argument, NULL, OPT_URL },
		{ "schema", required_argument, NULL, OPT_SCHEMA },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "digest", no_argument, NULL, OPT_DIGEST },
		{ "output", required_argument, NULL, 'o' },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry-agent introspect", *url = NULL;
	const char *output = NULL, *names[MAX_SCHEMAS];
	struct ferry_schema_opts so;
	struct ferry_schema_stats stats;
	struct ferry_schema *s = NULL;
	struct ferry_db *db = NULL;
	struct ferry_err err;
	char *text = NULL;
	int opt, json = 0, digest = 0, want_stats = 0, rc = 0;

	memset(&so, 0, sizeof(so));
	ferry_err_clear(&err);
	while ((opt = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(introspect_usage, stdout);
			return 0;
		case OPT_URL:
			url = optarg;
			break;
		case OPT_SCHEMA:
			rc = add_schema(prog, names, &so, optarg);
			if (rc != 0)
				return rc;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case OPT_DIGEST:
			digest = 1;
			break;
		case 'o':
			output = optarg;
			break;
		case OPT_STATS:
			want_stats = 1;
			break;
		default:
			return ferry_cli_bad_option(prog, argv);
		}
	}
	if (optind != argc)
		return ferry_cli_usage_error(prog, "unexpected argument '%s'",
		    argv[optind]);
	if (json && digest)
		return ferry_cli_usage_error(prog,
		    "--json and --digest exclude each other");
	rc = ferry_db_open(ferry_db_pick_url(url), "ferry-agent", &db, &err);
	if (rc == 0)
		rc = ferry_schema_introspect(db, &so, &s, &stats, &err);
	ferry_db_close(db);
	if (rc != 0)
		return ferry_cli_fail(prog, &err);
	if (want_stats)
		fprintf(stderr,
		    "introspected %zu objects with %d queries: %.1f ms "
		    "(%.1f ms waiting for the server), digest %s\n",
		    ferry_schema_count(s), stats.queries,
		    (double)stats.elapsed_us / 1000.0,
		    (double)stats.query_us / 1000.0, ferry_schema_digest(s));
	if (json) {
		text = ferry_schema_json_text(s);
		rc = emit(prog, output, text, strlen(text));
	} else if (digest) {
		text = xasprintf("%s\n", ferry_schema_digest(s));
		rc = emit(prog, output, text, strlen(text));
	} else {
		size_t len;
		const char *t = ferry_schema_text(s, &len);
		rc = emit(prog, output, t, len);
	}
	free(text);
	ferry_schema_free(s);
	return rc;
}
int
cmd_diff(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "schema", required_argument, NULL, OPT_SCHEMA },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry-agent diff", *names[MAX_SCHEMAS];
	struct ferry_schema_opts so;
	struct ferry_schema *a = NULL, *b = NULL;
	struct ferry_schema_diff *d = NULL;
	struct ferry_err err;
	struct ferry_buf out;
	json_t *j;
	int opt, json = 0, rc = 0;

	memset(&so, 0, sizeof(so));
	ferry_err_clear(&err);
	ferry_buf_init(&out, (size_t)1 << 30);
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(diff_usage, stdout);
			return 0;
		case OPT_SCHEMA:
			rc = add_schema(prog, names, &so, optarg);
			if (rc != 0)
				return rc;
			break;
		case OPT_JSON:
			json = 1;
			break;
		default:
			return ferry_cli_bad_option(prog, argv);
		}
	}
	if (argc - optind != 2)
		return ferry_cli_usage_error(prog,
		    "expected two schemas, A and B (database URLs or saved "
		    "documents)");
	rc = ferry_schema_open(argv[optind], &so, &a, &err);
	if (rc == 0)
		rc = ferry_schema_open(argv[optind + 1], &so, &b, &err);
	if (rc == 0)
		rc = ferry_schema_diff(a, b, &d, &err);
	if (rc != 0) {
		rc = ferry_cli_fail(prog, &err);
		goto out;
	}
	if (json) {
		j = ferry_schema_diff_json(d);
		json_object_set_new(j, "a",
		    json_pack("{s:s, s:s}", "digest", ferry_schema_digest(a),
		        "postgres", ferry_schema_pg_version(a)));
		json_object_set_new(j, "b",
		    json_pack("{s:s, s:s}", "digest", ferry_schema_digest(b),
		        "postgres", ferry_schema_pg_version(b)));
		rc = ferry_cli_print_json(j);
	} else {
		if (ferry_schema_diff_equal(d))
			ferry_buf_addf(&out,
			    "no differences: both schemas have digest %s\n",
			    ferry_schema_digest(a));
		if (ferry_schema_diff_text(d, &out) != 0) {
			ferry_errf(&err, FERRY_EOPER, "the diff is too large");
			rc = ferry_cli_fail(prog, &err);
			goto out;
		}
		rc = emit(prog, NULL, ferry_buf_str(&out), ferry_buf_len(&out));
	}
	if (rc == 0 && !ferry_schema_diff_equal(d))
		rc = FERRY_EFINDING;
out:
	ferry_buf_release(&out);
	ferry_schema_diff_free(d);
	ferry_schema_free(a);
	ferry_schema_free(b);
	return rc;
}
