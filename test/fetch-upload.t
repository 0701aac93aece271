#!/bin/sh
# encfs-fetch --upload against Azurite: exact bytes after a round trip (upload, download, cmp) for
# sparse images with data at odd places, sizes that are not a multiple of 512, an empty image and
# images whose written blocks are zeros; the blob's page list is exactly the image's non-zero pages
# (read back through the Azure SDK) and only those bytes are sent (counted at a proxy); Put Page
# faults (503 with Retry-After, resets, uploads cut mid-body, answers lost, stalls) and lost answers
# to Put Blob and Lease Blob are survived; an existing blob is refused without --force and replaced
# (old pages gone; a block blob too) with it; a blob leased by someone else is refused, and so are
# our writes once another writer took the lease mid-upload; the lease is released after success,
# failure and SIGTERM; an image written during its upload is an error; a write acknowledged but
# never done is caught by the page list check; SAS (write) and bearer (HTTPS, OAuth) both; no SAS
# signature in any message.
# shellcheck disable=SC1091,SC2154 # lib.sh gives out, err, rc, port
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"

blob_env_ready || skip_all "Azurite or the Azure SDK missing (run make deps)"
command -v encfs-fetch >/dev/null || bail "encfs-fetch not built"

azurite_start az http
proxy_start "http://127.0.0.1:$az_port"
pep=http://127.0.0.1:$proxy_port/$AZ_ACCOUNT
blobjs container "$az_ep" img || bail "cannot create the container"
KiB=1024
MiB=1048576

# image FILE SIZE SPEC...: a sparse file of SIZE bytes; SPEC is OFFSET:LENGTH (random bytes there)
# or OFFSET:LENGTH:z (zeros written there: data blocks that hold zeros)
image() {
	"$PYTHON" - "$@" <<'EOF'
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.truncate(size)
    for spec in sys.argv[3:]:
        p = spec.split(":")
        off, n = int(p[0]), int(p[1])
        f.seek(off)
        f.write(bytes(n) if len(p) > 2 else os.urandom(n))
EOF
}

# pages FILE: the ranges of 512-byte pages of FILE (the last one padded with zeros) that are not
# all zeros, merged, "START-END" a line: what the blob's page list must be
pages() {
	"$PYTHON" - "$1" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
data += bytes(-len(data) % 512)
out, run = [], None
for p in range(0, len(data), 512):
    if data[p:p + 512].count(0) != 512:
        if run and run[1] + 1 == p:
            run[1] = p + 511
        else:
            run = [p, p + 511]
            out.append(run)
print("".join("%d-%d\n" % tuple(r) for r in out), end="")
EOF
}

# page_bytes FILE: how many bytes those pages hold
page_bytes() {
	pages "$1" | "$PYTHON" -c 'import sys
print(sum(int(b) - int(a) + 1 for a, b in (l.split("-") for l in sys.stdin)))'
}

# blob_pages ENDPOINT BLOB: the blob's page list through the SDK, adjacent ranges merged
blob_pages() {
	blobjs pagelist "$1" img "$2" | "$PYTHON" -c 'import sys
out = []
for l in sys.stdin:
    a, b = (int(x) for x in l.split("-"))
    if out and out[-1][1] + 1 == a:
        out[-1][1] = b
    else:
        out.append([a, b])
print("".join("%d-%d\n" % tuple(r) for r in out), end="")' || echo "pagelist failed"
}

# padded FILE: FILE with zeros up to a multiple of 512 (what the blob must hold), as FILE.padded
padded() {
	cp "$1" "$1.padded"
	_s=$(stat -c %s "$1")
	truncate -s $(((_s + 511) / 512 * 512)) "$1.padded"
}

# upload IMAGE BLOB ARGS...: encfs-fetch --upload through the proxy with a write SAS URL on
# standard input; the tool's own status in $rc, its stderr in $err
upload() {
	_img=$1 _blob=$2
	shift 2
	_sas=$(blobjs sas-write "$pep" img "$_blob") || bail "no SAS"
	rc=0
	printf '%s\n' "$_sas" | encfs-fetch --allow-http --timeout 2 --deadline 30 --upload "$_img" "$@" - \
		2>"$T/err" || rc=$?
	err=$(cat "$T/err")
}

# roundtrip LABEL IMAGE BLOB: the blob downloaded equals IMAGE padded, its page list is IMAGE's
# pages
roundtrip() {
	padded "$2"
	rm -f "$T/got"
	_sas=$(blobjs sas "$az_ep" img "$3")
	rc=0
	printf '%s\n' "$_sas" | encfs-fetch --allow-http -o "$T/got" - 2>"$T/dl.err" || rc=$?
	is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$(sha256 "$2.padded")" "$1: the blob downloaded is the image (padded to 512)"
	is "$(blob_pages "$az_ep" "$3")" "$(pages "$2")" "$1: the page list is exactly the image's non-zero pages"
}

# stat_of PATH: a counter of the proxy (0 when it has not counted that kind yet)
stat_of() { json_get "$(proxy_ctl GET /_stats)" "$1" 2>/dev/null || echo 0; }
fault() { proxy_ctl POST /_fault "$1" >/dev/null || bail "cannot set fault $1"; }
lease_state() { json_get "$(blobjs props "$az_ep" img "$1")" leaseState; }
# await_delay: until the proxy holds a request delayed since the last proxy_reset (at most 20 s;
# pending_delays would count a delay still held from an earlier case)
await_delay() {
	_i=0
	while [ "$(stat_of delays_started)" -eq 0 ]; do
		[ $_i -lt 200 ] || bail "the proxy never delayed a request (fault not reached)"
		sleep 0.1
		_i=$((_i + 1))
	done
}

# --- round trips -------------------------------------------------------------------------------
# data at odd places: one byte at 0, a run across page edges, 5 MiB across the 4 MiB mark (two
# Put Page calls at least), zeros written in the middle of data, a lone page, the last 300 bytes
image "$T/odd" $((24 * MiB + 1000)) 0:1 700:3000 $((4 * MiB - 100)):$((5 * MiB)) \
	$((6 * MiB)):$((64 * KiB)):z $((12 * MiB + 512)):512 $((24 * MiB + 700)):300
proxy_reset
upload "$T/odd" odd -v
is "$rc" 0 "sparse image with data at odd places: uploaded"
[ "$rc" -eq 0 ] || diag "$err"
roundtrip "odd places" "$T/odd" odd
is "$(stat_of by_kind.page.sent_bytes)" "$(page_bytes "$T/odd")" "only the non-zero pages were sent ($(page_bytes "$T/odd") bytes)"
ok "$([ "$(stat_of by_kind.page.max_sent)" -le $((4 * MiB)) ] && echo 0 || echo 1)" "no Put Page larger than 4 MiB"
is "$(json_get "$(blobjs props  "$az_ep" img odd)" size)" $((24 * MiB + 1024)) "the blob's size is the image's rounded up to 512"
is "$(lease_state odd)" available "the lease is released at the end"
like "$err" "zero pages skipped" "-v: the summary names the zero pages skipped"

random_file "$T/small" 1000
upload "$T/small" small
is "$rc" 0 "a 1000-byte image: uploaded"
roundtrip "1000 bytes" "$T/small" small

: >"$T/empty"
upload "$T/empty" empty
is "$rc" 0 "an empty image: uploaded"
roundtrip "empty" "$T/empty" empty
is "$(json_get "$(blobjs props  "$az_ep" img empty)" size)" 0 "the empty image's blob has size 0"

# every block written, all zeros but two pages: the zero pages are not sent
head -c $((8 * MiB)) /dev/zero >"$T/zeros"
printf 'first' | dd of="$T/zeros" bs=1 seek=$((3 * MiB + 17)) conv=notrunc 2>/dev/null
printf 'last' | dd of="$T/zeros" bs=1 seek=$((8 * MiB - 4)) conv=notrunc 2>/dev/null
proxy_reset
upload "$T/zeros" zeros
is "$rc" 0 "a dense image of zeros with two pages of data: uploaded"
roundtrip "zero blocks" "$T/zeros" zeros
is "$(stat_of by_kind.page.sent_bytes):$(stat_of by_kind.page.requests)" "1024:2" "  two pages sent in two Put Page calls, no zero page"
head -c $((MiB)) /dev/zero >"$T/allzero"
proxy_reset
upload "$T/allzero" allzero
is "$rc" 0 "an image that is all zeros: uploaded"
roundtrip "all zeros" "$T/allzero" allzero
is "$(stat_of by_kind.page.requests)" 0 "  no Put Page at all"

# -j 1 and a data run longer than 4 MiB: split, in order
image "$T/long" $((12 * MiB)) $((MiB)):$((9 * MiB))
proxy_reset
upload "$T/long" long -j 1
is "$rc" 0 "-j 1, one 9 MiB run: uploaded"
roundtrip "-j 1" "$T/long" long
is "$(stat_of by_kind.page.requests)" 3 "  in three Put Page calls of at most 4 MiB"

# --- faults -------------------------------------------------------------------------------------
image "$T/f" $((16 * MiB + 512)) 0:$((6 * MiB)) $((9 * MiB)):$((2 * MiB)) $((16 * MiB)):512
n=0
for f in \
	'{"kind":"page","action":"status","status":503,"retry_after":1,"count":2}' \
	'{"kind":"page","action":"status","status":500,"count":1}' \
	'{"kind":"page","action":"reset","count":2}' \
	'{"kind":"page","action":"cut_request","count":2}' \
	'{"kind":"page","action":"drop","count":2}' \
	'{"kind":"page","action":"delay","delay":4,"count":1}' \
	'{"kind":"create","action":"drop","count":1}' \
	'{"kind":"create","action":"status","status":503,"count":1}' \
	'{"kind":"lease","action":"drop","count":1}' \
	'{"kind":"lease","action":"reset","count":1}' \
	'{"kind":"pagelist","action":"reset","count":1}' \
	'{"kind":"head","action":"status","status":503,"count":1}'; do
	n=$((n + 1))
	proxy_reset
	fault "$f"
	upload "$T/f" "fault$n" -v
	is "$rc" 0 "uploaded despite $f"
	[ "$rc" -eq 0 ] || diag "$err"
	is "$(stat_of faults)" "$(json_get "$f" count)" "  the proxy injected it"
	case $f in
	# a request on a kept-alive connection that dies without an answer is sent again by libcurl
	# itself: no retry of ours to log
	*lease* | *pagelist*) ;;
	*) like "$err" "; retrying until " "  the retry is logged: the first as a warning, with host:port and until when" ;;
	esac
	roundtrip "after $f" "$T/f" "fault$n"
	is "$(lease_state "fault$n")" available "  the lease is released"
done
proxy_reset
fault '{"kind":"page","action":"status","status":503,"retry_after":1,"count":1,"skip":1}'
fault '{"kind":"page","action":"cut_request","after":100000,"count":1,"skip":2}'
fault '{"kind":"page","action":"reset","count":1,"skip":3}'
upload "$T/f" faults -j 3
is "$rc:$(stat_of faults)" "0:3" "-j 3: three different faults among parallel Put Page calls, all survived"
roundtrip "-j 3 with faults" "$T/f" faults
ok "$([ "$(stat_of by_kind.page.sent_bytes)" -gt "$(page_bytes "$T/f")" ] && echo 0 || echo 1)" "  the retried pages were sent again (the proxy counted more than the data)"

# a 503 that never ends: gives up at --deadline, says the blob is incomplete, releases the lease
proxy_reset
fault '{"kind":"page","action":"status","status":503,"count":-1}'
rc=0
printf '%s\n' "$(blobjs sas-write "$pep" img giveup)" | encfs-fetch --allow-http --deadline 2 --upload "$T/f" - 2>"$T/err" || rc=$?
err=$(cat "$T/err")
is "$rc" 4 "a 503 that persists past --deadline is exit 4"
like "$err" "gave up after" "  the error says it gave up"
like "$err" "the blob is incomplete (upload again with --force)" "  and that the blob is incomplete"
is "$(printf '%s\n' "$err" | grep -c -v ': warning: ')" 1 "  in one line (after the first retry's warning)"
like "$err" "encfs-fetch: warning: Put Page of bytes " "  the first retry was a warning"
is "$(lease_state giveup)" available "  the lease is released"

# an error answer to Put Page whose body never ends: given up at once (not read until --deadline
# or for ever: bytes keep moving, so the stall check never fires), the lease released
proxy_reset
fault '{"kind":"page","action":"flood","status":500,"count":-1}'
rc=0
printf '%s\n' "$(blobjs sas-write "$pep" img flood)" | within 60 encfs-fetch --allow-http --deadline 20 --upload "$T/f" - 2>"$T/err" || rc=$?
err=$(cat "$T/err")
is "$rc" 4 "an endless error body to Put Page is exit 4"
like "$err" "HTTP 500 ServerBusy with an error body longer than 64 KiB (check the endpoint); the blob is incomplete" "  the error names it"
ok "$([ "$(stat_of by_kind.page.body_bytes)" -lt $((32 * MiB)) ] && echo 0 || echo 1)" "  little of it was read ($(stat_of by_kind.page.body_bytes) bytes)"
is "$(lease_state flood)" available "  the lease is released"

# a Put Page acknowledged but never done: the page list check catches it
proxy_reset
fault '{"kind":"page","action":"status","status":201,"headers":{"ETag":"\"0x8DCFAKE\""},"count":1,"skip":1}'
upload "$T/f" lost -j 1
is "$rc" 8 "a write acknowledged but not done is exit 8"
like "$err" "checking the page list: it differs from what was sent from byte $((4 * MiB)) on (sent: bytes 0-$((6 * MiB - 1)); the blob lists: bytes 0-$((4 * MiB - 1)))" \
	"  the error names the first byte and the ranges that differ"
like "$err" "the blob is incomplete" "  and says the blob is incomplete"
is "$(lease_state lost)" available "  the lease is released"

# 403 on a page: denied at once, not retried
proxy_reset
fault '{"kind":"page","action":"status","status":403,"count":-1}'
upload "$T/f" denied -j 2 -v
is "$rc" 5 "403 on Put Page is exit 5"
like "$err" "HTTP 403 AuthorizationFailure (check the SAS token: read, create and write permissions" "  the error says what to check"
unlike "$err" "retrying" "  not retried"
ok "$([ "$(stat_of by_kind.page.requests)" -le 2 ] && echo 0 || echo 1)" "  no retry storm (at most the -j 2 calls in flight)"
is "$(lease_state denied)" available "  the lease is released"

# --- existing blobs, --force, leases ----------------------------------------------------------------
proxy_reset
before=$(blobjs props  "$az_ep" img odd)
image "$T/other" $((2 * MiB)) $((MiB)):4096
upload "$T/other" odd
is "$rc:$err" "2:encfs-fetch: uploading http://127.0.0.1:$proxy_port/$AZ_ACCOUNT/img/odd?<query hidden>: the blob exists (use --force to replace it)" \
	"a second upload without --force: exit 2, one line"
is "$(blobjs props  "$az_ep" img odd)" "$before" "  the blob is unchanged (same ETag, size, lease state)"
roundtrip "  still" "$T/odd" odd
upload "$T/other" odd --force
is "$rc" 0 "--force replaces it"
roundtrip "--force" "$T/other" odd
is "$(json_get "$(blobjs props  "$az_ep" img odd)" size)" $((2 * MiB)) "  with the new size; no old page survives"
is "$(lease_state odd)" available "  the lease is released"

id=$(blobjs lease  "$az_ep" img odd acquire 60) || bail "cannot lease"
before=$(blobjs props  "$az_ep" img odd)
upload "$T/f" odd --force
is "$rc" 8 "a blob leased by someone else is refused with --force (exit 8)"
like "$err" "the blob is leased by another writer (lease leased, fixed)" "  the message names the lease"
is "$(printf '%s\n' "$err" | wc -l)" 1 "  in one line"
upload "$T/f" odd
is "$rc" 2 "  and without --force: it exists (exit 2)"
is "$(blobjs props  "$az_ep" img odd)" "$before" "  the blob is unchanged, still leased"
blobjs lease  "$az_ep" img odd release "$id" || bail "cannot release"

# SIGTERM mid-upload: stops, releases the lease, says the blob is incomplete
proxy_reset
fault '{"kind":"page","action":"delay","delay":6,"count":1,"skip":1}'
printf '%s\n' "$(blobjs sas-write "$pep" img sig)" | encfs-fetch --allow-http -j 1 --upload "$T/f" - 2>"$T/err" &
pid=$!
await_delay
kill -s TERM $pid
rc=0
wait $pid || rc=$?
err=$(cat "$T/err")
is "$rc" 8 "SIGTERM mid-upload: exit 8"
like "$err" "interrupted by a signal" "  the error says why"
like "$err" "the blob is incomplete" "  and that the blob is incomplete"
is "$(lease_state sig)" available "  the lease is released"

# another writer breaks our lease and takes the blob mid-upload: our next page is refused
proxy_reset
fault '{"kind":"page","action":"delay","delay":3,"count":1,"skip":1}'
printf '%s\n' "$(blobjs sas-write "$pep" img taken)" | encfs-fetch --allow-http -j 1 --upload "$T/f" - 2>"$T/err" &
pid=$!
await_delay
blobjs lease "$az_ep" img taken break || bail "cannot break the lease"
id=$(blobjs lease "$az_ep" img taken acquire 60) || bail "cannot take the lease"
rc=0
wait $pid || rc=$?
err=$(cat "$T/err")
is "$rc" 8 "the lease taken by another writer mid-upload: exit 8"
like "$err" "our lease on the blob is lost" "  the error says our lease is lost"
is "$(printf '%s\n' "$err" | wc -l)" 1 "  in one line"
like "$err" "the blob is incomplete" "  and that the blob is incomplete"
is "$(lease_state taken)" leased "  the other writer's lease stays"
blobjs lease "$az_ep" img taken release "$id" || bail "cannot release"

# an existing block blob: refused, then replaced by a page blob with --force
random_file "$T/blk" $((MiB + 7))
blobjs put-block "$az_ep" img blk "$T/blk" || bail "cannot upload a block blob"
upload "$T/odd" blk
is "$rc" 2 "an existing block blob is refused without --force"
upload "$T/odd" blk --force
is "$rc" 0 "--force replaces a block blob"
is "$(json_get "$(blobjs props "$az_ep" img blk)" type)" PageBlob "  with a page blob"
roundtrip "block blob replaced" "$T/odd" blk

# the image changed while it was uploaded
proxy_reset
cp "$T/f" "$T/changing"
fault '{"kind":"page","action":"delay","delay":2,"count":1,"skip":1}'
printf '%s\n' "$(blobjs sas-write "$pep" img changing)" | encfs-fetch --allow-http -j 1 --upload "$T/changing" - 2>"$T/err" &
pid=$!
await_delay
printf 'x' | dd of="$T/changing" bs=1 seek=100 conv=notrunc 2>/dev/null
rc=0
wait $pid || rc=$?
is "$rc" 8 "an image written during its upload: exit 8"
like "$(cat "$T/err")" "changed during the upload" "  the error says so"

# --- credentials, redaction, usage ---------------------------------------------------------------------
sas=$(blobjs sas-write "$pep" img redact)
sig=$(printf '%s' "$sas" | sed 's/.*[?&]sig=\([^&]*\).*/\1/')
rc=0
printf '%s\n' "$sas" | encfs-fetch -v -v --allow-http --upload "$T/small" - 2>"$T/err" || rc=$?
is "$rc" 0 "upload with -v -v"
unlike "$(cat "$T/err")" "$sig" "  no SAS signature in the verbose log"
unlike "$(cat "$T/err")" "sig=" "  no sig= in the verbose log"
rc=0
printf '%s\n' "$(blobjs sas "$pep" img readonly)" | encfs-fetch --allow-http --upload "$T/small" - 2>"$T/err" || rc=$?
is "$rc" 5 "a read-only SAS is denied (exit 5)"
like "$(cat "$T/err")" "check the SAS token: read, create and write permissions" "  the error says what to check"
run encfs-fetch --allow-http --upload "$T/small" "$pep/img/nocreds"
is "$rc" 5 "no credentials: denied (exit 5)"
like "$err" "use --private (managed identity) or a SAS URL" "  the error says how to authenticate"
run encfs-fetch --allow-http --upload "$T/small" -o "$T/x" "$pep/img/x"
is "$rc" 2 "--upload with -o is a usage error"
run encfs-fetch --allow-http --upload "$T/nosuchfile" "$pep/img/x"
is "$rc" 3 "a missing image is exit 3"
run encfs-fetch --allow-http --upload "$T" "$pep/img/x"
is "$rc:$err" "3:encfs-fetch: reading $T: not a regular file (give the image file)" "a directory is refused (exit 3)"
run encfs-fetch --allow-http --upload "$T/small" "$pep/nosuchcontainer/x?sv=1&sig=SECRET"
is "$rc" 5 "a bad SAS: exit 5"
unlike "$err" "SECRET" "  the signature is not shown"

# --- HTTPS: bearer (OAuth) and SAS -----------------------------------------------------------------
azurite_start az-https https
https_ep=$az_ep
start_service imds "$PYTHON" "$ENCFS_SRC/test/fakes/imds.py" --client-id 11111111-2222-3333-4444-555555555555
ENCFS_IMDS_ENDPOINT=http://127.0.0.1:$port
export ENCFS_IMDS_ENDPOINT
CA=$T/ca/ca.pem
blobjs container "$https_ep" img || bail "cannot create the https container"
run encfs-fetch --private --cacert "$CA" --upload "$T/odd" "$https_ep/img/bearer"
is "$rc" 0 "bearer over HTTPS: uploaded"
[ "$rc" -eq 0 ] || diag "$err"
rm -f "$T/got"
run encfs-fetch --private --cacert "$CA" -o "$T/got" "$https_ep/img/bearer"
is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$(sha256 "$T/odd.padded")" "  the blob downloaded is the image"
is "$(blob_pages "$https_ep" bearer)" "$(pages "$T/odd")" "  the page list is the image's pages"
run encfs-fetch --client-id 11111111-2222-3333-4444-555555555555 --cacert "$CA" --force --upload "$T/f" "$https_ep/img/bearer"
is "$rc" 0 "user-assigned identity, --force over HTTPS: uploaded"
is "$(blob_pages "$https_ep" bearer)" "$(pages "$T/f")" "  the page list is the new image's pages"
rc=0
printf '%s\n' "$(blobjs sas-write "$https_ep" img sas)" | encfs-fetch --cacert "$CA" --upload "$T/odd" - 2>"$T/err" || rc=$?
is "$rc" 0 "write SAS over HTTPS: uploaded"
is "$(blob_pages "$https_ep" sas)" "$(pages "$T/odd")" "  the page list is the image's pages"
run encfs-fetch --private --allow-http --upload "$T/odd" "$pep/img/x"
is "$rc" 2 "--private over http:// is refused"
run encfs-fetch --upload "$T/odd" "$https_ep/img/untrusted"
is "$rc" 4 "an untrusted CA is exit 4"
like "$err" "certificate" "  the error names the certificate problem"

done_testing
