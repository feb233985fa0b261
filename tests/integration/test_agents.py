#!/usr/bin/env python3
"""Agents by name (SPEC "Agents by name (proxy credentials)"): real clients
with credentials in the proxy URL (curl -x http://NAME:TOKEN@..., Python
urllib, pip, git, Node undici ProxyAgent), Bearer tokens, 407 auth_required
/ auth_failed with Proxy-Authenticate, the per-address throttle (429
auth_throttled + Retry-After), agent= rules, group= through agent
membership, per=client buckets keyed by agent, auth optional, a transparent
listener under auth required, credentials judged per request on one
keep-alive connection, egressd_agent_requests_total, `egressd hash-token`,
and that the token never leaks (log, stdout/stderr, /metrics, what the origin
receives)."""

import base64
import contextlib
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     assert_denied, base_config, clean_env, connect_from, curl_status, egressd_bin, expect_closed,
                     free_port, main, make_cert, proxy_get, read_response, request_bytes,
                     request_head, source_bindable, wait_until)
from limits_util import retry_after_ok, scrape  # noqa: E402
from modes_util import sighup_and_wait  # noqa: E402
from test_grants import api  # noqa: E402

BUILD_TOKEN = "tok-build7-6f1e0c2d9a"
REVIEW_TOKEN = "tok-review-83b2aa17c4"
SECRETS = (BUILD_TOKEN, REVIEW_TOKEN)


def token_hash(t):
    return "sha256:" + hashlib.sha256(t.encode()).hexdigest()


def basic(name, token):
    return "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()


def make_wheel(path, name="demo_pkg", version="1.0"):
    """A minimal valid wheel (pip reads its METADATA)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: egressd-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},"
                     f"{len(d)}\n" for n, d in files.items()) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)


class StaticOrigin:
    """A threaded static file server (the pip index and the git repository)
    that records every request head it receives."""

    def __init__(self, root):
        heads = self.heads = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=root, **kw)

            def parse_request(self):
                ok = super().parse_request()
                heads.append(str(self.headers))
                return ok

            def log_message(self, *a):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Agents(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="egressd-agents-")
        cls.cert, cls.key = make_cert(cls.tmp, names=("model.test", "pypi.test", "everyone.test"))
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.tls = cls.own(HttpOrigin(cls.cert, cls.key))
        # The pip index and a dumb-HTTP git repository.
        root = os.path.join(cls.tmp, "www")
        os.makedirs(os.path.join(root, "simple", "demo-pkg"))
        make_wheel(os.path.join(root, "simple", "demo-pkg", "demo_pkg-1.0-py3-none-any.whl"))
        with open(os.path.join(root, "simple", "demo-pkg", "index.html"), "w") as f:
            f.write('<html><body><a href="demo_pkg-1.0-py3-none-any.whl">demo_pkg-1.0-py3-none-any.whl</a>'
                    "</body></html>\n")
        cls.git_ok = shutil.which("git") is not None
        if cls.git_ok:
            work = os.path.join(cls.tmp, "work")
            env = clean_env(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@t", GIT_CONFIG_NOSYSTEM="1", HOME=cls.tmp)
            run = lambda *a, **kw: subprocess.run(a, check=True, capture_output=True, env=env, timeout=60, **kw)  # noqa
            run("git", "init", "-q", "-b", "main", work)
            with open(os.path.join(work, "README"), "w") as f:
                f.write("hello\n")
            run("git", "-C", work, "add", "README")
            run("git", "-C", work, "commit", "-q", "-m", "one")
            run("git", "clone", "-q", "--bare", work, os.path.join(root, "repo.git"))
            run("git", "-C", os.path.join(root, "repo.git"), "update-server-info")
            cls.git_head = run("git", "-C", work, "rev-parse", "HEAD").stdout.decode().strip()
        cls.static = StaticOrigin(root)
        cls.own(cls.static)
        for n in ("model.test", "pypi.test", "everyone.test", "rate.test", "git.test", "granted.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        O, T, S = cls.origin.port, cls.tls.port, cls.static.port
        cls.O, cls.T, cls.S = O, T, S
        cls.admin_port = free_port()
        cls.tport = free_port()
        rules = f"""
agent build-7 token={token_hash(BUILD_TOKEN)} group=ci
agents agents.txt
allow model.test ports={O},{T} agent=build-7
allow pypi.test ports={S} group=ci
allow git.test ports={S} agent=build-7
allow everyone.test ports={O},{T}
allow rate.test ports={O} rate=2/m per=client
"""
        files = {"agents.txt": f"# the reviewer\nreviewer {token_hash(REVIEW_TOKEN)}\n"}
        extra = f"admin 127.0.0.1:{cls.admin_port}\nlisten 127.0.0.1:{cls.tport} mode=http port={O}"
        cls.e = cls.own(Egressd(base_config(rules, tls_ports=[443, T], extra=extra), dns=cls.dns,
                                files=files)).start()
        cls.url_b7 = f"http://build-7:{BUILD_TOKEN}@127.0.0.1:{cls.e.port}"
        cls.url_rv = f"http://reviewer:{REVIEW_TOKEN}@127.0.0.1:{cls.e.port}"

    # ---- helpers

    def get(self, host, auth=None, path="/echo/x", port=None, source=None):
        headers = [("Proxy-Authorization", auth)] if auth else []
        return proxy_get(self.e.port, f"http://{host}:{port or self.O}{path}", headers=headers, source=source)

    def log_of(self, r):
        return self.e.log_for_client(r.client_port)

    def assert_407(self, r, reason):
        assert_denied(self, r, 407, reason)
        self.assertEqual(r.header("Proxy-Authenticate"), 'Basic realm="egressd"', repr(r))

    def origin_saw_no_credentials(self, requests):
        for req in requests:
            raw = req["raw_head"] if isinstance(req, dict) else req
            raw = raw.decode("latin-1") if isinstance(raw, bytes) else raw
            self.assertNotIn("proxy-authorization", raw.lower(), raw)
            for s in SECRETS:
                self.assertNotIn(s, raw)
                self.assertNotIn(base64.b64encode(f"build-7:{s}".encode()).decode(), raw)

    # ---- real clients

    def test_curl_http_with_credentials_in_proxy_url(self):
        st, body, hdrs, p = curl_status("-x", self.url_b7, f"http://model.test:{self.O}/echo/curl-http")
        self.assertEqual(st, 200, p.stderr)
        info = json.loads(body)
        self.assertEqual(info["target"], "/echo/curl-http")
        self.assertNotIn("proxy-authorization", {k.lower() for k in dict(info["headers"])}, info)
        rec = self.e.wait_log(lambda r: r.get("path") == "/echo/curl-http")
        self.assertEqual((rec["agent"], rec["group"], rec["decision"], rec["rule"]),
                         ("build-7", "ci", "allow", "model.test"), rec)

    def test_curl_https_connect_with_credentials(self):
        st, body, hdrs, p = curl_status("-x", self.url_b7, "--cacert", self.cert,
                                        f"https://model.test:{self.T}/echo/curl-https")
        self.assertEqual(st, 200, p.stderr)
        self.assertEqual(json.loads(body)["target"], "/echo/curl-https")
        rec = self.e.wait_log(lambda r: r["kind"] == "connect" and r["agent"] == "build-7"
                              and r["port"] == self.T and r["status"] == 200)
        self.assertEqual(rec["host"], "model.test")
        self.origin_saw_no_credentials(self.tls.complete_requests())

    def test_curl_without_credentials_gets_407(self):
        st, body, hdrs, p = curl_status("-x", self.e.url, f"http://model.test:{self.O}/echo/curl-none")
        self.assertEqual(st, 407, p.stderr)
        self.assertIn('proxy-authenticate: basic realm="egressd"', hdrs.lower())
        self.assertIn("x-egressd-reason: auth_required", hdrs.lower())
        self.assertEqual(body.count(b"\n"), 1, body)
        # https: the 407 answers the CONNECT.
        st, body, hdrs, p = curl_status("-x", self.e.url, "--cacert", self.cert,
                                        f"https://model.test:{self.T}/echo/curl-none")
        self.assertNotEqual(st, 200)
        self.assertIn("407", hdrs + p.stderr.decode("latin-1", "replace"))

    def test_urllib_http_and_https(self):
        ctx = __import__("ssl").create_default_context(cafile=self.cert)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": self.url_b7, "https": self.url_b7}),
            urllib.request.HTTPSHandler(context=ctx))
        with opener.open(f"http://model.test:{self.O}/echo/urllib-http", timeout=15) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.read())["target"], "/echo/urllib-http")
        with opener.open(f"https://model.test:{self.T}/echo/urllib-https", timeout=15) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.read())["target"], "/echo/urllib-https")
        self.e.wait_log(lambda r: r.get("path") == "/echo/urllib-http" and r["agent"] == "build-7")

    def test_pip_download_through_group_of_agent(self):
        # pypi.test is allowed for group=ci, and build-7 is in ci by its agent line.
        with tempfile.TemporaryDirectory() as d:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                   "--disable-pip-version-check", "-d", d, "--index-url", f"http://pypi.test:{self.S}/simple/",
                   "--trusted-host", "pypi.test", "--proxy", self.url_b7, "--retries", "0", "--timeout", "15",
                   "demo-pkg"]
            p = subprocess.run(cmd, capture_output=True, timeout=120, env=clean_env(HOME=self.tmp))
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(os.listdir(d), ["demo_pkg-1.0-py3-none-any.whl"])
            # The reviewer is not in ci: denied.
            cmd[cmd.index(self.url_b7)] = self.url_rv
            p = subprocess.run(cmd, capture_output=True, timeout=120, env=clean_env(HOME=self.tmp))
            self.assertNotEqual(p.returncode, 0, p.stdout)
        rec = self.e.wait_log(lambda r: r["host"] == "pypi.test" and r["agent"] == "reviewer")
        self.assertEqual((rec["decision"], rec["reason"], rec["status"]), ("deny", "not_allowed", 403), rec)
        for s in SECRETS:
            self.assertNotIn(s, p.stdout.decode() + p.stderr.decode())  # ours: nothing in the 403 body
        self.origin_saw_no_credentials(self.static.heads)

    def test_git_ls_remote_through_proxy(self):
        if not self.git_ok:
            self.skipTest("git is not installed")
        env = clean_env(HOME=self.tmp, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
        p = subprocess.run(["git", "-c", f"http.proxy={self.url_b7}", "ls-remote",
                            f"http://git.test:{self.S}/repo.git"],
                           capture_output=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(self.git_head.encode(), p.stdout)
        rec = self.e.wait_log(lambda r: r["host"] == "git.test" and r["status"] == 200)
        self.assertEqual(rec["agent"], "build-7", rec)
        self.origin_saw_no_credentials(self.static.heads)

    def undici_dir(self):
        if not shutil.which("node") or not shutil.which("npm"):
            self.skipTest("node/npm not installed")
        d = os.environ.get("EGRESSD_UNDICI_DIR") or os.path.join(tempfile.gettempdir(), "egressd-undici-6")
        if not os.path.isdir(os.path.join(d, "node_modules", "undici")):
            try:
                p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", d,
                                    "undici@6"], capture_output=True, timeout=150, env=clean_env(HOME=self.tmp))
            except subprocess.TimeoutExpired:
                self.skipTest("npm install undici took more than 150 s")
            if p.returncode != 0:
                self.skipTest(f"npm install undici failed: {p.stderr[-300:]!r}")
        return d

    def test_node_undici_proxy_agent(self):
        d = self.undici_dir()
        script = """
const { ProxyAgent, request } = require('undici');
const fs = require('fs');
const [proxy, url, ca] = process.argv.slice(1);
const agent = new ProxyAgent({ uri: proxy, requestTls: { ca: fs.readFileSync(ca) } });
request(url, { dispatcher: agent }).then(async (r) => {
  const body = await r.body.text();
  console.log(JSON.stringify({ status: r.statusCode, body }));
  await agent.close();
}).catch((e) => { console.error(String(e)); process.exit(3); });
"""
        for url, target in ((f"https://model.test:{self.T}/echo/undici-https", "/echo/undici-https"),
                            (f"http://model.test:{self.O}/echo/undici-http", "/echo/undici-http")):
            p = subprocess.run(["node", "-e", script, self.url_b7, url, self.cert], capture_output=True,
                               timeout=60, env=clean_env(NODE_PATH=os.path.join(d, "node_modules")))
            self.assertEqual(p.returncode, 0, p.stderr)
            out = json.loads(p.stdout.decode().strip().splitlines()[-1])
            self.assertEqual(out["status"], 200, out)
            self.assertEqual(json.loads(out["body"])["target"], target)
        # Wrong token: the CONNECT is refused with 407 and undici says so.
        p = subprocess.run(["node", "-e", script, f"http://build-7:wrong@127.0.0.1:{self.e.port}",
                            f"https://model.test:{self.T}/echo/undici-bad", self.cert], capture_output=True,
                           timeout=60, env=clean_env(NODE_PATH=os.path.join(d, "node_modules")))
        self.assertEqual(p.returncode, 3, p.stdout)
        self.assertIn(b"407", p.stderr)

    # ---- credentials on the wire

    def test_bearer_token(self):
        r = self.get("model.test", f"Bearer {BUILD_TOKEN}", "/echo/bearer")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.log_of(r)["agent"], "build-7")
        self.origin_saw_no_credentials([q for q in self.origin.requests if q["target"] == "/echo/bearer"])

    def test_wrong_and_malformed_credentials_get_407_auth_failed(self):
        src = "127.0.0.41"
        for auth in (basic("build-7", "wrong"), basic("reviewer", BUILD_TOKEN), "Bearer nope",
                     "Basic !!!notbase64", "Digest username=x"):
            r = self.get("model.test", auth, source=src if source_bindable(src) else None)
            self.assert_407(r, "auth_failed")
            rec = self.log_of(r)
            self.assertEqual((rec["agent"], rec["decision"], rec["status"]), ("", "deny", 407), rec)

    def test_connect_with_credentials_in_the_connect_request(self):
        s = connect_from(self.e.port)
        with contextlib.closing(s):
            a = f"model.test:{self.T}"
            s.sendall(f"CONNECT {a} HTTP/1.1\r\nHost: {a}\r\n\r\n".encode())
            bs = BufferedSocket(s)
            r = read_response(bs, "CONNECT")
            self.assert_407(r, "auth_required")
            # Kept open (no body pending): the retry with credentials works on it.
            s.sendall(f"CONNECT {a} HTTP/1.1\r\nHost: {a}\r\nProxy-Authorization: "
                      f"{basic('build-7', BUILD_TOKEN)}\r\n\r\n".encode())
            r = read_response(bs, "CONNECT")
            self.assertEqual(r.status, 200, r)

    def test_credentials_judged_per_request_on_one_connection(self):
        s = connect_from(self.e.port)
        with contextlib.closing(s):
            bs = BufferedSocket(s)
            ports = s.getsockname()[1]

            def ask(auth, path):
                h = [("Proxy-Authorization", auth)] if auth else []
                s.sendall(request_head("GET", f"http://model.test:{self.O}{path}", h, close=False))
                return read_response(bs)
            r1 = ask(basic("build-7", BUILD_TOKEN), "/echo/ka-1")
            self.assertEqual(r1.status, 200, r1)
            r2 = ask(basic("reviewer", REVIEW_TOKEN), "/echo/ka-2")
            assert_denied(self, r2, 403, "not_allowed", "model.test")
            self.assertIn(b"for agent reviewer", r2.body)
            r3 = ask(None, "/echo/ka-3")
            self.assert_407(r3, "auth_required")
            r4 = ask(f"Bearer {BUILD_TOKEN}", "/echo/ka-4")
            self.assertEqual(r4.status, 200, r4)
        def four():
            recs = {r["path"]: r for r in self.e.read_log() if r.get("client", "").endswith(f":{ports}")}
            return recs if len(recs) == 4 else None
        recs = wait_until(four, 10, 0.05, "four log lines")
        self.assertEqual([recs[f"/echo/ka-{i}"]["agent"] for i in range(1, 5)],
                         ["build-7", "reviewer", "", "build-7"])

    def test_407_with_a_pending_body_closes_the_connection(self):
        s = connect_from(self.e.port)
        with contextlib.closing(s):
            # The head announces a body that is not sent: egressd must not wait
            # for it, and must not keep the connection (the body would be read
            # as the next request).
            s.sendall(request_bytes("POST", f"http://model.test:{self.O}/upload", f"model.test:{self.O}",
                                    [("Content-Length", "100000")], close=False))
            bs = BufferedSocket(s)
            r = read_response(bs)
            self.assert_407(r, "auth_required")
            self.assertEqual(r.header("Connection"), "close")
            expect_closed(bs)

    def test_check_summary_lists_agents_not_hashes(self):
        p = subprocess.run([egressd_bin(), "-c", self.e.conf_path, "--check"], capture_output=True, timeout=30,
                           cwd=self.e.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("auth: required (mode=sni/http listeners and dns_listen carry no credentials", out)
        self.assertIn("agents: 2: build-7 (ci), reviewer", out)
        self.assertNotIn(token_hash(BUILD_TOKEN)[7:], out)
        self.assertIn("agents.txt", out)

    def test_two_proxy_authorization_fields_are_refused(self):
        r = proxy_get(self.e.port, f"http://model.test:{self.O}/echo/two",
                      headers=[("Proxy-Authorization", basic("build-7", BUILD_TOKEN)),
                               ("Proxy-Authorization", basic("build-7", BUILD_TOKEN))])
        self.assert_407(r, "auth_failed")

    # ---- throttling

    def test_throttle_after_ten_failures(self):
        src = "127.0.0.52"
        if not source_bindable(src):
            self.skipTest(f"cannot bind {src}")
        # Requests without credentials are not failures.
        for _ in range(12):
            self.assert_407(self.get("model.test", None, source=src), "auth_required")
        for i in range(10):
            self.assert_407(self.get("model.test", basic("build-7", f"wrong-{i}"), source=src), "auth_failed")
        # Throttled: even the right token gets 429, unchecked.
        r = self.get("model.test", basic("build-7", BUILD_TOKEN), source=src)
        assert_denied(self, r, 429, "auth_throttled")
        self.assertTrue(retry_after_ok(r), repr(r))
        self.assertTrue(55 <= int(r.header("Retry-After")) <= 60, repr(r))
        self.assertEqual(r.header("Connection"), "close")
        r = self.get("model.test", "Bearer whatever", source=src)
        assert_denied(self, r, 429, "auth_throttled")
        # Without credentials: still 407, not 429.
        self.assert_407(self.get("model.test", None, source=src), "auth_required")
        # Another address is not throttled.
        other = "127.0.0.53" if source_bindable("127.0.0.53") else None
        self.assertEqual(self.get("model.test", basic("build-7", BUILD_TOKEN), source=other).status, 200)

    def test_nine_failures_do_not_throttle(self):
        src = "127.0.0.54"
        if not source_bindable(src):
            self.skipTest(f"cannot bind {src}")
        for i in range(9):
            self.assert_407(self.get("model.test", f"Bearer wrong-{i}", source=src), "auth_failed")
        self.assertEqual(self.get("model.test", basic("build-7", BUILD_TOKEN), source=src).status, 200)

    # ---- policy by agent

    def test_grant_for_one_agent(self):
        """A grant scoped to an agent (SPEC "Grants at run time") allows that agent
        only, by its credentials; the denial feed names the agent that asked."""
        r = self.get("granted.test", basic("reviewer", REVIEW_TOKEN), "/echo/g0")
        assert_denied(self, r, 403, "not_allowed", "granted.test")
        status, _, denials = api(self.admin_port, "GET", "/v1/denials")
        self.assertEqual(status, 200)
        self.assertTrue(any(d.get("agent") == "reviewer" and d["host"] == "granted.test" for d in denials),
                        denials)
        status, _, g = api(self.admin_port, "POST", "/v1/grants",
                           {"pattern": "granted.test", "ports": [self.O], "agent": "reviewer", "ttl": "5m"})
        self.assertEqual(status, 201, g)
        try:
            wait_ok = lambda: self.get("granted.test", basic("reviewer", REVIEW_TOKEN), "/echo/g1").status == 200  # noqa
            deadline = time.monotonic() + 1.5
            while not wait_ok():
                self.assertLess(time.monotonic(), deadline, "the grant took more than 1 s")
                time.sleep(0.05)
            rec = self.e.wait_log(lambda x: x.get("path") == "/echo/g1" and x["status"] == 200)
            self.assertEqual((rec["agent"], rec["rule"], rec["decision"]), ("reviewer", f"grant:{g['id']}", "allow"))
            # Another agent, and the address without credentials, are still denied.
            assert_denied(self, self.get("granted.test", basic("build-7", BUILD_TOKEN), "/echo/g2"), 403,
                          "not_allowed", "granted.test")
            self.assert_407(self.get("granted.test", None, "/echo/g3"), "auth_required")
        finally:
            self.assertEqual(api(self.admin_port, "DELETE", f"/v1/grants/{g['id']}")[0], 204)
        assert_denied(self, self.get("granted.test", basic("reviewer", REVIEW_TOKEN), "/echo/g4"), 403,
                      "not_allowed", "granted.test")

    def test_agent_scoped_rule(self):
        r = self.get("model.test", basic("reviewer", REVIEW_TOKEN), "/echo/rv")
        assert_denied(self, r, 403, "not_allowed", "model.test")
        # The admin endpoint is on, so the way out is a grant (SPEC "Grants at run time").
        self.assertEqual(r.body, b"egressd: model.test is not on the allowlist for agent reviewer "
                                 b"(ask the operator to grant it)\n")
        rec = self.log_of(r)
        self.assertEqual((rec["agent"], rec["group"]), ("reviewer", ""), rec)
        # A rule without agent= applies to every agent.
        self.assertEqual(self.get("everyone.test", basic("reviewer", REVIEW_TOKEN)).status, 200)
        self.assertEqual(self.get("everyone.test", basic("build-7", BUILD_TOKEN)).status, 200)

    def test_per_client_rate_keyed_by_agent(self):
        b7, rv = basic("build-7", BUILD_TOKEN), basic("reviewer", REVIEW_TOKEN)
        for _ in range(2):
            self.assertEqual(self.get("rate.test", b7).status, 200)
        r = self.get("rate.test", b7)
        assert_denied(self, r, 429, "rate_limited", "rate.test")
        # Same source address, another agent: its own bucket.
        for _ in range(2):
            self.assertEqual(self.get("rate.test", rv).status, 200)
        assert_denied(self, self.get("rate.test", rv), 429, "rate_limited", "rate.test")

    def test_transparent_listener_under_auth_required(self):
        # No credentials there: the address decides, agent= rules never apply.
        def ask(host, path):
            s = connect_from(self.tport)
            with contextlib.closing(s):
                s.sendall(request_bytes("GET", path, host, [("Proxy-Authorization", f"Bearer {BUILD_TOKEN}")]))
                return read_response(BufferedSocket(s))
        r = ask("everyone.test", "/echo/transparent")
        self.assertEqual(r.status, 200, r)
        r = ask("model.test", "/echo/transparent-agent")
        assert_denied(self, r, 403, "not_allowed", "model.test")
        self.origin_saw_no_credentials([q for q in self.origin.requests if q["target"] == "/echo/transparent"])

    # ---- metrics, CLI, leaks

    def test_agent_metrics(self):
        m0 = scrape(self.admin_port)
        self.assertTrue(m0.has("egressd_agent_requests_total", agent="reviewer", decision="allow"))
        base = m0.get("egressd_agent_requests_total", agent="build-7", decision="allow")
        denied = m0.get("egressd_agent_requests_total", agent="reviewer", decision="deny")
        self.assertEqual(self.get("everyone.test", basic("build-7", BUILD_TOKEN)).status, 200)
        self.assertEqual(self.get("model.test", basic("reviewer", REVIEW_TOKEN)).status, 403)
        self.get("model.test", basic("intruder", "x"))

        def moved():
            m = scrape(self.admin_port)
            return m if (m.get("egressd_agent_requests_total", agent="build-7", decision="allow") == base + 1 and
                         m.get("egressd_agent_requests_total", agent="reviewer", decision="deny") == denied + 1) \
                else None
        m = wait_until(moved, 10, 0.05, "agent counters")
        agents = {lb["agent"] for lb, _ in m.find("egressd_agent_requests_total")}
        self.assertEqual(agents, {"build-7", "reviewer"})
        # The anomaly detector counts per agent (a key that is no address).
        self.assertGreater(m.get("egressd_client_requests_total", client="agent:build-7"), 0)

    def test_hash_token_cli(self):
        p = subprocess.run([egressd_bin(), "hash-token"], input=b"s3cret\n", capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode(), token_hash("s3cret") + "\n")
        p = subprocess.run([egressd_bin(), "hash-token"], input=b"s3cret", capture_output=True, timeout=10)
        self.assertEqual(p.stdout.decode(), token_hash("s3cret") + "\n")
        p = subprocess.run([egressd_bin(), "hash-token"], input=b"", capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"no token", p.stderr)
        self.assertEqual(p.stdout, b"")
        p = subprocess.run([egressd_bin(), "hash-token"], input=b"\n", capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 2)

    def test_zz_token_never_leaks(self):
        # Runs last: everything the other tests sent is in the log by now.
        r = self.get("model.test", basic("build-7", BUILD_TOKEN), "/echo/leak")
        self.assertEqual(r.status, 200)
        self.e.wait_log(lambda x: x.get("path") == "/echo/leak")
        with open(self.e.access_log, encoding="utf-8", errors="replace") as f:
            log_text = f.read()
        texts = {
            "access log": log_text,
            "stdout": self.e.stdout(), "stderr": self.e.stderr(),
            "/metrics": scrape(self.admin_port).text,
        }
        for what, text in texts.items():
            text = text.decode("latin-1") if isinstance(text, bytes) else text
            for s in SECRETS:
                self.assertNotIn(s, text, what)
                for n in ("build-7", "reviewer"):
                    self.assertNotIn(base64.b64encode(f"{n}:{s}".encode()).decode(), text, what)
        self.origin_saw_no_credentials(self.origin.requests)
        self.origin_saw_no_credentials(self.tls.requests)
        self.origin_saw_no_credentials(self.static.heads)


class AgentsReload(EgressdTestCase):
    """The agents file is re-read on SIGHUP; counts of a kept agent survive,
    a throttle survives, a bad agents file keeps the old config."""

    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.dns.add("model.test", a=["127.0.0.1"])
        cls.O = cls.origin.port

    def test_agents_file_change_reloaded(self):
        admin = free_port()
        rules = f"agents agents.txt\nallow model.test ports={self.O}\n"
        e = Egressd(base_config(rules, extra=f"admin 127.0.0.1:{admin}"), dns=self.dns,
                    files={"agents.txt": f"build-7 {token_hash(BUILD_TOKEN)}\n"})
        self.addCleanup(e.cleanup)
        e.start()

        def get(auth):
            return proxy_get(e.port, f"http://model.test:{self.O}/echo/rl",
                             headers=[("Proxy-Authorization", auth)])
        self.assertEqual(get(basic("build-7", BUILD_TOKEN)).status, 200)
        # Counted when the request ends, just after its response was sent.
        wait_until(lambda: scrape(admin).get("egressd_agent_requests_total", agent="build-7", decision="allow") == 1,
                   10, 0.05, "build-7 counted once")
        assert_denied(self, get(basic("newbie", REVIEW_TOKEN)), 407, "auth_failed")
        with open(os.path.join(e.dir, "agents.txt"), "w") as f:
            f.write(f"build-7 {token_hash(BUILD_TOKEN)}\nnewbie {token_hash(REVIEW_TOKEN)}\n")
        sighup_and_wait(e)
        self.assertEqual(get(basic("newbie", REVIEW_TOKEN)).status, 200)
        self.assertEqual(get(basic("build-7", BUILD_TOKEN)).status, 200)
        m = wait_until(lambda: (lambda m: m if m.get("egressd_agent_requests_total", agent="build-7",
                                                      decision="allow") == 2 else None)(scrape(admin)),
                       10, 0.05, "build-7 counted twice across the reload")
        self.assertEqual(m.get("egressd_agent_requests_total", agent="newbie", decision="allow"), 1)
        # A broken agents file: reported, the old agents keep working.
        with open(os.path.join(e.dir, "agents.txt"), "w") as f:
            f.write("newbie not-a-hash\n")
        sighup_and_wait(e, ok=False)
        self.assertIn("agents.txt:1:", e.stderr())
        self.assertEqual(get(basic("newbie", REVIEW_TOKEN)).status, 200)
        e.stop()


class AuthOptional(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        for n in ("model.test", "everyone.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        O = cls.O = cls.origin.port
        rules = f"""
auth optional
agent build-7 token={token_hash(BUILD_TOKEN)}
allow model.test ports={O} agent=build-7
allow everyone.test ports={O}
"""
        cls.e = cls.own(Egressd(base_config(rules), dns=cls.dns)).start()

    def get(self, host, auth=None):
        h = [("Proxy-Authorization", auth)] if auth else []
        return proxy_get(self.e.port, f"http://{host}:{self.O}/echo/opt", headers=h)

    def test_optional(self):
        # None: the address alone decides.
        self.assertEqual(self.get("everyone.test").status, 200)
        r = self.get("model.test")
        assert_denied(self, r, 403, "not_allowed", "model.test")
        self.assertEqual(r.body, b"egressd: model.test is not on the allowlist (ask the operator to add it)\n")
        # Valid: named.
        r = self.get("model.test", basic("build-7", BUILD_TOKEN))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.e.log_for_client(r.client_port)["agent"], "build-7")
        # Wrong: still 407.
        r = self.get("everyone.test", basic("build-7", "wrong"))
        assert_denied(self, r, 407, "auth_failed")
        self.assertEqual(r.header("Proxy-Authenticate"), 'Basic realm="egressd"')


if __name__ == "__main__":
    main()
