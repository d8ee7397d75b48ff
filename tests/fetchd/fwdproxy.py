#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
A forward HTTP proxy for the overlaybd-fetchd and obd tests
(fetchConfig.proxy); 127.0.0.1 only, upstreams on 127.0.0.1 only.

  fwdproxy.py PORT [CERT KEY]

With CERT and KEY it is an https proxy (TLS to the proxy itself, as
curl's "https://" proxies).

Absolute-URI requests (GET, HEAD, POST, PUT, PATCH: "GET http://h:p/x") are
passed on with their body and headers; CONNECT h:p is tunnelled (https).
Counted per method ({"methods": {"GET": n, "CONNECT": n, ...}}, "requests":
all of them, "targets": [url or host:port, ...]). Control (a relative path):
GET /__stats, GET /__reset.
"""
import http.client, json, select, socket, ssl, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

lock = threading.Lock()
state = dict(requests=0, methods={}, targets=[])
HOP = ("connection", "proxy-connection", "keep-alive", "proxy-authorization", "te", "trailer",
       "transfer-encoding", "upgrade")


def count(method, target):
    with lock:
        state["requests"] += 1
        state["methods"][method] = state["methods"].get(method, 0) + 1
        state["targets"].append(target)


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def control(self):
        with lock:
            if self.path.startswith("/__reset"):
                state.update(requests=0, methods={}, targets=[])
            body = json.dumps(state).encode()
        self.reply(200, body)

    def forward(self):
        if self.path.startswith("/"):
            return self.control()
        u = urlparse(self.path)
        count(self.command, self.path.split("?")[0])
        if u.scheme != "http" or u.hostname != "127.0.0.1":
            return self.reply(403, b"127.0.0.1 only\n")
        n = int(self.headers.get("Content-Length", "0") or 0)
        data = self.rfile.read(n) if n else None
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        try:
            c = http.client.HTTPConnection("127.0.0.1", u.port or 80, timeout=30)
            c.request(self.command, u.path + ("?" + u.query if u.query else ""), body=data,
                      headers=hdrs)
            r = c.getresponse()
            body = r.read()
        except Exception:
            return self.reply(502, b"upstream failed\n")
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", r.getheader("Content-Length", "0"))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        count("CONNECT", self.path)
        if host != "127.0.0.1":
            return self.reply(403, b"127.0.0.1 only\n")
        try:
            up = socket.create_connection((host, int(port)), 10)
        except Exception:
            return self.reply(502, b"connect failed\n")
        self.send_response(200, "Connection established")
        self.end_headers()
        socks = [self.connection, up]
        while True:
            r, _, _ = select.select(socks, [], [], 30)
            if not r:
                break
            done = False
            for s in r:
                d = s.recv(65536)
                if not d:
                    done = True
                    break
                (up if s is self.connection else self.connection).sendall(d)
            if done:
                break
        up.close()
        self.close_connection = True


class TLSServer(ThreadingHTTPServer):
    """The handshake in the connection's thread: a client that refuses the
    certificate does not hold up the others."""
    ctx = None

    def finish_request(self, request, client_address):
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def main():
    if len(sys.argv) > 3:
        TLSServer.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        TLSServer.ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv = TLSServer(("127.0.0.1", int(sys.argv[1])), H)
    else:
        srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
