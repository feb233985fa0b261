#!/usr/bin/env python3
"""upstream_proxy through the real binary, by chaining two egressd processes
(SPEC "Configuration": `upstream_proxy http://HOST:PORT` sends all allowed
traffic through a parent proxy, CONNECT for tunnels and absolute-form for
HTTP; egressd still decides by name, and the parent resolves; the parent's
own address is trusted config).

  parent  allow_net 127.0.0.0/8, resolver DNS_P (the names resolve to 127.0.0.1)
  child   hosts off, no allow_net, resolver DNS_C (records every query; it
          knows the names too, so a lookup would succeed: the child must
          still never ask), upstream_proxy http://127.0.0.1:PARENT

A denied name is refused by the child itself and never reaches the parent."""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     TcpSink, TlsClient, assert_denied, base_config, client_hello, closed_port,
                     connect_from, connect_via, echo_roundtrip, exchange, expect_closed, free_port,
                     gen_bytes, main, make_cert, proxy_get, read_response, request_bytes, sha256)
from modes_util import (entries, sighup_and_wait, tls_request, wait_listening,  # noqa: E402
                        write_config)

NAMES = ("tls.allowed.test", "www.allowed.test", "two.allowed.test", "echo.allowed.test",
         "parentdenies.allowed.test", "evil.test", "denied.allowed.test")


class ParentProxy(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="egressd-it-parent-")
        cls.cert, cls.key = make_cert(cls.tmp)
        cls.dns_parent = cls.own(DnsServer())
        cls.dns_child = cls.own(DnsServer())
        for d in (cls.dns_parent, cls.dns_child):
            for n in NAMES:
                d.add(n, a=["127.0.0.1"])
        cls.tls_origin = cls.own(HttpOrigin(cls.cert, cls.key))
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        T, O, E = cls.tls_origin.port, cls.origin.port, cls.echo.port
        cls.T, cls.O, cls.E = T, O, E

        parent_rules = f"""
allow tls.allowed.test ports={T}
allow www.allowed.test ports={O}
allow two.allowed.test ports={O}
allow echo.allowed.test ports={E}
allow evil.test ports={O},{E}
allow denied.allowed.test ports={O},{E}
"""
        cls.parent = cls.own(Egressd(base_config(parent_rules), dns=cls.dns_parent))
        cls.parent.start()

        cls.sni_port, cls.http_port = free_port(), free_port()
        child_rules = f"""
allow tls.allowed.test ports={T}
allow www.allowed.test ports={O}
allow two.allowed.test ports={O}
allow echo.allowed.test ports={E}
allow parentdenies.allowed.test ports={O},{E}
deny denied.allowed.test
"""
        extra = "\n".join([
            f"upstream_proxy http://127.0.0.1:{cls.parent.port}",
            f"tls_ports {T}",
            f"listen 127.0.0.1:{cls.sni_port} mode=sni port={T}",
            f"listen 127.0.0.1:{cls.http_port} mode=http port={O}",
        ])
        cls.child = cls.own(Egressd(base_config(child_rules, allow_net=None, hosts="off", extra=extra),
                                    dns=cls.dns_child))
        cls.child.start()
        wait_listening(cls.sni_port, cls.http_port)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        # The invariant of the whole file: the child never resolves a destination.
        self.assertEqual(self.dns_child.query_log(), [],
                         "the child egressd queried DNS although it has an upstream_proxy")

    def parent_lines(self, host):
        return entries(self.parent, lambda x: x.get("host") == host)

    # ---------------------------------------------------------------- tunnels

    def test_connect_tls_via_parent(self):
        r, s, bs = connect_via(self.child.port, f"tls.allowed.test:{self.T}")
        try:
            self.assertEqual(r.status, 200, r)
            t = TlsClient(s, "tls.allowed.test", cafile=self.cert, leftover=bytes(bs.buf))
            t.handshake()
            resp = t.request(request_bytes("GET", "/echo/tunnel", "tls.allowed.test"))
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json()["target"], "/echo/tunnel")
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.child.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["host"]), ("connect", "allow", "tls.allowed.test"), rec)
        self.assertEqual(rec["sni"], "tls.allowed.test", rec)
        self.assertEqual(rec["rule"], "tls.allowed.test", rec)
        # The child's upstream is the parent, not the origin.
        self.assertEqual(rec["upstream"], f"127.0.0.1:{self.parent.port}", rec)
        prec = self.parent.wait_log(lambda x: x.get("host") == "tls.allowed.test" and x.get("kind") == "connect"
                                    and x.get("bytes_up", 0) > 0)
        self.assertEqual(prec["decision"], "allow", prec)
        self.assertEqual(int(prec["port"]), self.T, prec)
        self.assertEqual(prec["upstream"], f"127.0.0.1:{self.T}", prec)
        self.assertTrue(self.dns_parent.queried("tls.allowed.test"), "the parent should have resolved the name")

    def test_connect_raw_echo_via_parent(self):
        r, s, bs = connect_via(self.child.port, f"echo.allowed.test:{self.E}")
        try:
            self.assertEqual(r.status, 200, r)
            payload = gen_bytes(300_000, seed=5)
            self.assertEqual(echo_roundtrip(s, bs, payload, 15), payload)
        finally:
            s.close()

    def test_connect_denied_by_child_never_reaches_parent(self):
        for host, reason in (("evil.test", "not_allowed"), ("denied.allowed.test", "denied_rule")):
            r, s, bs = connect_via(self.child.port, f"{host}:{self.E}")
            s.close()
            assert_denied(self, r, 403, reason)
            self.child.wait_log(lambda x, h=host: x.get("host") == h and x.get("decision") == "deny")
        for host in ("evil.test", "denied.allowed.test"):
            self.assertEqual(self.parent_lines(host), [], f"{host} reached the parent")
            self.assertFalse(self.dns_parent.queried(host), f"{host} was resolved by the parent")

    def test_connect_port_not_allowed_by_child(self):
        r, s, bs = connect_via(self.child.port, f"tls.allowed.test:{self.E}")
        s.close()
        assert_denied(self, r, 403, "port")
        self.assertEqual(entries(self.parent, lambda x: x.get("host") == "tls.allowed.test"
                                 and int(x.get("port", 0)) == self.E), [])

    def test_connect_refused_by_parent_not_200(self):
        # The child allows it, the parent does not: the child must not
        # pretend a tunnel is open.
        r, s, bs = connect_via(self.child.port, f"parentdenies.allowed.test:{self.E}")
        s.close()
        self.assertIsNotNone(r)
        self.assertNotEqual(r.status, 200, r)
        self.assertGreaterEqual(r.status, 400, r)
        self.parent.wait_log(lambda x: x.get("host") == "parentdenies.allowed.test" and x.get("decision") == "deny")

    def test_connect_sni_mismatch_blocked_by_child(self):
        # tls_ports includes T on the child: the ClientHello is checked there,
        # before a byte goes to the parent's tunnel.
        before = self.tls_origin.conns_with_bytes
        r, s, bs = connect_via(self.child.port, f"tls.allowed.test:{self.T}")
        try:
            self.assertEqual(r.status, 200, r)
            s.sendall(client_hello("other.test"))
            self.assertEqual(expect_closed(s, 10), b"")
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.child.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "sni_mismatch"), rec)
        self.assertEqual(self.tls_origin.conns_with_bytes, before, "ClientHello bytes reached the origin")

    def test_ip_literal_refused_by_child(self):
        # No allow_net on the child: a literal is refused there even though
        # the parent would allow 127.0.0.1.
        r, s, bs = connect_via(self.child.port, f"127.0.0.1:{self.E}")
        s.close()
        assert_denied(self, r, 403, "ip_literal")
        self.assertEqual(entries(self.parent, lambda x: x.get("host") == "127.0.0.1"), [])

    # ------------------------------------------------------------- plain HTTP

    def test_http_absolute_form_via_parent(self):
        before = len(self.origin.requests)
        r = exchange(self.child.port, request_bytes("GET", f"http://www.allowed.test:{self.O}/echo/plain?q=1",
                     f"www.allowed.test:{self.O}"))
        cport = r.client_port
        self.assertEqual(r.status, 200, r)
        info = r.json()
        # The parent turned the absolute form into the origin form.
        self.assertEqual(info["target"], "/echo/plain?q=1")
        self.assertEqual(len(self.origin.requests), before + 1)
        rec = self.child.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["host"]), ("http", "allow", "www.allowed.test"), rec)
        self.assertEqual(rec["upstream"], f"127.0.0.1:{self.parent.port}", rec)
        prec = self.parent.wait_log(lambda x: x.get("host") == "www.allowed.test" and x.get("path") == "/echo/plain")
        self.assertEqual((prec["kind"], prec["decision"]), ("http", "allow"), prec)

    def test_http_body_via_parent(self):
        body = gen_bytes(400_000, seed=9)
        r = proxy_get(self.child.port, f"http://www.allowed.test:{self.O}/upload", "POST", body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["sha256"], sha256(body))

    def test_http_keep_alive_two_hosts_via_parent(self):
        # One client connection, two hosts in turn, both through the parent.
        s = connect_from(self.child.port)
        try:
            bs = BufferedSocket(s)
            for host in ("www.allowed.test", "two.allowed.test", "www.allowed.test"):
                s.sendall(request_bytes("GET", f"http://{host}:{self.O}/echo/{host}", f"{host}:{self.O}",
                                        close=False))
                r = read_response(bs)
                self.assertEqual(r.status, 200, (host, r))
                self.assertEqual(r.json()["target"], f"/echo/{host}")
                hosts = [v for k, v in r.json()["headers"] if k.lower() == "host"]
                self.assertEqual(hosts, [f"{host}:{self.O}"], r.json())
        finally:
            s.close()
        self.parent.wait_log(lambda x: x.get("host") == "two.allowed.test")

    def test_http_denied_by_child_never_reaches_parent(self):
        before = len(self.origin.requests)
        r = proxy_get(self.child.port, f"http://evil.test:{self.O}/x")
        assert_denied(self, r, 403, "not_allowed", "evil.test")
        r = proxy_get(self.child.port, f"http://denied.allowed.test:{self.O}/x")
        assert_denied(self, r, 403, "denied_rule")
        self.assertEqual(len(self.origin.requests), before)
        self.assertEqual(self.parent_lines("evil.test"), [])
        self.assertEqual(self.parent_lines("denied.allowed.test"), [])

    def test_http_refused_by_parent_passed_on(self):
        r = proxy_get(self.child.port, f"http://parentdenies.allowed.test:{self.O}/x")
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 403, r)
        self.parent.wait_log(lambda x: x.get("host") == "parentdenies.allowed.test" and x.get("decision") == "deny")

    # ------------------------------------------------- transparent via parent

    def test_sni_listener_via_parent(self):
        raw = request_bytes("GET", "/echo/sni-parent", "tls.allowed.test")
        r, t, s = tls_request(self.sni_port, "tls.allowed.test", self.cert, raw)
        cport = s.getsockname()[1]
        s.close()
        self.assertEqual(r.status, 200, r)
        rec = self.child.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["sni"]), ("sni", "allow", "tls.allowed.test"), rec)
        self.assertEqual(rec["upstream"], f"127.0.0.1:{self.parent.port}", rec)

    def test_sni_listener_denied_never_reaches_parent(self):
        s = connect_from(self.sni_port)
        try:
            s.sendall(client_hello("evil.test"))
            self.assertEqual(expect_closed(s, 10), b"")
        finally:
            s.close()
        self.child.wait_log(lambda x: x.get("kind") == "sni" and x.get("sni") == "evil.test")
        self.assertEqual(self.parent_lines("evil.test"), [])

    def test_host_listener_via_parent(self):
        r = exchange(self.http_port, request_bytes("GET", "/echo/host-parent", f"www.allowed.test:{self.O}"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/echo/host-parent")
        self.parent.wait_log(lambda x: x.get("host") == "www.allowed.test" and x.get("path") == "/echo/host-parent")

    def test_host_listener_without_port_via_parent(self):
        # Host without a port: the upstream port is the listener's port=, and
        # the parent gets http://www.allowed.test:O/...
        r = exchange(self.http_port, request_bytes("GET", "/echo/host-noport", "www.allowed.test"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/echo/host-noport")
        prec = self.parent.wait_log(lambda x: x.get("host") == "www.allowed.test"
                                    and x.get("path") == "/echo/host-noport")
        self.assertEqual(int(prec["port"]), self.O, prec)

    # ----------------------------------------------------------------- reload

    def test_reload_switches_parent(self):
        # A second parent; a child of its own whose upstream_proxy moves from
        # the first parent to the second on SIGHUP.
        parent2 = Egressd(base_config(f"allow www.allowed.test ports={self.O}\n"), dns=self.dns_parent)
        self.addCleanup(parent2.cleanup)
        parent2.start()
        dns = DnsServer()
        self.addCleanup(dns.close)
        rules = f"allow www.allowed.test ports={self.O}\n"
        child = Egressd(base_config(rules, allow_net=None,
                                    extra=f"upstream_proxy http://127.0.0.1:{self.parent.port}"), dns=dns)
        self.addCleanup(child.cleanup)
        child.start()
        r = proxy_get(child.port, f"http://www.allowed.test:{self.O}/echo/parent-one")
        self.assertEqual(r.status, 200, r)
        self.parent.wait_log(lambda x: x.get("path") == "/echo/parent-one")
        write_config(child, base_config(rules, allow_net=None,
                                        extra=f"upstream_proxy http://127.0.0.1:{parent2.port}"))
        sighup_and_wait(child)
        r = proxy_get(child.port, f"http://www.allowed.test:{self.O}/echo/parent-two")
        self.assertEqual(r.status, 200, r)
        parent2.wait_log(lambda x: x.get("path") == "/echo/parent-two")
        self.assertEqual(entries(self.parent, lambda x: x.get("path") == "/echo/parent-two"), [])
        self.assertEqual(dns.query_log(), [])
        child.stop()
        parent2.stop()

    # --------------------------------------------------------- parent is down

    def test_parent_unreachable(self):
        dns = DnsServer()
        self.addCleanup(dns.close)
        e = Egressd(base_config(f"allow www.allowed.test ports={self.O}\n", allow_net=None,
                                extra=f"upstream_proxy http://127.0.0.1:{closed_port()}"), dns=dns)
        self.addCleanup(e.cleanup)
        e.start()
        r = proxy_get(e.port, f"http://www.allowed.test:{self.O}/x")
        assert_denied(self, r, 502, "upstream_unreachable")
        r, s, bs = connect_via(e.port, f"www.allowed.test:{self.O}")
        s.close()
        assert_denied(self, r, 502, "upstream_unreachable")
        self.assertEqual(dns.query_log(), [])
        e.stop()


if __name__ == "__main__":
    main()
