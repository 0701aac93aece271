#!/bin/sh
# encfs-dmsetup against cryptsetup's own test images (../shared/testdata/luks-cryptsetup): every
# expectation of its MANIFEST.txt, and the 85 LUKS2 validation images loaded or refused exactly as
# luks2-validation-expected.txt says.  The images are unpacked into $T, never into the tree.
# shellcheck disable=SC2154 # out, err, rc come from run in lib.sh
# shellcheck disable=SC1091 # lib.sh is sourced from the tree at run time
. "$ENCFS_SRC/test/lib.sh"

D=$SHARED/testdata/luks-cryptsetup
[ -f "$D/MANIFEST.txt" ] || skip_all "no $D (cryptsetup's test images are not on this machine)"
"$PYTHON" -c 'import cryptography' 2>/dev/null || skip_all "python3-cryptography not installed"

cd "$T" || bail "cd $T"
for f in compatimage.img compatimage2.img compatv10image.img blkid-luks2-pv.img luks2_invalid_cipher.img \
	luks2_keyslot_unassigned.img luks2_valid_hdr.img valid_header_file evil_hdr-keyslot_overlap \
	evil_hdr-luks_hdr_damage evil_hdr-payload_overwrite evil_hdr-small_luks_device evil_hdr-stripes_payload_dmg; do
	xz -dc "$D/$f.xz" >"$f" || bail "unpacking $f"
done
for t in luks1-images luks2_header_requirements luks2_mda_images luks2-validation-images; do
	tar xJf "$D/$t.tar.xz" || bail "unpacking $t"
done

# key VOLUME PASSPHRASE: the hex key table --showkeys prints (empty on failure)
key() {
	run sh -c 'printf %s "$1" | encfs-dmsetup table --showkeys --no-keyring "$2"' sh "$2" "$1"
	# shellcheck disable=SC2086
	[ "$rc" -eq 0 ] && set -- $out && echo "$5"
}

# decrypted_sum IMAGE PASS HASHCMD: the data area decrypted with our key, cipher and offset
cat >dec.py <<'EOF'
import hashlib, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
img, spec, keyhex, off, n = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
out = bytearray()
with open(img, "rb") as f:
    f.seek(off * 512)
    data = f.read(n * 512)
for s in range(n):
    if spec.endswith("-essiv:sha256"):
        e = Cipher(algorithms.AES(hashlib.sha256(keyhex).digest()), modes.ECB()).encryptor()
        iv = e.update(s.to_bytes(16, "little")) + e.finalize()
    elif spec.endswith("-plain"):
        iv = (s & 0xffffffff).to_bytes(16, "little")
    else:
        iv = s.to_bytes(16, "little")
    m = modes.XTS(iv) if "-xts-" in spec else modes.CBC(iv)
    d = Cipher(algorithms.AES(keyhex), m).decryptor()
    out += d.update(data[s * 512:(s + 1) * 512]) + d.finalize()
sys.stdout.buffer.write(bytes(out))
EOF
decrypt() { # decrypt IMAGE PASS -> dec.bin
	run sh -c 'printf %s "$1" | encfs-dmsetup table --showkeys --no-keyring "$2"' sh "$2" "$1"
	# shellcheck disable=SC2086
	set -- $out
	"$PYTHON" dec.py "$7" "$4" "$5" "$8" "$2" >dec.bin
}

# --- MANIFEST ---------------------------------------------------------------------------------
is "$(key compatimage.img compatkey)" e1a851c034ed7993b276608a45842b7b "compatimage (LUKS1 cbc-essiv): volume key"
decrypt compatimage.img compatkey
is "$(sha256 dec.bin)" 7428e8f2436882a07eb32765086f5c899474c08b5576f556b573d2aabdf923e8 \
	"compatimage: decrypted data sha256 as in the MANIFEST"
run sh -c 'printf rUkL4RUryBom | encfs-dmsetup test compatimage.img'
is "$rc" 7 "compatimage: the wrong passphrase fails"

is "$(key compatv10image.img compatkey)" 8351939072ee8fdf0d1b4537850f812b "compatv10image (LUKS1 v1.0, cbc-plain): volume key"
decrypt compatv10image.img compatkey
is "$(sha1sum dec.bin | cut -d' ' -f1)" 51b48c2471a7593ceaf14dc5e66bca86ed05f6cc "compatv10image: decrypted data sha1"

is "$(key compatimage2.img compatkey)" d47ee2cdc40f39be9a3e8d72a149cc4d "compatimage2 slot 0 (pbkdf2): volume key"
is "$(key compatimage2.img 0123456789abcdef)" d47ee2cdc40f39be9a3e8d72a149cc4d \
	"compatimage2 slot 1 (argon2id t=4 m=64MiB p=2): volume key"
run sh -c 'printf compatkey | encfs-dmsetup table --no-keyring compatimage2.img'
like "$out" "0 1 crypt aes-cbc-essiv:sha256 " "compatimage2: one data sector"
like "$out" " 8192" "compatimage2: data offset 4194304 bytes = 8192 sectors"

for v in aes-cbc-essiv-sha256-sha1:582a935a5bc5418a481a08644784206398846696680b8edfa55826b969bb4438 \
	aes-xts-plain64-sha1:8a30e57f29d9d0165e2964e68e12ca17e3b6703b48faee3acc9922388b5b019a \
	aes-xts-plain64-sha256:b1c4a7c0f69cbfd1ef32ec65ada15a0aa41fa940ade5289911a64d31bcd07b30 \
	aes-xts-plain64-whirlpool:cf3bf5067c4e756f2635d71bd5c04a7e6f80ca695af189f7ffcb9201a438e3bc; do
	img=luks1-images/luks1_${v%%:*}.img
	run encfs-dmsetup table --showkeys --no-keyring --key-file luks1-images/keyfile1 "$img"
	# shellcheck disable=SC2086
	set -- $out
	is "${5:-}" "${v#*:}" "luks1-images ${v%%:*}: volume key"
	"$PYTHON" dec.py "$img" "$4" "$5" "$8" "$2" >dec.bin
	like "$(blkid -p -o value -s UUID dec.bin)" "DEAD-BABE" "luks1-images ${v%%:*}: decrypted FS is vfat DEAD-BABE"
done
for v in aes-lrw-plain64-sha1:aes-lrw-plain64 aes-xts-essiv-wp256-whirlpool:aes-xts-essiv:wp256 \
	serpent-xts-plain64-sha256:serpent-xts-plain64 twofish-xts-plain64-sha1:twofish-xts-plain64; do
	run encfs-dmsetup table --key-file luks1-images/keyfile1 "luks1-images/luks1_${v%%:*}.img"
	ok "$([ "$rc" -eq 3 ] && echo 0 || echo 1)" "luks1-images ${v%%:*}: refused (exit 3)"
	like "$err" "${v#*:}" "luks1-images ${v%%:*}: the error names the cipher"
done

for s in 16 32 64 128 256 512 1024 2048 4096; do
	is "$(key "test_image_$s" Qx3qn46vq0v)" b67647946b62ded9d65983a92cd2c0f4c08923473deb44741da5ba675e8bde82 \
		"luks2_mda_images ${s}k metadata: volume key"
done

like "$(key luks2_keyslot_unassigned.img compatkey)" 7b24adb6 "keyslot_unassigned slot 0: volume key 7b24adb6..."
run sh -c 'printf 93R4P4pIqAH8 | encfs-dmsetup test luks2_keyslot_unassigned.img'
is "$rc" 0 "keyslot_unassigned: the unbound slot passes test"
run sh -c 'printf 93R4P4pIqAH8 | encfs-dmsetup table luks2_keyslot_unassigned.img'
is "$rc" 7 "keyslot_unassigned: the unbound slot does not activate"

run sh -c 'printf 93R4P4pIqAH8 | encfs-dmsetup test luks2_invalid_cipher.img'
is "$rc" 0 "invalid_cipher: the passphrase unlocks"
run sh -c 'printf 93R4P4pIqAH8 | encfs-dmsetup table luks2_invalid_cipher.img'
is "$rc" 3 "invalid_cipher: activation refused"
like "$err" "capi:xts(ecb(aes-generic))-plain64" "invalid_cipher: the error names the capi: cipher"

run sh -c 'printf blablabl | encfs-dmsetup test luks2_header_requirements'
is "$rc" 0 "header_requirements: the passphrase unlocks"
run sh -c 'printf blablabl | encfs-dmsetup table --header luks2_header_requirements compatimage.img'
is "$rc" 3 "header_requirements: activation refused"
like "$err" "requirements" "header_requirements: because of the mandatory requirements"
run sh -c 'printf blablabl | encfs-dmsetup table --showkeys --no-keyring --header luks2_header_requirements_free compatimage.img'
like "$out" " 07459b84" "header_requirements_free: activates, volume key 07459b84..."
like "$out" "36bd 0 " "header_requirements_free: volume key ...36bd"

run encfs-dmsetup dump blkid-luks2-pv.img
is "$rc:$err" "3:encfs-dmsetup: blkid-luks2-pv.img: not a LUKS volume: found LVM2_member" \
	"blkid-luks2-pv: refused like cryptsetup isLuks (exit 3), because another signature (LVM2) is there"
run encfs-dmsetup dump valid_header_file
is "$rc" 0 "valid_header_file (LUKS1 header): loads"
run encfs-dmsetup dump luks2_valid_hdr.img
is "$rc" 0 "luks2_valid_hdr (legacy kdf argon2): loads"
# the MANIFEST's reasons: keyslot overlap, damaged header, payload overwrite, too small, keyslot
# invalid (stripes)
for f in "evil_hdr-keyslot_overlap:keyslots 1 and 2 overlap" \
	"evil_hdr-luks_hdr_damage:keyslot 2 is invalid (offset inside the header)" \
	"evil_hdr-payload_overwrite:keyslot 3 is invalid (reaches the data area)" \
	"evil_hdr-small_luks_device:the device is too small (1049600 bytes needed)" \
	"evil_hdr-stripes_payload_dmg:keyslot 5 is invalid (stripes 44944)"; do
	run encfs-dmsetup dump "${f%%:*}"
	is "$rc:$err" "3:encfs-dmsetup: ${f%%:*}: LUKS1 header: ${f#*:}" "${f%%:*}: refused with exit 3: ${f#*:}"
done

# --- the 85 validation images --------------------------------------------------------------
# Each image that must be refused (F), with the exit status and message it is refused with: the
# rule it breaks, not just any refusal (7: no header copy passes its checksum; 3: a header that
# breaks a LUKS2 rule).  An image refused for another reason would hide a check that is gone.
cat >refusals.txt <<'EOF'
luks2-invalid-checksum-both-hdrs.img 7 LUKS2 header: no header copy with valid magic, size and checksum
luks2-non-null-byte-beyond-json0.img 3 LUKS2 header: bytes after the JSON object
luks2-non-null-bytes-beyond-json0.img 3 LUKS2 header: bytes other than NUL after the JSON
luks2-missing-trailing-null-byte-json0.img 3 LUKS2 header: JSON area has no terminating NUL byte
luks2-invalid-opening-char-json0.img 3 LUKS2 header: JSON area does not start with '{'
luks2-invalid-object-type-json0.img 3 LUKS2 header: JSON area does not start with '{'
luks2-overlapping-areas-c0-json0.img 3 LUKS2 header: keyslot areas overlap
luks2-overlapping-areas-c1-json0.img 3 LUKS2 header: keyslot areas overlap
luks2-overlapping-areas-c2-json0.img 3 LUKS2 header: keyslot areas overlap
luks2-area-in-json-hdr-space-json0.img 3 LUKS2 header: keyslot area inside the metadata
luks2-missing-keyslot-referenced-in-digest.img 3 LUKS2 header: digest refers to a missing keyslot
luks2-missing-segment-referenced-in-digest.img 3 LUKS2 header: digest refers to a missing segment
luks2-missing-keyslot-referenced-in-token.img 3 LUKS2 header: token refers to a missing keyslot
luks2-keyslot-missing-digest.img 3 LUKS2 header: keyslot is not assigned to exactly one digest
luks2-keyslot-too-many-digests.img 3 LUKS2 header: keyslot is not assigned to exactly one digest
luks2-uint64-overflow-segment-size.img 3 LUKS2 header: segment size is neither "dynamic" nor a number
luks2-uint64-signed-segment-size.img 3 LUKS2 header: segment size is neither "dynamic" nor a number
luks2-segment-missing-type.img 3 LUKS2 header: segment without type, offset or size
luks2-segment-wrong-type.img 3 LUKS2 header: segment without type, offset or size
luks2-segment-missing-offset.img 3 LUKS2 header: segment without type, offset or size
luks2-segment-wrong-offset.img 3 LUKS2 header: segment offset is not a number
luks2-segment-missing-size.img 3 LUKS2 header: segment without type, offset or size
luks2-segment-wrong-size-0.img 3 LUKS2 header: segment without type, offset or size
luks2-segment-wrong-size-1.img 3 LUKS2 header: segment size is neither "dynamic" nor a number
luks2-segment-wrong-size-2.img 3 LUKS2 header: segment offset or size is not aligned to 512 bytes
luks2-segment-crypt-missing-encryption.img 3 LUKS2 header: crypt segment without iv_tweak, encryption or sector_size
luks2-segment-crypt-wrong-encryption.img 3 LUKS2 header: crypt segment without iv_tweak, encryption or sector_size
luks2-segment-crypt-missing-ivoffset.img 3 LUKS2 header: crypt segment without iv_tweak, encryption or sector_size
luks2-segment-crypt-wrong-ivoffset.img 3 LUKS2 header: segment iv_tweak is not a number
luks2-segment-crypt-missing-sectorsize.img 3 LUKS2 header: crypt segment without iv_tweak, encryption or sector_size
luks2-segment-crypt-wrong-sectorsize-0.img 3 LUKS2 header: segment sector_size is not a multiple of 512
luks2-segment-crypt-wrong-sectorsize-1.img 3 LUKS2 header: crypt segment without iv_tweak, encryption or sector_size
luks2-segment-crypt-wrong-sectorsize-2.img 3 LUKS2 header: segment sector_size is not a 32-bit number
luks2-segment-wrong-flags.img 3 LUKS2 header: segment flags is not an array of strings
luks2-segment-wrong-flags-element.img 3 LUKS2 header: segment flags is not an array of strings
luks2-segment-wrong-backup-key-0.img 3 LUKS2 header: gap in segment ids
luks2-segment-wrong-backup-key-1.img 3 LUKS2 header: more than 32 segments
luks2-segment-crypt-empty-encryption.img 3 LUKS2 header: crypt segment without iv_tweak, encryption or sector_size
luks2-invalid-keyslots-size-c0.img 3 LUKS2 header: keyslots_size reaches into the data segment
luks2-invalid-keyslots-size-c1.img 3 LUKS2 header: unsupported keyslots_size
luks2-invalid-keyslots-size-c2.img 3 LUKS2 header: keyslot area past the keyslots area
luks2-invalid-json-size-c0.img 3 LUKS2 header: config json_size does not match the binary header
luks2-invalid-json-size-c1.img 3 LUKS2 header: config json_size does not match the binary header
luks2-invalid-json-size-c2.img 3 LUKS2 header: config json_size does not match the binary header
luks2-metadata-size-64k-inv-area-c0.img 3 LUKS2 header: keyslot area inside the metadata
luks2-metadata-size-64k-inv-area-c1.img 3 LUKS2 header: keyslot area past the keyslots area
luks2-metadata-size-64k-inv-keyslots-size-c0.img 3 LUKS2 header: keyslots_size reaches into the data segment
luks2-metadata-size-invalid.img 7 LUKS2 header: no header copy with valid magic, size and checksum
luks2-metadata-size-invalid-secondary.img 7 LUKS2 header: no header copy with valid magic, size and checksum
luks2-invalid-tokens.img 3 LUKS2 header: keyslots, tokens, digests, segments or config missing or not objects
luks2-invalid-top-objects.img 3 LUKS2 header: keyslots, tokens, digests, segments or config missing or not objects
luks2-keyslot-invalid-area.img 3 LUKS2 header: keyslot area type is not raw
luks2-keyslot-invalid-area-size.img 3 LUKS2 header: keyslot area past the keyslots area
luks2-keyslot-invalid-objects.img 3 LUKS2 header: keyslot without kdf, af or area
luks2-keyslot-invalid-af.img 3 LUKS2 header: keyslot af type is not luks1
EOF
n=0
while read -r img want; do
	n=$((n + 1))
	run encfs-dmsetup dump "luks2-images/$img"
	case $want in
	R) is "$rc" 0 "$img: loads (R)" ;;
	T) is "$rc" 0 "$img: loads; its token is simply not used (T)" ;;
	F)
		refusal=$(grep "^$img " refusals.txt) || refusal="$img (no expected refusal listed)"
		is "$img $rc ${err#"encfs-dmsetup: luks2-images/$img: "}" "$refusal" "$img: refused (F) as expected: ${refusal#* }"
		;;
	*) ok 1 "$img: unknown expectation $want" ;;
	esac
done <"$D/luks2-validation-expected.txt"
is "$n" 85 "all 85 validation images were checked"
done_testing
