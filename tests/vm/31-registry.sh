#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 31-registry.sh: lazy images end to end, inside the VM: Debian's
# docker-registry on 127.0.0.1, obd push, overlaybd-fetchd, obd attach on a
# cold cache, the kernel's miss channel.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/31-registry.sh
# Checks: multi-layer images (the reference images; uncompressed, zfile lz4
# and zstd, tar-wrapped layers; an ext4 image of a few hundred files) read
# back equal to obd cat of the local layers, the ext4 mounts and every file
# equals its source, a stack mixing local and remote layers, kill -9 of the
# daemon during parallel reads (a new daemon takes over, no error), and that
# ranges already fetched are not fetched again after a daemon restart and
# a module reload (bytes counted at the registry, through a counting proxy).
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

ref=$OBD_TOP/tests/data/overlaybd-ref
sha_l1l2=fde68d5fbdf5f9582175537e5b942a8debbf33a5d4959cd24fc79adbf424bd81
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
reg_test_begin 31-registry
slow=$(vm_slow)
if [ "$slow" != 1 ]; then
	echo $((30 * slow)) > /sys/module/dm_overlaybd/parameters/hold_timeout
	echo $((300 * slow)) > /sys/module/dm_overlaybd/parameters/request_timeout
fi
cat > svc.json <<JSON
{ "logConfig": { "logLevel": 1 },
  "cacheConfig": { "cacheDir": "$d/cache", "refillSize": 262144 },
  "fetchConfig": { "requestTimeout": $((20 * slow)), "syncIntervalMs": 50 } }
JSON

# not through check: its $(...) would wait for the daemon's output to close
if fetchd_start; then ok "overlaybd-fetchd starts"; else bail "overlaybd-fetchd does not start: $(tail -5 fetchd.log)"; fi
sleep 0.5
second=$(timeout $((10 * slow)) "$fetchd" --service-config svc.json 2>&1)
rc=$?
check_eq "a second daemon exits 1" "$rc" 1
check "... saying the device is held (EBUSY)" bash -c "grep -qi 'another daemon\|busy' <<< '$second'"

# --- the reference images ------------------------------------------------------
check "push the reference layers (zfile, tar(zfile))" bash -c \
	"'$obd' push http://127.0.0.1:$REG/ref/l1l2:v1 '$ref/l1.commit.lz4.zfile' '$ref/l2.commit.lz4.zfile.tar' > ref.json"
via_proxy ref.json ref-px.json
dev=$("$obd" attach --service-config svc.json --name r-ref ref-px.json 2>attach.err)
check_eq "obd attach on a cold cache prints the device" "$dev" /dev/mapper/r-ref
[ -n "$dev" ] || diag "$(cat attach.err)"
vm_on_exit dmsetup remove r-ref
check_eq "reference stack from the registry: sha256" "$(devsha r-ref)" "$sha_l1l2"
check_eq "status: daemon connected" "$(stat_field r-ref daemon)" 1
check "obd list shows the remote layers" bash -c "'$obd' list | grep r-ref | grep -q remote"

# --- generated layers: uncompressed, zstd, tar ------------------------------------
$PY -c "
import os
open('g.raw', 'wb').write(os.urandom(3 << 20) + (b'generated text line\n' * 60000)[:1 << 20])
open('g2.bin', 'wb').write(os.urandom(512 * 1024))
" || bail "cannot write data"
check "build an uncompressed base, a zstd and a tar(lz4) upper" bash -c "
	'$obd' create g.data g.index 8M && '$obd' import --no-progress g.data g.index g.raw &&
	'$obd' commit --no-progress g.data g.index g.commit &&
	'$obd' create u.data u.index 8M && '$obd' write u.data u.index --offset 2M g2.bin &&
	'$obd' commit --no-progress -z --algorithm zstd --bs 64 u.data u.index u.zstd &&
	'$obd' create t.data t.index 8M && '$obd' write t.data t.index --offset 3M g2.bin &&
	'$obd' commit --no-progress -z -t t.data t.index t.tar"
want=$("$obd" cat g.commit u.zstd t.tar | sha256sum | cut -d' ' -f1)
check "push them" bash -c "'$obd' push http://127.0.0.1:$REG/gen/img:v1 g.commit u.zstd t.tar > gen.json"
via_proxy gen.json gen-px.json
check "attach the 3-layer remote image" "$obd" attach --service-config svc.json --name r-gen gen-px.json
vm_on_exit dmsetup remove r-gen
check_eq "uncompressed + zstd + tar(lz4) from the registry: sha256" "$(devsha r-gen)" "$want"

# a stack mixing local and remote layers: remote base and zstd, local tar on top
$PY - "$d" <<'EOF' || bail "cannot write the mixed config"
import json, sys
d = sys.argv[1]
c = json.load(open(d + "/gen-px.json"))
c["lowers"] = c["lowers"][:2] + [{"file": d + "/t.tar"}]
json.dump(c, open(d + "/mixed.json", "w"))
EOF
check "attach a stack of 2 remote layers and 1 local file" \
	"$obd" attach --service-config svc.json --name r-mix mixed.json
vm_on_exit dmsetup remove r-mix
check_eq "mixed stack sha256" "$(devsha r-mix)" "$want"
check_eq "status: remote 2 of 3" "$(stat_field r-mix remote)" 2

# --- an ext4 image with a real tree ---------------------------------------------------
$PY - <<'EOF' || bail "cannot make the tree"
import os, random
random.seed(31)
for i in range(400):
    d = "tree/d%02d/s%d" % (i % 23, i % 4)
    os.makedirs(d, exist_ok=True)
    n = random.choice([0, 1, 100, 4095, 4096, 5000, 20000, 65536, 130000])
    data = os.urandom(n) if i % 3 else (b"line %d of file %d\n" % (i, i)) * (n // 20 + 1)
    open("%s/f%03d.%s" % (d, i, "bin" if i % 3 else "txt"), "wb").write(data[:n])
EOF
check "mkfs.ext4 -d over the tree, import, commit -z -t" bash -c "
	truncate -s 48M fs.raw && mkfs.ext4 -q -F -b 4096 -d tree fs.raw &&
	'$obd' create fs.data fs.index 48M && '$obd' import --no-progress fs.data fs.index fs.raw &&
	'$obd' commit --no-progress -z -t fs.data fs.index fs.tar"
check "push the ext4 image" bash -c "'$obd' push http://127.0.0.1:$REG/fs/ext4:v1 fs.tar > fs.json"
via_proxy fs.json fs-px.json
b0=$(px_bytes)
check "attach the ext4 image on a cold cache" "$obd" attach --service-config svc.json --name r-fs fs-px.json
vm_on_exit dmsetup remove r-fs
mkdir -p mnt
modprobe ext4 2>/dev/null
check "mount it read-only" mount -t ext4 -o ro,noload /dev/mapper/r-fs mnt
vm_on_exit umount "$d/mnt"
one=$(find tree -type f | head -n 1)
sha256sum "mnt/${one#tree/}" > /dev/null 2>&1
lazy=$(( $(px_bytes) - b0 ))
fsz=$(stat -c %s fs.tar)
diag "open one file after mount: $lazy bytes fetched of a $fsz-byte blob"
check "only part of the image was fetched to mount and read one file" test "$lazy" -lt "$fsz"
bad=$(cd tree && find . -type f -print0 | xargs -0 sha256sum | (cd ../mnt && sha256sum -c --quiet 2>&1) | wc -l)
check_eq "every file in the mounted image equals its source ($(find tree -type f | wc -l) files)" "$bad" 0
check_eq "the ext4 file count" "$(find mnt -type f | wc -l)" "$(find tree -type f | wc -l)"
umount mnt
check_eq "the ext4 device sha256 = obd cat" "$(devsha r-fs)" "$("$obd" cat fs.tar | sha256sum | cut -d' ' -f1)"
total=$(( $(px_bytes) - b0 ))
check "the whole read fetched at most 1.05x the blob ($total / $fsz)" test "$((total * 100))" -le "$((fsz * 105))"

# --- kill -9 of the daemon during parallel reads ------------------------------------
check "push the generated image again as another tag (same blobs)" bash -c \
	"'$obd' push http://127.0.0.1:$REG/gen/img:v2 g.commit u.zstd t.tar > gen2.json"
via_proxy gen2.json gen2-px.json
# the blobs are cached already: a fresh cache dir for a cold device
sed -i "s|$d/cache|$d/cache2|" svc.json
mkdir -p cache2
fetchd_start || bail "fetchd with cache2"
check "attach cold (cache2)" "$obd" attach --service-config svc.json --name r-kill gen2-px.json
vm_on_exit dmsetup remove r-kill
curl -s "http://127.0.0.1:$PX/__fault?mode=slow&n=1000&ms=300" > /dev/null
readers=()
for w in 0 1 2 3; do
	(dd if=/dev/mapper/r-kill bs=64K skip=$((w * 32)) count=32 iflag=direct status=none |
		sha256sum | cut -d' ' -f1 > "part$w") &
	readers+=($!)
done
sleep 2
kill -9 "$fetchd_pid"
wait "$fetchd_pid" 2>/dev/null
fetchd_pid=
ok "kill -9 of overlaybd-fetchd during 4 parallel readers"
sleep 1
curl -s "http://127.0.0.1:$PX/__fault?mode=none" > /dev/null
if fetchd_start; then ok "a new daemon starts"; else not_ok "a new daemon starts"; fi
wait "${readers[@]}"
good=0
for w in 0 1 2 3; do
	exp=$("$obd" cat --offset $((w * 2))M --length 2M g.commit u.zstd t.tar | sha256sum | cut -d' ' -f1)
	[ "$(cat "part$w")" = "$exp" ] && good=$((good + 1))
done
check_eq "every reader got correct bytes across the kill -9" "$good" 4
check_eq "no I/O error on the device" "$(stat_field r-kill io_errors)" 0
check_eq "the rest reads right too" "$(devsha r-kill)" "$want"

# --- durability: daemon restart and module reload fetch nothing again ----------------
sleep 1	# the daemon's sync interval has passed
for n in r-ref r-gen r-mix r-kill; do dmsetup remove "$n" 2>/dev/null; done
umount mnt 2>/dev/null
dmsetup remove r-fs 2>/dev/null
fetchd_stop
check "module reloads with no device left" bash -c "rmmod dm_overlaybd"
vm_load_module || bail "reload"
fetchd_start || bail "fetchd after reload"
# the first cache dir: its daemon was stopped with SIGTERM, so all it
# fetched is durable (cache2 lost what the killed daemon had not synced yet:
# that is fetched again, by design)
sed -i "s|$d/cache2|$d/cache|" svc.json
b1=$(px_bytes)
check "attach the 3-layer image again after the reload" \
	"$obd" attach --service-config svc.json --name r-again gen-px.json
vm_on_exit dmsetup remove r-again
check "attach the ext4 image again" "$obd" attach --service-config svc.json --name r-fs2 fs-px.json
vm_on_exit dmsetup remove r-fs2
check_eq "same bytes (3 layers)" "$(devsha r-again)" "$want"
check_eq "same bytes (ext4)" "$(devsha r-fs2)" "$("$obd" cat fs.tar | sha256sum | cut -d' ' -f1)"
check_eq "nothing fetched again after a daemon restart and a module reload" "$(( $(px_bytes) - b1 ))" 0
dmsetup remove r-again
dmsetup remove r-fs2
fetchd_stop
check "the daemon stopped cleanly (SIGTERM)" bash -c "! grep -qi 'assert\|sanitizer\|segv' fetchd.log"

vm_dmesg_check 31-registry
tap_done
