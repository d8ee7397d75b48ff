#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dkms round trip against the installed 6.1 headers: copy the source tree to
# /usr/src/dm-overlaybd-<ver>, dkms add + build, check the module, remove.
# Leaves the system as it found it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ver=$("$top/scripts/version.sh")
kver=${KVER:-$("$top/scripts/kernels.sh" ver 6.1)}
src=/usr/src/dm-overlaybd-$ver
n=0; fail=0
tap() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; fail=$((fail + 1)); fi; }

cleanup() {
	dkms remove -m dm-overlaybd -v "$ver" --all >/dev/null 2>&1 || true
	rm -rf "$src"
}
trap cleanup EXIT
cleanup
mkdir -p "$src"
# Only what the module build needs: the format core and the kmod sources.
mkdir -p "$src/lib"
cp -a "$top/include" "$top/kmod" "$src/"
cp -a "$top/lib/core" "$src/lib/"
sed "s/#MODULE_VERSION#/$ver/" "$top/dkms.conf" > "$src/dkms.conf"
rm -rf "$src"/kmod/build-*
dkms add -m dm-overlaybd -v "$ver" >/dev/null; tap $? "dkms add dm-overlaybd/$ver"
if dkms build -m dm-overlaybd -v "$ver" -k "$kver" > /tmp/dkms-build.log 2>&1; then
	tap 0 "dkms build -k $kver"
else
	cat /tmp/dkms-build.log; find /var/lib/dkms/dm-overlaybd -name make.log -exec cat {} \; || true
	tap 1 "dkms build -k $kver"
fi
ko=$(find /var/lib/dkms/dm-overlaybd/"$ver" -name 'dm-overlaybd.ko*' | head -n 1)
[ -n "$ko" ] && modinfo "$ko" | grep -q "^vermagic: *$kver "; tap $? "built module has vermagic $kver"
echo "# passed: $((n - fail)) failed: $fail"
[ "$fail" -eq 0 ]
