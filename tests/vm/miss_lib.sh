# SPDX-License-Identifier: GPL-2.0-only
#
# miss_lib.sh: the miss channel without fetchd, for VM tests: cold cache entries
# and the stand-in daemon of remote_lib.py (answers misses from src/). Sourced
# after lib.sh, with $R (remote_lib.py) set and src/ and cache/ in the test's dir.

# entry BLOB: copy to src/ under its digest, make a cold cache entry, print the token
entry() {
	local dg
	dg=sha256:$(sha256sum "$1" | cut -d' ' -f1)
	cp "$1" "src/$dg"
	rm -f "cache/$dg" "cache/$dg.meta"
	$R entry "$1" cache
}

daemon_pid=
# start_daemon LOG [opts]: waits until it holds the channel
start_daemon() {
	local log=$1 i
	shift
	stop_daemon
	rm -f "$log.ready"
	$R daemon src "$log" "$@" 2>>"$log.err" &
	daemon_pid=$!
	# 10 s; python starts far slower under the debug kernel's KASAN and lockdep
	for i in $(seq $((100 * $(vm_slow)))); do
		[ -e "$log.ready" ] && return 0
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "stand-in daemon did not start: $(cat "$log.err" 2>/dev/null)" >&2
	return 1
}
stop_daemon() {
	[ -n "$daemon_pid" ] || return 0
	kill "$daemon_pid" 2>/dev/null
	wait "$daemon_pid" 2>/dev/null
	daemon_pid=
}
vm_on_exit stop_daemon
