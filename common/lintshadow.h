/*
 * lintshadow.h -- lint rules read from a shadow database.
 *
 * The migrations are replayed into a shadow database one at a time (the
 * shadow module), and the schema documents before and after each one are
 * compared (schemadiff). Rules on that diff see what a migration really
 * did, however it did it: a table gone through DROP SCHEMA ... CASCADE, a
 * column dropped inside a DO block, a column's true old type. They are
 * added to a lint as one more check (FERRY-L101 and up), so findings,
 * lint-ignore and counting work as for the parse-tree rules; where a
 * parse-tree rule already reported the same thing at the same statement,
 * the shadow rule stays quiet. The parse tree still places findings: a
 * change is reported at the statement that names what changed, or without
 * a position when no statement does.
 *
 * See docs/lint.md for every rule with examples.
 */
#ifndef FERRY_LINTSHADOW_H
#define FERRY_LINTSHADOW_H

#include "err.h"
#include "lint.h"
#include "migrations.h"
#include "schema.h"
#include "shadow.h"

/* Each migration's documents, recorded by a replay. */
struct ferry_lint_shadow;

struct ferry_lint_shadow *ferry_lint_shadow_new(void);
/* NULL is a no-op. */
void ferry_lint_shadow_free(struct ferry_lint_shadow *ls);

/*
 * Adds the shadow rules to l, as a check that reads what ls recorded. With
 * nothing recorded the check reports nothing, but the rules are known to l
 * (lint-ignore, --rules). ls must outlive l's runs.
 */
void
ferry_lint_shadow_attach(struct ferry_lint_shadow *ls, struct ferry_lint *l);

/*
 * Forgets what was recorded, then replays migs into the shadow database of
 * opts with ferry_shadow_run (its on_migration and ctx are replaced; the
 * rest is used as given) and records each migration's documents. Returns
 * what ferry_shadow_run returns: FERRY_EFINDING for a refused shadow
 * database or a migration that fails (naming it, the statement, the
 * SQLSTATE and the message), FERRY_EOPER when the shadow cannot be used.
 */
int ferry_lint_shadow_replay(struct ferry_lint_shadow *ls,
    const struct ferry_shadow_opts *opts, const struct ferry_migrations *migs,
    struct ferry_err *err);

/*
 * Records the documents before and after migration name, the next one in
 * folder order (what a replay does for each migration; tests call it with
 * documents of their own). The documents may be freed afterwards. Returns
 * 0, or FERRY_EOPER if they cannot be compared.
 */
int ferry_lint_shadow_record(struct ferry_lint_shadow *ls, const char *name,
    const struct ferry_schema *before, const struct ferry_schema *after,
    struct ferry_err *err);

enum ferry_lint_type_change {
	FERRY_LINT_TYPE_SAFE,    /* no rewrite, and every value fits */
	FERRY_LINT_TYPE_REWRITE, /* PostgreSQL rewrites the table */
	FERRY_LINT_TYPE_NARROW,  /* rewritten, and values may not fit */
};

/*
 * Classifies a change of column type, both as format_type prints them
 * ("character varying(64)", "numeric(10,2)", "timestamp(3) without time
 * zone", "integer[]"), after PostgreSQL's rules for skipping the rewrite.
 * A type it does not know is a rewrite.
 */
enum ferry_lint_type_change
ferry_lint_type_change(const char *from, const char *to);

#endif
