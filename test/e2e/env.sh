# The world of the end-to-end test (test/vm-sidecar.t) and the demo (test/demo.sh): the fake Azure
# services, the test CA, LUKS2 images of an ext4 filesystem made with encfs-mkimage, their page blobs
# and their keys in the fake vaults.  POSIX sh, sourced after test/lib.sh by a script that runs in
# a network namespace of its own (test/e2e/netns.sh): every service listens on 127.0.0.1 there,
# and the VM reaches them through run.sh --forward, under the host names below.
# shellcheck shell=sh
# shellcheck disable=SC2034,SC2154 # results for the sourcing script; port and T come from lib.sh

E2E=$ENCFS_SRC/test/e2e
FAKES=$ENCFS_SRC/test/fakes
# The names the guest uses (run.sh --host maps them to 10.0.2.100, which forwards each port to
# 127.0.0.1 here).  Not *.localhost: curl resolves those to the guest's own loopback by itself.
MAA_HOST=maa.attest.test
VAULT_HOST=myvault.vault.test
HSM_HOST=myhsm.managedhsm.test
BLOB_HOST=devstoreaccount1.blob.test
GUEST_GW=10.0.2.100
TEST_TEXT="This is a file inside the filesystem."
# shellcheck disable=SC1091
. "$FAKES/blobenv.sh"

# e2e_missing: what this machine lacks to run the end-to-end world (empty when nothing)
e2e_missing() {
	_m=""
	[ "$(id -u)" -eq 0 ] || _m="$_m root"
	for _c in ip cryptsetup mke2fs qemu-system-x86_64 busybox curl base64; do
		PATH=$PATH:/usr/sbin:/sbin command -v $_c >/dev/null 2>&1 || _m="$_m $_c"
	done
	"$PYTHON" -c 'import cryptography' 2>/dev/null || _m="$_m python3-cryptography"
	blob_env_ready || _m="$_m Azurite/the-Azure-SDK"
	for _t in encfs-config encfs-fetch encfs-attest encfs-skr encfs-unwrap encfs-dmsetup encfs-mkimage; do
		[ -x "$ENCFS_BIN/$_t" ] || _m="$_m $_t"
	done
	echo "${_m# }"
}

# e2e_isolated: true when this runs in a namespace whose only link is lo and that has no route
e2e_isolated() {
	[ -n "${ENCFS_NETNS:-}" ] || return 1
	[ "$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')" = "lo " ] || return 1
	[ -z "$(ip route show)" ] && [ -z "$(ip -6 route show | grep -v '^local\|^::1\|^fe80' || true)" ]
}

# e2e_services: the test CA in $T/ca (leaves for the services' host names and 127.0.0.1) and
# the services, each on a free port of 127.0.0.1: MAA (accepting the fake reports of
# encfs-attest --fake-report), a Key Vault and a Managed HSM (akv.py), IMDS (managed identity
# tokens, plain http as the real one), Azurite over https with OAuth, and a private container
# "private" in it.  Sets MAA_PORT VAULT_PORT HSM_PORT IMDS_PORT AZ_PORT, and for the tools run
# here ENCFS_CA_BUNDLE and ENCFS_IMDS_ENDPOINT.
e2e_services() {
	CA=$T/ca/ca.pem
	"$PYTHON" "$FAKES/fakelib.py" ca "$T/ca" maa "$MAA_HOST" 127.0.0.1 || return 1
	"$PYTHON" "$FAKES/fakelib.py" ca "$T/ca" azurite "$BLOB_HOST" 127.0.0.1 || return 1
	start_service maa "$PYTHON" "$FAKES/maa.py" --tls "$T/ca/maa.pem" "$T/ca/maa.key" --accept-fake-reports
	MAA_PORT=$port
	start_service vault "$PYTHON" "$FAKES/akv.py" --certs "$T/ca" --host "$VAULT_HOST"
	VAULT_PORT=$port
	start_service hsm "$PYTHON" "$FAKES/akv.py" --certs "$T/ca" --host "$HSM_HOST" --mode mhsm
	HSM_PORT=$port
	start_service imds "$PYTHON" "$FAKES/imds.py"
	IMDS_PORT=$port
	# (azurite.sh reads its log before Azurite has made it: give it an empty one to read)
	mkdir -p "$T/azurite" && : >"$T/azurite/azurite.out"
	azurite_start azurite https
	AZ_PORT=$az_port
	ENCFS_CA_BUNDLE=$CA
	ENCFS_IMDS_ENDPOINT=http://127.0.0.1:$IMDS_PORT
	export ENCFS_CA_BUNDLE ENCFS_IMDS_ENDPOINT
	blobjs container "$az_ep" private || return 1
}

# e2e_vm_net: the run.sh options that give the VM the services: one forward per port, the names
e2e_vm_net() {
	for _p in "$MAA_PORT" "$VAULT_PORT" "$HSM_PORT" "$IMDS_PORT" "$AZ_PORT"; do
		printf ' --forward %s' "$_p"
	done
	for _h in "$MAA_HOST" "$VAULT_HOST" "$HSM_HOST" "$BLOB_HOST"; do
		printf ' --host %s' "$_h"
	done
}

# e2e_context DIR POLICY_TEXT: a security context directory as a confidential container group
# gets it: security-policy-base64, and reference-info-base64, a UVM endorsement (snp.py) naming
# the launch measurement of encfs-attest's fake report, so that MAA finds the UVM compliant.  The
# policy digest, which --fake-report makes the report's HOST_DATA, goes to DIR.digest.
e2e_context() {
	mkdir -p "$1"
	printf '%s' "$2" | base64 -w0 >"$1/security-policy-base64"
	_m=$(echo '{}' | UVM_SECURITY_CONTEXT_DIR=$1 encfs-attest report --fake-report --hex 2>/dev/null |
		cut -c $((0x90 * 2 + 1))-$((0xC0 * 2))) || return 1
	[ ${#_m} -eq 96 ] || return 1
	"$PYTHON" "$FAKES/snp.py" endorsement --measurement "$_m" | base64 -w0 >"$1/reference-info-base64" || return 1
	encfs-attest policy-digest "$1/security-policy-base64" >"$1.digest"
}

# e2e_image OUT KEYFILE [NAME]: a LUKS2 image of an ext4 filesystem holding test.txt (TEST_TEXT)
# and which.txt (NAME), opened by KEYFILE's bytes, made as an operator makes one: encfs-mkimage,
# without root or device-mapper, sparse (pbkdf2 with 1000 iterations: TCG is slow, and the KDF is
# not what is tested here).  What encfs-mkimage prints goes to OUT.out.
e2e_image() {
	_d=$T/tree-$$-${1##*/}
	rm -rf "$_d"
	mkdir -p "$_d"
	printf '%s\n' "$TEST_TEXT" >"$_d/test.txt"
	printf '%s\n' "${3:-${1##*/}}" >"$_d/which.txt"
	rm -f "$1"
	encfs-mkimage --key-file "$2" -o "$1" "$_d" >"$1.out" || return 1
	rm -rf "$_d"
}

# e2e_upload FILE BLOB: FILE as the page blob private/BLOB, uploaded as an operator uploads it:
# encfs-fetch --upload (only the written pages), the SAS URL that may write on its standard input
e2e_upload() {
	_sas=$(blobjs sas-write "$az_ep" private "$2") || return 1
	printf '%s\n' "$_sas" | encfs-fetch --cacert "$CA" --upload "$1" -
}

# e2e_import OUT NAME KTY VAULT|HSM HOSTDATA [encfs-skr import option]...: imports key NAME with
# the upstream sidecar's release policy (x-ms-sevsnpvm-hostdata = HOSTDATA, a compliant UVM, not
# debuggable, VMPL 0) whose authority is the fake MAA (it issues tokens as https://127.0.0.1:PORT);
# encfs-skr's JSON answer goes to OUT.  RSA-HSM keys get a fixed salt and label.
e2e_import() {
	_out=$1 _name=$2 _kty=$3 _where=$4 _hostdata=$5
	shift 5
	if [ "$_where" = HSM ]; then
		_ep=127.0.0.1:$HSM_PORT
		set -- "$@" --resource https://managedhsm.azure.net
	else
		_ep=127.0.0.1:$VAULT_PORT
	fi
	_deriv=""
	[ "${_kty#RSA}" = "$_kty" ] ||
		_deriv=', "key_derivation": {"salt": "'"$E2E_SALT"'", "label": "'"$E2E_LABEL"'"}'
	cat >"$_out.config" <<EOF
{
  "key": {
    "kid": "$_name",
    "kty": "$_kty",
    "authority": {"endpoint": "127.0.0.1:$MAA_PORT"},
    "akv": {"endpoint": "$_ep", "api_version": "api-version=7.4"}
  }$_deriv,
  "claims": [[
    {"claim": "x-ms-sevsnpvm-hostdata", "equals": "$_hostdata"},
    {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
    {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"},
    {"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"}
  ]]
}
EOF
	encfs-skr import -c "$_out.config" "$@" >"$_out"
}
E2E_SALT=6e636673e2e0000000000000000000000000000000000000000000000000a5a5
E2E_LABEL="Symmetric Encryption Key"

# e2e_fs JSON-FIELDS...: one azure_filesystems entry (for the guest's names and ports)
# e2e_fs MOUNT BLOB KID KTY VAULT|HSM
e2e_fs() {
	if [ "$5" = HSM ]; then _akv=$HSM_HOST:$HSM_PORT; else _akv=$VAULT_HOST:$VAULT_PORT; fi
	_deriv=""
	[ "${4#RSA}" = "$4" ] ||
		_deriv=', "key_derivation": {"salt": "'"$E2E_SALT"'", "label": "'"$E2E_LABEL"'"}'
	printf '{"mount_point": "%s", "azure_url": "https://%s:%s/private/%s", "azure_url_private": true, "read_write": false, "key": {"kid": "%s", "kty": "%s", "authority": {"endpoint": "%s:%s"}, "akv": {"endpoint": "%s", "api_version": "api-version=7.4"}}%s}' \
		"$1" "$BLOB_HOST" "$AZ_PORT" "$2" "$3" "$4" "$MAA_HOST" "$MAA_PORT" "$_akv" "$_deriv"
}

# e2e_args OUT FS-JSON...: the sidecar configuration (its JSON in OUT.json, EncfsSideCarArgs,
# the base64 of it, in OUT)
e2e_args() {
	_out=$1
	shift
	{
		printf '{"azure_filesystems": ['
		_sep=""
		for _f in "$@"; do
			printf '%s\n  %s' "$_sep" "$_f"
			_sep=,
		done
		printf '\n]}\n'
	} >"$_out.json"
	base64 -w0 "$_out.json" >"$_out"
}

# e2e_requests NAME PORT [http]: what a fake service received (JSON list), into $T/NAME.requests
e2e_requests() {
	if [ "${3:-}" = http ]; then
		curl -sS "http://127.0.0.1:$2/_requests" >"$T/$1.requests"
	else
		curl -sS --cacert "$CA" "https://127.0.0.1:$2/_requests" >"$T/$1.requests"
	fi
}

# e2e_guest_tap STATUS TAP ERR: the guest's checks (TAP file TAP, from run.sh exiting STATUS),
# renumbered among the host's; its comments pass through; then one check that the guest ran all
# it planned and passed, with the last lines of its stderr (ERR) when not
e2e_guest_tap() {
	_gplan=""
	_gn=0
	while IFS= read -r _line; do
		case $_line in
		"ok "*" # skip"*) skip "${_line#* # skip }"; _gn=$((_gn + 1)) ;;
		"ok "*) ok 0 "vm: $(echo "$_line" | sed 's/^ok [0-9]* - //')"; _gn=$((_gn + 1)) ;;
		"not ok "*) ok 1 "vm: $(echo "$_line" | sed 's/^not ok [0-9]* - //')"; _gn=$((_gn + 1)) ;;
		"1.."*) _gplan=${_line#1..} ;;
		"#"*) echo "$_line" ;;
		*) [ -z "$_line" ] || diag "vm: $_line" ;;
		esac
	done <"$2"
	is "$1:$_gplan" "0:$_gn" "the guest ran all its checks and they passed"
	if [ "$1" -ne 0 ] || [ "$_gplan" != "$_gn" ]; then
		diag "guest stderr (last lines):"
		tail -n 30 "$3" | sed 's/^/#   /'
	fi
}
