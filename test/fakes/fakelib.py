"""Shared plumbing for the fake Azure services used by the tests.

Each fake is an independent implementation of a service's public wire format (DESIGN.md section 6),
written against the REST documentation, never against encfs's C code.  They listen on 127.0.0.1 only,
serve HTTPS with a certificate from the test CA (see `ensure_ca`), write their port to the file
named by $READY once listening, and can be told to misbehave through POST /_fault.
"""
import datetime
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


# --- test CA -----------------------------------------------------------------------------------

def _write(path, data, mode=0o600):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "encfs tests")])


def ensure_ca(d, name="ca"):
    """Creates (once) a self-signed CA in d: <name>.pem and <name>.key.  Returns (cert, key)."""
    os.makedirs(d, exist_ok=True)
    cp, kp = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    if os.path.exists(cp) and os.path.exists(kp):
        with open(cp, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(kp, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name("encfs test CA " + name)).issuer_name(_name("encfs test CA " + name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(kp, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))
    _write(cp, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def issue_leaf(d, name, hosts, ca="ca", key_type="ec", usage="server"):
    """Issues (once) a leaf certificate for hosts (DNS names or IPs) signed by CA ca in d:
    <name>.pem (leaf then CA), <name>.key.  usage "server" for TLS, "sign" for signing JWS."""
    import ipaddress
    cp, kp = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    if os.path.exists(cp) and os.path.exists(kp):
        return cp, kp
    ca_cert, ca_key = ensure_ca(d, ca)
    key = rsa.generate_private_key(65537, 2048) if key_type == "rsa" else ec.generate_private_key(ec.SECP256R1())
    sans = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(_name(hosts[0] if hosts else name)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=825))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage == "server":
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    _write(kp, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))
    _write(cp, cert.public_bytes(serialization.Encoding.PEM) +
           ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cp, kp


# --- fault injection ---------------------------------------------------------------------------

class Faults:
    """Rules set through POST /_fault: {"path": prefix, "count": n, "status": code,
    "retry_after": s, "delay": s, "body": text, "reset": true, "truncate": true, "snapshot": file}.
    Each matching request consumes one count; count -1 means forever.  "snapshot" records in the
    request log (/_requests) what that file held when the request arrived.  DELETE /_fault clears
    them all."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.hits = {}

    def set(self, rule):
        with self.lock:
            rule.setdefault("count", 1)
            rule.setdefault("path", "/")
            self.rules.append(rule)

    def clear(self):
        with self.lock:
            self.rules = []

    def take(self, path):
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            for r in self.rules:
                if path.startswith(r["path"]) and r["count"] != 0:
                    if r["count"] > 0:
                        r["count"] -= 1
                    return dict(r)
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    """Base request handler: JSON helpers, fault injection, request log on stderr.
    Subclasses define route(method, path, query, body) returning (status, headers, body)."""

    protocol_version = "HTTP/1.1"
    server_version = "encfs-fake/1.0"
    max_body = 8 << 20

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.server.name, fmt % args))

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > self.max_body:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def _handle(self, method):
        from urllib.parse import parse_qs, urlsplit
        u = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
        except ValueError:
            return self.reply(413, {"error": {"code": "TooLarge", "message": "body too large"}})
        self.server.requests.append({"method": method, "path": u.path, "query": query,
                                     "headers": dict(self.headers.items()),
                                     "body": body.decode("utf-8", "replace"),
                                     "time": time.monotonic()})
        if u.path == "/_fault":
            if method == "POST":
                self.server.faults.set(json.loads(body))
            elif method == "DELETE":
                self.server.faults.clear()
            return self.reply(204, None)
        if u.path == "/_requests":
            return self.reply(200, self.server.requests[:-1])
        f = self.server.faults.take(u.path)
        if f and f.get("snapshot"):
            # what a file (a client's stderr) held when this request arrived: tests order events
            # by it ("the warning was written before the retry came"), never by the clock
            try:
                with open(f["snapshot"], encoding="utf-8", errors="replace") as sf:
                    self.server.requests[-1]["snapshot"] = sf.read()
            except OSError as e:
                self.server.requests[-1]["snapshot"] = "(unreadable: %s)" % e
        if f:
            if f.get("delay"):
                time.sleep(f["delay"])
            if f.get("reset"):
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            if f.get("status"):
                hdrs = {}
                if "retry_after" in f:
                    hdrs["Retry-After"] = str(f["retry_after"])
                return self.reply(f["status"], f.get("body", {"error": {"code": "Injected",
                                  "message": "injected failure %d" % f["status"]}}), hdrs)
            if f.get("truncate"):
                self._truncate = True
        status, headers, out = self.route(method, u.path, query, body)
        return self.reply(status, out, headers)

    def reply(self, status, body, headers=None):
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            ctype = "application/json; charset=utf-8"
        elif isinstance(body, str):
            data = body.encode()
            ctype = "text/plain; charset=utf-8"
        else:
            data = body or b""
            ctype = "application/octet-stream"
        self.send_response(status)
        hdrs = {"Content-Type": ctype}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if getattr(self, "_truncate", False):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        if self.command != "HEAD":
            self.wfile.write(data)
        return None

    def route(self, method, path, query, body):
        return 404, {}, {"error": {"code": "NotFound", "message": "no route " + path}}

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_HEAD(self):
        self._handle("HEAD")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(handler, name, tls=None, port=0, ready=None, state=None):
    """Serves handler on 127.0.0.1:port; tls=(certfile, keyfile) for HTTPS.  Writes the port to
    ready (default $READY) when listening.  state is attached as server.state."""
    srv = Server(("127.0.0.1", port), handler)
    srv.name = name
    srv.faults = Faults()
    srv.requests = []
    srv.state = state
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    ready = ready or os.environ.get("READY")
    if ready:
        _write(ready, str(srv.server_address[1]).encode(), 0o644)
    sys.stderr.write("%s listening on 127.0.0.1:%d\n" % (name, srv.server_address[1]))
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


def b64url(data):
    import base64
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    import base64
    if isinstance(text, bytes):
        text = text.decode()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


if __name__ == "__main__":
    # python3 fakelib.py ca DIR [NAME HOST...]: make the test CA, and a leaf for HOSTs
    if len(sys.argv) >= 3 and sys.argv[1] == "ca":
        ensure_ca(sys.argv[2])
        if len(sys.argv) >= 5:
            issue_leaf(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit("usage: fakelib.py ca DIR [NAME HOST...]")
