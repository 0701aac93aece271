#!/bin/sh
# run.sh: boot Debian 12's kernel under qemu with an initramfs of this tree's `make install`,
# busybox and the oracle tools, run a test script inside, hand back its output and exit status.
#
#   test/vm/run.sh [OPTION]... SCRIPT [ARG]...
#
#   --rootfs DIR       DIR (a container image's root filesystem) is the guest's, not busybox's
#   --disk FILE        attach FILE as the next virtio disk (vda, vdb, ...), read-write, raw
#   --disk-ro FILE     the same, read-only
#   --file SRC[:DEST]  copy SRC into the guest (default DEST: /vm/files/<name of SRC>)
#   --env NAME=VALUE   set NAME in the script's environment
#   --mem MIB          guest memory (default 512)
#   --smp N            guest CPUs (default 2)
#   --timeout SEC      kill a guest still running after SEC seconds (default $ENCFS_VM_TIMEOUT or 600)
#   --no-install       do not put this tree's `make install` into the guest (implied by --rootfs)
#   --forward PORT     give the guest eth0 (10.0.2.15/24), on which 10.0.2.100:PORT reaches
#                      127.0.0.1:PORT of this network namespace, and nothing else (repeatable)
#   --host NAME        NAME resolves to 10.0.2.100 in the guest (/etc/hosts; repeatable)
#   --live             show the script's stdout as it comes (default: when the guest has finished)
#   --prepare          only download and cache the kernel and modules, then exit
#
# Networking (--forward): qemu user networking with restrict=on, whose only way out is one
# guestfwd rule per PORT, each connection relayed by `busybox nc 127.0.0.1 PORT` run by qemu; the
# guest cannot reach any other address, and what it reaches is on 127.0.0.1.  Run it inside a
# network namespace of the test's own (test/e2e/netns.sh) with the services it needs there.
#
# The script runs as root under dash (/bin/sh) in /tmp of the guest, with the disks, the files, the
# installed tools in /usr/bin and test/lib.sh + test/vm/guest.sh under $ENCFS_SRC (= /encfs);
# ASAN_OPTIONS and UBSAN_OPTIONS pass through.
#
# --rootfs DIR: the guest's root filesystem is DIR as it is (owners, modes, links kept), with only
# the kernel modules, /init, and a static busybox in /.vm that /init uses for what an image lacks
# (insmod, ip, poweroff, the kernel's modprobe) and that is on no PATH; no oracle tools, no `make
# install`.  The script runs with DIR's /bin/sh and programs; test/lib.sh and guest.sh are under
# /encfs as usual.
# Its stdout is this program's stdout (CRs removed), its stderr this program's stderr; the exit
# status is the script's.  A guest that does not finish (timeout, panic, no exit status), or a
# run that cannot start, gives a failed check "not ok N - vm: WHY" on stdout (and a plan if the
# script printed none), the end of the kernel console on stderr, and exit status 1.
# Last line on stdout, a TAP comment: "# vm: accel=kvm|tcg kernel=KVER prepare=S boot=S script=S
# qemu=S" (seconds: building the initramfs, guest boot to the script, the script, qemu in all).
#
# Environment: ENCFS_VM_ACCEL=auto|kvm|tcg (default auto: KVM when /dev/kvm works, else TCG),
# ENCFS_VM_TIMEOUT, ENCFS_VM_CACHE (default test/vm/cache), ENCFS_VM_KEEP=1 keeps the work
# directory (console log, initramfs) and says where; ENCFS_BUILD as in make check.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
: "${ENCFS_BUILD:=$src/build}"
: "${ENCFS_VM_ACCEL:=auto}"
: "${ENCFS_VM_TIMEOUT:=600}"
: "${ENCFS_VM_CACHE:=$here/cache}"
: "${ENCFS_VM_KEEP:=}"
PATH=$PATH:/usr/sbin:/sbin
# shellcheck disable=SC3045 # dash has ulimit -c; no core file in the tree from an aborting qemu
ulimit -c 0 2>/dev/null || true
t_start=$(date +%s.%N)

# die WHY: the run failed.  A failed TAP check on stdout, numbered after the script's own checks
# (if it printed any), and a plan when the script printed none; WHY on stderr; exit status 1.
# Not "Bail out!", which would stop the other tests of make check too.
guest_out=""
die() {
	n=0
	plan=""
	if [ -n "$guest_out" ] && [ -f "$guest_out" ]; then
		n=$(grep -cE '^(not )?ok( |$)' "$guest_out" || true)
		plan=$(grep -E '^1\.\.[0-9]+' "$guest_out" || true)
	fi
	echo "not ok $((n + 1)) - vm: $*"
	[ -n "$plan" ] || echo "1..$((n + 1))"
	echo "vm: $*" >&2
	exit 1
}
usage() { # usage [STATUS]: the synopsis, on stderr unless asked for
	if [ "${1:-2}" -eq 0 ]; then
		sed -n '5,20p' "$0" | sed 's/^# \{0,1\}//'
	else
		sed -n '5,20p' "$0" | sed 's/^# \{0,1\}//' >&2
	fi
	exit "${1:-2}"
}

disks="" ndisks=0 files="" envs="" mem=512 smp=2 timeout=$ENCFS_VM_TIMEOUT install=1 prepare=0
forwards="" hosts="" live=0 rootfs=""
nl='
'
while [ $# -gt 0 ]; do
	case $1 in
	--disk | --disk-ro)
		[ $# -ge 2 ] || usage
		[ -f "$2" ] || die "no disk image $2"
		ro=off
		[ "$1" = --disk-ro ] && ro=on
		disks="$disks$2|$ro$nl"
		ndisks=$((ndisks + 1))
		shift 2
		;;
	--file)
		[ $# -ge 2 ] || usage
		files="$files$2$nl"
		shift 2
		;;
	--env)
		[ $# -ge 2 ] || usage
		case ${2%%=*} in '' | [0-9]* | *[!A-Za-z0-9_]*) die "--env wants NAME=VALUE, got $2" ;; esac
		case $2 in *=*) ;; *) die "--env wants NAME=VALUE, got $2" ;; esac
		envs="$envs$2$nl"
		shift 2
		;;
	--mem) [ $# -ge 2 ] || usage; mem=$2; shift 2 ;;
	--smp) [ $# -ge 2 ] || usage; smp=$2; shift 2 ;;
	--timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
	--no-install) install=0; shift ;;
	--rootfs)
		[ $# -ge 2 ] || usage
		if [ ! -d "$2" ] || [ ! -x "$2/bin/sh" ]; then die "--rootfs $2: not a root filesystem (no /bin/sh in it)"; fi
		rootfs=$(cd "$2" && pwd)
		install=0
		shift 2
		;;
	--live) live=1; shift ;;
	--forward)
		[ $# -ge 2 ] || usage
		case $2 in '' | *[!0-9]* | ??????*) die "--forward wants a port number, got $2" ;; esac
		if [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then die "--forward wants a port number, got $2"; fi
		forwards="$forwards $2"
		shift 2
		;;
	--host)
		[ $# -ge 2 ] || usage
		case $2 in '' | -* | *[!A-Za-z0-9.-]*) die "--host wants a host name, got $2" ;; esac
		hosts="$hosts $2"
		shift 2
		;;
	--prepare) prepare=1; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
done
[ $prepare -eq 1 ] || [ $# -ge 1 ] || usage
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed (make deps)"
for c in cpio depmod modprobe flock busybox ldd; do
	command -v $c >/dev/null || die "$c is not installed (make deps)"
done

# shell-quote ARG: one single-quoted word
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

mkdir -p "$ENCFS_VM_CACHE"

# --- the kernel: Debian 12's linux-image-amd64 dependency, downloaded once, never installed ------
# Sets kdir (vmlinuz, modules.load, lib/modules/KVER with the modules we load) and kver.
# The package (linux-image-6.1.0-N-amd64) and version apt would pick now; asking apt-cache takes a
# second, so the answer is kept until the apt lists change.
kernel_pkg() {
	stamp=$ENCFS_VM_CACHE/kernel.pkg
	if [ -s "$stamp" ] && [ -z "$(find /var/lib/apt/lists -newer "$stamp" -name '*Packages*' 2>/dev/null | head -1)" ]; then
		cat "$stamp"
		return 0
	fi
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
	[ -n "$pkg" ] || return 1
	ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	[ -n "$ver" ] || return 1
	echo "$pkg $ver" >"$stamp.tmp"
	mv "$stamp.tmp" "$stamp"
	echo "$pkg $ver"
}
kernel_deb() { # prints the path of the cached .deb of the current kernel package
	pv=$(kernel_pkg) || { [ "$(id -u)" -eq 0 ] && apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null 2>&1 &&
		pv=$(kernel_pkg); } || pv=""
	if [ -n "$pv" ]; then
		pkg=${pv% *} ver=${pv#* }
		deb=$ENCFS_VM_CACHE/${pkg}_$(echo "$ver" | sed 's/:/%3a/')_amd64.deb
		[ -f "$deb" ] && { echo "$deb"; return 0; }
		dl=$(mktemp -d "$ENCFS_VM_CACHE/dl.XXXXXX")
		if (cd "$dl" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
			{ [ "$(id -u)" -eq 0 ] && apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null 2>&1 &&
				(cd "$dl" && apt-get download -q "$pkg" >/dev/null 2>&1); }; then
			new=$(ls "$dl"/*.deb)
			rm -f "$ENCFS_VM_CACHE"/linux-image-*.deb
			mv "$new" "$ENCFS_VM_CACHE/"
			rm -rf "$dl"
			echo "$ENCFS_VM_CACHE/${new##*/}"
			return 0
		fi
		rm -rf "$dl"
	fi
	# Offline: the newest kernel already cached, if any.
	deb=$(find "$ENCFS_VM_CACHE" -maxdepth 1 -name 'linux-image-*-amd64_*.deb' | sort | tail -1)
	[ -n "$deb" ] || return 1
	echo "vm: could not reach the Debian archive, using the cached ${deb##*/}" >&2
	echo "$deb"
}

prepare_kernel() {
	deb=$(kernel_deb) || die "cannot download Debian's linux-image-amd64 (apt-get download failed; run apt-get update)"
	modsum=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/modules.txt" | sha256sum | cut -c1-12)
	kdir=$ENCFS_VM_CACHE/kernel-$(basename "$deb" .deb)-$modsum
	if [ ! -f "$kdir/modules.load" ]; then
		echo "vm: extracting ${deb##*/}" >&2
		x=$(mktemp -d "$ENCFS_VM_CACHE/x.XXXXXX")
		dpkg-deb -x "$deb" "$x/root"
		kv=$(ls "$x/root/lib/modules")
		depmod -b "$x/root" "$kv"
		mkdir -p "$x/k/lib/modules/$kv"
		cp "$x/root/boot/vmlinuz-$kv" "$x/k/vmlinuz"
		cp "$x/root/boot/config-$kv" "$x/k/config"
		cp "$x/root/lib/modules/$kv/modules.order" "$x/root/lib/modules/$kv/modules.builtin" \
			"$x/root/lib/modules/$kv/modules.builtin.modinfo" "$x/k/lib/modules/$kv/"
		: >"$x/k/modules.load"
		# shellcheck disable=SC2013 # one word per line
		for m in $(sed -e 's/#.*//' "$here/modules.txt"); do
			if ! modprobe --show-depends -d "$x/root" -S "$kv" "$m" >"$x/deps" 2>&1; then
				why=$(cat "$x/deps")
				rm -rf "$x"
				die "module $m (test/vm/modules.txt): $why"
			fi
			# "insmod /path/to/x.ko" lines, dependencies first; "builtin x" ones need nothing
			sed -n 's|^insmod '"$x/root/lib/modules/$kv/"'\([^ ]*\) *$|\1|p' "$x/deps" | while read -r ko; do
				grep -qxF "$ko" "$x/k/modules.load" && continue
				mkdir -p "$x/k/lib/modules/$kv/$(dirname "$ko")"
				cp "$x/root/lib/modules/$kv/$ko" "$x/k/lib/modules/$kv/$ko"
				echo "$ko" >>"$x/k/modules.load"
			done
		done
		depmod -b "$x/k" "$kv"
		echo "$kv" >"$x/k/kver"
		rm -rf "$x/root" "$x/deps"
		# one kernel in the cache: the one apt offers now
		find "$ENCFS_VM_CACHE" -maxdepth 1 -name 'kernel-*' -type d -exec rm -rf {} +
		mv "$x/k" "$kdir"
		rmdir "$x"
	fi
	kver=$(cat "$kdir/kver")
}
# The cache is filled under a lock: tests may run side by side.
exec 9>"$ENCFS_VM_CACHE/.lock"
flock 9
prepare_kernel
[ $prepare -eq 0 ] || { echo "vm: kernel $kver ready in $kdir" >&2; exit 0; }

script=$1
shift
[ -f "$script" ] || die "no script $script"

w=$(mktemp -d "${TMPDIR:-/tmp}/encfs-vm.XXXXXX")
if [ -n "$ENCFS_VM_KEEP" ]; then
	echo "vm: work directory $w" >&2
else
	trap 'rm -rf "$w"' EXIT
fi
qpid=""
# shellcheck disable=SC2317 # called from the traps
stop_qemu() { [ -z "$qpid" ] || kill "$qpid" 2>/dev/null; }
trap 'stop_qemu; exit 129' HUP
trap 'stop_qemu; exit 130' INT
trap 'stop_qemu; exit 143' TERM

# --- initramfs parts -------------------------------------------------------------------------
add_file() { # add_file STAGE SRC DEST
	mkdir -p "$1$(dirname "$3")"
	cp -L "$2" "$1$3"
}
canon() { # /lib/x86_64-linux-gnu/x -> /usr/lib/x86_64-linux-gnu/x (usr-merged hosts)
	printf '%s/%s\n' "$(readlink -f "$(dirname "$1")")" "$(basename "$1")"
}
add_libs() { # add_libs STAGE ELF: its ldd closure
	ldd "$2" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
		while read -r lib; do
			dest=$(canon "$lib")
			[ -e "$1$dest" ] || add_file "$1" "$lib" "$dest"
		done
}
is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
mkcpio() { # mkcpio DIR OUT [OWNERS]: files owned by root, or as they are with OWNERS=keep
	if [ "${3:-}" = keep ]; then
		(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) >"$2"
	else
		(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$2"
	fi
}

# Base: busybox, the oracle tools and their libraries, the modules, /init.  Cached, keyed by what
# goes in (the host files' names, sizes and times, the lists, /init, the kernel).
progs=""
# shellcheck disable=SC2013 # one word per line
for c in $(sed -e 's/#.*//' "$here/binaries.txt"); do
	p=$(command -v "$c") || die "$c (test/vm/binaries.txt) is not installed on the host (make deps)"
	progs="$progs $p"
done
gcc_s=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ {print $NF; exit}')
# shellcheck disable=SC2086 # a list of paths without blanks
basekey=$({
	echo "$kdir"
	cat "$here/init" "$here/binaries.txt" "$kdir/modules.load"
	for p in $progs $gcc_s "$(command -v busybox)"; do
		echo "$p"
		ldd "$p" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
	done | sort -u | xargs stat -L -c '%n %s %Y'
} | sha256sum | cut -c1-16)
basecpio=$ENCFS_VM_CACHE/base-$basekey.cpio
if [ -n "$rootfs" ]; then
	# the given root filesystem, then what the harness adds to it (later entries of an initramfs
	# replace earlier ones of the same name)
	flock -u 9
	exec 9>&-
	mkcpio "$rootfs" "$w/initrd" keep
	vm=$w/vm
	mkdir -p "$vm/.vm" "$vm/usr/lib" "$vm/etc/vm"
	cp "$(command -v busybox)" "$vm/.vm/busybox"
	ln -s busybox "$vm/.vm/modprobe"
	cp -R "$kdir/lib/modules" "$vm/usr/lib/"
	cp "$kdir/modules.load" "$vm/etc/vm/modules.load"
	cp "$here/init" "$vm/init"
	chmod 0755 "$vm/init"
	mkcpio "$vm" "$w/vm.cpio"
	cat "$w/vm.cpio" >>"$w/initrd"
	rm -rf "$vm" "$w/vm.cpio"
elif [ ! -f "$basecpio" ]; then
	base=$w/base
	mkdir -p "$base/usr/bin" "$base/usr/sbin" "$base/usr/lib64" "$base/usr/lib/x86_64-linux-gnu" \
		"$base/etc/vm" "$base/proc" "$base/sys" "$base/dev" "$base/tmp" "$base/run" "$base/root" "$base/vm"
	ln -s usr/bin "$base/bin"
	ln -s usr/sbin "$base/sbin"
	ln -s usr/lib "$base/lib"
	ln -s usr/lib64 "$base/lib64"
	for p in $progs; do
		add_file "$base" "$p" "$(canon "$p")"
		add_libs "$base" "$p"
	done
	# glibc loads libgcc_s by itself for thread cancellation and unwinding
	[ -z "$gcc_s" ] || [ -e "$base$(canon "$gcc_s")" ] || add_file "$base" "$gcc_s" "$(canon "$gcc_s")"
	cp "$(command -v busybox)" "$base/usr/bin/busybox"
	ln -s dash "$base/usr/bin/sh"
	for a in $(busybox --list-full); do
		[ -e "$base/$a" ] || [ -L "$base/$a" ] || ln -s /usr/bin/busybox "$base/$a"
	done
	cp -R "$kdir/lib/modules" "$base/usr/lib/"
	cp "$kdir/modules.load" "$base/etc/vm/modules.load"
	cp "$here/init" "$base/init"
	chmod 0755 "$base/init"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$base/etc/passwd"
	printf 'root:x:0:\n' >"$base/etc/group"
	mkcpio "$base" "$w/base.cpio"
	rm -rf "$base"
	rm -f "$ENCFS_VM_CACHE"/base-*.cpio
	mv "$w/base.cpio" "$basecpio"
fi
if [ -z "$rootfs" ]; then
	cp "$basecpio" "$w/initrd"
	flock -u 9
	exec 9>&-
fi

# Project: `make install` of this tree, exactly what an image of the tools gets, with its libraries.
proj=$w/proj
mkdir -p "$proj"
if [ $install -eq 1 ]; then
	if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$src" install \
		DESTDIR="$proj" PREFIX=/usr B="$ENCFS_BUILD" >"$w/install.log" 2>&1; then
		echo "vm: make install failed, the guest has no tools of this tree:" >&2
		sed 's/^/vm:   /' "$w/install.log" | tail -20 >&2
		echo "# vm: make install B=$ENCFS_BUILD failed: the guest has no tools of this tree"
	fi
	find "$proj" -type f | while read -r f; do
		is_elf "$f" && add_libs "$proj" "$f"
	done
fi
# test helpers for the script
mkdir -p "$proj/encfs/test/vm"
cp "$src/test/lib.sh" "$proj/encfs/test/lib.sh"
cp "$here/guest.sh" "$proj/encfs/test/vm/guest.sh"
mkcpio "$proj" "$w/proj.cpio"

# Run: the script, its files, its environment.
run=$w/run
mkdir -p "$run/vm/files" "$run/etc/vm"
cp "$script" "$run/vm/script"
while IFS= read -r f; do
	[ -n "$f" ] || continue
	case $f in
	*:*) s=${f%%:*} d=${f#*:} ;;
	*) s=$f d=/vm/files/$(basename "$f") ;;
	esac
	[ -e "$s" ] || die "no file $s"
	mkdir -p "$run$(dirname "$d")"
	cp -R "$s" "$run$d"
done <<EOF
$files
EOF
{
	echo "ENCFS_SRC=/encfs ENCFS_BUILD=/encfs/build ENCFS_BIN=/usr/bin HOME=/root TMPDIR=/tmp"
	echo "export ENCFS_SRC ENCFS_BUILD ENCFS_BIN HOME TMPDIR"
	echo "ENCFS_VM_DISKS=$ndisks"
	# a sanitizer build (make check SANITIZE=1) keeps its options in the guest
	for v in ASAN_OPTIONS UBSAN_OPTIONS; do
		eval "val=\${$v-}"
		[ -z "$val" ] || echo "$v=$(q "$val"); export $v"
	done
	while IFS= read -r e; do
		[ -n "$e" ] || continue
		echo "${e%%=*}=$(q "${e#*=}"); export ${e%%=*}"
	done <<EOF
$envs
EOF
	printf 'set --'
	for a in "$@"; do printf ' %s' "$(q "$a")"; done
	echo
} >"$run/etc/vm/env"
if [ -n "$forwards" ]; then
	# init configures eth0 from this; names resolve from /etc/hosts only (no DNS server exists)
	echo "10.0.2.15/24" >"$run/etc/vm/net"
	printf '127.0.0.1 localhost\n' >"$run/etc/hosts"
	# shellcheck disable=SC2086 # a list of host names
	[ -z "$hosts" ] || printf '10.0.2.100 %s\n' $hosts >>"$run/etc/hosts"
	printf 'hosts: files\n' >"$run/etc/nsswitch.conf"
fi
mkcpio "$run" "$w/run.cpio"
cat "$w/proj.cpio" "$w/run.cpio" >>"$w/initrd"
rm -f "$w/proj.cpio" "$w/run.cpio"
rm -rf "$proj" "$run"

# --- boot ------------------------------------------------------------------------------------
# kvm_works: /dev/kvm is there and really runs a guest: the kernel alone must reach its "no root
# file system" panic within 15 s (where nested KVM is broken, qemu hangs or aborts instead).  The
# answer is kept for the host's boot (boot_id).
kvm_works() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	bootid=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
	probe=$ENCFS_VM_CACHE/kvm-probe
	if [ -f "$probe" ] && [ "$(cut -d' ' -f1 "$probe")" = "$bootid" ]; then
		[ "$(cut -d' ' -f2 "$probe")" = yes ]
		return
	fi
	verdict=no
	timeout -k 5 15 qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
		-machine pc -accel kvm -cpu max -m 256 -kernel "$kdir/vmlinuz" \
		-append "console=ttyS0 panic=-1 loglevel=4" -serial "file:$w/kvm-probe" \
		</dev/null >/dev/null 2>&1 && grep -q 'Kernel panic' "$w/kvm-probe" && verdict=yes
	echo "$bootid $verdict" >"$probe.$$"
	mv "$probe.$$" "$probe"
	[ $verdict = yes ] || echo "vm: /dev/kvm does not run a guest here, using TCG" >&2
	[ $verdict = yes ]
}

case $ENCFS_VM_ACCEL in
tcg) accel="-accel tcg" ;;
kvm) accel="-accel kvm" ;;
auto) if kvm_works; then accel="-accel kvm"; else accel="-accel tcg"; fi ;;
*) die "ENCFS_VM_ACCEL must be auto, kvm or tcg, not $ENCFS_VM_ACCEL" ;;
esac
set --
n=0
while IFS='|' read -r f ro; do
	[ -n "$f" ] || continue
	serial=$(basename "$f" | tr -c 'A-Za-z0-9._\n-' '_' | cut -c1-20)
	set -- "$@" -drive "file=$(printf '%s' "$f" | sed 's/,/,,/g'),if=none,id=disk$n,format=raw,readonly=$ro" \
		-device "virtio-blk-pci,drive=disk$n,serial=$serial"
	n=$((n + 1))
done <<EOF
$disks
EOF
if [ -n "$forwards" ]; then
	# The guest's only link: user networking that routes nothing (restrict=on) but these forwards,
	# each guest connection relayed to 127.0.0.1:PORT by a busybox nc that qemu starts for it.
	nc_prog=$(command -v busybox)
	netdev=user,id=net0,restrict=on,net=10.0.2.0/24,host=10.0.2.2
	for p in $forwards; do
		netdev="$netdev,guestfwd=tcp:10.0.2.100:$p-cmd:$nc_prog nc 127.0.0.1 $p"
	done
	set -- "$@" -netdev "$netdev" -device virtio-net-pci,netdev=net0
fi
for f in console stdout stderr status; do : >"$w/$f"; done
t_boot=$(date +%s.%N)
qrc=0
# shellcheck disable=SC2086 # $accel is a list of options
timeout -k 10 "$timeout" qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
	-machine pc $accel -cpu max -smp "$smp" -m "$mem" \
	-kernel "$kdir/vmlinuz" -initrd "$w/initrd" \
	-append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init mitigations=off" \
	-serial "file:$w/console" -serial "file:$w/stdout" -serial "file:$w/stderr" -serial "file:$w/status" \
	"$@" </dev/null >"$w/qemu.log" 2>&1 &
qpid=$!
# --live: follow the script's stdout until qemu has ended (tail then prints the rest and exits)
[ $live -eq 0 ] || tail -n +1 -f --pid="$qpid" "$w/stdout" | sed -u 's/\r$//'
wait "$qpid" || qrc=$?
qpid=""
t_end=$(date +%s.%N)

tr -d '\r' <"$w/stdout" >"$w/stdout.txt"
[ $live -eq 1 ] || cat "$w/stdout.txt"
guest_out=$w/stdout.txt
tr -d '\r' <"$w/stderr" >&2
status=$(tr -d '\r' <"$w/status" | tail -1)
if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
	why="guest killed after the ${timeout} s timeout"
elif [ $qrc -ne 0 ]; then
	why="qemu failed (exit $qrc): $(tail -3 "$w/qemu.log" | tr '\n' ' ')"
elif [ -z "$status" ]; then
	why="guest stopped without an exit status (kernel panic or /init failure)"
else
	why=""
fi
if [ -n "$why" ]; then
	echo "vm: ---- end of the kernel console ----" >&2
	tr -d '\r' <"$w/console" | tail -40 >&2
	die "$why"
fi
rc=${status#exit=}
rc=${rc%% *}
boot=$(echo "$status" | sed -n 's/.* boot=\([^ ]*\).*/\1/p')
end=$(echo "$status" | sed -n 's/.* end=\([^ ]*\).*/\1/p')
acc=$(echo "$status" | sed -n 's/.* accel=\([^ ]*\).*/\1/p')
awk -v a="$acc" -v k="$kver" -v b="$boot" -v e="$end" -v t0="$t_start" -v t1="$t_boot" -v t2="$t_end" 'BEGIN {
	printf "# vm: accel=%s kernel=%s prepare=%.1fs boot=%.1fs script=%.1fs qemu=%.1fs\n", a, k, t1 - t0, b, e - b, t2 - t1 }'
exit "$rc"
