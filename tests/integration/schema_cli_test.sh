#!/bin/bash
# ferry-agent introspect / diff as commands: output forms and -o, saved
# documents loaded back, what the digest covers and what it leaves out,
# edited or foreign documents refused, exit statuses (0 same, 1 differ,
# 2 usage / invalid input, 3 could not check), --json of diff, the URL
# from DIRECT_URL / DATABASE_URL.
. "$(dirname "$0")/lib.sh"
it_init "${1:-}"

newdb cli
qdb "$db" "CREATE TYPE \"Role\" AS ENUM ('OWNER', 'MEMBER');
	CREATE TABLE orders (id int PRIMARY KEY, total integer, role \"Role\");
	CREATE UNIQUE INDEX orders_total_key ON orders (total);
	CREATE EXTENSION citext" >/dev/null
doc=$IT_TMP/doc.json

# ---------------------------------------------------------------------
check "1. output forms, -o, and the URL from the environment"
run introspect --database-url "$db" --digest
expect_rc 0 "--digest"
digest=$(cat "$OUT")
[[ $digest =~ ^[0-9a-f]{64}$ ]] || fail "--digest printed '$digest'"
run introspect --database-url "$db" --json -o "$doc"
expect_rc 0 "--json -o"
[ -s "$OUT" ] && fail "-o also wrote to stdout"
expect_json "$doc" "j['digest'] == '$digest' and j['format'] == 'ferry-schema/1'" \
	"saved JSON carries the digest"
run introspect --database-url "$db" -o "$IT_TMP/doc.txt"
expect_rc 0 "text -o"
expect_eq "$(sha "$IT_TMP/doc.txt")" "$digest" "text file hashes to the digest"
ls "$IT_TMP"/doc.json.tmp* >/dev/null 2>&1 && fail "temporary file left behind"
DATABASE_URL=$db run introspect --digest
expect_rc 0 "DATABASE_URL"
expect_eq "$(cat "$OUT")" "$digest" "DATABASE_URL is used"
DATABASE_URL=postgresql://nobody@127.0.0.1:1/x DIRECT_URL=$db run introspect --digest
expect_rc 0 "DIRECT_URL wins"
run introspect --database-url "$db" --stats --digest
expect_grep "$ERR" '^introspected [0-9]+ objects with 13 queries: ' "--stats line"

# ---------------------------------------------------------------------
check "2. saved documents load back and compare"
run diff "$doc" "$db"
expect_rc 0 "saved vs live"
expect_grep "$OUT" "^no differences: both schemas have digest $digest\$" "equal message"
run diff "$doc" "$doc" --json
expect_rc 0 "diff --json of equal documents"
expect_json "$OUT" "j['equal'] is True and j['changes'] == [] and j['a']['digest'] == '$digest'" \
	"equal JSON"
# Extension versions are listed, not digested: a note, exit 0.
python3 - "$doc" "$IT_TMP/ext.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
[e for e in d["extensions"] if e["name"] == "citext"][0]["version"] = "0.9"
json.dump(d, open(sys.argv[2], "w"))
EOF
run diff "$IT_TMP/ext.json" "$db"
expect_rc 0 "other extension version"
expect_grep "$OUT" '^note: extension "citext": version 0\.9 → [0-9.]+ \(not part of the digest\)$' \
	"version difference noted"
# Key order, array order and whitespace do not matter when loading.
python3 - "$doc" "$IT_TMP/shuffled.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["enums"][0]["values"]  # order of values is meaningful: kept
t = d["tables"][0]
t["indexes"].reverse()
d = dict(reversed(list(d.items())))
json.dump(d, open(sys.argv[2], "w"), indent=7, sort_keys=True)
EOF
run diff "$IT_TMP/shuffled.json" "$db"
expect_rc 0 "reordered, reindented document"

# ---------------------------------------------------------------------
check "3. differences: exit 1, text and --json"
qdb "$db" "ALTER TABLE orders ALTER total TYPE bigint;
	DROP INDEX orders_total_key;
	ALTER TYPE \"Role\" ADD VALUE 'AUDITOR';
	CREATE TABLE comments (id int)" >/dev/null
run diff "$doc" "$db"
expect_rc 1 "diff finds changes"
cat >"$IT_TMP/expected.txt" <<'EOF'
[+] Added tables
  - "comments"
[*] Changed the "Role" enum
  [+] enum "Role": value 'AUDITOR' added
[*] Changed the "orders" table
  [*] column "total": integer → bigint
  [-] index "orders_total_key" removed
EOF
diff -u "$IT_TMP/expected.txt" "$OUT" >"$IT_TMP/d.out" ||
	{ fail "diff text"; cat "$IT_TMP/d.out"; }
run diff "$doc" "$db" --json
expect_rc 1 "diff --json finds changes"
expect_json "$OUT" "j['equal'] is False and len(j['changes']) == 3" "three changes"
expect_json "$OUT" "[c for c in j['changes'] if c['name'] == 'orders'][0]['details'][0] == {'action': 'changed', 'object': 'column', 'name': 'total', 'attribute': 'type', 'old': 'integer', 'new': 'bigint', 'text': 'column \"total\": integer → bigint'}" \
	"structured column change"
expect_json "$OUT" "[c for c in j['changes'] if c['name'] == 'orders'][0]['details'][1]['old_object']['definition'].startswith('CREATE UNIQUE INDEX orders_total_key')" \
	"removed index carries its definition"
expect_json "$OUT" "[c for c in j['changes'] if c['name'] == 'comments'][0]['action'] == 'added'" \
	"added table"
expect_json "$OUT" "j['a']['digest'] == '$digest' and j['b']['digest'] != '$digest'" \
	"digests of both sides"

# ---------------------------------------------------------------------
check "4. edited, foreign and other-version documents"
sed 's/"integer"/"smallint"/' "$doc" >"$IT_TMP/edited.json"
run diff "$IT_TMP/edited.json" "$db"
expect_rc 2 "edited document"
expect_one_error diff "does not match the content" "edited document refused"
run diff "$IT_TMP/doc.txt" "$db"
expect_rc 2 "text form"
expect_one_error diff "text form of a schema document" "text form refused"
echo '{"hello": 1}' >"$IT_TMP/other.json"
run diff "$IT_TMP/other.json" "$db"
expect_rc 2 "foreign JSON"
expect_one_error diff "not a schema document of format" "foreign JSON refused"
run diff "$IT_TMP/nonexistent.json" "$db"
expect_rc 3 "missing file"
expect_one_error diff "cannot open" "missing file named"
# A document from another major version with a valid digest, computed here
# from the text form (sha256 of the text with the "postgres N" line bumped).
major=$(sed -n 's/^postgres //p' "$IT_TMP/doc.txt")
other=$((major + 1))
python3 - "$doc" "$IT_TMP/doc.txt" "$other" "$IT_TMP/major.json" <<'EOF'
import hashlib, json, sys
d = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read().replace("\npostgres %d\n" % d["postgres"]["major"],
                                        "\npostgres %s\n" % sys.argv[3], 1)
d["postgres"] = {"major": int(sys.argv[3]), "version": sys.argv[3] + ".0"}
d["digest"] = hashlib.sha256(text.encode()).hexdigest()
json.dump(d, open(sys.argv[4], "w"))
EOF
run diff "$IT_TMP/major.json" "$db"
expect_rc 3 "another major version"
expect_one_error diff "PostgreSQL $other .* PostgreSQL $major" "major versions named"

# ---------------------------------------------------------------------
check "5. usage errors and unreachable servers"
run diff "$doc"
expect_rc 2 "one argument"
expect_one_error diff "expected two schemas" "one argument"
run diff
expect_rc 2 "no argument"
run diff "$doc" "$doc" "$doc"
expect_rc 2 "three arguments"
run diff "$doc" "$doc" --bogus
expect_rc 2 "unknown option"
expect_one_error diff "unknown option" "unknown option named"
run introspect --database-url "$db" --json --digest
expect_rc 2 "--json with --digest"
run introspect --database-url "$db" extra
expect_rc 2 "stray argument"
run introspect --database-url "$db" --schema ""
expect_rc 2 "empty --schema"
port=$(free_port)
run introspect --database-url "postgresql://postgres:secret@127.0.0.1:$port/x" --digest
expect_rc 3 "cannot connect"
expect_one_error introspect "cannot connect" "connection error"
expect_no_grep "$ERR" secret "password masked"
run diff "postgresql://postgres@127.0.0.1:$port/x" "$doc"
expect_rc 3 "diff cannot connect"
run introspect --database-url "$db" --json -o "$IT_TMP/no/such/dir/x.json"
expect_rc 3 "unwritable -o"
expect_one_error introspect "cannot create" "unwritable -o named"
for cmd in introspect diff; do
	run "$cmd" --help
	expect_rc 0 "$cmd --help"
	expect_grep "$OUT" "^usage: ferry-agent $cmd" "$cmd --help usage line"
	expect_grep "$OUT" '^Exit status:' "$cmd --help exit statuses"
done

# ---------------------------------------------------------------------
check "6. a catalog query fails midway: exit 3, the query named, no leak"
# Another session holds an ACCESS EXCLUSIVE lock on one catalog; with a
# short lock_timeout, the query that reads it fails. Early, middle and late
# queries of the thirteen.
locked_run() { # CATALOG EXPECTED-WHAT
	local n
	PGAPPNAME=ferry-locker psql -X -q -d "$db" -c "BEGIN;
		LOCK TABLE pg_catalog.$1 IN ACCESS EXCLUSIVE MODE;
		SELECT pg_sleep(60)" >/dev/null 2>&1 &
	IT_PIDS+=($!)
	for _ in $(seq 100); do
		n=$(qdb "$IT_ADMIN" "SELECT count(*) FROM pg_locks l
			JOIN pg_stat_activity a USING (pid)
			WHERE a.application_name = 'ferry-locker' AND l.granted
			AND l.mode = 'AccessExclusiveLock'")
		[ "$n" -ge 1 ] && break
		sleep 0.1
	done
	PGOPTIONS="-c lock_timeout=300ms" run_bounded 30 introspect \
		--database-url "$db" --digest
	expect_rc 3 "$1 locked"
	expect_one_error introspect "cannot list $2: canceling statement due to lock timeout" \
		"$1 locked: the failing query is named"
	qdb "$IT_ADMIN" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'ferry-locker'" >/dev/null
	wait
}
locked_run pg_extension extensions
locked_run pg_constraint constraints
locked_run pg_policy policies
# Nothing was left behind: the next run works.
run introspect --database-url "$db" --digest
expect_rc 0 "introspect after the failures"

it_done
