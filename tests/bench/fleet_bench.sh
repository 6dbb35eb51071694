#!/bin/bash
# fleet_bench.sh -- one coordinator (embedded state) and N simulated agents
# (bench_fleet: threads, each with its own key, NNG socket and connection)
# on loopback. Times enrolment (all registered, all polling after the
# operator accepted them one by one with `ferry agents accept`), then
# dispatches a `--kind status` work item to every agent and times it until
# every report is stored; a second round does the same through
# `ferry dispatch --wait`. Prints the figures, the coordinator's RSS and
# CPU, the embedded PostgreSQL's memory separately, and the bench's CPU.
# Checks that each round left N work items done with exactly N reports in
# the state store; exits 1 when a check fails, 2 on a usage error.
#
#   tests/bench/fleet_bench.sh [-n N] [--ferry PATH] [--bench PATH]
#       [--hold DURATION] [--retry DURATION] [--auto-accept]
#       [--perf FILE] [--keep]
#
# Must run as root (the coordinator drops to the postgres user, as in
# tests/integration/fleetlib.sh). Everything it starts is stopped by PID.
set -uo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=500
FERRY=$ROOT/build-bench/coordinator/ferry
BENCH=$ROOT/build-bench/tests/bench/bench_fleet
HOLD=20s
RETRY=250ms
AUTO=0
PERF_OUT=
KEEP=0
TARGET_MS=5000
TARGET_RSS_KB=$((200 * 1024))

usage() {
	sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
	exit "${1:-2}"
}

while [ $# -gt 0 ]; do
	case $1 in
	-n) N=$2; shift 2 ;;
	--ferry) FERRY=$2; shift 2 ;;
	--bench) BENCH=$2; shift 2 ;;
	--hold) HOLD=$2; shift 2 ;;
	--retry) RETRY=$2; shift 2 ;;
	--auto-accept) AUTO=1; shift ;;
	--perf) PERF_OUT=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage 0 ;;
	*) echo "fleet_bench.sh: unknown argument '$1'" >&2; usage 2 ;;
	esac
done
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] ||
	{ echo "fleet_bench.sh: -n must be a positive number" >&2; exit 2; }
for f in "$FERRY" "$BENCH"; do
	[ -x "$f" ] || { echo "fleet_bench.sh: '$f' not found: build first, or pass --ferry/--bench" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] ||
	{ echo "fleet_bench.sh: run as root (the coordinator runs as --user postgres)" >&2; exit 2; }

# One socket per agent on each side, plus NNG's and PostgreSQL's own.
hard=$(ulimit -Hn)
want=65536
[ "$hard" != unlimited ] && [ "$hard" -lt "$want" ] && want=$hard
ulimit -n "$want" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((N * 2 + 256)) ]; then
	echo "fleet_bench.sh: ulimit -n is $(ulimit -n), too low for $N agents" >&2
	exit 2
fi

log() { echo "fleet_bench: $*" >&2; }

T=$(mktemp -d /tmp/ferry-fleet-bench.XXXXXX)
chmod 755 "$T"
SERVE_PID=
BENCH_PID=
PERF_PID=

stop_pid() { # PID SIGNAL SECONDS: signal, wait, then kill -9
	local pid=$1 sig=$2 t=$3 i
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null || return 0
	for ((i = 0; i < t * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
}

postmaster_pid() {
	local f=$T/coord/pgdata/postmaster.pid pid
	[ -f "$f" ] || return 0
	pid=$(head -1 "$f")
	[ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = postgres ] &&
		echo "$pid"
}

cleanup() {
	exec 3>&-
	stop_pid "$PERF_PID" INT 10
	stop_pid "$BENCH_PID" TERM 10
	stop_pid "$SERVE_PID" TERM 10
	# The postmaster outlives a killed coordinator: stop it by its PID.
	stop_pid "$(postmaster_pid)" INT 10
	if [ "$KEEP" = 1 ]; then
		log "kept $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

die() {
	echo "FAIL: $*"
	for f in serve.log bench.err; do
		[ -s "$T/$f" ] && { echo "== $f (tail)"; tail -20 "$T/$f"; }
	done
	exit 1
}

now_us() { echo "${EPOCHREALTIME/./}"; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

state_sql() {
	runuser -u postgres -- psql -X -At -h "$T/coord/pgrun" -d ferry -c "$1" 2>&1
}

# VmRSS and VmHWM (kB) of a process.
vm() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
# utime + stime of a process, in seconds.
cpu_s() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	s=${s##*) }
	awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / t }' <<<"$s"
}
# The postmaster and its children: RSS sum, PSS sum (kB), CPU (s), count.
pg_mem() {
	local pm pids p rss=0 pss=0 cpu=0 n=0 r s
	pm=$(postmaster_pid)
	[ -n "$pm" ] || { echo "0 0 0 0"; return; }
	pids="$pm $(ps -o pid= --ppid "$pm")"
	for p in $pids; do
		r=$(vm "$p" VmRSS) || continue
		[ -n "$r" ] || continue
		s=$(awk '$1 == "Pss:" { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null)
		rss=$((rss + r))
		pss=$((pss + ${s:-0}))
		cpu=$(awk -v a="$cpu" -v b="$(cpu_s "$p")" 'BEGIN { printf "%.2f", a + b }')
		n=$((n + 1))
	done
	echo "$rss $pss $cpu $n"
}

declare -A S # samples: S[phase.key]
sample() {
	local ph=$1
	S[$ph.rss]=$(vm "$SERVE_PID" VmRSS)
	S[$ph.hwm]=$(vm "$SERVE_PID" VmHWM)
	S[$ph.cpu]=$(cpu_s "$SERVE_PID")
	read -r S[$ph.pgrss] S[$ph.pgpss] S[$ph.pgcpu] S[$ph.pgn] <<<"$(pg_mem)"
	S[$ph.bcpu]=0
	[ -n "$BENCH_PID" ] && S[$ph.bcpu]=$(cpu_s "$BENCH_PID")
}

# Waits for a line "event=NAME ..." (the Kth one) in the bench's output;
# sets EV to it.
wait_event() {
	local name=$1 t=$2 k=${3:-1} i
	EV=
	for ((i = 0; i < t * 20; i++)); do
		if [ "$(grep -c "^event=$name " "$T/bench.out")" -ge "$k" ]; then
			EV=$(grep "^event=$name " "$T/bench.out" | sed -n "${k}p")
			return 0
		fi
		kill -0 "$BENCH_PID" 2>/dev/null || die "bench_fleet exited early"
		kill -0 "$SERVE_PID" 2>/dev/null || die "the coordinator exited"
		sleep 0.05
	done
	die "no event=$name from bench_fleet within ${t}s ($(tail -1 "$T/bench.out"))"
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# --- coordinator ----------------------------------------------------------
PORT=$(shuf -i 20000-32000 -n 1)
URL=tcp://127.0.0.1:$PORT
"$FERRY" serve --init --data "$T/coord" --user postgres >"$T/init.out" 2>"$T/init.err" ||
	{ cat "$T/init.err"; die "ferry serve --init"; }
export FERRY_KEY=$T/coord/keys/admin.key
export FERRY_COORDINATOR_KEY=$T/coord/keys/coordinator.pub
export FERRY_COORDINATOR=$URL
"$FERRY" keygen --name release -o "$T/keys" --no-passphrase >/dev/null || die "keygen"
"$FERRY" bundle create --migrations "$ROOT/deploy/examples/migrations" \
	--project bench --key "$T/keys/release.key" -o "$T/b.fbundle" >/dev/null ||
	die "bundle create"

serve_args=(--data "$T/coord" --user postgres --listen "$URL" --poll-hold "$HOLD")
[ "$AUTO" = 1 ] && serve_args+=(--auto-accept)
FERRY_LOG=${FERRY_LOG:-info} "$FERRY" serve "${serve_args[@]}" >"$T/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 300); do
	grep -q 'coordinator listening' "$T/serve.log" && break
	kill -0 "$SERVE_PID" 2>/dev/null || break
	sleep 0.1
done
grep -q 'coordinator listening' "$T/serve.log" || die "the coordinator did not start"
sleep 0.5
sample idle
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PSI_BEFORE=$(awk '/^some/ { sub("total=", "", $5); print $5 }' /proc/pressure/cpu 2>/dev/null)
WALL_BEFORE=$(now_us)

# --- agents ---------------------------------------------------------------
mkfifo "$T/ctl"
exec 3<>"$T/ctl"
log "starting $N agents on $URL"
FERRY_LOG=${FERRY_LOG:-warn} "$BENCH" --url "$URL" \
	--coordinator-key "$FERRY_COORDINATOR_KEY" -n "$N" --env bench \
	--hold "$HOLD" --retry "$RETRY" <"$T/ctl" >"$T/bench.out" 2>"$T/bench.err" &
BENCH_PID=$!
wait_event start 60
EV_START=$EV
wait_event registered 180
EV_REG=$EV
log "$EV_REG"
[ "$(field "$EV_REG" n)" = "$N" ] || die "not all agents registered"
if [ "$AUTO" = 1 ]; then
	[ "$(field "$EV_REG" pending)" = 0 ] || die "--auto-accept left agents pending"
	t=$(field "$EV_START" start_us)
	echo "accept-start $t" >&3
	echo "accepted $t" >&3
	ACCEPT_MS=0
	ACCEPT_HOW="--auto-accept (demo-only option of ferry serve)"
else
	[ "$(field "$EV_REG" pending)" = "$N" ] || die "expected $N pending agents"
	t0=$(now_us)
	echo "accept-start $t0" >&3
	for ((i = 0; i < N; i++)); do
		id=$(printf 'bench-%04d' "$i")
		"$FERRY" agents accept "$id" >/dev/null 2>"$T/accept.err" ||
			{ cat "$T/accept.err"; die "ferry agents accept $id"; }
	done
	t1=$(now_us)
	echo "accepted $t1" >&3
	ACCEPT_MS=$(ms_between "$t0" "$t1")
	ACCEPT_HOW="ferry agents accept ID, one CLI process per agent, in sequence"
	log "accepted $N agents in $ACCEPT_MS ms"
fi
wait_event polling 120
EV_POLL=$EV
log "$EV_POLL"
sleep 1 # let the last held polls settle before the quiet sample
sample polling

# --- round 1: dispatch; the bench and the state store tell when done ---
# Checks round R (work ids in d$R.json): all done, N reports, one each.
check_round() {
	local r=$1 ids out
	ids=$(jq -r '[.work[].id] | join(",")' "$T/d$r.json")
	[ "$(jq '.work | length' "$T/d$r.json")" = "$N" ] ||
		die "round $r: dispatch made $(jq '.work | length' "$T/d$r.json") work items, expected $N"
	out=$(state_sql "SELECT count(*), count(*) FILTER (WHERE w.state = 'done'),
		count(DISTINCT w.agent_id),
		(SELECT count(*) FROM reports r WHERE r.work_id = ANY('{$ids}')),
		(SELECT count(DISTINCT r.work_id) FROM reports r WHERE r.work_id = ANY('{$ids}')),
		(SELECT (extract(epoch FROM max(r.received_at)) * 1e6)::int8
		   FROM reports r WHERE r.work_id = ANY('{$ids}'))
		FROM work_items w WHERE w.work_id = ANY('{$ids}')")
	IFS='|' read -r c_items c_done c_agents c_reports c_rwork LAST_STORED_US <<<"$out"
	echo "check: round $r: $c_items work items, $c_done done, $c_agents agents, $c_reports reports ($c_rwork distinct work items)"
	[ "$c_items|$c_done|$c_agents|$c_reports|$c_rwork" = "$N|$N|$N|$N|$N" ] ||
		die "round $r: expected $N|$N|$N|$N|$N, got '$out'"
}

if [ -n "$PERF_OUT" ]; then
	perf record -g -F 999 -p "$SERVE_PID" -o "$PERF_OUT" >"$T/perf.log" 2>&1 &
	PERF_PID=$!
	sleep 1
fi
D0=$(now_us)
echo "dispatch $D0" >&3
"$FERRY" dispatch --bundle "$T/b.fbundle" --env bench --kind status --json \
	>"$T/d1.json" 2>"$T/d1.err" || { cat "$T/d1.err"; die "ferry dispatch"; }
D1=$(now_us)
wait_event round 120 1
EV_R1=$EV
if [ -n "$PERF_PID" ]; then
	stop_pid "$PERF_PID" INT 30
	wait "$PERF_PID" 2>/dev/null
	PERF_PID=
fi
sample round1
check_round 1
R1_CLI_MS=$(ms_between "$D0" "$D1")
R1_STORED_MS=$(ms_between "$D0" "$LAST_STORED_US")

# --- round 2: the same through `ferry dispatch --wait` ------------------------
D0=$(now_us)
echo "dispatch $D0" >&3
"$FERRY" dispatch --bundle "$T/b.fbundle" --env bench --kind status \
	--wait=120s --json >"$T/d2.json" 2>"$T/d2.err" ||
	{ cat "$T/d2.err"; die "ferry dispatch --wait"; }
D1=$(now_us)
wait_event round 120 2
EV_R2=$EV
sample round2
check_round 2
R2_WAIT_MS=$(ms_between "$D0" "$D1")
R2_STORED_MS=$(ms_between "$D0" "$LAST_STORED_US")

echo quit >&3
for _ in $(seq 300); do
	kill -0 "$BENCH_PID" 2>/dev/null || break
	sleep 0.1
done
wait "$BENCH_PID"
BENCH_RC=$?
BENCH_PID=
EV_DONE=$(grep '^event=done ' "$T/bench.out")
[ -n "$EV_DONE" ] || die "bench_fleet printed no summary"
kill -0 "$SERVE_PID" 2>/dev/null || die "the coordinator died"
sample end
WALL_AFTER=$(now_us)
PSI_AFTER=$(awk '/^some/ { sub("total=", "", $5); print $5 }' /proc/pressure/cpu 2>/dev/null)
if grep -l 'AddressSanitizer\|runtime error:\|LeakSanitizer' "$T/serve.log" "$T/bench.err" 2>/dev/null; then
	die "sanitizer report"
fi
[ "$BENCH_RC" = 0 ] || die "bench_fleet exited $BENCH_RC ($EV_DONE)"
[ "$(field "$EV_DONE" fatal)" = 0 ] || die "an agent gave up: $EV_DONE"

# --- figures ----------------------------------------------------------------------
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
sub_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t ? "met" : "NOT met") }'; }
psi=
[ -n "$PSI_BEFORE" ] && [ -n "$PSI_AFTER" ] &&
	psi=$(awk -v a="$PSI_BEFORE" -v b="$PSI_AFTER" -v w0="$WALL_BEFORE" -v w1="$WALL_AFTER" \
		'BEGIN { printf "%.1f", 100 * (b - a) / (w1 - w0) }')
r1=$(field "$EV_R1" dispatch_to_last_ack_ms)

echo
echo "Fleet benchmark: $N agents (threads of bench_fleet, one key, socket and connection each)"
echo "machine: $(nproc) cores, load before ${LOAD_BEFORE}; CPU pressure during the run ${psi:-?}% (share of time some task waited for a CPU)"
echo "coordinator: $URL, embedded state ($(df -T "$T" | awk 'NR == 2 { print $2 }'), fsync on), poll hold $HOLD; agents probe every $RETRY while pending"
echo "accepting: $ACCEPT_HOW"
echo
printf '%-52s %s\n' "agents" "$N"
printf '%-52s %s ms (p50 %s)\n' "start -> all registered" "$(field "$EV_REG" since_start_ms)" "$(field "$EV_REG" p50_ms)"
if [ "$AUTO" = 1 ]; then
	printf '%-52s %s ms\n' "start -> all polling (accepted on registration)" "$(field "$EV_POLL" since_start_ms)"
else
	printf '%-52s %s ms\n' "accepting all (ferry agents accept x N)" "$ACCEPT_MS"
	printf '%-52s %s ms\n' "last accept -> all polling" "$(field "$EV_POLL" since_last_accept_ms)"
	printf '%-52s %s ms\n' "first accept -> all polling" "$(field "$EV_POLL" since_accept_start_ms)"
fi
echo "round 1: ferry dispatch, then the bench and the state store watched"
printf '%-52s %s ms\n' "  ferry dispatch returned" "$R1_CLI_MS"
printf '%-52s %s ms (p50 %s, p99 %s)\n' "  dispatch -> work received by every agent" \
	"$(field "$EV_R1" work_max_ms)" "$(field "$EV_R1" work_p50_ms)" "$(field "$EV_R1" work_p99_ms)"
printf '%-52s %s ms\n' "  dispatch -> last report stored (received_at)" "$R1_STORED_MS"
printf '%-52s %s ms (p50 %s, p99 %s)\n' "  dispatch -> every report acknowledged" \
	"$r1" "$(field "$EV_R1" ack_p50_ms)" "$(field "$EV_R1" ack_p99_ms)"
printf '%-52s %s of the 5 s target: %s\n' "  target: dispatch + all reports < 5 s" \
	"$(field "$EV_R1" ratio_to_5s)" "$(verdict "$r1" "$TARGET_MS")"
echo "round 2: ferry dispatch --wait (the CLI polls each work item)"
printf '%-52s %s ms\n' "  ferry dispatch --wait returned" "$R2_WAIT_MS"
printf '%-52s %s ms\n' "  dispatch -> last report stored" "$R2_STORED_MS"
printf '%-52s %s ms (p50 %s, p99 %s)\n' "  dispatch -> every report acknowledged" \
	"$(field "$EV_R2" dispatch_to_last_ack_ms)" "$(field "$EV_R2" ack_p50_ms)" "$(field "$EV_R2" ack_p99_ms)"
echo "coordinator process (ferry serve, PID $SERVE_PID)"
for ph in idle polling round1 round2 end; do
	printf '  %-50s VmRSS %s MB, VmHWM %s MB, CPU %s s\n' "$ph" \
		"$(mb "${S[$ph.rss]}")" "$(mb "${S[$ph.hwm]}")" "${S[$ph.cpu]}"
done
printf '  %-50s %s s (enrolment %s, round 1 %s, round 2 %s)\n' "CPU spent" \
	"$(sub_s "${S[idle.cpu]}" "${S[end.cpu]}")" "$(sub_s "${S[idle.cpu]}" "${S[polling.cpu]}")" \
	"$(sub_s "${S[polling.cpu]}" "${S[round1.cpu]}")" "$(sub_s "${S[round1.cpu]}" "${S[round2.cpu]}")"
printf '%-52s %s MB of 200 MB: %s\n' "  target: coordinator RSS < 200 MB (VmHWM)" \
	"$(mb "${S[end.hwm]}")" "$(verdict "${S[end.hwm]}" "$TARGET_RSS_KB")"
echo "embedded PostgreSQL (postmaster + children; RSS counts shared buffers once per process, PSS shares them)"
for ph in idle polling round1 end; do
	printf '  %-50s RSS %s MB, PSS %s MB, CPU %s s, %s processes\n' "$ph" \
		"$(mb "${S[$ph.pgrss]}")" "$(mb "${S[$ph.pgpss]}")" "${S[$ph.pgcpu]}" "${S[$ph.pgn]}"
done
printf '  %-50s %s s (round 1 %s)\n' "CPU spent" "$(sub_s "${S[idle.pgcpu]}" "${S[end.pgcpu]}")" \
	"$(sub_s "${S[polling.pgcpu]}" "${S[round1.pgcpu]}")"
echo "bench_fleet process"
printf '  %-50s user %s s, sys %s s, max RSS %s MB\n' "CPU" "$(field "$EV_DONE" user_s)" \
	"$(field "$EV_DONE" sys_s)" "$(mb "$(field "$EV_DONE" maxrss_kb)")"
printf '  %-50s handshakes %s, retried errors %s, duplicate acks %s, extra items %s\n' "wire" \
	"$(field "$EV_DONE" handshakes)" "$(field "$EV_DONE" errors)" \
	"$(field "$EV_DONE" duplicates)" "$(field "$EV_DONE" extra_items)"
[ -n "$PERF_OUT" ] && echo "perf profile of the coordinator during round 1: $PERF_OUT"
echo "checks passed: $N work items done with exactly $N reports, in each round"
exit 0
