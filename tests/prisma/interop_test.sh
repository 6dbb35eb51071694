#!/bin/bash
# ferry-agent and the real Prisma CLI (6.19.3, see README.md beside this
# file) share one _prisma_migrations table, in both directions:
#  1. ferry-agent apply, then `prisma migrate status` is up to date; the rows
#     Ferry writes match the rows `prisma migrate deploy` writes for the same
#     folder (table definition, checksums, UUID v4 ids, NULL-ness of
#     finished_at / rolled_back_at / logs, applied_steps_count 1);
#  2. Prisma deploys the first half, ferry-agent status sees 3 applied and
#     3 pending, ferry-agent apply does the rest, and both tools agree the
#     database is up to date;
#  3. a failure recorded by Ferry is a failure for Prisma (status, P3009);
#     `prisma migrate resolve --rolled-back` and `--applied` work on Ferry's
#     row, and Ferry follows what Prisma recorded;
#  4. a failure recorded by Prisma is a failure for Ferry (status, apply
#     refuses); `ferry-agent resolve --rolled-back` and `--applied` give rows
#     Prisma accepts (deploy re-applies, status up to date);
#  5. a ?schema=app URL: both tools use the history in schema app only.
#
# Prisma runs through @prisma/adapter-pg, which splits migration.sql on ';'
# and runs the statements outside a transaction: the migrations here are
# safe for that, and this test checks table compatibility only.
#
# usage: interop_test.sh FERRY_AGENT
# Exit status: 0 pass, 1 fail, 77 skipped (npm registry unreachable and
# Prisma not installed; under CI=true that is a failure instead).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sandbox=$root/deploy/pg-sandbox
prisma_sh=$here/prisma.sh
ferry=${1:?usage: interop_test.sh FERRY_AGENT}
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
check() { echo "check: $*"; }

tmp=$(mktemp -d /tmp/ferry-it.XXXXXX) || exit 1
# The servers run as the postgres user when we are root: let it in.
chmod 755 "$tmp"
base=$tmp/sb
cleanup() {
	"$sandbox" destroy -d "$base" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- Prisma -----------------------------------------------------------------

check "the real Prisma CLI is installed (tests/prisma/setup.sh)"
rc=0
"$here/setup.sh" 2>"$tmp/setup.err" || rc=$?
if [ "$rc" -eq 77 ]; then
	reason=$(grep . "$tmp/setup.err" | tail -n 1)
	if [ "${CI:-}" = true ]; then
		echo "FAIL: Prisma cannot be installed and CI=true: ${reason:-setup.sh exited 77}"
		exit 1
	fi
	case $reason in
	"npm registry unreachable: "*) echo "SKIP: $reason" ;;
	*) echo "SKIP: npm registry unreachable: ${reason:-setup.sh exited 77}" ;;
	esac
	exit 77
elif [ "$rc" -ne 0 ]; then
	echo "FAIL: tests/prisma/setup.sh exited $rc:"
	sed 's/^/  /' "$tmp/setup.err"
	exit 1
fi
command -v psql >/dev/null 2>&1 || {
	echo "FAIL: psql not found"
	exit 1
}

# --- PostgreSQL -------------------------------------------------------------

url=$("$sandbox" start -d "$base" 2>"$tmp/start.err")
rc=$?
if [ "$rc" -ne 0 ] || [ -z "$url" ]; then
	echo "FAIL: pg-sandbox start exited $rc:"
	sed 's/^/  /' "$tmp/start.err"
	exit 1
fi
server=${url%/*} # postgresql://postgres@127.0.0.1:PORT

# q DB SQL: runs one query in database DB; rows unaligned, fields split by '|'.
q() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$server/$1" -c "$2"
}
# newdb NAME: creates an empty database.
newdb() {
	q postgres "CREATE DATABASE $1" >/dev/null || {
		echo "FAIL: cannot create database $1"
		exit 1
	}
}

# ferry ARGS...: runs ferry-agent; stdout in $tmp/ferry.out, stderr in
# $tmp/ferry.err, exit status in $frc.
ferry() {
	frc=0
	"$ferry" "$@" >"$tmp/ferry.out" 2>"$tmp/ferry.err" || frc=$?
}
# prisma DIR URL ARGS...: runs `prisma migrate ARGS...`; stdout and stderr
# in $tmp/prisma.out, exit status in $prc.
prisma() {
	prc=0
	"$prisma_sh" "$@" >"$tmp/prisma.out" 2>&1 || prc=$?
	case $prc in
	0 | 1) ;;
	*)
		echo "FAIL: prisma.sh $* exited $prc (harness failure):"
		sed 's/^/  /' "$tmp/prisma.out"
		exit 1
		;;
	esac
}
# Prisma's or Ferry's last output, indented, for failure messages (Prisma's
# header, url warning and blank lines left out).
show_prisma() {
	grep -v -e '^[[:space:]]*$' -e '^Loaded Prisma config' -e '^Prisma config detected' \
		-e '^Prisma schema loaded' -e '^WARNING: Your schema' -e '^- url$' \
		-e '^The values from your schema' -e '^We recommend you to remove' \
		"$tmp/prisma.out" | sed 's/^/    | /'
}
show_ferry() { cat "$tmp/ferry.out" "$tmp/ferry.err" | head -n 40 | sed 's/^/    | /'; }

# expect_prisma_up_to_date WHAT: the last prisma status said up to date.
expect_prisma_up_to_date() {
	if [ "$prc" -ne 0 ] || ! grep -qx 'Database schema is up to date!' "$tmp/prisma.out"; then
		fail "$1: prisma migrate status exited $prc, not 'Database schema is up to date!':"
		show_prisma
	fi
}

# jsonq FILE EXPR: prints the JavaScript expression EXPR about d, the JSON
# document in FILE (node is there: Prisma needs it).
jsonq() {
	node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
		process.stdout.write(String(new Function("d", "return (" + process.argv[2] + ")")(d)))' \
		"$1" "$2" 2>&1
}
counts_expr='["applied", "pending", "failed", "modified", "missing"].map(k => k + "=" + d.counts[k]).join(" ")'
states_expr='d.migrations.map(m => m.name.slice(15) + "=" + m.state).join(" ")'
# ferry_status_json WHAT DIR URL COUNTS STATES [RC]: ferry-agent status --json
# exits RC (default 1) with these counts and per-migration states (names
# without their 15-character timestamp prefix).
ferry_status_json() {
	local what=$1 dir=$2 u=$3 counts=$4 states=$5 want=${6:-1} got
	ferry status --migrations "$dir" --database-url "$u" --json
	[ "$frc" -eq "$want" ] || { fail "$what: ferry-agent status exited $frc, expected $want:"; show_ferry; }
	got=$(jsonq "$tmp/ferry.out" "$counts_expr")
	[ "$got" = "$counts" ] || fail "$what: ferry-agent status counts '$got', expected '$counts'"
	got=$(jsonq "$tmp/ferry.out" "$states_expr")
	[ "$got" = "$states" ] || fail "$what: ferry-agent status states '$got', expected '$states'"
}

# Rows of _prisma_migrations with what must match between the tools: name,
# checksum, which of finished_at / rolled_back_at / logs are NULL, whether
# logs is empty, whether started_at = finished_at, applied_steps_count.
shape_sql="SELECT migration_name, checksum,
	CASE WHEN finished_at IS NULL THEN 'finished_at=NULL' ELSE 'finished_at=set' END,
	CASE WHEN rolled_back_at IS NULL THEN 'rolled_back_at=NULL' ELSE 'rolled_back_at=set' END,
	CASE WHEN logs IS NULL THEN 'logs=NULL' WHEN logs = '' THEN 'logs=''''' ELSE 'logs=text' END,
	CASE WHEN started_at = finished_at THEN 'started=finished' ELSE 'started<>finished' END,
	'steps=' || applied_steps_count
	FROM %s ORDER BY migration_name, started_at"
# shape DB [TABLE]
shape() { q "$1" "$(printf "$shape_sql" "${2:-_prisma_migrations}")"; }
uuid4_re='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
# bad_ids DB [TABLE]: ids that are not lowercase UUID v4 strings, or repeated.
bad_ids() {
	local t=${2:-_prisma_migrations}
	q "$1" "SELECT id FROM $t WHERE id !~ '$uuid4_re'
		UNION ALL SELECT id FROM $t GROUP BY id HAVING count(*) > 1"
}
# rows_of DB NAME: NAME's rows, oldest first, as checksum|finished?|rolled back?|steps.
rows_of() {
	q "$1" "SELECT left(checksum, 12), finished_at IS NOT NULL, rolled_back_at IS NOT NULL,
		applied_steps_count FROM _prisma_migrations WHERE migration_name = '$2' ORDER BY started_at"
}
sha() { sha256sum "$1" | cut -c1-64; }

# --- Migration folders --------------------------------------------------------

# Split-on-';'-safe: no functions, no dollar quotes, one statement per ';'.
full=$tmp/migrations
m1=20240101000000_users
m2=20240102000000_users_email_key
m3=20240103000000_status_enum
m4=20240104000000_posts
m5=20240105000000_users_status
m6=20240106000000_posts_author_idx
mig() { # mig DIR NAME SQL
	mkdir -p "$1/$2" && printf '%s' "$3" >"$1/$2/migration.sql"
}
mig "$full" $m1 'CREATE TABLE users (
    id SERIAL PRIMARY KEY,
    email TEXT NOT NULL
);
'
mig "$full" $m2 'CREATE UNIQUE INDEX users_email_key ON users (email);
'
mig "$full" $m3 "CREATE TYPE status AS ENUM ('active', 'disabled');
"
mig "$full" $m4 'CREATE TABLE posts (
    id SERIAL PRIMARY KEY,
    author_id INTEGER NOT NULL REFERENCES users (id),
    title TEXT NOT NULL
);
'
mig "$full" $m5 "ALTER TABLE users ADD COLUMN status status NOT NULL DEFAULT 'active';
"
mig "$full" $m6 'CREATE INDEX posts_author_id_idx ON posts (author_id);
'
printf '# Please do not edit this file manually\n# It should be added in your version-control system (e.g., Git)\nprovider = "postgresql"\n' \
	>"$full/migration_lock.toml"

# The first three only.
half=$tmp/half
mkdir -p "$half"
cp -r "$full/$m1" "$full/$m2" "$full/$m3" "$full/migration_lock.toml" "$half/"
# The full folder with a migration 4 that fails (it references a missing
# table), and the same cut after migration 4 (so that nothing is pending
# after the failure, where Prisma's status reports failures).
bad=$tmp/bad
cp -r "$full" "$bad"
mig "$bad" $m4 'CREATE TABLE posts (
    id SERIAL PRIMARY KEY,
    author_id INTEGER NOT NULL REFERENCES authors (id),
    title TEXT NOT NULL
);
'
bad4=$tmp/bad4
mkdir -p "$bad4"
cp -r "$bad/$m1" "$bad/$m2" "$bad/$m3" "$bad/$m4" "$bad/migration_lock.toml" "$bad4/"
good4=$(sha "$full/$m4/migration.sql")
bad4sum=$(sha "$bad/$m4/migration.sql")
# hotfix DB: what a person does by hand instead of the failed migration 4.
hotfix() {
	psql -X -q -v ON_ERROR_STOP=1 -d "$server/$1" -f "$full/$m4/migration.sql" >/dev/null ||
		fail "hotfix of $m4 in $1 failed"
}

# --- 1. Ferry applies everything; Prisma agrees and writes the same rows ------

echo "== 1. ferry-agent apply, compared with prisma migrate deploy"
newdb s1_ferry
newdb s1_prisma

check "1: ferry-agent apply applies all 6 migrations"
ferry apply --migrations "$full" --database-url "$server/s1_ferry"
[ "$frc" -eq 0 ] || { fail "1: ferry-agent apply exited $frc:"; show_ferry; }

check "1: prisma migrate status on Ferry's database: up to date"
prisma "$full" "$server/s1_ferry" status
expect_prisma_up_to_date "1"
grep -q '^6 migrations found' "$tmp/prisma.out" ||
	fail "1: prisma did not find 6 migrations"

check "1: prisma migrate deploy of the same folder in another database"
prisma "$full" "$server/s1_prisma" deploy
[ "$prc" -eq 0 ] || { fail "1: prisma migrate deploy exited $prc:"; show_prisma; }

check "1: _prisma_migrations is defined the same way by both"
cols_sql="SELECT column_name, data_type, character_maximum_length, is_nullable,
	column_default, ordinal_position FROM information_schema.columns
	WHERE table_schema = 'public' AND table_name = '_prisma_migrations'
	ORDER BY ordinal_position"
cons_sql="SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
	WHERE conrelid = 'public._prisma_migrations'::regclass ORDER BY conname"
idx_sql="SELECT indexname, indexdef FROM pg_indexes
	WHERE schemaname = 'public' AND tablename = '_prisma_migrations' ORDER BY indexname"
for what in cols cons idx; do
	sql_var=${what}_sql
	f=$(q s1_ferry "${!sql_var}")
	p=$(q s1_prisma "${!sql_var}")
	if [ "$f" != "$p" ] || [ -z "$p" ]; then
		fail "1: _prisma_migrations $what differ (Ferry < > Prisma):"
		diff <(echo "$f") <(echo "$p") | sed 's/^/    /'
	fi
done
n=$(q s1_ferry "SELECT count(*) FROM information_schema.columns
	WHERE table_schema = 'public' AND table_name = '_prisma_migrations'")
[ "$n" = 8 ] || fail "1: Ferry's _prisma_migrations has $n columns, expected 8"

check "1: same rows (checksums, NULL-ness, applied_steps_count 1) from both tools"
# started_at = finished_at can happen by chance for a quick migration (more
# so with Prisma's millisecond clock): left out of this comparison.
f=$(shape s1_ferry | sed 's/|started[<>=]*finished//')
p=$(shape s1_prisma | sed 's/|started[<>=]*finished//')
if [ "$f" != "$p" ]; then
	fail "1: rows differ (Ferry < > Prisma):"
	diff <(echo "$f") <(echo "$p") | sed 's/^/    /'
fi
n=$(q s1_ferry "SELECT count(*) FROM _prisma_migrations
	WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL AND logs IS NULL
	  AND applied_steps_count = 1 AND started_at <= finished_at")
[ "$n" = 6 ] || fail "1: $n of Ferry's rows are finished, not rolled back, logs NULL, 1 step; expected 6"

check "1: checksums are the sha256 of each migration.sql"
for m in $m1 $m2 $m3 $m4 $m5 $m6; do
	for db in s1_ferry s1_prisma; do
		c=$(q $db "SELECT checksum FROM _prisma_migrations WHERE migration_name = '$m'")
		[ "$c" = "$(sha "$full/$m/migration.sql")" ] ||
			fail "1: $db: checksum of $m is '$c', expected $(sha "$full/$m/migration.sql")"
	done
done

check "1: ids are distinct UUID v4 strings in both"
for db in s1_ferry s1_prisma; do
	b=$(bad_ids $db)
	[ -z "$b" ] || fail "1: $db: ids not UUID v4 or repeated: $b"
done

check "1: both tools built the same schema"
schema_sql="SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default
	FROM information_schema.columns WHERE table_schema = 'public'
	  AND table_name <> '_prisma_migrations' ORDER BY table_name, column_name"
f=$(q s1_ferry "$schema_sql")
p=$(q s1_prisma "$schema_sql")
[ -n "$f" ] && [ "$f" = "$p" ] || {
	fail "1: schemas differ (Ferry < > Prisma):"
	diff <(echo "$f") <(echo "$p") | sed 's/^/    /'
}
f=$(q s1_ferry "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
p=$(q s1_prisma "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
[ "$f" = "$p" ] || fail "1: indexes differ: Ferry '$(echo $f)', Prisma '$(echo $p)'"

# --- 2. Prisma applies the first half, Ferry the rest -------------------------

echo "== 2. prisma migrate deploy of 3, then ferry-agent apply of the rest"
newdb s2

check "2: prisma migrate deploy of the first 3 migrations"
prisma "$half" "$server/s2" deploy
[ "$prc" -eq 0 ] || { fail "2: prisma migrate deploy exited $prc:"; show_prisma; }

check "2: ferry-agent status --json: 3 applied, 3 pending, exit 1"
ferry_status_json "2" "$full" "$server/s2" \
	"applied=3 pending=3 failed=0 modified=0 missing=0" \
	"users=applied users_email_key=applied status_enum=applied posts=pending users_status=pending posts_author_idx=pending"

check "2: ferry-agent apply applies the other 3"
ferry apply --migrations "$full" --database-url "$server/s2"
[ "$frc" -eq 0 ] || { fail "2: ferry-agent apply exited $frc:"; show_ferry; }
n=$(q s2 "SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")
[ "$n" = 6 ] || fail "2: $n finished rows, expected 6"
n=$(q s2 "SELECT string_agg(migration_name, ' ' ORDER BY migration_name) FROM _prisma_migrations
	GROUP BY migration_name HAVING count(*) > 1")
[ -z "$n" ] || fail "2: migrations recorded twice: $n"

check "2: prisma migrate status: up to date"
prisma "$full" "$server/s2" status
expect_prisma_up_to_date "2"

check "2: ferry-agent status: exit 0"
ferry status --migrations "$full" --database-url "$server/s2"
[ "$frc" -eq 0 ] || { fail "2: ferry-agent status exited $frc:"; show_ferry; }

check "2: ids of both tools' rows are UUID v4"
b=$(bad_ids s2)
[ -z "$b" ] || fail "2: ids not UUID v4 or repeated: $b"

# --- 3. A failure recorded by Ferry, resolved with Prisma ---------------------

echo "== 3. a failure recorded by ferry-agent, resolved by prisma migrate resolve"
newdb s3_rb
newdb s3_app

check "3: ferry-agent apply stops at the failing $m4"
ferry apply --migrations "$bad" --database-url "$server/s3_rb"
[ "$frc" -ne 0 ] || fail "3: ferry-agent apply of a failing migration exited 0"
grep -q "$m4" "$tmp/ferry.err" "$tmp/ferry.out" || { fail "3: Ferry's error does not name $m4:"; show_ferry; }
n=$(q s3_rb "SELECT count(*) FROM _prisma_migrations WHERE migration_name IN ('$m5', '$m6')")
[ "$n" = 0 ] || fail "3: migrations after the failed one were recorded"
ferry_failed_shape=$(shape s3_rb | grep "^$m4|")
[ "$ferry_failed_shape" = "$m4|$bad4sum|finished_at=NULL|rolled_back_at=NULL|logs=text|started<>finished|steps=0" ] ||
	fail "3: Ferry's failed row is '$ferry_failed_shape'"
b=$(bad_ids s3_rb)
[ -z "$b" ] || fail "3: ids not UUID v4 or repeated: $b"

check "3: prisma migrate status reports $m4 failed (nothing pending after it)"
prisma "$bad4" "$server/s3_rb" status
if [ "$prc" -ne 1 ] || ! grep -A1 -x 'Following migration have failed:' "$tmp/prisma.out" | grep -qx "$m4"; then
	fail "3: prisma migrate status exited $prc without 'Following migration have failed: $m4':"
	show_prisma
fi

check "3: prisma migrate status with migrations after it: not up to date"
prisma "$bad" "$server/s3_rb" status
[ "$prc" -eq 1 ] || { fail "3: prisma migrate status exited $prc, expected 1:"; show_prisma; }

check "3: prisma migrate deploy refuses with P3009 naming $m4"
prisma "$bad" "$server/s3_rb" deploy
if [ "$prc" -ne 1 ] || ! grep -q '^Error: P3009' "$tmp/prisma.out" ||
	! grep -q "The \`$m4\` migration started at .* failed" "$tmp/prisma.out"; then
	fail "3: prisma migrate deploy exited $prc without P3009 for $m4:"
	show_prisma
fi

check "3: prisma migrate resolve --rolled-back $m4 on Ferry's row"
prisma "$bad" "$server/s3_rb" resolve --rolled-back $m4
if [ "$prc" -ne 0 ] || ! grep -qx "Migration $m4 marked as rolled back." "$tmp/prisma.out"; then
	fail "3: prisma migrate resolve --rolled-back exited $prc:"
	show_prisma
fi
r=$(rows_of s3_rb $m4)
[ "$r" = "${bad4sum:0:12}|f|t|0" ] || fail "3: rows of $m4 after Prisma's rollback: '$r', expected one, rolled back"

check "3: ferry-agent status sees $m4 pending again"
ferry_status_json "3" "$full" "$server/s3_rb" \
	"applied=3 pending=3 failed=0 modified=0 missing=0" \
	"users=applied users_email_key=applied status_enum=applied posts=pending users_status=pending posts_author_idx=pending"

check "3: with $m4 fixed, ferry-agent apply completes"
ferry apply --migrations "$full" --database-url "$server/s3_rb"
[ "$frc" -eq 0 ] || { fail "3: ferry-agent apply exited $frc:"; show_ferry; }
r=$(rows_of s3_rb $m4)
[ "$r" = "${bad4sum:0:12}|f|t|0
${good4:0:12}|t|f|1" ] || fail "3: rows of $m4: '$(echo $r)', expected the rolled-back one, then a finished one"

check "3: prisma migrate status: up to date; ferry-agent status: exit 0"
prisma "$full" "$server/s3_rb" status
expect_prisma_up_to_date "3"
ferry status --migrations "$full" --database-url "$server/s3_rb"
[ "$frc" -eq 0 ] || { fail "3: ferry-agent status exited $frc:"; show_ferry; }

check "3: prisma migrate resolve --applied $m4 on another Ferry failure"
ferry apply --migrations "$bad" --database-url "$server/s3_app"
[ "$frc" -ne 0 ] || fail "3: ferry-agent apply of a failing migration exited 0"
hotfix s3_app
prisma "$bad" "$server/s3_app" resolve --applied $m4
if [ "$prc" -ne 0 ] || ! grep -qx "Migration $m4 marked as applied." "$tmp/prisma.out"; then
	fail "3: prisma migrate resolve --applied exited $prc:"
	show_prisma
fi
prisma_resolved_shape=$(shape s3_app | grep "^$m4|")

check "3: ferry-agent status treats $m4 as applied"
ferry_status_json "3" "$bad" "$server/s3_app" \
	"applied=4 pending=2 failed=0 modified=0 missing=0" \
	"users=applied users_email_key=applied status_enum=applied posts=applied users_status=pending posts_author_idx=pending"

check "3: ferry-agent apply applies only the two after it"
ferry apply --migrations "$bad" --database-url "$server/s3_app"
[ "$frc" -eq 0 ] || { fail "3: ferry-agent apply exited $frc:"; show_ferry; }
r=$(rows_of s3_app $m4)
[ "$r" = "${bad4sum:0:12}|f|t|0
${bad4sum:0:12}|t|f|0" ] || fail "3: rows of $m4: '$(echo $r)', expected the rolled-back failure, then Prisma's resolved row"
ferry status --migrations "$bad" --database-url "$server/s3_app"
[ "$frc" -eq 0 ] || { fail "3: ferry-agent status exited $frc:"; show_ferry; }
prisma "$bad" "$server/s3_app" status
expect_prisma_up_to_date "3"

# --- 4. A failure recorded by Prisma, resolved with Ferry ---------------------

echo "== 4. a failure recorded by prisma migrate deploy, resolved by ferry-agent resolve"
newdb s4_rb
newdb s4_app

check "4: prisma migrate deploy stops at the failing $m4"
prisma "$bad" "$server/s4_rb" deploy
[ "$prc" -eq 1 ] || { fail "4: prisma migrate deploy exited $prc, expected 1:"; show_prisma; }
prisma_failed_shape=$(shape s4_rb | grep "^$m4|")
if [ "$ferry_failed_shape" != "$prisma_failed_shape" ]; then
	fail "4: failed rows differ: Ferry '$ferry_failed_shape', Prisma '$prisma_failed_shape'"
fi

check "4: ferry-agent status: $m4 failed, exit 1"
ferry_status_json "4" "$bad" "$server/s4_rb" \
	"applied=3 pending=2 failed=1 modified=0 missing=0" \
	"users=applied users_email_key=applied status_enum=applied posts=failed users_status=pending posts_author_idx=pending"

check "4: ferry-agent apply refuses, naming $m4"
rows_before=$(q s4_rb "SELECT count(*) FROM _prisma_migrations")
ferry apply --migrations "$bad" --database-url "$server/s4_rb"
[ "$frc" -eq 1 ] || { fail "4: ferry-agent apply exited $frc, expected 1:"; show_ferry; }
grep -q "$m4" "$tmp/ferry.err" || { fail "4: ferry-agent apply's error does not name $m4:"; show_ferry; }
n=$(q s4_rb "SELECT count(*) FROM _prisma_migrations")
[ "$n" = "$rows_before" ] || fail "4: ferry-agent apply changed the history ($rows_before rows, now $n)"

check "4: ferry-agent resolve --rolled-back $m4 on Prisma's row"
ferry resolve --rolled-back $m4 --migrations "$bad" --database-url "$server/s4_rb"
[ "$frc" -eq 0 ] || { fail "4: ferry-agent resolve --rolled-back exited $frc:"; show_ferry; }
r=$(rows_of s4_rb $m4)
[ "$r" = "${bad4sum:0:12}|f|t|0" ] || fail "4: rows of $m4 after Ferry's rollback: '$r', expected one, rolled back"

check "4: prisma migrate status no longer reports a failure"
prisma "$full" "$server/s4_rb" status
if grep -q -e 'have failed' -e '^Error' "$tmp/prisma.out"; then
	fail "4: prisma migrate status (exit $prc) still reports a failure:"
	show_prisma
fi

check "4: with $m4 fixed, prisma migrate deploy re-applies it and the rest"
prisma "$full" "$server/s4_rb" deploy
[ "$prc" -eq 0 ] || { fail "4: prisma migrate deploy exited $prc:"; show_prisma; }
for m in $m4 $m5 $m6; do
	grep -q "└─ $m/" "$tmp/prisma.out" || { fail "4: prisma migrate deploy did not apply $m:"; show_prisma; }
done
r=$(rows_of s4_rb $m4)
[ "$r" = "${bad4sum:0:12}|f|t|0
${good4:0:12}|t|f|1" ] || fail "4: rows of $m4: '$(echo $r)', expected the rolled-back one, then a finished one"
prisma "$full" "$server/s4_rb" status
expect_prisma_up_to_date "4"
ferry status --migrations "$full" --database-url "$server/s4_rb"
[ "$frc" -eq 0 ] || { fail "4: ferry-agent status exited $frc:"; show_ferry; }

check "4: ferry-agent resolve --applied $m4 on another Prisma failure"
prisma "$bad" "$server/s4_app" deploy
[ "$prc" -eq 1 ] || { fail "4: prisma migrate deploy exited $prc, expected 1:"; show_prisma; }
hotfix s4_app
ferry resolve --applied $m4 --migrations "$bad" --database-url "$server/s4_app"
[ "$frc" -eq 0 ] || { fail "4: ferry-agent resolve --applied exited $frc:"; show_ferry; }
ferry_resolved_shape=$(shape s4_app | grep "^$m4|")
if [ "$ferry_resolved_shape" != "$prisma_resolved_shape" ]; then
	fail "4: rows of resolve --applied differ (Ferry < > Prisma):"
	diff <(echo "$ferry_resolved_shape") <(echo "$prisma_resolved_shape") | sed 's/^/    /'
fi
b=$(bad_ids s4_app)
[ -z "$b" ] || fail "4: ids not UUID v4 or repeated: $b"

check "4: prisma migrate status: up to date (nothing after $m4)"
prisma "$bad4" "$server/s4_app" status
expect_prisma_up_to_date "4"

check "4: prisma migrate deploy applies only the two after $m4"
prisma "$bad" "$server/s4_app" deploy
[ "$prc" -eq 0 ] || { fail "4: prisma migrate deploy exited $prc:"; show_prisma; }
grep -q "└─ $m4/" "$tmp/prisma.out" && { fail "4: prisma migrate deploy ran $m4 again:"; show_prisma; }
for m in $m5 $m6; do
	grep -q "└─ $m/" "$tmp/prisma.out" || { fail "4: prisma migrate deploy did not apply $m:"; show_prisma; }
done
ferry status --migrations "$bad" --database-url "$server/s4_app"
[ "$frc" -eq 0 ] || { fail "4: ferry-agent status exited $frc:"; show_ferry; }

# --- 5. ?schema=app -----------------------------------------------------------

echo "== 5. ?schema=app, used by both tools"
newdb s5_ferry_first
newdb s5_prisma_first

check "5: ferry-agent apply of 3 with ?schema=app (schema app does not exist yet)"
u="$server/s5_ferry_first?schema=app"
ferry apply --migrations "$half" --database-url "$u"
[ "$frc" -eq 0 ] || { fail "5: ferry-agent apply exited $frc:"; show_ferry; }

check "5: prisma migrate status with ?schema=app: the other 3 pending"
prisma "$full" "$u" status
got=$(sed -n '/^Following migrations have not yet been applied:$/,/^$/p' "$tmp/prisma.out" | grep '^2024' | tr '\n' ' ')
if [ "$prc" -ne 1 ] || [ "$got" != "$m4 $m5 $m6 " ]; then
	fail "5: prisma migrate status exited $prc, pending '$got', expected $m4 $m5 $m6:"
	show_prisma
fi

check "5: prisma migrate deploy with ?schema=app applies those 3"
prisma "$full" "$u" deploy
[ "$prc" -eq 0 ] || { fail "5: prisma migrate deploy exited $prc:"; show_prisma; }
for m in $m1 $m2 $m3; do
	grep -q "└─ $m/" "$tmp/prisma.out" && { fail "5: prisma migrate deploy ran $m again:"; show_prisma; }
done

check "5: ferry-agent status with ?schema=app: 6 applied, exit 0"
ferry_status_json "5" "$full" "$u" "applied=6 pending=0 failed=0 modified=0 missing=0" \
	"users=applied users_email_key=applied status_enum=applied posts=applied users_status=applied posts_author_idx=applied" 0
got=$(jsonq "$tmp/ferry.out" 'd.schema')
[ "$got" = app ] || fail "5: ferry-agent status --json says schema '$got', expected app"

check "5: prisma migrate deploy of 3 with ?schema=app, then ferry-agent apply"
u2="$server/s5_prisma_first?schema=app"
prisma "$half" "$u2" deploy
[ "$prc" -eq 0 ] || { fail "5: prisma migrate deploy exited $prc:"; show_prisma; }
ferry_status_json "5" "$full" "$u2" "applied=3 pending=3 failed=0 modified=0 missing=0" \
	"users=applied users_email_key=applied status_enum=applied posts=pending users_status=pending posts_author_idx=pending"
ferry apply --migrations "$full" --database-url "$u2"
[ "$frc" -eq 0 ] || { fail "5: ferry-agent apply exited $frc:"; show_ferry; }
prisma "$full" "$u2" status
expect_prisma_up_to_date "5"

check "5: the history and the tables are in schema app only"
for db in s5_ferry_first s5_prisma_first; do
	got=$(q $db "SELECT string_agg(table_schema || '.' || table_name, ' ' ORDER BY table_schema, table_name)
		FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")
	[ "$got" = "app._prisma_migrations app.posts app.users" ] ||
		fail "5: $db: tables are '$got', expected app._prisma_migrations app.posts app.users"
	got=$(q $db "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE t.typname = 'status'")
	[ "$got" = app ] || fail "5: $db: enum status is in schema '$got', expected app"
	got=$(shape $db app._prisma_migrations | cut -d'|' -f1,3- | sed 's/|started[<>=]*finished//')
	want=$(for m in $m1 $m2 $m3 $m4 $m5 $m6; do
		echo "$m|finished_at=set|rolled_back_at=NULL|logs=NULL|steps=1"
	done)
	[ "$got" = "$want" ] || {
		fail "5: $db: app._prisma_migrations rows differ from the expected ones:"
		diff <(echo "$got") <(echo "$want") | sed 's/^/    /'
	}
	b=$(bad_ids $db app._prisma_migrations)
	[ -z "$b" ] || fail "5: $db: ids not UUID v4 or repeated: $b"
done

check "5: without ?schema, ferry-agent status finds no history in public"
ferry status --migrations "$full" --database-url "$server/s5_ferry_first" --json
got=$(jsonq "$tmp/ferry.out" "$counts_expr")
if [ "$frc" -ne 1 ] || [ "$got" != "applied=0 pending=6 failed=0 modified=0 missing=0" ]; then
	fail "5: ferry-agent status on public exited $frc with '$got'"
fi

echo "$fails failures"
[ "$fails" -eq 0 ]
