#!/usr/bin/env python3
"""Grants at run time through the real binary (SPEC "Grants at run time"):
denied -> POST /v1/grants -> allowed within 1 s (HTTP and CONNECT), rule
grant:ID in the log, scope by group, a deny still wins, TTL expiry, DELETE,
the token rules (401, 403 off loopback), bad bodies (400 one-liners, 413),
/v1/denials grouping and since=, egressd_grants_active, persistence across
SIGHUP and restarts (state FILE), a corrupt state file refusing to start,
the CLI, and the API refused through the proxy itself (self)."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, HttpOrigin, TcpSink,  # noqa: E402
                     assert_denied, base_config, clean_env, client_hello, connect_from, connect_via,
                     echo_roundtrip, egressd_bin, expect_closed, free_port, main, make_cert, proxy_get,
                     request_bytes, source_bindable, wait_until)
from limits_util import scrape  # noqa: E402
from modes_util import tls_request  # noqa: E402
from test_dns_listen import NXDOMAIN, dns_port, udp_query, wait_answering  # noqa: E402


def api(port, method, path, body=None, token=None, raw=None, headers=None):
    """One request to the admin endpoint. Returns (status, headers, parsed JSON or bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        ctype = r.getheader("Content-Type", "")
        if payload and ctype.startswith("application/json"):
            payload = json.loads(payload)
        return r.status, r, payload
    finally:
        c.close()


def assert_one_line_error(test, status, payload, want_status, part=None):
    test.assertEqual(status, want_status, payload)
    test.assertIsInstance(payload, dict, payload)
    test.assertIsInstance(payload.get("error"), str)
    test.assertNotIn("\n", payload["error"])
    if part:
        test.assertIn(part, payload["error"])


def read_json(path):
    with open(path) as f:
        return json.load(f)


def run_cli(*args, env=None):
    e = clean_env(**(env or {}))
    return subprocess.run([egressd_bin(), "grants", *args], capture_output=True, timeout=30, env=e)


class Grants(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.sink = cls.own(TcpSink("echo"))
        cls.P, cls.S = cls.origin.port, cls.sink.port
        for name in ["allowed.test", "files.test", "tunnel.test", "denied.test", "ttl.test", "group.test",
                     "gone.test", "feed.test", "cli.test", "other.test", "adminname.test", "selfgrant.test"]:
            cls.dns.add(name, a=["127.0.0.1"])
        cls.admin = free_port()
        rules = f"""
admin 127.0.0.1:{cls.admin}
group ci 127.0.0.2/32
allow allowed.test ports={cls.P}
allow adminname.test ports={cls.admin}
deny denied.test
"""
        cls.e = cls.own(Egressd(base_config(rules), dns=cls.dns)).start()

    def url(self, host, path="/echo/x"):
        return f"http://{host}:{self.P}{path}"

    def grant(self, body, want=201):
        status, _, g = api(self.admin, "POST", "/v1/grants", body)
        self.assertEqual(status, want, g)
        return g

    def wait_allowed(self, host, source=None, timeout=1.0):
        """Polls until a request is allowed: the SPEC bound is 1 s after the 201."""
        t0 = time.monotonic()
        while True:
            r = proxy_get(self.e.port, self.url(host), source=source)
            if r is not None and r.status == 200:
                return r
            if time.monotonic() - t0 > timeout:
                self.fail(f"{host} still refused {timeout}s after the grant: {r!r}")
            time.sleep(0.05)

    def test_http_lifecycle(self):
        r = proxy_get(self.e.port, self.url("files.test"))
        assert_denied(self, r, 403, "not_allowed", name="files.test")
        self.assertEqual(r.body, b"egressd: files.test is not on the allowlist (ask the operator to grant it)\n")

        g = self.grant({"pattern": "files.test", "ports": [self.P], "note": "ticket 42"})
        for key in ("id", "pattern", "ports", "agent", "group", "expires", "note", "created", "persisted"):
            self.assertIn(key, g)
        self.assertEqual(g["pattern"], "files.test")
        self.assertEqual(g["ports"], [self.P])
        self.assertIsNone(g["agent"])
        self.assertIsNone(g["group"])
        self.assertIs(g["persisted"], False)
        self.assertRegex(g["expires"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertRegex(g["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

        r = self.wait_allowed("files.test")
        line = self.e.log_for_client(r.client_port)
        self.assertEqual(line["rule"], f"grant:{g['id']}")
        self.assertEqual(line["decision"], "allow")

        status, _, listed = api(self.admin, "GET", "/v1/grants")
        self.assertEqual(status, 200)
        self.assertIn(g["id"], [x["id"] for x in listed])

        status, _, body = api(self.admin, "DELETE", f"/v1/grants/{g['id']}")
        self.assertEqual(status, 204)
        self.assertEqual(body, b"")
        # Deletion is in force for the next request as well.
        wait_until(lambda: proxy_get(self.e.port, self.url("files.test")).status == 403, 1.0,
                   what="denied again after DELETE")
        status, _, body = api(self.admin, "DELETE", f"/v1/grants/{g['id']}")
        assert_one_line_error(self, status, body, 404)
        status, _, body = api(self.admin, "DELETE", "/v1/grants/000000000000")
        assert_one_line_error(self, status, body, 404)

    def test_connect_is_granted(self):
        r, s, _ = connect_via(self.e.port, f"tunnel.test:{self.S}")
        s.close()
        assert_denied(self, r, 403, "not_allowed")
        g = self.grant({"pattern": ".tunnel.test", "ports": [self.S]})
        t0 = time.monotonic()
        while True:
            r, s, bs = connect_via(self.e.port, f"tunnel.test:{self.S}")
            if r is not None and r.status == 200:
                break
            s.close()
            self.assertLess(time.monotonic() - t0, 1.0, f"CONNECT still refused: {r!r}")
            time.sleep(0.05)
        with s:
            echo_roundtrip(s, bs, b"through a grant\n")
        line = self.e.wait_log(lambda e: e.get("kind") == "connect" and e.get("host") == "tunnel.test"
                               and e.get("decision") == "allow")
        self.assertEqual(line["rule"], f"grant:{g['id']}")
        # Another port is still not granted.
        r, s, _ = connect_via(self.e.port, f"tunnel.test:{self.P}")
        s.close()
        assert_denied(self, r, 403, "not_allowed")

    def test_deny_wins(self):
        self.grant({"pattern": "denied.test", "ports": [self.P]})
        self.grant({"pattern": "~.*", "ports": [self.P]})
        time.sleep(0.2)
        r = proxy_get(self.e.port, self.url("denied.test"))
        assert_denied(self, r, 403, "denied_rule")
        self.assertFalse(self.dns.queried("denied.test"))
        for g in api(self.admin, "GET", "/v1/grants")[2]:
            if g["pattern"] in ("denied.test", "~.*"):
                api(self.admin, "DELETE", f"/v1/grants/{g['id']}")

    def test_group_scope(self):
        if not (source_bindable("127.0.0.2") and source_bindable("127.0.0.3")):
            self.skipTest("cannot bind 127.0.0.2/127.0.0.3 as source")
        self.grant({"pattern": "group.test", "ports": [self.P], "group": "ci"})
        self.wait_allowed("group.test", source="127.0.0.2")
        r = proxy_get(self.e.port, self.url("group.test"), source="127.0.0.3")
        assert_denied(self, r, 403, "not_allowed")
        # An agent-scoped grant helps no address-only client.
        self.grant({"pattern": "other.test", "ports": [self.P], "agent": "build-7"})
        time.sleep(0.2)
        r = proxy_get(self.e.port, self.url("other.test"))
        assert_denied(self, r, 403, "not_allowed")

    def test_ttl_expiry(self):
        g = self.grant({"pattern": "ttl.test", "ports": [self.P], "ttl": "2s"})
        self.wait_allowed("ttl.test")
        self.e.wait_log(lambda e: e.get("host") == "ttl.test" and e.get("rule") == f"grant:{g['id']}")
        # Never honoured past its expiry (checked at decision time); gone from
        # the list by the sweeper within about a second after that.
        expires = time.time() + 2.0
        wait_until(lambda: proxy_get(self.e.port, self.url("ttl.test")).status == 403, 4.0,
                   what="denied after the ttl")
        self.assertGreater(time.time(), expires - 0.2)
        wait_until(lambda: g["id"] not in [x["id"] for x in api(self.admin, "GET", "/v1/grants")[2]], 3.0,
                   what="expired grant dropped from GET /v1/grants")

    def test_bad_bodies(self):
        cases = [
            (b"not json", "not valid JSON"),
            (b"[]", "JSON object"),
            (b"{}", "pattern is missing"),
            (json.dumps({"pattern": "a.*.test"}).encode(), "pattern"),
            (json.dumps({"pattern": "a.test", "ports": [70000]}).encode(), "not a port"),
            (json.dumps({"pattern": "a.test", "ports": "443"}).encode(), "ports"),
            (json.dumps({"pattern": "a.test", "ttl": "721h"}).encode(), "720h"),
            (json.dumps({"pattern": "a.test", "ttl": 5}).encode(), "ttl"),
            (json.dumps({"pattern": "a.test", "agent": "a", "group": "g"}).encode(), "not both"),
            (json.dumps({"pattern": "a.test", "agent": "no spaces"}).encode(), "agent"),
            (json.dumps({"pattern": "a.test", "note": "x" * 300}).encode(), "note"),
            (json.dumps({"pattern": "a.test", "colour": "red"}).encode(), "unknown field 'colour'"),
        ]
        for raw, part in cases:
            status, _, body = api(self.admin, "POST", "/v1/grants", raw=raw)
            assert_one_line_error(self, status, body, 400, part)
        status, _, body = api(self.admin, "POST", "/v1/grants",
                              raw=json.dumps({"pattern": "a.test", "note": "x" * (70 * 1024)}).encode())
        assert_one_line_error(self, status, body, 413)
        status, r, body = api(self.admin, "PUT", "/v1/grants", raw=b"{}")
        assert_one_line_error(self, status, body, 405)
        self.assertIn("POST", r.getheader("Allow"))
        # The other endpoints are as they were.
        self.assertEqual(api(self.admin, "GET", "/healthz")[0], 200)
        self.assertEqual(api(self.admin, "GET", "/metrics")[0], 200)

    def test_denials_feed(self):
        before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        for _ in range(3):
            assert_denied(self, proxy_get(self.e.port, self.url("feed.test")), 403, "not_allowed")
        assert_denied(self, proxy_get(self.e.port, f"http://feed.test:{self.S}/"), 403, "not_allowed")
        status, _, groups = api(self.admin, "GET", f"/v1/denials?since={before}")
        self.assertEqual(status, 200)
        mine = [g for g in groups if g["host"] == "feed.test"]
        self.assertEqual(len(mine), 2, groups)
        by_port = {g["port"]: g for g in mine}
        g = by_port[self.P]
        self.assertEqual(g["count"], 3)
        self.assertEqual(g["client"], "127.0.0.1")
        self.assertEqual(g["agent"], "")
        self.assertEqual(g["reason"], "not_allowed")
        self.assertLessEqual(g["first"], g["last"])
        self.assertEqual(by_port[self.S]["count"], 1)
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
        status, _, groups = api(self.admin, "GET", f"/v1/denials?since={later}")
        self.assertEqual((status, groups), (200, []))
        status, _, body = api(self.admin, "GET", "/v1/denials?since=yesterday")
        assert_one_line_error(self, status, body, 400, "since")

    def test_grants_active_metric(self):
        def active():
            return scrape(self.admin).get("egressd_grants_active")
        base = len(api(self.admin, "GET", "/v1/grants")[2])
        g = self.grant({"pattern": "gone.test", "ports": [self.P]})
        wait_until(lambda: active() == base + 1, 2.0, what="egressd_grants_active + 1")
        api(self.admin, "DELETE", f"/v1/grants/{g['id']}")
        wait_until(lambda: active() == base, 2.0, what="egressd_grants_active back")

    def test_cli(self):
        admin = f"127.0.0.1:{self.admin}"
        p = run_cli("--admin", admin, "add", "cli.test", "--ports", str(self.P), "--ttl", "10m", "--note", "by cli")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"cli.test", p.stdout)
        self.wait_allowed("cli.test")
        p = run_cli("--admin", admin, "--json", "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        g = [x for x in json.loads(p.stdout) if x["pattern"] == "cli.test"][0]
        self.assertEqual(g["note"], "by cli")
        p = run_cli("list", "--admin", admin)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(g["id"].encode(), p.stdout)
        p = run_cli("--admin", admin, "revoke", g["id"])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run_cli("--admin", admin, "revoke", g["id"])
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"no grant", p.stderr)
        self.assertEqual(p.stderr.count(b"\n"), 1, p.stderr)
        p = run_cli("--admin", admin, "add", "a..b")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"pattern", p.stderr)
        self.assertEqual(run_cli("--admin", admin, "add", "x.test", "--ports", "x").returncode, 2)
        self.assertEqual(run_cli("--admin", admin, "add", "x.test", "--agent", "a", "--group", "g").returncode, 2)
        self.assertEqual(run_cli("--admin", admin).returncode, 2)

    def test_api_is_refused_through_the_proxy(self):
        # allow_net 127.0.0.0/8 covers the admin address: still egressd itself.
        body = json.dumps({"pattern": "evil.test"}).encode()
        r = proxy_get(self.e.port, f"http://127.0.0.1:{self.admin}/v1/grants", method="POST", body=body,
                      headers=[("Content-Type", "application/json")])
        assert_denied(self, r, 403, "self")
        r, s, _ = connect_via(self.e.port, f"127.0.0.1:{self.admin}")
        s.close()
        assert_denied(self, r, 403, "self")
        # By a name that resolves to egressd, allowed by a rule or by a grant.
        for host in ("adminname.test", "selfgrant.test"):
            if host == "selfgrant.test":
                self.grant({"pattern": "selfgrant.test", "ports": [self.admin]})
            r = proxy_get(self.e.port, f"http://{host}:{self.admin}/v1/grants", method="POST", body=body)
            assert_denied(self, r, 403, "self")
        self.assertNotIn("evil.test", [g["pattern"] for g in api(self.admin, "GET", "/v1/grants")[2]])


class Access(EgressdTestCase):
    """token_file=: bearer token on /v1/; without it, loopback only."""

    def test_token(self):
        admin = free_port()
        e = self.own(Egressd(base_config(f"admin 127.0.0.1:{admin} token_file=admin.token"),
                             files={"admin.token": "t0ken-1\n"})).start()
        status, r, body = api(admin, "GET", "/v1/grants")
        assert_one_line_error(self, status, body, 401)
        self.assertEqual(r.getheader("WWW-Authenticate"), "Bearer")
        status, r, body = api(admin, "GET", "/v1/grants", token="wrong")
        assert_one_line_error(self, status, body, 401)
        status, _, body = api(admin, "POST", "/v1/grants", {"pattern": "x.test"}, token="t0ken-1\n".strip() + "x")
        self.assertEqual(status, 401)
        self.assertEqual(api(admin, "GET", "/v1/grants", token="t0ken-1")[0], 200)
        self.assertEqual(api(admin, "GET", "/metrics")[0], 200)  # unchanged: no token needed
        # The CLI with the token from the environment, and from a file.
        p = run_cli("--admin", f"127.0.0.1:{admin}", "list")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"401", p.stderr)
        p = run_cli("--admin", f"127.0.0.1:{admin}", "list", env={"EGRESSD_ADMIN_TOKEN": "t0ken-1"})
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run_cli("--admin", f"127.0.0.1:{admin}", "--token-file", os.path.join(e.dir, "admin.token"), "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        # A new token after SIGHUP.
        with open(os.path.join(e.dir, "admin.token"), "w") as f:
            f.write("t0ken-2\n")
        e.send_signal(signal.SIGHUP)
        wait_until(lambda: api(admin, "GET", "/v1/grants", token="t0ken-2")[0] == 200, 5.0,
                   what="new token after SIGHUP")
        self.assertEqual(api(admin, "GET", "/v1/grants", token="t0ken-1")[0], 401)

    def test_empty_or_missing_token_file_refuses_to_start(self):
        for files in ({"admin.token": "\n"}, {}):
            e = Egressd(base_config(f"admin 127.0.0.1:{free_port()} token_file=admin.token"), files=files)
            try:
                e.start(wait=False)
                rc = e.proc.wait(10)
                self.assertEqual(rc, 1, e.stderr())
                self.assertIn("admin.token: ", e.stderr())
            finally:
                e.kill()
                e.cleanup()

    def test_no_token_file_on_a_non_loopback_address(self):
        admin = free_port()
        self.own(Egressd(base_config(f"admin 0.0.0.0:{admin}"))).start()
        status, _, body = api(admin, "GET", "/v1/grants")
        assert_one_line_error(self, status, body, 403, "token_file")
        self.assertEqual(api(admin, "GET", "/healthz")[0], 200)


class Transparent(EgressdTestCase):
    """A grant on the sni listener: the SNI is judged like a CONNECT host."""

    def test_sni_listener_honours_a_grant(self):
        tmp = tempfile.mkdtemp(prefix="egressd-it-grants-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = make_cert(tmp)
        dns = self.own(DnsServer())
        origin = self.own(HttpOrigin(cert, key))
        dns.add("tls.test", a=["127.0.0.1"])
        admin, sni = free_port(), free_port()
        extra = f"admin 127.0.0.1:{admin}\nlisten 127.0.0.1:{sni} mode=sni port={origin.port}"
        e = self.own(Egressd(base_config("", extra=extra), dns=dns)).start()
        wait_until(lambda: api(admin, "GET", "/healthz")[0] == 200, 5.0, what="admin")
        s = connect_from(sni)
        with s:
            s.sendall(client_hello("tls.test"))
            self.assertEqual(expect_closed(s, 10), b"")
        status, _, g = api(admin, "POST", "/v1/grants", {"pattern": "tls.test", "ports": [origin.port]})
        self.assertEqual(status, 201, g)
        time.sleep(0.2)
        r, _, s = tls_request(sni, "tls.test", cert, request_bytes("GET", "/echo/x", "tls.test"))
        cport = s.getsockname()[1]
        s.close()
        self.assertEqual(r.status, 200, r)
        rec = e.log_for_client(cport)
        self.assertEqual((rec["kind"], rec["decision"], rec["rule"]), ("sni", "allow", f"grant:{g['id']}"))


class DnsResponder(EgressdTestCase):
    """dns_listen answers a granted name as an allowed one (transparent
    agents reach it through the sni/http listeners), never a denied one."""

    def test_granted_name_is_answered(self):
        dport, admin = dns_port(), free_port()
        extra = f"dns_listen 127.0.0.1:{dport} answer=127.0.0.9\nadmin 127.0.0.1:{admin}\ndeny denied.test"
        self.own(Egressd(base_config("", extra=extra))).start()
        wait_answering(dport)
        self.assertEqual(udp_query(dport, "granted.test").rcode, NXDOMAIN)
        status, _, g = api(admin, "POST", "/v1/grants", {"pattern": ".granted.test", "ports": [443]})
        self.assertEqual(status, 201, g)
        status, _, g = api(admin, "POST", "/v1/grants", {"pattern": "denied.test", "ports": [443]})
        self.assertEqual(status, 201, g)
        wait_until(lambda: udp_query(dport, "a.granted.test").rcode == 0, 1.0, what="granted name answered")
        r = udp_query(dport, "granted.test")
        self.assertEqual(r.rcode, 0)
        self.assertEqual(len(r.answers), 1)
        self.assertEqual(udp_query(dport, "denied.test").rcode, NXDOMAIN)
        self.assertEqual(udp_query(dport, "other.test").rcode, NXDOMAIN)


class Persistence(EgressdTestCase):
    """state FILE: grants survive SIGHUP (always) and restarts (with the file)."""

    def test_restart_and_reload(self):
        dns = self.own(DnsServer())
        origin = self.own(HttpOrigin())
        dns.add("kept.test", a=["127.0.0.1"])
        admin = free_port()
        conf = base_config(f"admin 127.0.0.1:{admin}\nstate grants.json")
        e = Egressd(conf, dns=dns)
        try:
            e.start()
            url = f"http://kept.test:{origin.port}/"
            status, _, g = api(admin, "POST", "/v1/grants", {"pattern": "kept.test", "ports": [origin.port]})
            self.assertEqual(status, 201, g)
            self.assertIs(g["persisted"], True)
            path = os.path.join(e.dir, "grants.json")
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            self.assertEqual([x["id"] for x in read_json(path)["grants"]], [g["id"]])
            wait_until(lambda: proxy_get(e.port, url).status == 200, 1.0, what="granted")

            e.send_signal(signal.SIGHUP)
            wait_until(lambda: "reloaded" in e.stderr(), 5.0, what="reload")
            self.assertEqual(proxy_get(e.port, url).status, 200)
            self.assertEqual([x["id"] for x in api(admin, "GET", "/v1/grants")[2]], [g["id"]])

            e.stop()
            e.start()
            wait_until(lambda: api(admin, "GET", "/healthz")[0] == 200, 5.0, what="admin back")
            listed = api(admin, "GET", "/v1/grants")[2]
            self.assertEqual([x["id"] for x in listed], [g["id"]])
            self.assertEqual(listed[0]["expires"], g["expires"])
            r = proxy_get(e.port, url)
            self.assertEqual(r.status, 200)
            self.assertEqual(e.log_for_client(r.client_port)["rule"], f"grant:{g['id']}")

            self.assertEqual(api(admin, "DELETE", f"/v1/grants/{g['id']}")[0], 204)
            self.assertEqual(read_json(path)["grants"], [])
            e.stop()
        finally:
            e.kill()
            e.cleanup()

    def test_memory_only_survives_reload(self):
        admin = free_port()
        e = self.own(Egressd(base_config(f"admin 127.0.0.1:{admin}"))).start()
        status, _, g = api(admin, "POST", "/v1/grants", {"pattern": "mem.test"})
        self.assertEqual(status, 201)
        self.assertIs(g["persisted"], False)
        e.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in e.stderr(), 5.0, what="reload")
        self.assertEqual([x["id"] for x in api(admin, "GET", "/v1/grants")[2]], [g["id"]])
        # A state added by a reload needs a restart; the grants stay in memory.
        with open(e.conf_path, "a") as f:
            f.write("state later.json\n")
        e.send_signal(signal.SIGHUP)
        wait_until(lambda: "state change takes effect only after a restart" in e.stderr(), 5.0,
                   what="the restart notice")
        self.assertEqual([x["id"] for x in api(admin, "GET", "/v1/grants")[2]], [g["id"]])
        self.assertFalse(os.path.exists(os.path.join(e.dir, "later.json")))

    def test_corrupt_state_file_refuses_to_start(self):
        for text in ("{not json", '{"version": 1, "grants": [{"id": "zz"}]}', "[]"):
            e = Egressd(base_config(f"admin 127.0.0.1:{free_port()}\nstate grants.json"),
                        files={"grants.json": text})
            try:
                e.start(wait=False)
                rc = e.proc.wait(10)
                self.assertEqual(rc, 1, e.stderr())
                err = e.stderr().strip()
                self.assertTrue(err.startswith(os.path.join(e.dir, "grants.json") + ": "), err)
                self.assertEqual(len(err.splitlines()), 1, err)
                p = subprocess.run([egressd_bin(), "-c", e.conf_path, "--check"], capture_output=True,
                                   timeout=30, env=clean_env())
                self.assertEqual(p.returncode, 1, p.stdout)
                self.assertIn(b"grants.json: ", p.stderr)
            finally:
                e.kill()
                e.cleanup()


if __name__ == "__main__":
    main()
