#!/bin/bash
# coordinator_crash_test.sh FERRY FERRY_AGENT [TRIALS] -- kill -9 the
# coordinator while it dispatches work and takes reports, TRIALS times
# (default 20), and restart it (it adopts its own PostgreSQL): the agents
# reconnect by themselves and every work item ends with exactly one
# report in the state store; no report is left unacknowledged.
. "$(dirname "$0")/fleetlib.sh"
TRIALS=${3:-20}

fleet_init "$1" "$2"
fleet_serve --poll-hold 2s
fleet_dbs a,b,c
"$FERRY" bundle create --migrations "$FL_ROOT/deploy/examples/migrations" \
	--project acme --key "$FL_TMP/keys/release.key" \
	-o "$FL_TMP/b1.fbundle" >/dev/null || { echo "FAIL: bundle"; exit 1; }
for id in a b c; do
	fleet_agent "agent-$id" crash "$id"
	wait_log "$FL_TMP/agent-agent-$id.log" registered || fail "agent-$id did not register"
	cli agents accept "agent-$id"
	expect_rc 0 "accept agent-$id"
done

# Waits until no work item is queued or delivered (up to $1 s).
settle() {
	local i open
	for ((i = 0; i < $1 * 10; i++)); do
		open=$(state_sql "SELECT count(*) FROM work_items WHERE state IN ('queued','delivered')")
		[ "$open" = 0 ] && return 0
		sleep 0.1
	done
	echo "open work items: $open"
	return 1
}

dispatched=0
for ((t = 1; t <= TRIALS; t++)); do
	"$FERRY" dispatch --bundle "$FL_TMP/b1.fbundle" --env crash \
		>"$FL_TMP/d.out" 2>&1 &
	dpid=$!
	# Kill somewhere between before the dispatch lands and after the
	# reports come in.
	sleep "0.$(printf '%03d' $((RANDOM % 120)))"
	kill -9 "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	fleet_serve --poll-hold 2s
	# The CLI retries on its own; it may also have been cut off for good.
	wait "$dpid" && dispatched=$((dispatched + 1))
	check "trial $t: every work item ends"
	settle 60 || fail "trial $t: work left open"
done
echo "dispatches acknowledged before the kill: $dispatched of $TRIALS"

expect_eq "$(state_sql "SELECT count(*) FROM work_items WHERE state <> 'done'")" 0 \
	"every work item done"
expect_eq "$(state_sql "SELECT count(*) FROM work_items w WHERE (SELECT count(*) FROM reports r WHERE r.work_id = w.work_id) <> 1")" \
	0 "exactly one report per work item"
expect_eq "$(state_sql "SELECT count(*) FROM reports") = $(state_sql "SELECT count(*) FROM work_items")" \
	"$(state_sql "SELECT count(*) FROM work_items") = $(state_sql "SELECT count(*) FROM work_items")" \
	"as many reports as work items"
check "work was really dispatched and reported in most trials"
[ "$(state_sql "SELECT count(*) FROM reports")" -ge $((TRIALS)) ] ||
	fail "only $(state_sql "SELECT count(*) FROM reports") reports in $TRIALS trials"
check "no agent holds an unacknowledged report"
left=$(find "$FL_TMP"/st-agent-* -name '*.report*' | wc -l)
[ "$left" = 0 ] || fail "$left report(s) still journaled"
check "the agents never gave up"
for id in a b c; do
	kill -0 "${AGENT_PID[agent-$id]}" || fail "agent-$id exited"
done
# A report sent whose acknowledgement the agent never saw (it crashed): it
# is still journaled at the next start, sent again, and stored once.
rid=$(state_sql "SELECT report_id FROM reports WHERE agent_id = 'agent-a' LIMIT 1")
hex=$(state_sql "SELECT encode(payload, 'hex') FROM reports WHERE report_id = '$rid'")
{ kill -9 "${AGENT_PID[agent-a]}" && wait "${AGENT_PID[agent-a]}"; } 2>/dev/null
printf '%b' "$(sed 's/../\\x&/g' <<<"$hex")" >"$FL_TMP/st-agent-a/reports/$rid.report"
before=$(state_sql "SELECT count(*) FROM reports")
fleet_agent agent-a
check "the journaled report is sent again at start"
wait_log "$FL_TMP/agent-agent-a.log" "sending a report from an earlier run" ||
	fail "the journaled report was not sent"
for _ in $(seq 100); do
	[ -f "$FL_TMP/st-agent-a/reports/$rid.report" ] || break
	sleep 0.1
done
check "and dropped from the journal once acknowledged"
[ -f "$FL_TMP/st-agent-a/reports/$rid.report" ] && fail "still journaled"
expect_grep "$FL_TMP/serve.log" "report acknowledged again.*agent=agent-a"
expect_eq "$(state_sql "SELECT count(*) FROM reports")" "$before" \
	"the report is stored once"

echo "reports: $(state_sql "SELECT count(*) FROM reports"), duplicates acknowledged again: $(grep -c 'acknowledged again' "$FL_TMP/serve.log")"
fleet_done
