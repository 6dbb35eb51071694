/*
 * hash.c -- SHA-256 (libsodium) and hex encoding.
 */
#include "hash.h"

#include <sodium.h>
#include <string.h>

int
ferry_crypto_init(void)
{
	/* sodium_init() is idempotent and thread-safe; 1 = already done. */
	return sodium_init() < 0 ? -1 : 0;
}

void
ferry_sha256(const void *data, size_t len, uint8_t out[FERRY_SHA256_LEN])
{
	crypto_hash_sha256(out, data, len);
}

void
ferry_sha256_hex(const void *data, size_t len,
    char out[FERRY_SHA256_HEX_LEN + 1])
{
	uint8_t digest[FERRY_SHA256_LEN];

	ferry_sha256(data, len, digest);
	ferry_hex_encode(digest, sizeof(digest), out);
}

void
ferry_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

static int
nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
ferry_hex_decode(const char *hex, uint8_t *out, size_t n)
{
	size_t i;

	if (strlen(hex) != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
