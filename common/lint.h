/*
 * lint.h -- checks a migrations folder for operations that are risky on a
 * live database: data loss, long locks, rewrites, changes that break the
 * application version still running during a rollout.
 *
 * A lint run walks the migrations in Prisma's order and hands each one to
 * a list of checks. The built-in check reads the parse tree (libpg_query)
 * and remembers what earlier migrations in the folder did: a table created
 * by an earlier migration exists before the current one, just like a table
 * the folder never creates; only a table created earlier in the same
 * migration is new (and empty). Other checks, such as rules built on a
 * shadow database's before/after diff of each migration, are added with
 * ferry_lint_add_check and report through the same context, so the
 * lint-ignore header, ordering and counting apply to them too.
 *
 * A header comment before the first statement silences rules for that
 * migration:
 *
 *   -- ferry:lint-ignore FERRY-L002 rename-column -- reason
 *
 * Rules are named by id or name, separated by spaces or commas; text after
 * a further "--" is a free-form reason.
 *
 * See docs/lint.md for every rule with examples.
 */
#ifndef FERRY_LINT_H
#define FERRY_LINT_H

#include <stddef.h>

#include "err.h"
#include "migrations.h"
#include "sqlscript.h"

enum ferry_lint_severity {
	FERRY_LINT_WARNING = 1, /* a risk that grows with table size */
	FERRY_LINT_ERROR = 2,   /* loses data, fails or breaks running code */
};

struct ferry_lint_rule {
	const char *id;   /* "FERRY-L001" */
	const char *name; /* "drop-table" */
	enum ferry_lint_severity severity;
	const char *why; /* why it matters */
	const char *fix; /* the safer pattern */
};

/* One finding; fields are owned by the lint run. */
struct ferry_lint_finding {
	const struct ferry_lint_rule *rule;
	const char *migration; /* folder name */
	int line;              /* 1-based; 0 when no position applies */
	int col;               /* 1-based, in characters; 0 likewise */
	const char *message;   /* what this statement does, specifically */
};

struct ferry_lint;
/* The migration being checked, handed to each check. */
struct ferry_lint_ctx;

/*
 * A check, called once per migration in folder order; it keeps whatever
 * state it needs across migrations in arg. Returns 0, or an error status
 * (with err set) that stops the run.
 */
typedef int (*ferry_lint_check_fn)(struct ferry_lint_ctx *ctx, void *arg,
    struct ferry_err *err);

/* A lint with the parse-tree rules installed. */
struct ferry_lint *ferry_lint_new(void);
void ferry_lint_free(struct ferry_lint *l);

/*
 * Adds a check run after the ones already added, with the nrules rules it
 * may report (static storage; ids and names must be new to l). arg stays
 * the caller's.
 */
void
ferry_lint_add_check(struct ferry_lint *l, const struct ferry_lint_rule *rules,
    size_t nrules, ferry_lint_check_fn fn, void *arg);

/*
 * Lints every migration of m. Findings from an earlier run are dropped
 * first. Returns 0 whatever was found (a file that cannot be parsed is a
 * finding), or a check's error.
 */
int ferry_lint_run(struct ferry_lint *l, const struct ferry_migrations *m,
    struct ferry_err *err);

/* Findings in folder order, then by position. */
size_t ferry_lint_nfindings(const struct ferry_lint *l);
const struct ferry_lint_finding *
ferry_lint_finding(const struct ferry_lint *l, size_t i);
/* Findings of one severity. */
size_t
ferry_lint_count(const struct ferry_lint *l, enum ferry_lint_severity sev);
/* Findings silenced by a lint-ignore header. */
size_t ferry_lint_nsuppressed(const struct ferry_lint *l);

/* Every rule l knows, built-in ones first. */
size_t ferry_lint_nrules(const struct ferry_lint *l);
const struct ferry_lint_rule *
ferry_lint_rule(const struct ferry_lint *l, size_t i);
/* The rule with that id (any case) or name, or NULL. */
const struct ferry_lint_rule *
ferry_lint_rule_find(const struct ferry_lint *l, const char *key);

/* "warning" or "error". */
const char *ferry_lint_severity_name(enum ferry_lint_severity sev);

/* For checks: the migration, its position in the folder, its script. */
const struct ferry_migration *
ferry_lint_ctx_migration(const struct ferry_lint_ctx *ctx);
size_t ferry_lint_ctx_index(const struct ferry_lint_ctx *ctx);
/*
 * The migration as the engine splits it (mode, steps, positions); its
 * lint-ignore lines read as blank.
 */
const struct ferry_script *
ferry_lint_ctx_script(const struct ferry_lint_ctx *ctx);

/*
 * Reports a finding of rule id (one of the check's rules) at byte offset
 * of migration.sql, or with no position when offset is SIZE_MAX. Dropped
 * if the migration's header ignores the rule.
 */
void ferry_lint_report(struct ferry_lint_ctx *ctx, const char *id,
    size_t offset, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * 1 if a finding of rule id was reported for this migration so far (by an
 * earlier check, or earlier by this one) at a byte offset in [start, end),
 * whether or not lint-ignore silenced it: lets a check stay quiet about
 * what another rule already said of the same statement.
 */
int ferry_lint_ctx_reported(const struct ferry_lint_ctx *ctx, const char *id,
    size_t start, size_t end);

#endif
