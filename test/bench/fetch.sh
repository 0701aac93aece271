#!/bin/sh
# Benchmark: encfs-fetch beside its peers on Azurite (plain HTTP, one machine), in one run:
#   rclone copy (Debian's 1.60, through a container SAS URL), curl (one stream), the Azure JS SDK
#   (BlobClient.downloadToFile, which is one stream, and downloadToBuffer with concurrency 8,
#   then written to the file), for a dense 512 MiB page blob and a sparse 1 GiB one (64 MiB of
#   data in 256 ranges).  Prints wall-time medians of BENCH_RUNS rounds (default 10; each round
#   runs every tool once, in an order balanced so that every tool follows every other equally
#   often), the ratio encfs-fetch/peer, the CPU time Azurite spent serving each tool (median; on a
#   small machine the emulator is the bottleneck), the blob bytes each tool transferred (counted at
#   a proxy, one extra run), Azurite's own throughput, and a sweep of encfs-fetch -j.
# Every tool talks to the same Azurite (same settings, warm page cache: the blobs were just
# written), with its output file on the same file system, dirty pages synced before each run.
# Wall time is that of the tool's own command, read with date +%s%N around it.  Each timed run
# comes right after an untimed run of the same tool (BENCH_WARMUP=0 turns that off): a download
# leaves Azurite work (garbage to collect) that slows the next one, and a peer pushing 1 GiB
# leaves a lot; so every tool is measured on a server in its own steady state, not in the wake of
# another tool.
# Goals: dense <= 0.8 x the best peer, sparse <= 0.2 x the best peer.
# BENCH_OUT: directory for the downloaded files (default: a temporary directory under TMPDIR).
# BENCH_LOG: file to append every run to ("tool blob ms server-cpu-ms"), for a closer look.
# shellcheck disable=SC1091,SC2154 # lib.sh gives out, err, rc, port
set -u
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"

blob_env_ready || { echo "fetch bench: Azurite or the Azure SDK missing (run make deps)"; exit 0; }
command -v rclone >/dev/null || { echo "fetch bench: rclone missing (run make deps)"; exit 0; }
RUNS=${BENCH_RUNS:-10}
WARMUP=${BENCH_WARMUP:-1}
OUT=${BENCH_OUT:-$T/out}
mkdir -p "$OUT"
MiB=1048576

azurite_start az http
az_pid=$(pgrep -f -- "--location $T/az " | head -n 1)
tick=$(getconf CLK_TCK)
proxy_start "http://127.0.0.1:$az_port"
ep=$az_ep
pep=http://127.0.0.1:$proxy_port/$AZ_ACCOUNT

echo "fetch bench: making the blobs"
random_file "$T/dense" $((512 * MiB))
set --
i=0
while [ $i -lt 256 ]; do
	set -- "$@" $((i * 4 * MiB + (i * 7 % 15) * 256 * 1024)):$((256 * 1024))
	i=$((i + 1))
done
sparse_file "$T/sparse" $((1024 * MiB)) "$@"
blobjs container "$ep" pub public >/dev/null || bail "cannot create the container"
blobjs put-page "$ep" pub dense "$T/dense" >/dev/null || bail "cannot upload dense"
blobjs put-page "$ep" pub sparse "$T/sparse" >/dev/null || bail "cannot upload sparse"
sum_dense=$(sha256 "$T/dense")
sum_sparse=$(sha256 "$T/sparse")
rm -f "$T/dense" "$T/sparse"
sas=$(blobjs sas "$ep" pub)
psas=$(blobjs sas "$pep" pub)

# dl TOOL BLOB ENDPOINT SAS DEST: one download by TOOL; the file lands at DEST
dl() {
	_tool=$1 _blob=$2 _ep=$3 _sas=$4 _dest=$5
	case $_tool in
	encfs-fetch*)
		# shellcheck disable=SC2086 # the -j option, if any, is in the tool's name
		encfs-fetch --allow-http ${_tool#encfs-fetch} -o "$_dest" "$_ep/pub/$_blob" ;;
	rclone)
		mkdir -p "$OUT/rclone" &&
			RCLONE_CONFIG_AZ_TYPE=azureblob RCLONE_CONFIG_AZ_SAS_URL=$_sas \
				rclone copy "az:pub/$_blob" "$OUT/rclone" &&
			mv "$OUT/rclone/$_blob" "$_dest" ;;
	curl) curl -sf -o "$_dest" "$_ep/pub/$_blob" ;;
	js-downloadToFile) blobjs download "$_ep/pub/$_blob" "$_dest" file ;;
	js-c8) blobjs download "$_ep/pub/$_blob" "$_dest" buffer ;;
	esac
}

# now_ms: a clock in milliseconds.  date +%s%N costs about a millisecond; starting Python for it
# (the fallback) costs 10 to 30, which would land inside every measurement
if [ "$(date +%N)" != N ] && [ -n "$(date +%N)" ]; then
	now_ms() { _n=$(date +%s%N); echo $((_n / 1000000)); }
else
	now_ms() { "$PYTHON" -c 'import time; print(int(time.time() * 1000))'; }
fi

# az_cpu_ms: CPU time (user + system, all threads) Azurite has used so far, in ms; 0 if unknown
az_cpu_ms() {
	if [ -n "$az_pid" ] && [ -r "/proc/$az_pid/stat" ]; then
		# the fields after the command name (which may hold spaces): utime is the 12th, stime the 13th
		sed 's/^.*) //' "/proc/$az_pid/stat" | awk -v t="$tick" '{ printf "%d\n", ($12 + $13) * 1000 / t }'
	else
		echo 0
	fi
}

# once TOOL BLOB: one timed download; appends its milliseconds to $T/times.TOOL.BLOB; checks the
# bytes on the first
once() {
	rm -f "$OUT/got"
	sync
	_c0=$(az_cpu_ms)
	_t0=$(now_ms)
	dl "$1" "$2" "$ep" "$sas" "$OUT/got" 2>"$T/dl.err" || { cat "$T/dl.err" >&2; echo "fetch bench: $1 $2 failed" >&2; }
	_t1=$(now_ms)
	_c1=$(az_cpu_ms)
	_f="$T/times.$(echo "$1" | tr -c 'a-zA-Z0-9\n' _).$2"
	echo $((_c1 - _c0)) >>"$T/cpu.$(echo "$1" | tr -c 'a-zA-Z0-9\n' _).$2"
	[ -z "${BENCH_LOG:-}" ] || echo "$1 $2 $((_t1 - _t0)) $((_c1 - _c0))" >>"$BENCH_LOG"
	if [ ! -f "$_f" ]; then
		_want=$sum_dense
		[ "$2" = sparse ] && _want=$sum_sparse
		[ "$(sha256 "$OUT/got")" = "$_want" ] || echo "fetch bench: $1 $2: WRONG BYTES" >&2
	fi
	echo $((_t1 - _t0)) >>"$_f"
	rm -f "$OUT/got"
}

# williams N ROUND: the order (1-based indexes) in which round ROUND runs N tools: a Williams
# design, balanced for carry-over.  One download leaves work for the next (Azurite collects the
# garbage of a peer that pushed 1 GiB through it during whatever download comes next), so every
# tool must come right after every other tool equally often, not always after the same one.  With
# N even, N orders do that; with N odd, 2N (the N orders and their mirror images).
williams() {
	_n=$1 _rows=$1
	[ $(($1 % 2)) -eq 1 ] && _rows=$((2 * $1))
	_row=$(($2 % _rows)) _rev=0
	if [ $_row -ge "$_n" ]; then
		_row=$((_row - _n)) _rev=1
	fi
	_order="" _k=0
	while [ $_k -lt "$_n" ]; do
		# the first order is 0, 1, N-1, 2, N-2, ...; the others add the row number, mod N
		if [ $_k -eq 0 ]; then
			_b=0
		elif [ $((_k % 2)) -eq 1 ]; then
			_b=$(((_k + 1) / 2))
		else
			_b=$((_n - _k / 2))
		fi
		_v=$(((_b + _row) % _n + 1))
		if [ $_rev -eq 1 ]; then _order="$_v $_order"; else _order="$_order $_v"; fi
		_k=$((_k + 1))
	done
	echo "$_order"
}

# rounds BLOB TOOL...: RUNS rounds, each running every tool once, in the order williams gives, so
# that the load of a shared machine, and the work a download leaves behind, fall on all alike
rounds() {
	_b=$1
	shift
	_r=0
	while [ $_r -lt "$RUNS" ]; do
		for _i in $(williams $# $_r); do
			eval "_tool=\${$_i}"
			if [ "$WARMUP" = 1 ]; then
				rm -f "$OUT/got"
				dl "$_tool" "$_b" "$ep" "$sas" "$OUT/got" 2>/dev/null
			fi
			once "$_tool" "$_b"
		done
		_r=$((_r + 1))
	done
}

# spread TOOL BLOB: "min-max" of the recorded times, in seconds
spread() {
	sort -n "$T/times.$(echo "$1" | tr -c 'a-zA-Z0-9\n' _).$2" |
		awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f\n", lo / 1000, hi / 1000 }'
}

# median TOOL BLOB [times|cpu]: the median of the recorded times (or Azurite CPU), in seconds
median() {
	sort -n "$T/${3:-times}.$(echo "$1" | tr -c 'a-zA-Z0-9\n' _).$2" |
		awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f\n", m / 1000 }'
}

# bytes TOOL BLOB: blob bytes the tool transferred, counted at the proxy
bytes() {
	proxy_ctl DELETE /_stats >/dev/null
	rm -f "$OUT/got"
	dl "$1" "$2" "$pep" "$psas" "$OUT/got" 2>/dev/null
	rm -f "$OUT/got"
	json_get "$(proxy_ctl GET /_stats)" body_bytes
}

echo "fetch bench: Azurite's own throughput (curl to /dev/null, dense 512 MiB):"
t0=$(now_ms)
curl -sf -o /dev/null "$ep/pub/dense"
t1=$(now_ms)
echo "  one GET:               $((t1 - t0)) ms"
t0=$(now_ms)
pids=""
for k in 0 1 2 3; do
	curl -sf -o /dev/null -H 'x-ms-version: 2021-08-06' -H "x-ms-range: bytes=$((k * 128 * MiB))-$(((k + 1) * 128 * MiB - 1))" "$ep/pub/dense" &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
t1=$(now_ms)
echo "  4 parallel 128 MiB ranges: $((t1 - t0)) ms"
t0=$(now_ms)
k=0
while [ $k -lt 32 ]; do
	curl -sf -o /dev/null -H 'x-ms-version: 2021-08-06' -H "x-ms-range: bytes=$((k * 4 * MiB))-$(((k + 1) * 4 * MiB - 1))" "$ep/pub/dense"
	k=$((k + 1))
done
t1=$(now_ms)
echo "  32 sequential 4 MiB ranges (128 MiB): $((t1 - t0)) ms"

echo "fetch bench: encfs-fetch -j sweep (median of $RUNS rounds, seconds)"
for blob in dense sparse; do
	rounds $blob "encfs-fetch -j1" "encfs-fetch -j2" "encfs-fetch -j4" "encfs-fetch -j8" "encfs-fetch -j16"
	line="  $blob:"
	for j in 1 2 4 8 16; do
		line="$line  -j $j $(median "encfs-fetch -j$j" $blob)"
	done
	echo "$line"
done

echo "fetch bench: median wall time of $RUNS rounds (seconds), output in $OUT"
printf '  %-20s %-7s %9s %11s %9s %11s %14s\n' tool blob median "min-max" ours/peer "server CPU" "bytes moved"
peers="rclone curl js-downloadToFile js-c8"
for blob in dense sparse; do
	# shellcheck disable=SC2086 # the list of peers
	rounds $blob encfs-fetch $peers
	ours=$(median encfs-fetch $blob)
	printf '  %-20s %-7s %9s %11s %9s %11s %14s\n' encfs-fetch $blob "$ours" "$(spread encfs-fetch $blob)" - \
		"$(median encfs-fetch $blob cpu)" "$(bytes encfs-fetch $blob)"
	best=""
	for tool in $peers; do
		t=$(median "$tool" $blob)
		ratio=$(awk -v a="$ours" -v b="$t" 'BEGIN { printf "%.2f", a / b }')
		printf '  %-20s %-7s %9s %11s %9s %11s %14s\n' "$tool" $blob "$t" "$(spread "$tool" $blob)" "$ratio" \
			"$(median "$tool" $blob cpu)" "$(bytes "$tool" $blob)"
		if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$t
			bestname=$tool
		fi
	done
	goal=0.8
	[ $blob = sparse ] && goal=0.2
	ratio=$(awk -v a="$ours" -v b="$best" 'BEGIN { printf "%.2f", a / b }')
	verdict=$(awk -v r="$ratio" -v g="$goal" 'BEGIN { print (r <= g) ? "met" : "NOT met" }')
	echo "  $blob: encfs-fetch/best peer ($bestname) = $ratio (goal <= $goal: $verdict)"
done
