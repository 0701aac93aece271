"""A loopback HTTP(S) test server for the common HTTP client's tests.

Routes: GET /ok -> 200 "hello"; GET /status/N -> N with an error JSON; GET /big?n=BYTES -> n bytes;
GET /slow?s=SECONDS -> waits then 200; POST /echo -> the request body back.  Failures are injected
through POST /_fault (see fakelib.Faults), and GET /_requests lists what was received.

usage: echo.py [--tls CERT KEY] [--port N]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402


class Echo(fakelib.Handler):
    def route(self, method, path, query, body):
        if path == "/ok":
            return 200, {"ETag": '"v1"'}, "hello"
        if path.startswith("/status/"):
            code = int(path.split("/")[2])
            return code, {}, {"error": {"code": "Status%d" % code, "message": "asked for %d" % code}}
        if path == "/big":
            return 200, {}, b"x" * int(query.get("n", "0"))
        if path == "/slow":
            time.sleep(float(query.get("s", "1")))
            return 200, {}, "slow"
        if path == "/echo" and method in ("POST", "PUT"):
            return 200, {}, body
        return super().route(method, path, query, body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    fakelib.serve(Echo, "echo", tls=a.tls, port=a.port)


if __name__ == "__main__":
    main()
