#!/usr/bin/env python3
"""Upstream edges a loopback origin does not show by itself (SPEC "What a
client is told": 504 upstream_timeout; "timeout connect="): an origin whose
connect never completes, and an origin reached over IPv6 (::1, inside
allow_net) for plain HTTP and for a CONNECT tunnel."""

import http.server
import os
import socket
import socketserver
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, assert_denied, base_config,  # noqa: E402
                     connect_tunnel, http_request, main)


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


class _V6Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


class _V6Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"v6 origin saw {self.path} from {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class V6Origin:
    """A plain HTTP origin on [::1]:PORT."""

    def __init__(self):
        self.server = _V6Server(("::1", 0), _V6Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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


@__import__("unittest").skipUnless(_have_ipv6_loopback(), "no IPv6 loopback (::1) on this machine")
class Ipv6Origin(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(V6Origin())
        cls.dns.add("v6.test", aaaa=["::1"])
        rules = f"allow v6.test ports={cls.origin.port}\n"
        # ::1 is loopback, not public: only allow_net lets it through.
        cls.e = cls.own(Egressd(base_config(rules, allow_net="127.0.0.0/8 ::1/128"),
                                dns=cls.dns)).start()

    def test_plain_http_to_ipv6_origin(self):
        r = http_request(self.e, f"http://v6.test:{self.origin.port}/hello")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"v6 origin saw /hello from ::1\n")

    def test_connect_tunnel_to_ipv6_origin(self):
        r, s, bs = connect_tunnel(self.e, f"v6.test:{self.origin.port}")
        port = s.getsockname()[1]
        try:
            self.assertEqual(r.status, 200, r)
            s.sendall(f"GET /tunnel HTTP/1.1\r\nHost: v6.test:{self.origin.port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            reply = bs.read_to_eof()
        finally:
            s.close()
        line = self.e.log_for_client(port)  # written when the tunnel ends
        self.assertIn(b"200 OK", reply)
        self.assertIn(b"v6 origin saw /tunnel from ::1", reply)
        self.assertEqual(line["upstream"], f"[::1]:{self.origin.port}")

    def test_ipv6_literal_outside_allow_net_still_refused(self):
        r = http_request(self.e, f"http://[::2]:{self.origin.port}/")
        self.assertEqual(r.status, 403, r)


if __name__ == "__main__":
    main()
