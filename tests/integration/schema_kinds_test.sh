#!/bin/bash
# ferry-agent introspect / diff, one case per object kind on a real server:
# each case builds a "before" state, saves its document, changes one thing
# with psql, and checks that the new document holds the object (read from
# the JSON with Python, not through Ferry) and that `diff` -- from the saved
# document to the live database, and between two saved documents -- exits 1
# and names the change.
. "$(dirname "$0")/lib.sh"
it_init "${1:-}"

# kind_case TITLE SETUP_SQL CHANGE_SQL PY_EXPR DIFF_REGEX...
# PY_EXPR is evaluated on the "after" document (bound to j); helpers t(name)
# (a table), c(table, column), o(kind, name) (any object) are defined.
kind_case() {
	local title=$1 setup=$2 change=$3 expr=$4
	shift 4
	check "$title"
	newdb kind
	if [ -n "$setup" ]; then
		qdb "$db" "$setup" >/dev/null || fail "$title: setup SQL failed"
	fi
	run introspect --database-url "$db" --json -o "$IT_TMP/before.json"
	expect_rc 0 "$title: introspect before" || return
	qdb "$db" "$change" >/dev/null || fail "$title: change SQL failed"
	run introspect --database-url "$db" --json -o "$IT_TMP/after.json"
	expect_rc 0 "$title: introspect after" || return
	expect_json "$IT_TMP/after.json" "$expr" "$title: document holds it"
	run diff "$IT_TMP/before.json" "$db"
	expect_rc 1 "$title: diff saved → live" || return
	local re
	for re in "$@"; do
		expect_grep "$OUT" "$re" "$title: diff names the change"
	done
	cp "$OUT" "$IT_TMP/diff1.txt"
	run diff "$IT_TMP/before.json" "$IT_TMP/after.json"
	expect_rc 1 "$title: diff saved → saved"
	cmp -s "$OUT" "$IT_TMP/diff1.txt" ||
		fail "$title: the two diffs differ"
	# And back: the reverse diff is not empty either.
	run diff "$IT_TMP/after.json" "$IT_TMP/before.json"
	expect_rc 1 "$title: reverse diff"
	run diff "$IT_TMP/after.json" "$db"
	expect_rc 0 "$title: the after document equals the database"
}

# Python helpers for PY_EXPR (prepended to each expression).
H='(lambda t, c, o: '
E=')(lambda n: [x for x in j["tables"] if x["name"] == n][0],
     lambda n, m: [x for x in [y for y in j["tables"] if y["name"] == n][0]["columns"] if x["name"] == m][0],
     lambda k, n: [x for x in j[k] if x["name"] == n][0])'
py() { echo "$H$1$E"; }

T='CREATE TABLE users (id int PRIMARY KEY, email text);
   CREATE TABLE orders (id int NOT NULL, user_id int, total integer,
     name text, code text, during tsrange)'

# ---- tables and columns ----------------------------------------------
kind_case "table added" "" "CREATE TABLE orders (id int)" \
	"$(py 't("orders")["columns"][0]["type"] == "integer"')" \
	'^\[\+\] Added tables$' '^  - "orders"$'
kind_case "table removed" "$T" "DROP TABLE orders" \
	"$(py 'all(x["name"] != "orders" for x in j["tables"])')" \
	'^\[-\] Removed tables$' '^  - "orders"$'
kind_case "column type" "$T" "ALTER TABLE orders ALTER total TYPE bigint" \
	"$(py 'c("orders", "total")["type"] == "bigint"')" \
	'^\[\*\] Changed the "orders" table$' \
	'^  \[\*\] column "total": integer → bigint$'
kind_case "column NOT NULL and default" "$T" \
	"ALTER TABLE orders ALTER total SET NOT NULL,
	 ALTER total SET DEFAULT 0" \
	"$(py 'c("orders", "total")["not_null"] and c("orders", "total")["default"] == "0"')" \
	'column "total": NOT NULL added$' 'column "total": default 0 added$'
kind_case "column added and dropped" "$T" \
	"ALTER TABLE orders ADD COLUMN note varchar(20), DROP COLUMN code" \
	"$(py 'c("orders", "note")["type"] == "character varying(20)"')" \
	'^  \[\+\] column "note" added$' '^  \[-\] column "code" removed$'
kind_case "identity column" "$T" \
	"ALTER TABLE orders ALTER id ADD GENERATED ALWAYS AS IDENTITY (START 7)" \
	"$(py 'c("orders", "id")["identity"] == "always" and " start 7 " in c("orders", "id")["identity_options"]')" \
	'column "id": identity always added$'
kind_case "generated column" "$T" \
	"ALTER TABLE orders ADD COLUMN twice int GENERATED ALWAYS AS (total * 2) STORED" \
	"$(py '"total * 2" in c("orders", "twice")["generated"] and c("orders", "twice")["default"] is None')" \
	'column "twice" added$'
kind_case "column collation" "$T" \
	"ALTER TABLE orders ALTER name TYPE text COLLATE \"C\"" \
	"$(py 'c("orders", "name")["collation"] == "pg_catalog.\"C\""')" \
	'column "name": collation pg_catalog."C" added$'
kind_case "column order" "CREATE TABLE orders (a int, b int, c int)" \
	"ALTER TABLE orders DROP COLUMN a; ALTER TABLE orders ADD COLUMN a int" \
	"$(py '[x["name"] for x in t("orders")["columns"]] == ["b", "c", "a"]')" \
	'column order changed: a, b, c → b, c, a$'
kind_case "table options and unlogged" "$T" \
	"ALTER TABLE orders SET (fillfactor = 70); ALTER TABLE orders SET UNLOGGED" \
	"$(py 't("orders")["options"] == ["fillfactor=70"] and t("orders")["unlogged"]')" \
	"table \"orders\": option 'fillfactor=70' added$" \
	'table "orders": made UNLOGGED$'

# ---- constraints -----------------------------------------------------
kind_case "primary key" "$T" "ALTER TABLE orders ADD PRIMARY KEY (id)" \
	"$(py 'o("tables", "orders")["constraints"][0] == {"name": "orders_pkey", "type": "primary key", "definition": "PRIMARY KEY (id)"}')" \
	'^  \[\+\] constraint "orders_pkey" added$'
kind_case "unique constraint" "$T" \
	"ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE (code)" \
	"$(py 'any(x["name"] == "orders_code_key" and x["type"] == "unique" for x in t("orders")["constraints"])')" \
	'constraint "orders_code_key" added$'
kind_case "foreign key actions and deferrability" \
	"$T; ALTER TABLE orders ADD CONSTRAINT orders_user_fkey
	 FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE" \
	"ALTER TABLE orders DROP CONSTRAINT orders_user_fkey,
	 ADD CONSTRAINT orders_user_fkey FOREIGN KEY (user_id) REFERENCES users(id)
	 ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED" \
	"$(py '[x for x in t("orders")["constraints"] if x["name"] == "orders_user_fkey"][0]["definition"].endswith("ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED")')" \
	'constraint "orders_user_fkey": FOREIGN KEY \(user_id\) REFERENCES public\.users\(id\) ON DELETE CASCADE → FOREIGN KEY \(user_id\) REFERENCES public\.users\(id\) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED$'
kind_case "check constraint, NOT VALID" "$T" \
	"ALTER TABLE orders ADD CONSTRAINT total_pos CHECK (total > 0) NOT VALID" \
	"$(py '[x for x in t("orders")["constraints"] if x["name"] == "total_pos"][0]["definition"] == "CHECK ((total > 0)) NOT VALID"')" \
	'constraint "total_pos" added$'
kind_case "check constraint validated" \
	"$T; ALTER TABLE orders ADD CONSTRAINT total_pos CHECK (total > 0) NOT VALID" \
	"ALTER TABLE orders VALIDATE CONSTRAINT total_pos" \
	"$(py '[x for x in t("orders")["constraints"] if x["name"] == "total_pos"][0]["definition"] == "CHECK ((total > 0))"')" \
	'constraint "total_pos": CHECK \(\(total > 0\)\) NOT VALID → CHECK \(\(total > 0\)\)$'
kind_case "exclusion constraint" "$T" \
	"ALTER TABLE orders ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&)" \
	"$(py '[x for x in t("orders")["constraints"] if x["name"] == "no_overlap"][0]["type"] == "exclusion"')" \
	'constraint "no_overlap" added$'

# ---- indexes ---------------------------------------------------------
kind_case "index removed" "$T; CREATE UNIQUE INDEX users_email_key ON users (email)" \
	"DROP INDEX users_email_key" \
	"$(py 't("users")["indexes"] == []')" \
	'^\[\*\] Changed the "users" table$' '^  \[-\] index "users_email_key" removed$'
kind_case "partial index with a method" "$T" \
	"CREATE INDEX orders_total_idx ON orders USING hash (total) WHERE total > 0" \
	"$(py 't("orders")["indexes"][0]["definition"] == "CREATE INDEX orders_total_idx ON public.orders USING hash (total) WHERE (total > 0)"')" \
	'index "orders_total_idx" added$'
kind_case "index definition changed" "$T; CREATE INDEX orders_idx ON orders (total)" \
	"DROP INDEX orders_idx; CREATE INDEX orders_idx ON orders (total, name)" \
	"$(py 't("orders")["indexes"][0]["definition"].endswith("(total, name)")')" \
	'index "orders_idx": CREATE INDEX orders_idx ON public.orders USING btree \(total\) → CREATE INDEX orders_idx ON public.orders USING btree \(total, name\)$'

# ---- sequences, views, functions, triggers ---------------------------
kind_case "sequence" "CREATE SEQUENCE counter" \
	"ALTER SEQUENCE counter INCREMENT 5 CYCLE" \
	"$(py 'o("sequences", "counter")["increment"] == "5" and o("sequences", "counter")["cycle"]')" \
	'^\[\*\] Changed the "counter" sequence$' \
	'sequence "counter": increment 1 → 5$' 'sequence "counter": CYCLE added$'
kind_case "serial sequence owned by its column" "" \
	"CREATE TABLE s (id serial)" \
	"$(py 'o("sequences", "s_id_seq")["owned_by"] == "public.s.id"')" \
	'^\[\+\] Added sequences$' '^  - "s_id_seq"$'
kind_case "view" "$T; CREATE VIEW big AS SELECT id FROM orders WHERE total > 10" \
	"CREATE OR REPLACE VIEW big AS SELECT id FROM orders WHERE total > 100" \
	"$(py '"total > 100" in o("views", "big")["definition"]')" \
	'^\[\*\] Changed the "big" view$' 'view "big": definition changed$'
kind_case "materialized view and its index" \
	"$T; CREATE MATERIALIZED VIEW totals AS SELECT user_id, sum(total) FROM orders GROUP BY user_id" \
	"CREATE UNIQUE INDEX totals_user ON totals (user_id)" \
	"$(py 'o("materialized_views", "totals")["indexes"][0]["name"] == "totals_user" and "sum(orders.total)" in o("materialized_views", "totals")["definition"]')" \
	'^\[\*\] Changed the "totals" materialized view$' 'index "totals_user" added$'
kind_case "function body" \
	"CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 41'" \
	"CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42'" \
	"$(py '"SELECT 42" in o("functions", "answer()")["definition"] and o("functions", "answer()")["kind"] == "function"')" \
	'^\[\*\] Changed the "answer\(\)" function$' 'function "answer\(\)": definition changed$'
kind_case "procedure" "" \
	"CREATE PROCEDURE tidy(days int) LANGUAGE sql AS 'SELECT 1'" \
	"$(py 'o("functions", "tidy(IN days integer)")["kind"] == "procedure"')" \
	'^\[\+\] Added functions$' '^  - "tidy\(IN days integer\)"$'
kind_case "trigger" "$T; CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
	'BEGIN RETURN NEW; END'" \
	"CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()" \
	"$(py 't("orders")["triggers"][0]["definition"] == "CREATE TRIGGER orders_touch BEFORE UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION public.touch()"')" \
	'trigger "orders_touch" added$'
kind_case "trigger disabled" "$T; CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
	'BEGIN RETURN NEW; END';
	CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()" \
	"ALTER TABLE orders DISABLE TRIGGER orders_touch" \
	"$(py 't("orders")["triggers"][0]["enabled"] == "disabled"')" \
	'trigger "orders_touch": state disabled added$'

# ---- types -----------------------------------------------------------
kind_case "enum value added" "CREATE TYPE \"Role\" AS ENUM ('OWNER', 'MEMBER')" \
	"ALTER TYPE \"Role\" ADD VALUE 'AUDITOR' BEFORE 'MEMBER'" \
	"$(py 'o("enums", "Role")["values"] == ["OWNER", "AUDITOR", "MEMBER"]')" \
	'^\[\*\] Changed the "Role" enum$' "enum \"Role\": value 'AUDITOR' added$"
kind_case "enum value renamed" "CREATE TYPE \"Role\" AS ENUM ('OWNER', 'MEMBER')" \
	"ALTER TYPE \"Role\" RENAME VALUE 'MEMBER' TO 'USER'" \
	"$(py 'o("enums", "Role")["values"] == ["OWNER", "USER"]')" \
	"enum \"Role\": value 'MEMBER' removed$" "enum \"Role\": value 'USER' added$"
kind_case "domain" "CREATE DOMAIN posint AS integer CHECK (VALUE > 0)" \
	"ALTER DOMAIN posint ADD CONSTRAINT posint_small CHECK (VALUE < 100);
	 ALTER DOMAIN posint SET NOT NULL; ALTER DOMAIN posint SET DEFAULT 1" \
	"$(py 'o("domains", "posint")["type"] == "integer" and o("domains", "posint")["not_null"] and len(o("domains", "posint")["constraints"]) == 2')" \
	'^\[\*\] Changed the "posint" domain$' 'constraint "posint_small" added$' \
	'domain "posint": NOT NULL added$' 'domain "posint": default 1 added$'
kind_case "composite type" "CREATE TYPE pair AS (a int, b text)" \
	"ALTER TYPE pair ADD ATTRIBUTE c date, ALTER ATTRIBUTE a TYPE bigint" \
	"$(py '[x["type"] for x in o("composite_types", "pair")["attributes"]] == ["bigint", "text", "date"]')" \
	'^\[\*\] Changed the "pair" composite type$' 'attribute "c" added$' \
	'attribute "a": integer → bigint$'

# ---- extensions, policies, partitions, schemas -----------------------
kind_case "extension added; its own objects left out" "" \
	"CREATE EXTENSION pgcrypto" \
	"$(py 'o("extensions", "pgcrypto")["schema"] == "public" and o("extensions", "pgcrypto")["version"] and j["functions"] == []')" \
	'^\[\+\] Added extensions$' '^  - "pgcrypto"$'
kind_case "row-level security and a policy" "$T" \
	"ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
	 CREATE POLICY own ON orders AS RESTRICTIVE FOR SELECT TO PUBLIC USING (user_id = 1)" \
	"$(py 't("orders")["row_security"] and t("orders")["policies"][0] == {"name": "own", "command": "select", "restrictive": True, "roles": ["public"], "using": "(user_id = 1)", "with_check": None}')" \
	'table "orders": row level security enabled$' 'policy "own" added$'
kind_case "policy changed" "$T; CREATE POLICY own ON orders USING (user_id = 1)" \
	"ALTER POLICY own ON orders USING (user_id = 2)" \
	"$(py 't("orders")["policies"][0]["using"] == "(user_id = 2)"')" \
	'policy "own": USING \(user_id = 1\) → \(user_id = 2\)$'
kind_case "partition added" \
	"CREATE TABLE m (at date NOT NULL, v int) PARTITION BY RANGE (at)" \
	"CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')" \
	"$(py 't("m")["partition_key"] == "RANGE (at)" and t("m_2024")["partition_of"] == "public.m" and t("m_2024")["partition_bound"] == "FOR VALUES FROM ('"'"'2024-01-01'"'"') TO ('"'"'2025-01-01'"'"')"')" \
	'^\[\+\] Added tables$' '^  - "m_2024"$'
kind_case "inheritance" "CREATE TABLE base (id int); CREATE TABLE leaf (id int, x int)" \
	"ALTER TABLE leaf INHERIT base" \
	"$(py 't("leaf")["inherits"] == ["public.base"]')" \
	"table \"leaf\": parent 'public.base' added$"

# ---------------------------------------------------------------------
check "schemas in scope: ?schema=, --schema, the ferry schema ignored"
newdb scope
qdb "$db" "CREATE SCHEMA audit; CREATE TABLE audit.log (id int);
	CREATE TABLE public.app (id int);
	CREATE SCHEMA ferry; CREATE TABLE ferry.state (id int)" >/dev/null
run introspect --database-url "$db" --json
expect_rc 0 "introspect public"
expect_json "$OUT" '[x["name"] for x in j["tables"]] == ["app"] and j["scope"] == ["public"]' \
	"only public by default"
run introspect --database-url "$db?schema=audit" --json
expect_rc 0 "introspect ?schema=audit"
expect_json "$OUT" '[x["name"] for x in j["tables"]] == ["log"] and j["schema"] == "audit"' \
	"?schema=audit"
run introspect --database-url "$db" --schema audit --schema ferry --json -o "$IT_TMP/two.json"
expect_rc 0 "introspect --schema audit"
expect_json "$IT_TMP/two.json" '[(x["schema"], x["name"]) for x in j["tables"]] == [("audit", "log"), ("public", "app")] and j["scope"] == ["audit", "public"] and [x["name"] for x in j["schemas"]] == ["audit", "public"]' \
	"both schemas, ferry left out"
qdb "$db" "ALTER TABLE audit.log ADD COLUMN at timestamptz" >/dev/null
run diff "$IT_TMP/two.json" "$db" --schema audit
expect_rc 1 "diff across two schemas"
expect_grep "$OUT" '^\[\*\] Changed the "audit"\."log" table$' "other schema named in full"
expect_grep "$OUT" '^  \[\+\] column "at" added$' "column in the other schema"
run diff "$IT_TMP/two.json" "$db"
expect_rc 1 "diff with another scope"
expect_grep "$OUT" "scope: schema 'audit' removed" "scope difference named"

it_done
