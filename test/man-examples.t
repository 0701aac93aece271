#!/bin/sh
# The man pages' EXAMPLES that run on any machine are run here, as written, and what they print is
# compared with what the page shows.  (The others need Azure, an SEV-SNP guest or root and
# device-mapper; the VM and end-to-end tests run those paths.)  A page's example block is a
# transcript: "$ command" lines (continued by a trailing \ or |, or by a here-document up to its
# EOF line), each followed by the lines it prints, standard error included.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err and rc
# (the test directory in memory, as TRYING IT LOCALLY asks: the examples' wrapping keys go there)
[ -d /dev/shm ] && [ -w /dev/shm ] && TMPDIR=/dev/shm && export TMPDIR
. "$ENCFS_SRC/test/lib.sh"

# block PAGE N [SECTION]: the Nth literal block (from 1) of PAGE's EXAMPLES section (or SECTION),
# mdoc escapes undone
block() {
	awk -v want="$2" -v sect=".Sh ${3:-EXAMPLES}" '
		/^\.Sh / { inex = ($0 == sect) }
		inex && /^\.Bd -literal/ { n++; on = (n == want); next }
		/^\.Ed/ { on = 0; next }
		on { gsub(/\\e/, "\\"); gsub(/\\-/, "-"); gsub(/\\&/, ""); print }
	' "$ENCFS_SRC/man/$1"
}

# transcript FILE: the transcript FILE into $T/cmds (a script) and $T/want (the output it shows)
transcript() {
	awk -v cmds="$T/cmds" -v want="$T/want" '
		heredoc != "" { print > cmds; if ($0 == heredoc) heredoc = ""; next }
		cont { print > cmds; cont = /[\\|]$/; next }
		/^\$ / {
			line = substr($0, 3)
			print line > cmds
			cont = line ~ /[\\|]$/
			if (match(line, /<<[\047"]?[A-Z]+/)) {
				heredoc = substr(line, RSTART + 2, RLENGTH - 2)
				gsub(/[\047"]/, "", heredoc)
			}
			next
		}
		{ print > want }
	' "$1"
	touch "$T/cmds" "$T/want"
}

# example PAGE N NAME [SED]: runs block N of PAGE in $T/work (shared by the blocks) with sh (the tools first on
# PATH), standard error with standard output, output through SED if given, and compares it
# with the page
example() {
	block "$1" "$2" >"$T/block"
	rm -f "$T/cmds" "$T/want"
	transcript "$T/block"
	if [ ! -s "$T/cmds" ]; then
		ok 1 "$1 example $2 ($3): no commands found"
		return
	fi
	(cd "$T/work" && sh "$T/cmds" 2>&1) >"$T/got.raw"
	if [ -n "${4:-}" ]; then sed "$4" "$T/got.raw"; else cat "$T/got.raw"; fi >"$T/got"
	if cmp -s "$T/got" "$T/want"; then
		ok 0 "$1 example $2: $3"
	else
		ok 1 "$1 example $2: $3"
		diff "$T/want" "$T/got" | sed 's/^/# /'
	fi
}

mkdir "$T/work"

# encfs-config(1): the three examples, a file, the environment, a mistake
example encfs-config.1 1 "a configuration file checks valid"
example encfs-config.1 2 "from EncfsSideCarArgs, a field read back" # (args.json: from the first)
example encfs-config.1 3 "a mistake names the field"

# encfs-config(5): the example configuration is valid as it stands (the client id aside)
block encfs-config.5 1 | sed 's/<client id>/11111111-2222-3333-4444-555555555555/' >"$T/work/args5.json"
run encfs-config -f "$T/work/args5.json" check
is "$rc:$err" "0:" "encfs-config.5 example: the configuration is valid"
block encfs-config.5 2 | sed 's/<client id>/11111111-2222-3333-4444-555555555555/' >"$T/work/args5v.json"
run encfs-config -f "$T/work/args5v.json" check
is "$rc:$err" "0:" "encfs-config.5 example 2: the pinned configuration is valid"

# encfs-attest(1): the real evidence in ../shared (read from there, never copied into the tree)
if [ -f "$SHARED/testdata/azure-snp/snp_report.bin" ]; then
	for f in security-policy.base64 host-amd-cert.json snp_report.bin; do
		ln -sf "$SHARED/testdata/azure-snp/$f" "$T/work/$f"
	done
	example encfs-attest.1 1 "policy-digest of the real security policy"
	example encfs-attest.1 2 "verify the real report against its certificates"
else
	skip "../shared/testdata/azure-snp absent: encfs-attest examples"
	skip "../shared/testdata/azure-snp absent: encfs-attest examples"
fi

# encfs-dmsetup(1): a volume made by cryptsetup on a plain file; the path is this machine's
if command -v cryptsetup >/dev/null 2>&1; then
	example encfs-dmsetup.1 1 "dump, test, a wrong key, the table" 's#[^ ]*/vol\.img #/home/me/vol.img #'
	# the second: the key differs from volume to volume, so the two commands' lines must agree
	block encfs-dmsetup.1 2 >"$T/block"
	transcript "$T/block"
	(cd "$T/work" && sh "$T/cmds" 2>&1) >"$T/got"
	ours=$(sed -n 1p "$T/got")
	theirs=$(sed -n 2p "$T/got" | sed 's/^MK dump:[[:space:]]*//; s/ //g')
	like "$theirs" "$ours" "encfs-dmsetup.1 example 2: table --showkeys gives cryptsetup's volume key"
	is "${#ours}" 32 "... 32 hex digits of it, as the page shows"
else
	skip "cryptsetup not installed: encfs-dmsetup examples"
	skip "cryptsetup not installed: encfs-dmsetup examples"
	skip "cryptsetup not installed: encfs-dmsetup examples"
fi

# encfs-mkimage(1): an image of a small tree, checked by encfs-dmsetup and cryptsetup; then a new
# key (its check value differs from run to run) and a size refused
if command -v cryptsetup >/dev/null 2>&1 && PATH=$PATH:/usr/sbin:/sbin command -v mke2fs >/dev/null 2>&1; then
	# (what "allocated" counts depends on the filesystem $T is on: tmpfs and ext4 differ by a
	# block; test/mkimage.t checks the allocation itself)
	example encfs-mkimage.1 1 "an image of a tree, opened by encfs-dmsetup and cryptsetup" \
		's/^allocated [0-9]\{6\}$/allocated 348160/'
	example encfs-mkimage.1 2 "a 4 GiB image with a new key, and too small a size" \
		's/^key-check-value [0-9a-f]\{8\}$/key-check-value 5e1f0c2a/; s/^allocated [0-9]\{6\}$/allocated 417792/'
	# (the root hash and salt are new each run: the page's stand in for them)
	example encfs-mkimage.1 3 "a pinned image, its tree verified by veritysetup" \
		's/root.hash\([" :]*\)[0-9a-f]\{64\}/root_hash\10aaf503059922dc7659ef97bd9fe5e84865dbfda02fd13323e308028c5ef6565/; s/^verity-root_hash/verity-root-hash/; s/salt\([" :]*\)[0-9a-f]\{64\}/salt\106649f2563ed40f714754dc2041b3287206c0a4d465265a3b0255dbe86785bb6/g'
else
	skip "cryptsetup or mke2fs not installed: encfs-mkimage examples"
	skip "cryptsetup or mke2fs not installed: encfs-mkimage examples"
	skip "cryptsetup or mke2fs not installed: encfs-mkimage examples"
fi

# encfs(7): an image of a tree with a given key file, and encfs-dmsetup confirming the key
if PATH=$PATH:/usr/sbin:/sbin command -v mke2fs >/dev/null 2>&1; then
	rm -rf "$T/work" && mkdir "$T/work" # (a tree of its own)
	example encfs.7 1 "an image and its key check value, confirmed by encfs-dmsetup"
else
	skip "mke2fs not installed: encfs(7) example"
fi

# --- TRYING IT LOCALLY (encfs.sh(1)) and the examples that use it ---------------------------------
# The section's commands are run as the page writes them, with two changes a test needs: each
# service gets a free port instead of the page's (the later commands and what the examples print
# are mapped between the two), and /tmp/encfs-try is this test's directory.  Azurite is left out:
# no example here needs it (the encfs-fetch tests start it).  Then the examples of encfs-skr(1),
# encfs-attest(1) and encfs-unwrap(1) that use the services run, in that order, in one directory.

# commands FILE: the "$ " commands of a transcript, one per line (continuations joined)
commands() {
	awk '
		cont { line = line " " $0; sub(/^ +/, " ", line) }
		!cont && /^\$ / { line = substr($0, 3) }
		!cont && !/^\$ / { next }
		{ cont = line ~ /[\\|]$/; if (line ~ /\\$/) sub(/ *\\$/, "", line) }
		!cont { print line; line = "" }
	' "$1"
}
portmap=""
map_ports() { # the text on stdin with the page's ports as this test's
	_s=""
	for _pair in $portmap; do
		_s="$_s s/${_pair%%=*}/${_pair#*=}/g;"
	done
	sed "${_s:-p;d}"
}
mkdir -p "$T/try"
local_ok=0
if "$PYTHON" -c 'import cryptography' 2>/dev/null; then
	cd "$T/work" || bail "no work directory"
	for n in 1 2; do
		block encfs.sh.1 "$n" "TRYING IT LOCALLY" >"$T/try$n.block"
		commands "$T/try$n.block" >"$T/try$n.cmds"
		while IFS= read -r c; do
			c=$(printf '%s\n' "$c" | sed "s#/tmp/encfs-try#$T/try#g; s#\$PWD/test/fakes#$ENCFS_SRC/test/fakes#g" | map_ports)
			case $c in
			"export PATH="*) ;;
			"cd \"\$(mktemp -d /dev/shm/"*) ;; # this test's directory, in memory too
			*azurite*) diag "not started here: $c" ;;
			*" &")
				_port=$(printf '%s\n' "$c" | sed -n 's/.* --port \([0-9][0-9]*\).*/\1/p')
				_cmd=$(printf '%s\n' "$c" | sed 's/ --port [0-9][0-9]*//; s/ &$//')
				_name=$(printf '%s\n' "$_cmd" | sed 's#.*/\([a-z]*\)\.py.*#\1#')
				eval "start_service $_name $_cmd"
				portmap="$portmap $_port=$port"
				;;
			*) eval "$c" || local_ok=1 ;;
			esac
		done <"$T/try$n.cmds"
	done
	cd "$ENCFS_SRC" || bail "no source tree"
	ok "$local_ok" "encfs.sh.1 TRYING IT LOCALLY: the services and the evidence start as written"
	is "$(echo "$portmap" | wc -w)" 3 "... MAA, the vault and IMDS"
	unmap="$(for _pair in $portmap; do printf 's/:%s/:%s/g;' "${_pair#*=}" "${_pair%%=*}"; done)"
	normal="$unmap"'s#/keys/fskey/[0-9a-f]\{32\}#/keys/fskey/8b6e0f9c2d4a4e3f9a1b2c3d4e5f6071#g'
	normal="$normal;"'s/issued .* UTC and is valid until .* UTC, .* from now$/issued 2026-12-02 06:00:00 UTC and is valid until 2026-12-02 14:00:00 UTC, 8 h 0 min from now/'
	example encfs-skr.1 4 "import against the test vault: the key check value" "$normal"
	example encfs-skr.1 5 "policy: the stored release policy" "$normal"
	example encfs-skr.1 6 "a 403 names the claim the token lacks" "$normal"
	example encfs-attest.1 4 "show: the claims of a token, and its validity" "$normal"
	example encfs-unwrap.1 4 "show: the policy inside a release; the same key check value" "$normal"
else
	for n in 1 2 3 4 5 6 7; do skip "python3-cryptography absent: the test services cannot run"; done
fi

done_testing
