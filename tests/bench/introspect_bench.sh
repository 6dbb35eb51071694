#!/bin/bash
# introspect_bench.sh -- how long `ferry-agent introspect` takes to build
# the schema document and its digest, and how many queries it sends.
#
#   tests/bench/introspect_bench.sh [--tables N] [--runs R] [--agent PATH]
#
# It starts its own cluster (deploy/pg-sandbox --durable), creates N tables
# (default 1,000), each with 5 columns, a primary key, an index and a
# foreign key to the previous table, then runs `ferry-agent introspect
# --digest --stats` R times (default 10) and reports for each run:
#
#   build    document + digest inside ferry-agent (its --stats line: from
#            BEGIN of the snapshot to the digest, connection excluded)
#   server   of which waiting for the server's answers
#   command  the whole command, process start and connection included
#
# and the number of queries: the agent's own count, and the statements the
# server logged for the run (log_statement = all on the benchmark database;
# the session setup of ferry_db_open is listed apart). Each run must print
# the same digest. The target is build < 500 ms for 1,000 tables.
#
# Defaults: --tables 1000, --runs 10, --agent build-bench/agent/ferry-agent
# (falling back to build-schema/ and build/).
#
# Exit status: 0 done, 1 a run failed or the digests differ, 2 usage.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TABLES=1000
RUNS=10
AGENT=

usage() {
	sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--tables) TABLES=${2:?}; shift 2 ;;
	--runs) RUNS=${2:?}; shift 2 ;;
	--agent) AGENT=${2:?}; shift 2 ;;
	-h | --help) usage ;;
	*) echo "introspect_bench: unknown argument '$1'" >&2; usage ;;
	esac
done
[[ $TABLES =~ ^[1-9][0-9]*$ ]] || { echo "introspect_bench: --tables wants a positive number" >&2; exit 2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "introspect_bench: --runs wants a positive number" >&2; exit 2; }
if [ -z "$AGENT" ]; then
	for b in build-bench build-schema build; do
		if [ -x "$ROOT/$b/agent/ferry-agent" ]; then
			AGENT=$ROOT/$b/agent/ferry-agent
			break
		fi
	done
fi
[ -n "$AGENT" ] && [ -x "$AGENT" ] || { echo "introspect_bench: no ferry-agent (build it, or give --agent)" >&2; exit 2; }
unset DATABASE_URL DIRECT_URL PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD \
	PGSERVICE PGOPTIONS FERRY_LOG

TMP=$(mktemp -d /tmp/ferry-it.XXXXXX)
chmod 755 "$TMP"
cleanup() {
	"$ROOT/deploy/pg-sandbox" destroy -d "$TMP/sb" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

url=$("$ROOT/deploy/pg-sandbox" start -d "$TMP/sb" --durable 2>"$TMP/start.err") || {
	echo "introspect_bench: pg-sandbox start failed:" >&2
	cat "$TMP/start.err" >&2
	exit 1
}
base=${url%/postgres}
db=$base/bench
log=$TMP/sb/pg1/server.log
psql -X -q -d "$url" -c "CREATE DATABASE bench" >/dev/null

echo "creating $TABLES tables (5 columns, primary key, index, foreign key each)..."
python3 - "$TABLES" >"$TMP/schema.sql" <<'EOF'
import sys
n = int(sys.argv[1])
print("BEGIN;")
for i in range(n):
    fk = ", parent_id bigint REFERENCES t%d (id)" % (i - 1) if i else ", parent_id bigint"
    print("CREATE TABLE t%d (id bigint PRIMARY KEY, name text NOT NULL DEFAULT '',"
          " amount numeric(12,2), created_at timestamptz NOT NULL DEFAULT now()%s);" % (i, fk))
    print("CREATE INDEX t%d_name_idx ON t%d (name);" % (i, i))
print("COMMIT;")
EOF
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$TMP/schema.sql" >/dev/null
n=$(psql -X -A -t -d "$db" -c "SELECT count(*) FROM pg_class c
	JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = 'public' AND c.relkind = 'r'")
[ "$n" -eq "$TABLES" ] || { echo "introspect_bench: $n tables, expected $TABLES" >&2; exit 1; }
psql -X -q -d "$db" -c "VACUUM ANALYZE" >/dev/null
psql -X -q -d "$url" -c "ALTER DATABASE bench SET log_statement = 'all'" >/dev/null

echo "ferry-agent: $AGENT"
echo "server: $(psql -X -A -t -d "$db" -c 'SHOW server_version')"
printf '%-4s %10s %10s %10s %8s %8s\n' run build_ms server_ms command_ms queries logged
first_digest=
builds=()
status=0
for r in $(seq "$RUNS"); do
	start=$(wc -l <"$log")
	t0=$EPOCHREALTIME
	if ! "$AGENT" introspect --database-url "$db" --digest --stats \
		>"$TMP/out" 2>"$TMP/err"; then
		echo "introspect_bench: run $r failed:" >&2
		cat "$TMP/err" >&2
		exit 1
	fi
	t1=$EPOCHREALTIME
	sleep 0.2
	digest=$(cat "$TMP/out")
	[ -z "$first_digest" ] && first_digest=$digest
	if [ "$digest" != "$first_digest" ]; then
		echo "introspect_bench: run $r gave digest $digest, run 1 $first_digest" >&2
		status=1
	fi
	stats=$(cat "$TMP/err")
	queries=$(grep -oE 'with [0-9]+ queries' <<<"$stats" | grep -oE '[0-9]+')
	build=$(sed -nE 's/.*queries: ([0-9.]+) ms .*/\1/p' <<<"$stats")
	server=$(sed -nE 's/.*\(([0-9.]+) ms waiting.*/\1/p' <<<"$stats")
	tail -n +"$((start + 1))" "$log" | grep -E 'LOG:  (statement|execute [^:]*):' \
		>"$TMP/statements" || true
	logged=$(grep -cv 'SET search_path TO' "$TMP/statements" || true)
	command=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
	printf '%-4s %10s %10s %10s %8s %8s\n' "$r" "$build" "$server" "$command" "$queries" "$logged"
	builds+=("$build")
	if [ "$queries" != "$logged" ]; then
		echo "introspect_bench: the agent counts $queries queries, the server logged $logged" >&2
		status=1
	fi
done
echo
echo "statements of the last run, as the server logged them (session setup first):"
sed -E 's/^.*LOG:  //' "$TMP/statements" | cut -c1-110 | nl -ba
echo
printf '%s\n' "${builds[@]}" | sort -n | awk -v t="$TABLES" '
	{ v[NR] = $1 }
	END {
		med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "document + digest for %d tables: median %.1f ms, min %.1f ms, max %.1f ms (target < 500 ms)\n", t, med, v[1], v[NR]
	}'
echo "digest: $first_digest"
exit "$status"
