/*
 * fuzz_seckey_load.c -- the secret key file parser: the input is written
 * to a 0600 scratch file and loaded with the passphrase "x".
 *
 * Argon2id costs come from the file itself (bounded by keys.c at 16
 * passes and 4 GiB); inputs asking for more than 4 passes or 1 MiB are
 * skipped here so that each run stays fast and small. The parser up to
 * and including those bounds is still fuzzed.
 *
 * Oracles: results are 0, FERRY_EUSAGE or FERRY_EOPER with a message;
 * a loaded key signs what its own public key verifies, and its id and
 * name are well formed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Value of the decimal digits at p (saturating), and where they end. */
static unsigned long long
digits(const char *p, const char *end, const char **next)
{
	unsigned long long v = 0;

	while (p < end && *p >= '0' && *p <= '9') {
		v = v > 1000000000000ULL ? v : v * 10 + (unsigned)(*p - '0');
		p++;
	}
	*next = p;
	return v;
}

/* Returns 1 if the text asks Argon2id for more than this target allows. */
static int
too_costly(const uint8_t *data, size_t size)
{
	static const char kdf[] = "\nkdf: argon2id ";
	const char *p = (const char *)data, *end = p + size, *q;
	unsigned long long ops, mem;

	while (p < end) {
		q = memchr(p, '\n', (size_t)(end - p));
		if (q == NULL)
			return 0;
		if ((size_t)(end - q) >= sizeof(kdf) - 1 &&
		    memcmp(q, kdf, sizeof(kdf) - 1) == 0) {
			q += sizeof(kdf) - 1;
			ops = digits(q, end, &q);
			if (q < end && *q == ' ')
				q++;
			mem = digits(q, end, &q);
			if (ops > 4 || mem > 1024 * 1024)
				return 1;
		}
		p = q + 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t msg[32] = "fuzz";
	struct ferry_seckey *k = NULL;
	const struct ferry_pubkey *pub;
	struct ferry_err err;
	uint8_t sig[FERRY_SIG_LEN];
	const char *path;
	int rc;

	if (size > 8192 || too_costly(data, size))
		return 0;
	path = fuzz_scratch_file(data, size);
	ferry_err_clear(&err);
	rc = ferry_seckey_load(path, "x", &k, &err);
	if (rc != 0) {
		if ((rc != FERRY_EUSAGE && rc != FERRY_EOPER) || k != NULL ||
		    err.msg[0] == '\0')
			fuzz_fail("refusal %d without a message: %s", rc,
			    err.msg);
		return 0;
	}
	pub = ferry_seckey_public(k);
	if (strlen(pub->id) != FERRY_KEY_ID_HEX || pub->name[0] == '\0')
		fuzz_fail("loaded key has id '%s', name '%s'", pub->id,
		    pub->name);
	ferry_seckey_sign(k, "ferry-fuzz", msg, sig);
	if (ferry_pubkey_verify(pub, "ferry-fuzz", msg, sig) != 0)
		fuzz_fail("loaded key's signature does not verify");
	ferry_seckey_free(k);
	return 0;
}
