/*
 * util.c -- allocation that cannot fail, string and time helpers.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
oom(size_t n)
{
	fprintf(stderr, "ferry: out of memory allocating %zu bytes\n", n);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom(n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom(n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom(0);
	p = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

size_t
ferry_strlcpy(char *dst, const char *src, size_t dstsz)
{
	size_t len = strlen(src);

	if (dstsz > 0) {
		size_t n = len < dstsz - 1 ? len : dstsz - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

int
ferry_starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

int
ferry_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end = NULL;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
ferry_parse_duration_ms(const char *s, const char *what, int64_t *out_ms,
    struct ferry_err *err)
{
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = {
		{ "ms", 1 },
		{ "s", 1000 },
		{ "m", 60 * 1000 },
		{ "h", 3600 * 1000 },
		{ "d", 24 * 3600 * 1000 },
	};
	char *end = NULL;
	long long v;
	size_t i;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0)
		goto bad;
	if (*end == '\0') {
		if (v > INT64_MAX / 1000)
			goto bad;
		*out_ms = (int64_t)v * 1000;
		return 0;
	}
	for (i = 0; i < FERRY_NELEM(units); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (v > INT64_MAX / units[i].ms)
				goto bad;
			*out_ms = (int64_t)v * units[i].ms;
			return 0;
		}
	}
bad:
	return ferry_errf(err, FERRY_EUSAGE,
	    "invalid %s '%s': expected a duration such as 500ms, 5s, 2m or 24h",
	    what, s);
}

int
ferry_write_file_atomic(const char *path, const void *data, size_t len,
    unsigned mode, struct ferry_err *err)
{
	const char *slash = strrchr(path, '/'), *p = data;
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char *dir = NULL;
	int fd = -1, dfd = -1, rc = 0;
	ssize_t n;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    (mode_t)mode);
	if (fd < 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot create '%s'", tmp);
		goto out;
	}
	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot write '%s'", tmp);
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot write '%s'", tmp);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot write '%s'", tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot rename '%s' to '%s'", tmp, path);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	/* The rename is durable only once the directory is synced. */
	if (slash == NULL)
		dir = xstrdup(".");
	else
		dir =
		    xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot sync the directory of '%s'", path);
out:
	if (dfd >= 0)
		close(dfd);
	if (fd >= 0)
		close(fd);
	if (tmp != NULL)
		unlink(tmp);
	free(tmp);
	free(dir);
	return rc;
}

int64_t
ferry_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
ferry_sleep_ms(long ms, volatile sig_atomic_t *stop)
{
	int64_t end = ferry_mono_us() + (int64_t)ms * 1000, left;
	struct timespec ts;

	while ((stop == NULL || !*stop) && (left = end - ferry_mono_us()) > 0) {
		if (left > 50000)
			left = 50000;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left * 1000;
		nanosleep(&ts, NULL);
	}
}

const char *
ferry_itoa(char buf[24], long long v)
{
	snprintf(buf, 24, "%lld", v);
	return buf;
}

int64_t
ferry_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
ferry_format_utc(int64_t wall_us, char *buf, size_t bufsz)
{
	time_t secs = (time_t)(wall_us / 1000000);
	struct tm tm;
	char head[32];

	gmtime_r(&secs, &tm);
	strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, bufsz, "%s.%03dZ", head,
	    (int)((wall_us % 1000000) / 1000));
}

/* Creates one directory (0700) unless it is already a directory. */
static int
make_one_dir(const char *dir, struct ferry_err *err)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot create directory '%s'", dir);
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' exists and is not a directory", dir);
	return 0;
}

/* Creates dir and its missing parents (0700), like mkdir -p. */
int
ferry_mkdir_p(const char *dir, struct ferry_err *err)
{
	char *p = xstrdup(dir), *s;
	int rc = 0;

	for (s = p + 1; *s != '\0' && rc == 0; s++) {
		if (*s != '/' || s[-1] == '/')
			continue;
		*s = '\0';
		rc = make_one_dir(p, err);
		*s = '/';
	}
	if (rc == 0)
		rc = make_one_dir(p, err);
	free(p);
	return rc;
}
