"""Oracles for test/mkimage.t, written from the formats, not from encfs-mkimage's code.

  decrypt IMAGE KEYHEX OUT
      The data segment of a LUKS2 image (at 16 MiB, aes-xts-plain64, 4096-byte sectors) decrypted
      as dm-crypt decrypts it for a LUKS2 table: each 4096-byte sector on its own, its XTS tweak
      the sector's offset in the segment counted in 512-byte units (no iv_large_sectors), little
      endian.  Holes in IMAGE are decrypted too: they come out as garbage, as they do through
      dm-crypt, so that OUT is what the kernel would see.

  compare DIR EXT4
      Whether the ext4 image EXT4 holds the tree DIR, read with e2fsprogs' debugfs (not the
      kernel): every name in every directory (lost+found aside), each entry's type and mode,
      owner and group, size, the root directory's too; hard links (names that share an inode in
      DIR share one in EXT4, and no others); contents and link targets (debugfs rdump); user
      extended attributes (debugfs ea_get).  Prints what differs and exits 1, or exits 0.
"""
import os
import stat
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

DATA_OFFSET = 16 << 20
SECTOR = 4096


def decrypt(image, keyhex, out):
    key = bytes.fromhex(keyhex)
    with open(image, "rb") as fi, open(out, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size - DATA_OFFSET
        fi.seek(DATA_OFFSET)
        pos = 0
        while pos < size:
            chunk = fi.read(1 << 20)
            if not chunk:
                break
            res = bytearray()
            for i in range(0, len(chunk), SECTOR):
                tweak = ((pos + i) // 512).to_bytes(16, "little")
                d = Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor()
                res += d.update(chunk[i:i + SECTOR]) + d.finalize()
            fo.write(res)
            pos += len(chunk)


def q(path):
    if '"' in path or "\n" in path:
        raise SystemExit("compare: names with quotes or newlines are not supported: %r" % path)
    return '"' + path + '"'


def compare(tree, img):
    problems = []
    entries = {}  # relative path -> lstat
    dirs = [""]
    for top, dnames, fnames in os.walk(tree):
        rel = os.path.relpath(top, tree)
        rel = "" if rel == "." else rel
        for n in dnames + fnames:
            p = os.path.join(rel, n)
            entries[p] = os.lstat(os.path.join(tree, p))
            if stat.S_ISDIR(entries[p].st_mode):
                dirs.append(p)
    work = tempfile.mkdtemp(prefix="mkimage-compare.")
    cmds, xattrs = [], []
    for d in dirs:
        cmds.append("ls -p " + q("/" + d))
    for p, st in entries.items():
        if stat.S_ISLNK(st.st_mode):
            continue
        for name in os.listxattr(os.path.join(tree, p), follow_symlinks=False):
            if name.startswith("user."):
                f = os.path.join(work, "xattr-%d" % len(xattrs))
                xattrs.append((p, name, f))
                cmds.append("ea_get -f %s %s %s" % (f, q("/" + p), name))
    with open(os.path.join(work, "cmds"), "w") as f:
        f.write("\n".join(cmds) + "\n")
    r = subprocess.run(["debugfs", "-f", os.path.join(work, "cmds"), img], capture_output=True, text=True,
                       errors="surrogateescape")
    listing, cur = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("debugfs: ls -p "):
            cur = line[len('debugfs: ls -p "/'):-1]
            listing[cur] = {}
        elif line.startswith("/") and cur is not None:
            f = line.split("/")
            # /ino/mode/uid/gid/name/size/
            listing[cur][f[5]] = (int(f[1]), int(f[2], 8), int(f[3]), int(f[4]), f[6])
    inode_of = {}
    for d in dirs:
        got = listing.get(d)
        if got is None:
            problems.append("/%s: not a directory in the image" % d)
            continue
        want = sorted(n for n in os.listdir(os.path.join(tree, d)))
        have = sorted(n for n in got if n not in (".", "..") and not (d == "" and n == "lost+found"))
        if want != have:
            problems.append("/%s: names differ: only in DIR %s, only in the image %s" %
                            (d, sorted(set(want) - set(have))[:10], sorted(set(have) - set(want))[:10]))
        for n in want:
            if n not in got:
                continue
            p = os.path.join(d, n)
            st, (ino, mode, uid, gid, size) = entries[p], got[n]
            if (mode, uid, gid) != (st.st_mode, st.st_uid, st.st_gid):
                problems.append("/%s: mode/uid/gid %o %d %d, in DIR %o %d %d" %
                                (p, mode, uid, gid, st.st_mode, st.st_uid, st.st_gid))
            if (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and int(size or 0) != st.st_size:
                problems.append("/%s: size %s, in DIR %d" % (p, size, st.st_size))
            inode_of[p] = ino
    root = os.lstat(tree)
    dot = listing.get("", {}).get(".")
    if not dot or (dot[1], dot[2], dot[3]) != (root.st_mode, root.st_uid, root.st_gid):
        problems.append("/: root directory %s, DIR %o %d %d" % (dot, root.st_mode, root.st_uid, root.st_gid))
    # hard links: the same groups of names on both sides
    groups_dir, groups_img = {}, {}
    for p, st in entries.items():
        if not stat.S_ISDIR(st.st_mode) and p in inode_of:
            groups_dir.setdefault((st.st_dev, st.st_ino), set()).add(p)
            groups_img.setdefault(inode_of[p], set()).add(p)
    if sorted(map(sorted, groups_dir.values())) != sorted(map(sorted, groups_img.values())):
        problems.append("hard links differ: DIR %s, image %s" %
                        ([sorted(g) for g in groups_dir.values() if len(g) > 1],
                         [sorted(g) for g in groups_img.values() if len(g) > 1]))
    # contents and link targets
    out = os.path.join(work, "out")
    os.mkdir(out)
    subprocess.run(["debugfs", "-R", "rdump / " + out, img], capture_output=True)
    for p, st in entries.items():
        mine, theirs = os.path.join(tree, p), os.path.join(out, p)
        if stat.S_ISREG(st.st_mode):
            try:
                with open(mine, "rb") as a, open(theirs, "rb") as b:
                    while True:
                        x, y = a.read(1 << 20), b.read(1 << 20)
                        if x != y:
                            problems.append("/%s: contents differ" % p)
                            break
                        if not x:
                            break
            except OSError as e:
                problems.append("/%s: %s" % (p, e))
        elif stat.S_ISLNK(st.st_mode):
            try:
                if os.readlink(theirs) != os.readlink(mine):
                    problems.append("/%s: link target %r, in DIR %r" % (p, os.readlink(theirs), os.readlink(mine)))
            except OSError as e:
                problems.append("/%s: %s" % (p, e))
    for p, name, f in xattrs:
        want = os.getxattr(os.path.join(tree, p), name, follow_symlinks=False)
        try:
            with open(f, "rb") as x:
                got = x.read()
        except OSError:
            got = None
        if got != want:
            problems.append("/%s: xattr %s is %r, in DIR %r" % (p, name, got, want))
    subprocess.run(["rm", "-rf", work])
    for p in problems[:30]:
        print(p)
    if not entries and not problems:
        print("(an empty tree)")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "decrypt":
        decrypt(*sys.argv[2:5])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        raise SystemExit(__doc__)
