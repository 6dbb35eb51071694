/*
 * schemadiff.c -- the differences between two schema documents, walked
 * with the same model (schema.h) that renders the digested text.
 */
#include "schemadiff.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct ferry_schema_diff {
	json_t *roots[2]; /* references that keep the objects alive */
	char digests[2][FERRY_SHA256_HEX_LEN + 1];
	struct ferry_schema_change *changes;
	size_t nchanges;
	char **notes;
	size_t nnotes;
	const char *home; /* A's own schema: its objects print unqualified */
};

/* Strings allocated for details are freed with the diff. */
static void
free_detail(struct ferry_schema_detail *dt)
{
	free((char *)dt->old_value);
	free((char *)dt->new_value);
	free((char *)dt->text);
}

void
ferry_schema_diff_free(struct ferry_schema_diff *d)
{
	size_t i, j;

	if (d == NULL)
		return;
	for (i = 0; i < d->nchanges; i++) {
		struct ferry_schema_change *c = &d->changes[i];
		for (j = 0; j < c->ndetails; j++)
			free_detail(
			    (struct ferry_schema_detail *)&c->details[j]);
		free((void *)c->details);
		free((char *)c->display);
	}
	free(d->changes);
	for (i = 0; i < d->nnotes; i++)
		free(d->notes[i]);
	free(d->notes);
	json_decref(d->roots[0]);
	json_decref(d->roots[1]);
	free(d);
}

static const char *
str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- Building ----------------------------------------------------------- */

static struct ferry_schema_change *
add_change(struct ferry_schema_diff *d, enum ferry_schema_action action,
    const struct ferry_schema_kind *k, const json_t *a, const json_t *b)
{
	const json_t *o = a != NULL ? a : b;
	struct ferry_schema_change *c;

	d->changes =
	    xrealloc(d->changes, (d->nchanges + 1) * sizeof(*d->changes));
	c = &d->changes[d->nchanges++];
	memset(c, 0, sizeof(*c));
	c->action = action;
	c->kind = k;
	c->old_json = a;
	c->new_json = b;
	if (k == NULL) {
		c->name = "scope";
		c->display = xstrdup("scope");
		return c;
	}
	c->name = str_of(o, "name");
	if (k->qualified) {
		c->schema = str_of(o, "schema");
		if (strcmp(c->schema, d->home) == 0)
			c->display = xasprintf("\"%s\"", c->name);
		else
			c->display =
			    xasprintf("\"%s\".\"%s\"", c->schema, c->name);
	} else {
		c->display = xasprintf("\"%s\"", c->name);
	}
	return c;
}

/* Adds a detail to c; takes ownership of text, old_value, new_value. */
static struct ferry_schema_detail *
add_detail(struct ferry_schema_change *c, enum ferry_schema_action action,
    const char *sub, const char *sub_name, const char *attr, char *old_value,
    char *new_value, char *text)
{
	struct ferry_schema_detail *dt;

	c->details = xrealloc((void *)c->details,
	    (c->ndetails + 1) * sizeof(*c->details));
	dt = (struct ferry_schema_detail *)&c->details[c->ndetails++];
	memset(dt, 0, sizeof(*dt));
	dt->action = action;
	dt->sub = sub;
	dt->sub_name = sub_name;
	dt->attr = attr;
	dt->old_value = old_value;
	dt->new_value = new_value;
	dt->text = text;
	return dt;
}

static void
add_note(struct ferry_schema_diff *d, char *text)
{
	d->notes = xrealloc(d->notes, (d->nnotes + 1) * sizeof(*d->notes));
	d->notes[d->nnotes++] = text;
}

/* An SQL-style literal of s for a detail line: 'it''s'. */
static char *
quoted(const char *s)
{
	struct ferry_buf b;
	const char *p;

	ferry_buf_init(&b, (size_t)-1);
	ferry_buf_add(&b, "'", 1);
	for (p = s; *p != '\0'; p++) {
		if (*p == '\'')
			ferry_buf_add(&b, "'", 1);
		ferry_buf_add(&b, p, 1);
	}
	ferry_buf_add(&b, "'", 1);
	return ferry_buf_detach(&b, NULL);
}

/* Where the differences found go, and what they are about. */
struct target {
	struct ferry_schema_diff *d;
	struct ferry_schema_change *c; /* created on the first difference */
	const struct ferry_schema_kind *k;
	const json_t *top_a, *top_b; /* the objects the change is about */
	const json_t *a, *b;         /* the objects compared */
	const char *sub;             /* sub-object noun, or NULL */
	const char *sub_name;
	char *subject; /* "column \"total\"" or "enum \"Role\"" */
};

static struct ferry_schema_change *
target_change(struct target *t)
{
	if (t->c == NULL)
		t->c = add_change(t->d, FERRY_SCHEMA_CHANGED, t->k, t->top_a,
		    t->top_b);
	return t->c;
}

/* The string naming item i of arr: the item, or its member key. */
static const char *
item(const json_t *arr, size_t i, const char *key)
{
	const json_t *o = json_array_get(arr, i);

	return key != NULL ? str_of(o, key) : json_string_value(o);
}

static int
has_item(const json_t *arr, const char *key, const char *s)
{
	size_t i;

	for (i = 0; i < json_array_size(arr); i++)
		if (strcmp(item(arr, i, key), s) == 0)
			return 1;
	return 0;
}

static int
list_has(const json_t *arr, const char *s)
{
	return has_item(arr, NULL, s);
}

/*
 * The items of a (strings, or objects named by member key) that b also
 * has, in a's order, joined by ", ".
 */
static char *
common_items(const json_t *a, const json_t *b, const char *key)
{
	struct ferry_buf out;
	const char *s;
	size_t i, n = 0;

	ferry_buf_init(&out, (size_t)-1);
	for (i = 0; i < json_array_size(a); i++) {
		s = item(a, i, key);
		if (!has_item(b, key, s))
			continue;
		ferry_buf_adds(&out, n++ ? ", " : "");
		ferry_buf_adds(&out, s);
	}
	return ferry_buf_detach(&out, NULL);
}

static void
diff_list(struct target *t, const struct ferry_schema_attr *at,
    const json_t *va, const json_t *vb)
{
	struct ferry_schema_change *c;
	const char *s;
	char *oa, *ob;
	size_t i;

	for (i = 0; i < json_array_size(va); i++) {
		s = json_string_value(json_array_get(va, i));
		if (list_has(vb, s))
			continue;
		c = target_change(t);
		oa = quoted(s);
		add_detail(c, FERRY_SCHEMA_REMOVED, t->sub, t->sub_name,
		    at->key, xstrdup(s), NULL,
		    xasprintf("%s: %s %s removed", t->subject, at->label, oa));
		free(oa);
	}
	for (i = 0; i < json_array_size(vb); i++) {
		s = json_string_value(json_array_get(vb, i));
		if (list_has(va, s))
			continue;
		c = target_change(t);
		ob = quoted(s);
		add_detail(c, FERRY_SCHEMA_ADDED, t->sub, t->sub_name, at->key,
		    NULL, xstrdup(s),
		    xasprintf("%s: %s %s added", t->subject, at->label, ob));
		free(ob);
	}
	if (at->type != FERRY_SCHEMA_LIST)
		return;
	oa = common_items(va, vb, NULL);
	ob = common_items(vb, va, NULL);
	if (strcmp(oa, ob) != 0) {
		c = target_change(t);
		add_detail(c, FERRY_SCHEMA_CHANGED, t->sub, t->sub_name,
		    at->key, oa, ob,
		    xasprintf("%s: %s order changed: %s → %s", t->subject,
		        at->label, oa, ob));
		return;
	}
	free(oa);
	free(ob);
}

static void
diff_string(struct target *t, const struct ferry_schema_attr *at,
    const char *va, const char *vb)
{
	char *text;
	int long_ = at->type == FERRY_SCHEMA_TEXT || (va && strchr(va, '\n')) ||
	    (vb && strchr(vb, '\n'));

	if ((va == NULL && vb == NULL) || (va && vb && strcmp(va, vb) == 0))
		return;
	if (!at->digested) {
		add_note(t->d,
		    xasprintf("%s: %s %s → %s (not part of the digest)",
		        t->subject, at->label, va ? va : "(none)",
		        vb ? vb : "(none)"));
		return;
	}
	if (long_ && va != NULL && vb != NULL)
		text = xasprintf("%s: %s changed", t->subject, at->label);
	else if (long_)
		text = xasprintf("%s: %s %s", t->subject, at->label,
		    va ? "removed" : "added");
	else if (va != NULL && vb != NULL && at->primary)
		text = xasprintf("%s: %s → %s", t->subject, va, vb);
	else if (va != NULL && vb != NULL)
		text =
		    xasprintf("%s: %s %s → %s", t->subject, at->label, va, vb);
	else if (vb != NULL)
		text = xasprintf("%s: %s %s added", t->subject, at->label, vb);
	else
		text =
		    xasprintf("%s: %s %s removed", t->subject, at->label, va);
	add_detail(target_change(t), FERRY_SCHEMA_CHANGED, t->sub, t->sub_name,
	    at->key, va ? xstrdup(va) : NULL, vb ? xstrdup(vb) : NULL, text);
}

static void
diff_attrs(struct target *t, const struct ferry_schema_attr *attrs, size_t n,
    const json_t *a, const json_t *b)
{
	const json_t *va, *vb;
	size_t i;
	int ba, bb;

	for (i = 0; i < n; i++) {
		va = json_object_get(a, attrs[i].key);
		vb = json_object_get(b, attrs[i].key);
		switch (attrs[i].type) {
		case FERRY_SCHEMA_STR:
		case FERRY_SCHEMA_TEXT:
			diff_string(t, &attrs[i], json_string_value(va),
			    json_string_value(vb));
			break;
		case FERRY_SCHEMA_BOOL:
			ba = json_is_true(va);
			bb = json_is_true(vb);
			if (ba == bb)
				break;
			add_detail(target_change(t), FERRY_SCHEMA_CHANGED,
			    t->sub, t->sub_name, attrs[i].key,
			    ba ? xstrdup("true") : NULL,
			    bb ? xstrdup("true") : NULL,
			    xasprintf("%s: %s", t->subject,
			        bb ? attrs[i].label : attrs[i].off));
			break;
		case FERRY_SCHEMA_LIST:
		case FERRY_SCHEMA_SET:
			diff_list(t, &attrs[i], va, vb);
			break;
		}
	}
}

static int
cmp_by_name(const void *pa, const void *pb)
{
	const json_t *a = *(const json_t *const *)pa;
	const json_t *b = *(const json_t *const *)pb;

	return strcmp(str_of(a, "name"), str_of(b, "name"));
}

/* The items of arr sorted by name (arr itself may be in column order). */
static const json_t **
by_name(const json_t *arr, size_t *n)
{
	const json_t **v;
	size_t i;

	*n = json_array_size(arr);
	v = xcalloc(*n + 1, sizeof(*v));
	for (i = 0; i < *n; i++)
		v[i] = json_array_get(arr, i);
	qsort(v, *n, sizeof(*v), cmp_by_name);
	return v;
}

static void
diff_subs(struct target *t, const struct ferry_schema_sub *sd)
{
	const json_t *arr_a = json_object_get(t->a, sd->key);
	const json_t *arr_b = json_object_get(t->b, sd->key);
	const json_t **va, **vb;
	struct target st;
	size_t na, nb, i = 0, j = 0;
	char *oa, *ob;
	int c;

	va = by_name(arr_a, &na);
	vb = by_name(arr_b, &nb);
	while (i < na || j < nb) {
		if (i == na)
			c = 1;
		else if (j == nb)
			c = -1;
		else
			c = cmp_by_name(&va[i], &vb[j]);
		if (c < 0) {
			add_detail(target_change(t), FERRY_SCHEMA_REMOVED,
			    sd->noun, str_of(va[i], "name"), NULL, NULL, NULL,
			    xasprintf("%s \"%s\" removed", sd->noun,
			        str_of(va[i], "name")))
			    ->old_json = va[i];
			i++;
		} else if (c > 0) {
			add_detail(target_change(t), FERRY_SCHEMA_ADDED,
			    sd->noun, str_of(vb[j], "name"), NULL, NULL, NULL,
			    xasprintf("%s \"%s\" added", sd->noun,
			        str_of(vb[j], "name")))
			    ->new_json = vb[j];
			j++;
		} else {
			st = *t;
			st.a = va[i];
			st.b = vb[j];
			st.sub = sd->noun;
			st.sub_name = str_of(va[i], "name");
			st.subject =
			    xasprintf("%s \"%s\"", sd->noun, st.sub_name);
			diff_attrs(&st, sd->attrs, sd->nattrs, va[i], vb[j]);
			t->c = st.c;
			free(st.subject);
			i++;
			j++;
		}
	}
	free(va);
	free(vb);
	if (!sd->ordered)
		return;
	oa = common_items(arr_a, arr_b, "name");
	ob = common_items(arr_b, arr_a, "name");
	if (strcmp(oa, ob) != 0) {
		add_detail(target_change(t), FERRY_SCHEMA_CHANGED, sd->noun,
		    NULL, NULL, oa, ob,
		    xasprintf("%s order changed: %s → %s", sd->noun, oa, ob));
		return;
	}
	free(oa);
	free(ob);
}

/* Compares two objects of kind k with the same name. */
static void
diff_object(struct ferry_schema_diff *d, const struct ferry_schema_kind *k,
    const json_t *a, const json_t *b)
{
	struct target t;
	size_t i;

	memset(&t, 0, sizeof(t));
	t.d = d;
	t.k = k;
	t.top_a = t.a = a;
	t.top_b = t.b = b;
	if (k->qualified && strcmp(str_of(a, "schema"), d->home) != 0)
		t.subject = xasprintf("%s \"%s\".\"%s\"", k->noun,
		    str_of(a, "schema"), str_of(a, "name"));
	else
		t.subject = xasprintf("%s \"%s\"", k->noun, str_of(a, "name"));
	diff_attrs(&t, k->attrs, k->nattrs, a, b);
	for (i = 0; i < k->nsubs; i++)
		diff_subs(&t, &k->subs[i]);
	free(t.subject);
}

static int
cmp_object(const struct ferry_schema_kind *k, const json_t *a, const json_t *b)
{
	int c;

	if (k->qualified) {
		c = strcmp(str_of(a, "schema"), str_of(b, "schema"));
		if (c != 0)
			return c;
	}
	return strcmp(str_of(a, "name"), str_of(b, "name"));
}

/* Both arrays are sorted (canonical form): one merge walk. */
static void
diff_kind(struct ferry_schema_diff *d, const struct ferry_schema_kind *k)
{
	const json_t *arr_a = json_object_get(d->roots[0], k->key);
	const json_t *arr_b = json_object_get(d->roots[1], k->key);
	size_t na = json_array_size(arr_a), nb = json_array_size(arr_b);
	size_t i = 0, j = 0;
	int c;

	while (i < na || j < nb) {
		if (i == na)
			c = 1;
		else if (j == nb)
			c = -1;
		else
			c = cmp_object(k, json_array_get(arr_a, i),
			    json_array_get(arr_b, j));
		if (c < 0) {
			add_change(d, FERRY_SCHEMA_REMOVED, k,
			    json_array_get(arr_a, i), NULL);
			i++;
		} else if (c > 0) {
			add_change(d, FERRY_SCHEMA_ADDED, k, NULL,
			    json_array_get(arr_b, j));
			j++;
		} else {
			diff_object(d, k, json_array_get(arr_a, i),
			    json_array_get(arr_b, j));
			i++;
			j++;
		}
	}
}

int
ferry_schema_diff(const struct ferry_schema *a, const struct ferry_schema *b,
    struct ferry_schema_diff **out, struct ferry_err *err)
{
	const struct ferry_schema_kind *kinds;
	struct ferry_schema_diff *d;
	struct target t;
	size_t nkinds, i;

	*out = NULL;
	if (ferry_schema_pg_major(a) != ferry_schema_pg_major(b))
		return ferry_errf(err, FERRY_EOPER,
		    "cannot compare schemas from PostgreSQL %d (%s) and "
		    "PostgreSQL %d (%s): the server prints definitions "
		    "differently from one major version to the next",
		    ferry_schema_pg_major(a), ferry_schema_pg_version(a),
		    ferry_schema_pg_major(b), ferry_schema_pg_version(b));
	d = xcalloc(1, sizeof(*d));
	/* The documents are immutable; a reference keeps them alive. */
	d->roots[0] = json_incref((json_t *)ferry_schema_json(a));
	d->roots[1] = json_incref((json_t *)ferry_schema_json(b));
	ferry_strlcpy(d->digests[0], ferry_schema_digest(a),
	    sizeof(d->digests[0]));
	ferry_strlcpy(d->digests[1], ferry_schema_digest(b),
	    sizeof(d->digests[1]));
	d->home = str_of(d->roots[0], "schema");
	memset(&t, 0, sizeof(t));
	t.d = d;
	t.top_a = t.a = d->roots[0];
	t.top_b = t.b = d->roots[1];
	t.subject = "scope";
	{
		static const struct ferry_schema_attr scope_attr = { "scope",
			FERRY_SCHEMA_SET, "schema", NULL, 0, 1 };
		diff_list(&t, &scope_attr, json_object_get(t.a, "scope"),
		    json_object_get(t.b, "scope"));
	}
	kinds = ferry_schema_kinds(&nkinds);
	for (i = 0; i < nkinds; i++)
		diff_kind(d, &kinds[i]);
	/*
	 * The walk covers everything the text holds; should the two ever
	 * disagree, the digests decide and the diff says it cannot itemise.
	 */
	if (d->nchanges == 0 && strcmp(d->digests[0], d->digests[1]) != 0) {
		t.c = NULL;
		add_detail(target_change(&t), FERRY_SCHEMA_CHANGED, NULL, NULL,
		    NULL, NULL, NULL,
		    xstrdup("the documents differ in a way this version "
		            "cannot itemise"));
	}
	*out = d;
	return 0;
}

/* ---- Reading ------------------------------------------------------------ */

int
ferry_schema_diff_equal(const struct ferry_schema_diff *d)
{
	return strcmp(d->digests[0], d->digests[1]) == 0 && d->nchanges == 0;
}

size_t
ferry_schema_diff_count(const struct ferry_schema_diff *d)
{
	return d->nchanges;
}

const struct ferry_schema_change *
ferry_schema_diff_change(const struct ferry_schema_diff *d, size_t i)
{
	return i < d->nchanges ? &d->changes[i] : NULL;
}

size_t
ferry_schema_diff_nnotes(const struct ferry_schema_diff *d)
{
	return d->nnotes;
}

const char *
ferry_schema_diff_note(const struct ferry_schema_diff *d, size_t i)
{
	return i < d->nnotes ? d->notes[i] : NULL;
}

const char *
ferry_schema_action_name(enum ferry_schema_action a)
{
	switch (a) {
	case FERRY_SCHEMA_ADDED:
		return "added";
	case FERRY_SCHEMA_REMOVED:
		return "removed";
	case FERRY_SCHEMA_CHANGED:
		break;
	}
	return "changed";
}

static const char *
marker(enum ferry_schema_action a)
{
	return a == FERRY_SCHEMA_ADDED  ? "[+]"
	    : a == FERRY_SCHEMA_REMOVED ? "[-]"
	                                : "[*]";
}

int
ferry_schema_diff_text(const struct ferry_schema_diff *d, struct ferry_buf *out)
{
	const struct ferry_schema_kind *kinds;
	const struct ferry_schema_change *c;
	size_t nkinds, k, i, j;
	int rc = 0, heading;
	enum ferry_schema_action act;

	kinds = ferry_schema_kinds(&nkinds);
	for (act = FERRY_SCHEMA_ADDED; act <= FERRY_SCHEMA_REMOVED; act++) {
		for (k = 0; k < nkinds; k++) {
			heading = 0;
			for (i = 0; i < d->nchanges; i++) {
				c = &d->changes[i];
				if (c->action != act || c->kind != &kinds[k])
					continue;
				if (!heading)
					rc |= ferry_buf_addf(out, "%s %s %s\n",
					    marker(act),
					    act == FERRY_SCHEMA_ADDED
					        ? "Added"
					        : "Removed",
					    kinds[k].plural);
				heading = 1;
				rc |=
				    ferry_buf_addf(out, "  - %s\n", c->display);
			}
		}
	}
	for (i = 0; i < d->nchanges; i++) {
		c = &d->changes[i];
		if (c->action != FERRY_SCHEMA_CHANGED)
			continue;
		if (c->kind == NULL)
			rc |= ferry_buf_addf(out, "[*] Changed the %s\n",
			    c->display);
		else
			rc |= ferry_buf_addf(out, "[*] Changed the %s %s\n",
			    c->display, c->kind->noun);
		for (j = 0; j < c->ndetails; j++)
			rc |= ferry_buf_addf(out, "  %s %s\n",
			    marker(c->details[j].action), c->details[j].text);
	}
	for (i = 0; i < d->nnotes; i++)
		rc |= ferry_buf_addf(out, "note: %s\n", d->notes[i]);
	return rc != 0 ? -1 : 0;
}

json_t *
ferry_schema_diff_json(const struct ferry_schema_diff *d)
{
	const struct ferry_schema_change *c;
	const struct ferry_schema_detail *dt;
	json_t *changes = json_array(), *notes = json_array(), *details;
	size_t i, j;

	for (i = 0; i < d->nchanges; i++) {
		c = &d->changes[i];
		details = json_array();
		for (j = 0; j < c->ndetails; j++) {
			dt = &c->details[j];
			json_t *o = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, "
			                      "s:s?, s:s}",
			    "action", ferry_schema_action_name(dt->action),
			    "object", dt->sub, "name", dt->sub_name,
			    "attribute", dt->attr, "old", dt->old_value, "new",
			    dt->new_value, "text", dt->text);
			/* A sub-object added or removed, whole. */
			if (dt->old_json != NULL)
				json_object_set(o, "old_object",
				    (json_t *)dt->old_json);
			if (dt->new_json != NULL)
				json_object_set(o, "new_object",
				    (json_t *)dt->new_json);
			json_array_append_new(details, o);
		}
		json_array_append_new(changes,
		    json_pack("{s:s, s:s, s:s?, s:s, s:o}", "action",
		        ferry_schema_action_name(c->action), "kind",
		        c->kind ? c->kind->noun : "document", "schema",
		        c->schema, "name", c->name, "details", details));
	}
	for (i = 0; i < d->nnotes; i++)
		json_array_append_new(notes, json_string(d->notes[i]));
	return json_pack("{s:b, s:o, s:o}", "equal", ferry_schema_diff_equal(d),
	    "changes", changes, "notes", notes);
}
