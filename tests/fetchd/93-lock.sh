#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The .meta header lock (review D7) with kstub.py standing in for the
# kernel: obd and the daemon change an entry's header under flock(2). A
# process stopped while holding it (here flock(1), standing in for an obd
# stopped inside its locked section) must freeze no miss: the daemon tries
# the lock once and again later, never waits for it in its event loop.
#   - blob A is read whole while its .meta is locked: verified, but the
#     complete flag waits; meanwhile misses of blob B are answered
#   - the lock released: A is marked complete without another read
#   - a bitmap word's lock (an OFD lock obd takes for 8 bytes) held by a
#     stopped process: the daemon gives up on it after a few ms and logs it
#     (the old daemon waited in F_OFD_SETLKW, its loop frozen), misses of
#     another blob are answered meanwhile
#   - no .meta sync blocks the loop either (strace): a REFETCH of the
#     complete A (its flag and bits cleared) and A read and marked
#     complete again: every fdatasync of a .meta goes through io_uring, none
#     is a system call of the daemon
. "$(dirname "$0")/lib.bash"

command -v flock > /dev/null || { echo "1..0 # SKIP no flock(1)"; exit 0; }
K=4096
mkdir -p "$T/cache"
echo '{}' > "$T/cred.json"
start_registry reg
mkblob "$T/a.bin" 300000
mkblob "$T/b.bin" 2000000
upload "$REG_PORT" test/lock "$T/a.bin" && upload "$REG_PORT" test/lock "$T/b.bin"
ok $? "blobs uploaded"
url() { echo "http://127.0.0.1:$REG_PORT/v2/test/lock/blobs/sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
A=$(mkentry "$(url "$T/a.bin")" "$T/a.bin")
B=$(mkentry "$(url "$T/b.bin")" "$T/b.bin")
write_config '"requestTimeout": 10, "syncIntervalMs": 100'

# the lock holder: flock(1) on A's .meta until $T/release appears
flock -x "$A.meta" sh -c "while [ ! -e '$T/release' ]; do sleep 0.1; done" &
pids+=("$!")
sleep 0.3
run_stub r1 "[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"},{\"id\":2,\"cache\":\"$B\",\"data\":\"$T/b.bin\"}]" "[
	{\"read\": [[1, 0, 300000]]},
	{\"sleep\": 2.5},
	{\"read\": [[2, 0, $K]], \"timeout\": 5},
	{\"read\": [[2, 1048576, $K]], \"timeout\": 5},
	{\"exec\": \"python3 -c 'import json,sys; sys.path.insert(0, \\\"$here\\\"); import kstub; print(kstub.meta_flags(\\\"$A\\\")[\\\"flags\\\"])'\"},
	{\"exec\": \"touch '$T/release'\"},
	{\"sleep\": 1.5},
	{\"alive\": 1}]"
ok $? "misses of blob B answered within 5 s while A's .meta is locked; the daemon kept running"
is "while locked: A not yet marked complete" "$(jget "$T/r1.json" 'j["steps"][4]["out"].strip()')" 0
is "after the lock went: A marked complete" "$(jget "$T/r1.json" 'j["flags"]["1"]["flags"]')" 1
runlog r1 | grep -q "blob 1 .*marked complete"
ok $? "the daemon said A is complete"

# a POSIX write lock on all of C's .meta (conflicts with the daemon's OFD word locks)
mkblob "$T/c.bin" 100000
upload "$REG_PORT" test/lock "$T/c.bin"
C=$(mkentry "$(url "$T/c.bin")" "$T/c.bin")
rm -f "$T/release"
python3 -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
open(sys.argv[2] + ".held", "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.1)' "$C.meta" "$T/release" &
pids+=("$!")
for _ in $(seq 50); do [ -e "$T/release.held" ] && break; sleep 0.1; done
run_stub r3 "[{\"id\":3,\"cache\":\"$C\",\"data\":\"$T/c.bin\"},{\"id\":2,\"cache\":\"$B\",\"data\":\"$T/b.bin\"}]" "[
	{\"read\": [[3, 0, $K]]},
	{\"sleep\": 1},
	{\"read\": [[2, 1572864, $K]], \"timeout\": 5},
	{\"read\": [[3, 65536, $K]], \"timeout\": 5},
	{\"alive\": 1}]"
ok $? "C's bitmap words locked by a stopped process: misses answered, the daemon kept running"
runlog r3 | grep -q "blob 3 .*marking granules .*: Resource temporarily unavailable"
ok $? "the daemon said it could not mark C's granules"
touch "$T/release"

if command -v strace > /dev/null; then
	cat > "$T/fetchd-wrap.sh" <<-SH
		#!/bin/sh
		echo \$\$ > "$T/daemon.pid"
		# LeakSanitizer cannot stop threads strace holds: false leaks, an abort (as 92)
		export ASAN_OPTIONS=\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0
		exec strace -f -qq -y -e trace=fsync,fdatasync,sync_file_range -o "$T/strace.txt" "$FETCHD" "\$@"
		SH
	chmod +x "$T/fetchd-wrap.sh"
	FETCHD=$T/fetchd-wrap.sh run_stub r2 "[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"}]" "[
		{\"read\": [[1, 0, $K, 1]]},
		{\"sleep\": 0.3},
		{\"read\": [[1, 0, 300000]]},
		{\"sleep\": 2},
		{\"exec\": \"kill -TERM \$(pgrep -P \$(cat '$T/daemon.pid'))\"}, {\"sleep\": 0.5}]"
	ok $? "run 2 (strace): a REFETCH of the complete A, A read whole again"
	runlog r2 | grep -q "blob 1 .*marked complete"
	ok $? "run 2: A marked complete again"
	is "run 2: A's flag as it ends" "$(jget "$T/r2.json" 'j["flags"]["1"]["flags"]')" 1
	is "run 2: no fsync/fdatasync system call on a .meta (all through the ring)" \
		"$(grep -c '\.meta>' "$T/strace.txt")" 0
else
	echo "# strace missing: the .meta syncs are not checked"
fi
done_testing
