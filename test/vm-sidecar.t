#!/bin/sh
# The sidecar end to end, in a real kernel: encfs.sh in the test VM (Debian's kernel under qemu)
# attests with a fake SNP report to the fake MAA, gets its keys released by a fake Key Vault
# (oct-HSM) and a fake Managed HSM (RSA-HSM, HKDF-derived), fetches the LUKS2 images from Azurite,
# opens them with dm-crypt, mounts them and reads the file back; then SIGTERM leaves nothing.
# The blobs are mounted (encfs-fetch --mount), one read-write: what is written there is in the blob
# at the stop, and a second run sees it.  Every failure (release policy not met, wrong key,
# missing blob, bad configuration, a second read-write mount)
# exits with its documented status and one error line naming the step, and leaves nothing behind;
# so does SIGTERM at any moment of a start.  No key or token reaches the trace log, a command
# line or an environment.
#
# The test runs in a network namespace of its own (test/e2e/netns.sh; it re-executes itself
# there): only lo, no route.  The services listen on 127.0.0.1 in it, and the VM reaches exactly
# their ports (run.sh --forward).  The images are made here with encfs-mkimage, sparse, and
# uploaded as page blobs of their written pages.  The checks in the guest are in
# test/vm/sidecar-guest.sh; they come back renumbered among the host's own checks.  One boot.
# shellcheck disable=SC1091,SC2154 # lib.sh and env.sh are found at run time; they set T, out, err, rc

: "${ENCFS_SRC:=$(cd "$(dirname "$0")/.." && pwd)}"
if [ -z "${ENCFS_NETNS:-}" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "1..0 # SKIP needs root (a network namespace of its own)"
		exit 0
	fi
	if ! PATH=$PATH:/usr/sbin:/sbin command -v ip >/dev/null; then
		echo "1..0 # SKIP ip (iproute2) is not installed (make deps)"
		exit 0
	fi
	exec sh "$ENCFS_SRC/test/e2e/netns.sh" sh "$0" "$@"
fi
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/e2e/env.sh"

missing=$(e2e_missing)
[ -z "$missing" ] || skip_all "missing: $missing (make deps)"
t_start=$(date +%s)

e2e_isolated
ok $? "the test runs in its own network namespace ($ENCFS_NETNS): only lo, no route"
e2e_services || bail "the fake services did not start"

# --- fixtures --------------------------------------------------------------------------------
POLICY='package policy

api_version := "0.10.0"
framework_version := "0.2.3"
mount_device := {"allowed": true}'
e2e_context "$T/ctx" "$POLICY" || bail "cannot make the security context"
e2e_context "$T/other" "$POLICY
# another policy" || bail "cannot make the other security context"
DIGEST=$(cat "$T/ctx.digest")
is "$DIGEST" "$(base64 -d "$T/ctx/security-policy-base64" | sha256sum | cut -d' ' -f1)" \
	"the policy digest is the SHA-256 of the decoded policy"

key() { head -c 32 /dev/urandom >"$T/$1.key"; }
# image NAME KEY: $T/NAME.img, encrypted with $T/KEY.key, uploaded as private/NAME.img
image() {
	e2e_image "$T/$1.img" "$T/$2.key" "$1" || bail "cannot make $1.img"
	e2e_upload "$T/$1.img" "$1.img" || bail "cannot upload $1.img"
}
# import OUT NAME KTY VAULT|HSM HOSTDATA OPTION...
import() {
	_o=$1
	shift
	e2e_import "$T/$_o.import" "$@" 2>"$T/$_o.import.err" || bail "cannot import $1: $(cat "$T/$_o.import.err")"
}
jfield() { "$PYTHON" -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$@"; }

key oct
image oct oct
import oct fskey oct-HSM VAULT "$DIGEST" --key-file "$T/oct.key"
import rsa rsakey RSA-HSM HSM "$DIGEST" --rsa-pem-out "$T/rsa.pem" --keyfile-out "$T/rsa.key"
is "$(jfield "$T/rsa.import" key_derivation salt) / $(jfield "$T/rsa.import" key_derivation label)" \
	"$E2E_SALT / $E2E_LABEL" "the RSA-HSM key is imported with the configuration's salt and label"
image rsa rsa
key raw
image raw raw
key denied
image denied denied
import denied deniedkey oct-HSM VAULT "$(cat "$T/other.digest")" --key-file "$T/denied.key"
key wrong
key other
image wrong other
import wrong wrongkey oct-HSM VAULT "$DIGEST" --key-file "$T/wrong.key"
key race
image race race
import race racekey oct-HSM VAULT "$DIGEST" --key-file "$T/race.key"
# ... and every release of racekey for 10 s: meanwhile the guest plays another sidecar, which
# creates the device or the link this one is about to make
curl -sS --cacert "$CA" -X POST -d '{"path": "/keys/racekey/release", "delay": 10, "count": -1}' \
	"https://127.0.0.1:$VAULT_PORT/_fault" || bail "cannot set the vault's delay"
# read_write: an image with room to write in
key rw
mkdir "$T/rwtree" || bail "cannot make the tree of rw.img"
printf '%s\n' "$TEST_TEXT" >"$T/rwtree/test.txt"
echo rw >"$T/rwtree/which.txt"
encfs-mkimage --key-file "$T/rw.key" --free 24M -o "$T/rw.img" "$T/rwtree" >"$T/rw.out" ||
	bail "cannot make rw.img"
e2e_upload "$T/rw.img" rw.img || bail "cannot upload rw.img"
import rw rwkey oct-HSM VAULT "$DIGEST" --key-file "$T/rw.key"
key slow
image slow slow
import slow slowkey oct-HSM VAULT "$DIGEST" --key-file "$T/slow.key"
# the vault holds every release of slowkey for two minutes: the guest stops a start meanwhile
curl -sS --cacert "$CA" -X POST -d '{"path": "/keys/slowkey/release", "delay": 120, "count": -1}' \
	"https://127.0.0.1:$VAULT_PORT/_fault" || bail "cannot set the vault's delay"
"$PYTHON" -c 'import sys
from cryptography.hazmat.primitives import serialization
k = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
d = k.private_numbers().d
open(sys.argv[2], "wb").write(d.to_bytes((d.bit_length() + 7) // 8, "big"))' "$T/rsa.pem" "$T/rsa.d"

cryptsetup isLuks --type luks2 "$T/oct.img"
ok $? "the images are LUKS2"
is "$(grep -c "$TEST_TEXT" "$T/oct.img")" 0 "the images do not hold the file's text in the clear"

# --- configurations --------------------------------------------------------------------------
edit() { # edit JSON PYTHON-STATEMENT: the JSON object d, changed
	"$PYTHON" -c 'import json, sys
d = json.loads(sys.argv[1])
exec(sys.argv[2])
print(json.dumps(d))' "$1" "$2"
}
mkdir "$T/cfg"
fs_oct=$(e2e_fs /mnt/remote/share oct.img fskey oct-HSM VAULT)
fs_rsa=$(e2e_fs /mnt/remote/rsa rsa.img rsakey RSA-HSM HSM)
# the success configuration also has a user-assigned identity (asked of IMDS for the blobs and the
# Managed HSM) and, for the Key Vault, an access token of its own (akv.bearer_token, which encfs.sh
# hands to encfs-skr on a descriptor)
CLIENT_ID=0e2e0e2e-1111-4222-8333-444455556666
"$PYTHON" "$FAKES/aad.py" access-token --aud https://vault.azure.net --appid "$CLIENT_ID" >"$T/bearer" ||
	bail "cannot make an access token"
# and the Managed HSM's image comes through a SAS URL (azure_url_private false): its query is a
# credential, which encfs.sh hands to encfs-fetch on standard input, never on a command line
rsa_sas=$(blobjs sas "$az_ep" private rsa.img) || bail "cannot make a SAS URL"
rsa_query=${rsa_sas#*\?}
rsa_sig=$(printf '%s' "$rsa_query" | sed -n 's/.*sig=\([^&]*\).*/\1/p')
[ -n "$rsa_sig" ] || bail "the SAS URL has no signature: $rsa_query"
fs_rsa_sas=$(edit "$fs_rsa" "d['azure_url'] += '?' + '$rsa_query'; d['azure_url_private'] = False")
e2e_args "$T/cfg/ok" "$(edit "$fs_oct" "d['key']['akv']['bearer_token'] = open('$T/bearer').read().strip()")" \
	"$fs_rsa_sas"
"$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
d["azure_info"] = {"identity": {"client_id": sys.argv[2]}}
json.dump(d, open(sys.argv[1], "w"))' "$T/cfg/ok.json" "$CLIENT_ID"
base64 -w0 "$T/cfg/ok.json" >"$T/cfg/ok"
e2e_args "$T/cfg/raw" "$(edit "$(e2e_fs /mnt/raw raw.img - oct-HSM VAULT)" \
	"del d['key']; d['raw_key'] = open('$T/raw.key', 'rb').read().hex()")"
e2e_args "$T/cfg/denied" "$(e2e_fs /mnt/remote/first oct.img fskey oct-HSM VAULT)" \
	"$(e2e_fs /mnt/remote/second denied.img deniedkey oct-HSM VAULT)"
e2e_args "$T/cfg/wrongkey" "$(e2e_fs /mnt/wrong wrong.img wrongkey oct-HSM VAULT)"
e2e_args "$T/cfg/missing" "$(e2e_fs /mnt/missing nosuch.img fskey oct-HSM VAULT)"
e2e_args "$T/cfg/badconfig" "$(edit "$fs_oct" "d['mount_point'] = 'mnt/relative'")"
e2e_args "$T/cfg/dlrw" "$fs_oct" "$(edit "$fs_rsa" "d['read_write'] = True; d['download'] = True")"
fs_rw=$(edit "$(e2e_fs /mnt/remote/rw rw.img rwkey oct-HSM VAULT)" "d['read_write'] = True")
e2e_args "$T/cfg/rw" "$fs_oct" "$fs_rw"
e2e_args "$T/cfg/slowdl" "$(edit "$(e2e_fs /mnt/slow slow.img slowkey oct-HSM VAULT)" "d['download'] = True")"
e2e_args "$T/cfg/slow" "$(e2e_fs /mnt/slow slow.img slowkey oct-HSM VAULT)"
e2e_args "$T/cfg/race" "$(e2e_fs /mnt/race race.img racekey oct-HSM VAULT)"
for c in "$T"/cfg/*.json; do
	encfs-config --allow-raw-key -f "$c" check 2>/dev/null || [ "${c##*/}" = badconfig.json ] || [ "${c##*/}" = dlrw.json ] ||
		bail "configuration ${c##*/} is not valid: $(encfs-config --allow-raw-key -f "$c" check 2>&1)"
	rm -f "$c"
done
diag "fixtures and services ready in $(($(date +%s) - t_start)) s"

# --- the VM ----------------------------------------------------------------------------------
truncate -s 64M "$T/export.img"
t_vm=$(date +%s)
# shellcheck disable=SC2046 # e2e_vm_net prints options
sh "$ENCFS_SRC/test/vm/run.sh" --timeout 1500 --mem 768 $(e2e_vm_net) --disk "$T/export.img" \
	--file "$T/cfg" --file "$T/ca/ca.pem" --file "$T/ctx" --file "$T/rw.key" --env "IMDS_PORT=$IMDS_PORT" \
	"$ENCFS_SRC/test/vm/sidecar-guest.sh" >"$T/guest.tap" 2>"$T/guest.err"
vm_rc=$?
t_vm_end=$(date +%s)

# The guest's checks, renumbered among ours; its comments pass through.
e2e_guest_tap "$vm_rc" "$T/guest.tap" "$T/guest.err"

# --- what the guest saw: the trace log, the processes ----------------------------------------
mkdir "$T/export"
tar -xf "$T/export.img" -C "$T/export" 2>/dev/null
log=$T/export/sidecar.log
ok "$([ -s "$log" ] && echo 0 || echo 1)" "the trace log came back from the guest"
kcv() { sha256sum "$T/$1.key" | cut -c1-8; }
like "$(cat "$log")" "key check value $(kcv oct) " "the log shows the oct-HSM key's check value only"
like "$(cat "$log")" "key check value $(kcv rsa) " "the log shows the RSA-HSM derived key's check value only"
for t in encfs.sh encfs-config encfs-fetch encfs-attest encfs-skr encfs-unwrap encfs-dmsetup; do
	ok "$(grep -q "^[0-9TZ:-]* $t: " "$log" && echo 0 || echo 1)" "LogFile has the lines of $t"
done
ok "$(grep -q ': trace: ' "$log" && echo 0 || echo 1)" "LogLevel=trace reached the tools"
e2e_requests vault "$VAULT_PORT"
e2e_requests hsm "$HSM_PORT"
"$PYTHON" "$E2E/leaks.py" --key "$T/oct.key" --key "$T/rsa.key" --key "$T/rsa.d" \
	--tokens-from "$T/vault.requests" --tokens-from "$T/hsm.requests" --secret "$(cut -d. -f3 "$T/bearer")" \
	--secret "$rsa_sig" "$log" >"$T/leaks.log"
is "$(cat "$T/leaks.log")" "" "no key, whole token, token signature or SAS signature in the trace log"
nprocs=$(find "$T/export/procs" -name '*.cmdline' | wc -l)
seen=$(for t in encfs-fetch encfs-attest encfs-skr encfs-unwrap encfs-dmsetup; do
	cat "$T"/export/procs/*.cmdline | tr '\0' ' ' | grep -q "$t " && printf '%s ' "$t"
done)
is "$seen" "encfs-fetch encfs-attest encfs-skr encfs-unwrap encfs-dmsetup " \
	"the processes of a start were sampled ($nprocs command lines and environments)"
"$PYTHON" "$E2E/leaks.py" --key "$T/oct.key" --key "$T/rsa.key" --key "$T/rsa.d" \
	--tokens-from "$T/vault.requests" --tokens-from "$T/hsm.requests" "$T"/export/procs/* >"$T/leaks.procs"
is "$(cat "$T/leaks.procs")" "" "no key or token in any command line or environment"
# the configuration holds akv.bearer_token (and may hold raw_key): only encfs-config gets it
with_args=$(for f in "$T"/export/procs/*-encfs-fetch.environ "$T"/export/procs/*-encfs-attest.environ \
	"$T"/export/procs/*-encfs-skr.environ "$T"/export/procs/*-encfs-unwrap.environ \
	"$T"/export/procs/*-encfs-dmsetup.environ; do
	[ -f "$f" ] && tr '\0' '\n' <"$f" | grep -q '^EncfsSideCarArgs=' && printf '%s ' "${f##*/}"
done)
is "$with_args" "" "EncfsSideCarArgs (with the bearer token) is in no environment but encfs-config's"
fetches=$(for f in "$T"/export/procs/*-encfs-fetch.cmdline; do
	[ -f "$f" ] && tr '\0' ' ' <"$f" | grep -q ' --mount [^ ]*blob-1 .*- $' && printf 'sas-fetch '
done)
like "$fetches" "sas-fetch" "the SAS filesystem's encfs-fetch was sampled, its URL given as -"
is "$(grep -l -F -e "$rsa_sig" "$T"/export/procs/* 2>/dev/null | sed 's|.*/||' | tr '\n' ' ')" "" \
	"the SAS signature is in no command line or environment"
e2e_requests imds "$IMDS_PORT" http
is "$("$PYTHON" -c 'import json, sys
reqs = json.load(open(sys.argv[1])) + json.load(open(sys.argv[2]))
seen = {r["headers"].get("Authorization") for r in reqs
        if r["path"] == "/keys/fskey/release" and r["method"] == "POST"}
print("config token" if "Bearer " + open(sys.argv[3]).read().strip() in seen else sorted(seen))' \
	"$T/vault.requests" "$T/hsm.requests" "$T/bearer")" "config token" \
	"akv.bearer_token of the configuration is what the vault got for fskey (handed over on a descriptor)"
is "$("$PYTHON" -c 'import json, sys
print(" ".join(sorted({r["query"].get("resource", "") for r in json.load(open(sys.argv[1]))
                       if r["query"].get("client_id") == sys.argv[2]})))' "$T/imds.requests" "$CLIENT_ID")" \
	"https://managedhsm.azure.net https://storage.azure.com" \
	"IMDS was asked for the configuration's client_id, for Blob Storage and the Managed HSM (not the vault)"
releases=$("$PYTHON" -c 'import json, sys
print(sorted({r["path"] for f in sys.argv[1:] for r in json.load(open(f)) if r["path"].endswith("/release")}))' \
	"$T/vault.requests" "$T/hsm.requests")
is "$releases" "['/keys/deniedkey/release', '/keys/fskey/release', '/keys/racekey/release', '/keys/rsakey/release', '/keys/rwkey/release', '/keys/slowkey/release', '/keys/wrongkey/release']" \
	"the vaults were asked for exactly the keys of the scenarios"

diag "vm-sidecar: $(($(date +%s) - t_start)) s in all, the VM $((t_vm_end - t_vm)) s; $(grep '^# vm:' "$T/guest.tap" | sed 's/^# //')"
done_testing
