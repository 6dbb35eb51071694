/*
 * test_util.c -- errors, parsing helpers, logging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "log.h"
#include "util.h"

static void
test_first_error_wins(void **state)
{
	struct ferry_err err;

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_errf(&err, FERRY_EOPER, "cannot %s\n", "x"),
	    FERRY_EOPER);
	assert_int_equal(ferry_errf(&err, FERRY_EUSAGE, "later"), FERRY_EUSAGE);
	assert_int_equal(err.code, FERRY_EOPER);
	/* Trailing newlines (libpq) are stripped. */
	assert_string_equal(err.msg, "cannot x");
	assert_int_equal(ferry_errf(NULL, 1, "no record"), 1);
	ferry_err_clear(&err);
	ferry_errf_errno(&err, FERRY_EOPER, 2, "open '%s'", "f");
	assert_string_equal(err.msg, "open 'f': No such file or directory");
	assert_int_equal(ferry_err_exit_status(99), FERRY_EOPER);
}

static void
test_durations(void **state)
{
	struct ferry_err err;
	int64_t ms;

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_parse_duration_ms("5s", "t", &ms, &err), 0);
	assert_int_equal(ms, 5000);
	assert_int_equal(ferry_parse_duration_ms("250ms", "t", &ms, &err), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(ferry_parse_duration_ms("24h", "t", &ms, &err), 0);
	assert_int_equal(ms, 86400000);
	assert_int_equal(ferry_parse_duration_ms("7", "t", &ms, &err), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(ferry_parse_duration_ms("5x", "lock timeout", &ms,
	                     &err),
	    FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "lock timeout '5x'"));
	ferry_err_clear(&err);
	assert_int_equal(ferry_parse_duration_ms("-1s", "t", &ms, &err),
	    FERRY_EUSAGE);
	ferry_err_clear(&err);
	assert_int_equal(ferry_parse_duration_ms("", "t", &ms, &err),
	    FERRY_EUSAGE);
}

static void
test_ints_and_strings(void **state)
{
	char small[4];
	int64_t v;

	(void)state;
	assert_int_equal(ferry_parse_int64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(ferry_parse_int64("101", 0, 100, &v), -1);
	assert_int_equal(ferry_parse_int64("4x", 0, 100, &v), -1);
	assert_int_equal(ferry_parse_int64("", 0, 100, &v), -1);
	assert_int_equal(ferry_strlcpy(small, "abcdef", sizeof(small)), 6);
	assert_string_equal(small, "abc");
	assert_true(ferry_starts_with("postgresql://x", "postgresql://"));
	assert_false(ferry_starts_with("postgres", "postgresql"));
}

static void
test_log_levels(void **state)
{
	enum ferry_log_level l;

	(void)state;
	assert_int_equal(ferry_log_parse_level("warn", &l), 0);
	assert_int_equal(l, FERRY_LOG_WARN);
	assert_int_equal(ferry_log_parse_level("loud", &l), -1);
	ferry_log_set_level(FERRY_LOG_ERROR);
	assert_int_equal(ferry_log_get_level(), FERRY_LOG_ERROR);
	/* Below the level: nothing is written (and nothing crashes). */
	ferry_log_info("quiet", "k", "v");
}

static void
test_utc_format(void **state)
{
	char buf[40];

	(void)state;
	ferry_format_utc(1700000000123456LL, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20.123Z");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_ints_and_strings),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_utc_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
