/*
 * util.h -- allocation that cannot fail, string and time helpers.
 *
 * Out of memory is not an error Ferry recovers from: the x* family prints a
 * message and aborts (like git's xmalloc), so callers never check for NULL.
 */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Allocates and formats; never returns NULL. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define FERRY_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Copies src into dst of size dstsz, always NUL-terminating when dstsz > 0.
 * Returns strlen(src); truncation happened if the result >= dstsz.
 */
size_t ferry_strlcpy(char *dst, const char *src, size_t dstsz);

/* Returns 1 if s starts with prefix. */
int ferry_starts_with(const char *s, const char *prefix);

/*
 * Parses a decimal integer in [min, max] from the whole of s.
 * Returns 0, or -1 (errno-free) if s is not such a number.
 */
int ferry_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * Parses a duration such as "500ms", "5s", "2m", "24h" or a bare number of
 * seconds into milliseconds. Returns 0, or a FERRY_EUSAGE error naming what.
 */
int ferry_parse_duration_ms(const char *s, const char *what, int64_t *out_ms,
    struct ferry_err *err);

/*
 * Replaces path with data so that readers see the old file or the new
 * one, never a part: a temporary file beside it, fsync, rename, fsync of
 * the directory. mode is applied as is (not masked).
 */
int ferry_write_file_atomic(const char *path, const void *data, size_t len,
    unsigned mode, struct ferry_err *err);

/* Monotonic clock in microseconds. */
int64_t ferry_mono_us(void);

/*
 * Sleeps ms milliseconds, in slices of at most 50 ms, returning early when
 * *stop (may be NULL) becomes nonzero.
 */
void ferry_sleep_ms(long ms, volatile sig_atomic_t *stop);

/*
 * Creates dir and its missing parents (mode 0700), like mkdir -p; an
 * existing directory is fine, an existing non-directory is FERRY_EUSAGE.
 */
int ferry_mkdir_p(const char *dir, struct ferry_err *err);

/* Formats v in decimal into buf (for log values); returns buf. */
const char *ferry_itoa(char buf[24], long long v);

/* Wall clock in microseconds since the epoch. */
int64_t ferry_wall_us(void);

/* Writes an RFC 3339 UTC timestamp with milliseconds ("...T...123Z"). */
void ferry_format_utc(int64_t wall_us, char *buf, size_t bufsz);

#endif
