/*
 * test_lint.c -- each lint rule fires on a risky example (rule id and line)
 * and stays quiet on the safe pattern; what earlier migrations of the
 * folder did counts; lint-ignore; files the parser refuses; an added
 * check; the example project. The shadow rules: the type classifier,
 * and each rule on documents built by hand (no server: the integration
 * test lint_shadow_test.sh replays into a real one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lint.h"
#include "lintshadow.h"
#include "migrations.h"
#include "schema.h"
#include "util.h"

/* Largest expected-findings string a test builds. */
#define OUT_MAX 4096

/*
 * Lints migrations named "1", "2", ... with the given SQL (a NULL-ended
 * list) and returns the findings as "<migration>:<line> <rule id>",
 * separated by single spaces, in the lint's order.
 */
static char *
lint_list(const char *const *sqls, struct ferry_lint **out)
{
	struct ferry_migrations *m = ferry_migrations_new();
	struct ferry_lint *l = ferry_lint_new();
	const struct ferry_lint_finding *f;
	struct ferry_err err;
	char name[32], *buf = xcalloc(1, OUT_MAX);
	size_t i, o = 0;

	for (i = 0; sqls[i] != NULL; i++) {
		snprintf(name, sizeof(name), "%zu", i + 1);
		ferry_migrations_add(m, name, sqls[i], strlen(sqls[i]), NULL,
		    0);
	}
	ferry_err_clear(&err);
	if (ferry_lint_run(l, m, &err) != 0)
		fail_msg("lint failed: %s", err.msg);
	for (i = 0; i < ferry_lint_nfindings(l); i++) {
		f = ferry_lint_finding(l, i);
		o += (size_t)snprintf(buf + o, OUT_MAX - o, "%s%s:%d %s",
		    i > 0 ? " " : "", f->migration, f->line, f->rule->id);
		assert_true(o < OUT_MAX);
	}
	ferry_migrations_free(m);
	if (out != NULL)
		*out = l;
	else
		ferry_lint_free(l);
	return buf;
}

/* Lints the migrations given as arguments (NULL-terminated) and compares
   the findings with want. */
static void
expect(const char *want, ...)
{
	const char *sqls[16];
	size_t n = 0;
	va_list ap;
	char *got;

	va_start(ap, want);
	while ((sqls[n] = va_arg(ap, const char *)) != NULL) {
		n++;
		assert_true(n < FERRY_NELEM(sqls));
	}
	va_end(ap);
	got = lint_list(sqls, NULL);
	if (strcmp(got, want) != 0)
		fail_msg("findings\n  got:  '%s'\n  want: '%s'", got, want);
	free(got);
}

#define USERS                                                 \
	"CREATE TABLE \"User\" (\n"                           \
	"    \"id\" SERIAL NOT NULL,\n"                       \
	"    \"email\" VARCHAR(64) NOT NULL,\n"               \
	"    \"name\" TEXT,\n"                                \
	"    \"score\" INTEGER NOT NULL DEFAULT 0,\n"         \
	"    \"price\" NUMERIC(10,2),\n"                      \
	"    \"seenAt\" TIMESTAMP(3),\n"                      \
	"    CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\")\n" \
	");\n"

static void
test_drop_table(void **state)
{
	(void)state;
	/* A table from an earlier migration. */
	expect("2:2 FERRY-L001", USERS, "-- DropTable\nDROP TABLE \"User\";\n",
	    NULL);
	/* One the folder never created exists too; every name counts. */
	expect("1:1 FERRY-L001 1:1 FERRY-L001", "DROP TABLE IF EXISTS a, s.b;",
	    NULL);
	expect("1:2 FERRY-L001", "SELECT 1;\nDROP SCHEMA old CASCADE;", NULL);
	/* Safe: created and dropped by the same migration, or a schema
	   dropped without CASCADE (refused unless empty). */
	expect("", "CREATE TABLE tmp (a int);\nDROP TABLE tmp;",
	    "DROP SCHEMA old;", NULL);
	/* Dropped and created again: new in the later migration. */
	expect("2:1 FERRY-L001", USERS,
	    "DROP TABLE \"User\";\n" USERS "CREATE INDEX i ON \"User\"(name);",
	    NULL);
}

static void
test_drop_column(void **state)
{
	(void)state;
	/* Prisma writes one ALTER TABLE over several lines: each finding is
	   on the line that names the column. */
	expect("2:2 FERRY-L002 2:3 FERRY-L002", USERS,
	    "-- AlterTable\nALTER TABLE \"User\" DROP COLUMN \"name\",\n"
	    "DROP COLUMN \"seenAt\";\n",
	    NULL);
	/* Safe: a new table, or a column added by the same migration. */
	expect("", "CREATE TABLE t (a int, b int);\nALTER TABLE t DROP b;",
	    NULL);
	expect("", USERS,
	    "ALTER TABLE \"User\" ADD COLUMN tmp int;\n"
	    "ALTER TABLE \"User\" DROP COLUMN tmp;",
	    NULL);
	/* A column named like its table is found after the table name. */
	expect("1:1 FERRY-L002", "ALTER TABLE a DROP COLUMN a;", NULL);
}

static void
test_column_type(void **state)
{
	(void)state;
	/* Widening that rewrites: a warning. */
	expect("2:1 FERRY-L003", USERS,
	    "ALTER TABLE \"User\" ALTER COLUMN \"score\" TYPE BIGINT;", NULL);
	/* Narrowing: an error. */
	expect("2:1 FERRY-L004 2:2 FERRY-L004 2:3 FERRY-L004 2:4 FERRY-L004 "
	       "2:5 FERRY-L004",
	    USERS,
	    "ALTER TABLE \"User\" ALTER COLUMN \"email\" TYPE VARCHAR(32),\n"
	    "ALTER COLUMN \"score\" TYPE SMALLINT,\n"
	    "ALTER COLUMN \"price\" TYPE NUMERIC(10,3),\n"
	    "ALTER COLUMN \"name\" TYPE VARCHAR(10),\n"
	    "ALTER COLUMN \"seenAt\" TYPE TIMESTAMP(0);",
	    NULL);
	/* Changes PostgreSQL makes without a rewrite. */
	expect("", USERS,
	    "ALTER TABLE \"User\" ALTER COLUMN \"email\" TYPE VARCHAR(128),\n"
	    "ALTER COLUMN \"price\" TYPE NUMERIC(14,2),\n"
	    "ALTER COLUMN \"seenAt\" TYPE TIMESTAMP(6);",
	    "ALTER TABLE \"User\" ALTER COLUMN \"email\" TYPE TEXT;\n"
	    "ALTER TABLE \"User\" ALTER COLUMN \"price\" TYPE NUMERIC;",
	    NULL);
	/* The type is followed through the folder: after widening to TEXT,
	   VARCHAR(128) narrows. */
	expect("3:1 FERRY-L004", USERS,
	    "ALTER TABLE \"User\" ALTER COLUMN \"email\" TYPE TEXT;",
	    "ALTER TABLE \"User\" ALTER COLUMN \"email\" TYPE VARCHAR(128);",
	    NULL);
	/* ... and through a rename. */
	expect("2:1 FERRY-L010 3:1 FERRY-L004", USERS,
	    "ALTER TABLE \"User\" RENAME COLUMN \"email\" TO \"mail\";",
	    "ALTER TABLE \"User\" ALTER COLUMN \"mail\" TYPE VARCHAR(8);",
	    NULL);
	/* Unknown old type, USING: a warning. */
	expect("1:1 FERRY-L003",
	    "ALTER TABLE elsewhere ALTER COLUMN c TYPE text;", NULL);
	expect("2:1 FERRY-L003", USERS,
	    "ALTER TABLE \"User\" ALTER COLUMN \"email\" TYPE VARCHAR(64) "
	    "USING lower(\"email\");",
	    NULL);
	/* A new table. */
	expect("",
	    "CREATE TABLE t (a int);\nALTER TABLE t ALTER a TYPE smallint;",
	    NULL);
}

static void
test_index(void **state)
{
	(void)state;
	expect("2:2 FERRY-L005", USERS,
	    "-- CreateIndex\n"
	    "CREATE INDEX \"User_name_idx\" ON \"User\"(\"name\");\n",
	    NULL);
	expect("1:1 FERRY-L005 1:2 FERRY-L005",
	    "CREATE UNIQUE INDEX u ON t(a);\n"
	    "ALTER TABLE t ADD CONSTRAINT t_a UNIQUE (a);",
	    NULL);
	/* Safe: CONCURRENTLY; a table created by the same migration; a
	   constraint over an index built beforehand. */
	expect("", USERS "CREATE INDEX \"User_name_idx\" ON \"User\"(name);",
	    "CREATE INDEX CONCURRENTLY \"User_email_idx\" ON \"User\"(email);",
	    "ALTER TABLE \"User\" ADD CONSTRAINT u UNIQUE USING INDEX "
	    "\"User_email_idx\";",
	    NULL);
}

static void
test_add_not_null_column(void **state)
{
	(void)state;
	expect("2:2 FERRY-L006", USERS,
	    "ALTER TABLE \"User\" ADD COLUMN \"a\" TEXT,\n"
	    "ADD COLUMN \"plan\" TEXT NOT NULL;",
	    NULL);
	expect("1:1 FERRY-L006", "ALTER TABLE t ADD COLUMN id int PRIMARY KEY;",
	    NULL);
	/* Safe: a default of any kind, nullable, or a new table with NOT
	   NULL columns. */
	expect("", USERS,
	    "ALTER TABLE \"User\" ADD COLUMN \"plan\" TEXT NOT NULL DEFAULT "
	    "'free',\n"
	    "ADD COLUMN n bigserial NOT NULL,\n"
	    "ADD COLUMN g int NOT NULL GENERATED ALWAYS AS (1) STORED,\n"
	    "ADD COLUMN k int GENERATED BY DEFAULT AS IDENTITY NOT NULL,\n"
	    "ADD COLUMN \"nickname\" TEXT;",
	    "CREATE TABLE n (a int NOT NULL, b text NOT NULL);", NULL);
}

static void
test_set_not_null(void **state)
{
	(void)state;
	expect("2:3 FERRY-L007", USERS,
	    "UPDATE \"User\" SET name = '' WHERE name IS NULL;\n"
	    "ALTER TABLE \"User\"\n"
	    "    ALTER COLUMN \"name\" SET NOT NULL;",
	    NULL);
	/* Safe: a new table; or a validated CHECK (col IS NOT NULL). */
	expect("",
	    "CREATE TABLE t (a int);\nALTER TABLE t ALTER a SET NOT NULL;",
	    NULL);
	expect("", USERS,
	    "ALTER TABLE \"User\" ADD CONSTRAINT nn CHECK (\"name\" IS NOT "
	    "NULL) NOT VALID;",
	    "ALTER TABLE \"User\" VALIDATE CONSTRAINT nn;",
	    "ALTER TABLE \"User\" ALTER COLUMN \"name\" SET NOT NULL;\n"
	    "ALTER TABLE \"User\" DROP CONSTRAINT nn;",
	    NULL);
	/* Not yet validated, or another column's check: no help. */
	expect("3:1 FERRY-L007 3:2 FERRY-L007", USERS,
	    "ALTER TABLE \"User\" ADD CONSTRAINT nn CHECK (\"name\" IS NOT "
	    "NULL) NOT VALID;",
	    "ALTER TABLE \"User\" ALTER COLUMN \"name\" SET NOT NULL;\n"
	    "ALTER TABLE \"User\" ALTER COLUMN \"email\" SET NOT NULL;",
	    NULL);
}

static void
test_foreign_key_and_check(void **state)
{
	const char *orgs = "CREATE TABLE org (id int PRIMARY KEY);";

	(void)state;
	expect("3:2 FERRY-L008 3:3 FERRY-L009", USERS, orgs,
	    "ALTER TABLE \"User\" ADD COLUMN org int;\n"
	    "ALTER TABLE \"User\" ADD CONSTRAINT fk FOREIGN KEY (org) "
	    "REFERENCES org(id);\n"
	    "ALTER TABLE \"User\" ADD CONSTRAINT pos CHECK (score >= 0);",
	    NULL);
	/* Safe: NOT VALID, then VALIDATE in a later migration. */
	expect("", USERS, orgs,
	    "ALTER TABLE \"User\" ADD COLUMN org int;\n"
	    "ALTER TABLE \"User\" ADD CONSTRAINT fk FOREIGN KEY (org) "
	    "REFERENCES org(id) NOT VALID;\n"
	    "ALTER TABLE \"User\" ADD CONSTRAINT pos CHECK (score >= 0) NOT "
	    "VALID;",
	    "ALTER TABLE \"User\" VALIDATE CONSTRAINT fk;\n"
	    "ALTER TABLE \"User\" VALIDATE CONSTRAINT pos;",
	    NULL);
	/* Validated in the transaction that adds it: the lock stays. */
	expect("2:2 FERRY-L008 2:3 FERRY-L009", USERS,
	    "ALTER TABLE \"User\" ADD CONSTRAINT fk FOREIGN KEY (id) "
	    "REFERENCES org(id) NOT VALID, ADD CONSTRAINT c CHECK (id > 0) "
	    "NOT VALID;\n"
	    "ALTER TABLE \"User\" VALIDATE CONSTRAINT fk;\n"
	    "ALTER TABLE \"User\" VALIDATE CONSTRAINT c;",
	    NULL);
	/* ... unless the file runs statement by statement. */
	expect("", USERS,
	    "-- ferry:no-transaction\n"
	    "ALTER TABLE \"User\" ADD CONSTRAINT fk FOREIGN KEY (id) "
	    "REFERENCES org(id) NOT VALID;\n"
	    "ALTER TABLE \"User\" VALIDATE CONSTRAINT fk;",
	    NULL);
	/* Safe: a new table, as Prisma writes it. */
	expect("", USERS,
	    "CREATE TABLE p (id int, \"userId\" int NOT NULL);\n"
	    "ALTER TABLE p ADD CONSTRAINT p_fkey FOREIGN KEY (\"userId\") "
	    "REFERENCES \"User\"(\"id\") ON DELETE CASCADE;\n"
	    "ALTER TABLE p ADD CONSTRAINT c CHECK (id > 0);",
	    NULL);
}

static void
test_rename(void **state)
{
	(void)state;
	expect("2:1 FERRY-L010 2:2 FERRY-L011 2:3 FERRY-L011", USERS,
	    "ALTER TABLE \"User\" RENAME COLUMN \"name\" TO \"fullName\";\n"
	    "ALTER TABLE \"User\" RENAME TO \"Account\";\n"
	    "ALTER TABLE \"Account\" SET SCHEMA archive;",
	    NULL);
	/* The renamed table is still the old one, not a new one. */
	expect("3:1 FERRY-L005", USERS,
	    "-- ferry:lint-ignore rename-table\n"
	    "ALTER TABLE \"User\" RENAME TO \"Account\";",
	    "CREATE INDEX i ON \"Account\"(name);", NULL);
	/* Safe: renames within the migration that creates the table, and
	   of indexes and constraints. */
	expect("",
	    "CREATE TABLE t (a int);\nALTER TABLE t RENAME a TO b;\n"
	    "ALTER TABLE t RENAME TO u;",
	    "ALTER INDEX i RENAME TO j;\n"
	    "ALTER TABLE u RENAME CONSTRAINT c TO d;",
	    NULL);
}

static void
test_concurrently_in_transaction(void **state)
{
	(void)state;
	expect("2:2 FERRY-L012", USERS,
	    "BEGIN;\nCREATE INDEX CONCURRENTLY i ON \"User\"(name);\nCOMMIT;",
	    NULL);
	expect("1:3 FERRY-L012 1:4 FERRY-L012 1:5 FERRY-L012",
	    "SELECT 1;\nSTART TRANSACTION;\nDROP INDEX CONCURRENTLY i;\n"
	    "REINDEX (CONCURRENTLY) INDEX j;\n"
	    "ALTER TABLE p DETACH PARTITION c CONCURRENTLY;\nCOMMIT;",
	    NULL);
	/* Safe: alone, or after the block closed. */
	expect("", "CREATE INDEX CONCURRENTLY i ON t(a);",
	    "BEGIN;\nSELECT 1;\nCOMMIT;\nCREATE INDEX CONCURRENTLY j ON "
	    "t(b);\nREINDEX (CONCURRENTLY false) INDEX k;",
	    NULL);
}

static void
test_lint_ignore(void **state)
{
	struct ferry_lint *l;
	const char *sqls[] = { USERS,
		"-- Removing the legacy columns, unused since v2.\n"
		"-- ferry:lint-ignore FERRY-L002, rename-table -- v2 cleanup\n"
		"--ferry:lint-ignore   drop-table\n"
		"ALTER TABLE \"User\" DROP COLUMN \"name\";\n"
		"ALTER TABLE \"User\" RENAME TO u;\n"
		"DROP TABLE other;\n"
		"ALTER TABLE u RENAME COLUMN email TO mail;",
		"ALTER TABLE u DROP COLUMN \"seenAt\";", NULL };
	char *got;

	(void)state;
	/* Only the ignored rules, only in that migration. */
	got = lint_list(sqls, &l);
	assert_string_equal(got, "2:7 FERRY-L010 3:1 FERRY-L002");
	assert_int_equal(ferry_lint_nsuppressed(l), 3);
	assert_int_equal(ferry_lint_count(l, FERRY_LINT_ERROR), 2);
	assert_int_equal(ferry_lint_count(l, FERRY_LINT_WARNING), 0);
	free(got);
	ferry_lint_free(l);

	/* A rule the lint does not know, none at all, or a line after the
	   first statement: a warning, and nothing is silenced. */
	expect("1:1 FERRY-L001 1:1 FERRY-L092 1:2 FERRY-L092 1:3 FERRY-L092",
	    "DROP TABLE a; -- ferry:lint-ignore drop-table\n"
	    "-- ferry:lint-ignore drop-tables\n"
	    "--   ferry:lint-ignore",
	    NULL);
	expect("1:1 FERRY-L092 1:2 FERRY-L092 1:3 FERRY-L001",
	    "-- ferry:lint-ignore FERRY-L999\n"
	    "-- ferry:lint-ignore -- no rule\n"
	    "DROP TABLE a;",
	    NULL);
	/* Repeating a rule does not crowd out the others. */
	expect("", USERS,
	    "-- ferry:lint-ignore drop-table drop-table drop-table drop-table\n"
	    "-- ferry:lint-ignore FERRY-L001 ferry-l001 DROP-TABLE drop-table\n"
	    "-- ferry:lint-ignore drop-table drop-table drop-table drop-table\n"
	    "-- ferry:lint-ignore drop-table drop-table drop-table drop-table\n"
	    "-- ferry:lint-ignore drop-column\n"
	    "DROP TABLE x;\nALTER TABLE \"User\" DROP COLUMN \"name\";",
	    NULL);
	/* The engine's directives still work beside it, and are checked. */
	expect("", USERS,
	    "-- ferry:lint-ignore index-not-concurrent\n"
	    "-- ferry:lock_timeout=2s\n"
	    "CREATE INDEX i ON \"User\"(name);",
	    NULL);
	expect("1:0 FERRY-L091 1:2 FERRY-L001", "-- ferry:nope\nDROP TABLE a;",
	    NULL);
}

static void
test_unparseable(void **state)
{
	struct ferry_lint *l;
	const char *sqls[] = { "CREATE TABLE t (a int);\n\n"
		               "CREATE TABEL u (a int);\n",
		"DROP TABLE t;", NULL };
	const char nul[] = "SELECT 1;\nSELECT '\0';";
	struct ferry_migrations *m = ferry_migrations_new();
	struct ferry_err err;
	char *got;

	(void)state;
	/* A warning where the parser stopped; later migrations are still
	   checked. */
	got = lint_list(sqls, &l);
	assert_string_equal(got, "1:3 FERRY-L090 2:1 FERRY-L001");
	assert_string_equal(ferry_lint_finding(l, 0)->rule->name,
	    "unparseable");
	assert_non_null(strstr(ferry_lint_finding(l, 0)->message, "TABEL"));
	assert_int_equal(ferry_lint_finding(l, 0)->col, 8);
	free(got);
	ferry_lint_free(l);

	/* PostgreSQL 16 syntax, and a NUL byte. */
	expect("1:1 FERRY-L090", "SELECT JSON_OBJECT('a' VALUE 1);", NULL);
	ferry_migrations_add(m, "1", nul, sizeof(nul) - 1, NULL, 0);
	l = ferry_lint_new();
	ferry_err_clear(&err);
	assert_int_equal(ferry_lint_run(l, m, &err), 0);
	assert_int_equal(ferry_lint_nfindings(l), 1);
	assert_string_equal(ferry_lint_finding(l, 0)->rule->id, "FERRY-L090");
	assert_int_equal(ferry_lint_finding(l, 0)->line, 2);
	ferry_lint_free(l);
	ferry_migrations_free(m);

	/* PostgreSQL's scanner takes a byte order mark for part of a name,
	   so the server refuses such a file too. */
	expect("1:1 FERRY-L090", "\xef\xbb\xbf-- init\nSELECT 1;", NULL);

	/* Empty files, comments only, invalid UTF-8 in a name. */
	expect("", "", "-- nothing\n", NULL);
	expect("1:1 FERRY-L001", "DROP TABLE \"\xff\xfe\";", NULL);
}

static void
test_positions(void **state)
{
	struct ferry_lint *l;
	const char *sqls[] = { "-- h\xc3\xa9\n"
		               "SELECT 1; /* \xc3\xa9 */ DROP TABLE t;\n"
		               "ALTER TABLE \"\xc3\xa9\" DROP COLUMN \"x\";",
		NULL };
	char *got;

	(void)state;
	got = lint_list(sqls, &l);
	assert_string_equal(got, "1:2 FERRY-L001 1:3 FERRY-L002");
	/* At the names, counting characters. */
	assert_int_equal(ferry_lint_finding(l, 0)->col, 30);
	assert_int_equal(ferry_lint_finding(l, 1)->col, 29);
	assert_non_null(
	    strstr(ferry_lint_finding(l, 1)->message, "\"\xc3\xa9\".\"x\""));
	free(got);
	ferry_lint_free(l);
}

static const struct ferry_lint_rule extra_rules[] = {
	{ "FERRY-L101", "shadow-test", FERRY_LINT_ERROR, "why", "fix" },
};

static int
extra_check(struct ferry_lint_ctx *ctx, void *arg, struct ferry_err *err)
{
	size_t *calls = arg;

	(void)err;
	(*calls)++;
	assert_non_null(ferry_lint_ctx_script(ctx));
	if (strcmp(ferry_lint_ctx_migration(ctx)->name, "2") == 0)
		ferry_lint_report(ctx, "FERRY-L101", 0, "at %zu",
		    ferry_lint_ctx_index(ctx));
	if (strcmp(ferry_lint_ctx_migration(ctx)->name, "3") == 0)
		ferry_lint_report(ctx, "FERRY-L101", SIZE_MAX, "nowhere");
	return 0;
}

static int
failing_check(struct ferry_lint_ctx *ctx, void *arg, struct ferry_err *err)
{
	(void)arg;
	return ferry_errf(err, FERRY_EOPER, "cannot reach '%s'",
	    ferry_lint_ctx_migration(ctx)->name);
}

static void
add(struct ferry_migrations *m, const char *name, const char *sql)
{
	ferry_migrations_add(m, name, sql, strlen(sql), NULL, 0);
}

/* A check added from outside, as the shadow-diff rules will be. */
static void
test_added_check(void **state)
{
	struct ferry_migrations *m = ferry_migrations_new();
	struct ferry_lint *l = ferry_lint_new();
	struct ferry_err err;
	size_t calls = 0;

	(void)state;
	add(m, "1", "SELECT 1;");
	add(m, "2", "DROP TABLE a;");
	add(m, "3", "-- ferry:lint-ignore L\n");
	ferry_lint_add_check(l, extra_rules, 1, extra_check, &calls);
	assert_ptr_equal(ferry_lint_rule_find(l, "shadow-test"),
	    &extra_rules[0]);
	assert_ptr_equal(ferry_lint_rule_find(l, "ferry-l101"),
	    &extra_rules[0]);
	assert_ptr_equal(ferry_lint_rule(l, ferry_lint_nrules(l) - 1),
	    &extra_rules[0]);
	ferry_err_clear(&err);
	assert_int_equal(ferry_lint_run(l, m, &err), 0);
	assert_int_equal(calls, 3);
	/* Sorted by position within the migration. */
	assert_int_equal(ferry_lint_nfindings(l), 4);
	assert_string_equal(ferry_lint_finding(l, 0)->rule->id, "FERRY-L101");
	assert_string_equal(ferry_lint_finding(l, 0)->message, "at 1");
	assert_int_equal(ferry_lint_finding(l, 0)->line, 1);
	assert_int_equal(ferry_lint_finding(l, 0)->col, 1);
	assert_string_equal(ferry_lint_finding(l, 1)->rule->id, "FERRY-L001");
	assert_int_equal(ferry_lint_finding(l, 1)->col, 12);
	assert_string_equal(ferry_lint_finding(l, 2)->rule->id, "FERRY-L101");
	assert_int_equal(ferry_lint_finding(l, 2)->line, 0);
	assert_string_equal(ferry_lint_finding(l, 3)->rule->id, "FERRY-L092");

	/* A second run starts afresh; lint-ignore covers the new rule. */
	ferry_migrations_free(m);
	m = ferry_migrations_new();
	add(m, "3", "-- ferry:lint-ignore shadow-test\n");
	assert_int_equal(ferry_lint_run(l, m, &err), 0);
	assert_int_equal(ferry_lint_nfindings(l), 0);
	assert_int_equal(ferry_lint_nsuppressed(l), 1);

	/* A check's error stops the run and is passed on. */
	ferry_lint_add_check(l, NULL, 0, failing_check, NULL);
	assert_int_equal(ferry_lint_run(l, m, &err), FERRY_EOPER);
	assert_string_equal(err.msg, "cannot reach '3'");
	ferry_lint_free(l);
	ferry_migrations_free(m);
	ferry_lint_free(NULL);
}

static void
test_rules(void **state)
{
	struct ferry_lint *l = ferry_lint_new();
	const struct ferry_lint_rule *r;
	size_t i, n = ferry_lint_nrules(l);

	(void)state;
	assert_true(n >= 12);
	for (i = 0; i < n; i++) {
		r = ferry_lint_rule(l, i);
		assert_ptr_equal(ferry_lint_rule_find(l, r->id), r);
		assert_ptr_equal(ferry_lint_rule_find(l, r->name), r);
		assert_true(strlen(r->why) > 20 && strlen(r->fix) > 20);
	}
	assert_null(ferry_lint_rule(l, n));
	assert_null(ferry_lint_rule_find(l, "nope"));
	assert_string_equal(ferry_lint_rule_find(l, "FERRY-L001")->name,
	    "drop-table");
	assert_int_equal(ferry_lint_rule_find(l, "drop-table")->severity,
	    FERRY_LINT_ERROR);
	assert_string_equal(ferry_lint_severity_name(FERRY_LINT_WARNING),
	    "warning");
	ferry_lint_free(l);
}

/* The example project is meant as good practice: no errors. */
static void
test_examples(void **state)
{
	struct ferry_migrations *m = NULL;
	struct ferry_lint *l = ferry_lint_new();
	const struct ferry_lint_finding *f;
	struct ferry_err err;
	char *root, *slash, *dir;
	size_t i;

	(void)state;
	/* __FILE__ is tests/unit/test_lint.c under the source tree. */
	root = xstrdup(__FILE__);
	for (i = 0; i < 3; i++) {
		slash = strrchr(root, '/');
		if (slash == NULL)
			skip();
		*slash = '\0';
	}
	dir = xasprintf("%s/deploy/examples/migrations", root);
	ferry_err_clear(&err);
	if (ferry_migrations_read_dir(dir, &m, &err) != 0)
		fail_msg("%s", err.msg);
	assert_int_equal(ferry_lint_run(l, m, &err), 0);
	for (i = 0; i < ferry_lint_nfindings(l); i++) {
		f = ferry_lint_finding(l, i);
		if (f->rule->severity == FERRY_LINT_ERROR)
			fail_msg("%s line %d: %s %s: %s", f->migration, f->line,
			    f->rule->id, f->rule->name, f->message);
	}
	ferry_lint_free(l);
	ferry_migrations_free(m);
	free(dir);
	free(root);
}

static void
test_shadow_type_change(void **state)
{
	static const struct {
		const char *from, *to;
		enum ferry_lint_type_change want;
	} cases[] = {
		{ "integer", "bigint", FERRY_LINT_TYPE_REWRITE },
		{ "bigint", "integer", FERRY_LINT_TYPE_NARROW },
		{ "smallint", "integer", FERRY_LINT_TYPE_REWRITE },
		{ "character varying(100)", "character varying(50)",
		    FERRY_LINT_TYPE_NARROW },
		{ "character varying(50)", "character varying(100)",
		    FERRY_LINT_TYPE_SAFE },
		{ "character varying(100)", "text", FERRY_LINT_TYPE_SAFE },
		{ "character varying(100)", "character varying",
		    FERRY_LINT_TYPE_SAFE },
		{ "text", "character varying", FERRY_LINT_TYPE_SAFE },
		{ "text", "character varying(10)", FERRY_LINT_TYPE_NARROW },
		{ "text", "character(3)", FERRY_LINT_TYPE_NARROW },
		{ "character(3)", "text", FERRY_LINT_TYPE_REWRITE },
		{ "character(3)", "character(5)", FERRY_LINT_TYPE_REWRITE },
		{ "numeric(10,2)", "numeric(12,2)", FERRY_LINT_TYPE_SAFE },
		{ "numeric(10,2)", "numeric", FERRY_LINT_TYPE_SAFE },
		{ "numeric", "numeric(10,2)", FERRY_LINT_TYPE_NARROW },
		{ "numeric(10,2)", "numeric(10,3)", FERRY_LINT_TYPE_NARROW },
		{ "numeric(10,2)", "numeric(12,3)", FERRY_LINT_TYPE_REWRITE },
		{ "numeric(10,2)", "integer", FERRY_LINT_TYPE_NARROW },
		{ "double precision", "real", FERRY_LINT_TYPE_NARROW },
		{ "integer", "numeric", FERRY_LINT_TYPE_REWRITE },
		{ "timestamp(3) without time zone",
		    "timestamp without time zone", FERRY_LINT_TYPE_SAFE },
		{ "timestamp without time zone",
		    "timestamp(3) without time zone", FERRY_LINT_TYPE_NARROW },
		{ "timestamp(3) without time zone",
		    "timestamp(3) with time zone", FERRY_LINT_TYPE_REWRITE },
		{ "bit varying(4)", "bit varying(8)", FERRY_LINT_TYPE_SAFE },
		{ "cidr", "inet", FERRY_LINT_TYPE_SAFE },
		{ "integer[]", "bigint[]", FERRY_LINT_TYPE_REWRITE },
		{ "character varying(9)[]", "character varying(3)[]",
		    FERRY_LINT_TYPE_NARROW },
		{ "integer", "integer[]", FERRY_LINT_TYPE_REWRITE },
		{ "text", "public.\"Role\"", FERRY_LINT_TYPE_REWRITE },
		{ "public.\"A(1)\"", "public.\"A(2)\"",
		    FERRY_LINT_TYPE_REWRITE },
		{ "uuid", "uuid", FERRY_LINT_TYPE_SAFE },
	};
	size_t i;

	(void)state;
	for (i = 0; i < FERRY_NELEM(cases); i++)
		if (ferry_lint_type_change(cases[i].from, cases[i].to) !=
		    cases[i].want)
			fail_msg("%s → %s: got %d, want %d", cases[i].from,
			    cases[i].to,
			    (int)ferry_lint_type_change(cases[i].from,
			        cases[i].to),
			    (int)cases[i].want);
}

/*
 * A schema document (PostgreSQL 15, schema public) with the JSON members
 * given, written with ' for ", ` for \" and ~ for ' to keep the tests
 * readable.
 */
static struct ferry_schema *
doc(const char *members)
{
	char *text = xasprintf("{'format': 'ferry-schema/1', 'postgres': "
	                       "{'major': 15, 'version': '15.6'}, 'schema': "
	                       "'public', 'scope': ['public']%s%s}",
	    *members != '\0' ? ", " : "", members);
	struct ferry_schema *s = NULL;
	struct ferry_err err;
	json_error_t je;
	json_t *j;
	char *p, *q, *json = xmalloc(2 * strlen(text) + 1);

	for (p = text, q = json; *p != '\0'; p++) {
		if (*p == '`')
			*q++ = '\\';
		*q++ = *p == '\'' || *p == '`' ? '"' : *p == '~' ? '\'' : *p;
	}
	*q = '\0';
	j = json_loads(json, 0, &je);
	if (j == NULL)
		fail_msg("bad JSON (%s): %s", je.text, json);
	ferry_err_clear(&err);
	if (ferry_schema_build(j, &s, &err) != 0)
		fail_msg("bad document: %s", err.msg);
	json_decref(j);
	free(json);
	free(text);
	return s;
}

/*
 * Lints one migration, sql, with the shadow rules seeing the documents
 * before and after it (members as for doc), and compares the findings,
 * "<line> <rule id>" separated by spaces, with want.
 */
static void
expect_shadow(const char *want, const char *before, const char *after,
    const char *sql)
{
	struct ferry_migrations *m = ferry_migrations_new();
	struct ferry_lint_shadow *ls = ferry_lint_shadow_new();
	struct ferry_lint *l = ferry_lint_new();
	struct ferry_schema *a = doc(before), *b = doc(after);
	const struct ferry_lint_finding *f;
	struct ferry_err err;
	char got[OUT_MAX];
	size_t i, o = 0;

	ferry_lint_shadow_attach(ls, l);
	ferry_migrations_add(m, "1", sql, strlen(sql), NULL, 0);
	ferry_err_clear(&err);
	if (ferry_lint_shadow_record(ls, "1", a, b, &err) != 0 ||
	    ferry_lint_run(l, m, &err) != 0)
		fail_msg("%s", err.msg);
	got[0] = '\0';
	for (i = 0; i < ferry_lint_nfindings(l); i++) {
		f = ferry_lint_finding(l, i);
		o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%d %s",
		    i > 0 ? " " : "", f->line, f->rule->id);
		assert_true(o < sizeof(got));
	}
	if (strcmp(got, want) != 0)
		fail_msg("findings of\n%s\n  got:  '%s'\n  want: '%s'", sql,
		    got, want);
	ferry_lint_free(l);
	ferry_lint_shadow_free(ls);
	ferry_schema_free(a);
	ferry_schema_free(b);
	ferry_migrations_free(m);
}

/* "User" (id, name text) and "Post" with extras: JSON members for doc. */
#define T_USER(cols, extra)                                                   \
	"'tables': [{'schema': 'public', 'name': 'User', 'columns': "         \
	"[{'name': 'id', 'type': 'integer', 'not_null': true}" cols "]" extra \
	"}]"
#define NAME_TEXT ", {'name': 'name', 'type': 'text'}"

static void
test_shadow_rules(void **state)
{
	(void)state;
	/* A column dropped in a DO block: no statement names it. */
	expect_shadow("0 FERRY-L102", T_USER(NAME_TEXT, ""), T_USER("", ""),
	    "DO $$ BEGIN EXECUTE 'ALTER TABLE \"User\" DROP COLUMN name'; "
	    "END $$;");
	/* Said by the parse-tree rule at that statement: once. */
	expect_shadow("2 FERRY-L002", T_USER(NAME_TEXT, ""), T_USER("", ""),
	    "SELECT 1;\nALTER TABLE \"User\" DROP COLUMN name;");
	/* A table gone with its schema's CASCADE is the parse tree's too;
	   through a function, it is the shadow's. */
	expect_shadow("1 FERRY-L001", T_USER("", ""), "",
	    "DROP SCHEMA public CASCADE;");
	expect_shadow("0 FERRY-L101", T_USER("", ""), "", "SELECT wipe();");
	/* Types: the real old type; a safe change is quiet. */
	expect_shadow("0 FERRY-L104",
	    T_USER(", {'name': 'name', 'type': 'character varying(100)'}", ""),
	    T_USER(", {'name': 'name', 'type': 'character varying(50)'}", ""),
	    "CALL shrink();");
	expect_shadow("",
	    T_USER(", {'name': 'name', 'type': "
	           "'character varying(100)'}",
	        ""),
	    T_USER(NAME_TEXT, ""), "CALL widen();");
	expect_shadow("0 FERRY-L103", T_USER("", ""),
	    "'tables': [{'schema': 'public', 'name': 'User', 'columns': "
	    "[{'name': 'id', 'type': 'bigint', 'not_null': true}]}]",
	    "CALL widen();");
	/* The parse tree cannot know the old type: a rewrite, it says; the
	   shadow knows better. */
	expect_shadow("1 FERRY-L003", T_USER("", ""),
	    "'tables': [{'schema': 'public', 'name': 'User', 'columns': "
	    "[{'name': 'id', 'type': 'bigint', 'not_null': true}]}]",
	    "ALTER TABLE \"User\" ALTER COLUMN id TYPE bigint;");
	expect_shadow("1 FERRY-L104 1 FERRY-L003",
	    T_USER(", {'name': 'name', 'type': 'character varying(100)'}", ""),
	    T_USER(", {'name': 'name', 'type': 'character varying(50)'}", ""),
	    "ALTER TABLE \"User\" ALTER COLUMN name TYPE varchar(50);");
	/* NOT NULL: without a default; with one, quiet. */
	expect_shadow("0 FERRY-L105", T_USER(NAME_TEXT, ""),
	    T_USER(", {'name': 'name', 'type': 'text', 'not_null': true}", ""),
	    "CALL tighten();");
	expect_shadow("", T_USER(NAME_TEXT, ""),
	    T_USER(", {'name': 'name', 'type': 'text', 'not_null': true, "
	           "'default': '~x~::text'}",
	        ""),
	    "CALL tighten();");
	/* Constraints: validated or NOT VALID; a renamed one is quiet. */
	expect_shadow("0 FERRY-L107", T_USER("", ""),
	    T_USER("",
	        ", 'constraints': [{'name': 'c', 'type': 'check', "
	        "'definition': 'CHECK ((id > 0))'}]"),
	    "CALL constrain();");
	expect_shadow("", T_USER("", ""),
	    T_USER("",
	        ", 'constraints': [{'name': 'c', 'type': 'check', "
	        "'definition': 'CHECK ((id > 0)) NOT VALID'}]"),
	    "CALL constrain();");
	expect_shadow("",
	    T_USER("",
	        ", 'constraints': [{'name': 'a', 'type': 'foreign key', "
	        "'definition': 'FOREIGN KEY (id) REFERENCES x(id)'}]"),
	    T_USER("",
	        ", 'constraints': [{'name': 'b', 'type': 'foreign key', "
	        "'definition': 'FOREIGN KEY (id) REFERENCES x(id)'}]"),
	    "ALTER TABLE \"User\" RENAME CONSTRAINT a TO b;");
	/* Indexes: CONCURRENTLY and renames are quiet. */
	expect_shadow("", T_USER("", ""),
	    T_USER("",
	        ", 'indexes': [{'name': 'i', 'definition': 'CREATE "
	        "INDEX i ON public.`User` USING btree (id)'}]"),
	    "CREATE INDEX CONCURRENTLY i ON \"User\"(id);");
	expect_shadow("0 FERRY-L108", T_USER("", ""),
	    T_USER("",
	        ", 'indexes': [{'name': 'i', 'definition': 'CREATE "
	        "INDEX i ON public.`User` USING btree (id)'}]"),
	    "CALL index_it();");
	expect_shadow("",
	    T_USER("",
	        ", 'indexes': [{'name': 'i', 'definition': 'CREATE "
	        "INDEX i ON public.`User` USING btree (id)'}]"),
	    T_USER("",
	        ", 'indexes': [{'name': 'j', 'definition': 'CREATE "
	        "INDEX j ON public.`User` USING btree (id)'}]"),
	    "CALL rename_it();");
	/* An unnamed constraint is found by the name PostgreSQL gives it:
	   said once, by the parse-tree rule. */
	expect_shadow("1 FERRY-L005", T_USER("", ""),
	    T_USER("",
	        ", 'constraints': [{'name': 'User_pkey', 'type': 'primary "
	        "key', 'definition': 'PRIMARY KEY (id)'}]"),
	    "ALTER TABLE \"User\" ADD PRIMARY KEY (id);");
	/* A rename that a function still uses; a column renamed in a DO
	   block is told from a drop by its place and type. */
	expect_shadow("1 FERRY-L109 1 FERRY-L010", T_USER(NAME_TEXT, ""),
	    T_USER(", {'name': 'fullName', 'type': 'text'}",
	        "") ", 'functions': [{'schema': 'public', 'name': 'f()', "
	            "'kind': "
	            "'function', 'definition': 'CREATE FUNCTION public.f() AS "
	            "$function$ SELECT name FROM `User` $function$'}]",
	    "ALTER TABLE \"User\" RENAME COLUMN name TO \"fullName\";");
	expect_shadow("0 FERRY-L109", T_USER(NAME_TEXT, ""),
	    T_USER(", {'name': 'fullName', 'type': 'text'}",
	        "") ", 'functions': [{'schema': 'public', 'name': 'f()', "
	            "'kind': "
	            "'function', 'definition': 'CREATE FUNCTION public.f() AS "
	            "$function$ SELECT `name` /* not ~fullName~ */ FROM `User` "
	            "$function$'}]",
	    "DO $$ BEGIN EXECUTE 'ALTER TABLE \"User\" RENAME name TO x'; "
	    "END $$;");
	expect_shadow("", T_USER(NAME_TEXT, ""),
	    T_USER(", {'name': 'fullName', 'type': 'text'}",
	        "") ", 'functions': [{'schema': 'public', 'name': 'f()', "
	            "'kind': "
	            "'function', 'definition': 'CREATE FUNCTION public.f() AS "
	            "$function$ SELECT `Name`, `fullName`, ~name~ FROM `User` "
	            "$function$'}]",
	    "CALL rename_it();");
	/* Enums. */
	expect_shadow("2 FERRY-L110",
	    "'enums': [{'schema': 'public', 'name': 'R', 'values': ['A', "
	    "'B']}]",
	    "'enums': [{'schema': 'public', 'name': 'R', 'values': ['A']}]",
	    "ALTER TYPE \"R\" RENAME TO \"R_old\";\n"
	    "CREATE TYPE \"R\" AS ENUM ('A');");
	expect_shadow("0 FERRY-L111",
	    "'enums': [{'schema': 'public', 'name': 'R', 'values': ['A', "
	    "'B']}]",
	    "'enums': [{'schema': 'public', 'name': 'R', 'values': ['B', 'A', "
	    "'C']}]",
	    "CALL reorder();");
	expect_shadow("",
	    "'enums': [{'schema': 'public', 'name': 'R', 'values': ['A', "
	    "'B']}]",
	    "'enums': [{'schema': 'public', 'name': 'R', 'values': ['A', 'C', "
	    "'B']}]",
	    "ALTER TYPE \"R\" ADD VALUE 'C' BEFORE 'B';");
	/* lint-ignore names shadow rules like the others. */
	expect_shadow("", T_USER(NAME_TEXT, ""), T_USER("", ""),
	    "-- ferry:lint-ignore column-dropped\nCALL wipe();");
}

/* Without a replay the shadow rules report nothing, but are known. */
static void
test_shadow_unrecorded(void **state)
{
	struct ferry_lint_shadow *ls = ferry_lint_shadow_new();
	struct ferry_lint *l = ferry_lint_new();
	struct ferry_migrations *m = ferry_migrations_new();
	const char *sql = "-- ferry:lint-ignore FERRY-L101\nSELECT 1;";
	struct ferry_err err;

	(void)state;
	ferry_lint_shadow_attach(ls, l);
	assert_string_equal(ferry_lint_rule_find(l, "FERRY-L109")->name,
	    "renamed-still-referenced");
	ferry_migrations_add(m, "1", sql, strlen(sql), NULL, 0);
	ferry_err_clear(&err);
	assert_int_equal(ferry_lint_run(l, m, &err), 0);
	assert_int_equal(ferry_lint_nfindings(l), 0);
	ferry_lint_free(l);
	ferry_lint_shadow_free(ls);
	ferry_migrations_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drop_table),
		cmocka_unit_test(test_drop_column),
		cmocka_unit_test(test_column_type),
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_add_not_null_column),
		cmocka_unit_test(test_set_not_null),
		cmocka_unit_test(test_foreign_key_and_check),
		cmocka_unit_test(test_rename),
		cmocka_unit_test(test_concurrently_in_transaction),
		cmocka_unit_test(test_lint_ignore),
		cmocka_unit_test(test_unparseable),
		cmocka_unit_test(test_positions),
		cmocka_unit_test(test_added_check),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_shadow_type_change),
		cmocka_unit_test(test_shadow_rules),
		cmocka_unit_test(test_shadow_unrecorded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
