#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Lazy-image benchmark, run inside the test VM by scripts/bench.sh (not a
# test: it prints ratios). Debian's docker-registry on 127.0.0.1 holds the
# images; overlaybd-fetchd and the kernel's miss channel read them.
#   1. cold sequential read of a whole image (an incompressible ZFile blob)
#      through the device, against curl of the same blob from the same
#      registry; and bytes the registry served / blob size for that read
#   2. a start-up workload: mount an ext4 image and read a few percent of its
#      files; bytes served / image size, and the time against downloading
#      the whole image with curl; over the unshaped loopback and over one
#      shaped as a real link (tc netem: 100 Mbit/s, 10 ms round trip;
#      OBD_BENCH_LINKS, bench_lib.sh), side by side
#   3. warm reads of the fully fetched image against the same layer as a
#      local file (both in the page cache)
#   4. the start-up workload of 2 with and without a trace recorded on a
#      first run (obd trace record/stop, replayed at attach with obd trace
#      replay): time to read the workload and bytes served, as ratios
# Each case runs REPEAT times (case 3: WARM_REPEAT samples of WARM_PASSES
# reads of each device, the order of the two alternated; median, with the
# per-run range). Bytes served
# are counted from the registry's access log (every GET of a blob); the
# daemon's exit summary of each case's last run is printed too.
# OBD_BENCH_REMOTE_CASES="1 2 3 4" picks cases (3 reads case 1's cache);
# OBD_BENCH_LOGLEVEL=0 runs the daemon with debug logs and prints the last one.
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/bench_lib.sh
. "$OBD_TOP/tests/vm/bench_lib.sh"

MB=${OBD_BENCH_REMOTE_MB:-64}
FS_MB=${OBD_BENCH_FS_MB:-256}
REPEAT=${OBD_BENCH_REPEAT:-3}
WARM_REPEAT=${OBD_BENCH_WARM_REPEAT:-$((REPEAT * 3))}
WARM_PASSES=${OBD_BENCH_WARM_PASSES:-4}
CASES=${OBD_BENCH_REMOTE_CASES:-1 2 3 4}
want() { [ -z "${CASES##*$1*}" ]; }
obd=$OBD_TOP/build/obd
vm_load_module
# cache and local files on ext4 (the inline hit path needs it)
w=/tmp/bench-remote
bench_workdir "$w" $((MB * 4 + FS_MB * 3 + 512))
mkdir -p mnt
bench_registry
svc() {	# svc CACHEDIR
	mkdir -p "$1"
	printf '{ "cacheConfig": { "cacheDir": "%s" }, "logConfig": { "logLevel": %s } }\n' "$1" "${OBD_BENCH_LOGLEVEL:-1}" > svc.json
}

echo "== images: an incompressible $MB MiB ZFile layer, a $FS_MB MiB ext4 image"
head -c $((MB << 20)) /dev/urandom > big.raw
"$obd" create big.data big.index "${MB}M" >/dev/null
"$obd" import --no-progress big.data big.index big.raw
"$obd" commit --no-progress -z big.data big.index big.zfile
rm -f big.raw big.data big.index
"$obd" push --no-progress http://127.0.0.1:5000/bench/big:v1 big.zfile > big.json
bsize=$(stat -c %s big.zfile)
bdig=sha256:$(sha256sum big.zfile | cut -d' ' -f1)
url=http://127.0.0.1:5000/v2/bench/big/blobs/$bdig

if want 2 || want 4; then
# a tree like a distribution's: many small files, some large ones
$PY - "$FS_MB" <<'EOF'
import os, random, sys
random.seed(7)
budget = int(sys.argv[1]) * 700 * 1024  # ~70 % full
i = 0
while budget > 0:
    d = "tree/usr/lib/p%03d" % (i // 40)
    os.makedirs(d, exist_ok=True)
    n = random.choice([200, 1500, 4096, 9000, 30000, 120000, 700000])
    open("%s/f%05d" % (d, i), "wb").write(os.urandom(n))
    budget -= n
    i += 1
EOF
truncate -s "${FS_MB}M" fs.raw
mkfs.ext4 -q -F -b 4096 -d tree fs.raw
"$obd" create fs.data fs.index "${FS_MB}M" >/dev/null
"$obd" import --no-progress fs.data fs.index fs.raw
"$obd" commit --no-progress -z -t fs.data fs.index fs.tar
rm -f fs.raw fs.data fs.index
"$obd" push --no-progress http://127.0.0.1:5000/bench/fs:v1 fs.tar > fs.json
fsize=$(stat -c %s fs.tar)
fdig=sha256:$(sha256sum fs.tar | cut -d' ' -f1)
furl=http://127.0.0.1:5000/v2/bench/fs/blobs/$fdig
# the start-up set: 3 % of the files, as a program reading its libraries
(cd tree && find . -type f | sort | awk 'NR % 33 == 0') > startup.list
fi

if want 1; then
echo "== 1. cold sequential read of the whole $bsize-byte blob"
c_times=() d_times=() a_times=() fetch_ratio=()
for r in $(seq "$REPEAT"); do
	sync; echo 3 > /proc/sys/vm/drop_caches
	t0=$(now); curl -s -o /dev/null "$url"; t1=$(now)
	c_times+=("$(secs "$t0" "$t1")")
	rm -rf cache1; svc "$w/cache1"
	start_fetchd svc.json
	l0=$(loglines)
	t0=$(now)
	"$obd" attach --service-config svc.json --name b-cold big.json > /dev/null
	t1=$(now)
	dd if=/dev/mapper/b-cold of=/dev/null bs=1M status=none
	t2=$(now)
	a_times+=("$(secs "$t0" "$t1")")
	d_times+=("$(secs "$t1" "$t2")")
	fetch_ratio+=("$(ratio "$(served_since "$l0")" "$bsize")")
	dmsetup remove b-cold
	stop_fetchd
done
cm=$(echo "${c_times[*]}" | median); dm=$(echo "${d_times[*]}" | median)
am=$(echo "${a_times[*]}" | median)
echo "curl: ${cm}s ($(echo "${c_times[*]}" | range)); device read: ${dm}s ($(echo "${d_times[*]}" | range)), after obd attach: ${am}s ($(echo "${a_times[*]}" | range))"
fetchd_summary
echo "RESULT cold-seq device/curl throughput ratio: $(ratio "$cm" "$dm") (target >= 0.8)"
echo "RESULT cold-seq with the attach: $(ratio "$cm" "$(awk -v a="$am" -v b="$dm" 'BEGIN { print a + b }')")"
echo "RESULT cold-seq bytes served / blob size: $(echo "${fetch_ratio[*]}" | median) ($(echo "${fetch_ratio[*]}" | range); target <= 1.05)"
fi

if want 2; then
echo "== 2. start-up: read $(wc -l < startup.list) of $(find tree -type f | wc -l) files of the ext4 image"
bench_links
for link in $BENCH_LINKS; do
link_set "$link"
echo "-- over the $(link_name "$link") link"
s_times=() s_frac=() f_times=()
for r in $(seq "$REPEAT"); do
	sync; echo 3 > /proc/sys/vm/drop_caches
	t0=$(now); curl -s -o /dev/null "$furl"; t1=$(now)
	f_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
	rm -rf cache2; svc "$w/cache2"
	start_fetchd svc.json
	l0=$(loglines)
	t0=$(now)
	"$obd" attach --service-config svc.json --name b-fs fs.json > /dev/null
	mount -t ext4 -o ro,noload /dev/mapper/b-fs mnt
	(cd mnt && xargs cat < ../startup.list > /dev/null)
	t1=$(now)
	s_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
	s_frac+=("$(ratio "$(served_since "$l0")" "$fsize")")
	umount mnt
	dmsetup remove b-fs
	stop_fetchd
done
sm=$(echo "${s_times[*]}" | median); fm=$(echo "${f_times[*]}" | median)
echo "download the whole image (curl): ${fm}s; attach + mount + read the start-up set: ${sm}s ($(echo "${s_times[*]}" | range))"
fetchd_summary
[ "$link" = unshaped ] || link_stats
echo "RESULT startup bytes served / image size ($link): $(echo "${s_frac[*]}" | median) ($(echo "${s_frac[*]}" | range); target < 0.10)"
echo "RESULT startup time / full download time ($link): $(ratio "$sm" "$fm")"
done
link_set unshaped
fi

if want 3; then
echo "== 3. warm reads: fully fetched remote image vs the same layer as a local file"
svc "$w/cache1"
start_fetchd svc.json
"$obd" attach --service-config svc.json --name b-warm big.json > /dev/null
"$obd" attach --name b-local big.zfile > /dev/null
dd if=/dev/mapper/b-warm of=/dev/null bs=1M status=none
dd if=/dev/mapper/b-local of=/dev/null bs=1M status=none
# a pass over 64 MiB takes about half a second under TCG: each sample is
# WARM_PASSES of them, more samples, and the order alternated, so neither
# device always runs right after the other
ws=() ls=()
for r in $(seq "$WARM_REPEAT"); do
	order="b-warm b-local"
	[ $((r % 2)) -eq 0 ] && order="b-local b-warm"
	for dev in $order; do
		t0=$(now)
		for _ in $(seq "$WARM_PASSES"); do
			dd if=/dev/mapper/$dev of=/dev/null bs=1M iflag=direct status=none
		done
		t1=$(now)
		v=$(awk -v a="$t0" -v b="$t1" -v mb="$((MB * WARM_PASSES))" 'BEGIN { print mb / (b - a) }')
		if [ "$dev" = b-warm ]; then ws+=("$v"); else ls+=("$v"); fi
	done
done
wm=$(echo "${ws[*]}" | median); lm=$(echo "${ls[*]}" | median)
echo "remote (fully fetched) ${wm} MiB/s ($(echo "${ws[*]}" | range)), local ${lm} MiB/s ($(echo "${ls[*]}" | range))"
echo "RESULT warm remote/local: $(ratio "$wm" "$lm") (target >= 0.95)"
dmsetup status b-warm
dmsetup remove b-warm
dmsetup remove b-local
stop_fetchd
fi

if want 4; then
echo "== 4. start-up with and without a recorded trace"
# record: one start-up run with the trace on
rm -rf cache3; svc "$w/cache3"
start_fetchd svc.json
"$obd" attach --service-config svc.json --name b-rec fs.json > /dev/null
"$obd" trace record b-rec "$w/startup.trace" > /dev/null
mount -t ext4 -o ro,noload /dev/mapper/b-rec mnt
(cd mnt && xargs cat < ../startup.list > /dev/null)
umount mnt
"$obd" trace stop b-rec
dmsetup remove b-rec
stop_fetchd
n_t=() n_b=() t_t=() t_b=()
for r in $(seq "$REPEAT"); do
	for mode in plain trace; do
		sync; echo 3 > /proc/sys/vm/drop_caches
		rm -rf cache4; svc "$w/cache4"
		start_fetchd svc.json
		l0=$(loglines)
		t0=$(now)
		"$obd" attach --service-config svc.json --name b-st fs.json > /dev/null
		# the replay runs beside the workload, as at a container's start
		rpid=
		if [ "$mode" = trace ]; then
			"$obd" trace replay b-st "$w/startup.trace" > replay.log 2>&1 &
			rpid=$!
		fi
		mount -t ext4 -o ro,noload /dev/mapper/b-st mnt
		(cd mnt && xargs cat < ../startup.list > /dev/null)
		t1=$(now)
		[ -z "$rpid" ] || wait "$rpid" || echo "obd trace replay failed: $(cat replay.log)"
		el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
		by=$(served_since "$l0")
		if [ "$mode" = trace ]; then t_t+=("$el"); n_t+=("$by"); else t_b+=("$el"); n_b+=("$by"); fi
		umount mnt
		dmsetup remove b-st
		stop_fetchd
	done
done
tt=$(echo "${t_t[*]}" | median); tb=$(echo "${t_b[*]}" | median)
bt=$(echo "${n_t[*]}" | median); bb=$(echo "${n_b[*]}" | median)
echo "start-up without a trace: ${tb}s ($(echo "${t_b[*]}" | range)), $bb bytes; with: ${tt}s ($(echo "${t_t[*]}" | range)), $bt bytes"
fetchd_summary
echo "RESULT startup with trace / without: time $(ratio "$tt" "$tb"), bytes $(ratio "$bt" "$bb")"
fi
# OBD_BENCH_LOGLEVEL=0: the last daemon's debug log (READs, fetches, DONEs with times) to stdout
[ "${OBD_BENCH_LOGLEVEL:-1}" = 0 ] && { echo "== the last fetchd log"; cat fetchd.log; }
kill "$REGPID"
wait "$REGPID" 2>/dev/null
cd /
umount "$w"
