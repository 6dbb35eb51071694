#!/bin/sh
# Fails if C sources use a function STYLE.md bans.
set -eu
cd "$(dirname "$0")/../.."
hits=$(grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol)[[:space:]]*\(' \
	--include='*.c' --include='*.h' common agent coordinator tests 2>/dev/null || true)
if [ -n "$hits" ]; then
	echo "check-banned: banned functions in use:"
	echo "$hits"
	exit 1
fi
echo "check-banned: ok"
