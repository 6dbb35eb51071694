/*
 * log.c -- logfmt lines on stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

static enum ferry_log_level current = FERRY_LOG_INFO;

static const char *const names[] = { "debug", "info", "warn", "error", "off" };

void
ferry_log_set_level(enum ferry_log_level level)
{
	current = level;
}

enum ferry_log_level
ferry_log_get_level(void)
{
	return current;
}

int
ferry_log_parse_level(const char *s, enum ferry_log_level *out)
{
	size_t i;

	for (i = 0; i < FERRY_NELEM(names); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum ferry_log_level)i;
			return 0;
		}
	}
	return -1;
}

void
ferry_log_init_from_env(void)
{
	const char *s = getenv("FERRY_LOG");
	enum ferry_log_level level;

	if (s != NULL && ferry_log_parse_level(s, &level) == 0)
		current = level;
}

/* Appends v, quoted and escaped if it is empty or has space, '"' or '='. */
static void
add_value(struct ferry_buf *b, const char *v)
{
	const char *p;
	int quote = *v == '\0';

	for (p = v; *p != '\0' && !quote; p++)
		quote = *p == ' ' || *p == '"' || *p == '=' ||
		    (unsigned char)*p < 0x20;
	if (!quote) {
		ferry_buf_adds(b, v);
		return;
	}
	ferry_buf_add(b, "\"", 1);
	for (p = v; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			ferry_buf_addf(b, "\\%c", *p);
		else if (*p == '\n')
			ferry_buf_adds(b, "\\n");
		else if ((unsigned char)*p < 0x20)
			ferry_buf_addf(b, "\\x%02x", (unsigned char)*p);
		else
			ferry_buf_add(b, p, 1);
	}
	ferry_buf_add(b, "\"", 1);
}

void
ferry_log(enum ferry_log_level level, const char *msg, ...)
{
	struct ferry_buf b;
	char ts[40];
	const char *k, *v;
	va_list ap;

	if (level < current || level >= FERRY_LOG_OFF)
		return;
	ferry_buf_init(&b, 64 * 1024);
	ferry_format_utc(ferry_wall_us(), ts, sizeof(ts));
	ferry_buf_addf(&b, "ts=%s level=%s msg=", ts, names[level]);
	add_value(&b, msg);
	va_start(ap, msg);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		ferry_buf_addf(&b, " %s=", k);
		add_value(&b, v != NULL ? v : "");
	}
	va_end(ap);
	ferry_buf_add(&b, "\n", 1);
	fputs(ferry_buf_str(&b), stderr);
	ferry_buf_release(&b);
}
