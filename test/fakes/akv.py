"""Fake Azure Key Vault / Managed HSM: key import with a release policy, and secure key release.

Written against the public REST documentation (Keys - Import Key, Keys - Release; "Secure key release
policy grammar"), never against encfs's C code:

  PUT  /keys/{name}?api-version=V            {"key": JWK, "hsm": bool, "attributes": {"exportable"},
                                              "release_policy": {"contentType", "data": b64url(policy)}}
  GET  /keys/{name}[/{version}]?api-version=V
  POST /keys/{name}[/{version}]/release?api-version=V   {"target": MAA token, "enc"?, "nonce"?}
       -> {"value": JWS}, signed RS256 with a certificate for this vault's host name whose chain (x5c)
          ends at the test CA; payload {"request": {...}, "response": {"key": {"key": {"kid", "kty",
          "key_ops", "key_hsm": b64url({"schema_version", "header": {"kid", "alg": "dir", "enc"},
          "ciphertext": RSA-OAEP(KEK) || AES-KWP(KEK, key)})}, "attributes", "release_policy"}}}

Release really checks: the bearer token (a JWT whose aud is this service's resource,
https://vault.azure.net or https://managedhsm.azure.net, unexpired; its signature is not checked, as
Azurite does not check its tokens), the key, the MAA token (its issuer must be an authority of the
policy; the signature is verified with the key of its kid from the issuer's
/.well-known/openid-configuration jwks_uri; exp and nbf), the release policy (anyOf/allOf, nested,
"equals" with bool and int claims compared as their strings "true"/"false"/"0"), and wraps with the
wrapping key in the token's x-ms-runtime.keys using CKM_RSA_AES_KEY_WRAP (RSA-OAEP SHA-1),
RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384, AES-256 KEK, RFC 5649 key wrap with padding.
Errors: 400 BadParameter, 401 Unauthorized, 403 Forbidden, 404 KeyNotFound, as
{"error": {"code", "message"}}.  Fault injection through fakelib's /_fault.

usage: akv.py --certs DIR --host NAME [--mode vault|mhsm] [--cacert PEM] [--allow-appid ID]...
              [--port N]
         DIR holds the test CA (fakelib.ensure_ca); the TLS certificate (NAME and 127.0.0.1) and the
         RSA signing certificate for NAME are issued there.
       akv.py tamper MODE --certs DIR --host NAME < jws > jws
         MODE: payload, signature, rogue-ca, wrong-host, truncate, kwp, alg-none, x5t, x5t-sha1,
         client-eku, expired, padded, kid-host (refused), or RS384, RS512, PS256, PS384, PS512,
         server-eku, escaped-x5c (validly re-signed: with that algorithm, by a certificate with the
         serverAuth extended key usage, with the header's "/" written "\/")
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import ssl
import sys
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

b64url = fakelib.b64url
b64url_decode = fakelib.b64url_decode

RESOURCES = {"vault": "https://vault.azure.net", "mhsm": "https://managedhsm.azure.net"}
ENC_HASHES = {"CKM_RSA_AES_KEY_WRAP": hashes.SHA1, "RSA_AES_KEY_WRAP_256": hashes.SHA256,
              "RSA_AES_KEY_WRAP_384": hashes.SHA384}
KEY_OPS = {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"}
KTYS = {"oct", "oct-HSM", "RSA", "RSA-HSM", "EC", "EC-HSM"}
CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


class Refusal(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status, code, message, headers=None):
    return status, headers or {}, {"error": {"code": code, "message": message}}


def b64int(s):
    return int.from_bytes(b64url_decode(s), "big")


def intb64(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8 or 1, "big"))


def jwt_parts(token, what):
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not all(parts):
        raise Refusal(400, "BadParameter", "%s is not a JWT" % what)
    try:
        return (json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1])),
                b64url_decode(parts[2]), (parts[0] + "." + parts[1]).encode())
    except ValueError:
        raise Refusal(400, "BadParameter", "%s is not a JWT" % what)


# --- release policy ---------------------------------------------------------------------------

def check_condition(node, where):
    if not isinstance(node, dict):
        raise ValueError("%s is not an object" % where)
    groups = [k for k in ("anyOf", "allOf") if k in node]
    if groups:
        if len(groups) != 1 or not isinstance(node[groups[0]], list) or not node[groups[0]]:
            raise ValueError("%s needs exactly one non-empty anyOf or allOf" % where)
        for i, n in enumerate(node[groups[0]]):
            check_condition(n, "%s.%s[%d]" % (where, groups[0], i))
        return
    if not isinstance(node.get("claim"), str) or not node["claim"]:
        raise ValueError("%s has no claim" % where)
    if "equals" not in node:
        raise ValueError("%s has no supported operator (equals)" % where)
    if not isinstance(node["equals"], (str, bool, int)):
        raise ValueError("%s.equals is not a string, boolean or integer" % where)


def check_policy(policy):
    """The release policy grammar: version, then anyOf/allOf of authority groups of conditions."""
    if not isinstance(policy, dict):
        raise ValueError("the policy is not a JSON object")
    if not isinstance(policy.get("version"), str) or not policy["version"]:
        raise ValueError("version is required")
    tops = [k for k in ("anyOf", "allOf") if k in policy]
    if len(tops) != 1 or not isinstance(policy[tops[0]], list) or not policy[tops[0]]:
        raise ValueError("the policy needs exactly one non-empty anyOf or allOf")
    for i, g in enumerate(policy[tops[0]]):
        where = "%s[%d]" % (tops[0], i)
        if not isinstance(g, dict) or not isinstance(g.get("authority"), str) or \
                not g["authority"].startswith("https://"):
            raise ValueError("%s has no https authority" % where)
        check_condition({k: v for k, v in g.items() if k != "authority"}, where)


def as_policy_string(v):
    """How the service compares: booleans and integers by their JSON text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return v if isinstance(v, str) else None


def claim_value(claims, name):
    if name in claims:
        return claims[name]
    cur = claims
    for part in name.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def evaluate(node, claims, failed):
    if "anyOf" in node:
        return any([evaluate(n, claims, failed) for n in node["anyOf"]])
    if "allOf" in node:
        return all([evaluate(n, claims, failed) for n in node["allOf"]])
    got = as_policy_string(claim_value(claims, node["claim"]))
    ok = got is not None and got == as_policy_string(node["equals"])
    if not ok:
        failed.append(node["claim"])
    return ok


def same_authority(a, b):
    return a.rstrip("/").lower() == b.rstrip("/").lower()


# --- the service ------------------------------------------------------------------------------

class Vault:
    def __init__(self, args):
        self.mode = args.mode
        self.resource = RESOURCES[args.mode]
        self.allow_appid = set(args.allow_appid)
        self.cacert = args.cacert or os.path.join(args.certs, "ca.pem")
        self.keys = {}
        self.lock = threading.Lock()
        fakelib.ensure_ca(args.certs)
        self.tls = fakelib.issue_leaf(args.certs, "akv-tls-" + args.host, [args.host, "127.0.0.1"])
        self.sign_cert, self.sign_key = load_signer(args.certs, args.host)


def load_signer(certs, host, ca="ca", name=None):
    cp, kp = fakelib.issue_leaf(certs, name or ("akv-sign-" + host), [host], ca=ca,
                                key_type="rsa", usage="sign")
    with open(cp, "rb") as f:
        pem = f.read()
    chain = [x509.load_pem_x509_certificate(b"-----BEGIN" + part)
             for part in pem.split(b"-----BEGIN")[1:]]
    with open(kp, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return chain, key


def odd_signer(certs, host, name, eku=None, expired=False):
    """A signing certificate from the test CA for host, with an extended key usage (eku, a list of
    OIDs) or already expired: the tests' certificates a release response must not be trusted for
    (or, with serverAuth, must)."""
    cp, kp = os.path.join(certs, name + ".pem"), os.path.join(certs, name + ".key")
    if not os.path.exists(cp):
        ca_cert, ca_key = fakelib.ensure_ca(certs)
        key = rsa.generate_private_key(65537, 2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = (now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)) if expired \
            else (now - datetime.timedelta(days=1), now + datetime.timedelta(days=825))
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
             .issuer_name(ca_cert.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False))
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        with open(kp, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(cp, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM) +
                    ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(cp, "rb") as f:
        pem = f.read()
    chain = [x509.load_pem_x509_certificate(b"-----BEGIN" + part) for part in pem.split(b"-----BEGIN")[1:]]
    with open(kp, "rb") as f:
        return chain, serialization.load_pem_private_key(f.read(), None)


def sign_jws(header_extra, payload, chain, key, alg="RS256", escape_slash=False):
    leaf = chain[0].public_bytes(serialization.Encoding.DER)
    header = {"alg": alg, "kid": hashlib.sha1(leaf).hexdigest().upper(),
              "x5t#S256": b64url(hashlib.sha256(leaf).digest()), "typ": "JWT",
              "x5c": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                      for c in chain]}
    header.update(header_extra)
    htext = json.dumps(header)
    if escape_slash:  # "\/" is JSON for "/": a vault's serialiser may write it so
        htext = htext.replace("/", "\\/")
    signing_input = b64url(htext) + "." + b64url(json.dumps(payload))
    h = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[alg[2:]]()
    pad = padding.PKCS1v15() if alg.startswith("RS") else \
        padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.DIGEST_LENGTH)
    sig = key.sign(signing_input.encode(), pad, h)
    return signing_input + "." + b64url(sig)


class AKV(fakelib.Handler):
    def route(self, method, path, query, body):
        v = self.server.state
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "keys":
            return super().route(method, path, query, body)
        try:
            self.check_api_version(query)
            caller = self.check_bearer(v)
            if method == "PUT" and len(parts) == 2:
                return self.import_key(v, parts[1], body)
            if method == "GET" and len(parts) in (2, 3):
                return 200, {}, self.bundle(v, self.find(v, parts[1], parts[2] if len(parts) == 3 else None))
            if method == "POST" and len(parts) in (3, 4) and parts[-1] == "release":
                self.check_appid(caller, "release")
                return self.release(v, parts[1], parts[2] if len(parts) == 4 else None, query, body)
        except Refusal as r:
            hdrs = {}
            if r.status == 401:
                hdrs["WWW-Authenticate"] = ('Bearer authorization="https://login.microsoftonline.com/'
                                            'fake-tenant", resource="%s"' % v.resource)
            return error(r.status, r.code, r.message, hdrs)
        return error(405, "MethodNotAllowed", "%s is not supported on %s" % (method, path))

    def check_api_version(self, query):
        av = query.get("api-version")
        if not av:
            raise Refusal(400, "BadParameter", "The api-version query parameter is required.")
        try:
            ok = tuple(int(x) for x in av.split(".")) >= (7, 3)
        except ValueError:
            ok = len(av) == 10 and av[4] == "-" and av[7] == "-"
        if not ok:
            raise Refusal(400, "BadParameter", "The specified version (%s) is not recognized. "
                          "Consider using the latest supported version (7.4)." % av)

    def check_bearer(self, v):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise Refusal(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        try:
            _, claims, _, _ = jwt_parts(auth[7:].strip(), "the bearer token")
        except Refusal:
            raise Refusal(401, "Unauthorized", "AKV10019: The bearer token is not a JWT.")
        if not isinstance(claims, dict):
            raise Refusal(401, "Unauthorized", "AKV10019: The bearer token is not a JWT.")
        aud = claims.get("aud")
        if not isinstance(aud, str) or aud.rstrip("/") != v.resource:
            raise Refusal(401, "Unauthorized", "AKV10022: Invalid audience. Expected %s, found: %s."
                          % (v.resource, aud))
        iss = claims.get("iss", "")
        if not isinstance(iss, str) or not (iss.startswith("https://sts.windows.net/") or
                                            iss.startswith("https://login.microsoftonline.com/")):
            raise Refusal(401, "Unauthorized", "AKV10032: Invalid issuer. Expected one of "
                          "https://sts.windows.net/..., found: %s." % iss)
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp < time.time():
            raise Refusal(401, "Unauthorized", "AKV10021: The access token has expired.")
        return claims

    def check_appid(self, caller, action):
        allowed = self.server.state.allow_appid
        if allowed:
            appid = caller.get("appid") or caller.get("azp")
            if appid not in allowed:
                raise Refusal(403, "Forbidden", "Caller is not authorized to perform action on "
                              "resource. Caller: appid=%s; Action: 'Microsoft.KeyVault/vaults/keys/"
                              "%s/action'" % (appid, action))

    def find(self, v, name, version):
        with v.lock:
            versions = v.keys.get(name)
            if versions and version is None:
                return name, versions[-1]
            for k in versions or []:
                if k["version"] == version:
                    return name, k
        raise Refusal(404, "KeyNotFound", "A key with (name/id) %s was not found in this key vault. "
                      "If you recently deleted this key you may be able to recover it using the "
                      "correct recovery command." % (name + ("/" + version if version else "")))

    def base(self):
        return "https://" + (self.headers.get("Host") or "127.0.0.1")

    def bundle(self, v, found):
        name, k = found
        key = {"kid": "%s/keys/%s/%s" % (self.base(), name, k["version"]), "kty": k["kty"],
               "key_ops": k["key_ops"]}
        if k["kty"].startswith("RSA"):
            pub = k["material"].public_key().public_numbers()
            key.update({"n": intb64(pub.n), "e": intb64(pub.e)})
        out = {"key": key, "attributes": k["attributes"]}
        if k["policy_data"] is not None:
            out["release_policy"] = {"contentType": k["content_type"], "data": k["policy_data"]}
        return out

    def import_key(self, v, name, body):
        if not name.replace("-", "").isalnum() or len(name) > 127:
            raise Refusal(400, "BadParameter", "Key name %s is invalid." % name)
        try:
            req = json.loads(body)
        except ValueError:
            raise Refusal(400, "BadParameter", "The request body is not valid JSON.")
        jwk = req.get("key") if isinstance(req, dict) else None
        if not isinstance(jwk, dict) or jwk.get("kty") not in KTYS:
            raise Refusal(400, "BadParameter", "Property key.kty is required and must be one of %s."
                          % ", ".join(sorted(KTYS)))
        hsm = req.get("hsm", False)
        if not isinstance(hsm, bool):
            raise Refusal(400, "BadParameter", "Property hsm must be a boolean.")
        kty = jwk["kty"]
        if hsm and not kty.endswith("-HSM"):
            kty += "-HSM"
        if v.mode == "mhsm" and not kty.endswith("-HSM"):
            raise Refusal(400, "BadParameter", "Managed HSM only holds HSM keys: key type %s is not "
                          "supported." % jwk["kty"])
        ops = jwk.get("key_ops", sorted(KEY_OPS))
        if not isinstance(ops, list) or not all(o in KEY_OPS for o in ops):
            raise Refusal(400, "BadParameter", "Property key.key_ops has an invalid operation.")
        try:
            material = self.material(kty, jwk)
        except (KeyError, ValueError, TypeError) as e:
            raise Refusal(400, "BadParameter", "The key material is invalid: %s" % e)
        attrs = req.get("attributes", {})
        exportable = isinstance(attrs, dict) and attrs.get("exportable") is True
        rp = req.get("release_policy")
        policy = policy_data = content_type = None
        if rp is not None:
            if not isinstance(rp, dict) or not isinstance(rp.get("data"), str):
                raise Refusal(400, "BadParameter", "Property release_policy.data is required.")
            content_type = rp.get("contentType", "application/json; charset=utf-8")
            try:
                policy = json.loads(b64url_decode(rp["data"]))
                check_policy(policy)
            except ValueError as e:
                raise Refusal(400, "BadParameter", "The release policy is invalid: %s." % e)
            policy_data = rp["data"]
        if exportable and policy is None:
            raise Refusal(400, "BadParameter", "Exportable keys must have a release policy.")
        now = int(time.time())
        k = {"version": uuid.uuid4().hex, "kty": kty, "key_ops": ops, "material": material,
             "policy": policy, "policy_data": policy_data, "content_type": content_type,
             "attributes": {"enabled": True, "exportable": exportable, "created": now,
                            "updated": now, "recoveryLevel": "Recoverable+Purgeable",
                            "recoverableDays": 90}}
        with v.lock:
            v.keys.setdefault(name, []).append(k)
        return 200, {}, self.bundle(v, (name, k))

    @staticmethod
    def material(kty, jwk):
        if kty.startswith("oct"):
            k = b64url_decode(jwk["k"])
            if len(k) not in (16, 24, 32):
                raise ValueError("an AES key is 128, 192 or 256 bits, not %d" % (len(k) * 8))
            if "key_size" in jwk and jwk["key_size"] != len(k) * 8:
                raise ValueError("key_size %s does not match k" % jwk["key_size"])
            return k
        if kty.startswith("RSA"):
            pub = rsa.RSAPublicNumbers(b64int(jwk["e"]), b64int(jwk["n"]))
            priv = rsa.RSAPrivateNumbers(b64int(jwk["p"]), b64int(jwk["q"]), b64int(jwk["d"]),
                                         b64int(jwk["dp"]), b64int(jwk["dq"]), b64int(jwk["qi"]), pub)
            key = priv.private_key()
            if key.key_size < 2048:
                raise ValueError("RSA keys are 2048 bits or more")
            return key
        curve = CURVES[jwk["crv"]]()
        return ec.EllipticCurvePrivateNumbers(
            b64int(jwk["d"]), ec.EllipticCurvePublicNumbers(b64int(jwk["x"]), b64int(jwk["y"]), curve)
        ).private_key()

    def fetch_json(self, v, url):
        ctx = ssl.create_default_context(cafile=v.cacert)
        try:
            with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
                return json.loads(r.read(1 << 20))
        except (OSError, ValueError) as e:
            raise Refusal(400, "BadParameter", "Target environment attestation statement cannot be "
                          "verified: fetching %s failed: %s" % (url, e))

    def verify_target(self, v, token, authorities):
        header, claims, sig, signed = jwt_parts(token, "Target environment attestation statement")
        if not isinstance(claims, dict) or not isinstance(header, dict):
            raise Refusal(400, "BadParameter", "Target environment attestation statement is not a JWT")
        iss = claims.get("iss")
        if not isinstance(iss, str) or not any(same_authority(iss, a) for a in authorities):
            raise Refusal(403, "Forbidden", "Target environment attestation statement cannot be "
                          "verified: its issuer %s is not an authority of the key's release policy."
                          % iss)
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise Refusal(400, "BadParameter", "Target environment attestation statement cannot be "
                          "verified: alg %s is not RS256, or no kid." % header.get("alg"))
        meta = self.fetch_json(v, iss.rstrip("/") + "/.well-known/openid-configuration")
        jwks = self.fetch_json(v, meta.get("jwks_uri", "") if isinstance(meta, dict) else "")
        keys = [k for k in (jwks.get("keys", []) if isinstance(jwks, dict) else [])
                if isinstance(k, dict) and k.get("kid") == header["kid"]]
        if not keys:
            raise Refusal(400, "BadParameter", "Target environment attestation statement cannot be "
                          "verified: no signing key %s at the authority." % header["kid"])
        try:
            pub = rsa.RSAPublicNumbers(b64int(keys[0]["e"]), b64int(keys[0]["n"])).public_key()
            pub.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        except (KeyError, ValueError, InvalidSignature):
            raise Refusal(400, "BadParameter", "Target environment attestation statement cannot be "
                          "verified: the signature does not verify.")
        now = time.time()
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now - 60:
            raise Refusal(400, "BadParameter", "Target environment attestation statement has expired.")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 60:
            raise Refusal(400, "BadParameter", "Target environment attestation statement is not "
                          "valid yet.")
        return iss, claims

    def release(self, v, name, version, query, body):
        try:
            req = json.loads(body)
        except ValueError:
            raise Refusal(400, "BadParameter", "The request body is not valid JSON.")
        if not isinstance(req, dict) or not isinstance(req.get("target"), str) or not req["target"]:
            raise Refusal(400, "BadParameter", "Property target is required.")
        enc = req.get("enc", "CKM_RSA_AES_KEY_WRAP")
        if enc not in ENC_HASHES:
            raise Refusal(400, "BadParameter", "Property enc has an invalid value %s." % enc)
        found = self.find(v, name, version)
        k = found[1]
        if not k["attributes"]["exportable"] or k["policy"] is None:
            raise Refusal(403, "Forbidden", "The key is not exportable.")
        policy = k["policy"]
        top = "anyOf" if "anyOf" in policy else "allOf"
        iss, claims = self.verify_target(v, req["target"], [g["authority"] for g in policy[top]])
        failed = []
        results = []
        for g in policy[top]:
            if same_authority(g["authority"], iss):
                results.append(evaluate({kk: vv for kk, vv in g.items() if kk != "authority"},
                                        claims, failed))
            else:
                results.append(False)
        if not (any(results) if top == "anyOf" else all(results)):
            raise Refusal(403, "Forbidden", "Target environment attestation statement does not "
                          "satisfy the key's release policy (claims not met: %s)."
                          % ", ".join(sorted(set(failed))))
        runtime = claims.get("x-ms-runtime")
        wkeys = [w for w in (runtime.get("keys", []) if isinstance(runtime, dict) else [])
                 if isinstance(w, dict) and w.get("kty") == "RSA" and
                 ("key_ops" not in w or "encrypt" in w.get("key_ops", []))]
        if not wkeys:
            raise Refusal(400, "BadParameter", "Target environment attestation statement has no "
                          "RSA encryption key in x-ms-runtime.keys.")
        try:
            wrapping = rsa.RSAPublicNumbers(b64int(wkeys[0]["e"]), b64int(wkeys[0]["n"])).public_key()
        except (KeyError, ValueError):
            raise Refusal(400, "BadParameter", "The wrapping key in x-ms-runtime.keys is invalid.")
        if wrapping.key_size < 2048:
            raise Refusal(400, "BadParameter", "The wrapping key must be RSA of 2048 bits or more.")
        m = k["material"]
        raw = m if isinstance(m, bytes) else m.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        kek = os.urandom(32)
        h = ENC_HASHES[enc]
        ct = wrapping.encrypt(kek, padding.OAEP(mgf=padding.MGF1(algorithm=h()), algorithm=h(),
                                                label=None)) + aes_key_wrap_with_padding(kek, raw)
        key_hsm = b64url(json.dumps({"schema_version": "1.0",
                                     "header": {"kid": wkeys[0].get("kid", "TpmEphemeralEncryptionKey"),
                                                "alg": "dir", "enc": enc},
                                     "ciphertext": b64url(ct)}))
        bundle = self.bundle(v, found)
        bundle["key"]["key_hsm"] = key_hsm
        payload = {"request": {"api-version": query["api-version"], "enc": enc,
                               "kid": "%s/keys/%s%s" % (self.base(), name, "/" + version if version else "")},
                   "response": {"key": bundle}}
        if "nonce" in req:
            payload["request"]["nonce"] = req["nonce"]
        return 200, {}, {"value": sign_jws({}, payload, v.sign_cert, v.sign_key)}


# --- tampering with a release response (tests) ------------------------------------------------

def tamper(mode, certs, host, jws):
    h64, p64, s64 = jws.strip().split(".")
    header, payload = json.loads(b64url_decode(h64)), json.loads(b64url_decode(p64))
    chain, key = load_signer(certs, host)

    def resign(p, c=chain, k=key, extra=None):
        hx = {kk: vv for kk, vv in header.items() if kk not in ("x5c", "x5t#S256", "kid", "alg", "typ")}
        hx.update(extra or {})
        return sign_jws(hx, p, c, k)

    def with_ciphertext(f):
        kh = json.loads(b64url_decode(payload["response"]["key"]["key"]["key_hsm"]))
        kh["ciphertext"] = b64url(f(b64url_decode(kh["ciphertext"])))
        payload["response"]["key"]["key"]["key_hsm"] = b64url(json.dumps(kh))
        return resign(payload)

    if mode == "payload":  # the signed bytes change, the signature stays
        payload["response"]["key"]["key"]["kid"] += "0"
        return h64 + "." + b64url(json.dumps(payload)) + "." + s64
    if mode == "signature":
        sig = bytearray(b64url_decode(s64))
        sig[len(sig) // 2] ^= 0x01
        return h64 + "." + p64 + "." + b64url(bytes(sig))
    if mode == "rogue-ca":  # a well-formed chain for the right host from a CA nobody trusts
        rogue_chain, rogue_key = load_signer(os.path.join(certs, "rogue"), host, ca="rogue")
        return resign(payload, rogue_chain, rogue_key)
    if mode == "wrong-host":  # the test CA, but a certificate for another host
        other_chain, other_key = load_signer(certs, "other.vault.localhost")
        return resign(payload, other_chain, other_key)
    if mode == "truncate":
        return with_ciphertext(lambda ct: ct[:200])
    if mode == "kwp":  # one bit of the AES-KWP part: the integrity check must catch it
        return with_ciphertext(lambda ct: ct[:-5] + bytes([ct[-5] ^ 0x80]) + ct[-4:])
    if mode == "alg-none":
        hx = dict(header, alg="none")
        return b64url(json.dumps(hx)) + "." + p64 + "."
    if mode in ("RS384", "RS512", "PS256", "PS384", "PS512"):  # valid, with another algorithm
        return sign_jws({}, payload, chain, key, alg=mode)
    if mode == "x5t":  # a thumbprint naming another certificate than x5c[0]
        return sign_jws({"x5t#S256": b64url(b"\0" * 32)}, payload, chain, key)
    if mode == "x5t-sha1":  # the same with the SHA-1 thumbprint
        return sign_jws({"x5t": b64url(b"\0" * 20)}, payload, chain, key)
    if mode == "client-eku":  # the test CA and the right host, but a certificate for TLS clients
        c, k = odd_signer(certs, host, "akv-sign-client-" + host, [ExtendedKeyUsageOID.CLIENT_AUTH])
        return sign_jws({}, payload, c, k)
    if mode == "server-eku":  # what a TLS server certificate has: accepted
        c, k = odd_signer(certs, host, "akv-sign-server-" + host, [ExtendedKeyUsageOID.SERVER_AUTH])
        return sign_jws({}, payload, c, k)
    if mode == "expired":
        c, k = odd_signer(certs, host, "akv-sign-expired-" + host, expired=True)
        return sign_jws({}, payload, c, k)
    if mode == "padded":  # the same signature, base64url with "=" padding (RFC 7515 has none)
        return h64 + "." + p64 + "." + s64 + "=" * (-len(s64) % 4 or 4)
    if mode == "kid-host":  # request.kid names this vault, the released key's kid another one
        k = payload["response"]["key"]["key"]
        k["kid"] = "https://other.vault.localhost/" + k["kid"].split("/", 3)[3]
        return resign(payload)
    if mode == "escaped-x5c":
        return sign_jws({}, payload, chain, key, escape_slash=True)
    raise SystemExit("unknown tamper mode " + mode)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "tamper":
        ap = argparse.ArgumentParser(prog="akv.py tamper")
        ap.add_argument("mode")
        ap.add_argument("--certs", required=True)
        ap.add_argument("--host", required=True)
        a = ap.parse_args(sys.argv[2:])
        sys.stdout.write(tamper(a.mode, a.certs, a.host, sys.stdin.read()) + "\n")
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--certs", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--mode", choices=sorted(RESOURCES), default="vault")
    ap.add_argument("--cacert")
    ap.add_argument("--allow-appid", action="append", default=[])
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    v = Vault(a)
    fakelib.serve(AKV, "akv", tls=v.tls, port=a.port, state=v)


if __name__ == "__main__":
    main()
