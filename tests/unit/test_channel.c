/*
 * test_channel.c -- the sealed channel, attacked: a handshake both ways
 * checked against an independent implementation of docs/wire.md, a
 * responder that is not the pinned key, every bit flip of HS2, HS3 and
 * DATA frames, identity substitution, spliced and replayed handshake
 * frames, the replay window (replays, reordering, old counters, counter
 * 0, forged frames that must not move it, a reference model), truncation,
 * other sessions, reflection, buffer sizes, REJECT frames and headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "keys.h"
#include "util.h"

#define HDR FERRY_CHAN_HDR_LEN
#define TAG FERRY_CHAN_TAG_LEN
#define SID FERRY_CHAN_SID_LEN
#define ID_LEN (FERRY_PUBKEY_LEN + FERRY_SIG_LEN)

static struct ferry_seckey *coord, *agent, *mallory, *bob;

/* rc and err are the refusal expected: this code, a message with sub. */
#define assert_err(rc, err, want, sub)                                      \
	do {                                                                \
		assert_int_equal((rc), (want));                             \
		assert_int_equal((err).code, (want));                       \
		if (strstr((err).msg, (sub)) == NULL)                       \
			fail_msg("expected '%s' in: %s", (sub), (err).msg); \
	} while (0)

/* Clears err, then evaluates call, which must be that refusal. */
#define assert_refused(call, err, want, sub)     \
	do {                                     \
		int rc_;                         \
		ferry_err_clear(&(err));         \
		rc_ = (call);                    \
		assert_err(rc_, err, want, sub); \
	} while (0)

static int
group_setup(void **state)
{
	struct ferry_err err;

	(void)state;
	ferry_err_clear(&err);
	if (ferry_seckey_generate("coordinator", &coord, &err) != 0 ||
	    ferry_seckey_generate("agent-1", &agent, &err) != 0 ||
	    ferry_seckey_generate("mallory", &mallory, &err) != 0 ||
	    ferry_seckey_generate("bob", &bob, &err) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	ferry_seckey_free(bob);
	ferry_seckey_free(mallory);
	ferry_seckey_free(agent);
	ferry_seckey_free(coord);
	return 0;
}

static const struct ferry_pubkey *
pub(const struct ferry_seckey *k)
{
	return ferry_seckey_public(k);
}

/* A full handshake of ik with rk; both sessions returned. */
static void
handshake(const struct ferry_seckey *ik, const struct ferry_seckey *rk,
    struct ferry_chan **ci, struct ferry_chan **cr)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN];
	uint8_t hs3[FERRY_CHAN_HS3_LEN];

	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(ik, pub(rk), &is, hs1, &err), 0);
	assert_int_equal(ferry_chan_resp_start(rk, hs1, sizeof(hs1), &rs, hs2,
	                     &err),
	    0);
	assert_int_equal(ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, ci,
	                     &err),
	    0);
	assert_int_equal(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), cr, &peer,
	                     &err),
	    0);
	assert_memory_equal(peer.pk, pub(ik)->pk, FERRY_PUBKEY_LEN);
}

/* 1 if the NUL-terminated s occurs in p[0..n). */
static int
contains(const uint8_t *p, size_t n, const char *s)
{
	size_t i, m = strlen(s);

	for (i = 0; i + m <= n; i++)
		if (memcmp(p + i, s, m) == 0)
			return 1;
	return 0;
}

/* Seals payload on c into a new heap frame of *len bytes. */
static uint8_t *
seal(struct ferry_chan *c, const void *payload, size_t plen, size_t *len)
{
	struct ferry_err err;
	uint8_t *f = xmalloc(FERRY_CHAN_SEALED_LEN(plen));

	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_seal(c, payload, plen, f,
	                     FERRY_CHAN_SEALED_LEN(plen), &err),
	    0);
	*len = FERRY_CHAN_SEALED_LEN(plen);
	return f;
}

/* Opens f on c and checks the payload is want. */
static void
open_ok(struct ferry_chan *c, const uint8_t *f, size_t len, const void *want,
    size_t wantlen)
{
	struct ferry_err err;
	uint8_t out[256];
	size_t outlen = 12345;

	ferry_err_clear(&err);
	if (ferry_chan_open(c, f, len, out, sizeof(out), &outlen, &err) != 0)
		fail_msg("open refused: %s", err.msg);
	assert_int_equal(outlen, wantlen);
	if (wantlen > 0)
		assert_memory_equal(out, want, wantlen);
}

/* Opens f on c; returns the status, err filled. */
static int
try_open(struct ferry_chan *c, const uint8_t *f, size_t len,
    struct ferry_err *err)
{
	uint8_t out[256];
	size_t outlen = 0;
	int rc;

	ferry_err_clear(err);
	rc = ferry_chan_open(c, f, len, out, sizeof(out), &outlen, err);
	if (rc != 0)
		assert_int_equal(outlen, 0);
	return rc;
}

/* ---- an independent implementation of docs/wire.md ---- */

static void
man_hdr(uint8_t *p, uint8_t type, const uint8_t *sid, uint64_t ctr)
{
	int i;

	p[0] = 1;
	p[1] = type;
	p[2] = p[3] = 0;
	if (sid != NULL)
		memcpy(p + 4, sid, SID);
	else
		memset(p + 4, 0, SID);
	for (i = 0; i < 8; i++)
		p[20 + i] = (uint8_t)(ctr >> (56 - 8 * i));
}

static void
man_kdf(uint8_t out[32], uint64_t id, const uint8_t master[32])
{
	assert_int_equal(crypto_kdf_derive_from_key(out, 32, id, "ferrychn",
	                     master),
	    0);
}

static void
man_nonce(uint8_t nonce[24], const uint8_t *sid, uint64_t ctr)
{
	uint8_t h[HDR];

	man_hdr(h, 0, sid, ctr);
	memcpy(nonce, h + 4, 24);
}

/* A hand-made initiator. */
struct man_init {
	uint8_t eph_pk[32], eph_sk[32];
	uint8_t hs1[FERRY_CHAN_HS1_LEN];
	uint8_t i2r[32], r2i[32]; /* kx keys, after man_init_hs3 */
	uint8_t sid[SID];
	uint8_t sig[FERRY_SIG_LEN]; /* the sig_i sent */
};

static void
man_init_start(struct man_init *m)
{
	memset(m, 0, sizeof(*m));
	crypto_kx_keypair(m->eph_pk, m->eph_sk);
	man_hdr(m->hs1, FERRY_CHAN_HS1, NULL, 0);
	memcpy(m->hs1 + HDR, m->eph_pk, 32);
}

/*
 * Opens a real HS2 as the spec says and writes HS3 claiming the key
 * claim, signed by signer over this handshake's transcript, or carrying
 * the signature sig_override as it is.
 */
static void
man_init_hs3(struct man_init *m, const uint8_t hs2[FERRY_CHAN_HS2_LEN],
    const uint8_t claim[32], const struct ferry_seckey *signer,
    const uint8_t *sig_override, uint8_t hs3[FERRY_CHAN_HS3_LEN])
{
	crypto_hash_sha256_state ts;
	uint8_t key[32], nonce[24], id[ID_LEN], digest[32];

	memcpy(m->sid, hs2 + 4, SID);
	assert_int_equal(crypto_kx_client_session_keys(m->r2i, m->i2r,
	                     m->eph_pk, m->eph_sk, hs2 + HDR),
	    0);
	man_kdf(key, 2, m->r2i);
	man_nonce(nonce, m->sid, 0);
	assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(id, NULL,
	                     NULL, hs2 + HDR + 32, ID_LEN + TAG, hs2, HDR + 32,
	                     nonce, key),
	    0);
	man_hdr(hs3, FERRY_CHAN_HS3, m->sid, 0);
	crypto_hash_sha256_init(&ts);
	crypto_hash_sha256_update(&ts, m->hs1, sizeof(m->hs1));
	crypto_hash_sha256_update(&ts, hs2, HDR + 32);
	crypto_hash_sha256_update(&ts, id, ID_LEN);
	crypto_hash_sha256_update(&ts, hs3, HDR);
	crypto_hash_sha256_update(&ts, claim, 32);
	crypto_hash_sha256_final(&ts, digest);
	memcpy(id, claim, 32);
	if (sig_override != NULL)
		memcpy(id + 32, sig_override, FERRY_SIG_LEN);
	else
		ferry_seckey_sign(signer, "ferry-chan-v1-i", digest, id + 32);
	memcpy(m->sig, id + 32, FERRY_SIG_LEN);
	man_kdf(key, 1, m->i2r);
	crypto_aead_xchacha20poly1305_ietf_encrypt(hs3 + HDR, NULL, id, ID_LEN,
	    hs3, HDR, NULL, nonce, key);
}

/* A hand-made responder. */
struct man_resp {
	uint8_t i2r[32], r2i[32];
	uint8_t transcript[FERRY_CHAN_HS1_LEN + HDR + 32 + ID_LEN];
	uint8_t sid[SID];
};

/*
 * Answers hs1 with an HS2 claiming the key claim, signed by signer, for
 * session sid (NULL: a random one).
 */
static void
man_resp_hs2(struct man_resp *m, const uint8_t *hs1, const uint8_t claim[32],
    const struct ferry_seckey *signer, const uint8_t *sid,
    uint8_t hs2[FERRY_CHAN_HS2_LEN])
{
	uint8_t eph_pk[32], eph_sk[32], key[32], nonce[24], digest[32];
	uint8_t *t = m->transcript;

	crypto_kx_keypair(eph_pk, eph_sk);
	assert_int_equal(crypto_kx_server_session_keys(m->i2r, m->r2i, eph_pk,
	                     eph_sk, hs1 + HDR),
	    0);
	if (sid != NULL)
		memcpy(m->sid, sid, SID);
	else
		randombytes_buf(m->sid, SID);
	memcpy(t, hs1, FERRY_CHAN_HS1_LEN);
	man_hdr(t + FERRY_CHAN_HS1_LEN, FERRY_CHAN_HS2, m->sid, 0);
	memcpy(t + FERRY_CHAN_HS1_LEN + HDR, eph_pk, 32);
	memcpy(t + FERRY_CHAN_HS1_LEN + HDR + 32, claim, 32);
	crypto_hash_sha256(digest, t, FERRY_CHAN_HS1_LEN + HDR + 64);
	ferry_seckey_sign(signer, "ferry-chan-v1-r", digest,
	    t + FERRY_CHAN_HS1_LEN + HDR + 64);
	memcpy(hs2, t + FERRY_CHAN_HS1_LEN, HDR + 32);
	man_kdf(key, 2, m->r2i);
	man_nonce(nonce, m->sid, 0);
	crypto_aead_xchacha20poly1305_ietf_encrypt(hs2 + HDR + 32, NULL,
	    t + FERRY_CHAN_HS1_LEN + HDR + 32, ID_LEN, hs2, HDR + 32, NULL,
	    nonce, key);
}

/* A DATA frame sealed by hand with the data key derived from master. */
static void
man_seal(const uint8_t master[32], uint64_t subkey, const uint8_t *sid,
    uint64_t ctr, const char *msg, uint8_t *out)
{
	uint8_t key[32], nonce[24];

	man_kdf(key, subkey, master);
	man_hdr(out, FERRY_CHAN_DATA, sid, ctr);
	man_nonce(nonce, sid, ctr);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + HDR, NULL,
	    (const uint8_t *)msg, strlen(msg), out, HDR, NULL, nonce, key);
}

/* ---- tests ---- */

static void
test_handshake_and_data(void **state)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_chan *ci = NULL, *cr = NULL;
	struct ferry_chan_hdr h;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN];
	uint8_t hs3[FERRY_CHAN_HS3_LEN], sid[SID], *f;
	char msg[64];
	size_t len;
	int i;

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	assert_int_equal(ferry_chan_peek(hs1, sizeof(hs1), &h, &err), 0);
	assert_int_equal(h.type, FERRY_CHAN_HS1);
	assert_true(sodium_is_zero(h.sid, SID));
	assert_int_equal(h.counter, 0);
	assert_int_equal(ferry_chan_resp_start(coord, hs1, sizeof(hs1), &rs,
	                     hs2, &err),
	    0);
	memcpy(sid, ferry_chan_resp_sid(rs), SID);
	assert_false(sodium_is_zero(sid, SID));
	assert_int_equal(ferry_chan_peek(hs2, sizeof(hs2), &h, &err), 0);
	assert_int_equal(h.type, FERRY_CHAN_HS2);
	assert_memory_equal(h.sid, sid, SID);
	assert_int_equal(ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, &ci,
	                     &err),
	    0);
	assert_int_equal(ferry_chan_peek(hs3, sizeof(hs3), &h, &err), 0);
	assert_int_equal(h.type, FERRY_CHAN_HS3);
	assert_memory_equal(h.sid, sid, SID);
	assert_int_equal(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr,
	                     &peer, &err),
	    0);
	assert_string_equal(err.msg, "");

	/* Who is on the other end, by key; the responder learns no name. */
	assert_memory_equal(peer.pk, pub(agent)->pk, FERRY_PUBKEY_LEN);
	assert_string_equal(peer.id, pub(agent)->id);
	assert_string_equal(peer.name, "");
	assert_memory_equal(ferry_chan_peer(cr), &peer, sizeof(peer));
	assert_memory_equal(ferry_chan_peer(ci)->pk, pub(coord)->pk,
	    FERRY_PUBKEY_LEN);
	assert_string_equal(ferry_chan_peer(ci)->id, pub(coord)->id);
	assert_memory_equal(ferry_chan_sid(ci), sid, SID);
	assert_memory_equal(ferry_chan_sid(cr), sid, SID);

	/* Key confirmation first, then both ways, counters from 1. */
	for (i = 1; i <= 5; i++) {
		snprintf(msg, sizeof(msg), "r2i %d", i);
		f = seal(cr, msg, strlen(msg), &len);
		assert_int_equal(ferry_chan_peek(f, len, &h, &err), 0);
		assert_int_equal(h.type, FERRY_CHAN_DATA);
		assert_int_equal(h.counter, (uint64_t)i);
		/* The payload does not appear in clear. */
		assert_false(contains(f, len, msg));
		open_ok(ci, f, len, msg, strlen(msg));
		free(f);
		snprintf(msg, sizeof(msg), "i2r %d", i);
		f = seal(ci, msg, strlen(msg), &len);
		open_ok(cr, f, len, msg, strlen(msg));
		free(f);
	}
	/* An empty payload is a frame too. */
	f = seal(ci, "", 0, &len);
	assert_int_equal(len, HDR + TAG);
	open_ok(cr, f, len, "", 0);
	free(f);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
	ferry_chan_free(NULL);
	ferry_chan_init_free(NULL);
	ferry_chan_resp_free(NULL);
}

/* Both sides against the hand-made other side: the spec is what runs. */
static void
test_conforms_to_spec(void **state)
{
	struct man_init mi;
	struct man_resp mr;
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_chan *ci = NULL, *cr = NULL;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN];
	uint8_t hs3[FERRY_CHAN_HS3_LEN], f[HDR + 64 + TAG];
	uint8_t key[32], nonce[24], id[ID_LEN], digest[32];
	crypto_hash_sha256_state ts;
	size_t len;
	uint8_t *g;

	(void)state;
	ferry_err_clear(&err);
	/* Hand-made initiator, real responder. */
	man_init_start(&mi);
	assert_int_equal(ferry_chan_resp_start(coord, mi.hs1, sizeof(mi.hs1),
	                     &rs, hs2, &err),
	    0);
	man_init_hs3(&mi, hs2, pub(agent)->pk, agent, NULL, hs3);
	assert_int_equal(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr,
	                     &peer, &err),
	    0);
	assert_string_equal(peer.id, pub(agent)->id);
	man_seal(mi.i2r, 3, mi.sid, 1, "hello", f);
	open_ok(cr, f, HDR + 5 + TAG, "hello", 5);
	g = seal(cr, "world", 5, &len);
	man_kdf(key, 4, mi.r2i);
	man_nonce(nonce, mi.sid, 1);
	assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(f, NULL,
	                     NULL, g + HDR, len - HDR, g, HDR, nonce, key),
	    0);
	assert_memory_equal(f, "world", 5);
	free(g);
	ferry_chan_free(cr);

	/* Real initiator, hand-made responder. */
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	man_resp_hs2(&mr, hs1, pub(coord)->pk, coord, NULL, hs2);
	assert_int_equal(ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, &ci,
	                     &err),
	    0);
	man_kdf(key, 1, mr.i2r);
	man_nonce(nonce, mr.sid, 0);
	assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(id, NULL,
	                     NULL, hs3 + HDR, ID_LEN + TAG, hs3, HDR, nonce,
	                     key),
	    0);
	assert_memory_equal(id, pub(agent)->pk, 32);
	crypto_hash_sha256_init(&ts);
	crypto_hash_sha256_update(&ts, mr.transcript, sizeof(mr.transcript));
	crypto_hash_sha256_update(&ts, hs3, HDR);
	crypto_hash_sha256_update(&ts, id, 32);
	crypto_hash_sha256_final(&ts, digest);
	assert_int_equal(ferry_pubkey_verify(pub(agent), "ferry-chan-v1-i",
	                     digest, id + 32),
	    0);
	man_seal(mr.r2i, 4, mr.sid, 7, "confirm", f);
	open_ok(ci, f, HDR + 7 + TAG, "confirm", 7);
	ferry_chan_free(ci);
}

static void
test_wrong_pinned_key(void **state)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_chan *ci = NULL;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN];
	uint8_t hs3[FERRY_CHAN_HS3_LEN];
	char want[128];

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	/* Mallory answers in her own name. */
	assert_int_equal(ferry_chan_resp_start(mallory, hs1, sizeof(hs1), &rs,
	                     hs2, &err),
	    0);
	memset(hs3, 0xee, sizeof(hs3));
	snprintf(want, sizeof(want),
	    "coordinator key mismatch: expected %s, got %s", pub(coord)->id,
	    pub(mallory)->id);
	assert_refused(ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, &ci,
	                   &err),
	    err, FERRY_EFINDING, want);
	assert_string_equal(err.msg, want);
	assert_null(ci);
	/* Nothing was written for her to use. */
	for (size_t i = 0; i < sizeof(hs3); i++)
		assert_int_equal(hs3[i], 0xee);
	ferry_chan_resp_free(rs);
}

/* A responder claiming the pinned key but unable to sign for it. */
static void
test_hs2_bad_signature(void **state)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan *ci = NULL;
	struct man_resp mr;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN];
	uint8_t hs3[FERRY_CHAN_HS3_LEN];
	char want[128];

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	man_resp_hs2(&mr, hs1, pub(coord)->pk, mallory, NULL, hs2);
	snprintf(want, sizeof(want), "bad signature in HS2 from coordinator %s",
	    pub(coord)->id);
	assert_refused(ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, &ci,
	                   &err),
	    err, FERRY_EFINDING, want);
	assert_null(ci);

	/* A zero session id, even well signed. */
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	memset(hs3, 0, SID);
	man_resp_hs2(&mr, hs1, pub(coord)->pk, coord, hs3, hs2);
	assert_refused(ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, &ci,
	                   &err),
	    err, FERRY_EFINDING, "all-zero session id");
}

/* The refusal expected for a flipped bit at byte i of a handshake frame. */
static const char *
hs_flip_reason(size_t i, uint8_t flipped_type, const char *aead_msg)
{
	if (i == 0)
		return "unsupported channel version";
	if (i == 1) {
		if (flipped_type >= 1 && flipped_type <= 5)
			return "expected an";
		return "unknown frame type";
	}
	if (i < 4)
		return "flags";
	if (i >= 20 && i < 28)
		return "counter";
	return aead_msg;
}

static void
test_hs2_every_bit_flip(void **state)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_chan *ci = NULL, *cr = NULL;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN];
	uint8_t hs3[FERRY_CHAN_HS3_LEN];
	size_t bit, i;
	int rc;

	(void)state;
	for (bit = 0; bit < 8 * sizeof(hs2); bit++) {
		i = bit / 8;
		ferry_err_clear(&err);
		assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is,
		                     hs1, &err),
		    0);
		assert_int_equal(ferry_chan_resp_start(coord, hs1, sizeof(hs1),
		                     &rs, hs2, &err),
		    0);
		hs2[i] ^= (uint8_t)(1u << (bit % 8));
		rc = ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, &ci,
		    &err);
		if (rc == 0)
			fail_msg("HS2 with bit %zu flipped was accepted", bit);
		/* A flipped ephemeral key may even be unusable. */
		ferry_chan_resp_free(rs);
		assert_null(ci);
		if (i >= HDR && i < HDR + 32 && strstr(err.msg, "unusable"))
			continue;
		assert_err(rc, err, FERRY_EFINDING,
		    hs_flip_reason(i, hs2[1], "HS2 does not authenticate"));
	}
	/* The last one, unflipped, still works: the loop tested flips. */
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	assert_int_equal(ferry_chan_resp_start(coord, hs1, sizeof(hs1), &rs,
	                     hs2, &err),
	    0);
	assert_int_equal(ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, &ci,
	                     &err),
	    0);
	assert_int_equal(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr,
	                     &peer, &err),
	    0);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

static void
test_hs3_every_bit_flip(void **state)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_chan *ci = NULL, *cr = NULL;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN];
	uint8_t hs3[FERRY_CHAN_HS3_LEN];
	size_t bit, i;
	const char *want;

	(void)state;
	for (bit = 0; bit <= 8 * sizeof(hs3); bit++) {
		i = bit / 8;
		ferry_err_clear(&err);
		assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is,
		                     hs1, &err),
		    0);
		assert_int_equal(ferry_chan_resp_start(coord, hs1, sizeof(hs1),
		                     &rs, hs2, &err),
		    0);
		assert_int_equal(ferry_chan_init_finish(is, hs2, sizeof(hs2),
		                     hs3, &ci, &err),
		    0);
		ferry_chan_free(ci);
		if (bit == 8 * sizeof(hs3)) {
			/* Unflipped: accepted. */
			assert_int_equal(ferry_chan_resp_finish(rs, hs3,
			                     sizeof(hs3), &cr, &peer, &err),
			    0);
			ferry_chan_free(cr);
			break;
		}
		hs3[i] ^= (uint8_t)(1u << (bit % 8));
		want = hs_flip_reason(i, hs3[1], "HS3 does not authenticate");
		if (i >= 4 && i < 20)
			want = "HS3 frame is for another session";
		assert_refused(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr,
		                   &peer, &err),
		    err, FERRY_EFINDING, want);
		assert_null(cr);
		assert_true(sodium_is_zero(peer.pk, sizeof(peer.pk)));
	}
}

/* HS3 claiming bob's key; signed by mallory, or with a spliced sig. */
static void
test_hs3_identity_substitution(void **state)
{
	struct ferry_chan_resp *rs = NULL;
	struct ferry_chan *cr = NULL;
	struct ferry_pubkey peer;
	struct man_init mi, m2;
	struct ferry_err err;
	uint8_t hs2[FERRY_CHAN_HS2_LEN], hs3[FERRY_CHAN_HS3_LEN];
	uint8_t spliced[FERRY_SIG_LEN], bob_hs3[FERRY_CHAN_HS3_LEN];
	char want[128];

	(void)state;
	ferry_err_clear(&err);
	/* Mallory claims to be bob and signs herself. */
	man_init_start(&mi);
	assert_int_equal(ferry_chan_resp_start(coord, mi.hs1, sizeof(mi.hs1),
	                     &rs, hs2, &err),
	    0);
	man_init_hs3(&mi, hs2, pub(bob)->pk, mallory, NULL, hs3);
	snprintf(want, sizeof(want), "bad signature in HS3 from key %s",
	    pub(bob)->id);
	assert_refused(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr, &peer,
	                   &err),
	    err, FERRY_EFINDING, want);
	assert_null(cr);

	/*
	 * Splicing: bob completes a real handshake; mallory reuses bob's
	 * signature in her own session, claiming bob's key.
	 */
	ferry_err_clear(&err);
	man_init_start(&m2);
	assert_int_equal(ferry_chan_resp_start(coord, m2.hs1, sizeof(m2.hs1),
	                     &rs, hs2, &err),
	    0);
	man_init_hs3(&m2, hs2, pub(bob)->pk, bob, NULL, hs3);
	memcpy(spliced, m2.sig, sizeof(spliced));
	memcpy(bob_hs3, hs3, sizeof(bob_hs3));
	assert_int_equal(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr,
	                     &peer, &err),
	    0);
	assert_string_equal(peer.id, pub(bob)->id);
	ferry_chan_free(cr);

	man_init_start(&mi);
	assert_int_equal(ferry_chan_resp_start(coord, mi.hs1, sizeof(mi.hs1),
	                     &rs, hs2, &err),
	    0);
	man_init_hs3(&mi, hs2, pub(bob)->pk, NULL, spliced, hs3);
	assert_refused(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr, &peer,
	                   &err),
	    err, FERRY_EFINDING, want);
	assert_null(cr);

	/* bob's whole HS3 replayed into another handshake. */
	man_init_start(&mi);
	assert_int_equal(ferry_chan_resp_start(coord, mi.hs1, sizeof(mi.hs1),
	                     &rs, hs2, &err),
	    0);
	memcpy(bob_hs3 + 4, ferry_chan_resp_sid(rs), SID); /* with its sid */
	assert_refused(ferry_chan_resp_finish(rs, bob_hs3, sizeof(bob_hs3), &cr,
	                   &peer, &err),
	    err, FERRY_EFINDING, "HS3 does not authenticate");
}

/* An HS2 answered to one initiator, replayed to another. */
static void
test_hs2_replayed(void **state)
{
	struct ferry_chan_init *a = NULL, *b = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_chan *ci = NULL, *cr = NULL;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1a[FERRY_CHAN_HS1_LEN], hs1b[FERRY_CHAN_HS1_LEN];
	uint8_t hs2[FERRY_CHAN_HS2_LEN], hs3[FERRY_CHAN_HS3_LEN];

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &a, hs1a,
	                     &err),
	    0);
	assert_int_equal(ferry_chan_init_start(bob, pub(coord), &b, hs1b, &err),
	    0);
	assert_int_equal(ferry_chan_resp_start(coord, hs1a, sizeof(hs1a), &rs,
	                     hs2, &err),
	    0);
	assert_refused(ferry_chan_init_finish(b, hs2, sizeof(hs2), hs3, &ci,
	                   &err),
	    err, FERRY_EFINDING, "HS2 does not authenticate");
	assert_null(ci);
	/* The one it was for still completes, once. */
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_finish(a, hs2, sizeof(hs2), hs3, &ci,
	                     &err),
	    0);
	assert_int_equal(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr,
	                     &peer, &err),
	    0);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

static void
test_hs_malformed(void **state)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL, *rs2 = NULL;
	struct ferry_chan *ci = NULL, *cr = NULL;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN + 1];
	uint8_t hs3[FERRY_CHAN_HS3_LEN + 1], x[FERRY_CHAN_HS1_LEN + 1];
	uint8_t rej[HDR + 1];

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);

	/* HS1 to the responder: length, type, version, flags, sid, counter. */
	memset(x, 0, sizeof(x));
	memcpy(x, hs1, sizeof(hs1));
	assert_refused(ferry_chan_resp_start(coord, x, sizeof(hs1) - 1, &rs,
	                   hs2, &err),
	    err, FERRY_EFINDING, "HS1 frame is 59 bytes, expected 60");
	assert_null(rs);
	ferry_err_clear(&err);
	assert_refused(ferry_chan_resp_start(coord, x, sizeof(hs1) + 1, &rs,
	                   hs2, &err),
	    err, FERRY_EFINDING, "HS1 frame is 61 bytes, expected 60");
	ferry_err_clear(&err);
	assert_refused(ferry_chan_resp_start(coord, x, 10, &rs, hs2, &err), err,
	    FERRY_EFINDING, "shorter than the 28-byte header");
	ferry_err_clear(&err);
	x[1] = FERRY_CHAN_HS3;
	assert_refused(ferry_chan_resp_start(coord, x, sizeof(hs1), &rs, hs2,
	                   &err),
	    err, FERRY_EFINDING, "expected an HS1 frame, got HS3 (type 3)");
	ferry_err_clear(&err);
	memcpy(x, hs1, sizeof(hs1));
	x[0] = 2;
	assert_refused(ferry_chan_resp_start(coord, x, sizeof(hs1), &rs, hs2,
	                   &err),
	    err, FERRY_EFINDING, "unsupported channel version 2");
	ferry_err_clear(&err);
	memcpy(x, hs1, sizeof(hs1));
	x[3] = 1;
	assert_refused(ferry_chan_resp_start(coord, x, sizeof(hs1), &rs, hs2,
	                   &err),
	    err, FERRY_EFINDING, "flags 0x0001");
	ferry_err_clear(&err);
	memcpy(x, hs1, sizeof(hs1));
	x[4] = 1;
	assert_refused(ferry_chan_resp_start(coord, x, sizeof(hs1), &rs, hs2,
	                   &err),
	    err, FERRY_EFINDING, "HS1 frame has a session id");
	ferry_err_clear(&err);
	memcpy(x, hs1, sizeof(hs1));
	x[27] = 1;
	assert_refused(ferry_chan_resp_start(coord, x, sizeof(hs1), &rs, hs2,
	                   &err),
	    err, FERRY_EFINDING, "HS1 frame has counter 1, expected 0");
	/* A low-order ephemeral key (all zeros) gives no shared secret. */
	ferry_err_clear(&err);
	memcpy(x, hs1, sizeof(hs1));
	memset(x + HDR, 0, 32);
	assert_refused(ferry_chan_resp_start(coord, x, sizeof(hs1), &rs, hs2,
	                   &err),
	    err, FERRY_EFINDING, "HS1 carries an unusable ephemeral key");
	assert_null(rs);

	/* HS2 to the initiator: length and type (a new state each time). */
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_resp_start(coord, hs1, sizeof(hs1), &rs,
	                     hs2, &err),
	    0);
	assert_refused(ferry_chan_init_finish(is, hs2, FERRY_CHAN_HS2_LEN - 1,
	                   hs3, &ci, &err),
	    err, FERRY_EFINDING, "HS2 frame is 171 bytes, expected 172");
	assert_null(ci);
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	hs2[FERRY_CHAN_HS2_LEN] = 0;
	assert_refused(ferry_chan_init_finish(is, hs2, FERRY_CHAN_HS2_LEN + 1,
	                   hs3, &ci, &err),
	    err, FERRY_EFINDING, "HS2 frame is 173 bytes, expected 172");
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	assert_refused(ferry_chan_init_finish(is, hs1, sizeof(hs1), hs3, &ci,
	                   &err),
	    err, FERRY_EFINDING, "expected an HS2 frame, got HS1 (type 1)");
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	assert_refused(ferry_chan_init_finish(is, hs2, 3, hs3, &ci, &err), err,
	    FERRY_EFINDING, "bad HS2: frame is 3 bytes");
	/* A REJECT in place of HS2 says why. */
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	ferry_chan_reject(hs2 + 4, FERRY_CHAN_REJECT_BUSY, rej);
	assert_refused(ferry_chan_init_finish(is, rej, sizeof(rej), hs3, &ci,
	                   &err),
	    err, FERRY_EFINDING,
	    "handshake rejected by the peer: busy, retry later (reason 3)");
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	ferry_chan_reject(hs2 + 4, 200, rej);
	assert_refused(ferry_chan_init_finish(is, rej, sizeof(rej), hs3, &ci,
	                   &err),
	    err, FERRY_EFINDING, "unknown reason (reason 200)");
	ferry_chan_resp_free(rs);

	/* HS3 to the responder: length, type, another session's HS3. */
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_init_start(agent, pub(coord), &is, hs1,
	                     &err),
	    0);
	assert_int_equal(ferry_chan_resp_start(coord, hs1, sizeof(hs1), &rs,
	                     hs2, &err),
	    0);
	assert_int_equal(ferry_chan_init_finish(is, hs2, FERRY_CHAN_HS2_LEN,
	                     hs3, &ci, &err),
	    0);
	hs3[FERRY_CHAN_HS3_LEN] = 0;
	assert_refused(ferry_chan_resp_finish(rs, hs3, FERRY_CHAN_HS3_LEN + 1,
	                   &cr, &peer, &err),
	    err, FERRY_EFINDING, "HS3 frame is 141 bytes, expected 140");
	assert_null(cr);
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_resp_start(coord, hs1, sizeof(hs1), &rs,
	                     hs2, &err),
	    0);
	assert_int_equal(ferry_chan_resp_start(coord, hs1, sizeof(hs1), &rs2,
	                     hs2, &err),
	    0);
	/* hs3 belongs to neither: a third session id. */
	assert_refused(ferry_chan_resp_finish(rs, hs3, FERRY_CHAN_HS3_LEN, &cr,
	                   &peer, &err),
	    err, FERRY_EFINDING, "HS3 frame is for another session");
	ferry_err_clear(&err);
	assert_refused(ferry_chan_resp_finish(rs2, hs2, FERRY_CHAN_HS2_LEN, &cr,
	                   &peer, &err),
	    err, FERRY_EFINDING, "expected an HS3 frame, got HS2 (type 2)");
	ferry_chan_free(ci);
}

static void
test_data_replay_and_order(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t *f[6];
	size_t len[6];
	char msg[32];
	static const int order[] = { 5, 3, 1, 4, 2 };
	int i;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	for (i = 1; i <= 5; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		f[i] = seal(ci, msg, strlen(msg), &len[i]);
	}
	open_ok(cr, f[1], len[1], "m1", 2);
	assert_refused(try_open(cr, f[1], len[1], &err), err, FERRY_EFINDING,
	    "replayed counter 1");
	for (i = 0; i < 5; i++) {
		snprintf(msg, sizeof(msg), "m%d", order[i]);
		if (order[i] == 1)
			continue;
		open_ok(cr, f[order[i]], len[order[i]], msg, 2);
	}
	for (i = 1; i <= 5; i++) {
		snprintf(msg, sizeof(msg), "replayed counter %d", i);
		assert_refused(try_open(cr, f[i], len[i], &err), err,
		    FERRY_EFINDING, msg);
		free(f[i]);
	}
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

/* Seals n frames on c; f[k] is counter k (f[0] unused). */
static uint8_t **
seal_many(struct ferry_chan *c, size_t n, size_t *len)
{
	uint8_t **f = xcalloc(n + 1, sizeof(*f));
	uint64_t k;

	for (k = 1; k <= n; k++)
		f[k] = seal(c, &k, sizeof(k), len);
	return f;
}

static void
free_many(uint8_t **f, size_t n)
{
	size_t k;

	for (k = 0; k <= n; k++)
		free(f[k]);
	free(f);
}

static void
open_ctr(struct ferry_chan *c, uint8_t **f, size_t len, uint64_t k)
{
	open_ok(c, f[k], len, &k, sizeof(k));
}

static void
test_data_window_edges(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t **f;
	size_t len, n = 1600;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	f = seal_many(ci, n, &len);

	/* Highest 1026: 3 is the oldest in the window, 2 is out. */
	open_ctr(cr, f, len, 1026);
	open_ctr(cr, f, len, 3);
	assert_refused(try_open(cr, f[2], len, &err), err, FERRY_EFINDING,
	    "counter 2 too old (window 3-1026)");
	assert_refused(try_open(cr, f[1], len, &err), err, FERRY_EFINDING,
	    "counter 1 too old");
	assert_refused(try_open(cr, f[3], len, &err), err, FERRY_EFINDING,
	    "replayed counter 3");
	/* Slot of 3 is the slot of 1027: sliding must not confuse them. */
	open_ctr(cr, f, len, 1027);
	assert_refused(try_open(cr, f[3], len, &err), err, FERRY_EFINDING,
	    "counter 3 too old (window 4-1027)");
	open_ctr(cr, f, len, 4);
	open_ctr(cr, f, len, 1025);

	/* A jump by less than the window keeps the recent marks. */
	open_ctr(cr, f, len, 1500);
	assert_refused(try_open(cr, f[1025], len, &err), err, FERRY_EFINDING,
	    "replayed counter 1025");
	assert_refused(try_open(cr, f[476], len, &err), err, FERRY_EFINDING,
	    "counter 476 too old (window 477-1500)");
	open_ctr(cr, f, len, 477);
	open_ctr(cr, f, len, 1499);
	assert_refused(try_open(cr, f[1500], len, &err), err, FERRY_EFINDING,
	    "replayed counter 1500");
	free_many(f, n);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

static void
test_data_big_jump(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t **f;
	size_t len, n = 3 * FERRY_CHAN_WINDOW;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	f = seal_many(ci, n, &len);
	open_ctr(cr, f, len, 1);
	open_ctr(cr, f, len, 2);
	/* Exactly one window ahead: 1 and 2 fall out, 3.. are fresh. */
	open_ctr(cr, f, len, 2 + FERRY_CHAN_WINDOW);
	assert_refused(try_open(cr, f[2], len, &err), err, FERRY_EFINDING,
	    "counter 2 too old");
	open_ctr(cr, f, len, 3);
	open_ctr(cr, f, len, 1 + FERRY_CHAN_WINDOW);
	/* Far ahead. */
	open_ctr(cr, f, len, n);
	assert_refused(try_open(cr, f[n - FERRY_CHAN_WINDOW], len, &err), err,
	    FERRY_EFINDING, "too old");
	open_ctr(cr, f, len, n - FERRY_CHAN_WINDOW + 1);
	open_ctr(cr, f, len, n - 1);
	assert_refused(try_open(cr, f[n - 1], len, &err), err, FERRY_EFINDING,
	    "replayed counter");
	free_many(f, n);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

static void
test_data_counter_zero(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t *f, frame[HDR + 3 + TAG];
	size_t len;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	f = seal(ci, "abc", 3, &len);
	memcpy(frame, f, len);
	memset(frame + 20, 0, 8);
	assert_refused(try_open(cr, frame, len, &err), err, FERRY_EFINDING,
	    "DATA frame has counter 0");
	open_ok(cr, f, len, "abc", 3);
	free(f);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

/* The refusal expected for a flipped bit at byte i of frame f (ctr 2). */
static const char *
data_flip_reason(size_t i, const uint8_t *f)
{
	if (i == 0)
		return "unsupported channel version";
	if (i == 1)
		return f[1] == FERRY_CHAN_REJECT ? "expected a DATA frame, got "
		                                   "REJECT"
		                                 : "unknown frame type";
	if (i < 4)
		return "flags";
	if (i < 20)
		return "DATA frame is for another session";
	if (i < 28 && sodium_is_zero(f + 20, 8))
		return "DATA frame has counter 0";
	return "authentication failed";
}

static void
test_data_every_bit_flip(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t *f1, *f2, x[HDR + 20 + TAG];
	size_t len, bit;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	f1 = seal(ci, "frame number one....", 20, &len);
	f2 = seal(ci, "frame number two....", 20, &len);
	assert_int_equal(len, sizeof(x));
	for (bit = 0; bit < 8 * len; bit++) {
		memcpy(x, f2, len);
		x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_refused(try_open(cr, x, len, &err), err, FERRY_EFINDING,
		    data_flip_reason(bit / 8, x));
	}
	/* No forgery moved the window: both still open, in either order. */
	open_ok(cr, f2, len, "frame number two....", 20);
	open_ok(cr, f1, len, "frame number one....", 20);
	free(f1);
	free(f2);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

static void
test_data_truncated(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t *f, *x;
	size_t len, n;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	f = seal(ci, "a payload of some length", 24, &len);
	for (n = 0; n < len; n++) {
		/* A copy of exactly n bytes, so ASan sees any overread. */
		x = xmalloc(n > 0 ? n : 1);
		memcpy(x, f, n);
		if (n < HDR)
			assert_refused(try_open(cr, x, n, &err), err,
			    FERRY_EFINDING, "shorter than the 28-byte header");
		else if (n < HDR + TAG)
			assert_refused(try_open(cr, x, n, &err), err,
			    FERRY_EFINDING, "shorter than header and tag (44)");
		else
			assert_refused(try_open(cr, x, n, &err), err,
			    FERRY_EFINDING,
			    "authentication failed (counter 1)");
		free(x);
	}
	/* Appended bytes are refused too. */
	x = xmalloc(len + 1);
	memcpy(x, f, len);
	x[len] = 0;
	assert_refused(try_open(cr, x, len + 1, &err), err, FERRY_EFINDING,
	    "authentication failed");
	free(x);
	open_ok(cr, f, len, "a payload of some length", 24);
	free(f);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

static void
test_data_other_session(void **state)
{
	struct ferry_chan *ai, *ar, *bi, *br;
	struct ferry_err err;
	uint8_t *f, *g;
	size_t len;

	(void)state;
	handshake(agent, coord, &ai, &ar);
	handshake(agent, coord, &bi, &br);
	assert_memory_not_equal(ferry_chan_sid(ai), ferry_chan_sid(bi), SID);
	f = seal(ai, "for a", 5, &len);
	assert_refused(try_open(br, f, len, &err), err, FERRY_EFINDING,
	    "DATA frame is for another session");
	/* Relabelled with b's session id: b's key does not open it. */
	g = xmalloc(len);
	memcpy(g, f, len);
	memcpy(g + 4, ferry_chan_sid(br), SID);
	assert_refused(try_open(br, g, len, &err), err, FERRY_EFINDING,
	    "authentication failed");
	/* Nor, relabelled, on a's own session. */
	assert_refused(try_open(ar, g, len, &err), err, FERRY_EFINDING,
	    "DATA frame is for another session");
	open_ok(ar, f, len, "for a", 5);
	free(g);
	free(f);
	ferry_chan_free(ai);
	ferry_chan_free(ar);
	ferry_chan_free(bi);
	ferry_chan_free(br);
}

static void
test_data_reflection(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t *f, *g;
	size_t flen, glen;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	/* Each side's frame, fed back to itself: other direction, other key. */
	f = seal(ci, "request", 7, &flen);
	g = seal(cr, "reply", 5, &glen);
	assert_refused(try_open(ci, f, flen, &err), err, FERRY_EFINDING,
	    "authentication failed (counter 1)");
	assert_refused(try_open(cr, g, glen, &err), err, FERRY_EFINDING,
	    "authentication failed (counter 1)");
	/* The refusals moved nothing: the genuine frames still open. */
	open_ok(cr, f, flen, "request", 7);
	open_ok(ci, g, glen, "reply", 5);
	/* Reflected again, now as a replay. */
	assert_refused(try_open(ci, g, glen, &err), err, FERRY_EFINDING,
	    "replayed counter 1");
	free(f);
	free(g);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

static void
test_buffer_sizes(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_chan_hdr h;
	struct ferry_err err;
	uint8_t f[HDR + 10 + TAG + 8], out[32];
	size_t outlen = 99;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	/* Seal: one byte short is refused and uses no counter. */
	ferry_err_clear(&err);
	assert_refused(ferry_chan_seal(ci, (const uint8_t *)"0123456789", 10, f,
	                   FERRY_CHAN_SEALED_LEN(10) - 1, &err),
	    err, FERRY_EUSAGE,
	    "output buffer of 53 bytes is too small for a sealed frame of 54");
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_seal(ci, (const uint8_t *)"0123456789", 10,
	                     f, sizeof(f), &err),
	    0);
	assert_int_equal(ferry_chan_peek(f, FERRY_CHAN_SEALED_LEN(10), &h,
	                     &err),
	    0);
	assert_int_equal(h.counter, 1);

	/* Open: one byte short is refused and moves nothing. */
	assert_refused(ferry_chan_open(cr, f, FERRY_CHAN_SEALED_LEN(10), out, 9,
	                   &outlen, &err),
	    err, FERRY_EUSAGE,
	    "output buffer of 9 bytes is too small for a payload of 10");
	assert_int_equal(outlen, 0);
	ferry_err_clear(&err);
	assert_refused(ferry_chan_open(cr, f, FERRY_CHAN_SEALED_LEN(10), NULL,
	                   0, &outlen, &err),
	    err, FERRY_EUSAGE, "too small");
	/* Exactly enough works; a bigger buffer is fine too. */
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_open(cr, f, FERRY_CHAN_SEALED_LEN(10), out,
	                     10, &outlen, &err),
	    0);
	assert_int_equal(outlen, 10);
	assert_memory_equal(out, "0123456789", 10);
	assert_int_equal(ferry_chan_seal(ci, (const uint8_t *)"abc", 3, f,
	                     sizeof(f), &err),
	    0);
	assert_int_equal(ferry_chan_open(cr, f, FERRY_CHAN_SEALED_LEN(3), out,
	                     sizeof(out), &outlen, &err),
	    0);
	assert_int_equal(outlen, 3);
	assert_memory_equal(out, "abc", 3);
	/* An empty payload needs no buffer. */
	assert_int_equal(ferry_chan_seal(ci, NULL, 0, f, HDR + TAG, &err), 0);
	assert_int_equal(ferry_chan_open(cr, f, HDR + TAG, NULL, 0, &outlen,
	                     &err),
	    0);
	assert_int_equal(outlen, 0);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

static void
test_reject_frame(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_chan_hdr h;
	struct ferry_err err;
	uint8_t sid[SID], rej[HDR + 1], want[HDR + 1];
	size_t i;

	(void)state;
	for (i = 0; i < SID; i++)
		sid[i] = (uint8_t)(0xa0 + i);
	ferry_chan_reject(sid, FERRY_CHAN_REJECT_UNKNOWN_SESSION, rej);
	memset(want, 0, sizeof(want));
	want[0] = 1;
	want[1] = 5;
	memcpy(want + 4, sid, SID);
	want[HDR] = 1;
	assert_memory_equal(rej, want, sizeof(want));
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(rej, sizeof(rej), &h, &err), 0);
	assert_int_equal(h.version, FERRY_CHAN_VERSION);
	assert_int_equal(h.type, FERRY_CHAN_REJECT);
	assert_int_equal(h.flags, 0);
	assert_memory_equal(h.sid, sid, SID);
	assert_int_equal(h.counter, 0);

	/* A session never opens one. */
	handshake(agent, coord, &ci, &cr);
	ferry_chan_reject(ferry_chan_sid(ci), FERRY_CHAN_REJECT_MALFORMED, rej);
	assert_int_equal(rej[HDR], 4);
	assert_refused(try_open(ci, rej, sizeof(rej), &err), err,
	    FERRY_EFINDING, "expected a DATA frame, got REJECT (type 5)");
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

static void
test_peek(void **state)
{
	struct ferry_chan_hdr h;
	struct ferry_err err;
	uint8_t f[HDR + 4];
	int t;

	(void)state;
	memset(f, 0, sizeof(f));
	f[0] = 1;
	for (t = 0; t < SID; t++)
		f[4 + t] = (uint8_t)t;
	for (t = 0; t < 8; t++)
		f[20 + t] = (uint8_t)(0x01 + t);
	for (t = 1; t <= 5; t++) {
		f[1] = (uint8_t)t;
		ferry_err_clear(&err);
		assert_int_equal(ferry_chan_peek(f, HDR, &h, &err), 0);
		assert_int_equal(h.type, t);
		assert_int_equal(h.version, 1);
		assert_int_equal(h.flags, 0);
		assert_memory_equal(h.sid, f + 4, SID);
		assert_true(h.counter == UINT64_C(0x0102030405060708));
	}
	assert_int_equal(ferry_chan_peek(f, sizeof(f), NULL, &err), 0);

	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(f, 0, &h, &err), -1);
	assert_string_equal(err.msg,
	    "frame is 0 bytes, shorter than the 28-byte header");
	assert_int_equal(err.code, FERRY_EFINDING);
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(f, HDR - 1, &h, &err), -1);
	assert_string_equal(err.msg,
	    "frame is 27 bytes, shorter than the 28-byte header");

	f[0] = 0;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(f, HDR, &h, &err), -1);
	assert_string_equal(err.msg,
	    "unsupported channel version 0 (this side speaks 1)");
	f[0] = 2;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(f, HDR, &h, &err), -1);
	assert_string_equal(err.msg,
	    "unsupported channel version 2 (this side speaks 1)");
	/* The raw header is still there to pick a REJECT reason from. */
	assert_int_equal(h.version, 2);
	assert_memory_equal(h.sid, f + 4, SID);
	f[0] = 1;

	f[1] = 0;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(f, HDR, &h, &err), -1);
	assert_string_equal(err.msg, "unknown frame type 0");
	f[1] = 6;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(f, HDR, &h, &err), -1);
	assert_string_equal(err.msg, "unknown frame type 6");
	f[1] = 255;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(f, HDR, &h, &err), -1);
	assert_string_equal(err.msg, "unknown frame type 255");
	f[1] = 4;

	f[2] = 0x80;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(f, HDR, &h, &err), -1);
	assert_string_equal(err.msg, "DATA frame has flags 0x8000, expected 0");
	f[2] = 0;
	f[3] = 1;
	ferry_err_clear(&err);
	assert_int_equal(ferry_chan_peek(f, HDR, &h, &err), -1);
	assert_string_equal(err.msg, "DATA frame has flags 0x0001, expected 0");
}

/* A uniform random number in [0, n). */
static size_t
rnd(size_t n)
{
	return (size_t)randombytes_uniform((uint32_t)n);
}

/*
 * 10,000 frames opened in a random order that stays within the window
 * (each is picked among the unopened ones no more than a window above the
 * oldest unopened): every one opens, exactly once.
 */
static void
test_data_shuffled_10000(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t **f, *opened;
	size_t len, n = 10000, lo = 1, done, k, pick;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	f = seal_many(ci, n, &len);
	opened = xcalloc(n + 1, 1);
	for (done = 0; done < n; done++) {
		while (opened[lo])
			lo++;
		do
			pick = lo + rnd(FERRY_CHAN_WINDOW);
		while (pick > n || opened[pick]);
		open_ctr(cr, f, len, pick);
		opened[pick] = 1;
	}
	for (k = 1; k <= n; k++) {
		ferry_err_clear(&err);
		assert_int_not_equal(try_open(cr, f[k], len, &err), 0);
		if (strstr(err.msg, "replayed") == NULL &&
		    strstr(err.msg, "too old") == NULL)
			fail_msg("counter %zu opened twice? %s", k, err.msg);
	}
	free(opened);
	free_many(f, n);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

/*
 * The window against a reference model that keeps every counter ever
 * accepted: random opens of any frame, fresh or old, genuine or forged.
 */
static void
test_data_window_model(void **state)
{
	struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t **f, *accepted, *x;
	size_t len, n = 6000, i, k;
	uint64_t max = 0;
	int want, forged;

	(void)state;
	handshake(agent, coord, &ci, &cr);
	f = seal_many(ci, n, &len);
	accepted = xcalloc(n + 1, 1);
	x = xmalloc(len);
	for (i = 0; i < 40000; i++) {
		/* Mostly near the top, sometimes anywhere. */
		if (rnd(4) == 0 || max < 50)
			k = 1 + rnd(n);
		else
			k = max + 50 - rnd(FERRY_CHAN_WINDOW + 200);
		if (k < 1 || k > n)
			continue;
		forged = rnd(8) == 0;
		memcpy(x, f[k], len);
		if (forged)
			x[HDR + rnd(len - HDR)] ^= (uint8_t)(1u << rnd(8));
		want = !forged && !accepted[k] &&
		    (k > max || max - k < FERRY_CHAN_WINDOW);
		ferry_err_clear(&err);
		if ((try_open(cr, x, len, &err) == 0) != want)
			fail_msg("counter %zu (max %llu, forged %d): model "
			         "says %d, channel: %s",
			    k, (unsigned long long)max, forged, want,
			    err.msg[0] != '\0' ? err.msg : "accepted");
		if (want) {
			accepted[k] = 1;
			if (k > max)
				max = k;
		}
	}
	free(x);
	free(accepted);
	free_many(f, n);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_data),
		cmocka_unit_test(test_conforms_to_spec),
		cmocka_unit_test(test_wrong_pinned_key),
		cmocka_unit_test(test_hs2_bad_signature),
		cmocka_unit_test(test_hs2_every_bit_flip),
		cmocka_unit_test(test_hs3_every_bit_flip),
		cmocka_unit_test(test_hs3_identity_substitution),
		cmocka_unit_test(test_hs2_replayed),
		cmocka_unit_test(test_hs_malformed),
		cmocka_unit_test(test_data_replay_and_order),
		cmocka_unit_test(test_data_window_edges),
		cmocka_unit_test(test_data_big_jump),
		cmocka_unit_test(test_data_counter_zero),
		cmocka_unit_test(test_data_every_bit_flip),
		cmocka_unit_test(test_data_truncated),
		cmocka_unit_test(test_data_other_session),
		cmocka_unit_test(test_data_reflection),
		cmocka_unit_test(test_buffer_sizes),
		cmocka_unit_test(test_reject_frame),
		cmocka_unit_test(test_peek),
		cmocka_unit_test(test_data_shuffled_10000),
		cmocka_unit_test(test_data_window_model),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
