#!/bin/bash
# ferry-agent shadow, drift and apply --expected against a real server:
# the report's digest per prefix and its final digest (checked against
# introspect of a database the ordinary apply built), the refusals (the
# target under another URL spelling, an unmarked database, a missing
# extension), the P3006-like failure message, one drift case per kind of
# out-of-band change, a history that does not match the report, and
# apply --expected refusing on drift, verifying after applying and
# catching a migration that does something else on the target; with the
# ferry CLI as second argument, a signed bundle as input.
#
#   shadow_drift_test.sh path/to/ferry-agent [path/to/ferry]
. "$(dirname "$0")/lib.sh"
it_init "${1:-}"
CLI=${2:-}

mig=$IT_EXAMPLES
report=$IT_TMP/report.json

# Databases built by copying a template (no connection may be open on it).
copydb() {
	IT_DBN=$((IT_DBN + 1))
	db=$IT_URL/copy$IT_DBN
	qdb "$IT_ADMIN" "CREATE DATABASE copy$IT_DBN TEMPLATE \"$1\"" >/dev/null ||
		fail "cannot copy database $1"
}

newdb shadow
shadow=$db
newdb target
target=$db
target_name=${target##*/}

# ---------------------------------------------------------------------
check "1. an unmarked shadow is refused without --init-shadow"
run shadow --migrations "$mig" --shadow-url "$shadow" -o "$report"
expect_rc 1 "unmarked shadow"
expect_one_error shadow 'database "shadow1" is not marked as a Ferry shadow database.*--init-shadow' \
	"unmarked shadow"
[ -e "$report" ] && fail "a report was written after a refusal"

# ---------------------------------------------------------------------
check "2. the target database is refused under other URL spellings"
alias_url=$(echo "$target" | sed 's/127\.0\.0\.1/localhost/')
run shadow --migrations "$mig" --shadow-url "$alias_url" --init-shadow \
	--database-url "$target" -o "$report"
expect_rc 1 "localhost vs 127.0.0.1"
expect_one_error shadow "refusing to use the target database as the shadow database: .*same database \"$target_name\"" \
	"localhost spelling"
DATABASE_URL="$target" run shadow --migrations "$mig" --init-shadow \
	--shadow-url "$target?schema=elsewhere" -o "$report"
expect_rc 1 "?schema= spelling, target from DATABASE_URL"
expect_one_error shadow "refusing to use the target database" "?schema= spelling"
expect_eq "$(qdb "$target" "SELECT count(*) FROM pg_namespace WHERE nspname = 'elsewhere'")" 0 \
	"the target was left alone"
expect_eq "$(qdb "$target" "SELECT shobj_description(oid, 'pg_database') IS NULL FROM pg_database WHERE datname = current_database()")" t \
	"the target was not marked"

# ---------------------------------------------------------------------
check "3. shadow replay of the examples: digest per prefix"
# Leftovers in the shadow are wiped by the reset.
qdb "$shadow" "CREATE TABLE junk (id int); CREATE SCHEMA ferry; CREATE EXTENSION pg_trgm" >/dev/null
run shadow --migrations "$mig" --shadow-url "$shadow" --init-shadow \
	--database-url "$target" -o "$report"
expect_rc 0 "shadow --init-shadow"
expect_json "$report" "j['format'] == 'ferry-shadow-report/1' and len(j['migrations']) == 10" \
	"10 migrations"
expect_json "$report" "all(len(m['digest']) == 64 and m['document']['digest'] == m['digest'] for m in j['migrations'])" \
	"a digest and document per prefix"
expect_json "$report" "len(set(m['digest'] for m in j['migrations'])) == 10 and j['initial']['digest'] not in [m['digest'] for m in j['migrations']]" \
	"every prefix has its own digest"
expect_json "$report" "j['digest'] == j['migrations'][-1]['digest'] and isinstance(j['postgres']['major'], int)" \
	"final digest and PostgreSQL major"
expect_json "$report" "[m['name'] for m in j['migrations']] == sorted(__import__('os').listdir('$mig'))[:10]" \
	"migrations in order"
expect_json "$report" "not any(t['name'] == 'junk' for t in j['initial']['document']['tables']) and not any(e['name'] == 'pg_trgm' for e in j['initial']['document']['extensions'])" \
	"the reset wiped leftovers"
expect_eq "$(qdb "$shadow" "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()")" \
	"ferry shadow database" "the shadow is marked"
final=$(json_eval "$report" "j['digest']")
run shadow --migrations "$mig" --shadow-url "$shadow" -o "$IT_TMP/again.json" --json
expect_rc 0 "a marked shadow is reused without --init-shadow"
expect_json "$OUT" "j['digest'] == '$final' and len(j['steps']) == 10" "replay is deterministic"

run apply --migrations "$mig" --database-url "$target"
expect_rc 0 "apply the examples to the target"
run introspect --database-url "$target" --digest
expect_eq "$(cat "$OUT")" "$final" "the final digest is the applied database's"

# ---------------------------------------------------------------------
check "4. extensions: created first; a missing one is named"
run shadow --migrations "$mig" --shadow-url "$shadow" --extensions pgcrypto \
	-o "$IT_TMP/ext.json"
expect_rc 0 "--extensions pgcrypto"
expect_json "$IT_TMP/ext.json" "any(e['name'] == 'pgcrypto' for e in j['initial']['document']['extensions'])" \
	"the extension is in the initial document"
run shadow --migrations "$mig" --shadow-url "$shadow" --extensions pgcrypto,nosuchext \
	-o "$IT_TMP/ext2.json"
expect_rc 3 "missing extension"
expect_one_error shadow 'extension "nosuchext" is not available on the shadow server' \
	"missing extension named"

# ---------------------------------------------------------------------
check "5. a failing migration: P3006-like message"
bad=$IT_TMP/bad
mkdir -p "$bad"
cp -r "$mig/20240108093000_init" "$bad/"
mkmig "$bad" 20240110000000_broken <<'EOF'
CREATE TABLE "Ok" (id int);

ALTER TABLE "Nope" ADD COLUMN x int;
EOF
run shadow --migrations "$bad" --shadow-url "$shadow" -o "$IT_TMP/bad.json"
expect_rc 1 "failing migration"
expect_one_error shadow "migration '20240110000000_broken' failed to apply cleanly to the shadow database: statement 2 of 2 \(migration.sql line 3, column 1\): .*\"Nope\" does not exist.*\(SQLSTATE 42P01\)" \
	"P3006-like message"

# ---------------------------------------------------------------------
check "6. drift: clean, then each out-of-band change"
# The examples plus a function and a table with row-level security, so
# that function bodies and policies can drift too.
full=$IT_TMP/full
cp -r "$mig" "$full"
mkmig "$full" 20240315000000_touch_and_rls <<'EOF'
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW."updatedAt" := now(); RETURN NEW; END $$;
ALTER TABLE "Project" ENABLE ROW LEVEL SECURITY;
EOF
freport=$IT_TMP/full.json
run shadow --migrations "$full" --shadow-url "$shadow" -o "$freport"
expect_rc 0 "shadow of the extended folder"
newdb base
base=$db
base_name=${base##*/}
run apply --migrations "$full" --database-url "$base"
expect_rc 0 "apply the extended folder"
run drift --database-url "$base" --expected "$freport"
expect_rc 0 "clean database"
expect_grep "$OUT" '^no drift: the database matches the shadow after 11 migrations' "clean message"
run drift --database-url "$base" --expected "$freport" --migrations "$full" --json
expect_rc 0 "clean, --migrations, --json"
expect_json "$OUT" "j['drift'] is False and j['applied'] == 11" "clean JSON"
run drift --database-url "$base" --expected "$freport" --migrations "$mig"
expect_rc 1 "report made from another folder"
expect_one_error drift "does not match the migrations" "stale report"

drift_case() {
	local what=$1 sql=$2 re=$3
	copydb "$base_name"
	qdb "$db" "$sql" >/dev/null || fail "$what: setup failed"
	run drift --database-url "$db" --expected "$freport"
	expect_rc 1 "$what" &&
		expect_grep "$OUT" "$re" "$what named in the diff"
	expect_grep "$ERR" "schema drift: " "$what: error line"
}
drift_case "table added by hand" 'CREATE TABLE "Handmade" (id int)' \
	'^\[\+\] Added tables'
expect_grep "$OUT" '"Handmade"' "table name"
drift_case "column type changed" 'ALTER TABLE "Label" ALTER "color" TYPE varchar(9)' \
	'column "color": character\(7\) → character varying\(9\)'
drift_case "index dropped" 'DROP INDEX "Task_assigneeId_idx"' \
	'index "Task_assigneeId_idx" removed'
drift_case "enum value added" "ALTER TYPE \"Role\" ADD VALUE 'AUDITOR'" \
	"enum \"Role\".*value 'AUDITOR' added|value 'AUDITOR' added"
drift_case "function body changed" 'CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW."updatedAt" := clock_timestamp(); RETURN NEW; END $$' \
	'Changed the function "touch\(\)"|function "touch\(\)"'
drift_case "extension added" 'CREATE EXTENSION pgcrypto' \
	'Added extensions|"pgcrypto"'
drift_case "policy added" 'CREATE POLICY org_only ON "Project" USING ("organizationId" = 1)' \
	'policy "org_only" added'

# ---------------------------------------------------------------------
check "7. prefixes and histories"
part=$IT_TMP/part
mkdir -p "$part"
for m in $(ls "$mig" | grep -v toml | head -5); do cp -r "$mig/$m" "$part/"; done
newdb prefix
prefix=$db
prefix_name=${prefix##*/}
run apply --migrations "$part" --database-url "$prefix"
expect_rc 0 "apply 5 migrations"
run drift --database-url "$prefix" --expected "$freport"
expect_rc 0 "a prefix of the report is clean"
expect_grep "$OUT" 'after 5 migrations' "prefix length"
newdb empty
run drift --database-url "$db" --expected "$freport"
expect_rc 0 "an empty database matches prefix 0"
copydb "$prefix_name"
qdb "$db" "UPDATE _prisma_migrations SET checksum = repeat('0', 64) WHERE migration_name = '20240112141500_add_projects'" >/dev/null
run drift --database-url "$db" --expected "$freport"
expect_rc 1 "checksum differs from the report"
expect_one_error drift "'20240112141500_add_projects' was applied to the database with checksum 000000000000" \
	"checksum mismatch named"
copydb "$prefix_name"
qdb "$db" "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, finished_at, applied_steps_count) VALUES ('x', 'y', '20990101000000_unknown', now(), now(), 1)" >/dev/null
run drift --database-url "$db" --expected "$freport"
expect_rc 1 "unknown migration in the history"
expect_one_error drift "'20990101000000_unknown' is applied to the database but is not in the shadow report" \
	"unknown migration named"
run drift --database-url "$prefix?schema=other" --expected "$freport"
expect_rc 3 "another schema cannot be compared"
run drift --database-url "postgresql://nobody@127.0.0.1:1/x" --expected "$freport"
expect_rc 3 "cannot connect"
echo '{"format": "nope"}' >"$IT_TMP/junk.json"
run drift --database-url "$prefix" --expected "$IT_TMP/junk.json"
expect_rc 2 "not a report"

# ---------------------------------------------------------------------
check "8. apply --expected"
copydb "$prefix_name"
clean=$db
run apply --migrations "$full" --database-url "$clean" --expected "$freport"
expect_rc 0 "apply --expected on a clean database"
expect_grep "$OUT" '^verified: the schema matches the shadow report' "verified"
expect_eq "$(nrows "$clean")" 11 "everything applied"
copydb "$prefix_name"
drifted=$db
qdb "$drifted" 'DROP INDEX "User_email_key"' >/dev/null
run apply --migrations "$full" --database-url "$drifted" --expected "$freport"
expect_rc 1 "apply --expected refuses on drift"
expect_grep "$ERR" 'refusing to apply: schema drift' "refusal"
expect_grep "$ERR" 'index "User_email_key" removed' "refusal shows the diff"
expect_eq "$(nrows "$drifted")" 5 "nothing applied after the refusal"
copydb "$prefix_name"
run apply --migrations "$mig" --database-url "$db" --expected "$freport"
expect_rc 1 "the report was made from other migrations"
expect_grep "$ERR" 'does not match the migrations' "mismatch named"
expect_eq "$(nrows "$db")" 5 "nothing applied"
# A migration that does something else on the target than on the shadow
# (it looks at a schema outside the scope): caught after applying.
sneaky=$IT_TMP/sneaky
cp -r "$part" "$sneaky"
mkmig "$sneaky" 20240301000000_sneaky <<'EOF'
DO $$ BEGIN
	IF to_regnamespace('outside') IS NOT NULL THEN
		CREATE TABLE "Surprise" (id int);
	END IF;
END $$;
EOF
run shadow --migrations "$sneaky" --shadow-url "$shadow" -o "$IT_TMP/sneaky.json"
expect_rc 0 "shadow of the sneaky folder"
copydb "$prefix_name"
qdb "$db" "CREATE SCHEMA outside" >/dev/null
run apply --migrations "$sneaky" --database-url "$db" --expected "$IT_TMP/sneaky.json"
expect_rc 1 "post-apply verification"
expect_grep "$ERR" 'post-apply verification failed: schema drift' "post-apply message"
expect_grep "$ERR" '"Surprise"' "post-apply diff"

# ---------------------------------------------------------------------
check "9. usage"
for c in shadow drift; do
	run "$c" --help
	expect_rc 0 "$c --help"
done
run shadow --migrations "$mig" -o "$report"
expect_rc 2 "shadow without --shadow-url"
run drift --database-url "$target"
expect_rc 2 "drift without --expected"

# ---------------------------------------------------------------------
if [ -n "$CLI" ] && [ -x "$CLI" ]; then
	check "10. a signed bundle as input"
	K=$IT_TMP/keys
	"$CLI" keygen --name release -o "$K" --no-passphrase >/dev/null 2>&1 &&
		"$CLI" keygen --name rogue -o "$K" --no-passphrase >/dev/null 2>&1 &&
		"$CLI" bundle create --migrations "$full" --project acme \
			--key "$K/release.key" -o "$IT_TMP/b.fbundle" >/dev/null 2>&1 ||
		fail "bundle fixtures"
	run shadow --bundle "$IT_TMP/b.fbundle" --trust "$K/release.pub" \
		--shadow-url "$shadow" -o "$IT_TMP/bundle.json"
	expect_rc 0 "shadow of a bundle"
	expect_json "$IT_TMP/bundle.json" "j['digest'] == '$(json_eval "$freport" "j['digest']")'" \
		"same digest as from the folder"
	run drift --database-url "$base" --expected "$freport" \
		--bundle "$IT_TMP/b.fbundle" --trust "$K/release.pub"
	expect_rc 0 "drift checks the report against the bundle"
	run shadow --bundle "$IT_TMP/b.fbundle" --trust "$K/rogue.pub" \
		--shadow-url "$shadow" -o "$IT_TMP/bundle2.json"
	expect_rc 1 "a bundle signed by an untrusted key is refused"
	run shadow --bundle "$IT_TMP/b.fbundle" --shadow-url "$shadow" -o "$IT_TMP/b3.json"
	expect_rc 2 "--bundle without --trust"
fi

it_done
