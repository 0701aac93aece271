#!/bin/sh
# Runs inside the test VM for test/bench/verity.sh: open time and sequential read throughput of
# the 256 MiB file, plain (dm-crypt) and pinned (dm-verity under dm-crypt), alternating, medians
# and the ratio pinned/plain.  Plain text on stdout.
# shellcheck disable=SC1091 # the harness puts these under $ENCFS_SRC in the guest
. "$ENCFS_SRC/test/vm/guest.sh"

F=/vm/files
runs=${BENCH_RUNS:-3}
plain=$(vm_disk plain.img) || { echo "no plain.img disk"; exit 1; }
pinned=$(vm_disk pinned.img) || { echo "no pinned.img disk"; exit 1; }
mkdir -p /mnt/b

# one KIND DEV [OPTION]...: open (wall ms into $T/KIND.open), mount, read the file with a cold
# page cache (MiB/s into $T/KIND.read), unmount, close
one() {
	kind=$1 dev=$2
	shift 2
	t0=$(vm_now)
	encfs-dmsetup open --readonly --key-file "$F/key" "$@" "$dev" b || exit 1
	t1=$(vm_now)
	mount -o ro,noload /dev/mapper/b /mnt/b || exit 1
	sync
	echo 3 >/proc/sys/vm/drop_caches
	t2=$(vm_now)
	dd if=/mnt/b/big of=/dev/null bs=1M 2>/dev/null || exit 1
	t3=$(vm_now)
	umount /mnt/b
	encfs-dmsetup close b || exit 1
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }' >>"/tmp/$kind.open"
	awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.1f\n", 256 / (b - a) }' >>"/tmp/$kind.read"
}
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >/tmp/plain.open
: >/tmp/plain.read
: >/tmp/pinned.open
: >/tmp/pinned.read
i=0
while [ $i -lt "$runs" ]; do
	# shellcheck disable=SC2046 # the verity options are words
	if [ $((i % 2)) -eq 0 ]; then
		one plain "$plain"
		one pinned "$pinned" $(cat "$F/verity")
	else
		one pinned "$pinned" $(cat "$F/verity")
		one plain "$plain"
	fi
	i=$((i + 1))
done
po=$(median /tmp/plain.open) vo=$(median /tmp/pinned.open)
pr=$(median /tmp/plain.read) vr=$(median /tmp/pinned.read)
echo "verity: medians of $runs runs each in the VM ($(uname -r)), pinned (dm-verity under dm-crypt) vs plain (dm-crypt)"
printf 'open (encfs-dmsetup open)      pinned %8s ms     plain %8s ms     ratio %s\n' "$vo" "$po" \
	"$(awk -v a="$vo" -v b="$po" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')"
printf 'sequential read, 256 MiB file  pinned %8s MiB/s  plain %8s MiB/s  ratio %s\n' "$vr" "$pr" \
	"$(awk -v a="$vr" -v b="$pr" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')"
