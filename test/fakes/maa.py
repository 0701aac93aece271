"""Fake Microsoft Azure Attestation (MAA) for SEV-SNP, written from the public REST reference
(Attestation - Attest Sev Snp Vm, api-version 2020-10-01 / 2022-08-01) and the token examples of
learn.microsoft.com/azure/attestation, never from encfs's C code.

  POST /attest/SevSnpVm?api-version=2020-10-01   (also /attest/SevSnpVM)
       {"report": b64url(JSON {"SnpReport": b64url(1184-byte report),
                               "VcekCertChain": b64url(PEM VCEK+ASK+ARK),
                               "Endorsements": b64url(JSON {"Uvm": [b64url(COSE_Sign1)]})}),
        "runtimeData": {"data": b64url(JSON), "dataType": "JSON"}, "nonce": N}
       -> {"token": JWT}   (base64url padded or not, as Go's URLEncoding or the spec)
  GET  /certs                                     -> JWKS {"keys": [{kid, kty, n, e, x5c}]}
  GET  /.well-known/openid-configuration          -> {"issuer", "jwks_uri", ...}

Checks: the request shape and encodings (the nonce a string, as the REST spec has it, or an
unsigned integer, as the upstream sidecar sends it); REPORT_DATA = SHA-256(runtime data) then 32
zero bytes; the report's ECDSA P-384 signature under the VCEK of VcekCertChain; VCEK <- ASK <- ARK
with RSASSA-PSS (SHA-384, MGF1-SHA-384, salt 48); the ARK's key among the trusted roots
(--amd-roots PEM, else AMD's Milan, Genoa and Turin ARKs, pinned by the SHA-256 of their
SubjectPublicKeyInfo); REPORTED_TCB equal to the TCB in the VCEK's SPL extensions (Turin layout
for CPUID family 1Ah); each UVM endorsement a COSE_Sign1 whose payload is JSON.  A report with an
all-zero signature (the upstream sidecar's fake report) is accepted only with
--accept-fake-reports.

The token is an RS256 JWT (header alg, jku, kid, typ as MAA issues them) with iss = this
service's base URL, iat/nbf/exp, x-ms-attestation-type "sevsnpvm", the x-ms-sevsnpvm-* claims
taken from the report (hex strings, integers, JSON booleans), x-ms-runtime (the runtime data
object), x-ms-inittime, x-ms-policy-hash, x-ms-ver, nonce (when given).  When a UVM endorsement's
x-ms-sevsnpvm-launchmeasurement is the report's MEASUREMENT, its payload becomes
x-ms-sevsnpvm-uvm-endorsement and x-ms-compliance-status is "azure-compliant-uvm"; otherwise
both are left out.  Unlike the real service it cannot check the endorsement's COSE signature
(that needs Microsoft's signing chain).
Failures: 400 {"error": {"code", "message"}}; more through POST /_fault (fakelib).

usage: maa.py --tls CERT KEY [--accept-fake-reports] [--amd-roots PEM] [--signing-dir DIR]
              [--port N] [--token-ttl SECONDS]
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID  # noqa: E402

AMD_ARK_SPKI_SHA256 = {  # ARK-Milan, ARK-Genoa, ARK-Turin (kdsintf.amd.com/vcek/v1/<product>/cert_chain)
    "9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9",
    "429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831",
    "4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08",
}
API_VERSIONS = {"2020-10-01", "2022-08-01"}
B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


class Reject(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def b64url_strict(what, text):
    """base64url, padded (Go's URLEncoding) or not (RFC 7515); nothing else."""
    if not isinstance(text, str) or not B64URL.match(text) or len(text.rstrip("=")) % 4 == 1:
        raise Reject("InvalidParameter", "%s is not base64url" % what)
    if "=" in text and len(text) % 4:
        raise Reject("InvalidParameter", "%s has wrong base64url padding" % what)
    return fakelib.b64url_decode(text.rstrip("="))


def spki_sha256(cert):
    return hashlib.sha256(cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def load_pem_certs(pem):
    """Every certificate of a PEM text (cryptography 38 has no load_pem_x509_certificates)."""
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    return [x509.load_pem_x509_certificate(b) for b in blocks]


def verify_pss(child, parent):
    if child.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS:
        raise Reject("InvalidParameter", "%s is not signed with RSASSA-PSS" % child.subject.rfc4514_string())
    try:
        parent.public_key().verify(child.signature, child.tbs_certificate_bytes,
                                   padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
                                   hashes.SHA384())
    except (InvalidSignature, TypeError, AttributeError):
        raise Reject("InvalidParameter", "certificate %s does not verify under %s" % (
            child.subject.rfc4514_string(), parent.subject.rfc4514_string()))


def verify_report(report, chain_pem, roots):
    """The report's signature under the VCEK, and the VCEK chain up to a trusted ARK."""
    certs = load_pem_certs(chain_pem)
    vcek = [c for c in certs if isinstance(c.public_key(), ec.EllipticCurvePublicKey)]
    ark = [c for c in certs if c.subject == c.issuer]
    ask = [c for c in certs if c not in vcek and c not in ark]
    if len(vcek) != 1 or len(ark) != 1 or len(ask) != 1:
        raise Reject("InvalidParameter", "VcekCertChain must hold VCEK, ASK and ARK")
    vcek, ask, ark = vcek[0], ask[0], ark[0]
    if spki_sha256(ark) not in roots:
        raise Reject("InvalidParameter", "the ARK is not a trusted AMD root")
    verify_pss(ark, ark)
    verify_pss(ask, ark)
    verify_pss(vcek, ask)
    if int.from_bytes(report[0x34:0x38], "little") != 1:
        raise Reject("InvalidParameter", "unsupported report signature algorithm")
    r = int.from_bytes(report[0x2A0:0x2A0 + 72], "little")
    s = int.from_bytes(report[0x2E8:0x2E8 + 72], "little")
    try:
        vcek.public_key().verify(encode_dss_signature(r, s), report[:0x2A0], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise Reject("InvalidParameter", "the report signature does not verify under the VCEK")
    reported = int.from_bytes(report[0x180:0x188], "little")
    issued = tcb_from_vcek(vcek, is_turin(report))
    if reported != issued:
        raise Reject("InvalidParameter", "REPORTED_TCB %016x is not the VCEK's TCB %016x" % (reported, issued))


def tcb_from_vcek(vcek, turin):
    """The TCB_VERSION a VCEK was issued for, from its SPL extensions (1.3.6.1.4.1.3704.1.3.N,
    DER INTEGERs): Milan/Genoa bytes bl, tee, 4 reserved, snp, ucode; Turin fmc, bl, tee, snp,
    3 reserved, ucode."""
    ext = {e.oid.dotted_string: e.value.value for e in vcek.extensions
           if isinstance(e.value, x509.UnrecognizedExtension)}
    pos = {9: 0, 1: 1, 2: 2, 3: 3, 8: 7} if turin else {1: 0, 2: 1, 4: 2, 5: 3, 6: 4, 7: 5, 3: 6, 8: 7}
    tcb = bytearray(8)
    for n, p in pos.items():
        der = ext.get("1.3.6.1.4.1.3704.1.3.%d" % n)
        if der is None:
            if 4 <= n <= 7:
                continue
            raise Reject("InvalidParameter", "the VCEK has no SPL extension .%d" % n)
        if len(der) < 3 or der[0] != 2 or der[1] != len(der) - 2:
            raise Reject("InvalidParameter", "the VCEK's SPL extension .%d is not an INTEGER" % n)
        v = int.from_bytes(der[2:], "big")
        if v > 255:
            raise Reject("InvalidParameter", "the VCEK's SPL extension .%d is out of range" % n)
        tcb[p] = v
    return int.from_bytes(bytes(tcb), "little")


def is_turin(report):
    return int.from_bytes(report[0:4], "little") >= 3 and report[0x188] == 0x1A


def cbor_item(b, i=0):
    """One CBOR data item of b at i (RFC 8949, the subset COSE_Sign1 uses): (value, next index).
    Tags come back as ("tag", number, value)."""
    if i >= len(b):
        raise ValueError("truncated CBOR")
    major, info = b[i] >> 5, b[i] & 31
    i += 1
    if info < 24:
        n = info
    elif info in (24, 25, 26, 27):
        k = 1 << (info - 24)
        if i + k > len(b):
            raise ValueError("truncated CBOR")
        n, i = int.from_bytes(b[i:i + k], "big"), i + k
    else:
        raise ValueError("indefinite or reserved CBOR length")
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major in (2, 3):
        if i + n > len(b):
            raise ValueError("truncated CBOR string")
        v = b[i:i + n]
        return (v if major == 2 else v.decode()), i + n
    if major == 4:
        out = []
        for _ in range(n):
            v, i = cbor_item(b, i)
            out.append(v)
        return out, i
    if major == 5:
        out = {}
        for _ in range(n):
            k, i = cbor_item(b, i)
            v, i = cbor_item(b, i)
            out[k] = v
        return out, i
    if major == 6:
        v, i = cbor_item(b, i)
        return ("tag", n, v), i
    if n in (20, 21, 22):
        return {20: False, 21: True, 22: None}[n], i
    raise ValueError("unsupported CBOR simple value")


def uvm_endorsement(blob):
    """The JSON payload of a COSE_Sign1 UVM endorsement ([protected, unprotected, payload,
    signature], optionally under tag 18)."""
    try:
        msg, end = cbor_item(blob)
        if end != len(blob):
            raise ValueError("trailing bytes")
        if isinstance(msg, tuple):
            if msg[1] != 18:
                raise ValueError("CBOR tag %d, not 18 (COSE_Sign1)" % msg[1])
            msg = msg[2]
        if not (isinstance(msg, list) and len(msg) == 4 and isinstance(msg[0], bytes) and
                isinstance(msg[1], dict) and isinstance(msg[2], bytes) and isinstance(msg[3], bytes)):
            raise ValueError("not [protected, unprotected, payload, signature]")
        payload = json.loads(msg[2])
        if not isinstance(payload, dict):
            raise ValueError("the payload is not a JSON object")
        return payload
    except (ValueError, RecursionError) as e:
        raise Reject("InvalidParameter", "a UVM endorsement is not a COSE_Sign1 message with a JSON "
                     "payload: %s" % e)


def report_claims(report):
    le = lambda a, b: int.from_bytes(report[a:b], "little")  # noqa: E731
    policy = le(0x08, 0x10)
    tcb = report[0x180:0x188]  # REPORTED_TCB: boot loader, TEE, ..., SNP, microcode
    return {
        "x-ms-sevsnpvm-authorkeydigest": report[0x110:0x140].hex(),
        "x-ms-sevsnpvm-bootloader-svn": tcb[0],
        "x-ms-sevsnpvm-familyId": report[0x10:0x20].hex(),
        "x-ms-sevsnpvm-guestsvn": le(0x04, 0x08),
        "x-ms-sevsnpvm-hostdata": report[0xC0:0xE0].hex(),
        "x-ms-sevsnpvm-idkeydigest": report[0xE0:0x110].hex(),
        "x-ms-sevsnpvm-imageId": report[0x20:0x30].hex(),
        "x-ms-sevsnpvm-is-debuggable": bool(policy & (1 << 19)),
        "x-ms-sevsnpvm-launchmeasurement": report[0x90:0xC0].hex(),
        "x-ms-sevsnpvm-microcode-svn": tcb[7],
        "x-ms-sevsnpvm-migration-allowed": bool(policy & (1 << 18)),
        "x-ms-sevsnpvm-reportdata": report[0x50:0x90].hex(),
        "x-ms-sevsnpvm-reportid": report[0x140:0x160].hex(),
        "x-ms-sevsnpvm-smt-allowed": bool(policy & (1 << 16)),
        "x-ms-sevsnpvm-snpfw-svn": tcb[6],
        "x-ms-sevsnpvm-tee-svn": tcb[1],
        "x-ms-sevsnpvm-vmpl": le(0x30, 0x34),
    }


class Signer:
    def __init__(self, d):
        if d:
            os.makedirs(d, exist_ok=True)
            kp, cp = os.path.join(d, "maa-signing.key"), os.path.join(d, "maa-signing.pem")
        if d and os.path.exists(kp) and os.path.exists(cp):
            with open(kp, "rb") as f:
                self.key = serialization.load_pem_private_key(f.read(), None)
            with open(cp, "rb") as f:
                self.cert = x509.load_pem_x509_certificate(f.read())
        else:
            self.key = rsa.generate_private_key(65537, 2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "https://fake.attest.azure.net")])
            now = datetime.datetime.now(datetime.timezone.utc)
            self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                         .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                         .not_valid_before(now - datetime.timedelta(days=1))
                         .not_valid_after(now + datetime.timedelta(days=365))
                         .sign(self.key, hashes.SHA256()))
            if d:
                fakelib._write(kp, self.key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
                fakelib._write(cp, self.cert.public_bytes(serialization.Encoding.PEM), 0o644)
        der = self.cert.public_bytes(serialization.Encoding.DER)
        self.kid = fakelib.b64url(hashlib.sha256(der).digest())
        nums = self.key.public_key().public_numbers()
        self.jwk = {"kid": self.kid, "kty": "RSA", "use": "sig", "alg": "RS256",
                    "n": fakelib.b64url(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
                    "e": fakelib.b64url(nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")),
                    "x5c": [base64.b64encode(der).decode()]}

    def sign(self, header, claims):
        h = fakelib.b64url(json.dumps(header, separators=(",", ":")))
        p = fakelib.b64url(json.dumps(claims, separators=(",", ":")))
        sig = self.key.sign(("%s.%s" % (h, p)).encode(), padding.PKCS1v15(), hashes.SHA256())
        return "%s.%s.%s" % (h, p, fakelib.b64url(sig))


class MAA(fakelib.Handler):
    def base(self):
        return "https://127.0.0.1:%d" % self.server.server_address[1]

    def route(self, method, path, query, body):
        st = self.server.state
        if method == "GET" and path == "/certs":
            return 200, {}, {"keys": [st["signer"].jwk]}
        if method == "GET" and path == "/.well-known/openid-configuration":
            return 200, {}, {"issuer": self.base(), "jwks_uri": self.base() + "/certs",
                             "response_types_supported": ["token", "none"],
                             "id_token_signing_alg_values_supported": ["RS256"],
                             "revocation_endpoint": self.base() + "/revocations",
                             "claims_supported": ["x-ms-attestation-type", "x-ms-runtime",
                                                  "x-ms-sevsnpvm-hostdata"]}
        if method == "POST" and path in ("/attest/SevSnpVm", "/attest/SevSnpVM"):
            try:
                return 200, {}, {"token": self.attest(query, body)}
            except Reject as r:
                sys.stderr.write("maa: rejected: %s\n" % r.message)
                return r.status, {}, {"error": {"code": r.code, "message": r.message}}
        return super().route(method, path, query, body)

    def attest(self, query, body):
        st = self.server.state
        if query.get("api-version") not in API_VERSIONS:
            raise Reject("InvalidApiVersion", "api-version must be one of %s" % sorted(API_VERSIONS))
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            raise Reject("InvalidParameter", "Content-Type must be application/json")
        try:
            req = json.loads(body)
        except ValueError:
            raise Reject("InvalidParameter", "the body is not JSON")
        if not isinstance(req, dict) or not set(req) <= {"report", "runtimeData", "initTimeData",
                                                         "nonce", "draftPolicyForAttestation"}:
            raise Reject("InvalidParameter", "unexpected members in the request")
        nonce = req.get("nonce")
        if nonce is not None and not isinstance(nonce, str) and \
                (not isinstance(nonce, int) or isinstance(nonce, bool) or not 0 <= nonce < 2**64):
            raise Reject("InvalidParameter", "nonce must be a string or an unsigned 64-bit integer")
        try:
            inner = json.loads(b64url_strict("report", req.get("report")))
        except ValueError:
            raise Reject("InvalidParameter", "report does not hold JSON")
        if not isinstance(inner, dict) or not {"SnpReport", "VcekCertChain"} <= set(inner) or \
                not set(inner) <= {"SnpReport", "VcekCertChain", "Endorsements"}:
            raise Reject("InvalidParameter", "report must hold SnpReport, VcekCertChain[, Endorsements]")
        report = b64url_strict("SnpReport", inner["SnpReport"])
        if len(report) != 1184:
            raise Reject("InvalidParameter", "SnpReport is %d bytes, not 1184" % len(report))
        chain = b64url_strict("VcekCertChain", inner["VcekCertChain"])
        endorsements = []
        if inner.get("Endorsements"):
            try:
                e = json.loads(b64url_strict("Endorsements", inner["Endorsements"]))
            except ValueError:
                raise Reject("InvalidParameter", "Endorsements do not hold JSON")
            if not isinstance(e, dict) or set(e) != {"Uvm"} or not isinstance(e["Uvm"], list) or not e["Uvm"]:
                raise Reject("InvalidParameter", "Endorsements must be {\"Uvm\": [...]}")
            for u in e["Uvm"]:
                endorsements.append(uvm_endorsement(b64url_strict("Endorsements.Uvm", u)))
        rt = req.get("runtimeData")
        if not isinstance(rt, dict) or set(rt) != {"data", "dataType"} or rt["dataType"] != "JSON":
            raise Reject("InvalidParameter", "runtimeData must be {\"data\", \"dataType\": \"JSON\"}")
        runtime = b64url_strict("runtimeData.data", rt["data"])
        try:
            runtime_obj = json.loads(runtime)
        except ValueError:
            raise Reject("InvalidParameter", "runtimeData.data is not JSON although dataType is JSON")
        want = hashlib.sha256(runtime).digest() + b"\0" * 32
        if report[0x50:0x90] != want:
            raise Reject("InvalidParameter", "REPORT_DATA is not SHA-256 of the runtime data")
        fake = report[0x2A0:0x2A0 + 144] == b"\0" * 144
        if fake:
            if not st["accept_fake"]:
                raise Reject("InvalidParameter", "the report is unsigned (a fake report)")
        else:
            try:
                verify_report(report, chain, st["roots"])
            except ValueError:
                raise Reject("InvalidParameter", "VcekCertChain is not a PEM certificate chain")
        now = int(time.time())
        claims = {"exp": now + st["ttl"], "iat": now, "iss": self.base(), "jti": str(uuid.uuid4()),
                  "nbf": now, "x-ms-attestation-type": "sevsnpvm",
                  "x-ms-policy-hash": fakelib.b64url(hashlib.sha256(b"fake default policy").digest()),
                  "x-ms-inittime": {}, "x-ms-runtime": runtime_obj, "x-ms-ver": "1.0"}
        if nonce is not None:
            claims["nonce"] = str(nonce)
        measurement = report[0x90:0xC0].hex()
        for u in endorsements:
            if str(u.get("x-ms-sevsnpvm-launchmeasurement", "")).lower() == measurement:
                claims["x-ms-sevsnpvm-uvm-endorsement"] = u
                claims["x-ms-compliance-status"] = "azure-compliant-uvm"
                break
        claims.update(report_claims(report))
        header = {"alg": "RS256", "jku": self.base() + "/certs", "kid": st["signer"].kid, "typ": "JWT"}
        sys.stderr.write("maa: token for hostdata %s%s\n" % (claims["x-ms-sevsnpvm-hostdata"],
                                                              " (FAKE report)" if fake else ""))
        return st["signer"].sign(header, claims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), required=True)
    ap.add_argument("--accept-fake-reports", action="store_true")
    ap.add_argument("--amd-roots", help="PEM file of trusted ARK certificates (default: AMD's)")
    ap.add_argument("--signing-dir", help="keep the token signing key and certificate here")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token-ttl", type=int, default=8 * 3600)
    a = ap.parse_args()
    roots = set(AMD_ARK_SPKI_SHA256)
    if a.amd_roots:
        with open(a.amd_roots, "rb") as f:
            roots = {spki_sha256(c) for c in load_pem_certs(f.read())}
    state = {"accept_fake": a.accept_fake_reports, "roots": roots, "signer": Signer(a.signing_dir),
             "ttl": a.token_ttl}
    fakelib.serve(MAA, "maa", tls=tuple(a.tls), port=a.port, state=state)


if __name__ == "__main__":
    main()
