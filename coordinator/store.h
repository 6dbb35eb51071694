/*
 * store.h -- the coordinator's durable state in PostgreSQL: operator keys,
 * agents and their keys, bundles, work items, reports, the audit log.
 *
 * The schema is coordinator/state/NAME/migration.sql, embedded in the binary and applied
 * at start-up by Ferry's own engine. Every change the coordinator
 * acknowledges to a peer is committed first. Not thread-safe: the
 * coordinator's main loop is its only user.
 */
#ifndef FERRY_COORDINATOR_STORE_H
#define FERRY_COORDINATOR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "ferry.pb-c.h"
#include "keys.h"
#include "wire.h"

struct ferry_store_migration {
	const char *name;
	const char *sql;
	size_t len;
};

extern const struct ferry_store_migration ferry_store_migrations[];
extern const size_t ferry_store_migrations_n;

struct ferry_store;

/* Connects and brings the schema up to date. */
int ferry_store_open(const char *conninfo, struct ferry_store **out,
    struct ferry_err *err);
void ferry_store_close(struct ferry_store *s);

/* Registers (or re-roles) an operator key. */
int ferry_store_add_operator(struct ferry_store *s,
    const struct ferry_pubkey *pk, enum ferry_role role, struct ferry_err *err);

/* Lists operator keys (release with ferry_store_release). */
int ferry_store_list_operators(struct ferry_store *s,
    Ferry__OperatorsListReply *out, struct ferry_err *err);

/*
 * Removes an operator key; *pk receives it (to cut its sessions off).
 * Refuses to remove the last key with the operator role (nobody could
 * manage the coordinator any more).
 */
int ferry_store_remove_operator(struct ferry_store *s, const char *key_id,
    const char *actor, uint8_t pk[32], struct ferry_err *err);

/*
 * The role of a key: operator roles from operator_keys, FERRY_ROLE_AGENT
 * for a known agent key (*agent_id, *agent_state filled; caller frees),
 * else FERRY_ROLE_NONE.
 */
int ferry_store_key_role(struct ferry_store *s, const uint8_t pk[32],
    enum ferry_role *role, char **agent_id, char **agent_state,
    struct ferry_err *err);

/*
 * An agent announces itself. A new id is recorded as pending (accepted
 * when auto_accept); a known id with the same key updates its details; a
 * known id with another key is refused (FERRY_EFINDING). *state is the
 * agent's state afterwards (caller frees).
 */
int ferry_store_register_agent(struct ferry_store *s, const uint8_t pk[32],
    const Ferry__RegisterRequest *r, const char *address, int auto_accept,
    char **state, struct ferry_err *err);

/*
 * accept / reject / revoke. Refuses transitions that make no sense
 * (accepting a revoked key, ...) with FERRY_EFINDING naming both states.
 * *pk receives the agent's key (to cut its sessions off).
 */
int ferry_store_set_agent_state(struct ferry_store *s, const char *agent_id,
    const char *to, const char *actor, uint8_t pk[32], struct ferry_err *err);

int ferry_store_list_agents(struct ferry_store *s, Ferry__AgentsListReply *out,
    struct ferry_err *err);

/* Stores a bundle file (idempotent). hex = its SHA-256 in hex. */
int ferry_store_put_bundle(struct ferry_store *s, const char *hex,
    const uint8_t *data, size_t len, struct ferry_err *err);
/* Reads a bundle file; *data malloc'ed. FERRY_EFINDING when unknown. */
int ferry_store_get_bundle(struct ferry_store *s, const char *hex,
    uint8_t **data, size_t *len, struct ferry_err *err);

/*
 * Creates one work item per agent: every accepted agent of environment
 * (when set) or the named agents (which must exist and be accepted).
 * Fills out (work ids and agent ids, caller frees with
 * ferry_store_release).
 */
int ferry_store_dispatch(struct ferry_store *s, const Ferry__DispatchRequest *r,
    const char *bundle_hex, const char *actor, Ferry__DispatchReply *out,
    struct ferry_err *err);

/*
 * The agent's open work items (queued or delivered but not reported),
 * oldest first, marked delivered. Fills out->items (free with
 * ferry_store_release).
 */
int ferry_store_take_work(struct ferry_store *s, const char *agent_id,
    Ferry__PollReply *out, struct ferry_err *err);

/* Does the agent have open work? (cheap check for parked polls) */
int ferry_store_has_work(struct ferry_store *s, const char *agent_id, int *has,
    struct ferry_err *err);

/*
 * Stores a report and closes its work item in one transaction. A report
 * id seen before is acknowledged again (*duplicate = 1), stored once.
 * Refuses a report for a work item of another agent.
 */
int ferry_store_store_report(struct ferry_store *s, const char *agent_id,
    const Ferry__ReportRequest *r, const uint8_t *raw, size_t rawlen,
    int *duplicate, struct ferry_err *err);

int
ferry_store_list_work(struct ferry_store *s, const Ferry__WorkListRequest *r,
    Ferry__WorkListReply *out, struct ferry_err *err);

/*
 * Frees what a reply filled in by this module holds (every string, array
 * and submessage of it is the module's own allocation) and resets it.
 */
void ferry_store_release(ProtobufCMessage *m);

/* Updates last_seen and the address of an agent (best effort). */
void ferry_store_touch_agent(struct ferry_store *s, const char *agent_id,
    const char *address);

#endif
