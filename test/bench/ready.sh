#!/bin/sh
# Benchmark: encfs.sh's ready-time (start to the file readable at the mount point) in the test VM,
# for a 64 MiB and a 4 GiB image of the same content, with the blob mounted (encfs-fetch --mount,
# the default) and with the whole-image download ("download": true), side by side in one boot.
# Prints the median of BENCH_RUNS starts (default 3) of each and the ratio 4 GiB / 64 MiB of each
# mode (goal for the mount: <= 1.2: the ready-time does not grow with the image).  Also the peak
# memory of the work directory (/dev/shm) during a start.  Not a test: it never fails on numbers.
#
# Like make demo it runs in a network namespace of its own with the fake Azure services (test/e2e);
# needs root, KVM for sensible figures, and what `make deps` installs.
: "${ENCFS_SRC:=$(cd "$(dirname "$0")/../.." && pwd)}"
if [ -z "${ENCFS_NETNS:-}" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "ready bench: needs root (a network namespace), skipped"; exit 0; }
	exec sh "$ENCFS_SRC/test/e2e/netns.sh" sh "$0" "$@"
fi
# shellcheck disable=SC1091 # found at run time
. "$ENCFS_SRC/test/lib.sh"
# shellcheck disable=SC1091
. "$ENCFS_SRC/test/e2e/env.sh"
die() { echo "ready bench: $*" >&2; exit 1; }
missing=$(e2e_missing)
[ -z "$missing" ] || die "missing: $missing (make deps, then make)"
e2e_services >"$T/services.log" 2>&1 || { cat "$T/services.log" >&2; die "the services did not start"; }

# the same tree in both images: the ones the sidecar tests use, and 20 MiB of data to read
mkdir "$T/tree"
printf '%s\n' "$TEST_TEXT" >"$T/tree/test.txt"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$T/tree/data.bin"
head -c 32 /dev/urandom >"$T/fs.key"
for s in 64M 4G; do
	encfs-mkimage --key-file "$T/fs.key" --size "$s" -o "$T/img-$s" "$T/tree" >"$T/img-$s.out" ||
		die "cannot make the $s image"
	e2e_upload "$T/img-$s" "img-$s" 2>"$T/upload.err" || die "cannot upload the $s image: $(cat "$T/upload.err")"
done
# raw_key: the key release costs the same for both sizes and is not what this measures
hex=$(od -An -tx1 -v "$T/fs.key" | tr -d ' \n')
mkdir "$T/cfg"
for s in 64M 4G; do
	fs=$(e2e_fs /mnt/bench "img-$s" - oct-HSM VAULT)
	for mode in mount download; do
		"$PYTHON" -c 'import json, sys
d = json.loads(sys.argv[1])
del d["key"]
d["raw_key"] = sys.argv[2]
if sys.argv[3] == "download":
    d["download"] = True
print(json.dumps({"azure_filesystems": [d]}))' "$fs" "$hex" "$mode" | base64 -w0 >"$T/cfg/$mode-$s"
	done
done

# shellcheck disable=SC2046 # e2e_vm_net prints options
sh "$ENCFS_SRC/test/vm/run.sh" --mem 6144 $(e2e_vm_net) --file "$T/cfg" --file "$T/ca/ca.pem" \
	--env "IMDS_PORT=$IMDS_PORT" --env "BENCH_RUNS=${BENCH_RUNS:-3}" \
	"$ENCFS_SRC/test/vm/ready-guest.sh" >"$T/guest.out" 2>"$T/guest.err" ||
	{ tail -n 20 "$T/guest.err" >&2; cat "$T/guest.out" >&2; die "the VM run failed"; }
# guest lines: "MODE SIZE MEDIAN_MS PEAK_SHM_KIB"
echo "ready: encfs.sh start to the file readable, in the VM (median of ${BENCH_RUNS:-3} starts, raw key)"
awk '$1 == "ready" {
	t[$2 "-" $3] = $4; m[$2 "-" $3] = $5
	printf "  %-8s %-4s image: %7d ms   /dev/shm peak %8d KiB\n", $2, $3, $4, $5
}
END {
	for (i = 0; i < 2; i++) {
		mode = i ? "download" : "mount"
		if (t[mode "-64M"] > 0)
			printf "  %-8s ratio 4G/64M: %.2f\n", mode, t[mode "-4G"] / t[mode "-64M"]
	}
	if (t["download-4G"] > 0)
		printf "  4G image: mount/download: %.2f\n", t["mount-4G"] / t["download-4G"]
}' "$T/guest.out"
