/*
 * cmd_serve.c -- "ferry serve": the coordinator daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "keys.h"
#include "log.h"
#include "pgembed.h"
#include "serve.h"
#include "store.h"
#include "util.h"
#include "wire.h"

#define PROG "ferry serve"
#define DEFAULT_DATA "/var/lib/ferry"

static const char serve_usage[] =
    "usage: ferry serve [--data DIR] [--listen URL] [--state-url URL]\n"
    "                   [--user NAME] [--poll-hold DURATION] "
    "[--auto-accept]\n"
    "       ferry serve --init [--data DIR] [--user NAME] [--state-url "
    "URL]\n"
    "                   [--operator-key FILE.pub]\n"
    "\n"
    "Runs the coordinator in the foreground: agents dial it, the ferry CLI\n"
    "talks to it, both over sealed NNG sessions (docs/wire.md). Logs go to\n"
    "stderr in logfmt; SIGTERM or SIGINT stops it cleanly.\n"
    "\n"
    "State (agents, keys, bundles, work, reports) lives in PostgreSQL: with\n"
    "--state-url in that database, otherwise in a private cluster kept in\n"
    "DIR/pg (unix socket only), started and stopped with the coordinator.\n"
    "\n"
    "--init creates DIR, the coordinator's key pair "
    "(DIR/keys/coordinator.key;\n"
    "its .pub is what agents pin), the state schema, and registers the\n"
    "first operator key: FILE.pub, or a new DIR/keys/admin.key.\n"
    "\n"
    "PostgreSQL refuses to run as root: as root, --user NAME is required;\n"
    "the coordinator creates DIR for NAME, then drops to NAME for good.\n"
    "\n"
    "Options:\n"
    "  --data DIR            data directory (default " DEFAULT_DATA ")\n"
    "  --listen URL          where agents and the CLI connect\n"
    "                        (default " FERRY_WIRE_DEFAULT_URL ")\n"
    "  --state-url URL       an external PostgreSQL for the state\n"
    "  --user NAME           run as NAME (required as root)\n"
    "  --poll-hold DURATION  longest an agent's poll is held (default 20s)\n"
    "  --auto-accept         accept every new agent key at once: for demos\n"
    "                        only, loudly logged\n"
    "  --init                initialise DIR and exit\n"
    "  --operator-key FILE   with --init: the first operator's public key\n"
    "  -h, --help            show this help\n"
    "\n"
    "Environment:\n"
    "  FERRY_LOG   log level: debug, info (default), warn, error\n"
    "\n" FERRY_EXIT_CODES_HELP;

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* As root: DIR is created and given to user, then root is dropped. */
static int
become_user(const char *dir, const char *user, struct ferry_err *err)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		if (user != NULL) {
			pw = getpwnam(user);
			if (pw == NULL || pw->pw_uid != geteuid())
				return ferry_errf(err, FERRY_EUSAGE,
				    "--user %s needs root; already running "
				    "as uid %ld",
				    user, (long)geteuid());
		}
		return ferry_mkdir_p(dir, err);
	}
	if (user == NULL)
		return ferry_errf(err, FERRY_EUSAGE,
		    "refusing to run as root: PostgreSQL refuses it, and a "
		    "network daemon should not; pass --user NAME (e.g. "
		    "--user postgres) and the coordinator drops to it after "
		    "creating '%s'",
		    dir);
	pw = getpwnam(user);
	if (pw == NULL)
		return ferry_errf(err, FERRY_EUSAGE, "no such user '%s'", user);
	if (ferry_mkdir_p(dir, err) != 0)
		return err->code;
	if (chown(dir, pw->pw_uid, pw->pw_gid) != 0)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot give '%s' to %s", dir, user);
	return ferry_drop_privileges(user, err);
}

static int
make_key(const char *keydir, const char *name, struct ferry_seckey **out,
    struct ferry_err *err)
{
	if (ferry_seckey_generate(name, out, err) != 0)
		return err->code;
	return ferry_seckey_save(*out, keydir, NULL, err);
}

static int
do_init(const char *dir, const char *state_url, const char *opkey,
    struct ferry_err *err)
{
	char *keydir = xasprintf("%s/keys", dir), *path = NULL;
	struct ferry_seckey *coord = NULL, *admin = NULL;
	struct ferry_pubkey op;
	struct ferry_pgembed *pg = NULL;
	struct ferry_store *st = NULL;
	struct stat sb;
	char line[256];
	int rc;

	path = xasprintf("%s/coordinator.key", keydir);
	if (stat(path, &sb) == 0) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is already initialised (%s exists)", dir, path);
		goto out;
	}
	if (opkey != NULL && (rc = ferry_pubkey_load(opkey, &op, err)) != 0)
		goto out;
	if ((rc = ferry_mkdir_p(keydir, err)) != 0 ||
	    (rc = make_key(keydir, "coordinator", &coord, err)) != 0)
		goto out;
	if (opkey == NULL) {
		if ((rc = make_key(keydir, "admin", &admin, err)) != 0)
			goto out;
		op = *ferry_seckey_public(admin);
	}
	if (state_url == NULL) {
		if ((rc = ferry_pgembed_start(dir, &pg, NULL, err)) != 0)
			goto out;
		state_url = ferry_pgembed_conninfo(pg);
	}
	if ((rc = ferry_store_open(state_url, &st, err)) != 0 ||
	    (rc = ferry_store_add_operator(st, &op, FERRY_ROLE_OPERATOR,
	         err)) != 0)
		goto out;
	ferry_pubkey_format(ferry_seckey_public(coord), line, sizeof(line));
	printf("initialised %s\n", dir);
	printf("coordinator public key (pin it in every agent's config):\n"
	       "  %s\n  (also in %s/coordinator.pub)\n",
	    line, keydir);
	if (admin != NULL)
		printf("operator key: %s/admin.key (use it with ferry --key, "
		       "or FERRY_KEY)\n",
		    keydir);
	else
		printf("operator key registered: %s (%s)\n", op.id, opkey);
out:
	ferry_store_close(st);
	if (pg != NULL) {
		struct ferry_err e = { 0 };
		ferry_pgembed_stop(pg, &e);
		ferry_pgembed_free(pg);
	}
	ferry_seckey_free(coord);
	ferry_seckey_free(admin);
	free(path);
	free(keydir);
	return rc;
}

static int
do_serve(const char *dir, struct ferry_serve_opts *so, const char *state_url,
    struct ferry_err *err)
{
	char *path = xasprintf("%s/keys/coordinator.key", dir);
	struct ferry_seckey *key = NULL;
	struct ferry_pgembed *pg = NULL;
	struct ferry_store *st = NULL;
	struct sigaction sa;
	struct stat sb;
	int adopted = 0, rc;

	if (stat(path, &sb) != 0) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is not initialised (no %s): run 'ferry serve --init "
		    "--data %s' first",
		    dir, path, dir);
		goto out;
	}
	if ((rc = ferry_seckey_load(path, NULL, &key, err)) != 0)
		goto out;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (state_url == NULL) {
		if ((rc = ferry_pgembed_start(dir, &pg, &adopted, err)) != 0)
			goto out;
		ferry_log_info(adopted ? "adopted the running state cluster"
		                       : "state cluster started",
		    "dir", dir);
		state_url = ferry_pgembed_conninfo(pg);
	}
	if ((rc = ferry_store_open(state_url, &st, err)) != 0)
		goto out;
	if (so->auto_accept)
		ferry_log_warn("--auto-accept: every new agent key is accepted "
		               "without review (demos only)");
	so->key = key;
	so->state = st;
	so->stop = &stop_flag;
	rc = ferry_serve_run(so, err);
out:
	ferry_store_close(st);
	if (pg != NULL) {
		struct ferry_err e = { 0 };
		if (ferry_pgembed_stop(pg, &e) != 0)
			ferry_log_error("cannot stop the state cluster",
			    "error", e.msg);
		ferry_pgembed_free(pg);
	}
	ferry_seckey_free(key);
	free(path);
	return rc;
}

int
cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "state-url", required_argument, NULL, 's' },
		{ "user", required_argument, NULL, 'u' },
		{ "poll-hold", required_argument, NULL, 'p' },
		{ "auto-accept", no_argument, NULL, 'a' },
		{ "init", no_argument, NULL, 'i' },
		{ "operator-key", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_serve_opts so;
	const char *dir = DEFAULT_DATA, *state_url = NULL, *user = NULL;
	const char *opkey = NULL;
	struct ferry_err err;
	int64_t hold = 20000;
	int init = 0, c, rc;

	ferry_err_clear(&err);
	memset(&so, 0, sizeof(so));
	so.listen_url = FERRY_WIRE_DEFAULT_URL;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'l':
			so.listen_url = optarg;
			break;
		case 's':
			state_url = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'p':
			if (ferry_parse_duration_ms(optarg, "--poll-hold",
			        &hold, &err) != 0)
				return ferry_cli_fail(PROG, &err);
			if (hold < 0 || hold > 600000)
				return ferry_cli_usage_error(PROG,
				    "--poll-hold must be between 0 and 10m");
			break;
		case 'a':
			so.auto_accept = 1;
			break;
		case 'i':
			init = 1;
			break;
		case 'o':
			opkey = optarg;
			break;
		case 'h':
			fputs(serve_usage, stdout);
			return 0;
		default:
			return ferry_cli_bad_option(PROG, argv);
		}
	}
	if (optind != argc)
		return ferry_cli_usage_error(PROG, "unexpected argument '%s'",
		    argv[optind]);
	if (opkey != NULL && !init)
		return ferry_cli_usage_error(PROG,
		    "--operator-key goes with --init");
	if (dir[0] != '/')
		return ferry_cli_usage_error(PROG,
		    "--data must be an absolute path (got '%s')", dir);
	so.poll_hold_ms = (uint32_t)hold;
	if (become_user(dir, user, &err) != 0)
		return ferry_cli_fail(PROG, &err);
	rc = init ? do_init(dir, state_url, opkey, &err)
	          : do_serve(dir, &so, state_url, &err);
	if (rc != 0)
		return ferry_cli_fail(PROG, &err);
	return 0;
}
