#!/usr/bin/env python3
"""The default deployment (SPEC "Default deployment"): conf/egressd.conf
serves on 127.0.0.1:3128 and allows the AI APIs and package registries
agents need. Checked by behaviour: the shipped allowlist is loaded with only
the listener, resolver and log redirected to the test's own (every name
resolves to 127.0.0.1 through the test's DNS server, so nothing leaves the
machine), and every SPEC name must be allowed on 443 while others are not."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SOURCE, DnsServer, Egressd, EgressdTestCase, clean_env,  # noqa: E402
                     connect_tunnel, egressd_bin, main)

SPEC_NAMES = ["api.anthropic.com", "api.openai.com", "sentry.io", "statsig.com", "github.com",
              "api.github.com", "codeload.github.com", "pypi.org", "files.pythonhosted.org",
              "crates.io", "index.crates.io", "static.crates.io", "proxy.golang.org",
              "sum.golang.org", "pkg.go.dev", "repo.maven.apache.org", "plugins.gradle.org",
              "registry.npmjs.org", "nodejs.org"]
NOT_ALLOWED = ["evil.example.com", "api.anthropic.com.evil.example", "example.org"]
REDIRECTED = ("listen", "resolver", "hosts", "access_log", "admin", "allow_net", "timeout")


class DefaultConf(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.path = SOURCE / "conf" / "egressd.conf"
        if not cls.path.exists():
            raise AssertionError(f"{cls.path} is missing")
        cls.text = cls.path.read_text()
        cls.dns = cls.own(DnsServer())
        for n in SPEC_NAMES + NOT_ALLOWED:
            cls.dns.add(n, a=["127.0.0.1"])
        kept = [ln if not ln.strip().split(" ", 1)[0] in REDIRECTED else "# (test) " + ln
                for ln in cls.text.splitlines()]
        conf = "\n".join([
            "listen {listen}", "resolver {resolver}", "hosts off", "access_log {access_log}",
            # nothing listens on 127.0.0.1:443 (or it is harmless): an allowed
            # name ends as 502 upstream_unreachable, a refused one as 403
            "allow_net 127.0.0.0/8", "timeout drain=5s connect=3s",
        ] + kept) + "\n"
        cls.e = cls.own(Egressd(conf, dns=cls.dns)).start()

    def test_listens_on_3128_loopback(self):
        listens = re.findall(r"^\s*listen\s+(\S+)", self.text, re.M)
        self.assertIn("127.0.0.1:3128", listens)

    def test_check_default_file(self):
        # `egressd --check` without -c validates conf/egressd.conf
        p = subprocess.run([egressd_bin(), "--check"], cwd=str(SOURCE), capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL, env=clean_env())
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_spec_names_allowed_on_443(self):
        for name in SPEC_NAMES:
            with self.subTest(name=name):
                r, s, _ = connect_tunnel(self.e, f"{name}:443")
                s.close()
                self.assertIsNotNone(r)
                self.assertIn(r.status, (200, 502), f"{name}: {r!r}")
                if r.status == 502:
                    self.assertEqual(r.reason, "upstream_unreachable", r)

    def test_other_names_refused(self):
        for name in NOT_ALLOWED:
            with self.subTest(name=name):
                r, s, _ = connect_tunnel(self.e, f"{name}:443")
                s.close()
                self.assertEqual((r.status, r.reason), (403, "not_allowed"), r)
                self.assertFalse(self.dns.queried(name))


if __name__ == "__main__":
    main()
