#!/bin/sh
# Fails if any C file differs from .clang-format (generated code excluded).
set -eu
cd "$(dirname "$0")/../.."
bad=0
for f in $(git ls-files '*.c' '*.h' 2>/dev/null || find common agent coordinator tests -name '*.[ch]'); do
	case "$f" in *.pb-c.*) continue ;; esac
	if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "check-format: $f differs from .clang-format (run: clang-format -i $f)"
		bad=1
	fi
done
[ "$bad" -eq 0 ] && echo "check-format: ok"
exit "$bad"
