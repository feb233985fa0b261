#!/usr/bin/env python3
"""Framing attacks (SPEC: "Malformed or ambiguous HTTP framing (Content-Length
with Transfer-Encoding, duplicate or invalid Content-Length, bad chunk sizes,
obsolete line folding, bare CR) is rejected with 400 and the connection
closed; nothing of it reaches an upstream"), and the 431/414 limits.

Every attack targets an allowed host whose origin records every byte it
receives, so "nothing reaches the upstream" is checked byte for byte."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     assert_denied, base_config, connect_proxy, expect_closed, http_request, main,
                     read_chunked, read_response, request_raw, sha256)


def attack(head_lines, body=b""):
    return ("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1") + body


class Framing(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.dns.add("allowed.test", a=["127.0.0.1"])
        P = cls.P = cls.origin.port
        cls.url = f"http://allowed.test:{P}/upload"
        cls.host = f"Host: allowed.test:{P}"
        cls.e = cls.own(Egressd(base_config(f"allow allowed.test ports={P}\n",
                                            limits={"header_bytes": "8K"}), dns=cls.dns)).start()

    def assert_rejected(self, data, status=400, reason="bad_request", what=""):
        before = self.origin.snapshot()
        s = connect_proxy(self.e)
        try:
            r, s, bs = request_raw(self.e, data, sock=s)
            self.assertIsNotNone(r, f"{what}: connection closed without a response")
            assert_denied(self, r, status, reason)
            extra = expect_closed(bs, 10)
            self.assertEqual(extra, b"", f"{what}: more bytes after the {status}")
        finally:
            s.close()
        time.sleep(0.2)  # anything forwarded would have arrived by now on loopback
        self.assertEqual(self.origin.snapshot(), before, f"{what}: bytes reached the origin")
        return r

    def test_cl_and_te(self):
        self.assert_rejected(attack([f"POST {self.url} HTTP/1.1", self.host, "Content-Length: 4",
                                     "Transfer-Encoding: chunked"], b"0\r\n\r\n"), what="CL+TE")
        self.assert_rejected(attack([f"POST {self.url} HTTP/1.1", self.host,
                                     "Transfer-Encoding: chunked", "Content-Length: 40"],
                                    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"), what="TE+CL")

    def test_duplicate_content_length(self):
        self.assert_rejected(attack([f"POST {self.url} HTTP/1.1", self.host, "Content-Length: 3",
                                     "Content-Length: 5"], b"abcde"), what="CL 3 and 5")
        self.assert_rejected(attack([f"POST {self.url} HTTP/1.1", self.host, "Content-Length: 3",
                                     "Content-Length: 3"], b"abc"), what="CL 3 twice")
        self.assert_rejected(attack([f"POST {self.url} HTTP/1.1", self.host, "Content-Length: 3, 3"],
                                    b"abc"), what="CL list")

    def test_invalid_content_length(self):
        for v in ("abc", "-1", "+3", "0x3", "3 3", "1.0", "99999999999999999999999"):
            self.assert_rejected(attack([f"POST {self.url} HTTP/1.1", self.host, f"Content-Length: {v}"],
                                        b"abc"), what=f"CL {v!r}")

    def test_te_not_ending_in_chunked(self):
        for v in ("chunked, gzip", "gzip", "identity", "chunked, chunked"):
            self.assert_rejected(attack([f"POST {self.url} HTTP/1.1", self.host, f"Transfer-Encoding: {v}"],
                                        b"0\r\n\r\n"), what=f"TE {v!r}")
        self.assert_rejected(attack([f"POST {self.url} HTTP/1.1", self.host, "Transfer-Encoding: chunked",
                                     "Transfer-Encoding: gzip"], b"0\r\n\r\n"), what="TE lines chunked,gzip")

    def test_chunked_in_http10(self):
        self.assert_rejected(attack([f"POST {self.url} HTTP/1.0", self.host, "Transfer-Encoding: chunked"],
                                    b"3\r\nabc\r\n0\r\n\r\n"), what="chunked in HTTP/1.0")

    def test_obs_fold(self):
        self.assert_rejected(attack([f"GET {self.url} HTTP/1.1", self.host, "X-Folded: a", " b"]),
                             what="obs-fold SP")
        self.assert_rejected(attack([f"GET {self.url} HTTP/1.1", self.host, "X-Folded: a", "\tb"]),
                             what="obs-fold HTAB")

    def test_bare_cr(self):
        self.assert_rejected(attack([f"GET {self.url} HTTP/1.1", self.host, "X-A: a\rb"]),
                             what="bare CR in a field value")
        self.assert_rejected(f"GET {self.url} HTTP/1.1\r{self.host}\r\n\r\n".encode(),
                             what="bare CR ending the request line")

    def test_bad_chunk_size_with_head(self):
        # The head is valid; the first chunk size is not, and it arrives in the
        # same segment as the head. SPEC: "nothing of it reaches an upstream".
        for bad in (b"zz\r\nabc\r\n0\r\n\r\n", b"-1\r\n\r\n", b"\r\n\r\n",
                    b"fffffffffffffffffff\r\n" + b"a" * 10 + b"\r\n0\r\n\r\n"):
            self.assert_rejected(attack([f"POST {self.url} HTTP/1.1", self.host,
                                         "Transfer-Encoding: chunked"], bad), what=f"chunk size {bad[:20]!r}")

    def test_bad_chunk_size_mid_body(self):
        # A valid first chunk, then a bad size after a pause: a streaming proxy
        # may already have forwarded the head and the first chunk. The client
        # still gets 400 and the origin never receives a complete request nor
        # the malformed bytes.
        s = connect_proxy(self.e)
        try:
            s.sendall(attack([f"POST {self.url}/midbody HTTP/1.1", self.host,
                              "Transfer-Encoding: chunked"], b"5\r\nhello\r\n"))
            time.sleep(0.3)
            s.sendall(b"xyz!\r\nabc\r\n0\r\n\r\n")
            r, s, bs = request_raw(self.e, b"", sock=s)
            self.assertIsNotNone(r, "connection closed without a response")
            assert_denied(self, r, 400, "bad_request")
            expect_closed(bs, 10)
        finally:
            s.close()
        time.sleep(0.2)
        done = [x for x in self.origin.complete_requests() if "/midbody" in x["target"]]
        self.assertEqual(done, [], "the origin received a complete request")

    def test_header_too_large_431(self):
        self.assert_rejected(attack([f"GET {self.url} HTTP/1.1", self.host, "X-Big: " + "a" * 10_000]),
                             status=431, reason="header_too_large", what="one 10 KB field")
        self.assert_rejected(attack([f"GET {self.url} HTTP/1.1", self.host] +
                                    [f"X-Many-{i}: " + "b" * 100 for i in range(100)]),
                             status=431, reason="header_too_large", what="100 fields of 100 B")

    def test_uri_too_long_414(self):
        self.assert_rejected(attack([f"GET {self.url}?q={'u' * 20_000} HTTP/1.1", self.host]),
                             status=414, reason="uri_too_long", what="20 KB URI")

    def test_under_limits_still_fine(self):
        r = http_request(self.e, f"http://allowed.test:{self.P}/echo/fine?q={'u' * 2000}",
                         headers=[("X-Big", "a" * 3000)])
        self.assertEqual(r.status, 200, r)

    def test_pipelined_smuggle_after_good_request(self):
        # A good request followed on the same connection by an ambiguous one:
        # the first is answered, the second rejected, nothing of it forwarded.
        good = attack([f"GET http://allowed.test:{self.P}/echo/first HTTP/1.1", self.host])
        bad = attack([f"POST {self.url}/second HTTP/1.1", self.host, "Content-Length: 4",
                      "Transfer-Encoding: chunked"], b"0\r\n\r\n")
        s = connect_proxy(self.e)
        try:
            r1, s, bs = request_raw(self.e, good + bad, sock=s)
            self.assertEqual(r1.status, 200, r1)
            from harness import read_response
            r2 = read_response(bs)
            self.assertIsNotNone(r2)
            assert_denied(self, r2, 400, "bad_request")
            expect_closed(bs, 10)
        finally:
            s.close()
        time.sleep(0.2)
        self.assertFalse(any("/second" in x["target"] for x in self.origin.requests))

    def test_zz_still_serving(self):
        r = http_request(self.e, f"http://allowed.test:{self.P}/echo/alive")
        self.assertEqual(r.status, 200, r)


class ScriptedOrigin:
    """One-request-per-connection origin on 127.0.0.1 that records the raw
    bytes of each request it gets (head and body, the body read as its head
    frames it) and answers with the bytes of `self.response`."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.raw = []
        self.response = b"HTTP/1.1 204 No Content\r\n\r\n"
        self.lock = threading.Lock()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            c.settimeout(5)
            seen = bytearray()
            bs = BufferedSocket(c, on_bytes=seen.extend)
            try:
                head = bs.read_until(b"\r\n\r\n", 1 << 16)
                if head is None:
                    return
                lower = head.lower()
                if b"transfer-encoding: chunked" in lower:
                    read_chunked(bs)
                elif b"content-length:" in lower:
                    n = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                    bs.read_exact(n)
                with self.lock:
                    self.raw.append(bytes(seen[:len(seen) - len(bs.buf)]))
                c.sendall(self.response)
            except (OSError, ValueError, EOFError):
                pass

    def close(self):
        self.sock.close()


class RfcForms(EgressdTestCase):
    """What RFC 9112 makes unambiguous is accepted (README "HTTP framing"):
    OWS around field values, leading zeros in chunk sizes, chunk extensions
    and trailer fields (dropped: egressd relays the chunks as they came, but
    for those), in requests and in responses; the ambiguous neighbours of
    each are still 400 and reach nothing."""

    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.scripted = cls.own(ScriptedOrigin())
        cls.dns.add("allowed.test", a=["127.0.0.1"])
        cls.P, cls.S = cls.origin.port, cls.scripted.port
        cls.e = cls.own(Egressd(base_config(f"allow allowed.test ports={cls.P},{cls.S}\n"),
                                dns=cls.dns)).start()

    def post(self, fields, body, port=None, pieces=()):
        port = port or self.P
        data = attack([f"POST http://allowed.test:{port}/upload HTTP/1.1", f"Host: allowed.test:{port}",
                       "Connection: close"] + fields, body)
        s = connect_proxy(self.e)
        try:
            s.sendall(data)
            for p in pieces:
                time.sleep(0.15)
                s.sendall(p)
            return read_response(BufferedSocket(s))
        finally:
            s.close()

    def assert_uploaded(self, r, body, what):
        self.assertIsNotNone(r, what)
        self.assertEqual(r.status, 200, f"{what}: {r!r}")
        got = __import__("json").loads(r.body)
        self.assertEqual((got["len"], got["sha256"]), (len(body), sha256(body)), what)

    def test_content_length_with_ows(self):
        for v in ("   5  ", "\t5\t", "5 ", "5", "  0005 "):
            r = self.post([f"Content-Length:{v}"], b"hello")
            self.assert_uploaded(r, b"hello", f"Content-Length:{v!r}")

    def test_chunk_sizes_with_leading_zeros(self):
        r = self.post(["Transfer-Encoding: chunked"], b"0005\r\nhello\r\n0006\r\n world\r\n0000\r\n\r\n")
        self.assert_uploaded(r, b"hello world", "0005/0006/0000")
        r = self.post(["Transfer-Encoding: chunked"], b"0" * 30 + b"5\r\nhello\r\n0\r\n\r\n")
        self.assert_uploaded(r, b"hello", "30 leading zeros")
        # Later in the body (the streaming parser, not the head check).
        r = self.post(["Transfer-Encoding: chunked"], b"5\r\nhello\r\n",
                      pieces=[b"000000000000000000006\r\n world\r\n", b"00\r\n\r\n"])
        self.assert_uploaded(r, b"hello world", "leading zeros after the head")

    def test_trailers_accepted_and_dropped(self):
        self.scripted.response = b"HTTP/1.1 204 No Content\r\n\r\n"
        for pieces in ((), (b"0\r\nX-Sum: abc\r\nX-Other:  v \r\n\r\n",)):
            body = b"5\r\nhello\r\n" + (b"" if pieces else b"0\r\nX-Sum: abc\r\nX-Other:  v \r\n\r\n")
            before = len(self.scripted.raw)
            r = self.post(["Transfer-Encoding: chunked", "Trailer: X-Sum"], body, port=self.S, pieces=pieces)
            self.assertIsNotNone(r)
            self.assertEqual(r.status, 204, r)
            raw = self.scripted.raw[before]
            self.assertTrue(raw.endswith(b"\r\nhello\r\n0\r\n\r\n"), raw)
            self.assertNotIn(b"X-Sum", raw, "a trailer (or the Trailer field) was forwarded")
            self.assertNotIn(b"X-Other", raw)

    def test_chunks_relayed_as_sent_without_extensions(self):
        # Sizes go up as written, data and CRLFs too; an extension does not,
        # nor do the last chunk's extension and the trailer fields.
        self.scripted.response = b"HTTP/1.1 204 No Content\r\n\r\n"
        before = len(self.scripted.raw)
        r = self.post(["Transfer-Encoding: chunked"], b"0005;name=v\r\nhello\r\n",
                      port=self.S, pieces=[b"6;a;b=\"q\"\r\n world\r\n00;last\r\nX-Sum: 1\r\n\r\n"])
        self.assertEqual(r.status, 204, r)
        raw = self.scripted.raw[before]
        self.assertTrue(raw.endswith(b"\r\n\r\n0005\r\nhello\r\n6\r\n world\r\n00\r\n\r\n"), raw)
        # The same for a response, as the client reads it off the wire.
        self.scripted.response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                  b"0005;e=1\r\nhello\r\n000\r\nX-Sum: abc\r\n\r\n")
        s = connect_proxy(self.e)
        try:
            s.sendall(f"GET http://allowed.test:{self.S}/x HTTP/1.1\r\nHost: allowed.test\r\n"
                      "Connection: close\r\n\r\n".encode())
            got = BufferedSocket(s).read_to_eof()
        finally:
            s.close()
        self.assertTrue(got.endswith(b"\r\n\r\n0005\r\nhello\r\n000\r\n\r\n"), got)
        # An HTTP/1.0 client gets the data alone, delimited by the close.
        s = connect_proxy(self.e)
        try:
            s.sendall(f"GET http://allowed.test:{self.S}/x HTTP/1.0\r\nHost: allowed.test\r\n\r\n".encode())
            got = BufferedSocket(s).read_to_eof()
        finally:
            s.close()
        head, _, body = got.partition(b"\r\n\r\n")
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertEqual(body, b"hello")

    def test_responses_with_the_same_forms(self):
        # The upstream's response is checked the same way: the same forms
        # pass, and a chunked response is relayed without its trailers.
        cases = [
            (b"HTTP/1.1 200 OK\r\nContent-Length:   5  \r\nConnection: close\r\n\r\nhello", False),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
             b"0005\r\nhello\r\n000\r\nX-Sum: abc\r\n\r\n", True),
        ]
        for response, chunked in cases:
            self.scripted.response = response
            r = http_request(self.e, f"http://allowed.test:{self.S}/x")
            self.assertEqual((r.status, r.body), (200, b"hello"), f"{response!r}: {r!r}")
            if chunked:
                self.assertNotIn(b"X-Sum", r.head)

    def test_ambiguous_neighbours_still_refused(self):
        rejected = [
            (["Content-Length: 5 5"], b"hello"),
            (["Content-Length:  "], b"hello"),
            (["Content-Length: 5 ", "Content-Length: 5"], b"hello"),
            (["Content-Length: 5,"], b"hello"),
            (["Transfer-Encoding: chunked"], b"00010000000000000000\r\n" + b"a" * 10),  # overflow
            (["Transfer-Encoding: chunked"], b"0005 \r\nhello\r\n0\r\n\r\n"),
            (["Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n folded: x\r\n\r\n"),
            (["Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\nX-Bare: a\nb\r\n\r\n"),
        ]
        for fields, body in rejected:
            before = self.origin.snapshot()
            r = self.post(fields, body)
            self.assertIsNotNone(r, f"{fields} {body[:30]!r}")
            assert_denied(self, r, 400, "bad_request")
            time.sleep(0.1)
            self.assertEqual(self.origin.snapshot(), before, f"{fields} {body[:30]!r}: bytes reached the origin")


if __name__ == "__main__":
    main()
