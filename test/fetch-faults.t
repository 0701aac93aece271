#!/bin/sh
# encfs-fetch through a fault-injecting proxy in front of Azurite: connections cut mid-body, 503
# with Retry-After, stalls past --timeout, truncated bodies and resets leave the output exact; 403
# is a clear error without a retry storm; a blob overwritten mid-download is "blob changed" and
# leaves no output file.  Page lists in pages (NextMarker) are followed.
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
fetch() { # fetch ARGS...: -o $T/got from the proxy, fast timeouts
	rm -f "$T/got"
	run encfs-fetch -v --allow-http --timeout 2 --deadline 20 -o "$T/got" "$@"
}
stat_of() { json_get "$(proxy_ctl GET /_stats)" "$1"; }
# await_delay: until the proxy holds a delayed response (at most 10 s)
await_delay() {
	_i=0
	while [ "$(stat_of pending_delays)" -eq 0 ] && [ $_i -lt 100 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
}

# each transient fault, alone and then all together, in file and stream modes
for f in \
	'{"kind":"range","action":"cut","count":2}' \
	'{"kind":"range","action":"short","count":2}' \
	'{"kind":"range","action":"status","status":503,"retry_after":1,"count":2}' \
	'{"kind":"range","action":"status","status":500,"count":1}' \
	'{"kind":"range","action":"stall","after":1000,"delay":6,"count":1}' \
	'{"kind":"range","action":"stall","after":0,"delay":6,"count":1}' \
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
done

proxy_ctl DELETE /_stats >/dev/null
fault '{"kind":"range","action":"cut","count":3,"skip":1}'
fault '{"kind":"range","action":"short","count":2,"skip":4}'
fault '{"kind":"range","action":"stall","after":70000,"delay":6,"count":1,"skip":3}'
fault '{"kind":"range","action":"status","status":503,"retry_after":1,"count":2,"skip":2}'
rc=0
sum=$(encfs-fetch -j 4 --allow-http --timeout 2 --deadline 20 "$ep/pub/dense" 2>"$T/err" | sha256sum | cut -d' ' -f1) || rc=$?
is "$rc:$sum" "0:$want" "stdout exact after cuts, short bodies, a stall and 503s"
is "$(stat_of faults)" 8 "the proxy injected all eight"

proxy_ctl DELETE /_fault >/dev/null
fault '{"kind":"range","action":"cut","count":2}'
fault '{"kind":"pagelist","action":"reset","count":1}'
fetch "$ep/pub/sparse"
is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$(sha256 "$T/sparse")" "sparse page blob exact after faults"

# a page list served in pages with NextMarker continuations (as Blob Storage does for long lists;
# Azurite does not), one continuation reset on the way
proxy_reset
fault '{"kind":"pagelist","action":"reset","count":1,"skip":1}'
fault '{"kind":"pagelist","action":"paginate","page":1,"count":-1}'
fetch "$ep/pub/sparse"
is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$(sha256 "$T/sparse")" "sparse page blob exact from a page list in three pages"
is "$(stat_of by_kind.pagelist.requests)" 4 "three page list requests and the retried one"
proxy_ctl DELETE /_stats >/dev/null
rc=0
sum=$(encfs-fetch --allow-http "$ep/pub/sparse" 2>"$T/err" | sha256sum | cut -d' ' -f1) || rc=$?
is "$rc:$sum" "0:$(sha256 "$T/sparse")" "stdout exact from a paged page list"
is "$(stat_of by_kind.pagelist.requests)" 3 "three page list requests"

# ranges start while the rest of the page list is still coming: the third page is held 3 s
proxy_reset
fault '{"kind":"pagelist","action":"paginate","page":1,"delay_page":2,"delay":3,"count":-1}'
rm -f "$T/got"
encfs-fetch --allow-http -o "$T/got" "$ep/pub/sparse" 2>"$T/err" &
pid=$!
await_delay
sleep 1
is "$(stat_of by_kind.range.requests)" 2 "the ranges of the first two pages are fetched while the third page is awaited"
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
is "$rc:$(cat "$T/d/img")" "5:old" "--force and a failed download: the old file is untouched"
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
			is "$rc:$(cat "$T/d/img")" "8:old" "SIG$sig with --force: exit 8, the old file is untouched"
			is "$(ls -A "$T/d")" img "  and no temporary file is left"
		else
			is "$rc:$(ls -A "$T/d")" "8:" "SIG$sig: exit 8, no output file left"
		fi
		like "$(cat "$T/err")" "interrupted by a signal" "  the error says why"
	done
done

# to standard output there is nothing to clean up: SIGTERM ends the tool at once, even while it
# waits for a reader that does not read
proxy_ctl DELETE /_fault >/dev/null
mkfifo "$T/fifo"
"$PYTHON" -c "import time; time.sleep(20)" <"$T/fifo" &
reader=$!
encfs-fetch --allow-http "$ep/pub/dense" >"$T/fifo" 2>"$T/err" &
pid=$!
sleep 2
kill -s TERM $pid
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 30 ]; do
	sleep 0.1
	i=$((i + 1))
done
ok "$(kill -0 $pid 2>/dev/null && echo 1 || echo 0)" "stdout: SIGTERM ends the tool while its reader stalls"
kill $pid $reader 2>/dev/null
wait $pid 2>/dev/null
wait $reader 2>/dev/null

# a reader that pauses longer than --timeout is not a stalled download: here the second range is
# held 4 s at the proxy while the reader sleeps 3 s; what counts is 1 s of waiting, not 4
proxy_ctl DELETE /_fault >/dev/null
fault '{"kind":"range","action":"delay","delay":4,"count":1,"skip":1}'
rc=0
sum=$(encfs-fetch -v --allow-http --timeout 2 "$ep/pub/dense" 2>"$T/err" | { sleep 3; sha256sum; } | cut -d' ' -f1) || rc=$?
is "$rc:$sum" "0:$want" "stdout: a reader pausing past --timeout still gets the exact bytes"
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
proxy_ctl DELETE /_fault >/dev/null
fault '{"kind":"head","action":"header","set":{"ETag":"\"0x8D\u001b[2J\""}}'
fetch "$ep/pub/sparse"
is "$rc" 4 "an ETag with control characters is refused (exit 4)"
like "$err" "no usable ETag" "  the error says so"

done_testing
