/*
 * channel.h -- the sealed channel between the coordinator and its peers
 * (agents, the CLI): mutual authentication and encryption with libsodium,
 * SIGMA-I style. Transport-free: it turns bytes into frames and back, so
 * it can be unit-tested, fuzzed and carried over any NNG socket.
 * The wire format is specified in docs/wire.md.
 *
 * Every frame starts with a 28-byte header, sent in clear and, for DATA
 * frames, authenticated as AEAD associated data:
 *
 *   0   u8   version      FERRY_CHAN_VERSION
 *   1   u8   type         enum ferry_chan_type
 *   2   u16  flags        0 (big-endian; reserved)
 *   4   16B  session id   0 in HS1; chosen by the responder in HS2
 *   20  u64  counter      big-endian; 0 in handshake frames, from 1 in DATA
 *
 * Handshake (initiator = agent or CLI, responder = coordinator):
 *   HS1 i->r: header | eph_pk_i (32)
 *   HS2 r->i: header(sid) | eph_pk_r (32) | AEAD_k_hs_r(static_pk_r | sig_r)
 *   HS3 i->r: header(sid) | AEAD_k_hs_i(static_pk_i | sig_i)
 * then the responder answers HS3 with a DATA frame (key confirmation).
 * The shared secret comes from crypto_kx over the ephemeral X25519 keys;
 * handshake and data keys per direction are derived with crypto_kdf.
 * sig_r signs SHA-256(HS1 | HS2 up to eph_pk_r | static_pk_r) under the
 * domain "ferry-chan-v1-r"; sig_i signs SHA-256(everything before it, incl.
 * sig_r | static_pk_i) under "ferry-chan-v1-i" (keys.h's domain form), that
 * is SHA-256(HS1 | HS2 up to eph_pk_r | static_pk_r | sig_r | HS3 header |
 * static_pk_i). The handshake AEADs use counter 0 and the handshake key of
 * their direction; their AD is the frame's clear part (HS2: header and
 * eph_pk_r; HS3: header).
 * DATA: header | XChaCha20-Poly1305-IETF(payload), nonce = session id |
 * counter, AD = header. Each direction has its own key and counter; the
 * receiver keeps a sliding replay window of FERRY_CHAN_WINDOW counters.
 *
 * A session is not tied to a connection: it survives reconnects. A sealed
 * request is never resent as the same bytes: retries are sealed anew (a
 * fresh counter), and the application deduplicates by request id.
 *
 * Not thread-safe: callers serialize use of one struct ferry_chan.
 */
#ifndef FERRY_CHANNEL_H
#define FERRY_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "keys.h"

#define FERRY_CHAN_VERSION 1
#define FERRY_CHAN_HDR_LEN 28
#define FERRY_CHAN_SID_LEN 16
#define FERRY_CHAN_TAG_LEN 16 /* crypto_aead_xchacha20poly1305_ietf_ABYTES */
#define FERRY_CHAN_WINDOW 1024
#define FERRY_CHAN_HS1_LEN (FERRY_CHAN_HDR_LEN + 32)
#define FERRY_CHAN_HS2_LEN \
	(FERRY_CHAN_HDR_LEN + 32 + 32 + FERRY_SIG_LEN + FERRY_CHAN_TAG_LEN)
#define FERRY_CHAN_HS3_LEN \
	(FERRY_CHAN_HDR_LEN + 32 + FERRY_SIG_LEN + FERRY_CHAN_TAG_LEN)
/* Size of the DATA frame sealing n payload bytes. */
#define FERRY_CHAN_SEALED_LEN(n) \
	((size_t)(n) + FERRY_CHAN_HDR_LEN + FERRY_CHAN_TAG_LEN)

enum ferry_chan_type {
	FERRY_CHAN_HS1 = 1,
	FERRY_CHAN_HS2 = 2,
	FERRY_CHAN_HS3 = 3,
	FERRY_CHAN_DATA = 4,
	/*
	 * Unauthenticated hint from the responder, body = one u8 reason
	 * (enum ferry_chan_reject). Never trusted for anything but "start a
	 * new handshake" / "give up with this message".
	 */
	FERRY_CHAN_REJECT = 5,
};

enum ferry_chan_reject {
	FERRY_CHAN_REJECT_UNKNOWN_SESSION = 1, /* handshake again */
	FERRY_CHAN_REJECT_VERSION = 2,   /* protocol version unsupported */
	FERRY_CHAN_REJECT_BUSY = 3,      /* too many handshakes; retry */
	FERRY_CHAN_REJECT_MALFORMED = 4, /* frame could not be parsed */
};

struct ferry_chan_hdr {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint8_t sid[FERRY_CHAN_SID_LEN];
	uint64_t counter;
};

struct ferry_chan;      /* an established session */
struct ferry_chan_init; /* initiator between HS1 and HS2 */
struct ferry_chan_resp; /* responder between HS2 and HS3 */

/*
 * Parses the header of any frame. Returns 0, or -1 (with err naming the
 * problem: too short, unknown version, unknown type, nonzero flags). out
 * may be NULL; on failure it still holds the raw fields when len is at
 * least FERRY_CHAN_HDR_LEN (e.g. to pick FERRY_CHAN_REJECT_VERSION).
 */
int ferry_chan_peek(const uint8_t *frame, size_t len,
    struct ferry_chan_hdr *out, struct ferry_err *err);

/*
 * Initiator. me = our static identity; pinned = the only responder key
 * we accept. Writes HS1 (FERRY_CHAN_HS1_LEN bytes) into hs1. me is not
 * copied: it must stay valid until ferry_chan_init_finish or
 * ferry_chan_init_free (HS3 is signed with it); pinned is copied.
 */
int ferry_chan_init_start(const struct ferry_seckey *me,
    const struct ferry_pubkey *pinned, struct ferry_chan_init **out,
    uint8_t hs1[FERRY_CHAN_HS1_LEN], struct ferry_err *err);

/*
 * Initiator: takes HS2, checks the responder is the pinned key and its
 * signature, writes HS3 (FERRY_CHAN_HS3_LEN bytes) and returns the
 * session. The session is usable at once; the responder's first DATA
 * frame confirms it. Any failure is FERRY_EFINDING naming the reason
 * ("coordinator key mismatch: expected ID, got ID", "bad signature", ...).
 * Frees st in every case.
 */
int ferry_chan_init_finish(struct ferry_chan_init *st, const uint8_t *hs2,
    size_t len, uint8_t hs3[FERRY_CHAN_HS3_LEN], struct ferry_chan **out,
    struct ferry_err *err);

void ferry_chan_init_free(struct ferry_chan_init *st);

/*
 * Responder: takes HS1, picks a random session id, writes HS2
 * (FERRY_CHAN_HS2_LEN bytes). The caller keeps *out keyed by the session id
 * (ferry_chan_resp_sid) until HS3 arrives or it expires.
 */
int ferry_chan_resp_start(const struct ferry_seckey *me, const uint8_t *hs1,
    size_t len, struct ferry_chan_resp **out, uint8_t hs2[FERRY_CHAN_HS2_LEN],
    struct ferry_err *err);

const uint8_t *ferry_chan_resp_sid(const struct ferry_chan_resp *st);

/*
 * Responder: takes HS3, checks the initiator's signature and returns the
 * session plus the initiator's static public key (*peer, id filled in,
 * name empty). Whether that key may do anything is the caller's
 * business. Frees st in every case.
 */
int ferry_chan_resp_finish(struct ferry_chan_resp *st, const uint8_t *hs3,
    size_t len, struct ferry_chan **out, struct ferry_pubkey *peer,
    struct ferry_err *err);

void ferry_chan_resp_free(struct ferry_chan_resp *st);

/* The peer's static key and the session id of an established session. */
const struct ferry_pubkey *ferry_chan_peer(const struct ferry_chan *c);
const uint8_t *ferry_chan_sid(const struct ferry_chan *c);

/*
 * Seals a payload into a DATA frame of FERRY_CHAN_SEALED_LEN(len) bytes at
 * out (outsz must be at least that). Uses the next send counter. A too
 * small out is FERRY_EUSAGE and uses no counter.
 */
int ferry_chan_seal(struct ferry_chan *c, const uint8_t *payload, size_t len,
    uint8_t *out, size_t outsz, struct ferry_err *err);

/*
 * Opens a DATA frame: checks header, session id, replay window and tag;
 * writes the payload (len - FERRY_CHAN_HDR_LEN - FERRY_CHAN_TAG_LEN
 * bytes) to out. On any failure nothing changes in the session (a forged
 * frame cannot move the window) and err says why: "replayed counter N",
 * "counter N too old (window ...)", "authentication failed", ...
 * Refusals of the frame are FERRY_EFINDING; an out smaller than the
 * payload is FERRY_EUSAGE. *outlen is 0 on failure.
 */
int ferry_chan_open(struct ferry_chan *c, const uint8_t *frame, size_t len,
    uint8_t *out, size_t outsz, size_t *outlen, struct ferry_err *err);

/* Writes a REJECT frame (FERRY_CHAN_HDR_LEN + 1 bytes) for sid. */
void ferry_chan_reject(const uint8_t sid[FERRY_CHAN_SID_LEN], uint8_t reason,
    uint8_t out[FERRY_CHAN_HDR_LEN + 1]);

/* Wipes and frees; NULL is a no-op. */
void ferry_chan_free(struct ferry_chan *c);

#endif
