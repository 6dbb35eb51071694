/*
 * cmd_bundle.c -- "ferry bundle": create, inspect and verify signed
 * bundles (common/bundle.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "bundle.h"
#include "cli.h"
#include "commands.h"
#include "hash.h"
#include "keys.h"
#include "migrations.h"
#include "sqlscript.h"
#include "util.h"

static const char create_usage[] =
    "usage: ferry bundle create --migrations DIR --project NAME --key KEY\n"
    "           [--parent PREV.fbundle] [--trust PUB]... [--note TEXT]\n"
    "           [--allow-rewrite] [--json] -o OUT\n"
    "\n"
    "Packs the whole ordered migrations folder DIR into a bundle, signs it\n"
    "with the secret key file KEY and writes it to OUT (atomically).\n"
    "\n"
    "With --parent the new bundle follows PREV: sequence + 1, PREV's digest\n"
    "as its parent. PREV is verified first, against the --trust keys if\n"
    "given, else against KEY's own public key. PREV's migrations must be\n"
    "an unchanged prefix of DIR (same names, same checksums, same order):\n"
    "a rewritten history is refused unless --allow-rewrite, which is then\n"
    "recorded in the bundle for every agent to see.\n"
    "\n"
    "A passphrase-protected KEY reads its passphrase from the file named by\n"
    "FERRY_PASSPHRASE_FILE, or from the terminal.\n"
    "\n"
    "Options:\n"
    "  --migrations DIR  Prisma-layout migrations folder\n"
    "  --project NAME    project the bundle belongs to\n"
    "  --key KEY         release-signing secret key file\n"
    "  --parent FILE     the project's previous bundle\n"
    "  --trust PUB       public key file trusted for --parent (repeatable)\n"
    "  --note TEXT       free text recorded in the bundle\n"
    "  --allow-rewrite   allow and record a rewritten history\n"
    "  -o, --output OUT  bundle file to write (.fbundle)\n"
    "  --json            print a JSON document\n"
    "  -h, --help        show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

static const char inspect_usage[] =
    "usage: ferry bundle inspect [--json] FILE\n"
    "\n"
    "Shows what a bundle file says -- project, sequence, digests, creation\n"
    "time, note, and its migrations with checksum, transaction mode and\n"
    "size -- WITHOUT checking its signature. Use 'ferry bundle verify' to\n"
    "check it. A bundle that rewrites history is marked REWRITES HISTORY.\n"
    "\n"
    "Options:\n"
    "  --json      print a JSON document\n"
    "  -h, --help  show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

static const char verify_usage[] =
    "usage: ferry bundle verify --trust PUB [--trust PUB]... [--parent P]\n"
    "           [--json] FILE\n"
    "\n"
    "Verifies a bundle file: its signature by one of the trusted public\n"
    "keys, then its format version, each migration's checksum against its\n"
    "SQL, and its migration names. With --parent, also that it follows P\n"
    "(itself verified with the same keys): same project, sequence + 1, P's\n"
    "digest as parent, and P's migrations unchanged unless the bundle\n"
    "records a rewrite. Exits 1 with the exact reason when refused.\n"
    "\n"
    "Options:\n"
    "  --trust PUB    trusted public key file (repeatable, at least one)\n"
    "  --parent FILE  the bundle this one must follow\n"
    "  --json         print a JSON document\n"
    "  -h, --help     show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

/* Trusted public keys given with --trust. */
struct trust {
	struct ferry_pubkey *keys;
	size_t n;
};

static int
trust_add(struct trust *t, const char *path, struct ferry_err *err)
{
	struct ferry_pubkey pk;
	int rc;

	rc = ferry_pubkey_load(path, &pk, err);
	if (rc != 0)
		return rc;
	t->keys = xrealloc(t->keys, (t->n + 1) * sizeof(*t->keys));
	t->keys[t->n++] = pk;
	return 0;
}

/* Prints s with every control character escaped, for a terminal. */
static void
put_safe(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

/* Prints a note, indenting its continuation lines. */
static void
put_note(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n')
			fputs("\n             ", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

static void
hex32(const uint8_t *d, char out[FERRY_SHA256_HEX_LEN + 1])
{
	ferry_hex_encode(d, FERRY_SHA256_LEN, out);
}

static void
format_created(int64_t ms, char *buf, size_t bufsz)
{
	ferry_format_utc(ms * 1000, buf, bufsz);
}

/* The trusted key with this id, or NULL. */
static const struct ferry_pubkey *
trust_find(const struct trust *t, const char *id)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->keys[i].id, id) == 0)
			return &t->keys[i];
	return NULL;
}

/* The common fields of a bundle as JSON. */
static json_t *
bundle_json(const struct ferry_bundle *b)
{
	char digest[FERRY_SHA256_HEX_LEN + 1], parent[FERRY_SHA256_HEX_LEN + 1];
	char created[64];
	json_t *j = json_object();

	hex32(ferry_bundle_digest(b), digest);
	format_created(ferry_bundle_created_ms(b), created, sizeof(created));
	json_object_set_new(j, "verified",
	    json_boolean(ferry_bundle_verified(b)));
	json_object_set_new(j, "project", json_string(ferry_bundle_project(b)));
	json_object_set_new(j, "sequence",
	    json_integer((json_int_t)ferry_bundle_sequence(b)));
	json_object_set_new(j, "digest", json_string(digest));
	if (ferry_bundle_parent_digest(b) != NULL) {
		hex32(ferry_bundle_parent_digest(b), parent);
		json_object_set_new(j, "parent_digest", json_string(parent));
	} else {
		json_object_set_new(j, "parent_digest", json_null());
	}
	json_object_set_new(j, "created_unix_ms",
	    json_integer((json_int_t)ferry_bundle_created_ms(b)));
	json_object_set_new(j, "created", json_string(created));
	json_object_set_new(j, "creator_key_id",
	    json_string(ferry_bundle_creator_key_id(b)));
	json_object_set_new(j, "note", json_string(ferry_bundle_note(b)));
	json_object_set_new(j, "allow_rewrite",
	    json_boolean(ferry_bundle_allow_rewrite(b)));
	json_object_set_new(j, "migrations",
	    json_integer((json_int_t)ferry_migrations_count(
	        ferry_bundle_migrations(b))));
	return j;
}

static int
cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "migrations", required_argument, NULL, 'm' },
		{ "project", required_argument, NULL, 'p' },
		{ "key", required_argument, NULL, 'k' },
		{ "parent", required_argument, NULL, 'P' },
		{ "trust", required_argument, NULL, 't' },
		{ "note", required_argument, NULL, 'n' },
		{ "allow-rewrite", no_argument, NULL, 'r' },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry bundle create";
	const char *dir = NULL, *keypath = NULL, *parent_path = NULL;
	const char *output = NULL;
	struct ferry_bundle_params params = { 0 };
	struct ferry_migrations *migs = NULL;
	struct ferry_seckey *key = NULL;
	struct ferry_bundle *parent = NULL, *made = NULL;
	struct trust trust = { NULL, 0 };
	struct ferry_err err;
	uint8_t *data = NULL;
	size_t len = 0;
	char digest[FERRY_SHA256_HEX_LEN + 1];
	int json = 0, c, rc = 0;

	ferry_err_clear(&err);
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			dir = optarg;
			break;
		case 'p':
			params.project = optarg;
			break;
		case 'k':
			keypath = optarg;
			break;
		case 'P':
			parent_path = optarg;
			break;
		case 't':
			rc = trust_add(&trust, optarg, &err);
			if (rc != 0) {
				rc = ferry_cli_fail("ferry", &err);
				goto out;
			}
			break;
		case 'n':
			params.note = optarg;
			break;
		case 'r':
			params.allow_rewrite = 1;
			break;
		case 'o':
			output = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(create_usage, stdout);
			goto out;
		default:
			rc = ferry_cli_usage_error(prog, "invalid option");
			goto out;
		}
	}
	if (optind != argc) {
		rc = ferry_cli_usage_error(prog, "unexpected argument '%s'",
		    argv[optind]);
		goto out;
	}
	if (dir == NULL || params.project == NULL || keypath == NULL ||
	    output == NULL) {
		rc = ferry_cli_usage_error(prog,
		    "--migrations, --project, --key and -o are required");
		goto out;
	}
	if (trust.n > 0 && parent_path == NULL) {
		rc = ferry_cli_usage_error(prog,
		    "--trust only applies to --parent");
		goto out;
	}

	rc = ferry_migrations_read_dir(dir, &migs, &err);
	if (rc == 0)
		rc = ferry_seckey_load(keypath, NULL, &key, &err);
	if (rc != 0) {
		rc = ferry_cli_fail("ferry", &err);
		goto out;
	}
	if (trust.n == 0) {
		trust.keys = xmalloc(sizeof(*trust.keys));
		trust.keys[0] = *ferry_seckey_public(key);
		trust.n = 1;
	}
	if (parent_path != NULL) {
		rc = ferry_bundle_open_file(parent_path, trust.keys, trust.n,
		    &parent, &err);
		if (rc != 0) {
			fprintf(stderr,
			    "ferry: error: parent bundle '%s': %s\n",
			    parent_path, err.msg);
			rc = ferry_err_exit_status(rc);
			goto out;
		}
		params.parent = parent;
	}
	rc = ferry_bundle_create(migs, &params, key, &data, &len, &err);
	if (rc != 0) {
		rc = ferry_cli_fail("ferry", &err);
		if (err.code == FERRY_EFINDING)
			fprintf(stderr,
			    "hint: if this rewrite is deliberate, pass "
			    "--allow-rewrite; it is recorded in the bundle\n");
		goto out;
	}
	/* Sign, then verify what was signed before anyone else sees it. */
	rc = ferry_bundle_open(data, len, ferry_seckey_public(key), 1, &made,
	    &err);
	if (rc != 0) {
		fprintf(stderr,
		    "ferry: error: the new bundle does not verify: %s\n",
		    err.msg);
		rc = FERRY_EOPER;
		goto out;
	}
	rc = ferry_write_file_atomic(output, data, len, 0644, &err);
	if (rc != 0) {
		rc = ferry_cli_fail("ferry", &err);
		goto out;
	}
	if (ferry_bundle_allow_rewrite(made))
		ferry_cli_warn("ferry",
		    "bundle %" PRIu64 " REWRITES HISTORY of bundle %" PRIu64
		    " (recorded in the bundle)",
		    ferry_bundle_sequence(made), ferry_bundle_sequence(parent));
	if (json) {
		json_t *j = bundle_json(made);

		json_object_set_new(j, "file", json_string(output));
		json_object_set_new(j, "size", json_integer((json_int_t)len));
		rc = ferry_cli_print_json(j);
		goto out;
	}
	hex32(ferry_bundle_digest(made), digest);
	printf("wrote %s (%zu bytes)\n", output, len);
	printf("project:    ");
	put_safe(stdout, ferry_bundle_project(made));
	printf("\nsequence:   %" PRIu64 "\n", ferry_bundle_sequence(made));
	printf("migrations: %zu\n",
	    ferry_migrations_count(ferry_bundle_migrations(made)));
	printf("digest:     %s\n", digest);
	printf("signed by:  %s (%s)\n", ferry_seckey_public(key)->id,
	    ferry_seckey_public(key)->name);
out:
	ferry_bundle_free(made);
	ferry_bundle_free(parent);
	free(data);
	free(trust.keys);
	ferry_seckey_free(key);
	ferry_migrations_free(migs);
	return rc;
}

/* The transaction mode of one migration, as the engine would choose it. */
static const char *
mode_of(const struct ferry_migration *e)
{
	struct ferry_script *s = NULL;
	struct ferry_err err;
	const char *mode;

	ferry_err_clear(&err);
	if (ferry_script_parse(e->sql, e->sql_len, e->name, &s, &err) != 0)
		return "invalid";
	mode = ferry_mode_name(ferry_script_mode(s));
	ferry_script_free(s);
	return mode;
}

static void
inspect_table(const char *path, const struct ferry_bundle *b)
{
	const struct ferry_migrations *m = ferry_bundle_migrations(b);
	size_t i, n = ferry_migrations_count(m), w = 4;
	char digest[FERRY_SHA256_HEX_LEN + 1], parent[FERRY_SHA256_HEX_LEN + 1];
	char created[64];

	hex32(ferry_bundle_digest(b), digest);
	format_created(ferry_bundle_created_ms(b), created, sizeof(created));
	printf("bundle %s\n", path);
	printf("WARNING: signature not verified (this only shows what the "
	       "file says;\n         check it with 'ferry bundle verify "
	       "--trust KEY')\n\n");
	if (ferry_bundle_allow_rewrite(b))
		printf("*** REWRITES HISTORY: this bundle changes or removes "
		       "migrations of its parent ***\n\n");
	printf("project:     ");
	put_safe(stdout, ferry_bundle_project(b));
	printf("\nsequence:    %" PRIu64 "\n", ferry_bundle_sequence(b));
	printf("digest:      %s\n", digest);
	if (ferry_bundle_parent_digest(b) != NULL) {
		hex32(ferry_bundle_parent_digest(b), parent);
		printf("parent:      %s\n", parent);
	} else {
		printf("parent:      none (first bundle)\n");
	}
	printf("created:     %s\n", created);
	printf("creator key: ");
	put_safe(stdout, ferry_bundle_creator_key_id(b));
	if (ferry_bundle_note(b)[0] != '\0') {
		printf("\nnote:        ");
		put_note(stdout, ferry_bundle_note(b));
	}
	printf("\n\n");
	for (i = 0; i < n; i++) {
		size_t l = strlen(ferry_migrations_get(m, i)->name);
		w = l > w ? l : w;
	}
	printf("%-*s  %-64s  %-13s  %10s  %s\n", (int)w, "NAME", "CHECKSUM",
	    "MODE", "SIZE", "DOWN");
	for (i = 0; i < n; i++) {
		const struct ferry_migration *e = ferry_migrations_get(m, i);
		size_t pad = w - strlen(e->name);

		put_safe(stdout, e->name);
		printf("%*s  %s  %-13s  %10zu  %s\n", (int)pad, "", e->checksum,
		    mode_of(e), e->sql_len, e->down_sql != NULL ? "yes" : "no");
	}
	printf("%zu migration%s (signature not verified)\n", n,
	    n == 1 ? "" : "s");
}

static json_t *
inspect_json(const char *path, const struct ferry_bundle *b)
{
	const struct ferry_migrations *m = ferry_bundle_migrations(b);
	json_t *j = bundle_json(b), *arr = json_array();
	size_t i, n = ferry_migrations_count(m);

	json_object_set_new(j, "file", json_string(path));
	json_object_set_new(j, "warning",
	    json_string("signature not verified"));
	for (i = 0; i < n; i++) {
		const struct ferry_migration *e = ferry_migrations_get(m, i);

		json_array_append_new(arr,
		    json_pack("{s:s, s:s, s:s, s:I, s:b}", "name", e->name,
		        "checksum", e->checksum, "mode", mode_of(e), "size",
		        (json_int_t)e->sql_len, "down", e->down_sql != NULL));
	}
	json_object_set_new(j, "migrations", arr);
	return j;
}

static int
cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry bundle inspect";
	struct ferry_bundle *b = NULL;
	struct ferry_buf buf;
	struct ferry_err err;
	int json = 0, c, rc;

	ferry_err_clear(&err);
	ferry_buf_init(&buf, (size_t)FERRY_BUNDLE_MAX_BYTES + 1);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(inspect_usage, stdout);
			return 0;
		default:
			return ferry_cli_usage_error(prog, "invalid option");
		}
	}
	if (optind != argc - 1)
		return ferry_cli_usage_error(prog,
		    "expected exactly one bundle file");
	rc = ferry_buf_read_file(&buf, argv[optind], &err);
	if (rc == 0)
		rc = ferry_bundle_decode_unverified((const uint8_t *)buf.data,
		    buf.len, &b, &err);
	if (rc != 0) {
		fprintf(stderr, "ferry: error: %s: %s\n", argv[optind],
		    err.msg);
		rc = ferry_err_exit_status(rc);
		goto out;
	}
	if (json)
		rc = ferry_cli_print_json(inspect_json(argv[optind], b));
	else
		inspect_table(argv[optind], b);
out:
	ferry_bundle_free(b);
	ferry_buf_release(&buf);
	return rc;
}

/* Reports a refused or failed verification; returns the exit status. */
static int
verify_failed(int json, const char *file, const char *what,
    const struct ferry_err *err)
{
	int status = ferry_err_exit_status(err->code ? err->code : FERRY_EOPER);

	fprintf(stderr, "ferry: error: %s%s: %s\n", what, file, err->msg);
	if (json) {
		json_t *j = json_pack("{s:b, s:s, s:s, s:i}", "valid", 0,
		    "file", file, "reason", err->msg, "exit", status);

		json_object_set_new(j, "refused",
		    json_string(what[0] != '\0' ? "parent" : "bundle"));
		ferry_cli_print_json(j);
	}
	return status;
}

static int
cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "trust", required_argument, NULL, 't' },
		{ "parent", required_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry bundle verify";
	const char *parent_path = NULL, *file;
	struct ferry_bundle *b = NULL, *parent = NULL;
	const struct ferry_pubkey *signer;
	struct trust trust = { NULL, 0 };
	struct ferry_err err;
	char digest[FERRY_SHA256_HEX_LEN + 1];
	int json = 0, c, rc = 0;

	ferry_err_clear(&err);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			rc = trust_add(&trust, optarg, &err);
			if (rc != 0) {
				rc = ferry_cli_fail("ferry", &err);
				goto out;
			}
			break;
		case 'P':
			parent_path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(verify_usage, stdout);
			goto out;
		default:
			rc = ferry_cli_usage_error(prog, "invalid option");
			goto out;
		}
	}
	if (optind != argc - 1) {
		rc = ferry_cli_usage_error(prog,
		    "expected exactly one bundle file");
		goto out;
	}
	if (trust.n == 0) {
		rc = ferry_cli_usage_error(prog,
		    "at least one --trust public key is required");
		goto out;
	}
	file = argv[optind];
	rc = ferry_bundle_open_file(file, trust.keys, trust.n, &b, &err);
	if (rc != 0) {
		rc = verify_failed(json, file, "", &err);
		goto out;
	}
	if (parent_path != NULL) {
		rc = ferry_bundle_open_file(parent_path, trust.keys, trust.n,
		    &parent, &err);
		if (rc != 0) {
			rc = verify_failed(json, parent_path, "parent bundle ",
			    &err);
			goto out;
		}
		rc = ferry_bundle_check_parent(b, parent, &err);
		if (rc != 0) {
			rc = verify_failed(json, file, "", &err);
			goto out;
		}
	}
	signer = trust_find(&trust, ferry_bundle_creator_key_id(b));
	if (json) {
		json_t *j = bundle_json(b);

		json_object_set_new(j, "valid", json_true());
		json_object_set_new(j, "file", json_string(file));
		json_object_set_new(j, "signer",
		    json_string(signer != NULL ? signer->name : ""));
		json_object_set_new(j, "parent_checked",
		    json_boolean(parent != NULL));
		rc = ferry_cli_print_json(j);
		goto out;
	}
	hex32(ferry_bundle_digest(b), digest);
	printf("%s: valid\n", file);
	printf("project:    ");
	put_safe(stdout, ferry_bundle_project(b));
	printf("\nsequence:   %" PRIu64 "%s\n", ferry_bundle_sequence(b),
	    parent != NULL ? " (follows the given parent)" : "");
	printf("migrations: %zu\n",
	    ferry_migrations_count(ferry_bundle_migrations(b)));
	printf("digest:     %s\n", digest);
	printf("signed by:  %s (%s)\n", ferry_bundle_creator_key_id(b),
	    signer != NULL ? signer->name : "?");
	if (ferry_bundle_allow_rewrite(b))
		printf("REWRITES HISTORY: this bundle changes or removes "
		       "migrations of its parent\n");
out:
	ferry_bundle_free(parent);
	ferry_bundle_free(b);
	free(trust.keys);
	return rc;
}

static const struct ferry_cmd bundle_commands[] = {
	{ "create", cmd_create, "pack and sign a migrations folder" },
	{ "inspect", cmd_inspect, "show a bundle's contents (not verified)" },
	{ "verify", cmd_verify, "verify a bundle against trusted keys" },
	{ NULL, NULL, NULL },
};

int
cmd_bundle(int argc, char **argv)
{
	return ferry_cli_dispatch("ferry bundle",
	    "Create, inspect and verify signed migration bundles.", NULL,
	    bundle_commands, argc, argv);
}
