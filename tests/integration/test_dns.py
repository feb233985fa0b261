#!/usr/bin/env python3
"""Name resolution as a client sees it: NXDOMAIN/SERVFAIL -> 502 dns_failure,
a silent resolver -> 504 dns_timeout within `timeout dns=`, several
addresses tried in turn, the TTL cache, `hosts FILE` before DNS."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, TcpSink,  # noqa: E402
                     assert_denied, base_config, connect_tunnel, http_request, main)


class Dns(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.sink = cls.own(TcpSink("echo"))
        P, S = cls.P, cls.S = cls.origin.port, cls.sink.port
        d = cls.dns
        d.add("allowed.test", a=["127.0.0.1"])
        d.nxdomain("nx.test")
        d.servfail("servfail.test")
        d.silent("silent.test")
        d.silent("silent2.test")
        d.add("nodata.test", a=[], aaaa=[])
        # 127.0.0.2 refuses (the origin binds 127.0.0.1 only): the next address is tried.
        d.add("multi.test", a=["127.0.0.2", "127.0.0.1"])
        d.add("cached.test", a=["127.0.0.1"], ttl=300)
        d.add("shortttl.test", a=["127.0.0.1"], ttl=1)
        d.add("hostsonly.test", a=["127.0.0.9"])  # must never be asked: hosts file wins
        names = ["allowed.test", "nx.test", "servfail.test", "silent.test", "silent2.test",
                 "nodata.test", "multi.test", "cached.test", "shortttl.test", "hostsonly.test",
                 "MixedCase.test"]
        d.add("mixedcase.test", a=["127.0.0.1"])
        rules = "".join(f"allow {n} ports={P},{S}\n" for n in names)
        conf = base_config(rules, timeouts={"dns": "1s"}, hosts="{dir}/hosts")
        cls.e = cls.own(Egressd(conf, dns=cls.dns,
                                files={"hosts": "# test hosts file\n127.0.0.1 hostsonly.test\n"})).start()

    def test_nxdomain_is_502_dns_failure(self):
        r = http_request(self.e, f"http://nx.test:{self.P}/")
        assert_denied(self, r, 502, "dns_failure")
        r, s, _ = connect_tunnel(self.e, f"nx.test:{self.S}")
        s.close()
        assert_denied(self, r, 502, "dns_failure")
        self.assertTrue(self.dns.queried("nx.test"))

    def test_servfail_is_502_dns_failure(self):
        r = http_request(self.e, f"http://servfail.test:{self.P}/")
        assert_denied(self, r, 502, "dns_failure")

    def test_no_addresses_is_502_dns_failure(self):
        r = http_request(self.e, f"http://nodata.test:{self.P}/")
        assert_denied(self, r, 502, "dns_failure")

    def test_silent_resolver_is_504_dns_timeout(self):
        t0 = time.monotonic()
        r = http_request(self.e, f"http://silent.test:{self.P}/", timeout=15)
        elapsed = time.monotonic() - t0
        assert_denied(self, r, 504, "dns_timeout")
        self.assertLess(elapsed, 5.0, "timeout dns=1s bounds the whole lookup")
        self.assertTrue(self.dns.queried("silent.test"))

    def test_silent_resolver_connect_is_504(self):
        t0 = time.monotonic()
        r, s, _ = connect_tunnel(self.e, f"silent2.test:{self.S}", timeout=15)
        s.close()
        assert_denied(self, r, 504, "dns_timeout")
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_pending_lookup_does_not_block_others(self):
        result = {}

        def slow():
            result["r"] = http_request(self.e, f"http://silent.test:{self.P}/slow", timeout=15)
        t = threading.Thread(target=slow)
        t.start()
        try:
            time.sleep(0.1)
            t0 = time.monotonic()
            for i in range(3):
                r = http_request(self.e, f"http://allowed.test:{self.P}/echo/meanwhile-{i}")
                self.assertEqual(r.status, 200, r)
            self.assertLess(time.monotonic() - t0, 0.9, "requests waited for another client's DNS")
        finally:
            t.join(20)
        self.assertEqual(result["r"].status, 504)

    def test_addresses_tried_in_turn(self):
        r = http_request(self.e, f"http://multi.test:{self.P}/echo/multi")
        self.assertEqual(r.status, 200, r)
        r, s, bs = connect_tunnel(self.e, f"multi.test:{self.S}")
        try:
            self.assertEqual(r.status, 200, r)
            s.sendall(b"abc")
            self.assertEqual(bs.read_exact(3), b"abc")
        finally:
            s.close()

    # The cache may be per worker thread (base_config runs `threads 2`): a
    # name is then looked up at most once per worker while its TTL lasts.
    THREADS = 2

    def test_cache_honours_ttl(self):
        for i in range(10):
            r = http_request(self.e, f"http://cached.test:{self.P}/echo/c{i}")
            self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(self.dns.count("cached.test", "A"), 1)
        self.assertLessEqual(self.dns.count("cached.test", "A"), self.THREADS,
                             f"a 300 s answer was not cached: {self.dns.query_log()}")

    def test_cache_expires_after_ttl(self):
        for i in range(8):  # warm every worker's cache
            r = http_request(self.e, f"http://shortttl.test:{self.P}/echo/t{i}")
            self.assertEqual(r.status, 200, r)
        a1 = self.dns.count("shortttl.test", "A")
        self.assertGreaterEqual(a1, 1)
        time.sleep(2.5)  # the TTL is 1 s
        for i in range(8):
            r = http_request(self.e, f"http://shortttl.test:{self.P}/echo/u{i}")
            self.assertEqual(r.status, 200, r)
        self.assertGreater(self.dns.count("shortttl.test", "A"), a1,
                           "an A record with TTL 1 s was still used 2.5 s later")

    def test_hosts_file_before_dns(self):
        r = http_request(self.e, f"http://hostsonly.test:{self.P}/echo/hosts")
        self.assertEqual(r.status, 200, r)
        self.assertFalse(self.dns.queried("hostsonly.test"), self.dns.query_log())

    def test_names_case_insensitive(self):
        r = http_request(self.e, f"http://MIXEDCASE.TEST:{self.P}/echo/mixed")
        self.assertEqual(r.status, 200, r)


class ResolverFailover(EgressdTestCase):
    """`resolver A B`: when the first server never answers, the second one
    answers within the lookup's time bound."""

    @classmethod
    def setUpClass(cls):
        cls.dead_dns = cls.own(DnsServer())
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.dead_dns.silent("allowed.test")
        cls.dns.add("allowed.test", a=["127.0.0.1"])
        conf = base_config(f"allow allowed.test ports={cls.origin.port}\n", timeouts={"dns": "4s"})
        cls.e = cls.own(Egressd(conf, resolver=f"{cls.dead_dns.address} {cls.dns.address}")).start()

    def test_second_resolver_used(self):
        t0 = time.monotonic()
        r = http_request(self.e, f"http://allowed.test:{self.origin.port}/echo/failover", timeout=20)
        self.assertEqual(r.status, 200, r)
        self.assertLess(time.monotonic() - t0, 6.0)
        self.assertTrue(self.dns.queried("allowed.test"))


if __name__ == "__main__":
    main()
