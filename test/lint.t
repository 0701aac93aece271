#!/bin/sh
# Shell stays POSIX: every shell script passes shellcheck -s sh and parses under dash.
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets out, err and rc
. "$ENCFS_SRC/test/lib.sh"

command -v shellcheck >/dev/null 2>&1 || skip_all "shellcheck not installed"
cd "$ENCFS_SRC" || bail "no source tree"
for f in sh/*.sh sh/*/*.sh test/*.sh test/*.t test/*/*.sh .ci/run; do
	[ -f "$f" ] || continue
	head -n 1 "$f" | grep -q bash && continue
	run shellcheck -s sh "$f"
	is "$rc:$out" "0:" "shellcheck -s sh $f"
	run dash -n "$f"
	is "$rc:$err" "0:" "dash -n $f"
done
done_testing
