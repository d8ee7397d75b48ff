#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
A stand-in P2P peer for the overlaybd-fetchd tests (p2pConfig.address);
127.0.0.1 only.

  p2ppeer.py PORT [PREFIX]

GET PREFIX/<url> (url: http://127.0.0.1:... only) is fetched from <url>
with the request's Range and Authorization and answered with its status,
Content-Range and body; counted (requests, bytes of bodies passed on,
urls). Other modes (GET /__mode?m=M): 500 (HTTP 500), hang (never answers
within 60 s), short (half the body, then close), ok.
Control: GET /__stats -> {"requests": n, "bytes": n, "urls": [...]}, GET /__reset.
"""
import http.client, json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

lock = threading.Lock()
state = dict(mode="ok", requests=0, bytes=0, urls=[])
PREFIX = "/"


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body=b"", hdrs=()):
        self.send_response(code)
        for k, v in hdrs:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/__"):
            u = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            with lock:
                if u.path == "/__stats":
                    return self.reply(200, json.dumps(dict(requests=state["requests"], bytes=state["bytes"],
                                                           urls=state["urls"])).encode())
                if u.path == "/__reset":
                    state.update(requests=0, bytes=0, urls=[])
                elif u.path == "/__mode":
                    state["mode"] = q.get("m", "ok")
            return self.reply(200, b"ok\n")
        if not self.path.startswith(PREFIX):
            return self.reply(404, b"not under the prefix\n")
        url = self.path[len(PREFIX):]
        with lock:
            state["requests"] += 1
            state["urls"].append(url)
            mode = state["mode"]
        if mode == "500":
            return self.reply(500, b"peer failing\n")
        if mode == "hang":
            time.sleep(60)
            return
        t = urlparse(url)
        if t.scheme != "http" or t.hostname != "127.0.0.1":
            return self.reply(400, b"only http://127.0.0.1 here\n")
        hdrs = {k: v for k, v in self.headers.items() if k.lower() in ("range", "authorization")}
        try:
            c = http.client.HTTPConnection("127.0.0.1", t.port, timeout=30)
            c.request("GET", t.path + ("?" + t.query if t.query else ""), headers=hdrs)
            r = c.getresponse()
            body = r.read()
        except Exception:
            return self.reply(502, b"upstream failed\n")
        out = [(k, v) for k, v in r.getheaders() if k.lower() in ("content-range", "content-type")]
        if mode == "short" and len(body) > 1:
            self.send_response(r.status)
            for k, v in out:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
            return
        with lock:
            state["bytes"] += len(body)
        self.reply(r.status, body, out)


def main():
    global PREFIX
    if len(sys.argv) > 2:
        PREFIX = sys.argv[2].rstrip("/") + "/"
    srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
