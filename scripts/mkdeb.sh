#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# mkdeb.sh OUTDIR: `make deb`. Builds the Debian packages dm-overlaybd-dkms
# and overlaybd-tools with dpkg-buildpackage (debian/) in a clean copy of the
# tree (the files git tracks or would track; without git, all but build
# output), then checks them with lintian: any error fails. The .deb,
# .buildinfo and .changes files, build.log and lintian.log land in OUTDIR.
set -euo pipefail
ME=${0##*/}
die() { echo "$ME: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $ME OUTDIR"
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
ver=$("$top/scripts/version.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=$work/dm-overlaybd-$ver
mkdir "$src"

if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		xargs -0 cp -a --parents -t "$src")
else
	tar -C "$top" --exclude=./.git --exclude='./build*' --exclude='./kmod/build-*' -cf - . |
		tar -C "$src" -xf -
fi
rm -rf "$src"/build "$src"/build-* "$src"/kmod/build-*

echo "$ME: dpkg-buildpackage dm-overlaybd $ver (log: $out/build.log)"
rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -us -uc -b) > "$out/build.log" 2>&1; then
	tail -n 30 "$out/build.log" >&2
	die "dpkg-buildpackage failed; see $out/build.log"
fi
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out/"

# lintian: errors fail (OBD_DEB_LINTIAN=0 skips it: the package test's second build).
[ "${OBD_DEB_LINTIAN:-1}" = 0 ] && { ls "$out"/*.deb; exit 0; }
changes=$(ls "$out"/*.changes)
if ! lintian --fail-on error --info "$changes" > "$out/lintian.log" 2>&1; then
	cat "$out/lintian.log" >&2
	die "lintian reports errors; see $out/lintian.log"
fi
sed 's/^/lintian: /' "$out/lintian.log"
ls "$out"/*.deb
