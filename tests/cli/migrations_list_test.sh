#!/bin/bash
# ferry migrations list: table, --json, order warning, errors, exit codes.
set -u
ferry=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/ferry-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# The example project lists cleanly.
out=$("$ferry" migrations list "$root/deploy/examples/migrations" 2>"$tmp/err") ||
	fail "listing the examples exited $?: $(cat "$tmp/err")"
n=$(find "$root/deploy/examples/migrations" -mindepth 1 -maxdepth 1 -type d | wc -l)
grep -q "^$n migrations in " <<<"$out" || fail "expected '$n migrations' in: $out"

# JSON: names, checksums and sizes match the files.
mkdir -p "$tmp/m/20230518120000_users" "$tmp/m/20230518_init"
printf 'SELECT 1;\n' >"$tmp/m/20230518_init/migration.sql"
printf 'CREATE TABLE u (id int);\r\n' >"$tmp/m/20230518120000_users/migration.sql"
json=$("$ferry" migrations list --json "$tmp/m" 2>"$tmp/err") || fail "json exited $?"
first=$(sed -n 's/.*"name": "\(.*\)".*/\1/p' <<<"$json" | head -1)
[ "$first" = "20230518_init" ] || fail "Prisma order puts 20230518_init first, got '$first'"
sum=$(sha256sum "$tmp/m/20230518120000_users/migration.sql" | cut -d' ' -f1)
grep -q "\"checksum\": \"$sum\"" <<<"$json" || fail "checksum $sum not in JSON"
grep -q '"size": 26' <<<"$json" || fail "size 26 not in JSON"
grep -q '"first": "20230518_init"' <<<"$json" || fail "order difference not in JSON"
grep -q "byte order" "$tmp/err" || fail "no order warning on stderr"

# Errors: exit 2 for bad input, naming the thing at fault.
"$ferry" migrations list "$tmp/none" 2>"$tmp/err"
[ $? -eq 2 ] || fail "missing dir: expected exit 2"
grep -q "$tmp/none" "$tmp/err" || fail "missing dir not named: $(cat "$tmp/err")"
mkdir "$tmp/m/20240101000000_broken"
"$ferry" migrations list "$tmp/m" 2>"$tmp/err"
[ $? -eq 2 ] || fail "folder without migration.sql: expected exit 2"
grep -q "20240101000000_broken" "$tmp/err" || fail "broken folder not named"
rmdir "$tmp/m/20240101000000_broken"
printf 'provider = "sqlite"\n' >"$tmp/m/migration_lock.toml"
"$ferry" migrations list "$tmp/m" 2>"$tmp/err"
[ $? -eq 2 ] || fail "wrong provider: expected exit 2"
grep -q 'sqlite' "$tmp/err" || fail "provider not named: $(cat "$tmp/err")"
"$ferry" migrations list 2>/dev/null
[ $? -eq 2 ] || fail "no argument: expected exit 2"
"$ferry" migrations list --bogus "$tmp/m" 2>/dev/null
[ $? -eq 2 ] || fail "bad option: expected exit 2"

echo "$fails failures"
[ "$fails" -eq 0 ]
