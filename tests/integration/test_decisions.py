#!/usr/bin/env python3
"""Allowlist decisions as a client sees them (SPEC "Patterns and decisions",
"What a client is told"): status, X-Egressd-Reason, one-line body, for plain
HTTP and CONNECT; and "A name that is denied is never resolved"."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, TcpSink,  # noqa: E402
                     assert_denied, base_config, closed_port, connect_tunnel, curl_status,
                     free_port, http_request, main)

# Names that are denied in this file: none of them may ever reach the resolver.
DENIED_NAMES = ["evil.test", "bad.wild.test", "portonly.test", "methodonly.test",
                "allowed.test.evil.test", "evilallowed.test", "deep.bad.wild.test"]


class Decisions(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.sink = cls.own(TcpSink("echo"))
        P, S = cls.origin.port, cls.sink.port
        cls.P, cls.S = P, S
        cls.dead = closed_port()
        cls.other_port = free_port()
        for name in ["allowed.test", "good.wild.test", "wild.test", "method.test", "dead.test",
                     "self.test"] + DENIED_NAMES:
            cls.dns.add(name, a=["127.0.0.1"])
        rules = f"""
allow allowed.test ports={P},{S}
allow .wild.test ports={P}
deny bad.wild.test
deny *.bad.wild.test
allow portonly.test ports={P}
allow methodonly.test methods=GET ports={P}
allow method.test methods=GET,HEAD ports={P},{S}
allow dead.test ports={cls.dead}
allow self.test ports={{port}}
"""
        cls.e = cls.own(Egressd(base_config(rules), dns=cls.dns)).start()

    @classmethod
    def tearDownClass(cls):
        try:
            leaked = [n for n in DENIED_NAMES if cls.dns.queried(n)]
            if leaked:
                raise AssertionError(f"denied names were resolved: {leaked}; "
                                     f"queries: {cls.dns.query_log()}")
        finally:
            super().tearDownClass()

    def assert_not_resolved(self, name):
        self.assertFalse(self.dns.queried(name), f"{name} was sent to the resolver: {self.dns.query_log()}")

    # ---- allowed

    def test_allowed_http(self):
        r = http_request(self.e, f"http://allowed.test:{self.P}/echo/ok")
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.reason)

    def test_allowed_case_insensitive_and_trailing_dot(self):
        for host in ("ALLOWED.Test", "allowed.test."):
            r = http_request(self.e, f"http://{host}:{self.P}/echo/case")
            self.assertEqual(r.status, 200, f"{host}: {r!r}")

    def test_suffix_pattern(self):
        for host in ("good.wild.test", "wild.test"):
            r = http_request(self.e, f"http://{host}:{self.P}/echo/wild")
            self.assertEqual(r.status, 200, f"{host}: {r!r}")

    # ---- not_allowed

    def test_not_allowed_http(self):
        r = http_request(self.e, f"http://evil.test:{self.P}/x")
        assert_denied(self, r, 403, "not_allowed", name="evil.test")
        self.assert_not_resolved("evil.test")

    def test_not_allowed_connect(self):
        r, s, _ = connect_tunnel(self.e, "evil.test:443")
        s.close()
        assert_denied(self, r, 403, "not_allowed", name="evil.test")
        self.assert_not_resolved("evil.test")

    def test_not_allowed_curl(self):
        st, body, hdrs, p = curl_status("-x", self.e.url, f"http://evil.test:{self.P}/")
        self.assertEqual(st, 403)
        self.assertIn("x-egressd-reason: not_allowed", hdrs.lower())

    def test_lookalike_names_not_allowed(self):
        for host in ("allowed.test.evil.test", "evilallowed.test"):
            r = http_request(self.e, f"http://{host}:{self.P}/")
            assert_denied(self, r, 403, "not_allowed")
            self.assert_not_resolved(host)

    # ---- denied_rule

    def test_deny_rule_overrides_suffix_allow(self):
        r = http_request(self.e, f"http://bad.wild.test:{self.P}/")
        assert_denied(self, r, 403, "denied_rule")
        r = http_request(self.e, f"http://deep.bad.wild.test:{self.P}/")
        assert_denied(self, r, 403, "denied_rule")
        r, s, _ = connect_tunnel(self.e, f"bad.wild.test:{self.P}")
        s.close()
        assert_denied(self, r, 403, "denied_rule")
        self.assert_not_resolved("bad.wild.test")
        self.assert_not_resolved("deep.bad.wild.test")

    # ---- port

    def test_wrong_port_http(self):
        r = http_request(self.e, f"http://portonly.test:{self.other_port}/")
        assert_denied(self, r, 403, "port")
        self.assert_not_resolved("portonly.test")

    def test_wrong_port_connect(self):
        r, s, _ = connect_tunnel(self.e, f"portonly.test:{self.other_port}")
        s.close()
        assert_denied(self, r, 403, "port")
        self.assert_not_resolved("portonly.test")

    def test_default_port_80_not_in_ports(self):
        r = http_request(self.e, "http://portonly.test/")
        assert_denied(self, r, 403, "port")

    # ---- method

    def test_method_not_allowed(self):
        r = http_request(self.e, f"http://methodonly.test:{self.P}/echo", method="POST", body=b"x")
        assert_denied(self, r, 403, "method")
        r = http_request(self.e, f"http://methodonly.test:{self.P}/echo", method="DELETE")
        assert_denied(self, r, 403, "method")
        self.assert_not_resolved("methodonly.test")

    def test_method_allowed(self):
        r = http_request(self.e, f"http://method.test:{self.P}/echo/m")
        self.assertEqual(r.status, 200, r)
        r = http_request(self.e, f"http://method.test:{self.P}/echo/m", method="PUT", body=b"x")
        assert_denied(self, r, 403, "method")

    def test_methods_rule_still_admits_connect(self):
        # SPEC: "a rule with methods= still admits CONNECT to its ports"
        r, s, bs = connect_tunnel(self.e, f"method.test:{self.S}")
        try:
            self.assertEqual(r.status, 200, r)
            s.sendall(b"ping")
            self.assertEqual(bs.read_exact(4), b"ping")
        finally:
            s.close()

    # ---- upstream failures

    def test_refused_upstream_http(self):
        r = http_request(self.e, f"http://dead.test:{self.dead}/")
        assert_denied(self, r, 502, "upstream_unreachable")

    def test_refused_upstream_connect(self):
        r, s, _ = connect_tunnel(self.e, f"dead.test:{self.dead}")
        s.close()
        assert_denied(self, r, 502, "upstream_unreachable")

    # ---- self

    def test_own_listener_is_refused(self):
        # allow_net 127.0.0.0/8 covers egressd's own address: still "self".
        r = http_request(self.e, f"http://127.0.0.1:{self.e.port}/")
        assert_denied(self, r, 403, "self")
        r, s, _ = connect_tunnel(self.e, f"127.0.0.1:{self.e.port}")
        s.close()
        assert_denied(self, r, 403, "self")
        r = http_request(self.e, f"http://self.test:{self.e.port}/")
        assert_denied(self, r, 403, "self")

    # ---- malformed authority

    def test_connect_without_port_is_400(self):
        r, s, _ = connect_tunnel(self.e, "allowed.test")
        s.close()
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 400, r)

    def test_still_serving(self):
        r = http_request(self.e, f"http://allowed.test:{self.P}/echo/alive")
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    main()
