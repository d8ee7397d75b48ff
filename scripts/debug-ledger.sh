#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# debug-ledger.sh: what has passed on the debug kernel, for which module source.
#
#   scripts/debug-ledger.sh key            the module key: sha256 (16 hex) of the
#                                          source tree dkms builds (make install-dkms-src),
#                                          then the debug kernel's cache key
#   scripts/debug-ledger.sh passed TEST    exit 0 if TEST (e.g. 22-qemu-io, failslab)
#                                          passed on this key with this test file
#   scripts/debug-ledger.sh add TEST SECS  record a clean pass of TEST
#   scripts/debug-ledger.sh left           the VM tests (and failslab) not yet passed
#                                          on this key, one a line
#
# The whole debug-kernel suite takes hours under TCG, more than one sitting: a clean
# pass of one test counts as long as the module's source (every file the module is
# built from, comments included), the debug kernel (config + source) and the test
# file itself (with tests/vm/lib.sh) are unchanged. `make check-debug` runs every
# test; OBD_DEBUG_RESUME=1 skips what the ledger already holds for this key.
# The ledger is docs/debug-ledger.tsv (committed: the proof travels with the tree):
#   date  module-key  kernel-key  test  test-sha  seconds
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
ledger=${OBD_DEBUG_LEDGER:-$top/docs/debug-ledger.tsv}

module_key() {
	local tmp
	tmp=$(mktemp -d)
	make -s -C "$top" install-dkms-src DESTDIR="$tmp" VERSION=ledger > /dev/null
	(cd "$tmp" && find . -type f | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16
	rm -rf "$tmp"
}

kernel_key() {
	basename "$("$top/scripts/debug-kernel.sh" dir)" | cut -c1-16
}

test_file() {
	case $1 in
	failslab) echo "$top/tests/vm/debug-failslab.sh" ;;
	*) echo "$top/tests/vm/$1.sh" ;;
	esac
}

test_sha() {
	local f
	f=$(test_file "$1")
	[ -f "$f" ] || { echo "debug-ledger: no test $1 ($f)" >&2; exit 2; }
	cat "$f" "$top/tests/vm/lib.sh" | sha256sum | cut -c1-16
}

case ${1:-} in
key)
	echo "$(module_key) $(kernel_key)"
	;;
passed)
	[ $# -eq 2 ] || { echo "usage: $0 passed TEST" >&2; exit 2; }
	[ -f "$ledger" ] || exit 1
	read -r mk kk <<< "${OBD_LEDGER_KEY:-$("$0" key)}"
	ts=$(test_sha "$2")
	awk -F'\t' -v m="$mk" -v k="$kk" -v t="$2" -v s="$ts" \
		'$2 == m && $3 == k && $4 == t && $5 == s { found = 1 } END { exit !found }' "$ledger"
	;;
add)
	[ $# -eq 3 ] || { echo "usage: $0 add TEST SECONDS" >&2; exit 2; }
	read -r mk kk < <("$0" key)
	[ -f "$ledger" ] || printf '# date\tmodule-key\tkernel-key\ttest\ttest-sha\tseconds\n' > "$ledger"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$mk" "$kk" "$2" \
		"$(test_sha "$2")" "$3" >> "$ledger"
	;;
left)
	OBD_LEDGER_KEY=$("$0" key)
	export OBD_LEDGER_KEY
	for t in "$top"/tests/vm/[0-9]*.sh failslab; do
		n=$(basename "$t" .sh)
		"$0" passed "$n" || echo "$n"
	done
	;;
*)
	echo "usage: $0 key | passed TEST | add TEST SECONDS | left" >&2
	exit 2
	;;
esac
