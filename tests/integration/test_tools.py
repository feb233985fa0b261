#!/usr/bin/env python3
"""The operator tools (SPEC "Command line"):

  egressd learn LOG...        an allowlist (JSON) from access-log lines: here
                              from a log egressd itself wrote in `mode report`
                              while clients reached a loopback origin; the
                              learned lines then admit that traffic in enforce
                              mode
  egressd import-squid FILE   a squid.conf allowlist -> an egressd config that
                              `--check` accepts and that, served, admits and
                              refuses what Squid would
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, assert_denied,  # noqa: E402
                     assert_no_sanitizer_report, base_config, clean_env, connect_tunnel,
                     egressd_bin, free_port, http_request, main)


def run(args, stdin=None, cwd=None, timeout=30):
    return assert_no_sanitizer_report(subprocess.run(
        [egressd_bin()] + args, capture_output=True, timeout=timeout, cwd=cwd,
        input=stdin, env=clean_env()))


class Learn(EgressdTestCase):
    """A report-mode egressd with an allowlist of one name; clients use more."""

    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        P = cls.P = cls.origin.port
        for n in ("known.test", "api.new.test", "pkgs.new.test", "tunnel.test", "blocked.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        rules = f"allow known.test ports={P}\ndeny blocked.test\n"
        cls.e = cls.own(Egressd(base_config(rules, extra="mode report"), dns=cls.dns)).start()
        e = cls.e
        statuses = [
            http_request(e, f"http://known.test:{P}/a").status,
            http_request(e, f"http://api.new.test:{P}/v1", method="POST", body=b"{}").status,
            http_request(e, f"http://pkgs.new.test:{P}/simple/").status,
            http_request(e, f"http://pkgs.new.test:{P}/simple/x", method="HEAD").status,
            http_request(e, f"http://127.0.0.1:{P}/literal").status,
        ]
        r, s, _ = connect_tunnel(e, f"tunnel.test:{P}")
        statuses.append(r.status)
        s.sendall(f"GET / HTTP/1.1\r\nHost: tunnel.test:{P}\r\nConnection: close\r\n\r\n".encode())
        while s.recv(65536):
            pass
        s.close()
        cls.statuses = statuses
        e.stop()  # flushes the access log
        cls.log_lines = e.read_log()
        with open(e.access_log, "a") as f:  # what a real log also holds
            f.write('{"alert":"domain_diversity","client":"127.0.0.1","value":11,"threshold":10,"host":"x"}\n')
            f.write("this is not json\n")
        p = run(["learn", e.access_log])
        assert p.returncode == 0, p.stderr
        cls.learned = json.loads(p.stdout)

    def rule(self, pattern):
        for r in self.learned["rules"]:
            if r["pattern"] == pattern:
                return r
        self.fail(f"no rule for {pattern}: {json.dumps(self.learned, indent=1)}")

    def test_traffic_passed_in_report_mode(self):
        self.assertEqual(self.statuses, [200] * 6)
        reported = {l["host"] for l in self.log_lines if l.get("decision") == "report"}
        self.assertTrue({"api.new.test", "pkgs.new.test", "tunnel.test"} <= reported, self.log_lines)

    def test_rules_grouped_by_host(self):
        P = self.P
        # Sorted by labels from the right: test.known, test.new.api, test.new.pkgs, ...
        self.assertEqual([r["pattern"] for r in self.learned["rules"]],
                         ["known.test", "api.new.test", "pkgs.new.test", "tunnel.test"])
        pkgs = self.rule("pkgs.new.test")
        self.assertEqual(pkgs["ports"], [P])
        self.assertEqual(pkgs["methods"], ["GET", "HEAD"])
        self.assertEqual(pkgs["requests"], 2)
        self.assertEqual(pkgs["reported"], 2)
        self.assertEqual(pkgs["reasons"], {"not_allowed": 2})
        self.assertEqual(pkgs["clients"], 1)
        self.assertLessEqual(pkgs["first_seen"], pkgs["last_seen"])
        known = self.rule("known.test")
        self.assertEqual((known["allowed"], known["reported"], known["denied"]), (1, 0, 0))
        self.assertEqual(self.rule("tunnel.test")["methods"], ["CONNECT"])
        self.assertEqual(self.rule("api.new.test")["methods"], ["POST"])

    def test_ip_literal_is_a_network_not_a_pattern(self):
        self.assertEqual([n["address"] for n in self.learned["networks"]], ["127.0.0.1"])
        self.assertNotIn("127.0.0.1", [r["pattern"] for r in self.learned["rules"]])
        self.assertIn(f"# allow_net 127.0.0.1/32 ports={self.P}", "\n".join(self.learned["config"]))

    def test_counts_skipped_lines(self):
        self.assertEqual(self.learned["alert_lines"], 1)
        self.assertEqual(self.learned["skipped_lines"], 1)
        self.assertEqual(self.learned["requests"], len(self.log_lines))
        self.assertEqual(self.learned["files"], [self.e.access_log])

    def test_config_lines(self):
        P = self.P
        cfg = self.learned["config"]
        self.assertTrue(cfg[0].startswith("# egressd learn: 4 names, 1 addresses from 6 requests"), cfg)
        self.assertIn(f"allow api.new.test ports={P} methods=POST", cfg)
        self.assertIn(f"allow pkgs.new.test ports={P} methods=GET,HEAD", cfg)
        self.assertIn(f"allow tunnel.test ports={P}", cfg)

    def test_learned_lines_admit_the_traffic_in_enforce_mode(self):
        """The operator's workflow: paste the learned lines, drop report mode."""
        P = self.P
        learned = "\n".join(self.learned["config"]) + "\n"
        e = self.own(Egressd(base_config(learned), dns=self.dns))
        p = run(["-c", e.conf_path, "--check"])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        e.start()
        self.assertEqual(http_request(e, f"http://pkgs.new.test:{P}/simple/").status, 200)
        self.assertEqual(http_request(e, f"http://api.new.test:{P}/v1", method="POST", body=b"{}").status, 200)
        r, s, _ = connect_tunnel(e, f"tunnel.test:{P}")
        self.assertEqual(r.status, 200, r)
        s.close()
        r = http_request(e, f"http://pkgs.new.test:{P}/simple/", method="DELETE")
        assert_denied(self, r, 403, "method")
        assert_denied(self, http_request(e, f"http://other.new.test:{P}/"), 403, "not_allowed")

    def test_stdin_and_errors(self):
        with open(self.e.access_log, "rb") as f:
            data = f.read()
        p = run(["learn", "-"], stdin=data)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["rules"], self.learned["rules"])
        missing = os.path.join(self.e.dir, "missing.log")
        p = run(["learn", self.e.access_log, missing])
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"")
        self.assertEqual(p.stderr.decode(), f"egressd: cannot read {missing}: No such file or directory\n")
        p = run(["learn"])
        self.assertEqual(p.returncode, 2, p.stderr)


SQUID_CONF = """\
# Squid egress container, as mounted at /etc/squid/squid.conf
http_port 127.0.0.1:{port}
visible_hostname egress
hosts_file {dir}/hosts

acl localnet src 127.0.0.0/8      # the agents (loopback in this test)
acl localnet src 10.0.0.0/8
acl localnet src fc00::/7

acl SSL_ports port 443 {P}
acl Safe_ports port 80 443 {P}
acl CONNECT method CONNECT
acl origin dst 127.0.0.0/8        # the internal origin: reachable by address

acl allowed_sites dstdomain api.anthropic.com .github.test pypi.test
acl registries dstdomain "lists/registries.txt"
acl mirrors dstdom_regex -i ^mirror[0-9]+\\.example\\.test$
acl blocked dstdomain bad.github.test

http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
http_access deny blocked
http_access allow localnet allowed_sites
http_access allow localnet registries
http_access allow localnet mirrors
http_access allow origin
http_access deny all

dns_nameservers 127.0.0.1
access_log daemon:/var/log/squid/access.log squid
cache_dir ufs /var/spool/squid 100 16 256
coredump_dir /var/spool/squid
refresh_pattern . 0 20% 4320
"""


class ImportSquid(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="egressd-squid-")
        cls.dir = cls.tmp.name
        cls.origin = cls.own(HttpOrigin())
        cls.P = cls.origin.port
        cls.port = free_port()
        names = ["api.anthropic.com", "www.github.test", "github.test", "bad.github.test", "pypi.test",
                 "files.registry.test", "mirror7.example.test", "mirrorx.example.test", "evil.test"]
        cls.write("hosts", "".join(f"127.0.0.1 {n}\n" for n in names))
        cls.write("lists/registries.txt", "# registries\nfiles.registry.test\n.npm.test\n")
        cls.squid = cls.write("squid.conf", SQUID_CONF.format(port=cls.port, dir=cls.dir, P=cls.P))
        p = run(["import-squid", cls.squid])
        cls.stderr = p.stderr.decode()
        assert p.returncode == 0, cls.stderr
        cls.text = p.stdout.decode()
        cls.out = cls.write("egressd.conf", cls.text)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.tmp.cleanup()

    @classmethod
    def write(cls, name, text):
        p = os.path.join(cls.dir, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_check_accepts_the_translation(self):
        p = run(["-c", self.out, "--check"])
        self.assertEqual(p.returncode, 0, p.stderr.decode() + self.text)
        self.assertIn(f"{self.out}: OK", p.stdout.decode())

    def test_translation(self):
        P, t = self.P, self.text
        self.assertIn(f"\nlisten 127.0.0.1:{self.port}\n", t)
        self.assertIn("\ngroup localnet 127.0.0.0/8 10.0.0.0/8 fc00::/7\n", t)
        for line in (f"allow api.anthropic.com ports=80,443,{P} group=localnet",
                     f"allow .github.test ports=80,443,{P} group=localnet",
                     f"allow files.registry.test ports=80,443,{P} group=localnet",
                     f"allow ~(?i)mirror[0-9]+\\.example\\.test ports=80,443,{P} group=localnet",
                     f"allow_net 127.0.0.0/8 ports=80,443,{P}",
                     "deny bad.github.test", "resolver 127.0.0.1", "access_log stdout"):
            self.assertIn("\n" + line + "\n", t)
        self.assertIn("# squid: cache_dir ufs /var/spool/squid 100 16 256 (not translated: egressd does not cache)", t)
        self.assertIn("# squid: http_access deny manager (not translated: egressd has no cache manager", t)
        self.assertEqual(self.stderr, "")

    def test_served_translation_decides_like_squid(self):
        P = self.P
        e = self.own(Egressd(self.text, port=self.port)).start()
        for host in ("api.anthropic.com", "www.github.test", "github.test", "pypi.test",
                     "files.registry.test", "mirror7.example.test"):
            r = http_request(e, f"http://{host}:{P}/via-squid-rules")
            self.assertEqual(r.status, 200, f"{host}: {r!r}")
        r, s, _ = connect_tunnel(e, f"pypi.test:{P}")
        self.assertEqual(r.status, 200, r)
        s.close()
        assert_denied(self, http_request(e, f"http://bad.github.test:{P}/"), 403, "denied_rule")
        assert_denied(self, http_request(e, f"http://evil.test:{P}/"), 403, "not_allowed")
        assert_denied(self, http_request(e, f"http://mirrorx.example.test:{P}/"), 403, "not_allowed")
        assert_denied(self, http_request(e, f"http://pypi.test:{free_port()}/"), 403, "port")
        self.assertEqual(http_request(e, f"http://127.0.0.1:{P}/by-address").status, 200)

    def test_errors_name_file_and_line(self):
        bad = self.write("bad.conf", "acl a dstdomain a.test\nhttp_access allow a b\n")
        p = run(["import-squid", bad])
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"")
        self.assertEqual(p.stderr.decode(), f"{bad}:2: http_access names an undefined acl 'b'\n")
        missing = os.path.join(self.dir, "missing.conf")
        p = run(["import-squid", missing])
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"cannot read {missing}: No such file or directory", p.stderr.decode())
        p = run(["import-squid"])
        self.assertEqual(p.returncode, 2)

    def test_nothing_allowed_exits_1_with_the_config(self):
        path = self.write("deny.conf", "http_port 127.0.0.1:3128\nacl ua browser curl\n"
                                       "acl a dstdomain a.test\nhttp_access deny ua\nhttp_access allow a\n")
        p = run(["import-squid", path])
        self.assertEqual(p.returncode, 1)
        err = p.stderr.decode()
        self.assertIn(f"{path}:4: warning: 'http_access deny ua' narrowed", err)
        self.assertIn("the translation allows nothing", err)
        out = self.write("deny.egressd.conf", p.stdout.decode())
        self.assertEqual(run(["-c", out, "--check"]).returncode, 0)

    def test_warnings_on_stderr(self):
        path = self.write("warn.conf", "http_port 127.0.0.1:3128\nacl localnet src 10.0.0.0/8\n"
                                       "acl t time MTWHF 08:00-18:00\nacl a dstdomain a.test\n"
                                       "http_access allow localnet a t\nhttp_access allow localnet\n"
                                       "http_access deny all\n")
        p = run(["import-squid", path])
        self.assertEqual(p.returncode, 0, p.stderr)
        err = p.stderr.decode().splitlines()
        self.assertEqual(err, [
            f"{path}:5: warning: 'http_access allow localnet a t' not translated: acl t (time): "
            "egressd has no time-based rules",
            f"{path}:6: warning: 'http_access allow localnet' allows every destination name"])
        self.assertIn("\nallow ~.* ports=80,443 group=localnet\n", p.stdout.decode())


if __name__ == "__main__":
    main()
