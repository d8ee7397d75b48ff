#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# overlaybd-fetchd under registry faults (tests/fetchd/faultproxy.py in
# front of docker-registry) and with auth: each READ succeeds after the
# fault passes or fails with a negative status within requestTimeout; the
# daemon stays alive, logs each failure once, never logs a password.
. "$(dirname "$0")/lib.bash"

K=4096
W=262144
mkdir -p "$T/cache"
start_registry reg
start_proxy "$REG_PORT"
mkblob "$T/a.bin" $((4 * 1048576 + 777))
upload "$REG_PORT" test/repo "$T/a.bin"
ok $? "blob uploaded"
dig=$(sha256sum "$T/a.bin" | cut -d' ' -f1)
A=$(mkentry "http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$dig" "$T/a.bin")
BLOBS="[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"}]"
echo '{}' > "$T/cred.json"
# readahead off: the cases count requests and reuse blobs across steps
write_config '"requestTimeout": 5, "maxRetries": 8, "syncIntervalMs": 100, "readaheadMB": 0, "isolatedRefillKB": 0'

# One daemon run per fault: fault armed first, then a read of a fresh window.
# fault NAME MODE N EXPECT WINDOW [MS]
fault() {
	local name=$1 mode=$2 n=$3 expect=$4 win=$5 ms=${6:-3000}
	px /__reset > /dev/null
	px "/__fault?mode=$mode&n=$n&ms=$ms" > /dev/null
	run_stub "$name" "$BLOBS" "[ {\"read\": [[1, $((win * W)), $K]], \"expect\": \"$expect\", \"timeout\": 12},
		{\"read\": [[1, $((win * W + 8 * K)), $K]], \"timeout\": 12}, {\"alive\": true} ]"
	ok $? "$name: READ $expect, daemon alive and answering afterwards"
	px "/__fault?mode=none" > /dev/null
}

fault 503-burst 503 3 ok 0
is "503 burst: 3 failures then the GET" "$(px_requests)" 4
fault 429 429 2 ok 1
fault slow slow 1 ok 2 1000
fault truncated trunc 2 ok 3
fault reset reset 2 ok 4
fault badrange badrange 1 err 5
grep -q 'bytes 1310720-1572863 failed: Content-Range 1314816-1576959/4195081 does not match' "$T/daemon.log"
ok $? "wrong Content-Range: failure logged with the range"
fault long long 1 err 6
grep -q 'failed: body longer than asked' "$T/daemon.log"
ok $? "longer body: failure logged"

# endless 503: negative status within requestTimeout (5 s), logged once
px /__reset > /dev/null
px "/__fault?mode=503&n=100000" > /dev/null
run_stub endless "$BLOBS" "[ {\"read\": [[1, $((7 * W)), $K]], \"expect\": \"err\", \"timeout\": 12}, {\"alive\": true} ]"
ok $? "endless 503: READ fails, daemon alive"
is "endless 503: answered within requestTimeout + 1 s" \
	"$(jget "$T/endless.json" 'j["steps"][0]["ms"] <= 6000')" True
is "endless 503: bounded attempts (maxRetries 8 -> at most 9)" "$(jget /dev/stdin 'j["requests"] <= 9' < <(px /__stats))" True
is "endless 503: one failure line" "$(grep -c "bytes $((7 * W))-.* failed: " "$T/daemon.log")" 1
px "/__fault?mode=none" > /dev/null

# registry stopped mid-run and restarted: retries carry the read through
px /__reset > /dev/null
kill "$REG_PID"; wait "$REG_PID" 2>/dev/null
( sleep 1.5; REG_PORT_FIXED=$REG_PORT start_registry reg; echo "$REG_PID" > "$T/restarted.pid" ) \
	> /dev/null 2>&1 &
run_stub regdown "$BLOBS" "[ {\"read\": [[1, $((8 * W)), $K]], \"timeout\": 12}, {\"alive\": true} ]"
ok $? "registry stopped then restarted: READ succeeds after recovery"
wait_port "$REG_PORT" || bail "registry did not come back"

# Retry-After: a 429 / 503 saying when to come back is heeded (the backoff
# alone would retry within 200 ms); one past requestTimeout fails at once
retry_after() {
	local name=$1 mode=$2 ra=$3 expect=$4 win=$5
	px /__reset > /dev/null
	px "/__fault?mode=$mode&n=1&ra=$ra" > /dev/null
	run_stub "$name" "$BLOBS" "[ {\"read\": [[1, $((win * W)), $K]], \"expect\": \"$expect\", \"timeout\": 12},
		{\"alive\": true} ]"
	ok $? "$name: READ $expect, daemon alive"
	px "/__fault?mode=none" > /dev/null
}
retry_after retry-after-2s 429 2 ok 13
is "Retry-After: 2 (429): the retry came 2 s later" "$(jget "$T/retry-after-2s.json" 'j["steps"][0]["ms"] >= 2000')" True
is "Retry-After: 2 (429): two GETs" "$(px_requests)" 2
retry_after retry-after-date 503 date:3 ok 14
is "Retry-After: an HTTP-date 3 s ahead (503): the retry waited for it" \
	"$(jget "$T/retry-after-date.json" 'j["steps"][0]["ms"] >= 2000')" True
retry_after retry-after-long 503 30 err 15
is "Retry-After: 30 with requestTimeout 5: the READ fails at once" \
	"$(jget "$T/retry-after-long.json" 'j["steps"][0]["ms"] < 2000')" True
grep -q "failed: the server's Retry-After is past requestTimeout (HTTP 503" "$T/daemon.log"
ok $? "Retry-After past requestTimeout: failure logged with the status"

# --- auth: Bearer through the proxy's token server -----------------------------
px "/__auth?mode=bearer&user=alice&pass=s3cret-pw" > /dev/null
cat > "$T/cred.json" <<-JSON
{ "auths": { "127.0.0.1:$PX_PORT": { "username": "alice", "password": "s3cret-pw" } } }
JSON
px /__reset > /dev/null
run_stub bearer "$BLOBS" "[ {\"read\": [[1, $((9 * W)), $K], [1, $((10 * W)), $K], [1, $((11 * W)), $K]]} ]"
ok $? "Bearer: challenge, token, reads succeed"
is "Bearer: one token request for three concurrent fetches" \
	"$(jget /dev/stdin 'j["tokens"]' < <(px /__stats))" 1
# two blobs of one repository (one scope): one token request between them
mkblob "$T/b.bin" $((1048576 + 99))
upload "$REG_PORT" test/repo "$T/b.bin"
digb=$(sha256sum "$T/b.bin" | cut -d' ' -f1)
B=$(mkentry "http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$digb" "$T/b.bin")
BLOBS2="[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"},{\"id\":2,\"cache\":\"$B\",\"data\":\"$T/b.bin\"}]"
px /__reset > /dev/null
run_stub bearer-scope "$BLOBS2" "[ {\"read\": [[1, $((16 * W)), 777], [2, 0, $K], [2, $((2 * W)), $K]]} ]"
ok $? "Bearer, two blobs of one repository read at once: reads succeed"
is "Bearer, two blobs of one repository: one token request for the scope" \
	"$(jget /dev/stdin 'j["tokens"]' < <(px /__stats))" 1
grep "summary: reads" "$T/daemon.log" | tail -1 | grep -o "tokens [0-9]* (shared [0-9]*)" | sed 's/^/# /'
grep -qE "tokens 1 \(shared 1\)|tokens 1 \(shared 0\)" "$T/daemon.log"
ok $? "the daemon counted one token request (shared with the other blob, or reused from the cache)"
cat > "$T/cred.json" <<-JSON
{ "auths": { "127.0.0.1:$PX_PORT": { "username": "alice", "password": "WRONG-pw-123" } } }
JSON
run_stub bearer-bad "$BLOBS" "[ {\"read\": [[1, $((12 * W)), $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
ok $? "Bearer, wrong password: READ fails, daemon alive"
is "Bearer, wrong password: -EACCES" "$(jget "$T/bearer-bad.json" 'j["steps"][0]["dones"][0]["status"]')" -13
# a broken token server: 200 with a body that is not a usable token
cat > "$T/cred.json" <<-JSON
{ "auths": { "127.0.0.1:$PX_PORT": { "username": "alice", "password": "s3cret-pw" } } }
JSON
# (a blob of its own, on a cold cache each time: nothing of it is present)
mkblob "$T/c.bin" $((1048576 + 5))
upload "$REG_PORT" test/repo "$T/c.bin"
digc=$(sha256sum "$T/c.bin" | cut -d' ' -f1)
for body in notjson truncated array notoken numtoken emptytoken spacetoken huge badexpires empty; do
	rm -f "$T/cache/sha256:$digc" "$T/cache/sha256:$digc.meta"
	C=$(mkentry "http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$digc" "$T/c.bin")
	BLOBSC="[{\"id\":1,\"cache\":\"$C\",\"data\":\"$T/c.bin\"}]"
	px "/__auth?mode=bearer&user=alice&pass=s3cret-pw&tokenbody=$body" > /dev/null
	px /__reset > /dev/null
	run_stub "token-$body" "$BLOBSC" "[ {\"read\": [[1, $W, $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
	ok $? "token server answers '$body': READ fails, daemon alive"
	is "token server answers '$body': -EACCES" \
		"$(jget "$T/token-$body.json" 'j["steps"][0]["dones"][0]["status"]')" -13
	is "token server answers '$body': no blob bytes served" \
		"$(jget /dev/stdin 'j["bytes"]' < <(px /__stats))" 0
	sed -n "/^=== run token-$body\$/,\$p" "$T/daemon.log" | grep -q "token from http://127.0.0.1:$PX_PORT/token.*: token response: "
	ok $? "token server answers '$body': the error names the token URL and what is wrong"
done
sed -n '/^=== run token-/,$p' "$T/daemon.log" | grep -o "token response: .*" | sort | uniq -c | sed 's/^/# /'
px "/__auth?mode=bearer&user=alice&pass=s3cret-pw" > /dev/null
run_stub token-mended "$BLOBSC" "[ {\"read\": [[1, $W, $K]]} ]"
ok $? "token server mended: the same READ succeeds"
px "/__auth?mode=none" > /dev/null

# --- auth: htpasswd Basic on a second registry ----------------------------------
htpasswd -Bbn bob 'b0b-pass-X' > "$T/htpasswd" 2>/dev/null
cat > "$T/auth.yml" <<-YML
auth:
  htpasswd:
    realm: test-realm
    path: $T/htpasswd
YML
start_registry reg2 "$T/auth.yml"
upload "$REG_PORT" test/repo "$T/a.bin" -u 'bob:b0b-pass-X'
ok $? "blob uploaded to the htpasswd registry"
rm -f "$A" "$A.meta"
A2=$(mkentry "http://127.0.0.1:$REG_PORT/v2/test/repo/blobs/sha256:$dig" "$T/a.bin")
BLOBS2="[{\"id\":1,\"cache\":\"$A2\",\"data\":\"$T/a.bin\"}]"
cat > "$T/cred.json" <<-JSON
{ "auths": { "127.0.0.1:$REG_PORT": { "username": "bob", "password": "b0b-pass-X" } } }
JSON
run_stub basic "$BLOBS2" "[ {\"read\": [[1, 0, $K], [1, $W, $K]]} ]"
ok $? "Basic (htpasswd): reads succeed"
cat > "$T/cred.json" <<-JSON
{ "auths": { "127.0.0.1:$REG_PORT": { "username": "bob", "password": "not-the-PASS" } } }
JSON
run_stub basic-bad "$BLOBS2" "[ {\"read\": [[1, $((2 * W)), $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
ok $? "Basic, wrong password: READ fails, daemon alive"
is "Basic, wrong password: -EACCES" "$(jget "$T/basic-bad.json" 'j["steps"][0]["dones"][0]["status"]')" -13
! grep -qE 's3cret-pw|WRONG-pw-123|b0b-pass-X|not-the-PASS|Authorization:|Bearer [0-9a-f]{8}' "$T/daemon.log"
ok $? "no password, token or Authorization header in the log"
! grep -qE 'AddressSanitizer|runtime error' "$T/daemon.log"
ok $? "no sanitizer reports"

done_testing
