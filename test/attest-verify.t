#!/bin/sh
# encfs-attest verify and policy-digest: AMD's real chain and a report captured on Azure
# ($SHARED/testdata/azure-snp, skipped visibly when absent), and the project's own test chain.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err and rc
. "$ENCFS_SRC/test/lib.sh"

attest=$ENCFS_BIN/encfs-attest
fakes=$ENCFS_SRC/test/fakes
D=$SHARED/testdata/azure-snp

json_field() { # json_field FILE PATH...: a value of a JSON document (python, not sed)
	"$PYTHON" -c 'import json,sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(json.dumps(v) if isinstance(v, bool) else v)' "$@"
}

# --- policy-digest: the upstream securitypolicydigest's output ----------------------------------
printf 'package policy\nallow := true\n' >"$T/policy.rego"
base64 -w0 "$T/policy.rego" >"$T/policy.b64"
want=$(sha256 "$T/policy.rego")
run "$attest" policy-digest "$T/policy.b64"
is "$rc:$out" "0:$want" "policy-digest FILE: SHA-256 of the decoded policy"
run sh -c "'$attest' policy-digest <'$T/policy.b64'"
is "$out" "$want" "policy-digest from stdin"
base64 "$T/policy.rego" >"$T/policy.b64wrapped" # wrapped lines and a final newline, as Go reads them
run "$attest" policy-digest "$T/policy.b64wrapped"
is "$out" "$want" "policy-digest ignores line breaks"
run sh -c "printf 'not*base64' | '$attest' policy-digest -"
is "$rc" 3 "policy-digest of something that is not base64: exit 3"

# --- the real evidence ---------------------------------------------------------------------------
if [ -f "$D/snp_report.bin" ] && [ -f "$D/host-amd-cert.json" ]; then
	hostdata=cadd74f71ebb8fbf9782baab649612520f3c416bc5ce9ac768808ddc8d9b031c
	run "$attest" policy-digest "$D/security-policy.base64"
	is "$out" "$hostdata" "policy-digest of the real policy is the report's HOST_DATA"

	run sh -c "'$attest' verify --certs '$D/host-amd-cert.json' --host-data $hostdata \
		--report-data ee986ff2bd7e3f22e29f640918627816cf8e23b9d9c312767168eab68c861c71 \
		'$D/snp_report.bin' >'$T/real.json'"
	is "$rc:$err" "0:" "verify: the real report, AMD's Milan chain, expected HOST_DATA and REPORT_DATA"
	is "$(json_field "$T/real.json" host_data)" "$hostdata" "... decoded HOST_DATA"
	is "$(json_field "$T/real.json" reported_tcb raw)" 7308000000000003 "... decoded REPORTED_TCB"
	is "$(json_field "$T/real.json" version)" 2 "... version 2"
	is "$(json_field "$T/real.json" policy debug)" false "... not debuggable"

	run "$attest" verify --certs "$D/host-amd-cert.json" --host-data "$(printf '%064d' 0)" "$D/snp_report.bin"
	is "$rc" 6 "verify with another expected HOST_DATA: exit 6"
	like "$err" "HOST_DATA is not the expected value" "... says which field"

	base64 -w0 "$D/host-amd-cert.json" >"$T/certs.b64"
	run "$attest" verify --certs "$T/certs.b64" "$D/snp_report.bin"
	is "$rc" 0 "verify takes the certificates as base64 (host-amd-cert-base64 form)"
	od -An -v -tx1 "$D/snp_report.bin" | tr -d ' \n' >"$T/report.hex"
	run "$attest" verify --certs "$D/host-amd-cert.json" "$T/report.hex"
	is "$rc" 0 "verify takes the report as hex"

	# 200 single-bit flips over the signed bytes 0..0x29F: every one must fail
	"$PYTHON" - "$D/snp_report.bin" "$T/flips" <<'EOF'
import os, random, sys
rep = open(sys.argv[1], "rb").read()
os.makedirs(sys.argv[2])
rng = random.Random(20251129)
spots = rng.sample([(b, i) for b in range(0x2A0) for i in range(8)], 200)
for n, (b, i) in enumerate(spots):
    r = bytearray(rep)
    r[b] ^= 1 << i
    open(os.path.join(sys.argv[2], "%03d-%03x-%d" % (n, b, i)), "wb").write(r)
EOF
	# each is refused as a crypto failure (exit 7) with the message of the field the bit is in: the
	# signature algorithm (0x34..0x37), the signing key (0x48..0x4B), else the signature
	wrong=0
	for f in "$T"/flips/*; do
		run "$attest" verify --certs "$D/host-amd-cert.json" "$f"
		case ${f##*/}:$rc:$err in
		*-03[4-7]-*:7:"encfs-attest: verifying $f: report signature algorithm "*" is not ECDSA P-384 (1)") ;;
		*-04[89ab]-*:7:"encfs-attest: verifying $f: report SIGNING_KEY "*) ;;
		*:7:"encfs-attest: verifying $f: report signature does not verify under the VCEK (the report was altered, or the VCEK belongs to another chip or TCB)") ;;
		*)
			wrong=$((wrong + 1))
			diag "${f##*/}: exit $rc: $err"
			;;
		esac
	done
	is "$wrong" 0 "200 single-bit flips in bytes 0..0x29F: each refused with exit 7 and the message of its field"

	# a VCEK of another capture (same chain), the wrong ARK, a mismatched tcbm
	if [ -f "$D/security-context/host-amd-cert-base64" ]; then
		run "$attest" verify --certs "$D/security-context/host-amd-cert-base64" "$D/snp_report.bin"
		is "$rc" 7 "a swapped VCEK: exit 7"
		like "$err" "report signature does not verify under the VCEK" "... the signature fails"
	else
		skip "no $D/security-context"
	fi
	"$PYTHON" "$fakes/snp.py" chain "$T/chain" || bail "test chain"
	"$PYTHON" - "$D/host-amd-cert.json" "$T" <<'EOF'
import json, re, sys
thim = json.load(open(sys.argv[1]))
ask_pem = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", thim["certificateChain"], re.S)[0]
bad = dict(thim, certificateChain=ask_pem + open(sys.argv[2] + "/chain/ark.pem").read())
json.dump(bad, open(sys.argv[2] + "/wrong-ark.json", "w"))
json.dump(dict(thim, tcbm="7308000000000004"), open(sys.argv[2] + "/wrong-tcbm.json", "w"))
EOF
	run "$attest" verify --certs "$T/wrong-ark.json" "$D/snp_report.bin"
	is "$rc" 7 "the wrong ARK: exit 7"
	like "$err" "is not AMD's Milan, Genoa or Turin root" "... not a pinned root"
	# AMD's ARK-Turin (https://kdsintf.amd.com/vcek/v1/Turin/cert_chain; certificate SHA-256
	# 1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a) is pinned: behind it the
	# chain is judged on, and the Milan ASK fails as not signed by it (no Turin VCEK and report
	# signed by AMD exist here to verify a whole Turin chain)
	cat >"$T/ark-turin.pem" <<'EOF'
-----BEGIN CERTIFICATE-----
MIIGYzCCBBKgAwIBAgIDAwAAMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAIC
BQChHDAaBgkqhkiG9w0BAQgwDQYJYIZIAWUDBAICBQCiAwIBMKMDAgEBMHsxFDAS
BgNVBAsMC0VuZ2luZWVyaW5nMQswCQYDVQQGEwJVUzEUMBIGA1UEBwwLU2FudGEg
Q2xhcmExCzAJBgNVBAgMAkNBMR8wHQYDVQQKDBZBZHZhbmNlZCBNaWNybyBEZXZp
Y2VzMRIwEAYDVQQDDAlBUkstVHVyaW4wHhcNMjMwNTE1MjAwMzEyWhcNNDgwNTE1
MjAwMzEyWjB7MRQwEgYDVQQLDAtFbmdpbmVlcmluZzELMAkGA1UEBhMCVVMxFDAS
BgNVBAcMC1NhbnRhIENsYXJhMQswCQYDVQQIDAJDQTEfMB0GA1UECgwWQWR2YW5j
ZWQgTWljcm8gRGV2aWNlczESMBAGA1UEAwwJQVJLLVR1cmluMIICIjANBgkqhkiG
9w0BAQEFAAOCAg8AMIICCgKCAgEAwaAriB7EIuVc4ZB1wD3YfDxL+9eyS7+izm0J
j3W772NINCWl8Bj3w/JD2ZjmbRxWdIq/4d9iarCKorXloJUB1jRdgxqccTx1aOoi
g4+2w1XhVVJT7K457wT5ZLNJgQaxqa9Etkwjd6+9sOhlCDE9l43kQ0R2BikVJa/u
yyVOSwEk5w5tXKOuG9jvq6QtAMJasW38wlqRDaKEGtZ9VUgGon27ZuL4sTJuC/az
z9/iQBw8kEilzOl95AiTkeY5jSEBDWbAqnZk5qlM7kISKG20kgQm14mhNKDI2p2o
ua+zuAG7i52epoRF2GfU0TYk/yf+vCNB2tnechFQuP2e8bLk95ZdqPi9/UWw4JXj
tdEA4u2JYplSSUPQVAXKt6LVqujtJcM59JKr2u0XQ75KwxcMp15gSXhBfInvPAwu
AY4dEwwGqT8oIg4esPHwEsmChhYeDIxPG9R4fx9O0q6p8Gb+HXlTiS47P9YNeOpi
dOUKzDl/S1OvyhDtSL8LJc24QATFydo/iD/KUdvFTRlD0crkAMkZLoWQ8hLDGc6B
ZJXsdd7Zf2e4UW3tI/1oh/2t23Ot3zyhTcv5gDbABu0LjVe98uRnS15SMwK//lJt
9e5BqKvgABkSoABf+B4VFtPVEX0ygrYaFaI9i5ABrxnVBmzXpRb21iI1NlNCfOGU
PIhVpWECAwEAAaN+MHwwDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBRkoF9x4wwK
ZNg7deUBWZ4r7gYDRDAPBgNVHRMBAf8EBTADAQH/MDoGA1UdHwQzMDEwL6AtoCuG
KWh0dHBzOi8va2RzaW50Zi5hbWQuY29tL3ZjZWsvdjEvVHVyaW4vY3JsMEYGCSqG
SIb3DQEBCjA5oA8wDQYJYIZIAWUDBAICBQChHDAaBgkqhkiG9w0BAQgwDQYJYIZI
AWUDBAICBQCiAwIBMKMDAgEBA4ICAQA/i6Mz4IETMK8YU/HxP7Bfej5i4aXhenJo
TuiDX0nqx5CDJm9ELhskxAkJ/oLA1O92UoLybfFk4gEpKFtyfiUYex9LogZj5ix0
sb2qfSSy9CRnOktGqfpel4e3KAhLgF5n2qZrqyq/8EPPldtSjEXn78sZMlIlUcQK
SnnNCQZVFpktDfDiEiGNuitux3ghHUrcVuxSbZcrXDbsbMF7NDdfLUUS9TijrL33
lrCXJs7m8kggGyCusiRQKHli1AEswiA4xU+8xsZrByYTopiGYtbJK8s0UCCXylyO
uKSubvdAnMDJ5GDD0+DX46LSfv7fgGNSG+LOBWdif7KoQf9cIhKJtxGxZCn/tvHm
wMzu4Jnx8N2vRnT+8DpBqhxtNvdXmrZUelSeQakx4djMKvmTR8Gd25EnC4RppCkj
bmPxY3zPd1X7raalTn34EOF9DeLsC9JfzkDuojxpHWMm30wKnDo20mlDQk/zKCDa
2Zc+YjtsTZCrTbvdgCukTKNZOUUVlWRu+sO/OwrmS2p16seHTIqHEbE1LntPv3gk
CcHGDSUAKx9c0Aol+Dj9xpb2nmGqoDeJ59Ja6REkHCdw5TduXyqqMqfD1AX0/QDN
devCMKlWBRCQ7DFlog3H1a+r/kuMUZ/Ij9yyKlSgYZMJ4VgNKDgTQdcsAL0MCEMr
zpacMwFusA==
-----END CERTIFICATE-----
EOF
	is "$(openssl x509 -in "$T/ark-turin.pem" -noout -fingerprint -sha256 | tr -d ':' | sed 's/.*=//')" \
		1F084161A44BB6D93778A904877D4819CAFA5D05EF4193B2DED9DD9C73DD3F6A "ARK-Turin: AMD's certificate"
	"$PYTHON" - "$D/host-amd-cert.json" "$T" <<'EOF'
import json, re, sys
thim = json.load(open(sys.argv[1]))
ask_pem = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", thim["certificateChain"], re.S)[0]
json.dump(dict(thim, certificateChain=ask_pem + open(sys.argv[2] + "/ark-turin.pem").read()),
          open(sys.argv[2] + "/turin-ark.json", "w"))
EOF
	run "$attest" verify --certs "$T/turin-ark.json" "$D/snp_report.bin"
	is "$rc" 7 "AMD's ARK-Turin behind a Milan ASK: exit 7"
	like "$err" "ASK certificate SEV-Milan: signature does not verify under ARK-Turin" \
		"... ARK-Turin is a pinned root: the chain behind it is checked (a Milan ASK is not signed by it)"
	run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/wrong-ark.json' '$D/snp_report.bin'"
	is "$rc" 7 "the wrong ARK trusted through ENCFS_AMD_ROOTS: still exit 7"
	like "$err" "certificate SEV-Milan: signature does not verify under ARK-Test" "... AMD's ASK is not signed by it"
	run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$D/host-amd-cert.json' '$D/snp_report.bin'"
	is "$rc" 7 "ENCFS_AMD_ROOTS replaces the pinned roots: AMD's own chain no longer verifies"
	run "$attest" verify --certs "$T/wrong-tcbm.json" "$D/snp_report.bin"
	is "$rc" 6 "a tcbm other than REPORTED_TCB: exit 6"
	like "$err" "REPORTED_TCB 7308000000000003 differs from the certificates' tcbm 7308000000000004" "... both named"
else
	skip "no real evidence in $D (../shared absent): the real-report checks were not run"
fi

# --- the project's own chain ---------------------------------------------------------------------
"$PYTHON" "$fakes/snp.py" chain "$T/chain" || bail "test chain"
chip=$(printf 'verify test chip' | sha512sum | cut -c1-128)
"$PYTHON" "$fakes/snp.py" vcek "$T/chain" a --tcb 7308000000000003 --chip "$chip" || bail "VCEK a"
"$PYTHON" "$fakes/snp.py" vcek "$T/chain" b --tcb 7308000000000003 || bail "VCEK b"
"$PYTHON" "$fakes/snp.py" vcek "$T/chain" c --tcb 0a0b000000000104 --chip "$chip" || bail "VCEK c"
rd=$(printf 'runtime' | sha256sum | cut -c1-64)
hd=$(printf 'policy' | sha256sum | cut -c1-64)
for v in 2 3 5; do
	"$PYTHON" "$fakes/snp.py" report "$T/chain" a --report-data "$rd" --host-data "$hd" --version $v >"$T/v$v.bin"
	run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/chain/a.thim.json' \
		--report-data $rd --host-data $hd '$T/v$v.bin' >'$T/v$v.json'"
	is "$rc:$err" "0:encfs-attest: warning: trusting the ARK certificates of ENCFS_AMD_ROOTS=$T/chain/ark.pem instead of AMD's" \
		"own chain: a version $v report verifies (with a warning about the test roots)"
	is "$(json_field "$T/v$v.json" version)" $v "... decoded as version $v"
done
is "$(json_field "$T/v3.json" cpuid family)" 25 "version 3: CPUID family decoded"
run "$attest" verify --certs "$T/chain/a.thim.json" "$T/v2.bin"
is "$rc" 7 "own chain without ENCFS_AMD_ROOTS: exit 7 (only AMD's roots are trusted)"
run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/chain/b.thim.json' '$T/v2.bin'"
is "$rc" 7 "a VCEK of another chip: exit 7"
like "$err" "report signature does not verify" "... the signature fails"
"$PYTHON" "$fakes/snp.py" report "$T/chain" c --report-data "$rd" >"$T/c.bin"
run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/chain/c.thim.json' '$T/c.bin'"
is "$rc" 0 "a report for TCB 0a0b000000000104 verifies with its VCEK"
run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/chain/a.thim.json' '$T/c.bin'"
is "$rc" 7 "... and not with the VCEK of another TCB"
run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/chain/a.thim.json' --report-data ${rd}01 '$T/v2.bin'"
is "$rc" 6 "a REPORT_DATA expectation with one byte more than the report holds: exit 6"
run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/chain/a.thim.json' --report-data ${rd}0000 '$T/v2.bin'"
is "$rc" 0 "a REPORT_DATA prefix followed by zeros holds"
"$PYTHON" "$fakes/snp.py" report "$T/chain" a --report-data "$rd" --debug --vmpl 2 >"$T/dbg.bin"
run_to "$T/dbg.json" env ENCFS_AMD_ROOTS="$T/chain/ark.pem" "$attest" verify --certs "$T/chain/a.thim.json" "$T/dbg.bin"
is "$rc:$(json_field "$T/dbg.json" policy debug):$(json_field "$T/dbg.json" vmpl)" "0:true:2" "the debug policy bit and VMPL decode"

# Turin (CPUID family 1Ah, report version 3+): FMC, boot loader, TEE, SNP, ..., microcode
turin_chip=$(printf 'turin chip' | sha256sum | cut -c1-16)$(printf '%0112d' 0)
"$PYTHON" "$fakes/snp.py" vcek "$T/chain" t --tcb 4800000019030201 --chip "$turin_chip" --product Turin-B0 || bail "VCEK t"
"$PYTHON" "$fakes/snp.py" report "$T/chain" t --report-data "$rd" --version 3 --cpuid 1a:02:01 >"$T/turin.bin"
run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/chain/t.thim.json' '$T/turin.bin' >'$T/turin.json'"
is "$rc" 0 "a Turin report verifies with its Turin VCEK (fmcSPL, Turin TCB layout)"
is "$(json_field "$T/turin.json" reported_tcb fmc):$(json_field "$T/turin.json" reported_tcb bootloader):$(json_field "$T/turin.json" reported_tcb tee):$(json_field "$T/turin.json" reported_tcb snp):$(json_field "$T/turin.json" reported_tcb microcode)" \
	"1:2:3:25:72" "... its REPORTED_TCB decoded in the Turin layout"
"$PYTHON" "$fakes/snp.py" vcek "$T/chain" tm --tcb 4800000019030201 --chip "$turin_chip" || bail "VCEK tm"
"$PYTHON" "$fakes/snp.py" report "$T/chain" tm --report-data "$rd" --version 3 --cpuid 1a:02:01 >"$T/turin-m.bin"
run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/chain/tm.thim.json' '$T/turin-m.bin'"
is "$rc" 7 "a Turin report with a Milan-style VCEK (no fmcSPL): exit 7"
like "$err" "VCEK certificate has no readable TCB extensions for a Turin report" "... its TCB cannot be read"

# chains that are AMD-shaped but signed the wrong way, and reports signed by another key kind
for bad in pss256 pkcs1 notca; do
	case $bad in
	notca) "$PYTHON" "$fakes/snp.py" chain "$T/$bad" --bits 2048 --ask-not-ca || bail "chain $bad" ;;
	*) "$PYTHON" "$fakes/snp.py" chain "$T/$bad" --bits 2048 --ask-sig $bad || bail "chain $bad" ;;
	esac
	"$PYTHON" "$fakes/snp.py" vcek "$T/$bad" a --tcb 7308000000000003 --chip "$chip" || bail "VCEK $bad"
	"$PYTHON" "$fakes/snp.py" report "$T/$bad" a --report-data "$rd" >"$T/$bad.bin"
	run sh -c "ENCFS_AMD_ROOTS='$T/$bad/ark.pem' '$attest' verify --certs '$T/$bad/a.thim.json' '$T/$bad.bin'"
	is "$rc" 7 "an ASK signed by the ARK with $bad: exit 7"
	case $bad in
	pss256) like "$err" "ASK certificate SEV-Test: RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32, not AMD's SHA-384, MGF1-SHA-384, salt 48" "... the PSS parameters are named" ;;
	pkcs1) like "$err" "ASK certificate SEV-Test is not signed with RSASSA-PSS" "... PKCS#1 v1.5 is refused" ;;
	notca) like "$err" "ASK certificate SEV-Test is not a CA" "... an ASK must be a CA" ;;
	esac
done
for key in 1 7; do
	"$PYTHON" "$fakes/snp.py" report "$T/chain" a --report-data "$rd" --signing-key $key >"$T/signer$key.bin"
	run sh -c "ENCFS_AMD_ROOTS='$T/chain/ark.pem' '$attest' verify --certs '$T/chain/a.thim.json' '$T/signer$key.bin'"
	is "$rc" 7 "a report whose SIGNING_KEY is $key (not the VCEK): exit 7"
	like "$err" "SIGNING_KEY $key" "... named"
done

# versions the tool does not know are reported, not misread
for v in 0 4 6; do
	"$PYTHON" - "$T/v2.bin" "$T/unk$v.bin" $v <<'EOF'
import sys
r = bytearray(open(sys.argv[1], "rb").read())
r[0:4] = int(sys.argv[3]).to_bytes(4, "little")
open(sys.argv[2], "wb").write(r)
EOF
	run "$attest" verify --certs "$T/chain/a.thim.json" "$T/unk$v.bin"
	is "$rc" 6 "a version $v report: exit 6"
	like "$err" "attestation report version $v is not one this tool knows" "... and says so"
done
head -c 1000 "$T/v2.bin" >"$T/short.bin"
run "$attest" verify --certs "$T/chain/a.thim.json" "$T/short.bin"
is "$rc" 6 "a short report: exit 6"

# --- command line -------------------------------------------------------------------------------
run "$attest" verify "$T/v2.bin"
is "$rc" 2 "verify without --certs: exit 2"
run "$attest" --bogus
is "$rc" 2 "an unknown option: exit 2"
run "$attest" report --certs x
is "$rc" 2 "an option of another command: exit 2"
is "$err" "encfs-attest: usage: --certs does not apply to report (see --help)" "... named, in one usage line"
run "$attest" --help
is "$rc" 0 "--help exits 0"
like "$out" "encfs-attest [-v] verify --certs FILE [--report-data HEX] [--host-data HEX] REPORT" "--help shows the synopsis"

done_testing
