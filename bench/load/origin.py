#!/usr/bin/env python3
"""Fallback origin for bench/load.sh when nginx is not installed (smoke runs).

Serves the same three resources as the nginx origin, over plain HTTP and TLS:
  /       a 100-byte body
  /big    the bulk file given with --big
  /deny   403 (the "direct" reference for the denied-request row)
  /chunked  the bulk file again, chunked in 64 KiB chunks (row c4)
  PUT /up   reads and drops the body (Content-Length or chunked), 200 (row c3)
Threads per connection, HTTP/1.1 keep-alive. Slow next to nginx: smoke only.
Listens on 127.0.0.1 only. Ends on SIGTERM or after --lifetime seconds.
"""
import argparse
import http.server
import os
import signal
import socketserver
import ssl
import sys
import threading

SMALL = b"egressd-bench-origin " + b"x" * 78 + b"\n"  # 100 bytes


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are separate writes
    big_path = ""

    def log_message(self, *args):  # quiet: the origin is not measured
        pass

    def do_GET(self):
        path = self.path
        if path.startswith("http://") or path.startswith("https://"):
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        path = path.split("?", 1)[0]
        if path == "/big":
            size = os.path.getsize(self.big_path)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with open(self.big_path, "rb") as f:
                if isinstance(self.connection, ssl.SSLSocket):
                    while True:
                        chunk = f.read(256 * 1024)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                else:
                    self.wfile.flush()
                    self.connection.sendfile(f)
            return
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with open(self.big_path, "rb") as f:
                while True:
                    chunk = f.read(64 * 1024)
                    if not chunk:
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
            return
        status, body = (403, b"denied\n") if path == "/deny" else (200, SMALL)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


    def do_PUT(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                self._drop(size)
                self.rfile.readline()
        else:
            self._drop(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    do_POST = do_PUT

    def _drop(self, n):
        while n > 0:
            got = self.rfile.read(min(n, 1 << 20))
            if not got:
                raise ConnectionError("EOF inside the body")
            n -= len(got)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--big", required=True)
    ap.add_argument("--lifetime", type=float, default=3600)
    a = ap.parse_args()
    Handler.big_path = a.big

    plain = Server(("127.0.0.1", a.port), Handler)
    tls = Server(("127.0.0.1", a.tls_port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    # Handshake in the connection's thread, not in accept(): a client that
    # stalls mid-handshake (the idle-tunnel test) must not block the others.
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True, do_handshake_on_connect=False)

    for s in (plain, tls):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print("origin ready", flush=True)
    done.wait(a.lifetime)
    sys.exit(0)


if __name__ == "__main__":
    main()
