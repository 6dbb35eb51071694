/*
 * client.h -- how the ferry CLI reaches the coordinator: a sealed session
 * authenticated by the operator's key (common/wire.h).
 *
 * Where: --coordinator URL, else FERRY_COORDINATOR, else
 * tcp://127.0.0.1:7450. Who: --key FILE, else FERRY_KEY. Whom to trust:
 * --coordinator-key FILE.pub, else FERRY_COORDINATOR_KEY.
 */
#ifndef FERRY_COORDINATOR_CLIENT_H
#define FERRY_COORDINATOR_CLIENT_H

#include <protobuf-c/protobuf-c.h>

#include "err.h"
#include "keys.h"
#include "wire.h"

struct client_opts {
	const char *url;
	const char *key;
	const char *coordinator_key;
	long timeout_ms; /* give up after; default 15 s */
};

/* getopt_long entries for the three options (values 0x100..0x102). */
#define CLIENT_LONGOPTS                                           \
	{ "coordinator", required_argument, NULL, 0x100 },        \
	    { "key", required_argument, NULL, 0x101 },            \
	{                                                         \
		"coordinator-key", required_argument, NULL, 0x102 \
	}

#define CLIENT_HELP                                                     \
	"  --coordinator URL     the coordinator (FERRY_COORDINATOR; "  \
	"default\n"                                                     \
	"                        " FERRY_WIRE_DEFAULT_URL ")\n"         \
	"  --key FILE            your operator key (FERRY_KEY)\n"       \
	"  --coordinator-key F   the coordinator's public key to pin\n" \
	"                        (FERRY_COORDINATOR_KEY)\n"

/* Takes one of the CLIENT_LONGOPTS; returns 1 if c was one. */
int client_opt(struct client_opts *o, int c, const char *arg);

struct client;

int
client_open(struct client_opts *o, struct client **out, struct ferry_err *err);
void client_close(struct client *c);

/* One call: packs req, unpacks the reply with desc (free with
   protobuf_c_message_free_unpacked). */
int client_call(struct client *c, enum ferry_op op, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **reply,
    struct ferry_err *err);

#endif
