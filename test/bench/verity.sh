#!/bin/sh
# Benchmark: what pinning an image costs, in the test VM (Debian's kernel under qemu: dm-verity
# and dm-crypt need a kernel of their own).  The same 256 MiB file in two images made by
# encfs-mkimage, one plain and one with --verity; in the VM, in alternating order, BENCH_RUNS
# (default 3) times each: the wall time of `encfs-dmsetup open` (with the verity options: dm-verity
# under dm-crypt, its root checked by a read) and the sequential read throughput of the file
# (page cache dropped, dd bs=1M) from the read-only ext4 on it.  Prints the medians and the ratio
# verity/plain.  Not a test: it never fails on the numbers.
set -eu
: "${ENCFS_SRC:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${ENCFS_BIN:=$ENCFS_SRC/build/bin}"
PATH=$ENCFS_BIN:$PATH:/usr/sbin:/sbin
for c in mke2fs qemu-system-x86_64 busybox; do
	command -v $c >/dev/null 2>&1 || { echo "verity bench: $c not installed, skipped"; exit 0; }
done
[ "$(id -u)" -eq 0 ] || { echo "verity bench: needs root (the VM's disks), skipped"; exit 0; }

T=$(mktemp -d "${TMPDIR:-/tmp}/encfs-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir "$T/tree"
head -c 268435456 /dev/urandom >"$T/tree/big"
head -c 32 /dev/urandom >"$T/key"
encfs-mkimage --key-file "$T/key" -o "$T/plain.img" "$T/tree" >"$T/plain.out"
t0=$(date +%s%N)
encfs-mkimage --verity --key-file "$T/key" -o "$T/pinned.img" "$T/tree" >"$T/pinned.out"
t1=$(date +%s%N)
v() { sed -n "s/^verity-$1 //p" "$T/pinned.out"; }
printf '%s\n' "--verity-root-hash $(v root-hash) --verity-salt $(v salt) --verity-data-blocks $(v data-blocks) --verity-hash-offset $(v hash-offset)" >"$T/verity"
echo "verity: encfs-mkimage --verity of a 256 MiB file: $(((t1 - t0) / 1000000)) ms; the tree adds $(($(stat -c %s "$T/pinned.img") - $(stat -c %s "$T/plain.img"))) bytes"
sh "$ENCFS_SRC/test/vm/run.sh" --mem 1024 --disk-ro "$T/plain.img" --disk-ro "$T/pinned.img" \
	--file "$T/key" --file "$T/verity" --env "BENCH_RUNS=${BENCH_RUNS:-3}" \
	"$ENCFS_SRC/test/vm/verity-bench-guest.sh" >"$T/guest.out" 2>"$T/guest.err" || {
	echo "verity bench: the VM run failed:"
	tail -n 20 "$T/guest.out" "$T/guest.err"
	exit 1
}
cat "$T/guest.out"
