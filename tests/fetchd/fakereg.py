#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
A fake registry for the origin tests (80-origins.sh): it serves whatever
bytes it is given for any blob digest, so that two of them can disagree
about one digest (docker-registry cannot), and it logs every request.

  fakereg.py PORT BLOBFILE CONFIG.json LOG [CERT KEY]

With CERT and KEY it speaks https. CONFIG.json is read at every request:
  "auth":      "none" | "basic" | "bearer"   (blob GETs under /v2/)
  "user", "pass":  Basic credentials the blob GETs (basic) or /token
                   (bearer, when set) want
  "challenge": the WWW-Authenticate of a 401 (default: Basic realm="fake",
               or Bearer realm="<own base>/token",service="fake",scope=...)
  "challenges": a list: one WWW-Authenticate header each, in this order
  "token":     what /token issues and what a bearer blob GET wants
  "redirect":  blob GETs under /v2/ answer 307 to this prefix + the path
  "deny_once": paths under /target/ answer 403 once each (an expired
               presigned URL), then the blob
Anything under /target/ is served as the blob (no auth). LOG gets one
JSON line per request: method, path, authorization ("" when none).
"""
import base64, json, os, ssl, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, blobfile, cfgfile, logfile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tls = len(sys.argv) > 6
base = "%s://127.0.0.1:%d" % ("https" if tls else "http", port)
denied = set()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def cfg(self):
        try:
            return json.load(open(cfgfile))
        except (OSError, ValueError):
            return {}

    def note(self):
        with open(logfile, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "authorization": self.headers.get("Authorization", "")}) + "\n")

    def challenge(self, c, default):
        return [("WWW-Authenticate", v) for v in c.get("challenges", [c.get("challenge", default)])]

    def answer(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def blob(self):
        data = open(blobfile, "rb").read()
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes="):
            a, b = rng[6:].split("-")
            a = int(a)
            b = min(int(b) if b else len(data) - 1, len(data) - 1)
            return self.answer(206, data[a:b + 1], [
                ("Content-Range", "bytes %d-%d/%d" % (a, b, len(data))),
                ("Content-Type", "application/octet-stream")])
        self.answer(200, data, [("Content-Type", "application/octet-stream")])

    def basic_ok(self, c):
        want = "Basic " + base64.b64encode(("%s:%s" % (c.get("user", ""), c.get("pass", ""))).encode()).decode()
        return self.headers.get("Authorization", "") == want

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.note()
        c = self.cfg()
        path = self.path.split("?")[0]
        if path == "/token":
            if c.get("user") and not self.basic_ok(c):
                return self.answer(401, b"", [("WWW-Authenticate", 'Basic realm="token"')])
            body = json.dumps({"token": c.get("token", "tok"), "expires_in": 300}).encode()
            return self.answer(200, body, [("Content-Type", "application/json")])
        if path.startswith("/target/"):
            if c.get("deny_once") and path not in denied:
                denied.add(path)
                return self.answer(403, b"expired")
            return self.blob()
        if not path.startswith("/v2/"):
            return self.answer(404)
        auth = c.get("auth", "none")
        if auth == "basic" and not self.basic_ok(c):
            return self.answer(401, b"", self.challenge(c, 'Basic realm="fake"'))
        if auth == "bearer" and self.headers.get("Authorization", "") != "Bearer " + c.get("token", "tok"):
            repo = path[4:].rsplit("/blobs/", 1)[0]
            ch = 'Bearer realm="%s/token",service="fake",scope="repository:%s:pull"' % (base, repo)
            return self.answer(401, b"", self.challenge(c, ch))
        if c.get("redirect"):
            return self.answer(307, b"", [("Location", c["redirect"] + path)])
        if "/blobs/" not in path:
            return self.answer(404)
        self.blob()


srv = ThreadingHTTPServer(("127.0.0.1", port), H)
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[5], sys.argv[6])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
