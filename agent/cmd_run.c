/*
 * cmd_run.c -- "ferry-agent run": the agent daemon. Dials the coordinator,
 * registers, long-polls for work, runs it with the engine and reports
 * the outcome until the coordinator acknowledges it.
 *
 * A report is written to STATE_DIR/reports/<id>.report before it is sent
 * and removed once acknowledged, so a crash or a coordinator restart
 * neither loses a report nor makes a second one: the same report id is
 * sent again and the coordinator stores it once.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
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
#include "ferry.pb-c.h"
#include "hash.h"
#include "history.h"
#include "keys.h"
#include "log.h"
#include "schema.h"
#include "util.h"
#include "wire.h"

#define PROG "ferry-agent run"

static const char run_usage[] =
    "usage: ferry-agent run --config FILE [--once]\n"
    "\n"
    "Runs the agent: dials the coordinator named in the config's\n"
    "[coordinator] section (pinning its public key), registers, waits for\n"
    "work and runs it against the database beside it -- a bundle is\n"
    "verified (signature, chain, no rollback, approvals) before anything is\n"
    "applied -- then reports the outcome until the coordinator has it.\n"
    "\n"
    "The agent's key is [agent] key, or STATE_DIR/agent.key, created on\n"
    "the first run. A new key is pending until an operator runs\n"
    "'ferry agents accept ID' on the coordinator side. Logs go to stderr\n"
    "(logfmt); SIGTERM or SIGINT stops it after the work in hand.\n"
    "\n"
    "Options:\n"
    "  --config FILE   the agent's config (see deploy/examples/agent.conf)\n"
    "  --once          exit after the first batch of work (tests, cron)\n"
    "  -h, --help      show this help\n"
    "\n"
    "Environment:\n"
    "  DATABASE_URL, DIRECT_URL  when the config sets no database_url\n"
    "  FERRY_LOG                 log level (debug, info, warn, error)\n"
    "\n" FERRY_EXIT_CODES_HELP;

static volatile sig_atomic_t stop_flag;
static struct ferry_db *running_db;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
	ferry_db_cancel(running_db);
}

struct agent {
	struct ferry_agent_config *cfg;
	struct ferry_seckey *key;
	struct ferry_wire_client *wc;
	const char *url;
	char *reports_dir;
	char server_version[64];
};

/* ------------------------------------------------------------------ */

static int
load_or_make_key(struct agent *a, struct ferry_err *err)
{
	const char *path = ferry_agent_config_key_path(a->cfg);
	const char *dir = ferry_agent_config_state_dir(a->cfg);
	char *def = NULL;
	struct stat st;
	int rc;

	if (path == NULL)
		path = def = xasprintf("%s/agent.key", dir);
	if (stat(path, &st) != 0 && errno == ENOENT && def != NULL) {
		/* First run: an agent key of its own, like a salt minion. */
		rc = ferry_mkdir_p(dir, err);
		if (rc == 0)
			rc = ferry_seckey_generate("agent", &a->key, err);
		if (rc == 0)
			rc = ferry_seckey_save(a->key, dir, NULL, err);
		if (rc == 0)
			ferry_log_info("created the agent key", "path", path,
			    "key", ferry_seckey_public(a->key)->id);
	} else
		rc = ferry_seckey_load(path, NULL, &a->key, err);
	free(def);
	return rc;
}

static int
call(struct agent *a, enum ferry_op op, const ProtobufCMessage *req,
    long wait_ms, const ProtobufCMessageDescriptor *desc,
    ProtobufCMessage **reply, struct ferry_err *err)
{
	return ferry_wire_call_msg(a->wc, op, req, wait_ms, desc, reply, err);
}

/* ------------------------------------------------------------------ */
/* reports                                                             */

static char *
report_path(struct agent *a, const char *id)
{
	return xasprintf("%s/%s.report", a->reports_dir, id);
}

/* Sends one journaled report until acknowledged (or stopped). */
static int
send_report(struct agent *a, const uint8_t *data, size_t len, const char *id,
    struct ferry_err *err)
{
	uint8_t *rep = NULL;
	size_t rlen = 0;
	char *path;
	int rc;

	for (;;) {
		struct ferry_err e = { 0 };
		rc = ferry_wire_call(a->wc, FERRY_OP_REPORT, data, len, 0, &rep,
		    &rlen, &e);
		if (rc == 0)
			break;
		if (stop_flag) {
			*err = e;
			return rc;
		}
		if (rc == FERRY_EUSAGE || rc == FERRY_EFINDING) {
			/* Refused for good (e.g. not our work item): keep
			   it aside rather than retrying forever. */
			ferry_log_error("the coordinator refused a report",
			    "report", id, "error", e.msg);
			break;
		}
		ferry_log_warn("report not acknowledged yet; retrying",
		    "report", id, "error", e.msg);
		ferry_sleep_ms(1000, &stop_flag);
	}
	free(rep);
	path = report_path(a, id);
	if (rc == 0 && unlink(path) != 0 && errno != ENOENT)
		ferry_log_warn("cannot remove a sent report", "path", path);
	if (rc != 0) {
		char *aside = xasprintf("%s.refused", path);
		rename(path, aside);
		free(aside);
	}
	free(path);
	return 0;
}

static int
journal_report(struct agent *a, Ferry__ReportRequest *r, struct ferry_err *err)
{
	size_t len = ferry__report_request__get_packed_size(r);
	uint8_t *data = xmalloc(len ? len : 1);
	char *path = report_path(a, r->report_id);
	int rc;

	ferry__report_request__pack(r, data);
	rc = ferry_write_file_atomic(path, data, len, 0600, err);
	if (rc == 0)
		rc = send_report(a, data, len, r->report_id, err);
	free(path);
	free(data);
	return rc;
}

/* Sends what an earlier run journaled but could not deliver. */
static int
resend_journal(struct agent *a, struct ferry_err *err)
{
	DIR *d = opendir(a->reports_dir);
	struct dirent *de;
	struct ferry_buf b;
	size_t n;
	int rc = 0;

	if (d == NULL)
		return 0;
	while (rc == 0 && !stop_flag && (de = readdir(d)) != NULL) {
		char *path, *id;
		n = strlen(de->d_name);
		if (n <= 7 || strcmp(de->d_name + n - 7, ".report") != 0)
			continue;
		path = xasprintf("%s/%s", a->reports_dir, de->d_name);
		id = xstrndup(de->d_name, n - 7);
		ferry_buf_init(&b, FERRY_WIRE_MAX_FRAME);
		if (ferry_buf_read_file(&b, path, err) == 0) {
			ferry_log_info("sending a report from an earlier run",
			    "report", id);
			rc = send_report(a, (const uint8_t *)ferry_buf_str(&b),
			    ferry_buf_len(&b), id, err);
		} else
			rc = err->code;
		ferry_buf_release(&b);
		free(id);
		free(path);
	}
	closedir(d);
	return rc;
}

/* ------------------------------------------------------------------ */
/* work                                                                */

static int
fetch_bundle(struct agent *a, const Ferry__WorkItem *w, uint8_t **out,
    size_t *outlen, struct ferry_err *err)
{
	Ferry__FetchRequest rq = FERRY__FETCH_REQUEST__INIT;
	Ferry__FetchReply *r = NULL;
	uint8_t *data, digest[32];
	size_t total = w->bundle_size, off = 0;

	*out = NULL;
	if (w->bundle_digest.len != 32)
		return ferry_errf(err, FERRY_EFINDING,
		    "work item names no bundle");
	if (total == 0 || total > FERRY_BUNDLE_MAX_BYTES)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle size %zu out of range", total);
	data = xmalloc(total);
	rq.bundle_digest = w->bundle_digest;
	while (off < total) {
		rq.offset = off;
		rq.length = FERRY_WIRE_CHUNK;
		if (call(a, FERRY_OP_FETCH, &rq.base, 0,
		        &ferry__fetch_reply__descriptor,
		        (ProtobufCMessage **)&r, err) != 0)
			goto fail;
		if (r->total != total || r->data.len == 0 ||
		    r->data.len > total - off) {
			ferry_errf(err, FERRY_EFINDING,
			    "the coordinator sent a bundle chunk that does not "
			    "fit (offset %zu, %zu bytes, total %zu)",
			    off, r->data.len, total);
			ferry__fetch_reply__free_unpacked(r, NULL);
			goto fail;
		}
		memcpy(data + off, r->data.data, r->data.len);
		off += r->data.len;
		ferry__fetch_reply__free_unpacked(r, NULL);
	}
	ferry_sha256(data, total, digest);
	if (memcmp(digest, w->bundle_digest.data, 32) != 0) {
		ferry_errf(err, FERRY_EFINDING,
		    "the bundle received does not match its digest");
		goto fail;
	}
	*out = data;
	*outlen = total;
	return 0;
fail:
	free(data);
	return err->code;
}

struct results {
	Ferry__MigrationResult **v;
	size_t n;
	const struct ferry_migrations *migs; /* for the checksums */
};

static void
on_event(void *ctx, const struct ferry_apply_event *ev)
{
	struct results *res = ctx;
	Ferry__MigrationResult *m = xmalloc(sizeof(*m));

	ferry__migration_result__init(m);
	m->name = xstrdup(ev->name);
	{
		const struct ferry_migration *mig = res->migs
		    ? ferry_migrations_find(res->migs, ev->name)
		    : NULL;
		m->checksum = xstrdup(mig ? mig->checksum : "");
	}
	m->outcome = xstrdup(ev->outcome == FERRY_OUTCOME_APPLIED ? "applied"
	        : ev->outcome == FERRY_OUTCOME_FAILED             ? "failed"
	                                                          : "skipped");
	m->duration_us = ev->elapsed_us;
	m->error = xstrdup(ev->error ? ev->error : "");
	res->v = xrealloc(res->v, (res->n + 1) * sizeof(*res->v));
	res->v[res->n++] = m;
	ferry_log_info(ev->outcome == FERRY_OUTCOME_FAILED
	        ? "migration failed"
	        : "migration applied",
	    "migration", ev->name);
}

/* The schema digest of db into the report (best effort). */
static void
report_digest(struct ferry_db *db, Ferry__ReportRequest *rp)
{
	struct ferry_err err = { 0 };
	struct ferry_schema *sch = NULL;

	if (ferry_schema_introspect(db, NULL, &sch, NULL, &err) == 0)
		rp->schema_digest = xstrdup(ferry_schema_digest(sch));
	else
		ferry_log_warn("cannot compute the schema digest", "error",
		    err.msg);
	ferry_schema_free(sch);
}

/*
 * Verifies and applies one bundle; fills the report's outcome, detail,
 * sequence, digests and migration results.
 */
static void
run_apply(struct agent *a, const Ferry__WorkItem *w, Ferry__ReportRequest *rp,
    struct results *res)
{
	struct ferry_err err = { 0 };
	struct ferry_approval_blob blobs[64];
	struct ferry_bundle *b = NULL;
	struct ferry_db *db = NULL;
	struct ferry_apply_opts ao;
	const struct ferry_pubkey *keys;
	uint8_t *data = NULL;
	size_t len = 0, nkeys, i;
	int applied = 0, rc;

	rp->outcome = "refused";
	rc = fetch_bundle(a, w, &data, &len, &err);
	if (rc == 0) {
		keys = ferry_agent_config_bundle_keys(a->cfg, &nkeys);
		rc = ferry_bundle_open(data, len, keys, nkeys, &b, &err);
	}
	if (rc == 0 && w->n_approvals > 64)
		rc = ferry_errf(&err, FERRY_EFINDING, "too many approvals");
	if (rc == 0) {
		for (i = 0; i < w->n_approvals; i++) {
			blobs[i].data = w->approvals[i].data;
			blobs[i].len = w->approvals[i].len;
			blobs[i].source = "approval from the coordinator";
		}
		rc = ferry_approval_check(ferry_agent_config_policy(a->cfg),
		    ferry_bundle_digest(b), w->rollout_id, blobs,
		    w->n_approvals, ferry_wall_us() / 1000, &err);
	}
	if (rc == 0) {
		rp->bundle_sequence = ferry_bundle_sequence(b);
		rp->bundle_digest.data = (uint8_t *)ferry_bundle_digest(b);
		rp->bundle_digest.len = 32;
		rp->outcome = "failed";
		rc = ferry_db_open(ferry_db_pick_url(
		                       ferry_agent_config_database_url(a->cfg)),
		    "ferry-agent", &db, &err);
	}
	if (rc == 0) {
		rp->outcome = "refused";
		rc = ferry_anchor_advance(db,
		    ferry_agent_config_state_dir(a->cfg),
		    ferry_agent_config_project(a->cfg),
		    ferry_agent_config_name(a->cfg), b, 0, 0, 10000, &err);
	}
	if (rc == 0) {
		rp->outcome = "failed";
		ferry_apply_opts_init(&ao);
		ao.interrupted = &stop_flag;
		ao.on_event = on_event;
		ao.ctx = res;
		res->migs = ferry_bundle_migrations(b);
		running_db = db;
		rc = ferry_engine_apply(db, ferry_bundle_migrations(b), &ao,
		    &applied, &err);
		running_db = NULL;
	}
	if (rc == 0) {
		rp->outcome = applied > 0 ? "applied" : "up-to-date";
		report_digest(db, rp);
		rp->detail = xasprintf("%d migration%s applied, bundle %llu",
		    applied, applied == 1 ? "" : "s",
		    (unsigned long long)rp->bundle_sequence);
	} else
		rp->detail = xstrdup(err.msg);
	rp->exit_code = rc;
	if (rp->bundle_digest.data != NULL) {
		/* b is freed below: keep a copy for the report. */
		uint8_t *d = xmalloc(32);
		memcpy(d, rp->bundle_digest.data, 32);
		rp->bundle_digest.data = d;
	}
	ferry_db_close(db);
	ferry_bundle_free(b);
	free(data);
}

/*
 * Compares the database with a bundle, changing nothing: up-to-date, or
 * pending with the counts of each state.
 */
static void
run_status(struct agent *a, const Ferry__WorkItem *w, Ferry__ReportRequest *rp)
{
	struct ferry_err err = { 0 };
	struct ferry_bundle *b = NULL;
	struct ferry_status *st = NULL;
	struct ferry_db *db = NULL;
	const struct ferry_pubkey *keys;
	uint8_t *data = NULL;
	size_t len = 0, nkeys;
	int rc;

	rp->outcome = "refused";
	rc = fetch_bundle(a, w, &data, &len, &err);
	if (rc == 0) {
		keys = ferry_agent_config_bundle_keys(a->cfg, &nkeys);
		rc = ferry_bundle_open(data, len, keys, nkeys, &b, &err);
	}
	if (rc == 0) {
		rp->outcome = "failed";
		rp->bundle_sequence = ferry_bundle_sequence(b);
		rc = ferry_db_open(ferry_db_pick_url(
		                       ferry_agent_config_database_url(a->cfg)),
		    "ferry-agent", &db, &err);
	}
	if (rc == 0)
		rc = ferry_engine_status(db, ferry_bundle_migrations(b), &st,
		    &err);
	if (rc == 0) {
		rp->outcome =
		    ferry_status_up_to_date(st) ? "up-to-date" : "pending";
		rp->detail = xasprintf("%zu applied, %zu pending, %zu failed, "
		                       "%zu modified, %zu missing locally "
		                       "(bundle %llu)",
		    ferry_status_n(st, FERRY_STATE_APPLIED),
		    ferry_status_n(st, FERRY_STATE_PENDING),
		    ferry_status_n(st, FERRY_STATE_FAILED),
		    ferry_status_n(st, FERRY_STATE_MODIFIED),
		    ferry_status_n(st, FERRY_STATE_MISSING),
		    (unsigned long long)rp->bundle_sequence);
		report_digest(db, rp);
	} else
		rp->detail = xstrdup(err.msg);
	rp->exit_code = rc;
	ferry_status_free(st);
	ferry_db_close(db);
	ferry_bundle_free(b);
	free(data);
}

static int
do_work(struct agent *a, const Ferry__WorkItem *w, struct ferry_err *err)
{
	Ferry__ReportRequest rp = FERRY__REPORT_REQUEST__INIT;
	struct results res = { 0 };
	char rid[37];
	int64_t t0 = ferry_mono_us();
	size_t i;
	int rc;

	ferry_log_info("work received", "work", w->work_id, "kind", w->kind);
	ferry_uuid_v4(rid);
	rp.report_id = rid;
	rp.work_id = w->work_id;
	rp.started_unix_ms = ferry_wall_us() / 1000;
	rp.detail = NULL;
	rp.schema_digest = (char *)"";
	if (strcmp(w->kind, "apply") == 0)
		run_apply(a, w, &rp, &res);
	else if (strcmp(w->kind, "status") == 0)
		run_status(a, w, &rp);
	else {
		rp.outcome = "refused";
		rp.detail = xasprintf("unsupported work kind '%s'", w->kind);
		rp.exit_code = FERRY_EUSAGE;
	}
	rp.duration_us = ferry_mono_us() - t0;
	rp.migrations = res.v;
	rp.n_migrations = res.n;
	ferry_log_info("work done", "work", w->work_id, "outcome", rp.outcome,
	    "detail", rp.detail);
	rc = journal_report(a, &rp, err);
	for (i = 0; i < res.n; i++)
		ferry__migration_result__free_unpacked(res.v[i], NULL);
	free(res.v);
	free(rp.detail);
	if (rp.schema_digest[0] != '\0')
		free(rp.schema_digest);
	free(rp.bundle_digest.data);
	return rc;
}

/* ------------------------------------------------------------------ */

static void
probe_server_version(struct agent *a)
{
	struct ferry_err e = { 0 };
	struct ferry_db *db = NULL;

	snprintf(a->server_version, sizeof(a->server_version), "unknown");
	if (ferry_db_open(ferry_db_pick_url(
	                      ferry_agent_config_database_url(a->cfg)),
	        "ferry-agent", &db, &e) != 0) {
		ferry_log_warn("cannot reach the database yet", "error", e.msg);
		return;
	}
	snprintf(a->server_version, sizeof(a->server_version), "%s",
	    PQparameterStatus(ferry_db_conn(db), "server_version")
	        ? PQparameterStatus(ferry_db_conn(db), "server_version")
	        : "unknown");
	ferry_db_close(db);
}

static int
do_register(struct agent *a, char **state, struct ferry_err *err)
{
	Ferry__RegisterRequest rq = FERRY__REGISTER_REQUEST__INIT;
	Ferry__RegisterReply *r = NULL;

	rq.agent_id = (char *)ferry_agent_config_name(a->cfg);
	rq.environment = (char *)ferry_agent_config_environment(a->cfg);
	rq.project = (char *)ferry_agent_config_project(a->cfg);
	rq.version = (char *)FERRY_VERSION;
	rq.server_version = a->server_version;
	if (call(a, FERRY_OP_REGISTER, &rq.base, 0,
	        &ferry__register_reply__descriptor, (ProtobufCMessage **)&r,
	        err) != 0)
		return err->code;
	*state = xstrdup(r->state);
	ferry__register_reply__free_unpacked(r, NULL);
	return 0;
}

static int
loop(struct agent *a, int once, struct ferry_err *err)
{
	long hold = ferry_agent_config_poll_hold_ms(a->cfg), wait = 500;
	char last_refusal[sizeof(err->msg)] = "";
	char *state = NULL;
	int registered = 0, polling = 0, rc = 0;
	size_t i;

	while (!stop_flag) {
		Ferry__PollRequest pr = FERRY__POLL_REQUEST__INIT;
		Ferry__PollReply *r = NULL;
		struct ferry_err e = { 0 };

		if (!registered) {
			free(state);
			state = NULL;
			rc = do_register(a, &state, &e);
			if (rc != 0) {
				if (stop_flag)
					break;
				if (rc == FERRY_EUSAGE ||
				    rc == FERRY_EFINDING) {
					*err = e;
					break;
				}
				ferry_sleep_ms(wait, &stop_flag);
				continue;
			}
			if (last_refusal[0] == '\0' ||
			    strcmp(state, "accepted") == 0)
				ferry_log_info("registered", "agent",
				    ferry_agent_config_name(a->cfg), "state",
				    state, "key",
				    ferry_seckey_public(a->key)->id);
			registered = 1;
			if (resend_journal(a, err) != 0)
				break;
		}
		pr.hold_ms = (uint32_t)hold;
		rc = call(a, FERRY_OP_POLL, &pr.base, hold,
		    &ferry__poll_reply__descriptor, (ProtobufCMessage **)&r,
		    &e);
		if (rc == FERRY_EFINDING) {
			/* pending, rejected, revoked: say so (once), wait,
			   ask again */
			if (strcmp(e.msg, last_refusal) != 0)
				ferry_log_warn("no work for this agent",
				    "reason", e.msg);
			snprintf(last_refusal, sizeof(last_refusal), "%s",
			    e.msg);
			registered = 0;
			polling = 0;
			ferry_sleep_ms(wait, &stop_flag);
			wait = wait * 2 > 10000 ? 10000 : wait * 2;
			continue;
		}
		if (rc != 0) {
			if (!stop_flag)
				ferry_log_warn("poll failed", "error", e.msg);
			continue;
		}
		wait = 500;
		if (!polling)
			ferry_log_info("polling for work", "agent",
			    ferry_agent_config_name(a->cfg), "state", r->state);
		polling = 1;
		last_refusal[0] = '\0';
		for (i = 0; i < r->n_items && !stop_flag; i++)
			if (do_work(a, r->items[i], err) != 0) {
				rc = err->code;
				break;
			}
		if (r->n_items > 0 && once)
			stop_flag = 1;
		ferry__poll_reply__free_unpacked(r, NULL);
		if (rc != 0)
			break;
	}
	free(state);
	if (stop_flag && rc == FERRY_EOPER && err->code == 0)
		rc = 0;
	return rc;
}

int
cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_wire_opts wo = { 0 };
	struct agent a;
	struct sigaction sa;
	struct ferry_err err;
	const char *config = NULL;
	int once = 0, c;

	ferry_err_clear(&err);
	memset(&a, 0, sizeof(a));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'o':
			once = 1;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			return ferry_cli_bad_option(PROG, argv);
		}
	}
	if (optind != argc)
		return ferry_cli_usage_error(PROG, "unexpected argument '%s'",
		    argv[optind]);
	if (config == NULL)
		return ferry_cli_usage_error(PROG, "--config FILE is required");
	if (ferry_agent_config_load(config, &a.cfg, &err) != 0)
		return ferry_cli_fail(PROG, &err);
	if (ferry_agent_config_coordinator_url(a.cfg) == NULL) {
		ferry_errf(&err, FERRY_EUSAGE,
		    "'%s' names no coordinator: add a [coordinator] section "
		    "with url and public_key",
		    config);
		goto out;
	}
	if (load_or_make_key(&a, &err) != 0)
		goto out;
	a.reports_dir =
	    xasprintf("%s/reports", ferry_agent_config_state_dir(a.cfg));
	if (ferry_mkdir_p(a.reports_dir, &err) != 0)
		goto out;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	probe_server_version(&a);
	wo.url = ferry_agent_config_coordinator_url(a.cfg);
	wo.key = a.key;
	wo.pinned = ferry_agent_config_coordinator_key(a.cfg);
	wo.call_timeout_ms = 10000;
	wo.stop = &stop_flag;
	if (ferry_wire_client_open(&wo, &a.wc, &err) != 0)
		goto out;
	ferry_log_info("agent starting", "agent",
	    ferry_agent_config_name(a.cfg), "environment",
	    ferry_agent_config_environment(a.cfg), "coordinator", wo.url);
	loop(&a, once, &err);
	ferry_log_info("agent stopped", "agent",
	    ferry_agent_config_name(a.cfg));
out:
	ferry_wire_client_close(a.wc);
	ferry_seckey_free(a.key);
	free(a.reports_dir);
	ferry_agent_config_free(a.cfg);
	if (err.code != 0)
		return ferry_cli_fail(PROG, &err);
	return 0;
}
