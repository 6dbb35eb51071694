/*
 * buf.c -- growable byte buffer with a hard maximum.
 */
#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

void
ferry_buf_init(struct ferry_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
ferry_buf_release(struct ferry_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
ferry_buf_reset(struct ferry_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* Makes room for n more bytes plus the terminating NUL. */
static int
reserve(struct ferry_buf *b, size_t n)
{
	size_t need, cap;

	if (n > b->max || b->len > b->max - n)
		return -1;
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	return 0;
}

int
ferry_buf_add(struct ferry_buf *b, const void *p, size_t n)
{
	if (reserve(b, n) != 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
ferry_buf_adds(struct ferry_buf *b, const char *s)
{
	return ferry_buf_add(b, s, strlen(s));
}

int
ferry_buf_vaddf(struct ferry_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || reserve(b, (size_t)n) != 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
ferry_buf_addf(struct ferry_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = ferry_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *
ferry_buf_str(const struct ferry_buf *b)
{
	return b->data != NULL ? b->data : "";
}

size_t
ferry_buf_len(const struct ferry_buf *b)
{
	return b->len;
}

char *
ferry_buf_detach(struct ferry_buf *b, size_t *len_out)
{
	char *p;

	if (b->data == NULL)
		p = xstrdup("");
	else
		p = b->data;
	if (len_out != NULL)
		*len_out = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

int
ferry_buf_read_file(struct ferry_buf *b, const char *path,
    struct ferry_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot open '%s'", path);
	return ferry_buf_read_fd(b, fd, path, err);
}

int
ferry_buf_read_fd(struct ferry_buf *b, int fd, const char *path,
    struct ferry_err *err)
{
	struct stat st;
	char chunk[65536];
	ssize_t n;
	int rc = 0;

	if (fstat(fd, &st) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot stat '%s'", path);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "'%s' is a directory, expected a file", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ferry_errf(err, FERRY_EOPER, "'%s' is not a regular file",
		    path);
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot read '%s'", path);
			goto out;
		}
		if (n == 0)
			break;
		if (ferry_buf_add(b, chunk, (size_t)n) != 0) {
			rc = ferry_errf(err, FERRY_EOPER,
			    "'%s' is too large (limit %zu bytes)", path,
			    b->max);
			goto out;
		}
		/* A regular file reads short only at its end: no need for
		   one more read to see 0. */
		if ((size_t)n < sizeof(chunk))
			break;
	}
	/* An empty file still yields a valid, empty string. */
	if (b->data == NULL)
		ferry_buf_add(b, "", 0);
out:
	close(fd);
	return rc;
}
