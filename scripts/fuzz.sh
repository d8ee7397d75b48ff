#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# libFuzzer runs of the format core's parsers.
#
#   scripts/fuzz.sh build   build build-fuzz/fuzz_* only
#   scripts/fuzz.sh short   each target FUZZ_SECONDS (default 20) on a temp copy
#                           of tests/fuzz/corpus/<target>; the repo is not modified
#   scripts/fuzz.sh long    each target FUZZ_SECONDS (default 300); new inputs
#                           go to build-fuzz/corpus/<target>/
#   scripts/fuzz.sh short|long fuzz_lsmt ...   only these targets
#   FUZZ_NOBUILD=1 scripts/fuzz.sh ...         reuse build-fuzz/ as it is
#   scripts/fuzz.sh corpus  rewrite the generated seeds of tests/fuzz/corpus/
#                           with tests/fuzz/gen_corpus.c (modifies the repo)
#   scripts/fuzz.sh repro [target...]
#                           run each target once over tests/fuzz/crashes/<target>/
#                           (the recorded reproducers of known bugs)
#
# Any crash, sanitizer report, leak or timeout fails the target. Output is TAP,
# one line per target, then "# passed: P failed: F"; exit status 1 on failure.
#
# Every lib/core/*.c and lib/user/*.c is compiled with clang
# -fsanitize=fuzzer-no-link,address,undefined; a file that does not compile
# fails the build (nothing is skipped). fuzz_config links the tools'
# config.v1.json parser (cli_config_load, tools/cli_stack.c)
# and what it reaches of tools/*.c (an archive), registry/ and curl; fuzz_manifest
# (imageref_manifest_parse, tools/cli_imageref.c) and fuzz_ocimanifest
# (oci_manifest_layers, tools/cli_oci.c) are linked the same way. The registry targets (REG_TARGETS:
# fuzz_svcconfig, fuzz_cred, fuzz_wwwauth, fuzz_token, fuzz_url) link the
# pure registry helpers registry/{config,cred,auth,url}.c, compiled the
# same way with -Iregistry.
set -u
cd "$(dirname "$0")/.."

MODE=${1:-short}
shift || true
OUT=build-fuzz
CC_FUZZ=${CC_FUZZ:-clang}
MAX_LEN=${FUZZ_MAX_LEN:-1048576}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS_FUZZ="-std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -g -O1 -Wall -Wextra \
-Wno-unused-parameter -Iinclude -Ilib/core -Ilib/user -Itools $SAN -DOBD_VERSION=\"$(scripts/version.sh)\""
LIBS="-llz4 -lzstd -lz -ljson-c -ldevmapper -lpthread"
REG_SRCS="registry/config.c registry/cred.c registry/auth.c registry/url.c"
REG_TARGETS=" fuzz_svcconfig fuzz_cred fuzz_wwwauth fuzz_token fuzz_url "

case $MODE in
short) : "${FUZZ_SECONDS:=20}" ;;
long) : "${FUZZ_SECONDS:=300}" ;;
build|repro) : "${FUZZ_SECONDS:=0}" ;;
corpus)
	mkdir -p "$OUT"
	cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Ilib/core -Ilib/user -o "$OUT/gen_corpus" \
		-DOBD_SRCDIR="\"$PWD\"" tests/fuzz/gen_corpus.c tests/unit/testutil.c -llz4 -lzstd || exit 1
	exec "$OUT/gen_corpus" tests/fuzz/corpus tests/data/overlaybd-ref
	;;
*) echo "usage: $0 short|long|build|repro|corpus [target...]" >&2; exit 2 ;;
esac

die() { echo "fuzz.sh: $*" >&2; exit 1; }

command -v "$CC_FUZZ" >/dev/null || die "$CC_FUZZ not found (apt-get install clang libclang-rt-dev)"

build() {
	local f o objs=() tobjs=()
	mkdir -p "$OUT/obj/lib" "$OUT/obj/tools"
	for f in lib/core/*.c lib/user/*.c; do
		o=$OUT/obj/lib/$(basename "${f%.c}").o
		# rebuilt when the source or any lib/ or include/ header is newer
		if [ ! -e "$o" ] || [ "$f" -nt "$o" ] ||
		   [ -n "$(find lib include -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
			"$CC_FUZZ" $CFLAGS_FUZZ -fsanitize=fuzzer-no-link -c -o "$o" "$f" ||
				die "lib file $f does not build with $CC_FUZZ: fuzz build FAILED"
		fi
		objs+=("$o")
	done
	[ ${#objs[@]} -gt 0 ] || die "no lib/*/*.c"
	# The registry library (registry/, libobdreg.a in the Makefile): REG_SRCS,
	# json-c and libcurl's URL API (url.c), linked into the registry targets; the rest of
	# libobdreg.a (cache_entry.c, cache_scan.c, cred_server.c, http.c: curl) only where the tools' files need it.
	local robjs=() eobjs=()
	mkdir -p "$OUT/obj/registry"
	for f in $REG_SRCS registry/cache_entry.c registry/cache_scan.c registry/cred_server.c registry/http.c; do
		[ -e "$f" ] || continue
		o=$OUT/obj/registry/$(basename "${f%.c}").o
		if [ ! -e "$o" ] || [ "$f" -nt "$o" ] ||
		   [ -n "$(find registry lib include -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
			"$CC_FUZZ" $CFLAGS_FUZZ -Iregistry -fsanitize=fuzzer-no-link -c -o "$o" "$f" ||
				die "$f does not build with $CC_FUZZ (needed by the registry targets)"
		fi
		case " $REG_SRCS " in *" $f "*) robjs+=("$o") ;; *) eobjs+=("$o") ;; esac
	done
	# The tools' config.v1.json parser: the tools/ file defining
	# cli_config_load(), with the tools' helper files (tools/cli_*.c, and
	# reg_client.c for remote layers; not obd.c, which has main(), nor the
	# cmd_*.c subcommands) in an archive, as libobd.a does for lib/: the
	# linker takes only the members fuzz_config needs. They include registry/
	# headers and need libobdreg.a's objects, curl and libcrypto.
	CONFIG_SRC=$(grep -l '^int cli_config_load(' tools/*.c 2>/dev/null | head -1)
	if [ -n "$CONFIG_SRC" ]; then
		for f in tools/cli_*.c tools/reg_client.c; do
			o=$OUT/obj/tools/$(basename "${f%.c}").o
			"$CC_FUZZ" $CFLAGS_FUZZ -Iregistry -fsanitize=fuzzer-no-link -c -o "$o" "$f" ||
				die "$f does not build with $CC_FUZZ (needed by fuzz_config)"
			tobjs+=("$o")
		done
		rm -f "$OUT/libtools.a"
		ar rcs "$OUT/libtools.a" "${tobjs[@]}" || die "ar $OUT/libtools.a failed"
	fi
	TARGETS=()
	for f in tests/fuzz/fuzz_*.c; do
		local t
		t=$(basename "${f%.c}")
		if [ -z "${REG_TARGETS##* $t *}" ]; then
			"$CC_FUZZ" $CFLAGS_FUZZ -Iregistry -fsanitize=fuzzer -o "$OUT/$t" "$f" \
				"${robjs[@]}" "${objs[@]}" $LIBS -lcurl -lcrypto || die "building $t failed"
		elif [ "$t" = fuzz_config ] || [ "$t" = fuzz_manifest ] || [ "$t" = fuzz_ocimanifest ]; then
			[ -n "$CONFIG_SRC" ] || die "fuzz_config: no cli_config_load() in tools/*.c"
			"$CC_FUZZ" $CFLAGS_FUZZ -Iregistry -fsanitize=fuzzer -o "$OUT/$t" "$f" "$OUT/libtools.a" \
				"${robjs[@]}" "${eobjs[@]}" "${objs[@]}" $LIBS -lcurl -lcrypto ||
				die "building $t failed"
		else
			"$CC_FUZZ" $CFLAGS_FUZZ -fsanitize=fuzzer -o "$OUT/$t" "$f" \
				"${objs[@]}" $LIBS || die "building $t failed"
		fi
		TARGETS+=("$t")
	done
}

if [ -n "${FUZZ_NOBUILD:-}" ]; then
	# reuse build-fuzz/ (e.g. several runs in parallel); targets as built
	TARGETS=()
	for f in "$OUT"/fuzz_*; do [ -x "$f" ] && TARGETS+=("$(basename "$f")"); done
	[ ${#TARGETS[@]} -gt 0 ] || die "FUZZ_NOBUILD set but nothing in $OUT"
else
	build
fi
[ "$MODE" = build ] && { echo "built: ${TARGETS[*]}"; exit 0; }
if [ $# -gt 0 ]; then TARGETS=("$@"); fi

n=0 pass=0 fail=0
# libFuzzer writes every new input: prefer a tmpfs
TMPBASE=${FUZZ_TMPDIR:-$( [ -w /dev/shm ] && echo /dev/shm || echo /tmp )}
export FUZZ_TMPDIR=$TMPBASE
TMP=$(mktemp -d "$TMPBASE/obd-fuzz.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

for t in "${TARGETS[@]}"; do
	n=$((n + 1))
	bin=$OUT/$t
	log=$TMP/$t.log
	seed=tests/fuzz/corpus/$t
	case $MODE in
	short)
		mkdir -p "$TMP/corpus/$t" "$TMP/art/$t"
		[ -d "$seed" ] && cp -r "$seed/." "$TMP/corpus/$t/"
		"$bin" -max_len="$MAX_LEN" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$TMP/art/$t/" "$TMP/corpus/$t" >"$log" 2>&1
		rc=$?
		art=$TMP/art/$t
		;;
	long)
		mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
		dirs=("$OUT/corpus/$t")
		[ -d "$seed" ] && dirs+=("$seed")	# read only: libFuzzer writes to the first
		"$bin" -max_len="$MAX_LEN" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=1 -use_value_profile=1 \
			-artifact_prefix="$OUT/artifacts/$t/" "${dirs[@]}" >"$log" 2>&1
		rc=$?
		art=$OUT/artifacts/$t
		;;
	repro)
		files=(tests/fuzz/crashes/$t/*)
		if [ ! -e "${files[0]}" ]; then
			echo "ok $n $t # SKIP no reproducers"; pass=$((pass + 1)); continue
		fi
		"$bin" -runs=1 "${files[@]}" >"$log" 2>&1
		rc=$?
		art=
		;;
	esac
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	if [ $rc -eq 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
		echo "ok $n $t (${execs:-?} runs, ${cov:-cov: ?})"
		pass=$((pass + 1))
	else
		echo "not ok $n $t (exit $rc)"
		grep -E 'ERROR:|SUMMARY:|runtime error:|fuzz invariant|Test unit written|#[0-9]+ 0x' "$log" |
			head -40 | sed 's/^/# /'
		if [ "$MODE" = short ] && [ -n "$art" ]; then
			# keep the artifacts beyond the temp dir
			mkdir -p "$OUT/artifacts/$t" && cp -r "$art/." "$OUT/artifacts/$t/" 2>/dev/null
			art=$OUT/artifacts/$t
		fi
		[ -n "$art" ] && ls "$art" 2>/dev/null | sed "s|^|# artifact: $art/|"
		fail=$((fail + 1))
	fi
done
echo "1..$n"
echo "# passed: $pass failed: $fail"
[ $fail -eq 0 ]
