#!/bin/bash
# coordinator_e2e_test.sh FERRY FERRY_AGENT -- a real coordinator (embedded
# state) and three agents, each beside its own throwaway database, on
# loopback: enrolment (pending until accepted), a bundle applied through
# the coordinator, reports stored, `ferry agents` and `ferry work`;
# an unknown agent gets nothing; a revoked agent is cut off.
. "$(dirname "$0")/fleetlib.sh"

fleet_init "$1" "$2"
fleet_serve --poll-hold 3s
fleet_dbs dev,staging,prod
EXAMPLES=$FL_ROOT/deploy/examples/migrations
"$FERRY" bundle create --migrations "$EXAMPLES" --project acme \
	--key "$FL_TMP/keys/release.key" -o "$FL_TMP/b1.fbundle" >/dev/null ||
	{ echo "FAIL: bundle create"; exit 1; }
NMIG=$(find "$EXAMPLES" -mindepth 1 -maxdepth 1 -type d | wc -l)

# --- enrolment ------------------------------------------------------
fleet_agent dev-1 dev dev
fleet_agent staging-1 staging staging
fleet_agent prod-1 prod prod
for id in dev-1 staging-1 prod-1; do
	check "$id registers and is pending"
	wait_log "$FL_TMP/agent-$id.log" 'registered.*state=pending' ||
		fail "$id did not register as pending"
done
cli agents --json
expect_rc 0 "agents --json"
expect_eq "$(jq -r '[.agents[].state] | join(",")' "$OUT")" \
	"pending,pending,pending" "all three pending"
expect_eq "$(jq -r '[.agents[].id] | join(",")' "$OUT")" \
	"dev-1,prod-1,staging-1" "agent ids"

# A pending agent gets nothing: dispatching to it is refused...
cli dispatch --bundle "$FL_TMP/b1.fbundle" --agent dev-1
expect_rc 1 "dispatch to a pending agent"
expect_grep "$ERR" "agent 'dev-1' is pending"
# ... and its polls are refused, naming why.
expect_grep "$FL_TMP/agent-dev-1.log" "is pending: an operator must run"
expect_eq "$(state_sql 'SELECT count(*) FROM work_items')" 0 \
	"no work item for pending agents"

cli agents accept --all-pending --env dev
expect_rc 0 "accept the pending agents of dev"
expect_grep "$OUT" "^1 pending agent accepted"
cli agents --json
expect_eq "$(jq -r '[.agents[].state] | join(",")' "$OUT")" \
	"accepted,pending,pending" "only dev's agent accepted"
cli agents accept staging-1 prod-1
expect_rc 0 "accept two agents at once"
cli agents accept nosuch
expect_rc 1 "accept an unknown agent"
expect_grep "$ERR" "no agent 'nosuch'"

# --- a bundle through the coordinator ------------------------------------
for id in dev-1 staging-1 prod-1; do
	wait_log "$FL_TMP/agent-$id.log" 'polling for work' 30 ||
		fail "$id did not see its acceptance"
done
cli dispatch --bundle "$FL_TMP/b1.fbundle" --env dev --wait=60s --json
expect_rc 0 "dispatch to dev, waited"
expect_eq "$(jq -r '.work[0].state + " " + .work[0].outcome' "$OUT")" \
	"done applied" "dev work item"
devwork=$(jq -r '.work[0].id' "$OUT")
expect_eq "$(jq -r '[.work[0].migrations[] | select(.outcome == "applied" and (.checksum | length) == 64)] | length' "$OUT")" \
	"$NMIG" "per-migration outcomes and checksums reported"
cli work --id "$devwork"
expect_rc 0 "work --id"
expect_grep "$OUT" "^  20240108093000_init +applied +[0-9.]+  [0-9a-f]{12}$"
cli dispatch --bundle "$FL_TMP/b1.fbundle" --agent staging-1 --agent prod-1 \
	--wait=60s --json
expect_rc 0 "dispatch to staging and prod, waited"
expect_eq "$(jq -r '[.work[].outcome] | join(",")' "$OUT")" \
	"applied,applied" "staging and prod outcomes"

# The databases themselves, checked independently of Ferry's reports.
for db in dev staging prod; do
	n=$(psql -X -At "$(dburl $db)" -c \
		"SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")
	expect_eq "$n" "$NMIG" "migrations applied in $db"
done
# Each report carries every migration's checksum and timing.
ck=$(sha256sum "$EXAMPLES/20240108093000_init/migration.sql" | cut -c1-64)
expect_eq "$(state_sql "SELECT count(*) FROM reports WHERE position(convert_to('$ck', 'UTF8') IN payload) > 0")" \
	3 "the reports name the migrations' checksums"
# Reports are in the state store, one per work item.
expect_eq "$(state_sql "SELECT count(*), count(DISTINCT work_id) FROM reports")" \
	"3|3" "three reports, one per work item"
expect_eq "$(state_sql "SELECT string_agg(state, ',') FROM work_items")" \
	"done,done,done" "work items done"

cli agents --json
expect_rc 0 "agents --json after the rollout"
expect_eq "$(jq -r '[.agents[] | .state + "/" + (.online|tostring) + "/" + .last_outcome + "/" + (.last_bundle_sequence|tostring)] | join(",")' "$OUT")" \
	"accepted/true/applied/1,accepted/true/applied/1,accepted/true/applied/1" \
	"agents: accepted, online, applied bundle 1"
check "each agent reports its schema digest"
[ "$(jq -r '[.agents[].last_schema_digest | length] | unique | join(",")' "$OUT")" = 64 ] ||
	fail "schema digests missing"
check "the same migrations give the same digest everywhere"
[ "$(jq -r '[.agents[].last_schema_digest] | unique | length' "$OUT")" = 1 ] ||
	fail "digests differ: $(jq -c '[.agents[].last_schema_digest]' "$OUT")"
cli agents
expect_rc 0 "agents (table)"
expect_grep "$OUT" '^dev-1 +dev +accepted +online'
cli work --json
expect_rc 0 "work --json"
expect_eq "$(jq '.work | length' "$OUT")" 3 "three work items listed"

# A status item changes nothing and says how the database stands.
cli dispatch --bundle "$FL_TMP/b1.fbundle" --agent dev-1 --kind status --wait=60s --json
expect_rc 0 "status of dev"
expect_eq "$(jq -r '.work[0].state + " " + .work[0].outcome' "$OUT")" \
	"done up-to-date" "dev is up to date"
expect_grep "$OUT" "$NMIG applied, 0 pending, 0 failed"

# The same bundle again: nothing to apply, reported as such.
cli dispatch --bundle "$FL_TMP/b1.fbundle" --agent dev-1 --wait=60s --json
expect_rc 0 "same bundle again"
expect_eq "$(jq -r '.work[0].outcome' "$OUT")" "up-to-date" "re-dispatch is a no-op"

# A bundle the agents do not trust is refused by them, not applied.
"$FERRY" keygen --name mallory -o "$FL_TMP/keys" --no-passphrase >/dev/null
"$FERRY" bundle create --migrations "$EXAMPLES" --project acme \
	--key "$FL_TMP/keys/mallory.key" -o "$FL_TMP/evil.fbundle" >/dev/null
cli dispatch --bundle "$FL_TMP/evil.fbundle" --agent dev-1 --wait=60s --json
expect_rc 1 "an untrusted bundle fails"
expect_eq "$(jq -r '.work[0].state + " " + .work[0].outcome' "$OUT")" \
	"failed refused" "untrusted bundle refused by the agent"
expect_grep "$OUT" "not signed by a trusted key|untrusted|trusted"

# --- an unknown key gets nothing -----------------------------------------
fleet_agent intruder prod prod
wait_log "$FL_TMP/agent-intruder.log" 'registered.*state=pending' ||
	fail "intruder did not register"
cli dispatch --bundle "$FL_TMP/b1.fbundle" --agent intruder
expect_rc 1 "dispatch to an unaccepted agent"
cli dispatch --bundle "$FL_TMP/b1.fbundle" --env prod --wait=60s --json
expect_rc 0 "dispatch to prod: only accepted agents"
expect_eq "$(jq -r '[.work[].agent] | join(",")' "$OUT")" "prod-1" \
	"the pending intruder got no work"
# The same id with another key is refused.
mkdir -p "$FL_TMP/st-imposter"
sed "s#st-intruder#st-imposter#; s#name = intruder#name = prod-1#" \
	"$FL_TMP/intruder.conf" >"$FL_TMP/imposter.conf"
fleet_agent imposter prod prod
wait_log "$FL_TMP/agent-imposter.log" "registered with another key" ||
	fail "an agent id taken by another key was not refused"
check "the imposter gave up"
for _ in $(seq 50); do kill -0 "${AGENT_PID[imposter]}" 2>/dev/null || break; sleep 0.1; done
kill -0 "${AGENT_PID[imposter]}" 2>/dev/null && fail "imposter still running"
cli agents --json
expect_eq "$(jq -r '.agents[] | select(.id=="prod-1") | .key_id' "$OUT")" \
	"$(state_sql "SELECT key_id FROM agents WHERE agent_id='prod-1'")" \
	"prod-1 keeps its key"

# An operator key cannot pose as an agent, an agent key cannot operate.
cli agents --key "$FL_TMP/st-dev-1/agent.key"
expect_rc 1 "an agent key lists agents"
expect_grep "$ERR" "may not list agents"

# --- revocation cuts an agent off ----------------------------------------
cli agents revoke staging-1
expect_rc 0 "revoke staging-1"
wait_log "$FL_TMP/agent-staging-1.log" "is revoked" 30 ||
	fail "staging-1 was not told it is revoked"
cli dispatch --bundle "$FL_TMP/b1.fbundle" --agent staging-1
expect_rc 1 "dispatch to a revoked agent"
expect_grep "$ERR" "is revoked"
cli agents accept staging-1
expect_rc 1 "a revoked key cannot be accepted again"
expect_grep "$ERR" "stays revoked"
cli agents --json
expect_eq "$(jq -r '.agents[] | select(.id=="staging-1") | .state + "/" + (.online|tostring)' "$OUT")" \
	"revoked/false" "staging-1 revoked and offline"
expect_eq "$(state_sql "SELECT action FROM audit WHERE detail='staging-1' ORDER BY id DESC LIMIT 1")" \
	"agent revoked" "the revocation is in the audit log"

# --- a bundle larger than a message chunk ---------------------------------
M=$FL_TMP/big
cp -r "$EXAMPLES" "$M"
mkdir "$M/20250101000000_big"
{
	for ((i = 0; i < 40000; i++)); do
		printf -- '-- padding line %06d: a bundle of several chunks ..........\n' "$i"
	done
	echo 'CREATE TABLE big_one (id int);'
} >"$M/20250101000000_big/migration.sql"
"$FERRY" bundle create --migrations "$M" --project acme --parent "$FL_TMP/b1.fbundle" \
	--key "$FL_TMP/keys/release.key" -o "$FL_TMP/big.fbundle" >/dev/null
check "the big bundle spans several 1 MiB chunks"
[ "$(stat -c %s "$FL_TMP/big.fbundle")" -gt 2200000 ] || fail "bundle too small"
cli dispatch --bundle "$FL_TMP/big.fbundle" --agent dev-1 --kind status --wait=60s --json
expect_rc 0 "status against a newer bundle"
expect_eq "$(jq -r '.work[0].state + " " + .work[0].outcome' "$OUT")" \
	"done pending" "one migration pending"
expect_grep "$OUT" "$NMIG applied, 1 pending"
expect_eq "$(psql -X -At "$(dburl dev)" -c "SELECT count(*) FROM pg_class WHERE relname = 'big_one'")" \
	0 "status applied nothing"
cli dispatch --bundle "$FL_TMP/big.fbundle" --agent dev-1 --wait=60s --json
expect_rc 0 "a bundle fetched in chunks"
expect_eq "$(jq -r '.work[0].outcome + " " + (.work[0].bundle_sequence|tostring)' "$OUT")" \
	"applied 2" "big bundle applied"
expect_eq "$(psql -X -At "$(dburl dev)" -c "SELECT count(*) FROM pg_class WHERE relname = 'big_one'")" \
	1 "its migration ran"

# --- roles -------------------------------------------------------------------
"$FERRY" keygen --name viewer -o "$FL_TMP/keys" --no-passphrase >/dev/null
cli operators add "$FL_TMP/keys/viewer.pub" --role read
expect_rc 0 "add a read-only key"
cli agents --key "$FL_TMP/keys/viewer.key"
expect_rc 0 "a read-only key lists agents"
cli agents accept dev-1 --key "$FL_TMP/keys/viewer.key"
expect_rc 1 "a read-only key cannot accept"
expect_grep "$ERR" "\(read\) may not accept"
cli dispatch --bundle "$FL_TMP/b1.fbundle" --agent dev-1 --key "$FL_TMP/keys/viewer.key"
expect_rc 1 "a read-only key cannot dispatch"
cli operators add "$FL_TMP/keys/viewer.pub" --role operator --key "$FL_TMP/keys/viewer.key"
expect_rc 1 "a read-only key cannot promote itself"
cli operators --json
expect_rc 0 "operators --json"
expect_eq "$(jq -r '[.operators[].role] | join(",")' "$OUT")" "operator,read" "two operator keys"
admin_id=$(jq -r '.operators[] | select(.role=="operator") | .key_id' "$OUT")
viewer_id=$(jq -r '.operators[] | select(.role=="read") | .key_id' "$OUT")
cli operators remove "$admin_id"
expect_rc 1 "the last operator key cannot be removed"
expect_grep "$ERR" "last key with the operator role"
cli operators add "$FL_TMP/st-dev-1/agent.pub" --role read
expect_rc 1 "an agent key cannot become an operator"
expect_grep "$ERR" "belongs to an agent"
cli operators remove "$viewer_id"
expect_rc 0 "remove the read-only key"
cli agents --key "$FL_TMP/keys/viewer.key"
expect_rc 1 "a removed key can do nothing"
expect_grep "$ERR" "\(unknown\) may not list agents"

# --- usage errors ---------------------------------------------------------
cli serve --data "$FL_TMP/elsewhere"
expect_rc 2 "serve as root without --user"
expect_grep "$ERR" "refusing to run as root.*--user NAME"
cli serve --data "$FL_TMP/coord" --user nosuchuser
expect_rc 2 "serve as a user that does not exist"
expect_grep "$ERR" "no such user 'nosuchuser'"
cli dispatch --bundle "$FL_TMP/b1.fbundle"
expect_rc 2 "dispatch without targets"
cli agents frobnicate
expect_rc 2 "unknown agents subcommand"
FERRY_KEY= cli agents
expect_rc 2 "no operator key"
expect_grep "$ERR" "no operator key"
cli agents --coordinator-key "$FL_TMP/keys/release.pub"
expect_rc 1 "the wrong coordinator key is refused"
expect_grep "$ERR" "coordinator key mismatch|key mismatch"

fleet_done
