#!/bin/sh
# Hostile LUKS2 headers: a valid image from cryptsetup, its JSON changed and both checksums made
# right again (so only the metadata rules can refuse it).  Each must be refused with exit 3 (or 7
# for checksums) and a one-line error, quickly (no CPU or memory spent on absurd KDF costs), and
# without a crash (run this under SANITIZE=1 for ASan/UBSan).
# shellcheck disable=SC2154 # out, err, rc come from run in lib.sh
# shellcheck disable=SC1091 # lib.sh is sourced from the tree at run time
. "$ENCFS_SRC/test/lib.sh"

command -v cryptsetup >/dev/null 2>&1 || skip_all "cryptsetup not installed (test/deps.apt)"

cat >"$T/mangle.py" <<'EOF'
# mangle.py IMG CODE [which]: runs CODE on the header JSON (as j) of both copies (or the one
# named: primary/secondary), then rewrites the JSON area and the sha256 checksum.  CODE may also
# set seq (the sequence id) or label (bytes) for the copy.
import hashlib, json, struct, sys
img, code = sys.argv[1], sys.argv[2]
which = sys.argv[3] if len(sys.argv) > 3 else "both"
data = bytearray(open(img, "rb").read())
size = struct.unpack(">Q", data[8:16])[0]
for copy, off in (("primary", 0), ("secondary", size)):
    if which not in ("both", copy):
        continue
    area = bytes(data[off + 4096:off + size])
    j = json.loads(area[:area.index(b"\0")])
    seq = struct.unpack(">Q", data[off + 16:off + 24])[0]
    label = None
    env = {"j": j, "seq": seq, "label": label}
    exec(code, env)
    text = json.dumps(env["j"], separators=(",", ":")).encode()
    assert len(text) < size - 4096
    data[off + 4096:off + size] = text + b"\0" * (size - 4096 - len(text))
    data[off + 16:off + 24] = struct.pack(">Q", env["seq"])
    if env["label"] is not None:
        data[off + 24:off + 72] = env["label"].ljust(48, b"\0")
    data[off + 448:off + 512] = b"\0" * 64
    data[off + 448:off + 480] = hashlib.sha256(bytes(data[off:off + size])).digest()
open(img, "wb").write(data)
EOF

printf 'hostile' >"$T/key"
truncate -s 8M "$T/base.img"
cryptsetup luksFormat -q --type luks2 --key-file "$T/key" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--offset 4096 "$T/base.img" >"$T/cs.log" 2>&1 || bail "cryptsetup luksFormat failed: $(cat "$T/cs.log")"
run encfs-dmsetup test "$T/base.img" <"$T/key"
is "$rc" 0 "the untouched image opens"

# variant NAME CODE [which]: a fresh copy of base.img, mangled, in $T/v.img
variant() {
	cp "$T/base.img" "$T/v.img"
	"$PYTHON" "$T/mangle.py" "$T/v.img" "$2" ${3:+"$3"} || bail "mangling for $1 failed"
}

# refused NAME CMD EXIT SUBSTRING [NAME]: encfs-dmsetup CMD v.img [NAME] with the key; exit, message
refused() {
	start=$(date +%s)
	# shellcheck disable=SC2086 # CMD is a subcommand and its options
	run encfs-dmsetup $2 "$T/v.img" ${5:+"$5"} <"$T/key"
	is "$rc" "$3" "$1: exit $3"
	like "$err" "$4" "$1: error says \"$4\""
	lines=$(printf '%s\n' "$err" | wc -l)
	is "$lines" 1 "$1: one line on stderr"
	is "$(($(date +%s) - start < 3))" 1 "$1: refused in under 3 s"
}

variant cipher_null 'j["segments"]["0"]["encryption"] = "cipher_null-ecb"'
refused "cipher_null segment, valid checksums" "table --no-keyring" 3 'cipher "cipher_null-ecb" does not encrypt'
refused "cipher_null segment: open refuses before creating anything" "open" 3 "cipher_null" hostile
variant capi 'j["segments"]["0"]["encryption"] = "capi:xts(aes)-plain64"'
refused "capi: cipher" "table" 3 "capi:"
variant unknown 'j["segments"]["0"]["encryption"] = "blowfish-cbc-plain"'
refused "cipher outside the list" "table" 3 'cipher "blowfish-cbc-plain"'
variant overlap 'j["segments"]["0"]["offset"] = "32768"'
refused "segment overlapping the keyslot area" "dump" 3 "keyslots_size reaches into the data segment"
variant area_out 'j["keyslots"]["0"]["area"]["offset"] = str(int(j["config"]["keyslots_size"]) + 4096)'
refused "keyslot area past the keyslots area" "dump" 3 "keyslot area past the keyslots area"
variant area_meta 'j["keyslots"]["0"]["area"]["offset"] = "16384"'
refused "keyslot area inside the metadata" "dump" 3 "keyslot area inside the metadata"
cp "$T/base.img" "$T/v.img"
truncate -s 1M "$T/v.img"
refused "keyslot area past the device end" "dump" 3 "device is too small"
variant json_size 'j["config"]["json_size"] = "28672"'
refused "json_size mismatch" "dump" 3 "json_size"
variant stripes 'j["keyslots"]["0"]["af"]["stripes"] = 3999'
run encfs-dmsetup dump "$T/v.img"
is "$rc" 0 "stripes 3999: the header itself is valid (as for cryptsetup)"
refused "stripes not 4000" "test" 3 "3999 AF stripes"
variant iter 'j["keyslots"]["0"]["kdf"]["iterations"] = 2147483647'
refused "huge PBKDF2 iteration count" "test" 3 "2147483647 iterations is outside"
variant diter 'j["digests"]["0"]["iterations"] = 2147483647'
refused "huge digest iteration count" "test" 3 "2147483647 iterations is outside"
variant argon_mem 'j["keyslots"]["0"]["kdf"] = {"type": "argon2id", "time": 4, "memory": 4194305, "cpus": 1, "salt": j["keyslots"]["0"]["kdf"]["salt"]}'
refused "huge Argon2 memory" "test" 3 "memory 4194305 KiB is outside"
variant argon_time 'j["keyslots"]["0"]["kdf"] = {"type": "argon2id", "time": 4294967295, "memory": 1048576, "cpus": 4, "salt": j["keyslots"]["0"]["kdf"]["salt"]}'
refused "huge Argon2 time" "test" 3 "time cost 4294967295 is outside"
variant argon_lanes 'j["keyslots"]["0"]["kdf"] = {"type": "argon2i", "time": 4, "memory": 65536, "cpus": 1000, "salt": j["keyslots"]["0"]["kdf"]["salt"]}'
refused "Argon2 lanes" "test" 3 "1000 lanes is outside"
variant keysize 'j["keyslots"]["0"]["key_size"] = 4096'
refused "huge volume key size" "test" 3 "volume key size 4096"
variant areakey 'j["keyslots"]["0"]["area"]["key_size"] = 48'
refused "keyslot cipher key size" "test" 3 "48-byte key is not supported"
variant areasize 'j["keyslots"]["0"]["area"]["size"] = "4096"'
refused "keyslot area smaller than its key material" "test" 3 "smaller than the key material"
variant salt 'j["keyslots"]["0"]["kdf"]["salt"] = "c2hvcnQ="'
refused "short salt" "test" 3 "salt is not 32 bytes"
variant integrity 'j["segments"]["0"]["integrity"] = {"type": "hmac(sha256)", "journal_encryption": "none", "journal_integrity": "none"}'
refused "integrity segment" "table" 3 "integrity segments are not supported"
variant reqs 'j["config"]["requirements"] = {"mandatory": ["online-reencrypt-v2"]}'
refused "unmet mandatory requirement" "table" 3 "online-reencrypt-v2"
variant two 'j["segments"]["1"] = dict(j["segments"]["0"]); j["segments"]["0"]["size"] = "1048576"; j["segments"]["1"]["offset"] = str(int(j["segments"]["0"]["offset"]) + 1048576); j["digests"]["0"]["segments"].append("1")'
run encfs-dmsetup dump "$T/v.img"
is "$rc" 0 "two segments: a valid header"
refused "more than one data segment" "table" 3 "only a single data segment"
variant zero 'j["segments"]["0"]["offset"] = "0"'
refused "data offset 0 without a detached header" "table" 3 "data offset 0"
variant kdfhash 'j["keyslots"]["0"]["kdf"]["hash"] = "md5"'
refused "PBKDF2 hash outside the list" "test" 3 'hash "md5" is not supported'
variant deep 'j["tokens"]["0"] = {"type": "x", "keyslots": [], "n": eval("[" * 60 + "]" * 60)}'
run encfs-dmsetup dump "$T/v.img"
is "$rc" 0 "a deep but valid token: loads (tokens are not used)"
variant deeper 'j["tokens"]["0"] = {"type": "x", "keyslots": [], "n": eval("[" * 70 + "]" * 70)}'
refused "JSON nested deeper than 64" "dump" 3 "LUKS2 header JSON"

# persistent flags become table features, in cryptsetup's order; unknown flags are ignored
variant flags 'j["config"]["flags"] = ["no-write-workqueue", "allow-discards", "x-unknown", "same-cpu-crypt"]'
run encfs-dmsetup table --no-keyring "$T/v.img" <"$T/key"
like "$out" " allow_discards same_cpu_crypt no_write_workqueue" "persistent flags: features in cryptsetup's order"

# checksums and the sequence id
cp "$T/base.img" "$T/v.img"
printf 'X' | dd of="$T/v.img" bs=1 seek=5000 conv=notrunc 2>/dev/null
printf 'X' | dd of="$T/v.img" bs=1 seek=21384 conv=notrunc 2>/dev/null
refused "both checksums wrong" "dump" 7 "no header copy with valid magic, size and checksum"
cp "$T/base.img" "$T/v.img"
printf 'X' | dd of="$T/v.img" bs=1 seek=5000 conv=notrunc 2>/dev/null
run encfs-dmsetup dump "$T/v.img"
like "$out" "Header copy:   	secondary" "primary checksum wrong: the secondary copy is used"
variant newer 'seq += 1; label = b"second"' secondary
run encfs-dmsetup dump "$T/v.img"
like "$out" "Label:         	second" "secondary with the higher seqid wins"
variant older 'seq -= 1; label = b"second"' secondary
run encfs-dmsetup dump "$T/v.img"
like "$out" "Header copy:   	primary" "secondary with a lower seqid loses"
variant badjson2 'seq += 1; j["segments"]["0"]["offset"] = "x"' secondary
run encfs-dmsetup dump "$T/v.img"
like "$out" "Header copy:   	primary" "a newer secondary that fails validation is not used"
done_testing
