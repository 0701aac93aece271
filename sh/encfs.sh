#!/bin/sh
# encfs.sh: the encrypted filesystem sidecar.  For each filesystem of $EncfsSideCarArgs it mounts
# the page blob as a file (encfs-fetch --mount: read lazily, written back) or downloads it whole
# ("download": true), releases its key to this attested VM, opens the LUKS volume, mounts it at
# <mount_point>/../.filesystem-N and links mount_point to it; then it waits, and on SIGTERM it
# unmounts and closes everything, the blob last.  See encfs.sh(1).
#
# How it stays honest in a shell without pipefail: every tool runs as a "stage" (run_stage) whose
# exit status and stderr are kept in the work directory, so the step that failed is the one
# reported, in one line, whatever the other stages of its pipeline did.  Every step first records
# how to undo it (push_undo), so a failure, or a signal at any moment, undoes exactly what exists.
# Long steps run in the background while the script waits, so that a signal is handled at once.
set -u

prog=encfs.sh
usage="usage: encfs.sh [-v] [--allow-raw-key] [--allow-http] [--fake-report] [--cacert file]
                [--work-dir dir] [--unmount-grace seconds] [EncfsSideCarArgs [LogFile [LogLevel]]]

  -v, --verbose       log more, in every step (repeatable)
  --allow-raw-key     accept raw_key instead of key release (tests only)
  --allow-http        accept plain http URLs (tests only)
  --fake-report       attest with a fake SNP report (test attestation services only)
  --cacert file       trust these certificates instead of the system store
  --work-dir dir      where to put the images of \"download\": true (default /dev/shm)
  --unmount-grace seconds
                      on SIGTERM, how long the filesystems still in use may take to be
                      let go before they are unmounted lazily (default 5, at most 3600)
  -h, --help          print this help"

allow_raw="" allow_http="" fake_report="" cacert="" verbose="" work_parent="" grace=5
while [ $# -gt 0 ]; do
	case $1 in
	-v | --verbose) verbose=${verbose:--}v ;;
	--allow-raw-key) allow_raw=--allow-raw-key ;;
	--allow-http) allow_http=--allow-http ;;
	--fake-report) fake_report=--fake-report ;;
	--cacert)
		[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
		cacert=$2
		shift
		;;
	--work-dir)
		[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
		work_parent=$2
		shift
		;;
	--unmount-grace)
		# whole seconds, 0 to 3600 (leading zeros dropped: the shell reads 08 as octal)
		grace=$(printf '%s' "${2:-x}" | sed 's/^0*\([0-9]\)/\1/')
		case $grace in
		*[!0-9]* | "" | ?????*) echo "$usage" >&2; exit 2 ;;
		esac
		[ "$grace" -le 3600 ] || { echo "$usage" >&2; exit 2; }
		shift
		;;
	-h | --help) echo "$usage"; exit 0 ;;
	--) shift; break ;;
	-*) echo "$usage" >&2; exit 2 ;;
	*) break ;;
	esac
	shift
done
[ $# -le 3 ] || { echo "$usage" >&2; exit 2; }
# the upstream sidecar's positional form: EncfsSideCarArgs LogFile LogLevel, each when unset
[ -n "${EncfsSideCarArgs:-}" ] || EncfsSideCarArgs=${1:-}
[ -n "${LogFile:-}" ] || LogFile=${2:-}
[ -n "${LogLevel:-}" ] || LogLevel=${3:-}
# The configuration may hold akv.bearer_token and raw_key: only encfs-config gets it (config,
# config_stage), not the environment of every tool.
sidecar_args=$EncfsSideCarArgs
unset EncfsSideCarArgs
export LogFile LogLevel
[ -n "$LogFile" ] || unset LogFile
[ -n "$LogLevel" ] || unset LogLevel
if [ -n "$cacert" ] && [ ! -r "$cacert" ]; then
	echo "$prog: --cacert $cacert: cannot read it (give a PEM file of trust anchors)" >&2
	exit 2
fi

# --- logging ---------------------------------------------------------------------------------

# the level, as the tools set theirs: $LogLevel (default warning), one more per -v
level_number() {
	case $1 in
	error) echo 0 ;; info) echo 2 ;; debug) echo 3 ;; trace) echo 4 ;; *) echo 1 ;;
	esac
}
log_level=$(($(level_number "${LogLevel:-warning}") + ${#verbose} - (${#verbose} > 0)))

say() { # say LEVEL MESSAGE: a line as the tools write it, to stderr and $LogFile
	[ "$(level_number "$1")" -le "$log_level" ] || return 0
	_line="$prog: $2"
	[ "$1" = error ] || _line="$prog: $1: $2"
	printf '%s\n' "$_line" >&2
	# a LogFile that cannot be written is no failure (the tools, too, log to stderr only then):
	# say must not fail the step that logs.  A regular file only, as the tools: a symbolic link
	# planted where the log goes would have root append to any file, a FIFO would hang us.
	if [ -n "${LogFile:-}" ] && [ ! -L "$LogFile" ] && { [ -f "$LogFile" ] || [ ! -e "$LogFile" ]; }; then
		(umask 077 && printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$_line" >>"$LogFile") 2>/dev/null
	fi
	return 0
}

hide_query() { printf '%s' "$1" | sed 's/?.*/?<query hidden>/'; }

# --- state and cleanup -----------------------------------------------------------------------
# Each step records how to undo it, so cleanup undoes exactly what exists, newest first.  An undo
# step touches only what this run made: a device, link or mount another sidecar made meanwhile
# under the same name is left alone.

work=""
images="" # the directory of --work-dir, when given
undo=""
waiting=""  # the step running in the background
stepping="" # $! before a step is started, while `step` starts it
sleeping="" # the sleep of the final wait
held=""     # filesystems still in use at a stop (left to go lazily)
left=""     # what an undo step could not undo
grace_left=-1 # tenths of a second of --unmount-grace left in this stop (-1: not started)
push_undo() { undo="$1
$undo"; }
# q WORD: WORD single-quoted for eval (a mount point may hold quotes; encfs-config refuses
# control characters, so no newline breaks the list)
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# the undo steps
# undo_link LINK TARGET: removes LINK if it is still our link (pointing at TARGET)
undo_link() { [ ! -L "$1" ] || [ "$(readlink "$1")" != "$2" ] || rm -f "$1"; }
# is_mounted DIR: a directory on another device than its parent is a mount point
is_mounted() { [ -d "$1" ] && [ "$(stat -c %d "$1")" != "$(stat -c %d "$1/..")" ]; }
# undo_umount DIR FS: unmounts DIR; filesystems still in use (the application holds a file) are
# given --unmount-grace seconds, all together, to be let go, then detached lazily: each goes, and
# with it its device, when the last file on it is closed
undo_umount() {
	is_mounted "$1" || return 0
	[ "$grace_left" -ge 0 ] || grace_left=$((grace * 10))
	while ! umount "$1" 2>/dev/null; do
		is_mounted "$1" || return 0
		if [ "$grace_left" -le 0 ]; then
			# what was written so far goes to the blob first (a flush through dm-crypt and the
			# loop device is an fsync of the blob file): the blob server may not outlive this
			# script (as a container's first process, its exit ends the container's processes)
			sync -f "$1" 2>/dev/null
			umount -l "$1" || return 1
			held="$held${held:+; }filesystem $2"
			say warning "filesystem $2: still in use after the grace of $grace s: unmounted lazily"
			return 0
		fi
		sleep 0.1
		grace_left=$((grace_left - 1))
	done
}
undo_rmdir() { [ ! -d "$1" ] || rmdir "$1"; }
# undo_close NAME I: closes /dev/mapper/NAME if this run's open made it ($work/opened-I exists:
# encfs-dmsetup open exits 0 only when it created the device, and a stop signal during the open
# either undoes it or lets it finish), and while it has the uuid it was opened with (kept in that
# file once the step is over); with deferred removal: a device still in use goes when its last
# user closes it
undo_close() {
	[ -f "$work/opened-$2" ] || return 0
	dm_exists "$1" || return 0
	[ ! -s "$work/opened-$2" ] || [ "$(dm_uuid "$1")" = "$(cat "$work/opened-$2")" ] || return 0
	encfs-dmsetup ${verbose:+"$verbose"} close --deferred "$1" || return 1
	! dm_exists "$1" || held="$held${held:+; }/dev/mapper/$1 (removed when its last user closes it)"
}
# undo_blob DIR I: stops the blob mount at DIR (encfs-fetch --mount): unmounts it, then waits
# for its server (pid in DIR.pid, its start time in DIR.start) to write back, release its lease
# and exit, and for the relay of its log lines.  While /dev/mapper/remote-crypt-I still exists
# (held by the application: closed with deferred removal), the blob is still read through it: the
# mount is detached lazily and the server goes on until the device goes.  The server is never
# signalled: its PID is known only once it serves, and a mount gone by then means it is ending by
# itself (or has ended, and the number may be another process's now: waited for only while the
# process of that number is an encfs-fetch that started at DIR.start).
undo_blob() {
	_spid=$(cat "$1.pid" 2>/dev/null)
	_sstart=$(cat "$1.start" 2>/dev/null)
	_rpid=$(cat "$1.relay" 2>/dev/null)
	if blob_mounted "$1"; then
		if dm_exists "remote-crypt-$2"; then
			umount -l "$1" || return 1
			held="$held${held:+; }the blob of filesystem $2 (served until the device goes)"
			return 0
		fi
		# the loop device may let go of DIR/data a moment after the dm device went (autoclear)
		_n=0
		while ! umount "$1" 2>/dev/null; do
			blob_mounted "$1" || break
			if [ $_n -ge 50 ]; then
				umount -l "$1" || return 1
				break
			fi
			sleep 0.1
			_n=$((_n + 1))
		done
	fi
	# write-back and the lease: the server's own deadline bounds them
	while [ -n "$_sstart" ] && [ "$(proc_field "$_spid" 22)" = "$_sstart" ] &&
		[ "$(cat "/proc/$_spid/comm" 2>/dev/null)" = encfs-fetch ]; do
		sleep 0.1
	done
	# the relay ends within 0.2 s of the server (tail --pid); one still running after 2 s waits
	# for a process that took the server's number: ended (it is our child, checked by its parent)
	_n=0
	while [ -n "$_rpid" ] && [ "$(proc_field "$_rpid" 4)" = $$ ] && [ $_n -lt 20 ]; do
		sleep 0.1
		_n=$((_n + 1))
	done
	[ -z "$_rpid" ] || [ "$(proc_field "$_rpid" 4)" != $$ ] || kill "$_rpid" 2>/dev/null
	[ -z "$_rpid" ] || wait "$_rpid" 2>/dev/null
	rmdir "$1"
}
# blob_mounted DIR: DIR is a mount point: by its device, or by /proc/self/mountinfo for a FUSE
# mount whose server died (stat fails on it: ENOTCONN); the escapes of mountinfo (\040 a space)
blob_mounted() {
	is_mounted "$1" && return 0
	_m=$(printf '%s' "$1" | sed -e 's/\\/\\134/g' -e 's/ /\\040/g' -e 's/	/\\011/g')
	cut -d' ' -f5 /proc/self/mountinfo 2>/dev/null | grep -Fqx -e "$_m"
}
# proc_field PID N: field N of /proc/PID/stat (4 the parent, 22 the start time), empty when there
# is no such process (the name, field 2, may hold spaces and parentheses: counted from its end)
proc_field() {
	case $1 in "" | *[!0-9]*) return 0 ;; esac
	_s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	printf '%s\n' "${_s##*) }" | cut -d' ' -f$(($2 - 2))
}
# dm_sysfs NAME: the sysfs directory of device-mapper device NAME: its name in sysfs (a node in
# /dev/mapper may lack, without udev, or be stale)
dm_sysfs() {
	for _n in /sys/block/dm-*/dm/name; do
		[ -f "$_n" ] && [ "$(cat "$_n")" = "$1" ] && { echo "${_n%/name}"; return 0; }
	done
	return 1
}
# dm_exists NAME: a device-mapper device NAME exists (the node only where there is no sysfs)
dm_exists() {
	[ -d /sys/block ] || { [ -e "/dev/mapper/$1" ]; return; }
	dm_sysfs "$1" >/dev/null
}
dm_uuid() { _d=$(dm_sysfs "$1") && cat "$_d/uuid"; }

cleanup() {
	trap '' TERM INT HUP
	[ -z "$sleeping" ] || kill "$sleeping" 2>/dev/null
	stop_waiting
	_undo=$undo
	undo=""
	while [ -n "$_undo" ]; do
		_step=${_undo%%
*}
		case $_undo in
		*"
"*) _undo=${_undo#*
} ;;
		*) _undo="" ;;
		esac
		[ -n "$_step" ] || continue
		say debug "undo: $_step"
		if ! eval "$_step"; then
			say warning "undoing \"$_step\" failed"
			left="$left${left:+; }$_step"
		fi
	done
	[ -z "$images" ] || rm -rf "$images"
	[ -z "$work" ] || rm -rf "$work"
	images="" work=""
}

# stopped: the last line of a stop, and its status: 0, or 8 when something is left (a filesystem
# still in use, or an undo step that failed)
stopped() {
	if [ -n "$left" ]; then
		say error "stopped, but not everything could be undone: $left${held:+; still in use: $held} (see the lines above)"
		exit 8
	fi
	if [ -n "$held" ]; then
		say error "stopped, but still in use: $held (a process of the container group holds files there; they go when it closes them)"
		exit 8
	fi
	say info "stopped"
	exit 0
}

# stop_waiting: ends the step running in the background: its tools get SIGTERM (their pids are in
# $work/pid-POS while they run), again while the step's shell still runs (a stage may just be
# starting), until it has finished (a pid file may go between [ -f ] and cat: no message then)
stop_waiting() {
	# a signal between the start of a step and `waiting=$!`: $! is the step, once it has changed
	[ -n "$waiting" ] || [ -z "$stepping" ] || [ "${!:-}" = "$stepping" ] || waiting=$!
	[ -n "$waiting" ] || return 0
	_n=0
	while kill -0 "$waiting" 2>/dev/null && [ $_n -lt 100 ]; do
		for _f in "$work"/pid-*; do
			[ -f "$_f" ] && kill "$(cat "$_f" 2>/dev/null)" 2>/dev/null
		done
		[ $_n -eq 0 ] || sleep 0.1
		_n=$((_n + 1))
	done
	# after 10 s, SIGKILL: the tools too, or one that ignores SIGTERM outlives the script
	if [ $_n -ge 100 ]; then
		for _f in "$work"/pid-*; do
			[ -f "$_f" ] && kill -9 "$(cat "$_f" 2>/dev/null)" 2>/dev/null
		done
		kill -9 "$waiting" 2>/dev/null
	fi
	wait "$waiting" 2>/dev/null
	waiting=""
}

fail() { # fail CODE MESSAGE: one line, everything undone, exit CODE
	say error "$2"
	cleanup
	exit "$1"
}

on_signal() {
	trap '' TERM INT HUP
	say info "stopping: unmounting and closing"
	cleanup
	stopped
}
trap on_signal TERM INT HUP

# --- stages ----------------------------------------------------------------------------------
# A step is a function run by `step`: in the background, waited for.  It runs its tools with
# run_stage POS NAME CMD..., which keeps the tool's pid in $work/pid-POS while it runs, its
# stderr in $work/stage-POS.err and, when it fails, "POS NAME STATUS" in $work/failed.  POS is the
# tool's place in its pipeline.

run_stage() {
	_pos=$1 _name=$2
	shift 2
	# a background command gets /dev/null as stdin: hand it the pipe through descriptor 4
	exec 4<&0
	"$@" 0<&4 4<&- 2>"$work/stage-$_pos.err" &
	_pid=$!
	exec 4<&-
	echo "$_pid" >"$work/pid-$_pos"
	_rc=0
	# (2>/dev/null: dash says "Killed" or "Terminated" there for a tool a signal ended, a second
	# line; the status says it all)
	wait "$_pid" 2>/dev/null || _rc=$?
	rm -f "$work/pid-$_pos"
	# proof for undo_close that this run's open made the device (exit 0 says so)
	[ "$_name" != open ] || [ "$_rc" -ne 0 ] || : >"$work/opened-$i"
	[ "$_rc" -eq 0 ] || echo "$_pos $_name $_rc" >>"$work/failed"
	return "$_rc"
}

# step FS FUNCTION [ARG]...: runs FUNCTION's stages; on failure reports the stage that
# failed first in the pipeline, leaving out stages that only saw a broken pipe (status 141, or
# an error line on writing that ends in "Broken pipe"), and exits with its status after undoing everything.  The
# stderr of the stages is passed on; the failing stage's last line (the tool's one-line error)
# becomes part of this script's one line, "filesystem N (MOUNT_POINT): STAGE: TOOL'S LINE", and
# what the stages after it said (they only saw it fail) is left out.
step() {
	_fs=$1
	shift
	rm -f "$work/failed" "$work"/pid-* "$work"/stage-*.err
	stepping=${!:-none}
	"$@" &
	waiting=$!
	stepping=""
	wait "$waiting"
	waiting=""
	culprit=""
	if [ -s "$work/failed" ]; then
		culprit=$(sort -n "$work/failed" | while read -r _pos _name _rc; do
			# (a write to its stdout, "TOOL: writing ...: Broken pipe": not a network error's
			# "Send failure: Broken pipe", which is the stage's own failure)
			if [ "$_rc" -ne 141 ] && ! tail -n 1 "$work/stage-$_pos.err" 2>/dev/null |
				grep -q '^[a-z.-]*: writing .*Broken pipe'; then
				echo "$_pos $_name $_rc"
				break
			fi
		done)
		[ -n "$culprit" ] || culprit=$(sort -n "$work/failed" | head -n 1)
	fi
	_cpos=${culprit%% *}
	# a tool killed by a signal (the OOM killer, say) wrote no error line: its last line is not
	# one, and is passed on with the rest
	_killed=""
	[ -z "$culprit" ] || [ "${culprit##* }" -le 128 ] || _killed=$((${culprit##* } - 128))
	for _p in 1 2 3 4 5 6 7 8 9; do
		[ -f "$work/stage-$_p.err" ] || continue
		if [ -z "$culprit" ] || [ "$_p" -lt "$_cpos" ] || { [ "$_p" -eq "$_cpos" ] && [ -n "$_killed" ]; }; then
			cat "$work/stage-$_p.err" >&2
		elif [ "$_p" -eq "$_cpos" ]; then
			sed '$d' "$work/stage-$_p.err" >&2
		fi
	done
	if [ -z "$culprit" ]; then
		rm -f "$work"/stage-*.err
		return 0
	fi
	# shellcheck disable=SC2086 # "POS NAME STATUS"
	set -- $culprit
	_why=$(tail -n 1 "$work/stage-$1.err" 2>/dev/null)
	[ -n "$_why" ] || _why="$2 exited with status $3"
	[ -z "$_killed" ] || _why="killed by signal $_killed (out of memory? see the kernel log)"
	_why=$(printf '%s\n' "$_why" | config_terms "$p")
	_code=$3
	# a tool killed by a signal, or not found, is an internal error: not a documented status
	[ "$_code" -le 8 ] || _code=1
	# every tool's command line is made of configuration fields: one it refuses (exit 2, usage)
	# is a value of the configuration, and that is exit 3 here, as in encfs-config check
	[ "$_code" -ne 2 ] || _code=3
	fail "$_code" "filesystem $_fs: $2: $_why"
}

# config_terms PREFIX: a tool's line with the options this script gives it named as the
# configuration fields they come from (PREFIX is the filesystem's, azure_filesystems[N]): the
# admin of the sidecar edits the configuration, not command lines
config_terms() {
	sed -e 's/$/ /' \
		-e "s#--bearer-file FILE, --bearer-fd N or key.akv.bearer_token#$1.key.akv.bearer_token#g" \
		-e "s#--bearer-file FILE or --bearer-fd N#$1.key.akv.bearer_token#g" \
		-e "s#--bearer-file/--bearer-fd#$1.key.akv.bearer_token#g" \
		-e "s#--akv\\([^a-z-]\\)#$1.key.akv.endpoint\\1#g" \
		-e "s#--kid\\([^a-z-]\\)#$1.key.kid\\1#g" \
		-e "s#--api-version\\([^a-z-]\\)#$1.key.akv.api_version\\1#g" \
		-e "s#--maa\\([^a-z-]\\)#$1.key.authority.endpoint\\1#g" \
		-e "s#--salt\\([^a-z-]\\)#$1.key_derivation.salt\\1#g" \
		-e "s#--label\\([^a-z-]\\)#$1.key_derivation.label\\1#g" \
		-e "s#--private\\([^a-z-]\\)#$1.azure_url_private\\1#g" \
		-e "s#--client-id\\([^a-z-]\\)#azure_info.identity.client_id\\1#g" \
		-e "s#--certcache\\([^a-z-]\\)#azure_info.certcache\\1#g" \
		-e "s#--verity-root-hash\\([^a-z-]\\)#$1.verity.root_hash\\1#g" \
		-e "s#--verity-salt\\([^a-z-]\\)#$1.verity.salt\\1#g" \
		-e "s#--verity-data-blocks\\([^a-z-]\\)#$1.verity.data_blocks\\1#g" \
		-e "s#--verity-hash-offset\\([^a-z-]\\)#$1.verity.hash_offset\\1#g" \
		-e 's/ (see --help)//' -e 's/ $//'
}

# --- configuration ---------------------------------------------------------------------------

config() { # config ARG...: encfs-config with this script's switches and the configuration
	EncfsSideCarArgs=$sidecar_args encfs-config ${allow_raw:+"$allow_raw"} ${allow_http:+"$allow_http"} "$@"
}
cfg() { config get "$1"; } # cfg PATH: a field of the configuration (empty when absent)
config_stage() { # the same as a stage (run in a subshell of its own: the export stays there)
	export EncfsSideCarArgs="$sidecar_args"
	exec encfs-config ${allow_raw:+"$allow_raw"} ${allow_http:+"$allow_http"} "$@"
}

# Everything is checked before anything is done: a bad field is the configuration's one line.
config ${verbose:+"$verbose"} check || exit $?
count=$(config count) || exit $?
client_id=$(cfg azure_info.identity.client_id) || exit $?
certcache=$(config get --json azure_info.certcache) || exit $?
i=0
while [ "$i" -lt "$count" ]; do
	p="azure_filesystems[$i]"
	mount_point=$(cfg "$p.mount_point") || exit $?
	mount_point=${mount_point%/}
	if [ -e "$mount_point" ] || [ -L "$mount_point" ]; then
		say error "config: $p.mount_point: $mount_point already exists (it must be free: the sidecar creates it as a link)"
		exit 3
	fi
	# the directory the filesystem is mounted on, beside the link: found only after the download
	# and the key release otherwise
	dir=$(dirname "$mount_point")/.filesystem-$i
	if [ -e "$dir" ] || [ -L "$dir" ]; then
		say error "filesystem $i ($mount_point): mount: $dir already exists (left from an earlier run? remove it once nothing is mounted on it)"
		exit 8
	fi
	# a device of that name is not ours: a failed open would have the cleanup close it
	if dm_exists "remote-crypt-$i"; then
		say error "filesystem $i ($mount_point): open: /dev/mapper/remote-crypt-$i already exists (another sidecar, or left from an earlier run: encfs-dmsetup close remote-crypt-$i)"
		exit 8
	fi
	i=$((i + 1))
done

# the wrapping private key lives in the work directory until the key is unwrapped: RAM only,
# also with --work-dir, which is for downloaded images only (a disk keeps what rm removes); the
# blob mounts are there too (a directory each: no memory)
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
work=$(umask 077 && mktemp -d "$shm/encfs.XXXXXX") ||
	fail 8 "creating a work directory in $shm failed (check that it is writable)"
if [ -n "$work_parent" ]; then
	images=$(umask 077 && mktemp -d "$work_parent/encfs.XXXXXX") ||
		fail 8 "creating a work directory in $work_parent failed (check that it is writable)"
fi

# --- the steps of one filesystem -------------------------------------------------------------
# Each function is one step, run by `step`; they read the variables mount_one sets.

fetch_image() {
	set -- -o "$image"
	fetch_options "$@"
}
# mount_blob: the blob as the file $blob/data, read lazily (and written back when read_write); the
# server's pid goes to $blob.pid (its start time to $blob.start), and its log lines, once it
# serves, to $blob.log (relayed to stderr by mount_one)
mount_blob() {
	set -- --mount "$blob"
	[ "$read_write" = true ] && set -- "$@" --read-write
	fetch_options "$@" >"$blob.pid" || return
	mv "$work/stage-1.err" "$blob.log"
	# which process the PID is (undo_blob waits for no other): here, in the step, so that a stop
	# signal finds it recorded once the PID is
	proc_field "$(cat "$blob.pid")" 22 >"$blob.start"
}
fetch_options() { # fetch_options OPTION...: encfs-fetch with them and the shared ones, a stage
	[ -n "$allow_http" ] && set -- "$@" "$allow_http"
	[ -n "$cacert" ] && set -- "$@" --cacert "$cacert"
	if [ "$private" = true ]; then
		set -- "$@" --private
		[ -n "$client_id" ] && set -- "$@" --client-id "$client_id"
	fi
	# the URL on standard input, not the command line: a SAS query string is a credential
	printf '%s\n' "$url" | run_stage 1 fetch encfs-fetch ${verbose:+"$verbose"} "$@" -
}

# The key, from the vault to dm-crypt through pipes only:
#   config (bearer token, if any, to descriptor 3) | keygen | attest | release | unwrap | open
# shellcheck disable=SC2086 # $verity: words (verity_args)
release_and_open() {
	set -- --akv "$akv" --kid "$kid"
	[ -n "$api_version" ] && set -- "$@" --api-version "$api_version"
	[ -n "$client_id" ] && set -- "$@" --client-id "$client_id"
	[ -n "$cacert" ] && set -- "$@" --cacert "$cacert"
	[ "$has_bearer" = true ] && set -- "$@" --bearer-fd 3
	run_stage 1 config config_stage get "$p.key.akv.bearer_token" </dev/null | {
		exec 3<&0 0</dev/null
		{ run_stage 2 keygen encfs-unwrap keygen ${verbose:+"$verbose"} --private "$pem" 3<&-; } |
			{ run_stage 3 attest attest 3<&-; } |
			{ run_stage 4 release encfs-skr ${verbose:+"$verbose"} "$@"; } |
			{ run_stage 5 unwrap unwrap 3<&-; } |
			{ run_stage 6 open encfs-dmsetup ${verbose:+"$verbose"} open ${ro_flag:+"$ro_flag"} $verity --key-file - "$image" "$name" 3<&-; }
	}
}
attest() {
	set -- --maa "$authority"
	[ -n "$fake_report" ] && set -- "$@" "$fake_report"
	[ -n "$certcache" ] && set -- "$@" --certcache "$certcache"
	[ -n "$cacert" ] && set -- "$@" --cacert "$cacert"
	exec encfs-attest ${verbose:+"$verbose"} "$@"
}
unwrap() {
	set -- --private "$pem" --akv "$akv" --kid "$kid"
	[ -n "$salt" ] && set -- "$@" --salt "$salt"
	[ -n "$label" ] && set -- "$@" --label "$label"
	[ -n "$cacert" ] && set -- "$@" --cacert "$cacert"
	exec encfs-unwrap ${verbose:+"$verbose"} "$@"
}

# raw_key (a test switch encfs-config has already checked): config | open
# shellcheck disable=SC2086 # $verity: words (verity_args)
raw_open() {
	run_stage 1 config config_stage get --hex-decode "$p.raw_key" </dev/null |
		{ run_stage 2 open encfs-dmsetup ${verbose:+"$verbose"} open ${ro_flag:+"$ro_flag"} $verity --key-file - "$image" "$name"; }
}

# verity_args: $verity, the options that pin the image with dm-verity under dm-crypt (from the
# filesystem's verity object; empty without one).  Hex digits and whole numbers only (encfs-config
# checked them): split into words where the open command line uses it.
verity_args() {
	verity=""
	_root=$(cfg "$p.verity.root_hash") || return
	[ -n "$_root" ] || return 0
	_salt=$(cfg "$p.verity.salt") || return
	_blocks=$(cfg "$p.verity.data_blocks") || return
	_hoff=$(cfg "$p.verity.hash_offset") || return
	verity="--verity-root-hash $_root --verity-salt $_salt --verity-data-blocks $_blocks --verity-hash-offset $_hoff"
}

# make_dirs DIR: creates DIR and its missing parents, each undone later
# (one that another sidecar makes meanwhile is theirs: not undone)
make_dirs() {
	[ -d "$1" ] && return 0
	make_dirs "$(dirname "$1")" || return 1
	! mkdir "$1" 2>/dev/null || push_undo "undo_rmdir $(q "$1")"
	[ -d "$1" ]
}

mount_one() { # mount_one INDEX
	i=$1
	p="azure_filesystems[$i]"
	mount_point=$(cfg "$p.mount_point") || return
	mount_point=${mount_point%/}
	url=$(cfg "$p.azure_url") || return
	private=$(cfg "$p.azure_url_private") || return
	read_write=$(cfg "$p.read_write") || return
	download=$(cfg "$p.download") || return
	kid=$(cfg "$p.key.kid") || return
	akv=$(cfg "$p.key.akv.endpoint") || return
	api_version=$(cfg "$p.key.akv.api_version") || return
	authority=$(cfg "$p.key.authority.endpoint") || return
	salt=$(cfg "$p.key_derivation.salt") || return
	label=$(cfg "$p.key_derivation.label") || return
	# only whether there is one: the token itself goes through a pipe
	has_bearer=false
	[ "$(cfg "$p.key.akv.bearer_token" | wc -c | tr -d ' ')" = 0 ] || has_bearer=true
	fs="$i ($mount_point)"
	name=remote-crypt-$i
	pem=$work/wrap-$i.pem
	ro_flag=--readonly mode=read-only options=ro,noload
	[ "$read_write" != true ] || ro_flag="" mode=read-write options=rw

	if [ "$download" = true ]; then
		image=${images:-$work}/image-$i
		say info "filesystem $fs: fetch: downloading $(hide_query "$url")"
		step "$fs" fetch_image
	else
		blob=$work/blob-$i
		mkdir "$blob" || fail 8 "filesystem $fs: fetch: creating $blob failed (check that $work is writable)"
		push_undo "undo_blob $(q "$blob") $i"
		say info "filesystem $fs: fetch: mounting $(hide_query "$url") $mode at $blob/data"
		step "$fs" mount_blob
		image=$blob/data
		# the server's log lines from now on (the ones so far too), until it exits
		_spid=$(cat "$blob.pid")
		case $_spid in
		"" | *[!0-9]*) fail 1 "filesystem $fs: fetch: encfs-fetch --mount did not print its server's process ID" ;;
		esac
		tail -n +1 -s 0.2 -f --pid="$_spid" "$blob.log" >&2 &
		echo $! >"$blob.relay"
	fi

	push_undo "undo_close $(q "$name") $i"
	verity_args || return
	if [ -z "$kid" ]; then
		say info "filesystem $fs: open: the raw key of the configuration opens /dev/mapper/$name"
		step "$fs" raw_open
	else
		say info "filesystem $fs: attest to $authority, release key $kid from $akv, unwrap, open /dev/mapper/$name"
		step "$fs" release_and_open
		rm -f "$pem"
	fi
	dm_uuid "$name" >"$work/opened-$i.uuid" && mv "$work/opened-$i.uuid" "$work/opened-$i"
	say info "filesystem $fs: opened /dev/mapper/$name"

	# mount beside the mount point, then link: the link appears at once, already mounted
	dir=$(dirname "$mount_point")/.filesystem-$i
	make_dirs "$(dirname "$mount_point")" ||
		fail 8 "filesystem $fs: mount: creating $(dirname "$mount_point") failed"
	mkdir "$dir" 2>/dev/null || fail 8 "filesystem $fs: mount: creating $dir failed (check that it is free and writable)"
	push_undo "undo_rmdir $(q "$dir")"
	push_undo "undo_umount $(q "$dir") $(q "$fs")"
	# nosuid, nodev: set-uid files and device nodes of the image do nothing in the containers
	# that share the mount
	mount -t ext4 -o "$options,nosuid,nodev" "/dev/mapper/$name" "$dir" ||
		fail 8 "filesystem $fs: mount: mounting /dev/mapper/$name on $dir failed (check that the image holds ext4)"
	push_undo "undo_link $(q "$mount_point") .filesystem-$i"
	# -T: whatever appeared meanwhile at mount_point (a directory, or a link to one) is an error
	# here, not a directory to put our link in
	if ! { ln -s -T ".filesystem-$i" "$mount_point" 2>/dev/null && [ "$(readlink "$mount_point")" = ".filesystem-$i" ]; }; then
		fail 8 "filesystem $fs: link: linking $mount_point failed (did something else create it meanwhile?)"
	fi
	say info "filesystem $fs: mounted $mode at $mount_point"
}

i=0
while [ "$i" -lt "$count" ]; do
	mount_one "$i" || fail $? "filesystem $i: reading the configuration failed"
	i=$((i + 1))
done
if [ "$count" -eq 1 ]; then
	say info "the filesystem is mounted; waiting for SIGTERM"
else
	say info "all $count filesystems are mounted; waiting for SIGTERM"
fi

# wait for a signal; sleep in the background so that the trap runs at once
while :; do
	sleep 3600 &
	sleeping=$!
	wait "$sleeping"
	sleeping=""
done
