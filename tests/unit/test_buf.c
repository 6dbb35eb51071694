/*
 * test_buf.c -- bounded buffers and whole-file reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"

static void
test_add_and_limit(void **state)
{
	struct ferry_buf b;

	(void)state;
	ferry_buf_init(&b, 8);
	assert_string_equal(ferry_buf_str(&b), "");
	assert_int_equal(ferry_buf_adds(&b, "abcd"), 0);
	assert_int_equal(ferry_buf_addf(&b, "%d", 123), 0);
	assert_string_equal(ferry_buf_str(&b), "abcd123");
	assert_int_equal(ferry_buf_add(&b, "x", 1), 0);
	/* At the maximum: one more byte is refused and changes nothing. */
	assert_int_equal(ferry_buf_add(&b, "y", 1), -1);
	assert_int_equal(ferry_buf_addf(&b, "%s", "zz"), -1);
	assert_int_equal(ferry_buf_len(&b), 8);
	assert_string_equal(ferry_buf_str(&b), "abcd123x");
	ferry_buf_reset(&b);
	assert_int_equal(ferry_buf_len(&b), 0);
	ferry_buf_release(&b);
}

static void
test_grow_and_detach(void **state)
{
	struct ferry_buf b;
	size_t i, len;
	char *p;

	(void)state;
	ferry_buf_init(&b, 1 << 20);
	for (i = 0; i < 10000; i++)
		assert_int_equal(ferry_buf_add(&b, "0123456789", 10), 0);
	p = ferry_buf_detach(&b, &len);
	assert_int_equal(len, 100000);
	assert_int_equal(strlen(p), 100000);
	assert_int_equal(ferry_buf_len(&b), 0);
	free(p);
	ferry_buf_release(&b);
}

static void
test_read_file(void **state)
{
	char path[] = "/tmp/ferry-test-buf-XXXXXX";
	struct ferry_err err;
	struct ferry_buf b;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "a\0b\r\n", 5), 5);
	close(fd);

	ferry_err_clear(&err);
	ferry_buf_init(&b, 100);
	assert_int_equal(ferry_buf_read_file(&b, path, &err), 0);
	assert_int_equal(ferry_buf_len(&b), 5);
	assert_memory_equal(ferry_buf_str(&b), "a\0b\r\n", 5);
	ferry_buf_release(&b);

	/* Too large for the buffer: an error naming the file. */
	ferry_buf_init(&b, 4);
	assert_int_equal(ferry_buf_read_file(&b, path, &err), FERRY_EOPER);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "too large"));
	ferry_buf_release(&b);
	unlink(path);

	ferry_err_clear(&err);
	ferry_buf_init(&b, 100);
	assert_int_equal(ferry_buf_read_file(&b, path, &err), FERRY_EOPER);
	assert_non_null(strstr(err.msg, "No such file"));
	ferry_err_clear(&err);
	assert_int_equal(ferry_buf_read_file(&b, "/tmp", &err), FERRY_EOPER);
	assert_non_null(strstr(err.msg, "is a directory"));
	ferry_buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_limit),
		cmocka_unit_test(test_grow_and_detach),
		cmocka_unit_test(test_read_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
