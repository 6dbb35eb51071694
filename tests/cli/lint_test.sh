#!/bin/bash
# ferry lint: text and --json, exit codes, lint-ignore, --rules, errors.
set -u
ferry=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/ferry-lint.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
migration() { # dir name sql
	mkdir -p "$1/$2"
	printf '%s' "$3" >"$1/$2/migration.sql"
}

# The example project has no errors (warnings are allowed).
out=$("$ferry" lint "$root/deploy/examples/migrations" 2>"$tmp/err")
rc=$?
[ "$rc" -eq 0 ] || fail "examples: exit $rc: $out $(cat "$tmp/err")"
grep -q '^0 errors, [0-9]* warnings\? in [0-9]* migrations$' <<<"$out" ||
	grep -q '^no findings in ' <<<"$out" ||
	fail "examples: no summary line in: $out"
json=$("$ferry" lint --json "$root/deploy/examples/migrations") ||
	fail "examples --json exited $?"
grep -q '"errors": 0,' <<<"$json" || fail "examples --json: errors not 0"

# An error: exit 1, grouped by migration, with position, rule, why, fix.
migration "$tmp/m" 20240101000000_init 'CREATE TABLE "User" (id int, name text);
CREATE INDEX "User_name_idx" ON "User"(name);
'
migration "$tmp/m" 20240102000000_cleanup '-- DropTable
DROP TABLE "User";
'
out=$("$ferry" lint "$tmp/m" 2>"$tmp/err")
rc=$?
[ "$rc" -eq 1 ] || fail "drop table: expected exit 1, got $rc"
grep -q '^20240102000000_cleanup/migration.sql$' <<<"$out" ||
	fail "no migration heading in: $out"
grep -q '^  2:12 *error *FERRY-L001 drop-table$' <<<"$out" ||
	fail "no positioned finding in: $out"
grep -q 'drops table "User"' <<<"$out" || fail "no message in: $out"
grep -q '^      why: ' <<<"$out" || fail "no why in: $out"
grep -q '^      safer: ' <<<"$out" || fail "no safer pattern in: $out"
grep -q '^1 error, 0 warnings in 2 migrations$' <<<"$out" ||
	fail "summary wrong in: $out"
grep -q 'init' <<<"$out" && fail "the index on a new table was reported: $out"

json=$("$ferry" lint --json "$tmp/m")
[ $? -eq 1 ] || fail "--json: expected exit 1"
for want in '"migration": "20240102000000_cleanup"' \
	'"file": "20240102000000_cleanup/migration.sql"' '"line": 2' \
	'"column": 12' '"rule": "FERRY-L001"' '"name": "drop-table"' \
	'"severity": "error"' '"errors": 1' '"migrations": 2'; do
	grep -qF "$want" <<<"$json" || fail "--json lacks $want: $json"
done

# lint-ignore silences the rule for that migration: exit 0.
migration "$tmp/m" 20240102000000_cleanup '-- ferry:lint-ignore drop-table -- unused since v2
DROP TABLE "User";
'
out=$("$ferry" lint "$tmp/m")
rc=$?
[ "$rc" -eq 0 ] || fail "lint-ignore: expected exit 0, got $rc: $out"
grep -q '^no findings in 2 migrations (1 silenced by lint-ignore)$' <<<"$out" ||
	fail "lint-ignore summary wrong: $out"

# Warnings alone exit 0; a file the parser refuses is a warning.
migration "$tmp/w" 20240101000000_index 'CREATE INDEX i ON "User"(name);'
migration "$tmp/w" 20240102000000_new 'SELECT JSON_OBJECT('"'a'"' VALUE 1);'
out=$("$ferry" lint "$tmp/w")
rc=$?
[ "$rc" -eq 0 ] || fail "warnings: expected exit 0, got $rc: $out"
grep -q 'warning *FERRY-L005 index-not-concurrent' <<<"$out" ||
	fail "no index warning: $out"
grep -q 'warning *FERRY-L090 unparseable' <<<"$out" ||
	fail "no parse warning: $out"

# --rules, in text and JSON.
out=$("$ferry" lint --rules) || fail "--rules exited $?"
for id in 001 002 003 004 005 006 007 008 009 010 011 012; do
	grep -q "^FERRY-L$id " <<<"$out" || fail "--rules lacks FERRY-L$id"
done
"$ferry" lint --rules --json | grep -q '"id": "FERRY-L012"' ||
	fail "--rules --json lacks FERRY-L012"
# The shadow rules are listed, and lint-ignore may name them without a
# shadow (the same folder is linted both ways).
for id in 101 102 103 104 105 106 107 108 109 110 111; do
	grep -q "^FERRY-L$id " <<<"$out" || fail "--rules lacks FERRY-L$id"
done
migration "$tmp/s" 20240101000000_x '-- ferry:lint-ignore table-dropped FERRY-L109
SELECT 1;
'
out=$("$ferry" lint "$tmp/s")
grep -q '^no findings in 1 migration$' <<<"$out" ||
	fail "lint-ignore of shadow rules without a shadow: $out"

# Usage and input errors exit 2.
"$ferry" lint "$tmp/none" 2>"$tmp/err"
[ $? -eq 2 ] || fail "missing dir: expected exit 2"
grep -q "$tmp/none" "$tmp/err" || fail "missing dir not named"
"$ferry" lint 2>/dev/null
[ $? -eq 2 ] || fail "no argument: expected exit 2"
"$ferry" lint --bogus "$tmp/m" 2>"$tmp/err"
[ $? -eq 2 ] || fail "bad option: expected exit 2"
grep -q -- "--bogus" "$tmp/err" || fail "bad option not named"
"$ferry" lint --rules "$tmp/m" 2>/dev/null
[ $? -eq 2 ] || fail "--rules with a directory: expected exit 2"
"$ferry" lint --init-shadow "$tmp/m" 2>"$tmp/err"
[ $? -eq 2 ] || fail "--init-shadow without --shadow-url: expected exit 2"
grep -q -- "--shadow-url" "$tmp/err" || fail "--init-shadow: --shadow-url not named"

# A shadow that cannot be reached: the folder could not be checked, exit 3.
"$ferry" lint --shadow-url "postgresql://nobody@127.0.0.1:1/x" "$tmp/m" \
	>"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 3 ] || fail "unreachable shadow: expected exit 3, got $rc"
grep -q '^ferry lint: error: ' "$tmp/err" ||
	fail "unreachable shadow: no error line: $(cat "$tmp/err")"
[ -s "$tmp/out" ] && fail "unreachable shadow: findings printed"

echo "$fails failures"
[ "$fails" -eq 0 ]
