/*
 * fuzz_chan_open.c -- the sealed channel (common/channel.c) against
 * arbitrary frames. The low bits of the first input byte pick a mode; the
 * rest is the frame, a mask or a script:
 *
 *   0  ferry_chan_peek on the bytes
 *   1  ferry_chan_open on an established session
 *   2  ferry_chan_resp_start on the bytes as HS1
 *   3  ferry_chan_init_finish on the bytes as HS2 (fresh initiator)
 *   4  ferry_chan_resp_finish on the bytes as HS3 (fresh responder)
 *   5  a real handshake with the bytes XORed into HS2, then into HS3
 *   6  a script of seals and opens (genuine, flipped, truncated) on a
 *      fresh session, checked against a model of the replay window
 *
 * In modes 1 and 4 the high bit of the first byte writes the session's
 * real id into the frame, so that the fuzzer gets past the id check.
 *
 * Oracles: peek accepts exactly the well-formed headers and reports what
 * they say; raw bytes never open, never finish a handshake, and a refusal
 * never moves the window (a genuine frame still opens afterwards); only an
 * unmasked handshake completes; every open in a script is accepted
 * exactly when the model says so, with the payload that was sealed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "fuzz_common.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longest input looked at: scripts and masks need no more. */
#define MAX_INPUT 4096
/* Frames a script keeps, by slot. */
#define SLOTS 64
#define PAYLOAD_MAX 40

#define COORD FUZZ_KEY_BOB
#define AGENT FUZZ_KEY_ALICE

static void
refused(int rc, const struct ferry_err *err, const char *what)
{
	if (rc == 0)
		fuzz_fail("%s accepted arbitrary bytes", what);
	if (rc != FERRY_EFINDING && rc != FERRY_EUSAGE)
		fuzz_fail("%s returned %d: %s", what, rc, err->msg);
	if (err->code != rc || err->msg[0] == '\0')
		fuzz_fail("%s refused without a message", what);
}

/* A full handshake; aborts if it fails. */
static void
handshake(struct ferry_chan **ci, struct ferry_chan **cr)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN];
	uint8_t hs3[FERRY_CHAN_HS3_LEN];

	ferry_err_clear(&err);
	if (ferry_chan_init_start(fuzz_key(AGENT), fuzz_pub(COORD), &is, hs1,
	        &err) != 0 ||
	    ferry_chan_resp_start(fuzz_key(COORD), hs1, sizeof(hs1), &rs, hs2,
	        &err) != 0 ||
	    ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, ci, &err) != 0 ||
	    ferry_chan_resp_finish(rs, hs3, sizeof(hs3), cr, &peer, &err) != 0)
		fuzz_fail("handshake failed: %s", err.msg);
}

/* Seals payload on from and opens it on to; aborts unless it works. */
static void
round_trip(struct ferry_chan *from, struct ferry_chan *to)
{
	static const uint8_t msg[] = "still works";
	uint8_t f[FERRY_CHAN_SEALED_LEN(sizeof(msg))], out[sizeof(msg)];
	struct ferry_err err;
	size_t n = 0;

	ferry_err_clear(&err);
	if (ferry_chan_seal(from, msg, sizeof(msg), f, sizeof(f), &err) != 0 ||
	    ferry_chan_open(to, f, sizeof(f), out, sizeof(out), &n, &err) != 0)
		fuzz_fail("a genuine frame no longer opens: %s", err.msg);
	if (n != sizeof(msg) || memcmp(out, msg, n) != 0)
		fuzz_fail("a genuine frame opened to other bytes");
}

static void
mode_peek(const uint8_t *d, size_t n)
{
	struct ferry_chan_hdr h;
	struct ferry_err err;
	int ok;

	ferry_err_clear(&err);
	ok = n >= FERRY_CHAN_HDR_LEN && d[0] == FERRY_CHAN_VERSION &&
	    d[1] >= 1 && d[1] <= 5 && d[2] == 0 && d[3] == 0;
	if (ferry_chan_peek(d, n, &h, &err) != 0) {
		if (ok)
			fuzz_fail("peek refused a good header: %s", err.msg);
		if (err.code != FERRY_EFINDING || err.msg[0] == '\0')
			fuzz_fail("peek refused without a message");
		return;
	}
	if (!ok)
		fuzz_fail("peek accepted a bad header");
	if (h.version != d[0] || h.type != d[1] || h.flags != 0 ||
	    memcmp(h.sid, d + 4, FERRY_CHAN_SID_LEN) != 0 ||
	    (h.counter >> 56) != d[20] || (h.counter & 0xff) != d[27])
		fuzz_fail("peek misread the header");
}

static void
mode_open(const uint8_t *d, size_t n, int use_sid)
{
	static struct ferry_chan *ci, *cr;
	struct ferry_err err;
	uint8_t *f, *out;
	size_t outlen = 0;

	if (cr == NULL)
		handshake(&ci, &cr);
	f = xmalloc(n > 0 ? n : 1);
	memcpy(f, d, n);
	if (use_sid && n >= FERRY_CHAN_HDR_LEN)
		memcpy(f + 4, ferry_chan_sid(cr), FERRY_CHAN_SID_LEN);
	out = xmalloc(n > 0 ? n : 1);
	ferry_err_clear(&err);
	refused(ferry_chan_open(cr, f, n, out, n, &outlen, &err), &err,
	    "ferry_chan_open");
	if (outlen != 0)
		fuzz_fail("a refused frame has a payload length");
	round_trip(ci, cr);
	free(out);
	free(f);
}

static void
mode_resp_start(const uint8_t *d, size_t n)
{
	struct ferry_chan_resp *rs = NULL;
	struct ferry_err err;
	uint8_t hs2[FERRY_CHAN_HS2_LEN];
	int rc;

	ferry_err_clear(&err);
	rc = ferry_chan_resp_start(fuzz_key(COORD), d, n, &rs, hs2, &err);
	if (rc != 0) {
		refused(rc, &err, "ferry_chan_resp_start");
		if (rs != NULL)
			fuzz_fail("a refused HS1 left a state");
		return;
	}
	/* Anyone may start a handshake, but only with a well-formed HS1. */
	if (n != FERRY_CHAN_HS1_LEN || d[0] != FERRY_CHAN_VERSION ||
	    d[1] != FERRY_CHAN_HS1 || d[2] != 0 || d[3] != 0)
		fuzz_fail("resp_start accepted a malformed HS1");
	{
		static const uint8_t zero[24];

		if (memcmp(d + 4, zero, 24) != 0)
			fuzz_fail("resp_start accepted an HS1 with a session "
			          "id or counter");
	}
	fuzz_consume(fuzz_touch(hs2, sizeof(hs2)) +
	    fuzz_touch(ferry_chan_resp_sid(rs), FERRY_CHAN_SID_LEN));
	ferry_chan_resp_free(rs);
}

static void
mode_init_finish(const uint8_t *d, size_t n)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan *c = NULL;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs3[FERRY_CHAN_HS3_LEN];

	ferry_err_clear(&err);
	if (ferry_chan_init_start(fuzz_key(AGENT), fuzz_pub(COORD), &is, hs1,
	        &err) != 0)
		fuzz_fail("init_start failed: %s", err.msg);
	refused(ferry_chan_init_finish(is, d, n, hs3, &c, &err), &err,
	    "ferry_chan_init_finish");
	if (c != NULL)
		fuzz_fail("a refused HS2 left a session");
}

static void
mode_resp_finish(const uint8_t *d, size_t n, int use_sid)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_chan *c = NULL;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN], *f;

	ferry_err_clear(&err);
	if (ferry_chan_init_start(fuzz_key(AGENT), fuzz_pub(COORD), &is, hs1,
	        &err) != 0 ||
	    ferry_chan_resp_start(fuzz_key(COORD), hs1, sizeof(hs1), &rs, hs2,
	        &err) != 0)
		fuzz_fail("handshake start failed: %s", err.msg);
	ferry_chan_init_free(is);
	f = xmalloc(n > 0 ? n : 1);
	memcpy(f, d, n);
	if (use_sid && n >= FERRY_CHAN_HDR_LEN)
		memcpy(f + 4, ferry_chan_resp_sid(rs), FERRY_CHAN_SID_LEN);
	refused(ferry_chan_resp_finish(rs, f, n, &c, &peer, &err), &err,
	    "ferry_chan_resp_finish");
	if (c != NULL)
		fuzz_fail("a refused HS3 left a session");
	free(f);
}

/* XORs mask (as much as there is) into buf; returns 1 if it changed. */
static int
apply_mask(uint8_t *buf, size_t len, const uint8_t *mask, size_t masklen)
{
	size_t i;
	int changed = 0;

	for (i = 0; i < len && i < masklen; i++) {
		buf[i] ^= mask[i];
		changed |= mask[i] != 0;
	}
	return changed;
}

static void
mode_handshake(const uint8_t *d, size_t n)
{
	struct ferry_chan_init *is = NULL;
	struct ferry_chan_resp *rs = NULL;
	struct ferry_chan *ci = NULL, *cr = NULL;
	struct ferry_pubkey peer;
	struct ferry_err err;
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs2[FERRY_CHAN_HS2_LEN];
	uint8_t hs3[FERRY_CHAN_HS3_LEN];
	size_t m2 = n < sizeof(hs2) ? n : sizeof(hs2);
	int rc;

	ferry_err_clear(&err);
	if (ferry_chan_init_start(fuzz_key(AGENT), fuzz_pub(COORD), &is, hs1,
	        &err) != 0 ||
	    ferry_chan_resp_start(fuzz_key(COORD), hs1, sizeof(hs1), &rs, hs2,
	        &err) != 0)
		fuzz_fail("handshake start failed: %s", err.msg);
	if (apply_mask(hs2, sizeof(hs2), d, m2)) {
		refused(ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, &ci,
		            &err),
		    &err, "a masked HS2");
		ferry_chan_resp_free(rs);
		return;
	}
	if (ferry_chan_init_finish(is, hs2, sizeof(hs2), hs3, &ci, &err) != 0)
		fuzz_fail("a genuine HS2 was refused: %s", err.msg);
	if (apply_mask(hs3, sizeof(hs3), d + m2, n - m2)) {
		refused(ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr, &peer,
		            &err),
		    &err, "a masked HS3");
		ferry_chan_free(ci);
		return;
	}
	rc = ferry_chan_resp_finish(rs, hs3, sizeof(hs3), &cr, &peer, &err);
	if (rc != 0)
		fuzz_fail("a genuine HS3 was refused: %s", err.msg);
	if (memcmp(peer.pk, fuzz_pub(AGENT)->pk, FERRY_PUBKEY_LEN) != 0)
		fuzz_fail("the responder names another initiator");
	round_trip(cr, ci);
	round_trip(ci, cr);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

/* What a script keeps of each sealed frame. */
struct slot {
	uint8_t f[FERRY_CHAN_SEALED_LEN(PAYLOAD_MAX)];
	size_t len;
	uint64_t ctr;
};

/* The payload sealed with counter ctr: its length and bytes. */
static size_t
payload_for(uint64_t ctr, uint8_t p[PAYLOAD_MAX])
{
	size_t i, len = (size_t)(ctr % (PAYLOAD_MAX + 1));

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(ctr * 31 + i);
	return len;
}

/* The model: every counter accepted so far, and the highest. */
struct model {
	uint64_t *acc;
	size_t n;
	uint64_t max;
};

static int
model_accepts(const struct model *m, uint64_t ctr)
{
	size_t i;

	if (ctr == 0 || (ctr <= m->max && m->max - ctr >= FERRY_CHAN_WINDOW))
		return 0;
	for (i = 0; i < m->n; i++)
		if (m->acc[i] == ctr)
			return 0;
	return 1;
}

/*
 * Script: 3 bytes per step, op a b. op % 4: 0 seals (a % 8 + 1) frames
 * into slots, skipping b * 4 counters first; 1 opens slot a; 2 opens slot
 * a with bit b flipped; 3 opens slot a truncated to b bytes.
 */
static void
mode_script(const uint8_t *d, size_t n)
{
	struct ferry_chan *ci = NULL, *cr = NULL;
	struct slot *slots = xcalloc(SLOTS, sizeof(*slots));
	struct model m = { xcalloc(n / 3 + 1, sizeof(uint64_t)), 0, 0 };
	struct ferry_err err;
	uint8_t buf[sizeof(slots[0].f)], out[PAYLOAD_MAX], want[PAYLOAD_MAX];
	size_t i, k, next = 0, outlen, wantlen, len;
	uint64_t ctr = 0;
	int rc, expect;

	handshake(&ci, &cr);
	for (i = 0; i + 3 <= n; i += 3) {
		uint8_t op = d[i] % 4, a = d[i + 1], b = d[i + 2];
		struct slot *s = &slots[a % SLOTS];

		if (op == 0) {
			/* Skipped counters: sealed and thrown away. */
			for (k = 0; k < (size_t)b * 4 + a % 8 + 1; k++) {
				struct slot *t = &slots[next++ % SLOTS];

				wantlen = payload_for(++ctr, want);
				t->len = FERRY_CHAN_SEALED_LEN(wantlen);
				t->ctr = ctr;
				ferry_err_clear(&err);
				if (ferry_chan_seal(ci, want, wantlen, t->f,
				        sizeof(t->f), &err) != 0)
					fuzz_fail("seal failed: %s", err.msg);
				if (k < (size_t)b * 4)
					next--; /* overwritten next round */
			}
			continue;
		}
		if (s->len == 0)
			continue;
		memcpy(buf, s->f, s->len);
		len = s->len;
		expect = model_accepts(&m, s->ctr);
		if (op == 2) {
			buf[b % len] ^= (uint8_t)(1u << (a % 8));
			expect = 0;
		} else if (op == 3 && b < len) {
			len = b;
			expect = 0;
		}
		ferry_err_clear(&err);
		outlen = 0;
		rc = ferry_chan_open(cr, buf, len, out, sizeof(out), &outlen,
		    &err);
		if (!expect) {
			refused(rc, &err, "a scripted open");
			continue;
		}
		if (rc != 0)
			fuzz_fail("counter %llu (highest %llu) refused: %s",
			    (unsigned long long)s->ctr,
			    (unsigned long long)m.max, err.msg);
		wantlen = payload_for(s->ctr, want);
		if (outlen != wantlen || memcmp(out, want, wantlen) != 0)
			fuzz_fail("counter %llu opened to other bytes",
			    (unsigned long long)s->ctr);
		m.acc[m.n++] = s->ctr;
		if (s->ctr > m.max)
			m.max = s->ctr;
	}
	round_trip(ci, cr);
	round_trip(cr, ci);
	free(m.acc);
	free(slots);
	ferry_chan_free(ci);
	ferry_chan_free(cr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t sel;

	if (size < 1 || size > MAX_INPUT)
		return 0;
	sel = data[0];
	data++;
	size--;
	switch ((sel & 0x7f) % 7) {
	case 0:
		mode_peek(data, size);
		break;
	case 1:
		mode_open(data, size, sel & 0x80);
		break;
	case 2:
		mode_resp_start(data, size);
		break;
	case 3:
		mode_init_finish(data, size);
		break;
	case 4:
		mode_resp_finish(data, size, sel & 0x80);
		break;
	case 5:
		mode_handshake(data, size);
		break;
	default:
		mode_script(data, size);
		break;
	}
	return 0;
}
