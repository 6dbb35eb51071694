/*
 * lint.c -- the lint run, its lint-ignore header, and the parse-tree rules.
 *
 * The run reads each migration's header, parses it with the engine's
 * parser (sqlscript), which leaves lint-ignore to lint, so that its
 * directive check and positions apply, then calls every check. The
 * built-in check splits the file with libpg_query, parses each statement
 * that could matter to JSON and walks it with jansson, as sqlscript does,
 * keeping a small model of the folder's tables (columns with their types,
 * NOT VALID constraints) from one migration to the next.
 */
#include "lint.h"

#include <assert.h>
#include <jansson.h>
#include <limits.h>
#include <pg_query.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqlscript.h"
#include "sqltext.h"
#include "util.h"

/* PostgreSQL refuses query strings of 1 GiB or more (MaxAllocSize). */
#define MAX_PARSE_LEN ((size_t)0x3fffffff)

/* A table's or column's origin when no migration of the folder made it. */
#define BEFORE SIZE_MAX

#define IGNORE_KEY "ferry:lint-ignore"

/* Rule ids, so that a typo is a compile error rather than an assert. */
#define R_DROP_TABLE "FERRY-L001"
#define R_DROP_COLUMN "FERRY-L002"
#define R_TYPE_CHANGE "FERRY-L003"
#define R_TYPE_NARROW "FERRY-L004"
#define R_INDEX "FERRY-L005"
#define R_ADD_NOT_NULL "FERRY-L006"
#define R_SET_NOT_NULL "FERRY-L007"
#define R_FOREIGN_KEY "FERRY-L008"
#define R_CHECK "FERRY-L009"
#define R_RENAME_COLUMN "FERRY-L010"
#define R_RENAME_TABLE "FERRY-L011"
#define R_CONCURRENT_TX "FERRY-L012"
#define R_UNPARSEABLE "FERRY-L090"
#define R_DIRECTIVE "FERRY-L091"
#define R_BAD_IGNORE "FERRY-L092"

static const struct ferry_lint_rule builtin_rules[] = {
	{ R_DROP_TABLE, "drop-table", FERRY_LINT_ERROR,
	    "dropping a table deletes its data for good, and the application "
	    "version still running during the rollout fails on every query "
	    "that uses it",
	    "stop using the table in one release, then drop it in a later "
	    "migration once nothing reads it (after a backup if the data may "
	    "be needed) and lint-ignore the rule there" },
	{ R_DROP_COLUMN, "drop-column", FERRY_LINT_ERROR,
	    "dropping a column deletes its data, and the application version "
	    "still running fails on queries that name it (Prisma names every "
	    "column of a model it reads)",
	    "remove the field from the application and deploy first, then "
	    "drop the column in a later migration and lint-ignore the rule "
	    "there" },
	{ R_TYPE_CHANGE, "column-type-change", FERRY_LINT_WARNING,
	    "changing a column's type rewrites the table and rebuilds its "
	    "indexes under an ACCESS EXCLUSIVE lock, blocking reads and writes "
	    "until it is done",
	    "add a column of the new type, backfill it in batches and move the "
	    "application over; or keep to changes that need no rewrite "
	    "(varchar(n) to a longer varchar or to text, numeric(p,s) to a "
	    "larger precision with the same scale)" },
	{ R_TYPE_NARROW, "column-type-narrowing", FERRY_LINT_ERROR,
	    "the new type holds fewer values than the old one: the change "
	    "fails on rows that do not fit, or rounds them, after rewriting "
	    "the table under an ACCESS EXCLUSIVE lock",
	    "check the data first; add a column of the narrower type with a "
	    "CHECK, backfill and move the application over, or keep the wider "
	    "type" },
	{ R_INDEX, "index-not-concurrent", FERRY_LINT_WARNING,
	    "CREATE INDEX without CONCURRENTLY blocks writes to the table "
	    "until "
	    "the index is built; ADD CONSTRAINT ... UNIQUE, PRIMARY KEY or "
	    "EXCLUDE builds its index under an ACCESS EXCLUSIVE lock",
	    "CREATE INDEX CONCURRENTLY, alone in a migration of its own (it "
	    "cannot run in a transaction block); for a constraint, build a "
	    "unique index concurrently, then ADD CONSTRAINT ... UNIQUE USING "
	    "INDEX" },
	{ R_ADD_NOT_NULL, "add-not-null-column", FERRY_LINT_ERROR,
	    "adding a NOT NULL column without a default fails on a table that "
	    "has rows, since they would hold NULL",
	    "add the column with a DEFAULT (a constant default needs no "
	    "rewrite since PostgreSQL 11), or add it nullable, backfill it, "
	    "and make it NOT NULL in a later migration" },
	{ R_SET_NOT_NULL, "set-not-null", FERRY_LINT_WARNING,
	    "SET NOT NULL scans the whole table for NULLs while holding an "
	    "ACCESS EXCLUSIVE lock, blocking reads and writes",
	    "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE "
	    "CONSTRAINT in a later migration, then SET NOT NULL, which skips "
	    "the scan when such a validated check exists (PostgreSQL 12+), and "
	    "drop the check" },
	{ R_FOREIGN_KEY, "foreign-key-not-valid", FERRY_LINT_WARNING,
	    "adding a foreign key checks every existing row while blocking "
	    "writes to both the table and the table it references",
	    "ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then VALIDATE "
	    "CONSTRAINT in a later migration: validating takes a lock that "
	    "lets reads and writes go on" },
	{ R_CHECK, "check-not-valid", FERRY_LINT_WARNING,
	    "adding a CHECK constraint checks every existing row while holding "
	    "an ACCESS EXCLUSIVE lock, blocking reads and writes",
	    "ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE "
	    "CONSTRAINT in a later migration: validating takes a lock that "
	    "lets reads and writes go on" },
	{ R_RENAME_COLUMN, "rename-column", FERRY_LINT_ERROR,
	    "the application version still running during the rollout keeps "
	    "using the old name and fails until it is replaced, as do views, "
	    "functions and other SQL that name the column",
	    "keep the column name and map it in the application (Prisma "
	    "@map); or expand and contract: add the new column, write both, "
	    "backfill, move reads over, and drop the old one in a later "
	    "release" },
	{ R_RENAME_TABLE, "rename-table", FERRY_LINT_ERROR,
	    "the application version still running during the rollout keeps "
	    "using the old name and fails until it is replaced, as do views, "
	    "functions and other SQL that name the table",
	    "keep the table name and map it in the application (Prisma "
	    "@@map); or move the application over to the new name first, for "
	    "example through a view under one of the names, before dropping "
	    "the other" },
	{ R_CONCURRENT_TX, "concurrently-in-transaction", FERRY_LINT_ERROR,
	    "PostgreSQL refuses CONCURRENTLY operations inside a transaction "
	    "block: the migration fails under Prisma and psql, and under Ferry "
	    "unless BEGIN and COMMIT wrap the whole file, in which case its "
	    "statements are no longer atomic as written",
	    "drop BEGIN and COMMIT and give the CONCURRENTLY statement a "
	    "migration of its own; Ferry runs it outside a transaction" },
	{ R_UNPARSEABLE, "unparseable", FERRY_LINT_WARNING,
	    "the PostgreSQL " PG_MAJORVERSION " grammar cannot parse this "
	    "migration, so no rule can check it; Ferry runs such a file as one "
	    "query, as Prisma does",
	    "fix the syntax error; if the file uses newer syntax, review it by "
	    "hand and lint-ignore the rule" },
	{ R_DIRECTIVE, "invalid-directive", FERRY_LINT_ERROR,
	    "the engine refuses to apply a migration whose ferry: header "
	    "directives are unknown or malformed",
	    "use the directives of docs/transaction-modes.md (no-transaction, "
	    "lock_timeout=, statement_timeout=) and ferry:lint-ignore" },
	{ R_BAD_IGNORE, "bad-lint-ignore", FERRY_LINT_WARNING,
	    "a lint-ignore line that names no known rule, or stands after the "
	    "first statement, silences nothing",
	    "name rules by id or name (see 'ferry lint --rules') in comment "
	    "lines before the first statement" },
};

struct check {
	const struct ferry_lint_rule *rules;
	size_t nrules;
	ferry_lint_check_fn fn;
	void *arg;
};

struct finding {
	struct ferry_lint_finding pub;
	char *migration;
	char *message;
	size_t seq; /* report order, to sort stably */
};

/* ---- the parse-tree check's model of the folder ---- */

/* A column type as written: last name component, typmods, array. */
struct ctype {
	char *name; /* NULL when unknown */
	long mod[2];
	int nmod; /* -1 when the modifiers are not plain integers */
	int array;
};

struct col {
	char *name;
	struct ctype type;
	size_t added; /* migration index, or BEFORE */
};

/* A foreign key or CHECK constraint that matters to a later statement. */
struct con {
	char *name;       /* NULL when unnamed */
	const char *rule; /* R_FOREIGN_KEY or R_CHECK */
	char *notnull;    /* CHECK (notnull IS NOT NULL): the column */
	size_t added;     /* migration index, or BEFORE */
	size_t off;       /* where it was added, in that migration */
	int validated;
};

struct table {
	char *schema;
	char *name;
	size_t created; /* migration index, or BEFORE */
	int partitioned;
	struct col *cols;
	size_t ncols, ccols;
	struct con *cons;
	size_t ncons, ccons;
};

struct pstate {
	struct table *tabs;
	size_t ntabs, ctabs;
	size_t cur;     /* index of the migration being checked */
	size_t tx_open; /* offset of an open BEGIN, or SIZE_MAX */
};

struct ferry_lint {
	struct check *checks;
	size_t nchecks, cchecks;
	struct finding *findings;
	size_t nfindings, cfindings;
	size_t nsuppressed;
	size_t seq;
	struct pstate *ps;
};

/* A report made for the migration being checked, silenced or not. */
struct mark {
	const struct ferry_lint_rule *rule;
	size_t offset;
};

struct ferry_lint_ctx {
	struct ferry_lint *l;
	const struct ferry_migration *mig;
	size_t index;
	struct ferry_script *script;
	const struct ferry_lint_rule **ignored;
	size_t nignored;
	struct mark *marks;
	size_t nmarks, cmarks;
};

/* Makes room for one more of n elements of size sz in *p. */
static void *
grow(void *p, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 8;
	return xrealloc(p, *cap * sz);
}

static char *
xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static char *
xvasprintf(const char *fmt, va_list ap)
{
	va_list ap2;
	char *s;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return xstrdup("");
	s = xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

/* ---- rules, findings, context ---- */

const char *
ferry_lint_severity_name(enum ferry_lint_severity sev)
{
	return sev == FERRY_LINT_ERROR ? "error" : "warning";
}

size_t
ferry_lint_nrules(const struct ferry_lint *l)
{
	size_t i, n = 0;

	for (i = 0; i < l->nchecks; i++)
		n += l->checks[i].nrules;
	return n;
}

const struct ferry_lint_rule *
ferry_lint_rule(const struct ferry_lint *l, size_t i)
{
	size_t k;

	for (k = 0; k < l->nchecks; k++) {
		if (i < l->checks[k].nrules)
			return &l->checks[k].rules[i];
		i -= l->checks[k].nrules;
	}
	return NULL;
}

const struct ferry_lint_rule *
ferry_lint_rule_find(const struct ferry_lint *l, const char *key)
{
	const struct ferry_lint_rule *r;
	size_t i, n = ferry_lint_nrules(l);

	for (i = 0; i < n; i++) {
		r = ferry_lint_rule(l, i);
		if (strcasecmp(r->id, key) == 0 ||
		    strcasecmp(r->name, key) == 0)
			return r;
	}
	return NULL;
}

void
ferry_lint_add_check(struct ferry_lint *l, const struct ferry_lint_rule *rules,
    size_t nrules, ferry_lint_check_fn fn, void *arg)
{
	struct check *c;
	size_t i;

	for (i = 0; i < nrules; i++) {
		/* Two rules answering to one name would make lint-ignore
		   ambiguous: a bug in the caller. */
		assert(ferry_lint_rule_find(l, rules[i].id) == NULL);
		assert(ferry_lint_rule_find(l, rules[i].name) == NULL);
	}
	l->checks = grow(l->checks, &l->cchecks, l->nchecks, sizeof(*c));
	c = &l->checks[l->nchecks++];
	c->rules = rules;
	c->nrules = nrules;
	c->fn = fn;
	c->arg = arg;
}

const struct ferry_migration *
ferry_lint_ctx_migration(const struct ferry_lint_ctx *ctx)
{
	return ctx->mig;
}

size_t
ferry_lint_ctx_index(const struct ferry_lint_ctx *ctx)
{
	return ctx->index;
}

const struct ferry_script *
ferry_lint_ctx_script(const struct ferry_lint_ctx *ctx)
{
	return ctx->script;
}

static void vreport(struct ferry_lint_ctx *ctx, const char *id, size_t offset,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void
vreport(struct ferry_lint_ctx *ctx, const char *id, size_t offset,
    const char *fmt, va_list ap)
{
	struct ferry_lint *l = ctx->l;
	const struct ferry_lint_rule *r = NULL;
	struct finding *f;
	size_t i, n = ferry_lint_nrules(l);

	for (i = 0; i < n && r == NULL; i++)
		if (strcmp(ferry_lint_rule(l, i)->id, id) == 0)
			r = ferry_lint_rule(l, i);
	assert(r != NULL);
	ctx->marks =
	    grow(ctx->marks, &ctx->cmarks, ctx->nmarks, sizeof(*ctx->marks));
	ctx->marks[ctx->nmarks].rule = r;
	ctx->marks[ctx->nmarks++].offset = offset;
	for (i = 0; i < ctx->nignored; i++) {
		if (ctx->ignored[i] == r) {
			l->nsuppressed++;
			return;
		}
	}
	l->findings =
	    grow(l->findings, &l->cfindings, l->nfindings, sizeof(*f));
	f = &l->findings[l->nfindings++];
	memset(f, 0, sizeof(*f));
	f->migration = xstrdup(ctx->mig->name);
	f->message = xvasprintf(fmt, ap);
	f->seq = l->seq++;
	f->pub.rule = r;
	f->pub.migration = f->migration;
	f->pub.message = f->message;
	if (offset != SIZE_MAX && ctx->script != NULL)
		ferry_script_line_col(ctx->script, offset, &f->pub.line,
		    &f->pub.col);
}

void
ferry_lint_report(struct ferry_lint_ctx *ctx, const char *id, size_t offset,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(ctx, id, offset, fmt, ap);
	va_end(ap);
}

int
ferry_lint_ctx_reported(const struct ferry_lint_ctx *ctx, const char *id,
    size_t start, size_t end)
{
	size_t i;

	for (i = 0; i < ctx->nmarks; i++)
		if (strcasecmp(ctx->marks[i].rule->id, id) == 0 &&
		    ctx->marks[i].offset >= start && ctx->marks[i].offset < end)
			return 1;
	return 0;
}

size_t
ferry_lint_nfindings(const struct ferry_lint *l)
{
	return l->nfindings;
}

const struct ferry_lint_finding *
ferry_lint_finding(const struct ferry_lint *l, size_t i)
{
	return i < l->nfindings ? &l->findings[i].pub : NULL;
}

size_t
ferry_lint_count(const struct ferry_lint *l, enum ferry_lint_severity sev)
{
	size_t i, n = 0;

	for (i = 0; i < l->nfindings; i++)
		if (l->findings[i].pub.rule->severity == sev)
			n++;
	return n;
}

size_t
ferry_lint_nsuppressed(const struct ferry_lint *l)
{
	return l->nsuppressed;
}

/* ---- the lint-ignore header ---- */

/*
 * Steps through the comments before the first statement as sqlscript
 * reads directives: *i is where to look next; returns 1 with [*cs, *ce)
 * set to the next "--" comment's text after the dashes, or 0 at the first
 * statement, leaving *i there.
 */
static int
header_next(const char *t, size_t len, size_t *i, size_t *cs, size_t *ce)
{
	size_t j;

	for (;;) {
		while (*i < len && ferry_sql_is_space(t[*i]))
			(*i)++;
		j = ferry_sql_comment_end(t, *i, len);
		if (j == *i)
			return 0;
		if (t[*i] == '-') {
			*cs = *i + 2;
			*ce = j;
			*i = j;
			return 1;
		}
		*i = j;
	}
}

/* If comment text t[cs, ce) is a lint-ignore line, returns where its rule
   list starts, else 0. */
static size_t
ignore_args(const char *t, size_t cs, size_t ce)
{
	size_t k = sizeof(IGNORE_KEY) - 1;

	while (cs < ce && ferry_sql_is_space(t[cs]))
		cs++;
	if (ce - cs < k || memcmp(t + cs, IGNORE_KEY, k) != 0)
		return 0;
	if (cs + k < ce && !ferry_sql_is_space(t[cs + k]))
		return 0; /* ferry:lint-ignored and the like */
	return cs + k;
}

static size_t
header_start(const char *t, size_t len)
{
	return len >= 3 && memcmp(t, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

/* Blanks every header comment, for a second try after a bad directive. */
static void
mask_header(char *t, size_t len)
{
	size_t i = header_start(t, len), cs, ce;

	while (header_next(t, len, &i, &cs, &ce))
		memset(t + cs - 2, ' ', ce - cs + 2);
}

/* Adds one lint-ignore argument t[s, e) to the context's ignored rules. */
static void
ignore_rule(struct ferry_lint_ctx *ctx, const char *t, size_t s, size_t e)
{
	const struct ferry_lint_rule *r;
	char *key = xstrndup(t + s, e - s);
	size_t n = ferry_lint_nrules(ctx->l), i;

	r = ferry_lint_rule_find(ctx->l, key);
	if (r == NULL) {
		ferry_lint_report(ctx, R_BAD_IGNORE, s,
		    "lint-ignore names unknown rule '%s'", key);
	} else {
		if (ctx->ignored == NULL)
			ctx->ignored = xcalloc(n, sizeof(*ctx->ignored));
		for (i = 0; i < ctx->nignored && ctx->ignored[i] != r; i++)
			;
		if (i == ctx->nignored)
			ctx->ignored[ctx->nignored++] = r;
	}
	free(key);
}

/*
 * Reads the lint-ignore lines of the header into ctx, and warns about one
 * that names nothing or stands after the first statement.
 */
static void
read_ignores(struct ferry_lint_ctx *ctx)
{
	const char *t = ctx->mig->sql, *p;
	size_t len = ctx->mig->sql_len, i = header_start(t, len), cs, ce, a;
	size_t s, named, q;

	while (header_next(t, len, &i, &cs, &ce)) {
		a = ignore_args(t, cs, ce);
		if (a == 0)
			continue;
		named = 0;
		while (a < ce) {
			while (
			    a < ce && (ferry_sql_is_space(t[a]) || t[a] == ','))
				a++;
			if (a + 1 < ce && t[a] == '-' && t[a + 1] == '-')
				break; /* the reason */
			for (s = a;
			     a < ce && !ferry_sql_is_space(t[a]) && t[a] != ',';
			     a++)
				;
			if (a > s) {
				ignore_rule(ctx, t, s, a);
				named++;
			}
		}
		if (named == 0)
			ferry_lint_report(ctx, R_BAD_IGNORE, cs - 2,
			    "lint-ignore names no rule");
	}
	/* i is the first statement: anything later is too late. */
	while (i < len) {
		p = memchr(t + i, IGNORE_KEY[0], len - i);
		if (p == NULL)
			break;
		q = (size_t)(p - t);
		i = q + 1;
		if (len - q < sizeof(IGNORE_KEY) - 1 ||
		    memcmp(p, IGNORE_KEY, sizeof(IGNORE_KEY) - 1) != 0)
			continue;
		while (q > 0 && (t[q - 1] == ' ' || t[q - 1] == '\t'))
			q--;
		if (q >= 2 && t[q - 1] == '-' && t[q - 2] == '-')
			ferry_lint_report(ctx, R_BAD_IGNORE, q - 2,
			    "lint-ignore after the first statement has no "
			    "effect: move it before the first statement");
	}
}

/* ---- JSON helpers (as in sqlscript.c) ---- */

static json_t *
jget(json_t *o, const char *key)
{
	return json_object_get(o, key);
}

static int
jis(json_t *o, const char *key, const char *value)
{
	const char *s = ferry_sql_jstr(o, key);

	return s != NULL && strcmp(s, value) == 0;
}

/* The sval of a {"String": {"sval": ...}} node, or NULL. */
static const char *
jsval(json_t *n)
{
	return ferry_sql_jstr(jget(n, "String"), "sval");
}

/* ---- the model ---- */

static void
ctype_release(struct ctype *t)
{
	free(t->name);
	t->name = NULL;
}

static void
ctype_copy(struct ctype *dst, const struct ctype *src)
{
	*dst = *src;
	dst->name = src->name != NULL ? xstrdup(src->name) : NULL;
}

/* Reads a TypeName node; an unusual one (%TYPE) is left unknown. */
static void
ctype_read(struct ctype *t, json_t *tn)
{
	json_t *names = jget(tn, "names"), *mods = jget(tn, "typmods"), *c;
	const char *last;
	size_t i;

	memset(t, 0, sizeof(*t));
	if (ferry_sql_jtrue(tn, "pct_type") || json_array_size(names) == 0)
		return;
	last = jsval(json_array_get(names, json_array_size(names) - 1));
	if (last == NULL)
		return;
	t->name = xstrdup(last);
	t->array = json_array_size(jget(tn, "arrayBounds")) > 0;
	for (i = 0; i < json_array_size(mods); i++) {
		c = jget(json_array_get(mods, i), "A_Const");
		if (i >= 2 || c == NULL || jget(c, "ival") == NULL) {
			t->nmod = -1;
			return;
		}
		/* Zero is left out of the JSON. */
		t->mod[i] =
		    (long)json_integer_value(jget(jget(c, "ival"), "ival"));
		t->nmod = (int)i + 1;
	}
}

/* Writes a type as people write it: "varchar(64)", "bigint", "int[]". */
static char *
ctype_str(const struct ctype *t)
{
	static const char *const pretty[][2] = { { "int2", "smallint" },
		{ "int4", "integer" }, { "int8", "bigint" },
		{ "float4", "real" }, { "float8", "double precision" },
		{ "bool", "boolean" }, { "bpchar", "char" } };
	const char *name = t->name;
	size_t i;

	if (name == NULL)
		return xstrdup("?");
	for (i = 0; i < FERRY_NELEM(pretty); i++)
		if (strcmp(name, pretty[i][0]) == 0)
			name = pretty[i][1];
	if (t->nmod == 1)
		return xasprintf("%s(%ld)%s", name, t->mod[0],
		    t->array ? "[]" : "");
	if (t->nmod == 2)
		return xasprintf("%s(%ld,%ld)%s", name, t->mod[0], t->mod[1],
		    t->array ? "[]" : "");
	return xasprintf("%s%s", name, t->array ? "[]" : "");
}

static int
ctype_equal(const struct ctype *a, const struct ctype *b)
{
	return a->name != NULL && b->name != NULL &&
	    strcmp(a->name, b->name) == 0 && a->array == b->array &&
	    a->nmod == b->nmod && (a->nmod < 1 || a->mod[0] == b->mod[0]) &&
	    (a->nmod < 2 || a->mod[1] == b->mod[1]);
}

/* Length limit of a text type, or LONG_MAX for none; -1 if not text. */
static long
text_limit(const struct ctype *t)
{
	if (t->nmod < 0 || t->array)
		return -1;
	if (strcmp(t->name, "text") == 0)
		return t->nmod == 0 ? LONG_MAX : -1;
	if (strcmp(t->name, "varchar") == 0)
		return t->nmod == 0 ? LONG_MAX : t->mod[0];
	return -1;
}

enum tchange {
	T_SAFE,   /* no rewrite, nothing lost */
	T_CHANGE, /* rewrite */
	T_NARROW, /* rewrite, and values may not fit */
};

/*
 * Classifies a change of column type from old (name NULL: unknown) to new,
 * after PostgreSQL's rules for skipping the rewrite: a longer or unlimited
 * varchar, text, numeric with more precision and the same scale, more
 * fractional precision for timestamps and times.
 */
static enum tchange
classify_type(const struct ctype *o, const struct ctype *n)
{
	static const char *const ints[] = { "int2", "int4", "int8", NULL };
	static const char *const floats[] = { "float4", "float8", NULL };
	static const char *const times[] = { "timestamp", "timestamptz", "time",
		"timetz", NULL };
	long lo, ln, po, so, pn, sn;

	if (o->name == NULL || n->name == NULL)
		return T_CHANGE;
	if (o->nmod < 0 || n->nmod < 0 || o->array || n->array)
		return ctype_equal(o, n) ? T_SAFE : T_CHANGE;
	lo = text_limit(o);
	ln = text_limit(n);
	if (lo > 0 && ln > 0)
		return ln >= lo ? T_SAFE : T_NARROW;
	if (strcmp(o->name, n->name) == 0) {
		if (strcmp(o->name, "numeric") == 0) {
			if (n->nmod == 0)
				return T_SAFE;
			if (o->nmod == 0)
				return T_NARROW;
			po = o->mod[0];
			so = o->nmod > 1 ? o->mod[1] : 0;
			pn = n->mod[0];
			sn = n->nmod > 1 ? n->mod[1] : 0;
			if (sn == so && pn >= po)
				return T_SAFE;
			if (sn < so || pn - sn < po - so)
				return T_NARROW;
			return T_CHANGE;
		}
		if (ferry_sql_name_rank(o->name, times) != 0) {
			po = o->nmod > 0 ? o->mod[0] : 6;
			pn = n->nmod > 0 ? n->mod[0] : 6;
			return pn >= po ? T_SAFE : T_NARROW;
		}
		if (ctype_equal(o, n))
			return T_SAFE;
		if (o->nmod == 1 && n->nmod == 1 && n->mod[0] < o->mod[0])
			return T_NARROW;
		return T_CHANGE;
	}
	if (ferry_sql_name_rank(o->name, ints) &&
	    ferry_sql_name_rank(n->name, ints))
		return ferry_sql_name_rank(n->name, ints) <
		        ferry_sql_name_rank(o->name, ints)
		    ? T_NARROW
		    : T_CHANGE;
	if (ferry_sql_name_rank(o->name, floats) &&
	    ferry_sql_name_rank(n->name, floats))
		return ferry_sql_name_rank(n->name, floats) <
		        ferry_sql_name_rank(o->name, floats)
		    ? T_NARROW
		    : T_CHANGE;
	if ((strcmp(o->name, "numeric") == 0 ||
	        ferry_sql_name_rank(o->name, floats)) &&
	    ferry_sql_name_rank(n->name, ints))
		return T_NARROW; /* fractions are lost */
	return T_CHANGE;
}

static void
con_release(struct con *c)
{
	free(c->name);
	free(c->notnull);
}

static void
table_release(struct table *t)
{
	size_t i;

	for (i = 0; i < t->ncols; i++) {
		free(t->cols[i].name);
		ctype_release(&t->cols[i].type);
	}
	for (i = 0; i < t->ncons; i++)
		con_release(&t->cons[i]);
	free(t->cols);
	free(t->cons);
	free(t->schema);
	free(t->name);
	memset(t, 0, sizeof(*t));
}

static void
pstate_reset(struct pstate *ps)
{
	size_t i;

	for (i = 0; i < ps->ntabs; i++)
		table_release(&ps->tabs[i]);
	ps->ntabs = 0;
}

/* A relation as a statement names it; unqualified names are in public. */
struct rel {
	const char *schema;
	const char *name;
};

static int
rel_from_rangevar(struct rel *r, json_t *rv)
{
	r->schema = ferry_sql_jstr(rv, "schemaname");
	r->name = ferry_sql_jstr(rv, "relname");
	if (r->schema == NULL)
		r->schema = "public";
	return r->name != NULL ? 0 : -1;
}

/* Reads a qualified name list ([schema,] name). */
static int
rel_from_list(struct rel *r, json_t *items)
{
	size_t n = json_array_size(items);

	if (n == 0)
		return -1;
	r->name = jsval(json_array_get(items, n - 1));
	r->schema = n >= 2 ? jsval(json_array_get(items, n - 2)) : "public";
	return r->name != NULL && r->schema != NULL ? 0 : -1;
}

/* " \"name\"" for messages, or "" for an unnamed object. */
static char *
label(const char *name)
{
	return name != NULL ? xasprintf(" \"%s\"", name) : xstrdup("");
}

/* "t" or "s"."t" for messages. */
static char *
rel_str(const struct rel *r)
{
	if (strcmp(r->schema, "public") == 0)
		return xasprintf("\"%s\"", r->name);
	return xasprintf("\"%s\".\"%s\"", r->schema, r->name);
}

static struct table *
table_find(struct pstate *ps, const struct rel *r)
{
	size_t i;

	for (i = 0; i < ps->ntabs; i++)
		if (strcmp(ps->tabs[i].name, r->name) == 0 &&
		    strcmp(ps->tabs[i].schema, r->schema) == 0)
			return &ps->tabs[i];
	return NULL;
}

/* Adds an empty table made by migration created (or BEFORE). */
static struct table *
table_add(struct pstate *ps, const struct rel *r, size_t created)
{
	struct table *t;

	ps->tabs = grow(ps->tabs, &ps->ctabs, ps->ntabs, sizeof(*t));
	t = &ps->tabs[ps->ntabs++];
	memset(t, 0, sizeof(*t));
	t->schema = xstrdup(r->schema);
	t->name = xstrdup(r->name);
	t->created = created;
	return t;
}

/* The table, remembered from now on even if the folder never made it. */
static struct table *
table_get(struct pstate *ps, const struct rel *r)
{
	struct table *t = table_find(ps, r);

	return t != NULL ? t : table_add(ps, r, BEFORE);
}

static void
table_remove(struct pstate *ps, struct table *t)
{
	table_release(t);
	*t = ps->tabs[--ps->ntabs];
}

/* 1 if the table was created by the migration being checked. */
static int
is_new(const struct pstate *ps, const struct table *t)
{
	return t != NULL && t->created == ps->cur;
}

static struct col *
col_find(struct table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i].name, name) == 0)
			return &t->cols[i];
	return NULL;
}

static struct col *
col_add(struct table *t, const char *name, size_t added)
{
	struct col *c = col_find(t, name);

	if (c != NULL) {
		ctype_release(&c->type);
	} else {
		t->cols = grow(t->cols, &t->ccols, t->ncols, sizeof(*c));
		c = &t->cols[t->ncols++];
		c->name = xstrdup(name);
	}
	memset(&c->type, 0, sizeof(c->type));
	c->added = added;
	return c;
}

static void
col_remove(struct table *t, const char *name)
{
	struct col *c = col_find(t, name);

	if (c == NULL)
		return;
	free(c->name);
	ctype_release(&c->type);
	*c = t->cols[--t->ncols];
}

static struct con *
con_find(struct table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->ncons; i++)
		if (t->cons[i].name != NULL &&
		    strcmp(t->cons[i].name, name) == 0)
			return &t->cons[i];
	return NULL;
}

static void
con_remove(struct table *t, const char *name)
{
	struct con *k = con_find(t, name);

	if (k == NULL)
		return;
	con_release(k);
	*k = t->cons[--t->ncons];
}

/* The column c of "CHECK (c IS NOT NULL)", or NULL. */
static const char *
notnull_column(json_t *expr)
{
	json_t *nt = jget(expr, "NullTest"), *fields;

	if (nt == NULL || !jis(nt, "nulltesttype", "IS_NOT_NULL"))
		return NULL;
	fields = jget(jget(jget(nt, "arg"), "ColumnRef"), "fields");
	if (json_array_size(fields) != 1)
		return NULL;
	return jsval(json_array_get(fields, 0));
}

/* Remembers a foreign key or CHECK constraint (Constraint node c). */
static void
con_add(struct table *t, json_t *c, size_t added, size_t off, int validated)
{
	const char *name = ferry_sql_jstr(c, "conname"), *nn = NULL;
	struct con *k;

	if (jis(c, "contype", "CONSTR_CHECK"))
		nn = notnull_column(jget(c, "raw_expr"));
	t->cons = grow(t->cons, &t->ccons, t->ncons, sizeof(*k));
	k = &t->cons[t->ncons++];
	k->name = name != NULL ? xstrdup(name) : NULL;
	k->rule = jis(c, "contype", "CONSTR_FOREIGN") ? R_FOREIGN_KEY : R_CHECK;
	k->notnull = nn != NULL ? xstrdup(nn) : NULL;
	k->added = added;
	k->off = off;
	k->validated = validated;
}

/* 1 if a validated CHECK (col IS NOT NULL) lets SET NOT NULL skip its
   scan. */
static int
has_notnull_check(struct table *t, const char *col)
{
	size_t i;

	for (i = 0; i < t->ncons; i++)
		if (t->cons[i].validated && t->cons[i].notnull != NULL &&
		    strcmp(t->cons[i].notnull, col) == 0)
			return 1;
	return 0;
}

/* ---- the parse-tree rules ---- */

/* One statement being checked. */
struct stmt {
	struct ferry_lint_ctx *ctx;
	struct pstate *ps;
	const char *text; /* the whole file */
	size_t off, end;  /* the statement */
	size_t cursor;    /* where to look for a name the tree does not place */
};

/* The file offset of node o's location, or SIZE_MAX. */
static size_t
at(struct stmt *s, json_t *o)
{
	json_t *l = jget(o, "location");
	json_int_t v;

	if (!json_is_integer(l))
		return SIZE_MAX;
	v = json_integer_value(l);
	if (v < 0 || (size_t)v >= s->end - s->off)
		return SIZE_MAX;
	return s->off + (size_t)v;
}

/*
 * Moves the search cursor just past the start of what was found at pos, if
 * known, so that the next search finds the next name; returns pos.
 */
static size_t
seen(struct stmt *s, size_t pos)
{
	if (pos != SIZE_MAX)
		s->cursor = pos + 1;
	return pos;
}

/*
 * Where the statement names name next, quoted or not, for the parts of the
 * tree that carry no location (DROP COLUMN, SET NOT NULL, ...); the
 * statement's start if it cannot be found.
 */
static size_t
name_at(struct stmt *s, const char *name)
{
	const char *t = s->text;
	size_t n = strlen(name), i;

	for (i = s->cursor; i < s->end; i++) {
		if (t[i] == '"' && n + 2 <= s->end - i &&
		    memcmp(t + i + 1, name, n) == 0 && t[i + n + 1] == '"')
			return seen(s, i);
		if (n <= s->end - i && strncasecmp(t + i, name, n) == 0 &&
		    (i == 0 || !ferry_sql_is_word_char(t[i - 1])) &&
		    (i + n == s->end || !ferry_sql_is_word_char(t[i + n])))
			return seen(s, i);
	}
	return s->off;
}

static void sreport(struct stmt *s, const char *id, size_t pos, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
sreport(struct stmt *s, const char *id, size_t pos, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(s->ctx, id, pos != SIZE_MAX ? pos : s->off, fmt, ap);
	va_end(ap);
}

/*
 * 1 if byte offsets a and b of the file run in one transaction: always
 * unless the engine runs the file per statement and they are in different
 * steps.
 */
static int
same_transaction(struct stmt *s, size_t a, size_t b)
{
	const struct ferry_script *sc = s->ctx->script;

	if (ferry_script_mode(sc) != FERRY_MODE_PER_STATEMENT)
		return 1;
	return ferry_script_step_at(sc, a) == ferry_script_step_at(sc, b);
}

/* A concurrent operation inside an open BEGIN. */
static void
concurrent(struct stmt *s, const char *what)
{
	int line, col;

	if (s->ps->tx_open == SIZE_MAX)
		return;
	ferry_script_line_col(s->ctx->script, s->ps->tx_open, &line, &col);
	sreport(s, R_CONCURRENT_TX, s->off,
	    "%s inside the transaction block opened at line %d", what, line);
}

static void
do_create(struct stmt *s, json_t *v)
{
	json_t *elts = jget(v, "tableElts"), *e, *cd, *c;
	struct table *t;
	struct col *col;
	struct rel r;
	size_t i;

	if (rel_from_rangevar(&r, jget(v, "relation")) != 0)
		return;
	t = table_find(s->ps, &r);
	if (t != NULL && ferry_sql_jtrue(v, "if_not_exists"))
		return;
	if (t != NULL)
		table_remove(s->ps, t);
	t = table_add(s->ps, &r, s->ps->cur);
	t->partitioned = jget(v, "partspec") != NULL;
	for (i = 0; i < json_array_size(elts); i++) {
		e = json_array_get(elts, i);
		cd = jget(e, "ColumnDef");
		c = jget(e, "Constraint");
		if (cd != NULL && ferry_sql_jstr(cd, "colname") != NULL) {
			col = col_add(t, ferry_sql_jstr(cd, "colname"),
			    s->ps->cur);
			ctype_read(&col->type, jget(cd, "typeName"));
		} else if (c != NULL && jis(c, "contype", "CONSTR_CHECK")) {
			con_add(t, c, s->ps->cur, at(s, c), 1);
		}
	}
}

/* CREATE TABLE AS, CREATE MATERIALIZED VIEW, SELECT INTO: columns
   unknown. */
static void
do_create_as(struct stmt *s, json_t *into)
{
	struct table *t;
	struct rel r;

	if (rel_from_rangevar(&r, jget(into, "rel")) != 0)
		return;
	t = table_find(s->ps, &r);
	if (t != NULL)
		table_remove(s->ps, t);
	table_add(s->ps, &r, s->ps->cur);
}

static void
do_index(struct stmt *s, json_t *v)
{
	struct table *t;
	struct rel r;
	char *tn, *nm;

	if (ferry_sql_jtrue(v, "concurrent")) {
		concurrent(s, "CREATE INDEX CONCURRENTLY");
		return;
	}
	if (rel_from_rangevar(&r, jget(v, "relation")) != 0)
		return;
	t = table_find(s->ps, &r);
	if (is_new(s->ps, t))
		return;
	tn = rel_str(&r);
	nm = label(ferry_sql_jstr(v, "idxname"));
	sreport(s, R_INDEX, s->off,
	    "creates index%s on %s without CONCURRENTLY; the table existed "
	    "before this migration%s",
	    nm, tn,
	    t != NULL && t->partitioned
	        ? " (it is partitioned: CREATE INDEX ON ONLY it, build each "
	          "partition's index CONCURRENTLY and ATTACH it)"
	        : "");
	free(nm);
	free(tn);
}

static void
do_drop(struct stmt *s, json_t *v)
{
	json_t *objs = jget(v, "objects"), *o;
	const char *type = ferry_sql_jstr(v, "removeType"), *schema;
	struct table *t;
	struct rel r;
	size_t i, pos;
	char *tn;

	if (type == NULL)
		return;
	if (ferry_sql_jtrue(v, "concurrent"))
		concurrent(s, "DROP INDEX CONCURRENTLY");
	if (strcmp(type, "OBJECT_SCHEMA") == 0) {
		for (i = 0; i < json_array_size(objs); i++) {
			schema = jsval(json_array_get(objs, i));
			if (schema == NULL)
				continue;
			if (jis(v, "behavior", "DROP_CASCADE"))
				sreport(s, R_DROP_TABLE, name_at(s, schema),
				    "drops schema \"%s\" with CASCADE, and "
				    "every table in it",
				    schema);
			for (t = s->ps->tabs; t < s->ps->tabs + s->ps->ntabs;)
				if (strcmp(t->schema, schema) == 0)
					table_remove(s->ps, t);
				else
					t++;
		}
		return;
	}
	if (strcmp(type, "OBJECT_TABLE") != 0 &&
	    strcmp(type, "OBJECT_MATVIEW") != 0 &&
	    strcmp(type, "OBJECT_FOREIGN_TABLE") != 0)
		return;
	for (i = 0; i < json_array_size(objs); i++) {
		o = jget(json_array_get(objs, i), "List");
		if (rel_from_list(&r, jget(o, "items")) != 0)
			continue;
		t = table_find(s->ps, &r);
		pos = name_at(s, r.name);
		if (strcmp(type, "OBJECT_TABLE") == 0 && !is_new(s->ps, t)) {
			tn = rel_str(&r);
			sreport(s, R_DROP_TABLE, pos, "drops table %s", tn);
			free(tn);
		}
		if (t != NULL)
			table_remove(s->ps, t);
	}
}

static void
do_add_column(struct stmt *s, struct table *t, const struct rel *r, json_t *cmd)
{
	static const char *const serials[] = { "serial", "serial2", "serial4",
		"serial8", "smallserial", "bigserial", NULL };
	json_t *cd = jget(jget(cmd, "def"), "ColumnDef"), *cons, *c;
	const char *name = ferry_sql_jstr(cd, "colname"), *ct;
	int notnull, dflt;
	struct col *col;
	size_t i, pos;
	char *tn;

	if (name == NULL)
		return;
	pos = seen(s, at(s, cd));
	if (ferry_sql_jtrue(cmd, "missing_ok") && col_find(t, name) != NULL)
		return;
	notnull = ferry_sql_jtrue(cd, "is_not_null");
	dflt = jget(cd, "raw_default") != NULL ||
	    jget(cd, "cooked_default") != NULL;
	cons = jget(cd, "constraints");
	for (i = 0; i < json_array_size(cons); i++) {
		c = jget(json_array_get(cons, i), "Constraint");
		ct = ferry_sql_jstr(c, "contype");
		if (ct == NULL)
			continue;
		if (strcmp(ct, "CONSTR_NOTNULL") == 0 ||
		    strcmp(ct, "CONSTR_PRIMARY") == 0)
			notnull = 1;
		else if (strcmp(ct, "CONSTR_DEFAULT") == 0 ||
		    strcmp(ct, "CONSTR_IDENTITY") == 0 ||
		    strcmp(ct, "CONSTR_GENERATED") == 0)
			dflt = 1;
	}
	col = col_add(t, name, s->ps->cur);
	ctype_read(&col->type, jget(cd, "typeName"));
	if (col->type.name != NULL &&
	    ferry_sql_name_rank(col->type.name, serials) != 0)
		dflt = 1;
	if (notnull && !dflt && !is_new(s->ps, t)) {
		tn = rel_str(r);
		sreport(s, R_ADD_NOT_NULL, pos,
		    "adds NOT NULL column %s.\"%s\" without a default; the "
		    "table existed before this migration",
		    tn, name);
		free(tn);
	}
}

static void
do_add_constraint(struct stmt *s, struct table *t, const struct rel *r,
    json_t *cmd)
{
	json_t *c = jget(jget(cmd, "def"), "Constraint");
	const char *ct = ferry_sql_jstr(c, "contype"), *kind = NULL;
	struct rel ref;
	size_t pos;
	int nv;
	char *tn, *rn, *nm;

	if (ct == NULL)
		return;
	pos = seen(s, at(s, c));
	nv = ferry_sql_jtrue(c, "skip_validation");
	if (strcmp(ct, "CONSTR_FOREIGN") == 0 ||
	    strcmp(ct, "CONSTR_CHECK") == 0) {
		con_add(t, c, s->ps->cur, pos != SIZE_MAX ? pos : s->off, !nv);
		if (nv || is_new(s->ps, t))
			return;
		tn = rel_str(r);
		nm = label(ferry_sql_jstr(c, "conname"));
		if (strcmp(ct, "CONSTR_CHECK") == 0) {
			sreport(s, R_CHECK, pos,
			    "adds CHECK constraint%s to %s without NOT VALID; "
			    "the table existed before this migration",
			    nm, tn);
		} else if (rel_from_rangevar(&ref, jget(c, "pktable")) == 0) {
			rn = rel_str(&ref);
			sreport(s, R_FOREIGN_KEY, pos,
			    "adds foreign key%s from %s to %s without NOT "
			    "VALID; the table existed before this migration",
			    nm, tn, rn);
			free(rn);
		}
		free(nm);
		free(tn);
		return;
	}
	if (strcmp(ct, "CONSTR_PRIMARY") == 0)
		kind = "PRIMARY KEY";
	else if (strcmp(ct, "CONSTR_UNIQUE") == 0)
		kind = "UNIQUE";
	else if (strcmp(ct, "CONSTR_EXCLUSION") == 0)
		kind = "EXCLUDE";
	if (kind == NULL || ferry_sql_jstr(c, "indexname") != NULL ||
	    is_new(s->ps, t))
		return;
	tn = rel_str(r);
	nm = label(ferry_sql_jstr(c, "conname"));
	sreport(s, R_INDEX, pos,
	    "adds %s constraint%s to %s, building its index under an ACCESS "
	    "EXCLUSIVE lock; the table existed before this migration",
	    kind, nm, tn);
	free(nm);
	free(tn);
}

static void
do_validate(struct stmt *s, struct table *t, json_t *cmd)
{
	const char *name = ferry_sql_jstr(cmd, "name");
	struct con *k;
	size_t pos;

	if (name == NULL)
		return;
	pos = name_at(s, name);
	k = con_find(t, name);
	if (k == NULL || k->validated)
		return;
	k->validated = 1;
	/* The lock ADD CONSTRAINT took is held while VALIDATE scans. */
	if (k->added == s->ps->cur && !is_new(s->ps, t) &&
	    same_transaction(s, k->off, s->off))
		sreport(s, k->rule, pos,
		    "validates \"%s\" in the same transaction that adds it "
		    "NOT VALID, so the lock taken by ADD CONSTRAINT is held "
		    "while every row is checked",
		    name);
}

static void
do_alter_type(struct stmt *s, struct table *t, const struct rel *r, json_t *cmd)
{
	json_t *cd = jget(jget(cmd, "def"), "ColumnDef");
	const char *name = ferry_sql_jstr(cmd, "name");
	struct ctype nt, unknown;
	const struct ctype *ot;
	enum tchange ch;
	struct col *col;
	char *tn, *os, *ns;
	size_t pos;

	if (name == NULL || cd == NULL)
		return;
	pos = seen(s, at(s, cd));
	memset(&unknown, 0, sizeof(unknown));
	ctype_read(&nt, jget(cd, "typeName"));
	col = col_find(t, name);
	ot = col != NULL ? &col->type : &unknown;
	ch = classify_type(ot, &nt);
	/* USING computes every value anew. */
	if (ch == T_SAFE && jget(cd, "raw_default") != NULL)
		ch = T_CHANGE;
	if (!is_new(s->ps, t) && ch != T_SAFE) {
		tn = rel_str(r);
		os = ctype_str(ot);
		ns = ctype_str(&nt);
		if (ch == T_NARROW)
			sreport(s, R_TYPE_NARROW, pos,
			    "narrows %s.\"%s\" from %s to %s", tn, name, os,
			    ns);
		else if (ot->name != NULL)
			sreport(s, R_TYPE_CHANGE, pos,
			    "changes %s.\"%s\" from %s to %s%s", tn, name, os,
			    ns,
			    jget(cd, "raw_default") != NULL ? " with USING"
			                                    : "");
		else
			sreport(s, R_TYPE_CHANGE, pos,
			    "changes the type of %s.\"%s\" to %s; its old type "
			    "is not known from this folder",
			    tn, name, ns);
		free(tn);
		free(os);
		free(ns);
	}
	if (col == NULL)
		col = col_add(t, name, BEFORE);
	ctype_release(&col->type);
	ctype_copy(&col->type, &nt);
	ctype_release(&nt);
}

static void
do_alter_table(struct stmt *s, json_t *v)
{
	json_t *cmds = jget(v, "cmds"), *cmd;
	const char *sub, *name;
	struct table *t;
	struct col *col;
	struct rel r;
	size_t i, pos;
	char *tn;

	if (rel_from_rangevar(&r, jget(v, "relation")) != 0)
		return;
	seen(s, at(s, jget(v, "relation")));
	if (!jis(v, "objtype", "OBJECT_TABLE"))
		return;
	t = table_get(s->ps, &r);
	for (i = 0; i < json_array_size(cmds); i++) {
		cmd = jget(json_array_get(cmds, i), "AlterTableCmd");
		sub = ferry_sql_jstr(cmd, "subtype");
		name = ferry_sql_jstr(cmd, "name");
		if (sub == NULL)
			continue;
		if (strcmp(sub, "AT_AddColumn") == 0) {
			do_add_column(s, t, &r, cmd);
		} else if (strcmp(sub, "AT_DropColumn") == 0 && name != NULL) {
			pos = name_at(s, name);
			col = col_find(t, name);
			if (!is_new(s->ps, t) &&
			    (col == NULL || col->added != s->ps->cur)) {
				tn = rel_str(&r);
				sreport(s, R_DROP_COLUMN, pos,
				    "drops column %s.\"%s\"", tn, name);
				free(tn);
			}
			col_remove(t, name);
		} else if (strcmp(sub, "AT_AlterColumnType") == 0) {
			do_alter_type(s, t, &r, cmd);
		} else if (strcmp(sub, "AT_SetNotNull") == 0 && name != NULL) {
			pos = name_at(s, name);
			if (!is_new(s->ps, t) && !has_notnull_check(t, name)) {
				tn = rel_str(&r);
				sreport(s, R_SET_NOT_NULL, pos,
				    "sets NOT NULL on %s.\"%s\"; the table "
				    "existed before this migration",
				    tn, name);
				free(tn);
			}
		} else if (strcmp(sub, "AT_AddConstraint") == 0) {
			do_add_constraint(s, t, &r, cmd);
		} else if (strcmp(sub, "AT_ValidateConstraint") == 0) {
			do_validate(s, t, cmd);
		} else if (strcmp(sub, "AT_DropConstraint") == 0 &&
		    name != NULL) {
			con_remove(t, name);
		} else if (strcmp(sub, "AT_DetachPartition") == 0 &&
		    ferry_sql_jtrue(jget(jget(cmd, "def"), "PartitionCmd"),
		        "concurrent")) {
			concurrent(s, "DETACH PARTITION CONCURRENTLY");
		}
	}
}

static void
do_rename(struct stmt *s, json_t *v)
{
	const char *type = ferry_sql_jstr(v, "renameType"),
	           *sub = ferry_sql_jstr(v, "subname");
	const char *to = ferry_sql_jstr(v, "newname");
	struct table *t;
	struct col *col;
	struct con *k;
	struct rel r;
	size_t pos;
	char *tn;

	if (type == NULL || to == NULL ||
	    rel_from_rangevar(&r, jget(v, "relation")) != 0)
		return;
	pos = seen(s, at(s, jget(v, "relation")));
	t = table_find(s->ps, &r);
	tn = rel_str(&r);
	if (strcmp(type, "OBJECT_TABLE") == 0 ||
	    strcmp(type, "OBJECT_MATVIEW") == 0 ||
	    strcmp(type, "OBJECT_FOREIGN_TABLE") == 0) {
		if (strcmp(type, "OBJECT_TABLE") == 0 && !is_new(s->ps, t))
			sreport(s, R_RENAME_TABLE, pos,
			    "renames table %s to \"%s\"", tn, to);
		if (t != NULL) {
			free(t->name);
			t->name = xstrdup(to);
		}
	} else if (strcmp(type, "OBJECT_COLUMN") == 0 && sub != NULL) {
		pos = name_at(s, sub);
		if (!is_new(s->ps, t))
			sreport(s, R_RENAME_COLUMN, pos,
			    "renames column %s.\"%s\" to \"%s\"", tn, sub, to);
		col = t != NULL ? col_find(t, sub) : NULL;
		if (col != NULL) {
			free(col->name);
			col->name = xstrdup(to);
		}
	} else if (strcmp(type, "OBJECT_TABCONSTRAINT") == 0 && sub != NULL) {
		k = t != NULL ? con_find(t, sub) : NULL;
		if (k != NULL) {
			free(k->name);
			k->name = xstrdup(to);
		}
	}
	free(tn);
}

static void
do_set_schema(struct stmt *s, json_t *v)
{
	const char *to = ferry_sql_jstr(v, "newschema");
	struct table *t;
	struct rel r;
	char *tn;

	if (!jis(v, "objectType", "OBJECT_TABLE") || to == NULL ||
	    rel_from_rangevar(&r, jget(v, "relation")) != 0)
		return;
	t = table_find(s->ps, &r);
	if (!is_new(s->ps, t)) {
		tn = rel_str(&r);
		sreport(s, R_RENAME_TABLE, at(s, jget(v, "relation")),
		    "moves table %s to schema \"%s\"", tn, to);
		free(tn);
	}
	if (t != NULL) {
		free(t->schema);
		t->schema = xstrdup(to);
	}
}

/* A DefElem's value as a boolean, as PostgreSQL's defGetBoolean reads it. */
static int
defelem_true(json_t *de)
{
	json_t *arg = jget(de, "arg"), *x;
	const char *sv;

	if (arg == NULL)
		return 1;
	x = jget(arg, "String");
	if (x != NULL) {
		sv = ferry_sql_jstr(x, "sval");
		return sv == NULL ||
		    (strcasecmp(sv, "false") != 0 &&
		        strcasecmp(sv, "off") != 0);
	}
	x = jget(arg, "Integer");
	if (x != NULL) /* zero is left out of the JSON */
		return json_integer_value(jget(x, "ival")) != 0;
	x = jget(arg, "Boolean");
	if (x != NULL)
		return ferry_sql_jtrue(x, "boolval");
	return 1;
}

static void
do_reindex(struct stmt *s, json_t *v)
{
	json_t *params = jget(v, "params"), *de;
	size_t i;

	for (i = 0; i < json_array_size(params); i++) {
		de = jget(json_array_get(params, i), "DefElem");
		if (jis(de, "defname", "concurrently") && defelem_true(de))
			concurrent(s, "REINDEX CONCURRENTLY");
	}
}

static void
do_transaction(struct stmt *s, json_t *v)
{
	const char *kind = ferry_sql_jstr(v, "kind");

	if (kind == NULL)
		return;
	if (strcmp(kind, "TRANS_STMT_BEGIN") == 0 ||
	    strcmp(kind, "TRANS_STMT_START") == 0) {
		if (s->ps->tx_open == SIZE_MAX)
			s->ps->tx_open = s->off;
	} else if (((strcmp(kind, "TRANS_STMT_COMMIT") == 0 ||
	                strcmp(kind, "TRANS_STMT_ROLLBACK") == 0) &&
	               !ferry_sql_jtrue(v, "chain")) ||
	    strcmp(kind, "TRANS_STMT_PREPARE") == 0) {
		s->ps->tx_open = SIZE_MAX;
	}
}

/* Checks one statement's tree {"<Type>": {...}}. */
static void
check_node(struct stmt *s, json_t *n)
{
	const char *type;
	json_t *v;

	if (!json_is_object(n) || json_object_size(n) != 1)
		return;
	type = json_object_iter_key(json_object_iter(n));
	v = json_object_iter_value(json_object_iter(n));
	if (strcmp(type, "CreateStmt") == 0)
		do_create(s, v);
	else if (strcmp(type, "CreateTableAsStmt") == 0)
		do_create_as(s, jget(v, "into"));
	else if (strcmp(type, "SelectStmt") == 0 &&
	    jget(v, "intoClause") != NULL)
		do_create_as(s, jget(v, "intoClause"));
	else if (strcmp(type, "IndexStmt") == 0)
		do_index(s, v);
	else if (strcmp(type, "DropStmt") == 0)
		do_drop(s, v);
	else if (strcmp(type, "AlterTableStmt") == 0)
		do_alter_table(s, v);
	else if (strcmp(type, "RenameStmt") == 0)
		do_rename(s, v);
	else if (strcmp(type, "AlterObjectSchemaStmt") == 0)
		do_set_schema(s, v);
	else if (strcmp(type, "ReindexStmt") == 0)
		do_reindex(s, v);
	else if (strcmp(type, "TransactionStmt") == 0)
		do_transaction(s, v);
}

/*
 * 1 if the statement at t[off, end) cannot matter to any rule, from its
 * first word: data changes and the like, which a large data migration
 * holds by the thousand, are not parsed again.
 */
static int
skip_statement(const char *t, size_t off, size_t end)
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

static void
check_statement(struct stmt *s)
{
	PgQueryParseResult r;
	json_t *root = NULL, *stmts;
	char *sql = xstrndup(s->text + s->off, s->end - s->off);
	size_t i;

	r = pg_query_parse(sql);
	if (r.error != NULL || r.parse_tree == NULL) {
		sreport(s, R_UNPARSEABLE, s->off,
		    "cannot parse this statement with the "
		    "PostgreSQL " PG_MAJORVERSION " grammar: %s",
		    r.error != NULL && r.error->message != NULL
		        ? r.error->message
		        : "unknown error");
		goto out;
	}
	root = ferry_sql_load_json(r.parse_tree);
	if (root == NULL) {
		sreport(s, R_UNPARSEABLE, s->off,
		    "this statement is nested too deeply to check");
		goto out;
	}
	stmts = jget(root, "stmts");
	for (i = 0; i < json_array_size(stmts); i++) {
		s->cursor = s->off;
		check_node(s, jget(json_array_get(stmts, i), "stmt"));
	}
out:
	json_decref(root);
	pg_query_free_parse_result(r);
	free(sql);
}

/* Maps the parser's 1-based character position to a byte offset. */
static size_t
cursor_offset(const char *t, size_t len, int cursorpos)
{
	const unsigned char *p = (const unsigned char *)t;
	size_t i = 0, k;
	int c;

	for (c = 1; c < cursorpos && i < len; c++) {
		k = ferry_sql_utf8_seq_len(p + i, len - i);
		i += k > 0 ? k : 1;
	}
	return i < len ? i : len;
}

/* The built-in check: the parse-tree rules for one migration. */
static int
parse_check(struct ferry_lint_ctx *ctx, void *arg, struct ferry_err *err)
{
	struct pstate *ps = arg;
	const struct ferry_migration *m = ctx->mig;
	const char *t = m->sql, *nul;
	PgQuerySplitResult split;
	struct stmt s;
	size_t i, loc, len;

	(void)err;
	ps->cur = ctx->index;
	ps->tx_open = SIZE_MAX;
	nul = memchr(t, '\0', m->sql_len);
	if (nul != NULL) {
		ferry_lint_report(ctx, R_UNPARSEABLE, (size_t)(nul - t),
		    "contains a NUL byte, which PostgreSQL does not accept");
		return 0;
	}
	if (m->sql_len > MAX_PARSE_LEN) {
		ferry_lint_report(ctx, R_UNPARSEABLE, SIZE_MAX,
		    "too large to parse");
		return 0;
	}
	split = pg_query_split_with_parser(t);
	if (split.error != NULL) {
		ferry_lint_report(ctx, R_UNPARSEABLE,
		    split.error->cursorpos > 0
		        ? cursor_offset(t, m->sql_len, split.error->cursorpos)
		        : SIZE_MAX,
		    "cannot parse with the PostgreSQL " PG_MAJORVERSION
		    " grammar: %s",
		    split.error->message != NULL ? split.error->message
		                                 : "unknown error");
		goto out;
	}
	memset(&s, 0, sizeof(s));
	s.ctx = ctx;
	s.ps = ps;
	s.text = t;
	for (i = 0; i < (size_t)(split.n_stmts > 0 ? split.n_stmts : 0); i++) {
		if (split.stmts[i]->stmt_location < 0 ||
		    split.stmts[i]->stmt_len < 0)
			continue;
		loc = (size_t)split.stmts[i]->stmt_location;
		len = (size_t)split.stmts[i]->stmt_len;
		if (loc > m->sql_len || len > m->sql_len - loc)
			continue;
		s.end = loc + len;
		s.off = ferry_sql_skip_space(t, loc, s.end);
		if (s.off == s.end || skip_statement(t, s.off, s.end))
			continue;
		check_statement(&s);
	}
out:
	pg_query_free_split_result(split);
	return 0;
}

/* ---- the run ---- */

struct ferry_lint *
ferry_lint_new(void)
{
	struct ferry_lint *l = xcalloc(1, sizeof(*l));

	l->ps = xcalloc(1, sizeof(*l->ps));
	ferry_lint_add_check(l, builtin_rules, FERRY_NELEM(builtin_rules),
	    parse_check, l->ps);
	return l;
}

static void
drop_findings(struct ferry_lint *l)
{
	size_t i;

	for (i = 0; i < l->nfindings; i++) {
		free(l->findings[i].migration);
		free(l->findings[i].message);
	}
	l->nfindings = 0;
	l->nsuppressed = 0;
	l->seq = 0;
}

void
ferry_lint_free(struct ferry_lint *l)
{
	if (l == NULL)
		return;
	drop_findings(l);
	pstate_reset(l->ps);
	free(l->ps->tabs);
	free(l->ps);
	free(l->findings);
	free(l->checks);
	free(l);
}

static int
finding_cmp(const void *a, const void *b)
{
	const struct finding *x = a, *y = b;

	if (x->pub.line != y->pub.line)
		return x->pub.line < y->pub.line ? -1 : 1;
	if (x->pub.col != y->pub.col)
		return x->pub.col < y->pub.col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Prepares ctx->script from the migration; a directive the engine refuses
 * is a finding, and the script is then made without any header directive.
 */
static int
make_script(struct ferry_lint_ctx *ctx, struct ferry_err *err)
{
	const struct ferry_migration *m = ctx->mig;
	struct ferry_err perr;
	char *copy;
	int rc;

	/* The engine's parser knows lint-ignore and leaves it to us. */
	ferry_err_clear(&perr);
	rc = ferry_script_parse(m->sql, m->sql_len, m->name, &ctx->script,
	    &perr);
	if (rc == 0)
		return 0;
	ferry_lint_report(ctx, R_DIRECTIVE, SIZE_MAX, "%s", perr.msg);
	copy = xmalloc(m->sql_len + 1);
	memcpy(copy, m->sql, m->sql_len + 1);
	mask_header(copy, m->sql_len);
	ferry_err_clear(&perr);
	rc = ferry_script_parse(copy, m->sql_len, m->name, &ctx->script, &perr);
	if (rc != 0)
		rc = ferry_errf(err, FERRY_EOPER, "%s", perr.msg);
	free(copy);
	return rc;
}

int
ferry_lint_run(struct ferry_lint *l, const struct ferry_migrations *m,
    struct ferry_err *err)
{
	struct ferry_lint_ctx ctx;
	size_t i, k, first;
	int rc = 0;

	drop_findings(l);
	pstate_reset(l->ps);
	memset(&ctx, 0, sizeof(ctx));
	for (i = 0; i < ferry_migrations_count(m) && rc == 0; i++) {
		ctx.l = l;
		ctx.mig = ferry_migrations_get(m, i);
		ctx.index = i;
		first = l->nfindings;
		rc = make_script(&ctx, err);
		if (rc == 0)
			read_ignores(&ctx);
		for (k = 0; k < l->nchecks && rc == 0; k++)
			rc = l->checks[k].fn(&ctx, l->checks[k].arg, err);
		if (l->nfindings - first > 1)
			qsort(l->findings + first, l->nfindings - first,
			    sizeof(*l->findings), finding_cmp);
		ferry_script_free(ctx.script);
		free(ctx.ignored);
		free(ctx.marks);
		memset(&ctx, 0, sizeof(ctx));
	}
	return rc;
}
