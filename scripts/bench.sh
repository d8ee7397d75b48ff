#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make bench: every benchmark prints a ratio against a baseline measured in
# the same run (absolute times under TCG mean little).
#   1. lookup: static B+tree vs binary search over the same merged index.
#   2. fio in the test VM, both kernels: dm-overlaybd vs a loop device over
#      the flattened raw image of the same stack (tests/vm/bench-fio.sh).
#   3. lazy images in the test VM: cold read vs curl of the same blob, a
#      start-up workload, warm remote vs local (tests/vm/bench-remote.sh).
# OBD_BENCH_KERNELS="6.1 6.12" selects kernels; OBD_BENCH_SKIP_VM=1 skips 2
# and 3; OBD_BENCH_VM="fio remote" (default both) picks among them;
# OBD_BENCH_REMOTE_MB, OBD_BENCH_FS_MB size the images of 3 and
# OBD_BENCH_REMOTE_CASES ("1 2 3 4") picks its cases;
# OBD_BENCH_MB (stack size), OBD_BENCH_RUNTIME (s per warm run) and
# OBD_BENCH_REPEAT (runs per case, median reported) and OBD_BENCH_STACKS
# ("plain lz4" or either) reach the guest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
make -s -j"$(nproc)" all
echo "== lookup (build/bench/bench_lookup)"
build/bench/bench_lookup
[ "${OBD_BENCH_SKIP_VM:-0}" = 1 ] && exit 0
vm_suites=${OBD_BENCH_VM:-fio remote}
for k in ${OBD_BENCH_KERNELS:-6.1 6.12}; do
	make -s -C kmod KDIR="$(scripts/kernels.sh kdir "$k")"
	if [ -z "${vm_suites##*remote*}" ]; then
		echo "== lazy images, kernel $k (tests/vm/bench-remote.sh)"
		envs=()
		for v in OBD_BENCH_REMOTE_MB OBD_BENCH_FS_MB OBD_BENCH_REPEAT OBD_BENCH_REMOTE_CASES; do
			[ -n "${!v:-}" ] && envs+=(--env "$v=${!v}")
		done
		scripts/vm-run.sh --kernel "$k" --mem 3072 --timeout 3000 \
			--scratch-disk $(( ${OBD_BENCH_REMOTE_MB:-64} * 4 + ${OBD_BENCH_FS_MB:-256} * 3 + 512 )) \
			${envs[@]+"${envs[@]}"} -- bash tests/vm/bench-remote.sh
	fi
	[ -z "${vm_suites##*fio*}" ] || continue
	echo "== fio, kernel $k (tests/vm/bench-fio.sh)"
	envs=()
	for v in OBD_BENCH_MB OBD_BENCH_RUNTIME OBD_BENCH_REPEAT OBD_BENCH_STACKS; do
		[ -n "${!v:-}" ] && envs+=(--env "$v=${!v}")
	done
	# The layer files and the flat image live on ext4 on this disk: a
	# virtio disk over a host file takes parallel requests, as real
	# storage does (a loop device over tmpfs would serialize them).
	scripts/vm-run.sh --kernel "$k" --mem 3072 --timeout 2400 \
		--scratch-disk $(( ${OBD_BENCH_MB:-64} * 6 + 256 )) "${envs[@]}" -- \
		bash tests/vm/bench-fio.sh
done
