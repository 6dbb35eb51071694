#!/bin/sh
# Installs what is needed, builds Ferry twice (release, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs the whole test
# suite in both builds. Exit status 0 only if every test passed.
#
#   tests/run.sh            everything
#   FERRY_JOBS=4 tests/run.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${FERRY_JOBS:-$(nproc 2>/dev/null || echo 2)}

"$root/deploy/install-deps.sh"

status=0
run_build() { # dir label cmake-args...
	dir=$1
	label=$2
	shift 2
	echo "== $label: configure and build ($dir)"
	cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
	cmake --build "$dir" -j "$jobs"
}

run_build build release
run_build build-asan "asan+ubsan" -DFERRY_SANITIZE=ON

echo "== release: ctest"
(cd build && ctest -j "$jobs" --output-on-failure) || status=1

echo "== asan+ubsan: ctest (without the slow, many-trial tests)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd build-asan && ctest -j "$jobs" --output-on-failure -LE slow) || status=1

if [ "$status" -eq 0 ]; then
	echo "== all tests passed (release and asan+ubsan)"
else
	echo "== TESTS FAILED"
fi
exit "$status"
