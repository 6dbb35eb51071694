/*
 * cmd_agents.c -- CLI commands served by the coordinator:
 * "ferry agents", "ferry dispatch", "ferry work".
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "bundle.h"
#include "cli.h"
#include "client.h"
#include "commands.h"
#include "ferry.pb-c.h"
#include "hash.h"
#include "history.h"
#include "util.h"

static void
fmt_time(int64_t ms, char *buf, size_t n)
{
	if (ms <= 0)
		snprintf(buf, n, "-");
	else
		ferry_format_utc(ms * 1000, buf, n);
}

/* ------------------------------------------------------------------ */
/* ferry agents                                                        */

static const char agents_usage[] =
    "usage: ferry agents [list] [--json] [connection options]\n"
    "       ferry agents accept|reject|revoke AGENT_ID... [connection "
    "options]\n"
    "       ferry agents accept --all-pending [--env ENV]\n"
    "\n"
    "Lists the agents the coordinator knows, or changes the state of one.\n"
    "A new agent key is pending until an operator accepts it; pending,\n"
    "rejected and revoked agents get no work. Revoking cuts an agent off at\n"
    "once and for good (it needs a new key and id to come back).\n"
    "\n"
    "An agent is online while it polls: silent past its poll deadline plus\n"
    "a margin, it is offline.\n"
    "\n"
    "Options:\n"
    "  --json                print a JSON document instead of a "
    "table\n" CLIENT_HELP "  -h, --help            show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

static int
agents_list(struct client *cl, int json, struct ferry_err *err)
{
	Ferry__AgentsListRequest rq = FERRY__AGENTS_LIST_REQUEST__INIT;
	Ferry__AgentsListReply *r = NULL;
	char seen[40];
	size_t i;

	if (client_call(cl, FERRY_OP_AGENTS_LIST, &rq.base,
	        &ferry__agents_list_reply__descriptor, (ProtobufCMessage **)&r,
	        err) != 0)
		return err->code;
	if (json) {
		json_t *arr = json_array();
		for (i = 0; i < r->n_agents; i++) {
			Ferry__AgentInfo *a = r->agents[i];
			fmt_time(a->last_seen_unix_ms, seen, sizeof(seen));
			json_array_append_new(arr,
			    json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s, "
			              "s:s, s:I, s:s, s:s, s:s, s:s}",
			        "id", a->agent_id, "environment",
			        a->environment, "version", a->version, "state",
			        a->state, "online", a->online, "last_seen",
			        seen, "address", a->address, "key_id",
			        a->key_id, "last_bundle_sequence",
			        (json_int_t)a->last_bundle_sequence,
			        "last_bundle_digest", a->last_bundle_digest,
			        "last_schema_digest", a->last_schema_digest,
			        "server_version", a->server_version,
			        "last_outcome", a->last_outcome));
		}
		ferry__agents_list_reply__free_unpacked(r, NULL);
		return ferry_cli_print_json(json_pack("{s:o}", "agents", arr));
	}
	if (r->n_agents == 0)
		printf("no agents yet: start ferry-agent run on a database "
		       "host\n");
	else
		printf("%-20s %-10s %-9s %-8s %-24s %-21s %-5s %-12s %s\n",
		    "ID", "ENV", "STATE", "ONLINE", "LAST SEEN", "ADDRESS",
		    "SEQ", "SCHEMA", "LAST OUTCOME");
	for (i = 0; i < r->n_agents; i++) {
		Ferry__AgentInfo *a = r->agents[i];
		char seq[24];
		fmt_time(a->last_seen_unix_ms, seen, sizeof(seen));
		snprintf(seq, sizeof(seq), "%llu",
		    (unsigned long long)a->last_bundle_sequence);
		printf("%-20s %-10s %-9s %-8s %-24s %-21s %-5s %-12.12s %s\n",
		    a->agent_id, a->environment, a->state,
		    a->online ? "online" : "offline", seen,
		    a->address[0] ? a->address : "-",
		    a->last_bundle_sequence ? seq : "-",
		    a->last_schema_digest[0] ? a->last_schema_digest : "-",
		    a->last_outcome[0] ? a->last_outcome : "-");
	}
	ferry__agents_list_reply__free_unpacked(r, NULL);
	return 0;
}

static int
agents_action(struct client *cl, const char *verb, const char *id,
    struct ferry_err *err)
{
	Ferry__AgentActionRequest rq = FERRY__AGENT_ACTION_REQUEST__INIT;
	Ferry__AgentActionReply *r = NULL;
	enum ferry_op op = strcmp(verb, "accept") == 0 ? FERRY_OP_AGENTS_ACCEPT
	    : strcmp(verb, "reject") == 0              ? FERRY_OP_AGENTS_REJECT
	                                               : FERRY_OP_AGENTS_REVOKE;

	rq.agent_id = (char *)id;
	if (client_call(cl, op, &rq.base,
	        &ferry__agent_action_reply__descriptor, (ProtobufCMessage **)&r,
	        err) != 0)
		return err->code;
	printf("agent %s: %s\n", id, r->state);
	ferry__agent_action_reply__free_unpacked(r, NULL);
	return 0;
}

/*
 * Accepts every pending agent (of env, when given) in one session.
 * Returns 0, or the first error.
 */
static int
accept_pending(struct client *cl, const char *env, struct ferry_err *err)
{
	Ferry__AgentsListRequest rq = FERRY__AGENTS_LIST_REQUEST__INIT;
	Ferry__AgentsListReply *r = NULL;
	size_t i, n = 0;
	int rc = 0;

	if (client_call(cl, FERRY_OP_AGENTS_LIST, &rq.base,
	        &ferry__agents_list_reply__descriptor, (ProtobufCMessage **)&r,
	        err) != 0)
		return err->code;
	for (i = 0; i < r->n_agents && rc == 0; i++) {
		Ferry__AgentInfo *a = r->agents[i];
		if (strcmp(a->state, "pending") != 0 ||
		    (env != NULL && strcmp(a->environment, env) != 0))
			continue;
		rc = agents_action(cl, "accept", a->agent_id, err);
		n += rc == 0;
	}
	ferry__agents_list_reply__free_unpacked(r, NULL);
	if (rc == 0)
		printf("%zu pending agent%s accepted\n", n, n == 1 ? "" : "s");
	return rc;
}

int
cmd_agents(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "all-pending", no_argument, NULL, 'p' },
		{ "env", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		CLIENT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry agents";
	struct client_opts co = { 0 };
	struct client *cl = NULL;
	struct ferry_err err;
	const char *verb = "list", *env = NULL;
	int json = 0, all_pending = 0, c, rc = 0, i;

	ferry_err_clear(&err);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (client_opt(&co, c, optarg))
			continue;
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'p':
			all_pending = 1;
			break;
		case 'e':
			env = optarg;
			break;
		case 'h':
			fputs(agents_usage, stdout);
			return 0;
		default:
			return ferry_cli_bad_option(prog, argv);
		}
	}
	if (optind < argc)
		verb = argv[optind++];
	if (strcmp(verb, "list") == 0) {
		if (optind != argc || all_pending || env != NULL)
			return ferry_cli_usage_error(prog,
			    "list takes no argument but --json");
	} else if (strcmp(verb, "accept") == 0 && all_pending) {
		if (optind != argc)
			return ferry_cli_usage_error(prog,
			    "accept --all-pending takes no AGENT_ID");
	} else if (strcmp(verb, "accept") == 0 || strcmp(verb, "reject") == 0 ||
	    strcmp(verb, "revoke") == 0) {
		if (optind == argc || all_pending || env != NULL)
			return ferry_cli_usage_error(prog,
			    "'%s' takes one or more AGENT_IDs", verb);
	} else
		return ferry_cli_usage_error(prog,
		    "unknown subcommand '%s' (list, accept, reject, revoke)",
		    verb);
	if (client_open(&co, &cl, &err) != 0)
		return ferry_cli_fail(prog, &err);
	if (strcmp(verb, "list") == 0)
		rc = agents_list(cl, json, &err);
	else if (all_pending)
		rc = accept_pending(cl, env, &err);
	else
		for (i = optind; i < argc && rc == 0; i++)
			rc = agents_action(cl, verb, argv[i], &err);
	client_close(cl);
	if (rc != 0)
		return ferry_cli_fail(prog, &err);
	return 0;
}

/* ------------------------------------------------------------------ */
/* ferry work                                                          */

static const char work_usage[] =
    "usage: ferry work [--id WORK_ID] [--limit N] [--json] [connection "
    "options]\n"
    "\n"
    "Lists work items (newest first) with their state -- queued, "
    "delivered,\n"
    "done, failed -- and the outcome each agent reported. With --id, also\n"
    "what the agent reported for each migration: outcome, time, checksum\n"
    "and error.\n"
    "\n"
    "Options:\n"
    "  --id WORK_ID          one work item\n"
    "  --limit N             at most N items (default 1000)\n"
    "  --json                print a JSON document instead of a "
    "table\n" CLIENT_HELP "  -h, --help            show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

static json_t *
work_json(const Ferry__WorkInfo *w)
{
	char created[40], finished[40];
	json_t *j, *migs;
	size_t i;

	fmt_time(w->created_unix_ms, created, sizeof(created));
	fmt_time(w->finished_unix_ms, finished, sizeof(finished));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, "
	              "s:s}",
	    "id", w->work_id, "agent", w->agent_id, "kind", w->kind, "state",
	    w->state, "created", created, "finished", finished, "outcome",
	    w->outcome, "detail", w->detail, "deliveries", (int)w->deliveries,
	    "bundle_sequence", (json_int_t)w->bundle_sequence, "schema_digest",
	    w->schema_digest);
	if (w->n_migrations == 0)
		return j;
	migs = json_array();
	for (i = 0; i < w->n_migrations; i++) {
		const Ferry__MigrationResult *m = w->migrations[i];
		json_array_append_new(migs,
		    json_pack("{s:s, s:s, s:s, s:f, s:s}", "name", m->name,
		        "outcome", m->outcome, "checksum", m->checksum, "ms",
		        (double)m->duration_us / 1000.0, "error", m->error));
	}
	json_object_set_new(j, "migrations", migs);
	return j;
}

static void
work_table(const Ferry__WorkListReply *r)
{
	size_t i, k;

	if (r->n_items == 0) {
		printf("no work items\n");
		return;
	}
	printf("%-36s %-20s %-6s %-9s %-12s %s\n", "WORK", "AGENT", "KIND",
	    "STATE", "OUTCOME", "DETAIL");
	for (i = 0; i < r->n_items; i++) {
		const Ferry__WorkInfo *w = r->items[i];
		printf("%-36s %-20s %-6s %-9s %-12s %s\n", w->work_id,
		    w->agent_id, w->kind, w->state,
		    w->outcome[0] ? w->outcome : "-", w->detail);
		if (w->n_migrations > 0)
			printf("\n  %-46s %-8s %10s  %s\n", "MIGRATION",
			    "OUTCOME", "MS", "CHECKSUM");
		for (k = 0; k < w->n_migrations; k++) {
			const Ferry__MigrationResult *m = w->migrations[k];
			printf("  %-46s %-8s %10.1f  %.12s\n", m->name,
			    m->outcome, (double)m->duration_us / 1000.0,
			    m->checksum);
			if (m->error[0] != '\0')
				printf("    %s\n", m->error);
		}
	}
}

static int
work_get(struct client *cl, const char *id, uint32_t limit,
    Ferry__WorkListReply **out, struct ferry_err *err)
{
	Ferry__WorkListRequest rq = FERRY__WORK_LIST_REQUEST__INIT;

	rq.work_id = (char *)(id ? id : "");
	rq.limit = limit;
	return client_call(cl, FERRY_OP_WORK_LIST, &rq.base,
	    &ferry__work_list_reply__descriptor, (ProtobufCMessage **)out, err);
}

int
cmd_work(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		CLIENT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry work", *id = NULL;
	struct client_opts co = { 0 };
	struct client *cl = NULL;
	Ferry__WorkListReply *r = NULL;
	struct ferry_err err;
	int64_t limit = 0;
	int json = 0, c, rc;
	size_t i;

	ferry_err_clear(&err);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (client_opt(&co, c, optarg))
			continue;
		switch (c) {
		case 'i':
			id = optarg;
			break;
		case 'n':
			if (ferry_parse_int64(optarg, 1, 10000, &limit) != 0)
				return ferry_cli_usage_error(prog,
				    "--limit must be 1 to 10000");
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(work_usage, stdout);
			return 0;
		default:
			return ferry_cli_bad_option(prog, argv);
		}
	}
	if (optind != argc)
		return ferry_cli_usage_error(prog, "unexpected argument '%s'",
		    argv[optind]);
	if (client_open(&co, &cl, &err) != 0)
		return ferry_cli_fail(prog, &err);
	rc = work_get(cl, id, (uint32_t)limit, &r, &err);
	client_close(cl);
	if (rc != 0)
		return ferry_cli_fail(prog, &err);
	if (json) {
		json_t *arr = json_array();
		for (i = 0; i < r->n_items; i++)
			json_array_append_new(arr, work_json(r->items[i]));
		rc = ferry_cli_print_json(json_pack("{s:o}", "work", arr));
	} else
		work_table(r);
	ferry__work_list_reply__free_unpacked(r, NULL);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ferry dispatch                                                      */

static const char dispatch_usage[] =
    "usage: ferry dispatch --bundle FILE (--env ENV | --agent ID ...)\n"
    "                      [--kind apply|status] [--approval FILE ...]\n"
    "                      [--rollout ID] [--wait[=DURATION]] [--json]\n"
    "                      [connection options]\n"
    "\n"
    "Hands a signed bundle to agents as work items: every accepted agent\n"
    "of ENV, or the agents named. Each agent verifies the bundle (and the\n"
    "approvals its environment requires) itself before applying it.\n"
    "With --wait, waits until every item is done or failed (default 10m)\n"
    "and exits 1 if any failed.\n"
    "\n"
    "Options:\n"
    "  --bundle FILE         a bundle made with 'ferry bundle create'\n"
    "  --env ENV             every accepted agent of this environment\n"
    "  --agent ID            this agent (repeatable)\n"
    "  --kind KIND           apply (default) or status\n"
    "  --approval FILE       a signed approval to pass on (repeatable)\n"
    "  --rollout ID          the rollout the approvals name\n"
    "  --wait[=DURATION]     wait for the outcomes\n"
    "  --json                print a JSON document\n" CLIENT_HELP
    "  -h, --help            show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

static int
read_file(const char *path, size_t max, ProtobufCBinaryData *out,
    struct ferry_err *err)
{
	struct ferry_buf b;
	size_t n = 0;

	ferry_buf_init(&b, max);
	if (ferry_buf_read_file(&b, path, err) != 0) {
		ferry_buf_release(&b);
		return err->code;
	}
	out->data = (uint8_t *)ferry_buf_detach(&b, &n);
	out->len = n;
	return 0;
}

/* Polls the work list until every item of d is finished. */
static int
wait_for(struct client *cl, const Ferry__DispatchReply *d, int64_t wait_ms,
    Ferry__WorkInfo ***outv, struct ferry_err *err)
{
	int64_t end = ferry_mono_us() + wait_ms * 1000;
	Ferry__WorkListReply *r;
	Ferry__WorkInfo **v = xcalloc(d->n_work_ids + 1, sizeof(*v));
	size_t i, open;
	long pause = 20;

	for (;;) {
		open = 0;
		for (i = 0; i < d->n_work_ids; i++) {
			if (v[i] != NULL &&
			    (strcmp(v[i]->state, "done") == 0 ||
			        strcmp(v[i]->state, "failed") == 0))
				continue;
			if (work_get(cl, d->work_ids[i], 1, &r, err) != 0)
				goto fail;
			if (r->n_items == 1) {
				if (v[i] != NULL)
					ferry__work_info__free_unpacked(v[i],
					    NULL);
				v[i] = r->items[0];
				r->n_items = 0;
			}
			ferry__work_list_reply__free_unpacked(r, NULL);
			if (v[i] == NULL ||
			    (strcmp(v[i]->state, "done") != 0 &&
			        strcmp(v[i]->state, "failed") != 0))
				open++;
		}
		if (open == 0)
			break;
		if (ferry_mono_us() > end) {
			ferry_errf(err, FERRY_EFINDING,
			    "%zu of %zu work items still open after the wait",
			    open, d->n_work_ids);
			goto fail;
		}
		ferry_sleep_ms(pause, NULL);
		pause = pause * 2 > 500 ? 500 : pause * 2;
	}
	*outv = v;
	return 0;
fail:
	*outv = v;
	return err->code;
}

int
cmd_dispatch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },
		{ "env", required_argument, NULL, 'e' },
		{ "agent", required_argument, NULL, 'a' },
		{ "kind", required_argument, NULL, 'k' },
		{ "approval", required_argument, NULL, 'A' },
		{ "rollout", required_argument, NULL, 'r' },
		{ "wait", optional_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		CLIENT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry dispatch", *bundle = NULL;
	Ferry__DispatchRequest rq = FERRY__DISPATCH_REQUEST__INIT;
	Ferry__DispatchReply *d = NULL;
	Ferry__WorkInfo **v = NULL;
	struct client_opts co = { 0 };
	struct client *cl = NULL;
	struct ferry_err err;
	char **agents = NULL;
	ProtobufCBinaryData *approvals = NULL;
	size_t nagents = 0, napprovals = 0, i, failed = 0;
	int64_t wait_ms = -1;
	char dispatch_id[37];
	int json = 0, c, rc = 0;

	ferry_err_clear(&err);
	rq.environment = (char *)"";
	rq.kind = (char *)"apply";
	rq.rollout_id = (char *)"";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (client_opt(&co, c, optarg))
			continue;
		switch (c) {
		case 'b':
			bundle = optarg;
			break;
		case 'e':
			rq.environment = optarg;
			break;
		case 'a':
			agents =
			    xrealloc(agents, (nagents + 1) * sizeof(char *));
			agents[nagents++] = optarg;
			break;
		case 'k':
			if (strcmp(optarg, "apply") != 0 &&
			    strcmp(optarg, "status") != 0) {
				rc = ferry_cli_usage_error(prog,
				    "--kind must be apply or status");
				goto out;
			}
			rq.kind = optarg;
			break;
		case 'A':
			approvals = xrealloc(approvals,
			    (napprovals + 1) * sizeof(*approvals));
			if (read_file(optarg, 1 << 20, &approvals[napprovals],
			        &err) != 0) {
				rc = ferry_cli_fail(prog, &err);
				goto out;
			}
			napprovals++;
			break;
		case 'r':
			rq.rollout_id = optarg;
			break;
		case 'w':
			wait_ms = 600000;
			if (optarg != NULL &&
			    ferry_parse_duration_ms(optarg, "--wait", &wait_ms,
			        &err) != 0) {
				rc = ferry_cli_fail(prog, &err);
				goto out;
			}
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(dispatch_usage, stdout);
			goto out;
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
	if (bundle == NULL) {
		rc = ferry_cli_usage_error(prog, "--bundle FILE is required");
		goto out;
	}
	if ((rq.environment[0] != '\0') == (nagents > 0)) {
		rc = ferry_cli_usage_error(prog,
		    "name the targets: --env ENV or --agent ID (not both)");
		goto out;
	}
	if (read_file(bundle, FERRY_WIRE_MAX_FRAME - 65536, &rq.bundle, &err) !=
	    0) {
		rc = ferry_cli_fail(prog, &err);
		goto out;
	}
	ferry_uuid_v4(dispatch_id);
	rq.dispatch_id = dispatch_id;
	rq.agent_ids = agents;
	rq.n_agent_ids = nagents;
	rq.approvals = approvals;
	rq.n_approvals = napprovals;
	if (client_open(&co, &cl, &err) != 0 ||
	    client_call(cl, FERRY_OP_DISPATCH, &rq.base,
	        &ferry__dispatch_reply__descriptor, (ProtobufCMessage **)&d,
	        &err) != 0) {
		rc = ferry_cli_fail(prog, &err);
		goto out;
	}
	if (wait_ms >= 0 && wait_for(cl, d, wait_ms, &v, &err) != 0) {
		rc = ferry_cli_fail(prog, &err);
		goto out;
	}
	for (i = 0; v != NULL && i < d->n_work_ids; i++)
		if (v[i] == NULL || strcmp(v[i]->state, "failed") == 0)
			failed++;
	if (json) {
		json_t *arr = json_array();
		for (i = 0; i < d->n_work_ids; i++)
			json_array_append_new(arr,
			    v != NULL && v[i] != NULL
			        ? work_json(v[i])
			        : json_pack("{s:s, s:s, s:s}", "id",
			              d->work_ids[i], "agent", d->agent_ids[i],
			              "state", "queued"));
		rc = ferry_cli_print_json(json_pack("{s:o}", "work", arr));
	} else {
		for (i = 0; i < d->n_work_ids; i++)
			printf("%s  %-20s %s%s%s\n", d->work_ids[i],
			    d->agent_ids[i], v && v[i] ? v[i]->state : "queued",
			    v && v[i] && v[i]->outcome[0] ? "  " : "",
			    v && v[i] ? v[i]->outcome : "");
	}
	if (rc == 0 && failed > 0) {
		fprintf(stderr, "%s: %zu of %zu work items failed\n", prog,
		    failed, d->n_work_ids);
		rc = FERRY_EFINDING;
	}
out:
	for (i = 0; v != NULL && d != NULL && i < d->n_work_ids; i++)
		if (v[i] != NULL)
			ferry__work_info__free_unpacked(v[i], NULL);
	free(v);
	if (d != NULL)
		ferry__dispatch_reply__free_unpacked(d, NULL);
	client_close(cl);
	for (i = 0; i < napprovals; i++)
		free(approvals[i].data);
	free(approvals);
	free(rq.bundle.data);
	free(agents);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ferry operators                                                     */

static const char operators_usage[] =
    "usage: ferry operators [list] [--json] [connection options]\n"
    "       ferry operators add FILE.pub --role read|operator|approver\n"
    "       ferry operators remove KEY_ID\n"
    "\n"
    "Manages the keys that may use the coordinator from the CLI. Roles:\n"
    "  read      list agents, work and operators\n"
    "  operator  also accept, reject and revoke agents, dispatch work and\n"
    "            manage operator keys\n"
    "  approver  read, and (with rollouts) approve promotions\n"
    "Adding a known key changes its role. The last operator key cannot be\n"
    "removed or demoted; a key's open sessions end when it changes.\n"
    "\n"
    "Options:\n"
    "  --role ROLE           with add: the key's role\n"
    "  --json                print a JSON document instead of a "
    "table\n" CLIENT_HELP "  -h, --help            show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

int
cmd_operators(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		CLIENT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry operators", *verb = "list", *role = NULL;
	struct client_opts co = { 0 };
	struct client *cl = NULL;
	struct ferry_err err;
	struct ferry_pubkey pk;
	char line[256];
	int json = 0, c, rc = 0;
	size_t i;

	ferry_err_clear(&err);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (client_opt(&co, c, optarg))
			continue;
		switch (c) {
		case 'r':
			role = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(operators_usage, stdout);
			return 0;
		default:
			return ferry_cli_bad_option(prog, argv);
		}
	}
	if (optind < argc)
		verb = argv[optind++];
	if (strcmp(verb, "list") == 0) {
		if (optind != argc)
			return ferry_cli_usage_error(prog,
			    "unexpected argument '%s'", argv[optind]);
	} else if (strcmp(verb, "add") == 0) {
		if (optind + 1 != argc || role == NULL)
			return ferry_cli_usage_error(prog,
			    "add takes FILE.pub and --role ROLE");
		if (ferry_role_parse(role) <= FERRY_ROLE_AGENT)
			return ferry_cli_usage_error(prog,
			    "--role must be read, operator or approver");
		if (ferry_pubkey_load(argv[optind], &pk, &err) != 0)
			return ferry_cli_fail(prog, &err);
	} else if (strcmp(verb, "remove") == 0) {
		if (optind + 1 != argc)
			return ferry_cli_usage_error(prog,
			    "remove takes exactly one KEY_ID");
	} else
		return ferry_cli_usage_error(prog,
		    "unknown subcommand '%s' (list, add, remove)", verb);
	if (client_open(&co, &cl, &err) != 0)
		return ferry_cli_fail(prog, &err);
	if (strcmp(verb, "list") == 0) {
		Ferry__OperatorsListRequest rq =
		    FERRY__OPERATORS_LIST_REQUEST__INIT;
		Ferry__OperatorsListReply *r = NULL;
		char when[40];
		rc = client_call(cl, FERRY_OP_OPERATORS_LIST, &rq.base,
		    &ferry__operators_list_reply__descriptor,
		    (ProtobufCMessage **)&r, &err);
		if (rc == 0 && json) {
			json_t *arr = json_array();
			for (i = 0; i < r->n_operators; i++) {
				fmt_time(r->operators[i]->created_unix_ms, when,
				    sizeof(when));
				json_array_append_new(arr,
				    json_pack("{s:s, s:s, s:s, s:s}", "key_id",
				        r->operators[i]->key_id, "name",
				        r->operators[i]->name, "role",
				        r->operators[i]->role, "created",
				        when));
			}
			rc = ferry_cli_print_json(
			    json_pack("{s:o}", "operators", arr));
		} else if (rc == 0) {
			printf("%-16s %-9s %-24s %s\n", "KEY", "ROLE", "ADDED",
			    "NAME");
			for (i = 0; i < r->n_operators; i++) {
				fmt_time(r->operators[i]->created_unix_ms, when,
				    sizeof(when));
				printf("%-16s %-9s %-24s %s\n",
				    r->operators[i]->key_id,
				    r->operators[i]->role, when,
				    r->operators[i]->name);
			}
		}
		if (r != NULL)
			ferry__operators_list_reply__free_unpacked(r, NULL);
	} else {
		Ferry__OperatorAddRequest add =
		    FERRY__OPERATOR_ADD_REQUEST__INIT;
		Ferry__OperatorRemoveRequest rm =
		    FERRY__OPERATOR_REMOVE_REQUEST__INIT;
		Ferry__OperatorReply *r = NULL;
		int is_add = strcmp(verb, "add") == 0;
		if (is_add) {
			ferry_pubkey_format(&pk, line, sizeof(line));
			add.public_key = line;
			add.role = (char *)role;
		} else
			rm.key_id = argv[optind];
		rc = client_call(cl,
		    is_add ? FERRY_OP_OPERATORS_ADD : FERRY_OP_OPERATORS_REMOVE,
		    is_add ? &add.base : &rm.base,
		    &ferry__operator_reply__descriptor, (ProtobufCMessage **)&r,
		    &err);
		if (rc == 0)
			printf(is_add ? "operator key %s: %s\n"
			              : "operator key %s removed%s\n",
			    r->key_id, r->role);
		if (r != NULL)
			ferry__operator_reply__free_unpacked(r, NULL);
	}
	client_close(cl);
	if (rc != 0 && err.code != 0)
		return ferry_cli_fail(prog, &err);
	return rc;
}
