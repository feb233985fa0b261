#!/usr/bin/env python3
"""Metrics with a large allowlist: start-up and reload must not slow down
with the number of rules beyond parsing them (a per-rule metric series must
not cost a scan over every other series), and a rule far down a large
allowlist is still counted in egressd_rule_requests_total{rule}."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Egressd, EgressdTestCase, HttpOrigin, base_config, egressd_bin,  # noqa: E402
                     free_port, main, port_listening, proxy_get, wait_until)
from limits_util import (scrape)  # noqa: E402

N_RULES = 25_000
# `egressd --check` parses the same file in well under a second; serving
# it may cost a few times that, not tens of seconds.
MAX_SECONDS = 2.0


class LargeAllowlist(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = cls.own(HttpOrigin())
        cls.admin_port = free_port()
        cls.last = f"host{N_RULES - 1}.example.test"
        rules = "".join(f"allow host{i}.example.test ports={cls.origin.port} rate=100/s\n"
                        for i in range(N_RULES))
        conf = base_config(rules, hosts="{dir}/hosts", extra=f"admin 127.0.0.1:{cls.admin_port}")
        cls.e = cls.own(Egressd(conf, files={"hosts": f"127.0.0.1 {cls.last} host0.example.test\n"}))
        t0 = time.monotonic()
        subprocess.run([egressd_bin(), "-c", cls.e.conf_path, "--check"], check=True,
                       capture_output=True, timeout=60)
        cls.check_seconds = time.monotonic() - t0
        t0 = time.monotonic()
        cls.e.start(wait=False)
        # Bounded wait; the assertion on the time is in a test.
        deadline = t0 + 20
        while not port_listening(cls.e.port) and time.monotonic() < deadline and cls.e.running():
            time.sleep(0.02)
        cls.start_seconds = time.monotonic() - t0
        cls.e.wait_ready(timeout=1)

    def test_1_start_up_time(self):
        self.assertLess(self.start_seconds, max(MAX_SECONDS, 20 * self.check_seconds),
                        f"{N_RULES} rules: --check took {self.check_seconds:.2f}s, start-up "
                        f"{self.start_seconds:.2f}s")

    def test_2_reload_time(self):
        before = scrape(self.admin_port).get("egressd_config_reloads_total", result="ok")
        t0 = time.monotonic()
        self.e.send_signal(signal.SIGHUP)
        wait_until(lambda: scrape(self.admin_port).get("egressd_config_reloads_total", result="ok") > before,
                   20, 0.05, "the reload")
        dt = time.monotonic() - t0
        self.assertLess(dt, max(MAX_SECONDS, 20 * self.check_seconds),
                        f"{N_RULES} rules: reload took {dt:.2f}s (--check {self.check_seconds:.2f}s)")

    def test_3_last_rule_counted(self):
        for host in ("host0.example.test", self.last):
            r = proxy_get(self.e.port, f"http://{host}:{self.origin.port}/echo")
            self.assertEqual(r.status, 200, repr(r))
        m = wait_until(lambda: (lambda m: m if m.get("egressd_requests_total", kind="http", decision="allow",
                                                     reason="none") >= 2 else None)(scrape(self.admin_port)),
                       10, 0.05, "2 requests counted")
        self.assertEqual(m.get("egressd_rule_requests_total", rule="host0.example.test"), 1)
        self.assertEqual(m.get("egressd_rule_requests_total", rule=self.last), 1,
                         f"the request matching rule #{N_RULES} is not counted under its rule")


if __name__ == "__main__":
    main()
