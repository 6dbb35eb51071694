#!/bin/bash
# The main job, from a bare Debian 12 machine (as root): install what is
# needed, build Ferry, start throwaway dev/shadow/staging/prod PostgreSQL
# clusters, and roll the example migrations out across them the way Ferry
# is meant to run: a signed bundle, a shadow replay, a coordinator with one
# agent beside each database, enrolment, promotion stage by stage, and two
# release managers' approvals for prod, checked by the prod agent itself.
# Everything started here is stopped and removed at the end unless --keep.
#
#   deploy/quickstart.sh [--keep]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
keep=0
case "${1:-}" in
--keep) keep=1 ;;
-h | --help)
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "quickstart: unknown option '$1'" >&2
	exit 2
	;;
esac
if [ "$(id -u)" -ne 0 ]; then
	echo "quickstart: run as root (it installs packages and starts PostgreSQL as the postgres user)" >&2
	exit 2
fi
"$root/deploy/install-deps.sh"
echo "== build"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
ferry=$root/build/coordinator/ferry
agent=$root/build/agent/ferry-agent
migrations=$root/deploy/examples/migrations
work=$(mktemp -d /tmp/ferry-quickstart.XXXXXX)
chmod 755 "$work"
pids=()

cleanup() {
	local p
	if [ "$keep" -eq 1 ]; then
		echo "== kept running: agents and coordinator (PIDs ${pids[*]}), clusters in $work"
		echo "   stop: kill ${pids[*]}; $root/deploy/pg-sandbox destroy -d $work/pg"
		return
	fi
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	"$root/deploy/pg-sandbox" destroy -d "$work/pg" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }

step "start dev, shadow, staging and prod databases"
"$root/deploy/pg-sandbox" start -d "$work/pg" --names dev,shadow,staging,prod

step "the migrations, in the order Prisma applies them"
"$ferry" migrations list "$migrations"

step "lint: risky operations, with the safer pattern (warnings only here)"
"$ferry" lint "$migrations" || [ $? -eq 1 ]

step "keys: the release key signs bundles; alice and bob approve prod"
for k in release alice bob; do
	"$ferry" keygen --name "$k" -o "$work/keys" --no-passphrase >/dev/null
	echo "  $k: $(cat "$work/keys/$k.pub")"
done

step "a signed bundle of the whole folder"
"$ferry" bundle create --migrations "$migrations" --project acme \
	--key "$work/keys/release.key" -o "$work/r1.fbundle"

step "shadow: replay the bundle from empty, schema digest after each migration"
"$agent" shadow --bundle "$work/r1.fbundle" --trust "$work/keys/release.pub" \
	--shadow-url "$("$root/deploy/pg-sandbox" url -d "$work/pg" shadow)" \
	--init-shadow -o "$work/shadow.json" \
	--database-url "$("$root/deploy/pg-sandbox" url -d "$work/pg" prod)"

step "the coordinator: keys, embedded state store, first operator key"
"$ferry" serve --init --data "$work/coord" --user postgres
port=$(shuf -i 20000-32000 -n 1)
export FERRY_COORDINATOR=tcp://127.0.0.1:$port
export FERRY_KEY=$work/coord/keys/admin.key
export FERRY_COORDINATOR_KEY=$work/coord/keys/coordinator.pub
"$ferry" serve --data "$work/coord" --user postgres --listen "$FERRY_COORDINATOR" \
	--poll-hold 5s 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 100); do
	grep -q 'coordinator listening' "$work/serve.log" && break
	sleep 0.1
done
grep 'coordinator listening' "$work/serve.log"

step "one agent beside each of dev, staging and prod"
for env in dev staging prod; do
	mkdir -p "$work/agent-$env"
	{
		echo "[agent]"
		echo "name = $env-1"
		echo "environment = $env"
		echo "project = acme"
		echo "state_dir = $work/agent-$env"
		echo "database_url = $("$root/deploy/pg-sandbox" url -d "$work/pg" "$env")"
		echo "[coordinator]"
		echo "url = $FERRY_COORDINATOR"
		echo "public_key_file = $work/coord/keys/coordinator.pub"
		echo "poll_hold = 5s"
		echo "[trust]"
		echo "bundle_key_file = $work/keys/release.pub"
		if [ "$env" = prod ]; then
			echo "[approvals]"
			echo "required = 2"
			echo "approver_file = $work/keys/alice.pub"
			echo "approver_file = $work/keys/bob.pub"
		fi
	} >"$work/agent-$env.conf"
	"$agent" run --config "$work/agent-$env.conf" 2>"$work/agent-$env.log" &
	pids+=($!)
done
for env in dev staging prod; do
	for _ in $(seq 100); do
		grep -q 'registered' "$work/agent-$env.log" && break
		sleep 0.1
	done
done
"$ferry" agents

step "enrolment: new agent keys are pending until an operator accepts them"
for env in dev staging prod; do
	"$ferry" agents accept "$env-1"
done

step "promote to dev, then staging (each waits for the agents' reports)"
"$ferry" dispatch --bundle "$work/r1.fbundle" --env dev --wait=2m
"$ferry" dispatch --bundle "$work/r1.fbundle" --env staging --wait=2m

step "prod without approvals: its agent refuses (the coordinator alone cannot push to prod)"
if "$ferry" dispatch --bundle "$work/r1.fbundle" --env prod --wait=2m; then
	echo "quickstart: prod accepted a bundle without approvals" >&2
	exit 1
fi
"$ferry" work --limit 1

step "alice and bob approve rollout r1 for prod, each with their own key"
for who in alice bob; do
	"$ferry" approve --bundle "$work/r1.fbundle" --environment prod --rollout r1 \
		--key "$work/keys/$who.key" --trust "$work/keys/release.pub" \
		-o "$work/$who.approval" >/dev/null
	echo "  $who signed $work/$who.approval"
done
"$ferry" dispatch --bundle "$work/r1.fbundle" --env prod --rollout r1 \
	--approval "$work/alice.approval" --approval "$work/bob.approval" --wait=2m

step "drift: prod's live schema against the shadow's digest"
"$agent" drift --database-url "$("$root/deploy/pg-sandbox" url -d "$work/pg" prod)" \
	--expected "$work/shadow.json"

step "the fleet"
"$ferry" agents
echo
"$ferry" work

step "done: the example schema is on dev, staging and prod, recorded in"
echo "   _prisma_migrations exactly as Prisma would record it; every database"
echo "   matches the shadow replay."
