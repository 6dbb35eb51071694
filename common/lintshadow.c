/*
 * lintshadow.c -- lint rules on the diff of the shadow database's schema
 * before and after each migration.
 *
 * The diff (schemadiff) says what changed; the migration's parse tree only
 * places a change at the statement that names it, tells a rename from a
 * drop and an add when the statement is in sight, and tells whether an
 * index was built CONCURRENTLY, which the catalogs do not record.
 */
#include "lintshadow.h"

#include <jansson.h>
#include <limits.h>
#include <pg_query.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "schemadiff.h"
#include "sqltext.h"
#include "util.h"

/* PostgreSQL refuses query strings of 1 GiB or more (MaxAllocSize). */
#define MAX_PARSE_LEN ((size_t)0x3fffffff)

/* No statement: a finding without a position. */
#define NOWHERE SIZE_MAX

/* Functions named in one finding before "and N more". */
#define MAX_NAMED 3

#define R_TABLE_DROPPED "FERRY-L101"
#define R_COLUMN_DROPPED "FERRY-L102"
#define R_REWRITE "FERRY-L103"
#define R_NARROW "FERRY-L104"
#define R_NOT_NULL "FERRY-L105"
#define R_FOREIGN_KEY "FERRY-L106"
#define R_CHECK "FERRY-L107"
#define R_INDEX "FERRY-L108"
#define R_RENAMED "FERRY-L109"
#define R_ENUM_REMOVED "FERRY-L110"
#define R_ENUM_ORDER "FERRY-L111"

/* The parse-tree rules that say the same of the same statement. */
#define P_DROP_TABLE "FERRY-L001"
#define P_DROP_COLUMN "FERRY-L002"
#define P_TYPE_CHANGE "FERRY-L003"
#define P_TYPE_NARROW "FERRY-L004"
#define P_INDEX "FERRY-L005"
#define P_SET_NOT_NULL "FERRY-L007"
#define P_FOREIGN_KEY "FERRY-L008"
#define P_CHECK "FERRY-L009"

static const struct ferry_lint_rule shadow_rules[] = {
	{ R_TABLE_DROPPED, "table-dropped", FERRY_LINT_ERROR,
	    "the shadow database lost a table that existed before the "
	    "migration: its data is deleted for good, and the application "
	    "version still running fails on every query that uses it, however "
	    "the drop happened (DROP ... CASCADE, a DO block, a function)",
	    "stop using the table in one release, then drop it by name in a "
	    "later migration and lint-ignore the rule there" },
	{ R_COLUMN_DROPPED, "column-dropped", FERRY_LINT_ERROR,
	    "the shadow database lost a column that existed before the "
	    "migration: its data is deleted, and the application version still "
	    "running fails on queries that name it, however the drop happened "
	    "(DROP TYPE ... CASCADE, a DO block, a function)",
	    "remove the field from the application and deploy first, then "
	    "drop the column by name in a later migration and lint-ignore the "
	    "rule there" },
	{ R_REWRITE, "column-rewritten", FERRY_LINT_WARNING,
	    "the column's type changed in a way that makes PostgreSQL rewrite "
	    "the table and rebuild its indexes under an ACCESS EXCLUSIVE lock, "
	    "blocking reads and writes until it is done",
	    "add a column of the new type, backfill it in batches and move the "
	    "application over; or keep to changes that need no rewrite "
	    "(varchar(n) to a longer varchar or to text, numeric(p,s) to a "
	    "larger precision with the same scale)" },
	{ R_NARROW, "column-narrowed", FERRY_LINT_ERROR,
	    "the column's new type holds fewer values than the old one: on "
	    "the live database the change fails on the first row that does "
	    "not fit, or rounds values, after rewriting the table under an "
	    "ACCESS EXCLUSIVE lock",
	    "check the data first; keep the wider type and add a CHECK "
	    "constraint NOT VALID, validated in a later migration" },
	{ R_NOT_NULL, "not-null-without-default", FERRY_LINT_WARNING,
	    "a column that existed before became NOT NULL without a default: "
	    "PostgreSQL scans the table under an ACCESS EXCLUSIVE lock and "
	    "fails if a row holds NULL, and every writer that leaves the "
	    "column out (the application version still running) fails from "
	    "then on",
	    "give the column a DEFAULT first, or backfill it, add CHECK (col "
	    "IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then "
	    "SET NOT NULL, which then skips the scan" },
	{ R_FOREIGN_KEY, "foreign-key-validated", FERRY_LINT_WARNING,
	    "a foreign key was added, validated, to a table that existed "
	    "before: every row is checked while writes to both tables are "
	    "blocked",
	    "ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then VALIDATE "
	    "CONSTRAINT in a later migration: validating takes a lock that "
	    "lets reads and writes go on" },
	{ R_CHECK, "check-validated", FERRY_LINT_WARNING,
	    "a CHECK constraint was added, validated, to a table that existed "
	    "before: every row is checked under an ACCESS EXCLUSIVE lock, "
	    "blocking reads and writes",
	    "ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE "
	    "CONSTRAINT in a later migration: validating takes a lock that "
	    "lets reads and writes go on" },
	{ R_INDEX, "index-blocks-writes", FERRY_LINT_WARNING,
	    "an index was built without CONCURRENTLY on a table that existed "
	    "before, blocking every write to the table until it was built (a "
	    "primary key, unique or exclusion constraint builds its index "
	    "under an ACCESS EXCLUSIVE lock)",
	    "CREATE INDEX CONCURRENTLY, alone in a migration of its own; for a "
	    "constraint, build a unique index concurrently, then ADD "
	    "CONSTRAINT ... UNIQUE USING INDEX" },
	{ R_RENAMED, "renamed-still-referenced", FERRY_LINT_ERROR,
	    "a table or column was renamed, but a function in the schema "
	    "after the migration still names it the old way: PostgreSQL keeps "
	    "function bodies as text, so the function fails the next time it "
	    "runs (views follow renames, functions do not)",
	    "do not rename (map the name in the application: Prisma @map, "
	    "@@map); or replace the functions in the same migration, or keep a "
	    "view under the old table name" },
	{ R_ENUM_REMOVED, "enum-value-removed", FERRY_LINT_ERROR,
	    "an enum lost a value (removed, renamed, or the type recreated "
	    "without it): the migration fails on rows that hold it, and the "
	    "application version still running fails when it writes it",
	    "stop writing the value and migrate the rows that hold it in one "
	    "release, then remove it in a later migration and lint-ignore the "
	    "rule there" },
	{ R_ENUM_ORDER, "enum-values-reordered", FERRY_LINT_WARNING,
	    "the enum's values changed order: comparisons, ORDER BY and "
	    "indexes on its columns follow the new order, and recreating the "
	    "type rewrites every table that uses it",
	    "add new values with ALTER TYPE ... ADD VALUE (BEFORE or AFTER "
	    "places them) instead of recreating the type" },
};

/* What a replay recorded for one migration. */
struct step {
	char *name;
	json_t *before, *after; /* the documents' JSON (references) */
	struct ferry_schema_diff *diff;
};

struct ferry_lint_shadow {
	struct step *steps;
	size_t n, cap;
	struct ferry_err failed; /* a recording that failed during a replay */
};

/* One statement of the migration being checked. */
struct sql_stmt {
	size_t off, end;
	json_t *root; /* the parse result */
	json_t *node; /* borrowed: {"<Type>Stmt": {...}} */
};

/* The migration being checked. */
struct mig {
	struct ferry_lint_ctx *ctx;
	const struct step *st;
	struct sql_stmt *v;
	size_t n;
	const char *home; /* the connection's schema */
};

/* ---- recording -------------------------------------------------------- */

struct ferry_lint_shadow *
ferry_lint_shadow_new(void)
{
	return xcalloc(1, sizeof(struct ferry_lint_shadow));
}

static void
forget(struct ferry_lint_shadow *ls)
{
	size_t i;

	for (i = 0; i < ls->n; i++) {
		free(ls->steps[i].name);
		json_decref(ls->steps[i].before);
		json_decref(ls->steps[i].after);
		ferry_schema_diff_free(ls->steps[i].diff);
	}
	ls->n = 0;
}

void
ferry_lint_shadow_free(struct ferry_lint_shadow *ls)
{
	if (ls == NULL)
		return;
	forget(ls);
	free(ls->steps);
	free(ls);
}

int
ferry_lint_shadow_record(struct ferry_lint_shadow *ls, const char *name,
    const struct ferry_schema *before, const struct ferry_schema *after,
    struct ferry_err *err)
{
	struct ferry_schema_diff *d = NULL;
	struct step *s;
	int rc;

	rc = ferry_schema_diff(before, after, &d, err);
	if (rc != 0)
		return rc;
	if (ls->n == ls->cap) {
		ls->cap = ls->cap ? ls->cap * 2 : 16;
		ls->steps = xrealloc(ls->steps, ls->cap * sizeof(*ls->steps));
	}
	s = &ls->steps[ls->n++];
	s->name = xstrdup(name);
	/* Documents are immutable; a reference keeps them alive. */
	s->before = json_incref((json_t *)ferry_schema_json(before));
	s->after = json_incref((json_t *)ferry_schema_json(after));
	s->diff = d;
	return 0;
}

static void
on_migration(void *arg, size_t i, const struct ferry_migration *m,
    const struct ferry_schema *before, const struct ferry_schema *after)
{
	struct ferry_lint_shadow *ls = arg;

	(void)i;
	if (ls->failed.code == 0)
		ferry_lint_shadow_record(ls, m->name, before, after,
		    &ls->failed);
}

int
ferry_lint_shadow_replay(struct ferry_lint_shadow *ls,
    const struct ferry_shadow_opts *opts, const struct ferry_migrations *migs,
    struct ferry_err *err)
{
	struct ferry_shadow_report *rep = NULL;
	struct ferry_shadow_opts o = *opts;
	int rc;

	forget(ls);
	ferry_err_clear(&ls->failed);
	o.on_migration = on_migration;
	o.ctx = ls;
	o.on_step = NULL;
	rc = ferry_shadow_run(&o, migs, &rep, err);
	ferry_shadow_report_free(rep);
	if (rc == 0 && ls->failed.code != 0)
		rc = ferry_errf(err, ls->failed.code, "%s", ls->failed.msg);
	if (rc != 0)
		forget(ls);
	return rc;
}

/* ---- column types ----------------------------------------------------- */

/* A type as format_type prints it, taken apart. */
struct ftype {
	char base[128]; /* "character varying", "timestamp without time zone" */
	long mod[2];
	int nmod; /* -1: modifiers that are not one or two integers */
	int array;
};

static void
ftype_read(struct ftype *t, const char *s)
{
	char buf[sizeof(t->base)], *p, *q, *e;
	size_t n = strlen(s);

	memset(t, 0, sizeof(*t));
	while (n >= 2 && s[n - 2] == '[' && s[n - 1] == ']') {
		t->array = 1;
		n -= 2;
	}
	if (n >= sizeof(buf)) {
		t->nmod = -1;
		return;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	p = strchr(buf, '(');
	/* A quoted name may hold anything: its type has no modifiers. */
	if (p == NULL || strchr(buf, '"') != NULL) {
		ferry_strlcpy(t->base, buf, sizeof(t->base));
		return;
	}
	q = strchr(p, ')');
	if (q == NULL) {
		t->nmod = -1;
		return;
	}
	*p++ = '\0';
	*q++ = '\0';
	while (p < q - 1 && t->nmod >= 0) {
		if (t->nmod == 2) {
			t->nmod = -1;
			break;
		}
		t->mod[t->nmod] = strtol(p, &e, 10);
		if (e == p || (*e != ',' && *e != '\0')) {
			t->nmod = -1;
			break;
		}
		t->nmod++;
		p = *e == ',' ? e + 1 : e;
	}
	snprintf(t->base, sizeof(t->base), "%s%s", buf, q);
}

/* Length limit of a varchar or text, LONG_MAX for none; -1 if neither. */
static long
text_limit(const struct ftype *t)
{
	if (strcmp(t->base, "text") == 0)
		return t->nmod == 0 ? LONG_MAX : -1;
	if (strcmp(t->base, "character varying") == 0)
		return t->nmod == 0 ? LONG_MAX : t->nmod == 1 ? t->mod[0] : -1;
	return -1;
}

enum ferry_lint_type_change
ferry_lint_type_change(const char *from, const char *to)
{
	static const char *const ints[] = { "smallint", "integer", "bigint",
		NULL };
	static const char *const floats[] = { "real", "double precision",
		NULL };
	static const char *const times[] = { "timestamp without time zone",
		"timestamp with time zone", "time without time zone",
		"time with time zone", NULL };
	enum ferry_lint_type_change safe;
	struct ftype o, n;
	long lo, ln, po, so, pn, sn;

	if (strcmp(from, to) == 0)
		return FERRY_LINT_TYPE_SAFE;
	ftype_read(&o, from);
	ftype_read(&n, to);
	if (o.nmod < 0 || n.nmod < 0 || o.array != n.array)
		return FERRY_LINT_TYPE_REWRITE;
	/* Arrays are converted element by element: a rewrite at best. */
	safe = o.array ? FERRY_LINT_TYPE_REWRITE : FERRY_LINT_TYPE_SAFE;
	lo = text_limit(&o);
	ln = text_limit(&n);
	if (lo > 0 && ln > 0)
		return ln >= lo ? safe : FERRY_LINT_TYPE_NARROW;
	if (lo > 0 && strcmp(n.base, "character") == 0)
		return FERRY_LINT_TYPE_NARROW;
	if (strcmp(o.base, n.base) == 0) {
		if (strcmp(o.base, "numeric") == 0) {
			if (n.nmod == 0)
				return safe;
			if (o.nmod == 0)
				return FERRY_LINT_TYPE_NARROW;
			po = o.mod[0];
			so = o.nmod > 1 ? o.mod[1] : 0;
			pn = n.mod[0];
			sn = n.nmod > 1 ? n.mod[1] : 0;
			if (sn == so && pn >= po)
				return safe;
			if (sn < so || pn - sn < po - so)
				return FERRY_LINT_TYPE_NARROW;
			return FERRY_LINT_TYPE_REWRITE;
		}
		if (ferry_sql_name_rank(o.base, times) != 0) {
			po = o.nmod > 0 ? o.mod[0] : 6;
			pn = n.nmod > 0 ? n.mod[0] : 6;
			return pn >= po ? safe : FERRY_LINT_TYPE_NARROW;
		}
		if (strcmp(o.base, "bit varying") == 0) {
			lo = o.nmod > 0 ? o.mod[0] : LONG_MAX;
			ln = n.nmod > 0 ? n.mod[0] : LONG_MAX;
			return ln >= lo ? safe : FERRY_LINT_TYPE_NARROW;
		}
		/* character(n), bit(n): padded or exact, so rewritten. */
		if (o.nmod == 1 && n.nmod == 1 && n.mod[0] < o.mod[0])
			return FERRY_LINT_TYPE_NARROW;
		return FERRY_LINT_TYPE_REWRITE;
	}
	if (ferry_sql_name_rank(o.base, ints) &&
	    ferry_sql_name_rank(n.base, ints))
		return ferry_sql_name_rank(n.base, ints) <
		        ferry_sql_name_rank(o.base, ints)
		    ? FERRY_LINT_TYPE_NARROW
		    : FERRY_LINT_TYPE_REWRITE;
	if (ferry_sql_name_rank(o.base, floats) &&
	    ferry_sql_name_rank(n.base, floats))
		return ferry_sql_name_rank(n.base, floats) <
		        ferry_sql_name_rank(o.base, floats)
		    ? FERRY_LINT_TYPE_NARROW
		    : FERRY_LINT_TYPE_REWRITE;
	if ((strcmp(o.base, "numeric") == 0 ||
	        ferry_sql_name_rank(o.base, floats)) &&
	    (ferry_sql_name_rank(n.base, ints) || strcmp(n.base, "real") == 0))
		return FERRY_LINT_TYPE_NARROW; /* fractions or digits lost */
	if (strcmp(o.base, "cidr") == 0 && strcmp(n.base, "inet") == 0)
		return safe; /* binary coercible */
	return FERRY_LINT_TYPE_REWRITE;
}

/* ---- the migration's statements --------------------------------------- */

static json_t *
jget(json_t *o, const char *key)
{
	return json_object_get(o, key);
}

static int
jis(json_t *o, const char *key, const char *value)
{
	const char *s = ferry_sql_jstr(o, key);

	return s != NULL && value != NULL && strcmp(s, value) == 0;
}

/* The sval of a {"String": {"sval": ...}} node, or NULL. */
static const char *
jsval(json_t *n)
{
	return ferry_sql_jstr(jget(n, "String"), "sval");
}

static const char *
str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/*
 * 1 if the statement at t[off, end) cannot change the schema, from its
 * first word: data changes, which a data migration holds by the thousand,
 * are not parsed.
 */
static int
data_statement(const char *t, size_t off, size_t end)
{
	static const char *const skip[] = { "insert", "update", "delete",
		"copy", "merge", "values", "grant", "revoke", "comment", NULL };
	const char *const *w;
	size_t e = off, n;

	while (e < end && ferry_sql_is_word_char(t[e]))
		e++;
	n = e - off;
	for (w = skip; *w != NULL; w++)
		if (strlen(*w) == n && strncasecmp(t + off, *w, n) == 0)
			return 1;
	return 0;
}

/* Splits and parses the migration; what cannot be parsed is left out. */
static void
mig_load(struct mig *mg, const struct ferry_migration *m)
{
	PgQuerySplitResult split;
	PgQueryParseResult r;
	struct sql_stmt *s;
	size_t i, loc, len, cap = 0;
	char *sql;

	if (memchr(m->sql, '\0', m->sql_len) != NULL ||
	    m->sql_len > MAX_PARSE_LEN)
		return;
	split = pg_query_split_with_parser(m->sql);
	for (i = 0; split.error == NULL && i < (size_t)split.n_stmts; i++) {
		if (split.stmts[i]->stmt_location < 0 ||
		    split.stmts[i]->stmt_len < 0)
			continue;
		loc = (size_t)split.stmts[i]->stmt_location;
		len = (size_t)split.stmts[i]->stmt_len;
		if (loc > m->sql_len || len > m->sql_len - loc)
			continue;
		if (mg->n == cap) {
			cap = cap ? cap * 2 : 16;
			mg->v = xrealloc(mg->v, cap * sizeof(*mg->v));
		}
		s = &mg->v[mg->n];
		memset(s, 0, sizeof(*s));
		s->end = loc + len;
		s->off = ferry_sql_skip_space(m->sql, loc, s->end);
		if (s->off == s->end || data_statement(m->sql, s->off, s->end))
			continue;
		sql = xstrndup(m->sql + s->off, s->end - s->off);
		r = pg_query_parse(sql);
		if (r.error == NULL && r.parse_tree != NULL)
			s->root = ferry_sql_load_json(r.parse_tree);
		pg_query_free_parse_result(r);
		free(sql);
		s->node =
		    jget(json_array_get(jget(s->root, "stmts"), 0), "stmt");
		mg->n++;
	}
	pg_query_free_split_result(split);
}

static void
mig_release(struct mig *mg)
{
	size_t i;

	for (i = 0; i < mg->n; i++)
		json_decref(mg->v[i].root);
	free(mg->v);
	mg->v = NULL;
	mg->n = 0;
}

/* Statement k's fields if it is a type statement ("DropStmt"), or NULL. */
static json_t *
stmt_of(const struct mig *mg, size_t k, const char *type)
{
	return jget(mg->v[k].node, type);
}

/* 1 if RangeVar rv names schema.name (an unqualified name: any schema). */
static int
rv_is(json_t *rv, const char *schema, const char *name)
{
	const char *s = ferry_sql_jstr(rv, "schemaname");

	return jis(rv, "relname", name) &&
	    (s == NULL || strcmp(s, schema) == 0);
}

/* 1 if a list of String nodes ([schema,] name) names schema.name (any
   schema when schema is NULL). */
static int
names_are(json_t *items, const char *schema, const char *name)
{
	size_t n = json_array_size(items);
	const char *last, *prev;

	if (n == 0)
		return 0;
	last = jsval(json_array_get(items, n - 1));
	prev = n >= 2 ? jsval(json_array_get(items, n - 2)) : NULL;
	return last != NULL && strcmp(last, name) == 0 &&
	    (prev == NULL || schema == NULL || strcmp(prev, schema) == 0);
}

/* The statement that drops schema.name (removeType: "OBJECT_TABLE"). */
static size_t
find_drop(const struct mig *mg, const char *type, const char *schema,
    const char *name)
{
	json_t *v, *o, *items;
	size_t k, i;

	for (k = 0; k < mg->n; k++) {
		v = stmt_of(mg, k, "DropStmt");
		if (v == NULL || !jis(v, "removeType", type))
			continue;
		for (i = 0; i < json_array_size(jget(v, "objects")); i++) {
			o = json_array_get(jget(v, "objects"), i);
			items = jget(jget(o, "List"), "items");
			if (items == NULL)
				items = jget(jget(o, "TypeName"), "names");
			if (names_are(items, schema, name))
				return k;
		}
	}
	return NOWHERE;
}

/* The DROP SCHEMA ... CASCADE of schema, which takes its tables along. */
static size_t
find_schema_cascade(const struct mig *mg, const char *schema)
{
	json_t *v;
	size_t k, i;

	for (k = 0; k < mg->n; k++) {
		v = stmt_of(mg, k, "DropStmt");
		if (!jis(v, "behavior", "DROP_CASCADE") ||
		    !jis(v, "removeType", "OBJECT_SCHEMA"))
			continue;
		for (i = 0; i < json_array_size(jget(v, "objects")); i++)
			if (jsval(json_array_get(jget(v, "objects"), i)) !=
			        NULL &&
			    strcmp(jsval(json_array_get(jget(v, "objects"), i)),
			        schema) == 0)
				return k;
	}
	return NOWHERE;
}

/* The ALTER TABLE of schema.table with a subcommand subtype on name (NULL:
   any name). */
static size_t
find_cmd(const struct mig *mg, const char *schema, const char *table,
    const char *subtype, const char *name)
{
	json_t *v, *cmd;
	size_t k, i;

	for (k = 0; k < mg->n; k++) {
		v = stmt_of(mg, k, "AlterTableStmt");
		if (v == NULL || !rv_is(jget(v, "relation"), schema, table))
			continue;
		for (i = 0; i < json_array_size(jget(v, "cmds")); i++) {
			cmd = jget(json_array_get(jget(v, "cmds"), i),
			    "AlterTableCmd");
			if (jis(cmd, "subtype", subtype) &&
			    (name == NULL || jis(cmd, "name", name)))
				return k;
		}
	}
	return NOWHERE;
}

/*
 * 1 if name could be the one PostgreSQL chose for an unnamed index or
 * constraint of table on column col (NULL: unknown): it starts with
 * "table_col" (names are cut at 63 bytes; a number may follow).
 */
static int
plausible(const char *name, const char *table, const char *col)
{
	char prefix[48];

	if (name == NULL)
		return 1;
	snprintf(prefix, sizeof(prefix), "%s_%s", table, col ? col : "");
	return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* The first column name of a list of String nodes, or NULL. */
static const char *
first_name(json_t *list)
{
	return jsval(json_array_get(list, 0));
}

/*
 * A Constraint node of contype ("CONSTR_FOREIGN") in the list cons that is
 * named name (any name when name is NULL), or, when named is 0, unnamed
 * and on a column that fits name (col: the column being added, or NULL).
 */
static json_t *
constraint_in(json_t *cons, const char *contype, const char *name, int named,
    const char *table, const char *col)
{
	const char *first;
	json_t *c;
	size_t i;

	for (i = 0; i < json_array_size(cons); i++) {
		c = jget(json_array_get(cons, i), "Constraint");
		if (!jis(c, "contype", contype))
			continue;
		if (named) {
			if (name == NULL || jis(c, "conname", name))
				return c;
			continue;
		}
		if (ferry_sql_jstr(c, "conname") != NULL)
			continue;
		/* "t_pkey", "t_a_fkey", "t_a_key", "t_a_check": a primary
		   key's name has no column, a check's is hard to tell. */
		first = NULL;
		if (strcmp(contype, "CONSTR_FOREIGN") == 0 ||
		    strcmp(contype, "CONSTR_UNIQUE") == 0) {
			first = col;
			if (first == NULL)
				first = first_name(jget(c, "fk_attrs"));
			if (first == NULL)
				first = first_name(jget(c, "keys"));
		}
		if (plausible(name, table, first))
			return c;
	}
	return NULL;
}

/*
 * The statement that adds constraint name of contype to schema.table, by
 * ADD CONSTRAINT or in an added column's definition; one that gives no
 * name when none gives this one. *node is the Constraint node.
 */
static size_t
find_constraint(const struct mig *mg, const char *schema, const char *table,
    const char *contype, const char *name, json_t **node)
{
	json_t *v, *cmd, *def, *list, *c;
	const char *col;
	size_t k, i;
	int named;

	for (named = 1; named >= 0; named--) {
		for (k = 0; k < mg->n; k++) {
			v = stmt_of(mg, k, "AlterTableStmt");
			if (v == NULL ||
			    !rv_is(jget(v, "relation"), schema, table))
				continue;
			for (i = 0; i < json_array_size(jget(v, "cmds")); i++) {
				cmd = jget(json_array_get(jget(v, "cmds"), i),
				    "AlterTableCmd");
				def = jget(cmd, "def");
				col = NULL;
				if (jis(cmd, "subtype", "AT_AddConstraint")) {
					list = json_array();
					json_array_append(list, def);
				} else if (jis(cmd, "subtype",
				               "AT_AddColumn")) {
					def = jget(def, "ColumnDef");
					col = ferry_sql_jstr(def, "colname");
					list = json_incref(
					    jget(def, "constraints"));
				} else {
					continue;
				}
				c = constraint_in(list, contype, name, named,
				    table, col);
				json_decref(list);
				if (c != NULL) {
					*node = c;
					return k;
				}
			}
		}
	}
	*node = NULL;
	return NOWHERE;
}

/* The CREATE INDEX of index name on schema.table (or an unnamed one whose
   first column fits the name). */
static size_t
find_index(const struct mig *mg, const char *schema, const char *table,
    const char *name, json_t **node)
{
	json_t *v, *first;
	size_t k;
	int named;

	for (named = 1; named >= 0; named--) {
		for (k = 0; k < mg->n; k++) {
			v = stmt_of(mg, k, "IndexStmt");
			if (v == NULL ||
			    !rv_is(jget(v, "relation"), schema, table))
				continue;
			first = jget(json_array_get(jget(v, "indexParams"), 0),
			    "IndexElem");
			if (named ? jis(v, "idxname", name)
			          : ferry_sql_jstr(v, "idxname") == NULL &&
			            plausible(name, table,
			                ferry_sql_jstr(first, "name"))) {
				*node = v;
				return k;
			}
		}
	}
	*node = NULL;
	return NOWHERE;
}

/*
 * The RENAME of relation schema.rel (type "OBJECT_TABLE", "OBJECT_INDEX"),
 * or of its column sub when sub is not NULL; *to is the new name.
 */
static size_t
find_rename(const struct mig *mg, const char *type, const char *schema,
    const char *rel, const char *sub, const char **to)
{
	json_t *v;
	size_t k;

	for (k = 0; k < mg->n; k++) {
		v = stmt_of(mg, k, "RenameStmt");
		if (v == NULL || !jis(v, "renameType", type) ||
		    !rv_is(jget(v, "relation"), schema, rel) ||
		    (sub != NULL && !jis(v, "subname", sub)) ||
		    ferry_sql_jstr(v, "newname") == NULL)
			continue;
		*to = ferry_sql_jstr(v, "newname");
		return k;
	}
	return NOWHERE;
}

/* The ALTER TABLE ... SET SCHEMA of schema.table; *to is the schema. */
static size_t
find_set_schema(const struct mig *mg, const char *schema, const char *table,
    const char **to)
{
	json_t *v;
	size_t k;

	for (k = 0; k < mg->n; k++) {
		v = stmt_of(mg, k, "AlterObjectSchemaStmt");
		if (v == NULL || !jis(v, "objectType", "OBJECT_TABLE") ||
		    !rv_is(jget(v, "relation"), schema, table) ||
		    ferry_sql_jstr(v, "newschema") == NULL)
			continue;
		*to = ferry_sql_jstr(v, "newschema");
		return k;
	}
	return NOWHERE;
}

/*
 * The statement that took value from enum schema.name (RENAME VALUE), or
 * else the one that created the type again, or renamed another type into
 * its place (Prisma's way); any value when value is NULL.
 */
static size_t
find_enum(const struct mig *mg, const char *schema, const char *name,
    const char *value)
{
	json_t *v;
	size_t k;

	for (k = 0; k < mg->n && value != NULL; k++) {
		v = stmt_of(mg, k, "AlterEnumStmt");
		if (v != NULL && names_are(jget(v, "typeName"), schema, name) &&
		    jis(v, "oldVal", value))
			return k;
	}
	for (k = 0; k < mg->n; k++) {
		v = stmt_of(mg, k, "CreateEnumStmt");
		if (v != NULL && names_are(jget(v, "typeName"), schema, name))
			return k;
	}
	for (k = 0; k < mg->n; k++) {
		v = stmt_of(mg, k, "RenameStmt");
		if (jis(v, "renameType", "OBJECT_TYPE") &&
		    jis(v, "newname", name))
			return k;
	}
	return NOWHERE;
}

/* ---- reporting -------------------------------------------------------- */

/* 1 if parse-tree rule id (or id2) reported at statement k. */
static int
said(const struct mig *mg, size_t k, const char *id, const char *id2)
{
	if (k == NOWHERE)
		return 0;
	return ferry_lint_ctx_reported(mg->ctx, id, mg->v[k].off,
	           mg->v[k].end) ||
	    (id2 != NULL &&
	        ferry_lint_ctx_reported(mg->ctx, id2, mg->v[k].off,
	            mg->v[k].end));
}

static void report(struct mig *mg, const char *id, size_t k, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

/* Reports at statement k, or without a position. */
static void
report(struct mig *mg, const char *id, size_t k, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	msg = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(msg, (size_t)n + 1, fmt, ap);
	va_end(ap);
	ferry_lint_report(mg->ctx, id, k == NOWHERE ? SIZE_MAX : mg->v[k].off,
	    "%s", msg);
	free(msg);
}

/* What a finding without a statement adds to its message. */
static const char *
unseen(size_t k)
{
	return k == NOWHERE ? " (no statement of the migration names it: a DO "
	                      "block, a function or a cascade did it)"
	                    : "";
}

/* ---- the document ----------------------------------------------------- */

/* The sub-object of obj's list key (“columns”) named name, or NULL. */
static const json_t *
sub_named(const json_t *obj, const char *key, const char *name)
{
	const json_t *arr = json_object_get(obj, key), *o;
	size_t i;

	for (i = 0; i < json_array_size(arr); i++) {
		o = json_array_get(arr, i);
		if (name != NULL && str_of(o, "name") != NULL &&
		    strcmp(str_of(o, "name"), name) == 0)
			return o;
	}
	return NULL;
}

static int
is_kind(const struct ferry_schema_change *c, const char *key)
{
	return c->kind != NULL && strcmp(c->kind->key, key) == 0;
}

static int
not_valid(const char *def)
{
	size_t n = def != NULL ? strlen(def) : 0, k = strlen(" NOT VALID");

	return n >= k && strcmp(def + n - k, " NOT VALID") == 0;
}

/* "x" when schema is the connection's own, else "s"."x" (free() it). */
static char *
display(const struct mig *mg, const char *schema, const char *name)
{
	if (schema == NULL || strcmp(schema, mg->home) == 0)
		return xasprintf("\"%s\"", name);
	return xasprintf("\"%s\".\"%s\"", schema, name);
}

/*
 * 1 if detail d of table change c is one a partitioned table of the same
 * diff has too: the partition's change cascaded from its parent's, which
 * is reported instead.
 */
static int
cascaded(const struct mig *mg, const struct ferry_schema_change *c,
    const struct ferry_schema_detail *d)
{
	const struct ferry_schema_change *p;
	const struct ferry_schema_detail *e;
	size_t i, j, n = ferry_schema_diff_count(mg->st->diff);

	if (!json_is_string(json_object_get(c->new_json, "partition_of")))
		return 0;
	for (i = 0; i < n; i++) {
		p = ferry_schema_diff_change(mg->st->diff, i);
		if (p == c || !is_kind(p, "tables") ||
		    p->action != FERRY_SCHEMA_CHANGED ||
		    !json_is_string(
		        json_object_get(p->new_json, "partition_key")))
			continue;
		for (j = 0; j < p->ndetails; j++) {
			e = &p->details[j];
			if (e->action != d->action || e->sub == NULL ||
			    d->sub == NULL || strcmp(e->sub, d->sub) != 0 ||
			    (e->attr == NULL) != (d->attr == NULL) ||
			    (e->attr != NULL && strcmp(e->attr, d->attr) != 0))
				continue;
			/* A partition's indexes and constraints have names
			   of their own. */
			if (strcmp(d->sub, "column") != 0 ||
			    (e->sub_name != NULL && d->sub_name != NULL &&
			        strcmp(e->sub_name, d->sub_name) == 0))
				return 1;
		}
	}
	return 0;
}

/*
 * 1 if the diff removes a table or a column: then a definition that names
 * it (an index's, a foreign key's) may have changed only because it was
 * renamed.
 */
static int
renames_possible(const struct mig *mg)
{
	const struct ferry_schema_change *c;
	size_t i, j, n = ferry_schema_diff_count(mg->st->diff);

	for (i = 0; i < n; i++) {
		c = ferry_schema_diff_change(mg->st->diff, i);
		if (!is_kind(c, "tables"))
			continue;
		if (c->action == FERRY_SCHEMA_REMOVED)
			return 1;
		for (j = 0; j < c->ndetails; j++)
			if (c->details[j].action == FERRY_SCHEMA_REMOVED &&
			    c->details[j].sub != NULL &&
			    strcmp(c->details[j].sub, "column") == 0)
				return 1;
	}
	return 0;
}

/* 1 if the columns of tables a and b have the same names and types, in
   the same order. */
static int
same_columns(const json_t *a, const json_t *b)
{
	const json_t *ca = json_object_get(a, "columns");
	const json_t *cb = json_object_get(b, "columns");
	size_t i;

	if (json_array_size(ca) == 0 ||
	    json_array_size(ca) != json_array_size(cb))
		return 0;
	for (i = 0; i < json_array_size(ca); i++)
		if (!json_equal(json_object_get(json_array_get(ca, i), "name"),
		        json_object_get(json_array_get(cb, i), "name")) ||
		    !json_equal(json_object_get(json_array_get(ca, i), "type"),
		        json_object_get(json_array_get(cb, i), "type")))
			return 0;
	return 1;
}

/*
 * If the migration renamed table change c (removed) rather than dropped
 * it, sets the new schema and name and returns 1. A RENAME or SET SCHEMA
 * in sight decides; otherwise (a DO block) a single added table with the
 * same columns is taken to be the same table.
 */
static int
table_renamed(const struct mig *mg, const struct ferry_schema_change *c,
    const char **schema, const char **name)
{
	const struct ferry_schema_change *a, *hit = NULL;
	size_t i, n = ferry_schema_diff_count(mg->st->diff), hits = 0;

	*schema = c->schema;
	*name = c->name;
	if (find_rename(mg, "OBJECT_TABLE", c->schema, c->name, NULL, name) !=
	    NOWHERE)
		return 1;
	if (find_set_schema(mg, c->schema, c->name, schema) != NOWHERE)
		return 1;
	if (find_drop(mg, "OBJECT_TABLE", c->schema, c->name) != NOWHERE)
		return 0;
	for (i = 0; i < n; i++) {
		a = ferry_schema_diff_change(mg->st->diff, i);
		if (is_kind(a, "tables") && a->action == FERRY_SCHEMA_ADDED &&
		    same_columns(c->old_json, a->new_json)) {
			hit = a;
			hits++;
		}
	}
	if (hits != 1)
		return 0;
	*schema = hit->schema;
	*name = hit->name;
	return 1;
}

/* How many columns of cols before the one named name are also in other. */
static long
slot(const json_t *cols, const json_t *other, const char *name)
{
	const char *s;
	size_t i;
	long n = 0;

	for (i = 0; i < json_array_size(cols); i++) {
		s = str_of(json_array_get(cols, i), "name");
		if (strcmp(s, name) == 0)
			return n;
		if (sub_named(other, "columns", s) != NULL)
			n++;
	}
	return -1;
}

/*
 * If the migration renamed the column that detail d of table change c
 * removed, rather than dropped it, returns the new name. A RENAME or DROP
 * COLUMN in sight decides; otherwise (a DO block) an added column of the
 * same type in the same place among the columns both documents have is
 * taken to be the same column.
 */
static const char *
column_renamed(const struct mig *mg, const struct ferry_schema_change *c,
    const struct ferry_schema_detail *d)
{
	const struct ferry_schema_detail *e;
	const char *to = NULL;
	size_t i;
	long at;

	if (find_rename(mg, "OBJECT_COLUMN", c->schema, c->name, d->sub_name,
	        &to) != NOWHERE)
		return to;
	if (find_cmd(mg, c->schema, c->name, "AT_DropColumn", d->sub_name) !=
	    NOWHERE)
		return NULL;
	at = slot(json_object_get(c->old_json, "columns"), c->new_json,
	    d->sub_name);
	for (i = 0; i < c->ndetails; i++) {
		e = &c->details[i];
		if (e->action != FERRY_SCHEMA_ADDED || e->sub == NULL ||
		    strcmp(e->sub, "column") != 0)
			continue;
		if (json_equal(json_object_get(e->new_json, "type"),
		        json_object_get(d->old_json, "type")) &&
		    slot(json_object_get(c->new_json, "columns"), c->old_json,
		        e->sub_name) == at)
			return e->sub_name;
	}
	return NULL;
}

/*
 * 1 if s, SQL text, names name as an identifier: a word (folded to lower
 * case) or a quoted identifier, outside comments and string literals.
 * Dollar quotes are looked into, since function bodies are in them.
 */
static int
mentions(const char *s, const char *name)
{
	size_t len = strlen(s), n = strlen(name), i = 0, j, k;
	char *id;
	int hit;

	while (i < len) {
		j = ferry_sql_comment_end(s, i, len);
		if (j > i) {
			i = j;
		} else if (s[i] == '\'') {
			/* A literal; '' is a quote inside it. */
			for (i++; i < len; i++) {
				if (s[i] != '\'')
					continue;
				if (i + 1 < len && s[i + 1] == '\'')
					i++;
				else
					break;
			}
			i++;
		} else if (s[i] == '"') {
			id = xmalloc(len - i);
			for (k = 0, i++; i < len; i++) {
				if (s[i] == '"' && i + 1 < len &&
				    s[i + 1] == '"')
					i++;
				else if (s[i] == '"')
					break;
				id[k++] = s[i];
			}
			id[k] = '\0';
			i++;
			hit = strcmp(id, name) == 0;
			free(id);
			if (hit)
				return 1;
		} else if (ferry_sql_is_word_char(s[i]) &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '$') {
			for (j = i; j < len && ferry_sql_is_word_char(s[j]);
			     j++)
				;
			if (j - i == n) {
				for (k = 0; k < n; k++) {
					char c = s[i + k];
					if (c >= 'A' && c <= 'Z')
						c = (char)(c - 'A' + 'a');
					if (c != name[k])
						break;
				}
				if (k == n)
					return 1;
			}
			i = j;
		} else {
			i++;
		}
	}
	return 0;
}

/*
 * Reports the functions of the schema after the migration that still
 * name what (described as "table \"T\"") was renamed from, old: a table,
 * or a column when table, its table's name, is given. to describes the
 * new name.
 */
static void
renamed_refs(struct mig *mg, size_t k, const char *what, const char *to,
    const char *old, const char *table)
{
	const json_t *fns = json_object_get(mg->st->after, "functions"), *f;
	struct ferry_buf names;
	const char *def;
	char *fn;
	size_t i, nf = 0;

	ferry_buf_init(&names, (size_t)1 << 16);
	for (i = 0; i < json_array_size(fns); i++) {
		f = json_array_get(fns, i);
		def = str_of(f, "definition");
		if (def == NULL || !mentions(def, old) ||
		    (table != NULL && !mentions(def, table)))
			continue;
		if (nf++ < MAX_NAMED) {
			fn =
			    display(mg, str_of(f, "schema"), str_of(f, "name"));
			ferry_buf_addf(&names, "%s%s", nf > 1 ? ", " : "", fn);
			free(fn);
		}
	}
	if (nf > MAX_NAMED)
		ferry_buf_addf(&names, " and %zu more", nf - MAX_NAMED);
	if (nf > 0)
		report(mg, R_RENAMED, k,
		    "renames %s to %s, but function%s %s still name%s "
		    "\"%s\"%s",
		    what, to, nf > 1 ? "s" : "", ferry_buf_str(&names),
		    nf > 1 ? "" : "s", old, unseen(k));
	ferry_buf_release(&names);
}

/* 1 if the schema after the migration has a relation schema.name. */
static int
relation_exists(const struct mig *mg, const char *schema, const char *name)
{
	static const char *const keys[] = { "tables", "views",
		"materialized_views" };
	const json_t *arr, *o;
	size_t i, j;

	for (i = 0; i < FERRY_NELEM(keys); i++) {
		arr = json_object_get(mg->st->after, keys[i]);
		for (j = 0; j < json_array_size(arr); j++) {
			o = json_array_get(arr, j);
			if (strcmp(str_of(o, "schema"), schema) == 0 &&
			    strcmp(str_of(o, "name"), name) == 0)
				return 1;
		}
	}
	return 0;
}

/* ---- the rules -------------------------------------------------------- */

static void
table_removed(struct mig *mg, const struct ferry_schema_change *c)
{
	const struct ferry_schema_change *p;
	const char *schema, *name;
	char *what, *to;
	size_t k, i, n = ferry_schema_diff_count(mg->st->diff);

	if (json_is_string(json_object_get(c->old_json, "partition_of")))
		for (i = 0; i < n; i++) {
			p = ferry_schema_diff_change(mg->st->diff, i);
			if (is_kind(p, "tables") &&
			    p->action == FERRY_SCHEMA_REMOVED &&
			    json_is_string(
			        json_object_get(p->old_json, "partition_key")))
				return; /* dropped with its parent */
		}
	if (table_renamed(mg, c, &schema, &name)) {
		k = find_rename(mg, "OBJECT_TABLE", c->schema, c->name, NULL,
		    &name);
		if (k == NOWHERE)
			k = find_set_schema(mg, c->schema, c->name, &schema);
		/* A view under the old name keeps old code working. */
		if (relation_exists(mg, c->schema, c->name))
			return;
		what = xasprintf("table %s", c->display);
		to = strcmp(schema, c->schema) == 0
		    ? xasprintf("\"%s\"", name)
		    : xasprintf("schema \"%s\"", schema);
		renamed_refs(mg, k, what, to, c->name, NULL);
		free(what);
		free(to);
		return;
	}
	k = find_drop(mg, "OBJECT_TABLE", c->schema, c->name);
	if (k == NOWHERE)
		k = find_schema_cascade(mg, c->schema);
	if (said(mg, k, P_DROP_TABLE, NULL))
		return;
	if (k != NOWHERE && stmt_of(mg, k, "DropStmt") != NULL &&
	    find_drop(mg, "OBJECT_TABLE", c->schema, c->name) == k)
		report(mg, R_TABLE_DROPPED, k, "drops table %s", c->display);
	else
		report(mg, R_TABLE_DROPPED, k,
		    "table %s is gone after this migration%s", c->display,
		    k != NOWHERE ? ", dropped by this statement's CASCADE"
		                 : unseen(k));
}

static char *type_name(const char *t);

/* The DROP TYPE or DROP DOMAIN ... CASCADE of the type a column had. */
static size_t
find_type_cascade(const struct mig *mg, const char *coltype)
{
	char *tn;
	size_t k;

	if (coltype == NULL)
		return NOWHERE;
	tn = type_name(coltype);
	k = find_drop(mg, "OBJECT_DOMAIN", NULL, tn);
	if (k == NOWHERE)
		k = find_drop(mg, "OBJECT_TYPE", NULL, tn);
	free(tn);
	if (k != NOWHERE &&
	    !jis(stmt_of(mg, k, "DropStmt"), "behavior", "DROP_CASCADE"))
		k = NOWHERE;
	return k;
}

static void
column_removed(struct mig *mg, const struct ferry_schema_change *c,
    const struct ferry_schema_detail *d)
{
	const char *to;
	char *what, *tos;
	size_t k;

	if (cascaded(mg, c, d))
		return;
	to = column_renamed(mg, c, d);
	if (to != NULL) {
		k = find_rename(mg, "OBJECT_COLUMN", c->schema, c->name,
		    d->sub_name, &to);
		what = xasprintf("column %s.\"%s\"", c->display, d->sub_name);
		tos = xasprintf("\"%s\"", to);
		renamed_refs(mg, k, what, tos, d->sub_name, c->name);
		free(what);
		free(tos);
		return;
	}
	k = find_cmd(mg, c->schema, c->name, "AT_DropColumn", d->sub_name);
	if (k != NOWHERE) {
		if (!said(mg, k, P_DROP_COLUMN, NULL))
			report(mg, R_COLUMN_DROPPED, k,
			    "drops column %s.\"%s\"", c->display, d->sub_name);
		return;
	}
	k = find_type_cascade(mg, str_of(d->old_json, "type"));
	report(mg, R_COLUMN_DROPPED, k,
	    "column %s.\"%s\" is gone after this migration%s", c->display,
	    d->sub_name,
	    k != NOWHERE ? ", dropped by this statement's CASCADE" : unseen(k));
}

/* The unquoted last name of a type as format_type prints it. */
static char *
type_name(const char *t)
{
	const char *p, *last = t;
	struct ferry_buf b;
	int q = 0;

	for (p = t; *p != '\0'; p++) {
		if (*p == '"')
			q = !q;
		else if (*p == '.' && !q)
			last = p + 1;
	}
	ferry_buf_init(&b, (size_t)-1);
	for (p = last; *p != '\0' && *p != '['; p++) {
		if (*p == '"' && p[1] == '"')
			ferry_buf_add(&b, p++, 1);
		else if (*p != '"')
			ferry_buf_add(&b, p, 1);
	}
	return ferry_buf_detach(&b, NULL);
}

/*
 * 1 if from and to name one type that the migration renamed: an enum,
 * domain or composite type removed under from's name and added under to's,
 * the same but for its name. Its columns keep their data.
 */
static int
type_renamed(const struct mig *mg, const char *from, const char *to)
{
	const struct ferry_schema_change *a, *b;
	char *fn = type_name(from), *tn = type_name(to);
	size_t i, j, n = ferry_schema_diff_count(mg->st->diff);
	json_t *copy;
	int same = 0;

	for (i = 0; i < n && !same; i++) {
		a = ferry_schema_diff_change(mg->st->diff, i);
		if (a->action != FERRY_SCHEMA_REMOVED || a->kind == NULL ||
		    strcmp(a->name, fn) != 0 ||
		    !(is_kind(a, "enums") || is_kind(a, "domains") ||
		        is_kind(a, "composite_types")))
			continue;
		for (j = 0; j < n && !same; j++) {
			b = ferry_schema_diff_change(mg->st->diff, j);
			if (b->action != FERRY_SCHEMA_ADDED ||
			    b->kind != a->kind || strcmp(b->name, tn) != 0)
				continue;
			copy = json_deep_copy(a->old_json);
			json_object_set(copy, "name",
			    json_object_get(b->new_json, "name"));
			json_object_set(copy, "schema",
			    json_object_get(b->new_json, "schema"));
			same = json_equal(copy, b->new_json);
			json_decref(copy);
		}
	}
	free(fn);
	free(tn);
	return same;
}

static void
column_type(struct mig *mg, const struct ferry_schema_change *c,
    const struct ferry_schema_detail *d)
{
	enum ferry_lint_type_change ch;
	size_t k;

	if (d->old_value == NULL || d->new_value == NULL || cascaded(mg, c, d))
		return;
	ch = ferry_lint_type_change(d->old_value, d->new_value);
	if (ch == FERRY_LINT_TYPE_SAFE ||
	    (ch == FERRY_LINT_TYPE_REWRITE &&
	        type_renamed(mg, d->old_value, d->new_value)))
		return;
	k = find_cmd(mg, c->schema, c->name, "AT_AlterColumnType", d->sub_name);
	if (ch == FERRY_LINT_TYPE_NARROW && !said(mg, k, P_TYPE_NARROW, NULL))
		report(mg, R_NARROW, k, "narrows %s.\"%s\" from %s to %s%s",
		    c->display, d->sub_name, d->old_value, d->new_value,
		    unseen(k));
	else if (ch == FERRY_LINT_TYPE_REWRITE &&
	    !said(mg, k, P_TYPE_CHANGE, P_TYPE_NARROW))
		report(mg, R_REWRITE, k,
		    "changes %s.\"%s\" from %s to %s, which rewrites the "
		    "table%s",
		    c->display, d->sub_name, d->old_value, d->new_value,
		    unseen(k));
}

/*
 * 1 if constraint definition def is a validated CHECK (col IS NOT NULL),
 * read with the parser.
 */
static int
notnull_check(const char *def, const char *col)
{
	PgQueryParseResult r;
	json_t *root = NULL, *nt, *fields;
	char *sql;
	int yes = 0;

	if (def == NULL || not_valid(def) ||
	    strncmp(def, "CHECK", strlen("CHECK")) != 0)
		return 0;
	sql = xasprintf("ALTER TABLE t ADD %s", def);
	r = pg_query_parse(sql);
	if (r.error == NULL && r.parse_tree != NULL)
		root = ferry_sql_load_json(r.parse_tree);
	nt = jget(json_array_get(jget(root, "stmts"), 0), "stmt");
	nt = jget(json_array_get(jget(jget(nt, "AlterTableStmt"), "cmds"), 0),
	    "AlterTableCmd");
	nt = jget(jget(jget(jget(nt, "def"), "Constraint"), "raw_expr"),
	    "NullTest");
	fields = jget(jget(jget(nt, "arg"), "ColumnRef"), "fields");
	if (jis(nt, "nulltesttype", "IS_NOT_NULL") &&
	    json_array_size(fields) == 1) {
		const char *s = jsval(json_array_get(fields, 0));
		yes = s != NULL && strcmp(s, col) == 0;
	}
	json_decref(root);
	pg_query_free_parse_result(r);
	free(sql);
	return yes;
}

static void
not_null_added(struct mig *mg, const struct ferry_schema_change *c,
    const struct ferry_schema_detail *d)
{
	const json_t *col = sub_named(c->new_json, "columns", d->sub_name);
	const json_t *cons = json_object_get(c->old_json, "constraints");
	json_t *node;
	size_t i, k;

	if (d->new_value == NULL || col == NULL || cascaded(mg, c, d))
		return;
	if (str_of(col, "default") != NULL || str_of(col, "identity") != NULL ||
	    str_of(col, "generated") != NULL)
		return;
	/* With a validated check, writers that leave the column out failed
	   already, and SET NOT NULL skips its scan. */
	for (i = 0; i < json_array_size(cons); i++)
		if (notnull_check(str_of(json_array_get(cons, i), "definition"),
		        d->sub_name))
			return;
	k = find_cmd(mg, c->schema, c->name, "AT_SetNotNull", d->sub_name);
	if (k == NOWHERE)
		k = find_constraint(mg, c->schema, c->name, "CONSTR_PRIMARY",
		    NULL, &node);
	if (!said(mg, k, P_SET_NOT_NULL, NULL))
		report(mg, R_NOT_NULL, k,
		    "makes %s.\"%s\" NOT NULL; it has no default%s", c->display,
		    d->sub_name, unseen(k));
}

/* 1 if change c removed an index or constraint (sub) that has o's shape:
   o is that one renamed. */
static int
renamed_sub(const struct ferry_schema_change *c, const char *sub,
    const json_t *o, char *(*shape)(const json_t *))
{
	const struct ferry_schema_detail *e;
	char *a, *b;
	size_t i;
	int same = 0;

	a = shape(o);
	for (i = 0; i < c->ndetails && a != NULL && !same; i++) {
		e = &c->details[i];
		if (e->action != FERRY_SCHEMA_REMOVED || e->sub == NULL ||
		    strcmp(e->sub, sub) != 0 || e->old_json == NULL)
			continue;
		b = shape(e->old_json);
		same = b != NULL && strcmp(a, b) == 0;
		free(b);
	}
	free(a);
	return same;
}

/* A constraint but for its name: type and definition. */
static char *
constraint_shape(const json_t *o)
{
	if (str_of(o, "type") == NULL || str_of(o, "definition") == NULL)
		return NULL;
	return xasprintf("%s\n%s", str_of(o, "type"), str_of(o, "definition"));
}

/* Drops what differs between two spellings of one statement. */
static void
strip_tree(json_t *j)
{
	static const char *const keys[] = { "location", "stmt_len",
		"stmt_location", "idxname" };
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_object(j)) {
		for (i = 0; i < FERRY_NELEM(keys); i++)
			json_object_del(j, keys[i]);
		json_object_foreach(j, key, v)
		{
			strip_tree(v);
		}
	} else if (json_is_array(j)) {
		for (i = 0; i < json_array_size(j); i++)
			strip_tree(json_array_get(j, i));
	}
}

/* An index but for its name: its definition's parse tree, unnamed. */
static char *
index_shape(const json_t *o)
{
	const char *def = str_of(o, "definition");
	PgQueryParseResult r;
	json_t *root = NULL;
	char *s = NULL;

	if (def == NULL)
		return NULL;
	r = pg_query_parse(def);
	if (r.error == NULL && r.parse_tree != NULL)
		root = ferry_sql_load_json(r.parse_tree);
	if (root != NULL) {
		strip_tree(root);
		s = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
	}
	json_decref(root);
	pg_query_free_parse_result(r);
	return s;
}

/* An index built by the migration on a table that existed before. */
static void
index_built(struct mig *mg, const struct ferry_schema_change *c,
    const struct ferry_schema_detail *d)
{
	const char *to;
	json_t *node;
	size_t k;

	if (cascaded(mg, c, d))
		return;
	if (d->action == FERRY_SCHEMA_ADDED &&
	    (find_rename(mg, "OBJECT_INDEX", c->schema, d->sub_name, NULL,
	         &to) != NOWHERE ||
	        renamed_sub(c, "index", d->new_json, index_shape)))
		return;
	/* Only a top-level CREATE INDEX CONCURRENTLY builds concurrently:
	   a function or a DO block cannot run one. */
	k = find_index(mg, c->schema, c->name, d->sub_name, &node);
	if (ferry_sql_jtrue(node, "concurrent") || said(mg, k, P_INDEX, NULL))
		return;
	if (d->action == FERRY_SCHEMA_CHANGED && k == NOWHERE &&
	    renames_possible(mg))
		return;
	report(mg, R_INDEX, k,
	    "%s index \"%s\" on %s without CONCURRENTLY; the table existed "
	    "before this migration%s",
	    d->action == FERRY_SCHEMA_ADDED ? "builds" : "rebuilds",
	    d->sub_name, c->display, unseen(k));
}

/* A constraint added (or changed) by the migration on a table that
   existed before. */
static void
constraint_added(struct mig *mg, const struct ferry_schema_change *c,
    const struct ferry_schema_detail *d)
{
	const json_t *o = d->action == FERRY_SCHEMA_ADDED
	    ? d->new_json
	    : sub_named(c->new_json, "constraints", d->sub_name);
	const char *type = str_of(o, "type"), *def = str_of(o, "definition");
	const struct ferry_schema_detail *e;
	const char *contype, *id, *pid;
	json_t *node;
	size_t i, k;
	int idx = 0;

	if (type == NULL || def == NULL || cascaded(mg, c, d))
		return;
	if (d->action == FERRY_SCHEMA_ADDED &&
	    renamed_sub(c, "constraint", o, constraint_shape))
		return;
	/* VALIDATE CONSTRAINT: the second step of the safe pattern. */
	if (d->action == FERRY_SCHEMA_CHANGED && not_valid(d->old_value) &&
	    strncmp(d->old_value, d->new_value, strlen(d->new_value)) == 0)
		return;
	if (strcmp(type, "foreign key") == 0) {
		contype = "CONSTR_FOREIGN";
		id = R_FOREIGN_KEY;
		pid = P_FOREIGN_KEY;
	} else if (strcmp(type, "check") == 0) {
		contype = "CONSTR_CHECK";
		id = R_CHECK;
		pid = P_CHECK;
	} else {
		contype = strcmp(type, "primary key") == 0 ? "CONSTR_PRIMARY"
		    : strcmp(type, "unique") == 0          ? "CONSTR_UNIQUE"
		                                           : "CONSTR_EXCLUSION";
		id = R_INDEX;
		pid = P_INDEX;
		idx = 1;
	}
	if (!idx && not_valid(def))
		return;
	k = find_constraint(mg, c->schema, c->name, contype, d->sub_name,
	    &node);
	if (d->action == FERRY_SCHEMA_CHANGED && k == NOWHERE &&
	    renames_possible(mg))
		return;
	if (idx) {
		/* USING INDEX takes an index built before, maybe
		   concurrently; it leaves the table's indexes. */
		if (ferry_sql_jstr(node, "indexname") != NULL)
			return;
		for (i = 0; i < c->ndetails && k == NOWHERE; i++) {
			e = &c->details[i];
			if (e->action == FERRY_SCHEMA_REMOVED &&
			    e->sub != NULL && strcmp(e->sub, "index") == 0)
				return;
		}
	}
	if (said(mg, k, pid, NULL))
		return;
	if (idx)
		report(mg, id, k,
		    "adds %s constraint \"%s\" to %s, building its index "
		    "under an ACCESS EXCLUSIVE lock; the table existed before "
		    "this migration%s",
		    type, d->sub_name, c->display, unseen(k));
	else
		report(mg, id, k,
		    "%s %s constraint \"%s\" to %s without NOT VALID; the "
		    "table existed before this migration%s",
		    d->action == FERRY_SCHEMA_ADDED ? "adds" : "re-adds", type,
		    d->sub_name, c->display, unseen(k));
}

static void
table_changed(struct mig *mg, const struct ferry_schema_change *c)
{
	const struct ferry_schema_detail *d;
	size_t i;

	for (i = 0; i < c->ndetails; i++) {
		d = &c->details[i];
		if (d->sub == NULL)
			continue;
		if (strcmp(d->sub, "column") == 0) {
			if (d->action == FERRY_SCHEMA_REMOVED)
				column_removed(mg, c, d);
			else if (d->action == FERRY_SCHEMA_CHANGED &&
			    d->attr != NULL && strcmp(d->attr, "type") == 0)
				column_type(mg, c, d);
			else if (d->action == FERRY_SCHEMA_CHANGED &&
			    d->attr != NULL && strcmp(d->attr, "not_null") == 0)
				not_null_added(mg, c, d);
		} else if (strcmp(d->sub, "index") == 0) {
			if (d->action == FERRY_SCHEMA_ADDED ||
			    (d->action == FERRY_SCHEMA_CHANGED &&
			        d->attr != NULL &&
			        strcmp(d->attr, "definition") == 0))
				index_built(mg, c, d);
		} else if (strcmp(d->sub, "constraint") == 0) {
			if (d->action == FERRY_SCHEMA_ADDED ||
			    (d->action == FERRY_SCHEMA_CHANGED &&
			        d->attr != NULL &&
			        strcmp(d->attr, "definition") == 0))
				constraint_added(mg, c, d);
		}
	}
}

static void
enum_changed(struct mig *mg, const struct ferry_schema_change *c)
{
	const struct ferry_schema_detail *d;
	size_t i, k;

	for (i = 0; i < c->ndetails; i++) {
		d = &c->details[i];
		if (d->attr == NULL || strcmp(d->attr, "values") != 0)
			continue;
		if (d->action == FERRY_SCHEMA_REMOVED) {
			k = find_enum(mg, c->schema, c->name, d->old_value);
			report(mg, R_ENUM_REMOVED, k,
			    "enum %s loses value '%s'%s", c->display,
			    d->old_value, unseen(k));
		} else if (d->action == FERRY_SCHEMA_CHANGED) {
			k = find_enum(mg, c->schema, c->name, NULL);
			report(mg, R_ENUM_ORDER, k,
			    "enum %s: values reordered from %s to %s%s",
			    c->display, d->old_value, d->new_value, unseen(k));
		}
	}
}

/* The check: the rules on the recorded diff of one migration. */
static int
shadow_check(struct ferry_lint_ctx *ctx, void *arg, struct ferry_err *err)
{
	struct ferry_lint_shadow *ls = arg;
	const struct ferry_migration *m = ferry_lint_ctx_migration(ctx);
	const struct ferry_schema_change *c;
	size_t i = ferry_lint_ctx_index(ctx), n;
	struct mig mg;

	if (ls->n == 0)
		return 0;
	if (i >= ls->n || strcmp(ls->steps[i].name, m->name) != 0)
		return ferry_errf(err, FERRY_EOPER,
		    "the shadow replay does not match the migrations: "
		    "'%s' was not replayed as migration %zu",
		    m->name, i + 1);
	memset(&mg, 0, sizeof(mg));
	mg.ctx = ctx;
	mg.st = &ls->steps[i];
	mg.home = str_of(mg.st->before, "schema");
	mig_load(&mg, m);
	n = ferry_schema_diff_count(mg.st->diff);
	for (i = 0; i < n; i++) {
		c = ferry_schema_diff_change(mg.st->diff, i);
		if (is_kind(c, "tables") && c->action == FERRY_SCHEMA_REMOVED)
			table_removed(&mg, c);
		else if (is_kind(c, "tables") &&
		    c->action == FERRY_SCHEMA_CHANGED)
			table_changed(&mg, c);
		else if (is_kind(c, "enums") &&
		    c->action == FERRY_SCHEMA_CHANGED)
			enum_changed(&mg, c);
	}
	mig_release(&mg);
	return 0;
}

void
ferry_lint_shadow_attach(struct ferry_lint_shadow *ls, struct ferry_lint *l)
{
	ferry_lint_add_check(l, shadow_rules, FERRY_NELEM(shadow_rules),
	    shadow_check, ls);
}
