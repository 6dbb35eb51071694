/*
 * approval.h -- release managers' approvals, and the policy an agent of a
 * protected environment applies to them.
 *
 * An approval file is an encoded ferry.SignedApproval: the exact encoded
 * ferry.Approval (rollout id, bundle digest, environment, expiry, approver
 * key id, creation time) plus an Ed25519 signature over
 * "ferry-approval-v1\0" || SHA-256(approval bytes), checked before the
 * Approval bytes are decoded.
 */
#ifndef FERRY_APPROVAL_H
#define FERRY_APPROVAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "keys.h"

#define FERRY_APPROVAL_FORMAT 1
#define FERRY_APPROVAL_DOMAIN "ferry-approval-v1"
#define FERRY_APPROVAL_MAX_BYTES (64u * 1024)

/*
 * Signs an approval of the bundle with this digest for environment and
 * rollout, valid until expires_unix_ms. *out is malloc'ed.
 */
int ferry_approval_create(const uint8_t bundle_digest[32],
    const char *environment, const char *rollout_id, int64_t expires_unix_ms,
    const struct ferry_seckey *key, uint8_t **out, size_t *outlen,
    struct ferry_err *err);

struct ferry_approval_policy {
	const char *environment;
	int required; /* N: distinct trusted approvers needed; 0 = none */
	const struct ferry_pubkey *approvers;
	size_t napprovers;
};

/* One approval file's bytes, as given to the policy check. */
struct ferry_approval_blob {
	const uint8_t *data;
	size_t len;
	const char *source; /* file name, for messages */
};

/*
 * Accepts the bundle (0) only with at least policy->required valid,
 * unexpired approvals from distinct trusted approvers for exactly this
 * bundle digest, environment and rollout id. Otherwise FERRY_EFINDING
 * with a message naming what is missing and why each rejected approval
 * was rejected (bad signature, untrusted approver, wrong environment,
 * other bundle, other rollout, expired, duplicate approver, malformed).
 */
int ferry_approval_check(const struct ferry_approval_policy *policy,
    const uint8_t bundle_digest[32], const char *rollout_id,
    const struct ferry_approval_blob *blobs, size_t nblobs, int64_t now_ms,
    struct ferry_err *err) __attribute__((warn_unused_result));

#endif
