/*
 * fuzz_lockfile.c -- the migration_lock.toml parser (the input is the
 * file's text, not NUL-terminated, as ferry_lockfile_check allows).
 *
 * Oracles: results are 0 or FERRY_EUSAGE with a message; an accepted file
 * is at most FERRY_LOCKFILE_MAX_BYTES.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "migrations.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_err err;
	int rc;

	ferry_err_clear(&err);
	rc = ferry_lockfile_check((const char *)data, size,
	    "migrations/migration_lock.toml", &err);
	if (rc != 0 && (rc != FERRY_EUSAGE || err.msg[0] == '\0'))
		fuzz_fail("refusal %d: '%s'", rc, err.msg);
	if (rc == 0 && size > FERRY_LOCKFILE_MAX_BYTES)
		fuzz_fail("accepted a lock file of %zu bytes", size);
	return 0;
}
