# SPDX-License-Identifier: GPL-2.0-only
#
# Shared helpers for the overlaybd-fetchd host tests (sourced): TAP output
# with a closing "# passed: P failed: F" line, a private temp dir, a
# docker-registry on 127.0.0.1, the counting/fault proxy and the kernel
# stand-in (kstub.py). $FETCHD is the daemon binary.

set -u
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$top/tests/fetchd
FETCHD=${FETCHD:-$top/build/overlaybd-fetchd}
case "$FETCHD" in /*) ;; *) FETCHD=$top/$FETCHD ;; esac
# nothing in these tests may go through a proxy from the environment
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1

T=$(mktemp -d /tmp/obd-fetchd-test.XXXXXX)
[ -n "${KEEP:-}" ] && echo "# temp dir $T"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}" $(cat "$T"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

tap_n=0
tap_fail=0
ok() {	# ok STATUS DESC
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n $2"
	else
		tap_fail=$((tap_fail + 1))
		echo "not ok $tap_n $2"
	fi
}
is() {	# is DESC GOT EXPECTED
	if [ "$2" = "$3" ]; then
		ok 0 "$1"
	else
		ok 1 "$1"
		echo "#   got:      $2"
		echo "#   expected: $3"
	fi
}
done_testing() {
	echo "1..$tap_n"
	echo "# passed: $((tap_n - tap_fail)) failed: $tap_fail"
	[ "$tap_fail" -eq 0 ]
	exit $?
}
bail() {
	echo "Bail out! $*"
	[ -f "$T/daemon.log" ] && tail -n 20 "$T/daemon.log" | sed 's/^/# /'
	echo "# passed: $((tap_n - tap_fail)) failed: $((tap_fail + 1))"
	exit 1
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {	# wait_port PORT: up to 10 s
	local i
	for i in $(seq 100); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# start_registry NAME [EXTRA_YAML_FILE]: sets REG_PORT; storage in $T/NAME
start_registry() {
	local name=$1 extra=${2:-}
	REG_PORT=${REG_PORT_FIXED:-$(free_port)}
	mkdir -p "$T/$name"
	cat > "$T/$name.yml" <<-YML
	version: 0.1
	log:
	  level: error
	  accesslog:
	    disabled: true
	storage:
	  filesystem:
	    rootdirectory: $T/$name
	http:
	  addr: 127.0.0.1:$REG_PORT
	YML
	[ -n "$extra" ] && cat "$extra" >> "$T/$name.yml"
	/usr/bin/docker-registry serve "$T/$name.yml" >"$T/$name.log" 2>&1 &
	REG_PID=$!
	pids+=("$REG_PID")
	wait_port "$REG_PORT" || bail "registry did not start"
}

# upload PORT|BASE_URL REPO FILE [CURL_ARGS...]: a monolithic blob upload
# (BASE_URL: "https://127.0.0.1:PORT", for a TLS registry)
upload() {
	local base=$1 repo=$2 file=$3 loc dig sep
	shift 3
	case "$base" in *://*) ;; *) base=http://127.0.0.1:$base ;; esac
	dig=sha256:$(sha256sum "$file" | cut -d' ' -f1)
	loc=$(curl -sS "$@" -X POST -D - -o /dev/null "$base/v2/$repo/blobs/uploads/" |
		tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	[ -n "$loc" ] || return 1
	case "$loc" in /*) loc=$base$loc ;; esac
	case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
	curl -sS -f "$@" -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" \
		"$loc${sep}digest=$dig" -o /dev/null
}

start_proxy() {	# start_proxy UPSTREAM_PORT: sets PX_PORT
	PX_PORT=$(free_port)
	python3 "$here/faultproxy.py" "$PX_PORT" "$1" >"$T/proxy.log" 2>&1 &
	pids+=("$!")
	wait_port "$PX_PORT" || bail "proxy did not start"
}

px() {	# px PATH?QUERY: a control request to the proxy
	curl -sS "http://127.0.0.1:$PX_PORT$1"
}

px_requests() {
	px /__stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'
}

mkblob() {	# mkblob FILE BYTES
	head -c "$2" /dev/urandom > "$1"
}

mkentry() {	# mkentry URL FILE -> prints the cache file path
	python3 "$here/kstub.py" mkentry "$T/cache" "$1" "$2"
}

# write_config FETCH [TOP]: service config with the given fetchConfig JSON
# members (and TOP: more top-level members, e.g. a certConfig); CACHE_MORE:
# more cacheConfig members
write_config() {
	cat > "$T/overlaybd.json" <<-JSON
	{ ${2:+$2,} "logConfig": { "logLevel": ${LOGLEVEL:-1} },
	  "cacheConfig": { "cacheDir": "$T/cache", "refillSize": 262144 ${CACHE_MORE:+, $CACHE_MORE} },
	  "credentialConfig": { "mode": "file", "path": "$T/cred.json" },
	  "fetchConfig": { $1 } }
	JSON
}

# run_stub NAME BLOBS_JSON STEPS_JSON: one daemon run; $T/NAME.json holds
# kstub's result; returns kstub's status. Daemon stderr -> $T/daemon.log.
run_stub() {
	local name=$1 blobs=$2 steps=$3
	cat > "$T/$name.script" <<-JSON
	{ "socket": "$T/chan.sock", "log": "$T/daemon.log", "timeout": 30,
	  "daemon": ["$FETCHD", "--service-config", "$T/overlaybd.json", "--device", "$T/chan.sock"],
	  "blobs": $blobs, "steps": $steps }
	JSON
	echo "=== run $name" >> "$T/daemon.log"
	python3 "$here/kstub.py" run "$T/$name.script" > "$T/$name.json"
	local rc=$?
	if [ $rc -ne 0 ]; then
		python3 -c 'import json,sys; [print("#   " + e) for e in json.load(open(sys.argv[1]))["errors"][:10]]' \
			"$T/$name.json" 2>/dev/null || sed 's/^/#   /' "$T/$name.json" | head -5
	fi
	return $rc
}

# make_ca: a test CA in $T/ca.pem (key $T/ca.key)
make_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$T/ca.key" -out "$T/ca.pem" -subj /CN=obd-test-CA \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		> "$T/openssl.log" 2>&1
}

# make_cert NAME SAN EKU: $T/NAME.pem + $T/NAME.key signed by the test CA,
# e.g. make_cert server IP:127.0.0.1 serverAuth
make_cert() {
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" \
		-out "$T/$1.csr" -subj "/CN=$1" >> "$T/openssl.log" 2>&1 &&
	printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$2" "$3" > "$T/$1.ext" &&
	openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
		-days 2 -out "$T/$1.pem" -extfile "$T/$1.ext" >> "$T/openssl.log" 2>&1
}

runlog() {	# runlog NAME: the daemon log lines of run_stub NAME
	sed -n "/^=== run $1\$/,/^=== run /p" "$T/daemon.log" | grep -v '^=== run '
}

jget() {	# jget FILE PY_EXPR (j = the JSON)
	python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"
}
