#!/bin/bash
# ferry lint --shadow-url against a real server: each shadow rule
# (FERRY-L101 and up) fires on a positive example, placed at its statement
# or without a position when a DO block did the work, and stays quiet on
# the safe pattern; where a parse-tree rule already said it of the same
# statement, once only; exit statuses and --json fields; lint-ignore
# silences a shadow rule; a database not marked as a shadow is refused
# (and left alone) without --init-shadow, and so is the target; a
# migration that fails in the shadow is reported with its SQLSTATE.
#
#   lint_shadow_test.sh path/to/ferry
. "$(dirname "$0")/lib.sh"
it_init "${1:-}"

newdb shadow
shadow=$db

# The same first migration in every folder.
init() {
	mkmig "$1" 20240101000000_init <<'EOF'
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN', 'GUEST');
CREATE DOMAIN "Tag" AS text;
CREATE TABLE "Org" (id serial PRIMARY KEY, name text);
CREATE TABLE "User" (
    id serial PRIMARY KEY,
    "orgId" integer,
    email varchar(100),
    nick varchar(100),
    bio varchar(100),
    score integer,
    age integer,
    note text,
    role "Role" NOT NULL DEFAULT 'USER',
    legacy text
);
CREATE TABLE "Old" (id integer);
CREATE TABLE "Keep" (id integer, tag "Tag");
CREATE FUNCTION user_email(uid integer) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN (SELECT email FROM "User" WHERE id = uid);
END $$;
CREATE FUNCTION org_name(oid_ integer) RETURNS text LANGUAGE sql AS $$
	SELECT name FROM "Org" WHERE id = oid_
$$;
EOF
}

# Fails unless the last --json output has a finding of rule $1 in the
# migration ending in $2 at line $3 ("None": no position).
expect_finding() {
	expect_json "$OUT" "any(f['rule'] == '$1' and f['migration'].endswith('$2') and f['line'] == $3 for f in j['findings'])" \
		"$1 in $2 at line $3"
}

# Fails if the last --json output has a finding of rule $1 in migration $2.
expect_no_finding() {
	expect_json "$OUT" "not any(f['rule'] == '$1' and f['migration'].endswith('$2') for f in j['findings'])" \
		"no $1 in $2"
}

# ---------------------------------------------------------------------
check "1. each shadow rule on a positive example"
pos=$IT_TMP/pos
init "$pos"
mkmig "$pos" 20240102000000_drop_table_do <<'EOF'
DO $$ BEGIN DROP TABLE "Old"; END $$;
EOF
mkmig "$pos" 20240103000000_drop_columns <<'EOF'
DROP DOMAIN "Tag" CASCADE;
DO $$ BEGIN ALTER TABLE "User" DROP COLUMN legacy; END $$;
EOF
mkmig "$pos" 20240104000000_types <<'EOF'
DO $$ BEGIN
	ALTER TABLE "User" ALTER COLUMN score TYPE bigint;
	ALTER TABLE "User" ALTER COLUMN nick TYPE varchar(50);
END $$;
ALTER TABLE "User" ALTER COLUMN age TYPE bigint;
EOF
mkmig "$pos" 20240105000000_not_null <<'EOF'
DO $$ BEGIN ALTER TABLE "User" ALTER COLUMN email SET NOT NULL; END $$;
EOF
mkmig "$pos" 20240106000000_constraints <<'EOF'
DO $$ BEGIN
	ALTER TABLE "User" ADD CONSTRAINT "User_orgId_fkey"
		FOREIGN KEY ("orgId") REFERENCES "Org"(id);
	ALTER TABLE "User" ADD CONSTRAINT "User_age_check" CHECK (age >= 0);
END $$;
ALTER TABLE "User" ADD COLUMN "managerId" integer REFERENCES "User"(id);
EOF
mkmig "$pos" 20240107000000_indexes <<'EOF'
ALTER TABLE "User" ADD COLUMN code text UNIQUE;
DO $$ BEGIN CREATE INDEX "User_bio_idx" ON "User"(bio); END $$;
EOF
mkmig "$pos" 20240108000000_rename_column <<'EOF'
ALTER TABLE "User" RENAME COLUMN email TO "emailAddress";
EOF
mkmig "$pos" 20240109000000_rename_table <<'EOF'
ALTER TABLE "Org" RENAME TO "Organization";
EOF
# Prisma's way of removing an enum value.
mkmig "$pos" 20240110000000_enum_remove <<'EOF'
BEGIN;
CREATE TYPE "Role_new" AS ENUM ('USER', 'ADMIN');
ALTER TABLE "User" ALTER COLUMN "role" DROP DEFAULT;
ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new");
ALTER TYPE "Role" RENAME TO "Role_old";
ALTER TYPE "Role_new" RENAME TO "Role";
DROP TYPE "Role_old";
ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT 'USER';
COMMIT;
EOF
mkmig "$pos" 20240111000000_enum_reorder <<'EOF'
CREATE TYPE "Role_new" AS ENUM ('ADMIN', 'USER');
ALTER TABLE "User" ALTER COLUMN "role" DROP DEFAULT;
ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new");
DROP TYPE "Role";
ALTER TYPE "Role_new" RENAME TO "Role";
ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT 'USER';
EOF

run lint --json --shadow-url "$shadow" --init-shadow "$pos"
expect_rc 1 "positive examples: errors exit 1"
expect_json "$OUT" "j['shadow'] is True and j['migrations'] == 11" "JSON header"
expect_finding FERRY-L101 _drop_table_do None
expect_finding FERRY-L102 _drop_columns 1
expect_json "$OUT" "any(f['rule'] == 'FERRY-L102' and f['line'] is None and 'legacy' in f['message'] for f in j['findings'])" \
	"column dropped in a DO block"
expect_finding FERRY-L103 _types None
expect_finding FERRY-L104 _types None
expect_json "$OUT" "any(f['rule'] == 'FERRY-L104' and 'character varying(100) to character varying(50)' in f['message'] for f in j['findings'])" \
	"the real old type in the message"
expect_finding FERRY-L003 _types 5
expect_json "$OUT" "not any(f['rule'] == 'FERRY-L103' and f['line'] == 5 for f in j['findings'])" \
	"said once: the parse-tree rule has the direct ALTER TYPE"
expect_finding FERRY-L105 _not_null None
expect_finding FERRY-L106 _constraints None
expect_finding FERRY-L107 _constraints None
expect_finding FERRY-L106 _constraints 6
expect_finding FERRY-L108 _indexes 1
expect_finding FERRY-L108 _indexes None
expect_finding FERRY-L010 _rename_column 1
expect_finding FERRY-L109 _rename_column 1
expect_json "$OUT" "any(f['rule'] == 'FERRY-L109' and 'user_email' in f['message'] for f in j['findings'])" \
	"the function still using the column is named"
expect_finding FERRY-L109 _rename_table 1
expect_json "$OUT" "any(f['rule'] == 'FERRY-L109' and 'org_name' in f['message'] for f in j['findings'])" \
	"the function still using the table is named"
expect_no_finding FERRY-L106 _rename_table
expect_finding FERRY-L110 _enum_remove 6
expect_json "$OUT" "any(f['rule'] == 'FERRY-L110' and \"'GUEST'\" in f['message'] for f in j['findings'])" \
	"the value is named"
expect_finding FERRY-L111 _enum_reorder 5
expect_no_finding FERRY-L1 _init
expect_json "$OUT" "all(set(f) == {'migration', 'file', 'line', 'column', 'rule', 'name', 'severity', 'message', 'why', 'fix'} for f in j['findings'])" \
	"shadow findings have the fields of the others"
expect_json "$OUT" "all(f['column'] is None and f['file'] == f['migration'] + '/migration.sql' for f in j['findings'] if f['line'] is None)" \
	"no position: line and column null"
expect_json "$OUT" "{f['rule']: (f['name'], f['severity']) for f in j['findings'] if f['rule'] >= 'FERRY-L1'} == {
	'FERRY-L101': ('table-dropped', 'error'),
	'FERRY-L102': ('column-dropped', 'error'),
	'FERRY-L103': ('column-rewritten', 'warning'),
	'FERRY-L104': ('column-narrowed', 'error'),
	'FERRY-L105': ('not-null-without-default', 'warning'),
	'FERRY-L106': ('foreign-key-validated', 'warning'),
	'FERRY-L107': ('check-validated', 'warning'),
	'FERRY-L108': ('index-blocks-writes', 'warning'),
	'FERRY-L109': ('renamed-still-referenced', 'error'),
	'FERRY-L110': ('enum-value-removed', 'error'),
	'FERRY-L111': ('enum-values-reordered', 'warning')}" \
	"every shadow rule fired, with its name and severity"
expect_json "$OUT" "j['errors'] == sum(f['severity'] == 'error' for f in j['findings']) and j['warnings'] == sum(f['severity'] == 'warning' for f in j['findings'])" \
	"counts"

run lint --shadow-url "$shadow" "$pos"
expect_rc 1 "text output, the shadow now marked"
expect_grep "$OUT" '^20240102000000_drop_table_do/migration.sql$' "migration heading"
expect_grep "$OUT" '^  -  +error +FERRY-L101 table-dropped$' "finding without a position"
expect_grep "$OUT" 'table "Old" is gone after this migration' "message"
expect_grep "$OUT" '^  1:1 +warning +FERRY-L108 index-blocks-writes$' "positioned finding"
expect_grep "$OUT" '^      safer: ' "safer pattern"

run lint --json "$pos"
expect_json "$OUT" "j['shadow'] is False and not any(f['rule'] >= 'FERRY-L1' for f in j['findings'])" \
	"without --shadow-url, no shadow rules"

# ---------------------------------------------------------------------
check "2. the safe patterns stay quiet"
safe=$IT_TMP/safe
init "$safe"
mkmig "$safe" 20240102000000_widen <<'EOF'
ALTER TABLE "User" ALTER COLUMN bio TYPE text;
ALTER TABLE "User" ALTER COLUMN nick TYPE varchar(200);
EOF
mkmig "$safe" 20240103000000_not_valid <<'EOF'
ALTER TABLE "User" ADD CONSTRAINT "User_note_nn" CHECK (note IS NOT NULL) NOT VALID;
ALTER TABLE "User" ADD CONSTRAINT "User_orgId_fkey"
    FOREIGN KEY ("orgId") REFERENCES "Org"(id) NOT VALID;
ALTER TABLE "User" ADD CONSTRAINT "User_age_check" CHECK (age >= 0) NOT VALID;
EOF
mkmig "$safe" 20240104000000_validate <<'EOF'
ALTER TABLE "User" VALIDATE CONSTRAINT "User_note_nn";
ALTER TABLE "User" VALIDATE CONSTRAINT "User_orgId_fkey";
ALTER TABLE "User" VALIDATE CONSTRAINT "User_age_check";
EOF
mkmig "$safe" 20240105000000_not_null <<'EOF'
ALTER TABLE "User" ALTER COLUMN note SET NOT NULL;
ALTER TABLE "User" ALTER COLUMN email SET DEFAULT '';
ALTER TABLE "User" ALTER COLUMN email SET NOT NULL;
EOF
mkmig "$safe" 20240106000000_index <<'EOF'
CREATE INDEX CONCURRENTLY "User_bio_idx" ON "User"(bio);
EOF
mkmig "$safe" 20240107000000_unique_index <<'EOF'
CREATE UNIQUE INDEX CONCURRENTLY "User_email_key" ON "User"(email);
EOF
mkmig "$safe" 20240108000000_using_index <<'EOF'
ALTER INDEX "User_bio_idx" RENAME TO "User_bio_text_idx";
ALTER TABLE "User" ADD CONSTRAINT "User_email_key" UNIQUE USING INDEX "User_email_key";
EOF
mkmig "$safe" 20240109000000_renames <<'EOF'
-- ferry:lint-ignore rename-column rename-table -- mapped in the application
ALTER TABLE "User" RENAME COLUMN email TO "emailAddress";
CREATE OR REPLACE FUNCTION user_email(uid integer) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	RETURN (SELECT "emailAddress" FROM "User" WHERE id = uid);
END $$;
ALTER TABLE "Org" RENAME TO "Organization";
CREATE VIEW "Org" AS SELECT * FROM "Organization";
EOF
mkmig "$safe" 20240110000000_enum_add <<'EOF'
ALTER TYPE "Role" ADD VALUE 'AUDITOR' BEFORE 'GUEST';
EOF
mkmig "$safe" 20240111000000_drops <<'EOF'
-- ferry:lint-ignore drop-table drop-column -- unused since 2.0
DROP TABLE "Old";
ALTER TABLE "User" DROP COLUMN legacy;
EOF
run lint --json --shadow-url "$shadow" "$safe"
expect_rc 0 "safe patterns: exit 0"
expect_json "$OUT" "j['shadow'] is True and j['errors'] == 0 and not any(f['rule'] >= 'FERRY-L1' for f in j['findings'])" \
	"no shadow finding on the safe patterns"
expect_json "$OUT" "j['suppressed'] == 4" \
	"silenced parse-tree findings keep the shadow rules quiet too (4 silenced)"

# ---------------------------------------------------------------------
check "3. lint-ignore silences a shadow rule"
ign=$IT_TMP/ign
init "$ign"
mkmig "$ign" 20240102000000_drop_table_do <<'EOF'
-- ferry:lint-ignore table-dropped -- archived elsewhere
DO $$ BEGIN DROP TABLE "Old"; END $$;
EOF
mkmig "$ign" 20240103000000_types <<'EOF'
-- ferry:lint-ignore FERRY-L104
DO $$ BEGIN ALTER TABLE "User" ALTER COLUMN nick TYPE varchar(50); END $$;
EOF
run lint --json --shadow-url "$shadow" "$ign"
expect_rc 0 "silenced: exit 0"
expect_json "$OUT" "j['findings'] == [] and j['suppressed'] == 2" "both silenced"
run lint --shadow-url "$shadow" "$ign"
expect_grep "$OUT" '^no findings in 3 migrations \(2 silenced by lint-ignore\)$' "text summary"

# ---------------------------------------------------------------------
check "4. a database not marked as a shadow, or the target, is refused"
newdb plain
plain=$db
qdb "$plain" 'CREATE TABLE precious (id int)' >/dev/null
run lint --shadow-url "$plain" "$safe"
expect_rc 3 "unmarked database"
expect_grep "$ERR" "^ferry lint: error: database \"${plain##*/}\" is not marked as a Ferry shadow database.*--init-shadow" \
	"refusal names the database and --init-shadow"
has_rel "$plain" precious || fail "the unmarked database was wiped"
[ -s "$OUT" ] && fail "findings printed after a refusal: $(cat "$OUT")"
DATABASE_URL=$shadow run lint --shadow-url "$shadow" "$safe"
expect_rc 3 "the target database"
expect_grep "$ERR" 'refusing to use the target database as the shadow database' \
	"the target is refused"

# ---------------------------------------------------------------------
check "5. a migration that fails in the shadow"
bad=$IT_TMP/bad
init "$bad"
mkmig "$bad" 20240110000000_broken <<'EOF'
CREATE TABLE "Ok" (id int);

ALTER TABLE "Nope" ADD COLUMN x int;
EOF
run lint --json --shadow-url "$shadow" "$bad"
expect_rc 3 "failing migration"
expect_grep "$ERR" "^ferry lint: error: migration '20240110000000_broken' failed to apply cleanly to the shadow database: statement 2 of 2 \(migration.sql line 3, column 1\): .*\"Nope\" does not exist.*\(SQLSTATE 42P01\)" \
	"migration, statement, message and SQLSTATE"
run lint --shadow-url "$shadow" --extensions nosuchext "$safe"
expect_rc 3 "missing extension"
expect_grep "$ERR" 'extension "nosuchext" is not available on the shadow server' \
	"missing extension named"

# ---------------------------------------------------------------------
check "6. usage and --rules"
run lint --init-shadow "$safe"
expect_rc 2 "--init-shadow without --shadow-url"
run lint --rules
expect_rc 0 "--rules"
for n in 101 102 103 104 105 106 107 108 109 110 111; do
	expect_grep "$OUT" "^FERRY-L$n " "--rules lists FERRY-L$n"
done
run lint --help
expect_grep "$OUT" '--shadow-url URL' "--help documents --shadow-url"

it_done
