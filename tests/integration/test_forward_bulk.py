#!/usr/bin/env python3
"""Plain-HTTP bodies in bulk through the forward path (issue 9, README
"Bodies on the forward path"): 256 MiB down and 256 MiB up with
Content-Length, 64 MiB chunked each way, arrive intact (sha256), and each
took few socket reads: egressd_http_body_reads_total must stay between 2
per MiB (reads of at most a 256 KiB pipe or a 64 KiB buffer: the counter
counts at all) and 64 per MiB (the old relay read 512 B - 2 KiB at a time:
500-2,000 per MiB). Also: a body that
stalls mid-way is cut at the idle timeout, in either direction.

The origin here streams (the harness's HttpOrigin holds whole bodies in
memory): /big?n=N[&chunk=K] sends N bytes (Content-Length, or chunked in
pieces of K), /up reads a body (either framing) and answers with its
length and sha256, /stall sends a head and 64 KiB of a longer body, then
nothing."""

import hashlib
import json
import os
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, _ServerBase, base_config,  # noqa: E402
                     free_port, hget, main, parse_head)
from limits_util import scrape  # noqa: E402

MIB = 1 << 20
BLOCK = os.urandom(MIB)
READS = "egressd_http_body_reads_total"


def blocks(n):
    """n bytes: 1 MiB blocks of random data, each stamped with its index (so
    a lost or repeated block changes the hash)."""
    i = 0
    while n > 0:
        b = i.to_bytes(8, "big") + BLOCK[8:]
        yield b[:n] if n < MIB else b
        n -= len(b)
        i += 1


def expected_sha(n):
    h = hashlib.sha256()
    for b in blocks(n):
        h.update(b)
    return h.hexdigest()


def take(bs, n):
    """Up to n bytes (at least one unless at EOF) from bs."""
    if not bs.buf:
        bs.fill(min(n, MIB))
    out = bytes(bs.buf[:n])
    del bs.buf[:n]
    return out


def read_body(bs, headers, sink):
    """Reads a Content-Length or chunked body from bs into sink(bytes)."""
    if "chunked" in (hget(headers, "transfer-encoding") or "").lower():
        while True:
            line = bs.read_until(b"\r\n", 4096)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while bs.read_until(b"\r\n", 4096) != b"\r\n":
                    pass
                return
            left = size
            while left:
                piece = take(bs, min(left, MIB))
                if not piece:
                    raise EOFError("EOF inside a chunk")
                sink(piece)
                left -= len(piece)
            if bs.read_exact(2) != b"\r\n":
                raise ValueError("chunk without CRLF")
    left = int(hget(headers, "content-length", "0"))
    while left:
        piece = take(bs, min(left, MIB))
        if not piece:
            raise EOFError(f"EOF with {left} body bytes to go")
        sink(piece)
        left -= len(piece)


class StreamingOrigin(_ServerBase):
    def serve(self, c, cid):
        c.settimeout(60)
        bs = BufferedSocket(c)
        while True:
            head = bs.read_until(b"\r\n\r\n", 1 << 16)
            if head is None:
                return
            start, headers = parse_head(head)
            target = start.split(" ")[1]
            url = urllib.parse.urlsplit(target)
            q = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/big":
                n, chunk = int(q["n"]), int(q.get("chunk", 0))
                framing = "Transfer-Encoding: chunked" if chunk else f"Content-Length: {n}"
                c.sendall(f"HTTP/1.1 200 OK\r\n{framing}\r\n\r\n".encode())
                for b in blocks(n):
                    if not chunk:
                        c.sendall(b)
                        continue
                    for off in range(0, len(b), chunk):
                        piece = b[off:off + chunk]
                        c.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                if chunk:
                    c.sendall(b"0\r\n\r\n")
            elif url.path == "/up":
                h, got = hashlib.sha256(), [0]

                def sink(piece):
                    h.update(piece)
                    got[0] += len(piece)
                read_body(bs, headers, sink)
                body = json.dumps({"len": got[0], "sha256": h.hexdigest()}).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif url.path == "/headchunked":
                # A HEAD answered with the chunked framing a GET would get: no body.
                c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            elif url.path == "/stall":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + BLOCK[:65536])
                time.sleep(8)
                return
            else:
                c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


class ForwardBulk(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(StreamingOrigin())
        cls.dns.add("bulk.test", a=["127.0.0.1"])
        cls.admin_port = free_port()
        conf = base_config(f"allow bulk.test ports={cls.origin.port}\n", timeouts={"idle": "1s"},
                           extra=f"admin 127.0.0.1:{cls.admin_port}").replace("threads 2", "threads 1")
        cls.e = cls.own(Egressd(conf, dns=cls.dns)).start()
        cls.base = f"http://bulk.test:{cls.origin.port}"

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.e.port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        return s, BufferedSocket(s)

    def reads(self):
        m = scrape(self.admin_port)
        return m.get(READS, direction="up"), m.get(READS, direction="down")

    def assert_few_reads(self, before, direction, mib):
        up, down = self.reads()
        n = (up - before[0]) if direction == "up" else (down - before[1])
        per_mib = n / mib
        self.assertGreaterEqual(per_mib, 2, f"{direction}: {n} reads for {mib} MiB: the counter does not count")
        self.assertLess(per_mib, 64, f"{direction}: {n} reads for {mib} MiB ({per_mib:.0f}/MiB): small reads are back")

    def download(self, n, chunk=0):
        before = self.reads()
        s, bs = self.connect()
        with s:
            q = f"n={n}" + (f"&chunk={chunk}" if chunk else "")
            s.sendall(f"GET {self.base}/big?{q} HTTP/1.1\r\nHost: bulk.test\r\n\r\n".encode())
            start, headers = parse_head(bs.read_until(b"\r\n\r\n", 1 << 16))
            status = int(start.split(" ")[1])
            self.assertEqual(status, 200)
            h, got = hashlib.sha256(), [0]

            def sink(piece):
                h.update(piece)
                got[0] += len(piece)
            read_body(bs, headers, sink)
        self.assertEqual(got[0], n)
        self.assertEqual(h.hexdigest(), expected_sha(n), "the body changed on its way")
        self.assert_few_reads(before, "down", n / MIB)

    def upload(self, n, chunked=False):
        before = self.reads()
        s, bs = self.connect()
        with s:
            framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {n}"
            s.sendall(f"PUT {self.base}/up HTTP/1.1\r\nHost: bulk.test\r\n{framing}\r\n\r\n".encode())
            for b in blocks(n):
                if chunked:
                    for off in range(0, len(b), 16384):  # a client's typical 16 KiB chunks
                        piece = b[off:off + 16384]
                        s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    s.sendall(b)
            if chunked:
                s.sendall(b"0\r\n\r\n")
            start, headers = parse_head(bs.read_until(b"\r\n\r\n", 1 << 16))
            status = int(start.split(" ")[1])
            body = bs.read_exact(int(hget(headers, "content-length")))
        self.assertEqual(status, 200)
        info = json.loads(body)
        self.assertEqual(info["len"], n)
        self.assertEqual(info["sha256"], expected_sha(n), "the body changed on its way")
        self.assert_few_reads(before, "up", n / MIB)

    def test_download_content_length(self):
        self.download(256 * MIB)

    def test_upload_content_length(self):
        self.upload(256 * MIB)

    def test_download_chunked(self):
        self.download(64 * MIB, chunk=65536)

    def test_upload_chunked(self):
        self.upload(64 * MIB, chunked=True)

    def test_head_with_chunked_framing_has_no_body(self):
        # The answer to HEAD ends with its head, whatever framing it names:
        # the next response on the connection must start right after it.
        s, bs = self.connect()
        with s:
            s.sendall(f"HEAD {self.base}/headchunked HTTP/1.1\r\nHost: bulk.test\r\n\r\n".encode())
            start, _ = parse_head(bs.read_until(b"\r\n\r\n", 1 << 16))
            self.assertEqual(start.split(" ")[1], "200")
            s.sendall(f"GET {self.base}/big?n=10 HTTP/1.1\r\nHost: bulk.test\r\n\r\n".encode())
            head = bs.read_until(b"\r\n\r\n", 1 << 16)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            _, headers = parse_head(head)
            self.assertEqual(bs.read_exact(int(hget(headers, "content-length"))), next(blocks(10)))

    def test_stalled_response_body_is_cut_at_idle(self):
        s, bs = self.connect()
        with s:
            s.sendall(f"GET {self.base}/stall HTTP/1.1\r\nHost: bulk.test\r\n\r\n".encode())
            t0 = time.monotonic()
            bs.read_until(b"\r\n\r\n", 1 << 16)
            got = 0
            while True:
                piece = take(bs, MIB)
                if not piece:
                    break
                got += len(piece)
            elapsed = time.monotonic() - t0
        self.assertEqual(got, 65536)
        self.assertGreater(elapsed, 0.8, "closed before timeout idle=1s")
        self.assertLess(elapsed, 5, "a stalled body outlived timeout idle=1s")

    def test_stalled_request_body_is_cut_at_idle(self):
        s, bs = self.connect()
        with s:
            s.sendall(f"PUT {self.base}/up HTTP/1.1\r\nHost: bulk.test\r\nContent-Length: 1000000\r\n\r\n".encode()
                      + BLOCK[:65536])
            t0 = time.monotonic()
            rest = bs.read_to_eof()
            elapsed = time.monotonic() - t0
        self.assertNotIn(b"200 OK", rest or b"")
        self.assertGreater(elapsed, 0.8, "closed before timeout idle=1s")
        self.assertLess(elapsed, 5, "a stalled upload outlived timeout idle=1s")


if __name__ == "__main__":
    main()
