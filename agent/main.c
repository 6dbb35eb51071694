/*
 * main.c -- ferry-agent: runs beside one database and applies migrations.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "hash.h"
#include "log.h"

static const struct ferry_cmd commands[] = {
	{ "apply", cmd_apply,
	    "apply pending migrations (prisma migrate deploy)" },
	{ "status", cmd_status,
	    "compare the database's history with the folder" },
	{ "resolve", cmd_resolve,
	    "mark a failed migration applied or rolled back" },
	{ "baseline", cmd_baseline,
	    "adopt an existing database without running" },
	{ "introspect", cmd_introspect,
	    "print the canonical schema document or its digest" },
	{ "diff", cmd_diff, "compare two schemas (databases or documents)" },
	{ "shadow", cmd_shadow,
	    "replay migrations into a shadow database, digest per prefix" },
	{ "drift", cmd_drift, "compare the live schema with a shadow report" },
	{ "run", cmd_run,
	    "run the agent daemon: take work from the coordinator" },
	{ NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	ferry_log_init_from_env();
	if (ferry_crypto_init() != 0) {
		fprintf(stderr,
		    "ferry-agent: error: cannot initialise "
		    "libsodium\n");
		return 3;
	}
	return ferry_cli_dispatch("ferry-agent",
	    "The Ferry agent applies migrations to the database beside it.",
	    FERRY_VERSION, commands, argc, argv);
}
