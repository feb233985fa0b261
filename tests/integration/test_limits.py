#!/usr/bin/env python3
"""Per-rule limits through the real binary (SPEC "Allow options": rate=,
burst=, per=client, conns=, bandwidth=; "limit max_conns="; "What a client
is told": 429 + Retry-After, rate_limited / conns_limited).

Clients are raw sockets, bound to chosen loopback source addresses where the
test needs distinct clients (Linux routes all of 127/8 to lo)."""

import contextlib
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     TcpSink, assert_denied, base_config, connect_from, connect_via,
                     echo_roundtrip, expect_closed, free_port, gen_bytes, main, proxy_get,
                     read_response, request_head, sha256, source_bindable, wait_until)
from limits_util import (retry_after_ok, scrape, wait_metrics)  # noqa: E402

MIB = 1 << 20


class Limits(EgressdTestCase):
    NAMES = ("rate.test", "keep.test", "tunnel.test", "perclient.test", "conns.test", "conns1.test",
             "slow.test", "fast.test", "reload.test", "reloadpc.test", "honest.test")

    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        cls.hash = cls.own(TcpSink("hash"))
        for n in cls.NAMES:
            cls.dns.add(n, a=["127.0.0.1"])
        O, E, H = cls.origin.port, cls.echo.port, cls.hash.port
        cls.O, cls.E, cls.H = O, E, H
        cls.admin_port = free_port()
        rules = f"""
allow rate.test ports={O} rate=3/m
allow keep.test ports={O} rate=2/m
allow tunnel.test ports={O},{E} rate=3/m
allow perclient.test ports={O} rate=2/m per=client
allow conns.test ports={O},{E} conns=2
allow conns1.test ports={O} conns=1
allow slow.test ports={O},{E},{H} bandwidth=512K/s
allow fast.test ports={O},{E}
allow reload.test ports={O} rate=2/m
allow reloadpc.test ports={O} rate=1/m per=client
allow honest.test ports={O} rate=30/m burst=1
"""
        cls.conf = base_config(rules, extra=f"admin 127.0.0.1:{cls.admin_port}")
        cls.e = cls.own(Egressd(cls.conf, dns=cls.dns)).start()

    # ---- helpers

    def get(self, host, path="/echo", source=None, port=None):
        return proxy_get(self.e.port, f"http://{host}:{port or self.O}{path}", source=source)

    def assert_429(self, r, reason, host, max_retry):
        assert_denied(self, r, 429, reason, host)
        self.assertTrue(retry_after_ok(r), f"Retry-After not whole seconds: {r!r}")
        ra = int(r.header("Retry-After"))
        self.assertGreaterEqual(ra, 1, repr(r))
        self.assertLessEqual(ra, max_retry, repr(r))
        return ra

    def log_lines(self, host):
        return [x for x in self.e.read_log() if x.get("host") == host and "alert" not in x]

    # ---- rate=

    def test_rate_plain_http(self):
        statuses, last = [], None
        for _ in range(4):
            last = self.get("rate.test")
            self.assertIsNotNone(last, "no response")
            statuses.append(last.status)
        self.assertEqual(statuses, [200, 200, 200, 429], repr(last))
        self.assert_429(last, "rate_limited", "rate.test", 20)
        # The refused request never reached the origin.
        at_origin = [r for r in self.origin.requests if r["headers"] and
                     any(k.lower() == "host" and v.startswith("rate.test") for k, v in r["headers"])]
        self.assertEqual(len(at_origin), 3)
        lines = self.e.wait_log(lambda x: x.get("host") == "rate.test" and x.get("status") == 429)
        self.assertEqual(lines["decision"], "deny")
        self.assertEqual(lines["reason"], "rate_limited")
        self.assertEqual(lines["rule"], "rate.test")

    def test_rate_keepalive_connection(self):
        # The bucket counts requests, not connections: on one kept-alive
        # connection the 4th request is refused and the connection survives.
        s = connect_from(self.e.port)
        with contextlib.closing(s):
            bs = BufferedSocket(s)
            got = []
            for i in range(3):
                s.sendall(request_head("GET", f"http://keep.test:{self.O}/echo/ka{i}", close=False))
                r = read_response(bs)
                self.assertIsNotNone(r)
                got.append(r.status)
            # rate=2/m: two tokens, then a refusal on the same connection
            self.assertEqual(got, [200, 200, 429])
            self.assert_429(r, "rate_limited", "keep.test", 30)
            # ... which stays open for the next request.
            s.sendall(request_head("GET", f"http://fast.test:{self.O}/echo/ka-after", close=True))
            r = read_response(bs)
            self.assertIsNotNone(r, "the connection was closed after a 429")
            self.assertEqual(r.status, 200)

    def test_rate_connect(self):
        socks, statuses, last = [], [], None
        try:
            for i in range(4):
                r, s, bs = connect_via(self.e.port, f"tunnel.test:{self.E}")
                socks.append(s)
                self.assertIsNotNone(r, "no answer to CONNECT")
                statuses.append(r.status)
                last = r
                if r.status == 200:
                    payload = f"tunnel {i}\n".encode()
                    self.assertEqual(echo_roundtrip(s, bs, payload), payload)
            self.assertEqual(statuses, [200, 200, 200, 429], repr(last))
            self.assert_429(last, "rate_limited", "tunnel.test", 20)
        finally:
            for s in socks:
                s.close()
        line = self.e.wait_log(lambda x: x.get("host") == "tunnel.test" and x.get("status") == 429)
        self.assertEqual((line["kind"], line["reason"]), ("connect", "rate_limited"))

    def test_per_client(self):
        a, b = "127.0.2.1", "127.0.2.2"
        if not (source_bindable(a) and source_bindable(b)):
            self.skipTest("cannot bind 127.0.2.x")
        got_a = [self.get("perclient.test", source=a) for _ in range(3)]
        self.assertEqual([r.status for r in got_a], [200, 200, 429], repr(got_a[-1]))
        self.assert_429(got_a[-1], "rate_limited", "perclient.test", 30)
        # B has its own bucket, still full.
        got_b = [self.get("perclient.test", source=b) for _ in range(3)]
        self.assertEqual([r.status for r in got_b], [200, 200, 429], repr(got_b[-1]))
        # A is still refused (its bucket was not refilled by B's traffic).
        self.assertEqual(self.get("perclient.test", source=a).status, 429)
        # (the access log is written asynchronously: wait for all 7 lines)
        lines = wait_until(lambda: (lambda x: x if len(x) >= 7 else None)(self.log_lines("perclient.test")),
                           10.0, 0.02, "7 perclient.test log lines")
        self.assertEqual(sorted((x["client"].rsplit(":", 1)[0], x["status"]) for x in lines),
                         sorted([(a, 200), (a, 200), (a, 429), (b, 200), (b, 200), (b, 429), (a, 429)]))

    # ---- conns=

    def open_conns_tunnel(self, tag):
        """(s, bs) of an open, working tunnel to conns.test, or None if refused."""
        r, s, bs = connect_via(self.e.port, f"conns.test:{self.E}")
        if r is None or r.status != 200:
            s.close()
            return None
        payload = f"hello {tag}\n".encode()
        self.assertEqual(echo_roundtrip(s, bs, payload), payload)
        return s, bs

    def test_conns(self):
        held = []
        try:
            for i in range(2):
                t = self.open_conns_tunnel(i)
                self.assertIsNotNone(t, f"tunnel {i} refused")
                held.append(t)
            # Third tunnel: 429 conns_limited.
            r, s3, _ = connect_via(self.e.port, f"conns.test:{self.E}")
            s3.close()
            self.assert_429(r, "conns_limited", "conns.test", 60)
            # conns= counts plain requests too.
            r = self.get("conns.test")
            self.assert_429(r, "conns_limited", "conns.test", 60)
            # The open tunnels still work.
            for i, (s, bs) in enumerate(held):
                self.assertEqual(echo_roundtrip(s, bs, b"still %d\n" % i), b"still %d\n" % i)

            # A reload neither frees nor forgets the held slots.
            self.reload()
            r, s3, _ = connect_via(self.e.port, f"conns.test:{self.E}")
            s3.close()
            self.assert_429(r, "conns_limited", "conns.test", 60)

            # Close one (orderly); the slot comes back.
            s, bs = held.pop(0)
            s.close()
            new = wait_until(lambda: self.open_conns_tunnel("after-close"), 10.0, 0.1,
                             "a conns= slot freed after closing a tunnel")
            held.append(new)
            r, s3, _ = connect_via(self.e.port, f"conns.test:{self.E}")
            s3.close()
            self.assertEqual(r.status, 429, repr(r))

            # Abort one with a reset; the slot comes back too.
            s, bs = held.pop(0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
            new = wait_until(lambda: self.open_conns_tunnel("after-reset"), 10.0, 0.1,
                             "a conns= slot freed after a client reset")
            held.append(new)
        finally:
            for s, _ in held:
                s.close()
        # Everything closed: both slots free again.
        wait_until(lambda: self.get("conns.test").status == 200, 10.0, 0.1, "conns.test served again")

    def test_conns_idle_keepalive_holds_no_slot(self):
        # conns= counts requests in progress: a kept-alive connection that is
        # idle between requests does not hold the rule's only slot.
        a = connect_from(self.e.port)
        with contextlib.closing(a):
            bs = BufferedSocket(a)
            a.sendall(request_head("GET", f"http://conns1.test:{self.O}/echo/a1", close=False))
            r = read_response(bs)
            self.assertEqual(r.status, 200, repr(r))
            r = self.get("conns1.test")
            self.assertEqual(r.status, 200, f"an idle keep-alive connection holds the slot: {r!r}")
            a.sendall(request_head("GET", f"http://conns1.test:{self.O}/echo/a2", close=False))
            r = read_response(bs)
            self.assertEqual(r.status, 200, repr(r))

    # ---- bandwidth=

    def timed_tunnel_download(self, host, n):
        r, s, bs = connect_via(self.e.port, f"{host}:{self.O}", timeout=30)
        with contextlib.closing(s):
            self.assertEqual(r.status, 200, repr(r))
            t0 = time.monotonic()
            s.sendall(request_head("GET", f"http://{host}:{self.O}/bytes?n={n}", absolute=False))
            resp = read_response(bs)
            dt = time.monotonic() - t0
        self.assertEqual(resp.status, 200)
        self.assertEqual(len(resp.body), n)
        self.assertEqual(sha256(resp.body), sha256(gen_bytes(n)))
        return dt

    def test_bandwidth_tunnel(self):
        slow = self.timed_tunnel_download("slow.test", 2 * MIB)
        fast = self.timed_tunnel_download("fast.test", 2 * MIB)
        self.assertGreaterEqual(slow, 2.5, f"2 MiB at 512K/s took only {slow:.2f}s")
        self.assertLessEqual(slow, 8.0, f"2 MiB at 512K/s took {slow:.2f}s")
        self.assertLess(fast, 1.5, f"2 MiB without a limit took {fast:.2f}s")

    def test_bandwidth_plain_http(self):
        t0 = time.monotonic()
        r = proxy_get(self.e.port, f"http://slow.test:{self.O}/bytes?n={2 * MIB}", timeout=30)
        slow = time.monotonic() - t0
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 2 * MIB)
        t0 = time.monotonic()
        r = proxy_get(self.e.port, f"http://fast.test:{self.O}/bytes?n={2 * MIB}", timeout=30)
        fast = time.monotonic() - t0
        self.assertEqual(len(r.body), 2 * MIB)
        self.assertGreaterEqual(slow, 2.5, f"2 MiB at 512K/s took only {slow:.2f}s")
        self.assertLessEqual(slow, 8.0, f"2 MiB at 512K/s took {slow:.2f}s")
        self.assertLess(fast, 1.5, f"2 MiB without a limit took {fast:.2f}s")

    def test_bandwidth_shared_across_connections(self):
        # The rule's budget is shared: two parallel 512 KiB downloads together
        # take about as long as one of 1 MiB (~1.9 s; each alone ~0.9 s).
        res, errs = {}, []

        def dl(i):
            try:
                t0 = time.monotonic()
                r = proxy_get(self.e.port, f"http://slow.test:{self.O}/bytes?n={MIB // 2}", timeout=30)
                res[i] = (time.monotonic() - t0, r.status, len(r.body))
            except Exception as e:  # reported below
                errs.append(e)
        t0 = time.monotonic()
        ts = [threading.Thread(target=dl, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(40)
        total = time.monotonic() - t0
        self.assertEqual(errs, [])
        self.assertEqual(sorted(v[1:] for v in res.values()), [(200, MIB // 2), (200, MIB // 2)])
        self.assertGreaterEqual(total, 1.4, f"2 x 512 KiB at a shared 512K/s took only {total:.2f}s")
        self.assertLessEqual(total, 5.0, f"2 x 512 KiB at a shared 512K/s took {total:.2f}s")

    def test_bandwidth_tunnel_upload(self):
        # Up direction of a tunnel: 1 MiB to a hashing sink at 512K/s.
        r, s, bs = connect_via(self.e.port, f"slow.test:{self.H}", timeout=30)
        with contextlib.closing(s):
            self.assertEqual(r.status, 200, repr(r))
            data = gen_bytes(MIB, seed=11)
            t0 = time.monotonic()
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            digest = bs.read_to_eof()
            dt = time.monotonic() - t0
        self.assertEqual(digest.decode(), sha256(data))
        self.assertGreaterEqual(dt, 1.2, f"1 MiB up a tunnel at 512K/s took only {dt:.2f}s")
        self.assertLessEqual(dt, 5.0, f"1 MiB up a tunnel at 512K/s took {dt:.2f}s")

    def test_bandwidth_upload(self):
        # Each direction is paced: 1 MiB up at 512K/s takes about 2 s.
        body = gen_bytes(MIB, seed=7)
        t0 = time.monotonic()
        r = proxy_get(self.e.port, f"http://slow.test:{self.O}/upload", method="POST", body=body,
                     timeout=30)
        dt = time.monotonic() - t0
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json()["sha256"], sha256(body))
        self.assertGreaterEqual(dt, 1.2, f"1 MiB up at 512K/s took only {dt:.2f}s")
        self.assertLessEqual(dt, 5.0, f"1 MiB up at 512K/s took {dt:.2f}s")

    # ---- reload

    def reload(self, text=None):
        if text is not None:
            with open(self.e.conf_path, "w") as f:
                f.write(text)
        before = scrape(self.admin_port).get("egressd_config_reloads_total", result="ok")
        self.e.send_signal(signal.SIGHUP)
        wait_metrics(self.admin_port,
                     lambda m: m.get("egressd_config_reloads_total", result="ok") >= before + 1,
                     what="the reload to be counted")

    def test_reload_keeps_rate_bucket(self):
        self.assertEqual([self.get("reload.test").status for _ in range(2)], [200, 200])
        self.reload()  # the same config
        r = self.get("reload.test")
        self.assert_429(r, "rate_limited", "reload.test", 30)
        # A rule keeps its bucket when other rules are added before it and
        # the lines are reordered.
        lines = self.e.conf_text.splitlines()
        rules = [x for x in lines if x.startswith("allow ")]
        others = [x for x in lines if not x.startswith("allow ")]
        moved = "\n".join(others + [f"allow added.test ports={self.O}"] + rules[::-1]) + "\n"
        try:
            self.reload(moved)
            r = self.get("reload.test")
            self.assert_429(r, "rate_limited", "reload.test", 30)
        finally:
            self.reload(self.e.conf_text)
        self.assert_429(self.get("reload.test"), "rate_limited", "reload.test", 30)
        # Other rules keep working after the reloads.
        self.assertEqual(self.get("fast.test").status, 200)

    def test_reload_keeps_per_client_buckets(self):
        a = "127.0.2.7"
        if not source_bindable(a):
            self.skipTest("cannot bind 127.0.2.x")
        self.assertEqual(self.get("reloadpc.test", source=a).status, 200)
        self.assertEqual(self.get("reloadpc.test", source=a).status, 429)
        self.reload()
        self.assert_429(self.get("reloadpc.test", source=a), "rate_limited", "reloadpc.test", 60)
        self.assertEqual(self.get("reloadpc.test").status, 200)  # another client

    def test_retry_after_is_honest(self):
        # rate=30/m burst=1: one token every 2 s. After waiting Retry-After
        # seconds, the next request is served.
        self.assertEqual(self.get("honest.test").status, 200)
        r = self.get("honest.test")
        ra = self.assert_429(r, "rate_limited", "honest.test", 2)
        time.sleep(ra)
        r = self.get("honest.test")
        self.assertEqual(r.status, 200, f"refused after waiting Retry-After={ra}s: {r!r}")


class Burst(EgressdTestCase):
    """rate=1/m burst=2 on a fresh process: 200, 200, 429."""

    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        cls.dns.add("burst.test", a=["127.0.0.1"])
        cls.dns.add("burstc.test", a=["127.0.0.1"])
        O, E = cls.origin.port, cls.echo.port
        cls.O, cls.E = O, E
        rules = f"""
allow burst.test ports={O} rate=1/m burst=2
allow burstc.test ports={E} rate=1/m burst=2
"""
        cls.e = cls.own(Egressd(base_config(rules), dns=cls.dns)).start()

    def test_burst_http(self):
        got = [proxy_get(self.e.port, f"http://burst.test:{self.O}/echo") for _ in range(3)]
        self.assertEqual([r.status for r in got], [200, 200, 429], repr(got[-1]))
        assert_denied(self, got[-1], 429, "rate_limited", "burst.test")
        ra = int(got[-1].header("Retry-After"))
        # One token per 60 s: the next one is between 1 and 60 s away.
        self.assertTrue(1 <= ra <= 60, ra)

    def test_burst_connect(self):
        socks, statuses, last = [], [], None
        try:
            for _ in range(3):
                r, s, _ = connect_via(self.e.port, f"burstc.test:{self.E}")
                socks.append(s)
                statuses.append(r.status)
                last = r
        finally:
            for s in socks:
                s.close()
        self.assertEqual(statuses, [200, 200, 429], repr(last))
        assert_denied(self, last, 429, "rate_limited", "burstc.test")
        self.assertTrue(retry_after_ok(last), repr(last))


class ConnsClientAbort(EgressdTestCase):
    """A conns= slot is released when the client goes away, also while
    egressd is still waiting for the upstream's response (issue 3: "the slot
    is released when the connection ends however it ends (error, timeout,
    client abort)")."""

    @classmethod
    def setUpClass(cls):
        cls.origin = cls.own(HttpOrigin())
        sink = TcpSink("sink")  # accepts, reads, never answers
        cls.sink = sink
        O, K = cls.origin.port, sink.port
        cls.O, cls.K = O, K
        rules = f"allow held.test ports={O},{K} conns=1\n"
        cls.e = cls.own(Egressd(base_config(rules, hosts="{dir}/hosts"),
                                files={"hosts": "127.0.0.1 held.test\n"})).start()
        cls.own(sink)  # closed first at teardown: frees whatever egressd still holds

    def test_slot_freed_when_client_resets_while_waiting_for_upstream(self):
        s = connect_from(self.e.port)
        s.sendall(request_head("GET", f"http://held.test:{self.K}/never-answers"))
        wait_until(lambda: self.sink.snapshot()[1] > 0, 10.0, 0.02, "the request at the upstream")
        r = proxy_get(self.e.port, f"http://held.test:{self.O}/echo")
        assert_denied(self, r, 429, "conns_limited", "held.test")
        # The client gives up: abortive close (RST).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        last = []

        def served():
            r = proxy_get(self.e.port, f"http://held.test:{self.O}/echo")
            last[:] = [r]
            return r.status == 200
        try:
            wait_until(served, 5.0, 0.1, "the conns=1 slot to be released after the client reset")
        except AssertionError as e:
            raise AssertionError(f"{e}; the slot is still held by a client that is gone "
                                 f"(last answer {last[0]!r})") from None


class MaxConns(EgressdTestCase):
    """limit max_conns=3: the 4th simultaneous client connection is closed,
    the first three keep working."""

    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.echo = cls.own(TcpSink("echo"))
        cls.dns.add("echo.test", a=["127.0.0.1"])
        cls.admin_port = free_port()
        rules = f"allow echo.test ports={cls.echo.port}\n"
        cls.e = cls.own(Egressd(base_config(rules, limits={"max_conns": 3},
                                            extra=f"admin 127.0.0.1:{cls.admin_port}"),
                                dns=cls.dns)).start()

    def tunnel(self, tag):
        r, s, bs = connect_via(self.e.port, f"echo.test:{self.echo.port}")
        if r is None or r.status != 200:
            s.close()
            return None
        payload = f"conn {tag}\n".encode()
        self.assertEqual(echo_roundtrip(s, bs, payload), payload)
        return s, bs

    def test_max_conns(self):
        held = []
        try:
            for i in range(3):
                t = self.tunnel(i)
                self.assertIsNotNone(t, f"tunnel {i} of 3 refused")
                held.append(t)
            # The 4th connection is closed without an answer.
            s4 = connect_from(self.e.port)
            with contextlib.closing(s4):
                with contextlib.suppress(OSError):
                    s4.sendall(f"CONNECT echo.test:{self.echo.port} HTTP/1.1\r\n\r\n".encode())
                got = expect_closed(s4, timeout=10)
                self.assertEqual(got, b"", f"the 4th connection got an answer: {got[:200]!r}")
            # The admin endpoint is not behind max_conns.
            self.assertEqual(scrape(self.admin_port).get("egressd_connections_active", kind="connect"), 3)
            # The three open ones keep working.
            for i, (s, bs) in enumerate(held):
                self.assertEqual(echo_roundtrip(s, bs, b"again %d\n" % i), b"again %d\n" % i)
            # Closing one frees a place.
            s, _ = held.pop()
            s.close()
            held.append(wait_until(lambda: self.tunnel("after"), 10.0, 0.1,
                                   "a connection admitted after one closed"))
        finally:
            for s, _ in held:
                s.close()


if __name__ == "__main__":
    main()
