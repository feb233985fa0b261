#!/usr/bin/env python3
"""Transparent listeners and plain forwards through the real binary (SPEC
"Configuration": `listen ADDR:PORT mode=sni|http [port=N]`, `forward LISTEN
TARGET`; "Access log": kinds sni, host, forward).

  mode=sni   the ClientHello SNI is the destination, judged like a CONNECT
             host; without an original destination the upstream port is
             port= or 443; no SNI / not TLS / denied: the connection is
             closed and nothing is sent upstream.
  mode=http  the Host header is the destination of origin-form requests;
             port= or 80; access-log kind "host".
  forward    plain TCP relay to a fixed target; trusted config, so a
             loopback target works without allow_net.

No iptables here: clients connect to the listeners directly, so there is
never an original destination and the port= / default port applies."""

import os
import shutil
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     TcpSink, assert_denied, base_config, client_hello, closed_port, connect_from,
                     connect_tunnel, echo_roundtrip, exchange, expect_closed, free_port, gen_bytes,
                     main, make_cert, read_response, request_bytes, sha256)
from modes_util import (metric_value, replace_sni, scrape, tls_request,  # noqa: E402
                        wait_listening)


class Transparent(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="egressd-it-transparent-")
        cls.cert, cls.key = make_cert(cls.tmp)
        cls.dns = cls.own(DnsServer())
        cls.tls_origin = cls.own(HttpOrigin(cls.cert, cls.key))
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        cls.hasher = cls.own(TcpSink("hash"))
        for n in ("tls.allowed.test", "www.allowed.test", "api.allowed.test", "dflt.allowed.test",
                  "other.test", "fwd.test", "nxd.allowed.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        cls.dns.nxdomain("nxd.allowed.test")
        cls.dns.add("private.allowed.test", a=["10.1.2.3"])
        T, O = cls.tls_origin.port, cls.origin.port
        cls.T, cls.O = T, O
        cls.sni_port, cls.sni_default_port = free_port(), free_port()
        cls.http_port, cls.http_default_port = free_port(), free_port()
        cls.fwd_ip, cls.fwd_name, cls.fwd_dead = free_port(), free_port(), free_port()
        cls.fwd_hash = free_port()
        cls.admin_port = free_port()
        extra = "\n".join([
            f"admin 127.0.0.1:{cls.admin_port}",
            f"listen 127.0.0.1:{cls.sni_port} mode=sni port={T}",
            f"listen 127.0.0.1:{cls.sni_default_port} mode=sni",
            f"listen 127.0.0.1:{cls.http_port} mode=http port={O}",
            f"listen 127.0.0.1:{cls.http_default_port} mode=http",
            f"forward 127.0.0.1:{cls.fwd_ip} 127.0.0.1:{cls.echo.port}",
            f"forward 127.0.0.1:{cls.fwd_name} fwd.test:{cls.echo.port}",
            f"forward 127.0.0.1:{cls.fwd_dead} 127.0.0.1:{closed_port()}",
            f"forward 127.0.0.1:{cls.fwd_hash} 127.0.0.1:{cls.hasher.port}",
        ])
        rules = f"""
allow tls.allowed.test ports={T}
allow private.allowed.test ports={T},{O}
allow nxd.allowed.test ports={T},{O}
allow .allowed.test ports={O}
allow dflt.allowed.test
deny api.allowed.test
"""
        cls.e = cls.own(Egressd(base_config(rules, extra=extra), dns=cls.dns))
        cls.e.start()
        wait_listening(cls.admin_port, cls.sni_port, cls.sni_default_port, cls.http_port, cls.http_default_port,
                       cls.fwd_ip, cls.fwd_name, cls.fwd_dead, cls.fwd_hash)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ sni

    def sni_closed(self, hello_bytes, port=None):
        """Send these bytes to the sni listener; egressd must close without a
        byte back. Returns the client socket's port (for the log)."""
        s = connect_from(port or self.sni_port)
        try:
            s.sendall(hello_bytes)
            got = expect_closed(s, 10)
            self.assertEqual(got, b"", "a refused transparent TLS connection must get nothing back")
            return s.getsockname()[1]
        finally:
            s.close()

    def test_sni_allowed_end_to_end(self):
        before = len(self.tls_origin.snis)
        raw = request_bytes("GET", "/echo/sni?x=1", "tls.allowed.test")
        r, t, s = tls_request(self.sni_port, "tls.allowed.test", self.cert, raw)
        try:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], "/echo/sni?x=1")
            cport = s.getsockname()[1]
        finally:
            s.close()
        self.assertIn("tls.allowed.test", self.tls_origin.snis[before:])
        rec = self.e.log_for_client(cport)
        self.assertEqual(rec["kind"], "sni", rec)
        self.assertEqual(rec["decision"], "allow", rec)
        self.assertEqual(rec["sni"], "tls.allowed.test", rec)
        self.assertEqual(rec["host"], "tls.allowed.test", rec)
        self.assertEqual(int(rec["port"]), self.T, rec)
        self.assertEqual(rec["rule"], "tls.allowed.test", rec)
        self.assertEqual(rec["upstream"], f"127.0.0.1:{self.T}", rec)
        self.assertGreater(rec["bytes_up"], 0, rec)
        self.assertGreater(rec["bytes_down"], 0, rec)

    def test_sni_case_insensitive(self):
        raw = request_bytes("GET", "/", "TLS.Allowed.TEST")
        r, t, s = tls_request(self.sni_port, "TLS.Allowed.TEST", self.cert, raw)
        cport = s.getsockname()[1]
        s.close()
        self.assertEqual(r.status, 200, r)
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["host"]), ("allow", "tls.allowed.test"), rec)

    def test_sni_fragmented_client_hello(self):
        # The ClientHello in 7 pieces: egressd must gather it whole.
        raw = request_bytes("GET", "/bytes?n=100000", "tls.allowed.test")
        r, t, s = tls_request(self.sni_port, "tls.allowed.test", self.cert, raw, pieces=7, gap=0.02)
        s.close()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sha256(r.body), sha256(gen_bytes(100000)))

    def test_sni_not_allowed_closed_nothing_upstream(self):
        conns = self.tls_origin.snapshot()[0]
        cport = self.sni_closed(client_hello("other.test"))
        rec = self.e.log_for_client(cport)
        self.assertEqual(rec["kind"], "sni", rec)
        self.assertEqual(rec["decision"], "deny", rec)
        self.assertEqual(rec["reason"], "not_allowed", rec)
        self.assertEqual(rec["sni"], "other.test", rec)
        self.assertEqual(self.tls_origin.snapshot()[0], conns, "a denied SNI reached the origin")
        self.assertFalse(self.dns.queried("other.test"), "a denied name was resolved")

    def test_sni_denied_rule_closed(self):
        conns = self.tls_origin.snapshot()[0]
        cport = self.sni_closed(client_hello("api.allowed.test"))
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "denied_rule"), rec)
        self.assertEqual(self.tls_origin.snapshot()[0], conns)
        self.assertFalse(self.dns.queried("api.allowed.test"))

    def test_sni_wrong_port_for_rule_closed(self):
        # www.allowed.test is allowed on the plain origin's port only (.allowed.test
        # ports=O); the sni listener's upstream port is T.
        cport = self.sni_closed(client_hello("www.allowed.test"))
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "port"), rec)
        self.assertEqual(int(rec["port"]), self.T, rec)

    def test_no_sni_closed(self):
        conns = self.tls_origin.snapshot()[0]
        cport = self.sni_closed(client_hello(None))
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["reason"]), ("sni", "deny", "no_sni"), rec)
        self.assertEqual(self.tls_origin.snapshot()[0], conns)

    def test_not_tls_closed(self):
        conns = self.tls_origin.snapshot()[0]
        cport = self.sni_closed(b"GET / HTTP/1.1\r\nHost: tls.allowed.test\r\n\r\n")
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["reason"]), ("sni", "deny", "not_tls"), rec)
        self.assertEqual(self.tls_origin.snapshot()[0], conns)

    def test_ip_literal_sni_closed(self):
        # 127.0.0.1 is inside allow_net, but an SNI is a name: an address in it
        # is refused (real clients never send one; a forged one must not pass).
        conns = self.tls_origin.snapshot()[0]
        for fake, literal in (("abcdefghi", "127.0.0.1"), ("abcdefghij", "0x7f000001")):
            cport = self.sni_closed(replace_sni(client_hello(fake), fake, literal))
            rec = self.e.log_for_client(cport)
            self.assertEqual((rec["decision"], rec["reason"]), ("deny", "ip_literal"), rec)
        self.assertEqual(self.tls_origin.snapshot()[0], conns)

    def test_sni_non_public_address_closed(self):
        # allow_net is 127.0.0.0/8: a name resolving to 10.1.2.3 is refused.
        cport = self.sni_closed(client_hello("private.allowed.test"))
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "non_public_address"), rec)

    def test_sni_dns_failure_closed(self):
        cport = self.sni_closed(client_hello("nxd.allowed.test"))
        rec = self.e.log_for_client(cport)
        self.assertEqual(rec["reason"], "dns_failure", rec)
        self.assertEqual(rec["kind"], "sni", rec)

    def test_sni_truncated_hello_then_eof(self):
        # Half a ClientHello, then EOF: nothing to judge, nothing upstream.
        conns = self.tls_origin.snapshot()[0]
        hello = client_hello("tls.allowed.test")
        s = connect_from(self.sni_port)
        try:
            s.sendall(hello[:20])
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(expect_closed(s, 10), b"")
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["reason"]), ("sni", "not_tls"), rec)
        self.assertFalse(rec.get("upstream"), rec)
        self.assertEqual(self.tls_origin.snapshot()[0], conns)

    def test_sni_default_port_443(self):
        # No port= and no original destination: the upstream port is 443
        # (whether or not anything listens on 127.0.0.1:443 here).
        s = connect_from(self.sni_default_port)
        try:
            s.sendall(client_hello("dflt.allowed.test"))
            s.settimeout(15)
            try:
                s.recv(1)
            except OSError:
                pass
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport, 15)
        self.assertEqual(rec["kind"], "sni", rec)
        self.assertEqual(int(rec["port"]), 443, rec)
        self.assertEqual(rec["host"], "dflt.allowed.test", rec)
        if rec.get("upstream"):
            self.assertTrue(rec["upstream"].endswith(":443"), rec)

    def test_sni_tunnel_denied_rule_port_default(self):
        # The default sni listener (port 443): tls.allowed.test is allowed on T only.
        cport = self.sni_closed(client_hello("tls.allowed.test"), port=self.sni_default_port)
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["reason"], int(rec["port"])), ("deny", "port", 443), rec)

    # ------------------------------------------------------------------ http

    def test_host_origin_form_allowed(self):
        before = len(self.origin.requests)
        r = exchange(self.http_port, request_bytes("GET", "/echo/path?secret=1", "www.allowed.test",
                     headers=[("X-Test", "host-mode")]))
        cport = r.client_port
        self.assertEqual(r.status, 200, r)
        info = r.json()
        self.assertEqual(info["target"], "/echo/path?secret=1")
        hosts = [v for k, v in info["headers"] if k.lower() == "host"]
        self.assertEqual(len(hosts), 1, info)
        self.assertEqual(hosts[0].split(":")[0], "www.allowed.test", info)
        self.assertIn(["X-Test", "host-mode"], info["headers"])
        self.assertEqual(len(self.origin.requests), before + 1)
        rec = self.e.log_for_client(cport)
        self.assertEqual(rec["kind"], "host", rec)
        self.assertEqual(rec["decision"], "allow", rec)
        self.assertEqual(rec["method"], "GET", rec)
        self.assertEqual(rec["host"], "www.allowed.test", rec)
        self.assertEqual(int(rec["port"]), self.O, rec)
        self.assertEqual(rec["path"], "/echo/path", rec)
        self.assertEqual(int(rec["status"]), 200, rec)
        self.assertEqual(rec["rule"], ".allowed.test", rec)
        self.assertEqual(rec["upstream"], f"127.0.0.1:{self.O}", rec)

    def test_host_name_spellings(self):
        # Upper case and one trailing dot: the same name (SPEC "Patterns").
        for host in ("WWW.Allowed.TEST", "www.allowed.test."):
            r = exchange(self.http_port, request_bytes("GET", "/echo/spelling", host))
            cport = r.client_port
            self.assertEqual(r.status, 200, (host, r))
            rec = self.e.log_for_client(cport)
            self.assertEqual((rec["host"], rec["decision"]), ("www.allowed.test", "allow"), rec)

    def test_host_with_explicit_port(self):
        r = exchange(self.http_port, request_bytes("GET", "/echo/p", f"www.allowed.test:{self.O}"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/echo/p")

    def test_host_post_body_streams(self):
        body = gen_bytes(300_000, seed=7)
        r = exchange(self.http_port, request_bytes("POST", "/upload", "www.allowed.test", body=body), "POST")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["sha256"], sha256(body))

    def test_host_not_allowed_403(self):
        before = len(self.origin.requests)
        r = exchange(self.http_port, request_bytes("GET", "/x", "evil.test"))
        cport = r.client_port
        assert_denied(self, r, 403, "not_allowed", "evil.test")
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["reason"]), ("host", "deny", "not_allowed"), rec)
        self.assertEqual(len(self.origin.requests), before)
        self.assertFalse(self.dns.queried("evil.test"))

    def test_host_denied_rule_403(self):
        r = exchange(self.http_port, request_bytes("GET", "/x", "api.allowed.test"))
        assert_denied(self, r, 403, "denied_rule")

    def test_host_ip_literal_403(self):
        r = exchange(self.http_port, request_bytes("GET", "/x", "10.0.0.1"))
        assert_denied(self, r, 403, "ip_literal")
        r = exchange(self.http_port, request_bytes("GET", "/x", "[2606:4700::1111]"))
        assert_denied(self, r, 403, "ip_literal")

    def test_host_missing_400(self):
        before = len(self.origin.requests)
        r = exchange(self.http_port, request_bytes("GET", "/x", None))
        assert_denied(self, r, 400, "bad_request")
        r = exchange(self.http_port, request_bytes("GET", "/x", None, version="HTTP/1.0"))
        assert_denied(self, r, 400, "bad_request")
        self.assertEqual(len(self.origin.requests), before)

    def test_host_duplicate_host_400(self):
        # Two Host headers: ambiguous destination, refused, nothing upstream.
        before = len(self.origin.requests)
        r = exchange(self.http_port, request_bytes("GET", "/x", f"www.allowed.test:{self.O}",
                                                   headers=[("Host", f"evil.test:{self.O}")]))
        assert_denied(self, r, 400, "bad_request")
        self.assertEqual(len(self.origin.requests), before)

    def test_host_connect_refused_400(self):
        r = exchange(self.http_port,
                     b"CONNECT tls.allowed.test:443 HTTP/1.1\r\nHost: tls.allowed.test:443\r\n\r\n",
                     "CONNECT")
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 400, r)

    def test_host_keep_alive_then_denied_host(self):
        before = len(self.origin.requests)
        s = connect_from(self.http_port)
        try:
            bs = BufferedSocket(s)
            for i in range(2):
                s.sendall(request_bytes("GET", f"/echo/{i}", "www.allowed.test", close=False))
                r = read_response(bs)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["target"], f"/echo/{i}")
            # Same connection, now another Host: judged again, and denied.
            s.sendall(request_bytes("GET", "/echo/2", "evil.test", close=False))
            r = read_response(bs)
            assert_denied(self, r, 403, "not_allowed")
        finally:
            s.close()
        self.assertEqual(len(self.origin.requests), before + 2)

    def test_host_default_port_80(self):
        # No port=: the upstream port is 80 (logged even when nothing listens there).
        r = exchange(self.http_default_port, request_bytes("GET", "/", "dflt.allowed.test"))
        cport = r.client_port
        self.assertIsNotNone(r)
        rec = self.e.log_for_client(cport)
        self.assertEqual(rec["kind"], "host", rec)
        self.assertEqual(rec["host"], "dflt.allowed.test", rec)
        self.assertEqual(int(rec["port"]), 80, rec)
        self.assertNotEqual(rec["reason"], "bad_request", rec)
        if rec.get("upstream"):
            self.assertTrue(rec["upstream"].endswith(":80"), rec)

    # --------------------------------------------------------------- forward

    def test_forward_ip_target_echo(self):
        s = connect_from(self.fwd_ip)
        bs = BufferedSocket(s)
        try:
            payload = gen_bytes(200_000, seed=3)
            self.assertEqual(echo_roundtrip(s, bs, payload, 15), payload)
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport)
        self.assertEqual(rec["kind"], "forward", rec)
        self.assertEqual(rec["decision"], "allow", rec)
        self.assertEqual(rec["host"], "127.0.0.1", rec)
        self.assertEqual(int(rec["port"]), self.echo.port, rec)
        self.assertEqual(rec["upstream"], f"127.0.0.1:{self.echo.port}", rec)
        self.assertEqual(rec["bytes_up"], 200_000, rec)
        self.assertEqual(rec["bytes_down"], 200_000, rec)

    def test_forward_name_target_resolved(self):
        s = connect_from(self.fwd_name)
        bs = BufferedSocket(s)
        try:
            self.assertEqual(echo_roundtrip(s, bs, b"hello forward"), b"hello forward")
            cport = s.getsockname()[1]
        finally:
            s.close()
        self.assertTrue(self.dns.queried("fwd.test"))
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["host"]), ("forward", "fwd.test"), rec)

    def test_forward_half_close(self):
        # The client half-closes; the target answers after its EOF.
        s = connect_from(self.fwd_hash)
        try:
            data = gen_bytes(500_000, seed=11)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = expect_closed(s, 15)
        finally:
            s.close()
        self.assertEqual(got.decode(), sha256(data))

    def test_forward_unreachable_target_closed(self):
        s = connect_from(self.fwd_dead)
        try:
            self.assertEqual(expect_closed(s, 15), b"")
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["reason"]), ("forward", "upstream_unreachable"), rec)

    def test_forward_target_needs_no_allow_net(self):
        # A second egressd without allow_net: the forward's loopback target
        # is trusted config, while the same address through the proxy is not.
        fwd = free_port()
        e = Egressd(base_config("allow www.allowed.test\n", allow_net=None,
                                extra=f"forward 127.0.0.1:{fwd} 127.0.0.1:{self.echo.port}"), dns=self.dns)
        self.addCleanup(e.cleanup)
        e.start()
        wait_listening(fwd)
        s = connect_from(fwd)
        bs = BufferedSocket(s)
        try:
            self.assertEqual(echo_roundtrip(s, bs, b"trusted target"), b"trusted target")
        finally:
            s.close()
        r, s, bs = connect_tunnel(e, f"127.0.0.1:{self.echo.port}")
        s.close()
        assert_denied(self, r, 403, "ip_literal")
        e.stop()
        kinds = sorted(x.get("kind") for x in e.read_log())
        self.assertEqual(kinds, ["connect", "forward"], e.read_log())

    # --------------------------------------------------------------- metrics

    def test_metrics_by_kind(self):
        # SPEC "Admin endpoint": egressd_requests_total{kind,...} and
        # egressd_connections_active{kind}; the kinds are the access log's.
        raw = request_bytes("GET", "/", "tls.allowed.test")
        r, t, s = tls_request(self.sni_port, "tls.allowed.test", self.cert, raw)
        s.close()
        self.assertEqual(r.status, 200, r)
        s = connect_from(self.fwd_ip)
        bs = BufferedSocket(s)
        try:
            self.assertEqual(echo_roundtrip(s, bs, b"m"), b"m")
        finally:
            s.close()
        # A kept-alive host-mode connection is open while we scrape.
        s = connect_from(self.http_port)
        try:
            bs = BufferedSocket(s)
            s.sendall(request_bytes("GET", "/echo/m", f"www.allowed.test:{self.O}", close=False))
            self.assertEqual(read_response(bs).status, 200)
            text = scrape(self.admin_port)
            active_host = metric_value(text, "egressd_connections_active", kind="host")
        finally:
            s.close()
        self.e.wait_log(lambda x: x.get("kind") == "host" and x.get("path") == "/echo/m")
        self.e.wait_log(lambda x: x.get("kind") == "forward")
        text = scrape(self.admin_port)
        problems = []
        for kind in ("sni", "host", "forward"):
            v = metric_value(text, "egressd_requests_total", kind=kind)
            if not v:
                problems.append(f'egressd_requests_total{{kind="{kind}"}} is {v}')
        if active_host != 1:
            problems.append(f'egressd_connections_active{{kind="host"}} was {active_host} with one open')
        lines = [ln for ln in text.splitlines() if ln.startswith("egressd_requests_total")]
        self.assertEqual(problems, [], "\n".join(lines))


if __name__ == "__main__":
    main()
