#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# pkg-check.sh: the Debian packages, built and used as a user would (issue #21).
#   1. `make deb` (scripts/mkdeb.sh: dpkg-buildpackage, lintian without errors)
#      of this tree, and of a copy whose changelog names the next version.
#   2. A clean root: an overlay over the host's root with an empty upper
#      layer, the test kernels' headers as /lib/modules/<release>/build. Its
#      upper layer is exactly what the packages add, change and leave.
#   3. dpkg -i of both packages: dkms builds and installs the module for both
#      test kernels, the tools, links, unit (enabled), user, conffile, man
#      pages and completion are where Debian puts them.
#   4. Each test kernel boots with that install (tests/vm/pkg-guest.sh):
#      modprobe, obd attach of a reference image, the daemon from the unit's
#      command line.
#   5. Upgrade to the next version: the edited conffile and the cache stay,
#      dkms moves to the new version.
#   6. apt-get purge: nothing is left but dpkg's own records and the user.
# TAP on stdout. Needs root, overlayfs, the packages of scripts/deps.sh.
# OBD_PKG_KEEP=1 keeps the work directory (packages, logs).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ver=$("$top/scripts/version.sh") || exit 1
next=$ver+pkgtest1
n=0 fail=0
# each result says when it came (s since the start): where the time goes
ok() { n=$((n + 1)); echo "ok $n $* # t=${SECONDS}s"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n $* # t=${SECONDS}s"; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else not_ok "$d"; fi; }
is() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; diag "got:  $2" "want: $3"; fi; }
finish() {
	echo "1..$n"
	echo "# passed: $((n - fail)) failed: $fail"
	[ "$fail" -eq 0 ]
	exit
}
bail() { not_ok "$*"; finish; }

T=$(mktemp -d /tmp/obd-pkg.XXXXXX)
R=$T/root	# the install root (overlay); U its upper layer
U=$T/layer/upper
cleanup() {
	local m
	for m in "$R/tmp" "$R/run" "$R/dev/pts" "$R/dev" "$R/sys" "$R/proc" "$R" "$T/layer"; do
		mountpoint -q "$m" && umount -l "$m"
	done
	if [ "${OBD_PKG_KEEP:-0}" = 1 ]; then
		echo "# kept $T (packages, logs; the install root's upper layer is gone with its tmpfs)"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
	DEBIAN_FRONTEND=noninteractive "$@"; }

# --- 1. the packages ------------------------------------------------------------
if "$top/scripts/mkdeb.sh" "$T/v1" > "$T/mkdeb1.log" 2>&1; then
	ok "make deb $ver: $(cd "$T/v1" && echo *.deb)"
else
	not_ok "make deb $ver"; diag "$(tail -n 30 "$T/mkdeb1.log")"; finish
fi
is "lintian: no errors (warnings: $(grep -c '^W:' "$T/v1/lintian.log"))" \
	"$(grep -c '^E:' "$T/v1/lintian.log")" 0
mkdir "$T/src2"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	xargs -0 cp -a --parents -t "$T/src2") || bail "copy the tree"
{
	printf 'dm-overlaybd (%s) unstable; urgency=medium\n\n  * Test release.\n\n' "$next"
	printf ' -- dm-overlaybd developers <dm-overlaybd@example.org>  %s\n\n' "$(date -R)"
	cat "$top/debian/changelog"
} > "$T/src2/debian/changelog"
if OBD_DEB_LINTIAN=0 "$T/src2/scripts/mkdeb.sh" "$T/v2" > "$T/mkdeb2.log" 2>&1; then
	ok "make deb $next (the next version; lintian once is enough)"
else
	not_ok "make deb $next"; diag "$(tail -n 30 "$T/mkdeb2.log")"; finish
fi

# --- 2. a clean root -----------------------------------------------------------------
mkdir -p "$T/layer" "$R"
mount -t tmpfs -o size=4g tmpfs "$T/layer" && mkdir "$U" "$T/layer/work" &&
	mount -t overlay overlay -o "lowerdir=/,upperdir=$U,workdir=$T/layer/work" "$R" ||
	bail "overlay root over /"
mount -t proc proc "$R/proc" && mount -t sysfs sysfs "$R/sys" && mount --bind /dev "$R/dev" &&
	mount --bind /dev/pts "$R/dev/pts" && mount -t tmpfs tmpfs "$R/tmp" && mount -t tmpfs tmpfs "$R/run" ||
	bail "mounts in the root"
# The packages must not be there before (a host with them installed is no clean root).
for p in dm-overlaybd-dkms overlaybd-tools; do
	in_root dpkg-query -W "$p" >/dev/null 2>&1 && bail "$p is installed on this host already"
done
kvs=()
for k in 6.1 6.12; do
	kv=$("$top/scripts/kernels.sh" ver "$k") && kd=$("$top/scripts/kernels.sh" kdir "$k") ||
		bail "kernels.sh: no $k"
	mkdir -p "$R/lib/modules/$kv"
	[ -e "$R/lib/modules/$kv/build" ] || ln -s "$kd" "$R/lib/modules/$kv/build"
	kvs+=("$kv")
done
snap() { (cd "$U" && find . -mindepth 1 \( -type d -printf '%p/\n' -o -printf '%p\n' \) | sort); }
snap > "$T/before.list"

# --- 3. install ----------------------------------------------------------------------
cp "$T"/v1/*.deb "$T"/v2/*.deb "$R/tmp/" || bail "copy the packages"
# the two packages (not the -dbgsym one debhelper adds)
debs1=$(cd "$T/v1" && ls ./dm-overlaybd-dkms_*.deb ./overlaybd-tools_*.deb | sed 's|^\./|/tmp/|')
debs2=$(cd "$T/v2" && ls ./dm-overlaybd-dkms_*.deb ./overlaybd-tools_*.deb | sed 's|^\./|/tmp/|')
# shellcheck disable=SC2086
if in_root dpkg -i $debs1 > "$T/install.log" 2>&1; then
	ok "dpkg -i dm-overlaybd-dkms and overlaybd-tools $ver"
else
	not_ok "dpkg -i $ver"; diag "$(grep -iE 'error|fail|warn' "$T/install.log" | head -n 20)" "$(tail -n 20 "$T/install.log")"; finish
fi
for p in dm-overlaybd-dkms overlaybd-tools; do
	is "$p installed, version $ver" "$(in_root dpkg-query -W -f='${Status} ${Version}' "$p")" \
		"install ok installed $ver"
done
is "obd version" "$(in_root obd version)" "obd $ver"
check "overlaybd-fetchd --version" in_root overlaybd-fetchd --version
for c in overlaybd-create overlaybd-commit overlaybd-zfile; do
	is "/usr/bin/$c -> obd" "$(readlink "$R/usr/bin/$c")" obd
done
for m in obd.8 overlaybd-fetchd.8 dm-overlaybd.4 overlaybd.json.5; do
	check "man page $m installed" test -s "$R/usr/share/man/man${m##*.}/$m.gz"
done
check "bash completion for obd" test -s "$R/usr/share/bash-completion/completions/obd"
is "/etc/overlaybd/overlaybd.json is a conffile" \
	"$(in_root dpkg-query -W -f='${Conffiles}' overlaybd-tools | awk '{ print $1 }' | grep -c '^/etc/overlaybd/overlaybd.json$')" 1
check "the packaged config is valid JSON" python3 -m json.tool "$R/etc/overlaybd/overlaybd.json"
check "the unit is installed" test -s "$R/lib/systemd/system/overlaybd-fetchd.service"
check "the unit is enabled (multi-user.target.wants)" \
	test -L "$R/etc/systemd/system/multi-user.target.wants/overlaybd-fetchd.service"
is "the unit starts the installed daemon" \
	"$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$R/lib/systemd/system/overlaybd-fetchd.service")" \
	/usr/bin/overlaybd-fetchd
check "the user overlaybd exists (sysusers)" in_root getent passwd overlaybd
for kv in "${kvs[@]}"; do
	is "dkms: dm-overlaybd/$ver installed for $kv" \
		"$(in_root dkms status -m dm-overlaybd -v "$ver" -k "$kv" | grep -c ': installed')" 1
	ko=$(ls "$R/lib/modules/$kv/updates/dkms/"dm-overlaybd.ko* 2>/dev/null | head -n 1)
	is "its module is built for $kv" "$(modinfo -F vermagic "$ko" 2>/dev/null | cut -d' ' -f1)" "$kv"
done
check "the module's source is under /usr/src/dm-overlaybd-$ver" test -f "$R/usr/src/dm-overlaybd-$ver/dkms.conf"
# only what kmod/Kbuild compiles: the format core (lib/core/), not lib/user/
is "the module's source: dkms.conf, include/, kmod/, lib/core/" \
	"$(cd "$R/usr/src/dm-overlaybd-$ver" && echo * lib/*)" "dkms.conf include kmod lib lib/core"
is "its lib/core/ is the tree's" "$(cd "$R/usr/src/dm-overlaybd-$ver/lib/core" && echo *)" \
	"$(cd "$top/lib/core" && echo *)"

# --- 4. the install, booted ------------------------------------------------------------
mkdir -p "$T/share"
tar -C "$U" -cf "$T/share/upper.tar" . || bail "tar the install"
for k in 6.1 6.12; do
	if "$top/scripts/vm-run.sh" --kernel "$k" --share "$T/share" -- bash tests/vm/pkg-guest.sh \
		> "$T/vm-$k.log" 2>&1; then
		ok "kernel $k: modprobe, obd attach, the daemon from the installed files (tests/vm/pkg-guest.sh)"
	else
		not_ok "kernel $k: tests/vm/pkg-guest.sh"
		diag "$(grep -E '^not ok|^Bail|^#|vm-run' "$T/vm-$k.log" | tail -n 40)"
	fi
done
rm -f "$T/share/upper.tar"

# --- 5. upgrade ------------------------------------------------------------------------
python3 - "$R/etc/overlaybd/overlaybd.json" <<'EOF' || bail "edit the conffile"
import json, sys
c = json.load(open(sys.argv[1]))
c["logConfig"]["logLevel"] = 2
json.dump(c, open(sys.argv[1], "w"), indent=4)
EOF
conf_sum=$(sha256sum < "$R/etc/overlaybd/overlaybd.json")
cache=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['cacheConfig']['cacheDir'])" \
	"$R/etc/overlaybd/overlaybd.json")
mkdir -p "$R$cache" && echo kept > "$R$cache/sha256:kept" || bail "make a cache entry"
# shellcheck disable=SC2086
if in_root dpkg -i $debs2 > "$T/upgrade.log" 2>&1; then
	ok "dpkg -i $next over $ver"
else
	not_ok "dpkg -i $next"; diag "$(tail -n 40 "$T/upgrade.log")"
fi
is "obd version after the upgrade" "$(in_root obd version)" "obd $next"
is "the edited conffile is kept" "$(sha256sum < "$R/etc/overlaybd/overlaybd.json")" "$conf_sum"
is "no .dpkg-new/.dpkg-dist/.dpkg-old beside it" "$(ls "$R/etc/overlaybd/" | grep -c dpkg)" 0
is "the cache is kept" "$(cat "$R$cache/sha256:kept" 2>/dev/null)" kept
is "dkms: $ver is gone" "$(in_root dkms status -m dm-overlaybd -v "$ver" | wc -l)" 0
check "dkms: $next built and installed (for the newest kernel at least)" \
	bash -c "chroot '$R' dkms status -m dm-overlaybd -v '$next' | grep -q ': installed'"
check "/usr/src/dm-overlaybd-$ver is gone" test ! -e "$R/usr/src/dm-overlaybd-$ver"

# --- 6. purge --------------------------------------------------------------------------
if in_root apt-get purge -y -q dm-overlaybd-dkms overlaybd-tools > "$T/purge.log" 2>&1; then
	ok "apt-get purge dm-overlaybd-dkms overlaybd-tools"
else
	not_ok "apt-get purge"; diag "$(tail -n 40 "$T/purge.log")"
fi
snap > "$T/after.list"
# What may stay: dpkg's and apt's records and logs, the user (Debian keeps
# system users), the module indexes depmod rewrites, and dkms's own module
# signing key (made by dkms 3.0.10 at its first build in a root that had none;
# it signs every dkms module, not only ours). Nothing of ours.
# Directories the host has too are copies made on the way (overlayfs copies a
# directory up when something below it changes).
left=$(comm -13 "$T/before.list" "$T/after.list" | grep -vE \
	'^\./(var/lib/dpkg|var/log|var/cache/apt|var/cache/debconf|var/cache/man|var/lib/apt|var/lib/systemd/deb-systemd-helper-enabled|var/lib/systemd/deb-systemd-helper-masked)(/|$)|^\./var/lib/dkms/mok\.(key|pub)$|^\./etc/(passwd|group|shadow|gshadow)-?$|^\./etc/\.pwd\.lock$|^\./etc/\.pwd\.lock$|^\./(usr/)?lib/modules/[^/]+/modules\.[a-z.]+$' |
	while IFS= read -r p; do
		case $p in */) [ -d "/${p#./}" ] && continue ;; esac
		echo "$p"
	done)
is "purge leaves nothing of the packages" "$left" ""
for x in /usr/bin/obd /usr/bin/overlaybd-fetchd /etc/overlaybd "$cache" /var/lib/dkms/dm-overlaybd \
	/lib/systemd/system/overlaybd-fetchd.service /etc/systemd/system/multi-user.target.wants/overlaybd-fetchd.service; do
	check "gone: $x" test ! -e "$R$x"
done
for kv in "${kvs[@]}"; do
	is "no dm-overlaybd module left for $kv" "$(find "$R/lib/modules/$kv/" -name 'dm-overlaybd.ko*' | wc -l)" 0
done
finish
