#!/bin/sh
# encfs-skr against the fake Key Vault and Managed HSM (test/fakes/akv.py) with tokens from the fake
# MAA: key import (the upstream importkey job), release with access tokens from IMDS, workload
# identity (fake Entra ID), a file or a descriptor, and every refusal the vault can give.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err, rc and port
. "$ENCFS_SRC/test/lib.sh"

F=$ENCFS_SRC/test/fakes
for tool in encfs-skr encfs-unwrap encfs-attest; do
	[ -x "$ENCFS_BIN/$tool" ] || skip_all "$tool is not built"
done
[ -f "$F/maa.py" ] || skip_all "the fake MAA (test/fakes/maa.py) is not there"

# --- the services ------------------------------------------------------------------------------
C=$T/certs
"$PYTHON" "$F/fakelib.py" ca "$C" maa 127.0.0.1 localhost || bail "cannot make the test CA"
export ENCFS_CA_BUNDLE="$C/ca.pem"
CID=5e5e5e5e-0000-4000-8000-00000000c11d
start_service maa "$PYTHON" "$F/maa.py" --tls "$C/maa.pem" "$C/maa.key" --accept-fake-reports
MAA=127.0.0.1:$port
start_service akv "$PYTHON" "$F/akv.py" --certs "$C" --host myvault.vault.localhost \
	--allow-appid system-assigned --allow-appid "$CID" --allow-appid 00000000-0000-0000-0000-00000000c11d
VAULT=myvault.vault.localhost:$port
start_service hsm "$PYTHON" "$F/akv.py" --certs "$C" --host myhsm.managedhsm.localhost --mode mhsm
HSM=myhsm.managedhsm.localhost:$port
start_service imds "$PYTHON" "$F/imds.py" --client-id "$CID"
IMDS=127.0.0.1:$port
export ENCFS_IMDS_ENDPOINT="http://$IMDS"
start_service aad "$PYTHON" "$F/aad.py" --certs "$C" --tenant t-1 --client-id "$CID" \
	--subject system:serviceaccount:default:encfs
AAD=127.0.0.1:$port

# requests HOSTPORT FILE: what a fake received (IMDS is plain http, as the real one)
url() { if [ "$1" = "$IMDS" ]; then echo "http://$1"; else echo "https://$1"; fi; }
requests() { curl -sS --cacert "$C/ca.pem" "$(url "$1")/_requests" >"$2"; }
fault() { curl -sS --cacert "$C/ca.pem" -X POST -d "$2" "$(url "$1")/_fault"; }
# hits HOSTPORT PATH: how many requests for PATH the fake has had (a fault case's proof that the
# fault was hit and the request made again)
hits() {
	requests "$1" "$T/hits.json"
	"$PYTHON" -c 'import json, sys; print(sum(r["path"] == sys.argv[2] for r in json.load(open(sys.argv[1]))))' \
		"$T/hits.json" "$2"
}

# --- evidence and an MAA token -----------------------------------------------------------------
mkdir "$T/ctx"
printf 'package policy\n\napi_version := "0.10.0"\nframework_version := "0.2.3"\n' | base64 -w0 >"$T/ctx/security-policy-base64"
# the UVM endorsement (a COSE_Sign1) naming the launch measurement of the upstream sidecar's fake
# report, which encfs-attest --fake-report makes: the fake MAA then says azure-compliant-uvm
FAKE_MEASUREMENT=b579c7d6b89f3914659abe09a004a58a1e77846b65bbdac9e29bd8f2f31b31af445a5dd40f76f71ecdd73117f1d592a3
"$PYTHON" "$F/snp.py" endorsement --measurement "$FAKE_MEASUREMENT" | base64 -w0 >"$T/ctx/reference-info-base64"
export UVM_SECURITY_CONTEXT_DIR="$T/ctx"
HOSTDATA=$("$PYTHON" -c 'import base64, hashlib, sys
print(hashlib.sha256(base64.b64decode(open(sys.argv[1]).read())).hexdigest())' "$T/ctx/security-policy-base64")
mkdir -m 700 "$T/shm"
if ! encfs-unwrap keygen --private "$T/shm/wrap.pem" >"$T/jwks.json" 2>/dev/null ||
	! encfs-attest --fake-report --maa "$MAA" <"$T/jwks.json" >"$T/token" 2>"$T/attest.err"; then
	bail "no MAA token: $(cat "$T/attest.err")"
fi

# import configurations in the upstream importkeyconfig.json format
config() { # config FILE NAME KTY ENDPOINT [HOSTDATA [AUTHORITY]]
	cat >"$1" <<EOF
{
  "key": {
    "kid": "$2",
    "kty": "$3",
    "authority": {"endpoint": "${6:-$MAA}"},
    "akv": {"endpoint": "$4", "api_version": "api-version=7.4"}
  },
  "claims": [[
    {"claim": "x-ms-sevsnpvm-hostdata", "equals": "${5:-$HOSTDATA}"},
    {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
    {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"},
    {"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"}
  ]]
}
EOF
}

# --- import ------------------------------------------------------------------------------------
head -c 32 /dev/urandom >"$T/oct.bin"
config "$T/ik-oct.json" fskey oct-HSM "$VAULT"
run encfs-skr import -c "$T/ik-oct.json" --key-file "$T/oct.bin"
is "$rc" 0 "import oct-HSM from a key file: exit 0"
printf '%s\n' "$out" >"$T/import.out"
like "$(jget "$T/import.out" kid)" "https://$VAULT/keys/fskey/" "import prints the new key's kid"
is "$(jget "$T/import.out" release_policy)" \
	"{\"anyOf\": [{\"allOf\": [{\"claim\": \"x-ms-sevsnpvm-hostdata\", \"equals\": \"$HOSTDATA\"}, {\"claim\": \"x-ms-compliance-status\", \"equals\": \"azure-compliant-uvm\"}, {\"claim\": \"x-ms-sevsnpvm-is-debuggable\", \"equals\": \"false\"}, {\"claim\": \"x-ms-sevsnpvm-vmpl\", \"equals\": \"0\"}], \"authority\": \"https://$MAA\"}], \"version\": \"1.0.0\"}" \
	"the release policy is upstream's: version 1.0.0, anyOf authority https://<authority>, allOf the claims"
unlike "$out$err" "$(od -An -tx1 "$T/oct.bin" | tr -d ' \n')" "import prints no key bytes unless asked"
requests "$VAULT" "$T/req.json"
is "$("$PYTHON" -c 'import base64, json, sys
r = [x for x in json.load(open(sys.argv[1])) if x["method"] == "PUT"][-1]
b = json.loads(r["body"])
k = base64.urlsafe_b64decode(b["key"]["k"] + "==")
p = json.loads(base64.urlsafe_b64decode(b["release_policy"]["data"] + "=="))
print(r["path"], r["query"]["api-version"], b["key"]["kty"], b["key"]["key_size"], b["hsm"],
      b["attributes"]["exportable"], b["release_policy"]["contentType"],
      k == open(sys.argv[2], "rb").read(), p["version"], r["headers"]["Authorization"].split()[0])' "$T/req.json" "$T/oct.bin")" \
	"/keys/fskey 7.4 oct-HSM 256 True True application/json; charset=utf-8 True 1.0.0 Bearer" \
	"the PUT carries the key (k), hsm, exportable and the base64url policy, with a bearer token"

config "$T/ik-hsm.json" fskey oct-HSM "$HSM"
run encfs-skr import -c "$T/ik-hsm.json" --key-file "$T/oct.bin"
is "$rc" 0 "import into a Managed HSM: exit 0"
requests "$IMDS" "$T/imds.json"
is "$("$PYTHON" -c 'import json, sys
print(" ".join(sorted({r["query"].get("resource", "") for r in json.load(open(sys.argv[1]))})))' "$T/imds.json")" \
	"https://managedhsm.azure.net https://vault.azure.net" \
	"IMDS tokens asked for the resource by endpoint: vault.azure.net and managedhsm.azure.net"

"$PYTHON" "$F/aad.py" access-token --aud https://vault.azure.net --appid "$CID" >"$T/cfg-bearer"
"$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1]))
c["key"]["kid"] = "cfgtoken"
c["key"]["akv"]["bearer_token"] = open(sys.argv[2]).read().strip()
json.dump(c, open(sys.argv[3], "w"))' "$T/ik-oct.json" "$T/cfg-bearer" "$T/ik-token.json"
requests "$IMDS" "$T/imds.json"
n_imds=$("$PYTHON" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$T/imds.json")
run encfs-skr import -c "$T/ik-token.json" --key-file "$T/oct.bin"
is "$rc" 0 "import with akv.bearer_token in the configuration"
requests "$IMDS" "$T/imds.json"
requests "$VAULT" "$T/req.json"
is "$("$PYTHON" -c 'import json, sys
r = [x for x in json.load(open(sys.argv[1])) if x["method"] == "PUT"][-1]
print(r["path"], r["headers"]["Authorization"] == "Bearer " + open(sys.argv[2]).read().strip(),
      len(json.load(open(sys.argv[3]))))' "$T/req.json" "$T/cfg-bearer" "$T/imds.json")" \
	"/keys/cfgtoken True $((n_imds + 1))" "the configuration's token is used, and IMDS is not asked"
unlike "$err" "$(cut -d. -f3 "$T/cfg-bearer")" "the token is not in the messages"

# --- release -----------------------------------------------------------------------------------
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc" 0 "release from the vault with the managed identity: exit 0"
printf '%s\n' "$out" >"$T/rel.jws"
is "$("$PYTHON" -c 'import base64, json, sys
h, p, s = open(sys.argv[1]).read().strip().split(".")
d = lambda x: json.loads(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
print(d(h)["alg"], len(d(h)["x5c"]), d(p)["request"]["enc"], d(p)["response"]["key"]["key"]["kty"])' "$T/rel.jws")" \
	"RS256 2 CKM_RSA_AES_KEY_WRAP oct-HSM" "stdout is the vault's JWS (RS256, x5c chain, CKM_RSA_AES_KEY_WRAP by default)"
run_to "$T/key" encfs-unwrap --private "$T/shm/wrap.pem" --akv "$VAULT" <"$T/rel.jws"
is "$(od -An -tx1 "$T/key" | tr -d ' \n')" "$(od -An -tx1 "$T/oct.bin" | tr -d ' \n')" \
	"and it unwraps to the imported key"

run encfs-skr --akv "$HSM" --kid fskey --enc RSA_AES_KEY_WRAP_256 <"$T/token"
is "$rc" 0 "release from the Managed HSM with --enc RSA_AES_KEY_WRAP_256: exit 0"
printf '%s\n' "$out" >"$T/rel-hsm.jws"
run_to "$T/key" encfs-unwrap --private "$T/shm/wrap.pem" --akv "$HSM" <"$T/rel-hsm.jws"
is "$(od -An -tx1 "$T/key" | tr -d ' \n')" "$(od -An -tx1 "$T/oct.bin" | tr -d ' \n')" \
	"the Managed HSM's answer unwraps to the same key"

kid=$(jget "$T/import.out" kid)
run encfs-skr --kid "$kid" <"$T/token"
is "$rc" 0 "--kid as a full key identifier URL (with version) gives the endpoint"
run encfs-skr --akv "$VAULT" --kid "fskey/${kid##*/}" <"$T/token"
is "$rc" 0 "--kid NAME/VERSION releases that version"
"$PYTHON" -c 'import json, sys; print(json.dumps({"token": open(sys.argv[1]).read().strip()}))' "$T/token" >"$T/token.json"
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token.json"
is "$rc" 0 "MAA's own {\"token\": ...} answer is accepted on stdin"

# --- access tokens -----------------------------------------------------------------------------
run encfs-skr --akv "$VAULT" --kid fskey --client-id "$CID" <"$T/token"
is "$rc" 0 "--client-id picks the user-assigned identity"
requests "$IMDS" "$T/imds.json"
is "$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[-1]["query"].get("client_id"))' "$T/imds.json")" \
	"$CID" "IMDS was asked for that client_id"
run encfs-skr --akv "$VAULT" --kid fskey --client-id 99999999-0000-4000-8000-000000000000 <"$T/token"
is "$rc" 5 "an identity the VM does not have: exit 5"
like "$err" "managed identity (IMDS): HTTP 400: Identity not found" "and IMDS's words are shown"

IMDS_TOKEN=/metadata/identity/oauth2/token
n0=$(hits "$IMDS" $IMDS_TOKEN)
fault "$IMDS" '{"path": "/metadata/identity/oauth2/token", "count": 2, "status": 500}'
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc:$(($(hits "$IMDS" $IMDS_TOKEN) - n0))" 0:3 "IMDS failing twice with 500 is retried: three token requests"
n0=$(hits "$IMDS" $IMDS_TOKEN)
fault "$IMDS" '{"path": "/metadata/identity/oauth2/token", "count": 2, "status": 410}'
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc:$(($(hits "$IMDS" $IMDS_TOKEN) - n0))" 0:3 "IMDS answering 410 (it is being updated) twice is retried: three token requests"
n0=$(hits "$IMDS" $IMDS_TOKEN)
fault "$IMDS" '{"path": "/metadata/identity/oauth2/token", "count": 1, "status": 404}'
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc:$(($(hits "$IMDS" $IMDS_TOKEN) - n0))" 0:2 "IMDS answering 404 (its endpoint is updating) is retried: two token requests"

"$PYTHON" "$F/aad.py" access-token --aud https://vault.azure.net --appid "$CID" >"$T/bearer"
requests "$IMDS" "$T/imds.json"
n_imds=$("$PYTHON" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$T/imds.json")
run encfs-skr --akv "$VAULT" --kid fskey --bearer-file "$T/bearer" <"$T/token"
is "$rc" 0 "--bearer-file: the given access token is used"
run encfs-skr --akv "$VAULT" --kid fskey --bearer-fd 3 <"$T/token" 3<"$T/bearer"
is "$rc" 0 "--bearer-fd 3 (how encfs.sh passes akv.bearer_token, never through argv)"
requests "$IMDS" "$T/imds.json"
is "$("$PYTHON" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$T/imds.json")" \
	"$((n_imds + 1))" "and IMDS was not asked (one more request: this one)"
requests "$VAULT" "$T/req.json"
is "$("$PYTHON" -c 'import json, sys
print(json.load(open(sys.argv[1]))[-1]["headers"]["Authorization"] == "Bearer " + open(sys.argv[2]).read().strip())' "$T/req.json" "$T/bearer")" \
	True "the vault got exactly that token"

"$PYTHON" "$F/aad.py" federated-token --sub system:serviceaccount:default:encfs >"$T/federated"
run env AZURE_FEDERATED_TOKEN_FILE="$T/federated" AZURE_CLIENT_ID="$CID" AZURE_TENANT_ID=t-1 \
	AZURE_AUTHORITY_HOST="https://$AAD/" encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc" 0 "workload identity: the federated token is exchanged at the authority host"
requests "$AAD" "$T/aad.json"
is "$("$PYTHON" -c 'import json, sys
from urllib.parse import parse_qs
r = json.load(open(sys.argv[1]))[-1]
f = {k: v[0] for k, v in parse_qs(r["body"]).items()}
print(r["path"], f["client_id"], f["scope"], f["client_assertion"] == open(sys.argv[2]).read().strip())' "$T/aad.json" "$T/federated")" \
	"/t-1/oauth2/v2.0/token $CID https://vault.azure.net/.default True" \
	"the token request: tenant, client id, vault scope and the federated assertion"
"$PYTHON" "$F/aad.py" federated-token --sub system:serviceaccount:other:pod >"$T/federated2"
run env AZURE_FEDERATED_TOKEN_FILE="$T/federated2" AZURE_CLIENT_ID="$CID" AZURE_TENANT_ID=t-1 \
	AZURE_AUTHORITY_HOST="https://$AAD/" encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc" 5 "workload identity with a subject that has no federated credential: exit 5"
like "$err" "AADSTS700213" "and Entra ID's error code is shown"
n0=$(hits "$AAD" /t-1/oauth2/v2.0/token)
fault "$AAD" '{"path": "/t-1/oauth2/v2.0/token", "count": 2, "status": 503}'
run env AZURE_FEDERATED_TOKEN_FILE="$T/federated" AZURE_CLIENT_ID="$CID" AZURE_TENANT_ID=t-1 \
	AZURE_AUTHORITY_HOST="https://$AAD/" encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc:$(($(hits "$AAD" /t-1/oauth2/v2.0/token) - n0))" 0:3 "the token service failing twice with 503 is retried: three token requests"

# --- refusals ----------------------------------------------------------------------------------
"$PYTHON" "$F/aad.py" access-token --aud https://storage.azure.com --appid "$CID" >"$T/bearer-aud"
run encfs-skr --akv "$VAULT" --kid fskey --bearer-file "$T/bearer-aud" <"$T/token"
is "$rc" 5 "a token for another resource: exit 5"
like "$err" "HTTP 401: Unauthorized: AKV10022: Invalid audience" "401 shows the vault's code and message"
like "$err" "check the identity" "and hints at the identity and its token"
is "$out" "" "nothing on stdout"
"$PYTHON" "$F/aad.py" access-token --aud https://vault.azure.net --appid "$CID" --exp -600 >"$T/bearer-old"
run encfs-skr --akv "$VAULT" --kid fskey --bearer-file "$T/bearer-old" <"$T/token"
like "$rc:$err" "5:encfs-skr: releasing key fskey from myvault.vault.localhost: HTTP 401: Unauthorized: AKV10021" \
	"an expired access token: 401, exit 5, one line"
"$PYTHON" "$F/aad.py" access-token --aud https://vault.azure.net --appid someone-else >"$T/bearer-role"
run encfs-skr --akv "$VAULT" --kid fskey --bearer-file "$T/bearer-role" <"$T/token"
is "$rc" 5 "an identity without the release role: exit 5"
like "$err" "HTTP 403: Forbidden: Caller is not authorized" "403 shows the vault's words"
like "$err" "Key Vault Crypto Service Release User" "and names the role to check"

config "$T/ik-bad.json" wronghost oct-HSM "$VAULT" "0000000000000000000000000000000000000000000000000000000000000000"
run encfs-skr import -c "$T/ik-bad.json"
[ "$rc" = 0 ] || bail "import of wronghost failed: $err"
like "$err" "warning: a fresh oct-HSM key was imported and kept nowhere else" \
	"a fresh oct-HSM key neither written (--keyfile-out) nor printed (--print-key): a warning"
run encfs-skr --akv "$VAULT" --kid wronghost <"$T/token"
is "$rc" 5 "a release policy whose hostdata is not the token's: exit 5"
like "$err" "HTTP 403: Forbidden: " "403 with the vault's code and message"
like "$err" "the policy wants x-ms-sevsnpvm-hostdata=0000000000000000000000000000000000000000000000000000000000000000 (the token has this container group's security policy digest $HOSTDATA)" \
	"the hint compares the stored policy's hostdata with the token's"
is "$(printf '%s\n' "$err" | wc -l)" 1 "one line"
is "$out" "" "no release response"

config "$T/ik-auth.json" otherauthority oct-HSM "$VAULT" "$HOSTDATA" 127.0.0.1:1
encfs-skr import -c "$T/ik-auth.json" >/dev/null 2>&1 || bail "import of otherauthority failed"
run encfs-skr --akv "$VAULT" --kid otherauthority <"$T/token"
like "$rc:$err" "5:encfs-skr: releasing key otherauthority from myvault.vault.localhost: HTTP 403: Forbidden: Target environment attestation statement cannot be verified: its issuer https://$MAA" \
	"a token from another authority than the policy's: 403, exit 5"

run encfs-skr --akv "$VAULT" --kid nosuchkey <"$T/token"
is "$rc" 3 "an unknown key: exit 3"
like "$err" "HTTP 404: KeyNotFound: A key with (name/id) nosuchkey was not found" "404 shows the vault's words"
like "$err" "check the key name and version: nosuchkey in myvault.vault.localhost" "and hints at the kid"

"$PYTHON" -c 'import sys
h, p, s = open(sys.argv[1]).read().strip().split(".")
print(h + "." + p + "." + ("A" if s[0] != "A" else "B") + s[1:])' "$T/token" >"$T/token-forged"
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token-forged"
is "$rc" 3 "a token whose signature MAA did not make: exit 3"
like "$err" "HTTP 400: BadParameter: Target environment attestation statement cannot be verified: the signature does not verify" \
	"400 shows the vault's words"
like "$err" "that the token is a valid, unexpired MAA token" "and hints at the token"
run encfs-skr --akv "$VAULT" --kid fskey --api-version 7.0 <"$T/token"
like "$rc:$err" "3:encfs-skr: releasing key fskey from myvault.vault.localhost: HTTP 400: BadParameter: The specified version (7.0)" \
	"an API version the vault does not know: 400, exit 3"

RELEASE=/keys/fskey/release
n0=$(hits "$VAULT" $RELEASE)
fault "$VAULT" '{"path": "/keys/fskey/release", "count": 2, "status": 503}'
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc:$(($(hits "$VAULT" $RELEASE) - n0))" 0:3 "the vault failing twice with 503 is retried: three release requests"
n0=$(hits "$VAULT" $RELEASE)
fault "$VAULT" '{"path": "/keys/fskey/release", "count": 1, "status": 429, "retry_after": 2}'
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc:$(($(hits "$VAULT" $RELEASE) - n0))" 0:2 "429 with Retry-After is waited out: two release requests"
# measured at the fake between the two arrivals (the answer leaves after the first): at least the
# 2 s Retry-After says, less 2 ms for the tool's millisecond clock; without it, 125 to 250 ms
gap=$("$PYTHON" -c 'import json, sys
r = [x for x in json.load(open(sys.argv[1])) if x["path"] == sys.argv[2]][-2:]
print(round((r[1]["time"] - r[0]["time"]) * 1000))' "$T/hits.json" $RELEASE)
ok "$([ "$gap" -ge 1998 ] && echo 0 || echo 1)" "  the second request came $gap ms after the first, no sooner than Retry-After: 2"
n0=$(hits "$VAULT" $RELEASE)
fault "$VAULT" '{"path": "/keys/fskey/release", "count": 1, "reset": true}'
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token"
is "$rc:$(($(hits "$VAULT" $RELEASE) - n0))" 0:2 "a connection reset is retried: two release requests"

# the fake itself: no bearer token, and release policies the grammar does not allow
is "$(curl -sS --cacert "$C/ca.pem" -o "$T/noauth.json" -w '%{http_code}' -X POST -d '{"target":"x"}' \
	"https://$VAULT/keys/fskey/release?api-version=7.4"):$(jget "$T/noauth.json" error code)" "401:Unauthorized" \
	"the fake vault: no bearer token, 401"
for policy in '{"anyOf":[{"authority":"https://a","allOf":[{"claim":"c","equals":"v"}]}]}' \
	'{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"c","startsWith":"v"}]}]}' \
	'{"version":"1.0.0","anyOf":[]}'; do
	"$PYTHON" -c 'import base64, json, sys
print(json.dumps({"key": {"kty": "oct-HSM", "k": base64.urlsafe_b64encode(bytes(32)).decode()},
                  "attributes": {"exportable": True},
                  "release_policy": {"data": base64.urlsafe_b64encode(sys.argv[1].encode()).decode()}}))' \
		"$policy" >"$T/put.json"
	is "$(curl -sS --cacert "$C/ca.pem" -o "$T/put.out" -w '%{http_code}' -X PUT --data-binary "@$T/put.json" \
		-H "Authorization: Bearer $(cat "$T/bearer")" "https://$VAULT/keys/badpolicy?api-version=7.4"):$(jget "$T/put.out" error code)" \
		"400:BadParameter" "the fake vault refuses the release policy $policy"
done

# --- bad input and command lines ---------------------------------------------------------------
run encfs-skr --akv "$VAULT" --kid fskey </dev/null
is "$rc:$err" "3:encfs-skr: reading the attestation token: nothing on standard input: did the previous step fail? (pipe encfs-attest's output in)" "empty stdin: exit 3, naming the likely cause"
printf 'hello world\n' >"$T/garbage"
run encfs-skr --akv "$VAULT" --kid fskey <"$T/garbage"
like "$rc:$err" "3:encfs-skr: reading the attestation token: standard input is not a JWT" "not a token: exit 3"
run encfs-skr --akv "$VAULT" <"$T/token"
is "$rc:$err" "2:encfs-skr: usage: --kid NAME[/VERSION] is required (see --help)" "no --kid: exit 2"
run encfs-skr --akv "$VAULT" --kid fskey --enc AES <"$T/token"
like "$rc:$err" "2:encfs-skr: usage: --enc AES is not one of" "an unknown --enc: exit 2"
run encfs-skr --akv "$VAULT" --kid fskey --bearer-fd 0 <"$T/token"
like "$rc:$err" "2:encfs-skr: usage: standard input is the attestation token" "--bearer-fd 0: exit 2"
run encfs-skr --akv http://"$VAULT" --kid fskey <"$T/token"
like "$rc:$err" "3:encfs-skr: vault endpoint http://$VAULT: only https is allowed" "plain http: exit 3"
run encfs-skr --akv "$VAULT" --kid 'a b' <"$T/token"
like "$rc:$err" "3:encfs-skr: key a b: a key name is 1-127 letters, digits and dashes" "a bad key name: exit 3"
printf 'two words\n' >"$T/bearer-bad"
run encfs-skr --akv "$VAULT" --kid fskey --bearer-file "$T/bearer-bad" <"$T/token"
like "$rc:$err" "3:encfs-skr: access token from $T/bearer-bad: not a token" "a token with spaces never reaches a header"

# --- import: RSA-HSM, key sources, refusals ----------------------------------------------------
hkdf() { # hkdf PEM SALT_HEX LABEL: the upstream derivation, computed here independently
	"$PYTHON" -c 'import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
k = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
d = k.private_numbers().d
ikm = d.to_bytes((d.bit_length() + 7) // 8, "big")
print(HKDF(hashes.SHA256(), 32, bytes.fromhex(sys.argv[2]), sys.argv[3].encode()).derive(ikm).hex())' "$@"
}
config "$T/ik-rsa.json" rsakey RSA-HSM "$VAULT"
(cd "$T" && umask 022 && encfs-skr import -c ik-rsa.json --keyfile-out rsa.key >rsa.out 2>rsa.err)
is "$?" 0 "import a fresh RSA-HSM key: exit 0"
is "$(stat -c %a "$T/private_key.pem")" 600 "the fresh key is kept in private_key.pem, mode 0600"
is "$(stat -c %a "$T/rsa.key")" 600 "--keyfile-out is written 0600"
salt=$(jget "$T/rsa.out" key_derivation salt)
is "${#salt}" 64 "a 32-byte salt was made, as the config had none"
is "$(jget "$T/rsa.out" key_derivation label)" "Symmetric Encryption Key" "the label is upstream's default"
like "$(cat "$T/rsa.err")" "put \"key_derivation\": {\"salt\": \"$salt\"" "a warning says to put key_derivation into the sidecar config"
is "$(od -An -tx1 "$T/rsa.key" | tr -d ' \n')" "$(hkdf "$T/private_key.pem" "$salt" "Symmetric Encryption Key")" \
	"the key file is HKDF-SHA256(D, salt, label), computed independently"
requests "$VAULT" "$T/req.json"
is "$("$PYTHON" -c 'import base64, json, sys
from cryptography.hazmat.primitives import serialization
b = json.loads([x for x in json.load(open(sys.argv[1])) if x["method"] == "PUT"][-1]["body"])
k = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None).private_numbers()
i = lambda s: int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")
j = b["key"]
print(j["kty"], b["hsm"], i(j["n"]) == k.public_numbers.n, i(j["d"]) == k.d, i(j["p"]) * i(j["q"]) == i(j["n"]),
      i(j["qi"]) == k.iqmp)' "$T/req.json" "$T/private_key.pem")" \
	"RSA True True True True True" "the PUT carries the RSA key as a JWK (n, e, d, p, q, dp, dq, qi) with hsm"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/mine.pem" 2>/dev/null
cat >"$T/ik-rsa2.json" <<EOF
{"key": {"kid": "rsakey2", "kty": "RSA-HSM", "key_ops": ["encrypt", "decrypt"], "authority": {"endpoint": "$MAA"},
         "akv": {"endpoint": "$VAULT"}},
 "key_derivation": {"salt": "00112233445566778899aabbccddeeff", "label": "my label"},
 "claims": [[{"claim": "x-ms-sevsnpvm-hostdata", "equals": "$HOSTDATA"}]]}
EOF
run encfs-skr import -c "$T/ik-rsa2.json" --rsa-pem "$T/mine.pem" --print-key
is "$rc" 0 "import an RSA-HSM key from a PEM file with the config's salt and label"
printf '%s\n' "$out" >"$T/rsa2.out"
is "$(jget "$T/rsa2.out" key_derivation)" '{"label": "my label", "salt": "00112233445566778899aabbccddeeff"}' \
	"key_derivation echoes the config's salt and label"
is "$(jget "$T/rsa2.out" key)" "$(hkdf "$T/mine.pem" 00112233445566778899aabbccddeeff "my label")" \
	"--print-key prints the derived key (asked for explicitly)"

hex=$(od -An -tx1 "$T/oct.bin" | tr -d ' \n')
config "$T/ik-hex.json" hexkey oct-HSM "$VAULT"
run encfs-skr import -c "$T/ik-hex.json" --key-hex "$hex" --print-key
is "$rc:$(printf '%s\n' "$out" >"$T/hex.out" && jget "$T/hex.out" key)" "0:$hex" "--key-hex HEX imports that key"
like "$err" "--key-hex on the command line is visible to other users" "with a warning about argv"
run sh -c 'printf "%s\n" "$1" | encfs-skr import -c "$2" --key-hex - --print-key' sh "$hex" "$T/ik-hex.json"
is "$rc:$(printf '%s\n' "$out" >"$T/hex.out" && jget "$T/hex.out" key)" "0:$hex" "--key-hex - reads the hex from stdin"
run encfs-skr import -c "$T/ik-hex.json" --keyfile-out "$T/fresh.key" --print-key
printf '%s\n' "$out" >"$T/fresh.out"
is "$rc:$(od -An -tx1 "$T/fresh.key" | tr -d ' \n')" "0:$(jget "$T/fresh.out" key)" \
	"no key given: fresh random bytes, in the key file"
run encfs-skr import -c "$T/ik-hex.json" --print-key
printf '%s\n' "$out" >"$T/fresh2.out"
is "$rc:$("$PYTHON" -c 'import sys
a, b = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
print(len(a), len(b), a != b, len(set(a)) > 1, len(set(b)) > 1)' "$(jget "$T/fresh.out" key)" "$(jget "$T/fresh2.out" key)")" \
	"0:32 32 True True True" "two fresh keys: 32 bytes each, different, neither one byte repeated"

requests "$VAULT" "$T/req.json"
n_put=$("$PYTHON" -c 'import json, sys; print(sum(r["method"] == "PUT" for r in json.load(open(sys.argv[1]))))' "$T/req.json")
run encfs-skr import -c "$T/ik-hex.json" --keyfile-out "$T/fresh.key"
is "$rc:$err" "2:encfs-skr: writing $T/fresh.key: it exists (refusing to overwrite a key file: remove it or choose another name)" "an existing --keyfile-out is refused: exit 2, as every existing output file"
requests "$VAULT" "$T/req.json"
is "$("$PYTHON" -c 'import json, sys; print(sum(r["method"] == "PUT" for r in json.load(open(sys.argv[1]))))' "$T/req.json")" \
	"$n_put" "before anything is imported"
run encfs-skr import -c "$T/ik-rsa.json" --key-file "$T/oct.bin"
like "$rc:$err" "2:encfs-skr: usage: --key-hex and --key-file are for oct-HSM keys" "--key-file with RSA-HSM: exit 2"
run encfs-skr import -c "$T/ik-hex.json" --key-file "$T/rsa.out"
like "$rc:$err" "3:encfs-skr: key: $T/rsa.out holds" "a key file that is not 32 raw bytes: exit 3"
sed 's/"equals": "false"/"equals": false/' "$T/ik-hex.json" >"$T/ik-bool.json"
run encfs-skr import -c "$T/ik-bool.json"
like "$rc:$err" "3:encfs-skr: import configuration: claims[0][2].equals is a boolean, not a string (write it as a string" \
	"a claim value that is not a string is named (upstream's format has strings)"
run encfs-skr import -c "$T/ik-hex.json" --akv "$VAULT"
like "$rc:$err" "2:encfs-skr: usage: import reads the vault" "--akv with import: exit 2"
if [ -f "$SHARED/testdata/importkeyconfig.upstream.json" ]; then
	run encfs-skr import -c "$SHARED/testdata/importkeyconfig.upstream.json"
	like "$rc:$err" "3:encfs-skr: import configuration: key.kid still holds the template placeholder <key-vault-key-identifier>" \
		"upstream's example config parses, and its placeholders are named"
else
	skip "../shared/testdata/importkeyconfig.upstream.json is absent"
fi
run encfs-skr import -c "$T/nonexistent.json"
like "$rc:$err" "3:encfs-skr: reading $T/nonexistent.json: No such file" "a missing config: exit 3"

done_testing
