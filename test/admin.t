#!/bin/sh
# The admin at the terminal (issue 16): no silent waits (the first retry is a warning, written
# before the retry goes out; a name that does not resolve gives up after two attempts; --deadline;
# host:port in messages; IMDS missing outside Azure says how to give a token), standard input
# (never a terminal, never empty), another tool's output named, looking inside (encfs-attest show,
# encfs-unwrap show, encfs-skr policy, the 403 hint, the key check value), one command-line
# grammar, and encfs.sh naming configuration fields.  Against the fake MAA, vault and IMDS.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err, rc and port
. "$ENCFS_SRC/test/lib.sh"

F=$ENCFS_SRC/test/fakes
for tool in encfs-skr encfs-unwrap encfs-attest encfs-config encfs-dmsetup; do
	[ -x "$ENCFS_BIN/$tool" ] || skip_all "$tool is not built"
done
"$PYTHON" -c 'import cryptography' 2>/dev/null || skip_all "python3-cryptography is not installed"

# --- the services --------------------------------------------------------------------------------
C=$T/certs
"$PYTHON" "$F/fakelib.py" ca "$C" maa 127.0.0.1 localhost || bail "cannot make the test CA"
export ENCFS_CA_BUNDLE="$C/ca.pem"
start_service maa "$PYTHON" "$F/maa.py" --tls "$C/maa.pem" "$C/maa.key" --accept-fake-reports
MAA=127.0.0.1:$port
# an attestation service whose tokens are expired when issued (trusted by nobody: only looked at)
start_service maa-old "$PYTHON" "$F/maa.py" --tls "$C/maa.pem" "$C/maa.key" --accept-fake-reports \
	--token-ttl -120 --signing-dir "$T/maa-old"
MAA_OLD=127.0.0.1:$port
CID=5e5e5e5e-0000-4000-8000-00000000c11d
start_service akv "$PYTHON" "$F/akv.py" --certs "$C" --host myvault.vault.localhost \
	--allow-appid system-assigned --allow-appid "$CID"
VAULT=myvault.vault.localhost:$port
VPORT=$port
start_service imds "$PYTHON" "$F/imds.py"
IMDS=127.0.0.1:$port
export ENCFS_IMDS_ENDPOINT="http://$IMDS"

url() { if [ "$1" = "$IMDS" ]; then echo "http://$1"; else echo "https://$1"; fi; }
requests() { curl -sS --cacert "$C/ca.pem" "$(url "$1")/_requests" >"$2"; }
fault() { curl -sS --cacert "$C/ca.pem" -X POST -d "$2" "$(url "$1")/_fault"; }
count() { # count HOSTPORT METHOD PATH: requests the fake got for it
	requests "$1" "$T/count.json"
	"$PYTHON" -c 'import json, sys
print(sum(r["method"] == sys.argv[2] and r["path"] == sys.argv[3] for r in json.load(open(sys.argv[1]))))' \
		"$T/count.json" "$2" "$3"
}
# snapshots HOSTPORT PATH: what the stderr file held at each request for PATH that a fault rule
# with "snapshot" answered, one line per request (newlines as |)
snapshots() {
	requests "$1" "$T/snap.json"
	"$PYTHON" -c 'import json, sys
for r in json.load(open(sys.argv[1])):
    if r["path"] == sys.argv[2] and "snapshot" in r:
        print(r["snapshot"].replace("\n", "|") or "(nothing)")' "$T/snap.json" "$2"
}

# --- evidence, a key, tokens ---------------------------------------------------------------------
mkdir "$T/ctx" "$T/other-uvm" "$T/shm"
printf 'package policy\n' | base64 -w0 >"$T/ctx/security-policy-base64"
cp "$T/ctx/security-policy-base64" "$T/other-uvm/"
FAKE_MEASUREMENT=b579c7d6b89f3914659abe09a004a58a1e77846b65bbdac9e29bd8f2f31b31af445a5dd40f76f71ecdd73117f1d592a3
"$PYTHON" "$F/snp.py" endorsement --measurement "$FAKE_MEASUREMENT" | base64 -w0 >"$T/ctx/reference-info-base64"
"$PYTHON" "$F/snp.py" endorsement --measurement 00 | base64 -w0 >"$T/other-uvm/reference-info-base64"
export UVM_SECURITY_CONTEXT_DIR="$T/ctx"
HOSTDATA=$(printf 'package policy\n' | sha256sum | cut -d' ' -f1)
KEYHEX=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
KCV=$("$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest()[:8])' "$KEYHEX")
cat >"$T/ik.json" <<EOF
{"key": {"kid": "fskey", "kty": "oct-HSM", "authority": {"endpoint": "$MAA"}, "akv": {"endpoint": "$VAULT"}},
 "claims": [[{"claim": "x-ms-sevsnpvm-hostdata", "equals": "$HOSTDATA"},
             {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
             {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"}]]}
EOF
encfs-unwrap keygen --private "$T/shm/wrap.pem" >"$T/jwks.json" 2>/dev/null || bail "keygen failed"
encfs-attest --fake-report --maa "$MAA" <"$T/jwks.json" >"$T/token" 2>/dev/null || bail "no token"
encfs-attest --fake-report --maa "$MAA_OLD" <"$T/jwks.json" >"$T/token-old" 2>/dev/null || bail "no old token"
UVM_SECURITY_CONTEXT_DIR="$T/other-uvm" encfs-attest --fake-report --maa "$MAA" <"$T/jwks.json" \
	>"$T/token-noncompliant" 2>/dev/null || bail "no token for the other UVM"

# --- looking inside: import's key check value, the stored policy, a release, what unwrap says ----
run sh -c 'printf "%s\n" "$1" | encfs-skr import -c "$2" --key-hex -' sh "$KEYHEX" "$T/ik.json"
printf '%s\n' "$out" >"$T/import.json"
is "$rc:$(jget "$T/import.json" key_check_value)" "0:$KCV" \
	"import prints the key check value: the first 8 hex digits of SHA-256 of the key"
unlike "$out" "$KEYHEX" "... and not the key"

run encfs-skr policy --akv "$VAULT" --kid fskey
printf '%s\n' "$out" >"$T/policy.json"
is "$rc:$(jget "$T/policy.json" release_policy):$(jget "$T/policy.json" exportable):$(jget "$T/policy.json" kty)" \
	"0:$(jget "$T/import.json" release_policy):true:oct-HSM" \
	"encfs-skr policy prints the policy the vault keeps (GET /keys/NAME), as import made it"
like "$(jget "$T/policy.json" kid)" "https://$VAULT/keys/fskey/" "... and the key's identifier"
is "$(count "$VAULT" GET /keys/fskey)" 1 "... read with one GET"

encfs-skr --akv "$VAULT" --kid fskey <"$T/token" >"$T/release.jws" 2>"$T/release.err" || bail "release: $(cat "$T/release.err")"
run encfs-unwrap show <"$T/release.jws"
printf '%s\n' "$out" >"$T/show-release.json"
is "$rc:$(jget "$T/show-release.json" payload response key release_policy data):$(jget "$T/show-release.json" payload response key key kty)" \
	"0:$(jget "$T/import.json" release_policy):oct-HSM" \
	"encfs-unwrap show: the release policy inside the release, decoded, and the key type"
like "$(jget "$T/show-release.json" header x5c 0)" "CN=myvault.vault.localhost" "... x5c as the certificates' subjects"
like "$(jget "$T/show-release.json" header x5c 0)" "(issuer " "... issuers and validity"
is "$(jget "$T/show-release.json" payload response key key key_hsm ciphertext)" \
	"<296 bytes: RSA-OAEP of an AES key, then the key wrapped with it>" \
	"... the wrapped key as its length (256 bytes of RSA-OAEP, 40 of AES key wrap)"
run encfs-unwrap -v --private "$T/shm/wrap.pem" --akv "$VAULT" --kid fskey <"$T/release.jws"
like "$err" "key check value $KCV (first 8 hex digits of SHA-256 of the key)" \
	"encfs-unwrap reports the key check value encfs-skr import printed"

run encfs-attest show <"$T/token"
printf '%s\n' "$out" >"$T/show-token.json"
is "$rc:$(jget "$T/show-token.json" header alg):$(jget "$T/show-token.json" claims x-ms-sevsnpvm-hostdata):$(jget "$T/show-token.json" claims x-ms-compliance-status)" \
	"0:RS256:$HOSTDATA:azure-compliant-uvm" "encfs-attest show: the token's header and claims"
like "$err" "encfs-attest: the token was issued " "... when it was issued"
ok "$(printf '%s\n' "$err" | grep -Eq 'is valid until [0-9-]+ [0-9:]+ UTC, (8 h 0|7 h 59) min from now$'; echo $?)" \
	"... and until when it is valid (eight hours)"
run encfs-attest show <"$T/release.jws"
is "$rc:$err" "3:encfs-attest: reading the token: this is a release response (encfs-skr's output); it goes to encfs-unwrap (encfs-unwrap show looks inside it)" \
	"encfs-attest show names a release response and the tool that shows it"
run encfs-unwrap show <"$T/token"
is "$rc:$err" "3:encfs-unwrap: reading the release response: this is an MAA token (encfs-attest's output); it goes to encfs-skr (encfs-attest show looks inside it)" \
	"encfs-unwrap show names an MAA token and the tool that shows it"

# an expired token: said, with when, and nothing is sent
run encfs-attest show <"$T/token-old"
like "$rc:$err" "3:encfs-attest: the token expired at " "encfs-attest show: an expired token exits 3, saying when it expired"
like "$err" "2 min ago (encfs-skr refuses it: attest again)" "... and how long ago"
n=$(count "$VAULT" POST /keys/fskey/release)
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token-old"
like "$rc:$err" "3:encfs-skr: reading the attestation token: it expired at " "encfs-skr: an expired token exits 3"
like "$err" "(nothing was sent: run encfs-attest again for a fresh token)" "... saying nothing was sent"
is "$(count "$VAULT" POST /keys/fskey/release)" "$n" "... and nothing was: no release request"

# --- the 403 hint ---------------------------------------------------------------------------------
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token-noncompliant"
is "$rc" 5 "a token for a UVM MAA does not call compliant: 403, exit 5"
like "$err" "(the policy wants x-ms-compliance-status=azure-compliant-uvm (the token has none); the identity also needs the Key Vault Crypto Service Release User role)" \
	"... the hint names the claim the policy requires and the token lacks"
fault "$VAULT" '{"path": "/keys/fskey/release", "count": 1, "status": 403, "body": {"error": {"code": "Forbidden", "message": "Target environment attestation statement cannot be verified."}}}'
fault "$VAULT" '{"path": "/keys/fskey", "count": 1, "status": 403}'
run encfs-skr --akv "$VAULT" --kid fskey <"$T/token-noncompliant"
like "$rc:$err" "5:encfs-skr: releasing key fskey from myvault.vault.localhost: HTTP 403: Forbidden: Target environment attestation statement cannot be verified (the key's policy could not be read to compare (encfs-skr policy shows it to an identity that may read keys); the token has no x-ms-compliance-status; it has iss=https://$MAA" \
	"a 403 when the policy cannot be read: the claims release policies test that the token lacks"
"$PYTHON" "$F/aad.py" access-token --aud https://vault.azure.net --appid someone-else >"$T/bearer-role"
run encfs-skr --akv "$VAULT" --kid fskey --bearer-file "$T/bearer-role" <"$T/token"
like "$err" "(the token meets the key's stored policy, so the identity may not release the key; the identity also needs the Key Vault Crypto Service Release User role)" \
	"a 403 for a token that meets the policy: the identity's role"

# --- no silent waits ------------------------------------------------------------------------------
# The first retry is a warning: the fake records what the tool's stderr held when each attempt
# arrived, so the order is seen by events, not by the clock.
fault "$VAULT" "{\"path\": \"/keys/fskey/release\", \"count\": 2, \"status\": 503, \"snapshot\": \"$T/skr503.err\"}"
encfs-skr --akv "$VAULT" --kid fskey <"$T/token" >/dev/null 2>"$T/skr503.err"
rc=$?
snapshots "$VAULT" /keys/fskey/release >"$T/snaps"
is "$rc:$(sed -n 1p "$T/snaps")" "0:(nothing)" "vault 503: nothing was said before the first attempt"
like "$(sed -n 2p "$T/snaps")" "encfs-skr: warning: key release fskey: myvault.vault.localhost:$VPORT: HTTP 503; retrying until " \
	"... the warning (what, host:port, that it retries) was written before the second attempt arrived"
like "$(sed -n 2p "$T/snaps")" "s more; --deadline sets how long)" "... saying until when"
is "$(grep -c warning "$T/skr503.err")" 1 "... once: later retries are info"

fault "$MAA" "{\"path\": \"/attest\", \"count\": 1, \"status\": 503, \"snapshot\": \"$T/maa503.err\"}"
encfs-attest --fake-report --maa "$MAA" <"$T/jwks.json" >/dev/null 2>"$T/maa503.err"
rc=$?
snapshots "$MAA" /attest/SevSnpVM >"$T/snaps"
like "$rc:$(sed -n 2p "$T/snaps" 2>/dev/null)$(cat "$T/snaps")" "0:" "MAA 503: retried"
like "$(grep -v FAKE "$T/maa503.err")" "encfs-attest: warning: MAA attest: $MAA: HTTP 503; retrying until " \
	"... with one warning naming MAA's host:port"

fault "$IMDS" "{\"path\": \"/metadata/identity/oauth2/token\", \"count\": 1, \"status\": 404, \"snapshot\": \"$T/imds404.err\"}"
requests "$IMDS" "$T/imds-before.json"
encfs-skr --akv "$VAULT" --kid fskey <"$T/token" >/dev/null 2>"$T/imds404.err"
rc=$?
snapshots "$IMDS" /metadata/identity/oauth2/token | tail -n 1 >"$T/snaps"
like "$rc:$(cat "$T/imds404.err")" "0:encfs-skr: warning: managed identity (IMDS): $IMDS: HTTP 404 (IMDS is updating); retrying until " \
	"IMDS updating (404): one warning with host:port, and the token came"

# a port nobody listens on: the warning, then the give-up line at --deadline
run encfs-attest --fake-report --maa 127.0.0.1:1 --deadline 2 <"$T/jwks.json"
is "$rc" 4 "a refused connection past --deadline: exit 4"
printf '%s\n' "$err" | grep -v 'warning: FAKE' >"$T/refused.err"
like "$(sed -n 1p "$T/refused.err")" "encfs-attest: warning: MAA attest: 127.0.0.1:1: Failed to connect to 127.0.0.1 port 1" \
	"... first a warning with host:port"
like "$(sed -n 1p "$T/refused.err")" "retrying until " "... that it retries, until when"
like "$(tail -n 1 "$T/refused.err")" "encfs-attest: attesting a FAKE report: MAA attest: 127.0.0.1:1: " "... then the error"
like "$(tail -n 1 "$T/refused.err")" "; gave up after " "... that it gave up"
is "$(wc -l <"$T/refused.err")" 2 "... two lines in all"

# a name that does not resolve: tried twice, not until the deadline (in a network namespace of
# its own with only a down loopback: no query leaves the machine)
if unshare -rn true 2>/dev/null; then
	printf 'x.y.z\n' >"$T/bearer-any"
	run unshare -rn encfs-skr --akv myvault.vault.invalid --kid fskey --bearer-file "$T/bearer-any" <"$T/token"
	is "$rc" 4 "a host name that does not resolve: exit 4"
	like "$err" "encfs-skr: warning: key release fskey: myvault.vault.invalid:443: Could not resolve host: myvault.vault.invalid (check the host name and DNS); trying once more (a name that does not resolve is tried 2 times)" \
		"... one warning naming host:port"
	like "$err" "gave up after 2 attempts" "... and it gives up after two attempts (a 503 goes on until --deadline)"
else
	skip "unshare -rn does not work here: no private network namespace"
	skip "unshare -rn"
	skip "unshare -rn"
fi

# no IMDS at all, as on a workstation: the hint says how to give a token instead
run sh -c 'printf "%s\n" "$1" | ENCFS_IMDS_ENDPOINT=http://127.0.0.1:1 encfs-skr import -c "$2" --key-hex - --deadline 1' \
	sh "$KEYHEX" "$T/ik.json"
is "$rc" 4 "import without IMDS: exit 4"
like "$err" "
encfs-skr: getting a token for https://vault.azure.net: getting a token (no workload identity configured): managed identity (IMDS): 127.0.0.1:1: " \
	"... after the retry warning, one error line naming IMDS's host:port"
like "$err" "(no IMDS answered: outside Azure, give the vault's token with --bearer-file FILE, --bearer-fd N or key.akv.bearer_token of the configuration)" \
	"... and how to give a bearer token instead"
run env ENCFS_IMDS_ENDPOINT=http://127.0.0.1:1 encfs-skr --akv "$VAULT" --kid fskey --deadline 1 <"$T/token"
like "$err" "(no IMDS answered: outside Azure, give the vault's token with --bearer-file FILE or --bearer-fd N)" \
	"release without IMDS: the same hint, for release's options"

# --- standard input: never a terminal, never empty; another tool's output is named -----------------
# on_tty CMD: CMD with a terminal on standard input (script(1)); its output, CRs removed, in $out
on_tty() {
	rc=0
	timeout 20 script -qec "$1" /dev/null </dev/null >"$T/tty.out" 2>&1 || rc=$?
	out=$(tr -d '\r' <"$T/tty.out")
}
if command -v script >/dev/null 2>&1; then
	on_tty "encfs-skr --akv '$VAULT' --kid fskey >/dev/null"
	is "$rc:$out" "2:encfs-skr: reading the attestation token: standard input is a terminal (pipe encfs-attest's output in, or < FILE)" \
		"encfs-skr: a terminal on standard input is refused at once"
	on_tty "encfs-skr import -c '$T/ik.json' --key-hex - >/dev/null"
	is "$rc:$out" "2:encfs-skr: key: reading --key-hex -: standard input is a terminal (pipe the hex in; a key typed at a terminal stays in its history)" \
		"encfs-skr import --key-hex -: a terminal is refused"
	on_tty "encfs-unwrap --private '$T/shm/wrap.pem' >/dev/null"
	is "$rc:$out" "2:encfs-unwrap: reading the release response: standard input is a terminal (pipe encfs-skr's output in, or < FILE)" \
		"encfs-unwrap: a terminal is refused"
	on_tty "encfs-unwrap show"
	is "$rc:$out" "2:encfs-unwrap: reading the release response: standard input is a terminal (pipe encfs-skr's output in, or < FILE)" \
		"encfs-unwrap show: a terminal is refused"
	on_tty "encfs-attest --fake-report --maa '$MAA' >/dev/null"
	is "$rc:$out" "2:encfs-attest: reading runtime data: standard input is a terminal (pipe the JWK set of encfs-unwrap keygen in, or < FILE)" \
		"encfs-attest: a terminal is refused"
	on_tty "encfs-attest report --fake-report --hex"
	is "$rc:$out" "2:encfs-attest: reading runtime data: standard input is a terminal (pipe the JWK set of encfs-unwrap keygen in, or < FILE)" \
		"encfs-attest report: a terminal is refused"
	on_tty "encfs-attest show"
	is "$rc:$out" "2:encfs-attest: reading the token: standard input is a terminal (pipe encfs-attest's output in, or < FILE)" \
		"encfs-attest show: a terminal is refused"
	on_tty "encfs-attest policy-digest"
	is "$rc:$out" "2:encfs-attest: reading the security policy: standard input is a terminal (pipe the base64 policy in, or give FILE)" \
		"encfs-attest policy-digest: a terminal is refused"
else
	for i in 1 2 3 4 5 6 7 8; do skip "script(1) is not installed ($i)"; done
fi

empty() { # empty WANT-ERROR DESCRIPTION CMD...: CMD with nothing on standard input
	_want=$1 _what=$2
	shift 2
	run "$@" </dev/null
	is "$rc:$err" "3:$_want" "$_what: nothing on standard input is exit 3, naming the likely cause"
}
empty "encfs-skr: reading the attestation token: nothing on standard input: did the previous step fail? (pipe encfs-attest's output in)" \
	encfs-skr encfs-skr --akv "$VAULT" --kid fskey
empty "encfs-skr: key: reading --key-hex -: nothing on standard input: did the previous step fail? (pipe the 64 hex digits in)" \
	"encfs-skr import --key-hex -" encfs-skr import -c "$T/ik.json" --key-hex -
empty "encfs-unwrap: reading the release response: nothing on standard input: did the previous step fail? (pipe encfs-skr's output in)" \
	encfs-unwrap encfs-unwrap --private "$T/shm/wrap.pem"
empty "encfs-unwrap: reading the release response: nothing on standard input: did the previous step fail? (pipe encfs-skr's output in)" \
	"encfs-unwrap show" encfs-unwrap show
empty "encfs-attest: reading runtime data: nothing on standard input: did the previous step fail? (pipe the JWK set of encfs-unwrap keygen in)" \
	encfs-attest encfs-attest --fake-report --maa "$MAA"
empty "encfs-attest: reading runtime data: nothing on standard input: did the previous step fail? (pipe the JWK set of encfs-unwrap keygen in)" \
	"encfs-attest report --fake-report (exit 0 on empty input before)" encfs-attest report --fake-report --hex
empty "encfs-attest: reading the token: nothing on standard input: did the previous step fail? (pipe encfs-attest's output in)" \
	"encfs-attest show" encfs-attest show
empty "encfs-attest: reading the security policy: nothing on standard input: did the previous step fail? (pipe the base64 policy in)" \
	"encfs-attest policy-digest" encfs-attest policy-digest -

n=$(count "$VAULT" POST /keys/fskey/release)
run encfs-skr --akv "$VAULT" --kid fskey <"$T/jwks.json"
is "$rc:$err" "3:encfs-skr: reading the attestation token: this is a JWK set (the public wrapping key of encfs-unwrap keygen); it goes to encfs-attest" \
	"a JWK set given to encfs-skr: named, and where it goes"
run encfs-skr --akv "$VAULT" --kid fskey <"$T/release.jws"
is "$rc:$err" "3:encfs-skr: reading the attestation token: this is a release response (encfs-skr's output); it goes to encfs-unwrap" \
	"a release response given to encfs-skr: named, and where it goes"
printf '{"value": "%s"}\n' "$(cat "$T/release.jws")" >"$T/release-body.json"
run encfs-skr --akv "$VAULT" --kid fskey <"$T/release-body.json"
is "$rc:$err" "3:encfs-skr: reading the attestation token: this is a release response (encfs-skr's output); it goes to encfs-unwrap" \
	"... also as the vault's {\"value\": ...} answer"
is "$(count "$VAULT" POST /keys/fskey/release)" "$n" "... none of them reached the vault"
run encfs-unwrap --private "$T/shm/wrap.pem" <"$T/token"
is "$rc:$err" "3:encfs-unwrap: reading the release response: this is an MAA token (encfs-attest's output); it goes to encfs-skr" \
	"an MAA token given to encfs-unwrap: named, not called a crypto failure"
run encfs-unwrap --private "$T/shm/wrap.pem" <"$T/jwks.json"
is "$rc:$err" "3:encfs-unwrap: reading the release response: this is a JWK set (the public wrapping key of encfs-unwrap keygen); it goes to encfs-attest" \
	"a JWK set given to encfs-unwrap: named"
run encfs-attest --fake-report --maa "$MAA" <"$T/token"
is "$rc:$err" "3:encfs-attest: reading runtime data: this is an MAA token (encfs-attest's output); it goes to encfs-skr" \
	"an MAA token given to encfs-attest as runtime data: named"

# --- one grammar ----------------------------------------------------------------------------------
for tool in encfs-attest encfs-config encfs-dmsetup encfs-skr encfs-unwrap encfs-fetch encfs-mkimage; do
	run "$tool" --bogus
	case $tool in
	encfs-fetch) is "$rc" 2 "$tool: an unknown option is exit 2 (its one-line form: see the lead's list)" ;;
	*) is "$rc:$err" "2:$tool: usage: unknown option --bogus (see --help)" "$tool: an unknown option: one usage line naming it" ;;
	esac
	run "$tool" -v --verbose --help
	is "$rc" 0 "$tool: -v and --verbose before --help"
done
# an option without its value is named too, in the same one line (encfs-mkimage once let getopt
# print its own line first, and called it "unknown option")
run encfs-mkimage --size
is "$rc:$err" "2:encfs-mkimage: usage: --size needs a value (see --help)" "encfs-mkimage: an option without its value: one usage line naming it"
run encfs-mkimage --size "1
2" "$T"
is "$rc:$err" "2:encfs-mkimage: usage: --size 1\\x0a2: not a size (bytes, or a number with K, M, G or T) (see --help)" \
	"encfs-mkimage: a value with a newline is named in one line, the newline escaped"
run encfs-skr -v --verbose policy --akv "$VAULT" --kid fskey -v --verbose
is "$rc" 0 "encfs-skr: -v and --verbose before the command and among its options"
run encfs-unwrap --verbose keygen --private "$T/shm/k2.pem" -v
is "$rc" 0 "encfs-unwrap: the same for keygen"
run encfs-attest -v policy-digest --verbose "$T/ctx/security-policy-base64"
is "$rc:$out" "0:$HOSTDATA" "encfs-attest: the same for policy-digest"
run encfs-dmsetup --verbose dump -v --verbose "$T/jwks.json"
is "$rc:$err" "3:encfs-dmsetup: $T/jwks.json: not a LUKS volume: no known signature found" \
	"encfs-dmsetup: the same for dump (which then refuses the file, not the options)"
run encfs-unwrap --private "$T/shm/wrap.pem" extra
is "$rc:$err" "2:encfs-unwrap: usage: unexpected argument extra (the release response comes on standard input) (see --help)" \
	"an unexpected argument is named"
run encfs-skr --akv "$VAULT" --kid fskey import
is "$rc:$err" "2:encfs-skr: usage: unexpected argument import (a subcommand comes first: encfs-skr import ...) (see --help)" \
	"a subcommand after the options is named, with where it goes"
run encfs-attest verify --certs x a b
is "$rc:$err" "2:encfs-attest: usage: unexpected argument b (verify takes one REPORT file) (see --help)" \
	"encfs-attest: an unexpected argument is named"
run encfs-dmsetup close a b
is "$rc:$err" "2:encfs-dmsetup: usage: unexpected argument b (close takes one NAME) (see --help)" \
	"encfs-dmsetup: an unexpected argument is named"
run encfs-skr --akv "$VAULT" --kid
is "$rc:$err" "2:encfs-skr: usage: --kid needs a value (see --help)" "an option without its value is named"
# an output file that exists: exit 2 in every tool
: >"$T/exists"
run encfs-unwrap keygen --private "$T/exists"
like "$rc:$err" "2:encfs-unwrap: generating the wrapping key: writing $T/exists: it exists" "encfs-unwrap keygen: an existing file is exit 2"
run sh -c 'printf "%s\n" "$1" | encfs-skr import -c "$2" --key-hex - --keyfile-out "$3"' sh "$KEYHEX" "$T/ik.json" "$T/exists"
like "$rc:$err" "2:encfs-skr: writing $T/exists: it exists" "encfs-skr import: an existing file is exit 2"
run encfs-fetch --allow-http -o "$T/exists" http://127.0.0.1:1/c/b
like "$rc:$err" "2:encfs-fetch: $T/exists exists (use --force to replace it)" "encfs-fetch: an existing file is exit 2"

# --- encfs.sh: hints name configuration fields ---------------------------------------------------
# a blob that is not there (the fake IMDS answers 404 to any other path): encfs-fetch's hint names
# its --private option; the sidecar's line names azure_url_private instead
cat >"$T/args.json" <<EOF
{"azure_filesystems": [{"mount_point": "$T/mnt/share", "azure_url": "http://$IMDS/c/encfs.img",
  "key": {"kid": "fskey", "authority": {"endpoint": "$MAA"}, "akv": {"endpoint": "$VAULT"}}}]}
EOF
EncfsSideCarArgs=$(base64 -w0 "$T/args.json") run sh "$ENCFS_SRC/sh/encfs.sh" --allow-http
is "$rc" 3 "encfs.sh: a blob that is not there: exit 3"
like "$err" "encfs.sh: filesystem 0 ($T/mnt/share): fetch: encfs-fetch: mounting " "... one line naming the step"
like "$err" ": reading the blob's properties: " "... and what failed"
like "$err" "use azure_filesystems[0].azure_url_private or a SAS URL)" "... whose hint names the configuration field"
unlike "$err" "--private" "... not the command-line option"
ok "$([ ! -e "$T/mnt/share" ] && [ ! -e "$T/mnt/.filesystem-0" ] && echo 0 || echo 1)" "... and nothing is left"

# a LogFile that is a symbolic link (planted where the log goes, say on a volume the application
# container shares) is not followed: not by the tools (O_NOFOLLOW), not by the script's own lines
: >"$T/victim"
ln -s "$T/victim" "$T/log.link"
EncfsSideCarArgs=$(base64 -w0 "$T/args.json") LogFile=$T/log.link run sh "$ENCFS_SRC/sh/encfs.sh" --allow-http
is "$rc" 3 "encfs.sh, LogFile a symbolic link: the run itself goes as without it (exit 3)"
like "$err" "encfs.sh: filesystem 0 ($T/mnt/share): fetch: " "... its error line on standard error"
is "$(wc -c <"$T/victim" | tr -d ' ')" 0 "... and nothing appended to the file the link points to"
# a FIFO there (nobody reading it) is not waited on, by the tools or the script
mkfifo "$T/log.fifo"
EncfsSideCarArgs=$(base64 -w0 "$T/args.json") LogFile=$T/log.fifo run within 60 sh "$ENCFS_SRC/sh/encfs.sh" --allow-http
is "$rc" 3 "encfs.sh, LogFile a FIFO: the run goes as without it (exit 3), not blocked on the FIFO"
like "$err" "encfs-config: warning: LogFile=$T/log.fifo: cannot open: not a regular file (logging to stderr only)" "... the tools say why they log to stderr only"

# a tool that refuses its command line under encfs.sh refused a configuration value: exit 3, and
# its options named as fields (a stand-in encfs-fetch first on PATH says what a real one would)
mkdir "$T/stub"
cat >"$T/stub/encfs-fetch" <<'EOF'
#!/bin/sh
echo "encfs-fetch: usage: --private and --client-id need an https:// URL, not --kid (see --help)" >&2
exit 2
EOF
chmod +x "$T/stub/encfs-fetch"
EncfsSideCarArgs=$(base64 -w0 "$T/args.json") PATH="$T/stub:$PATH" run sh "$ENCFS_SRC/sh/encfs.sh" --allow-http
is "$rc:$err" "3:encfs.sh: filesystem 0 ($T/mnt/share): fetch: encfs-fetch: usage: azure_filesystems[0].azure_url_private and azure_info.identity.client_id need an https:// URL, not azure_filesystems[0].key.kid" \
	"encfs.sh: a tool's usage error (exit 2) is a configuration error (exit 3), options named as fields"

done_testing
