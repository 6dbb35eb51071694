#!/bin/bash
# Builds the libFuzzer targets with clang and runs each for a while on a
# scratch copy of its seed corpus. Fails if any target crashes, leaks,
# trips a sanitizer or an oracle, or times out on one input.
#
# usage: tests/fuzz/run.sh [SECONDS_PER_TARGET] [BUILD_DIR]
#
#   SECONDS_PER_TARGET  default 20; 0 replays the seeds only (no fuzzing)
#   BUILD_DIR           default build-fuzz in the source tree; configured
#                       with -DFERRY_FUZZ=ON -DCMAKE_C_COMPILER=clang
#
# Targets run $FUZZ_JOBS at a time (default: the number of CPUs), so the
# default run takes about 8 targets x 20 s / CPUs plus the build;
# FUZZ_TARGETS="sqlscript lockfile" runs only those. Exits 77
# (ctest's "skipped") when clang or its libFuzzer runtime is missing.
# Crash inputs are kept in BUILD_DIR/fuzz-run/<target>/artifacts/; replay
# one with BUILD_DIR/tests/fuzz/fuzz_<target> FILE.
set -u

secs=${1:-20}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$src/build-fuzz}
cc=${FUZZ_CC:-clang}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

case $secs in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS_PER_TARGET] [BUILD_DIR]" >&2
	exit 2
	;;
esac

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "fuzz: skipped: no $cc (libFuzzer needs clang)"
	exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)' \
	'{ (void)d; (void)n; return 0; }' >"$probe/t.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe/t.c" \
	-o "$probe/t" >"$probe/log" 2>&1; then
	echo "fuzz: skipped: $cc cannot link -fsanitize=fuzzer" \
		"(Debian: apt-get install libclang-rt-14-dev)"
	sed 's/^/  /' "$probe/log"
	exit 77
fi

echo "fuzz: configuring $build"
if ! cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER="$cc" -DFERRY_FUZZ=ON \
	-DFERRY_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	>"$probe/log" 2>&1; then
	cat "$probe/log"
	exit 3
fi
if [ ! -f "$build/tests/fuzz/targets.txt" ]; then
	echo "fuzz: $src/CMakeLists.txt does not add tests/fuzz when" \
		"FERRY_FUZZ is on" >&2
	exit 3
fi
echo "fuzz: building"
if ! cmake --build "$build" -j"$jobs" --target fuzzers >"$probe/log" 2>&1; then
	cat "$probe/log"
	exit 3
fi

targets=${FUZZ_TARGETS:-$(tr ';' ' ' <"$build/tests/fuzz/targets.txt")}
run="$build/fuzz-run"
rm -rf "$run"
mkdir -p "$run"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() { # target
	local t=$1 w="$run/$1" args
	mkdir -p "$w/corpus" "$w/artifacts"
	cp -R "$src/tests/fuzz/corpus/$t/." "$w/corpus/"
	if [ "$secs" -eq 0 ]; then
		args=(-runs=0)
	else
		args=(-max_total_time="$secs")
	fi
	"$build/tests/fuzz/fuzz_$t" "${args[@]}" -timeout=25 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$w/artifacts/" "$w/corpus" \
		>"$w.log" 2>&1
	echo $? >"$w.rc"
}

echo "fuzz: running $(echo "$targets" | wc -w) targets for ${secs}s each," \
	"$jobs at a time"
pids=()
for t in $targets; do
	if [ ${#pids[@]} -ge "$jobs" ]; then
		wait "${pids[0]}"
		pids=("${pids[@]:1}")
	fi
	run_one "$t" &
	pids+=($!)
done
wait

fails=0
printf '%-16s %6s %10s %9s %7s %7s %6s\n' TARGET RESULT EXECS EXEC/S COV FT CORPUS
for t in $targets; do
	log="$run/$t.log"
	rc=$(cat "$run/$t.rc" 2>/dev/null || echo 99)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
		tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
	result=ok
	[ "$rc" -ne 0 ] && result=FAIL && fails=$((fails + 1))
	printf '%-16s %6s %10s %9s %7s %7s %6s\n' "$t" "$result" \
		"${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}"
done
for t in $targets; do
	rc=$(cat "$run/$t.rc" 2>/dev/null || echo 99)
	[ "$rc" -eq 0 ] && continue
	echo
	echo "=== fuzz_$t failed (exit $rc); log $run/$t.log"
	grep -E -A40 'ERROR: |runtime error|fuzz oracle failed|SUMMARY' \
		"$run/$t.log" | head -n 60
	find "$run/$t/artifacts" -type f -exec echo "  input: {}" \;
done
[ "$fails" -eq 0 ] && echo "fuzz: ok" || echo "fuzz: $fails target(s) failed"
[ "$fails" -eq 0 ]
