#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
A counting, fault-injecting HTTP proxy for the overlaybd-fetchd tests, in
front of a registry; 127.0.0.1 only.

  faultproxy.py PORT UPSTREAM_PORT

Control (answered here, never forwarded):
  GET /__stats              {"requests": n, "gets": [[path, range], ...], "bytes": n, "tokens": n,
                             "redirected": n, "redir_authz": n, "loops": n, "methods": {M: n}}
  GET /__reset              zero the counters
  GET /__fault?mode=M&n=N[&ra=R]   the next N data requests get fault M:
      503, 429        that status, with "Retry-After: R" (default 0; R
                      "date:S" sends the HTTP-date S seconds from now)
      slow            wait ms= (default 3000) before answering
      trunc           send half the body, then close
      reset           close the connection without an answer (RST)
      badrange        206 with a Content-Range shifted by 4096
      long            206 with 100 bytes more body than the range
      corrupt         one byte of the body flipped (the status and length kept)
      none            clear
  GET /__auth?mode=bearer&user=U&pass=P[&tokenbody=B]   require a Bearer
      token (served at /token, Basic U:P checked); mode=basic: require
      Basic U:P itself; mode=none turns it off. tokenbody= makes /token
      answer 200 with a malformed body B (see BAD_TOKEN_BODIES; the token
      in it is never valid), e.g. notjson, notoken, numtoken, huge
  GET /__redirect?mode=M&host=H   blob GETs (after the auth check) get a 307:
      other           to http://H:PORT/__redir<path> (H default "localhost":
                      another host name for this same proxy); a GET there
                      counts "redirected", and "redir_authz" when it carries
                      an Authorization header, and is served from upstream
                      (no auth asked, none passed on)
      loop            to /__loop/1<path>, which redirects to /__loop/2<path>
                      (a relative Location) and so on; "loops" counts them
      token           not the blob GETs but the token requests: /token to
                      http://H:PORT/__redir/token (counted as for "other"),
                      which answers as /token does
      none            clear
HEAD, POST, PUT, PATCH (obd push) are passed on with their body and Host,
auth checked as for GET; no faults, no redirects.
Counters live as long as the process.
"""
import base64, email.utils, http.client, json, re, secrets, socket, struct, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

lock = threading.Lock()
state = dict(requests=0, gets=[], bytes=0, tokens=0, fault=None, fault_n=0, fault_ms=3000,
             auth=None, user="", pw="", valid=set(), redirect=None, redir_host="localhost",
             redirected=0, redir_authz=0, loops=0, methods={})
UP = None

# 200 answers of a broken token server: each must fail the fetch, never authorize it
BAD_TOKEN_BODIES = {
    "notjson": b"<html><body>token service unavailable</body></html>",
    "truncated": b'{"token": "abcdef0123',
    "array": b'["abcdef0123"]',
    "notoken": b'{"expires_in": 300, "issued_at": "2026-01-01T00:00:00Z"}',
    "numtoken": b'{"token": 1234567890}',
    "emptytoken": b'{"token": "", "access_token": ""}',
    "spacetoken": b'{"token": "abc def\\r\\nX-Injected: 1"}',
    "huge": json.dumps(dict(token="A" * 9000)).encode(),
    "badexpires": b'{"token": "abcdef0123", "expires_in": "soon"}',
    "empty": b"",
}

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
        if self.command != "HEAD":
            self.wfile.write(body)

    def control(self, u):
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/__stats":
            with lock:
                body = json.dumps(dict(requests=state["requests"], gets=state["gets"],
                                       bytes=state["bytes"], tokens=state["tokens"],
                                       redirected=state["redirected"],
                                       redir_authz=state["redir_authz"], loops=state["loops"],
                                       methods=state["methods"])).encode()
            return self.reply(200, body)
        with lock:
            if u.path == "/__reset":
                state.update(requests=0, gets=[], bytes=0, tokens=0, redirected=0, redir_authz=0,
                             loops=0, methods={})
            elif u.path == "/__fault":
                state["fault"] = None if q.get("mode") == "none" else q.get("mode")
                state["fault_n"] = int(q.get("n", "1"))
                state["fault_ms"] = int(q.get("ms", "3000"))
                state["fault_ra"] = q.get("ra", "0")
            elif u.path == "/__auth":
                state["auth"] = None if q.get("mode") == "none" else q.get("mode")
                state["user"], state["pw"] = q.get("user", ""), q.get("pass", "")
                state["valid"] = set()
                state["tokenbody"] = q.get("tokenbody")
            elif u.path == "/__redirect":
                state["redirect"] = None if q.get("mode") == "none" else q.get("mode")
                state["redir_host"] = q.get("host", "localhost")
        return self.reply(200, b"ok\n")

    def refuse(self, u, auth):
        """False when the request may pass; True: a 401 was sent."""
        a = self.headers.get("Authorization", "")
        if auth == "bearer":
            if a.startswith("Bearer ") and a[7:] in state["valid"]:
                return False
            m = re.match(r"/v2/(.+?)/(blobs|manifests|tags)/", u.path)
            repo = m.group(1) if m else ""
            ch = 'Bearer realm="http://127.0.0.1:%d/token",service="test-registry",scope="repository:%s:%s"' % (
                self.server.server_port, repo, "pull" if self.command == "GET" else "pull,push")
        elif auth == "basic":
            if a == "Basic " + base64.b64encode(("%s:%s" % (state["user"], state["pw"])).encode()).decode():
                return False
            ch = 'Basic realm="faultproxy"'
        else:
            return False
        self.reply(401, b'{"errors":[]}', [("WWW-Authenticate", ch)])
        return True

    def redirected(self, u):
        """GET /__redir<path> (the other host) and /__loop/N<path>."""
        if u.path.startswith("/__loop/"):
            n, rest = u.path[len("/__loop/"):].split("/", 1)
            with lock:
                state["loops"] += 1
            return self.reply(307, b"", [("Location", "/__loop/%d/%s" % (int(n) + 1, rest))])
        with lock:
            state["redirected"] += 1
            if "Authorization" in self.headers:
                state["redir_authz"] += 1
        if u.path == "/__redir/token":
            return self.token(u)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() in ("range", "accept")}
        path = self.path[len("/__redir"):]
        try:
            c = http.client.HTTPConnection("127.0.0.1", UP, timeout=30)
            c.request("GET", path, headers=hdrs)
            r = c.getresponse()
            body = r.read()
        except Exception:
            return self.reply(502, b"upstream down\n")
        with lock:
            state["bytes"] += len(body)
        self.reply(r.status, body, [(k, v) for k, v in r.getheaders()
                                    if k.lower() in ("content-range", "content-type")])

    def forward(self):
        """HEAD, POST, PUT, PATCH: passed on with body and Host, auth checked."""
        u = urlparse(self.path)
        m = self.command
        n = int(self.headers.get("Content-Length", "0") or 0)
        data = self.rfile.read(n) if n else None
        with lock:
            state["requests"] += 1
            state["methods"][m] = state["methods"].get(m, 0) + 1
            auth = state["auth"]
        if self.refuse(u, auth):
            return
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() in ("range", "accept", "content-type", "content-range", "host")}
        if data is not None or m in ("POST", "PUT", "PATCH"):
            hdrs["Content-Length"] = str(n)
        try:
            c = http.client.HTTPConnection("127.0.0.1", UP, timeout=30)
            c.request(m, self.path, body=data, headers=hdrs)
            r = c.getresponse()
            body = r.read()
        except Exception:
            return self.reply(502, b"upstream down\n")
        out = [(k, v) for k, v in r.getheaders()
               if k.lower() in ("content-range", "www-authenticate", "location", "content-type",
                                "docker-content-digest", "docker-upload-uuid", "range")]
        if m == "HEAD":
            self.send_response(r.status)
            for k, v in out:
                self.send_header(k, v)
            self.send_header("Content-Length", r.getheader("Content-Length", "0"))
            self.end_headers()
            return
        self.reply(r.status, body, out)

    do_HEAD = do_POST = do_PUT = do_PATCH = forward

    def token(self, u):
        with lock:
            state["tokens"] += 1
            want = "Basic " + base64.b64encode(("%s:%s" % (state["user"], state["pw"])).encode()).decode()
        if self.headers.get("Authorization") != want:
            return self.reply(401, b'{"error":"bad credentials"}')
        bad = state.get("tokenbody")
        if bad:
            return self.reply(200, BAD_TOKEN_BODIES[bad], [("Content-Type", "application/json")])
        tok = secrets.token_hex(32)
        with lock:
            state["valid"].add(tok)
        self.reply(200, json.dumps(dict(token=tok, expires_in=300)).encode(),
                   [("Content-Type", "application/json")])

    def do_GET(self):
        u = urlparse(self.path)
        if u.path.startswith(("/__redir/", "/__loop/")):
            return self.redirected(u)
        if u.path.startswith("/__"):
            return self.control(u)
        if u.path == "/token":
            if state["redirect"] == "token":
                return self.reply(307, b"", [("Location", "http://%s:%d/__redir%s" % (
                    state["redir_host"], self.server.server_port, self.path))])
            return self.token(u)
        with lock:
            state["requests"] += 1
            state["gets"].append([u.path, self.headers.get("Range", "")])
            state["methods"]["GET"] = state["methods"].get("GET", 0) + 1
            auth, redir = state["auth"], state["redirect"]
        if self.refuse(u, auth):
            return
        if redir in ("other", "loop") and "/blobs/" in u.path:
            if redir == "loop":
                loc = "http://127.0.0.1:%d/__loop/1%s" % (self.server.server_port, self.path)
            else:
                loc = "http://%s:%d/__redir%s" % (state["redir_host"], self.server.server_port, self.path)
            return self.reply(307, b"", [("Location", loc)])
        f = take_fault()
        if f in ("503", "429"):
            ra = state.get("fault_ra", "0")
            if ra.startswith("date:"):
                ra = email.utils.formatdate(time.time() + int(ra[5:]), usegmt=True)
            return self.reply(int(f), b"busy\n", [("Retry-After", ra)])
        if f == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if f == "slow":
            time.sleep(state["fault_ms"] / 1000.0)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() in ("range", "authorization", "accept")}
        if auth:
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
        if f == "corrupt" and body:
            body = bytes([body[0] ^ 0xff]) + body[1:]
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
