/*
 * store.c -- the coordinator's durable state (see store.h).
 */
#include "store.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "engine.h"
#include "hash.h"
#include "history.h"
#include "log.h"
#include "migrations.h"
#include "util.h"

/* Deliveries without a report after which a work item is failed. */
#define MAX_DELIVERIES 5

struct ferry_store {
	struct ferry_db *db;
	char *conninfo;
	int in_tx; /* between BEGIN and COMMIT/ROLLBACK */
};

/* "\x<hex>": a bytea parameter in text form. */
static char *
bytea_param(const uint8_t *p, size_t n)
{
	char *s = xmalloc(2 * n + 3);

	s[0] = '\\';
	s[1] = 'x';
	ferry_hex_encode(p, n, s + 2);
	return s;
}

/*
 * The connection was lost (the server restarted, a network cut): connect
 * again. Only between transactions: a cut in the middle of one fails it
 * as a whole, and the client retries the operation.
 */
static int
reconnect(struct ferry_store *s, struct ferry_err *err)
{
	struct ferry_db *db = NULL;

	if (ferry_db_open(s->conninfo, "ferry serve", &db, err) != 0)
		return err->code;
	ferry_db_close(s->db);
	s->db = db;
	ferry_log_warn("state store connection lost: connected again");
	return 0;
}

/* Whether a failed call may be run again on a new connection. */
static int
lost(struct ferry_store *s, struct ferry_err *err)
{
	struct ferry_err e = { 0 };

	if (s->in_tx || ferry_db_ok(s->db) || reconnect(s, &e) != 0)
		return 0;
	ferry_err_clear(err);
	return 1;
}

static int
exec(struct ferry_store *s, const char *sql, struct ferry_err *err)
{
	int rc = ferry_db_exec(s->db, sql, "state store", err);

	if (rc != 0 && strcmp(sql, "BEGIN") == 0 && lost(s, err))
		rc = ferry_db_exec(s->db, sql, "state store", err);
	if (strcmp(sql, "BEGIN") == 0)
		s->in_tx = rc == 0;
	else if (strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0)
		s->in_tx = 0;
	return rc;
}

static PGresult *
query(struct ferry_store *s, const char *sql, int n, const char *const *p,
    struct ferry_err *err)
{
	PGresult *res = ferry_db_query(s->db, sql, n, p, "state store", err);

	if (res == NULL && lost(s, err))
		res = ferry_db_query(s->db, sql, n, p, "state store", err);
	return res;
}

/* A statement whose result is not needed. */
static int
run(struct ferry_store *s, const char *sql, int n, const char *const *p,
    struct ferry_err *err)
{
	PGresult *res = query(s, sql, n, p, err);

	if (res == NULL)
		return err->code;
	PQclear(res);
	return 0;
}

static void
rollback(struct ferry_store *s)
{
	struct ferry_err e = { 0 };

	if (ferry_db_ok(s->db))
		exec(s, "ROLLBACK", &e);
	s->in_tx = 0;
}

int
ferry_store_open(const char *conninfo, struct ferry_store **out,
    struct ferry_err *err)
{
	struct ferry_store *s = xcalloc(1, sizeof(*s));
	struct ferry_migrations *migs = ferry_migrations_new();
	struct ferry_apply_opts ao;
	size_t i;
	char num[24];
	int applied = 0, rc;

	*out = NULL;
	s->conninfo = xstrdup(conninfo);
	rc = ferry_db_open(conninfo, "ferry serve", &s->db, err);
	if (rc != 0)
		goto out;
	for (i = 0; i < ferry_store_migrations_n; i++)
		ferry_migrations_add(migs, ferry_store_migrations[i].name,
		    ferry_store_migrations[i].sql,
		    ferry_store_migrations[i].len, NULL, 0);
	ferry_apply_opts_init(&ao);
	ao.lock_wait_ms = 60000;
	rc = ferry_engine_apply(s->db, migs, &ao, &applied, err);
	if (rc != 0) {
		char msg[sizeof(err->msg)];
		snprintf(msg, sizeof(msg), "%s", err->msg);
		ferry_err_clear(err);
		rc = ferry_errf(err, FERRY_EOPER,
		    "cannot bring the coordinator's state schema up to "
		    "date: %s",
		    msg);
		goto out;
	}
	/* The connection lives on: others may migrate this database. */
	rc = ferry_history_unlock(s->db, err);
	if (rc != 0)
		goto out;
	if (applied > 0)
		ferry_log_info("state schema migrated", "applied",
		    ferry_itoa(num, applied));
	*out = s;
	s = NULL;
out:
	ferry_migrations_free(migs);
	ferry_store_close(s);
	return rc;
}

void
ferry_store_close(struct ferry_store *s)
{
	if (s == NULL)
		return;
	ferry_db_close(s->db);
	free(s->conninfo);
	free(s);
}

int
ferry_store_add_operator(struct ferry_store *s, const struct ferry_pubkey *pk,
    enum ferry_role role, struct ferry_err *err)
{
	char *hex = bytea_param(pk->pk, 32);
	const char *p[4] = { pk->id, hex, pk->name[0] ? pk->name : pk->id,
		ferry_role_name(role) };
	const char *q[3];
	PGresult *res = NULL;
	int rc = 0;

	if (exec(s, "BEGIN", err) != 0) {
		free(hex);
		return err->code;
	}
	if (exec(s, "LOCK TABLE operator_keys IN SHARE ROW EXCLUSIVE MODE",
	        err) != 0)
		goto fail;
	q[0] = p[0];
	q[1] = p[1];
	q[2] = p[3];
	res = query(s,
	    "SELECT EXISTS (SELECT 1 FROM agents WHERE public_key = $2), "
	    "$3 <> 'operator' AND EXISTS (SELECT 1 FROM operator_keys WHERE "
	    "key_id = $1 AND role = 'operator') AND (SELECT count(*) FROM "
	    "operator_keys WHERE role = 'operator') = 1",
	    3, q, err);
	if (res == NULL)
		goto fail;
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "key %s belongs to an agent: an operator needs a key of "
		    "their own",
		    pk->id);
		goto fail;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "key %s is the last one with the operator role: add "
		    "another operator first",
		    pk->id);
		goto fail;
	}
	PQclear(res);
	res = NULL;
	if (run(s,
	        "INSERT INTO operator_keys (key_id, public_key, name, role) "
	        "VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO UPDATE "
	        "SET role = EXCLUDED.role, name = EXCLUDED.name",
	        4, p, err) != 0)
		goto fail;
	if (exec(s, "COMMIT", err) != 0)
		goto fail;
	free(hex);
	return 0;
fail:
	PQclear(res);
	rollback(s);
	free(hex);
	return rc ? rc : err->code;
}

int
ferry_store_list_operators(struct ferry_store *s,
    Ferry__OperatorsListReply *out, struct ferry_err *err)
{
	PGresult *res;
	int i, n;

	ferry__operators_list_reply__init(out);
	res = query(s,
	    "SELECT key_id, name, role, (extract(epoch FROM created_at) * "
	    "1000)::int8 FROM operator_keys ORDER BY role, name, key_id",
	    0, NULL, err);
	if (res == NULL)
		return err->code;
	n = PQntuples(res);
	out->operators = xcalloc(n ? (size_t)n : 1, sizeof(*out->operators));
	for (i = 0; i < n; i++) {
		Ferry__OperatorInfo *o = xmalloc(sizeof(*o));
		ferry__operator_info__init(o);
		o->key_id = xstrdup(PQgetvalue(res, i, 0));
		o->name = xstrdup(PQgetvalue(res, i, 1));
		o->role = xstrdup(PQgetvalue(res, i, 2));
		o->created_unix_ms = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		out->operators[i] = o;
	}
	out->n_operators = (size_t)n;
	PQclear(res);
	return 0;
}

int
ferry_store_remove_operator(struct ferry_store *s, const char *key_id,
    const char *actor, uint8_t pk[32], struct ferry_err *err)
{
	const char *p[2] = { key_id, actor };
	PGresult *res = NULL;
	unsigned char *raw;
	size_t n = 0;
	int rc = 0;

	if (exec(s, "BEGIN", err) != 0)
		return err->code;
	/* Serialises removals: two cannot both leave one operator each. */
	if (exec(s, "LOCK TABLE operator_keys IN SHARE ROW EXCLUSIVE MODE",
	        err) != 0)
		goto fail;
	res = query(s,
	    "SELECT public_key, role = 'operator' AND (SELECT count(*) FROM "
	    "operator_keys WHERE role = 'operator') = 1 FROM operator_keys "
	    "WHERE key_id = $1",
	    1, p, err);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 0) {
		rc = ferry_errf(err, FERRY_EFINDING, "no operator key '%s'",
		    key_id);
		goto fail;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "'%s' is the last key with the operator role: add another "
		    "one first",
		    key_id);
		goto fail;
	}
	raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 0), &n);
	if (raw != NULL && n == 32)
		memcpy(pk, raw, 32);
	PQfreemem(raw);
	PQclear(res);
	res =
	    query(s, "DELETE FROM operator_keys WHERE key_id = $1", 1, p, err);
	if (res == NULL)
		goto fail;
	PQclear(res);
	res = NULL;
	if (run(s,
	        "INSERT INTO audit (actor, action, detail) VALUES ($2, "
	        "'operator removed', $1)",
	        2, p, err) != 0)
		goto fail;
	if (exec(s, "COMMIT", err) != 0)
		goto fail;
	return 0;
fail:
	PQclear(res);
	rollback(s);
	return rc ? rc : err->code;
}

int
ferry_store_key_role(struct ferry_store *s, const uint8_t pk[32],
    enum ferry_role *role, char **agent_id, char **agent_state,
    struct ferry_err *err)
{
	char *hex = bytea_param(pk, 32);
	const char *p[1] = { hex };
	PGresult *res;
	int r;

	*role = FERRY_ROLE_NONE;
	*agent_id = *agent_state = NULL;
	res = query(s,
	    "SELECT 'op', role, NULL FROM operator_keys WHERE public_key = $1 "
	    "UNION ALL SELECT 'agent', agent_id, state FROM agents "
	    "WHERE public_key = $1",
	    1, p, err);
	free(hex);
	if (res == NULL)
		return err->code;
	if (PQntuples(res) > 0) {
		if (strcmp(PQgetvalue(res, 0, 0), "op") == 0) {
			r = ferry_role_parse(PQgetvalue(res, 0, 1));
			*role = r < 0 ? FERRY_ROLE_NONE : (enum ferry_role)r;
		} else {
			*role = FERRY_ROLE_AGENT;
			*agent_id = xstrdup(PQgetvalue(res, 0, 1));
			*agent_state = xstrdup(PQgetvalue(res, 0, 2));
		}
	}
	PQclear(res);
	return 0;
}

static int
check_agent_id(const char *id, struct ferry_err *err)
{
	struct ferry_err e = { 0 };

	if (ferry_key_check_name(id, &e) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "invalid agent id '%.64s': "
		    "use 1-64 of "
		    "[A-Za-z0-9._@-]",
		    id);
	return 0;
}

int
ferry_store_register_agent(struct ferry_store *s, const uint8_t pk[32],
    const Ferry__RegisterRequest *r, const char *address, int auto_accept,
    char **state, struct ferry_err *err)
{
	char *hex = NULL, keyid[FERRY_KEY_ID_HEX + 1];
	const char *p[9];
	PGresult *res = NULL;
	int rc;

	*state = NULL;
	if (check_agent_id(r->agent_id, err) != 0)
		return err->code;
	if (r->environment[0] == '\0' ||
	    ferry_key_check_name(r->environment, NULL) != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "invalid environment '%.64s' for agent '%s'",
		    r->environment, r->agent_id);
	hex = bytea_param(pk, 32);
	ferry_key_id(pk, keyid);
	p[0] = r->agent_id;
	p[1] = hex;
	p[2] = keyid;
	p[3] = auto_accept ? "accepted" : "pending";
	p[4] = r->environment;
	p[5] = r->project;
	p[6] = r->version;
	p[7] = r->server_version;
	p[8] = address;
	/*
	 * A known id keeps its state; its details are refreshed only when
	 * the key matches. The RETURNING row tells which case it was.
	 */
	res = query(s,
	    "INSERT INTO agents AS a (agent_id, public_key, key_id, state, "
	    "environment, project, version, server_version, address) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
	    "ON CONFLICT (agent_id) DO UPDATE SET environment = "
	    "EXCLUDED.environment, project = EXCLUDED.project, version = "
	    "EXCLUDED.version, server_version = EXCLUDED.server_version, "
	    "address = EXCLUDED.address, last_seen = now() "
	    "WHERE a.public_key = EXCLUDED.public_key "
	    "RETURNING state, (xmax = 0)",
	    9, p, err);
	if (res == NULL) {
		rc = err->code;
		goto out;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		p[0] = r->agent_id;
		res = query(s, "SELECT key_id FROM agents WHERE agent_id = $1",
		    1, p, err);
		rc = ferry_errf(err, FERRY_EFINDING,
		    "agent id '%s' is registered with another key (%s); this "
		    "key is %s: revoke the old agent or use another id",
		    r->agent_id,
		    res && PQntuples(res) ? PQgetvalue(res, 0, 0) : "?", keyid);
		goto out;
	}
	*state = xstrdup(PQgetvalue(res, 0, 0));
	if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		if (auto_accept)
			ferry_log_warn("agent auto-accepted (--auto-accept is "
			               "for demos only)",
			    "agent", r->agent_id, "key", keyid);
		else
			ferry_log_info("new agent key pending: accept it with "
			               "'ferry agents accept ID'",
			    "agent", r->agent_id, "key", keyid, "environment",
			    r->environment);
	}
	rc = 0;
out:
	PQclear(res);
	free(hex);
	return rc;
}

int
ferry_store_set_agent_state(struct ferry_store *s, const char *agent_id,
    const char *to, const char *actor, uint8_t pk[32], struct ferry_err *err)
{
	const char *p[3] = { agent_id, to, actor };
	PGresult *res = NULL;
	const char *from;
	int ok, rc = 0;

	if (exec(s, "BEGIN", err) != 0)
		return err->code;
	res = query(s,
	    "SELECT state, public_key FROM agents WHERE agent_id = $1 FOR "
	    "UPDATE",
	    1, p, err);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 0) {
		rc = ferry_errf(err, FERRY_EFINDING, "no agent '%s'", agent_id);
		goto fail;
	}
	from = PQgetvalue(res, 0, 0);
	if (strcmp(to, "accepted") == 0)
		ok = strcmp(from, "pending") == 0 ||
		    strcmp(from, "rejected") == 0 ||
		    strcmp(from, "accepted") == 0;
	else if (strcmp(to, "rejected") == 0)
		ok = strcmp(from, "pending") == 0 ||
		    strcmp(from, "rejected") == 0;
	else
		ok = 1; /* revoke: always possible */
	if (!ok) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "agent '%s' is %s: it cannot become %s%s", agent_id, from,
		    to,
		    strcmp(from, "revoked") == 0
		        ? " (a revoked key stays revoked: the agent needs a "
		          "new key and id)"
		        : "");
		goto fail;
	}
	{
		size_t n = 0;
		unsigned char *raw =
		    PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0,
		                        1),
		        &n);
		if (raw != NULL && n == 32)
			memcpy(pk, raw, 32);
		PQfreemem(raw);
	}
	PQclear(res);
	res = NULL;
	if (run(s,
	        "UPDATE agents SET state = $2, state_changed = now() WHERE "
	        "agent_id = $1",
	        2, p, err) != 0)
		goto fail;
	if (run(s,
	        "INSERT INTO audit (actor, action, detail) "
	        "VALUES ($3, 'agent ' || $2, $1)",
	        3, p, err) != 0)
		goto fail;
	if (strcmp(to, "accepted") != 0) {
		/* Work queued for an agent that may no longer work fails. */
		if (run(s,
		        "UPDATE work_items SET state = 'failed', finished_at = "
		        "now() WHERE agent_id = $1 AND state IN ('queued', "
		        "'delivered')",
		        1, p, err) != 0)
			goto fail;
	}
	if (exec(s, "COMMIT", err) != 0)
		goto fail;
	return 0;
fail:
	PQclear(res);
	rollback(s);
	return rc ? rc : err->code;
}

int
ferry_store_list_agents(struct ferry_store *s, Ferry__AgentsListReply *out,
    struct ferry_err *err)
{
	PGresult *res;
	int i, n;

	ferry__agents_list_reply__init(out);
	res = query(s,
	    "SELECT agent_id, environment, version, state, "
	    "(extract(epoch FROM last_seen) * 1000)::int8, address, key_id, "
	    "last_bundle_sequence, last_bundle_digest, last_schema_digest, "
	    "server_version, last_outcome FROM agents ORDER BY environment, "
	    "agent_id",
	    0, NULL, err);
	if (res == NULL)
		return err->code;
	n = PQntuples(res);
	out->n_agents = (size_t)n;
	out->agents = xcalloc(n ? (size_t)n : 1, sizeof(*out->agents));
	for (i = 0; i < n; i++) {
		Ferry__AgentInfo *a = xmalloc(sizeof(*a));
		ferry__agent_info__init(a);
		a->agent_id = xstrdup(PQgetvalue(res, i, 0));
		a->environment = xstrdup(PQgetvalue(res, i, 1));
		a->version = xstrdup(PQgetvalue(res, i, 2));
		a->state = xstrdup(PQgetvalue(res, i, 3));
		a->last_seen_unix_ms = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		a->address = xstrdup(PQgetvalue(res, i, 5));
		a->key_id = xstrdup(PQgetvalue(res, i, 6));
		a->last_bundle_sequence =
		    strtoull(PQgetvalue(res, i, 7), NULL, 10);
		a->last_bundle_digest = xstrdup(PQgetvalue(res, i, 8));
		a->last_schema_digest = xstrdup(PQgetvalue(res, i, 9));
		a->server_version = xstrdup(PQgetvalue(res, i, 10));
		a->last_outcome = xstrdup(PQgetvalue(res, i, 11));
		out->agents[i] = a;
	}
	PQclear(res);
	return 0;
}

int
ferry_store_put_bundle(struct ferry_store *s, const char *hex,
    const uint8_t *data, size_t len, struct ferry_err *err)
{
	char *b = bytea_param(data, len);
	const char *p[2] = { hex, b };
	PGresult *res;

	res = query(s,
	    "INSERT INTO bundles (digest, data) VALUES ($1, $2) ON CONFLICT "
	    "DO NOTHING",
	    2, p, err);
	free(b);
	PQclear(res);
	return res == NULL ? err->code : 0;
}

int
ferry_store_get_bundle(struct ferry_store *s, const char *hex, uint8_t **data,
    size_t *len, struct ferry_err *err)
{
	const char *p[1] = { hex };
	PGresult *res;
	unsigned char *raw;
	size_t n = 0;

	*data = NULL;
	*len = 0;
	res = query(s, "SELECT data FROM bundles WHERE digest = $1", 1, p, err);
	if (res == NULL)
		return err->code;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ferry_errf(err, FERRY_EFINDING, "no bundle %.16s...",
		    hex);
	}
	raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 0), &n);
	PQclear(res);
	if (raw == NULL)
		return ferry_errf(err, FERRY_EOPER, "out of memory");
	*data = xmalloc(n ? n : 1);
	memcpy(*data, raw, n);
	*len = n;
	PQfreemem(raw);
	return 0;
}

/* Adds one work item inside the caller's transaction. */
static int
add_work(struct ferry_store *s, const char *agent_id, const char *kind,
    const char *bundle_hex, const char *rollout, const char *approvals,
    const char *dispatch_id, Ferry__DispatchReply *out, struct ferry_err *err)
{
	char id[37];
	const char *p[7];
	PGresult *res;

	ferry_uuid_v4(id);
	p[0] = id;
	p[1] = agent_id;
	p[2] = kind;
	p[3] = bundle_hex;
	p[4] = rollout;
	p[5] = approvals;
	p[6] = dispatch_id;
	res = query(s,
	    "INSERT INTO work_items (work_id, agent_id, kind, bundle_digest, "
	    "rollout_id, approvals, dispatch_id) VALUES ($1, $2, $3, $4, $5, "
	    "$6, $7)",
	    7, p, err);
	if (res == NULL)
		return err->code;
	PQclear(res);
	out->work_ids =
	    xrealloc(out->work_ids, (out->n_work_ids + 1) * sizeof(char *));
	out->agent_ids =
	    xrealloc(out->agent_ids, (out->n_agent_ids + 1) * sizeof(char *));
	out->work_ids[out->n_work_ids++] = xstrdup(id);
	out->agent_ids[out->n_agent_ids++] = xstrdup(agent_id);
	return 0;
}

int
ferry_store_dispatch(struct ferry_store *s, const Ferry__DispatchRequest *r,
    const char *bundle_hex, const char *actor, Ferry__DispatchReply *out,
    struct ferry_err *err)
{
	Ferry__WorkItem ap = FERRY__WORK_ITEM__INIT;
	const char *kind = r->kind[0] ? r->kind : "apply";
	const char *p[3];
	char *apbytes = NULL, *detail = NULL;
	uint8_t *packed = NULL;
	PGresult *res = NULL;
	size_t i, plen;
	int rc = 0, j;

	ferry__dispatch_reply__init(out);
	if (strcmp(kind, "apply") != 0 && strcmp(kind, "status") != 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "unknown work kind '%.32s' (apply, status)", kind);
	if ((r->environment[0] == '\0') == (r->n_agent_ids == 0))
		return ferry_errf(err, FERRY_EUSAGE,
		    "name either an environment or agents, not both");
	ap.n_approvals = r->n_approvals;
	ap.approvals = r->approvals;
	plen = ferry__work_item__get_packed_size(&ap);
	packed = xmalloc(plen ? plen : 1);
	ferry__work_item__pack(&ap, packed);
	apbytes = bytea_param(packed, plen);
	if (exec(s, "BEGIN", err) != 0) {
		rc = err->code;
		goto out;
	}
	if (r->dispatch_id[0] != '\0') {
		/* A retry of a dispatch already made: the same answer. */
		p[0] = r->dispatch_id;
		res = query(s,
		    "SELECT work_id, agent_id FROM work_items WHERE "
		    "dispatch_id = $1 ORDER BY agent_id",
		    1, p, err);
		if (res == NULL)
			goto fail;
		for (j = 0; j < PQntuples(res); j++) {
			out->work_ids = xrealloc(out->work_ids,
			    (out->n_work_ids + 1) * sizeof(char *));
			out->agent_ids = xrealloc(out->agent_ids,
			    (out->n_agent_ids + 1) * sizeof(char *));
			out->work_ids[out->n_work_ids++] =
			    xstrdup(PQgetvalue(res, j, 0));
			out->agent_ids[out->n_agent_ids++] =
			    xstrdup(PQgetvalue(res, j, 1));
		}
		PQclear(res);
		res = NULL;
		if (out->n_work_ids > 0) {
			exec(s, "COMMIT", err);
			goto out;
		}
	}
	if (r->environment[0] != '\0') {
		p[0] = r->environment;
		res = query(s,
		    "SELECT agent_id FROM agents WHERE environment = $1 AND "
		    "state = 'accepted' ORDER BY agent_id",
		    1, p, err);
		if (res == NULL)
			goto fail;
		if (PQntuples(res) == 0) {
			rc = ferry_errf(err, FERRY_EFINDING,
			    "no accepted agent in environment '%s'",
			    r->environment);
			goto fail;
		}
		for (j = 0; j < PQntuples(res); j++)
			if (add_work(s, PQgetvalue(res, j, 0), kind, bundle_hex,
			        r->rollout_id, apbytes, r->dispatch_id, out,
			        err) != 0)
				goto fail;
		PQclear(res);
		res = NULL;
	}
	for (i = 0; i < r->n_agent_ids; i++) {
		p[0] = r->agent_ids[i];
		res = query(s, "SELECT state FROM agents WHERE agent_id = $1",
		    1, p, err);
		if (res == NULL)
			goto fail;
		if (PQntuples(res) == 0 ||
		    strcmp(PQgetvalue(res, 0, 0), "accepted") != 0) {
			rc = ferry_errf(err, FERRY_EFINDING, "agent '%s' %s%s",
			    r->agent_ids[i],
			    PQntuples(res) ? "is " : "does not exist",
			    PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
			goto fail;
		}
		PQclear(res);
		res = NULL;
		if (add_work(s, r->agent_ids[i], kind, bundle_hex,
		        r->rollout_id, apbytes, r->dispatch_id, out, err) != 0)
			goto fail;
	}
	detail = xasprintf("%s bundle %.16s to %zu agent(s)", kind,
	    bundle_hex ? bundle_hex : "-", out->n_work_ids);
	p[0] = actor;
	p[1] = detail;
	if (run(s,
	        "INSERT INTO audit (actor, action, detail) VALUES ($1, "
	        "'dispatch', $2)",
	        2, p, err) != 0)
		goto fail;
	if (exec(s, "COMMIT", err) != 0)
		goto fail;
	goto out;
fail:
	PQclear(res);
	rollback(s);
	ferry_store_release(&out->base);
	rc = rc ? rc : err->code;
out:
	free(detail);
	free(apbytes);
	free(packed);
	return rc;
}

int
ferry_store_has_work(struct ferry_store *s, const char *agent_id, int *has,
    struct ferry_err *err)
{
	const char *p[1] = { agent_id };
	PGresult *res;

	res = query(s,
	    "SELECT 1 FROM work_items WHERE agent_id = $1 AND state IN "
	    "('queued', 'delivered') LIMIT 1",
	    1, p, err);
	if (res == NULL)
		return err->code;
	*has = PQntuples(res) > 0;
	PQclear(res);
	return 0;
}

int
ferry_store_take_work(struct ferry_store *s, const char *agent_id,
    Ferry__PollReply *out, struct ferry_err *err)
{
	const char *p[2];
	char maxd[16];
	PGresult *res;
	int i, n;

	out->n_items = 0;
	out->items = NULL;
	snprintf(maxd, sizeof(maxd), "%d", MAX_DELIVERIES);
	p[0] = agent_id;
	p[1] = maxd;
	/* A work item delivered again and again without a report ends. */
	res = query(s,
	    "UPDATE work_items SET state = 'failed', finished_at = now() "
	    "WHERE agent_id = $1 AND state = 'delivered' AND deliveries >= $2 "
	    "RETURNING work_id",
	    2, p, err);
	if (res == NULL)
		return err->code;
	for (i = 0; i < PQntuples(res); i++)
		ferry_log_warn("work item failed: delivered too often without "
		               "a report",
		    "work", PQgetvalue(res, i, 0), "agent", agent_id,
		    "deliveries", maxd);
	PQclear(res);
	res = query(s,
	    "WITH w AS (UPDATE work_items SET state = 'delivered', "
	    "deliveries = deliveries + 1, delivered_at = now() WHERE "
	    "agent_id = $1 AND state IN ('queued', 'delivered') RETURNING *) "
	    "SELECT w.work_id, w.kind, coalesce(w.bundle_digest, ''), "
	    "w.rollout_id, w.approvals, coalesce(length(b.data), 0) FROM w "
	    "LEFT JOIN bundles b ON b.digest = w.bundle_digest ORDER BY "
	    "w.created_at, w.work_id",
	    1, p, err);
	if (res == NULL)
		return err->code;
	n = PQntuples(res);
	out->items = xcalloc(n ? (size_t)n : 1, sizeof(*out->items));
	for (i = 0; i < n; i++) {
		Ferry__WorkItem *w = NULL, *ap = NULL;
		const char *hex = PQgetvalue(res, i, 2);
		unsigned char *raw;
		size_t rawlen = 0;

		raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i,
		                          4),
		    &rawlen);
		if (raw != NULL)
			ap = ferry__work_item__unpack(NULL, rawlen, raw);
		PQfreemem(raw);
		w = xmalloc(sizeof(*w));
		ferry__work_item__init(w);
		w->work_id = xstrdup(PQgetvalue(res, i, 0));
		w->kind = xstrdup(PQgetvalue(res, i, 1));
		w->rollout_id = xstrdup(PQgetvalue(res, i, 3));
		w->bundle_size = strtoull(PQgetvalue(res, i, 5), NULL, 10);
		if (strlen(hex) == 64) {
			w->bundle_digest.data = xmalloc(32);
			w->bundle_digest.len = 32;
			ferry_hex_decode(hex, w->bundle_digest.data, 32);
		}
		if (ap != NULL) {
			size_t k;
			w->n_approvals = ap->n_approvals;
			w->approvals =
			    xcalloc(ap->n_approvals + 1, sizeof(*w->approvals));
			for (k = 0; k < ap->n_approvals; k++) {
				w->approvals[k].len = ap->approvals[k].len;
				w->approvals[k].data =
				    xmalloc(ap->approvals[k].len + 1);
				memcpy(w->approvals[k].data,
				    ap->approvals[k].data,
				    ap->approvals[k].len);
			}
			ferry__work_item__free_unpacked(ap, NULL);
		}
		out->items[i] = w;
	}
	out->n_items = (size_t)n;
	PQclear(res);
	return 0;
}

int
ferry_store_store_report(struct ferry_store *s, const char *agent_id,
    const Ferry__ReportRequest *r, const uint8_t *raw, size_t rawlen,
    int *duplicate, struct ferry_err *err)
{
	char *payload = NULL, code[16], dur[32], seq[32], started[32];
	char bhex[65] = "";
	const char *p[11];
	const char *wstate;
	PGresult *res = NULL;
	int rc = 0;

	*duplicate = 0;
	if (r->report_id[0] == '\0' || strlen(r->report_id) > 64 ||
	    r->work_id[0] == '\0')
		return ferry_errf(err, FERRY_EUSAGE,
		    "a report needs a report id and a work id");
	if (exec(s, "BEGIN", err) != 0)
		return err->code;
	p[0] = r->work_id;
	res = query(s,
	    "SELECT agent_id, state FROM work_items WHERE work_id = $1 FOR "
	    "UPDATE",
	    1, p, err);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 0 ||
	    strcmp(PQgetvalue(res, 0, 0), agent_id) != 0) {
		rc = ferry_errf(err, FERRY_EFINDING,
		    "work item %.40s is not one of agent '%s'", r->work_id,
		    agent_id);
		goto fail;
	}
	PQclear(res);
	payload = bytea_param(raw, rawlen);
	snprintf(code, sizeof(code), "%d", r->exit_code);
	snprintf(dur, sizeof(dur), "%lld", (long long)r->duration_us);
	snprintf(seq, sizeof(seq), "%llu",
	    (unsigned long long)r->bundle_sequence);
	snprintf(started, sizeof(started), "%lld",
	    (long long)r->started_unix_ms);
	if (r->bundle_digest.len == 32)
		ferry_hex_encode(r->bundle_digest.data, 32, bhex);
	p[0] = r->report_id;
	p[1] = r->work_id;
	p[2] = agent_id;
	p[3] = r->outcome;
	p[4] = r->detail;
	p[5] = code;
	p[6] = started;
	p[7] = dur;
	p[8] = seq;
	p[9] = r->schema_digest;
	p[10] = payload;
	/* Any unique conflict (this report id, or a report already stored
	   for this work item) is a duplicate: stored once. */
	res = query(s,
	    "INSERT INTO reports (report_id, work_id, agent_id, outcome, "
	    "detail, exit_code, started_at, duration_us, bundle_sequence, "
	    "schema_digest, payload) VALUES ($1, $2, $3, $4, $5, $6, "
	    "to_timestamp($7::float8 / 1000), $8, $9, $10, $11) "
	    "ON CONFLICT DO NOTHING RETURNING 1",
	    11, p, err);
	if (res == NULL)
		goto fail;
	*duplicate = PQntuples(res) == 0;
	PQclear(res);
	res = NULL;
	if (!*duplicate) {
		/* "pending" is a status item's finding, not a failure. */
		wstate = strcmp(r->outcome, "applied") == 0 ||
		        strcmp(r->outcome, "up-to-date") == 0 ||
		        strcmp(r->outcome, "pending") == 0
		    ? "done"
		    : "failed";
		p[0] = r->work_id;
		p[1] = wstate;
		if (run(s,
		        "UPDATE work_items SET state = $2, finished_at = now() "
		        "WHERE work_id = $1",
		        2, p, err) != 0)
			goto fail;
		p[0] = agent_id;
		p[1] = r->outcome;
		p[2] = seq;
		p[3] = bhex;
		p[4] = r->schema_digest;
		if (run(s,
		        "UPDATE agents SET last_seen = now(), "
		        "last_outcome = $2, last_bundle_sequence = CASE WHEN "
		        "$3::int8 > 0 THEN $3::int8 ELSE last_bundle_sequence "
		        "END, last_bundle_digest = CASE WHEN $4 <> '' THEN $4 "
		        "ELSE last_bundle_digest END, last_schema_digest = "
		        "CASE WHEN $5 <> '' THEN $5 ELSE last_schema_digest "
		        "END WHERE agent_id = $1",
		        5, p, err) != 0)
			goto fail;
	}
	if (exec(s, "COMMIT", err) != 0)
		goto fail;
	free(payload);
	return 0;
fail:
	PQclear(res);
	free(payload);
	rollback(s);
	return rc ? rc : err->code;
}

/* One item's per-migration results, from its stored report. */
static void
take_migrations(Ferry__WorkInfo *w, const char *payload)
{
	Ferry__ReportRequest *r;
	unsigned char *raw;
	size_t n = 0;

	raw = PQunescapeBytea((const unsigned char *)payload, &n);
	if (raw == NULL)
		return;
	r = ferry__report_request__unpack(NULL, n, raw);
	PQfreemem(raw);
	if (r == NULL)
		return;
	/* Both sides are malloc'ed by protobuf-c's default allocator. */
	w->migrations = r->migrations;
	w->n_migrations = r->n_migrations;
	r->migrations = NULL;
	r->n_migrations = 0;
	ferry__report_request__free_unpacked(r, NULL);
}

int
ferry_store_list_work(struct ferry_store *s, const Ferry__WorkListRequest *r,
    Ferry__WorkListReply *out, struct ferry_err *err)
{
	char lim[16];
	const char *p[2];
	PGresult *res;
	int i, n;

	ferry__work_list_reply__init(out);
	snprintf(lim, sizeof(lim), "%u",
	    r->limit > 0 && r->limit <= 10000 ? r->limit : 1000);
	p[0] = r->work_id;
	p[1] = lim;
	res = query(s,
	    "SELECT w.work_id, w.agent_id, w.kind, w.state, "
	    "(extract(epoch FROM w.created_at) * 1000)::int8, "
	    "coalesce((extract(epoch FROM w.finished_at) * 1000)::int8, 0), "
	    "coalesce(r.outcome, ''), coalesce(r.detail, ''), w.deliveries, "
	    "coalesce(r.bundle_sequence, 0), coalesce(r.schema_digest, ''), "
	    "CASE WHEN $1 <> '' THEN r.payload END FROM work_items w LEFT "
	    "JOIN reports r ON r.work_id = w.work_id WHERE $1 = '' OR "
	    "w.work_id = $1 ORDER BY w.created_at DESC, w.work_id LIMIT "
	    "$2::int",
	    2, p, err);
	if (res == NULL)
		return err->code;
	n = PQntuples(res);
	out->items = xcalloc(n ? (size_t)n : 1, sizeof(*out->items));
	for (i = 0; i < n; i++) {
		Ferry__WorkInfo *w = xmalloc(sizeof(*w));
		ferry__work_info__init(w);
		w->work_id = xstrdup(PQgetvalue(res, i, 0));
		w->agent_id = xstrdup(PQgetvalue(res, i, 1));
		w->kind = xstrdup(PQgetvalue(res, i, 2));
		w->state = xstrdup(PQgetvalue(res, i, 3));
		w->created_unix_ms = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		w->finished_unix_ms = strtoll(PQgetvalue(res, i, 5), NULL, 10);
		w->outcome = xstrdup(PQgetvalue(res, i, 6));
		w->detail = xstrdup(PQgetvalue(res, i, 7));
		w->deliveries =
		    (uint32_t)strtoul(PQgetvalue(res, i, 8), NULL, 10);
		w->bundle_sequence = strtoull(PQgetvalue(res, i, 9), NULL, 10);
		w->schema_digest = xstrdup(PQgetvalue(res, i, 10));
		if (!PQgetisnull(res, i, 11))
			take_migrations(w, PQgetvalue(res, i, 11));
		out->items[i] = w;
	}
	out->n_items = (size_t)n;
	PQclear(res);
	return 0;
}

void
ferry_store_touch_agent(struct ferry_store *s, const char *agent_id,
    const char *address)
{
	struct ferry_err e = { 0 };
	const char *p[2] = { agent_id, address };
	PGresult *res;

	res = query(s,
	    "UPDATE agents SET last_seen = now(), address = CASE WHEN $2 <> "
	    "'' THEN $2 ELSE address END WHERE agent_id = $1",
	    2, p, &e);
	PQclear(res);
}

void
ferry_store_release(ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	ProtobufCMessage *copy = xmalloc(d->sizeof_message);

	/* protobuf-c frees a message with its contents; keep the shell. */
	memcpy(copy, m, d->sizeof_message);
	protobuf_c_message_free_unpacked(copy, NULL);
	protobuf_c_message_init(d, m);
}
