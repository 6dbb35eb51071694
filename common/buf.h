/*
 * buf.h -- growable byte buffer with a hard maximum (curl's dynbuf).
 *
 * The struct is public so that buffers can live on the stack and inside
 * other structs, but its fields are read through the accessors below; only
 * buf.c writes them. Every buffer has a maximum size: input from outside
 * can never grow one without bound. The data is always NUL-terminated so
 * text can be used as a C string.
 */
#ifndef FERRY_BUF_H
#define FERRY_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "err.h"

struct ferry_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

/* Initialises an empty buffer that refuses to grow past max bytes. */
void ferry_buf_init(struct ferry_buf *b, size_t max);

/* Frees the contents; the buffer is empty and reusable afterwards. */
void ferry_buf_release(struct ferry_buf *b);

/* Empties the buffer, keeping its memory. */
void ferry_buf_reset(struct ferry_buf *b);

/*
 * Appends n bytes. Returns 0, or -1 if the result would exceed the maximum
 * (the buffer is then unchanged).
 */
int ferry_buf_add(struct ferry_buf *b, const void *p, size_t n);
int ferry_buf_adds(struct ferry_buf *b, const char *s);
int ferry_buf_addf(struct ferry_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int ferry_buf_vaddf(struct ferry_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Contents (never NULL; "" when empty) and length. */
const char *ferry_buf_str(const struct ferry_buf *b);
size_t ferry_buf_len(const struct ferry_buf *b);

/*
 * Hands the contents to the caller (free() them) and empties the buffer.
 * Never returns NULL; *len_out may be NULL.
 */
char *ferry_buf_detach(struct ferry_buf *b, size_t *len_out);

/*
 * Reads the whole file at path into b (appending). Fails with FERRY_EOPER
 * naming the path when it cannot be opened or read, is not a regular file,
 * or is larger than the buffer allows.
 */
int ferry_buf_read_file(struct ferry_buf *b, const char *path,
    struct ferry_err *err);

/* The same for an open descriptor, which it closes; path names it. */
int ferry_buf_read_fd(struct ferry_buf *b, int fd, const char *path,
    struct ferry_err *err);

#endif
