#!/bin/bash
# Runs --help for every command of both programs, found by walking the
# command tables that each program prints, and checks that each answers
# with exit 0, a usage line and the exit-status table.
set -u
ferry=$1
agent=$2
fails=0
checked=0

check_help() { # prog words...
	local out rc
	out=$("$@" --help 2>&1)
	rc=$?
	checked=$((checked + 1))
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: '$*' --help exited $rc"
		fails=$((fails + 1))
		return 1
	fi
	if ! grep -q '^usage: ' <<<"$out"; then
		echo "FAIL: '$*' --help prints no usage line"
		fails=$((fails + 1))
	fi
	if ! grep -q '^Exit status:' <<<"$out"; then
		echo "FAIL: '$*' --help does not document exit codes"
		fails=$((fails + 1))
	fi
	echo "ok: $* --help"
	# A command group lists its own commands: recurse into them.
	if grep -q '^Commands:' <<<"$out"; then
		local sub
		for sub in $(sed -n '/^Commands:/,/^$/p' <<<"$out" |
			awk 'NR > 1 && NF { print $1 }'); do
			check_help "$@" "$sub"
		done
	fi
}

check_help "$ferry"
check_help "$agent"

for prog in "$ferry" "$agent"; do
	v=$("$prog" --version)
	if ! grep -Eq ' [0-9]+\.[0-9]+\.[0-9]+$' <<<"$v"; then
		echo "FAIL: $prog --version printed '$v'"
		fails=$((fails + 1))
	fi
	"$prog" no-such-command >/dev/null 2>&1
	rc=$?
	if [ "$rc" -ne 2 ]; then
		echo "FAIL: unknown command exited $rc, expected 2"
		fails=$((fails + 1))
	fi
	"$prog" >/dev/null 2>&1
	rc=$?
	if [ "$rc" -ne 2 ]; then
		echo "FAIL: no command exited $rc, expected 2"
		fails=$((fails + 1))
	fi
done

echo "checked $checked help pages, $fails failures"
[ "$fails" -eq 0 ]
