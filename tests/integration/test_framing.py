#!/usr/bin/env python3
"""Framing attacks (SPEC: "Malformed or ambiguous HTTP framing (Content-Length
with Transfer-Encoding, duplicate or invalid Content-Length, bad chunk sizes,
obsolete line folding, bare CR) is rejected with 400 and the connection
closed; nothing of it reaches an upstream"), and the 431/414 limits.

Every attack targets an allowed host whose origin records every byte it
receives, so "nothing reaches the upstream" is checked byte for byte."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, assert_denied,  # noqa: E402
                     base_config, connect_proxy, expect_closed, http_request, main, request_raw)


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


if __name__ == "__main__":
    main()
