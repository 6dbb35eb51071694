# crashlib.sh -- sourced by crash_test.sh: the migration set the crash test
# applies, and the checks of a database's state made from the catalogs alone
# (never through ferry-agent).
#
# The set has CRASH_M migrations. Transaction-mode ones (kind tx) create two
# tables, an index, add a column to the shared table `ledger` and insert
# their number into it, with short sleeps in between; one also sleeps 1.3 s,
# longer than the client connection check interval, so that a kill during
# it really aborts the transaction (and one per-statement statement sleeps
# as long, so that a statement in doubt may also not have taken effect). Each first calls
# setval('probe.started', i): sequences are not transactional, so after a
# crash probe.started tells the last transaction-mode migration the server
# began (the probe schema is the test's, outside the migrated schema).
# Per-statement ones (kind ps, -- ferry:no-transaction) run CRASH_NSTEPS[i]
# statements, statement k creating table psNN_k after a short sleep.

CRASH_M=18
CRASH_KIND=()   # [i] tx | ps
CRASH_NAME=()   # [i] folder name
CRASH_NSTEPS=() # [i] statements of a ps migration
CRASH_LONG=7    # the tx migration that sleeps past the check interval
CRASH_LONG_PS=10 # the ps migration whose statement 2 does the same

# crash_make_migrations DIR: writes the migration folders into DIR.
crash_make_migrations() {
	local dir=$1 i nn k name sql
	for ((i = 1; i <= CRASH_M; i++)); do
		nn=$(printf '%02d' "$i")
		case $i in
		4) CRASH_KIND[i]=ps CRASH_NSTEPS[i]=4 ;;
		10) CRASH_KIND[i]=ps CRASH_NSTEPS[i]=3 ;;
		15) CRASH_KIND[i]=ps CRASH_NSTEPS[i]=4 ;;
		*) CRASH_KIND[i]=tx CRASH_NSTEPS[i]=0 ;;
		esac
		name=2024010100${nn}00_m${nn}_${CRASH_KIND[i]}
		CRASH_NAME[i]=$name
		if [ "${CRASH_KIND[i]}" = ps ]; then
			sql="-- ferry:no-transaction
-- Statement by statement: each creates its own table."
			for ((k = 1; k <= CRASH_NSTEPS[i]; k++)); do
				local z=0.02
				[ "$i" = "$CRASH_LONG_PS" ] && [ "$k" = 2 ] && z=1.2
				sql+="
CREATE TABLE ps${nn}_$k AS SELECT $k AS k FROM pg_sleep($z);"
			done
		else
			sql="SELECT setval('probe.started', $i);"
			[ "$i" = 1 ] && sql+="
CREATE TABLE ledger (mig int NOT NULL);"
			sql+="
CREATE TABLE tx${nn}_a (id serial PRIMARY KEY, v text NOT NULL);
INSERT INTO tx${nn}_a (v) SELECT 'row ' || g FROM generate_series(1, 100) g;
SELECT pg_sleep(0.01);"
			[ "$i" = "$CRASH_LONG" ] && sql+="
SELECT pg_sleep(1.3);"
			sql+="
CREATE INDEX tx${nn}_a_v ON tx${nn}_a (v);
CREATE TABLE tx${nn}_b (id int REFERENCES tx${nn}_a (id));
INSERT INTO tx${nn}_b SELECT id FROM tx${nn}_a WHERE id <= 10;
ALTER TABLE ledger ADD COLUMN c${nn} int;
INSERT INTO ledger (mig) VALUES ($i);
SELECT pg_sleep(0.01);"
		fi
		mkdir -p "$dir/$name" && printf '%s\n' "$sql" >"$dir/$name/migration.sql" ||
			return 1
	done
}

# What the trial database needs before ferry-agent runs: the probe schema
# (sequence, and helpers that count rows of tables that may not exist).
CRASH_SETUP_SQL=$(cat <<'EOF'
CREATE SCHEMA probe;
CREATE SEQUENCE probe.started MINVALUE 0 START 0;
CREATE FUNCTION probe.n(q text) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE r bigint;
BEGIN
	EXECUTE q INTO r;
	RETURN coalesce(r, 0);
EXCEPTION WHEN undefined_table OR undefined_column THEN
	RETURN 0;
END $f$;
CREATE FUNCTION probe.t(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
	EXECUTE q INTO r;
	RETURN coalesce(r, '');
EXCEPTION WHEN undefined_table OR undefined_column THEN
	RETURN '';
END $f$;
EOF
)

# The signature of a fully applied tx migration: tables a, b, index, ledger
# column (migration 1: the ledger table), ledger row, rows in a and b.
CRASH_TX_FULL=1:1:1:1:1:100:10
CRASH_TX_NONE=0:0:0:0:0:0:0

# crash_state_sql: prints a query giving one line per migration,
#   i|kind|signature|rows|finished|unfinished|steps|progress|finished_epoch
# (signature: tx as CRASH_TX_*, ps one 0/1 per statement's table;
# progress: "step:state" of the unfinished row) and a last line probe|N.
crash_state_sql() {
	local i nn k name sig sep='' m
	for ((i = 1; i <= CRASH_M; i++)); do
		nn=$(printf '%02d' "$i")
		name=${CRASH_NAME[i]}
		m="public._prisma_migrations m WHERE m.migration_name = \$Q\$$name\$Q\$"
		if [ "${CRASH_KIND[i]}" = tx ]; then
			if [ "$i" = 1 ]; then
				k="(to_regclass('public.ledger') IS NOT NULL)::int"
			else
				k="(SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass('public.ledger') AND attname = 'c$nn' AND NOT attisdropped)"
			fi
			sig="concat_ws(':', (to_regclass('public.tx${nn}_a') IS NOT NULL)::int,
				(to_regclass('public.tx${nn}_b') IS NOT NULL)::int,
				(to_regclass('public.tx${nn}_a_v') IS NOT NULL)::int, $k,
				probe.n('SELECT count(*) FROM public.ledger WHERE mig = $i'),
				probe.n('SELECT count(*) FROM public.tx${nn}_a'),
				probe.n('SELECT count(*) FROM public.tx${nn}_b'))"
		else
			sig="concat("
			for ((k = 1; k <= CRASH_NSTEPS[i]; k++)); do
				[ "$k" -gt 1 ] && sig+=", "
				sig+="(to_regclass('public.ps${nn}_$k') IS NOT NULL)::int"
			done
			sig+=")"
		fi
		printf '%sSELECT %d, %s, %s,\n' "$sep" "$i" "'${CRASH_KIND[i]}'" "$sig"
		printf "  probe.n(\$P\$SELECT count(*) FROM %s\$P\$),\n" "$m"
		printf "  probe.n(\$P\$SELECT count(*) FROM %s AND finished_at IS NOT NULL AND rolled_back_at IS NULL\$P\$),\n" "$m"
		printf "  probe.n(\$P\$SELECT count(*) FROM %s AND finished_at IS NULL AND rolled_back_at IS NULL\$P\$),\n" "$m"
		printf "  probe.t(\$P\$SELECT max(applied_steps_count)::text FROM %s\$P\$),\n" "$m"
		printf "  probe.t(\$P\$SELECT p.step || ':' || p.state FROM ferry.statement_progress p, %s AND finished_at IS NULL AND rolled_back_at IS NULL AND p.migration_id = id\$P\$),\n" "$m"
		printf "  probe.t(\$P\$SELECT extract(epoch FROM max(finished_at))::text FROM %s\$P\$)\n" "$m"
		sep='UNION ALL '
	done
	printf "UNION ALL SELECT 0, 'probe', (SELECT last_value FROM probe.started)::text, 0, 0, 0, '', '', ''\n"
	printf 'ORDER BY 1\n'
}

# crash_ones N TOTAL: N ones then zeros, TOTAL digits.
crash_ones() {
	local s='' k
	for ((k = 1; k <= $2; k++)); do
		if [ "$k" -le "$1" ]; then s+=1; else s+=0; fi
	done
	printf '%s' "$s"
}

# crash_analyze STATE_FILE: checks the state the query above printed.
# Prints one "BAD: ..." line per violation. Sets:
#   CA_BAD         number of violations
#   CA_FIRST       first migration not finished (0: all finished)
#   CA_FIRST_STATE N (no row, no effect) | P (unfinished per-statement row)
#   CA_PROBE       probe.started
#   CA_INDOUBT     1 if CA_FIRST's statement CA_STEPS+1 is in doubt
#   CA_INDOUBT_DONE 1 if that statement took effect
#   CA_STEPS CA_NSTEPS  statements done / in all, for CA_FIRST (ps)
#   CA_FIN_EPOCH[i] finished_at of migration i (epoch), if any
crash_analyze() {
	local i kind sig rows fin unfin steps prog fepoch n st want
	CA_BAD=0 CA_FIRST=0 CA_FIRST_STATE='' CA_PROBE='' CA_INDOUBT=0
	CA_INDOUBT_DONE=0 CA_STEPS=0 CA_NSTEPS=0
	CA_FIN_EPOCH=()
	bad() {
		echo "BAD: $*"
		CA_BAD=$((CA_BAD + 1))
	}
	local seen=0
	while IFS='|' read -r i kind sig rows fin unfin steps prog fepoch; do
		if [ "$kind" = probe ]; then
			CA_PROBE=$sig
			continue
		fi
		seen=$((seen + 1))
		[ "$i" = "$seen" ] || bad "state line $seen is for migration '$i'"
		local name=${CRASH_NAME[i]}
		CA_FIN_EPOCH[i]=$fepoch
		[ "$fin" -le 1 ] || bad "$name has $fin finished rows"
		if [ "$kind" = tx ]; then
			if [ "$fin" -ge 1 ]; then
				st=F
				[ "$sig" = "$CRASH_TX_FULL" ] ||
					bad "$name is recorded as finished but its objects are $sig, expected $CRASH_TX_FULL"
				[ "$unfin" = 0 ] || bad "$name has $unfin unfinished rows beside the finished one"
			else
				st=N
				[ "$sig" = "$CRASH_TX_NONE" ] ||
					bad "$name has no finished row but its objects are $sig (half-applied or unrecorded)"
				[ "$rows" = 0 ] ||
					bad "$name (transaction mode) has $rows history rows but no finished one: a crash mid-transaction must leave no row"
			fi
		else
			n=${CRASH_NSTEPS[i]}
			if [ "$fin" -ge 1 ]; then
				st=F
				want=$(crash_ones "$n" "$n")
				[ "$sig" = "$want" ] || bad "$name is finished but its tables are $sig, expected $want"
				[ "$steps" = "$n" ] || bad "$name is finished with applied_steps_count $steps, expected $n"
				[ "$unfin" = 0 ] || bad "$name has $unfin unfinished rows beside the finished one"
			elif [ "$rows" = 0 ]; then
				st=N
				want=$(crash_ones 0 "$n")
				[ "$sig" = "$want" ] || bad "$name has no history row but its tables are $sig"
			else
				st=P
				[ "$unfin" = 1 ] || bad "$name has $unfin unfinished rows"
				want=$(crash_ones "$steps" "$n")
				if [ "$prog" = "$steps:started" ]; then
					# In doubt: statement steps+1 was sent, its outcome not
					# recorded. Either outcome is consistent.
					local took=0
					if [ "$sig" = "$(crash_ones $((steps + 1)) "$n")" ]; then
						took=1
					elif [ "$sig" != "$want" ]; then
						bad "$name: tables $sig with $steps statements done and statement $((steps + 1)) in doubt"
					fi
					if [ "$CA_FIRST" = 0 ]; then
						CA_INDOUBT=1 CA_INDOUBT_DONE=$took
					fi
				else
					[ "$prog" = "$((steps - 1)):done" ] ||
						bad "$name: progress '$prog' does not match applied_steps_count $steps"
					[ "$sig" = "$want" ] ||
						bad "$name: tables $sig, expected $want for $steps statements done"
				fi
			fi
		fi
		if [ "$CA_FIRST" = 0 ]; then
			if [ "$st" != F ]; then
				CA_FIRST=$i CA_FIRST_STATE=$st
				CA_STEPS=${steps:-0} CA_NSTEPS=${CRASH_NSTEPS[i]}
			fi
		elif [ "$st" != N ]; then
			bad "$name has effects (state $st) although ${CRASH_NAME[CA_FIRST]} before it is not finished"
		fi
	done <"$1"
	[ "$seen" = "$CRASH_M" ] || bad "state has $seen migrations, expected $CRASH_M"
	[ -n "$CA_PROBE" ] || bad "state has no probe line"
	unset -f bad
}
