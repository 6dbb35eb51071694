/*
 * fuzz_common.h -- fixed test keys and helpers shared by the fuzz targets.
 *
 * The keys are TEST KEYS whose secret halves are in this directory's
 * source: nothing may ever trust them. They make runs reproducible: the
 * seed corpus holds bundles and approvals signed with them.
 */
#ifndef FERRY_FUZZ_COMMON_H
#define FERRY_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "keys.h"

enum fuzz_key {
	FUZZ_KEY_RELEASE, /* signs bundles; the fuzzed agents trust it */
	FUZZ_KEY_ALICE,   /* approvers of "prod" */
	FUZZ_KEY_BOB,
	FUZZ_KEY_MALLORY, /* trusted by nobody */
	FUZZ_NKEYS,
};

/* What the approval targets check against. */
#define FUZZ_ENVIRONMENT "prod"
#define FUZZ_ROLLOUT "r-1"
/* "Now" for the approval targets: 2026-01-01T00:00:00Z. */
#define FUZZ_NOW_MS INT64_C(1767225600000)
/* Expiry of the seed approvals: 2100-01-01T00:00:00Z. */
#define FUZZ_EXPIRES_MS INT64_C(4102444800000)

/* Loads (once) and returns a fixed test key; aborts if it cannot. */
const struct ferry_seckey *fuzz_key(enum fuzz_key which);

/* The text of a fixed test key's secret key file (kdf none). */
const char *fuzz_key_file(enum fuzz_key which);

/* The public half of a fixed test key. */
const struct ferry_pubkey *fuzz_pub(enum fuzz_key which);

/* The bundle digest the seed approvals approve: SHA-256("ferry-fuzz"). */
const uint8_t *fuzz_bundle_digest(void);

/*
 * Builds a bundle of m signed with the release key, created at
 * FUZZ_NOW_MS (so the same input gives the same bytes). Returns the
 * malloc'ed file; aborts on error.
 */
uint8_t *fuzz_make_bundle(const struct ferry_migrations *m,
    const struct ferry_bundle *parent, int allow_rewrite, const char *note,
    size_t *len);

/*
 * The parent bundle of the seeds: project "fuzz", sequence 1, one
 * migration, created at FUZZ_NOW_MS and signed with the release key, so
 * that its digest is the same in every run. Built once; aborts on error.
 */
const struct ferry_bundle *fuzz_parent_bundle(void);

/* Appends the parent bundle's one migration to m. */
void fuzz_add_init(struct ferry_migrations *m);

/*
 * Reads every field of an opened bundle, so that AddressSanitizer checks
 * what the decoder built; aborts if a migration's record is inconsistent.
 */
void fuzz_bundle_walk(const struct ferry_bundle *b);

/*
 * Writes data to the target's own scratch file (mode 0600, created once
 * under TMPDIR and removed at exit) and returns its path; aborts on I/O
 * errors, which are not what is being fuzzed.
 */
const char *fuzz_scratch_file(const uint8_t *data, size_t len);

/*
 * Reads every byte of a NUL-terminated string or a byte range, so that
 * AddressSanitizer sees any dangling or short buffer a result points to.
 * Returns a value the caller should pass to fuzz_consume.
 */
extern volatile unsigned fuzz_sink;
unsigned fuzz_touch(const void *p, size_t len);
unsigned fuzz_touch_str(const char *s);
void fuzz_consume(unsigned v);

/* Aborts with a message: an oracle of a fuzz target failed. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

#endif
