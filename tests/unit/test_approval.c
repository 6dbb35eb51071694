/*
 * test_approval.c -- approvals and the approval policy, attacked: too few
 * approvers, duplicates, untrusted keys, approvals for another
 * environment, bundle or rollout, expired ones, flipped bits, truncated
 * and garbage files, forged key ids and non-canonical wrappers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "approval.h"
#include "ferry.pb-c.h"
#include "hash.h"
#include "keys.h"
#include "util.h"

#define HOUR_MS (3600 * 1000)

enum { ALICE, BOB, CAROL, MALLORY, NKEYS };

static struct ferry_seckey *keys[NKEYS];
/* The trusted approvers of "prod": alice, bob and carol. */
static struct ferry_pubkey approvers[3];
static uint8_t digest[32], other_digest[32];
static int64_t now_ms;

/* One approval file in memory; freed by release(). */
struct file {
	uint8_t *data;
	size_t len;
};

static int
group_setup(void **state)
{
	static const char *const names[NKEYS] = { "alice", "bob", "carol",
		"mallory" };
	struct ferry_err err;
	int i;

	(void)state;
	if (ferry_crypto_init() != 0)
		return -1;
	for (i = 0; i < NKEYS; i++) {
		ferry_err_clear(&err);
		if (ferry_seckey_generate(names[i], &keys[i], &err) != 0)
			return -1;
	}
	for (i = 0; i < 3; i++)
		approvers[i] = *ferry_seckey_public(keys[i]);
	ferry_sha256("bundle 7", 8, digest);
	ferry_sha256("bundle 8", 8, other_digest);
	now_ms = ferry_wall_us() / 1000;
	return 0;
}

static int
group_teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < NKEYS; i++)
		ferry_seckey_free(keys[i]);
	return 0;
}

/* Signs an approval with ferry_approval_create; fails the test if not. */
static struct file
make(int who, const uint8_t *d, const char *env, const char *rollout)
{
	struct ferry_err err;
	struct file f = { NULL, 0 };

	ferry_err_clear(&err);
	assert_int_equal(ferry_approval_create(d, env, rollout,
	                     now_ms + HOUR_MS, keys[who], &f.data, &f.len,
	                     &err),
	    0);
	assert_non_null(f.data);
	assert_true(f.len > 0 && f.len <= FERRY_APPROVAL_MAX_BYTES);
	return f;
}

static struct file
make_prod(int who)
{
	return make(who, digest, "prod", "r-42");
}

static void
release(struct file *f)
{
	free(f->data);
	f->data = NULL;
}

/*
 * Signs an arbitrary Approval with key who, naming key_id in the wrapper,
 * the way an attacker or a buggy client could.
 */
static struct file
sign_raw(int who, const Ferry__Approval *a, const char *key_id)
{
	Ferry__SignedApproval sa = FERRY__SIGNED_APPROVAL__INIT;
	uint8_t h[32], sig[FERRY_SIG_LEN], *abytes;
	size_t alen;
	struct file f;

	alen = ferry__approval__get_packed_size(a);
	abytes = xmalloc(alen ? alen : 1);
	ferry__approval__pack(a, abytes);
	ferry_sha256(abytes, alen, h);
	ferry_seckey_sign(keys[who], FERRY_APPROVAL_DOMAIN, h, sig);
	sa.format_version = FERRY_APPROVAL_FORMAT;
	sa.approval.data = abytes;
	sa.approval.len = alen;
	sa.signature.data = sig;
	sa.signature.len = sizeof(sig);
	sa.key_id = (char *)key_id;
	f.len = ferry__signed_approval__get_packed_size(&sa);
	f.data = xmalloc(f.len);
	ferry__signed_approval__pack(&sa, f.data);
	free(abytes);
	return f;
}

/* A well-formed Approval for prod, rollout r-42, signed as who. */
static void
raw_approval(Ferry__Approval *a, int who)
{
	ferry__approval__init(a);
	a->format_version = FERRY_APPROVAL_FORMAT;
	a->rollout_id = "r-42";
	a->bundle_digest.data = digest;
	a->bundle_digest.len = sizeof(digest);
	a->environment = "prod";
	a->expires_unix_ms = now_ms + HOUR_MS;
	a->approver_key_id = (char *)ferry_seckey_public(keys[who])->id;
	a->created_unix_ms = now_ms;
}

/* Runs the check of the prod policy (required of alice, bob, carol). */
static int
check_n(int required, const struct file *files, const char *const *names,
    size_t n, int64_t now, struct ferry_err *err)
{
	struct ferry_approval_policy policy = { "prod", required, approvers,
		3 };
	struct ferry_approval_blob blobs[16];
	size_t i;

	assert_true(n <= FERRY_NELEM(blobs));
	for (i = 0; i < n; i++) {
		blobs[i].data = files[i].data;
		blobs[i].len = files[i].len;
		blobs[i].source = names != NULL ? names[i] : NULL;
	}
	ferry_err_clear(err);
	return ferry_approval_check(&policy, digest, "r-42", blobs, n, now,
	    err);
}

/* Checks one approval alone against a 1-of-3 prod policy. */
static int
check1(const uint8_t *data, size_t len, struct ferry_err *err)
{
	struct file f = { (uint8_t *)data, len };
	static const char *const name[] = { "x.approval" };

	return check_n(1, &f, name, 1, now_ms, err);
}

static void
assert_refused(int rc, const struct ferry_err *err, const char *needle)
{
	if (rc != FERRY_EFINDING || strstr(err->msg, needle) == NULL)
		fail_msg("rc %d, message '%s' lacks '%s'", rc, err->msg,
		    needle);
}

static void
test_two_of_three(void **state)
{
	static const char *const names[] = { "alice.approval", "bob.approval",
		"carol.approval" };
	struct file f[3] = { make_prod(ALICE), make_prod(BOB),
		make_prod(CAROL) };
	struct ferry_err err;

	(void)state;
	assert_int_equal(check_n(2, f, names, 2, now_ms, &err), 0);
	assert_int_equal(err.code, 0);
	assert_int_equal(check_n(2, f + 1, names + 1, 2, now_ms, &err), 0);
	assert_int_equal(check_n(2, f, names, 3, now_ms, &err), 0);
	assert_int_equal(check_n(3, f, names, 3, now_ms, &err), 0);
	/* A valid set with extra rejected files is still accepted. */
	release(&f[2]);
	f[2] = make(MALLORY, digest, "prod", "r-42");
	assert_int_equal(check_n(2, f, names, 3, now_ms, &err), 0);
	release(&f[0]);
	release(&f[1]);
	release(&f[2]);
}

static void
test_one_short(void **state)
{
	static const char *const names[] = { "alice.approval", "bob.approval" };
	struct file f[2] = { make_prod(ALICE), make_prod(BOB) };
	struct ferry_err err;

	(void)state;
	assert_refused(check_n(3, f, names, 2, now_ms, &err), &err,
	    "2 of 3 valid approvals for environment 'prod'");
	assert_non_null(strstr(err.msg, "rollout 'r-42'"));
	assert_non_null(strstr(err.msg, "(valid: alice, bob)"));
	assert_refused(check_n(2, f, names, 1, now_ms, &err), &err,
	    "approval refused: 1 of 2 valid approvals for environment "
	    "'prod', rollout 'r-42' (valid: alice)");
	assert_refused(check_n(1, NULL, NULL, 0, now_ms, &err), &err,
	    "0 of 1 valid approvals for environment 'prod'");
	assert_non_null(strstr(err.msg, "no approvals given"));
	release(&f[0]);
	release(&f[1]);
}

static void
test_same_approver_twice(void **state)
{
	static const char *const names[] = { "alice.approval",
		"alice-again.approval", "alice-copy.approval" };
	struct file f[3] = { make_prod(ALICE), make_prod(ALICE), { NULL, 0 } };
	struct ferry_err err;

	(void)state;
	/* Two separately signed approvals from one person. */
	assert_refused(check_n(2, f, names, 2, now_ms, &err), &err,
	    "1 of 2 valid approvals for environment 'prod'");
	assert_non_null(strstr(err.msg,
	    "'alice-again.approval': duplicate approver 'alice'"));
	/* The same file presented twice. */
	f[2].data = f[0].data;
	f[2].len = f[0].len;
	assert_refused(check_n(2, f, names, 3, now_ms, &err), &err,
	    "1 of 2 valid approvals");
	assert_non_null(strstr(err.msg,
	    "'alice-copy.approval': duplicate approver 'alice'"));
	release(&f[0]);
	release(&f[1]);
}

static void
test_untrusted_approver(void **state)
{
	static const char *const names[] = { "alice.approval",
		"mallory.approval" };
	struct file f[2] = { make_prod(ALICE), make_prod(MALLORY) };
	struct ferry_err err;
	char *want;

	(void)state;
	want = xasprintf("'mallory.approval': signed by key %s, which is not "
	                 "a trusted approver for 'prod'",
	    ferry_seckey_public(keys[MALLORY])->id);
	assert_refused(check_n(2, f, names, 2, now_ms, &err), &err, want);
	assert_non_null(strstr(err.msg, "1 of 2 valid approvals"));
	free(want);
	release(&f[0]);
	release(&f[1]);
}

static void
test_forged_key_id(void **state)
{
	Ferry__Approval a;
	struct file f;
	struct ferry_err err;

	(void)state;
	/* Mallory signs but claims to be alice: the signature fails. */
	raw_approval(&a, ALICE);
	f = sign_raw(MALLORY, &a, ferry_seckey_public(keys[ALICE])->id);
	assert_refused(check1(f.data, f.len, &err), &err,
	    "'x.approval': bad signature for approver 'alice'");
	release(&f);

	/* Bob signs an approval that names alice as approver. */
	raw_approval(&a, ALICE);
	f = sign_raw(BOB, &a, ferry_seckey_public(keys[BOB])->id);
	assert_refused(check1(f.data, f.len, &err), &err,
	    "from 'bob' names "
	    "approver key");
	release(&f);

	/* Key ids that are not 16 lowercase hex digits. */
	raw_approval(&a, ALICE);
	f = sign_raw(ALICE, &a, "ALICE");
	assert_refused(check1(f.data, f.len, &err), &err,
	    "malformed: invalid signing key id");
	release(&f);
}

static void
test_wrong_environment(void **state)
{
	static const char *const names[] = { "alice.approval",
		"bob-staging.approval" };
	struct file f[2] = { make_prod(ALICE),
		make(BOB, digest, "staging", "r-42") };
	struct ferry_err err;

	(void)state;
	assert_refused(check_n(2, f, names, 2, now_ms, &err), &err,
	    "'bob-staging.approval': from 'bob' for environment 'staging', "
	    "not 'prod'");
	assert_non_null(strstr(err.msg, "1 of 2 valid approvals"));
	release(&f[1]);
	/* Exact match: neither a prefix nor another case. */
	f[1] = make(BOB, digest, "prod2", "r-42");
	assert_refused(check_n(2, f, names, 2, now_ms, &err), &err,
	    "for environment 'prod2', not 'prod'");
	release(&f[1]);
	f[1] = make(BOB, digest, "Prod", "r-42");
	assert_refused(check_n(2, f, names, 2, now_ms, &err), &err,
	    "for environment 'Prod', not 'prod'");
	release(&f[0]);
	release(&f[1]);
}

static void
test_other_bundle(void **state)
{
	static const char *const names[] = { "alice.approval",
		"bob-old.approval" };
	struct file f[2] = { make_prod(ALICE),
		make(BOB, other_digest, "prod", "r-42") };
	struct ferry_err err;
	char hex[65], *want;

	(void)state;
	ferry_hex_encode(other_digest, 32, hex);
	want = xasprintf("'bob-old.approval': from 'bob' for another bundle "
	                 "(%.16s)",
	    hex);
	assert_refused(check_n(2, f, names, 2, now_ms, &err), &err, want);
	free(want);
	release(&f[0]);
	release(&f[1]);
}

static void
test_other_rollout(void **state)
{
	static const char *const names[] = { "alice.approval", "bob.approval" };
	struct file f[2] = { make_prod(ALICE),
		make(BOB, digest, "prod", "r-41") };
	struct ferry_err err;

	(void)state;
	assert_refused(check_n(2, f, names, 2, now_ms, &err), &err,
	    "'bob.approval': from 'bob' for rollout 'r-41', not 'r-42'");
	release(&f[0]);
	release(&f[1]);
}

static void
test_expired(void **state)
{
	static const char *const names[] = { "alice.approval" };
	Ferry__Approval a;
	struct file f = make_prod(ALICE);
	struct ferry_err err;
	int64_t expires = now_ms + HOUR_MS;
	char when[40];

	(void)state;
	assert_int_equal(check_n(1, &f, names, 1, expires - 1, &err), 0);
	/* Expiry must lie after now: at the instant itself it is over. */
	ferry_format_utc(expires * 1000, when, sizeof(when));
	assert_refused(check_n(1, &f, names, 1, expires, &err), &err,
	    "'alice.approval': from 'alice' expired at ");
	assert_non_null(strstr(err.msg, when));
	assert_refused(check_n(1, &f, names, 1, expires + 86400000, &err), &err,
	    "0 of 1 valid approvals");
	release(&f);

	/* An expiry far in the past (or negative) is reported sanely. */
	raw_approval(&a, ALICE);
	a.expires_unix_ms = INT64_MIN;
	f = sign_raw(ALICE, &a, ferry_seckey_public(keys[ALICE])->id);
	assert_refused(check1(f.data, f.len, &err), &err,
	    "expired at (invalid time)");
	release(&f);
	raw_approval(&a, ALICE);
	a.expires_unix_ms = INT64_MAX - 1;
	f = sign_raw(ALICE, &a, ferry_seckey_public(keys[ALICE])->id);
	assert_refused(check_n(1, &f, names, 1, INT64_MAX, &err), &err,
	    "'alice.approval': from 'alice' expired at (invalid time)");
	release(&f);
}

static void
test_flipped_bits(void **state)
{
	struct file f = make_prod(ALICE);
	struct ferry_err err;
	uint8_t *copy = xmalloc(f.len);
	size_t i, bit, sigat;

	(void)state;
	assert_int_equal(check1(f.data, f.len, &err), 0);
	/* Every single-bit flip anywhere in the file is refused. */
	for (i = 0; i < f.len; i++) {
		for (bit = 0; bit < 8; bit++) {
			memcpy(copy, f.data, f.len);
			copy[i] ^= (uint8_t)(1u << bit);
			if (check1(copy, f.len, &err) != FERRY_EFINDING)
				fail_msg("flip of byte %zu bit %zu accepted", i,
				    bit);
		}
	}
	/* In the signature: named as a bad signature. The signature is
	   field 3 (tag 0x1a, length 64), before the key id. */
	for (sigat = 0; sigat + 2 < f.len; sigat++)
		if (f.data[sigat] == 0x1a && f.data[sigat + 1] == 64)
			break;
	assert_true(sigat + 2 + 64 <= f.len);
	memcpy(copy, f.data, f.len);
	copy[sigat + 2 + 10] ^= 0x04;
	assert_refused(check1(copy, f.len, &err), &err,
	    "'x.approval': bad signature for approver 'alice'");
	/* In the body (the environment "prod" inside the signed bytes). */
	memcpy(copy, f.data, f.len);
	for (i = 0; i + 4 <= f.len; i++)
		if (memcmp(copy + i, "prod", 4) == 0)
			break;
	assert_true(i + 4 <= f.len);
	copy[i] = 'P';
	assert_refused(check1(copy, f.len, &err), &err,
	    "bad signature for approver 'alice'");
	free(copy);
	release(&f);
}

static void
test_truncated(void **state)
{
	struct file f = make_prod(ALICE);
	struct ferry_err err;
	size_t n;

	(void)state;
	for (n = 0; n < f.len; n++)
		if (check1(f.data, n, &err) != FERRY_EFINDING)
			fail_msg("prefix of %zu of %zu bytes accepted", n,
			    f.len);
	assert_refused(check1(f.data, 0, &err), &err, "malformed: empty file");
	assert_refused(check1(f.data, f.len - 1, &err), &err,
	    "'x.approval': malformed");
	assert_refused(check1(f.data, f.len / 2, &err), &err, "malformed");
	release(&f);
}

static void
test_garbage(void **state)
{
	static const uint8_t junk[] = "ferry approval? no: just text\n";
	struct file f = make_prod(ALICE);
	struct ferry_err err;
	uint8_t *big;
	size_t i;

	(void)state;
	assert_refused(check1(junk, sizeof(junk) - 1, &err), &err,
	    "'x.approval': malformed: not a signed approval");
	big = xcalloc(FERRY_APPROVAL_MAX_BYTES + 1, 1);
	assert_refused(check1(big, FERRY_APPROVAL_MAX_BYTES + 1, &err), &err,
	    "malformed: 65537 bytes, at most 65536 allowed");
	/* Pseudo-random bytes of many lengths. */
	srand(7);
	for (i = 0; i < 4096; i++)
		big[i] = (uint8_t)(rand() >> 7);
	for (i = 1; i < 4096; i += 37)
		assert_int_equal(check1(big, i, &err), FERRY_EFINDING);
	/* A valid approval with a trailing byte or a second copy behind. */
	memcpy(big, f.data, f.len);
	big[f.len] = 0;
	assert_refused(check1(big, f.len + 1, &err), &err, "malformed");
	memcpy(big + f.len, f.data, f.len);
	assert_refused(check1(big, 2 * f.len, &err), &err, "malformed");
	free(big);
	release(&f);
}

/* Appends raw protobuf bytes to a valid approval's wrapper. */
static struct file
append(const struct file *f, const void *extra, size_t n)
{
	struct file g;

	g.len = f->len + n;
	g.data = xmalloc(g.len);
	memcpy(g.data, f->data, f->len);
	memcpy(g.data + f->len, extra, n);
	return g;
}

static void
test_uncovered_bytes(void **state)
{
	/* field 5 varint 1: unknown to SignedApproval */
	static const uint8_t unknown[] = { 0x28, 0x01 };
	/* field 4 again: a second key id, last one wins in protobuf */
	static const uint8_t dup_key[] = { 0x22, 0x01, 'x' };
	/* field 1 again with the same value: still a repeat */
	static const uint8_t dup_version[] = { 0x08, 0x01 };
	/* field 1 as a non-minimal varint 0x81 0x00 == 1 */
	static const uint8_t padded[] = { 0x08, 0x81, 0x00 };
	struct file f = make_prod(ALICE), g;
	struct ferry_err err;

	(void)state;
	g = append(&f, unknown, sizeof(unknown));
	assert_refused(check1(g.data, g.len, &err), &err,
	    "malformed: unknown fields outside the signature");
	release(&g);
	g = append(&f, dup_key, sizeof(dup_key));
	assert_refused(check1(g.data, g.len, &err), &err, "malformed");
	release(&g);
	g = append(&f, dup_version, sizeof(dup_version));
	assert_refused(check1(g.data, g.len, &err), &err,
	    "malformed: bytes not covered by the signature");
	release(&g);
	/* Fields in another order: format version moved to the end. */
	assert_int_equal(f.data[0], 0x08);
	assert_int_equal(f.data[1], 0x01);
	g = append(&f, "", 0); /* a copy */
	memmove(g.data, g.data + 2, g.len - 2);
	g.data[g.len - 2] = 0x08;
	g.data[g.len - 1] = 0x01;
	assert_refused(check1(g.data, g.len, &err), &err,
	    "malformed: not canonically encoded");
	release(&g);
	/* Non-minimal varint in place of the version. */
	g.len = f.len + 1;
	g.data = xmalloc(g.len);
	memcpy(g.data, padded, 3);
	memcpy(g.data + 3, f.data + 2, f.len - 2);
	assert_refused(check1(g.data, g.len, &err), &err, "malformed");
	release(&g);
	release(&f);
}

static void
test_signed_but_unacceptable(void **state)
{
	static const uint8_t unknown[] = { 0x40, 0x01 }; /* field 8 */
	Ferry__Approval a;
	Ferry__SignedApproval *sa;
	struct file f;
	struct ferry_err err;
	const char *id = ferry_seckey_public(keys[ALICE])->id;
	uint8_t *body;
	size_t blen;

	(void)state;
	raw_approval(&a, ALICE);
	a.format_version = 2;
	f = sign_raw(ALICE, &a, id);
	assert_refused(check1(f.data, f.len, &err), &err,
	    "unsupported approval format 2 from 'alice'");
	release(&f);

	raw_approval(&a, ALICE);
	a.bundle_digest.len = 31;
	f = sign_raw(ALICE, &a, id);
	assert_refused(check1(f.data, f.len, &err), &err,
	    "from 'alice' with a malformed bundle digest (31 bytes)");
	release(&f);

	/* A field from a newer version, signed: fail closed. */
	raw_approval(&a, ALICE);
	f = sign_raw(ALICE, &a, id);
	sa = ferry__signed_approval__unpack(NULL, f.len, f.data);
	assert_non_null(sa);
	blen = sa->approval.len + sizeof(unknown);
	body = xmalloc(blen);
	memcpy(body, sa->approval.data, sa->approval.len);
	memcpy(body + sa->approval.len, unknown, sizeof(unknown));
	ferry__signed_approval__free_unpacked(sa, NULL);
	release(&f);
	{
		/* Sign those exact bytes as the approval. */
		Ferry__SignedApproval out = FERRY__SIGNED_APPROVAL__INIT;
		uint8_t h[32], sig[FERRY_SIG_LEN];

		ferry_sha256(body, blen, h);
		ferry_seckey_sign(keys[ALICE], FERRY_APPROVAL_DOMAIN, h, sig);
		out.format_version = 1;
		out.approval.data = body;
		out.approval.len = blen;
		out.signature.data = sig;
		out.signature.len = sizeof(sig);
		out.key_id = (char *)id;
		f.len = ferry__signed_approval__get_packed_size(&out);
		f.data = xmalloc(f.len);
		ferry__signed_approval__pack(&out, f.data);
	}
	assert_refused(check1(f.data, f.len, &err), &err,
	    "approval from 'alice' has fields this version does not know");
	release(&f);

	/* Signed garbage as the Approval bytes. */
	memset(body, 0xff, blen);
	{
		Ferry__SignedApproval out = FERRY__SIGNED_APPROVAL__INIT;
		uint8_t h[32], sig[FERRY_SIG_LEN];

		ferry_sha256(body, blen, h);
		ferry_seckey_sign(keys[ALICE], FERRY_APPROVAL_DOMAIN, h, sig);
		out.format_version = 1;
		out.approval.data = body;
		out.approval.len = blen;
		out.signature.data = sig;
		out.signature.len = sizeof(sig);
		out.key_id = (char *)id;
		f.len = ferry__signed_approval__get_packed_size(&out);
		f.data = xmalloc(f.len);
		ferry__signed_approval__pack(&out, f.data);
	}
	assert_refused(check1(f.data, f.len, &err), &err,
	    "malformed approval signed by 'alice'");
	release(&f);
	free(body);

	/* Hostile text in a signed field is quoted, never printed raw. */
	raw_approval(&a, ALICE);
	a.environment = "prod\033[2J\n";
	f = sign_raw(ALICE, &a, id);
	assert_refused(check1(f.data, f.len, &err), &err,
	    "for environment 'prod?[2J?', not 'prod'");
	release(&f);

	/* A bundle signature is not an approval signature (domains). */
	raw_approval(&a, ALICE);
	{
		Ferry__SignedApproval out = FERRY__SIGNED_APPROVAL__INIT;
		uint8_t h[32], sig[FERRY_SIG_LEN];

		blen = ferry__approval__get_packed_size(&a);
		body = xmalloc(blen);
		ferry__approval__pack(&a, body);
		ferry_sha256(body, blen, h);
		ferry_seckey_sign(keys[ALICE], "ferry-bundle-v1", h, sig);
		out.format_version = 1;
		out.approval.data = body;
		out.approval.len = blen;
		out.signature.data = sig;
		out.signature.len = sizeof(sig);
		out.key_id = (char *)id;
		f.len = ferry__signed_approval__get_packed_size(&out);
		f.data = xmalloc(f.len);
		ferry__signed_approval__pack(&out, f.data);
		free(body);
	}
	assert_refused(check1(f.data, f.len, &err), &err, "bad signature");
	release(&f);
}

static void
test_wrapper_format_version(void **state)
{
	Ferry__SignedApproval *sa;
	struct file f = make_prod(ALICE), g;
	struct ferry_err err;

	(void)state;
	sa = ferry__signed_approval__unpack(NULL, f.len, f.data);
	assert_non_null(sa);
	sa->format_version = 9;
	g.len = ferry__signed_approval__get_packed_size(sa);
	g.data = xmalloc(g.len);
	ferry__signed_approval__pack(sa, g.data);
	assert_refused(check1(g.data, g.len, &err), &err,
	    "unsupported approval file format 9");
	release(&g);
	sa->format_version = 1;
	sa->signature.len = 63;
	g.len = ferry__signed_approval__get_packed_size(sa);
	g.data = xmalloc(g.len);
	ferry__signed_approval__pack(sa, g.data);
	assert_refused(check1(g.data, g.len, &err), &err,
	    "malformed: signature of 63 bytes");
	release(&g);
	ferry__signed_approval__free_unpacked(sa, NULL);
	release(&f);
}

static void
test_required_zero(void **state)
{
	static const uint8_t junk[] = "junk";
	struct file f[2] = { { (uint8_t *)junk, 4 }, make_prod(MALLORY) };
	struct ferry_err err;

	(void)state;
	assert_int_equal(check_n(0, NULL, NULL, 0, now_ms, &err), 0);
	assert_int_equal(check_n(0, f, NULL, 2, now_ms, &err), 0);
	assert_int_equal(err.code, 0);
	release(&f[1]);
}

static void
test_message_limits(void **state)
{
	static const char *const names[] = { "a", "b", "c", "d", "e", "f", "g",
		"h", "i", "j", "k", "l", "m", "n", "o", "p" };
	struct file f[16];
	struct ferry_err err;
	size_t i;

	(void)state;
	for (i = 0; i < 16; i++)
		f[i] = make(i % 2 ? MALLORY : ALICE, digest, "prod", "r-42");
	assert_refused(check_n(2, f, names, 16, now_ms, &err), &err,
	    "approval refused: 1 of 2 valid approvals for environment "
	    "'prod'");
	/* Too many reasons for the message: the rest are counted. */
	assert_non_null(strstr(err.msg, "more rejected"));
	assert_true(strlen(err.msg) < sizeof(err.msg));
	for (i = 0; i < 16; i++)
		release(&f[i]);

	/* Without file names the position is the source. */
	f[0] = make_prod(MALLORY);
	assert_refused(check_n(1, f, NULL, 1, now_ms, &err), &err,
	    "'approval #1': signed by key");
	release(&f[0]);
}

static void
test_bad_policy(void **state)
{
	struct ferry_approval_policy policy = { "prod", 4, approvers, 3 };
	struct ferry_err err;

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_approval_check(&policy, digest, "r-42", NULL, 0,
	                     now_ms, &err),
	    FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "4 of 3 distinct approvers required"));
	/* The same key listed twice is one approver. */
	{
		struct ferry_pubkey twice[2] = { approvers[0], approvers[0] };
		struct ferry_approval_policy p2 = { "prod", 2, twice, 2 };

		ferry_strlcpy(twice[1].name, "alice-again",
		    sizeof(twice[1].name));
		ferry_err_clear(&err);
		assert_int_equal(ferry_approval_check(&p2, digest, "r-42", NULL,
		                     0, now_ms, &err),
		    FERRY_EUSAGE);
		assert_non_null(strstr(err.msg, "2 of 1 distinct"));
	}
	policy.required = -1;
	ferry_err_clear(&err);
	assert_int_equal(ferry_approval_check(&policy, digest, "r-42", NULL, 0,
	                     now_ms, &err),
	    FERRY_EUSAGE);
	policy.required = 1;
	policy.environment = "";
	ferry_err_clear(&err);
	assert_int_equal(ferry_approval_check(&policy, digest, "r-42", NULL, 0,
	                     now_ms, &err),
	    FERRY_EUSAGE);
}

static void
test_create_refuses(void **state)
{
	struct ferry_err err;
	uint8_t *out = (uint8_t *)"x";
	size_t len = 1;
	char longname[200];

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_approval_create(digest, "", "r", now_ms + 1000,
	                     keys[ALICE], &out, &len, &err),
	    FERRY_EUSAGE);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_non_null(strstr(err.msg, "invalid environment name"));
	ferry_err_clear(&err);
	assert_int_equal(ferry_approval_create(digest, "prod", "a b",
	                     now_ms + 1000, keys[ALICE], &out, &len, &err),
	    FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "invalid rollout id"));
	memset(longname, 'e', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ferry_err_clear(&err);
	assert_int_equal(ferry_approval_create(digest, longname, "r",
	                     now_ms + 1000, keys[ALICE], &out, &len, &err),
	    FERRY_EUSAGE);
	ferry_err_clear(&err);
	assert_int_equal(ferry_approval_create(digest, "prod", "r", now_ms - 1,
	                     keys[ALICE], &out, &len, &err),
	    FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "not in the future"));
}

static void
test_created_fields(void **state)
{
	Ferry__SignedApproval *sa;
	Ferry__Approval *a;
	struct file f = make(BOB, digest, "staging", "rollout/9");
	const struct ferry_pubkey *pub = ferry_seckey_public(keys[BOB]);
	uint8_t h[32];

	(void)state;
	sa = ferry__signed_approval__unpack(NULL, f.len, f.data);
	assert_non_null(sa);
	assert_int_equal(sa->format_version, FERRY_APPROVAL_FORMAT);
	assert_string_equal(sa->key_id, pub->id);
	assert_int_equal(sa->signature.len, FERRY_SIG_LEN);
	ferry_sha256(sa->approval.data, sa->approval.len, h);
	assert_int_equal(ferry_pubkey_verify(pub, FERRY_APPROVAL_DOMAIN, h,
	                     sa->signature.data),
	    0);
	a = ferry__approval__unpack(NULL, sa->approval.len, sa->approval.data);
	assert_non_null(a);
	assert_int_equal(a->format_version, FERRY_APPROVAL_FORMAT);
	assert_string_equal(a->environment, "staging");
	assert_string_equal(a->rollout_id, "rollout/9");
	assert_string_equal(a->approver_key_id, pub->id);
	assert_memory_equal(a->bundle_digest.data, digest, 32);
	assert_int_equal(a->expires_unix_ms, now_ms + HOUR_MS);
	assert_true(a->created_unix_ms >= now_ms);
	ferry__approval__free_unpacked(a, NULL);
	ferry__signed_approval__free_unpacked(sa, NULL);
	release(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_of_three),
		cmocka_unit_test(test_one_short),
		cmocka_unit_test(test_same_approver_twice),
		cmocka_unit_test(test_untrusted_approver),
		cmocka_unit_test(test_forged_key_id),
		cmocka_unit_test(test_wrong_environment),
		cmocka_unit_test(test_other_bundle),
		cmocka_unit_test(test_other_rollout),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_flipped_bits),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_uncovered_bytes),
		cmocka_unit_test(test_signed_but_unacceptable),
		cmocka_unit_test(test_wrapper_format_version),
		cmocka_unit_test(test_required_zero),
		cmocka_unit_test(test_message_limits),
		cmocka_unit_test(test_bad_policy),
		cmocka_unit_test(test_create_refuses),
		cmocka_unit_test(test_created_fields),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
