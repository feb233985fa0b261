#!/usr/bin/env python3
"""Destination-address checks (SPEC: non-public addresses refused unless
`allow_net` covers them; an IP-literal destination, in any spelling, is
allowed only inside `allow_net`). Every address used is loopback, so a
faulty egressd could only ever reach this machine."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, TcpSink,  # noqa: E402
                     assert_denied, base_config, connect_tunnel, http_request, main)

# Spellings of 127.0.0.1 (and ::1) an inet_aton-style parser accepts.
LOOPBACK_SPELLINGS = ["127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0X7F000001",
                      "0x7f.1", "0177.0.0.1", "017700000001", "[::1]", "[::ffff:127.0.0.1]",
                      "[0:0:0:0:0:0:0:1]"]


class NoAllowNet(EgressdTestCase):
    """No allow_net: loopback is non-public, so every test name resolving to
    127.0.0.1 is refused, and every IP literal is refused."""

    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.sink = cls.own(TcpSink("sink"))
        P, S = cls.origin.port, cls.sink.port
        cls.P, cls.S = P, S
        cls.dns.add("allowed.test", a=["127.0.0.1"])
        cls.dns.add("other.test", a=["127.0.0.2"])
        cls.dns.add("v6.test", aaaa=["::1"])
        cls.dns.add("mapped.test", aaaa=["::ffff:127.0.0.1"])
        cls.dns.add("zero.test", a=["0.0.0.0"])
        rules = "".join(f"allow {n} ports={P},{S}\n" for n in
                        ("allowed.test", "other.test", "v6.test", "mapped.test", "zero.test"))
        cls.e = cls.own(Egressd(base_config(rules, allow_net=None), dns=cls.dns)).start()

    def assert_origin_untouched(self):
        self.assertEqual(self.origin.snapshot(), (0, 0), "a refused request reached the origin")
        self.assertEqual(self.sink.snapshot(), (0, 0), "a refused tunnel reached the sink")

    def test_name_resolving_to_loopback_http(self):
        for name in ("allowed.test", "other.test", "v6.test", "mapped.test", "zero.test"):
            r = http_request(self.e, f"http://{name}:{self.P}/echo")
            assert_denied(self, r, 403, "non_public_address")
            self.assertTrue(self.dns.queried(name), "an allowed name is resolved before the check")
        self.assert_origin_untouched()

    def test_name_resolving_to_loopback_connect(self):
        for name in ("allowed.test", "v6.test", "mapped.test"):
            r, s, _ = connect_tunnel(self.e, f"{name}:{self.S}")
            s.close()
            assert_denied(self, r, 403, "non_public_address")
        self.assert_origin_untouched()

    def test_ip_literals_http(self):
        for lit in LOOPBACK_SPELLINGS:
            r = http_request(self.e, f"http://{lit}:{self.P}/echo")
            self.assertIsNotNone(r, lit)
            self.assertEqual((r.status, r.reason), (403, "ip_literal"), f"{lit}: {r!r}")
            assert_denied(self, r, 403, "ip_literal")
        self.assert_origin_untouched()

    def test_ip_literals_connect(self):
        for lit in LOOPBACK_SPELLINGS:
            r, s, _ = connect_tunnel(self.e, f"{lit}:{self.S}")
            s.close()
            self.assertIsNotNone(r, lit)
            self.assertEqual((r.status, r.reason), (403, "ip_literal"), f"{lit}: {r!r}")
        self.assert_origin_untouched()

    def test_ip_literal_never_resolved(self):
        before = len(self.dns.query_log())
        for lit in ("127.1", "2130706433", "0x7f000001"):
            http_request(self.e, f"http://{lit}:{self.P}/")
        self.assertEqual(len(self.dns.query_log()), before, self.dns.query_log()[before:])


class NarrowAllowNet(EgressdTestCase):
    """allow_net 127.0.0.1/32 ports=P: 127.0.0.2 stays non-public; literals
    inside the net reach the origin in any spelling; other ports do not."""

    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        P = cls.P = cls.origin.port
        cls.dns.add("allowed.test", a=["127.0.0.1"])
        cls.dns.add("two.test", a=["127.0.0.2"])
        rules = f"allow allowed.test ports={P}\nallow two.test ports={P}\n"
        cls.e = cls.own(Egressd(base_config(rules, allow_net=f"127.0.0.1/32 ports={P}"),
                                dns=cls.dns)).start()

    def test_name_inside_allow_net(self):
        r = http_request(self.e, f"http://allowed.test:{self.P}/echo/in")
        self.assertEqual(r.status, 200, r)

    def test_name_outside_allow_net(self):
        r = http_request(self.e, f"http://two.test:{self.P}/echo/out")
        assert_denied(self, r, 403, "non_public_address")
        self.assertFalse(any("/echo/out" in x["target"] for x in self.origin.requests))

    def test_literals_inside_allow_net_reach_origin(self):
        for lit in ("127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1"):
            r = http_request(self.e, f"http://{lit}:{self.P}/echo/lit-{lit}")
            self.assertEqual(r.status, 200, f"{lit}: {r!r}")
        self.assertEqual(len([x for x in self.origin.requests if "/echo/lit-" in x["target"]]), 5)

    def test_literal_outside_allow_net_refused(self):
        r = http_request(self.e, f"http://127.0.0.2:{self.P}/echo/lit2")
        assert_denied(self, r, 403, "ip_literal")

    def test_literal_port_outside_allow_net_ports_refused(self):
        other = self.P + 1 if self.P < 65535 else self.P - 1
        r = http_request(self.e, f"http://127.0.0.1:{other}/echo/litport")
        self.assertEqual(r.status, 403, r)


if __name__ == "__main__":
    main()
