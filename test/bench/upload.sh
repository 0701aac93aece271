#!/bin/sh
# Benchmark: encfs-fetch --upload beside rclone (Debian's 1.60, through a container SAS URL) on
# Azurite (plain HTTP, one machine), in one run, for a 4 GiB sparse image holding 50 MiB of data
# (160 runs of 256 KiB and 2560 blocks of 4 KiB, spread over the image, as a file system's data and
# metadata would be).  rclone knows block blobs only: it reads the holes as zeros and sends every
# byte.  A second peer shows what Azurite itself allows: the Azure JS SDK writing the same pages
# (test/node/blob.js put-page: the non-zero pages found by reading the whole file, uploadPages 8 at
# once).  Prints the wall time of each (median of BENCH_RUNS rounds, default 1, the order rotating),
# the request body bytes each sent (counted at the fault proxy, one extra run of each) and the
# ratios ours/peer.  The blob encfs-fetch made is downloaded again and compared with the image.
# Goals (issue 13's, for the upload half): bytes sent <= 1.3 x the data; time <= 0.2 x the peer's.
# shellcheck disable=SC1091,SC2154 # lib.sh gives out, err, rc, port
set -u
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"

blob_env_ready || { echo "upload bench: Azurite or the Azure SDK missing (run make deps)"; exit 0; }
command -v rclone >/dev/null || { echo "upload bench: rclone missing (run make deps)"; exit 0; }
RUNS=${BENCH_RUNS:-1}
MiB=1048576
GiB=1073741824

azurite_start az http
proxy_start "http://127.0.0.1:$az_port"
ep=$az_ep
pep=http://127.0.0.1:$proxy_port/$AZ_ACCOUNT
blobjs container "$ep" bench >/dev/null || bail "cannot create the container"

echo "upload bench: making the image"
"$PYTHON" - "$T/image" <<'PY'
import os, sys
KiB, MiB = 1024, 1 << 20
with open(sys.argv[1], "wb") as f:
    f.truncate(4 << 30)
    for i in range(160):                 # 40 MiB in runs of 256 KiB
        f.seek(i * 25 * MiB + (i * 7 % 13) * 64 * KiB)
        f.write(os.urandom(256 * KiB))
    for i in range(2560):                # 10 MiB in blocks of 4 KiB
        f.seek(i * 1600 * KiB + 12 * KiB + (i % 17) * 4 * KiB)
        f.write(os.urandom(4 * KiB))
PY
data=$(($(stat -c '%b * %B' "$T/image")))
want=$(sha256 "$T/image")
echo "upload bench: image 4 GiB, $((data / MiB)) MiB of data (du)"

if [ "$(date +%N)" != N ] && [ -n "$(date +%N)" ]; then
	now_ms() { _n=$(date +%s%N); echo $((_n / 1000000)); }
else
	now_ms() { "$PYTHON" -c 'import time; print(int(time.time() * 1000))'; }
fi

# up TOOL ENDPOINT: one upload of the image by TOOL to ENDPOINT (a blob of the tool's name)
up() {
	case $1 in
	encfs-fetch)
		blobjs sas-write "$2" bench ours | encfs-fetch --allow-http --force --upload "$T/image" - ;;
	rclone)
		# --ignore-times: upload even when the blob there looks the same (it does, after a run)
		RCLONE_CONFIG_AZ_TYPE=azureblob RCLONE_CONFIG_AZ_SAS_URL=$(blobjs sas-container-write "$2" bench) \
			rclone copyto --ignore-times "$T/image" az:bench/rclone ;;
	js-put-page)
		blobjs put-page "$2" bench js "$T/image" >/dev/null ;;
	esac
}

# once TOOL: one timed upload; appends its milliseconds to $T/times.TOOL
once() {
	sync
	_t0=$(now_ms)
	up "$1" "$ep" 2>"$T/up.err" || { cat "$T/up.err" >&2; echo "upload bench: $1 failed" >&2; }
	_t1=$(now_ms)
	echo $((_t1 - _t0)) >>"$T/times.$1"
}

median() {
	sort -n "$T/times.$1" |
		awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f\n", m / 1000 }'
}

# sent TOOL: request body bytes of one upload by TOOL, counted at the proxy
sent() {
	proxy_ctl DELETE /_stats >/dev/null
	up "$1" "$pep" 2>"$T/up.err" || { cat "$T/up.err" >&2; echo "upload bench: $1 failed" >&2; }
	json_get "$(proxy_ctl GET /_stats)" sent_bytes
}

tools="encfs-fetch rclone js-put-page"
r=0
while [ "$r" -lt "$RUNS" ]; do
	# rotate the order: each tool goes first as often as the others
	# shellcheck disable=SC2086 # a list of names
	set -- $tools
	k=0
	while [ $k -lt $((r % 3)) ]; do
		_first=$1
		shift
		set -- "$@" "$_first"
		k=$((k + 1))
	done
	for tool in "$@"; do once "$tool"; done
	r=$((r + 1))
done

# the blobs are what they should be
rm -f "$T/got"
blobjs sas "$ep" bench ours | encfs-fetch --allow-http -o "$T/got" - || echo "upload bench: download failed" >&2
[ "$(sha256 "$T/got")" = "$want" ] || echo "upload bench: encfs-fetch's blob: WRONG BYTES" >&2
rm -f "$T/got"
[ "$(json_get "$(blobjs props "$ep" bench rclone)" size)" = $((4 * GiB)) ] || echo "upload bench: rclone's blob: WRONG SIZE" >&2

echo "upload bench: 4 GiB image, $data bytes of data; wall time median of $RUNS round(s)"
printf '  %-12s %10s %9s %16s %10s %11s\n' tool seconds ours/peer "bytes sent" sent/data "ours/peer"
ours=$(median encfs-fetch)
ours_b=$(sent encfs-fetch)
for tool in $tools; do
	t=$(median "$tool")
	b=$(sent "$tool")
	[ "$tool" = encfs-fetch ] && b=$ours_b
	printf '  %-12s %10s %9s %16s %10s %11s\n' "$tool" "$t" "$(awk -v a="$ours" -v b="$t" 'BEGIN { printf "%.3f", a / b }')" \
		"$b" "$(awk -v a="$b" -v b="$data" 'BEGIN { printf "%.3f", a / b }')" \
		"$(awk -v a="$ours_b" -v b="$b" 'BEGIN { printf "%.4f", b ? a / b : 0 }')"
	[ "$tool" = rclone ] && tr=$(awk -v a="$ours" -v b="$t" 'BEGIN { printf "%.3f", a / b }')
done
echo "  encfs-fetch/rclone time: $tr (goal <= 0.2: $(awk -v r="$tr" 'BEGIN { print (r <= 0.2) ? "met" : "NOT met" }'))"
echo "  encfs-fetch bytes sent / data: $(awk -v a="$ours_b" -v b="$data" 'BEGIN { printf "%.3f", a / b }') (goal <= 1.3: $(awk -v a="$ours_b" -v b="$data" 'BEGIN { print (a / b <= 1.3) ? "met" : "NOT met" }'))"
