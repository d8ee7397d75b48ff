#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# overlaybd-fetchd and redirects (tests/fetchd/faultproxy.py's /__redirect
# in front of docker-registry): a blob GET answered 307 to another host name
# ("localhost" vs the registry's "127.0.0.1") is followed, the bytes are
# right, and the Authorization header (Basic, Bearer) asked at the first
# hop is not sent to the other host; to the same host it is. A redirect
# loop fails after 8 hops with a logged error, without hanging.
. "$(dirname "$0")/lib.bash"

K=4096
W=262144
mkdir -p "$T/cache"
start_registry reg
start_proxy "$REG_PORT"
mkblob "$T/a.bin" $((2 * 1048576 + 99))
upload "$REG_PORT" test/repo "$T/a.bin"
ok $? "blob uploaded"
dig=$(sha256sum "$T/a.bin" | cut -d' ' -f1)
URL=http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$dig
BLOBS="[{\"id\":1,\"cache\":\"$T/cache/sha256:$dig\",\"data\":\"$T/a.bin\"}]"
entry() { mkentry "$URL" "$T/a.bin" > /dev/null; }
stat() { jget /dev/stdin "$1" < <(px /__stats); }
cat > "$T/cred.json" <<-JSON
{ "auths": { "127.0.0.1:$PX_PORT": { "username": "alice", "password": "r3dir-Secret" } } }
JSON
write_config '"requestTimeout": 5, "maxRetries": 2, "syncIntervalMs": 100, "isolatedRefillKB": 0'

# redirect NAME AUTH HOST: one daemon run of three reads, auth asked at the first hop
redirect() {
	local name=$1 auth=$2 host=$3
	entry
	px /__reset > /dev/null
	px "/__auth?mode=$auth&user=alice&pass=r3dir-Secret" > /dev/null
	px "/__redirect?mode=other&host=$host" > /dev/null
	run_stub "$name" "$BLOBS" "[ {\"read\": [[1, 0, $K], [1, $W, $K]]}, {\"read\": [[1, $((8 * W)), 99]]} ]"
	ok $? "$name: reads through a 307 to $host succeed, cache bytes = the blob's"
}

redirect anon-other none localhost
is "anonymous: three fetches redirected" "$(stat 'j["redirected"]')" 3
is "anonymous: no Authorization at the target" "$(stat 'j["redir_authz"]')" 0

redirect basic-other basic localhost
is "Basic: three fetches redirected to localhost" "$(stat 'j["redirected"]')" 3
is "Basic: no Authorization sent to the other host" "$(stat 'j["redir_authz"]')" 0
runlog basic-other | grep -q 'failed'
[ $? -ne 0 ]; ok $? "Basic: no failure logged"

redirect bearer-other bearer localhost
is "Bearer: three fetches redirected to localhost" "$(stat 'j["redirected"]')" 3
is "Bearer: no Authorization sent to the other host" "$(stat 'j["redir_authz"]')" 0
is "Bearer: one token request" "$(stat 'j["tokens"]')" 1

# positive control: the target does see the header when the host is the same
redirect basic-same basic 127.0.0.1
is "Basic, same host: redirected" "$(stat 'j["redirected"]')" 3
is "Basic, same host: Authorization kept" "$(stat 'j["redir_authz"]')" 3

# --- a redirect loop ------------------------------------------------------------------
entry
px /__reset > /dev/null
px "/__auth?mode=basic&user=alice&pass=r3dir-Secret" > /dev/null
px "/__redirect?mode=loop" > /dev/null
run_stub loop "$BLOBS" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\", \"timeout\": 12}, {\"alive\": true} ]"
ok $? "redirect loop: READ fails, daemon alive"
is "redirect loop: -EIO" "$(jget "$T/loop.json" 'j["steps"][0]["dones"][0]["status"]')" -5
is "redirect loop: answered at once (no retries, no hang)" "$(jget "$T/loop.json" 'j["steps"][0]["ms"] < 3000')" True
is "redirect loop: 8 redirects followed, then given up" "$(stat 'j["loops"]')" 8
is "redirect loop: one failure line" "$(runlog loop | grep -c 'bytes 0-262143 failed: too many redirects')" 1
px "/__redirect?mode=none" > /dev/null
px "/__auth?mode=none" > /dev/null

! grep -qE 'r3dir-Secret|Authorization:|Bearer [0-9a-f]{8}|YWxpY2U6' "$T/daemon.log"
ok $? "no password, token or Authorization value in the log"
! grep -qE 'AddressSanitizer|runtime error' "$T/daemon.log"
ok $? "no sanitizer reports"

done_testing
