"""Fake Microsoft Entra ID (Azure AD) token endpoint for workload identity: the client credentials
grant with a federated client assertion, per
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
(POST /{tenant}/oauth2/v2.0/token, form fields grant_type=client_credentials, client_id,
scope=<resource>/.default, client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer,
client_assertion=<the federated token, e.g. a Kubernetes service account token>).

It checks the tenant, the client id (when --client-id is given), the scope, and that the assertion is an
unexpired JWT for the audience api://AzureADTokenExchange (with the subject --subject, when given); its
signature is not checked.  Access tokens are JWTs with aud = the resource, appid = the client id,
tid and iss of the tenant.  HTTPS with a test CA certificate, 127.0.0.1 only; fault injection through
fakelib's /_fault.

usage: aad.py --certs DIR [--tenant T] [--client-id ID]... [--subject SUB] [--port N]
       aad.py federated-token [--sub SUB] [--aud AUD] [--exp SECONDS]   (prints an assertion)
       aad.py access-token --aud RESOURCE [--appid ID] [--exp SECONDS]   (prints a bearer token)
"""
import argparse
import json
import os
import sys
import time
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


def jwt(claims, kid="fake-aad"):
    header = fakelib.b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": kid}))
    return "%s.%s.%s" % (header, fakelib.b64url(json.dumps(claims)), fakelib.b64url(os.urandom(64)))


def access_token(resource, appid, tenant, lifetime=3600):
    now = int(time.time())
    return jwt({"aud": resource, "appid": appid, "azp": appid, "tid": tenant,
                "iss": "https://sts.windows.net/%s/" % tenant, "iat": now, "nbf": now,
                "exp": now + lifetime, "oid": "00000000-0000-0000-0000-0000000000a1",
                "sub": "00000000-0000-0000-0000-0000000000a1"})


def aad_error(status, error, code, text):
    return status, {}, {"error": error, "error_description": "%s: %s" % (code, text),
                        "error_codes": [int(code[6:])], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ")}


class AAD(fakelib.Handler):
    def route(self, method, path, query, body):
        st = self.server.state
        parts = path.strip("/").split("/")
        if method != "POST" or len(parts) != 4 or parts[1:] != ["oauth2", "v2.0", "token"]:
            return super().route(method, path, query, body)
        tenant = parts[0]
        if tenant != st["tenant"]:
            return aad_error(400, "invalid_request", "AADSTS90002",
                             "Tenant '%s' not found." % tenant)
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                                keep_blank_values=True).items()}
        if form.get("grant_type") != "client_credentials":
            return aad_error(400, "unsupported_grant_type", "AADSTS70003",
                             "The app requested an unsupported grant type.")
        client = form.get("client_id", "")
        if not client or (st["client_ids"] and client not in st["client_ids"]):
            return aad_error(400, "unauthorized_client", "AADSTS700016",
                             "Application with identifier '%s' was not found in the directory '%s'."
                             % (client, tenant))
        scope = form.get("scope", "")
        if not scope.endswith("/.default") or " " in scope:
            return aad_error(400, "invalid_scope", "AADSTS1002012",
                             "The provided value for scope %s is not valid." % scope)
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return aad_error(400, "invalid_request", "AADSTS700024",
                             "Client assertion type is not %s." % ASSERTION_TYPE)
        parts = form.get("client_assertion", "").split(".")
        try:
            claims = json.loads(fakelib.b64url_decode(parts[1])) if len(parts) == 3 else None
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            return aad_error(400, "invalid_client", "AADSTS50027",
                             "JWT token is invalid or malformed.")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if EXCHANGE_AUDIENCE not in auds:
            return aad_error(400, "invalid_client", "AADSTS700212",
                             "No matching federated identity record found for presented assertion "
                             "audience '%s'." % aud)
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
            return aad_error(400, "invalid_client", "AADSTS700024",
                             "Client assertion is not within its valid time range.")
        if st["subject"] and claims.get("sub") != st["subject"]:
            return aad_error(400, "invalid_client", "AADSTS700213",
                             "No matching federated identity record found for presented assertion "
                             "subject '%s'." % claims.get("sub"))
        resource = scope[: -len("/.default")]
        return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                         "access_token": access_token(resource, client, tenant)}


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("federated-token", "access-token"):
        ap = argparse.ArgumentParser(prog="aad.py " + sys.argv[1])
        ap.add_argument("--sub", default="system:serviceaccount:default:encfs")
        ap.add_argument("--aud")
        ap.add_argument("--appid", default="00000000-0000-0000-0000-00000000c11d")
        ap.add_argument("--tenant", default="fake-tenant")
        ap.add_argument("--exp", type=int, default=3600)
        a = ap.parse_args(sys.argv[2:])
        now = int(time.time())
        if sys.argv[1] == "federated-token":
            print(jwt({"aud": [a.aud or EXCHANGE_AUDIENCE], "iss": "https://oidc.fake-cluster.example/",
                       "sub": a.sub, "iat": now, "nbf": now, "exp": now + a.exp}, kid="fake-k8s"))
        else:
            if not a.aud:
                ap.error("--aud RESOURCE is required")
            print(access_token(a.aud, a.appid, a.tenant, a.exp))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--certs", required=True)
    ap.add_argument("--tenant", default="fake-tenant")
    ap.add_argument("--client-id", action="append", default=[])
    ap.add_argument("--subject")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    fakelib.ensure_ca(a.certs)
    tls = fakelib.issue_leaf(a.certs, "aad-tls", ["127.0.0.1", "localhost"])
    fakelib.serve(AAD, "aad", tls=tls, port=a.port,
                  state={"tenant": a.tenant, "client_ids": a.client_id, "subject": a.subject})


if __name__ == "__main__":
    main()
