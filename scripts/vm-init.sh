#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0-only
#
# /init of the test initramfs built by scripts/vm-run.sh (busybox-static only).
# Loads the virtio/9p modules listed in /mods/order (dependency order, computed on
# the host), mounts the host root read-only at /newroot, the run's writable share at
# /newroot/mnt/share, the cached kernel's modules over /lib/modules/<ver>, then runs
# /mnt/share/.obd-vm/run.sh chrooted, stores its status and dmesg in the share and
# powers off. Every step that fails prints "obd-vm: FATAL ..." and powers off: the
# host reports a missing status file.

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /newroot
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "obd-vm: $*" >/dev/console; }
fatal() {
	say "FATAL $*"
	sync
	poweroff -f
	sleep 10
}

read -r up _ </proc/uptime
say "init start uptime=${up}s kernel=$(uname -r)"

while read -r m; do
	[ -n "$m" ] || continue
	insmod "/mods/$m" || fatal "insmod $m failed"
done </mods/order

# version=9p2000.L gives POSIX semantics; msize 256 KiB cuts round trips under TCG.
P9="trans=virtio,version=9p2000.L,msize=262144"
mount -t 9p -o "$P9,ro,cache=loose" hostroot /newroot || fatal "mount 9p hostroot failed"
R=/newroot
# A working directory below /tmp, /run or /mnt (hidden below by the tmpfs
# mounts that follow): keep a handle on it now, put it back afterwards.
cwd=$(sed -n 's/.* obd_cwd=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$cwd" ]; then
	mkdir -p /cwd
	mount -o bind "$R$cwd" /cwd || fatal "bind $cwd failed"
fi
# The host's /mnt and /lib/modules stay hidden: tmpfs gives writable mount points.
mount -t tmpfs -o mode=0755 tmpfs $R/mnt || fatal "tmpfs on /mnt failed"
mkdir -p $R/mnt/share
mount -t 9p -o "$P9" share $R/mnt/share || fatal "mount 9p share failed"
C=$R/mnt/share/.obd-vm
[ -r $C/env ] || fatal "no $C/env"
. $C/env	# OBD_VM_MODDIR: host path of this kernel's cached /lib/modules/<ver>

kver=$(uname -r)
mount -t tmpfs -o mode=0755 tmpfs $R/lib/modules || fatal "tmpfs on /lib/modules failed"
mkdir -p "$R/lib/modules/$kver"
mount -o bind "$R$OBD_VM_MODDIR" "$R/lib/modules/$kver" || fatal "bind $OBD_VM_MODDIR failed"

mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
# devtmpfs has no /dev/fd: bash's <(...) and < <(...) need it (udev makes
# these links on a real system).
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=0755 tmpfs $R/run
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null || true
if [ -n "$cwd" ]; then
	mkdir -p "$R$cwd"
	mount -o bind /cwd "$R$cwd" || fatal "bind /cwd on $cwd failed"
fi

# kmemleak (only the debug kernel of make check-debug has it): what the boot left
# unreferenced is not the test's; mark it seen, and scan again after the command.
# Its own scanning thread (every 10 min, a pass over all memory: tens of seconds
# under TCG) is stopped: the scan after the command is the one that counts.
KML=$R/sys/kernel/debug/kmemleak
if [ -w "$KML" ]; then
	if ! { echo scan=off >"$KML" && echo scan >"$KML" && echo clear >"$KML"; }; then
		say "kmemleak: cannot scan/clear"
	fi
fi

read -r up _ </proc/uptime
say "run start uptime=${up}s"
chroot $R /usr/bin/env -i \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/tmp TMPDIR=/tmp TERM=dumb LANG=C.UTF-8 \
	DM_DISABLE_UDEV=1 OBD_VM=1 OBD_SHARE=/mnt/share \
	/bin/bash /mnt/share/.obd-vm/run.sh </dev/null >/dev/console 2>&1
rc=$?
read -r up _ </proc/uptime
say "run end uptime=${up}s status=$rc"

# An object is reported once unreferenced for 5 s (kmemleak's minimum age): wait that
# long, so what the command's last steps (rmmod) dropped is seen too.
if [ -w "$KML" ]; then
	sleep 5
	echo scan >"$KML" || say "kmemleak: scan failed"
	cat "$KML" >$C/kmemleak 2>/dev/null
	read -r up _ </proc/uptime
	say "kmemleak scanned, uptime=${up}s"
fi

chroot $R dmesg >$C/dmesg 2>/dev/null || dmesg -s 4194304 >$C/dmesg
echo "$rc" >$C/status.tmp && mv $C/status.tmp $C/status
sync
umount $R/mnt/share 2>/dev/null
poweroff -f
sleep 10
