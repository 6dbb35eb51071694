/*
 * fuzz_sqlscript.c -- a migration.sql through ferry_script_parse (the
 * real PostgreSQL parser, libpg_query, plus Ferry's classification,
 * directives and step splitting).
 *
 * Oracles: parsing fails only with FERRY_EUSAGE (a bad directive); every
 * step and the body lie inside the file, steps are in order and do not
 * overlap, line/column mapping and step lookup stay in range.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "sqlscript.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_script *s = NULL;
	struct ferry_err err;
	const char *sql = (const char *)data;
	size_t i, n, off, len, prev_end = 0;
	unsigned v = 0;
	int line, col, rc;

	if (size > 64 * 1024)
		return 0;
	ferry_err_clear(&err);
	rc = ferry_script_parse(sql, size, "migration.sql", &s, &err);
	if (rc != 0) {
		if (rc != FERRY_EUSAGE || s != NULL || err.msg[0] == '\0')
			fuzz_fail("refusal %d: '%s'", rc, err.msg);
		return 0;
	}
	switch (ferry_script_mode(s)) {
	case FERRY_MODE_TRANSACTION:
	case FERRY_MODE_PER_STATEMENT:
		if (ferry_script_warning(s) != NULL)
			fuzz_fail("warning without simple mode");
		break;
	case FERRY_MODE_SIMPLE:
		if (ferry_script_warning(s) == NULL)
			fuzz_fail("simple mode without a warning");
		v += fuzz_touch_str(ferry_script_warning(s));
		break;
	default:
		fuzz_fail("unknown mode %d", (int)ferry_script_mode(s));
	}
	v += fuzz_touch_str(ferry_mode_name(ferry_script_mode(s)));
	v += fuzz_touch_str(ferry_script_reason(s));
	v += (unsigned)ferry_script_nstatements(s);
	ferry_script_body(s, &off, &len);
	if (off > size || len > size - off)
		fuzz_fail("body %zu+%zu outside %zu bytes", off, len, size);
	n = ferry_script_nsteps(s);
	for (i = 0; i < n; i++) {
		const struct ferry_step *st = ferry_script_step(s, i);

		if (st->offset > size || st->len > size - st->offset)
			fuzz_fail("step %zu at %zu+%zu outside %zu bytes", i,
			    st->offset, st->len, size);
		if (st->offset < prev_end)
			fuzz_fail("step %zu at %zu overlaps the one before", i,
			    st->offset);
		prev_end = st->offset + st->len;
		v += fuzz_touch_str(st->index_name);
		v += fuzz_touch_str(st->index_schema);
		ferry_script_line_col(s, st->offset, &line, &col);
		if (line < 1 || col < 1 || line != st->line)
			fuzz_fail("step %zu: line %d col %d, recorded line %d",
			    i, line, col, st->line);
		if (ferry_script_step_at(s, st->offset) != i)
			fuzz_fail("step %zu not found at its own offset", i);
	}
	ferry_script_line_col(s, size, &line, &col);
	if (line < 1 || col < 1)
		fuzz_fail("end of file at line %d col %d", line, col);
	v += (unsigned)ferry_script_lock_timeout_ms(s);
	v += (unsigned)ferry_script_statement_timeout_ms(s);
	fuzz_consume(v);
	ferry_script_free(s);
	return 0;
}
