#!/bin/sh
# The sidecar image: `make image` builds the Dockerfile (buildah, no daemon or registry; base
# images from Debian's packages), and builds it again at once when nothing changed.  In the
# image: /encfs.sh is the entry point and is sh/encfs.sh; the file set of `make install
# PREFIX=/usr` is there; every tool's libraries resolve (ldd inside the image, with its own loader)
# and every tool runs; mount, umount, losetup, fusermount3 and the CA store are there; nothing of
# the build stage is (compilers, headers, objects, sources, test files, keys or certificates outside
# the CA store, .git); .dockerignore lets only the sources into the build context (no build
# directory, test/ with npm's packages and the VM cache, .git).  The size is printed and must stay
# under 100 MB.
# The checks run in a working container of the image (buildah from, mount, run with chroot
# isolation), removed at the end.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets T, out, err and rc
. "$ENCFS_SRC/test/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root (buildah and mmdebstrap in root mode)"
MAX_SIZE=100000000 # bytes (100 MB, as buildah counts them)

make_image() { # make_image IIDFILE: make image, its output in $out, $err, $rc
	run env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$ENCFS_SRC" image IIDFILE="$1"
}
t0=$(date +%s)
make_image "$T/iid"
t1=$(date +%s)
is "$rc" 0 "make image builds the image"
[ "$rc" -eq 0 ] || { printf '%s\n' "$out" "$err" | tail -n 30 | sed 's/^/# /'; bail "no image"; }
printf '%s\n' "$out" | sed 's/^/# /'
iid=$(cat "$T/iid")
make_image "$T/iid2"
t2=$(date +%s)
is "$rc:$(cat "$T/iid2" 2>/dev/null)" "0:$iid" "make image again, nothing changed: the same image"
unlike "$out" "making docker.io" "... and the base images are reused"
diag "make image: $((t1 - t0)) s, again: $((t2 - t1)) s"

ctr=$(buildah from --quiet --pull=never "$iid") || bail "buildah from $iid failed"
trap 'buildah rm "$ctr" >/dev/null 2>&1; _cleanup' EXIT
root=$(buildah mount "$ctr") || bail "buildah mount failed"
inimage() { # inimage CMD...: CMD run in the image (chroot isolation: its own loader and libraries)
	buildah run --isolation chroot "$ctr" -- "$@"
}

# --- configuration -----------------------------------------------------------------------------
buildah inspect --type image "$iid" >"$T/inspect.json" || bail "buildah inspect failed"
is "$("$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1]))["OCIv1"]["config"]
print(json.dumps([c.get("Entrypoint"), c.get("Cmd"), c.get("WorkingDir", "")]))' "$T/inspect.json")" \
	'[["/encfs.sh"], null, ""]' "the entry point is /encfs.sh, with no command arguments, in /"
inimage cat /encfs.sh >"$T/entry" 2>&1
cmp -s "$T/entry" "$ENCFS_SRC/sh/encfs.sh"
ok $? "/encfs.sh is sh/encfs.sh"
ok "$(inimage /encfs.sh --help >/dev/null 2>&1; echo $?)" "/encfs.sh runs in the image (--help)"

# --- what make install installs ---------------------------------------------------------------
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$ENCFS_SRC" install \
	PREFIX=/usr DESTDIR="$T/inst" B="$ENCFS_BUILD" >"$T/install.log" 2>&1 || bail "make install failed: $(tail -n 5 "$T/install.log")"
(cd "$T/inst" && find . -type f | sed 's/^\.//' | LC_ALL=C sort) >"$T/inst.list"
is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
missing="" differ="" tools=""
while read -r f; do
	if [ ! -f "$root$f" ]; then
		missing="$missing $f"
	elif [ "$(stat -c %a "$root$f")" != "$(stat -c %a "$T/inst$f")" ]; then
		differ="$differ $f(mode)"
	elif is_elf "$T/inst$f"; then
		tools="$tools $f"
		is_elf "$root$f" || differ="$differ $f(not ELF)"
	else
		cmp -s "$root$f" "$T/inst$f" || differ="$differ $f"
	fi
done <"$T/inst.list"
is "$missing" "" "every file of make install PREFIX=/usr is in the image"
is "$differ" "" "... with its mode, the scripts and man pages byte for byte"
progs() { find "$1/usr/bin" -maxdepth 1 -name 'encfs*' | sed 's|.*/||' | LC_ALL=C sort | tr '\n' ' '; }
is "$(progs "$root")" "$(progs "$T/inst")" "the image has no other encfs programs"
[ -n "$tools" ] || bail "make install installed no program"

# --- libraries and programs --------------------------------------------------------------------
for f in $tools; do
	run inimage /usr/bin/ldd "$f"
	is "$rc:$(printf '%s\n' "$out" | grep -c 'not found')" "0:0" "ldd $f in the image: every library resolves"
	run inimage "$f" --help
	is "$rc" 0 "${f##*/} runs in the image (--help)"
done
for p in /usr/bin/mount /usr/bin/umount /usr/sbin/losetup /usr/bin/fusermount3 /bin/sh; do
	run inimage /usr/bin/ldd "$p"
	is "$rc:$(printf '%s\n' "$out" | grep -c 'not found')" "0:0" "$p is in the image and its libraries resolve"
done
ncert=$(grep -c 'BEGIN CERTIFICATE' "$root/etc/ssl/certs/ca-certificates.crt" 2>/dev/null)
ok "$([ "${ncert:-0}" -ge 100 ] && echo 0 || echo 1)" "the CA store is there ($ncert certificates)"

# --- nothing of the build stage ---------------------------------------------------------------
found=""
for c in cc gcc cpp c99 ld as make clang pkg-config; do
	[ ! -e "$root/usr/bin/$c" ] && [ ! -L "$root/usr/bin/$c" ] || found="$found $c"
done
is "$found" "" "no compiler, linker or make"
# shellcheck disable=SC2016 # dpkg-query's format
is "$(inimage dpkg-query -W -f '${db:Status-Abbrev}:${Package}\n' gcc libc6-dev make pkg-config libcurl4-openssl-dev \
	2>/dev/null | grep '^ii' | tr '\n' ' ')" "" "none of the build stage's packages is installed"
is "$(find "$root/usr/include" -mindepth 1 2>/dev/null | head -n 3)" "" "no headers (/usr/include)"
is "$(cd "$root" && find . -xdev \( -path ./src -o -path ./out -o -name '*.[cho]' -o -name '*.a' -o -name '*.t' \
	-o -name .git \) | head -n 5 | tr '\n' ' ')" "" "no sources, objects, static libraries, tests, /src, /out or .git"
# The project's own files: only what make install puts there (encfs.sh, the man pages) is in the
# image.  By content, so that a renamed copy counts too.
(cd "$ENCFS_SRC" && find . \( -name .git -o -name 'build*' -o -name node_modules -o -name cache -o -name __pycache__ \) -prune \
	-o -type f -size +64c -print0 | xargs -0 sha256sum) | awk '{ print $1, substr($2, 3) }' | LC_ALL=C sort >"$T/src.sums"
(cd "$root" && find . -xdev -type f -size +64c -print0 | xargs -0 sha256sum) | cut -d' ' -f1 | LC_ALL=C sort -u >"$T/image.sums"
is "$(LC_ALL=C join -o 1.2 "$T/src.sums" "$T/image.sums" | LC_ALL=C sort | grep -v '^man/' | tr '\n' ' ')" "sh/encfs.sh " \
	"no file of the source tree is in the image but encfs.sh and the man pages (no test fakes, no sources)"
# Keys and certificates: a private key in no file but the system's libraries (GnuTLS keeps its
# self-test keys), not in our programs either; certificates in files only in the CA store (the
# tools' pinned AMD roots are in their program files).
"$PYTHON" - "$root" >"$T/pem.out" <<'EOF'
import os, re, sys
root = sys.argv[1]
def ours(rel):
    return rel.startswith("usr/bin/encfs")
key = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s:,-]{64,}?-----END")
cert = re.compile(rb"-----BEGIN CERTIFICATE-----\s*[A-Za-z0-9+/=\s]{64,}?-----END")
store = ("etc/ssl/certs/", "usr/share/ca-certificates/")
for d, dirs, files in os.walk(root):
    for n in files:
        p = os.path.join(d, n)
        rel = os.path.relpath(p, root)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        data = open(p, "rb").read()
        elf = data[:4] == b"\x7fELF"
        if key.search(data) and (not elf or ours(rel)):
            print("private key: /" + rel)
        elif cert.search(data) and not rel.startswith(store) and not elf:
            print("certificate: /" + rel)
EOF
is "$(tr '\n' ' ' <"$T/pem.out")" "" "no private key anywhere, no certificate outside the CA store"

# --- the build context ------------------------------------------------------------------------
# .dockerignore, on a context holding each thing it must keep out (and what it must keep)
mkdir -p "$T/ctx"
cp "$ENCFS_SRC/.dockerignore" "$T/ctx/"
for f in Makefile COPYING cmd/encfs-x/main.c cmd/encfs-x/tool.mk common/x.c common/x.h man/encfs-x.1 \
	sh/encfs.sh sh/aci/policy-in.json sh/image/build.sh .git/HEAD build/bin/encfs-x build/cmd/x.o \
	build-san/bin/x build-clang/x build-fuzz/x test/node/node_modules/azurite/x test/node/package.json \
	test/vm/cache/vmlinuz test/vm/run.sh test/fakes/__pycache__/akv.pyc test/fakes/akv.py Dockerfile \
	README.md .ci/run .gitignore; do
	mkdir -p "$T/ctx/$(dirname "$f")"
	echo "$f" >"$T/ctx/$f"
done
printf 'FROM scratch\nCOPY . /ctx\n' >"$T/Probefile"
if buildah bud --quiet --layers=false --pull=never --iidfile "$T/probe.iid" -f "$T/Probefile" "$T/ctx" >/dev/null 2>"$T/probe.err"; then
	pctr=$(buildah from --quiet "$(cat "$T/probe.iid")")
	seen=$(cd "$(buildah mount "$pctr")/ctx" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' ')
	buildah rm "$pctr" >/dev/null
	buildah rmi "$(cat "$T/probe.iid")" >/dev/null
else
	seen="buildah bud failed: $(tail -n 1 "$T/probe.err")"
fi
is "$seen" "COPYING Makefile cmd/encfs-x/main.c cmd/encfs-x/tool.mk common/x.c common/x.h man/encfs-x.1 sh/encfs.sh " \
	".dockerignore lets only the sources into the context: no build directory, test/ (node_modules, VM cache), .git"

# --- size ---------------------------------------------------------------------------------------
size=$(buildah images --format '{{.Size}}' --filter "id=${iid#sha256:}" | head -n 1)
bytes=$(echo "$size" | awk '{ m = 1; if ($2 == "kB") m = 1e3; if ($2 == "MB") m = 1e6; if ($2 == "GB") m = 1e9; printf "%d", $1 * m }')
diag "image ${iid#sha256:}: $size ($(buildah inspect --type image --format '{{len .OCIv1.RootFS.DiffIDs}}' "$iid") layers)"
ok "$([ "${bytes:-0}" -gt 0 ] && [ "$bytes" -lt $MAX_SIZE ] && echo 0 || echo 1)" "the image is under 100 MB ($size)"
done_testing
