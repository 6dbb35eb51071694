/*
 * shadow.h -- shadow replay and drift checks.
 *
 * Shadow replay resets a scratch database (the "shadow"), replays an
 * ordered list of migrations into it from empty, one at a time with the
 * engine, and records the schema document and its digest after each one:
 * the digest per prefix. The result is a report (JSON, saved to a file)
 * that later tells what a database that has applied the first k
 * migrations must look like.
 *
 * A drift check reads a database's history, finds the prefix of the
 * report it has applied, introspects the database and compares its
 * digest with the report's digest for that prefix; on a difference the
 * report's document for that prefix gives the diff.
 *
 * docs/shadow-and-drift.md describes the rules and the report.
 */
#ifndef FERRY_SHADOW_H
#define FERRY_SHADOW_H

#include <stddef.h>

#include "db.h"
#include "err.h"
#include "migrations.h"
#include "schema.h"
#include "schemadiff.h"

/* The "format" of a report. */
#define FERRY_SHADOW_FORMAT "ferry-shadow-report/1"

/* The comment that marks a database as a Ferry shadow. */
#define FERRY_SHADOW_MARK "ferry shadow database"

/* A report file is refused beyond this size. */
#define FERRY_SHADOW_MAX_BYTES ((size_t)1 << 30)

struct ferry_shadow_report;

struct ferry_shadow_opts {
	const char *shadow_url; /* required */
	/* The target database, to refuse a shadow that is the same database;
	   NULL when none is known. */
	const char *target_url;
	int init_shadow; /* mark an unmarked shadow instead of refusing it */
	/* Extensions created before the first migration. */
	const char *const *extensions;
	size_t nextensions;
	/* Schemas in scope besides the shadow URL's own (also reset). */
	const char *const *schemas;
	size_t nschemas;
	/* Called after each migration replayed (may be NULL). */
	void (*on_step)(void *ctx, size_t i, const char *name,
	    const char *digest);
	/* Called after each migration replayed with the schema documents
	   before and after it, borrowed for the call (may be NULL): what the
	   lint's shadow rules compare. */
	void (*on_migration)(void *ctx, size_t i,
	    const struct ferry_migration *m, const struct ferry_schema *before,
	    const struct ferry_schema *after);
	void *ctx; /* for on_step and on_migration */
};

/*
 * Resets the shadow database and replays migs into it. Refuses
 * (FERRY_EFINDING) a shadow that is the target database or that is not
 * marked (unless opts->init_shadow); a migration that fails is
 * FERRY_EFINDING with a message naming it, the statement, the line and the
 * SQLSTATE; an extension the server does not have, a lost connection or a
 * server error is FERRY_EOPER. On success *out is the report
 * (ferry_shadow_report_free it).
 */
int ferry_shadow_run(const struct ferry_shadow_opts *opts,
    const struct ferry_migrations *migs, struct ferry_shadow_report **out,
    struct ferry_err *err);

/* Loads a report file; FERRY_EUSAGE for an invalid one, FERRY_EOPER when
 * it cannot be read. */
int ferry_shadow_report_load(const char *path, struct ferry_shadow_report **out,
    struct ferry_err *err);

/* Writes the report to path atomically. */
int ferry_shadow_report_save(const struct ferry_shadow_report *r,
    const char *path, struct ferry_err *err);

void ferry_shadow_report_free(struct ferry_shadow_report *r);

/* Number of migrations in the report. */
size_t ferry_shadow_report_count(const struct ferry_shadow_report *r);

/* The digest after the first k migrations (k = 0: the empty schema). */
const char *
ferry_shadow_report_digest(const struct ferry_shadow_report *r, size_t k);

/* Name of migration i (0-based). */
const char *
ferry_shadow_report_name(const struct ferry_shadow_report *r, size_t i);

int ferry_shadow_report_pg_major(const struct ferry_shadow_report *r);

/*
 * Checks that the report was made from exactly migs (same names and
 * checksums, in order). FERRY_EFINDING naming the first difference.
 */
int ferry_shadow_report_matches(const struct ferry_shadow_report *r,
    const struct ferry_migrations *migs, struct ferry_err *err);

/* The result of a drift check. */
struct ferry_shadow_drift {
	size_t applied;                          /* prefix length k */
	char expected[FERRY_SHA256_HEX_LEN + 1]; /* the report's digest */
	char actual[FERRY_SHA256_HEX_LEN + 1];   /* the database's */
	struct ferry_schema_diff *diff; /* report → database; NULL if clean */
};

void ferry_shadow_drift_release(struct ferry_shadow_drift *d);

/*
 * Compares the database behind db with the report. The history must hold
 * exactly the first k migrations of the report, with the report's
 * checksums, none failed; otherwise FERRY_EFINDING with the reason (and no
 * diff). Then the digests: 0 when equal, FERRY_EFINDING with out->diff set
 * when not. FERRY_EOPER when the check cannot be made (server error,
 * another PostgreSQL major version, another schema). The connection must
 * not be inside a transaction. out is filled in every case; release it.
 */
int ferry_shadow_check_drift(struct ferry_db *db,
    const struct ferry_shadow_report *r, struct ferry_shadow_drift *out,
    struct ferry_err *err);

#endif
