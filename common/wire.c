/*
 * wire.c -- wire operations and the client side of the coordinator
 * protocol (see wire.h and docs/wire.md).
 */
#include "wire.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "ferry.pb-c.h"
#include "log.h"
#include "util.h"

static const struct ferry_op_info ops[] = {
#define FERRY_OP(name, num, role, req, rep, summary) \
	{ FERRY_OP_##name, #name, FERRY_ROLE_##role, summary },
#include "wireops.def"
#undef FERRY_OP
};

const struct ferry_op_info *
ferry_op_lookup(uint32_t op)
{
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if ((uint32_t)ops[i].op == op)
			return &ops[i];
	return NULL;
}

static const char *const role_names[] = { "none", "agent", "read", "operator",
	"approver" };

const char *
ferry_role_name(enum ferry_role r)
{
	if ((unsigned)r >= sizeof(role_names) / sizeof(role_names[0]))
		return "none";
	return role_names[r];
}

int
ferry_role_parse(const char *s)
{
	size_t i;

	for (i = 1; i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (strcmp(s, role_names[i]) == 0)
			return (int)i;
	return -1;
}

int
ferry_role_allows(enum ferry_role have, enum ferry_role need)
{
	if (have == need)
		return 1;
	/* Every operator key may read; an operator is not an approver. */
	return need == FERRY_ROLE_READ &&
	    (have == FERRY_ROLE_OPERATOR || have == FERRY_ROLE_APPROVER);
}

/* ------------------------------------------------------------------ */
/* client                                                              */

struct ferry_wire_client {
	struct ferry_wire_opts o;
	char *url;
	nng_socket sock;
	nng_ctx ctx;
	nng_aio *aio;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	struct ferry_chan *chan;
	uint64_t next_id;
	char role[16];
	uint32_t poll_hold;
	unsigned handshakes;
	uint8_t last_reject; /* reason of the last REJECT, for messages */
};

static void
aio_done(void *arg)
{
	struct ferry_wire_client *c = arg;

	pthread_mutex_lock(&c->mu);
	c->done = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/*
 * A connection went away: NNG 1.5.2 would resend the pending request as
 * the same bytes on the next connection, which the coordinator drops as a
 * replay (or no longer knows). Cancel it instead; the call seals it anew.
 */
static void
on_pipe_gone(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct ferry_wire_client *c = arg;

	(void)p;
	(void)ev;
	nng_aio_cancel(c->aio);
}

static int
stopped(const struct ferry_wire_client *c)
{
	return c->o.stop != NULL && *c->o.stop;
}

/*
 * Waits for the aio, cancelling it when stop is raised. Returns the NNG
 * result.
 */
static int
wait_aio(struct ferry_wire_client *c)
{
	struct timespec ts;

	pthread_mutex_lock(&c->mu);
	while (!c->done) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250 * 1000000L; /* notice stop within 1/4 s */
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		if (!c->done && stopped(c)) {
			pthread_mutex_unlock(&c->mu);
			nng_aio_cancel(c->aio);
			nng_aio_wait(c->aio);
			pthread_mutex_lock(&c->mu);
		}
	}
	c->done = 0;
	pthread_mutex_unlock(&c->mu);
	return nng_aio_result(c->aio);
}

/*
 * Sends one frame and waits for the answer. Returns 0 with *out (an
 * nng_msg), or the NNG error.
 */
static int
exchange(struct ferry_wire_client *c, const uint8_t *frame, size_t len,
    long timeout_ms, nng_msg **out)
{
	nng_msg *msg;
	int rv;

	*out = NULL;
	if ((rv = nng_msg_alloc(&msg, 0)) != 0)
		return rv;
	if ((rv = nng_msg_append(msg, frame, len)) != 0) {
		nng_msg_free(msg);
		return rv;
	}
	nng_aio_set_msg(c->aio, msg);
	/* With no connection a send waits for one: bound that too. */
	nng_aio_set_timeout(c->aio, (nng_duration)timeout_ms);
	nng_ctx_send(c->ctx, c->aio);
	rv = wait_aio(c);
	if (rv != 0) {
		nng_msg_free(nng_aio_get_msg(c->aio));
		return rv;
	}
	nng_aio_set_timeout(c->aio, (nng_duration)timeout_ms);
	nng_ctx_recv(c->ctx, c->aio);
	rv = wait_aio(c);
	if (rv == 0)
		*out = nng_aio_get_msg(c->aio);
	return rv;
}

int
ferry_wire_client_open(const struct ferry_wire_opts *o,
    struct ferry_wire_client **out, struct ferry_err *err)
{
	struct ferry_wire_client *c = xcalloc(1, sizeof(*c));
	int rv;

	*out = NULL;
	c->o = *o;
	c->url = xstrdup(o->url ? o->url : FERRY_WIRE_DEFAULT_URL);
	c->o.url = c->url;
	if (c->o.call_timeout_ms <= 0)
		c->o.call_timeout_ms = 10000;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	randombytes_buf(&c->next_id, sizeof(c->next_id));
	c->next_id &= ~(1ull << 63); /* room to count up */
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		ferry_errf(err, FERRY_EOPER, "cannot open a socket: %s",
		    nng_strerror(rv));
		goto fail;
	}
	/*
	 * No NNG resend: a resent request is the same ciphertext, which the
	 * coordinator's replay window drops. Calls retry with a new seal.
	 */
	if ((rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	         NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ,
	         FERRY_CHAN_SEALED_LEN(FERRY_WIRE_MAX_FRAME))) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 100)) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 5000)) != 0 ||
	    (rv = nng_ctx_open(&c->ctx, c->sock)) != 0 ||
	    (rv = nng_aio_alloc(&c->aio, aio_done, c)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, on_pipe_gone,
	         c)) != 0) {
		ferry_errf(err, FERRY_EOPER, "cannot set up the socket: %s",
		    nng_strerror(rv));
		goto fail;
	}
	rv = nng_dial(c->sock, c->url, NULL, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		ferry_errf(err,
		    rv == NNG_EADDRINVAL ? FERRY_EUSAGE : FERRY_EOPER,
		    "cannot dial the coordinator at '%s': %s", c->url,
		    nng_strerror(rv));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	ferry_wire_client_close(c);
	return err->code;
}

void
ferry_wire_client_close(struct ferry_wire_client *c)
{
	if (c == NULL)
		return;
	if (c->aio != NULL)
		nng_aio_stop(c->aio);
	nng_close(c->sock);
	if (c->aio != NULL)
		nng_aio_free(c->aio);
	ferry_chan_free(c->chan);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c->url);
	free(c);
}

const char *
ferry_wire_client_role(const struct ferry_wire_client *c)
{
	return c->role;
}

uint32_t
ferry_wire_client_poll_hold(const struct ferry_wire_client *c)
{
	return c->poll_hold;
}

unsigned
ferry_wire_client_handshakes(const struct ferry_wire_client *c)
{
	return c->handshakes;
}

/* Outcome of one attempt. */
enum attempt {
	ATTEMPT_OK,
	ATTEMPT_RETRY,     /* transport trouble: try again */
	ATTEMPT_HANDSHAKE, /* session unknown: handshake, then again */
	ATTEMPT_FATAL,     /* err is set */
};

static enum attempt
check_reject(const uint8_t *p, size_t n, const struct ferry_chan_hdr *h,
    struct ferry_wire_client *c, struct ferry_err *err)
{
	uint8_t why = n > FERRY_CHAN_HDR_LEN ? p[FERRY_CHAN_HDR_LEN] : 0;

	(void)h;
	c->last_reject = why;
	switch (why) {
	case FERRY_CHAN_REJECT_UNKNOWN_SESSION:
		return ATTEMPT_HANDSHAKE;
	case FERRY_CHAN_REJECT_VERSION:
		ferry_errf(err, FERRY_EOPER,
		    "the coordinator at '%s' does not speak protocol "
		    "version %d",
		    c->url, FERRY_CHAN_VERSION);
		return ATTEMPT_FATAL;
	default:
		return ATTEMPT_RETRY;
	}
}

/*
 * Sends one handshake frame; ATTEMPT_OK with the answer in *msg unless it
 * was a REJECT (whose reason decides) or there was none (retry).
 */
static enum attempt
hs_exchange(struct ferry_wire_client *c, const uint8_t *frame, size_t len,
    nng_msg **msg, struct ferry_err *e, struct ferry_err *err)
{
	struct ferry_chan_hdr h;
	enum attempt a;

	if (exchange(c, frame, len, c->o.call_timeout_ms, msg) != 0)
		return ATTEMPT_RETRY;
	if (ferry_chan_peek(nng_msg_body(*msg), nng_msg_len(*msg), &h, e) != 0)
		return ATTEMPT_RETRY;
	if (h.type != FERRY_CHAN_REJECT)
		return ATTEMPT_OK;
	a = check_reject(nng_msg_body(*msg), nng_msg_len(*msg), &h, c, err);
	/* An unknown session during a handshake: just start over. */
	return a == ATTEMPT_HANDSHAKE ? ATTEMPT_RETRY : a;
}

/* One handshake attempt: HS1/HS2, HS3/Welcome. */
static enum attempt
handshake(struct ferry_wire_client *c, struct ferry_err *err)
{
	struct ferry_chan_init *st = NULL;
	struct ferry_chan *chan = NULL;
	struct ferry_err e = { 0 };
	uint8_t hs1[FERRY_CHAN_HS1_LEN], hs3[FERRY_CHAN_HS3_LEN];
	uint8_t *plain = NULL;
	size_t plen = 0;
	nng_msg *msg = NULL;
	Ferry__Response *resp = NULL;
	Ferry__Welcome *w = NULL;
	enum attempt a = ATTEMPT_RETRY;
	int rv;

	ferry_chan_free(c->chan);
	c->chan = NULL;
	if (ferry_chan_init_start(c->o.key, c->o.pinned, &st, hs1, err) != 0)
		return ATTEMPT_FATAL;
	if ((a = hs_exchange(c, hs1, sizeof(hs1), &msg, &e, err)) != ATTEMPT_OK)
		goto out;
	a = ATTEMPT_RETRY;
	rv = ferry_chan_init_finish(st, nng_msg_body(msg), nng_msg_len(msg),
	    hs3, &chan, err);
	st = NULL;
	if (rv != 0) {
		/* A wrong coordinator key is not transport trouble. */
		a = ATTEMPT_FATAL;
		goto out;
	}
	nng_msg_free(msg);
	msg = NULL;
	if ((a = hs_exchange(c, hs3, sizeof(hs3), &msg, &e, err)) != ATTEMPT_OK)
		goto out;
	a = ATTEMPT_RETRY;
	plain = xmalloc(nng_msg_len(msg) + 1);
	if (ferry_chan_open(chan, nng_msg_body(msg), nng_msg_len(msg), plain,
	        nng_msg_len(msg), &plen, &e) != 0) {
		ferry_log_warn("dropped a frame from the coordinator", "error",
		    e.msg);
		goto out;
	}
	resp = ferry__response__unpack(NULL, plen, plain);
	if (resp == NULL || resp->status != FERRY__RESPONSE_STATUS__RESPONSE_OK)
		goto out;
	w = ferry__welcome__unpack(NULL, resp->body.len, resp->body.data);
	if (w == NULL)
		goto out;
	snprintf(c->role, sizeof(c->role), "%s", w->role);
	c->poll_hold = w->poll_hold_ms;
	c->chan = chan;
	chan = NULL;
	c->handshakes++;
	ferry_log_debug("session established", "coordinator", c->url, "role",
	    c->role);
	a = ATTEMPT_OK;
out:
	if (a == ATTEMPT_RETRY && e.code != 0)
		ferry_log_debug("handshake attempt failed", "error", e.msg);
	if (w != NULL)
		ferry__welcome__free_unpacked(w, NULL);
	if (resp != NULL)
		ferry__response__free_unpacked(resp, NULL);
	free(plain);
	if (msg != NULL)
		nng_msg_free(msg);
	ferry_chan_init_free(st);
	ferry_chan_free(chan);
	return a;
}

static int
status_code(Ferry__ResponseStatus s)
{
	switch (s) {
	case FERRY__RESPONSE_STATUS__RESPONSE_REFUSED:
		return FERRY_EFINDING;
	case FERRY__RESPONSE_STATUS__RESPONSE_BAD_REQUEST:
		return FERRY_EUSAGE;
	default:
		return FERRY_EOPER;
	}
}

/* One request attempt on the current session. */
static enum attempt
request(struct ferry_wire_client *c, const uint8_t *req, size_t reqlen,
    uint64_t id, long timeout_ms, uint8_t **reply, size_t *replylen,
    struct ferry_err *err)
{
	struct ferry_chan_hdr h;
	struct ferry_err e = { 0 };
	uint8_t *frame, *plain = NULL;
	size_t flen = FERRY_CHAN_SEALED_LEN(reqlen), plen = 0;
	nng_msg *msg = NULL;
	Ferry__Response *resp = NULL;
	enum attempt a = ATTEMPT_RETRY;
	int rv;

	frame = xmalloc(flen);
	if (ferry_chan_seal(c->chan, req, reqlen, frame, flen, err) != 0) {
		free(frame);
		return ATTEMPT_FATAL;
	}
	rv = exchange(c, frame, flen, timeout_ms, &msg);
	free(frame);
	if (rv != 0) {
		if (rv != NNG_ETIMEDOUT && rv != NNG_ECANCELED)
			ferry_log_debug("request failed", "error",
			    nng_strerror(rv));
		goto out;
	}
	if (ferry_chan_peek(nng_msg_body(msg), nng_msg_len(msg), &h, &e) != 0)
		goto out;
	if (h.type == FERRY_CHAN_REJECT) {
		a = check_reject(nng_msg_body(msg), nng_msg_len(msg), &h, c,
		    err);
		goto out;
	}
	plain = xmalloc(nng_msg_len(msg) + 1);
	if (ferry_chan_open(c->chan, nng_msg_body(msg), nng_msg_len(msg), plain,
	        nng_msg_len(msg), &plen, &e) != 0) {
		ferry_log_warn("dropped a frame from the coordinator", "error",
		    e.msg);
		goto out;
	}
	resp = ferry__response__unpack(NULL, plen, plain);
	if (resp == NULL || resp->request_id != id) {
		ferry_log_warn("dropped a reply that does not answer the "
		               "request",
		    "coordinator", c->url);
		goto out;
	}
	if (resp->status != FERRY__RESPONSE_STATUS__RESPONSE_OK) {
		ferry_errf(err, status_code(resp->status), "%s",
		    resp->error[0] ? resp->error
		                   : "refused by the coordinator");
		a = ATTEMPT_FATAL;
		goto out;
	}
	*replylen = resp->body.len;
	*reply = xmalloc(resp->body.len ? resp->body.len : 1);
	if (resp->body.len > 0) /* an empty body has data NULL */
		memcpy(*reply, resp->body.data, resp->body.len);
	a = ATTEMPT_OK;
out:
	if (resp != NULL)
		ferry__response__free_unpacked(resp, NULL);
	free(plain);
	if (msg != NULL)
		nng_msg_free(msg);
	return a;
}

int
ferry_wire_call(struct ferry_wire_client *c, enum ferry_op op,
    const uint8_t *body, size_t len, long wait_ms, uint8_t **reply,
    size_t *replylen, struct ferry_err *err)
{
	Ferry__Request rq = FERRY__REQUEST__INIT;
	uint8_t *req;
	size_t reqlen;
	int64_t start = ferry_mono_us();
	long backoff = 50;
	enum attempt a;
	int rc;

	*reply = NULL;
	*replylen = 0;
	c->last_reject = 0;
	rq.format_version = FERRY_WIRE_FORMAT;
	rq.request_id = c->next_id++;
	rq.op = (uint32_t)op;
	rq.body.data = (uint8_t *)body;
	rq.body.len = len;
	reqlen = ferry__request__get_packed_size(&rq);
	if (reqlen > FERRY_WIRE_MAX_FRAME)
		return ferry_errf(err, FERRY_EUSAGE,
		    "request too large: %zu bytes (limit %u)", reqlen,
		    FERRY_WIRE_MAX_FRAME);
	req = xmalloc(reqlen);
	ferry__request__pack(&rq, req);
	for (;;) {
		if (stopped(c)) {
			rc = ferry_errf(err, FERRY_EOPER, "interrupted");
			break;
		}
		if (c->chan == NULL)
			a = handshake(c, err);
		else
			a = request(c, req, reqlen, rq.request_id,
			    c->o.call_timeout_ms + wait_ms, reply, replylen,
			    err);
		if (a == ATTEMPT_OK && c->chan != NULL && *reply != NULL) {
			rc = 0;
			break;
		}
		if (a == ATTEMPT_FATAL) {
			rc = err->code;
			break;
		}
		if (a == ATTEMPT_HANDSHAKE) {
			ferry_chan_free(c->chan);
			c->chan = NULL;
			continue;
		}
		if (a == ATTEMPT_OK)
			continue; /* handshake done: now the request */
		if (c->o.give_up_ms > 0 &&
		    ferry_mono_us() - start > c->o.give_up_ms * 1000) {
			rc = ferry_errf(err, FERRY_EOPER,
			    c->last_reject == FERRY_CHAN_REJECT_BUSY
			        ? "the coordinator at '%s' stayed busy for "
			          "%ld ms (it cannot reach its state store, "
			          "or has too many handshakes in flight: see "
			          "its log)"
			        : "no answer from the coordinator at '%s' "
			          "within %ld ms",
			    c->url, c->o.give_up_ms);
			break;
		}
		ferry_sleep_ms(backoff, c->o.stop);
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
	free(req);
	return rc;
}

int
ferry_wire_call_msg(struct ferry_wire_client *c, enum ferry_op op,
    const ProtobufCMessage *req, long wait_ms,
    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **reply,
    struct ferry_err *err)
{
	size_t len = protobuf_c_message_get_packed_size(req), rlen = 0;
	uint8_t *body = xmalloc(len ? len : 1), *rep = NULL;
	int rc;

	*reply = NULL;
	protobuf_c_message_pack(req, body);
	rc = ferry_wire_call(c, op, body, len, wait_ms, &rep, &rlen, err);
	free(body);
	if (rc != 0)
		return rc;
	*reply = protobuf_c_message_unpack(desc, NULL, rlen, rep);
	free(rep);
	if (*reply == NULL)
		return ferry_errf(err, FERRY_EOPER,
		    "malformed reply from the coordinator");
	return 0;
}
