/*
 * cmd_migrate.c -- ferry-agent apply, status, resolve and baseline: the
 * engine on a migrations folder, usable alone as a drop-in for
 * "prisma migrate deploy / status / resolve".
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentconf.h"
#include "anchor.h"
#include "approval.h"
#include "buf.h"
#include "bundle.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "engine.h"
#include "hash.h"
#include "history.h"
#include "shadow.h"
#include "util.h"

/* Options every command of this group takes. */
struct common {
	const char *prog;
	const char *migrations;
	const char *url;
	int json;
	long lock_wait_ms;
};

enum {
	OPT_MIGRATIONS = 0x100,
	OPT_URL,
	OPT_JSON,
	OPT_LOCK_WAIT,
	OPT_LOCK_TIMEOUT,
	OPT_STATEMENT_TIMEOUT,
	OPT_MAX_RETRIES,
	OPT_DRY_RUN,
	OPT_ALLOW_MODIFIED,
	OPT_RESUME,
	OPT_IN_DOUBT,
	OPT_APPLIED,
	OPT_ROLLED_BACK,
	OPT_UP_TO,
	OPT_BUNDLE,
	OPT_APPROVAL,
	OPT_CONFIG,
	OPT_ROLLOUT,
	OPT_ACCEPT_RESTORED,
	OPT_EXPECTED,
};

#define COMMON_OPTIONS                                               \
	{ "migrations", required_argument, NULL, OPT_MIGRATIONS },   \
	    { "database-url", required_argument, NULL, OPT_URL },    \
	    { "json", no_argument, NULL, OPT_JSON },                 \
	    { "lock-wait", required_argument, NULL, OPT_LOCK_WAIT }, \
	{                                                            \
		"help", no_argument, NULL, 'h'                       \
	}

#define COMMON_HELP                                                            \
	"  --migrations DIR      migrations folder (default: "                 \
	"prisma/migrations\n"                                                  \
	"                        if it exists, else migrations)\n"             \
	"  --database-url URL    database (default: DIRECT_URL, then\n"        \
	"                        DATABASE_URL, then libpq's PG* variables);\n" \
	"                        Prisma URLs work as pasted (?schema=...)\n"   \
	"  --lock-wait D         how long to wait for the migration lock\n"    \
	"                        (advisory lock 72707369, shared with "        \
	"Prisma;\n"                                                            \
	"                        default 10s)\n"                               \
	"  --json                print a JSON document\n"                      \
	"  -h, --help            show this help\n"

static volatile sig_atomic_t stop_requested;
static struct ferry_db *running_db;

static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
	ferry_db_cancel(running_db);
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void
common_init(struct common *c, const char *prog)
{
	memset(c, 0, sizeof(*c));
	c->prog = prog;
	c->lock_wait_ms = 10000;
}

/* Handles an option of the common set; returns 1 if it was one, -1 on a
 * bad value, 0 if not a common option. */
static int
common_opt(struct common *c, int opt, const char *arg)
{
	struct ferry_err err;
	int64_t ms;

	switch (opt) {
	case OPT_MIGRATIONS:
		c->migrations = arg;
		return 1;
	case OPT_URL:
		c->url = arg;
		return 1;
	case OPT_JSON:
		c->json = 1;
		return 1;
	case OPT_LOCK_WAIT:
		ferry_err_clear(&err);
		if (ferry_parse_duration_ms(arg, "--lock-wait", &ms, &err) !=
		    0) {
			ferry_cli_usage_error(c->prog, "%s", err.msg);
			return -1;
		}
		c->lock_wait_ms = (long)ms;
		return 1;
	}
	return 0;
}

static const char *
default_migrations_dir(void)
{
	struct stat st;

	if (stat("prisma/migrations", &st) == 0 && S_ISDIR(st.st_mode))
		return "prisma/migrations";
	return "migrations";
}

/* The folder reader's tick: the server's work goes on meanwhile. */
static void
db_progress(void *db)
{
	ferry_db_progress(db);
}

static void
fetch_progress(void *fetch)
{
	ferry_history_fetch_progress(fetch);
}

/*
 * Reads the folder and connects. With fetch, also starts reading the
 * history (after the lock, when fetch_lock_wait >= 0): the server sets up
 * the connection and answers the queries while the folder is read.
 * Returns 0 or an exit status.
 */
static int
open_both(struct common *c, struct ferry_migrations **migs,
    struct ferry_db **db, int need_migs, struct ferry_history_fetch **fetch,
    long fetch_lock_wait)
{
	struct ferry_migrations_read_opts ro;
	struct ferry_err err;
	int rc;

	ferry_err_clear(&err);
	*migs = NULL;
	*db = NULL;
	if (fetch != NULL)
		*fetch = NULL;
	if (c->migrations == NULL)
		c->migrations = default_migrations_dir();
	rc = ferry_db_start(ferry_db_pick_url(c->url), "ferry-agent", db, &err);
	if (rc == 0 && need_migs) {
		/* down.sql is for bundles only. */
		memset(&ro, 0, sizeof(ro));
		ro.skip_down = 1;
		ro.tick = db_progress;
		ro.tick_arg = *db;
		if (fetch != NULL) {
			*fetch =
			    ferry_history_fetch_new(*db, fetch_lock_wait, 1);
			ro.tick = fetch_progress;
			ro.tick_arg = *fetch;
		}
		rc = ferry_migrations_read_dir_opts(c->migrations, &ro, migs,
		    &err);
	}
	if (rc == 0)
		rc = ferry_db_finish(*db, &err);
	if (rc != 0) {
		if (fetch != NULL) {
			ferry_history_fetch_free(*fetch);
			*fetch = NULL;
		}
		ferry_db_close(*db);
		*db = NULL;
		ferry_migrations_free(*migs);
		*migs = NULL;
		return ferry_cli_fail(c->prog, &err);
	}
	running_db = *db;
	return 0;
}

static void
close_both(struct ferry_migrations *migs, struct ferry_db *db,
    struct ferry_history_fetch *fetch)
{
	running_db = NULL;
	ferry_history_fetch_free(fetch);
	ferry_db_close(db);
	ferry_migrations_free(migs);
}

static int
finish(struct common *c, json_t *j, struct ferry_err *err)
{
	if (c->json) {
		if (err->code != 0)
			json_object_set_new(j, "error", json_string(err->msg));
		ferry_cli_print_json(j);
	} else {
		json_decref(j);
	}
	if (err->code != 0)
		return ferry_cli_fail(c->prog, err);
	return 0;
}

/* ---------------------------------------------------------------- */

/* A signed bundle as apply's input, with what it takes to trust it. */
struct bundle_input {
	const char *path;
	const char *config_path;
	const char *rollout;
	const char *approvals[64];
	size_t napprovals;
	int accept_restored_db;
	struct ferry_agent_config *config;
	struct ferry_bundle *bundle;
};

/*
 * Verifies the bundle (signature, format, checksums) and its approvals
 * against the agent's config, before anything touches the database.
 */
static int
bundle_verify(struct bundle_input *in, struct ferry_err *err)
{
	struct ferry_approval_blob blobs[64];
	struct ferry_buf bufs[64];
	const struct ferry_pubkey *keys;
	size_t nkeys, i;
	int rc;

	rc = ferry_agent_config_load(in->config_path, &in->config, err);
	if (rc != 0)
		return rc;
	keys = ferry_agent_config_bundle_keys(in->config, &nkeys);
	rc = ferry_bundle_open_file(in->path, keys, nkeys, &in->bundle, err);
	if (rc != 0)
		return rc;
	if (ferry_agent_config_policy(in->config)->required > 0 &&
	    in->rollout == NULL)
		return ferry_errf(err, FERRY_EUSAGE,
		    "environment '%s' requires approvals: give --rollout ID "
		    "and --approval FILE for each",
		    ferry_agent_config_environment(in->config));
	for (i = 0; i < in->napprovals; i++) {
		ferry_buf_init(&bufs[i], FERRY_APPROVAL_MAX_BYTES);
		rc = ferry_buf_read_file(&bufs[i], in->approvals[i], err);
		blobs[i].data = (const uint8_t *)ferry_buf_str(&bufs[i]);
		blobs[i].len = ferry_buf_len(&bufs[i]);
		blobs[i].source = in->approvals[i];
		if (rc != 0) {
			in->napprovals = i + 1;
			goto out;
		}
	}
	rc = ferry_approval_check(ferry_agent_config_policy(in->config),
	    ferry_bundle_digest(in->bundle), in->rollout ? in->rollout : "",
	    blobs, in->napprovals, ferry_wall_us() / 1000, err);
out:
	for (i = 0; i < in->napprovals; i++)
		ferry_buf_release(&bufs[i]);
	return rc;
}

/*
 * Anti-rollback: compares the bundle with the highest one accepted (state
 * directory and database), refuses or records it before applying.
 */
static int
bundle_anchor(struct bundle_input *in, struct ferry_db *db, int dry_run,
    long lock_wait_ms, struct ferry_err *err)
{
	return ferry_anchor_advance(db,
	    ferry_agent_config_state_dir(in->config),
	    ferry_agent_config_project(in->config),
	    ferry_agent_config_name(in->config), in->bundle,
	    in->accept_restored_db, dry_run, lock_wait_ms, err);
}

static void
bundle_input_release(struct bundle_input *in)
{
	ferry_bundle_free(in->bundle);
	ferry_agent_config_free(in->config);
}

/* ---------------------------------------------------------------- */

static const char apply_usage[] =
    "usage: ferry-agent apply [options]\n"
    "\n"
    "Applies the pending migrations of a Prisma-layout folder, in Prisma's\n"
    "order, recording each in _prisma_migrations exactly as Prisma does.\n"
    "Each migration runs in one transaction together with its history row,\n"
    "unless it cannot (CREATE INDEX CONCURRENTLY, VACUUM, ALTER TYPE ... ADD\n"
    "VALUE then a use of it, its own COMMIT, -- ferry:no-transaction): then\n"
    "statement by statement, with progress recorded in the ferry schema.\n"
    "A lock timeout is retried with backoff, naming the blocking session.\n"
    "\n"
    "Options:\n" COMMON_HELP
    "  --dry-run             list what would run and in which mode; change\n"
    "                        nothing\n"
    "  --lock-timeout D      lock_timeout for each migration (default 5s;\n"
    "                        0 = none; a file's -- ferry:lock_timeout wins)\n"
    "  --statement-timeout D statement_timeout (default none)\n"
    "  --max-retries N       retries after a lock timeout (default 5)\n"
    "  --allow-modified      apply even if an applied migration changed\n"
    "  --resume NAME         continue a failed statement-by-statement\n"
    "                        migration from its first statement not done\n"
    "  --in-doubt done|redo  with --resume: the statement in doubt took\n"
    "                        effect (skip it) or did not (run it again)\n"
    "\n"
    "Signed bundles (instead of --migrations):\n"
    "  --bundle FILE         apply a signed bundle, verified before anything\n"
    "                        touches the database: signature by a trusted\n"
    "                        key, checksums, never older than the last one\n"
    "                        accepted, chained to it, approvals\n"
    "  --config FILE         the agent config: trusted keys, environment,\n"
    "                        project, approval policy, state directory\n"
    "  --rollout ID          the rollout the approvals name\n"
    "  --approval FILE       a release manager's approval (repeatable)\n"
    "  --accept-restored-database\n"
    "                        go on although the database is behind the\n"
    "                        agent's state (restored from a backup)\n"
    "\n"
    "Shadow check:\n"
    "  --expected REPORT     a report of 'ferry-agent shadow' made from the\n"
    "                        same migrations: refuse to apply when the\n"
    "                        database drifted from it, and check the\n"
    "                        digest after applying\n"
    "\n" FERRY_EXIT_CODES_HELP;

struct apply_ctx {
	struct common *c;
	json_t *events;
};

static void
print_event(void *ctx, const struct ferry_apply_event *ev)
{
	struct apply_ctx *a = ctx;
	static const char *const outcome[] = { "applied", "failed",
		"would apply" };

	json_array_append_new(a->events,
	    json_pack("{s:s, s:s, s:s, s:s, s:f, s:i, s:i, s:b, s:s?}", "name",
	        ev->name, "outcome", outcome[ev->outcome], "mode",
	        ferry_mode_name(ev->mode), "reason", ev->reason, "ms",
	        (double)ev->elapsed_us / 1000.0, "statements", ev->statements,
	        "retries", ev->retries, "fell_back", ev->fell_back, "error",
	        ev->error));
	if (a->c->json)
		return;
	if (ev->outcome == FERRY_OUTCOME_WOULD_APPLY)
		printf("would apply  %s  (%s%s%s)\n", ev->name,
		    ferry_mode_name(ev->mode), ev->reason[0] ? ": " : "",
		    ev->reason);
	else if (ev->outcome == FERRY_OUTCOME_APPLIED)
		printf("applied      %s  (%s%s, %.1f ms%s)\n", ev->name,
		    ferry_mode_name(ev->mode),
		    ev->fell_back ? " after the transaction attempt" : "",
		    (double)ev->elapsed_us / 1000.0,
		    ev->retries ? ", after lock-timeout retries" : "");
	else
		printf("FAILED       %s  (%s)\n%s\n", ev->name,
		    ferry_mode_name(ev->mode), ev->error);
	fflush(stdout);
}

int
cmd_apply(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTIONS,
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT },
		{ "statement-timeout", required_argument, NULL,
		    OPT_STATEMENT_TIMEOUT },
		{ "max-retries", required_argument, NULL, OPT_MAX_RETRIES },
		{ "allow-modified", no_argument, NULL, OPT_ALLOW_MODIFIED },
		{ "resume", required_argument, NULL, OPT_RESUME },
		{ "in-doubt", required_argument, NULL, OPT_IN_DOUBT },
		{ "bundle", required_argument, NULL, OPT_BUNDLE },
		{ "approval", required_argument, NULL, OPT_APPROVAL },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "rollout", required_argument, NULL, OPT_ROLLOUT },
		{ "accept-restored-database", no_argument, NULL,
		    OPT_ACCEPT_RESTORED },
		{ "expected", required_argument, NULL, OPT_EXPECTED },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_shadow_report *expected_rep = NULL;
	struct ferry_history_fetch *fetch = NULL;
	const char *expected = NULL;
	struct ferry_migrations *migs = NULL;
	const struct ferry_migrations *list;
	struct bundle_input bin;
	struct ferry_apply_opts ao;
	struct ferry_db *db = NULL;
	struct ferry_err err;
	struct apply_ctx ctx;
	struct common c;
	json_t *j;
	int64_t v, t0;
	int opt, r, applied = 0;

	common_init(&c, "ferry-agent apply");
	ferry_apply_opts_init(&ao);
	memset(&bin, 0, sizeof(bin));
	ferry_err_clear(&err);
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = common_opt(&c, opt, optarg);
		if (r < 0)
			return FERRY_EUSAGE;
		if (r > 0)
			continue;
		switch (opt) {
		case 'h':
			fputs(apply_usage, stdout);
			return 0;
		case OPT_DRY_RUN:
			ao.dry_run = 1;
			break;
		case OPT_LOCK_TIMEOUT:
		case OPT_STATEMENT_TIMEOUT:
			if (ferry_parse_duration_ms(optarg,
			        opt == OPT_LOCK_TIMEOUT ? "--lock-timeout"
			                                : "--statement-timeout",
			        &v, &err) != 0)
				return ferry_cli_usage_error(c.prog, "%s",
				    err.msg);
			if (opt == OPT_LOCK_TIMEOUT)
				ao.lock_timeout_ms = (long)v;
			else
				ao.statement_timeout_ms = (long)v;
			break;
		case OPT_MAX_RETRIES:
			if (ferry_parse_int64(optarg, 0, 100, &v) != 0)
				return ferry_cli_usage_error(c.prog,
				    "--max-retries wants a number from 0 to "
				    "100, not '%s'",
				    optarg);
			ao.max_retries = (int)v;
			break;
		case OPT_ALLOW_MODIFIED:
			ao.allow_modified = 1;
			break;
		case OPT_RESUME:
			ao.resume = optarg;
			break;
		case OPT_IN_DOUBT:
			if (strcmp(optarg, "done") == 0)
				ao.in_doubt = 1;
			else if (strcmp(optarg, "redo") == 0)
				ao.in_doubt = 2;
			else
				return ferry_cli_usage_error(c.prog,
				    "--in-doubt wants 'done' or 'redo', not "
				    "'%s'",
				    optarg);
			break;
		case OPT_BUNDLE:
			bin.path = optarg;
			break;
		case OPT_CONFIG:
			bin.config_path = optarg;
			break;
		case OPT_ROLLOUT:
			bin.rollout = optarg;
			break;
		case OPT_ACCEPT_RESTORED:
			bin.accept_restored_db = 1;
			break;
		case OPT_EXPECTED:
			expected = optarg;
			break;
		case OPT_APPROVAL:
			if (bin.napprovals == FERRY_NELEM(bin.approvals))
				return ferry_cli_usage_error(c.prog,
				    "too many --approval files");
			bin.approvals[bin.napprovals++] = optarg;
			break;
		default:
			return ferry_cli_bad_option(c.prog, argv);
		}
	}
	if (optind != argc)
		return ferry_cli_usage_error(c.prog, "unexpected argument '%s'",
		    argv[optind]);
	if (ao.in_doubt && ao.resume == NULL)
		return ferry_cli_usage_error(c.prog,
		    "--in-doubt only makes sense with --resume");
	if (bin.path != NULL &&
	    (c.migrations != NULL || bin.config_path == NULL))
		return ferry_cli_usage_error(c.prog,
		    "--bundle needs --config and excludes --migrations");
	if (bin.path == NULL &&
	    (bin.config_path || bin.napprovals || bin.rollout ||
	        bin.accept_restored_db))
		return ferry_cli_usage_error(c.prog,
		    "--config, --approval, --rollout and "
		    "--accept-restored-database go with --bundle");
	if (bin.path != NULL) {
		if (bundle_verify(&bin, &err) != 0) {
			bundle_input_release(&bin);
			return ferry_cli_fail(c.prog, &err);
		}
		if (c.url == NULL)
			c.url = ferry_agent_config_database_url(bin.config);
		c.migrations = bin.path;
	}
	/* Read the history while reading the folder, unless something
	   else must come first (the bundle's anchor, the drift check). */
	r = open_both(&c, &migs, &db, bin.path == NULL,
	    bin.path == NULL && expected == NULL ? &fetch : NULL,
	    ao.dry_run ? -1 : (c.lock_wait_ms > 0 ? c.lock_wait_ms : 0));
	if (r != 0) {
		bundle_input_release(&bin);
		return r;
	}
	list = migs;
	if (bin.path != NULL) {
		list = ferry_bundle_migrations(bin.bundle);
		if (bundle_anchor(&bin, db, ao.dry_run, c.lock_wait_ms, &err) !=
		    0) {
			close_both(migs, db, NULL);
			bundle_input_release(&bin);
			return ferry_cli_fail(c.prog, &err);
		}
	}
	/* --expected: no drift before, the shadow's digest after. */
	if (expected != NULL) {
		r = shadow_expect_before(c.prog, expected, db, list,
		    &expected_rep);
		if (r != 0) {
			close_both(migs, db, NULL);
			bundle_input_release(&bin);
			return r;
		}
	}
	install_signals();
	ao.lock_wait_ms = c.lock_wait_ms;
	ao.interrupted = &stop_requested;
	ctx.c = &c;
	ctx.events = json_array();
	ao.on_event = print_event;
	ao.ctx = &ctx;
	ao.fetch = fetch;
	t0 = ferry_mono_us();
	ferry_engine_apply(db, list, &ao, &applied, &err);
	r = 0;
	if (expected_rep != NULL && err.code == 0 && !ao.dry_run)
		r = shadow_expect_after(c.prog, db, expected_rep, c.json);
	else
		ferry_shadow_report_free(expected_rep);
	j = json_pack("{s:s, s:s, s:s, s:b, s:i, s:f, s:o}", "database",
	    ferry_db_display(db), "schema", ferry_db_schema(db),
	    "migrations_dir", c.migrations, "dry_run", ao.dry_run, "applied",
	    applied, "ms", (double)(ferry_mono_us() - t0) / 1000.0, "events",
	    ctx.events);
	if (!c.json && err.code == 0) {
		if (ao.dry_run)
			printf("dry run: %zu migration%s would be applied; "
			       "nothing was changed\n",
			    json_array_size(ctx.events),
			    json_array_size(ctx.events) == 1 ? "" : "s");
		else if (applied == 0)
			printf("nothing to apply: %zu migrations, the database "
			       "is up to date\n",
			    ferry_migrations_count(list));
		else
			printf("%d migration%s applied in %.1f ms; the "
			       "database "
			       "is up to date\n",
			    applied, applied == 1 ? "" : "s",
			    (double)(ferry_mono_us() - t0) / 1000.0);
	}
	if (bin.bundle != NULL) {
		char hex[65];
		ferry_hex_encode(ferry_bundle_digest(bin.bundle), 32, hex);
		json_object_set_new(j, "bundle",
		    json_pack("{s:s, s:I, s:s}", "project",
		        ferry_bundle_project(bin.bundle), "sequence",
		        (json_int_t)ferry_bundle_sequence(bin.bundle), "digest",
		        hex));
	}
	close_both(migs, db, fetch);
	bundle_input_release(&bin);
	if (r != 0) {
		json_object_set_new(j, "error",
		    json_string("post-apply verification failed"));
		if (c.json)
			ferry_cli_print_json(j);
		else
			json_decref(j);
		return r;
	}
	return finish(&c, j, &err);
}

/* ---------------------------------------------------------------- */

static const char status_usage[] =
    "usage: ferry-agent status [options]\n"
    "\n"
    "Compares the database's _prisma_migrations with the migrations folder\n"
    "and lists each migration as applied, pending, failed, modified (its\n"
    "migration.sql changed after it was applied) or missing (recorded in\n"
    "the database, not in the folder). Exit status 0 only if up to date.\n"
    "\n"
    "Options:\n" COMMON_HELP "\n" FERRY_EXIT_CODES_HELP;

static void
status_detail(const struct ferry_status_entry *e, char *buf, size_t n)
{
	buf[0] = '\0';
	switch (e->state) {
	case FERRY_STATE_APPLIED:
		snprintf(buf, n, "finished %s", e->finished_at);
		break;
	case FERRY_STATE_PENDING:
		snprintf(buf, n, "%s%s",
		    e->rolled_back_before ? "rolled back earlier; " : "",
		    e->out_of_order ? "sorts before an applied migration" : "");
		break;
	case FERRY_STATE_FAILED:
		if (e->in_doubt_step >= 0)
			snprintf(buf, n,
			    "started %s; statement %d of %d in doubt",
			    e->started_at, e->in_doubt_step + 1,
			    e->steps_total);
		else if (e->steps_total > 0)
			snprintf(buf, n, "started %s; %d of %d statements done",
			    e->started_at, e->applied_steps, e->steps_total);
		else
			snprintf(buf, n, "started %s%s", e->started_at,
			    e->local ? "" : "; not in the migrations folder");
		break;
	case FERRY_STATE_MODIFIED:
		snprintf(buf, n, "checksum in database %.12s..., file %.12s...",
		    e->db_checksum, e->local->checksum);
		break;
	case FERRY_STATE_MISSING:
		snprintf(buf, n, "finished %s; not in the migrations folder",
		    e->finished_at);
		break;
	}
}

int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_history_fetch *fetch = NULL;
	struct ferry_migrations *migs = NULL;
	struct ferry_status *st = NULL;
	struct ferry_db *db = NULL;
	struct ferry_err err;
	struct common c;
	json_t *j = NULL, *arr;
	char detail[512];
	size_t i, w = 9;
	int opt, r;

	common_init(&c, "ferry-agent status");
	ferry_err_clear(&err);
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = common_opt(&c, opt, optarg);
		if (r < 0)
			return FERRY_EUSAGE;
		if (r > 0)
			continue;
		if (opt == 'h') {
			fputs(status_usage, stdout);
			return 0;
		}
		return ferry_cli_bad_option(c.prog, argv);
	}
	if (optind != argc)
		return ferry_cli_usage_error(c.prog, "unexpected argument '%s'",
		    argv[optind]);
	r = open_both(&c, &migs, &db, 1, &fetch, -1);
	if (r != 0)
		return r;
	if (ferry_engine_status_from(db, migs, fetch, &st, &err) != 0) {
		close_both(migs, db, fetch);
		return ferry_cli_fail(c.prog, &err);
	}
	arr = json_array();
	for (i = 0; i < ferry_status_count(st); i++) {
		const struct ferry_status_entry *e = ferry_status_get(st, i);
		size_t l = strlen(e->name);
		w = l > w ? l : w;
		json_array_append_new(arr,
		    json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:i, "
		              "s:b, s:b}",
		        "name", e->name, "state", ferry_state_name(e->state),
		        "checksum", e->local ? e->local->checksum : NULL,
		        "db_checksum", e->db_checksum, "started_at",
		        e->started_at, "finished_at", e->finished_at, "logs",
		        e->logs, "applied_steps", e->applied_steps,
		        "rolled_back_before", e->rolled_back_before,
		        "out_of_order", e->out_of_order));
		if (e->in_doubt_step >= 0)
			json_object_set_new(json_array_get(arr, i),
			    "in_doubt_statement",
			    json_integer(e->in_doubt_step + 1));
	}
	j = json_pack("{s:s, s:s, s:s, s:b, s:b, s:{s:I, s:I, s:I, s:I, "
	              "s:I}, s:o}",
	    "database", ferry_db_display(db), "schema", ferry_db_schema(db),
	    "migrations_dir", c.migrations, "history_table",
	    ferry_status_has_table(st), "up_to_date",
	    ferry_status_up_to_date(st), "counts", "applied",
	    (json_int_t)ferry_status_n(st, FERRY_STATE_APPLIED), "pending",
	    (json_int_t)ferry_status_n(st, FERRY_STATE_PENDING), "failed",
	    (json_int_t)ferry_status_n(st, FERRY_STATE_FAILED), "modified",
	    (json_int_t)ferry_status_n(st, FERRY_STATE_MODIFIED), "missing",
	    (json_int_t)ferry_status_n(st, FERRY_STATE_MISSING), "migrations",
	    arr);
	if (!c.json) {
		printf("%-8s  %-*s  %s\n", "STATE", (int)w, "MIGRATION",
		    "DETAIL");
		for (i = 0; i < ferry_status_count(st); i++) {
			const struct ferry_status_entry *e =
			    ferry_status_get(st, i);
			status_detail(e, detail, sizeof(detail));
			printf("%-8s  %-*s  %s\n", ferry_state_name(e->state),
			    (int)w, e->name, detail);
		}
		if (!ferry_status_has_table(st))
			printf("\nno _prisma_migrations table in schema '%s' "
			       "yet%s\n",
			    ferry_db_schema(db),
			    ferry_status_other_tables(st) > 0
			        ? " and the schema has other tables: "
			          "'ferry-agent baseline' adopts it"
			        : "");
		if (ferry_status_up_to_date(st))
			printf("\nthe database is up to date (%zu "
			       "migrations)\n",
			    ferry_status_count(st));
		else
			printf("\nnot up to date: %zu applied, %zu pending, "
			       "%zu failed, %zu modified, %zu missing "
			       "locally\n",
			    ferry_status_n(st, FERRY_STATE_APPLIED),
			    ferry_status_n(st, FERRY_STATE_PENDING),
			    ferry_status_n(st, FERRY_STATE_FAILED),
			    ferry_status_n(st, FERRY_STATE_MODIFIED),
			    ferry_status_n(st, FERRY_STATE_MISSING));
	}
	r = ferry_status_up_to_date(st) ? 0 : FERRY_EFINDING;
	ferry_status_free(st);
	close_both(migs, db, fetch);
	if (c.json)
		ferry_cli_print_json(j);
	else
		json_decref(j);
	return r;
}

/* ---------------------------------------------------------------- */

static const char resolve_usage[] =
    "usage: ferry-agent resolve (--applied NAME | --rolled-back NAME) "
    "[options]\n"
    "\n"
    "Resolves a failed migration, as 'prisma migrate resolve' does:\n"
    "  --applied NAME      record NAME as applied without running it (you\n"
    "                      completed it by hand, or it is already there)\n"
    "  --rolled-back NAME  mark NAME's failed attempt rolled back; the next\n"
    "                      apply runs the whole file again\n"
    "\n"
    "Options:\n" COMMON_HELP "\n" FERRY_EXIT_CODES_HELP;

int
cmd_resolve(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTIONS,
		{ "applied", required_argument, NULL, OPT_APPLIED },
		{ "rolled-back", required_argument, NULL, OPT_ROLLED_BACK },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_migrations *migs = NULL;
	struct ferry_db *db = NULL;
	struct ferry_err err;
	struct common c;
	const char *applied = NULL, *rolled = NULL;
	int opt, r;

	common_init(&c, "ferry-agent resolve");
	ferry_err_clear(&err);
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = common_opt(&c, opt, optarg);
		if (r < 0)
			return FERRY_EUSAGE;
		if (r > 0)
			continue;
		switch (opt) {
		case 'h':
			fputs(resolve_usage, stdout);
			return 0;
		case OPT_APPLIED:
			applied = optarg;
			break;
		case OPT_ROLLED_BACK:
			rolled = optarg;
			break;
		default:
			return ferry_cli_bad_option(c.prog, argv);
		}
	}
	if ((applied == NULL) == (rolled == NULL) || optind != argc)
		return ferry_cli_usage_error(c.prog,
		    "give exactly one of --applied NAME or --rolled-back NAME");
	r = open_both(&c, &migs, &db, applied != NULL, NULL, 0);
	if (r != 0)
		return r;
	if (applied != NULL)
		ferry_engine_resolve_applied(db, migs, applied, c.lock_wait_ms,
		    &err);
	else
		ferry_engine_resolve_rolled_back(db, rolled, c.lock_wait_ms,
		    &err);
	if (err.code == 0 && !c.json)
		printf("migration '%s' marked as %s\n",
		    applied ? applied : rolled,
		    applied ? "applied" : "rolled back");
	close_both(migs, db, NULL);
	return finish(&c,
	    json_pack("{s:s, s:s}", "migration", applied ? applied : rolled,
	        "marked", applied ? "applied" : "rolled_back"),
	    &err);
}

/* ---------------------------------------------------------------- */

static const char baseline_usage[] =
    "usage: ferry-agent baseline [--up-to NAME] [options]\n"
    "\n"
    "Adopts a database whose schema already exists: records the migrations\n"
    "of the folder (up to and including NAME, if given) as applied without\n"
    "running them, creating _prisma_migrations if needed. Migrations\n"
    "already recorded are left alone.\n"
    "\n"
    "Options:\n"
    "  --up-to NAME          stop after this migration\n" COMMON_HELP
    "\n" FERRY_EXIT_CODES_HELP;

int
cmd_baseline(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTIONS,
		{ "up-to", required_argument, NULL, OPT_UP_TO },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_migrations *migs = NULL;
	struct ferry_db *db = NULL;
	struct ferry_err err;
	struct common c;
	const char *up_to = NULL;
	int opt, r, recorded = 0;

	common_init(&c, "ferry-agent baseline");
	ferry_err_clear(&err);
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = common_opt(&c, opt, optarg);
		if (r < 0)
			return FERRY_EUSAGE;
		if (r > 0)
			continue;
		if (opt == 'h') {
			fputs(baseline_usage, stdout);
			return 0;
		}
		if (opt == OPT_UP_TO) {
			up_to = optarg;
			continue;
		}
		return ferry_cli_bad_option(c.prog, argv);
	}
	if (optind != argc)
		return ferry_cli_usage_error(c.prog, "unexpected argument '%s'",
		    argv[optind]);
	r = open_both(&c, &migs, &db, 1, NULL, 0);
	if (r != 0)
		return r;
	ferry_engine_baseline(db, migs, up_to, c.lock_wait_ms, &recorded, &err);
	if (err.code == 0 && !c.json)
		printf("recorded %d migration%s as applied without running "
		       "them\n",
		    recorded, recorded == 1 ? "" : "s");
	close_both(migs, db, NULL);
	return finish(&c, json_pack("{s:i}", "recorded", recorded), &err);
}
