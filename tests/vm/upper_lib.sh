# SPDX-License-Identifier: GPL-2.0-only
#
# Shared by the writable-upper VM tests (sourced after lib.sh): the tools,
# the reference two-layer stack (64 MiB) they write over, and helpers.
#   table DATA INDEX|-   the dm table of the stack with that upper
#   shaof FILE / devsha NAME   sha256 of a file / of /dev/mapper/NAME
obd=$OBD_TOP/build/obd
PY=/usr/bin/python3
fsx="$PY $OBD_TOP/tests/vm/upper_fsx.py"
REF=$OBD_TOP/tests/data/overlaybd-ref
L1=$REF/l1.commit
L2=$REF/l2.commit.lz4.zfile.tar
len=131072	# 64 MiB in sectors
[ -x "$obd" ] || bail "$obd missing: run make first"
table() { echo "0 $len overlaybd 2 $L1 $L2 3 upper $1 $2"; }
shaof() { sha256sum "$1" | cut -d' ' -f1; }
devsha() { sha256sum "/dev/mapper/$1" | cut -d' ' -f1; }
