"""Fake Azure Instance Metadata Service: managed identity tokens
(GET /metadata/identity/oauth2/token) per
https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
and AMD certification from THIM (GET /metadata/THIM/amd/certification, header Metadata: true ->
{"vcekCert", "tcbm", "certificateChain", "cacheControl"}) per the confidential VM FAQ.
Plain HTTP, as the real IMDS (169.254.169.254) is, unless --tls is given.

Tokens are unsigned-looking JWTs whose payload records the resource and client_id asked for, so a
fake service can check what it was given ("aud", "appid").  Fault injection through /_fault.

With --thim FILE (THIM JSON, repeatable) it also answers, for the certcache forms of the upstream
sidecar's azure_info.certcache (use --tls for those: they are https):
  GET /metadata/THIM/amd/certification          the first FILE (IMDS THIM and "LocalTHIM")
  GET /{tee_type}/certificates/{chip}/{tcb}?api-version=...
                                                "AzCache": PEM VCEK+ASK+ARK of the FILE whose VCEK
                                                has that chip id and TCB (hex, as %x), else 404
  GET /vcek/v1/{product}/{chip}?ucodeSPL=&snpSPL=&teeSPL=&blSPL=[&fmcSPL=]
  GET /vcek/v1/{product}/cert_chain             "AMD" KDS: the VCEK in DER, the ASK+ARK PEM

usage: imds.py [--port N] [--client-id ID]... [--thim FILE]... [--tls CERT KEY] [--token-lifetime S]
       (client ids the VM has; default: any; tokens expire after S seconds, default 3600)
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402


def make_token(resource, client_id, lifetime=3600):
    header = fakelib.b64url(json.dumps({"typ": "JWT", "alg": "none", "kid": "fake-imds"}))
    now = int(time.time())
    payload = fakelib.b64url(json.dumps({"aud": resource, "appid": client_id or "system-assigned",
                                         "iss": "https://sts.windows.net/fake-tenant/",
                                         "iat": now, "nbf": now, "exp": now + lifetime,
                                         "xms_mirid": "fake-identity"}))
    return "%s.%s.%s" % (header, payload, fakelib.b64url(os.urandom(32)))


def load_thim(path):
    """A THIM file, with the chip id, product and TCB of its VCEK read from AMD's extensions
    (productName 1.3.6.1.4.1.3704.1.2; SPLs 1.3.6.1.4.1.3704.1.3.N placed in TCB_VERSION as
    Milan and Genoa lay it out, or as Turin does: FMC, boot loader, TEE, SNP, ..., microcode)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    with open(path) as f:
        thim = json.load(f)
    cert = x509.load_pem_x509_certificate(thim["vcekCert"].encode())
    ext = {e.oid.dotted_string: e.value.value for e in cert.extensions
           if isinstance(e.value, x509.UnrecognizedExtension)}
    name = ext.get("1.3.6.1.4.1.3704.1.2", b"")
    product = name[2:].decode() if name[:1] == b"\x16" else ""  # an IA5String
    turin = product.startswith("Turin")
    pos = ((9, 0), (1, 1), (2, 2), (3, 3), (8, 7)) if turin else \
        ((1, 0), (2, 1), (4, 2), (5, 3), (6, 4), (7, 5), (3, 6), (8, 7))
    tcb = bytearray(8)
    for n, p in pos:
        der = ext.get("1.3.6.1.4.1.3704.1.3.%d" % n)
        if der:  # a DER INTEGER: 02 len value
            tcb[p] = int.from_bytes(der[2:2 + der[1]], "big")
    return {"json": thim, "chip": ext.get("1.3.6.1.4.1.3704.1.4", b"").hex(), "turin": turin,
            "tcb": int.from_bytes(bytes(tcb), "little"),
            "vcek_der": cert.public_bytes(serialization.Encoding.DER)}


class IMDS(fakelib.Handler):
    def thim_route(self, path, query):
        thims = self.server.state.get("thims") or []
        if path == "/metadata/THIM/amd/certification":
            if self.headers.get("Metadata") != "true":
                return 400, {}, {"error": "invalid_request",
                                 "error_description": "Required metadata header not specified"}
            if not thims:
                return 404, {}, {"error": "not_found", "error_description": "no THIM data"}
            return 200, {}, thims[0]["json"]
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[1] == "certificates":
            if not query.get("api-version"):
                return 400, {}, {"error": {"code": "BadRequest", "message": "api-version missing"}}
            for t in thims:
                if t["chip"] == parts[2].lower() and "%x" % t["tcb"] == parts[3].lower():
                    return 200, {"Content-Type": "application/x-pem-file"}, \
                        (t["json"]["vcekCert"] + t["json"]["certificateChain"]).encode()
            return 404, {}, {"error": {"code": "NotFound", "message": "no certificate for that chip and TCB"}}
        if len(parts) == 4 and parts[:2] == ["vcek", "v1"]:
            if parts[3] == "cert_chain":
                if not thims:
                    return 404, {}, b""
                return 200, {"Content-Type": "application/x-pem-file"}, \
                    thims[0]["json"]["certificateChain"].encode()
            for t in thims:
                tb = t["tcb"].to_bytes(8, "little")
                if t["turin"]:  # KDS: an 8-byte hwID and the FMC SPL for Turin
                    want = {"fmcSPL": tb[0], "blSPL": tb[1], "teeSPL": tb[2], "snpSPL": tb[3], "ucodeSPL": tb[7]}
                    chip = t["chip"][:16]
                else:
                    want = {"blSPL": tb[0], "teeSPL": tb[1], "snpSPL": tb[6], "ucodeSPL": tb[7]}
                    chip = t["chip"]
                if chip == parts[3].lower() and all(query.get(k) == str(v) for k, v in want.items()):
                    return 200, {"Content-Type": "application/pkix-cert"}, t["vcek_der"]
            return 404, {}, b"no such VCEK"
        return None

    def route(self, method, path, query, body):
        if method == "GET":
            r = self.thim_route(path, query)
            if r is not None:
                return r
        if path == "/metadata/identity/oauth2/token" and method == "GET":
            if self.headers.get("Metadata") != "true":
                return 400, {}, {"error": "invalid_request",
                                 "error_description": "Required metadata header not specified"}
            if query.get("api-version") is None or "resource" not in query:
                return 400, {}, {"error": "invalid_request",
                                 "error_description": "api-version and resource are required"}
            cid = query.get("client_id", "")
            allowed = self.server.state["client_ids"]
            if allowed and cid and cid not in allowed:
                return 400, {}, {"error": "invalid_request",
                                 "error_description": "Identity not found"}
            now = int(time.time())
            life = self.server.state["lifetime"]
            return 200, {}, {"access_token": make_token(query["resource"], cid, life),
                             "client_id": cid or "system-assigned", "expires_in": str(life - 1),
                             "expires_on": str(now + life - 1), "not_before": str(now),
                             "resource": query["resource"], "token_type": "Bearer"}
        return super().route(method, path, query, body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--client-id", action="append", default=[])
    ap.add_argument("--thim", action="append", default=[], help="THIM JSON file to serve")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS")
    ap.add_argument("--token-lifetime", type=int, default=3600, help="seconds a token is valid")
    a = ap.parse_args()
    fakelib.serve(IMDS, "imds", port=a.port, tls=tuple(a.tls) if a.tls else None,
                  state={"client_ids": a.client_id, "thims": [load_thim(t) for t in a.thim],
                         "lifetime": a.token_lifetime})


if __name__ == "__main__":
    main()
