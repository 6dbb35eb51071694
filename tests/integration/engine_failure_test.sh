#!/bin/bash
# Failed migrations: a transactional one leaves nothing but its failed row
# (logs with SQLSTATE, statement and line) and blocks later ones until
# resolved; resolve --rolled-back / --applied and Prisma's resolve errors
# (P3008, P3011, P3012, P3017); a statement-by-statement one leaves exactly
# the statements before the failure, resumes from the failed statement,
# or runs again whole after resolve --rolled-back.
. "$(dirname "$0")/lib.sh"
it_init "${1:-}"

# Prints name|finished?|rolled back?|applied_steps_count of each row of
# migration $2 in database $1, oldest first, one per line.
rows_of() {
	qdb "$1" "SELECT finished_at IS NOT NULL, rolled_back_at IS NOT NULL,
		applied_steps_count FROM _prisma_migrations
		WHERE migration_name = '$2' ORDER BY started_at"
}

# ---------------------------------------------------------------------
# a: fine; b: three statements, the second fails; c: fine.
tx=$IT_TMP/tx
mkmig "$tx" 20250101000000_a <<'EOF'
CREATE TABLE a (id int PRIMARY KEY);
EOF
mkmig "$tx" 20250102000000_b <<'EOF'
-- b: the second statement fails
CREATE TABLE b1 (id int);

INSERT INTO b1 SELECT id FROM   no_such_table;
CREATE TABLE b3 (id int);
EOF
mkmig "$tx" 20250103000000_c <<'EOF'
CREATE TABLE c (id int);
EOF
b=20250102000000_b
col=$(awk 'NR == 4 { print index($0, "no_such_table") }' "$tx/$b/migration.sql")

check "2. a failing transactional migration leaves only its failed row"
newdb tx
run apply --migrations "$tx" --database-url "$db"
expect_rc 1 "apply with a failing migration"
has_rel "$db" a || fail "migration a (before the failure) not applied"
has_rel "$db" b1 && fail "table b1 of the failed migration remains"
has_rel "$db" b3 && fail "table b3 of the failed migration exists"
has_rel "$db" c && fail "migration c after the failure was applied"
expect_eq "$(rows_of "$db" 20250103000000_c)" "" "no row for c"
expect_eq "$(rows_of "$db" "$b")" "f|f|0" "row of b: failed, not rolled back"
logs=$(qdb "$db" "SELECT logs FROM _prisma_migrations WHERE migration_name = '$b'")
for want in 42P01 'statement 2' 'line 4' no_such_table; do
	case "$logs" in
	*"$want"*) ;;
	*) fail "logs of b lack '$want': $logs" ;;
	esac
done
n=$(qdb "$db" "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '$b'
	AND checksum = '$(sha "$tx/$b/migration.sql")' AND finished_at IS NULL
	AND started_at IS NOT NULL")
expect_eq "$n" 1 "failed row carries the file's checksum"
expect_one_error apply "'$b'.*statement 2 of 3.*line 4, column $col.*42P01" \
	"error of the failed migration"
expect_eq "$col" 33 "column of no_such_table (test data)"

check "2. the next apply refuses, naming the failed migration"
run apply --migrations "$tx" --database-url "$db"
expect_rc 1 "apply with a failed migration in the history"
expect_one_error apply "$b" "refusal"
has_rel "$db" c && fail "refused apply ran c"
expect_eq "$(nrows "$db")" 2 "rows after the refusal"
run status --json --migrations "$tx" --database-url "$db"
expect_rc 1 "status with a failed migration"
expect_json "$OUT" "[m['state'] for m in j['migrations']] == ['applied', 'failed', 'pending']" \
	"status --json states"

check "2. --resume does not apply to a transactional failure"
run apply --resume "$b" --migrations "$tx" --database-url "$db"
expect_rc 2 "apply --resume of a transactional failure"
expect_one_error apply "resolve --rolled-back" "resume refusal"

check "2. resolve --rolled-back, fix the file, apply continues"
run resolve --rolled-back "$b" --migrations "$tx" --database-url "$db"
expect_rc 0 "resolve --rolled-back"
expect_eq "$(rows_of "$db" "$b")" "f|t|0" "row of b rolled back"
sed -i 's/no_such_table/b1/' "$tx/$b/migration.sql"
run apply --migrations "$tx" --database-url "$db"
expect_rc 0 "apply after resolve and fix"
for t in b1 b3 c; do has_rel "$db" "$t" || fail "table $t missing"; done
expect_eq "$(rows_of "$db" "$b" | tr '\n' ' ')" "f|t|0 t|f|1 " \
	"rows of b: the rolled-back attempt kept, a new finished one"
n=$(qdb "$db" "SELECT checksum FROM _prisma_migrations
	WHERE migration_name = '$b' AND finished_at IS NOT NULL")
expect_eq "$n" "$(sha "$tx/$b/migration.sql")" "new row has the fixed file's checksum"
run status --migrations "$tx" --database-url "$db"
expect_rc 0 "status after recovery"

check "2. resolve --applied records a failed migration done without running it"
tx2=$IT_TMP/tx2
mkmig "$tx2" 20250101000000_a <<'EOF'
CREATE TABLE a (id int PRIMARY KEY);
EOF
mkmig "$tx2" 20250102000000_fix_by_hand <<'EOF'
CREATE TABLE marker (id int);
ALTER TABLE a ADD COLUMN note text NOT NULL DEFAULT no_such_function();
EOF
mkmig "$tx2" 20250103000000_after <<'EOF'
CREATE TABLE after_it (id int);
EOF
h=20250102000000_fix_by_hand
newdb txa
run apply --migrations "$tx2" --database-url "$db"
expect_rc 1 "apply with a failing migration"
has_rel "$db" marker && fail "marker of the failed migration remains"
# Done by hand, then recorded.
qdb "$db" "ALTER TABLE a ADD COLUMN note text NOT NULL DEFAULT ''" >/dev/null
run resolve --applied "$h" --migrations "$tx2" --database-url "$db"
expect_rc 0 "resolve --applied"
expect_eq "$(rows_of "$db" "$h" | tr '\n' ' ')" "f|t|0 t|f|0 " \
	"rows: the failed one rolled back, a finished one with 0 steps"
n=$(qdb "$db" "SELECT count(*) FROM _prisma_migrations
	WHERE migration_name = '$h' AND finished_at IS NOT NULL
	  AND started_at = finished_at AND logs = ''
	  AND checksum = '$(sha "$tx2/$h/migration.sql")'")
expect_eq "$n" 1 "resolved row as Prisma writes it"
has_rel "$db" marker && fail "resolve --applied ran the migration's SQL"
has_rel "$db" after_it && fail "resolve --applied ran the next migration"
run apply --migrations "$tx2" --database-url "$db"
expect_rc 0 "apply after resolve --applied"
has_rel "$db" after_it || fail "next migration not applied"
has_rel "$db" marker && fail "apply re-ran the resolved migration"

check "2. Prisma's resolve errors"
before=$(nrows "$db")
run resolve --rolled-back 20251231000000_unknown --migrations "$tx2" --database-url "$db"
expect_rc 1 "resolve --rolled-back of a name never applied (P3011)"
expect_one_error resolve 20251231000000_unknown "P3011"
run resolve --rolled-back 20250101000000_a --migrations "$tx2" --database-url "$db"
expect_rc 1 "resolve --rolled-back of an applied migration (P3012)"
expect_one_error resolve 20250101000000_a "P3012"
run resolve --applied 20250101000000_a --migrations "$tx2" --database-url "$db"
expect_rc 1 "resolve --applied of an applied migration (P3008)"
expect_one_error resolve 20250101000000_a "P3008"
run resolve --applied 20251231000000_unknown --migrations "$tx2" --database-url "$db"
expect_rc 2 "resolve --applied of a name not in the folder (P3017)"
expect_one_error resolve 20251231000000_unknown "P3017"
expect_eq "$(nrows "$db")" "$before" "refused resolves changed no row"
n=$(qdb "$db" "SELECT count(*) FROM _prisma_migrations WHERE rolled_back_at IS NOT NULL")
expect_eq "$n" 1 "refused resolves rolled nothing back"

# ---------------------------------------------------------------------
# Statement by statement: four statements, the third fails because of
# something missing in the database (not in the file).
ps=$IT_TMP/ps
mkmig "$ps" 20250101000000_steps <<'EOF'
-- ferry:no-transaction
CREATE TABLE s1 (id int);
CREATE TABLE s2 (id int);
INSERT INTO s_cause VALUES (3);
CREATE TABLE s4 (id int);
EOF
mkmig "$ps" 20250102000000_next <<'EOF'
CREATE TABLE next_one (id int);
EOF
s=20250101000000_steps
sum=$(sha "$ps/$s/migration.sql")

check "3. a failing per-statement migration leaves exactly statements 1-2"
newdb ps
run apply --migrations "$ps" --database-url "$db"
expect_rc 1 "apply with a failing per-statement migration"
has_rel "$db" s1 || fail "statement 1 (s1) did not take effect"
has_rel "$db" s2 || fail "statement 2 (s2) did not take effect"
has_rel "$db" s4 && fail "statement 4 (s4) ran after the failure"
has_rel "$db" next_one && fail "the next migration ran after the failure"
expect_eq "$(rows_of "$db" "$s")" "f|f|2" "row: failed with applied_steps_count 2"
p=$(qdb "$db" "SELECT p.state, p.step, p.nsteps, p.checksum = '$sum',
	p.migration_name FROM ferry.statement_progress p
	JOIN _prisma_migrations m ON m.id = p.migration_id")
expect_eq "$p" "failed|2|4|t|$s" "progress row: failed at step 2 (0-based) of 4"
logs=$(qdb "$db" "SELECT logs FROM _prisma_migrations WHERE migration_name = '$s'")
case "$logs" in
*"statement 3 of 4"*"line 4"*42P01*) ;;
*) fail "logs do not name statement 3, line 4, 42P01: $logs" ;;
esac
expect_one_error apply "'$s'.*statement 3 of 4.*line 4, column 13.*42P01" \
	"error of the per-statement failure"
run status --json --migrations "$ps" --database-url "$db"
expect_rc 1 "status after the per-statement failure"
expect_json "$OUT" "j['migrations'][0]['state'] == 'failed' and j['migrations'][0]['applied_steps'] == 2" \
	"status --json of the per-statement failure"

check "3. apply --resume continues from statement 3 once the cause is fixed"
run apply --resume 20250102000000_next --migrations "$ps" --database-url "$db"
expect_rc 2 "apply --resume of a migration that did not fail"
qdb "$db" "CREATE TABLE s_cause (id int)" >/dev/null
run apply --resume "$s" --migrations "$ps" --database-url "$db"
expect_rc 0 "apply --resume"
has_rel "$db" s4 || fail "statement 4 did not run on resume"
has_rel "$db" next_one || fail "the next migration was not applied after resume"
expect_eq "$(qdb "$db" "SELECT string_agg(id::text, ',') FROM s_cause")" 3 \
	"statement 3 ran exactly once"
expect_eq "$(rows_of "$db" "$s")" "t|f|4" "the same row, finished, 4 steps"
p=$(qdb "$db" "SELECT p.state, p.step FROM ferry.statement_progress p
	JOIN _prisma_migrations m ON m.id = p.migration_id
	WHERE m.migration_name = '$s'")
expect_eq "$p" "done|3" "progress row after resume"
n=$(qdb "$db" "SELECT count(*) FROM _prisma_migrations
	WHERE migration_name = '$s' AND logs IS NULL")
expect_eq "$n" 1 "logs cleared once finished"
run status --migrations "$ps" --database-url "$db"
expect_rc 0 "status after resume"

check "3. resolve --rolled-back then apply runs the whole file again"
newdb psr
run apply --migrations "$ps" --database-url "$db"
expect_rc 1 "apply with a failing per-statement migration"
first_id=$(qdb "$db" "SELECT id FROM _prisma_migrations WHERE migration_name = '$s'")
# Undo statements 1-2 by hand and fix the cause, then roll back.
qdb "$db" "DROP TABLE s1, s2; CREATE TABLE s_cause (id int)" >/dev/null
run resolve --rolled-back "$s" --migrations "$ps" --database-url "$db"
expect_rc 0 "resolve --rolled-back of the per-statement migration"
run apply --migrations "$ps" --database-url "$db"
expect_rc 0 "apply after resolve --rolled-back"
for t in s1 s2 s4 next_one; do has_rel "$db" "$t" || fail "table $t missing"; done
expect_eq "$(rows_of "$db" "$s" | tr '\n' ' ')" "f|t|2 t|f|4 " \
	"rows: the old attempt rolled back (2 steps), a new finished one"
n=$(qdb "$db" "SELECT count(*) FROM _prisma_migrations
	WHERE id = '$first_id' AND rolled_back_at IS NOT NULL AND finished_at IS NULL")
expect_eq "$n" 1 "the old row keeps rolled_back_at"
n=$(qdb "$db" "SELECT count(*) FROM ferry.statement_progress p
	JOIN _prisma_migrations m ON m.id = p.migration_id
	WHERE m.migration_name = '$s' AND m.finished_at IS NOT NULL
	  AND p.state = 'done' AND p.step = 3")
expect_eq "$n" 1 "progress of the new attempt"
run status --migrations "$ps" --database-url "$db"
expect_rc 0 "status after re-running"

it_done
