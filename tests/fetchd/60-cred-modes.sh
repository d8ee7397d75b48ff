#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# credentialConfig modes http, https and uds (spec 6.4): a credential server
# (credserver.py) answers for a docker-registry behind htpasswd. Reads
# succeed with its credentials; it is asked with remote_url = the blob URL;
# its answer is cached (N misses, one request); a 401 after a password
# change makes the daemon ask again; success:false, garbage and a slow
# server fail the READ with a message naming the server; obd push uses the
# same modes. No password in any log.
. "$(dirname "$0")/lib.bash"

K=4096
W=262144
mkdir -p "$T/cache"
PW1='cr3d-Pass-one'
PW2='cr3d-Pass-two'
htpasswd -Bbn carol "$PW1" > "$T/htpasswd" 2>/dev/null
printf 'auth:\n  htpasswd:\n    realm: test-realm\n    path: %s\n' "$T/htpasswd" > "$T/auth.yml"
start_registry reg "$T/auth.yml"
for n in a b c; do
	mkblob "$T/$n.bin" $((1048576 + 333))
	upload "$REG_PORT" test/repo "$T/$n.bin" -u "carol:$PW1" || bail "upload $n"
done
ok 0 "three blobs uploaded to the htpasswd registry"
url_of() { echo "http://127.0.0.1:$REG_PORT/v2/test/repo/blobs/sha256:$(sha256sum "$T/$1.bin" | cut -d' ' -f1)"; }
entries() {	# fresh cache entries for a b c, BLOBS3 and BLOBS1 set
	local n i=1 j=""
	for n in a b c; do
		rm -f "$T/cache/sha256:$(sha256sum "$T/$n.bin" | cut -d' ' -f1)"*
		e=$(mkentry "$(url_of $n)" "$T/$n.bin")
		j="$j${j:+,}{\"id\":$i,\"cache\":\"$e\",\"data\":\"$T/$n.bin\"}"
		[ $i -eq 1 ] && BLOBS1="[$j]"
		i=$((i + 1))
	done
	BLOBS3="[$j]"
}

CP=$(free_port)
python3 "$here/credserver.py" http "$CP" > "$T/credserver.log" 2>&1 &
pids+=("$!")
wait_port "$CP" || bail "credential server did not start"
cs() { curl -sS "http://127.0.0.1:$CP$1"; }
cs_n() { cs /__stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
cs "/__set?mode=ok&user=carol&pass=$PW1" > /dev/null

# config MODE PATH [MORE credentialConfig members]
config() {
	cat > "$T/overlaybd.json" <<-JSON
	{ "logConfig": { "logLevel": ${LOGLEVEL:-1} },
	  "cacheConfig": { "cacheDir": "$T/cache", "refillSize": 262144 },
	  "credentialConfig": { "mode": "$1", "path": "$2", "timeout": 1 ${3:+, $3} },
	  "fetchConfig": { "requestTimeout": 6, "maxRetries": 2, "readaheadMB": 0 } }
	JSON
}

# --- http ---------------------------------------------------------------------
entries
config http "http://127.0.0.1:$CP/auth"
run_stub http1 "$BLOBS1" "[ {\"read\": [[1, 0, $K]]} ]"
ok $? "http: READ succeeds with the server's credentials (bytes checked)"
is "http: one credential request" "$(cs_n)" 1
is "http: remote_url is the blob URL" "$(cs /__stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["remote_urls"][0])')" "$(url_of a)"
is "http: the configured path" "$(cs /__stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["paths"][0])')" /auth

cs /__reset > /dev/null
entries
run_stub cache "$BLOBS3" "[ {\"read\": [[1, 0, $K], [1, $W, $K], [2, 0, $K], [2, $W, $K], [3, 0, $K], [3, $((3 * W)), $K]]},
	{\"read\": [[1, $((2 * W)), $K], [2, $((2 * W)), $K], [3, $W, $K]]} ]"
ok $? "http: 9 misses on 3 blobs of one repository succeed"
is "http: one credential request for all of them (cached per repository)" "$(cs_n)" 1

# the password changes while the daemon runs: the registry's 401 makes it ask again
cs /__reset > /dev/null
entries
# The change runs as a step after the first read (not on a timer, which under load
# could fire before it): both the registry's htpasswd and the server's answer, then
# it waits until the registry refuses the old password (it reloads the file).
cat > "$T/pwchange.sh" <<EOS
htpasswd -Bbn carol '$PW2' > '$T/htpasswd.new' 2>/dev/null && mv '$T/htpasswd.new' '$T/htpasswd' || exit 1
curl -sS 'http://127.0.0.1:$CP/__set?pass=$PW2' > /dev/null || exit 1
for i in \$(seq 100); do
	c=\$(curl -s -o /dev/null -w '%{http_code}' -u 'carol:$PW1' 'http://127.0.0.1:$REG_PORT/v2/')
	[ "\$c" = 401 ] && touch '$T/pwchanged' && exit 0
	sleep 0.1
done
exit 1
EOS
run_stub pwchange "$BLOBS1" "[ {\"read\": [[1, 0, $K]]}, {\"exec\": \"bash $T/pwchange.sh\"}, {\"read\": [[1, $W, $K]]} ]"
ok $? "password changed between two reads: both succeed"
[ -e "$T/pwchanged" ]; ok $? "password changed: the registry refused the old password before the second read"
is "password changed: the server was asked again (2 requests)" "$(cs_n)" 2
upload "$REG_PORT" test/repo "$T/a.bin" -u "carol:$PW2"
ok $? "the registry takes the new password (htpasswd reloaded)"

# refusals: each READ fails, the log names the server and why
refuse() {	# refuse NAME MODE PATTERN
	cs "/__set?mode=$2&ms=2500" > /dev/null
	entries
	run_stub "$1" "$BLOBS1" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\", \"timeout\": 15}, {\"alive\": true} ]"
	ok $? "$1: READ fails, daemon alive"
	runlog "$1" | grep -q "credential server http://127.0.0.1:$CP/auth: $3"
	ok $? "$1: the log names the credential server and says why"
}
refuse false false 'answer: success is false (traceId t-'
is "success:false: -EACCES" "$(jget "$T/false.json" 'j["steps"][0]["dones"][0]["status"]')" -13
refuse garbage garbage 'invalid JSON'
refuse slow slow 'no answer within credentialConfig.timeout (1 s)'
is "slow: answered within requestTimeout + 1 s" "$(jget "$T/slow.json" 'j["steps"][0]["ms"] <= 7000')" True
refuse http500 500 'HTTP 500'
cs "/__set?mode=ok&pass=$PW2" > /dev/null

# --- https, with a client certificate required ------------------------------------
make_ca && make_cert server IP:127.0.0.1 serverAuth && make_cert client DNS:obd-test-client clientAuth
ok $? "test CA, server and client certificates"
SP=$(free_port)
python3 "$here/credserver.py" https "$SP" "$T/server.pem" "$T/server.key" "$T/ca.pem" > "$T/credserver-s.log" 2>&1 &
pids+=("$!")
wait_port "$SP" || bail "https credential server did not start"
scurl() { curl -sS --cacert "$T/ca.pem" --cert "$T/client.pem" --key "$T/client.key" "https://127.0.0.1:$SP$1"; }
scurl "/__set?mode=ok&user=carol&pass=$PW2" > /dev/null
entries
config https "https://127.0.0.1:$SP/v1/cred" "\"server_ca_path\": \"$T/ca.pem\", \"client_cert_path\": \"$T/client.pem\", \"client_key_path\": \"$T/client.key\""
run_stub https "$BLOBS1" "[ {\"read\": [[1, 0, $K], [1, $W, $K]]} ]"
ok $? "https (server CA, client certificate): reads succeed"
is "https: asked once, with remote_url = the blob URL" \
	"$(scurl /__stats | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["requests"], j["remote_urls"][0])')" "1 $(url_of a)"
entries
config https "https://127.0.0.1:$SP/v1/cred" "\"server_ca_path\": \"$T/ca.pem\""
run_stub https-nocert "$BLOBS1" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\", \"timeout\": 15}, {\"alive\": true} ]"
ok $? "https without the client certificate: READ fails"
runlog https-nocert | grep -q "credential server https://127.0.0.1:$SP/v1/cred: "
ok $? "https without the client certificate: the log names the server"
entries
config https "https://127.0.0.1:$SP/v1/cred" "\"client_cert_path\": \"$T/client.pem\", \"client_key_path\": \"$T/client.key\""
run_stub https-noca "$BLOBS1" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\", \"timeout\": 15} ]"
ok $? "https without server_ca_path: the test CA is not trusted, READ fails"

# --- uds ------------------------------------------------------------------------------
python3 "$here/credserver.py" uds "$T/cred.sock" > "$T/credserver-u.log" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do [ -S "$T/cred.sock" ] && break; sleep 0.1; done
ucurl() { curl -sS --unix-socket "$T/cred.sock" "http://localhost$1"; }
ucurl "/__set?mode=ok&user=carol&pass=$PW2" > /dev/null
entries
config uds "$T/cred.sock"
run_stub uds "$BLOBS3" "[ {\"read\": [[1, 0, $K], [2, 0, $K], [3, $W, $K]]} ]"
ok $? "uds: reads succeed"
is "uds: one request, GET /auth, remote_url a blob URL of the repository" \
	"$(ucurl /__stats | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["requests"], j["paths"][0], j["remote_urls"][0] in sys.argv[1:])' "$(url_of a)" "$(url_of b)" "$(url_of c)")" "1 /auth True"
ucurl "/__set?mode=false" > /dev/null
entries
run_stub uds-false "$BLOBS1" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\"} ]"
ok $? "uds, success:false: READ fails"
runlog uds-false | grep -q "credential server unix:$T/cred.sock: answer: success is false"
ok $? "uds, success:false: the log names the socket"

# --- obd push with a credential server ---------------------------------------------------
if [ -x "${OBD:-$top/build/obd}" ]; then
	OBDB=${OBD:-$top/build/obd}
	cs "/__reset" > /dev/null
	cs "/__set?mode=ok&user=carol&pass=$PW2" > /dev/null
	config http "http://127.0.0.1:$CP/auth"
	"$OBDB" push --service-config "$T/overlaybd.json" "http://127.0.0.1:$REG_PORT/test/pushed:v1" "$top/tests/data/overlaybd-ref/l1.commit" \
		> "$T/push.out" 2> "$T/push.err"
	ok $? "obd push with credentialConfig.mode http"
	[ "$(cs_n)" -ge 1 ]; ok $? "obd push: the credential server was asked"
	cs "/__set?mode=false" > /dev/null
	"$OBDB" push --service-config "$T/overlaybd.json" "http://127.0.0.1:$REG_PORT/test/pushed:v2" "$top/tests/data/overlaybd-ref/l1.commit" \
		> "$T/push2.out" 2> "$T/push2.err"
	[ $? -ne 0 ]; ok $? "obd push, server says success:false: fails"
	grep -q "credential server http://127.0.0.1:$CP/auth: answer: success is false" "$T/push2.err"
	ok $? "obd push, success:false: the message names the server"
	! grep -qE "$PW1|$PW2" "$T/push.err" "$T/push2.err"
	ok $? "obd push: no password printed"
fi

! grep -qE "$PW1|$PW2|decoy-pw|Authorization:" "$T/daemon.log"
ok $? "no password or Authorization header in the daemon log"
! grep -qE 'AddressSanitizer|runtime error' "$T/daemon.log"
ok $? "no sanitizer reports"

done_testing
