/*
 * keys.h -- Ed25519 keys (libsodium): release-signing keys that sign
 * bundles, approvers' keys, agents' keys.
 *
 * Public key: one line, "ferry-ed25519 <key-id> <base64 of 32 bytes> <name>".
 * Key id: the first 16 hex digits of SHA-256("ferry-key-id-v1\0" || pk).
 *
 * Secret key file (mode 0600; refused at load when group- or
 * world-accessible, like ssh), minisign-like text:
 *
 *   ferry-secret-key-v1
 *   name: <name>
 *   key-id: <key-id>
 *   kdf: none
 *   kdf: argon2id <opslimit> <memlimit> <base64 salt>
 *   data: <base64 of nonce || crypto_secretbox(seed || public key)>
 *
 * With "kdf: none" the box key is all zeros: no secrecy, but corruption is
 * still detected. With argon2id the box key is crypto_pwhash(passphrase).
 * Secrets live in sodium_malloc'ed memory and are wiped on free.
 */
#ifndef FERRY_KEYS_H
#define FERRY_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define FERRY_KEY_ID_HEX 16
#define FERRY_PUBKEY_LEN 32
#define FERRY_SIG_LEN 64
#define FERRY_KEY_NAME_MAX 64

struct ferry_pubkey {
	uint8_t pk[FERRY_PUBKEY_LEN];
	char id[FERRY_KEY_ID_HEX + 1];
	char name[FERRY_KEY_NAME_MAX + 1];
};

struct ferry_seckey;

/* Key id of a public key, 16 lowercase hex digits + NUL. */
void ferry_key_id(const uint8_t pk[FERRY_PUBKEY_LEN],
    char out[FERRY_KEY_ID_HEX + 1]);

/*
 * Names are 1-64 characters of [A-Za-z0-9._@-]. Returns 0, or
 * FERRY_EUSAGE naming the problem.
 */
int ferry_key_check_name(const char *name, struct ferry_err *err);

/* Generates a new key pair. */
int ferry_seckey_generate(const char *name, struct ferry_seckey **out,
    struct ferry_err *err);

/*
 * Writes DIR/NAME.key (0600, created exclusively: never overwrites) and
 * DIR/NAME.pub. passphrase NULL or "" means kdf none.
 */
int ferry_seckey_save(const struct ferry_seckey *k, const char *dir,
    const char *passphrase, struct ferry_err *err);

/*
 * Loads a secret key file. Refuses a file readable or writable by group or
 * others. For a passphrase-protected file, passphrase may be NULL: then it
 * is read from the file named by FERRY_PASSPHRASE_FILE, or asked on the
 * terminal. A wrong passphrase is FERRY_EUSAGE "wrong passphrase for ...".
 */
int ferry_seckey_load(const char *path, const char *passphrase,
    struct ferry_seckey **out, struct ferry_err *err);

/* Wipes and frees; NULL is a no-op. */
void ferry_seckey_free(struct ferry_seckey *k);

const struct ferry_pubkey *ferry_seckey_public(const struct ferry_seckey *k);

/*
 * Signs the domain-separated message domain || digest, where domain is a
 * NUL-terminated string whose NUL is part of the message (e.g.
 * "ferry-bundle-v1" signs "ferry-bundle-v1\0" || digest).
 */
void ferry_seckey_sign(const struct ferry_seckey *k, const char *domain,
    const uint8_t digest[32], uint8_t sig[FERRY_SIG_LEN]);

/* Verifies such a signature. Returns 0 if valid, -1 if not. */
int ferry_pubkey_verify(const struct ferry_pubkey *pk, const char *domain,
    const uint8_t digest[32], const uint8_t sig[FERRY_SIG_LEN])
    __attribute__((warn_unused_result));

/* Parses a public key line (trailing newline allowed); checks the id. */
int ferry_pubkey_parse(const char *line, struct ferry_pubkey *out,
    struct ferry_err *err);

/* Reads a .pub file holding one public key line. */
int ferry_pubkey_load(const char *path, struct ferry_pubkey *out,
    struct ferry_err *err);

/* Formats the public key line (no newline) into buf. */
void
ferry_pubkey_format(const struct ferry_pubkey *pk, char *buf, size_t bufsz);

/*
 * Reads a passphrase: from the file named by FERRY_PASSPHRASE_FILE (first
 * line), else from the terminal without echo (twice if confirm). Fails
 * with FERRY_EUSAGE when neither is available (no terminal, e.g. CI).
 */
int ferry_passphrase_read(const char *prompt, int confirm, char *buf,
    size_t bufsz, struct ferry_err *err);

#endif
