"""SEV-SNP test material and a configfs-tsm emulator, written from AMD's public specifications
(SEV-SNP Firmware ABI: ATTESTATION_REPORT; VCEK Certificate and KDS Interface: certificate
extensions) and the kernel's Documentation/ABI/testing/configfs-tsm-report, never from encfs's C
code.

  snp.py chain DIR [--bits N] [--ask-sig pss384|pss256|pkcs1] [--ask-not-ca]
                                        test ARK and ASK (RSA-4096, RSASSA-PSS SHA-384 like AMD's;
                                        the options make a deliberately wrong ASK for tests)
  snp.py vcek DIR NAME --tcb HEX [--chip HEX] [--product NAME] [--key PEM]
                                        a VCEK (ECDSA P-384) with AMD's TCB and hwID extensions,
                                        signed by the ASK: DIR/NAME.pem, DIR/NAME.key and the THIM
                                        answer for it, DIR/NAME.thim.json
  snp.py report DIR NAME --report-data HEX [--host-data HEX] [--version N] [--vmpl N] [--debug]
         [--signing-key N] [--cpuid FAM:MOD:STEP]
                                        a signed 1184-byte report on stdout
  snp.py endorsement --measurement HEX [--svn N]
                                        a UVM endorsement shaped as Azure's reference info: a
                                        COSE_Sign1 (CBOR tag 18) whose payload is the JSON
                                        {"x-ms-sevsnpvm-guestsvn", "x-ms-sevsnpvm-launchmeasurement"},
                                        on stdout (its signature is random: no test can sign as
                                        Microsoft does)
  snp.py tsm MOUNTPOINT DIR NAME [--host-data HEX] [--version N] [--fail-errno N] [--race]
         [--provider NAME] [--privlevel-floor N] [--bad-generation] [--stale] [--cpuid F:M:S]
                                        mounts (FUSE) an emulation of /sys/kernel/config/tsm/report
                                        that signs reports with VCEK NAME; writes "1" to $READY
                                        once mounted; unmounts on SIGTERM

The emulated configfs behaves as the kernel does: mkdir of an entry creates its attributes at
once (inblob, outblob, auxblob, provider, generation, privlevel, privlevel_floor); a write to
inblob (committed when the file is closed, at most 64 bytes) or privlevel increments generation;
reading outblob makes the report from the current inblob (EINVAL unless it is exactly 64 bytes,
or when privlevel is below privlevel_floor); rmdir removes the entry with its attributes.
--fail-errno makes outblob reads fail (EIO as the kernel returns when the firmware refuses),
--race bumps generation behind the reader's back (another process writing to the entry),
--bad-generation makes generation read "unknown", --stale answers a report for other REPORT_DATA.
"""
import argparse
import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

REPORT_SIZE = 1184
SIGNED_SIZE = 0x2A0

# --- certificates ------------------------------------------------------------------------------

SUBJECT = "/OU=Engineering/C=US/L=Santa Clara/ST=CA/O=encfs tests/CN=%s"
PSS = ["-sha384", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:48",
       "-sigopt", "rsa_mgf1_md:sha384"]
ASK_SIG = {  # how the ARK signs the ASK: AMD's parameters, or a deliberately different scheme
    "pss384": PSS,
    "pss256": ["-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32",
               "-sigopt", "rsa_mgf1_md:sha256"],
    "pkcs1": ["-sha384"],
}


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_chain(d, bits=4096, ask_sig="pss384", ask_ca=True):
    """ARK (self-signed) and ASK (signed by ARK), RSA, RSASSA-PSS; kept when present."""
    os.makedirs(d, exist_ok=True)
    ark, ask = os.path.join(d, "ark"), os.path.join(d, "ask")
    if os.path.exists(ask + ".pem"):
        return
    cnf = os.path.join(d, "ext.cnf")
    with open(cnf, "w") as f:
        f.write("[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier = hash\n"
                "[notca]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n")
    for k in (ark, ask):
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%d" % bits,
                 "-out", k + ".key")
    _openssl("req", "-x509", "-new", "-key", ark + ".key", "-subj", SUBJECT % "ARK-Test",
             "-days", "3650", "-config", cnf, "-extensions", "ca", "-out", ark + ".pem", *PSS)
    _openssl("req", "-new", "-key", ask + ".key", "-subj", SUBJECT % "SEV-Test",
             "-out", ask + ".csr")
    _openssl("x509", "-req", "-in", ask + ".csr", "-CA", ark + ".pem", "-CAkey", ark + ".key",
             "-set_serial", "2", "-days", "3650", "-extfile", cnf,
             "-extensions", "ca" if ask_ca else "notca", "-out", ask + ".pem", *ASK_SIG[ask_sig])


def tcb_bytes(tcb):
    return tcb.to_bytes(8, "little")


def tcb_spl(tcb, turin=False):
    """SPL extension number (1.3.6.1.4.1.3704.1.3.N) -> value, from a TCB_VERSION.  Milan and
    Genoa: boot loader, TEE, 4 reserved, SNP, microcode; Turin: FMC, boot loader, TEE, SNP,
    3 reserved, microcode (SEV-SNP ABI "TCB_VERSION"; VCEK spec, fmcSPL is .9)."""
    t = tcb_bytes(tcb)
    if turin:
        return {9: t[0], 1: t[1], 2: t[2], 3: t[3], 8: t[7]}
    return {1: t[0], 2: t[1], 4: t[2], 5: t[3], 6: t[4], 7: t[5], 3: t[6], 8: t[7]}


def make_vcek(d, name, tcb, chip, product="Milan-B0", key=None):
    """A VCEK for TCB tcb (int) and chip id chip (64 bytes), with AMD's extensions; a new key
    unless key names the PEM file of one to reuse (a certificate that lies about its TCB)."""
    base = os.path.join(d, name)
    spl = tcb_spl(tcb, product.startswith("Turin"))
    cnf = base + ".cnf"
    with open(cnf, "w") as f:
        f.write("[vcek]\n1.3.6.1.4.1.3704.1.1 = DER:02:01:00\n")
        f.write("1.3.6.1.4.1.3704.1.2 = DER:16:%02x:%s\n" % (len(product), ":".join("%02x" % c for c in product.encode())))
        for n, v in sorted(spl.items()):
            # a DER INTEGER: a leading zero keeps values >= 0x80 positive
            body = ("00:%02x" % v) if v >= 0x80 else ("%02x" % v)
            f.write("1.3.6.1.4.1.3704.1.3.%d = DER:02:%02x:%s\n" % (n, 2 if v >= 0x80 else 1, body))
        f.write("1.3.6.1.4.1.3704.1.4 = DER:%s\n" % ":".join("%02x" % c for c in chip))
    if key:
        with open(key, "rb") as src, open(base + ".key", "wb") as dst:
            dst.write(src.read())
    else:
        _openssl("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", base + ".key")
    _openssl("req", "-new", "-key", base + ".key", "-subj", SUBJECT % "SEV-VCEK", "-out", base + ".csr")
    _openssl("x509", "-req", "-in", base + ".csr", "-CA", os.path.join(d, "ask.pem"),
             "-CAkey", os.path.join(d, "ask.key"), "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
             "-days", "2000", "-extfile", cnf, "-extensions", "vcek", "-out", base + ".pem", *PSS)
    with open(base + ".pem") as f:
        vcek = f.read()
    with open(os.path.join(d, "ask.pem")) as f:
        ask = f.read()
    with open(os.path.join(d, "ark.pem")) as f:
        ark = f.read()
    thim = {"vcekCert": vcek, "tcbm": "%016X" % tcb, "certificateChain": ask + ark,
            "cacheControl": "86400"}
    with open(base + ".thim.json", "w") as f:
        json.dump(thim, f, indent=4)
    with open(base + ".chip", "w") as f:
        f.write(chip.hex())
    with open(base + ".tcb", "w") as f:
        f.write("%016x" % tcb)


def load_vcek(d, name):
    base = os.path.join(d, name)
    with open(base + ".key", "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    with open(base + ".chip") as f:
        chip = bytes.fromhex(f.read().strip())
    with open(base + ".tcb") as f:
        tcb = int(f.read().strip(), 16)
    return key, chip, tcb


# --- reports -----------------------------------------------------------------------------------

LAUNCH_MEASUREMENT = hashlib.sha384(b"encfs test launch").digest()  # MEASUREMENT of the test reports


def make_report(key, chip, tcb, report_data, host_data=b"\0" * 32, version=2, vmpl=0, debug=False,
                measurement=None, signing_key=0, cpuid=(0x19, 0x01, 0x01)):
    """An ATTESTATION_REPORT signed with key (ECDSA P-384, SHA-384, R and S little-endian)."""
    if len(report_data) != 64 or len(host_data) != 32:
        raise ValueError("report_data is 64 bytes, host_data 32")
    r = bytearray(REPORT_SIZE)

    def put(off, data):
        r[off:off + len(data)] = data

    policy = 0x3001F | ((1 << 19) if debug else 0)
    put(0x00, version.to_bytes(4, "little"))
    put(0x04, (1).to_bytes(4, "little"))               # GUEST_SVN
    put(0x08, policy.to_bytes(8, "little"))
    put(0x10, b"\x01" + b"\0" * 15)                    # FAMILY_ID
    put(0x20, b"\x02" + b"\0" * 15)                    # IMAGE_ID
    put(0x30, vmpl.to_bytes(4, "little"))
    put(0x34, (1).to_bytes(4, "little"))               # SIGNATURE_ALGO: ECDSA P-384 SHA-384
    put(0x38, tcb_bytes(tcb))                          # CURRENT_TCB
    put(0x40, (1).to_bytes(8, "little"))               # PLATFORM_INFO: SMT enabled
    put(0x48, (signing_key << 2).to_bytes(4, "little"))  # SIGNING_KEY: 0 VCEK, 1 VLEK, 7 none
    put(0x50, report_data)
    put(0x90, measurement or LAUNCH_MEASUREMENT)
    put(0xC0, host_data)
    put(0xE0, hashlib.sha384(b"encfs test id key").digest())
    put(0x140, hashlib.sha256(os.urandom(16)).digest())  # REPORT_ID
    put(0x160, b"\xff" * 32)                             # REPORT_ID_MA
    put(0x180, tcb_bytes(tcb))                           # REPORTED_TCB
    if version >= 3:
        put(0x188, bytes(cpuid))                         # CPUID family, model, stepping
    put(0x1A0, chip)
    put(0x1E0, tcb_bytes(tcb))                           # COMMITTED_TCB
    put(0x1E8, bytes([21, 55, 1, 0, 21, 55, 1, 0]))      # current and committed firmware
    put(0x1F0, tcb_bytes(tcb))                           # LAUNCH_TCB
    der = key.sign(bytes(r[:SIGNED_SIZE]), ec.ECDSA(hashes.SHA384()))
    rr, ss = decode_dss_signature(der)
    put(0x2A0, rr.to_bytes(72, "little"))
    put(0x2E8, ss.to_bytes(72, "little"))
    return bytes(r)


def _cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, k in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * k):
            return bytes([major << 5 | info]) + n.to_bytes(k, "big")
    raise ValueError("too long")


def make_endorsement(measurement, svn=100):
    """COSE_Sign1 (RFC 9052): tag 18 [protected bstr({1: -35 (ES384)}), {}, payload, signature]."""
    payload = json.dumps({"x-ms-sevsnpvm-guestsvn": str(svn),
                          "x-ms-sevsnpvm-launchmeasurement": measurement.hex()}, indent=2).encode()
    protected = b"\xa1\x01\x38\x22"  # {1: -35}
    sig = os.urandom(96)
    return (b"\xd2\x84" + _cbor_head(2, len(protected)) + protected + b"\xa0" +
            _cbor_head(2, len(payload)) + payload + _cbor_head(2, len(sig)) + sig)


# --- configfs-tsm emulation (FUSE) -------------------------------------------------------------

class Entry:
    def __init__(self):
        self.inblob = b""
        self.pending = {}     # attribute -> bytes written through an open file, committed on close
        self.generation = 0
        self.privlevel = 0
        self.outblob = None   # (generation, bytes) of the last report made
        self.created = time.time()


ATTRS = {  # name -> mode, as configfs shows them
    "inblob": 0o200, "outblob": 0o444, "auxblob": 0o444, "provider": 0o444,
    "generation": 0o444, "privlevel": 0o200, "privlevel_floor": 0o444,
}


def run_tsm(mountpoint, d, name, a):
    import fuse
    fuse.fuse_python_api = (0, 2)
    key, chip, tcb = load_vcek(d, name)
    host_data = bytes.fromhex(a.host_data) if a.host_data else b"\0" * 32
    entries = {}
    lock = threading.Lock()
    log = sys.stderr

    def split(path):
        parts = [p for p in path.split("/") if p]
        return parts

    def attr_text(ent, attr):
        if attr == "provider":
            return (a.provider + "\n").encode()
        if attr == "generation":
            return b"unknown\n" if a.bad_generation else ("%d\n" % ent.generation).encode()
        if attr == "privlevel_floor":
            return ("%d\n" % a.privlevel_floor).encode()
        if attr == "auxblob":
            return b""
        return None

    def make_outblob(ent):
        if a.race:
            ent.generation += 1
        if a.fail_errno:
            raise OSError(a.fail_errno, os.strerror(a.fail_errno))
        if len(ent.inblob) != 64 or ent.privlevel < a.privlevel_floor:
            raise OSError(errno.EINVAL, "bad request")
        if ent.outblob is None or ent.outblob[0] != ent.generation:
            rd = bytes(b ^ 0xff for b in ent.inblob) if a.stale else ent.inblob
            rep = make_report(key, chip, tcb, rd, host_data, a.version, ent.privlevel,
                              cpuid=tuple(int(x, 16) for x in a.cpuid.split(":")))
            ent.outblob = (ent.generation, rep)
            log.write("tsm: report for inblob %s... generation %d\n" % (ent.inblob[:8].hex(), ent.generation))
            log.flush()
        return ent.outblob[1]

    class St(fuse.Stat):
        def __init__(self, mode, size=0, nlink=1):
            self.st_mode = mode
            self.st_ino = 0
            self.st_dev = 0
            self.st_nlink = nlink
            self.st_uid = os.getuid()
            self.st_gid = os.getgid()
            self.st_size = size
            now = int(time.time())
            self.st_atime = self.st_mtime = self.st_ctime = now

    class TSMFile:
        """One open attribute file: direct I/O, so reads reach us whatever the size says."""

        def __init__(self, path, flags, *mode):
            p = split(path)
            with lock:
                if len(p) != 2 or p[0] not in entries or p[1] not in ATTRS:
                    raise OSError(errno.ENOENT, "no such attribute")
                self.ent, self.attr = entries[p[0]], p[1]
                writable = ATTRS[self.attr] & 0o200
                acc = flags & os.O_ACCMODE
                if (acc != os.O_RDONLY) != bool(writable):
                    raise OSError(errno.EACCES, "permission denied")
                self.writing = acc != os.O_RDONLY
                self.buf = b""
            self.direct_io = True
            self.keep_cache = False

        def read(self, length, offset):
            with lock:
                if self.attr == "outblob":
                    data = make_outblob(self.ent)
                else:
                    data = attr_text(self.ent, self.attr)
                    if data is None:
                        raise OSError(errno.EACCES, "write-only")
                return data[offset:offset + length]

        def write(self, buf, offset):
            with lock:
                limit = 64 if self.attr == "inblob" else 8
                if offset + len(buf) > limit:
                    raise OSError(errno.EFBIG, "too large")
                b = bytearray(self.buf.ljust(offset, b"\0"))
                b[offset:offset + len(buf)] = buf
                self.buf = bytes(b)
                return len(buf)

        def ftruncate(self, length):
            self.buf = self.buf[:length]

        def flush(self):
            return 0

        def release(self, flags):
            if not self.writing:
                return 0
            with lock:
                if self.attr == "inblob":
                    self.ent.inblob = self.buf
                elif self.attr == "privlevel":
                    try:
                        v = int(self.buf.decode().strip())
                    except ValueError:
                        return -errno.EINVAL
                    if not 0 <= v <= 3:
                        return -errno.EINVAL
                    self.ent.privlevel = v
                self.ent.generation += 1
            return 0

    class TSM(fuse.Fuse):
        def getattr(self, path):
            p = split(path)
            with lock:
                if not p:
                    return St(stat.S_IFDIR | 0o755, 0, 2 + len(entries))
                if p[0] not in entries:
                    return -errno.ENOENT
                if len(p) == 1:
                    return St(stat.S_IFDIR | 0o755, 0, 2)
                if len(p) == 2 and p[1] in ATTRS:
                    return St(stat.S_IFREG | ATTRS[p[1]], 4096)
            return -errno.ENOENT

        def readdir(self, path, offset):
            p = split(path)
            with lock:
                if not p:
                    names = list(entries)
                elif len(p) == 1 and p[0] in entries:
                    names = list(ATTRS)
                else:
                    names = None
            if names is None:
                return
            for n in [".", ".."] + names:
                yield fuse.Direntry(n)

        def mkdir(self, path, mode):
            p = split(path)
            with lock:
                if len(p) != 1:
                    return -errno.EPERM
                if p[0] in entries:
                    return -errno.EEXIST
                entries[p[0]] = Entry()
            log.write("tsm: mkdir %s\n" % p[0])
            log.flush()
            return 0

        def rmdir(self, path):
            p = split(path)
            with lock:
                if len(p) != 1 or p[0] not in entries:
                    return -errno.ENOENT
                del entries[p[0]]
            log.write("tsm: rmdir %s\n" % p[0])
            log.flush()
            return 0

        def truncate(self, path, size):
            return 0

        def unlink(self, path):
            return -errno.EPERM

        def create(self, path, flags, mode):
            return -errno.EPERM

        def mknod(self, path, mode, dev):
            return -errno.EPERM

        def fsinit(self):
            ready = os.environ.get("READY")
            if ready:
                with open(ready + ".tmp", "w") as f:
                    f.write("1")
                os.replace(ready + ".tmp", ready)
            log.write("tsm: mounted on %s\n" % mountpoint)
            log.flush()

    self_fs = TSM(version="%prog " + fuse.__version__, usage="", dash_s_do="setsingle")
    self_fs.file_class = TSMFile
    self_fs.multithreaded = False
    self_fs.fuse_args.mountpoint = mountpoint
    self_fs.fuse_args.add("fsname=encfs-tsm")
    self_fs.fuse_args.setmod("foreground")
    self_fs.main()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("chain")
    c.add_argument("dir")
    c.add_argument("--bits", type=int, default=4096)
    c.add_argument("--ask-sig", choices=sorted(ASK_SIG), default="pss384")
    c.add_argument("--ask-not-ca", action="store_true")
    v = sub.add_parser("vcek")
    v.add_argument("dir")
    v.add_argument("name")
    v.add_argument("--tcb", required=True)
    v.add_argument("--chip", default=None)
    v.add_argument("--product", default="Milan-B0", help="productName extension (Turin-* uses its TCB layout)")
    v.add_argument("--key", default=None, help="reuse this EC key (PEM) instead of making one")
    r = sub.add_parser("report")
    r.add_argument("dir")
    r.add_argument("name")
    r.add_argument("--report-data", required=True)
    r.add_argument("--host-data", default=None)
    r.add_argument("--version", type=int, default=2)
    r.add_argument("--vmpl", type=int, default=0)
    r.add_argument("--debug", action="store_true")
    r.add_argument("--signing-key", type=int, default=0)
    r.add_argument("--cpuid", default="19:01:01", help="CPUID family:model:stepping, hex (version >= 3)")
    en = sub.add_parser("endorsement")
    en.add_argument("--measurement", default=LAUNCH_MEASUREMENT.hex())
    en.add_argument("--svn", type=int, default=100)
    t = sub.add_parser("tsm")
    t.add_argument("mountpoint")
    t.add_argument("dir")
    t.add_argument("name")
    t.add_argument("--host-data", default=None)
    t.add_argument("--version", type=int, default=2)
    t.add_argument("--fail-errno", type=int, default=0)
    t.add_argument("--race", action="store_true")
    t.add_argument("--provider", default="sev_guest")
    t.add_argument("--privlevel-floor", type=int, default=0)
    t.add_argument("--bad-generation", action="store_true")
    t.add_argument("--stale", action="store_true")
    t.add_argument("--cpuid", default="19:01:01", help="CPUID family:model:stepping, hex (version >= 3)")
    a = ap.parse_args()
    if a.cmd == "chain":
        make_chain(a.dir, a.bits, a.ask_sig, not a.ask_not_ca)
    elif a.cmd == "vcek":
        chip = bytes.fromhex(a.chip) if a.chip else hashlib.sha512(a.name.encode()).digest()
        make_vcek(a.dir, a.name, int(a.tcb, 16), chip, a.product, a.key)
    elif a.cmd == "report":
        key, chip, tcb = load_vcek(a.dir, a.name)
        rd = bytes.fromhex(a.report_data).ljust(64, b"\0")
        hd = bytes.fromhex(a.host_data) if a.host_data else b"\0" * 32
        cpuid = tuple(int(x, 16) for x in a.cpuid.split(":"))
        sys.stdout.buffer.write(make_report(key, chip, tcb, rd, hd, a.version, a.vmpl, a.debug,
                                            signing_key=a.signing_key, cpuid=cpuid))
    elif a.cmd == "endorsement":
        sys.stdout.buffer.write(make_endorsement(bytes.fromhex(a.measurement), a.svn))
    elif a.cmd == "tsm":
        run_tsm(a.mountpoint, a.dir, a.name, a)


if __name__ == "__main__":
    main()
