#!/bin/sh
# encfs-fetch --mount against Azurite (through the fault proxy): DIR/data is the blob (random reads
# equal it, byte for byte); a read of never-written pages costs no request; a streaming read grows
# its read-ahead; a blob overwritten behind a reader is EIO and one log line; read-write: random
# aligned and unaligned writes across block edges, fsync, and the blob fetched straight from
# Azurite is the expected bytes; SIGKILL after fsync loses nothing; a second read-write mount is
# refused naming the lease (a read-only one works); SIGTERM writes back, releases the lease and
# exits 0; a block blob is refused read-write; 503s, resets, cut and stalled answers during reads
# and writes change nothing; the server's peak memory while reading a whole 2 GiB image stays
# under its cache bound; usage errors.
# shellcheck disable=SC1091,SC2154 # lib.sh gives out, err, rc, port
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"

blob_env_ready || skip_all "Azurite or the Azure SDK missing (run make deps)"
command -v encfs-fetch >/dev/null || bail "encfs-fetch not built"
if ! [ -c /dev/fuse ] || [ "$(id -u)" -ne 0 ] || ! command -v fusermount3 >/dev/null; then
	skip_all "FUSE not usable here (needs /dev/fuse, root and fusermount3)"
fi

KiB=1024
MiB=1048576

# every mount made here is gone at exit, whatever happened
_mounts=""
mnt_cleanup() {
	for _m in $_mounts; do
		mountpoint -q "$_m" 2>/dev/null && { fusermount3 -u "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null; }
	done
	for _p in $_servers; do
		kill -0 "$_p" 2>/dev/null && kill -KILL "$_p" 2>/dev/null
	done
	_cleanup
}
_servers=""
trap mnt_cleanup EXIT

azurite_start az http
proxy_start "http://127.0.0.1:$az_port"
pep=http://127.0.0.1:$proxy_port/$AZ_ACCOUNT
blobjs container "$az_ep" img || bail "cannot create the container"

stat_of() { json_get "$(proxy_ctl GET /_stats)" "$1" 2>/dev/null || echo 0; }
fault() { proxy_ctl POST /_fault "$1" >/dev/null || bail "cannot set fault $1"; }
lease_state() { json_get "$(blobjs props "$az_ep" img "$1")" leaseState; }

# put IMAGE BLOB: IMAGE uploaded as the page blob BLOB (straight to Azurite)
put() {
	blobjs sas-write "$az_ep" img "$2" >"$T/put.url" || bail "no SAS"
	encfs-fetch --allow-http --force --upload "$1" - <"$T/put.url" 2>"$T/put.err" || {
		cat "$T/put.err" >&2
		bail "cannot upload $2"
	}
}

# got BLOB FILE: the blob downloaded straight from Azurite into FILE
got() {
	rm -f "$2"
	blobjs sas "$az_ep" img "$1" >"$T/get.url" || bail "no SAS"
	encfs-fetch --allow-http -o "$2" - <"$T/get.url" 2>"$T/get.err" || echo "download of $1 failed: $(cat "$T/get.err")" >&2
}

# mnt NAME BLOB ARGS...: mounts BLOB (through the proxy: a read SAS, or a write SAS with
# --read-write) on $T/NAME; the tool's status in $rc, the server's PID in $mpid, its log in
# $T/NAME.err
mnt() {
	_n=$1 _b=$2
	shift 2
	mkdir -p "$T/$_n"
	case " $* " in
	*" --read-write "*) blobjs sas-write "$pep" img "$_b" >"$T/$_n.url" ;;
	*) blobjs sas "$pep" img "$_b" >"$T/$_n.url" ;;
	esac
	rc=0
	mpid=$(within 120 encfs-fetch --allow-http --timeout 2 --deadline 30 --mount "$T/$_n" "$@" - \
		<"$T/$_n.url" 2>"$T/$_n.err") || rc=$?
	_mounts="$_mounts $T/$_n"
	[ -n "$mpid" ] && _servers="$_servers $mpid"
	err=$(cat "$T/$_n.err")
}

# umnt NAME PID: unmounts and waits (30 s at most) for the server to end
gone() { ! kill -0 "$1" 2>/dev/null; }
umnt() {
	fusermount3 -u "$T/$1" || umount "$T/$1"
	await 60 "the server of $1 ends after the unmount" gone "$2" || {
		diag "still mounted: $(mountpoint "$T/$1")"
		diag "its threads wait in: $(cat /proc/"$2"/task/*/wchan 2>/dev/null | tr '\0' ' ')"
		diag "its log: $(tail -n 8 "$T/$1.err")"
	}
}

# cmp_py FILE EXPECTED N SEED: N random reads (offsets and lengths, some across block edges) of
# FILE equal EXPECTED's bytes there; prints "ok" or the first difference
cmp_py() {
	"$PYTHON" - "$@" <<'EOF'
import os, random, sys
f, e, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
fd, ed = os.open(f, os.O_RDONLY), os.open(e, os.O_RDONLY)
size = os.fstat(ed).st_size
for i in range(n):
    ln = rnd.choice([1, 511, 4096, 65536, 1048576 + 1, 3 << 20])
    off = rnd.randrange(0, size - ln)
    if rnd.random() < 0.3:
        off = (off >> 20 << 20) - rnd.randrange(0, 600)  # across a block edge
        off = max(off, 0)
    a, b = os.pread(fd, ln, off), os.pread(ed, ln, off)
    if a != b:
        print("differs at %d+%d" % (off, ln))
        sys.exit(0)
print("ok")
EOF
}

# writes_py FILE EXPECTED N SEED [hold]: N random writes (aligned and not, 1 byte to 3 MiB, many
# across block edges) into FILE and EXPECTED, then fsync(FILE); prints "fsync ok" or the error.
# With hold: no fsync; prints "written" and keeps FILE open (no close either) for 120 s.
writes_py() {
	"$PYTHON" - "$@" <<'EOF'
import os, random, sys, time
f, e, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
fd, ed = os.open(f, os.O_RDWR), os.open(e, os.O_RDWR)
size = os.fstat(ed).st_size
try:
    for i in range(n):
        ln = rnd.choice([1, 100, 512, 4096, 70000, (1 << 20) + 333, 3 << 20])
        off = rnd.randrange(0, size - ln)
        if rnd.random() < 0.3:
            off -= off % 512
        elif rnd.random() < 0.3:
            off = max((off >> 20 << 20) - rnd.randrange(1, 700), 0)
        data = rnd.randbytes(ln)
        if os.pwrite(fd, data, off) != ln:
            print("short write")
            sys.exit(0)
        os.pwrite(ed, data, off)
    if len(sys.argv) > 5:
        os.close(ed)
        print("written", flush=True)
        time.sleep(120)
        sys.exit(0)
    os.fsync(fd)
    print("fsync ok")
except OSError as x:
    print("error: %s" % x.strerror)
EOF
}

# --- reads ----------------------------------------------------------------------------------
# 64 MiB with data at odd places: block 0, a run across blocks 3-5, a page at 60 MiB + 4 KiB,
# the last 300 bytes; the rest never written
sparse_file "$T/img" $((64 * MiB)) 0:1000 $((3 * MiB + 100)):$((2 * MiB)) $((60 * MiB + 4 * KiB)):4096 \
	$((64 * MiB - 300)):300
put "$T/img" a
proxy_reset
mnt ro a
is "$rc" 0 "read-only mount: exit 0 once DIR/data is readable"
case $mpid in '' | *[!0-9]*) r=1 ;; *) kill -0 "$mpid" && r=0 || r=1 ;; esac
ok "$r" "the serving process's PID on standard output ($mpid)"
is "$(stat -c '%s %a' "$T/ro/data")" "$((64 * MiB)) 400" "DIR/data: the blob's size, mode 0400"
is "$(stat_of by_kind.range.requests)" 0 "ready after the properties and the page list: no data fetched yet"
dd if="$T/ro/data" of=/dev/null bs=64k skip=$((10 * 16)) count=160 2>/dev/null
is "$(stat_of by_kind.range.requests)" 0 "a read of 10 MiB of never-written pages (read ahead too) costs no request"
is "$(cmp_py "$T/ro/data" "$T/img" 300 1)" ok "300 random reads (some across block edges) equal the blob"
is "$(sha256 "$T/ro/data")" "$(sha256 "$T/img")" "the whole of DIR/data is the blob"
is "$(stat_of by_kind.range.body_bytes)" $((6 * MiB)) "only the 6 blocks (of 1 MiB) holding data were fetched, each once"
is "$(stat_of by_kind.range.max_sent)" 0 "no request body on reads"
"$PYTHON" -c 'import json, sys
log = json.load(sys.stdin)
print(all(r["if_match"] for r in log if r["kind"] == "range"))' <<EOF >"$T/ifm"
$(proxy_ctl GET /_log)
EOF
is "$(cat "$T/ifm")" True "every ranged GET carries If-Match"
touch "$T/ro/data" 2>/dev/null
rc=0
printf x | dd of="$T/ro/data" conv=notrunc 2>/dev/null || rc=$?
ok "$([ "$rc" -ne 0 ] && echo 0 || echo 1)" "read-only: a write is refused"

unlike "$(cat "$T/ro.err")" "sig=" "no SAS signature in the log"
umnt ro "$mpid"
ok "$(mountpoint -q "$T/ro" && echo 1 || echo 0)" "fusermount3 -u: unmounted, the server ended"

# a blob changed behind the mount: EIO, and one log line naming it
mnt ro a
random_file "$T/other" $MiB
blobjs put-page-at "$az_ep" img a $((4 * MiB)) "$T/other" >/dev/null || bail "put-page-at failed"
# block 4 was not read yet: its GET carries the ETag seen at mount
rc=0
dd if="$T/ro/data" of=/dev/null bs=1M skip=4 count=1 2>"$T/dd.err" || rc=$?
ok "$([ "$rc" -ne 0 ] && echo 0 || echo 1)" "blob overwritten behind the reader: the read fails"
like "$(cat "$T/dd.err")" "Input/output error" "... with EIO"
dd if="$T/ro/data" of=/dev/null bs=1M skip=0 count=1 2>/dev/null && r=0 || r=1
is "$r" 1 "... and so does any later read from the blob (never mixed versions)"
is "$(grep -c 'changed behind the mount' "$T/ro.err")" 1 "one log line: $(grep 'changed behind' "$T/ro.err" | cut -c1-160)"
umnt ro "$mpid"

# unmounted here while another mount namespace still holds a copy of the mount (a container
# runtime, unshare): the server ends all the same
if command -v unshare >/dev/null; then
	mnt ns a
	unshare -m --propagation unchanged sleep 60 &
	upid=$!
	sleep 0.5 # (the copy exists once unshare has run; nothing checked here depends on the time)
	umnt ns "$mpid"
	ok "$(gone "$mpid" && echo 0 || echo 1)" "unmounted while another mount namespace holds the mount: the server ends"
	kill "$upid"
	wait "$upid" 2>/dev/null
else
	skip "unshare(1) missing"
fi

# a lazy unmount while DIR/data is open (as a loop device holds it when the dm device above is
# still in use): the open file is served on, and the server ends once it is closed
mnt held a
exec 7<"$T/held/data"
umount -l "$T/held"
sleep 1 # (a server that ended at the unmount is gone by now: the watcher looks every 250 ms)
ok "$(kill -0 "$mpid" 2>/dev/null && echo 0 || echo 1)" "lazy unmount with DIR/data open: the server goes on"
got a "$T/a.now"
is "$(dd bs=1M count=64 <&7 2>/dev/null | sha256sum | cut -d' ' -f1)" "$(sha256 "$T/a.now")" \
	"... and the open file reads the blob"
exec 7<&-
await 10 "the server to end once the file is closed" gone "$mpid"
ok "$(gone "$mpid" && echo 0 || echo 1)" "... and ends once the file is closed"

# --- read-ahead and faults during reads -----------------------------------------------------------
random_file "$T/dense" $((24 * MiB))
put "$T/dense" dense
proxy_reset
mnt ra dense -j 4
dd if="$T/ra/data" of=/dev/null bs=128k count=64 2>/dev/null # 8 MiB, a streaming reader
"$PYTHON" -c 'import json, sys
log = [r for r in json.load(sys.stdin) if r["kind"] == "range"]
# read-ahead: requests start before the reader reaches them, so several are in flight at once
inflight = max(sum(1 for o in log if o["t"] <= r["t"] < (o["t_end"] or 1e18)) for r in log)
print("%d %d" % (len(log), inflight))' <<EOF >"$T/ra.json"
$(proxy_ctl GET /_log)
EOF
read -r n inflight <"$T/ra.json"
fetched=$(stat_of by_kind.range.body_bytes)
ok "$([ "$fetched" -gt $((8 * MiB)) ] && [ "$inflight" -ge 2 ] && echo 0 || echo 1)" "a streaming read is read ahead: $fetched bytes fetched for 8 MiB read, $n GETs, up to $inflight in flight"
umnt ra "$mpid"

# a streaming read of a whole blob three times the read-ahead window (32 MiB) is fetched in runs
# of blocks (one GET each, as the dense download does), not a GET per 1 MiB block added at the end
# of a sliding window.  The reader takes 10 ms a MiB, so that the fetchers keep up with it (a
# reader faster than the service makes runs of whatever piled up in the queue meanwhile).
random_file "$T/stream" $((96 * MiB))
put "$T/stream" stream
proxy_reset
mnt ra stream -j 4
slow_sum() {
	"$PYTHON" -c 'import hashlib, sys, time
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        h.update(b)
        time.sleep(0.01)
print(h.hexdigest())' "$1"
}
is "$(slow_sum "$T/ra/data")" "$(sha256 "$T/stream")" "a streaming read of a whole 96 MiB blob: its bytes"
n=$(stat_of by_kind.range.requests)
fetched=$(stat_of by_kind.range.body_bytes)
ok "$([ "$n" -gt 0 ] && [ $((fetched / n)) -ge $((3 * MiB)) ] && echo 0 || echo 1)" \
	"... read ahead in runs: $n GETs for $fetched bytes (at least 3 MiB a GET)"
umnt ra "$mpid"

# a read-ahead GET that fails (a 400: not retried) drops its blocks: they are asked for again in a
# run before the reader gets there, not missed by the reader one 1 MiB GET after the other
proxy_reset
mnt ra stream -j 4
fault '{"kind": "range", "action": "status", "status": 400, "skip": 6, "count": 1}'
is "$(slow_sum "$T/ra/data")" "$(sha256 "$T/stream")" "a read-ahead GET refused: the streaming reader still gets the blob's bytes"
"$PYTHON" -c 'import json, sys
log = [r for r in json.load(sys.stdin) if r["kind"] == "range"]
def span(r):
    a, b = r["range"].split("=")[1].split("-")
    return int(a), int(b)
bad = [r for r in log if r["action"] == "status"]
if not bad:
    print("none -")
    sys.exit()
a, b = span(bad[0])
# GETs of a single block inside the refused range, after it
singles = sum(1 for r in log if r["t"] > bad[0]["t"] and a <= span(r)[0] <= b and span(r)[1] - span(r)[0] + 1 <= 1048576)
print("%d-%d %d" % (a, b, singles))' <<EOF >"$T/ra.json"
$(proxy_ctl GET /_log)
EOF
read -r refused singles <"$T/ra.json"
is "$singles" 0 "... and its blocks ($refused) are fetched again in a run, not block by block"
umnt ra "$mpid"

proxy_reset
mnt faults dense -j 4 --cache-mb 16
fault '{"kind": "range", "action": "status", "status": 503, "retry_after": 0, "count": 2}'
fault '{"kind": "range", "action": "reset", "skip": 2, "count": 1}'
fault '{"kind": "range", "action": "cut", "after": 300000, "skip": 3, "count": 1}'
fault '{"kind": "range", "action": "short", "after": 1000, "skip": 4, "count": 1}'
fault '{"kind": "range", "action": "stall", "after": 100, "delay": 30, "skip": 5, "count": 1}'
is "$(cmp_py "$T/faults/data" "$T/dense" 60 2)" ok "503s, resets, cut, short and stalled answers during reads: the bytes are still right"
ok "$([ "$(stat_of faults)" -ge 6 ] && echo 0 || echo 1)" "the faults were hit ($(stat_of faults) of 6)"
umnt faults "$mpid"

# SIGTERM while a read hangs on a service that stalls every answer: the server stops now (the
# read fails), not once the read gives up at --deadline
mkdir -p "$T/hang"
blobjs sas "$pep" img dense >"$T/hang.url"
encfs-fetch --allow-http --timeout 2 --deadline 900 --mount "$T/hang" --foreground --cache-mb 16 - \
	<"$T/hang.url" 2>"$T/hang.err" &
hpid=$!
_mounts="$_mounts $T/hang"
_servers="$_servers $hpid"
await 30 "the foreground mount serves" test -s "$T/hang/data"
proxy_reset
fault '{"kind": "range", "action": "stall", "delay": 900, "count": -1}'
dd if="$T/hang/data" of=/dev/null bs=1M skip=5 count=1 2>/dev/null &
dpid=$!
held() { [ "$(stat_of by_kind.range.requests)" -gt 0 ]; }
await 30 "the read's GET is held" held
kill -TERM "$hpid"
await 60 "SIGTERM while a read hangs: the server ends before --deadline" gone "$hpid"
rc=0
gone "$hpid" && { wait "$hpid" || rc=$?; }
is "$rc" 0 "... with exit 0"
ok "$(mountpoint -q "$T/hang" && echo 1 || echo 0)" "... and unmounted"
kill -KILL "$dpid" 2>/dev/null
proxy_ctl DELETE /_fault >/dev/null

# an unmount while the page list of a large blob is still being listed in the background (the
# service holds the answer for its second 512 MiB segment): the server ends now, not once the
# listing gives up at --deadline
sparse_file "$T/huge" $((1024 * MiB)) 0:4096
put "$T/huge" huge
proxy_reset
fault '{"kind": "pagelist", "action": "stall", "delay": 900, "skip": 1, "count": -1}'
mnt lst huge --timeout 2 --deadline 900
listing() { [ "$(stat_of by_kind.pagelist.requests)" -ge 2 ]; }
await 30 "the second segment's listing is held" listing
fusermount3 -u "$T/lst"
await 20 "the server ends at the unmount while a listing hangs" gone "$mpid"
ok "$(gone "$mpid" && echo 0 || echo 1)" "unmounted while the page list's second segment hangs: the server ends at once"
proxy_ctl DELETE /_fault >/dev/null

# --- read-write --------------------------------------------------------------------------------
sparse_file "$T/rwimg" $((32 * MiB)) 0:4096 $((5 * MiB - 10)):$((3 * MiB)) $((20 * MiB)):512
put "$T/rwimg" rw
cp "$T/rwimg" "$T/rw.want"
proxy_reset
mnt rw rw --read-write
rwpid=$mpid
is "$rc" 0 "read-write mount: exit 0"
is "$(stat -c %a "$T/rw/data")" 600 "read-write: DIR/data is mode 0600"
is "$(lease_state rw)" leased "the blob is leased while mounted read-write"
is "$(writes_py "$T/rw/data" "$T/rw.want" 120 3)" "fsync ok" "120 random writes (aligned, unaligned, across block edges), fsync"
got rw "$T/rw.got"
is "$(sha256 "$T/rw.got")" "$(sha256 "$T/rw.want")" "after fsync the blob (straight from Azurite) is the expected bytes"
ok "$([ "$(stat_of by_kind.page.max_sent)" -le $((4 * MiB)) ] && echo 0 || echo 1)" "no Put Page over 4 MiB"
is "$(cmp_py "$T/rw/data" "$T/rw.want" 100 4)" ok "reads through the mount see the writes"

# a second writer is refused, naming the lease; a reader is not
mnt rw2 rw --read-write
is "$rc" 8 "a second read-write mount of the blob is refused (exit 8)"
like "$err" "holds a lease on it" "... the message says a lease is held"
like "$err" "expires within 60 s" "... and when it would expire"
ok "$(mountpoint -q "$T/rw2" && echo 1 || echo 0)" "... and leaves no mount behind"
mnt rw3 rw
is "$rc" 0 "a read-only mount of the leased blob works"
umnt rw3 "$mpid"

# O_DIRECT (as a loop device with direct I/O opens its file): written, synced, read back
head -c $((64 * KiB)) /dev/urandom >"$T/direct"
rc=0
dd if="$T/direct" of="$T/rw/data" bs=4096 seek=$((9 * 256 + 1)) oflag=direct conv=notrunc,fsync 2>"$T/dd.err" || rc=$?
is "$rc" 0 "O_DIRECT writes and fsync: accepted"
dd if="$T/direct" of="$T/rw.want" bs=4096 seek=$((9 * 256 + 1)) conv=notrunc 2>/dev/null
is "$(dd if="$T/rw/data" bs=4096 skip=$((9 * 256 + 1)) count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)" \
	"$(sha256 "$T/direct")" "O_DIRECT reads see them"

# close is a sync point too
"$PYTHON" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY); os.pwrite(fd, b"closed", 7 * 1048576 + 3); os.close(fd)' "$T/rw/data"
printf closed | dd of="$T/rw.want" bs=1 seek=$((7 * MiB + 3)) conv=notrunc 2>/dev/null
got rw "$T/rw.got"
is "$(sha256 "$T/rw.got")" "$(sha256 "$T/rw.want")" "close(2) returned: the write is in the blob"

# faults during writes: the bytes still arrive
proxy_reset
fault '{"kind": "page", "action": "status", "status": 503, "retry_after": 0, "count": 3}'
fault '{"kind": "page", "action": "reset", "skip": 3, "count": 2}'
fault '{"kind": "page", "action": "cut_request", "skip": 6, "count": 2}'
fault '{"kind": "page", "action": "drop", "skip": 9, "count": 2}'
fault '{"kind": "page", "action": "stall", "delay": 30, "skip": 12, "count": 1}'
is "$(writes_py "$T/rw/data" "$T/rw.want" 60 5)" "fsync ok" "503s, resets, cut uploads, lost answers and a stall during writes: fsync still succeeds"
got rw "$T/rw.got"
is "$(sha256 "$T/rw.got")" "$(sha256 "$T/rw.want")" "... and the blob is the expected bytes"
ok "$([ "$(stat_of faults)" -ge 9 ] && echo 0 || echo 1)" "the faults were hit ($(stat_of faults))"

# SIGKILL after fsync loses nothing
proxy_reset
is "$(writes_py "$T/rw/data" "$T/rw.want" 40 6)" "fsync ok" "more writes, fsync"
kill -KILL "$rwpid"
await 10 "the killed server is gone" gone "$rwpid"
umount -l "$T/rw" 2>/dev/null
got rw "$T/rw.got"
is "$(sha256 "$T/rw.got")" "$(sha256 "$T/rw.want")" "SIGKILL right after fsync: the blob holds every byte written"

# SIGTERM: writes not yet synced (the file still open: no close either) go back, the lease is
# released, exit 0
sparse_file "$T/tm" $((16 * MiB)) 0:4096
put "$T/tm" term
cp "$T/tm" "$T/tm.want"
mkdir -p "$T/term"
blobjs sas-write "$pep" img term >"$T/term.url"
encfs-fetch --allow-http --mount "$T/term" --read-write --foreground --cache-mb 256 - <"$T/term.url" \
	2>"$T/term.err" &
fpid=$!
_mounts="$_mounts $T/term"
_servers="$_servers $fpid"
await 30 "the foreground mount serves" test -s "$T/term/data"
writes_py "$T/term/data" "$T/tm.want" 12 7 hold >"$T/term.py" 2>&1 &
wpid=$!
await 30 "the writes are done" grep -q written "$T/term.py"
kill -TERM "$fpid"
rc=0
within 60 sh -c 'while kill -0 '"$fpid"' 2>/dev/null; do sleep 0.1; done'
wait "$fpid" || rc=$?
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
is "$rc" 0 "SIGTERM: the server writes back and exits 0"
got term "$T/tm.got"
is "$(sha256 "$T/tm.got")" "$(sha256 "$T/tm.want")" "... every write is in the blob"
is "$(lease_state term)" available "... and the lease is released"
ok "$(mountpoint -q "$T/term" && echo 1 || echo 0)" "... and unmounted"

# SIGTERM to the waiting caller during the start (the blob's properties held back 30 s): it is
# passed on, so that no server outlives it to mount and lease the blob later
proxy_reset
fault '{"kind": "head", "action": "delay", "delay": 30, "count": 1}'
mkdir -p "$T/early"
blobjs sas-write "$pep" img term >"$T/early.url"
encfs-fetch --allow-http --mount "$T/early" --read-write - <"$T/early.url" >"$T/early.pid" 2>"$T/early.err" &
epid=$!
delayed() { [ "$(stat_of delays_started)" -gt 0 ]; }
await 20 "the start waits for the blob's properties" delayed
kill -TERM "$epid"
rc=0
within 20 sh -c 'while kill -0 '"$epid"' 2>/dev/null; do sleep 0.1; done'
wait "$epid" || rc=$?
ok "$([ "$rc" -ne 0 ] && [ ! -s "$T/early.pid" ] && echo 0 || echo 1)" \
	"SIGTERM while the mount starts: the caller fails (exit $rc), no PID printed"
sleep 1 # (what a server left running would do now: mount)
is "$(pgrep -c -f "encfs-fetch --allow-http --mount $T/early ")" 0 "... and no server is left"
ok "$(mountpoint -q "$T/early" && echo 1 || echo 0)" "... nothing mounted"
is "$(lease_state term)" available "... and the blob is not leased"

# a Put Page that fails for good: EIO at the next fsync, and at every one after it
sparse_file "$T/wf" $((8 * MiB)) 0:4096
put "$T/wf" wf
cp "$T/wf" "$T/wf.want"
mnt wfm wf --read-write
proxy_reset
fault '{"kind": "page", "action": "status", "status": 403, "count": -1}'
is "$(writes_py "$T/wfm/data" "$T/wf.want" 5 8)" "error: Input/output error" "Put Page refused (403): fsync fails with EIO"
proxy_reset
is "$(writes_py "$T/wfm/data" "$T/wf.want" 1 9)" "error: Input/output error" "... and so does the next, the failure sticks"
like "$(cat "$T/wfm.err")" "HTTP 403" "the log says what failed"
fusermount3 -u "$T/wfm"
await 60 "the failed writer ends" gone "$mpid"

# the lease broken by someone else: our writes fail, never land on a blob we do not hold
sparse_file "$T/lb" $((8 * MiB)) 0:4096
put "$T/lb" lb
cp "$T/lb" "$T/lb.want"
mnt lbm lb --read-write
blobjs lease "$az_ep" img lb break >/dev/null || bail "cannot break the lease"
is "$(writes_py "$T/lbm/data" "$T/lb.want" 3 10)" "error: Input/output error" "lease broken behind the mount: fsync fails with EIO"
like "$(cat "$T/lbm.err")" "lease" "the log names the lease"
got lb "$T/lb.got"
is "$(sha256 "$T/lb.got")" "$(sha256 "$T/lb")" "the blob was not written"
umnt lbm "$mpid"

# read-write: blocks not cached are read while our own writes go on (each Put Page changes the
# ETag; every range GET is held 0.4 s, so that writes end during each): no read fails
random_file "$T/race" $((40 * MiB))
put "$T/race" race
mnt racem race --read-write --cache-mb 16
proxy_reset
fault '{"kind": "range", "action": "delay", "delay": 0.4, "count": -1}'
"$PYTHON" - "$T/racem/data" "$T/race" >"$T/race.out" 2>&1 <<'EOF'
import os, sys, threading
f, e = sys.argv[1], sys.argv[2]
fd, ed = os.open(f, os.O_RDWR), os.open(e, os.O_RDONLY)
done, syncs, errs = threading.Event(), [0], []
def writer():
    i = 0
    while not done.is_set():
        try:
            os.pwrite(fd, os.urandom(4096), (i % 256) * 4096)
            os.fsync(fd)
            syncs[0] += 1
        except OSError as x:
            errs.append("write: %s" % x.strerror)
            return
        i += 1
t = threading.Thread(target=writer)
t.start()
out = "ok"
try:
    for b in (30, 12, 25, 18, 33, 21):
        if os.pread(fd, 1 << 20, b << 20) != os.pread(ed, 1 << 20, b << 20):
            out = "block %d differs" % b
            break
except OSError as x:
    out = "read: %s" % x.strerror
done.set()
t.join()
print(errs[0] if errs else out if syncs[0] >= 6 else "only %d fsyncs during the reads" % syncs[0])
EOF
is "$(cat "$T/race.out")" ok "read-write: reads of blocks not cached during a stream of writes and fsyncs succeed, with the blob's bytes"
unlike "$(cat "$T/racem.err")" "changed behind the mount" "... and nothing is taken for a change behind the mount"
umnt racem "$mpid"
# the lease broken and the blob written by someone else: a read of a block not cached fails,
# never returns the other writer's bytes
mnt racem race --read-write --cache-mb 16
proxy_reset
blobjs lease "$az_ep" img race break >/dev/null || bail "cannot break the lease"
blobjs put-page-at "$az_ep" img race $((39 * MiB)) "$T/other" >/dev/null || bail "put-page-at failed"
"$PYTHON" - "$T/racem/data" "$T/other" >"$T/race.out" 2>&1 <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    got = os.pread(fd, 1 << 20, 39 << 20)
    print("the other writer's bytes" if got == open(sys.argv[2], "rb").read() else "other bytes")
except OSError as x:
    print("error: %s" % x.strerror)
EOF
is "$(cat "$T/race.out")" "error: Input/output error" "read-write, lease broken and the blob written by another: a read fails with EIO"
umnt racem "$mpid"

# --hydrate: every block of data ends up in the cache, and reads need the network no more
mkdir -p "$T/cachedir"
mnt hy dense -v --hydrate --cache-mb 32 --cache-dir "$T/cachedir"
await 60 "hydration ends" grep -q hydrated "$T/hy.err"
is "$(ls -A "$T/cachedir")" "" "--cache-dir: the cache file has no name (nothing to leave behind)"
proxy_reset
is "$(sha256 "$T/hy/data")" "$(sha256 "$T/dense")" "--hydrate, --cache-dir: the whole file reads as the blob"
is "$(stat_of by_kind.range.requests)" 0 "... with no request once hydrated"
umnt hy "$mpid"

# a SAS that has expired: said at mount
blobjs sas "$pep" img a | sed 's/se=[^&]*/se=2020-01-01T00%3A00%3A00Z/' >"$T/old.url"
mkdir -p "$T/old"
run within 60 encfs-fetch --allow-http --mount "$T/old" - <"$T/old.url"
is "$rc" 5 "an expired SAS: the mount is refused (exit 5)"
like "$err" "expired 2020-01-01 00:00:00 UTC" "... and a log line says it expired, and when"
unlike "$err" "sig=" "... without the signature"

# a block blob: read-only works, read-write is refused with what to do
random_file "$T/bb" $((3 * MiB + 5))
blobjs put-block "$az_ep" img bb "$T/bb" >/dev/null || bail "put-block failed"
mnt bbro bb
is "$(sha256 "$T/bbro/data")" "$(sha256 "$T/bb")" "a block blob mounted read-only reads as itself"
umnt bbro "$mpid"
mnt bbrw bb --read-write
is "$rc" 3 "a block blob mounted read-write: refused (exit 3)"
like "$err" "only a page blob takes writes" "... saying why"
like "$err" "encfs-fetch --upload" "... and what to do"

# --- memory: a whole 2 GiB image read through a 32 MiB cache --------------------------------------
if grep -q __asan_init "$(command -v encfs-fetch)"; then
	skip "built with AddressSanitizer: its shadow memory says nothing about ours"
else
	set --
	i=0
	while [ $i -lt 2048 ]; do
		set -- "$@" $((i * MiB)):$MiB
		i=$((i + 16))
	done
	sparse_file "$T/big" $((2048 * MiB)) 0:$((64 * MiB)) "$@"
	put "$T/big" big
	want=$(sha256 "$T/big")
	rm -f "$T/big"
	mnt big big --cache-mb 32 -j 8
	sum=$(stage cat cat "$T/big/data" | sha256sum | cut -d' ' -f1)
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$mpid/status")
	is "$(stage_rc cat):$sum" "0:$want" "a 2 GiB image read whole through the mount: the blob's bytes"
	diag "peak RSS of the server reading 2 GiB with --cache-mb 32: $hwm KiB"
	ok "$([ "$hwm" -lt $(((32 + 24) * 1024)) ] && echo 0 || echo 1)" "the server's peak RSS (${hwm} KiB) stays under the 32 MiB cache plus 24 MiB"
	umnt big "$mpid"
fi

# --- dirty data is bounded: 96 MiB written through a 16 MiB cache, no sync until the end -------
if grep -q __asan_init "$(command -v encfs-fetch)"; then
	skip "built with AddressSanitizer: its shadow memory says nothing about ours"
else
	sparse_file "$T/bd" $((96 * MiB)) 0:512
	put "$T/bd" bd
	rm -f "$T/bd"
	mnt bdm bd --read-write --cache-mb 16
	head -c $((96 * MiB)) /dev/urandom >"$T/bd.want"
	rc=0
	dd if="$T/bd.want" of="$T/bdm/data" bs=1M conv=notrunc 2>/dev/null || rc=$?
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$mpid/status")
	diag "peak RSS of the server writing 96 MiB with --cache-mb 16: $hwm KiB"
	ok "$([ "$rc" -eq 0 ] && [ "$hwm" -lt $(((16 + 24) * 1024)) ] && echo 0 || echo 1)" "96 MiB written through a 16 MiB cache: writers wait for write-back, peak RSS ${hwm} KiB"
	got bd "$T/bd.got"
	is "$(sha256 "$T/bd.got")" "$(sha256 "$T/bd.want")" "... and the blob has every byte once dd closed the file"
	umnt bdm "$mpid"
fi

# --- bearer token renewal: tokens of 8 seconds, a mount that lives longer -----------------------
azurite_start azs https
CA=$T/ca/ca.pem
start_service imds "$PYTHON" "$ENCFS_SRC/test/fakes/imds.py" --token-lifetime 8
ENCFS_IMDS_ENDPOINT=http://127.0.0.1:$port
export ENCFS_IMDS_ENDPOINT
blobjs container "$az_ep" priv || bail "cannot create the https container"
blobjs put-page "$az_ep" priv dense "$T/dense" >/dev/null || bail "cannot put the https blob"
mkdir -p "$T/tok"
mpid=$(within 60 encfs-fetch -vv --private --cacert "$CA" --mount "$T/tok" --cache-mb 16 "$az_ep/priv/dense" 2>"$T/tok.err")
_mounts="$_mounts $T/tok"
_servers="$_servers $mpid"
is "$(dd if="$T/tok/data" bs=1M count=1 2>/dev/null | sha256sum | cut -d' ' -f1)" \
	"$(head -c $MiB "$T/dense" | sha256sum | cut -d' ' -f1)" "--private: reads with a bearer token"
sleep 12 # the first token is gone by now
is "$(sha256 "$T/tok/data")" "$(sha256 "$T/dense")" "a read after the first token expired: renewed, the bytes are right"
like "$(cat "$T/tok.err")" "renewed the access token" "the log says the token was renewed"
unlike "$(cat "$T/tok.err")" "eyJ" "no token in the log"
umnt tok "$mpid"

# --- usage -------------------------------------------------------------------------------------
run encfs-fetch --mount "$T/nowhere" "$pep/img/a"
is "$rc" 2 "a mount point that does not exist: exit 2"
like "$err" "give an existing, empty directory" "... saying what to give"
run encfs-fetch --read-write "$pep/img/a"
is "$rc" 2 "--read-write without --mount: exit 2"
run encfs-fetch --mount "$T" --cache-mb 1 "$pep/img/a"
is "$rc" 2 "--cache-mb below 16: exit 2"

done_testing
