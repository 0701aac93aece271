#!/bin/sh
# encfs-fetch on a sparse 1 GiB page blob with 64 MiB written in 256 ranges (one straddling the
# 512 MiB page list segment boundary): the bytes are exact, only about 64 MiB cross the network
# (counted at a proxy), and the output file allocates about 64 MiB.
# shellcheck disable=SC1091,SC2154 # lib.sh gives out, err, rc, port
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"

blob_env_ready || skip_all "Azurite or the Azure SDK missing (run make deps)"
command -v encfs-fetch >/dev/null || bail "encfs-fetch not built"

azurite_start az http
proxy_start "http://127.0.0.1:$az_port"
ep=http://127.0.0.1:$proxy_port/$AZ_ACCOUNT
KiB=1024
MiB=1048576
GiB=1073741824

# 256 KiB at a varying place in each 4 MiB stride; stride 127 is replaced by a range across the
# 512 MiB boundary
set --
i=0
while [ $i -lt 256 ]; do
	if [ $i -eq 127 ]; then
		set -- "$@" $((512 * MiB - 128 * KiB)):$((256 * KiB))
	else
		set -- "$@" $((i * 4 * MiB + (i * 7 % 15) * 256 * KiB)):$((256 * KiB))
	fi
	i=$((i + 1))
done
sparse_file "$T/sparse" $GiB "$@"
want=$(sha256 "$T/sparse")
blobjs container "$az_ep" pub public || bail "cannot create the container"
puts=$(blobjs put-page "$az_ep" pub sparse "$T/sparse") || bail "cannot upload"
diag "uploaded in $puts Put Page calls"

proxy_ctl DELETE /_stats >/dev/null
run encfs-fetch --allow-http -o "$T/got" "$ep/pub/sparse"
is "$rc:$(sha256 "$T/got")" "0:$want" "-o: the 1 GiB sparse blob is exact"
stats=$(proxy_ctl GET /_stats)
ranged=$(json_get "$stats" by_kind.range.body_bytes)
is "$ranged" $((64 * MiB)) "-o: blob bytes transferred are the 64 MiB of data, not 1 GiB"
is "$(json_get "$stats" by_kind.pagelist.requests)" 2 "the page list was asked in two 512 MiB segments"
diag "transferred: $ranged blob bytes in $(json_get "$stats" by_kind.range.requests) ranged GETs, $(json_get "$stats" by_kind.pagelist.body_bytes) bytes of page list"
alloc=$(($(stat -c '%b * %B' "$T/got")))
ok "$([ "$alloc" -ge $((64 * MiB)) ] && [ "$alloc" -le $((68 * MiB)) ] && echo 0 || echo 1)" "-o: the file allocates about 64 MiB ($alloc bytes)"
is "$(stat -c %s "$T/got")" $GiB "-o: the file is 1 GiB long"
rm -f "$T/got"

proxy_ctl DELETE /_stats >/dev/null
sum=$(stage fetch encfs-fetch --allow-http "$ep/pub/sparse" 2>"$T/err" | sha256sum | cut -d' ' -f1)
is "$(stage_rc fetch):$sum" "0:$want" "stdout: the 1 GiB stream (holes as zeros) is exact"
is "$(json_get "$(proxy_ctl GET /_stats)" by_kind.range.body_bytes)" $((64 * MiB)) "stdout: 64 MiB transferred"

# memory stays bounded (man page: under 60 MiB into a file, under 120 MiB to stdout with -j 8),
# far below the blob's 1 GiB
if grep -q __asan_init "$(command -v encfs-fetch)"; then
	skip "built with AddressSanitizer: its shadow memory says nothing about ours"
	skip "built with AddressSanitizer"
elif [ -x /usr/bin/time ]; then
	# GNU time exits with the tool's status
	run /usr/bin/time -f %M -o "$T/rss" encfs-fetch --allow-http -o "$T/got" "$ep/pub/sparse"
	rss=$(tail -n 1 "$T/rss")
	ok "$([ "$rc" -eq 0 ] && [ "$rss" -lt $((64 * 1024)) ] && echo 0 || echo 1)" "-o: exit $rc, peak memory ${rss} KiB, under 64 MiB"
	rm -f "$T/got"
	rc=0
	/usr/bin/time -f %M -o "$T/rss" encfs-fetch --allow-http "$ep/pub/sparse" 2>"$T/err" >/dev/null || rc=$?
	rss=$(tail -n 1 "$T/rss")
	ok "$([ "$rc" -eq 0 ] && [ "$rss" -lt $((128 * 1024)) ] && echo 0 || echo 1)" "stdout: exit $rc, peak memory ${rss} KiB, under 128 MiB"
else
	skip "GNU time missing (package time, test/deps.apt)"
	skip "GNU time missing (package time, test/deps.apt)"
fi

done_testing
