#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 37-faults.sh: registry faults with the kernel in the loop (device ->
# miss channel -> overlaybd-fetchd -> fault proxy -> docker-registry, all in
# the VM on 127.0.0.1): 503 and 429 bursts, slow answers, truncated bodies
# and resets are retried and the reader gets the right bytes; the registry
# stopped in the middle of a read and started again within requestTimeout:
# the read succeeds; malformed answers (a wrong Content-Range, a body longer
# than asked) and a registry gone past requestTimeout fail only the reads
# that need them, with an I/O error and a log line naming the URL, and the
# device reads right once the registry is back; dmesg clean.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/37-faults.sh
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
reg_test_begin 37-faults
check "an 8 MiB uncompressed layer, pushed" bash -c "
	head -c 8388608 /dev/urandom > g.raw &&
	'$obd' create g.data g.index 8M && '$obd' import --no-progress g.data g.index g.raw &&
	'$obd' commit --no-progress g.data g.index g.commit &&
	'$obd' push http://127.0.0.1:$REG/faults/img:v1 g.commit > direct.json" || bail "layer"
via_proxy direct.json img.json
cat > svc.json <<JSON
{ "logConfig": { "logLevel": 1 },
  "cacheConfig": { "cacheDir": "$d/cache", "refillSize": 65536 },
  "fetchConfig": { "requestTimeout": 8, "syncIntervalMs": 50, "readaheadMB": 0, "maxRetries": 20 } }
JSON
if fetchd_start; then ok "fetchd starts"; else bail "fetchd: $(tail -5 fetchd.log)"; fi
check "attach" "$obd" attach --service-config svc.json --name f img.json || bail "attach"
# part MIB: sha256 of the device's MiB number MIB, read with O_DIRECT; "" on an I/O error
part() { dd if=/dev/mapper/f bs=64K skip=$(($1 * 16)) count=16 iflag=direct status=none 2>/dev/null | sha256sum | cut -d' ' -f1; }
partrc() { dd if=/dev/mapper/f of=/dev/null bs=64K skip=$(($1 * 16)) count=16 iflag=direct status=none 2>/dev/null; }
want() { "$obd" cat --no-progress --offset "$1"M --length 1M g.commit | sha256sum | cut -d' ' -f1; }

px_fault 503 4
check_eq "a burst of 503s: retried, right bytes" "$(part 0)" "$(want 0)"
px_fault 429 4
check_eq "a burst of 429s: retried, right bytes" "$(part 1)" "$(want 1)"
px_fault slow 2 1500
check_eq "slow answers: right bytes" "$(part 2)" "$(want 2)"
px_fault trunc 3
check_eq "truncated bodies: retried, right bytes" "$(part 3)" "$(want 3)"
px_fault reset 3
check_eq "connection resets: retried, right bytes" "$(part 4)" "$(want 4)"
check "retries were logged at debug level only, no failure" bash -c "! grep -q 'failed:' fetchd.log"

# the registry (behind the proxy) stopped mid-read, back 3 s later
reg_down
(part 5 > p5.sha) &
reader=$!
sleep 3
reg_up
wait_port "$REG" || bail "registry did not come back"
wait $reader
check_eq "registry stopped for 3 s mid-read: the read succeeds" "$(cat p5.sha)" "$(want 5)"

px_fault badrange 1
partrc 6
check_eq "a wrong Content-Range: the read fails (EIO)" "$?" 1
check "... logged with the URL" grep -q 'Content-Range .* does not match the request' fetchd.log
px_fault long 1
partrc 6
check_eq "a body longer than asked: the read fails (EIO)" "$?" 1
check_eq "once the registry answers right, the same range reads right" "$(part 6)" "$(want 6)"

# gone for longer than requestTimeout (8 s): the reader fails, nothing hangs
reg_down
t0=$(date +%s)
partrc 7
rc=$?
el=$(( $(date +%s) - t0 ))
check_eq "registry gone past requestTimeout: EIO" "$rc" 1
check "... after about requestTimeout (${el}s), not hanging" test "$el" -ge 4 -a "$el" -le 40
reg_up
wait_port "$REG" || bail "registry did not come back"
check_eq "registry back: the range reads right" "$(part 7)" "$(want 7)"
check_eq "the whole device reads right" "$(devsha f)" "$("$obd" cat --no-progress g.commit | sha256sum | cut -d' ' -f1)"
check "io_errors counted the failed reads" test "$(stat_field f io_errors)" -ge 3
dmsetup remove f
fetchd_stop
check "the daemon stopped cleanly" bash -c "! grep -qi 'assert\|sanitizer\|segv' fetchd.log"
vm_dmesg_check 37-faults
tap_done
