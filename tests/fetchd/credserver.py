#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
A credential server for the overlaybd-fetchd and obd tests (spec 6.4,
credentialConfig.mode http, https, uds); 127.0.0.1 or a Unix socket only.

  credserver.py http PORT
  credserver.py https PORT CERT KEY [CLIENT_CA]   (CLIENT_CA: client certificates required)
  credserver.py uds PATH

GET <any path>?remote_url=<url> answers, by the current mode:
  ok       {"traceId": "t-N", "success": true, "data": {"auths": {
              "no.such.host": {...decoy...}, "<host:port of remote_url>": {"username": U, "password": P}}}}
  false    {"traceId": "t-N", "success": false, "data": null}
  garbage  a body that is not JSON
  slow     ok, after ms= (default 3000) milliseconds
  500      HTTP 500
Control (not counted): GET /__set?mode=M&user=U&pass=P&ms=N (each optional),
  GET /__stats -> {"requests": n, "remote_urls": [...], "paths": [...]}, GET /__reset.
"""
import json, os, socket, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn, UnixStreamServer
from urllib.parse import urlparse, parse_qs

lock = threading.Lock()
state = dict(mode="ok", user="", pw="", ms=3000, requests=0, remote_urls=[], paths=[])


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def address_string(self):  # a Unix socket has no (host, port)
        return "local"

    def reply(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/__stats":
            with lock:
                body = json.dumps(dict(requests=state["requests"], remote_urls=state["remote_urls"],
                                       paths=state["paths"])).encode()
            return self.reply(200, body)
        if u.path == "/__reset":
            with lock:
                state.update(requests=0, remote_urls=[], paths=[])
            return self.reply(200, b"ok\n", "text/plain")
        if u.path == "/__set":
            with lock:
                state["mode"] = q.get("mode", state["mode"])
                state["user"] = q.get("user", state["user"])
                state["pw"] = q.get("pass", state["pw"])
                state["ms"] = int(q.get("ms", state["ms"]))
            return self.reply(200, b"ok\n", "text/plain")
        remote = q.get("remote_url", "")
        with lock:
            state["requests"] += 1
            n = state["requests"]
            state["remote_urls"].append(remote)
            state["paths"].append(u.path)
            mode, user, pw, ms = state["mode"], state["user"], state["pw"], state["ms"]
        if mode == "slow":
            time.sleep(ms / 1000.0)
        if mode == "500":
            return self.reply(500, b'{"error":"down"}')
        if mode == "garbage":
            return self.reply(200, b"<html>not json</html>", "text/html")
        if mode == "false":
            return self.reply(200, json.dumps({"traceId": "t-%d" % n, "success": False,
                                               "data": None}).encode())
        key = urlparse(remote).netloc
        auths = {"no.such.host": {"username": "decoy", "password": "decoy-pw"},
                 key: {"username": user, "password": pw}}
        body = {"traceId": "t-%d" % n, "success": True, "data": {"auths": auths}}
        self.reply(200, json.dumps(body).encode())


class UnixHTTPServer(ThreadingMixIn, UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        s, _ = self.socket.accept()
        return s, ("local", 0)


def main():
    mode = sys.argv[1]
    if mode == "uds":
        path = sys.argv[2]
        if os.path.exists(path):
            os.unlink(path)
        srv = UnixHTTPServer(path, H)
    else:
        srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H)
        srv.daemon_threads = True
        if mode == "https":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(sys.argv[3], sys.argv[4])
            if len(sys.argv) > 5:
                ctx.load_verify_locations(sys.argv[5])
                ctx.verify_mode = ssl.CERT_REQUIRED
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
