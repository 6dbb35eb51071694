/*
 * pgembed_probe: drives common/pgembed for its integration test.
 *
 *	pgembed_probe [--user NAME] start DIR
 *	pgembed_probe [--user NAME] stop DIR
 *	pgembed_probe [--user NAME] hold DIR
 *
 * --user drops root privileges first (ferry_drop_privileges). Every
 * command starts (or adopts) the cluster in DIR and prints
 *
 *	adopted=0|1 pid=N conninfo=...
 *
 * start then exits, leaving the server running; stop stops it twice (the
 * second time must be a no-op) and prints "stopped"; hold reads commands
 * from stdin, one a line, until end of input: "stop" stops the server and
 * prints "stop rc=N", and the server is left running at the end. Errors go
 * to stderr as one line; the exit status is Ferry's (2 usage, 3 failure).
 */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "pgembed.h"

static int
usage(void)
{
	fprintf(stderr,
	    "usage: pgembed_probe [--user NAME] start|stop|hold DIR\n");
	return 2;
}

static int
fail(const struct ferry_err *err)
{
	fprintf(stderr, "pgembed_probe: %s\n", err->msg);
	return ferry_err_exit_status(err->code);
}

/* Answers "stop" lines on stdin until end of input. */
static int
hold(struct ferry_pgembed *pg)
{
	struct ferry_err err;
	char line[64];
	int rc;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "stop") != 0) {
			printf("unknown command '%s'\n", line);
			fflush(stdout);
			continue;
		}
		ferry_err_clear(&err);
		rc = ferry_pgembed_stop(pg, &err);
		if (rc != 0)
			fprintf(stderr, "pgembed_probe: %s\n", err.msg);
		printf("stop rc=%d\n", rc);
		fflush(stdout);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct ferry_pgembed *pg = NULL;
	struct ferry_err err;
	const char *user = NULL, *cmd, *dir;
	int adopted = 0, rc = 0, i = 1;

	ferry_err_clear(&err);
	if (argc > 2 && strcmp(argv[1], "--user") == 0) {
		user = argv[2];
		i = 3;
	}
	if (argc - i != 2)
		return usage();
	cmd = argv[i];
	dir = argv[i + 1];
	if (strcmp(cmd, "start") != 0 && strcmp(cmd, "stop") != 0 &&
	    strcmp(cmd, "hold") != 0)
		return usage();
	if (user != NULL && ferry_drop_privileges(user, &err) != 0)
		return fail(&err);
	if (ferry_pgembed_start(dir, &pg, &adopted, &err) != 0)
		return fail(&err);
	printf("adopted=%d pid=%ld conninfo=%s\n", adopted,
	    ferry_pgembed_pid(pg), ferry_pgembed_conninfo(pg));
	fflush(stdout);
	if (strcmp(cmd, "stop") == 0) {
		if (ferry_pgembed_stop(pg, &err) != 0 ||
		    ferry_pgembed_stop(pg, &err) != 0) {
			rc = fail(&err);
			goto out;
		}
		printf("stopped\n");
	} else if (strcmp(cmd, "hold") == 0) {
		rc = hold(pg);
	}
out:
	ferry_pgembed_free(pg);
	return rc;
}
