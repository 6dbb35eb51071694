/*
 * fuzz_approval_check.c -- an approval file from outside, through the
 * policy an agent of "prod" applies: 1 of (alice, bob), then 2 of them
 * with the same file presented twice.
 *
 * Oracles: the result is 0 or FERRY_EFINDING with a message that says
 * how many valid approvals there were; one file never counts as two
 * approvers. Random input cannot get past the signature; the seeds are
 * real approvals, and approval_signed fuzzes what lies behind it.
 */
#include <stdint.h>
#include <string.h>

#include "approval.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_pubkey approvers[2];
	struct ferry_approval_policy policy = { FUZZ_ENVIRONMENT, 1, approvers,
		2 };
	struct ferry_approval_blob blobs[2] = { { data, size, "fuzz.approval" },
		{ data, size, "again.approval" } };
	struct ferry_err err;
	int rc;

	approvers[0] = *fuzz_pub(FUZZ_KEY_ALICE);
	approvers[1] = *fuzz_pub(FUZZ_KEY_BOB);
	ferry_err_clear(&err);
	rc = ferry_approval_check(&policy, fuzz_bundle_digest(), FUZZ_ROLLOUT,
	    blobs, 1, FUZZ_NOW_MS, &err);
	if (rc != 0 && rc != FERRY_EFINDING)
		fuzz_fail("ferry_approval_check returned %d: %s", rc, err.msg);
	if (rc != 0 && strstr(err.msg, "0 of 1 valid approvals") == NULL)
		fuzz_fail("refusal without a count: %s", err.msg);

	policy.required = 2;
	ferry_err_clear(&err);
	rc = ferry_approval_check(&policy, fuzz_bundle_digest(), FUZZ_ROLLOUT,
	    blobs, 2, FUZZ_NOW_MS, &err);
	if (rc != FERRY_EFINDING)
		fuzz_fail("one file counted as two approvers (rc %d)", rc);
	return 0;
}
