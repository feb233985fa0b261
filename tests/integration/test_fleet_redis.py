#!/usr/bin/env python3
"""`state redis://` through the real binary and a real redis-server the test
starts and stops on loopback (SPEC "State shared by a fleet"): two egressd
processes sharing it hold one `rate=` limit for the fleet (within 5 %), an
anomaly block raised by one is honoured by the other, a grant made on one
is in force on the other within 1 s (and its revocation likewise), and when Redis goes
away egressd_state_up is 0, one stderr line says so, each replica admits at
most its share of the limit, and when Redis is back the state is up again."""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, base_config, free_port,  # noqa: E402
                     main, proxy_get, wait_until)
from modes_util import metric_value, scrape, wait_listening  # noqa: E402
from test_grants import api, assert_one_line_error  # noqa: E402

REDIS = shutil.which("redis-server")


class RedisServer:
    """redis-server on 127.0.0.1 at a port found free (redis has no port 0)."""

    def __init__(self, password=None):
        self.dir = tempfile.mkdtemp(prefix="egressd-redis-")
        self.port = free_port()
        self.password = password
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "no"]
            + (["--requirepass", self.password] if self.password else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.cli("PING") == "PONG", 10, what="redis-server to answer")
        return self

    def cli(self, *args):
        auth = ["--no-auth-warning", "-a", self.password] if self.password else []
        p = subprocess.run(["redis-cli", "-p", str(self.port), *auth, *args], capture_output=True, text=True,
                           timeout=10)
        return p.stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def hammer(port, url, seconds, threads=3, source=None):
    """Requests as fast as `threads` clients can for `seconds`; returns
    (admitted, refused_429, other, elapsed)."""
    counts = {"ok": 0, "429": 0, "other": 0}
    lock = threading.Lock()
    t0 = time.monotonic()
    deadline = t0 + seconds

    def client():
        while time.monotonic() < deadline:
            try:
                r = proxy_get(port, url, source=source, timeout=5)
                k = "ok" if r.status == 200 else "429" if r.status == 429 else "other"
            except OSError:
                k = "other"
            with lock:
                counts[k] += 1
    ts = [threading.Thread(target=client) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return counts["ok"], counts["429"], counts["other"], time.monotonic() - t0


@__import__("unittest").skipUnless(REDIS and shutil.which("redis-cli"), "redis-server is not installed")
class FleetRedis(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        for n in ("rate.test", "free.test", "granted.test", "short.test", "later.test", "feed.test", "local.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        cls.origin = cls.own(HttpOrigin())
        cls.O = cls.origin.port

    def setUp(self):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.close)

    def replica(self, rules, extra=""):
        admin = free_port()
        e = Egressd(base_config(rules, extra=f"admin 127.0.0.1:{admin}\n"
                                f"state redis://127.0.0.1:{self.redis.port}/3\n{extra}"), dns=self.dns)
        self.addCleanup(e.cleanup)
        e.start()
        wait_listening(admin)
        e.admin_port = admin
        return e

    def metric(self, e, name, **labels):
        return metric_value(scrape(e.admin_port), name, **labels)

    def test_two_replicas_hold_one_limit(self):
        # rate=6000/m (100/s) with a small burst: the 600/m of the issue, ten
        # times faster so the test takes seconds.
        rules = f"allow rate.test ports={self.O} rate=6000/m burst=20\nallow free.test ports={self.O}\n"
        a, b = self.replica(rules), self.replica(rules)
        wait_until(lambda: self.metric(a, "egressd_state_replicas") == 2, 5, what="both replicas registered")
        self.assertEqual(self.metric(a, "egressd_state_up"), 1)
        url = f"http://rate.test:{self.O}/echo/r"
        res = {}
        ta = threading.Thread(target=lambda: res.__setitem__("a", hammer(a.port, url, 8)))
        tb = threading.Thread(target=lambda: res.__setitem__("b", hammer(b.port, url, 8)))
        ta.start(), tb.start()
        ta.join(), tb.join()
        admitted = res["a"][0] + res["b"][0]
        refused = res["a"][1] + res["b"][1]
        elapsed = max(res["a"][3], res["b"][3])
        expected = 20 + 100 * elapsed
        print(f"\nfleet of 2, rate=6000/m burst=20 over {elapsed:.2f}s: admitted {admitted} "
              f"(a {res['a'][0]}, b {res['b'][0]}), refused {refused}, expected {expected:.0f}", file=sys.stderr)
        self.assertEqual(res["a"][2] + res["b"][2], 0, res)
        self.assertGreater(refused, admitted, "the clients did not push past the limit: the test proves nothing")
        self.assertLess(abs(admitted - expected) / expected, 0.05, (admitted, expected))
        # Both replicas got a real share (neither starved by the other's leases).
        self.assertGreater(min(res["a"][0], res["b"][0]), expected * 0.25, res)
        keys = self.redis.cli("-n", "3", "KEYS", "*").split()
        self.assertTrue(keys and all(k.startswith("egressd:") for k in keys), keys)
        # An unlimited rule never touches the lease: always 200.
        self.assertEqual(proxy_get(a.port, f"http://free.test:{self.O}/echo/f").status, 200)
        a.stop()
        b.stop()

    def test_per_client_limit_holds_across_replicas(self):
        # rate=50/s per client, burst 10: one client hammering both replicas
        # gets one client's budget in total; a second client has its own.
        rules = f"allow rate.test ports={self.O} rate=50/s burst=10 per=client\n"
        a, b = self.replica(rules), self.replica(rules)
        wait_until(lambda: self.metric(a, "egressd_state_replicas") == 2, 5, what="both replicas registered")
        url = f"http://rate.test:{self.O}/echo/c"
        res = {}
        jobs = [("a7", a, "127.0.0.7"), ("b7", b, "127.0.0.7"), ("a8", a, "127.0.0.8")]
        ts = [threading.Thread(target=lambda k=k, e=e, src=src: res.__setitem__(k, hammer(e.port, url, 6, 2, src)))
              for k, e, src in jobs]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        elapsed = max(r[3] for r in res.values())
        expected = 10 + 50 * elapsed
        seven = res["a7"][0] + res["b7"][0]
        print(f"\nper=client over {elapsed:.2f}s: client .7 admitted {seven} (a {res['a7'][0]}, b {res['b7'][0]}), "
              f"client .8 {res['a8'][0]}, expected {expected:.0f} each", file=sys.stderr)
        self.assertEqual(sum(r[2] for r in res.values()), 0, res)
        self.assertLess(abs(seven - expected) / expected, 0.05, (seven, expected))
        self.assertLess(abs(res["a8"][0] - expected) / expected, 0.05, (res["a8"][0], expected))
        a.stop()
        b.stop()

    def test_block_on_one_replica_is_honoured_by_the_other(self):
        rules = f"allow free.test ports={self.O}\n"
        extra = "anomaly requests=3/m min_requests=1 action=block:30s"
        a, b = self.replica(rules, extra), self.replica(rules, extra)
        url = f"http://free.test:{self.O}/echo/b"
        for _ in range(4):  # the 4th request in the window raises request_rate
            proxy_get(a.port, url, source="127.0.0.5")
        r = proxy_get(a.port, url, source="127.0.0.5")
        self.assertEqual((r.status, r.reason), (403, "anomaly_block"), r)
        self.assertEqual(proxy_get(b.port, url, source="127.0.0.6").status, 200)
        t0 = time.monotonic()
        wait_until(lambda: proxy_get(b.port, url, source="127.0.0.5").reason == "anomaly_block", 3,
                   interval=0.05, what="replica b to refuse the client replica a blocked")
        print(f"\nblock seen by the other replica after {time.monotonic() - t0:.2f}s", file=sys.stderr)
        self.assertEqual(proxy_get(b.port, url, source="127.0.0.6").status, 200)
        # Blocks stay until their end even when Redis goes away.
        self.redis.stop()
        wait_until(lambda: self.metric(b, "egressd_state_up") == 0, 5, what="egressd_state_up 0")
        self.assertEqual(proxy_get(b.port, url, source="127.0.0.5").reason, "anomaly_block")
        a.stop()
        b.stop()

    def test_outage_share_and_recovery(self):
        rules = f"allow rate.test ports={self.O} rate=20/s burst=20\n"
        a, b = self.replica(rules), self.replica(rules)
        wait_until(lambda: self.metric(a, "egressd_state_replicas") == 2, 5, what="both replicas registered")
        url = f"http://rate.test:{self.O}/echo/o"
        self.redis.stop()
        wait_until(lambda: self.metric(a, "egressd_state_up") == 0, 5, what="egressd_state_up 0")
        wait_until(lambda: "is unreachable" in a.stderr(), 5, what="the transition line")
        # The share: 20/s over 2 replicas = 10/s with a burst of 10, plus the
        # few tokens a lease held when Redis went away (at most 2 here).
        ok, refused, other, elapsed = hammer(a.port, url, 3)
        share = 10 + 10 * elapsed + 2
        print(f"\noutage: replica a admitted {ok} in {elapsed:.2f}s (share bound {share:.0f})", file=sys.stderr)
        self.assertEqual(other, 0)
        self.assertGreater(ok, 0, "serving must continue during an outage")
        self.assertGreater(refused, 0)
        self.assertLessEqual(ok, share * 1.05)
        self.assertGreaterEqual(ok, 10 * elapsed * 0.7)
        self.assertEqual(a.stderr().count("is unreachable"), 1, a.stderr())
        self.redis.start()  # same port
        wait_until(lambda: self.metric(a, "egressd_state_up") == 1, 10, what="egressd_state_up back to 1")
        self.assertEqual(a.stderr().count("is up"), 2, a.stderr())
        self.assertEqual(proxy_get(a.port, url).status, 200)
        a.stop()
        b.stop()

    def test_block_raised_during_an_outage_is_published_when_redis_is_back(self):
        rules = f"allow free.test ports={self.O}\n"
        extra = "anomaly requests=3/m min_requests=1 action=block:30s"
        a, b = self.replica(rules, extra), self.replica(rules, extra)
        url = f"http://free.test:{self.O}/echo/ob"
        self.redis.stop()
        for e in (a, b):
            wait_until(lambda e=e: self.metric(e, "egressd_state_up") == 0, 5, what="egressd_state_up 0")
        for _ in range(5):
            proxy_get(a.port, url, source="127.0.0.9")
        self.assertEqual(proxy_get(a.port, url, source="127.0.0.9").reason, "anomaly_block")
        self.assertEqual(proxy_get(b.port, url, source="127.0.0.9").status, 200)  # b cannot know yet
        self.redis.start()
        wait_until(lambda: proxy_get(b.port, url, source="127.0.0.9").reason == "anomaly_block", 10,
                   interval=0.1, what="the outage block to reach replica b after Redis came back")
        a.stop()
        b.stop()

    def test_a_stopping_replica_gives_its_tokens_back(self):
        rules = f"allow rate.test ports={self.O} rate=1/s burst=10\n"
        a = self.replica(rules)
        url = f"http://rate.test:{self.O}/echo/g"
        for _ in range(5):  # from the burst, at most b = 1 token per 20 ms cycle
            self.assertEqual(proxy_get(a.port, url).status, 200)
            time.sleep(0.1)
        time.sleep(0.2)  # the lease is topped up to its one token
        key = next(k for k in self.redis.cli("-n", "3", "KEYS", "egressd:rate:*").split())
        before = float(self.redis.cli("-n", "3", "GET", key))
        a.stop()
        after = float(self.redis.cli("-n", "3", "GET", key))
        self.assertAlmostEqual(before - after, 1e6, delta=1e3)  # one token of 1 s given back

    def test_password_file(self):
        self.redis.stop()
        self.redis = RedisServer(password="s3cret-fleet")
        self.addCleanup(self.redis.close)
        self.redis.start()
        rules = f"allow free.test ports={self.O}\n"
        for pw, up in (("s3cret-fleet\n", 1), ("wrong", 0)):
            admin = free_port()
            e = Egressd(base_config(rules, extra=f"admin 127.0.0.1:{admin}\n"
                                    f"state redis://127.0.0.1:{self.redis.port}/0 password_file=pw.txt"),
                        dns=self.dns, files={"pw.txt": pw})
            self.addCleanup(e.cleanup)
            e.start()
            wait_listening(admin)
            e.admin_port = admin
            self.assertEqual(self.metric(e, "egressd_state_up"), up, e.stderr())
            if not up:
                self.assertIn("AUTH", e.stderr())
            self.assertEqual(proxy_get(e.port, f"http://free.test:{self.O}/echo/p").status, 200)
            e.stop()
        # An unreadable password_file is a start-up error, not an outage.
        e = Egressd(base_config(rules, extra=f"state redis://127.0.0.1:{self.redis.port} password_file=nope.txt"))
        self.addCleanup(e.cleanup)
        e.start(wait=False)
        self.assertEqual(e.proc.wait(10), 1)
        self.assertIn("password_file", e.stderr())

    def test_unreachable_at_start_still_serves(self):
        self.redis.stop()
        rules = f"allow rate.test ports={self.O} rate=20/s burst=5\n"
        a = self.replica(rules)
        self.assertEqual(self.metric(a, "egressd_state_up"), 0)
        self.assertIn("is unreachable", a.stderr())
        wait_until(lambda: proxy_get(a.port, f"http://rate.test:{self.O}/echo/s").status == 200, 3,
                   what="a request admitted from the local share")
        a.stop()

    def wait_status(self, e, url, status, timeout, what):
        t0 = time.monotonic()
        wait_until(lambda: proxy_get(e.port, url).status == status, timeout, interval=0.05, what=what)
        return time.monotonic() - t0

    def test_grants_are_shared(self):
        a, b = self.replica(f"allow free.test ports={self.O}\n"), self.replica(f"allow free.test ports={self.O}\n")
        url = f"http://granted.test:{self.O}/echo/g"
        self.assertEqual(proxy_get(b.port, url).status, 403)
        status, _, g = api(a.admin_port, "POST", "/v1/grants", {"pattern": "granted.test", "ports": [self.O]})
        self.assertEqual(status, 201, g)
        self.assertIs(g["persisted"], True)
        self.assertEqual(proxy_get(a.port, url).status, 200)  # in force at once where it was made
        took = self.wait_status(b, url, 200, 1.0, "the grant made on replica a to allow on replica b")
        print(f"\ngrant seen by the other replica after {took:.2f}s", file=sys.stderr)
        self.assertEqual(b.log_for_client(proxy_get(b.port, url).client_port)["rule"], f"grant:{g['id']}")
        status, _, listed = api(b.admin_port, "GET", "/v1/grants")
        self.assertEqual([(x["id"], x["persisted"]) for x in listed], [(g["id"], True)])
        # Redis holds it, with its end.
        self.assertIn(g["id"], self.redis.cli("-n", "3", "HKEYS", "egressd:grants").split())
        self.assertNotEqual(self.redis.cli("-n", "3", "ZSCORE", "egressd:grants:expiry", g["id"]), "")
        # Revoked on b: ends on a within 1 s; a second DELETE anywhere is 404.
        status, _, body = api(b.admin_port, "DELETE", f"/v1/grants/{g['id']}")
        self.assertEqual(status, 204, body)
        self.assertEqual(proxy_get(b.port, url).status, 403)
        self.wait_status(a, url, 403, 1.0, "the grant revoked on replica b to end on replica a")
        status, _, body = api(a.admin_port, "DELETE", f"/v1/grants/{g['id']}")
        assert_one_line_error(self, status, body, 404)
        self.assertEqual(self.redis.cli("-n", "3", "HLEN", "egressd:grants"), "0")
        a.stop()
        b.stop()

    def test_grants_during_an_outage(self):
        a, b = self.replica(f"allow free.test ports={self.O}\n"), self.replica(f"allow free.test ports={self.O}\n")
        short = f"http://short.test:{self.O}/echo/s"
        later = f"http://later.test:{self.O}/echo/l"
        status, _, g = api(a.admin_port, "POST", "/v1/grants",
                           {"pattern": "short.test", "ports": [self.O], "ttl": "4s"})
        self.assertEqual(status, 201, g)
        t_grant = time.monotonic()
        self.wait_status(b, short, 200, 1.0, "the grant on replica b")
        self.redis.stop()
        for e in (a, b):
            wait_until(lambda e=e: self.metric(e, "egressd_state_up") == 0, 5, what="egressd_state_up 0")
        # No change while Redis is away: 503, one line, nothing added or removed.
        for e in (a, b):
            status, _, body = api(e.admin_port, "POST", "/v1/grants", {"pattern": "later.test", "ports": [self.O]})
            assert_one_line_error(self, status, body, 503, "the shared state (Redis) is unreachable")
            self.assertEqual(body["error"],
                             "the shared state (Redis) is unreachable: grants cannot be changed now")
            status, _, body = api(e.admin_port, "DELETE", f"/v1/grants/{g['id']}")
            assert_one_line_error(self, status, body, 503, "unreachable")
            self.assertEqual(proxy_get(e.port, later).status, 403)
        self.assertIn(g["id"], [x["id"] for x in api(b.admin_port, "GET", "/v1/grants")[2]])
        # The grant in force stays until its expiry, and not past it.
        if time.monotonic() - t_grant < 3.5:
            for e in (a, b):
                self.assertEqual(proxy_get(e.port, short).status, 200)
        for e in (a, b):
            self.wait_status(e, short, 403, 6.0, "the grant to end at its expiry during the outage")
        self.assertGreater(time.monotonic() - t_grant, 3.8)
        # Redis back (empty: it kept nothing): changes are accepted again.
        self.redis.start()
        wait_until(lambda: self.metric(a, "egressd_state_up") == 1, 10, what="egressd_state_up back to 1")
        status, _, g2 = api(a.admin_port, "POST", "/v1/grants", {"pattern": "later.test", "ports": [self.O]})
        self.assertEqual(status, 201, g2)
        self.assertIs(g2["persisted"], True)
        wait_until(lambda: self.metric(b, "egressd_state_up") == 1, 10, what="replica b up again")
        self.wait_status(b, later, 200, 1.5, "the grant made after the outage on replica b")
        a.stop()
        b.stop()

    def test_denial_feed_is_shared(self):
        rules = f"allow free.test ports={self.O}\n"
        a, b = self.replica(rules), self.replica(rules)
        url = f"http://feed.test:{self.O}/echo/d"
        for _ in range(3):
            self.assertEqual(proxy_get(a.port, url, source="127.0.0.11").status, 403)
        for _ in range(2):
            self.assertEqual(proxy_get(b.port, url, source="127.0.0.11").status, 403)

        def fleet_group(e):
            status, _, groups = api(e.admin_port, "GET", "/v1/denials")
            self.assertEqual(status, 200, groups)
            mine = [g for g in groups if g["host"] == "feed.test"]
            return mine[0] if mine and mine[0]["count"] == 5 else None
        t0 = time.monotonic()
        wait_until(lambda: fleet_group(a) and fleet_group(b), 3, interval=0.1,
                   what="both replicas' GET /v1/denials to show the fleet's 5 denials")
        print(f"\nfleet denial feed merged after {time.monotonic() - t0:.2f}s", file=sys.stderr)
        g = fleet_group(b)
        self.assertEqual((g["client"], g["agent"], g["port"], g["reason"]), ("127.0.0.11", "", self.O, "not_allowed"))
        self.assertLessEqual(g["first"], g["last"])
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
        self.assertEqual(api(b.admin_port, "GET", f"/v1/denials?since={later}")[2], [])
        self.assertEqual(self.redis.cli("-n", "3", "ZCARD", "egressd:denials"), "1")
        # Redis away: each replica answers from its own feed.
        self.redis.stop()
        wait_until(lambda: self.metric(b, "egressd_state_up") == 0, 5, what="egressd_state_up 0")
        status, _, groups = api(b.admin_port, "GET", "/v1/denials")
        self.assertEqual(status, 200)
        self.assertEqual([x["count"] for x in groups if x["host"] == "feed.test"], [2])
        a.stop()
        b.stop()

    def test_fleet_denial_feed_is_bounded(self):
        a = self.replica(f"allow free.test ports={self.O}\n")
        first = f"http://feed.test:{self.O}/echo/first"
        self.assertEqual(proxy_get(a.port, first).status, 403)
        time.sleep(1.2)  # pushed: the oldest group
        for i in range(1005):  # names egressd denies before resolving them
            self.assertEqual(proxy_get(a.port, f"http://n{i}.bound.test:{self.O}/").status, 403)
        wait_until(lambda: len(api(a.admin_port, "GET", "/v1/denials")[2]) == 1000
                   and self.redis.cli("-n", "3", "ZCARD", "egressd:denials") == "1000", 5, interval=0.2,
                   what="the fleet feed at its bound of 1,000 groups")
        hosts = {g["host"] for g in api(a.admin_port, "GET", "/v1/denials")[2]}
        self.assertNotIn("feed.test", hosts)  # the least recently denied went first
        self.assertIn("n1004.bound.test", hosts)
        keys = self.redis.cli("-n", "3", "KEYS", "egressd:denial:*").splitlines()
        self.assertEqual(len(keys), 1000)
        a.stop()


if __name__ == "__main__":
    main()
