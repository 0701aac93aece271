#!/bin/sh
# Runs inside the test VM for test/vm-verity.t: encfs.sh with pinned images (the filesystem's
# verity object), against Azurite in the host's network namespace.  Configurations in
# /vm/files/cfg/NAME (EncfsSideCarArgs), the files' sha256 in /vm/files/sums, the name of the file
# whose block the host flipped in /vm/files/victim.  TAP on stdout.
# shellcheck disable=SC1091,SC2154 # the harness puts these under $ENCFS_SRC in the guest; run sets out, err, rc
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/vm/guest.sh"

F=/vm/files
export ENCFS_IMDS_ENDPOINT="http://10.0.2.100:$IMDS_PORT"
M=/mnt/v
args() { cat "$F/cfg/$1"; }
sidecar() { exec encfs.sh --cacert "$F/ca.pem" --allow-raw-key; }

# what a sidecar may leave behind: mounts from dm devices, dm devices, loop devices, dm-crypt keys,
# anything under /mnt, work directories, tools still running
leftovers() {
	await_key_gc
	printf 'mounts:[%s] dm:[%s] loop:[%s] keys:[%s] mnt:[%s] work:[%s] procs:[%s]' \
		"$(grep '^/dev/mapper/' /proc/mounts | cut -d' ' -f1,2 | tr '\n' ' ')" \
		"$(dmsetup ls 2>/dev/null | grep -v '^No devices found' | cut -f1 | tr '\n' ' ')" \
		"$(losetup -a | tr '\n' ' ')" \
		"$(grep 'logon' /proc/keys | sed 's/.* logon *//' | tr '\n' ' ')" \
		"$(find /mnt -mindepth 1 | tr '\n' ' ')" \
		"$(find /dev/shm /tmp -maxdepth 1 -name 'encfs.*' | tr '\n' ' ')" \
		"$(cat /proc/[0-9]*/comm 2>/dev/null | grep '^encfs' | tr '\n' ' ')"
}
NOTHING="mounts:[] dm:[] loop:[] keys:[] mnt:[] work:[] procs:[]"
nothing_left() {
	is "$(leftovers)" "$NOTHING" "$1: nothing is left behind"
	grep '^/dev/mapper/' /proc/mounts | cut -d' ' -f2 | while read -r _m; do umount "$_m"; done
	for _d in $(dmsetup ls 2>/dev/null | grep -v '^No devices found' | cut -f1 | sort -r); do
		dmsetup remove --force "$_d" >/dev/null 2>&1
	done
	losetup -D 2>/dev/null
	find /mnt -mindepth 1 -maxdepth 1 -exec rm -rf {} +
	rm -rf /dev/shm/encfs.* /tmp/encfs.*
}
errors() { printf '%s\n' "$1" | grep -v -E -e '^[a-z.-]*: (warning|info|debug|trace): ' -e '^$'; }
# start NAME: the sidecar in the background with configuration NAME; waits until it has mounted
# (or ended); pid in $pid
start() {
	EncfsSideCarArgs=$(args "$1") sidecar >"/tmp/$1.out" 2>"/tmp/$1.err" &
	pid=$!
	_i=0
	while [ $_i -lt 3000 ] && kill -0 "$pid" 2>/dev/null && [ ! -e "$M/which.txt" ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
}
stop() { # stop DESCRIPTION: SIGTERM, exit 0, nothing left
	kill -TERM "$pid"
	_rc=0
	wait "$pid" || _rc=$?
	is "$_rc" 0 "$1: SIGTERM: exit 0"
	nothing_left "$1: SIGTERM"
}
# sums: "SHA256  NAME" of every regular file under $M, sorted, as the host's sha256sum wrote them
sums() { (cd "$M/" && find . -type f | sed 's|^\./||' | sort | while read -r f; do sha256sum "$f"; done); }

is "$(leftovers)" "$NOTHING" "a clean guest to start with"

# scenarios PREFIX HOW: the three cases with configurations PREFIXpinned, PREFIXrollback and
# PREFIXflipped; HOW is put before each description
scenarios() {
	pre=$1 how=$2

	# --- the pinned image: opens, every file reads -----------------------------------------------
	start "${pre}pinned"
	is "$(cat "$M/which.txt" 2>&1)" "new" "${how}pinned: the pinned image is mounted"
	run sums
	is "$out" "$(cat "$F/sums")" "${how}pinned: every file reads back, byte for byte"
	like "$(dmsetup ls 2>&1 | cut -f1 | tr '\n' ' ')" "remote-crypt-0-verity " "${how}pinned: remote-crypt-0-verity is there"
	vt=$(dmsetup table remote-crypt-0-verity 2>&1)
	like "$vt" " verity 1 " "${how}pinned: it is dm-verity, format 1"
	like "$vt" " 4096 4096 $(cat "$F/blocks") " "${how}pinned: 4096-byte blocks, the pinned data blocks"
	like "$vt" " sha256 $(cat "$F/root") " "${how}pinned: with the pinned root hash"
	unlike "$vt" "corruption" "${how}pinned: neither restart_on_corruption nor panic_on_corruption (EIO)"
	is "$(dmsetup deps -o devname remote-crypt-0 2>&1 | sed 's/.*: //')" "(remote-crypt-0-verity)" \
		"${how}pinned: dm-crypt is on the verity device"
	is "$(errors "$(cat "/tmp/${pre}pinned.err")")" "" "${how}pinned: no error line"
	stop "${how}pinned"

	# --- the blob replaced by an older image with the same key: refused at open -------------------
	start "${pre}rollback"
	# (still running: it mounted the older image; the checks below fail, and it is stopped)
	! kill -0 "$pid" 2>/dev/null || kill -TERM "$pid"
	_rc=0
	wait "$pid" || _rc=$?
	is "$_rc" 7 "${how}rollback: exit 7"
	err=$(cat "/tmp/${pre}rollback.err")
	is "$(errors "$err" | wc -l)" 1 "${how}rollback: one error line"
	like "$(errors "$err")" "encfs.sh: filesystem 0 ($M): open: encfs-dmsetup: remote-crypt-0: dm-verity refused the image: its hash tree does not match the pinned root hash" \
		"${how}rollback: the line names the filesystem and the root hash mismatch"
	[ "$_rc" = 7 ] || diag "stderr: $err"
	nothing_left "${how}rollback"

	# --- one ciphertext block flipped: opens, that file fails with EIO, the others read -----------
	start "${pre}flipped"
	is "$(cat "$M/which.txt" 2>&1)" "new" "${how}flipped: the image opens and mounts"
	victim=$(cat "$F/victim")
	run cat "$M/$victim"
	is "$rc" 1 "${how}flipped: reading $victim fails"
	like "$err" "Input/output error" "${how}flipped: ... with EIO"
	grep -v " $victim\$" "$F/sums" >/tmp/others
	run sums
	is "$(printf '%s\n' "$out" | grep -v " $victim\$")" "$(cat /tmp/others)" "${how}flipped: every other file reads back"
	stop "${how}flipped"
}
scenarios "" ""
scenarios mounted- "blob mounted, "

# --- a stop during the start of a pinned image leaves nothing either -------------------------
EncfsSideCarArgs=$(args pinned) sidecar >/tmp/early.out 2>/tmp/early.err &
pid=$!
sleep 1
kill -TERM "$pid"
_rc=0
wait "$pid" || _rc=$?
is "$_rc" 0 "pinned, stopped at once: exit 0"
nothing_left "pinned, stopped at once"

done_testing
