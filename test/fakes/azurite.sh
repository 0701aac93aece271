#!/bin/sh
# Starts Azurite's blob service on 127.0.0.1 on a free port, for start_service (test/lib.sh):
# writes the port to $READY once it listens, and stops Azurite when stopped itself.
#
#   azurite.sh DIR [https CERT KEY]
#
# DIR holds Azurite's data.  With https, it serves TLS with CERT/KEY (from the test CA, see
# fakelib.py) and accepts OAuth bearer tokens (--oauth basic, which needs https).  Telemetry is off.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
azurite=$here/../node/node_modules/.bin/azurite-blob
[ -x "$azurite" ] || { echo "azurite.sh: $azurite missing (run make deps)" >&2; exit 1; }
dir=$1
mkdir -p "$dir"
set -- --blobHost 127.0.0.1 --blobPort 0 --location "$dir" --disableTelemetry --loose \
	--skipApiVersionCheck ${2:+--cert "$3" --key "$4" --oauth basic}
# the log exists before the loop below reads it (the child opens it only after the fork)
: >"$dir/azurite.out"
pid=
trap 'stopping=1' TERM INT HUP
stopping=
"$azurite" "$@" >"$dir/azurite.out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 0' TERM INT HUP
if [ -n "$stopping" ]; then
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	exit 0
fi
i=0
while :; do
	port=$(sed -n 's/.*successfully listens on https\{0,1\}:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
		"$dir/azurite.out" 2>/dev/null) || port=
	[ -n "$port" ] && break
	if ! kill -0 "$pid" 2>/dev/null || [ $i -gt 1150 ]; then
		cat "$dir/azurite.out" >&2
		kill "$pid" 2>/dev/null || :
		exit 1
	fi
	i=$((i + 1))
	sleep 0.1
done
if [ -n "${READY:-}" ]; then
	printf '%s\n' "$port" >"$READY.tmp" && mv "$READY.tmp" "$READY"
fi
echo "azurite listening on 127.0.0.1:$port" >&2
wait "$pid"
