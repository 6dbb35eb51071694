#!/bin/bash
# ferry-agent apply / status / baseline on a real server: the example
# project applies, _prisma_migrations is Prisma's table row for row (checked
# in the catalog, not through Ferry), a re-run is a no-op, a new folder is
# pending then applied; Prisma URLs with ?schema= and DIRECT_URL /
# DATABASE_URL; baseline of an existing schema; --json documents.
. "$(dirname "$0")/lib.sh"
it_init "${1:-}"

uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'

# ---------------------------------------------------------------------
check "1. the example project applies; every row is Prisma's"
newdb happy
ex=$IT_TMP/examples
cp -r "$IT_EXAMPLES" "$ex"
nmig=$(find "$ex" -mindepth 1 -maxdepth 1 -type d | wc -l)
expect_eq "$nmig" 10 "example migrations"
run apply --migrations "$ex" --database-url "$db"
expect_rc 0 "apply examples"
expect_grep "$OUT" "10 migrations applied" "apply summary"

n=$(nrows "$db")
expect_eq "$n" 10 "rows in _prisma_migrations"
n=$(qdb "$db" "SELECT count(*) FROM _prisma_migrations
	WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL
	  AND logs IS NULL AND finished_at >= started_at
	  AND applied_steps_count >= 1")
expect_eq "$n" 10 "rows finished, not rolled back, no logs, steps counted"
# Every id a UUID v4, distinct.
bad=0
while IFS='|' read -r id; do
	[[ $id =~ $uuid_re ]] || { fail "id '$id' is not a lowercase UUID v4"; bad=1; }
done < <(qdb "$db" "SELECT id FROM _prisma_migrations")
n=$(qdb "$db" "SELECT count(DISTINCT id) FROM _prisma_migrations")
expect_eq "$n" 10 "distinct ids"
# The check above can fail.
[[ 3db16941-bae4-1781-850f-c91b032ea9a9 =~ $uuid_re ]] &&
	fail "the UUID v4 check accepts a version-1 id"
# Checksums: sha256sum of each file, one row per folder, in folder order.
for d in "$ex"/*/; do
	name=$(basename "$d")
	got=$(qdb "$db" "SELECT string_agg(checksum, ',') FROM _prisma_migrations
		WHERE migration_name = '$name'")
	expect_eq "$got" "$(sha "$d/migration.sql")" "checksum of $name"
done
order=$(qdb "$db" "SELECT string_agg(migration_name, ' ' ORDER BY started_at)
	FROM _prisma_migrations")
expect_eq "$order" "$(cd "$ex" && LC_ALL=C ls -d -- */ | tr -d / | tr '\n' ' ' | sed 's/ $//')" \
	"rows in folder order"
# The schema is what the migrations promise.
for t in '"Organization"' '"User"' '"Project"' '"Task"' '"Comment"' \
	'"Label"' '"_LabelToTask"' '"ProjectTaskSummary"'; do
	has_rel "$db" "$t" || fail "relation $t missing after apply"
done
has_rel "$db" '"NoSuchTable"' && fail "has_rel accepts a missing table"
n=$(qdb "$db" "SELECT i.indisvalid FROM pg_index i
	JOIN pg_class c ON c.oid = i.indexrelid
	WHERE c.relname = 'Task_projectId_status_idx'")
expect_eq "$n" t "index built CONCURRENTLY is valid"
n=$(qdb "$db" "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
	FROM pg_enum WHERE enumtypid = '\"TaskStatus\"'::regtype")
expect_eq "$n" TODO,IN_PROGRESS,DONE,IN_REVIEW "TaskStatus labels"

check "1. the history table's columns are exactly Prisma's DDL"
# Prisma's CREATE TABLE, verbatim, in a schema of its own to compare with.
qdb "$db" 'CREATE SCHEMA prisma_ref; CREATE TABLE prisma_ref._prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
)' >/dev/null || fail "cannot create the reference table"
cols() {
	qdb "$db" "SELECT string_agg(format('%s %s %s %s %s %s', column_name,
		data_type, character_maximum_length, is_nullable,
		column_default, ordinal_position), '; ' ORDER BY ordinal_position)
		FROM information_schema.columns
		WHERE table_schema = '$1' AND table_name = '_prisma_migrations'"
}
ref=$(cols prisma_ref)
got=$(cols public)
expect_eq "$got" "$ref" "columns of public._prisma_migrations"
case "$ref" in
*"started_at timestamp with time zone  NO now() 7"*) ;;
*) fail "reference DDL not read back as expected: $ref" ;;
esac
pk() {
	qdb "$db" "SELECT string_agg(a.attname, ',') FROM pg_constraint c
		JOIN pg_attribute a ON a.attrelid = c.conrelid
		 AND a.attnum = ANY (c.conkey)
		WHERE c.conrelid = '$1._prisma_migrations'::regclass
		  AND c.contype = 'p'"
}
expect_eq "$(pk public)" "$(pk prisma_ref)" "primary key"
expect_eq "$(pk public)" id "primary key column"
n=$(qdb "$db" "SELECT count(*) FROM pg_constraint
	WHERE conrelid = 'public._prisma_migrations'::regclass")
expect_eq "$n" 1 "constraints on _prisma_migrations (the primary key only)"
n=$(qdb "$db" "SELECT count(*) FROM pg_index
	WHERE indrelid = 'public._prisma_migrations'::regclass")
expect_eq "$n" 1 "indexes on _prisma_migrations"
# Ferry keeps its own bookkeeping out of the connection's schema.
n=$(qdb "$db" "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class c
	JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = 'public' AND relkind = 'r'
	  AND relname NOT IN ('Organization', 'User', 'Membership', 'Project',
	    'Task', 'Comment', 'Label', '_LabelToTask', '_prisma_migrations')")
expect_eq "$n" "" "no extra tables in public"

check "1. a second apply is a no-op"
before=$(qdb "$db" "SELECT string_agg(id || finished_at::text, ',' ORDER BY id)
	FROM _prisma_migrations")
run apply --migrations "$ex" --database-url "$db"
expect_rc 0 "second apply"
expect_grep "$OUT" "nothing to apply" "second apply says so"
after=$(qdb "$db" "SELECT string_agg(id || finished_at::text, ',' ORDER BY id)
	FROM _prisma_migrations")
expect_eq "$after" "$before" "rows unchanged by the second apply"
run status --migrations "$ex" --database-url "$db"
expect_rc 0 "status when up to date"

check "1. a new folder is pending, then applied"
mkmig "$ex" 20240401000000_add_audit <<'EOF'
CREATE TABLE "Audit" ("id" SERIAL PRIMARY KEY, "what" TEXT NOT NULL);
EOF
run status --migrations "$ex" --database-url "$db"
expect_rc 1 "status with a pending migration"
expect_grep "$OUT" '^pending +20240401000000_add_audit' "status lists it pending"
run status --json --migrations "$ex" --database-url "$db"
expect_rc 1 "status --json with a pending migration"
expect_json "$OUT" 'j["up_to_date"] is False and j["counts"]["pending"] == 1 and
	j["counts"]["applied"] == 10 and
	[m["name"] for m in j["migrations"] if m["state"] == "pending"] == ["20240401000000_add_audit"]' \
	"status --json pending"
has_rel "$db" '"Audit"' && fail "status created the pending migration's table"
run apply --migrations "$ex" --database-url "$db"
expect_rc 0 "apply the new folder"
expect_grep "$OUT" '1 migration applied' "apply applied one"
has_rel "$db" '"Audit"' || fail "table Audit missing after apply"
n=$(qdb "$db" "SELECT count(*) FROM _prisma_migrations
	WHERE migration_name = '20240401000000_add_audit' AND finished_at IS NOT NULL
	  AND checksum = '$(sha "$ex/20240401000000_add_audit/migration.sql")'")
expect_eq "$n" 1 "row of the new migration"
expect_eq "$(nrows "$db")" 11 "rows after the new migration"
run status --migrations "$ex" --database-url "$db"
expect_rc 0 "status after applying everything"

# ---------------------------------------------------------------------
# A small project used below.
small=$IT_TMP/small
mkmig "$small" 20250101000000_one <<'EOF'
CREATE TABLE one (id int PRIMARY KEY);
EOF
mkmig "$small" 20250102000000_two <<'EOF'
CREATE TABLE two (id int REFERENCES one);
EOF

check "6. ?schema=app with Prisma-only parameters: everything lands in app"
newdb schema
run apply --migrations "$small" \
	--database-url "$db?schema=app&connection_limit=5&pool_timeout=10"
expect_rc 0 "apply with ?schema=app&connection_limit=5&pool_timeout=10"
for r in app._prisma_migrations app.one app.two; do
	has_rel "$db" "$r" || fail "$r missing"
done
for r in public._prisma_migrations public.one public.two; do
	has_rel "$db" "$r" && fail "$r created in public"
done
expect_eq "$(nrows "$db" app)" 2 "rows in app._prisma_migrations"
n=$(qdb "$db" "SELECT confrelid::regclass::text FROM pg_constraint
	WHERE conrelid = 'app.two'::regclass AND contype = 'f'")
expect_eq "$n" app.one "unqualified names in the migration resolve in app"
expect_grep "$ERR" 'connection_limit' "log names the dropped connection_limit"
expect_grep "$ERR" 'pool_timeout' "log names the dropped pool_timeout"
run status --migrations "$small" --database-url "$db?schema=app"
expect_rc 0 "status with ?schema=app"
run status --migrations "$small" --database-url "$db"
expect_rc 1 "status of schema public (nothing applied there)"

check "6. ?schema=app alone"
newdb schema
run apply --migrations "$small" --database-url "$db?schema=app"
expect_rc 0 "apply with ?schema=app"
has_rel "$db" app._prisma_migrations || fail "app._prisma_migrations missing"
has_rel "$db" public.one && fail "table one created in public"

check "6. DATABASE_URL from the environment"
newdb env
DATABASE_URL=$db "$FERRY" apply --migrations "$small" >"$OUT" 2>"$ERR"
RC=$?
no_crash "apply with DATABASE_URL"
expect_rc 0 "apply with DATABASE_URL"
expect_eq "$(nrows "$db")" 2 "rows applied through DATABASE_URL"

check "6. DIRECT_URL wins over DATABASE_URL"
newdb env
bad=postgresql://postgres@127.0.0.1:$(free_port)/nosuchdb
DATABASE_URL=$bad DIRECT_URL=$db "$FERRY" apply --migrations "$small" \
	>"$OUT" 2>"$ERR"
RC=$?
no_crash "apply with DIRECT_URL"
expect_rc 0 "apply with DIRECT_URL and a bad DATABASE_URL"
expect_eq "$(nrows "$db")" 2 "rows applied through DIRECT_URL"
DATABASE_URL=$bad "$FERRY" status --migrations "$small" >"$OUT" 2>"$ERR"
RC=$?
expect_rc 3 "status with only the bad DATABASE_URL (the control)"

# ---------------------------------------------------------------------
check "7. a schema with tables and no history: apply refuses, says baseline"
newdb baseline
for m in 20240108093000_init 20240112141500_add_projects; do
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$ex/$m/migration.sql" \
		>/dev/null || fail "psql could not run $m"
done
run apply --migrations "$ex" --database-url "$db"
expect_rc 1 "apply on an unmanaged schema"
expect_one_error apply 'baseline' "refusal"
has_rel "$db" _prisma_migrations && fail "refused apply created _prisma_migrations"
has_rel "$db" '"Task"' && fail "refused apply ran migrations"

check "7. baseline --up-to records without running; apply runs the rest"
run baseline --up-to 20240112141500_add_projects --migrations "$ex" \
	--database-url "$db"
expect_rc 0 "baseline --up-to"
got=$(qdb "$db" "SELECT string_agg(migration_name, ',' ORDER BY migration_name)
	FROM _prisma_migrations WHERE finished_at IS NOT NULL
	  AND rolled_back_at IS NULL")
expect_eq "$got" 20240108093000_init,20240112141500_add_projects \
	"baselined rows"
n=$(qdb "$db" "SELECT count(*) FROM _prisma_migrations
	WHERE id ~ '$uuid_re' AND applied_steps_count = 0 AND logs = ''
	  AND checksum = CASE migration_name
	    WHEN '20240108093000_init' THEN '$(sha "$ex/20240108093000_init/migration.sql")'
	    ELSE '$(sha "$ex/20240112141500_add_projects/migration.sql")' END")
expect_eq "$n" 2 "baselined rows as Prisma's resolve --applied writes them"
has_rel "$db" '"Task"' && fail "baseline ran a later migration (table Task exists)"
run status --migrations "$ex" --database-url "$db"
expect_rc 1 "status after baseline (9 pending)"
run apply --migrations "$ex" --database-url "$db"
expect_rc 0 "apply after baseline"
expect_grep "$OUT" '9 migrations applied' "apply ran the 9 others"
has_rel "$db" '"Task"' || fail "table Task missing after apply"
expect_eq "$(nrows "$db")" 11 "rows after baseline + apply"

check "7. baseline of a name not in the folder is bad input"
run baseline --up-to 20991231000000_nope --migrations "$ex" --database-url "$db"
expect_rc 2 "baseline --up-to unknown"
expect_one_error baseline '20991231000000_nope' "baseline --up-to unknown"

# ---------------------------------------------------------------------
check "9. apply --json and status --json"
newdb json
run apply --json --dry-run --migrations "$ex" --database-url "$db"
expect_rc 0 "apply --json --dry-run"
expect_json "$OUT" 'j["dry_run"] is True and j["applied"] == 0 and
	len(j["events"]) == 11 and
	all(e["outcome"] == "would apply" for e in j["events"]) and
	[e["mode"] for e in j["events"]].count("per-statement") == 1 and
	[e["mode"] for e in j["events"]].count("transaction") == 10' \
	"apply --json --dry-run document"
run apply --json --migrations "$ex" --database-url "$db"
expect_rc 0 "apply --json"
expect_json "$OUT" 'j["dry_run"] is False and j["applied"] == 11 and
	j["schema"] == "public" and isinstance(j["ms"], (int, float)) and
	j["migrations_dir"].endswith("examples") and "error" not in j and
	[e["name"] for e in j["events"]] == sorted(e["name"] for e in j["events"]) and
	all(e["outcome"] == "applied" and isinstance(e["statements"], int) and
	    e["statements"] >= 1 and e["retries"] == 0 for e in j["events"]) and
	{e["name"]: e["mode"] for e in j["events"]}["20240301120000_index_task_project_status"] == "per-statement"' \
	"apply --json document"
run status --json --migrations "$ex" --database-url "$db"
expect_rc 0 "status --json"
expect_json "$OUT" 'j["up_to_date"] is True and j["history_table"] is True and
	j["counts"] == {"applied": 11, "pending": 0, "failed": 0, "modified": 0, "missing": 0} and
	all(m["state"] == "applied" and m["checksum"] == m["db_checksum"] and
	    len(m["checksum"]) == 64 and m["finished_at"] for m in j["migrations"])' \
	"status --json document"
# The JSON checksums are the files'.
for d in "$ex"/*/; do
	name=$(basename "$d")
	expect_json "$OUT" "[m['checksum'] for m in j['migrations'] if m['name'] == '$name'] == ['$(sha "$d/migration.sql")']" \
		"status --json checksum of $name"
done
# A failure in JSON: the error and the failed event.
mkmig "$ex" 20240402000000_broken <<'EOF'
SELECT * FROM no_such_relation;
EOF
run apply --json --migrations "$ex" --database-url "$db"
expect_rc 1 "apply --json with a failing migration"
expect_json "$OUT" 'j["applied"] == 0 and "20240402000000_broken" in j["error"] and
	j["events"][-1]["name"] == "20240402000000_broken" and
	j["events"][-1]["outcome"] == "failed" and "42P01" in j["events"][-1]["error"]' \
	"apply --json failure document"
run status --json --migrations "$ex" --database-url "$db"
expect_rc 1 "status --json with a failed migration"
expect_json "$OUT" 'j["up_to_date"] is False and j["counts"]["failed"] == 1 and
	[m for m in j["migrations"] if m["name"] == "20240402000000_broken"][0]["state"] == "failed" and
	"42P01" in [m for m in j["migrations"] if m["name"] == "20240402000000_broken"][0]["logs"]' \
	"status --json failed document"
# status on a database without a history table: valid JSON, nothing created.
newdb json
run status --json --migrations "$ex" --database-url "$db"
expect_rc 1 "status --json on an empty database"
expect_json "$OUT" 'j["history_table"] is False and j["counts"]["pending"] == 12' \
	"status --json without a history table"
has_rel "$db" _prisma_migrations && fail "status created _prisma_migrations"

it_done
