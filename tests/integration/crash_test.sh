#!/bin/bash
# Crash safety of `ferry-agent apply`: kill -9 at many points, then check
# from the catalogs alone (never through ferry-agent) that nothing is
# half-applied or lost, and that a second run finishes the job.
#
# Each trial gets a fresh database with the migrations of crashlib.sh (18:
# 15 in transaction mode, 3 statement by statement), starts apply, kills it
# with SIGKILL after a delay spread over the whole apply time (measured
# first), waits until the orphaned backend has ended, then checks:
#  - every transaction-mode migration is either fully there with exactly one
#    finished row, or not there at all with no row (a crash mid-transaction
#    leaves no row);
#  - every per-statement migration's tables are exactly statements
#    1..applied_steps_count, or one more when its progress says that
#    statement was started (in doubt);
#  - nothing after the first unfinished migration has any effect;
#  - apply again either completes (exit 0) or, after a per-statement
#    migration was cut, refuses (exit 1) naming it (and the statement in
#    doubt); `apply --resume NAME [--in-doubt=done|redo]`, chosen from what
#    the catalog shows, then completes; the end state is fully applied with
#    one finished row per migration.
#
# The summary sorts the kills by what the catalog shows (with the kill time
# and probe.started): inside a transaction-mode migration (rolled back: the
# server had begun it and it left nothing; or committed after the kill: the
# server finished the transaction it had already received), inside a
# per-statement migration (its row is unfinished; in doubt or not), between
# migrations (or before the first), after completion.
#
# usage: crash_test.sh FERRY_AGENT
# environment: FERRY_CRASH_TRIALS (default 60), FERRY_CRASH_JOBS (trials
# run at once, default 3), FERRY_CRASH_SEED (random seed).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sandbox=$root/deploy/pg-sandbox
ferry=${1:?usage: crash_test.sh FERRY_AGENT}
trials=${FERRY_CRASH_TRIALS:-60}
jobs=${FERRY_CRASH_JOBS:-3}
seed=${FERRY_CRASH_SEED:-$(( $(date +%s) % 100000 ))}
. "$here/crashlib.sh" || exit 1

fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
check() { echo "check: $*"; }
t_begin=$EPOCHREALTIME

tmp=$(mktemp -d /tmp/ferry-it.XXXXXX) || exit 1
# The servers run as the postgres user when we are root: let it in.
chmod 755 "$tmp"
base=$tmp/sb
workers=()
cleanup() {
	local p
	for p in "${workers[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${workers[@]}"; do
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
secs_between() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'
}
gt() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'
}
# state DB OUT: the catalog state of database DB (crash_state_sql) into OUT.
state() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$server/$1" -f "$tmp/state.sql" \
		>"$2" 2>"$2.err"
}
# fresh_db NAME: creates database NAME with the probe schema.
fresh_db() {
	q "$url" "CREATE DATABASE $1" >/dev/null &&
		psql -X -q -v ON_ERROR_STOP=1 -d "$server/$1" \
			-c "$CRASH_SETUP_SQL" >/dev/null
}
ferry_backends() {
	q "$url" "SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'ferry-agent' AND datname = '$1'"
}

migs=$tmp/migrations
crash_make_migrations "$migs" || exit 1
crash_state_sql >"$tmp/state.sql"

# ---------------------------------------------------------------------
echo "== calibration: full apply time (seed $seed, $trials trials, $jobs at once)"
# As many applies at once as the trials run, so the timing matches theirs.
calib() {
	local c=$1 s rc
	s=$EPOCHREALTIME
	"$ferry" apply --migrations "$migs" --database-url "$server/calib$c" \
		>"$tmp/calib$c.out" 2>"$tmp/calib$c.err"
	rc=$?
	echo "$rc $s $EPOCHREALTIME" >"$tmp/calib$c.meta"
}
cal_T=0
cal_pids=()
for ((c = 1; c <= jobs; c++)); do
	fresh_db calib$c || exit 1
done
for ((c = 1; c <= jobs; c++)); do
	calib $c &
	cal_pids+=($!)
done
wait "${cal_pids[@]}"
for ((c = 1; c <= jobs; c++)); do
	read -r rc s e <"$tmp/calib$c.meta"
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: a plain apply exited $rc:"
		sed 's/^/  /' "$tmp/calib$c.err"
		exit 1
	fi
	t=$(secs_between "$s" "$e")
	gt "$t" "$cal_T" && cal_T=$t
	[ "$c" = 1 ] && s1=$s
done
# Where the two long migrations ran, relative to the start.
read -r A0 A1 B0 B1 < <(q "$server/calib1" "SELECT
	string_agg((extract(epoch FROM started_at) - $s1) || ' ' ||
	           (extract(epoch FROM finished_at) - $s1), ' '
	           ORDER BY started_at)
	FROM _prisma_migrations WHERE migration_name IN
	('${CRASH_NAME[CRASH_LONG]}', '${CRASH_NAME[CRASH_LONG_PS]}')")
printf 'full apply: %.3fs; the long migrations run at %.2f-%.2fs and %.2f-%.2fs\n' \
	"$cal_T" "$A0" "$A1" "$B0" "$B1"

check "the checker accepts a fully applied database"
state calib1 "$tmp/calib.state" || { echo "FAIL: state query: $(cat "$tmp/calib.state.err")"; exit 1; }
crash_analyze "$tmp/calib.state" >"$tmp/calib.bad"
[ "$CA_BAD" = 0 ] && [ "$CA_FIRST" = 0 ] ||
	fail "fully applied database judged bad (first unfinished $CA_FIRST): $(cat "$tmp/calib.bad")"

# tampered TITLE EXPECTED_REGEX SQL: the checker must report SQL's damage
# (applied inside a transaction that is rolled back).
tampered() {
	local title=$1 re=$2 sql=$3 out=$tmp/tamper.state
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$server/calib1" \
		-c "BEGIN; $sql" -f "$tmp/state.sql" -c "ROLLBACK" >"$out" 2>"$out.err" ||
		{ fail "tamper '$title': $(cat "$out.err")"; return; }
	crash_analyze "$out" >"$tmp/tamper.bad"
	if [ "$CA_BAD" = 0 ]; then
		fail "the checker missed: $title"
	elif ! grep -qE "$re" "$tmp/tamper.bad"; then
		fail "the checker saw '$title' but said: $(cat "$tmp/tamper.bad")"
	fi
}
N5=${CRASH_NAME[5]} N4=${CRASH_NAME[4]} N3=${CRASH_NAME[3]}
check "the checker sees damage"
tampered "objects without a finished row" "$N5 has no finished row" \
	"DELETE FROM _prisma_migrations WHERE migration_name = '$N5';"
tampered "a half-applied transaction" "${CRASH_NAME[6]} is recorded as finished" \
	"DROP TABLE tx06_b;"
tampered "a migration applied twice" "${CRASH_NAME[8]} is recorded as finished" \
	"INSERT INTO ledger VALUES (8);"
tampered "two finished rows" "${CRASH_NAME[9]} has 2 finished rows" \
	"INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name)
	 SELECT 'x', checksum, now(), migration_name FROM _prisma_migrations
	 WHERE migration_name = '${CRASH_NAME[9]}';"
tampered "an unfinished row of a transaction-mode migration" "must leave no row" \
	"DELETE FROM _prisma_migrations WHERE migration_name = '${CRASH_NAME[18]}';
	 DROP TABLE tx18_b, tx18_a; DELETE FROM ledger WHERE mig = 18;
	 ALTER TABLE ledger DROP COLUMN c18;
	 INSERT INTO _prisma_migrations (id, checksum, migration_name)
	 VALUES ('y', 'z', '${CRASH_NAME[18]}');"
tampered "a per-statement migration with more tables than statements done" \
	"$N4: tables 1111, expected 1100" \
	"UPDATE _prisma_migrations SET finished_at = NULL, applied_steps_count = 2
	 WHERE migration_name = '$N4';
	 UPDATE ferry.statement_progress SET step = 1, state = 'done'
	 WHERE migration_name = '$N4';"
tampered "effects after the first unfinished migration" \
	"has effects .*although $N3" \
	"DELETE FROM _prisma_migrations WHERE migration_name = '$N3';
	 DROP TABLE tx03_b, tx03_a; DELETE FROM ledger WHERE mig = 3;
	 ALTER TABLE ledger DROP COLUMN c03;"

# ---------------------------------------------------------------------
# Kill delays: stratified over [0, 1.05 T]; each of the two long
# migrations' windows gets a fifth of the trials and the rest of the time the
# other three fifths, so that the short migrations and the gaps between them
# are hit often too.
RANDOM=$seed
H=$(awk -v t="$cal_T" 'BEGIN { printf "%.4f", t * 1.05 }')
delays=()
for ((i = 0; i < trials; i++)); do
	delays[i]=$(awk -v i="$i" -v n="$trials" -v r="$RANDOM" \
		-v bounds="0 $A0 $A1 $B0 $B1 $H" 'BEGIN {
		split(bounds, b, " ")
		short = (b[2] - b[1]) + (b[4] - b[3]) + (b[6] - b[5])
		for (k = 1; k <= 5; k++)
			w[k] = (k == 2 || k == 4) ? 0.2 : 0.6 * (b[k + 1] - b[k]) / short
		u = (i + r / 32768) / n
		for (k = 1; k < 5 && u > w[k]; k++)
			u -= w[k]
		t = b[k] + (w[k] > 0 ? u / w[k] : 0) * (b[k + 1] - b[k])
		printf "%.3f", t }')
done
# And one kill surely after the end.
delays[trials - 1]=$(awk -v t="$cal_T" 'BEGIN { printf "%.3f", t * 1.5 }')

# trial I: one kill and everything after it. Prints FAIL lines; the last
# line is the result: "result I DELAY KILLED CLASS INDOUBT DONE RERUN RESUMED
# ORPHAN_SECS".
trial() {
	local i=$1 d=${delays[$1]} db=trial$1 dir=$tmp/t$1 p arc kt killed=1
	local class indoubt=0 done_=0 rrc resumed=0 ow s f name opt tfails=0
	tfail() {
		echo "FAIL: trial $i (delay ${d}s): $*"
		tfails=$((tfails + 1))
	}
	mkdir -p "$dir"
	fresh_db "$db" || { tfail "cannot create database $db"; return; }
	"$ferry" apply --migrations "$migs" --database-url "$server/$db" \
		>"$dir/apply.out" 2>"$dir/apply.err" &
	p=$!
	cur_child=$p
	sleep "$d"
	kt=$EPOCHREALTIME
	kill -9 "$p" 2>/dev/null
	wait "$p" 2>/dev/null # (no "Killed" notice)
	arc=$?
	cur_child=
	if [ "$arc" != 137 ]; then
		killed=0
		[ "$arc" = 0 ] ||
			tfail "apply failed before the kill (exit $arc): $(tr '\n' ' ' <"$dir/apply.err")"
	fi

	# The backend of the killed client: ends by itself within about 1 s.
	s=$EPOCHREALTIME
	while [ "$(ferry_backends "$db")" != 0 ]; do
		if gt "$(secs_between "$s" "$EPOCHREALTIME")" 5; then
			tfail "ferry-agent's backend still runs 5 s after the kill: $(q "$url" "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = 'ferry-agent' AND datname = '$db'" | tr '\n' ' ')"
			q "$url" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE application_name = 'ferry-agent' AND datname = '$db'" >/dev/null
			sleep 0.5
			break
		fi
		sleep 0.05
	done
	ow=$(secs_between "$s" "$EPOCHREALTIME")

	# Independent check of what the crash left.
	if ! state "$db" "$dir/state1"; then
		tfail "state query failed: $(cat "$dir/state1.err")"
		echo "result $i $d $killed error 0 0 - 0 $ow"
		return
	fi
	crash_analyze "$dir/state1" >"$dir/bad1"
	if [ "$CA_BAD" != 0 ]; then
		tfail "after the kill: $(tr '\n' ' ' <"$dir/bad1")"
		sed 's/^/    state: /' "$dir/state1"
	fi
	f=$CA_FIRST
	if [ "$killed" = 0 ]; then
		class=completed_before_kill
		[ "$f" = 0 ] || tfail "apply exited 0 but ${CRASH_NAME[f]} is not finished"
	elif [ "$f" = 0 ]; then
		if gt "${CA_FIN_EPOCH[CRASH_M]}" "$kt"; then
			class=tx_committed_after_kill
		else
			class=after_completion
		fi
	elif [ "$CA_FIRST_STATE" = P ]; then
		class=per_statement
	elif [ "${CRASH_KIND[f]}" = tx ] && [ "$CA_PROBE" = "$f" ]; then
		class=tx_rolled_back
	elif [ "$f" = 1 ]; then
		class=before_first
	elif gt "${CA_FIN_EPOCH[f - 1]:-0}" "$kt"; then
		if [ "${CRASH_KIND[f - 1]}" = tx ]; then
			class=tx_committed_after_kill
		else
			class=per_statement
		fi
	else
		class=between
	fi
	indoubt=$CA_INDOUBT
	done_=$CA_INDOUBT_DONE

	# Apply again.
	"$ferry" apply --migrations "$migs" --database-url "$server/$db" \
		--lock-wait 5s >"$dir/rerun.out" 2>"$dir/rerun.err"
	rrc=$?
	if [ "$f" != 0 ] && [ "$CA_FIRST_STATE" = P ]; then
		name=${CRASH_NAME[f]}
		[ "$rrc" = 1 ] ||
			tfail "apply after a cut per-statement migration exited $rrc, expected 1: $(tr '\n' ' ' <"$dir/rerun.err")"
		grep -q "'$name'" "$dir/rerun.err" ||
			tfail "the refusal does not name $name: $(tr '\n' ' ' <"$dir/rerun.err")"
		opt=()
		if [ "$indoubt" = 1 ]; then
			grep -q "statement $((CA_STEPS + 1)) in doubt" "$dir/rerun.err" ||
				tfail "the refusal does not say statement $((CA_STEPS + 1)) of $name is in doubt: $(tr '\n' ' ' <"$dir/rerun.err")"
			# Resuming without saying what happened must be refused.
			"$ferry" apply --migrations "$migs" --database-url "$server/$db" \
				--resume "$name" >"$dir/resume0.out" 2>"$dir/resume0.err"
			rc=$?
			[ "$rc" = 1 ] && grep -q "in doubt" "$dir/resume0.err" ||
				tfail "resume without --in-doubt exited $rc: $(tr '\n' ' ' <"$dir/resume0.err")"
			if [ "$done_" = 1 ]; then opt=(--in-doubt=done); else opt=(--in-doubt=redo); fi
		fi
		"$ferry" apply --migrations "$migs" --database-url "$server/$db" \
			--resume "$name" "${opt[@]}" >"$dir/resume.out" 2>"$dir/resume.err"
		rc=$?
		resumed=1
		[ "$rc" = 0 ] ||
			tfail "apply --resume $name ${opt[*]} exited $rc: $(tr '\n' ' ' <"$dir/resume.err")"
	else
		[ "$rrc" = 0 ] ||
			tfail "apply again exited $rrc, expected 0: $(tr '\n' ' ' <"$dir/rerun.err")"
	fi

	# The end state: everything applied, once.
	if state "$db" "$dir/state2"; then
		crash_analyze "$dir/state2" >"$dir/bad2"
		[ "$CA_BAD" = 0 ] || tfail "end state: $(tr '\n' ' ' <"$dir/bad2")"
		[ "$CA_FIRST" = 0 ] ||
			tfail "end state: ${CRASH_NAME[CA_FIRST]} is not finished"
		n=$(q "$server/$db" "SELECT count(*) FROM _prisma_migrations")
		[ "$n" = "$CRASH_M" ] || tfail "end state: $n history rows, expected $CRASH_M"
	else
		tfail "state query failed: $(cat "$dir/state2.err")"
	fi
	"$ferry" status --migrations "$migs" --database-url "$server/$db" \
		>"$dir/status.out" 2>&1 ||
		tfail "status after recovery is not up to date: $(tr '\n' ' ' <"$dir/status.out")"
	if [ "$tfails" = 0 ]; then
		q "$url" "DROP DATABASE $db" >/dev/null
		rm -rf "$dir"
	fi
	echo "result $i $d $killed $class $indoubt $done_ $rrc $resumed $ow"
}

echo "== $trials trials"
for ((w = 0; w < jobs; w++)); do
	(
		cur_child=
		trap '[ -n "$cur_child" ] && kill -9 "$cur_child" 2>/dev/null; exit 1' TERM
		for ((i = w; i < trials; i += jobs)); do
			trial "$i"
		done
	) >"$tmp/worker$w.log" 2>&1 &
	workers+=($!)
done
for p in "${workers[@]}"; do
	wait "$p"
done
workers=()
cat "$tmp"/worker*.log >"$tmp/all.log"
grep -v '^result ' "$tmp/all.log" | grep -v '^$'
nres=$(grep -c '^result ' "$tmp/all.log")
tf=$(grep -c '^FAIL: trial' "$tmp/all.log")
fails=$((fails + tf))
[ "$nres" = "$trials" ] || fail "only $nres of $trials trials reported a result"

# ---------------------------------------------------------------------
count() { awk -v c="$1" '$1 == "result" && $5 == c' "$tmp/all.log" | wc -l; }
tx_rb=$(count tx_rolled_back)
tx_cm=$(count tx_committed_after_kill)
ps=$(count per_statement)
betw=$(count between)
bf=$(count before_first)
ac=$(count after_completion)
cb=$(count completed_before_kill)
indoubt=$(awk '$1 == "result" && $6 == 1' "$tmp/all.log" | wc -l)
indoubt_done=$(awk '$1 == "result" && $6 == 1 && $7 == 1' "$tmp/all.log" | wc -l)
resumed=$(awk '$1 == "result" && $9 == 1' "$tmp/all.log" | wc -l)
maxow=$(awk '$1 == "result" && $10 > m { m = $10 } END { printf "%.2f", m }' "$tmp/all.log")
echo "summary: $nres trials (seed $seed, full apply ${cal_T}s, kill delays 0-${H}s)"
echo "  killed inside a transaction-mode migration: $((tx_rb + tx_cm))" \
	"($tx_rb rolled back, $tx_cm committed after the kill)"
echo "  killed inside a per-statement migration:     $ps" \
	"(in doubt: $indoubt, of which $indoubt_done had taken effect)"
echo "  killed between migrations:                   $((betw + bf))" \
	"($bf before the first one)"
echo "  killed after completion:                     $((ac + cb))" \
	"($cb had already exited)"
echo "  resumed with apply --resume:                 $resumed"
echo "  longest wait for the orphaned backend:       ${maxow}s"
echo "  time: $(secs_between "$t_begin" "$EPOCHREALTIME")s"

check "the kills hit every kind of point"
[ "$tx_rb" -ge 1 ] || fail "no kill rolled back a transaction-mode migration"
[ "$ps" -ge 1 ] || fail "no kill landed in a per-statement migration"
[ $((ac + cb)) -ge 1 ] || fail "no kill landed after completion"

echo "$fails failures"
[ "$fails" -eq 0 ]
