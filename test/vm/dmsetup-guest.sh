#!/bin/sh
# Runs inside the test VM for test/vm-dmsetup.t (the disks and /vm/files come from there):
# encfs-dmsetup against cryptsetup, the oracle, on Debian's kernel.  TAP on stdout.
# shellcheck disable=SC1091,SC2154 # the harness puts these under $ENCFS_SRC in the guest; run sets out, err, rc
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/vm/guest.sh"

F=/vm/files
key=$F/key
ext4=$(vm_disk ext4.img) || bail "no ext4.img disk"
mkdir -p /mnt/v

ok "$([ -x /usr/bin/encfs-dmsetup ] && echo 0 || echo 1)" "make install put encfs-dmsetup in /usr/bin"

# What is left of our work: dm devices, loop devices, keys of the dm-crypt kind in the keyrings.
# Unlinked keys are garbage-collected by the kernel a moment later: wait up to 3 s for that.
leftovers() {
	await_key_gc
	printf 'dm:[%s] loop:[%s] keys:[%s]' \
		"$(dmsetup ls 2>/dev/null | grep -v '^No devices found' | cut -f1 | tr '\n' ' ')" \
		"$(losetup -l -n -O NAME,BACK-FILE | tr '\n' ' ')" \
		"$(grep 'logon' /proc/keys | sed 's/.* logon *//' | tr '\n' ' ')"
}
# nothing_left DESCRIPTION: checks that nothing is left, then clears whatever was, so that one
# failure does not spill into the next checks.
nothing_left() {
	is "$(leftovers)" "dm:[] loop:[] keys:[]" "$1"
	umount /mnt/v 2>/dev/null
	for _d in $(dmsetup ls 2>/dev/null | grep -v '^No devices found' | cut -f1); do
		dmsetup remove --force "$_d" >/dev/null 2>&1
	done
	losetup -D 2>/dev/null
}
# is_rc WANT DESCRIPTION: $rc of the last run is WANT; if not, shows what the command said
is_rc() {
	is "$rc" "$1" "$2"
	[ "$rc" = "$1" ] || diag "stderr: $err"
}
# one_line_error DESCRIPTION: the last run said what failed in one line "encfs-dmsetup: ..."
one_line_error() {
	like "$err" "encfs-dmsetup: " "$1: says what failed"
	is "$(printf '%s\n' "$err" | wc -l)" 1 "$1: in one line"
}
table() { dmsetup table "$@" 2>&1; }
uuid() { dmsetup info -c --noheadings -o uuid "$1" 2>&1; }
attr() { dmsetup info -c --noheadings -o attr "$1" 2>&1; }

# --- the matrix: cryptsetup and encfs-dmsetup on each image -----------------------------------
while read -r name data hdr <&3; do
	dev=$(vm_disk "$data") || bail "no disk $data"
	set --
	[ "$hdr" = - ] || set -- --header "$(vm_disk "$hdr")"
	n=vt-$name

	# cryptsetup writes the ext4 image into the volume; for "flags" it first stores
	# allow-discards and no-read-workqueue in the header (open --persistent).
	if [ "$name" = flags ]; then
		run cryptsetup open --persistent --allow-discards --perf-no_read_workqueue --key-file "$key" "$dev" "$n"
		is_rc 0 "$name: cryptsetup open --persistent --allow-discards --perf-no_read_workqueue"
		cryptsetup close "$n"
		like "$(cryptsetup luksDump "$dev" | grep '^Flags:')" "allow-discards no-read-workqueue" \
			"$name: cryptsetup stored the persistent flags"
	fi
	run cryptsetup open "$@" --key-file "$key" "$dev" "$n"
	is_rc 0 "$name: cryptsetup open"
	dd if="$ext4" of="/dev/mapper/$n" bs=1M conv=fsync 2>/dev/null
	cs_table=$(table "$n")
	cs_uuid=$(uuid "$n")
	cryptsetup close "$n"
	[ "$name" != flags ] || like "$cs_table" "allow_discards no_read_workqueue" "$name: cryptsetup applies the flags"

	# encfs-dmsetup, the key in the kernel keyring (LUKS2; LUKS1 tables carry the key in hex)
	run encfs-dmsetup open "$@" "$dev" "$n" <"$key"
	is_rc 0 "$name: encfs-dmsetup open"
	is "$(table "$n")" "$cs_table" "$name: the dm table line of cryptsetup"
	is "$(uuid "$n")" "$cs_uuid" "$name: the dm uuid of cryptsetup"
	mount "/dev/mapper/$n" /mnt/v 2>/dev/null
	run sh -c 'cd /mnt/v && sha256sum -c /vm/files/manifest'
	is "$rc" 0 "$name: the files read back through encfs-dmsetup"
	[ "$rc" -eq 0 ] || diag "$out"
	cp "$F/written.bin" /mnt/v/sub/written.bin 2>/dev/null
	sync
	umount /mnt/v 2>/dev/null
	run encfs-dmsetup close "$n"
	is_rc 0 "$name: encfs-dmsetup close"
	nothing_left "$name: close leaves no dm device, loop device or key"

	# the other way: cryptsetup reads what encfs-dmsetup wrote; and the keys as hex
	run cryptsetup open --disable-keyring "$@" --key-file "$key" "$dev" "$n"
	cs_keys=$(table --showkeys "$n")
	mount -o ro "/dev/mapper/$n" /mnt/v 2>/dev/null
	is "$(sha256sum /mnt/v/sub/written.bin 2>&1 | cut -d' ' -f1)" "$(sha256 "$F/written.bin")" \
		"$name: a file written through encfs-dmsetup reads back through cryptsetup"
	umount /mnt/v 2>/dev/null
	cryptsetup close "$n"
	run encfs-dmsetup open --no-keyring "$@" "$dev" "$n" <"$key"
	is_rc 0 "$name: encfs-dmsetup open --no-keyring"
	is "$(table --showkeys "$n")" "$cs_keys" "$name: --no-keyring: the dm table with its hex key of cryptsetup"
	is "$(uuid "$n")" "$cs_uuid" "$name: --no-keyring: the dm uuid of cryptsetup"
	run encfs-dmsetup close "$n"
	is_rc 0 "$name: encfs-dmsetup close (--no-keyring)"
	nothing_left "$name: close leaves nothing (--no-keyring)"
done 3<"$F/cases"

# --- options ---------------------------------------------------------------------------------
dev=$(vm_disk xts512.img)
n=vt-opt

# --allow-discards
cryptsetup open --allow-discards --key-file "$key" "$dev" "$n"
cs_table=$(table "$n")
cryptsetup close "$n"
run encfs-dmsetup open --allow-discards "$dev" "$n" <"$key"
is_rc 0 "--allow-discards: encfs-dmsetup open"
like "$(table "$n")" " 1 allow_discards" "--allow-discards: the table allows discards"
is "$(table "$n")" "$cs_table" "--allow-discards: the dm table line of cryptsetup"
run encfs-dmsetup close "$n"
is_rc 0 "--allow-discards: encfs-dmsetup close"
nothing_left "--allow-discards: close leaves nothing"

# --readonly on a block device, the key from --key-file FILE
cryptsetup open --readonly --key-file "$key" "$dev" "$n"
cs_table=$(table "$n")
cs_attr=$(attr "$n")
cryptsetup close "$n"
run encfs-dmsetup open --readonly --key-file "$key" "$dev" "$n"
is_rc 0 "--readonly --key-file FILE: encfs-dmsetup open"
is "$(table "$n")" "$cs_table" "--readonly: the dm table line of cryptsetup"
is "$(attr "$n")" "$cs_attr" "--readonly: the dm attributes of cryptsetup (read-only)"
is "$(blockdev --getro "/dev/mapper/$n" 2>&1)" 1 "--readonly: the block device is read-only"
run dd if=/dev/zero of="/dev/mapper/$n" bs=4096 count=1 oflag=direct
ok "$([ "$rc" -ne 0 ] && echo 0 || echo 1)" "--readonly: a write fails"
run mount "/dev/mapper/$n" /mnt/v
is "$(grep ' /mnt/v ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)" ro "--readonly: ext4 mounts only read-only"
umount /mnt/v 2>/dev/null
run encfs-dmsetup close "$n"
is_rc 0 "--readonly: encfs-dmsetup close"
nothing_left "--readonly: close leaves nothing"

# a regular file: a loop device with autoclear, the same table as cryptsetup's, the key from stdin
file=/tmp/xts512-file.img
dd if="$dev" of="$file" bs=1M 2>/dev/null
cryptsetup open --key-file "$key" "$file" "$n"
cs_table=$(table "$n")
cryptsetup close "$n"
nothing_left "regular file: cryptsetup close leaves nothing (so the loop device numbers match)"
run encfs-dmsetup open --key-file - "$file" "$n" <"$key"
is_rc 0 "regular file, --key-file -: encfs-dmsetup open"
is "$(losetup -l -n -O BACK-FILE,AUTOCLEAR,RO | tr -s ' ')" "$file 1 0" "regular file: a read-write loop device with autoclear"
is "$(table "$n")" "$cs_table" "regular file: the dm table line of cryptsetup"
mount -o ro "/dev/mapper/$n" /mnt/v 2>/dev/null
run sh -c 'cd /mnt/v && sha256sum -c /vm/files/manifest'
is "$rc" 0 "regular file: the files read back"
[ "$rc" -eq 0 ] || diag "$out"
umount /mnt/v 2>/dev/null
run encfs-dmsetup close "$n"
is_rc 0 "regular file: encfs-dmsetup close"
nothing_left "regular file: close leaves no dm device and no loop device"

run encfs-dmsetup open --readonly "$file" "$n" <"$key"
is_rc 0 "regular file --readonly: encfs-dmsetup open"
is "$(losetup -l -n -O BACK-FILE,RO | tr -s ' ')" "$file 1" "regular file --readonly: a read-only loop device"
is "$(blockdev --getro "/dev/mapper/$n" 2>&1)" 1 "regular file --readonly: the dm device is read-only"
run encfs-dmsetup close "$n"
is_rc 0 "regular file --readonly: encfs-dmsetup close"
nothing_left "regular file --readonly: close leaves nothing"

# --- refusals leave nothing behind --------------------------------------------------------------
run encfs-dmsetup open "$dev" "$n" <"$F/wrong"
is "$rc" 7 "wrong key: refused (exit 7)"
like "$err" "no key slot matches this key" "wrong key: says so"
one_line_error "wrong key"
nothing_left "wrong key: nothing left"

run encfs-dmsetup open "$file" "$n" <"$F/wrong"
is "$rc" 7 "wrong key on a regular file: refused (exit 7)"
like "$err" "no key slot matches this key" "wrong key on a regular file: says so"
nothing_left "wrong key on a regular file: no loop device left"

run encfs-dmsetup open "$(vm_disk null.img)" "$n" <"$key"
is "$rc" 3 "hostile header, cipher_null data segment with valid checksums: refused (exit 3)"
like "$err" "cipher_null" "cipher_null: the error names the cipher"
one_line_error "cipher_null"
nothing_left "cipher_null: nothing left"

run encfs-dmsetup open "$(vm_disk overlap.img)" "$n" <"$key"
is "$rc" 3 "hostile header, data segment over the keyslot area: refused (exit 3)"
like "$err" "keyslots_size reaches into the data segment" "segment over keyslots: says so"
one_line_error "segment over keyslots"
nothing_left "segment over keyslots: nothing left"

run encfs-dmsetup open "$ext4" "$n" <"$key"
is "$rc" 3 "not LUKS (ext4): refused (exit 3)"
like "$err" "not a LUKS volume: found ext4" "not LUKS: says what it found"
nothing_left "not LUKS: nothing left"

dd if="$ext4" of=/tmp/plain.img bs=1M 2>/dev/null
run encfs-dmsetup open /tmp/plain.img "$n" <"$key"
is "$rc" 3 "not LUKS, a regular file: refused (exit 3)"
like "$err" "not a LUKS volume: found ext4" "not LUKS, a regular file: says what it found"
nothing_left "not LUKS, a regular file: no loop device left"

# --- timing: open wall time, encfs-dmsetup vs cryptsetup, same VM, same image (not a check) ----
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# xts512: pbkdf2 with 1000 iterations, so this is the cost of the tools, not of the KDF
d=$(vm_disk xts512.img)
: >/tmp/t-cs
: >/tmp/t-enc
for _ in 1 2 3 4 5; do
	t0=$(vm_now)
	cryptsetup open --key-file "$key" "$d" vt-time
	t1=$(vm_now)
	cryptsetup close vt-time
	awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >>/tmp/t-cs
	t0=$(vm_now)
	encfs-dmsetup open "$d" vt-time <"$key" 2>/dev/null
	t1=$(vm_now)
	encfs-dmsetup close vt-time 2>/dev/null || dmsetup remove --force vt-time 2>/dev/null
	awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >>/tmp/t-enc
done
cs=$(median </tmp/t-cs)
enc=$(median </tmp/t-enc)
diag "$(awk -v c="$cs" -v e="$enc" 'BEGIN {
	printf "timing xts512 (pbkdf2, 1000 iterations), open, median of 5: cryptsetup %.3f s, encfs-dmsetup %.3f s, ratio %.2f", c, e, (c > 0) ? e / c : 0 }')"
nothing_left "timing runs leave nothing"

done_testing
