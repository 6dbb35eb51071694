#!/bin/bash
# Bad input and unreachable or hostile servers: each is a one-line error on
# stderr naming the problem, with the documented exit status (2 usage or
# bad input, 3 operational), in bounded time, never a crash. A role that
# may not create tables: a clear error if the history table cannot be
# created, a recorded failure if only the migration is refused.
. "$(dirname "$0")/lib.sh"
it_init "${1:-}"

mig=$IT_TMP/mig
mkmig "$mig" 20250101000000_one <<'EOF'
CREATE TABLE one (id int);
EOF

# Applies $mig with database URL $1, bounded; expects exit $2 and one error
# line matching $3 (what: $4).
apply_expect() {
	run_bounded 15 apply --migrations "$mig" --database-url "$1"
	if [ "$RC" -eq 137 ]; then
		fail "$4: hung (killed after 15 s)"
		return 1
	fi
	expect_rc "$2" "$4" || return 1
	expect_one_error apply "$3" "$4"
}

# ---------------------------------------------------------------------
check "8. missing migrations folder: exit 2"
newdb input
run apply --migrations "$IT_TMP/no-such-dir" --database-url "$db"
expect_rc 2 "missing migrations folder"
expect_one_error apply "$IT_TMP/no-such-dir" "missing migrations folder"
has_rel "$db" _prisma_migrations && fail "a missing folder still created the history table"
run status --migrations "$IT_TMP/no-such-dir" --database-url "$db"
expect_rc 2 "status with a missing migrations folder"
expect_one_error status "no-such-dir" "status with a missing migrations folder"

check "8. nothing listening on the port: exit 3"
port=$(free_port)
apply_expect "postgresql://postgres@127.0.0.1:$port/postgres" 3 "127\.0\.0\.1.*$port" \
	"unreachable server"
run status --migrations "$mig" --database-url "postgresql://postgres@127.0.0.1:$port/postgres"
expect_rc 3 "status against an unreachable server (could not check)"

check "8. wrong password: exit 3, password not shown"
qdb "$IT_ADMIN" "SET password_encryption = 'scram-sha-256';
	CREATE ROLE pwuser LOGIN PASSWORD 'right-secret'" >/dev/null ||
	fail "cannot create role pwuser"
hba=$IT_DATA/pg_hba.conf
# Written in place, so the file keeps its owner (the server's user).
if ! { echo "host all pwuser 127.0.0.1/32 scram-sha-256" && cat "$hba"; } \
	>"$IT_TMP/hba" || ! cat "$IT_TMP/hba" >"$hba"; then
	fail "cannot edit $hba"
fi
# The server programs, found as deploy/pg-sandbox finds them.
bindir=${PG_BINDIR:-$(for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/pg_ctl" ] && echo "$d"
done | sort -V | tail -n 1)}
[ -n "$bindir" ] || bindir=$(pg_config --bindir)
if [ "$EUID" -eq 0 ]; then
	runuser -u "$(stat -c %U "$IT_DATA")" -- "$bindir/pg_ctl" -D "$IT_DATA" reload >/dev/null
else
	"$bindir/pg_ctl" -D "$IT_DATA" reload >/dev/null
fi || fail "pg_ctl reload failed"
# The reload is asynchronous: wait until the rule is in force.
in_force=no
for _ in $(seq 50); do
	if ! PGPASSWORD=nope psql -X -q -A -t -w -d "$IT_URL/postgres?user=pwuser" \
		-c 'SELECT 1' >/dev/null 2>&1; then
		in_force=yes
		break
	fi
	sleep 0.1
done
expect_eq "$in_force" yes "scram-sha-256 rule for pwuser in force"
newdb pw
pwurl=postgresql://pwuser:wrong-secret@${IT_URL#postgresql://postgres@}/pw$IT_DBN
apply_expect "$pwurl" 3 "password authentication failed" "wrong password"
expect_no_grep "$ERR" 'wrong-secret' "the password is not printed"
# The control: the right password gets in (status: 1, all pending), so
# the failure was the password.
run status --migrations "$mig" \
	--database-url "postgresql://pwuser:right-secret@${IT_URL#postgresql://postgres@}/pw$IT_DBN"
expect_rc 1 "status with the right password"
expect_no_grep "$ERR" 'right-secret' "the password is not printed"

check "8. something that is not PostgreSQL on the port: exit 3"
port=$(free_port)
python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null 2>&1 &
http_pid=$!
IT_PIDS+=("$http_pid")
if wait_listen "$port"; then
	apply_expect "postgresql://postgres@127.0.0.1:$port/postgres" 3 "$port" \
		"an HTTP server on the port"
else
	fail "python3 -m http.server did not start on port $port"
fi
kill "$http_pid" 2>/dev/null
wait "$http_pid" 2>/dev/null
# A server that answers at once with something else (an SSH-like banner).
port=$(free_port)
python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
    c.close()
' "$port" &
banner_pid=$!
IT_PIDS+=("$banner_pid")
if wait_listen "$port"; then
	apply_expect "postgresql://postgres@127.0.0.1:$port/postgres" 3 "$port" \
		"a banner-sending server on the port"
else
	fail "the banner server did not start on port $port"
fi
kill "$banner_pid" 2>/dev/null
wait "$banner_pid" 2>/dev/null

# ---------------------------------------------------------------------
check "8. a role with CREATE on the schema (not on the database) can apply"
qdb "$IT_ADMIN" "CREATE ROLE app LOGIN" >/dev/null
newdb perm
qdb "$db" "GRANT CREATE ON SCHEMA public TO app" >/dev/null
appurl=postgresql://app@${IT_URL#postgresql://postgres@}/perm$IT_DBN
run apply --migrations "$mig" --database-url "$appurl"
if expect_rc 0 "apply as a role with CREATE on schema public only"; then
	has_rel "$db" one || fail "table one missing"
	expect_eq "$(qdb "$db" "SELECT count(*) FROM _prisma_migrations
		WHERE finished_at IS NOT NULL")" 1 "row recorded"
fi

check "8. a role without CREATE on the schema and no history table: clear error, exit 3"
newdb perm
run apply --migrations "$mig" --database-url "postgresql://app@${IT_URL#postgresql://postgres@}/perm$IT_DBN"
expect_rc 3 "apply as a role that cannot create the history table"
expect_one_error apply "permission denied.*42501" "no CREATE permission"
has_rel "$db" one && fail "table one created without permission"
has_rel "$db" _prisma_migrations && fail "history table created without permission"

check "8. history table writable, migration not allowed: failure recorded, exit 1"
newdb perm
qdb "$db" "CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0);
  GRANT SELECT, INSERT, UPDATE ON _prisma_migrations TO app" >/dev/null
run apply --migrations "$mig" --database-url "postgresql://app@${IT_URL#postgresql://postgres@}/perm$IT_DBN"
expect_rc 1 "apply of a migration the role may not run"
expect_one_error apply "20250101000000_one.*permission denied.*42501" "refused migration"
n=$(qdb "$db" "SELECT finished_at IS NULL, logs LIKE '%42501%' FROM _prisma_migrations")
expect_eq "$n" "t|t" "failure recorded with SQLSTATE 42501"
has_rel "$db" one && fail "table one created without permission"

# ---------------------------------------------------------------------
check "8. usage errors: exit 2, one line naming the bad value"
newdb usage
run apply --migrations "$mig" --database-url "$db" --lock-timeout banana
expect_rc 2 "--lock-timeout banana"
expect_one_error apply "banana" "--lock-timeout banana"
run apply --migrations "$mig" --database-url "$db" --bogus-option
expect_rc 2 "unknown option"
expect_one_error apply "--bogus-option" "unknown option"
run apply --migrations "$mig" --database-url "$db" --max-retries many
expect_rc 2 "--max-retries many"
expect_one_error apply "many" "--max-retries many"
run apply --migrations "$mig" --database-url "$db" --in-doubt "done"
expect_rc 2 "--in-doubt without --resume"
run resolve --migrations "$mig" --database-url "$db"
expect_rc 2 "resolve without --applied or --rolled-back"
has_rel "$db" _prisma_migrations && fail "a usage error touched the database"

it_done
