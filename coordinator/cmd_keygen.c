/*
 * cmd_keygen.c -- "ferry keygen": generate an Ed25519 key pair.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "hash.h"
#include "keys.h"
#include "util.h"

/* Longest passphrase accepted, plus the NUL. */
#define PASS_MAX 1024

static const char keygen_usage[] =
    "usage: ferry keygen --name NAME -o DIR [--passphrase | "
    "--no-passphrase] [--json]\n"
    "\n"
    "Generates an Ed25519 key pair -- for signing bundles, approving a\n"
    "rollout stage or identifying an agent -- and writes DIR/NAME.key, the\n"
    "secret key (mode 0600, never overwritten), and DIR/NAME.pub, the one\n"
    "line to hand to others. DIR and missing parents are created (0700).\n"
    "\n"
    "The secret key is encrypted with a passphrase (Argon2id) unless\n"
    "--no-passphrase is given. The passphrase is the first line of the file\n"
    "named by FERRY_PASSPHRASE_FILE, or is asked twice on the terminal.\n"
    "With neither available (CI), keygen refuses: say --no-passphrase to\n"
    "write an unencrypted key whose protection is the file's mode alone.\n"
    "\n"
    "Options:\n"
    "  --name NAME       key name: 1-64 of A-Z a-z 0-9 . _ @ -\n"
    "  -o, --output DIR  directory for NAME.key and NAME.pub\n"
    "  --passphrase      encrypt the secret key (the default)\n"
    "  --no-passphrase   do not encrypt the secret key\n"
    "  --json            print a JSON document instead of text\n"
    "  -h, --help        show this help\n"
    "\n"
    "Environment:\n"
    "  FERRY_PASSPHRASE_FILE  file whose first line is the passphrase\n"
    "\n" FERRY_EXIT_CODES_HELP;

enum { PASS_DEFAULT = -1, PASS_NO = 0, PASS_YES = 1 };

/* 1 if a passphrase can be had without failing: a file or a terminal. */
static int
can_ask(void)
{
	const char *file = getenv("FERRY_PASSPHRASE_FILE");
	int fd;

	if (file != NULL && file[0] != '\0')
		return 1;
	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Refuses early a key that exists, before asking for a passphrase. */
static int
check_free(const char *path, struct ferry_err *err)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' already exists: refusing to overwrite a key", path);
	return 0;
}

int
cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "passphrase", no_argument, NULL, 'p' },
		{ "no-passphrase", no_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = "ferry keygen";
	const char *name = NULL, *dir = NULL, *sep;
	struct ferry_seckey *k = NULL;
	const struct ferry_pubkey *pub;
	char *keypath = NULL, *pubpath = NULL, *pass = NULL;
	char line[256];
	struct ferry_err err;
	int mode = PASS_DEFAULT, want, json = 0, c, rc = 0;

	ferry_err_clear(&err);
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'o':
			dir = optarg;
			break;
		case 'p':
		case 'P':
			want = c == 'p' ? PASS_YES : PASS_NO;
			if (mode != PASS_DEFAULT && mode != want)
				return ferry_cli_usage_error(prog,
				    "--passphrase and --no-passphrase "
				    "exclude each other");
			mode = want;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(keygen_usage, stdout);
			return 0;
		default:
			return ferry_cli_bad_option(prog, argv);
		}
	}
	if (optind != argc)
		return ferry_cli_usage_error(prog, "unexpected argument '%s'",
		    argv[optind]);
	if (name == NULL)
		return ferry_cli_usage_error(prog, "--name NAME is required");
	if (dir == NULL || dir[0] == '\0')
		return ferry_cli_usage_error(prog, "-o DIR is required");
	if (ferry_key_check_name(name, &err) != 0)
		goto out;
	if (ferry_crypto_init() != 0) {
		ferry_errf(&err, FERRY_EOPER, "cannot initialise libsodium");
		goto out;
	}
	sep = dir[strlen(dir) - 1] == '/' ? "" : "/";
	keypath = xasprintf("%s%s%s.key", dir, sep, name);
	pubpath = xasprintf("%s%s%s.pub", dir, sep, name);
	if (check_free(keypath, &err) != 0 || check_free(pubpath, &err) != 0)
		goto out;
	if (mode == PASS_DEFAULT && !can_ask()) {
		ferry_errf(&err, FERRY_EUSAGE,
		    "no terminal to ask for a passphrase and "
		    "FERRY_PASSPHRASE_FILE is not set: set it, or pass "
		    "--no-passphrase to write an unencrypted key");
		goto out;
	}
	if (ferry_mkdir_p(dir, &err) != 0)
		goto out;
	if (mode != PASS_NO) {
		pass = sodium_malloc(PASS_MAX);
		if (pass == NULL) {
			fputs("ferry: out of memory\n", stderr);
			abort();
		}
		if (ferry_passphrase_read("Passphrase for the new key: ", 1,
		        pass, PASS_MAX, &err) != 0)
			goto out;
	}
	if (ferry_seckey_generate(name, &k, &err) != 0 ||
	    ferry_seckey_save(k, dir, pass, &err) != 0)
		goto out;
	pub = ferry_seckey_public(k);
	ferry_pubkey_format(pub, line, sizeof(line));
	if (json) {
		rc = ferry_cli_print_json(
		    json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "name",
		        pub->name, "key_id", pub->id, "public_key", line,
		        "secret_key_file", keypath, "public_key_file", pubpath,
		        "encrypted", pass != NULL));
	} else {
		printf("secret key: %s (%s)\n", keypath,
		    pass != NULL ? "encrypted with the passphrase"
		                 : "not encrypted");
		printf("public key: %s\n", pubpath);
		printf("key id:     %s\n", pub->id);
		printf("%s\n", line);
		if (fflush(stdout) != 0)
			rc = FERRY_EOPER;
	}
out:
	ferry_seckey_free(k);
	if (pass != NULL)
		sodium_free(pass);
	free(pubpath);
	free(keypath);
	if (err.code != 0)
		return ferry_cli_fail("ferry", &err);
	return rc;
}
