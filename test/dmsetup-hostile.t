#!/bin/sh
# Hostile LUKS2 headers: a valid image from cryptsetup, its JSON changed and both checksums made
# right again (so only the metadata rules can refuse it).  Each must be refused with exit 3 (or 7
# for checksums) and a one-line error, quickly (no CPU or memory spent on absurd KDF costs), and
# without a crash (run this under SANITIZE=1 for ASan/UBSan).  Odd but valid headers must load:
# what is accepted or refused here is what cryptsetup 2.6.1 accepts or refuses (checked by hand
# with `cryptsetup luksDump` and `open --test-passphrase` on the same images), except where
# encfs-dmsetup(1), CAVEATS, says otherwise.
# shellcheck disable=SC2154 # out, err, rc come from run in lib.sh
# shellcheck disable=SC1091 # lib.sh is sourced from the tree at run time
. "$ENCFS_SRC/test/lib.sh"

command -v cryptsetup >/dev/null 2>&1 || skip_all "cryptsetup not installed (test/deps.apt)"

cat >"$T/mangle.py" <<'EOF'
# mangle.py IMG CODE [which]: runs CODE on the header JSON (as j) of both copies (or the one
# named: primary/secondary), then rewrites the JSON area and the checksum.  CODE may also set
# seq (the sequence id), label (bytes), version (the binary header's) or csum (the checksum
# algorithm, bytes) for the copy.
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
    env = {"j": j, "seq": seq, "label": None, "version": 2, "csum": b"sha256"}
    exec(code, env)
    text = json.dumps(env["j"], separators=(",", ":")).encode()
    assert len(text) < size - 4096
    data[off + 4096:off + size] = text + b"\0" * (size - 4096 - len(text))
    data[off + 16:off + 24] = struct.pack(">Q", env["seq"])
    if env["label"] is not None:
        data[off + 24:off + 72] = env["label"].ljust(48, b"\0")
    data[off + 6:off + 8] = struct.pack(">H", env["version"])
    data[off + 72:off + 104] = env["csum"].ljust(32, b"\0")
    data[off + 448:off + 512] = b"\0" * 64
    digest = hashlib.new(env["csum"].decode().lower(), bytes(data[off:off + size])).digest()
    data[off + 448:off + 448 + len(digest)] = digest
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
refused "huge PBKDF2 iteration count" "test" 3 "keyslot 0: PBKDF2 with 2147483647 iterations is above the limit of 10000000 (--max-pbkdf2-iterations)"
variant iter2 'j["keyslots"]["0"]["kdf"]["iterations"] = 2147483648'
refused "PBKDF2 iteration count past OpenSSL's int, the limit at its highest" "test --max-pbkdf2-iterations 2147483647" 3 "keyslot 0: PBKDF2 with 2147483648 iterations is above the limit of 2147483647"
variant diter 'j["digests"]["0"]["iterations"] = 2147483647'
refused "huge digest iteration count" "test" 3 "keyslot 0: its digest's PBKDF2 with 2147483647 iterations is above the limit of 10000000 (--max-pbkdf2-iterations)"
variant argon_mem 'j["keyslots"]["0"]["kdf"] = {"type": "argon2id", "time": 4, "memory": 4194305, "cpus": 1, "salt": j["keyslots"]["0"]["kdf"]["salt"]}'
refused "huge Argon2 memory" "test" 3 "keyslot 0: Argon2 memory of 4194305 KiB is above the limit of "
variant argon_time 'j["keyslots"]["0"]["kdf"] = {"type": "argon2id", "time": 4294967295, "memory": 1048576, "cpus": 4, "salt": j["keyslots"]["0"]["kdf"]["salt"]}'
refused "huge Argon2 time" "test" 3 "keyslot 0: Argon2 time cost 4294967295 is above the limit of 32 (--max-argon2-time)"
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
# nesting: cryptsetup's JSON parser (json-c) takes 32 levels, the top-level object being the first
variant deep 'j["tokens"]["0"] = {"type": "x", "keyslots": [], "n": eval("[" * 28 + "1" + "]" * 28)}'
run encfs-dmsetup dump "$T/v.img"
is "$rc" 0 "a token nested 32 levels deep: loads, as in cryptsetup (tokens are not used)"
variant deeper 'j["tokens"]["0"] = {"type": "x", "keyslots": [], "n": eval("[" * 29 + "1" + "]" * 29)}'
refused "JSON nested 33 levels deep (cryptsetup refuses it)" "dump" 3 "nested deeper than 32 levels"
variant deepest 'j["tokens"]["0"] = {"type": "x", "keyslots": [], "n": eval("[" * 70 + "]" * 70)}'
refused "JSON nested deeper than our parser's 64" "dump" 3 "LUKS2 header JSON"

# strings cryptsetup requires to be non-empty (json_contains_string)
for f in 'keyslots"]["0"]["type' 'keyslots"]["0"]["kdf"]["hash' 'keyslots"]["0"]["kdf"]["salt' \
	'keyslots"]["0"]["af"]["hash' 'keyslots"]["0"]["area"]["encryption' 'segments"]["0"]["type' \
	'digests"]["0"]["type'; do
	variant empty "j[\"$f\"] = \"\""
	refused "empty $f" "dump" 3 "LUKS2 header: "
done
variant emptytoken 'j["tokens"]["0"] = {"type": "", "keyslots": []}'
refused "empty token type" "dump" 3 "token without type"
# ... and long ones, which it accepts: kept (cut for display), unsupported where used
variant longtype 'j["keyslots"]["1"] = {"type": "x" * 40, "key_size": 32, "area": {"type": "raw", "offset": "290816", "size": "4096"}}'
run encfs-dmsetup dump "$T/v.img"
is "$rc" 0 "a keyslot of an unknown type with a 40-character name: the header loads"
run encfs-dmsetup test "$T/v.img" <"$T/key"
is "$rc" 0 "... and the luks2 keyslot still opens"
variant longkdf 'j["keyslots"]["0"]["kdf"]["type"] = "k" * 30'
run encfs-dmsetup dump "$T/v.img"
is "$rc" 0 "a kdf type of 30 characters: the header loads"
refused "a kdf type of 30 characters: the keyslot is refused when used" "test" 3 'kdf "kkkkkkkkkkkkkkkkkkkk..." is not supported'

# numbers cryptsetup wants as JSON integers
variant stripesf 'j["keyslots"]["0"]["af"]["stripes"] = 4000.0'
refused "AF stripes 4000.0 (not an integer)" "dump" 3 "af without hash or stripes"
variant areakeyf 'j["keyslots"]["0"]["area"]["key_size"] = 64.0'
refused "area key_size 64.0 (not an integer)" "dump" 3 "area without encryption, key_size"
variant argonf 'j["keyslots"]["0"]["kdf"] = {"type": "argon2id", "time": 4.5, "memory": 1024, "cpus": 1, "salt": j["keyslots"]["0"]["kdf"]["salt"]}'
refused "Argon2 time 4.5 (not an integer)" "dump" 3 "argon2 keyslot without time"

# priorities: cryptsetup tries preferred, then normal keyslots, and no others
variant prio7 'j["keyslots"]["0"]["priority"] = 7'
refused "priority 7: the keyslot is never tried" "test" 3 "no usable key slot"
variant prio2s 'j["keyslots"]["0"]["priority"] = "2"'
run encfs-dmsetup test "$T/v.img" <"$T/key"
is "$rc" 0 'priority "2" (a string, read as json-c reads it): tried'

# keyslot ids: cryptsetup opens keyslots by the names "0".."31"
variant id00 'j["keyslots"]["00"] = j["keyslots"].pop("0"); j["digests"]["0"]["keyslots"] = ["00"]'
refused 'keyslot "00" (cryptsetup finds no digest for keyslot 0)' "dump" 3 "not assigned to exactly one digest"
variant id40 'j["keyslots"]["40"] = j["keyslots"].pop("0"); j["digests"]["0"]["keyslots"] = ["40"]; j["tokens"]["40"] = {"type": "x", "keyslots": ["40"]}; j["digests"]["40"] = {"type": "y", "keyslots": [], "segments": []}'
run encfs-dmsetup dump "$T/v.img"
is "$rc" 0 "keyslot, token and digest ids of 40: the header loads, as in cryptsetup"
refused "keyslot 40 is never tried" "test" 3 "no usable key slot"

# a backup segment (reencryption) does not count as the first data offset
variant backup 'j["segments"]["1"] = dict(j["segments"]["0"], offset="40960", size="4096", flags=["backup-final"]); j["digests"]["0"]["segments"] = ["0", "1"]'
run encfs-dmsetup dump "$T/v.img"
is "$rc" 0 "a backup segment inside the keyslots area: the header loads, as in cryptsetup"

# a primary header with the LUKS magic but an unknown version is not skipped for the secondary
variant v3 'version = 3' primary
refused "primary header of version 3" "dump" 3 "version 3 is not supported"

# hash names in any case, as cryptsetup's crypto backend takes them
variant csumcase 'csum = b"SHA256"; j["keyslots"]["0"]["kdf"]["hash"] = "SHA256"'
run encfs-dmsetup test "$T/v.img" <"$T/key"
is "$rc" 0 "checksum algorithm and PBKDF2 hash SHA256 in capitals: opens"

# dm-crypt gets iv_offset 0, as from cryptsetup, whatever the segment's iv_tweak
variant ivtweak 'j["segments"]["0"]["iv_tweak"] = "8"'
run encfs-dmsetup table --no-keyring "$T/v.img" <"$T/key"
like "$out" "0000 0 $(realpath "$T/v.img") 4096" "iv_tweak 8: iv_offset 0 in the table"

# a digest salt that is not 32 bytes: cryptsetup 2.6 takes any key then; refused here
variant dsalt 'import base64; j["digests"]["0"]["salt"] = base64.b64encode(base64.b64decode(j["digests"]["0"]["salt"])[:16]).decode()'
refused "digest salt of 16 bytes" "test" 3 "digest salt is not 32 bytes"

# header text never reaches the terminal raw: no control character, one line
variant ctl 'j["segments"]["0"]["encryption"] = "aes\n\u001b[31m-xts-plain64"'
refused "control characters in the cipher name" "table" 3 'cipher "aes??[31m-xts-plain64"'
unlike "$err" "$(printf '\033')" "... and no escape character on stderr"

# a detached header that is the data device itself is not detached: offset 0 stays refused
variant zero2 'j["segments"]["0"]["offset"] = "0"'
run encfs-dmsetup table --no-keyring --header "$T/v.img" "$T/v.img" <"$T/key"
is "$rc" 3 "--header naming DEVICE itself with data offset 0: refused"
like "$err" "data offset 0" "... as data offset 0 without a detached header"

# references resolved without walking the header again for each: a token listing keyslot "0"
# 45000 times behind a keyslot carrying 45000 values took seconds of CPU per header copy
truncate -s 16M "$T/big.img"
cryptsetup luksFormat -q --type luks2 --key-file "$T/key" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--luks2-metadata-size 4M --offset 32768 "$T/big.img" >"$T/cs.log" 2>&1 || bail "cryptsetup luksFormat (4 MiB metadata) failed: $(cat "$T/cs.log")"
cp "$T/big.img" "$T/v.img"
"$PYTHON" "$T/mangle.py" "$T/v.img" 'a = j["keyslots"]["0"]["area"]
j["keyslots"] = {"1": {"type": "x", "key_size": 1, "x": [0] * 45000,
	"area": {"type": "raw", "offset": str(int(a["offset"]) + int(a["size"])), "size": "4096"}}, "0": j["keyslots"]["0"]}
j["tokens"]["0"] = {"type": "x", "keyslots": ["0"] * 45000}' || bail "mangling for the reference test failed"
cpu=$("$PYTHON" -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.returncode, int((u.ru_utime + u.ru_stime) * 1000))' encfs-dmsetup dump "$T/v.img")
is "${cpu% *}" 0 "90000 references and values: the header loads"
is "$((${cpu#* } < 1000))" 1 "... in under 1 s of CPU (took ${cpu#* } ms)"

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
run encfs-dmsetup dump --json "$T/v.img"
like "$out" '"header_copy":"primary"' "secondary with a lower seqid loses"
variant badjson2 'seq += 1; j["segments"]["0"]["offset"] = "x"' secondary
run encfs-dmsetup dump --json "$T/v.img"
like "$out" '"header_copy":"primary"' "a newer secondary that fails validation is not used"
# The cost policy (encfs-dmsetup(1), LIMITS): defaults, options that lower and raise them, and
# the total time spent on keyslots.  A refusal names the keyslot and the limit.
refused_cost() { # refused_cost NAME IMG OPTIONS EXIT SUBSTRING
	# shellcheck disable=SC2086 # OPTIONS are words
	run encfs-dmsetup test $3 "$2" <"$T/key"
	is "$rc" "$4" "$1: exit $4"
	like "$err" "$5" "$1: error says \"$5\""
	is "$(printf '%s\n' "$err" | wc -l)" 1 "$1: one line on stderr"
}
cp "$T/base.img" "$T/v.img"
refused_cost "--max-pbkdf2-iterations below the keyslot's 1000" "$T/v.img" "--max-pbkdf2-iterations 999" 3 \
	"keyslot 0: PBKDF2 with 1000 iterations is above the limit of 999 (--max-pbkdf2-iterations)"
run encfs-dmsetup test --max-pbkdf2-iterations 1000 "$T/v.img" <"$T/key"
is "$rc" 0 "--max-pbkdf2-iterations equal to the keyslot's: opens"
variant iter20m 'j["keyslots"]["0"]["kdf"]["iterations"] = 20000000'
run encfs-dmsetup -v test --max-pbkdf2-iterations 19999999 "$T/v.img" <"$T/key"
is "$rc" 3 "20000000 iterations under a lowered limit: refused before deriving"
for bad in 0 -1 x 2147483648; do
	run encfs-dmsetup test --max-pbkdf2-iterations "$bad" "$T/v.img" <"$T/key"
	is "$rc:$err" "2:encfs-dmsetup: usage: --max-pbkdf2-iterations wants a whole number from 1 to 2147483647 (see --help)" \
		"--max-pbkdf2-iterations $bad: a usage error"
done
run encfs-dmsetup dump --max-unlock-time 5 "$T/v.img"
is "$rc" 2 "dump takes no limits"

truncate -s 8M "$T/a2.img"
cryptsetup luksFormat -q --type luks2 --key-file "$T/key" --pbkdf argon2id --pbkdf-force-iterations 4 \
	--pbkdf-memory 65536 --pbkdf-parallel 1 --offset 4096 "$T/a2.img" >"$T/cs.log" 2>&1 ||
	bail "cryptsetup luksFormat (argon2id) failed: $(cat "$T/cs.log")"
refused_cost "--max-argon2-memory below the keyslot's 64 MiB" "$T/a2.img" "--max-argon2-memory 63" 3 \
	"keyslot 0: Argon2 memory of 65536 KiB is above the limit of 64512 KiB (--max-argon2-memory, and the memory available)"
refused_cost "--max-argon2-time below the keyslot's 4" "$T/a2.img" "--max-argon2-time 3" 3 \
	"keyslot 0: Argon2 time cost 4 is above the limit of 3 (--max-argon2-time)"
run encfs-dmsetup test --max-argon2-memory 64 --max-argon2-time 4 "$T/a2.img" <"$T/key"
is "$rc" 0 "Argon2 limits equal to the keyslot's: opens"

# Many slow keyslots (a hostile header's 32 keyslots at the maximum took 20 minutes): unlocking
# stops once --max-unlock-time has been spent, in the middle of a key derivation.  Three keyslots
# of 3000000 iterations (a second or more each here) and a limit of 1 s: stopped in the first.
cp "$T/base.img" "$T/many.img"
for k in 1 2; do
	printf 'other%s' "$k" >"$T/key$k"
	cryptsetup luksAddKey -q --key-file "$T/key" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
		"$T/many.img" "$T/key$k" >"$T/cs.log" 2>&1 || bail "cryptsetup luksAddKey failed: $(cat "$T/cs.log")"
done
"$PYTHON" "$T/mangle.py" "$T/many.img" 'for k in j["keyslots"].values(): k["kdf"]["iterations"] = 3000000' ||
	bail "mangling the keyslots' iterations failed"
printf 'not the key' >"$T/wrong"
run encfs-dmsetup test --max-unlock-time 1 --key-file "$T/wrong" "$T/many.img"
is "$rc:$err" "3:encfs-dmsetup: unlocking: stopped during keyslot 0: unlocking took 1000 ms, the limit (--max-unlock-time)" \
	"three slow keyslots, --max-unlock-time 1: stopped during the first derivation, exit 3, naming it and the limit"
# the same line under a long program name (argv[0] is the invoker's, of any length): it was
# written into a 256-byte buffer by the signal handler, unchecked (ASan: stack-buffer-overflow)
long=$(printf '%0250d' 0 | tr 0 d)
ln -s "$(command -v encfs-dmsetup)" "$T/$long"
run "$T/$long" test --max-unlock-time 1 --key-file "$T/wrong" "$T/many.img"
is "$rc:$err" "3:$long: unlocking: stopped during keyslot 0: unlocking took 1000 ms, the limit (--max-unlock-time)" \
	"  under a program name of 250 bytes: the same line, nothing written past its buffer"
run encfs-dmsetup test --key-file "$T/wrong" "$T/many.img"
is "$rc:$err" "7:encfs-dmsetup: unlocking: no key slot matches this key" "the default limit lets all three be tried"
# the key's own keyslot over a limit, another keyslot tried and wrong: the error says which was not
# tried and why (a "wrong key" alone would hide it)
cp "$T/many.img" "$T/v.img"
"$PYTHON" "$T/mangle.py" "$T/v.img" 'j["keyslots"]["0"]["kdf"]["iterations"] = 20000000
for k in ("1", "2"): j["keyslots"][k]["kdf"]["iterations"] = 1000' || bail "mangling keyslot 0 failed"
run encfs-dmsetup test --key-file "$T/key" "$T/v.img"
is "$rc:$err" "7:encfs-dmsetup: unlocking: no key slot matches this key (not tried: keyslot 0: PBKDF2 with 20000000 iterations is above the limit of 10000000 (--max-pbkdf2-iterations))" \
	"the key's keyslot over a limit: the error names it and the limit"

# An empty key never opens anything: a header whose keyslot takes the empty passphrase (cryptsetup
# makes one from an empty key file) is what a hostile storage owner serves when the step before
# encfs-dmsetup in a pipeline failed and left nothing on the pipe.
: >"$T/empty.key"
truncate -s 8M "$T/empty.img"
cryptsetup luksFormat -q --type luks2 --key-file "$T/empty.key" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--offset 4096 "$T/empty.img" >"$T/cs.log" 2>&1 || bail "cryptsetup luksFormat (empty key) failed: $(cat "$T/cs.log")"
run cryptsetup open --test-passphrase --key-file "$T/empty.key" "$T/empty.img"
is "$rc" 0 "oracle: cryptsetup opens that header with the empty key"
msg="it is empty (the step before this one probably failed: check its error)"
for sub in test table open; do
	args="$T/empty.img"
	[ "$sub" = open ] && args="$T/empty.img emptykey"
	# shellcheck disable=SC2086 # DEVICE [NAME]
	run encfs-dmsetup "$sub" $args <"$T/empty.key"
	is "$rc:$err" "3:encfs-dmsetup: reading the key from standard input: $msg" "$sub: an empty key on standard input is refused"
	# shellcheck disable=SC2086
	run encfs-dmsetup "$sub" --key-file "$T/empty.key" $args
	is "$rc:$err" "3:encfs-dmsetup: reading the key from $T/empty.key: $msg" "$sub: an empty --key-file is refused"
done
is "$(printf 'x' | encfs-dmsetup test "$T/empty.img" 2>&1; echo "rc=$?")" \
	"encfs-dmsetup: unlocking: no key slot matches this key
rc=7" "a one-byte key is a key: tried, and wrong"
done_testing
