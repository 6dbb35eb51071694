/*
 * test_bundle.c -- signed bundles: create and open, chains, rewritten
 * histories, and every refusal: wrong or untrusted keys, truncated,
 * garbage, extra or repeated wrapper fields, trailing bytes, versions,
 * checksums and names inside validly signed content.
 *
 * Hand-built bundles are encoded here with a few lines of protobuf
 * encoding of our own, independent of the generated code, and signed with
 * ferry_seckey_sign as a real signer would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "bundle.h"
#include "hash.h"
#include "keys.h"
#include "migrations.h"
#include "util.h"

#define CREATED_MS 1700000000123LL

static struct ferry_seckey *key_a, *key_b;

/* --- a small protobuf encoder of our own ------------------------------ */

static void
put_varint(struct ferry_buf *b, uint64_t v)
{
	uint8_t c;

	do {
		c = v & 0x7f;
		v >>= 7;
		if (v != 0)
			c |= 0x80;
		assert_int_equal(ferry_buf_add(b, &c, 1), 0);
	} while (v != 0);
}

static void
put_uint(struct ferry_buf *b, unsigned field, uint64_t v)
{
	put_varint(b, (uint64_t)field << 3);
	put_varint(b, v);
}

static void
put_bytes(struct ferry_buf *b, unsigned field, const void *p, size_t n)
{
	put_varint(b, (uint64_t)field << 3 | 2);
	put_varint(b, n);
	assert_int_equal(ferry_buf_add(b, p, n), 0);
}

static void
put_str(struct ferry_buf *b, unsigned field, const char *s)
{
	put_bytes(b, field, s, strlen(s));
}

/* A migration as hand-built bundles describe it. */
struct hmig {
	const char *name;
	const char *sql;
	const char *checksum; /* NULL: the right one */
};

struct hbundle {
	unsigned version;
	const char *project;
	uint64_t sequence;
	const uint8_t *parent; /* 32 bytes or NULL */
	const char *creator;   /* NULL: the signing key's id */
	const struct hmig *migs;
	size_t nmigs;
	int unknown_field; /* append field 99 to the Bundle */
};

/* Encodes a ferry.Bundle the way the .proto describes it. */
static void
encode_bundle(const struct hbundle *h, const char *key_id,
    struct ferry_buf *out)
{
	size_t i;

	ferry_buf_init(out, 1 << 20);
	put_uint(out, 1, h->version);
	put_str(out, 2, h->project);
	put_uint(out, 3, h->sequence);
	if (h->parent != NULL)
		put_bytes(out, 4, h->parent, 32);
	put_uint(out, 5, CREATED_MS);
	put_str(out, 6, h->creator != NULL ? h->creator : key_id);
	for (i = 0; i < h->nmigs; i++) {
		struct ferry_buf m;
		char sum[FERRY_SHA256_HEX_LEN + 1];

		ferry_sha256_hex(h->migs[i].sql, strlen(h->migs[i].sql), sum);
		ferry_buf_init(&m, 1 << 20);
		put_str(&m, 1, h->migs[i].name);
		put_str(&m, 2,
		    h->migs[i].checksum != NULL ? h->migs[i].checksum : sum);
		put_str(&m, 3, h->migs[i].sql);
		put_uint(&m, 6, 1);
		put_bytes(out, 7, m.data, m.len);
		ferry_buf_release(&m);
	}
	if (h->unknown_field)
		put_str(out, 99, "from the future");
}

/* Wraps body as a SignedBundle signed by k, with the given fields. */
static void
wrap(const void *body, size_t len, const struct ferry_seckey *k,
    unsigned version, const char *key_id, struct ferry_buf *out)
{
	uint8_t digest[32], sig[FERRY_SIG_LEN];

	ferry_sha256(body, len, digest);
	ferry_seckey_sign(k, FERRY_BUNDLE_DOMAIN, digest, sig);
	ferry_buf_init(out, 1 << 20);
	put_uint(out, 1, version);
	put_bytes(out, 2, body, len);
	put_bytes(out, 3, sig, sizeof(sig));
	put_str(out, 4, key_id);
}

/* Encodes and signs h with k as a genuine signer would. */
static void
hand_sign(const struct hbundle *h, const struct ferry_seckey *k,
    struct ferry_buf *file)
{
	const char *id = ferry_seckey_public(k)->id;
	struct ferry_buf body;

	encode_bundle(h, id, &body);
	wrap(body.data, body.len, k, 1, id, file);
	ferry_buf_release(&body);
}

/*
 * Finds the bytes of field 2 (the Bundle) of a wrapper; our own files
 * start with field 1 (1 byte tag + 1 byte value).
 */
static const uint8_t *
bundle_field(const uint8_t *f, size_t len, size_t *blen)
{
	size_t pos = 3, shift = 0;
	uint64_t v = 0;

	assert_true(len > 4);
	assert_int_equal(f[0], 0x08);
	assert_int_equal(f[2], 0x12);
	while (f[pos] & 0x80) {
		v |= (uint64_t)(f[pos++] & 0x7f) << shift;
		shift += 7;
	}
	v |= (uint64_t)f[pos++] << shift;
	*blen = (size_t)v;
	return f + pos;
}

/* --- helpers ----------------------------------------------------------- */

static struct ferry_migrations *
three_migrations(void)
{
	struct ferry_migrations *m = ferry_migrations_new();

	ferry_migrations_add(m, "20240101000000_init",
	    "CREATE TABLE users (id bigint PRIMARY KEY);\n", 44,
	    "DROP TABLE users;\n", 18);
	ferry_migrations_add(m, "20240102000000_email",
	    "ALTER TABLE users ADD COLUMN email text;\n", 41, NULL, 0);
	ferry_migrations_add(m, "20240103000000_idx",
	    "CREATE INDEX CONCURRENTLY users_email ON users (email);\n", 56,
	    NULL, 0);
	return m;
}

static void
create_ok(const struct ferry_migrations *m, const struct ferry_bundle *parent,
    int allow_rewrite, const char *project, const struct ferry_seckey *k,
    uint8_t **out, size_t *outlen)
{
	struct ferry_bundle_params p = { 0 };
	struct ferry_err err;

	ferry_err_clear(&err);
	p.project = project;
	p.parent = parent;
	p.note = "release 1.2";
	p.allow_rewrite = allow_rewrite;
	p.created_unix_ms = CREATED_MS;
	if (ferry_bundle_create(m, &p, k, out, outlen, &err) != 0)
		fail_msg("create: %s", err.msg);
}

static struct ferry_bundle *
open_ok(const uint8_t *data, size_t len, const struct ferry_seckey *k)
{
	struct ferry_bundle *b = NULL;
	struct ferry_err err;

	ferry_err_clear(&err);
	if (ferry_bundle_open(data, len, ferry_seckey_public(k), 1, &b, &err) !=
	    0)
		fail_msg("open: %s", err.msg);
	return b;
}

/* Opens data with k trusted and expects a refusal mentioning want. */
static void
expect_refused(const void *data, size_t len, const struct ferry_seckey *k,
    const char *want)
{
	struct ferry_bundle *b = NULL;
	struct ferry_err err;
	int rc;

	ferry_err_clear(&err);
	rc = ferry_bundle_open(data, len, ferry_seckey_public(k), 1, &b, &err);
	if (rc != FERRY_EFINDING || b != NULL || strstr(err.msg, want) == NULL)
		fail_msg("expected refusal '%s', got rc %d: %s", want, rc,
		    err.msg);
}

/* --- tests ------------------------------------------------------------- */

static void
test_roundtrip(void **state)
{
	struct ferry_migrations *m = three_migrations();
	const struct ferry_migrations *got;
	const struct ferry_migration *e;
	struct ferry_pubkey trusted[2];
	struct ferry_bundle *b = NULL, *u = NULL;
	struct ferry_err err;
	uint8_t *f = NULL, *f2 = NULL, digest[32];
	const uint8_t *body;
	size_t len, len2, blen, i;

	(void)state;
	create_ok(m, NULL, 0, "shop", key_a, &f, &len);
	/* Trust two keys; the right one is found by its id. */
	trusted[0] = *ferry_seckey_public(key_b);
	trusted[1] = *ferry_seckey_public(key_a);
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_open(f, len, trusted, 2, &b, &err), 0);
	assert_true(ferry_bundle_verified(b));
	assert_string_equal(ferry_bundle_project(b), "shop");
	assert_int_equal(ferry_bundle_sequence(b), 1);
	assert_null(ferry_bundle_parent_digest(b));
	assert_int_equal(ferry_bundle_created_ms(b), CREATED_MS);
	assert_string_equal(ferry_bundle_creator_key_id(b),
	    ferry_seckey_public(key_a)->id);
	assert_string_equal(ferry_bundle_note(b), "release 1.2");
	assert_false(ferry_bundle_allow_rewrite(b));

	/* Same migrations, same order, same bytes. */
	got = ferry_bundle_migrations(b);
	assert_int_equal(ferry_migrations_count(got), 3);
	for (i = 0; i < 3; i++) {
		const struct ferry_migration *want = ferry_migrations_get(m, i);

		e = ferry_migrations_get(got, i);
		assert_string_equal(e->name, want->name);
		assert_string_equal(e->checksum, want->checksum);
		assert_int_equal(e->sql_len, want->sql_len);
		assert_memory_equal(e->sql, want->sql, e->sql_len);
		assert_int_equal(e->down_sql != NULL, want->down_sql != NULL);
	}
	e = ferry_migrations_get(got, 0);
	assert_non_null(e->down_sql);
	assert_string_equal(e->down_sql, "DROP TABLE users;\n");

	/* Digest = SHA-256 of the exact Bundle bytes stored in the file. */
	body = bundle_field(f, len, &blen);
	ferry_sha256(body, blen, digest);
	assert_memory_equal(ferry_bundle_digest(b), digest, 32);

	/* Creation is deterministic (Ed25519 signatures are). */
	create_ok(m, NULL, 0, "shop", key_a, &f2, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(f, f2, len);

	/* Unverified decoding sees the same content but says so. */
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_decode_unverified(f, len, &u, &err), 0);
	assert_false(ferry_bundle_verified(u));
	assert_memory_equal(ferry_bundle_digest(u), digest, 32);
	assert_int_equal(ferry_migrations_count(ferry_bundle_migrations(u)), 3);

	ferry_bundle_free(u);
	ferry_bundle_free(b);
	ferry_bundle_free(NULL);
	free(f2);
	free(f);
	ferry_migrations_free(m);
}

static void
test_empty_bundle(void **state)
{
	struct ferry_migrations *m = ferry_migrations_new();
	struct ferry_bundle *b;
	uint8_t *f = NULL;
	size_t len;

	(void)state;
	create_ok(m, NULL, 0, "empty", key_a, &f, &len);
	b = open_ok(f, len, key_a);
	assert_int_equal(ferry_migrations_count(ferry_bundle_migrations(b)), 0);
	ferry_bundle_free(b);
	free(f);
	ferry_migrations_free(m);
}

static void
test_chain(void **state)
{
	struct ferry_migrations *m = three_migrations();
	struct ferry_bundle *b1, *b2, *b3, *other;
	struct ferry_err err;
	uint8_t *f1 = NULL, *f2 = NULL, *f3 = NULL, *fo = NULL;
	size_t l1, l2, l3, lo;

	(void)state;
	create_ok(m, NULL, 0, "shop", key_a, &f1, &l1);
	b1 = open_ok(f1, l1, key_a);
	ferry_migrations_add(m, "20240104000000_more", "SELECT 1;\n", 10, NULL,
	    0);
	create_ok(m, b1, 0, "shop", key_a, &f2, &l2);
	b2 = open_ok(f2, l2, key_a);
	assert_int_equal(ferry_bundle_sequence(b2), 2);
	assert_non_null(ferry_bundle_parent_digest(b2));
	assert_memory_equal(ferry_bundle_parent_digest(b2),
	    ferry_bundle_digest(b1), 32);
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_check_parent(b2, b1, &err), 0);

	/* Same list again: a new bundle, sequence 3, chained to b2. */
	create_ok(m, b2, 0, "shop", key_a, &f3, &l3);
	b3 = open_ok(f3, l3, key_a);
	assert_int_equal(ferry_bundle_sequence(b3), 3);
	assert_int_equal(ferry_bundle_check_parent(b3, b2, &err), 0);

	/* Backwards, skipping, self. */
	assert_int_equal(ferry_bundle_check_parent(b1, b2, &err),
	    FERRY_EFINDING);
	assert_non_null(strstr(err.msg, "does not follow"));
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_check_parent(b3, b1, &err),
	    FERRY_EFINDING);
	assert_non_null(strstr(err.msg, "sequence 3"));
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_check_parent(b2, b2, &err),
	    FERRY_EFINDING);

	/* Another project's bundle is not a parent. */
	create_ok(m, NULL, 0, "other", key_a, &fo, &lo);
	other = open_ok(fo, lo, key_a);
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_check_parent(b2, other, &err),
	    FERRY_EFINDING);
	assert_non_null(strstr(err.msg, "project"));

	ferry_bundle_free(other);
	ferry_bundle_free(b3);
	ferry_bundle_free(b2);
	ferry_bundle_free(b1);
	free(fo);
	free(f3);
	free(f2);
	free(f1);
	ferry_migrations_free(m);
}

/* Two children of one parent: the sibling's digest is not the parent's. */
static void
test_chain_digest_mismatch(void **state)
{
	struct ferry_migrations *m = three_migrations();
	struct ferry_bundle *b1, *x2, *y2, *x3;
	struct ferry_err err;
	uint8_t *f1 = NULL, *fx = NULL, *fy = NULL, *f3 = NULL;
	size_t l1, lx, ly, l3;

	(void)state;
	create_ok(m, NULL, 0, "shop", key_a, &f1, &l1);
	b1 = open_ok(f1, l1, key_a);
	ferry_migrations_add(m, "20240104000000_x", "SELECT 1;\n", 10, NULL, 0);
	create_ok(m, b1, 0, "shop", key_a, &fx, &lx);
	x2 = open_ok(fx, lx, key_a);
	ferry_migrations_free(m);
	m = three_migrations();
	ferry_migrations_add(m, "20240104000000_y", "SELECT 2;\n", 10, NULL, 0);
	create_ok(m, b1, 0, "shop", key_a, &fy, &ly);
	y2 = open_ok(fy, ly, key_a);
	/* Equal sequence, different content. */
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_check_parent(y2, x2, &err),
	    FERRY_EFINDING);
	assert_non_null(strstr(err.msg, "sequence 2"));
	/* x3 follows x2; y2 has the same sequence but another digest. */
	create_ok(m, x2, 1, "shop", key_a, &f3, &l3);
	x3 = open_ok(f3, l3, key_a);
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_check_parent(x3, y2, &err),
	    FERRY_EFINDING);
	assert_non_null(strstr(err.msg, "parent digest"));
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_check_parent(x3, x2, &err), 0);

	ferry_bundle_free(x3);
	ferry_bundle_free(y2);
	ferry_bundle_free(x2);
	ferry_bundle_free(b1);
	free(f3);
	free(fy);
	free(fx);
	free(f1);
	ferry_migrations_free(m);
}

static void
test_create_with_unverified_parent(void **state)
{
	struct ferry_migrations *m = three_migrations();
	struct ferry_bundle_params p = { 0 };
	struct ferry_bundle *u = NULL;
	struct ferry_err err;
	uint8_t *f = NULL, *out = NULL;
	size_t len, outlen;

	(void)state;
	create_ok(m, NULL, 0, "shop", key_a, &f, &len);
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_decode_unverified(f, len, &u, &err), 0);
	p.project = "shop";
	p.parent = u;
	assert_int_equal(ferry_bundle_create(m, &p, key_a, &out, &outlen, &err),
	    FERRY_EUSAGE);
	assert_null(out);
	assert_non_null(strstr(err.msg, "not been verified"));
	ferry_bundle_free(u);
	free(f);
	ferry_migrations_free(m);
}

/* Creates a child of parent from m and expects a rewrite refusal. */
static void
expect_rewrite(const struct ferry_migrations *m,
    const struct ferry_bundle *parent, const char *want)
{
	struct ferry_bundle_params p = { 0 };
	struct ferry_err err;
	uint8_t *out = NULL;
	size_t outlen = 0;
	int rc;

	ferry_err_clear(&err);
	p.project = "shop";
	p.parent = parent;
	rc = ferry_bundle_create(m, &p, key_a, &out, &outlen, &err);
	if (rc != FERRY_EFINDING || out != NULL ||
	    strstr(err.msg, want) == NULL)
		fail_msg("expected rewrite refusal '%s', got %d: %s", want, rc,
		    err.msg);
}

static void
test_rewrite(void **state)
{
	struct ferry_migrations *m = three_migrations(), *r;
	struct ferry_bundle *b1, *b2;
	struct ferry_err err;
	uint8_t *f1 = NULL, *f2 = NULL;
	size_t l1, l2;

	(void)state;
	create_ok(m, NULL, 0, "shop", key_a, &f1, &l1);
	b1 = open_ok(f1, l1, key_a);

	/* Modified. */
	r = ferry_migrations_new();
	ferry_migrations_add(r, "20240101000000_init",
	    "CREATE TABLE users (id int PRIMARY KEY);\n", 41, NULL, 0);
	ferry_migrations_add(r, "20240102000000_email",
	    "ALTER TABLE users ADD COLUMN email text;\n", 41, NULL, 0);
	ferry_migrations_add(r, "20240103000000_idx",
	    "CREATE INDEX CONCURRENTLY users_email ON users (email);\n", 56,
	    NULL, 0);
	expect_rewrite(r, b1, "'20240101000000_init' was modified");

	/* The rewrite is allowed when asked for, and recorded. */
	create_ok(r, b1, 1, "shop", key_a, &f2, &l2);
	b2 = open_ok(f2, l2, key_a);
	assert_true(ferry_bundle_allow_rewrite(b2));
	assert_int_equal(ferry_bundle_sequence(b2), 2);
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_check_parent(b2, b1, &err), 0);
	ferry_bundle_free(b2);
	free(f2);
	ferry_migrations_free(r);

	/* Removed at the end. */
	r = ferry_migrations_new();
	ferry_migrations_add(r, "20240101000000_init",
	    "CREATE TABLE users (id bigint PRIMARY KEY);\n", 44,
	    "DROP TABLE users;\n", 18);
	ferry_migrations_add(r, "20240102000000_email",
	    "ALTER TABLE users ADD COLUMN email text;\n", 41, NULL, 0);
	expect_rewrite(r, b1,
	    "'20240103000000_idx' of parent bundle 1 is "
	    "missing");
	/* Inserted before an existing one. */
	ferry_migrations_add(r, "20240102120000_new", "SELECT 1;\n", 10, NULL,
	    0);
	ferry_migrations_add(r, "20240103000000_idx",
	    "CREATE INDEX CONCURRENTLY users_email ON users (email);\n", 56,
	    NULL, 0);
	expect_rewrite(r, b1,
	    "'20240102120000_new' is placed before "
	    "'20240103000000_idx'");
	ferry_migrations_free(r);

	/* Allowed but not needed: nothing is rewritten, nothing recorded. */
	create_ok(m, b1, 1, "shop", key_a, &f2, &l2);
	b2 = open_ok(f2, l2, key_a);
	assert_false(ferry_bundle_allow_rewrite(b2));
	ferry_bundle_free(b2);
	free(f2);

	ferry_bundle_free(b1);
	free(f1);
	ferry_migrations_free(m);
}

/* A rewritten child that does not say so fails check_parent. */
static void
test_check_parent_unrecorded_rewrite(void **state)
{
	struct hmig one[] = { { "a", "SELECT 1;", NULL } };
	struct hmig two[] = { { "a", "SELECT 2;", NULL } };
	struct hbundle h = { 1, "shop", 1, NULL, NULL, one, 1, 0 };
	struct ferry_bundle *b1, *b2;
	struct ferry_buf f1, f2;
	struct ferry_err err;

	(void)state;
	hand_sign(&h, key_a, &f1);
	b1 = open_ok((uint8_t *)f1.data, f1.len, key_a);
	h.sequence = 2;
	h.parent = ferry_bundle_digest(b1);
	h.migs = two;
	hand_sign(&h, key_a, &f2);
	b2 = open_ok((uint8_t *)f2.data, f2.len, key_a);
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_check_parent(b2, b1, &err),
	    FERRY_EFINDING);
	assert_non_null(strstr(err.msg, "'a' was modified"));
	ferry_bundle_free(b2);
	ferry_bundle_free(b1);
	ferry_buf_release(&f2);
	ferry_buf_release(&f1);
}

static void
test_wrong_key(void **state)
{
	struct ferry_migrations *m = three_migrations();
	struct ferry_bundle *b = NULL;
	struct ferry_err err;
	uint8_t *f = NULL;
	size_t len;
	char want[128];

	(void)state;
	create_ok(m, NULL, 0, "shop", key_a, &f, &len);
	snprintf(want, sizeof(want),
	    "bundle was signed by key %s, which is not trusted",
	    ferry_seckey_public(key_a)->id);
	expect_refused(f, len, key_b, want);
	/* No trusted key at all. */
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_open(f, len, NULL, 0, &b, &err),
	    FERRY_EFINDING);
	assert_non_null(strstr(err.msg, "not trusted"));
	free(f);
	ferry_migrations_free(m);
}

/* Signed by b but naming a's key id: a's key does not verify it. */
static void
test_forged_key_id(void **state)
{
	struct hmig one[] = { { "a", "SELECT 1;", NULL } };
	struct hbundle h = { 1, "shop", 1, NULL, NULL, one, 1, 0 };
	const char *ida = ferry_seckey_public(key_a)->id;
	struct ferry_buf body, f;
	char want[128];

	(void)state;
	h.creator = ida;
	encode_bundle(&h, ida, &body);
	wrap(body.data, body.len, key_b, 1, ida, &f);
	snprintf(want, sizeof(want),
	    "bundle signature does not verify with trusted key %s", ida);
	expect_refused(f.data, f.len, key_a, want);
	ferry_buf_release(&f);
	ferry_buf_release(&body);
}

/* The wrapper's key id is bound to the signed creator key id. */
static void
test_creator_mismatch(void **state)
{
	struct hmig one[] = { { "a", "SELECT 1;", NULL } };
	struct hbundle h = { 1, "shop", 1, NULL, NULL, one, 1, 0 };
	struct ferry_buf f;

	(void)state;
	h.creator = ferry_seckey_public(key_b)->id;
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a, "names key");
	ferry_buf_release(&f);
}

/* Every prefix of a bundle is refused as truncated. */
static void
test_truncated(void **state)
{
	struct ferry_migrations *m = three_migrations();
	uint8_t *f = NULL, *copy;
	size_t len, cut;

	(void)state;
	create_ok(m, NULL, 0, "shop", key_a, &f, &len);
	expect_refused(f, 0, key_a, "bundle is empty");
	for (cut = 1; cut < len; cut++) {
		/* A copy of exactly cut bytes, so ASan sees any overread. */
		copy = xmalloc(cut);
		memcpy(copy, f, cut);
		expect_refused(copy, cut, key_a, "bundle is truncated");
		free(copy);
	}
	free(f);
	ferry_migrations_free(m);
}

/* Every single-bit flip anywhere in a bundle is refused. */
static void
test_every_bit_flip(void **state)
{
	struct ferry_migrations *m = three_migrations();
	struct ferry_bundle *b = NULL;
	struct ferry_err err;
	uint8_t *f = NULL;
	size_t len, i;
	int bit;

	(void)state;
	create_ok(m, NULL, 0, "shop", key_a, &f, &len);
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			f[i] ^= (uint8_t)(1u << bit);
			ferry_err_clear(&err);
			if (ferry_bundle_open(f, len,
			        ferry_seckey_public(key_a), 1, &b,
			        &err) != FERRY_EFINDING)
				fail_msg("flip of bit %d at byte %zu accepted",
				    bit, i);
			assert_null(b);
			f[i] ^= (uint8_t)(1u << bit);
		}
	}
	free(f);
	ferry_migrations_free(m);
}

static void
test_garbage(void **state)
{
	static const char text[] = "-- not a bundle\nCREATE TABLE x ();\n";
	uint8_t junk[4096];
	uint32_t x = 12345;
	size_t i, n;

	(void)state;
	expect_refused(text, sizeof(text) - 1, key_a, "bundle is malformed");
	memset(junk, 0, sizeof(junk));
	expect_refused(junk, sizeof(junk), key_a, "bundle is malformed");
	for (n = 1; n <= sizeof(junk); n = n * 2 + 1) {
		for (i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (uint8_t)(x >> 16);
		}
		/* Whatever the reason, a refusal and never a crash. */
		expect_refused(junk, n, key_a, "bundle");
	}
}

/* Builds a wrapper by hand from optional pieces. */
static void
test_wrapper_strictness(void **state)
{
	struct hmig one[] = { { "a", "SELECT 1;", NULL } };
	struct hbundle h = { 1, "shop", 1, NULL, NULL, one, 1, 0 };
	const char *id = ferry_seckey_public(key_a)->id;
	struct ferry_buf body, good, f;
	uint8_t digest[32], sig[FERRY_SIG_LEN];
	static const uint8_t overlong_one[] = { 0x08, 0x81, 0x00 };

	(void)state;
	encode_bundle(&h, id, &body);
	ferry_sha256(body.data, body.len, digest);
	ferry_seckey_sign(key_a, FERRY_BUNDLE_DOMAIN, digest, sig);
	wrap(body.data, body.len, key_a, 1, id, &good);
	{
		struct ferry_bundle *b =
		    open_ok((uint8_t *)good.data, good.len, key_a);
		ferry_bundle_free(b);
	}

	/* An unknown field between known ones. */
	ferry_buf_init(&f, 1 << 20);
	put_uint(&f, 1, 1);
	put_str(&f, 9, "smuggled");
	put_bytes(&f, 2, body.data, body.len);
	put_bytes(&f, 3, sig, sizeof(sig));
	put_str(&f, 4, id);
	expect_refused(f.data, f.len, key_a, "unknown field 9");
	ferry_buf_release(&f);

	/* A repeated field. */
	ferry_buf_init(&f, 1 << 20);
	put_uint(&f, 1, 1);
	put_bytes(&f, 2, body.data, body.len);
	put_bytes(&f, 2, body.data, body.len);
	put_bytes(&f, 3, sig, sizeof(sig));
	put_str(&f, 4, id);
	expect_refused(f.data, f.len, key_a, "field 2 (bundle) repeated");
	ferry_buf_release(&f);

	/* Fields out of order (valid protobuf, not canonical). */
	ferry_buf_init(&f, 1 << 20);
	put_uint(&f, 1, 1);
	put_bytes(&f, 3, sig, sizeof(sig));
	put_bytes(&f, 2, body.data, body.len);
	put_str(&f, 4, id);
	expect_refused(f.data, f.len, key_a, "no bundle before byte 2");
	ferry_buf_release(&f);

	/* Wrong wire type for a known field. */
	ferry_buf_init(&f, 1 << 20);
	put_bytes(&f, 1, "x", 1);
	expect_refused(f.data, f.len, key_a, "wire type 2");
	ferry_buf_release(&f);

	/* A non-minimal varint spelling of version 1. */
	ferry_buf_init(&f, 1 << 20);
	ferry_buf_add(&f, overlong_one, sizeof(overlong_one));
	put_bytes(&f, 2, body.data, body.len);
	put_bytes(&f, 3, sig, sizeof(sig));
	put_str(&f, 4, id);
	expect_refused(f.data, f.len, key_a, "bad format version value");
	ferry_buf_release(&f);

	/* Trailing bytes: a zero byte, then a whole extra field. */
	ferry_buf_init(&f, 1 << 20);
	ferry_buf_add(&f, good.data, good.len);
	ferry_buf_add(&f, "", 1);
	expect_refused(f.data, f.len, key_a, "1 trailing bytes");
	ferry_buf_release(&f);
	ferry_buf_init(&f, 1 << 20);
	ferry_buf_add(&f, good.data, good.len);
	put_str(&f, 5, "extra");
	expect_refused(f.data, f.len, key_a, "7 trailing bytes");
	ferry_buf_release(&f);

	/* A short signature, a malformed key id, a missing key id. */
	ferry_buf_init(&f, 1 << 20);
	put_uint(&f, 1, 1);
	put_bytes(&f, 2, body.data, body.len);
	put_bytes(&f, 3, sig, 63);
	put_str(&f, 4, id);
	expect_refused(f.data, f.len, key_a, "signature is 63 bytes");
	ferry_buf_release(&f);
	ferry_buf_init(&f, 1 << 20);
	put_uint(&f, 1, 1);
	put_bytes(&f, 2, body.data, body.len);
	put_bytes(&f, 3, sig, sizeof(sig));
	put_str(&f, 4, "ABCDEF0123456789");
	expect_refused(f.data, f.len, key_a, "key id is malformed");
	ferry_buf_release(&f);
	ferry_buf_init(&f, 1 << 20);
	put_uint(&f, 1, 1);
	put_bytes(&f, 2, body.data, body.len);
	put_bytes(&f, 3, sig, sizeof(sig));
	expect_refused(f.data, f.len, key_a, "truncated (no key id)");
	ferry_buf_release(&f);

	ferry_buf_release(&good);
	ferry_buf_release(&body);
}

static void
test_format_version(void **state)
{
	struct hmig one[] = { { "a", "SELECT 1;", NULL } };
	struct hbundle h = { 2, "shop", 1, NULL, NULL, one, 1, 0 };
	const char *id = ferry_seckey_public(key_a)->id;
	struct ferry_buf body, f;

	(void)state;
	/* Signed content of version 2 in a version-1 wrapper. */
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a,
	    "bundle format version 2 is not supported");
	ferry_buf_release(&f);
	/* A version-7 wrapper says so before anything else. */
	h.version = 1;
	encode_bundle(&h, id, &body);
	wrap(body.data, body.len, key_a, 7, id, &f);
	expect_refused(f.data, f.len, key_a,
	    "bundle format version 7 is not supported");
	ferry_buf_release(&f);
	ferry_buf_release(&body);
}

static void
test_checksum_mismatch(void **state)
{
	struct hmig migs[] = {
		{ "20240101000000_init", "SELECT 1;", NULL },
		{ "20240102000000_x", "DROP TABLE users;",
		    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
		    "7852b855" },
	};
	struct hbundle h = { 1, "shop", 1, NULL, NULL, migs, 2, 0 };
	struct ferry_buf f;

	(void)state;
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a,
	    "migration '20240102000000_x' checksum does not match its SQL");
	ferry_buf_release(&f);
	/* Uppercase hex is not the recorded form either. */
	migs[1].sql = "";
	migs[1].checksum = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA4"
	                   "95991B7852B855";
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a, "checksum does not match");
	ferry_buf_release(&f);
}

static void
test_names(void **state)
{
	struct hmig dup[] = {
		{ "a", "SELECT 1;", NULL },
		{ "b", "SELECT 2;", NULL },
		{ "a", "SELECT 3;", NULL },
	};
	struct hmig empty[] = { { "", "SELECT 1;", NULL } };
	struct hmig slash[] = { { "../etc", "SELECT 1;", NULL } };
	struct hmig ctrl[] = { { "a\033[2Jb", "SELECT 1;", NULL } };
	struct hbundle h = { 1, "shop", 1, NULL, NULL, dup, 3, 0 };
	struct ferry_migrations *m;
	struct ferry_bundle_params p = { 0 };
	struct ferry_err err;
	struct ferry_buf f;
	uint8_t *out = NULL;
	size_t outlen;

	(void)state;
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a,
	    "migration 'a' appears more than once");
	ferry_buf_release(&f);
	h.migs = empty;
	h.nmigs = 1;
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a, "migration 1 has an empty name");
	ferry_buf_release(&f);
	h.migs = slash;
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a, "invalid name '../etc'");
	ferry_buf_release(&f);
	/* Control characters never reach a message. */
	h.migs = ctrl;
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a, "invalid name 'a?[2Jb'");
	ferry_buf_release(&f);

	/* Create refuses the same, as a usage error. */
	m = ferry_migrations_new();
	ferry_migrations_add(m, "a", "SELECT 1;", 9, NULL, 0);
	ferry_migrations_add(m, "a", "SELECT 2;", 9, NULL, 0);
	p.project = "shop";
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_create(m, &p, key_a, &out, &outlen, &err),
	    FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "more than once"));
	assert_null(out);
	p.project = "";
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_create(m, &p, key_a, &out, &outlen, &err),
	    FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "no project name"));
	ferry_migrations_free(m);
}

static void
test_sequence_rules(void **state)
{
	struct hmig one[] = { { "a", "SELECT 1;", NULL } };
	struct hbundle h = { 1, "shop", 0, NULL, NULL, one, 1, 0 };
	uint8_t parent[32];
	struct ferry_buf f;

	(void)state;
	memset(parent, 7, sizeof(parent));
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a, "sequence 0");
	ferry_buf_release(&f);
	h.sequence = 1;
	h.parent = parent;
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a, "sequence 1 but names a parent");
	ferry_buf_release(&f);
	h.sequence = 2;
	h.parent = NULL;
	hand_sign(&h, key_a, &f);
	expect_refused(f.data, f.len, key_a, "no 32-byte parent digest");
	ferry_buf_release(&f);
}

/* Fields added to Bundle by a later writer are signed, so accepted. */
static void
test_unknown_signed_field(void **state)
{
	struct hmig one[] = { { "a", "SELECT 1;", NULL } };
	struct hbundle h = { 1, "shop", 1, NULL, NULL, one, 1, 1 };
	struct ferry_bundle *b;
	struct ferry_buf f;

	(void)state;
	hand_sign(&h, key_a, &f);
	b = open_ok((uint8_t *)f.data, f.len, key_a);
	assert_int_equal(ferry_migrations_count(ferry_bundle_migrations(b)), 1);
	ferry_bundle_free(b);
	ferry_buf_release(&f);
}

static void
test_open_file(void **state)
{
	struct ferry_migrations *m = three_migrations();
	struct ferry_bundle *b = NULL;
	struct ferry_err err;
	char path[] = "/tmp/ferry-test-bundle-XXXXXX";
	uint8_t *f = NULL;
	size_t len;
	int fd;

	(void)state;
	create_ok(m, NULL, 0, "shop", key_a, &f, &len);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f, len), (ssize_t)len);
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_open_file(path,
	                     ferry_seckey_public(key_a), 1, &b, &err),
	    0);
	assert_int_equal(ferry_migrations_count(ferry_bundle_migrations(b)), 3);
	ferry_bundle_free(b);
	b = NULL;
	/* Larger than the cap (a sparse file): refused, not read. */
	assert_int_equal(ftruncate(fd, (off_t)FERRY_BUNDLE_MAX_BYTES + 1), 0);
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_open_file(path,
	                     ferry_seckey_public(key_a), 1, &b, &err),
	    FERRY_EFINDING);
	assert_non_null(strstr(err.msg, "larger than the limit"));
	close(fd);
	unlink(path);
	/* A missing file is an operational error. */
	ferry_err_clear(&err);
	assert_int_equal(ferry_bundle_open_file(path,
	                     ferry_seckey_public(key_a), 1, &b, &err),
	    FERRY_EOPER);
	assert_null(b);
	free(f);
	ferry_migrations_free(m);
}

static int
setup_keys(void **state)
{
	struct ferry_err err;

	(void)state;
	ferry_err_clear(&err);
	if (ferry_seckey_generate("release-a", &key_a, &err) != 0 ||
	    ferry_seckey_generate("release-b", &key_b, &err) != 0) {
		fprintf(stderr, "keygen: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int
teardown_keys(void **state)
{
	(void)state;
	ferry_seckey_free(key_a);
	ferry_seckey_free(key_b);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty_bundle),
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_chain_digest_mismatch),
		cmocka_unit_test(test_create_with_unverified_parent),
		cmocka_unit_test(test_rewrite),
		cmocka_unit_test(test_check_parent_unrecorded_rewrite),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_forged_key_id),
		cmocka_unit_test(test_creator_mismatch),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_every_bit_flip),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_wrapper_strictness),
		cmocka_unit_test(test_format_version),
		cmocka_unit_test(test_checksum_mismatch),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_sequence_rules),
		cmocka_unit_test(test_unknown_signed_field),
		cmocka_unit_test(test_open_file),
	};

	if (ferry_crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
