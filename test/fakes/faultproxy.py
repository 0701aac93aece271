"""A fault-injecting, byte-counting HTTP proxy for Blob Storage tests: it sits between a client and
an upstream service (Azurite over plain HTTP), forwards each request, and misbehaves when told to.
It speaks plain HTTP to the client, listens on 127.0.0.1 only and writes its port to $READY.

usage: faultproxy.py UPSTREAM_URL          e.g. http://127.0.0.1:41234

Control (never forwarded):
  POST /_fault {"kind": K, "action": A, "count": n, "skip": m, ...}   add a rule
      kind: "range" (GET of blob bytes), "pagelist" (GET ?comp=pagelist), "head", "page" (PUT
            ?comp=page: Put Page), "lease" (PUT ?comp=lease), "create" (PUT without comp: Put Blob),
            "any"
      skip: let the first m matching requests through untouched (default 0)
      count: how many matching requests (after skip) the rule hits; -1 forever (default 1)
      action:
        "status"  answer {"status": code, "retry_after": s} without forwarding; {"headers": {name:
                  value}} adds response headers (a 201 with an ETag: a write acknowledged but
                  never done)
        "reset"   close the connection without an answer (the request is not forwarded)
        "drop"    forward, then close the connection without passing the answer on (the request
                  took effect; the client cannot know)
        "cut_request"  read {"after": bytes} (default half) of the request body, then close the
                  connection (an upload cut mid-body; nothing is forwarded)
        "cut"     forward, send the headers and {"after": bytes} of the body (default half), close
        "short"   forward, but announce and send only {"after": bytes} (default half) of the body,
                  keeping the connection: a clean end with fewer bytes than the range asked
        "stall"   forward, send the headers and {"after": bytes} (default 0), then wait
                  {"delay": s} seconds before closing, or until the client closes the connection
                  (counted: stalls_cut_by_client, stalls_expired)
        "delay"   wait {"delay": s} seconds, then forward (what the upstream says then is sent)
        "paginate" (pagelist) serve the upstream's page list in pages of {"page": n} ranges with
                  NextMarker continuations, as Blob Storage does for long lists (Azurite does not);
                  the proxy's markers hold characters that need XML and URL escaping;
                  {"delay_page": k, "delay": s} serves page k (from 0) s seconds late.  With
                  {"loop": [m1, m2, ...]} a hostile variant instead: every page is empty and
                  continues with the next marker of the list, round and round, forever
        "flood"   answer {"status": code} (default 500, x-ms-error-code ServerBusy) without forwarding,
                  with an error body that does not end: bytes until the client closes the
                  connection (or 1 GiB); counted in body_bytes
        "header"  forward, with the response headers changed: {"set": {name: value}} replaces or
                  adds, {"drop": [name, ...]} removes
  DELETE /_fault                 remove every rule
  GET /_stats                    {"requests", "body_bytes", "sent_bytes", "by_kind": {kind: {requests,
                                  body_bytes, sent_bytes, max_sent}}, "faults": hits,
                                  "delays_started": n, "pending_delays": n,
                                  "stalls_cut_by_client": n, "stalls_expired": n}
                                 (body_bytes: response bodies sent to the client; sent_bytes:
                                 request bodies received from it; max_sent: the largest one;
                                 pending_delays: the delayed answers held now, whenever they began;
                                 delays_started: those begun since the counters were zeroed)
  GET /_log                      the requests since the counters were zeroed, in order of arrival:
                                 [{"kind", "method", "range" (x-ms-range or Range), "if_match",
                                   "action" (the fault applied, or null), "t" (arrival),
                                   "t_end" (answer sent; null while in progress)}], times in
                                 seconds of CLOCK_MONOTONIC
  DELETE /_stats                 zero the counters (not pending_delays) and empty the log
"""
import http.client
import http.server
import json
import os
import select
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "content-length"}


class State:
    def __init__(self, upstream):
        u = urlsplit(upstream)
        self.host, self.port = u.hostname, u.port or 80
        self.lock = threading.Lock()
        self.rules = []
        self.reset_stats()

    def reset_stats(self):
        with self.lock:
            # pending_delays is a gauge: a delayed answer begun before stays pending after
            pending = getattr(self, "stats", {}).get("pending_delays", 0)
            self.stats = {"requests": 0, "body_bytes": 0, "sent_bytes": 0, "by_kind": {}, "faults": 0,
                          "delays_started": 0, "pending_delays": pending,
                          "stalls_cut_by_client": 0, "stalls_expired": 0}
            self.log = []

    def hold(self, seconds):
        """A delayed answer: counted while it waits."""
        with self.lock:
            self.stats["delays_started"] += 1
            self.stats["pending_delays"] += 1
        time.sleep(seconds)
        with self.lock:
            self.stats["pending_delays"] -= 1

    def record(self, entry):
        with self.lock:
            if len(self.log) < 100000:
                self.log.append(entry)

    def count_sent(self, kind, nbytes):
        with self.lock:
            k = self.stats["by_kind"].setdefault(kind, {"requests": 0, "body_bytes": 0, "sent_bytes": 0})
            self.stats["sent_bytes"] += nbytes
            k["sent_bytes"] += nbytes
            k["max_sent"] = max(k.get("max_sent", 0), nbytes)

    def count(self, kind, nbytes, request=False):
        with self.lock:
            k = self.stats["by_kind"].setdefault(kind, {"requests": 0, "body_bytes": 0, "sent_bytes": 0})
            if request:
                self.stats["requests"] += 1
                k["requests"] += 1
            self.stats["body_bytes"] += nbytes
            k["body_bytes"] += nbytes

    def take(self, kind):
        with self.lock:
            for r in self.rules:
                if r.get("kind", "any") not in ("any", kind) or r["count"] == 0:
                    continue
                if r.get("skip", 0) > 0:
                    r["skip"] -= 1
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                self.stats["faults"] += 1
                return dict(r)
        return None


def kind_of(method, path):
    if method == "HEAD":
        return "head"
    if "comp=pagelist" in path:
        return "pagelist"
    if method == "GET" and "comp=" not in path:
        return "range"
    if method == "PUT" and "comp=page" in path:
        return "page"
    if method == "PUT" and "comp=lease" in path:
        return "lease"
    if method == "PUT" and "comp=" not in path:
        return "create"
    return "other"


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "encfs-faultproxy/1.0"
    # headers and body go out in separate writes: with Nagle, the body waits for the client's
    # delayed ACK (40 ms a response on Linux)
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        sys.stderr.write("faultproxy %s\n" % (fmt % args))

    def _json(self, status, obj):
        data = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _control(self, method, body):
        st = self.server.state
        if self.path.startswith("/_fault"):
            if method == "POST":
                rule = json.loads(body)
                rule.setdefault("count", 1)
                with st.lock:
                    st.rules.append(rule)
            elif method == "DELETE":
                with st.lock:
                    st.rules = []
            return self._json(204, None)
        if self.path.startswith("/_log"):
            with st.lock:
                return self._json(200, list(st.log))
        if self.path.startswith("/_stats"):
            if method == "DELETE":
                st.reset_stats()
                return self._json(204, None)
            with st.lock:
                return self._json(200, st.stats)
        return self._json(404, {"error": "no such control path"})

    def _close(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _upstream(self):
        conn = getattr(self, "_conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.server.state.host, self.server.state.port, timeout=120)
            self._conn = conn
        return conn

    def _forward(self, method, body):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "host"}
        headers["Host"] = "%s:%d" % (self.server.state.host, self.server.state.port)
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed meanwhile
            conn = self._upstream()
            try:
                conn.request(method, self.path, body=body or None, headers=headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        return None

    def _await_client_close(self, seconds):
        """Waits up to seconds for the client to close the connection; True if it did."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.connection], [], [], left)
            if not r:
                return False
            try:
                if self.connection.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except OSError:
                return True
            time.sleep(0.01)  # something else arrived: not a close; look again

    def _handle(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        if self.path.startswith("/_"):
            return self._control(method, self.rfile.read(n) if n else b"")
        st = self.server.state
        kind = kind_of(method, self.path)
        st.count(kind, 0, request=True)
        rule = st.take(kind)
        action = rule.get("action") if rule else None
        if action == "cut_request":
            part = self.rfile.read(min(n, rule.get("after", n // 2)))
            st.count_sent(kind, len(part))
            return self._close()
        body = self.rfile.read(n) if n else b""
        st.count_sent(kind, len(body))
        entry = {"kind": kind, "method": method,
                 "range": self.headers.get("x-ms-range") or self.headers.get("Range"),
                 "if_match": self.headers.get("If-Match"), "action": action,
                 "t": time.monotonic(), "t_end": None}
        st.record(entry)
        try:
            return self._answer(method, body, st, kind, rule, action)
        finally:
            entry["t_end"] = time.monotonic()

    def _answer(self, method, body, st, kind, rule, action):
        if action == "reset":
            return self._close()
        if action == "status":
            code = rule.get("status", 503)
            data = b""
            self.send_response(code)
            if code >= 400:
                self.send_header("x-ms-error-code", "AuthorizationFailure" if code == 403 else "ServerBusy")
            for k, v in rule.get("headers", {}).items():
                self.send_header(k, v)
            if "retry_after" in rule:
                self.send_header("Retry-After", str(rule["retry_after"]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self.wfile.write(data)
        if action == "flood":
            return self._flood(st, kind, rule.get("status", 500))
        if action == "delay":
            st.hold(rule.get("delay", 1))
        if action == "paginate":
            return self._paginate(body, rule)
        resp = self._forward(method, body)
        if action == "drop":
            resp.read()
            return self._close()
        if action in (None, "header") and method != "HEAD" and resp.getheader("Content-Length"):
            return self._stream(resp, kind, rule)
        data = resp.read()
        length = len(data) if method != "HEAD" else int(resp.getheader("Content-Length") or 0)
        send = data
        if action in ("cut", "short", "stall"):
            send = data[: rule.get("after", len(data) // 2 if action != "stall" else 0)]
        self.send_response(resp.status, resp.reason)
        for k, v in self._headers(resp, rule):
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(send) if action == "short" else length))
        self.end_headers()
        if method == "HEAD":
            return None
        for i in range(0, len(send), 1 << 16):
            piece = send[i:i + (1 << 16)]
            self.wfile.write(piece)
            st.count(kind, len(piece))
        if action == "stall":
            self.wfile.flush()
            cut = self._await_client_close(rule.get("delay", 5))
            with st.lock:
                st.stats["stalls_cut_by_client" if cut else "stalls_expired"] += 1
            return self._close()
        if action == "cut":
            self.wfile.flush()
            return self._close()
        return None

    def _flood(self, st, kind, code):
        self.send_response(code)
        self.send_header("x-ms-error-code", "ServerBusy")
        self.send_header("Connection", "close")
        self.end_headers()
        piece = b"<Error>" * 9362
        try:
            for _ in range((1 << 30) // len(piece)):
                self.wfile.write(piece)
                st.count(kind, len(piece))
        except OSError:
            pass
        return self._close()

    def _paginate(self, body, rule):
        """Get Page Ranges with continuation markers, per the REST documentation: the upstream's
        whole list (Azurite never pages) cut into pages of rule["page"] ranges."""
        import xml.etree.ElementTree as ET
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
        u = urlsplit(self.path)
        q = parse_qsl(u.query, keep_blank_values=True)
        marker = dict(q).get("marker", "")
        q = [(k, v) for k, v in q if k not in ("marker", "maxresults")]
        self.path = urlunsplit(("", "", u.path, urlencode(q), ""))
        resp = self._forward("GET", body)
        data = resp.read()
        if resp.status != 200:
            self.send_response(resp.status, resp.reason)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        start = 0
        if marker and "loop" not in rule:
            if not marker.startswith("2!&<p=") or not marker.endswith(">"):
                self.send_response(400, "bad marker")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            start = int(marker[6:-1])
        if "delay_page" in rule and start == rule["delay_page"] * rule.get("page", 2):
            self.server.state.hold(rule.get("delay", 1))
        out = ET.Element("PageList")
        if "loop" in rule:
            loop = rule["loop"]
            nxt = loop[(loop.index(marker) + 1) % len(loop)] if marker in loop else loop[0]
            ET.SubElement(out, "NextMarker").text = nxt
        else:
            ranges = list(ET.fromstring(data))
            page = rule.get("page", 2)
            for r in ranges[start:start + page]:
                out.append(r)
            nm = ET.SubElement(out, "NextMarker")
            if start + page < len(ranges):
                nm.text = "2!&<p=%d>" % (start + page)
        xml = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(out)
        self.send_response(200)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(xml)))
        self.end_headers()
        self.wfile.write(xml)
        self.server.state.count("pagelist", len(xml))
        return None

    @staticmethod
    def _headers(resp, rule):
        """The upstream's response headers to send on, changed as a "header" rule says."""
        rule = rule if rule and rule.get("action") == "header" else {}
        drop = {k.lower() for k in rule.get("drop", [])} | {k.lower() for k in rule.get("set", {})}
        out = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP and k.lower() not in drop]
        return out + list(rule.get("set", {}).items())

    def _stream(self, resp, kind, rule=None):
        """Forwards a response as it comes (large bodies need not fit in memory)."""
        self.send_response(resp.status, resp.reason)
        for k, v in self._headers(resp, rule):
            self.send_header(k, v)
        self.send_header("Content-Length", resp.getheader("Content-Length"))
        self.end_headers()
        while True:
            piece = resp.read(1 << 20)
            if not piece:
                break
            self.wfile.write(piece)
            self.server.state.count(kind, len(piece))

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_PUT(self):
        self._handle("PUT")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: faultproxy.py UPSTREAM_URL")
    srv = fakelib.Server(("127.0.0.1", 0), Proxy)
    srv.state = State(sys.argv[1])
    ready = os.environ.get("READY")
    if ready:
        fakelib._write(ready, str(srv.server_address[1]).encode(), 0o644)
    sys.stderr.write("faultproxy listening on 127.0.0.1:%d\n" % srv.server_address[1])
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
