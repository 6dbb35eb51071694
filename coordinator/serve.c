/*
 * serve.c -- the coordinator's network loop (see serve.h).
 */
#include "serve.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "ferry.pb-c.h"
#include "hash.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#define NBUCKETS 4096
#define SPARE_CTX 32
#define MAX_CTX 20000
#define MAX_PENDING_HS 4096
#define HS_EXPIRY_US (10 * 1000000LL)
#define SESSION_IDLE_US (3600 * 1000000LL) /* agents */
#define CLI_IDLE_US (300 * 1000000LL)      /* everyone else */
#define MAX_SESSIONS 100000
#define REPLY_CACHE 4
#define ONLINE_MARGIN_MS 10000

enum ctx_state { CTX_RECV, CTX_BUSY, CTX_SEND, CTX_PARKED };

struct session;

struct server;

struct cctx {
	struct server *srv;
	nng_ctx ctx;
	nng_aio *aio;
	enum ctx_state st;
	nng_msg *msg; /* received, while queued/busy */
	struct cctx *qnext;
	/* parked poll */
	struct session *sess;
	uint64_t req_id;
	int64_t deadline_us;
};

struct cached_reply {
	uint64_t req_id;
	uint8_t *data;
	size_t len;
};

struct session {
	uint8_t sid[FERRY_CHAN_SID_LEN];
	struct session *next; /* bucket chain */
	struct ferry_chan *chan;
	struct ferry_pubkey peer;
	enum ferry_role role;
	char *agent_id;
	char *agent_state;
	char addr[64];
	int64_t last_us;
	struct cctx *parked;
	struct cached_reply cache[REPLY_CACHE];
	unsigned cache_next;
};

struct pending {
	struct pending *next;
	struct ferry_chan_resp *st;
	int64_t created_us;
};

struct server {
	const struct ferry_serve_opts *o;
	nng_socket sock;
	struct cctx **ctxs;
	size_t nctx, nparked;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cctx *qhead, *qtail;
	int closing;
	struct session *buckets[NBUCKETS];
	size_t nsessions;
	struct pending *pend;
	size_t npending;
	/* last bundle read, for chunked fetches */
	char bundle_hex[65];
	uint8_t *bundle;
	size_t bundle_len;
};

/* ------------------------------------------------------------------ */
/* contexts                                                            */

static void
ctx_cb(void *arg)
{
	struct cctx *c = arg;
	struct server *s = c->srv;
	int rv = nng_aio_result(c->aio);

	if (c->st == CTX_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(c->aio));
		c->st = CTX_RECV;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	if (rv != 0) {
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	c->msg = nng_aio_get_msg(c->aio);
	c->st = CTX_BUSY;
	pthread_mutex_lock(&s->mu);
	c->qnext = NULL;
	if (s->qtail)
		s->qtail->qnext = c;
	else
		s->qhead = c;
	s->qtail = c;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* The context receives again (a parked one has no operation in flight). */
static void
ctx_release(struct server *s, struct cctx *c)
{
	(void)s;
	c->sess = NULL;
	c->st = CTX_RECV;
	nng_ctx_recv(c->ctx, c->aio);
}

static int
add_ctx(struct server *s)
{
	struct cctx *c;
	int rv;

	if (s->nctx >= MAX_CTX)
		return -1;
	c = xcalloc(1, sizeof(*c));
	c->srv = s;
	if ((rv = nng_ctx_open(&c->ctx, s->sock)) != 0 ||
	    (rv = nng_aio_alloc(&c->aio, ctx_cb, c)) != 0) {
		ferry_log_error("cannot open a context", "error",
		    nng_strerror(rv));
		free(c);
		return -1;
	}
	s->ctxs = xrealloc(s->ctxs, (s->nctx + 1) * sizeof(*s->ctxs));
	s->ctxs[s->nctx++] = c;
	ctx_release(s, c);
	return 0;
}

static void
send_frame(struct server *s, struct cctx *c, const uint8_t *frame, size_t len)
{
	nng_msg *msg = c->msg;

	c->msg = NULL;
	if (msg == NULL && nng_msg_alloc(&msg, 0) != 0) {
		ctx_release(s, c);
		return;
	}
	nng_msg_clear(msg);
	if (nng_msg_append(msg, frame, len) != 0) {
		nng_msg_free(msg);
		ctx_release(s, c);
		return;
	}
	c->sess = NULL;
	c->st = CTX_SEND;
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
}

/* Drops the request without an answer; the context receives again. */
static void
drop(struct server *s, struct cctx *c)
{
	if (c->msg != NULL)
		nng_msg_free(c->msg);
	c->msg = NULL;
	ctx_release(s, c);
}

static void
peer_addr(nng_msg *msg, char *buf, size_t bufsz)
{
	nng_sockaddr sa;
	nng_pipe p = nng_msg_get_pipe(msg);
	char ip[INET6_ADDRSTRLEN];

	snprintf(buf, bufsz, "?");
	if (nng_pipe_id(p) < 0 ||
	    nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
		return;
	if (sa.s_family == NNG_AF_INET) {
		inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip));
		snprintf(buf, bufsz, "%s:%u", ip, ntohs(sa.s_in.sa_port));
	} else if (sa.s_family == NNG_AF_INET6) {
		inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip));
		snprintf(buf, bufsz, "[%s]:%u", ip, ntohs(sa.s_in6.sa_port));
	}
}

/* ------------------------------------------------------------------ */
/* sessions                                                            */

static unsigned
bucket_of(const uint8_t *sid)
{
	unsigned h;

	memcpy(&h, sid, sizeof(h));
	return h % NBUCKETS;
}

static struct session *
session_find(struct server *s, const uint8_t *sid)
{
	struct session *x;

	for (x = s->buckets[bucket_of(sid)]; x; x = x->next)
		if (memcmp(x->sid, sid, FERRY_CHAN_SID_LEN) == 0)
			return x;
	return NULL;
}

static void
session_free(struct server *s, struct session *x)
{
	int i;

	if (x->parked != NULL) {
		s->nparked--;
		drop(s, x->parked);
		x->parked = NULL;
	}
	for (i = 0; i < REPLY_CACHE; i++)
		free(x->cache[i].data);
	ferry_chan_free(x->chan);
	free(x->agent_id);
	free(x->agent_state);
	free(x);
}

static void
session_remove(struct server *s, struct session *x)
{
	struct session **pp = &s->buckets[bucket_of(x->sid)];

	while (*pp != x)
		pp = &(*pp)->next;
	*pp = x->next;
	s->nsessions--;
	session_free(s, x);
}

/* Ends every session of a key (revoked, rejected). */
static void
sessions_cut(struct server *s, const uint8_t pk[32])
{
	struct session *x, *next;
	unsigned b;

	for (b = 0; b < NBUCKETS; b++)
		for (x = s->buckets[b]; x; x = next) {
			next = x->next;
			if (memcmp(x->peer.pk, pk, 32) == 0)
				session_remove(s, x);
		}
}

static void
sessions_set_state(struct server *s, const uint8_t pk[32], const char *st)
{
	struct session *x;
	unsigned b;

	for (b = 0; b < NBUCKETS; b++)
		for (x = s->buckets[b]; x; x = x->next)
			if (memcmp(x->peer.pk, pk, 32) == 0 &&
			    x->agent_state != NULL) {
				free(x->agent_state);
				x->agent_state = xstrdup(st);
			}
}

/* The table is full: the session idle the longest (not held) goes. */
static void
evict_one(struct server *s)
{
	struct session *x, *old = NULL;
	unsigned b;

	for (b = 0; b < NBUCKETS; b++)
		for (x = s->buckets[b]; x; x = x->next)
			if (x->parked == NULL &&
			    (old == NULL || x->last_us < old->last_us))
				old = x;
	if (old != NULL) {
		ferry_log_warn("session table full: dropped the idlest session",
		    "key", old->peer.id, "peer", old->addr);
		session_remove(s, old);
	}
}

static void
expire(struct server *s, int64_t now)
{
	struct pending **pp = &s->pend, *p;
	struct session *x, *next;
	unsigned b;

	while ((p = *pp) != NULL) {
		if (now - p->created_us > HS_EXPIRY_US) {
			*pp = p->next;
			ferry_chan_resp_free(p->st);
			free(p);
			s->npending--;
		} else
			pp = &p->next;
	}
	for (b = 0; b < NBUCKETS; b++)
		for (x = s->buckets[b]; x; x = next) {
			next = x->next;
			if (x->parked == NULL &&
			    now - x->last_us > (x->role == FERRY_ROLE_AGENT
			                               ? SESSION_IDLE_US
			                               : CLI_IDLE_US))
				session_remove(s, x);
		}
}

/* ------------------------------------------------------------------ */
/* replies                                                             */

static void
reject(struct server *s, struct cctx *c, const uint8_t *sid, uint8_t why)
{
	uint8_t f[FERRY_CHAN_HDR_LEN + 1];
	static const uint8_t zero[FERRY_CHAN_SID_LEN];

	ferry_chan_reject(sid ? sid : zero, why, f);
	send_frame(s, c, f, sizeof(f));
}

static void
remember(struct session *x, uint64_t id, const uint8_t *data, size_t len)
{
	struct cached_reply *r = &x->cache[x->cache_next++ % REPLY_CACHE];

	free(r->data);
	r->req_id = id;
	r->data = xmalloc(len ? len : 1);
	memcpy(r->data, data, len);
	r->len = len;
}

/* Seals plain for the session and sends it on c. */
static void
send_sealed(struct server *s, struct cctx *c, struct session *x,
    const uint8_t *plain, size_t len)
{
	size_t flen = FERRY_CHAN_SEALED_LEN(len);
	uint8_t *frame = xmalloc(flen);
	struct ferry_err e = { 0 };

	if (ferry_chan_seal(x->chan, plain, len, frame, flen, &e) != 0) {
		ferry_log_error("cannot seal a reply", "error", e.msg);
		free(frame);
		drop(s, c);
		return;
	}
	send_frame(s, c, frame, flen);
	free(frame);
}

static void
respond(struct server *s, struct cctx *c, struct session *x, uint64_t id,
    Ferry__ResponseStatus status, const char *error,
    const ProtobufCMessage *body)
{
	Ferry__Response r = FERRY__RESPONSE__INIT;
	uint8_t *bbuf = NULL, *plain;
	size_t plen;

	r.format_version = FERRY_WIRE_FORMAT;
	r.request_id = id;
	r.status = status;
	r.error = (char *)(error ? error : "");
	if (body != NULL) {
		r.body.len = protobuf_c_message_get_packed_size(body);
		bbuf = xmalloc(r.body.len ? r.body.len : 1);
		protobuf_c_message_pack(body, bbuf);
		r.body.data = bbuf;
	}
	plen = ferry__response__get_packed_size(&r);
	plain = xmalloc(plen ? plen : 1);
	ferry__response__pack(&r, plain);
	/* An error may pass (the state store was away): not remembered,
	   so that a retry runs the operation again. */
	if (id != 0 && status != FERRY__RESPONSE_STATUS__RESPONSE_ERROR)
		remember(x, id, plain, plen);
	send_sealed(s, c, x, plain, plen);
	free(plain);
	free(bbuf);
}

static void
respond_err(struct server *s, struct cctx *c, struct session *x, uint64_t id,
    const struct ferry_err *e)
{
	Ferry__ResponseStatus st = FERRY__RESPONSE_STATUS__RESPONSE_ERROR;

	if (e->code == FERRY_EFINDING)
		st = FERRY__RESPONSE_STATUS__RESPONSE_REFUSED;
	else if (e->code == FERRY_EUSAGE)
		st = FERRY__RESPONSE_STATUS__RESPONSE_BAD_REQUEST;
	respond(s, c, x, id, st, e->msg, NULL);
}

/* ------------------------------------------------------------------ */
/* handshake                                                           */

static void
on_hs1(struct server *s, struct cctx *c, const uint8_t *p, size_t n,
    const char *addr)
{
	struct ferry_err e = { 0 };
	struct ferry_chan_resp *st = NULL;
	uint8_t hs2[FERRY_CHAN_HS2_LEN];
	struct pending *pd;

	if (s->npending >= MAX_PENDING_HS) {
		expire(s, ferry_mono_us());
		if (s->npending >= MAX_PENDING_HS) {
			reject(s, c, NULL, FERRY_CHAN_REJECT_BUSY);
			return;
		}
	}
	if (ferry_chan_resp_start(s->o->key, p, n, &st, hs2, &e) != 0) {
		ferry_log_warn("dropped a handshake", "peer", addr, "error",
		    e.msg);
		reject(s, c, NULL, FERRY_CHAN_REJECT_MALFORMED);
		return;
	}
	pd = xcalloc(1, sizeof(*pd));
	pd->st = st;
	pd->created_us = ferry_mono_us();
	pd->next = s->pend;
	s->pend = pd;
	s->npending++;
	send_frame(s, c, hs2, sizeof(hs2));
}

static void
on_hs3(struct server *s, struct cctx *c, const struct ferry_chan_hdr *h,
    const uint8_t *p, size_t n, const char *addr)
{
	struct ferry_err e = { 0 };
	struct pending **pp = &s->pend, *pd;
	struct ferry_chan *chan = NULL;
	struct session *x;
	Ferry__Welcome w = FERRY__WELCOME__INIT;

	while ((pd = *pp) != NULL &&
	    memcmp(ferry_chan_resp_sid(pd->st), h->sid, FERRY_CHAN_SID_LEN) !=
	        0)
		pp = &pd->next;
	if (pd == NULL) {
		reject(s, c, h->sid, FERRY_CHAN_REJECT_UNKNOWN_SESSION);
		return;
	}
	*pp = pd->next;
	s->npending--;
	x = xcalloc(1, sizeof(*x));
	if (ferry_chan_resp_finish(pd->st, p, n, &chan, &x->peer, &e) != 0) {
		free(pd);
		free(x);
		ferry_log_warn("handshake refused", "peer", addr, "error",
		    e.msg);
		drop(s, c);
		return;
	}
	free(pd);
	if (s->nsessions >= MAX_SESSIONS)
		evict_one(s);
	x->chan = chan;
	memcpy(x->sid, h->sid, FERRY_CHAN_SID_LEN);
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	x->last_us = ferry_mono_us();
	if (ferry_store_key_role(s->o->state, x->peer.pk, &x->role,
	        &x->agent_id, &x->agent_state, &e) != 0) {
		ferry_log_error("cannot look up a key", "error", e.msg);
		session_free(s, x);
		reject(s, c, h->sid, FERRY_CHAN_REJECT_BUSY);
		return;
	}
	if (x->agent_state != NULL &&
	    (strcmp(x->agent_state, "revoked") == 0 ||
	        strcmp(x->agent_state, "rejected") == 0))
		ferry_log_warn("a revoked or rejected agent key connected",
		    "agent", x->agent_id, "key", x->peer.id, "peer", addr);
	x->next = s->buckets[bucket_of(x->sid)];
	s->buckets[bucket_of(x->sid)] = x;
	s->nsessions++;
	w.role =
	    (char *)(x->role == FERRY_ROLE_NONE ? "unknown"
	                                        : ferry_role_name(x->role));
	w.key_id = x->peer.id;
	w.poll_hold_ms = s->o->poll_hold_ms;
	ferry_log_debug("session", "peer", addr, "key", x->peer.id, "role",
	    w.role);
	respond(s, c, x, 0, FERRY__RESPONSE_STATUS__RESPONSE_OK, NULL, &w.base);
}

/* ------------------------------------------------------------------ */
/* operations                                                          */

#define OK FERRY__RESPONSE_STATUS__RESPONSE_OK
#define REFUSED FERRY__RESPONSE_STATUS__RESPONSE_REFUSED
#define BAD FERRY__RESPONSE_STATUS__RESPONSE_BAD_REQUEST

/* Sends the poll reply with the agent's work (or none). */
static void
answer_poll(struct server *s, struct cctx *c, struct session *x, uint64_t id)
{
	Ferry__PollReply r = FERRY__POLL_REPLY__INIT;
	struct ferry_err e = { 0 };

	if (ferry_store_take_work(s->o->state, x->agent_id, &r, &e) != 0) {
		respond_err(s, c, x, id, &e);
		return;
	}
	r.state = xstrdup(x->agent_state);
	respond(s, c, x, id, OK, NULL, &r.base);
	ferry_store_release(&r.base);
}

/* Wakes the held polls of agents that got work. */
static void
wake(struct server *s, char **agent_ids, size_t n)
{
	struct session *x;
	struct cctx *c;
	unsigned b;
	size_t i;

	for (b = 0; b < NBUCKETS; b++)
		for (x = s->buckets[b]; x; x = x->next) {
			if (x->parked == NULL || x->agent_id == NULL)
				continue;
			for (i = 0; i < n; i++)
				if (strcmp(agent_ids[i], x->agent_id) == 0)
					break;
			if (i == n)
				continue;
			c = x->parked;
			x->parked = NULL;
			s->nparked--;
			answer_poll(s, c, x, c->req_id);
		}
}

static int
agent_may_work(struct server *s, struct cctx *c, struct session *x, uint64_t id)
{
	char *msg;

	if (x->agent_id == NULL) {
		respond(s, c, x, id, REFUSED,
		    "register first: this key is not a known agent", NULL);
		return 0;
	}
	if (strcmp(x->agent_state, "accepted") == 0)
		return 1;
	msg = xasprintf("agent '%s' is %s%s", x->agent_id, x->agent_state,
	    strcmp(x->agent_state, "pending") == 0
	        ? ": an operator must run 'ferry agents accept' first"
	        : "");
	respond(s, c, x, id, REFUSED, msg, NULL);
	free(msg);
	return 0;
}

static void
op_register(struct server *s, struct cctx *c, struct session *x, uint64_t id,
    const ProtobufCBinaryData *body)
{
	Ferry__RegisterRequest *r;
	Ferry__RegisterReply rep = FERRY__REGISTER_REPLY__INIT;
	struct ferry_err e = { 0 };
	char *state = NULL;

	if (x->role != FERRY_ROLE_NONE && x->role != FERRY_ROLE_AGENT) {
		respond(s, c, x, id, REFUSED,
		    "an operator key cannot register as an agent", NULL);
		return;
	}
	r = ferry__register_request__unpack(NULL, body->len, body->data);
	if (r == NULL) {
		respond(s, c, x, id, BAD, "malformed RegisterRequest", NULL);
		return;
	}
	if (ferry_store_register_agent(s->o->state, x->peer.pk, r, x->addr,
	        s->o->auto_accept, &state, &e) != 0) {
		respond_err(s, c, x, id, &e);
		goto out;
	}
	x->role = FERRY_ROLE_AGENT;
	free(x->agent_id);
	free(x->agent_state);
	x->agent_id = xstrdup(r->agent_id);
	x->agent_state = state;
	rep.state = state;
	respond(s, c, x, id, OK, NULL, &rep.base);
out:
	ferry__register_request__free_unpacked(r, NULL);
}

static void
op_poll(struct server *s, struct cctx *c, struct session *x, uint64_t id,
    const ProtobufCBinaryData *body)
{
	Ferry__PollRequest *r;
	struct ferry_err e = { 0 };
	uint32_t hold;
	int has = 0;

	if (!agent_may_work(s, c, x, id))
		return;
	r = ferry__poll_request__unpack(NULL, body->len, body->data);
	if (r == NULL) {
		respond(s, c, x, id, BAD, "malformed PollRequest", NULL);
		return;
	}
	hold =
	    r->hold_ms < s->o->poll_hold_ms ? r->hold_ms : s->o->poll_hold_ms;
	ferry__poll_request__free_unpacked(r, NULL);
	if (ferry_store_has_work(s->o->state, x->agent_id, &has, &e) != 0) {
		respond_err(s, c, x, id, &e);
		return;
	}
	if (has || hold == 0 ||
	    (s->nctx - s->nparked < SPARE_CTX && add_ctx(s) != 0)) {
		answer_poll(s, c, x, id);
		return;
	}
	/* Hold it: answered by wake() or at the deadline. */
	if (x->parked != NULL) {
		s->nparked--;
		drop(s, x->parked);
	}
	nng_msg_free(c->msg);
	c->msg = NULL;
	c->st = CTX_PARKED;
	c->sess = x;
	c->req_id = id;
	c->deadline_us = ferry_mono_us() + (int64_t)hold * 1000;
	x->parked = c;
	s->nparked++;
}

static void
op_fetch(struct server *s, struct cctx *c, struct session *x, uint64_t id,
    const ProtobufCBinaryData *body)
{
	Ferry__FetchRequest *r;
	Ferry__FetchReply rep = FERRY__FETCH_REPLY__INIT;
	struct ferry_err e = { 0 };
	char hex[65];
	uint32_t len;

	if (!agent_may_work(s, c, x, id))
		return;
	r = ferry__fetch_request__unpack(NULL, body->len, body->data);
	if (r == NULL || r->bundle_digest.len != 32) {
		respond(s, c, x, id, BAD, "malformed FetchRequest", NULL);
		goto out;
	}
	ferry_hex_encode(r->bundle_digest.data, 32, hex);
	if (strcmp(hex, s->bundle_hex) != 0) {
		free(s->bundle);
		s->bundle = NULL;
		s->bundle_hex[0] = '\0';
		if (ferry_store_get_bundle(s->o->state, hex, &s->bundle,
		        &s->bundle_len, &e) != 0) {
			respond_err(s, c, x, id, &e);
			goto out;
		}
		memcpy(s->bundle_hex, hex, sizeof(hex));
	}
	if (r->offset > s->bundle_len) {
		respond(s, c, x, id, BAD, "offset beyond the bundle", NULL);
		goto out;
	}
	len = r->length > FERRY_WIRE_CHUNK ? FERRY_WIRE_CHUNK : r->length;
	if (len > s->bundle_len - r->offset)
		len = (uint32_t)(s->bundle_len - r->offset);
	rep.total = s->bundle_len;
	rep.data.data = s->bundle + r->offset;
	rep.data.len = len;
	respond(s, c, x, id, OK, NULL, &rep.base);
out:
	if (r != NULL)
		ferry__fetch_request__free_unpacked(r, NULL);
}

static void
op_report(struct server *s, struct cctx *c, struct session *x, uint64_t id,
    const ProtobufCBinaryData *body)
{
	Ferry__ReportRequest *r;
	Ferry__ReportReply rep = FERRY__REPORT_REPLY__INIT;
	struct ferry_err e = { 0 };
	int dup = 0;

	/* A report is accepted from a known agent in any state but
	   revoked/rejected: work it started still ends. */
	if (x->agent_id == NULL || strcmp(x->agent_state, "revoked") == 0 ||
	    strcmp(x->agent_state, "rejected") == 0) {
		agent_may_work(s, c, x, id);
		return;
	}
	r = ferry__report_request__unpack(NULL, body->len, body->data);
	if (r == NULL) {
		respond(s, c, x, id, BAD, "malformed ReportRequest", NULL);
		return;
	}
	if (ferry_store_store_report(s->o->state, x->agent_id, r, body->data,
	        body->len, &dup, &e) != 0) {
		respond_err(s, c, x, id, &e);
	} else {
		rep.duplicate = dup;
		ferry_log_info(dup ? "report acknowledged again"
		                   : "report stored",
		    "agent", x->agent_id, "work", r->work_id, "outcome",
		    r->outcome);
		respond(s, c, x, id, OK, NULL, &rep.base);
	}
	ferry__report_request__free_unpacked(r, NULL);
}

/* The most recent request time of any session of the agent (ms). */
static int64_t
agent_last_seen_us(struct server *s, const char *agent_id, int *parked)
{
	struct session *x;
	int64_t best = 0;
	unsigned b;

	*parked = 0;
	for (b = 0; b < NBUCKETS; b++)
		for (x = s->buckets[b]; x; x = x->next)
			if (x->agent_id != NULL &&
			    strcmp(x->agent_id, agent_id) == 0) {
				if (x->last_us > best)
					best = x->last_us;
				if (x->parked != NULL)
					*parked = 1;
			}
	return best;
}

static void
op_agents_list(struct server *s, struct cctx *c, struct session *x, uint64_t id)
{
	Ferry__AgentsListReply r;
	struct ferry_err e = { 0 };
	int64_t now_mono = ferry_mono_us(), now_wall = ferry_wall_us(), seen;
	int parked;
	size_t i;

	if (ferry_store_list_agents(s->o->state, &r, &e) != 0) {
		respond_err(s, c, x, id, &e);
		return;
	}
	for (i = 0; i < r.n_agents; i++) {
		Ferry__AgentInfo *a = r.agents[i];
		seen = agent_last_seen_us(s, a->agent_id, &parked);
		if (seen > 0) {
			int64_t wall_ms = (now_wall - (now_mono - seen)) / 1000;
			if (wall_ms > a->last_seen_unix_ms)
				a->last_seen_unix_ms = wall_ms;
		}
		/* Silent past its poll deadline (plus a margin): offline. */
		a->online = strcmp(a->state, "accepted") == 0 &&
		    (parked ||
		        (seen > 0 &&
		            now_mono - seen <= ((int64_t)s->o->poll_hold_ms +
		                                   ONLINE_MARGIN_MS) *
		                    1000));
	}
	respond(s, c, x, id, OK, NULL, &r.base);
	ferry_store_release(&r.base);
}

static void
op_agent_action(struct server *s, struct cctx *c, struct session *x,
    uint64_t id, enum ferry_op op, const ProtobufCBinaryData *body)
{
	Ferry__AgentActionRequest *r;
	Ferry__AgentActionReply rep = FERRY__AGENT_ACTION_REPLY__INIT;
	struct ferry_err e = { 0 };
	const char *to = op == FERRY_OP_AGENTS_ACCEPT ? "accepted"
	    : op == FERRY_OP_AGENTS_REJECT            ? "rejected"
	                                              : "revoked";
	uint8_t pk[32];

	r = ferry__agent_action_request__unpack(NULL, body->len, body->data);
	if (r == NULL) {
		respond(s, c, x, id, BAD, "malformed AgentActionRequest", NULL);
		return;
	}
	if (ferry_store_set_agent_state(s->o->state, r->agent_id, to,
	        x->peer.id, pk, &e) != 0) {
		respond_err(s, c, x, id, &e);
		goto out;
	}
	ferry_log_info("agent state changed", "agent", r->agent_id, "state", to,
	    "by", x->peer.id);
	if (strcmp(to, "accepted") == 0)
		sessions_set_state(s, pk, to);
	else
		sessions_cut(s, pk);
	rep.state = (char *)to;
	respond(s, c, x, id, OK, NULL, &rep.base);
out:
	ferry__agent_action_request__free_unpacked(r, NULL);
}

static void
op_dispatch(struct server *s, struct cctx *c, struct session *x, uint64_t id,
    const ProtobufCBinaryData *body)
{
	Ferry__DispatchRequest *r;
	Ferry__DispatchReply rep;
	struct ferry_err e = { 0 };
	char hex[65], num[24];

	r = ferry__dispatch_request__unpack(NULL, body->len, body->data);
	if (r == NULL) {
		respond(s, c, x, id, BAD, "malformed DispatchRequest", NULL);
		return;
	}
	if (r->bundle.len == 0) {
		respond(s, c, x, id, BAD, "no bundle in the request", NULL);
		goto out;
	}
	/* Agents verify the bundle themselves; the coordinator stores it. */
	ferry_sha256_hex(r->bundle.data, r->bundle.len, hex);
	if (ferry_store_put_bundle(s->o->state, hex, r->bundle.data,
	        r->bundle.len, &e) != 0 ||
	    ferry_store_dispatch(s->o->state, r, hex, x->peer.id, &rep, &e) !=
	        0) {
		respond_err(s, c, x, id, &e);
		goto out;
	}
	ferry_log_info("work dispatched", "bundle", hex, "agents",
	    ferry_itoa(num, (long long)rep.n_agent_ids), "by", x->peer.id);
	respond(s, c, x, id, OK, NULL, &rep.base);
	wake(s, rep.agent_ids, rep.n_agent_ids);
	ferry_store_release(&rep.base);
out:
	ferry__dispatch_request__free_unpacked(r, NULL);
}

static void
op_work_list(struct server *s, struct cctx *c, struct session *x, uint64_t id,
    const ProtobufCBinaryData *body)
{
	Ferry__WorkListRequest *r;
	Ferry__WorkListReply rep;
	struct ferry_err e = { 0 };

	r = ferry__work_list_request__unpack(NULL, body->len, body->data);
	if (r == NULL) {
		respond(s, c, x, id, BAD, "malformed WorkListRequest", NULL);
		return;
	}
	if (ferry_store_list_work(s->o->state, r, &rep, &e) != 0)
		respond_err(s, c, x, id, &e);
	else {
		respond(s, c, x, id, OK, NULL, &rep.base);
		ferry_store_release(&rep.base);
	}
	ferry__work_list_request__free_unpacked(r, NULL);
}

static void
op_operators_list(struct server *s, struct cctx *c, struct session *x,
    uint64_t id)
{
	Ferry__OperatorsListReply r;
	struct ferry_err e = { 0 };

	if (ferry_store_list_operators(s->o->state, &r, &e) != 0) {
		respond_err(s, c, x, id, &e);
		return;
	}
	respond(s, c, x, id, OK, NULL, &r.base);
	ferry_store_release(&r.base);
}

static void
op_operators_change(struct server *s, struct cctx *c, struct session *x,
    uint64_t id, enum ferry_op op, const ProtobufCBinaryData *body)
{
	Ferry__OperatorReply rep = FERRY__OPERATOR_REPLY__INIT;
	struct ferry_err e = { 0 };
	struct ferry_pubkey pk;
	uint8_t raw[32];
	int role;

	if (op == FERRY_OP_OPERATORS_ADD) {
		Ferry__OperatorAddRequest *r =
		    ferry__operator_add_request__unpack(NULL, body->len,
		        body->data);
		if (r == NULL) {
			respond(s, c, x, id, BAD,
			    "malformed OperatorAddRequest", NULL);
			return;
		}
		role = ferry_role_parse(r->role);
		if (role != FERRY_ROLE_READ && role != FERRY_ROLE_OPERATOR &&
		    role != FERRY_ROLE_APPROVER)
			ferry_errf(&e, FERRY_EUSAGE,
			    "unknown role '%.32s' (read, operator, approver)",
			    r->role);
		else if (ferry_pubkey_parse(r->public_key, &pk, &e) == 0)
			ferry_store_add_operator(s->o->state, &pk,
			    (enum ferry_role)role, &e);
		ferry__operator_add_request__free_unpacked(r, NULL);
		if (e.code != 0) {
			respond_err(s, c, x, id, &e);
			return;
		}
		memcpy(raw, pk.pk, 32);
		rep.key_id = pk.id;
		rep.role = (char *)ferry_role_name((enum ferry_role)role);
		ferry_log_info("operator key set", "key", pk.id, "role",
		    rep.role, "by", x->peer.id);
	} else {
		Ferry__OperatorRemoveRequest *r =
		    ferry__operator_remove_request__unpack(NULL, body->len,
		        body->data);
		if (r == NULL) {
			respond(s, c, x, id, BAD,
			    "malformed OperatorRemoveRequest", NULL);
			return;
		}
		if (ferry_store_remove_operator(s->o->state, r->key_id,
		        x->peer.id, raw, &e) != 0) {
			ferry__operator_remove_request__free_unpacked(r, NULL);
			respond_err(s, c, x, id, &e);
			return;
		}
		snprintf(pk.id, sizeof(pk.id), "%s", r->key_id);
		ferry__operator_remove_request__free_unpacked(r, NULL);
		rep.key_id = pk.id;
		rep.role = (char *)"";
		ferry_log_info("operator key removed", "key", pk.id, "by",
		    x->peer.id);
	}
	/* Sessions of that key start again with its new role (or none). */
	respond(s, c, x, id, OK, NULL, &rep.base);
	sessions_cut(s, raw);
}

static void
on_data(struct server *s, struct cctx *c, const struct ferry_chan_hdr *h,
    const uint8_t *p, size_t n, const char *addr)
{
	struct session *x = session_find(s, h->sid);
	struct ferry_err e = { 0 };
	const struct ferry_op_info *op;
	Ferry__Request *rq = NULL;
	uint8_t *plain;
	size_t plen = 0;
	char *msg;
	int i;

	if (x == NULL) {
		reject(s, c, h->sid, FERRY_CHAN_REJECT_UNKNOWN_SESSION);
		return;
	}
	plain = xmalloc(n);
	if (ferry_chan_open(x->chan, p, n, plain, n, &plen, &e) != 0) {
		ferry_log_warn("dropped a frame", "peer", addr, "key",
		    x->peer.id, "error", e.msg);
		free(plain);
		drop(s, c);
		return;
	}
	x->last_us = ferry_mono_us();
	if (strcmp(x->addr, addr) != 0 && strcmp(addr, "?") != 0)
		snprintf(x->addr, sizeof(x->addr), "%s", addr);
	rq = ferry__request__unpack(NULL, plen, plain);
	free(plain);
	if (rq == NULL || rq->format_version != FERRY_WIRE_FORMAT) {
		respond(s, c, x, rq ? rq->request_id : 0, BAD,
		    rq ? "unsupported request format version"
		       : "malformed request",
		    NULL);
		goto out;
	}
	/* A retry: answer from the cache, or take over the held poll. */
	for (i = 0; i < REPLY_CACHE; i++)
		if (x->cache[i].data != NULL &&
		    x->cache[i].req_id == rq->request_id) {
			send_sealed(s, c, x, x->cache[i].data, x->cache[i].len);
			goto out;
		}
	if (x->parked != NULL && x->parked->req_id == rq->request_id) {
		struct cctx *old = x->parked;
		old->msg = NULL;
		ctx_release(s, old);
		nng_msg_free(c->msg);
		c->msg = NULL;
		c->st = CTX_PARKED;
		c->sess = x;
		c->req_id = old->req_id;
		c->deadline_us = old->deadline_us;
		x->parked = c;
		goto out;
	}
	op = ferry_op_lookup(rq->op);
	if (op == NULL) {
		msg = xasprintf("unknown operation %u", rq->op);
		respond(s, c, x, rq->request_id, BAD, msg, NULL);
		free(msg);
		goto out;
	}
	if (!(op->op == FERRY_OP_REGISTER && x->role == FERRY_ROLE_NONE) &&
	    !ferry_role_allows(x->role, op->role)) {
		msg = xasprintf("key %s (%s) may not %s", x->peer.id,
		    x->role == FERRY_ROLE_NONE ? "unknown"
		                               : ferry_role_name(x->role),
		    op->summary);
		ferry_log_warn("operation refused", "peer", addr, "key",
		    x->peer.id, "op", op->name);
		respond(s, c, x, rq->request_id, REFUSED, msg, NULL);
		free(msg);
		goto out;
	}
	switch (op->op) {
	case FERRY_OP_REGISTER:
		op_register(s, c, x, rq->request_id, &rq->body);
		break;
	case FERRY_OP_POLL:
		op_poll(s, c, x, rq->request_id, &rq->body);
		break;
	case FERRY_OP_FETCH:
		op_fetch(s, c, x, rq->request_id, &rq->body);
		break;
	case FERRY_OP_REPORT:
		op_report(s, c, x, rq->request_id, &rq->body);
		break;
	case FERRY_OP_AGENTS_LIST:
		op_agents_list(s, c, x, rq->request_id);
		break;
	case FERRY_OP_AGENTS_ACCEPT:
	case FERRY_OP_AGENTS_REJECT:
	case FERRY_OP_AGENTS_REVOKE:
		op_agent_action(s, c, x, rq->request_id, op->op, &rq->body);
		break;
	case FERRY_OP_DISPATCH:
		op_dispatch(s, c, x, rq->request_id, &rq->body);
		break;
	case FERRY_OP_WORK_LIST:
		op_work_list(s, c, x, rq->request_id, &rq->body);
		break;
	case FERRY_OP_OPERATORS_LIST:
		op_operators_list(s, c, x, rq->request_id);
		break;
	case FERRY_OP_OPERATORS_ADD:
	case FERRY_OP_OPERATORS_REMOVE:
		op_operators_change(s, c, x, rq->request_id, op->op, &rq->body);
		break;
	}
out:
	if (rq != NULL)
		ferry__request__free_unpacked(rq, NULL);
}

static void
handle(struct server *s, struct cctx *c)
{
	struct ferry_chan_hdr h;
	struct ferry_err e = { 0 };
	const uint8_t *p = nng_msg_body(c->msg);
	size_t n = nng_msg_len(c->msg);
	char addr[64];

	peer_addr(c->msg, addr, sizeof(addr));
	if (ferry_chan_peek(p, n, &h, &e) != 0) {
		ferry_log_warn("dropped a frame", "peer", addr, "error", e.msg);
		if (n >= 1 && p[0] != FERRY_CHAN_VERSION)
			reject(s, c, NULL, FERRY_CHAN_REJECT_VERSION);
		else
			drop(s, c);
		return;
	}
	switch (h.type) {
	case FERRY_CHAN_HS1:
		on_hs1(s, c, p, n, addr);
		break;
	case FERRY_CHAN_HS3:
		on_hs3(s, c, &h, p, n, addr);
		break;
	case FERRY_CHAN_DATA:
		on_data(s, c, &h, p, n, addr);
		break;
	default: {
		char num[24];
		ferry_log_warn("dropped a frame of unexpected type", "peer",
		    addr, "type", ferry_itoa(num, h.type));
		drop(s, c);
	}
	}
}

/* Answers held polls whose time is up; returns the next deadline. */
static int64_t
sweep_parked(struct server *s, int64_t now)
{
	int64_t next = now + 1000000;
	size_t i;

	for (i = 0; i < s->nctx; i++) {
		struct cctx *c = s->ctxs[i];
		struct session *x;
		if (c->st != CTX_PARKED)
			continue;
		if (c->deadline_us > now) {
			if (c->deadline_us < next)
				next = c->deadline_us;
			continue;
		}
		x = c->sess;
		x->parked = NULL;
		s->nparked--;
		answer_poll(s, c, x, c->req_id);
	}
	return next;
}

static void
on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	char num[24];

	(void)arg;
	if (ferry_log_get_level() > FERRY_LOG_DEBUG)
		return;
	ferry_log_debug(ev == NNG_PIPE_EV_ADD_POST ? "peer connected"
	                                           : "peer disconnected",
	    "pipe", ferry_itoa(num, nng_pipe_id(p)));
}

int
ferry_serve_run(const struct ferry_serve_opts *o, struct ferry_err *err)
{
	struct server *s = xcalloc(1, sizeof(*s));
	nng_listener l;
	struct timespec ts;
	int64_t now, next, last_expire = 0;
	struct cctx *c;
	char n1[24], n2[24];
	int port = 0, rv, rc = 0;
	size_t i;
	unsigned b;

	s->o = o;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		rc = ferry_errf(err, FERRY_EOPER, "cannot open a socket: %s",
		    nng_strerror(rv));
		goto out;
	}
	nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, on_pipe, s);
	nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, on_pipe, s);
	if ((rv = nng_listener_create(&l, s->sock, o->listen_url)) != 0 ||
	    (rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ,
	         FERRY_CHAN_SEALED_LEN(FERRY_WIRE_MAX_FRAME))) != 0 ||
	    (rv = nng_listener_start(l, 0)) != 0) {
		rc = ferry_errf(err,
		    rv == NNG_EADDRINVAL ? FERRY_EUSAGE : FERRY_EOPER,
		    "cannot listen on '%s': %s", o->listen_url,
		    nng_strerror(rv));
		goto out;
	}
	nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
	for (i = 0; i < SPARE_CTX * 2; i++)
		if (add_ctx(s) != 0) {
			rc = ferry_errf(err, FERRY_EOPER,
			    "cannot open contexts");
			goto out;
		}
	ferry_log_info("coordinator listening", "url", o->listen_url, "port",
	    ferry_itoa(n1, port), "key", ferry_seckey_public(o->key)->id);
	if (o->on_listen != NULL)
		o->on_listen(o->arg, port);
	next = ferry_mono_us() + 1000000;
	while (!*o->stop) {
		pthread_mutex_lock(&s->mu);
		if (s->qhead == NULL) {
			int64_t wait = next - ferry_mono_us();
			if (wait > 200000)
				wait = 200000; /* notice stop */
			if (wait < 0)
				wait = 0;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000000;
			ts.tv_nsec += (wait % 1000000) * 1000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		}
		c = s->qhead;
		if (c != NULL) {
			s->qhead = c->qnext;
			if (s->qhead == NULL)
				s->qtail = NULL;
		}
		pthread_mutex_unlock(&s->mu);
		if (c != NULL)
			handle(s, c);
		now = ferry_mono_us();
		if (now >= next || c == NULL)
			next = sweep_parked(s, now);
		if (now - last_expire > 1000000) {
			expire(s, now);
			last_expire = now;
		}
	}
	ferry_log_info("coordinator stopping", "sessions",
	    ferry_itoa(n1, (long long)s->nsessions), "held_polls",
	    ferry_itoa(n2, (long long)s->nparked));
out:
	nng_close(s->sock);
	for (i = 0; i < s->nctx; i++) {
		nng_aio_stop(s->ctxs[i]->aio);
		if (s->ctxs[i]->msg != NULL)
			nng_msg_free(s->ctxs[i]->msg);
	}
	/* Free contexts not yet taken off the queue by the loop too. */
	for (b = 0; b < NBUCKETS; b++)
		while (s->buckets[b] != NULL) {
			struct session *x = s->buckets[b];
			s->buckets[b] = x->next;
			x->parked = NULL;
			session_free(s, x);
		}
	while (s->pend != NULL) {
		struct pending *p = s->pend;
		s->pend = p->next;
		ferry_chan_resp_free(p->st);
		free(p);
	}
	for (i = 0; i < s->nctx; i++) {
		nng_aio_free(s->ctxs[i]->aio);
		free(s->ctxs[i]);
	}
	free(s->ctxs);
	free(s->bundle);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}
