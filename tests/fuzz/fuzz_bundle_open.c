/*
 * fuzz_bundle_open.c -- a whole bundle file from outside: verified with
 * ferry_bundle_open against one trusted (test) release key, then decoded
 * unverified as `ferry bundle inspect` and `ferry approve` without --trust
 * do.
 *
 * Oracles: every refusal is FERRY_EFINDING (bundle.h); an opened bundle
 * is marked verified and names the trusted key as its creator. Random
 * input cannot get past the signature, so in practice only the seeds (and
 * their harmless re-encodings) open; bundle_signed fuzzes what lies
 * behind the signature.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bundle.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ferry_pubkey *trusted = fuzz_pub(FUZZ_KEY_RELEASE);
	struct ferry_bundle *b = NULL;
	struct ferry_err err;
	int rc;

	ferry_err_clear(&err);
	rc = ferry_bundle_open(data, size, trusted, 1, &b, &err);
	if (rc != 0 && rc != FERRY_EFINDING)
		fuzz_fail("ferry_bundle_open returned %d: %s", rc, err.msg);
	if (rc != 0 && (b != NULL || err.msg[0] == '\0'))
		fuzz_fail("refused without a message or with a bundle");
	if (rc == 0) {
		if (!ferry_bundle_verified(b))
			fuzz_fail("opened bundle is not marked verified");
		if (strcmp(ferry_bundle_creator_key_id(b), trusted->id) != 0)
			fuzz_fail("opened bundle names creator '%s'",
			    ferry_bundle_creator_key_id(b));
		fuzz_bundle_walk(b);
		ferry_bundle_free(b);
		b = NULL;
	}

	ferry_err_clear(&err);
	rc = ferry_bundle_decode_unverified(data, size, &b, &err);
	if (rc == 0) {
		if (ferry_bundle_verified(b))
			fuzz_fail("unverified decode is marked verified");
		fuzz_bundle_walk(b);
	} else if (b != NULL || err.msg[0] == '\0') {
		fuzz_fail("decode refused without a message or with a bundle");
	}
	ferry_bundle_free(b);
	return 0;
}
