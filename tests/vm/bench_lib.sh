# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Shared by the lazy-image benchmarks in the test VM (tests/vm/bench-remote.sh,
# tests/vm/bench-turbo.sh), sourced after lib.sh:
#   bench_workdir DIR MB      ext4 mounted at DIR, cwd there: on the scratch
#                             disk of vm-run.sh, else on a loop file of MB MiB
#                             in tmpfs (the cache's inline hit path needs ext4)
#   bench_registry            Debian's docker-registry on 127.0.0.1:5000,
#                             storage ./reg, access log ./reg.log (REGPID)
#   loglines / served_since N lines of reg.log; bytes of the blob GETs
#                             (200/206) logged after line N
#   now / secs T0 T1 / ratio A B / median / range   timing and statistics
#   start_fetchd SVC / stop_fetchd / fetchd_summary   the daemon (its log:
#                             fetchd.log, this run's)
#   fetchd_idle               waits until the daemon has used no CPU for 2 s
#   drop_caches               sync, then every clean page cache page dropped
#   bench_links               sets BENCH_LINKS from OBD_BENCH_LINKS (default
#                             "unshaped shaped"), without "shaped" (said so)
#                             when sch_netem cannot be loaded
#   link_set unshaped|shaped  the qdisc of lo: none, or netem 5 ms delay at
#                             100 Mbit/s. Loopback traffic passes lo's qdisc
#                             in both directions, so a request and its answer
#                             see 10 ms of round trip, and the two directions
#                             share the 100 Mbit/s (answers dominate).
PY=/usr/bin/python3
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1

bench_workdir() {
	local dir=$1 mb=$2 dev
	modprobe ext4 2>/dev/null
	if [ -n "${OBD_VM_DISKS:-}" ]; then
		dev=$(vm_disk) || exit 1
	else
		modprobe loop
		truncate -s "${mb}M" "$dir.img"
		dev=$(losetup -f --show "$dir.img")
	fi
	mkfs.ext4 -q -F "$dev"
	mkdir -p "$dir"
	mount "$dev" "$dir"
	cd "$dir" || exit 1
}

REGPID=
bench_registry() {
	ip link set lo up
	mkdir -p reg
	cat > reg.yml <<-YML
	version: 0.1
	log:
	  level: error
	  accesslog:
	    disabled: false
	storage:
	  filesystem:
	    rootdirectory: $PWD/reg
	http:
	  addr: 127.0.0.1:5000
	YML
	/usr/bin/docker-registry serve reg.yml > reg.log 2>&1 &
	REGPID=$!
	vm_on_exit kill "$REGPID"
	for _ in $(seq 100); do curl -s http://127.0.0.1:5000/v2/ > /dev/null && break; sleep 0.1; done
}

served_since() {
	tail -n +"$(($1 + 1))" reg.log | $PY -c '
import re, sys
n = 0
for l in sys.stdin:
    m = re.search(r"\"GET /v2/[^ ]*/blobs/[^ ]* HTTP/[0-9.]+\" (\d+) (\d+)", l)
    if m and m.group(1) in ("200", "206"):
        n += int(m.group(2))
print(n)'
}
loglines() { wc -l < reg.log; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
range() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s..%s", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

fdpid=
start_fetchd() {
	stop_fetchd
	"$OBD_TOP/build/overlaybd-fetchd" --service-config "$1" > fetchd.log 2>&1 < /dev/null &
	fdpid=$!
	for _ in $(seq 100); do
		grep -q 'serving /dev/overlaybd' fetchd.log && return 0
		kill -0 "$fdpid" 2>/dev/null || break
		sleep 0.1
	done
	echo "overlaybd-fetchd did not start: $(tail -5 fetchd.log)"
	exit 1
}
stop_fetchd() {
	[ -n "$fdpid" ] || return 0
	kill "$fdpid" 2>/dev/null
	wait "$fdpid" 2>/dev/null
	fdpid=
}
vm_on_exit stop_fetchd
# the exit summary of the daemon's last run (its log is this run's)
fetchd_summary() { sed -n 's/.*summary: /  fetchd: /p' fetchd.log; }
fetchd_idle() {
	local a b
	for _ in $(seq 300); do
		a=$(awk '{ print $14 + $15 }' "/proc/$fdpid/stat")
		sleep 2
		b=$(awk '{ print $14 + $15 }' "/proc/$fdpid/stat")
		[ "$a" = "$b" ] && return 0
	done
}

BENCH_LINKS=
bench_links() {
	local l
	for l in ${OBD_BENCH_LINKS:-unshaped shaped}; do
		case $l in
		unshaped) BENCH_LINKS+=" unshaped" ;;
		shaped)
			if modprobe sch_netem && link_set shaped; then
				BENCH_LINKS+=" shaped"
			else
				echo "NOTE: sch_netem cannot be loaded or set on lo: no shaped link, unshaped figures only"
			fi
			link_set unshaped ;;
		*) echo "OBD_BENCH_LINKS: unknown link '$l' (unshaped, shaped)"; exit 2 ;;
		esac
	done
	BENCH_LINKS=${BENCH_LINKS# }
	vm_on_exit link_set unshaped
}
link_set() {
	tc qdisc del dev lo root 2>/dev/null
	[ "$1" = unshaped ] || tc qdisc add dev lo root netem delay 5ms rate 100mbit
}
# what went through lo's qdisc (the netem one while shaped)
link_stats() { tc -s qdisc show dev lo | sed -n 's/^ *Sent /  lo qdisc: sent /p'; }
link_name() {
	case $1 in
	shaped) echo "shaped (100 Mbit/s, 10 ms RTT)" ;;
	*) echo "$1" ;;
	esac
}
