# Helpers for scripts that run inside the test VM (dash); source after test/lib.sh:
#   . "$ENCFS_SRC/test/lib.sh"; . "$ENCFS_SRC/test/vm/guest.sh"
# shellcheck shell=sh

# vm_disk NAME: the /dev/vdX whose serial is NAME (run.sh gives each --disk the first 20
# characters of its file name, other characters than A-Za-z0-9._- turned into _)
vm_disk() {
	for _s in /sys/block/vd*/serial; do
		[ -r "$_s" ] || continue
		if [ "$(cat "$_s")" = "$(printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-20)" ]; then
			_d=${_s%/serial}
			echo "/dev/${_d##*/}"
			return 0
		fi
	done
	return 1
}

# vm_now: seconds since the epoch with nanoseconds (coreutils date in the VM)
vm_now() { date +%s.%N; }

# await_key_gc: dm-crypt keys unlinked from the keyrings are collected by the kernel a moment
# later: waits (at most 3 s) until /proc/keys holds none, so that a check sees what is really left
await_key_gc() {
	_i=0
	while grep -q 'logon.*cryptsetup:' /proc/keys && [ $_i -lt 30 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
}
