/*
 * hash.h -- SHA-256 (libsodium) and hex encoding.
 */
#ifndef FERRY_HASH_H
#define FERRY_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FERRY_SHA256_LEN 32
#define FERRY_SHA256_HEX_LEN 64

/* Initialises libsodium once; safe to call many times. Returns 0 or -1. */
int ferry_crypto_init(void);

void ferry_sha256(const void *data, size_t len, uint8_t out[FERRY_SHA256_LEN]);

/* Lowercase hex SHA-256 of data, NUL-terminated, into out[65]. */
void ferry_sha256_hex(const void *data, size_t len,
    char out[FERRY_SHA256_HEX_LEN + 1]);

/* Lowercase hex of n bytes into out, which must hold 2n + 1 bytes. */
void ferry_hex_encode(const uint8_t *in, size_t n, char *out);

/*
 * Decodes exactly 2n hex digits (either case) from hex into out[n].
 * Returns 0, or -1 if hex is not exactly that.
 */
int ferry_hex_decode(const char *hex, uint8_t *out, size_t n);

#endif
