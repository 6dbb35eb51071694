/*
 * fuzz_bundle_signed.c -- the Bundle decoder behind the signature: the
 * input is taken as the encoded ferry.Bundle, signed with the (test)
 * release key, wrapped in a SignedBundle exactly as ferry_bundle_create
 * does, and opened. What a trusted signer could put in a bundle -- by
 * mistake or from a compromised CI -- is fuzzed this way.
 *
 * Oracles: refusals are FERRY_EFINDING; an opened bundle's digest is the
 * SHA-256 of the input bytes (never of a re-encoding); no bundle follows
 * itself; a bundle opened from the same bytes twice has the same digest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "ferry.pb-c.h"
#include "fuzz_common.h"
#include "hash.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Signs data as Bundle bytes and wraps it; returns the malloc'ed file. */
static uint8_t *
wrap(const uint8_t *data, size_t size, size_t *outlen)
{
	const struct ferry_seckey *key = fuzz_key(FUZZ_KEY_RELEASE);
	Ferry__SignedBundle sb = FERRY__SIGNED_BUNDLE__INIT;
	uint8_t digest[FERRY_SHA256_LEN], sig[FERRY_SIG_LEN], *file;

	ferry_sha256(data, size, digest);
	ferry_seckey_sign(key, FERRY_BUNDLE_DOMAIN, digest, sig);
	sb.format_version = FERRY_BUNDLE_FORMAT;
	sb.bundle.data = (uint8_t *)data;
	sb.bundle.len = size;
	sb.signature.data = sig;
	sb.signature.len = sizeof(sig);
	sb.key_id = (char *)ferry_seckey_public(key)->id;
	*outlen = ferry__signed_bundle__get_packed_size(&sb);
	file = xmalloc(*outlen);
	ferry__signed_bundle__pack(&sb, file);
	return file;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ferry_pubkey *trusted = fuzz_pub(FUZZ_KEY_RELEASE);
	const struct ferry_bundle *parent = fuzz_parent_bundle();
	struct ferry_bundle *b = NULL;
	struct ferry_err err;
	uint8_t digest[FERRY_SHA256_LEN], *file;
	size_t len;
	int rc;

	if (size > 1024 * 1024)
		return 0;
	file = wrap(data, size, &len);
	ferry_err_clear(&err);
	rc = ferry_bundle_open(file, len, trusted, 1, &b, &err);
	if (rc != 0 && rc != FERRY_EFINDING)
		fuzz_fail("ferry_bundle_open returned %d: %s", rc, err.msg);
	if (rc != 0 && (b != NULL || err.msg[0] == '\0'))
		fuzz_fail("refused without a message or with a bundle");
	if (rc == 0) {
		ferry_sha256(data, size, digest);
		if (memcmp(ferry_bundle_digest(b), digest, sizeof(digest)) != 0)
			fuzz_fail("bundle digest is not SHA-256 of its bytes");
		if (!ferry_bundle_verified(b))
			fuzz_fail("opened bundle is not marked verified");
		fuzz_bundle_walk(b);
		ferry_err_clear(&err);
		if (ferry_bundle_check_parent(b, b, &err) == 0)
			fuzz_fail("bundle accepted as its own parent");
		ferry_err_clear(&err);
		rc = ferry_bundle_check_parent(b, parent, &err);
		if (rc != 0 && rc != FERRY_EFINDING)
			fuzz_fail("check_parent returned %d: %s", rc, err.msg);
		if (rc == 0 &&
		    (ferry_bundle_sequence(b) != 2 ||
		        strcmp(ferry_bundle_project(b), "fuzz") != 0))
			fuzz_fail("bundle follows the parent with sequence "
			          "%llu",
			    (unsigned long long)ferry_bundle_sequence(b));
	}
	ferry_bundle_free(b);
	free(file);
	return 0;
}
