#!/bin/bash
# The apply engine's locking, against a real PostgreSQL:
#  (a) two `ferry-agent apply` started at once on one database serialize on
#      the migration lock: both succeed, each migration is applied once, and
#      their work does not overlap in time;
#  (b) a lock held by someone else (as Prisma holds it: a session-level
#      pg_advisory_lock(72707369)) makes `apply --lock-wait 1s` give up with
#      exit 3 after about a second, naming the holder's pid and
#      application_name; once released, apply succeeds;
#  (c) a lock timeout (55P03) on a table another transaction holds is
#      retried with backoff, each retry logged with the blocker's pid; the
#      migration applies once the blocker commits, and fails (exit 1, failure
#      recorded) when it never does;
#  (d) CREATE INDEX CONCURRENTLY behind an open transaction times out, is
#      cleaned up and retried until it succeeds: one valid index, no
#      "already exists".
#
# usage: engine_locks_test.sh FERRY_AGENT
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
sandbox=$root/deploy/pg-sandbox
ferry=${1:?usage: engine_locks_test.sh FERRY_AGENT}
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
	local p=$1 rc keep=()
	wait "$p"
	rc=$?
	for q in "${bg_pids[@]}"; do
		[ "$q" = "$p" ] || keep+=("$q")
	done
	bg_pids=("${keep[@]}")
	return "$rc"
}
cleanup() {
	local p
	for p in "${bg_pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${bg_pids[@]}"; do
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

# q URL SQL: runs SQL, prints rows unaligned with '|' between fields.
q() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

# newdb NAME: creates database NAME, prints its URL.
newdb() {
	q "$url" "CREATE DATABASE $1" >/dev/null || return 1
	echo "$server/$1"
}

# mig DIR NAME SQL: writes DIR/NAME/migration.sql.
mig() {
	mkdir -p "$1/$2" && printf '%s\n' "$3" >"$1/$2/migration.sql"
}

# wait_for SECONDS CMD...: polls CMD every 50 ms until it succeeds.
wait_for() {
	local deadline=$(($(date +%s%N) + ${1%.*} * 1000000000))
	shift
	until "$@"; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# secs_since START: seconds (3 decimals) since the $EPOCHREALTIME START.
secs_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}

# between X LO HI: succeeds if LO <= X <= HI.
between() {
	awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x >= lo && x <= hi) }'
}

# query_is URL SQL EXPECTED: the query's output equals EXPECTED.
query_is() {
	local got
	got=$(q "$1" "$2" 2>&1)
	[ "$got" = "$3" ]
}

# Pairs of history rows of table $2 whose [started_at, finished_at) overlap
# in time (an unfinished row extends to infinity).
overlaps() {
	q "$1" "SELECT count(*) FROM $2 a JOIN $2 b ON a.id < b.id
		AND tstzrange(a.started_at, a.finished_at)
		 && tstzrange(b.started_at, b.finished_at)"
}

# The backend pid of the session whose application_name is $2.
pid_of_app() {
	q "$1" "SELECT pid FROM pg_stat_activity
		WHERE application_name = '$2' AND datname = current_database()"
}

# Succeeds when the session named $2 holds the advisory lock 72707369.
holds_advisory() {
	local n
	n=$(q "$1" "SELECT count(*) FROM pg_locks l
		JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.objid = 72707369
		  AND l.granted AND a.application_name = '$2'") || return 1
	[ "$n" = 1 ]
}

# Succeeds when the session named $2 holds a granted $3 lock on table $4.
holds_table_lock() {
	local n
	n=$(q "$1" "SELECT count(*) FROM pg_locks l
		JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.relation = '$4'::regclass AND l.mode = '$3'
		  AND l.granted AND a.application_name = '$2'") || return 1
	[ "$n" = 1 ]
}

# Succeeds when the session named $2 holds a snapshot (its xmin is set).
has_snapshot() {
	local n
	n=$(q "$1" "SELECT count(*) FROM pg_stat_activity
		WHERE application_name = '$2' AND backend_xmin IS NOT NULL
		  AND state = 'active'") || return 1
	[ "$n" = 1 ]
}

# Succeeds when no backend of ferry-agent is left on database $2.
no_ferry_backend() {
	query_is "$url" "SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'ferry-agent' AND datname = '$1'" 0
}

# ---------------------------------------------------------------------
echo "== (a) two applies started at once serialize on the migration lock"
db_a=$(newdb lock_a) || exit 1
dir_a=$tmp/mig_a
for i in 1 2 3 4; do
	mig "$dir_a" "2024010100000${i}_slow$i" \
		"CREATE TABLE slow$i (id int); SELECT pg_sleep(0.5);"
done
run_timed() { # tag, then apply's arguments
	local tag=$1 s rc
	shift
	s=$EPOCHREALTIME
	"$ferry" apply "$@" >"$tmp/$tag.out" 2>"$tmp/$tag.err"
	rc=$?
	echo "$rc $s $EPOCHREALTIME" >"$tmp/$tag.meta"
}
run_timed a1 --migrations "$dir_a" --database-url "$db_a" &
p1=$!
run_timed a2 --migrations "$dir_a" --database-url "$db_a" &
p2=$!
bg_pids+=("$p1" "$p2")
# While they run, one of them must be seen waiting for lock 72707369.
saw_wait=0
while kill -0 "$p1" 2>/dev/null || kill -0 "$p2" 2>/dev/null; do
	n=$(q "$db_a" "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND objid = 72707369 AND NOT granted" 2>/dev/null)
	[ "${n:-0}" -ge 1 ] && saw_wait=1
	sleep 0.1
done
reap "$p1"
reap "$p2"
read -r rc1 s1 e1 <"$tmp/a1.meta"
read -r rc2 s2 e2 <"$tmp/a2.meta"

check "both exit 0"
[ "$rc1" = 0 ] || fail "first apply exited $rc1: $(cat "$tmp/a1.err")"
[ "$rc2" = 0 ] || fail "second apply exited $rc2: $(cat "$tmp/a2.err")"

check "the second apply waited for the lock (seen in pg_locks)"
[ "$saw_wait" = 1 ] || fail "no apply was ever seen waiting for lock 72707369"

check "every migration has exactly one row, and it is finished"
got=$(q "$db_a" "SELECT migration_name || ':' || count(*) || ':' ||
	count(finished_at) FROM _prisma_migrations
	GROUP BY migration_name ORDER BY migration_name" |
	tr '\n' ' ')
want="20240101000001_slow1:1:1 20240101000002_slow2:1:1 20240101000003_slow3:1:1 20240101000004_slow4:1:1 "
[ "$got" = "$want" ] || fail "history rows: '$got', expected '$want'"

check "each migration was applied by exactly one of the two"
n1=$(grep -c '^applied ' "$tmp/a1.out")
n2=$(grep -c '^applied ' "$tmp/a2.out")
dup=$(cat "$tmp/a1.out" "$tmp/a2.out" | awk '/^applied /{print $2}' |
	sort | uniq -d)
[ $((n1 + n2)) = 4 ] && [ -z "$dup" ] ||
	fail "applied lines: $n1 + $n2 (duplicates: '$dup')"

check "no two history rows overlap in time"
n=$(overlaps "$db_a" _prisma_migrations)
[ "$n" = 0 ] || fail "$n pairs of history rows overlap in time"

check "the one that found nothing to do ended after the last migration finished"
last=$(q "$db_a" "SELECT extract(epoch FROM max(finished_at)) FROM _prisma_migrations")
if [ "$n1" = 0 ] || [ "$n2" = 0 ]; then
	if [ "$n1" = 0 ]; then idle_end=$e1; idle=a1; else idle_end=$e2; idle=a2; fi
	grep -q 'nothing to apply' "$tmp/$idle.out" ||
		fail "the idle apply did not say 'nothing to apply': $(cat "$tmp/$idle.out")"
	between "$idle_end" "$last" 1e12 ||
		fail "the idle apply ended at $idle_end, before the last migration finished ($last)"
fi

check "the overlap check finds overlapping rows"
q "$db_a" "CREATE TABLE fake_history AS SELECT * FROM _prisma_migrations;
	UPDATE fake_history SET finished_at = finished_at + interval '10 s'
	WHERE migration_name LIKE '%slow2'" >/dev/null
n=$(overlaps "$db_a" fake_history)
[ "$n" -ge 1 ] 2>/dev/null || fail "overlap check missed an overlap ('$n')"

# ---------------------------------------------------------------------
echo "== (b) a lock held by another session (as Prisma holds it)"
db_b=$(newdb lock_b) || exit 1
dir_b=$tmp/mig_b
mig "$dir_b" 20240101000001_one "CREATE TABLE one (id int);"
mkfifo "$tmp/holder.fifo"
psql -X -q -v ON_ERROR_STOP=1 -d "$db_b?application_name=prisma_sim" \
	<"$tmp/holder.fifo" >"$tmp/holder.out" 2>&1 &
holder=$!
bg_pids+=("$holder")
exec 7>"$tmp/holder.fifo"
echo "SELECT pg_advisory_lock(72707369);" >&7
wait_for 10 holds_advisory "$db_b" prisma_sim ||
	fail "the psql session never got the advisory lock"
hpid=$(pid_of_app "$db_b" prisma_sim)

start=$EPOCHREALTIME
"$ferry" apply --migrations "$dir_b" --database-url "$db_b" --lock-wait 1s \
	>"$tmp/b.out" 2>"$tmp/b.err"
rc=$?
took=$(secs_since "$start")
check "apply --lock-wait 1s exits 3 after 1-3 s (exit $rc after ${took}s)"
[ "$rc" = 3 ] || fail "apply exited $rc, expected 3: $(cat "$tmp/b.err")"
between "$took" 0.9 3 || fail "apply gave up after ${took}s, expected 1-3 s"

check "the error names the holder: pid $hpid, application_name prisma_sim"
grep -q "pid $hpid\b" "$tmp/b.err" ||
	fail "error does not name pid $hpid: $(cat "$tmp/b.err")"
grep -q "application_name 'prisma_sim'" "$tmp/b.err" ||
	fail "error does not name application_name prisma_sim: $(cat "$tmp/b.err")"
grep -q "pid $((hpid + 1))\b" "$tmp/b.err" &&
	fail "the pid check matched a wrong pid"

check "without the lock, nothing was touched"
query_is "$db_b" "SELECT to_regclass('_prisma_migrations') IS NULL
	AND to_regclass('one') IS NULL" t ||
	fail "apply changed the database without holding the lock"

check "after the holder releases the lock, apply succeeds"
echo "SELECT pg_advisory_unlock(72707369);" >&7
wait_for 10 eval '! holds_advisory "$db_b" prisma_sim' ||
	fail "the psql session did not release the lock"
"$ferry" apply --migrations "$dir_b" --database-url "$db_b" --lock-wait 1s \
	>"$tmp/b2.out" 2>"$tmp/b2.err"
rc=$?
[ "$rc" = 0 ] || fail "apply after release exited $rc: $(cat "$tmp/b2.err")"
query_is "$db_b" "SELECT count(*) FROM _prisma_migrations
	WHERE migration_name = '20240101000001_one' AND finished_at IS NOT NULL" 1 ||
	fail "20240101000001_one is not recorded as applied"
exec 7>&-
reap "$holder" || fail "the lock-holding psql failed: $(cat "$tmp/holder.out")"

# ---------------------------------------------------------------------
echo "== (c) lock timeout: retried with backoff, blocker named"
db_c=$(newdb lock_c) || exit 1
dir_c1=$tmp/mig_c1
mig "$dir_c1" 20240101000001_t \
	"CREATE TABLE t (id int, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;"
"$ferry" apply --migrations "$dir_c1" --database-url "$db_c" >/dev/null 2>"$tmp/c0.err" ||
	fail "setup apply failed: $(cat "$tmp/c0.err")"
dir_c2=$tmp/mig_c2
cp -r "$dir_c1" "$dir_c2"
mig "$dir_c2" 20240101000002_add_x "ALTER TABLE t ADD COLUMN x int;"

psql -X -q -v ON_ERROR_STOP=1 -d "$db_c?application_name=blocker_c" -c \
	"BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT" \
	>"$tmp/blocker_c.out" 2>&1 &
blocker=$!
bg_pids+=("$blocker")
wait_for 10 holds_table_lock "$db_c" blocker_c AccessExclusiveLock t ||
	fail "the blocker never locked t"
bpid=$(pid_of_app "$db_c" blocker_c)
start=$EPOCHREALTIME
"$ferry" apply --migrations "$dir_c2" --database-url "$db_c" \
	--lock-timeout 300ms --max-retries 8 >"$tmp/c.out" 2>"$tmp/c.err"
rc=$?
took=$(secs_since "$start")
reap "$blocker" || fail "the blocker's transaction failed: $(cat "$tmp/blocker_c.out")"
check "apply succeeds once the blocker commits (exit $rc after ${took}s)"
[ "$rc" = 0 ] || fail "apply exited $rc: $(cat "$tmp/c.err")"
between "$took" 1 30 ||
	fail "apply took ${took}s, it cannot have waited for the 1.5 s blocker"

check "a retry warning names the blocker, pid $bpid"
grep -E "level=warn .*retry" "$tmp/c.err" | grep -q "blocked_by=.*pid $bpid\b" ||
	fail "no retry warning names pid $bpid: $(cat "$tmp/c.err")"

check "column x exists; the migration has one finished row and no failed one"
query_is "$db_c" "SELECT count(*) FROM information_schema.columns
	WHERE table_name = 't' AND column_name = 'x'" 1 || fail "column t.x is missing"
query_is "$db_c" "SELECT count(*), count(finished_at) FROM _prisma_migrations
	WHERE migration_name = '20240101000002_add_x'" "1|1" ||
	fail "history for 20240101000002_add_x: $(q "$db_c" "SELECT count(*), count(finished_at) FROM _prisma_migrations WHERE migration_name = '20240101000002_add_x'")"

echo "-- (c') the blocker never releases: retries run out"
dir_c3=$tmp/mig_c3
cp -r "$dir_c2" "$dir_c3"
mig "$dir_c3" 20240101000003_add_y "ALTER TABLE t ADD COLUMN y int;"
psql -X -q -d "$db_c?application_name=blocker_c2" -c \
	"BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT" \
	>/dev/null 2>&1 &
blocker=$!
bg_pids+=("$blocker")
wait_for 10 holds_table_lock "$db_c" blocker_c2 AccessExclusiveLock t ||
	fail "the second blocker never locked t"
bpid=$(pid_of_app "$db_c" blocker_c2)
# Backoff doubles from 500 ms (capped at 30 s): 3 retries keep this short.
start=$EPOCHREALTIME
"$ferry" apply --migrations "$dir_c3" --database-url "$db_c" \
	--lock-timeout 300ms --max-retries 3 >"$tmp/c3.out" 2>"$tmp/c3.err"
rc=$?
took=$(secs_since "$start")
check "apply fails with exit 1 after 3 retries (exit $rc after ${took}s)"
[ "$rc" = 1 ] || fail "apply exited $rc, expected 1: $(cat "$tmp/c3.err")"
n=$(grep -cE "level=warn .*retry=[0-9]+/3 " "$tmp/c3.err")
[ "$n" = 3 ] || fail "expected 3 retry warnings, found $n: $(cat "$tmp/c3.err")"
grep -q "retry=3/3 .*blocked_by=.*pid $bpid\b" "$tmp/c3.err" ||
	fail "the last retry warning does not name pid $bpid"
grep -q "20240101000003_add_y.*55P03" "$tmp/c3.err" ||
	fail "the error does not name the migration and SQLSTATE 55P03"

check "the failure is recorded and nothing of it applied"
query_is "$db_c" "SELECT count(*) FROM _prisma_migrations
	WHERE migration_name = '20240101000003_add_y' AND finished_at IS NULL
	  AND rolled_back_at IS NULL AND logs LIKE '%lock timeout%55P03%'" 1 ||
	fail "no failed row with a lock-timeout log for 20240101000003_add_y"
query_is "$db_c" "SELECT count(*) FROM information_schema.columns
	WHERE table_name = 't' AND column_name = 'y'" 0 ||
	fail "column t.y exists although the migration failed"
q "$db_c" "SELECT pg_terminate_backend($bpid)" >/dev/null
reap "$blocker"

check "after resolve --rolled-back, it applies once the table is free"
"$ferry" resolve --rolled-back 20240101000003_add_y --migrations "$dir_c3" \
	--database-url "$db_c" >/dev/null 2>"$tmp/c4.err" ||
	fail "resolve --rolled-back failed: $(cat "$tmp/c4.err")"
"$ferry" apply --migrations "$dir_c3" --database-url "$db_c" \
	--lock-timeout 300ms >/dev/null 2>"$tmp/c5.err" ||
	fail "apply after resolve failed: $(cat "$tmp/c5.err")"
query_is "$db_c" "SELECT count(*) FROM information_schema.columns
	WHERE table_name = 't' AND column_name = 'y'" 1 || fail "column t.y is missing"

# ---------------------------------------------------------------------
echo "== (d) CREATE INDEX CONCURRENTLY behind an open transaction"
db_d=$(newdb lock_d) || exit 1
dir_d1=$tmp/mig_d1
mig "$dir_d1" 20240101000001_t \
	"CREATE TABLE t (id int, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 5000) g;"
"$ferry" apply --migrations "$dir_d1" --database-url "$db_d" >/dev/null 2>"$tmp/d0.err" ||
	fail "setup apply failed: $(cat "$tmp/d0.err")"
dir_d2=$tmp/mig_d2
cp -r "$dir_d1" "$dir_d2"
mig "$dir_d2" 20240101000002_t_v "CREATE INDEX CONCURRENTLY t_v ON t(v);"

# A transaction with a snapshot: CREATE INDEX CONCURRENTLY waits for it.
psql -X -q -v ON_ERROR_STOP=1 -d "$db_d?application_name=blocker_d" -c \
	"BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t; SELECT pg_sleep(2.5); COMMIT" \
	>"$tmp/blocker_d.out" 2>&1 &
blocker=$!
bg_pids+=("$blocker")
wait_for 10 has_snapshot "$db_d" blocker_d || fail "the blocker never started"
bpid=$(pid_of_app "$db_d" blocker_d)
start=$EPOCHREALTIME
"$ferry" apply --migrations "$dir_d2" --database-url "$db_d" \
	--lock-timeout 300ms --max-retries 10 >"$tmp/d.out" 2>"$tmp/d.err"
rc=$?
took=$(secs_since "$start")
reap "$blocker" || fail "the blocker's transaction failed: $(cat "$tmp/blocker_d.out")"
check "apply succeeds after retrying (exit $rc after ${took}s)"
[ "$rc" = 0 ] || fail "apply exited $rc: $(cat "$tmp/d.out" "$tmp/d.err")"
grep -qE "level=warn .*retry=1/10" "$tmp/d.err" ||
	fail "no retry was logged: $(cat "$tmp/d.err")"

check "no 42P07 / 'already exists' anywhere in the output"
if grep -qiE '42P07|already exists' "$tmp/d.out" "$tmp/d.err"; then
	fail "output mentions an existing relation:"
	grep -hiE '42P07|already exists' "$tmp/d.out" "$tmp/d.err" | sed 's/^/  /'
fi

check "index t_v exists, is valid and ready, and is the only index on t"
query_is "$db_d" "SELECT i.indisvalid AND i.indisready FROM pg_index i
	JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 't_v'" t ||
	fail "t_v missing or invalid: '$(q "$db_d" "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 't'::regclass")'"
query_is "$db_d" "SELECT string_agg(c.relname, ',') FROM pg_index i
	JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 't'::regclass" t_v ||
	fail "indexes on t: '$(q "$db_d" "SELECT string_agg(c.relname || '(' || i.indisvalid || ')', ',') FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 't'::regclass")'"

check "the migration has one finished row, 1 of 1 statements done"
query_is "$db_d" "SELECT count(*), count(finished_at), max(applied_steps_count)
	FROM _prisma_migrations WHERE migration_name = '20240101000002_t_v'" "1|1|1" ||
	fail "history for 20240101000002_t_v: $(q "$db_d" "SELECT migration_name, finished_at, applied_steps_count, logs FROM _prisma_migrations")"

check "the index check fails on an invalid index"
q "$db_d" "CREATE TABLE u (v int); CREATE UNIQUE INDEX u_v ON u(v);
	UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'u_v'::regclass" >/dev/null
query_is "$db_d" "SELECT i.indisvalid AND i.indisready FROM pg_index i
	JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'u_v'" t &&
	fail "the validity check accepted an invalid index"

# ---------------------------------------------------------------------
check "no ferry-agent backend is left"
for d in lock_a lock_b lock_c lock_d; do
	wait_for 5 no_ferry_backend "$d" || fail "a ferry-agent backend is left on $d"
done

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
