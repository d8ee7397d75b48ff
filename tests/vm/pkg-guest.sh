#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# pkg-guest.sh: the in-guest half of scripts/pkg-check.sh (the Debian
# packages). $OBD_SHARE/upper.tar is what installing dm-overlaybd-dkms and
# overlaybd-tools added to a clean root (the upper layer of the host's
# install root: the packages' files, dkms's build of the module for each test
# kernel, the user and the enabled unit). On the running test kernel:
#   - modprobe dm-overlaybd loads the module dkms built and installed
#     (modprobe -d over the install root, the kernel's own modules bound in);
#   - the installed obd attaches the reference image: its sha256;
#   - the installed overlaybd-fetchd starts as the installed unit's ExecStart
#     says (no systemctl: the unit's own command line, the packaged config),
#     takes the miss channel, runs as the user the package made, and stops
#     cleanly on SIGTERM.
# Not in the suite's list (no number): scripts/pkg-check.sh boots it.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

ref=$OBD_TOP/tests/data/overlaybd-ref
sha_l1l2=fde68d5fbdf5f9582175537e5b942a8debbf33a5d4959cd24fc79adbf424bd81
kv=$(uname -r)
R=/tmp/pkgroot
PY=/usr/bin/python3
vm_dmesg_mark pkg-guest
d=$(vm_tmpdir)
cd "$d" || bail "cd $d"

mkdir -p $R && tar -xpf "$OBD_SHARE/upper.tar" -C $R || bail "cannot unpack the install root"
# The upper layer holds what changed; the root's own top-level links (merged
# /usr: lib -> usr/lib, ...) are in the lower one: the same here.
for l in /*; do
	[ -L "$l" ] && [ ! -e "$R$l" ] && [ ! -L "$R$l" ] && ln -s "$(readlink "$l")" "$R$l"
done
ko=$(ls $R/lib/modules/"$kv"/updates/dkms/dm-overlaybd.ko* 2>/dev/null | head -n 1)
check "dkms installed the module for $kv" test -n "$ko" || bail "no module for $kv"

# The install root's index of the package's module (depmod of that file
# alone: a whole kernel tree takes a minute under TCG), its dependency
# dm-mod loaded from the kernel's own tree first.
check "modprobe dm-mod (the kernel's)" modprobe dm-mod
check "depmod of the installed module" depmod -b $R "$kv" "$ko"
check "modprobe dm-overlaybd (the dkms-built module)" modprobe -d $R dm-overlaybd
vm_on_exit rmmod dm_overlaybd
[ -e /dev/mapper/control ] || dmsetup mknodes >/dev/null 2>&1
check_eq "the loaded module is the package's (srcversion)" \
	"$(cat /sys/module/dm_overlaybd/srcversion 2>/dev/null)" "$(modinfo -F srcversion "$ko")"
check "the miss channel exists" test -c /dev/overlaybd

obd=$R/usr/bin/obd
check "the installed obd runs ($("$obd" version 2>&1))" "$obd" version
dev=$("$obd" attach --name pkg-ref "$ref/l1.commit.lz4.zfile" "$ref/l2.commit.lz4.zfile.tar" 2>attach.err)
check_eq "obd attach of the reference image prints the device" "$dev" /dev/mapper/pkg-ref
[ -n "$dev" ] || diag "$(cat attach.err)"
vm_on_exit dmsetup remove pkg-ref
check_eq "the reference image's sha256" "$(sha256sum /dev/mapper/pkg-ref 2>/dev/null | cut -d' ' -f1)" "$sha_l1l2"

# The daemon as the unit starts it. The guest's root is read-only: the cache
# (under /var/cache in the packaged config) and the user database come from
# tmpfs and the install root.
unit=$R/lib/systemd/system/overlaybd-fetchd.service
execstart=$(sed -n 's/^ExecStart=//p' "$unit")
check "the unit has an ExecStart ($execstart)" test -n "$execstart"
mount -t tmpfs tmpfs /var/cache && vm_on_exit umount /var/cache
mount --bind $R/etc/passwd /etc/passwd && vm_on_exit umount /etc/passwd
mount --bind $R/etc/group /etc/group && vm_on_exit umount /etc/group
# shellcheck disable=SC2086
set -- $execstart
bin=$1
shift
"$R$bin" --service-config $R/etc/overlaybd/overlaybd.json "$@" > fetchd.log 2>&1 &
pid=$!
st=''
for _ in $(seq 100); do
	st=$(dmsetup status pkg-ref 2>/dev/null)
	case $st in *" daemon 1"*) break ;; esac
	kill -0 $pid 2>/dev/null || break
	sleep 0.2
done
case $st in *" daemon 1"*) ok "the installed daemon holds the miss channel (status: daemon 1)" ;;
*) not_ok "the installed daemon holds the miss channel"; diag "$st" "$(tail -n 20 fetchd.log)" ;; esac
check_eq "it runs as the package's user" "$(ps -o user= -p $pid 2>/dev/null | tr -d ' ')" overlaybd
cache=$($PY -c "import json; print(json.load(open('$R/etc/overlaybd/overlaybd.json'))['cacheConfig']['cacheDir'])" 2>/dev/null)
check_eq "the cache directory of the packaged config belongs to it" \
	"$(stat -c %U "$cache" 2>/dev/null)" overlaybd
kill -TERM $pid
wait $pid
rc=$?
check_eq "SIGTERM: it exits 0" "$rc" 0
[ "$rc" = 0 ] || diag "$(tail -n 20 fetchd.log)"

check "dmsetup remove" dmsetup remove pkg-ref
check "rmmod dm_overlaybd" rmmod dm_overlaybd
vm_dmesg_check pkg-guest
tap_done
