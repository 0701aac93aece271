# Blob Storage test environment for the encfs-fetch tests and benchmark (POSIX sh, sourced after
# test/lib.sh): Azurite, its account, the JS SDK helper and the fault proxy.
# shellcheck shell=sh
# shellcheck disable=SC2034,SC2154 # results for the sourcing script; port comes from lib.sh

AZ_NODE=$ENCFS_SRC/test/node
AZ_ACCOUNT=devstoreaccount1

# blob_env_ready: true when Azurite and the SDK are installed (make deps)
blob_env_ready() {
	[ -x "$AZ_NODE/node_modules/.bin/azurite-blob" ] && [ -d "$AZ_NODE/node_modules/@azure/storage-blob" ] &&
		command -v node >/dev/null 2>&1
}

# test_ca: the test CA in $T/ca and a server certificate "azurite" for 127.0.0.1
test_ca() {
	[ -f "$T/ca/azurite.pem" ] || "$PYTHON" "$ENCFS_SRC/test/fakes/fakelib.py" ca "$T/ca" azurite 127.0.0.1 localhost
}

# azurite_start NAME http|https: starts Azurite (https: with --oauth basic); sets az_port and
# az_ep, the account endpoint URL.
# Like start_service, but waits up to 120 s: Node.js takes a while to load Azurite on a busy
# machine.  The wrapper joins lib.sh's list of services stopped at exit.
azurite_start() {
	[ "$2" = https ] && test_ca
	READY=$T/$1.port
	export READY
	if [ "$2" = https ]; then
		sh "$ENCFS_SRC/test/fakes/azurite.sh" "$T/$1" https "$T/ca/azurite.pem" "$T/ca/azurite.key" >"$T/$1.log" 2>&1 &
	else
		sh "$ENCFS_SRC/test/fakes/azurite.sh" "$T/$1" >"$T/$1.log" 2>&1 &
	fi
	_pids="$_pids $!"
	unset READY
	_i=0
	while [ ! -s "$T/$1.port" ]; do
		_i=$((_i + 1))
		if [ $_i -gt 1200 ] || ! kill -0 "$!" 2>/dev/null; then
			cat "$T/$1.log" >&2
			bail "$1 (Azurite) did not start"
		fi
		sleep 0.1
	done
	az_port=$(cat "$T/$1.port")
	az_ep=$2://127.0.0.1:$az_port/$AZ_ACCOUNT
}

# proxy_start UPSTREAM_URL: the fault-injecting proxy in front of an http Azurite; sets proxy_port
proxy_start() {
	start_service faultproxy "$PYTHON" "$ENCFS_SRC/test/fakes/faultproxy.py" "$1"
	proxy_port=$port
}

# blobjs ARGS...: the SDK helper (test/node/blob.js), trusting the test CA
blobjs() {
	if [ -f "$T/ca/ca.pem" ]; then
		NODE_EXTRA_CA_CERTS=$T/ca/ca.pem node "$AZ_NODE/blob.js" "$@"
	else
		node "$AZ_NODE/blob.js" "$@"
	fi
}

# random_file FILE SIZE: SIZE random bytes (SIZE in bytes)
random_file() {
	head -c "$2" /dev/urandom >"$1"
}

# sparse_file FILE SIZE OFFSET:LENGTH...: a sparse file of SIZE bytes with random data at each
# OFFSET for LENGTH bytes
sparse_file() {
	_f=$1 _s=$2
	shift 2
	"$PYTHON" - "$_f" "$_s" "$@" <<'EOF'
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.truncate(size)
    for spec in sys.argv[3:]:
        off, n = (int(x) for x in spec.split(":"))
        f.seek(off)
        f.write(os.urandom(n))
EOF
}

# proxy_ctl METHOD PATH [JSON]: talks to the fault proxy's control paths; prints the answer
proxy_ctl() {
	if [ $# -ge 3 ]; then
		curl -sf -X "$1" -H 'Content-Type: application/json' --data "$3" "http://127.0.0.1:$proxy_port$2"
	else
		curl -sf -X "$1" "http://127.0.0.1:$proxy_port$2"
	fi
}

# proxy_reset: the proxy passes everything through again, its counters at zero
proxy_reset() {
	proxy_ctl DELETE /_fault >/dev/null
	proxy_ctl DELETE /_stats >/dev/null
}

# json_get JSON PATH: a value from a JSON document (PATH like by_kind.range.body_bytes)
json_get() {
	"$PYTHON" -c 'import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v[k]
print(v)' "$1" "$2"
}
