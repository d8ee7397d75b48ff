#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A configured CA file replaces the system CAs (review fetchd.md D8): two
# test CAs, A and B; the servers' certificates are B's. Each run is in a
# private mount namespace (unshare -rm) where /etc/ssl/certs, libcurl's
# built-in CA directory (CURLOPT_CAPATH), holds B (hashed) and a bundle
# of an unrelated CA C: without a CA file B's certificates verify through
# that directory (the control); with certConfig.caFile = A (registry) or
# server_ca_path = A (https credential server) they must not: CAPATH is
# cleared. An https proxy (fwdproxy.py with TLS, certificate by B) in
# front of a registry whose certificate is A's: caFile = A must refuse the
# proxy (PROXY_CAPATH cleared), A + B passes. obd (reg_client) likewise.
# Nothing is installed system-wide.
. "$(dirname "$0")/lib.bash"

K=4096
OBDB=${OBD:-$top/build/obd}
case "$OBDB" in /*) ;; *) OBDB=$top/$OBDB ;; esac
unshare -rm true 2>/dev/null || { echo "1..0 # SKIP unshare -rm (mount namespaces) not available"; exit 0; }
mkdir -p "$T/cache" "$T/certs"

ca() {	# ca NAME: a CA of its own subject in $T/NAME.pem/.key
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$T/$1.key" -out "$T/$1.pem" -subj "/CN=obd-test-$1" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		>> "$T/openssl.log" 2>&1
}
cert() {	# cert NAME CA: a server certificate for 127.0.0.1 signed by CA
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" \
		-out "$T/$1.csr" -subj "/CN=$1" >> "$T/openssl.log" 2>&1 &&
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$T/$1.ext" &&
	openssl x509 -req -in "$T/$1.csr" -CA "$T/$2.pem" -CAkey "$T/$2.key" -CAcreateserial \
		-days 2 -out "$T/$1.pem" -extfile "$T/$1.ext" >> "$T/openssl.log" 2>&1
}
ca caA && ca caB && ca caC && cert server caB && cp "$T/caB.pem" "$T/certs/" &&
	openssl rehash "$T/certs" >> "$T/openssl.log" 2>&1 && cp "$T/caC.pem" "$T/certs/ca-certificates.crt"
ok $? "CAs A, B, C; server certificate by B; a CA directory with B (hashed), bundle C"

# in_ns CMD...: CMD with /etc/ssl/certs = $T/certs
in_ns() {
	unshare -rm sh -c 'mount --bind "$0" /etc/ssl/certs && exec "$@"' "$T/certs" "$@"
}
in_ns curl -sS -o /dev/null https://127.0.0.1:1/ 2>&1 | grep -q 'Could not connect\|Failed to connect\|Connection refused'
ok $? "curl runs in the namespace"

mkblob "$T/a.bin" $((65536 + 99))
dig=$(sha256sum "$T/a.bin" | cut -d' ' -f1)
RP=$(free_port)
echo '{}' > "$T/reg.cfg"
python3 "$here/fakereg.py" "$RP" "$T/a.bin" "$T/reg.cfg" "$T/reg.req" "$T/server.pem" "$T/server.key" \
	> "$T/reg.log" 2>&1 &
pids+=("$!")
wait_port "$RP" || bail "registry did not start"
in_ns curl -sS -o /dev/null "https://127.0.0.1:$RP/v2/x/blobs/sha256:$dig"
ok $? "control: curl in the namespace trusts B through the CA directory alone"
curl -sS -o /dev/null --cacert "$T/caA.pem" "https://127.0.0.1:$RP/" 2> /dev/null
[ $? -ne 0 ]; ok $? "control: curl outside it, with A only, does not"

URL=https://127.0.0.1:$RP/v2/test/a/blobs/sha256:$dig
BLOBS="[{\"id\":1,\"cache\":\"$T/cache/sha256:$dig\",\"data\":\"$T/a.bin\"}]"
echo '{}' > "$T/cred.json"
FC='"requestTimeout": 5, "maxRetries": 1, "syncIntervalMs": 100, "readaheadMB": 0'
# ns_stub NAME STEPS: run_stub inside the namespace
ns_stub() {
	cat > "$T/$1.script" <<-JSON
	{ "socket": "$T/chan.sock", "log": "$T/daemon.log", "timeout": 30,
	  "daemon": ["$FETCHD", "--service-config", "$T/overlaybd.json", "--device", "$T/chan.sock"],
	  "blobs": $BLOBS, "steps": $2 }
	JSON
	echo "=== run $1" >> "$T/daemon.log"
	in_ns python3 "$here/kstub.py" run "$T/$1.script" > "$T/$1.json"
}

# --- the registry --------------------------------------------------------------------
mkentry "$URL" "$T/a.bin" > /dev/null
write_config "$FC"
ns_stub sys "[ {\"read\": [[1, 0, $K]]} ]"
ok $? "registry, no caFile: B's certificate verifies through the CA directory (control)"

mkentry "$URL" "$T/a.bin" > /dev/null
write_config "$FC" "\"certConfig\": { \"caFile\": \"$T/caA.pem\" }"
ns_stub capath "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
ok $? "registry, caFile = A: B's certificate refused although B is in the CA directory"
runlog capath | grep -q 'failed: .*certificate'
ok $? "registry, caFile = A: the log says it is the certificate"

mkentry "$URL" "$T/a.bin" > /dev/null
write_config "$FC" "\"certConfig\": { \"caFile\": \"$T/caB.pem\" }"
ns_stub cab "[ {\"read\": [[1, 0, $K]]} ]"
ok $? "registry, caFile = B: reads succeed"

# --- the https credential server ---------------------------------------------------------
CP=$(free_port)
python3 "$here/credserver.py" https "$CP" "$T/server.pem" "$T/server.key" > "$T/credserver.log" 2>&1 &
pids+=("$!")
wait_port "$CP" || bail "credential server did not start"
echo '{"auth": "basic", "user": "alice", "pass": "s3cret-PW"}' > "$T/reg.cfg"
in_ns curl -sS -o /dev/null "https://127.0.0.1:$CP/__set?mode=ok&user=alice&pass=s3cret-PW"
ok $? "credential server set up (through the CA directory)"
cred_config() {	# cred_config [MORE credentialConfig members]
	cat > "$T/overlaybd.json" <<-JSON
	{ "logConfig": { "logLevel": 1 },
	  "cacheConfig": { "cacheDir": "$T/cache", "refillSize": 262144 },
	  "certConfig": { "caFile": "$T/caB.pem" },
	  "credentialConfig": { "mode": "https", "path": "https://127.0.0.1:$CP/v1/cred", "timeout": 2 ${1:+, $1} },
	  "fetchConfig": { $FC } }
	JSON
}
mkentry "$URL" "$T/a.bin" > /dev/null
cred_config
ns_stub credsys "[ {\"read\": [[1, 0, $K]]} ]"
ok $? "credential server, no server_ca_path: verified through the CA directory (control)"

mkentry "$URL" "$T/a.bin" > /dev/null
cred_config "\"server_ca_path\": \"$T/caA.pem\""
ns_stub credcapath "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\", \"timeout\": 15}, {\"alive\": true} ]"
ok $? "credential server, server_ca_path = A: refused although B is in the CA directory"
runlog credcapath | grep -q "credential server https://127.0.0.1:$CP/v1/cred: "
ok $? "credential server, server_ca_path = A: the log names the server"

mkentry "$URL" "$T/a.bin" > /dev/null
cred_config "\"server_ca_path\": \"$T/caB.pem\""
ns_stub credcab "[ {\"read\": [[1, 0, $K]]} ]"
ok $? "credential server, server_ca_path = B: reads succeed"

# --- an https proxy --------------------------------------------------------------------------
# The registry's certificate by A, the proxy's by B (in the CA directory only):
# caFile = A verifies the registry, and must not let the directory vouch for
# the proxy (CURLOPT_PROXY_CAPATH cleared); caFile = A + B lets both through.
cert regA caA
RA=$(free_port)
echo '{}' > "$T/rega.cfg"
python3 "$here/fakereg.py" "$RA" "$T/a.bin" "$T/rega.cfg" "$T/rega.req" "$T/regA.pem" "$T/regA.key" \
	> "$T/rega.log" 2>&1 &
pids+=("$!")
PP=$(free_port)
python3 "$here/fwdproxy.py" "$PP" "$T/server.pem" "$T/server.key" > "$T/tlsproxy.log" 2>&1 &
pids+=("$!")
wait_port "$RA" && wait_port "$PP" || bail "registry A or the https proxy did not start"
pstat() { in_ns curl -sS --noproxy '*' --cacert "$T/caB.pem" "https://127.0.0.1:$PP/__stats" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["methods"].get("CONNECT", 0))'; }
URLA=https://127.0.0.1:$RA/v2/test/a/blobs/sha256:$dig
BLOBS="[{\"id\":1,\"cache\":\"$T/cache/sha256:$dig\",\"data\":\"$T/a.bin\"}]"
PX="\"proxy\": \"https://127.0.0.1:$PP\""
mkentry "$URLA" "$T/a.bin" > /dev/null
write_config "$FC, $PX" "\"certConfig\": { \"caFile\": \"$T/caA.pem\" }"
ns_stub pxca "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
ok $? "https proxy by B, caFile = A: the proxy refused although B is in the CA directory"
is "... no CONNECT reached it" "$(pstat)" 0
cat "$T/caA.pem" "$T/caB.pem" > "$T/caAB.pem"
mkentry "$URLA" "$T/a.bin" > /dev/null
write_config "$FC, $PX" "\"certConfig\": { \"caFile\": \"$T/caAB.pem\" }"
ns_stub pxcab "[ {\"read\": [[1, 0, $K]]} ]"
ok $? "https proxy by B, caFile = A + B: reads succeed"
[ "$(pstat)" -ge 1 ]; ok $? "... through the proxy (CONNECT)"

# --- obd -----------------------------------------------------------------------------------
if [ -x "$OBDB" ]; then
	echo '{}' > "$T/reg.cfg"
	printf '{"repoBlobUrl": "https://127.0.0.1:%s/v2/test/a/blobs", "lowers": [{"digest": "sha256:%s", "size": %s}]}\n' \
		"$RP" "$dig" "$(stat -c %s "$T/a.bin")" > "$T/img.json"
	obd_attach() {	# obd_attach CAFILE: attach --table in the namespace (the header is read, then refused: not a layer)
		rm -rf "$T/ocache"
		printf '{"cacheConfig": {"cacheDir": "%s/ocache"}, "certConfig": {"caFile": "%s"}}\n' "$T" "$1" > "$T/obd.json"
		: > "$T/reg.req"
		in_ns "$OBDB" attach --service-config "$T/obd.json" --table "$T/img.json" > "$T/obd.out" 2>&1
		python3 -c 'import sys; print(sum(1 for _ in open(sys.argv[1])))' "$T/reg.req"
	}
	[ "$(obd_attach "$T/caB.pem")" -gt 0 ]; ok $? "obd, caFile = B: the registry is read"
	is "obd, caFile = A: refused although B is in the CA directory (no request)" "$(obd_attach "$T/caA.pem")" 0
	grep -qi 'certificate' "$T/obd.out"; ok $? "obd, caFile = A: it says why"
fi

! grep -qE 's3cret-PW|AddressSanitizer|runtime error' "$T/daemon.log"
ok $? "no password, no sanitizer reports in the log"

done_testing
