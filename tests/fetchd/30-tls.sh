#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# overlaybd-fetchd against docker-registry over TLS with a test CA made
# here (openssl): certConfig.caFile trusts it; without it verification
# fails (it is on), as it does for a certificate of another name; a
# registry requiring client certificates (http.tls.clientcas) is read with
# certConfig.certFile/keyFile and refused without them.
. "$(dirname "$0")/lib.bash"

K=4096
W=262144
mkdir -p "$T/cache"
echo '{}' > "$T/cred.json"
make_ca && make_cert server IP:127.0.0.1 serverAuth && make_cert wrong DNS:wrong.example serverAuth &&
	make_cert client DNS:obd-test-client clientAuth
ok $? "test CA, server (IP SAN 127.0.0.1), wrong-name and client certificates made"
mkblob "$T/a.bin" $((1048576 + 4321))
dig=$(sha256sum "$T/a.bin" | cut -d' ' -f1)
BLOBS='[{"id":1,"cache":"'$T/cache/sha256:$dig'","data":"'$T/a.bin'"}]'

tls_yml() {	# tls_yml FILE CERT [CLIENTCAS]
	printf '  tls:\n    certificate: %s\n    key: %s\n' "$T/$2.pem" "$T/$2.key" > "$1"
	[ -z "${3:-}" ] || printf '    clientcas:\n      - %s\n' "$3" >> "$1"
}
entry() {	# entry PORT: a fresh cache entry for the blob at https://127.0.0.1:PORT
	mkentry "https://127.0.0.1:$1/v2/test/repo/blobs/sha256:$dig" "$T/a.bin" > /dev/null
}
cert_config() {	# cert_config KEY=FILE...: a certConfig member for write_config
	local m="" kv
	for kv in "$@"; do m="$m${m:+, }\"${kv%%=*}\": \"${kv#*=}\""; done
	echo "\"certConfig\": { $m }"
}
# readahead off: each case counts its own requests and log lines
FC='"requestTimeout": 5, "maxRetries": 3, "syncIntervalMs": 100, "readaheadMB": 0, "isolatedRefillKB": 0'

# --- server certificate for 127.0.0.1 --------------------------------------------
tls_yml "$T/tls.yml" server
start_registry reg "$T/tls.yml"
TLS_PORT=$REG_PORT
upload "https://127.0.0.1:$TLS_PORT" test/repo "$T/a.bin" --cacert "$T/ca.pem"
ok $? "blob uploaded over TLS (curl --cacert)"

entry "$TLS_PORT"
write_config "$FC" "$(cert_config caFile="$T/ca.pem")"
run_stub ca "$BLOBS" "[ {\"read\": [[1, 0, $K], [1, $W, $K], [1, 1048576, 4321]]} ]"
ok $? "caFile = the test CA: reads succeed, cache bytes = the blob's"

entry "$TLS_PORT"
write_config "$FC"
run_stub noca "$BLOBS" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
ok $? "no caFile: READ fails, daemon alive"
is "no caFile: -EIO" "$(jget "$T/noca.json" 'j["steps"][0]["dones"][0]["status"]')" -5
is "no caFile: one failure line naming the certificate problem" \
	"$(runlog noca | grep -c 'bytes 0-262143 failed: .*SSL certificate problem')" 1
is "no caFile: not retried (a verification failure is final)" \
	"$(runlog noca | grep -c 'failed: .* after 1 attempt$')" 1

# an unreadable caFile is an error too, not a fallback to no verification
entry "$TLS_PORT"
write_config "$FC" "$(cert_config caFile="$T/no-such-ca.pem")"
run_stub badca "$BLOBS" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
ok $? "caFile that does not exist: READ fails"
runlog badca | grep -q "failed: .*no-such-ca.pem"
ok $? "caFile that does not exist: the log names it"

# --- a certificate for another name ----------------------------------------------------
tls_yml "$T/wrong.yml" wrong
start_registry regw "$T/wrong.yml"
upload "https://127.0.0.1:$REG_PORT" test/repo "$T/a.bin" -k
ok $? "blob uploaded to the wrong-name registry (curl -k)"
entry "$REG_PORT"
write_config "$FC" "$(cert_config caFile="$T/ca.pem")"
run_stub wrongname "$BLOBS" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
ok $? "server certificate for another name: READ fails"
runlog wrongname | grep -q 'failed: .*\(subject name\|does not match\|SSL: certificate\)'
ok $? "wrong name: the log says why"

# --- client certificates required -------------------------------------------------------
tls_yml "$T/mtls.yml" server "$T/ca.pem"
start_registry regc "$T/mtls.yml"
MTLS_PORT=$REG_PORT
upload "https://127.0.0.1:$MTLS_PORT" test/repo "$T/a.bin" --cacert "$T/ca.pem" \
	--cert "$T/client.pem" --key "$T/client.key"
ok $? "blob uploaded to the client-certificate registry (curl --cert)"
curl -sS -o /dev/null --cacert "$T/ca.pem" "https://127.0.0.1:$MTLS_PORT/v2/" 2>/dev/null
[ $? -ne 0 ]; ok $? "the registry refuses a client without a certificate (curl)"

entry "$MTLS_PORT"
write_config "$FC" "$(cert_config caFile="$T/ca.pem" certFile="$T/client.pem" keyFile="$T/client.key")"
run_stub mtls "$BLOBS" "[ {\"read\": [[1, 0, $K], [1, $W, $K]]} ]"
ok $? "certFile/keyFile: reads succeed, bytes right"

cat "$T/client.pem" "$T/client.key" > "$T/client-both.pem"
entry "$MTLS_PORT"
write_config "$FC" "$(cert_config caFile="$T/ca.pem" certFile="$T/client-both.pem")"
run_stub mtls1 "$BLOBS" "[ {\"read\": [[1, 0, $K]]} ]"
ok $? "certFile holding the key too: reads succeed"

entry "$MTLS_PORT"
write_config "$FC" "$(cert_config caFile="$T/ca.pem")"
run_stub nocert "$BLOBS" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\", \"timeout\": 12}, {\"alive\": true} ]"
ok $? "no client certificate: READ fails, daemon alive"
is "no client certificate: answered within requestTimeout + 1 s" \
	"$(jget "$T/nocert.json" 'j["steps"][0]["ms"] <= 6000')" True
is "no client certificate: one failure line, with the TLS error" \
	"$(runlog nocert | grep -c 'bytes 0-262143 failed: .*curl: .*\(SSL\|alert\|certificate\)')" 1

entry "$MTLS_PORT"
write_config "$FC" "$(cert_config caFile="$T/ca.pem" certFile="$T/wrong.pem" keyFile="$T/client.key")"
run_stub badkey "$BLOBS" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\", \"timeout\": 12}, {\"alive\": true} ]"
ok $? "client certificate and key that do not match: READ fails"

! grep -qE 'PRIVATE KEY|AddressSanitizer|runtime error' "$T/daemon.log"
ok $? "no key material, no sanitizer reports in the log"

done_testing
