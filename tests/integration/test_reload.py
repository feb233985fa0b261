#!/usr/bin/env python3
"""SIGHUP reload and SIGUSR1 log reopen through the real binary (SPEC
"Command line": SIGHUP reloads the config atomically, an invalid config is
reported and the old one keeps serving, open connections are never dropped
by a reload; SIGUSR1 reopens log files).

Each test runs its own egressd (a reload changes it). A reload is confirmed
by egressd's stderr ("configuration reloaded" / "... failed; the previous
configuration keeps serving"), never by sleeping."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     TcpSink, assert_denied, base_config, client_hello, connect_from, connect_via,
                     echo_roundtrip, free_port, main, proxy_get, read_response, request_bytes,
                     source_bindable, wait_until)
from modes_util import (metric_value, scrape, sighup_and_wait, wait_listening,  # noqa: E402
                        write_config)

NAMES = ("a.test", "b.test", "c.test", "inc.test", "grp.test")


class Reload(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        for n in NAMES:
            cls.dns.add(n, a=["127.0.0.1"])
        cls.origin = cls.own(HttpOrigin())
        cls.echo = cls.own(TcpSink("echo"))
        cls.O, cls.E = cls.origin.port, cls.echo.port

    def start(self, rules, extra="", files=None):
        self.extra = extra
        e = Egressd(base_config(rules, extra=extra), dns=self.dns, files=files)
        self.addCleanup(e.cleanup)
        e.start()
        return e

    def reconfigure(self, e, rules, ok=True, extra=None):
        write_config(e, base_config(rules, extra=self.extra if extra is None else extra))
        sighup_and_wait(e, ok=ok)

    def get(self, e, host, path="/echo/r", source=None):
        return proxy_get(e.port, f"http://{host}:{self.O}{path}", source=source)

    # ----------------------------------------------------------------- rules

    def test_new_rule_takes_effect_for_new_connections(self):
        e = self.start(f"allow a.test ports={self.O},{self.E}\n")
        assert_denied(self, self.get(e, "b.test"), 403, "not_allowed")
        self.reconfigure(e, f"allow a.test ports={self.O},{self.E}\nallow b.test ports={self.O},{self.E}\n")
        r = self.get(e, "b.test")
        self.assertEqual(r.status, 200, r)
        r, s, bs = connect_via(e.port, f"b.test:{self.E}")
        s.close()
        self.assertEqual(r.status, 200, r)
        self.assertTrue(e.running())
        e.stop()

    def test_removed_rule_and_new_deny_refuse_new_connections(self):
        e = self.start(f"allow a.test ports={self.O}\nallow c.test ports={self.O}\n")
        self.assertEqual(self.get(e, "a.test").status, 200)
        self.assertEqual(self.get(e, "c.test").status, 200)
        self.reconfigure(e, f"allow .test ports={self.O}\ndeny a.test\n")
        assert_denied(self, self.get(e, "a.test"), 403, "denied_rule")
        self.assertEqual(self.get(e, "c.test").status, 200)
        self.reconfigure(e, f"allow b.test ports={self.O}\n")
        assert_denied(self, self.get(e, "c.test"), 403, "not_allowed")
        e.stop()

    def test_open_tunnel_survives_reload(self):
        e = self.start(f"allow a.test ports={self.E}\n")
        r, s, bs = connect_via(e.port, f"a.test:{self.E}")
        try:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(echo_roundtrip(s, bs, b"before"), b"before")
            # a.test is removed: the open tunnel stays, new ones are refused.
            self.reconfigure(e, f"allow b.test ports={self.E}\n")
            self.assertEqual(echo_roundtrip(s, bs, b"after the reload"), b"after the reload")
            r2, s2, bs2 = connect_via(e.port, f"a.test:{self.E}")
            s2.close()
            assert_denied(self, r2, 403, "not_allowed")
            # And a second reload, an invalid one this time, changes nothing for it.
            self.reconfigure(e, "allow a.test ports=notaport\n", ok=False)
            self.assertEqual(echo_roundtrip(s, bs, b"still here"), b"still here")
            cport = s.getsockname()[1]
        finally:
            s.close()
        rec = e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["host"]), ("connect", "allow", "a.test"), rec)
        self.assertEqual(rec["bytes_up"], len(b"before") + len(b"after the reload") + len(b"still here"), rec)
        e.stop()

    def test_keep_alive_connection_judged_by_new_config(self):
        # A client connection kept alive across a reload: its next request is
        # a new decision, taken under the config in force (a revoked name must
        # not stay reachable for as long as the client keeps the connection).
        e = self.start(f"allow a.test ports={self.O}\nallow b.test ports={self.O}\n")
        s = connect_from(e.port)
        try:
            bs = BufferedSocket(s)
            s.sendall(request_bytes("GET", f"http://a.test:{self.O}/echo/1", f"a.test:{self.O}", close=False))
            self.assertEqual(read_response(bs).status, 200)
            self.reconfigure(e, f"allow a.test ports={self.O}\n")
            before = len(self.origin.requests)
            s.sendall(request_bytes("GET", f"http://b.test:{self.O}/echo/2", f"b.test:{self.O}", close=False))
            r = read_response(bs)
            self.assertIsNotNone(r, "the kept-alive connection was dropped by the reload")
            self.assertEqual(r.status, 403,
                             f"a request on a connection opened before the reload used the old config: {r!r}")
            self.assertEqual(r.reason, "not_allowed", r)
            self.assertEqual(len([q for q in self.origin.requests[before:] if "b.test" in str(q["headers"])]), 0)
        finally:
            s.close()
        e.stop()

    def test_invalid_config_reported_old_keeps_serving(self):
        admin = free_port()
        e = self.start(f"allow a.test ports={self.O}\n", extra=f"admin 127.0.0.1:{admin}")
        wait_listening(admin)
        # An unknown option on line N: reported as FILE:LINE, nothing changes.
        write_config(e, base_config(f"allow a.test ports={self.O}\nallow b.test ports={self.O} bogus=1\n",
                                    extra=self.extra))
        bad_line = e.conf_text.splitlines().index(f"allow b.test ports={self.O} bogus=1") + 1
        sighup_and_wait(e, ok=False)
        self.assertTrue(e.running())
        self.assertIn(f"{e.conf_path}:{bad_line}:", e.stderr())
        self.assertEqual(self.get(e, "a.test").status, 200)
        assert_denied(self, self.get(e, "b.test"), 403, "not_allowed")
        wait_until(lambda: (metric_value(scrape(admin), "egressd_config_reloads_total", result="error") or 0) >= 1,
                   10, what='egressd_config_reloads_total{result="error"}')
        # A config that cannot be read at all (its include is missing).
        write_config(e, base_config(f"allow b.test ports={self.O}\ninclude {{dir}}/missing-dir/x.conf\n",
                                    extra=self.extra))
        sighup_and_wait(e, ok=False)
        assert_denied(self, self.get(e, "b.test"), 403, "not_allowed")
        self.assertEqual(self.get(e, "a.test").status, 200)
        # Fixed: the next reload applies it.
        self.reconfigure(e, f"allow b.test ports={self.O}\n")
        self.assertEqual(self.get(e, "b.test").status, 200)
        assert_denied(self, self.get(e, "a.test"), 403, "not_allowed")
        e.stop()

    def test_include_file_change_reloaded(self):
        e = self.start(f"allow a.test ports={self.O}\ninclude {{dir}}/projects/*.conf\n",
                       files={"projects/one.conf": f"allow a.test ports={self.O}\n"})
        assert_denied(self, self.get(e, "inc.test"), 403, "not_allowed")
        with open(os.path.join(e.dir, "projects", "two.conf"), "w") as f:
            f.write(f"allow inc.test ports={self.O}\n")
        sighup_and_wait(e)
        self.assertEqual(self.get(e, "inc.test").status, 200)
        e.stop()

    def test_mode_report_toggled_by_reload(self):
        e = self.start(f"allow a.test ports={self.O}\n")
        assert_denied(self, self.get(e, "c.test", "/echo/enforced"), 403, "not_allowed")
        self.reconfigure(e, f"allow a.test ports={self.O}\n", extra="mode report")
        r = self.get(e, "c.test", "/echo/reported")
        self.assertEqual(r.status, 200, r)
        rec = e.wait_log(lambda x: x.get("path") == "/echo/reported")
        self.assertEqual((rec["decision"], rec["reason"]), ("report", "not_allowed"), rec)
        self.reconfigure(e, f"allow a.test ports={self.O}\n", extra="mode enforce")
        assert_denied(self, self.get(e, "c.test"), 403, "not_allowed")
        e.stop()

    def test_group_change_by_reload(self):
        if not source_bindable("127.0.2.1"):
            self.skipTest("cannot bind 127.0.2.1")
        rules = f"allow grp.test ports={self.O} group=builders\n"
        e = self.start(rules, extra="group builders 127.0.2.0/24")
        self.assertEqual(self.get(e, "grp.test", source="127.0.2.1").status, 200)
        assert_denied(self, self.get(e, "grp.test", source="127.0.3.1"), 403, "not_allowed")
        self.reconfigure(e, rules, extra="group builders 127.0.3.0/24")
        assert_denied(self, self.get(e, "grp.test", source="127.0.2.1"), 403, "not_allowed")
        self.assertEqual(self.get(e, "grp.test", source="127.0.3.1").status, 200)
        rec = e.wait_log(lambda x: x.get("client", "").startswith("127.0.3.1:") and x.get("decision") == "allow")
        self.assertEqual(rec["group"], "builders", rec)
        e.stop()

    def test_sni_listener_follows_reload(self):
        sni = free_port()
        extra = f"listen 127.0.0.1:{sni} mode=sni port={self.E}"
        e = self.start(f"allow a.test ports={self.E}\n", extra=extra)
        wait_listening(sni)

        def via_sni(name):
            # True when the ClientHello went through (the echo target sends
            # it back), False when egressd closed the connection.
            hello = client_hello(name)
            s = connect_from(sni)
            try:
                s.sendall(hello)
                got = b""
                while len(got) < len(hello):
                    data = s.recv(65536)
                    if not data:
                        break
                    got += data
                return got == hello
            except ConnectionResetError:
                return False
            finally:
                s.close()
        self.assertFalse(via_sni("b.test"))
        self.assertTrue(via_sni("a.test"))
        self.reconfigure(e, f"allow b.test ports={self.E}\n", extra=extra)
        self.assertTrue(via_sni("b.test"))
        self.assertFalse(via_sni("a.test"))
        e.stop()

    def test_listener_change_needs_restart_rules_still_apply(self):
        # A new listen line cannot be bound by a reload: said on stderr; the
        # rules of the same file still take effect.
        e = self.start(f"allow a.test ports={self.O}\n")
        extra_port = free_port()
        self.reconfigure(e, f"allow a.test ports={self.O}\nallow b.test ports={self.O}\n",
                         extra=f"listen 127.0.0.1:{extra_port}")
        self.assertIn("restart", e.stderr())
        self.assertEqual(self.get(e, "b.test").status, 200)
        self.assertTrue(e.running())
        e.stop()

    # ------------------------------------------------------------- SIGUSR1

    def test_sigusr1_reopens_access_log(self):
        e = self.start(f"allow a.test ports={self.O},{self.E}\n")
        self.assertEqual(self.get(e, "a.test", "/echo/first").status, 200)
        e.wait_log(lambda x: x.get("path") == "/echo/first")
        # A tunnel open across the rotation: its line is written when it ends.
        r, s, bs = connect_via(e.port, f"a.test:{self.E}")
        self.assertEqual(r.status, 200, r)
        rotated = e.access_log + ".1"
        os.rename(e.access_log, rotated)
        e.send_signal(signal.SIGUSR1)
        wait_until(lambda: os.path.exists(e.access_log), 10, what="the access log reopened at its path")
        try:
            self.assertEqual(echo_roundtrip(s, bs, b"rotation"), b"rotation")
            cport = s.getsockname()[1]
        finally:
            s.close()
        self.assertEqual(self.get(e, "a.test", "/echo/second").status, 200)
        e.wait_log(lambda x: x.get("path") == "/echo/second")
        e.log_for_client(cport)
        with open(rotated) as f:
            old = f.read()
        self.assertIn("/echo/first", old)
        self.assertNotIn("/echo/second", old, "a line written after SIGUSR1 went to the renamed file")
        self.assertNotIn(f":{cport}\"", old)
        new_paths = [x.get("path") for x in e.read_log()]
        self.assertNotIn("/echo/first", new_paths)
        # Twice more (logrotate runs daily): still one file per rotation.
        for i in range(2):
            os.rename(e.access_log, f"{e.access_log}.r{i}")
            e.send_signal(signal.SIGUSR1)
            wait_until(lambda: os.path.exists(e.access_log), 10, what="the access log reopened")
            self.assertEqual(self.get(e, "a.test", f"/echo/r{i}").status, 200)
            e.wait_log(lambda x, i=i: x.get("path") == f"/echo/r{i}")
        self.assertTrue(e.running())
        e.stop()


if __name__ == "__main__":
    main()
