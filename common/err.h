/*
 * err.h -- error reporting shared by every Ferry module.
 *
 * Functions return an int status (0 = success) and put the detail into a
 * caller-provided struct ferry_err. The first error recorded wins, so a
 * cleanup path cannot overwrite the cause with a consequence.
 *
 * The code doubles as the process exit status, so that a script can tell
 * "not up to date" from "could not check":
 *   0 success / clean
 *   1 a finding: pending migrations, drift, a verification refused
 *   2 usage error
 *   3 operational error: cannot connect, I/O, server error
 */
#ifndef FERRY_ERR_H
#define FERRY_ERR_H

#include <stdarg.h>

enum {
	FERRY_OK = 0,
	FERRY_EFINDING = 1,
	FERRY_EUSAGE = 2,
	FERRY_EOPER = 3,
};

struct ferry_err {
	int code;
	char msg[512];
};

/* Resets err to "no error". */
void ferry_err_clear(struct ferry_err *err);

/*
 * Records an error unless one is already recorded. Returns code either way,
 * so callers can write `return ferry_errf(err, FERRY_EOPER, "...")`.
 * err may be NULL.
 */
int ferry_errf(struct ferry_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ferry_verrf(struct ferry_err *err, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Like ferry_errf, with ": <strerror(errnum)>" appended. */
int ferry_errf_errno(struct ferry_err *err, int code, int errnum,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Returns the exit status matching an error code (0 to 3). */
int ferry_err_exit_status(int code);

#endif
