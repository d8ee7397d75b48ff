#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# kernels.sh: fetch and cache the two Debian test kernels without installing them.
#
#   scripts/kernels.sh fetch             download + extract both kernels (idempotent)
#   scripts/kernels.sh list              "<ver> <vmlinuz> <moddir> <kdir>" per kernel
#   scripts/kernels.sh ver  6.1|6.12     kernel release, e.g. 6.1.0-57-amd64
#   scripts/kernels.sh kdir 6.1|6.12     tree to pass as KDIR= / make -C
#   scripts/kernels.sh root 6.1|6.12     extracted package root (boot/, lib/modules/)
#
# "debug" (ver, kdir, root; not fetch or list) is the debug test kernel of
# `make check-debug`, built from Debian's linux-source-6.1 by scripts/debug-kernel.sh:
# kdir is its build tree, root holds boot/vmlinux-<ver> and lib/modules/<ver> (only
# modules.builtin and friends: everything the tests use is built in).
#
# 6.1 is bookworm's kernel with the ABI of the installed linux-headers-amd64, so its
# kdir is the installed /usr/src/linux-headers-<ver> (dkms builds against the same tree).
# 6.12 is bookworm-backports' kernel; image, headers, -common and kbuild all live in
# the cache. The backports suite is not in the machine's apt sources: its address is
# derived at run time from the existing Debian entries and used through a private apt
# configuration, so the system's apt state is never touched.
#
# Environment: OBD_KCACHE (cache folder, default /var/cache/dm-overlaybd/kernels).
set -euo pipefail

KC=${OBD_KCACHE:-/var/cache/dm-overlaybd/kernels}
ME=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "$ME: $*" >&2; exit 1; }
log() { echo "$ME: $*" >&2; }

codename() {
	local c
	c=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	[ -n "$c" ] || die "cannot read VERSION_CODENAME from /etc/os-release"
	echo "$c"
}

# Print "uri|suite|signed-by" for every enabled deb entry of the system's apt sources,
# one-line (sources.list, *.list) and deb822 (*.sources) formats alike.
apt_entries() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk '
		/^[ \t]*deb[ \t]/ {
			line = $0; sub(/#.*/, "", line); sb = ""
			if (match(line, /\[[^]]*\]/)) {
				opts = substr(line, RSTART + 1, RLENGTH - 2)
				line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
				n = split(opts, o, /[ \t]+/)
				for (i = 1; i <= n; i++)
					if (o[i] ~ /^signed-by=/) { sb = o[i]; sub(/^signed-by=/, "", sb) }
			}
			split(line, w, /[ \t]+/)
			k = 0
			for (i = 1; i in w; i++) if (w[i] != "") f[++k] = w[i]
			if (k >= 3) print f[2] "|" f[3] "|" sb
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk '
		function flush(   n, m, i, j, u, s) {
			if (types ~ /(^| )deb( |$)/ && enabled !~ /^(no|false)$/) {
				n = split(uris, u, /[ \t]+/); m = split(suites, s, /[ \t]+/)
				for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
					if (u[i] != "" && s[j] != "") print u[i] "|" s[j] "|" sb
			}
			types = uris = suites = sb = enabled = ""; last = ""
		}
		/^#/ { next }
		/^[ \t]*$/ { flush(); next }
		/^[ \t]/ { next }  # continuation line (inline key); keep the first value only
		{
			key = tolower($0); sub(/:.*/, "", key)
			val = $0; sub(/^[^:]*:[ \t]*/, "", val); sub(/[ \t]+$/, "", val)
			if (key == "types") types = val
			else if (key == "uris") uris = val
			else if (key == "suites") suites = val
			else if (key == "enabled") enabled = tolower(val)
			else if (key == "signed-by" && val ~ /^\//) sb = val
		}
		END { flush() }' "$f"
	done
}

APT_DIR=$KC/apt
APT_OPTS=()
apt_setup() {
	local cn entries main
	cn=$(codename)
	entries=$(apt_entries | awk -F'|' -v cn="$cn" '$2 == cn || $2 ~ "^" cn "-"' | sort -u)
	main=$(printf '%s\n' "$entries" | awk -F'|' -v cn="$cn" '$2 == cn { print; exit }')
	[ -n "$main" ] || die "no '$cn' entry in /etc/apt/sources.list or /etc/apt/sources.list.d/*.{list,sources}: cannot derive the archive address"
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
	{
		printf '%s\n' "$entries" "${main%%|*}|$cn-backports|${main##*|}" | sort -u |
		while IFS='|' read -r uri suite sb; do
			[ -n "$uri" ] || continue
			if [ -n "$sb" ]; then
				echo "deb [signed-by=$sb] $uri $suite main"
			else
				echo "deb $uri $suite main"
			fi
		done
	} > "$APT_DIR/sources.list.new"
	mv "$APT_DIR/sources.list.new" "$APT_DIR/sources.list"
	APT_OPTS=(-o "Dir::Etc::SourceList=$APT_DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
		-q)
	log "updating private apt lists ($APT_DIR)"
	apt-get "${APT_OPTS[@]}" update >"$APT_DIR/update.log" 2>&1 ||
		die "apt-get update (private lists) failed, see $APT_DIR/update.log"
}

# Field of the candidate (or given version) of a package from the private lists.
pkg_field() {	# pkg[=ver] field [default-release]
	local rel=${3:-}
	apt-cache "${APT_OPTS[@]}" ${rel:+-o APT::Default-Release=$rel} show "$1" 2>/dev/null |
		awk -v f="$2" 'BEGIN { f = tolower(f) ":" } tolower($1) == f { sub(/^[^:]*:[ \t]*/, ""); print; exit }'
}

dep_matching() {	# "Depends" value, regex for package name
	tr ',|' '\n' <<<"$1" | sed 's/(.*//; s/[ \t]//g' | grep -E "^$2\$" | head -n1
}

# linux-headers-amd64 (installed) -> its ABI package -> kernel release.
ver61() {
	local abi
	abi=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 2>/dev/null | tr ',' '\n' | sed 's/(.*//; s/ //g' |
		grep -E '^linux-headers-.*-amd64$' | head -n1) ||
		die "linux-headers-amd64 is not installed (run scripts/deps.sh)"
	[ -n "$abi" ] || die "cannot derive the kernel release from linux-headers-amd64's Depends"
	echo "${abi#linux-headers-}"
}

ver612_cached() {
	[ -r "$KC/6.12.ver" ] || die "6.12 kernel not fetched yet (run scripts/kernels.sh fetch)"
	cat "$KC/6.12.ver"
}

kver() {
	case "$1" in
	6.1) ver61 ;;
	6.12) ver612_cached ;;
	debug) "$HERE/debug-kernel.sh" ver ;;
	*) die "unknown kernel '$1' (expected 6.1, 6.12 or debug)" ;;
	esac
}

kroot() {
	if [ "$1" = debug ]; then
		"$HERE/debug-kernel.sh" root
	else
		echo "$KC/$(kver "$1")/root"
	fi
}

kdir() {
	local v
	[ "$1" != debug ] || { "$HERE/debug-kernel.sh" kdir; return; }
	v=$(kver "$1")
	case "$1" in
	6.1) echo "/usr/src/linux-headers-$v" ;;
	6.12) echo "$KC/$v/root/usr/src/linux-headers-$v" ;;
	esac
}

# An ELF vmlinux next to vmlinuz lets QEMU boot through the PVH entry (CONFIG_PVH=y
# on both), skipping the in-guest decompressor: 6.1's xz costs ~15 s under TCG.
# Same idea as the kernel's scripts/extract-vmlinux, which the headers do not ship.
unpack_vmlinux() {	# ver root
	local out=$2/boot/vmlinux-$1
	[ -s "$out" ] && return 0
	python3 - "$2/boot/vmlinuz-$1" "$out.tmp" <<-'EOF' || die "$1: cannot unpack vmlinux from vmlinuz"
	import lzma, subprocess, sys
	data = open(sys.argv[1], "rb").read()
	for magic, unpack in (
	    (b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor().decompress(b)),
	    (b"\x28\xb5\x2f\xfd", lambda b: subprocess.run(["zstd", "-qdc"], input=b,
	                                                   capture_output=True).stdout),
	    (b"\x1f\x8b\x08", lambda b: subprocess.run(["gzip", "-dc"], input=b,
	                                              capture_output=True).stdout)):
	    off = data.find(magic)
	    while off >= 0:
	        try:
	            elf = unpack(data[off:])
	        except Exception:
	            elf = b""
	        if elf[:4] == b"\x7fELF":
	            open(sys.argv[2], "wb").write(elf)
	            sys.exit(0)
	        off = data.find(magic, off + 1)
	sys.exit(1)
	EOF
	mv "$out.tmp" "$out"
}

# Download the given packages and extract them into a fresh root, then publish it.
extract_into() {	# ver pkg=version...
	local v=$1 dl tmp p
	shift
	dl=$KC/debs/$v
	tmp=$KC/$v.tmp
	rm -rf "$tmp" "$dl"
	mkdir -p "$dl" "$tmp/root"
	log "$v: downloading $*"
	(cd "$dl" && apt-get "${APT_OPTS[@]}" download "$@" >"$dl/download.log" 2>&1) ||
		die "$v: apt-get download failed, see $dl/download.log"
	for p in "$dl"/*.deb; do
		dpkg -x "$p" "$tmp/root" || die "$v: dpkg -x $p failed"
	done
	[ -r "$tmp/root/boot/vmlinuz-$v" ] || die "$v: no boot/vmlinuz-$v in the image package"
	[ -d "$tmp/root/lib/modules/$v/kernel" ] || die "$v: no lib/modules/$v in the image package"
	depmod -b "$tmp/root" "$v" || die "$v: depmod failed"
	unpack_vmlinux "$v" "$tmp/root"
	if [ -e "$tmp/root/usr/src/linux-headers-$v/Makefile" ]; then
		fix_headers "$v" "$tmp/root" "$KC/$v/root"
	fi
	printf '%s\n' "$@" > "$tmp/stamp"
	rm -rf "${KC:?}/$v"
	mv "$tmp" "$KC/$v"
	rm -rf "$dl"
}

fetch61() {
	local v hv
	v=$(ver61)
	hv=$(dpkg-query -W -f='${Version}' "linux-headers-$v" 2>/dev/null) ||
		die "linux-headers-$v is not installed"
	[ -d "/usr/src/linux-headers-$v" ] || die "/usr/src/linux-headers-$v is missing"
	if [ -r "$KC/$v/stamp" ]; then
		unpack_vmlinux "$v" "$KC/$v/root"
		return 0
	fi
	[ ${#APT_OPTS[@]} -gt 0 ] || apt_setup
	local img=linux-image-$v want=$hv
	if [ -z "$(pkg_field "$img=$hv" Version)" ]; then
		# Same ABI name means same vermagic and symbol versions, so any build of it boots
		# with modules built against the installed headers.
		want=$(pkg_field "$img" Version)
		[ -n "$want" ] || die "$img is not in the archive any more; upgrade the headers: apt-get install linux-headers-amd64"
		log "warning: $img=$hv not in the archive, using $want (same ABI)"
	fi
	extract_into "$v" "$img=$want"
}

fetch612() {
	local cn rel imgmeta v hdr common kbuild
	if [ -r "$KC/6.12.ver" ] && [ -r "$KC/$(cat "$KC/6.12.ver")/stamp" ]; then
		v=$(cat "$KC/6.12.ver")
		unpack_vmlinux "$v" "$KC/$v/root"
		return 0
	fi
	[ ${#APT_OPTS[@]} -gt 0 ] || apt_setup
	cn=$(codename)
	rel=$cn-backports
	imgmeta=$(pkg_field linux-image-amd64 Depends "$rel")
	[ -n "$imgmeta" ] || die "no linux-image-amd64 in $rel"
	v=$(dep_matching "$imgmeta" 'linux-image-.*-amd64')
	v=${v#linux-image-}
	[ -n "$v" ] || die "cannot parse linux-image-amd64's Depends in $rel: $imgmeta"
	case "$v" in 6.12.*) ;; *) die "$rel's kernel is $v, expected 6.12.x" ;; esac
	hdr=$(pkg_field "linux-headers-$v" Depends "$rel")
	common=$(dep_matching "$hdr" 'linux-headers-.*-common')
	kbuild=$(dep_matching "$hdr" 'linux-kbuild-.*')
	if [ -z "$common" ] || [ -z "$kbuild" ]; then
		die "cannot parse linux-headers-$v's Depends: $hdr"
	fi
	local p pv pkgs=()
	for p in "linux-image-$v" "linux-headers-$v" "$common" "$kbuild"; do
		pv=$(pkg_field "$p" Version "$rel")
		[ -n "$pv" ] || die "$p not found in $rel"
		pkgs+=("$p=$pv")
	done
	extract_into "$v" "${pkgs[@]}"
	echo "$v" > "$KC/6.12.ver"
}

# The headers' top Makefile includes the -common tree by its installed absolute path:
# point it at where the tree will live in the cache.
fix_headers() {	# ver extracted-root final-root
	local v=$1 f
	f=$2/usr/src/linux-headers-$v/Makefile
	sed -i "s#^include /usr/src/#include $3/usr/src/#" "$f"
	grep -q "^include $3/usr/src/" "$f" || die "$v: unexpected headers Makefile: $(cat "$f")"
	# scripts/ and tools/ are relative links into usr/lib/linux-kbuild-*: these are the
	# host tools an M= build runs (fixdep, modpost, and resolve_btfids for BTF).
	for f in scripts/basic/fixdep scripts/mod/modpost tools/bpf/resolve_btfids/resolve_btfids; do
		[ -x "$2/usr/src/linux-headers-$v/$f" ] || die "$v: $f missing from the kbuild package"
	done
}

do_fetch() {
	mkdir -p "$KC"
	exec 9>"$KC/.lock"
	flock 9
	fetch61
	fetch612
	local k
	for k in 6.1 6.12; do
		log "$k: $(kver "$k") cached in $(kroot "$k")"
	done
}

do_list() {
	local k v
	for k in 6.1 6.12; do
		v=$(kver "$k")
		[ -r "$KC/$v/stamp" ] || die "$k kernel ($v) not fetched yet (run scripts/kernels.sh fetch)"
		echo "$v $KC/$v/root/boot/vmlinuz-$v $KC/$v/root/lib/modules/$v $(kdir "$k")"
	done
}

case "${1:-}" in
fetch) do_fetch ;;
list) do_list ;;
ver) kver "${2:?usage: $ME ver 6.1|6.12|debug}" ;;
kdir) kdir "${2:?usage: $ME kdir 6.1|6.12|debug}" ;;
root) kroot "${2:?usage: $ME root 6.1|6.12|debug}" ;;
*) echo "usage: $ME fetch | list | ver <6.1|6.12|debug> | kdir <6.1|6.12|debug> | root <6.1|6.12|debug>" >&2; exit 2 ;;
esac
