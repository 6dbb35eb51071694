/*
 * shadow.c -- shadow replay (digest per prefix) and drift checks.
 *
 * The report keeps, for the empty schema and after each migration, the
 * digest and the whole schema document: the document is what a drift
 * check needs to print a diff, and keeping it in the report means the
 * check needs no shadow database of its own. See
 * docs/shadow-and-drift.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "engine.h"
#include "history.h"
#include "log.h"
#include "shadow.h"
#include "util.h"

struct ferry_shadow_report {
	json_t *root;
	json_t *steps; /* borrowed: [initial, after 1, ..., after n] */
	size_t n;      /* migrations */
	int pg_major;
	const char *home; /* the connection's schema */
	const char *const *schemas;
	size_t nschemas;
	const char **names; /* owned array, borrowed strings */
};

/* ---- Report model ----------------------------------------------------- */

static int
is_digest(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != FERRY_SHA256_HEX_LEN)
		return 0;
	for (i = 0; i < FERRY_SHA256_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		        (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Sets up the borrowed views of r->root; FERRY_EUSAGE if malformed. */
static int
report_index(struct ferry_shadow_report *r, const char *source,
    struct ferry_err *err)
{
	json_t *root = r->root, *migs, *initial, *v, *scope;
	const char *fmt = NULL, *digest = NULL;
	size_t i, n;

	if (!json_is_object(root) ||
	    json_unpack(root, "{s:s, s:{s:i}, s:s, s:o, s:o, s:o, s:s}",
	        "format", &fmt, "postgres", "major", &r->pg_major, "schema",
	        &r->home, "schemas", &scope, "initial", &initial, "migrations",
	        &migs, "digest", &digest) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is not a shadow report (format, postgres, schema, "
		    "schemas, initial, migrations and digest are required)",
		    source);
	if (strcmp(fmt, FERRY_SHADOW_FORMAT) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' has format '%s', expected '%s'", source, fmt,
		    FERRY_SHADOW_FORMAT);
	if (!json_is_array(scope) || !json_is_array(migs))
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s': schemas and migrations must be arrays", source);
	r->nschemas = json_array_size(scope);
	r->schemas = xcalloc(r->nschemas + 1, sizeof(char *));
	for (i = 0; i < r->nschemas; i++) {
		const char *s = json_string_value(json_array_get(scope, i));
		if (s == NULL)
			return ferry_errf(err, FERRY_EUSAGE,
			    "'%s': schemas must be strings", source);
		((const char **)r->schemas)[i] = s;
	}
	n = json_array_size(migs);
	r->n = n;
	r->names = xcalloc(n + 1, sizeof(char *));
	r->steps = json_array();
	json_array_append(r->steps, initial);
	for (i = 0; i < n; i++) {
		const char *name, *sum;
		v = json_array_get(migs, i);
		if (json_unpack(v, "{s:s, s:s}", "name", &name, "checksum",
		        &sum) != 0)
			return ferry_errf(err, FERRY_EUSAGE,
			    "'%s': migration %zu has no name or checksum",
			    source, i + 1);
		r->names[i] = name;
		json_array_append(r->steps, v);
	}
	for (i = 0; i <= n; i++) {
		const char *d = NULL;
		json_t *doc = NULL;
		v = json_array_get(r->steps, i);
		if (json_unpack(v, "{s:s, s:o}", "digest", &d, "document",
		        &doc) != 0 ||
		    !is_digest(d) || !json_is_object(doc))
			return ferry_errf(err, FERRY_EUSAGE,
			    "'%s': %s has no valid digest and document", source,
			    i == 0 ? "the initial schema" : r->names[i - 1]);
	}
	if (strcmp(digest, ferry_shadow_report_digest(r, n)) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s': the final digest is not the last migration's",
		    source);
	return 0;
}

void
ferry_shadow_report_free(struct ferry_shadow_report *r)
{
	if (r == NULL)
		return;
	json_decref(r->steps);
	json_decref(r->root);
	free((void *)r->schemas);
	free(r->names);
	free(r);
}

int
ferry_shadow_report_load(const char *path, struct ferry_shadow_report **out,
    struct ferry_err *err)
{
	struct ferry_shadow_report *r = NULL;
	struct ferry_buf b;
	json_error_t je;
	int rc;

	*out = NULL;
	ferry_buf_init(&b, FERRY_SHADOW_MAX_BYTES);
	rc = ferry_buf_read_file(&b, path, err);
	if (rc != 0)
		goto out;
	r = xcalloc(1, sizeof(*r));
	r->root = json_loadb(ferry_buf_str(&b), ferry_buf_len(&b), 0, &je);
	if (r->root == NULL) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is not valid JSON: %s (line %d)", path, je.text,
		    je.line);
		goto out;
	}
	rc = report_index(r, path, err);
	if (rc != 0)
		goto out;
	*out = r;
	r = NULL;
out:
	ferry_shadow_report_free(r);
	ferry_buf_release(&b);
	return rc;
}

int
ferry_shadow_report_save(const struct ferry_shadow_report *r, const char *path,
    struct ferry_err *err)
{
	char *text = json_dumps(r->root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	int rc;

	if (text == NULL) {
		fprintf(stderr, "ferry: out of memory\n");
		abort();
	}
	rc = ferry_write_file_atomic(path, text, strlen(text), 0644, err);
	free(text);
	return rc;
}

size_t
ferry_shadow_report_count(const struct ferry_shadow_report *r)
{
	return r->n;
}

const char *
ferry_shadow_report_digest(const struct ferry_shadow_report *r, size_t k)
{
	return json_string_value(
	    json_object_get(json_array_get(r->steps, k), "digest"));
}

const char *
ferry_shadow_report_name(const struct ferry_shadow_report *r, size_t i)
{
	return r->names[i];
}

int
ferry_shadow_report_pg_major(const struct ferry_shadow_report *r)
{
	return r->pg_major;
}

static const char *
report_checksum(const struct ferry_shadow_report *r, size_t i)
{
	return json_string_value(
	    json_object_get(json_array_get(r->steps, i + 1), "checksum"));
}

int
ferry_shadow_report_matches(const struct ferry_shadow_report *r,
    const struct ferry_migrations *migs, struct ferry_err *err)
{
	size_t i, n = ferry_migrations_count(migs);

	for (i = 0; i < n && i < r->n; i++) {
		const struct ferry_migration *m = ferry_migrations_get(migs, i);
		if (strcmp(m->name, r->names[i]) != 0)
			return ferry_errf(err, FERRY_EFINDING,
			    "the shadow report does not match the migrations: "
			    "migration %zu is '%s' in the report, '%s' here",
			    i + 1, r->names[i], m->name);
		if (strcmp(m->checksum, report_checksum(r, i)) != 0)
			return ferry_errf(err, FERRY_EFINDING,
			    "the shadow report does not match the migrations: "
			    "'%s' changed since the shadow replay (checksum "
			    "%.12s "
			    "in the report, %.12s here)",
			    m->name, report_checksum(r, i), m->checksum);
	}
	if (n != r->n)
		return ferry_errf(err, FERRY_EFINDING,
		    "the shadow report does not match the migrations: it has "
		    "%zu migrations, there are %zu here (replay them again "
		    "with 'ferry-agent shadow')",
		    r->n, n);
	return 0;
}

/* The report's document for prefix k, loaded and checked. */
static int
report_document(const struct ferry_shadow_report *r, size_t k,
    struct ferry_schema **out, struct ferry_err *err)
{
	json_t *doc = json_object_get(json_array_get(r->steps, k), "document");
	char *text = json_dumps(doc, 0);
	int rc;

	if (text == NULL) {
		fprintf(stderr, "ferry: out of memory\n");
		abort();
	}
	rc = ferry_schema_from_json(text, strlen(text), "the shadow report",
	    out, err);
	free(text);
	if (rc == 0 &&
	    strcmp(ferry_schema_digest(*out),
	        ferry_shadow_report_digest(r, k)) != 0) {
		ferry_schema_free(*out);
		*out = NULL;
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "the shadow report's document for prefix %zu does not have "
		    "the digest recorded for it",
		    k);
	}
	return rc;
}

/* ---- Shadow replay ---------------------------------------------------- */

/* Reads the server's system identifier and the database's name. */
static int
db_identity(struct ferry_db *db, char **sysid, char **dbname,
    struct ferry_err *err)
{
	PGresult *res;

	res = ferry_db_query(db,
	    "SELECT system_identifier::text, current_database() "
	    "FROM pg_control_system()",
	    0, NULL, "cannot read the database's identity", err);
	if (res == NULL)
		return err->code;
	*sysid = xstrdup(PQgetvalue(res, 0, 0));
	*dbname = xstrdup(PQgetvalue(res, 0, 1));
	PQclear(res);
	return 0;
}

/* Refuses a shadow that is the target database. */
static int
check_not_target(struct ferry_db *shadow, const char *target_url,
    struct ferry_err *err)
{
	struct ferry_db *target = NULL;
	char *s_id = NULL, *s_db = NULL, *t_id = NULL, *t_db = NULL;
	struct ferry_err terr;
	int rc;

	ferry_err_clear(&terr);
	rc = ferry_db_open(target_url, "ferry-agent", &target, &terr);
	if (rc != 0) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "cannot check that the shadow database is not the target "
		    "database: %s",
		    terr.msg);
		goto out;
	}
	rc = db_identity(shadow, &s_id, &s_db, err);
	if (rc == 0)
		rc = db_identity(target, &t_id, &t_db, err);
	if (rc != 0)
		goto out;
	if (strcmp(s_id, t_id) == 0 && strcmp(s_db, t_db) == 0)
		rc = ferry_errf(err, FERRY_EFINDING,
		    "refusing to use the target database as the shadow "
		    "database: '%s' and '%s' are the same database \"%s\" "
		    "(system identifier %s); a shadow database is wiped",
		    ferry_db_display(shadow), ferry_db_display(target), s_db,
		    s_id);
out:
	free(s_id);
	free(s_db);
	free(t_id);
	free(t_db);
	ferry_db_close(target);
	return rc;
}

/* Refuses an unmarked shadow, or marks it with init. */
static int
check_mark(struct ferry_db *db, int init, struct ferry_err *err)
{
	PGresult *res;
	char *sql = NULL, *ident = NULL, *lit = NULL;
	const char *comment, *dbname;
	int rc = 0;

	res = ferry_db_query(db,
	    "SELECT coalesce(shobj_description(oid, 'pg_database'), ''), "
	    "datname FROM pg_database WHERE datname = current_database()",
	    0, NULL, "cannot read the shadow database's comment", err);
	if (res == NULL)
		return err->code;
	comment = PQgetvalue(res, 0, 0);
	dbname = PQgetvalue(res, 0, 1);
	if (strcmp(comment, FERRY_SHADOW_MARK) == 0)
		goto out;
	if (!init) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "database \"%s\" is not marked as a Ferry shadow database "
		    "(its comment is not '%s'); a shadow database is wiped: "
		    "give --init-shadow to mark it and use it",
		    dbname, FERRY_SHADOW_MARK);
		goto out;
	}
	ident = ferry_db_ident(db, dbname);
	lit = ferry_db_literal(db, FERRY_SHADOW_MARK);
	sql = xasprintf("COMMENT ON DATABASE %s IS %s", ident, lit);
	rc = ferry_db_exec(db, sql, "cannot mark the shadow database", err);
out:
	PQclear(res);
	free(sql);
	free(ident);
	free(lit);
	return rc;
}

/* Drops every extension but plpgsql and the schemas in scope, then
 * creates those schemas again, empty. */
static int
reset_shadow(struct ferry_db *db, const struct ferry_shadow_opts *o,
    struct ferry_err *err)
{
	struct ferry_buf sql;
	PGresult *res;
	char *id;
	size_t i;
	int rc, n;

	res = ferry_db_query(db,
	    "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' "
	    "ORDER BY extname",
	    0, NULL, "cannot list the shadow's extensions", err);
	if (res == NULL)
		return err->code;
	ferry_buf_init(&sql, (size_t)1 << 20);
	n = PQntuples(res);
	for (i = 0; i < (size_t)n; i++) {
		id = ferry_db_ident(db, PQgetvalue(res, (int)i, 0));
		ferry_buf_addf(&sql, "DROP EXTENSION IF EXISTS %s CASCADE;\n",
		    id);
		free(id);
	}
	PQclear(res);
	/* The NOTICEs of IF EXISTS would only be noise in the log. */
	ferry_buf_addf(&sql, "SET client_min_messages = warning;\n");
	ferry_buf_addf(&sql, "DROP SCHEMA IF EXISTS ferry CASCADE;\n");
	for (i = 0; i <= o->nschemas; i++) {
		const char *name =
		    i == 0 ? ferry_db_schema(db) : o->schemas[i - 1];
		if (strcmp(name, "ferry") == 0)
			continue;
		id = ferry_db_ident(db, name);
		ferry_buf_addf(&sql,
		    "DROP SCHEMA IF EXISTS %s CASCADE;\nCREATE SCHEMA %s;\n",
		    id, id);
		free(id);
	}
	ferry_buf_addf(&sql, "RESET client_min_messages;\n");
	rc = ferry_db_exec(db, ferry_buf_str(&sql),
	    "cannot reset the shadow database", err);
	ferry_buf_release(&sql);
	return rc;
}

/* Creates the requested extensions, naming any the server lacks. */
static int
create_extensions(struct ferry_db *db, const struct ferry_shadow_opts *o,
    struct ferry_err *err)
{
	const char *params[1];
	PGresult *res;
	char *sql, *id, *what;
	size_t i;
	int rc, have;

	for (i = 0; i < o->nextensions; i++) {
		params[0] = o->extensions[i];
		res = ferry_db_query(db,
		    "SELECT count(*) FROM pg_available_extensions "
		    "WHERE name = $1",
		    1, params, "cannot list the available extensions", err);
		if (res == NULL)
			return err->code;
		have = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
		PQclear(res);
		if (!have)
			return ferry_errf(err, FERRY_EOPER,
			    "extension \"%s\" is not available on the shadow "
			    "server",
			    o->extensions[i]);
		id = ferry_db_ident(db, o->extensions[i]);
		sql = xasprintf("CREATE EXTENSION IF NOT EXISTS %s", id);
		what = xasprintf("cannot create extension \"%s\" in the "
		                 "shadow database",
		    o->extensions[i]);
		rc = ferry_db_exec(db, sql, what, err);
		free(id);
		free(sql);
		free(what);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Appends {"digest", "document"} (plus what the caller adds) to steps. */
static int
record_step(struct ferry_db *db, const struct ferry_schema_opts *so,
    json_t *step, struct ferry_schema **last, struct ferry_err *err)
{
	struct ferry_schema *s = NULL;
	int rc;

	rc = ferry_schema_introspect(db, so, &s, NULL, err);
	if (rc != 0)
		return rc;
	json_object_set_new(step, "digest",
	    json_string(ferry_schema_digest(s)));
	json_object_set_new(step, "document",
	    json_deep_copy(ferry_schema_json(s)));
	ferry_schema_free(*last);
	*last = s;
	return 0;
}

/*
 * Turns the engine's "migration 'X' failed at statement N of M
 * (migration.sql line L, column C): message" into Prisma's P3006 wording.
 */
static int
replay_failed(const char *name, const struct ferry_err *eerr,
    struct ferry_err *err)
{
	const char *msg = eerr->msg, *rest;
	char *prefix = xasprintf("migration '%s' failed", name);
	int rc;

	if (eerr->code != FERRY_EFINDING || !ferry_starts_with(msg, prefix)) {
		free(prefix);
		return ferry_errf(err, eerr->code ? eerr->code : FERRY_EOPER,
		    "shadow replay of '%s': %s", name, msg);
	}
	rest = msg + strlen(prefix);
	free(prefix);
	if (ferry_starts_with(rest, " at "))
		rest += 4;
	else if (ferry_starts_with(rest, ": "))
		rest += 2;
	rc = ferry_errf(err, FERRY_EFINDING,
	    "migration '%s' failed to apply cleanly to the shadow database: "
	    "%s",
	    name, rest);
	return rc;
}

int
ferry_shadow_run(const struct ferry_shadow_opts *o,
    const struct ferry_migrations *migs, struct ferry_shadow_report **out,
    struct ferry_err *err)
{
	struct ferry_shadow_report *r = NULL;
	struct ferry_migrations *prefix = NULL;
	struct ferry_schema *last = NULL, *before = NULL;
	struct ferry_schema_opts so;
	struct ferry_apply_opts ao;
	struct ferry_db *db = NULL;
	struct ferry_err eerr;
	json_t *root = NULL, *list, *initial, *exts, *scope;
	char when[64];
	size_t i;
	int rc, applied;

	*out = NULL;
	memset(&so, 0, sizeof(so));
	so.schemas = o->schemas;
	so.nschemas = o->nschemas;
	rc = ferry_db_open(o->shadow_url, "ferry-agent shadow", &db, err);
	if (rc != 0)
		goto out;
	if (o->target_url != NULL) {
		rc = check_not_target(db, o->target_url, err);
		if (rc != 0)
			goto out;
	}
	rc = check_mark(db, o->init_shadow, err);
	if (rc == 0)
		rc = reset_shadow(db, o, err);
	if (rc == 0)
		rc = create_extensions(db, o, err);
	if (rc != 0)
		goto out;

	root = json_object();
	list = json_array();
	exts = json_array();
	scope = json_array();
	initial = json_object();
	for (i = 0; i < o->nextensions; i++)
		json_array_append_new(exts, json_string(o->extensions[i]));
	for (i = 0; i < o->nschemas; i++)
		json_array_append_new(scope, json_string(o->schemas[i]));
	rc = record_step(db, &so, initial, &last, err);
	if (rc != 0) {
		json_decref(list);
		json_decref(exts);
		json_decref(scope);
		json_decref(initial);
		goto out;
	}
	ferry_format_utc(ferry_wall_us(), when, sizeof(when));
	json_object_set_new(root, "format", json_string(FERRY_SHADOW_FORMAT));
	json_object_set_new(root, "created_at", json_string(when));
	json_object_set_new(root, "postgres",
	    json_pack("{s:i, s:s}", "major", ferry_schema_pg_major(last),
	        "version", ferry_schema_pg_version(last)));
	json_object_set_new(root, "schema", json_string(ferry_db_schema(db)));
	json_object_set_new(root, "schemas", scope);
	json_object_set_new(root, "extensions", exts);
	json_object_set_new(root, "initial", initial);
	json_object_set_new(root, "migrations", list);

	/* One migration at a time: the engine applies only the pending
	   last one of a growing prefix, and the schema is read between. */
	prefix = ferry_migrations_new();
	ferry_apply_opts_init(&ao);
	for (i = 0; i < ferry_migrations_count(migs); i++) {
		const struct ferry_migration *m = ferry_migrations_get(migs, i);
		json_t *step;

		ferry_migrations_add(prefix, m->name, m->sql, m->sql_len,
		    m->down_sql, m->down_len);
		ferry_err_clear(&eerr);
		applied = 0;
		if (ferry_engine_apply(db, prefix, &ao, &applied, &eerr) != 0) {
			rc = replay_failed(m->name, &eerr, err);
			goto out;
		}
		if (applied != 1) {
			rc = ferry_errf(err, FERRY_EOPER,
			    "shadow replay of '%s': the engine applied %d "
			    "migrations, expected 1",
			    m->name, applied);
			goto out;
		}
		step = json_pack("{s:s, s:s}", "name", m->name, "checksum",
		    m->checksum);
		json_array_append_new(list, step);
		/* The previous document is kept for on_migration. */
		ferry_schema_free(before);
		before = last;
		last = NULL;
		rc = record_step(db, &so, step, &last, err);
		if (rc != 0)
			goto out;
		if (o->on_step != NULL)
			o->on_step(o->ctx, i, m->name,
			    ferry_schema_digest(last));
		if (o->on_migration != NULL)
			o->on_migration(o->ctx, i, m, before, last);
	}
	json_object_set_new(root, "digest",
	    json_string(ferry_schema_digest(last)));

	r = xcalloc(1, sizeof(*r));
	r->root = root;
	root = NULL;
	rc = report_index(r, "the shadow report", err);
	if (rc != 0)
		goto out;
	*out = r;
	r = NULL;
out:
	ferry_shadow_report_free(r);
	json_decref(root);
	ferry_schema_free(before);
	ferry_schema_free(last);
	ferry_migrations_free(prefix);
	ferry_db_close(db);
	return rc;
}

/* ---- Drift ------------------------------------------------------------ */

void
ferry_shadow_drift_release(struct ferry_shadow_drift *d)
{
	ferry_schema_diff_free(d->diff);
	d->diff = NULL;
}

/*
 * Finds k, the number of the report's migrations the history holds, and
 * checks that they are exactly the first k with the report's checksums.
 */
static int
applied_prefix(struct ferry_db *db, const struct ferry_shadow_report *r,
    size_t *k, struct ferry_err *err)
{
	struct ferry_history *h = NULL;
	unsigned char *seen = NULL;
	size_t i, j, n;
	long other;
	int exists, rc;

	*k = 0;
	rc = ferry_history_load(db, &h, &exists, &other, err);
	if (rc != 0)
		return rc;
	seen = xcalloc(r->n + 1, 1);
	n = ferry_history_count(h);
	for (i = 0; i < n; i++) {
		const struct ferry_history_row *row = ferry_history_get(h, i);
		if (row->rolled_back_at != NULL)
			continue;
		if (row->finished_at == NULL) {
			rc = ferry_errf(err, FERRY_EFINDING,
			    "migration '%s' failed in the database (started at "
			    "%s): resolve it before checking for drift",
			    row->name, row->started_at);
			goto out;
		}
		for (j = 0; j < r->n; j++)
			if (strcmp(r->names[j], row->name) == 0)
				break;
		if (j == r->n) {
			rc = ferry_errf(err, FERRY_EFINDING,
			    "migration '%s' is applied to the database but is "
			    "not in the shadow report",
			    row->name);
			goto out;
		}
		if (strcmp(row->checksum, report_checksum(r, j)) != 0) {
			rc = ferry_errf(err, FERRY_EFINDING,
			    "migration '%s' was applied to the database with "
			    "checksum %.12s, the shadow report has %.12s",
			    row->name, row->checksum, report_checksum(r, j));
			goto out;
		}
		seen[j] = 1;
	}
	while (*k < r->n && seen[*k])
		(*k)++;
	for (j = *k; j < r->n; j++)
		if (seen[j]) {
			rc = ferry_errf(err, FERRY_EFINDING,
			    "the database has applied '%s' but not '%s', which "
			    "comes before it in the shadow report",
			    r->names[j], r->names[*k]);
			goto out;
		}
out:
	free(seen);
	ferry_history_free(h);
	return rc;
}

int
ferry_shadow_check_drift(struct ferry_db *db,
    const struct ferry_shadow_report *r, struct ferry_shadow_drift *d,
    struct ferry_err *err)
{
	struct ferry_schema *live = NULL, *want = NULL;
	struct ferry_schema_opts so;
	int rc;

	memset(d, 0, sizeof(*d));
	if (strcmp(ferry_db_schema(db), r->home) != 0)
		return ferry_errf(err, FERRY_EOPER,
		    "cannot compare: the shadow report describes schema "
		    "\"%s\", the database URL names schema \"%s\"",
		    r->home, ferry_db_schema(db));
	rc = applied_prefix(db, r, &d->applied, err);
	if (rc != 0)
		return rc;
	ferry_strlcpy(d->expected, ferry_shadow_report_digest(r, d->applied),
	    sizeof(d->expected));
	memset(&so, 0, sizeof(so));
	so.schemas = r->schemas;
	so.nschemas = r->nschemas;
	rc = ferry_schema_introspect(db, &so, &live, NULL, err);
	if (rc != 0)
		goto out;
	ferry_strlcpy(d->actual, ferry_schema_digest(live), sizeof(d->actual));
	if (ferry_schema_pg_major(live) != r->pg_major) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "cannot compare: the shadow report comes from PostgreSQL "
		    "%d, the database runs PostgreSQL %d",
		    r->pg_major, ferry_schema_pg_major(live));
		goto out;
	}
	if (strcmp(d->actual, d->expected) == 0)
		goto out;
	rc = report_document(r, d->applied, &want, err);
	if (rc == 0)
		rc = ferry_schema_diff(want, live, &d->diff, err);
	if (rc != 0)
		goto out;
	rc = ferry_errf(err, FERRY_EFINDING,
	    "schema drift: the database's digest %.12s differs from the "
	    "shadow's %.12s after %zu migration%s%s%s%s",
	    d->actual, d->expected, d->applied, d->applied == 1 ? "" : "s",
	    d->applied ? " (up to '" : "",
	    d->applied ? r->names[d->applied - 1] : "", d->applied ? "')" : "");
out:
	ferry_schema_free(live);
	ferry_schema_free(want);
	return rc;
}
