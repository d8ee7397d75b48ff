#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 25-hostile-sizes.sh: layers whose counts ask the kernel for huge allocations.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/25-hostile-sizes.sh
# Crafted from small valid layers (build/obd) into sparse files on tmpfs:
# ZFile headers whose block count asks for a jump table past INT_MAX bytes
# (2.4 GB) and for ~1.2 GB, both with a data area that could hold that many
# blocks; a block count the data area before index_offset cannot hold; an
# upper index file past the format's 128M records; a stack of
# two layers of 250,000 valid records each loaded under a small
# index_budget_mb (the module-wide budget for parsed indexes) and loaded
# again with the default budget. Each refused table: dmsetup create fails,
# the kernel log names the refusal (one object's cap, the budget, or the
# data area), no device is left, no parsed layer leaks, and dmesg has no
# WARN, no kvmalloc/vmalloc allocation failure trace.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
PY=/usr/bin/python3
param=/sys/module/dm_overlaybd/parameters
[ -x "$obd" ] || bail "$obd missing: run make first"
read -r cl _ </proc/sys/kernel/printk
vm_on_exit dmesg -n "$cl"
dmesg -n 1
vm_test_begin 25-hostile-sizes
vm_on_exit sh -c "echo 0 >$param/index_budget_mb"
BAD='BUG|WARNING|Oops|KASAN|refcount|Call Trace|vmalloc error|kvmalloc|page allocation failure'

check "build valid layers" bash -c "
	head -c 65536 /dev/urandom >r1 &&
	'$obd' create a.data a.index 1M &&
	'$obd' write a.data a.index --offset 0 r1 &&
	'$obd' commit --no-progress a.data a.index l.commit &&
	'$obd' commit --no-progress -z a.data a.index l.zfile &&
	'$obd' create u.data u.index 1M" || bail "cannot build layers"

"$PY" - "$OBD_TOP/tests/vm" <<'PYEOF' || bail "generator failed"
import os, struct, sys
sys.path.insert(0, sys.argv[1])
from remote_lib import crc32c_raw as crc32c   # overlaybd's CRC32C, one copy
def p64(b, off, v): b[off:off + 8] = struct.pack("<Q", v)
def p32(b, off, v): b[off:off + 4] = struct.pack("<I", v)
def g64(b, off): return struct.unpack_from("<Q", b, off)[0]

# ZFile: the header carries the index (HEADER_OVERWRITE); sparse data area,
# jump table and trailer. verify off: each block needs 1 stored byte.
Z = bytearray(open("l.zfile", "rb").read())
def zfile(name, n, data_bytes):
    h = bytearray(Z[:512])
    ds = 512
    p64(h, 40, ds + data_bytes)          # index_offset
    p64(h, 48, n)                        # index_size (blocks)
    p64(h, 56, n * 4096)                 # original_file_size, 4 KiB blocks
    h[88] = 0                            # verify
    p32(h, 28, 0)
    p32(h, 28, crc32c(bytes(h)))
    with open(name, "wb") as f:
        f.write(h)
        f.truncate(ds + data_bytes + 4 * n + 512)
zfile("zf-intmax", 600000000, 600000000)     # 2.4 GB jump table
zfile("zf-gib", 300000000, 300000000)        # 1.2 GB jump table
zfile("zf-stored", 100000000, 1000)          # 1000 bytes cannot hold 1e8 blocks

# Upper index: the valid empty RW index, grown past the reference's 128M
# records (sparse). (Fewer zero records are padding: the loader counts the
# real ones before it allocates, so their number does not size anything.)
os.truncate("u.index", 4096 + 130000000 * 16)

# Two LSMT layers of 250,000 zeroed 1-sector records each, interleaved
L = bytearray(open("l.commit", "rb").read())
tr = len(L) - 4096
io = g64(L, tr + 32)
N = 250000
for k in range(2):
    out = bytearray(L[:io])
    out += b"".join(struct.pack("<QQ", (4 * i + 2 * k) | 1 << 50, 8 | 1 << 55) for i in range(N))
    t = bytearray(L[tr:])
    p64(t, 32, io)
    p64(t, 40, N)
    p64(t, 48, 1 << 30)                  # virtual size 1 GiB
    out += t
    open("big%d.commit" % k, "wb").write(out)
PYEOF

p0=$(cat $param/layers_parsed)
nmark=0
# refused <desc> <ERE> <table> [rw]
refused() {
	local desc=$1 want=$2 table=$3 m err log bad="" ro=--readonly
	[ "${4:-}" = rw ] && ro=
	m=hs$((++nmark)); vm_dmesg_mark "$m"
	if err=$(dmsetup create obd25 $ro --table "$table" 2>&1); then
		bad="accepted"
		dmsetup remove obd25
	fi
	log=$(vm_dmesg_since "$m")
	[[ $log =~ $want ]] || bad="$bad; kernel log does not name '$want'"
	local named=${BASH_REMATCH[0]:-}
	[ -n "$err" ] || bad="$bad; dmsetup printed nothing on stderr"
	dmsetup info obd25 >/dev/null 2>&1 && { bad="$bad; device left behind"; dmsetup remove obd25; }
	[ "$(<$param/layers_parsed)" = "$p0" ] || bad="$bad; layers_parsed $(<$param/layers_parsed), expected $p0"
	[[ $log =~ $BAD ]] && bad="$bad; dmesg: ${BASH_REMATCH[0]}"
	if [ -z "$bad" ]; then
		ok "$desc: refused, '$named'"
	else
		not_ok "$desc:${bad#;}"
		diag "dmsetup: $err" "$log"
	fi
}

refused "ZFile asking for a 2.4 GB jump table (past INT_MAX)" \
	"refusing [0-9]+ bytes for a layer index" "0 2048 overlaybd 1 $d/zf-intmax"
refused "ZFile asking for a 1.2 GB jump table" \
	"refusing [0-9]+ bytes for a layer index" "0 2048 overlaybd 1 $d/zf-gib"
refused "ZFile asking for a 1.2 GB jump table, layer 2 of 3" \
	"refusing [0-9]+ bytes for a layer index" "0 2048 overlaybd 3 $d/l.commit $d/zf-gib $d/l.zfile"
refused "ZFile with more blocks than its data area holds" \
	"index_size: got 100000000 blocks.*hold at most 1000" "0 2048 overlaybd 1 $d/zf-stored"
refused "upper index of 130M records (over the 128M the format allows)" \
	"RW index records: got 130000000, expected <= 128000000" \
	"0 2048 overlaybd 1 $d/l.commit 3 upper $d/u.data $d/u.index" rw

# the module-wide budget: two 250,000-record layers need about 12 MiB parsed
echo 8 >$param/index_budget_mb
refused "stack of two 250k-record layers over index_budget_mb=8" \
	"over the budget of 8 MiB" "0 2097152 overlaybd 2 $d/big0.commit $d/big1.commit"
echo 0 >$param/index_budget_mb
m=hs-ok; vm_dmesg_mark "$m"
check "the same stack loads with the default budget" \
	dmsetup create obd25 --readonly --table "0 2097152 overlaybd 2 $d/big0.commit $d/big1.commit"
check_eq "its first MiB reads as zeros (zeroed records)" \
	"$(head -c 1048576 /dev/mapper/obd25 | tr -d '\0' | wc -c)" 0
dmsetup remove obd25 2>/dev/null
check_eq "no device left behind" "$(dmsetup ls --target overlaybd 2>&1)" "No devices found"
check_eq "no parsed layers left" "$(cat $param/layers_parsed)" 0
vm_dmesg_check 25-hostile-sizes
tap_done
