#!/usr/bin/env python3
"""Traffic-anomaly alerts through the real binary (SPEC "Anomaly metrics"):
the network-monitor scenario of ../shared/scenarios/anomaly.md replayed
request by request, and action=block:DURATION.

Scenario notes (what the rules imply, asserted here):
- no alert after #1-#5 nor after #7; domain_diversity and error_rate first at
  #8 (6 distinct hosts > 5; 3 errors of 8 = 37.5% > 30%); large_outbound at
  #9 naming unknown4 with 150000 bytes against 100K = 102400.
- The scenario text says the totals after #11 are 159,300 bytes out, but its
  own rows add up to 2000+1500+500+300+3000+5*500+150000 = 159,800, which is
  what is asserted (when the errors are origin 404s, so that their bodies do
  go upstream). When the errors are denials, egressd never sends their
  bodies upstream, so 157,300 bytes go out.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Egressd, EgressdTestCase, HttpOrigin, TcpSink, assert_denied,  # noqa: E402
                     base_config, connect_via, echo_roundtrip, free_port, gen_bytes, main,
                     proxy_get, source_bindable, wait_until)
from limits_util import (admin_alerts, alert_lines, request_lines, scrape,  # noqa: E402
                         wait_metrics)

NORMAL = [("api.openai.test", 2000), ("api.openai.test", 1500), ("scholar.google.test", 500),
          ("arxiv.test", 300), ("api.openai.test", 3000)]
SUSPICIOUS = [("unknown1.test", 500, "error"), ("unknown2.test", 500, "error"),
              ("unknown3.test", 500, "error"), ("unknown4.test", 150000, "ok"),
              ("unknown5.test", 500, "error"), ("unknown6.test", 500, "error")]
ALL_NAMES = sorted({h for h, _ in NORMAL} | {h for h, _, _ in SUSPICIOUS})
ALERT_TYPES = ("domain_diversity", "large_outbound", "total_outbound", "request_rate", "error_rate")
ANOMALY = "anomaly unique_domains=5 bytes_out=100K error_rate=30% min_requests=5 requests=1000/m"


def hosts_file(names):
    return "".join(f"127.0.0.1 {n}\n" for n in names)


class _Scenario:
    """Replays the scenario; subclasses say how an error is produced."""

    ERRORS_ARE_DENIALS = False
    EXPECTED_BYTES_OUT = None

    @classmethod
    def setUpClass(cls):
        cls.origin = cls.own(HttpOrigin())
        O = cls.origin.port
        cls.O = O
        cls.admin_port = free_port()
        allowed = [h for h, _ in NORMAL] + ["unknown4.test"]
        if not cls.ERRORS_ARE_DENIALS:
            allowed += [h for h, _, _ in SUSPICIOUS]
        rules = "".join(f"allow {h} ports={O}\n" for h in sorted(set(allowed)))
        conf = base_config(rules, hosts="{dir}/hosts",
                           extra=f"admin 127.0.0.1:{cls.admin_port}\n{ANOMALY}")
        cls.e = cls.own(Egressd(conf, files={"hosts": hosts_file(ALL_NAMES)})).start()

    def post(self, host, size, error):
        path = "/status?code=404" if error and not self.ERRORS_ARE_DENIALS else "/upload"
        body = gen_bytes(size, seed=size)
        r = proxy_get(self.e.port, f"http://{host}:{self.O}{path}", method="POST", body=body)
        self.assertIsNotNone(r, f"no response for {host}")
        if not error:
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.json()["len"], size)
        elif self.ERRORS_ARE_DENIALS:
            assert_denied(self, r, 403, "not_allowed", host)
        else:
            self.assertEqual(r.status, 404, repr(r))
        return r

    def step(self, n, host, size, error):
        """Request #n; returns once its access-log line is written (the
        alerts it raised are written before it)."""
        self.post(host, size, error)
        wait_until(lambda: len(request_lines(self.e)) >= n, 10.0, 0.02, f"the log line of #{n}")

    def alerts_now(self):
        return [(a["alert"], a["host"]) for a in alert_lines(self.e)]

    def test_scenario(self):
        before = scrape(self.admin_port)
        # Normal phase: no alert may fire.
        for i, (host, size) in enumerate(NORMAL, 1):
            self.step(i, host, size, False)
            self.assertEqual(self.alerts_now(), [], f"alert after #{i}")
        self.assertEqual(admin_alerts(self.admin_port), [])
        m = scrape(self.admin_port)
        for t in ALERT_TYPES:
            self.assertEqual(m.get("egressd_anomaly_alerts_total", type=t), 0, t)

        # Suspicious phase.
        n = len(NORMAL)
        for host, size, outcome in SUSPICIOUS[:2]:  # #6, #7
            n += 1
            self.step(n, host, size, outcome == "error")
        self.assertEqual(self.alerts_now(), [], "alert before #8 (error rate at #7 is 28.6%)")
        self.assertEqual(admin_alerts(self.admin_port), [])

        n += 1
        self.step(n, "unknown3.test", 500, True)  # #8
        got = alert_lines(self.e)
        self.assertEqual(sorted(a["alert"] for a in got), ["domain_diversity", "error_rate"], got)
        by = {a["alert"]: a for a in got}
        for a in got:
            for field in ("alert", "client", "value", "threshold", "host", "ts"):
                self.assertIn(field, a, a)
            self.assertEqual(a["client"].rsplit(":", 1)[0] if a["client"].count(":") == 1 else a["client"],
                             "127.0.0.1", a)
            self.assertEqual(a["host"], "unknown3.test", a)
        self.assertEqual(by["domain_diversity"]["value"], 6)
        self.assertEqual(by["domain_diversity"]["threshold"], 5)
        self.assertAlmostEqual(float(by["error_rate"]["value"]), 37.5, places=3)
        self.assertAlmostEqual(float(by["error_rate"]["threshold"]), 30.0, places=3)
        # Alerts precede the request line that raised them.
        log = self.e.read_log()
        idx8 = max(i for i, x in enumerate(log) if x.get("host") == "unknown3.test" and "alert" not in x)
        self.assertTrue(all(i < idx8 for i, x in enumerate(log) if "alert" in x))

        n += 1
        self.step(n, "unknown4.test", 150000, False)  # #9
        got = alert_lines(self.e)
        self.assertEqual([a["alert"] for a in got][2:], ["large_outbound"], got)
        lo = got[2]
        self.assertEqual(lo["host"], "unknown4.test")
        self.assertEqual(lo["value"], 150000)
        self.assertEqual(lo["threshold"], 102400)

        for host, size, outcome in SUSPICIOUS[4:]:  # #10, #11
            n += 1
            self.step(n, host, size, outcome == "error")
        self.assertEqual(n, 11)
        # No flooding: one alert per type per client per window.
        got = alert_lines(self.e)
        self.assertEqual(sorted(a["alert"] for a in got), ["domain_diversity", "error_rate", "large_outbound"])

        # /alerts: the same three, newest last.
        api = admin_alerts(self.admin_port)
        self.assertEqual(sorted(a["alert"] for a in api[:2]), ["domain_diversity", "error_rate"], api)
        self.assertEqual([a["alert"] for a in api[2:]], ["large_outbound"], api)
        self.assertEqual(api[2]["host"], "unknown4.test")
        self.assertEqual(api[2]["value"], 150000)

        # Metrics and totals after #11.
        after = wait_metrics(self.admin_port,
                             lambda m: m.get("egressd_request_duration_seconds_count")
                             - before.get("egressd_request_duration_seconds_count") >= 11,
                             what="11 requests counted")
        expect = {"domain_diversity": 1, "error_rate": 1, "large_outbound": 1,
                  "total_outbound": 0, "request_rate": 0}
        for t, v in expect.items():
            self.assertEqual(after.get("egressd_anomaly_alerts_total", type=t), v, t)
        self.assertEqual(after.get("egressd_client_requests_total", client="127.0.0.1"), 11)
        self.assertEqual(after.get("egressd_client_unique_domains", client="127.0.0.1"), 9)
        reqs = request_lines(self.e)
        self.assertEqual(len(reqs), 11)
        self.assertEqual(len({x["host"] for x in reqs}), 9)
        self.assertEqual(sum(1 for x in reqs if x["status"] >= 400), 5)
        self.assertEqual(sum(x["bytes_up"] for x in reqs), self.EXPECTED_BYTES_OUT)
        up = after.get("egressd_bytes_total", direction="up") - before.get("egressd_bytes_total", direction="up")
        self.assertEqual(up, self.EXPECTED_BYTES_OUT)


class ScenarioOrigin404(_Scenario, EgressdTestCase):
    """Errors are 404s from the origin: every body goes upstream."""
    ERRORS_ARE_DENIALS = False
    EXPECTED_BYTES_OUT = 159_800  # the rows' sum (the scenario text's 159,300 is a typo)


class ScenarioDenials(_Scenario, EgressdTestCase):
    """Errors are denials (403 not_allowed): denied hosts count as distinct
    hosts and errors, but their bodies never go upstream."""
    ERRORS_ARE_DENIALS = True
    EXPECTED_BYTES_OUT = 159_800 - 5 * 500


class Block(EgressdTestCase):
    """anomaly action=block:2s: after an alert the client's new requests get
    403 anomaly_block for 2 s; other clients are unaffected."""

    @classmethod
    def setUpClass(cls):
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        O, E = cls.origin.port, cls.echo.port
        cls.O, cls.E = O, E
        cls.admin_port = free_port()
        names = ["b1.test", "b2.test", "b3.test"]
        rules = "".join(f"allow {n} ports={O},{E}\n" for n in names)
        # Only domain_diversity can fire: 3 distinct hosts > 2.
        anomaly = "anomaly unique_domains=2 min_requests=100000 requests=100000/m action=block:2s"
        conf = base_config(rules, hosts="{dir}/hosts", extra=f"admin 127.0.0.1:{cls.admin_port}\n{anomaly}")
        cls.e = cls.own(Egressd(conf, files={"hosts": hosts_file(names)})).start()

    def test_block(self):
        a, b = ("127.0.4.1", "127.0.4.2") if source_bindable("127.0.4.1") and source_bindable("127.0.4.2") else (None, None)
        if a is None:
            self.skipTest("cannot bind 127.0.4.x")
        get = lambda host, src: proxy_get(self.e.port, f"http://{host}:{self.O}/echo", source=src)  # noqa: E731
        self.assertEqual(get("b1.test", a).status, 200)
        self.assertEqual(get("b2.test", a).status, 200)
        t0 = time.monotonic()
        self.assertEqual(get("b3.test", a).status, 200)  # the 3rd distinct host raises the alert
        alert = wait_until(lambda: alert_lines(self.e), 10.0, 0.02, "the domain_diversity alert")
        self.assertEqual(len(alert), 1, alert)
        self.assertEqual(alert[0]["alert"], "domain_diversity")
        self.assertEqual(alert[0]["client"], a)
        self.assertEqual(alert[0].get("action"), "block", "the alert line does not say it blocks")

        # The client's next requests and tunnels are refused.
        r = get("b1.test", a)
        assert_denied(self, r, 403, "anomaly_block")
        r, s, _ = connect_via(self.e.port, f"b1.test:{self.E}", source=a)
        s.close()
        assert_denied(self, r, 403, "anomaly_block")
        # Another client is served meanwhile.
        self.assertEqual(get("b1.test", b).status, 200)
        line = self.e.wait_log(lambda x: x.get("reason") == "anomaly_block")
        self.assertEqual((line["decision"], line["status"]), ("deny", 403))

        # After about 2 s the client is served again.
        def served():
            r = get("b2.test", a)
            if r.status == 200:
                return time.monotonic()
            self.assertEqual((r.status, r.reason), (403, "anomaly_block"))
            return None
        t_ok = wait_until(served, 10.0, 0.25, "the block to end")
        self.assertGreaterEqual(t_ok - t0, 1.9, "the block ended before its 2 s")
        self.assertLessEqual(t_ok - t0, 6.0, "the block lasted far longer than 2 s")
        m = scrape(self.admin_port)
        self.assertEqual(m.get("egressd_anomaly_alerts_total", type="domain_diversity"), 1)
        self.assertGreaterEqual(m.get("egressd_requests_total", kind="http", decision="deny",
                                      reason="anomaly_block"), 1)
        self.assertGreaterEqual(m.get("egressd_requests_total", kind="connect", decision="deny",
                                      reason="anomaly_block"), 1)



class OtherAlerts(EgressdTestCase):
    """large_outbound from a tunnel, total_outbound and request_rate, each
    just below and just above its threshold."""

    @classmethod
    def setUpClass(cls):
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        O, E = cls.origin.port, cls.echo.port
        cls.O, cls.E = O, E
        cls.admin_port = free_port()
        rules = f"allow o.test ports={O},{E}\n"
        anomaly = "anomaly bytes_out=4K total_bytes_out=10K requests=6/m unique_domains=100 min_requests=1000"
        conf = base_config(rules, hosts="{dir}/hosts", extra=f"admin 127.0.0.1:{cls.admin_port}\n{anomaly}")
        cls.e = cls.own(Egressd(conf, files={"hosts": "127.0.0.1 o.test\n"})).start()

    def test_thresholds(self):
        n = 0

        def post(size):
            nonlocal n
            r = proxy_get(self.e.port, f"http://o.test:{self.O}/upload", method="POST",
                         body=gen_bytes(size, seed=size))
            self.assertEqual(r.status, 200, repr(r))
            n += 1
            wait_until(lambda: len(request_lines(self.e)) >= n, 10.0, 0.02, f"log line {n}")
            return [a["alert"] for a in alert_lines(self.e)]

        # #1: exactly bytes_out (4096) is not above it.
        self.assertEqual(post(4096), [])
        # #2: a tunnel sending 4097 bytes is.
        r, s, bs = connect_via(self.e.port, f"o.test:{self.E}")
        self.assertEqual(r.status, 200)
        payload = gen_bytes(4097, seed=1)
        self.assertEqual(echo_roundtrip(s, bs, payload), payload)
        s.close()
        n += 1
        wait_until(lambda: len(request_lines(self.e)) >= n, 10.0, 0.02, "the tunnel's log line")
        got = alert_lines(self.e)
        self.assertEqual([a["alert"] for a in got], ["large_outbound"])
        self.assertEqual((got[0]["value"], got[0]["threshold"], got[0]["host"]), (4097, 4096, "o.test"))
        # Total so far 8193; #3 brings it to exactly 10240 (not above).
        self.assertEqual(post(10240 - 8193), ["large_outbound"])
        # #4: one more byte is above total_bytes_out.
        got = post(1)
        self.assertEqual(got, ["large_outbound", "total_outbound"])
        tot = alert_lines(self.e)[-1]
        self.assertEqual((tot["value"], tot["threshold"]), (10241, 10240))
        # requests=6/m over the 60 s window: the 6th request is not above, the 7th is.
        self.assertEqual(post(10), got)
        self.assertEqual(post(10), got)
        self.assertEqual(n, 6)
        got = post(10)
        self.assertEqual(got[-1], "request_rate", got)
        rr = alert_lines(self.e)[-1]
        self.assertEqual((rr["value"], rr["threshold"]), (7, 6))
        m = scrape(self.admin_port)
        for t, v in {"large_outbound": 1, "total_outbound": 1, "request_rate": 1,
                     "domain_diversity": 0, "error_rate": 0}.items():
            self.assertEqual(m.get("egressd_anomaly_alerts_total", type=t), v, t)


class WindowExpiry(EgressdTestCase):
    """window=2s: hosts fall out of the window, and once a window has
    passed the same alert type can fire again for the same client."""

    @classmethod
    def setUpClass(cls):
        cls.origin = cls.own(HttpOrigin())
        cls.admin_port = free_port()
        cls.names = [f"w{i}.test" for i in range(1, 9)]
        rules = "".join(f"allow {n} ports={cls.origin.port}\n" for n in cls.names)
        anomaly = "anomaly window=2s unique_domains=2 requests=100000/m min_requests=100000"
        conf = base_config(rules, hosts="{dir}/hosts", extra=f"admin 127.0.0.1:{cls.admin_port}\n{anomaly}")
        cls.e = cls.own(Egressd(conf, files={"hosts": hosts_file(cls.names)})).start()

    def visit(self, *hosts):
        n = len(request_lines(self.e)) + len(hosts)
        for h in hosts:
            self.assertEqual(proxy_get(self.e.port, f"http://{h}:{self.origin.port}/").status, 200)
        wait_until(lambda: len(request_lines(self.e)) >= n, 10.0, 0.02, "log lines")

    def wait_window_empty(self):
        wait_metrics(self.admin_port,
                     lambda m: m.get("egressd_client_unique_domains", client="127.0.0.1") == 0,
                     timeout=10.0, what="the 2 s window to empty")

    def test_window(self):
        self.visit("w1.test", "w2.test")
        self.assertEqual(alert_lines(self.e), [])
        self.wait_window_empty()
        # Two new hosts: 2 distinct in the window, not above 2.
        self.visit("w3.test", "w4.test")
        self.assertEqual(alert_lines(self.e), [])
        self.visit("w5.test")  # the 3rd distinct host within 2 s
        got = wait_until(lambda: alert_lines(self.e), 10.0, 0.02, "domain_diversity")
        self.assertEqual([(a["alert"], a["host"], a["value"]) for a in got],
                         [("domain_diversity", "w5.test", 3)])
        self.wait_window_empty()
        self.visit("w6.test", "w7.test", "w8.test")
        got = wait_until(lambda: alert_lines(self.e)[1:], 10.0, 0.02, "a second domain_diversity")
        self.assertEqual([(a["alert"], a["host"]) for a in got], [("domain_diversity", "w8.test")])


class AlertsBounded(EgressdTestCase):
    """/alerts keeps a bounded number of recent alerts, newest last, while
    the counter counts them all."""

    N = 300

    @classmethod
    def setUpClass(cls):
        cls.origin = cls.own(HttpOrigin())
        cls.admin_port = free_port()
        rules = f"allow a.test ports={cls.origin.port}\n"
        conf = base_config(rules, hosts="{dir}/hosts",
                           extra=f"admin 127.0.0.1:{cls.admin_port}\nanomaly bytes_out=1")
        cls.e = cls.own(Egressd(conf, files={"hosts": "127.0.0.1 a.test\n"})).start()

    def test_alerts_bounded(self):
        srcs = [f"127.0.{7 + i // 250}.{1 + i % 250}" for i in range(self.N)]
        if not source_bindable(srcs[-1]):
            self.skipTest("cannot bind 127.0.x.y")
        for s in srcs:  # one large_outbound alert per client
            r = proxy_get(self.e.port, f"http://a.test:{self.origin.port}/upload", method="POST",
                         body=b"xy", source=s)
            self.assertEqual(r.status, 200)
            # The alert is raised when egressd ends the request, which may be
            # after the client has its response and sent the next one (from
            # another worker): wait for it, so the order of the alerts is the
            # order of the clients, not a race (lost under ASan).
            self.e.log_for_client(r.client_port)
        m = wait_metrics(self.admin_port,
                         lambda m: m.get("egressd_anomaly_alerts_total", type="large_outbound") >= self.N,
                         what=f"{self.N} alerts counted")
        self.assertEqual(m.get("egressd_anomaly_alerts_total", type="large_outbound"), self.N)
        api = admin_alerts(self.admin_port)
        self.assertLess(len(api), self.N, "/alerts is not bounded")
        self.assertGreater(len(api), 0)
        # The most recent ones, oldest first.
        self.assertEqual([a["client"] for a in api], srcs[-len(api):])


if __name__ == "__main__":
    main()
