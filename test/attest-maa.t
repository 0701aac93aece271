#!/bin/sh
# encfs-attest end to end: an emulated configfs-tsm (FUSE, test/fakes/snp.py) signing with a test
# VCEK, a security context directory, the fake MAA and the fake IMDS THIM.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err, rc and port
. "$ENCFS_SRC/test/lib.sh"

fakes=$ENCFS_SRC/test/fakes
attest=$ENCFS_BIN/encfs-attest

# --- test material ------------------------------------------------------------------------------
"$PYTHON" "$fakes/fakelib.py" ca "$T/tls" leaf 127.0.0.1 localhost || bail "test CA"
"$PYTHON" "$fakes/snp.py" chain "$T/chain" || bail "test ARK/ASK"
chip=$(printf 'encfs test chip' | sha512sum | cut -c1-128)
"$PYTHON" "$fakes/snp.py" vcek "$T/chain" cur --tcb 7308000000000003 --chip "$chip" || bail "VCEK"
"$PYTHON" "$fakes/snp.py" vcek "$T/chain" old --tcb 7308000000000002 --chip "$chip" || bail "VCEK"
turin_chip=$(printf 'encfs turin chip' | sha256sum | cut -c1-16)$(printf '%0112d' 0)
"$PYTHON" "$fakes/snp.py" vcek "$T/chain" tur --tcb 4800000019030201 --chip "$turin_chip" --product Turin-B0 || bail "VCEK"
export ENCFS_CA_BUNDLE="$T/tls/ca.pem" ENCFS_AMD_ROOTS="$T/chain/ark.pem"

ctx=$T/ctx
mkdir "$ctx"
printf 'package policy\napi_version := "0.10.0"\nallow_all := true\n' | base64 -w0 >"$ctx/security-policy-base64"
base64 -w0 "$T/chain/cur.thim.json" >"$ctx/host-amd-cert-base64"
# the UVM endorsement: a COSE_Sign1 naming the launch measurement the test reports carry
"$PYTHON" "$fakes/snp.py" endorsement | base64 -w0 >"$ctx/reference-info-base64"
export UVM_SECURITY_CONTEXT_DIR="$ctx"
policy_digest=$("$attest" policy-digest "$ctx/security-policy-base64")

printf '{"keys":[{"kty":"RSA","kid":"wrapping-key","key_ops":["encrypt"],"n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]}' >"$T/jwks.json"
want_rd=$(sha256 "$T/jwks.json")0000000000000000000000000000000000000000000000000000000000000000

# Verifies a token the way a relying party does (openid-configuration of its issuer, then the JWKS
# there) and prints "claim=value" lines; fails when the signature does not verify.
cat >"$T/jwt.py" <<'EOF'
import base64, json, ssl, sys, urllib.request
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
def d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
tok = open(sys.argv[1]).read().strip()
h, p, s = tok.split(".")
header, claims = json.loads(d(h)), json.loads(d(p))
ctx = ssl.create_default_context(cafile=sys.argv[2])
conf = json.load(urllib.request.urlopen(claims["iss"] + "/.well-known/openid-configuration", context=ctx))
keys = json.load(urllib.request.urlopen(conf["jwks_uri"], context=ctx))["keys"]
k = [k for k in keys if k["kid"] == header["kid"]][0]
cert = x509.load_der_x509_certificate(base64.b64decode(k["x5c"][0]))
cert.public_key().verify(d(s), (h + "." + p).encode(), padding.PKCS1v15(), hashes.SHA256())
print("alg=%s" % header["alg"])
print("jku=%s" % header["jku"])
print("issuer=%s" % conf["issuer"])
for c in sys.argv[3:]:
    v = claims.get(c)
    print("%s=%s" % (c, json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, bool)) else v))
EOF
claim() { # claim NAME: the value from $T/claims
	sed -n "s/^$1=//p" "$T/claims"
}
check_token() { # check_token FILE: verify it and extract the claims the tests look at
	"$PYTHON" "$T/jwt.py" "$1" "$ENCFS_CA_BUNDLE" iss x-ms-runtime x-ms-sevsnpvm-hostdata \
		x-ms-sevsnpvm-reportdata x-ms-sevsnpvm-is-debuggable x-ms-sevsnpvm-vmpl \
		x-ms-attestation-type x-ms-compliance-status x-ms-sevsnpvm-launchmeasurement \
		x-ms-sevsnpvm-uvm-endorsement nonce >"$T/claims"
}
runtime_canonical=$("$PYTHON" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$T/jwks.json")

# --- services -----------------------------------------------------------------------------------
start_service maa "$PYTHON" "$fakes/maa.py" --tls "$T/tls/leaf.pem" "$T/tls/leaf.key" \
	--amd-roots "$T/chain/ark.pem" --signing-dir "$T/maa-keys"
maa=127.0.0.1:$port
start_service maafake "$PYTHON" "$fakes/maa.py" --tls "$T/tls/leaf.pem" "$T/tls/leaf.key" \
	--amd-roots "$T/chain/ark.pem" --accept-fake-reports
maafake=127.0.0.1:$port
start_service imds "$PYTHON" "$fakes/imds.py" --thim "$T/chain/cur.thim.json"
export ENCFS_IMDS_ENDPOINT="http://127.0.0.1:$port"
imds_http=$port
start_service imdsold "$PYTHON" "$fakes/imds.py" --thim "$T/chain/old.thim.json"
imds_old=$port
start_service imdsbare "$PYTHON" "$fakes/imds.py"
imds_bare=$port
start_service cache "$PYTHON" "$fakes/imds.py" --tls "$T/tls/leaf.pem" "$T/tls/leaf.key" \
	--thim "$T/chain/cur.thim.json" --thim "$T/chain/old.thim.json" --thim "$T/chain/tur.thim.json"
cache=127.0.0.1:$port

fault() { # fault HOST:PORT JSON
	curl -sS -o /dev/null --cacert "$ENCFS_CA_BUNDLE" -X POST -d "$2" "https://$1/_fault"
}
count_requests() { # count_requests BASEURL PATH: requests for PATH the service has seen
	curl -sS --cacert "$ENCFS_CA_BUNDLE" "$1/_requests" >"$T/requests.json"
	"$PYTHON" -c 'import json,sys; print(sum(1 for r in json.load(open(sys.argv[1])) if r["path"].startswith(sys.argv[2])))' \
		"$T/requests.json" "$2"
}

# --- the fake report path needs no kernel -------------------------------------------------------
run sh -c "'$attest' --maa '$maa' --fake-report <'$T/jwks.json'"
is "$rc" 6 "a fake report is refused by an MAA that verifies signatures: exit 6"
like "$err" "HTTP 400 InvalidParameter: the report is unsigned" "... MAA's code and message are shown"
like "$err" "FAKE report" "... and the message says the report was fake"

run sh -c "'$attest' --maa '$maafake' --fake-report <'$T/jwks.json' >'$T/fake.token'"
is "$rc" 0 "--fake-report against an MAA that accepts fake reports: a token"
like "$err" "FAKE REPORT" "... with a loud warning that the token is useless"
check_token "$T/fake.token"
is "$(claim x-ms-sevsnpvm-hostdata)" "$policy_digest" "... its hostdata is the policy digest"
is "$(claim x-ms-sevsnpvm-reportdata)" "$want_rd" "... its reportdata is SHA-256 of stdin"

# the REST spec's nonce is a string (the upstream sidecar sends a number): the fake takes both
cat >"$T/nonce.py" <<'EOF'
import base64, hashlib, json, ssl, sys, urllib.request
def b(x): return base64.urlsafe_b64encode(x).decode()
rt = b'{"keys":[]}'
rep = bytearray(1184)
rep[0:4] = (2).to_bytes(4, "little")
rep[0x50:0x70] = hashlib.sha256(rt).digest()
inner = json.dumps({"SnpReport": b(bytes(rep)), "VcekCertChain": b(b"")}).encode()
body = json.dumps({"report": b(inner), "runtimeData": {"data": b(rt), "dataType": "JSON"},
                   "nonce": json.loads(sys.argv[2])}).encode()
rq = urllib.request.Request(sys.argv[1] + "/attest/SevSnpVm?api-version=2022-08-01", body,
                            {"Content-Type": "application/json"})
try:
    tok = json.load(urllib.request.urlopen(rq, context=ssl.create_default_context(cafile=sys.argv[3])))["token"]
    claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
    print("200 %s" % claims.get("nonce"))
except urllib.error.HTTPError as e:
    print("%d %s" % (e.code, json.load(e)["error"]["message"]))
EOF
is "$("$PYTHON" "$T/nonce.py" "https://$maafake" '"a-nonce"' "$ENCFS_CA_BUNDLE")" "200 a-nonce" "fake MAA: a string nonce, echoed in the token"
is "$("$PYTHON" "$T/nonce.py" "https://$maafake" '18446744073709551615' "$ENCFS_CA_BUNDLE")" "200 18446744073709551615" "fake MAA: a 64-bit number nonce"
is "$("$PYTHON" "$T/nonce.py" "https://$maafake" 'true' "$ENCFS_CA_BUNDLE")" "400 nonce must be a string or an unsigned 64-bit integer" "fake MAA: any other nonce is refused"

# a refusal that is not retried (HTTP 413) is not reported as a service that kept failing
fault "$maafake" '{"path":"/attest","count":1,"status":413,"body":{"error":{"code":"RequestTooLarge","message":"too large"}}}'
before=$(count_requests "https://$maafake" /attest)
run sh -c "'$attest' --maa '$maafake' --fake-report <'$T/jwks.json'"
is "$rc" 6 "MAA 413: exit 6"
like "$err" "HTTP 413 RequestTooLarge: too large (MAA rejected the request" "... MAA's words, and no \"retry later\""
is "$(($(count_requests "https://$maafake" /attest) - before))" 1 "... after one attempt"

# --- the real code path through the emulated configfs-tsm ---------------------------------------
mkdir "$T/tsm"
: >"$T/tsm.log"
# tsm_start NAME ARGS...: the emulator on $T/tsm (snp.py tsm ARGS), up within 20 s; a start that
# fails or hangs is a failed check (not a skip: this machine has FUSE), with the emulator's log
tsm_start() {
	_tn=$1
	shift
	READY=$T/tsm.$_tn
	export READY
	"$PYTHON" "$fakes/snp.py" tsm "$T/tsm" "$T/chain" "$@" >>"$T/tsm.log" 2>&1 &
	tsm_pid=$!
	_pids="$_pids $tsm_pid" # lib.sh stops it at exit; the emulator unmounts on SIGTERM
	unset READY
	tsm_up() { [ -s "$T/tsm.$_tn" ] || ! kill -0 "$tsm_pid" 2>/dev/null; }
	await 20 "the configfs-tsm emulator ($_tn)" tsm_up || return 1
	if [ ! -s "$T/tsm.$_tn" ]; then
		ok 1 "the configfs-tsm emulator ($_tn) started"
		sed 's/^/# /' "$T/tsm.log"
		return 1
	fi
	return 0
}
tsm_ok=0
if [ -c /dev/fuse ] && "$PYTHON" -c 'import fuse' 2>/dev/null; then
	tsm_start ready cur --host-data "$policy_digest" && tsm_ok=1
else
	skip "configfs-tsm emulation needs FUSE (/dev/fuse) and python3-fuse: full run not tested"
fi
umount_tsm() {
	[ -n "${tsm_pid:-}" ] && kill "$tsm_pid" 2>/dev/null && wait "$tsm_pid" 2>/dev/null
	fusermount3 -u "$T/tsm" 2>/dev/null || true
	tsm_pid=
}

if [ "$tsm_ok" -eq 1 ]; then
	export ENCFS_TSM_DIR="$T/tsm"

	run sh -c "'$attest' --maa 'https://$maa/' <'$T/jwks.json' >'$T/token'"
	is "$rc" 0 "full run: report from configfs-tsm, evidence from the security context, MAA token"
	is "$err" "" "... and nothing on stderr"
	check_token "$T/token"
	ok $? "... the token verifies through the issuer's openid-configuration and JWKS"
	is "$(claim alg)" RS256 "... RS256"
	is "$(claim jku)" "https://$maa/certs" "... jku names the issuer's /certs"
	is "$(claim iss)" "https://$maa" "... iss is the attestation provider"
	is "$(claim x-ms-runtime)" "$runtime_canonical" "... x-ms-runtime is exactly the JWK set given on stdin"
	is "$(claim x-ms-sevsnpvm-hostdata)" "$policy_digest" "... x-ms-sevsnpvm-hostdata is the policy digest"
	is "$(claim x-ms-sevsnpvm-reportdata)" "$want_rd" "... reportdata is SHA-256 of stdin then zeros"
	is "$(claim x-ms-sevsnpvm-is-debuggable)" false "... not debuggable"
	is "$(claim x-ms-sevsnpvm-vmpl)" 0 "... VMPL 0"
	is "$(claim x-ms-attestation-type)" sevsnpvm "... attestation type sevsnpvm"
	is "$(claim x-ms-compliance-status)" azure-compliant-uvm "... compliance status from the endorsements"
	like "$(claim x-ms-sevsnpvm-uvm-endorsement)" "\"x-ms-sevsnpvm-launchmeasurement\": \"$(claim x-ms-sevsnpvm-launchmeasurement)\"" \
		"... the endorsement that names the report's launch measurement"
	case $(claim nonce) in
	'' | *[!0-9]*) ok 1 "... and the request's nonce (a decimal number): got '$(claim nonce)'" ;;
	*) ok 0 "... and the request's nonce (a decimal number)" ;;
	esac
	is "$(find "$T/tsm" -mindepth 1 | wc -l)" 0 "... the configfs-tsm entry it made is gone"
	like "$(cat "$T/tsm.log")" "tsm: rmdir encfs-attest." "... removed by rmdir, as configfs wants"

	# an endorsement of another UVM: a token, but no compliance claim for a relying party to accept
	cp "$ctx/reference-info-base64" "$T/refinfo.keep"
	"$PYTHON" "$fakes/snp.py" endorsement --measurement "$(printf '%096d' 0)" | base64 -w0 >"$ctx/reference-info-base64"
	run sh -c "'$attest' --maa '$maa' <'$T/jwks.json' >'$T/token-other-uvm'"
	is "$rc" 0 "an endorsement of another launch measurement: a token"
	check_token "$T/token-other-uvm"
	is "$(claim x-ms-compliance-status):$(claim x-ms-sevsnpvm-uvm-endorsement)" "None:None" \
		"... without x-ms-compliance-status or x-ms-sevsnpvm-uvm-endorsement"
	cp "$T/refinfo.keep" "$ctx/reference-info-base64"

	# certificates whose VCEK (the right key) claims another TCB than the report's
	"$PYTHON" "$fakes/snp.py" vcek "$T/chain" liar --tcb 7308000000000004 --chip "$chip" --key "$T/chain/cur.key" || bail "VCEK liar"
	"$PYTHON" - "$T/chain/liar.thim.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
t["tcbm"] = "7308000000000003"
json.dump(t, open(sys.argv[1], "w"))
EOF
	base64 -w0 "$T/chain/liar.thim.json" >"$ctx/host-amd-cert-base64"
	run sh -c "'$attest' --maa '$maa' <'$T/jwks.json'"
	is "$rc" 6 "a VCEK issued for another TCB than REPORTED_TCB: MAA refuses, exit 6"
	like "$err" "REPORTED_TCB 7308000000000003 is not the VCEK's TCB 7308000000000004" "... MAA says why"
	base64 -w0 "$T/chain/cur.thim.json" >"$ctx/host-amd-cert-base64"

	run_to "$T/report.bin" sh -c "'$attest' report <'$T/jwks.json'"
	is "$rc:$err" "0:" "report: the raw report from configfs-tsm"
	run "$attest" verify --certs "$T/chain/cur.thim.json" --report-data "$want_rd" \
		--host-data "$policy_digest" "$T/report.bin"
	is "$rc" 0 "report: the raw report verifies against the test chain with the expected fields"
	run sh -c "'$attest' report --hex <'$T/jwks.json'"
	is "$(printf '%s' "$out" | wc -c)" 2368 "report --hex: 2368 hex digits"

	# MAA failures
	fault "$maa" '{"path":"/attest","count":1,"status":400,"body":{"error":{"code":"InvalidParameter","message":"evidence rejected by test"}}}'
	run sh -c "'$attest' --maa '$maa' <'$T/jwks.json'"
	is "$rc" 6 "MAA 400: exit 6"
	is "$err" "encfs-attest: MAA attest at https://$maa: HTTP 400 InvalidParameter: evidence rejected by test (MAA rejected the evidence: check the report source and the security context)" \
		"... one line with MAA's code and message"

	before=$(count_requests "https://$maa" /attest)
	fault "$maa" '{"path":"/attest","count":2,"status":500}'
	run sh -c "'$attest' --maa '$maa' <'$T/jwks.json' >'$T/token2'"
	is "$rc" 0 "MAA 500 twice then 200: success"
	is "$(($(count_requests "https://$maa" /attest) - before))" 3 "... after exactly three attempts"
	check_token "$T/token2"
	is "$(claim x-ms-sevsnpvm-hostdata)" "$policy_digest" "... and a good token"

	fault "$maa" '{"path":"/attest","count":1,"delay":2}'
	run sh -c "'$attest' --maa '$maa' <'$T/jwks.json' >/dev/null"
	is "$rc" 0 "a slow MAA (2 s) still gives a token"

	# stale certificates: refreshed from IMDS THIM
	base64 -w0 "$T/chain/old.thim.json" >"$ctx/host-amd-cert-base64"
	run sh -c "'$attest' -v --maa '$maa' <'$T/jwks.json' >'$T/token3'"
	is "$rc" 0 "certificates for another TCB: refreshed from IMDS THIM, then a token"
	like "$err" "refreshing" "... the log says why"
	is "$(count_requests "http://127.0.0.1:$imds_http" /metadata/THIM)" 1 "... one THIM request"

	n0=$(grep -c 'tsm: report for' "$T/tsm.log")
	run sh -c "ENCFS_IMDS_ENDPOINT=http://127.0.0.1:$imds_old '$attest' --maa '$maa' <'$T/jwks.json'"
	is "$rc" 6 "THIM still offers the old TCB: exit 6"
	is "$err" "encfs-attest: matching certificates to the report: REPORTED_TCB 7308000000000003, but the certificate cache offers the VCEK for TCB 7308000000000002 (the host's TCB changed; retry later)" \
		"... naming both values"
	is "$(($(grep -c 'tsm: report for' "$T/tsm.log") - n0))" 2 "... after fetching the report once more"

	# no certificates in the context: THIM through the certcache forms
	rm "$ctx/host-amd-cert-base64"
	for form in AzCache LocalTHIM AMD; do
		case $form in
		AzCache) cc="{\"endpoint_type\":\"AzCache\",\"endpoint\":\"$cache\",\"tee_type\":\"SevSnpVM\",\"api_version\":\"api-version=2020-10-15-preview\"}" ;;
		LocalTHIM) cc="{\"endpoint_type\":\"LocalTHIM\",\"endpoint\":\"$cache/metadata/THIM/amd/certification\"}" ;;
		AMD) cc="{\"endpoint_type\":\"AMD\",\"endpoint\":\"https://$cache/vcek/v1\",\"tee_type\":\"Milan\"}" ;;
		esac
		run sh -c "ENCFS_IMDS_ENDPOINT=http://127.0.0.1:1 '$attest' --maa '$maa' --certcache '$cc' <'$T/jwks.json' >'$T/token4'"
		is "$rc" 0 "no certificates in the context: fetched through certcache $form"
		check_token "$T/token4"
		is "$(claim x-ms-sevsnpvm-reportdata)" "$want_rd" "... and the token is for our report"
	done
	run sh -c "'$attest' --maa '$maa' <'$T/jwks.json' >/dev/null"
	is "$rc" 0 "no certificates and no certcache: IMDS THIM"
	run sh -c "ENCFS_IMDS_ENDPOINT=http://127.0.0.1:$imds_bare '$attest' --maa '$maa' <'$T/jwks.json'"
	is "$rc" 6 "no certificates anywhere: exit 6"
	like "$err" "IMDS THIM http://127.0.0.1:$imds_bare/metadata/THIM/amd/certification: HTTP 404" "... with THIM's answer"
	base64 -w0 "$T/chain/cur.thim.json" >"$ctx/host-amd-cert-base64"

	umount_tsm
	# the kernel refusing (firmware error) and another writer on the entry
	# a Turin host (report version 3, CPUID family 1Ah): its VCEK from AMD's KDS by the 8-byte hwID
	# and the FMC SPL, and MAA reads REPORTED_TCB in the Turin layout
	tsm_start turin tur --host-data "$policy_digest" --version 3 --cpuid 1a:02:01
	rm "$ctx/host-amd-cert-base64"
	cc="{\"endpoint_type\":\"AMD\",\"endpoint\":\"https://$cache/vcek/v1\",\"tee_type\":\"Turin\"}"
	run sh -c "ENCFS_IMDS_ENDPOINT=http://127.0.0.1:1 '$attest' --maa '$maa' --certcache '$cc' <'$T/jwks.json' >'$T/token-turin'"
	is "$rc" 0 "a Turin report: its VCEK from the AMD KDS form, then a token"
	curl -sS --cacert "$ENCFS_CA_BUNDLE" "https://$cache/_requests" >"$T/requests.json"
	like "$("$PYTHON" -c 'import json,sys; print(" ".join(r["path"] + "?" + "&".join(k + "=" + v for k, v in sorted(r["query"].items())) for r in json.load(open(sys.argv[1])) if "Turin" in r["path"]))' "$T/requests.json")" \
		"/vcek/v1/Turin/${turin_chip%"$(printf '%0112d' 0)"}?blSPL=2&fmcSPL=1&snpSPL=25&teeSPL=3&ucodeSPL=72" "... asked for by the 8-byte hwID and five SPLs"
	base64 -w0 "$T/chain/cur.thim.json" >"$ctx/host-amd-cert-base64"
	umount_tsm

	for mode in fail race badgen stale; do
		case $mode in
		fail) set -- --fail-errno 5 ;;
		race) set -- --race ;;
		badgen) set -- --bad-generation ;;
		stale) set -- --stale ;;
		esac
		tsm_start "$mode" cur "$@"
		run sh -c "'$attest' --maa '$maa' <'$T/jwks.json'"
		is "$rc" 6 "configfs-tsm $mode: exit 6"
		case $mode in
		fail) like "$err" "outblob: Input/output error (the SEV firmware refused the request" "... says the firmware refused" ;;
		race) like "$err" "another process wrote to the entry" "... says the generation moved under it" ;;
		badgen) like "$err" "generation: \"unknown\" is not a number" "... names what generation held" ;;
		stale) like "$err" "the report does not carry our REPORT_DATA" "... refuses a report for other data" ;;
		esac
		is "$(find "$T/tsm" -mindepth 1 | wc -l)" 0 "... and leaves no entry behind"
		umount_tsm
	done
fi
umount_tsm

# --- what must fail early -----------------------------------------------------------------------
run sh -c "env -u UVM_SECURITY_CONTEXT_DIR '$attest' --maa '$maa' <'$T/jwks.json'"
is "$rc" 6 "no evidence at all: exit 6"
like "$err" "no UVM security context: UVM_SECURITY_CONTEXT_DIR is unset, there is no /security-context-* directory" \
	"... naming what is missing"

mkdir "$T/ctx2"
cp "$ctx/security-policy-base64" "$ctx/host-amd-cert-base64" "$T/ctx2/"
run sh -c "UVM_SECURITY_CONTEXT_DIR='$T/ctx2' '$attest' --maa '$maa' <'$T/jwks.json'"
is "$rc" 6 "no reference info: exit 6"
like "$err" "$T/ctx2 has no UVM reference info (reference-info-base64" "... naming the file"

run sh -c "env -u UVM_SECURITY_CONTEXT_DIR UVM_SECURITY_POLICY=\$(cat '$ctx/security-policy-base64') UVM_REFERENCE_INFO=\$(cat '$ctx/reference-info-base64') '$attest' --maa '$maafake' --fake-report <'$T/jwks.json' >'$T/token5'"
is "$rc" 0 "evidence from the environment (UVM_SECURITY_POLICY, UVM_REFERENCE_INFO)"
check_token "$T/token5"
is "$(claim x-ms-sevsnpvm-hostdata)" "$policy_digest" "... hostdata from UVM_SECURITY_POLICY"

# a security context directory with a long path (PATH_MAX allows 4096 bytes)
long=$T
for _ in 1 2 3 4 5 6; do long=$long/$(printf '%0200d' 0); done
mkdir -p "$long"
cp "$ctx/security-policy-base64" "$ctx/reference-info-base64" "$long/"
run sh -c "UVM_SECURITY_CONTEXT_DIR='$long' '$attest' --maa '$maafake' --fake-report <'$T/jwks.json' >'$T/token6'"
is "$rc" 0 "a security context directory with a 1200-byte path is read"
rm -rf "${T:?}/$(printf '%0200d' 0)"

run sh -c "printf 'not json' | '$attest' --maa '$maa' --fake-report"
is "$rc" 3 "runtime data that is not JSON: exit 3"
run sh -c "'$attest' --maa 'http://$maa' <'$T/jwks.json'"
is "$rc" 2 "an http:// MAA endpoint: exit 2"
like "$err" "only https is allowed" "... https only"
run sh -c "'$attest' <'$T/jwks.json'"
is "$rc" 2 "no --maa: exit 2"
run sh -c "'$attest' --maa '$maa' --certcache '{\"endpoint_type\":\"Nope\",\"endpoint\":\"x\"}' <'$T/jwks.json'"
is "$rc" 3 "a certcache with an unknown endpoint_type: exit 3"
like "$err" "endpoint_type \"Nope\" is not AzCache, LocalTHIM or AMD" "... named"

done_testing
