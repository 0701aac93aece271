#!/bin/sh
# Benchmark: the operator's side, image creation and upload, in one run, for a tree of 50 MiB in a
# 4 GiB image: encfs-mkimage + encfs-fetch --upload (rootless, sparse end to end: only what ext4
# wrote is encrypted and sent) beside the cryptsetup path of this project's first demo and of
# upstream's users (mkfs.ext4 -d, cryptsetup reencrypt --encrypt in place: every byte of the image
# becomes ciphertext; then a dense upload with rclone, Debian's 1.60, through a container SAS URL,
# on Azurite over plain HTTP).  Prints the wall time of each step and in all, the request body bytes
# each upload sent (counted at the fault proxy), and the ratios ours/peer.
# Goals (issue 13): bytes sent <= 1.3 x the tree's size; time <= 0.2 x the cryptsetup path's.
# shellcheck disable=SC1091,SC2154 # lib.sh gives out, err, rc, port
set -u
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"

blob_env_ready || { echo "mkimage bench: Azurite or the Azure SDK missing (run make deps)"; exit 0; }
for c in rclone cryptsetup mkfs.ext4; do
	command -v "$c" >/dev/null || { echo "mkimage bench: $c missing (run make deps)"; exit 0; }
done
MiB=1048576

azurite_start az http
proxy_start "http://127.0.0.1:$az_port"
pep=http://127.0.0.1:$proxy_port/$AZ_ACCOUNT
blobjs container "$az_ep" bench >/dev/null || bail "cannot create the container"

# the tree: 48 files of 1 MiB, 500 of 4 KiB, in directories (50 MiB)
mkdir -p "$T/tree"
i=0
while [ $i -lt 48 ]; do
	mkdir -p "$T/tree/d$((i % 6))"
	head -c $MiB /dev/urandom >"$T/tree/d$((i % 6))/big$i"
	i=$((i + 1))
done
"$PYTHON" -c 'import os, sys
for i in range(500):
    d = os.path.join(sys.argv[1], "small", str(i % 20))
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "f%d" % i), "wb").write(os.urandom(4096))' "$T/tree"
tree=$(du -sb "$T/tree" | cut -f1)
head -c 32 /dev/urandom >"$T/key"

if [ "$(date +%N)" != N ] && [ -n "$(date +%N)" ]; then
	now_ms() { _n=$(date +%s%N); echo $((_n / 1000000)); }
else
	now_ms() { "$PYTHON" -c 'import time; print(int(time.time() * 1000))'; }
fi
secs() { awk -v a="$1" 'BEGIN { printf "%.2f", a / 1000 }'; }
sent() { json_get "$(proxy_ctl GET /_stats)" sent_bytes; }

# ours: encfs-mkimage, then encfs-fetch --upload
proxy_ctl DELETE /_stats >/dev/null
t0=$(now_ms)
encfs-mkimage --size 4G --key-file "$T/key" -o "$T/ours.img" "$T/tree" >"$T/ours.out" || bail "encfs-mkimage failed"
t1=$(now_ms)
blobjs sas-write "$pep" bench ours | encfs-fetch --allow-http --upload "$T/ours.img" - || bail "encfs-fetch --upload failed"
t2=$(now_ms)
ours_sent=$(sent)
ours_make=$((t1 - t0)) ours_up=$((t2 - t1))

# the cryptsetup path: ext4 of the same size, encrypted in place, uploaded dense
proxy_ctl DELETE /_stats >/dev/null
t0=$(now_ms)
truncate -s 4G "$T/cs.img"
mkfs.ext4 -q -d "$T/tree" "$T/cs.img" 4160M >/dev/null 2>&1 ||
	mkfs.ext4 -q -F -d "$T/tree" "$T/cs.img" >/dev/null || bail "mkfs.ext4 failed"
cryptsetup reencrypt -q --encrypt --type luks2 --key-file "$T/key" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--reduce-device-size 32M "$T/cs.img" >"$T/cs.log" 2>&1 || bail "cryptsetup reencrypt failed: $(cat "$T/cs.log")"
t1=$(now_ms)
RCLONE_CONFIG_AZ_TYPE=azureblob RCLONE_CONFIG_AZ_SAS_URL=$(blobjs sas-container-write "$pep" bench) \
	rclone copyto "$T/cs.img" az:bench/cryptsetup || bail "rclone failed"
t2=$(now_ms)
cs_sent=$(sent)
cs_make=$((t1 - t0)) cs_up=$((t2 - t1))

# what ours made opens with the key, holding the tree (cryptsetup as the oracle)
cryptsetup open --test-passphrase --key-file "$T/key" "$T/ours.img" || echo "mkimage bench: our image does not open" >&2

echo "mkimage bench: a tree of $((tree / MiB)) MiB ($tree bytes) in a 4 GiB image; one run"
printf '  %-28s %9s %9s %9s %16s %9s\n' path make upload total "bytes sent" sent/tree
printf '  %-28s %9s %9s %9s %16s %9s\n' "encfs-mkimage + --upload" "$(secs $ours_make)" "$(secs $ours_up)" \
	"$(secs $((ours_make + ours_up)))" "$ours_sent" "$(awk -v a="$ours_sent" -v b="$tree" 'BEGIN { printf "%.3f", a / b }')"
printf '  %-28s %9s %9s %9s %16s %9s\n' "cryptsetup reencrypt + rclone" "$(secs $cs_make)" "$(secs $cs_up)" \
	"$(secs $((cs_make + cs_up)))" "$cs_sent" "$(awk -v a="$cs_sent" -v b="$tree" 'BEGIN { printf "%.3f", a / b }')"
tr=$(awk -v a=$((ours_make + ours_up)) -v b=$((cs_make + cs_up)) 'BEGIN { printf "%.3f", a / b }')
br=$(awk -v a="$ours_sent" -v b="$tree" 'BEGIN { printf "%.3f", a / b }')
echo "  time ours/cryptsetup path: $tr (goal <= 0.2: $(awk -v r="$tr" 'BEGIN { print (r <= 0.2) ? "met" : "NOT met" }'))"
echo "  bytes sent ours / tree: $br (goal <= 1.3: $(awk -v r="$br" 'BEGIN { print (r <= 1.3) ? "met" : "NOT met" }'))"
