#!/bin/bash
# Ctrl-C (SIGINT) and SIGTERM during `ferry-agent apply`, against a real
# PostgreSQL: the running query is cancelled and rolled back, the failure is
# recorded (a row with finished_at NULL whose logs say it was interrupted),
# the migration lock is released, no backend is left, and the exit status is
# non-zero -- within a couple of seconds.
#
#  - transaction mode (CREATE TABLE, then pg_sleep(30)), SIGINT and SIGTERM:
#    the table is gone with the rollback;
#  - per-statement mode (-- ferry:no-transaction), SIGINT and SIGTERM:
#    statement 1 is kept, applied_steps_count = 1, progress failed at step 1;
#  - while waiting for the migration lock: nothing is touched;
#  - during the backoff between lock-timeout retries: no new attempt starts.
#
# usage: engine_signals_test.sh FERRY_AGENT
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
sandbox=$root/deploy/pg-sandbox
ferry=${1:?usage: engine_signals_test.sh FERRY_AGENT}
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
check() { echo "check: $*"; }

tmp=$(mktemp -d /tmp/ferry-it.XXXXXX) || exit 1
# The servers run as the postgres user when we are root: let it in.
chmod 755 "$tmp"
base=$tmp/sb
bg_pids=()
# reap PID: waits for a background process and forgets it; returns its status.
reap() {
	local p=$1 rc keep=() x
	wait "$p"
	rc=$?
	for x in "${bg_pids[@]}"; do
		[ "$x" = "$p" ] || keep+=("$x")
	done
	bg_pids=("${keep[@]}")
	return "$rc"
}
cleanup() {
	local p
	for p in "${bg_pids[@]}"; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	"$sandbox" destroy -d "$base" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

url=$("$sandbox" start -d "$base" 2>"$tmp/start.err")
rc=$?
if [ "$rc" -ne 0 ] || [ -z "$url" ]; then
	echo "FAIL: pg-sandbox start exited $rc:"
	sed 's/^/  /' "$tmp/start.err"
	exit 1
fi
server=${url%/postgres}

q() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}
newdb() {
	q "$url" "CREATE DATABASE $1" >/dev/null || return 1
	echo "$server/$1"
}
mig() {
	mkdir -p "$1/$2" && printf '%s\n' "$3" >"$1/$2/migration.sql"
}
wait_for() {
	local deadline=$(($(date +%s%N) + ${1%.*} * 1000000000))
	shift
	until "$@"; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}
secs_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}
between() {
	awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x >= lo && x <= hi) }'
}
query_is() {
	local got
	got=$(q "$1" "$2" 2>&1)
	[ "$got" = "$3" ]
}
# Succeeds when ferry-agent's backend on database $1 runs a query like $2.
ferry_runs() {
	local n
	n=$(q "$url" "SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'ferry-agent' AND datname = '$1'
		  AND state = 'active' AND query LIKE '%$2%'") || return 1
	[ "$n" -ge 1 ]
}
no_ferry_backend() {
	query_is "$url" "SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'ferry-agent' AND datname = '$1'" 0
}
# The migration lock is free: another session can take it at once.
lock_free() {
	query_is "$1" "SELECT pg_try_advisory_lock(72707369)" t
}
table_exists() {
	query_is "$1" "SELECT to_regclass('public.$2') IS NOT NULL" t
}

# stop_apply PID SIG LOGFILE: sends SIG to PID, waits up to 5 s for it to
# exit; sets STOP_RC (its exit status) and STOP_SECS (time to exit).
stop_apply() {
	local p=$1 sig=$2 s
	s=$EPOCHREALTIME
	kill "-$sig" "$p"
	if ! wait_for 5 eval "! kill -0 $p 2>/dev/null"; then
		fail "ferry-agent still running 5 s after SIG$sig; killing it"
		kill -9 "$p"
	fi
	reap "$p"
	STOP_RC=$?
	STOP_SECS=$(secs_since "$s")
}

# The checks every interrupted run must pass.
# after_signal DBNAME DBURL MIGRATION SIG
after_signal() {
	local dbname=$1 db=$2 m=$3 sig=$4
	check "SIG$sig: exits non-zero within 2.5 s (exit $STOP_RC after ${STOP_SECS}s)"
	[ "$STOP_RC" -ne 0 ] || fail "ferry-agent exited 0 after SIG$sig"
	between "$STOP_SECS" 0 2.5 || fail "ferry-agent took ${STOP_SECS}s to stop"
	check "SIG$sig: a failed row for $m whose logs say interrupted"
	query_is "$db" "SELECT count(*) FROM _prisma_migrations
		WHERE migration_name = '$m' AND finished_at IS NULL
		  AND rolled_back_at IS NULL AND logs ILIKE '%interrupt%'" 1 ||
		fail "history: $(q "$db" "SELECT migration_name, finished_at, logs FROM _prisma_migrations")"
	check "SIG$sig: no backend of ferry-agent remains"
	wait_for 5 no_ferry_backend "$dbname" ||
		fail "a ferry-agent backend is still there: $(q "$url" "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = 'ferry-agent'")"
	check "SIG$sig: the migration lock is free"
	lock_free "$db" || fail "pg_try_advisory_lock(72707369) returned false"
}

dir_tx=$tmp/mig_tx
mig "$dir_tx" 20240101000001_base "CREATE TABLE base (id int);"
mig "$dir_tx" 20240101000002_sleepy \
	"CREATE TABLE sleepy (id int);
INSERT INTO sleepy VALUES (1);
SELECT pg_sleep(30);"
mig "$dir_tx" 20240101000003_after "CREATE TABLE after_sleepy (id int);"

dir_ps=$tmp/mig_ps
mig "$dir_ps" 20240101000001_ps "-- ferry:no-transaction
CREATE TABLE kept (id int);
SELECT pg_sleep(30);
CREATE TABLE never (id int);"

n=0
for sig in INT TERM; do
	n=$((n + 1))
	echo "== SIG$sig during a transaction-mode migration"
	dbname=sig_tx$n
	db=$(newdb "$dbname") || exit 1
	"$ferry" apply --migrations "$dir_tx" --database-url "$db" \
		>"$tmp/tx$n.out" 2>"$tmp/tx$n.err" &
	p=$!
	bg_pids+=("$p")
	wait_for 10 ferry_runs "$dbname" 'pg_sleep(30)' ||
		fail "ferry-agent never reached pg_sleep(30)"
	sleep 0.7
	stop_apply "$p" "$sig"
	after_signal "$dbname" "$db" 20240101000002_sleepy "$sig"
	check "SIG$sig: rolled back: no table sleepy; base kept; nothing after"
	table_exists "$db" sleepy && fail "table sleepy exists: not rolled back"
	table_exists "$db" base || fail "table base (the migration before) is gone"
	table_exists "$db" after_sleepy && fail "the migration after ran"
	query_is "$db" "SELECT count(*) FROM _prisma_migrations
		WHERE migration_name = '20240101000003_after'" 0 ||
		fail "20240101000003_after has a history row"
	grep -qi interrupt "$tmp/tx$n.err" ||
		fail "stderr does not say interrupted: $(cat "$tmp/tx$n.err")"
done

check "the checks above can fail: a live table and a held lock are seen"
table_exists "$db" base || fail "table_exists missed table base"
psql -X -q -d "$db" -c "SELECT pg_advisory_lock(72707369); SELECT pg_sleep(5)" \
	>/dev/null 2>&1 &
holder=$!
bg_pids+=("$holder")
wait_for 5 eval "! lock_free '$db'" || fail "lock_free missed a held lock"
kill "$holder"
q "$url" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE datname = '$dbname' AND query LIKE '%pg_sleep(5)%'
	  AND pid <> pg_backend_pid()" >/dev/null
reap "$holder"

n=0
for sig in INT TERM; do
	n=$((n + 1))
	echo "== SIG$sig during a per-statement migration"
	dbname=sig_ps$n
	db=$(newdb "$dbname") || exit 1
	"$ferry" apply --migrations "$dir_ps" --database-url "$db" \
		>"$tmp/ps$n.out" 2>"$tmp/ps$n.err" &
	p=$!
	bg_pids+=("$p")
	wait_for 10 ferry_runs "$dbname" 'pg_sleep(30)' ||
		fail "ferry-agent never reached pg_sleep(30)"
	sleep 0.7
	stop_apply "$p" "$sig"
	after_signal "$dbname" "$db" 20240101000001_ps "$sig"
	check "SIG$sig: statement 1 kept, applied_steps_count 1, progress failed at step 1"
	table_exists "$db" kept || fail "table kept (statement 1) is gone"
	table_exists "$db" never && fail "statement 3 ran"
	query_is "$db" "SELECT applied_steps_count FROM _prisma_migrations
		WHERE migration_name = '20240101000001_ps'" 1 ||
		fail "applied_steps_count is '$(q "$db" "SELECT applied_steps_count FROM _prisma_migrations")'"
	query_is "$db" "SELECT p.step || ':' || p.state || ':' || p.nsteps
		FROM ferry.statement_progress p JOIN _prisma_migrations m
		  ON m.id = p.migration_id
		WHERE m.migration_name = '20240101000001_ps'" 1:failed:3 ||
		fail "progress is '$(q "$db" "SELECT step, state, nsteps FROM ferry.statement_progress")', expected step 1 failed of 3"
done

echo "== SIGINT while waiting for the migration lock"
dbname=sig_lock
db=$(newdb "$dbname") || exit 1
psql -X -q -d "$db?application_name=holder" \
	-c "SELECT pg_advisory_lock(72707369); SELECT pg_sleep(60)" >/dev/null 2>&1 &
holder=$!
bg_pids+=("$holder")
holder_has_lock() {
	query_is "$db" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a
		ON a.pid = l.pid WHERE l.locktype = 'advisory'
		AND l.objid = 72707369 AND l.granted AND a.application_name = 'holder'" 1
}
wait_for 10 holder_has_lock || fail "the holder never took the lock"
"$ferry" apply --migrations "$dir_tx" --database-url "$db" --lock-wait 30s \
	>"$tmp/lk.out" 2>"$tmp/lk.err" &
p=$!
bg_pids+=("$p")
ferry_waits() { ferry_runs "$dbname" pg_advisory_lock; }
wait_for 10 ferry_waits || fail "ferry-agent never waited for the lock"
sleep 0.5
stop_apply "$p" INT
check "exits non-zero within 2.5 s (exit $STOP_RC after ${STOP_SECS}s)"
[ "$STOP_RC" -ne 0 ] || fail "ferry-agent exited 0"
between "$STOP_SECS" 0 2.5 || fail "ferry-agent took ${STOP_SECS}s to stop"
check "nothing was touched; no ferry-agent backend left"
query_is "$db" "SELECT to_regclass('_prisma_migrations') IS NULL
	AND to_regclass('base') IS NULL" t || fail "apply changed the database"
wait_for 5 no_ferry_backend "$dbname" || fail "a ferry-agent backend is left"
q "$db" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE application_name = 'holder'" >/dev/null
reap "$holder"

echo "== SIGINT during the backoff between lock-timeout retries"
# The blocker goes away right after the signal: a new attempt would now
# succeed, so if one is made the migration gets applied after Ctrl-C.
dbname=sig_backoff
db=$(newdb "$dbname") || exit 1
dir_bo=$tmp/mig_bo
mig "$dir_bo" 20240101000001_t "CREATE TABLE t (id int);"
"$ferry" apply --migrations "$dir_bo" --database-url "$db" >/dev/null 2>&1 ||
	fail "setup apply failed"
mig "$dir_bo" 20240101000002_add_x "ALTER TABLE t ADD COLUMN x int;"
psql -X -q -d "$db?application_name=blocker" \
	-c "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT" \
	>/dev/null 2>&1 &
blocker=$!
bg_pids+=("$blocker")
blocker_locks() {
	query_is "$db" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a
		ON a.pid = l.pid WHERE l.relation = 't'::regclass AND l.granted
		AND l.mode = 'AccessExclusiveLock' AND a.application_name = 'blocker'" 1
}
wait_for 10 blocker_locks || fail "the blocker never locked t"
"$ferry" apply --migrations "$dir_bo" --database-url "$db" \
	--lock-timeout 100ms --max-retries 10 >"$tmp/bo.out" 2>"$tmp/bo.err" &
p=$!
bg_pids+=("$p")
# After retry 3 is logged, attempt 4 times out within 100 ms; then the
# backoff is 2-4 s.
third_retry() { grep -q 'retry=3/10' "$tmp/bo.err"; }
wait_for 15 third_retry || fail "no third retry logged: $(cat "$tmp/bo.err")"
sleep 0.4
q "$db" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE application_name = 'blocker'" >/dev/null
reap "$blocker"
stop_apply "$p" INT
after_signal "$dbname" "$db" 20240101000002_add_x INT
check "no attempt after the signal: column x does not exist"
query_is "$db" "SELECT count(*) FROM information_schema.columns
	WHERE table_name = 't' AND column_name = 'x'" 0 ||
	fail "column t.x exists: the migration was applied after Ctrl-C ($(cat "$tmp/bo.out"))"

# Under -DFERRY_SANITIZE=ON a report may leave the exit status as expected
# (a leak found at exit turns 3 into 23, still "non-zero"): look for them.
check "no sanitizer report in ferry-agent's output"
if grep -lE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' \
	"$tmp"/*.err "$tmp"/*.out >/dev/null 2>&1; then
	fail "sanitizer reports:"
	grep -hE -A5 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' \
		"$tmp"/*.err "$tmp"/*.out | head -40 | sed 's/^/  /'
fi

echo "$fails failures"
[ "$fails" -eq 0 ]
