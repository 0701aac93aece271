#!/bin/sh
# Benchmark: a streaming read through encfs-fetch --mount beside encfs-fetch -o (the dense
# download of the same blob) when the network, not the CPU, is what limits them, as between a
# container and Azure Storage.  Both run in a network namespace of the benchmark's own whose
# loopback is shaped by tc (a token bucket of BENCH_RATE, default 800mbit), with an Azurite of its
# own inside it.  A dense 256 MiB page blob; BENCH_RUNS rounds (default 3), the order alternating
# (page caches dropped, the server's files read back before each measurement); every read checked
# (SHA-256).  Prints the medians and mount/download; goal: the mount reads at the dense download's
# speed (a ratio of times near 1).  test/bench/mount.sh measures the same on the bare loopback,
# where the two share two cores with Azurite and the CPU is the limit.
# Needs root (ip netns, tc); without, it says so and ends.
# shellcheck disable=SC1091,SC2154 # lib.sh gives T; blobenv.sh az_ep
set -u
if [ "${1:-}" != --inside ]; then
	if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
		echo "mount-net bench: needs root, ip(8) and tc(8) (a network namespace with a shaped loopback): not run"
		exit 0
	fi
	ns=encfs-bench-$$
	ip netns add "$ns" || { echo "mount-net bench: cannot make a network namespace: not run"; exit 0; }
	rc=0
	ip netns exec "$ns" sh "$0" --inside || rc=$?
	ip netns del "$ns"
	exit $rc
fi

. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"
blob_env_ready || { echo "mount-net bench: Azurite or the Azure SDK missing (run make deps)"; exit 0; }
{ command -v fusermount3 >/dev/null && [ -c /dev/fuse ]; } || { echo "mount-net bench: no FUSE here"; exit 0; }
RATE=${BENCH_RATE:-800mbit}
RUNS=${BENCH_RUNS:-3}
MiB=1048576

ip link set lo up || bail "cannot bring the namespace's loopback up"
tc qdisc add dev lo root tbf rate "$RATE" burst 1mb latency 100ms || bail "tc cannot shape the loopback"
echo "mount-net bench: loopback of a namespace of its own shaped to $RATE; load average $(cut -d' ' -f1-3 /proc/loadavg)"

now_ms() { _n=$(date +%s%N); echo $((_n / 1000000)); }
median() { sort -n "$1" | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

azurite_start az http
blobjs container "$az_ep" pub >/dev/null || bail "cannot create the container"
random_file "$T/dense" $((256 * MiB))
blobjs put-page "$az_ep" pub dense "$T/dense" >/dev/null || bail "cannot upload the blob"
want=$(sha256 "$T/dense")
rm -f "$T/dense"
blobjs sas "$az_ep" pub dense >"$T/url" || bail "no SAS"

SHM=$(mktemp -d /dev/shm/encfs-bench.XXXXXX) || bail "cannot make a directory in /dev/shm"
mkdir "$T/m"
cold() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
	find "$T/az" -type f -exec cat {} + >/dev/null
}
# check TOOL: the copy's bytes are the blob's
check() {
	[ "$(sha256 "$SHM/got")" = "$want" ] || bail "$1: WRONG BYTES"
	rm -f "$SHM/got"
}
download() {
	cold
	_t0=$(now_ms)
	encfs-fetch --allow-http -o "$SHM/got" - <"$T/url" || bail "encfs-fetch -o failed"
	echo $(($(now_ms) - _t0)) >>"$T/t.download"
	check download
}
mount_read() {
	cold
	pid=$(encfs-fetch --allow-http --mount "$T/m" - <"$T/url") || bail "encfs-fetch --mount failed"
	_t0=$(now_ms)
	dd if="$T/m/data" of="$SHM/got" bs=1M 2>/dev/null || bail "dd of the mount failed"
	echo $(($(now_ms) - _t0)) >>"$T/t.mount"
	fusermount3 -u "$T/m" || bail "cannot unmount"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	check mount
}
r=0
while [ $r -lt "$RUNS" ]; do
	if [ $((r % 2)) -eq 0 ]; then download; mount_read; else mount_read; download; fi
	r=$((r + 1))
done
rmdir "$SHM"
d=$(median "$T/t.download")
m=$(median "$T/t.mount")
echo "mount-net bench: 256 MiB, medians of $RUNS rounds"
printf '  %-36s %8s %8s\n' what ms MiB/s
printf '  %-36s %8s %8s\n' "encfs-fetch -o (dense download)" "$d" "$(awk -v t="$d" 'BEGIN { printf "%.0f", 256000 / t }')"
printf '  %-36s %8s %8s\n' "dd bs=1M of encfs-fetch --mount" "$m" "$(awk -v t="$m" 'BEGIN { printf "%.0f", 256000 / t }')"
echo "  mount/download time = $(awk -v a="$m" -v b="$d" 'BEGIN { printf "%.2f", a / b }') (goal: about 1, the download's speed)"
