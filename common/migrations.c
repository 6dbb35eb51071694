/*
 * migrations.c -- the ordered migration list and the folder reader.
 */
#include "migrations.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
/* Types and (version-suffixed) names only: ICU is loaded with dlopen. */
#include <unicode/ucol.h>
#include <unicode/uvernum.h>

#include "buf.h"
#include "util.h"

struct ferry_migrations {
	struct ferry_migration *items;
	size_t n;
	size_t cap;
};

struct ferry_migrations *
ferry_migrations_new(void)
{
	return xcalloc(1, sizeof(struct ferry_migrations));
}

void
ferry_migrations_free(struct ferry_migrations *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++) {
		free(m->items[i].name);
		free(m->items[i].sql);
		free(m->items[i].down_sql);
	}
	free(m->items);
	free(m);
}

/* Appends an entry, taking ownership of the strings. */
static void
append_owned(struct ferry_migrations *m, char *name, char *sql, size_t sql_len,
    char *down, size_t down_len)
{
	struct ferry_migration *e;

	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->items = xrealloc(m->items, m->cap * sizeof(*m->items));
	}
	e = &m->items[m->n++];
	e->name = name;
	e->sql = sql;
	e->sql_len = sql_len;
	e->down_sql = down;
	e->down_len = down_len;
	ferry_sha256_hex(sql, sql_len, e->checksum);
}

static char *
dup_bytes(const char *p, size_t n)
{
	char *q = xmalloc(n + 1);

	if (n > 0)
		memcpy(q, p, n);
	q[n] = '\0';
	return q;
}

void
ferry_migrations_add(struct ferry_migrations *m, const char *name,
    const char *sql, size_t sql_len, const char *down, size_t down_len)
{
	append_owned(m, xstrdup(name), dup_bytes(sql, sql_len), sql_len,
	    down != NULL ? dup_bytes(down, down_len) : NULL,
	    down != NULL ? down_len : 0);
}

size_t
ferry_migrations_count(const struct ferry_migrations *m)
{
	return m->n;
}

const struct ferry_migration *
ferry_migrations_get(const struct ferry_migrations *m, size_t i)
{
	return i < m->n ? &m->items[i] : NULL;
}

const struct ferry_migration *
ferry_migrations_find(const struct ferry_migrations *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->items[i].name, name) == 0)
			return &m->items[i];
	return NULL;
}

int
ferry_migrations_order_differs(const struct ferry_migrations *m, size_t i)
{
	if (i + 1 >= m->n)
		return 0;
	return strcmp(m->items[i].name, m->items[i + 1].name) > 0;
}

/*
 * Prisma's order is JavaScript's localeCompare in Node: ICU with the
 * default locale, whose collation for folder names is the root collation.
 *
 * ICU (libicui18n, libicuuc, libicudata, libstdc++) costs milliseconds of
 * symbol binding at every process start, and most folders never need it:
 * see fast_order_holds(). So it is loaded with dlopen on first use, by the
 * soname and the version-suffixed symbol names of the headers Ferry was
 * built with.
 */
#define ICU_STR2(x) #x
#define ICU_STR(x) ICU_STR2(x)
#ifndef FERRY_ICU_I18N_SONAME
#ifdef __APPLE__
#define FERRY_ICU_I18N_SONAME \
	"libicui18n." ICU_STR(U_ICU_VERSION_MAJOR_NUM) ".dylib"
#else
#define FERRY_ICU_I18N_SONAME "libicui18n.so." ICU_STR(U_ICU_VERSION_MAJOR_NUM)
#endif
#endif

static struct {
	UCollator *(*open)(const char *, UErrorCode *);
	void (*close)(UCollator *);
	UCollationResult (*strcoll_utf8)(const UCollator *, const char *,
	    int32_t, const char *, int32_t, UErrorCode *);
	char error[384]; /* why loading failed, "" when loaded */
} icu;
static pthread_once_t icu_once = PTHREAD_ONCE_INIT;

/* Looks up one ICU function; ucol_open etc. are macros naming the
   version-suffixed symbols (ucol_open_72). */
static void *
icu_sym(void *lib, const char *name)
{
	void *p = dlsym(lib, name);

	if (p == NULL && icu.error[0] == '\0')
		snprintf(icu.error, sizeof(icu.error),
		    "cannot load ICU (needed to sort migration names as "
		    "Prisma does): %s has no %s",
		    FERRY_ICU_I18N_SONAME, name);
	return p;
}

static void
icu_load(void)
{
	void *lib = dlopen(FERRY_ICU_I18N_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (lib == NULL) {
		const char *why = dlerror();
		snprintf(icu.error, sizeof(icu.error),
		    "cannot load ICU (needed to sort migration names as "
		    "Prisma does): %s",
		    why != NULL ? why : FERRY_ICU_I18N_SONAME);
		return;
	}
	/* Never unloaded: the collator is wanted again, and ICU keeps
	   caches that outlive a dlclose badly. */
	icu.open = (UCollator * (*)(const char *, UErrorCode *))
	    icu_sym(lib, ICU_STR(ucol_open));
	icu.close = (void (*)(UCollator *))icu_sym(lib, ICU_STR(ucol_close));
	icu.strcoll_utf8 = (UCollationResult(*)(const UCollator *, const char *,
	    int32_t, const char *, int32_t, UErrorCode *))icu_sym(lib,
	    ICU_STR(ucol_strcollUTF8));
}

/* Opens the root collator, loading ICU first if needed. */
static int
open_collator(UCollator **out, struct ferry_err *err)
{
	UErrorCode status = U_ZERO_ERROR;
	UCollator *coll;

	*out = NULL;
	pthread_once(&icu_once, icu_load);
	if (icu.error[0] != '\0')
		return ferry_errf(err, FERRY_EOPER, "%s", icu.error);
	coll = icu.open("", &status);
	/* The root collator is built into ICU's data: failure is a bug. */
	if (U_FAILURE(status) || coll == NULL)
		abort();
	*out = coll;
	return 0;
}

static int
collate(void *ctx, const char *a, const char *b)
{
	UErrorCode status = U_ZERO_ERROR;
	UCollationResult r;

	r = icu.strcoll_utf8(ctx, a, -1, b, -1, &status);
	if (U_FAILURE(status) || r == UCOL_EQUAL)
		return strcmp(a, b); /* deterministic tie-break */
	return r == UCOL_LESS ? -1 : 1;
}

static int
bytes_cmp(void *ctx, const char *a, const char *b)
{
	(void)ctx;
	return strcmp(a, b);
}

/* Length of the timestamp prefix of Prisma's folder names. */
#define STAMP_LEN 14

/* 1 if name starts with 14 ASCII digits and '_' (Prisma's own names). */
static int
has_stamp(const char *name)
{
	int i;

	for (i = 0; i < STAMP_LEN; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	return name[STAMP_LEN] == '_';
}

/*
 * 1 if names a and b compare the same under the root collation and in
 * byte order, because both start with a 14-digit stamp and '_' and the
 * stamps differ: the root collation compares primary weights first, the
 * first 14 of each name are digits (one primary weight each, in digit
 * order, as in ASCII), and the first difference falls among them.
 */
static int
stamps_differ(const char *a, const char *b)
{
	return has_stamp(a) && has_stamp(b) && memcmp(a, b, STAMP_LEN) != 0;
}

int
ferry_migration_name_collate(const char *a, const char *b, int *cmp,
    struct ferry_err *err)
{
	UCollator *coll;
	int rc;

	*cmp = 0;
	rc = open_collator(&coll, err);
	if (rc != 0)
		return rc;
	*cmp = collate(coll, a, b);
	icu.close(coll);
	return 0;
}

int
ferry_migration_name_cmp(const char *a, const char *b, int *cmp,
    struct ferry_err *err)
{
	if (stamps_differ(a, b)) {
		*cmp = strcmp(a, b);
		return 0;
	}
	return ferry_migration_name_collate(a, b, cmp, err);
}

/* A stable merge sort: qsort() has no context argument for the collator. */
static void
sort_items(struct ferry_migration *items, size_t n,
    int (*cmp)(void *, const char *, const char *), void *ctx,
    struct ferry_migration *tmp)
{
	size_t mid, i, j, k;

	if (n < 2)
		return;
	mid = n / 2;
	sort_items(items, mid, cmp, ctx, tmp);
	sort_items(items + mid, n - mid, cmp, ctx, tmp);
	/* Already in order (the common case for readdir of a
	   timestamped folder is not, but halves often are): no merge. */
	if (cmp(ctx, items[mid].name, items[mid - 1].name) >= 0)
		return;
	i = 0;
	j = mid;
	k = 0;
	while (i < mid && j < n) {
		if (cmp(ctx, items[j].name, items[i].name) < 0)
			tmp[k++] = items[j++];
		else
			tmp[k++] = items[i++];
	}
	while (i < mid)
		tmp[k++] = items[i++];
	while (j < n)
		tmp[k++] = items[j++];
	memcpy(items, tmp, n * sizeof(*items));
}

/*
 * Byte order is Prisma's order when every name has a 14-digit stamp and
 * no two stamps are equal (see stamps_differ()). Sorts m by bytes and
 * returns 1 if that holds, else 0 (m is then sorted by bytes, which the
 * collator's stable sort does not mind).
 */
static int
fast_order_holds(struct ferry_migrations *m, struct ferry_migration *tmp)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (!has_stamp(m->items[i].name))
			return 0;
	sort_items(m->items, m->n, bytes_cmp, NULL, tmp);
	for (i = 0; i + 1 < m->n; i++)
		if (memcmp(m->items[i].name, m->items[i + 1].name, STAMP_LEN) ==
		    0)
			return 0;
	return 1;
}

int
ferry_migrations_sort(struct ferry_migrations *m, struct ferry_err *err)
{
	struct ferry_migration *tmp;
	UCollator *coll = NULL;
	int rc = 0;

	if (m->n < 2)
		return 0;
	tmp = xmalloc(m->n * sizeof(*tmp));
	if (!fast_order_holds(m, tmp)) {
		rc = open_collator(&coll, err);
		if (rc == 0)
			sort_items(m->items, m->n, collate, coll, tmp);
	}
	free(tmp);
	if (coll != NULL)
		icu.close(coll);
	return rc;
}

/* Skips spaces and tabs. */
static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/*
 * Parses one "key = 'value'" or 'key = "value"' line of the small subset of
 * TOML that Prisma writes. Returns 0 and sets the key/value spans, or -1.
 */
static int
parse_lock_line(const char *p, const char *end, const char **key,
    size_t *keylen, const char **val, size_t *vallen)
{
	const char *q;
	char quote;

	*key = p;
	while (p < end &&
	    ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	        (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
		p++;
	*keylen = (size_t)(p - *key);
	if (*keylen == 0)
		return -1;
	p = skip_ws(p, end);
	if (p == end || *p != '=')
		return -1;
	p = skip_ws(p + 1, end);
	if (p == end || (*p != '"' && *p != '\''))
		return -1;
	quote = *p++;
	q = p;
	while (q < end && *q != quote) {
		/* Escapes are not needed for provider names; refuse them. */
		if (*q == '\\' || (unsigned char)*q < 0x20)
			return -1;
		q++;
	}
	if (q == end)
		return -1;
	*val = p;
	*vallen = (size_t)(q - p);
	p = skip_ws(q + 1, end);
	if (p < end && *p != '#')
		return -1;
	return 0;
}

int
ferry_lockfile_check(const char *text, size_t len, const char *path,
    struct ferry_err *err)
{
	const char *p = text, *end = text + len, *eol, *e, *key, *val;
	const char *provider = NULL;
	size_t keylen, vallen, provlen = 0;
	int line = 0;

	/* A UTF-8 byte order mark is allowed, as in TOML. */
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	if (memchr(text, '\0', len) != NULL)
		return ferry_errf(err, FERRY_EUSAGE, "'%s' is not a text file",
		    path);
	while (p < end) {
		line++;
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		e = eol;
		if (e > p && e[-1] == '\r')
			e--;
		p = skip_ws(p, e);
		if (p == e || *p == '#') {
			p = eol + 1;
			continue;
		}
		if (parse_lock_line(p, e, &key, &keylen, &val, &vallen) != 0)
			return ferry_errf(err, FERRY_EUSAGE,
			    "'%s' line %d: expected key = \"value\"", path,
			    line);
		if (keylen == 8 && memcmp(key, "provider", 8) == 0) {
			if (provider != NULL)
				return ferry_errf(err, FERRY_EUSAGE,
				    "'%s' line %d: provider is set twice", path,
				    line);
			provider = val;
			provlen = vallen;
		}
		p = eol + 1;
	}
	if (provider == NULL)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' has no provider: expected provider = \"postgresql\"",
		    path);
	if (provlen != 10 || memcmp(provider, "postgresql", 10) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' says provider = \"%.*s\": Ferry migrates PostgreSQL "
		    "only (provider = \"postgresql\")",
		    path, (int)(provlen > 64 ? 64 : provlen), provider);
	return 0;
}

static int
check_lockfile(int dfd, const char *dir, struct ferry_err *err)
{
	struct ferry_buf b;
	char *path = xasprintf("%s/migration_lock.toml", dir);
	struct stat st;
	int fd, rc = 0;

	ferry_buf_init(&b, FERRY_LOCKFILE_MAX_BYTES);
	fd = openat(dfd, "migration_lock.toml", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int open_errno = errno;
		/* Optional, as in Prisma; a dangling symlink is an error. */
		if (open_errno == ENOENT &&
		    fstatat(dfd, "migration_lock.toml", &st,
		        AT_SYMLINK_NOFOLLOW) != 0 &&
		    errno == ENOENT)
			goto out;
		rc = ferry_errf_errno(err, FERRY_EOPER, open_errno,
		    "cannot open '%s'", path);
		goto out;
	}
	rc = ferry_buf_read_fd(&b, fd, path, err);
	if (rc == 0)
		rc = ferry_lockfile_check(ferry_buf_str(&b), ferry_buf_len(&b),
		    path, err);
out:
	ferry_buf_release(&b);
	free(path);
	return rc;
}

/*
 * Reads one file of a migration folder. path holds "DIR/NAME/FILE" (for
 * messages) and rel points at its "NAME/FILE" part, opened relative to the
 * folder's descriptor dfd (a shorter path walk than from the root).
 * Returns 0, 1 if the file does not exist, or an error.
 */
static int
read_member(int dfd, const char *path, const char *rel, int optional,
    char **out, size_t *len, struct ferry_err *err)
{
	struct ferry_buf b;
	struct stat st;
	int fd, rc;

	ferry_buf_init(&b, FERRY_MIGRATION_MAX_BYTES);
	fd = openat(dfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int open_errno = errno;
		/* Missing is an answer; a dangling symlink is an error,
		   except for an optional file (one stat fewer per folder). */
		if (open_errno == ENOENT &&
		    (optional ||
		        (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
		            errno == ENOENT)))
			rc = 1;
		else
			rc = ferry_errf_errno(err, FERRY_EOPER, open_errno,
			    "cannot open '%s'", path);
		goto out;
	}
	rc = ferry_buf_read_fd(&b, fd, path, err);
	if (rc == 0)
		*out = ferry_buf_detach(&b, len);
out:
	ferry_buf_release(&b);
	return rc;
}

/* Opens the migrations folder, or explains why it cannot. */
static int
open_folder(const char *dir, DIR **out, struct ferry_err *err)
{
	struct stat st;
	int fd, open_errno;

	*out = NULL;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		*out = fdopendir(fd);
		if (*out != NULL)
			return 0;
		open_errno = errno;
		close(fd);
		return ferry_errf_errno(err, FERRY_EOPER, open_errno,
		    "cannot read migrations directory '%s'", dir);
	}
	open_errno = errno;
	/* The cause, as stat() tells it (the failure path only). */
	if (stat(dir, &st) != 0) {
		if (errno == ENOENT)
			return ferry_errf(err, FERRY_EUSAGE,
			    "migrations directory '%s' does not exist", dir);
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot access migrations directory '%s'", dir);
	}
	if (!S_ISDIR(st.st_mode))
		return ferry_errf(err, FERRY_EUSAGE,
		    "'%s' is not a directory (expected a migrations folder)",
		    dir);
	return ferry_errf_errno(err, FERRY_EOPER, open_errno,
	    "cannot read migrations directory '%s'", dir);
}

int
ferry_migrations_read_dir_opts(const char *dir,
    const struct ferry_migrations_read_opts *opts,
    struct ferry_migrations **out, struct ferry_err *err)
{
	static const struct ferry_migrations_read_opts defaults;
	struct ferry_migrations *m = NULL;
	DIR *d = NULL;
	struct dirent *de;
	struct stat st;
	char *sql = NULL, *down = NULL, *path = NULL;
	size_t sql_len = 0, down_len = 0, dirlen = strlen(dir), namelen;
	int rc = 0, r, dfd;

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	rc = open_folder(dir, &d, err);
	if (rc != 0)
		return rc;
	dfd = dirfd(d);
	rc = check_lockfile(dfd, dir, err);
	if (rc != 0)
		goto out;
	/* "DIR/NAME/migration.sql", built in place for each folder. */
	path =
	    xmalloc(dirlen + 1 + sizeof(de->d_name) + sizeof("/migration.sql"));
	memcpy(path, dir, dirlen);
	path[dirlen] = '/';
	m = ferry_migrations_new();
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		/* Symlinked directories and plain files are not migrations;
		   d_type saves a stat per entry where the file system has it. */
		if (de->d_type != DT_UNKNOWN && de->d_type != DT_DIR)
			continue;
		if (de->d_type == DT_UNKNOWN &&
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			rc = ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot access '%s/%s'", dir, de->d_name);
			goto out;
		}
		if (de->d_type == DT_UNKNOWN && !S_ISDIR(st.st_mode))
			continue;
		namelen = strlen(de->d_name);
		memcpy(path + dirlen + 1, de->d_name, namelen);
		memcpy(path + dirlen + 1 + namelen, "/migration.sql",
		    sizeof("/migration.sql"));
		r = read_member(dfd, path, path + dirlen + 1, 0, &sql, &sql_len,
		    err);
		if (r == 1) {
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "migration folder '%s/%s' has no migration.sql",
			    dir, de->d_name);
			goto out;
		}
		if (r != 0) {
			rc = r;
			goto out;
		}
		if (!opts->skip_down) {
			memcpy(path + dirlen + 1 + namelen, "/down.sql",
			    sizeof("/down.sql"));
			r = read_member(dfd, path, path + dirlen + 1, 1, &down,
			    &down_len, err);
			if (r != 0 && r != 1) {
				rc = r;
				goto out;
			}
		}
		append_owned(m, xstrdup(de->d_name), sql, sql_len, down,
		    down_len);
		sql = down = NULL;
		down_len = 0;
		if (opts->tick != NULL && m->n % 32 == 0)
			opts->tick(opts->tick_arg);
	}
	if (errno != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot read migrations directory '%s'", dir);
		goto out;
	}
	if (m->n == 0) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "no migrations in '%s': expected folders like "
		    "20240101000000_init/migration.sql",
		    dir);
		goto out;
	}
	rc = ferry_migrations_sort(m, err);
	if (rc != 0)
		goto out;
	*out = m;
	m = NULL;
out:
	free(sql);
	free(down);
	free(path);
	ferry_migrations_free(m);
	closedir(d);
	return rc;
}

int
ferry_migrations_read_dir(const char *dir, struct ferry_migrations **out,
    struct ferry_err *err)
{
	return ferry_migrations_read_dir_opts(dir, NULL, out, err);
}

/* The three line-ending forms Prisma accepts, of text. */
static int
matches_line_endings(const char *text, size_t len, const char *checksum)
{
	char hex[FERRY_SHA256_HEX_LEN + 1];
	struct ferry_buf b;
	size_t i;
	int found = 0;

	ferry_sha256_hex(text, len, hex);
	if (strcmp(hex, checksum) == 0)
		return 1;
	if (memchr(text, '\n', len) == NULL)
		return 0;
	ferry_buf_init(&b, (size_t)-1 / 2);
	/* CRLF -> LF */
	for (i = 0; i < len; i++)
		if (!(text[i] == '\r' && i + 1 < len && text[i + 1] == '\n'))
			ferry_buf_add(&b, &text[i], 1);
	ferry_sha256_hex(ferry_buf_str(&b), ferry_buf_len(&b), hex);
	found = strcmp(hex, checksum) == 0;
	/* LF -> CRLF (lone LFs only, so CRLF stays CRLF) */
	ferry_buf_reset(&b);
	for (i = 0; i < len && !found; i++) {
		if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
			ferry_buf_add(&b, "\r", 1);
		ferry_buf_add(&b, &text[i], 1);
	}
	if (!found) {
		ferry_sha256_hex(ferry_buf_str(&b), ferry_buf_len(&b), hex);
		found = strcmp(hex, checksum) == 0;
	}
	ferry_buf_release(&b);
	return found;
}

/*
 * Length of the valid UTF-8 sequence at p (1-4), or 0 if invalid; *sub is
 * set to the length of the maximal subpart to replace (WHATWG decoder,
 * which Node's Buffer.toString follows).
 */
static size_t
utf8_seq(const unsigned char *p, size_t n, size_t *sub)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	*sub = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;
		if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	for (i = 1; i <= need; i++) {
		if (i >= n || p[i] < lo || p[i] > hi) {
			*sub = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

char *
ferry_utf8_replace_invalid(const char *text, size_t len, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)text;
	struct ferry_buf b;
	size_t i = 0, n, sub;
	int invalid = 0;

	ferry_buf_init(&b, (size_t)-1 / 2);
	while (i < len) {
		n = utf8_seq(p + i, len - i, &sub);
		if (n == 0) {
			ferry_buf_add(&b, "\xef\xbf\xbd", 3);
			invalid = 1;
			i += sub;
		} else {
			ferry_buf_add(&b, p + i, n);
			i += n;
		}
	}
	if (!invalid) {
		ferry_buf_release(&b);
		return NULL;
	}
	return ferry_buf_detach(&b, outlen);
}

int
ferry_migration_checksum_matches(const struct ferry_migration *m,
    const char *checksum)
{
	char *fixed;
	size_t len = 0;
	int found;

	if (strcmp(m->checksum, checksum) == 0)
		return 1;
	if (matches_line_endings(m->sql, m->sql_len, checksum))
		return 1;
	fixed = ferry_utf8_replace_invalid(m->sql, m->sql_len, &len);
	if (fixed == NULL)
		return 0;
	found = matches_line_endings(fixed, len, checksum);
	free(fixed);
	return found;
}
