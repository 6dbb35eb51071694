#!/bin/bash
# agent_crash_test.sh FERRY FERRY_AGENT [TRIALS] -- kill -9 an agent while
# it applies a bundle, TRIALS times (default 20), and start it again: each
# work item ends applied or failed with exactly one report, never silently
# lost, and the database agrees with the report (a migration's table
# exists exactly when its history row says it was applied).
. "$(dirname "$0")/fleetlib.sh"
TRIALS=${3:-20}

fleet_init "$1" "$2"
fleet_serve --poll-hold 2s
fleet_dbs db
M=$FL_TMP/migrations
cp -r "$FL_ROOT/deploy/examples/migrations" "$M"
"$FERRY" bundle create --migrations "$M" --project acme \
	--key "$FL_TMP/keys/release.key" -o "$FL_TMP/b0.fbundle" >/dev/null ||
	{ echo "FAIL: bundle"; exit 1; }
fleet_agent ag crash db
wait_log "$FL_TMP/agent-ag.log" registered || fail "the agent did not register"
cli agents accept ag
cli dispatch --bundle "$FL_TMP/b0.fbundle" --agent ag --wait=60s
expect_rc 0 "the first bundle"

prev=$FL_TMP/b0.fbundle
for ((t = 1; t <= TRIALS; t++)); do
	# One more migration per trial, slow enough to be killed inside.
	name=$(printf '2025010100%04d_crash_%02d' "$t" "$t")
	mkdir "$M/$name"
	printf 'SELECT pg_sleep(0.2);\nCREATE TABLE crash_%02d (id int);\nSELECT pg_sleep(0.2);\n' \
		"$t" >"$M/$name/migration.sql"
	"$FERRY" bundle create --migrations "$M" --project acme \
		--key "$FL_TMP/keys/release.key" --parent "$prev" \
		-o "$FL_TMP/b$t.fbundle" >/dev/null || fail "bundle $t"
	prev=$FL_TMP/b$t.fbundle
	cli dispatch --bundle "$prev" --agent ag --json
	expect_rc 0 "trial $t: dispatch"
	work=$(jq -r '.work[0].id' "$OUT")
	sleep "0.$(printf '%03d' $((RANDOM % 700)))"
	{ kill -9 "${AGENT_PID[ag]}" && wait "${AGENT_PID[ag]}"; } 2>/dev/null
	fleet_agent ag
	check "trial $t: the work item ends"
	state=
	for _ in $(seq 600); do
		state=$(state_sql "SELECT state FROM work_items WHERE work_id = '$work'")
		[ "$state" = done ] || [ "$state" = failed ] && break
		sleep 0.1
	done
	case $state in
	done | failed) ;;
	*) fail "trial $t: work item $work is '$state'" ;;
	esac
	expect_eq "$(state_sql "SELECT count(*) FROM reports WHERE work_id = '$work'")" 1 \
		"trial $t: one report"
	applied=$(psql -X -At "$(dburl db)" -c "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '$name' AND finished_at IS NOT NULL AND rolled_back_at IS NULL")
	table=$(psql -X -At "$(dburl db)" -c "SELECT count(*) FROM pg_class WHERE relname = 'crash_$(printf %02d "$t")'")
	expect_eq "$table" "$applied" "trial $t: the table exists exactly when recorded"
	outcome=$(state_sql "SELECT outcome FROM reports WHERE work_id = '$work'")
	if [ "$state" = done ]; then
		expect_eq "$applied" 1 "trial $t: done means applied"
	else
		echo "trial $t: failed: $(state_sql "SELECT detail FROM reports WHERE work_id = '$work'")"
	fi
	echo "trial $t: $state ($outcome)"
done
expect_eq "$(state_sql "SELECT count(*) FROM work_items WHERE state NOT IN ('done', 'failed')")" 0 \
	"no work item left open"
expect_eq "$(state_sql "SELECT count(*) FROM work_items w WHERE (SELECT count(*) FROM reports r WHERE r.work_id = w.work_id) <> 1")" \
	0 "exactly one report per work item"
echo "done: $(state_sql "SELECT count(*) FROM work_items WHERE state = 'done'"), failed: $(state_sql "SELECT count(*) FROM work_items WHERE state = 'failed'")"
fleet_done
