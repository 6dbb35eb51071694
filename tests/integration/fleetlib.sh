# shellcheck shell=bash
# Helpers for tests that run a coordinator and agents (sourced, not run).
#
#   . "$(dirname "$0")/fleetlib.sh"
#   fleet_init FERRY FERRY_AGENT    # temp dir, coordinator data dir, a port
#   fleet_serve [ARGS...]           # starts ferry serve; waits until it listens
#   fleet_dbs dev,prod              # one throwaway cluster per name
#   fleet_agent ID ENV DBNAME       # writes ID.conf, starts ferry-agent run
#   cli agents --json               # the ferry CLI as the operator; OUT/ERR/RC
#   state_sql "SELECT ..."          # a query on the coordinator's state
#   fleet_done                      # prints the count, exits 0 or 1
#
# Everything started is stopped on exit, by PID: agents, the coordinator,
# the coordinator's private cluster, the sandbox clusters.

set -uo pipefail
export LC_ALL=C

FL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SANDBOX=$FL_ROOT/deploy/pg-sandbox
FAILS=0
CHECKS=0
declare -A AGENT_PID=()

fail() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}
check() {
	CHECKS=$((CHECKS + 1))
	echo "check: $*"
}

fleet_cleanup() {
	local id pid
	for id in "${!AGENT_PID[@]}"; do
		pid=${AGENT_PID[$id]}
		{ kill -9 "$pid" && wait "$pid"; } 2>/dev/null
	done
	if [ -n "${SERVE_PID:-}" ]; then
		kill -TERM "$SERVE_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$SERVE_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$SERVE_PID" 2>/dev/null
	fi
	stop_state_cluster
	[ -d "${FL_TMP:-/nonexistent}/pg" ] && "$SANDBOX" destroy -d "$FL_TMP/pg" >/dev/null 2>&1
	[ -n "${FL_TMP:-}" ] && rm -rf "$FL_TMP"
}

# The coordinator's private postmaster survives a kill -9 of the
# coordinator: stop it by the PID in its pid file (if it is a postgres).
stop_state_cluster() {
	local pidf=$FL_TMP/coord/pgdata/postmaster.pid pid
	[ -f "$pidf" ] || return 0
	pid=$(head -1 "$pidf")
	if [ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = postgres ]; then
		kill -INT "$pid" 2>/dev/null
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
	fi
}

fleet_init() {
	FERRY=$1
	FERRY_AGENT=$2
	FL_TMP=$(mktemp -d /tmp/ferry-fleet.XXXXXX)
	chmod 755 "$FL_TMP"
	trap fleet_cleanup EXIT
	trap "exit 130" INT TERM
	PORT=$(shuf -i 20000-32000 -n 1)
	URL=tcp://127.0.0.1:$PORT
	"$FERRY" serve --init --data "$FL_TMP/coord" --user postgres \
		>"$FL_TMP/init.out" 2>"$FL_TMP/init.err" ||
		{ cat "$FL_TMP/init.err"; echo "FAIL: serve --init"; exit 1; }
	export FERRY_KEY=$FL_TMP/coord/keys/admin.key
	export FERRY_COORDINATOR_KEY=$FL_TMP/coord/keys/coordinator.pub
	export FERRY_COORDINATOR=$URL
	"$FERRY" keygen --name release -o "$FL_TMP/keys" --no-passphrase >/dev/null ||
		{ echo "FAIL: keygen"; exit 1; }
}

# Starts the coordinator (extra args passed on); waits for "listening".
fleet_serve() {
	local before
	touch "$FL_TMP/serve.log"
	before=$(grep -c 'coordinator listening' "$FL_TMP/serve.log")
	FERRY_LOG=${FERRY_LOG:-info} "$FERRY" serve --data "$FL_TMP/coord" \
		--user postgres --listen "$URL" "$@" >>"$FL_TMP/serve.log" 2>&1 &
	SERVE_PID=$!
	for _ in $(seq 300); do
		[ "$(grep -c 'coordinator listening' "$FL_TMP/serve.log")" -gt "$before" ] &&
			return 0
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$FL_TMP/serve.log"
	echo "FAIL: the coordinator did not start"
	exit 1
}

fleet_dbs() {
	"$SANDBOX" start -d "$FL_TMP/pg" --names "$1" >/dev/null 2>&1 ||
		{ echo "FAIL: pg-sandbox start"; exit 1; }
}

dburl() { "$SANDBOX" url -d "$FL_TMP/pg" "$1"; }

# Writes the config of agent ID (environment ENV, database DB).
fleet_conf() {
	local id=$1 env=$2 db=$3
	mkdir -p "$FL_TMP/st-$id"
	cat >"$FL_TMP/$id.conf" <<EOF
[agent]
name = $id
environment = $env
project = acme
state_dir = $FL_TMP/st-$id
database_url = $(dburl "$db")

[coordinator]
url = $URL
public_key_file = $FL_TMP/coord/keys/coordinator.pub
poll_hold = ${POLL_HOLD:-3s}

[trust]
bundle_key_file = $FL_TMP/keys/release.pub
EOF
}

fleet_agent() {
	local id=$1
	[ -f "$FL_TMP/$id.conf" ] || fleet_conf "$@"
	FERRY_LOG=${FERRY_LOG:-info} "$FERRY_AGENT" run --config "$FL_TMP/$id.conf" \
		>>"$FL_TMP/agent-$id.log" 2>&1 &
	AGENT_PID[$id]=$!
}

# Waits until ID's log matches the regex, up to $3 seconds (default 20).
wait_log() {
	local f=$1 re=$2 t=${3:-20} i
	for ((i = 0; i < t * 10; i++)); do
		grep -Eq "$re" "$f" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

cli() {
	OUT=$FL_TMP/cli.out
	ERR=$FL_TMP/cli.err
	"$FERRY" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	if grep -q 'AddressSanitizer\|LeakSanitizer\|runtime error:' "$ERR"; then
		fail "sanitizer report from ferry $*"
		cat "$ERR"
	fi
}

expect_rc() {
	check "$2: exit $1"
	if [ "$RC" != "$1" ]; then
		fail "$2: exit $RC, expected $1"
		sed 's/^/    /' "$OUT" "$ERR" | head -30
	fi
}

expect_grep() {
	check "$1 matches /$2/"
	grep -Eq "$2" "$1" || { fail "no /$2/ in $1"; sed 's/^/    /' "$1" | head -30; }
}

expect_eq() {
	check "$3: '$1'"
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# One query on the coordinator's state, as the postgres user.
state_sql() {
	runuser -u postgres -- psql -X -At -h "$FL_TMP/coord/pgrun" -d ferry \
		-c "$1" 2>&1
}

# No sanitizer report or crash in any log so far.
logs_clean() {
	check "no crash or sanitizer report in the logs"
	if grep -l 'AddressSanitizer\|runtime error:\|LeakSanitizer' \
		"$FL_TMP"/*.log 2>/dev/null; then
		fail "sanitizer report in a log"
		grep -h -A20 'AddressSanitizer\|runtime error:\|LeakSanitizer' "$FL_TMP"/*.log | head -60
	fi
}

# Stops agents and the coordinator the clean way (SIGTERM), so that their
# exit paths run (and a sanitizer build checks them for leaks).
fleet_stop() {
	local id pid
	for id in "${!AGENT_PID[@]}"; do
		pid=${AGENT_PID[$id]}
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
		unset "AGENT_PID[$id]"
	done
	if [ -n "${SERVE_PID:-}" ]; then
		kill -TERM "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
		check "the coordinator stops cleanly on SIGTERM"
		grep -q 'coordinator stopping' "$FL_TMP/serve.log" ||
			fail "no clean shutdown"
		SERVE_PID=
	fi
}

fleet_done() {
	fleet_stop
	logs_clean
	if [ "$FAILS" -ne 0 ]; then
		echo "== serve.log (tail)"
		tail -40 "$FL_TMP/serve.log"
		for f in "$FL_TMP"/agent-*.log; do
			[ -f "$f" ] && { echo "== $f (tail)"; tail -15 "$f"; }
		done
		echo "$FAILS of $CHECKS checks FAILED"
		exit 1
	fi
	echo "all $CHECKS checks passed"
	exit 0
}
