#!/bin/sh
# encfs.sh's undo of the blob mount (undo_blob), on the host, with a stand-in encfs-fetch first on
# PATH: its --mount leaves the state a real server leaves when it has died on its own (a FUSE mount
# whose connection is gone: stat says ENOTCONN) and prints, as the server's PID, the PID of an
# unrelated process (the number the dead server's was, taken by another process since).  The open
# then fails, and the cleanup must unmount the dead mount, must not signal the unrelated process,
# nor wait for it, nor for a log relay that waits for it, and must leave nothing behind.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; run sets out, err, rc
. "$ENCFS_SRC/test/lib.sh"

[ "$(id -u)" = 0 ] || skip_all "not root (a FUSE mount is made by hand)"
[ -c /dev/fuse ] || skip_all "no /dev/fuse"

mkdir "$T/stub"
cat >"$T/stub/dead-mount.py" <<'EOF'
# dead-mount.py DIR: a FUSE mount at DIR whose connection is closed at once (as when its server died)
import ctypes, os, sys
fd = os.open("/dev/fuse", os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
opts = ("fd=%d,rootmode=40000,user_id=0,group_id=0" % fd).encode()
if libc.mount(b"encfs-stub", sys.argv[1].encode(), b"fuse.encfs-stub", 6, opts) != 0:  # nosuid, nodev
    sys.exit("dead-mount.py: mount: " + os.strerror(ctypes.get_errno()))
EOF
cat >"$T/stub/encfs-fetch" <<EOF
#!/bin/sh
# encfs-fetch --mount DIR ... -: a dead mount at DIR, and \$BYSTANDER's PID as the server's
cat >/dev/null
[ "\$1" = --mount ] || exit 9
echo "encfs-fetch: info: mounted (stand-in)" >&2
"$PYTHON" "$T/stub/dead-mount.py" "\$2" || exit 1
echo "\$BYSTANDER"
EOF
chmod +x "$T/stub/encfs-fetch"

cat >"$T/cfg" <<EOF
{"azure_filesystems": [{"mount_point": "$T/mnt/fs", "azure_url": "http://127.0.0.1:9/c/x.img",
  "raw_key": "00ff"}]}
EOF

# the unrelated process (its own session: what it gets from us is all that can end it)
setsid sleep 300 </dev/null >/dev/null 2>&1 &
bystander=$!
await 10 "the bystander runs" kill -0 "$bystander"

EncfsSideCarArgs=$(cat "$T/cfg") BYSTANDER=$bystander PATH="$T/stub:$PATH" \
	run within 60 sh "$ENCFS_SRC/sh/encfs.sh" --allow-raw-key --allow-http
diag "$err"
[ "$rc" -ne 124 ] && [ "$rc" -ne 137 ]
ok $? "encfs.sh ends (exit $rc): it waits neither for the process that has the dead server's number nor for a relay that waits for it"
is "$rc" 8 "... with the open's status (8: the file of the dead mount cannot be read)"
like "$err" "filesystem 0 ($T/mnt/fs): open: " "... its one line names the open that failed"
unlike "$err" "undoing" "... and every undo step succeeded (the dead mount unmounted, its directory removed)"
kill -0 "$bystander" 2>/dev/null
ok $? "the unrelated process was not signalled"
is "$(grep -c ' fuse.encfs-stub ' /proc/self/mountinfo)" 0 "the dead FUSE mount is gone"
is "$(find "$T/mnt" -mindepth 1 2>/dev/null | wc -l | tr -d ' ')" 0 "nothing left at the mount point"

kill "$bystander" 2>/dev/null
wait "$bystander" 2>/dev/null
# a mount a failed run left would outlive $T: not left to the next test
grep ' fuse.encfs-stub ' /proc/self/mountinfo | cut -d' ' -f5 | while read -r _m; do
	umount -l "$_m"
	case $_m in */encfs.??????/blob-0) rm -rf "${_m%/blob-0}" ;; esac
done
done_testing
