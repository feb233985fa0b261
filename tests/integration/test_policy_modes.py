#!/usr/bin/env python3
"""Policy modes and rule options through the real binary:

  mode report   denials by the allowlist are logged with decision "report"
                and the would-be reason, but pass; IP literals, non-public
                addresses and the SNI checks still block (SPEC "mode").
  group         `group NAME CIDR...` + `allow ... group=NAME`: clients bound
                to 127.0.2.1 are in the group, 127.0.3.1 are not; the access
                log's `group` field names the client's group.
  methods=      plain HTTP only; CONNECT is still admitted on the rule's ports.
  IPv6 literal  a bracketed IPv6 CONNECT is refused as ip_literal unless
                allow_net covers it (an IPv4-mapped one is judged as IPv4).
  overlap       `api.github.com` and `.github.com` are both fine; the most
                specific rule is the log's `rule`, whatever the line order."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     TcpSink, assert_denied, base_config, client_hello, connect_from, connect_via,
                     echo_roundtrip, egressd_bin, exchange, expect_closed, free_port, main,
                     proxy_get, request_bytes, source_bindable, wait_until)
from modes_util import (metric_value, replace_sni, scrape, wait_listening)  # noqa: E402

IN_GROUP, OUT_GROUP = "127.0.2.1", "127.0.3.1"


class ReportMode(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        for n in ("listed.test", "unlisted.test", "other.test", "nodns.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        cls.dns.nxdomain("nodns.test")
        cls.dns.add("private.test", a=["10.0.0.5"])
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        cls.tlsecho = cls.own(TcpSink("echo"))  # a "TLS port": its first bytes are inspected
        O, E, X = cls.origin.port, cls.echo.port, cls.tlsecho.port
        cls.O, cls.E, cls.X = O, E, X
        cls.admin_port, cls.sni_port, cls.http_port = free_port(), free_port(), free_port()
        extra = "\n".join([
            "mode report",
            f"admin 127.0.0.1:{cls.admin_port}",
            f"tls_ports {X}",
            f"listen 127.0.0.1:{cls.sni_port} mode=sni port={X}",
            f"listen 127.0.0.1:{cls.http_port} mode=http port={O}",
        ])
        rules = f"allow listed.test ports={O},{E}\n"
        cls.e = cls.own(Egressd(base_config(rules, extra=extra), dns=cls.dns))
        cls.e.start()
        wait_listening(cls.admin_port, cls.sni_port, cls.http_port)

    def test_listed_is_allow(self):
        r = exchange(self.e.port,
                     request_bytes("GET", f"http://listed.test:{self.O}/echo/listed", f"listed.test:{self.O}"))
        cport = r.client_port
        self.assertEqual(r.status, 200, r)
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["rule"]), ("allow", "listed.test"), rec)

    def test_unlisted_http_passes_as_report(self):
        before = len(self.origin.requests)
        r = exchange(self.e.port,
                     request_bytes("GET", f"http://unlisted.test:{self.O}/echo/rep", f"unlisted.test:{self.O}"))
        cport = r.client_port
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.origin.requests), before + 1)
        rec = self.e.log_for_client(cport)
        self.assertEqual(rec["decision"], "report", rec)
        self.assertEqual(rec["reason"], "not_allowed", rec)
        self.assertEqual(rec["host"], "unlisted.test", rec)
        self.assertEqual(int(rec["status"]), 200, rec)
        self.assertEqual(rec["upstream"], f"127.0.0.1:{self.O}", rec)

    def test_unlisted_connect_passes_as_report(self):
        r, s, bs = connect_via(self.e.port, f"unlisted.test:{self.E}")
        try:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(echo_roundtrip(s, bs, b"reported tunnel"), b"reported tunnel")
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["reason"]), ("connect", "report", "not_allowed"), rec)
        self.assertEqual(rec["bytes_up"], len(b"reported tunnel"), rec)

    def test_wrong_port_passes_as_report(self):
        # listed.test is allowed on O and E; on X it would be denied for its port.
        r, s, bs = connect_via(self.e.port, f"listed.test:{self.X}")
        try:
            self.assertEqual(r.status, 200, r)
            hello = client_hello("listed.test")
            self.assertEqual(echo_roundtrip(s, bs, hello), hello)
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["reason"]), ("report", "port"), rec)

    def test_report_line_for_dns_failure_keeps_report(self):
        # Passed by report mode, then the name does not resolve: 502, and the
        # line still says what the allowlist would have done.
        r = proxy_get(self.e.port, f"http://nodns.test:{self.O}/x")
        assert_denied(self, r, 502, "dns_failure")
        rec = self.e.wait_log(lambda x: x.get("host") == "nodns.test")
        self.assertEqual(rec["decision"], "report", rec)

    def test_ip_literal_still_blocked(self):
        r, s, bs = connect_via(self.e.port, "10.0.0.1:443")
        s.close()
        assert_denied(self, r, 403, "ip_literal")
        r = proxy_get(self.e.port, "http://192.0.2.10/x")
        assert_denied(self, r, 403, "ip_literal")
        r, s, bs = connect_via(self.e.port, "[2001:db8::1]:443")
        s.close()
        assert_denied(self, r, 403, "ip_literal")
        rec = self.e.wait_log(lambda x: x.get("host") == "10.0.0.1")
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "ip_literal"), rec)

    def test_non_public_address_still_blocked(self):
        r = proxy_get(self.e.port, f"http://private.test:{self.O}/x")
        assert_denied(self, r, 403, "non_public_address")
        r, s, bs = connect_via(self.e.port, f"private.test:{self.E}")
        s.close()
        assert_denied(self, r, 403, "non_public_address")
        rec = self.e.wait_log(lambda x: x.get("host") == "private.test" and x.get("kind") == "connect")
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "non_public_address"), rec)

    def test_sni_mismatch_still_blocked(self):
        before = self.tlsecho.snapshot()[1]
        r, s, bs = connect_via(self.e.port, f"unlisted.test:{self.X}")
        try:
            self.assertEqual(r.status, 200, r)
            s.sendall(client_hello("other.test"))
            self.assertEqual(expect_closed(s, 10), b"")
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "sni_mismatch"), rec)
        self.assertEqual(self.tlsecho.snapshot()[1], before, "a mismatching ClientHello went upstream")

    def test_no_sni_and_not_tls_still_blocked(self):
        for data, reason in ((client_hello(None), "no_sni"), (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not_tls")):
            r, s, bs = connect_via(self.e.port, f"unlisted.test:{self.X}")
            try:
                self.assertEqual(r.status, 200, r)
                s.sendall(data)
                self.assertEqual(expect_closed(s, 10), b"")
                cport = s.getsockname()[1]
            finally:
                s.close()
            rec = self.e.log_for_client(cport)
            self.assertEqual((rec["decision"], rec["reason"]), ("deny", reason), rec)

    def test_sni_listener_report(self):
        hello = client_hello("unlisted.test")
        s = connect_from(self.sni_port)
        bs = BufferedSocket(s)
        try:
            self.assertEqual(echo_roundtrip(s, bs, hello), hello)
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["reason"]), ("sni", "report", "not_allowed"), rec)
        # ... but an address as SNI is still refused.
        s = connect_from(self.sni_port)
        try:
            s.sendall(replace_sni(client_hello("abcdefghi"), "abcdefghi", "127.0.0.1"))
            self.assertEqual(expect_closed(s, 10), b"")
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "ip_literal"), rec)

    def test_host_listener_report(self):
        r = exchange(self.http_port, request_bytes("GET", "/echo/hostrep", f"unlisted.test:{self.O}"))
        cport = r.client_port
        self.assertEqual(r.status, 200, r)
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["reason"]), ("host", "report", "not_allowed"), rec)

    def test_report_metric(self):
        r = proxy_get(self.e.port, f"http://unlisted.test:{self.O}/metric")
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: (metric_value(scrape(self.admin_port), "egressd_requests_total",
                                         decision="report") or 0) >= 1,
                   10, what='egressd_requests_total{decision="report"}')


class EnforceRules(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        if not (source_bindable(IN_GROUP) and source_bindable(OUT_GROUP)):
            raise unittest.SkipTest("cannot bind 127.0.2.1 / 127.0.3.1")
        cls.dns = cls.own(DnsServer())
        for n in ("grp.test", "meth.test", "api.github.com", "github.com", "codeload.github.com"):
            cls.dns.add(n, a=["127.0.0.1"])
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        cls.other = cls.own(TcpSink("echo"))
        O, E, Y = cls.origin.port, cls.echo.port, cls.other.port
        cls.O, cls.E, cls.Y = O, E, Y
        # .github.com comes first: the order of lines must not matter.
        cls.rules = f"""
group builders 127.0.2.0/24
group others 127.0.3.0/24 10.99.0.0/16
allow grp.test ports={O},{E} group=builders
allow meth.test ports={O},{E} methods=GET,HEAD
allow .github.com ports={O},{E}
allow api.github.com ports={O},{E}
"""
        cls.e = cls.own(Egressd(base_config(cls.rules), dns=cls.dns))
        cls.e.start()

    # ---------------------------------------------------------------- groups

    def test_group_member_allowed_http(self):
        r = exchange(self.e.port,
                     request_bytes("GET", f"http://grp.test:{self.O}/echo/g", f"grp.test:{self.O}"), source=IN_GROUP)
        cport = r.client_port
        self.assertEqual(r.status, 200, r)
        rec = self.e.log_for_client(cport)
        self.assertTrue(rec["client"].startswith(IN_GROUP + ":"), rec)
        self.assertEqual((rec["group"], rec["decision"], rec["rule"]), ("builders", "allow", "grp.test"), rec)

    def test_non_member_denied_http(self):
        before = len(self.origin.requests)
        r = exchange(self.e.port,
                     request_bytes("GET", f"http://grp.test:{self.O}/echo/g", f"grp.test:{self.O}"),
                     source=OUT_GROUP)
        cport = r.client_port
        assert_denied(self, r, 403, "not_allowed", "grp.test")
        rec = self.e.log_for_client(cport)
        self.assertEqual((rec["group"], rec["decision"]), ("others", "deny"), rec)
        self.assertEqual(len(self.origin.requests), before)

    def test_ungrouped_client_denied_and_group_empty(self):
        r = exchange(self.e.port,
                     request_bytes("GET", f"http://grp.test:{self.O}/", f"grp.test:{self.O}"), source="127.0.0.1")
        cport = r.client_port
        assert_denied(self, r, 403, "not_allowed")
        rec = self.e.log_for_client(cport)
        self.assertEqual(rec.get("group", ""), "", rec)

    def test_group_connect(self):
        r, s, bs = connect_via(self.e.port, f"grp.test:{self.E}", source=IN_GROUP)
        try:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(echo_roundtrip(s, bs, b"member"), b"member")
        finally:
            s.close()
        r, s, bs = connect_via(self.e.port, f"grp.test:{self.E}", source=OUT_GROUP)
        s.close()
        assert_denied(self, r, 403, "not_allowed")

    def test_rule_without_group_applies_to_all(self):
        for src in (IN_GROUP, OUT_GROUP, "127.0.0.1"):
            r = proxy_get(self.e.port, f"http://meth.test:{self.O}/echo/any", source=src)
            self.assertEqual(r.status, 200, (src, r))

    # --------------------------------------------------------------- methods

    def test_methods_get_head_allowed_post_refused(self):
        r = proxy_get(self.e.port, f"http://meth.test:{self.O}/echo/get")
        self.assertEqual(r.status, 200, r)
        r = proxy_get(self.e.port, f"http://meth.test:{self.O}/x", "HEAD")
        self.assertEqual(r.status, 200, r)
        before = len(self.origin.requests)
        r = proxy_get(self.e.port, f"http://meth.test:{self.O}/upload", "POST", b"payload")
        assert_denied(self, r, 403, "method")
        self.assertEqual(len(self.origin.requests), before, "a refused POST reached the origin")
        rec = self.e.wait_log(lambda x: x.get("host") == "meth.test" and x.get("method") == "POST")
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "method"), rec)

    def test_methods_rule_still_admits_connect_on_its_ports(self):
        r, s, bs = connect_via(self.e.port, f"meth.test:{self.E}")
        try:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(echo_roundtrip(s, bs, b"tunnel through a methods= rule"),
                             b"tunnel through a methods= rule")
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = self.e.log_for_client(cport)
        self.assertEqual(rec["kind"], "connect", rec)
        self.assertEqual((rec["decision"], rec["rule"]), ("allow", "meth.test"), rec)

    def test_methods_rule_connect_other_port_refused(self):
        r, s, bs = connect_via(self.e.port, f"meth.test:{self.Y}")
        s.close()
        assert_denied(self, r, 403, "port")

    # ---------------------------------------------------------- IPv6 literal

    def test_ipv6_bracketed_literal_connect_refused(self):
        for auth in ("[::1]:443", f"[::1]:{self.E}", "[2606:4700:4700::1111]:443", "[fe80::1]:443",
                     "[::ffff:10.0.0.1]:443", "[64:ff9b::7f00:1]:443"):
            r, s, bs = connect_via(self.e.port, auth)
            s.close()
            assert_denied(self, r, 403, "ip_literal")
        rec = self.e.wait_log(lambda x: x.get("kind") == "connect" and "2606:4700:4700::1111" in x.get("host", ""))
        self.assertEqual((rec["decision"], rec["reason"]), ("deny", "ip_literal"), rec)

    def test_ipv6_literal_http_refused(self):
        r = proxy_get(self.e.port, f"http://[::1]:{self.O}/x")
        assert_denied(self, r, 403, "ip_literal")

    def test_ipv4_mapped_literal_judged_as_ipv4(self):
        # ::ffff:127.0.0.1 is judged as 127.0.0.1, which allow_net covers.
        r, s, bs = connect_via(self.e.port, f"[::ffff:127.0.0.1]:{self.E}")
        try:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(echo_roundtrip(s, bs, b"mapped"), b"mapped")
        finally:
            s.close()

    # --------------------------------------------------------------- overlap

    def test_overlap_most_specific_rule_logged(self):
        cases = (("api.github.com", "api.github.com"), ("codeload.github.com", ".github.com"),
                 ("github.com", ".github.com"))
        for host, rule in cases:
            r = exchange(self.e.port,
                         request_bytes("GET", f"http://{host}:{self.O}/echo/o", f"{host}:{self.O}"))
            cport = r.client_port
            self.assertEqual(r.status, 200, (host, r))
            rec = self.e.log_for_client(cport)
            self.assertEqual((rec["decision"], rec["rule"]), ("allow", rule), rec)
            r, s, bs = connect_via(self.e.port, f"{host}:{self.E}")
            try:
                self.assertEqual(r.status, 200, (host, r))
                self.assertEqual(echo_roundtrip(s, bs, host.encode()), host.encode())
                cport = s.getsockname()[1]
            finally:
                s.close()
            rec = self.e.log_for_client(cport)
            self.assertEqual((rec["kind"], rec["rule"]), ("connect", rule), rec)

    def test_overlap_config_checks_ok(self):
        p = subprocess.run([egressd_bin(), "-c", self.e.conf_path, "--check"], capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))


if __name__ == "__main__":
    main()
