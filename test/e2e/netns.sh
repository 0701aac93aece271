#!/bin/sh
# netns.sh CMD [ARG]...: runs CMD in a network namespace of its own, so that whatever it starts
# (fake services, qemu) can reach nothing outside it (DESIGN.md section 5).
#
# The namespace is encfs-<pid>: only lo, up, and no route; nothing can leave it.  Afterwards,
# whatever happened (CMD failed, or this script got SIGINT, SIGTERM or SIGHUP), the processes still
# running in it are killed and it is deleted.  The exit status is CMD's (129, 130 or 143 when
# interrupted).  Needs root (ip netns).  In CMD, $ENCFS_NETNS names the namespace.
set -u
PATH=$PATH:/usr/sbin:/sbin
[ $# -ge 1 ] || { echo "usage: netns.sh CMD [ARG]..." >&2; exit 2; }
command -v ip >/dev/null || { echo "netns.sh: ip (iproute2) is not installed (make deps)" >&2; exit 1; }

ns=encfs-$$
child=""
cleanup() {
	trap '' INT TERM HUP
	[ -z "$child" ] || kill "$child" 2>/dev/null
	# what is still in the namespace: services the command left behind
	for _i in 1 2 3 4 5 6 7 8 9 10; do
		pids=$(ip netns pids "$ns" 2>/dev/null) || break
		[ -n "$pids" ] || break
		# shellcheck disable=SC2086 # a list of pids
		kill $pids 2>/dev/null
		sleep 0.2
	done
	# shellcheck disable=SC2086 # a list of pids
	pids=$(ip netns pids "$ns" 2>/dev/null) && [ -n "$pids" ] && kill -9 $pids 2>/dev/null
	ip netns del "$ns" 2>/dev/null
}
if ! ip netns add "$ns"; then
	echo "netns.sh: cannot make network namespace $ns (are you root?)" >&2
	exit 1
fi
trap 'cleanup; exit 129' HUP
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
if ! ip -n "$ns" link set lo up; then
	cleanup
	echo "netns.sh: cannot bring lo up in $ns" >&2
	exit 1
fi
ENCFS_NETNS=$ns
export ENCFS_NETNS
# (a background command would get /dev/null as stdin: hand it ours)
exec 3<&0
ip netns exec "$ns" "$@" 0<&3 3<&- &
child=$!
rc=0
wait "$child" || rc=$?
child=""
cleanup
exit "$rc"
