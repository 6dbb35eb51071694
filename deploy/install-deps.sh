#!/bin/sh
# Install everything Ferry needs to build, test and run on Debian 12
# (bookworm). Idempotent: packages already present are left alone, and the
# package index is refreshed only when something is missing.
set -eu

PKGS="build-essential gcc clang cmake make pkg-config git ca-certificates
      libpq-dev libnng-dev libprotobuf-c-dev protobuf-c-compiler
      libsodium-dev libcmocka-dev libpg-query-dev libinih-dev libjansson-dev
      libicu-dev postgresql postgresql-client util-linux procps iproute2
      clang-format libclang-rt-14-dev jq python3"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install)" >&2
	exit 3
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing$missing"
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
