#!/bin/bash
# Transaction modes against the server: a file wrapped in its own
# BEGIN/COMMIT runs atomically with its history row; ALTER TYPE ... ADD
# VALUE then a use of the value runs statement by statement; a file the
# PostgreSQL 15 grammar cannot parse runs as one simple query and fails
# cleanly; --dry-run shows the modes and changes nothing; COPY ... STDIN /
# STDOUT in a migration ends in bounded time.
. "$(dirname "$0")/lib.sh"
it_init "${1:-}"

# xmin of relation $2's catalog row and of migration $3's history row in
# database $1: equal when both were written by one transaction.
same_xact() {
	local a b
	a=$(qdb "$1" "SELECT xmin FROM pg_class WHERE oid = '$2'::regclass")
	b=$(qdb "$1" "SELECT xmin FROM _prisma_migrations WHERE migration_name = '$3'
		AND finished_at IS NOT NULL")
	[ -n "$a" ] && [ "$a" = "$b" ] && return 0
	echo "  (xmin of $2: '$a', of the row of $3: '$b')"
	return 1
}

# ---------------------------------------------------------------------
check "5. a file in its own BEGIN; ... COMMIT; runs in one transaction with its row"
wr=$IT_TMP/wrapped
mkmig "$wr" 20250101000000_wrapped <<'EOF'
BEGIN;
CREATE TABLE w1 (id int);
INSERT INTO w1 VALUES (1);
CREATE TABLE w2 (id int);
COMMIT;
EOF
mkmig "$wr" 20250102000000_plain <<'EOF'
CREATE TABLE w3 (id int);
EOF
newdb wrapped
run apply --dry-run --json --migrations "$wr" --database-url "$db"
expect_rc 0 "dry run"
expect_json "$OUT" "[(e['mode'], e['statements']) for e in j['events']] == [('transaction', 3), ('transaction', 1)]" \
	"wrapped file: transaction mode, BEGIN/COMMIT not counted as statements"
run apply --migrations "$wr" --database-url "$db"
expect_rc 0 "apply a wrapped file"
expect_grep "$OUT" 'applied +20250101000000_wrapped +\(transaction' "reported in transaction mode"
for t in w1 w2 w3; do has_rel "$db" "$t" || fail "table $t missing"; done
same_xact "$db" w2 20250101000000_wrapped ||
	fail "w2 and the history row of the wrapped file were not written by one transaction"
same_xact "$db" w3 20250102000000_plain ||
	fail "w3 and the history row of the plain file were not written by one transaction"
# The check can fail: w1 and the next migration's row are two transactions.
same_xact "$db" w1 20250102000000_plain >/dev/null &&
	fail "same_xact cannot tell two transactions apart"

check "5. a wrapped file failing late leaves nothing but a failed row"
wf=$IT_TMP/wrapped_fail
mkmig "$wf" 20250101000000_wrapped <<'EOF'
BEGIN;
CREATE TABLE w1 (id int);
INSERT INTO w1 VALUES (1);
INSERT INTO w1 VALUES (1 / 0);
COMMIT;
EOF
newdb wrapfail
run apply --migrations "$wf" --database-url "$db"
expect_rc 1 "apply a wrapped file that fails"
has_rel "$db" w1 && fail "table w1 of the failed wrapped file remains"
n=$(qdb "$db" "SELECT finished_at IS NULL, rolled_back_at IS NULL, applied_steps_count,
	logs LIKE '%22012%' AND logs LIKE '%statement 3%' AND logs LIKE '%line 4%'
	FROM _prisma_migrations")
expect_eq "$n" "t|t|0|t" "history row failed (not finished), logs name 22012, statement 3, line 4"
expect_one_error apply "20250101000000_wrapped.*statement 3 of 3.*line 4.*22012" \
	"error of the wrapped file"

# ---------------------------------------------------------------------
check "5. ALTER TYPE ... ADD VALUE then a use of it runs per statement"
en=$IT_TMP/enum
mkmig "$en" 20250101000000_mood <<'EOF'
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE person (name text, m mood NOT NULL DEFAULT 'ok');
EOF
mkmig "$en" 20250102000000_happy <<'EOF'
ALTER TYPE mood ADD VALUE 'happy';
ALTER TABLE person ALTER COLUMN m SET DEFAULT 'happy';
INSERT INTO person (name) VALUES ('ada');
EOF
newdb enum
run apply --migrations "$en" --database-url "$db"
expect_rc 0 "apply ADD VALUE then its use"
expect_grep "$OUT" 'applied +20250102000000_happy +\(per-statement' "reported per-statement"
n=$(qdb "$db" "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
	FROM pg_enum WHERE enumtypid = 'mood'::regtype")
expect_eq "$n" sad,ok,happy "enum labels"
expect_eq "$(qdb "$db" "SELECT m FROM person")" happy "the new value is in use"
n=$(qdb "$db" "SELECT finished_at IS NOT NULL, applied_steps_count FROM _prisma_migrations
	WHERE migration_name = '20250102000000_happy'")
expect_eq "$n" "t|3" "row finished, 3 steps"
n=$(qdb "$db" "SELECT p.state, p.step, p.nsteps FROM ferry.statement_progress p
	JOIN _prisma_migrations m ON m.id = p.migration_id
	WHERE m.migration_name = '20250102000000_happy'")
expect_eq "$n" "done|2|3" "progress row"

# ---------------------------------------------------------------------
check "5. a file the PostgreSQL 15 grammar cannot parse: simple mode, clean failure"
sm=$IT_TMP/simple
mkmig "$sm" 20250101000000_ok <<'EOF'
CREATE TABLE ok (id int);
EOF
mkmig "$sm" 20250102000000_unparsable <<'EOF'
CREATE TABLE s1 (id int);
CREATE TABLE s2 (id int,);
EOF
newdb simple
run apply --dry-run --migrations "$sm" --database-url "$db"
expect_rc 0 "dry run with an unparsable file"
expect_grep "$OUT" '20250101000000_ok +\(transaction' "dry run: mode of the parsable file"
expect_grep "$OUT" '20250102000000_unparsable +\(simple' "dry run: mode simple"
expect_grep "$ERR" "level=warn.*cannot parse '20250102000000_unparsable'.*line 2" \
	"dry run warns, naming file and line"
run apply --dry-run --json --migrations "$sm" --database-url "$db"
expect_json "$OUT" "[e['mode'] for e in j['events']] == ['transaction', 'simple']" \
	"dry run --json modes"
has_rel "$db" _prisma_migrations && fail "dry run created _prisma_migrations"
run apply --migrations "$sm" --database-url "$db"
expect_rc 1 "apply an unparsable file"
expect_one_error apply "20250102000000_unparsable.*syntax error.*42601" "error names the server's error"
# The server gives the error's position in the text, which is the file as
# is: the line is known even without statements (docs/applying-migrations.md,
# "Errors").
expect_grep "$ERR" "error: .*line 2" "simple-mode error names the line"
has_rel "$db" ok || fail "the migration before it was not applied"
has_rel "$db" s1 && fail "statement 1 of the failed simple query remains"
n=$(qdb "$db" "SELECT finished_at IS NULL, rolled_back_at IS NULL,
	logs LIKE '%syntax error%' AND logs LIKE '%42601%',
	checksum = '$(sha "$sm/20250102000000_unparsable/migration.sql")'
	FROM _prisma_migrations WHERE migration_name = '20250102000000_unparsable'")
expect_eq "$n" "t|t|t|t" "failed row with the server's error in logs"
run status --migrations "$sm" --database-url "$db"
expect_rc 1 "status after the simple-mode failure"
expect_grep "$OUT" '^failed +20250102000000_unparsable' "status lists it failed"

# ---------------------------------------------------------------------
check "5. --dry-run lists modes and changes nothing"
newdb dry
run apply --dry-run --migrations "$IT_EXAMPLES" --database-url "$db"
expect_rc 0 "apply --dry-run on the examples"
expect_eq "$(grep -c '^would apply' "$OUT")" 10 "dry run lists 10 migrations"
expect_grep "$OUT" 'would apply +20240301120000_index_task_project_status +\(per-statement: .*CONCURRENTLY' \
	"dry run gives the per-statement reason"
expect_eq "$(grep -c '(transaction)' "$OUT")" 9 "dry run: 9 in transaction mode"
expect_grep "$OUT" 'nothing was changed' "dry run says nothing changed"
n=$(qdb "$db" "SELECT to_regclass('public._prisma_migrations') IS NULL,
	to_regnamespace('ferry') IS NULL,
	(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
	(SELECT count(*) FROM pg_extension WHERE extname = 'citext')")
expect_eq "$n" "t|t|0|0" "no history table, no ferry schema, no relations, no extension"
run status --migrations "$IT_EXAMPLES" --database-url "$db"
expect_rc 1 "status after the dry run: all pending"

# ---------------------------------------------------------------------
# COPY with the client's stdin or stdout cannot work in a migration; the
# server waits for data Ferry never sends. It must end, not hang.
check "5. COPY ... FROM STDIN fails cleanly in bounded time"
cp=$IT_TMP/copy_in
mkmig "$cp" 20250101000000_copy <<'EOF'
CREATE TABLE t (id int);
COPY t FROM STDIN;
EOF
newdb copyin
run_bounded 10 apply --migrations "$cp" --database-url "$db"
if [ "$RC" -eq 137 ]; then
	fail "apply with COPY FROM STDIN hung (killed after 10 s)"
else
	expect_rc 1 "apply with COPY FROM STDIN"
	expect_one_error apply "20250101000000_copy" "COPY FROM STDIN error"
	has_rel "$db" t && fail "table t of the failed migration remains"
	n=$(qdb "$db" "SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NULL
		AND rolled_back_at IS NULL")
	expect_eq "$n" 1 "failed row recorded"
fi

check "5. COPY ... TO STDOUT ends in bounded time, consistently"
co=$IT_TMP/copy_out
mkmig "$co" 20250101000000_copy <<'EOF'
CREATE TABLE t (id int);
COPY t TO STDOUT;
EOF
newdb copyout
run_bounded 10 apply --migrations "$co" --database-url "$db"
case $RC in
137) fail "apply with COPY TO STDOUT hung (killed after 10 s)" ;;
0)
	has_rel "$db" t || fail "COPY TO STDOUT applied but table t is missing"
	expect_eq "$(qdb "$db" "SELECT count(*) FROM _prisma_migrations
		WHERE finished_at IS NOT NULL")" 1 "finished row"
	;;
1)
	has_rel "$db" t && fail "COPY TO STDOUT failed but table t remains"
	expect_one_error apply "20250101000000_copy" "COPY TO STDOUT error"
	;;
*) expect_rc "0 or 1" "apply with COPY TO STDOUT" ;;
esac

it_done
