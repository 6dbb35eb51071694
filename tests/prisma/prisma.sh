#!/bin/sh
# Runs the real Prisma CLI (6.19.3, installed by setup.sh) as
# `prisma migrate ARGS...` against one database and one migrations folder.
#
#   tests/prisma/prisma.sh MIGRATIONS_DIR DATABASE_URL [migrate] ARGS...
#
#   prisma.sh ./migrations postgresql://postgres@127.0.0.1:5432/db deploy
#   prisma.sh ./migrations "$url" status
#   prisma.sh ./migrations "$url" resolve --applied 20240101000000_init
#   prisma.sh ./migrations "$url" resolve --rolled-back 20240101000000_init
#
# MIGRATIONS_DIR is used as is, in Prisma's layout (<name>/migration.sql,
# optional migration_lock.toml); it is not copied or modified.
# DATABASE_URL may carry ?schema=NAME like Prisma's own URLs: it becomes the
# adapter's schema and the connection's search_path, as Prisma does.
#
# A throw-away directory holds the generated schema.prisma and
# prisma.config.ts (WASM schema engine through @prisma/adapter-pg); it is
# removed on exit. Prisma's stdout, stderr and exit status are passed
# through (Prisma exits 0 or 1).
#
# Environment:
#   FERRY_PRISMA_DIR      install dir (default /tmp/ferry-prisma-6.19.3);
#                         setup.sh is run first if it is not ready
#   FERRY_PRISMA_TIMEOUT  seconds before the CLI is killed (default 120)
#
# Exit status: Prisma's own (0 success, 1 failure or "not up to date");
# 2 usage error; 77 Prisma not installed and the npm registry unreachable
# (from setup.sh); 3 setup.sh failed otherwise; 124 timed out.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
usage() {
	echo "usage: prisma.sh MIGRATIONS_DIR DATABASE_URL [migrate] ARGS..." >&2
	exit 2
}
case "${1:-}" in
-h | --help)
	sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
[ $# -ge 3 ] || usage
migrations=$1
url=$2
shift 2
[ "$1" = migrate ] && shift
[ $# -ge 1 ] || usage
[ -d "$migrations" ] || {
	echo "prisma.sh: migrations directory not found: $migrations" >&2
	exit 2
}
migrations=$(cd "$migrations" && pwd -P)

home=${FERRY_PRISMA_DIR:-/tmp/ferry-prisma-6.19.3}
# setup.sh returns at once when the install is there.
rc=0
"$here/setup.sh" "$home" || rc=$?
case $rc in
0) ;;
77) exit 77 ;;
*) exit 3 ;;
esac
home=$(cd "$home" && pwd -P)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-prisma-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The url/env("DATABASE_URL") line is ignored for connecting (Prisma warns
# so) but must be there, and so must engineType = "client": without either
# the CLI tries to download a native query engine and fails offline.
cat >"$tmp/schema.prisma" <<'EOF'
datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}

generator client {
  provider   = "prisma-client-js"
  engineType = "client"
}
EOF

# Everything variable comes from the environment, so no quoting problems.
cat >"$tmp/prisma.config.ts" <<'EOF'
import { createRequire } from 'node:module'
import path from 'node:path'

const home = process.env.FERRY_PRISMA_HOME!
const req = createRequire(path.join(home, 'package.json'))
const { defineConfig } = req('prisma/config')
const { PrismaPg } = req('@prisma/adapter-pg')

// Prisma's ?schema= is not a libpq parameter: hand it to the adapter (the
// schema engine then qualifies its own statements and creates the schema
// when missing) and to the server as search_path (for migration.sql).
const url = new URL(process.env.DATABASE_URL!)
const schema = url.searchParams.get('schema') || undefined
url.searchParams.delete('schema')
const pool: Record<string, unknown> = {
  connectionString: url.toString(),
  // pg.Pool keeps idle connections for idleTimeoutMillis (10 s) and the CLI
  // never ends the pool: without this every command lingers ~10 s.
  allowExitOnIdle: true,
}
if (schema) {
  const ident = '"' + schema.replace(/"/g, '""') + '"'
  pool.options = '-c search_path=' + ident.replace(/[\\ ]/g, '\\$&')
}

export default defineConfig({
  engine: 'js',
  experimental: { adapter: true },
  schema: path.join(process.env.FERRY_PRISMA_WORK!, 'schema.prisma'),
  migrations: { path: process.env.FERRY_PRISMA_MIGRATIONS! },
  async adapter() {
    return new PrismaPg(pool, schema ? { schema } : undefined)
  },
})
EOF

# `migrate resolve --rolled-back` first runs the native schema engine even in
# JS engine mode, as `schema-engine cli --datasource URL
# can-connect-to-database` (a connectivity check), and fails offline when the
# binary is missing. This stub answers "can connect"; the WASM engine then
# does the actual work.
printf '#!/bin/sh\nexit 0\n' >"$tmp/schema-engine-stub"
chmod +x "$tmp/schema-engine-stub"

# Preloaded into node: the WASM schema engine arms a 10 s setTimeout for the
# advisory-lock wait (deploy, dev) and never clears it, and the CLI returns
# from main without process.exit on success, so `migrate deploy` lingers
# 10 s after its work (PRISMA_SCHEMA_DISABLE_ADVISORY_LOCK is not honoured by
# the WASM engine). Long timers are unref'd: they still fire while the
# process is alive (the lock wait keeps its socket busy, so P1002 still comes
# after 10 s) but no longer keep a finished process alive.
cat >"$tmp/unref-long-timers.cjs" <<'EOF'
'use strict'
const { promisify } = require('node:util')
const original = globalThis.setTimeout
function setTimeout(fn, ms, ...args) {
  const timer = original.call(this, fn, ms, ...args)
  if (Number(ms) >= 5000 && timer && typeof timer.unref === 'function') timer.unref()
  return timer
}
setTimeout[promisify.custom] = original[promisify.custom]
globalThis.setTimeout = setTimeout
EOF

set +e
(
	cd "$tmp" &&
		DATABASE_URL=$url \
			FERRY_PRISMA_HOME=$home \
			FERRY_PRISMA_WORK=$tmp \
			FERRY_PRISMA_MIGRATIONS=$migrations \
			PRISMA_SCHEMA_ENGINE_BINARY=$tmp/schema-engine-stub \
			CHECKPOINT_DISABLE=1 \
			PRISMA_HIDE_UPDATE_MESSAGE=1 \
			NO_COLOR=1 \
			timeout -k 5 "${FERRY_PRISMA_TIMEOUT:-120}" \
			node --require "$tmp/unref-long-timers.cjs" \
			"$home/node_modules/prisma/build/index.js" migrate "$@"
)
rc=$?
set -e
exit $rc
