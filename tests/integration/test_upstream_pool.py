#!/usr/bin/env python3
"""The per-worker pool of idle upstream connections (README "What a client is
told"): clients that close after every request reuse the origin connection
another client left, within one second and only under the config snapshot
its addresses were checked under."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, base_config, http_request,  # noqa: E402
                     main, wait_until)
from modes_util import reload_count  # noqa: E402


class UpstreamPool(EgressdTestCase):
    def setUp(self):
        self.dns = self.own(DnsServer())
        self.origin = self.own(HttpOrigin())
        self.dns.add("pool.test", a=["127.0.0.1"])
        # One worker: the pool is per worker.
        conf = base_config(f"allow pool.test ports={self.origin.port}\n").replace("threads 2", "threads 1")
        self.e = self.own(Egressd(conf, dns=self.dns)).start()
        self.url = f"http://pool.test:{self.origin.port}/echo"

    def get(self):
        r = http_request(self.e, self.url)  # a new client connection, Connection: close
        self.assertEqual(r.status, 200, r)

    def test_closing_clients_share_one_origin_connection(self):
        before = self.origin.tcp_connections
        for _ in range(3):
            self.get()
        self.assertEqual(self.origin.tcp_connections - before, 1,
                         "three Connection: close clients in a row should reuse one origin connection")

    def test_reload_is_never_bridged_by_a_pooled_connection(self):
        self.get()
        n = reload_count(self.e)
        before = self.origin.tcp_connections
        self.e.send_signal(signal.SIGHUP)
        wait_until(lambda: reload_count(self.e) > n, 10, what="reload")
        self.get()
        self.assertEqual(self.origin.tcp_connections - before, 1,
                         "a connection checked under the old config was reused after a reload")

    def test_parked_connection_expires(self):
        self.get()
        before = self.origin.tcp_connections
        time.sleep(1.3)  # the behaviour under test is the one-second lifetime
        self.get()
        self.assertEqual(self.origin.tcp_connections - before, 1, "a connection parked for over 1 s was reused")


if __name__ == "__main__":
    main()
