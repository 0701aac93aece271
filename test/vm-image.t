#!/bin/sh
# The sidecar image is the file users ship: here it runs.  `make image` builds it; its root
# filesystem (buildah from + mount) becomes the root filesystem of the test VM (run.sh --rootfs:
# Debian's kernel under qemu, the image's own programs and libraries, nothing of this tree's
# build), where test/vm/image-guest.sh starts the image's entry point as a container runtime does
# (Entrypoint + Cmd from the image's configuration, its Env plus EncfsSideCarArgs, PID 1 of its own
# PID namespace, root, /dev /sys /proc mounted, the group's emptyDir volume at /mnt/remote), against
# the fake Azure services and Azurite in this test's own network namespace.  The application side
# reads /mnt/remote/share/test.txt; SIGTERM leaves nothing behind; a key meant for another security
# policy is refused with exit status 5 and nothing left.  One boot.
#
# The image is built before the test shuts itself in its network namespace (a first build needs
# Debian's mirror); the working container is removed afterwards, however the test ends.
# shellcheck disable=SC1091,SC2154 # lib.sh and env.sh are found at run time; they set T, out, err, rc

: "${ENCFS_SRC:=$(cd "$(dirname "$0")/.." && pwd)}"
if [ -z "${ENCFS_NETNS:-}" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "1..0 # SKIP needs root (buildah, a network namespace of its own, loop devices for cryptsetup)"
		exit 0
	fi
	if ! PATH=$PATH:/usr/sbin:/sbin command -v ip >/dev/null; then
		echo "1..0 # SKIP ip (iproute2) is not installed (make deps)"
		exit 0
	fi
	fail() { # fail WHY [LOG]: one failed check, the end of LOG
		echo "not ok 1 - $1"
		[ -z "${2:-}" ] || tail -n 20 "$2" | sed 's/^/# /'
		echo "1..1"
		exit 1
	}
	w=$(mktemp -d "${TMPDIR:-/tmp}/encfs-vm-image.XXXXXX")
	ctr=""
	# shellcheck disable=SC2317 # called from the traps
	drop() {
		[ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1
		rm -rf "$w"
	}
	trap drop EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	t0=$(date +%s)
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$ENCFS_SRC" image \
		IIDFILE="$w/iid" >"$w/image.log" 2>&1 || fail "make image" "$w/image.log"
	ENCFS_IMAGE_ID=$(cat "$w/iid")
	ctr=$(buildah from --quiet --pull=never "$ENCFS_IMAGE_ID" 2>"$w/from.err") || fail "buildah from" "$w/from.err"
	ENCFS_IMAGE_ROOT=$(buildah mount "$ctr" 2>"$w/mount.err") || fail "buildah mount" "$w/mount.err"
	buildah inspect --type image "$ENCFS_IMAGE_ID" >"$w/inspect.json" || fail "buildah inspect"
	ENCFS_IMAGE_CONFIG=$w/inspect.json
	ENCFS_IMAGE_TIME=$(($(date +%s) - t0))
	export ENCFS_IMAGE_ID ENCFS_IMAGE_ROOT ENCFS_IMAGE_CONFIG ENCFS_IMAGE_TIME
	rc=0
	sh "$ENCFS_SRC/test/e2e/netns.sh" sh "$0" "$@" || rc=$?
	exit "$rc"
fi
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/e2e/env.sh"

missing=$(e2e_missing)
[ -z "$missing" ] || skip_all "missing: $missing (make deps)"
t_start=$(date +%s)
diag "make image, buildah from and mount: $ENCFS_IMAGE_TIME s (image ${ENCFS_IMAGE_ID#sha256:})"

e2e_isolated
ok $? "the test runs in its own network namespace ($ENCFS_NETNS): only lo, no route"
e2e_services || bail "the fake services did not start"

# --- fixtures: the operator's side ------------------------------------------------------------
e2e_context "$T/ctx" 'package policy

api_version := "0.10.0"
framework_version := "0.2.3"
mount_device := {"allowed": true}' || bail "cannot make the security context"
e2e_context "$T/other" 'package policy
# another container group' || bail "cannot make the other security context"
head -c 32 /dev/urandom >"$T/fs.key"
e2e_image "$T/image.img" "$T/fs.key" image || bail "cannot make the image"
e2e_upload "$T/image.img" image.img || bail "cannot upload the image"
e2e_import "$T/fskey.import" fskey oct-HSM VAULT "$(cat "$T/ctx.digest")" --key-file "$T/fs.key" \
	2>"$T/import.err" || bail "cannot import fskey: $(cat "$T/import.err")"
e2e_import "$T/otherkey.import" otherkey oct-HSM VAULT "$(cat "$T/other.digest")" --key-file "$T/fs.key" \
	2>"$T/import.err" || bail "cannot import otherkey: $(cat "$T/import.err")"
mkdir "$T/cfg"
e2e_args "$T/cfg/args" "$(e2e_fs /mnt/remote/share image.img fskey oct-HSM VAULT)"
e2e_args "$T/cfg/denied" "$(e2e_fs /mnt/remote/share image.img otherkey oct-HSM VAULT)"
rm -f "$T"/cfg/*.json

# The image's configuration, as a container runtime reads it: Entrypoint, Cmd, Env, WorkingDir
"$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1]))["OCIv1"]["config"]
for e in c.get("Env") or []:
    print("env " + e)
for a in (c.get("Entrypoint") or []) + (c.get("Cmd") or []):
    print("arg " + a)
print("cwd " + (c.get("WorkingDir") or "/"))' "$ENCFS_IMAGE_CONFIG" >"$T/cfg/container" ||
	bail "cannot read the image's configuration"
diag "the image's configuration: $(tr '\n' ';' <"$T/cfg/container")"
diag "fixtures and services ready in $(($(date +%s) - t_start)) s"

# --- the VM: the image's root filesystem --------------------------------------------------------
t_vm=$(date +%s)
# shellcheck disable=SC2046 # e2e_vm_net prints options
sh "$ENCFS_SRC/test/vm/run.sh" --rootfs "$ENCFS_IMAGE_ROOT" --mem 1024 $(e2e_vm_net) \
	--file "$T/cfg/container" --file "$T/cfg/args" --file "$T/cfg/denied" --file "$T/ca/ca.pem" \
	--file "$T/ctx:/security-context-vm" --env "IMDS_PORT=$IMDS_PORT" --env "TEST_TEXT=$TEST_TEXT" \
	"$ENCFS_SRC/test/vm/image-guest.sh" >"$T/guest.tap" 2>"$T/guest.err"
vm_rc=$?
t_vm_end=$(date +%s)

# The guest's checks, renumbered among ours; its comments pass through.
e2e_guest_tap "$vm_rc" "$T/guest.tap" "$T/guest.err"

# --- what the services saw ----------------------------------------------------------------------
e2e_requests vault "$VAULT_PORT"
is "$("$PYTHON" -c 'import json, sys
print(sorted({r["path"] for r in json.load(open(sys.argv[1])) if r["path"].endswith("/release")}))' "$T/vault.requests")" \
	"['/keys/fskey/release', '/keys/otherkey/release']" "the vault was asked for the two keys"
diag "vm-image: $(($(date +%s) - t_start)) s in the namespace, the VM $((t_vm_end - t_vm)) s; $(grep '^# vm:' "$T/guest.tap" | sed 's/^# //')"
done_testing
