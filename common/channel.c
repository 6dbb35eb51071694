/*
 * channel.c -- the sealed channel: a SIGMA-I handshake over ephemeral
 * X25519 with both static Ed25519 keys signing the transcript, then
 * XChaCha20-Poly1305 frames with counter nonces and a sliding replay
 * window. docs/wire.md is the specification; this file follows it.
 *
 * Secrets (ephemeral secret keys, handshake and data keys) live in
 * sodium_malloc'ed state, wiped by sodium_free; stack copies are wiped
 * with sodium_memzero. An allocation of locked memory that fails is an
 * error return, not an abort: handshakes are started by the network, and
 * a flood must not take the coordinator down.
 */
#include "channel.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "hash.h"

#define EPH_LEN crypto_kx_PUBLICKEYBYTES
#define KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
/* What each handshake AEAD carries: static public key || signature. */
#define ID_LEN (FERRY_PUBKEY_LEN + FERRY_SIG_LEN)
/* HS2's clear part: header || eph_pk_r. */
#define HS2_CLEAR_LEN (FERRY_CHAN_HDR_LEN + EPH_LEN)
/* HS1 | HS2 up to eph_pk_r | static_pk_r | sig_r. */
#define TRANSCRIPT_R_LEN (FERRY_CHAN_HS1_LEN + HS2_CLEAR_LEN + ID_LEN)

#define DOMAIN_R "ferry-chan-v1-r"
#define DOMAIN_I "ferry-chan-v1-i"
/* crypto_kdf context (8 bytes) and subkey ids. */
#define KDF_CONTEXT "ferrychn"
enum {
	SUBKEY_HS_I2R = 1,
	SUBKEY_HS_R2I = 2,
	SUBKEY_DATA_I2R = 3,
	SUBKEY_DATA_R2I = 4
};

#define WINDOW_WORDS (FERRY_CHAN_WINDOW / 64)

struct ferry_chan {
	struct ferry_pubkey peer;
	uint8_t sid[FERRY_CHAN_SID_LEN];
	uint8_t tx[KEY_LEN]; /* data key of our direction */
	uint8_t rx[KEY_LEN]; /* data key of the peer's direction */
	uint64_t send_ctr;   /* last counter sealed; 0 = none yet */
	uint64_t recv_max;   /* highest counter opened; 0 = none yet */
	/* Bit (c % FERRY_CHAN_WINDOW) set: counter c was opened. */
	uint64_t seen[WINDOW_WORDS];
};

struct ferry_chan_init {
	const struct ferry_seckey *me;
	struct ferry_pubkey pinned;
	uint8_t eph_pk[EPH_LEN];
	uint8_t eph_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t hs1[FERRY_CHAN_HS1_LEN];
};

struct ferry_chan_resp {
	uint8_t sid[FERRY_CHAN_SID_LEN];
	uint8_t hs_i2r[KEY_LEN];
	uint8_t data_i2r[KEY_LEN];
	uint8_t data_r2i[KEY_LEN];
	uint8_t transcript[TRANSCRIPT_R_LEN];
};

static_assert(FERRY_CHAN_WINDOW % 64 == 0, "window is whole words");
static_assert(FERRY_CHAN_TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES,
    "tag length");
static_assert(FERRY_CHAN_SID_LEN + 8 == NONCE_LEN, "nonce = sid | counter");
static_assert(FERRY_CHAN_HS1_LEN == FERRY_CHAN_HDR_LEN + EPH_LEN, "HS1");
static_assert(FERRY_CHAN_HS2_LEN == HS2_CLEAR_LEN + ID_LEN + FERRY_CHAN_TAG_LEN,
    "HS2");
static_assert(FERRY_CHAN_HS3_LEN ==
        FERRY_CHAN_HDR_LEN + ID_LEN + FERRY_CHAN_TAG_LEN,
    "HS3");

/* sodium_malloc'ed and zeroed, or NULL with err set. */
static void *
secret_alloc(size_t n, struct ferry_err *err)
{
	void *p;

	if (ferry_crypto_init() != 0) {
		ferry_errf(err, FERRY_EOPER, "cannot initialise libsodium");
		return NULL;
	}
	p = sodium_malloc(n);
	if (p == NULL) {
		ferry_errf(err, FERRY_EOPER,
		    "cannot allocate %zu bytes of locked memory for a channel",
		    n);
		return NULL;
	}
	sodium_memzero(p, n);
	return p;
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
put_hdr(uint8_t *p, uint8_t type, const uint8_t *sid, uint64_t counter)
{
	p[0] = FERRY_CHAN_VERSION;
	p[1] = type;
	p[2] = 0;
	p[3] = 0;
	if (sid != NULL)
		memcpy(p + 4, sid, FERRY_CHAN_SID_LEN);
	else
		memset(p + 4, 0, FERRY_CHAN_SID_LEN);
	put_u64(p + 20, counter);
}

static void
make_nonce(uint8_t nonce[NONCE_LEN], const uint8_t *sid, uint64_t counter)
{
	memcpy(nonce, sid, FERRY_CHAN_SID_LEN);
	put_u64(nonce + FERRY_CHAN_SID_LEN, counter);
}

static const char *
type_name(unsigned t)
{
	switch (t) {
	case FERRY_CHAN_HS1:
		return "HS1";
	case FERRY_CHAN_HS2:
		return "HS2";
	case FERRY_CHAN_HS3:
		return "HS3";
	case FERRY_CHAN_DATA:
		return "DATA";
	case FERRY_CHAN_REJECT:
		return "REJECT";
	}
	return "unknown";
}

static const char *
reject_name(unsigned reason)
{
	switch (reason) {
	case FERRY_CHAN_REJECT_UNKNOWN_SESSION:
		return "unknown session";
	case FERRY_CHAN_REJECT_VERSION:
		return "protocol version unsupported";
	case FERRY_CHAN_REJECT_BUSY:
		return "busy, retry later";
	case FERRY_CHAN_REJECT_MALFORMED:
		return "malformed frame";
	}
	return "unknown reason";
}

static int
is_zero(const uint8_t *p, size_t n)
{
	return sodium_is_zero(p, n) == 1;
}

int
ferry_chan_peek(const uint8_t *frame, size_t len, struct ferry_chan_hdr *out,
    struct ferry_err *err)
{
	struct ferry_chan_hdr h;

	memset(&h, 0, sizeof(h));
	if (out != NULL)
		*out = h;
	if (len < FERRY_CHAN_HDR_LEN) {
		ferry_errf(err, FERRY_EFINDING,
		    "frame is %zu bytes, shorter than the %d-byte header", len,
		    FERRY_CHAN_HDR_LEN);
		return -1;
	}
	h.version = frame[0];
	h.type = frame[1];
	h.flags = (uint16_t)(frame[2] << 8 | frame[3]);
	memcpy(h.sid, frame + 4, FERRY_CHAN_SID_LEN);
	h.counter = get_u64(frame + 20);
	/* The raw fields, so that a responder can pick a REJECT reason. */
	if (out != NULL)
		*out = h;
	if (h.version != FERRY_CHAN_VERSION) {
		ferry_errf(err, FERRY_EFINDING,
		    "unsupported channel version %u (this side speaks %d)",
		    h.version, FERRY_CHAN_VERSION);
		return -1;
	}
	if (h.type < FERRY_CHAN_HS1 || h.type > FERRY_CHAN_REJECT) {
		ferry_errf(err, FERRY_EFINDING, "unknown frame type %u",
		    h.type);
		return -1;
	}
	if (h.flags != 0) {
		ferry_errf(err, FERRY_EFINDING,
		    "%s frame has flags 0x%04x, expected 0", type_name(h.type),
		    h.flags);
		return -1;
	}
	return 0;
}

/*
 * Checks a handshake frame: header valid, of type want, exactly explen
 * bytes, counter 0. A REJECT is reported with its reason. Returns 0 or
 * FERRY_EFINDING.
 */
static int
check_hs(const uint8_t *frame, size_t len, uint8_t want, size_t explen,
    struct ferry_chan_hdr *h, struct ferry_err *err)
{
	struct ferry_err perr;

	ferry_err_clear(&perr);
	if (ferry_chan_peek(frame, len, h, &perr) != 0)
		return ferry_errf(err, FERRY_EFINDING, "bad %s: %s",
		    type_name(want), perr.msg);
	if (h->type == FERRY_CHAN_REJECT && len == FERRY_CHAN_HDR_LEN + 1)
		return ferry_errf(err, FERRY_EFINDING,
		    "handshake rejected by the peer: %s (reason %u)",
		    reject_name(frame[FERRY_CHAN_HDR_LEN]),
		    frame[FERRY_CHAN_HDR_LEN]);
	if (h->type != want)
		return ferry_errf(err, FERRY_EFINDING,
		    "expected an %s frame, got %s (type %u)", type_name(want),
		    type_name(h->type), h->type);
	if (len != explen)
		return ferry_errf(err, FERRY_EFINDING,
		    "%s frame is %zu bytes, expected %zu", type_name(want), len,
		    explen);
	if (h->counter != 0)
		return ferry_errf(err, FERRY_EFINDING,
		    "%s frame has counter %llu, expected 0", type_name(want),
		    (unsigned long long)h->counter);
	return 0;
}

/* Derives the handshake or data key of one direction from its kx key. */
static void
derive(uint8_t out[KEY_LEN], uint64_t subkey,
    const uint8_t master[crypto_kx_SESSIONKEYBYTES])
{
	static_assert(crypto_kx_SESSIONKEYBYTES == crypto_kdf_KEYBYTES,
	    "kx keys are kdf master keys");
	crypto_kdf_derive_from_key(out, KEY_LEN, subkey, KDF_CONTEXT, master);
}

/* A fresh session; NULL with err set. */
static struct ferry_chan *
chan_new(const uint8_t *sid, const uint8_t *tx, const uint8_t *rx,
    const struct ferry_pubkey *peer, struct ferry_err *err)
{
	struct ferry_chan *c = secret_alloc(sizeof(*c), err);

	if (c == NULL)
		return NULL;
	c->peer = *peer;
	memcpy(c->sid, sid, FERRY_CHAN_SID_LEN);
	memcpy(c->tx, tx, KEY_LEN);
	memcpy(c->rx, rx, KEY_LEN);
	return c;
}

/* ---- initiator ---- */

int
ferry_chan_init_start(const struct ferry_seckey *me,
    const struct ferry_pubkey *pinned, struct ferry_chan_init **out,
    uint8_t hs1[FERRY_CHAN_HS1_LEN], struct ferry_err *err)
{
	struct ferry_chan_init *st;

	assert(me != NULL && pinned != NULL && out != NULL && hs1 != NULL);
	*out = NULL;
	st = secret_alloc(sizeof(*st), err);
	if (st == NULL)
		return FERRY_EOPER;
	st->me = me;
	st->pinned = *pinned;
	crypto_kx_keypair(st->eph_pk, st->eph_sk);
	put_hdr(st->hs1, FERRY_CHAN_HS1, NULL, 0);
	memcpy(st->hs1 + FERRY_CHAN_HDR_LEN, st->eph_pk, EPH_LEN);
	memcpy(hs1, st->hs1, FERRY_CHAN_HS1_LEN);
	*out = st;
	return 0;
}

void
ferry_chan_init_free(struct ferry_chan_init *st)
{
	if (st != NULL)
		sodium_free(st);
}

int
ferry_chan_init_finish(struct ferry_chan_init *st, const uint8_t *hs2,
    size_t len, uint8_t hs3[FERRY_CHAN_HS3_LEN], struct ferry_chan **out,
    struct ferry_err *err)
{
	const struct ferry_pubkey *mine;
	struct ferry_chan_hdr h;
	struct ferry_pubkey got;
	crypto_hash_sha256_state ts;
	uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
	uint8_t hs_key[KEY_LEN], data_tx[KEY_LEN], data_rx[KEY_LEN];
	uint8_t nonce[NONCE_LEN], id[ID_LEN], digest[FERRY_SHA256_LEN];
	uint8_t frame[FERRY_CHAN_HS3_LEN];
	int rc;

	assert(st != NULL && hs3 != NULL && out != NULL);
	*out = NULL;
	rc = check_hs(hs2, len, FERRY_CHAN_HS2, FERRY_CHAN_HS2_LEN, &h, err);
	if (rc != 0)
		goto out;
	if (is_zero(h.sid, FERRY_CHAN_SID_LEN)) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "HS2 frame has an all-zero session id");
		goto out;
	}
	/* Initiator = kx client: tx is the i2r key, rx the r2i key. */
	if (crypto_kx_client_session_keys(rx, tx, st->eph_pk, st->eph_sk,
	        hs2 + FERRY_CHAN_HDR_LEN) != 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "HS2 carries an unusable ephemeral key");
		goto out;
	}
	derive(hs_key, SUBKEY_HS_R2I, rx);
	make_nonce(nonce, h.sid, 0);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(id, NULL, NULL,
	        hs2 + HS2_CLEAR_LEN, ID_LEN + FERRY_CHAN_TAG_LEN, hs2,
	        HS2_CLEAR_LEN, nonce, hs_key) != 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "HS2 does not authenticate: not an answer to this "
		    "handshake, or damaged");
		goto out;
	}
	/* Whose key it is comes first: nothing else matters otherwise. */
	if (sodium_memcmp(id, st->pinned.pk, FERRY_PUBKEY_LEN) != 0) {
		memset(&got, 0, sizeof(got));
		memcpy(got.pk, id, FERRY_PUBKEY_LEN);
		ferry_key_id(got.pk, got.id);
		rc = ferry_errf(err, FERRY_EFINDING,
		    "coordinator key mismatch: expected %s, got %s",
		    st->pinned.id, got.id);
		goto out;
	}
	crypto_hash_sha256_init(&ts);
	crypto_hash_sha256_update(&ts, st->hs1, FERRY_CHAN_HS1_LEN);
	crypto_hash_sha256_update(&ts, hs2, HS2_CLEAR_LEN);
	crypto_hash_sha256_update(&ts, id, FERRY_PUBKEY_LEN);
	{
		crypto_hash_sha256_state tr = ts;

		crypto_hash_sha256_final(&tr, digest);
	}
	if (ferry_pubkey_verify(&st->pinned, DOMAIN_R, digest,
	        id + FERRY_PUBKEY_LEN) != 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "bad signature in HS2 from coordinator %s", st->pinned.id);
		goto out;
	}

	/* HS3: header | AEAD(static_pk_i | sig_i over everything so far). */
	mine = ferry_seckey_public(st->me);
	put_hdr(frame, FERRY_CHAN_HS3, h.sid, 0);
	crypto_hash_sha256_update(&ts, id + FERRY_PUBKEY_LEN, FERRY_SIG_LEN);
	crypto_hash_sha256_update(&ts, frame, FERRY_CHAN_HDR_LEN);
	crypto_hash_sha256_update(&ts, mine->pk, FERRY_PUBKEY_LEN);
	crypto_hash_sha256_final(&ts, digest);
	memcpy(id, mine->pk, FERRY_PUBKEY_LEN);
	ferry_seckey_sign(st->me, DOMAIN_I, digest, id + FERRY_PUBKEY_LEN);
	derive(hs_key, SUBKEY_HS_I2R, tx);
	crypto_aead_xchacha20poly1305_ietf_encrypt(frame + FERRY_CHAN_HDR_LEN,
	    NULL, id, ID_LEN, frame, FERRY_CHAN_HDR_LEN, NULL, nonce, hs_key);

	derive(data_tx, SUBKEY_DATA_I2R, tx);
	derive(data_rx, SUBKEY_DATA_R2I, rx);
	*out = chan_new(h.sid, data_tx, data_rx, &st->pinned, err);
	if (*out == NULL) {
		rc = FERRY_EOPER;
		goto out;
	}
	memcpy(hs3, frame, FERRY_CHAN_HS3_LEN);
	rc = 0;
out:
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
	sodium_memzero(hs_key, sizeof(hs_key));
	sodium_memzero(data_tx, sizeof(data_tx));
	sodium_memzero(data_rx, sizeof(data_rx));
	ferry_chan_init_free(st);
	return rc;
}

/* ---- responder ---- */

int
ferry_chan_resp_start(const struct ferry_seckey *me, const uint8_t *hs1,
    size_t len, struct ferry_chan_resp **out, uint8_t hs2[FERRY_CHAN_HS2_LEN],
    struct ferry_err *err)
{
	const struct ferry_pubkey *mine;
	struct ferry_chan_resp *st = NULL;
	struct ferry_chan_hdr h;
	uint8_t eph_pk[EPH_LEN], eph_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
	uint8_t hs_key[KEY_LEN], nonce[NONCE_LEN], digest[FERRY_SHA256_LEN];
	uint8_t frame[FERRY_CHAN_HS2_LEN];
	uint8_t *t;
	int rc;

	assert(me != NULL && out != NULL && hs2 != NULL);
	*out = NULL;
	rc = check_hs(hs1, len, FERRY_CHAN_HS1, FERRY_CHAN_HS1_LEN, &h, err);
	if (rc != 0)
		return rc;
	if (!is_zero(h.sid, FERRY_CHAN_SID_LEN))
		return ferry_errf(err, FERRY_EFINDING,
		    "HS1 frame has a session id, expected zeros");
	st = secret_alloc(sizeof(*st), err);
	if (st == NULL)
		return FERRY_EOPER;
	crypto_kx_keypair(eph_pk, eph_sk);
	/* Responder = kx server: rx is the i2r key, tx the r2i key. */
	if (crypto_kx_server_session_keys(rx, tx, eph_pk, eph_sk,
	        hs1 + FERRY_CHAN_HDR_LEN) != 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "HS1 carries an unusable ephemeral key");
		goto out;
	}
	do
		randombytes_buf(st->sid, sizeof(st->sid));
	while (is_zero(st->sid, sizeof(st->sid)));

	/* Transcript: HS1 | HS2 header | eph_pk_r | static_pk_r | sig_r. */
	mine = ferry_seckey_public(me);
	t = st->transcript;
	memcpy(t, hs1, FERRY_CHAN_HS1_LEN);
	t += FERRY_CHAN_HS1_LEN;
	put_hdr(t, FERRY_CHAN_HS2, st->sid, 0);
	memcpy(t + FERRY_CHAN_HDR_LEN, eph_pk, EPH_LEN);
	t += HS2_CLEAR_LEN;
	memcpy(t, mine->pk, FERRY_PUBKEY_LEN);
	ferry_sha256(st->transcript, TRANSCRIPT_R_LEN - FERRY_SIG_LEN, digest);
	ferry_seckey_sign(me, DOMAIN_R, digest, t + FERRY_PUBKEY_LEN);

	memcpy(frame, st->transcript + FERRY_CHAN_HS1_LEN, HS2_CLEAR_LEN);
	derive(hs_key, SUBKEY_HS_R2I, tx);
	make_nonce(nonce, st->sid, 0);
	crypto_aead_xchacha20poly1305_ietf_encrypt(frame + HS2_CLEAR_LEN, NULL,
	    t, ID_LEN, frame, HS2_CLEAR_LEN, NULL, nonce, hs_key);

	derive(st->hs_i2r, SUBKEY_HS_I2R, rx);
	derive(st->data_i2r, SUBKEY_DATA_I2R, rx);
	derive(st->data_r2i, SUBKEY_DATA_R2I, tx);
	memcpy(hs2, frame, FERRY_CHAN_HS2_LEN);
	*out = st;
	st = NULL;
	rc = 0;
out:
	sodium_memzero(eph_sk, sizeof(eph_sk));
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
	sodium_memzero(hs_key, sizeof(hs_key));
	ferry_chan_resp_free(st);
	return rc;
}

const uint8_t *
ferry_chan_resp_sid(const struct ferry_chan_resp *st)
{
	return st->sid;
}

void
ferry_chan_resp_free(struct ferry_chan_resp *st)
{
	if (st != NULL)
		sodium_free(st);
}

int
ferry_chan_resp_finish(struct ferry_chan_resp *st, const uint8_t *hs3,
    size_t len, struct ferry_chan **out, struct ferry_pubkey *peer,
    struct ferry_err *err)
{
	struct ferry_chan_hdr h;
	struct ferry_pubkey pk;
	crypto_hash_sha256_state ts;
	uint8_t nonce[NONCE_LEN], id[ID_LEN], digest[FERRY_SHA256_LEN];
	int rc;

	assert(st != NULL && out != NULL && peer != NULL);
	*out = NULL;
	memset(peer, 0, sizeof(*peer));
	memset(&pk, 0, sizeof(pk));
	rc = check_hs(hs3, len, FERRY_CHAN_HS3, FERRY_CHAN_HS3_LEN, &h, err);
	if (rc != 0)
		goto out;
	if (sodium_memcmp(h.sid, st->sid, FERRY_CHAN_SID_LEN) != 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "HS3 frame is for another session");
		goto out;
	}
	make_nonce(nonce, st->sid, 0);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(id, NULL, NULL,
	        hs3 + FERRY_CHAN_HDR_LEN, ID_LEN + FERRY_CHAN_TAG_LEN, hs3,
	        FERRY_CHAN_HDR_LEN, nonce, st->hs_i2r) != 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "HS3 does not authenticate: not an answer to this "
		    "handshake, or damaged");
		goto out;
	}
	memcpy(pk.pk, id, FERRY_PUBKEY_LEN);
	ferry_key_id(pk.pk, pk.id);
	crypto_hash_sha256_init(&ts);
	crypto_hash_sha256_update(&ts, st->transcript, TRANSCRIPT_R_LEN);
	crypto_hash_sha256_update(&ts, hs3, FERRY_CHAN_HDR_LEN);
	crypto_hash_sha256_update(&ts, pk.pk, FERRY_PUBKEY_LEN);
	crypto_hash_sha256_final(&ts, digest);
	if (ferry_pubkey_verify(&pk, DOMAIN_I, digest, id + FERRY_PUBKEY_LEN) !=
	    0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "bad signature in HS3 from key %s", pk.id);
		goto out;
	}
	*out = chan_new(st->sid, st->data_r2i, st->data_i2r, &pk, err);
	if (*out == NULL) {
		rc = FERRY_EOPER;
		goto out;
	}
	*peer = pk;
	rc = 0;
out:
	ferry_chan_resp_free(st);
	return rc;
}

/* ---- established sessions ---- */

const struct ferry_pubkey *
ferry_chan_peer(const struct ferry_chan *c)
{
	return &c->peer;
}

const uint8_t *
ferry_chan_sid(const struct ferry_chan *c)
{
	return c->sid;
}

int
ferry_chan_seal(struct ferry_chan *c, const uint8_t *payload, size_t len,
    uint8_t *out, size_t outsz, struct ferry_err *err)
{
	uint8_t nonce[NONCE_LEN];
	uint64_t ctr;

	assert(c != NULL && out != NULL && (payload != NULL || len == 0));
	if (len > SIZE_MAX - FERRY_CHAN_HDR_LEN - FERRY_CHAN_TAG_LEN ||
	    len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
		return ferry_errf(err, FERRY_EUSAGE,
		    "payload of %zu bytes is too large to seal", len);
	if (outsz < FERRY_CHAN_SEALED_LEN(len))
		return ferry_errf(err, FERRY_EUSAGE,
		    "output buffer of %zu bytes is too small for a sealed "
		    "frame of %zu",
		    outsz, FERRY_CHAN_SEALED_LEN(len));
	if (c->send_ctr == UINT64_MAX)
		return ferry_errf(err, FERRY_EOPER,
		    "send counter exhausted: start a new session");
	ctr = c->send_ctr + 1;
	put_hdr(out, FERRY_CHAN_DATA, c->sid, ctr);
	make_nonce(nonce, c->sid, ctr);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + FERRY_CHAN_HDR_LEN,
	    NULL, payload, len, out, FERRY_CHAN_HDR_LEN, NULL, nonce, c->tx);
	c->send_ctr = ctr;
	return 0;
}

static int
seen_get(const struct ferry_chan *c, uint64_t ctr)
{
	unsigned bit = (unsigned)(ctr % FERRY_CHAN_WINDOW);

	return (c->seen[bit / 64] >> (bit % 64)) & 1;
}

static void
seen_set(struct ferry_chan *c, uint64_t ctr, int on)
{
	unsigned bit = (unsigned)(ctr % FERRY_CHAN_WINDOW);
	uint64_t mask = (uint64_t)1 << (bit % 64);

	if (on)
		c->seen[bit / 64] |= mask;
	else
		c->seen[bit / 64] &= ~mask;
}

/* Records counter ctr as opened, sliding the window forward if needed. */
static void
window_accept(struct ferry_chan *c, uint64_t ctr)
{
	uint64_t k;

	if (ctr > c->recv_max) {
		if (ctr - c->recv_max >= FERRY_CHAN_WINDOW)
			memset(c->seen, 0, sizeof(c->seen));
		else
			/* The slots of max+1..ctr held counters now too old. */
			for (k = c->recv_max + 1; k <= ctr; k++)
				seen_set(c, k, 0);
		c->recv_max = ctr;
	}
	seen_set(c, ctr, 1);
}

int
ferry_chan_open(struct ferry_chan *c, const uint8_t *frame, size_t len,
    uint8_t *out, size_t outsz, size_t *outlen, struct ferry_err *err)
{
	struct ferry_chan_hdr h;
	uint8_t nonce[NONCE_LEN];
	size_t plen;

	assert(c != NULL && outlen != NULL);
	*outlen = 0;
	if (ferry_chan_peek(frame, len, &h, err) != 0)
		return FERRY_EFINDING;
	if (h.type != FERRY_CHAN_DATA)
		return ferry_errf(err, FERRY_EFINDING,
		    "expected a DATA frame, got %s (type %u)",
		    type_name(h.type), h.type);
	if (len < FERRY_CHAN_HDR_LEN + FERRY_CHAN_TAG_LEN)
		return ferry_errf(err, FERRY_EFINDING,
		    "DATA frame is %zu bytes, shorter than header and tag "
		    "(%d)",
		    len, FERRY_CHAN_HDR_LEN + FERRY_CHAN_TAG_LEN);
	if (sodium_memcmp(h.sid, c->sid, FERRY_CHAN_SID_LEN) != 0)
		return ferry_errf(err, FERRY_EFINDING,
		    "DATA frame is for another session");
	if (h.counter == 0)
		return ferry_errf(err, FERRY_EFINDING,
		    "DATA frame has counter 0");
	if (h.counter <= c->recv_max &&
	    c->recv_max - h.counter >= FERRY_CHAN_WINDOW)
		return ferry_errf(err, FERRY_EFINDING,
		    "counter %llu too old (window %llu-%llu)",
		    (unsigned long long)h.counter,
		    (unsigned long long)(c->recv_max - FERRY_CHAN_WINDOW + 1),
		    (unsigned long long)c->recv_max);
	if (h.counter <= c->recv_max && seen_get(c, h.counter))
		return ferry_errf(err, FERRY_EFINDING, "replayed counter %llu",
		    (unsigned long long)h.counter);
	plen = len - FERRY_CHAN_HDR_LEN - FERRY_CHAN_TAG_LEN;
	if (outsz < plen || (out == NULL && plen > 0))
		return ferry_errf(err, FERRY_EUSAGE,
		    "output buffer of %zu bytes is too small for a payload of "
		    "%zu",
		    outsz, plen);
	make_nonce(nonce, c->sid, h.counter);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL,
	        frame + FERRY_CHAN_HDR_LEN, plen,
	        frame + len - FERRY_CHAN_TAG_LEN, frame, FERRY_CHAN_HDR_LEN,
	        nonce, c->rx) != 0) {
		if (plen > 0)
			sodium_memzero(out, plen);
		return ferry_errf(err, FERRY_EFINDING,
		    "authentication failed (counter %llu)",
		    (unsigned long long)h.counter);
	}
	/* Only now, with the tag verified, may the window move. */
	window_accept(c, h.counter);
	*outlen = plen;
	return 0;
}

void
ferry_chan_reject(const uint8_t sid[FERRY_CHAN_SID_LEN], uint8_t reason,
    uint8_t out[FERRY_CHAN_HDR_LEN + 1])
{
	put_hdr(out, FERRY_CHAN_REJECT, sid, 0);
	out[FERRY_CHAN_HDR_LEN] = reason;
}

void
ferry_chan_free(struct ferry_chan *c)
{
	/* sodium_free wipes the whole allocation before unmapping it. */
	if (c != NULL)
		sodium_free(c);
}
