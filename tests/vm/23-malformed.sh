#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 23-malformed.sh: malformed layers against the overlaybd target.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/23-malformed.sh
# Small valid layers (plain LSMT, ZFile lz4 4 KiB, tar(ZFile)) are built with
# build/obd, then patched byte by byte (python3): bad magic, truncation, index
# records out of range / unsorted / overlapping, oversized counts, bad virtual
# size, unsealed trailer, bad ZFile header digest, jump table (CRC, sizes),
# header fields, bad tar headers. For each, as the only layer and as the middle
# of three: `dmsetup create` fails, the kernel log names the problem (the dm
# ioctl itself only returns an errno to dmsetup), `obd attach` names it on
# stderr, no device is left behind, no parsed layer leaks, dmesg stays clean.
# Then a ZFile with one corrupt block (payload) and one corrupt block CRC: only
# reads touching those blocks fail with EIO, crc_errors counts them, and with
# no_verify the block whose CRC alone is bad reads correctly.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
PY=/usr/bin/python3
param=/sys/module/dm_overlaybd/parameters/layers_parsed
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_dmesg_mark 23-malformed
# Every refused table logs errors; keep them off the (slow, serial) console. The
# log itself, checked below and by vm-run.sh, is unchanged.
read -r cl _ </proc/sys/kernel/printk
vm_on_exit dmesg -n "$cl"
dmesg -n 1
vm_load_module || bail "cannot load dm-overlaybd"
vm_on_exit vm_unload_module
d=$(vm_tmpdir)
vm_on_exit rm -rf "$d"

# --- valid 1 MiB layers: 64 KiB at 0, 8 KiB at 256K and 512K, 4 KiB zeroed at 768K
cd "$d" || bail "cd $d"
head -c 65536 /dev/urandom >r1
head -c 8192 /dev/urandom >r2
check "build valid layers" bash -c "
	'$obd' create a.data a.index 1M &&
	'$obd' write a.data a.index --offset 0 r1 &&
	'$obd' write a.data a.index --offset 512K r2 &&
	'$obd' write a.data a.index --offset 256K r2 &&
	'$obd' discard a.data a.index --offset 768K --length 4K &&
	'$obd' commit --no-progress a.data a.index l.commit &&
	'$obd' commit --no-progress -z a.data a.index l.zfile &&
	'$obd' commit --no-progress -z -t a.data a.index l.tar &&
	'$obd' cat --no-progress -o good.img l.commit" || bail "cannot build layers"
good=$(sha256sum <good.img | cut -d' ' -f1)
for l in l.commit l.zfile l.tar; do
	check "valid $l loads" dmsetup create obd23-ok --readonly --table "0 2048 overlaybd 1 $d/$l"
	check_eq "valid $l content" "$(sha256sum </dev/mapper/obd23-ok | cut -d' ' -f1)" "$good"
	dmsetup remove obd23-ok
done
p0=$(cat $param)
check_eq "no parsed layers after removing the valid devices" "$p0" 0

# --- the malformed files: bad-<case>, and "cases": <case> TAB <ERE of the problem>
mkdir bad
"$PY" - "$d" "$d/bad" <<'PYEOF' || bail "malformed-layer generator failed"
import os, struct, sys
src, out = sys.argv[1], sys.argv[2]
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)
def crc32c(b, c=0):
    for x in b:
        c = T[(c ^ x) & 0xff] ^ (c >> 8)
    return c
def rd(n):
    return bytearray(open(os.path.join(src, n), "rb").read())
cases = []
def emit(name, data, want, base):
    p = os.path.join(out, "bad-" + name)
    open(p, "wb").write(data)
    cases.append((name, want))
def p64(b, off, v): b[off:off + 8] = struct.pack("<Q", v)
def p32(b, off, v): b[off:off + 4] = struct.pack("<I", v)
def g64(b, off): return struct.unpack_from("<Q", b, off)[0]

# --- LSMT (plain committed) ---
L = rd("l.commit")
tr = len(L) - 4096
io, isz = g64(L, tr + 32), g64(L, tr + 40)
def rec(b, i):
    w0, w1 = struct.unpack_from("<QQ", b, io + 16 * i)
    return [w0 & ((1 << 50) - 1), w0 >> 50, w1 & ((1 << 55) - 1), (w1 >> 55) & 1]
def setrec(b, i, r):
    struct.pack_into("<QQ", b, io + 16 * i, r[0] | r[1] << 50, r[2] | r[3] << 55)
b = bytearray(L); b[0] ^= 0xff; emit("lsmt-magic0", b, "header magic0", "l")
b = bytearray(L); b[12] ^= 0xff; emit("lsmt-magic1", b, "header magic1", "l")
b = bytearray(L); b[tr + 1] ^= 0xff; emit("lsmt-trailer-magic", b, "trailer magic0", "l")
emit("trunc-empty", b"", "file size", "l")
emit("trunc-100", L[:100], "file size", "l")
emit("trunc-half", L[:len(L) // 2], "trailer magic0", "l")
emit("trunc-tail", L[:len(L) - 512], "trailer magic0", "l")
b = bytearray(L); r = rec(b, 0); r[2] = io // 512 + 1; setrec(b, 0, r); emit("idx-moffset-past-index", b, "record 0 moffset", "l")
b = bytearray(L); r = rec(b, 1); r[2] = 2; setrec(b, 1, r); emit("idx-moffset-in-header", b, "record 1 moffset", "l")
b = bytearray(L); r0, r1 = rec(b, 0), rec(b, 1); setrec(b, 0, r1); setrec(b, 1, r0); emit("idx-unsorted", b, "not sorted", "l")
b = bytearray(L); r1 = rec(b, 1); r1[0] = rec(b, 0)[0] + 1; setrec(b, 1, r1); emit("idx-overlap", b, "overlaps", "l")
b = bytearray(L); p64(b, tr + 40, 1 << 40); emit("count-huge", b, "trailer index_size", "l")
b = bytearray(L); p64(b, tr + 40, 1000001); emit("count-1M", b, "trailer index_size", "l")
b = bytearray(L); p64(b, tr + 40, isz + 1); emit("count-past-trailer", b, "trailer index_(offset|size)", "l")
b = bytearray(L); p64(b, tr + 32, len(L)); emit("index-offset-past-end", b, "trailer index_offset", "l")
b = bytearray(L); p64(b, tr + 48, 0); emit("vsize-zero", b, "virtual.size", "l")
b = bytearray(L); p64(b, tr + 48, (1 << 20) + 1); emit("vsize-odd", b, "virtual.size", "l")
b = bytearray(L); p32(b, tr + 28, 0x02); emit("trailer-not-sealed", b, "trailer flags", "l")

# --- ZFile ---
Z = rd("l.zfile")
def zfix(b, h=0):
    p32(b, h + 28, 0)
    p32(b, h + 28, crc32c(bytes(b[h:h + 512])))
zio, zn = g64(Z, 40), g64(Z, 48)
def jfix(b):
    p32(b, 64, crc32c(bytes(b[zio:zio + 4 * zn])))
    zfix(b)
b = bytearray(Z); b[1] ^= 0xff; emit("zf-magic", b, "magic0", "z")
b = bytearray(Z); b[300] ^= 0x01; emit("zf-digest", b, "header digest", "z")
b = bytearray(Z); b[zio + 5] ^= 0x10; emit("zf-jump-crc", b, "index_crc", "z")
b = bytearray(Z); p32(b, zio, 3); jfix(b); emit("zf-jump-tiny-block", b, "block 0 stored size", "z")
b = bytearray(Z); p32(b, zio + 4 * (zn - 1), struct.unpack_from("<I", b, zio + 4 * (zn - 1))[0] + 100000); jfix(b); emit("zf-jump-past-index", b, "stored size|jump table", "z")
b = bytearray(Z); p64(b, 48, 1 << 40); zfix(b); emit("zf-count-huge", b, "header index_size", "z")
b = bytearray(Z); p32(b, 72, 1 << 17); zfix(b); emit("zf-block-size", b, "block_size", "z")
b = bytearray(Z); b[76] = 0; zfix(b); emit("zf-algo-lzo", b, "algo", "z")
b = bytearray(Z); p64(b, 56, g64(b, 56) * 4); zfix(b); emit("zf-orig-size", b, "index_size|original", "z")
emit("zf-trunc", Z[:len(Z) // 2], "index_offset|trailer", "z")
# --- tar ---
Tr = rd("l.tar")
b = bytearray(Tr); b[1024 + 3] ^= 0x01; emit("tar-cksum", b, "tar|ustar", "t")
b = bytearray(Tr)
pax = bytes(b[512:1024]).rstrip(b"\0")
n = pax.split(b"size=")[1].rstrip(b"\n")
b[512:512 + len(pax)] = pax.replace(b"size=" + n, b"size=" + b"9" * len(n))
emit("tar-pax-size", b, "payload size", "t")
open(os.path.join(out, "cases"), "w").write("".join("%s\t%s\n" % c for c in cases))
PYEOF
[ -s bad/cases ] || bail "no malformed cases generated"
diag "$(wc -l <bad/cases) malformed layers"

# One TAP line per case and way of loading it: fails, names the problem, leaves nothing.
refused() {	# <desc> <ERE> <table>  (bash matching: process starts are slow under TCG)
	local desc=$1 want=$2 table=$3 m err log bad=""
	m=mal$((++nmark)); vm_dmesg_mark "$m"
	if err=$(dmsetup create obd23-bad --readonly --table "$table" 2>&1); then
		bad="accepted"
		dmsetup remove obd23-bad
	fi
	log=$(vm_dmesg_since "$m")
	[[ $log == *overlaybd* && $log =~ $want ]] || bad="$bad; kernel log does not name '$want'"
	local named=${BASH_REMATCH[0]:-}
	[ -n "$err" ] || bad="$bad; dmsetup printed nothing on stderr"
	dmsetup info obd23-bad >/dev/null 2>&1 && { bad="$bad; device left behind"; dmsetup remove obd23-bad; }
	[ ! -e /dev/mapper/obd23-bad ] || bad="$bad; /dev/mapper node left behind"
	[ "$(<$param)" = "$p0" ] || bad="$bad; layers_parsed $(<$param), expected $p0"
	[[ $log =~ $VM_DMESG_BAD ]] && bad="$bad; dmesg: ${BASH_REMATCH[0]}"
	if [ -z "$bad" ]; then
		ok "$desc: refused, '$named'"
	else
		not_ok "$desc:${bad#;}"
		diag "dmsetup: $err" "$log"
	fi
}
nmark=0
while IFS=$'\t' read -r c want; do
	f=$d/bad/bad-$c
	refused "$c (only layer)" "$want" "0 2048 overlaybd 1 $f"
	# a lower layer's virtual size does not matter (the top-most non-zero one counts)
	case $c in vsize-*) ;; *)
		refused "$c (layer 1 of 3)" "$want" "0 2048 overlaybd 3 $d/l.commit $f $d/l.tar" ;;
	esac
	err=$("$obd" attach --name obd23-bad "$f" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" -ne 0 ] && [[ $err =~ $want ]] && ! dmsetup info obd23-bad >/dev/null 2>&1; then
		ok "$c: obd attach refuses: ${err#obd: }"
	else
		not_ok "$c: obd attach refuses and names '$want' (exit $rc)"
		diag "$err"
		dmsetup remove obd23-bad 2>/dev/null
	fi
done <bad/cases
check_eq "no device left behind" "$(dmsetup ls --target overlaybd 2>&1)" "No devices found"
check_eq "no parsed layers left" "$(cat $param)" 0

# --- one corrupt ZFile block ----------------------------------------------------------
# l.zfile is lz4, 4 KiB blocks, CRC on; the data record [0, 64K) sits at LSMT file
# byte 4096, so ZFile block k holds virtual bytes [(k-1)*4K, k*4K) for k = 1..16.
# Block 5: a payload byte flipped (virtual 16K..20K); block 9: its CRC flipped (32K..36K).
cp l.zfile crc.zfile
"$PY" - crc.zfile <<'PYEOF' || bail "cannot corrupt crc.zfile"
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
io, n = struct.unpack_from("<QQ", b, 40)
j = struct.unpack_from("<%dI" % n, b, io)
start = lambda k: 512 + sum(j[:k])
b[start(5) + (j[5] - 4) // 2] ^= 0x55       # payload
b[start(9) + j[9] - 2] ^= 0x55              # stored CRC
open(sys.argv[1], "wb").write(b)
PYEOF
rd() {	# <dev> <offset> <bytes>: sha256 of an O_DIRECT read, or "EIO" / the error
	dd if="/dev/mapper/$1" bs="$3" count=1 skip="$2" iflag=direct,skip_bytes status=none 2>"$d/dd.err" |
		sha256sum | cut -d' ' -f1 | { read -r s; if [ -s "$d/dd.err" ]; then
			grep -q 'Input/output error' "$d/dd.err" && echo EIO || cat "$d/dd.err"; else echo "$s"; fi; }
}
want() { dd if=good.img bs="$2" count=1 skip="$1" iflag=skip_bytes status=none | sha256sum | cut -d' ' -f1; }
vm_dmesg_mark 23-crc
check "corrupt ZFile: device loads (headers valid)" \
	dmsetup create obd23-crc --readonly --table "0 2048 overlaybd 1 $d/crc.zfile"
check_eq "status before reads: crc_errors 0" "$(stat_field obd23-crc crc_errors)" 0
check_eq "read of block 5 (16K+4K) fails with EIO" "$(rd obd23-crc 16384 4096)" EIO
check_eq "read of block 9 (bad stored CRC) fails with EIO" "$(rd obd23-crc 32768 4096)" EIO
check_eq "64 KiB read across block 5 fails with EIO" "$(rd obd23-crc 0 65536)" EIO
check_eq "512 B read inside block 5 fails with EIO" "$(rd obd23-crc 17408 512)" EIO
for r in "12288 4096" "20480 4096" "36864 4096" "20480 12288" "262144 8192" "524288 524288"; do
	set -- $r
	check_eq "read $2 bytes at $1 (other blocks) is correct" "$(rd obd23-crc "$1" "$2")" "$(want "$1" "$2")"
done
c=$(stat_field obd23-crc crc_errors); e=$(stat_field obd23-crc io_errors)
check "status: crc_errors > 0 ($c)" [ "${c:-0}" -gt 0 ]
check "status: io_errors > 0 ($e)" [ "${e:-0}" -gt 0 ]
check "kernel log names the layer and block 5" bash -c "grep -q 'crc.zfile.*block 5' <<<'$(vm_dmesg_since 23-crc)'"
check "sha256sum of the whole device fails" bash -c "! sha256sum /dev/mapper/obd23-crc"
dmsetup remove obd23-crc
check "no_verify: device loads" \
	dmsetup create obd23-nv --readonly --table "0 2048 overlaybd 1 $d/crc.zfile 1 no_verify"
check_eq "no_verify: block with only a bad stored CRC reads correctly" \
	"$(rd obd23-nv 32768 4096)" "$(want 32768 4096)"
check_eq "no_verify: crc_errors stays 0" "$(stat_field obd23-nv crc_errors)" 0
r=$(rd obd23-nv 16384 4096)
[ "$r" != "$(want 16384 4096)" ] && ok "no_verify: corrupt payload does not read as the good data ($r)" ||
	not_ok "no_verify: corrupt payload read as the good data"
dmsetup remove obd23-nv
check_eq "no parsed layers left" "$(cat $param)" 0
check "rmmod" rmmod dm_overlaybd
vm_dmesg_check 23-malformed
tap_done
