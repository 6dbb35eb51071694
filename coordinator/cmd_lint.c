/*
 * cmd_lint.c -- "ferry lint": check a migrations folder for operations that
 * are risky on a live database.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "db.h"
#include "lint.h"
#include "lintshadow.h"
#include "migrations.h"
#include "shadow.h"
#include "util.h"

/* Text output wraps here. */
#define WIDTH 79

/* Most --extensions names. */
#define MAX_EXTENSIONS 64

enum {
	OPT_JSON = 0x100,
	OPT_RULES,
	OPT_SHADOW_URL,
	OPT_INIT_SHADOW,
	OPT_EXTENSIONS,
};

static const char lint_usage[] =
    "usage: ferry lint [--json] [--shadow-url URL [--init-shadow]\n"
    "                  [--extensions A,B]] DIR\n"
    "       ferry lint --rules [--json]\n"
    "\n"
    "Checks the migrations of a Prisma-layout folder (DIR/<name>/"
    "migration.sql)\n"
    "for operations that are risky on a live database: dropped tables and\n"
    "columns, column type changes, indexes built without CONCURRENTLY, NOT\n"
    "NULL and constraints that scan or fail on existing rows, renames, and\n"
    "CONCURRENTLY inside a transaction block. Earlier migrations of the\n"
    "folder count: a table that one of them creates exists before the\n"
    "migration being checked; only a table created by the migration itself\n"
    "is new.\n"
    "\n"
    "Each finding gives the migration, line and column, rule, severity, why\n"
    "it matters and the safer pattern. A comment line before the first\n"
    "statement of a migration.sql silences rules for that migration:\n"
    "  -- ferry:lint-ignore FERRY-L002 drop-column -- reason\n"
    "Rules and examples: docs/lint.md.\n"
    "\n"
    "With --shadow-url, the migrations are also replayed one at a time into\n"
    "that shadow database, and the FERRY-L1xx rules compare its schema\n"
    "before and after each one: tables and columns dropped however it\n"
    "happened (CASCADE, DO blocks), the real old type of a column, NOT NULL\n"
    "without a default, validated constraints and blocking index builds on\n"
    "tables that existed, renames that functions still use, enum values\n"
    "removed or reordered. The shadow is wiped first, as by 'ferry-agent\n"
    "shadow': refused unless it is marked as a Ferry shadow (or\n"
    "--init-shadow), and when it is the database of DIRECT_URL or\n"
    "DATABASE_URL. A migration that fails in the shadow, or a shadow that\n"
    "cannot be used, exits 3 with the reason.\n"
    "\n"
    "Options:\n"
    "  --json              print a JSON document instead of text\n"
    "  --rules             list the rules instead of checking a folder\n"
    "  --shadow-url URL    replay into this shadow database (wiped) and\n"
    "                      apply the shadow rules too\n"
    "  --init-shadow       mark an unmarked database as a shadow and use it\n"
    "  --extensions A,B    create these extensions in the shadow first\n"
    "                      (repeatable)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Any finding of severity error exits 1; warnings alone exit 0.\n"
    "\n" FERRY_EXIT_CODES_HELP;

/*
 * Prints label and text from column indent, breaking text between words so
 * that lines end before WIDTH; continuation lines line up after label.
 */
static void
print_wrapped(int indent, const char *label, const char *text)
{
	int col, hang = indent + (int)strlen(label);
	const char *p = text, *e;
	size_t n;

	col = printf("%*s%s", indent, "", label);
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		e = strchr(p, ' ');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (col > hang && col + 1 + (int)n > WIDTH)
			col = printf("\n%*s", hang, "") - 1;
		else if (col > hang)
			col += printf(" ");
		col += printf("%.*s", (int)n, p);
		p += n;
	}
	printf("\n");
}

static void
print_rule_detail(const struct ferry_lint_rule *r)
{
	print_wrapped(6, "why: ", r->why);
	print_wrapped(6, "safer: ", r->fix);
}

static void
plural(const char *sep, size_t n, const char *what)
{
	printf("%s%zu %s%s", sep, n, what, n == 1 ? "" : "s");
}

static void
lint_text(const struct ferry_lint *l, size_t nmig)
{
	const struct ferry_lint_finding *f;
	const char *last = NULL;
	char pos[32];
	size_t i, n = ferry_lint_nfindings(l);

	for (i = 0; i < n; i++) {
		f = ferry_lint_finding(l, i);
		if (last == NULL || strcmp(last, f->migration) != 0) {
			printf("%s%s/migration.sql\n", last ? "\n" : "",
			    f->migration);
			last = f->migration;
		}
		if (f->line > 0)
			snprintf(pos, sizeof(pos), "%d:%d", f->line, f->col);
		else
			snprintf(pos, sizeof(pos), "-");
		printf("  %-7s %-7s  %s %s\n", pos,
		    ferry_lint_severity_name(f->rule->severity), f->rule->id,
		    f->rule->name);
		print_wrapped(6, "", f->message);
		print_rule_detail(f->rule);
	}
	if (n > 0)
		printf("\n");
	if (n == 0)
		printf("no findings");
	else {
		plural("", ferry_lint_count(l, FERRY_LINT_ERROR), "error");
		plural(", ", ferry_lint_count(l, FERRY_LINT_WARNING),
		    "warning");
	}
	plural(" in ", nmig, "migration");
	if (ferry_lint_nsuppressed(l) > 0)
		printf(" (%zu silenced by lint-ignore)",
		    ferry_lint_nsuppressed(l));
	printf("\n");
}

static json_t *
rule_json(const struct ferry_lint_rule *r)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", r->id, "name",
	    r->name, "severity", ferry_lint_severity_name(r->severity), "why",
	    r->why, "fix", r->fix);
}

static json_t *
lint_json(const char *dir, const struct ferry_lint *l, size_t nmig, int shadow)
{
	const struct ferry_lint_finding *f;
	json_t *root = json_object(), *arr = json_array(), *o;
	size_t i, n = ferry_lint_nfindings(l);
	char *file;

	for (i = 0; i < n; i++) {
		f = ferry_lint_finding(l, i);
		file = xasprintf("%s/migration.sql", f->migration);
		o = json_pack("{s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:s, s:s, "
		              "s:s}",
		    "migration", f->migration, "file", file, "line",
		    f->line > 0 ? json_integer(f->line) : json_null(), "column",
		    f->line > 0 ? json_integer(f->col) : json_null(), "rule",
		    f->rule->id, "name", f->rule->name, "severity",
		    ferry_lint_severity_name(f->rule->severity), "message",
		    f->message, "why", f->rule->why, "fix", f->rule->fix);
		json_array_append_new(arr, o);
		free(file);
	}
	json_object_set_new(root, "directory", json_string(dir));
	json_object_set_new(root, "migrations", json_integer((json_int_t)nmig));
	json_object_set_new(root, "shadow", json_boolean(shadow));
	json_object_set_new(root, "errors",
	    json_integer((json_int_t)ferry_lint_count(l, FERRY_LINT_ERROR)));
	json_object_set_new(root, "warnings",
	    json_integer((json_int_t)ferry_lint_count(l, FERRY_LINT_WARNING)));
	json_object_set_new(root, "suppressed",
	    json_integer((json_int_t)ferry_lint_nsuppressed(l)));
	json_object_set_new(root, "findings", arr);
	return root;
}

static int
list_rules(const struct ferry_lint *l, int json)
{
	const struct ferry_lint_rule *r;
	json_t *arr;
	size_t i, n = ferry_lint_nrules(l);

	if (json) {
		arr = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(arr,
			    rule_json(ferry_lint_rule(l, i)));
		return ferry_cli_print_json(arr);
	}
	for (i = 0; i < n; i++) {
		r = ferry_lint_rule(l, i);
		printf("%s%s  %-7s  %s\n", i > 0 ? "\n" : "", r->id,
		    ferry_lint_severity_name(r->severity), r->name);
		print_rule_detail(r);
	}
	return 0;
}

/*
 * Adds the names of "a,b" to list (copies, free() them); returns 0, or a
 * usage error.
 */
static int
add_extensions(const char *arg, char **list, size_t *n)
{
	const char *p = arg, *comma;
	size_t len;

	while (*p != '\0') {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len > 0) {
			if (*n == MAX_EXTENSIONS)
				return ferry_cli_usage_error("ferry lint",
				    "too many --extensions (at most %d)",
				    MAX_EXTENSIONS);
			list[(*n)++] = xstrndup(p, len);
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

/*
 * Replays the migrations into the shadow database for the shadow rules.
 * Whatever goes wrong, the folder could not be checked: exit status 3.
 */
static int
replay(struct ferry_lint_shadow *ls, struct ferry_shadow_opts *so,
    const struct ferry_migrations *m)
{
	struct ferry_err err;

	ferry_err_clear(&err);
	/* Never wipe the database the application uses. */
	so->target_url = ferry_db_pick_url(NULL);
	if (*so->target_url == '\0')
		so->target_url = NULL;
	if (ferry_lint_shadow_replay(ls, so, m, &err) == 0)
		return 0;
	ferry_cli_fail("ferry lint", &err);
	return FERRY_EOPER;
}

int
cmd_lint(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "rules", no_argument, NULL, OPT_RULES },
		{ "shadow-url", required_argument, NULL, OPT_SHADOW_URL },
		{ "init-shadow", no_argument, NULL, OPT_INIT_SHADOW },
		{ "extensions", required_argument, NULL, OPT_EXTENSIONS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_migrations *m = NULL;
	struct ferry_lint_shadow *ls = NULL;
	struct ferry_lint *l = NULL;
	struct ferry_shadow_opts so;
	struct ferry_err err;
	char *exts[MAX_EXTENSIONS];
	size_t i;
	int json = 0, rules = 0, c, rc = 0;

	ferry_err_clear(&err);
	memset(&so, 0, sizeof(so));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = 1;
			break;
		case OPT_RULES:
			rules = 1;
			break;
		case OPT_SHADOW_URL:
			so.shadow_url = optarg;
			break;
		case OPT_INIT_SHADOW:
			so.init_shadow = 1;
			break;
		case OPT_EXTENSIONS:
			rc = add_extensions(optarg, exts, &so.nextensions);
			if (rc != 0)
				goto out;
			break;
		case 'h':
			fputs(lint_usage, stdout);
			goto out;
		default:
			rc = ferry_cli_bad_option("ferry lint", argv);
			goto out;
		}
	}
	so.extensions = (const char *const *)exts;
	if (rules && optind != argc)
		rc = ferry_cli_usage_error("ferry lint",
		    "--rules takes no migrations directory");
	else if (!rules && optind != argc - 1)
		rc = ferry_cli_usage_error("ferry lint",
		    "expected exactly one migrations directory");
	else if (so.shadow_url == NULL &&
	    (so.init_shadow || so.nextensions > 0))
		rc = ferry_cli_usage_error("ferry lint",
		    "--init-shadow and --extensions need --shadow-url");
	if (rc != 0)
		goto out;
	/* The shadow rules are always known, so that lint-ignore may name
	   them in a folder also linted without a shadow. */
	l = ferry_lint_new();
	ls = ferry_lint_shadow_new();
	ferry_lint_shadow_attach(ls, l);
	if (rules) {
		rc = list_rules(l, json);
		goto out;
	}
	rc = ferry_migrations_read_dir(argv[optind], &m, &err);
	if (rc != 0) {
		rc = ferry_cli_fail("ferry", &err);
		goto out;
	}
	if (so.shadow_url != NULL) {
		rc = replay(ls, &so, m);
		if (rc != 0)
			goto out;
	}
	rc = ferry_lint_run(l, m, &err);
	if (rc != 0) {
		rc = ferry_cli_fail("ferry", &err);
		goto out;
	}
	if (json)
		rc = ferry_cli_print_json(lint_json(argv[optind], l,
		    ferry_migrations_count(m), so.shadow_url != NULL));
	else
		lint_text(l, ferry_migrations_count(m));
	if (rc == 0 && ferry_lint_count(l, FERRY_LINT_ERROR) > 0)
		rc = FERRY_EFINDING;
out:
	ferry_lint_free(l);
	ferry_lint_shadow_free(ls);
	ferry_migrations_free(m);
	for (i = 0; i < so.nextensions; i++)
		free(exts[i]);
	return rc;
}
