#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The daemon as its own unprivileged user (issue #19, "a system service"),
# kstub.py standing in for the kernel: `--user NAME` opens the channel as
# root, then becomes NAME (its group, no supplementary groups) without any
# capability. A test user is made here and removed at the end.
#   - a cache of root's (0700 directory, 0600 entries as an older obd made
#     them) is given to the user at start; the misses are served
#   - /proc/PID/status: every uid and gid the user's, no groups, no
#     capabilities (effective, permitted, inheritable, ambient)
#   - an entry obd (root) makes in the user's cache is the user's, the
#     daemon serves its misses, and what it wrote checks out for obd
#   - a credentials file only root can read is warned about at start
#   - a user that does not exist: exit 1, said
. "$(dirname "$0")/lib.bash"

[ "$(id -u)" = 0 ] && command -v useradd > /dev/null && command -v userdel > /dev/null ||
	{ echo "1..0 # SKIP needs root and useradd/userdel"; exit 0; }
OBDB=${OBD:-$top/build/obd}
case "$OBDB" in /*) ;; *) OBDB=$top/$OBDB ;; esac
TU=obdt$$
useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$TU" 2> "$T/useradd.err" ||
	bail "useradd $TU: $(cat "$T/useradd.err")"
trap 'userdel "$TU" > /dev/null 2>&1; cleanup' EXIT
TUID=$(id -u "$TU")
TGID=$(id -g "$TU")
K=4096

chmod 0711 "$T"		# the user walks through to its cache
mkdir -m 0700 "$T/cache"
echo '{}' > "$T/cred.json"
chmod 0600 "$T/cred.json"
start_registry reg
mkblob "$T/a.bin" 300000
mkblob "$T/b.bin" 1200000
upload "$REG_PORT" test/user "$T/a.bin" && upload "$REG_PORT" test/user "$T/b.bin"
ok $? "blobs uploaded"
url() { echo "http://127.0.0.1:$REG_PORT/v2/test/user/blobs/sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
A=$(mkentry "$(url "$T/a.bin")" "$T/a.bin")
chmod 0600 "$A" "$A.meta"
write_config '"requestTimeout": 10, "syncIntervalMs": 100'
cat > "$T/fetchd-wrap.sh" <<-SH
	#!/bin/sh
	echo \$\$ > "$T/daemon.pid"
	exec \${WRAP_PRE:-} "$FETCHD" --user "$TU" "\$@"
	SH
chmod +x "$T/fetchd-wrap.sh"
REAL_FETCHD=$FETCHD
FETCHD=$T/fetchd-wrap.sh
status_of() { echo "{\"exec\": \"grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Amb)):' /proc/\$(pgrep -P \$(cat '$T/daemon.pid') || cat '$T/daemon.pid')/status | tr -s ' \\\\t' ' ' | tr '\\\\n' ';'\"}"; }

# --- a root-owned cache, as obd made it before -------------------------------------------
run_stub r1 "[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"}]" "[
	{\"read\": [[1, 0, $K]]},
	$(status_of),
	{\"read\": [[1, 262144, $K], [1, 131072, $K]]},
	{\"alive\": 1}]"
ok $? "run 1 (--user $TU): misses served, the bytes right (kstub compares them)"
is "run 1: runs as the user, no groups, no capabilities" "$(jget "$T/r1.json" 'j["steps"][1]["out"].strip()')" \
	"Uid: $TUID $TUID $TUID $TUID;Gid: $TGID $TGID $TGID $TGID;Groups: ;CapInh: 0000000000000000;CapPrm: 0000000000000000;CapEff: 0000000000000000;CapAmb: 0000000000000000;"
is "run 1: the cache directory given to the user" "$(stat -c '%u:%g %a' "$T/cache")" "$TUID:$TGID 700"
is "run 1: its entry files too (modes kept)" "$(stat -c '%u:%g %a' "$A" "$A.meta" | sort -u)" "$TUID:$TGID 600"
runlog r1 | grep -q "running as user $TU (uid $TUID, gid $TGID), without capabilities"
ok $? "run 1: it says which user it runs as"
runlog r1 | grep -q "cred.json: not readable by user $TU"
ok $? "run 1: a cred.json only root can read is warned about"
python3 "$top/tests/tools/cache-check.py" "$A" "$T/a.bin" > "$T/check1.out" 2>&1
ok $? "run 1: the entry the user's daemon wrote checks out ($(cat "$T/check1.out"))"

# --- an entry obd makes in the user's cache ----------------------------------------------
if [ -x "$OBDB" ]; then
	digb=$(sha256sum "$T/b.bin" | cut -d' ' -f1)
	printf '{"repoBlobUrl": "http://127.0.0.1:%s/v2/test/user/blobs", "lowers": [{"digest": "sha256:%s", "size": %s}]}\n' \
		"$REG_PORT" "$digb" "$(stat -c %s "$T/b.bin")" > "$T/b.json"
	# b.bin is no overlaybd layer: the attach fails after reading its header range
	"$OBDB" attach --service-config "$T/overlaybd.json" --table "$T/b.json" > "$T/obd.out" 2>&1
	B=$T/cache/sha256:$digb
	is "obd (root) made the entry as the cache directory's owner's" \
		"$(stat -c '%u:%g %a' "$B" "$B.meta" 2>&1 | sort -u)" "$TUID:$TGID 600"
	chmod 0644 "$T/cred.json"
	# under strace when there is one: every call passes the unit's SystemCallFilter=
	# (SIGTERM to strace would not reach the daemon: to its child)
	last='{"alive": 1}'
	if command -v strace > /dev/null && command -v systemd-analyze > /dev/null; then
		# LeakSanitizer cannot stop threads strace holds: false leaks, an abort (as 92)
		export WRAP_PRE="env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o $T/strace.txt"
		last="{\"exec\": \"kill -TERM \$(pgrep -P \$(cat '$T/daemon.pid'))\"}, {\"sleep\": 0.5}"
	fi
	run_stub r2 "[{\"id\":2,\"cache\":\"$B\",\"data\":\"$T/b.bin\"}]" "[
		{\"read\": [[2, 0, $K], [2, 524288, $K], [2, 786432, $K]]},
		$(status_of), $last]"
	ok $? "run 2: the user's daemon serves the misses of the entry obd made"
	is "run 2: ... fetched from the registry" "$(runlog r2 | grep -c "fetches [1-9]")" 1
	unset WRAP_PRE
	if [ -s "$T/strace.txt" ]; then
		bad=$(python3 "$here/sdcheck.py" syscalls "$top/fetchd/overlaybd-fetchd.service" "$T/strace.txt")
		ok $? "run 2 (strace): becoming the user passes the unit's SystemCallFilter= (refused: $bad)"
	fi
	is "run 2: still the user's, no capabilities" "$(jget "$T/r2.json" 'j["steps"][1]["out"].strip()' | cut -d';' -f1,6)" \
		"Uid: $TUID $TUID $TUID $TUID;CapEff: 0000000000000000"
	is "run 2: a cred.json the user can read: no warning" "$(runlog r2 | grep -c 'not readable')" 0
	python3 "$top/tests/tools/cache-check.py" "$B" "$T/b.bin" > "$T/check2.out" 2>&1
	ok $? "run 2: obd's entry as the daemon left it checks out ($(cat "$T/check2.out"))"
	"$OBDB" attach --service-config "$T/overlaybd.json" --table "$T/b.json" > "$T/obd2.out" 2>&1
	grep -qi 'permission denied' "$T/obd2.out"
	[ $? -ne 0 ]; ok $? "obd opens the entry the user's daemon filled (no permission error)"
else
	echo "# $OBDB missing: obd's side not checked"
fi

# --- no such user --------------------------------------------------------------------------
"$REAL_FETCHD" --user "no-such-user-$$" --service-config "$T/overlaybd.json" \
	--device "$T/chan.sock" > "$T/nouser.out" 2>&1
is "--user naming no user: exit 1" "$?" 1
grep -q "no-such-user-$$: no such user" "$T/nouser.out"
ok $? "--user naming no user: said"
done_testing
