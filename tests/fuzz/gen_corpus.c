/*
 * gen_corpus.c -- writes the signed seeds of the fuzz corpus: bundles and
 * approvals made with the fixed test keys, the test key files and their
 * public key lines. Text seeds (lock files, SQL) are kept by hand.
 *
 * usage: fuzz_gen_corpus CORPUS_DIR
 *
 * Bundles and approvals come out byte for byte the same on every run
 * (fixed creation times, deterministic Ed25519), except approvals, whose
 * creation time is the time of the run.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "approval.h"
#include "bundle.h"
#include "ferry.pb-c.h"
#include "fuzz_common.h"
#include "hash.h"
#include "migrations.h"
#include "util.h"

static const char *root;

static void
put(const char *target, const char *name, const void *data, size_t len)
{
	char *dir = xasprintf("%s/%s", root, target);
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		fuzz_fail("cannot create '%s'", dir);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		fuzz_fail("cannot write '%s'", path);
	free(path);
	free(dir);
}

/* Writes a bundle file and, for bundle_signed, its inner Bundle bytes. */
static void
put_bundle(const char *name, const uint8_t *file, size_t len)
{
	Ferry__SignedBundle *sb;
	char *inner = xasprintf("%s.bundle", name);
	char *outer = xasprintf("%s.fbundle", name);

	put("bundle_open", outer, file, len);
	sb = ferry__signed_bundle__unpack(NULL, len, file);
	if (sb == NULL)
		fuzz_fail("cannot unpack '%s'", name);
	put("bundle_signed", inner, sb->bundle.data, sb->bundle.len);
	ferry__signed_bundle__free_unpacked(sb, NULL);
	free(outer);
	free(inner);
}

static void
make_bundles(void)
{
	static const char down[] = "DROP TABLE b;\n";
	static const char *const sql[] = {
		"CREATE TABLE b (id bigint PRIMARY KEY, a int REFERENCES a);\n",
		"-- ferry:lock_timeout=5s\n"
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS b_a ON public.b "
		"(a);\n",
		"CREATE TYPE mood AS ENUM ('sad');\n"
		"ALTER TYPE mood ADD VALUE 'happy';\n"
		"CREATE TABLE c (m mood DEFAULT 'happy');\n",
		"BEGIN;\nALTER TABLE a ADD COLUMN n text;\nCOMMIT;\n",
	};
	static const char *const names[] = { "20260102000000_b",
		"20260103000000_b_index", "20260104000000_enum",
		"20260105000000_wrapped" };
	struct ferry_migrations *m = ferry_migrations_new();
	uint8_t *file;
	size_t i, len;

	fuzz_add_init(m);
	file = fuzz_make_bundle(m, NULL, 0, "parent", &len);
	put_bundle("parent", file, len);
	free(file);

	for (i = 0; i < FERRY_NELEM(sql); i++)
		ferry_migrations_add(m, names[i], sql[i], strlen(sql[i]),
		    i == 0 ? down : NULL, i == 0 ? strlen(down) : 0);
	file = fuzz_make_bundle(m, fuzz_parent_bundle(), 0, "child", &len);
	put_bundle("child", file, len);
	free(file);
	ferry_migrations_free(m);

	/* The parent's migration edited: a rewritten history. */
	m = ferry_migrations_new();
	ferry_migrations_add(m, "20260101000000_init",
	    "CREATE TABLE a (id bigint PRIMARY KEY);\n", 40, NULL, 0);
	file = fuzz_make_bundle(m, fuzz_parent_bundle(), 1, NULL, &len);
	put_bundle("rewrite", file, len);
	free(file);
	ferry_migrations_free(m);

	m = ferry_migrations_new();
	file = fuzz_make_bundle(m, NULL, 0, NULL, &len);
	put_bundle("empty", file, len);
	free(file);
	ferry_migrations_free(m);
}

/* Writes an approval file, and its inner bytes with a signer byte. */
static void
put_approval(const char *name, enum fuzz_key who, const char *env,
    const char *rollout)
{
	Ferry__SignedApproval *sa;
	struct ferry_err err;
	uint8_t *file = NULL, *inner;
	size_t len = 0;
	char *fname = xasprintf("%s.approval", name);

	ferry_err_clear(&err);
	if (ferry_approval_create(fuzz_bundle_digest(), env, rollout,
	        FUZZ_EXPIRES_MS, fuzz_key(who), &file, &len, &err) != 0)
		fuzz_fail("cannot create approval: %s", err.msg);
	put("approval_check", fname, file, len);
	sa = ferry__signed_approval__unpack(NULL, len, file);
	if (sa == NULL)
		fuzz_fail("cannot unpack approval '%s'", name);
	inner = xmalloc(sa->approval.len + 1);
	inner[0] = who == FUZZ_KEY_ALICE ? 0 : who == FUZZ_KEY_BOB ? 1 : 2;
	memcpy(inner + 1, sa->approval.data, sa->approval.len);
	put("approval_signed", name, inner, sa->approval.len + 1);
	ferry__signed_approval__free_unpacked(sa, NULL);
	free(inner);
	free(file);
	free(fname);
}

/* A key file protected with passphrase "x" and the cheapest Argon2id. */
static void
put_argon_key(void)
{
	uint8_t pk[32], sk[64], salt[crypto_pwhash_SALTBYTES];
	uint8_t box_key[crypto_secretbox_KEYBYTES], plain[64];
	uint8_t
	    data[crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 64];
	char id[FERRY_KEY_ID_HEX + 1], salt64[64], data64[200], *text;

	crypto_sign_keypair(pk, sk);
	ferry_key_id(pk, id);
	randombytes_buf(salt, sizeof(salt));
	if (crypto_pwhash(box_key, sizeof(box_key), "x", 1, salt, 1, 8192,
	        crypto_pwhash_ALG_ARGON2ID13) != 0)
		fuzz_fail("crypto_pwhash failed");
	memcpy(plain, sk, 32);
	memcpy(plain + 32, pk, 32);
	randombytes_buf(data, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(data + crypto_secretbox_NONCEBYTES, plain,
	    sizeof(plain), data, box_key);
	sodium_bin2base64(salt64, sizeof(salt64), salt, sizeof(salt),
	    sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(data64, sizeof(data64), data, sizeof(data),
	    sodium_base64_VARIANT_ORIGINAL);
	text = xasprintf("ferry-secret-key-v1\nname: fuzz-argon\nkey-id: %s\n"
	                 "kdf: argon2id 1 8192 %s\ndata: %s\n",
	    id, salt64, data64);
	put("seckey_load", "argon-x.key", text, strlen(text));
	free(text);
}

static void
make_keys(void)
{
	static const char *const names[FUZZ_NKEYS] = { "release", "alice",
		"bob", "mallory" };
	char line[256], *fname, *withnl;
	int i;

	for (i = 0; i < FUZZ_NKEYS; i++) {
		fname = xasprintf("%s.key", names[i]);
		put("seckey_load", fname, fuzz_key_file((enum fuzz_key)i),
		    strlen(fuzz_key_file((enum fuzz_key)i)));
		free(fname);
		ferry_pubkey_format(fuzz_pub((enum fuzz_key)i), line,
		    sizeof(line));
		fname = xasprintf("%s.pub", names[i]);
		if (i == 0) /* the public key line, given as a key file */
			put("seckey_load", fname, line, strlen(line));
		withnl = xasprintf("%s\n", line);
		put("pubkey_parse", fname, withnl, strlen(withnl));
		free(withnl);
		free(fname);
	}
	put_argon_key();
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fputs("usage: fuzz_gen_corpus CORPUS_DIR\n", stderr);
		return 2;
	}
	root = argv[1];
	if (ferry_crypto_init() != 0)
		return 3;
	make_bundles();
	put_approval("alice", FUZZ_KEY_ALICE, FUZZ_ENVIRONMENT, FUZZ_ROLLOUT);
	put_approval("bob", FUZZ_KEY_BOB, FUZZ_ENVIRONMENT, FUZZ_ROLLOUT);
	put_approval("bob-staging", FUZZ_KEY_BOB, "staging", FUZZ_ROLLOUT);
	put_approval("alice-other-rollout", FUZZ_KEY_ALICE, FUZZ_ENVIRONMENT,
	    "r-2");
	put_approval("mallory", FUZZ_KEY_MALLORY, FUZZ_ENVIRONMENT,
	    FUZZ_ROLLOUT);
	make_keys();
	return 0;
}
