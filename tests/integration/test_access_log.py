#!/usr/bin/env python3
"""The JSON access log (SPEC "Access log"): one object per request or tunnel,
written when it ends, with ts (RFC 3339, ms), client (ip:port), group, agent, kind,
method, host, port, sni, path (no query string), decision, reason, rule,
status, bytes_up, bytes_down, duration_ms, upstream (ip:port)."""

import datetime
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, TlsClient,  # noqa: E402
                     base_config, client_hello, connect_proxy, connect_tunnel, expect_closed,
                     http_request, main, make_cert, read_response, request_raw)

FIELDS = ["ts", "client", "group", "agent", "kind", "method", "host", "port", "sni", "path", "decision",
          "reason", "rule", "status", "bytes_up", "bytes_down", "duration_ms", "upstream"]
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|[+-]\d{2}:\d{2})$")


def empty(v):
    return v in ("", None)


class AccessLog(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="egressd-cert-")
        cls.cert, cls.key = make_cert(cls.tmp)
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.tls = cls.own(HttpOrigin(cls.cert, cls.key))
        P, T = cls.P, cls.T = cls.origin.port, cls.tls.port
        for n in ("allowed.test", "api.allowed.test", "bad.allowed.test", "nx.allowed.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        cls.dns.nxdomain("nx.allowed.test")
        rules = f"""
allow allowed.test ports={P},{T}
allow .allowed.test ports={P},{T}
deny bad.allowed.test
"""
        cls.e = cls.own(Egressd(base_config(rules, tls_ports=[T]), dns=cls.dns)).start()

    def check_common(self, line, client_port):
        for f in FIELDS:
            self.assertIn(f, line, f"field {f} missing: {line}")
        self.assertRegex(line["ts"], TS_RE)
        ts = datetime.datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs((now - ts).total_seconds()), 120, f"ts {line['ts']} is not now")
        self.assertEqual(line["client"], f"127.0.0.1:{client_port}")
        self.assertIsInstance(line["port"], int)
        self.assertIsInstance(line["status"], int)
        for f in ("bytes_up", "bytes_down", "duration_ms"):
            self.assertIsInstance(line[f], int, f)
            self.assertGreaterEqual(line[f], 0, f)
        self.assertIn(line["decision"], ("allow", "deny", "report"))

    def test_allowed_http_request(self):
        s = connect_proxy(self.e)
        port = s.getsockname()[1]
        body = b"x" * 50_000
        raw = (f"POST http://api.allowed.test:{self.P}/upload/path/x?token=SECRET&a=b HTTP/1.1\r\n"
               f"Host: api.allowed.test:{self.P}\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
        r, s, _ = request_raw(self.e, raw, sock=s)
        s.close()
        self.assertEqual(r.status, 200, r)
        line = self.e.log_for_client(port)
        self.check_common(line, port)
        self.assertEqual(line["kind"], "http")
        self.assertEqual(line["method"], "POST")
        self.assertEqual(line["host"], "api.allowed.test")
        self.assertEqual(line["port"], self.P)
        self.assertEqual(line["path"], "/upload/path/x")
        self.assertNotIn("SECRET", str(line))
        self.assertEqual(line["decision"], "allow")
        self.assertTrue(empty(line["reason"]), line)
        self.assertEqual(line["rule"], ".allowed.test")
        self.assertEqual(line["status"], 200)
        self.assertTrue(empty(line["sni"]), line)
        self.assertEqual(line["upstream"], f"127.0.0.1:{self.P}")
        self.assertGreaterEqual(line["bytes_up"], len(body))
        self.assertLess(line["bytes_up"], len(body) + 2048)
        self.assertGreater(line["bytes_down"], 0)
        self.assertLess(line["bytes_down"], 2048)

    def test_download_bytes_and_duration(self):
        s = connect_proxy(self.e)
        port = s.getsockname()[1]
        r, s, _ = request_raw(self.e, (f"GET http://allowed.test:{self.P}/bytes?n=100000 HTTP/1.1\r\n"
                                       f"Host: allowed.test:{self.P}\r\nConnection: close\r\n\r\n").encode(),
                              sock=s)
        s.close()
        self.assertEqual(len(r.body), 100000)
        line = self.e.log_for_client(port)
        self.check_common(line, port)
        self.assertEqual(line["rule"], "allowed.test")  # exact beats suffix
        self.assertEqual(line["path"], "/bytes")
        self.assertGreaterEqual(line["bytes_down"], 100000)
        self.assertLess(line["bytes_down"], 100000 + 2048)
        s = connect_proxy(self.e)
        port = s.getsockname()[1]
        r, s, _ = request_raw(self.e, (f"GET http://allowed.test:{self.P}/delay?ms=400 HTTP/1.1\r\n"
                                       f"Host: allowed.test:{self.P}\r\nConnection: close\r\n\r\n").encode(),
                              sock=s)
        s.close()
        line = self.e.log_for_client(port)
        self.assertGreaterEqual(line["duration_ms"], 350)
        self.assertLess(line["duration_ms"], 10_000)

    def test_one_line_per_request_on_keep_alive(self):
        s = connect_proxy(self.e)
        port = s.getsockname()[1]
        from harness import BufferedSocket
        bs = BufferedSocket(s)
        for i in range(3):
            s.sendall((f"GET http://allowed.test:{self.P}/echo/ka{i} HTTP/1.1\r\n"
                       f"Host: allowed.test:{self.P}\r\n\r\n").encode())
            r = read_response(bs)
            self.assertEqual(r.status, 200)
        s.close()
        self.e.wait_log(lambda e: e.get("client", "").endswith(f":{port}") and e.get("path") == "/echo/ka2")
        time.sleep(0.5)
        lines = [e for e in self.e.read_log() if e.get("client", "").endswith(f":{port}")]
        self.assertEqual(sorted(e["path"] for e in lines), ["/echo/ka0", "/echo/ka1", "/echo/ka2"])

    def test_denied_not_allowed(self):
        s = connect_proxy(self.e)
        port = s.getsockname()[1]
        r, s, _ = request_raw(self.e, b"GET http://evil.test/x?y=1 HTTP/1.1\r\nHost: evil.test\r\n"
                                      b"Connection: close\r\n\r\n", sock=s)
        s.close()
        self.assertEqual(r.status, 403)
        line = self.e.log_for_client(port)
        self.check_common(line, port)
        self.assertEqual(line["kind"], "http")
        self.assertEqual(line["method"], "GET")
        self.assertEqual(line["host"], "evil.test")
        self.assertEqual(line["port"], 80)
        self.assertEqual(line["path"], "/x")
        self.assertEqual(line["decision"], "deny")
        self.assertEqual(line["reason"], "not_allowed")
        self.assertTrue(empty(line["rule"]), line)
        self.assertEqual(line["status"], 403)
        self.assertTrue(empty(line["upstream"]), line)

    def test_denied_rule_names_the_rule(self):
        s = connect_proxy(self.e)
        port = s.getsockname()[1]
        r, s, _ = request_raw(self.e, (f"GET http://bad.allowed.test:{self.P}/ HTTP/1.1\r\n"
                                       f"Host: bad.allowed.test\r\nConnection: close\r\n\r\n").encode(), sock=s)
        s.close()
        self.assertEqual(r.status, 403)
        line = self.e.log_for_client(port)
        self.assertEqual(line["reason"], "denied_rule")
        self.assertEqual(line["rule"], "bad.allowed.test")
        self.assertEqual(line["decision"], "deny")

    def test_dns_failure_logged(self):
        s = connect_proxy(self.e)
        port = s.getsockname()[1]
        r, s, _ = request_raw(self.e, (f"GET http://nx.allowed.test:{self.P}/ HTTP/1.1\r\n"
                                       f"Host: nx.allowed.test\r\nConnection: close\r\n\r\n").encode(), sock=s)
        s.close()
        self.assertEqual(r.status, 502)
        line = self.e.log_for_client(port)
        self.assertEqual(line["reason"], "dns_failure")
        self.assertEqual(line["status"], 502)
        self.assertTrue(empty(line["upstream"]), line)

    def test_bad_request_logged(self):
        s = connect_proxy(self.e)
        port = s.getsockname()[1]
        r, s, bs = request_raw(self.e, (f"POST http://allowed.test:{self.P}/ HTTP/1.1\r\n"
                                        f"Host: allowed.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
                                        "\r\nab").encode(), sock=s)
        s.close()
        self.assertEqual(r.status, 400)
        line = self.e.log_for_client(port)
        self.assertEqual(line["reason"], "bad_request")
        self.assertEqual(line["status"], 400)
        self.assertEqual(line["decision"], "deny")

    def test_tunnel_line(self):
        r, s, bs = connect_tunnel(self.e, f"allowed.test:{self.T}")
        port = s.getsockname()[1]
        try:
            self.assertEqual(r.status, 200)
            tls = TlsClient(s, "allowed.test", self.cert)
            tls.handshake()
            resp = tls.request(b"GET /bytes?n=30000 HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            self.assertEqual(len(resp.body), 30000)
        finally:
            s.close()
        line = self.e.log_for_client(port)
        self.check_common(line, port)
        self.assertEqual(line["kind"], "connect")
        self.assertEqual(line["method"], "CONNECT")
        self.assertEqual(line["host"], "allowed.test")
        self.assertEqual(line["port"], self.T)
        self.assertEqual(line["sni"], "allowed.test")
        self.assertTrue(empty(line["path"]), line)
        self.assertEqual(line["decision"], "allow")
        self.assertEqual(line["rule"], "allowed.test")
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["upstream"], f"127.0.0.1:{self.T}")
        self.assertGreater(line["bytes_up"], 200)        # ClientHello + request
        self.assertGreaterEqual(line["bytes_down"], 30000)
        self.assertLess(line["bytes_down"], 30000 + 8192)

    def test_sni_mismatch_line(self):
        r, s, bs = connect_tunnel(self.e, f"allowed.test:{self.T}")
        port = s.getsockname()[1]
        try:
            self.assertEqual(r.status, 200)
            s.sendall(client_hello("api.allowed.test"))
            expect_closed(bs, 10)
        finally:
            s.close()
        line = self.e.log_for_client(port)
        self.check_common(line, port)
        self.assertEqual(line["kind"], "connect")
        self.assertEqual(line["decision"], "deny")
        self.assertEqual(line["reason"], "sni_mismatch")
        self.assertEqual(line["sni"], "api.allowed.test")
        self.assertEqual(line["host"], "allowed.test")
        self.assertLess(line["bytes_down"], 200, "nothing came from upstream")

    def test_denied_connect_line(self):
        r, s, bs = connect_tunnel(self.e, "evil.test:443")
        port = s.getsockname()[1]
        s.close()
        self.assertEqual(r.status, 403)
        line = self.e.log_for_client(port)
        self.check_common(line, port)
        self.assertEqual(line["kind"], "connect")
        self.assertEqual(line["method"], "CONNECT")
        self.assertEqual(line["host"], "evil.test")
        self.assertEqual(line["port"], 443)
        self.assertEqual(line["reason"], "not_allowed")
        self.assertEqual(line["status"], 403)
        self.assertLess(line["bytes_up"], 1024)

    def test_every_line_is_one_json_object(self):
        http_request(self.e, f"http://allowed.test:{self.P}/echo/one")
        self.e.wait_log(lambda e: e.get("path") == "/echo/one")
        with open(self.e.access_log, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"))
        for raw in data.split(b"\n")[:-1]:
            self.assertTrue(raw.startswith(b"{") and raw.endswith(b"}"), raw)


if __name__ == "__main__":
    main()
