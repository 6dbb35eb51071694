/*
 * log.h -- logfmt lines on stderr.
 *
 *   ts=2026-11-24T11:39:00.123Z level=info msg="applied" migration=x ms=12
 *
 * Keys and values are passed as NULL-terminated pairs of strings; values
 * are quoted when they need it. The level comes from ferry_log_set_level()
 * or the FERRY_LOG environment variable (debug, info, warn, error).
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

enum ferry_log_level {
	FERRY_LOG_DEBUG,
	FERRY_LOG_INFO,
	FERRY_LOG_WARN,
	FERRY_LOG_ERROR,
	FERRY_LOG_OFF,
};

void ferry_log_set_level(enum ferry_log_level level);
enum ferry_log_level ferry_log_get_level(void);

/* Parses "debug", "info", "warn", "error" or "off". Returns 0 or -1. */
int ferry_log_parse_level(const char *s, enum ferry_log_level *out);

/* Reads FERRY_LOG, if set and valid. */
void ferry_log_init_from_env(void);

/* Logs msg with key/value string pairs, terminated by NULL. */
void ferry_log(enum ferry_log_level level, const char *msg, ...)
    __attribute__((sentinel));

#define ferry_log_debug(...) ferry_log(FERRY_LOG_DEBUG, __VA_ARGS__, NULL)
#define ferry_log_info(...) ferry_log(FERRY_LOG_INFO, __VA_ARGS__, NULL)
#define ferry_log_warn(...) ferry_log(FERRY_LOG_WARN, __VA_ARGS__, NULL)
#define ferry_log_error(...) ferry_log(FERRY_LOG_ERROR, __VA_ARGS__, NULL)

#endif
