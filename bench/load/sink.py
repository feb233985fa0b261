#!/usr/bin/env python3
"""Upload sink behind the nginx origin of bench/load.sh (row c3).

nginx passes PUT /up on to it unbuffered (proxy_request_buffering off); it
reads the Content-Length body into one 1 MiB buffer, drops it, and answers
204 only once the last byte is in (a proxy that saw an early answer could
cut the upload). Writing the body to a file instead (nginx's dav module, on
tmpfs) made the direct upload swing between 82 and 958 MB/s from one run
to the next; through this sink it holds 1.2-1.3 GB/s.
Listens on 127.0.0.1 only. Ends on SIGTERM or after --lifetime seconds.
"""
import argparse
import signal
import socket
import sys
import threading


def serve(c):
    with c:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        head = b""
        while True:
            while b"\r\n\r\n" not in head:
                got = c.recv(65536)
                if not got:
                    return
                head += got
            fields, _, rest = head.partition(b"\r\n\r\n")
            length = 0
            for line in fields.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            left = length - len(rest)
            head = rest[length:] if left < 0 else b""
            while left > 0:
                n = c.recv_into(view, min(len(buf), left))
                if not n:
                    return
                left -= n
            c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lifetime", type=float, default=3600)
    a = ap.parse_args()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", a.port))
    s.listen(64)

    def accept():
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print("sink ready", flush=True)
    done.wait(a.lifetime)
    sys.exit(0)


if __name__ == "__main__":
    main()
