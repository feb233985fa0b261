#!/usr/bin/env python3
"""At the descriptor limit (README "Overload"): egressd runs under
`prlimit --nofile=N:N`, idle clients use up its descriptors, and then

  - a newcomer on the proxy port gets 503 `overloaded` with a one-line body
    at once (not a hang until its own timeout), and a newcomer on a
    mode=sni listener is closed at once;
  - a connection opened before the limit still works;
  - a /metrics scrape pending at the limit does not spin the admin thread
    (the process's CPU time over 2 s stays low; before the fix the admin
    loop retried accept ~19,000 times a second), and is answered once
    descriptors are free again;
  - the refusals are counted (egressd_requests_total{reason="overloaded"})
    and reported on stderr, rate-limited.
"""

import contextlib
import unittest
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     assert_denied, base_config, free_port, main, read_response, wait_until)
from modes_util import metric_value, scrape, wait_listening  # noqa: E402

NOFILE = 96
CLK_TCK = os.sysconf("SC_CLK_TCK")


class LimitedEgressd(Egressd):
    """An Egressd started under `prlimit --nofile=N:N` (prlimit execs it in
    place: same pid, and the harness's parent-death signal still applies)."""

    def start(self, wait=True, args=None):
        real_popen = subprocess.Popen

        def popen(cmd, *a, **kw):
            return real_popen(["prlimit", f"--nofile={NOFILE}:{NOFILE}", "--"] + list(cmd), *a, **kw)
        subprocess.Popen = popen  # the harness's subprocess module is this one
        try:
            return super().start(wait=wait, args=args)
        finally:
            subprocess.Popen = real_popen


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    """utime + stime of every thread of pid, and of the busiest one."""
    total, busiest = 0, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            total += t
            busiest = max(busiest, t)
    return total / CLK_TCK, busiest / CLK_TCK


def readable_within(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(1 << 16)
    except socket.timeout:
        return None
    except ConnectionResetError:
        return b""


class Overload(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        if subprocess.run(["which", "prlimit"], capture_output=True).returncode != 0:
            raise unittest.SkipTest("prlimit (util-linux) is not installed")
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.dns.add("allowed.test", a=["127.0.0.1"])
        cls.P = cls.origin.port
        cls.admin = free_port()
        cls.sni = free_port()
        cls.fwd = free_port()
        conf = base_config(f"allow allowed.test ports={cls.P}\n",
                           extra=f"admin 127.0.0.1:{cls.admin}\nlisten 127.0.0.1:{cls.sni} mode=sni\n"
                                 f"forward 127.0.0.1:{cls.fwd} 127.0.0.1:{cls.P}")
        cls.e = cls.own(LimitedEgressd(conf, dns=cls.dns)).start()
        wait_listening(cls.admin, cls.sni, cls.fwd)

    def test_at_the_descriptor_limit(self):
        e, pid = self.e, self.e.proc.pid
        url = f"http://allowed.test:{self.P}/echo/"

        def get(sock, path):
            sock.sendall(f"GET {url}{path} HTTP/1.1\r\nHost: allowed.test:{self.P}\r\n\r\n".encode())
            return read_response(BufferedSocket(sock))

        # A client with a kept-alive upstream, opened before the limit.
        early = socket.create_connection(e.address, timeout=10)
        idle = []
        try:
            r = get(early, "before")
            self.assertEqual(r.status, 200, r)

            # Fill egressd's descriptors with idle clients until one is refused.
            refused = None
            for _ in range(NOFILE + 20):
                before = fd_count(pid)
                s = socket.create_connection(e.address, timeout=10)
                idle.append(s)
                # Either egressd took it (one descriptor more) or refused it.
                deadline = time.monotonic() + 2.0
                while refused is None and fd_count(pid) <= before and time.monotonic() < deadline:
                    refused = readable_within(s, 0.02)
                if refused is not None:
                    break
            self.assertIsNotNone(refused, f"no client refused with {len(idle)} open, "
                                          f"{fd_count(pid)} descriptors in egressd")
            self.assertTrue(refused.startswith(b"HTTP/1.1 503"), refused)
            self.assertIn(b"X-Egressd-Reason: overloaded", refused)

            # A newcomer with a request: told at once.
            t0 = time.monotonic()
            s = socket.create_connection(e.address, timeout=10)
            with contextlib.closing(s):
                r = get(s, "newcomer")
                took = time.monotonic() - t0
            assert_denied(self, r, 503, "overloaded")
            self.assertEqual(r.body, b"egressd: too many open connections (retry later)\n")
            self.assertLess(took, 1.5, "the newcomer waited instead of being told")

            # mode=sni: closed at once (a TLS client cannot read HTTP).
            s = socket.create_connection(("127.0.0.1", self.sni), timeout=10)
            with contextlib.closing(s):
                self.assertEqual(readable_within(s, 1.5), b"", "sni newcomer not closed at once")
            # A forward: closed at once as well (plain TCP, nothing to tell).
            s = socket.create_connection(("127.0.0.1", self.fwd), timeout=10)
            with contextlib.closing(s):
                self.assertEqual(readable_within(s, 1.5), b"", "forward newcomer not closed at once")

            # The connection from before the limit still works.
            r = get(early, "after")
            self.assertEqual(r.status, 200, r)

            # A scrape pending at the limit: the admin thread must not spin.
            scraper = socket.create_connection(("127.0.0.1", self.admin), timeout=10)
            idle.append(scraper)
            scraper.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            time.sleep(0.3)
            before, before_max = cpu_seconds(pid)
            time.sleep(2.0)
            after, after_max = cpu_seconds(pid)
            print(f"\negressd CPU over 2 s with a scrape pending at the fd limit: "
                  f"{after - before:.2f} s (busiest thread {after_max - before_max:.2f} s)", file=sys.stderr)
            self.assertLess(after - before, 0.3, "egressd burns CPU at the descriptor limit")
            idle.remove(scraper)
        finally:
            for s in idle:
                s.close()

        # Descriptors free again: the scrape that waited is answered now,
        # and the refusals were counted.
        with contextlib.closing(scraper):
            r = read_response(BufferedSocket(scraper))
            self.assertIsNotNone(r, "the pending scrape was never answered")
            self.assertEqual(r.status, 200, r)
        text = wait_until(lambda: (lambda t: t if metric_value(t, "egressd_requests_total", kind="sni",
                                                                 reason="overloaded") else None)(
            scrape(self.admin)), 10, what="overloaded counted")
        self.assertGreaterEqual(metric_value(text, "egressd_requests_total", kind="http", decision="deny",
                                             reason="overloaded"), 2)
        self.assertGreaterEqual(metric_value(text, "egressd_requests_total", kind="sni", decision="deny",
                                             reason="overloaded"), 1)
        # A forward newcomer is refused at accept, or (when a descriptor was
        # free for a moment) accepted and then closed because no upstream
        # socket could be opened: closed at once either way.
        fwd = [metric_value(text, "egressd_requests_total", kind="forward", reason=r)
               for r in ("overloaded", "upstream_unreachable")]
        self.assertTrue(any(fwd), f"forward newcomer not counted: {fwd}")
        err = e.stderr()
        self.assertIn("cannot accept", err)
        self.assertLessEqual(err.count("cannot accept"), 3, "the stderr line is not rate-limited")
        with contextlib.closing(early):
            r = get(early, "end")
            self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    main()
