/*
 * test_sqlscript.c -- splitting and classifying migration.sql: each mode
 * rule and its reason, the wrapping BEGIN/COMMIT, steps and their offsets,
 * directives, positions, and input the parser cannot take.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlscript.h"
#include "util.h"

#define NAME "20250101000000_init"
#define TAIL "; running it as one query, as Prisma does"

static struct ferry_script *
parse_len(const char *sql, size_t len)
{
	struct ferry_script *s = NULL;
	struct ferry_err err;

	ferry_err_clear(&err);
	if (ferry_script_parse(sql, len, NAME, &s, &err) != 0)
		fail_msg("unexpected error: %s", err.msg);
	assert_non_null(s);
	return s;
}

static struct ferry_script *
parse(const char *sql)
{
	return parse_len(sql, strlen(sql));
}

/* Parses sql expecting a usage error; returns its message. */
static void
parse_fails(const char *sql, const char *msg)
{
	struct ferry_script *s = (struct ferry_script *)1;
	struct ferry_err err;

	ferry_err_clear(&err);
	assert_int_equal(ferry_script_parse(sql, strlen(sql), NAME, &s, &err),
	    FERRY_EUSAGE);
	assert_null(s);
	assert_int_equal(err.code, FERRY_EUSAGE);
	assert_string_equal(err.msg, msg);
}

static void
assert_step(const char *sql, const struct ferry_script *s, size_t i,
    const char *text, int line, unsigned flags)
{
	const struct ferry_step *st = ferry_script_step(s, i);

	assert_non_null(st);
	if (st->len != strlen(text) || memcmp(sql + st->offset, text, st->len))
		fail_msg("step %zu is '%.*s', expected '%s'", i, (int)st->len,
		    sql + st->offset, text);
	assert_int_equal(st->line, line);
	assert_int_equal(st->flags, flags);
}

static void
assert_body(const char *sql, const struct ferry_script *s, const char *text)
{
	size_t off, len;

	ferry_script_body(s, &off, &len);
	if (len != strlen(text) || memcmp(sql + off, text, len) != 0)
		fail_msg("body is '%.*s', expected '%s'", (int)len, sql + off,
		    text);
}

static void
assert_mode(const struct ferry_script *s, enum ferry_mode mode,
    const char *reason)
{
	if (ferry_script_mode(s) != mode ||
	    strcmp(ferry_script_reason(s), reason) != 0)
		fail_msg("mode %s (%s), expected %s (%s)",
		    ferry_mode_name(ferry_script_mode(s)),
		    ferry_script_reason(s), ferry_mode_name(mode), reason);
}

static void
test_plain_transaction(void **state)
{
	const char *sql = "CREATE TABLE a (id int);\n"
	                  "CREATE INDEX a_id ON a (id);\n";
	struct ferry_script *s = parse(sql);

	(void)state;
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_null(ferry_script_warning(s));
	assert_int_equal(ferry_script_nstatements(s), 2);
	assert_int_equal(ferry_script_nsteps(s), 2);
	assert_step(sql, s, 0, "CREATE TABLE a (id int)", 1, 0);
	assert_step(sql, s, 1, "CREATE INDEX a_id ON a (id)", 2, 0);
	assert_null(ferry_script_step(s, 2));
	assert_body(sql, s, sql);
	assert_int_equal(ferry_script_lock_timeout_ms(s), -1);
	assert_int_equal(ferry_script_statement_timeout_ms(s), -1);
	ferry_script_free(s);
	ferry_script_free(NULL);
}

static void
test_wrapping_pair_stripped(void **state)
{
	const char *sql = "-- hand-written\n"
	                  "BEGIN; -- ours now\n"
	                  "CREATE TABLE a (id int);\n"
	                  "ALTER TYPE e ADD VALUE 'x';\n"
	                  "-- done\n"
	                  "COMMIT;\n";
	struct ferry_script *s = parse(sql);

	(void)state;
	/* ADD VALUE is last once the pair is gone. */
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_int_equal(ferry_script_nstatements(s), 4);
	assert_int_equal(ferry_script_nsteps(s), 2);
	assert_body(sql, s,
	    " -- ours now\n"
	    "CREATE TABLE a (id int);\n"
	    "ALTER TYPE e ADD VALUE 'x';\n"
	    "-- done\n");
	assert_step(sql, s, 0, "CREATE TABLE a (id int)", 3, 0);
	assert_step(sql, s, 1, "ALTER TYPE e ADD VALUE 'x'", 4,
	    FERRY_STMT_ADD_VALUE);
	ferry_script_free(s);

	/* START TRANSACTION ... END, no final ';', and an empty pair. */
	sql = "start transaction;\nSELECT 1;\nSELECT 2;\nEND";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_body(sql, s, "\nSELECT 1;\nSELECT 2;\n");
	assert_int_equal(ferry_script_nsteps(s), 2);
	assert_step(sql, s, 1, "SELECT 2", 3, 0);
	ferry_script_free(s);

	sql = "BEGIN WORK;COMMIT;";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_body(sql, s, "");
	assert_int_equal(ferry_script_nstatements(s), 2);
	assert_int_equal(ferry_script_nsteps(s), 0);
	ferry_script_free(s);

	/* A pair stripped from a per-statement file stays out of steps. */
	sql = "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;\n";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "CREATE INDEX CONCURRENTLY at line 2 cannot run in a transaction "
	    "block");
	assert_int_equal(ferry_script_nsteps(s), 1);
	assert_step(sql, s, 0, "CREATE INDEX CONCURRENTLY i ON t (a)", 2,
	    FERRY_STMT_NO_TX | FERRY_STMT_CONCURRENT);
	ferry_script_free(s);
}

static void
test_transaction_blocks(void **state)
{
	const char *sql = "CREATE TABLE a (x int);\n"
	                  "BEGIN;\n"
	                  "INSERT INTO a VALUES (1);\n"
	                  "INSERT INTO a VALUES (2);\n"
	                  "COMMIT;\n"
	                  "CREATE TABLE b (y int);\n";
	struct ferry_script *s = parse(sql);

	(void)state;
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "transaction control (BEGIN) at line 2");
	assert_int_equal(ferry_script_nstatements(s), 6);
	assert_int_equal(ferry_script_nsteps(s), 3);
	assert_step(sql, s, 0, "CREATE TABLE a (x int)", 1, 0);
	assert_step(sql, s, 1,
	    "BEGIN;\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES (2);\n"
	    "COMMIT",
	    2, FERRY_STMT_TX_CONTROL);
	assert_step(sql, s, 2, "CREATE TABLE b (y int)", 6, 0);
	assert_body(sql, s, sql);
	ferry_script_free(s);

	/* A COMMIT in the middle is named, not the BEGIN opening the file. */
	sql = "BEGIN;\nSELECT 1;\nCOMMIT;\n\nSELECT 2;\n";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "transaction control (COMMIT) at line 3");
	assert_int_equal(ferry_script_nsteps(s), 2);
	assert_step(sql, s, 0, "BEGIN;\nSELECT 1;\nCOMMIT", 1,
	    FERRY_STMT_TX_CONTROL);
	assert_step(sql, s, 1, "SELECT 2", 5, 0);
	ferry_script_free(s);

	/* A ROLLBACK ends a block too; ABORT is named as written. */
	sql = "SELECT 0;\nstart transaction;\nSELECT 1;\nabort;\nSELECT 2;";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "transaction control (START TRANSACTION) at line 2");
	assert_int_equal(ferry_script_nsteps(s), 3);
	assert_step(sql, s, 1, "start transaction;\nSELECT 1;\nabort", 2,
	    FERRY_STMT_TX_CONTROL);
	ferry_script_free(s);

	/* Options on BEGIN would be lost if stripped: the file is one step. */
	sql = "BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;\n";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "transaction control (BEGIN with options) at line 1");
	assert_int_equal(ferry_script_nsteps(s), 1);
	assert_step(sql, s, 0,
	    "BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT", 1,
	    FERRY_STMT_TX_CONTROL);
	ferry_script_free(s);

	/* A savepoint breaks the wrapping pair; the block stays whole. */
	sql = "BEGIN;\nSAVEPOINT a;\nSELECT 1;\nRELEASE a;\nEND;\n";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "transaction control (SAVEPOINT) at line 2");
	assert_int_equal(ferry_script_nsteps(s), 1);
	ferry_script_free(s);

	/* COMMIT AND CHAIN keeps the block open, so it is not a pair. */
	sql = "BEGIN;\nSELECT 1;\nCOMMIT AND CHAIN;\nSELECT 2;\nCOMMIT;";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "transaction control (COMMIT AND CHAIN) at line 3");
	assert_int_equal(ferry_script_nsteps(s), 1);
	ferry_script_free(s);

	/* A block never closed runs to the end of the file. */
	sql = "SELECT 1;\nBEGIN;\nSELECT 2;\nSELECT 3\n";
	s = parse(sql);
	assert_int_equal(ferry_script_nsteps(s), 2);
	assert_step(sql, s, 1, "BEGIN;\nSELECT 2;\nSELECT 3\n", 2,
	    FERRY_STMT_TX_CONTROL);
	ferry_script_free(s);

	/* Flags and index names of a block's statements go to its step. */
	sql = "SELECT 1;\nBEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\n"
	      "COMMIT;";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "transaction control (BEGIN) at line 2");
	assert_step(sql, s, 1,
	    "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT", 2,
	    FERRY_STMT_TX_CONTROL | FERRY_STMT_NO_TX | FERRY_STMT_CONCURRENT);
	assert_string_equal(ferry_script_step(s, 1)->index_name, "i");
	ferry_script_free(s);

	/* A lone COMMIT is its own step. */
	sql = "SELECT 1;\ncommit;\nSELECT 2;";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "transaction control (COMMIT) at line 2");
	assert_int_equal(ferry_script_nsteps(s), 3);
	ferry_script_free(s);
}

static void
test_create_index_concurrently(void **state)
{
	const char *sql =
	    "CREATE TABLE s.t (a int);\n"
	    "\n"
	    "-- index\n"
	    "CREATE UNIQUE INDEX CONCURRENTLY \"T_a_idx\" "
	    "ON \"s\".\"t\" (a);\n"
	    "create index concurrently on t (a);\n"
	    "CREATE INDEX CONCURRENTLY IF NOT EXISTS i2 ON t2 (b);\n";
	const struct ferry_step *st;
	struct ferry_script *s = parse(sql);

	(void)state;
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "CREATE INDEX CONCURRENTLY at line 4 cannot run in a transaction "
	    "block");
	assert_int_equal(ferry_script_nsteps(s), 4);
	st = ferry_script_step(s, 0);
	assert_int_equal(st->flags, 0);
	assert_null(st->index_name);
	assert_null(st->index_schema);
	st = ferry_script_step(s, 1);
	assert_int_equal(st->flags, FERRY_STMT_NO_TX | FERRY_STMT_CONCURRENT);
	assert_int_equal(st->line, 4);
	assert_string_equal(st->index_name, "T_a_idx");
	assert_string_equal(st->index_schema, "s");
	st = ferry_script_step(s, 2);
	assert_int_equal(st->flags, FERRY_STMT_NO_TX | FERRY_STMT_CONCURRENT);
	assert_null(st->index_name);
	assert_null(st->index_schema);
	st = ferry_script_step(s, 3);
	assert_string_equal(st->index_name, "i2");
	assert_null(st->index_schema);
	ferry_script_free(s);
}

struct mode_case {
	const char *sql;
	enum ferry_mode mode;
	const char *reason;
};

static void
check_cases(const struct mode_case *c, size_t n)
{
	struct ferry_script *s;
	size_t i;

	for (i = 0; i < n; i++) {
		s = parse(c[i].sql);
		if (ferry_script_mode(s) != c[i].mode ||
		    strcmp(ferry_script_reason(s), c[i].reason) != 0)
			fail_msg("'%s': mode %s (%s), expected %s (%s)",
			    c[i].sql, ferry_mode_name(ferry_script_mode(s)),
			    ferry_script_reason(s), ferry_mode_name(c[i].mode),
			    c[i].reason);
		ferry_script_free(s);
	}
}

#define NOTX(what, line) \
	what " at line " #line " cannot run in a transaction block"

static void
test_no_transaction_statements(void **state)
{
	static const struct mode_case cases[] = {
		{ "SELECT 1;\nDROP INDEX CONCURRENTLY IF EXISTS i;",
		    FERRY_MODE_PER_STATEMENT,
		    NOTX("DROP INDEX CONCURRENTLY", 2) },
		{ "DROP INDEX i;", FERRY_MODE_TRANSACTION, "" },
		{ "REINDEX INDEX CONCURRENTLY i;", FERRY_MODE_PER_STATEMENT,
		    NOTX("REINDEX CONCURRENTLY", 1) },
		{ "REINDEX (VERBOSE, CONCURRENTLY) TABLE t;",
		    FERRY_MODE_PER_STATEMENT, NOTX("REINDEX CONCURRENTLY", 1) },
		{ "REINDEX (CONCURRENTLY false) TABLE t;",
		    FERRY_MODE_TRANSACTION, "" },
		{ "REINDEX (CONCURRENTLY 0) TABLE t;", FERRY_MODE_TRANSACTION,
		    "" },
		{ "REINDEX TABLE t;", FERRY_MODE_TRANSACTION, "" },
		{ "REINDEX SCHEMA s;", FERRY_MODE_PER_STATEMENT,
		    NOTX("REINDEX SCHEMA", 1) },
		{ "ANALYZE t;", FERRY_MODE_TRANSACTION, "" },
		{ "ANALYZE;", FERRY_MODE_TRANSACTION, "" },
		{ "VACUUM t;", FERRY_MODE_PER_STATEMENT, NOTX("VACUUM", 1) },
		{ "SELECT 1;\n\nvacuum (analyze) t;", FERRY_MODE_PER_STATEMENT,
		    NOTX("VACUUM", 3) },
		{ "CREATE DATABASE d;", FERRY_MODE_PER_STATEMENT,
		    NOTX("CREATE DATABASE", 1) },
		{ "DROP DATABASE IF EXISTS d;", FERRY_MODE_PER_STATEMENT,
		    NOTX("DROP DATABASE", 1) },
		{ "ALTER SYSTEM SET work_mem = '64MB';",
		    FERRY_MODE_PER_STATEMENT, NOTX("ALTER SYSTEM", 1) },
		{ "CREATE TABLESPACE x LOCATION '/srv/x';",
		    FERRY_MODE_PER_STATEMENT, NOTX("CREATE TABLESPACE", 1) },
		{ "DROP TABLESPACE x;", FERRY_MODE_PER_STATEMENT,
		    NOTX("DROP TABLESPACE", 1) },
		{ "ALTER DATABASE d SET TABLESPACE x;",
		    FERRY_MODE_PER_STATEMENT,
		    NOTX("ALTER DATABASE ... SET TABLESPACE", 1) },
		{ "ALTER DATABASE d SET work_mem = '64MB';",
		    FERRY_MODE_TRANSACTION, "" },
		{ "CREATE TABLE t (a int) TABLESPACE x;",
		    FERRY_MODE_TRANSACTION, "" },
		{ "CLUSTER;", FERRY_MODE_PER_STATEMENT,
		    NOTX("CLUSTER without a table", 1) },
		{ "CLUSTER t USING i;", FERRY_MODE_TRANSACTION, "" },
		{ "ALTER TABLE p DETACH PARTITION c CONCURRENTLY;",
		    FERRY_MODE_PER_STATEMENT,
		    NOTX("ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY",
		        1) },
		{ "ALTER TABLE p DETACH PARTITION c;", FERRY_MODE_TRANSACTION,
		    "" },
		{ "REFRESH MATERIALIZED VIEW CONCURRENTLY v;",
		    FERRY_MODE_TRANSACTION, "" },
		{ "COMMIT PREPARED 'x';", FERRY_MODE_PER_STATEMENT,
		    NOTX("COMMIT PREPARED", 1) },
		{ "PREPARE TRANSACTION 'x';", FERRY_MODE_PER_STATEMENT,
		    "transaction control (PREPARE TRANSACTION) at line 1" },
	};

	(void)state;
	check_cases(cases, FERRY_NELEM(cases));
}

static void
test_add_value(void **state)
{
	static const struct mode_case cases[] = {
		{ "CREATE TYPE e AS ENUM ('a');\n"
		  "ALTER TYPE e ADD VALUE 'b';\n",
		    FERRY_MODE_TRANSACTION, "" },
		{ "ALTER TYPE e ADD VALUE IF NOT EXISTS 'b' BEFORE 'a';\n"
		  "-- and use it\n"
		  "UPDATE t SET v = 'b';\n",
		    FERRY_MODE_PER_STATEMENT,
		    "ALTER TYPE ... ADD VALUE at line 1 is followed by other "
		    "statements (a use of the new value would fail in the "
		    "same transaction, SQLSTATE 55P04)" },
		{ "SELECT 1;\nALTER TYPE e ADD VALUE 'b';\nSELECT 2;",
		    FERRY_MODE_PER_STATEMENT,
		    "ALTER TYPE ... ADD VALUE at line 2 is followed by other "
		    "statements (a use of the new value would fail in the "
		    "same transaction, SQLSTATE 55P04)" },
		{ "ALTER TYPE e RENAME VALUE 'a' TO 'b';\nSELECT 1;",
		    FERRY_MODE_TRANSACTION, "" },
		{ "ALTER TYPE e ADD ATTRIBUTE x int;\nSELECT 1;",
		    FERRY_MODE_TRANSACTION, "" },
		{ "CREATE DOMAIN d AS int CHECK (VALUE > 0);\nSELECT 1;",
		    FERRY_MODE_TRANSACTION, "" },
	};
	const char *sql = "ALTER TYPE e ADD VALUE 'b';\nSELECT 1;";
	struct ferry_script *s;

	(void)state;
	check_cases(cases, FERRY_NELEM(cases));
	s = parse(sql);
	assert_step(sql, s, 0, "ALTER TYPE e ADD VALUE 'b'", 1,
	    FERRY_STMT_ADD_VALUE);
	assert_step(sql, s, 1, "SELECT 1", 2, 0);
	ferry_script_free(s);
}

static void
test_keywords_in_literals_and_comments(void **state)
{
	const char *sql =
	    "SELECT 'VACUUM';\n"
	    "CREATE FUNCTION f() RETURNS void AS $$ BEGIN COMMIT; END $$ "
	    "LANGUAGE plpgsql;\n"
	    "CREATE FUNCTION g() RETURNS int AS $body$ VACUUM; $body$ "
	    "LANGUAGE sql;\n"
	    "/* CREATE INDEX CONCURRENTLY x ON t (a); /* nested */ COMMIT; */\n"
	    "-- VACUUM; COMMIT;\n"
	    "SELECT 'create index concurrently' AS \"VACUUM\", E'\\'commit;';\n"
	    "SELECT CASE WHEN true THEN 1 END;\n"
	    "CREATE TABLE t (value int, \"database\" text);\n"
	    "COMMENT ON TABLE t IS 'BEGIN; COMMIT;';\n"
	    "CREATE TABLE c (n text DEFAULT 'CREATE INDEX CONCURRENTLY');\n"
	    "ALTER TABLE c ALTER n SET DEFAULT 'DETACH CONCURRENTLY';\n"
	    "PREPARE q AS SELECT 1;\n";
	struct ferry_script *s = parse(sql);

	(void)state;
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_int_equal(ferry_script_nstatements(s), 10);
	assert_step(sql, s, 3,
	    "SELECT 'create index concurrently' AS \"VACUUM\", E'\\'commit;'",
	    6, 0);
	ferry_script_free(s);
}

static void
test_unparseable_is_simple(void **state)
{
	const char *sql = "CREATE TABLE a (x int);\n"
	                  "\n"
	                  "SELECT JSON_OBJECT('a' VALUE 1);\n";
	struct ferry_script *s = parse(sql);

	(void)state;
	assert_mode(s, FERRY_MODE_SIMPLE,
	    "cannot be parsed with the PostgreSQL 15 grammar");
	assert_string_equal(ferry_script_warning(s),
	    "cannot parse '" NAME "' with the PostgreSQL 15 grammar at line "
	    "3: syntax error at or near \"VALUE\"" TAIL);
	assert_int_equal(ferry_script_nstatements(s), 0);
	assert_body(sql, s, sql);
	ferry_script_free(s);

	/* PostgreSQL 17's MERGE ... RETURNING; directives still apply. */
	sql = "-- ferry:lock_timeout=3s\n"
	      "MERGE INTO t USING s ON t.a = s.a\n"
	      "WHEN MATCHED THEN DELETE RETURNING *;\n";
	s = parse(sql);
	assert_int_equal(ferry_script_mode(s), FERRY_MODE_SIMPLE);
	assert_string_equal(ferry_script_warning(s),
	    "cannot parse '" NAME "' with the PostgreSQL 15 grammar at line "
	    "3: syntax error at or near \"RETURNING\"" TAIL);
	assert_int_equal(ferry_script_lock_timeout_ms(s), 3000);
	ferry_script_free(s);

	/* The parser counts characters, not bytes. */
	s = parse("SELECT '\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9';\n"
	          "xyzzy;");
	assert_string_equal(ferry_script_warning(s),
	    "cannot parse '" NAME "' with the PostgreSQL 15 grammar at line "
	    "2: syntax error at or near \"xyzzy\"" TAIL);
	ferry_script_free(s);

	/* An unterminated literal is a scanner error. */
	s = parse("SELECT 1;\nSELECT 'abc");
	assert_int_equal(ferry_script_mode(s), FERRY_MODE_SIMPLE);
	assert_non_null(strstr(ferry_script_warning(s), "at line 2: "));
	ferry_script_free(s);
}

static void
test_directives(void **state)
{
	const char *sql;
	struct ferry_script *s;

	(void)state;
	sql = "-- ferry:no-transaction\nCREATE TABLE a (x int);\n";
	s = parse(sql);
	assert_mode(s, FERRY_MODE_PER_STATEMENT,
	    "forced by -- ferry:no-transaction");
	assert_int_equal(ferry_script_nsteps(s), 1);
	assert_step(sql, s, 0, "CREATE TABLE a (x int)", 2, 0);
	ferry_script_free(s);

	s = parse("--ferry:lock_timeout=2s\r\n"
	          "\n"
	          "-- an ordinary comment; ferry: is not at its start\n"
	          "/* a block\n   comment */\n"
	          "--   ferry:statement_timeout = 30s  \n"
	          "SELECT 1;\n");
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_int_equal(ferry_script_lock_timeout_ms(s), 2000);
	assert_int_equal(ferry_script_statement_timeout_ms(s), 30000);
	ferry_script_free(s);

	/* ferry lint's directive is left to ferry lint. */
	s = parse("-- ferry:lint-ignore drop-table FERRY-L002\n"
	          "DROP TABLE a;\n");
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	ferry_script_free(s);

	s = parse("\xef\xbb\xbf-- ferry:lock_timeout=500ms\nSELECT 1;");
	assert_int_equal(ferry_script_lock_timeout_ms(s), 500);
	ferry_script_free(s);

	/* After the first statement, directives are ordinary comments. */
	s = parse("SELECT 1;\n-- ferry:no-transaction\n-- ferry:bogus\n"
	          "SELECT 2;\n");
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_int_equal(ferry_script_lock_timeout_ms(s), -1);
	ferry_script_free(s);

	parse_fails("-- header\n\n-- ferry:lock_timeout=2x\nSELECT 1;",
	    "'" NAME "' line 3: invalid ferry:lock_timeout '2x': expected a "
	    "duration such as 500ms, 5s, 2m or 24h");
	parse_fails("-- ferry:statement_timeout=-1s\n",
	    "'" NAME "' line 1: invalid ferry:statement_timeout '-1s': "
	    "expected a duration such as 500ms, 5s, 2m or 24h");
	parse_fails("/* x */ -- ferry:nope\n",
	    "'" NAME "' line 1: unknown directive 'ferry:nope' (known: "
	    "no-transaction, lock_timeout, statement_timeout, lint-ignore)");
	parse_fails("\n-- ferry:no-transaction=yes\n",
	    "'" NAME "' line 2: directive 'ferry:no-transaction' takes no "
	    "value");
	parse_fails("-- ferry:lock_timeout\n",
	    "'" NAME "' line 1: directive 'ferry:lock_timeout' needs a "
	    "duration, e.g. ferry:lock_timeout=5s");
	parse_fails("-- ferry:lock_timeout=1s\n-- ferry:lock_timeout=2s\n",
	    "'" NAME "' line 2: directive 'ferry:lock_timeout' is given "
	    "twice");
	parse_fails("-- ferry:no-transaction please\n",
	    "'" NAME "' line 1: malformed directive 'ferry:no-transaction "
	    "please'");
}

static void
test_step_offsets_and_lines(void **state)
{
	const char *sql = "-- header comment\n"
	                  "/* block\n"
	                  "   comment */\n"
	                  "CREATE TABLE \"a\" (\n"
	                  "  id int\n"
	                  ");\n"
	                  "\n"
	                  "  -- lead comment\n"
	                  "  INSERT INTO a VALUES (1)  -- trailing\n"
	                  ";;\n"
	                  "/* x */ SELECT 2\n";
	const char *ins = strstr(sql, "INSERT");
	const char *sel = strstr(sql, "SELECT 2");
	struct ferry_script *s = parse(sql);

	(void)state;
	assert_int_equal(ferry_script_nstatements(s), 3);
	assert_int_equal(ferry_script_nsteps(s), 3);
	assert_step(sql, s, 0, "CREATE TABLE \"a\" (\n  id int\n)", 4, 0);
	assert_int_equal(ferry_script_step(s, 0)->offset,
	    strstr(sql, "CREATE") - sql);
	assert_step(sql, s, 1, "INSERT INTO a VALUES (1)  -- trailing\n", 9, 0);
	assert_int_equal(ferry_script_step(s, 1)->offset, ins - sql);
	/* The last statement runs to the end of the file. */
	assert_step(sql, s, 2, "SELECT 2\n", 11, 0);
	assert_int_equal(ferry_script_step(s, 2)->offset, sel - sql);

	assert_int_equal(ferry_script_step_at(s, 0), 0);
	assert_int_equal(ferry_script_step_at(s, ins - sql - 3), 1);
	assert_int_equal(ferry_script_step_at(s, ins - sql + 5), 1);
	assert_int_equal(ferry_script_step_at(s, sel - sql - 2), 2);
	assert_int_equal(ferry_script_step_at(s, strlen(sql)), 2);
	assert_int_equal(ferry_script_step_at(s, strlen(sql) + 100), 2);
	ferry_script_free(s);
}

static void
test_line_col(void **state)
{
	/* "é" and "ü" are two bytes each, "€" three, "\xff" is not UTF-8. */
	const char *sql = "SELECT '\xc3\xa9';\n"
	                  "SELECT '\xc3\xbc\xe2\x82\xac', x;\n"
	                  "SELECT '\xff', y;";
	struct ferry_script *s = parse(sql);
	const char *x = strstr(sql, "x;");
	int line, col;

	(void)state;
	ferry_script_line_col(s, 0, &line, &col);
	assert_int_equal(line, 1);
	assert_int_equal(col, 1);
	ferry_script_line_col(s, x - sql, &line, &col);
	assert_int_equal(line, 2);
	assert_int_equal(col, 14);
	/* Inside a character: that character's column. */
	ferry_script_line_col(s, x - sql - 4, &line, &col);
	assert_int_equal(col, 10);
	ferry_script_line_col(s, strstr(sql, "y;") - sql, &line, &col);
	assert_int_equal(line, 3);
	assert_int_equal(col, 13);
	ferry_script_line_col(s, strlen(sql) + 10, &line, &col);
	assert_int_equal(line, 3);
	assert_int_equal(col, 15);
	/* The newline ends its line. */
	ferry_script_line_col(s, strchr(sql, '\n') - sql, &line, &col);
	assert_int_equal(line, 1);
	assert_int_equal(col, 12);
	ferry_script_free(s);

	/* Without steps too. */
	s = parse("SELECT (;\n\n  \xc3\xa9x");
	assert_int_equal(ferry_script_mode(s), FERRY_MODE_SIMPLE);
	ferry_script_line_col(s, 15, &line, &col);
	assert_int_equal(line, 3);
	assert_int_equal(col, 4);
	ferry_script_free(s);
}

static void
test_empty_and_comment_only(void **state)
{
	const char *sql = "-- nothing here\n/* nor /* here */ */\n\n";
	struct ferry_script *s = parse_len(NULL, 0);
	size_t off, len;
	int line, col;

	(void)state;
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_int_equal(ferry_script_nstatements(s), 0);
	assert_int_equal(ferry_script_nsteps(s), 0);
	ferry_script_body(s, &off, &len);
	assert_int_equal(off, 0);
	assert_int_equal(len, 0);
	assert_int_equal(ferry_script_step_at(s, 0), 0);
	ferry_script_line_col(s, 0, &line, &col);
	assert_int_equal(line, 1);
	assert_int_equal(col, 1);
	ferry_script_free(s);

	s = parse(sql);
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_null(ferry_script_warning(s));
	assert_int_equal(ferry_script_nstatements(s), 0);
	assert_int_equal(ferry_script_nsteps(s), 0);
	assert_body(sql, s, sql);
	ferry_script_free(s);

	s = parse(";;\n;");
	assert_mode(s, FERRY_MODE_TRANSACTION, "");
	assert_int_equal(ferry_script_nstatements(s), 0);
	ferry_script_free(s);
}

static void
test_nul_and_bad_utf8(void **state)
{
	static const char nul[] = "-- ferry:lock_timeout=1s\nSELECT 1;\n"
	                          "SELECT 'a\0b';\n";
	const char *sql = "CREATE INDEX CONCURRENTLY \"a\xff"
	                  "b\" ON \"\xc3\" (a);\nSELECT '\xfe';";
	struct ferry_script *s = parse_len(nul, sizeof(nul) - 1);
	size_t off, len;

	(void)state;
	assert_mode(s, FERRY_MODE_SIMPLE, "contains a NUL byte");
	assert_string_equal(ferry_script_warning(s),
	    "'" NAME "' contains a NUL byte at line 3, which PostgreSQL does "
	    "not accept" TAIL);
	assert_int_equal(ferry_script_lock_timeout_ms(s), 1000);
	ferry_script_body(s, &off, &len);
	assert_int_equal(off, 0);
	assert_int_equal(len, sizeof(nul) - 1);
	ferry_script_free(s);

	/* Names that are not UTF-8 are kept, with U+FFFD for bad bytes. */
	s = parse(sql);
	assert_int_equal(ferry_script_mode(s), FERRY_MODE_PER_STATEMENT);
	assert_string_equal(ferry_script_step(s, 0)->index_name,
	    "a\xef\xbf\xbd"
	    "b");
	assert_int_equal(ferry_script_nsteps(s), 2);
	ferry_script_free(s);
}

/* Random splices of awkward fragments: never a crash, steps in range. */
static void
test_random_input(void **state)
{
	static const char *const frag[] = { "BEGIN;", "COMMIT;", "END;",
		"SELECT 1;", "CREATE INDEX CONCURRENTLY i ON t (a);", "VACUUM;",
		"ALTER TYPE e ADD VALUE 'x';", "$$", "'", "\"", "/*", "*/",
		"--", "\n", ";", " ", "\xff", "\xc3", "\xe2\x82\xac",
		"-- ferry:no-transaction\n", "ROLLBACK;", "SAVEPOINT s;",
		"CREATE DATABASE d;", "E'\\'", "$a$", "(", ")" };
	struct ferry_script *s;
	struct ferry_err err;
	char buf[512];
	unsigned seed = 12345;
	size_t n, i, k, off, len, prev;
	int round, line, col;

	(void)state;
	for (round = 0; round < 3000; round++) {
		n = 0;
		k = (seed = seed * 1103515245u + 12345u) % 12;
		for (i = 0; i < k; i++) {
			const char *f;

			seed = seed * 1103515245u + 12345u;
			f = frag[(seed >> 8) % FERRY_NELEM(frag)];
			if (n + strlen(f) >= sizeof(buf))
				break;
			memcpy(buf + n, f, strlen(f));
			n += strlen(f);
		}
		ferry_err_clear(&err);
		if (ferry_script_parse(buf, n, NAME, &s, &err) != 0)
			continue;
		ferry_script_body(s, &off, &len);
		assert_true(off + len <= n);
		prev = 0;
		for (i = 0; i < ferry_script_nsteps(s); i++) {
			const struct ferry_step *st = ferry_script_step(s, i);

			assert_true(st->offset >= prev);
			assert_true(st->len > 0);
			assert_true(st->offset + st->len <= n);
			prev = st->offset + st->len;
			assert_int_equal(ferry_script_step_at(s, st->offset),
			    i);
			ferry_script_line_col(s, st->offset, &line, &col);
			assert_int_equal(line, st->line);
		}
		ferry_script_free(s);
	}
}

static void
test_mode_names(void **state)
{
	(void)state;
	assert_string_equal(ferry_mode_name(FERRY_MODE_TRANSACTION),
	    "transaction");
	assert_string_equal(ferry_mode_name(FERRY_MODE_PER_STATEMENT),
	    "per-statement");
	assert_string_equal(ferry_mode_name(FERRY_MODE_SIMPLE), "simple");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_transaction),
		cmocka_unit_test(test_wrapping_pair_stripped),
		cmocka_unit_test(test_transaction_blocks),
		cmocka_unit_test(test_create_index_concurrently),
		cmocka_unit_test(test_no_transaction_statements),
		cmocka_unit_test(test_add_value),
		cmocka_unit_test(test_keywords_in_literals_and_comments),
		cmocka_unit_test(test_unparseable_is_simple),
		cmocka_unit_test(test_directives),
		cmocka_unit_test(test_step_offsets_and_lines),
		cmocka_unit_test(test_line_col),
		cmocka_unit_test(test_empty_and_comment_only),
		cmocka_unit_test(test_nul_and_bad_utf8),
		cmocka_unit_test(test_random_input),
		cmocka_unit_test(test_mode_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
