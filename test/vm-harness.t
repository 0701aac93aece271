#!/bin/sh
# The VM harness (test/vm/run.sh) itself: Debian's kernel boots with this tree's tools, the
# disks, files, environment and arguments reach the script, its output and exit status come
# back, there is no network device, the modules are loaded, cryptsetup really opens a LUKS2
# volume on a virtio disk and on a loop device, and a hung guest is killed and reported.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err and rc
. "$ENCFS_SRC/test/lib.sh"

vm=$ENCFS_SRC/test/vm/run.sh
command -v cryptsetup >/dev/null || bail "cryptsetup is not installed (make deps)"

# a LUKS2 image (cheap PBKDF: TCG is slow), a read-only disk, a payload file
printf 'harness key\n' >"$T/key"
truncate -s 24M "$T/luks.img"
cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--key-file "$T/key" "$T/luks.img" || bail "cryptsetup luksFormat failed"
head -c 1048576 /dev/urandom >"$T/ro.img"
head -c 4096 /dev/urandom >"$T/payload"
printf 'elsewhere\n' >"$T/note"

t0=$(date +%s)
run sh "$vm" --disk "$T/luks.img" --disk-ro "$T/ro.img" --file "$T/key" --file "$T/payload" \
	--file "$T/note:/opt/elsewhere/note" --env "VM_TEST_VAR=it's \$HOME" \
	"$ENCFS_SRC/test/vm/harness-guest.sh" "two words" "a'b"
t1=$(date +%s)
fact() { printf '%s\n' "$out" | sed -n "s/^$1=//p"; }

is "$rc" 7 "the script's exit status comes back"
like "$err" "to stderr" "the script's stderr comes back on stderr"
like "$(fact kernel)" "-amd64" "Debian's amd64 kernel booted"
is "$(fact pid1)" "init" "/init is PID 1"
is "$(fact args)" "2|two words|a'b" "arguments reach the script as they are"
is "$(fact env)" "it's \$HOME" "--env reaches the script as it is"
is "$(fact file)" "$(sha256 "$T/payload")" "--file copies a file into /vm/files"
is "$(fact file_dest)" "elsewhere" "--file SRC:DEST copies it where asked"
is "$(fact netdevs)" "lo " "no network device but lo"
for m in dm_mod dm_crypt loop ext4 fuse virtio_blk aesni_intel xts essiv algif_skcipher; do
	is "$(fact "module_$m")" 1 "module $m loaded"
done
is "$(fact dm_control)" yes "/dev/mapper/control exists"
is "$(fact proc_keys)" yes "/proc/keys is there for the keyring checks"
like "$(fact disk_rw)" "/dev/vd" "--disk is a virtio disk"
like "$(fact disk_rw)" " 0" "--disk is writable"
like "$(fact disk_ro)" " 1 $(sha256 "$T/ro.img")" "--disk-ro is read-only with the file's content"
is "$(fact tools)" "cryptsetup dmsetup losetup mkfs.ext4 busybox date " "the oracle tools are in the guest"
is "$(fact cs_open)" 0 "cryptsetup opens the LUKS2 disk in the guest"
uuid=$(cryptsetup luksUUID "$T/luks.img")
sectors=$(($(stat -c %s "$T/luks.img") / 512 - 32768))
like "$(fact cs_table)" "0 $sectors crypt aes-xts-plain64 :64:logon:cryptsetup:$uuid-d0 0 " \
	"dm-crypt table: length after the 16 MiB header, cipher, the key in the kernel keyring"
is "$(fact cs_table | cut -d' ' -f8)" 32768 "dm-crypt table: data offset 32768 sectors"
like "$(fact cs_uuid)" "CRYPT-LUKS2-$(echo "$uuid" | tr -d -)-hv" "dm uuid of cryptsetup"
is "$(fact cs_ext4)" 0 "ext4 made, mounted, written and closed on dm-crypt"
is "$(fact loop_open)" 0 "cryptsetup opens the image as a regular file"
is "$(fact loop_backing)" "/tmp/luks-file.img" "through a loop device on that file"
like "$(fact loop_table_dev)" "7:" "the dm-crypt table points at the loop device"
is "$(fact loop_read)" "through dm-crypt" "the file written before reads back through the loop device"
is "$(fact loop_after_close)" "0 0" "close leaves no loop and no dm device"
diag "harness boot and checks: $((t1 - t0)) s; $(printf '%s\n' "$out" | grep '^# vm:')"

# A guest that hangs is killed at the timeout: a failure with its partial output, not a pass.
printf '%s\n' '#!/bin/sh' 'echo "ok 1 - alive"' 'sleep 600' >"$T/hang.sh"
t0=$(date +%s)
run sh "$vm" --no-install --timeout 30 "$T/hang.sh"
t1=$(date +%s)
is "$rc" 1 "a hung guest fails"
like "$out" "ok 1 - alive" "its output up to the hang comes back"
like "$out" "not ok 2 - vm: guest killed after the 30 s timeout" "and it is reported as a failed check"
like "$out" "1..2" "closing the plan the script never printed"
ok "$([ $((t1 - t0)) -lt 60 ] && echo 0 || echo 1)" "killed within the timeout ($((t1 - t0)) s)"

done_testing
