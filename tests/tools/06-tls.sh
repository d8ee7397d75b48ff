#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Registry over TLS and with Bearer auth: obd push to docker-registry with
# a test CA (openssl, made here) trusted through certConfig.caFile, refused
# without it; client certificates (http.tls.clientcas) from
# certConfig.certFile/keyFile; obd push through tests/fetchd/faultproxy.py's
# Bearer token server with cred.json, refused with a wrong password, which
# is never printed.
. "$(dirname "$0")/common.bash"

PROXY=$top/tests/fetchd/faultproxy.py
skip_without docker-registry openssl
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

cert() {	# cert NAME SAN EKU: NAME.pem + NAME.key signed by the test CA
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
		-subj "/CN=$1" >> openssl.log 2>&1 &&
	printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$2" "$3" > "$1.ext" &&
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-out "$1.pem" -extfile "$1.ext" >> openssl.log 2>&1
}
svc() {	# svc FILE [certConfig members [CACHEDIR]]
	printf '{"cacheConfig": {"cacheDir": "%s"}, "credentialConfig": {"mode": "file", "path": "%s/cred.json"}%s}\n' \
		"${3:-$T/cache}" "$T" "${2:+, \"certConfig\": {$2\}}" > "$1"
}
manifest_status() {	# manifest_status URL CURL_ARGS...: HTTP status of the manifest
	local u=$1; shift
	curl -s -o /dev/null -w '%{http_code}' "$@" \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' "$u"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout ca.key \
	-out ca.pem -subj /CN=obd-test-CA -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign > openssl.log 2>&1 &&
	cert server IP:127.0.0.1 serverAuth && cert client DNS:obd-test-client clientAuth
ok $? "test CA, server certificate (IP SAN 127.0.0.1), client certificate"
echo '{}' > cred.json
L1=$REF/l1.commit
L2=$REF/l2.commit.lz4.zfile.tar

# ---------------------------------------------------------------------------
# TLS, server certificate only
P1=$(free_port)
start_registry tls "$P1" "  tls:
    certificate: $T/server.pem
    key: $T/server.key"
ok $? "TLS registry on 127.0.0.1:$P1"
R1=https://127.0.0.1:$P1
svc svc-ca.json "\"caFile\": \"$T/ca.pem\""
svc svc-none.json "" "$T/cache-none"
t "push with certConfig.caFile" "$OBD" push --json --service-config svc-ca.json "$R1/test/tls:v1" "$L1" "$L2"
cp "$T/.out" tls.json
is "  manifest there (curl --cacert)" "$(manifest_status "$R1/v2/test/tls/manifests/v1" --cacert ca.pem)" 200
is "  layer blob there" "$(curl -s -o /dev/null -w '%{http_code}' -I --cacert ca.pem \
	"$R1/v2/test/tls/blobs/sha256:$(sha "$L1")")" 200
is "  manifest digest = the registry's" "$(jget tls.json 'j["manifest"]["digest"]')" \
	"$(curl -s -I --cacert ca.pem -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"$R1/v2/test/tls/manifests/v1" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')"
if command -v skopeo >/dev/null; then
	mkdir certs.d && cp ca.pem certs.d/ca.crt
	t "  skopeo inspect (verifying, --cert-dir with the CA)" skopeo inspect --cert-dir certs.d \
		"docker://127.0.0.1:$P1/test/tls:v1"
	is "  skopeo: layers" "$(jget "$T/.out" '" ".join(j["Layers"])')" "sha256:$(sha "$L1") sha256:$(sha "$L2")"
fi
jget tls.json 'json.dumps(j["config"])' > tls-img.json
t "attach --table over TLS with caFile" "$OBD" attach --service-config svc-ca.json --table tls-img.json
is "  two remote lowers" "$(grep -o 'remote:' "$T/.out" | wc -l)" 2
fails "push without caFile: exit 1, the TLS error named" 1 \
	"obd: $R1/v2/test/tls/.*(SSL certificate problem|certificate verify|issuer)" \
	"$OBD" push --service-config svc-none.json "$R1/test/tls:v2" "$L1"
is "  nothing pushed" "$(manifest_status "$R1/v2/test/tls/manifests/v2" --cacert ca.pem)" 404
fails "attach --table without caFile: exit 1" 1 "SSL certificate problem|certificate verify|issuer" \
	"$OBD" attach --service-config svc-none.json --table tls-img.json
svc svc-badca.json "\"caFile\": \"$T/no-such-ca.pem\""
fails "push with a caFile that does not exist: exit 1, the file named" 1 "no-such-ca.pem" \
	"$OBD" push --service-config svc-badca.json "$R1/test/tls:v2" "$L1"

# ---------------------------------------------------------------------------
# client certificates required
P2=$(free_port)
start_registry mtls "$P2" "  tls:
    certificate: $T/server.pem
    key: $T/server.key
    clientcas:
      - $T/ca.pem"
ok $? "client-certificate registry on 127.0.0.1:$P2"
R2=https://127.0.0.1:$P2
svc svc-cert.json "\"caFile\": \"$T/ca.pem\", \"certFile\": \"$T/client.pem\", \"keyFile\": \"$T/client.key\""
t "push with certConfig.certFile/keyFile" "$OBD" push --service-config svc-cert.json "$R2/test/mtls:v1" "$L1"
is "  manifest there (curl --cert)" "$(manifest_status "$R2/v2/test/mtls/manifests/v1" --cacert ca.pem \
	--cert client.pem --key client.key)" 200
fails "push without a client certificate: exit 1" 1 "obd: $R2/" \
	"$OBD" push --service-config svc-ca.json "$R2/test/mtls:v2" "$L1"
! grep -q 'PRIVATE KEY' "$T/.err"; ok $? "  no key material printed"

# ---------------------------------------------------------------------------
# Bearer tokens through the fault proxy, with cred.json
P3=$(free_port)
start_registry plain "$P3"
ok $? "plain registry on 127.0.0.1:$P3"
PX=$(free_port)
python3 "$PROXY" "$PX" "$P3" > proxy.log 2>&1 &
pids+=("$!")
wait_port "$PX"
ok $? "fault proxy on 127.0.0.1:$PX"
px() { curl -sS "http://127.0.0.1:$PX$1"; }
PW='b3arer-Pa55!word'
px "/__auth?mode=bearer&user=obduser&pass=b3arer-Pa55%21word" > /dev/null
svc svc-plain.json
fails "push to the Bearer proxy without credentials: exit 1" 1 "HTTP 401" \
	"$OBD" push --service-config svc-plain.json "http://127.0.0.1:$PX/test/bearer:v1" "$L1"
printf '{"auths": {"127.0.0.1:%s": {"username": "obduser", "password": "%s"}}}\n' "$PX" "$PW" > cred.json
px /__reset > /dev/null
t "push with cred.json through the Bearer proxy" "$OBD" push --service-config svc-plain.json \
	"http://127.0.0.1:$PX/test/bearer:v1" "$L1" "$L2"
cat "$T/.out" "$T/.err" > out-good
px /__stats > stats.json
[ "$(jget stats.json 'j["tokens"]')" -ge 1 ]; ok $? "  token obtained ($(jget stats.json 'j["tokens"]') token requests)"
is "  uploads went through the proxy" "$(jget stats.json 'j["methods"].get("POST", 0) > 0 and j["methods"].get("PUT", 0) > 0')" True
is "  manifest in the registry" "$(manifest_status "http://127.0.0.1:$P3/v2/test/bearer/manifests/v1")" 200
is "  layer in the registry" "$(curl -s -o /dev/null -w '%{http_code}' -I \
	"http://127.0.0.1:$P3/v2/test/bearer/blobs/sha256:$(sha "$L2")")" 200
printf '{"auths": {"127.0.0.1:%s": {"username": "obduser", "password": "WRONG-pw-4242"}}}\n' "$PX" > cred.json
fails "push with a wrong password: exit 1" 1 "token request: HTTP 401" \
	"$OBD" push --service-config svc-plain.json "http://127.0.0.1:$PX/test/bearer:v2" "$L1"
cat "$T/.out" "$T/.err" > out-bad
is "  nothing pushed" "$(manifest_status "http://127.0.0.1:$P3/v2/test/bearer/manifests/v2")" 404
! grep -qE 'b3arer-Pa55|WRONG-pw-4242|YjNhcmVy|b2JkdXNlcj|Bearer [0-9a-f]{8}' out-good out-bad
ok $? "  no password or token printed"

# the token realm redirecting: the Basic credentials go to the realm's origin only
printf '{"auths": {"127.0.0.1:%s": {"username": "obduser", "password": "%s"}}}\n' "$PX" "$PW" > cred.json
px "/__redirect?mode=token&host=127.0.0.1" > /dev/null
px /__reset > /dev/null
t "token realm redirecting on its own origin: push works" "$OBD" push --service-config svc-plain.json \
	"http://127.0.0.1:$PX/test/bearer:v3" "$L1"
px /__stats > stats.json
is "  credentials sent to the redirect target (same origin)" \
	"$(jget stats.json 'j["redirected"] > 0 and j["redir_authz"] == j["redirected"]')" True
px "/__redirect?mode=token&host=localhost" > /dev/null
px /__reset > /dev/null
fails "token realm redirecting to another host: exit 1" 1 "token request: HTTP 401" \
	"$OBD" push --service-config svc-plain.json "http://127.0.0.1:$PX/test/bearer:v4" "$L1"
px /__stats > stats.json
is "  no credentials sent to the other host" "$(jget stats.json '(j["redirected"], j["redir_authz"])')" "(1, 0)"
px "/__redirect?mode=none" > /dev/null

done_testing
