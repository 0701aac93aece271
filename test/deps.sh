#!/bin/sh
# Installs what building, testing and the demo need, on Debian 12, idempotently: the packages of
# test/deps.apt that are missing (apt-get), Node.js when absent, and the npm packages of
# test/node/package.json (Azurite, the Azure SDK) when they are not installed yet.
#   sh test/deps.sh [PACKAGE]...   only these Debian packages, when missing (make image)
set -eu
here=$(cd "$(dirname "$0")" && pwd)

if [ $# -gt 0 ]; then
	wanted=$(printf '%s\n' "$@")
else
	wanted=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/deps.apt")
fi
missing=$(printf '%s\n' "$wanted" | while read -r p; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf ' %s' "$p"
done)
if [ $# -eq 0 ]; then
	command -v node >/dev/null 2>&1 || missing="$missing nodejs"
	command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing packages:$missing (run make deps as root, or install them)" >&2
		exit 1
	fi
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
	# shellcheck disable=SC2086 # a list of package names
	apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $missing >/dev/null
fi

if [ $# -eq 0 ] && [ -f "$here/node/package.json" ]; then
	stamp="$here/node/node_modules/.encfs-installed"
	if [ ! -f "$stamp" ] || [ -n "$(find "$here/node" -maxdepth 1 -name 'package*.json' -newer "$stamp")" ]; then
		echo "deps: installing npm packages in test/node"
		(cd "$here/node" && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi) >/dev/null
		touch "$stamp"
	fi
fi

# The VM kernel (Debian's linux-image-amd64, unpacked into test/vm/cache): fetched here, with the
# packages, because the tests and the demo boot it from inside network namespaces that have no
# route to the Debian archive.
if [ "$(id -u)" -eq 0 ]; then
	sh "$here/vm/run.sh" --prepare
else
	echo "deps: not root: the VM kernel is not fetched (the real-kernel tests and make demo need it)" >&2
fi
