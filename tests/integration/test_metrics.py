#!/usr/bin/env python3
"""The admin endpoint through the real binary (SPEC "Admin endpoint"):
/metrics values move by exactly the expected amounts after known traffic,
label values never come from names a client invents, /healthz /readyz
/alerts and 404, config-reload counters, and the admin and proxy listeners
are unreachable through the proxy itself (403 self)."""

import json
import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, TcpSink,  # noqa: E402
                     assert_denied, base_config, connect_via, curl_status, echo_roundtrip,
                     free_port, gen_bytes, main, proxy_get, wait_until)
from limits_util import (admin_get, request_lines, scrape, wait_metrics)  # noqa: E402

REQ = "egressd_requests_total"
RULE = "egressd_rule_requests_total"
BYTES = "egressd_bytes_total"
CLIENT = "egressd_client_requests_total"
DUR = "egressd_request_duration_seconds"
CONN = "egressd_upstream_connect_seconds"
DNSQ = "egressd_dns_queries_total"
RELOADS = "egressd_config_reloads_total"
ACTIVE = "egressd_connections_active"


def delta(after, before, name, **labels):
    return after.get(name, **labels) - before.get(name, **labels)


def family_deltas(after, before, name):
    """{frozenset(labels): delta} for every series of `name` that moved."""
    out = {}
    keys = {frozenset(lb.items()) for n, lb, _ in after.samples + before.samples if n == name}
    for k in keys:
        d = after.get(name, **dict(k)) - before.get(name, **dict(k))
        if d:
            out[k] = d
    return out


class Metrics_(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        for n in ("re7.test", "metrics.test", "fresh.test", "reloadme.test", "selfname.test", "tunnelonly.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        cls.dns.nxdomain("nx.test")
        cls.dns.servfail("sf.test")
        O, E = cls.origin.port, cls.echo.port
        cls.O, cls.E = O, E
        cls.admin_port = free_port()
        cls.proxy_port = free_port()
        cls.rules = f"""
allow metrics.test ports={O},{E}
deny bad.metrics.test
allow .wild.test ports={O},{E}
allow fresh.test ports={O}
allow nx.test ports={O}
allow sf.test ports={O}
allow reloadme.test ports={O}
allow selfname.test ports={cls.proxy_port},{cls.admin_port}
allow ~re[0-9]\\.test ports={O}
allow ~q"x\\d\\.test ports={O}
"""
        cls.extra = f"admin 127.0.0.1:{cls.admin_port}"
        cls.e = cls.own(Egressd(base_config(cls.rules, extra=cls.extra), dns=cls.dns,
                                port=cls.proxy_port)).start()

    def setUp(self):
        # Every test leaves nothing open; the counters below are deltas.
        wait_metrics(self.admin_port, lambda m: m.total(ACTIVE) == 0,
                     what="no open connections before the test")

    def wait_requests(self, n_before, n):
        return wait_until(lambda: len(request_lines(self.e)) >= n_before + n, 10.0, 0.02,
                          f"{n} new access-log lines")

    def settle(self, before, n):
        """Wait until n more requests are counted in the duration histogram."""
        c0 = before.get(DUR + "_count")
        return wait_metrics(self.admin_port, lambda m: m.get(DUR + "_count") >= c0 + n,
                            what=f"{n} more requests in {DUR}_count")

    # ---- values after known traffic

    def test_deltas_after_known_traffic(self):
        log0 = len(request_lines(self.e))
        before = scrape(self.admin_port)
        up, down = 0, 0
        # 3 allowed plain-HTTP requests with known body sizes.
        for n in (1000, 2000, 3000):
            body = gen_bytes(n, seed=n)
            r = proxy_get(self.e.port, f"http://metrics.test:{self.O}/upload", method="POST", body=body)
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.json()["len"], n)
            up += n
            down += len(r.body)
        # 2 denied: a name not on the allowlist, and a deny rule.
        r = proxy_get(self.e.port, f"http://nowhere.test:{self.O}/x")
        assert_denied(self, r, 403, "not_allowed", "nowhere.test")
        r = proxy_get(self.e.port, f"http://bad.metrics.test:{self.O}/x")
        assert_denied(self, r, 403, "denied_rule", "bad.metrics.test")
        # 1 tunnel with known bytes both ways.
        r, s, bs = connect_via(self.e.port, f"metrics.test:{self.E}")
        self.assertEqual(r.status, 200, repr(r))
        payload = gen_bytes(5000, seed=5)
        self.assertEqual(echo_roundtrip(s, bs, payload), payload)
        s.close()
        up += 5000
        down += 5000

        self.wait_requests(log0, 6)
        after = self.settle(before, 6)

        # egressd_requests_total{kind,decision,reason}: exactly these moved.
        self.assertEqual(family_deltas(after, before, REQ), {
            frozenset({"kind": "http", "decision": "allow", "reason": "none"}.items()): 3,
            frozenset({"kind": "http", "decision": "deny", "reason": "not_allowed"}.items()): 1,
            frozenset({"kind": "http", "decision": "deny", "reason": "denied_rule"}.items()): 1,
            frozenset({"kind": "connect", "decision": "allow", "reason": "none"}.items()): 1,
        })
        # Per rule: the pattern as written; a request that matched no rule has none.
        self.assertEqual(family_deltas(after, before, RULE), {
            frozenset({"rule": "metrics.test"}.items()): 4,
            frozenset({"rule": "bad.metrics.test"}.items()): 1,
        })
        # Bytes: at least the bodies (and tunnel payload) each way; little else.
        d_up = delta(after, before, BYTES, direction="up")
        d_down = delta(after, before, BYTES, direction="down")
        self.assertGreaterEqual(d_up, up)
        self.assertLessEqual(d_up, up + 4096, "bytes up counts far more than was sent")
        self.assertGreaterEqual(d_down, down)
        self.assertLessEqual(d_down, down + 4096, "bytes down counts far more than was received")
        self.assertEqual(delta(after, before, CLIENT, client="127.0.0.1"), 6)
        self.assertEqual(delta(after, before, DUR + "_count"), 6)
        self.assertEqual(delta(after, before, DUR + "_bucket", le="+Inf"), 6)
        self.assertGreater(delta(after, before, DUR + "_sum"), 0)
        # The tunnel and at least one request dialled (later plain requests to
        # the same host:port may reuse an upstream connection another client
        # connection left in the worker's pool); the denied ones never did.
        dials = delta(after, before, CONN + "_count")
        self.assertGreaterEqual(dials, 2)
        self.assertLessEqual(dials, 4)
        self.assertEqual(delta(after, before, CONN + "_bucket", le="+Inf"), dials)
        # One lookup per dial, answered by the server or a cache.
        self.assertEqual(delta(after, before, DNSQ, result="ok") + delta(after, before, DNSQ, result="cached"), dials)
        for res in ("nxdomain", "nodata", "timeout", "failure"):
            self.assertEqual(delta(after, before, DNSQ, result=res), 0, res)
        # Denied names are never resolved.
        self.assertFalse(self.dns.queried("nowhere.test"))
        self.assertFalse(self.dns.queried("bad.metrics.test"))
        # Per-client distinct hosts is a gauge with the client label.
        self.assertTrue(after.has("egressd_client_unique_domains", client="127.0.0.1"), after.text)
        self.assertGreaterEqual(after.get("egressd_client_unique_domains", client="127.0.0.1"), 3)

    def test_dns_query_results(self):
        before = scrape(self.admin_port)
        # A name never looked up before: answered by the server.
        r = proxy_get(self.e.port, f"http://fresh.test:{self.O}/echo")
        self.assertEqual(r.status, 200)
        # NXDOMAIN and SERVFAIL for allowed names: 502 dns_failure.
        r = proxy_get(self.e.port, f"http://nx.test:{self.O}/echo")
        assert_denied(self, r, 502, "dns_failure", "nx.test")
        r = proxy_get(self.e.port, f"http://sf.test:{self.O}/echo")
        assert_denied(self, r, 502, "dns_failure", "sf.test")
        after = self.settle(before, 3)
        self.assertEqual(delta(after, before, DNSQ, result="ok"), 1)
        self.assertEqual(delta(after, before, DNSQ, result="nxdomain"), 1)
        self.assertEqual(delta(after, before, DNSQ, result="failure"), 1)
        self.assertEqual(delta(after, before, DNSQ, result="timeout"), 0)
        self.assertEqual(delta(after, before, REQ, kind="http", decision="allow", reason="dns_failure"), 2)
        self.assertTrue(self.dns.count("fresh.test", "A") >= 1)

    def test_connections_active_gauge(self):
        before = scrape(self.admin_port)
        r, s, bs = connect_via(self.e.port, f"metrics.test:{self.E}")
        try:
            self.assertEqual(r.status, 200)
            self.assertEqual(echo_roundtrip(s, bs, b"x"), b"x")
            m = wait_metrics(self.admin_port, lambda m: m.get(ACTIVE, kind="connect") == 1,
                             what="connections_active{kind=connect} 1 while a tunnel is open")
            self.assertEqual(m.get(ACTIVE, kind="http"), before.get(ACTIVE, kind="http"))
        finally:
            s.close()
        wait_metrics(self.admin_port, lambda m: m.get(ACTIVE, kind="connect") == 0,
                     what="connections_active{kind=connect} back to 0")

    # ---- reloads

    def test_config_reloads(self):
        before = scrape(self.admin_port)
        self.e.send_signal(signal.SIGHUP)
        m = wait_metrics(self.admin_port, lambda m: delta(m, before, RELOADS, result="ok") >= 1,
                         what="reloads_total{result=ok} +1")
        self.assertEqual(delta(m, before, RELOADS, result="ok"), 1)
        self.assertEqual(delta(m, before, RELOADS, result="error"), 0)

        # A broken config that would also drop reloadme.test: rejected, the
        # old config keeps serving.
        good = self.e.conf_text
        broken = good.replace("allow reloadme.test", "# allow reloadme.test") + "allow bad..name\nfrobnicate on\n"
        try:
            with open(self.e.conf_path, "w") as f:
                f.write(broken)
            self.e.send_signal(signal.SIGHUP)
            m = wait_metrics(self.admin_port, lambda m: delta(m, before, RELOADS, result="error") >= 1,
                             what="reloads_total{result=error} +1")
            self.assertEqual(delta(m, before, RELOADS, result="error"), 1)
            self.assertEqual(delta(m, before, RELOADS, result="ok"), 1)
            r = proxy_get(self.e.port, f"http://reloadme.test:{self.O}/echo")
            self.assertEqual(r.status, 200, "the previous config must keep serving")
            wait_until(lambda: "egressd.conf:" in self.e.stderr(), 5.0, 0.05,
                       "the reload error reported as FILE:LINE on stderr")
            self.assertTrue(self.e.running())
        finally:
            with open(self.e.conf_path, "w") as f:
                f.write(good)
        self.e.send_signal(signal.SIGHUP)
        wait_metrics(self.admin_port, lambda m: delta(m, before, RELOADS, result="ok") >= 2,
                     what="reloads_total{result=ok} +2 after restoring the config")
        self.assertEqual(proxy_get(self.e.port, f"http://reloadme.test:{self.O}/echo").status, 200)

    # ---- labels

    def test_invented_names_never_become_labels(self):
        before = scrape(self.admin_port)
        marker = "zq7invented"
        # Allowed by a wildcard (then NXDOMAIN), denied, tunnelled, odd case.
        r = proxy_get(self.e.port, f"http://{marker}1.wild.test:{self.O}/echo")
        self.assertEqual(r.status, 502, repr(r))
        r = proxy_get(self.e.port, f"http://{marker}2.example:{self.O}/echo")
        self.assertEqual(r.status, 403, repr(r))
        r, s, _ = connect_via(self.e.port, f"{marker}3.wild.test:{self.E}")
        s.close()
        self.assertEqual(r.status, 502, repr(r))
        r, s, _ = connect_via(self.e.port, f"{marker.upper()}4.NOT-ALLOWED.test:443")
        s.close()
        self.assertEqual(r.status, 403, repr(r))
        after = self.settle(before, 4)
        self.assertFalse([v for v in after.label_values() if marker in v.lower()],
                         "a client-invented name became a label value")
        self.assertNotIn(marker, after.text.lower())
        # The wildcard rule is counted under its pattern as written.
        self.assertEqual(delta(after, before, RULE, rule=".wild.test"), 2)
        # Every label on the page is from the config or a bounded set.
        allowed_labels = {"kind", "decision", "reason", "rule", "direction", "type", "client",
                          "result", "le"}
        for n, lb, _ in after.samples:
            self.assertTrue(set(lb) <= allowed_labels, f"{n}{lb}")
            if "client" in lb:
                self.assertRegex(lb["client"], r"^[0-9a-f.:]+$", n)

    def test_metrics_page_is_well_formed(self):
        m = scrape(self.admin_port)
        for fam in (REQ, RULE, BYTES, ACTIVE, "egressd_anomaly_alerts_total", CLIENT,
                    "egressd_client_unique_domains", DNSQ, RELOADS):
            self.assertIn(fam, m.types, f"no # TYPE line for {fam}")
        self.assertEqual(m.types[CONN], "histogram")
        self.assertEqual(m.types[DUR], "histogram")
        for h in (CONN, DUR):
            buckets = sorted(((float(lb["le"]), v) for lb, v in m.find(h + "_bucket")))
            self.assertTrue(buckets and buckets[-1][0] == float("inf"), h)
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), f"{h} buckets are not cumulative")
            self.assertEqual(buckets[-1][1], m.get(h + "_count"), h)
        for fam, typ in m.types.items():
            if typ == "counter":
                self.assertTrue(fam.endswith("_total"), fam)
        r = admin_get(self.admin_port, "/metrics")
        self.assertTrue(r.header("Content-Type", "").startswith("text/plain"), r.head)

    def test_regex_rule_label_escaped(self):
        # Label values are escaped per the text format (backslash, quote).
        before = scrape(self.admin_port)
        r = proxy_get(self.e.port, f"http://re7.test:{self.O}/echo")
        self.assertEqual(r.status, 200, repr(r))
        after = self.settle(before, 1)
        self.assertEqual(delta(after, before, RULE, rule="~re[0-9]\\.test"), 1)
        self.assertTrue(after.has(RULE, rule='~q"x\\d\\.test'), after.text)

    # ---- the other admin paths

    def test_admin_paths(self):
        r = admin_get(self.admin_port, "/healthz")
        self.assertEqual(r.status, 200)
        r = admin_get(self.admin_port, "/readyz")
        self.assertEqual(r.status, 200)
        r = admin_get(self.admin_port, "/nope")
        self.assertEqual(r.status, 404)
        r = admin_get(self.admin_port, "/metrics/extra")
        self.assertEqual(r.status, 404)
        r = admin_get(self.admin_port, "/alerts")
        self.assertEqual(r.status, 200)
        self.assertIsInstance(json.loads(r.body), list)

    # ---- the proxy never reaches egressd itself

    def test_admin_not_reachable_through_proxy(self):
        n0 = scrape(self.admin_port).get(REQ, kind="http", decision="deny", reason="self")
        r = proxy_get(self.e.port, f"http://127.0.0.1:{self.admin_port}/metrics")
        assert_denied(self, r, 403, "self")
        self.assertNotIn(b"egressd_requests_total", r.body)
        st, body, hdrs, p = curl_status("-x", self.e.url, f"http://127.0.0.1:{self.admin_port}/metrics")
        self.assertEqual(st, 403, p.stderr)
        self.assertRegex(hdrs, r"(?im)^x-egressd-reason:\s*self\s*$")
        # Other spellings of the same address.
        for host in ("127.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]"):
            r = proxy_get(self.e.port, f"http://{host}:{self.admin_port}/metrics")
            self.assertEqual((r.status, r.reason), (403, "self"), f"{host}: {r!r}")
        # A name that resolves to egressd itself.
        r = proxy_get(self.e.port, f"http://selfname.test:{self.admin_port}/metrics")
        assert_denied(self, r, 403, "self")
        m = wait_metrics(self.admin_port,
                         lambda m: m.get(REQ, kind="http", decision="deny", reason="self") >= n0 + 7,
                         what="7 refusals counted with reason self")
        self.assertEqual(m.get(REQ, kind="http", decision="deny", reason="self"), n0 + 7)

    def test_proxy_listener_not_reachable_through_proxy(self):
        for authority in (f"127.0.0.1:{self.e.port}", f"127.0.0.1:{self.admin_port}",
                          f"selfname.test:{self.e.port}"):
            r, s, _ = connect_via(self.e.port, authority)
            s.close()
            assert_denied(self, r, 403, "self")
        r = proxy_get(self.e.port, f"http://127.0.0.1:{self.e.port}/")
        assert_denied(self, r, 403, "self")
        r = proxy_get(self.e.port, f"http://selfname.test:{self.e.port}/")
        assert_denied(self, r, 403, "self")



class BoundedClients(EgressdTestCase):
    """limit max_clients=2: client label values come from a bounded table,
    the least recently seen client evicted."""

    @classmethod
    def setUpClass(cls):
        cls.origin = cls.own(HttpOrigin())
        cls.admin_port = free_port()
        rules = f"allow c.test ports={cls.origin.port}\n"
        conf = base_config(rules, hosts="{dir}/hosts", limits={"max_clients": 2},
                           extra=f"admin 127.0.0.1:{cls.admin_port}")
        cls.e = cls.own(Egressd(conf, files={"hosts": "127.0.0.1 c.test\n"})).start()

    def clients(self):
        m = scrape(self.admin_port)
        a = {lb["client"]: v for lb, v in m.find(CLIENT)}
        b = {lb["client"] for lb, _ in m.find("egressd_client_unique_domains")}
        self.assertEqual(set(a), b)
        return a

    def test_bounded_client_labels(self):
        srcs = ["127.0.5.1", "127.0.5.2", "127.0.5.3"]
        try:
            for s in srcs:
                with socket.socket() as t:
                    t.bind((s, 0))
        except OSError:
            self.skipTest("cannot bind 127.0.5.x")
        for i, s in enumerate(srcs):
            for _ in range(i + 1):
                self.assertEqual(proxy_get(self.e.port, f"http://c.test:{self.origin.port}/", source=s).status, 200)
        wait_until(lambda: sum(self.clients().values()) >= 5, 10, 0.05, "5 requests per client counted")
        self.assertEqual(self.clients(), {"127.0.5.2": 2, "127.0.5.3": 3})
        # 127.0.5.1 comes back: the least recently seen (127.0.5.2) goes.
        self.assertEqual(proxy_get(self.e.port, f"http://c.test:{self.origin.port}/", source=srcs[0]).status, 200)
        wait_until(lambda: "127.0.5.1" in self.clients(), 10, 0.05, "127.0.5.1 back in the table")
        self.assertEqual(self.clients(), {"127.0.5.3": 3, "127.0.5.1": 1})



class Drain(EgressdTestCase):
    """While draining after SIGTERM, /readyz turns 503 (take the pod out of
    the Service) and /healthz stays 200; open tunnels keep working."""

    @classmethod
    def setUpClass(cls):
        cls.echo = cls.own(TcpSink("echo"))
        cls.admin_port = free_port()
        conf = base_config(f"allow d.test ports={cls.echo.port}\n", hosts="{dir}/hosts",
                           extra=f"admin 127.0.0.1:{cls.admin_port}")
        cls.e = cls.own(Egressd(conf, files={"hosts": "127.0.0.1 d.test\n"})).start()

    def test_readyz_during_drain(self):
        self.assertEqual(admin_get(self.admin_port, "/readyz").status, 200)
        r, s, bs = connect_via(self.e.port, f"d.test:{self.echo.port}")
        try:
            self.assertEqual(r.status, 200)
            self.e.send_signal(signal.SIGTERM)
            wait_until(lambda: admin_get(self.admin_port, "/readyz").status == 503, 4.0, 0.05,
                       "/readyz 503 while draining")
            self.assertEqual(admin_get(self.admin_port, "/healthz").status, 200)
            self.assertEqual(echo_roundtrip(s, bs, b"draining\n"), b"draining\n")
        finally:
            s.close()
        self.assertEqual(self.e.proc.wait(10), 0)


if __name__ == "__main__":
    main()
