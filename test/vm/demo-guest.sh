#!/bin/sh
# Runs inside the VM for test/demo.sh (make demo): the sidecar as a confidential container group
# runs it, narrated for a reader.  /vm/files/args is EncfsSideCarArgs, /vm/files/denied the same
# filesystem with a key whose release policy wants another security policy.  Exit 0 when the file
# read back is the expected one and the stop left nothing behind.
# shellcheck disable=SC1091 # the harness puts it under $ENCFS_SRC in the guest
. "$ENCFS_SRC/test/vm/guest.sh"
exec 2>&1

F=/vm/files
TEXT="This is a file inside the filesystem."
export UVM_SECURITY_CONTEXT_DIR=$F/ctx
export ENCFS_IMDS_ENDPOINT="http://10.0.2.100:$IMDS_PORT"
export LogLevel=info

say() { printf '\n[vm] %s\n' "$*"; }
show() { sed 's/^/       /'; }

say "This is the confidential container group: Linux $(uname -r), no network but the forwarded services."
say "encfs.sh starts, with EncfsSideCarArgs as the container group passes it.  For each filesystem:"
echo "       mount the page blob (FUSE: read as needed) -> make a wrapping key -> attest (SNP report, here a fake one) ->"
echo "       MAA token -> key release -> unwrap -> open LUKS2 with dm-crypt -> mount -> link"
EncfsSideCarArgs=$(cat "$F/args") encfs.sh --cacert "$F/ca.pem" --fake-report 2>/tmp/sidecar.log &
pid=$!
# show the sidecar's log while it starts
shown=0
follow() {
	_n=$(wc -l </tmp/sidecar.log)
	[ "$_n" -le "$shown" ] || sed -n "$((shown + 1)),${_n}p" /tmp/sidecar.log | show
	shown=$_n
}
t0=$(vm_now)
i=0
while [ ! -e /mnt/remote/share/test.txt ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 3000 ]; do
	follow
	sleep 0.2
	i=$((i + 1))
done
sleep 0.5
follow
t1=$(vm_now)
if [ ! -e /mnt/remote/share/test.txt ]; then
	say "The sidecar did not mount the filesystem."
	exit 1
fi
say "Mounted in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}') s (emulated CPU).  What the application container sees:"
echo "       # ls -l /mnt/remote"
# shellcheck disable=SC2012 # shown to a reader
ls -l /mnt/remote | show
echo "       # mount | grep remote-crypt"
grep remote-crypt /proc/mounts | show
echo "       # cat /mnt/remote/share/test.txt"
got=$(cat /mnt/remote/share/test.txt)
printf '%s\n' "$got" | show

say "The container group stops: SIGTERM to the sidecar."
kill -TERM "$pid"
wait "$pid"
rc=$?
follow
left="$(grep -c '^/dev/mapper/' /proc/mounts) mounts, $(dmsetup ls | grep -vc '^No devices found') dm devices, $(losetup -a | wc -l) loop devices, $(find /mnt -mindepth 1 | wc -l) files under /mnt, $(find /dev/shm -mindepth 1 | wc -l) in /dev/shm"
say "encfs.sh exited $rc; left behind: $left."

say "A key meant for another container group (its release policy names another security"
echo "       policy's digest) is not released to this one:"
EncfsSideCarArgs=$(cat "$F/denied") LogLevel=warning encfs.sh --cacert "$F/ca.pem" --fake-report \
	2>/tmp/denied.log
drc=$?
grep -v ': warning: ' /tmp/denied.log | show
say "encfs.sh exited $drc (5: denied); nothing was mounted, nothing is left."

[ "$got" = "$TEXT" ] && [ "$rc" -eq 0 ] && [ "$drc" -eq 5 ] &&
	[ "$left" = "0 mounts, 0 dm devices, 0 loop devices, 0 files under /mnt, 0 in /dev/shm" ]
