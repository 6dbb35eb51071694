/*
 * bundle.c -- signed, content-addressed, hash-chained migration bundles.
 *
 * The file is an encoded ferry.SignedBundle. Its wrapper is parsed by hand
 * here, not by protobuf-c: it is the only part read before the signature
 * is checked, so the parser is small and strict. It accepts exactly the
 * canonical encoding protobuf-c writes -- fields 1 (format_version), 2
 * (bundle), 3 (signature), 4 (key_id), each once, in that order, minimal
 * varints, nothing after -- so that no byte of the file but the signature
 * can change without the file being refused. The wrapper's key id is bound
 * to the signed content too: it must equal Bundle.creator_key_id.
 *
 * Only once the signature verifies are the Bundle bytes handed to
 * protobuf-c. The generated names (Ferry__*) stay inside this file.
 */
#include "bundle.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "ferry.pb-c.h"
#include "hash.h"
#include "sqlscript.h"
#include "util.h"

/* Limits on the small strings of a bundle, checked on create and open. */
#define PROJECT_MAX 128
#define NAME_MAX_LEN 255
#define NOTE_MAX 4096

struct ferry_bundle {
	int verified;
	uint32_t format_version;
	char *project;
	uint64_t sequence;
	uint8_t digest[FERRY_SHA256_LEN];
	int has_parent;
	uint8_t parent_digest[FERRY_SHA256_LEN];
	int64_t created_ms;
	char *creator_key_id;
	char *note;
	int allow_rewrite;
	struct ferry_migrations *migs;
};

/* The four fields of a SignedBundle, pointing into the file's bytes. */
struct wrapper {
	uint64_t version;
	const uint8_t *bundle;
	size_t bundle_len;
	const uint8_t *sig;
	size_t sig_len;
	const char *key_id;
	size_t key_id_len;
};

/*
 * Copies s into out for use inside a message: bytes that could move a
 * terminal's cursor become '?', and a long string is cut with "...".
 * Strings from a bundle may come from anyone, so every one is quoted so.
 */
static const char *
printable(const char *s, size_t len, char *out, size_t outsz)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 4 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];

		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

#define SAFE(s, buf) printable((s), strlen(s), (buf), sizeof(buf))

/* Returns 1 if s holds a control character other than the allowed ones. */
static int
has_control(const char *s, size_t len, const char *allowed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 || c == 0x7f) &&
		    (c == 0 || strchr(allowed, c) == NULL))
			return 1;
	}
	return 0;
}

static int
is_lower_hex(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		        (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Checks a project name (create and open alike). */
static int
check_project(const char *project, int code, struct ferry_err *err)
{
	size_t len = strlen(project);

	if (len == 0)
		return ferry_errf(err, code, "bundle has no project name");
	if (len > PROJECT_MAX || has_control(project, len, ""))
		return ferry_errf(err, code,
		    "bundle project name is not 1-%d printable characters",
		    PROJECT_MAX);
	return 0;
}

/* Checks a note (create and open alike). */
static int
check_note(const char *note, int code, struct ferry_err *err)
{
	size_t len = strlen(note);

	if (len > NOTE_MAX)
		return ferry_errf(err, code,
		    "bundle note is %zu bytes, longer than %d", len, NOTE_MAX);
	if (has_control(note, len, "\t\n"))
		return ferry_errf(err, code,
		    "bundle note holds control characters (only tab and "
		    "newline are allowed)");
	return 0;
}

/*
 * Checks one migration name: a folder name, so non-empty, no '/', not "."
 * or "..", no control characters, at most NAME_MAX_LEN bytes.
 */
static int
check_name(const char *name, size_t index, int code, struct ferry_err *err)
{
	size_t len = strlen(name);
	char q[96];

	if (len == 0)
		return ferry_errf(err, code, "migration %zu has an empty name",
		    index + 1);
	if (len > NAME_MAX_LEN || has_control(name, len, "") ||
	    strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return ferry_errf(err, code,
		    "migration %zu has an invalid name '%s' (a folder name of "
		    "at most %d bytes, no '/' or control characters)",
		    index + 1, printable(name, len, q, sizeof(q)),
		    NAME_MAX_LEN);
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks every name of m and that no two are equal (O(n log n)). */
static int
check_names(const struct ferry_migrations *m, int code, struct ferry_err *err)
{
	size_t i, n = ferry_migrations_count(m);
	const char **names = NULL;
	char q[96];
	int rc = 0;

	for (i = 0; i < n; i++) {
		rc = check_name(ferry_migrations_get(m, i)->name, i, code, err);
		if (rc != 0)
			return rc;
	}
	if (n < 2)
		return 0;
	names = xmalloc(n * sizeof(*names));
	for (i = 0; i < n; i++)
		names[i] = ferry_migrations_get(m, i)->name;
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i + 1 < n; i++) {
		if (strcmp(names[i], names[i + 1]) == 0) {
			rc = ferry_errf(err, code,
			    "migration '%s' appears more than once",
			    SAFE(names[i], q));
			break;
		}
	}
	free(names);
	return rc;
}

/*
 * Checks that the migrations of the parent bundle are an unchanged prefix
 * of child (by name and checksum). Returns 0, or FERRY_EFINDING saying
 * where the history was rewritten.
 */
static int
check_prefix(const struct ferry_migrations *parent, uint64_t parent_seq,
    const struct ferry_migrations *child, struct ferry_err *err)
{
	size_t i, np = ferry_migrations_count(parent);
	size_t nc = ferry_migrations_count(child);
	char q1[96], q2[96];

	for (i = 0; i < np; i++) {
		const struct ferry_migration *p =
		    ferry_migrations_get(parent, i);
		const struct ferry_migration *c;

		if (i >= nc)
			return ferry_errf(err, FERRY_EFINDING,
			    "history rewritten: migration '%s' of parent "
			    "bundle %" PRIu64 " is missing",
			    SAFE(p->name, q1), parent_seq);
		c = ferry_migrations_get(child, i);
		if (strcmp(p->name, c->name) != 0) {
			if (ferry_migrations_find(child, p->name) != NULL)
				return ferry_errf(err, FERRY_EFINDING,
				    "history rewritten: migration '%s' is "
				    "placed before '%s', which parent bundle "
				    "%" PRIu64 " already has",
				    SAFE(c->name, q1), SAFE(p->name, q2),
				    parent_seq);
			return ferry_errf(err, FERRY_EFINDING,
			    "history rewritten: migration '%s' of parent "
			    "bundle %" PRIu64 " is missing (found '%s' in its "
			    "place)",
			    SAFE(p->name, q1), parent_seq, SAFE(c->name, q2));
		}
		if (strcmp(p->checksum, c->checksum) != 0)
			return ferry_errf(err, FERRY_EFINDING,
			    "history rewritten: migration '%s' was modified "
			    "since parent bundle %" PRIu64
			    " (checksum %.12s... there, %.12s... here)",
			    SAFE(p->name, q1), parent_seq, p->checksum,
			    c->checksum);
	}
	return 0;
}

/*
 * Reads a varint at *pos. Returns 0, or -1 when the input ends first
 * (truncated), -2 when it is longer than 10 bytes, overflows 64 bits, or
 * is not minimally encoded (a canonical encoder never writes that).
 */
static int
read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < 10; i++) {
		uint8_t b;

		if (*pos + i >= len)
			return -1;
		b = p[*pos + i];
		if (i == 9 && b > 1)
			return -2;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			if (i > 0 && b == 0)
				return -2;
			*pos += i + 1;
			*out = v;
			return 0;
		}
	}
	return -2;
}

static const char *const field_names[] = {
	NULL,
	"format version",
	"bundle",
	"signature",
	"key id",
};

/*
 * Parses the SignedBundle wrapper strictly (see the top of this file).
 * Checks the format version as soon as it is read, so that a file of a
 * newer format says so rather than failing on a field it does not know.
 */
static int
parse_wrapper(const uint8_t *p, size_t len, struct wrapper *w,
    struct ferry_err *err)
{
	size_t pos = 0;
	uint64_t tag, v;
	unsigned field, wt, last = 0;
	int r;

	memset(w, 0, sizeof(*w));
	if (len == 0)
		return ferry_errf(err, FERRY_EFINDING, "bundle is empty");
	if (len > FERRY_BUNDLE_MAX_BYTES)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle is %zu bytes, larger than the limit of %u bytes",
		    len, FERRY_BUNDLE_MAX_BYTES);
	while (pos < len && last < 4) {
		size_t at = pos;

		r = read_varint(p, len, &pos, &tag);
		if (r == -1)
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle is truncated");
		if (r != 0 || tag > UINT32_MAX)
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle is malformed: bad field tag at byte %zu",
			    at);
		field = (unsigned)(tag >> 3);
		wt = (unsigned)(tag & 7);
		if (field < 1 || field > 4)
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle is malformed: unknown field %u in the "
			    "signed-bundle wrapper at byte %zu",
			    field, at);
		if (field <= last)
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle is malformed: field %u (%s) %s at byte %zu",
			    field, field_names[field],
			    field == last ? "repeated" : "out of order", at);
		if (field != last + 1)
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle is malformed: no %s before byte %zu",
			    field_names[last + 1], at);
		if (wt != (field == 1 ? 0u : 2u))
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle is malformed: field %u (%s) has wire type "
			    "%u at byte %zu",
			    field, field_names[field], wt, at);
		r = read_varint(p, len, &pos, &v);
		if (r == -1)
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle is truncated");
		if (r != 0)
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle is malformed: bad %s %s at byte %zu",
			    field_names[field], field == 1 ? "value" : "length",
			    at);
		if (field == 1) {
			w->version = v;
			if (v != FERRY_BUNDLE_FORMAT)
				return ferry_errf(err, FERRY_EFINDING,
				    "bundle format version %" PRIu64
				    " is not supported",
				    v);
		} else {
			if (v > len - pos)
				return ferry_errf(err, FERRY_EFINDING,
				    "bundle is truncated");
			if (field == 2) {
				w->bundle = p + pos;
				w->bundle_len = (size_t)v;
			} else if (field == 3) {
				w->sig = p + pos;
				w->sig_len = (size_t)v;
			} else {
				w->key_id = (const char *)(p + pos);
				w->key_id_len = (size_t)v;
			}
			pos += (size_t)v;
		}
		last = field;
	}
	if (last < 4)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle is truncated (no %s)", field_names[last + 1]);
	if (pos < len)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle is malformed: %zu trailing bytes after its last "
		    "field",
		    len - pos);
	if (w->sig_len != FERRY_SIG_LEN)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle signature is %zu bytes, expected %d", w->sig_len,
		    FERRY_SIG_LEN);
	if (w->key_id_len != FERRY_KEY_ID_HEX ||
	    !is_lower_hex(w->key_id, w->key_id_len))
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle key id is malformed (expected %d lowercase hex "
		    "digits)",
		    FERRY_KEY_ID_HEX);
	return 0;
}

/*
 * Finds the trusted keys with the wrapper's key id and checks the
 * signature with each (normally one; two only on a key id collision).
 */
static int
check_signature(const struct wrapper *w, const uint8_t digest[32],
    const struct ferry_pubkey *trusted, size_t ntrusted, struct ferry_err *err)
{
	char id[FERRY_KEY_ID_HEX + 1], name[96];
	const struct ferry_pubkey *tried = NULL;
	size_t i;

	memcpy(id, w->key_id, FERRY_KEY_ID_HEX);
	id[FERRY_KEY_ID_HEX] = '\0';
	for (i = 0; i < ntrusted; i++) {
		if (strcmp(trusted[i].id, id) != 0)
			continue;
		tried = &trusted[i];
		if (ferry_pubkey_verify(&trusted[i], FERRY_BUNDLE_DOMAIN,
		        digest, w->sig) == 0)
			return 0;
	}
	if (tried == NULL)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle was signed by key %s, which is not trusted", id);
	return ferry_errf(err, FERRY_EFINDING,
	    "bundle signature does not verify with trusted key %s (%s)", id,
	    SAFE(tried->name, name));
}

/* Maps the engine's mode to the display-only mode recorded in a bundle. */
static Ferry__MigrationMode
proto_mode(enum ferry_mode mode)
{
	switch (mode) {
	case FERRY_MODE_TRANSACTION:
		return FERRY__MIGRATION_MODE__MIGRATION_MODE_TRANSACTION;
	case FERRY_MODE_PER_STATEMENT:
		return FERRY__MIGRATION_MODE__MIGRATION_MODE_PER_STATEMENT;
	case FERRY_MODE_SIMPLE:
	default:
		/* The format has no value for simple mode yet. */
		return FERRY__MIGRATION_MODE__MIGRATION_MODE_UNSPECIFIED;
	}
}

/*
 * Fills b from a decoded Bundle. Migrations are copied into a list whose
 * checksums ferry_migrations_add computes from the SQL itself.
 */
static void
fill_bundle(struct ferry_bundle *b, const Ferry__Bundle *pb)
{
	size_t i;

	b->format_version = pb->format_version;
	b->project = xstrdup(pb->project);
	b->sequence = pb->sequence;
	if (pb->parent_digest.len == FERRY_SHA256_LEN) {
		b->has_parent = 1;
		memcpy(b->parent_digest, pb->parent_digest.data,
		    FERRY_SHA256_LEN);
	}
	b->created_ms = pb->created_unix_ms;
	b->creator_key_id = xstrdup(pb->creator_key_id);
	b->note = xstrdup(pb->note);
	b->allow_rewrite = pb->allow_rewrite != 0;
	b->migs = ferry_migrations_new();
	for (i = 0; i < pb->n_migrations; i++) {
		const Ferry__Migration *m = pb->migrations[i];
		int down = m->has_down || m->down_sql.len > 0;

		ferry_migrations_add(b->migs, m->name,
		    (const char *)m->sql.data, m->sql.len,
		    down ? (const char *)m->down_sql.data : NULL,
		    down ? m->down_sql.len : 0);
	}
}

/*
 * Checks the decoded, signed content of a bundle: format version, binding
 * to the signing key, project, sequence and parent digest, then each
 * migration's checksum against its SQL, then the names.
 */
static int
check_content(const Ferry__Bundle *pb, const struct ferry_bundle *b,
    const struct wrapper *w, struct ferry_err *err)
{
	size_t i;
	char q[96];
	int rc;

	if (pb->format_version != FERRY_BUNDLE_FORMAT)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle format version %" PRIu32 " is not supported",
		    pb->format_version);
	if (strlen(pb->creator_key_id) != w->key_id_len ||
	    memcmp(pb->creator_key_id, w->key_id, w->key_id_len) != 0)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle names key '%s' as its creator, but was signed "
		    "by key %.*s",
		    SAFE(pb->creator_key_id, q), (int)w->key_id_len, w->key_id);
	rc = check_project(pb->project, FERRY_EFINDING, err);
	if (rc == 0)
		rc = check_note(pb->note, FERRY_EFINDING, err);
	if (rc != 0)
		return rc;
	if (pb->sequence == 0)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle has sequence 0 (the first bundle is 1)");
	if (pb->sequence == 1 && pb->parent_digest.len != 0)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle has sequence 1 but names a parent");
	if (pb->sequence > 1 && pb->parent_digest.len != FERRY_SHA256_LEN)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle has sequence %" PRIu64
		    " but no %d-byte parent digest",
		    pb->sequence, FERRY_SHA256_LEN);
	for (i = 0; i < pb->n_migrations; i++) {
		const Ferry__Migration *m = pb->migrations[i];
		const struct ferry_migration *e =
		    ferry_migrations_get(b->migs, i);

		if (strcmp(m->checksum, e->checksum) != 0)
			return ferry_errf(err, FERRY_EFINDING,
			    "migration '%s' checksum does not match its SQL",
			    SAFE(m->name, q));
		if (!m->has_down && m->down_sql.len > 0)
			return ferry_errf(err, FERRY_EFINDING,
			    "migration '%s' has down SQL but does not say so",
			    SAFE(m->name, q));
	}
	return check_names(b->migs, FERRY_EFINDING, err);
}

static int
decode(const uint8_t *data, size_t len, const struct ferry_pubkey *trusted,
    size_t ntrusted, int verify, struct ferry_bundle **out,
    struct ferry_err *err)
{
	struct wrapper w;
	Ferry__Bundle *pb = NULL;
	struct ferry_bundle *b = NULL;
	uint8_t digest[FERRY_SHA256_LEN];
	int rc;

	*out = NULL;
	if (ferry_crypto_init() != 0)
		return ferry_errf(err, FERRY_EOPER,
		    "cannot initialise libsodium");
	rc = parse_wrapper(data, len, &w, err);
	if (rc != 0)
		goto out;
	ferry_sha256(w.bundle, w.bundle_len, digest);
	if (verify) {
		rc = check_signature(&w, digest, trusted, ntrusted, err);
		if (rc != 0)
			goto out;
	}
	/* From here on the Bundle bytes are signed by a trusted key. */
	pb = ferry__bundle__unpack(NULL, w.bundle_len, w.bundle);
	if (pb == NULL) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "bundle content cannot be decoded as a ferry.Bundle");
		goto out;
	}
	b = xcalloc(1, sizeof(*b));
	memcpy(b->digest, digest, sizeof(digest));
	fill_bundle(b, pb);
	if (verify) {
		rc = check_content(pb, b, &w, err);
		if (rc != 0)
			goto out;
		b->verified = 1;
	}
	*out = b;
	b = NULL;
out:
	if (pb != NULL)
		ferry__bundle__free_unpacked(pb, NULL);
	ferry_bundle_free(b);
	return rc;
}

int
ferry_bundle_open(const uint8_t *data, size_t len,
    const struct ferry_pubkey *trusted, size_t ntrusted,
    struct ferry_bundle **out, struct ferry_err *err)
{
	return decode(data, len, trusted, ntrusted, 1, out, err);
}

int
ferry_bundle_decode_unverified(const uint8_t *data, size_t len,
    struct ferry_bundle **out, struct ferry_err *err)
{
	return decode(data, len, NULL, 0, 0, out, err);
}

int
ferry_bundle_open_file(const char *path, const struct ferry_pubkey *trusted,
    size_t ntrusted, struct ferry_bundle **out, struct ferry_err *err)
{
	struct ferry_buf buf;
	struct stat st;
	int rc;

	*out = NULL;
	ferry_buf_init(&buf, (size_t)FERRY_BUNDLE_MAX_BYTES + 1);
	/* Refuse an oversized file before reading it, as a finding. */
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uintmax_t)st.st_size > FERRY_BUNDLE_MAX_BYTES) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "bundle is %jd bytes, larger than the limit of %u bytes",
		    (intmax_t)st.st_size, FERRY_BUNDLE_MAX_BYTES);
		goto out;
	}
	rc = ferry_buf_read_file(&buf, path, err);
	if (rc != 0)
		goto out;
	rc = ferry_bundle_open((const uint8_t *)buf.data, buf.len, trusted,
	    ntrusted, out, err);
out:
	ferry_buf_release(&buf);
	return rc;
}

int
ferry_bundle_create(const struct ferry_migrations *migs,
    const struct ferry_bundle_params *p, const struct ferry_seckey *key,
    uint8_t **out, size_t *outlen, struct ferry_err *err)
{
	Ferry__Bundle pb = FERRY__BUNDLE__INIT;
	Ferry__SignedBundle sb = FERRY__SIGNED_BUNDLE__INIT;
	Ferry__Migration *mv = NULL, **mp = NULL;
	const struct ferry_pubkey *pub = ferry_seckey_public(key);
	struct ferry_script *script = NULL;
	struct ferry_err why;
	uint8_t *body = NULL, *file = NULL;
	uint8_t digest[FERRY_SHA256_LEN], sig[FERRY_SIG_LEN];
	char sum[FERRY_SHA256_HEX_LEN + 1], q[96];
	size_t i, n = ferry_migrations_count(migs), body_len, file_len;
	int rewrite = 0, rc;

	*out = NULL;
	*outlen = 0;
	if (ferry_crypto_init() != 0)
		return ferry_errf(err, FERRY_EOPER,
		    "cannot initialise libsodium");
	rc = check_project(p->project != NULL ? p->project : "", FERRY_EUSAGE,
	    err);
	if (rc == 0 && p->note != NULL)
		rc = check_note(p->note, FERRY_EUSAGE, err);
	if (rc == 0)
		rc = check_names(migs, FERRY_EUSAGE, err);
	if (rc != 0)
		return rc;
	if (p->parent != NULL) {
		const struct ferry_bundle *parent = p->parent;

		if (!parent->verified)
			return ferry_errf(err, FERRY_EUSAGE,
			    "the parent bundle has not been verified");
		if (strcmp(parent->project, p->project) != 0)
			return ferry_errf(err, FERRY_EUSAGE,
			    "the parent bundle belongs to project '%s', not "
			    "'%s'",
			    SAFE(parent->project, q), p->project);
		if (parent->sequence == UINT64_MAX)
			return ferry_errf(err, FERRY_EUSAGE,
			    "the parent bundle's sequence cannot be followed");
		ferry_err_clear(&why);
		if (check_prefix(parent->migs, parent->sequence, migs, &why)) {
			if (!p->allow_rewrite)
				return ferry_errf(err, why.code, "%s", why.msg);
			rewrite = 1;
		}
		pb.sequence = parent->sequence + 1;
		pb.parent_digest.data = (uint8_t *)parent->digest;
		pb.parent_digest.len = FERRY_SHA256_LEN;
	} else {
		pb.sequence = 1;
	}
	pb.format_version = FERRY_BUNDLE_FORMAT;
	pb.project = (char *)p->project;
	pb.created_unix_ms = p->created_unix_ms != 0 ? p->created_unix_ms
	                                             : ferry_wall_us() / 1000;
	pb.creator_key_id = (char *)pub->id;
	if (p->note != NULL)
		pb.note = (char *)p->note;
	/* Recorded only when the history really is rewritten. */
	pb.allow_rewrite = rewrite;

	mv = xcalloc(n ? n : 1, sizeof(*mv));
	mp = xcalloc(n ? n : 1, sizeof(*mp));
	for (i = 0; i < n; i++) {
		const struct ferry_migration *e = ferry_migrations_get(migs, i);

		ferry__migration__init(&mv[i]);
		mp[i] = &mv[i];
		/* The record's checksum is public: never trust it blindly. */
		ferry_sha256_hex(e->sql, e->sql_len, sum);
		if (strcmp(sum, e->checksum) != 0) {
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "migration '%s' checksum does not match its SQL",
			    SAFE(e->name, q));
			goto out;
		}
		rc = ferry_script_parse(e->sql, e->sql_len, e->name, &script,
		    err);
		if (rc != 0)
			goto out;
		mv[i].mode = proto_mode(ferry_script_mode(script));
		ferry_script_free(script);
		script = NULL;
		mv[i].name = e->name;
		mv[i].checksum = (char *)e->checksum;
		mv[i].sql.data = (uint8_t *)e->sql;
		mv[i].sql.len = e->sql_len;
		if (e->down_sql != NULL) {
			mv[i].has_down = 1;
			mv[i].down_sql.data = (uint8_t *)e->down_sql;
			mv[i].down_sql.len = e->down_len;
		}
	}
	pb.n_migrations = n;
	pb.migrations = mp;

	body_len = ferry__bundle__get_packed_size(&pb);
	/* Room for the wrapper: tags, lengths, signature and key id. */
	if (body_len > FERRY_BUNDLE_MAX_BYTES - 128) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "bundle would be %zu bytes, larger than the limit of %u "
		    "bytes",
		    body_len, FERRY_BUNDLE_MAX_BYTES);
		goto out;
	}
	body = xmalloc(body_len ? body_len : 1);
	if (ferry__bundle__pack(&pb, body) != body_len) {
		rc = ferry_errf(err, FERRY_EOPER, "cannot encode the bundle");
		goto out;
	}
	ferry_sha256(body, body_len, digest);
	ferry_seckey_sign(key, FERRY_BUNDLE_DOMAIN, digest, sig);

	sb.format_version = FERRY_BUNDLE_FORMAT;
	sb.bundle.data = body;
	sb.bundle.len = body_len;
	sb.signature.data = sig;
	sb.signature.len = sizeof(sig);
	sb.key_id = (char *)pub->id;
	file_len = ferry__signed_bundle__get_packed_size(&sb);
	file = xmalloc(file_len);
	if (ferry__signed_bundle__pack(&sb, file) != file_len) {
		rc = ferry_errf(err, FERRY_EOPER, "cannot encode the bundle");
		goto out;
	}
	*out = file;
	*outlen = file_len;
	file = NULL;
	rc = 0;
out:
	ferry_script_free(script);
	free(file);
	free(body);
	free(mp);
	free(mv);
	return rc;
}

int
ferry_bundle_check_parent(const struct ferry_bundle *child,
    const struct ferry_bundle *parent, struct ferry_err *err)
{
	char q1[96], q2[96], h1[FERRY_SHA256_HEX_LEN + 1],
	    h2[FERRY_SHA256_HEX_LEN + 1];

	if (!child->verified || !parent->verified)
		return ferry_errf(err, FERRY_EUSAGE,
		    "bundles must be verified before they are chained");
	if (strcmp(child->project, parent->project) != 0)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle belongs to project '%s', but its parent to "
		    "project '%s'",
		    SAFE(child->project, q1), SAFE(parent->project, q2));
	if (parent->sequence == UINT64_MAX ||
	    child->sequence != parent->sequence + 1)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle has sequence %" PRIu64
		    ", which does not follow its parent's "
		    "sequence %" PRIu64 " (expected %" PRIu64 ")",
		    child->sequence, parent->sequence, parent->sequence + 1);
	if (!child->has_parent ||
	    memcmp(child->parent_digest, parent->digest, FERRY_SHA256_LEN) !=
	        0) {
		ferry_hex_encode(parent->digest, FERRY_SHA256_LEN, h2);
		if (child->has_parent)
			ferry_hex_encode(child->parent_digest, FERRY_SHA256_LEN,
			    h1);
		else
			ferry_strlcpy(h1, "(none)", sizeof(h1));
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle names parent digest %s, but the given parent "
		    "bundle has digest %s",
		    h1, h2);
	}
	if (!child->allow_rewrite)
		return check_prefix(parent->migs, parent->sequence, child->migs,
		    err);
	return 0;
}

void
ferry_bundle_free(struct ferry_bundle *b)
{
	if (b == NULL)
		return;
	free(b->project);
	free(b->creator_key_id);
	free(b->note);
	ferry_migrations_free(b->migs);
	free(b);
}

int
ferry_bundle_verified(const struct ferry_bundle *b)
{
	return b->verified;
}

const char *
ferry_bundle_project(const struct ferry_bundle *b)
{
	return b->project;
}

uint64_t
ferry_bundle_sequence(const struct ferry_bundle *b)
{
	return b->sequence;
}

const uint8_t *
ferry_bundle_digest(const struct ferry_bundle *b)
{
	return b->digest;
}

const uint8_t *
ferry_bundle_parent_digest(const struct ferry_bundle *b)
{
	return b->has_parent ? b->parent_digest : NULL;
}

int64_t
ferry_bundle_created_ms(const struct ferry_bundle *b)
{
	return b->created_ms;
}

const char *
ferry_bundle_creator_key_id(const struct ferry_bundle *b)
{
	return b->creator_key_id;
}

const char *
ferry_bundle_note(const struct ferry_bundle *b)
{
	return b->note;
}

int
ferry_bundle_allow_rewrite(const struct ferry_bundle *b)
{
	return b->allow_rewrite;
}

const struct ferry_migrations *
ferry_bundle_migrations(const struct ferry_bundle *b)
{
	return b->migs;
}
