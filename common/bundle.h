/*
 * bundle.h -- signed, content-addressed, hash-chained migration bundles.
 *
 * A bundle file is an encoded ferry.SignedBundle (proto/ferry.proto): the
 * exact encoded ferry.Bundle bytes plus an Ed25519 signature over
 * "ferry-bundle-v1\0" || SHA-256(bundle bytes). The bundle digest is that
 * SHA-256, over the stored bytes, never over a re-encoding. The signature
 * is checked before the Bundle bytes are decoded, so unauthenticated input
 * never reaches the decoder. Every byte of the file outside the signature
 * is covered by it: the SignedBundle wrapper must hold nothing but its
 * known fields (format_version, bundle, signature, key_id), each once.
 */
#ifndef FERRY_BUNDLE_H
#define FERRY_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "keys.h"
#include "migrations.h"

#define FERRY_BUNDLE_FORMAT 1
#define FERRY_BUNDLE_MAX_BYTES (512u * 1024 * 1024)
#define FERRY_BUNDLE_DOMAIN "ferry-bundle-v1"

struct ferry_bundle;

struct ferry_bundle_params {
	const char *project;
	const struct ferry_bundle *parent; /* NULL for the first */
	const char *note;                  /* may be NULL */
	int allow_rewrite;
	int64_t created_unix_ms; /* 0 = now */
};

/*
 * Builds and signs a bundle of migs (in their order). Refuses, with
 * FERRY_EFINDING, when the parent's migrations are not an unchanged prefix
 * of migs (a rewritten history) unless allow_rewrite. Sequence = parent's
 * + 1, or 1. *out is malloc'ed (free()).
 */
int ferry_bundle_create(const struct ferry_migrations *migs,
    const struct ferry_bundle_params *p, const struct ferry_seckey *key,
    uint8_t **out, size_t *outlen, struct ferry_err *err);

/*
 * Verifies data against the trusted keys (signature first, then decode,
 * format version, each migration's checksum against its SQL) and returns
 * the decoded bundle. Every refusal is FERRY_EFINDING with the exact
 * reason (FERRY_EUSAGE for unreadable input is never used: a bad file is a
 * refused verification).
 */
int ferry_bundle_open(const uint8_t *data, size_t len,
    const struct ferry_pubkey *trusted, size_t ntrusted,
    struct ferry_bundle **out, struct ferry_err *err)
    __attribute__((warn_unused_result));

/* Reads a file and opens it (I/O errors are FERRY_EOPER). */
int ferry_bundle_open_file(const char *path, const struct ferry_pubkey *trusted,
    size_t ntrusted, struct ferry_bundle **out, struct ferry_err *err)
    __attribute__((warn_unused_result));

/*
 * Decodes without checking the signature, for display only
 * (`ferry bundle inspect`); the result says it is unverified.
 */
int ferry_bundle_decode_unverified(const uint8_t *data, size_t len,
    struct ferry_bundle **out, struct ferry_err *err);

/*
 * Checks that child follows parent: same project, sequence + 1, parent
 * digest, and (unless child allows a rewrite) parent's migrations an
 * unchanged prefix of child's.
 */
int ferry_bundle_check_parent(const struct ferry_bundle *child,
    const struct ferry_bundle *parent, struct ferry_err *err)
    __attribute__((warn_unused_result));

void ferry_bundle_free(struct ferry_bundle *b);

int ferry_bundle_verified(const struct ferry_bundle *b);
const char *ferry_bundle_project(const struct ferry_bundle *b);
uint64_t ferry_bundle_sequence(const struct ferry_bundle *b);
const uint8_t *ferry_bundle_digest(const struct ferry_bundle *b); /* 32 */
/* 32 bytes, or NULL for the first bundle. */
const uint8_t *ferry_bundle_parent_digest(const struct ferry_bundle *b);
int64_t ferry_bundle_created_ms(const struct ferry_bundle *b);
const char *ferry_bundle_creator_key_id(const struct ferry_bundle *b);
const char *ferry_bundle_note(const struct ferry_bundle *b);
int ferry_bundle_allow_rewrite(const struct ferry_bundle *b);
/* The migrations, in bundle order; owned by the bundle. */
const struct ferry_migrations *
ferry_bundle_migrations(const struct ferry_bundle *b);

#endif
