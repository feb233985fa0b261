#!/usr/bin/env python3
"""Upstream edges a loopback origin does not show by itself (SPEC "What a
client is told": 504 upstream_timeout; "timeout connect="): an origin whose
connect never completes, and an origin reached over IPv6 (::1, inside
allow_net) for plain HTTP and for a CONNECT tunnel."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, assert_denied,  # noqa: E402
                     base_config, connect_tunnel, http_request, main)


class SilentListener:
    """A listening socket on 127.0.0.1 whose accept queue is full (backlog 0,
    one connection queued and never accepted): the kernel drops further SYNs,
    so a connect() to it neither completes nor fails until the client gives up."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = []
        # One queued connection fills a backlog-0 queue; a second may be
        # accepted into it on some kernels, so queue until a connect stalls.
        for _ in range(4):
            c = socket.socket()
            c.settimeout(0.3)
            try:
                c.connect(("127.0.0.1", self.port))
            except (socket.timeout, OSError):
                c.close()
                break
            self.filler.append(c)

    def close(self):
        for c in self.filler:
            c.close()
        self.sock.close()


class UpstreamTimeout(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.silent = cls.own(SilentListener())
        cls.dns.add("slow.test", a=["127.0.0.1"])
        rules = f"allow slow.test ports={cls.silent.port}\n"
        cls.e = cls.own(Egressd(base_config(rules, timeouts={"connect": "300ms"}),
                                dns=cls.dns)).start()

    def test_http_connect_timeout_is_504(self):
        t0 = time.monotonic()
        r = http_request(self.e, f"http://slow.test:{self.silent.port}/")
        elapsed = time.monotonic() - t0
        assert_denied(self, r, 504, "upstream_timeout")
        self.assertLess(elapsed, 5, "timeout connect=300ms was not applied")
        self.assertGreater(elapsed, 0.25)

    def test_connect_timeout_is_504_and_logged(self):
        r, s, _ = connect_tunnel(self.e, f"slow.test:{self.silent.port}")
        try:
            assert_denied(self, r, 504, "upstream_timeout")
            line = self.e.log_for_client(s)
        finally:
            s.close()
        self.assertEqual(line["status"], 504)
        self.assertEqual(line["reason"], "upstream_timeout")
        self.assertEqual(line["decision"], "allow")  # the policy allowed it; the upstream failed


def _have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(_have_ipv6_loopback(), "no IPv6 loopback (::1) on this machine")
class Ipv6Origin(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin(addr="::1"))
        cls.dns.add("v6.test", aaaa=["::1"])
        rules = f"allow v6.test ports={cls.origin.port}\n"
        # ::1 is loopback, not public: only allow_net lets it through.
        cls.e = cls.own(Egressd(base_config(rules, allow_net="127.0.0.0/8 ::1/128"),
                                dns=cls.dns)).start()

    def test_plain_http_to_ipv6_origin(self):
        r = http_request(self.e, f"http://v6.test:{self.origin.port}/echo/hello")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/echo/hello")

    def test_connect_tunnel_to_ipv6_origin(self):
        r, s, bs = connect_tunnel(self.e, f"v6.test:{self.origin.port}")
        port = s.getsockname()[1]
        try:
            self.assertEqual(r.status, 200, r)
            s.sendall(f"GET /echo/tunnel HTTP/1.1\r\nHost: v6.test:{self.origin.port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            reply = bs.read_to_eof()
        finally:
            s.close()
        line = self.e.log_for_client(port)  # written when the tunnel ends
        self.assertIn(b"200 OK", reply)
        self.assertIn(b'"target": "/echo/tunnel"', reply)
        self.assertEqual(line["upstream"], f"[::1]:{self.origin.port}")

    def test_ipv6_literal_outside_allow_net_still_refused(self):
        r = http_request(self.e, f"http://[::2]:{self.origin.port}/")
        self.assertEqual(r.status, 403, r)


if __name__ == "__main__":
    main()
