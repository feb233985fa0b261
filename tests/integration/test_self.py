#!/usr/bin/env python3
"""The self check (SPEC: 403 `self` for "egressd's own ports — listeners,
admin, DNS, forwards — on any address of the machine it runs on, whatever
`allow_net` says").

egressd runs in a network namespace this test creates, listening on 0.0.0.0
(proxy, admin, a forward, dns_listen), with a veth pair whose end carries a
non-loopback address X (and an IPv6 one), and `allow_net` covering X's
network. Every way of naming egressd's own ports on X — IP literal in any
spelling, a hosts-file name resolving to X, CONNECT and absolute-form GET —
is 403 `self`; an address added to an interface after start is refused too;
a real origin on X's network (another port) is still reachable. Nothing
leaves the namespace; everything is removed at the end.
"""

import contextlib
import ipaddress
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Egressd, EgressdTestCase, HttpOrigin, assert_denied, connect_tunnel,  # noqa: E402
                     http_request, main, request_raw, wait_until)
from test_container import in_netns, listening, require_netns, sh  # noqa: E402

PID = os.getpid()
NS = f"egself{PID}"
VA, VB = f"sa{PID}", f"sb{PID}"
X, X6 = "10.214.0.1", "fd00:214::1"
LATER = "10.214.0.9"  # added to the other veth end after egressd started
P, A, F, D = 13128, 19090, 15432, 15353  # proxy, admin, forward, dns_listen
P2, A2 = 13129, 19091  # the second egressd: allow_net not covering X


def netns(fn):
    return in_netns(NS, fn)


class NsEgressd(Egressd):
    """An Egressd started through `ip netns exec NS` (which execs egressd in
    place: the pid, the harness's parent-death signal and stop() stay right)."""

    def start(self, wait=False, args=None):
        real_popen = subprocess.Popen

        def popen(cmd, *a, **kw):
            return real_popen(["ip", "netns", "exec", NS] + list(cmd), *a, **kw)
        subprocess.Popen = popen  # the harness's subprocess module is this one
        try:
            return super().start(wait=False, args=args)
        finally:
            subprocess.Popen = real_popen


class SelfCheck(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        require_netns()
        cls.created = False
        try:
            sh("ip", "netns", "add", NS)
            cls.created = True
            sh("ip", "-n", NS, "link", "set", "lo", "up")
            sh("ip", "-n", NS, "link", "add", VA, "type", "veth", "peer", "name", VB)
            sh("ip", "-n", NS, "addr", "add", f"{X}/24", "dev", VA)
            sh("ip", "-n", NS, "-6", "addr", "add", f"{X6}/64", "dev", VA, "nodad")
            sh("ip", "-n", NS, "link", "set", VA, "up")
            sh("ip", "-n", NS, "link", "set", VB, "up")
            out = sh("ip", "-n", NS, "-6", "-o", "addr", "show", "dev", VA, "scope", "link").stdout
            cls.link_local = out.split("inet6 ", 1)[1].split("/", 1)[0] if "inet6 " in out else None
            cls.origin = netns(lambda: HttpOrigin(addr=X))
            cls.OP = cls.origin.port
            allowed_ports = ",".join(str(p) for p in (P, A, F, D, cls.OP))
            conf = "\n".join([
                f"listen 0.0.0.0:{P}",
                f"admin 0.0.0.0:{A}",
                f"forward 0.0.0.0:{F} {X}:{cls.OP}",
                f"dns_listen 0.0.0.0:{D} answer={X}",
                "resolver 127.0.0.1:1",
                "hosts {dir}/hosts",
                "access_log {access_log}",
                "threads 2",
                "timeout connect=2s drain=1s",
                # allow_net covers egressd's own addresses: `self` must still win.
                "allow_net 10.214.0.0/24 fd00:214::/64 fe80::/10 127.0.0.0/8",
                f"allow self.test ports={allowed_ports}",
                "",
            ])
            cls.e = cls.own(NsEgressd(conf, files={"hosts": f"{X} self.test\n"}, port=P))
            cls.e.start()
            # A second egressd whose allow_net does not cover its own address:
            # its own ports there are `self` too, not ip_literal/non_public_address.
            conf2 = "\n".join([
                f"listen 0.0.0.0:{P2}", f"admin 0.0.0.0:{A2}", "resolver 127.0.0.1:1",
                "hosts {dir}/hosts", "access_log {access_log}", "threads 1",
                "allow_net 10.214.0.200/32", f"allow self.test ports={P2},{A2}", ""])
            cls.e2 = cls.own(NsEgressd(conf2, files={"hosts": f"{X} self.test\n"}, port=P2))
            cls.e2.start()

            def up(e, *ports):
                if e.proc.poll() is not None:
                    raise AssertionError(f"egressd exited at start:\n{e.stderr()}")
                return all(listening(e.proc.pid, p) for p in ports)
            wait_until(lambda: up(cls.e, P, A, F, D) and up(cls.e2, P2, A2), 10,
                       what="egressd listening in the namespace")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if getattr(cls, "created", False):
                pids = sh("ip", "netns", "pids", NS, check=False).stdout.split()
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), 9)
                sh("ip", "netns", "del", NS, check=False)
                cls.created = False

    def connect(self, authority):
        return netns(lambda: connect_tunnel(self.e, authority))

    def get(self, url):
        return netns(lambda: http_request(self.e, url))

    def assert_self(self, r, what):
        self.assertIsNotNone(r, f"{what}: no response")
        self.assertEqual((r.status, r.reason), (403, "self"), f"{what}: {r!r}")
        assert_denied(self, r, 403, "self")

    def test_connect_own_ports_by_literal(self):
        for port in (P, A, F, D):
            for spelling in (X, str(int(ipaddress.ip_address(X))), "0x0ad60001", "10.214.1",
                             f"[{X6}]", f"[::ffff:{X}]"):
                r, s, _ = self.connect(f"{spelling}:{port}")
                s.close()
                self.assert_self(r, f"CONNECT {spelling}:{port}")

    def test_connect_link_local(self):
        if not self.link_local:
            self.skipTest("no IPv6 link-local address on the veth")
        r, s, _ = self.connect(f"[{self.link_local}]:{P}")
        s.close()
        self.assert_self(r, f"CONNECT [{self.link_local}]:{P}")

    def test_connect_own_ports_by_name(self):
        for port in (P, A, F, D):
            r, s, _ = self.connect(f"self.test:{port}")
            s.close()
            self.assert_self(r, f"CONNECT self.test:{port}")

    def test_admin_metrics_through_the_proxy(self):
        for host in (X, "self.test", f"[{X6}]"):
            r = self.get(f"http://{host}:{A}/metrics")
            self.assert_self(r, f"GET http://{host}:{A}/metrics")
            self.assertNotIn(b"egressd_requests_total", r.body)

    def test_admin_api_through_the_proxy(self):
        # The grants API lives on the admin port: an agent must never reach it
        # through the proxy, by name or by address (issue 10, "fail closed").
        body = b'{"agent": "a", "host": "evil.example", "ttl": "1h"}'
        for host in (X, "self.test"):
            r = self.get_raw(f"POST http://{host}:{A}/v1/grants HTTP/1.1\r\nHost: {host}:{A}\r\n"
                             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                             f"Connection: close\r\n\r\n".encode() + body)
            self.assert_self(r, f"POST http://{host}:{A}/v1/grants")

    def get_raw(self, data):
        return netns(lambda: request_raw(self.e, data)[0])

    def test_address_added_after_start(self):
        r, s, _ = self.connect(f"{LATER}:{A}")  # not an address yet: not self (unreachable)
        s.close()
        self.assertNotEqual(r.reason, "self", repr(r))
        sh("ip", "-n", NS, "addr", "add", f"{LATER}/24", "dev", VB)
        try:
            deadline = time.monotonic() + 2.0
            while True:
                r, s, _ = self.connect(f"{LATER}:{A}")
                s.close()
                if r is not None and r.reason == "self" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assert_self(r, f"CONNECT {LATER}:{A} after the address was added")
            r = self.get(f"http://{LATER}:{A}/metrics")
            self.assert_self(r, f"GET http://{LATER}:{A}/metrics after the address was added")
        finally:
            sh("ip", "-n", NS, "addr", "del", f"{LATER}/24", "dev", VB, check=False)
        # Removed again: no longer egressd's (nothing answers there now).
        deadline = time.monotonic() + 2.0
        while True:
            r, s, _ = self.connect(f"{LATER}:{A}")
            s.close()
            if r is not None and r.reason != "self" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertNotEqual(r.reason, "self", f"{LATER} still counted as egressd's after removal: {r!r}")

    def test_other_ports_on_own_network_still_reachable(self):
        # Same address, a port that is not egressd's: allow_net lets it through.
        r = self.get(f"http://{X}:{self.OP}/echo/ok")
        self.assertEqual(r.status, 200, r)
        r = self.get(f"http://self.test:{self.OP}/echo/ok")
        self.assertEqual(r.status, 200, r)

    def test_self_wins_over_ip_literal_and_non_public(self):
        for authority in (f"{X}:{P2}", f"{X}:{A2}", f"self.test:{A2}", f"[{X6}]:{P2}"):
            r, s, _ = netns(lambda: connect_tunnel(self.e2, authority))
            s.close()
            self.assert_self(r, f"CONNECT {authority} (allow_net not covering it)")
        r = netns(lambda: http_request(self.e2, f"http://self.test:{A2}/metrics"))
        self.assert_self(r, "GET http://self.test:A2/metrics (allow_net not covering it)")
        # Not egressd's port: the usual reasons.
        r, s, _ = netns(lambda: connect_tunnel(self.e2, f"{X}:{self.OP}"))
        s.close()
        self.assertEqual(r.reason, "ip_literal", repr(r))

    def test_log_says_self(self):
        r, s, _ = self.connect(f"{X}:{A}")
        s.close()
        self.assert_self(r, "CONNECT X:admin")
        self.e.wait_log(lambda x: x.get("reason") == "self" and x.get("port") == A
                        and x.get("decision") == "deny", what="a self line for the admin port")


if __name__ == "__main__":
    main()
