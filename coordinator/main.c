/*
 * main.c -- ferry: the release manager's and platform team's CLI.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "hash.h"
#include "log.h"

static const struct ferry_cmd commands[] = {
	{ "migrations", cmd_migrations,
	    "read a migrations folder: list names, checksums, order" },
	{ "keygen", cmd_keygen,
	    "generate an Ed25519 key pair (signing, approver, agent)" },
	{ "bundle", cmd_bundle, "create, inspect and verify signed bundles" },
	{ "approve", cmd_approve, "sign an approval for a rollout stage" },
	{ "lint", cmd_lint, "check migrations for risky operations" },
	{ "serve", cmd_serve, "run the coordinator" },
	{ "agents", cmd_agents, "list agents; accept, reject or revoke one" },
	{ "dispatch", cmd_dispatch, "send a bundle to agents as work" },
	{ "work", cmd_work, "list work items and their outcomes" },
	{ "operators", cmd_operators, "list, add or remove operator keys" },
	{ NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	ferry_log_init_from_env();
	if (ferry_crypto_init() != 0) {
		fprintf(stderr, "ferry: error: cannot initialise libsodium\n");
		return 3;
	}
	return ferry_cli_dispatch("ferry",
	    "Ferry promotes PostgreSQL schema migrations across environments.",
	    FERRY_VERSION, commands, argc, argv);
}
