/*
 * approval.c -- release managers' approvals: signing one, and the policy
 * check an agent of a protected environment runs over a set of them.
 *
 * Bytes from outside go through the checks in a fixed order, so that
 * nothing an attacker wrote reaches the Approval decoder: size cap, the
 * SignedApproval wrapper (canonical, nothing but its four known fields,
 * so every byte outside the signature is pinned down), the approver looked
 * up by key id among the policy's approvers, the signature, and only then
 * the signed Approval and its fields.
 */
#include "approval.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ferry.pb-c.h"
#include "hash.h"
#include "util.h"

/* Longest environment name or rollout id an approval may carry. */
#define TEXT_MAX 128
/* 9999-12-31T23:59:59.999Z, the last time a message shows as a date. */
#define TIME_MAX_MS INT64_C(253402300799999)
/* How much of an untrusted string a message quotes. */
#define QUOTE_MAX 48

/*
 * Returns 1 if s is 1 to TEXT_MAX visible ASCII characters (no spaces,
 * quotes, backslashes or control characters), else 0. Keeps names
 * unambiguous in messages and terminals.
 */
static int
text_ok(const char *s)
{
	size_t n;

	if (s == NULL || *s == '\0')
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (n >= TEXT_MAX || c <= 0x20 || c >= 0x7f || c == '\'' ||
		    c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

/* Returns 1 if s is a key id: exactly 16 lowercase hex digits. */
static int
key_id_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		if (n >= FERRY_KEY_ID_HEX ||
		    !((s[n] >= '0' && s[n] <= '9') ||
		        (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == FERRY_KEY_ID_HEX;
}

/*
 * Copies a signed but otherwise unchecked string into out for a message:
 * at most QUOTE_MAX characters, anything but printable ASCII shown as '?'.
 */
static void
quote(const char *s, char out[QUOTE_MAX + 4])
{
	size_t i;

	for (i = 0; s[i] != '\0' && i < QUOTE_MAX; i++) {
		int printable = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'';

		out[i] = printable ? s[i] : '?';
	}
	if (s[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

int
ferry_approval_create(const uint8_t bundle_digest[32], const char *environment,
    const char *rollout_id, int64_t expires_unix_ms,
    const struct ferry_seckey *key, uint8_t **out, size_t *outlen,
    struct ferry_err *err)
{
	Ferry__Approval a = FERRY__APPROVAL__INIT;
	Ferry__SignedApproval sa = FERRY__SIGNED_APPROVAL__INIT;
	const struct ferry_pubkey *pub;
	uint8_t *abytes = NULL, *buf = NULL;
	uint8_t digest[FERRY_SHA256_LEN], sig[FERRY_SIG_LEN];
	size_t alen, len;
	int64_t now_ms;
	int rc = 0;

	*out = NULL;
	*outlen = 0;
	if (!text_ok(environment)) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "invalid environment name: expected 1 to %d visible "
		    "characters, no spaces or quotes",
		    TEXT_MAX);
		goto out;
	}
	if (!text_ok(rollout_id)) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "invalid rollout id: expected 1 to %d visible "
		    "characters, no spaces or quotes",
		    TEXT_MAX);
		goto out;
	}
	if (ferry_crypto_init() != 0) {
		rc =
		    ferry_errf(err, FERRY_EOPER, "cannot initialise libsodium");
		goto out;
	}
	now_ms = ferry_wall_us() / 1000;
	if (expires_unix_ms <= now_ms) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "approval expiry is not in the future");
		goto out;
	}
	pub = ferry_seckey_public(key);

	/* The Approval is encoded once; these bytes are what is signed and
	   what is stored, never re-encoded. */
	a.format_version = FERRY_APPROVAL_FORMAT;
	a.rollout_id = (char *)rollout_id;
	a.bundle_digest.data = (uint8_t *)bundle_digest;
	a.bundle_digest.len = FERRY_SHA256_LEN;
	a.environment = (char *)environment;
	a.expires_unix_ms = expires_unix_ms;
	a.approver_key_id = (char *)pub->id;
	a.created_unix_ms = now_ms;
	alen = ferry__approval__get_packed_size(&a);
	abytes = xmalloc(alen);
	ferry__approval__pack(&a, abytes);

	ferry_sha256(abytes, alen, digest);
	ferry_seckey_sign(key, FERRY_APPROVAL_DOMAIN, digest, sig);

	sa.format_version = FERRY_APPROVAL_FORMAT;
	sa.approval.data = abytes;
	sa.approval.len = alen;
	sa.signature.data = sig;
	sa.signature.len = sizeof(sig);
	sa.key_id = (char *)pub->id;
	len = ferry__signed_approval__get_packed_size(&sa);
	/* Bounded by TEXT_MAX on both strings: far below the cap. */
	assert(len <= FERRY_APPROVAL_MAX_BYTES);
	buf = xmalloc(len);
	ferry__signed_approval__pack(&sa, buf);
	*out = buf;
	*outlen = len;
	buf = NULL;
out:
	free(buf);
	free(abytes);
	return rc;
}

/*
 * Decodes the SignedApproval wrapper and insists on its canonical encoding:
 * re-encoding must give back exactly the input. That rejects unknown
 * fields, repeated or reordered fields, non-minimal varints and trailing
 * bytes, so the only bytes outside the signature are the format version,
 * the signature and the key id, each once. Returns the wrapper (free it
 * with ferry__signed_approval__free_unpacked) or NULL with why set.
 */
static Ferry__SignedApproval *
unpack_wrapper(const uint8_t *data, size_t len, char *why, size_t whysz)
{
	Ferry__SignedApproval *sa = NULL;
	uint8_t *re = NULL;

	if (len == 0) {
		snprintf(why, whysz, "malformed: empty file");
		goto fail;
	}
	if (len > FERRY_APPROVAL_MAX_BYTES) {
		snprintf(why, whysz, "malformed: %zu bytes, at most %u allowed",
		    len, FERRY_APPROVAL_MAX_BYTES);
		goto fail;
	}
	sa = ferry__signed_approval__unpack(NULL, len, data);
	if (sa == NULL) {
		snprintf(why, whysz, "malformed: not a signed approval");
		goto fail;
	}
	if (sa->base.n_unknown_fields != 0) {
		snprintf(why, whysz,
		    "malformed: unknown fields outside the signature");
		goto fail;
	}
	if (ferry__signed_approval__get_packed_size(sa) != len) {
		snprintf(why, whysz,
		    "malformed: bytes not covered by the signature "
		    "(repeated, padded or trailing fields)");
		goto fail;
	}
	re = xmalloc(len);
	ferry__signed_approval__pack(sa, re);
	if (memcmp(re, data, len) != 0) {
		snprintf(why, whysz,
		    "malformed: not canonically encoded (reordered or "
		    "repeated fields)");
		goto fail;
	}
	free(re);
	return sa;
fail:
	free(re);
	if (sa != NULL)
		ferry__signed_approval__free_unpacked(sa, NULL);
	return NULL;
}

/* Number of different keys among the policy's approvers. */
static size_t
distinct_keys(const struct ferry_approval_policy *policy)
{
	size_t i, j, n = 0;

	for (i = 0; i < policy->napprovers; i++) {
		for (j = 0; j < i; j++)
			if (memcmp(policy->approvers[i].pk,
			        policy->approvers[j].pk, FERRY_PUBKEY_LEN) == 0)
				break;
		n += j == i;
	}
	return n;
}

/* Returns the policy approver with this key id, or NULL. */
static const struct ferry_pubkey *
find_approver(const struct ferry_approval_policy *policy, const char *key_id)
{
	size_t i;

	for (i = 0; i < policy->napprovers; i++)
		if (strcmp(policy->approvers[i].id, key_id) == 0)
			return &policy->approvers[i];
	return NULL;
}

/*
 * Checks one approval file against the policy, bundle and rollout. Returns
 * 0 and the approver who signed it, or -1 with the reason in why.
 */
static int
check_one(const struct ferry_approval_policy *policy,
    const uint8_t bundle_digest[32], const char *rollout_id,
    const struct ferry_approval_blob *blob, int64_t now_ms,
    const struct ferry_pubkey **approver, char *why, size_t whysz)
{
	Ferry__SignedApproval *sa = NULL;
	Ferry__Approval *a = NULL;
	const struct ferry_pubkey *pk;
	uint8_t digest[FERRY_SHA256_LEN];
	char q[QUOTE_MAX + 4], hex[2 * FERRY_SHA256_LEN + 1], when[40];
	int rc = -1;

	*approver = NULL;
	sa = unpack_wrapper(blob->data, blob->len, why, whysz);
	if (sa == NULL)
		goto out;
	if (sa->format_version != FERRY_APPROVAL_FORMAT) {
		snprintf(why, whysz,
		    "unsupported approval file format %" PRIu32,
		    sa->format_version);
		goto out;
	}
	if (!key_id_ok(sa->key_id)) {
		snprintf(why, whysz, "malformed: invalid signing key id");
		goto out;
	}
	if (sa->signature.len != FERRY_SIG_LEN) {
		snprintf(why, whysz, "malformed: signature of %zu bytes",
		    sa->signature.len);
		goto out;
	}
	pk = find_approver(policy, sa->key_id);
	if (pk == NULL) {
		snprintf(why, whysz,
		    "signed by key %s, which is not a trusted approver "
		    "for '%s'",
		    sa->key_id, policy->environment);
		goto out;
	}
	ferry_sha256(sa->approval.data, sa->approval.len, digest);
	if (ferry_pubkey_verify(pk, FERRY_APPROVAL_DOMAIN, digest,
	        sa->signature.data) != 0) {
		snprintf(why, whysz, "bad signature for approver '%s' (key %s)",
		    pk->name, pk->id);
		goto out;
	}

	/* Authenticated from here on: the approver signed these bytes. */
	a = ferry__approval__unpack(NULL, sa->approval.len, sa->approval.data);
	if (a == NULL) {
		snprintf(why, whysz, "malformed approval signed by '%s'",
		    pk->name);
		goto out;
	}
	if (a->format_version != FERRY_APPROVAL_FORMAT) {
		snprintf(why, whysz,
		    "unsupported approval format %" PRIu32 " from '%s'",
		    a->format_version, pk->name);
		goto out;
	}
	/* A newer approval may restrict itself with a field we cannot
	   read: fail closed rather than ignore the restriction. */
	if (a->base.n_unknown_fields != 0) {
		snprintf(why, whysz,
		    "approval from '%s' has fields this version does not know",
		    pk->name);
		goto out;
	}
	if (a->bundle_digest.len != FERRY_SHA256_LEN) {
		snprintf(why, whysz,
		    "from '%s' with a malformed bundle digest (%zu bytes)",
		    pk->name, a->bundle_digest.len);
		goto out;
	}
	if (memcmp(a->bundle_digest.data, bundle_digest, FERRY_SHA256_LEN) !=
	    0) {
		ferry_hex_encode(a->bundle_digest.data, FERRY_SHA256_LEN, hex);
		snprintf(why, whysz, "from '%s' for another bundle (%.16s)",
		    pk->name, hex);
		goto out;
	}
	if (strcmp(a->environment, policy->environment) != 0) {
		quote(a->environment, q);
		snprintf(why, whysz, "from '%s' for environment '%s', not '%s'",
		    pk->name, q, policy->environment);
		goto out;
	}
	if (strcmp(a->rollout_id, rollout_id) != 0) {
		quote(a->rollout_id, q);
		snprintf(why, whysz, "from '%s' for rollout '%s', not '%s'",
		    pk->name, q, rollout_id);
		goto out;
	}
	if (a->expires_unix_ms <= now_ms) {
		if (a->expires_unix_ms >= 0 &&
		    a->expires_unix_ms <= TIME_MAX_MS)
			ferry_format_utc(a->expires_unix_ms * 1000, when,
			    sizeof(when));
		else
			ferry_strlcpy(when, "(invalid time)", sizeof(when));
		snprintf(why, whysz, "from '%s' expired at %s", pk->name, when);
		goto out;
	}
	if (strcmp(a->approver_key_id, sa->key_id) != 0) {
		quote(a->approver_key_id, q);
		snprintf(why, whysz,
		    "from '%s' names approver key '%s', not its signing "
		    "key %s",
		    pk->name, q, sa->key_id);
		goto out;
	}
	*approver = pk;
	rc = 0;
out:
	if (a != NULL)
		ferry__approval__free_unpacked(a, NULL);
	if (sa != NULL)
		ferry__signed_approval__free_unpacked(sa, NULL);
	return rc;
}

/*
 * Appends "; <rejection>" for each rejection that fits in msg (at most
 * max bytes), keeping room for a last "; N more rejected" when not all of
 * them fit.
 */
static void
add_rejections(struct ferry_buf *msg, size_t max, char **rejections, size_t n)
{
	const size_t tail = 32;
	size_t i, need;

	for (i = 0; i < n; i++) {
		need = 2 + strlen(rejections[i]) + (i + 1 < n ? tail : 0);
		if (ferry_buf_len(msg) + need > max)
			break;
		ferry_buf_addf(msg, "; %s", rejections[i]);
	}
	if (i < n)
		ferry_buf_addf(msg, "; %zu more rejected", n - i);
}

int
ferry_approval_check(const struct ferry_approval_policy *policy,
    const uint8_t bundle_digest[32], const char *rollout_id,
    const struct ferry_approval_blob *blobs, size_t nblobs, int64_t now_ms,
    struct ferry_err *err)
{
	const struct ferry_pubkey **counted = NULL;
	char **rejections = NULL;
	struct ferry_buf msg;
	char why[256], src[32];
	size_t i, j, ncounted = 0, nrejected = 0;
	int rc = 0;

	assert(policy != NULL && (blobs != NULL || nblobs == 0));
	assert(policy->approvers != NULL || policy->napprovers == 0);
	ferry_buf_init(&msg, sizeof(err->msg) - 1);
	if (policy->environment == NULL || *policy->environment == '\0' ||
	    policy->required < 0 ||
	    (size_t)policy->required > distinct_keys(policy)) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "invalid approval policy for environment '%s': %d of %zu "
		    "distinct approvers required",
		    policy->environment ? policy->environment : "",
		    policy->required, distinct_keys(policy));
		goto out;
	}
	if (policy->required == 0)
		goto out;
	if (rollout_id == NULL) {
		rc = ferry_errf(err, FERRY_EUSAGE, "no rollout id to check");
		goto out;
	}
	if (ferry_crypto_init() != 0) {
		rc =
		    ferry_errf(err, FERRY_EOPER, "cannot initialise libsodium");
		goto out;
	}

	counted = xcalloc(policy->napprovers, sizeof(*counted));
	rejections = xcalloc(nblobs ? nblobs : 1, sizeof(*rejections));
	for (i = 0; i < nblobs; i++) {
		const struct ferry_pubkey *pk = NULL;
		const char *source = blobs[i].source;

		if (source == NULL) {
			snprintf(src, sizeof(src), "approval #%zu", i + 1);
			source = src;
		}
		if (check_one(policy, bundle_digest, rollout_id, &blobs[i],
		        now_ms, &pk, why, sizeof(why)) == 0) {
			/* Distinct approvers by key, not by file: one
			   person signing twice is still one approval. */
			for (j = 0; j < ncounted; j++)
				if (memcmp(counted[j]->pk, pk->pk,
				        FERRY_PUBKEY_LEN) == 0)
					break;
			if (j == ncounted) {
				counted[ncounted++] = pk;
				continue;
			}
			snprintf(why, sizeof(why),
			    "duplicate approver '%s' (key %s), counted once",
			    pk->name, pk->id);
		}
		rejections[nrejected++] = xasprintf("'%s': %s", source, why);
	}
	if (ncounted >= (size_t)policy->required)
		goto out;

	if (ferry_buf_addf(&msg,
	        "approval refused: %zu of %d valid approvals for "
	        "environment '%s', rollout '%s'",
	        ncounted, policy->required, policy->environment,
	        rollout_id) != 0) {
		/* Names too long for details: the summary, cut short. */
		rc = ferry_errf(err, FERRY_EFINDING,
		    "approval refused: %zu of %d valid approvals for "
		    "environment '%s'",
		    ncounted, policy->required, policy->environment);
		goto out;
	}
	for (j = 0; j < ncounted; j++)
		ferry_buf_addf(&msg, "%s%s", j == 0 ? " (valid: " : ", ",
		    counted[j]->name);
	if (ncounted > 0)
		ferry_buf_adds(&msg, ")");
	if (nblobs == 0)
		ferry_buf_adds(&msg, "; no approvals given");
	add_rejections(&msg, sizeof(err->msg) - 1, rejections, nrejected);
	rc = ferry_errf(err, FERRY_EFINDING, "%s", ferry_buf_str(&msg));
out:
	for (i = 0; i < nrejected; i++)
		free(rejections[i]);
	free(rejections);
	free(counted);
	ferry_buf_release(&msg);
	return rc;
}
