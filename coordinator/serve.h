/*
 * serve.h -- the coordinator's network loop: an NNG REP listener with a
 * pool of contexts, sealed sessions (common/channel.h), the dispatch of
 * the wire operations (common/wireops.def), held polls.
 *
 * NNG's callbacks only move contexts between states and queue received
 * frames; one thread (the caller of ferry_serve_run) does all the work:
 * sessions, the state store, replies. Nothing is shared but the queue.
 */
#ifndef FERRY_COORDINATOR_SERVE_H
#define FERRY_COORDINATOR_SERVE_H

#include <signal.h>
#include <stdint.h>

#include "err.h"
#include "keys.h"
#include "store.h"

struct ferry_serve_opts {
	const char *listen_url;         /* tcp://127.0.0.1:7450 */
	const struct ferry_seckey *key; /* the coordinator's identity */
	struct ferry_store *state;
	uint32_t poll_hold_ms; /* longest a poll is held; default 20 s */
	int auto_accept;       /* demos only: new agents accepted at once */
	volatile sig_atomic_t *stop;
	/* Called once listening, with the bound port (may be NULL). */
	void (*on_listen)(void *arg, int port);
	void *arg;
};

/* Runs until *stop. Returns 0 after a clean shutdown. */
int ferry_serve_run(const struct ferry_serve_opts *o, struct ferry_err *err);

#endif
