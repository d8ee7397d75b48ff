#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
A counting, fault-injecting HTTP proxy for the overlaybd-fetchd tests, in
front of a registry; 127.0.0.1 only.

  faultproxy.py PORT UPSTREAM_PORT

Control (answered here, never forwarded):
  GET /__stats              {"requests": n, "gets": [[path, range], ...], "bytes": n, "tokens": n}
  GET /__reset              zero the counters
  GET /__fault?mode=M&n=N   the next N data requests get fault M:
      503, 429        that status
      slow            wait ms= (default 3000) before answering
      trunc           send half the body, then close
      reset           close the connection without an answer (RST)
      badrange        206 with a Content-Range shifted by 4096
      long            206 with 100 bytes more body than the range
      none            clear
  GET /__auth?mode=bearer&user=U&pass=P   require a Bearer token (served
      at /token, Basic U:P checked); mode=none turns it off
Counters live as long as the process.
"""
import base64, http.client, json, secrets, socket, struct, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

lock = threading.Lock()
state = dict(requests=0, gets=[], bytes=0, tokens=0, fault=None, fault_n=0, fault_ms=3000,
             auth=None, user="", pw="", valid=set())
UP = None

def take_fault():
    with lock:
        if state["fault_n"] > 0:
            state["fault_n"] -= 1
            return state["fault"]
    return None

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

    def control(self, u):
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/__stats":
            with lock:
                body = json.dumps(dict(requests=state["requests"], gets=state["gets"],
                                       bytes=state["bytes"], tokens=state["tokens"])).encode()
            return self.reply(200, body)
        with lock:
            if u.path == "/__reset":
                state.update(requests=0, gets=[], bytes=0, tokens=0)
            elif u.path == "/__fault":
                state["fault"] = None if q.get("mode") == "none" else q.get("mode")
                state["fault_n"] = int(q.get("n", "1"))
                state["fault_ms"] = int(q.get("ms", "3000"))
            elif u.path == "/__auth":
                state["auth"] = None if q.get("mode") == "none" else q.get("mode")
                state["user"], state["pw"] = q.get("user", ""), q.get("pass", "")
                state["valid"] = set()
        return self.reply(200, b"ok\n")

    def token(self, u):
        with lock:
            state["tokens"] += 1
            want = "Basic " + base64.b64encode(("%s:%s" % (state["user"], state["pw"])).encode()).decode()
        if self.headers.get("Authorization") != want:
            return self.reply(401, b'{"error":"bad credentials"}')
        tok = secrets.token_hex(32)
        with lock:
            state["valid"].add(tok)
        self.reply(200, json.dumps(dict(token=tok, expires_in=300)).encode(),
                   [("Content-Type", "application/json")])

    def do_GET(self):
        u = urlparse(self.path)
        if u.path.startswith("/__"):
            return self.control(u)
        if u.path == "/token":
            return self.token(u)
        with lock:
            state["requests"] += 1
            state["gets"].append([u.path, self.headers.get("Range", "")])
            auth = state["auth"]
        if auth == "bearer":
            a = self.headers.get("Authorization", "")
            ok = a.startswith("Bearer ") and a[7:] in state["valid"]
            if not ok:
                repo = u.path.split("/blobs/")[0][len("/v2/"):]
                ch = 'Bearer realm="http://127.0.0.1:%d/token",service="test-registry",scope="repository:%s:pull"' % (
                    self.server.server_port, repo)
                return self.reply(401, b'{"errors":[]}', [("WWW-Authenticate", ch)])
        f = take_fault()
        if f in ("503", "429"):
            return self.reply(int(f), b"busy\n", [("Retry-After", "0")])
        if f == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if f == "slow":
            time.sleep(state["fault_ms"] / 1000.0)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() in ("range", "authorization", "accept")}
        if auth == "bearer":
            hdrs.pop("Authorization", None)
        try:
            c = http.client.HTTPConnection("127.0.0.1", UP, timeout=30)
            c.request("GET", self.path, headers=hdrs)
            r = c.getresponse()
            body = r.read()
        except Exception:
            return self.reply(502, b"upstream down\n")
        # the registry redirects nothing here; pass status and the headers that matter
        out = [(k, v) for k, v in r.getheaders()
               if k.lower() in ("content-range", "www-authenticate", "location", "content-type",
                                "docker-content-digest")]
        code = r.status
        if f == "badrange" and code == 206:
            cr = r.getheader("Content-Range")
            a, rest = cr[len("bytes "):].split("-", 1)
            b, tot = rest.split("/")
            out = [(k, v) for k, v in out if k.lower() != "content-range"]
            out.append(("Content-Range", "bytes %d-%d/%s" % (int(a) + 4096, int(b) + 4096, tot)))
        if f == "long" and code == 206:
            body = body + b"x" * 100
        with lock:
            state["bytes"] += len(body)
        if f == "trunc":
            self.send_response(code)
            for k, v in out:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.reply(code, body, out)

class S(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

def main():
    global UP
    UP = int(sys.argv[2])
    S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()

if __name__ == "__main__":
    main()
