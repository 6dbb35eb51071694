#!/bin/bash
# coordinator_attack_test.sh FERRY FERRY_AGENT WIRE_ATTACK -- a hostile
# client (wire_attack.c) against a real coordinator while two real agents
# work: forged, replayed, bit-flipped, truncated, re-addressed, oversized
# frames, another key's identity, a handshake flood, forbidden operations.
# Everything is refused and logged; the agents are unaffected.
. "$(dirname "$0")/fleetlib.sh"
ATTACK=$3

fleet_init "$1" "$2"
fleet_serve --poll-hold 2s
fleet_dbs dev,prod
"$FERRY" bundle create --migrations "$FL_ROOT/deploy/examples/migrations" \
	--project acme --key "$FL_TMP/keys/release.key" \
	-o "$FL_TMP/b1.fbundle" >/dev/null || { echo "FAIL: bundle"; exit 1; }
fleet_agent dev-1 dev dev
fleet_agent prod-1 prod prod
for id in dev-1 prod-1; do
	wait_log "$FL_TMP/agent-$id.log" 'registered' || fail "$id did not register"
	cli agents accept "$id"
	expect_rc 0 "accept $id"
done
"$FERRY" keygen --name attacker -o "$FL_TMP/keys" --no-passphrase >/dev/null

check "the attacks"
"$ATTACK" "$URL" "$FL_TMP/coord/keys/coordinator.pub" \
	"$FL_TMP/keys/attacker.key" "$FL_TMP/st-prod-1/agent.pub" \
	>"$FL_TMP/attack.out" 2>&1
rc=$?
sed 's/^/    /' "$FL_TMP/attack.out"
[ $rc = 0 ] || fail "wire_attack: exit $rc"

check "the coordinator is still running"
kill -0 "$SERVE_PID" || fail "the coordinator died"
expect_grep "$FL_TMP/serve.log" 'msg="dropped a frame" peer=127\.0\.0\.1:[0-9]+ .*replayed'
expect_grep "$FL_TMP/serve.log" 'msg="dropped a frame" .*authentication failed'
expect_grep "$FL_TMP/serve.log" 'msg="operation refused" .*op=AGENTS_LIST'

# The real agents still work, during and after.
cli dispatch --bundle "$FL_TMP/b1.fbundle" --agent dev-1 --agent prod-1 \
	--wait=60s --json
expect_rc 0 "dispatch after the attacks"
expect_eq "$(jq -r '[.work[].outcome] | join(",")' "$OUT")" "applied,applied" \
	"both agents applied the bundle"
check "the agents never had to start a new session"
for id in dev-1 prod-1; do
	grep -q 'handshake attempt failed\|dropped a frame' "$FL_TMP/agent-$id.log" &&
		fail "$id was disturbed"
done
expect_eq "$(state_sql "SELECT count(*) FROM reports")" 2 "exactly two reports"
fleet_done
