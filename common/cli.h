/*
 * cli.h -- command tables and the conventions every command follows.
 *
 * Both programs are a table of commands (git's commands[], tmux's
 * cmd_entry); a group such as "ferry migrations" is a table of its own.
 * Every command answers -h/--help and returns an exit status:
 */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <jansson.h>
#include <stdio.h>

#include "err.h"

#define FERRY_EXIT_CODES_HELP                                     \
	"Exit status:\n"                                          \
	"  0  success, or nothing to report\n"                    \
	"  1  a finding: pending or failed migrations, drift, a " \
	"verification refused\n"                                  \
	"  2  usage error or invalid input\n"                     \
	"  3  operational error: cannot connect, I/O, server error\n"

struct ferry_cmd {
	const char *name;
	/* argv[0] is the command's own name. Returns an exit status. */
	int (*fn)(int argc, char **argv);
	const char *summary;
};

/*
 * Runs the command argv[1] of the NULL-terminated table cmds; prog is the
 * command path for messages ("ferry", "ferry migrations"). Handles
 * -h/--help, --version (when version is not NULL) and unknown commands.
 * Returns an exit status.
 */
int ferry_cli_dispatch(const char *prog, const char *about, const char *version,
    const struct ferry_cmd *cmds, int argc, char **argv);

/* Prints "prog: error: <msg>" to stderr; returns the exit status. */
int ferry_cli_fail(const char *prog, const struct ferry_err *err);

/* Prints a usage error and a pointer to --help; returns 2. */
int ferry_cli_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * After getopt_long returned '?': names the unknown option (or the one
 * missing its value) and returns 2.
 */
int ferry_cli_bad_option(const char *prog, char **argv);

/* Prints "prog: warning: ..." to stderr. */
void ferry_cli_warn(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Writes j to stdout as indented JSON with a trailing newline and drops
 * the reference. Returns 0 or an operational exit status.
 */
int ferry_cli_print_json(json_t *j);

/* Returns 1 if argv holds -h or --help before any "--". */
int ferry_cli_wants_help(int argc, char **argv);

#endif
