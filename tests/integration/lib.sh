# shellcheck shell=bash
# Shared helpers for the engine integration tests (sourced, not run).
#
#   . "$(dirname "$0")/lib.sh"
#   it_init "$1"        # ferry-agent binary; starts one throwaway cluster
#   newdb NAME          # a fresh database per case; its URL in $db
#   run apply --migrations DIR --database-url "$db"
#   expect_rc 0 "what was run"
#   it_done             # prints the count, exits 0 or 1
#
# `run` leaves the output in $OUT / $ERR (files) and the exit status in $RC,
# and fails the test on any sign of a crash or a sanitizer report. Every
# assertion prints a FAIL line and counts; a case goes on after a failure so
# one run reports everything.

set -u

IT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IT_SANDBOX=$IT_ROOT/deploy/pg-sandbox
IT_EXAMPLES=$IT_ROOT/deploy/examples/migrations
IT_FAILS=0
IT_DBN=0
IT_PIDS=()

fail() {
	echo "FAIL: $*"
	IT_FAILS=$((IT_FAILS + 1))
}
check() { echo "check: $*"; }

it_cleanup() {
	local p
	for p in "${IT_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	"$IT_SANDBOX" destroy -d "$IT_TMP/sb" >/dev/null 2>&1
	rm -rf "$IT_TMP"
}

# Starts the cluster; sets FERRY, IT_TMP, IT_URL (server URL without a
# database), IT_ADMIN (URL of the postgres database) and IT_DATA.
it_init() {
	local url rc
	FERRY=${1:-}
	if [ -z "$FERRY" ] || [ ! -x "$FERRY" ]; then
		echo "usage: $0 path/to/ferry-agent"
		exit 2
	fi
	FERRY=$(cd "$(dirname "$FERRY")" && pwd)/$(basename "$FERRY")
	# The tests choose every connection themselves.
	unset DATABASE_URL DIRECT_URL PGHOST PGPORT PGDATABASE PGUSER \
		PGPASSWORD PGSERVICE PGOPTIONS FERRY_LOG
	IT_TMP=$(mktemp -d /tmp/ferry-it.XXXXXX) || exit 1
	# The server runs as the postgres user when we are root: let it in.
	chmod 755 "$IT_TMP"
	trap it_cleanup EXIT
	trap 'exit 1' INT TERM
	url=$("$IT_SANDBOX" start -d "$IT_TMP/sb" 2>"$IT_TMP/start.err")
	rc=$?
	if [ "$rc" -ne 0 ] || [ -z "$url" ]; then
		echo "FAIL: pg-sandbox start exited $rc:"
		sed 's/^/  /' "$IT_TMP/start.err"
		exit 1
	fi
	IT_ADMIN=$url
	IT_URL=${url%/postgres}
	IT_DATA=$IT_TMP/sb/pg1/data
	OUT=$IT_TMP/out
	ERR=$IT_TMP/err
	RC=0
}

it_done() {
	echo "$IT_FAILS failures"
	[ "$IT_FAILS" -eq 0 ]
	exit $?
}

# Runs one query on database URL $1; rows unaligned, fields split by '|'.
qdb() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

# Creates a fresh database named $1<n>; sets db to its URL.
newdb() {
	IT_DBN=$((IT_DBN + 1))
	db=$IT_URL/${1:-case}$IT_DBN
	# FILE_COPY is the faster strategy for a tiny template (PostgreSQL 15+).
	qdb "$IT_ADMIN" "CREATE DATABASE \"${1:-case}$IT_DBN\" STRATEGY FILE_COPY" \
		>/dev/null 2>&1 ||
		qdb "$IT_ADMIN" "CREATE DATABASE \"${1:-case}$IT_DBN\"" >/dev/null ||
		fail "cannot create database ${1:-case}$IT_DBN"
}

# Runs ferry-agent with the arguments given; sets OUT, ERR (files), RC.
run() {
	"$FERRY" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	no_crash "ferry-agent $1"
}

# Like run, with a wall-clock bound: RC is 137 if it had to be killed.
run_bounded() {
	local secs=$1
	shift
	# --foreground: timeout kills only ferry-agent, not its own group (which
	# would make bash print a "Killed" notice).
	timeout --foreground -s KILL "$secs" "$FERRY" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	no_crash "ferry-agent $1"
}

no_crash() {
	if grep -Eq 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|Segmentation|core dumped|Assertion .* failed' "$ERR"; then
		fail "$1: crash or sanitizer report:"
		sed 's/^/  | /' "$ERR" | head -40
	fi
	if [ "$RC" -ge 128 ] && [ "$RC" -ne 137 ]; then
		fail "$1: died of signal $((RC - 128))"
	fi
}

# Prints the last run's output, indented, after a failure.
show() {
	echo "  --- stdout ---"
	sed 's/^/  | /' "$OUT" | head -40
	echo "  --- stderr ---"
	sed 's/^/  | /' "$ERR" | head -40
}

expect_rc() {
	if [ "$RC" != "$1" ]; then
		fail "$2: exit status $RC, expected $1"
		show
		return 1
	fi
}

# Fails unless file $1 (OUT or ERR) matches extended regex $2.
expect_grep() {
	if ! grep -Eq -- "$2" "$1"; then
		fail "$3: no match for /$2/"
		show
		return 1
	fi
}

expect_no_grep() {
	if grep -Eq -- "$2" "$1"; then
		fail "$3: unexpected match for /$2/"
		show
		return 1
	fi
}

# Fails unless "$1" = "$2".
expect_eq() {
	if [ "$1" != "$2" ]; then
		fail "$3: got '$1', expected '$2'"
		return 1
	fi
}

# The error of a refused or failed command: apart from log lines
# ("ts=... level=..."), stderr holds exactly one line,
# "ferry-agent CMD: error: ...", matching regex $2.
expect_one_error() {
	local cmd=$1 re=$2 what=$3 n
	n=$(grep -cv '^ts=[^ ]* level=' "$ERR")
	if [ "$n" -ne 1 ]; then
		fail "$what: expected one error line on stderr, got $n"
		show
		return 1
	fi
	expect_grep "$ERR" "^ferry-agent $cmd: error: " "$what: error line format" || return 1
	expect_grep "$ERR" "^ferry-agent $cmd: error: .*($re)" "$what: error names the problem"
}

# Python's json parser on file $1, then expression $2 evaluated with the
# document bound to j; prints the result (True/False, a value, or an error).
json_eval() {
	python3 -c '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print("INVALID JSON: %s" % e)
    sys.exit(0)
try:
    print(eval("(" + sys.argv[2] + ")", {"j": j}))
except Exception as e:
    print("EXPR ERROR: %r" % e)
' "$1" "$2"
}

# Fails unless the JSON in file $1 satisfies Python expression $2.
expect_json() {
	local r
	r=$(json_eval "$1" "$2")
	if [ "$r" != True ]; then
		fail "$3: JSON check '$2' gave '$r'"
		sed 's/^/  | /' "$1" | head -60
		return 1
	fi
}

# Writes migration $1/$2/migration.sql from stdin (printf-style escapes
# are the caller's business).
mkmig() {
	mkdir -p "$1/$2" && cat >"$1/$2/migration.sql"
}

# Lowercase hex SHA-256 of a file.
sha() {
	sha256sum "$1" | cut -d' ' -f1
}

# Succeeds if relation $2 (may be schema-qualified) exists in database $1.
has_rel() {
	local n
	n=$(qdb "$1" "SELECT to_regclass('$2') IS NOT NULL") || return 1
	[ "$n" = t ]
}

# Prints the number of rows in _prisma_migrations of database $1 (schema $2).
nrows() {
	qdb "$1" "SELECT count(*) FROM ${2:-public}._prisma_migrations"
}

# A TCP port on 127.0.0.1 with nothing listening on it right now.
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Waits up to 5 s for something to listen on 127.0.0.1:$1.
wait_listen() {
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
