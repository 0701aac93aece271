#!/bin/sh
# Runs inside the test VM for test/vm-mkimage.t: an image encfs-mkimage made on the host, sparse
# (its holes decrypt to garbage here), through cryptsetup and encfs-dmsetup on Debian's kernel.
# TAP on stdout.
# shellcheck disable=SC1091,SC2154 # the harness puts these under $ENCFS_SRC in the guest; run sets out, err, rc
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/vm/guest.sh"

F=/vm/files
dev=$(vm_disk mk4g.img) || bail "no mk4g.img disk"
mkdir -p /mnt/a
is "$(blockdev --getsize64 "$dev")" 4294967296 "the 4 GiB image is the disk"

# --- cryptsetup, the oracle: open, mount read-only, the tree, e2fsck ------------------------------
run cryptsetup open --key-file "$F/key" "$dev" cs
is "$rc" 0 "cryptsetup opens the image"
[ "$rc" -eq 0 ] || diag "$err"
like "$(dmsetup table cs 2>&1)" "aes-xts-plain64" "dm-crypt maps it with aes-xts-plain64"
like "$(dmsetup table cs 2>&1)" "sector_size:4096" "... in 4096-byte sectors"
run mount -o ro /dev/mapper/cs /mnt/a
is "$rc" 0 "ext4 mounts it (read-only)"
[ "$rc" -eq 0 ] || diag "$err"
tree_manifest /mnt/a >/tmp/got
run diff "$F/manifest" /tmp/got
is "$rc" 0 "every file, directory, link, mode, owner and hard link is the tree's"
[ "$rc" -eq 0 ] || diag "$(printf '%s\n' "$out" | head -20)"
umount /mnt/a
run e2fsck -fn /dev/mapper/cs
is "$rc" 0 "e2fsck -fn: clean, with every unwritten block garbage"
[ "$rc" -eq 0 ] || diag "$(printf '%s\n' "$out" | head -20)"
cryptsetup close cs

# --- encfs-dmsetup: a read-write mount that writes, then e2fsck ---------------------------------
run encfs-dmsetup open "$dev" enc <"$F/key"
is "$rc" 0 "encfs-dmsetup opens the image"
[ "$rc" -eq 0 ] || diag "$err"
run mount /dev/mapper/enc /mnt/a
is "$rc" 0 "ext4 mounts it read-write"
[ "$rc" -eq 0 ] || diag "$err"
head -c 5000000 /dev/urandom >/tmp/new.bin
want=$(sha256sum </tmp/new.bin | cut -d' ' -f1)
rc=0
(
	mkdir -p /mnt/a/new/dir &&
		cp /tmp/new.bin /mnt/a/new/dir/new.bin &&
		for i in $(seq 1 300); do printf 'small %s\n' "$i" >"/mnt/a/new/s$i" || exit 1; done &&
		rm /mnt/a/data/file7 &&
		mv /mnt/a/data/file8 /mnt/a/new/moved &&
		ln -s dir/new.bin /mnt/a/new/link &&
		sync
) || rc=$?
is "$rc" 0 "writes, deletes, renames and links, then sync"
run umount /mnt/a
is "$rc" 0 "unmounts"
run e2fsck -fn /dev/mapper/enc
is "$rc" 0 "e2fsck -fn after the read-write mount: clean"
[ "$rc" -eq 0 ] || diag "$(printf '%s\n' "$out" | head -20)"
run mount -o ro /dev/mapper/enc /mnt/a
is "$rc" 0 "mounts again (read-only)"
is "$(sha256sum </mnt/a/new/dir/new.bin | cut -d' ' -f1)" "$want" "the file written reads back"
is "$(cat /mnt/a/new/s300) $(find /mnt/a/new -mindepth 1 -maxdepth 1 | wc -l)" "small 300 303" "so do the small files, 303 names"
ok "$([ ! -e /mnt/a/data/file7 ] && [ -f /mnt/a/new/moved ]; echo $?)" "the delete and the rename stay"
is "$(grep -c '' /mnt/a/a/data) $(stat -c %h /mnt/a/a/data)" "1 2" "the hard-linked file is unchanged"
umount /mnt/a
run encfs-dmsetup close enc
is "$rc" 0 "encfs-dmsetup closes it"
is "$(dmsetup ls 2>/dev/null | grep -v '^No devices found' | cut -f1 | tr '\n' ' ')" "" "no dm device left"

done_testing
