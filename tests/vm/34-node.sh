#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 34-node.sh: lazy images run for long on a node, inside the VM with
# Debian's docker-registry on 127.0.0.1 and overlaybd-fetchd:
#   - background download (download{} of the image's config.v1.json): a
#     multi-layer image becomes complete (sha256 verified, flag in the
#     .meta), then the daemon is stopped and every read still succeeds;
#     after a module reload it attaches and reads with no daemon at all;
#   - cache limits: the cache filled past cacheSizeGB by detached images
#     while an attached one keeps reading: usage comes back under the
#     limit, only detached entries go, the attached image reads right;
#   - obd cache agrees (entries in use, complete);
#   - a byte corrupted in a background download's GET: the sha256 check
#     catches it, the blob is fetched again, complete and right;
#   - the Prometheus exporter (promtool check metrics) agrees with dmsetup
#     status (daemon, pending, remote layers) and obd cache (entries,
#     complete blobs).
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/34-node.sh
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
reg_test_begin 34-node

check "make five layers (2+1, 3, 3, 2 MiB)" bash -c "
	$(declare -f rand_layer); obd='$obd' PY='$PY'
	rand_layer a1 2 1 && rand_layer a2 1 2 && rand_layer b 3 3 && rand_layer c 3 4 && rand_layer e 2 5"
push() {	# push NAME LAYER...: the config.v1.json through the proxy in NAME.json
	local n=$1
	shift
	"$obd" push "http://127.0.0.1:$REG/node/${n,,}:v1" "$@" > "$n-direct.json" &&
		via_proxy "$n-direct.json" "$n.json"
}
check "push image A (two layers), B, C, E" bash -c "
	$(declare -f push via_proxy); obd='$obd' REG=$REG PX=$PX
	push A a1.commit a2.commit && push B b.commit && push C c.commit && push E e.commit"
want_a=$("$obd" cat a1.commit a2.commit | sha256sum | cut -d' ' -f1)

# --- background download ---------------------------------------------------------
EXP=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > svc.json <<JSON
{ "logConfig": { "logLevel": 1 },
  "exporterConfig": { "enable": true, "port": $EXP, "updateInterval": 200 },
  "cacheConfig": { "cacheDir": "$d/cache", "refillSize": 65536, "cacheSizeGB": 1,
                   "minFreeGB": 0, "evictIntervalMs": 500, "evictGraceSec": 2 },
  "download": { "enable": false },
  "fetchConfig": { "requestTimeout": 20, "syncIntervalMs": 50 } }
JSON
# the image asks for it (the daemon's default is off)
$PY - <<'PYEOF' || bail "cannot write A-dl.json"
import json
c = json.load(open("A.json"))
c["download"] = {"enable": True, "delay": 0, "delayExtra": 0, "maxMBps": 0, "blockSize": 262144}
json.dump(c, open("A-dl.json", "w"))
PYEOF
if fetchd_start; then ok "overlaybd-fetchd starts"; else bail "fetchd: $(tail -5 fetchd.log)"; fi
check "attach A with download{} enabled" "$obd" attach --service-config svc.json --name n-a A-dl.json
vm_on_exit dmsetup remove n-a
entries=()
for l in a1 a2; do entries+=("$d/cache/sha256:$(sha256sum "$l.commit" | cut -d' ' -f1)"); done
done_n=0
for _ in $(seq 240); do
	done_n=0
	for e in "${entries[@]}"; do [ "$(meta_flags "$e")" = 1 ] && done_n=$((done_n + 1)); done
	[ "$done_n" -eq 2 ] && break
	sleep 0.5
done
check_eq "both layers downloaded in the background and marked complete" "$done_n" 2
check "the downloads were logged as done" bash -c "[ \$(grep -c 'background download done' fetchd.log) -ge 2 ]"
check "the cache files hold the layers" bash -c "cmp -s '${entries[0]}' a1.commit && cmp -s '${entries[1]}' a2.commit"
fetchd_stop
check_eq "daemon stopped: status daemon 0" "$(stat_field n-a daemon)" 0
check_eq "every read succeeds with no daemon: sha256" "$(devsha n-a)" "$want_a"
check_eq "no I/O error" "$(stat_field n-a io_errors)" 0
check_eq "pending 0" "$(stat_field n-a pending)" 0
dmsetup remove n-a
check "module reloads" rmmod dm_overlaybd
vm_load_module || bail "reload"
b0=$(px_bytes)
check "after the reload, A attaches with no daemon running" \
	timeout 60 "$obd" attach --service-config svc.json --name n-a A-dl.json
check_eq "and reads right" "$(devsha n-a)" "$want_a"
check_eq "nothing fetched (complete entries)" "$(( $(px_bytes) - b0 ))" 0

# --- cache limits: fill past cacheSizeGB with detached images ---------------------------
# 0.008 GiB (8.6 MB); A (3 MiB) stays attached and reading; B and C (3 MiB
# each) are read whole and detached: past the risk mark the least recently
# used detached entry goes, down to the water mark (90 %)
sed -i 's/"cacheSizeGB": 1,/"cacheSizeGB": 0.008,/' svc.json
if fetchd_start; then ok "fetchd restarts with cacheSizeGB 0.008"; else bail "fetchd: $(tail -5 fetchd.log)"; fi
for n in b c; do
	"$obd" attach --service-config svc.json --name "n-$n" "${n^^}.json" > /dev/null 2> attach.err ||
		diag "attach: $(cat attach.err)"
	check_eq "attach $n, read it whole" "$(devsha "n-$n")" "$("$obd" cat --no-progress "$n.commit" | sha256sum | cut -d' ' -f1)"
	check "detach $n" dmsetup remove "n-$n"
	sleep 3	# B's last use before C's, and past the grace when C fills the cache
done
grep -q 'evicted\|ERROR' fetchd.log && diag "$(grep 'evicted\|ERROR\|WARN' fetchd.log | tail -20)"
ent_b=$d/cache/sha256:$(sha256sum b.commit | cut -d' ' -f1)
ent_c=$d/cache/sha256:$(sha256sum c.commit | cut -d' ' -f1)
(for _ in $(seq 20); do sha256sum /dev/mapper/n-a > /dev/null; done) &
reader=$!
gone=1
for _ in $(seq 60); do
	[ ! -e "$ent_b" ] && { gone=0; break; }
	sleep 0.5
done
wait $reader
check_eq "the least recently used detached entry (B) was evicted" "$gone" 0
check "its .meta went too" test ! -e "$ent_b.meta"
check "C (used later) stays: usage is under the water mark without it going" test -e "$ent_c"
for e in "${entries[@]}"; do
	check "an entry of the attached image stays ($(basename "$e" | cut -c1-20))" test -e "$e" -a -e "$e.meta"
done
use=$(du -sB1 cache | cut -f1)
check "usage ($use bytes on disk) is under the limit (8589934 bytes)" test "$use" -le 8589934
check_eq "the attached image still reads right" "$(devsha n-a)" "$want_a"
check "one eviction logged" bash -c "[ \$(grep -c 'evicted sha256:' fetchd.log) -eq 1 ]"
check "obd cache lists A's entries as in use by n-a" bash -c \
	"'$obd' cache --service-config svc.json --json | $PY -c '
import json, sys
j = json.load(sys.stdin)
use = {e[\"digest\"]: e[\"inUse\"] for e in j[\"entries\"]}
sys.exit(0 if all(\"n-a\" in use.get(\"sha256:\" + d, []) for d in sys.argv[1:]) else 1)' \
	$(for l in a1 a2; do sha256sum "$l.commit" | cut -d' ' -f1; done | tr '\n' ' ')"
check "B attaches again after its eviction" "$obd" attach --service-config svc.json --name n-b B.json
check_eq "and reads right" "$(devsha n-b)" "$("$obd" cat --no-progress b.commit | sha256sum | cut -d' ' -f1)"

# --- the exporter agrees with dmsetup status and obd cache ---------------------------------
sleep 1.5	# an eviction pass (500 ms) and an exporter update (200 ms) since the attach
curl -s "http://127.0.0.1:$EXP/metrics" > metrics.txt
check "the exporter answers, promtool check metrics is clean" bash -c "test -s metrics.txt && promtool check metrics < metrics.txt"
metric() { awk -v n="overlaybd_fetchd_$1" '$1 == n { print $2 }' metrics.txt; }
check_eq "connected = dmsetup status daemon" "$(metric connected)" "$(stat_field n-a daemon)"
check_eq "pending_requests = the devices' pending (at rest)" "$(metric pending_requests)" \
	"$(($(stat_field n-a pending) + $(stat_field n-b pending)))"
check_eq "blobs_open = the remote layers of the attached devices" "$(metric blobs_open)" \
	"$(($(stat_field n-a remote) + $(stat_field n-b remote)))"
"$obd" cache --service-config svc.json --json > cache.json
check_eq "cache_entries = obd cache's entries" "$(metric cache_entries)" \
	"$($PY -c 'import json; print(len(json.load(open("cache.json"))["entries"]))')"
check_eq "blobs_complete = obd cache's complete entries in use" "$(metric blobs_complete)" \
	"$($PY -c 'import json; print(sum(1 for e in json.load(open("cache.json"))["entries"] if e["complete"] and e["inUse"]))')"
dmsetup remove n-b

# --- a corrupted byte in a background download: the digest catches it ----------------------
$PY - <<'PYEOF' || bail "cannot write E-dl.json"
import json
c = json.load(open("E.json"))
c["download"] = {"enable": True, "delay": 1, "delayExtra": 0, "maxMBps": 0, "blockSize": 262144}
json.dump(c, open("E-dl.json", "w"))
PYEOF
ent_e=$d/cache/sha256:$(sha256sum e.commit | cut -d' ' -f1)
check "attach E with download{} (1 s delay)" "$obd" attach --service-config svc.json --name n-e E-dl.json
px_fault corrupt 1	# the download's first GET: one byte of its body flipped
for _ in $(seq 240); do
	[ "$(meta_flags "$ent_e")" = 1 ] && break
	sleep 0.5
done
check_eq "E downloaded and marked complete" "$(meta_flags "$ent_e")" 1
check "the mismatch was caught and logged, attempt 2 done" bash -c \
	"grep -q 'background download attempt 1 of [0-9]* failed: sha256 mismatch; trying again' fetchd.log &&
	 grep -q 'background download done (attempt 2)' fetchd.log"
check "E's cache file holds the layer" cmp -s "$ent_e" e.commit
check_eq "E reads right" "$(devsha n-e)" "$("$obd" cat --no-progress e.commit | sha256sum | cut -d' ' -f1)"
dmsetup remove n-e
dmsetup remove n-a
fetchd_stop
check "the daemon stopped cleanly" bash -c "! grep -qi 'assert\|sanitizer\|segv' fetchd.log"
vm_dmesg_check 34-node
tap_done
