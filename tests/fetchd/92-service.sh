#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The daemon as a systemd service (review D7, D9, D10, D14, D15), with
# kstub.py standing in for the kernel and sdcheck.py for systemd:
#   - sd_notify: READY=1 once the channel is open (never without it),
#     WATCHDOG=1 every WATCHDOG_USEC/2 while the loop turns, STOPPING=1
#   - SIGHUP is said and ignored; capabilities are dropped once the channel
#     is open; the process is not dumpable (no core with secrets)
#   - delayExtra (and jitter) seeded from getrandom(): two runs differ
#   - cache modes looser than 0700/0600 are warned about at start
#   - fetchd/overlaybd-fetchd.service: systemd-analyze security
#     --offline=yes scores it 3.0 or lower, and its SystemCallFilter= lets
#     through every system call the daemon makes (strace of a run; 94-user
#     checks the calls of becoming the user); it runs the daemon as its own
#     user (--user), made by overlaybd-fetchd.sysusers
. "$(dirname "$0")/lib.bash"

UNIT=$top/fetchd/overlaybd-fetchd.service
REAL_FETCHD=$FETCHD
mkdir -p "$T/cache"
echo '{}' > "$T/cred.json"
start_registry reg
mkblob "$T/a.bin" 300000
upload "$REG_PORT" test/svc "$T/a.bin"
ok $? "blob uploaded"
A=$(mkentry "http://127.0.0.1:$REG_PORT/v2/test/svc/blobs/sha256:$(sha256sum "$T/a.bin" | cut -d' ' -f1)" "$T/a.bin")
BLOBS="[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"}]"
write_config '"requestTimeout": 10, "syncIntervalMs": 100'
# the daemon through a wrapper that leaves its pid (exec: the same process)
cat > "$T/fetchd-wrap.sh" <<-SH
	#!/bin/sh
	echo \$\$ > "$T/daemon.pid"
	exec \${WRAP_PRE:-} "$REAL_FETCHD" "\$@"
	SH
chmod +x "$T/fetchd-wrap.sh"
FETCHD=$T/fetchd-wrap.sh

# --- sd_notify, watchdog, SIGHUP, capabilities, modes warning -------------------------
python3 "$here/sdcheck.py" notify-listen "$T/notify.sock" "$T/notify.log" &
pids+=("$!")
for i in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=400000 run_stub r1 "$BLOBS" "[
	{\"read\": [[1, 0, 4096]]},
	{\"exec\": \"grep '^CapEff' /proc/\$(cat '$T/daemon.pid')/status | tr -d ' \\\\t'\"},
	{\"sleep\": 2},
	{\"exec\": \"kill -HUP \$(cat '$T/daemon.pid')\"},
	{\"sleep\": 0.5},
	{\"read\": [[1, 262144, 4096]]},
	{\"alive\": 1}]"
ok $? "run 1: READs answered, the daemon survives SIGHUP and exits 0 at SIGTERM"
sleep 0.3
grep -q ' READY=1$' "$T/notify.log"
ok $? "READY=1 sent"
n=$(grep -c ' WATCHDOG=1$' "$T/notify.log")
[ "$n" -ge 6 ]
ok $? "WATCHDOG=1 every 200 ms or so while running ($n in ~3 s)"
is "READY=1 first, STOPPING=1 last" \
	"$(grep -v WATCHDOG "$T/notify.log" | grep -o 'READY=1\|STOPPING=1' | tr '\n' ' ')" "READY=1 STOPPING=1 "
runlog r1 | grep -q 'SIGHUP: nothing to reload'
ok $? "SIGHUP said and ignored"
is "capabilities dropped once the channel is open" "$(jget "$T/r1.json" 'j["steps"][1]["out"].strip()')" \
	"CapEff:0000000000000000"
runlog r1 | grep -q 'cache .*: directory mode 0755 lets other users in' &&
	runlog r1 | grep -q 'files readable or writable by other users'
ok $? "loose cache modes (0755 directory, 0644 entries) warned about at start"

# no channel: no READY=1
: > "$T/notify.log"
NOTIFY_SOCKET=$T/notify.sock "$REAL_FETCHD" --service-config "$T/overlaybd.json" \
	--device "$T/no-such-device" 2>> "$T/daemon.log"
rc=$?
sleep 0.3
is "no channel: exit 1" "$rc" 1
is "no channel: no READY=1" "$(grep -c 'READY=1' "$T/notify.log")" 0

# --- modes as obd makes them: no warning ------------------------------------------------
chmod 0700 "$T/cache"
chmod 0600 "$T/cache"/sha256:*
run_stub r2 "$BLOBS" '[{"sleep": 0.2}]'
ok $? "run 2: daemon ran"
is "0700 directory, 0600 entries: no warning" "$(runlog r2 | grep -c 'other users')" 0

# --- delayExtra seeded: two runs draw different delays -----------------------------------
python3 "$here/kstub.py" set-download "$A" 1 0 1000000 1 5 262144
run_stub r3 "$BLOBS" '[{"sleep": 0.2}]' && run_stub r4 "$BLOBS" '[{"sleep": 0.2}]'
ok $? "runs 3 and 4: daemon ran"
d3=$(runlog r3 | sed -n 's/.*background download in \([0-9]*\) s.*/\1/p')
d4=$(runlog r4 | sed -n 's/.*background download in \([0-9]*\) s.*/\1/p')
[ -n "$d3" ] && [ -n "$d4" ] && [ "$d3" != "$d4" ]
ok $? "delayExtra: two runs draw different delays ($d3 s, $d4 s)"
python3 "$here/kstub.py" set-download "$A" 0

# --- not dumpable: /proc/PID/* belong to root, not to the (unprivileged) user -----------
# (as root the owner says nothing, so this run is as nobody, on a socket it may use)
if command -v setpriv > /dev/null; then
U=$T/nobody
mkdir -m 0755 "$U" && chmod 0755 "$T"
printf '{"cacheConfig": {"cacheDir": "%s/cache"}, "credentialConfig": {"mode": "file", "path": "%s/cred.json"}}\n' \
	"$U" "$U" > "$U/cfg.json"
echo '{}' > "$U/cred.json"
chmod 0644 "$U/cfg.json" "$U/cred.json"
python3 - "$U/chan.sock" "$U/owner" <<-'PY' &
	import os, socket, sys, time
	os.umask(0)
	s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
	s.bind(sys.argv[1]); s.listen(1); s.settimeout(15)
	c, _ = s.accept()
	time.sleep(0.5)
	open(sys.argv[2] + ".go", "w").close()
	time.sleep(3)
	PY
pids+=("$!")
for i in $(seq 50); do [ -S "$U/chan.sock" ] && break; sleep 0.1; done
setpriv --reuid=65534 --regid=65534 --clear-groups "$REAL_FETCHD" --service-config "$U/cfg.json" \
	--device "$U/chan.sock" 2>> "$T/daemon.log" &
dpid=$!
pids+=("$dpid")
for i in $(seq 50); do [ -e "$U/owner.go" ] && break; sleep 0.1; done
is "not dumpable: /proc/PID/status of the daemon run as nobody belongs to root" \
	"$(stat -c %U /proc/$dpid/status)" root
kill "$dpid" 2>/dev/null
else
	echo "# setpriv missing: PR_SET_DUMPABLE not checked"
fi

# --- the unit ----------------------------------------------------------------------------
if command -v systemd-analyze > /dev/null; then
	score=$(systemd-analyze security --offline=yes "$UNIT" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	python3 -c "import sys; sys.exit(0 if float('${score:-99}') <= 3.0 else 1)"
	ok $? "systemd-analyze security --offline=yes: exposure ${score:-?} <= 3.0"
	# its own user (94-user runs the daemon so): named in ExecStart=, made by the sysusers file
	svc_user=$(sed -n 's/^ExecStart=.* --user \([a-z_][a-z0-9_-]*\).*/\1/p' "$UNIT")
	[ -n "$svc_user" ] && grep -q "^u $svc_user " "$top/fetchd/overlaybd-fetchd.sysusers"
	ok $? "the unit runs the daemon as its own user (--user ${svc_user:-?}), which overlaybd-fetchd.sysusers makes"
	is "the unit lets it become that user and nothing more" \
		"$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT" | tr ' ' '\n' | sort | tr '\n' ' ')" \
		"CAP_CHOWN CAP_SETGID CAP_SETUID CAP_SYS_ADMIN "
	if command -v strace > /dev/null; then
		# SIGTERM to strace would not reach the daemon: to its child. LeakSanitizer
		# cannot stop a traced process's threads (false leaks, an abort): off here
		WRAP_PRE="env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o $T/strace.txt" run_stub r5 "$BLOBS" "[
			{\"read\": [[1, 0, 300000]]}, {\"sleep\": 1.6},
			{\"exec\": \"kill -TERM \$(pgrep -P \$(cat '$T/daemon.pid'))\"}, {\"sleep\": 0.5}]"
		ok $? "run 5 (under strace): the blob read whole, eviction pass and verify ran"
		bad=$(python3 "$here/sdcheck.py" syscalls "$UNIT" "$T/strace.txt")
		ok $? "every system call the daemon made passes the unit's SystemCallFilter= (refused: $bad)"
	else
		echo "# strace missing: SystemCallFilter= not checked"
	fi
else
	echo "# systemd-analyze missing (Debian package systemd): the unit is not checked"
fi
done_testing
