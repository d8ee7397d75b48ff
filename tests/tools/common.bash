# SPDX-License-Identifier: GPL-2.0-only
#
# Shared helpers for the obd CLI tests (sourced). TAP lines on stdout, a
# closing "# passed: P failed: F" line, exit status 1 if anything failed.
# $OBD is the obd binary (default build/obd); each script runs in a
# private temp dir removed on exit.

set -u
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OBD=${OBD:-$top/build/obd}
case "$OBD" in /*) ;; *) OBD=$top/$OBD ;; esac
REF=${OBD_REF:-$top/tests/data/overlaybd-ref}
GEN="python3 $top/tests/tools/oracle-gen.py"
U1=11111111-1111-4111-8111-111111111111
U2=22222222-2222-4222-8222-222222222222
SHA_L1=2f0aaac9524d2897789b77575cd5c3145b9b634da4a5214c5cad92176545e75b
SHA_L1L2=fde68d5fbdf5f9582175537e5b942a8debbf33a5d4959cd24fc79adbf424bd81

T=$(mktemp -d /tmp/obd-tools-test.XXXXXX)
# background servers (start_registry, stubs) are killed on exit
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 1

# the compat names, as symlinks (dispatch is on basename(argv[0]))
mkdir -p "$T/bin"
for n in overlaybd-create overlaybd-commit overlaybd-zfile; do ln -s "$OBD" "$T/bin/$n"; done
B=$T/bin

tap_n=0
tap_fail=0

ok() {	# ok COND_STATUS DESC
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n $2"
	else
		tap_fail=$((tap_fail + 1))
		echo "not ok $tap_n $2"
	fi
}

# t DESC CMD...: the command must succeed
t() {
	local d=$1; shift
	"$@" >"$T/.out" 2>"$T/.err"
	local rc=$?
	ok $rc "$d"
	[ $rc -eq 0 ] || { sed 's/^/# /' "$T/.err" | head -n 10; }
	return $rc
}

# is DESC GOT EXPECTED
is() {
	if [ "$2" = "$3" ]; then
		ok 0 "$1"
	else
		ok 1 "$1"
		echo "#   got:      $2"
		echo "#   expected: $3"
	fi
}

# fails DESC RC_EXPECTED PATTERN CMD...: exit status RC_EXPECTED (or "nz" for
# any non-zero) and stderr matching PATTERN (grep -E)
fails() {
	local d=$1 want=$2 pat=$3; shift 3
	"$@" >"$T/.out" 2>"$T/.err"
	local rc=$?
	local good=1
	if [ "$want" = nz ]; then [ $rc -ne 0 ] && good=0; else [ $rc -eq "$want" ] && good=0; fi
	if [ $good -eq 0 ] && [ -n "$pat" ] && ! grep -qE -- "$pat" "$T/.err"; then good=1; fi
	ok $good "$d"
	if [ $good -ne 0 ]; then
		echo "#   exit $rc (wanted $want), stderr:"
		sed 's/^/#     /' "$T/.err" | head -n 5
	fi
}

sha() { sha256sum "$@" | cut -d' ' -f1; }

# jget FILE PY_EXPR: evaluate a Python expression over the JSON in FILE (as j)
jget() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# apply_ops DATA [INDEX] OPSFILE: replay a .ops file through obd write/discard
apply_ops() {
	local ops=${!#} layer=("${@:1:$#-1}") op off len kind arg
	$GEN ops "$ops" | while read -r op off len kind arg; do
		if [ "$op" = W ]; then
			$GEN data "$off" "$len" "$kind" "$arg" |
				"$OBD" write "${layer[@]}" --offset "$off" || return 1
		else
			"$OBD" discard "${layer[@]}" --offset "$off" --length "$len" || return 1
		fi
	done
}

done_testing() {
	echo "1..$tap_n"
	echo "# passed: $((tap_n - tap_fail)) failed: $tap_fail"
	[ $tap_fail -eq 0 ]
	exit $?
}

if [ ! -x "$OBD" ]; then
	echo "Bail out! $OBD not built"
	echo "# passed: 0 failed: 1"
	exit 1
fi

# ---------------------------------------------------------------------------
# servers on 127.0.0.1 (registry tests)

# skip_without CMD...: the whole script is skipped when a command is missing
skip_without() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null && continue
		echo "1..0 # SKIP $c missing (scripts/deps.sh)"
		echo "# passed: 0 failed: 0"
		exit 0
	done
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {	# wait_port PORT: 0 once something listens on 127.0.0.1:PORT
	local _
	for _ in $(seq 100); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null &&
			return 0
		sleep 0.1
	done
	return 1
}

# start_registry NAME PORT [YAML_TAIL]: Debian's docker-registry on
# 127.0.0.1:PORT storing in $T/NAME, logging to NAME.log (info: the tests
# count requests in it); YAML_TAIL follows "http: addr:" (indent it two
# spaces for more http keys, none for top-level ones such as auth).
# 0 once it answers.
start_registry() {
	cat > "$1.yml" <<-EOF
	version: 0.1
	log:
	  level: info
	storage:
	  filesystem:
	    rootdirectory: $T/$1
	http:
	  addr: 127.0.0.1:$2
	${3:-}
	EOF
	docker-registry serve "$1.yml" > "$1.log" 2>&1 &
	pids+=("$!")
	wait_port "$2"
}
