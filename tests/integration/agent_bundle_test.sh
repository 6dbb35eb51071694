#!/bin/bash
# ferry-agent apply --bundle on a real server: the agent trusts nothing it
# has not verified itself, and a refusal changes nothing.
#
#   - bundle: untrusted signer, flipped bits (header, content, signature,
#     key id), truncation, another project's bundle;
#   - approvals (policy: 2 of alice, bob, carol for prod): one short, for
#     staging, expired, the same approver twice (one file twice, two
#     files), an untrusted approver, for another bundle, for another
#     rollout, none at all, no --rollout (usage error);
#   - anti-rollback (ferry.agent_state and <state_dir>/acme.anchor): replay
#     of the accepted bundle (a no-op), an older bundle, another bundle
#     with the same sequence, a bundle that does not chain, the state file
#     deleted (the database still remembers), the database behind the
#     state directory (restored from a backup: refused, then accepted with
#     --accept-restored-database), a key rotation (second bundle_key_file),
#     a bundle 3 on a fork that skips sequence 2;
#   - --dry-run refuses what apply refuses, and records nothing.
#
# Every refusal: exit status exactly 1 (2 for the usage error), one error
# line naming the reason, and a byte-identical database (pg_dump of schema
# and data), state file and state directory.
#
#   agent_bundle_test.sh path/to/ferry path/to/ferry-agent
. "$(dirname "$0")/lib.sh"
CLI=${1:-}
if [ -z "$CLI" ] || [ ! -x "$CLI" ]; then
	echo "usage: $0 path/to/ferry path/to/ferry-agent"
	exit 2
fi
CLI=$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")
it_init "${2:-}"

K=$IT_TMP/keys
A=$IT_TMP/approvals
B=$IT_TMP/bundles
STATE=$IT_TMP/state
CONF=$IT_TMP/agent.conf
mkdir -p "$A" "$B"

# Runs the ferry CLI; a failure here is a broken fixture, not a finding.
cli() {
	local rc
	"$CLI" "$@" >"$IT_TMP/cli.out" 2>"$IT_TMP/cli.err"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: fixture: ferry $* exited $rc:"
		sed 's/^/  | /' "$IT_TMP/cli.err" | head -20
		exit 1
	fi
	if grep -Eq 'Sanitizer|runtime error:' "$IT_TMP/cli.err"; then
		fail "ferry $1: sanitizer report:"
		sed 's/^/  | /' "$IT_TMP/cli.err" | head -40
	fi
}

# ---------------------------------------------------------------------
check "fixtures: keys, migration folders, bundles, agent config"
for k in release release2 rogue alice bob carol mallory; do
	cli keygen --name "$k" -o "$K" --no-passphrase
done

v1=$IT_TMP/v1
v2=$IT_TMP/v2
v3=$IT_TMP/v3
mkdir -p "$v1"
for d in $(find "$IT_EXAMPLES" -mindepth 1 -maxdepth 1 -type d -name '2*' |
	sort | head -5); do
	cp -r "$d" "$v1/"
done
cp "$IT_EXAMPLES/migration_lock.toml" "$v1/"
cp -r "$IT_EXAMPLES" "$v2"
cp -r "$IT_EXAMPLES" "$v3"
mkmig "$v3" 20240315090000_add_release_marker <<'EOF'
CREATE TABLE "ReleaseMarker" ("id" SERIAL PRIMARY KEY, "note" TEXT NOT NULL);
EOF
expect_eq "$(find "$v1" -mindepth 1 -maxdepth 1 -type d | wc -l)" 5 "v1 folders"
expect_eq "$(find "$v2" -mindepth 1 -maxdepth 1 -type d | wc -l)" 10 "v2 folders"

mkb() { # out dir project key [args...]
	local out=$1 dir=$2 project=$3 key=$4
	shift 4
	cli bundle create --migrations "$dir" --project "$project" \
		--key "$K/$key.key" -o "$B/$out" "$@"
}
mkb b1 "$v1" acme release
mkb b2 "$v2" acme release --parent "$B/b1"
mkb b2x "$v2" acme release --parent "$B/b1" --note "another bundle 2"
mkb b3rot "$v3" acme release2 --parent "$B/b2" --trust "$K/release.pub"
mkb bother "$v1" other release
mkb brogue "$v1" acme rogue
mkb brogue2 "$v2" acme rogue --parent "$B/b1" --trust "$K/release.pub"
# A fork: another first bundle, and a bundle 2 that follows it, not b1.
mkb b1alt "$v1" acme release --note "a fork"
mkb bfork "$v2" acme release --parent "$B/b1alt"
mkb bfork3 "$v3" acme release --parent "$B/bfork"

# Digest and sequence as Ferry itself reports them (verified).
declare -A DIGEST SEQ
for b in b1 b2 b2x b3rot bother brogue brogue2 b1alt bfork bfork3; do
	cli bundle verify --trust "$K/release.pub" --trust "$K/release2.pub" \
		--trust "$K/rogue.pub" --json "$B/$b"
	DIGEST[$b]=$(json_eval "$IT_TMP/cli.out" 'j["digest"]')
	SEQ[$b]=$(json_eval "$IT_TMP/cli.out" 'j["sequence"]')
	[[ ${DIGEST[$b]} =~ ^[0-9a-f]{64}$ ]] ||
		fail "digest of $b: '${DIGEST[$b]}'"
done
expect_eq "${SEQ[b1]} ${SEQ[b2]} ${SEQ[b2x]} ${SEQ[b3rot]} ${SEQ[bfork]}" \
	"1 2 2 3 2" "fixture sequences"
[ "${DIGEST[b2]}" != "${DIGEST[b2x]}" ] || fail "b2 and b2x share a digest"
[ "${DIGEST[b1]}" != "${DIGEST[b1alt]}" ] || fail "b1 and b1alt share a digest"

newdb prod
DB=$db
write_conf() { # file state_dir database_url [bundle key names...]
	local f=$1 sd=$2 url=$3 k
	shift 3
	{
		echo "[agent]"
		echo "name = prod-test"
		echo "environment = prod"
		echo "project = acme"
		echo "state_dir = $sd"
		echo "database_url = $url"
		echo "[trust]"
		for k in "$@"; do echo "bundle_key_file = $K/$k.pub"; done
		echo "[approvals]"
		echo "required = 2"
		echo "approver_file = $K/alice.pub"
		echo "approver_file = $K/bob.pub"
		echo "approver_file = $K/carol.pub"
	} >"$f"
}
# Two bundle keys: the release key and its successor (rotation).
write_conf "$CONF" "$STATE" "$DB" release release2

# appr OUT BUNDLE ENV ROLLOUT APPROVER [args...]: an approval file in $A.
appr() {
	local out=$1 bundle=$2 env=$3 rollout=$4 who=$5
	shift 5
	cli approve --bundle "$B/$bundle" --environment "$env" \
		--rollout "$rollout" --key "$K/$who.key" -o "$A/$out" "$@"
}

# ---------------------------------------------------------------------
# What a refusal must leave alone: the whole database (schema and data,
# ferry.agent_state and _prisma_migrations included), the state file and
# the state directory's listing. pg_dump's \restrict line holds a random
# key per run: drop it.
snapshot() { # file
	{
		pg_dump --no-owner --no-privileges -d "$DB" 2>&1 |
			grep -Ev '^\\(un)?restrict '
		echo "--- state dir"
		ls -la --time-style=+%s.%N "$STATE" 2>&1 | sed 1d |
			awk '{ print $1, $5, $6, $7 }'
		echo "--- anchor"
		cat "$STATE/acme.anchor" 2>&1
	} >"$1"
}
SNAP=$IT_TMP/snap
snapshot "$SNAP.before"

# untouched WHAT: fails, with the difference, unless the state equals the
# last `mark`.
mark() { snapshot "$SNAP.before"; }
untouched() {
	snapshot "$SNAP.after"
	if ! cmp -s "$SNAP.before" "$SNAP.after"; then
		fail "$1: the refusal changed the database or the state:"
		diff "$SNAP.before" "$SNAP.after" | head -20 | sed 's/^/  | /'
		return 1
	fi
}

# refused WHAT STATUS REGEX BUNDLE [apply args...]: apply must exit STATUS
# with one error line matching REGEX, run nothing and change nothing.
NREFUSED=0
refused() {
	local what=$1 want=$2 re=$3 bundle=$4
	shift 4
	NREFUSED=$((NREFUSED + 1))
	mark
	run apply --bundle "$bundle" --config "$CONF" "$@"
	if expect_rc "$want" "$what"; then
		expect_one_error apply "$re" "$what"
		expect_no_grep "$OUT" "applied|would apply" "$what: nothing ran"
	fi
	untouched "$what"
}

# accepted WHAT N BUNDLE [apply args...]: apply exits 0 having applied N.
accepted() {
	local what=$1 n=$2 bundle=$3
	shift 3
	run apply --bundle "$bundle" --config "$CONF" "$@"
	expect_rc 0 "$what" || return 1
	if [ "$n" -eq 0 ]; then
		expect_grep "$OUT" "^nothing to apply" "$what: nothing to apply"
	else
		expect_eq "$(grep -c '^applied ' "$OUT")" "$n" "$what: migrations applied"
	fi
}

# state_is SEQ BUNDLE WHAT: ferry.agent_state and the state file both
# record bundle BUNDLE with sequence SEQ.
state_is() {
	local got
	got=$(qdb "$DB" "SELECT sequence || ' ' || digest || ' ' || agent
		FROM ferry.agent_state WHERE project = 'acme'" 2>&1)
	expect_eq "$got" "$1 ${DIGEST[$2]} prod-test" "$3: ferry.agent_state"
	expect_eq "$(cat "$STATE/acme.anchor" 2>&1)" "$1 ${DIGEST[$2]}" \
		"$3: state file"
	expect_eq "$(qdb "$DB" "SELECT count(*) FROM ferry.agent_state")" 1 \
		"$3: one agent_state row"
}

# flipped SRC OFFSET BIT OUT: SRC with one bit flipped.
flipped() {
	python3 - "$1" "$2" "$3" "$4" <<'EOF'
import sys
src, off, bit, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
d = bytearray(open(src, "rb").read())
d[off] ^= 1 << bit
open(out, "wb").write(d)
EOF
}

# Offsets of the wrapper's regions in bundle file $1 (fields 1-4: format
# version, Bundle bytes, signature, key id), as "name offset" lines.
regions() {
	python3 - "$1" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
def varint(p):
    v = s = 0
    while True:
        b = d[p]; p += 1
        v |= (b & 0x7f) << s; s += 7
        if not b & 0x80:
            return v, p
assert d[0] == 0x08 and d[1] == 0x01 and d[2] == 0x12, d[:3]
blen, p = varint(3)
content = p
p += blen
assert d[p] == 0x1a and d[p + 1] == 64
sig = p + 2
p = sig + 64
assert d[p] == 0x22 and d[p + 1] == 16 and p + 18 == len(d)
kid = p + 2
print("tag0", 0)
print("version", 1)
print("content_first", content)
print("content_mid", content + blen // 2)
print("content_last", content + blen - 1)
print("sig_first", sig)
print("sig_mid", sig + 32)
print("keyid", kid + 5)
EOF
}

# attacks T OTHER ROGUE ROLLOUT: every refusal against target bundle T
# (everything else valid), OTHER being another bundle of the chain.
attacks() {
	local t=$1 other=$2 rogue=$3 r=$4 off name re f

	appr "$t.alice" "$t" prod "$r" alice
	appr "$t.bob" "$t" prod "$r" bob

	check "$t: signed by an untrusted key (rogue), approvals valid"
	appr "$rogue.alice" "$rogue" prod "$r" alice
	appr "$rogue.bob" "$rogue" prod "$r" bob
	refused "$rogue (untrusted signer)" 1 \
		"bundle was signed by key [0-9a-f]{16}, which is not trusted" \
		"$B/$rogue" --rollout "$r" \
		--approval "$A/$rogue.alice" --approval "$A/$rogue.bob"

	check "$t: one flipped bit, in each region of the file"
	while read -r name off; do
		case $name in
		content_* | sig_*) re="bundle signature does not verify with trusted key" ;;
		keyid) re="bundle key id is malformed|bundle was signed by key .*not trusted" ;;
		*) re="bundle is (malformed|truncated)|bundle format version .* not supported" ;;
		esac
		for bit in 0 7; do
			f=$B/$t.flip.$name.$bit
			flipped "$B/$t" "$off" "$bit" "$f"
			refused "$t with bit $bit of byte $off ($name) flipped" 1 "$re" \
				"$f" --rollout "$r" \
				--approval "$A/$t.alice" --approval "$A/$t.bob"
		done
	done < <(regions "$B/$t")

	check "$t: truncated"
	for n in 1 64 $(($(stat -c %s "$B/$t") / 2)); do
		head -c -"$n" "$B/$t" >"$B/$t.cut$n"
		refused "$t without its last $n bytes" 1 "bundle is truncated" \
			"$B/$t.cut$n" --rollout "$r" \
			--approval "$A/$t.alice" --approval "$A/$t.bob"
	done
	: >"$B/empty"
	refused "empty bundle file" 1 "bundle is empty" "$B/empty" \
		--rollout "$r" --approval "$A/$t.alice" --approval "$A/$t.bob"

	check "$t: another project's bundle, validly signed and approved"
	appr "bother.alice.$r" bother prod "$r" alice
	appr "bother.bob.$r" bother prod "$r" bob
	refused "bundle of project 'other'" 1 \
		"bundle is for project 'other', this agent serves 'acme'" \
		"$B/bother" --rollout "$r" \
		--approval "$A/bother.alice.$r" --approval "$A/bother.bob.$r"

	check "$t: approvals short of 2 of alice, bob, carol"
	refused "$t: alice only (N-1 of N)" 1 \
		"approval refused: 1 of 2 valid approvals for environment 'prod', rollout '$r' \(valid: alice\)" \
		"$B/$t" --rollout "$r" --approval "$A/$t.alice"
	refused "$t: no approval at all" 1 \
		"approval refused: 0 of 2 valid approvals" \
		"$B/$t" --rollout "$r"
	refused "$t: no --rollout" 2 \
		"environment 'prod' requires approvals: give --rollout" \
		"$B/$t" --approval "$A/$t.alice" --approval "$A/$t.bob"

	appr "$t.bob.staging" "$t" staging "$r" bob
	refused "$t: bob's approval is for staging" 1 \
		"1 of 2 valid .*'$A/$t.bob.staging': from 'bob' for environment 'staging', not 'prod'" \
		"$B/$t" --rollout "$r" \
		--approval "$A/$t.alice" --approval "$A/$t.bob.staging"

	appr "$t.bob.1s" "$t" prod "$r" bob --expires 1s
	appr "$t.carol.1s" "$t" prod "$r" carol --expires 1s
	sleep 2
	refused "$t: bob's and carol's approvals expired" 1 \
		"1 of 2 valid .*from 'bob' expired at .*from 'carol' expired at " \
		"$B/$t" --rollout "$r" --approval "$A/$t.alice" \
		--approval "$A/$t.bob.1s" --approval "$A/$t.carol.1s"

	refused "$t: alice's approval file twice" 1 \
		"1 of 2 valid .*\(valid: alice\).*duplicate approver 'alice'" \
		"$B/$t" --rollout "$r" \
		--approval "$A/$t.alice" --approval "$A/$t.alice"
	appr "$t.alice2" "$t" prod "$r" alice
	cmp -s "$A/$t.alice" "$A/$t.alice2" &&
		fail "fixture: alice's two approvals are the same bytes"
	refused "$t: two different approvals by alice" 1 \
		"1 of 2 valid .*\(valid: alice\).*duplicate approver 'alice'" \
		"$B/$t" --rollout "$r" \
		--approval "$A/$t.alice" --approval "$A/$t.alice2"

	appr "$t.mallory" "$t" prod "$r" mallory
	refused "$t: mallory is not an approver" 1 \
		"1 of 2 valid .*signed by key [0-9a-f]{16}, which is not a trusted approver for 'prod'" \
		"$B/$t" --rollout "$r" \
		--approval "$A/$t.alice" --approval "$A/$t.mallory"

	appr "$other.bob.$r" "$other" prod "$r" bob
	refused "$t: bob approved $other, not $t" 1 \
		"1 of 2 valid .*from 'bob' for another bundle \(${DIGEST[$other]:0:16}" \
		"$B/$t" --rollout "$r" \
		--approval "$A/$t.alice" --approval "$A/$other.bob.$r"

	appr "$t.bob.r-other" "$t" prod r-other bob
	refused "$t: bob approved another rollout" 1 \
		"1 of 2 valid .*from 'bob' for rollout 'r-other', not '$r'" \
		"$B/$t" --rollout "$r" \
		--approval "$A/$t.alice" --approval "$A/$t.bob.r-other"
	refused "$t: both approvals for another rollout than --rollout" 1 \
		"0 of 2 valid .*for rollout '$r', not 'r-wrong'" \
		"$B/$t" --rollout r-wrong \
		--approval "$A/$t.alice" --approval "$A/$t.bob"
}

# ---------------------------------------------------------------------
check "1. every attack on bundle 1, against an empty database"
attacks b1 b2 brogue r-1
expect_eq "$(qdb "$DB" "SELECT count(*) FROM pg_tables WHERE schemaname
	NOT IN ('pg_catalog', 'information_schema')")" 0 "no table after the attacks"
[ -e "$STATE" ] && fail "the state directory exists after refusals only"

# ---------------------------------------------------------------------
check "2. bundle 1 with alice and bob applies its 5 migrations"
accepted "b1 approved by alice and bob" 5 "$B/b1" --rollout r-1 \
	--approval "$A/b1.alice" --approval "$A/b1.bob"
expect_eq "$(nrows "$DB")" 5 "rows after b1"
expect_eq "$(qdb "$DB" "SELECT string_agg(migration_name, ',' ORDER BY
	migration_name COLLATE \"C\") FROM _prisma_migrations
	WHERE finished_at IS NOT NULL")" \
	"$(find "$v1" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort |
		paste -sd,)" "b1's migrations recorded"
state_is 1 b1 "after b1"
expect_eq "$(stat -c %a "$STATE/acme.anchor")" 600 "state file mode"
# A copy of the database as it is now: the "backup" restored in step 7.
qdb "$IT_ADMIN" "CREATE DATABASE backup1 TEMPLATE \"${DB##*/}\"" >/dev/null ||
	fail "cannot copy the database"

# ---------------------------------------------------------------------
check "3. replaying bundle 1 (same sequence, same digest) is an accepted no-op"
# ferry_anchor_check accepts sequence == accepted and digest equal: the
# engine then finds nothing to apply.
rows_before=$(qdb "$DB" "SELECT string_agg(id || finished_at, ',' ORDER BY id)
	FROM _prisma_migrations")
accepted "b1 again" 0 "$B/b1" --rollout r-1 \
	--approval "$A/b1.alice" --approval "$A/b1.bob"
expect_eq "$(qdb "$DB" "SELECT string_agg(id || finished_at, ',' ORDER BY id)
	FROM _prisma_migrations")" "$rows_before" "history rows untouched by the replay"
state_is 1 b1 "after replaying b1"

# ---------------------------------------------------------------------
check "4. every attack on bundle 2, against bundle 1's database"
attacks b2 b1 brogue2 r-2
state_is 1 b1 "after the attacks on b2"
expect_eq "$(nrows "$DB")" 5 "rows after the attacks on b2"

# ---------------------------------------------------------------------
check "5. bundle 2 applies the other 5; then b1 and b2x are refused, dry runs too"
accepted "b2 approved by alice and bob" 5 "$B/b2" --rollout r-2 \
	--approval "$A/b2.alice" --approval "$A/b2.bob"
expect_eq "$(nrows "$DB")" 10 "rows after b2"
state_is 2 b2 "after b2"

appr b1.carol b1 prod r-1 carol
refused "b1 replayed after b2" 1 \
	"bundle sequence 1 is older than sequence 2 already accepted" \
	"$B/b1" --rollout r-1 --approval "$A/b1.alice" --approval "$A/b1.carol"
appr b2x.alice b2x prod r-2 alice
appr b2x.carol b2x prod r-2 carol
refused "b2x: another bundle with sequence 2" 1 \
	"bundle sequence 2 was already accepted with digest ${DIGEST[b2]:0:16}\.\.\., this one is ${DIGEST[b2x]:0:16}\.\.\." \
	"$B/b2x" --rollout r-2 --approval "$A/b2x.alice" --approval "$A/b2x.carol"
# Approvals checked before the anchor: b2x unapproved says so, not more.
refused "b2x with b2's approvals" 1 "approval refused: 0 of 2" \
	"$B/b2x" --rollout r-2 --approval "$A/b2.alice" --approval "$A/b2.bob"

# A dry run refuses what the apply would refuse (it lists what would
# run: a rollback or another project's bundle must not look fine).
refused "dry run of b1 after b2" 1 \
	"bundle sequence 1 is older than sequence 2 already accepted" \
	"$B/b1" --rollout r-1 --approval "$A/b1.alice" --approval "$A/b1.carol" \
	--dry-run
refused "dry run of b2x after b2" 1 \
	"bundle sequence 2 was already accepted with digest" \
	"$B/b2x" --rollout r-2 --approval "$A/b2x.alice" --approval "$A/b2x.carol" \
	--dry-run
refused "dry run of another project's bundle" 1 \
	"bundle is for project 'other', this agent serves 'acme'" \
	"$B/bother" --rollout r-2 --approval "$A/bother.alice.r-2" \
	--approval "$A/bother.bob.r-2" --dry-run

# ---------------------------------------------------------------------
check "6. the state file deleted: the database still remembers bundle 2"
mv "$STATE/acme.anchor" "$IT_TMP/acme.anchor.saved"
refused "b1 with no state file" 1 \
	"bundle sequence 1 is older than sequence 2 already accepted" \
	"$B/b1" --rollout r-1 --approval "$A/b1.alice" --approval "$A/b1.carol"
refused "b2x with no state file" 1 \
	"bundle sequence 2 was already accepted with digest ${DIGEST[b2]:0:16}" \
	"$B/b2x" --rollout r-2 --approval "$A/b2x.alice" --approval "$A/b2x.carol"
mv "$IT_TMP/acme.anchor.saved" "$STATE/acme.anchor"
state_is 2 b2 "state file back"

# ---------------------------------------------------------------------
check "7. the database behind the state directory (restored from a backup)"
qdb "$DB" "UPDATE ferry.agent_state SET sequence = 1, digest = '${DIGEST[b1]}'
	WHERE project = 'acme'" >/dev/null
refused "b2 on a database lowered to bundle 1" 1 \
	"the database is behind this agent's state \(database: bundle 1, state directory: bundle 2\): was it restored from a backup\?" \
	"$B/b2" --rollout r-2 --approval "$A/b2.alice" --approval "$A/b2.bob"
# --accept-restored-database is not a licence to roll back.
refused "b1 on the lowered database, with --accept-restored-database" 1 \
	"bundle sequence 1 is older than sequence 2 already accepted" \
	"$B/b1" --rollout r-1 --approval "$A/b1.alice" --approval "$A/b1.carol" \
	--accept-restored-database
refused "b2x on the lowered database, with --accept-restored-database" 1 \
	"bundle sequence 2 was already accepted with digest ${DIGEST[b2]:0:16}" \
	"$B/b2x" --rollout r-2 --approval "$A/b2x.alice" --approval "$A/b2x.carol" \
	--accept-restored-database
accepted "b2 on the lowered database, --accept-restored-database" 0 \
	"$B/b2" --rollout r-2 --approval "$A/b2.alice" --approval "$A/b2.bob" \
	--accept-restored-database
state_is 2 b2 "after accepting the lowered database"

qdb "$DB" "DELETE FROM ferry.agent_state" >/dev/null
refused "b2 on a database with no agent_state row" 1 \
	"the database is behind this agent's state \(database: no record, state directory: bundle 2\)" \
	"$B/b2" --rollout r-2 --approval "$A/b2.alice" --approval "$A/b2.bob"
accepted "b2, no agent_state row, --accept-restored-database" 0 \
	"$B/b2" --rollout r-2 --approval "$A/b2.alice" --approval "$A/b2.bob" \
	--accept-restored-database
state_is 2 b2 "after accepting the database without a row"

# A real restore: the copy taken after bundle 1 (schema, history and
# ferry.agent_state of that time).
MAIN_DB=$DB
DB=$IT_URL/backup1
expect_eq "$(nrows "$DB")" 5 "rows in the backup"
refused "b2 on the database restored from the backup" 1 \
	"the database is behind this agent's state \(database: bundle 1, state directory: bundle 2\)" \
	"$B/b2" --rollout r-2 --approval "$A/b2.alice" --approval "$A/b2.bob" \
	--database-url "$DB"
accepted "b2 on the restored database, --accept-restored-database" 5 \
	"$B/b2" --rollout r-2 --approval "$A/b2.alice" --approval "$A/b2.bob" \
	--database-url "$DB" --accept-restored-database
expect_eq "$(nrows "$DB")" 10 "rows in the restored database after b2"
state_is 2 b2 "restored database after b2"
DB=$MAIN_DB

# ---------------------------------------------------------------------
check "8. bundle 3 signed with the rotated key (second bundle_key_file)"
appr b3rot.bob b3rot prod r-3 bob
appr b3rot.carol b3rot prod r-3 carol
# Without the new key in [trust] it is refused: the second line matters.
write_conf "$IT_TMP/old.conf" "$STATE" "$DB" release
mark
run apply --bundle "$B/b3rot" --config "$IT_TMP/old.conf" --rollout r-3 \
	--approval "$A/b3rot.bob" --approval "$A/b3rot.carol"
expect_rc 1 "b3rot, release2 not trusted" &&
	expect_one_error apply "bundle was signed by key $(cut -d' ' -f2 "$K/release2.pub"), which is not trusted" \
		"b3rot, release2 not trusted"
untouched "b3rot, release2 not trusted"
# A dry run of an acceptable bundle lists it and records nothing.
mark
run apply --bundle "$B/b3rot" --config "$CONF" --rollout r-3 \
	--approval "$A/b3rot.bob" --approval "$A/b3rot.carol" --dry-run
expect_rc 0 "dry run of b3rot" &&
	expect_grep "$OUT" "^would apply  20240315090000_add_release_marker" \
		"dry run of b3rot lists its migration"
untouched "dry run of b3rot"
accepted "b3rot signed by release2" 1 "$B/b3rot" --rollout r-3 \
	--approval "$A/b3rot.bob" --approval "$A/b3rot.carol"
expect_eq "$(nrows "$DB")" 11 "rows after b3rot"
has_rel "$DB" 'public."ReleaseMarker"' || fail "b3rot's migration did not run"
state_is 3 b3rot "after b3rot"
appr b2.carol b2 prod r-2 carol
refused "b2 after b3rot" 1 \
	"bundle sequence 2 is older than sequence 3 already accepted" \
	"$B/b2" --rollout r-2 --approval "$A/b2.alice" --approval "$A/b2.carol"

# ---------------------------------------------------------------------
check "9. a bundle 2 that does not chain to the accepted bundle 1"
newdb fork
DB=$db
IT_FORK_DB=${db##*/}
STATE=$IT_TMP/state-fork
CONF=$IT_TMP/fork.conf
write_conf "$CONF" "$STATE" "$DB" release
accepted "b1 on the fork database" 5 "$B/b1" --rollout r-1 \
	--approval "$A/b1.alice" --approval "$A/b1.bob"
state_is 1 b1 "fork database after b1"
appr bfork.alice bfork prod r-f alice
appr bfork.bob bfork prod r-f bob
refused "bfork: sequence 2 whose parent is not b1" 1 \
	"bundle sequence 2 does not chain to the accepted bundle 1 \(parent digest differs\)" \
	"$B/bfork" --rollout r-f --approval "$A/bfork.alice" --approval "$A/bfork.bob"
# The same with only the database remembering bundle 1.
mv "$STATE/acme.anchor" "$IT_TMP/fork.anchor.saved"
refused "bfork with no state file" 1 \
	"bundle sequence 2 does not chain to the accepted bundle 1" \
	"$B/bfork" --rollout r-f --approval "$A/bfork.alice" --approval "$A/bfork.bob"
mv "$IT_TMP/fork.anchor.saved" "$STATE/acme.anchor"
expect_eq "$(nrows "$DB")" 5 "rows on the fork database"

# ---------------------------------------------------------------------
check "10. a bundle 3 on the fork, skipping sequence 2"
newdb gap
DB=$db
STATE=$IT_TMP/state-gap
CONF=$IT_TMP/gap.conf
write_conf "$CONF" "$STATE" "$DB" release
accepted "b1 on the gap database" 5 "$B/b1" --rollout r-1 \
	--approval "$A/b1.alice" --approval "$A/b1.bob"
# Skipping a sequence number does not make a fork acceptable: bfork3
# (sequence 3) descends from b1alt, not from the accepted b1. Whether the
# agent refuses any gap or checks the ancestry, it must refuse this one.
appr bfork3.alice bfork3 prod r-f alice
appr bfork3.bob bfork3 prod r-f bob
refused "bfork3: sequence 3 on the fork, skipping 2" 1 \
	"does not chain|does not follow|forked" \
	"$B/bfork3" --rollout r-f --approval "$A/bfork3.alice" --approval "$A/bfork3.bob"
expect_eq "$(nrows "$DB")" 5 "rows on the gap database"
state_is 1 b1 "gap database after bfork3"

# Back to the fork database for the last checks.
DB=$IT_URL/${IT_FORK_DB}
STATE=$IT_TMP/state-fork
CONF=$IT_TMP/fork.conf

# ---------------------------------------------------------------------
check "11. the checks above can fail"
# must_fail CHECK ARGS...: the check must record a failure (which is then
# not counted).
must_fail() {
	local before=$IT_FAILS
	"$@" >/dev/null
	if [ "$IT_FAILS" -eq "$before" ]; then
		fail "this check cannot fail: $*"
	else
		IT_FAILS=$before
	fi
}
# An accepted bundle (the replay of b1) is not a refusal, and its upsert
# of ferry.agent_state shows in the snapshot.
must_fail refused "b1 replay taken for a refusal" 1 "." "$B/b1" \
	--rollout r-1 --approval "$A/b1.alice" --approval "$A/b1.bob"
# A refusal for another reason than the expected one.
must_fail refused "bfork taken for a rollback" 1 "is older than" "$B/bfork" \
	--rollout r-f --approval "$A/bfork.alice" --approval "$A/bfork.bob"
must_fail refused "bfork with the wrong status" 2 "does not chain" "$B/bfork" \
	--rollout r-f --approval "$A/bfork.alice" --approval "$A/bfork.bob"
# A refusal is not an apply.
must_fail accepted "bfork taken for an apply" 0 "$B/bfork" \
	--rollout r-f --approval "$A/bfork.alice" --approval "$A/bfork.bob"
must_fail state_is 2 bfork "state of the fork database"
# The snapshot sees a new table, a changed row and a changed state file.
mark
qdb "$DB" "CREATE TABLE canary (x int)" >/dev/null
must_fail untouched "a new table"
mark
qdb "$DB" "UPDATE _prisma_migrations SET logs = 'x'
	WHERE migration_name = (SELECT min(migration_name) FROM _prisma_migrations)" >/dev/null
must_fail untouched "a changed history row"
mark
echo "1 ${DIGEST[b1alt]}" >"$STATE/acme.anchor"
must_fail untouched "a changed state file"

echo "$NREFUSED refusals checked"

it_done
