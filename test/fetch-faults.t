#!/bin/sh
# encfs-fetch through a fault-injecting proxy in front of Azurite: connections cut mid-body, 503
# with Retry-After, stalls past --timeout, truncated bodies and resets leave the output exact; 403
# is a clear error without a retry storm; a blob overwritten mid-download is "blob changed" and
# leaves no output file.  Page lists in pages (NextMarker) are followed.  Every fault case checks
# at the proxy that the fault was injected; a stall is held longer than the test waits, so only
# the tool's own --timeout can end it; Retry-After is measured between attempts at the proxy.
# shellcheck disable=SC1091,SC2154 # lib.sh gives out, err, rc, port
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"

blob_env_ready || skip_all "Azurite or the Azure SDK missing (run make deps)"
command -v encfs-fetch >/dev/null || bail "encfs-fetch not built"

azurite_start az http
proxy_start "http://127.0.0.1:$az_port"
ep=http://127.0.0.1:$proxy_port/$AZ_ACCOUNT
MiB=1048576
random_file "$T/dense" $((70 * MiB + 512))   # 3 ranges into a file, 18 to stdout
sparse_file "$T/sparse" $((16 * MiB)) 0:4096 $((5 * MiB)):$((3 * MiB)) $((15 * MiB)):512
blobjs container "$az_ep" pub public || bail "cannot create the container"
blobjs put-page "$az_ep" pub dense "$T/dense" >/dev/null || bail "cannot upload dense"
blobjs put-page "$az_ep" pub sparse "$T/sparse" >/dev/null || bail "cannot upload sparse"
want=$(sha256 "$T/dense")

fault() { proxy_ctl POST /_fault "$1" >/dev/null || bail "cannot set fault $1"; }
# fetch ARGS...: -o $T/got from the proxy, fast timeouts; the test gives up on it after 40 s (a
# stall is held for 600 s: only the tool's --timeout ends it in time)
fetch() {
	rm -f "$T/got"
	run within 40 encfs-fetch -v --allow-http --timeout 2 --deadline 20 -o "$T/got" "$@"
}
stat_of() { json_get "$(proxy_ctl GET /_stats)" "$1"; }
# await_delay: until the proxy holds a delayed answer begun since its counters were zeroed (one
# of an earlier run may still be held: its client is gone, the proxy sleeps on)
delay_begun() { [ "$(stat_of delays_started)" -gt 0 ]; }
await_delay() { await 10 "the proxy holding a delayed response" delay_begun; }

# each transient fault, alone and then all together, in file and stream modes
for f in \
	'{"kind":"range","action":"cut","count":2}' \
	'{"kind":"range","action":"short","count":2}' \
	'{"kind":"range","action":"status","status":503,"retry_after":1,"count":2}' \
	'{"kind":"range","action":"status","status":500,"count":1}' \
	'{"kind":"range","action":"stall","after":1000,"delay":600,"count":1}' \
	'{"kind":"range","action":"stall","after":0,"delay":600,"count":1}' \
	'{"kind":"range","action":"reset","count":2}' \
	'{"kind":"pagelist","action":"reset","count":1}' \
	'{"kind":"pagelist","action":"status","status":503,"retry_after":1,"count":1}' \
	'{"kind":"head","action":"status","status":503,"count":1}'; do
	proxy_reset
	fault "$f"
	fetch "$ep/pub/dense"
	is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$want" "file exact after $f"
	is "$(stat_of faults)" "$(json_get "$f" count)" "the proxy injected it"
	case $f in
	*head*) ;;
	*) like "$err" "; retrying until " "the retry is logged: the first as a warning, with host:port and until when" ;;
	esac
	case $f in
	*stall*)
		like "$err" "nothing received for 2 s (--timeout); retrying " "  the tool's --timeout cut the stalled request"
		is "$(stat_of stalls_cut_by_client):$(stat_of stalls_expired)" 1:0 "  the proxy saw the tool close it"
		;;
	esac
done

proxy_reset
fault '{"kind":"range","action":"cut","count":3,"skip":1}'
fault '{"kind":"range","action":"short","count":2,"skip":4}'
fault '{"kind":"range","action":"stall","after":70000,"delay":600,"count":1,"skip":3}'
fault '{"kind":"range","action":"status","status":503,"retry_after":1,"count":2,"skip":2}'
sum=$(stage fetch within 60 encfs-fetch -v -j 4 --allow-http --timeout 2 --deadline 20 "$ep/pub/dense" 2>"$T/err" |
	sha256sum | cut -d' ' -f1)
is "$(stage_rc fetch):$sum" "0:$want" "stdout exact after cuts, short bodies, a stall and 503s"
is "$(stat_of faults)" 8 "the proxy injected all eight"
like "$(cat "$T/err")" "nothing received for 2 s (--timeout)" "  the stall was cut by the tool's --timeout"
is "$(stat_of stalls_cut_by_client)" 1 "  as the proxy saw"

proxy_reset
fault '{"kind":"range","action":"cut","count":2}'
fault '{"kind":"pagelist","action":"reset","count":1}'
fetch "$ep/pub/sparse"
is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$(sha256 "$T/sparse")" "sparse page blob exact after faults"
is "$(stat_of faults):$(stat_of by_kind.pagelist.requests)" 3:2 "  the proxy injected the three faults, and the page list was asked again"

# Retry-After: the attempt after a 503 with "Retry-After: 3" comes at least 3 s after that answer
# (measured at the proxy; less 2 ms for the tool's millisecond clock); without it the tool's own
# backoff would wait 125 to 250 ms.  No upper bound: a busy machine may be slower.
proxy_reset
fault '{"kind":"range","action":"status","status":503,"retry_after":3,"count":1,"skip":1}'
fetch -j 1 "$ep/pub/dense"
is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$want" "503 with Retry-After: 3 on a range: the file is exact"
proxy_ctl GET /_log >"$T/log.json"
gap=$("$PYTHON" -c 'import json, sys
log = json.load(open(sys.argv[1]))
bad = [e for e in log if e["action"] == "status"]
again = [e for e in log if bad and e["t"] > bad[0]["t"] and e["range"] == bad[0]["range"]]
print(round((again[0]["t"] - bad[0]["t_end"]) * 1000) if bad and again else "no retry")' "$T/log.json")
diag "Retry-After 3: the range was asked again $gap ms after the 503"
ok "$([ "$gap" != "no retry" ] && [ "$gap" -ge 2998 ] && echo 0 || echo 1)" "  the same range is asked again no sooner than Retry-After says ($gap ms)"

# every request for the blob's bytes or page list is pinned to the ETag of its first look (If-Match):
# the service then refuses (412) what was changed since, rather than mixing two versions
proxy_reset
fetch -j 4 "$ep/pub/sparse"
is "$rc" 0 "a download to check the requests' headers"
etag=$(curl -sfI "$ep/pub/sparse" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
proxy_ctl GET /_log >"$T/log.json"
is "$("$PYTHON" -c 'import json, sys
log = [e for e in json.load(open(sys.argv[1])) if e["kind"] in ("range", "pagelist")]
print(len(log) > 0 and all(e["if_match"] == sys.argv[2] for e in log))' "$T/log.json" "$etag")" True \
	"every range and page list request carries If-Match: the blob's ETag ($etag)"

# a page list served in pages with NextMarker continuations (as Blob Storage does for long lists;
# Azurite does not), one continuation reset on the way
proxy_reset
fault '{"kind":"pagelist","action":"reset","count":1,"skip":1}'
fault '{"kind":"pagelist","action":"paginate","page":1,"count":-1}'
fetch "$ep/pub/sparse"
is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$(sha256 "$T/sparse")" "sparse page blob exact from a page list in three pages"
is "$(stat_of by_kind.pagelist.requests)" 4 "three page list requests and the retried one"
proxy_ctl DELETE /_stats >/dev/null
sum=$(stage fetch encfs-fetch --allow-http "$ep/pub/sparse" 2>"$T/err" | sha256sum | cut -d' ' -f1)
is "$(stage_rc fetch):$sum" "0:$(sha256 "$T/sparse")" "stdout exact from a paged page list"
is "$(stat_of by_kind.pagelist.requests)" 3 "three page list requests"

# ranges start while the rest of the page list is still coming: the third page is held 5 s
proxy_reset
fault '{"kind":"pagelist","action":"paginate","page":1,"delay_page":2,"delay":5,"count":-1}'
rm -f "$T/got"
encfs-fetch --allow-http -o "$T/got" "$ep/pub/sparse" 2>"$T/err" &
pid=$!
await_delay
two_ranges() { [ "$(stat_of by_kind.range.requests)" -ge 2 ]; }
await 10 "the ranges of the first two pages" two_ranges
is "$(stat_of by_kind.range.requests):$(stat_of pending_delays)" 2:1 \
	"the ranges of the first two pages are fetched while the third page is awaited"
rc=0
wait $pid || rc=$?
is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$(sha256 "$T/sparse")" "  and the file is exact"

# 403: one clear error, no retries
proxy_reset
fault '{"kind":"range","action":"status","status":403,"count":-1}'
fetch -j 2 "$ep/pub/dense"
is "$rc" 5 "403 on a range is exit 5"
like "$err" "HTTP 403 AuthorizationFailure" "the error names the refusal"
unlike "$err" "retrying" "403 is not retried"
ok "$([ "$(stat_of by_kind.range.requests)" -le 2 ] && echo 0 || echo 1)" "no retry storm: at most the -j 2 requests in flight were made"
ok "$([ ! -e "$T/got" ] && echo 0 || echo 1)" "no output file after 403"

# a 503 that never ends: gives up at the deadline
proxy_ctl DELETE /_fault >/dev/null
fault '{"kind":"range","action":"status","status":503,"count":-1}'
rm -f "$T/got"
run encfs-fetch --allow-http --deadline 2 -o "$T/got" "$ep/pub/dense"
is "$rc" 4 "a 503 that persists past --deadline is exit 4"
like "$err" "gave up after" "the error says it gave up"
ok "$([ ! -e "$T/got" ] && echo 0 || echo 1)" "no output file after giving up"

# an error answer whose body never ends (a hostile or broken endpoint): given up at once, not
# read until --deadline or for ever (bytes keep moving: the stall check never fires)
for k in range pagelist; do
	proxy_reset
	fault "{\"kind\":\"$k\",\"action\":\"flood\",\"status\":500,\"count\":-1}"
	blob=dense
	[ "$k" = range ] || blob=sparse
	fetch "$ep/pub/$blob"
	is "$rc" 4 "$k: an endless error body is exit 4"
	like "$err" "HTTP 500 ServerBusy with an error body longer than 64 KiB" "  the error names it"
	ok "$([ "$(stat_of by_kind.$k.body_bytes)" -lt $((32 * MiB)) ] && echo 0 || echo 1)" "  and little of it was read ($(stat_of by_kind.$k.body_bytes) bytes)"
	ok "$([ ! -e "$T/got" ] && echo 0 || echo 1)" "  no output file"
done
proxy_ctl DELETE /_fault >/dev/null

# the blob overwritten mid-download: the second range waits at the proxy while the blob changes
for mode in file stdout; do
	proxy_reset
	blobjs put-page "$az_ep" pub victim "$T/dense" >/dev/null || bail "cannot upload victim"
	fault '{"kind":"range","action":"delay","delay":3,"count":1,"skip":1}'
	rm -f "$T/got" "$T/stdout"
	if [ $mode = file ]; then
		encfs-fetch -j 1 --allow-http -o "$T/got" "$ep/pub/victim" 2>"$T/err" &
	else
		encfs-fetch -j 1 --allow-http "$ep/pub/victim" >"$T/stdout" 2>"$T/err" &
	fi
	pid=$!
	await_delay
	head -c 4096 /dev/urandom >"$T/page"
	blobjs put-page-at "$az_ep" pub victim $((40 * MiB)) "$T/page" || bail "cannot overwrite"
	rc=0
	wait $pid || rc=$?
	is "$rc" 8 "$mode: a blob changed mid-download is exit 8"
	like "$(cat "$T/err")" "the blob changed during the download" "$mode: the error says the blob changed"
	if [ $mode = file ]; then
		ok "$([ ! -e "$T/got" ] && echo 0 || echo 1)" "file: no output file is left"
	else
		ok "$([ "$(stat -c %s "$T/stdout")" -lt $((70 * MiB)) ] && echo 0 || echo 1)" "stdout: the stream stops short (the consumer sees the failure)"
	fi
done

# --force never destroys the old file before the new one is complete: it downloads next to it and
# renames over it only at the end
mkdir -p "$T/d"
proxy_ctl DELETE /_fault >/dev/null
fault '{"kind":"range","action":"status","status":403,"count":-1}'
echo old >"$T/d/img"
run encfs-fetch --allow-http --force -o "$T/d/img" "$ep/pub/dense"
is "$rc:$(head -c 64 "$T/d/img")" "5:old" "--force and a failed download: the old file is untouched"
is "$(ls -A "$T/d")" img "  and no temporary file is left"
proxy_ctl DELETE /_fault >/dev/null
run encfs-fetch --allow-http --force -o "$T/d/img" "$ep/pub/dense"
is "$rc:$(sha256 "$T/d/img")" "0:$want" "--force and a good download: the file is replaced"
is "$(ls -A "$T/d"):$(stat -c %a "$T/d/img")" img:600 "  mode 0600, no temporary file left"

# SIGTERM/SIGINT mid-download: no partial file; with --force the old file stays
for sig in TERM INT; do
	for force in "" --force; do
		proxy_reset
		fault '{"kind":"range","action":"delay","delay":4,"count":1,"skip":1}'
		rm -f "$T/d/img"
		[ -n "$force" ] && echo old >"$T/d/img"
		encfs-fetch -j 1 --allow-http $force -o "$T/d/img" "$ep/pub/dense" 2>"$T/err" &
		pid=$!
		await_delay
		kill -s $sig $pid
		rc=0
		wait $pid || rc=$?
		if [ -n "$force" ]; then
			is "$rc:$(head -c 64 "$T/d/img")" "8:old" "SIG$sig with --force: exit 8, the old file is untouched"
			is "$(ls -A "$T/d")" img "  and no temporary file is left"
		else
			is "$rc:$(ls -A "$T/d")" "8:" "SIG$sig: exit 8, no output file left"
		fi
		like "$(cat "$T/err")" "interrupted by a signal" "  the error says why"
	done
done

# to standard output there is nothing to clean up: SIGTERM ends the tool at once (its default
# action: status 128+15, no message), even while it waits for a reader that does not read
proxy_reset
mkfifo "$T/fifo"
"$PYTHON" -c "import time; time.sleep(60)" <"$T/fifo" &
reader=$!
encfs-fetch --allow-http "$ep/pub/dense" >"$T/fifo" 2>"$T/err" &
pid=$!
# the event: the tool blocked in write(2) on the full pipe (the kernel's wait channel, or the
# system call it is in: write, on descriptor 1, x86-64 numbering)
blocked_writing() {
	case $(cat "/proc/$pid/wchan" 2>/dev/null):$(cut -d' ' -f1,2 "/proc/$pid/syscall" 2>/dev/null) in
	*pipe_write*:* | *:"1 0x1") return 0 ;;
	esac
	return 1
}
await 20 "encfs-fetch blocked writing to a reader that does not read" blocked_writing
kill -s TERM $pid
gone() { ! kill -0 $pid 2>/dev/null; }
await 10 "encfs-fetch ending after SIGTERM" gone || kill -s KILL $pid
rc=0
wait $pid || rc=$?
is "$rc:$(cat "$T/err")" "143:" "stdout: SIGTERM ends the tool while its reader stalls (killed by the signal, nothing said)"
kill $reader 2>/dev/null
wait $reader 2>/dev/null

# a reader that pauses longer than --timeout is not a stalled download: here the second range is
# held 4 s at the proxy while the reader sleeps 3 s; what counts is 1 s of waiting, not 4
proxy_ctl DELETE /_fault >/dev/null
fault '{"kind":"range","action":"delay","delay":4,"count":1,"skip":1}'
sum=$(stage fetch encfs-fetch -v --allow-http --timeout 2 "$ep/pub/dense" 2>"$T/err" | { sleep 3; sha256sum; } | cut -d' ' -f1)
is "$(stage_rc fetch):$sum" "0:$want" "stdout: a reader pausing past --timeout still gets the exact bytes"
unlike "$(cat "$T/err")" "nothing received" "  and no request was cut as stalled"

# a range that makes progress on every attempt is not "failing for --deadline"
proxy_ctl DELETE /_fault >/dev/null
fault '{"kind":"range","action":"cut","after":1048576,"count":7}'
fetch -j 1 --deadline 2 "$ep/pub/dense"
is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$want" "seven cuts of one range, each after progress, within --deadline 2"

# hostile or broken page list responses
proxy_ctl DELETE /_fault >/dev/null
fault '{"kind":"pagelist","action":"header","drop":["ETag"]}'
fetch "$ep/pub/sparse"
is "$rc" 4 "a page list response without ETag is refused (exit 4)"
like "$err" "no ETag" "  the error says so"
ok "$([ ! -e "$T/got" ] && echo 0 || echo 1)" "  no output file"
proxy_reset
fault '{"kind":"pagelist","action":"paginate","loop":["same"],"count":-1}'
fetch "$ep/pub/sparse"
is "$rc" 4 "a service repeating its continuation marker is refused (exit 4)"
like "$err" "the same continuation marker" "  the error says so"
is "$(stat_of by_kind.pagelist.requests)" 2 "  after two page list requests"
proxy_reset
fault '{"kind":"pagelist","action":"paginate","loop":["a","b","c"],"count":-1}'
fetch "$ep/pub/sparse"
is "$rc" 4 "a service cycling through continuation markers is refused (exit 4)"
like "$err" "continuation" "  the error says so"
n=$(stat_of by_kind.pagelist.requests)
ok "$([ "$n" -le 1100 ] && echo 0 || echo 1)" "  after a bounded number of requests ($n)"
proxy_reset
fault '{"kind":"pagelist","action":"header","set":{"ETag":"\"0x8DD0THER\""}}'
fetch "$ep/pub/sparse"
is "$rc" 8 "a page list answered for another ETag than the blob's is refused (exit 8)"
like "$err" "the blob changed during the download (ETag \"0x8DD0THER\", expected" "  the error says the blob changed"
ok "$([ ! -e "$T/got" ] && echo 0 || echo 1)" "  no output file"
proxy_ctl DELETE /_fault >/dev/null
fault '{"kind":"head","action":"header","set":{"ETag":"\"0x8D\u001b[2J\""}}'
fetch "$ep/pub/sparse"
is "$rc" 4 "an ETag with control characters is refused (exit 4)"
like "$err" "no usable ETag" "  the error says so"

done_testing
