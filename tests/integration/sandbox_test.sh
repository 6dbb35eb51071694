#!/bin/bash
# deploy/pg-sandbox: start two clusters, reach them with libpq, print their
# URLs, refuse a port in use without leaving a server behind, stop, destroy.
#
#	sandbox_test.sh PGPROBE
set -u
pgprobe=${1:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
sandbox=$root/deploy/pg-sandbox
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
check() { echo "check: $*"; }

if [ -z "$pgprobe" ] || [ ! -x "$pgprobe" ]; then
	echo "usage: sandbox_test.sh PGPROBE (the pgprobe program)" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/ferry-it.XXXXXX) || exit 1
# The servers run as the postgres user when we are root: let it in.
chmod 755 "$tmp"
base=$tmp/sb
conflict=$tmp/conflict
pids=()

# True if process $1 exists and has not exited (a zombie has).
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

cleanup() {
	local pid
	"$sandbox" destroy -d "$base" >/dev/null 2>&1
	"$sandbox" destroy -d "$conflict" >/dev/null 2>&1
	# Should destroy have missed a server, stop it by PID.
	for pid in "${pids[@]}"; do
		if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
			echo "cleanup: killing leftover postmaster $pid"
			kill -QUIT "$pid" 2>/dev/null
		fi
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# PIDs of server processes whose working directory is under $1 (every
# postgres process runs in its data directory).
procs_under() {
	local d cwd
	for d in /proc/[0-9]*; do
		cwd=$(readlink "$d/cwd" 2>/dev/null) || continue
		case $cwd in "$1"/*) alive "${d#/proc/}" && echo "${d#/proc/}" ;; esac
	done
}

check "start -n 2 prints two distinct URLs"
urls=$("$sandbox" start -d "$base" -n 2 2>"$tmp/start.err")
rc=$?
if [ "$rc" -ne 0 ]; then
	fail "start exited $rc:"
	sed 's/^/  /' "$tmp/start.err"
	echo "$fails failures"
	exit 1
fi
mapfile -t url <<<"$urls"
[ "${#url[@]}" -eq 2 ] || fail "expected 2 URLs, got: $urls"
for u in "${url[@]}"; do
	[[ "$u" =~ ^postgresql://postgres@127\.0\.0\.1:[0-9]+/postgres$ ]] ||
		fail "not a sandbox URL: '$u'"
done
[ "${url[0]}" != "${url[1]:-}" ] || fail "both clusters got the same URL"

check "each cluster has a live postmaster recorded in postmaster.pid"
for n in pg1 pg2; do
	pid=$(head -n 1 "$base/$n/data/postmaster.pid" 2>/dev/null)
	if [ -z "$pid" ] || ! alive "$pid"; then
		fail "$n: no live postmaster (postmaster.pid: '$pid')"
		continue
	fi
	pids+=("$pid")
	[ "$(cat "/proc/$pid/comm")" = postgres ] || fail "$n: pid $pid is not postgres"
	port=$(cat "$base/$n/port" 2>/dev/null)
	if [ -z "$port" ] || ! grep -q ":$port/" <<<"$urls"; then
		fail "$n: port file '$port' does not match the URLs"
	fi
	grep -q 'listening on IPv4 address "127.0.0.1"' "$base/$n/server.log" ||
		fail "$n: server.log does not show a listener on 127.0.0.1"
done

check "pgprobe answers 'ok 42' on each URL"
for u in "${url[@]}"; do
	out=$("$pgprobe" "$u" 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ] || [ "$out" != "ok 42" ]; then
		fail "pgprobe $u: exit $rc, output '$out'"
	fi
done

check "pgprobe fails with exit 3 and one line when nothing listens"
out=$("$pgprobe" "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=5" 2>&1)
rc=$?
[ "$rc" -eq 3 ] || fail "pgprobe on a closed port: exit $rc, expected 3"
[ "$(wc -l <<<"$out")" -eq 1 ] || fail "pgprobe error is not one line: $out"

check "url prints the same URLs, and one by name"
out=$("$sandbox" url -d "$base" 2>&1)
[ "$out" = "$urls" ] || fail "url printed '$out', start printed '$urls'"
out=$("$sandbox" url -d "$base" pg2 2>&1)
[ "$out" = "${url[1]:-}" ] || fail "url pg2 printed '$out'"
"$sandbox" url -d "$base" nosuch >/dev/null 2>&1
[ $? -eq 3 ] || fail "url of an unknown cluster should exit 3"

check "start on a port in use fails cleanly and leaves no server behind"
port1=$(sed -n 's|.*:\([0-9]*\)/postgres$|\1|p' <<<"${url[0]}")
# The first new cluster gets port1-1 and starts; the second needs port1,
# which pg1 holds, so start must fail and stop the first one again.
"$sandbox" start -d "$conflict" -n 2 -p $((port1 - 1)) >"$tmp/c.out" 2>"$tmp/c.err"
rc=$?
[ "$rc" -eq 3 ] || fail "start on a used port: exit $rc, expected 3"
[ -s "$tmp/c.out" ] && fail "failed start printed URLs: $(cat "$tmp/c.out")"
grep -q "already in use" "$tmp/c.err" || fail "no 'already in use' message: $(cat "$tmp/c.err")"
started=$(cat "$conflict"/*/server.log 2>/dev/null |
	sed -n 's/.*\[\([0-9]*\)\] LOG:  starting PostgreSQL.*/\1/p')
[ -n "$started" ] || fail "conflict run started no server at all"
for pid in $started; do
	pids+=("$pid")
	alive "$pid" && fail "postmaster $pid of the failed start is still running"
done
left=$(procs_under "$conflict")
[ -z "$left" ] || fail "processes left under $conflict: $left"
"$sandbox" start -d "$conflict" --names solo -p "$port1" >/dev/null 2>"$tmp/c.err"
[ $? -eq 3 ] || fail "start -p $port1 (in use) should exit 3"
left=$(procs_under "$conflict")
[ -z "$left" ] || fail "processes left under $conflict: $left"
for u in "${url[@]}"; do
	[ "$("$pgprobe" "$u" 2>&1)" = "ok 42" ] ||
		fail "$u stopped answering after the failed start"
done

check "usage errors exit 2"
"$sandbox" start >/dev/null 2>&1
[ $? -eq 2 ] || fail "start without -d should exit 2"
"$sandbox" frobnicate -d "$base" >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown command should exit 2"

check "stop leaves no postgres process for the data dirs, and is idempotent"
"$sandbox" stop -d "$base" 2>"$tmp/stop.err" || fail "stop exited $?: $(cat "$tmp/stop.err")"
for pid in "${pids[@]}"; do
	alive "$pid" && fail "postmaster $pid still running after stop"
done
left=$(procs_under "$base")
[ -z "$left" ] || fail "processes left under $base: $left"
"$sandbox" stop -d "$base" 2>/dev/null || fail "second stop exited $?"
for u in "${url[@]}"; do
	"$pgprobe" "$u" >/dev/null 2>&1 && fail "$u still answers after stop"
done

check "destroy removes the clusters"
"$sandbox" destroy -d "$base" 2>"$tmp/destroy.err" ||
	fail "destroy exited $?: $(cat "$tmp/destroy.err")"
[ -e "$base" ] && fail "$base still exists after destroy"
"$sandbox" destroy -d "$base" 2>/dev/null || fail "second destroy exited $?"

echo "$fails failures"
[ "$fails" -eq 0 ]
