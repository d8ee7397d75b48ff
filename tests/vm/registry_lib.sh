# SPDX-License-Identifier: GPL-2.0-only
#
# Shared by the VM tests that need a registry and the real daemon (sourced
# after lib.sh): Debian's
# docker-registry on 127.0.0.1 with its storage in $d/reg (or $REG_ROOT),
# the counting/fault proxy of the host tests in front of it, and
# overlaybd-fetchd started and stopped around the checks.
#   reg_test_begin NAME          the usual start: binaries there, dmesg mark, module
#                                loaded, a private directory $d (cwd, with cache/),
#                                registry and proxy up
#   reg_start [PORT PROXY_PORT]   sets REG, PX; bails when either does not come up;
#                                with REG_USER and REG_PASS set, the registry wants them
#                                (htpasswd in $d/htpasswd)
#   reg_down / reg_up            stop / start the registry again (faults)
#   px_bytes / px_fault MODE [N [MS]]   proxy byte count; arm a fault
#   via_proxy IN OUT             a config.v1.json whose repoBlobUrl goes through the proxy
#   fetchd_start [SVC]           the daemon on /dev/overlaybd (log: fetchd.log), SVC default svc.json
#   fetchd_stop                  SIGTERM and wait
#   rand_layer FILE MiB SEED      FILE.commit: a layer of random data
#   turbo_svc                    svc.json for TurboOCI: cacheDir $d/cache, gzipCacheConfig
#                                on in $d/gz (refills of 1 MiB), syncIntervalMs 50
# Background daemons are never started inside check: its $(...) would wait
# for their output to close.
obd=$OBD_TOP/build/obd
fetchd=$OBD_TOP/build/overlaybd-fetchd
PY=/usr/bin/python3
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1

reg_test_begin() {
	[ -x "$obd" ] && [ -x "$fetchd" ] || bail "build/obd or build/overlaybd-fetchd missing: run make first"
	[ -x /usr/bin/docker-registry ] || bail "docker-registry missing: scripts/deps.sh installs it"
	vm_test_begin "$1"
	mkdir -p cache
	reg_start
	ok "docker-registry and the counting proxy on 127.0.0.1"
}

wait_port() {
	local i
	for i in $(seq 150); do
		$PY -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null &&
			return 0
		sleep 0.1
	done
	return 1
}

reg_start() {
	REG=${1:-5000}
	PX=${2:-5001}
	ip link set lo up || bail "ip link set lo up"
	mkdir -p "${REG_ROOT:=$d/reg}"
	cat > "$d/reg.yml" <<-YML
	version: 0.1
	log:
	  level: error
	  accesslog:
	    disabled: true
	storage:
	  filesystem:
	    rootdirectory: $REG_ROOT
	http:
	  addr: 127.0.0.1:$REG
	YML
	if [ -n "${REG_USER:-}" ]; then
		htpasswd -Bbn "$REG_USER" "$REG_PASS" > "$d/htpasswd" 2>/dev/null || bail "htpasswd"
		printf 'auth:\n  htpasswd:\n    realm: obd-test\n    path: %s\n' "$d/htpasswd" >> "$d/reg.yml"
	fi
	reg_up
	wait_port "$REG" || bail "registry did not start: $(tail -3 "$d/reg.log")"
	$PY "$OBD_TOP/tests/fetchd/faultproxy.py" "$PX" "$REG" > "$d/proxy.log" 2>&1 &
	vm_on_exit kill $!
	wait_port "$PX" || bail "proxy did not start"
}

# reg_up / reg_down: (re)start and stop the registry itself (the proxy stays)
REG_PID=
reg_up() {
	/usr/bin/docker-registry serve "$d/reg.yml" >> "$d/reg.log" 2>&1 &
	REG_PID=$!
	vm_on_exit reg_down
}
reg_down() {
	[ -n "$REG_PID" ] || return 0
	kill "$REG_PID" 2>/dev/null
	wait "$REG_PID" 2>/dev/null
	REG_PID=
}

px_bytes() { curl -s "http://127.0.0.1:$PX/__stats" | $PY -c 'import json, sys; print(json.load(sys.stdin)["bytes"])'; }
px_fault() { curl -s "http://127.0.0.1:$PX/__fault?mode=$1&n=${2:-1}&ms=${3:-3000}" > /dev/null; }
via_proxy() { sed "s|127.0.0.1:$REG/|127.0.0.1:$PX/|" "$1" > "$2"; }

fetchd_pid=
turbo_svc() {
	cat > svc.json <<-JSON
	{ "logConfig": { "logLevel": 1 },
	  "cacheConfig": { "cacheDir": "$d/cache", "refillSize": 262144 },
	  "gzipCacheConfig": { "enable": true, "cacheDir": "$d/gz", "refillSize": 1048576 },
	  "fetchConfig": { "requestTimeout": 20, "syncIntervalMs": 50 } }
	JSON
}

fetchd_start() {
	local i n0
	fetchd_stop
	n0=$(cat fetchd.log 2>/dev/null | wc -l)
	"$fetchd" --service-config "${1:-svc.json}" >> fetchd.log 2>&1 < /dev/null &
	fetchd_pid=$!
	for i in $(seq 100); do
		# this start's line, not an earlier run's
		tail -n +$((n0 + 1)) fetchd.log 2>/dev/null | grep -q 'serving /dev/overlaybd' && return 0
		kill -0 "$fetchd_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 0
}
fetchd_stop() {
	[ -n "$fetchd_pid" ] || return 0
	kill "$fetchd_pid" 2>/dev/null
	wait "$fetchd_pid" 2>/dev/null
	fetchd_pid=
}
vm_on_exit fetchd_stop

devsha() { sha256sum "/dev/mapper/$1" 2>/dev/null | cut -d' ' -f1; }
# meta_flags CACHEFILE: the entry header's flags word (1 = complete)
meta_flags() { $PY -c "import struct,sys; print(struct.unpack_from('<I', open(sys.argv[1] + '.meta','rb').read(24), 20)[0])" "$1"; }
# rand_layer FILE MiB SEED: FILE.commit, an uncompressed layer of MiB MiB of random data
rand_layer() {
	$PY -c "import random; random.seed($3); open('$1.raw', 'wb').write(random.randbytes($2 << 20))" &&
	"$obd" create "$1.data" "$1.index" "$2M" && "$obd" import --no-progress "$1.data" "$1.index" "$1.raw" &&
	"$obd" commit --no-progress "$1.data" "$1.index" "$1.commit"
}
