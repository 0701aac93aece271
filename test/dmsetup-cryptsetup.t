#!/bin/sh
# encfs-dmsetup against cryptsetup, on images cryptsetup makes here and now.
#
# For each variant: an ext4 image is made, cryptsetup encrypts it in place (reencrypt --encrypt),
# then encfs-dmsetup unlocks it.  The key `table --showkeys` prints must equal the volume key
# cryptsetup reports, and decrypting the sectors at the printed offset with the printed cipher
# (python3-cryptography, written here from the dm-crypt IV rules) must give back the exact bytes
# of the ext4 image from before encryption.  The ciphertext comes from cryptsetup, the key and
# offset from us, the expected plaintext from mkfs: none can make the check pass for another.
# shellcheck disable=SC2154 # out, err, rc come from run in lib.sh
# shellcheck disable=SC1091 # lib.sh is sourced from the tree at run time
. "$ENCFS_SRC/test/lib.sh"

command -v cryptsetup >/dev/null 2>&1 || skip_all "cryptsetup not installed (test/deps.apt)"
command -v mkfs.ext4 >/dev/null 2>&1 || skip_all "mkfs.ext4 not installed"
"$PYTHON" -c 'import cryptography' 2>/dev/null || skip_all "python3-cryptography not installed"

cat >"$T/dm.py" <<'EOF'
# decrypt ENC KEYHEX CIPHER OFFSET_SECTORS SECTOR_SIZE IV_OFFSET NBYTES OUT
# encrypt PLAIN KEYHEX CIPHER OFFSET_SECTORS SECTOR_SIZE ENC   (LUKS1 images: cryptsetup needs dm)
# dm-crypt: each sector_size block is one unit; its IV is iv_offset + its position in 512-byte
# sectors (no iv_large_sectors for LUKS); plain64 = le64, plain = le32, essiv:sha256 =
# AES-ECB(sha256(key), le64).
import hashlib, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

def ivof(spec, key, n):
    if spec.endswith("-plain64"):
        return n.to_bytes(16, "little")
    if spec.endswith("-plain"):
        return (n & 0xffffffff).to_bytes(16, "little")
    if spec.endswith("-essiv:sha256"):
        e = Cipher(algorithms.AES(hashlib.sha256(key).digest()), modes.ECB()).encryptor()
        return e.update(n.to_bytes(16, "little")) + e.finalize()
    raise SystemExit("unsupported spec " + spec)

def cipher(spec, key, iv):
    if spec.startswith("aes-xts-"):
        return Cipher(algorithms.AES(key), modes.XTS(iv))
    if spec.startswith("aes-cbc-"):
        return Cipher(algorithms.AES(key), modes.CBC(iv))
    raise SystemExit("unsupported spec " + spec)

def run(op, src, key, spec, off, ss, ivoff, data):
    out = bytearray()
    for i in range(0, len(data), ss):
        c = cipher(spec, key, ivof(spec, key, ivoff + i // 512))
        x = c.decryptor() if op == "decrypt" else c.encryptor()
        out += x.update(data[i:i + ss]) + x.finalize()
    return bytes(out)

op = sys.argv[1]
if op == "decrypt":
    enc, keyhex, spec, off, ss, ivoff, n, outp = sys.argv[2:10]
    key, off, ss, ivoff, n = bytes.fromhex(keyhex), int(off), int(ss), int(ivoff), int(n)
    with open(enc, "rb") as f:
        f.seek(off * 512)
        data = f.read(n)
    open(outp, "wb").write(run("decrypt", enc, key, spec, off, ss, ivoff, data))
else:
    plain, keyhex, spec, off, ss, enc = sys.argv[2:8]
    key, off, ss = bytes.fromhex(keyhex), int(off), int(ss)
    data = open(plain, "rb").read()
    with open(enc, "r+b") as f:
        f.seek(off * 512)
        f.write(run("encrypt", plain, key, spec, off, ss, 0, data))
EOF

printf 'correct horse\n' >"$T/key"         # key files are bytes as they are: the newline counts
printf 'correct horse' >"$T/key-nonl"
printf 'other key A' >"$T/keyA"
printf 'other key B' >"$T/keyB"
N=65536 # bytes compared: superblock, group descriptors and more

# mkplain BLOCKSIZE: a fresh ext4 image (20 MiB) in $T/plain.img
mkplain() {
	rm -f "$T/plain.img"
	truncate -s 20M "$T/plain.img"
	mkfs.ext4 -q -F -b "$1" -U 0e3c33a6-52c5-4f08-9a6b-0d0c46b7a1e5 "$T/plain.img"
}

# vkhex HEADER-OR-IMAGE KEYFILE: the volume key cryptsetup reports, in hex
vkhex() {
	rm -f "$T/vk.bin"
	cryptsetup luksDump -q --dump-volume-key --volume-key-file "$T/vk.bin" --key-file "$2" "$1" >/dev/null 2>&1
	od -An -v -tx1 "$T/vk.bin" | tr -d ' \n'
}

# check NAME IMAGE KEYFILE [--header HDR]: table --showkeys vs cryptsetup, then decrypt
check() {
	name=$1 img=$2 keyf=$3
	shift 3
	run encfs-dmsetup table --showkeys --no-keyring "$@" "$img" <"$keyf"
	is "$rc" 0 "$name: table exits 0"
	[ "$rc" -eq 0 ] || { diag "$err"; return; }
	# shellcheck disable=SC2086 # the table line is split into its fields on purpose
	set -- $out
	start=$1 len=$2 target=$3 spec=$4 key=$5 ivoff=$6 dev=$7 off=$8
	ss=512
	case "$out" in *sector_size:4096*) ss=4096 ;; esac
	is "$start $target $dev" "0 crypt $(realpath "$img")" "$name: line starts 0 ... crypt and maps the image"
	hdrdev=$img
	[ "$HDR" ] && hdrdev=$HDR
	want=$(vkhex "$hdrdev" "$keyf")
	is "$key" "$want" "$name: key equals cryptsetup luksDump --dump-volume-key"
	size=$(stat -c %s "$img")
	is "$len" "$((size / 512 - off))" "$name: length is the device size minus the offset"
	"$PYTHON" "$T/dm.py" decrypt "$img" "$key" "$spec" "$off" "$ss" "$ivoff" "$N" "$T/dec.bin"
	head -c "$N" "$T/plain.img" >"$T/plain.head"
	is "$(sha256 "$T/dec.bin")" "$(sha256 "$T/plain.head")" "$name: decrypted sectors are the ext4 image from before encryption"
	dd if="$img" of="$T/raw.bin" bs=512 skip="$off" count=$((N / 512)) 2>/dev/null
	isnt=0
	[ "$(sha256 "$T/raw.bin")" = "$(sha256 "$T/plain.head")" ] && isnt=1
	ok "$isnt" "$name: the sectors on disk are not the plaintext"
	magic=$(od -An -j 1080 -N 2 -tx1 "$T/dec.bin" | tr -d ' ')
	is "$magic" "53ef" "$name: ext4 superblock magic at 1080 of the decrypted data"
}

# encrypt NAME BLOCKSIZE CRYPTSETUP-OPTIONS...: ext4 encrypted in place by cryptsetup (a failure
# is a failed check: the variant's checks would otherwise vanish)
encrypt() {
	name=$1
	mkplain "$2"
	shift 2
	cp "$T/plain.img" "$T/$name.img"
	truncate -s 24M "$T/$name.img" # room for the header in front of the data
	if ! cryptsetup reencrypt -q --encrypt --type luks2 --key-file "$T/key" --reduce-device-size 4M \
		"$@" "$T/$name.img" >"$T/cs.log" 2>&1; then
		diag "cryptsetup reencrypt $*: $(cat "$T/cs.log")"
		ok 1 "$name: cryptsetup made the image (its checks cannot run)"
		return 1
	fi
}

HDR=
PB="--pbkdf pbkdf2 --pbkdf-force-iterations 1000"
# shellcheck disable=SC2086 # $PB is a list of options
{
	encrypt xts256 1024 --cipher aes-xts-plain64 --key-size 256 --sector-size 512 $PB --hash sha256 &&
		check "aes-xts-plain64 256-bit, pbkdf2-sha256" "$T/xts256.img" "$T/key"
	encrypt xts512 1024 --cipher aes-xts-plain64 --key-size 512 --sector-size 512 $PB --hash sha1 &&
		check "aes-xts-plain64 512-bit, pbkdf2-sha1" "$T/xts512.img" "$T/key"
	encrypt essiv 1024 --cipher aes-cbc-essiv:sha256 --key-size 256 --sector-size 512 $PB --hash sha512 &&
		check "aes-cbc-essiv:sha256, pbkdf2-sha512" "$T/essiv.img" "$T/key"
	encrypt s4k 4096 --cipher aes-xts-plain64 --key-size 512 --sector-size 4096 $PB --hash sha256 &&
		check "4096-byte sectors" "$T/s4k.img" "$T/key"
}
encrypt argon2i 1024 --sector-size 512 --pbkdf argon2i --pbkdf-memory 32768 --pbkdf-force-iterations 4 \
	--pbkdf-parallel 1 && check "argon2i, 1 lane" "$T/argon2i.img" "$T/key"
encrypt argon2id1 1024 --sector-size 512 --pbkdf argon2id --pbkdf-memory 32768 --pbkdf-force-iterations 4 \
	--pbkdf-parallel 1 && check "argon2id, 1 lane" "$T/argon2id1.img" "$T/key"

# 4 lanes: cryptsetup caps --pbkdf-parallel at the CPUs online, so show it 4 in a private mount
# namespace (the machines here have 2)
echo 0-3 >"$T/online"
mkplain 1024
cp "$T/plain.img" "$T/argon2id4.img"
truncate -s 24M "$T/argon2id4.img"
# shellcheck disable=SC2016 # expanded by the inner shell
if unshare -m sh -c 'mount --bind "$1/online" /sys/devices/system/cpu/online &&
	cryptsetup reencrypt -q --encrypt --type luks2 --key-file "$1/key" --reduce-device-size 4M \
	--sector-size 512 --pbkdf argon2id --pbkdf-memory 32768 --pbkdf-force-iterations 4 \
	--pbkdf-parallel 4 "$1/argon2id4.img"' sh "$T" >"$T/cs.log" 2>&1; then
	run encfs-dmsetup dump "$T/argon2id4.img"
	like "$out" "Threads:    4" "argon2id, 4 lanes: the keyslot has 4 lanes"
	check "argon2id, 4 lanes" "$T/argon2id4.img" "$T/key"
else
	skip "argon2id with 4 lanes: no private mount namespace here ($(head -1 "$T/cs.log"))"
fi

# the key in keyslot 2 of 3: slot 0 and 1 hold other keys
# shellcheck disable=SC2086
encrypt slots 1024 --sector-size 512 $PB --hash sha256 --key-slot 0 &&
	cryptsetup luksAddKey -q $PB --key-file "$T/key" --key-slot 1 "$T/slots.img" "$T/keyA" &&
	cryptsetup luksAddKey -q $PB --key-file "$T/key" --key-slot 2 "$T/slots.img" "$T/keyB"
run encfs-dmsetup dump "$T/slots.img"
like "$out" "  2: luks2" "keyslot 2 of 3 exists"
run encfs-dmsetup -v test "$T/slots.img" <"$T/keyB"
like "$err" "key slot 2 unlocked" "the key in keyslot 2 of 3 unlocks slot 2"
check "key in keyslot 2 of 3" "$T/slots.img" "$T/keyB"
run encfs-dmsetup -v test "$T/slots.img" <"$T/keyA"
like "$err" "key slot 1 unlocked" "the key in keyslot 1 unlocks slot 1"
run encfs-dmsetup test "$T/slots.img" <"$T/key-nonl"
is "$rc" 7 "a wrong key opens no slot: exit 7"
is "$err" "encfs-dmsetup: unlocking: no key slot matches this key" "wrong key: one line, exit 7"

# detached header: the data keeps offset 0
mkplain 1024
cp "$T/plain.img" "$T/detached.img"
# shellcheck disable=SC2086
if cryptsetup reencrypt -q --encrypt --type luks2 --key-file "$T/key" --header "$T/hdr.img" $PB \
	"$T/detached.img" >"$T/cs.log" 2>&1; then
	HDR=$T/hdr.img
	check "detached header" "$T/detached.img" "$T/key" --header "$T/hdr.img"
	HDR=
	run encfs-dmsetup table --no-keyring "$T/detached.img" <"$T/key"
	like "$err" "not a LUKS volume" "without --header the data device is not taken for a header"
else
	diag "$(cat "$T/cs.log")"
	ok 1 "cryptsetup made a detached-header image"
fi

# LUKS1: reencrypt needs device-mapper for LUKS1, so cryptsetup formats and our python (with
# cryptsetup's reported key and payload offset) writes the ciphertext
mkplain 1024
truncate -s 24M "$T/luks1.img"
cryptsetup luksFormat -q --type luks1 --key-file "$T/key" --iter-time 10 --hash sha256 \
	--cipher aes-xts-plain64 --key-size 256 "$T/luks1.img"
payload=$(cryptsetup luksDump "$T/luks1.img" | sed -n 's/^Payload offset:[[:space:]]*//p')
"$PYTHON" "$T/dm.py" encrypt "$T/plain.img" "$(vkhex "$T/luks1.img" "$T/key")" aes-xts-plain64 "$payload" 512 \
	"$T/luks1.img"
check "LUKS1 aes-xts-plain64, pbkdf2-sha256" "$T/luks1.img" "$T/key"
run encfs-dmsetup dump "$T/luks1.img"
cryptsetup luksDump "$T/luks1.img" >"$T/cs-dump1.txt" 2>&1
is "$rc:$out" "0:$(cat "$T/cs-dump1.txt")" "LUKS1 dump: what cryptsetup luksDump prints, byte for byte"

# LUKS2 dump with tokens: listed as cryptsetup lists them (type, keyring description, keyslots)
if cryptsetup token add --key-description "encfs test key" --key-slot 1 "$T/slots.img" >"$T/cs.log" 2>&1 &&
	printf '{"type":"encfs-test","keyslots":["0","2"],"note":"x"}' |
	cryptsetup token import --token-id 3 "$T/slots.img" >>"$T/cs.log" 2>&1; then
	run encfs-dmsetup dump "$T/slots.img"
	cryptsetup luksDump "$T/slots.img" >"$T/cs-dump2.txt" 2>&1
	is "$rc:$out" "0:$(cat "$T/cs-dump2.txt")" "LUKS2 dump with two tokens: what cryptsetup luksDump prints, byte for byte"
	like "$out" "Tokens:
  0: luks2-keyring
	Key description: encfs test key
	Keyslot:    1
  3: encfs-test
	Keyslot:    0
	Keyslot:    2
Digests:" "... the tokens listed, not counted"
else
	diag "$(cat "$T/cs.log")"
	ok 1 "cryptsetup added tokens to a LUKS2 image"
	skip "no tokens"
fi

# dump --json: one JSON object; LUKS2 carries the header's own JSON under "metadata"
run_to "$T/d.json" encfs-dmsetup dump --json "$T/essiv.img"
is "$rc:$("$PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["version"], d["metadata"]["segments"]["0"]["encryption"], d["metadata"]["keyslots"]["0"]["kdf"]["hash"])' "$T/d.json")" \
	"0:2 aes-cbc-essiv:sha256 sha512" "dump --json (LUKS2): version, segment cipher and kdf hash"
run_to "$T/d1.json" encfs-dmsetup dump --json "$T/luks1.img"
is "$rc:$("$PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["version"], d["cipher"], d["hash"], d["payload_offset"])' "$T/d1.json")" \
	"0:1 aes-xts-plain64 sha256 $payload" "dump --json (LUKS1): version, cipher, hash, payload offset"

# key file semantics: bytes as they are, the trailing newline included
run encfs-dmsetup test "$T/xts256.img" <"$T/key-nonl"
is "$rc" 7 "the key without its newline does not open"
run encfs-dmsetup test --key-file "$T/key" "$T/xts256.img"
is "$rc" 0 "--key-file FILE reads the same bytes"
head -c 8388609 /dev/zero >"$T/big"
run encfs-dmsetup test --key-file "$T/big" "$T/xts256.img"
is "$rc" 3 "a key file over 8 MiB is refused"
like "$err" "8 MiB" "the error says the limit"
head -c 8388608 /dev/zero >"$T/big"
run encfs-dmsetup test --key-file "$T/big" "$T/xts256.img"
is "$rc" 7 "a key file of exactly 8 MiB is read (and is the wrong key), as by cryptsetup"
run encfs-dmsetup test --key-file "$T" "$T/xts256.img"
is "$rc" 3 "a key file that cannot be read (a directory): exit 3, like one that cannot be opened"
like "$err" "reading the key from $T: Is a directory" "... saying why"

# NAME: a device-mapper name, without control characters (they would split this one-line error)
run encfs-dmsetup open "$T/xts256.img" "$(printf 'a\nb')" <"$T/key"
is "$rc" 2 "a NAME with a newline: usage error"
is "$(printf '%s\n' "$err" | wc -l)" 1 "... on one line"

# table without --showkeys never prints the key
run encfs-dmsetup table --no-keyring "$T/xts256.img" <"$T/key"
vk=$(vkhex "$T/xts256.img" "$T/key")
unlike "$out" "$vk" "table without --showkeys does not print the key"
like "$out" " aes-xts-plain64 0000000000000000000000000000000000000000000000000000000000000000 0 " \
	"the key is masked as zeros"

# not LUKS: say what it is
run encfs-dmsetup dump "$T/plain.img"
is "$rc" 3 "an ext4 image is refused with exit 3"
is "$err" "encfs-dmsetup: $T/plain.img: not a LUKS volume: found ext4" "and the error names ext4"

# open fails before creating anything on a host without device-mapper (the VM test opens).
# /dev/mapper/control may exist without the driver (a container on a kernel without dm-mod):
# the kernel's list of block drivers says whether device-mapper is there.
if ! grep -q ' device-mapper$' /proc/devices; then
	before=$(losetup -a | wc -l)
	run encfs-dmsetup open "$T/xts256.img" t1 <"$T/key"
	is "$rc" 8 "open without device-mapper: exit 8"
	like "$err" "device-mapper" "open without device-mapper: says so"
	is "$(losetup -a | wc -l)" "$before" "open without device-mapper: no loop device left"
	# as cryptsetup: device-mapper is checked before the key derivation runs
	run encfs-dmsetup open "$T/xts256.img" t1 <"$T/key-nonl"
	is "$rc" 8 "open with a wrong key fails on device-mapper first (no key derivation for nothing)"
else
	skip "device-mapper present: open is tested in the VM test"
fi
done_testing
