#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Open files (review D3): every blob the kernel OPENs holds its cache file
# open (its .meta only while a change of it is made and synced), so a node
# with many layers needs many fds. The daemon raises its soft RLIMIT_NOFILE
# to the hard limit, and a blob whose entry cannot be opened for want of
# fds (EMFILE) is tried again, never left broken until the next
# connection. kstub.py stands in for the kernel.
#   - 40 images' blobs OPENed at once under `ulimit -S -n 64`: all read
#     right; then the daemon holds 40 cache files open and no .meta
#   - under a hard limit of 40 too: a blob that could not be opened fails
#     its READ (EIO), and reads right once other blobs were CLOSEd
. "$(dirname "$0")/lib.bash"

N=40
mkdir -p "$T/cache"
echo '{}' > "$T/cred.json"
start_registry reg
blobs=""
reads=""
for i in $(seq $N); do
	mkblob "$T/b$i.bin" $((65536 + i))
	upload "$REG_PORT" test/fds "$T/b$i.bin" || bail "upload $i"
	c=$(mkentry "http://127.0.0.1:$REG_PORT/v2/test/fds/blobs/sha256:$(sha256sum "$T/b$i.bin" | cut -d' ' -f1)" "$T/b$i.bin")
	blobs="$blobs${blobs:+,}{\"id\":$i,\"cache\":\"$c\",\"data\":\"$T/b$i.bin\"}"
	reads="$reads${reads:+,}[$i, 0, 4096]"
done
ok 0 "$N blobs uploaded, their entries made"
write_config '"requestTimeout": 10, "syncIntervalMs": 100'
# the daemon through a wrapper that leaves its pid (exec: the same process)
cat > "$T/fetchd-wrap.sh" <<-SH
	#!/bin/sh
	echo \$\$ > "$T/daemon.pid"
	exec "$FETCHD" "\$@"
	SH
chmod +x "$T/fetchd-wrap.sh"
FETCHD=$T/fetchd-wrap.sh
fds='{"exec": "ls -l /proc/$(cat '"'$T/daemon.pid'"')/fd | grep -c \"/sha256:[0-9a-f]*$\"; ls -l /proc/$(cat '"'$T/daemon.pid'"')/fd | grep -c \"\\.meta$\""}'

# --- soft limit 64, hard limit higher: the daemon raises it ---------------------------
(ulimit -S -n 64 && run_stub r1 "[$blobs]" "[{\"read\": [$reads]}, {\"sleep\": 0.5}, $fds]")
ok $? "run 1 (ulimit -S -n 64): every one of the $N blobs' READs answered with the right bytes"
is "run 1: no entry unusable" "$(runlog r1 | grep -c 'unusable\|Too many open files')" 0
is "run 1: after the batches, each blob holds its cache file open and no .meta" \
	"$(jget "$T/r1.json" 'j["steps"][2]["out"].split()')" "['$N', '0']"

# --- hard limit 64 as well: EMFILE is transient -----------------------------------------
# the same entries made afresh, in one python process (quick on a loaded host)
rm -f "$T/cache"/sha256:*
python3 - "$here" "$T" "$REG_PORT" "$N" <<-'PY' > /dev/null
	import hashlib, sys
	sys.path.insert(0, sys.argv[1])
	import kstub
	t, port, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
	for i in range(1, n + 1):
	    f = "%s/b%d.bin" % (t, i)
	    dig = hashlib.sha256(open(f, "rb").read()).hexdigest()
	    kstub.mkentry(t + "/cache", "http://127.0.0.1:%s/v2/test/fds/blobs/sha256:%s" % (port, dig), f)
	PY
closes=""
for i in $(seq 20); do closes="$closes{\"close\": $i},"; done
(ulimit -n $N && run_stub r2 "[$blobs]" "[
	{\"sleep\": 0.5},
	{\"read\": [[$N, 0, 4096]], \"expect\": \"err\"},
	$closes
	{\"sleep\": 0.5},
	{\"read\": [[$N, 0, 4096], [$((N - 1)), 0, 4096], [21, 0, 4096]]},
	{\"sleep\": 0.3}]")
ok $? "run 2 (ulimit -n $N): the last blob's READ fails while fds are short, reads right after 20 blobs closed"
runlog r2 | grep -q "Too many open files; trying again"
ok $? "run 2: a blob short of fds was said to be tried again"
is "run 2: no blob marked unusable" "$(runlog r2 | grep -c 'unusable')" 0
done_testing
