#!/bin/sh
# make demo: the whole job of encfs on one example, narrated, on this machine alone.
#
# An operator makes a LUKS2 image of an ext4 filesystem holding test.txt under a random key with
# encfs-mkimage (no root, sparse), uploads it as a page blob and imports the key into Key Vault
# with a release policy that names the container group's security policy.  Then a confidential container group (here: Debian's kernel
# under qemu) runs encfs.sh, which mounts the blob, attests, gets the key released, opens it with
# dm-crypt and mounts it, and the demo prints test.txt from the mounted filesystem.  SIGTERM undoes
# it all.  Finally a key whose policy names another security policy is refused.
#
# Azure is played by the test services (test/fakes: MAA, Key Vault, IMDS; Azurite for Blob
# Storage), all on 127.0.0.1 in a network namespace of the demo's own with no route out: nothing
# leaves this machine.  The SNP report is a fake one (no SEV-SNP hardware here), which only the
# test MAA accepts.  Needs root (a network namespace) and what
# `make deps` installs; the VM kernel is downloaded once and cached (test/vm/cache).
#
#   sh test/demo.sh        (make demo: installs the dependencies, builds, runs this)
#
# Environment: ENCFS_BUILD, the build directory whose tools go into the VM (default build/).
: "${ENCFS_SRC:=$(cd "$(dirname "$0")/.." && pwd)}"

step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$@"; }
die() {
	printf '\ndemo: %s\n' "$*" >&2
	exit 1
}

if [ -z "${ENCFS_NETNS:-}" ]; then
	[ "$(id -u)" -eq 0 ] || die "run it as root (make demo): it makes a network namespace"
	PATH=$PATH:/usr/sbin:/sbin command -v ip >/dev/null || die "ip (iproute2) is missing: run make deps"
	printf '%s\n' "encfs demo: an encrypted filesystem in Blob Storage, whose key Key Vault releases only to" \
		"an attested confidential VM.  Azure is played by local test services in a private network" \
		"namespace: nothing leaves this machine."
	exec sh "$ENCFS_SRC/test/e2e/netns.sh" sh "$0" "$@"
fi
# shellcheck disable=SC1091 # found at run time
. "$ENCFS_SRC/test/lib.sh"
# shellcheck disable=SC1091
. "$ENCFS_SRC/test/e2e/env.sh"
missing=$(e2e_missing)
[ -z "$missing" ] || die "missing: $missing (make deps, then make)"
t_start=$(date +%s)

step "Starting the stand-ins for Azure in network namespace $ENCFS_NETNS (only lo, no route):"
e2e_services >"$T/services.log" 2>&1 || { cat "$T/services.log" >&2; die "the services did not start"; }
note "Microsoft Azure Attestation  https://$MAA_HOST:$MAA_PORT  (accepts fake SNP reports)" \
	"Key Vault                   https://$VAULT_HOST:$VAULT_PORT" \
	"managed identity (IMDS)     http://$GUEST_GW:$IMDS_PORT" \
	"Blob Storage (Azurite)      https://$BLOB_HOST:$AZ_PORT" \
	"each on 127.0.0.1 here; the VM reaches them at $GUEST_GW, and nothing else"

step "The container group's security policy, and its digest (what the SNP report's HOST_DATA holds):"
e2e_context "$T/ctx" 'package policy

api_version := "0.10.0"
framework_version := "0.2.3"
mount_device := {"allowed": true}' || die "cannot make the security context"
note "\$ encfs-attest policy-digest security-policy-base64" "$(cat "$T/ctx.digest")"

step "The operator makes the filesystem, without root: a sparse LUKS2 image of ext4 holding test.txt:"
head -c 32 /dev/urandom >"$T/fs.key"
e2e_image "$T/encfs.img" "$T/fs.key" demo || die "cannot make the image"
note "\$ encfs-mkimage --key-file fs.key -o encfs.img tree"
sed -n 's/^size \(.*\)/size \1 bytes: a 16 MiB LUKS2 header, then ext4/p
s/^allocated \(.*\)/allocated \1 bytes: only what ext4 wrote, encrypted; the rest are holes/p
/^key-check-value/p' "$T/encfs.img.out" | sed 's/^/    /'
note "$(encfs-dmsetup dump "$T/encfs.img" | sed -n 's/^\tcipher: *\(.*\)/cipher \1/p' | head -n 1), key: 32 random bytes (never shown)"

step "... imports the key into Key Vault, releasable only to a VM that runs that security policy:"
e2e_import "$T/import.json" fskey oct-HSM VAULT "$(cat "$T/ctx.digest")" --key-file "$T/fs.key" \
	2>"$T/import.err" || { cat "$T/import.err" >&2; die "the key import failed"; }
note "\$ encfs-skr import -c importkeyconfig.json --key-file fs.key"
"$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("kid " + d["kid"])
for g in d["release_policy"]["anyOf"]:
    print("release policy: authority " + g["authority"])
    for c in g["allOf"]:
        print("    %s == %s" % (c["claim"], c["equals"]))' "$T/import.json" | sed 's/^/    /'
# a second key, for the end: its policy names another security policy
e2e_context "$T/other" 'package policy
# another container group' || die "cannot make the other security context"
e2e_import "$T/denied.json" otherkey oct-HSM VAULT "$(cat "$T/other.digest")" --key-file "$T/fs.key" \
	2>"$T/import.err" || { cat "$T/import.err" >&2; die "the second key import failed"; }

step "... and uploads the image as a page blob (its written pages only):"
e2e_upload "$T/encfs.img" encfs.img 2>"$T/upload.err" || { cat "$T/upload.err" >&2; die "the upload failed"; }
note "\$ encfs-fetch --upload encfs.img -     (the SAS URL that may write, on standard input)" \
	"https://$BLOB_HOST:$AZ_PORT/private/encfs.img (private: the VM's managed identity reads it)"
rm -f "$T/fs.key"

step "The sidecar's configuration, EncfsSideCarArgs (base64 of this JSON):"
e2e_args "$T/args" "$(e2e_fs /mnt/remote/share encfs.img fskey oct-HSM VAULT)"
e2e_args "$T/denied" "$(e2e_fs /mnt/remote/share encfs.img otherkey oct-HSM VAULT)"
"$PYTHON" -m json.tool "$T/args.json" | sed 's/^/    /'

step "Booting the confidential container group: Debian's kernel under qemu with this tree's tools"
note "(the first run downloads the kernel; without KVM the boot and start take a minute or two)"
t_vm=$(date +%s)
# shellcheck disable=SC2046 # e2e_vm_net prints options
{
	sh "$ENCFS_SRC/test/vm/run.sh" --live --mem 768 $(e2e_vm_net) --file "$T/args" --file "$T/denied" \
		--file "$T/ca/ca.pem" --file "$T/ctx" --env "IMDS_PORT=$IMDS_PORT" "$ENCFS_SRC/test/vm/demo-guest.sh"
	echo $? >"$T/vm.rc"
} | grep --line-buffered -v '^# vm: '
t_end=$(date +%s)
[ "$(cat "$T/vm.rc")" = 0 ] || die "the demo failed (see above)"
step "Done in $((t_end - t_start)) s (the VM: $((t_end - t_vm)) s).  The services stop, the namespace goes."
