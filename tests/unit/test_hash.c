/*
 * test_hash.c -- SHA-256 and hex.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

static void
test_sha256_known(void **state)
{
	char hex[FERRY_SHA256_HEX_LEN + 1];

	(void)state;
	ferry_sha256_hex("SELECT 1;\n", 10, hex);
	assert_string_equal(hex,
	    "b4e0497804e46e0a0b0b8c31975b062152d551bac49c3c2e80932567b4085dcd");
	ferry_sha256_hex("", 0, hex);
	assert_string_equal(hex,
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_hex_roundtrip(void **state)
{
	uint8_t in[] = { 0x00, 0x01, 0xab, 0xff, 0x7f }, out[5];
	char hex[11];

	(void)state;
	ferry_hex_encode(in, sizeof(in), hex);
	assert_string_equal(hex, "0001abff7f");
	assert_int_equal(ferry_hex_decode(hex, out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(ferry_hex_decode("0001ABFF7F", out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));
}

static void
test_hex_decode_rejects(void **state)
{
	uint8_t out[2];

	(void)state;
	assert_int_equal(ferry_hex_decode("abc", out, 2), -1);
	assert_int_equal(ferry_hex_decode("abcdef", out, 2), -1);
	assert_int_equal(ferry_hex_decode("zz00", out, 2), -1);
	assert_int_equal(ferry_hex_decode("", out, 2), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_known),
		cmocka_unit_test(test_hex_roundtrip),
		cmocka_unit_test(test_hex_decode_rejects),
	};

	if (ferry_crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
