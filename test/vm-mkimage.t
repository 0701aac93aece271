#!/bin/sh
# encfs-mkimage's image on a real kernel (Debian 12's, under qemu: test/vm/run.sh).  The image is
# made here, as nobody, sparse: 4 GiB holding 50 MiB of files and a tree of links, modes and
# owners.  In the VM the disk's holes read as zeros and so decrypt to garbage through dm-crypt,
# as a page blob's never-written pages do: cryptsetup opens it, ext4 mounts it, every file,
# mode, owner, link target and hard link equals the tree's, and e2fsck -fn finds it clean; then
# encfs-dmsetup opens it, a read-write mount writes, deletes, renames and syncs, and after the
# unmount e2fsck -fn is clean again and the writes read back.  The checks are in
# test/vm/mkimage-guest.sh; this script makes the image and boots the VM.
# shellcheck disable=SC1091 # lib.sh is found at run time
. "$ENCFS_SRC/test/lib.sh"

PATH=$PATH:/usr/sbin:/sbin
for c in mke2fs setpriv; do
	command -v $c >/dev/null || bail "$c is not installed (make deps)"
done

# The tree: 50 files of 1 MiB, and what a filesystem must keep besides contents.
D=$T/tree
mkdir -p "$D/data" "$D/a" "$D/b" "$D/shared" "$D/deep/er/and/deeper"
for i in $(seq 1 50); do
	head -c 1048576 /dev/urandom >"$D/data/file$i"
done
printf 'linked twice\n' >"$D/a/data"
ln "$D/a/data" "$D/b/same-data"
ln -s ../a/data "$D/b/short-link"
ln -s "$(printf 'x%.0s' $(seq 1 100))/dangling" "$D/b/long-link"
printf '#!/bin/sh\n' >"$D/setuid"
chmod 4755 "$D/setuid"
chmod 2775 "$D/shared"
printf 'theirs\n' >"$D/owned"
chown 1234:5678 "$D/owned"
: >"$D/empty"
printf 'down here\n' >"$D/deep/er/and/deeper/file"
mkfifo "$D/fifo"
chmod -R go+rX "$D"
chown 1234:5678 "$D"
tree_manifest "$D" >"$T/manifest"

# made as nobody, outputs and TMPDIR in a directory of nobody's
U=$T/u
mkdir -p "$U/tmp"
AS=
if [ "$(id -u)" -eq 0 ]; then
	chmod 755 "$T"
	chown -R 65534:65534 "$U"
	AS="setpriv --reuid=65534 --regid=65534 --clear-groups"
fi
# shellcheck disable=SC2086 # $AS is a command prefix or nothing
$AS env TMPDIR="$U/tmp" "$ENCFS_BIN/encfs-mkimage" --size 4G -o "$U/mk4g.img" "$D" >"$T/mk.out" 2>"$T/mk.err" ||
	bail "encfs-mkimage failed: $(cat "$T/mk.err")"
printf '# %s\n' "$(tr '\n' ' ' <"$T/mk.out")"
cp "$U/mk4g.img.key" "$T/key"

rc=0
sh "$ENCFS_SRC/test/vm/run.sh" --disk "$U/mk4g.img" --file "$T/key" --file "$T/manifest" --mem 768 \
	"$ENCFS_SRC/test/vm/mkimage-guest.sh" || rc=$?
# what the read-write mount added (ext4 zeroes its inode tables in the background once mounted
# read-write: 256 bytes per inode, as far as it got)
diag "after the read-write mount the image allocates $(($(stat -c %b "$U/mk4g.img" || echo 0) * 512)) bytes"
exit $rc
