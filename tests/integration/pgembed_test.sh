#!/bin/bash
# common/pgembed, the coordinator's embedded state store, through the
# pgembed_probe driver, checked with independent tools (psql over the
# socket, ps, ss, kill -0):
#   a fresh start creates the cluster and database "ferry", listens on no
#   TCP port, runs in a session of its own; a second start adopts it;
#   stop stops it; a postmaster outlives a kill -9 of the process group
#   that started it and is adopted next time; stop is idempotent, also on
#   a killed server; a stale postmaster.pid does not prevent a start;
#   root without --user, an unknown user, an unwritable directory and a
#   damaged cluster are refused with messages naming the cause.
#
#	pgembed_test.sh PGEMBED_PROBE
#
# Run as root (the driver drops to the postgres user); as another user the
# driver runs as that user and the root-only cases are skipped.
set -u
probe=${1:-}
if [ -z "$probe" ] || [ ! -x "$probe" ]; then
	echo "usage: pgembed_test.sh PGEMBED_PROBE" >&2
	exit 1
fi
probe=$(cd "$(dirname "$probe")" && pwd)/$(basename "$probe")
unset PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS \
	PGDATA FERRY_LOG FERRY_PG_BINDIR

fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
check() { echo "check: $*"; }

bindir=$(for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/psql" ] && echo "$d"
done | sort -V | tail -n 1)
if [ -z "$bindir" ]; then
	echo "FAIL: no /usr/lib/postgresql/*/bin/psql"
	exit 1
fi

if [ "$EUID" -eq 0 ]; then
	pguser=postgres
	userargs=(--user "$pguser")
else
	pguser=$(id -un)
	userargs=()
fi

tmp=$(mktemp -d /tmp/ferry-pgembed.XXXXXX) || exit 1
chmod 755 "$tmp"
cd "$tmp" || exit 1
dir=$tmp/store
mkdir "$dir"
[ "$EUID" -eq 0 ] && chown "$pguser" "$dir"
pms=()	 # every postmaster PID seen
holds=() # every hold driver PID

# True if process $1 exists and has not exited (a zombie has).
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# Waits up to $2 seconds for process $1 to exit; 1 if it did not.
wait_gone() {
	local n=$(($2 * 10))
	while [ "$n" -gt 0 ]; do
		alive "$1" || return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# PIDs of live processes whose working directory is under $tmp (every
# postgres process runs in its data directory).
procs_under_tmp() {
	local d cwd
	for d in /proc/[0-9]*; do
		cwd=$(readlink "$d/cwd" 2>/dev/null) || continue
		case $cwd in "$tmp"/*) alive "${d#/proc/}" && echo "${d#/proc/}" ;; esac
	done
}

cleanup() {
	local pid f
	for pid in "${holds[@]}"; do
		kill -9 "$pid" 2>/dev/null
	done
	# Postmasters started behind the driver's back still left their PID.
	for f in "$tmp"/*/pgdata/postmaster.pid; do
		[ -f "$f" ] && pms+=("$(head -n 1 "$f")")
	done
	for pid in "${pms[@]}"; do
		[[ $pid =~ ^[0-9]+$ ]] || continue
		case $(readlink "/proc/$pid/cwd" 2>/dev/null) in
		"$tmp"/*) ;;
		*) continue ;; # gone, or a recycled PID: not ours
		esac
		if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
			echo "cleanup: stopping postmaster $pid"
			kill -QUIT "$pid" 2>/dev/null
			wait_gone "$pid" 10 || kill -9 "$pid" 2>/dev/null
		fi
	done
	# Anything else of ours (a postmaster we never learnt the PID of).
	for pid in $(procs_under_tmp); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || continue
		echo "cleanup: killing leftover server process $pid"
		kill -9 "$pid" 2>/dev/null
	done
	cd /
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

as_pg() {
	if [ "$EUID" -eq 0 ]; then
		runuser -u "$pguser" -- "$@"
	else
		"$@"
	fi
}

# Runs psql as the cluster's owner on the socket of $dir; one query.
sql() {
	as_pg "$bindir/psql" -X -At -v ON_ERROR_STOP=1 -h "$dir/pgrun" \
		-d "${2:-ferry}" -c "$1" 2>&1
}

# Runs the driver; output in $tmp/out and $tmp/err, status in $rc. A
# sanitizer report fails the test.
run() {
	"$probe" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if grep -q 'Sanitizer' "$tmp/err"; then
		fail "sanitizer report from pgembed_probe $*:"
		sed 's/^/  /' "$tmp/err"
	fi
}

# Parses "adopted=A pid=P conninfo=..." from $1 into $adopted $pid $conninfo.
parse() {
	local line=$1
	adopted="" pid="" conninfo=""
	if [[ $line =~ ^adopted=([01])\ pid=([0-9]+)\ conninfo=(.*)$ ]]; then
		adopted=${BASH_REMATCH[1]}
		pid=${BASH_REMATCH[2]}
		conninfo=${BASH_REMATCH[3]}
		pms+=("$pid")
		return 0
	fi
	return 1
}

# Starts with the driver and expects success; sets adopted, pid, conninfo.
start_ok() {
	run "${userargs[@]}" start "$dir"
	if [ "$rc" -ne 0 ] || ! parse "$(head -n 1 "$tmp/out")"; then
		fail "$1: start exited $rc: $(cat "$tmp/out" "$tmp/err")"
		return 1
	fi
}

# The server answers psql as a postmaster of $dir: process $1 is postgres.
is_server() {
	alive "$1" && [ "$(ps -o comm= -p "$1")" = postgres ] &&
		[ "$(readlink "/proc/$1/cwd")" = "$dir/pgdata" ]
}

# --- a fresh start ----------------------------------------------------------
check "fresh start creates the cluster and database ferry"
if start_ok "fresh start"; then
	pm1=$pid
	[ "$adopted" = 0 ] || fail "fresh start: adopted=$adopted, want 0"
	is_server "$pm1" || fail "fresh start: PID $pm1 is not a postmaster of $dir/pgdata"
	kill -0 "$pm1" 2>/dev/null || fail "fresh start: kill -0 $pm1 failed"
	[ -f "$dir/pgdata/PG_VERSION" ] || fail "no $dir/pgdata/PG_VERSION"
	[ ! -e "$dir/pgdata.init" ] || fail "$dir/pgdata.init left behind"
	[ -S "$dir/pgrun/.s.PGSQL.5432" ] || fail "no socket in $dir/pgrun"
	[ "$(stat -c %a "$dir/pgrun")" = 700 ] ||
		fail "$dir/pgrun has mode $(stat -c %a "$dir/pgrun"), want 700"
	out=$(sql "SELECT current_database(), current_user, current_setting('listen_addresses')")
	[ "$out" = "ferry|$pguser|" ] ||
		fail "psql over the socket: got '$out', want 'ferry|$pguser|'"
	out=$(sql "SELECT datname FROM pg_database WHERE datname = 'ferry'" postgres)
	[ "$out" = ferry ] || fail "no database ferry: '$out'"
	out=$(as_pg "$bindir/psql" -X -At -c "SELECT 40+2" "$conninfo" 2>&1)
	[ "$out" = 42 ] || fail "psql with the printed conninfo '$conninfo': $out"
	check "nothing listens on TCP"
	out=$(ss -ltnpH 2>&1 | grep -E "pid=$pm1," || true)
	[ -z "$out" ] || fail "postmaster $pm1 listens on TCP: $out"
	for p in $(procs_under_tmp); do
		out=$(ss -ltnpH 2>&1 | grep -E "pid=$p," || true)
		[ -z "$out" ] || fail "server process $p listens on TCP: $out"
	done
	check "the postmaster runs in a session of its own"
	sid=$(ps -o sid= -p "$pm1" | tr -d ' ')
	mysid=$(ps -o sid= -p $$ | tr -d ' ')
	if [ -z "$sid" ] || [ "$sid" = "$mysid" ]; then
		fail "postmaster session '$sid' is the test's ('$mysid')"
	fi
fi

# --- adopt -------------------------------------------------------------------
check "a second start adopts the running server"
if start_ok "second start"; then
	[ "$adopted" = 1 ] || fail "second start: adopted=$adopted, want 1"
	[ "$pid" = "${pm1:-}" ] || fail "second start: pid=$pid, want ${pm1:-}"
fi

# --- stop --------------------------------------------------------------------
check "stop stops the server (twice: the second is a no-op)"
run "${userargs[@]}" stop "$dir"
if [ "$rc" -ne 0 ] || ! grep -qx stopped "$tmp/out"; then
	fail "stop exited $rc: $(cat "$tmp/out" "$tmp/err")"
fi
parse "$(head -n 1 "$tmp/out")" || true
[ "${adopted:-}" = 1 ] || fail "stop: adopted=${adopted:-}, want 1"
if [ -n "${pm1:-}" ]; then
	wait_gone "$pm1" 30 || fail "postmaster $pm1 still running after stop"
fi
[ ! -e "$dir/pgdata/postmaster.pid" ] || fail "postmaster.pid left after stop"
out=$(sql "SELECT 1" 2>&1) && fail "psql still connects after stop: $out"

# --- kill -9 of the process group that started the server ---------------------
check "the postmaster survives a kill -9 of its starter's process group"
# setsid: the driver leads a process group we can kill whole without
# killing ourselves.
coproc HOLD { exec setsid "$probe" "${userargs[@]}" hold "$dir" 2>"$tmp/hold.err"; }
hold=$HOLD_PID
holds+=("$hold")
line=""
read -r -t 90 line <&"${HOLD[0]}"
if ! parse "$line"; then
	fail "hold: no start line: '$line' $(cat "$tmp/hold.err")"
else
	pm2=$pid
	[ "$adopted" = 0 ] || fail "hold: adopted=$adopted, want 0"
	[ "$(ps -o pgid= -p "$hold" | tr -d ' ')" = "$hold" ] ||
		fail "hold driver $hold does not lead its process group"
	kill -9 -- "-$hold"
	wait "$hold" 2>/dev/null
	alive "$hold" && fail "hold driver $hold survived kill -9"
	is_server "$pm2" || fail "postmaster $pm2 died with its starter"
	out=$(sql "SELECT 1")
	[ "$out" = 1 ] || fail "psql after kill -9 of the starter: $out"
	check "the next start adopts it"
	if start_ok "start after kill -9"; then
		[ "$adopted" = 1 ] || fail "start after kill -9: adopted=$adopted, want 1"
		[ "$pid" = "$pm2" ] || fail "start after kill -9: pid=$pid, want $pm2"
	fi
fi

# --- stop of a killed server; stale postmaster.pid -----------------------------
check "stop after the postmaster was killed is fine, twice"
coproc HOLD { exec "$probe" "${userargs[@]}" hold "$dir" 2>"$tmp/hold.err"; }
hold=$HOLD_PID
holds+=("$hold")
line=""
read -r -t 90 line <&"${HOLD[0]}"
if ! parse "$line"; then
	fail "hold: no start line: '$line' $(cat "$tmp/hold.err")"
else
	pm2=$pid
	[ "$adopted" = 1 ] || fail "hold: adopted=$adopted, want 1"
	kill -9 "$pm2"
	wait_gone "$pm2" 30 || fail "postmaster $pm2 survived kill -9"
	for i in 1 2; do
		echo stop >&"${HOLD[1]}"
		line=""
		read -r -t 90 line <&"${HOLD[0]}"
		[ "$line" = "stop rc=0" ] ||
			fail "stop $i of a killed server: '$line' $(cat "$tmp/hold.err")"
	done
	hold_in=${HOLD[1]}
	exec {hold_in}>&-
	wait "$hold"
	hrc=$?
	[ "$hrc" -eq 0 ] || fail "hold exited $hrc: $(cat "$tmp/hold.err")"
	grep -q Sanitizer "$tmp/hold.err" && fail "sanitizer: $(cat "$tmp/hold.err")"

	check "a stale postmaster.pid does not prevent a start"
	[ "$(head -n 1 "$dir/pgdata/postmaster.pid" 2>/dev/null)" = "$pm2" ] ||
		fail "no stale postmaster.pid naming $pm2"
	if start_ok "start over a stale postmaster.pid"; then
		pm3=$pid
		[ "$adopted" = 0 ] || fail "stale pid file: adopted=$adopted, want 0"
		[ "$pm3" != "$pm2" ] || fail "stale pid file: same pid $pm3"
		is_server "$pm3" || fail "stale pid file: $pm3 is not a postmaster"
		out=$(sql "SELECT count(*) FROM pg_database WHERE datname = 'ferry'")
		[ "$out" = 1 ] || fail "after restart: database ferry: '$out'"
	fi
fi

# --- refusals --------------------------------------------------------------------
if [ "$EUID" -eq 0 ]; then
	check "root without --user is refused"
	run start "$dir"
	[ "$rc" -eq 2 ] || fail "start as root exited $rc, want 2"
	grep -q "PostgreSQL refuses to run as root: pass --user NAME" "$tmp/err" ||
		fail "start as root: message: $(cat "$tmp/err")"

	check "an unknown user is refused, by name"
	nouser=ferry_no_such_user_$$
	run --user "$nouser" start "$dir"
	[ "$rc" -eq 2 ] || fail "unknown user exited $rc, want 2"
	grep -q "user '$nouser' does not exist" "$tmp/err" ||
		fail "unknown user: message: $(cat "$tmp/err")"

	check "a directory the user cannot write is refused"
	mkdir "$tmp/rootonly"
	run "${userargs[@]}" start "$tmp/rootonly"
	[ "$rc" -eq 3 ] || fail "unwritable dir exited $rc, want 3"
	grep -q "$tmp/rootonly.*Permission denied" "$tmp/err" ||
		fail "unwritable dir: message: $(cat "$tmp/err")"
	[ -z "$(ls -A "$tmp/rootonly")" ] || fail "unwritable dir: files made in it"
fi

check "a leftover of an interrupted initdb is cleared"
mkdir -p "$tmp/left/pgdata.init/base"
echo junk >"$tmp/left/pgdata.init/base/junk"
[ "$EUID" -eq 0 ] && chown -R "$pguser" "$tmp/left"
run "${userargs[@]}" stop "$tmp/left"
if [ "$rc" -ne 0 ] || ! parse "$(head -n 1 "$tmp/out")"; then
	fail "start over pgdata.init exited $rc: $(cat "$tmp/out" "$tmp/err")"
else
	[ "$adopted" = 0 ] || fail "start over pgdata.init: adopted=$adopted"
	wait_gone "$pid" 30 || fail "postmaster $pid still running after stop"
	[ ! -e "$tmp/left/pgdata.init" ] || fail "pgdata.init left behind"
	[ -f "$tmp/left/pgdata/PG_VERSION" ] || fail "no cluster made over pgdata.init"
fi

check "FERRY_PG_BINDIR without the programs is refused"
FERRY_PG_BINDIR=$tmp/nobin run "${userargs[@]}" start "$tmp/left"
[ "$rc" -eq 2 ] || fail "bad FERRY_PG_BINDIR exited $rc, want 2"
grep -q "FERRY_PG_BINDIR '$tmp/nobin' holds no executable pg_ctl" "$tmp/err" ||
	fail "bad FERRY_PG_BINDIR: message: $(cat "$tmp/err")"

check "a cluster without PG_VERSION is refused"
mkdir -p "$tmp/nover/pgdata"
[ "$EUID" -eq 0 ] && chown -R "$pguser" "$tmp/nover"
run "${userargs[@]}" start "$tmp/nover"
[ "$rc" -eq 3 ] || fail "no PG_VERSION exited $rc, want 3"
grep -q "cannot start PostgreSQL: '$tmp/nover/pgdata' is not a usable data directory" "$tmp/err" ||
	fail "no PG_VERSION: message: $(cat "$tmp/err")"

check "a damaged cluster: the error names the step and ends with the server log"
run "${userargs[@]}" stop "$dir"
[ "$rc" -eq 0 ] || fail "stop before damage exited $rc: $(cat "$tmp/err")"
[ -n "${pm3:-}" ] && { wait_gone "$pm3" 30 || fail "postmaster $pm3 still running"; }
as_pg dd if=/dev/zero of="$dir/pgdata/global/pg_control" bs=8192 count=1 \
	conv=notrunc status=none
run "${userargs[@]}" start "$dir"
[ "$rc" -eq 3 ] || fail "damaged cluster exited $rc, want 3"
grep -q "cannot start PostgreSQL in '$dir/pgdata': pg_ctl start exited 1; server log '$dir/pgdata/log/.*' ends: .*FATAL: " "$tmp/err" ||
	fail "damaged cluster: message: $(cat "$tmp/err")"
[ -z "$(procs_under_tmp)" ] || fail "server processes left after a failed start: $(procs_under_tmp)"

echo "$fails failures"
[ "$fails" -eq 0 ]
