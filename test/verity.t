#!/bin/sh
# encfs-mkimage --verity against veritysetup as the oracle, on the host.  For several images (an
# empty tree, small files, a 20 MiB random file, a mostly empty 300 MiB filesystem whose holes the
# tree covers as zeros): the image ends with the tree (its size is the hash offset plus the tree),
# the LUKS data segment has the fixed size of the data area, `veritysetup verify DATA IMAGE ROOT
# --hash-offset ...` accepts what encfs-mkimage wrote, `veritysetup format` of the same data with
# the same salt writes the same tree and root hash, and one flipped byte in the data area (a
# written block, a hole) or in the hash area (top level, level 0) makes verify refuse.  Then
# encfs-dmsetup table/dump show the verity layer and refuse a layout that does not match the
# header or the device (exit 7) or incomplete options (exit 2); and the configuration's verity
# object is accepted, or refused with the field's path (read_write true, bad values), by
# encfs-config and encfs.sh alike.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; run sets out, err, rc
. "$ENCFS_SRC/test/lib.sh"

PATH=$PATH:/usr/sbin:/sbin
for c in veritysetup cryptsetup mke2fs; do
	command -v $c >/dev/null 2>&1 || skip_all "$c not installed (make deps)"
done

# field FILE NAME: the value of the "NAME VALUE" line encfs-mkimage printed
field() { sed -n "s/^$2 //p" "$1"; }
# flip FILE OFFSET: one byte at OFFSET inverted, in place
flip() {
	"$PYTHON" -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}
# verify DATA IMAGE ROOT SALT BLOCKS OFFSET: veritysetup's own status
verify() {
	veritysetup verify "$1" "$2" "$3" --no-superblock --salt="$4" --data-blocks="$5" --hash-offset="$6" \
		>"$T/verify.out" 2>&1
}

# --- trees -----------------------------------------------------------------------------------
mkdir -p "$T/empty" "$T/small/d" "$T/big" "$T/sparse"
printf 'hello\n' >"$T/small/a"
printf 'world\n' >"$T/small/d/b"
head -c 20971520 /dev/urandom >"$T/big/random"
printf 'x\n' >"$T/sparse/x"

n=0
for tree in empty small big sparse; do
	n=$((n + 1))
	img=$T/$tree.img
	set -- --verity -o "$img"
	[ $tree != sparse ] || set -- "$@" --size 300M
	run encfs-mkimage "$@" "$T/$tree"
	is "$rc" 0 "$tree: encfs-mkimage --verity exits 0"
	[ "$rc" -eq 0 ] || { diag "$err"; continue; }
	printf '%s\n' "$out" >"$T/$tree.out"
	root=$(field "$T/$tree.out" verity-root-hash)
	salt=$(field "$T/$tree.out" verity-salt)
	blocks=$(field "$T/$tree.out" verity-data-blocks)
	hoff=$(field "$T/$tree.out" verity-hash-offset)
	size=$(field "$T/$tree.out" size)
	is "${#root}:${#salt}" "64:64" "$tree: a 32-byte root hash and a 32-byte salt are printed"
	is "$hoff" "$((16777216 + blocks * 4096))" "$tree: the tree starts right after the data area"
	is "$(stat -c %s "$img")" "$size" "$tree: the image is the size printed"
	"$PYTHON" -c 'import json, sys
v = json.loads("{" + sys.argv[1] + "}")["verity"]
assert v == {"root_hash": sys.argv[2], "salt": sys.argv[3], "data_blocks": int(sys.argv[4]),
             "hash_offset": int(sys.argv[5])}, v' "$(field "$T/$tree.out" verity-config)" \
		"$root" "$salt" "$blocks" "$hoff"
	ok $? "$tree: the configuration snippet is JSON holding the four values"
	run cryptsetup luksDump "$img"
	like "$out" "length: $((blocks * 4096)) [bytes]" "$tree: the LUKS data segment has the fixed size of the data area"

	# the data area alone (sparse): veritysetup takes no data offset
	dd if="$img" of="$T/data" bs=1M skip=16 count=$((blocks / 256)) conv=sparse status=none
	verify "$T/data" "$img" "$root" "$salt" "$blocks" "$hoff"
	_rc=$?
	ok $_rc "$tree: veritysetup verify accepts the tree encfs-mkimage wrote"
	[ $_rc -eq 0 ] || diag "$(cat "$T/verify.out")"

	# the oracle writes the same tree for the same data and salt
	rm -f "$T/oracle"
	veritysetup format "$T/data" "$T/oracle" --no-superblock --salt="$salt" >"$T/format.out" 2>&1
	is "$(sed -n 's/^Root hash:[[:space:]]*//p' "$T/format.out")" "$root" "$tree: veritysetup format gives the same root hash"
	tail -c +$((hoff + 1)) "$img" | cmp -s - "$T/oracle"
	ok $? "$tree: ... and the same hash tree, byte for byte"

	# flipped bytes: in a written data block, in a hole, in the top level and in the last
	# block of level 0
	data_at=$((16777216 + 1024))
	[ $tree != big ] || data_at=$((16777216 + blocks * 4096 / 2 + 7))
	tree_blocks=$(((size - hoff) / 4096))
	for where in "data:$data_at" "hole:$((16777216 + (blocks - 3) * 4096 + 100))" \
		"top level:$((hoff + 5))" "level 0:$((hoff + (tree_blocks - 1) * 4096))"; do
		cp --sparse=always "$img" "$T/bad.img"
		flip "$T/bad.img" "${where#*:}"
		dd if="$T/bad.img" of="$T/data" bs=1M skip=16 count=$((blocks / 256)) conv=sparse status=none
		verify "$T/data" "$T/bad.img" "$root" "$salt" "$blocks" "$hoff"
		_rc=$?
		[ "$_rc" -ne 0 ]
		ok $? "$tree: one byte flipped in the ${where%%:*} area: veritysetup verify refuses (exit $_rc)"
	done
	[ $n -eq 2 ] || rm -f "$img" "$T/data" "$T/oracle" "$T/bad.img"
done

# --- encfs-dmsetup: table, dump, refusals (the small image) -----------------------------------
img=$T/small.img
root=$(field "$T/small.out" verity-root-hash)
salt=$(field "$T/small.out" verity-salt)
blocks=$(field "$T/small.out" verity-data-blocks)
hoff=$(field "$T/small.out" verity-hash-offset)
V="--verity-root-hash $root --verity-salt $salt --verity-data-blocks $blocks"
# shellcheck disable=SC2086 # $V: words
run encfs-dmsetup table --no-keyring $V --verity-hash-offset "$hoff" --key-file "$img.key" "$img" vol
is "$rc" 0 "table with the verity options exits 0"
is "$(printf '%s\n' "$out" | sed -n 1p)" \
	"0 $((blocks * 8)) verity 1 $img $img 4096 4096 $blocks $((hoff / 4096 - 4096)) sha256 $root $salt" \
	"... its first line is the verity table: the data area from the segment's offset, the tree after it, no corruption option"
like "$(printf '%s\n' "$out" | sed -n 2p)" "0 $((blocks * 8)) crypt aes-xts-plain64 " "... the second is dm-crypt over exactly the data blocks"
like "$(printf '%s\n' "$out" | sed -n 2p)" " 0 /dev/mapper/vol-verity 0 1 sector_size:4096" "... over vol-verity, from its first sector"
# shellcheck disable=SC2086
run encfs-dmsetup dump $V --verity-hash-offset "$hoff" "$img"
is "$rc" 0 "dump with the verity options exits 0"
like "$out" "root hash:  	$root" "... shows the root hash"
like "$out" "layout:     	data area at 16777216 = the LUKS data segment" "... and that the image agrees with the layout"

# shellcheck disable=SC2086
run encfs-dmsetup table --no-keyring --verity-root-hash "$root" --verity-salt "$salt" \
	--verity-data-blocks $((blocks - 1)) --verity-hash-offset "$hoff" --key-file "$img.key" "$img" vol
is "$rc:$err" "7:encfs-dmsetup: $img: verity: the LUKS data segment holds $blocks blocks, not the --verity-data-blocks $((blocks - 1)) pinned (not the pinned image)" \
	"data blocks other than the header's segment: exit 7, one line"
# shellcheck disable=SC2086
run encfs-dmsetup table --no-keyring $V --verity-hash-offset $((hoff - 4096)) --key-file "$img.key" "$img" vol
is "$rc" 7 "a hash offset inside the data area: exit 7"
like "$err" "--verity-hash-offset $((hoff - 4096)) is inside or before the data area" "... named"
# shellcheck disable=SC2086
run encfs-dmsetup table --no-keyring $V --verity-hash-offset $((hoff + 4096)) --key-file "$img.key" "$img" vol
is "$rc" 7 "a hash offset whose tree would end past the device: exit 7"
like "$err" "ends before the hash tree" "... named"
cp --sparse=always "$img" "$T/short.img"
truncate -s -4096 "$T/short.img"
# shellcheck disable=SC2086
run encfs-dmsetup table --no-keyring $V --verity-hash-offset "$hoff" --key-file "$img.key" "$T/short.img" vol
is "$rc" 7 "an image cut short by one block: exit 7"
run encfs-dmsetup table --no-keyring --verity-root-hash "$root" --key-file "$img.key" "$img" vol
is "$rc" 2 "one verity option alone: usage, exit 2"
like "$err" "go together" "... all four go together"
# shellcheck disable=SC2086
run encfs-dmsetup table --no-keyring --verity-root-hash "${root%?}" --verity-salt "$salt" \
	--verity-data-blocks "$blocks" --verity-hash-offset "$hoff" --key-file "$img.key" "$img" vol
is "$rc" 2 "a root hash of 63 digits: exit 2"
like "$err" "--verity-root-hash: not 64 hex digits" "... named"
# the root hash is checked against the tree's top block, read from the image (no device is made
# for it): a changed top level, or another root or salt, is refused (exit 7, naming NAME); a
# changed data block is left to dm-verity (EIO when read)
cp --sparse=always "$img" "$T/top.img"
flip "$T/top.img" $((hoff + 5))
# shellcheck disable=SC2086
run encfs-dmsetup table --no-keyring $V --verity-hash-offset "$hoff" --key-file "$img.key" "$T/top.img" vol
is "$rc:$out" "7:" "a byte of the top level flipped: table refuses, exit 7, no table line"
is "$err" "encfs-dmsetup: vol: dm-verity refused the image: its hash tree does not match the pinned root hash (the blob was replaced, by an older image perhaps, or altered; or the configured root_hash/salt are not this image's)" \
	"... one line naming the root hash mismatch"
run encfs-dmsetup table --no-keyring --verity-root-hash "$(printf '%064d' 0)" --verity-salt "$salt" \
	--verity-data-blocks "$blocks" --verity-hash-offset "$hoff" --key-file "$img.key" "$img" vol
is "$rc" 7 "another root hash: exit 7"
run encfs-dmsetup table --no-keyring --verity-root-hash "$root" --verity-salt "00$salt" \
	--verity-data-blocks "$blocks" --verity-hash-offset "$hoff" --key-file "$img.key" "$img" vol
is "$rc" 7 "another salt: exit 7"
cp --sparse=always "$img" "$T/top.img"
flip "$T/top.img" $((16777216 + 1024))
# shellcheck disable=SC2086
run encfs-dmsetup table --no-keyring $V --verity-hash-offset "$hoff" --key-file "$img.key" "$T/top.img" vol
is "$rc" 0 "a data byte flipped: table exits 0 (dm-verity refuses the block when it is read)"
rm -f "$T/top.img"
# a header whose data segment offset wraps the layout check around 2^64 (the tree "after" it):
# refused before anything is mapped, the verity line never printed
cp --sparse=always "$img" "$T/wrap.img"
"$PYTHON" - "$T/wrap.img" <<'EOF'
import hashlib, json, struct, sys
f = open(sys.argv[1], "r+b")
head = bytearray(f.read(4096))
size = struct.unpack(">Q", head[8:16])[0]
for off in (0, size):
    f.seek(off)
    data = bytearray(f.read(size))
    area = bytes(data[4096:])
    j = json.loads(area[:area.index(b"\0")])
    j["segments"]["0"]["offset"] = str(2**64 - 4096)
    text = json.dumps(j, separators=(",", ":")).encode()
    data[4096:] = text + b"\0" * (size - 4096 - len(text))
    data[448:512] = b"\0" * 64
    data[448:480] = hashlib.sha256(bytes(data)).digest()
    f.seek(off)
    f.write(data)
EOF
# shellcheck disable=SC2086
run encfs-dmsetup table --no-keyring $V --verity-hash-offset "$hoff" --key-file "$img.key" "$T/wrap.img" vol
is "$rc:$out" "7:" "a data segment offset of 2^64 - 4096 (the layout check wraps): exit 7, no table line"
like "$err" "verity: the LUKS data segment" "... the segment is named"
rm -f "$T/wrap.img"
# an image without a tree: its segment is dynamic
run encfs-mkimage -o "$T/plain.img" "$T/small"
# shellcheck disable=SC2086
run encfs-dmsetup table --no-keyring $V --verity-hash-offset "$hoff" --key-file "$T/plain.img.key" "$T/plain.img" vol
is "$rc" 7 "an image made without --verity: exit 7"
like "$err" "no fixed size" "... its data segment has no fixed size"

# --- configuration ---------------------------------------------------------------------------
# cfg VERITY-JSON [READ_WRITE]: a configuration with one raw-key filesystem
cfg() {
	printf '{"azure_filesystems": [{"mount_point": "%s/mnt/fs", "azure_url": "http://127.0.0.1:9/c/x.img",
	  "raw_key": "00ff", "read_write": %s, "verity": %s}]}\n' "$T" "${2:-false}" "$1" >"$T/cfg"
}
good="{\"root_hash\": \"$root\", \"salt\": \"$salt\", \"data_blocks\": $blocks, \"hash_offset\": $hoff}"
cfg "$good"
run encfs-config --allow-raw-key --allow-http -f "$T/cfg" check
is "$rc" 0 "config: the verity object is accepted"
run encfs-config --allow-raw-key --allow-http -f "$T/cfg" get "azure_filesystems[0].verity.hash_offset"
is "$out" "$hoff" "config: get hands hash_offset to the shell"

# refuse NAME MESSAGE: encfs-config check and encfs.sh both refuse $T/cfg, exit 3, one line
refuse() {
	run encfs-config --allow-raw-key --allow-http -f "$T/cfg" check
	is "$rc" 3 "config refused, exit 3: $1"
	like "$err" "$2" "... named: $1"
	is "$(printf '%s\n' "$err" | wc -l)" 1 "... one line: $1"
	_check="$rc:$err"
	EncfsSideCarArgs=$(cat "$T/cfg") run sh "$ENCFS_SRC/sh/encfs.sh" --allow-raw-key --allow-http
	is "$rc:$err" "$_check" "... and encfs.sh says the same: $1"
}
cfg "$good" true
refuse "with read_write true" "azure_filesystems[0].verity: pins a read-only image: it cannot go with read_write true"
cfg "{\"root_hash\": \"${root%??}\", \"salt\": \"$salt\", \"data_blocks\": $blocks, \"hash_offset\": $hoff}"
refuse "a root hash of 62 digits" "azure_filesystems[0].verity.root_hash: is 62 hex digits, not 64"
cfg "{\"root_hash\": \"$root\", \"data_blocks\": $blocks, \"hash_offset\": $hoff}"
refuse "no salt" "azure_filesystems[0].verity.salt: missing"
cfg "{\"root_hash\": \"$root\", \"salt\": \"zz\", \"data_blocks\": $blocks, \"hash_offset\": $hoff}"
refuse "a salt that is not hex" "azure_filesystems[0].verity.salt: salt is not hex"
cfg "{\"root_hash\": \"$root\", \"salt\": \"$salt\", \"data_blocks\": 1, \"hash_offset\": $hoff}"
refuse "one data block" "azure_filesystems[0].verity.data_blocks: is not a whole number from 2 to 2^40"
cfg "{\"root_hash\": \"$root\", \"salt\": \"$salt\", \"data_blocks\": \"$blocks\", \"hash_offset\": $hoff}"
refuse "data_blocks as a string" "azure_filesystems[0].verity.data_blocks: is a string, expected a number"
cfg "{\"root_hash\": \"$root\", \"salt\": \"$salt\", \"data_blocks\": $blocks, \"hash_offset\": $((hoff + 1))}"
refuse "a hash offset off a block" "azure_filesystems[0].verity.hash_offset: is not a positive whole number of bytes, a multiple of 4096"
cfg "{\"root_hash\": \"$root\", \"salt\": \"$salt\", \"data_blocks\": $blocks, \"hash_offset\": $hoff, \"x\": 1}"
run encfs-config --allow-raw-key --allow-http -f "$T/cfg" check
like "$err" "azure_filesystems[0].verity.x" "config: an unknown member of verity is pointed out"

done_testing
