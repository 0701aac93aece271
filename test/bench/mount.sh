#!/bin/sh
# Benchmark: encfs-fetch --mount beside rclone mount (Debian's 1.60, through a container SAS URL,
# --vfs-cache-mode off and full) on the same Azurite (plain HTTP, one machine), in one run:
#  1. sequential read of a dense 512 MiB page blob: dd bs=1M of the mounted file into a file in
#     /dev/shm, wall time (median of BENCH_RUNS rounds, default 3, the order rotating) and the
#     mount's peak RSS; goal: encfs <= 0.8 x the best rclone;
#  2. 4 KiB random reads of the same blob (test/bench/randread.py: BENCH_READS preads a mount,
#     default 500 (see az_restart), at the same random 4 KiB-aligned offsets for every tool, no
#     kernel read-ahead, each block compared with the blob's): p50 and p99 latency, each round's
#     reads pooled, and the reads that never returned; goal: encfs's p99 below rclone's best;
#  3. peak RSS (VmHWM) of encfs-fetch's server over a whole read of a dense 2 GiB blob, beside its
#     --cache-mb bound (BENCH_CACHE_MB, default 64) and its RSS when ready (before any read), and
#     rclone's (cache mode off) for the same read.
# Every measurement gets a fresh mount (and, for rclone full, an empty cache directory) and, when
# the benchmark may (root), dropped page caches; Azurite's files are then read back into the page
# cache, so that every tool meets a warm server and a cold client.  Every read is checked: the
# SHA-256 of what was read equals the blob's (a fast wrong answer is reported as WRONG BYTES).
# A read that does not end in BENCH_TIMEOUT seconds (default 60; 4 times that for the 2 GiB read)
# is stopped and counted as failed (rclone 1.60's reader waits for ever once Azurite fails its
# requests: goroutines in asyncreader.fill, no request in progress); failed measurements are left
# out of the figures and counted beside them.
# Without encfs-fetch --mount (an older build) the rclone figures are printed alone.
# shellcheck disable=SC1091,SC2154 # lib.sh gives out, err, rc, port
set -u
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"

blob_env_ready || { echo "mount bench: Azurite or the Azure SDK missing (run make deps)"; exit 0; }
command -v rclone >/dev/null || { echo "mount bench: rclone missing (run make deps)"; exit 0; }
{ command -v fusermount3 >/dev/null && [ -c /dev/fuse ]; } || { echo "mount bench: no FUSE here (fusermount3, /dev/fuse)"; exit 0; }
RUNS=${BENCH_RUNS:-3}
READS=${BENCH_READS:-500}
CACHE_MB=${BENCH_CACHE_MB:-64}
LIMIT=${BENCH_TIMEOUT:-60}
MiB=1048576

ours=encfs
if ! encfs-fetch --help 2>&1 | grep -q -- --mount; then
	echo "mount bench: this encfs-fetch has no --mount: rclone figures only"
	ours=
fi
tools="$ours rclone-off rclone-full"

# the copies of what was read go to memory, not to the disk under test's feet
SHM=$(mktemp -d /dev/shm/encfs-bench.XXXXXX) || bail "cannot make a directory in /dev/shm"
mounts=""
bench_cleanup() {
	for _m in $mounts; do
		fusermount3 -u "$_m" 2>/dev/null || fusermount -u "$_m" 2>/dev/null || {
			# busy (a read in progress): stop the server, detach the mount
			[ -z "${pid:-}" ] || kill "$pid" 2>/dev/null
			fusermount3 -u -z "$_m" 2>/dev/null
		}
	done
	rm -rf "$SHM"
	_cleanup
}
trap bench_cleanup EXIT

if [ "$(date +%N)" != N ] && [ -n "$(date +%N)" ]; then
	now_ms() { _n=$(date +%s%N); echo $((_n / 1000000)); }
else
	now_ms() { "$PYTHON" -c 'import time; print(int(time.time() * 1000))'; }
fi

echo "mount bench: load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
azurite_start az http
az_wrap=$!
ep=$az_ep
blobjs container "$ep" pub >/dev/null || bail "cannot create the container"

echo "mount bench: making the 512 MiB blob"
random_file "$T/dense" $((512 * MiB))
blobjs put-page "$ep" pub dense "$T/dense" >/dev/null || bail "cannot upload dense"
sum_dense=$(sha256 "$T/dense")
# the SAS URLs made before any clock runs (node takes a while to start)
sas=$(blobjs sas "$ep" pub)
sas_dense=$(blobjs sas "$ep" pub dense)

# az_restart: a new Azurite on the same data, on a new port, and new SAS URLs for it.  Azurite
# keeps the files of a blob open after a client dropped a ranged GET before its end (rclone does on
# every seek, a 128 MiB range at a time): they pile up to its open file limit (20000 here), where it
# fails every request and rclone 1.60's reader waits for ever.  So every measurement starts with a
# server of its own, and the files each one left open are counted (az_files).  rclone off leaves
# about 28 a random read (a 128 MiB range over 4 MiB extents): at 700 reads it hits the limit, so
# a measurement makes 500 by default.
az_restart() {
	kill "$az_wrap"
	wait "$az_wrap" 2>/dev/null
	_pids=$(echo "$_pids " | sed "s/ $az_wrap / /")
	rm -f "$T/az.port"
	azurite_start az http
	az_wrap=$!
	ep=$az_ep
	sas=$(blobjs sas "$ep" pub)
	sas_dense=$(blobjs sas "$ep" pub dense)
	[ -z "${sas_big:-}" ] || sas_big=$(blobjs sas "$ep" pub big)
}

# az_files: how many files Azurite's node process holds open ("-" if unknown)
az_files() {
	_azp=$(pgrep -f -- "--location $T/az " | tail -n 1)
	if [ -n "$_azp" ] && [ -d "/proc/$_azp/fd" ]; then find "/proc/$_azp/fd" -mindepth 1 -maxdepth 1 | wc -l | tr -d ' '; else echo -; fi
}

# cold: a new server (az_restart), a cold client (page caches dropped, when root), the server's
# files read back into the page cache (a warm server).  Says once whether it could drop the caches.
dropped=
cold() {
	az_restart
	sync
	if echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
		[ -n "$dropped" ] || echo "mount bench: page caches dropped before every measurement"
		dropped=1
	else
		[ -n "$dropped" ] || echo "mount bench: cannot drop page caches (not root?): fresh mounts only"
		dropped=0
	fi
	find "$T/az" -type f -exec cat {} + >/dev/null
}

# mnt TOOL BLOB: mounts BLOB with TOOL at a new directory; sets dir, file (the blob's path in it)
# and pid (the server)
n=0
mnt() {
	n=$((n + 1))
	dir=$T/m.$n
	mkdir "$dir"
	mounts="$mounts $dir"
	case $1 in
	encfs)
		case $2 in dense) _url=$sas_dense ;; *) _url=$sas_big ;; esac
		# shellcheck disable=SC2086 # the options, if any
		pid=$(printf '%s\n' "$_url" | encfs-fetch --allow-http --mount "$dir" ${mnt_opts:-} -) ||
			bail "encfs-fetch --mount failed"
		file=$dir/data ;;
	rclone-*)
		RCLONE_CONFIG_AZ_TYPE=azureblob RCLONE_CONFIG_AZ_SAS_URL=$sas \
			rclone mount --read-only --vfs-cache-mode "${1#rclone-}" --cache-dir "$T/rclone-cache.$n" \
			az:pub "$dir" >"$T/rclone.$n.log" 2>&1 &
		pid=$!
		file=$dir/$2
		_i=0
		until [ -r "$file" ]; do
			_i=$((_i + 1))
			if [ $_i -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
				cat "$T/rclone.$n.log" >&2
				bail "rclone mount did not start"
			fi
			sleep 0.05
		done ;;
	esac
}

# hwm: the server's peak RSS so far, in KiB
hwm() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status"
}

# umnt DIR: unmounts DIR and waits for the server to end (after 30 s, SIGTERM; 10 s more, SIGKILL)
umnt() {
	_i=0
	if ! fusermount3 -u "$1" 2>/dev/null && ! fusermount -u "$1" 2>/dev/null; then
		# busy: a reader stuck in a request the server never answers; stopping the server ends it
		echo "mount bench: cannot unmount $1 (busy): SIGTERM to its server" >&2
		kill "$pid"
		_i=300
	fi
	while kill -0 "$pid" 2>/dev/null; do
		_i=$((_i + 1))
		if [ $_i -eq 299 ]; then
			echo "mount bench: the server of $1 did not end in 30 s after the unmount: SIGTERM" >&2
			kill "$pid"
		elif [ $_i -eq 400 ]; then
			echo "mount bench: the server of $1 did not end: SIGKILL" >&2
			kill -9 "$pid"
			fusermount3 -u -z "$1" 2>/dev/null
		fi
		sleep 0.1
	done
	wait "$pid" 2>/dev/null
	# a server that ended without unmounting leaves a dead mount: detach it
	if grep -q " $1 " /proc/mounts; then fusermount3 -u -z "$1" 2>/dev/null || fusermount -u -z "$1"; fi
	mounts=$(echo "$mounts" | sed "s| $1||")
	rmdir "$1"
	rm -rf "$T/rclone-cache.$n"
}

# order ROUND: the tools, rotated by ROUND (each goes first as often as the others)
order() {
	_round=$1
	# shellcheck disable=SC2086 # a list of names
	set -- $tools
	_k=0
	while [ $_k -lt $((_round % $#)) ]; do
		_f=$1
		shift
		set -- "$@" "$_f"
		_k=$((_k + 1))
	done
	echo "$@"
}

# failed KIND TOOL WHY: a measurement that gave no figure (counted, said on stderr)
failed() {
	echo "mount bench: $2 $1: $3" >&2
	echo "$3" >>"$T/failed.$1.$2"
}

# nfailed KIND TOOL: how many measurements of KIND by TOOL gave no figure
nfailed() {
	if [ -f "$T/failed.$1.$2" ]; then wc -l <"$T/failed.$1.$2" | tr -d ' '; else echo 0; fi
}

# 1. sequential
seq_once() {
	cold
	_t0=$(now_ms)
	mnt "$1" dense
	_t1=$(now_ms)
	_rc=0
	timeout -k 5 "$LIMIT" dd if="$file" of="$SHM/got" bs=1M 2>"$T/dd.err" || _rc=$?
	_t2=$(now_ms)
	_h=$(hwm)
	az_files >>"$T/azfd.seq.$1"
	umnt "$dir"
	if [ $_rc -ne 0 ]; then
		failed seq "$1" "dd exit $_rc (124: no end in $LIMIT s): $(tail -n 1 "$T/dd.err")"
	elif [ "$(sha256 "$SHM/got")" != "$sum_dense" ]; then
		failed seq "$1" "WRONG BYTES"
	else
		echo $((_t1 - _t0)) >>"$T/ready.$1"
		echo $((_t2 - _t1)) >>"$T/seq.$1"
		echo "$_h" >>"$T/hwm.$1"
	fi
	rm -f "$SHM/got"
}

# median FILE: the median of the numbers in FILE ("-" without any)
median() {
	if [ -s "$1" ]; then
		sort -n "$1" | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
	else
		echo -
	fi
}

# azfd_line KIND: the most files Azurite held open at the end of a measurement of KIND, by tool
azfd_line() {
	_l="  Azurite's open files at the end of a measurement (most):"
	for _t in $tools; do _l="$_l $_t $(sort -n "$T/azfd.$1.$_t" 2>/dev/null | tail -n 1)"; done
	echo "$_l"
}

# div A B FORMAT: A / B, or "-" when either is missing
div() {
	case $1$2 in *-*) echo - ;; *) awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { printf f, a / b }' ;; esac
}

r=0
while [ $r -lt "$RUNS" ]; do
	for tool in $(order $r); do seq_once "$tool"; done
	r=$((r + 1))
done
echo "mount bench: sequential read of 512 MiB (dd bs=1M), median of $RUNS round(s)"
printf '  %-12s %9s %9s %8s %9s %13s %7s\n' tool seconds MiB/s ours/it "ready ms" "peak RSS MiB" failed
best=
for tool in $tools; do
	t=$(median "$T/seq.$tool")
	ratio=-
	[ -n "$ours" ] && ratio=$(div "$(median "$T/seq.$ours")" "$t" %.2f)
	printf '  %-12s %9s %9s %8s %9s %13s %7s\n' "$tool" "$(div "$t" 1000 %.2f)" "$(div 512000 "$t" %.0f)" \
		"$ratio" "$(median "$T/ready.$tool")" "$(div "$(median "$T/hwm.$tool")" 1024 %.1f)" "$(nfailed seq "$tool")"
	case $tool$t in rclone-*-) ;; rclone-*)
		if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t bestname=$tool; fi ;;
	esac
done
# the reference: the same blob downloaded whole by encfs-fetch -o (the dense-download speed)
r=0
while [ $r -lt "$RUNS" ]; do
	cold
	_t0=$(now_ms)
	printf '%s\n' "$sas_dense" | encfs-fetch --allow-http -o "$SHM/got" - || echo "mount bench: encfs-fetch -o failed" >&2
	_t1=$(now_ms)
	[ "$(sha256 "$SHM/got")" = "$sum_dense" ] || echo "mount bench: encfs-fetch -o: WRONG BYTES" >&2
	rm -f "$SHM/got"
	echo $((_t1 - _t0)) >>"$T/seq.download"
	r=$((r + 1))
done
t=$(median "$T/seq.download")
echo "  (encfs-fetch -o, the whole blob downloaded, for reference: $(awk -v t="$t" 'BEGIN { printf "%.2f s, %.0f MiB/s", t / 1000, 512000 / t }'))"
azfd_line seq
if [ -n "$ours" ] && [ -n "$best" ]; then
	ratio=$(div "$(median "$T/seq.$ours")" "$best" %.2f)
	[ "$ratio" = - ] || echo "  sequential: encfs/best rclone ($bestname) = $ratio (goal <= 0.8: $(awk -v r="$ratio" 'BEGIN { print (r <= 0.8) ? "met" : "NOT met" }'))"
fi

# 2. random 4 KiB reads: each read checked against the blob's bytes ($T/dense); a round stopped at
# a read that never returns keeps the reads before it, and the hung read is counted
rand_once() {
	cold
	mnt "$1" dense
	: >"$T/lat.new"
	_rc=0
	timeout -k 5 "$LIMIT" "$PYTHON" "$ENCFS_SRC/test/bench/randread.py" "$file" "$READS" 12 "$T/dense" "$T/lat.new" \
		>/dev/null 2>"$T/rr.err" || _rc=$?
	az_files >>"$T/azfd.rand.$1"
	umnt "$dir"
	case $_rc in
	0) ;;
	124 | 137)
		echo 1 >>"$T/hung.$1"
		failed rand "$1" "read $(($(wc -l <"$T/lat.new") + 1)) of $READS did not return in $LIMIT s" ;;
	2)
		failed rand "$1" "WRONG BYTES: $(cat "$T/rr.err")"
		: >"$T/lat.new" ;;
	*) failed rand "$1" "randread.py exit $_rc: $(cat "$T/rr.err")" ;;
	esac
	cat "$T/lat.new" >>"$T/lat.$1"
	rm -f "$T/lat.new"
}

r=0
while [ $r -lt "$RUNS" ]; do
	for tool in $(order $r); do rand_once "$tool"; done
	r=$((r + 1))
done
rm -f "$T/dense"
# pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE
pct() {
	if [ -s "$1" ]; then
		sort -n "$1" | awk -v p="$2" '{ a[NR] = $1 } END { k = int((p * NR + 99) / 100); if (k < 1) k = 1; print a[k] }'
	else
		echo -
	fi
}
echo "mount bench: $READS random 4 KiB reads a round, $RUNS round(s) pooled, latency in ms; reads:"
echo "  those that returned (each checked), hung: reads that never did (stopped after $LIMIT s)"
printf '  %-12s %8s %8s %8s %8s %6s %5s %11s\n' tool p50 p99 max mean reads hung "p99 ours/it"
best=
for tool in $tools; do
	p99=$(pct "$T/lat.$tool" 99)
	ratio=-
	[ -n "$ours" ] && ratio=$(div "$(pct "$T/lat.$ours" 99)" "$p99" %.2f)
	mean=-
	[ -s "$T/lat.$tool" ] && mean=$(awk '{ s += $1 } END { printf "%.0f", s / NR }' "$T/lat.$tool")
	nreads=0
	[ -f "$T/lat.$tool" ] && nreads=$(wc -l <"$T/lat.$tool" | tr -d ' ')
	nhung=0
	[ -f "$T/hung.$tool" ] && nhung=$(wc -l <"$T/hung.$tool" | tr -d ' ')
	printf '  %-12s %8s %8s %8s %8s %6s %5s %11s\n' "$tool" "$(div "$(pct "$T/lat.$tool" 50)" 1000 %.3f)" \
		"$(div "$p99" 1000 %.3f)" "$(div "$(pct "$T/lat.$tool" 100)" 1000 %.3f)" "$(div "$mean" 1000 %.3f)" \
		"$nreads" "$nhung" "$ratio"
	case $tool$p99 in rclone-*-) ;; rclone-*)
		if [ -z "$best" ] || [ "$p99" -lt "$best" ]; then best=$p99 bestname=$tool; fi ;;
	esac
done
azfd_line rand
if [ -n "$ours" ] && [ -n "$best" ]; then
	ratio=$(div "$(pct "$T/lat.$ours" 99)" "$best" %.2f)
	[ "$ratio" = - ] || echo "  random p99: encfs/best rclone ($bestname) = $ratio (goal < 1: $(awk -v r="$ratio" 'BEGIN { print (r < 1) ? "met" : "NOT met" }'))"
fi

# 3. memory over a whole read of 2 GiB
echo "mount bench: making the 2 GiB blob"
random_file "$T/big" $((2048 * MiB))
blobjs put-page "$ep" pub big "$T/big" >/dev/null || bail "cannot upload big"
sum_big=$(sha256 "$T/big")
sas_big=$(blobjs sas "$ep" pub big)
rm -f "$T/big"
echo "mount bench: peak RSS over a whole read of 2 GiB (dd bs=1M | sha256sum)"
printf '  %-12s %9s %13s %10s  %s\n' tool seconds "peak RSS MiB" "bound MiB" check
for tool in $ours rclone-off; do
	cold
	mnt_opts=
	[ "$tool" = encfs ] && mnt_opts="--cache-mb $CACHE_MB"
	mnt "$tool" big
	mnt_opts=
	h0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
	_t0=$(now_ms)
	sum=$(stage dd timeout -k 5 $((4 * LIMIT)) dd if="$file" bs=1M 2>"$T/dd.err" | sha256sum | cut -d' ' -f1)
	_t1=$(now_ms)
	_rc=$(stage_rc dd)
	h=$(hwm)
	umnt "$dir"
	if [ "$_rc" != 0 ]; then
		check="FAILED: dd exit $_rc (124: no end in $((4 * LIMIT)) s): $(tail -n 1 "$T/dd.err")"
	elif [ "$sum" != "$sum_big" ]; then
		check="WRONG BYTES"
	else
		check="sha256 ok"
	fi
	bound=-
	[ "$tool" = encfs ] && bound=$CACHE_MB
	printf '  %-12s %9s %13s %10s  %s\n' "$tool" "$(div $((_t1 - _t0)) 1000 %.2f)" "$(div "$h" 1024 %.1f)" "$bound" "$check"
	[ "$tool" = encfs ] && echo "  encfs peak RSS - cache bound = $(awk -v k="$h" -v b="$CACHE_MB" 'BEGIN { printf "%.1f", k / 1024 - b }') MiB (goal: a few MiB at most); RSS when ready, before any read: $(div "$h0" 1024 %.1f) MiB"
done
echo "mount bench: load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
