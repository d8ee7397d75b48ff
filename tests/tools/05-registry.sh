#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Registry: obd push to a real registry (Debian's docker-registry on
# 127.0.0.1), skopeo reads the image back, obd attach --table of the printed
# config.v1.json makes cache entries holding exactly the ranges it fetched,
# and the error cases name the URL, the status or the field.
. "$(dirname "$0")/common.bash"

CHECK="python3 $top/tests/tools/cache-check.py"

skip_without docker-registry skopeo

PORT=$(free_port)
start_registry reg "$PORT"
up=$?
ok $up "registry answers on 127.0.0.1:$PORT"
[ $up -eq 0 ] || done_testing

REG=127.0.0.1:$PORT
uploads() { grep -c 'http.request.method=POST .*blobs/uploads' reg.log; }
blob_gets() { grep -cE 'http.request.method=GET [^ ]* http.request.uri="?/v2/[^ ]*/blobs/sha256' reg.log; }
svc() {	# svc FILE CACHEDIR
	printf '{"cacheConfig": {"cacheDir": "%s", "refillSize": 65536}}\n' "$2" > "$1"
}

# ---------------------------------------------------------------------------
# push the reference layers
ref_layers=("$REF/l1.commit" "$REF/l1.commit.lz4.zfile" "$REF/l2.commit.lz4.zfile.tar")
t "push reference layers" "$OBD" push "http://$REG/test/img:v1" "${ref_layers[@]}"
cp "$T/.out" img.json
is "  config.v1.json: repoBlobUrl" "$(jget img.json 'j["repoBlobUrl"]')" "http://$REG/v2/test/img/blobs"
is "  config.v1.json: lowers" "$(jget img.json '" ".join(l["digest"] + ":" + str(l["size"]) for l in j["lowers"])')" \
	"$(for f in "${ref_layers[@]}"; do printf 'sha256:%s:%s ' "$(sha "$f")" "$(stat -c %s "$f")"; done | sed 's/ $//')"
is "  config.v1.json: resultFile" "$(jget img.json 'repr(j["resultFile"])')" "''"

t "skopeo inspect" skopeo inspect --tls-verify=false "docker://$REG/test/img:v1"
cp "$T/.out" inspect.json
is "  layers listed" "$(jget inspect.json '" ".join(j["Layers"])')" \
	"$(for f in "${ref_layers[@]}"; do printf 'sha256:%s ' "$(sha "$f")"; done | sed 's/ $//')"
is "  amd64 linux" "$(jget inspect.json 'j["Architecture"] + "/" + j["Os"]')" amd64/linux
t "skopeo inspect --raw" skopeo inspect --raw --tls-verify=false "docker://$REG/test/img:v1"
cp "$T/.out" manifest.json
is "  OCI manifest" "$(jget manifest.json 'str(j["schemaVersion"]) + " " + j["mediaType"] + " " + j["config"]["mediaType"]')" \
	"2 application/vnd.oci.image.manifest.v1+json application/vnd.oci.image.config.v1+json"
is "  layer media types" "$(jget manifest.json '" ".join(sorted(set(l["mediaType"] for l in j["layers"])))')" \
	"application/vnd.oci.image.layer.v1.tar"
A=containerd.io/snapshot/overlaybd
is "  overlaybd annotations" "$(jget manifest.json "all(l['annotations']['$A/blob-digest'] == l['digest'] and l['annotations']['$A/blob-size'] == str(l['size']) and l['annotations']['$A/blob-fs-type'] == 'ext4' and l['annotations']['$A/version'] == '0.1.0-obd' for l in j['layers'])")" True
t "skopeo inspect --config" skopeo inspect --config --tls-verify=false "docker://$REG/test/img:v1"
cp "$T/.out" imgcfg.json
is "  image config diff_ids" "$(jget imgcfg.json '" ".join(j["rootfs"]["diff_ids"]) + " " + j["rootfs"]["type"]')" \
	"$(jget inspect.json '" ".join(j["Layers"])') layers"

n0=$(uploads)
t "push the same layers again" "$OBD" push --json "http://$REG/test/img:v1" "${ref_layers[@]}"
cp "$T/.out" again.json
is "  no blob uploaded (registry log)" "$(uploads)" "$n0"
is "  --json: uploaded false for every layer" "$(jget again.json '[l["uploaded"] for l in j["layers"]]')" "[False, False, False]"
is "  --json: manifest digest = skopeo's" "$(jget again.json 'j["manifest"]["digest"]')" "$(jget inspect.json 'j["Digest"]')"
is "  --json: config = the first push's" "$(jget again.json 'j["config"]')" "$(jget img.json 'j')"

# ---------------------------------------------------------------------------
# generated layers: plain, zfile lz4, zfile zstd, tar; chunked uploads
t "create + write layer 1" bash -c "'$OBD' create g1.data g1.index 64M"
t "apply l1.ops" apply_ops g1.data g1.index "$REF/l1.ops"
t "create + write layer 2" "$OBD" create g2.data g2.index 64M
t "apply l2.ops" apply_ops g2.data g2.index "$REF/l2.ops"
t "commit plain" "$OBD" commit g1.data g1.index g1.commit
t "commit -z lz4" "$OBD" commit -z g1.data g1.index g1.lz4
t "commit -z zstd" "$OBD" commit -z --algorithm zstd --bs 64 g2.data g2.index g2.zstd
t "commit -z -t" "$OBD" commit -z -t g2.data g2.index g2.tar
n0=$(uploads)
# no scheme means https, which this plain http registry does not speak
fails "push without a scheme is https" 1 "obd: https://$REG/v2/test/gen/" \
	"$OBD" push "$REG/test/gen:v1" g1.commit
n0=$(uploads)
t "push generated layers (64K chunks)" "$OBD" push --chunk-size 64K "http://$REG/test/gen:v1" \
	g1.commit g2.zstd
cp "$T/.out" gen1.json
is "  uploads: 2 layers + the config" "$(( $(uploads) - n0 ))" 3
t "push lz4 + tar layers" "$OBD" push "http://$REG/test/gen:v2" g1.lz4 g2.tar
cp "$T/.out" gen2.json
t "skopeo inspect gen:v1" skopeo inspect --tls-verify=false "docker://$REG/test/gen:v1"
is "  layers" "$(jget "$T/.out" '" ".join(j["Layers"])')" "sha256:$(sha g1.commit) sha256:$(sha g2.zstd)"
t "skopeo copy gen:v2 to a dir" skopeo copy --src-tls-verify=false "docker://$REG/test/gen:v2" dir:gen2dir
cmp -s "gen2dir/$(sha g2.tar)" g2.tar; ok $? "  blob in the registry = g2.tar byte for byte"

# ---------------------------------------------------------------------------
# attach --table with remote lowers
mkdir cache
svc svc.json "$T/cache"
g0=$(blob_gets)
t "attach --table (remote lowers, empty cache)" "$OBD" attach --service-config svc.json --table img.json
cp "$T/.out" table1
want_tok=""
for f in "${ref_layers[@]}"; do
	h=$(sha "$f")
	want_tok="$want_tok remote:$(stat -c %s "$f"):sha256:$h:$T/cache/sha256:$h"
done
is "  table line" "$(cat table1)" "0 131072 overlaybd 3$want_tok"
fetched=$(( $(blob_gets) - g0 ))
[ "$fetched" -gt 0 ]; ok $? "  fetched ranges ($fetched GETs)"
for f in "${ref_layers[@]}"; do
	c=cache/sha256:$(sha "$f")
	b=$(basename "$f")
	[ -f "$c" ] && [ -f "$c.meta" ]; ok $? "  $b: cache file and .meta"
	is "  $b: cache file size = blob size" "$(stat -c %s "$c")" "$(stat -c %s "$f")"
	t "  $b: present ranges = the blob's bytes" $CHECK "$c" "$f"
	echo "$b $(cat "$T/.out")" >> present1
	is "  $b: cache file sparse where absent" \
		"$(( $(stat -c %b "$c") * 512 <= $(awk '{print $2}' "$T/.out") + 65536 ))" 1
done
for f in "${ref_layers[@]}"; do sha "cache/sha256:$(sha "$f").meta"; done > metasum1
g0=$(blob_gets)
t "attach --table again" "$OBD" attach --service-config svc.json --table img.json
is "  same table line" "$(cat "$T/.out")" "$(cat table1)"
is "  nothing fetched (registry log)" "$(( $(blob_gets) - g0 ))" 0
for f in "${ref_layers[@]}"; do sha "cache/sha256:$(sha "$f").meta"; done > metasum2
cmp -s metasum1 metasum2; ok $? "  .meta files unchanged"

mkdir cache2
svc svc2.json "$T/cache2"
for j in gen1 gen2; do
	t "attach --table $j (chunk-uploaded / tar layers)" "$OBD" attach --service-config svc2.json \
		--table $j.json
	is "  two remote tokens" "$(grep -o 'remote:' "$T/.out" | wc -l)" 2
done
for f in g1.commit g2.zstd g1.lz4 g2.tar; do
	t "  $f: present ranges = the blob's bytes" $CHECK "cache2/sha256:$(sha $f)" $f
done

# mixed local and remote lowers; size asked of the registry when absent
h2=$(sha g2.tar)
cat > mixed.json <<EOF
{"repoBlobUrl": "http://$REG/v2/test/gen/blobs/",
 "lowers": [{"file": "g1.lz4"}, {"digest": "sha256:$h2"}]}
EOF
t "attach --table, local + remote lowers, no size" "$OBD" attach --service-config svc2.json \
	--table mixed.json
is "  table line" "$(cat "$T/.out")" \
	"0 131072 overlaybd 2 $T/g1.lz4 remote:$(stat -c %s g2.tar):sha256:$h2:$T/cache2/sha256:$h2"

# a stale entry of another size is refused, naming the field
h1=$(sha g1.commit)
cat > badsize.json <<EOF
{"repoBlobUrl": "http://$REG/v2/test/gen/blobs",
 "lowers": [{"digest": "sha256:$h1", "size": 4096}]}
EOF
fails "attach: cache entry of another blob size" 1 "blob_size .*expected 4096" \
	"$OBD" attach --service-config svc2.json --table badsize.json

# ---------------------------------------------------------------------------
# errors
DEAD=$(free_port)
fails "push to a port nobody listens on" 1 "obd: http://127.0.0.1:$DEAD/v2/test/img/blobs/.*(onnect|refused)" \
	"$OBD" push "http://127.0.0.1:$DEAD/test/img:v1" "$REF/l1.commit"
fails "push: REF without a repository" 2 "" "$OBD" push "http://$REG" "$REF/l1.commit"
fails "push: REF with a bad tag" 2 "" "$OBD" push "http://$REG/test/img:bad:tag" "$REF/l1.commit"
fails "push: a file that is not a layer" 1 "reg.yml" "$OBD" push "http://$REG/test/img:v1" reg.yml
fails "push: no layers" 2 "" "$OBD" push "http://$REG/test/img:v1"
cat > norepo.json <<EOF
{"lowers": [{"digest": "sha256:$h1", "size": 10}]}
EOF
fails "attach: remote lower without repoBlobUrl" 1 "norepo.json: lowers\[0\].*repoBlobUrl" \
	"$OBD" attach --service-config svc2.json --table norepo.json
Z=sha256:$(printf '0%.0s' $(seq 64))
cat > missing.json <<EOF
{"repoBlobUrl": "http://$REG/v2/test/gen/blobs",
 "lowers": [{"digest": "$Z", "size": 8192}]}
EOF
fails "attach: digest not in the registry" 1 "http://$REG/v2/test/gen/blobs/$Z: HTTP 404" \
	"$OBD" attach --service-config svc2.json --table missing.json
sed -i 's/, "size": 8192//' missing.json
fails "attach: digest not in the registry (no size: HEAD)" 1 "http://$REG/v2/test/gen/blobs/$Z: HTTP 404" \
	"$OBD" attach --service-config svc2.json --table missing.json
cat > baddigest.json <<EOF
{"repoBlobUrl": "http://$REG/v2/test/gen/blobs", "lowers": [{"digest": "sha256:xyz"}]}
EOF
fails "attach: malformed digest" 1 "lowers\[0\]\.digest" \
	"$OBD" attach --service-config svc2.json --table baddigest.json
fails "attach: remote lowers still refused by cat" 1 "not local" "$OBD" cat img.json
echo '{"cacheConfig": {"refillSize": 1000}}' > badsvc.json
fails "attach: bad service config names the key" 1 "badsvc.json.*refillSize" \
	"$OBD" attach --service-config badsvc.json --table img.json

# ---------------------------------------------------------------------------
# Basic auth (htpasswd) with credentials from cred.json
if command -v htpasswd >/dev/null; then
	P2=$(free_port)
	htpasswd -Bbc htpasswd obduser 's3cret pass' 2>/dev/null
	start_registry reg2 "$P2" "auth:
  htpasswd:
    realm: obd-test
    path: $T/htpasswd"
	ok $? "Basic-auth registry answers on 127.0.0.1:$P2"
	printf '{"auths": {"127.0.0.1:%s/test": {"username": "obduser", "password": "s3cret pass"}}}\n' \
		"$P2" > cred.json
	printf '{"credentialConfig": {"mode": "file", "path": "%s/cred.json"}, "cacheConfig": {"cacheDir": "%s/cache3"}}\n' \
		"$T" "$T" > svc3.json
	fails "push to a Basic-auth registry without credentials" 1 "HTTP 401" \
		"$OBD" push "http://127.0.0.1:$P2/test/auth:v1" "$REF/l1.commit"
	t "push with cred.json credentials (Basic)" "$OBD" push --service-config svc3.json \
		"http://127.0.0.1:$P2/test/auth:v1" "$REF/l1.commit" "$REF/l2.commit.lz4.zfile.tar"
	cp "$T/.out" auth.json
	! grep -q "s3cret" "$T/.err" "$T/.out"; ok $? "  the password is not printed"
	t "attach --table with credentials" "$OBD" attach --service-config svc3.json --table auth.json
	t "  present ranges = the blob's bytes" $CHECK "cache3/sha256:$(sha "$REF/l1.commit")" "$REF/l1.commit"
	fails "attach without credentials" 1 "HTTP 401" \
		"$OBD" attach --service-config svc2.json --table auth.json
fi

done_testing
