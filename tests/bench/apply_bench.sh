#!/bin/bash
# apply_bench.sh -- how fast `ferry-agent apply` applies N trivial
# migrations, beside psql baselines, on a durable PostgreSQL (fsync on).
#
#   tests/bench/apply_bench.sh [--runs R] [--sizes 50,200,1000]
#                              [--agent PATH] [--connect-floor PATH]
#                              [--noop-reps K] [--keep-logs]
#
# For each N it generates N migrations in Prisma layout
# (DIR/20240101HHMMSS_mI/migration.sql), each
#   CREATE TABLE t_I (id bigint primary key, v text not null default '');
#   CREATE INDEX t_I_v ON t_I(v);
# and then, R times, applies them into a FRESH database per method (CREATE
# DATABASE before, DROP DATABASE after, a CHECKPOINT before each timed
# command), the methods interleaved within each run -- floor, psql-txn and
# ferry in an order rotated from run to run, then psql-per-file, the long
# one, so it never sits between the methods compared -- so that drift hits
# every method alike:
#
#   floor          psql -X -q -1 -v ON_ERROR_STOP=1 -f all.sql
#                  (all N in one transaction, no bookkeeping)
#   psql-txn       one psql session, every migration in BEGIN; ... COMMIT;
#                  (the per-migration transaction baseline)
#   psql-per-file  psql -X -q -v ON_ERROR_STOP=1 -f FILE, one process per file
#   ferry          ferry-agent apply --migrations DIR --database-url URL
#
# After the ferry run, with all N applied, it times K no-op re-runs of
# `ferry-agent apply` and K runs of bench_connect_floor (connect +
# "select 1"), alternating. Every timing is of the whole command (process
# start included), from bash's $EPOCHREALTIME (microseconds, no fork).
#
# It prints the load average and, from /proc/pressure, the share of the time
# some task waited for a CPU or for I/O: a busy machine makes noisy figures.
#
# Every run is checked: each method must exit 0 and leave N tables t_I and
# N indexes t_I_v; ferry must leave N rows in _prisma_migrations, all
# finished, none rolled back, and the no-op re-run must leave them as they
# were. A failure stops the benchmark (a benchmark of a failure is worthless).
#
# It starts its own cluster with deploy/pg-sandbox --durable (fsync,
# synchronous_commit and full_page_writes as PostgreSQL ships them; the
# script refuses to run otherwise) and destroys it on exit.
#
# Defaults: --runs 5, --sizes 50,200,1000, --noop-reps 1, binaries from
# build-bench/ (build-bench/agent/ferry-agent and
# build-bench/tests/bench/bench_connect_floor; if the latter was not built,
# the script compiles connect_floor.c with cc and pkg-config libpq).
#
# Exit status: 0 done, 1 a method failed or a check did not hold, 2 usage.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=5
SIZES=50,200,1000
AGENT=$ROOT/build-bench/agent/ferry-agent
FLOOR_BIN=$ROOT/build-bench/tests/bench/bench_connect_floor
NOOP_REPS=1
KEEP_LOGS=0
METHODS=(floor psql-txn psql-per-file ferry)	# table order
ROTATE=(floor psql-txn ferry)			# run order, rotated

usage() {
	sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit "${1:-2}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=${2:?}; shift 2 ;;
	--sizes) SIZES=${2:?}; shift 2 ;;
	--agent) AGENT=${2:?}; shift 2 ;;
	--connect-floor) FLOOR_BIN=${2:?}; shift 2 ;;
	--noop-reps) NOOP_REPS=${2:?}; shift 2 ;;
	--keep-logs) KEEP_LOGS=1; shift ;;
	-h | --help) usage 0 ;;
	*) echo "apply_bench: unknown argument '$1'" >&2; usage ;;
	esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "apply_bench: --runs wants a positive number" >&2; exit 2; }
[[ $NOOP_REPS =~ ^[1-9][0-9]*$ ]] || { echo "apply_bench: --noop-reps wants a positive number" >&2; exit 2; }
[[ $SIZES =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "apply_bench: --sizes wants N,N,..." >&2; exit 2; }
[ -n "${EPOCHREALTIME:-}" ] || { echo "apply_bench: needs bash >= 5 (EPOCHREALTIME)" >&2; exit 2; }
IFS=, read -r -a NS <<<"$SIZES"

die() {
	echo "apply_bench: $*" >&2
	exit 1
}
log() {
	echo "apply_bench: $*" >&2
}

[ -x "$AGENT" ] || die "no ferry-agent at $AGENT (build it: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2)"
command -v psql >/dev/null || die "psql not found"

WORK=$(mktemp -d /tmp/ferry-bench-work.XXXXXX)
BASEDIR=$(mktemp -d /tmp/ferry-bench.XXXXXX)
chmod 755 "$BASEDIR"
cleanup() {
	"$ROOT/deploy/pg-sandbox" destroy -d "$BASEDIR" >/dev/null 2>&1 || true
	rm -rf "$BASEDIR"
	if [ "$KEEP_LOGS" = 1 ]; then
		echo "apply_bench: logs kept in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x "$FLOOR_BIN" ]; then
	log "no $FLOOR_BIN; compiling connect_floor.c"
	FLOOR_BIN=$WORK/bench_connect_floor
	# shellcheck disable=SC2046
	cc -std=c11 -O2 $(pkg-config --cflags libpq) \
		"$ROOT/tests/bench/connect_floor.c" -o "$FLOOR_BIN" \
		$(pkg-config --libs libpq) || die "cannot build connect_floor.c"
fi

URL=$("$ROOT/deploy/pg-sandbox" start -d "$BASEDIR" --durable) ||
	die "pg-sandbox start failed"
BASE_URL=${URL%/*}	# postgresql://postgres@127.0.0.1:PORT

# The whole point: durability as PostgreSQL ships it.
admin() {
	PGOPTIONS='-c client_min_messages=warning' \
		psql -X -q -At -v ON_ERROR_STOP=1 -d "$URL" -c "$1"
}
for s in fsync synchronous_commit full_page_writes; do
	v=$(admin "SHOW $s")
	[ "$v" = on ] || die "$s = $v: the benchmark needs $s = on (pg-sandbox --durable)"
done
PGVERSION=$(admin "SHOW server_version")

# ---------------------------------------------------------------- data

# gen N: WORK/nN/{migrations/<ts>_mI/migration.sql, all.sql, txn.sql}
gen() {
	local n=$1 d=$WORK/n$1 i ts name
	mkdir -p "$d/migrations"
	printf '# Please do not edit this file manually\nprovider = "postgresql"\n' \
		>"$d/migrations/migration_lock.toml"
	: >"$d/all.sql"
	: >"$d/txn.sql"
	: >"$d/files"
	for ((i = 1; i <= n; i++)); do
		printf -v ts '20240101%02d%02d%02d' $((i / 3600)) $((i / 60 % 60)) $((i % 60))
		name=${ts}_m$i
		mkdir "$d/migrations/$name"
		printf 'CREATE TABLE t_%d (id bigint primary key, v text not null default '"''"');\nCREATE INDEX t_%d_v ON t_%d(v);\n' \
			"$i" "$i" "$i" >"$d/migrations/$name/migration.sql"
		cat "$d/migrations/$name/migration.sql" >>"$d/all.sql"
		{
			echo 'BEGIN;'
			cat "$d/migrations/$name/migration.sql"
			echo 'COMMIT;'
		} >>"$d/txn.sql"
		echo "$d/migrations/$name/migration.sql" >>"$d/files"
	done
}

# ---------------------------------------------------------------- timing

now_us() {
	local t=$EPOCHREALTIME
	echo "${t/./}"
}

# run_method METHOD N DBURL LOG: runs it, prints elapsed microseconds.
run_method() {
	local m=$1 n=$2 db=$3 out=$4 d=$WORK/n$2 t0 t1 f rc=0
	case $m in
	floor)
		t0=$EPOCHREALTIME
		psql -X -q -1 -v ON_ERROR_STOP=1 -d "$db" -f "$d/all.sql" >"$out" 2>&1 || rc=$?
		t1=$EPOCHREALTIME
		;;
	psql-txn)
		t0=$EPOCHREALTIME
		psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$d/txn.sql" >"$out" 2>&1 || rc=$?
		t1=$EPOCHREALTIME
		;;
	psql-per-file)
		t0=$EPOCHREALTIME
		while read -r f; do
			psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$f" >>"$out" 2>&1 || { rc=$?; break; }
		done <"$d/files"
		t1=$EPOCHREALTIME
		;;
	ferry)
		t0=$EPOCHREALTIME
		"$AGENT" apply --migrations "$d/migrations" --database-url "$db" >"$out" 2>&1 || rc=$?
		t1=$EPOCHREALTIME
		;;
	esac
	[ "$rc" = 0 ] || die "$m (N=$n) exited $rc; output in $out: $(tail -n 5 "$out")"
	echo $((${t1/./} - ${t0/./}))
}

# The schema a method left must be the N tables and N indexes.
check_schema() {
	local m=$1 n=$2 db=$3 got
	got=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "
		SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
		        WHERE s.nspname = 'public' AND c.relkind = 'r' AND c.relname ~ '^t_[0-9]+\$')
		    || ' ' ||
		       (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
		        WHERE s.nspname = 'public' AND c.relkind = 'i' AND c.relname ~ '^t_[0-9]+_v\$')")
	[ "$got" = "$n $n" ] || die "$m (N=$n): expected $n tables and $n indexes, found '$got'"
}

# Ferry's history must hold N finished, not rolled back, one-step rows.
check_history() {
	local n=$1 db=$2 when=$3 got
	got=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "
		SELECT count(*) || ' ' ||
		       count(*) FILTER (WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL
		                        AND applied_steps_count = 1) || ' ' ||
		       count(DISTINCT migration_name)
		FROM public._prisma_migrations")
	[ "$got" = "$n $n $n" ] || die "ferry (N=$n, $when): _prisma_migrations has rows/finished/distinct '$got', expected '$n $n $n'"
}

# ---------------------------------------------------------------- stats

# stats FILE: "median min max" (seconds as given, one sample a line)
stats() {
	sort -g "$1" | awk '{ a[NR] = $1 }
		END {
			if (NR % 2) med = a[(NR + 1) / 2]
			else med = (a[NR / 2] + a[NR / 2 + 1]) / 2
			printf "%.6f %.6f %.6f\n", med, a[1], a[NR]
		}'
}

# ---------------------------------------------------------------- main

# What else the machine was doing: the load average, and where the kernel
# has pressure stall information, the share of the benchmark's wall time
# during which some task waited for a CPU or for I/O (from the cumulative
# "total" counters, so it covers the whole benchmark, not a 60 s window).
psi_total() {
	[ -r "/proc/pressure/$1" ] && awk '/^some/ { sub("total=", "", $5); print $5 }' "/proc/pressure/$1"
}
machine_load() {
	echo "load $(cut -d' ' -f1 /proc/loadavg)"
}
PSI_CPU0=$(psi_total cpu || true)
PSI_IO0=$(psi_total io || true)
LOAD_START=$(machine_load)

log "PostgreSQL $PGVERSION at $URL (fsync, synchronous_commit, full_page_writes on)"
log "machine: $(nproc) cores, $LOAD_START"
log "agent $AGENT; connect floor $FLOOR_BIN; runs $RUNS; sizes $SIZES"
START=$EPOCHREALTIME
for n in "${NS[@]}"; do
	log "N=$n: generating"
	gen "$n"
	for ((r = 1; r <= RUNS; r++)); do
		line="N=$n run $r/$RUNS:"
		# floor, psql-txn and ferry (seconds each) rotate, so that each
		# in turn goes first; psql-per-file (ten times longer) goes last,
		# so it never sits between the methods being compared.
		for ((k = 0; k < ${#METHODS[@]}; k++)); do
			if ((k < 3)); then
				m=${ROTATE[$(((k + r - 1) % 3))]}
			else
				m=psql-per-file
			fi
			db=bench_${n}_${r}_${m//-/_}
			admin "DROP DATABASE IF EXISTS $db" >/dev/null
			admin "CREATE DATABASE $db" >/dev/null
			admin "CHECKPOINT" >/dev/null
			us=$(run_method "$m" "$n" "$BASE_URL/$db" "$WORK/$db.log")
			echo "$us" | awk '{ printf "%.6f\n", $1 / 1e6 }' >>"$WORK/t_${n}_$m"
			check_schema "$m" "$n" "$BASE_URL/$db"
			if [ "$m" = ferry ]; then
				check_history "$n" "$BASE_URL/$db" "after apply"
				for ((j = 0; j < NOOP_REPS; j++)); do
					# Alternate which goes first.
					for w in $( ((j % 2)) && echo "floor noop" || echo "noop floor"); do
						if [ "$w" = noop ]; then
							t0=$EPOCHREALTIME
							"$AGENT" apply --migrations "$WORK/n$n/migrations" \
								--database-url "$BASE_URL/$db" >"$WORK/$db.noop.log" 2>&1 ||
								die "no-op ferry-agent apply (N=$n) failed: $(tail -n 5 "$WORK/$db.noop.log")"
							t1=$EPOCHREALTIME
							grep -q '^nothing to apply' "$WORK/$db.noop.log" ||
								die "no-op ferry-agent apply (N=$n) did not say 'nothing to apply': $(tail -n 5 "$WORK/$db.noop.log")"
							echo $((${t1/./} - ${t0/./})) | awk '{ printf "%.3f\n", $1 / 1e3 }' >>"$WORK/noop_${n}_ferry"
						else
							t0=$EPOCHREALTIME
							"$FLOOR_BIN" "$BASE_URL/$db" || die "bench_connect_floor failed"
							t1=$EPOCHREALTIME
							echo $((${t1/./} - ${t0/./})) | awk '{ printf "%.3f\n", $1 / 1e3 }' >>"$WORK/noop_${n}_floor"
						fi
					done
				done
				check_history "$n" "$BASE_URL/$db" "after the no-op re-run"
			fi
			admin "DROP DATABASE $db" >/dev/null
			line="$line $m $(awk -v u="$us" 'BEGIN { printf "%.3fs", u / 1e6 }')"
		done
		log "$line"
	done
done
ELAPSED=$(awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
LOAD_END=$(machine_load)
PRESSURE=
if [ -n "$PSI_CPU0" ] && [ -n "$PSI_IO0" ]; then
	PRESSURE=$(awk -v c0="$PSI_CPU0" -v c1="$(psi_total cpu)" -v i0="$PSI_IO0" \
		-v i1="$(psi_total io)" -v s="$ELAPSED" 'BEGIN {
			printf "; some task was waiting for a CPU %.0f%% and for I/O %.0f%% of the time",
			    (c1 - c0) / 1e4 / s, (i1 - i0) / 1e4 / s
		}')
fi

# ---------------------------------------------------------------- report

echo
echo "ferry-agent apply benchmark: PostgreSQL $PGVERSION, fsync=on," \
	"synchronous_commit=on; $(nproc) cores; $RUNS runs; fresh database per run" \
	"and method; wall time of the whole command; ${ELAPSED}s in all"
echo "machine: $LOAD_START at start, $LOAD_END at end$PRESSURE" \
	"(the I/O share includes the benchmark's own fsyncs; a CPU share of more" \
	"than a few percent means other work competed for the CPUs: noisy figures)"
echo
# x_floor, x_psql-txn: ratio of medians. paired: median over runs of
# ferry / psql-txn within the same run (drift cancels).
printf '%6s  %-14s %9s %9s %9s %8s %11s %7s\n' \
	N method median_s min_s max_s x_floor x_psql-txn paired
for n in "${NS[@]}"; do
	read -r fmed _ <<<"$(stats "$WORK/t_${n}_floor")"
	read -r tmed _ <<<"$(stats "$WORK/t_${n}_psql-txn")"
	paste "$WORK/t_${n}_ferry" "$WORK/t_${n}_psql-txn" |
		awk '{ printf "%.6f\n", $1 / $2 }' >"$WORK/ratio_$n"
	read -r pmed _ <<<"$(stats "$WORK/ratio_$n")"
	for m in "${METHODS[@]}"; do
		read -r med mn mx <<<"$(stats "$WORK/t_${n}_$m")"
		awk -v n="$n" -v m="$m" -v med="$med" -v mn="$mn" -v mx="$mx" \
			-v f="$fmed" -v t="$tmed" -v p="$pmed" 'BEGIN {
				xt = (m == "ferry" || m == "psql-txn") ? sprintf("%.3f", med / t) : "";
				pt = m == "ferry" ? sprintf("%.3f", p) : "";
				printf "%6s  %-14s %9.3f %9.3f %9.3f %8.2f %11s %7s\n",
				    n, m, med, mn, mx, med / f, xt, pt
			}'
	done
done
echo
printf '%6s  %-28s %9s %9s %9s\n' N "no-op re-run (all applied)" median_ms min_ms max_ms
for n in "${NS[@]}"; do
	for w in ferry floor; do
		read -r med mn mx <<<"$(stats "$WORK/noop_${n}_$w")"
		label=$([ "$w" = ferry ] && echo "ferry-agent apply" || echo "connect_floor (select 1)")
		printf '%6s  %-28s %9.1f %9.1f %9.1f\n' "$n" "$label" "$med" "$mn" "$mx"
	done
done

# Targets (issue): at N=1000, ferry <= 1.05 x psql-txn; no-op <= 20 ms.
for n in "${NS[@]}"; do
	[ "$n" = 1000 ] || continue
	echo
	read -r fm _ <<<"$(stats "$WORK/t_1000_ferry")"
	read -r tm _ <<<"$(stats "$WORK/t_1000_psql-txn")"
	read -r nm _ <<<"$(stats "$WORK/noop_1000_ferry")"
	read -r pr prmin prmax <<<"$(stats "$WORK/ratio_1000")"
	awk -v f="$fm" -v t="$tm" -v z="$nm" -v pr="$pr" -v prmin="$prmin" \
		-v prmax="$prmax" 'BEGIN {
		printf "target N=1000 apply: ferry / psql-txn = %.3f (<= 1.05): %s\n",
		    f / t, f / t <= 1.05 ? "MET" : "NOT MET"
		printf "  (same run, paired: median %.3f, min %.3f, max %.3f)\n",
		    pr, prmin, prmax
		printf "target N=1000 no-op: %.1f ms (<= 20 ms): %s\n",
		    z, z <= 20 ? "MET" : "NOT MET"
	}'
done
