#!/bin/sh
# Runs inside the VM for test/bench/ready.sh: encfs.sh started BENCH_RUNS times with each
# configuration of /vm/files/cfg (MODE-SIZE), timed from the start to the file readable at the
# mount point.  Prints "ready MODE SIZE MEDIAN_MS PEAK_SHM_KIB" lines.
# shellcheck disable=SC1091 # the harness puts it under $ENCFS_SRC in the guest
. "$ENCFS_SRC/test/vm/guest.sh"
F=/vm/files
export ENCFS_IMDS_ENDPOINT="http://10.0.2.100:$IMDS_PORT"
shm_kib() { df -k /dev/shm | awk 'NR == 2 {print $3}'; }
for c in mount-64M mount-4G download-64M download-4G; do
	: >/tmp/times
	peak=0
	n=0
	while [ "$n" -lt "$BENCH_RUNS" ]; do
		base=$(shm_kib)
		t0=$(vm_now)
		EncfsSideCarArgs=$(cat "$F/cfg/$c") encfs.sh --cacert "$F/ca.pem" --allow-raw-key 2>/tmp/err &
		pid=$!
		while [ ! -e /mnt/bench/test.txt ] && kill -0 "$pid" 2>/dev/null; do
			s=$(($(shm_kib) - base))
			[ "$s" -le "$peak" ] || peak=$s
			sleep 0.02
		done
		t1=$(vm_now)
		[ -e /mnt/bench/test.txt ] || { cat /tmp/err >&2; exit 1; }
		s=$(($(shm_kib) - base))
		[ "$s" -le "$peak" ] || peak=$s
		awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%d\n", (b - a) * 1000}' >>/tmp/times
		kill -TERM "$pid"
		wait "$pid" || { cat /tmp/err >&2; exit 1; }
		n=$((n + 1))
	done
	med=$(sort -n /tmp/times | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
	echo "ready ${c%-*} ${c#*-} $med $peak"
done
