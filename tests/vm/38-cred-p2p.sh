#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 38-cred-p2p.sh: credential servers, a P2P peer and a forward proxy in front
# of a password-protected docker-registry, inside the VM with the kernel's
# miss channel and overlaybd-fetchd (issue #8; the host tests fetchd/60 and
# fetchd/70 cover the daemon alone):
#   - credentialConfig mode uds: a two-layer image pushed with credentials
#     (mode http) attaches on a cold cache, the whole device reads right;
#     the daemon asked the server once for both blobs; after the password
#     changes, a cold read is refused (401), the daemon asks again and
#     succeeds;
#   - obd list agrees with the exporter: per remote layer the blob size and
#     the bytes cached (blob_size_bytes, blob_cached_bytes), the number of
#     remote layers (blobs_open), and dmsetup status with both;
#   - p2pConfig, with a second, anonymous registry on the same storage (a
#     peer never gets Basic credentials, review D13): obd attach REF, every
#     byte the daemon fetched came through the peer, device right;
#     the peer answering 500: the reads fall back to the registry and stay
#     right;
#   - fetchConfig.proxy: data GETs go through the forward proxy;
#   - no password and no Basic token in any log.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/38-cred-p2p.sh
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
PW1='vm-Cred-pass-1'
PW2='vm-Cred-pass-2'
REG_USER=carol REG_PASS=$PW1
reg_test_begin 38-cred-p2p
H=$OBD_TOP/tests/fetchd

freeport() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CP=$(freeport) PP=$(freeport) FP=$(freeport) EXP=$(freeport)
$PY "$H/credserver.py" http "$CP" > credserver-http.log 2>&1 &
vm_on_exit kill $!
$PY "$H/credserver.py" uds "$d/cred.sock" > credserver-uds.log 2>&1 &
vm_on_exit kill $!
$PY "$H/p2ppeer.py" "$PP" /dadip2p/access > peer.log 2>&1 &
vm_on_exit kill $!
$PY "$H/fwdproxy.py" "$FP" > fwdproxy.log 2>&1 &
vm_on_exit kill $!
for p in "$CP" "$PP" "$FP"; do wait_port "$p" || bail "a test server on port $p did not start"; done
for i in $(seq 50); do [ -S cred.sock ] && break; sleep 0.1; done
cs() { curl -sS "http://127.0.0.1:$CP$1"; }
us() { curl -sS --unix-socket "$d/cred.sock" "http://localhost$1"; }
peer() { curl -sS "http://127.0.0.1:$PP$1"; }
jget() { $PY -c "import json, sys; j = json.load(sys.stdin); print($1)"; }
cs "/__set?mode=ok&user=carol&pass=$PW1" > /dev/null && us "/__set?mode=ok&user=carol&pass=$PW1" > /dev/null ||
	bail "cannot set the credential servers' password"
ok "credential servers (http, uds), P2P peer and forward proxy on 127.0.0.1"

# svc NAME CREDMODE CREDPATH [MORE TOP-LEVEL MEMBERS [MORE fetchConfig MEMBERS]]
svc() {
	cat > "$1" <<-JSON
	{ "logConfig": { "logLevel": 1 },
	  "cacheConfig": { "cacheDir": "$d/cache", "refillSize": 65536, "minFreeGB": 0 },
	  "credentialConfig": { "mode": "$2", "path": "$3", "timeout": 5 },
	  "exporterConfig": { "enable": true, "port": $EXP, "updateInterval": 200 },
	  "fetchConfig": { "requestTimeout": 20, "syncIntervalMs": 50 ${5:+, $5} } ${4:+, $4} }
	JSON
}
svc push.json http "http://127.0.0.1:$CP/auth"
# l1: 3 MiB of random data; l2 over it: 1 MiB of other data at 1 MiB
check "make two layers (3 MiB, then 1 MiB at 1 MiB over it)" bash -c "
	$(declare -f rand_layer); obd='$obd' PY='$PY'; rand_layer l1 3 31 && rand_layer l2r 1 32 &&
	'$obd' create l2w.data l2w.index 3M && '$obd' write l2w.data l2w.index --offset 1M l2r.raw &&
	'$obd' commit --no-progress l2w.data l2w.index l2.commit"
check "obd push with credentialConfig mode http" bash -c \
	"'$obd' push --service-config push.json http://127.0.0.1:$REG/cred/img:v1 l1.commit l2.commit > direct.json"
via_proxy direct.json img.json
want=$("$obd" cat l1.commit l2.commit | sha256sum | cut -d' ' -f1)
check "without credentials the registry refuses (401)" bash -c \
	"[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$REG/v2/)\" = 401 ]"
fresh_cache() { rm -rf "$d/cache"; mkdir -p "$d/cache"; }
metric() { awk -v n="overlaybd_fetchd_$1" '$1 == n { print $2 }' metrics.txt; }

# --- uds, the password changing, obd list vs the exporter --------------------------------
svc svc-uds.json uds "$d/cred.sock"
fetchd_start svc-uds.json || bail "fetchd did not start: $(tail -3 fetchd.log)"
# obd attach reads the headers and indexes itself (and asks the server too)
check "uds: attach on a cold cache" "$obd" attach --service-config svc-uds.json --name c-u img.json
us /__reset > /dev/null
check_eq "uds: the whole device reads right" "$(devsha c-u)" "$want"
check_eq "uds: the daemon asked the credential server once" "$(us /__stats | jget 'j["requests"]')" 1
check_eq "uds: asked with the blob URL of the repository" \
	"$(us /__stats | jget "all(u.startswith('http://127.0.0.1:$PX/v2/cred/img/blobs/sha256:') for u in j['remote_urls'])")" True

sleep 1.5	# the .meta bitmaps synced (50 ms), an exporter update (200 ms)
curl -s "http://127.0.0.1:$EXP/metrics" > metrics.txt
"$obd" list --json > list.json
check "the exporter answers, promtool check metrics is clean" bash -c "test -s metrics.txt && promtool check metrics < metrics.txt"
check_eq "obd list agrees with the exporter per remote layer (blob size, bytes cached)" "$($PY - <<'PYEOF'
import json, re
series = {}
for line in open("metrics.txt"):
    m = re.match(r'overlaybd_fetchd_(blob_size_bytes|blob_cached_bytes)\{blob="\d+",digest="([^"]+)"\} (\d+)$', line.strip())
    if m:
        series[(m.group(1), m.group(2))] = int(m.group(3))
dev = [x for x in json.load(open("list.json"))["devices"] if x["name"] == "c-u"][0]
bad = [(r["digest"], r["size"], r["cached_bytes"], series.get(("blob_size_bytes", r["digest"])),
        series.get(("blob_cached_bytes", r["digest"]))) for r in dev["remote"]
       if (r["size"], r["cached_bytes"]) != (series.get(("blob_size_bytes", r["digest"])),
                                             series.get(("blob_cached_bytes", r["digest"])))]
print(len(dev["remote"]), "remote layers", "agree" if not bad else bad)
PYEOF
)" "2 remote layers agree"
check_eq "blobs_open = obd list's remote layers = dmsetup status remote" \
	"$(metric blobs_open) $(stat_field c-u remote)" \
	"$($PY -c 'import json; print(sum(len(x["remote"]) for x in json.load(open("list.json"))["devices"]))') 2"
check_eq "connected = dmsetup status daemon; pending 0 at rest" \
	"$(metric connected) $(metric pending_requests)" "$(stat_field c-u daemon) $(stat_field c-u pending)"

check "uds: detach" "$obd" detach c-u
fresh_cache
( htpasswd -Bbn carol "$PW2" > "$d/htpasswd.new" 2>/dev/null && mv "$d/htpasswd.new" "$d/htpasswd" ) ||
	bail "cannot change the password"
us "/__set?pass=$PW2" > /dev/null
check "uds, the password changed: attach on a cold cache" \
	"$obd" attach --service-config svc-uds.json --name c-u2 img.json
us /__reset > /dev/null
check_eq "uds, the password changed: the device reads right" "$(devsha c-u2)" "$want"
# well within the 60 s its answer is kept: what it held was refused, not expired
check_eq "uds, the password changed: the 401 made the daemon ask again (once)" \
	"$(us /__stats | jget 'j["requests"]')" 1
check "uds: detach" "$obd" detach c-u2
fetchd_stop
cs "/__set?pass=$PW2" > /dev/null

# --- p2p, attach REF; the peer failing ----------------------------------------------------
# A P2P peer never gets Basic credentials (review D13): the daemon reads a
# password-protected registry's blobs itself. The peer is tried with a second,
# anonymous docker-registry on the same storage (the image pushed above).
AREG=$(freeport)
sed -e "s|addr: 127.0.0.1:$REG|addr: 127.0.0.1:$AREG|" -e '/^auth:/,$d' "$d/reg.yml" > "$d/reg-anon.yml"
/usr/bin/docker-registry serve "$d/reg-anon.yml" >> "$d/reg-anon.log" 2>&1 &
vm_on_exit kill $!
wait_port "$AREG" || bail "the anonymous registry did not start: $(tail -3 "$d/reg-anon.log")"
echo '{}' > "$d/nocred.json"
fresh_cache
svc svc-p2p.json file "$d/nocred.json" \
	"\"p2pConfig\": { \"enable\": true, \"address\": \"http://127.0.0.1:$PP/dadip2p/access\" }"
fetchd_start svc-p2p.json || bail "fetchd did not start: $(tail -3 fetchd.log)"
peer /__reset > /dev/null
dev=$("$obd" attach --service-config svc-p2p.json --name c-p "http://127.0.0.1:$AREG/cred/img:v1" 2>attach.err)
check_eq "p2p: obd attach REF (anonymous registry) prints the device" "$dev" /dev/mapper/c-p ||
	diag "$(cat attach.err)"
cached() { "$obd" list --json | jget "sum(r['cached_bytes'] for x in j['devices'] if x['name'] == '$1' for r in x['remote'])"; }
c0=$(cached c-p)
check_eq "p2p: the whole device reads right" "$(devsha c-p)" "$want"
c1=$(cached c-p)
n=$(peer /__stats | jget 'j["requests"]')
urls=$(peer /__stats | jget "all('127.0.0.1:$AREG/v2/cred/img/blobs/sha256:' in u for u in j['urls'])")
check "p2p: data GETs went through the peer ($n), for the image's blob URLs" test "$n" -ge 2 -a "$urls" = True
check_eq "p2p: the peer passed on every byte the daemon fetched (obd list's cached bytes: $c0 -> $c1)" \
	"$(peer /__stats | jget 'j["bytes"]')" $((c1 - c0))
check "p2p: detach" "$obd" detach c-p
fresh_cache
peer "/__mode?m=500" > /dev/null
check "p2p, the peer answering 500: attach on a cold cache" \
	"$obd" attach --service-config svc-p2p.json --name c-p5 "http://127.0.0.1:$AREG/cred/img:v1"
check_eq "p2p, the peer answering 500: the device still reads right" "$(devsha c-p5)" "$want"
sleep 0.5
curl -s "http://127.0.0.1:$EXP/metrics" > metrics.txt
n=$(metric p2p_fallbacks_total)
check "p2p, the peer answering 500: GETs fell back to the registry ($n), the peer is backed off" \
	bash -c "[ '${n:-0}' -ge 1 ] && grep -q 'p2p: peer http://127.0.0.1:$PP/dadip2p/access failed 3 times in a row' fetchd.log"
check "p2p: detach" "$obd" detach c-p5
fetchd_stop

# --- fetchConfig.proxy -------------------------------------------------------------------
fresh_cache
svc svc-proxy.json uds "$d/cred.sock" "" "\"proxy\": \"http://127.0.0.1:$FP\""
fetchd_start svc-proxy.json || bail "fetchd did not start: $(tail -3 fetchd.log)"
check "proxy: attach on a cold cache" "$obd" attach --service-config svc-proxy.json --name c-x img.json
check_eq "proxy: the whole device reads right" "$(devsha c-x)" "$want"
check_eq "proxy: the data GETs went through the forward proxy, to the blob URLs" \
	"$(curl -sS "http://127.0.0.1:$FP/__stats" | jget "j['methods'].get('GET', 0) >= 2 and any('127.0.0.1:$PX/v2/cred/img/blobs/' in t for t in j['targets'])")" True
check "proxy: detach" "$obd" detach c-x
fetchd_stop

tok1=$(printf 'carol:%s' "$PW1" | base64) tok2=$(printf 'carol:%s' "$PW2" | base64)
check "no password and no Basic token in the daemon's or obd's logs" bash -c \
	"! grep -qF -e '$PW1' -e '$PW2' -e '$tok1' -e '$tok2' fetchd.log attach.err"
check "the daemon stopped cleanly" bash -c "! grep -qi 'assert\|sanitizer\|segv' fetchd.log"
vm_dmesg_check 38-cred-p2p
tap_done
