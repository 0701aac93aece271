#!/bin/sh
# The secure key release chain on the host:
#   encfs-unwrap keygen | encfs-attest --fake-report | encfs-skr | encfs-unwrap
# against the fake MAA and the fake Key Vault / Managed HSM, for oct-HSM and RSA-HSM keys, each
# wrapping algorithm and both endpoint kinds; then every tampered response, refused with its own
# message and no key output; then what the logs of a full chain at trace level must never hold.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err, rc and port
. "$ENCFS_SRC/test/lib.sh"

F=$ENCFS_SRC/test/fakes
for tool in encfs-skr encfs-unwrap encfs-attest; do
	[ -x "$ENCFS_BIN/$tool" ] || skip_all "$tool is not built"
done
[ -f "$F/maa.py" ] || skip_all "the fake MAA (test/fakes/maa.py) is not there"

C=$T/certs
"$PYTHON" "$F/fakelib.py" ca "$C" maa 127.0.0.1 localhost || bail "cannot make the test CA"
export ENCFS_CA_BUNDLE="$C/ca.pem"
start_service maa "$PYTHON" "$F/maa.py" --tls "$C/maa.pem" "$C/maa.key" --accept-fake-reports
MAA=127.0.0.1:$port
start_service akv "$PYTHON" "$F/akv.py" --certs "$C" --host myvault.vault.localhost
VAULT=myvault.vault.localhost:$port
start_service hsm "$PYTHON" "$F/akv.py" --certs "$C" --host myhsm.managedhsm.localhost --mode mhsm
HSM=myhsm.managedhsm.localhost:$port
start_service imds "$PYTHON" "$F/imds.py"
export ENCFS_IMDS_ENDPOINT="http://127.0.0.1:$port"

mkdir "$T/ctx"
printf 'package policy\n\napi_version := "0.10.0"\n' | base64 -w0 >"$T/ctx/security-policy-base64"
# the UVM endorsement (a COSE_Sign1) naming the launch measurement of the upstream sidecar's fake
# report, which encfs-attest --fake-report makes: the fake MAA then says azure-compliant-uvm
FAKE_MEASUREMENT=b579c7d6b89f3914659abe09a004a58a1e77846b65bbdac9e29bd8f2f31b31af445a5dd40f76f71ecdd73117f1d592a3
"$PYTHON" "$F/snp.py" endorsement --measurement "$FAKE_MEASUREMENT" | base64 -w0 >"$T/ctx/reference-info-base64"
export UVM_SECURITY_CONTEXT_DIR="$T/ctx"
HOSTDATA=$("$PYTHON" -c 'import base64, hashlib, sys
print(hashlib.sha256(base64.b64decode(open(sys.argv[1]).read())).hexdigest())' "$T/ctx/security-policy-base64")
mkdir -m 700 "$T/shm"

hexof() { od -An -tx1 "$1" | tr -d ' \n'; }
hkdf() { # hkdf PEM SALT_HEX LABEL: the upstream sidecar's derivation, computed independently
	"$PYTHON" -c 'import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
k = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
d = k.private_numbers().d
ikm = d.to_bytes((d.bit_length() + 7) // 8, "big")
print(HKDF(hashes.SHA256(), 32, bytes.fromhex(sys.argv[2]) or None, sys.argv[3].encode()).derive(ikm).hex())' "$@"
}
config() { # config FILE NAME KTY ENDPOINT [SALT LABEL]
	cat >"$1" <<EOF
{"key": {"kid": "$2", "kty": "$3", "authority": {"endpoint": "$MAA"}, "akv": {"endpoint": "$4"}},
 "key_derivation": {"salt": "${5:-}", "label": "${6:-}"},
 "claims": [[{"claim": "x-ms-sevsnpvm-hostdata", "equals": "$HOSTDATA"},
             {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"},
             {"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"}]]}
EOF
}
n=0
# chain ENDPOINT KID [SKR-OPTIONS...]: the four tools in one pipeline, with --salt "$salt" and
# --label "$label" for encfs-unwrap when set; the key in $T/key, stderr in $T/chain.err, the failed
# stages' names and exit codes in $chain_rc (empty when all succeeded)
chain() {
	_ep=$1 _kid=$2
	shift 2
	n=$((n + 1))
	rm -f "$T/rc.$n"
	{
		{ encfs-unwrap keygen --private "$T/shm/w$n.pem" || echo "keygen:$?" >>"$T/rc.$n"; } |
			{ encfs-attest --fake-report --maa "$MAA" || echo "attest:$?" >>"$T/rc.$n"; } |
			{ encfs-skr --akv "$_ep" --kid "$_kid" "$@" || echo "skr:$?" >>"$T/rc.$n"; } |
			tee "$T/release.jws" |
			{ encfs-unwrap --private "$T/shm/w$n.pem" --akv "$_ep" --kid "$_kid" ${salt:+--salt "$salt"} \
				${label:+--label "$label"} >"$T/key" || echo "unwrap:$?" >>"$T/rc.$n"; }
	} 2>"$T/chain.err"
	chain_rc=$(cat "$T/rc.$n" 2>/dev/null)
	rm -f "$T/shm/w$n.pem"
}

# --- keygen ------------------------------------------------------------------------------------
run encfs-unwrap keygen --private "$T/shm/k.pem"
is "$rc" 0 "keygen: exit 0"
printf '%s\n' "$out" >"$T/k.jwks"
is "$(stat -c %a "$T/shm/k.pem")" 600 "the private key file is mode 0600"
is "$("$PYTHON" -c 'import base64, hashlib, json, sys
from cryptography.hazmat.primitives import serialization
j = json.load(open(sys.argv[1]))
k = j["keys"][0]
pub = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None).public_key().public_numbers()
n = int.from_bytes(base64.urlsafe_b64decode(k["n"] + "=="), "big")
tp = base64.urlsafe_b64encode(hashlib.sha256(json.dumps({"e": k["e"], "kty": "RSA", "n": k["n"]},
     separators=(",", ":"), sort_keys=True).encode()).digest()).rstrip(b"=").decode()
print(list(j), sorted(k), k["kty"], k["e"], n == pub.n, pub.n.bit_length(), k["kid"] == tp, k["key_ops"])' \
	"$T/k.jwks" "$T/shm/k.pem")" \
	"['keys'] ['e', 'key_ops', 'kid', 'kty', 'n'] RSA AQAB True 2048 True ['encrypt']" \
	"stdout: a JWK set of the RSA-2048 public key, kid = RFC 7638 thumbprint, key_ops [encrypt]"
like "$(head -1 "$T/shm/k.pem")" "-----BEGIN PRIVATE KEY-----" "the private half is PKCS#8 PEM"
run encfs-unwrap keygen --private "$T/shm/k.pem"
is "$rc:$err" "2:encfs-unwrap: generating the wrapping key: writing $T/shm/k.pem: it exists (refusing to overwrite a key file: remove it or choose another name)" \
	"an existing private key file is refused: exit 2, as every existing output file"
is "$out" "" "and no JWK set is printed"
ln -s "$T/elsewhere" "$T/shm/link.pem"
run encfs-unwrap keygen --private "$T/shm/link.pem"
is "$rc:$([ -e "$T/elsewhere" ] && echo followed)" "2:" "a symbolic link is not followed"
run encfs-unwrap keygen --private "$T/k3.pem"
like "$err" "is not on a tmpfs" "a private key file off tmpfs gets a warning"
run encfs-unwrap keygen --private "$T/shm/k2.pem" --salt 00
is "$rc:$err" "2:encfs-unwrap: usage: keygen takes only --private and -v (see --help)" "keygen with unwrap options: exit 2"

# --- the chain: each key type, algorithm and endpoint kind --------------------------------------
# a NUL first and a newline last: key bytes must pass through every pipe and file untouched
{ printf '\000'; head -c 30 /dev/urandom; printf '\n'; } >"$T/oct.bin"
[ "$(wc -c <"$T/oct.bin")" -eq 32 ] || bail "cannot make the test key"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/rsa.pem" 2>/dev/null
SALT=3fa2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2
LABEL="encfs volume 1"
for ep in vault hsm; do
	if [ $ep = vault ]; then E=$VAULT; else E=$HSM; fi
	config "$T/ik-oct-$ep.json" octkey oct-HSM "$E"
	config "$T/ik-rsa-$ep.json" rsakey RSA-HSM "$E" "$SALT" "$LABEL"
	if ! encfs-skr import -c "$T/ik-oct-$ep.json" --key-file "$T/oct.bin" >/dev/null 2>&1 ||
		! encfs-skr import -c "$T/ik-rsa-$ep.json" --rsa-pem "$T/rsa.pem" >/dev/null 2>&1; then
		bail "import into the $ep failed"
	fi
done
WANT_OCT=$(hexof "$T/oct.bin")
WANT_RSA=$(hkdf "$T/rsa.pem" "$SALT" "$LABEL")
for ep in vault hsm; do
	if [ $ep = vault ]; then E=$VAULT; else E=$HSM; fi
	for enc in CKM_RSA_AES_KEY_WRAP RSA_AES_KEY_WRAP_256 RSA_AES_KEY_WRAP_384; do
		salt="" label=""
		chain "$E" octkey --enc $enc
		is "${chain_rc:-ok}:$(hexof "$T/key")" "ok:$WANT_OCT" "$ep, oct-HSM, $enc: the imported key comes out"
		salt=$SALT label=$LABEL
		chain "$E" rsakey --enc $enc
		is "${chain_rc:-ok}:$(hexof "$T/key")" "ok:$WANT_RSA" \
			"$ep, RSA-HSM, $enc: HKDF-SHA256(D, salt, label) comes out, as computed independently"
	done
done
salt="" label=""
chain "$VAULT" octkey
is "${chain_rc:-ok}:$(hexof "$T/key")" "ok:$WANT_OCT" "no --enc: the vault's default (CKM_RSA_AES_KEY_WRAP) works"

# RSA-HSM without salt and label: upstream's defaults (empty salt, "Symmetric Encryption Key")
config "$T/ik-rsa-plain.json" rsaplain RSA-HSM "$VAULT"
encfs-skr import -c "$T/ik-rsa-plain.json" --rsa-pem "$T/rsa.pem" >/dev/null 2>&1 || bail "import rsaplain"
salt="" label=""
chain "$VAULT" rsaplain
is "${chain_rc:-ok}:$(hexof "$T/key")" "ok:$(hkdf "$T/rsa.pem" "" "Symmetric Encryption Key")" \
	"RSA-HSM with no salt and no label: HKDF with an empty salt and the default label"
is "$(grep '^encfs-unwrap.*salt' "$T/chain.err")" "encfs-unwrap: warning: the RSA-HSM key was derived without a salt (no --salt, that is no key_derivation.salt in the configuration): a key imported with a salt gives another key this way" \
	"... said at the default level: derived without a salt"
salt=01 label=""
chain "$VAULT" rsaplain
is "${chain_rc:-ok}:$(hexof "$T/key")" "ok:$(hkdf "$T/rsa.pem" 01 "Symmetric Encryption Key")" \
	"another salt (01) gives HKDF with that salt, as computed independently"
unlike "$(hexof "$T/key")" "$(hkdf "$T/rsa.pem" "" "Symmetric Encryption Key")" "  another key than with no salt"
unlike "$(cat "$T/chain.err")" "without a salt" "... and with a salt, no word about it"

# --- one release response to tamper with ------------------------------------------------------
stage keygen encfs-unwrap keygen --private "$T/shm/t.pem" 2>/dev/null |
	encfs-attest --fake-report --maa "$MAA" 2>/dev/null >"$T/token" || bail "no token"
[ "$(stage_rc keygen)" = 0 ] || bail "keygen failed"
encfs-skr --akv "$VAULT" --kid octkey <"$T/token" >"$T/good.jws" 2>/dev/null || bail "no release"
run_to "$T/key" encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" <"$T/good.jws"
is "$rc:$(hexof "$T/key")" "0:$WANT_OCT" "the untouched response unwraps"
"$PYTHON" -c 'import json, sys; print(json.dumps({"value": open(sys.argv[1]).read().strip()}))' \
	"$T/good.jws" >"$T/good.json"
run_to "$T/key" encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" <"$T/good.json"
is "$rc:$(hexof "$T/key")" "0:$WANT_OCT" "the vault's own {\"value\": JWS} answer is accepted"

for alg in RS384 RS512 PS256 PS384 PS512; do
	"$PYTHON" "$F/akv.py" tamper $alg --certs "$C" --host myvault.vault.localhost <"$T/good.jws" >"$T/alg.jws"
	run_to "$T/key" encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" <"$T/alg.jws"
	is "$rc:$(hexof "$T/key")" "0:$WANT_OCT" "a response signed $alg is accepted"
done
for mode in server-eku escaped-x5c; do
	"$PYTHON" "$F/akv.py" tamper $mode --certs "$C" --host myvault.vault.localhost <"$T/good.jws" >"$T/mode.jws"
	run_to "$T/key" encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" <"$T/mode.jws"
	is "$rc:$(hexof "$T/key")" "0:$WANT_OCT" "$mode: a response still from the vault is accepted"
done

refused() { # refused MODE EXPECTED-MESSAGE [UNWRAP-OPTIONS...]: a tampered response is refused
	_mode=$1 _want=$2
	shift 2
	if [ "$_mode" = as-is ]; then
		cp "$T/good.jws" "$T/bad.jws"
	else
		"$PYTHON" "$F/akv.py" tamper "$_mode" --certs "$C" --host myvault.vault.localhost \
			<"$T/good.jws" >"$T/bad.jws" || bail "tamper $_mode"
	fi
	run_to "$T/out" encfs-unwrap --private "$T/shm/t.pem" "$@" <"$T/bad.jws"
	is "$rc:$(wc -c <"$T/out"):$err" "7:0:encfs-unwrap: $_want" "$_mode: refused with its own message, no key output"
}
refused payload "release response: the JWS signature does not verify with x5c[0] (the header or payload was altered, or it was not signed by that certificate)" --akv "$VAULT"
refused signature "release response: the JWS signature does not verify with x5c[0] (the header or payload was altered, or it was not signed by that certificate)" --akv "$VAULT"
refused rogue-ca "release response: the signing certificate chain does not verify: self-signed certificate in certificate chain (the response is not from a trusted vault; the trust anchors come from --cacert, ENCFS_CA_BUNDLE or the system store)" --akv "$VAULT"
refused wrong-host "release response: the signing certificate (/CN=other.vault.localhost/O=encfs tests) is not valid for the vault host myvault.vault.localhost (the response was signed for another host; check --akv)" --akv "$VAULT"
refused truncate "unwrapping the key: the ciphertext is 200 bytes, shorter than the 256-byte RSA-wrapped AES key plus one AES-KWP block (it was truncated)" --akv "$VAULT"
refused kwp "unwrapping the key: the AES key wrap (RFC 5649) integrity check failed (the wrapped key was altered)" --akv "$VAULT"
refused alg-none 'release response: JWS alg "none" is not accepted (only RS256, RS384, RS512, PS256, PS384, PS512)' --akv "$VAULT"
refused x5t "release response: the JWS header's x5t#S256 does not match x5c[0]" --akv "$VAULT"
refused as-is "release response: it is for a key of myvault.vault.localhost, not of myhsm.managedhsm.localhost (check --akv)" --akv "$HSM"
refused x5t-sha1 "release response: the JWS header's x5t does not match x5c[0]" --akv "$VAULT"
refused client-eku "release response: the signing certificate (/CN=myvault.vault.localhost) is not a server certificate: its extended key usage does not allow TLS server authentication, which a vault's signing certificate has" --akv "$VAULT"
refused expired "release response: the signing certificate chain does not verify: certificate has expired (the response is not from a trusted vault; the trust anchors come from --cacert, ENCFS_CA_BUNDLE or the system store)" --akv "$VAULT"
refused padded "release response: the JWS signature is not base64url without padding (RFC 7515)" --akv "$VAULT"
refused kid-host "release response: request.kid names the vault myvault.vault.localhost but the released key's kid names other.vault.localhost" --akv "$VAULT"

# the key asked for: --kid binds the response to it
gkid=$("$PYTHON" -c 'import base64, json, sys
p = open(sys.argv[1]).read().strip().split(".")[1]
print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["response"]["key"]["key"]["kid"])' "$T/good.jws")
gver=${gkid##*/}
for k in octkey "octkey/$gver" "https://$VAULT/keys/octkey" "$gkid" OctKey; do
	run_to "$T/key" encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" --kid "$k" <"$T/good.jws"
	is "$rc:$(hexof "$T/key")" "0:$WANT_OCT" "--kid $k: the response is for that key"
done
refused as-is "release response: it is the key octkey, not rsakey (check --kid)" --akv "$VAULT" --kid rsakey
refused as-is "release response: it is version $gver of the key octkey, not 0123abcd (check --kid)" --akv "$VAULT" --kid octkey/0123abcd
run_to "$T/key" encfs-unwrap --private "$T/shm/t.pem" --kid "https://$VAULT/keys/octkey" <"$T/good.jws"
is "$rc:$(hexof "$T/key")" "0:$WANT_OCT" "--kid as a key URL names the vault, as --akv does"
run_to "$T/out" encfs-unwrap --private "$T/shm/t.pem" --akv "$HSM" --kid "https://$VAULT/keys/octkey" <"$T/good.jws"
is "$rc:$(wc -c <"$T/out"):$err" "2:0:encfs-unwrap: usage: --kid https://$VAULT/keys/octkey is in myvault.vault.localhost, not in the --akv vault myhsm.managedhsm.localhost (see --help)" \
	"a --kid URL of another vault than --akv: exit 2"
run_to "$T/out" encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" --kid 'a b' <"$T/good.jws"
like "$rc:$(wc -c <"$T/out"):$err" "2:0:encfs-unwrap: usage: --kid a b: " "a bad --kid: exit 2"
{ cat "$T/good.jws"; printf '\000trailing'; } >"$T/nul.jws"
run_to "$T/out" encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" <"$T/nul.jws"
is "$rc:$(wc -c <"$T/out"):$err" "3:0:encfs-unwrap: reading the release response: standard input holds a NUL byte (it is not a JWS)" \
	"a NUL byte in the input is refused, not cut at"
encfs-unwrap keygen --private "$T/shm/other.pem" >/dev/null 2>&1
run_to "$T/out" encfs-unwrap --private "$T/shm/other.pem" --akv "$VAULT" <"$T/good.jws"
is "$rc:$(wc -c <"$T/out"):$err" "7:0:encfs-unwrap: unwrapping the key: RSA-OAEP (SHA1) decryption of the AES key failed (the key was wrapped for another wrapping key: is --private the key whose public half went into the attestation?)" \
	"another wrapping key: refused with its own message, no key output"
run_to "$T/out" encfs-unwrap --private "$T/shm/t.pem" <"$T/good.jws"
is "$rc:$(wc -c <"$T/out"):$err" "2:0:encfs-unwrap: release response: myvault.vault.localhost is not a Key Vault or Managed HSM host name (give --akv ENDPOINT to accept it)" \
	"without --akv only public Key Vault host names are trusted"
run_to "$T/out" env ENCFS_CA_BUNDLE= encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" <"$T/good.jws"
like "$rc:$(wc -c <"$T/out"):$err" "7:0:encfs-unwrap: release response: the signing certificate chain does not verify" \
	"the system store does not trust the test CA"
run_to "$T/out" encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" --cacert "$C/rogue/rogue.pem" <"$T/good.jws"
like "$rc:$(wc -c <"$T/out"):$err" "7:0:encfs-unwrap: release response: the signing certificate chain does not verify" \
	"--cacert replaces ENCFS_CA_BUNDLE"
printf 'not a jws\n' >"$T/junk"
run_to "$T/out" encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" <"$T/junk"
is "$rc:$(wc -c <"$T/out"):$err" "7:0:encfs-unwrap: release response: not a compact JWS (three base64url parts separated by dots)" "junk on stdin"
run encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" </dev/null
is "$rc:$err" "3:encfs-unwrap: reading the release response: nothing on standard input: did the previous step fail? (pipe encfs-skr's output in)" "empty stdin: exit 3, naming the likely cause"
run encfs-unwrap --private "$T/nonexistent.pem" --akv "$VAULT" <"$T/good.jws"
like "$rc:$err" "3:encfs-unwrap: reading the private key $T/nonexistent.pem: No such file" "a missing private key: exit 3"
run encfs-unwrap --private "$T/shm/t.pem" --akv "$VAULT" --salt xyz <"$T/good.jws"
like "$rc:$err" "2:encfs-unwrap: usage: --salt is not hex" "a bad --salt: exit 2"
if command -v script >/dev/null 2>&1; then
	run_to "$T/tty.out" script -qec "encfs-unwrap --private '$T/shm/t.pem' --akv '$VAULT' <'$T/good.jws'" /dev/null
	like "$rc:$(cat "$T/tty.out")" "2:encfs-unwrap: writing the key: standard output is a terminal; refusing to show key bytes" \
		"key bytes are never written to a terminal"
	is "$("$PYTHON" -c 'import sys; print(open(sys.argv[1], "rb").read() in open(sys.argv[2], "rb").read())' \
		"$T/oct.bin" "$T/tty.out")" False "(none of them reached it)"
else
	skip "script(1) is not installed"
	skip "script(1) is not installed"
fi

# an EC-HSM key, imported straight through the REST API: refused for a filesystem
"$PYTHON" "$F/aad.py" access-token --aud https://vault.azure.net >"$T/bearer"
"$PYTHON" -c 'import base64, json, sys
from cryptography.hazmat.primitives.asymmetric import ec
k = ec.generate_private_key(ec.SECP256R1()).private_numbers()
b = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
policy = {"version": "1.0.0", "anyOf": [{"authority": "https://" + sys.argv[1],
          "allOf": [{"claim": "x-ms-sevsnpvm-vmpl", "equals": 0}]}]}
print(json.dumps({"key": {"kty": "EC", "crv": "P-256", "d": b(k.private_value), "x": b(k.public_numbers.x),
                          "y": b(k.public_numbers.y)}, "hsm": True, "attributes": {"exportable": True},
                  "release_policy": {"data": base64.urlsafe_b64encode(json.dumps(policy).encode()).decode()}}))' \
	"$MAA" >"$T/ec.json"
curl -sS --cacert "$C/ca.pem" -X PUT -H "Authorization: Bearer $(cat "$T/bearer")" \
	-H "Content-Type: application/json" --data-binary "@$T/ec.json" \
	"https://$VAULT/keys/eckey?api-version=7.4" >"$T/ec.out"
is "$(jget "$T/ec.out" key kty)" "EC-HSM" "an EC-HSM key with an integer claim value in its policy is imported"
salt="" label=""
chain "$VAULT" eckey
is "$chain_rc:$(wc -c <"$T/key")" "unwrap:7:0" "the release (vmpl 0 = \"0\") works, but unwrap refuses it"
like "$(cat "$T/chain.err")" "encfs-unwrap: the released key is an EC-HSM key: a filesystem key comes from an oct-HSM or RSA-HSM key" \
	"and says why"

# --- logs of a full chain at trace level --------------------------------------------------------
export LogLevel=trace LogFile="$T/chain.log"
"$PYTHON" "$F/aad.py" access-token --aud https://vault.azure.net >"$T/bearer"
salt=$SALT label=$LABEL
chain "$VAULT" rsakey --bearer-file "$T/bearer"
unset LogLevel LogFile
is "${chain_rc:-ok}:$(hexof "$T/key")" "ok:$WANT_RSA" "a chain with LogLevel=trace works"
cat "$T/chain.err" >>"$T/chain.log"
like "$(cat "$T/chain.log")" "encfs-unwrap: info: key check value $(sha256 "$T/key" | cut -c1-8)" \
	"the log has the key check value"
like "$(cat "$T/chain.log")" "encfs-skr: debug:" "and the tools' debug lines"
requests() { curl -sS --cacert "$C/ca.pem" "https://$1/_requests" >"$2"; }
requests "$VAULT" "$T/req.json"
"$PYTHON" -c 'import base64, json, sys
# every secret of this run, in the encodings a log line could hold them
reqs = json.load(open(sys.argv[1]))
rel = [r for r in reqs if r["method"] == "POST" and r["path"] == "/keys/rsakey/release"][-1]
token = json.loads(rel["body"])["target"]
bearer = rel["headers"]["Authorization"].split()[1]
key = bytes.fromhex(sys.argv[2])
oct_key = open(sys.argv[3], "rb").read()
from cryptography.hazmat.primitives import serialization
d = serialization.load_pem_private_key(open(sys.argv[4], "rb").read(), None).private_numbers().d
d = d.to_bytes((d.bit_length() + 7) // 8, "big")
def forms(b):
    return [b.hex(), b.hex().upper(), base64.b64encode(b).decode().rstrip("="),
            base64.urlsafe_b64encode(b).decode().rstrip("=")]
secrets = {"key": forms(key), "oct key": forms(oct_key), "RSA D": [f[:40] for f in forms(d)],
           "MAA token signature": [token.split(".")[2]], "bearer signature": [bearer.split(".")[2]],
           "release response signature": [open(sys.argv[6]).read().strip().split(".")[2]],
           "bearer": [bearer]}
log = open(sys.argv[5], encoding="utf-8", errors="replace").read()
bad = [name for name, fs in secrets.items() for f in fs if f and f in log]
print("clean" if not bad else "found: " + ", ".join(sorted(set(bad))))' \
	"$T/req.json" "$WANT_RSA" "$T/oct.bin" "$T/rsa.pem" "$T/chain.log" "$T/release.jws" >"$T/leaks"
is "$(cat "$T/leaks")" "clean" "the trace logs hold no key bytes (hex, base64), no token or JWS signature, no access token"
like "$(cat "$T/chain.log")" "encfs-skr: trace: attestation token: eyJ" "(they do show the tokens' header.payload)"
is "$(stat -c %a "$T/chain.log")" 600 "the log file is mode 0600"

done_testing
