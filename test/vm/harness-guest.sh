#!/bin/sh
# Runs inside the test VM for test/vm-harness.t: prints facts as NAME=VALUE lines, which the host
# checks, and exits 7 so that the host can see the exit status come back.  It also proves the
# kernel with the oracle alone: cryptsetup opens a LUKS2 image (a virtio disk, then a regular
# file through a loop device), ext4 is made and mounted on it, a file goes in and comes back.
# shellcheck disable=SC1091 # the harness puts these under $ENCFS_SRC in the guest
. "$ENCFS_SRC/test/vm/guest.sh"

fact() { printf '%s=%s\n' "$1" "$2"; }

fact kernel "$(uname -r)"
fact pid1 "$(cat /proc/1/comm)"
fact args "$#|$1|$2"
fact env "$VM_TEST_VAR"
fact file "$(sha256sum /vm/files/payload | cut -d' ' -f1)"
fact file_dest "$(cat /opt/elsewhere/note)"
fact netdevs "$(for d in /sys/class/net/*; do printf '%s ' "${d##*/}"; done)"
for m in dm_mod dm_crypt loop ext4 fuse virtio_blk aesni_intel xts essiv algif_skcipher; do
	fact "module_$m" "$(grep -c "^$m " /proc/modules)"
done
fact dm_control "$(test -c /dev/mapper/control && echo yes)"
fact proc_keys "$(test -r /proc/keys && echo yes)"
rwdev=$(vm_disk luks.img)
rodev=$(vm_disk ro.img)
fact disk_rw "$rwdev $(blockdev --getro "$rwdev")"
fact disk_ro "$rodev $(blockdev --getro "$rodev") $(sha256sum "$rodev" | cut -d' ' -f1)"
fact tools "$(for t in cryptsetup dmsetup losetup mkfs.ext4 busybox date; do command -v $t >/dev/null && printf '%s ' $t; done)"

# cryptsetup on the virtio disk: open, table, ext4, a file written and read back, close
key=/vm/files/key
cryptsetup open --key-file "$key" "$rwdev" hv 2>&1
fact cs_open $?
fact cs_table "$(dmsetup table hv)"
fact cs_uuid "$(dmsetup info -c --noheadings -o uuid hv)"
mkfs.ext4 -q /dev/mapper/hv && mount /dev/mapper/hv /mnt && echo "through dm-crypt" >/mnt/hello &&
	umount /mnt && cryptsetup close hv
fact cs_ext4 $?
# the same filesystem through a loop device: the image as a regular file in the guest
dd if="$rwdev" of=/tmp/luks-file.img bs=1M 2>/dev/null
cryptsetup open --key-file "$key" /tmp/luks-file.img hl 2>&1
fact loop_open $?
fact loop_backing "$(losetup -l -n -O BACK-FILE)"
fact loop_table_dev "$(dmsetup table hl | cut -d' ' -f7)"
mount -o ro /dev/mapper/hl /mnt && fact loop_read "$(cat /mnt/hello)" && umount /mnt
cryptsetup close hl
fact loop_after_close "$(losetup -l -n | wc -l) $(dmsetup ls | grep -c -v 'No devices found')"

echo "to stderr" >&2
exit 7
