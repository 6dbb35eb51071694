/*
 * anchor.c -- anti-rollback state, in a file and in the database.
 */
#include "anchor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "hash.h"
#include "history.h"
#include "util.h"

/* Project names become file names: keep them tame. */
static int
check_project(const char *project, struct ferry_err *err)
{
	const char *p;

	if (*project == '\0' || strlen(project) > 128)
		goto bad;
	for (p = project; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		        (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
		        *p == '.'))
			goto bad;
	if (project[0] == '.')
		goto bad;
	return 0;
bad:
	return ferry_errf(err, FERRY_EUSAGE,
	    "invalid project name '%s': use letters, digits, '.', '-', '_'",
	    project);
}

/* Parses "<sequence> <hex digest>". */
static int
parse_anchor(const char *text, struct ferry_anchor *a)
{
	char digest[65];
	unsigned long long seq;
	char extra;

	if (sscanf(text, "%llu %64s %c", &seq, digest, &extra) != 2)
		return -1;
	if (ferry_hex_decode(digest, a->digest, 32) != 0)
		return -1;
	a->sequence = seq;
	a->present = 1;
	return 0;
}

int
ferry_anchor_read_file(const char *state_dir, const char *project,
    struct ferry_anchor *out, struct ferry_err *err)
{
	struct ferry_buf b;
	char *path = NULL;
	struct stat st;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = check_project(project, err);
	if (rc != 0)
		return rc;
	path = xasprintf("%s/%s.anchor", state_dir, project);
	ferry_buf_init(&b, 4096);
	if (stat(path, &st) != 0 && errno == ENOENT)
		goto out;
	rc = ferry_buf_read_file(&b, path, err);
	if (rc == 0 && parse_anchor(ferry_buf_str(&b), out) != 0)
		rc = ferry_errf(err, FERRY_EOPER,
		    "agent state file '%s' is corrupt: refusing to guess the "
		    "last applied bundle",
		    path);
out:
	ferry_buf_release(&b);
	free(path);
	return rc;
}

int
ferry_anchor_write_file(const char *state_dir, const char *project,
    const struct ferry_anchor *a, struct ferry_err *err)
{
	char hex[65], line[128];
	char *path;
	int rc, n;

	rc = check_project(project, err);
	if (rc != 0)
		return rc;
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot create state directory '%s'", state_dir);
	path = xasprintf("%s/%s.anchor", state_dir, project);
	ferry_hex_encode(a->digest, 32, hex);
	n = snprintf(line, sizeof(line), "%" PRIu64 " %s\n", a->sequence, hex);
	rc = ferry_write_file_atomic(path, line, (size_t)n, 0600, err);
	free(path);
	return rc;
}

int
ferry_anchor_read_db(struct ferry_db *db, const char *project,
    struct ferry_anchor *out, struct ferry_err *err)
{
	const char *params[1] = { project };
	PGresult *res;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	res = ferry_db_query(db,
	    "SELECT CASE WHEN to_regclass('ferry.agent_state') IS NULL"
	    " THEN NULL ELSE 1 END",
	    0, NULL, "cannot read the agent state", err);
	if (res == NULL)
		return err->code;
	if (PQgetisnull(res, 0, 0)) {
		PQclear(res);
		return 0;
	}
	PQclear(res);
	res = ferry_db_query(db,
	    "SELECT sequence::text || ' ' || digest FROM ferry.agent_state"
	    " WHERE project = $1",
	    1, params, "cannot read the agent state", err);
	if (res == NULL)
		return err->code;
	if (PQntuples(res) == 1 &&
	    parse_anchor(PQgetvalue(res, 0, 0), out) != 0)
		rc = ferry_errf(err, FERRY_EOPER,
		    "ferry.agent_state for project '%s' is corrupt", project);
	PQclear(res);
	return rc;
}

int
ferry_anchor_write_db(struct ferry_db *db, const char *project,
    const char *agent, const struct ferry_anchor *a, struct ferry_err *err)
{
	char hex[65], seq[24];
	const char *params[4];
	PGresult *res;
	int rc;

	rc = ferry_db_exec(db,
	    "BEGIN; SET LOCAL client_min_messages = warning;"
	    "CREATE SCHEMA IF NOT EXISTS ferry;"
	    "CREATE TABLE IF NOT EXISTS ferry.agent_state ("
	    " project    TEXT PRIMARY KEY,"
	    " sequence   BIGINT NOT NULL,"
	    " digest     VARCHAR(64) NOT NULL,"
	    " agent      TEXT NOT NULL,"
	    " updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());"
	    "COMMIT",
	    "cannot create ferry.agent_state", err);
	if (rc != 0)
		return rc;
	ferry_hex_encode(a->digest, 32, hex);
	snprintf(seq, sizeof(seq), "%" PRIu64, a->sequence);
	params[0] = project;
	params[1] = seq;
	params[2] = hex;
	params[3] = agent;
	/* Never lower the sequence, even if two agents race. */
	res = ferry_db_query(db,
	    "INSERT INTO ferry.agent_state (project, sequence, digest, agent)"
	    " VALUES ($1, $2::bigint, $3, $4)"
	    " ON CONFLICT (project) DO UPDATE SET sequence = EXCLUDED.sequence,"
	    " digest = EXCLUDED.digest, agent = EXCLUDED.agent,"
	    " updated_at = clock_timestamp()"
	    " WHERE ferry.agent_state.sequence <= EXCLUDED.sequence",
	    4, params, "cannot record the agent state", err);
	if (res == NULL)
		return err->code;
	PQclear(res);
	return 0;
}

static void
short_hex(const uint8_t *d, char out[17])
{
	ferry_hex_encode(d, 8, out);
}

int
ferry_anchor_check(const struct ferry_anchor *file,
    const struct ferry_anchor *dbstate, const char *project,
    const struct ferry_bundle *b, int accept_restored_db,
    struct ferry_anchor *next, struct ferry_err *err)
{
	const struct ferry_anchor *hi;
	uint64_t seq = ferry_bundle_sequence(b);
	const uint8_t *parent = ferry_bundle_parent_digest(b);
	char h1[17], h2[17];

	if (strcmp(ferry_bundle_project(b), project) != 0)
		return ferry_errf(err, FERRY_EFINDING,
		    "bundle is for project '%s', this agent serves '%s'",
		    ferry_bundle_project(b), project);
	if (file->present &&
	    (!dbstate->present || dbstate->sequence < file->sequence) &&
	    !accept_restored_db) {
		char seen[32];
		if (dbstate->present)
			snprintf(seen, sizeof(seen), "bundle %" PRIu64,
			    dbstate->sequence);
		else
			ferry_strlcpy(seen, "no record", sizeof(seen));
		return ferry_errf(err, FERRY_EFINDING,
		    "the database is behind this agent's state (database: "
		    "%s, state directory: bundle %" PRIu64 "): was it "
		    "restored from a backup? refusing; if that is intended, "
		    "pass --accept-restored-database",
		    seen, file->sequence);
	}
	if (file->present && dbstate->present &&
	    file->sequence == dbstate->sequence &&
	    memcmp(file->digest, dbstate->digest, 32) != 0 &&
	    !accept_restored_db)
		return ferry_errf(err, FERRY_EFINDING,
		    "the database and the state directory record different "
		    "bundles with sequence %" PRIu64 ": refusing",
		    file->sequence);
	hi = dbstate;
	if (file->present &&
	    (!dbstate->present || accept_restored_db ||
	        file->sequence > dbstate->sequence))
		hi = file;
	if (hi->present) {
		if (seq < hi->sequence)
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle sequence %" PRIu64 " is older than "
			    "sequence %" PRIu64 " already accepted: refusing "
			    "a rollback or replay",
			    seq, hi->sequence);
		if (seq == hi->sequence &&
		    memcmp(ferry_bundle_digest(b), hi->digest, 32) != 0) {
			short_hex(ferry_bundle_digest(b), h1);
			short_hex(hi->digest, h2);
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle sequence %" PRIu64 " was already accepted "
			    "with digest %s..., this one is %s...: refusing "
			    "a different bundle with the same sequence",
			    seq, h2, h1);
		}
		/*
		 * A gap cannot be checked: the bundle names only its parent.
		 * Bundles are applied one after the other, so that every
		 * link of the chain is verified here.
		 */
		if (seq > hi->sequence + 1)
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle sequence %" PRIu64 " does not follow the "
			    "accepted bundle %" PRIu64 " directly: apply the "
			    "bundles in between first, so that the chain is "
			    "verified link by link",
			    seq, hi->sequence);
		if (seq == hi->sequence + 1 &&
		    (parent == NULL || memcmp(parent, hi->digest, 32) != 0))
			return ferry_errf(err, FERRY_EFINDING,
			    "bundle sequence %" PRIu64 " does not chain to the "
			    "accepted bundle %" PRIu64 " (parent digest "
			    "differs): refusing a forked history",
			    seq, hi->sequence);
	}
	next->present = 1;
	next->sequence = seq;
	memcpy(next->digest, ferry_bundle_digest(b), 32);
	return 0;
}

int
ferry_anchor_advance(struct ferry_db *db, const char *state_dir,
    const char *project, const char *agent, const struct ferry_bundle *b,
    int accept_restored_db, int dry_run, long lock_wait_ms,
    struct ferry_err *err)
{
	struct ferry_anchor file, dbs, next;
	int rc;

	rc = dry_run ? 0 : ferry_history_lock(db, lock_wait_ms, err);
	if (rc == 0)
		rc = ferry_anchor_read_file(state_dir, project, &file, err);
	if (rc == 0)
		rc = ferry_anchor_read_db(db, project, &dbs, err);
	if (rc == 0)
		rc = ferry_anchor_check(&file, &dbs, project, b,
		    accept_restored_db, &next, err);
	if (dry_run)
		return rc;
	if (rc == 0)
		rc = ferry_anchor_write_db(db, project, agent, &next, err);
	if (rc == 0)
		rc = ferry_anchor_write_file(state_dir, project, &next, err);
	return rc;
}
