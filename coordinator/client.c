/*
 * client.c -- the CLI's connection to the coordinator (see client.h).
 */
#include "client.h"

#include <stdlib.h>

#include "util.h"

struct client {
	struct ferry_seckey *key;
	struct ferry_pubkey pinned;
	struct ferry_wire_client *wc;
};

int
client_opt(struct client_opts *o, int c, const char *arg)
{
	switch (c) {
	case 0x100:
		o->url = arg;
		return 1;
	case 0x101:
		o->key = arg;
		return 1;
	case 0x102:
		o->coordinator_key = arg;
		return 1;
	}
	return 0;
}

static const char *
pick(const char *v, const char *env)
{
	const char *e;

	if (v != NULL && v[0] != '\0')
		return v;
	e = getenv(env);
	return e != NULL && e[0] != '\0' ? e : NULL;
}

int
client_open(struct client_opts *o, struct client **out, struct ferry_err *err)
{
	struct client *c = xcalloc(1, sizeof(*c));
	struct ferry_wire_opts wo = { 0 };
	const char *key = pick(o->key, "FERRY_KEY");
	const char *pin = pick(o->coordinator_key, "FERRY_COORDINATOR_KEY");
	int rc;

	*out = NULL;
	if (key == NULL) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "no operator key: pass --key FILE or set FERRY_KEY");
		goto fail;
	}
	if (pin == NULL) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "no coordinator key to pin: pass --coordinator-key "
		    "FILE.pub or set FERRY_COORDINATOR_KEY");
		goto fail;
	}
	if ((rc = ferry_seckey_load(key, NULL, &c->key, err)) != 0 ||
	    (rc = ferry_pubkey_load(pin, &c->pinned, err)) != 0)
		goto fail;
	wo.url = pick(o->url, "FERRY_COORDINATOR");
	wo.key = c->key;
	wo.pinned = &c->pinned;
	wo.call_timeout_ms = 5000;
	wo.give_up_ms = o->timeout_ms > 0 ? o->timeout_ms : 15000;
	if ((rc = ferry_wire_client_open(&wo, &c->wc, err)) != 0)
		goto fail;
	*out = c;
	return 0;
fail:
	client_close(c);
	return rc;
}

void
client_close(struct client *c)
{
	if (c == NULL)
		return;
	ferry_wire_client_close(c->wc);
	ferry_seckey_free(c->key);
	free(c);
}

int
client_call(struct client *c, enum ferry_op op, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **reply,
    struct ferry_err *err)
{
	return ferry_wire_call_msg(c->wc, op, req, 0, desc, reply, err);
}
