#!/bin/sh
# Runs inside the VM for test/vm-image.t, whose root filesystem is the sidecar image's (run.sh
# --rootfs): the programs here are the image's.  This script plays the container runtime and the
# application container of a confidential container group:
#  - the runtime starts the image's entry point as one does: argv = Entrypoint + Cmd + the
#    deployment's arguments, the environment = the image's Env + the deployment's variables and
#    nothing else, in the image's WorkingDir, as PID 1 of a PID namespace of its own, as root with
#    every capability, /dev /sys /proc mounted, and the group's emptyDir volume (a tmpfs) at
#    /mnt/remote, shared with the application;
#  - the application reads /mnt/remote/share/test.txt;
#  - the runtime stops the container with SIGTERM (to its PID 1, from outside), and nothing may be
#    left: no mount, dm device, loop device, FUSE mount, key in the keyring, file, process.
# Then a start with a key whose release policy names another security policy exits 5, with one
# error line, leaving nothing either.
#
# Files: /vm/files/container (the image's configuration from buildah inspect: "env NAME=VALUE",
# "arg WORD" (Entrypoint then Cmd), "cwd DIR" lines), /vm/files/args and /vm/files/denied
# (EncfsSideCarArgs), /vm/files/ca.pem (the test CA); the security context is where ACI puts it,
# /security-context-vm.  Environment: IMDS_PORT, TEST_TEXT.
# shellcheck disable=SC1091,SC2154 # the harness puts these under $ENCFS_SRC in the guest; rc, out
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/vm/guest.sh"

F=/vm/files
SPEC=$F/container
MNT=/mnt/remote

# the deployment: its environment variables for the sidecar, and its arguments (the test switches:
# the test CA instead of the system store, a fake SNP report that only the test MAA accepts)
deploy_env() { # deploy_env ARGSFILE: NAME=VALUE lines
	printf '%s\n' "EncfsSideCarArgs=$(cat "$1")" "ENCFS_IMDS_ENDPOINT=http://10.0.2.100:$IMDS_PORT" "LogLevel=info"
}
DEPLOY_ARGS="--cacert $F/ca.pem --fake-report"

# container_start ARGSFILE: the container, in the background; $rt is the runtime's process (it
# exits with the container's status), $pid1 the container's PID 1 as seen from here
container_start() {
	_deploy=$(deploy_env "$1")
	cwd=$(sed -n 's/^cwd //p' "$SPEC")
	set -- unshare --pid --fork env -i
	while read -r _k _v; do [ "$_k" != env ] || set -- "$@" "$_v"; done <"$SPEC"
	while read -r _e; do set -- "$@" "$_e"; done <<EOF
$_deploy
EOF
	while read -r _k _v; do [ "$_k" != arg ] || set -- "$@" "$_v"; done <"$SPEC"
	# shellcheck disable=SC2086 # words without blanks
	set -- "$@" $DEPLOY_ARGS
	(cd "${cwd:-/}" && exec "$@") </dev/null >"$T/sidecar.out" 2>"$T/sidecar.err" &
	rt=$!
	pid1=""
	_i=0
	while [ -z "$pid1" ] && [ $_i -lt 100 ]; do
		pid1=$(tr -d ' ' <"/proc/$rt/task/$rt/children" 2>/dev/null)
		[ -n "$pid1" ] || sleep 0.1
		_i=$((_i + 1))
	done
}

# left: what is left of a sidecar (each should be 0)
left() {
	await_key_gc
	_loops=0
	for _f in /sys/block/loop*/loop/backing_file; do [ ! -f "$_f" ] || _loops=$((_loops + 1)); done
	printf '%s mounts, %s fuse, %s dm, %s loop, %s keys, %s files, %s in /dev/shm, %s processes' \
		"$(grep -c -e " $MNT/" -e '^/dev/mapper/' -e '^/dev/dm-' /proc/mounts)" \
		"$(grep -c ' fuse' /proc/mounts)" \
		"$(find /sys/block -maxdepth 1 -name 'dm-*' | wc -l)" "$_loops" \
		"$(grep -c 'logon.*cryptsetup:' /proc/keys)" \
		"$(find "$MNT" -mindepth 1 | wc -l)" "$(find /dev/shm -mindepth 1 | wc -l)" \
		"$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^encfs')"
}
NOTHING="0 mounts, 0 fuse, 0 dm, 0 loop, 0 keys, 0 files, 0 in /dev/shm, 0 processes"

# --- the root filesystem is the image's -------------------------------------------------------
is "$(sed -n 's/^arg //p' "$SPEC" | head -n 1)" /encfs.sh "the image's entry point is /encfs.sh"
is "$(readlink -f /bin/sh)" /usr/bin/dash "this root filesystem's /bin/sh is the image's dash, not busybox"
ok "$([ -x /encfs.sh ] && [ -x /usr/bin/encfs-dmsetup ] && ! command -v cryptsetup >/dev/null &&
	! command -v busybox >/dev/null && echo 0 || echo 1)" "the image's tools are here, the harness's (busybox, cryptsetup) are not"
mkdir -p "$MNT"
mount -t tmpfs -o mode=0755 remotemounts "$MNT"
ok $? "the group's emptyDir volume is mounted at $MNT"
is "$(left)" "$NOTHING" "nothing of a sidecar before the start"

# --- start, read, stop --------------------------------------------------------------------------
t0=$(vm_now)
container_start "$F/args"
ok "$([ -n "$pid1" ] && echo 0 || echo 1)" "the container started"
is "$(awk '/^NSpid:/ {print $NF}' "/proc/$pid1/status" 2>/dev/null)" 1 "/encfs.sh is PID 1 of its PID namespace"
is "$(tr '\0' ' ' <"/proc/$pid1/cmdline" 2>/dev/null)" "/bin/sh /encfs.sh $DEPLOY_ARGS " \
	"its command line: the entry point and the deployment's arguments"
is "$(tr '\0' '\n' <"/proc/$pid1/environ" 2>/dev/null | sed 's/=.*//' | LC_ALL=C sort | tr '\n' ' ')" \
	"ENCFS_IMDS_ENDPOINT EncfsSideCarArgs LogLevel PATH " "its environment: the image's and the deployment's, nothing else"
i=0
while [ ! -e "$MNT/share/test.txt" ] && kill -0 "$rt" 2>/dev/null && [ $i -lt 1500 ]; do
	sleep 0.2
	i=$((i + 1))
done
t1=$(vm_now)
diag "the sidecar mounted the filesystem in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
# the application container: reads the file through the shared volume
run cat "$MNT/share/test.txt"
is "$rc:$out" "0:$TEST_TEXT" "the application reads $MNT/share/test.txt through the volume"
is "$(cat "$MNT/share/which.txt" 2>/dev/null)" image "... of the filesystem in the blob"
like "$(grep " $MNT/" /proc/mounts)" "ext4 ro," "the filesystem is mounted read-only from the dm-crypt device"
ok "$(kill -0 "$rt" 2>/dev/null && echo 0 || echo 1)" "the sidecar keeps running"

kill -TERM "$pid1"
wait "$rt"
rc=$?
is "$rc" 0 "SIGTERM to the container's PID 1: the sidecar stops, exit status 0"
is "$(left)" "$NOTHING" "... and leaves nothing behind"
like "$(cat "$T/sidecar.err")" "encfs.sh: info: stopped" "... saying it stopped"
errors=$(grep -v -E '^[a-z0-9.-]+: (info|warning): ' "$T/sidecar.err")
is "$errors" "" "no error line from the sidecar or its tools"
[ -z "$errors" ] || sed 's/^/# sidecar: /' "$T/sidecar.err"

# --- a key released to another container group only ---------------------------------------------
container_start "$F/denied"
wait "$rt"
rc=$?
is "$rc" 5 "a key whose release policy names another security policy: exit status 5 (denied)"
like "$(grep -v -E '^[a-z0-9.-]+: (info|warning): ' "$T/sidecar.err")" \
	"encfs.sh: filesystem 0 ($MNT/share): release: encfs-skr: " "... in one line naming the filesystem and the step"
is "$(grep -c -v -E '^[a-z0-9.-]+: (info|warning): ' "$T/sidecar.err")" 1 "... only one error line"
is "$(left)" "$NOTHING" "... and nothing left behind"

umount "$MNT"
done_testing
