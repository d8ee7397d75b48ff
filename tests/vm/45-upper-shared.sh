#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 45-upper-shared.sh: the writable upper (issue #9) under four writers on
# four vCPUs, both kinds.
#   scripts/vm-run.sh --kernel 6.1 --smp 4 -- bash tests/vm/45-upper-shared.sh
#   - upper_fsx.py --shared: every thread anywhere on the device; ranges
#     that overlap take turns (a range lock, so the model knows their
#     order), the others run at once, in the same 4 KiB blocks and index
#     records; every read checked, the device equal to the model at the end
#     and after a reopen (for a sparse upper: discards show the lowers)
# vm-smp: 4
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/upper_lib.sh
. "$OBD_TOP/tests/vm/upper_lib.sh"
vm_test_begin 45-upper-shared
seed=${OBD_SEED:-$(date +%s)}
diag "OBD_SEED=$seed"
check "obd cat of the lower stack" "$obd" cat --no-progress -o lower.raw "$L1" "$L2"

ncpu=$(nproc)
for kind in append sparse; do
	if [ $kind = append ]; then
		"$obd" create "$d/sh.data" "$d/sh.index" 64M > /dev/null
		D=$d/sh.data I=$d/sh.index fsopt= after=shared.append
	else
		"$obd" create -s "$d/shs.data" 64M > /dev/null
		D=$d/shs.data I=- fsopt="--fsblock $(stat -f -c %S "$d")" after=shared.sparse.reopen
	fi
	check "$kind, shared: dmsetup create" dmsetup create obd40s --table "$(table "$D" "$I")"
	out=$($fsx run /dev/mapper/obd40s lower.raw shared.$kind "$((seed + 7))" 150 $fsopt \
		--threads 4 --shared 2>&1)
	check "$kind, shared: fsx, 4 threads ($ncpu CPUs) x 150 ops anywhere on the device against the model" \
		grep -q '^fsx: ok' <<<"$out" || diag "$out"
	check "$kind, shared: remove and reopen" bash -c \
		"dmsetup remove obd40s && dmsetup create obd40s --table '$(table "$D" "$I")'"
	check_eq "$kind, shared: after the reopen the device = the model" "$(devsha obd40s)" "$(shaof $after)"
	check "$kind, shared: remove" dmsetup remove obd40s
done

vm_dmesg_check 45-upper-shared
tap_done
