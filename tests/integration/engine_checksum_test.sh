#!/bin/bash
# Checksums after apply: a migration.sql edited after it was applied is
# "modified" (status exit 1, apply refuses unless --allow-modified); a CRLF
# checkout of applied LF files, and a Latin-1 file whose row holds the
# checksum Prisma 6.6+ records (U+FFFD for each invalid sequence), are not;
# rows with no local folder are "missing".
. "$(dirname "$0")/lib.sh"
it_init "${1:-}"

# Prints the state of migration $1 in the status --json document in $OUT.
state_of() {
	json_eval "$OUT" "[m['state'] for m in j['migrations'] if m['name'] == '$1']"
}

# ---------------------------------------------------------------------
check "4. a file edited after apply is modified; apply refuses it"
mm=$IT_TMP/mod
mkmig "$mm" 20250101000000_one <<'EOF'
CREATE TABLE one (id int);
EOF
mkmig "$mm" 20250102000000_two <<'EOF'
CREATE TABLE two (id int);
EOF
newdb mod
run apply --migrations "$mm" --database-url "$db"
expect_rc 0 "apply"
old=$(sha "$mm/20250101000000_one/migration.sql")
printf -- '-- edited later\n' >>"$mm/20250101000000_one/migration.sql"
new=$(sha "$mm/20250101000000_one/migration.sql")
mkmig "$mm" 20250103000000_three <<'EOF'
CREATE TABLE three (id int);
EOF
run status --migrations "$mm" --database-url "$db"
expect_rc 1 "status with a modified migration"
expect_grep "$OUT" '^modified +20250101000000_one' "status lists it modified"
expect_grep "$OUT" '^applied +20250102000000_two' "status lists the other applied"
run status --json --migrations "$mm" --database-url "$db"
expect_rc 1 "status --json with a modified migration"
expect_json "$OUT" "j['counts']['modified'] == 1 and j['up_to_date'] is False and
	[(m['state'], m['checksum'], m['db_checksum']) for m in j['migrations']
	 if m['name'] == '20250101000000_one'] == [('modified', '$new', '$old')]" \
	"status --json modified entry"
run apply --migrations "$mm" --database-url "$db"
expect_rc 1 "apply with a modified migration"
expect_one_error apply "20250101000000_one.*modified|modified.*20250101000000_one" \
	"refusal names the modified migration"
has_rel "$db" three && fail "refused apply ran the pending migration"
run apply --allow-modified --migrations "$mm" --database-url "$db"
expect_rc 0 "apply --allow-modified"
has_rel "$db" three || fail "apply --allow-modified did not run the pending migration"
n=$(qdb "$db" "SELECT checksum FROM _prisma_migrations WHERE migration_name = '20250101000000_one'")
expect_eq "$n" "$old" "the modified migration's row keeps its checksum"
expect_eq "$(nrows "$db")" 3 "rows after --allow-modified"
run status --migrations "$mm" --database-url "$db"
expect_rc 1 "status still reports the modified migration"

# ---------------------------------------------------------------------
check "4. a CRLF checkout of applied LF files is not modified"
crlf=$IT_TMP/crlf
cp -r "$IT_EXAMPLES" "$crlf"
newdb crlf
run apply --migrations "$crlf" --database-url "$db"
expect_rc 0 "apply the examples"
before=$(cat "$crlf"/*/migration.sql | sha256sum)
for f in "$crlf"/*/migration.sql; do
	python3 -c 'import sys
p = sys.argv[1]
d = open(p, "rb").read()
assert b"\r" not in d
open(p, "wb").write(d.replace(b"\n", b"\r\n"))' "$f" || fail "cannot convert $f"
done
[ "$(cat "$crlf"/*/migration.sql | sha256sum)" = "$before" ] &&
	fail "the CRLF conversion changed nothing"
run status --migrations "$crlf" --database-url "$db"
expect_rc 0 "status of a CRLF checkout"
expect_no_grep "$OUT" '^modified' "nothing reported modified"
run apply --migrations "$crlf" --database-url "$db"
expect_rc 0 "apply on a CRLF checkout"
expect_grep "$OUT" 'nothing to apply' "apply on a CRLF checkout is a no-op"
expect_eq "$(nrows "$db")" 10 "rows after apply on a CRLF checkout"

check "4. and the other way: applied CRLF files, LF checkout"
newdb crlf
run apply --migrations "$crlf" --database-url "$db"
expect_rc 0 "apply CRLF files"
n=$(qdb "$db" "SELECT checksum FROM _prisma_migrations WHERE migration_name = '20240108093000_init'")
expect_eq "$n" "$(sha "$crlf/20240108093000_init/migration.sql")" "checksum of the CRLF file as is"
for f in "$crlf"/*/migration.sql; do
	python3 -c 'import sys
p = sys.argv[1]
d = open(p, "rb").read()
open(p, "wb").write(d.replace(b"\r\n", b"\n"))' "$f"
done
run status --migrations "$crlf" --database-url "$db"
expect_rc 0 "status of an LF checkout of CRLF-applied files"
# A real change is still seen through the line-ending tolerance.
printf 'SELECT 1;\n' >>"$crlf/20240108093000_init/migration.sql"
run status --migrations "$crlf" --database-url "$db"
expect_rc 1 "status after a real edit of an LF checkout"
expect_grep "$OUT" '^modified +20240108093000_init' "real edit reported"

# ---------------------------------------------------------------------
check "4. a Latin-1 file with Prisma 6.6+'s U+FFFD checksum is not modified"
lat=$IT_TMP/latin1
mkdir -p "$lat/20250101000000_cafe"
printf -- '-- caf\xe9 au lait\nCREATE TABLE cafe (id int);\n' \
	>"$lat/20250101000000_cafe/migration.sql"
f=$lat/20250101000000_cafe/migration.sql
raw=$(sha "$f")
# What Prisma records: the file decoded as UTF-8 (invalid bytes become
# U+FFFD, as Node's decoder does), hashed as UTF-8.
if command -v node >/dev/null 2>&1; then
	prisma=$(node -e 'const c = require("crypto"), fs = require("fs");
process.stdout.write(c.createHash("sha256")
  .update(fs.readFileSync(process.argv[1], "utf8"), "utf8").digest("hex"))' "$f")
else
	prisma=$(python3 -c 'import hashlib, sys
t = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
print(hashlib.sha256(t.encode("utf-8")).hexdigest())' "$f")
fi
py=$(python3 -c 'import hashlib, sys
t = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
print(hashlib.sha256(t.encode("utf-8")).hexdigest())' "$f")
expect_eq "$prisma" "$py" "Node and Python agree on the U+FFFD checksum"
[ "$prisma" != "$raw" ] || fail "the U+FFFD checksum equals the raw one (test data)"
[[ $prisma =~ ^[0-9a-f]{64}$ ]] || fail "bad U+FFFD checksum '$prisma'"
# As Prisma 6.6+ leaves it: the table, and a row with Prisma's checksum.
newdb latin
qdb "$db" "CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0);
  CREATE TABLE cafe (id int);
  INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name,
    started_at, applied_steps_count)
  VALUES (gen_random_uuid(), '$prisma', now(), '20250101000000_cafe', now(), 1)" \
	>/dev/null || fail "cannot set up the Prisma-applied database"
run status --migrations "$lat" --database-url "$db"
expect_rc 0 "status with Prisma's U+FFFD checksum"
expect_grep "$OUT" '^applied +20250101000000_cafe' "listed applied"
run apply --migrations "$lat" --database-url "$db"
expect_rc 0 "apply with Prisma's U+FFFD checksum"
expect_grep "$OUT" 'nothing to apply' "apply with Prisma's checksum is a no-op"
# Ferry's own checksum of the file (the raw bytes) matches too.
qdb "$db" "UPDATE _prisma_migrations SET checksum = '$raw'" >/dev/null
run status --migrations "$lat" --database-url "$db"
expect_rc 0 "status with the raw bytes' checksum"
# The control: any other checksum is modified.
qdb "$db" "UPDATE _prisma_migrations SET checksum = '$(printf x | sha256sum | cut -d' ' -f1)'" >/dev/null
run status --migrations "$lat" --database-url "$db"
expect_rc 1 "status with a foreign checksum"
expect_grep "$OUT" '^modified +20250101000000_cafe' "foreign checksum reported modified"

check "4. Ferry applies a Latin-1 file and records its raw checksum"
# As Prisma 6.6+ does (docs/applying-migrations.md: "Ferry records the
# checksum of the raw bytes").
newdb latin
run apply --migrations "$lat" --database-url "$db"
if expect_rc 0 "apply a file with a Latin-1 byte in a comment"; then
	has_rel "$db" cafe || fail "table cafe missing"
	n=$(qdb "$db" "SELECT checksum FROM _prisma_migrations WHERE finished_at IS NOT NULL")
	expect_eq "$n" "$raw" "Ferry records the raw bytes' checksum"
fi

# ---------------------------------------------------------------------
check "4. rows with no local folder are missing"
mi=$IT_TMP/missing
mkmig "$mi" 20250101000000_one <<'EOF'
CREATE TABLE one (id int);
EOF
mkmig "$mi" 20250102000000_two <<'EOF'
CREATE TABLE two (id int);
EOF
newdb missing
run apply --migrations "$mi" --database-url "$db"
expect_rc 0 "apply"
run status --migrations "$mi" --database-url "$db"
expect_rc 0 "status before removing a folder"
rm -r "$mi/20250102000000_two"
run status --migrations "$mi" --database-url "$db"
expect_rc 1 "status with a row but no folder"
expect_grep "$OUT" '^missing +20250102000000_two' "status lists it missing"
run status --json --migrations "$mi" --database-url "$db"
expect_rc 1 "status --json with a missing migration"
expect_json "$OUT" "j['counts']['missing'] == 1 and j['counts']['applied'] == 1" \
	"status --json counts"
expect_eq "$(state_of 20250102000000_two)" "['missing']" "status --json state"
# Rolled-back rows without a folder are history, not missing.
qdb "$db" "UPDATE _prisma_migrations SET rolled_back_at = now(), finished_at = NULL
	WHERE migration_name = '20250102000000_two'" >/dev/null
run status --migrations "$mi" --database-url "$db"
expect_rc 0 "status with only a rolled-back row for the removed folder"

it_done
