/*
 * cli.c -- command tables and shared command-line conventions.
 */
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <string.h>

static void
print_help(FILE *f, const char *prog, const char *about,
    const struct ferry_cmd *cmds)
{
	const struct ferry_cmd *c;

	fprintf(f, "usage: %s <command> [options]\n\n%s\n\nCommands:\n", prog,
	    about);
	for (c = cmds; c->name != NULL; c++)
		fprintf(f, "  %-12s %s\n", c->name, c->summary);
	fprintf(f, "\nRun '%s <command> --help' for a command's options.\n\n%s",
	    prog, FERRY_EXIT_CODES_HELP);
}

int
ferry_cli_wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0)
			return 1;
	}
	return 0;
}

int
ferry_cli_dispatch(const char *prog, const char *about, const char *version,
    const struct ferry_cmd *cmds, int argc, char **argv)
{
	const struct ferry_cmd *c;

	/* Commands report bad options themselves, naming the program. */
	opterr = 0;
	if (argc < 2) {
		print_help(stderr, prog, about, cmds);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		print_help(stdout, prog, about, cmds);
		return 0;
	}
	if (version != NULL &&
	    (strcmp(argv[1], "--version") == 0 ||
	        strcmp(argv[1], "version") == 0)) {
		printf("%s %s\n", prog, version);
		return 0;
	}
	for (c = cmds; c->name != NULL; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->fn(argc - 1, argv + 1);
	return ferry_cli_usage_error(prog, "unknown command '%s'", argv[1]);
}

int
ferry_cli_fail(const char *prog, const struct ferry_err *err)
{
	fprintf(stderr, "%s: error: %s\n", prog,
	    err->msg[0] != '\0' ? err->msg : "unknown error");
	return ferry_err_exit_status(err->code ? err->code : FERRY_EOPER);
}

int
ferry_cli_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: error: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see '%s --help')\n", prog);
	return FERRY_EUSAGE;
}

int
ferry_cli_bad_option(const char *prog, char **argv)
{
	/* getopt has advanced past the offending word. */
	if (optind > 0 && argv[optind - 1] != NULL)
		return ferry_cli_usage_error(prog,
		    "unknown option or missing value: '%s'", argv[optind - 1]);
	return ferry_cli_usage_error(prog, "invalid option");
}

void
ferry_cli_warn(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: warning: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
ferry_cli_print_json(json_t *j)
{
	int rc = 0;

	if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
	    fputc('\n', stdout) == EOF || fflush(stdout) != 0)
		rc = FERRY_EOPER;
	json_decref(j);
	return rc;
}
