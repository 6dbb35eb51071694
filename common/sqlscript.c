/*
 * sqlscript.c -- a migration.sql split and classified with libpg_query.
 *
 * The file is split with the real parser (pg_query_split_with_parser). A
 * full parse tree is built only for the few statements whose leading words
 * say they could matter (see may_matter): pg_query_scan's protobuf output
 * costs more than the split itself on a large file, and the check needs no
 * precision since the parse tree, not the check, classifies. A false
 * positive costs one small parse; a keyword inside a string or a comment
 * therefore never changes the mode.
 */
#include "sqlscript.h"
#include "sqltext.h"

#include <jansson.h>
#include <pg_query.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* PostgreSQL refuses query strings of 1 GiB or more (MaxAllocSize). */
#define MAX_PARSE_LEN ((size_t)0x3fffffff)

#define SIMPLE_TAIL "running it as one query, as Prisma does"

/* What a transaction control statement does to a transaction block. */
enum txkind {
	TX_NONE = 0,
	TX_BEGIN,      /* BEGIN / START TRANSACTION without options */
	TX_BEGIN_OPTS, /* ... with options such as an isolation level */
	TX_COMMIT,     /* COMMIT / END without AND CHAIN */
	TX_END_BLOCK,  /* ROLLBACK / ABORT / PREPARE TRANSACTION */
	TX_OTHER,      /* SAVEPOINT, ... AND CHAIN, COMMIT PREPARED, ... */
};

/* One statement while the script is being built. */
struct stmt {
	size_t off; /* first token */
	size_t end; /* its ';', or the end of the file */
	int line;
	unsigned flags;
	enum txkind tx;
	const char *what; /* names a NO_TX or TX_CONTROL statement */
	char *index_name;
	char *index_schema;
};

struct ferry_script {
	char *text; /* copy of the file, NUL-terminated */
	size_t len;
	enum ferry_mode mode;
	char *reason;
	char *warning;
	size_t nstatements;
	struct ferry_step *steps;
	size_t nsteps;
	size_t body_off;
	size_t body_len;
	int64_t lock_timeout_ms;
	int64_t statement_timeout_ms;
	int forced;
};

static size_t
word_end(const char *t, size_t i, size_t end)
{
	while (i < end && ferry_sql_is_word_char(t[i]))
		i++;
	return i;
}

/* Returns 1 if the word t[i, e) is kw (lowercase), ignoring case. */
static int
word_is(const char *t, size_t i, size_t e, const char *kw)
{
	size_t n = strlen(kw);

	return e - i == n && strncasecmp(t + i, kw, n) == 0;
}

static int
word_in(const char *t, size_t i, size_t e, const char *const *kws)
{
	for (; *kws != NULL; kws++)
		if (word_is(t, i, e, *kws))
			return 1;
	return 0;
}

/* Returns 1 if the word kw (lowercase) occurs anywhere in t[i, end). */
static int
has_word(const char *t, size_t i, size_t end, const char *kw)
{
	size_t n = strlen(kw);

	for (; i + n <= end; i++) {
		if ((t[i] | 0x20) != kw[0] || strncasecmp(t + i, kw, n) != 0)
			continue;
		if ((i == 0 || !ferry_sql_is_word_char(t[i - 1])) &&
		    (i + n == end || !ferry_sql_is_word_char(t[i + n])))
			return 1;
	}
	return 0;
}

/*
 * Returns 1 if the statement t[off, end) could be one that matters, from
 * its first two words: transaction control, VACUUM, CLUSTER, REINDEX,
 * CREATE/DROP DATABASE/TABLESPACE, ALTER DATABASE/SYSTEM/TYPE, or a CREATE
 * INDEX, DROP INDEX or ALTER TABLE with the word CONCURRENTLY in it. Only
 * such statements are parsed; CONCURRENTLY alone would also pick out large
 * CREATE TABLE statements that merely mention it in a literal.
 */
static int
may_matter(const char *t, size_t off, size_t end)
{
	static const char *const lead[] = { "begin", "commit", "end",
		"rollback", "abort", "savepoint", "release", "vacuum",
		"cluster", "reindex", NULL };
	static const char *const create_drop[] = { "database", "tablespace",
		NULL };
	static const char *const alter[] = { "database", "system", "type",
		NULL };
	size_t w1e, w2, w2e;

	w1e = word_end(t, off, end);
	if (word_in(t, off, w1e, lead))
		return 1;
	w2 = ferry_sql_skip_space(t, w1e, end);
	w2e = word_end(t, w2, end);
	if ((word_is(t, off, w1e, "start") ||
	        word_is(t, off, w1e, "prepare")) &&
	    word_is(t, w2, w2e, "transaction"))
		return 1;
	if ((word_is(t, off, w1e, "create") || word_is(t, off, w1e, "drop")) &&
	    word_in(t, w2, w2e, create_drop))
		return 1;
	if (word_is(t, off, w1e, "alter") && word_in(t, w2, w2e, alter))
		return 1;
	if ((word_is(t, off, w1e, "create") &&
	        (word_is(t, w2, w2e, "index") ||
	            word_is(t, w2, w2e, "unique"))) ||
	    (word_is(t, off, w1e, "drop") && word_is(t, w2, w2e, "index")) ||
	    (word_is(t, off, w1e, "alter") && word_is(t, w2, w2e, "table")))
		return has_word(t, w2e, end, "concurrently");
	return 0;
}

/* The value of {"<type>": value}, or NULL. */
static json_t *
node(json_t *n, const char *type)
{
	return json_object_get(n, type);
}

/* The DefElem named name in a list of {"DefElem": ...} nodes, or NULL. */
static json_t *
find_defelem(json_t *list, const char *name)
{
	const char *dn;
	json_t *de;
	size_t i;

	for (i = 0; i < json_array_size(list); i++) {
		de = node(json_array_get(list, i), "DefElem");
		dn = ferry_sql_jstr(de, "defname");
		if (dn != NULL && strcmp(dn, name) == 0)
			return de;
	}
	return NULL;
}

/* A DefElem's value as a boolean, as PostgreSQL's defGetBoolean reads it. */
static int
defelem_true(json_t *de)
{
	json_t *arg = json_object_get(de, "arg"), *v;
	const char *s;

	if (arg == NULL)
		return 1;
	v = node(arg, "String");
	if (v != NULL) {
		s = ferry_sql_jstr(v, "sval");
		return s == NULL ||
		    (strcasecmp(s, "false") != 0 && strcasecmp(s, "off") != 0);
	}
	v = node(arg, "Integer");
	if (v != NULL) /* zero is left out of the JSON */
		return json_integer_value(json_object_get(v, "ival")) != 0;
	v = node(arg, "Boolean");
	if (v != NULL)
		return ferry_sql_jtrue(v, "boolval");
	return 1;
}

static void
set_index_names(struct stmt *st, json_t *idx)
{
	const char *name = ferry_sql_jstr(idx, "idxname");
	const char *schema =
	    ferry_sql_jstr(json_object_get(idx, "relation"), "schemaname");

	free(st->index_name);
	free(st->index_schema);
	st->index_name = name != NULL ? xstrdup(name) : NULL;
	st->index_schema = schema != NULL ? xstrdup(schema) : NULL;
}

static void
classify_tx(struct stmt *st, json_t *v, const char *t, size_t off, size_t end)
{
	const char *kind = ferry_sql_jstr(v, "kind");
	int chain = ferry_sql_jtrue(v, "chain");
	int opts = json_array_size(json_object_get(v, "options")) > 0;
	size_t w1e = word_end(t, off, end);

	st->flags |= FERRY_STMT_TX_CONTROL;
	st->tx = TX_OTHER;
	st->what = "transaction control";
	if (kind == NULL)
		return;
	if (strcmp(kind, "TRANS_STMT_BEGIN") == 0) {
		st->tx = opts ? TX_BEGIN_OPTS : TX_BEGIN;
		st->what = opts ? "BEGIN with options" : "BEGIN";
	} else if (strcmp(kind, "TRANS_STMT_START") == 0) {
		st->tx = opts ? TX_BEGIN_OPTS : TX_BEGIN;
		st->what = opts ? "START TRANSACTION with options"
		                : "START TRANSACTION";
	} else if (strcmp(kind, "TRANS_STMT_COMMIT") == 0) {
		/* AND CHAIN starts a new transaction block at once. */
		st->tx = chain ? TX_OTHER : TX_COMMIT;
		if (word_is(t, off, w1e, "end"))
			st->what = chain ? "END AND CHAIN" : "END";
		else
			st->what = chain ? "COMMIT AND CHAIN" : "COMMIT";
	} else if (strcmp(kind, "TRANS_STMT_ROLLBACK") == 0) {
		st->tx = chain ? TX_OTHER : TX_END_BLOCK;
		if (word_is(t, off, w1e, "abort"))
			st->what = chain ? "ABORT AND CHAIN" : "ABORT";
		else
			st->what = chain ? "ROLLBACK AND CHAIN" : "ROLLBACK";
	} else if (strcmp(kind, "TRANS_STMT_SAVEPOINT") == 0) {
		st->what = "SAVEPOINT";
	} else if (strcmp(kind, "TRANS_STMT_RELEASE") == 0) {
		st->what = "RELEASE SAVEPOINT";
	} else if (strcmp(kind, "TRANS_STMT_ROLLBACK_TO") == 0) {
		st->what = "ROLLBACK TO SAVEPOINT";
	} else if (strcmp(kind, "TRANS_STMT_PREPARE") == 0) {
		st->tx = TX_END_BLOCK;
		st->what = "PREPARE TRANSACTION";
	} else if (strcmp(kind, "TRANS_STMT_COMMIT_PREPARED") == 0) {
		st->flags |= FERRY_STMT_NO_TX;
		st->what = "COMMIT PREPARED";
	} else if (strcmp(kind, "TRANS_STMT_ROLLBACK_PREPARED") == 0) {
		st->flags |= FERRY_STMT_NO_TX;
		st->what = "ROLLBACK PREPARED";
	}
}

static void
no_tx(struct stmt *st, const char *what)
{
	st->flags |= FERRY_STMT_NO_TX;
	st->what = what;
}

/* Classifies one statement from its parse tree node {"<Type>": {...}}. */
static void
classify_node(struct stmt *st, json_t *n, const char *t)
{
	const char *type, *kind;
	json_t *v, *cmds, *cmd, *pc;
	size_t i;

	if (!json_is_object(n) || json_object_size(n) != 1)
		return;
	type = json_object_iter_key(json_object_iter(n));
	v = json_object_iter_value(json_object_iter(n));
	if (strcmp(type, "IndexStmt") == 0) {
		if (ferry_sql_jtrue(v, "concurrent")) {
			no_tx(st, "CREATE INDEX CONCURRENTLY");
			st->flags |= FERRY_STMT_CONCURRENT;
			set_index_names(st, v);
		}
	} else if (strcmp(type, "DropStmt") == 0) {
		if (ferry_sql_jtrue(v, "concurrent"))
			no_tx(st, "DROP INDEX CONCURRENTLY");
	} else if (strcmp(type, "ReindexStmt") == 0) {
		kind = ferry_sql_jstr(v, "kind");
		pc = find_defelem(json_object_get(v, "params"), "concurrently");
		if (pc != NULL && defelem_true(pc))
			no_tx(st, "REINDEX CONCURRENTLY");
		else if (kind != NULL &&
		    strcmp(kind, "REINDEX_OBJECT_SCHEMA") == 0)
			no_tx(st, "REINDEX SCHEMA");
		else if (kind != NULL &&
		    strcmp(kind, "REINDEX_OBJECT_SYSTEM") == 0)
			no_tx(st, "REINDEX SYSTEM");
		else if (kind != NULL &&
		    strcmp(kind, "REINDEX_OBJECT_DATABASE") == 0)
			no_tx(st, "REINDEX DATABASE");
	} else if (strcmp(type, "VacuumStmt") == 0) {
		/* ANALYZE alone may run in a transaction block. */
		if (ferry_sql_jtrue(v, "is_vacuumcmd"))
			no_tx(st, "VACUUM");
	} else if (strcmp(type, "CreatedbStmt") == 0) {
		no_tx(st, "CREATE DATABASE");
	} else if (strcmp(type, "DropdbStmt") == 0) {
		no_tx(st, "DROP DATABASE");
	} else if (strcmp(type, "AlterSystemStmt") == 0) {
		no_tx(st, "ALTER SYSTEM");
	} else if (strcmp(type, "CreateTableSpaceStmt") == 0) {
		no_tx(st, "CREATE TABLESPACE");
	} else if (strcmp(type, "DropTableSpaceStmt") == 0) {
		no_tx(st, "DROP TABLESPACE");
	} else if (strcmp(type, "AlterDatabaseStmt") == 0) {
		if (find_defelem(json_object_get(v, "options"), "tablespace") !=
		    NULL)
			no_tx(st, "ALTER DATABASE ... SET TABLESPACE");
	} else if (strcmp(type, "ClusterStmt") == 0) {
		if (json_object_get(v, "relation") == NULL)
			no_tx(st, "CLUSTER without a table");
	} else if (strcmp(type, "AlterTableStmt") == 0) {
		cmds = json_object_get(v, "cmds");
		for (i = 0; i < json_array_size(cmds); i++) {
			cmd = node(json_array_get(cmds, i), "AlterTableCmd");
			kind = ferry_sql_jstr(cmd, "subtype");
			pc = node(json_object_get(cmd, "def"), "PartitionCmd");
			if (kind != NULL &&
			    strcmp(kind, "AT_DetachPartition") == 0 &&
			    ferry_sql_jtrue(pc, "concurrent"))
				no_tx(st,
				    "ALTER TABLE ... DETACH PARTITION ... "
				    "CONCURRENTLY");
		}
	} else if (strcmp(type, "AlterEnumStmt") == 0) {
		/* RENAME VALUE has oldVal as well. */
		if (json_object_get(v, "newVal") != NULL &&
		    json_object_get(v, "oldVal") == NULL)
			st->flags |= FERRY_STMT_ADD_VALUE;
	} else if (strcmp(type, "TransactionStmt") == 0) {
		classify_tx(st, v, t, st->off, st->end);
	}
}

/*
 * Parses the statement t[st->off, st->end) and sets its flags. A statement
 * whose tree cannot be read (nested past jansson's depth limit) keeps no
 * flags: if it needed another mode, the server says so.
 */
static void
classify(struct stmt *st, const char *t)
{
	PgQueryParseResult r;
	json_t *root = NULL, *stmts;
	char *sql = xstrndup(t + st->off, st->end - st->off);
	size_t i;

	r = pg_query_parse(sql);
	if (r.error != NULL || r.parse_tree == NULL)
		goto out;
	root = ferry_sql_load_json(r.parse_tree);
	stmts = json_object_get(root, "stmts");
	for (i = 0; i < json_array_size(stmts); i++)
		classify_node(st,
		    json_object_get(json_array_get(stmts, i), "stmt"), t);
out:
	json_decref(root);
	pg_query_free_parse_result(r);
	free(sql);
}

/* Counts newlines in t[from, to). */
static int
count_lines(const char *t, size_t from, size_t to)
{
	const char *p = t + from, *e = t + to, *nl;
	int n = 0;

	while (p < e) {
		nl = memchr(p, '\n', (size_t)(e - p));
		if (nl == NULL)
			break;
		n++;
		p = nl + 1;
	}
	return n;
}

/*
 * Maps the parser's error position (1-based, in characters as PostgreSQL's
 * pg_mblen counts them for UTF-8) to a 1-based line.
 */
static int
cursor_line(const char *t, size_t len, int cursorpos)
{
	const unsigned char *p = (const unsigned char *)t;
	size_t i = 0, k;
	int c;

	for (c = 1; c < cursorpos && i < len; c++) {
		if (p[i] < 0x80)
			k = 1;
		else if ((p[i] & 0xe0) == 0xc0)
			k = 2;
		else if ((p[i] & 0xf0) == 0xe0)
			k = 3;
		else if ((p[i] & 0xf8) == 0xf0)
			k = 4;
		else
			k = 1;
		i = k < len - i ? i + k : len;
	}
	return 1 + count_lines(t, 0, i);
}

/* The warning for a file the parser refused. */
static char *
parser_warning(const struct ferry_script *s, const char *name,
    const PgQueryError *e)
{
	const char *msg = e->message != NULL ? e->message : "unknown error";

	if (e->cursorpos <= 0)
		return xasprintf("cannot parse '%s' with the "
		                 "PostgreSQL " PG_MAJORVERSION
		                 " grammar: %s; " SIMPLE_TAIL,
		    name, msg);
	return xasprintf("cannot parse '%s' with the "
	                 "PostgreSQL " PG_MAJORVERSION
	                 " grammar at line %d: %s; " SIMPLE_TAIL,
	    name, cursor_line(s->text, s->len, e->cursorpos), msg);
}

static void
set_simple(struct ferry_script *s, const char *reason, char *warning)
{
	s->mode = FERRY_MODE_SIMPLE;
	s->reason = xstrdup(reason);
	s->warning = warning;
	s->body_off = 0;
	s->body_len = s->len;
}

/* Applies one "-- ferry:..." directive; c[0, n) follows the "--". */
static int
directive(struct ferry_script *s, const char *c, size_t n, const char *name,
    int line, struct ferry_err *err)
{
	static const char prefix[] = "ferry:";
	struct ferry_err derr;
	size_t i = 0, ks, ke, vs;
	int64_t *target, ms;
	char *key = NULL, *val = NULL, *what = NULL;
	int rc = 0;

	while (i < n && ferry_sql_is_space(c[i]))
		i++;
	while (n > i && ferry_sql_is_space(c[n - 1]))
		n--;
	if (n - i < sizeof(prefix) - 1 ||
	    memcmp(c + i, prefix, sizeof(prefix) - 1) != 0)
		return 0; /* an ordinary comment */
	ks = i + sizeof(prefix) - 1;
	for (ke = ks; ke < n &&
	     (c[ke] == '_' || c[ke] == '-' || (c[ke] >= 'a' && c[ke] <= 'z'));
	     ke++)
		;
	key = xstrndup(c + ks, ke - ks);
	/* "ferry:lint-ignore RULE…" is for ferry lint, which checks it. */
	if (strcmp(key, "lint-ignore") == 0)
		goto out;
	for (vs = ke; vs < n && ferry_sql_is_space(c[vs]); vs++)
		;
	if (vs < n && c[vs] != '=') {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: malformed directive '%.*s'", name, line,
		    (int)(n - i), c + i);
		goto out;
	}
	if (vs < n) {
		for (vs++; vs < n && ferry_sql_is_space(c[vs]); vs++)
			;
		val = xstrndup(c + vs, n - vs);
	}
	if (strcmp(key, "no-transaction") == 0) {
		if (val != NULL) {
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "'%s' line %d: directive 'ferry:no-transaction' "
			    "takes no value",
			    name, line);
			goto out;
		}
		s->forced = 1;
		goto out;
	}
	if (strcmp(key, "lock_timeout") == 0)
		target = &s->lock_timeout_ms;
	else if (strcmp(key, "statement_timeout") == 0)
		target = &s->statement_timeout_ms;
	else {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: unknown directive 'ferry:%s' (known: "
		    "no-transaction, lock_timeout, statement_timeout, "
		    "lint-ignore)",
		    name, line, key);
		goto out;
	}
	if (val == NULL || val[0] == '\0') {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: directive 'ferry:%s' needs a duration, "
		    "e.g. ferry:%s=5s",
		    name, line, key, key);
		goto out;
	}
	if (*target >= 0) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' line %d: directive 'ferry:%s' is given twice", name,
		    line, key);
		goto out;
	}
	what = xasprintf("ferry:%s", key);
	ferry_err_clear(&derr);
	if (ferry_parse_duration_ms(val, what, &ms, &derr) != 0) {
		rc = ferry_errf(err, FERRY_EUSAGE, "'%s' line %d: %s", name,
		    line, derr.msg);
		goto out;
	}
	*target = ms;
out:
	free(what);
	free(val);
	free(key);
	return rc;
}

/*
 * Reads the "-- ferry:" directives among the comments before the first
 * statement (after a byte order mark, if any).
 */
static int
read_directives(struct ferry_script *s, const char *name, struct ferry_err *err)
{
	const char *t = s->text;
	size_t len = s->len, i = 0, j;
	int line = 1, rc;

	if (len >= 3 && memcmp(t, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	for (;;) {
		while (i < len && ferry_sql_is_space(t[i])) {
			if (t[i] == '\n')
				line++;
			i++;
		}
		j = ferry_sql_comment_end(t, i, len);
		if (j == i)
			return 0;
		if (t[i] == '-') {
			rc =
			    directive(s, t + i + 2, j - i - 2, name, line, err);
			if (rc != 0)
				return rc;
		} else {
			line += count_lines(t, i, j);
		}
		i = j;
	}
}

static const char *
reason_what(const struct stmt *st)
{
	return st->what != NULL ? st->what : "statement";
}

/*
 * Chooses the mode, the body and the steps for statements st[0, n), and
 * hands their index names to the steps.
 */
static void
decide(struct ferry_script *s, struct stmt *st, size_t n)
{
	size_t first = 0, last = n, i, j, k, cause = SIZE_MAX, lead = SIZE_MAX;
	struct ferry_step *step;
	unsigned f;
	int wrap = 0, have_index = 0;

	if (n >= 2 && st[0].tx == TX_BEGIN && st[n - 1].tx == TX_COMMIT) {
		wrap = 1;
		for (i = 1; i + 1 < n; i++)
			if (st[i].flags & FERRY_STMT_TX_CONTROL)
				wrap = 0;
	}
	if (wrap) {
		first = 1;
		last = n - 1;
		/* The split ends a statement that is not the last at its
		   ';'. */
		s->body_off = st[0].end + (s->text[st[0].end] == ';');
		s->body_len = st[n - 1].off - s->body_off;
	}

	/* A plain BEGIN opening the file is blamed only if nothing after it
	   is: "BEGIN; ...; COMMIT; SELECT 1;" names the COMMIT. */
	for (i = first; i < last && cause == SIZE_MAX; i++) {
		f = st[i].flags;
		if (i == 0 && st[i].tx == TX_BEGIN)
			lead = 0;
		else if ((f & (FERRY_STMT_NO_TX | FERRY_STMT_TX_CONTROL)) ||
		    ((f & FERRY_STMT_ADD_VALUE) && i + 1 < last))
			cause = i;
	}
	if (cause == SIZE_MAX)
		cause = lead;

	if (s->forced) {
		s->mode = FERRY_MODE_PER_STATEMENT;
		s->reason = xstrdup("forced by -- ferry:no-transaction");
	} else if (cause != SIZE_MAX) {
		s->mode = FERRY_MODE_PER_STATEMENT;
		f = st[cause].flags;
		if (f & FERRY_STMT_NO_TX)
			s->reason = xasprintf("%s at line %d cannot run in a "
			                      "transaction block",
			    reason_what(&st[cause]), st[cause].line);
		else if (f & FERRY_STMT_TX_CONTROL)
			s->reason =
			    xasprintf("transaction control (%s) at line %d",
			        reason_what(&st[cause]), st[cause].line);
		else
			s->reason = xasprintf("ALTER TYPE ... ADD VALUE at "
			                      "line %d is followed by other "
			                      "statements (a use of the new "
			                      "value would fail in the same "
			                      "transaction, SQLSTATE 55P04)",
			    st[cause].line);
	} else {
		s->mode = FERRY_MODE_TRANSACTION;
		s->reason = xstrdup("");
	}

	s->steps = xcalloc(last > first ? last - first : 1, sizeof(*s->steps));
	for (i = first; i < last; i = k + 1) {
		k = i;
		/* A user's transaction block stays atomic as one step; one
		   left open runs to the end of the file. */
		if (st[i].tx == TX_BEGIN || st[i].tx == TX_BEGIN_OPTS) {
			for (k = i + 1; k < last; k++)
				if (st[k].tx == TX_COMMIT ||
				    st[k].tx == TX_END_BLOCK)
					break;
			if (k == last)
				k = last - 1;
		}
		step = &s->steps[s->nsteps++];
		step->offset = st[i].off;
		step->len = st[k].end - st[i].off;
		step->line = st[i].line;
		for (j = i; j <= k; j++) {
			step->flags |= st[j].flags;
			if ((st[j].flags & FERRY_STMT_CONCURRENT) &&
			    !have_index) {
				have_index = 1;
				step->index_name = st[j].index_name;
				step->index_schema = st[j].index_schema;
				st[j].index_name = NULL;
				st[j].index_schema = NULL;
			}
		}
		have_index = 0;
	}
}

int
ferry_script_parse(const char *sql, size_t len, const char *name,
    struct ferry_script **out, struct ferry_err *err)
{
	PgQuerySplitResult split;
	struct ferry_script *s;
	struct stmt *st = NULL;
	size_t n = 0, nsplit, i, loc, slen, pos = 0;
	int have_split = 0, line = 1, rc;
	const char *nul;

	memset(&split, 0, sizeof(split));
	*out = NULL;
	if (name == NULL)
		name = "migration.sql";
	s = xcalloc(1, sizeof(*s));
	s->text = xmalloc(len + 1);
	if (len > 0)
		memcpy(s->text, sql, len);
	s->text[len] = '\0';
	s->len = len;
	s->lock_timeout_ms = -1;
	s->statement_timeout_ms = -1;
	s->body_off = 0;
	s->body_len = len;

	rc = read_directives(s, name, err);
	if (rc != 0)
		goto out;

	/* libpg_query reads a C string; the server refuses a NUL anyway. */
	nul = memchr(s->text, '\0', len);
	if (nul != NULL) {
		set_simple(s, "contains a NUL byte",
		    xasprintf("'%s' contains a NUL byte at line %d, which "
		              "PostgreSQL does not accept; " SIMPLE_TAIL,
		        name,
		        1 + count_lines(s->text, 0, (size_t)(nul - s->text))));
		goto out;
	}
	if (len > MAX_PARSE_LEN) {
		set_simple(s, "too large to parse",
		    xasprintf("'%s' is too large to parse (%zu "
		              "bytes); " SIMPLE_TAIL,
		        name, len));
		goto out;
	}

	split = pg_query_split_with_parser(s->text);
	have_split = 1;
	if (split.error != NULL) {
		set_simple(s,
		    "cannot be parsed with the PostgreSQL " PG_MAJORVERSION
		    " grammar",
		    parser_warning(s, name, split.error));
		goto out;
	}

	nsplit = split.n_stmts > 0 ? (size_t)split.n_stmts : 0;
	st = xcalloc(nsplit > 0 ? nsplit : 1, sizeof(*st));
	for (i = 0; i < nsplit; i++) {
		if (split.stmts[i]->stmt_location < 0 ||
		    split.stmts[i]->stmt_len < 0)
			continue;
		loc = (size_t)split.stmts[i]->stmt_location;
		slen = (size_t)split.stmts[i]->stmt_len;
		if (loc > len || slen > len - loc || loc < pos)
			continue; /* never seen; kept out to stay in range */
		st[n].end = loc + slen;
		st[n].off = ferry_sql_skip_space(s->text, loc, st[n].end);
		if (st[n].off == st[n].end)
			continue;
		line += count_lines(s->text, pos, st[n].off);
		pos = st[n].off;
		st[n].line = line;
		if (may_matter(s->text, st[n].off, st[n].end))
			classify(&st[n], s->text);
		n++;
	}
	s->nstatements = n;
	decide(s, st, n);
out:
	if (have_split)
		pg_query_free_split_result(split);
	for (i = 0; i < n; i++) {
		free(st[i].index_name);
		free(st[i].index_schema);
	}
	free(st);
	if (rc != 0) {
		ferry_script_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void
ferry_script_free(struct ferry_script *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nsteps; i++) {
		free(s->steps[i].index_name);
		free(s->steps[i].index_schema);
	}
	free(s->steps);
	free(s->reason);
	free(s->warning);
	free(s->text);
	free(s);
}

enum ferry_mode
ferry_script_mode(const struct ferry_script *s)
{
	return s->mode;
}

const char *
ferry_mode_name(enum ferry_mode mode)
{
	switch (mode) {
	case FERRY_MODE_TRANSACTION:
		return "transaction";
	case FERRY_MODE_PER_STATEMENT:
		return "per-statement";
	case FERRY_MODE_SIMPLE:
		return "simple";
	}
	return "unknown";
}

const char *
ferry_script_reason(const struct ferry_script *s)
{
	return s->reason;
}

const char *
ferry_script_warning(const struct ferry_script *s)
{
	return s->warning;
}

size_t
ferry_script_nstatements(const struct ferry_script *s)
{
	return s->nstatements;
}

size_t
ferry_script_nsteps(const struct ferry_script *s)
{
	return s->nsteps;
}

const struct ferry_step *
ferry_script_step(const struct ferry_script *s, size_t i)
{
	return i < s->nsteps ? &s->steps[i] : NULL;
}

void
ferry_script_body(const struct ferry_script *s, size_t *offset, size_t *len)
{
	*offset = s->body_off;
	*len = s->body_len;
}

int64_t
ferry_script_lock_timeout_ms(const struct ferry_script *s)
{
	return s->lock_timeout_ms;
}

int64_t
ferry_script_statement_timeout_ms(const struct ferry_script *s)
{
	return s->statement_timeout_ms;
}

void
ferry_script_line_col(const struct ferry_script *s, size_t offset, int *line,
    int *col)
{
	const unsigned char *p = (const unsigned char *)s->text;
	size_t lo = 0, hi = s->nsteps, mid, from = 0, ls, k;
	int ln = 1, c = 1;

	if (offset > s->len)
		offset = s->len;
	/* Count lines from the last step starting at or before offset. */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (s->steps[mid].offset <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0) {
		from = s->steps[lo - 1].offset;
		ln = s->steps[lo - 1].line;
	}
	ln += count_lines(s->text, from, offset);

	for (ls = offset; ls > 0 && s->text[ls - 1] != '\n'; ls--)
		;
	/* Characters before offset; a byte of bad UTF-8 counts as one. */
	while (ls < offset) {
		k = ferry_sql_utf8_seq_len(p + ls, s->len - ls);
		if (k == 0)
			k = 1;
		if (ls + k > offset)
			break;
		ls += k;
		c++;
	}
	*line = ln;
	*col = c;
}

size_t
ferry_script_step_at(const struct ferry_script *s, size_t offset)
{
	size_t lo = 0, hi = s->nsteps, mid;

	/* The first step that ends after offset. */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (s->steps[mid].offset + s->steps[mid].len <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == s->nsteps && lo > 0)
		lo--;
	return lo;
}
