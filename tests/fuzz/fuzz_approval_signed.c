/*
 * fuzz_approval_signed.c -- the Approval decoder and field checks behind
 * the signature. The first input byte picks the signer (alice or bob,
 * trusted for "prod", or mallory, trusted by nobody); the rest is taken as
 * the encoded ferry.Approval, signed, wrapped as ferry_approval_create
 * does and checked against the policy 1 of (alice, bob).
 *
 * Oracles: mallory is never accepted; an accepted approval names exactly
 * the bundle digest, environment, rollout and signer, and has not
 * expired; one approval never satisfies a policy of two.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "approval.h"
#include "ferry.pb-c.h"
#include "fuzz_common.h"
#include "hash.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks what an accepted approval must say, decoding it independently. */
static void
check_accepted(const uint8_t *body, size_t len, const char *signer_id)
{
	Ferry__Approval *a = ferry__approval__unpack(NULL, len, body);

	if (a == NULL)
		fuzz_fail("accepted an approval that does not decode");
	if (a->format_version != FERRY_APPROVAL_FORMAT ||
	    a->bundle_digest.len != 32 ||
	    memcmp(a->bundle_digest.data, fuzz_bundle_digest(), 32) != 0 ||
	    strcmp(a->environment, FUZZ_ENVIRONMENT) != 0 ||
	    strcmp(a->rollout_id, FUZZ_ROLLOUT) != 0 ||
	    strcmp(a->approver_key_id, signer_id) != 0 ||
	    a->expires_unix_ms <= FUZZ_NOW_MS)
		fuzz_fail("accepted an approval that does not match");
	ferry__approval__free_unpacked(a, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum fuzz_key signers[] = { FUZZ_KEY_ALICE, FUZZ_KEY_BOB,
		FUZZ_KEY_MALLORY };
	Ferry__SignedApproval sa = FERRY__SIGNED_APPROVAL__INIT;
	struct ferry_pubkey approvers[2];
	struct ferry_approval_policy policy = { FUZZ_ENVIRONMENT, 1, approvers,
		2 };
	struct ferry_approval_blob blob;
	struct ferry_err err;
	enum fuzz_key signer;
	const struct ferry_seckey *key;
	uint8_t digest[FERRY_SHA256_LEN], sig[FERRY_SIG_LEN], *file;
	int rc;

	if (size < 1 || size > FERRY_APPROVAL_MAX_BYTES)
		return 0;
	signer = signers[data[0] % 3];
	key = fuzz_key(signer);
	data++;
	size--;
	approvers[0] = *fuzz_pub(FUZZ_KEY_ALICE);
	approvers[1] = *fuzz_pub(FUZZ_KEY_BOB);

	ferry_sha256(data, size, digest);
	ferry_seckey_sign(key, FERRY_APPROVAL_DOMAIN, digest, sig);
	sa.format_version = FERRY_APPROVAL_FORMAT;
	sa.approval.data = (uint8_t *)data;
	sa.approval.len = size;
	sa.signature.data = sig;
	sa.signature.len = sizeof(sig);
	sa.key_id = (char *)ferry_seckey_public(key)->id;
	blob.len = ferry__signed_approval__get_packed_size(&sa);
	file = xmalloc(blob.len);
	ferry__signed_approval__pack(&sa, file);
	blob.data = file;
	blob.source = "signed.approval";

	ferry_err_clear(&err);
	rc = ferry_approval_check(&policy, fuzz_bundle_digest(), FUZZ_ROLLOUT,
	    &blob, 1, FUZZ_NOW_MS, &err);
	if (rc != 0 && rc != FERRY_EFINDING)
		fuzz_fail("ferry_approval_check returned %d: %s", rc, err.msg);
	if (rc == 0 && signer == FUZZ_KEY_MALLORY)
		fuzz_fail("accepted an approval by an untrusted key");
	if (rc == 0)
		check_accepted(data, size, ferry_seckey_public(key)->id);

	policy.required = 2;
	ferry_err_clear(&err);
	if (ferry_approval_check(&policy, fuzz_bundle_digest(), FUZZ_ROLLOUT,
	        &blob, 1, FUZZ_NOW_MS, &err) != FERRY_EFINDING)
		fuzz_fail("one approval satisfied a policy of two");
	free(file);
	return 0;
}
