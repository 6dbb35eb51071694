#!/bin/bash
# coordinator_state_url_test.sh FERRY FERRY_AGENT -- the coordinator with
# its state in an external PostgreSQL (--state-url, a Prisma-style URL with
# ?schema=): schema created there by the engine, agents enrolled and work
# reported into it, nothing embedded started; a restart keeps it all.
. "$(dirname "$0")/fleetlib.sh"
FERRY=$1
FERRY_AGENT=$2
FL_TMP=$(mktemp -d /tmp/ferry-fleet.XXXXXX)
chmod 755 "$FL_TMP"
trap fleet_cleanup EXIT
trap "exit 130" INT TERM
fleet_dbs state,app
STATE_URL="$(dburl state)?schema=ferry_state"
PORT=$(shuf -i 20000-32000 -n 1)
URL=tcp://127.0.0.1:$PORT

cli serve --init --data "$FL_TMP/coord" --user postgres --state-url "$STATE_URL"
expect_rc 0 "serve --init with --state-url"
export FERRY_KEY=$FL_TMP/coord/keys/admin.key
export FERRY_COORDINATOR_KEY=$FL_TMP/coord/keys/coordinator.pub
export FERRY_COORDINATOR=$URL
check "no embedded cluster was made"
[ -e "$FL_TMP/coord/pgdata" ] && fail "pgdata exists"
expect_eq "$(psql -X -At "$(dburl state)" -c "SELECT count(*) FROM ferry_state._prisma_migrations WHERE finished_at IS NOT NULL")" \
	1 "the state schema's migration is recorded in ferry_state"
expect_eq "$(psql -X -At "$(dburl state)" -c "SELECT role FROM ferry_state.operator_keys")" \
	operator "the first operator key is in the external database"

"$FERRY" keygen --name release -o "$FL_TMP/keys" --no-passphrase >/dev/null
"$FERRY" bundle create --migrations "$FL_ROOT/deploy/examples/migrations" \
	--project acme --key "$FL_TMP/keys/release.key" -o "$FL_TMP/b1.fbundle" >/dev/null
fleet_serve --state-url "$STATE_URL" --poll-hold 2s
fleet_agent app-1 app app
wait_log "$FL_TMP/agent-app-1.log" registered || fail "no registration"
cli agents accept app-1
expect_rc 0 "accept"
cli dispatch --bundle "$FL_TMP/b1.fbundle" --env app --wait=60s
expect_rc 0 "dispatch, waited"
expect_eq "$(psql -X -At "$(dburl state)" -c "SELECT outcome FROM ferry_state.reports")" \
	applied "the report is in the external database"

# The coordinator does not keep the migration lock of the database.
expect_eq "$(psql -X -At "$(dburl state)" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")" \
	0 "no advisory lock held by the running coordinator"

# The state database restarts under the running coordinator: it connects
# again by itself.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
runuser -u postgres -- "$PGBIN/pg_ctl" restart -w -m fast -D "$FL_TMP/pg/state/data" \
	>/dev/null 2>&1 ||
	fail "cannot restart the state database"
cli agents --json
expect_rc 0 "agents right after the state database restarted"
expect_eq "$(jq -r '.agents[0].state' "$OUT")" accepted "state still readable"
expect_grep "$FL_TMP/serve.log" "state store connection lost: connected again"
cli dispatch --bundle "$FL_TMP/b1.fbundle" --env app --wait=60s --kind status --json
expect_rc 0 "work after the restart"
expect_eq "$(jq -r '.work[0].outcome' "$OUT")" up-to-date "status after the restart"

# A restart of the coordinator finds everything where it was.
kill -TERM "$SERVE_PID"; wait "$SERVE_PID"
fleet_serve --state-url "$STATE_URL" --poll-hold 2s
cli agents --json
expect_rc 0 "agents after a restart"
expect_eq "$(jq -r '.agents[0].state + " " + .agents[0].last_outcome' "$OUT")" \
	"accepted up-to-date" "state kept across the restart"
fleet_done
