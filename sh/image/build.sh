#!/bin/sh
# sh/image/build.sh: builds the sidecar image from the Dockerfile without a Docker daemon, a
# container runtime or a registry (make image).
#
#   sh/image/build.sh [--tag NAME] [--iidfile FILE] [--rebase]
#
#   --tag NAME       the image's name (default localhost/encfs:latest)
#   --iidfile FILE   write the built image's ID to FILE
#   --rebase         make the base images again (after Debian security updates, say)
#
# 1. The base images.  The Dockerfile builds FROM debian:12 and runs FROM debian:12-slim, which
#    buildah resolves to docker.io/library/debian:12 and :12-slim.  Those not in local storage are
#    made here from Debian's own packages: mmdebstrap --variant=minbase of bookworm (with
#    bookworm-updates and bookworm-security), the apt and dpkg settings of the official images, an
#    empty /dev; the slim one without documentation (copyright files stay), man and info pages and
#    locales, and with the dpkg settings that keep them out of later installs, as the official slim
#    image is.  They are tagged under those names, so the Dockerfile builds unchanged, here and
#    where Docker Hub is reachable.  An image of those names that this script did not make (pulled
#    from Docker Hub) is used as it is; one it made with another recipe is made again.
# 2. buildah bud --isolation chroot --layers --pull=never: RUN steps are chroots (no runtime, no
#    cgroups), layers whose inputs did not change come from the cache, nothing is pulled.
# 3. The image's size, as a registry holds it unpacked.
#
# Needs root (mmdebstrap and buildah in root mode; images go to root's containers storage,
# /var/lib/containers/storage), buildah, mmdebstrap and uidmap (make image installs them), and
# Debian's package mirror (only when a base image or a RUN step's apt-get has to run).
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR
# (default http://deb.debian.org/debian-security).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
prog="make image"
PATH=$PATH:/usr/sbin:/sbin
: "${DEBIAN_MIRROR:=http://deb.debian.org/debian}"
: "${DEBIAN_SECURITY_MIRROR:=http://deb.debian.org/debian-security}"

die() {
	echo "$prog: $*" >&2
	exit 1
}
usage() {
	sed -n '5,9p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

tag=localhost/encfs:latest iidfile="" rebase=0
while [ $# -gt 0 ]; do
	case $1 in
	--tag) [ $# -ge 2 ] || usage; tag=$2; shift 2 ;;
	--iidfile) [ $# -ge 2 ] || usage; iidfile=$2; shift 2 ;;
	--rebase) rebase=1; shift ;;
	*) usage ;;
	esac
done
[ "$(id -u)" -eq 0 ] || die "building the image needs root (mmdebstrap and buildah in root mode): run make image as root"
for c in buildah mmdebstrap flock; do
	command -v $c >/dev/null || die "$c is not installed (make image installs it: sh test/deps.sh buildah mmdebstrap uidmap)"
done

# One build at a time on this machine: the base images and the tags are shared.
# (in /run, root's: a lock file in a world-writable /tmp could be planted by another user, as a
# link that `>` follows or a file that blocks every build)
mkdir -p /run/lock
lock=/run/lock/encfs-image-build.lock
exec 9>>"$lock"
flock 9

w=$(mktemp -d "${TMPDIR:-/tmp}/encfs-image-build.XXXXXX")
ctrs="" # working containers to remove at exit
# shellcheck disable=SC2317 # called from the trap
cleanup() {
	for _c in $ctrs; do buildah rm "$_c" >/dev/null 2>&1 || :; done
	rm -rf "$w"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- base images -----------------------------------------------------------------------------

# What the base images are made of; a change here makes them again (an annotation of theirs
# records it).
SUITE=bookworm
SOURCES="deb $DEBIAN_MIRROR $SUITE main
deb $DEBIAN_MIRROR $SUITE-updates main
deb $DEBIAN_SECURITY_MIRROR $SUITE-security main"
# The image configuration of the official ones: Cmd bash, the usual PATH.
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Container settings of the official images: no package caches kept in layers, compressed
# indexes, no translations, suggested packages not kept from autoremove, no service started by
# a package, dpkg without fsync (a layer is written once).
apt_clean='# a container image keeps no package cache: apt-get clean after each run
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";'
apt_gzip='Acquire::GzipIndexes "true";'
apt_nolang='Acquire::Languages "none";'
apt_suggests='Apt::AutoRemove::SuggestsImportant "false";'
dpkg_unsafe='force-unsafe-io'
policy_rc='#!/bin/sh
# no service starts inside a container build
exit 101'
# slim: what dpkg leaves out, now and in later installs (what the official slim image drops)
dpkg_slim='# slim image: no documentation but the copyright files, no man or info pages, no locales
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias'
recipe=$(printf '%s\n' mmdebstrap-minbase "$SUITE" "$SOURCES" "$IMAGE_PATH" "$apt_clean" "$apt_gzip" \
	"$apt_nolang" "$apt_suggests" "$dpkg_unsafe" "$policy_rc" "$dpkg_slim" merged-usr empty-dev |
	sha256sum | cut -c1-16)
ANNOTATION=org.encfs.base-recipe

# base_state NAME: "ours" (made here with this recipe), "other" (not made here: pulled), "old"
# (made here with another recipe) or "none"
base_state() {
	_l=$(buildah inspect --type image --format "{{index .ImageAnnotations \"$ANNOTATION\"}}" "$1" 2>/dev/null) ||
		{ echo none; return; }
	case $_l in
	"$recipe") echo ours ;;
	'' | '<no value>') echo other ;;
	*) echo old ;;
	esac
}

# settle ROOT: the official images' container settings, an empty /dev
settle() {
	mkdir -p "$1/etc/apt/apt.conf.d" "$1/etc/dpkg/dpkg.cfg.d"
	printf '%s\n' "$apt_clean" >"$1/etc/apt/apt.conf.d/docker-clean"
	printf '%s\n' "$apt_gzip" >"$1/etc/apt/apt.conf.d/docker-gzip-indexes"
	printf '%s\n' "$apt_nolang" >"$1/etc/apt/apt.conf.d/docker-no-languages"
	printf '%s\n' "$apt_suggests" >"$1/etc/apt/apt.conf.d/docker-autoremove-suggests"
	printf '%s\n' "$dpkg_unsafe" >"$1/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
	printf '%s\n' "$policy_rc" >"$1/usr/sbin/policy-rc.d"
	chmod 0755 "$1/usr/sbin/policy-rc.d"
	# the runtime mounts /dev; the image has none of its nodes
	find "$1/dev" -mindepth 1 -delete
}

# slimify ROOT: drops what dpkg_slim excludes (but what it includes again) and keeps them out
slimify() {
	printf '%s\n' "$dpkg_slim" >"$1/etc/dpkg/dpkg.cfg.d/docker-slim"
	find "$1/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "$1/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
	for d in man groff info lintian linda; do
		[ ! -d "$1/usr/share/$d" ] || find "$1/usr/share/$d" -mindepth 1 -delete
	done
	[ ! -d "$1/usr/share/locale" ] || find "$1/usr/share/locale" -mindepth 1 ! -name locale.alias -delete
}

# commit CONTAINER NAME: the base image's configuration, committed as NAME
commit() {
	buildah config --env "PATH=$IMAGE_PATH" --cmd bash --annotation "$ANNOTATION=$recipe" \
		--created-by "encfs sh/image/build.sh: mmdebstrap --variant=minbase $SUITE" "$1" >/dev/null
	buildah commit --quiet --rm "$1" "$2" >/dev/null
}

full=docker.io/library/debian:12
slim=docker.io/library/debian:12-slim
need=""
for n in "$full" "$slim"; do
	s=$(base_state "$n")
	case $s in
	ours) [ $rebase -eq 0 ] || need="$need $n" ;;
	other) if [ $rebase -eq 0 ]; then echo "$prog: using $n as it is (not made here: pulled from a registry?)"; else need="$need $n"; fi ;;
	*) need="$need $n" ;;
	esac
done
if [ -n "$need" ]; then
	t0=$(date +%s)
	echo "$prog: making$need from Debian's packages (mmdebstrap $SUITE, about a minute)"
	cf=$(buildah from --quiet scratch)
	ctrs="$cf"
	rf=$(buildah mount "$cf")
	# merged /usr made by the hook (usr-is-merged), not by the usrmerge package and its perl
	if ! printf '%s\n' "$SOURCES" | mmdebstrap --mode=root --variant=minbase --format=directory \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --skip=check/empty "$SUITE" "$rf" - \
		>"$w/mmdebstrap.log" 2>&1; then
		tail -n 20 "$w/mmdebstrap.log" >&2
		die "mmdebstrap failed (the end of its output above; is $DEBIAN_MIRROR reachable? set DEBIAN_MIRROR)"
	fi
	settle "$rf"
	cs=$(buildah from --quiet scratch)
	ctrs="$cf $cs"
	rs=$(buildah mount "$cs")
	cp -a "$rf/." "$rs/"
	slimify "$rs"
	buildah umount "$cf" >/dev/null
	buildah umount "$cs" >/dev/null
	for n in $need; do
		# the image it replaces goes (unless a cached layer still uses it)
		old=$(buildah inspect --type image --format '{{.FromImageID}}' "$n" 2>/dev/null) || old=""
		case $n in "$full") commit "$cf" "$n" ;; *) commit "$cs" "$n" ;; esac
		[ -z "$old" ] || buildah rmi "$old" >/dev/null 2>&1 || :
	done
	ctrs=""
	echo "$prog: base images ready in $(($(date +%s) - t0)) s"
fi

# --- the image -------------------------------------------------------------------------------
t0=$(date +%s)
echo "$prog: buildah bud -t $tag (layers whose inputs did not change come from the cache)"
if ! buildah bud --isolation chroot --layers --pull=never --iidfile "$w/iid" -t "$tag" \
	-f "$src/Dockerfile" "$src" >"$w/build.log" 2>&1; then
	tail -n 30 "$w/build.log" >&2
	die "buildah bud failed (the end of its output above)"
fi
iid=$(cat "$w/iid")
[ -z "$iidfile" ] || cp "$w/iid" "$iidfile"
size=$(buildah images --format '{{.Size}}' --filter "id=${iid#sha256:}" | head -n 1)
echo "$prog: $tag ${iid#sha256:} built in $(($(date +%s) - t0)) s, size $size"
