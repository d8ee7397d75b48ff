#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make bench: every benchmark prints a ratio against a baseline measured in
# the same run (absolute times under TCG mean little).
#   1. lookup: static B+tree vs binary search over the same merged index.
#   2. fio in the test VM, both kernels: dm-overlaybd vs a loop device over
#      the flattened raw image of the same stack (tests/vm/bench-fio.sh).
#   3. lazy images in the test VM: cold read vs curl of the same blob, a
#      start-up workload (also over a link shaped with tc netem), warm
#      remote vs local (tests/vm/bench-remote.sh).
#   4. writes in the test VM, both kernels: dm-overlaybd with an append and
#      a sparse upper layer vs a loop device over a sparse file, durable
#      4 KiB random and 1 MiB sequential writes (tests/vm/bench-upper.sh).
#   5. TurboOCI in the test VM (issue #20): start-up from a TurboOCI image
#      vs skopeo copy + umoci unpack of the original, bytes fetched / its
#      compressed size, warm reads vs the image as native overlaybd; over
#      the plain loopback and a netem-shaped one (tests/vm/bench-turbo.sh).
# OBD_BENCH_KERNELS="6.1 6.12" selects kernels; OBD_BENCH_SKIP_VM=1 skips 2
# to 5; OBD_BENCH_VM="fio remote upper turbo" (the default: all four) picks
# among them; OBD_BENCH_REMOTE_MB, OBD_BENCH_FS_MB size the images of 3 and
# OBD_BENCH_REMOTE_CASES ("1 2 3 4") picks its cases; OBD_BENCH_TURBO_MB
# (default 256) sizes the files of 5's image; OBD_BENCH_LINKS ("unshaped
# shaped" or either) picks the links of 3's start-up and of 5;
# OBD_BENCH_MB (stack size of 2, default 64; device size of 4, default
# 256), OBD_BENCH_RUNTIME (s per warm run of 2, per run of 4) and
# OBD_BENCH_REPEAT (runs per case, median reported) reach the guest, as do
# OBD_BENCH_STACKS ("plain lz4" or either) for 2, OBD_BENCH_UPPERS ("append
# sparse" or either) and OBD_BENCH_UPPER_CASES ("1 2 3") for 4.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
make -s -j"$(nproc)" all
# guest_env VAR...: the --env arguments of vm-run.sh (in envs) for those set here
guest_env() {
	local v
	envs=()
	for v in "$@"; do
		[ -z "${!v:-}" ] || envs+=(--env "$v=${!v}")
	done
}
echo "== lookup (build/bench/bench_lookup)"
build/bench/bench_lookup
[ "${OBD_BENCH_SKIP_VM:-0}" = 1 ] && exit 0
vm_suites=${OBD_BENCH_VM:-fio remote upper turbo}
for k in ${OBD_BENCH_KERNELS:-6.1 6.12}; do
	make -s -C kmod KDIR="$(scripts/kernels.sh kdir "$k")"
	if [ -z "${vm_suites##*remote*}" ]; then
		echo "== lazy images, kernel $k (tests/vm/bench-remote.sh)"
		guest_env OBD_BENCH_REMOTE_MB OBD_BENCH_FS_MB OBD_BENCH_REPEAT OBD_BENCH_REMOTE_CASES \
			 OBD_BENCH_LOGLEVEL OBD_BENCH_WARM_REPEAT OBD_BENCH_WARM_PASSES OBD_BENCH_LINKS
		scripts/vm-run.sh --kernel "$k" --mem 3072 --timeout 3000 \
			--scratch-disk $(( ${OBD_BENCH_REMOTE_MB:-64} * 4 + ${OBD_BENCH_FS_MB:-256} * 3 + 512 )) \
			${envs[@]+"${envs[@]}"} -- bash tests/vm/bench-remote.sh
	fi
	if [ -z "${vm_suites##*fio*}" ]; then
		echo "== fio, kernel $k (tests/vm/bench-fio.sh)"
		guest_env OBD_BENCH_MB OBD_BENCH_RUNTIME OBD_BENCH_REPEAT OBD_BENCH_STACKS
		# The layer files and the flat image live on ext4 on this disk: a
		# virtio disk over a host file takes parallel requests, as real
		# storage does (a loop device over tmpfs would serialize them).
		scripts/vm-run.sh --kernel "$k" --mem 3072 --timeout 2400 \
			--scratch-disk $(( ${OBD_BENCH_MB:-64} * 6 + 256 )) ${envs[@]+"${envs[@]}"} -- \
			bash tests/vm/bench-fio.sh
	fi
	if [ -z "${vm_suites##*upper*}" ]; then
		echo "== writes to an upper layer, kernel $k (tests/vm/bench-upper.sh)"
		guest_env OBD_BENCH_MB OBD_BENCH_RUNTIME OBD_BENCH_REPEAT OBD_BENCH_UPPERS \
			OBD_BENCH_UPPER_CASES
		# The lower layer, each run's upper files and the loop file on
		# ext4 on this disk (a sparse host file: the size costs nothing;
		# an append upper grows with every write of a run).
		scripts/vm-run.sh --kernel "$k" --mem 3072 --timeout 2400 \
			--scratch-disk $(( ${OBD_BENCH_MB:-256} * 6 + 2048 )) ${envs[@]+"${envs[@]}"} -- \
			bash tests/vm/bench-upper.sh
	fi
	if [ -z "${vm_suites##*turbo*}" ]; then
		echo "== TurboOCI, kernel $k (tests/vm/bench-turbo.sh)"
		guest_env OBD_BENCH_TURBO_MB OBD_BENCH_REPEAT OBD_BENCH_WARM_REPEAT OBD_BENCH_LINKS \
			OBD_BENCH_LOGLEVEL
		# ext4 on this disk holds the registry, the source, both
		# conversions, each pull and its unpack, and the caches (a
		# sparse host file)
		scripts/vm-run.sh --kernel "$k" --mem 3072 --timeout 5400 \
			--scratch-disk $(( ${OBD_BENCH_TURBO_MB:-256} * 8 + 2048 )) ${envs[@]+"${envs[@]}"} -- \
			bash tests/vm/bench-turbo.sh
	fi
done
