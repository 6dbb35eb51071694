#!/bin/bash
# Attacks signed bundles through the real CLI:
#   - thousands of single-bit flips across the whole file (wrapper header,
#     Bundle content, signature, key id): every one must be refused with
#     exit status exactly 1 and the reason expected for that region;
#   - wrong and forged keys, truncation, garbage, oversized files, extra
#     fields, swapped signatures;
#   - chain attacks: another project's bundle as parent, an older bundle
#     replayed after a newer one, two bundles with one sequence number, a
#     wrong parent digest, a rewritten history.
#
#   bundle_attack_test.sh path/to/ferry
set -u
ferry=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
examples=$root/deploy/examples/migrations
work=$(mktemp -d /tmp/ferry-bundle-attack.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fails=0
checks=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# expect STATUS REGEX command...: runs the command, checks its exit
# status and that its stderr+stdout matches REGEX.
expect() {
	local want=$1 re=$2 out rc
	shift 2
	checks=$((checks + 1))
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "'$*' exited $rc, expected $want: $out"
		return 1
	fi
	if ! grep -Eq -- "$re" <<<"$out"; then
		fail "'$*' said '$out', expected /$re/"
		return 1
	fi
	echo "ok: $* -> $rc"
}

"$ferry" keygen --name release -o keys --no-passphrase >/dev/null || exit 1
"$ferry" keygen --name intruder -o keys --no-passphrase >/dev/null || exit 1
rel_id=$(awk '{ print $2 }' keys/release.pub)
create() { # out project dir [args...]
	local out=$1 project=$2 dir=$3
	shift 3
	"$ferry" bundle create --migrations "$dir" --project "$project" \
		--key keys/release.key -o "$out" "$@" >/dev/null
}

create b1.fbundle shop "$examples" --note "first" || exit 1
expect 0 'valid' "$ferry" bundle verify --trust keys/release.pub b1.fbundle

# --- bit flips -------------------------------------------------------------
# Python writes one mutated file per flip and runs `ferry bundle verify` on
# each (one per CPU at a time), checking exit status and reason per region.
python3 - "$ferry" b1.fbundle keys/release.pub "$rel_id" <<'EOF'
import concurrent.futures, os, random, re, subprocess, sys, time

ferry, path, pub, rel_id = sys.argv[1:5]
data = open(path, "rb").read()
n = len(data)

def varint(buf, pos):
    v = shift = 0
    while True:
        b = buf[pos]; pos += 1
        v |= (b & 0x7f) << shift; shift += 7
        if not b & 0x80:
            return v, pos

# Map every byte to its region by parsing the wrapper.
region = ["header"] * n
pos = 0
while pos < n:
    tag, p = varint(data, pos)
    field = tag >> 3
    if field == 1:
        _, q = varint(data, p)
        for i in range(p, q):
            region[i] = "version"
        pos = q
        continue
    ln, p = varint(data, p)
    name = {2: "content", 3: "signature", 4: "keyid"}[field]
    for i in range(p, p + ln):
        region[i] = name
    pos = p + ln

refusal = (r"bundle (is truncated|is malformed|is empty|format version \d+ "
           r"is not supported|signature is \d+ bytes|key id is malformed|"
           r"was signed by key [0-9a-f]+, which is not trusted|signature "
           r"does not verify with trusted key " + rel_id + ")")
expected = {
    "header": refusal,
    "version": r"bundle (format version \d+ is not supported|is malformed|"
               r"is truncated)",
    "content": r"bundle signature does not verify with trusted key " + rel_id,
    "signature": r"bundle signature does not verify with trusted key "
                 + rel_id,
    "keyid": r"bundle (was signed by key [0-9a-f]{16}, which is not "
             r"trusted|key id is malformed)",
}

# Every byte once (one random bit) when the file is small enough (or
# FERRY_BUNDLE_FLIPS=all), else all of the first and last 256 bytes and a
# uniform sample of the rest; plus all 8 bits of every byte of the wrapper
# that is neither Bundle content nor signature (tags, lengths, version,
# key id). (test_bundle.c flips every bit of a small bundle in process.)
rng = random.Random(20240601)
target = 2400
if n <= target or os.environ.get("FERRY_BUNDLE_FLIPS") == "all":
    positions = list(range(n))
else:
    edge = set(range(min(256, n))) | set(range(max(0, n - 256), n))
    rest = [i for i in range(n) if i not in edge]
    k = target - len(edge)
    # Uniform over the middle: one position in each of k equal strata.
    positions = sorted(edge | {rest[(j * len(rest)) // k +
                                    rng.randrange(max(1, len(rest) // k))]
                               for j in range(k)})
flips = [(p, rng.randrange(8)) for p in positions]
have = set(flips)
flips += [(p, bit) for p in range(n)
          if region[p] in ("header", "version", "keyid")
          for bit in range(8) if (p, bit) not in have]
os.makedirs("flips", exist_ok=True)
files = []
for idx, (p, bit) in enumerate(flips):
    m = bytearray(data)
    m[p] ^= 1 << bit
    f = "flips/%05d.fbundle" % idx
    with open(f, "wb") as fh:
        fh.write(m)
    files.append(f)

def run(idx):
    try:
        r = subprocess.run([ferry, "bundle", "verify", "--trust", pub,
                            files[idx]], capture_output=True, text=True,
                           timeout=20)
        return idx, r.returncode, r.stderr + r.stdout
    except subprocess.TimeoutExpired:
        return idx, "timeout", ""

start = time.monotonic()
bad = 0
by_region = {}
workers = os.cpu_count() or 2
with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
    for idx, rc, out in ex.map(run, range(len(files))):
        p, bit = flips[idx]
        reg = region[p]
        by_region[reg] = by_region.get(reg, 0) + 1
        if rc != 1 or not re.search(expected[reg], out):
            bad += 1
            if bad <= 20:
                print("FAIL: flip of bit %d at byte %d (%s) -> exit %s: %s"
                      % (bit, p, reg, rc, out.strip()))
elapsed = time.monotonic() - start
print("bit flips: %d over %d distinct of %d bytes: %d refused with exit 1 "
      "and the expected reason, %d failures, %.1f s (%s)"
      % (len(flips), len({p for p, _ in flips}), n, len(flips) - bad, bad,
         elapsed,
         ", ".join("%s %d" % kv for kv in sorted(by_region.items()))))
sys.exit(1 if bad or len(flips) < min(n, 2000) else 0)
EOF
[ $? -eq 0 ] || fails=$((fails + 1))
checks=$((checks + 1))

# --- keys ----------------------------------------------------------------
expect 1 "bundle was signed by key $rel_id, which is not trusted" \
	"$ferry" bundle verify --trust keys/intruder.pub b1.fbundle
# Two trusted keys: the right one is found by key id.
expect 0 'valid' "$ferry" bundle verify --trust keys/intruder.pub \
	--trust keys/release.pub b1.fbundle
# Signed by the intruder but naming release's key id.
"$ferry" bundle create --migrations "$examples" --project shop \
	--key keys/intruder.key -o forged.fbundle >/dev/null || exit 1
python3 - forged.fbundle "$rel_id" <<'EOF'
import sys
path, rel_id = sys.argv[1], sys.argv[2].encode()
d = bytearray(open(path, "rb").read())
assert d[-18] == 0x22 and d[-17] == 16
d[-16:] = rel_id
open(path, "wb").write(d)
EOF
expect 1 "bundle signature does not verify with trusted key $rel_id" \
	"$ferry" bundle verify --trust keys/release.pub forged.fbundle
# b1's signature on another bundle, and the other way round.
create other.fbundle shop-other "$examples" || exit 1
python3 - b1.fbundle other.fbundle swapped.fbundle <<'EOF'
import sys
a = open(sys.argv[1], "rb").read()
b = open(sys.argv[2], "rb").read()
# Signature: the 64 bytes before the 18-byte key id field.
sig_a = a[-18 - 64:-18]
open(sys.argv[3], "wb").write(b[:-18 - 64] + sig_a + b[-18:])
EOF
expect 1 'signature does not verify' \
	"$ferry" bundle verify --trust keys/release.pub swapped.fbundle

# --- malformed files -----------------------------------------------------
size=$(stat -c %s b1.fbundle)
for cut in 1 2 3 100 $((size / 2)) $((size - 83)) $((size - 18)) \
	$((size - 1)); do
	head -c "$cut" b1.fbundle >cut.fbundle
	expect 1 'bundle is truncated' \
		"$ferry" bundle verify --trust keys/release.pub cut.fbundle
done
: >empty.fbundle
expect 1 'bundle is empty' \
	"$ferry" bundle verify --trust keys/release.pub empty.fbundle
head -c 4096 /dev/urandom >garbage.fbundle
expect 1 'bundle ' \
	"$ferry" bundle verify --trust keys/release.pub garbage.fbundle
expect 1 'bundle is malformed' \
	"$ferry" bundle verify --trust keys/release.pub \
	"$examples/20240108093000_init/migration.sql"
expect 1 'bundle ' "$ferry" bundle inspect garbage.fbundle
{ cat b1.fbundle; printf 'x'; } >trailing.fbundle
expect 1 'bundle is malformed: 1 trailing bytes' \
	"$ferry" bundle verify --trust keys/release.pub trailing.fbundle
# An unknown field (9) slipped in after the format version.
python3 - b1.fbundle extra.fbundle <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d[:2] + b"\x4a\x03abc" + d[2:])
EOF
expect 1 'unknown field 9' \
	"$ferry" bundle verify --trust keys/release.pub extra.fbundle
truncate -s 600M huge.fbundle
expect 1 'larger than the limit' \
	"$ferry" bundle verify --trust keys/release.pub huge.fbundle
rm -f huge.fbundle

# --- the chain -----------------------------------------------------------
cp -r "$examples" mig2
mkdir mig2/20240315100000_add_audit
echo 'CREATE TABLE audit (id bigint PRIMARY KEY);' \
	>mig2/20240315100000_add_audit/migration.sql
cp -r "$examples" mig2b
mkdir mig2b/20240315100000_add_other
echo 'CREATE TABLE other (id bigint PRIMARY KEY);' \
	>mig2b/20240315100000_add_other/migration.sql
create b2.fbundle shop mig2 --parent b1.fbundle || exit 1
create b2b.fbundle shop mig2b --parent b1.fbundle || exit 1
create b3.fbundle shop mig2 --parent b2.fbundle || exit 1
expect 0 'follows the given parent' "$ferry" bundle verify \
	--trust keys/release.pub --parent b1.fbundle b2.fbundle
expect 0 'follows the given parent' "$ferry" bundle verify \
	--trust keys/release.pub --parent b2.fbundle b3.fbundle
# Another project's valid bundle as parent.
expect 1 "project 'shop', but its parent to project 'shop-other'" \
	"$ferry" bundle verify --trust keys/release.pub \
	--parent other.fbundle b2.fbundle
# An older bundle replayed as the child of a newer one.
expect 1 'bundle has sequence 1, which does not follow' \
	"$ferry" bundle verify --trust keys/release.pub \
	--parent b2.fbundle b1.fbundle
expect 1 'bundle has sequence 2, which does not follow' \
	"$ferry" bundle verify --trust keys/release.pub \
	--parent b3.fbundle b2.fbundle
# Equal sequence, different content.
expect 1 'bundle has sequence 2, which does not follow' \
	"$ferry" bundle verify --trust keys/release.pub \
	--parent b2.fbundle b2b.fbundle
# Right sequence, wrong parent.
expect 1 'bundle names parent digest [0-9a-f]{64}, but the given parent' \
	"$ferry" bundle verify --trust keys/release.pub \
	--parent b2b.fbundle b3.fbundle
# A tampered or untrusted parent is refused as such.
python3 - b1.fbundle tampered.fbundle <<'EOF'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[len(d) // 2] ^= 0x20
open(sys.argv[2], "wb").write(d)
EOF
expect 1 'parent bundle .*signature does not verify' \
	"$ferry" bundle verify --trust keys/release.pub \
	--parent tampered.fbundle b2.fbundle
expect 1 'parent bundle .*which is not trusted' \
	"$ferry" bundle create --migrations mig2 --project shop \
	--key keys/release.key --parent b1.fbundle \
	--trust keys/intruder.pub -o x.fbundle
# A parent of another project is a mistake of the caller (usage).
expect 2 "the parent bundle belongs to project 'shop-other', not 'shop'" \
	"$ferry" bundle create --migrations mig2 --project shop \
	--key keys/release.key --parent other.fbundle -o x.fbundle

# A rewritten history: refused, then allowed, recorded and shown.
cp -r mig2 mig3
echo '-- edited after release' >>mig3/20240112141500_add_projects/migration.sql
expect 1 \
	"history rewritten: migration '20240112141500_add_projects' was modified" \
	"$ferry" bundle create --migrations mig3 --project shop \
	--key keys/release.key --parent b2.fbundle -o b3r.fbundle
[ -e b3r.fbundle ] && fail "a refused create wrote its output"
expect 0 'REWRITES HISTORY' "$ferry" bundle create --migrations mig3 \
	--project shop --key keys/release.key --parent b2.fbundle \
	--allow-rewrite -o b3r.fbundle
expect 0 'REWRITES HISTORY' "$ferry" bundle inspect b3r.fbundle
expect 0 '"allow_rewrite": true' "$ferry" bundle inspect --json b3r.fbundle
expect 0 'REWRITES HISTORY' "$ferry" bundle verify \
	--trust keys/release.pub --parent b2.fbundle b3r.fbundle
expect 0 'signature not verified' "$ferry" bundle inspect b1.fbundle

# --- exit statuses other than 1 ------------------------------------------
expect 3 'cannot open' "$ferry" bundle verify --trust keys/release.pub \
	missing.fbundle
expect 2 'at least one --trust' "$ferry" bundle verify b1.fbundle
expect 1 '"valid": false' "$ferry" bundle verify --json \
	--trust keys/intruder.pub b1.fbundle
expect 0 '"valid": true' "$ferry" bundle verify --json \
	--trust keys/release.pub b1.fbundle

echo "$checks checks, $fails failures"
[ "$fails" -eq 0 ]
