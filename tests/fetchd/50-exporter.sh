#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# overlaybd-fetchd's Prometheus exporter (exporterConfig) with kstub.py as
# the kernel and a real registry behind the counting proxy: scrapes taken
# between the stand-in's steps pass `promtool check metrics` and agree with
# what the stand-in did; 404/405/400/431; slow clients are cut at the
# deadline while misses are still served; the connection bound; parallel
# scrapes; a port in use fails the start naming the key; disabled: nothing
# listens.
. "$(dirname "$0")/lib.bash"

command -v promtool > /dev/null || bail "promtool missing (Debian package prometheus; scripts/deps.sh)"

K=4096
R=262144
mkdir -p "$T/cache"
start_registry reg
start_proxy "$REG_PORT"
ASZ=$((3 * 1048576 + 1234))
mkblob "$T/a.bin" $ASZ
mkblob "$T/b.bin" $((1048576 + 100))
mkblob "$T/c.bin" 50000		# never uploaded: 404
upload "$REG_PORT" test/repo "$T/a.bin" && upload "$REG_PORT" test/repo "$T/b.bin"
ok $? "blobs uploaded to docker-registry"
url() { echo "http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
A=$(mkentry "$(url "$T/a.bin")" "$T/a.bin")
B=$(mkentry "$(url "$T/b.bin")" "$T/b.bin")
C=$(mkentry "$(url "$T/c.bin")" "$T/c.bin")
BLOBS="[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"},{\"id\":2,\"cache\":\"$B\",\"data\":\"$T/b.bin\"},
	{\"id\":3,\"cache\":\"$C\",\"data\":\"$T/c.bin\"}]"
echo '{}' > "$T/cred.json"
EP=$(free_port)
# readahead off: every fetch is one a test READ asked for, so the counts are exact
exporter_config() {	# exporter_config ENABLE PORT [ADDRESS]
	write_config '"requestTimeout": 10, "syncIntervalMs": 100, "readaheadMB": 0, "isolatedRefillKB": 0' \
		"\"exporterConfig\": { \"enable\": $1, \"port\": $2, \"uriPrefix\": \"/metrics\",
		  \"updateInterval\": 1000${3:+, \"address\": \"$3\"} }"
}

# helpers the stand-in runs between its steps ("exec")
cat > "$T/scrape.sh" <<-SH
	# scrape.sh NAME: the exporter's page into $T/NAME.txt, and the proxy's counts
	curl -sS -f --max-time 5 -o "$T/\$1.txt" "http://127.0.0.1:$EP/metrics" || exit \$?
	curl -sS --max-time 5 -o "$T/\$1.px.json" "http://127.0.0.1:$PX_PORT/__stats"
SH
cat > "$T/probe.py" <<-'PY'
	# probe.py PORT: raw HTTP requests, one per connection; a JSON object of what came back
	import json, socket, sys
	port = int(sys.argv[1])
	def ask(data):
	    s = socket.create_connection(("127.0.0.1", port), 5)
	    s.settimeout(5)
	    s.sendall(data)
	    got = b""
	    try:
	        while True:
	            b = s.recv(65536)
	            if not b:
	                break
	            got += b
	    except (socket.timeout, ConnectionResetError) as e:
	        got += b"<%s>" % type(e).__name__.encode()
	    s.close()
	    head, _, body = got.partition(b"\r\n\r\n")
	    lines = head.decode("latin-1").split("\r\n")
	    hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
	    code = int(lines[0].split()[1]) if lines[0].startswith("HTTP/1.1 ") else lines[0]
	    return dict(code=code, hdrs=hdrs, body=len(body))
	H = b"Host: 127.0.0.1\r\nUser-Agent: probe\r\n\r\n"
	out = dict(
	    get=ask(b"GET /metrics HTTP/1.1\r\n" + H),
	    query=ask(b"GET /metrics?x=1 HTTP/1.1\r\n" + H),
	    head=ask(b"HEAD /metrics HTTP/1.1\r\n" + H),
	    other=ask(b"GET /other HTTP/1.1\r\n" + H),
	    prefix=ask(b"GET /metricsfoo HTTP/1.1\r\n" + H),
	    post=ask(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n" + H + b"x=1"),
	    bad=ask(b"garbage\r\n\r\n"),
	    badver=ask(b"GET /metrics HTTP/9.9\r\n" + H),
	    badhdr=ask(b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n"),
	    big=ask(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 9000))
	print(json.dumps(out))
PY
cat > "$T/slow.py" <<-'PY'
	# slow.py PORT N OUT: N clients send a request head that never ends, one
	# byte every 0.2 s; OUT gets when the server cut each (s after connecting)
	import json, select, socket, sys, time
	port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
	socks = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(n)]
	t0 = time.time()
	for s in socks:
	    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
	    s.setblocking(False)
	open(out + ".ready", "w").close()	# every connection is made: the next step may scrape
	cut, answered = {}, 0
	while len(cut) < n and time.time() - t0 < 20:
	    for i, s in enumerate(socks):
	        if i in cut:
	            continue
	        try:
	            if select.select([s], [], [], 0)[0]:
	                data = s.recv(4096)
	                if data:
	                    answered += 1
	                    continue
	                cut[i] = time.time() - t0
	                continue
	            s.send(b"a")
	        except OSError:
	            cut[i] = time.time() - t0
	    time.sleep(0.2)
	json.dump(dict(cut=len(cut), first=min(cut.values(), default=-1),
	               last=max(cut.values(), default=-1), answered=answered), open(out + ".tmp", "w"))
	import os; os.rename(out + ".tmp", out)
PY
cat > "$T/parallel.sh" <<-SH
	# parallel.sh N: N scrapes at once; prints how many got the whole page
	for i in \$(seq \$1); do
		curl -sS -f --max-time 10 -o "$T/par.\$i.txt" "http://127.0.0.1:$EP/metrics" 2>>"$T/par.err" &
	done
	wait
	grep -l '^overlaybd_fetchd_up 1\$' "$T"/par.*.txt | wc -l
SH

# --- run 1: misses, scrapes --------------------------------------------------------
exporter_config true "$EP"
# The first two blob GETs (of the READs of steps 1 and 2) wait 1.5 s at the
# proxy: the 32 concurrent READs all find that fetch in flight (on a loaded
# machine the fetch finished before the last READs came: "present", not merged)
run_stub r1 "$BLOBS" "[
	{\"exec\": \"bash $T/scrape.sh m0 && curl -sS -f -o /dev/null 'http://127.0.0.1:$PX_PORT/__fault?mode=slow&n=2&ms=1500'\"},
	{\"read\": [[1, 0, $K]]},
	{\"read\": [[1, 1048576, $K]], \"repeat\": 32},
	{\"read\": [[1, 524288, $K], [1, $((524288 + 2 * K)), $K]]},
	{\"read\": [[1, 0, $K], [1, $((R - K)), $K]]},
	{\"read\": [[1, $((ASZ - 1234)), 1234]]},
	{\"read\": [[3, 0, $K], [9, 0, $K]], \"expect\": \"err\"},
	{\"sleep\": 0.4},
	{\"exec\": \"bash $T/scrape.sh m1\"},
	{\"exec\": \"python3 $T/probe.py $EP\"},
	{\"exec\": \"python3 $T/slow.py $EP 16 $T/slow.json > $T/slow.log 2>&1 & for i in \$(seq 100); do [ -f $T/slow.json.ready ] && break; sleep 0.05; done; sleep 0.2\"},
	{\"read\": [[2, 0, $K], [2, 524288, $K]]},
	{\"exec\": \"curl -sS --max-time 1 -o /dev/null http://127.0.0.1:$EP/metrics 2>/dev/null\"},
	{\"exec\": \"for i in \$(seq 150); do [ -f $T/slow.json ] && break; sleep 0.1; done; cat $T/slow.json\"},
	{\"exec\": \"bash $T/scrape.sh m2\"},
	{\"exec\": \"bash $T/parallel.sh 20\"},
	{\"exec\": \"bash $T/scrape.sh m3\"}]"
ok $? "run 1: every READ answered once, ranges cover requests, cache bytes match the blob"

# m FILE NAME{LABELS}: a sample's value (empty when absent)
m() { awk -v k="overlaybd_fetchd_$2" '$1 == k { print $2 }' "$T/$1.txt"; }
# msum FILE NAME: the sum over every label set of a family's sample
msum() { awk -v k="overlaybd_fetchd_$2" 'index($1, k "{") == 1 || $1 == k { s += $2 } END { print s + 0 }' "$T/$1.txt"; }
step() { jget "$T/r1.json" "j['steps'][$1]$2"; }

is "scrape before any miss: taken" "$(step 0 "['rc']")" 0
is "before any miss: misses_total 0" "$(m m0 misses_total)" 0
is "before any miss: up 1, connected 1" "$(m m0 up) $(m m0 connected)" "1 1"
is "scrape after the misses: taken" "$(step 8 "['rc']")" 0

promtool check metrics < "$T/m1.txt" > "$T/promtool.1" 2>&1
is "promtool check metrics: no problems (status, output)" "$?:$(cat "$T/promtool.1")" "0:"
for f in m2 m3; do
	promtool check metrics < "$T/$f.txt" > "$T/promtool.$f" 2>&1
	is "promtool check metrics on a later scrape ($f)" "$?:$(cat "$T/promtool.$f")" "0:"
done

reads=$(jget "$T/r1.json" 'sum(len(s["dones"]) for s in j["steps"][1:7])')
is "the stand-in sent 40 READs in run 1 (before the m1 scrape)" "$reads" 40
is "misses_total == READs sent" "$(m m1 misses_total)" "$reads"
oks=$(jget "$T/r1.json" 'sum(1 for s in j["steps"][1:7] for d in s["dones"] if d["status"] == 0)')
is "dones_total{status=ok} == DONEs with status 0" "$(m m1 'dones_total{status="ok"}')" "$oks"
is "dones_total{status=error} == the 404 READ + the unknown blob's" "$(m m1 'dones_total{status="error"}')" 2
is "request_duration_seconds count (all statuses) == DONEs" "$(msum m1 request_duration_seconds_count)" "$reads"
is "request_duration_seconds_count{status=error} == 2 (one answered at once)" "$(m m1 'request_duration_seconds_count{status="error"}')" 2
is "histogram: the +Inf bucket == the count" \
	"$(m m1 'request_duration_seconds_bucket{status="ok",le="+Inf"}')" "$(m m1 'request_duration_seconds_count{status="ok"}')"
python3 - "$T/m1.txt" <<-'PY'
	import sys
	b = [float(l.split()[1]) for l in open(sys.argv[1]) if l.startswith('overlaybd_fetchd_request_duration_seconds_bucket{status="ok"')]
	sys.exit(0 if len(b) == 16 and b == sorted(b) and b[-1] > 0 else 1)
PY
ok $? "histogram: 16 cumulative buckets, nondecreasing"
# the ranges the DONEs name were all fetched in this run (the cache was cold): their union
asked=$(jget "$T/r1.json" 'len(set().union(*(range(d["off"], d["off"] + d["len"]) for s in j["steps"][1:7] for d in s["dones"] if d["status"] == 0)))')
fetched=$(m m1 fetched_bytes_total)
[ -n "$fetched" ] && [ "$fetched" -ge "$asked" ] && [ "$asked" -gt 0 ]
ok $? "fetched_bytes_total ($fetched) >= bytes of the fetched ranges DONEs name ($asked)"
is "written_bytes_total == fetched_bytes_total" "$(m m1 written_bytes_total)" "$fetched"
is "misses_present_total: the 2 READs of a range already present" "$(m m1 misses_present_total)" 2
is "http_requests_total == requests the proxy saw" "$(m m1 http_requests_total)" \
	"$(jget "$T/m1.px.json" 'j["requests"]')"
is "fetches_merged_total: 31 of the 32 concurrent READs + 1 of a window" "$(m m1 fetches_merged_total)" 32
is "errors_total{kind=notfound} == 1, other kinds 0" \
	"$(m m1 'errors_total{kind="notfound"}') $(msum m1 errors_total)" "1 1"
is "nothing pending, active or queued after the steps" \
	"$(m m1 pending_requests) $(m m1 active_transfers) $(m m1 queued_fetches) $(m m1 fetches_in_flight)" "0 0 0 0"
is "blobs_open == 3" "$(m m1 blobs_open)" 3
is "build_info names the daemon's version" \
	"$(sed -n 's/^overlaybd_fetchd_build_info{version="\([^"]*\)"} 1$/\1/p' "$T/m1.txt")" \
	"$("$FETCHD" --version | cut -d' ' -f2)"
ADIG=$(sha256sum "$T/a.bin" | cut -d' ' -f1)
want=$(jget "$T/r1.json" "sum(min(4096, $ASZ - g * 4096) for g in j['meta']['1'])")
is "blob_cached_bytes of blob 1 == the bytes its .meta says are present" \
	"$(m m1 "blob_cached_bytes{blob=\"1\",digest=\"sha256:$ADIG\"}")" "$want"
is "blob_size_bytes of blob 1" "$(m m1 "blob_size_bytes{blob=\"1\",digest=\"sha256:$ADIG\"}")" "$ASZ"
is "blob_cached_bytes of the 404 blob: 0" "$(msum m1 'blob_cached_bytes{blob="3"')" 0
is "every counter family ends in _total" \
	"$(awk '$1 == "#" && $2 == "TYPE" && $4 == "counter" && $3 !~ /_total$/' "$T/m1.txt")" ""

# --- HTTP ------------------------------------------------------------------------------
echo "$(step 9 "['out']")" > "$T/probe.json"
pj() { jget "$T/probe.json" "$1"; }
is "GET /metrics: 200, exposition content type, Connection: close" \
	"$(pj 'j["get"]["code"], j["get"]["hdrs"]["content-type"].startswith("text/plain; version=0.0.4"), j["get"]["hdrs"]["connection"]')" \
	"200 True close"
is "GET /metrics: the body is Content-Length long" "$(pj 'int(j["get"]["hdrs"]["content-length"]) == j["get"]["body"] > 1000')" True
is "GET /metrics?x=1: 200 (the query is ignored)" "$(pj 'j["query"]["code"]')" 200
is "HEAD /metrics: 200, a length, no body" "$(pj 'j["head"]["code"], int(j["head"]["hdrs"]["content-length"]) > 1000, j["head"]["body"]')" "200 True 0"
is "GET /other: 404" "$(pj 'j["other"]["code"]')" 404
is "GET /metricsfoo: 404 (the path, not a prefix)" "$(pj 'j["prefix"]["code"]')" 404
is "POST /metrics: 405 with Allow: GET, HEAD" "$(pj 'j["post"]["code"], j["post"]["hdrs"].get("allow")')" "405 GET, HEAD"
is "a malformed request line: 400" "$(pj 'j["bad"]["code"]')" 400
is "an unknown HTTP version: 400" "$(pj 'j["badver"]["code"]')" 400
is "a header line without a colon: 400" "$(pj 'j["badhdr"]["code"]')" 400
is "a request head over 8 KiB: 431" "$(pj 'j["big"]["code"]')" 431

# --- slow clients, the connection bound, parallel scrapes ---------------------------------
is "16 slow clients: every one cut, none answered" "$(step 13 "['out']" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["cut"], j["answered"])')" "16 0"
cut=$(step 13 "['out']" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(4.5 <= j["first"] and j["last"] <= 8)')
is "... at the 5 s deadline (not before, not long after)" "$cut" True
is "misses answered while the slow clients held every connection" \
	"$(jget "$T/r1.json" '[d["status"] for d in j["steps"][11]["dones"]], j["steps"][11]["ms"] < 3000')" "[0, 0] True"
is "a scrape while 16 connections are taken waits (bounded): curl times out" "$(step 12 "['rc']")" 28
is "after the slow clients are cut a scrape is served again" "$(step 14 "['rc']")" 0
is "exporter_timeouts_total == 16" "$(m m2 exporter_timeouts_total)" 16
is "misses_total after the slow-client step: 42" "$(m m2 misses_total)" 42
is "20 parallel scrapes: all got the whole page" "$(step 15 "['out'].strip()")" 20
# m3's own response is counted after it is rendered: m0, m1, the probe's 3, the
# timed-out one (its request waited in the backlog: answered to a closed socket), m2, 20
is "exporter_responses_total{code=200} counts the scrapes" "$(m m3 'exporter_responses_total{code="200"}')" 27
is "... 404 x2, 405, 400 x3, 431" \
	"$(m m3 'exporter_responses_total{code="404"}') $(m m3 'exporter_responses_total{code="405"}') $(m m3 'exporter_responses_total{code="400"}') $(m m3 'exporter_responses_total{code="431"}')" \
	"2 1 3 1"
runlog r1 | grep -q "exporter: serving http://127.0.0.1:$EP/metrics"
ok $? "the start is logged with the address"
! runlog r1 | grep -qiE 'authorization:|password'
ok $? "no credentials in the log"

# --- disabled: nothing listens -----------------------------------------------------------
exporter_config false "$EP"
run_stub r2 "$BLOBS" "[
	{\"read\": [[1, 0, $K]]},
	{\"exec\": \"curl -sS --max-time 2 -o /dev/null http://127.0.0.1:$EP/metrics 2>/dev/null\"}]"
ok $? "run 2 (exporter disabled): reads answered"
is "disabled: nothing listens on the port (curl: connection refused)" \
	"$(jget "$T/r2.json" 'j["steps"][1]["rc"]')" 7
! runlog r2 | grep -q 'exporter: serving'
ok $? "disabled: no exporter start logged"

# --- start errors ------------------------------------------------------------------------
exporter_config true "$REG_PORT"	# the registry has it
timeout 20 "$FETCHD" --service-config "$T/overlaybd.json" --device "$T/chan.sock" 2> "$T/err"
rc=$?
grep -q "exporterConfig.port: cannot listen on 127.0.0.1:$REG_PORT .*Address already in use" "$T/err"
is "a port in use: exit 1, the message names exporterConfig.port and the address" "$rc:$?" "1:0"
exporter_config true "$EP" localhost
timeout 20 "$FETCHD" --service-config "$T/overlaybd.json" --device "$T/chan.sock" 2> "$T/err"
rc=$?
grep -q "exporterConfig.address: 'localhost' is not an IPv4 or IPv6 address" "$T/err"
is "a host name as address: exit 1, exporterConfig.address named" "$rc:$?" "1:0"

done_testing
