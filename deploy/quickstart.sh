#!/bin/sh
# The main job, from a bare Debian 12 machine: install what is needed,
# build Ferry, start throwaway dev/shadow/staging/prod PostgreSQL clusters
# and roll the example migrations out across them with ferry-agent, one
# stage after the other. Everything started here is stopped and removed at the end unless
# --keep is given.
#
#   deploy/quickstart.sh [--keep]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
keep=0
case "${1:-}" in
--keep) keep=1 ;;
-h|--help)
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	exit 0 ;;
"") ;;
*) echo "quickstart: unknown option '$1'" >&2; exit 2 ;;
esac

"$root/deploy/install-deps.sh"
echo "== build"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
ferry="$root/build/coordinator/ferry"
migrations="$root/deploy/examples/migrations"

sandbox=$(mktemp -d /tmp/ferry-quickstart.XXXXXX)
chmod 755 "$sandbox"
cleanup() {
	if [ "$keep" -eq 1 ]; then
		echo "== clusters kept running; stop them with:"
		echo "   $root/deploy/pg-sandbox destroy -d $sandbox"
	else
		"$root/deploy/pg-sandbox" destroy -d "$sandbox" >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== start dev, shadow, staging and prod databases"
"$root/deploy/pg-sandbox" start -d "$sandbox" --names dev,shadow,staging,prod \
	>"$sandbox/urls"

echo "== the migrations, in the order Prisma applies them"
"$ferry" migrations list "$migrations"

agent="$root/build/agent/ferry-agent"
for env in dev shadow staging prod; do
	url=$("$root/deploy/pg-sandbox" url -d "$sandbox" "$env")
	echo "== $env: ferry-agent apply ($url)"
	"$agent" apply --migrations "$migrations" --database-url "$url"
	echo "== $env: ferry-agent status"
	"$agent" status --migrations "$migrations" --database-url "$url" | tail -n 1
	echo "== $env: run again: nothing to do"
	"$agent" apply --migrations "$migrations" --database-url "$url"
done
echo "== done: the example schema is on dev, shadow, staging and prod,"
echo "   recorded in _prisma_migrations exactly as Prisma would record it"
