/*
 * cmd_shadow.c -- ferry-agent shadow and drift: replay the migrations into
 * a shadow database recording the digest after each one, and compare a
 * live database with that report. Also the two checks behind
 * 'ferry-agent apply --expected REPORT'.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "bundle.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "keys.h"
#include "migrations.h"
#include "schemadiff.h"
#include "shadow.h"
#include "util.h"

enum {
	OPT_MIGRATIONS = 0x100,
	OPT_BUNDLE,
	OPT_TRUST,
	OPT_SHADOW_URL,
	OPT_URL,
	OPT_EXTENSIONS,
	OPT_INIT_SHADOW,
	OPT_SCHEMA,
	OPT_EXPECTED,
	OPT_JSON,
};

#define MAX_LIST 64

/* Migrations from a folder or a verified bundle. */
struct input {
	const char *dir;
	const char *bundle_path;
	struct ferry_pubkey trust[MAX_LIST];
	size_t ntrust;
	struct ferry_migrations *migs; /* from dir */
	struct ferry_bundle *bundle;
};

#define INPUT_HELP                                                            \
	"  --migrations DIR      migrations folder (default: "                \
	"prisma/migrations\n"                                                 \
	"                        if it exists, else migrations)\n"            \
	"  --bundle FILE         a signed bundle instead, verified against\n" \
	"                        the --trust keys\n"                          \
	"  --trust PUB           trusted public key file (repeatable)\n"

static int
input_opt(const char *prog, struct input *in, int opt, const char *arg, int *rc)
{
	struct ferry_err err;

	ferry_err_clear(&err);
	switch (opt) {
	case OPT_MIGRATIONS:
		in->dir = arg;
		return 1;
	case OPT_BUNDLE:
		in->bundle_path = arg;
		return 1;
	case OPT_TRUST:
		if (in->ntrust == MAX_LIST) {
			*rc = ferry_cli_usage_error(prog, "too many --trust");
			return -1;
		}
		if (ferry_pubkey_load(arg, &in->trust[in->ntrust], &err) != 0) {
			*rc = ferry_cli_fail(prog, &err);
			return -1;
		}
		in->ntrust++;
		return 1;
	}
	return 0;
}

/* Reads the folder or verifies the bundle. Returns 0 or an exit status. */
static int
input_open(const char *prog, struct input *in,
    const struct ferry_migrations **out)
{
	struct ferry_err err;
	struct stat st;

	ferry_err_clear(&err);
	if (in->bundle_path != NULL) {
		if (in->dir != NULL)
			return ferry_cli_usage_error(prog,
			    "--bundle and --migrations exclude each other");
		if (in->ntrust == 0)
			return ferry_cli_usage_error(prog,
			    "--bundle needs at least one --trust key");
		if (ferry_bundle_open_file(in->bundle_path, in->trust,
		        in->ntrust, &in->bundle, &err) != 0)
			return ferry_cli_fail(prog, &err);
		*out = ferry_bundle_migrations(in->bundle);
		return 0;
	}
	if (in->ntrust > 0)
		return ferry_cli_usage_error(prog,
		    "--trust goes with --bundle");
	if (in->dir == NULL)
		in->dir =
		    stat("prisma/migrations", &st) == 0 && S_ISDIR(st.st_mode)
		    ? "prisma/migrations"
		    : "migrations";
	if (ferry_migrations_read_dir(in->dir, &in->migs, &err) != 0)
		return ferry_cli_fail(prog, &err);
	*out = in->migs;
	return 0;
}

static void
input_release(struct input *in)
{
	ferry_migrations_free(in->migs);
	ferry_bundle_free(in->bundle);
}

/* Splits "a,b" into list (pointers into s, which it modifies). */
static int
split_list(const char *prog, char *s, const char **list, size_t *n)
{
	char *p = s, *comma;

	while (p != NULL) {
		comma = strchr(p, ',');
		if (comma != NULL)
			*comma++ = '\0';
		if (*p != '\0') {
			if (*n == MAX_LIST)
				return ferry_cli_usage_error(prog,
				    "too many extensions");
			list[(*n)++] = p;
		}
		p = comma;
	}
	return 0;
}

/* Prints the drift result: the reason and the diff. */
static void
print_drift(FILE *f, const struct ferry_shadow_drift *d,
    const struct ferry_err *err)
{
	struct ferry_buf out;

	if (err->code == 0) {
		fprintf(f,
		    "no drift: the database matches the shadow after %zu "
		    "migration%s (digest %s)\n",
		    d->applied, d->applied == 1 ? "" : "s", d->actual);
		return;
	}
	if (d->diff == NULL)
		return;
	ferry_buf_init(&out, (size_t)1 << 30);
	if (ferry_schema_diff_text(d->diff, &out) == 0)
		fputs(ferry_buf_str(&out), f);
	else
		fputs("  (the diff is too large to print)\n", f);
	ferry_buf_release(&out);
	fflush(f);
}

static json_t *
drift_json(const struct ferry_shadow_drift *d, const struct ferry_err *err)
{
	json_t *j = json_pack("{s:b, s:I, s:s, s:s}", "drift",
	    err->code == FERRY_EFINDING, "applied", (json_int_t)d->applied,
	    "expected", d->expected, "actual", d->actual);

	if (d->diff != NULL)
		json_object_set_new(j, "diff", ferry_schema_diff_json(d->diff));
	if (err->code != 0)
		json_object_set_new(j, "error", json_string(err->msg));
	return j;
}

/* ---------------------------------------------------------------- */

static const char shadow_usage[] =
    "usage: ferry-agent shadow --shadow-url URL -o REPORT [options]\n"
    "\n"
    "Replays every migration from empty into a shadow database and writes\n"
    "a report: for the empty schema and after each migration, the schema\n"
    "digest and document ('digest per prefix'), and the final digest.\n"
    "'ferry-agent drift' and 'apply --expected' compare databases with it.\n"
    "\n"
    "The shadow database is wiped first: its extensions (but plpgsql), the\n"
    "ferry schema and the schemas in scope are dropped, and those schemas\n"
    "created again. Refused when it is the target database (same server\n"
    "system identifier and database name as --database-url, DIRECT_URL or\n"
    "DATABASE_URL) and when it is not marked as a shadow (database comment\n"
    "'" FERRY_SHADOW_MARK "') unless --init-shadow.\n"
    "\n"
    "Options:\n" INPUT_HELP
    "  --shadow-url URL      the shadow database (required); its ?schema=\n"
    "                        should be the target's\n"
    "  --database-url URL    the target database, only to refuse it as the\n"
    "                        shadow (default: DIRECT_URL, DATABASE_URL)\n"
    "  --init-shadow         mark an unmarked database as a shadow and use\n"
    "                        it\n"
    "  --extensions A,B      create these extensions before the first\n"
    "                        migration (repeatable)\n"
    "  --schema NAME         also take schema NAME (repeatable)\n"
    "  -o, --output REPORT   the report file (required)\n"
    "  --json                print a JSON summary\n"
    "  -h, --help            show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

static void
print_step(void *ctx, size_t i, const char *name, const char *digest)
{
	int *json = ctx;

	if (*json)
		return;
	printf("%3zu  %s  %.12s\n", i + 1, name, digest);
	fflush(stdout);
}

int
cmd_shadow(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "migrations", required_argument, NULL, OPT_MIGRATIONS },
		{ "bundle", required_argument, NULL, OPT_BUNDLE },
		{ "trust", required_argument, NULL, OPT_TRUST },
		{ "shadow-url", required_argument, NULL, OPT_SHADOW_URL },
		{ "database-url", required_argument, NULL, OPT_URL },
		{ "init-shadow", no_argument, NULL, OPT_INIT_SHADOW },
		{ "extensions", required_argument, NULL, OPT_EXTENSIONS },
		{ "schema", required_argument, NULL, OPT_SCHEMA },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry-agent shadow", *output = NULL;
	const char *exts[MAX_LIST], *schemas[MAX_LIST];
	const struct ferry_migrations *migs = NULL;
	struct ferry_shadow_report *rep = NULL;
	struct ferry_shadow_opts so;
	struct ferry_err err;
	struct input in;
	char *extbuf[MAX_LIST];
	size_t nextbuf = 0, i, n;
	int opt, r, rc = 0, json = 0;

	memset(&in, 0, sizeof(in));
	memset(&so, 0, sizeof(so));
	ferry_err_clear(&err);
	while ((opt = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		r = input_opt(prog, &in, opt, optarg, &rc);
		if (r < 0)
			goto out;
		if (r > 0)
			continue;
		switch (opt) {
		case 'h':
			fputs(shadow_usage, stdout);
			goto out;
		case OPT_SHADOW_URL:
			so.shadow_url = optarg;
			break;
		case OPT_URL:
			so.target_url = optarg;
			break;
		case OPT_INIT_SHADOW:
			so.init_shadow = 1;
			break;
		case OPT_EXTENSIONS:
			if (nextbuf == MAX_LIST) {
				rc = ferry_cli_usage_error(prog,
				    "too many --extensions");
				goto out;
			}
			extbuf[nextbuf] = xstrdup(optarg);
			rc = split_list(prog, extbuf[nextbuf++], exts,
			    &so.nextensions);
			if (rc != 0)
				goto out;
			break;
		case OPT_SCHEMA:
			if (so.nschemas == MAX_LIST || *optarg == '\0') {
				rc = ferry_cli_usage_error(prog,
				    "--schema wants a name (at most %d)",
				    MAX_LIST);
				goto out;
			}
			schemas[so.nschemas++] = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case OPT_JSON:
			json = 1;
			break;
		default:
			rc = ferry_cli_bad_option(prog, argv);
			goto out;
		}
	}
	if (optind != argc) {
		rc = ferry_cli_usage_error(prog, "unexpected argument '%s'",
		    argv[optind]);
		goto out;
	}
	if (so.shadow_url == NULL || output == NULL) {
		rc = ferry_cli_usage_error(prog,
		    "--shadow-url and -o REPORT are required");
		goto out;
	}
	so.extensions = exts;
	so.schemas = schemas;
	if (so.target_url == NULL) {
		/* ferry_db_pick_url gives "" when neither variable is set:
		   then there is no known target to compare with. */
		so.target_url = ferry_db_pick_url(NULL);
		if (*so.target_url == '\0')
			so.target_url = NULL;
	}
	rc = input_open(prog, &in, &migs);
	if (rc != 0)
		goto out;
	so.on_step = print_step;
	so.ctx = &json;
	rc = ferry_shadow_run(&so, migs, &rep, &err);
	if (rc == 0)
		rc = ferry_shadow_report_save(rep, output, &err);
	if (rc != 0) {
		rc = ferry_cli_fail(prog, &err);
		goto out;
	}
	n = ferry_shadow_report_count(rep);
	if (json) {
		json_t *steps = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(steps,
			    json_pack("{s:s, s:s}", "name",
			        ferry_shadow_report_name(rep, i), "digest",
			        ferry_shadow_report_digest(rep, i + 1)));
		rc = ferry_cli_print_json(json_pack("{s:s, s:I, s:s, s:i, s:o}",
		    "report", output, "migrations", (json_int_t)n, "digest",
		    ferry_shadow_report_digest(rep, n), "postgres_major",
		    ferry_shadow_report_pg_major(rep), "steps", steps));
	} else {
		printf("replayed %zu migration%s into the shadow database; "
		       "final digest %s; report written to %s\n",
		    n, n == 1 ? "" : "s", ferry_shadow_report_digest(rep, n),
		    output);
	}
out:
	for (i = 0; i < nextbuf; i++)
		free(extbuf[i]);
	ferry_shadow_report_free(rep);
	input_release(&in);
	return rc;
}

/* ---------------------------------------------------------------- */

static const char drift_usage[] =
    "usage: ferry-agent drift --expected REPORT [options]\n"
    "\n"
    "Compares the live schema with a shadow report: reads the database's\n"
    "history, checks that it holds exactly the report's first K migrations\n"
    "with the same checksums, introspects the database and compares its\n"
    "digest with the report's digest after K migrations. On a difference,\n"
    "prints what changed out of band (the report's document for that\n"
    "prefix against the live one). Exit status 0 clean, 1 drift (or a\n"
    "history that does not match the report), 3 could not check.\n"
    "\n"
    "Options:\n"
    "  --expected REPORT     the report written by 'ferry-agent shadow'\n"
    "  --database-url URL    database (default: DIRECT_URL, then\n"
    "                        DATABASE_URL, then libpq's PG* variables)\n"
    "  --migrations DIR      also check that the report was made from this\n"
    "                        folder (names and checksums)\n"
    "  --bundle FILE         ... or from this signed bundle\n"
    "  --trust PUB           trusted public key file for --bundle\n"
    "  --json                print the result as JSON\n"
    "  -h, --help            show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

int
cmd_drift(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "migrations", required_argument, NULL, OPT_MIGRATIONS },
		{ "bundle", required_argument, NULL, OPT_BUNDLE },
		{ "trust", required_argument, NULL, OPT_TRUST },
		{ "database-url", required_argument, NULL, OPT_URL },
		{ "expected", required_argument, NULL, OPT_EXPECTED },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry-agent drift", *url = NULL, *expected = NULL;
	const struct ferry_migrations *migs = NULL;
	struct ferry_shadow_report *rep = NULL;
	struct ferry_shadow_drift d;
	struct ferry_db *db = NULL;
	struct ferry_err err;
	struct input in;
	int opt, r, rc = 0, json = 0;

	memset(&in, 0, sizeof(in));
	memset(&d, 0, sizeof(d));
	ferry_err_clear(&err);
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = input_opt(prog, &in, opt, optarg, &rc);
		if (r < 0)
			goto out;
		if (r > 0)
			continue;
		switch (opt) {
		case 'h':
			fputs(drift_usage, stdout);
			goto out;
		case OPT_URL:
			url = optarg;
			break;
		case OPT_EXPECTED:
			expected = optarg;
			break;
		case OPT_JSON:
			json = 1;
			break;
		default:
			rc = ferry_cli_bad_option(prog, argv);
			goto out;
		}
	}
	if (optind != argc) {
		rc = ferry_cli_usage_error(prog, "unexpected argument '%s'",
		    argv[optind]);
		goto out;
	}
	if (expected == NULL) {
		rc = ferry_cli_usage_error(prog,
		    "--expected REPORT is required");
		goto out;
	}
	if (ferry_shadow_report_load(expected, &rep, &err) != 0) {
		rc = ferry_cli_fail(prog, &err);
		goto out;
	}
	if (in.dir != NULL || in.bundle_path != NULL || in.ntrust > 0) {
		rc = input_open(prog, &in, &migs);
		if (rc != 0)
			goto out;
		if (ferry_shadow_report_matches(rep, migs, &err) != 0) {
			rc = ferry_cli_fail(prog, &err);
			goto out;
		}
	}
	if (ferry_db_open(ferry_db_pick_url(url), "ferry-agent", &db, &err) !=
	    0) {
		rc = ferry_cli_fail(prog, &err);
		goto out;
	}
	rc = ferry_shadow_check_drift(db, rep, &d, &err);
	if (json) {
		r = ferry_cli_print_json(drift_json(&d, &err));
		if (rc == 0)
			rc = r;
		goto out;
	}
	print_drift(stdout, &d, &err);
	if (rc != 0)
		rc = ferry_cli_fail(prog, &err);
out:
	ferry_shadow_drift_release(&d);
	ferry_db_close(db);
	ferry_shadow_report_free(rep);
	input_release(&in);
	return rc;
}

/* ---- apply --expected --------------------------------------------------- */

int
shadow_expect_before(const char *prog, const char *path, struct ferry_db *db,
    const struct ferry_migrations *migs, struct ferry_shadow_report **out)
{
	struct ferry_shadow_report *rep = NULL;
	struct ferry_shadow_drift d;
	struct ferry_err err;
	int rc;

	*out = NULL;
	memset(&d, 0, sizeof(d));
	ferry_err_clear(&err);
	rc = ferry_shadow_report_load(path, &rep, &err);
	if (rc == 0)
		rc = ferry_shadow_report_matches(rep, migs, &err);
	if (rc == 0)
		rc = ferry_shadow_check_drift(db, rep, &d, &err);
	if (rc != 0) {
		print_drift(stderr, &d, &err);
		fprintf(stderr, "%s: error: refusing to apply: %s\n", prog,
		    err.msg);
		ferry_shadow_drift_release(&d);
		ferry_shadow_report_free(rep);
		return ferry_err_exit_status(rc);
	}
	ferry_shadow_drift_release(&d);
	*out = rep;
	return 0;
}

int
shadow_expect_after(const char *prog, struct ferry_db *db,
    struct ferry_shadow_report *rep, int quiet)
{
	struct ferry_shadow_drift d;
	struct ferry_err err;
	int rc;

	ferry_err_clear(&err);
	rc = ferry_shadow_check_drift(db, rep, &d, &err);
	if (rc == 0 && d.applied != ferry_shadow_report_count(rep))
		rc = ferry_errf(&err, FERRY_EFINDING,
		    "only %zu of the report's %zu migrations are applied",
		    d.applied, ferry_shadow_report_count(rep));
	if (rc != 0) {
		print_drift(stderr, &d, &err);
		fprintf(stderr,
		    "%s: error: post-apply verification failed: %s\n", prog,
		    err.msg);
		rc = ferry_err_exit_status(rc);
	} else if (!quiet) {
		printf("verified: the schema matches the shadow report "
		       "(digest %s)\n",
		    d.actual);
	}
	ferry_shadow_drift_release(&d);
	ferry_shadow_report_free(rep);
	return rc;
}
