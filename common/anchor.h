/*
 * anchor.h -- anti-rollback: the highest bundle an agent has accepted.
 *
 * Kept twice: in the agent's state directory (a small text file written
 * atomically) and in the database, in ferry.agent_state (Ferry's own
 * schema, never beside _prisma_migrations). The agent trusts the higher of
 * the two. A database that is behind its state directory was restored
 * from a backup (or swapped): the agent refuses unless told otherwise.
 */
#ifndef FERRY_ANCHOR_H
#define FERRY_ANCHOR_H

#include <stdint.h>

#include "bundle.h"
#include "db.h"
#include "err.h"

struct ferry_anchor {
	int present;
	uint64_t sequence;
	uint8_t digest[32];
};

/* Reads STATE_DIR/<project>.anchor; absent is not an error. */
int ferry_anchor_read_file(const char *state_dir, const char *project,
    struct ferry_anchor *out, struct ferry_err *err);

/* Writes it atomically (temporary file, fsync, rename, fsync dir). */
int ferry_anchor_write_file(const char *state_dir, const char *project,
    const struct ferry_anchor *a, struct ferry_err *err);

/* Reads the project's row of ferry.agent_state; absent is not an error. */
int ferry_anchor_read_db(struct ferry_db *db, const char *project,
    struct ferry_anchor *out, struct ferry_err *err);

/*
 * Records a in ferry.agent_state (creating it), never lowering the stored
 * sequence.
 */
int ferry_anchor_write_db(struct ferry_db *db, const char *project,
    const char *agent, const struct ferry_anchor *a, struct ferry_err *err);

/*
 * Decides whether bundle b may be applied given the two anchors. Refuses
 * (FERRY_EFINDING, naming the reason) a bundle of another project, an
 * older sequence, an equal sequence with another digest, a next sequence
 * that does not chain to the stored digest, a sequence that skips ahead
 * (its chain cannot be checked), and a database behind the
 * state directory unless accept_restored_db. On success *next is the
 * anchor to record before applying.
 */
int ferry_anchor_check(const struct ferry_anchor *file,
    const struct ferry_anchor *dbstate, const char *project,
    const struct ferry_bundle *b, int accept_restored_db,
    struct ferry_anchor *next, struct ferry_err *err)
    __attribute__((warn_unused_result));

/*
 * The whole anti-rollback step for applying b: under the migration lock
 * (so two agents cannot both pass with rival bundles; the engine takes
 * the lock again, it is re-entrant), reads both anchors, checks b and
 * records it in the database and then the state directory. With dry_run
 * it only checks, without the lock.
 */
int ferry_anchor_advance(struct ferry_db *db, const char *state_dir,
    const char *project, const char *agent, const struct ferry_bundle *b,
    int accept_restored_db, int dry_run, long lock_wait_ms,
    struct ferry_err *err);

#endif
