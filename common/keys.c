/*
 * keys.c -- Ed25519 keys (libsodium): generation, the public key line, the
 * secret key file, passphrases and domain-separated signatures.
 *
 * Everything that holds secret material -- the key itself, a passphrase,
 * the box key, the decrypted seed, and the secret key file's text (with
 * "kdf: none" the file is as good as the seed) -- lives in sodium_malloc'ed
 * memory, which is locked, guarded and wiped by sodium_free. Stack copies
 * are wiped with sodium_memzero.
 */
#include "keys.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "buf.h"
#include "hash.h"
#include "util.h"

#define PUB_MAGIC "ferry-ed25519"
#define SEC_MAGIC "ferry-secret-key-v1"
/* Hashed with its terminating NUL, then the public key. */
#define KEY_ID_DOMAIN "ferry-key-id-v1"

#define SEED_LEN crypto_sign_SEEDBYTES
#define PLAIN_LEN (SEED_LEN + FERRY_PUBKEY_LEN)
#define BOX_LEN (crypto_secretbox_MACBYTES + PLAIN_LEN)
#define DATA_LEN (crypto_secretbox_NONCEBYTES + BOX_LEN)
#define DATA_B64_LEN \
	sodium_base64_ENCODED_LEN(DATA_LEN, sodium_base64_VARIANT_ORIGINAL)
#define SALT_LEN crypto_pwhash_SALTBYTES
#define SALT_B64_LEN \
	sodium_base64_ENCODED_LEN(SALT_LEN, sodium_base64_VARIANT_ORIGINAL)
#define PK_B64_LEN                                  \
	sodium_base64_ENCODED_LEN(FERRY_PUBKEY_LEN, \
	    sodium_base64_VARIANT_ORIGINAL)

/* A real secret key file is 211 bytes, or about 270 encrypted. */
#define SECFILE_MAX 4096
#define PUBFILE_MAX 4096
/* Longest public key line accepted by the parser (a real one is < 150). */
#define PUBLINE_MAX 1024
/* Passphrases read by ferry_seckey_load itself: up to this - 1 bytes. */
#define PASS_MAX 1024

/*
 * Bounds on the Argon2id parameters a file may ask for, so that a hostile
 * or damaged file cannot make a load run for hours or allocate terabytes.
 * They leave room above libsodium's "sensitive" level (4 passes, 1 GiB).
 */
#define OPS_MIN crypto_pwhash_argon2id_OPSLIMIT_MIN
#define OPS_MAX 16ULL
#define MEM_MIN crypto_pwhash_argon2id_MEMLIMIT_MIN
#define MEM_MAX (4ULL << 30)

enum { KDF_NONE, KDF_ARGON2ID };

struct ferry_seckey {
	struct ferry_pubkey pub;
	/* libsodium's layout: seed || public key. */
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

/* What the header lines of a secret key file say. */
struct sec_header {
	char name[FERRY_KEY_NAME_MAX + 1];
	char id[FERRY_KEY_ID_HEX + 1];
	int kdf;
	unsigned long long ops;
	size_t mem;
	uint8_t salt[SALT_LEN];
};

/* Secrets used while writing a secret key file; one guarded allocation. */
struct sealing {
	uint8_t key[crypto_secretbox_KEYBYTES];
	uint8_t plain[PLAIN_LEN];
	uint8_t data[DATA_LEN];
	char b64[DATA_B64_LEN];
	char text[1024];
};

/* Secrets used while reading one. */
struct opening {
	char text[SECFILE_MAX + 1];
	size_t len;
	char pass[PASS_MAX];
	uint8_t key[crypto_secretbox_KEYBYTES];
	uint8_t data[DATA_LEN];
	uint8_t plain[PLAIN_LEN];
};

/* sodium_malloc that cannot fail, like xmalloc; memory is zeroed. */
static void *
secure_alloc(size_t n)
{
	void *p = sodium_malloc(n);

	if (p == NULL) {
		fprintf(stderr,
		    "ferry: out of memory allocating %zu bytes of locked "
		    "memory\n",
		    n);
		abort();
	}
	sodium_memzero(p, n);
	return p;
}

static int
crypto_ready(struct ferry_err *err)
{
	if (ferry_crypto_init() != 0)
		return ferry_errf(err, FERRY_EOPER,
		    "cannot initialise libsodium");
	return 0;
}

void
ferry_key_id(const uint8_t pk[FERRY_PUBKEY_LEN], char out[FERRY_KEY_ID_HEX + 1])
{
	static const char domain[] = KEY_ID_DOMAIN;
	crypto_hash_sha256_state st;
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	/* sizeof, not strlen: the NUL is part of the hashed message. */
	crypto_hash_sha256_update(&st, (const uint8_t *)domain, sizeof(domain));
	crypto_hash_sha256_update(&st, pk, FERRY_PUBKEY_LEN);
	crypto_hash_sha256_final(&st, h);
	ferry_hex_encode(h, FERRY_KEY_ID_HEX / 2, out);
}

/* Length of the printable prefix: 0x20..0x7e. */
static size_t
printable_len(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			break;
	return i;
}

static int
name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
	    c == '-';
}

int
ferry_key_check_name(const char *name, struct ferry_err *err)
{
	size_t i, n;

	if (name == NULL || name[0] == '\0')
		return ferry_errf(err, FERRY_EUSAGE, "key name is empty");
	n = strlen(name);
	if (n > FERRY_KEY_NAME_MAX)
		return ferry_errf(err, FERRY_EUSAGE,
		    "key name is too long (%zu characters, limit %d)", n,
		    FERRY_KEY_NAME_MAX);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		char what[32];

		if (name_char(c))
			continue;
		if (c == ' ')
			snprintf(what, sizeof(what), "a space");
		else if (c > 0x20 && c < 0x7f)
			snprintf(what, sizeof(what), "'%c'", c);
		else
			snprintf(what, sizeof(what), "byte 0x%02x", c);
		/* Never echo a control character to a terminal. */
		if (printable_len(name, n) == n)
			return ferry_errf(err, FERRY_EUSAGE,
			    "key name '%s' contains %s: use letters, digits "
			    "and . _ @ -",
			    name, what);
		return ferry_errf(err, FERRY_EUSAGE,
		    "key name contains %s at position %zu: use letters, "
		    "digits and . _ @ -",
		    what, i + 1);
	}
	return 0;
}

/* A key from its seed; the caller has checked name. */
static struct ferry_seckey *
seckey_from_seed(const uint8_t seed[SEED_LEN], const char *name)
{
	struct ferry_seckey *k = secure_alloc(sizeof(*k));

	crypto_sign_seed_keypair(k->pub.pk, k->sk, seed);
	ferry_key_id(k->pub.pk, k->pub.id);
	ferry_strlcpy(k->pub.name, name, sizeof(k->pub.name));
	return k;
}

int
ferry_seckey_generate(const char *name, struct ferry_seckey **out,
    struct ferry_err *err)
{
	uint8_t seed[SEED_LEN];
	int rc;

	*out = NULL;
	rc = ferry_key_check_name(name, err);
	if (rc != 0)
		return rc;
	rc = crypto_ready(err);
	if (rc != 0)
		return rc;
	randombytes_buf(seed, sizeof(seed));
	*out = seckey_from_seed(seed, name);
	sodium_memzero(seed, sizeof(seed));
	return 0;
}

void
ferry_seckey_free(struct ferry_seckey *k)
{
	/* sodium_free wipes the whole allocation before unmapping it. */
	if (k != NULL)
		sodium_free(k);
}

const struct ferry_pubkey *
ferry_seckey_public(const struct ferry_seckey *k)
{
	return &k->pub;
}

/* Builds domain || NUL || digest; free() the result. */
static uint8_t *
signed_message(const char *domain, const uint8_t digest[32], size_t *len)
{
	size_t dlen = strlen(domain) + 1;
	uint8_t *m = xmalloc(dlen + 32);

	memcpy(m, domain, dlen);
	memcpy(m + dlen, digest, 32);
	*len = dlen + 32;
	return m;
}

void
ferry_seckey_sign(const struct ferry_seckey *k, const char *domain,
    const uint8_t digest[32], uint8_t sig[FERRY_SIG_LEN])
{
	size_t len;
	uint8_t *m;

	assert(k != NULL && domain != NULL && digest != NULL);
	m = signed_message(domain, digest, &len);
	crypto_sign_detached(sig, NULL, m, len, k->sk);
	free(m);
}

int
ferry_pubkey_verify(const struct ferry_pubkey *pk, const char *domain,
    const uint8_t digest[32], const uint8_t sig[FERRY_SIG_LEN])
{
	size_t len;
	uint8_t *m;
	int rc;

	assert(pk != NULL && domain != NULL && digest != NULL && sig != NULL);
	if (ferry_crypto_init() != 0)
		return -1;
	m = signed_message(domain, digest, &len);
	rc = crypto_sign_verify_detached(sig, m, len, pk->pk) == 0 ? 0 : -1;
	free(m);
	return rc;
}

/*
 * Splits s[0..n) at single spaces into at most max fields. Returns the
 * number of fields (max + 1 if there are more), or -1 if a field is empty
 * (leading, trailing or doubled space).
 */
static int
split_fields(const char *s, size_t n, const char **f, size_t *fl, int max)
{
	size_t i, start = 0;
	int nf = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ')
			continue;
		if (i == start)
			return -1;
		if (nf == max)
			return max + 1;
		f[nf] = s + start;
		fl[nf] = i - start;
		nf++;
		start = i + 1;
	}
	return nf;
}

static int
field_is(const char *f, size_t fl, const char *lit)
{
	return fl == strlen(lit) && memcmp(f, lit, fl) == 0;
}

/* 1 if f[0..fl) is exactly FERRY_KEY_ID_HEX lowercase hex digits. */
static int
is_key_id(const char *f, size_t fl)
{
	size_t i;

	if (fl != FERRY_KEY_ID_HEX)
		return 0;
	for (i = 0; i < fl; i++)
		if (!((f[i] >= '0' && f[i] <= '9') ||
		        (f[i] >= 'a' && f[i] <= 'f')))
			return 0;
	return 1;
}

/*
 * Decodes canonical padded base64 (the only form Ferry writes) of exactly
 * want bytes. Returns 0, -1 if it is not base64, or the decoded length
 * (> 0, != want) through *got with -2 if it is valid but the wrong size.
 */
static int
b64_decode_exact(const char *s, size_t n, uint8_t *out, size_t want,
    size_t *got)
{
	uint8_t tmp[PUBLINE_MAX];
	const char *end = NULL;
	size_t len = 0;
	char *again;
	int rc = 0;

	*got = 0;
	if (n == 0 || n > sizeof(tmp))
		return -1;
	if (sodium_base642bin(tmp, sizeof(tmp), s, n, NULL, &len, &end,
	        sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != s + n) {
		rc = -1;
		goto out;
	}
	/* Re-encode: a key has one textual form, no stray padding bits. */
	again = xmalloc(
	    sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL));
	sodium_bin2base64(again,
	    sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), tmp,
	    len, sodium_base64_VARIANT_ORIGINAL);
	if (strlen(again) != n || memcmp(again, s, n) != 0)
		rc = -1;
	free(again);
	if (rc != 0)
		goto out;
	*got = len;
	if (len != want) {
		rc = -2;
		goto out;
	}
	memcpy(out, tmp, want);
out:
	sodium_memzero(tmp, sizeof(tmp));
	return rc;
}

int
ferry_pubkey_parse(const char *line, struct ferry_pubkey *out,
    struct ferry_err *err)
{
	const char *f[4];
	size_t fl[4], n, bad, got;
	char id[FERRY_KEY_ID_HEX + 1];
	struct ferry_pubkey pk;
	struct ferry_err nerr;
	int nf, rc;

	memset(out, 0, sizeof(*out));
	memset(&pk, 0, sizeof(pk));
	n = strnlen(line, PUBLINE_MAX + 1);
	if (n > PUBLINE_MAX)
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key line is too long (limit %d characters)",
		    PUBLINE_MAX);
	if (n > 0 && line[n - 1] == '\n')
		n--;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	bad = printable_len(line, n);
	if (bad < n) {
		if (line[bad] == '\n' || line[bad] == '\r')
			return ferry_errf(err, FERRY_EUSAGE,
			    "public key has more than one line");
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key: unexpected %s byte 0x%02x at column %zu",
		    (unsigned char)line[bad] < 0x80 ? "control" : "non-ASCII",
		    (unsigned char)line[bad], bad + 1);
	}
	if (n < strlen(PUB_MAGIC " ") ||
	    memcmp(line, PUB_MAGIC " ", strlen(PUB_MAGIC " ")) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "not a public key: expected '" PUB_MAGIC
		    " <key-id> <base64 key> <name>'");
	nf = split_fields(line, n, f, fl, 4);
	if (nf < 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key: fields must be separated by single spaces");
	if (nf > 4)
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key: unexpected text after the name '%.*s'",
		    (int)fl[3], f[3]);
	if (nf == 3)
		return ferry_errf(err, FERRY_EUSAGE, "public key has no name");
	if (nf < 3)
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key is incomplete: expected '" PUB_MAGIC
		    " <key-id> <base64 key> <name>'");
	if (!is_key_id(f[1], fl[1]))
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key: key id '%.*s' is not %d lowercase hex digits",
		    (int)(fl[1] > 40 ? 40 : fl[1]), f[1], FERRY_KEY_ID_HEX);
	rc = b64_decode_exact(f[2], fl[2], pk.pk, FERRY_PUBKEY_LEN, &got);
	if (rc == -1)
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key: the key is not valid base64");
	if (rc == -2)
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key: the key is %zu bytes, expected %d", got,
		    FERRY_PUBKEY_LEN);
	ferry_key_id(pk.pk, id);
	if (memcmp(id, f[1], FERRY_KEY_ID_HEX) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key: key id '%.*s' does not match the key (its id "
		    "is '%s')",
		    (int)fl[1], f[1], id);
	if (fl[3] > FERRY_KEY_NAME_MAX)
		return ferry_errf(err, FERRY_EUSAGE,
		    "public key: name is too long (%zu characters, limit %d)",
		    fl[3], FERRY_KEY_NAME_MAX);
	memcpy(pk.name, f[3], fl[3]);
	pk.name[fl[3]] = '\0';
	ferry_err_clear(&nerr);
	if (ferry_key_check_name(pk.name, &nerr) != 0)
		return ferry_errf(err, FERRY_EUSAGE, "public key: %s",
		    nerr.msg);
	memcpy(pk.id, id, sizeof(pk.id));
	*out = pk;
	return 0;
}

int
ferry_pubkey_load(const char *path, struct ferry_pubkey *out,
    struct ferry_err *err)
{
	struct ferry_buf b;
	struct ferry_err perr;
	int rc;

	memset(out, 0, sizeof(*out));
	ferry_buf_init(&b, PUBFILE_MAX);
	rc = ferry_buf_read_file(&b, path, err);
	if (rc != 0)
		goto out;
	if (strlen(ferry_buf_str(&b)) != ferry_buf_len(&b)) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s': public key file contains a NUL byte", path);
		goto out;
	}
	ferry_err_clear(&perr);
	rc = ferry_pubkey_parse(ferry_buf_str(&b), out, &perr);
	if (rc != 0)
		rc = ferry_errf(err, rc, "'%s': %s", path, perr.msg);
out:
	ferry_buf_release(&b);
	return rc;
}

void
ferry_pubkey_format(const struct ferry_pubkey *pk, char *buf, size_t bufsz)
{
	char id[FERRY_KEY_ID_HEX + 1];
	char b64[PK_B64_LEN];
	int n;

	ferry_key_id(pk->pk, id);
	sodium_bin2base64(b64, sizeof(b64), pk->pk, FERRY_PUBKEY_LEN,
	    sodium_base64_VARIANT_ORIGINAL);
	n = snprintf(buf, bufsz, PUB_MAGIC " %s %s %s", id, b64, pk->name);
	/* A truncated key line is a bug in the caller: size buf for it. */
	assert(n >= 0 && (size_t)n < bufsz);
	(void)n;
}

/* ---- passphrases ---- */

static volatile sig_atomic_t caught_signal;

static void
on_signal(int signo)
{
	caught_signal = signo;
}

/* Signals that would leave the terminal without echo if not caught. */
static const int tty_signals[] = { SIGALRM, SIGHUP, SIGINT, SIGPIPE, SIGQUIT,
	SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU };

/*
 * Reads one line from the terminal fd with echo off into buf. A signal
 * restores the terminal and is delivered again; after a stop (^Z) the
 * question is asked again, like readpassphrase(3).
 */
static int
tty_ask(int fd, const char *prompt, char *buf, size_t bufsz,
    struct ferry_err *err)
{
	struct sigaction sa, saved[FERRY_NELEM(tty_signals)];
	struct termios old, quiet;
	size_t i, len;
	int toolong, ioerr, sig;
	ssize_t n;
	char c;

again:
	len = 0;
	toolong = 0;
	ioerr = 0;
	c = 0;
	if (tcgetattr(fd, &old) != 0)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot read the terminal settings");
	caught_signal = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: read() must return EINTR */
	for (i = 0; i < FERRY_NELEM(tty_signals); i++)
		sigaction(tty_signals[i], &sa, &saved[i]);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
		ioerr = errno;
	if (ioerr == 0 && write(fd, prompt, strlen(prompt)) < 0)
		ioerr = errno;
	while (ioerr == 0 && caught_signal == 0) {
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ioerr = errno;
			break;
		}
		if (n == 0 || c == '\n')
			break;
		if (len + 1 < bufsz)
			buf[len++] = c;
		else
			toolong = 1;
	}
	buf[len] = '\0';
	c = 0;
	if (write(fd, "\n", 1) < 0) {
		/* The answer is read; a lost newline is cosmetic. */
	}
	tcsetattr(fd, TCSAFLUSH, &old);
	for (i = 0; i < FERRY_NELEM(tty_signals); i++)
		sigaction(tty_signals[i], &saved[i], NULL);
	sig = caught_signal;
	if (sig != 0) {
		sodium_memzero(buf, bufsz);
		kill(getpid(), sig);
		if (sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
			goto again;
		return ferry_errf(err, FERRY_EOPER,
		    "interrupted while reading the passphrase");
	}
	if (ioerr != 0)
		return ferry_errf_errno(err, FERRY_EOPER, ioerr,
		    "cannot read the passphrase from the terminal");
	if (toolong)
		return ferry_errf(err, FERRY_EUSAGE,
		    "passphrase is too long (limit %zu bytes)", bufsz - 1);
	return 0;
}

static int
read_pass_tty(const char *prompt, int confirm, char *buf, size_t bufsz,
    struct ferry_err *err)
{
	char *again = NULL;
	size_t len;
	int fd, rc;

	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "no passphrase: there is no terminal to ask on and "
		    "FERRY_PASSPHRASE_FILE is not set");
	rc = tty_ask(fd, prompt, buf, bufsz, err);
	if (rc != 0 || !confirm || buf[0] == '\0')
		goto out;
	again = secure_alloc(bufsz);
	rc =
	    tty_ask(fd, "Enter the same passphrase again: ", again, bufsz, err);
	if (rc != 0)
		goto out;
	len = strlen(buf);
	if (strlen(again) != len || sodium_memcmp(again, buf, len) != 0)
		rc = ferry_errf(err, FERRY_EUSAGE, "passphrases do not match");
out:
	if (again != NULL)
		sodium_free(again);
	close(fd);
	return rc;
}

/* Reads one byte: 1, 0 at the end of the file, -1 on error. */
static int
read_byte(int fd, char *c)
{
	ssize_t n;

	do
		n = read(fd, c, 1);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : (int)n;
}

/*
 * 1 if what follows in fd ends the line: the end of the file, "\n" or
 * "\r\n" ("\n" alone when the text so far ended with "\r").
 */
static int
line_ends(int fd, int after_cr)
{
	char c = 0;
	int n = read_byte(fd, &c), ok;

	if (n == 0)
		ok = 1;
	else if (n < 0)
		ok = 0;
	else if (c == '\n')
		ok = 1;
	else if (c == '\r' && !after_cr)
		ok = read_byte(fd, &c) == 0 || c == '\n';
	else
		ok = 0;
	c = 0;
	return ok;
}

/* First line of the file at path, without its line ending. */
static int
read_pass_file(const char *path, char *buf, size_t bufsz, struct ferry_err *err)
{
	size_t len = 0;
	ssize_t n;
	char *nl;
	int fd, rc = 0;

	/* No O_NONBLOCK: a pipe (bash's <(...)) is a fine source. */
	fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot open passphrase file '%s' (FERRY_PASSPHRASE_FILE)",
		    path);
	for (;;) {
		if (len + 1 == bufsz) {
			/* Full: fine only if the line ends right here. */
			if (!line_ends(fd, buf[len - 1] == '\r'))
				rc = ferry_errf(err, FERRY_EUSAGE,
				    "passphrase in '%s' is too long (limit %zu "
				    "bytes)",
				    path, bufsz - 1);
			break;
		}
		n = read(fd, buf + len, bufsz - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot read passphrase file '%s'", path);
			break;
		}
		if (n == 0)
			break;
		nl = memchr(buf + len, '\n', (size_t)n);
		if (nl != NULL) {
			len = (size_t)(nl - buf);
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	if (rc != 0)
		return rc;
	/* Whatever lies past the first line is not ours to keep around. */
	sodium_memzero(buf + len, bufsz - len);
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (memchr(buf, '\0', len) != NULL)
		return ferry_errf(err, FERRY_EUSAGE,
		    "passphrase file '%s' contains a NUL byte", path);
	return 0;
}

int
ferry_passphrase_read(const char *prompt, int confirm, char *buf, size_t bufsz,
    struct ferry_err *err)
{
	const char *file = getenv("FERRY_PASSPHRASE_FILE");
	int rc;

	assert(bufsz >= 2);
	buf[0] = '\0';
	if (file != NULL && file[0] != '\0') {
		rc = read_pass_file(file, buf, bufsz, err);
		if (rc == 0 && buf[0] == '\0')
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "empty passphrase in '%s' (FERRY_PASSPHRASE_FILE)",
			    file);
	} else {
		rc = read_pass_tty(prompt, confirm, buf, bufsz, err);
		if (rc == 0 && buf[0] == '\0')
			rc = ferry_errf(err, FERRY_EUSAGE, "empty passphrase");
	}
	if (rc != 0)
		sodium_memzero(buf, bufsz);
	return rc;
}

/* ---- secret key files ---- */

/* Writes all of text to fd. Returns 0 or an errno value. */
static int
write_all(int fd, const char *text, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Creates path exclusively with mode, writes text and fsyncs it. On
 * failure nothing is left behind (unless the path already existed, which
 * is not ours to remove).
 */
static int
create_file(const char *path, mode_t mode, const char *text,
    struct ferry_err *err)
{
	int fd, e;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    mode);
	if (fd < 0 && errno == EEXIST)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' already exists: refusing to overwrite a key", path);
	if (fd < 0)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot create '%s'", path);
	e = write_all(fd, text, strlen(text));
	if (e == 0 && fsync(fd) != 0)
		e = errno;
	if (close(fd) != 0 && e == 0)
		e = errno;
	if (e != 0) {
		unlink(path);
		return ferry_errf_errno(err, FERRY_EOPER, e,
		    "cannot write '%s'", path);
	}
	return 0;
}

/* Makes the new directory entries durable. */
static int
sync_dir(const char *dir, struct ferry_err *err)
{
	int fd, rc = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot open directory '%s'", dir);
	/* Some file systems cannot sync a directory; that is not fatal. */
	if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot sync directory '%s'", dir);
	close(fd);
	return rc;
}

/* The Argon2id cost of new keys. */
static void
pwhash_limits(unsigned long long *ops, size_t *mem)
{
	*ops = crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
	*mem = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
}

static int
derive_key(uint8_t key[crypto_secretbox_KEYBYTES], const char *passphrase,
    const struct sec_header *h, struct ferry_err *err)
{
	if (crypto_pwhash(key, crypto_secretbox_KEYBYTES, passphrase,
	        strlen(passphrase), h->salt, h->ops, h->mem,
	        crypto_pwhash_ALG_ARGON2ID13) != 0)
		return ferry_errf(err, FERRY_EOPER,
		    "cannot derive a key from the passphrase: out of memory "
		    "(argon2id needs %zu MiB)",
		    h->mem >> 20);
	return 0;
}

/* DIR/NAME.EXT, without doubling a trailing slash of dir. */
static char *
key_path(const char *dir, const char *name, const char *ext)
{
	size_t n = strlen(dir);

	if (n > 0 && dir[n - 1] == '/')
		return xasprintf("%s%s%s", dir, name, ext);
	return xasprintf("%s/%s%s", dir, name, ext);
}

int
ferry_seckey_save(const struct ferry_seckey *k, const char *dir,
    const char *passphrase, struct ferry_err *err)
{
	struct sealing *s = NULL;
	struct sec_header h;
	char *keypath = NULL, *pubpath = NULL;
	char kdf[128], salt_b64[SALT_B64_LEN];
	char publine[256];
	int rc, n, key_written = 0;

	memset(&h, 0, sizeof(h));
	rc = ferry_key_check_name(k->pub.name, err);
	if (rc != 0)
		goto out;
	rc = crypto_ready(err);
	if (rc != 0)
		goto out;
	keypath = key_path(dir, k->pub.name, ".key");
	pubpath = key_path(dir, k->pub.name, ".pub");
	s = secure_alloc(sizeof(*s));

	if (passphrase != NULL && passphrase[0] != '\0') {
		h.kdf = KDF_ARGON2ID;
		pwhash_limits(&h.ops, &h.mem);
		randombytes_buf(h.salt, sizeof(h.salt));
		rc = derive_key(s->key, passphrase, &h, err);
		if (rc != 0)
			goto out;
		sodium_bin2base64(salt_b64, sizeof(salt_b64), h.salt,
		    sizeof(h.salt), sodium_base64_VARIANT_ORIGINAL);
		snprintf(kdf, sizeof(kdf), "kdf: argon2id %llu %zu %s", h.ops,
		    h.mem, salt_b64);
	} else {
		/* All-zero box key: no secrecy, but damage is detected. */
		h.kdf = KDF_NONE;
		snprintf(kdf, sizeof(kdf), "kdf: none");
	}
	memcpy(s->plain, k->sk, SEED_LEN);
	memcpy(s->plain + SEED_LEN, k->pub.pk, FERRY_PUBKEY_LEN);
	randombytes_buf(s->data, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(s->data + crypto_secretbox_NONCEBYTES, s->plain,
	    PLAIN_LEN, s->data, s->key);
	sodium_bin2base64(s->b64, sizeof(s->b64), s->data, DATA_LEN,
	    sodium_base64_VARIANT_ORIGINAL);
	n = snprintf(s->text, sizeof(s->text),
	    SEC_MAGIC "\nname: %s\nkey-id: %s\n%s\ndata: %s\n", k->pub.name,
	    k->pub.id, kdf, s->b64);
	assert(n > 0 && (size_t)n < sizeof(s->text));
	(void)n;
	ferry_pubkey_format(&k->pub, publine, sizeof(publine) - 1);
	n = (int)strlen(publine);
	publine[n] = '\n';
	publine[n + 1] = '\0';

	rc = create_file(keypath, 0600, s->text, err);
	if (rc != 0)
		goto out;
	key_written = 1;
	rc = create_file(pubpath, 0644, publine, err);
	if (rc != 0)
		goto out;
	rc = sync_dir(dir, err);
out:
	if (rc != 0 && key_written)
		unlink(keypath);
	if (s != NULL)
		sodium_free(s);
	free(pubpath);
	free(keypath);
	return rc;
}

/*
 * Reads the secret key file into o->text. It is read here rather than with
 * ferry_buf_read_file so that the text stays in locked memory and the mode
 * is checked on the very file that is read.
 */
static int
read_secret_file(const char *path, struct opening *o, struct ferry_err *err)
{
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	/* O_NONBLOCK: a FIFO must not hang us; it is refused below. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot open '%s'", path);
	if (fstat(fd, &st) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot stat '%s'", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ferry_errf(err, FERRY_EOPER, "'%s' is not a regular file",
		    path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is accessible by other users (mode %04o): run chmod "
		    "600 '%s'",
		    path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	o->len = 0;
	for (;;) {
		n = read(fd, o->text + o->len, sizeof(o->text) - o->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot read '%s'", path);
			goto out;
		}
		if (n == 0)
			break;
		o->len += (size_t)n;
		if (o->len > SECFILE_MAX) {
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "'%s' is too large for a secret key file (limit %d "
			    "bytes)",
			    path, SECFILE_MAX);
			goto out;
		}
	}
out:
	close(fd);
	return rc;
}

/* Cursor over the lines of a text that need not be NUL-terminated. */
struct lines {
	const char *path;
	const char *p, *end;
	int no;
	const char *s; /* current line, without '\n' */
	size_t n;
};

/* Moves to the next line: 0, or -1 at the end of the text. */
static int
next_line(struct lines *l)
{
	const char *nl;

	if (l->p >= l->end)
		return -1;
	nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
	l->s = l->p;
	l->n = nl != NULL ? (size_t)(nl - l->p) : (size_t)(l->end - l->p);
	l->p = nl != NULL ? nl + 1 : l->end;
	l->no++;
	return 0;
}

/* Moves to the next line, which must exist and be printable ASCII. */
static int
expect_line(struct lines *l, const char *what, struct ferry_err *err)
{
	size_t bad;

	if (next_line(l) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: unexpected end of file, expected %s",
		    l->path, l->no + 1, what);
	bad = printable_len(l->s, l->n);
	if (bad < l->n)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: unexpected %s byte 0x%02x at column %zu",
		    l->path, l->no,
		    (unsigned char)l->s[bad] < 0x80 ? "control" : "non-ASCII",
		    (unsigned char)l->s[bad], bad + 1);
	return 0;
}

/* If line starts with prefix, points *rest past it and returns 1. */
static int
line_has(const struct lines *l, const char *prefix, const char **rest,
    size_t *restlen)
{
	size_t pl = strlen(prefix);

	if (l->n < pl || memcmp(l->s, prefix, pl) != 0)
		return 0;
	*rest = l->s + pl;
	*restlen = l->n - pl;
	return 1;
}

/* Strict unsigned decimal: digits only, no leading zero, within range. */
static int
parse_ull(const char *s, size_t n, unsigned long long min,
    unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	size_t i;

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (~0ULL - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
parse_kdf_line(struct lines *l, struct sec_header *h, struct ferry_err *err)
{
	static const char what[] =
	    "'kdf: none' or 'kdf: argon2id <opslimit> <memlimit> <salt>'";
	const char *rest, *f[3];
	size_t rl, fl[3], got;
	unsigned long long mem;
	int rc;

	rc = expect_line(l, what, err);
	if (rc != 0)
		return rc;
	if (field_is(l->s, l->n, "kdf: none")) {
		h->kdf = KDF_NONE;
		return 0;
	}
	if (!line_has(l, "kdf: argon2id ", &rest, &rl) ||
	    split_fields(rest, rl, f, fl, 3) != 3)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: expected %s", l->path, l->no, what);
	h->kdf = KDF_ARGON2ID;
	if (parse_ull(f[0], fl[0], OPS_MIN, OPS_MAX, &h->ops) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: argon2id opslimit must be a number from "
		    "%llu "
		    "to %llu",
		    l->path, l->no, (unsigned long long)OPS_MIN, OPS_MAX);
	if (parse_ull(f[1], fl[1], MEM_MIN,
	        MEM_MAX < SIZE_MAX ? MEM_MAX : SIZE_MAX, &mem) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: argon2id memlimit must be a number of bytes "
		    "from %llu to %llu",
		    l->path, l->no, (unsigned long long)MEM_MIN, MEM_MAX);
	h->mem = (size_t)mem;
	if (b64_decode_exact(f[2], fl[2], h->salt, SALT_LEN, &got) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: the salt must be %d bytes of base64",
		    l->path, l->no, SALT_LEN);
	return 0;
}

/*
 * Parses the text of a secret key file: the header into h, the decoded
 * data line into o->data. Every line must be exactly as ferry writes it.
 */
static int
parse_secret(const char *path, struct opening *o, struct sec_header *h,
    struct ferry_err *err)
{
	struct lines l;
	struct ferry_err nerr;
	const char *rest;
	size_t rl, got = 0;
	int rc;

	memset(&l, 0, sizeof(l));
	l.path = path;
	l.p = o->text;
	l.end = o->text + o->len;

	if (next_line(&l) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is empty, expected a secret key file", path);
	if (l.n >= strlen(PUB_MAGIC " ") &&
	    memcmp(l.s, PUB_MAGIC " ", strlen(PUB_MAGIC " ")) == 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' holds a public key, not a secret key", path);
	if (!field_is(l.s, l.n, SEC_MAGIC))
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line 1: not a ferry secret key file (expected "
		    "'" SEC_MAGIC "')",
		    path);

	rc = expect_line(&l, "'name: <name>'", err);
	if (rc != 0)
		return rc;
	if (!line_has(&l, "name: ", &rest, &rl))
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: expected 'name: <name>'", path, l.no);
	if (rl > FERRY_KEY_NAME_MAX)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: key name is too long (limit %d)", path, l.no,
		    FERRY_KEY_NAME_MAX);
	memcpy(h->name, rest, rl);
	h->name[rl] = '\0';
	ferry_err_clear(&nerr);
	if (ferry_key_check_name(h->name, &nerr) != 0)
		return ferry_errf(err, FERRY_EUSAGE, "'%s' line %d: %s", path,
		    l.no, nerr.msg);

	rc = expect_line(&l, "'key-id: <key id>'", err);
	if (rc != 0)
		return rc;
	if (!line_has(&l, "key-id: ", &rest, &rl) || !is_key_id(rest, rl))
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: expected 'key-id: <%d lowercase hex "
		    "digits>'",
		    path, l.no, FERRY_KEY_ID_HEX);
	memcpy(h->id, rest, FERRY_KEY_ID_HEX);
	h->id[FERRY_KEY_ID_HEX] = '\0';

	rc = parse_kdf_line(&l, h, err);
	if (rc != 0)
		return rc;

	rc = expect_line(&l, "'data: <base64>'", err);
	if (rc != 0)
		return rc;
	if (!line_has(&l, "data: ", &rest, &rl) ||
	    b64_decode_exact(rest, rl, o->data, DATA_LEN, &got) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: expected 'data: <base64 of %d bytes>'", path,
		    l.no, DATA_LEN);

	if (next_line(&l) == 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: unexpected text after the data line", path,
		    l.no);
	return 0;
}

int
ferry_seckey_load(const char *path, const char *passphrase,
    struct ferry_seckey **out, struct ferry_err *err)
{
	struct opening *o = NULL;
	struct ferry_seckey *k = NULL;
	struct sec_header h;
	char *prompt = NULL;
	int rc;

	*out = NULL;
	memset(&h, 0, sizeof(h));
	rc = crypto_ready(err);
	if (rc != 0)
		goto out;
	o = secure_alloc(sizeof(*o));
	rc = read_secret_file(path, o, err);
	if (rc != 0)
		goto out;
	rc = parse_secret(path, o, &h, err);
	if (rc != 0)
		goto out;

	if (h.kdf == KDF_ARGON2ID) {
		if (passphrase == NULL || passphrase[0] == '\0') {
			prompt = xasprintf("Passphrase for '%s': ", path);
			rc = ferry_passphrase_read(prompt, 0, o->pass,
			    sizeof(o->pass), err);
			if (rc != 0)
				goto out;
			passphrase = o->pass;
		}
		rc = derive_key(o->key, passphrase, &h, err);
		if (rc != 0)
			goto out;
	}
	if (crypto_secretbox_open_easy(o->plain,
	        o->data + crypto_secretbox_NONCEBYTES, BOX_LEN, o->data,
	        o->key) != 0) {
		if (h.kdf == KDF_ARGON2ID)
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "wrong passphrase for '%s' (or the file is "
			    "damaged)",
			    path);
		else
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "'%s' is damaged: the key data does not "
			    "authenticate",
			    path);
		goto out;
	}
	k = seckey_from_seed(o->plain, h.name);
	if (memcmp(k->pub.pk, o->plain + SEED_LEN, FERRY_PUBKEY_LEN) != 0) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is damaged: the stored public key does not match the "
		    "secret key",
		    path);
		goto out;
	}
	if (strcmp(k->pub.id, h.id) != 0) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line 3: key id %s does not match the key (its id is "
		    "%s)",
		    path, h.id, k->pub.id);
		goto out;
	}
	*out = k;
	k = NULL;
out:
	ferry_seckey_free(k);
	if (o != NULL)
		sodium_free(o);
	free(prompt);
	return rc;
}
