#!/bin/sh
# Benchmark: unlock time of `encfs-dmsetup test` against `cryptsetup open --test-passphrase` on the
# same LUKS2 images (plain files: neither needs device-mapper for this).  Images: pbkdf2 with 1000
# iterations, pbkdf2 at cryptsetup's default iteration time, argon2id with cryptsetup's defaults.
# Prints the median wall time of each and the ratio ours/cryptsetup (goal: <= 1.0).
# Not a test: it never fails on the numbers.  BENCH_RUNS overrides the runs per measurement.
set -eu
: "${ENCFS_BIN:=$(cd "$(dirname "$0")/../.." && pwd)/build/bin}"
ours=$ENCFS_BIN/encfs-dmsetup
command -v cryptsetup >/dev/null 2>&1 || { echo "dmsetup bench: cryptsetup not installed, skipped"; exit 0; }
[ -x "$ours" ] || { echo "dmsetup bench: $ours not built"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/encfs-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
printf 'benchmark key' >"$T/key"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# median_ms RUNS CMD...: median wall time of CMD in milliseconds (stdin from the key file)
median_ms() {
	runs=$1
	shift
	: >"$T/times"
	i=0
	while [ "$i" -lt "$runs" ]; do
		t0=$(now_ms)
		"$@" <"$T/key" >/dev/null 2>&1 || { echo "dmsetup bench: $* failed" >&2; exit 1; }
		echo $(($(now_ms) - t0)) >>"$T/times"
		i=$((i + 1))
	done
	sort -n "$T/times" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench NAME RUNS LUKSFORMAT-OPTIONS...
bench() {
	name=$1 runs=$2
	shift 2
	truncate -s 32M "$T/$name.img"
	cryptsetup luksFormat -q --type luks2 --key-file "$T/key" "$@" "$T/$name.img" >/dev/null 2>&1
	kdf=$("$ours" dump "$T/$name.img" |
		sed -n '/^Keyslots:/,/^Tokens/s/^\t\(PBKDF\|Iterations\|Time cost\|Memory\|Threads\): *//p' | tr '\n' ' ')
	a=$(median_ms "$runs" "$ours" test "$T/$name.img")
	b=$(median_ms "$runs" cryptsetup open --test-passphrase --key-file - "$T/$name.img")
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
	printf '%-22s %-34s encfs-dmsetup %7s ms   cryptsetup %7s ms   ratio %s\n' "$name" "($kdf)" "$a" "$b" "$ratio"
}

echo "dmsetup: unlock (median wall ms of ${BENCH_RUNS:-the default} runs), ours vs cryptsetup $(cryptsetup --version | cut -d' ' -f2)"
bench pbkdf2-1000 "${BENCH_RUNS:-21}" --pbkdf pbkdf2 --pbkdf-force-iterations 1000
bench pbkdf2-default "${BENCH_RUNS:-5}" --pbkdf pbkdf2
bench argon2id-default "${BENCH_RUNS:-5}" --pbkdf argon2id
