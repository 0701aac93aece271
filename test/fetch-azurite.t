#!/bin/sh
# encfs-fetch against Azurite over HTTP and HTTPS (--oauth basic): content equality (SHA-256) for
# dense, sparse, odd-sized, empty page blobs and a block blob, into a file and to stdout, public,
# SAS and bearer; the file's mode, --force, errors, and SAS tokens kept out of every message.
# shellcheck disable=SC1091,SC2154 # lib.sh gives out, err, rc, port
. "$ENCFS_SRC/test/lib.sh"
. "$ENCFS_SRC/test/fakes/blobenv.sh"

blob_env_ready || skip_all "Azurite or the Azure SDK missing (run make deps)"
command -v encfs-fetch >/dev/null || bail "encfs-fetch not built"

azurite_start az-http http
http_ep=$az_ep
azurite_start az-https https
https_ep=$az_ep
start_service imds "$PYTHON" "$ENCFS_SRC/test/fakes/imds.py" --client-id 11111111-2222-3333-4444-555555555555
ENCFS_IMDS_ENDPOINT=http://127.0.0.1:$port
export ENCFS_IMDS_ENDPOINT
CA=$T/ca/ca.pem

# the blobs: local reference files, uploaded to both endpoints, public and private containers
MiB=1048576
random_file "$T/dense" $((40 * MiB + 1536))   # not a multiple of any range size
sparse_file "$T/sparse" $((24 * MiB)) 0:512 4096:8192 $((3 * MiB)):$((5 * MiB)) \
	$((12 * MiB - 512)):1024 $((24 * MiB - 512)):512
: >"$T/empty"
random_file "$T/block" $((5 * MiB + 123))
for ep in "$http_ep" "$https_ep"; do
	for c in pub priv; do
		access=private
		[ $c = pub ] && access=public
		blobjs container "$ep" $c $access || bail "cannot create container $c at $ep"
		for b in dense sparse empty; do
			blobjs put-page "$ep" $c $b "$T/$b" >/dev/null || bail "cannot upload $b"
		done
		blobjs put-block "$ep" $c block "$T/block" || bail "cannot upload block"
	done
done

# check LABEL BLOB ARGS...: downloads with -o and to stdout, compares with the reference
check() {
	_label=$1 _blob=$2
	shift 2
	rm -f "$T/got"
	run encfs-fetch "$@" -o "$T/got"
	if [ "$rc" -ne 0 ]; then
		diag "$err"
	fi
	is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$(sha256 "$T/$_blob")" "$_label $_blob: -o FILE has the blob's bytes"
	rm -f "$T/stdout"
	run_to "$T/stdout" encfs-fetch "$@"
	is "$rc:$(stat -c %s "$T/stdout"):$(sha256 "$T/stdout")" "0:$(stat -c %s "$T/$_blob"):$(sha256 "$T/$_blob")" \
		"$_label $_blob: stdout has the blob's bytes (exit 0, size, SHA-256)"
}

for b in dense sparse empty block; do
	check "http public" $b --allow-http "$http_ep/pub/$b"
	check "http SAS" $b --allow-http "$(blobjs sas "$http_ep" priv $b)"
	check "https public" $b --cacert "$CA" "$https_ep/pub/$b"
	check "https SAS" $b --cacert "$CA" "$(blobjs sas "$https_ep" priv $b)"
	check "https bearer" $b --private --cacert "$CA" "$https_ep/priv/$b"
done
check "https bearer, user-assigned identity" sparse --client-id 11111111-2222-3333-4444-555555555555 \
	--cacert "$CA" "$https_ep/priv/sparse"
check "https bearer, upper-case scheme" sparse --private --cacert "$CA" "HTTPS${https_ep#https}/priv/sparse"
ENCFS_CA_BUNDLE=$CA
export ENCFS_CA_BUNDLE
check "https SAS, ENCFS_CA_BUNDLE, -j 1" dense -j 1 "$(blobjs sas "$https_ep" priv dense)"
unset ENCFS_CA_BUNDLE

# holes stay holes, the file is private
rm -f "$T/got"
run encfs-fetch --allow-http -o "$T/got" "$http_ep/pub/sparse"
is "$(stat -c %a "$T/got")" 600 "the output file is created mode 0600"
alloc=$(($(stat -c '%b * %B' "$T/got")))
ok "$([ "$alloc" -le $((6 * MiB)) ] && echo 0 || echo 1)" "sparse blob: the file allocates its data, not its size ($alloc bytes)"
is "$(stat -c %s "$T/got")" $((24 * MiB)) "sparse blob: the file has the blob's size"

# progress on stderr only when it is a terminal
rm -f "$T/got"
run encfs-fetch --allow-http -o "$T/got" "$http_ep/pub/dense"
is "$rc:$err" "0:" "nothing on stderr when it is not a terminal"
rm -f "$T/got"
if command -v script >/dev/null; then
	script -qec "encfs-fetch --allow-http -o '$T/got' '$http_ep/pub/dense'" "$T/typescript" >/dev/null 2>&1
	like "$(tr '\r' '\n' <"$T/typescript")" "100.0% of 40.0 MiB, 40.0 MiB fetched" "a progress line when stderr is a terminal"
	like "$(tr '\r' '\n' <"$T/typescript")" "MiB/s, ETA " "with the rate and ETA"
else
	skip "script(1) missing"
	skip "script(1) missing"
fi

# an existing file is refused, then replaced with --force
echo keep >"$T/exists"
run encfs-fetch --allow-http -o "$T/exists" "$http_ep/pub/dense"
is "$rc" 2 "an existing output file is refused (exit 2)"
like "$err" "exists (use --force" "the error says to use --force"
is "$(cat "$T/exists")" keep "the existing file is untouched"
chmod 644 "$T/exists"
run encfs-fetch --allow-http --force -o "$T/exists" "$http_ep/pub/dense"
is "$rc:$(sha256 "$T/exists")" "0:$(sha256 "$T/dense")" "--force replaces it with the blob"
is "$(stat -c %a "$T/exists")" 600 "the replaced file is mode 0600"

# block blobs are read, with a note about read-write
run encfs-fetch --allow-http -o "$T/blk" "$http_ep/pub/block"
like "$err" "BlockBlob: downloading all of it; read-write use needs a page blob" "a block blob is read, and the note says read-write needs a page blob"

# errors: one line, documented exit codes, no SAS token anywhere
sas=$(blobjs sas "$http_ep" priv dense)
sig=$(printf '%s' "$sas" | sed 's/.*[?&]sig=\([^&]*\).*/\1/')
run encfs-fetch -v -v --allow-http "$sas" -o "$T/sas-ok"
is "$rc" 0 "SAS download with -v -v succeeds"
unlike "$err" "sig=" "no sig= in the verbose log"
unlike "$err" "$sig" "no SAS signature in the verbose log"
like "$err" "?<query hidden>" "the log shows the URL with its query hidden"
wrong=$(printf '%s' "$sas" | sed 's|/dense?|/nosuchblob?|')
run encfs-fetch --allow-http "$wrong" -o "$T/nope"
is "$rc" 5 "a SAS for another blob is denied (exit 5)"
unlike "$err" "$sig" "the error does not show the SAS signature"
like "$err" "check the SAS token" "the error says what to check"
ok "$([ ! -e "$T/nope" ] && echo 0 || echo 1)" "no output file after a failure"
is "$(printf '%s\n' "$err" | wc -l)" 1 "the error is one line"

# URL "-": the URL on standard input (how encfs.sh hands over a SAS URL, out of every argv)
rm -f "$T/got"
rc=0
printf '%s\n' "$sas" | encfs-fetch --allow-http -o "$T/got" - 2>"$T/err" || rc=$?
is "$rc:$(sha256 "$T/got" 2>/dev/null)" "0:$(sha256 "$T/dense")" "a SAS URL on standard input (URL -): the blob's bytes"
_sum=$(printf '%s' "$sas" | stage fetch encfs-fetch --allow-http - 2>"$T/err" | sha256sum | cut -d' ' -f1)
is "$(stage_rc fetch):$_sum" "0:$(sha256 "$T/dense")" "... to standard output too (no final newline needed)"
rc=0
out=$(printf '' | encfs-fetch --allow-http -o "$T/nope" - 2>&1) || rc=$?
is "$rc:$out" "3:encfs-fetch: reading the URL from standard input: nothing on standard input: did the previous step fail? (pipe the blob URL in, on one line)" \
	"URL - with nothing on standard input: exit 3, naming the likely cause"
rc=0
out=$(printf '%s\n%s\n' "$sas" "$sas" | encfs-fetch --allow-http -o "$T/nope" - 2>&1) || rc=$?
is "$rc" 2 "URL - with two lines: usage error"
unlike "$out" "$sig" "  the error does not show the SAS signature"
ok "$([ ! -e "$T/nope" ] && echo 0 || echo 1)" "  no output file"

# transport failures: curl's own words must not carry the query string either
run encfs-fetch -v -v --allow-http --deadline 1 "http://127.0.0.1:1/$AZ_ACCOUNT/priv/dense?${sas#*\?}" -o "$T/nope"
is "$rc" 4 "a SAS URL whose endpoint is down is exit 4"
unlike "$err" "$sig" "  no SAS signature in any message"
unlike "$err" "sig=" "  no sig= in any message"
run encfs-fetch -v -v --allow-http "$(printf '%s' "$sas" | sed 's|^http://127.0.0.1:[0-9]*/|http://127.0.0.1:99999/|')" -o "$T/nope"
is "$rc" 2 "a SAS URL with a bad port is a usage error"
unlike "$err" "$sig" "  the error does not show the SAS signature"

run encfs-fetch --allow-http "$http_ep/priv/dense" -o "$T/nope"
is "$rc" 5 "a private blob without credentials is denied (exit 5)"
like "$err" "use --private (managed identity) or a SAS URL" "the error says how to authenticate"
run encfs-fetch --allow-http "$http_ep/pub/nosuchblob" -o "$T/nope"
is "$rc" 3 "a missing blob is exit 3"
like "$err" "HTTP 404" "the error shows the 404"
run encfs-fetch "$http_ep/pub/dense" -o "$T/nope"
is "$rc" 2 "http:// without --allow-http is a usage error"
like "$err" "is plain http (https is required; http is a test switch)" "the error says why"
run encfs-fetch --private --allow-http "$http_ep/priv/dense" -o "$T/nope"
is "$rc" 2 "--private over http:// is refused (a bearer token needs https)"
run encfs-fetch --private --cacert "$CA" "$(blobjs sas "$https_ep" priv dense)" -o "$T/nope"
is "$rc" 2 "--private with a SAS URL is a usage error"
run encfs-fetch "$https_ep/pub/dense" -o "$T/nope"
is "$rc" 4 "an https endpoint whose CA is not trusted is a network error (exit 4)"
like "$err" "certificate" "the error names the certificate problem"
ok "$([ ! -e "$T/nope" ] && echo 0 || echo 1)" "no output file after any of these failures"
run encfs-fetch -j 0 "$https_ep/pub/dense"
is "$rc" 2 "-j 0 is a usage error"
run encfs-fetch --help
is "$rc" 0 "--help exits 0"
like "$out" "--deadline SECONDS" "--help lists the options"

done_testing
