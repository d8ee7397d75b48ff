#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build dm-overlaybd.ko for one test kernel with W=1 and sparse (C=1), from
# scratch, and fail on any compiler or sparse warning.
#   scripts/kmod-check.sh 6.1|6.12
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
k=${1:?usage: kmod-check.sh 6.1|6.12}
kdir=$("$top/scripts/kernels.sh" kdir "$k") || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
n=0; fail=0
tap() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; fail=$((fail + 1)); fi; }

make -s -C "$top/kmod" clean KDIR="$kdir" >/dev/null 2>&1
make -C "$top/kmod" KDIR="$kdir" W=1 C=1 >"$log" 2>&1
tap $? "kmod builds against $k ($kdir)"
# "Skipping BTF generation" (6.1 ships no vmlinux) is informational.
warnings=$(grep -E '(warning|error):' "$log" | grep -v 'Skipping BTF' || true)
[ -z "$warnings" ]; tap $? "no compiler or sparse warnings with W=1 C=1 ($k)"
[ -n "$warnings" ] && echo "$warnings" | sed 's/^/# /'
ko=$top/kmod/build-$("$top/scripts/kernels.sh" ver "$k")/dm-overlaybd.ko
[ -f "$ko" ] && modinfo -F depends "$ko" | grep -qx 'dm-mod'; tap $? "module depends on dm-mod only"
echo "# passed: $((n - fail)) failed: $fail"
[ "$fail" -eq 0 ]
