/*
 * fuzz_common.c -- fixed test keys and helpers shared by the fuzz targets.
 */
#include "fuzz_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "migrations.h"
#include "util.h"

/*
 * TEST KEYS, made with ferry_seckey_save (kdf none). Their secret halves
 * are public right here: never trust them anywhere.
 */
static const char *const key_files[FUZZ_NKEYS] = {
	"ferry-secret-key-v1\n"
	"name: fuzz-release\n"
	"key-id: b97755ade795d457\n"
	"kdf: none\n"
	"data: ZQYbhvInkX/ME4E57qZXklHDa8SCsKAbdnysF8CknRhla7cDdYD4tnCn8kIPd8B"
	"MaAFLoVF/JX4OeLmVxtLt4U6vbz1aQN24F4VMGY1JpKaIYdJUPCwsU8tSU3dedyg8Q2w"
	"w2ESrnJE=\n",
	"ferry-secret-key-v1\n"
	"name: fuzz-alice\n"
	"key-id: 02f172e0252c34a8\n"
	"kdf: none\n"
	"data: BOGNcgsSBX1uhSl2J0ktXWtZPvGrqe3ovseSwBUwZ5hiOmskMfjjmOFDdR+WEwZ"
	"gM/2YbUzZmC41VHDUHIB8x6lmctuCdLNBg55P3Tsrhwf7L4jfz+67XTmR2bPbKBAadc6"
	"6y+wnOvM=\n",
	"ferry-secret-key-v1\n"
	"name: fuzz-bob\n"
	"key-id: 42030117678fef1b\n"
	"kdf: none\n"
	"data: 5jljaG9H5I0iomiVl6YTGOLYuR1WsO0cqmbj52Tan0azo2sX6C0wpktOeUG4rJO"
	"uF+H0g1gEfQtyx7b+fHDKRjk4v/d4SADIS8Lh66v45KR/6eJI9N4uFXgLmWb6ChFkBa6"
	"sGJuZHNg=\n",
	"ferry-secret-key-v1\n"
	"name: fuzz-mallory\n"
	"key-id: 95b3f0c5db706748\n"
	"kdf: none\n"
	"data: 0KzxVve2Wv1zlGEYX6PRnqqTM9TD92+8yzroIbrp7aiQdTC8JnWayJpBOVZWSna"
	"bT3JMcWOhJ16G+gD8rrlqR0ssqBJUL5pTleTy8vqZXP+ytYurr7tWLhMAZ/eTiXSW3Ts"
	"W/xOgwtc=\n",
};

static struct ferry_seckey *keys[FUZZ_NKEYS];
static char *scratch_path;
static int scratch_fd = -1;
volatile unsigned fuzz_sink;

void
fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz oracle failed: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void
remove_scratch(void)
{
	if (scratch_path != NULL)
		unlink(scratch_path);
}

const char *
fuzz_scratch_file(const uint8_t *data, size_t len)
{
	const char *tmpdir = getenv("TMPDIR");

	if (scratch_fd < 0) {
		scratch_path = xasprintf("%s/ferry-fuzz-XXXXXX",
		    tmpdir != NULL && *tmpdir != '\0' ? tmpdir : "/tmp");
		scratch_fd = mkstemp(scratch_path); /* mode 0600 */
		if (scratch_fd < 0)
			fuzz_fail("cannot create '%s'", scratch_path);
		atexit(remove_scratch);
	}
	if (ftruncate(scratch_fd, 0) != 0 ||
	    (len > 0 && pwrite(scratch_fd, data, len, 0) != (ssize_t)len))
		fuzz_fail("cannot write '%s'", scratch_path);
	return scratch_path;
}

const struct ferry_seckey *
fuzz_key(enum fuzz_key which)
{
	struct ferry_err err;
	const char *path;

	if (keys[which] != NULL)
		return keys[which];
	ferry_err_clear(&err);
	path = fuzz_scratch_file((const uint8_t *)key_files[which],
	    strlen(key_files[which]));
	if (ferry_seckey_load(path, NULL, &keys[which], &err) != 0)
		fuzz_fail("cannot load test key %d: %s", (int)which, err.msg);
	return keys[which];
}

const char *
fuzz_key_file(enum fuzz_key which)
{
	return key_files[which];
}

const struct ferry_pubkey *
fuzz_pub(enum fuzz_key which)
{
	return ferry_seckey_public(fuzz_key(which));
}

const uint8_t *
fuzz_bundle_digest(void)
{
	static uint8_t digest[FERRY_SHA256_LEN];
	static int done;

	if (!done) {
		ferry_sha256("ferry-fuzz", strlen("ferry-fuzz"), digest);
		done = 1;
	}
	return digest;
}

unsigned
fuzz_touch(const void *p, size_t len)
{
	const unsigned char *b = p;
	unsigned v = 0;
	size_t i;

	for (i = 0; i < len; i++)
		v += b[i];
	return v;
}

unsigned
fuzz_touch_str(const char *s)
{
	return s == NULL ? 0 : fuzz_touch(s, strlen(s) + 1);
}

void
fuzz_consume(unsigned v)
{
	/* Keeps the reads from being optimised away. */
	fuzz_sink += v;
}

uint8_t *
fuzz_make_bundle(const struct ferry_migrations *m,
    const struct ferry_bundle *parent, int allow_rewrite, const char *note,
    size_t *len)
{
	struct ferry_bundle_params p = { "fuzz", parent, note, allow_rewrite,
		FUZZ_NOW_MS };
	struct ferry_err err;
	uint8_t *file = NULL;

	ferry_err_clear(&err);
	if (ferry_bundle_create(m, &p, fuzz_key(FUZZ_KEY_RELEASE), &file, len,
	        &err) != 0)
		fuzz_fail("cannot build a bundle: %s", err.msg);
	return file;
}

/* The one migration of the parent bundle. */
void
fuzz_add_init(struct ferry_migrations *m)
{
	static const char sql[] = "CREATE TABLE a (id int PRIMARY KEY);\n";

	ferry_migrations_add(m, "20260101000000_init", sql, strlen(sql), NULL,
	    0);
}

const struct ferry_bundle *
fuzz_parent_bundle(void)
{
	static struct ferry_bundle *parent;
	struct ferry_migrations *m;
	struct ferry_err err;
	uint8_t *file;
	size_t len = 0;

	if (parent != NULL)
		return parent;
	ferry_err_clear(&err);
	m = ferry_migrations_new();
	fuzz_add_init(m);
	file = fuzz_make_bundle(m, NULL, 0, "parent", &len);
	if (ferry_bundle_open(file, len, fuzz_pub(FUZZ_KEY_RELEASE), 1, &parent,
	        &err) != 0)
		fuzz_fail("cannot open the parent bundle: %s", err.msg);
	free(file);
	ferry_migrations_free(m);
	return parent;
}

void
fuzz_bundle_walk(const struct ferry_bundle *b)
{
	const struct ferry_migrations *m = ferry_bundle_migrations(b);
	const uint8_t *parent = ferry_bundle_parent_digest(b);
	unsigned v = 0;
	size_t i, n;

	v += fuzz_touch_str(ferry_bundle_project(b));
	v += (unsigned)ferry_bundle_sequence(b);
	v += fuzz_touch(ferry_bundle_digest(b), FERRY_SHA256_LEN);
	if (parent != NULL)
		v += fuzz_touch(parent, FERRY_SHA256_LEN);
	v += (unsigned)ferry_bundle_created_ms(b);
	v += fuzz_touch_str(ferry_bundle_creator_key_id(b));
	v += fuzz_touch_str(ferry_bundle_note(b));
	v += (unsigned)ferry_bundle_allow_rewrite(b);
	n = ferry_migrations_count(m);
	for (i = 0; i < n; i++) {
		const struct ferry_migration *e = ferry_migrations_get(m, i);

		v += fuzz_touch_str(e->name);
		v += fuzz_touch(e->sql, e->sql_len + 1);
		if (e->down_sql != NULL)
			v += fuzz_touch(e->down_sql, e->down_len);
		if (strlen(e->checksum) != FERRY_SHA256_HEX_LEN)
			fuzz_fail("migration %zu has a checksum of %zu digits",
			    i, strlen(e->checksum));
		if (ferry_migrations_find(m, e->name) == NULL)
			fuzz_fail("migration '%s' cannot be found by name",
			    e->name);
	}
	fuzz_consume(v);
}
