/*
 * test_keys.c -- Ed25519 keys: key ids (known answers), the public key
 * line, secret key files with and without a passphrase, signatures, and
 * every way a key file can be wrong: mode, truncation, garbling,
 * tampering, a wrong passphrase, an existing key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keys.h"
#include "util.h"

/* RFC 8032, section 7.1, test 1: an Ed25519 key known to everyone. */
static const uint8_t rfc_seed[32] = { 0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a,
	0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5,
	0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f,
	0x60 };
static const uint8_t rfc_pk[32] = { 0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a,
	0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72,
	0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51,
	0x1a };
/*
 * Computed once, independently of keys.c:
 * hashlib.sha256(b"ferry-key-id-v1\0" + pk).hexdigest()[:16]
 */
#define RFC_ID "13cf392e86c797e8"
#define RFC_B64 "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
#define RFC_LINE "ferry-ed25519 " RFC_ID " " RFC_B64 " rfc8032"

#define DOMAIN "ferry-test-v1"

/* A scratch folder per test, removed afterwards. */
static int
setup(void **state)
{
	char *dir = xstrdup("/tmp/ferry-test-keys-XXXXXX");

	if (mkdtemp(dir) == NULL)
		return -1;
	unsetenv("FERRY_PASSPHRASE_FILE");
	*state = dir;
	return 0;
}

static int
teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", (char *)*state);
	int rc = system(cmd);

	unsetenv("FERRY_PASSPHRASE_FILE");
	free(cmd);
	free(*state);
	return rc == 0 ? 0 : -1;
}

/* Writes dir/rel with the given mode; returns the path (free it). */
static char *
write_file(const char *dir, const char *rel, const void *data, size_t len,
    mode_t mode)
{
	char *path = xasprintf("%s/%s", dir, rel);
	FILE *f;

	unlink(path);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static char *
read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s = xcalloc(1, 8192);

	assert_non_null(f);
	assert_true(fread(s, 1, 8191, f) < 8191);
	fclose(f);
	return s;
}

/*
 * A secret key file written by hand from the format in keys.h, with
 * libsodium directly and a fixed nonce, so the parser is checked against
 * the format rather than against ferry_seckey_save.
 */
static char *
secret_text(const char *name, const char *id, const char *kdf,
    const uint8_t seed[32], const uint8_t pk[32], const uint8_t key[32])
{
	uint8_t plain[64], data[24 + 16 + 64];
	char b64[sodium_base64_ENCODED_LEN(sizeof(data),
	    sodium_base64_VARIANT_ORIGINAL)];

	memset(data, 0x42, 24);
	memcpy(plain, seed, 32);
	memcpy(plain + 32, pk, 32);
	assert_int_equal(crypto_secretbox_easy(data + 24, plain, 64, data, key),
	    0);
	sodium_bin2base64(b64, sizeof(b64), data, sizeof(data),
	    sodium_base64_VARIANT_ORIGINAL);
	return xasprintf("ferry-secret-key-v1\nname: %s\nkey-id: %s\n%s\n"
	                 "data: %s\n",
	    name, id, kdf, b64);
}

/* The RFC key as an unencrypted ("kdf: none") file. */
static char *
rfc_text(void)
{
	static const uint8_t zero[32];

	return secret_text("rfc8032", RFC_ID, "kdf: none", rfc_seed, rfc_pk,
	    zero);
}

static struct ferry_seckey *
load_ok(const char *path, const char *passphrase)
{
	struct ferry_seckey *k = NULL;
	struct ferry_err err;

	ferry_err_clear(&err);
	if (ferry_seckey_load(path, passphrase, &k, &err) != 0)
		fail_msg("unexpected error: %s", err.msg);
	assert_non_null(k);
	return k;
}

/* Loads path expecting code and a message containing want. */
static void
load_fails(const char *path, const char *passphrase, int code, const char *want)
{
	struct ferry_seckey *k = (struct ferry_seckey *)&k;
	struct ferry_err err;

	ferry_err_clear(&err);
	assert_int_equal(ferry_seckey_load(path, passphrase, &k, &err), code);
	assert_null(k);
	if (strstr(err.msg, want) == NULL)
		fail_msg("expected '%s' in: %s", want, err.msg);
}

/* Loads path expecting FERRY_EUSAGE for any reason. */
static void
load_refused(const char *path)
{
	struct ferry_seckey *k = (struct ferry_seckey *)&k;
	struct ferry_err err;

	ferry_err_clear(&err);
	if (ferry_seckey_load(path, NULL, &k, &err) != FERRY_EUSAGE)
		fail_msg("'%s' not refused as invalid: %s", path, err.msg);
	assert_null(k);
	assert_true(err.msg[0] != '\0');
}

static struct ferry_seckey *
generate(const char *name)
{
	struct ferry_seckey *k = NULL;
	struct ferry_err err;

	ferry_err_clear(&err);
	assert_int_equal(ferry_seckey_generate(name, &k, &err), 0);
	assert_non_null(k);
	return k;
}

static void
save_ok(const struct ferry_seckey *k, const char *dir, const char *pass)
{
	struct ferry_err err;

	ferry_err_clear(&err);
	if (ferry_seckey_save(k, dir, pass, &err) != 0)
		fail_msg("unexpected error: %s", err.msg);
}

static void
assert_same_key(const struct ferry_seckey *a, const struct ferry_seckey *b)
{
	const struct ferry_pubkey *pa = ferry_seckey_public(a);
	const struct ferry_pubkey *pb = ferry_seckey_public(b);
	uint8_t digest[32], sig[FERRY_SIG_LEN];

	assert_memory_equal(pa->pk, pb->pk, FERRY_PUBKEY_LEN);
	assert_string_equal(pa->id, pb->id);
	assert_string_equal(pa->name, pb->name);
	/* The secret halves agree too: b signs, a's public key accepts. */
	memset(digest, 7, sizeof(digest));
	ferry_seckey_sign(b, DOMAIN, digest, sig);
	assert_int_equal(ferry_pubkey_verify(pa, DOMAIN, digest, sig), 0);
}

static void
test_key_id_known_answer(void **state)
{
	uint8_t pk[32], sk[64], h[32];
	uint8_t msg[16 + 32];
	char id[FERRY_KEY_ID_HEX + 1], hex[65];

	(void)state;
	crypto_sign_seed_keypair(pk, sk, rfc_seed);
	assert_memory_equal(pk, rfc_pk, 32);
	ferry_key_id(rfc_pk, id);
	assert_string_equal(id, RFC_ID);
	/* The same by hand: the NUL after the domain is hashed. */
	memcpy(msg, "ferry-key-id-v1", 16);
	memcpy(msg + 16, rfc_pk, 32);
	crypto_hash_sha256(h, msg, sizeof(msg));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	assert_memory_equal(hex, RFC_ID, 16);
	/* Stable, and different for a different key. */
	ferry_key_id(rfc_pk, id);
	assert_string_equal(id, RFC_ID);
	pk[0] ^= 1;
	ferry_key_id(pk, id);
	assert_string_not_equal(id, RFC_ID);
	assert_int_equal(strlen(id), 16);
	assert_int_equal(strspn(id, "0123456789abcdef"), 16);
}

static void
test_known_answer_file(void **state)
{
	const char *dir = *state;
	char *text = rfc_text(), *path;
	struct ferry_seckey *k;
	char line[256];
	uint8_t digest[32], sig[FERRY_SIG_LEN], msg[14 + 32];

	path = write_file(dir, "rfc.key", text, strlen(text), 0600);
	k = load_ok(path, NULL);
	assert_string_equal(ferry_seckey_public(k)->id, RFC_ID);
	assert_string_equal(ferry_seckey_public(k)->name, "rfc8032");
	assert_memory_equal(ferry_seckey_public(k)->pk, rfc_pk, 32);
	ferry_pubkey_format(ferry_seckey_public(k), line, sizeof(line));
	assert_string_equal(line, RFC_LINE);

	/* The signed message is domain, its NUL, then the digest. */
	memset(digest, 0xab, sizeof(digest));
	ferry_seckey_sign(k, DOMAIN, digest, sig);
	memcpy(msg, DOMAIN, 14);
	memcpy(msg + 14, digest, 32);
	assert_int_equal(crypto_sign_verify_detached(sig, msg, sizeof(msg),
	                     rfc_pk),
	    0);

	/* No final newline is fine. */
	ferry_seckey_free(k);
	free(path);
	path = write_file(dir, "rfc.key", text, strlen(text) - 1, 0600);
	k = load_ok(path, NULL);
	ferry_seckey_free(k);
	free(path);
	free(text);
}

/* A hand-written argon2id file: the parameters come from the file. */
static void
test_known_answer_argon2id(void **state)
{
	const char *dir = *state;
	uint8_t salt[16], key[32];
	char salt_b64[25], *kdf, *text, *path;
	struct ferry_seckey *k;

	memset(salt, 0x5a, sizeof(salt));
	assert_int_equal(crypto_pwhash(key, sizeof(key), "hunter2", 7, salt,
	                     crypto_pwhash_argon2id_OPSLIMIT_MIN,
	                     crypto_pwhash_argon2id_MEMLIMIT_MIN,
	                     crypto_pwhash_ALG_ARGON2ID13),
	    0);
	sodium_bin2base64(salt_b64, sizeof(salt_b64), salt, sizeof(salt),
	    sodium_base64_VARIANT_ORIGINAL);
	kdf = xasprintf("kdf: argon2id %llu %zu %s",
	    (unsigned long long)crypto_pwhash_argon2id_OPSLIMIT_MIN,
	    (size_t)crypto_pwhash_argon2id_MEMLIMIT_MIN, salt_b64);
	text = secret_text("rfc8032", RFC_ID, kdf, rfc_seed, rfc_pk, key);
	path = write_file(dir, "rfc.key", text, strlen(text), 0600);
	k = load_ok(path, "hunter2");
	assert_string_equal(ferry_seckey_public(k)->id, RFC_ID);
	ferry_seckey_free(k);
	load_fails(path, "hunter3", FERRY_EUSAGE, "wrong passphrase for '");
	free(path);
	free(text);
	free(kdf);
}

static void
test_check_name(void **state)
{
	static const char *const good[] = {
		"a",
		"ci",
		"release-2024.1",
		"alice@example.com",
		"A_Z-0.9@x",
		/* 64 characters, the longest name */
		("01234567890123456789012345678901"
		 "23456789012345678901234567890123"),
	};
	static const char *const bad[] = {
		"", "a b", "a/b", "../x", "a\tb", "caf\xc3\xa9", "a\nb",
		"x!", "01234567890123456789012345678901234567890123456789012345678901234"
	};
	struct ferry_err err;
	size_t i;

	(void)state;
	for (i = 0; i < FERRY_NELEM(good); i++) {
		ferry_err_clear(&err);
		if (ferry_key_check_name(good[i], &err) != 0)
			fail_msg("'%s' refused: %s", good[i], err.msg);
	}
	for (i = 0; i < FERRY_NELEM(bad); i++) {
		ferry_err_clear(&err);
		assert_int_equal(ferry_key_check_name(bad[i], &err),
		    FERRY_EUSAGE);
		assert_true(err.msg[0] != '\0');
		/* Control bytes are never copied into a message. */
		assert_null(strchr(err.msg, '\n'));
		assert_null(strchr(err.msg, '\t'));
	}
	ferry_err_clear(&err);
	assert_int_equal(ferry_key_check_name("x!", &err), FERRY_EUSAGE);
	assert_string_equal(err.msg,
	    "key name 'x!' contains '!': use letters, digits and . _ @ -");
}

static void
test_roundtrip_no_passphrase(void **state)
{
	const char *dir = *state;
	struct ferry_seckey *k = generate("ci"), *l;
	struct ferry_pubkey pub;
	struct ferry_err err;
	struct stat st;
	char *keypath = xasprintf("%s/ci.key", dir);
	char *pubpath = xasprintf("%s/ci.pub", dir);
	char line[256], *text;

	save_ok(k, dir, NULL);
	assert_int_equal(stat(keypath, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(pubpath, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	text = read_text(keypath);
	assert_true(ferry_starts_with(text, "ferry-secret-key-v1\nname: ci\n"));
	assert_non_null(strstr(text, "\nkdf: none\n"));
	free(text);

	l = load_ok(keypath, NULL);
	assert_same_key(k, l);
	/* A passphrase given for an unencrypted key is not needed. */
	ferry_seckey_free(l);
	l = load_ok(keypath, "unused");
	assert_same_key(k, l);

	ferry_err_clear(&err);
	assert_int_equal(ferry_pubkey_load(pubpath, &pub, &err), 0);
	assert_memory_equal(pub.pk, ferry_seckey_public(k)->pk, 32);
	assert_string_equal(pub.id, ferry_seckey_public(k)->id);
	assert_string_equal(pub.name, "ci");
	text = read_text(pubpath);
	ferry_pubkey_format(&pub, line, sizeof(line));
	assert_true(ferry_starts_with(text, line));
	assert_string_equal(text + strlen(line), "\n");
	free(text);

	ferry_seckey_free(l);
	ferry_seckey_free(k);
	free(pubpath);
	free(keypath);
}

static void
test_roundtrip_passphrase_argument(void **state)
{
	const char *dir = *state;
	struct ferry_seckey *k = generate("signer"), *l;
	char *keypath = xasprintf("%s/signer.key", dir), *text;

	save_ok(k, dir, "correct horse battery staple");
	text = read_text(keypath);
	assert_non_null(strstr(text, "\nkdf: argon2id 2 67108864 "));
	free(text);
	l = load_ok(keypath, "correct horse battery staple");
	assert_same_key(k, l);
	ferry_seckey_free(l);
	load_fails(keypath, "correct horse battery stapler", FERRY_EUSAGE,
	    "wrong passphrase for '");
	ferry_seckey_free(k);
	free(keypath);
}

static void
test_roundtrip_passphrase_file(void **state)
{
	const char *dir = *state;
	struct ferry_seckey *k = generate("approver@example.com"), *l;
	char *keypath = xasprintf("%s/approver@example.com.key", dir);
	char *pw;

	/* FERRY_PASSPHRASE_FILE at save time is the caller's business. */
	save_ok(k, dir, "s3cret");
	pw = write_file(dir, "pw", "s3cret\r\nignored\n", 16, 0600);
	setenv("FERRY_PASSPHRASE_FILE", pw, 1);
	l = load_ok(keypath, NULL);
	assert_same_key(k, l);
	ferry_seckey_free(l);
	/* "" asks like NULL does. */
	l = load_ok(keypath, "");
	ferry_seckey_free(l);
	/* An explicit passphrase wins over the file. */
	load_fails(keypath, "nope", FERRY_EUSAGE, "wrong passphrase");
	free(write_file(dir, "pw", "s3cre", 5, 0600));
	load_fails(keypath, NULL, FERRY_EUSAGE, "wrong passphrase for '");
	free(write_file(dir, "pw", "\n", 1, 0600));
	load_fails(keypath, NULL, FERRY_EUSAGE, "empty passphrase");
	ferry_seckey_free(k);
	free(keypath);
	free(pw);
}

/* ferry_passphrase_read with FERRY_PASSPHRASE_FILE. */
static void
test_passphrase_file_forms(void **state)
{
	static const struct {
		const char *content;
		size_t len;
		int rc;
		const char *want; /* passphrase, or a piece of the error */
	} cases[] = {
		{ "pw\n", 3, 0, "pw" },
		{ "pw", 2, 0, "pw" },
		{ "pw\r\n", 4, 0, "pw" },
		{ "two words \nsecond line\n", 23, 0, "two words " },
		{ "123456789012345", 15, 0, "123456789012345" },
		{ "123456789012345\n", 16, 0, "123456789012345" },
		{ "123456789012345\r\n", 17, 0, "123456789012345" },
		{ "1234567890123456", 16, FERRY_EUSAGE,
		    "too long (limit 15 bytes)" },
		{ "1234567890123456\n", 17, FERRY_EUSAGE, "too long" },
		{ "123456789012345\rx", 17, FERRY_EUSAGE, "too long" },
		{ "123456789012345\r", 16, 0, "123456789012345" },
		{ "12345678901234\r\n", 16, 0, "12345678901234" },
		{ "12345678901234\r\r", 16, FERRY_EUSAGE, "too long" },
		{ "", 0, FERRY_EUSAGE, "empty passphrase in '" },
		{ "\r\n", 2, FERRY_EUSAGE, "empty passphrase" },
		{ "a\0b\n", 4, FERRY_EUSAGE, "NUL" },
	};
	const char *dir = *state;
	struct ferry_err err;
	char buf[16], *path, *missing;
	size_t i;

	for (i = 0; i < FERRY_NELEM(cases); i++) {
		path =
		    write_file(dir, "pw", cases[i].content, cases[i].len, 0600);
		setenv("FERRY_PASSPHRASE_FILE", path, 1);
		ferry_err_clear(&err);
		memset(buf, 'x', sizeof(buf));
		assert_int_equal(ferry_passphrase_read("unused: ", 1, buf,
		                     sizeof(buf), &err),
		    cases[i].rc);
		if (cases[i].rc == 0)
			assert_string_equal(buf, cases[i].want);
		else if (strstr(err.msg, cases[i].want) == NULL)
			fail_msg("case %zu: expected '%s' in: %s", i,
			    cases[i].want, err.msg);
		free(path);
	}
	missing = xasprintf("%s/no-such-file", dir);
	setenv("FERRY_PASSPHRASE_FILE", missing, 1);
	ferry_err_clear(&err);
	assert_int_equal(ferry_passphrase_read("unused: ", 0, buf, sizeof(buf),
	                     &err),
	    FERRY_EOPER);
	assert_non_null(strstr(err.msg, "FERRY_PASSPHRASE_FILE"));
	free(missing);
}

/*
 * With neither FERRY_PASSPHRASE_FILE nor a terminal (a new session has no
 * controlling terminal), reading a passphrase fails cleanly.
 */
static void
test_passphrase_no_terminal(void **state)
{
	const char *dir = *state;
	struct ferry_seckey *k = generate("t");
	char *keypath = xasprintf("%s/t.key", dir);
	int status;
	pid_t pid;

	save_ok(k, dir, "pw");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ferry_seckey *l = NULL;
		struct ferry_err err;
		char buf[64];
		int ok = 1;

		unsetenv("FERRY_PASSPHRASE_FILE");
		if (setsid() < 0)
			_exit(3);
		ferry_err_clear(&err);
		ok &= ferry_passphrase_read("p: ", 1, buf, sizeof(buf), &err) ==
		    FERRY_EUSAGE;
		ok &= strstr(err.msg, "no terminal") != NULL;
		ok &= strstr(err.msg, "FERRY_PASSPHRASE_FILE") != NULL;
		ferry_err_clear(&err);
		ok &=
		    ferry_seckey_load(keypath, NULL, &l, &err) == FERRY_EUSAGE;
		ok &= l == NULL && strstr(err.msg, "no terminal") != NULL;
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	ferry_seckey_free(k);
	free(keypath);
}

static void
test_sign_verify(void **state)
{
	struct ferry_seckey *k = generate("a"), *other = generate("a");
	const struct ferry_pubkey *pk = ferry_seckey_public(k);
	uint8_t digest[32], sig[FERRY_SIG_LEN], sig2[FERRY_SIG_LEN];
	uint8_t d2[32], s2[FERRY_SIG_LEN];
	size_t i;

	(void)state;
	randombytes_buf(digest, sizeof(digest));
	ferry_seckey_sign(k, "ferry-bundle-v1", digest, sig);
	assert_int_equal(ferry_pubkey_verify(pk, "ferry-bundle-v1", digest,
	                     sig),
	    0);
	/* Ed25519 is deterministic. */
	ferry_seckey_sign(k, "ferry-bundle-v1", digest, sig2);
	assert_memory_equal(sig, sig2, sizeof(sig));

	for (i = 0; i < 8 * FERRY_SIG_LEN; i++) {
		memcpy(s2, sig, sizeof(s2));
		s2[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(ferry_pubkey_verify(pk, "ferry-bundle-v1",
		                     digest, s2),
		    -1);
	}
	for (i = 0; i < 8 * 32; i++) {
		memcpy(d2, digest, sizeof(d2));
		d2[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(ferry_pubkey_verify(pk, "ferry-bundle-v1", d2,
		                     sig),
		    -1);
	}
	/* Another domain, even a prefix of this one, another key. */
	assert_int_equal(ferry_pubkey_verify(pk, "ferry-bundle-v2", digest,
	                     sig),
	    -1);
	assert_int_equal(ferry_pubkey_verify(pk, "ferry-bundle-v", digest, sig),
	    -1);
	assert_int_equal(ferry_pubkey_verify(pk, "ferry-bundle-v1 ", digest,
	                     sig),
	    -1);
	assert_int_equal(ferry_pubkey_verify(pk, "", digest, sig), -1);
	assert_int_equal(ferry_pubkey_verify(ferry_seckey_public(other),
	                     "ferry-bundle-v1", digest, sig),
	    -1);
	ferry_seckey_sign(k, "ferry-approval-v1", digest, s2);
	assert_memory_not_equal(s2, sig, sizeof(sig));
	ferry_seckey_free(other);
	ferry_seckey_free(k);
}

static void
test_pubkey_parse_ok(void **state)
{
	static const char *const lines[] = { RFC_LINE, RFC_LINE "\n",
		RFC_LINE "\r\n" };
	struct ferry_pubkey pk;
	struct ferry_err err;
	char out[256];
	size_t i;

	(void)state;
	for (i = 0; i < FERRY_NELEM(lines); i++) {
		ferry_err_clear(&err);
		if (ferry_pubkey_parse(lines[i], &pk, &err) != 0)
			fail_msg("unexpected error: %s", err.msg);
		assert_memory_equal(pk.pk, rfc_pk, 32);
		assert_string_equal(pk.id, RFC_ID);
		assert_string_equal(pk.name, "rfc8032");
		ferry_pubkey_format(&pk, out, sizeof(out));
		assert_string_equal(out, RFC_LINE);
	}
}

static void
test_pubkey_parse_errors(void **state)
{
	static const struct {
		const char *line, *want;
	} cases[] = {
		{ "", "not a public key" },
		{ "ssh-ed25519 " RFC_ID " " RFC_B64 " a", "not a public key" },
		{ "ferry-ed25519", "not a public key" },
		{ "Ferry-ed25519 " RFC_ID " " RFC_B64 " a",
		    "not a public key" },
		{ " ferry-ed25519 " RFC_ID " " RFC_B64 " a",
		    "not a public key" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64, "has no name" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64 " ", "single spaces" },
		{ "ferry-ed25519 " RFC_ID, "incomplete" },
		{ "ferry-ed25519 " RFC_ID "  " RFC_B64 " a", "single spaces" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64 " a b",
		    "unexpected text after the name" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64 " a\tb", "byte 0x09" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64 " a\n\n", "one line" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64 " a\nb", "one line" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64 " caf\xc3\xa9",
		    "non-ASCII" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64 " a/b", "contains '/'" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64 " x!", "contains '!'" },
		{ "ferry-ed25519 " RFC_ID " " RFC_B64
		  " 01234567890123456789012345678901234567890123456789012345678"
		  "901234",
		    "too long" },
		{ "ferry-ed25519 13CF392E86C797E8 " RFC_B64 " a",
		    "16 lowercase hex" },
		{ "ferry-ed25519 13cf392e86c797e " RFC_B64 " a",
		    "16 lowercase hex" },
		{ "ferry-ed25519 13cf392e86c797e8a " RFC_B64 " a",
		    "16 lowercase hex" },
		{ "ferry-ed25519 " RFC_ID
		  " 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR!= a",
		    "not valid base64" },
		{ "ferry-ed25519 " RFC_ID
		  " 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo a",
		    "not valid base64" },
		/* Non-zero padding bits: not the canonical form. */
		{ "ferry-ed25519 " RFC_ID
		  " 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURp= a",
		    "not valid base64" },
		{ "ferry-ed25519 " RFC_ID
		  " 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo= a",
		    "not valid base64" },
		{ "ferry-ed25519 " RFC_ID " AAAA a", "3 bytes, expected 32" },
		{ "ferry-ed25519 " RFC_ID
		  " 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURoA a",
		    "33 bytes, expected 32" },
		{ "ferry-ed25519 0000000000000000 " RFC_B64 " a",
		    "does not match the key (its id is '" RFC_ID "')" },
	};
	struct ferry_pubkey pk;
	struct ferry_err err;
	char *longline;
	size_t i;

	(void)state;
	for (i = 0; i < FERRY_NELEM(cases); i++) {
		ferry_err_clear(&err);
		memset(&pk, 0xff, sizeof(pk));
		assert_int_equal(ferry_pubkey_parse(cases[i].line, &pk, &err),
		    FERRY_EUSAGE);
		if (strstr(err.msg, cases[i].want) == NULL)
			fail_msg("case %zu: expected '%s' in: %s", i,
			    cases[i].want, err.msg);
		/* Nothing half-parsed is left in the output. */
		assert_int_equal(pk.name[0], '\0');
		assert_int_equal(pk.id[0], '\0');
	}
	longline = xcalloc(1, 5000);
	memset(longline, 'A', 4999);
	memcpy(longline, "ferry-ed25519 ", 14);
	ferry_err_clear(&err);
	assert_int_equal(ferry_pubkey_parse(longline, &pk, &err), FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "too long"));
	free(longline);
}

static void
test_pubkey_load(void **state)
{
	const char *dir = *state;
	struct ferry_pubkey pk;
	struct ferry_err err;
	char *path, *missing = xasprintf("%s/missing.pub", dir);

	path =
	    write_file(dir, "a.pub", RFC_LINE "\n", strlen(RFC_LINE) + 1, 0644);
	ferry_err_clear(&err);
	assert_int_equal(ferry_pubkey_load(path, &pk, &err), 0);
	assert_string_equal(pk.id, RFC_ID);
	free(path);

	path = write_file(dir, "a.pub", RFC_LINE "\n" RFC_LINE "\n",
	    2 * strlen(RFC_LINE) + 2, 0644);
	ferry_err_clear(&err);
	assert_int_equal(ferry_pubkey_load(path, &pk, &err), FERRY_EUSAGE);
	assert_true(ferry_starts_with(err.msg, "'"));
	assert_non_null(strstr(err.msg, "a.pub': public key has more than"));
	free(path);

	path = write_file(dir, "a.pub", RFC_LINE "\0\n", strlen(RFC_LINE) + 2,
	    0644);
	ferry_err_clear(&err);
	assert_int_equal(ferry_pubkey_load(path, &pk, &err), FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "NUL"));
	free(path);

	ferry_err_clear(&err);
	assert_int_equal(ferry_pubkey_load(missing, &pk, &err), FERRY_EOPER);
	free(missing);
}

static void
test_mode(void **state)
{
	static const mode_t refused[] = { 0644, 0640, 0604, 0660, 0602, 0620,
		0610, 0601, 0777 };
	static const mode_t accepted[] = { 0600, 0400, 0700 };
	const char *dir = *state;
	char *text = rfc_text(), *path, *want;
	struct ferry_seckey *k;
	struct ferry_err err;
	size_t i;

	path = write_file(dir, "rfc.key", text, strlen(text), 0600);
	for (i = 0; i < FERRY_NELEM(refused); i++) {
		assert_int_equal(chmod(path, refused[i]), 0);
		k = NULL;
		ferry_err_clear(&err);
		assert_int_equal(ferry_seckey_load(path, NULL, &k, &err),
		    FERRY_EUSAGE);
		assert_null(k);
		want = xasprintf("'%s' is accessible by other users (mode "
		                 "%04o): run chmod 600 '%s'",
		    path, (unsigned)refused[i], path);
		assert_string_equal(err.msg, want);
		free(want);
	}
	for (i = 0; i < FERRY_NELEM(accepted); i++) {
		assert_int_equal(chmod(path, accepted[i]), 0);
		ferry_seckey_free(load_ok(path, NULL));
	}
	free(path);
	free(text);
}

/* Replaces line no (1-based) of text; "" as repl deletes the line. */
static char *
replace_line(const char *text, int no, const char *repl)
{
	const char *p = text, *e;
	int i;

	for (i = 1; i < no; i++)
		p = strchr(p, '\n') + 1;
	e = strchr(p, '\n') + 1;
	return xasprintf("%.*s%s%s", (int)(p - text), text, repl, e);
}

static void
test_secret_garbled(void **state)
{
	static const struct {
		int line;
		const char *repl, *want;
	} cases[] = {
		{ 1, "ferry-secret-key-v2\n", "line 1: not a ferry secret" },
		{ 1, "ferry-secret-key-v1 \n", "line 1:" },
		{ 1, "ferry-secret-key-v1\r\n", "line 1:" },
		{ 1, "\n", "line 1:" },
		{ 1, "ferry-ed25519 " RFC_ID " " RFC_B64 " x\n",
		    "holds a public key" },
		{ 2, "name rfc8032\n", "line 2: expected 'name: <name>'" },
		{ 2, "name: \n", "line 2: key name is empty" },
		{ 2, "name:  rfc8032\n", "line 2: key name" },
		{ 2, "name: rfc/8032\n", "line 2: key name" },
		{ 2, "name: rfc8032\r\n",
		    "line 2: unexpected control byte 0x0d" },
		{ 2, "name: caf\xc3\xa9\n", "line 2: unexpected non-ASCII" },
		{ 2,
		    "name: 01234567890123456789012345678901234567890123456789"
		    "0123456789012345\n",
		    "line 2: key name is too long" },
		{ 2, "", "line 2: expected 'name: <name>'" },
		{ 3, "key-id: 13CF392E86C797E8\n", "line 3: expected 'key-id" },
		{ 3, "key-id: 13cf392e86c797e\n", "line 3: expected 'key-id" },
		{ 3, "keyid: " RFC_ID "\n", "line 3: expected 'key-id" },
		{ 4, "kdf: scrypt\n", "line 4: expected 'kdf: none'" },
		{ 4, "kdf: none \n", "line 4: expected 'kdf: none'" },
		{ 4, "kdf:  none\n", "line 4: expected 'kdf: none'" },
		{ 4, "kdf: argon2id 2 67108864\n", "line 4: expected" },
		{ 4, "kdf: argon2id 2 67108864 AAAAAAAAAAAAAAAAAAAAAA== x\n",
		    "line 4: expected" },
		{ 4, "kdf: argon2id 2  67108864 AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: expected" },
		{ 4, "kdf: argon2id 0 67108864 AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: argon2id opslimit" },
		{ 4, "kdf: argon2id 17 67108864 AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: argon2id opslimit" },
		{ 4, "kdf: argon2id 02 67108864 AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: argon2id opslimit" },
		{ 4, "kdf: argon2id -2 67108864 AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: argon2id opslimit" },
		{ 4,
		    "kdf: argon2id 99999999999999999999999 67108864 "
		    "AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: argon2id opslimit" },
		{ 4,
		    "kdf: argon2id 18446744073709551617 67108864 "
		    "AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: argon2id opslimit" },
		{ 4, "kdf: argon2id 2 1024 AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: argon2id memlimit" },
		{ 4, "kdf: argon2id 2 4398046511104 AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: argon2id memlimit" },
		{ 4, "kdf: argon2id 2 64M AAAAAAAAAAAAAAAAAAAAAA==\n",
		    "line 4: argon2id memlimit" },
		{ 4, "kdf: argon2id 2 67108864 AAAAAAAAAAAAAAAAAAAA\n",
		    "line 4: the salt" },
		{ 4, "kdf: argon2id 2 67108864 AAAAAAAAAAAAAAAAAAAAAAAA\n",
		    "line 4: the salt" },
		{ 4, "kdf: argon2id 2 67108864 AAAAAAAAAAAAAAAAAAAAAB==\n",
		    "line 4: the salt" },
		{ 5, "data: !!!!\n", "line 5: expected 'data: <base64" },
		{ 5, "data: AAAA\n", "line 5: expected 'data: <base64" },
		{ 5, "data:\n", "line 5: expected 'data: <base64" },
		{ 5, "", "line 5: unexpected end of file" },
		{ 6, "\n", "line 6: unexpected text after the data line" },
		{ 6, "data: AAAA\n", "line 6: unexpected text" },
	};
	const char *dir = *state;
	char *text = rfc_text(), *garbled, *path;
	size_t i, len;

	for (i = 0; i < FERRY_NELEM(cases); i++) {
		if (cases[i].line == 6)
			garbled = xasprintf("%s%s", text, cases[i].repl);
		else
			garbled =
			    replace_line(text, cases[i].line, cases[i].repl);
		path =
		    write_file(dir, "bad.key", garbled, strlen(garbled), 0600);
		load_fails(path, NULL, FERRY_EUSAGE, cases[i].want);
		free(path);
		free(garbled);
	}
	/* A NUL byte inside a line. */
	garbled = xstrdup(text);
	len = strlen(garbled);
	garbled[strstr(garbled, "key-id: ") - garbled + 10] = '\0';
	path = write_file(dir, "bad.key", garbled, len, 0600);
	load_fails(path, NULL, FERRY_EUSAGE,
	    "line 3: unexpected control byte 0x00 at column 11");
	free(path);
	free(garbled);
	free(text);
}

/* Every prefix of a good file and every byte replaced: all refused. */
static void
test_secret_truncated_and_mutated(void **state)
{
	const char *dir = *state;
	char *text = rfc_text(), *path, *copy, *want;
	size_t len = strlen(text), i, line;
	struct ferry_seckey *k;
	struct ferry_err err;

	for (i = 0; i + 1 < len; i++) {
		path = write_file(dir, "t.key", text, i, 0600);
		k = NULL;
		ferry_err_clear(&err);
		assert_int_equal(ferry_seckey_load(path, NULL, &k, &err),
		    FERRY_EUSAGE);
		assert_null(k);
		/* The message names the file and, past line 1, the line. */
		assert_non_null(strstr(err.msg, path));
		free(path);
	}
	/* Truncated after line n: the message names line n + 1. */
	for (line = 1, i = 0; i < len - 1; i++) {
		if (text[i] != '\n')
			continue;
		path = write_file(dir, "t.key", text, i + 1, 0600);
		want = xasprintf("line %zu: unexpected end of file", line + 1);
		load_fails(path, NULL, FERRY_EUSAGE, want);
		free(want);
		free(path);
		line++;
	}
	copy = xstrdup(text);
	for (i = 0; i < len; i++) {
		memcpy(copy, text, len);
		copy[i] = copy[i] == '#' ? '%' : '#';
		path = write_file(dir, "t.key", copy, len, 0600);
		load_refused(path);
		free(path);
	}
	free(copy);
	free(text);
}

/* Valid syntax, wrong content: caught by the box and by the checks. */
static void
test_secret_tampered(void **state)
{
	static const uint8_t zero[32];
	const char *dir = *state;
	char *text, *path, *data, *copy;
	const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                  "0123456789+/";
	uint8_t pk2[32], sk2[64], seed2[32];
	size_t i, n;

	/* Every data character changed to another valid base64 digit. */
	text = rfc_text();
	data = strstr(text, "data: ") + 6;
	n = strlen(data) - 1;
	copy = xstrdup(text);
	for (i = 0; i < n; i++) {
		size_t off = (size_t)(data - text) + i;

		if (text[off] == '=')
			continue;
		memcpy(copy, text, strlen(text));
		copy[off] = b64[(strchr(b64, text[off]) - b64 + 1) % 64];
		path = write_file(dir, "t.key", copy, strlen(copy), 0600);
		load_refused(path);
		free(path);
	}
	free(copy);
	free(text);

	/* A bit flipped inside the ciphertext. */
	{
		uint8_t bin[104];
		char enc[141];
		size_t got;

		text = rfc_text();
		data = strstr(text, "data: ") + 6;
		assert_int_equal(sodium_base642bin(bin, sizeof(bin), data, 140,
		                     NULL, &got, NULL,
		                     sodium_base64_VARIANT_ORIGINAL),
		    0);
		for (i = 0; i < sizeof(bin); i += 13) {
			bin[i] ^= 0x10;
			sodium_bin2base64(enc, sizeof(enc), bin, sizeof(bin),
			    sodium_base64_VARIANT_ORIGINAL);
			memcpy(data, enc, 140);
			path =
			    write_file(dir, "t.key", text, strlen(text), 0600);
			load_fails(path, NULL, FERRY_EUSAGE,
			    "is damaged: the key data does not authenticate");
			free(path);
			bin[i] ^= 0x10;
		}
		free(text);
	}

	/* Key id of another key. */
	text = secret_text("rfc8032", "0123456789abcdef", "kdf: none", rfc_seed,
	    rfc_pk, zero);
	path = write_file(dir, "t.key", text, strlen(text), 0600);
	load_fails(path, NULL, FERRY_EUSAGE,
	    "line 3: key id 0123456789abcdef does not match the key (its id "
	    "is " RFC_ID ")");
	free(path);
	free(text);

	/* The public key stored in the box is not the seed's. */
	memset(seed2, 1, sizeof(seed2));
	crypto_sign_seed_keypair(pk2, sk2, seed2);
	text = secret_text("rfc8032", RFC_ID, "kdf: none", rfc_seed, pk2, zero);
	path = write_file(dir, "t.key", text, strlen(text), 0600);
	load_fails(path, NULL, FERRY_EUSAGE,
	    "the stored public key does not match the secret key");
	free(path);
	free(text);

	/* Boxed with a key that is not all zeros, claiming kdf none. */
	text = secret_text("rfc8032", RFC_ID, "kdf: none", rfc_seed, rfc_pk,
	    seed2);
	path = write_file(dir, "t.key", text, strlen(text), 0600);
	load_fails(path, NULL, FERRY_EUSAGE, "does not authenticate");
	free(path);
	free(text);
}

/* A tampered encrypted file reads as a wrong passphrase. */
static void
test_encrypted_tampered(void **state)
{
	const char *dir = *state;
	struct ferry_seckey *k = generate("enc");
	char *keypath = xasprintf("%s/enc.key", dir), *text, *p, *path;

	save_ok(k, dir, "pw");
	text = read_text(keypath);
	p = strstr(text, "data: ") + 6 + 50;
	*p = *p == 'A' ? 'B' : 'A';
	path = write_file(dir, "x.key", text, strlen(text), 0600);
	load_fails(path, "pw", FERRY_EUSAGE, "wrong passphrase for '");
	free(path);
	free(text);

	/* A different salt is a different box key. */
	text = read_text(keypath);
	p = strstr(text, "kdf: argon2id 2 67108864 ") + 25;
	*p = *p == 'A' ? 'B' : 'A';
	path = write_file(dir, "x.key", text, strlen(text), 0600);
	load_fails(path, "pw", FERRY_EUSAGE, "wrong passphrase for '");
	free(path);
	free(text);
	ferry_seckey_free(k);
	free(keypath);
}

static void
test_no_overwrite(void **state)
{
	const char *dir = *state;
	struct ferry_seckey *a = generate("k"), *b = generate("k"), *l;
	struct ferry_err err;
	char *keypath = xasprintf("%s/k.key", dir);
	char *pubpath = xasprintf("%s/k.pub", dir);
	char *before, *after, *want;
	struct stat st;

	save_ok(a, dir, NULL);
	before = read_text(keypath);
	ferry_err_clear(&err);
	assert_int_equal(ferry_seckey_save(b, dir, NULL, &err), FERRY_EUSAGE);
	want = xasprintf("'%s' already exists: refusing to overwrite a key",
	    keypath);
	assert_string_equal(err.msg, want);
	free(want);
	after = read_text(keypath);
	assert_string_equal(before, after);
	l = load_ok(keypath, NULL);
	assert_same_key(a, l);
	ferry_seckey_free(l);
	free(after);
	free(before);

	/* A stray .pub is not replaced either, and no .key is left. */
	assert_int_equal(unlink(keypath), 0);
	ferry_err_clear(&err);
	assert_int_equal(ferry_seckey_save(b, dir, NULL, &err), FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "k.pub' already exists"));
	assert_int_equal(stat(keypath, &st), -1);

	/* A dangling symlink is not followed. */
	assert_int_equal(unlink(pubpath), 0);
	assert_int_equal(symlink("/nonexistent/ferry-test", keypath), 0);
	ferry_err_clear(&err);
	assert_int_equal(ferry_seckey_save(b, dir, NULL, &err), FERRY_EUSAGE);
	assert_int_equal(stat(pubpath, &st), -1);

	ferry_seckey_free(b);
	ferry_seckey_free(a);
	free(pubpath);
	free(keypath);
}

static void
test_load_errors(void **state)
{
	const char *dir = *state;
	char *missing = xasprintf("%s/missing.key", dir), *path, *big;

	load_fails(missing, NULL, FERRY_EOPER, "cannot open '");
	load_fails(dir, NULL, FERRY_EOPER, "not a regular file");
	path = write_file(dir, "empty.key", "", 0, 0600);
	load_fails(path, NULL, FERRY_EUSAGE, "is empty");
	free(path);
	big = xcalloc(1, 10000);
	memset(big, 'A', 9999);
	path = write_file(dir, "big.key", big, 9999, 0600);
	load_fails(path, NULL, FERRY_EUSAGE, "too large");
	free(path);
	free(big);
	path =
	    write_file(dir, "a.pub", RFC_LINE "\n", strlen(RFC_LINE) + 1, 0600);
	load_fails(path, NULL, FERRY_EUSAGE, "holds a public key");
	free(path);
	free(missing);
}

static void
test_generate_bad_name(void **state)
{
	struct ferry_seckey *k = (struct ferry_seckey *)&k;
	struct ferry_err err;

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_seckey_generate("a b", &k, &err), FERRY_EUSAGE);
	assert_null(k);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_id_known_answer),
		T(test_known_answer_file),
		T(test_known_answer_argon2id),
		cmocka_unit_test(test_check_name),
		T(test_roundtrip_no_passphrase),
		T(test_roundtrip_passphrase_argument),
		T(test_roundtrip_passphrase_file),
		T(test_passphrase_file_forms),
		T(test_passphrase_no_terminal),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_pubkey_parse_ok),
		cmocka_unit_test(test_pubkey_parse_errors),
		T(test_pubkey_load),
		T(test_mode),
		T(test_secret_garbled),
		T(test_secret_truncated_and_mutated),
		T(test_secret_tampered),
		T(test_encrypted_tampered),
		T(test_no_overwrite),
		T(test_load_errors),
		cmocka_unit_test(test_generate_bad_name),
	};

	if (sodium_init() < 0)
		return 1;
	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
