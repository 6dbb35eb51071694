/*
 * cmd_approve.c -- "ferry approve": a release manager signs an approval of
 * one bundle for one environment and rollout, with their own key.
 *
 * What is being approved is shown before the key is loaded, so that the
 * passphrase prompt comes after the approver has seen the bundle's
 * project, sequence, digest and migrations.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "approval.h"
#include "buf.h"
#include "bundle.h"
#include "cli.h"
#include "commands.h"
#include "hash.h"
#include "keys.h"
#include "util.h"

static const char approve_usage[] =
    "usage: ferry approve --bundle FILE --environment ENV --rollout ID\n"
    "                     --key KEY -o OUT [--expires DURATION]\n"
    "                     [--trust PUB]... [--json]\n"
    "\n"
    "Signs an approval of the bundle FILE for environment ENV and rollout\n"
    "ID with your own secret key, and writes it to OUT. The agents of a\n"
    "protected environment accept a bundle only with enough valid\n"
    "approvals from the approvers their own configuration trusts.\n"
    "\n"
    "What is being approved (project, sequence, digest, migrations) is\n"
    "shown before the key is loaded. With --trust, the bundle's signature\n"
    "is verified first and the approval is refused if it does not verify;\n"
    "without it, the bundle is only decoded and you should verify it\n"
    "yourself ('ferry bundle verify').\n"
    "\n"
    "Options:\n"
    "  --bundle FILE        the signed bundle to approve\n"
    "  --environment ENV    the environment the approval is for (exact)\n"
    "  --rollout ID         the rollout the approval is for\n"
    "  --expires DURATION   validity, e.g. 30m, 24h, 7d (default 24h)\n"
    "  --key KEY            your secret key file (asks for its passphrase\n"
    "                       unless FERRY_PASSPHRASE_FILE names a file)\n"
    "  -o, --output OUT     where to write the approval (atomically)\n"
    "  --trust PUB          a release-signing public key file to verify\n"
    "                       the bundle against; may be repeated\n"
    "  --json               print a JSON document instead of text\n"
    "  -h, --help           show this help\n"
    "\n" FERRY_EXIT_CODES_HELP;

#define PROG "ferry approve"
/* 9999-12-31T23:59:59.999Z, the last time ferry_format_utc can show. */
#define TIME_MAX_MS INT64_C(253402300799999)

struct approve_opts {
	const char *bundle;
	const char *environment;
	const char *rollout;
	const char *expires;
	const char *key;
	const char *output;
	const char **trust;
	size_t ntrust;
	int json;
};

/*
 * Copies s for display, with anything but printable ASCII shown as '?':
 * an unverified bundle's strings have not been checked by anyone.
 */
static void
printable(const char *s, char *out, size_t outsz)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < outsz; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
}

/*
 * Formats a time in ms since the epoch as UTC, or "(invalid time)" for
 * one outside years 1970 to 9999 (a bundle's creation time is whatever
 * its signer, or for an unverified bundle anybody, wrote).
 */
static void
format_ms(int64_t ms, char *buf, size_t bufsz)
{
	if (ms < 0 || ms > TIME_MAX_MS)
		ferry_strlcpy(buf, "(invalid time)", bufsz);
	else
		ferry_format_utc(ms * 1000, buf, bufsz);
}

/*
 * Opens the bundle: verified against the --trust keys when there are any,
 * else only decoded (with a warning). Returns an exit status.
 */
static int
open_bundle(const struct approve_opts *o, struct ferry_bundle **out,
    struct ferry_err *err)
{
	struct ferry_pubkey *trusted = NULL;
	struct ferry_buf buf;
	size_t i;
	int rc = 0;

	*out = NULL;
	ferry_buf_init(&buf, FERRY_BUNDLE_MAX_BYTES);
	if (o->ntrust > 0) {
		trusted = xcalloc(o->ntrust, sizeof(*trusted));
		for (i = 0; i < o->ntrust; i++) {
			rc = ferry_pubkey_load(o->trust[i], &trusted[i], err);
			if (rc != 0)
				goto out;
		}
		rc = ferry_bundle_open_file(o->bundle, trusted, o->ntrust, out,
		    err);
		goto out;
	}
	ferry_cli_warn(PROG,
	    "the bundle's signature is not verified (no --trust): check it "
	    "with 'ferry bundle verify' before relying on what is shown");
	rc = ferry_buf_read_file(&buf, o->bundle, err);
	if (rc == 0)
		rc = ferry_bundle_decode_unverified((const uint8_t *)
		                                        ferry_buf_str(&buf),
		    ferry_buf_len(&buf), out, err);
out:
	ferry_buf_release(&buf);
	free(trusted);
	return rc;
}

/* Shows what is about to be approved, on f. */
static void
show_bundle(FILE *f, const struct ferry_bundle *b, const struct approve_opts *o,
    int64_t expires_ms)
{
	const struct ferry_migrations *m = ferry_bundle_migrations(b);
	size_t n = ferry_migrations_count(m);
	char hex[2 * FERRY_SHA256_LEN + 1], when[40], s[160];

	fprintf(f, "Approving bundle %s:\n", o->bundle);
	printable(ferry_bundle_project(b), s, sizeof(s));
	fprintf(f, "  project      %s\n", s);
	fprintf(f, "  sequence     %" PRIu64 "\n", ferry_bundle_sequence(b));
	ferry_hex_encode(ferry_bundle_digest(b), FERRY_SHA256_LEN, hex);
	fprintf(f, "  digest       %s\n", hex);
	if (n > 0) {
		printable(ferry_migrations_get(m, n - 1)->name, s, sizeof(s));
		fprintf(f, "  migrations   %zu (last: %s)\n", n, s);
	} else {
		fprintf(f, "  migrations   0\n");
	}
	format_ms(ferry_bundle_created_ms(b), when, sizeof(when));
	printable(ferry_bundle_creator_key_id(b), s, sizeof(s));
	fprintf(f, "  created      %s by key %s\n", when, s);
	if (ferry_bundle_note(b) != NULL && *ferry_bundle_note(b) != '\0') {
		printable(ferry_bundle_note(b), s, sizeof(s));
		fprintf(f, "  note         %s\n", s);
	}
	fprintf(f, "  signature    %s\n",
	    ferry_bundle_verified(b) ? "verified against --trust"
	                             : "NOT VERIFIED");
	format_ms(expires_ms, when, sizeof(when));
	fprintf(f, "for environment '%s', rollout '%s', until %s\n",
	    o->environment, o->rollout, when);
	fflush(f);
	if (ferry_bundle_allow_rewrite(b))
		ferry_cli_warn(PROG,
		    "this bundle rewrites history (allow_rewrite): its "
		    "parent's migrations are not an unchanged prefix of its "
		    "own; approve only if that is intended");
}

static json_t *
result_json(const struct approve_opts *o, const struct ferry_bundle *b,
    const struct ferry_pubkey *pub, int64_t expires_ms)
{
	char hex[2 * FERRY_SHA256_LEN + 1], when[40], project[160];

	ferry_hex_encode(ferry_bundle_digest(b), FERRY_SHA256_LEN, hex);
	format_ms(expires_ms, when, sizeof(when));
	/* Valid UTF-8 for jansson even from an unverified bundle. */
	printable(ferry_bundle_project(b), project, sizeof(project));
	return json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:I, s:{s:s, s:I, "
	                 "s:s, s:I, "
	                 "s:b, s:b}}",
	    "output", o->output, "approver", "name", pub->name, "key_id",
	    pub->id, "environment", o->environment, "rollout", o->rollout,
	    "expires", when, "expires_unix_ms", (json_int_t)expires_ms,
	    "bundle", "project", project, "sequence",
	    (json_int_t)ferry_bundle_sequence(b), "digest", hex, "migrations",
	    (json_int_t)ferry_migrations_count(ferry_bundle_migrations(b)),
	    "allow_rewrite", ferry_bundle_allow_rewrite(b), "verified",
	    ferry_bundle_verified(b));
}

/*
 * Refuses an environment or rollout id that ferry_approval_create would
 * refuse, before the passphrase prompt rather than after it: a dry run
 * with a throwaway key applies exactly the library's rules.
 */
static int
check_names(const struct approve_opts *o, int64_t expires_ms,
    struct ferry_err *err)
{
	struct ferry_seckey *tmp = NULL;
	uint8_t zero[FERRY_SHA256_LEN] = { 0 }, *data = NULL;
	size_t len;
	int rc;

	rc = ferry_seckey_generate("dry-run", &tmp, err);
	if (rc == 0)
		rc = ferry_approval_create(zero, o->environment, o->rollout,
		    expires_ms, tmp, &data, &len, err);
	free(data);
	ferry_seckey_free(tmp);
	if (rc == FERRY_EUSAGE)
		return ferry_cli_usage_error(PROG, "%s", err->msg);
	return rc != 0 ? ferry_cli_fail("ferry", err) : 0;
}

/* Parses the options into o. Returns -1 to go on, or an exit status. */
static int
parse_opts(int argc, char **argv, struct approve_opts *o)
{
	enum { O_BUNDLE = 256, O_ENV, O_ROLLOUT, O_EXPIRES, O_KEY, O_TRUST };
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, O_BUNDLE },
		{ "environment", required_argument, NULL, O_ENV },
		{ "rollout", required_argument, NULL, O_ROLLOUT },
		{ "expires", required_argument, NULL, O_EXPIRES },
		{ "key", required_argument, NULL, O_KEY },
		{ "output", required_argument, NULL, 'o' },
		{ "trust", required_argument, NULL, O_TRUST },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case O_BUNDLE:
			o->bundle = optarg;
			break;
		case O_ENV:
			o->environment = optarg;
			break;
		case O_ROLLOUT:
			o->rollout = optarg;
			break;
		case O_EXPIRES:
			o->expires = optarg;
			break;
		case O_KEY:
			o->key = optarg;
			break;
		case 'o':
			o->output = optarg;
			break;
		case O_TRUST:
			o->trust[o->ntrust++] = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			fputs(approve_usage, stdout);
			return 0;
		default:
			return ferry_cli_usage_error(PROG, "invalid option");
		}
	}
	if (optind != argc)
		return ferry_cli_usage_error(PROG, "unexpected argument '%s'",
		    argv[optind]);
	if (o->bundle == NULL || o->environment == NULL || o->rollout == NULL ||
	    o->key == NULL || o->output == NULL)
		return ferry_cli_usage_error(PROG,
		    "--bundle, --environment, --rollout, --key and -o are "
		    "required");
	return -1;
}

int
cmd_approve(int argc, char **argv)
{
	struct approve_opts o;
	struct ferry_bundle *b = NULL;
	struct ferry_seckey *key = NULL;
	const struct ferry_pubkey *pub;
	struct ferry_err err;
	uint8_t *data = NULL;
	size_t len = 0;
	int64_t ttl_ms, now_ms, expires_ms;
	char when[40];
	FILE *info;
	int rc;

	memset(&o, 0, sizeof(o));
	o.expires = "24h";
	/* Each --trust takes two argv slots: argc bounds their number. */
	o.trust = xcalloc((size_t)argc + 1, sizeof(*o.trust));
	ferry_err_clear(&err);
	rc = parse_opts(argc, argv, &o);
	if (rc >= 0)
		goto out;
	rc = 0;
	if (ferry_parse_duration_ms(o.expires, "expiry", &ttl_ms, &err) != 0) {
		rc = ferry_cli_usage_error(PROG, "%s", err.msg);
		goto out;
	}
	now_ms = ferry_wall_us() / 1000;
	if (ttl_ms <= 0 || ttl_ms > TIME_MAX_MS - now_ms) {
		rc = ferry_cli_usage_error(PROG, "invalid expiry '%s'",
		    o.expires);
		goto out;
	}
	expires_ms = now_ms + ttl_ms;
	rc = check_names(&o, expires_ms, &err);
	if (rc != 0)
		goto out;

	if (open_bundle(&o, &b, &err) != 0) {
		rc = ferry_cli_fail("ferry", &err);
		goto out;
	}
	/* With --json, stdout carries only the document. */
	info = o.json ? stderr : stdout;
	show_bundle(info, b, &o, expires_ms);

	if (ferry_seckey_load(o.key, NULL, &key, &err) != 0) {
		rc = ferry_cli_fail("ferry", &err);
		goto out;
	}
	pub = ferry_seckey_public(key);
	if (ferry_approval_create(ferry_bundle_digest(b), o.environment,
	        o.rollout, expires_ms, key, &data, &len, &err) != 0 ||
	    ferry_write_file_atomic(o.output, data, len, 0644, &err) != 0) {
		rc = ferry_cli_fail("ferry", &err);
		goto out;
	}
	if (o.json) {
		rc = ferry_cli_print_json(result_json(&o, b, pub, expires_ms));
		goto out;
	}
	format_ms(expires_ms, when, sizeof(when));
	printf("wrote approval to %s\n", o.output);
	printf("  approver     %s (key %s)\n", pub->name, pub->id);
	printf("  environment  %s\n", o.environment);
	printf("  rollout      %s\n", o.rollout);
	printf("  expires      %s\n", when);
out:
	free(data);
	ferry_seckey_free(key);
	ferry_bundle_free(b);
	free(o.trust);
	return rc;
}
