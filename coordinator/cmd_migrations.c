/*
 * cmd_migrations.c -- "ferry migrations": read a migrations folder.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "migrations.h"

static const char list_usage[] =
    "usage: ferry migrations list [--json] DIR\n"
    "\n"
    "Lists the migrations in a Prisma-layout folder "
    "(DIR/<name>/migration.sql)\n"
    "in the order Prisma applies them, with the SHA-256 checksum Prisma\n"
    "stores in _prisma_migrations and the size of migration.sql.\n"
    "Warns where that order differs from plain byte order, since tools\n"
    "that sort bytes would apply those migrations the other way round.\n"
    "\n"
    "Options:\n"
    "  --json      print a JSON document instead of a table\n"
    "  -h, --help  show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

static json_t *
list_json(const char *dir, const struct ferry_migrations *m)
{
	json_t *root = json_object(), *arr = json_array(), *warn = json_array();
	size_t i, n = ferry_migrations_count(m);

	for (i = 0; i < n; i++) {
		const struct ferry_migration *e = ferry_migrations_get(m, i);
		json_array_append_new(arr,
		    json_pack("{s:s, s:s, s:I, s:b}", "name", e->name,
		        "checksum", e->checksum, "size", (json_int_t)e->sql_len,
		        "down", e->down_sql != NULL));
		if (ferry_migrations_order_differs(m, i))
			json_array_append_new(warn,
			    json_pack("{s:s, s:s}", "first", e->name, "then",
			        ferry_migrations_get(m, i + 1)->name));
	}
	json_object_set_new(root, "directory", json_string(dir));
	json_object_set_new(root, "migrations", arr);
	json_object_set_new(root, "byte_order_differs", warn);
	return root;
}

static void
list_table(const char *dir, const struct ferry_migrations *m)
{
	size_t i, n = ferry_migrations_count(m), w = 4;

	for (i = 0; i < n; i++) {
		size_t l = strlen(ferry_migrations_get(m, i)->name);
		w = l > w ? l : w;
	}
	printf("%-*s  %-64s  %10s\n", (int)w, "NAME", "CHECKSUM", "SIZE");
	for (i = 0; i < n; i++) {
		const struct ferry_migration *e = ferry_migrations_get(m, i);
		printf("%-*s  %s  %10zu\n", (int)w, e->name, e->checksum,
		    e->sql_len);
	}
	printf("%zu migration%s in %s\n", n, n == 1 ? "" : "s", dir);
}

static int
cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_migrations *m = NULL;
	struct ferry_err err;
	int json = 0, c, rc;
	size_t i;

	ferry_err_clear(&err);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(list_usage, stdout);
			return 0;
		default:
			return ferry_cli_bad_option("ferry migrations list",
			    argv);
		}
	}
	if (optind != argc - 1)
		return ferry_cli_usage_error("ferry migrations list",
		    "expected exactly one migrations directory");
	rc = ferry_migrations_read_dir(argv[optind], &m, &err);
	if (rc != 0)
		return ferry_cli_fail("ferry", &err);
	for (i = 0; i + 1 < ferry_migrations_count(m); i++)
		if (ferry_migrations_order_differs(m, i))
			ferry_cli_warn("ferry",
			    "'%s' comes before '%s' in Prisma's order "
			    "(localeCompare) but after it in byte order: tools "
			    "that sort bytes apply them the other way round",
			    ferry_migrations_get(m, i)->name,
			    ferry_migrations_get(m, i + 1)->name);
	if (json)
		rc = ferry_cli_print_json(list_json(argv[optind], m));
	else
		list_table(argv[optind], m);
	ferry_migrations_free(m);
	return rc;
}

static const struct ferry_cmd migrations_commands[] = {
	{ "list", cmd_list,
	    "list migrations in Prisma's order, with checksums" },
	{ NULL, NULL, NULL },
};

int
cmd_migrations(int argc, char **argv)
{
	return ferry_cli_dispatch("ferry migrations",
	    "Read a Prisma-layout migrations folder.", NULL,
	    migrations_commands, argc, argv);
}
