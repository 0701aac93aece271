#!/bin/sh
# Man pages: every tool and encfs.sh has one; each renders and is lint-clean; each has EXAMPLES and
# the one EXIT STATUS table; --help names exactly the options the page documents and shows the
# same argument forms as its SYNOPSIS; every page has the same date and footer.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err and rc
. "$ENCFS_SRC/test/lib.sh"

command -v mandoc >/dev/null 2>&1 || skip_all "mandoc not installed"

exit_status='.Sh EXIT STATUS
.Bl -tag -width Ds -compact
.It 0
success
.It 1
internal error: a bug, out of memory, or an unexpected system error
.It 2
usage: bad command line
.It 3
configuration: bad configuration or input
.It 4
network: a service could not be reached or kept failing after retries
.It 5
denied: a service refused (authentication, authorisation, release policy)
.It 6
attestation: no attestation report or evidence could be produced or verified
.It 7
crypto: a signature, certificate chain, checksum, key or unwrap check failed
.It 8
device: device-mapper, loop, mount, file or blob I/O failed
.El'

# the options a page documents: its Fl macros, as -x and --long
page_options() {
	grep '^\.' "$1" | sed 's/\\-/-/g' |
		grep -o '\bFl -\{0,1\}[A-Za-z0-9][A-Za-z0-9-]*' | sed 's/^Fl /-/' | sort -u
}

# the options --help names
help_options() {
	grep -o -- '\(^\|[][ ,|]\)--\{0,1\}[A-Za-z0-9][A-Za-z0-9-]*' | sed 's/^[][ ,|]*//' |
		grep '^-' | sort -u
}

# the argument forms (synopsis lines) of a page, one per line: each form as mandoc renders the
# SYNOPSIS, white space and the spaces inside [ ] and around | made uniform
normalise() { sed 's/  */ /g; s/\[ /[/g; s/ \]/]/g; s/ | /|/g; s/^ //; s/ $//'; }
page_forms() { # page_forms PAGE TOOL
	mandoc -T ascii -O width=1000 "$1" | sed 's/.\x08//g' | awk -v tool="$2" '
		/^SYNOPSIS/ { on = 1; next }
		/^[A-Z]/ { on = 0 }
		!on { next }
		{ sub(/^ +/, "") }
		$1 == tool { if (form != "") print form; form = $0; next }
		/^$/ { if (form != "") print form; form = ""; next }
		form != "" { form = form " " $0 }
		END { if (form != "") print form }' | normalise
}
# the argument forms --help shows: "usage: TOOL ..." and the lines after it, a line starting with
# TOOL a new form, any other a continuation, up to the first empty or unindented line
help_forms() { # help_forms TOOL < HELP
	awk -v tool="$1" '
		NR == 1 { if (sub(/^usage: /, "")) { form = $0; next } else exit }
		/^$/ || /^[^ ]/ { exit }
		{ line = $0; sub(/^ +/, "", line); split(line, w, " ")
		  if (w[1] == tool) { print form; form = line } else form = form " " line }
		END { if (form != "") print form }' | normalise
}

# same_forms NAME: $T/page.forms and $T/help.forms, both non-empty, are the same
same_forms() {
	if [ -s "$T/page.forms" ] && cmp -s "$T/page.forms" "$T/help.forms"; then
		ok 0 "$1: the SYNOPSIS and --help show the same argument forms"
	else
		ok 1 "$1: the SYNOPSIS and --help show the same argument forms"
		diff "$T/page.forms" "$T/help.forms" | sed 's/^/# /'
	fi
}

# the date and the footer (.Os) of every page are the same: encfs.sh(1)'s is the reference
want_date=$(grep -h '^\.Dd ' "$ENCFS_SRC/man/encfs.sh.1")
for page in "$ENCFS_SRC"/man/*.[1-8]; do
	name=$(basename "$page")
	is "$(grep -h '^\.Dd ' "$page")" "$want_date" "$name: the date of every page ($want_date)"
done
footers=$(grep -h '^\.Os' "$ENCFS_SRC"/man/*.[1-8] | sort -u | tr '\n' ' ')
is "$footers" ".Os encfs " "every page has the same footer (.Os encfs)"

for page in "$ENCFS_SRC"/man/*.[1-8]; do
	name=$(basename "$page")
	run mandoc -T lint -W warning "$page"
	is "$rc:$out$err" "0:" "$name: mandoc -T lint finds nothing at warning level"
	run mandoc -T utf8 "$page"
	ok "$([ "$rc" -eq 0 ] && [ -n "$out" ]; echo $?)" "$name: renders"
	grep -q '^\.Sh EXAMPLES' "$page"
	ok $? "$name: has EXAMPLES"
done

for dir in "$ENCFS_SRC"/cmd/*/; do
	tool=$(basename "$dir")
	page=$ENCFS_SRC/man/$tool.1
	if [ ! -f "$page" ]; then
		ok 1 "$tool: has a man page"
		continue
	fi
	ok 0 "$tool: has a man page"
	got=$(sed -n '/^\.Sh EXIT STATUS/,/^\.El/p' "$page")
	is "$got" "$exit_status" "$tool: EXIT STATUS is the shared table"
	if [ ! -x "$ENCFS_BIN/$tool" ]; then
		skip "$tool not built"
		continue
	fi
	run "$ENCFS_BIN/$tool" --help
	is "$rc" 0 "$tool --help exits 0"
	printf '%s\n' "$out" | help_options >"$T/help"
	page_options "$page" >"$T/page"
	is "$(comm -3 "$T/page" "$T/help" | tr -d '\t' | tr '\n' ' ')" "" \
		"$tool: --help and the man page name the same options"
	printf '%s\n' "$out" | help_forms "$tool" >"$T/help.forms"
	page_forms "$page" "$tool" >"$T/page.forms"
	same_forms "$tool"
done

for f in "$ENCFS_SRC"/sh/*.sh; do
	[ -f "$f" ] || continue
	name=$(basename "$f")
	if [ ! -f "$ENCFS_SRC/man/$name.1" ]; then
		ok 1 "$name: has a man page"
		continue
	fi
	ok 0 "$name: has a man page"
	run sh "$f" --help
	is "$rc" 0 "$name --help exits 0"
	printf '%s\n' "$out" | help_options >"$T/help"
	page_options "$ENCFS_SRC/man/$name.1" >"$T/page"
	is "$(comm -3 "$T/page" "$T/help" | tr -d '\t' | tr '\n' ' ')" "" \
		"$name: --help and the man page name the same options"
	printf '%s\n' "$out" | help_forms "$name" >"$T/help.forms"
	page_forms "$ENCFS_SRC/man/$name.1" "$name" >"$T/page.forms"
	same_forms "$name"
done

done_testing
