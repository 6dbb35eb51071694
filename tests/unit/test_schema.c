/*
 * test_schema.c -- the schema document without a server: canonical form,
 * text, digest, validation of loaded documents, and the diff.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "hash.h"
#include "schema.h"
#include "schemadiff.h"

/* A small document: one table, one enum, one extension. */
static const char base_json[] =
    "{\"format\": \"ferry-schema/1\", \"digest\": null,"
    " \"postgres\": {\"major\": 15, \"version\": \"15.6\"},"
    " \"schema\": \"public\", \"scope\": [\"public\"],"
    " \"schemas\": [{\"name\": \"public\"}],"
    " \"extensions\": [{\"name\": \"citext\", \"schema\": \"public\","
    "   \"version\": \"1.6\"}],"
    " \"enums\": [{\"schema\": \"public\", \"name\": \"Role\","
    "   \"values\": [\"OWNER\", \"MEMBER\"]}],"
    " \"tables\": [{\"schema\": \"public\", \"name\": \"User\","
    "   \"columns\": ["
    "     {\"name\": \"id\", \"type\": \"integer\", \"not_null\": true},"
    "     {\"name\": \"total\", \"type\": \"integer\"}],"
    "   \"constraints\": [{\"name\": \"User_pkey\","
    "     \"type\": \"primary key\", \"definition\": \"PRIMARY KEY (id)\"}],"
    "   \"indexes\": [{\"name\": \"users_email_key\", \"definition\":"
    "     \"CREATE UNIQUE INDEX users_email_key ON public.\\\"User\\\" "
    "USING btree (total)\"}]}],"
    " \"functions\": [{\"schema\": \"public\", \"name\": \"f()\","
    "   \"kind\": \"function\","
    "   \"definition\": \"CREATE FUNCTION public.f()\\n RETURNS int\\n\"}]"
    "}";

static const char base_text[] =
    "ferry-schema/1\n"
    "postgres 15\n"
    "scope \"public\"\n"
    "\n"
    "schema \"public\"\n"
    "\n"
    "extension \"citext\"\n"
    "\tschema public\n"
    "\n"
    "enum \"public\".\"Role\"\n"
    "\tvalue OWNER\n"
    "\tvalue MEMBER\n"
    "\n"
    "table \"public\".\"User\"\n"
    "\tcolumn \"id\"\n"
    "\t\ttype integer\n"
    "\t\tnot_null\n"
    "\tcolumn \"total\"\n"
    "\t\ttype integer\n"
    "\tconstraint \"User_pkey\"\n"
    "\t\ttype primary key\n"
    "\t\tdefinition PRIMARY KEY (id)\n"
    "\tindex \"users_email_key\"\n"
    "\t\tdefinition CREATE UNIQUE INDEX users_email_key ON "
    "public.\"User\" USING btree (total)\n"
    "\n"
    "function \"public\".\"f()\"\n"
    "\tkind function\n"
    "\tdefinition\n"
    "\t\t| CREATE FUNCTION public.f()\n"
    "\t\t|  RETURNS int\n"
    "\t\t| \n";

static json_t *
parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);

	if (j == NULL)
		fail_msg("bad test JSON: %s (line %d)", jerr.text, jerr.line);
	return j;
}

/* Builds a document from JSON text; fails the test on error. */
static struct ferry_schema *
doc(const char *text)
{
	struct ferry_schema *s = NULL;
	struct ferry_err err;
	json_t *j = parse(text);

	ferry_err_clear(&err);
	if (ferry_schema_build(j, &s, &err) != 0)
		fail_msg("build: %s", err.msg);
	json_decref(j);
	return s;
}

/* base_json edited by fn(root). */
static struct ferry_schema *
doc_edit(void (*fn)(json_t *))
{
	struct ferry_schema *s = NULL;
	struct ferry_err err;
	json_t *j = parse(base_json);

	fn(j);
	ferry_err_clear(&err);
	if (ferry_schema_build(j, &s, &err) != 0)
		fail_msg("build: %s", err.msg);
	json_decref(j);
	return s;
}

static json_t *
table_user(json_t *root)
{
	return json_array_get(json_object_get(root, "tables"), 0);
}

static json_t *
column(json_t *root, size_t i)
{
	return json_array_get(json_object_get(table_user(root), "columns"), i);
}

static void
test_text_and_digest(void **state)
{
	struct ferry_schema *s = doc(base_json);
	char hex[FERRY_SHA256_HEX_LEN + 1];
	size_t len;
	const char *text = ferry_schema_text(s, &len);

	(void)state;
	assert_string_equal(text, base_text);
	assert_int_equal(len, strlen(base_text));
	ferry_sha256_hex(base_text, strlen(base_text), hex);
	assert_string_equal(ferry_schema_digest(s), hex);
	assert_int_equal(ferry_schema_pg_major(s), 15);
	assert_string_equal(ferry_schema_pg_version(s), "15.6");
	assert_string_equal(ferry_schema_home(s), "public");
	assert_int_equal(ferry_schema_count(s), 5);
	ferry_schema_free(s);
}

/* Canonical form: array order and key order do not matter. */
static void
reverse_everything(json_t *root)
{
	json_t *tables = json_object_get(root, "tables");
	json_t *t = table_user(root), *idx, *con;

	/* Another table first, so sorting has something to do. */
	json_array_insert_new(tables, 0,
	    json_pack("{s:s, s:s}", "schema", "public", "name", "Zed"));
	/* Keys in another order. */
	idx = json_incref(json_object_get(t, "indexes"));
	con = json_incref(json_object_get(t, "constraints"));
	json_object_del(t, "indexes");
	json_object_del(t, "constraints");
	json_object_set_new(t, "indexes", idx);
	json_object_set_new(t, "constraints", con);
}

static void
drop_zed(json_t *root)
{
	json_array_append_new(json_object_get(root, "tables"),
	    json_pack("{s:s, s:s}", "schema", "public", "name", "Zed"));
}

static void
test_order_independent(void **state)
{
	struct ferry_schema *a = doc_edit(drop_zed);
	struct ferry_schema *b = doc_edit(reverse_everything);

	(void)state;
	assert_string_equal(ferry_schema_digest(a), ferry_schema_digest(b));
	assert_string_equal(ferry_schema_text(a, NULL),
	    ferry_schema_text(b, NULL));
	ferry_schema_free(a);
	ferry_schema_free(b);
}

/* Columns keep their order: reordering them is a change. */
static void
swap_columns(json_t *root)
{
	json_t *cols = json_object_get(table_user(root), "columns");
	json_t *first = json_incref(json_array_get(cols, 0));

	json_array_remove(cols, 0);
	json_array_append_new(cols, first);
}

static void
test_column_order(void **state)
{
	struct ferry_schema *a = doc(base_json), *b = doc_edit(swap_columns);
	struct ferry_schema_diff *d = NULL;
	struct ferry_err err;
	const struct ferry_schema_change *c;

	(void)state;
	ferry_err_clear(&err);
	assert_string_not_equal(ferry_schema_digest(a), ferry_schema_digest(b));
	assert_int_equal(ferry_schema_diff(a, b, &d, &err), 0);
	assert_int_equal(ferry_schema_diff_count(d), 1);
	c = ferry_schema_diff_change(d, 0);
	assert_int_equal(c->ndetails, 1);
	assert_string_equal(c->details[0].text,
	    "column order changed: id, total → total, id");
	ferry_schema_diff_free(d);
	ferry_schema_free(a);
	ferry_schema_free(b);
}

/* Extension versions are listed, not digested: a note, not a change. */
static void
bump_citext(json_t *root)
{
	json_object_set_new(json_array_get(json_object_get(root, "extensions"),
	                        0),
	    "version", json_string("1.8"));
}

static void
test_extension_version_not_digested(void **state)
{
	struct ferry_schema *a = doc(base_json), *b = doc_edit(bump_citext);
	struct ferry_schema_diff *d = NULL;
	struct ferry_err err;

	(void)state;
	ferry_err_clear(&err);
	assert_string_equal(ferry_schema_digest(a), ferry_schema_digest(b));
	assert_int_equal(ferry_schema_diff(a, b, &d, &err), 0);
	assert_true(ferry_schema_diff_equal(d));
	assert_int_equal(ferry_schema_diff_count(d), 0);
	assert_int_equal(ferry_schema_diff_nnotes(d), 1);
	assert_string_equal(ferry_schema_diff_note(d, 0),
	    "extension \"citext\": version 1.6 → 1.8 (not part of the "
	    "digest)");
	ferry_schema_diff_free(d);
	ferry_schema_free(a);
	ferry_schema_free(b);
}

/* The usual changes, as the issue spells them. */
static void
usual_changes(json_t *root)
{
	json_t *t = table_user(root);

	json_object_set_new(column(root, 1), "type", json_string("bigint"));
	json_object_set_new(column(root, 1), "not_null", json_true());
	json_object_set_new(column(root, 1), "default", json_string("0"));
	json_array_clear(json_object_get(t, "indexes"));
	json_array_append_new(json_object_get(t, "columns"),
	    json_pack("{s:s, s:s}", "name", "email", "type", "text"));
	json_array_append_new(json_object_get(json_array_get(json_object_get(root,
	                                                         "enums"),
	                                          0),
	                          "values"),
	    json_string("AUDITOR"));
	json_array_append_new(json_object_get(root, "tables"),
	    json_pack("{s:s, s:s}", "schema", "public", "name", "Comment"));
	json_array_clear(json_object_get(root, "functions"));
}

static void
test_diff_usual(void **state)
{
	struct ferry_schema *a = doc(base_json), *b = doc_edit(usual_changes);
	struct ferry_schema_diff *d = NULL;
	struct ferry_err err;
	struct ferry_buf out;
	json_t *j;

	(void)state;
	ferry_err_clear(&err);
	ferry_buf_init(&out, 1 << 20);
	assert_int_equal(ferry_schema_diff(a, b, &d, &err), 0);
	assert_false(ferry_schema_diff_equal(d));
	assert_int_equal(ferry_schema_diff_text(d, &out), 0);
	assert_string_equal(ferry_buf_str(&out),
	    "[+] Added tables\n"
	    "  - \"Comment\"\n"
	    "[-] Removed functions\n"
	    "  - \"f()\"\n"
	    "[*] Changed the \"Role\" enum\n"
	    "  [+] enum \"Role\": value 'AUDITOR' added\n"
	    "[*] Changed the \"User\" table\n"
	    "  [+] column \"email\" added\n"
	    "  [*] column \"total\": integer → bigint\n"
	    "  [*] column \"total\": NOT NULL added\n"
	    "  [*] column \"total\": default 0 added\n"
	    "  [-] index \"users_email_key\" removed\n");
	j = ferry_schema_diff_json(d);
	assert_false(json_is_true(json_object_get(j, "equal")));
	assert_int_equal(json_array_size(json_object_get(j, "changes")), 4);
	json_decref(j);
	ferry_buf_release(&out);
	ferry_schema_diff_free(d);
	ferry_schema_free(a);
	ferry_schema_free(b);
}

/* Structured details carry what consumers (drift, lint) need. */
static void
test_diff_structure(void **state)
{
	struct ferry_schema *a = doc(base_json), *b = doc_edit(usual_changes);
	struct ferry_schema_diff *d = NULL;
	const struct ferry_schema_change *c = NULL;
	struct ferry_err err;
	size_t i;

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_schema_diff(a, b, &d, &err), 0);
	for (i = 0; i < ferry_schema_diff_count(d); i++)
		if (ferry_schema_diff_change(d, i)->action ==
		        FERRY_SCHEMA_CHANGED &&
		    strcmp(ferry_schema_diff_change(d, i)->name, "User") == 0)
			c = ferry_schema_diff_change(d, i);
	assert_non_null(c);
	assert_string_equal(c->kind->key, "tables");
	assert_string_equal(c->schema, "public");
	/* Sub-objects by name: "email" (added) before "total". */
	assert_int_equal(c->details[0].action, FERRY_SCHEMA_ADDED);
	assert_string_equal(c->details[0].sub, "column");
	assert_string_equal(c->details[0].sub_name, "email");
	assert_null(c->details[0].attr);
	assert_string_equal(json_string_value(
	                        json_object_get(c->details[0].new_json,
	                            "type")),
	    "text");
	assert_int_equal(c->details[1].action, FERRY_SCHEMA_CHANGED);
	assert_string_equal(c->details[1].sub_name, "total");
	assert_string_equal(c->details[1].attr, "type");
	assert_string_equal(c->details[1].old_value, "integer");
	assert_string_equal(c->details[1].new_value, "bigint");
	/* The diff keeps its own references. */
	ferry_schema_free(a);
	ferry_schema_free(b);
	assert_string_equal(c->details[4].sub_name, "users_email_key");
	ferry_schema_diff_free(d);
}

static void
other_major(json_t *root)
{
	json_object_set_new(json_object_get(root, "postgres"), "major",
	    json_integer(16));
}

static void
test_diff_refuses_other_major(void **state)
{
	struct ferry_schema *a = doc(base_json), *b = doc_edit(other_major);
	struct ferry_schema_diff *d = NULL;
	struct ferry_err err;

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_schema_diff(a, b, &d, &err), FERRY_EOPER);
	assert_null(d);
	assert_non_null(strstr(err.msg, "PostgreSQL 15"));
	assert_non_null(strstr(err.msg, "PostgreSQL 16"));
	ferry_schema_free(a);
	ferry_schema_free(b);
}

/* Names that could forge structure are escaped in the text. */
static void
test_escaping(void **state)
{
	struct ferry_schema *s;
	const char *text;

	(void)state;
	s = doc("{\"format\": \"ferry-schema/1\","
	        " \"postgres\": {\"major\": 15, \"version\": \"15\"},"
	        " \"schema\": \"public\", \"scope\": [\"public\"],"
	        " \"tables\": [{\"schema\": \"public\","
	        "   \"name\": \"a\\\"b\\n\\ttable \\\\x\","
	        "   \"columns\": [{\"name\": \"c\", \"type\": \"text\","
	        "     \"default\": \"'x\\n\\tcolumn'::text\"}]}]}");
	text = ferry_schema_text(s, NULL);
	assert_non_null(
	    strstr(text, "table \"public\".\"a\"\"b\\n\ttable \\\\x\"\n"));
	assert_non_null(strstr(text, "\t\tdefault 'x\\n\tcolumn'::text\n"));
	ferry_schema_free(s);
}

/* Saved and loaded back: same digest; edits are caught. */
static void
test_json_roundtrip(void **state)
{
	struct ferry_schema *a = doc(base_json), *b = NULL;
	struct ferry_err err;
	char *j = ferry_schema_json_text(a), *p;

	(void)state;
	ferry_err_clear(&err);
	assert_int_equal(ferry_schema_from_json(j, strlen(j), "a.json", &b,
	                     &err),
	    0);
	assert_string_equal(ferry_schema_digest(a), ferry_schema_digest(b));
	ferry_schema_free(b);
	b = NULL;
	/* An edit the digest covers. */
	p = strstr(j, "\"bigint\"");
	assert_null(p);
	p = strstr(j, "\"integer\"");
	assert_non_null(p);
	memcpy(p, "\"integar\"", 9);
	assert_int_equal(ferry_schema_from_json(j, strlen(j), "a.json", &b,
	                     &err),
	    FERRY_EUSAGE);
	assert_non_null(strstr(err.msg, "does not match"));
	assert_null(b);
	free(j);
	ferry_schema_free(a);
}

static void
expect_invalid(const char *json, const char *what)
{
	struct ferry_schema *s = NULL;
	struct ferry_err err;

	ferry_err_clear(&err);
	assert_int_equal(ferry_schema_from_json(json, strlen(json), "x.json",
	                     &s, &err),
	    FERRY_EUSAGE);
	assert_null(s);
	if (strstr(err.msg, what) == NULL)
		fail_msg("expected '%s' in: %s", what, err.msg);
}

#define HEAD                                                         \
	"{\"format\": \"ferry-schema/1\", \"digest\": \"" ZERO "\"," \
	" \"postgres\": {\"major\": 15, \"version\": \"15\"},"       \
	" \"schema\": \"public\", \"scope\": [\"public\"]"
#define ZERO "0000000000000000000000000000000000000000000000000000000000000000"

static void
test_invalid_documents(void **state)
{
	(void)state;
	expect_invalid("", "not a schema document");
	expect_invalid("[1]", "expected a JSON object");
	expect_invalid("{\"format\": \"other\"}", "format");
	expect_invalid("ferry-schema/1\npostgres 15\n", "text form");
	expect_invalid(HEAD ", \"extra\": 1}", "unknown key \"extra\"");
	expect_invalid(HEAD ", \"tables\": {}}", "must be an array");
	expect_invalid(HEAD ", \"tables\": [{\"name\": \"t\"}]}",
	    "\"schema\" must be a string");
	expect_invalid(HEAD ", \"tables\": [{\"schema\": \"public\","
	                    " \"name\": \"t\", \"owner\": \"bob\"}]}",
	    "unknown key \"owner\"");
	expect_invalid(HEAD ", \"tables\": [{\"schema\": \"public\","
	                    " \"name\": \"t\", \"unlogged\": \"yes\"}]}",
	    "must be true or false");
	expect_invalid(HEAD ", \"tables\": [{\"schema\": \"public\","
	                    " \"name\": \"t\", \"columns\": [{\"name\": \"c\","
	                    " \"type\": 4}]}]}",
	    "column \"c\": \"type\" must be a string");
	expect_invalid(HEAD ", \"tables\": [{\"schema\": \"public\","
	                    " \"name\": \"t\"}, {\"schema\": \"public\","
	                    " \"name\": \"t\"}]}",
	    "appears twice");
	expect_invalid(HEAD ", \"enums\": [{\"schema\": \"public\","
	                    " \"name\": \"e\", \"values\": [\"a\", 1]}]}",
	    "array of strings");
	expect_invalid(HEAD ", \"tables\": []}", "does not match");
	expect_invalid("{\"format\": \"ferry-schema/1\", \"digest\": \"x\","
	               " \"postgres\": {\"major\": 15, \"version\": \"15\"},"
	               " \"schema\": \"public\", \"scope\": [\"public\"]}",
	    "64 lowercase hex");
	expect_invalid("{\"format\": \"ferry-schema/1\","
	               " \"postgres\": {\"major\": 15, \"version\": \"15\"},"
	               " \"schema\": \"app\", \"scope\": [\"public\"]}",
	    "does not hold");
	expect_invalid("{\"format\": \"ferry-schema/1\","
	               " \"postgres\": {\"major\": \"15\"},"
	               " \"schema\": \"public\", \"scope\": [\"public\"]}",
	    "\"postgres\" must be");
	expect_invalid("{\"format\": \"ferry-schema/1\", \"format\": 1}",
	    "duplicate");
}

/* Every kind and sub-object of the model renders and diffs. */
static void
test_model_complete(void **state)
{
	const struct ferry_schema_kind *k;
	size_t n, i, j, a;

	(void)state;
	k = ferry_schema_kinds(&n);
	assert_int_equal(n, 10);
	for (i = 0; i < n; i++) {
		assert_non_null(k[i].key);
		assert_non_null(k[i].plural);
		for (a = 0; a < k[i].nattrs; a++) {
			assert_non_null(k[i].attrs[a].label);
			if (k[i].attrs[a].type == FERRY_SCHEMA_BOOL)
				assert_non_null(k[i].attrs[a].off);
		}
		for (j = 0; j < k[i].nsubs; j++)
			for (a = 0; a < k[i].subs[j].nattrs; a++)
				if (k[i].subs[j].attrs[a].type ==
				    FERRY_SCHEMA_BOOL)
					assert_non_null(
					    k[i].subs[j].attrs[a].off);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_and_digest),
		cmocka_unit_test(test_order_independent),
		cmocka_unit_test(test_column_order),
		cmocka_unit_test(test_extension_version_not_digested),
		cmocka_unit_test(test_diff_usual),
		cmocka_unit_test(test_diff_structure),
		cmocka_unit_test(test_diff_refuses_other_major),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_invalid_documents),
		cmocka_unit_test(test_model_complete),
	};

	if (ferry_crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
