# TAP helpers for the test scripts (POSIX sh).  Source it: . "$ENCFS_SRC/test/lib.sh"
# ENCFS_BIN (the built tools), ENCFS_SRC (the source tree) and ENCFS_BUILD come from make check;
# run by hand, they default to this tree's build/.
# shellcheck disable=SC2034 # out, err, rc, port and the like are results for the sourcing script

: "${ENCFS_SRC:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${ENCFS_BUILD:=$ENCFS_SRC/build}"
: "${ENCFS_BIN:=$ENCFS_BUILD/bin}"
: "${PYTHON:=/usr/bin/python3}"
SHARED=$(cd "$ENCFS_SRC/.." && pwd)/shared
PATH=$ENCFS_BIN:$PATH
export ENCFS_SRC ENCFS_BUILD ENCFS_BIN PYTHON SHARED PATH
unset LogLevel LogFile

tap_n=0
tap_failed=0

ok() { # ok CONDITION-EXIT-STATUS DESCRIPTION (a description ending in "# TODO why" is TAP's
	# expected failure: reported, not counted)
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n - $2"
	else
		echo "not ok $tap_n - $2"
		case $2 in *"# TODO "*) ;; *) tap_failed=$((tap_failed + 1)) ;; esac
	fi
}

# show LABEL TEXT: TEXT as TAP comment lines (every line, at most 4000 bytes: a multi-line or
# binary value must not end up in the TAP stream as lines of its own)
show() {
	printf '%s\n' "$2" | head -c 4000 | sed "s/^/# $1 /"
}

is() { # is GOT WANT DESCRIPTION
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		show "got: " "$1"
		show "want:" "$2"
	fi
}

like() { # like GOT SUBSTRING DESCRIPTION
	case $1 in
	*"$2"*) ok 0 "$3" ;;
	*)
		ok 1 "$3"
		show "got:    " "$1"
		show "missing:" "$2"
		;;
	esac
}

unlike() { # unlike GOT SUBSTRING DESCRIPTION
	case $1 in
	*"$2"*)
		ok 1 "$3"
		show "got:          " "$1"
		show "must not have:" "$2"
		;;
	*) ok 0 "$3" ;;
	esac
}

# Strict mode (ENCFS_STRICT=1: make check under CI=true, or STRICT=1): a skip is a failure unless
# test/skips.allowed lists it (test name and reason, each a shell pattern, and why it may skip).
# A CI machine is set up to run everything; a skip there hides a missing dependency.
skip_allowed() { # skip_allowed REASON: true when not strict, or when skips.allowed lists it
	[ "${ENCFS_STRICT:-0}" = 1 ] || return 0
	_st=$(basename "$0")
	_sr=$1
	# fields separated by "|", the spaces around them dropped; comments and blank lines ignored
	sed -e 's/#.*//' -e 's/[[:space:]]*|[[:space:]]*/|/g' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
		-e '/^$/d' "$ENCFS_SRC/test/skips.allowed" >"$T/skips.allowed" 2>/dev/null || return 1
	while IFS='|' read -r _sp_test _sp_reason _sp_why; do
		[ -n "$_sp_why" ] || continue # an entry without a reason allows nothing
		# shellcheck disable=SC2254 # the fields are patterns
		case $_st in $_sp_test) case $_sr in $_sp_reason) return 0 ;; esac ;; esac
	done <"$T/skips.allowed"
	return 1
}

skip() { # skip REASON: one skipped test (a failure in strict mode unless allowed)
	tap_n=$((tap_n + 1))
	if skip_allowed "$1"; then
		echo "ok $tap_n # skip $1"
	else
		echo "not ok $tap_n - skipped under ENCFS_STRICT=1 (CI), not in test/skips.allowed: $1"
		tap_failed=$((tap_failed + 1))
	fi
}

skip_all() { # skip_all REASON: the whole script (a failure in strict mode unless allowed)
	if skip_allowed "$1"; then
		echo "1..0 # SKIP $1"
		exit 0
	fi
	echo "not ok 1 - the whole script skipped under ENCFS_STRICT=1 (CI), not in test/skips.allowed: $1"
	echo "1..1"
	exit 1
}

diag() { printf '%s\n' "$*" | sed 's/^/# /'; }

bail() {
	echo "Bail out! $*"
	exit 255
}

done_testing() {
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
}

# run CMD...: runs it, stdout in $out, stderr in $err, exit status in $rc (never fails the script)
run() {
	_o=$(mktemp "$T/out.XXXXXX")
	_e=$(mktemp "$T/err.XXXXXX")
	rc=0
	"$@" >"$_o" 2>"$_e" || rc=$?
	out=$(cat "$_o")
	err=$(cat "$_e")
	rm -f "$_o" "$_e"
}

# A private temporary directory, removed at exit along with the services started by start_service.
T=$(mktemp -d "${TMPDIR:-/tmp}/encfs-test.XXXXXX")
_pids=""
_cleanup() {
	for _p in $_pids; do kill "$_p" 2>/dev/null; done
	for _p in $_pids; do wait "$_p" 2>/dev/null; done
	rm -rf "$T"
}
trap _cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# start_service NAME CMD...: starts a service in the background that writes its listening port
# to the file named by $READY (set for it here) and waits up to 20 s for that; the port is then
# in $port.  The service is stopped at exit.
start_service() {
	_name=$1
	shift
	READY=$T/$_name.port
	export READY
	"$@" >"$T/$_name.log" 2>&1 &
	_pids="$_pids $!"
	_i=0
	while [ ! -s "$READY" ]; do
		_i=$((_i + 1))
		if [ $_i -gt 200 ]; then
			cat "$T/$_name.log" >&2
			bail "$_name did not start"
		fi
		sleep 0.1
	done
	port=$(cat "$READY")
	unset READY
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# A pipeline's exit status is its last command's: "tool | sha256sum" says nothing about the tool.
# stage NAME CMD...: runs CMD as one stage of a pipeline and keeps its exit status in a file;
# stage_rc NAME prints it ("unfinished" if the stage never ended) and forgets it.
#   sum=$(stage fetch encfs-fetch URL | sha256sum | cut -d' ' -f1)
#   is "$(stage_rc fetch):$sum" "0:$want" "..."
stage() {
	_sg=$1
	shift
	rm -f "$T/stage.$_sg"
	_sgrc=0
	"$@" || _sgrc=$?
	echo "$_sgrc" >"$T/stage.$_sg"
	return "$_sgrc"
}
stage_rc() {
	if [ -f "$T/stage.$1" ]; then cat "$T/stage.$1"; else echo unfinished; fi
	rm -f "$T/stage.$1"
}

# await SECONDS DESCRIPTION CMD...: polls CMD (every 0.1 s) until it succeeds; a wait that runs out
# is a failed check named DESCRIPTION (and returns 1).  For events a test must see happen.
await() {
	_aw_n=$(($1 * 10))
	_aw_d=$2
	shift 2
	_aw_i=0
	until "$@"; do
		_aw_i=$((_aw_i + 1))
		if [ $_aw_i -ge $_aw_n ]; then
			ok 1 "timed out after $((_aw_n / 10)) s waiting for: $_aw_d"
			return 1
		fi
		sleep 0.1
	done
	return 0
}

# within SECONDS CMD...: runs CMD, killed if it has not ended after SECONDS (status 124 then, as
# timeout(1) says): the test's own bound on a tool that would otherwise wait for something else
within() {
	timeout -k 5 "$@"
}

# run_to FILE CMD...: like run, but stdout (key bytes: NUL and trailing newlines must survive) to FILE
run_to() {
	_f=$1
	shift
	_e=$(mktemp "$T/err.XXXXXX")
	rc=0
	"$@" >"$_f" 2>"$_e" || rc=$?
	err=$(cat "$_e")
	rm -f "$_e"
}

# jget FILE KEY...: the JSON value at that path of FILE (strings bare, anything else as JSON; a
# number KEY indexes a list)
jget() {
	"$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d if isinstance(d, str) else json.dumps(d, sort_keys=True))' "$@"
}

# tree_manifest DIR: DIR's tree as lines "path|type|mode|uid|gid|size|=first name of a hard link",
# then "path -> target" for symlinks and "sha256  path" for regular files, sorted; lost+found at
# the top is left out.  Two filesystems that hold the same tree print the same (GNU find and stat:
# the VM has them too).
tree_manifest() (
	cd "$1" || exit 1
	LC_ALL=C
	export LC_ALL
	find . -path ./lost+found -prune -o -exec stat -c '%i|%F|%a|%u|%g|%s|%n' {} + | sort -t'|' -k7 |
		awk -F'|' '{
			if ($2 == "regular empty file") $2 = "regular file"
			if ($2 == "directory") $6 = "-"
			link = ($2 != "directory" && ($1 in first)) ? "=" first[$1] : ""
			if (!($1 in first)) first[$1] = $7
			print $7 "|" $2 "|" $3 "|" $4 "|" $5 "|" $6 "|" link
		}'
	find . -path ./lost+found -prune -o -type l -exec sh -c 'for l; do printf "%s -> %s\n" "$l" "$(readlink "$l")"; done' sh {} + | sort
	find . -path ./lost+found -prune -o -type f -exec sha256sum {} + | sort -k2
)
