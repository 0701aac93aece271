"""Fake Azure Instance Metadata Service: managed identity tokens
(GET /metadata/identity/oauth2/token) per
https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
Plain HTTP, as the real IMDS (169.254.169.254) is.

Tokens are unsigned-looking JWTs whose payload records the resource and client_id asked for, so a
fake service can check what it was given ("aud", "appid").  Fault injection through /_fault.

usage: imds.py [--port N] [--client-id ID]...   (client ids the VM has; default: any)
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402


def make_token(resource, client_id):
    header = fakelib.b64url(json.dumps({"typ": "JWT", "alg": "none", "kid": "fake-imds"}))
    now = int(time.time())
    payload = fakelib.b64url(json.dumps({"aud": resource, "appid": client_id or "system-assigned",
                                         "iss": "https://sts.windows.net/fake-tenant/",
                                         "iat": now, "nbf": now, "exp": now + 3600,
                                         "xms_mirid": "fake-identity"}))
    return "%s.%s.%s" % (header, payload, fakelib.b64url(os.urandom(32)))


class IMDS(fakelib.Handler):
    def route(self, method, path, query, body):
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
            return 200, {}, {"access_token": make_token(query["resource"], cid),
                             "client_id": cid or "system-assigned", "expires_in": "3599",
                             "expires_on": str(now + 3599), "not_before": str(now),
                             "resource": query["resource"], "token_type": "Bearer"}
        return super().route(method, path, query, body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--client-id", action="append", default=[])
    a = ap.parse_args()
    fakelib.serve(IMDS, "imds", port=a.port, state={"client_ids": a.client_id})


if __name__ == "__main__":
    main()
