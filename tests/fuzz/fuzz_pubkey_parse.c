/*
 * fuzz_pubkey_parse.c -- the public key line parser, as used for --trust
 * files and the approver keys of an agent's configuration.
 *
 * Oracles: a parsed key has a well-formed id that matches its key, and
 * formatting it gives a line that parses back to the same key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "keys.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_pubkey pk, again;
	struct ferry_err err;
	char id[FERRY_KEY_ID_HEX + 1], line[512], *text;
	int rc;

	if (size > 4096)
		return 0;
	/* The parser takes a C string: stop at the first NUL like a
	   reader of a text file would. */
	text = xstrndup((const char *)data, size);
	ferry_err_clear(&err);
	rc = ferry_pubkey_parse(text, &pk, &err);
	if (rc != 0) {
		if (err.msg[0] == '\0')
			fuzz_fail("refusal %d without a message", rc);
		free(text);
		return 0;
	}
	ferry_key_id(pk.pk, id);
	if (strcmp(id, pk.id) != 0)
		fuzz_fail("parsed id '%s' is not the key's id '%s'", pk.id, id);
	ferry_pubkey_format(&pk, line, sizeof(line));
	ferry_err_clear(&err);
	if (ferry_pubkey_parse(line, &again, &err) != 0)
		fuzz_fail("formatted line '%s' does not parse: %s", line,
		    err.msg);
	if (memcmp(pk.pk, again.pk, sizeof(pk.pk)) != 0 ||
	    strcmp(pk.id, again.id) != 0 || strcmp(pk.name, again.name) != 0)
		fuzz_fail("'%s' does not round-trip", line);
	free(text);
	return 0;
}
