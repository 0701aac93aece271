#!/bin/sh
# encfs-dmsetup against cryptsetup on a real kernel (Debian 12's, under qemu: test/vm/run.sh).
# The LUKS images are made here with cryptsetup luksFormat; inside the VM cryptsetup (the oracle)
# writes an ext4 filesystem made here into each, then encfs-dmsetup and cryptsetup open the same
# image in turn and must load the same dm-crypt table and uuid, with the key in the kernel keyring
# and without it; the files read back, a file written through encfs-dmsetup reads back through
# cryptsetup, --readonly is read-only, and close and every refusal leave nothing behind.  All the
# checks are in test/vm/dmsetup-guest.sh; this script makes the images and boots the VM.
# shellcheck disable=SC1091 # lib.sh is found at run time
. "$ENCFS_SRC/test/lib.sh"

for c in cryptsetup mkfs.ext4 truncate; do
	command -v $c >/dev/null || bail "$c is not installed (make deps)"
done

# The content: a few files with known hashes, in an ext4 image (10 MiB: large enough for a
# journal) whose 4096-byte blocks suit 4096-byte sector devices too.  The LUKS2 images have room
# for it after their 16 MiB header, the LUKS1 one after its 2 MiB.
mkdir -p "$T/tree/sub"
printf 'encfs in a real kernel\n' >"$T/tree/hello.txt"
head -c 300000 /dev/urandom >"$T/tree/sub/random.bin"
: >"$T/tree/empty"
(cd "$T/tree" && find . -type f | LC_ALL=C sort | xargs sha256sum) >"$T/manifest"
truncate -s 10M "$T/ext4.img"
mkfs.ext4 -q -b 4096 -L encfs-vm -d "$T/tree" "$T/ext4.img" || bail "mkfs.ext4 failed"
head -c 100000 /dev/urandom >"$T/written.bin"

printf 'correct horse battery staple\n' >"$T/key"
printf 'not the key\n' >"$T/wrong"
printf 'other key 0' >"$T/other0"
printf 'other key 1' >"$T/other1"

# Cheap key derivation: TCG is slow, and these tests are about the table, not the KDF.
fast="--pbkdf pbkdf2 --pbkdf-force-iterations 1000"
mk() { # mk IMAGE SIZE luksFormat-OPTIONS...: a fresh image with "$T/key" in a keyslot
	_img=$T/$1
	truncate -s "$2" "$_img"
	shift 2
	cryptsetup luksFormat -q --key-file "$T/key" "$@" "$_img" || bail "cryptsetup luksFormat $* failed"
}
# shellcheck disable=SC2086 # $fast is a list of options
{
	mk xts512.img 28M --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size 512 $fast
	mk xts4096.img 28M --type luks2 --cipher aes-xts-plain64 --key-size 256 --sector-size 4096 $fast
	mk essiv.img 28M --type luks2 --cipher aes-cbc-essiv:sha256 --key-size 256 --sector-size 512 $fast
	mk argon2id.img 28M --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size 512 \
		--pbkdf argon2id --pbkdf-memory 32768 --pbkdf-force-iterations 4 --pbkdf-parallel 2
	mk flags.img 28M --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size 512 $fast
	mk luks1.img 12M --type luks1 --cipher aes-xts-plain64 --key-size 512 --hash sha256 $fast
	# the key in keyslot 2 of 3
	truncate -s 28M "$T/slot2.img"
	cryptsetup luksFormat -q --key-file "$T/other0" --key-slot 0 --type luks2 --sector-size 512 $fast \
		"$T/slot2.img" || bail "luksFormat slot2 failed"
	cryptsetup luksAddKey -q --key-file "$T/other0" --key-slot 1 $fast "$T/slot2.img" "$T/other1" ||
		bail "luksAddKey slot 1 failed"
	cryptsetup luksAddKey -q --key-file "$T/other0" --key-slot 2 $fast "$T/slot2.img" "$T/key" ||
		bail "luksAddKey slot 2 failed"
	# a detached header: the data device is all data
	truncate -s 10M "$T/detdata.img"
	truncate -s 16M "$T/dethdr.img"
	cryptsetup luksFormat -q --key-file "$T/key" --type luks2 --sector-size 512 --header "$T/dethdr.img" \
		$fast "$T/detdata.img" || bail "luksFormat detached failed"
	# hostile headers with valid checksums
	mk null.img 28M --type luks2 --sector-size 512 $fast
	mk overlap.img 28M --type luks2 --sector-size 512 $fast
}
"$PYTHON" "$ENCFS_SRC/test/vm/luks2-edit.py" "$T/null.img" cipher_null || bail "luks2-edit cipher_null failed"
"$PYTHON" "$ENCFS_SRC/test/vm/luks2-edit.py" "$T/overlap.img" segment_over_keyslots || bail "luks2-edit overlap failed"

# What the guest checks: NAME DATA-DISK HEADER-DISK|- per image of the matrix.
cat >"$T/cases" <<'EOF'
xts512 xts512.img -
xts4096 xts4096.img -
essiv essiv.img -
argon2id argon2id.img -
slot2 slot2.img -
flags flags.img -
detached detdata.img dethdr.img
luks1 luks1.img -
EOF

set --
for d in xts512 xts4096 essiv argon2id slot2 flags detdata dethdr luks1 null overlap ext4; do
	set -- "$@" --disk "$T/$d.img"
done
rc=0
# ENCFS_STRICT: a skip in the guest fails under CI as it does here (test/lib.sh)
sh "$ENCFS_SRC/test/vm/run.sh" "$@" --mem 768 --env "ENCFS_STRICT=${ENCFS_STRICT:-0}" \
	--file "$T/key" --file "$T/wrong" --file "$T/manifest" --file "$T/cases" --file "$T/written.bin" \
	"$ENCFS_SRC/test/vm/dmsetup-guest.sh" || rc=$?
exit $rc
