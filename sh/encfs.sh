#!/bin/sh
# encfs.sh: the encrypted filesystem sidecar.  For each filesystem of $EncfsSideCarArgs it fetches
# the image, releases its key to this attested VM, opens the LUKS volume, mounts it at
# <mount_point>/../.filesystem-N and links mount_point to it; then it waits, and on SIGTERM it
# unmounts and closes everything.  See encfs.sh(1).
set -u

prog=encfs.sh
usage="usage: encfs.sh [-v] [--allow-raw-key] [--allow-http] [--fake-report] [--cacert file]
                [--work-dir dir] [EncfsSideCarArgs [LogFile [LogLevel]]]

  -v, --verbose       log more, in every step
  --allow-raw-key     accept raw_key instead of key release (tests only)
  --allow-http        accept plain http URLs (tests only)
  --fake-report       attest with a fake SNP report (test attestation services only)
  --cacert file       trust these certificates instead of the system store
  --work-dir dir      where to make the work directory (default /dev/shm)
  -h, --help          print this help"

config_flags=""
attest_flags=""
tls_flags=""
verbose=""
work_parent=""
while [ $# -gt 0 ]; do
	case $1 in
	-v | --verbose) verbose="$verbose -v" ;;
	--allow-raw-key) config_flags="$config_flags --allow-raw-key" ;;
	--allow-http) config_flags="$config_flags --allow-http" ;;
	--fake-report) attest_flags="$attest_flags --fake-report" ;;
	--cacert)
		[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
		tls_flags="--cacert $2"
		ENCFS_CA_BUNDLE=$2
		export ENCFS_CA_BUNDLE
		shift
		;;
	--work-dir)
		[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
		work_parent=$2
		shift
		;;
	-h | --help) echo "$usage"; exit 0 ;;
	--) shift; break ;;
	-*) echo "$usage" >&2; exit 2 ;;
	*) break ;;
	esac
	shift
done
# the upstream sidecar's positional form: EncfsSideCarArgs LogFile LogLevel, each when unset
[ -n "${EncfsSideCarArgs:-}" ] || EncfsSideCarArgs=${1:-}
[ -n "${LogFile:-}" ] || LogFile=${2:-}
[ -n "${LogLevel:-}" ] || LogLevel=${3:-}
export EncfsSideCarArgs LogFile LogLevel
[ -n "$LogFile" ] || unset LogFile
[ -n "$LogLevel" ] || unset LogLevel

# --- logging ---------------------------------------------------------------------------------

say() { # say LEVEL MESSAGE: like the tools' logging, to stderr and $LogFile
	case "${LogLevel:-warning}:$1" in
	*:error | *:warning | info:info | debug:info | debug:debug | trace:*) ;;
	*) [ -n "$verbose" ] && [ "$1" = info ] || return 0 ;;
	esac
	printf '%s: %s\n' "$prog" "$2" >&2
	if [ -n "${LogFile:-}" ]; then
		(umask 077 && printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$prog" "$2" >>"$LogFile")
	fi
}

fail() { # fail CODE MESSAGE: one line, everything undone, exit CODE
	say error "$2"
	cleanup
	exit "$1"
}

# --- state and cleanup -----------------------------------------------------------------------
# Each step records what it made, so cleanup undoes exactly that, newest first.

work=""
undo=""
push_undo() { undo="$1
$undo"; }

cleanup() {
	trap '' TERM INT HUP
	printf '%s\n' "$undo" | while IFS= read -r step; do
		[ -n "$step" ] || continue
		say debug "undo: $step"
		eval "$step" || say warning "cleanup step failed: $step"
	done
	undo=""
	[ -z "$work" ] || rm -rf "$work"
	work=""
}

on_signal() {
	say info "stopping: unmounting and closing"
	cleanup
	exit 0
}
trap on_signal TERM INT HUP

# run_stage NAME CMD...: a pipeline stage; a failure is recorded in $work/failed (dash has no
# pipefail), so the first failing stage is the one reported
run_stage() {
	_stage=$1
	shift
	"$@" || echo "$_stage $?" >>"$work/failed"
}

# --- configuration ---------------------------------------------------------------------------

# shellcheck disable=SC2086 # flag lists are words
encfs-config $config_flags $verbose check || exit $?
# shellcheck disable=SC2086
count=$(encfs-config $config_flags count) || exit $?

cfg() { # cfg PATH: a field of the configuration (empty when absent)
	# shellcheck disable=SC2086
	encfs-config $config_flags get "$1"
}

client_id=$(cfg azure_info.identity.client_id) || exit $?
# shellcheck disable=SC2086
certcache=$(encfs-config $config_flags get --json azure_info.certcache) || exit $?
[ -z "$certcache" ] || attest_flags="$attest_flags --certcache"

if [ -z "$work_parent" ]; then
	# the wrapping private key lives here until the key is unwrapped: RAM only
	work_parent=/dev/shm
	[ -d "$work_parent" ] && [ -w "$work_parent" ] || work_parent=${TMPDIR:-/tmp}
fi
work=$(mktemp -d "$work_parent/encfs.XXXXXX") || fail 8 "creating a work directory in $work_parent: failed (check that it is writable)"
chmod 700 "$work"

# --- one filesystem --------------------------------------------------------------------------

mount_one() { # mount_one INDEX
	i=$1
	p="azure_filesystems[$i]"
	mount_point=$(cfg "$p.mount_point") || return
	url=$(cfg "$p.azure_url") || return
	private=$(cfg "$p.azure_url_private") || return
	read_write=$(cfg "$p.read_write") || return
	kid=$(cfg "$p.key.kid") || return
	akv=$(cfg "$p.key.akv.endpoint") || return
	authority=$(cfg "$p.key.authority.endpoint") || return
	salt=$(cfg "$p.key_derivation.salt") || return
	label=$(cfg "$p.key_derivation.label") || return

	if [ "$read_write" = true ]; then
		fail 3 "config: $p.read_write: read-write mounts need the write-back blob mount, which this version does not have (mount it read-only)"
	fi
	if [ -e "$mount_point" ] || [ -L "$mount_point" ]; then
		fail 3 "config: $p.mount_point: $mount_point already exists (it must be free: the sidecar creates it as a link)"
	fi

	say info "filesystem $i: $mount_point from $(printf '%s' "$url" | sed 's/?.*/?<query hidden>/')"

	# 1. the image
	image=$work/image-$i
	set -- -o "$image"
	[ "$private" = true ] && set -- "$@" --private
	[ -n "$client_id" ] && set -- "$@" --client-id "$client_id"
	# shellcheck disable=SC2086
	encfs-fetch $verbose $tls_flags "$@" "$url" || fail $? "filesystem $i: fetching the image failed"
	push_undo "rm -f '$image'"

	# 2. the key, through pipes only, into 3. the dm-crypt device
	name=remote-crypt-$i
	rm -f "$work/failed"
	if [ -z "$kid" ]; then
		# raw_key (a test switch encfs-config has already checked)
		# shellcheck disable=SC2086
		{ run_stage encfs-config encfs-config $config_flags get --hex-decode "$p.raw_key"; } |
			run_stage encfs-dmsetup encfs-dmsetup $verbose open --readonly --key-file - "$image" "$name"
	else
		pem=$work/wrap-$i.pem
		set -- --akv "$akv" --kid "$kid"
		[ -n "$client_id" ] && set -- "$@" --client-id "$client_id"
		bearer=$(cfg "$p.key.akv.bearer_token" | wc -c)
		[ "$bearer" -gt 0 ] && set -- "$@" --bearer-fd 3
		[ -n "$salt" ] && derive="--salt $salt" || derive=""
		# shellcheck disable=SC2086
		cfg "$p.key.akv.bearer_token" | {
			exec 3<&0 0</dev/null
			{ run_stage encfs-unwrap encfs-unwrap $verbose keygen --private "$pem"; } |
				{ run_stage encfs-attest encfs-attest $verbose $tls_flags $attest_flags ${certcache:+"$certcache"} --maa "$authority"; } |
				{ run_stage encfs-skr encfs-skr $verbose $tls_flags "$@"; } |
				{ run_stage encfs-unwrap encfs-unwrap $verbose $tls_flags --private "$pem" --akv "$akv" $derive ${label:+--label "$label"}; } |
				{ run_stage encfs-dmsetup encfs-dmsetup $verbose open --readonly --key-file - "$image" "$name" 3<&-; }
		}
		rm -f "$pem"
	fi
	if [ -s "$work/failed" ]; then
		read -r stage code <"$work/failed"
		fail "$code" "filesystem $i: $stage failed (its message is above)"
	fi
	push_undo "encfs-dmsetup close '$name'"

	# 4. mount beside the mount point, then link: the link appears atomically, mounted
	dir=$(dirname "$mount_point")/.filesystem-$i
	mkdir -p "$dir" || fail 8 "filesystem $i: creating $dir failed"
	push_undo "rmdir '$dir'"
	mount -t ext4 -o ro,noload "/dev/mapper/$name" "$dir" ||
		fail 8 "filesystem $i: mounting /dev/mapper/$name on $dir failed (check that the image holds ext4)"
	push_undo "umount '$dir'"
	ln -s ".filesystem-$i" "$mount_point" || fail 8 "filesystem $i: linking $mount_point failed"
	push_undo "rm -f '$mount_point'"
	say info "filesystem $i: mounted at $mount_point"
}

i=0
while [ "$i" -lt "$count" ]; do
	mount_one "$i" || fail $? "filesystem $i: reading the configuration failed"
	i=$((i + 1))
done
say info "all $count filesystems mounted"

# wait for SIGTERM; sleep in the background so the trap runs at once
while :; do
	sleep 3600 &
	wait $! || :
done
