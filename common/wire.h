/*
 * wire.h -- the wire operations (common/wireops.def) and the client side
 * of the coordinator protocol: an NNG REQ socket carrying a sealed channel
 * (channel.h), requests retried at the application level.
 *
 * A call seals its Request anew on every attempt (fresh counter) but keeps
 * its request id, so the coordinator can answer a retry from its reply
 * cache and never runs an operation twice for one request. NNG's own
 * resend is off: a resent frame would be the same ciphertext, which the
 * replay window drops. When the coordinator forgot the session (a
 * restart), it answers REJECT, and the client runs the handshake again.
 */
#ifndef FERRY_WIRE_H
#define FERRY_WIRE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "err.h"
#include "keys.h"

#define FERRY_WIRE_FORMAT 1
/* Largest frame either side accepts (NNG_OPT_RECVMAXSZ). */
#define FERRY_WIRE_MAX_FRAME (16u * 1024 * 1024)
/* Bundles travel to agents in chunks of this size. */
#define FERRY_WIRE_CHUNK (1024u * 1024)
#define FERRY_WIRE_DEFAULT_URL "tcp://127.0.0.1:7450"

enum ferry_role {
	FERRY_ROLE_NONE = 0, /* unknown key: may only register as an agent */
	FERRY_ROLE_AGENT,
	FERRY_ROLE_READ,
	FERRY_ROLE_OPERATOR,
	FERRY_ROLE_APPROVER,
};

enum ferry_op {
#define FERRY_OP(name, num, role, req, rep, summary) FERRY_OP_##name = num,
#include "wireops.def"
#undef FERRY_OP
};

struct ferry_op_info {
	enum ferry_op op;
	const char *name; /* "AGENTS_LIST" */
	enum ferry_role role;
	const char *summary;
};

/* The entry for op, or NULL for an unknown number. */
const struct ferry_op_info *ferry_op_lookup(uint32_t op);

/* "agent", "read", "operator", "approver", "none"; and back (-1). */
const char *ferry_role_name(enum ferry_role r);
int ferry_role_parse(const char *s);

/* May a peer of role have run op? (OPERATOR includes READ.) */
int ferry_role_allows(enum ferry_role have, enum ferry_role need);

struct ferry_wire_client;

struct ferry_wire_opts {
	const char *url;                   /* tcp://host:port */
	const struct ferry_seckey *key;    /* our identity */
	const struct ferry_pubkey *pinned; /* the coordinator's key */
	long call_timeout_ms;              /* one attempt; default 10 s */
	long give_up_ms;                   /* 0: retry until *stop */
	volatile sig_atomic_t *stop;       /* may be NULL */
};

/*
 * Opens the socket and starts dialing (in the background: the
 * coordinator may be down). Handshakes lazily, on the first call.
 */
int ferry_wire_client_open(const struct ferry_wire_opts *o,
    struct ferry_wire_client **out, struct ferry_err *err);

void ferry_wire_client_close(struct ferry_wire_client *c);

/*
 * One operation: body is the encoded request message; on success *reply
 * (malloc'ed, free()) holds the encoded reply message. wait_ms is how long
 * the coordinator may hold the request (polls); the attempt's timeout is
 * call_timeout_ms + wait_ms. A refusal by the coordinator (status other
 * than OK) is returned as is: FERRY_EFINDING for REFUSED, FERRY_EUSAGE for
 * BAD_REQUEST, FERRY_EOPER for ERROR, with its message. Transport trouble
 * is retried until give_up_ms or *stop, then FERRY_EOPER.
 */
int ferry_wire_call(struct ferry_wire_client *c, enum ferry_op op,
    const uint8_t *body, size_t len, long wait_ms, uint8_t **reply,
    size_t *replylen, struct ferry_err *err);

/*
 * ferry_wire_call with messages: packs req, unpacks the reply with desc
 * (free it with protobuf_c_message_free_unpacked).
 */
int ferry_wire_call_msg(struct ferry_wire_client *c, enum ferry_op op,
    const ProtobufCMessage *req, long wait_ms,
    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **reply,
    struct ferry_err *err);

/* The role the coordinator gave us in its Welcome ("" before). */
const char *ferry_wire_client_role(const struct ferry_wire_client *c);
/* The coordinator's longest poll hold, from its Welcome (ms). */
uint32_t ferry_wire_client_poll_hold(const struct ferry_wire_client *c);
/* Handshakes completed so far (a test and log aid). */
unsigned ferry_wire_client_handshakes(const struct ferry_wire_client *c);

#endif
