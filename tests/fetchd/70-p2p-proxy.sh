#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# p2pConfig and fetchConfig.proxy. A stand-in peer (p2ppeer.py) serves
# <address>/<url> by fetching <url>: data GETs go through it (counted; the
# kernel stand-in checks the bytes), a failing or dead peer falls back to
# the registry (READs still succeed, fallbacks logged) and is backed off
# after 3 failures. A forward proxy (fwdproxy.py) with fetchConfig.proxy
# sees every registry request, noProxy bypasses it, obd push goes through it.
. "$(dirname "$0")/lib.bash"

K=4096
W=262144
mkdir -p "$T/cache"
start_registry reg
start_proxy "$REG_PORT"		# faultproxy: counts what reaches the registry
mkblob "$T/a.bin" $((4 * 1048576 + 55))
upload "$REG_PORT" test/repo "$T/a.bin" || bail "upload"
dig=$(sha256sum "$T/a.bin" | cut -d' ' -f1)
URL="http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$dig"
entry() { rm -f "$T/cache/sha256:$dig"*; A=$(mkentry "$URL" "$T/a.bin"); BLOBS="[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"}]"; }
echo '{}' > "$T/cred.json"
PP=$(free_port)
python3 "$here/p2ppeer.py" "$PP" /dadip2p/access > "$T/peer.log" 2>&1 &
PEER=$!
pids+=("$PEER")
wait_port "$PP" || bail "peer did not start"
peer() { curl -sS "http://127.0.0.1:$PP$1"; }
pstat() { peer /__stats | python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
FC='"requestTimeout": 8, "maxRetries": 3, "readaheadMB": 0, "isolatedRefillKB": 0'
P2P="\"p2pConfig\": { \"enable\": true, \"address\": \"http://127.0.0.1:$PP/dadip2p/access\" }"

# --- through the peer -------------------------------------------------------------
entry
LOGLEVEL=0 write_config "$FC" "$P2P"
px /__reset > /dev/null
run_stub p2p "$BLOBS" "[ {\"read\": [[1, 0, $K]]}, {\"read\": [[1, $W, $K], [1, $((5 * W)), $K], [1, 4194304, 55]]} ]"
ok $? "p2p: reads succeed, bytes right"
is "p2p: 4 data GETs through the peer" "$(pstat 'j["requests"]')" 4
is "p2p: the peer was asked for the actual URL" "$(pstat "set(j['urls']) == {'$URL'}")" True
is "p2p: bytes through the peer" "$(pstat 'j["bytes"]')" $((3 * W + 55))
# the first miss resolves the actual URL (one probe); the next ones reuse it
is "p2p: the registry saw one probe and the peer's 4 GETs" \
	"$(px /__stats | python3 -c 'import json,sys; j=json.load(sys.stdin); print(len(j["gets"]), sum(1 for g in j["gets"] if g[1] == "bytes=0-0"))')" "5 1"

# --- a failing peer: fallback, then backed off ------------------------------------
peer "/__mode?m=500" > /dev/null
peer /__reset > /dev/null
entry
steps=""
for i in 0 1 2 3 4 5; do steps="$steps${steps:+,} {\"read\": [[1, $((i * W)), $K]]}"; done
run_stub p2p500 "$BLOBS" "[ $steps ]"
ok $? "peer answering 500: all 6 reads succeed from the registry"
is "peer answering 500: backed off after 3 failures (3 peer requests for 6 fetches)" "$(pstat 'j["requests"]')" 3
is "peer answering 500: 3 fallbacks logged" "$(runlog p2p500 | grep -c 'peer GET of .* failed (HTTP 500); from the registry')" 3
is "peer answering 500: the exit summary counts 3 peer requests, 3 fallbacks" \
	"$(runlog p2p500 | grep -c 'summary: .*p2p requests 3 (fallbacks 3)')" 1
is "peer answering 500: one line saying it is backed off" "$(runlog p2p500 | grep -c 'p2p: peer http://127.0.0.1:'"$PP"'/dadip2p/access failed 3 times in a row')" 1

peer "/__mode?m=short" > /dev/null
entry
run_stub p2pshort "$BLOBS" "[ {\"read\": [[1, 0, $K]]} ]"
ok $? "peer sending a short body: read succeeds from the registry"
runlog p2pshort | grep -q 'peer GET of .* failed (.*); from the registry'
ok $? "peer sending a short body: fallback logged"

kill "$PEER"; wait "$PEER" 2>/dev/null
entry
run_stub p2pdead "$BLOBS" "[ {\"read\": [[1, 0, $K], [1, $((3 * W)), $K]]} ]"
ok $? "peer killed: reads succeed from the registry"
[ "$(runlog p2pdead | grep -c 'failed (curl: .*); from the registry')" -ge 1 ]
ok $? "peer killed: fallbacks logged with curl's error"

# --- forward proxy --------------------------------------------------------------------
XP=$(free_port)
python3 "$here/fwdproxy.py" "$XP" > "$T/fwdproxy.log" 2>&1 &
pids+=("$!")
wait_port "$XP" || bail "forward proxy did not start"
xstat() { curl -sS --noproxy '*' "http://127.0.0.1:$XP/__stats" | python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
curl -sS --noproxy '*' "http://127.0.0.1:$XP/__reset" > /dev/null
px /__reset > /dev/null
px "/__auth?mode=bearer&user=dave&pass=pr0xy-PW" > /dev/null
echo "{ \"auths\": { \"127.0.0.1:$PX_PORT\": { \"username\": \"dave\", \"password\": \"pr0xy-PW\" } } }" > "$T/cred.json"
entry
# NO_PROXY=127.0.0.1 is in the environment (lib.bash): the config must win
write_config "$FC, \"proxy\": \"http://127.0.0.1:$XP\""
run_stub proxy "$BLOBS" "[ {\"read\": [[1, 0, $K], [1, $((2 * W)), $K]]} ]"
ok $? "proxy: reads succeed (Bearer auth through the proxy)"
is "proxy: every registry request went through it (GETs + token)" \
	"$(xstat 'j["methods"].get("GET", 0)')" "$(px /__stats | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["requests"] + j["tokens"])')"
[ "$(xstat 'j["requests"]')" -ge 3 ]; ok $? "proxy: it saw the probe-free auth round, token and GETs"
curl -sS --noproxy '*' "http://127.0.0.1:$XP/__reset" > /dev/null
entry
write_config "$FC, \"proxy\": \"http://127.0.0.1:$XP\", \"noProxy\": \"127.0.0.1\""
run_stub noproxy "$BLOBS" "[ {\"read\": [[1, 0, $K]]} ]"
ok $? "noProxy 127.0.0.1: reads succeed"
is "noProxy 127.0.0.1: nothing went through the proxy" "$(xstat 'j["requests"]')" 0
px "/__auth?mode=none" > /dev/null

# obd push through the proxy
if [ -x "${OBD:-$top/build/obd}" ]; then
	curl -sS --noproxy '*' "http://127.0.0.1:$XP/__reset" > /dev/null
	write_config "$FC, \"proxy\": \"http://127.0.0.1:$XP\""
	"${OBD:-$top/build/obd}" push --service-config "$T/overlaybd.json" \
		"http://127.0.0.1:$REG_PORT/test/viaproxy:v1" "$top/tests/data/overlaybd-ref/l1.commit" \
		> "$T/push.out" 2> "$T/push.err"
	ok $? "obd push through the proxy"
	is "obd push: uploads went through the proxy (POST, PUT seen)" \
		"$(xstat '(j["methods"].get("POST", 0) >= 1, j["methods"].get("PUT", 0) >= 2)')" "(True, True)"
fi

! grep -qE 'pr0xy-PW|Authorization:|AddressSanitizer|runtime error' "$T/daemon.log"
ok $? "no password, Authorization header or sanitizer report in the log"

done_testing
