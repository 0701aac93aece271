#!/bin/sh
# encfs-config: the upstream configuration is accepted; each kind of bad configuration is refused
# with the path of the bad field and exit code 3; get/count hand fields to the shell.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err and rc
. "$ENCFS_SRC/test/lib.sh"

good='{
  "azure_info": {"identity": {"client_id": "11111111-2222-3333-4444-555555555555"}},
  "azure_filesystems": [
    {
      "mount_point": "/mnt/remote/share",
      "azure_url": "https://account.blob.core.windows.net/private-container/encfs.img",
      "azure_url_private": true,
      "read_write": false,
      "key": {
        "kid": "EncryptedFilesystemsKey",
        "kty": "RSA-HSM",
        "authority": {"endpoint": "sharedeus2.eus2.attest.azure.net"},
        "akv": {"endpoint": "myvault.vault.azure.net", "api_version": "api-version=7.4",
                "bearer_token": "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"}
      },
      "key_derivation": {"salt": "92a631483ca875aad7e2477da755d58c", "label": "Encryption Key"}
    }
  ]
}'

# accept NAME [OPTIONS...] < JSON: exit 0 expected
accept() {
	_name=$1
	shift
	cat >"$T/cfg"
	run encfs-config "$@" -f "$T/cfg" check
	is "$rc" 0 "accepted: $_name"
	[ "$rc" -eq 0 ] || diag "$err"
}

# refuse NAME EXPECTED-MESSAGE-PART [OPTIONS...] < JSON: exit 3 with the message; and the sidecar,
# given the same configuration (and the same switches), says the same and exits the same, before
# doing anything: what check refuses is exactly what encfs.sh refuses
refuse() {
	_name=$1
	_want=$2
	shift 2
	cat >"$T/cfg"
	run encfs-config "$@" -f "$T/cfg" check
	is "$rc" 3 "refused with exit 3: $_name"
	like "$err" "$_want" "... message names it: $_name"
	is "$(printf '%s\n' "$err" | wc -l)" 1 "... in one line: $_name"
	_check="$rc:$err"
	EncfsSideCarArgs=$(cat "$T/cfg") run sh "$ENCFS_SRC/sh/encfs.sh" "$@"
	is "$rc:$err" "$_check" "... and encfs.sh says the same, exit 3: $_name"
}

# --- accepted --------------------------------------------------------------------------------
printf '%s' "$good" >"$T/in"
accept "a complete configuration (JSON)" <"$T/in"
printf '%s' "$good" | base64 -w0 >"$T/in"
accept "the same as padded base64" <"$T/in"
printf '%s' "$good" | base64 -w0 | tr -d '=' >"$T/in"
accept "unpadded base64" <"$T/in"
printf '%s' "$good" | base64 >"$T/in"
accept "base64 wrapped at 76 columns, as base64(1) writes it" <"$T/in"

EncfsSideCarArgs=$(printf '%s' "$good" | base64 -w0)
export EncfsSideCarArgs
run encfs-config check
is "$rc" 0 "read from \$EncfsSideCarArgs by default"
unset EncfsSideCarArgs

if [ -f "$SHARED/testdata/encfs-sidecar-args.upstream.json" ]; then
	up=$SHARED/testdata/encfs-sidecar-args.upstream.json
	run encfs-config --template -f "$up" check
	is "$rc" 0 "the upstream example is accepted as a template, unchanged"
	like "$err" 'azure_filesystems[0].azure_url: "<azure-blob-storage-url>" is a placeholder' \
		"... each placeholder is pointed out"
	run encfs-config -f "$up" check
	is "$rc" 3 "the upstream example, placeholders unfilled, is not deployable"
	like "$err" 'azure_filesystems[0].azure_url: "<azure-blob-storage-url>" is a placeholder from the example' \
		"... and the message says which value to fill in"
	# fill the placeholders with real values, keeping the upstream structure and field names
	"$PYTHON" - "$up" >"$T/filled.json" <<'PY'
import json, sys
fill = {"<azure-blob-storage-url>": "https://account.blob.core.windows.net/c/encfs.img",
        "<key-vault-akv-key-identifier>": "EncfsKey",
        "<key-type-of-key-imported-to-akv>": "RSA-HSM",
        "<authority-of-key-imported-to-akv>": "sharedeus2.eus2.attest.azure.net",
        "<key-vault-akv-endpoint>": "myvault.vault.azure.net",
        "<salt-for-key-derivation-valid-only-for-RSA-HSM-keys>": "00112233445566778899aabbccddeeff",
        "<label-for-derived-key-valid-only-for-RSA-HSM-keys>": "Encryption Key"}
def walk(v):
    if isinstance(v, dict):
        return {k: walk(x) for k, x in v.items()}
    if isinstance(v, list):
        return [walk(x) for x in v]
    return fill.get(v, v) if isinstance(v, str) else v
out = walk(json.load(open(sys.argv[1])))
assert "<" not in json.dumps(out)
json.dump(out, sys.stdout, indent=3)
PY
	run encfs-config -f "$T/filled.json" check
	is "$rc" 0 "the upstream example with its values filled in is accepted"
	is "$err" "" "... without a warning (every upstream field is known)"
else
	skip "../shared/testdata absent: upstream example not checked"
	skip "../shared/testdata absent"
	skip "../shared/testdata absent"
	skip "../shared/testdata absent"
	skip "../shared/testdata absent"
	skip "../shared/testdata absent"
fi

printf '%s' "$good" | sed 's/"read_write": false,/"read_write": false, "dm_verity": {"root_hash": "00"},/' >"$T/cfg"
run encfs-config -f "$T/cfg" check
is "$rc" 0 "an unknown field is not fatal"
like "$err" "azure_filesystems[0].dm_verity: unknown field, ignored" "... but warned about, with its path"

accept "raw_key with the test switch, no key" --allow-raw-key <<'EOF2'
{"azure_filesystems": [{"mount_point": "/mnt/a", "azure_url": "https://a.blob.core.windows.net/c/b",
  "raw_key": "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef"}]}
EOF2
accept "plain http with the test switch" --allow-http <<'EOF2'
{"azure_filesystems": [{"mount_point": "/mnt/a", "azure_url": "http://127.0.0.1:10000/devstoreaccount1/c/b",
  "key": {"kid": "k", "authority": {"endpoint": "127.0.0.1:8443"}, "akv": {"endpoint": "https://127.0.0.1:8444"}}}]}
EOF2
accept "kty may be left out (upstream allows it)" <<'EOF2'
{"azure_filesystems": [{"mount_point": "/mnt/a", "azure_url": "https://a.blob.core.windows.net/c/b",
  "key": {"kid": "k", "authority": {"endpoint": "x.attest.azure.net"}, "akv": {"endpoint": "h.managedhsm.azure.net"}}}]}
EOF2

# --- refused ---------------------------------------------------------------------------------
refuse "malformed JSON" "config: invalid JSON at byte" <<'EOF2'
{"azure_filesystems": [ {"mount_point": "/mnt/a",} ]}
EOF2
printf 'eyJhenVyZV9maWxlc3lzdGVtcyI6IFtdfQ=!' >"$T/in"
refuse "malformed base64" "config: not valid base64" <"$T/in"
refuse "empty file" "config: empty" </dev/null
refuse "empty azure_filesystems" "config: azure_filesystems: is empty" <<'EOF2'
{"azure_filesystems": []}
EOF2
refuse "no azure_filesystems" "config: azure_filesystems: missing" <<'EOF2'
{"azure_info": {}}
EOF2
refuse "top level is not an object" "config: (root): is an array, expected an object" <<'EOF2'
[{"mount_point": "/mnt/a"}]
EOF2
refuse "missing mount_point" "config: azure_filesystems[0].mount_point: missing" <<'EOF2'
{"azure_filesystems": [{"azure_url": "https://a.blob.core.windows.net/c/b", "raw_key": "00"}]}
EOF2
printf '%s' "$good" | sed 's#"/mnt/remote/share"#"mnt/remote/share"#' >"$T/in"
refuse "relative mount_point" 'azure_filesystems[0].mount_point: "mnt/remote/share" is not an absolute path' <"$T/in"
printf '%s' "$good" | sed 's#"/mnt/remote/share"#"/"#' >"$T/in"
refuse "mount_point is /" 'azure_filesystems[0].mount_point: "/" is the root directory' <"$T/in"
printf '%s' "$good" | sed 's#"/mnt/remote/share"#"/mnt/../etc"#' >"$T/in"
refuse "mount_point with .." 'azure_filesystems[0].mount_point: "/mnt/../etc" has . or .. components' <"$T/in"
printf '%s' "$good" | sed 's#"/mnt/remote/share"#42#' >"$T/in"
refuse "mount_point not a string" "azure_filesystems[0].mount_point: is a number, expected a string" <"$T/in"
refuse "duplicate mount points" 'azure_filesystems[1].mount_point: "/mnt/a" is also the mount point of azure_filesystems[0]' --allow-raw-key <<'EOF2'
{"azure_filesystems": [
 {"mount_point": "/mnt/a", "azure_url": "https://a.blob.core.windows.net/c/b", "raw_key": "00"},
 {"mount_point": "/mnt/a/", "azure_url": "https://a.blob.core.windows.net/c/d", "raw_key": "00"}]}
EOF2
printf '%s' "$good" | sed 's#https://account#http://account#' >"$T/in"
refuse "plain http azure_url" 'azure_filesystems[0].azure_url: "http://account.blob.core.windows.net/private-container/encfs.img" is plain http' <"$T/in"
printf '%s' "$good" | sed 's#https://account#ftp://account#' >"$T/in"
refuse "azure_url not a URL" "azure_filesystems[0].azure_url: \"ftp://account.blob.core.windows.net/private-container/encfs.img\" is not an https:// URL" <"$T/in"
printf '%s' "$good" | sed 's#/private-container/encfs.img##' >"$T/in"
refuse "azure_url without a blob" "azure_filesystems[0].azure_url: \"https://account.blob.core.windows.net\" names no blob" <"$T/in"
printf '%s' "$good" | sed 's/"read_write": false,/"read_write": true, "download": true,/' >"$T/in"
refuse "download with read_write" 'azure_filesystems[0].download: a downloaded image is a copy: writes to it would be lost' <"$T/in"
printf '%s' "$good" | sed 's/"read_write": false,/"read_write": false, "download": "yes",/' >"$T/in"
refuse "download not a boolean" 'azure_filesystems[0].download: is a string, expected a boolean' <"$T/in"
printf '%s' "$good" | sed 's/"read_write": false,/"read_write": true,/' >"$T/in"
accept "read_write (the blob mounted read-write)" <"$T/in"
printf '%s' "$good" | sed 's/"read_write": false,/"read_write": false, "download": true,/' >"$T/in"
accept "download, read-only" <"$T/in"
printf '%s' "$good" | sed 's#"kid": "EncryptedFilesystemsKey",##' >"$T/in"
refuse "kid missing and no raw_key" "azure_filesystems[0].key.kid: missing" <"$T/in"
refuse "neither key nor raw_key" "azure_filesystems[0].key: missing" <<'EOF2'
{"azure_filesystems": [{"mount_point": "/mnt/a", "azure_url": "https://a.blob.core.windows.net/c/b"}]}
EOF2
refuse "raw_key without the test switch" "azure_filesystems[0].raw_key: raw_key is a test-only field" <<'EOF2'
{"azure_filesystems": [{"mount_point": "/mnt/a", "azure_url": "https://a.blob.core.windows.net/c/b", "raw_key": "deadbeef"}]}
EOF2
refuse "raw_key not hex" "azure_filesystems[0].raw_key: raw_key is not hex" --allow-raw-key <<'EOF2'
{"azure_filesystems": [{"mount_point": "/mnt/a", "azure_url": "https://a.blob.core.windows.net/c/b", "raw_key": "deadbeefzz"}]}
EOF2
printf '%s' "$good" | sed 's#"92a631483ca875aad7e2477da755d58c"#"not-hex-salt"#' >"$T/in"
refuse "non-hex salt" "azure_filesystems[0].key_derivation.salt: salt is not hex (character 1 is 'n')" <"$T/in"
printf '%s' "$good" | sed 's#"92a631483ca875aad7e2477da755d58c"#"92a"#' >"$T/in"
refuse "odd-length salt" "azure_filesystems[0].key_derivation.salt: salt must be an even number of hex digits" <"$T/in"
printf '%s' "$good" | sed 's#"RSA-HSM"#"EC-HSM"#' >"$T/in"
refuse "unknown kty" "azure_filesystems[0].key.kty: unknown key type" <"$T/in"
printf '%s' "$good" | sed 's#"read_write": false#"read_write": "yes"#' >"$T/in"
refuse "read_write not a boolean" "azure_filesystems[0].read_write: is a string, expected a boolean" <"$T/in"
printf '%s' "$good" | sed 's#"azure_url_private": true#"azure_url_private": 1#' >"$T/in"
refuse "azure_url_private not a boolean" "azure_filesystems[0].azure_url_private: is a number, expected a boolean" <"$T/in"
printf '%s' "$good" | sed 's#"authority": {"endpoint": "sharedeus2.eus2.attest.azure.net"},##' >"$T/in"
refuse "no authority" "azure_filesystems[0].key.authority: missing" <"$T/in"
printf '%s' "$good" | sed 's#"endpoint": "myvault.vault.azure.net", ##' >"$T/in"
refuse "no vault endpoint" "azure_filesystems[0].key.akv.endpoint: missing" <"$T/in"
printf '%s' "$good" | sed 's#"myvault.vault.azure.net"#"my vault"#' >"$T/in"
refuse "vault endpoint not a host" 'azure_filesystems[0].key.akv.endpoint: "my vault" has " ", which a host name cannot have' <"$T/in"
printf '%s' "$good" | sed 's#"EncryptedFilesystemsKey"#""#' >"$T/in"
refuse "empty kid" "azure_filesystems[0].key.kid: is empty" <"$T/in"
printf '%s' "$good" | sed 's#"mount_point": "/mnt/remote/share",#"mount_point": "/mnt/remote/share", "mount_point": "/mnt/x",#' >"$T/in"
refuse "a key given twice" 'config: invalid JSON: duplicate key "mount_point" in azure_filesystems[0]' <"$T/in"
printf '%s' "$good" | sed 's#"identity": {"client_id"#"certcache": {"endpoint_type": "Elsewhere"}, "identity": {"client_id"#' >"$T/in"
refuse "unknown certcache endpoint_type" "azure_info.certcache.endpoint_type: unknown endpoint type" <"$T/in"
printf '%s' "$good" | sed 's#"Encryption Key"#"Encryption \\u0001Key"#' >"$T/in"
refuse "a control character in a string" "azure_filesystems[0].key_derivation.label: contains a control character" <"$T/in"
printf '{"azure_filesystems": [{"mount_point": "/mnt/\377"}]}' >"$T/in"
refuse "invalid UTF-8" "config: invalid JSON at byte 45: invalid UTF-8 lead byte" <"$T/in"
"$PYTHON" -c 'print("[" * 100 + "]" * 100)' >"$T/in"
refuse "nesting too deep" "nested too deeply" <"$T/in"
printf '%s' "$good" | sed 's#"EncryptedFilesystemsKey"#"<key-vault-akv-key-identifier>"#' >"$T/in"
refuse "a placeholder left in" 'azure_filesystems[0].key.kid: "<key-vault-akv-key-identifier>" is a placeholder from the example' <"$T/in"

# what the tools of the sidecar would refuse later, refused here (and so by encfs.sh first)
printf '%s' "$good" | sed 's#"myvault.vault.azure.net"#"https://myvault.vault.azure.net/keys"#' >"$T/in"
refuse "vault endpoint with a path" 'azure_filesystems[0].key.akv.endpoint: "https://myvault.vault.azure.net/keys" has a path' <"$T/in"
printf '%s' "$good" | sed 's#"myvault.vault.azure.net"#"myvault.vault.azure.net/"#' >"$T/in"
accept "vault endpoint with only a trailing slash" <"$T/in"
printf '%s' "$good" | sed 's#"myvault.vault.azure.net"#"myvault.vault.azure.net:99999"#' >"$T/in"
refuse "vault endpoint with a bad port" 'azure_filesystems[0].key.akv.endpoint: "myvault.vault.azure.net:99999" has a bad port' <"$T/in"
printf '%s' "$good" | sed 's#"sharedeus2.eus2.attest.azure.net"#"https://sharedeus2.eus2.attest.azure.net/attest/SevSnpVm"#' >"$T/in"
refuse "authority endpoint URL with a path" 'azure_filesystems[0].key.authority.endpoint: "https://sharedeus2.eus2.attest.azure.net/attest/SevSnpVm" has a path' <"$T/in"
refuse "authority endpoint over http, even with --allow-http" 'azure_filesystems[0].key.authority.endpoint: "http://127.0.0.1:8443" only https is allowed' --allow-http <<'EOF2'
{"azure_filesystems": [{"mount_point": "/mnt/a", "azure_url": "http://127.0.0.1:10000/devstoreaccount1/c/b",
  "key": {"kid": "k", "authority": {"endpoint": "http://127.0.0.1:8443"}, "akv": {"endpoint": "https://127.0.0.1:8444"}}}]}
EOF2
printf '%s' "$good" | sed 's#/private-container/encfs.img#/private-container#' >"$T/in"
refuse "azure_url naming a container only" 'azure_filesystems[0].azure_url: "https://account.blob.core.windows.net/private-container" names no blob' <"$T/in"
printf '%s' "$good" | sed 's#/private-container/encfs.img#/private-container/#' >"$T/in"
refuse "azure_url naming a container with a slash" 'azure_filesystems[0].azure_url: "https://account.blob.core.windows.net/private-container/" names no blob' <"$T/in"
printf '%s' "$good" | sed 's#/private-container/encfs.img#/private-container/encfs.img?sv=2022\&sig=c2VjcmV0#' >"$T/in"
accept "azure_url with a SAS query" <"$T/in"
printf '%s' "$good" | sed 's#/private-container/encfs.img#/private-container/?sv=2022\&sig=c2VjcmV0#' >"$T/in"
refuse "azure_url naming no blob, with a SAS query" 'azure_filesystems[0].azure_url: "https://account.blob.core.windows.net/private-container/?<query hidden>" names no blob' <"$T/in"
unlike "$err" "c2VjcmV0" "... and the SAS signature is not in the message"
printf '%s' "$good" | sed 's#/private-container/encfs.img#/private-container/encfs.img\#x#' >"$T/in"
refuse "azure_url with a fragment" 'azure_filesystems[0].azure_url: "https://account.blob.core.windows.net/private-container/encfs.img#x" has a #fragment' <"$T/in"
printf '%s' "$good" | sed 's#"EncryptedFilesystemsKey"#"my key"#' >"$T/in"
refuse "kid not a key name" 'azure_filesystems[0].key.kid: "my key" is not a key name' <"$T/in"
printf '%s' "$good" | sed 's#"EncryptedFilesystemsKey"#"https://myvault.vault.azure.net/keys/fskey/0123abc"#' >"$T/in"
accept "kid as a key identifier of the vault" <"$T/in"
printf '%s' "$good" | sed 's#"EncryptedFilesystemsKey"#"https://other.vault.azure.net/keys/fskey"#' >"$T/in"
refuse "kid as a key identifier of another vault" 'azure_filesystems[0].key.kid: "https://other.vault.azure.net/keys/fskey" is a key of other.vault.azure.net, not of the vault key.akv.endpoint myvault.vault.azure.net' <"$T/in"
printf '%s' "$good" | sed 's#"api-version=7.4"#"7.4 beta"#' >"$T/in"
refuse "api_version not a version" 'azure_filesystems[0].key.akv.api_version: "7.4 beta" is not an API version' <"$T/in"
printf '%s' "$good" | sed 's#"eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"#"eyJhbGciOiJub25lIn0 c2lnbmF0dXJl"#' >"$T/in"
refuse "bearer_token with a space" 'azure_filesystems[0].key.akv.bearer_token: is not a token' <"$T/in"
unlike "$err" "c2lnbmF0dXJl" "... and the token is not in the message"
printf '%s' "$good" | sed "s#\"92a631483ca875aad7e2477da755d58c\"#\"$(head -c 257 /dev/zero | od -v -An -tx1 | tr -d ' \n')\"#" >"$T/in"
refuse "salt longer than 256 bytes" 'azure_filesystems[0].key_derivation.salt: salt is 257 bytes; at most 256 are allowed' <"$T/in"
printf '%s' "$good" | sed 's#"identity": {"client_id"#"certcache": {"endpoint_type": "AMD"}, "identity": {"client_id"#' >"$T/in"
refuse "certcache without an endpoint" "azure_info.certcache.endpoint: missing" <"$T/in"
printf '%s' "$good" | sed 's#"identity": {"client_id"#"certcache": {"endpoint_type": "AMD", "endpoint": "http://kds.example"}, "identity": {"client_id"#' >"$T/in"
refuse "certcache endpoint over http" 'azure_info.certcache.endpoint: "http://kds.example" is not https' <"$T/in"
printf '%s' "$good" | sed 's#"identity": {"client_id"#"certcache": {"endpoint_type": "AMD", "endpoint": "kdsintf.amd.com", "tee_type": "Milan"}, "identity": {"client_id"#' >"$T/in"
accept "certcache as upstream writes it" <"$T/in"

# a misspelt field: one warning naming the field meant, from check only; the sidecar, which asks
# for every field, repeats it no more (it then stops at the mount point, which exists)
printf '%s' "$good" | sed "s#\"azure_url_private\": true#\"azure_url_privat\": true#; s#\"/mnt/remote/share\"#\"$T\"#" >"$T/cfg"
run encfs-config -f "$T/cfg" check
is "$rc:$err" "0:encfs-config: warning: config: azure_filesystems[0].azure_url_privat: unknown field, ignored (did you mean azure_url_private?)" \
	"a misspelt field: one warning naming the nearest known field"
run encfs-config -f "$T/cfg" get 'azure_filesystems[0].mount_point'
is "$rc:$err" "0:" "... which get does not repeat"
EncfsSideCarArgs=$(cat "$T/cfg") run sh "$ENCFS_SRC/sh/encfs.sh"
is "$rc:$err" "3:encfs-config: warning: config: azure_filesystems[0].azure_url_privat: unknown field, ignored (did you mean azure_url_private?)
encfs.sh: config: azure_filesystems[0].mount_point: $T already exists (it must be free: the sidecar creates it as a link)" \
	"... and encfs.sh shows it once"
printf '%s' "$good" | sed 's#"read_write": false,#"read_write": false, "frobnicate": 1,#' >"$T/cfg"
run encfs-config -f "$T/cfg" check
is "$rc:$err" "0:encfs-config: warning: config: azure_filesystems[0].frobnicate: unknown field, ignored (check its spelling)" \
	"a field like none: no guess"

run env -u EncfsSideCarArgs encfs-config check
is "$rc" 3 "no configuration at all: exit 3"
like "$err" "EncfsSideCarArgs is not set" "... naming the variable"

# --- fields to the shell ---------------------------------------------------------------------
printf '%s' "$good" >"$T/good.json"
run encfs-config -f "$T/good.json" count
is "$out" 1 "count prints the number of filesystems"
run encfs-config -f "$T/good.json" get 'azure_filesystems[0].mount_point'
is "$out" /mnt/remote/share "get prints a string field"
run encfs-config -f "$T/good.json" get 'azure_filesystems[0].azure_url_private'
is "$out" true "get prints a boolean as true/false"
run encfs-config -f "$T/good.json" get 'azure_filesystems[0].key.akv.api_version'
is "$out" "api-version=7.4" "get prints a nested field"
run encfs-config -f "$T/good.json" get 'azure_filesystems[0].raw_key'
is "$rc:$out" "0:" "an absent optional field prints nothing, exit 0"
run encfs-config -f "$T/good.json" get 'azure_filesystems[0].key'
is "$rc" 2 "get of an object is a usage error"
run encfs-config -f "$T/good.json" get --json 'azure_filesystems[0].key.authority'
is "$out" '{"endpoint": "sharedeus2.eus2.attest.azure.net"}' "get --json prints an object as written"
run encfs-config -f "$T/good.json" get --json 'azure_filesystems[0].key.kid'
is "$out" '"EncryptedFilesystemsKey"' "get --json prints a string quoted"
run encfs-config -f "$T/good.json" get 'azure_filesystems[0].key.akv.bearer_token'
is "$out" "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.c2lnbmF0dXJl" "a secret goes to a pipe"
if command -v script >/dev/null 2>&1; then
	script -qec "encfs-config -f '$T/good.json' get 'azure_filesystems[0].key.akv.bearer_token'" /dev/null \
		>"$T/tty.out" 2>&1
	rc=$?
	is "$rc" 2 "but never to a terminal"
	unlike "$(cat "$T/tty.out")" "c2lnbmF0dXJl" "... and nothing of it is shown"
else
	skip "script(1) not installed"
	skip "script(1) not installed"
fi

LogLevel=debug encfs-config -f "$T/good.json" check 2>"$T/log"
unlike "$(cat "$T/log")" "c2lnbmF0dXJl" "no log line holds the bearer token's signature"

run encfs-config --bogus check
is "$rc:$err" "2:encfs-config: usage: unknown option --bogus (see --help)" "an unknown option is a usage error (exit 2), in one line"
run encfs-config -f
is "$rc:$err" "2:encfs-config: usage: -f needs a value (see --help)" "an option without its value, named"
run encfs-config -f "$T/good.json" frobnicate
is "$rc:$err" "2:encfs-config: usage: unknown command frobnicate (check, count or get PATH) (see --help)" "an unknown command is a usage error"
run encfs-config -f "$T/good.json" check extra
is "$rc:$err" "2:encfs-config: usage: unexpected argument extra (check takes no argument) (see --help)" "an unexpected argument is named"
run encfs-config -v -f "$T/good.json" --verbose check -v
is "$rc:$err" "0:encfs-config: info: config: 1 filesystem, valid" "-v and --verbose, before and after the command"

# standard input: never a terminal, never empty
if command -v script >/dev/null 2>&1; then
	script -qec "encfs-config -f - check" /dev/null </dev/null >"$T/tty.out" 2>&1
	rc=$?
	is "$rc:$(tr -d '\r' <"$T/tty.out")" "2:encfs-config: config: reading standard input: standard input is a terminal (pipe the configuration in, give -f FILE, or set EncfsSideCarArgs)" \
		"-f - with a terminal on standard input: refused at once, with a hint"
else
	skip "script(1) not installed"
fi
run encfs-config -f - check </dev/null
is "$rc:$err" "3:encfs-config: config: reading standard input: nothing on standard input: did the previous step fail? (pipe the configuration in)" \
	"-f - with nothing on standard input: exit 3, naming the likely cause"
run encfs-config -f - check <"$T/good.json"
is "$rc" 0 "-f - reads a configuration from a pipe"

done_testing
