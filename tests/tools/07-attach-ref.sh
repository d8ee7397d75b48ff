#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# obd attach REF (issue #8): an image pushed by obd push to a real registry
# (Debian's docker-registry on 127.0.0.1) attaches by tag and by @digest with
# the same table as its printed config.v1.json, and the derived config in
# <cacheDir>/images equals that config; an OCI index picks linux/amd64; a
# Docker v2 manifest works; an image without the overlaybd annotations, a
# wrong digest, a missing tag, garbage and out-of-bounds manifests (served by
# a stub registry that says whatever it is given) are refused with messages
# naming the reference and the field.
. "$(dirname "$0")/common.bash"

skip_without docker-registry

wait_http() {	# wait_http URL: 0 once it answers
	local _
	for _ in $(seq 100); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.1
	done
	return 1
}

PORT=$(free_port)
start_registry reg "$PORT"
ok $? "registry answers on 127.0.0.1:$PORT"

# the stub: GET /v2/<repo>/manifests/<name> answers stub/<name> (Content-Type
# from stub/<name>.ct, default OCI manifest); blob GETs and HEADs go to the real
# registry (a cache entry filled from another origin is not shared while it is
# not complete: the stub's blobs are fetched from the stub); anything else 404
SPORT=$(free_port)
mkdir stub
cat > stub.py <<'EOF'
import http.client, http.server, os, sys
root = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def forward(self):
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[3]), timeout=30)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() in ("range", "accept")}
        c.request(self.command, self.path, headers=hdrs)
        r = c.getresponse()
        body = r.read()
        self.send_response(r.status)
        for k in ("Content-Type", "Content-Range", "Docker-Content-Digest"):
            if r.getheader(k):
                self.send_header(k, r.getheader(k))
        self.send_header("Content-Length", r.getheader("Content-Length") or str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    def do_HEAD(self):
        if "/blobs/" in self.path:
            return self.forward()
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_GET(self):
        if "/blobs/" in self.path:
            return self.forward()
        name = self.path.rsplit("/", 1)[-1]
        p = os.path.join(root, name)
        if "/manifests/" not in self.path or "/" in name or not os.path.isfile(p):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = open(p, "rb").read()
        ct = "application/vnd.oci.image.manifest.v1+json"
        if os.path.exists(p + ".ct"):
            ct = open(p + ".ct").read().strip()
        self.send_response(200)
        self.send_header("Content-Type", ct)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 stub.py "$SPORT" "$T/stub" "$PORT" > stub.log 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:$SPORT/"; ok $? "stub answers on 127.0.0.1:$SPORT"

REG=127.0.0.1:$PORT
STUB=127.0.0.1:$SPORT
A=containerd.io/snapshot/overlaybd
MT_OCI=application/vnd.oci.image.manifest.v1+json
MT_IDX=application/vnd.oci.image.index.v1+json
MT_D2=application/vnd.docker.distribution.manifest.v2+json
printf '{"cacheConfig": {"cacheDir": "%s/cache", "refillSize": 65536}}\n' "$T" > svc.json
attach() { "$OBD" attach --service-config svc.json "$@"; }
# jsame A B: the two files hold equal JSON
jsame() { python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$1" "$2"; }
put_manifest() {	# put_manifest REPO REF MEDIATYPE FILE: prints the HTTP status
	curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $3" --data-binary "@$4" \
		"http://$REG/v2/$1/manifests/$2"
}
put_blob() {	# put_blob REPO FILE: prints the HTTP status of the closing PUT
	local loc
	loc=$(curl -s -D - -o /dev/null -X POST "http://$REG/v2/$1/blobs/uploads/" |
		tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	case $loc in /*) loc=http://$REG$loc ;; esac
	case $loc in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
	curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
		--data-binary "@$2" "${loc}digest=sha256:$(sha "$2")"
}

# ---------------------------------------------------------------------------
# push, then attach by tag and by digest
ref_layers=("$REF/l1.commit" "$REF/l1.commit.lz4.zfile" "$REF/l2.commit.lz4.zfile.tar")
t "push the reference layers" "$OBD" push "http://$REG/test/img:v1" "${ref_layers[@]}"
cp "$T/.out" img.json
t "push --json again (manifest digest)" "$OBD" push --json "http://$REG/test/img:v1" "${ref_layers[@]}"
MD=$(jget "$T/.out" 'j["manifest"]["digest"]')
t "attach --table CONFIG" attach --table img.json
cp "$T/.out" table.cfg
is "  three remote layers" "$(grep -o ' remote:' table.cfg | wc -l)" 3
# review D10: the cache names what this host runs and holds private layers
is "  cacheDir made 0700" "$(stat -c %a cache)" 700
is "  its entries (cache files, .meta) 0600" \
	"$(stat -c %a cache/sha256:* | sort -u | tr '\n' ' ')" "600 "

t "attach --table REF (tag)" attach --table "http://$REG/test/img:v1"
is "  table = attach --table CONFIG" "$(cat "$T/.out")" "$(cat table.cfg)"
derived=cache/images/$MD.config.v1.json
[ -f "$derived" ]; ok $? "  derived config at <cacheDir>/images/$MD.config.v1.json"
jsame "$derived" img.json; ok $? "  derived config = what push printed (as JSON)"
is "  images/ is mode 0700" "$(stat -c %a cache/images 2>/dev/null)" 700
is "  no temp file left in images/" "$(ls -A cache/images | grep -vc '\.config\.v1\.json$')" 0
rm -f "$derived"
t "attach --table REF@sha256 (digest)" attach --table "http://$REG/test/img@$MD"
is "  table = attach --table CONFIG" "$(cat "$T/.out")" "$(cat table.cfg)"
jsame "$derived" img.json; ok $? "  derived config written again, = push's"
t "attach --table REF:tag@sha256 (the digest wins)" attach --table "http://$REG/test/img:v1@$MD"
is "  same table" "$(cat "$T/.out")" "$(cat table.cfg)"
t "short option -c for the service config" "$OBD" attach -c svc.json --table "http://$REG/test/img:v1"
is "  same table" "$(cat "$T/.out")" "$(cat table.cfg)"
fails "latest by default: no such tag here" 1 "http://$REG/v2/test/img/manifests/latest: manifest: HTTP 404" \
	attach --table "http://$REG/test/img"

# ---------------------------------------------------------------------------
# a plain image (no overlaybd annotations): a layer blob pushed by curl
curl -s "http://$REG/v2/test/img/manifests/v1" -H "Accept: $MT_OCI" > pushed.json
printf 'just a tar, not an overlaybd layer\n' > plain.bin
is "curl: blob upload" "$(put_blob test/img plain.bin)" 201
python3 - "$(sha plain.bin)" "$(stat -c %s plain.bin)" <<'EOF' > plain.json
import json, sys
m = json.load(open("pushed.json"))
m["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": "sha256:" + sys.argv[1], "size": int(sys.argv[2])}]
print(json.dumps(m))
EOF
is "curl: PUT a manifest without annotations" "$(put_manifest test/img plain "$MT_OCI" plain.json)" 201
fails "no annotations: not an overlaybd image, naming the ref and the layer" 1 \
	"http://$REG/test/img:plain: .*not an overlaybd image: layers\[0\] \(sha256:$(sha plain.bin)\)" \
	attach --table "http://$REG/test/img:plain"
[ ! -e "cache/images/sha256:$(sha plain.json).config.v1.json" ]; ok $? "  no config written for it"

# ---------------------------------------------------------------------------
# an OCI index: linux/arm64 (the plain image) first, then linux/amd64
python3 - "$MD" "$(stat -c %s pushed.json)" "sha256:$(sha plain.json)" "$(stat -c %s plain.json)" <<'EOF' > index.json
import json, sys
def ent(d, s, arch):
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": int(s),
            "platform": {"architecture": arch, "os": "linux"}}
print(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [ent(sys.argv[3], sys.argv[4], "arm64"), ent(sys.argv[1], sys.argv[2], "amd64")]}))
EOF
is "curl: PUT an OCI index (arm64, amd64)" "$(put_manifest test/img multi "$MT_IDX" index.json)" 201
t "attach --table an index: picks linux/amd64" attach --table "http://$REG/test/img:multi"
is "  table = the amd64 image's" "$(cat "$T/.out")" "$(cat table.cfg)"
t "attach --table the index by its digest" attach --table "http://$REG/test/img@sha256:$(sha index.json)"
is "  table = the amd64 image's" "$(cat "$T/.out")" "$(cat table.cfg)"
python3 -c 'import json; j = json.load(open("index.json")); j["manifests"] = j["manifests"][:1]; print(json.dumps(j))' > arm.json
is "curl: PUT an index with arm64 only" "$(put_manifest test/img armonly "$MT_IDX" arm.json)" 201
fails "an index without linux/amd64 is refused, naming the ref" 1 \
	"http://$REG/test/img:armonly: .*no linux/amd64 manifest" attach --table "http://$REG/test/img:armonly"

# ---------------------------------------------------------------------------
# a Docker v2 manifest with the same layers and annotations
python3 - <<'EOF' > docker.json
import json
m = json.load(open("pushed.json"))
m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
m["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
for l in m["layers"]:
    l["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar"
print(json.dumps(m, indent=3))
EOF
is "curl: PUT a Docker v2 manifest" "$(put_manifest test/img docker "$MT_D2" docker.json)" 201
t "attach --table a Docker v2 manifest" attach --table "http://$REG/test/img:docker"
is "  table = the OCI image's" "$(cat "$T/.out")" "$(cat table.cfg)"
jsame "cache/images/sha256:$(sha docker.json).config.v1.json" img.json
ok $? "  its derived config = push's, named by its own digest"

# ---------------------------------------------------------------------------
# refusals from the registry
fails "a tag that does not exist: 404 naming it" 1 "http://$REG/v2/test/img/manifests/nope: manifest: HTTP 404" \
	attach --table "http://$REG/test/img:nope"
Z=sha256:$(printf '0%.0s' $(seq 64))
fails "a digest that does not exist: 404" 1 "manifests/$Z: manifest: HTTP 404" \
	attach --table "http://$REG/test/img@$Z"
fails "a digest of another repository's manifest: 404" 1 "HTTP 404" \
	attach --table "http://$REG/other/img@$MD"
fails "neither a file nor a reference: says both were tried" 1 \
	"nosuch/: not a layer or config file \(No such file or directory\), nor an image reference" \
	attach --table "nosuch/"
fails "a bad @digest: says both were tried" 1 "nor an image reference \(reference: digest" \
	attach --table "http://$REG/test/img@sha256:abc"
fails "a missing .json file is a config, not a REF" 1 "missing.json" attach --table missing.json

# ---------------------------------------------------------------------------
# the stub registry: what a real one would not store
stub() {	# stub NAME [CONTENT-TYPE] < body
	cat > "stub/$1"
	if [ -n "${2:-}" ]; then echo "$2" > "stub/$1.ct"; fi
}
stub_fails() {	# stub_fails DESC PATTERN NAME: attach of stub/NAME refused
	fails "$1" 1 "http://$STUB/test/img:$3: .*$2" attach --table "http://$STUB/test/img:$3"
}
stub good < pushed.json
t "stub: the pushed manifest attaches" attach --table "http://$STUB/test/img:good"
is "  repoBlobUrl is the stub's" "$(jget "cache/images/$MD.config.v1.json" 'j["repoBlobUrl"]')" \
	"http://$STUB/v2/test/img/blobs"
stub "sha256:$(sha plain.json)" < pushed.json
fails "wrong digest: the body's sha256 is checked against @sha256" 1 \
	"http://$STUB/test/img@sha256:$(sha plain.json): manifest sha256:$(sha plain.json) has digest $MD" \
	attach --table "http://$STUB/test/img@sha256:$(sha plain.json)"
printf 'this is not JSON {' | stub garbage
stub_fails "garbage manifest: invalid JSON" "manifest garbage: manifest: invalid JSON" garbage
printf '' | stub empty
stub_fails "empty manifest" "invalid JSON" empty
printf '{"schemaVersion": 2, "layers": []}\0' | stub nul
stub_fails "a NUL byte" "NUL byte" nul
echo '[1, 2]' | stub array
stub_fails "not an object" "expected a JSON object, got array" array
echo '{"schemaVersion": 1, "fsLayers": []}' | stub schema1
stub_fails "schema 1" "schemaVersion: expected 2" schema1
echo '{"schemaVersion": "2", "layers": []}' | stub schemastr
stub_fails "schemaVersion a string" "schemaVersion: expected 2" schemastr
echo '{"schemaVersion": 2, "mediaType": "application/vnd.foo+json", "layers": []}' | stub mtype
stub_fails "an unknown mediaType" "mediaType: 'application/vnd.foo\+json' is not" mtype
echo '{"schemaVersion": 2, "mediaType": 7}' | stub mtypeint
stub_fails "mediaType not a string" "mediaType: expected a string" mtypeint
echo '{"schemaVersion": 2}' | stub nolayers
stub_fails "no layers" "layers: missing" nolayers
echo '{"schemaVersion": 2, "layers": {}}' | stub layersobj
stub_fails "layers not an array" "layers: expected an array, got object" layersobj
echo '{"schemaVersion": 2, "layers": []}' | stub layers0
stub_fails "no layer at all" "layers: empty" layers0
jl() {	# jl PY_EXPR_FOR_LAYER0: pushed.json with layers[0] replaced (L = the old one)
	python3 -c "
import json
m = json.load(open('pushed.json'))
L = m['layers'][0]
m['layers'][0] = $1
print(json.dumps(m))"
}
jl '7' | stub l-int
stub_fails "a layer not an object" "layers\[0\]: expected an object, got int" l-int
jl '{k: v for k, v in L.items() if k != "digest"}' | stub l-nodigest
stub_fails "a layer without digest" "layers\[0\].digest: missing" l-nodigest
jl 'dict(L, size="12")' | stub l-sizestr
stub_fails "a layer size as a string" "layers\[0\].size: expected an integer" l-sizestr
jl 'dict(L, size=-1)' | stub l-sizeneg
stub_fails "a negative layer size" "layers\[0\].size: expected an integer" l-sizeneg
jl 'dict(L, annotations=[1])' | stub l-annarr
stub_fails "annotations not an object" "layers\[0\].annotations: expected an object, got array" l-annarr
jl "dict(L, annotations={k: v for k, v in L['annotations'].items() if k != '$A/blob-size'})" | stub l-nosize
stub_fails "no blob-size: not an overlaybd image" "not an overlaybd image: layers\[0\].*$A/blob-size" l-nosize
ann() {	# ann KEY VALUE_PY: layers[0] with one annotation replaced
	jl "dict(L, annotations=dict(L['annotations'], **{'$A/$1': $2}))"
}
ann blob-size '"99999999999999999999999"' | stub a-huge
stub_fails "blob-size huge" "layers\[0\].annotations.$A/blob-size: expected a decimal string" a-huge
ann blob-size '"1099511627777"' | stub a-over
stub_fails "blob-size over 1 TiB" "blob-size: expected a decimal string 1..1099511627776" a-over
ann blob-size '"0"' | stub a-zero
stub_fails "blob-size 0" "blob-size: expected" a-zero
ann blob-size '"12x"' | stub a-junk
stub_fails "blob-size not decimal" "blob-size: expected" a-junk
ann blob-size '" 12"' | stub a-space
stub_fails "blob-size with a space" "blob-size: expected" a-space
ann blob-size '12' | stub a-num
stub_fails "blob-size a number" "blob-size: expected" a-num
# TurboOCI layers (tests/vm/54-turbo-ref.sh attaches good ones): the target's
# media type is needed, and must be tar or tar+gzip
ann turbo-oci/target-digest '"sha256:" + "a" * 64' | stub a-turbo
stub_fails "a TurboOCI layer without target-media-type" "$A/turbo-oci/target-media-type: missing" a-turbo
ann fastoci/target-digest '"sha256:" + "a" * 64' | stub a-fastoci
stub_fails "a legacy FastOCI layer without target-media-type" "$A/fastoci/target-media-type: missing" a-fastoci
jl "dict(L, annotations=dict(L['annotations'], **{'$A/turbo-oci/target-digest': 'sha256:' + 'a' * 64, '$A/turbo-oci/target-media-type': 'application/vnd.oci.image.layer.v1.tar+zstd'}))" | stub a-tzstd
stub_fails "a TurboOCI layer of a zstd target: refused" "a TurboOCI target must be a tar or tar\+gzip layer" a-tzstd
jl "dict(L, annotations=dict(L['annotations'], **{'$A/turbo-oci/target-digest': 'sha256:XY', '$A/turbo-oci/target-media-type': 'application/vnd.oci.image.layer.v1.tar'}))" | stub a-tbad
stub_fails "a TurboOCI target digest malformed" "turbo-oci/target-digest: expected sha256" a-tbad
jl "dict(L, annotations=dict(L['annotations'], **{'$A/turbo-oci/target-digest': 'sha256:' + 'b' * 64, '$A/turbo-oci/target-media-type': 'application/vnd.oci.image.layer.v1.tar'}))" | stub a-tgood
stub_fails "a TurboOCI layer whose meta blob is no TurboOCI meta layer: refused" "meta layer sha256:.*(gzip|not a TurboOCI meta layer)" a-tgood
ann blob-digest '"sha256:XYZ"' | stub a-dg
stub_fails "blob-digest malformed" "layers\[0\].annotations.$A/blob-digest: expected sha256" a-dg
ann blob-digest '"sha256:" + "A" * 64' | stub a-dgup
stub_fails "blob-digest upper-case hex" "blob-digest: expected sha256" a-dgup
ann blob-digest '["x"]' | stub a-dgarr
stub_fails "blob-digest not a string" "blob-digest: expected sha256" a-dgarr
python3 -c "
import json
m = json.load(open('pushed.json'))
m['layers'] = [m['layers'][0]] * 256
print(json.dumps(m))" | stub many
stub_fails "256 layers" "layers: 256 layers, at most 255" many
python3 -c "
import json
m = json.load(open('pushed.json'))
m['layers'] = [m['layers'][0]] * 255
print(json.dumps(m))" | stub max
t "255 layers: parsed (the config lists them all)" attach --table "http://$STUB/test/img:max"
is "  255 remote tokens" "$(grep -o ' remote:' "$T/.out" | wc -l)" 255
python3 -c 'print("{\"a\":" * 100000 + "1" + "}" * 100000)' | stub deep
stub_fails "deep nesting" "invalid JSON" deep
python3 -c 'print("{\"schemaVersion\": 2, \"x\": \"" + "a" * (4 << 20) + "\"}")' | stub big
fails "a manifest over 4 MiB" 1 "manifests/big: manifest larger than 4194304 bytes" \
	attach --table "http://$STUB/test/img:big"
idx() {	# idx PY_EXPR_FOR_ENTRY1: index.json with the amd64 entry replaced (E)
	python3 -c "
import json
j = json.load(open('index.json'))
E = j['manifests'][1]
j['manifests'][1] = $1
print(json.dumps(j))"
}
# the index's amd64 entry is fetched by digest, and checked against it
stub idx "$MT_IDX" < index.json
fails "an index entry the registry does not have: 404" 1 "manifests/$MD: manifest: HTTP 404" \
	attach --table "http://$STUB/test/img:idx"
stub "$MD" < pushed.json
idx "dict(E, digest='sha256:$(sha plain.json)')" | stub lying
fails "an index entry whose manifest has another digest is refused" 1 \
	"http://$STUB/test/img:lying: manifest sha256:$(sha plain.json) has digest $MD, expected sha256:$(sha plain.json)" \
	attach --table "http://$STUB/test/img:lying"
# no mediaType: the Content-Type decides, else the shape
python3 -c 'import json; j = json.load(open("index.json")); del j["mediaType"]; print(json.dumps(j))' > noidx.json
stub noidx "$MT_IDX" < noidx.json
t "no mediaType, Content-Type index: picks amd64" attach --table "http://$STUB/test/img:noidx"
is "  table = the amd64 image's (stub URLs)" "$(sed "s/127\.0\.0\.1:$SPORT/127.0.0.1:$PORT/g" "$T/.out")" "$(cat table.cfg)"
stub noidx2 application/json < noidx.json
t "no mediaType, plain JSON Content-Type: an index by its shape" attach --table "http://$STUB/test/img:noidx2"
python3 -c 'import json; j = json.load(open("pushed.json")); del j["mediaType"]; print(json.dumps(j))' | stub nomt
t "no mediaType, default Content-Type: an image manifest" attach --table "http://$STUB/test/img:nomt"
is "  table = the image's" "$(sed "s/127\.0\.0\.1:$SPORT/127.0.0.1:$PORT/g" "$T/.out")" "$(cat table.cfg)"
idx '"x"' | stub i-str
stub_fails "an index entry not an object" "manifests\[1\]: expected an object, got string" i-str
idx 'dict(E, platform="linux/amd64")' | stub i-plat
stub_fails "platform not an object" "manifests\[1\].platform: expected an object" i-plat
idx 'dict(E, platform={"os": "linux", "architecture": 64})' | stub i-arch
stub_fails "architecture not a string" "manifests\[1\].platform.architecture: expected a string" i-arch
idx 'dict(E, mediaType="application/vnd.oci.image.index.v1+json")' | stub i-nested
stub_fails "the amd64 entry an index" "manifests\[1\].mediaType: the linux/amd64 entry is not an image manifest" i-nested
idx 'dict(E, size=1 << 40)' | stub i-size
stub_fails "the amd64 entry too large" "manifests\[1\].size: expected an integer 1..4194304" i-size
idx 'dict(E, digest="sha512:" + "0" * 128)' | stub i-dg
stub_fails "the amd64 entry not sha256" "manifests\[1\].digest: expected sha256" i-dg
echo '{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": 1}' | stub i-notarr
stub_fails "manifests not an array" "manifests: expected an array, got int" i-notarr

done_testing
