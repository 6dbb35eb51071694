/*
 * err.c -- first-error-wins error records.
 */
#include "err.h"

#include <stdio.h>
#include <string.h>

void
ferry_err_clear(struct ferry_err *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}

int
ferry_verrf(struct ferry_err *err, int code, const char *fmt, va_list ap)
{
	size_t n;

	if (err == NULL || err->code != 0)
		return code;
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	/* libpq and strerror texts end in newlines; messages never do. */
	n = strlen(err->msg);
	while (n > 0 && (err->msg[n - 1] == '\n' || err->msg[n - 1] == '.'))
		err->msg[--n] = '\0';
	return code;
}

int
ferry_errf(struct ferry_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ferry_verrf(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int
ferry_errf_errno(struct ferry_err *err, int code, int errnum, const char *fmt,
    ...)
{
	char head[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	return ferry_errf(err, code, "%s: %s", head, strerror(errnum));
}

int
ferry_err_exit_status(int code)
{
	if (code < 0 || code > FERRY_EOPER)
		return FERRY_EOPER;
	return code;
}
