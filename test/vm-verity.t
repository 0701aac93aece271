#!/bin/sh
# Pinned images end to end, in a real kernel: encfs.sh in the test VM fetches from Azurite an image
# made with encfs-mkimage --verity, and opens it through encfs-dmsetup as dm-verity (the root
# hash, salt and layout of the configuration's verity object) under dm-crypt.  The pinned image
# opens and every file reads; the blob replaced by an older image made with the same key (same
# size: only the root hash differs) is refused at open, exit 7, one line naming the filesystem;
# one flipped ciphertext byte in a file's block: the image opens, that file reads as EIO, every
# other file reads; after SIGTERM, or a failed start, nothing is left behind.  Raw keys (the test
# switch): key release is test/vm-sidecar.t's.  The checks in the guest are in
# test/vm/verity-guest.sh.
# shellcheck disable=SC1091,SC2154 # lib.sh and env.sh are found at run time

: "${ENCFS_SRC:=$(cd "$(dirname "$0")/.." && pwd)}"
if [ -z "${ENCFS_NETNS:-}" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "1..0 # SKIP needs root (a network namespace of its own)"
		exit 0
	fi
	exec sh "$ENCFS_SRC/test/e2e/netns.sh" sh "$0" "$@"
fi
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/e2e/env.sh"

missing=$(e2e_missing)
[ -z "$missing" ] || skip_all "missing: $missing (make deps)"
PATH=$PATH:/usr/sbin:/sbin
e2e_services || bail "the fake services did not start"

# --- images: new (pinned), old (same key, same size), new with one flipped byte -------------------
head -c 32 /dev/urandom >"$T/fs.key"
mkdir -p "$T/new/sub" "$T/old"
printf 'new\n' >"$T/new/which.txt"
printf 'old\n' >"$T/old/which.txt"
head -c 3000000 /dev/urandom >"$T/new/victim.bin"
head -c 2000000 /dev/urandom >"$T/new/sub/other.bin"
printf 'small\n' >"$T/new/small.txt"
cp "$T/new/sub/other.bin" "$T/old/"
(cd "$T/new" && find . -type f | sed 's|^\./||' | sort | while read -r f; do sha256sum "$f"; done) >"$T/sums"
for v in new old; do
	encfs-mkimage --verity --size 40M --key-file "$T/fs.key" -o "$T/$v.img" "$T/$v" >"$T/$v.out" ||
		bail "encfs-mkimage --verity $v failed"
done
field() { sed -n "s/^$2 //p" "$T/$1.out"; }
is "$(field old verity-data-blocks):$(field old verity-hash-offset)" \
	"$(field new verity-data-blocks):$(field new verity-hash-offset)" "the older image has the same layout"
unlike "$(field old verity-root-hash)" "$(field new verity-root-hash)" "... and another root hash"

# the victim's first block: the volume key from encfs-dmsetup table, the data area decrypted
# (test/mkimage.py), the block from debugfs
vk=$(encfs-dmsetup table --showkeys --no-keyring --key-file "$T/fs.key" "$T/new.img" | cut -d' ' -f5)
"$PYTHON" "$ENCFS_SRC/test/mkimage.py" decrypt "$T/new.img" "$vk" "$T/plain" || bail "cannot decrypt new.img"
blk=$(debugfs -R "bmap /victim.bin 1" "$T/plain" 2>/dev/null)
rm -f "$T/plain"
case $blk in '' | *[!0-9]*) bail "no block for victim.bin: $blk" ;; esac
cp --sparse=always "$T/new.img" "$T/flipped.img"
"$PYTHON" -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 1]))' \
	"$T/flipped.img" $((16777216 + blk * 4096 + 123)) || bail "cannot flip a byte"
diag "victim.bin's second block is filesystem block $blk"

for v in new old flipped; do
	e2e_upload "$T/$v.img" "$v.img" >/dev/null || bail "cannot upload $v.img"
done

# --- configurations: raw key, the new image's verity object ---------------------------------------
verity=$(field new verity-config)
# fs BLOB [DOWNLOAD]: the filesystem entry for blob BLOB, pinned to the new image; the whole image
# downloaded (DOWNLOAD true, the default) or the blob mounted (false: encfs-fetch --mount)
fs() {
	"$PYTHON" -c 'import json, sys
d = json.loads(sys.argv[1])
del d["key"]
d["raw_key"] = open(sys.argv[2], "rb").read().hex()
d.update(json.loads("{" + sys.argv[3] + "}"))
if sys.argv[4] == "true":
    d["download"] = True
print(json.dumps(d))' "$(e2e_fs /mnt/v "$1" - oct-HSM VAULT)" "$T/fs.key" "$verity" "${2:-true}"
}
mkdir "$T/cfg"
e2e_args "$T/cfg/pinned" "$(fs new.img)"
e2e_args "$T/cfg/rollback" "$(fs old.img)"
e2e_args "$T/cfg/flipped" "$(fs flipped.img)"
# ... and the same with the blob mounted (encfs-fetch --mount, the default)
e2e_args "$T/cfg/mounted-pinned" "$(fs new.img false)"
e2e_args "$T/cfg/mounted-rollback" "$(fs old.img false)"
e2e_args "$T/cfg/mounted-flipped" "$(fs flipped.img false)"
cfgs="pinned rollback flipped mounted-pinned mounted-rollback mounted-flipped"
for c in $cfgs; do
	encfs-config --allow-raw-key -f "$T/cfg/$c.json" check || bail "configuration $c is not valid"
	rm -f "$T/cfg/$c.json"
done
printf 'victim.bin\n' >"$T/victim"
field new verity-root-hash >"$T/root"
field new verity-data-blocks >"$T/blocks"

# --- the VM --------------------------------------------------------------------------------
# shellcheck disable=SC2046 # e2e_vm_net prints options
sh "$ENCFS_SRC/test/vm/run.sh" --mem 768 $(e2e_vm_net) --file "$T/cfg" --file "$T/ca/ca.pem" \
	--file "$T/sums" --file "$T/victim" --file "$T/root" --file "$T/blocks" --env "IMDS_PORT=$IMDS_PORT" \
	"$ENCFS_SRC/test/vm/verity-guest.sh" >"$T/guest.tap" 2>"$T/guest.err"
vm_rc=$?
e2e_guest_tap "$vm_rc" "$T/guest.tap" "$T/guest.err"
done_testing
