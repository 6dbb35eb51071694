/*
 * migrations.h -- an ordered list of migrations, and the reader of a
 * Prisma-layout migrations folder.
 *
 * The folder holds one subdirectory per migration, each with migration.sql
 * (and Ferry's optional down.sql), plus an optional migration_lock.toml.
 * Every real subdirectory is a migration whatever its name; symlinked
 * directories and top-level files are ignored, exactly as in Prisma.
 *
 * Order is Prisma's: JavaScript localeCompare on the whole folder name,
 * i.e. ICU root collation, with byte order only as a tie-break. Names are
 * never parsed as timestamps. When every name starts with a distinct
 * 14-digit stamp and '_' (as Prisma names them), byte order is the same
 * order, and ICU is not even loaded; otherwise it is loaded (dlopen) on
 * first use, and a failure to load it is an error (FERRY_EOPER).
 *
 * A struct ferry_migration is a plain record (name, SQL, checksum) that the
 * reader, bundles and the engine all pass around, so its fields are public
 * and read-only to everyone but this module. The list is opaque.
 */
#ifndef FERRY_MIGRATIONS_H
#define FERRY_MIGRATIONS_H

#include <stddef.h>

#include "err.h"
#include "hash.h"

/* Largest migration.sql or down.sql accepted. */
#define FERRY_MIGRATION_MAX_BYTES (64u * 1024 * 1024)
/* Largest migration_lock.toml accepted. */
#define FERRY_LOCKFILE_MAX_BYTES (64u * 1024)

struct ferry_migration {
	char *name; /* folder name */
	char *sql;  /* migration.sql, NUL-terminated */
	size_t sql_len;
	char *down_sql; /* down.sql or NULL */
	size_t down_len;
	/* lowercase hex SHA-256 of the raw bytes of migration.sql */
	char checksum[FERRY_SHA256_HEX_LEN + 1];
};

struct ferry_migrations;

struct ferry_migrations *ferry_migrations_new(void);
void ferry_migrations_free(struct ferry_migrations *m);

/*
 * Appends a copy of one migration (down may be NULL) and computes its
 * checksum. The list is not re-sorted: callers that build a list from
 * another source keep that source's order.
 */
void ferry_migrations_add(struct ferry_migrations *m, const char *name,
    const char *sql, size_t sql_len, const char *down, size_t down_len);

/*
 * Sorts the list into Prisma's order. Fails (FERRY_EOPER, list in some
 * order) only when the names need ICU and it cannot be loaded.
 */
int ferry_migrations_sort(struct ferry_migrations *m, struct ferry_err *err);

size_t ferry_migrations_count(const struct ferry_migrations *m);
const struct ferry_migration *
ferry_migrations_get(const struct ferry_migrations *m, size_t i);
/* Returns the migration of that name, or NULL. */
const struct ferry_migration *
ferry_migrations_find(const struct ferry_migrations *m, const char *name);

/*
 * Returns 1 if entry i sorts before entry i + 1 in Prisma's order but
 * after it in byte order (so tools that sort bytes would apply the two the
 * other way round), else 0.
 */
int ferry_migrations_order_differs(const struct ferry_migrations *m, size_t i);

/*
 * Compares two folder names in Prisma's order into *cmp (<0, 0, >0).
 * Returns 0, or FERRY_EOPER when ICU is needed and cannot be loaded.
 */
int ferry_migration_name_cmp(const char *a, const char *b, int *cmp,
    struct ferry_err *err);

/*
 * The same, always with ICU's root collation (no byte-order shortcut):
 * the reference the shortcut is tested against.
 */
int ferry_migration_name_collate(const char *a, const char *b, int *cmp,
    struct ferry_err *err);

/*
 * Reads the migrations folder at dir into *out, in Prisma's order. Checks
 * migration_lock.toml when present. Errors name the folder or file at
 * fault. On failure *out is NULL.
 */
int ferry_migrations_read_dir(const char *dir, struct ferry_migrations **out,
    struct ferry_err *err);

/* Options of ferry_migrations_read_dir_opts(). */
struct ferry_migrations_read_opts {
	/* Do not read down.sql (down_sql stays NULL): for apply and status,
	   which never run it; only bundles carry it. */
	int skip_down;
	/* Called every few migrations while reading, if not NULL: lets a
	   caller advance other work without threads (ferry_db_progress). */
	void (*tick)(void *arg);
	void *tick_arg;
};

/* ferry_migrations_read_dir() with options (opts may be NULL). */
int ferry_migrations_read_dir_opts(const char *dir,
    const struct ferry_migrations_read_opts *opts,
    struct ferry_migrations **out, struct ferry_err *err);

/*
 * Parses the text of a migration_lock.toml (path is only used in messages)
 * and checks that its provider is "postgresql". Returns 0, or FERRY_EUSAGE
 * naming the file and what is wrong with it.
 */
int ferry_lockfile_check(const char *text, size_t len, const char *path,
    struct ferry_err *err);

/*
 * Returns 1 if a checksum recorded in a history table matches m, the way
 * Prisma compares: the file as is, with CRLF turned into LF, or LF into
 * CRLF (so a checkout with git's autocrlf does not look modified). For a
 * file that is not valid UTF-8, the checksum Prisma 6.6+ records (of the
 * text with each invalid sequence replaced by U+FFFD) matches too.
 */
int ferry_migration_checksum_matches(const struct ferry_migration *m,
    const char *checksum);

/*
 * Returns a copy of text with each invalid UTF-8 sequence replaced by
 * U+FFFD (the WHATWG decoder's maximal subparts, as Node decodes), or NULL
 * when text is valid UTF-8. free() the result.
 */
char *ferry_utf8_replace_invalid(const char *text, size_t len, size_t *outlen);

#endif
