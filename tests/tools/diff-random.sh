#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Randomized differential test of the obd command line: random stacks of
# writable layers (append mode and sparse) filled by `obd write` / `obd
# discard`, read back through `obd cat` with the writable layer on top,
# committed (`obd commit`, plain or -z with lz4/zstd and 4..64 KiB blocks,
# with or without -t, sometimes through --seal + --commit_sealed), checked
# (`obd check`) and read back as a committed stack, whole and in sub-ranges.
# The expected sha256 of every read comes from tests/tools/obd-model.py.
#
#   OBD=build/obd  OBD_SEED=<n> (replay one seed)  OBD_ITERS=<count>
#
# A missing command or option is a failure, not a skip.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
OBD=${OBD:-$top/build/obd}
case $OBD in /*) ;; *) OBD=$top/$OBD ;; esac

if [ -n "${OBD_SEED:-}" ]; then
	seeds=("$OBD_SEED")
	[ -n "${OBD_ITERS:-}" ] && echo "# OBD_ITERS ignored: OBD_SEED replays one seed"
else
	seeds=()
	for ((k = 0; k < ${OBD_ITERS:-4}; k++)); do
		seeds+=("$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')")
	done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/obd-diffcli.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n $*"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n $*"; }

if [ ! -x "$OBD" ]; then
	notok "obd binary $OBD exists"
	echo "1..$n"
	echo "# passed: $((n - fail)) failed: $fail"
	exit 1
fi

for seed in "${seeds[@]}"; do
	d=$work/s$seed
	mkdir -p "$d"
	if ! plan=$(python3 "$here/obd-model.py" "$seed" "$d" 2>"$d/model.err"); then
		notok "seed $seed: model generator"
		sed 's/^/# /' "$d/model.err"
		continue
	fi
	sed 's/^/# /' "$d/model.err"
	steps=0
	seed_ok=1
	while IFS=$'\t' read -r -a f; do
		kind=${f[0]} desc=${f[1]}
		steps=$((steps + 1))
		if [ "$kind" = run ]; then
			if ! (cd "$d" && "$OBD" "${f[@]:2}") >"$d/out" 2>&1; then
				notok "seed $seed: $desc"
				echo "# command: obd ${f[*]:2}"
				sed 's/^/#   /' "$d/out" | head -n 20
				echo "# replay: OBD_SEED=$seed bash tests/tools/diff-random.sh"
				seed_ok=0
				break
			fi
		else
			want=${f[2]}
			(cd "$d" && "$OBD" "${f[@]:3}") >"$d/cat.out" 2>"$d/err"
			rc=$?
			got=$(sha256sum <"$d/cat.out" | cut -d' ' -f1)
			rm -f "$d/cat.out"
			if [ "$rc" = 0 ] && [ "$got" = "$want" ]; then
				ok "seed $seed: $desc"
			else
				notok "seed $seed: $desc"
				echo "# command: obd ${f[*]:3} (exit $rc)"
				echo "# sha256 got $got, model $want"
				sed 's/^/#   /' "$d/err" | head -n 10
				echo "# replay: OBD_SEED=$seed bash tests/tools/diff-random.sh"
				seed_ok=0
			fi
		fi
	done <<<"$plan"
	[ "$seed_ok" = 1 ] && ok "seed $seed: all $steps steps"
	rm -rf "$d"
done

echo "1..$n"
echo "# passed: $((n - fail)) failed: $fail"
[ "$fail" -eq 0 ]
