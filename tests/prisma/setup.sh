#!/bin/sh
# Installs the pinned real Prisma CLI (see package.json beside this file)
# into a cache directory, for the Prisma compatibility tests.
#
#   tests/prisma/setup.sh [CACHE_DIR]
#
# CACHE_DIR defaults to ${FERRY_PRISMA_DIR:-/tmp/ferry-prisma-6.19.3}.
# Idempotent: when CACHE_DIR already holds an install made from the same
# package-lock.json, it does nothing (no network). Safe to run concurrently
# (an flock on CACHE_DIR.lock serialises installers).
#
# Install scripts are not run (--ignore-scripts): @prisma/engines'
# postinstall would try to download native engine binaries, which cannot
# work here and is not needed (prisma.sh uses the WASM schema engine).
#
# Exit status: 0 ready; 77 npm registry unreachable (and the npm cache
# cannot satisfy the install offline): the one line on stderr starts with
# "npm registry unreachable: "; 1 any other failure; 2 usage error.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
PRISMA_VERSION=6.19.3
ADAPTER_VERSION=7.10.1

case "${1:-}" in
-h | --help)
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
[ $# -le 1 ] || {
	echo "usage: setup.sh [CACHE_DIR]" >&2
	exit 2
}
dir=${1:-${FERRY_PRISMA_DIR:-/tmp/ferry-prisma-$PRISMA_VERSION}}

die() {
	echo "setup.sh: $*" >&2
	exit 1
}
command -v node >/dev/null 2>&1 || die "node not found (need Node.js >= 18.18)"
command -v npm >/dev/null 2>&1 || die "npm not found"

lock_sum=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
stamp="$dir/.ferry-prisma-installed"

# Prints the installed version of package $1 in $dir, or nothing.
installed_version() {
	node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch (e) {}' \
		"$dir/node_modules/$1/package.json" 2>/dev/null || true
}

is_ready() {
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ] &&
		[ "$(installed_version prisma)" = "$PRISMA_VERSION" ] &&
		[ "$(installed_version @prisma/adapter-pg)" = "$ADAPTER_VERSION" ] &&
		[ -f "$dir/node_modules/prisma/build/index.js" ]
}

is_ready && exit 0

mkdir -p "$(dirname "$dir")"
# Serialise concurrent installers; re-check once we hold the lock.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$dir.lock"
	flock 9
	is_ready && exit 0
fi

mkdir -p "$dir"
rm -f "$stamp"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
log="$dir/npm-install.log"

npm_ci() { # npm ci quietly, without install scripts
	npm ci "$@" --loglevel=error --no-audit --no-fund --ignore-scripts --no-update-notifier
}

# Is the registry reachable? Short timeouts and no retries, so an offline
# machine answers in seconds instead of npm's minutes of retrying.
registry=$(npm config get registry 2>/dev/null || echo "the npm registry")
if ! probe=$(cd "$dir" && timeout 30 npm view "prisma@$PRISMA_VERSION" version \
	--loglevel=error --fetch-retries=0 --fetch-timeout=15000 --prefer-online 2>&1) ||
	[ "$probe" != "$PRISMA_VERSION" ]; then
	# Offline: the npm cache may still hold every tarball.
	if (cd "$dir" && npm_ci --offline) >"$log" 2>&1; then
		echo "$lock_sum" >"$stamp"
		is_ready && exit 0
	fi
	reason=$(printf '%s\n' "$probe" | grep -v '^npm warn' | grep . | head -n 1)
	echo "npm registry unreachable: $registry (${reason:-no answer within 30 s}); cannot install prisma@$PRISMA_VERSION" >&2
	exit 77
fi

if ! (cd "$dir" && npm_ci --prefer-offline) >"$log" 2>&1; then
	echo "setup.sh: npm ci failed in $dir; last lines of $log:" >&2
	tail -n 15 "$log" >&2
	exit 1
fi
echo "$lock_sum" >"$stamp"
is_ready || die "install in $dir finished but prisma $PRISMA_VERSION / @prisma/adapter-pg $ADAPTER_VERSION are not there"
exit 0
