/*
 * schema.c -- the canonical schema document: built from the catalogs,
 * loaded from and saved to JSON, rendered as text and digested.
 */
#include "schema.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "log.h"
#include "util.h"

/* The canonical text is refused beyond this size. */
#define TEXT_MAX ((size_t)1 << 30)

struct ferry_schema {
	json_t *root;
	char *text;
	size_t textlen;
	char digest[FERRY_SHA256_HEX_LEN + 1];
	int major;
	size_t count;
};

/* ---- The model ---------------------------------------------------------- */

#define STR FERRY_SCHEMA_STR
#define TEXT FERRY_SCHEMA_TEXT
#define BOOL FERRY_SCHEMA_BOOL
#define LIST FERRY_SCHEMA_LIST
#define SET FERRY_SCHEMA_SET

static const struct ferry_schema_attr extension_attrs[] = {
	{ "schema", STR, "schema", NULL, 0, 1 },
	{ "version", STR, "version", NULL, 0, 0 },
};

static const struct ferry_schema_attr enum_attrs[] = {
	{ "values", LIST, "value", NULL, 0, 1 },
};

static const struct ferry_schema_attr domain_attrs[] = {
	{ "type", STR, "type", NULL, 1, 1 },
	{ "not_null", BOOL, "NOT NULL added", "NOT NULL dropped", 0, 1 },
	{ "default", STR, "default", NULL, 0, 1 },
	{ "collation", STR, "collation", NULL, 0, 1 },
};

static const struct ferry_schema_attr check_attrs[] = {
	{ "definition", STR, "definition", NULL, 1, 1 },
};

static const struct ferry_schema_sub domain_subs[] = {
	{ "constraints", "constraint", 0, check_attrs,
	    FERRY_NELEM(check_attrs) },
};

static const struct ferry_schema_attr field_attrs[] = {
	{ "type", STR, "type", NULL, 1, 1 },
	{ "collation", STR, "collation", NULL, 0, 1 },
};

static const struct ferry_schema_sub composite_subs[] = {
	{ "attributes", "attribute", 1, field_attrs, FERRY_NELEM(field_attrs) },
};

static const struct ferry_schema_attr sequence_attrs[] = {
	{ "type", STR, "type", NULL, 0, 1 },
	{ "start", STR, "start", NULL, 0, 1 },
	{ "increment", STR, "increment", NULL, 0, 1 },
	{ "min", STR, "minimum", NULL, 0, 1 },
	{ "max", STR, "maximum", NULL, 0, 1 },
	{ "cache", STR, "cache", NULL, 0, 1 },
	{ "cycle", BOOL, "CYCLE added", "CYCLE dropped", 0, 1 },
	{ "owned_by", STR, "owned by", NULL, 0, 1 },
};

static const struct ferry_schema_attr table_attrs[] = {
	{ "partition_key", STR, "partition key", NULL, 0, 1 },
	{ "partition_of", STR, "partition of", NULL, 0, 1 },
	{ "partition_bound", STR, "partition bound", NULL, 0, 1 },
	{ "inherits", LIST, "parent", NULL, 0, 1 },
	{ "unlogged", BOOL, "made UNLOGGED", "made LOGGED", 0, 1 },
	{ "row_security", BOOL, "row level security enabled",
	    "row level security disabled", 0, 1 },
	{ "force_row_security", BOOL, "row level security forced",
	    "row level security no longer forced", 0, 1 },
	{ "options", SET, "option", NULL, 0, 1 },
};

static const struct ferry_schema_attr column_attrs[] = {
	{ "type", STR, "type", NULL, 1, 1 },
	{ "not_null", BOOL, "NOT NULL added", "NOT NULL dropped", 0, 1 },
	{ "default", STR, "default", NULL, 0, 1 },
	{ "generated", STR, "generated", NULL, 0, 1 },
	{ "identity", STR, "identity", NULL, 0, 1 },
	{ "identity_options", STR, "identity options", NULL, 0, 1 },
	{ "collation", STR, "collation", NULL, 0, 1 },
};

static const struct ferry_schema_attr constraint_attrs[] = {
	{ "type", STR, "type", NULL, 0, 1 },
	{ "definition", STR, "definition", NULL, 1, 1 },
};

static const struct ferry_schema_attr index_attrs[] = {
	{ "definition", STR, "definition", NULL, 1, 1 },
	{ "invalid", BOOL, "became invalid", "became valid", 0, 1 },
};

static const struct ferry_schema_attr trigger_attrs[] = {
	{ "definition", STR, "definition", NULL, 1, 1 },
	{ "enabled", STR, "state", NULL, 0, 1 },
};

static const struct ferry_schema_attr policy_attrs[] = {
	{ "command", STR, "command", NULL, 0, 1 },
	{ "restrictive", BOOL, "made RESTRICTIVE", "made PERMISSIVE", 0, 1 },
	{ "roles", SET, "role", NULL, 0, 1 },
	{ "using", STR, "USING", NULL, 0, 1 },
	{ "with_check", STR, "WITH CHECK", NULL, 0, 1 },
};

static const struct ferry_schema_sub table_subs[] = {
	{ "columns", "column", 1, column_attrs, FERRY_NELEM(column_attrs) },
	{ "constraints", "constraint", 0, constraint_attrs,
	    FERRY_NELEM(constraint_attrs) },
	{ "indexes", "index", 0, index_attrs, FERRY_NELEM(index_attrs) },
	{ "triggers", "trigger", 0, trigger_attrs, FERRY_NELEM(trigger_attrs) },
	{ "policies", "policy", 0, policy_attrs, FERRY_NELEM(policy_attrs) },
};

static const struct ferry_schema_attr view_attrs[] = {
	{ "definition", TEXT, "definition", NULL, 1, 1 },
	{ "options", SET, "option", NULL, 0, 1 },
};

static const struct ferry_schema_sub view_subs[] = {
	{ "triggers", "trigger", 0, trigger_attrs, FERRY_NELEM(trigger_attrs) },
};

static const struct ferry_schema_sub matview_subs[] = {
	{ "indexes", "index", 0, index_attrs, FERRY_NELEM(index_attrs) },
};

static const struct ferry_schema_attr function_attrs[] = {
	{ "kind", STR, "kind", NULL, 0, 1 },
	{ "definition", TEXT, "definition", NULL, 1, 1 },
};

#undef STR
#undef TEXT
#undef BOOL
#undef LIST
#undef SET

enum {
	K_SCHEMA,
	K_EXTENSION,
	K_ENUM,
	K_DOMAIN,
	K_COMPOSITE,
	K_SEQUENCE,
	K_TABLE,
	K_VIEW,
	K_MATVIEW,
	K_FUNCTION,
	NKINDS
};

#define ATTRS(a) a, FERRY_NELEM(a)
#define NONE NULL, 0

static const struct ferry_schema_kind kinds[NKINDS] = {
	{ "schemas", "schema", "schema", "schemas", 0, NONE, NONE },
	{ "extensions", "extension", "extension", "extensions", 0,
	    ATTRS(extension_attrs), NONE },
	{ "enums", "enum", "enum", "enums", 1, ATTRS(enum_attrs), NONE },
	{ "domains", "domain", "domain", "domains", 1, ATTRS(domain_attrs),
	    ATTRS(domain_subs) },
	{ "composite_types", "composite_type", "composite type",
	    "composite types", 1, NONE, ATTRS(composite_subs) },
	{ "sequences", "sequence", "sequence", "sequences", 1,
	    ATTRS(sequence_attrs), NONE },
	{ "tables", "table", "table", "tables", 1, ATTRS(table_attrs),
	    ATTRS(table_subs) },
	{ "views", "view", "view", "views", 1, ATTRS(view_attrs),
	    ATTRS(view_subs) },
	{ "materialized_views", "materialized_view", "materialized view",
	    "materialized views", 1, ATTRS(view_attrs), ATTRS(matview_subs) },
	{ "functions", "function", "function", "functions", 1,
	    ATTRS(function_attrs), NONE },
};

#undef ATTRS
#undef NONE

const struct ferry_schema_kind *
ferry_schema_kinds(size_t *n)
{
	*n = NKINDS;
	return kinds;
}

/* ---- Canonical form: validation, key order, sorting --------------------- */

static const char *
str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Objects in a schema: by schema, then name (byte order). */
static int
cmp_qualified(const void *pa, const void *pb)
{
	const json_t *a = *(const json_t *const *)pa;
	const json_t *b = *(const json_t *const *)pb;
	int c = strcmp(str_of(a, "schema"), str_of(b, "schema"));

	return c != 0 ? c : strcmp(str_of(a, "name"), str_of(b, "name"));
}

/* Other objects and sub-objects: by name. */
static int
cmp_name(const void *pa, const void *pb)
{
	const json_t *a = *(const json_t *const *)pa;
	const json_t *b = *(const json_t *const *)pb;

	return strcmp(str_of(a, "name"), str_of(b, "name"));
}

static int
cmp_strings(const void *pa, const void *pb)
{
	return strcmp(json_string_value(*(const json_t *const *)pa),
	    json_string_value(*(const json_t *const *)pb));
}

/* Sorts the items of arr (objects with names, or strings) in place. */
static void
sort_array(json_t *arr, int (*cmp)(const void *, const void *))
{
	size_t n = json_array_size(arr), i;
	json_t **v;

	if (n < 2)
		return;
	v = xcalloc(n, sizeof(*v));
	for (i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof(*v), cmp);
	json_array_clear(arr);
	for (i = 0; i < n; i++)
		json_array_append_new(arr, v[i]);
	free(v);
}

/*
 * Returns the index of the first item of arr equal to an earlier one by
 * cmp, or -1. arr is left as it was.
 */
static long
find_duplicate(const json_t *arr, int (*cmp)(const void *, const void *))
{
	size_t n = json_array_size(arr), i, j;
	const json_t **v;
	long dup = -1;

	if (n < 2)
		return -1;
	v = xcalloc(n, sizeof(*v));
	for (i = 0; i < n; i++)
		v[i] = json_array_get(arr, i);
	qsort(v, n, sizeof(*v), cmp);
	for (i = 1; i < n && dup < 0; i++) {
		if (cmp(&v[i - 1], &v[i]) != 0)
			continue;
		for (j = 0; j < n; j++)
			if (json_array_get(arr, j) == v[i])
				dup = (long)j;
	}
	free(v);
	return dup;
}

/* Writes "[parent, ]kind \"schema\".\"name\"" (what is known) into buf. */
static void
describe(char *buf, size_t sz, const char *parent, const char *noun,
    int qualified, const json_t *o)
{
	const char *s = qualified ? str_of(o, "schema") : NULL;
	const char *n = str_of(o, "name");
	const char *p = parent ? parent : "", *sep = parent ? ", " : "";

	if (s != NULL && n != NULL)
		snprintf(buf, sz, "%s%s%s \"%s\".\"%s\"", p, sep, noun, s, n);
	else if (n != NULL)
		snprintf(buf, sz, "%s%s%s \"%s\"", p, sep, noun, n);
	else
		snprintf(buf, sz, "%s%sa %s without a name", p, sep, noun);
}

/* Copies one attribute's value, checked, into out (canonical form). */
static int
canon_attr(const struct ferry_schema_attr *a, json_t *v, json_t *out,
    const char *what, struct ferry_err *err)
{
	size_t i;
	json_t *arr;

	switch (a->type) {
	case FERRY_SCHEMA_STR:
	case FERRY_SCHEMA_TEXT:
		if (v != NULL && !json_is_null(v) && !json_is_string(v))
			return ferry_errf(err, FERRY_EUSAGE,
			    "%s: \"%s\" must be a string or null", what,
			    a->key);
		/* Copies: a document shares nothing with its input. */
		json_object_set_new(out, a->key,
		    v != NULL ? json_copy(v) : json_null());
		return 0;
	case FERRY_SCHEMA_BOOL:
		if (v != NULL && !json_is_boolean(v))
			return ferry_errf(err, FERRY_EUSAGE,
			    "%s: \"%s\" must be true or false", what, a->key);
		json_object_set_new(out, a->key,
		    json_boolean(v != NULL && json_is_true(v)));
		return 0;
	case FERRY_SCHEMA_LIST:
	case FERRY_SCHEMA_SET:
		if (v != NULL && !json_is_null(v) && !json_is_array(v))
			return ferry_errf(err, FERRY_EUSAGE,
			    "%s: \"%s\" must be an array of strings", what,
			    a->key);
		arr = json_array();
		for (i = 0; i < json_array_size(v); i++) {
			if (!json_is_string(json_array_get(v, i))) {
				json_decref(arr);
				return ferry_errf(err, FERRY_EUSAGE,
				    "%s: \"%s\" must be an array of strings",
				    what, a->key);
			}
			json_array_append_new(arr,
			    json_copy(json_array_get(v, i)));
		}
		if (a->type == FERRY_SCHEMA_SET)
			sort_array(arr, cmp_strings);
		json_object_set_new(out, a->key, arr);
		return 0;
	}
	return 0;
}

static int
known_attr(const struct ferry_schema_attr *attrs, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(attrs[i].key, key) == 0)
			return 1;
	return 0;
}

static int canon_array(json_t *in, const char *key, const char *noun,
    const struct ferry_schema_attr *attrs, size_t nattrs,
    const struct ferry_schema_sub *subs, size_t nsubs, int qualified,
    int ordered, const char *parent, json_t **out, struct ferry_err *err);

/*
 * Rebuilds object in with its keys in the model's order, every attribute
 * present, sub-objects sorted; refuses anything the model does not know.
 */
static int
canon_object(json_t *in, const char *noun,
    const struct ferry_schema_attr *attrs, size_t nattrs,
    const struct ferry_schema_sub *subs, size_t nsubs, int qualified,
    const char *parent, json_t **out, struct ferry_err *err)
{
	char what[600];
	const char *key;
	json_t *o = NULL, *v, *arr;
	size_t i;
	int rc = 0;

	*out = NULL;
	describe(what, sizeof(what), parent, noun, qualified, in);
	if (!json_is_object(in))
		return ferry_errf(err, FERRY_EUSAGE, "%s: expected an object",
		    parent ? parent : noun);
	if (!json_is_string(json_object_get(in, "name")) ||
	    (qualified && !json_is_string(json_object_get(in, "schema"))))
		return ferry_errf(err, FERRY_EUSAGE,
		    "%s: \"name\"%s must be a string", what,
		    qualified ? " and \"schema\"" : "");
	json_object_foreach(in, key, v)
	{
		int ok = strcmp(key, "name") == 0 ||
		    (qualified && strcmp(key, "schema") == 0) ||
		    known_attr(attrs, nattrs, key);
		for (i = 0; i < nsubs && !ok; i++)
			ok = strcmp(subs[i].key, key) == 0;
		if (!ok)
			return ferry_errf(err, FERRY_EUSAGE,
			    "%s: unknown key \"%s\"", what, key);
	}
	o = json_object();
	if (qualified)
		json_object_set_new(o, "schema",
		    json_copy(json_object_get(in, "schema")));
	json_object_set_new(o, "name", json_copy(json_object_get(in, "name")));
	for (i = 0; i < nattrs && rc == 0; i++)
		rc = canon_attr(&attrs[i], json_object_get(in, attrs[i].key), o,
		    what, err);
	for (i = 0; i < nsubs && rc == 0; i++) {
		rc = canon_array(json_object_get(in, subs[i].key), subs[i].key,
		    subs[i].noun, subs[i].attrs, subs[i].nattrs, NULL, 0, 0,
		    subs[i].ordered, what, &arr, err);
		if (rc == 0)
			json_object_set_new(o, subs[i].key, arr);
	}
	if (rc != 0) {
		json_decref(o);
		return rc;
	}
	*out = o;
	return 0;
}

/* Canonicalises an array of objects (missing = empty). */
static int
canon_array(json_t *in, const char *key, const char *noun,
    const struct ferry_schema_attr *attrs, size_t nattrs,
    const struct ferry_schema_sub *subs, size_t nsubs, int qualified,
    int ordered, const char *parent, json_t **out, struct ferry_err *err)
{
	json_t *arr = json_array(), *o;
	size_t i;
	long dup;
	char what[600];
	int rc = 0;

	*out = NULL;
	if (in != NULL && !json_is_null(in) && !json_is_array(in)) {
		json_decref(arr);
		return ferry_errf(err, FERRY_EUSAGE,
		    "%s%s\"%s\" must be an array", parent ? parent : "",
		    parent ? ": " : "", key);
	}
	for (i = 0; i < json_array_size(in) && rc == 0; i++) {
		rc = canon_object(json_array_get(in, i), noun, attrs, nattrs,
		    subs, nsubs, qualified, parent, &o, err);
		if (rc == 0)
			json_array_append_new(arr, o);
	}
	if (rc != 0) {
		json_decref(arr);
		return rc;
	}
	if (!ordered)
		sort_array(arr, qualified ? cmp_qualified : cmp_name);
	dup = find_duplicate(arr, qualified ? cmp_qualified : cmp_name);
	if (dup >= 0) {
		describe(what, sizeof(what), parent, noun, qualified,
		    json_array_get(arr, (size_t)dup));
		json_decref(arr);
		return ferry_errf(err, FERRY_EUSAGE, "%s appears twice", what);
	}
	*out = arr;
	return 0;
}

static int
hexdigest_ok(const char *s)
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

/* Validates a whole document and rebuilds it in canonical form. */
static int
canon_root(json_t *in, json_t **out, struct ferry_err *err)
{
	static const char *const top[] = { "format", "digest", "postgres",
		"schema", "scope" };
	json_t *root = NULL, *pg, *scope, *arr, *v;
	const char *key, *home;
	size_t i;
	int rc = 0, ok;

	*out = NULL;
	if (!json_is_object(in))
		return ferry_errf(err, FERRY_EUSAGE, "expected a JSON object");
	if (!json_is_string(json_object_get(in, "format")) ||
	    strcmp(str_of(in, "format"), FERRY_SCHEMA_FORMAT) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "not a schema document of format \"%s\"",
		    FERRY_SCHEMA_FORMAT);
	json_object_foreach(in, key, v)
	{
		ok = 0;
		for (i = 0; i < FERRY_NELEM(top); i++)
			ok |= strcmp(top[i], key) == 0;
		for (i = 0; i < NKINDS; i++)
			ok |= strcmp(kinds[i].key, key) == 0;
		if (!ok)
			return ferry_errf(err, FERRY_EUSAGE,
			    "unknown key \"%s\"", key);
	}
	pg = json_object_get(in, "postgres");
	if (!json_is_object(pg) ||
	    !json_is_integer(json_object_get(pg, "major")) ||
	    json_integer_value(json_object_get(pg, "major")) < 1 ||
	    json_integer_value(json_object_get(pg, "major")) > 10000 ||
	    !json_is_string(json_object_get(pg, "version")) ||
	    json_object_size(pg) != 2)
		return ferry_errf(err, FERRY_EUSAGE,
		    "\"postgres\" must be {\"major\": N, \"version\": "
		    "\"...\"}");
	home = str_of(in, "schema");
	scope = json_object_get(in, "scope");
	if (home == NULL || !json_is_array(scope) ||
	    json_array_size(scope) == 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "\"schema\" must be a string and \"scope\" a non-empty "
		    "array of strings");
	ok = 0;
	for (i = 0; i < json_array_size(scope); i++) {
		if (!json_is_string(json_array_get(scope, i)))
			return ferry_errf(err, FERRY_EUSAGE,
			    "\"scope\" must be an array of strings");
		ok |= strcmp(json_string_value(json_array_get(scope, i)),
		          home) == 0;
	}
	if (!ok)
		return ferry_errf(err, FERRY_EUSAGE,
		    "\"scope\" does not hold \"schema\" (\"%s\")", home);
	root = json_object();
	json_object_set_new(root, "format", json_string(FERRY_SCHEMA_FORMAT));
	json_object_set_new(root, "digest", json_null());
	json_object_set_new(root, "postgres",
	    json_pack("{s:I, s:s}", "major",
	        json_integer_value(json_object_get(pg, "major")), "version",
	        str_of(pg, "version")));
	json_object_set_new(root, "schema", json_string(home));
	arr = json_deep_copy(scope);
	sort_array(arr, cmp_strings);
	json_object_set_new(root, "scope", arr);
	for (i = 1; i < json_array_size(arr); i++)
		if (strcmp(json_string_value(json_array_get(arr, i - 1)),
		        json_string_value(json_array_get(arr, i))) == 0) {
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "\"scope\" names \"%s\" twice",
			    json_string_value(json_array_get(arr, i)));
			break;
		}
	for (i = 0; i < NKINDS && rc == 0; i++) {
		rc = canon_array(json_object_get(in, kinds[i].key),
		    kinds[i].key, kinds[i].noun, kinds[i].attrs,
		    kinds[i].nattrs, kinds[i].subs, kinds[i].nsubs,
		    kinds[i].qualified, 0, NULL, &v, err);
		if (rc == 0)
			json_object_set_new(root, kinds[i].key, v);
	}
	if (rc != 0) {
		json_decref(root);
		return rc;
	}
	*out = root;
	return 0;
}

/* ---- Canonical text and digest ------------------------------------------ */

struct text {
	struct ferry_buf b;
	int full;
};

static void
put(struct text *t, const char *s, size_t n)
{
	if (ferry_buf_add(&t->b, s, n) != 0)
		t->full = 1;
}

static void
puts_(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

static void
tabs(struct text *t, int depth)
{
	while (depth-- > 0)
		put(t, "\t", 1);
}

/* A value on one line: backslash and newline escaped. */
static void
put_escaped(struct text *t, const char *s)
{
	const char *p;

	for (p = s; *p != '\0'; p++) {
		if (*p == '\\')
			put(t, "\\\\", 2);
		else if (*p == '\n')
			put(t, "\\n", 2);
		else
			put(t, p, 1);
	}
}

/* A name in double quotes, inner quotes doubled, escaped as above. */
static void
put_name(struct text *t, const char *s)
{
	const char *p;

	put(t, "\"", 1);
	for (p = s; *p != '\0'; p++) {
		if (*p == '"')
			put(t, "\"\"", 2);
		else if (*p == '\\')
			put(t, "\\\\", 2);
		else if (*p == '\n')
			put(t, "\\n", 2);
		else
			put(t, p, 1);
	}
	put(t, "\"", 1);
}

/*
 * One line per attribute: "key value" for a string, "key" alone for a
 * true boolean, "label item" per item of a list; a TEXT value follows its
 * key as "| line" lines one level deeper. Null, false and empty values
 * are left out, and so are attributes outside the digest.
 */
static void
render_attrs(struct text *t, const json_t *o,
    const struct ferry_schema_attr *attrs, size_t nattrs, int depth)
{
	const json_t *v;
	const char *s, *nl;
	size_t i, j;

	for (i = 0; i < nattrs; i++) {
		if (!attrs[i].digested)
			continue;
		v = json_object_get(o, attrs[i].key);
		switch (attrs[i].type) {
		case FERRY_SCHEMA_STR:
			if (!json_is_string(v))
				break;
			tabs(t, depth);
			puts_(t, attrs[i].key);
			put(t, " ", 1);
			put_escaped(t, json_string_value(v));
			put(t, "\n", 1);
			break;
		case FERRY_SCHEMA_TEXT:
			if (!json_is_string(v))
				break;
			tabs(t, depth);
			puts_(t, attrs[i].key);
			put(t, "\n", 1);
			s = json_string_value(v);
			for (;;) {
				nl = strchr(s, '\n');
				tabs(t, depth + 1);
				put(t, "| ", 2);
				put(t, s, nl ? (size_t)(nl - s) : strlen(s));
				put(t, "\n", 1);
				if (nl == NULL)
					break;
				s = nl + 1;
			}
			break;
		case FERRY_SCHEMA_BOOL:
			if (!json_is_true(v))
				break;
			tabs(t, depth);
			puts_(t, attrs[i].key);
			put(t, "\n", 1);
			break;
		case FERRY_SCHEMA_LIST:
		case FERRY_SCHEMA_SET:
			for (j = 0; j < json_array_size(v); j++) {
				tabs(t, depth);
				puts_(t, attrs[i].label);
				put(t, " ", 1);
				put_escaped(t,
				    json_string_value(json_array_get(v, j)));
				put(t, "\n", 1);
			}
			break;
		}
	}
}

static void
render_kind(struct text *t, const json_t *root,
    const struct ferry_schema_kind *k)
{
	const json_t *arr = json_object_get(root, k->key), *o, *subarr, *so;
	size_t i, j, n;

	for (i = 0; i < json_array_size(arr); i++) {
		o = json_array_get(arr, i);
		put(t, "\n", 1);
		puts_(t, k->word);
		put(t, " ", 1);
		if (k->qualified) {
			put_name(t, str_of(o, "schema"));
			put(t, ".", 1);
		}
		put_name(t, str_of(o, "name"));
		put(t, "\n", 1);
		render_attrs(t, o, k->attrs, k->nattrs, 1);
		for (j = 0; j < k->nsubs; j++) {
			subarr = json_object_get(o, k->subs[j].key);
			for (n = 0; n < json_array_size(subarr); n++) {
				so = json_array_get(subarr, n);
				put(t, "\t", 1);
				puts_(t, k->subs[j].noun);
				put(t, " ", 1);
				put_name(t, str_of(so, "name"));
				put(t, "\n", 1);
				render_attrs(t, so, k->subs[j].attrs,
				    k->subs[j].nattrs, 2);
			}
		}
	}
}

/*
 * Renders the canonical text of a canonical document into s, with its
 * digest and object count. Returns 0 or FERRY_EOPER (too large).
 */
static int
finish_text(struct ferry_schema *s, struct ferry_err *err)
{
	const json_t *root = s->root, *scope = json_object_get(root, "scope");
	struct text t;
	size_t i;

	ferry_buf_init(&t.b, TEXT_MAX);
	t.full = 0;
	puts_(&t, FERRY_SCHEMA_FORMAT "\n");
	s->major = (int)json_integer_value(
	    json_object_get(json_object_get(root, "postgres"), "major"));
	ferry_buf_addf(&t.b, "postgres %d\n", s->major);
	for (i = 0; i < json_array_size(scope); i++) {
		puts_(&t, "scope ");
		put_name(&t, json_string_value(json_array_get(scope, i)));
		put(&t, "\n", 1);
	}
	s->count = 0;
	for (i = 0; i < NKINDS; i++) {
		render_kind(&t, root, &kinds[i]);
		s->count +=
		    json_array_size(json_object_get(root, kinds[i].key));
	}
	if (t.full) {
		ferry_buf_release(&t.b);
		return ferry_errf(err, FERRY_EOPER,
		    "the schema document is too large (limit %zu bytes)",
		    TEXT_MAX);
	}
	s->text = ferry_buf_detach(&t.b, &s->textlen);
	ferry_sha256_hex(s->text, s->textlen, s->digest);
	return 0;
}

/*
 * Makes a document of in (a reference is taken): canonical form, text,
 * digest. With check, the digest recorded in in must match.
 */
static int
make_document(json_t *in, int check, struct ferry_schema **out,
    struct ferry_err *err)
{
	struct ferry_schema *s = xcalloc(1, sizeof(*s));
	const char *recorded = str_of(in, "digest");
	int rc;

	*out = NULL;
	rc = canon_root(in, &s->root, err);
	if (rc == 0)
		rc = finish_text(s, err);
	if (rc == 0 && check && !hexdigest_ok(recorded))
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "\"digest\" must be 64 lowercase hex digits");
	if (rc == 0 && check && strcmp(recorded, s->digest) != 0)
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "the recorded digest %.12s... does not match the "
		    "content (%.12s...): the document was edited or damaged",
		    recorded, s->digest);
	if (rc != 0) {
		ferry_schema_free(s);
		return rc;
	}
	json_object_set_new(s->root, "digest", json_string(s->digest));
	*out = s;
	return 0;
}

/* ---- Introspection ------------------------------------------------------ */

/*
 * The session settings the pg_get_*def functions and format_type depend
 * on, fixed for the snapshot's transaction: names schema-qualified
 * (search_path), constants printed the same everywhere.
 */
static const char begin_sql[] =
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
    "SET LOCAL search_path = pg_catalog;"
    "SET LOCAL client_encoding = 'UTF8';"
    "SET LOCAL datestyle = 'ISO, YMD';"
    "SET LOCAL intervalstyle = 'postgres';"
    "SET LOCAL timezone = 'UTC';"
    "SET LOCAL extra_float_digits = 1;"
    "SET LOCAL bytea_output = 'hex';"
    "SET LOCAL lc_monetary = 'C';"
    "SET LOCAL quote_all_identifiers = off;"
    "SET LOCAL standard_conforming_strings = on;";

/*
 * Every query takes the scope as $1 (text[]). "Not owned by an
 * extension" is a NOT EXISTS on pg_depend (deptype 'e'); a collation is
 * named only when it is not the type's own.
 */
static const char schemas_sql[] = "SELECT n.nspname FROM pg_namespace n"
                                  " WHERE n.nspname = ANY ($1::text[])";

static const char extensions_sql[] =
    "SELECT e.extname, e.extversion, n.nspname"
    " FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace";

/* Tables (plain and partitioned), views and materialized views. */
static const char relations_sql[] =
    "SELECT c.oid, n.nspname, c.relname, c.relkind,"
    " c.relpersistence = 'u', c.relrowsecurity, c.relforcerowsecurity,"
    " CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,"
    " CASE WHEN c.relispartition THEN (SELECT i.inhparent::regclass::text"
    "  FROM pg_inherits i WHERE i.inhrelid = c.oid) END,"
    " CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid)"
    "  END,"
    " CASE WHEN NOT c.relispartition THEN (SELECT"
    "  json_agg(i.inhparent::regclass::text ORDER BY i.inhseqno)"
    "  FROM pg_inherits i WHERE i.inhrelid = c.oid) END,"
    " array_to_json(c.reloptions),"
    " CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true)"
    "  END"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ANY ($1::text[])"
    " AND c.relkind IN ('r', 'p', 'v', 'm')"
    " AND NOT (c.relkind = 'r' AND c.relname = '_prisma_migrations')"
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d"
    "  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
    "  AND d.deptype = 'e')";

/*
 * The sub-object queries take every relation of the schemas in scope;
 * rows of relations left out above are dropped when attached.
 */
static const char columns_sql[] =
    "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod),"
    " a.attnotnull,"
    " CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid)"
    "  END,"
    " CASE WHEN a.attgenerated <> '' THEN"
    "  pg_get_expr(ad.adbin, ad.adrelid) END,"
    " a.attidentity,"
    " (SELECT format('%s start %s increment %s minvalue %s maxvalue %s"
    " cache %s', format_type(s.seqtypid, NULL), s.seqstart,"
    "  s.seqincrement, s.seqmin, s.seqmax, s.seqcache)"
    "  || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END"
    "  FROM pg_depend d JOIN pg_sequence s ON s.seqrelid = d.objid"
    "  WHERE a.attidentity <> '' AND d.classid = 'pg_class'::regclass"
    "  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = a.attrelid"
    "  AND d.refobjsubid = a.attnum AND d.deptype = 'i'),"
    " CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0"
    "  THEN (SELECT quote_ident(cn.nspname) || '.' ||"
    "  quote_ident(co.collname) FROM pg_collation co"
    "  JOIN pg_namespace cn ON cn.oid = co.collnamespace"
    "  WHERE co.oid = a.attcollation) END"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_type t ON t.oid = a.atttypid"
    " LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid"
    "  AND ad.adnum = a.attnum"
    " WHERE n.nspname = ANY ($1::text[]) AND c.relkind IN ('r', 'p')"
    " AND a.attnum > 0 AND NOT a.attisdropped"
    " ORDER BY a.attrelid, a.attnum";

/* Not-null constraints (PostgreSQL 18) are the columns' not_null. */
static const char constraints_sql[] =
    "SELECT co.conrelid, co.conname, co.contype,"
    " pg_get_constraintdef(co.oid)"
    " FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ANY ($1::text[])"
    " AND co.contype IN ('p', 'u', 'f', 'c', 'x')";

/*
 * Indexes behind a primary key, unique or exclusion constraint are the
 * constraint's, as in pg_dump.
 */
static const char indexes_sql[] =
    "SELECT i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid),"
    " NOT i.indisvalid"
    " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
    " JOIN pg_class c ON c.oid = i.indrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ANY ($1::text[])"
    " AND NOT EXISTS (SELECT 1 FROM pg_constraint co"
    "  WHERE co.conindid = i.indexrelid AND co.conrelid = i.indrelid"
    "  AND co.contype IN ('p', 'u', 'x'))";

static const char triggers_sql[] =
    "SELECT t.tgrelid, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled"
    " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ANY ($1::text[]) AND NOT t.tgisinternal";

static const char policies_sql[] =
    "SELECT p.polrelid, p.polname, p.polcmd, p.polpermissive,"
    " (SELECT json_agg(CASE WHEN r.oid = 0 THEN 'public'"
    "  ELSE quote_ident(pg_get_userbyid(r.oid)) END)"
    "  FROM unnest(p.polroles) AS r(oid)),"
    " pg_get_expr(p.polqual, p.polrelid),"
    " pg_get_expr(p.polwithcheck, p.polrelid)"
    " FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ANY ($1::text[])";

/* Identity sequences belong to their column. */
static const char sequences_sql[] =
    "SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL),"
    " s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,"
    " s.seqcycle,"
    " (SELECT quote_ident(rn.nspname) || '.' || quote_ident(rc.relname)"
    "  || '.' || quote_ident(ra.attname)"
    "  FROM pg_depend d JOIN pg_class rc ON rc.oid = d.refobjid"
    "  JOIN pg_namespace rn ON rn.oid = rc.relnamespace"
    "  JOIN pg_attribute ra ON ra.attrelid = d.refobjid"
    "  AND ra.attnum = d.refobjsubid"
    "  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
    "  AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0"
    "  AND d.deptype = 'a')"
    " FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ANY ($1::text[])"
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d"
    "  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
    "  AND d.deptype IN ('e', 'i'))";

/* Aggregates are left out: pg_get_functiondef cannot print them. */
static const char functions_sql[] =
    "SELECT n.nspname,"
    " p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',"
    " p.prokind, pg_get_functiondef(p.oid)"
    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    " WHERE n.nspname = ANY ($1::text[]) AND p.prokind IN ('f', 'p', 'w')"
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d"
    "  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid"
    "  AND d.deptype = 'e')";

/* Enums with their values in order, domains, composite types. */
static const char types_sql[] =
    "SELECT n.nspname, t.typname, t.typtype,"
    " CASE t.typtype"
    " WHEN 'e' THEN (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)"
    "  FROM pg_enum e WHERE e.enumtypid = t.oid)"
    " WHEN 'c' THEN (SELECT json_agg(json_build_object('name', a.attname,"
    "  'type', format_type(a.atttypid, a.atttypmod), 'collation',"
    "  CASE WHEN a.attcollation <> at.typcollation"
    "  AND a.attcollation <> 0 THEN (SELECT quote_ident(cn.nspname)"
    "  || '.' || quote_ident(co.collname) FROM pg_collation co"
    "  JOIN pg_namespace cn ON cn.oid = co.collnamespace"
    "  WHERE co.oid = a.attcollation) END) ORDER BY a.attnum)"
    "  FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid"
    "  WHERE a.attrelid = t.typrelid AND a.attnum > 0"
    "  AND NOT a.attisdropped)"
    " WHEN 'd' THEN (SELECT json_agg(json_build_object('name', co.conname,"
    "  'definition', pg_get_constraintdef(co.oid)))"
    "  FROM pg_constraint co WHERE co.contypid = t.oid"
    "  AND co.contype = 'c')"
    " END,"
    " CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)"
    "  END,"
    " t.typnotnull,"
    " CASE WHEN t.typtype = 'd' THEN pg_get_expr(t.typdefaultbin, 0) END,"
    " CASE WHEN t.typtype = 'd' AND t.typcollation <> bt.typcollation"
    "  AND t.typcollation <> 0 THEN (SELECT quote_ident(cn.nspname)"
    "  || '.' || quote_ident(co.collname) FROM pg_collation co"
    "  JOIN pg_namespace cn ON cn.oid = co.collnamespace"
    "  WHERE co.oid = t.typcollation) END"
    " FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
    " LEFT JOIN pg_type bt ON bt.oid = t.typbasetype"
    " WHERE n.nspname = ANY ($1::text[])"
    " AND (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND EXISTS"
    "  (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid"
    "  AND c.relkind = 'c')))"
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d"
    "  WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid"
    "  AND d.deptype = 'e')";

/* A relation collected, found again by OID for its sub-objects. */
struct rel {
	unsigned long oid;
	json_t *obj;
};

struct build {
	struct ferry_db *db;
	char *scope_param; /* the scope as a text[] literal */
	struct ferry_schema_stats stats;
	json_t *root;
	struct rel *rels;
	size_t nrels;
	const char *bad_text; /* what was not valid UTF-8 */
	struct ferry_err *err;
};

static PGresult *
query(struct build *b, const char *sql, int with_scope, const char *what)
{
	const char *params[1] = { b->scope_param };
	int64_t t0 = ferry_mono_us();
	PGresult *res;

	res = ferry_db_query(b->db, sql, with_scope ? 1 : 0, params, what,
	    b->err);
	b->stats.queries++;
	b->stats.query_us += ferry_mono_us() - t0;
	return res;
}

/* Field (row, col) as a string, or NULL when SQL NULL. */
static const char *
field(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

static int
field_bool(const PGresult *res, int row, int col)
{
	const char *s = field(res, row, col);

	return s != NULL && s[0] == 't';
}

/* A JSON string of s (null when s is NULL); remembers invalid UTF-8. */
static json_t *
jstr(struct build *b, const char *s)
{
	json_t *j;

	if (s == NULL)
		return json_null();
	j = json_string(s);
	if (j == NULL) {
		if (b->bad_text == NULL)
			b->bad_text = "a name or definition";
		return json_null();
	}
	return j;
}

/* A JSON value the server produced (json_agg), or def when NULL. */
static json_t *
jparse(struct build *b, const char *s, json_t *def)
{
	json_error_t jerr;
	json_t *j;

	if (s == NULL)
		return def;
	j = json_loads(s, JSON_DECODE_ANY, &jerr);
	if (j == NULL) {
		if (b->bad_text == NULL)
			b->bad_text = "a list the server built";
		return def;
	}
	json_decref(def);
	return j;
}

static void
add_object(struct build *b, int kind, json_t *o)
{
	json_array_append_new(json_object_get(b->root, kinds[kind].key), o);
}

/* A new object of a kind that lives in a schema. */
static json_t *
new_object(struct build *b, const char *schema, const char *name)
{
	json_t *o = json_object();

	json_object_set_new(o, "schema", jstr(b, schema));
	json_object_set_new(o, "name", jstr(b, name));
	return o;
}

static int
cmp_rel(const void *pa, const void *pb)
{
	const struct rel *a = pa, *b = pb;

	return a->oid < b->oid ? -1 : a->oid > b->oid;
}

/* Appends child to the sub-object array key of relation oid, if any. */
static void
attach(struct build *b, const char *oid, const char *key, json_t *child)
{
	struct rel k, *r;
	json_t *arr;

	k.oid = strtoul(oid, NULL, 10);
	r = bsearch(&k, b->rels, b->nrels, sizeof(*b->rels), cmp_rel);
	arr = r ? json_object_get(r->obj, key) : NULL;
	if (arr != NULL)
		json_array_append_new(arr, child);
	else
		json_decref(child);
}

static int
load_schemas(struct build *b)
{
	PGresult *res = query(b, schemas_sql, 1, "cannot list schemas");
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++)
		add_object(b, K_SCHEMA,
		    json_pack("{s:o}", "name", jstr(b, field(res, i, 0))));
	PQclear(res);
	return 0;
}

static int
load_extensions(struct build *b)
{
	PGresult *res = query(b, extensions_sql, 0, "cannot list extensions");
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++)
		add_object(b, K_EXTENSION,
		    json_pack("{s:o, s:o, s:o}", "name",
		        jstr(b, field(res, i, 0)), "schema",
		        jstr(b, field(res, i, 2)), "version",
		        jstr(b, field(res, i, 1))));
	PQclear(res);
	return 0;
}

static int
load_relations(struct build *b)
{
	PGresult *res = query(b, relations_sql, 1, "cannot list relations");
	const struct ferry_schema_kind *k;
	json_t *o;
	int i, kind;
	size_t j;

	if (res == NULL)
		return FERRY_EOPER;
	b->rels = xcalloc((size_t)PQntuples(res) + 1, sizeof(*b->rels));
	for (i = 0; i < PQntuples(res); i++) {
		char relkind = field(res, i, 3)[0];

		kind = relkind == 'v' ? K_VIEW
		    : relkind == 'm'  ? K_MATVIEW
		                      : K_TABLE;
		k = &kinds[kind];
		o = new_object(b, field(res, i, 1), field(res, i, 2));
		if (kind == K_TABLE) {
			json_object_set_new(o, "partition_key",
			    jstr(b, field(res, i, 7)));
			json_object_set_new(o, "partition_of",
			    jstr(b, field(res, i, 8)));
			json_object_set_new(o, "partition_bound",
			    jstr(b, field(res, i, 9)));
			json_object_set_new(o, "inherits",
			    jparse(b, field(res, i, 10), json_array()));
			json_object_set_new(o, "unlogged",
			    json_boolean(field_bool(res, i, 4)));
			json_object_set_new(o, "row_security",
			    json_boolean(field_bool(res, i, 5)));
			json_object_set_new(o, "force_row_security",
			    json_boolean(field_bool(res, i, 6)));
		} else {
			json_object_set_new(o, "definition",
			    jstr(b, field(res, i, 12)));
		}
		json_object_set_new(o, "options",
		    jparse(b, field(res, i, 11), json_array()));
		for (j = 0; j < k->nsubs; j++)
			json_object_set_new(o, k->subs[j].key, json_array());
		b->rels[b->nrels].oid = strtoul(field(res, i, 0), NULL, 10);
		b->rels[b->nrels].obj = o;
		b->nrels++;
		add_object(b, kind, o);
	}
	PQclear(res);
	qsort(b->rels, b->nrels, sizeof(*b->rels), cmp_rel);
	return 0;
}

static int
load_columns(struct build *b)
{
	PGresult *res = query(b, columns_sql, 1, "cannot list columns");
	const char *identity;
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++) {
		identity = field(res, i, 6);
		identity = identity == NULL ? NULL
		    : identity[0] == 'a'    ? "always"
		    : identity[0] == 'd'    ? "by default"
		                            : NULL;
		attach(b, field(res, i, 0), "columns",
		    json_pack("{s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:o}",
		        "name", jstr(b, field(res, i, 1)), "type",
		        jstr(b, field(res, i, 2)), "not_null",
		        field_bool(res, i, 3), "default",
		        jstr(b, field(res, i, 4)), "generated",
		        jstr(b, field(res, i, 5)), "identity",
		        jstr(b, identity), "identity_options",
		        jstr(b, identity ? field(res, i, 7) : NULL),
		        "collation", jstr(b, field(res, i, 8))));
	}
	PQclear(res);
	return 0;
}

static int
load_constraints(struct build *b)
{
	PGresult *res = query(b, constraints_sql, 1, "cannot list constraints");
	const char *type;
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++) {
		switch (field(res, i, 2)[0]) {
		case 'p':
			type = "primary key";
			break;
		case 'u':
			type = "unique";
			break;
		case 'f':
			type = "foreign key";
			break;
		case 'c':
			type = "check";
			break;
		default:
			type = "exclusion";
			break;
		}
		attach(b, field(res, i, 0), "constraints",
		    json_pack("{s:o, s:s, s:o}", "name",
		        jstr(b, field(res, i, 1)), "type", type, "definition",
		        jstr(b, field(res, i, 3))));
	}
	PQclear(res);
	return 0;
}

static int
load_indexes(struct build *b)
{
	PGresult *res = query(b, indexes_sql, 1, "cannot list indexes");
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++)
		attach(b, field(res, i, 0), "indexes",
		    json_pack("{s:o, s:o, s:b}", "name",
		        jstr(b, field(res, i, 1)), "definition",
		        jstr(b, field(res, i, 2)), "invalid",
		        field_bool(res, i, 3)));
	PQclear(res);
	return 0;
}

static int
load_triggers(struct build *b)
{
	PGresult *res = query(b, triggers_sql, 1, "cannot list triggers");
	const char *enabled;
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++) {
		switch (field(res, i, 3)[0]) {
		case 'D':
			enabled = "disabled";
			break;
		case 'R':
			enabled = "replica";
			break;
		case 'A':
			enabled = "always";
			break;
		default:
			enabled = NULL;
			break;
		}
		attach(b, field(res, i, 0), "triggers",
		    json_pack("{s:o, s:o, s:o}", "name",
		        jstr(b, field(res, i, 1)), "definition",
		        jstr(b, field(res, i, 2)), "enabled",
		        jstr(b, enabled)));
	}
	PQclear(res);
	return 0;
}

static int
load_policies(struct build *b)
{
	PGresult *res = query(b, policies_sql, 1, "cannot list policies");
	const char *cmd;
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++) {
		switch (field(res, i, 2)[0]) {
		case 'r':
			cmd = "select";
			break;
		case 'a':
			cmd = "insert";
			break;
		case 'w':
			cmd = "update";
			break;
		case 'd':
			cmd = "delete";
			break;
		default:
			cmd = "all";
			break;
		}
		attach(b, field(res, i, 0), "policies",
		    json_pack("{s:o, s:s, s:b, s:o, s:o, s:o}", "name",
		        jstr(b, field(res, i, 1)), "command", cmd,
		        "restrictive", !field_bool(res, i, 3), "roles",
		        jparse(b, field(res, i, 4), json_array()), "using",
		        jstr(b, field(res, i, 5)), "with_check",
		        jstr(b, field(res, i, 6))));
	}
	PQclear(res);
	return 0;
}

static int
load_sequences(struct build *b)
{
	PGresult *res = query(b, sequences_sql, 1, "cannot list sequences");
	static const char *const keys[] = { "type", "start", "increment", "min",
		"max", "cache" };
	json_t *o;
	size_t j;
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++) {
		o = new_object(b, field(res, i, 0), field(res, i, 1));
		for (j = 0; j < FERRY_NELEM(keys); j++)
			json_object_set_new(o, keys[j],
			    jstr(b, field(res, i, 2 + (int)j)));
		json_object_set_new(o, "cycle",
		    json_boolean(field_bool(res, i, 8)));
		json_object_set_new(o, "owned_by", jstr(b, field(res, i, 9)));
		add_object(b, K_SEQUENCE, o);
	}
	PQclear(res);
	return 0;
}

static int
load_functions(struct build *b)
{
	PGresult *res = query(b, functions_sql, 1, "cannot list functions");
	const char *kind;
	json_t *o;
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++) {
		kind = field(res, i, 2)[0] == 'p' ? "procedure"
		    : field(res, i, 2)[0] == 'w'  ? "window function"
		                                  : "function";
		o = new_object(b, field(res, i, 0), field(res, i, 1));
		json_object_set_new(o, "kind", json_string(kind));
		json_object_set_new(o, "definition", jstr(b, field(res, i, 3)));
		add_object(b, K_FUNCTION, o);
	}
	PQclear(res);
	return 0;
}

static int
load_types(struct build *b)
{
	PGresult *res = query(b, types_sql, 1, "cannot list types");
	json_t *o, *sub;
	int i;

	if (res == NULL)
		return FERRY_EOPER;
	for (i = 0; i < PQntuples(res); i++) {
		o = new_object(b, field(res, i, 0), field(res, i, 1));
		sub = jparse(b, field(res, i, 3), json_array());
		switch (field(res, i, 2)[0]) {
		case 'e':
			json_object_set_new(o, "values", sub);
			add_object(b, K_ENUM, o);
			break;
		case 'c':
			json_object_set_new(o, "attributes", sub);
			add_object(b, K_COMPOSITE, o);
			break;
		default:
			json_object_set_new(o, "constraints", sub);
			json_object_set_new(o, "type",
			    jstr(b, field(res, i, 4)));
			json_object_set_new(o, "not_null",
			    json_boolean(field_bool(res, i, 5)));
			json_object_set_new(o, "default",
			    jstr(b, field(res, i, 6)));
			json_object_set_new(o, "collation",
			    jstr(b, field(res, i, 7)));
			add_object(b, K_DOMAIN, o);
			break;
		}
	}
	PQclear(res);
	return 0;
}

/* The scope: the connection's schema and opts', sorted, without "ferry". */
static json_t *
scope_of(struct ferry_db *db, const struct ferry_schema_opts *opts)
{
	json_t *scope = json_array(), *s;
	size_t i, j;
	int dup;

	json_array_append_new(scope, json_string(ferry_db_schema(db)));
	for (i = 0; opts != NULL && i < opts->nschemas; i++) {
		if (strcmp(opts->schemas[i], "ferry") == 0)
			continue;
		s = json_string(opts->schemas[i]);
		if (s == NULL)
			continue;
		dup = 0;
		for (j = 0; j < json_array_size(scope); j++)
			dup |= json_equal(json_array_get(scope, j), s);
		if (dup)
			json_decref(s);
		else
			json_array_append_new(scope, s);
	}
	sort_array(scope, cmp_strings);
	return scope;
}

/* The scope as a text[] literal: {"a","b"} with \ and " escaped. */
static char *
scope_literal(const json_t *scope)
{
	struct ferry_buf lit;
	const char *p;
	size_t i;

	ferry_buf_init(&lit, 1 << 20);
	ferry_buf_adds(&lit, "{");
	for (i = 0; i < json_array_size(scope); i++) {
		ferry_buf_adds(&lit, i ? ",\"" : "\"");
		for (p = json_string_value(json_array_get(scope, i)); *p; p++) {
			if (*p == '"' || *p == '\\')
				ferry_buf_add(&lit, "\\", 1);
			ferry_buf_add(&lit, p, 1);
		}
		ferry_buf_adds(&lit, "\"");
	}
	ferry_buf_adds(&lit, "}");
	return ferry_buf_detach(&lit, NULL);
}

int
ferry_schema_introspect(struct ferry_db *db,
    const struct ferry_schema_opts *opts, struct ferry_schema **out,
    struct ferry_schema_stats *stats, struct ferry_err *err)
{
	static int (*const loaders[])(struct build *) = { load_schemas,
		load_extensions, load_relations, load_columns, load_constraints,
		load_indexes, load_triggers, load_policies, load_sequences,
		load_functions, load_types };
	PGconn *conn = ferry_db_conn(db);
	struct ferry_err scratch;
	struct build b;
	const char *version;
	json_t *scope;
	int64_t t0 = ferry_mono_us(), tq;
	size_t i;
	int rc = 0, in_txn = 0;

	*out = NULL;
	memset(&b, 0, sizeof(b));
	b.db = db;
	b.err = err;
	if (PQserverVersion(conn) < 120000) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "schema introspection needs PostgreSQL 12 or later "
		    "(server %s is %d)",
		    ferry_db_display(db), PQserverVersion(conn));
		goto out;
	}
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "schema introspection needs a connection outside a "
		    "transaction");
		goto out;
	}
	version = PQparameterStatus(conn, "server_version");
	scope = scope_of(db, opts);
	b.scope_param = scope_literal(scope);
	b.root = json_pack("{s:s, s:n, s:{s:i, s:s}, s:s, s:o}", "format",
	    FERRY_SCHEMA_FORMAT, "digest", "postgres", "major",
	    PQserverVersion(conn) / 10000, "version",
	    version ? version : "unknown", "schema", ferry_db_schema(db),
	    "scope", scope);
	if (b.root == NULL) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "the schema name '%s' is not valid UTF-8",
		    ferry_db_schema(db));
		goto out;
	}
	for (i = 0; i < NKINDS; i++)
		json_object_set_new(b.root, kinds[i].key, json_array());
	tq = ferry_mono_us();
	rc = ferry_db_exec(db, begin_sql, "cannot start the snapshot", err);
	b.stats.queries++;
	b.stats.query_us += ferry_mono_us() - tq;
	if (rc != 0)
		goto out;
	in_txn = 1;
	for (i = 0; i < FERRY_NELEM(loaders) && rc == 0; i++)
		rc = loaders[i](&b);
	if (rc != 0)
		goto out;
	tq = ferry_mono_us();
	in_txn = 0;
	rc = ferry_db_exec(db, "COMMIT", "cannot end the snapshot", err);
	b.stats.queries++;
	b.stats.query_us += ferry_mono_us() - tq;
	if (rc != 0)
		goto out;
	if (b.bad_text != NULL) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "%s in the catalogs is not valid UTF-8", b.bad_text);
		goto out;
	}
	/* The catalogs cannot break the model: an error here is ours. */
	rc = make_document(b.root, 0, out, err);
	if (rc != 0)
		goto out;
	b.stats.elapsed_us = ferry_mono_us() - t0;
	{
		char q[16], ms[32];
		snprintf(q, sizeof(q), "%d", b.stats.queries);
		snprintf(ms, sizeof(ms), "%.1f",
		    (double)b.stats.elapsed_us / 1000.0);
		ferry_log_debug("schema introspected", "digest",
		    ferry_schema_digest(*out), "queries", q, "ms", ms);
	}
	if (stats != NULL)
		*stats = b.stats;
out:
	if (in_txn) {
		ferry_err_clear(&scratch);
		ferry_db_exec(db, "ROLLBACK", "rollback", &scratch);
	}
	json_decref(b.root);
	free(b.scope_param);
	free(b.rels);
	return rc;
}

/* ---- Loading, saving, reading ------------------------------------------- */

int
ferry_schema_from_json(const char *text, size_t len, const char *source,
    struct ferry_schema **out, struct ferry_err *err)
{
	json_error_t jerr;
	json_t *root;
	struct ferry_err inner;
	int rc;

	*out = NULL;
	if (len >= strlen(FERRY_SCHEMA_FORMAT) &&
	    memcmp(text, FERRY_SCHEMA_FORMAT, strlen(FERRY_SCHEMA_FORMAT)) == 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is the text form of a schema document, which "
		    "cannot be loaded back: save the JSON form "
		    "(ferry-agent introspect --json -o FILE)",
		    source);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is not a schema document: %s (line %d)", source,
		    jerr.text, jerr.line);
	ferry_err_clear(&inner);
	rc = make_document(root, 1, out, &inner);
	json_decref(root);
	if (rc != 0)
		return ferry_errf(err, rc, "invalid schema document '%s': %s",
		    source, inner.msg);
	return 0;
}

int
ferry_schema_build(json_t *doc, struct ferry_schema **out,
    struct ferry_err *err)
{
	struct ferry_err inner;
	int rc;

	ferry_err_clear(&inner);
	rc = make_document(doc, 0, out, &inner);
	if (rc != 0)
		return ferry_errf(err, rc, "invalid schema document: %s",
		    inner.msg);
	return 0;
}

int
ferry_schema_load_file(const char *path, struct ferry_schema **out,
    struct ferry_err *err)
{
	struct ferry_buf b;
	int rc;

	*out = NULL;
	ferry_buf_init(&b, FERRY_SCHEMA_MAX_BYTES);
	rc = ferry_buf_read_file(&b, path, err);
	if (rc == 0)
		rc = ferry_schema_from_json(ferry_buf_str(&b),
		    ferry_buf_len(&b), path, out, err);
	ferry_buf_release(&b);
	return rc;
}

/* Whether source names a database rather than a file. */
static int
is_database(const char *source)
{
	struct stat st;

	if (ferry_starts_with(source, "postgresql://") ||
	    ferry_starts_with(source, "postgres://"))
		return 1;
	return strchr(source, '=') != NULL && stat(source, &st) != 0;
}

int
ferry_schema_open(const char *source, const struct ferry_schema_opts *opts,
    struct ferry_schema **out, struct ferry_err *err)
{
	struct ferry_db *db = NULL;
	int rc;

	*out = NULL;
	if (!is_database(source))
		return ferry_schema_load_file(source, out, err);
	rc = ferry_db_open(source, "ferry-agent", &db, err);
	if (rc == 0)
		rc = ferry_schema_introspect(db, opts, out, NULL, err);
	ferry_db_close(db);
	return rc;
}

void
ferry_schema_free(struct ferry_schema *s)
{
	if (s == NULL)
		return;
	json_decref(s->root);
	free(s->text);
	free(s);
}

const json_t *
ferry_schema_json(const struct ferry_schema *s)
{
	return s->root;
}

char *
ferry_schema_json_text(const struct ferry_schema *s)
{
	char *j = json_dumps(s->root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	char *r;

	if (j == NULL) {
		fprintf(stderr, "ferry: out of memory\n");
		abort();
	}
	r = xasprintf("%s\n", j);
	free(j);
	return r;
}

const char *
ferry_schema_text(const struct ferry_schema *s, size_t *len)
{
	if (len != NULL)
		*len = s->textlen;
	return s->text;
}

const char *
ferry_schema_digest(const struct ferry_schema *s)
{
	return s->digest;
}

int
ferry_schema_pg_major(const struct ferry_schema *s)
{
	return s->major;
}

const char *
ferry_schema_pg_version(const struct ferry_schema *s)
{
	return str_of(json_object_get(s->root, "postgres"), "version");
}

const char *
ferry_schema_home(const struct ferry_schema *s)
{
	return str_of(s->root, "schema");
}

size_t
ferry_schema_count(const struct ferry_schema *s)
{
	return s->count;
}

int
ferry_schema_save_file(const struct ferry_schema *s, const char *path,
    struct ferry_err *err)
{
	char *j = ferry_schema_json_text(s);
	int rc;

	rc = ferry_write_file_atomic(path, j, strlen(j), 0644, err);
	free(j);
	return rc;
}
