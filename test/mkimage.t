#!/bin/sh
# encfs-mkimage on the host, run as an unprivileged user (nobody), against cryptsetup and e2fsprogs
# as the oracles.  For each tree (empty, one file, many small files, a 100 MiB file, deep
# directories, long names, links, modes and owners) the image must: show the expected header
# through cryptsetup luksDump; open with cryptsetup --test-passphrase and the key file; hold the
# volume key that encfs-dmsetup table --showkeys prints, as cryptsetup --dump-volume-key reports
# it; pass encfs-dmsetup dump and test (with the printed key check value).  Its data segment,
# decrypted here in Python from the format (test/mkimage.py, holes included: they decrypt to
# garbage, as through dm-crypt, so every block ext4 did not write is random), must give an ext4
# that e2fsck -fn passes, with no inode table marked zeroed, holding the tree exactly (debugfs).
# Then sparseness (what IMAGE allocates stays near what the tree takes), refusals (too small a
# --size with the size that fits, which then fits; an existing IMAGE or key file; bad options;
# unreadable input) that leave nothing behind, and a SIGTERM while mke2fs runs.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; run sets out, err, rc
. "$ENCFS_SRC/test/lib.sh"

for c in cryptsetup mke2fs e2fsck debugfs dumpe2fs setpriv; do
	PATH=$PATH:/usr/sbin:/sbin command -v $c >/dev/null 2>&1 || skip_all "$c not installed (make deps)"
done
"$PYTHON" -c 'import cryptography' 2>/dev/null || skip_all "python3-cryptography not installed"
PATH=$PATH:/usr/sbin:/sbin
M="$PYTHON $ENCFS_SRC/test/mkimage.py"

# The tool runs as nobody (uid 65534) when the test runs as root; its outputs and TMPDIR are in
# $U, which nobody owns.
U=$T/u
mkdir -p "$U/tmp"
AS=
if [ "$(id -u)" -eq 0 ]; then
	chmod 755 "$T"
	chown -R 65534:65534 "$U"
	AS="setpriv --reuid=65534 --regid=65534 --clear-groups"
fi
# shellcheck disable=SC2086 # $AS is a command prefix or nothing
asuser() { $AS env TMPDIR="$U/tmp" "$@"; }
want_uid=$(id -u)
[ "$want_uid" -ne 0 ] || want_uid=65534
run asuser id -u
is "$out" "$want_uid" "encfs-mkimage runs unprivileged"
MK=$ENCFS_BIN/encfs-mkimage

# --- the trees -------------------------------------------------------------------------------
TR=$T/trees
mkdir -p "$TR/empty" "$TR/one" "$TR/many" "$TR/big" "$TR/deep" "$TR/names" "$TR/links"
printf 'hello, encrypted world\n' >"$TR/one/hello.txt"
# many small files of varied sizes in a few directories
"$PYTHON" - "$TR/many" <<'EOF'
import os, random, sys
r = random.Random(13)
for d in range(8):
    os.makedirs(os.path.join(sys.argv[1], "d%d" % d))
    for i in range(250):
        with open(os.path.join(sys.argv[1], "d%d" % d, "f%04d" % i), "wb") as f:
            f.write(r.randbytes(r.choice([0, 1, 100, 1000, 4095, 4096, 4097, 9000])))
EOF
head -c 104857600 /dev/urandom >"$TR/big/100MiB.bin"
# deep directories
p=$TR/deep
for i in $(seq 1 60); do
	p=$p/level$i
done
mkdir -p "$p"
printf 'at the bottom\n' >"$p/bottom.txt"
printf 'half way\n' >"$TR/deep/level1/level2/level3/level4/level5/middle.txt"
# long names: 255 bytes (ext4's limit), spaces, UTF-8
long=$(printf 'n%.0s' $(seq 1 255))
printf 'long\n' >"$TR/names/$long"
mkdir "$TR/names/$(printf 'd%.0s' $(seq 1 200))"
printf 'spaced\n' >"$TR/names/with some spaces.txt"
printf 'utf-8\n' >"$TR/names/naïve-日本語-🙂.txt"
# links, modes, owners, a fifo, an xattr, and the root directory's own mode and owner
L=$TR/links
mkdir -p "$L/a" "$L/b" "$L/shared" "$L/private"
printf 'linked twice\n' >"$L/a/data"
ln "$L/a/data" "$L/b/same-data"
ln -s ../a/data "$L/b/short-link"
ln -s "$(printf 'x%.0s' $(seq 1 100))/a/target/that/does/not/exist" "$L/b/long-dangling-link"
ln -s a "$L/dir-link"
printf '#!/bin/sh\n' >"$L/setuid"
chmod 4755 "$L/setuid"
chmod 2775 "$L/shared"
chmod 1777 "$L/private"
printf 'read only\n' >"$L/readonly"
chmod 0444 "$L/readonly"
printf 'theirs\n' >"$L/owned"
chown 1234:5678 "$L/owned"
printf 'nobody only\n' >"$L/secret"
chown 65534:65534 "$L/secret"
chmod 0600 "$L/secret"
mkfifo "$L/fifo"
printf 'with an xattr\n' >"$L/xattr"
"$PYTHON" -c 'import os, sys; os.setxattr(sys.argv[1], "user.encfs", b"value \x00\xff")' "$L/xattr" 2>/dev/null ||
	diag "user xattrs are not supported here: the xattr case checks nothing"
chown 1234:5678 "$L"
chmod 0775 "$L"
chmod -R go+rX "$TR/empty" "$TR/one" "$TR/many" "$TR/big" "$TR/deep" "$TR/names"

printf 'the test key, 32 bytes long ...\n' >"$T/given.key" # key file bytes as they are
chmod 644 "$T/given.key"
printf 'not the key' >"$T/wrong.key"

# field NAME: the value of "NAME value" in the tool's output
field() { printf '%s\n' "$out" | sed -n "s/^$1 //p"; }
kcv_of() { sha256sum "$1" | cut -c1-8; }
json() { "$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    d = d[k]
print(d if isinstance(d, str) else json.dumps(d))' "$@"; }

# check LABEL IMAGE KEYFILE KDF TREE: everything an image of $TR/TREE must pass
check() {
	name=$1 img=$2 key=$3 kdf=$4 tree=$5
	cryptsetup luksDump --dump-json-metadata "$img" >"$T/h.json" 2>"$T/cs.err"
	ok $? "$name: cryptsetup reads the header"
	is "$(json "$T/h.json" segments 0 type) $(json "$T/h.json" segments 0 offset) $(json "$T/h.json" segments 0 size) $(json "$T/h.json" segments 0 encryption) $(json "$T/h.json" segments 0 sector_size)" \
		"crypt 16777216 dynamic aes-xts-plain64 4096" "$name: one crypt segment at 16 MiB, aes-xts-plain64, 4096-byte sectors"
	is "$(json "$T/h.json" keyslots 0 key_size) $(json "$T/h.json" keyslots 0 area encryption) $(json "$T/h.json" keyslots 0 af stripes) $(json "$T/h.json" keyslots 0 kdf type)" \
		"64 aes-xts-plain64 4000 $kdf" "$name: keyslot 0: 512-bit key, aes-xts-plain64 area, 4000 stripes, $kdf"
	if [ "$kdf" = pbkdf2 ]; then
		is "$(json "$T/h.json" keyslots 0 kdf iterations) $(json "$T/h.json" keyslots 0 kdf hash)" "1000 sha256" \
			"$name: pbkdf2-sha256 with 1000 iterations, cryptsetup's minimum"
	else
		is "$(json "$T/h.json" keyslots 0 kdf time) $(json "$T/h.json" keyslots 0 kdf memory) $(json "$T/h.json" keyslots 0 kdf cpus)" \
			"4 262144 4" "$name: argon2id, 4 passes over 256 MiB, 4 lanes"
	fi
	is "$(json "$T/h.json" digests 0 type) $(json "$T/h.json" digests 0 hash) $(json "$T/h.json" config keyslots_size) $(json "$T/h.json" config json_size)" \
		"pbkdf2 sha256 16744448 12288" "$name: pbkdf2 digest, cryptsetup's default areas"
	run cryptsetup open --test-passphrase --key-file "$key" "$img"
	is "$rc" 0 "$name: cryptsetup open --test-passphrase accepts the key file"
	run cryptsetup open --test-passphrase --key-file "$T/wrong.key" "$img"
	is "$rc" 2 "$name: ... and refuses another key"
	rm -f "$T/vk.bin"
	cryptsetup luksDump -q --dump-volume-key --volume-key-file "$T/vk.bin" --key-file "$key" "$img" >/dev/null 2>&1
	want=$(od -An -v -tx1 "$T/vk.bin" | tr -d ' \n')
	run encfs-dmsetup table --showkeys --no-keyring --key-file "$key" "$img"
	is "$rc $(printf '%s' "$out" | cut -d' ' -f5) ${#want}" "0 $want 128" \
		"$name: encfs-dmsetup table --showkeys gives the volume key cryptsetup dumps"
	run encfs-dmsetup dump "$img"
	is "$rc" 0 "$name: encfs-dmsetup dump accepts the header"
	run encfs-dmsetup test --key-file "$key" "$img"
	is "$rc $out" "0 key-check-value $(kcv_of "$key")" "$name: encfs-dmsetup test opens it and prints the key check value"
	# the data segment decrypted as dm-crypt would: an ext4 that holds the tree
	$M decrypt "$img" "$want" "$T/plain.img"
	run e2fsck -fn "$T/plain.img"
	is "$rc" 0 "$name: e2fsck -fn finds the decrypted filesystem clean (every unwritten block garbage)"
	[ "$rc" -eq 0 ] || diag "$(printf '%s\n' "$out" | head -20)"
	run dumpe2fs "$T/plain.img"
	unlike "$out" "ITABLE_ZEROED" "$name: no inode table is marked zeroed (the kernel initialises them)"
	run $M compare "$TR/$tree" "$T/plain.img"
	is "$rc:$out" "0:$([ "$tree" = empty ] && echo '(an empty tree)')" \
		"$name: the filesystem holds the tree: names, types, modes, owners, links, contents, xattrs"
	rm -f "$T/plain.img"
}

# data_bytes FILE: the bytes FILE holds in data extents (not holes)
data_bytes() {
	"$PYTHON" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); size = os.fstat(fd).st_size; off = n = 0
while off < size:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE); n += h - d; off = h
print(n)' "$1"
}

# allocated FILE: the bytes FILE allocates (0 when there is no FILE)
allocated() {
	_b=$(stat -c %b "$1" 2>/dev/null) || _b=0
	echo $((_b * 512))
}

# make IMAGE TREE [encfs-mkimage option]...: $U/IMAGE.img of $TR/TREE, made as nobody
make() {
	img=$U/$1.img tree=$2
	shift 2
	run asuser "$MK" "$@" -o "$img" "$TR/$tree"
	is "$rc" 0 "$tree: encfs-mkimage${*:+ $*} exits 0"
	[ "$rc" -eq 0 ] || diag "$err"
	is "$(field image) $(field size)" "$img $(stat -c %s "$img" 2>/dev/null)" "$tree: prints the image and its size"
	is "$(field allocated)" "$(allocated "$img")" "$tree: prints the bytes the image allocates"
	is "$(($(field size) % 4096))" 0 "$tree: the size is whole 4096-byte sectors"
}

# --- each tree -------------------------------------------------------------------------------
make empty empty
is "$(field key-file)" "$U/empty.img.key" "empty: a new key file beside the image"
is "$(stat -c '%s %a %u' "$U/empty.img.key")" "32 600 $(asuser id -u)" "empty: the new key: 32 bytes, mode 0600, the user's"
is "$(field key-check-value)" "$(kcv_of "$U/empty.img.key")" "empty: key check value = first 8 hex digits of SHA-256 of the key file"
check empty "$U/empty.img" "$U/empty.img.key" pbkdf2 empty

make one one --key-file "$T/given.key"
is "$(field key-file) $(field key-check-value)" "$T/given.key $(kcv_of "$T/given.key")" "one: --key-file: its bytes are the key"
ok "$([ ! -e "$U/one.img.key" ]; echo $?)" "one: no key file is made when one is given"
check one "$U/one.img" "$T/given.key" pbkdf2 one
# the secondary header copy alone (the primary wiped, on a copy of the header area) opens too
dd if="$U/one.img" of="$T/second.img" bs=1M count=17 2>/dev/null
dd if=/dev/zero of="$T/second.img" bs=4096 count=1 conv=notrunc 2>/dev/null
run encfs-dmsetup test --key-file "$T/given.key" "$T/second.img"
is "$rc" 0 "one: the secondary header alone opens with encfs-dmsetup"
run cryptsetup open --test-passphrase --key-file "$T/given.key" "$T/second.img"
is "$rc" 0 "one: ... and with cryptsetup"

# shellcheck disable=SC2016 # the inner shell expands its arguments
run asuser sh -c '"$1" --key-file - -o "$2" "$3" <"$4"' sh "$MK" "$U/many.img" "$TR/many" "$T/given.key"
is "$rc" 0 "many: --key-file - reads the key from standard input"
is "$(printf '%s\n' "$out" | sed -n 's/^key-check-value //p')" "$(kcv_of "$T/given.key")" "many: the key check value of what came in"
check many "$U/many.img" "$T/given.key" pbkdf2 many

make big big
check big "$U/big.img" "$U/big.img.key" pbkdf2 big
db=$(data_bytes "$U/big.img")
ok "$([ "$db" -le $((104857600 + 2097152)) ]; echo $?)" "big: IMAGE holds $db bytes of data for a 100 MiB file: the file and 2 MiB at most"

for tree in deep names links; do
	make "$tree" "$tree"
	check "$tree" "$U/$tree.img" "$U/$tree.img.key" pbkdf2 "$tree"
done

make one-argon2id one --pbkdf argon2id --key-file "$T/given.key"
check "one, argon2id" "$U/one-argon2id.img" "$T/given.key" argon2id one

# five block groups, most of them never written (BLOCK_UNINIT): still clean with garbage there
make many-600M many --size 600M
is "$(field size)" 629145600 "many, --size 600M: the image has that size"
check "many in 600 MiB" "$U/many-600M.img" "$U/many-600M.img.key" pbkdf2 many
db=$(data_bytes "$U/many-600M.img")
dt=$(du -s -B1 "$TR/many" | cut -f1)
ok "$([ "$db" -le $((dt + 2097152)) ]; echo $?)" "many in 600 MiB: IMAGE holds $db bytes of data, the tree takes $dt: no more than 2 MiB more"

# --- 4 GiB holding 50 MiB: what IMAGE allocates ------------------------------------------------
mkdir -p "$TR/50MiB"
for i in $(seq 1 50); do
	head -c 1048576 /dev/urandom >"$TR/50MiB/file$i"
done
chmod -R go+rX "$TR/50MiB"
make 4G 50MiB --size 4G
is "$(field size)" 4294967296 "50 MiB in 4 GiB: the image is 4 GiB"
alloc=$(allocated "$U/4G.img")
diag "a 4 GiB image of 50 MiB of files allocates $alloc bytes ($((alloc / 1048576)) MiB; du: $(du -h "$U/4G.img" | cut -f1))"
ok "$([ "$alloc" -lt 67108864 ]; echo $?)" "50 MiB in 4 GiB: IMAGE allocates less than 64 MiB"
run encfs-dmsetup test --key-file "$U/4G.img.key" "$U/4G.img"
is "$rc" 0 "50 MiB in 4 GiB: encfs-dmsetup opens it (test/vm-mkimage.t mounts it through dm-crypt)"
run cryptsetup open --test-passphrase --key-file "$U/4G.img.key" "$U/4G.img"
is "$rc" 0 "50 MiB in 4 GiB: so does cryptsetup"

# --- --free, --size ------------------------------------------------------------------------
make free one --free 100M
sz=$(field size)
ok "$([ "$sz" -ge $((116 * 1048576)) ] && [ "$sz" -le $((140 * 1048576)) ]; echo $?)" \
	"--free 100M: a 16 MiB header, 100 MiB free, the tree and ext4's overhead: $sz bytes"

# refused NAME RC MESSAGE CMD...: runs CMD as nobody; exit status RC, one line with MESSAGE
refused() {
	_n=$1 _rc=$2 _msg=$3
	shift 3
	run asuser "$@"
	is "$rc" "$_rc" "$_n: exit status $_rc"
	like "$err" "$_msg" "$_n: says so"
	is "$(printf '%s\n' "$err" | wc -l) $(printf '%s' "$err" | cut -c1-14)" "1 encfs-mkimage:" "$_n: in one line, encfs-mkimage: ..."
	is "$out" "" "$_n: prints nothing on standard output"
}
# nothing_made NAME IMAGE: neither IMAGE nor its key file nor a hidden temporary beside it, and
# nothing in TMPDIR
nothing_made() {
	_left=$(find "$(dirname "$2")" "$U/tmp" -mindepth 1 -maxdepth 1 \( -name "*$(basename "$2")*" -o \
		-path "$U/tmp/*" \) -print)
	is "$_left" "" "$1: no image, key file or temporary file is left"
}

refused "--size too small" 2 "too small for $TR/many: it needs --size " "$MK" --size 20M -o "$U/small.img" "$TR/many"
nothing_made "--size too small" "$U/small.img"
fits=$(printf '%s\n' "$err" | sed -n 's/.*it needs --size \([0-9]*\) .*/\1/p')
ok "$([ -n "$fits" ] && [ "$((fits % 4096))" -eq 0 ]; echo $?)" "--size too small: the size that fits is given in bytes ($fits)"
make fits many --size "$fits"
check "many in the size said to fit" "$U/fits.img" "$U/fits.img.key" pbkdf2 many
refused "--size 1M" 2 "too small" "$MK" --size 1M -o "$U/small.img" "$TR/empty"
refused "--size not whole sectors" 2 "not a multiple of 4096" "$MK" --size 100000000 -o "$U/small.img" "$TR/one"
refused "--size not a size" 2 "--size 12X: not a size" "$MK" --size 12X -o "$U/small.img" "$TR/one"
refused "--size and --free" 2 "exclude each other" "$MK" --size 1G --free 1M -o "$U/small.img" "$TR/one"
refused "--pbkdf unknown" 2 "--pbkdf md5: pbkdf2 or argon2id" "$MK" --pbkdf md5 -o "$U/small.img" "$TR/one"
refused "no DIR" 2 "missing DIR" "$MK" -o "$U/small.img"
refused "no IMAGE name" 2 "give -o IMAGE" "$MK" /
nothing_made "usage errors" "$U/small.img"

# an existing IMAGE or key file is never replaced
printf 'precious\n' >"$U/exists.img"
refused "IMAGE exists" 2 "$U/exists.img: IMAGE exists" "$MK" -o "$U/exists.img" "$TR/one"
is "$(cat "$U/exists.img")" "precious" "IMAGE exists: left as it was"
ok "$([ ! -e "$U/exists.img.key" ]; echo $?)" "IMAGE exists: no key file made"
printf 'old key' >"$U/keyed.img.key"
refused "key file exists" 2 "$U/keyed.img.key: the key file exists" "$MK" -o "$U/keyed.img" "$TR/one"
is "$(cat "$U/keyed.img.key") $([ -e "$U/keyed.img" ] && echo made)" "old key " "key file exists: left as it was, no image made"
ln -s "$U/nowhere" "$U/dangling.img"
refused "IMAGE a dangling symlink" 2 "IMAGE exists" "$MK" -o "$U/dangling.img" "$TR/one"
ok "$([ ! -e "$U/nowhere" ]; echo $?)" "IMAGE a dangling symlink: nothing made where it points"

# bad input
refused "DIR missing" 3 "$T/missing: No such file or directory" "$MK" -o "$U/bad.img" "$T/missing"
refused "DIR a file" 3 "not a directory" "$MK" -o "$U/bad.img" "$T/given.key"
mkdir -p "$TR/unreadable/sub"
printf 'root only\n' >"$TR/unreadable/sub/secret"
chmod 0600 "$TR/unreadable/sub/secret"
if [ "$(id -u)" -eq 0 ]; then
	refused "an unreadable file" 3 "$TR/unreadable/sub/secret: cannot read the file" "$MK" -o "$U/bad.img" "$TR/unreadable"
else
	skip "an unreadable file: needs root to make a file the test user cannot read"
fi
refused "key file missing" 3 "$T/missing.key: No such file" "$MK" --key-file "$T/missing.key" -o "$U/bad.img" "$TR/one"
: >"$T/empty.key"
chmod 644 "$T/empty.key"
refused "key file empty" 3 "it is empty" "$MK" --key-file "$T/empty.key" -o "$U/bad.img" "$TR/one"
nothing_made "bad input" "$U/bad.img"

# --- mke2fs out of space: the estimate grown (without --size), a refusal (with it) --------------
# A stand-in mke2fs fails once as mke2fs does when blocks run out, then runs the real one.
mkdir -p "$T/nospace"
printf '#!/bin/sh\nif [ ! -e "%s" ]; then : >"%s"; echo "mke2fs: Could not allocate block in ext2 filesystem while populating file system" >&2; exit 1; fi\nexec "%s" "$@"\n' \
	"$U/failed-once" "$U/failed-once" "$(command -v mke2fs)" >"$T/nospace/mke2fs"
chmod 755 "$T/nospace/mke2fs"
run asuser env PATH="$T/nospace:$PATH" "$MK" -o "$U/grown.img" "$TR/one"
is "$rc" 0 "mke2fs out of space once: encfs-mkimage tries again, larger"
ok "$([ "$(field size)" -gt "$(stat -c %s "$U/one.img")" ]; echo $?)" "... in a larger image than the estimate ($(field size) bytes)"
run encfs-dmsetup test --key-file "$U/grown.img.key" "$U/grown.img"
is "$rc" 0 "... which opens"
rm -f "$U/failed-once"
refused "mke2fs out of space with --size" 3 "does not fit in --size 67108864: mke2fs ran out of space" \
	env PATH="$T/nospace:$PATH" "$MK" --size 64M -o "$U/nospace.img" "$TR/one"
nothing_made "mke2fs out of space with --size" "$U/nospace.img"
rm -f "$U/failed-once"

# --- SIGTERM while mke2fs runs ----------------------------------------------------------------
# A stand-in mke2fs, first on PATH, writes its pid and waits; then SIGTERM to encfs-mkimage: it
# must end by the signal, take its mke2fs with it, and leave no image, key file or temporary file.
mkdir -p "$T/bin"
printf '#!/bin/sh\necho $$ >"%s"\nexec sleep 120\n' "$U/mke2fs.pid" >"$T/bin/mke2fs"
chmod 755 "$T/bin/mke2fs"
# (not through the function: $! must be encfs-mkimage itself, which setpriv and env exec)
# shellcheck disable=SC2086
$AS env TMPDIR="$U/tmp" PATH="$T/bin:$PATH" "$MK" -o "$U/killed.img" "$TR/one" >"$T/killed.out" 2>&1 &
pid=$!
i=0
while [ ! -s "$U/mke2fs.pid" ] && [ $i -lt 200 ]; do
	sleep 0.05
	i=$((i + 1))
done
child=$(cat "$U/mke2fs.pid" 2>/dev/null)
ok "$([ -n "$child" ]; echo $?)" "SIGTERM: mke2fs started"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
is "$rc" 143 "SIGTERM: encfs-mkimage ends by the signal"
# alive CHILD: 0 while the process runs (a zombie has ended: no init reaps it in some containers)
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }
i=0
while [ -n "$child" ] && alive "$child" && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
ok "$([ -n "$child" ] && alive "$child" && echo 1 || echo 0)" "SIGTERM: its mke2fs is gone too"
rm -f "$U/mke2fs.pid"
nothing_made "SIGTERM" "$U/killed.img"

done_testing
