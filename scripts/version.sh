#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# version.sh: print dm-overlaybd's version, the one in the top entry of
# debian/changelog: the one place it is written. The Makefile compiles it into
# obd and overlaybd-fetchd (OBD_VERSION), dh_dkms into the dkms package's
# dkms.conf, `make dkms-install` and scripts/dkms-check.sh into theirs.
top=$(cd "$(dirname "$0")/.." && pwd)
v=$(sed -n '1s/^[a-z0-9.+-]* (\([^)]*\)).*/\1/p' "$top/debian/changelog")
[ -n "$v" ] || { echo "version.sh: no version in $top/debian/changelog" >&2; exit 1; }
echo "$v"
