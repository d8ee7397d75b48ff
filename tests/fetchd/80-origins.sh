#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Trust between origins (review fetchd.md D1, D2, D6, D11, D12, D13, D17),
# with fake registries (fakereg.py) on 127.0.0.1 that log every request's
# Authorization:
#  D1  a registry B serving other bytes for layer D's digest, attached and
#      read in part first, leaves registry A's image reading A's bytes
#      (obd attach, then the daemon);
#  D2  a registry B answering with A's exact Bearer challenge never
#      receives A's token;
#  D6  an https registry whose token realm is http:// gets no credentials
#      sent there (daemon and obd); credentials over plain http: one warning;
#  D11 a redirect target answering 403 once (an expired presigned URL) is
#      retried through a fresh redirect;
#  D12 https -> http on the same host is refused; http -> https on the same
#      host keeps the Authorization;
#  D13 a P2P peer never receives a Basic password (a Bearer token it does);
#  D17 "Basic ..., Bearer ..." challenges: the token is used, the password
#      does not go to the registry.
. "$(dirname "$0")/lib.bash"

K=4096
W=262144
OBDB=${OBD:-$top/build/obd}
case "$OBDB" in /*) ;; *) OBDB=$top/$OBDB ;; esac
mkdir -p "$T/cache"
mkblob "$T/a.bin" $((1048576 + 777))
dig=$(sha256sum "$T/a.bin" | cut -d' ' -f1)
mkblob "$T/b.bin" $((1048576 + 333))
digb=$(sha256sum "$T/b.bin" | cut -d' ' -f1)
make_ca && make_cert server IP:127.0.0.1 serverAuth
ok $? "test CA and server certificate made"

# fakereg NAME BLOB [tls]: starts a fake registry; sets P_NAME (port); config $T/NAME.cfg
fakereg() {
	local name=$1 blob=$2 port
	port=$(free_port)
	echo '{}' > "$T/$name.cfg"
	: > "$T/$name.req"
	if [ "${3:-}" = tls ]; then
		python3 "$here/fakereg.py" "$port" "$blob" "$T/$name.cfg" "$T/$name.req" \
			"$T/server.pem" "$T/server.key" > "$T/$name.log" 2>&1 &
	else
		python3 "$here/fakereg.py" "$port" "$blob" "$T/$name.cfg" "$T/$name.req" \
			> "$T/$name.log" 2>&1 &
	fi
	pids+=("$!")
	wait_port "$port" || bail "fake registry $name did not start"
	printf -v "P_$name" %s "$port"
}
cfg() { echo "$2" > "$T/$1.cfg"; : > "$T/$1.req"; }	# cfg NAME JSON: new config, log emptied
# reqs NAME PY_FILTER: how many logged requests r match (r: method, path, authorization)
reqs() {
	python3 -c 'import json,sys
n=0
for l in open(sys.argv[1]):
    r=json.loads(l)
    if eval(sys.argv[2]): n+=1
print(n)' "$T/$1.req" "$2"
}
creds() {	# creds HOSTPORT...: cred.json with alice/s3cret-PW for each
	local m="" h
	for h in "$@"; do m="$m${m:+, }\"$h\": { \"username\": \"alice\", \"password\": \"s3cret-PW\" }"; done
	echo "{ \"auths\": { $m } }" > "$T/cred.json"
}
blob1() {	# blob1 URL [DATA]: kstub's blob 1 (a fresh entry) for the blob at URL
	local data=${2:-$T/a.bin} d
	d=$(sha256sum "$data" | cut -d' ' -f1)
	mkentry "$1" "$data" > /dev/null
	echo "{\"id\":1,\"cache\":\"$T/cache/sha256:$d\",\"data\":\"$data\"}"
}
FC='"requestTimeout": 5, "maxRetries": 1, "syncIntervalMs": 100, "readaheadMB": 0, "isolatedRefillKB": 0'
CA="\"certConfig\": { \"caFile\": \"$T/ca.pem\" }"

fakereg A "$T/a.bin"
fakereg B "$T/b.bin"
fakereg S "$T/a.bin" tls
fakereg H "$T/a.bin"

# --- D2: B answers with A's exact challenge ---------------------------------------
CH_A="Bearer realm=\"http://127.0.0.1:$P_A/token\",service=\"fake\",scope=\"repository:test/a:pull\""
cfg A "{\"auth\": \"bearer\", \"token\": \"SECRET-TOKEN-OF-A\", \"user\": \"alice\", \"pass\": \"s3cret-PW\"}"
cfg B "{\"auth\": \"bearer\", \"token\": \"b-token\", \"challenge\": $(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$CH_A")}"
creds "127.0.0.1:$P_A"
write_config "$FC"
URLA=http://127.0.0.1:$P_A/v2/test/a/blobs/sha256:$dig
URLB=http://127.0.0.1:$P_B/v2/evil/b/blobs/sha256:$digb
mkentry "$URLA" "$T/a.bin" > /dev/null
mkentry "$URLB" "$T/b.bin" > /dev/null
BLOBS="[{\"id\":1,\"cache\":\"$T/cache/sha256:$dig\",\"data\":\"$T/a.bin\"},
	{\"id\":2,\"cache\":\"$T/cache/sha256:$digb\",\"data\":\"$T/b.bin\"}]"
run_stub d2 "$BLOBS" "[ {\"read\": [[1, 0, $K]]}, {\"read\": [[2, 0, $K]], \"expect\": \"any\"}, {\"alive\": true} ]"
ok $? "D2: A's blob read with A's token; B's read answered, daemon alive"
is "D2: A got its token with a GET" "$(reqs A 'r["path"].startswith("/v2/") and r["authorization"] == "Bearer SECRET-TOKEN-OF-A"')" 1
is "D2: B never received A's token" "$(reqs B '"SECRET-TOKEN-OF-A" in r["authorization"]')" 0
is "D2: B never received any Authorization" "$(reqs B 'r["authorization"] != ""')" 0
is "D2: A's token server got no Basic for B's blob (no credentials for B)" \
	"$(reqs A 'r["path"].startswith("/token") and r["authorization"].startswith("Basic")')" 1

# --- D17: "Basic", then "Bearer": the token, never the password at the registry -------
cfg A "{\"auth\": \"bearer\", \"token\": \"tok-a\", \"user\": \"alice\", \"pass\": \"s3cret-PW\",
	\"challenges\": [\"Basic realm=\\\"fake\\\"\", \"Bearer realm=\\\"http://127.0.0.1:$P_A/token\\\",service=\\\"fake\\\",scope=\\\"repository:test/a:pull\\\"\"]}"
run_stub d17 "[$(blob1 "$URLA")]" "[ {\"read\": [[1, 0, $K], [1, $W, $K]]} ]"
ok $? "D17: Basic + Bearer challenges: reads succeed"
is "D17: no Basic password sent to the registry's /v2/" "$(reqs A 'r["path"].startswith("/v2/") and r["authorization"].startswith("Basic")')" 0
is "D17: the Bearer token used" "$(reqs A 'r["path"].startswith("/v2/") and r["authorization"] == "Bearer tok-a"')" 2

# --- D6: https registry, http:// realm ------------------------------------------------
cfg H '{"user": "alice", "pass": "s3cret-PW", "token": "tok-h"}'
cfg S "{\"auth\": \"bearer\", \"token\": \"tok-h\", \"challenge\": \"Bearer realm=\\\"http://127.0.0.1:$P_H/token\\\",service=\\\"fake\\\"\"}"
creds "127.0.0.1:$P_S" "127.0.0.1:$P_H"
write_config "$FC" "$CA"
URLS=https://127.0.0.1:$P_S/v2/test/a/blobs/sha256:$dig
run_stub d6 "[$(blob1 "$URLS")]" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
ok $? "D6: https registry with an http:// realm: READ fails, daemon alive"
is "D6: the http realm saw nothing" "$(reqs H 'True')" 0
is "D6: the refusal is logged" "$(runlog d6 | grep -c 'token realm is http:// for an https registry')" 1
if [ -x "$OBDB" ]; then
	printf '{"repoBlobUrl": "https://127.0.0.1:%s/v2/test/a/blobs", "lowers": [{"digest": "sha256:%s", "size": %s}]}\n' \
		"$P_S" "$dig" "$(stat -c %s "$T/a.bin")" > "$T/s.json"
	rm -rf "$T/ocache"
	sed "s|$T/cache|$T/ocache|" "$T/overlaybd.json" > "$T/obd.json"
	"$OBDB" attach --service-config "$T/obd.json" --table "$T/s.json" > "$T/obd-d6.out" 2>&1
	[ $? -ne 0 ]; ok $? "D6 (obd): attach of an https registry with an http:// realm fails"
	grep -q 'token realm is http:// for an https registry' "$T/obd-d6.out"; ok $? "D6 (obd): it says why"
	is "D6 (obd): the http realm saw nothing" "$(reqs H 'True')" 0
fi

# one warning for credentials over plain http, however many are sent
cfg A '{"auth": "basic", "user": "alice", "pass": "s3cret-PW"}'
creds "127.0.0.1:$P_A"
write_config "$FC"
run_stub plain "[$(blob1 "$URLA")]" "[ {\"read\": [[1, 0, $K]]}, {\"read\": [[1, $W, $K], [1, $((2 * W)), $K]]} ]"
ok $? "plain http Basic: reads succeed"
is "plain http Basic: one warning" "$(runlog plain | grep -c 'WARN.*credentials over plain http')" 1

# --- D11: a redirect target refusing once ----------------------------------------------
cfg A "{\"auth\": \"basic\", \"user\": \"alice\", \"pass\": \"s3cret-PW\", \"redirect\": \"http://localhost:$P_H/target\"}"
cfg H '{"deny_once": true}'
run_stub d11 "[$(blob1 "$URLA")]" "[ {\"read\": [[1, 0, $K]]}, {\"read\": [[1, $W, $K]]} ]"
ok $? "D11: a 403 from the redirect target once: the reads succeed"
is "D11: the target got 3 GETs (403, then a fresh redirect, then the next range)" "$(reqs H 'r["path"].startswith("/target/")')" 3
is "D11: the registry was asked again for the redirect" "$(reqs A 'r["path"].startswith("/v2/") and r["authorization"] != ""')" 3
is "D11: no Authorization at the target" "$(reqs H 'r["authorization"] != ""')" 0

# --- D12: https -> http on the same host refused; http -> https keeps auth --------------
cfg S "{\"auth\": \"basic\", \"user\": \"alice\", \"pass\": \"s3cret-PW\", \"redirect\": \"http://127.0.0.1:$P_H\"}"
cfg H '{}'
creds "127.0.0.1:$P_S" "127.0.0.1:$P_A"
write_config "$FC" "$CA"
run_stub d12down "[$(blob1 "$URLS")]" "[ {\"read\": [[1, 0, $K]], \"expect\": \"err\"}, {\"alive\": true} ]"
ok $? "D12: https -> http on the same host: READ fails"
is "D12: the http server saw no request" "$(reqs H 'True')" 0
is "D12: the refusal is logged" "$(runlog d12down | grep -c 'redirect from https to http on the same host refused')" 1

cfg A "{\"auth\": \"basic\", \"user\": \"alice\", \"pass\": \"s3cret-PW\", \"redirect\": \"https://127.0.0.1:$P_S\"}"
cfg S '{"auth": "basic", "user": "alice", "pass": "s3cret-PW"}'
run_stub d12up "[$(blob1 "$URLA")]" "[ {\"read\": [[1, 0, $K], [1, $W, $K]]} ]"
ok $? "D12: http -> https on the same host: reads succeed"
is "D12: the https target got the Authorization" "$(reqs S 'r["authorization"].startswith("Basic")')" 2
is "D12: ... and never a request without it" "$(reqs S 'r["authorization"] == ""')" 0

if [ -x "$OBDB" ]; then
	# obd attach --table (the layer is random bytes: the attach fails after its first GETs)
	obd_table() {	# obd_table BASE_URL: attach of a.bin's digest from BASE_URL
		printf '{"repoBlobUrl": "%s/v2/test/a/blobs", "lowers": [{"digest": "sha256:%s", "size": %s}]}\n' \
			"$1" "$dig" "$(stat -c %s "$T/a.bin")" > "$T/t.json"
		rm -rf "$T/ocache"
		sed "s|$T/cache|$T/ocache|" "$T/overlaybd.json" > "$T/obd.json"
		"$OBDB" attach --service-config "$T/obd.json" --table "$T/t.json" > "$T/obd.out" 2>&1
	}
	cfg S "{\"auth\": \"basic\", \"user\": \"alice\", \"pass\": \"s3cret-PW\", \"redirect\": \"http://127.0.0.1:$P_H\"}"
	cfg H '{}'
	obd_table "https://127.0.0.1:$P_S"
	[ $? -ne 0 ]; ok $? "D12 (obd): https -> http on the same host: attach fails"
	is "D12 (obd): the http server saw no request" "$(reqs H 'True')" 0
	grep -q 'redirect from https to http on the same host refused' "$T/obd.out"; ok $? "D12 (obd): it says why"
	cfg A "{\"auth\": \"basic\", \"user\": \"alice\", \"pass\": \"s3cret-PW\", \"redirect\": \"https://127.0.0.1:$P_S\"}"
	cfg S '{"auth": "basic", "user": "alice", "pass": "s3cret-PW"}'
	obd_table "http://127.0.0.1:$P_A"
	[ "$(reqs S 'r["authorization"].startswith("Basic")')" -gt 0 ]
	ok $? "D12 (obd): http -> https on the same host: the https target got the Authorization"
	is "D12 (obd): ... and never a request without it" "$(reqs S 'r["authorization"] == ""')" 0
fi

# --- D13: the P2P peer never gets a Basic password ----------------------------------------
PP=$(free_port)
python3 "$here/p2ppeer.py" "$PP" /p2p > "$T/peer.log" 2>&1 &
pids+=("$!")
wait_port "$PP" || bail "peer did not start"
P2P="\"p2pConfig\": { \"enable\": true, \"address\": \"http://127.0.0.1:$PP/p2p\" }"
peer_reqs() { curl -sS "http://127.0.0.1:$PP/__stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
cfg A '{"auth": "basic", "user": "alice", "pass": "s3cret-PW"}'
creds "127.0.0.1:$P_A"
write_config "$FC" "$P2P"
curl -sS "http://127.0.0.1:$PP/__reset" > /dev/null
run_stub d13basic "[$(blob1 "$URLA")]" "[ {\"read\": [[1, 0, $K], [1, $W, $K]]} ]"
ok $? "D13: Basic registry with a P2P peer: reads succeed"
is "D13: the peer got no request (it would carry the password)" "$(peer_reqs)" 0
cfg A '{"auth": "bearer", "token": "tok-p2p"}'
curl -sS "http://127.0.0.1:$PP/__reset" > /dev/null
run_stub d13bearer "[$(blob1 "$URLA")]" "[ {\"read\": [[1, 0, $K], [1, $W, $K]]} ]"
ok $? "D13: Bearer registry with a P2P peer: reads succeed"
[ "$(peer_reqs)" -gt 0 ]; ok $? "D13: ... through the peer (a token may go there)"

# --- D1: B poisons D's entry, A's image still reads A's bytes -------------------------------
mkblob "$T/evil.bin" $(stat -c %s "$T/a.bin")
cfg A '{}'
cfg B '{}'
fakereg E "$T/evil.bin"
write_config "$FC"
rm -f "$T/cache/sha256:$dig" "$T/cache/sha256:$dig.meta"
# the daemon reads part of B's layer: B's bytes go into an entry for D
URLE=http://127.0.0.1:$P_E/v2/evil/img/blobs/sha256:$dig
mkentry "$URLE" "$T/a.bin" > /dev/null
python3 "$here/kstub.py" run /dev/stdin > "$T/d1a.json" <<-JSON
{ "socket": "$T/chan.sock", "log": "$T/daemon.log", "timeout": 30,
  "daemon": ["$FETCHD", "--service-config", "$T/overlaybd.json", "--device", "$T/chan.sock"],
  "blobs": [{"id":1,"cache":"$T/cache/sha256:$dig","data":"$T/evil.bin","digest":"$dig"}],
  "steps": [ {"read": [[1, 0, $K], [1, $W, $K]]} ] }
JSON
ok $? "D1: B's bytes read in part into the entry of D (the setup)"
if [ -x "$OBDB" ]; then
	printf '{"repoBlobUrl": "http://127.0.0.1:%s/v2/test/a/blobs", "lowers": [{"digest": "sha256:%s", "size": %s}]}\n' \
		"$P_A" "$dig" "$(stat -c %s "$T/a.bin")" > "$T/a.json"
	# the attach fails (a.bin is no overlaybd layer) after reading the header range
	"$OBDB" attach --service-config "$T/overlaybd.json" --table "$T/a.json" > "$T/obd-d1.out" 2>&1
	python3 "$top/tests/tools/cache-check.py" "$T/cache/sha256:$dig" "$T/a.bin" > "$T/d1-check.out" 2>&1
	ok $? "D1 (obd): after attaching A's image, every present granule holds A's bytes"
	is "D1 (obd): the entry names A" \
		"$(python3 -c 'import sys; m=open(sys.argv[1],"rb").read(); print(m[128:2176].rstrip(b"\0").decode())' "$T/cache/sha256:$dig.meta")" "$URLA"
	[ "$(reqs A 'r["path"].startswith("/v2/")')" -gt 0 ]; ok $? "D1 (obd): A was asked for the header"
	# the daemon, for A's image, on the entry as obd left it
	run_stub d1b "[{\"id\":1,\"cache\":\"$T/cache/sha256:$dig\",\"data\":\"$T/a.bin\"}]" \
		"[ {\"read\": [[1, 0, $K], [1, $W, $K], [1, $((3 * W)), $K]]} ]"
	ok $? "D1: the daemon serves A's image A's bytes (kstub compares every range)"
fi

# --- credential requests and environment proxies (section 2 suspicion) ---------------------
# credentialConfig http, no fetchConfig.proxy, http_proxy in the environment:
# the answer (the secrets) must not go through that proxy
CP=$(free_port)
python3 "$here/credserver.py" http "$CP" > "$T/credserver.log" 2>&1 &
pids+=("$!")
XP=$(free_port)
python3 "$here/fwdproxy.py" "$XP" > "$T/fwdproxy.log" 2>&1 &
pids+=("$!")
wait_port "$CP" && wait_port "$XP" || bail "credential server or proxy did not start"
curl -sS "http://127.0.0.1:$CP/__set?mode=ok&user=alice&pass=s3cret-PW" > /dev/null
cfg A '{"auth": "basic", "user": "alice", "pass": "s3cret-PW"}'
write_config "$FC"
sed -i "s|\"mode\": \"file\", \"path\": \"$T/cred.json\"|\"mode\": \"http\", \"path\": \"http://127.0.0.1:$CP/auth\"|" "$T/overlaybd.json"
grep -q '"mode": "http"' "$T/overlaybd.json"; ok $? "credentialConfig mode http written"
B1=$(blob1 "$URLA")
( unset NO_PROXY no_proxy; export http_proxy=http://127.0.0.1:$XP
  run_stub envproxy "[$B1]" "[ {\"read\": [[1, 0, $K]]} ]" )
ok $? "env http_proxy, credential server over http: the read succeeds"
targets=$(curl -sS "http://127.0.0.1:$XP/__stats" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["targets"]))')
case "$targets" in *":$CP/"*) r=1 ;; *) r=0 ;; esac
ok $r "env http_proxy: the credential request did not go through it"
case "$targets" in *":$P_A/"*) r=0 ;; *) r=1 ;; esac
ok $r "env http_proxy: registry requests do (as documented: curl's environment proxies apply)"
[ "$(curl -sS "http://127.0.0.1:$CP/__stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')" -ge 1 ]
ok $? "env http_proxy: the credential server was asked directly"

! grep -qE 's3cret-PW|SECRET-TOKEN|YWxpY2U6' "$T/daemon.log"
ok $? "no password or token in the log"
! grep -qE 'AddressSanitizer|runtime error' "$T/daemon.log"
ok $? "no sanitizer reports"

done_testing
