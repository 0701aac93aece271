#!/bin/sh
# Runs inside the test VM for test/vm-sidecar.t: encfs.sh, the sidecar, as a confidential
# container runs it, against the fake Azure services of the host's network namespace (reached
# through run.sh --forward under their test host names).  TAP on stdout.  Each scenario's
# configuration is /vm/files/cfg/NAME (EncfsSideCarArgs, base64).  What the host checks after the
# boot (the trace log, the process list and environment sampled during a start) goes into a tar
# archive on the disk export.img.
# shellcheck disable=SC1091,SC2154 # the harness puts these under $ENCFS_SRC in the guest; run sets out, err, rc
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/vm/guest.sh"

F=/vm/files
TEXT="This is a file inside the filesystem."
export UVM_SECURITY_CONTEXT_DIR=$F/ctx
export ENCFS_IMDS_ENDPOINT="http://10.0.2.100:$IMDS_PORT"
X=/tmp/export
mkdir -p "$X/procs"
export_dev=$(vm_disk export.img) || bail "no export.img disk"

args() { cat "$F/cfg/$1"; }
# sidecar [OPTION]...: encfs.sh as the tests run it (test CA, fake SNP report); started in the
# background (exec: its pid is the sidecar's, and kill sends it the signal).  run_sidecar: in the foreground,
# for at most 300 s.
sidecar() { exec encfs.sh --cacert "$F/ca.pem" --fake-report "$@"; }
run_sidecar() { run timeout 300 encfs.sh --cacert "$F/ca.pem" --fake-report "$@"; }

# connections: TCP connections this guest has opened so far (any process, any address)
connections() { awk '$1 == "Tcp:" && $6 ~ /^[0-9]+$/ {print $6}' /proc/net/snmp; }

# What a sidecar may leave behind: mounts from dm devices, blob mounts (FUSE), dm devices, loop
# devices, dm-crypt keys in the keyrings (unlinked keys are collected by the kernel a moment later:
# wait up to 3 s for that), anything under /mnt, work directories, tools (and the relay of a blob
# server's log lines) still running.
leftovers() {
	await_key_gc
	printf 'mounts:[%s] fuse:[%s] dm:[%s] loop:[%s] keys:[%s] mnt:[%s] work:[%s] procs:[%s]' \
		"$(grep '^/dev/mapper/' /proc/mounts | cut -d' ' -f1,2 | tr '\n' ' ')" \
		"$(awk '$3 ~ /^fuse/ {print $2}' /proc/mounts | tr '\n' ' ')" \
		"$(dmsetup ls 2>/dev/null | grep -v '^No devices found' | cut -f1 | tr '\n' ' ')" \
		"$(losetup -a | tr '\n' ' ')" \
		"$(grep 'logon' /proc/keys | sed 's/.* logon *//' | tr '\n' ' ')" \
		"$(find /mnt -mindepth 1 | tr '\n' ' ')" \
		"$(find /dev/shm /tmp -maxdepth 1 -name 'encfs.*' | tr '\n' ' ')" \
		"$(cat /proc/[0-9]*/comm 2>/dev/null | grep -e '^encfs' -e '^tail$' | tr '\n' ' ')"
}
NOTHING="mounts:[] fuse:[] dm:[] loop:[] keys:[] mnt:[] work:[] procs:[]"
# nothing_left DESCRIPTION: checks, then clears what is left so that one failure does not spill
nothing_left() {
	is "$(leftovers)" "$NOTHING" "$1: nothing is left behind"
	grep '^/dev/mapper/' /proc/mounts | cut -d' ' -f2 | while read -r _m; do umount "$_m"; done
	awk '$3 ~ /^fuse/ {print $2}' /proc/mounts | while read -r _m; do umount -l "$_m"; done
	for _c in /proc/[0-9]*/comm; do
		[ "$(cat "$_c" 2>/dev/null)" = encfs-fetch ] && kill -KILL "$(basename "$(dirname "$_c")")" 2>/dev/null
	done
	for _d in $(dmsetup ls 2>/dev/null | grep -v '^No devices found' | cut -f1); do
		dmsetup remove --force "$_d" >/dev/null 2>&1
	done
	losetup -D 2>/dev/null
	find /mnt -mindepth 1 -maxdepth 1 -exec rm -rf {} +
	rm -rf /dev/shm/encfs.* /tmp/encfs.*
}
# errors TEXT: the lines of TEXT that are not warnings or info
errors() { printf '%s\n' "$1" | grep -v -E -e '^[a-z.-]*: (warning|info|debug|trace): ' -e '^$'; }

# fails NAME STATUS TEXT DESCRIPTION [encfs.sh OPTION]...: the sidecar, started with configuration
# NAME, fails with STATUS and one error line holding TEXT, and leaves nothing behind.
# refused NAME STATUS TEXT DESCRIPTION [encfs.sh OPTION]...: the same, and the sidecar has not
# opened a single connection.
refused() {
	_offline=1
	fails "$@"
	_offline=0
}
_offline=0
fails() {
	_name=$1 _want=$2 _text=$3 _what=$4
	shift 4
	_c0=$(connections)
	EncfsSideCarArgs=$(args "$_name") run_sidecar "$@"
	_c1=$(connections)
	is "$rc" "$_want" "$_what: exit $_want"
	is "$(errors "$err" | wc -l)" 1 "$_what: one error line"
	like "$(errors "$err")" "$_text" "$_what: the error says so"
	[ "$rc" = "$_want" ] || diag "stderr: $err"
	if [ "$_offline" = 1 ]; then
		is "$((_c1 - _c0))" 0 "$_what: refused before any connection"
	fi
	nothing_left "$_what"
}

# wait_for PID PATH...: until every PATH exists (a link to a mounted filesystem), or the sidecar
# PID ended; at most 300 s
wait_for() {
	_pid=$1
	shift
	_i=0
	while [ $_i -lt 3000 ] && kill -0 "$_pid" 2>/dev/null; do
		_all=1
		for _p in "$@"; do [ -e "$_p" ] || _all=0; done
		[ $_all -eq 0 ] || return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}
# wait_log FILE TEXT: until FILE has TEXT (at most 30 s)
wait_log() {
	_i=0
	while [ $_i -lt 300 ] && ! grep -q -F "$2" "$1" 2>/dev/null; do
		sleep 0.1
		_i=$((_i + 1))
	done
}
# wait_file GLOB: until a file matching GLOB exists (at most 300 s)
wait_file() {
	_i=0
	while [ $_i -lt 3000 ]; do
		for _f in $1; do [ -e "$_f" ] && return 0; done
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}
# stop PID DESCRIPTION [SECONDS]: SIGTERM, then the sidecar ends with 0 within SECONDS (60) and
# leaves nothing
stop() {
	kill -TERM "$1"
	_t0=$(vm_now)
	_rc=0
	wait "$1" || _rc=$?
	_t1=$(vm_now)
	is "$_rc" 0 "$2: SIGTERM: exit 0"
	ok "$(awk -v a="$_t0" -v b="$_t1" -v l="${3:-60}" 'BEGIN {print (b - a < l) ? 0 : 1}')" \
		"$2: SIGTERM: stopped in $(awk -v a="$_t0" -v b="$_t1" 'BEGIN {printf "%.1f", b - a}') s"
	nothing_left "$2: SIGTERM"
}

# sample_procs: until /tmp/stop-sampling exists, the command line and environment of every process,
# whenever a new one appears, into $X/procs (the host looks there for keys and tokens)
# (a process is known by its pid and name, which changes when it executes a program: shell
# builtins only, but for the copies, so that the sampling does not slow the start much)
sample_procs() {
	while [ ! -e /tmp/stop-sampling ]; do
		for _d in /proc/[0-9]*; do
			read -r _comm 2>/dev/null <"$_d/comm" || continue
			case $_comm in */* | kworker* | ksoftirq* | migration* | rcu_* | cpuhp* | idle_inject*) continue ;; esac
			_n=${_d#/proc/}-$_comm
			[ -e "$X/procs/$_n.cmdline" ] && continue
			cat "$_d/cmdline" >"$X/procs/$_n.cmdline" 2>/dev/null
			cat "$_d/environ" >"$X/procs/$_n.environ" 2>/dev/null
		done
		sleep 0.05
	done
}

ok "$(command -v encfs.sh >/dev/null && [ -x /usr/bin/encfs-fetch ] && echo 0 || echo 1)" \
	"make install put encfs.sh and the tools in /usr/bin"
is "$(ip -o -4 addr show eth0 | awk '{print $4}') $(ip route | tr -s ' \n' '  ')" \
	"10.0.2.15/24 10.0.2.0/24 dev eth0 scope link src 10.0.2.15 " \
	"the guest's link: 10.0.2.15/24, no default route"
if printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 nc 10.0.2.2 "$IMDS_PORT" >/dev/null 2>&1; then
	reach=yes
else
	reach=no
fi
is "$reach" no "the host side is reachable only through the forwards (not at 10.0.2.2)"
is "$(leftovers)" "$NOTHING" "a clean guest to start with"

# --- refusals before anything is done --------------------------------------------------------
refused badconfig 3 "encfs-config: config: azure_filesystems[0].mount_point" "a relative mount point"
refused dlrw 3 "encfs-config: config: azure_filesystems[1].download: a downloaded image is a copy: writes to it would be lost" \
	"read_write with download"
refused raw 3 "raw_key" "raw_key without --allow-raw-key"
mkdir -p /mnt/remote/share
EncfsSideCarArgs=$(args ok) run_sidecar
is "$rc:$(errors "$err")" \
	"3:encfs.sh: config: azure_filesystems[0].mount_point: /mnt/remote/share already exists (it must be free: the sidecar creates it as a link)" \
	"a mount point that exists: exit 3, one line"
is "$(find /mnt | tr '\n' ' ')" "/mnt /mnt/remote /mnt/remote/share " "a mount point that exists: it is left alone"
rm -rf /mnt/remote
EncfsSideCarArgs=$(args ok) run_sidecar --bogus
is "$rc:$(errors "$err" | head -n 1)" "2:usage: encfs.sh [-v] [--allow-raw-key] [--allow-http] [--fake-report] [--cacert file]" \
	"an unknown option: exit 2 and the usage"
# a dm-crypt device of the name the sidecar would use (another sidecar's, say) is not this
# sidecar's: refused, and left alone (a failed open would otherwise have the cleanup close it)
truncate -s 20M /tmp/other.img
head -c 32 /dev/urandom >/tmp/other.key
cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--key-file /tmp/other.key /tmp/other.img || bail "cannot make a LUKS2 image with cryptsetup"
cryptsetup open --key-file /tmp/other.key /tmp/other.img remote-crypt-0 ||
	bail "cannot open a dm-crypt device remote-crypt-0 with cryptsetup"
EncfsSideCarArgs=$(args raw) run_sidecar --allow-raw-key
is "$rc:$(errors "$err")" \
	"8:encfs.sh: filesystem 0 (/mnt/raw): open: /dev/mapper/remote-crypt-0 already exists (another sidecar, or left from an earlier run: encfs-dmsetup close remote-crypt-0)" \
	"a dm-crypt device remote-crypt-0 that exists: exit 8, one line"
is "$(dmsetup ls 2>/dev/null | cut -f1 | tr '\n' ' ')" "remote-crypt-0 " "a dm-crypt device remote-crypt-0 that exists: it is left alone"
cryptsetup close remote-crypt-0
rm -f /tmp/other.img /tmp/other.key
nothing_left "a dm-crypt device remote-crypt-0 that exists"
# the directory a filesystem is mounted on, left from an earlier run: refused before any
# download or key release, and left alone
mkdir /mnt/.filesystem-0
_c0=$(connections)
EncfsSideCarArgs=$(args raw) run_sidecar --allow-raw-key
is "$rc:$(errors "$err")" \
	"8:encfs.sh: filesystem 0 (/mnt/raw): mount: /mnt/.filesystem-0 already exists (left from an earlier run? remove it once nothing is mounted on it)" \
	"a .filesystem-0 directory that exists: exit 8, one line"
is "$(($(connections) - _c0))" 0 "a .filesystem-0 directory that exists: refused before any connection"
ok "$([ -d /mnt/.filesystem-0 ] && echo 0 || echo 1)" "a .filesystem-0 directory that exists: it is left alone"
rmdir /mnt/.filesystem-0
nothing_left "a .filesystem-0 directory that exists"

# --- failures half way: each undoes everything -----------------------------------------------
fails missing 3 "encfs.sh: filesystem 0 (/mnt/missing): fetch: encfs-fetch: " "a blob that does not exist"
like "$err" "404" "a blob that does not exist: the error shows the 404"
fails denied 5 "encfs.sh: filesystem 1 (/mnt/remote/second): release: encfs-skr: releasing key deniedkey" \
	"a release policy the VM does not meet (the first filesystem was mounted)"
like "$err" "HTTP 403" "a release policy the VM does not meet: the vault's 403"
fails wrongkey 7 "encfs.sh: filesystem 0 (/mnt/wrong): open: encfs-dmsetup: " \
	"a released key that does not open the image"

# --- raw_key, with the upstream positional arguments -----------------------------------------
sidecar --allow-raw-key "$(args raw)" /tmp/raw.log info >/tmp/raw.out 2>/tmp/raw.err &
pid=$!
wait_for "$pid" /mnt/raw/test.txt
wait_log /tmp/raw.log "mounted read-only at /mnt/raw"
is "$(cat /mnt/raw/test.txt 2>&1)" "$TEXT" "raw_key with --allow-raw-key: the file reads back"
is "$(cat /mnt/raw/which.txt 2>&1)" "raw" "raw_key: it is the raw key's image"
like "$(cat /tmp/raw.log 2>&1)" "encfs.sh: info: filesystem 0 (/mnt/raw): mounted read-only at /mnt/raw" \
	"LogFile and LogLevel given as arguments are used"
is "$(stat -c %a /tmp/raw.log)" 600 "the log file is mode 0600"
stop "$pid" "raw_key"
rm -f /tmp/raw.log
# a LogFile that cannot be written: as the tools, the sidecar logs to stderr only and goes on
sidecar --allow-raw-key "$(args raw)" /nonexistent/raw.log info >/tmp/nolog.out 2>/tmp/nolog.err &
pid=$!
wait_for "$pid" /mnt/raw/test.txt
wait_log /tmp/nolog.err "mounted read-only at /mnt/raw"
sleep 1
ok "$(kill -0 "$pid" 2>/dev/null && echo 0 || echo 1)" "a LogFile that cannot be written: the sidecar still runs"
is "$(cat /mnt/raw/test.txt 2>&1)" "$TEXT" "a LogFile that cannot be written: the file reads back"
is "$(errors "$(cat /tmp/nolog.err)")" "" "a LogFile that cannot be written: no error line"
stop "$pid" "a LogFile that cannot be written"

# --- a stop while the application still holds a file ------------------------------------------
# umount fails while a process holds a file: after --unmount-grace the filesystem is detached
# lazily and the dm device closed with deferred removal; the sidecar exits 8 naming what is held,
# the holder reads on, and once it closes the file, device and key are gone
sidecar --allow-raw-key --unmount-grace 1 "$(args raw)" >/tmp/hold.out 2>/tmp/hold.err &
pid=$!
wait_for "$pid" /mnt/raw/test.txt
mkfifo /tmp/hold
sh -c 'exec 3</mnt/raw/test.txt; read -r _ </tmp/hold; cat <&3' >/tmp/held.out 2>&1 &
holder=$!
i=0
while [ ! -e "/proc/$holder/fd/3" ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
ok "$([ -e "/proc/$holder/fd/3" ] && echo 0 || echo 1)" "in use at SIGTERM: a process holds a file of the filesystem"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
is "$rc:$(errors "$(cat /tmp/hold.err)")" \
	"8:encfs.sh: stopped, but still in use: filesystem 0 (/mnt/raw); /dev/mapper/remote-crypt-0 (removed when its last user closes it); the blob of filesystem 0 (served until the device goes) (a process of the container group holds files there; they go when it closes them)" \
	"in use at SIGTERM: exit 8 and one line naming what is held"
like "$(cat /tmp/hold.err)" "encfs.sh: warning: filesystem 0 (/mnt/raw): still in use after the grace of 1 s: unmounted lazily" \
	"in use at SIGTERM: the lazy unmount is a warning"
is "$(grep -c ' /mnt/raw\| /mnt/.filesystem-0 ' /proc/mounts) $(find /mnt -mindepth 1 | tr '\n' ' ')" "0 " \
	"in use at SIGTERM: the mount is detached, the link and directory are gone"
is "$(dmsetup ls 2>/dev/null | cut -f1 | tr '\n' ' ')" "remote-crypt-0 " "in use at SIGTERM: the dm device stays while the file is open"
is "$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^encfs-fetch$')" 1 "in use at SIGTERM: the blob server goes on"
echo go >/tmp/hold
wait "$holder"
is "$(cat /tmp/held.out)" "$TEXT" "in use at SIGTERM: the holder read its file to the end"
# once the file is closed: the mount goes, the dm device with it, its loop device, the blob's
# FUSE mount and its server
await 10 "the dm device and the blob server to go" \
	sh -c '! dmsetup ls 2>/dev/null | grep -q "^remote-crypt-0" && ! cat /proc/[0-9]*/comm 2>/dev/null | grep -qx encfs-fetch'
nothing_left "in use at SIGTERM, once the holder closed its file (no dm device, no key, no server)"
rm -f /tmp/hold

# --- cleanup undoes only what this run made ---------------------------------------------------
# While the release of racekey is held back (10 s in the vault), another sidecar makes the dm
# device this one is about to create: the open fails, and the cleanup leaves that device alone.
# wait_release: until this sidecar's encfs-skr says it is releasing racekey
wait_release() {
	i=0
	while ! grep -q 'releasing key racekey' /dev/shm/encfs.*/stage-4.err 2>/dev/null && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	ok "$([ $i -lt 600 ] && echo 0 || echo 1)" "$1: the release is under way"
}
EncfsSideCarArgs=$(args race) LogLevel=info sidecar >/tmp/r1.out 2>/tmp/r1.err &
pid=$!
wait_release "a device made meanwhile"
dmsetup create remote-crypt-0 --table "0 8 error" || bail "cannot make a dm device remote-crypt-0"
rc=0
wait "$pid" || rc=$?
is "$rc:$(errors "$(cat /tmp/r1.err)")" \
	"8:encfs.sh: filesystem 0 (/mnt/race): open: encfs-dmsetup: device-mapper: remote-crypt-0 already exists" \
	"a device made meanwhile: the open fails, exit 8"
is "$(dmsetup table remote-crypt-0 2>&1)" "0 8 error " "a device made meanwhile: it is left alone"
dmsetup remove remote-crypt-0
nothing_left "a device made meanwhile"
# ... or the link at mount_point, here to a directory: our link is not made, theirs is left alone,
# and our mount and device are undone
EncfsSideCarArgs=$(args race) LogLevel=info sidecar >/tmp/r2.out 2>/tmp/r2.err &
pid=$!
wait_release "a link made meanwhile"
mkdir -p /tmp/theirs
ln -s /tmp/theirs /mnt/race
rc=0
wait "$pid" || rc=$?
is "$rc:$(errors "$(cat /tmp/r2.err)" | sed 's/ (did something.*//')" \
	"8:encfs.sh: filesystem 0 (/mnt/race): link: linking /mnt/race failed" "a link made meanwhile: exit 8"
is "$(readlink /mnt/race) $(find /tmp/theirs -mindepth 1)" "/tmp/theirs " \
	"a link made meanwhile: it is left alone, and nothing was put in its directory"
rm -f /mnt/race
rmdir /tmp/theirs
nothing_left "a link made meanwhile"
# ... or a directory there: not a place to put our link in either
EncfsSideCarArgs=$(args race) LogLevel=info sidecar >/tmp/r3.out 2>/tmp/r3.err &
pid=$!
wait_release "a directory made meanwhile"
mkdir /mnt/race
rc=0
wait "$pid" || rc=$?
is "$rc:$(errors "$(cat /tmp/r3.err)" | sed 's/ (did something.*//')" \
	"8:encfs.sh: filesystem 0 (/mnt/race): link: linking /mnt/race failed" "a directory made meanwhile: exit 8"
is "$(find /mnt/race -mindepth 1)" "" "a directory made meanwhile: it is left alone, and empty"
rmdir /mnt/race
nothing_left "a directory made meanwhile"

# --- the success path: two filesystems, oct-HSM from a Key Vault, RSA-HSM from a Managed HSM --
rm -f /tmp/stop-sampling
sample_procs &
sampler=$!
t0=$(vm_now)
EncfsSideCarArgs=$(args ok) LogLevel=trace LogFile=$X/sidecar.log sidecar >/tmp/ok.out 2>/tmp/ok.err &
pid=$!
wait_for "$pid" /mnt/remote/share/test.txt /mnt/remote/rsa/test.txt
t1=$(vm_now)
touch /tmp/stop-sampling
wait "$sampler"
diag "two filesystems mounted in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
is "$(cat /mnt/remote/share/test.txt 2>&1)" "$TEXT" "oct-HSM: the file reads back through the link"
is "$(cat /mnt/remote/share/which.txt 2>&1)" "oct" "oct-HSM: it is the oct-HSM key's image"
is "$(cat /mnt/remote/rsa/test.txt 2>&1)" "$TEXT" "RSA-HSM: the file reads back through the link"
is "$(cat /mnt/remote/rsa/which.txt 2>&1)" "rsa" "RSA-HSM: it is the RSA-HSM key's image (HKDF-derived key)"
is "$(readlink /mnt/remote/share) $(readlink /mnt/remote/rsa)" ".filesystem-0 .filesystem-1" \
	"mount_point is a link to <mount_point>/../.filesystem-N"
is "$(grep ' /mnt/remote/.filesystem-' /proc/mounts | cut -d' ' -f1-3 | tr '\n' ' ')" \
	"/dev/mapper/remote-crypt-0 /mnt/remote/.filesystem-0 ext4 /dev/mapper/remote-crypt-1 /mnt/remote/.filesystem-1 ext4 " \
	"ext4 from /dev/mapper/remote-crypt-N at .filesystem-N"
like "$(grep ' /mnt/remote/.filesystem-0 ' /proc/mounts | cut -d' ' -f4)," "ro," "mounted read-only"
for o in nosuid nodev; do
	is "$(grep -c " /mnt/remote/.filesystem-[01] ext4 \([^ ]*,\)\{0,1\}${o}[, ]" /proc/mounts)" 2 "mounted $o (both)"
done
is "$(blockdev --getro /dev/mapper/remote-crypt-0) $(blockdev --getro /dev/mapper/remote-crypt-1)" "1 1" \
	"the dm-crypt devices are read-only"
touch /mnt/remote/share/new 2>/dev/null
is "$?" 1 "a write is refused"
like "$(dmsetup table remote-crypt-0)" " crypt aes-xts-plain64 " "a dm-crypt table"
is "$(grep -c 'logon.*cryptsetup:' /proc/keys)" 0 "no volume key is left in a keyring while mounted"
work=$(find /dev/shm -maxdepth 1 -name 'encfs.*')
is "$(stat -c %a "$work" 2>&1) $(find "$work" -mindepth 1 | sed 's|.*/||' | sort | tr '\n' ' ')" \
	"700 blob-0 blob-0.log blob-0.pid blob-0.relay blob-0.start blob-1 blob-1.log blob-1.pid blob-1.relay blob-1.start data data opened-0 opened-1 " \
	"the work directory (mode 0700) holds the blob mounts, the opened devices' uuids and no wrapping key"
is "$(losetup -n -O RO,BACK-FILE | awk '{print $1, $2}' | sort | tr '\n' ' ')" "1 $work/blob-0/data 1 $work/blob-1/data " \
	"read-only loop devices on the mounted blobs"
like "$(cat /tmp/ok.err)" "encfs-fetch: info: " "the blob servers' log lines are passed on"
is "$(cat "$work/opened-0")" "$(cat /sys/block/dm-*/dm/uuid | grep -e '-remote-crypt-0$')" \
	"... the uuid is the one of remote-crypt-0"
is "$(errors "$(cat /tmp/ok.err)")" "" "no error line"
stop "$pid" "two filesystems"
like "$(cat /tmp/ok.err)" "encfs.sh: debug: undo: undo_close 'remote-crypt-0' 0" "the stop is logged, step by step"

# --- SIGTERM at any moment -------------------------------------------------------------------
# early: as soon as the first filesystem's image is being downloaded
EncfsSideCarArgs=$(args ok) sidecar >/tmp/t1.out 2>/tmp/t1.err &
pid=$!
wait_file "/dev/shm/encfs.*/blob-0"
stop "$pid" "early in the start"
is "$(errors "$(cat /tmp/t1.err)")" "" "early in the start: SIGTERM: no error line"
# while the key is released: the vault holds the release of slowkey for 120 s, the sidecar must
# not wait for it
EncfsSideCarArgs=$(args slow) sidecar >/tmp/t2.out 2>/tmp/t2.err &
pid=$!
wait_file "/dev/shm/encfs.*/wrap-0.pem"
c0=$(connections)
i=0
while [ "$(connections)" -lt $((c0 + 3)) ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
sleep 1
stop "$pid" "during the key release" 30
is "$(errors "$(cat /tmp/t2.err)")" "" "during the key release: SIGTERM: no error line (no shell's \"Terminated\")"
# with --work-dir (for large images) the images go there, the wrapping private key stays in
# /dev/shm (a disk would keep it after rm)
mkdir -p /var/images
EncfsSideCarArgs=$(args slowdl) sidecar --work-dir /var/images >/tmp/t4.out 2>/tmp/t4.err &
pid=$!
wait_file "/dev/shm/encfs.*/wrap-0.pem /var/images/encfs.*/wrap-0.pem"
is "$(find /dev/shm /var/images -name 'wrap-*' -o -name 'image-*' | sed 's|/encfs\.[^/]*/| |' | sort | tr '\n' ' ')" \
	"/dev/shm wrap-0.pem /var/images image-0 " "--work-dir, download: the image goes there, the wrapping key stays in /dev/shm"
stop "$pid" "--work-dir, during the key release" 30
is "$(find /var/images -mindepth 1)" "" "--work-dir: its directory is removed"
rmdir /var/images
# a tool killed (by the OOM killer, say) during the release, after an info line: the error line
# says so, not that info line; exit 1 (internal)
EncfsSideCarArgs=$(args slow) LogLevel=info sidecar >/tmp/t5.out 2>/tmp/t5.err &
pid=$!
wait_file "/dev/shm/encfs.*/wrap-0.pem"
i=0
while ! grep -q 'releasing key slowkey' /dev/shm/encfs.*/stage-4.err 2>/dev/null && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
for f in /proc/[0-9]*/comm; do
	f=${f#/proc/}
	[ "$(cat "/proc/$f" 2>/dev/null)" = encfs-skr ] && kill -KILL "${f%/comm}"
done
rc=0
wait "$pid" || rc=$?
is "$rc:$(errors "$(cat /tmp/t5.err)")" \
	"1:encfs.sh: filesystem 0 (/mnt/slow): release: killed by signal 9 (out of memory? see the kernel log)" \
	"a tool killed: exit 1, one line that says so"
like "$(cat /tmp/t5.err)" "encfs-skr: info: releasing key slowkey" "a tool killed: its last line is passed on"
nothing_left "a tool killed"
# with the first filesystem mounted, the second one downloading
EncfsSideCarArgs=$(args ok) sidecar >/tmp/t3.out 2>/tmp/t3.err &
pid=$!
wait_file "/dev/shm/encfs.*/blob-1"
ok "$([ -L /mnt/remote/share ] && echo 0 || echo 1)" "the first filesystem is mounted when the second starts"
stop "$pid" "between two filesystems"

# --- read_write: two filesystems, one read-only, one written back to its blob ---------------------
EncfsSideCarArgs=$(args rw) LogLevel=info sidecar >/tmp/rw.out 2>/tmp/rw.err &
pid=$!
wait_for "$pid" /mnt/remote/share/test.txt /mnt/remote/rw/test.txt
is "$(cat /mnt/remote/rw/which.txt 2>&1) $(cat /mnt/remote/share/which.txt 2>&1)" "rw oct" \
	"read_write: both filesystems read back"
is "$(grep ' /mnt/remote/.filesystem-1 ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1-3)" "rw,nosuid,nodev" \
	"read_write: the second is mounted read-write (nosuid, nodev)"
is "$(grep ' /mnt/remote/.filesystem-0 ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)" "ro" "read_write: the first stays read-only"
is "$(awk '$3 ~ /^fuse/ {print $4}' /proc/mounts | cut -d, -f1 | tr '\n' ' ')" "ro rw " \
	"read_write: the blob mounts: read-only and read-write"
is "$(blockdev --getro /dev/mapper/remote-crypt-0) $(blockdev --getro /dev/mapper/remote-crypt-1)" "1 0" \
	"read_write: only the second dm-crypt device is writable"
like "$(cat /tmp/rw.err)" "filesystem 1 (/mnt/remote/rw): mounted read-write at /mnt/remote/rw" \
	"read_write: the sidecar says it is read-write"
head -c $((3 * 1024 * 1024 + 1234)) /dev/urandom >/tmp/rw.bin
cp /tmp/rw.bin /mnt/remote/rw/new.bin && echo synced >/mnt/remote/rw/note.txt && sync
is "$?" 0 "read_write: files written and synced"
want=$(sha256sum </tmp/rw.bin)
# a second read-write mount of the same blob, meanwhile (another sidecar's): refused, the first
# holds its lease
url=$(EncfsSideCarArgs=$(args rw) encfs-config get 'azure_filesystems[1].azure_url')
mkdir /tmp/rw2
run sh -c 'printf "%s\n" "$1" | exec encfs-fetch --cacert "$2" --private --mount /tmp/rw2 --read-write -' - "$url" "$F/ca.pem"
is "$rc:$(errors "$err" | wc -l)" "8:1" "a second read-write mount of the blob: refused (exit 8, one line)"
like "$err" "another writer holds a lease on it" "a second read-write mount: the error names the lease"
is "$(awk '$3 ~ /^fuse/' /proc/mounts | wc -l)" 2 "a second read-write mount: nothing mounted"
rmdir /tmp/rw2
is "$(sha256sum </mnt/remote/rw/new.bin)" "$want" "a second read-write mount: the first reads on"
# written after the last sync: the stop writes it back (umount, close, then the blob server)
echo unsynced >/mnt/remote/rw/late.txt
stop "$pid" "read_write"
is "$(errors "$(cat /tmp/rw.err)")" "" "read_write: no error line"
like "$(cat /tmp/rw.err)" "encfs-fetch: info: unmounted " "read_write: the blob server's last line, after the unmount, is passed on"
# a second run reads them from the blob (a new server: nothing cached)
EncfsSideCarArgs=$(args rw) sidecar >/tmp/rw2.out 2>/tmp/rw2.err &
pid=$!
wait_for "$pid" /mnt/remote/rw/new.bin
is "$(sha256sum </mnt/remote/rw/new.bin) $(cat /mnt/remote/rw/note.txt /mnt/remote/rw/late.txt 2>&1 | tr '\n' ' ')" \
	"$want synced unsynced " "read_write: a second run sees what the first wrote, synced or not"
stop "$pid" "read_write, second run"
# the blob itself, downloaded whole and opened with cryptsetup, holds them
printf '%s\n' "$url" | encfs-fetch --cacert "$F/ca.pem" --private -o /tmp/rw.img - 2>/tmp/rwf.err
is "$?" 0 "read_write: the blob downloads"
mkdir -p /tmp/rwcheck
if cryptsetup open --readonly --key-file "$F/rw.key" /tmp/rw.img rwcheck 2>/tmp/rwc.err &&
	mount -o ro,noload /dev/mapper/rwcheck /tmp/rwcheck 2>>/tmp/rwc.err; then
	got="$(sha256sum </tmp/rwcheck/new.bin) $(cat /tmp/rwcheck/note.txt /tmp/rwcheck/late.txt 2>&1 | tr '\n' ' ')"
	umount /tmp/rwcheck
else
	got="cannot open: $(cat /tmp/rwc.err)"
fi
cryptsetup close rwcheck 2>/dev/null
is "$got" "$want synced unsynced " "read_write: the blob, opened with cryptsetup, holds the files"
rm -rf /tmp/rw.img /tmp/rwcheck /tmp/rw.bin
nothing_left "read_write: the check with cryptsetup"

# what the host checks: the trace log, the processes seen
tar -cf "$export_dev" -C "$X" . || bail "cannot write the export disk"
done_testing
