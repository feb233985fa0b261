#!/usr/bin/env python3
"""The default deployment's container (container/): the entrypoint and the
real binary, run inside network namespaces that mirror container/compose.yaml.
There is no container engine on the test machines; what a container adds
(its own network namespace, a read-only root with a tmpfs, root with
NET_ADMIN dropped to uid 10001) is built here with `ip netns`, veth pairs,
a scratch run directory and the entrypoint's own privilege drop.

  agent ns   --(agents: 10.213.0.0/26, fd00:213::/64)--   egressd ns
  egressd ns --(egress: 10.213.0.64/26, fd00:213:0:1::/64)-- internet ns

The agent ns has one link, to egressd (compose's `internal: true` network):
no route out. The internet ns runs the origin (HTTP on :8080) and the DNS
server (:53), each bound inside that namespace by a thread that entered it.
Nothing is sent to any address outside the namespaces this test creates,
and iptables only ever runs inside them (`ip netns exec`). Every namespace,
link, /etc/netns entry and process is removed at the end, even on failure.

Also, without root: static checks of the Dockerfile, compose file and
Kubernetes manifests (the ConfigMap's config must pass `egressd --check`).
"""

import contextlib
import ctypes
import http.server
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE, DnsServer, clean_env, egressd_bin, main, wait_until  # noqa: E402

try:
    import yaml  # python3-yaml: only the manifest checks need it
except ImportError:  # pragma: no cover
    yaml = None

CONTAINER = SOURCE / "container"
ENTRYPOINT = CONTAINER / "entrypoint.sh"
PID = os.getpid()
EGRESSD_UID = 10001
CLONE_NEWNET = 0x40000000

AGENT_IP, PROXY_IP = "10.213.0.2", "10.213.0.1"            # agents network
PROXY_OUT_IP, INET_IP = "10.213.0.65", "10.213.0.66"       # egress network
AGENT_IP6, PROXY_IP6 = "fd00:213::2", "fd00:213::1"
PROXY_OUT_IP6, INET_IP6 = "fd00:213:0:1::1", "fd00:213:0:1::2"
EGRESS_NET, EGRESS_NET6 = "10.213.0.64/26", "fd00:213:0:1::/64"
ORIGIN_PORT = 8080
OTHER_PORT = 9999   # a listener in the egressd ns that is not egressd's
FORWARDS = "8080 15432"

_libc = ctypes.CDLL(None, use_errno=True)


def sh(*cmd, check=True, timeout=30, env=None):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def in_netns(ns, fn):
    """Runs fn() on a fresh thread that has entered network namespace `ns`:
    sockets it creates live there (and stay there after the thread ends).
    The test's own threads never change namespace."""
    out = {}

    def run():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({ns}): {os.strerror(e)}")
            finally:
                os.close(fd)
            out["value"] = fn()
        except BaseException as e:  # handed to the caller
            out["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    if "error" in out:
        raise out["error"]
    return out.get("value")


def probe(ns, host, port, timeout=1.5):
    """One TCP connect from namespace ns: 'ok', 'refused', 'timeout' (dropped)
    or 'unreachable'."""
    def go():
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            try:
                s.connect((host, port))
                return "ok"
            except ConnectionRefusedError:
                return "refused"
            except socket.timeout:
                return "timeout"
            except OSError as e:
                return "unreachable" if e.errno in (101, 113) else f"error {e.errno}"
    return in_netns(ns, go)


def listening(pid, port):
    """True if a TCP socket in pid's network namespace listens on port
    (/proc/PID/net/tcp*, no probing connection)."""
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 3 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def root_skip_reason():
    if os.geteuid() != 0:
        return "needs root: the container is mirrored with network namespaces (ip netns)"
    for tool in ("ip", "iptables-restore", "ip6tables-restore", "curl", "nc", "setpriv"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (scripts/deps.sh installs iproute2, iptables, curl, netcat-openbsd)"
    name = f"egct{PID}probe"
    p = sh("ip", "netns", "add", name, check=False)
    if p.returncode != 0:
        return f"'ip netns add' is not permitted here: {p.stderr.strip()}"
    sh("ip", "netns", "del", name, check=False)
    return None


_SKIP = None


def require_netns():
    global _SKIP
    if _SKIP is None:
        _SKIP = root_skip_reason() or ""
    if _SKIP:
        raise unittest.SkipTest(_SKIP)


def unprivileged_can_run(path):
    """True if uid 10001 can execute path (every directory on the way is
    searchable by others): otherwise the privilege drop is skipped."""
    p = Path(path).resolve()
    for d in list(p.parents)[::-1]:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
    m = os.stat(p).st_mode
    return bool(m & stat.S_IXOTH and m & stat.S_IROTH)


# --------------------------------------------------------------------------
# namespaces


class Topology:
    """The compose topology as namespaces; or, with links=False, one lone
    scratch namespace (`proxy`) for entrypoint runs that need no traffic.
    destroy() undoes everything create() did, whatever state it got to."""

    def __init__(self, tag, links=True):
        self.tag = tag
        self.links = links
        self.agent, self.proxy, self.inet = (f"egct{PID}{tag}-agent", f"egct{PID}{tag}-egressd",
                                             f"egct{PID}{tag}-inet")
        self.veths = [f"c{tag}a{PID}", f"c{tag}p{PID}", f"c{tag}q{PID}", f"c{tag}i{PID}"]
        self.namespaces = []
        self.etc_dirs = []
        self.servers = []

    def create(self):
        for ns in ((self.agent, self.proxy, self.inet) if self.links else (self.proxy,)):
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            self.ip(ns, "link", "set", "lo", "up")
        if not self.links:
            return self
        a, p, q, i = self.veths
        sh("ip", "link", "add", a, "netns", self.agent, "type", "veth", "peer", "name", p,
           "netns", self.proxy)
        sh("ip", "link", "add", q, "netns", self.proxy, "type", "veth", "peer", "name", i,
           "netns", self.inet)
        for ns, dev, v4, v6 in ((self.agent, a, AGENT_IP, AGENT_IP6),
                                (self.proxy, p, PROXY_IP, PROXY_IP6),
                                (self.proxy, q, PROXY_OUT_IP, PROXY_OUT_IP6),
                                (self.inet, i, INET_IP, INET_IP6)):
            self.ip(ns, "addr", "add", f"{v4}/26", "dev", dev)
            self.ip(ns, "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            self.ip(ns, "link", "set", dev, "up")
        return self

    def ip(self, ns, *args):
        return sh("ip", "-n", ns, *args)

    def exec(self, ns, *cmd, check=True, timeout=30):
        return sh("ip", "netns", "exec", ns, *cmd, check=check, timeout=timeout)

    def etc_file(self, ns, name, text):
        """/etc/netns/NS/NAME: `ip netns exec` bind-mounts it over /etc/NAME,
        as a container runtime provides /etc/hosts and /etc/resolv.conf."""
        d = Path("/etc/netns") / ns
        if d not in self.etc_dirs:
            self.etc_dirs.append(d)
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)

    def destroy(self):
        for s in self.servers:
            with contextlib.suppress(Exception):
                s.close()
        for ns in self.namespaces:
            # Every process in our own namespaces is one this test started
            # (an egressd that dropped privileges no longer gets PDEATHSIG).
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces = []
        for v in self.veths:  # only if creation stopped half-way in the root ns
            if Path(f"/sys/class/net/{v}").exists():
                sh("ip", "link", "del", v, check=False)
        for d in self.etc_dirs:
            shutil.rmtree(d, ignore_errors=True)
            with contextlib.suppress(OSError):
                d.parent.rmdir()  # /etc/netns, if we made it and nobody else uses it
        self.etc_dirs = []


class Origin:
    """HTTP origin in the namespace it is created in: 200 "origin PATH" and a
    record of (client ip, path) for every request."""

    def __init__(self, addr, port):
        origin = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                origin.requests.append((self.client_address[0], self.path))
                body = f"origin {self.path}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((addr, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.2,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Listener:
    """A bare TCP listener (never accepts: the backlog completes handshakes)."""

    def __init__(self, addr, port):
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if fam == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(64)

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------
# the entrypoint


class Entrypoint:
    """container/entrypoint.sh run inside a namespace with its paths pointed
    into a work dir: WORK/etc (EGRESSD_CONF_DIR), WORK/squid.conf, WORK/run
    (the tmpfs). The process is `ip netns exec` -> sh -> setpriv -> egressd,
    one pid throughout (each execs the next)."""

    def __init__(self, ns, *, egressd_conf=None, squid_conf=None, forwards="", env=None,
                 wrap=()):
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix="egressd-ct-"))
        os.chmod(self.dir, 0o755)  # uid 10001 reads the config files in here
        (self.dir / "etc").mkdir(mode=0o755)
        (self.dir / "run").mkdir(mode=0o755)
        self.conf_path = self.dir / "etc" / "egressd.conf"
        self.squid_path = self.dir / "squid.conf"
        if egressd_conf is not None:
            self.conf_path.write_text(egressd_conf.replace("{dir}", str(self.dir)))
        if squid_conf is not None:
            self.squid_path.write_text(squid_conf)
        self.privdrop = unprivileged_can_run(egressd_bin())
        self.env = clean_env(
            EGRESSD_BIN=egressd_bin(), EGRESSD_CONF_DIR=str(self.dir / "etc"),
            SQUID_CONF=str(self.squid_path), EGRESSD_RUN_DIR=str(self.dir / "run"),
            EGRESSD_DEFAULT_CONF=str(SOURCE / "conf" / "egressd.conf"),
            EGRESSD_HOST_FORWARDS=forwards,
            PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        if not self.privdrop:
            self.env["EGRESSD_SKIP_PRIVDROP"] = "1"
        self.env.update(env or {})
        self.cmd = ["ip", "netns", "exec", ns, *wrap, "sh", str(ENTRYPOINT)]
        self.proc = None

    def write(self, rel, text):
        p = self.dir / rel
        p.write_text(text.replace("{dir}", str(self.dir)))
        return p

    def run(self, *args, timeout=30):
        """Runs to completion (--check, or a config that fails)."""
        return sh(*self.cmd, *args, check=False, timeout=timeout, env=self.env)

    def start(self, ports=(3128,), timeout=15):
        """Starts, and waits until egressd listens on every one of ports."""
        self._out = open(self.dir / "stdout.txt", "wb")
        self._err = open(self.dir / "stderr.txt", "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=self.env)
        deadline = time.monotonic() + timeout
        while not all(listening(self.proc.pid, port) for port in ports):
            if self.proc.poll() is not None:
                raise AssertionError(f"the entrypoint exited with {self.proc.returncode}\n"
                                     f"stderr:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not listening on all of {ports} after {timeout}s\n"
                                     f"stderr:\n{self.stderr()}")
            time.sleep(0.05)
        return self

    def stdout(self):
        return (self.dir / "stdout.txt").read_text(errors="replace")

    def stderr(self):
        return (self.dir / "stderr.txt").read_text(errors="replace")

    def access_log(self):
        out = []
        for line in self.stdout().splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    out.append(obj)
        return out

    def stop(self):
        """SIGTERM; egressd drains and exits 0. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        for f in (self._out, self._err):
            f.close()
        self.proc = None
        return rc

    def cleanup(self):
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_config(extra=""):
    """The "mounted" /etc/egressd/egressd.conf of the compose topology."""
    return "\n".join([
        "# mounted as /etc/egressd/egressd.conf",
        "listen 0.0.0.0:3128",
        # The egress network stands in for the monitoring network.
        f"admin 0.0.0.0:9090 allow={EGRESS_NET},{EGRESS_NET6}",
        f"resolver {INET_IP}:53",
        "hosts {dir}/hosts",
        "access_log stdout",
        "threads 2",
        "timeout connect=3s drain=2s dns=3s",
        f"allow allowed.test ports={ORIGIN_PORT}",
        f"allow_net 10.213.0.64/26 ports={ORIGIN_PORT}",
        extra,
    ]) + "\n"


def curl(topo, *args, timeout=20):
    """curl from the agent namespace: (status, body, headers, CompletedProcess)."""
    p = topo.exec(topo.agent, "curl", "-q", "-sS", "--max-time", "10", "-D", "-",
                  *args, check=False, timeout=timeout)
    head, _, body = p.stdout.partition("\n\n")  # text mode: CRLF read as LF
    m = re.match(r"HTTP/\S+ (\d+)", head)
    return (int(m.group(1)) if m else 0), body, head.lower(), p


def build_topology(cls, tag):
    """Namespaces + the origin and DNS server of the internet ns, owned by
    cls (removed by its class cleanup, even when setUpClass fails)."""
    require_netns()
    topo = Topology(tag)
    cls.addClassCleanup(topo.destroy)
    topo.create()
    dns = in_netns(topo.inet, lambda: DnsServer(INET_IP, 53))
    topo.servers.append(dns)
    for name in ("allowed.test", "denied.test"):
        dns.add(name, a=[INET_IP])
    origin = in_netns(topo.inet, lambda: Origin(INET_IP, ORIGIN_PORT))
    topo.servers.append(origin)
    return topo, dns, origin


# --------------------------------------------------------------------------
# the compose topology with a mounted egressd.conf


class ComposeTopology(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.topo, cls.dns, cls.origin = build_topology(cls, "m")
        t = cls.topo
        # Another service in the egressd container, not egressd's: before
        # the entrypoint runs the agent reaches it.
        for addr in ("0.0.0.0", "::"):
            t.servers.append(in_netns(t.proxy, lambda a=addr: Listener(a, OTHER_PORT)))
        cls.before = {}
        for fam, addr in (("v4", PROXY_IP), ("v6", PROXY_IP6)):
            # Retried: a fresh veth may take a moment to carry traffic.
            with contextlib.suppress(AssertionError):
                wait_until(lambda: probe(t.agent, addr, OTHER_PORT, timeout=0.5) == "ok",
                           timeout=5, interval=0.1)
            cls.before[fam] = probe(t.agent, addr, OTHER_PORT)
        cls.ep = Entrypoint(t.proxy, egressd_conf=test_config(), forwards=FORWARDS)
        cls.addClassCleanup(cls.ep.cleanup)
        cls.ep.write("hosts", f"{INET_IP} host.docker.internal\n")
        cls.ep.start(ports=(3128, 9090, 8080, 15432))

    def test_topology_reaches_other_port_before_entrypoint(self):
        self.assertEqual(self.before, {"v4": "ok", "v6": "ok"})

    def test_allowed_name_through_proxy(self):
        status, body, _, p = curl(self.topo, "-x", f"http://{PROXY_IP}:3128",
                                  f"http://allowed.test:{ORIGIN_PORT}/hello")
        self.assertEqual(status, 200, p.stderr)
        self.assertEqual(body, "origin /hello\n")
        self.assertIn((PROXY_OUT_IP, "/hello"), self.origin.requests)
        e = wait_until(lambda: [x for x in self.ep.access_log() if x.get("path") == "/hello"],
                       what="access-log line for /hello")[0]
        self.assertEqual(e["decision"], "allow")
        self.assertTrue(e["client"].startswith(AGENT_IP + ":"), e)

    def test_denied_name_403_never_resolved(self):
        status, body, head, p = curl(self.topo, "-x", f"http://{PROXY_IP}:3128",
                                     f"http://denied.test:{ORIGIN_PORT}/x")
        self.assertEqual(status, 403, p.stderr)
        self.assertIn("x-egressd-reason: not_allowed", head)
        self.assertFalse(self.dns.queried("denied.test"))
        self.assertNotIn("/x", [path for _, path in self.origin.requests])

    def test_proxy_env_vars_as_in_compose(self):
        # The example agent's environment: HTTP_PROXY=http://egressd:3128.
        p = sh("ip", "netns", "exec", self.topo.agent, "curl", "-q", "-sS", "--max-time", "10",
               "-o", "/dev/null", "-w", "%{http_code}", f"http://allowed.test:{ORIGIN_PORT}/env",
               check=False, env=clean_env(http_proxy=f"http://{PROXY_IP}:3128",
                                          no_proxy="localhost"))
        self.assertEqual(p.stdout, "200", p.stderr)

    def test_agent_has_no_route_out(self):
        self.assertEqual(probe(self.topo.agent, INET_IP, ORIGIN_PORT), "unreachable")
        self.assertEqual(probe(self.topo.agent, INET_IP6, ORIGIN_PORT), "unreachable")
        status, _, _, p = curl(self.topo, "--connect-timeout", "2",
                               f"http://{INET_IP}:{ORIGIN_PORT}/direct")
        self.assertEqual(status, 0)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn("/direct", [path for _, path in self.origin.requests])

    def test_no_forwarding_through_egressd_even_if_enabled(self):
        # A misconfigured agent network (a route via egressd) and a kernel
        # that forwards: the entrypoint's FORWARD policy still drops.
        t = self.topo
        self.assertIn("-P FORWARD DROP", t.exec(t.proxy, "iptables", "-S", "FORWARD").stdout)
        self.assertIn("-P FORWARD DROP", t.exec(t.proxy, "ip6tables", "-S", "FORWARD").stdout)
        t.ip(t.agent, "route", "add", "default", "via", PROXY_IP)
        t.ip(t.inet, "route", "add", "10.213.0.0/26", "via", PROXY_OUT_IP)
        t.exec(t.proxy, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        try:
            self.assertEqual(probe(t.agent, INET_IP, ORIGIN_PORT), "timeout")
        finally:
            t.exec(t.proxy, "sysctl", "-qw", "net.ipv4.ip_forward=0")
            t.ip(t.agent, "route", "del", "default", "via", PROXY_IP)
            t.ip(t.inet, "route", "del", "10.213.0.0/26", "via", PROXY_OUT_IP)

    def test_input_firewall_ipv4(self):
        t = self.topo
        self.assertEqual(probe(t.agent, PROXY_IP, 3128), "ok")
        self.assertEqual(probe(t.agent, PROXY_IP, OTHER_PORT), "timeout")  # dropped, not refused
        self.assertEqual(probe(t.agent, PROXY_IP, 22), "timeout")
        # Loopback inside the container is untouched.
        self.assertEqual(probe(t.proxy, "127.0.0.1", OTHER_PORT), "ok")
        rules = t.exec(t.proxy, "iptables", "-S").stdout
        self.assertIn("-A INPUT -j EGRESSD-INPUT", rules)
        for port in (3128, 8080, 15432):
            self.assertIn(f"-A EGRESSD-INPUT -p tcp -m tcp --dport {port} -j ACCEPT", rules)
        # The admin port: only from its allow= networks of this family.
        self.assertIn(f"-A EGRESSD-INPUT -s {EGRESS_NET} -p tcp -m tcp --dport 9090 -j ACCEPT", rules)
        self.assertNotIn(EGRESS_NET6, rules)
        self.assertEqual(rules.count("--dport 9090"), 1)
        self.assertRegex(rules, r"-A EGRESSD-INPUT -i lo -j ACCEPT")
        self.assertRegex(rules, r"-A EGRESSD-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        self.assertTrue(rules.rstrip().endswith("-A EGRESSD-INPUT -j DROP"), rules)

    def test_input_firewall_ipv6(self):
        t = self.topo
        # egressd listens on IPv4 only: the proxy port is accepted by
        # ip6tables (so refused by the kernel), any other port is dropped.
        self.assertEqual(probe(t.agent, PROXY_IP6, 3128), "refused")
        self.assertEqual(probe(t.agent, PROXY_IP6, OTHER_PORT), "timeout")
        self.assertEqual(probe(t.proxy, "::1", OTHER_PORT), "ok")
        rules = t.exec(t.proxy, "ip6tables", "-S").stdout
        self.assertIn("-A INPUT -j EGRESSD-INPUT", rules)
        self.assertIn("-A EGRESSD-INPUT -p tcp -m tcp --dport 3128 -j ACCEPT", rules)
        self.assertIn(f"-A EGRESSD-INPUT -s {EGRESS_NET6} -p tcp -m tcp --dport 9090 -j ACCEPT", rules)
        self.assertEqual(rules.count("--dport 9090"), 1)
        self.assertIn("--icmpv6-type 135 -j ACCEPT", rules)  # neighbour discovery
        self.assertTrue(rules.rstrip().endswith("-A EGRESSD-INPUT -j DROP"), rules)

    def test_health_check_nc(self):
        t = self.topo
        # The image's HEALTHCHECK, run inside the container...
        self.assertEqual(t.exec(t.proxy, "nc", "-z", "-w", "3", "localhost", "3128",
                                check=False).returncode, 0)
        # ...and the same check from an agent.
        self.assertEqual(t.exec(t.agent, "nc", "-z", "-w", "3", PROXY_IP, "3128",
                                check=False).returncode, 0)
        self.assertNotEqual(t.exec(t.agent, "nc", "-z", "-w", "2", PROXY_IP, str(OTHER_PORT),
                                   check=False).returncode, 0)

    def test_host_forwards(self):
        # EGRESSD_HOST_FORWARDS="8080 15432": egressd:8080 is the "host"'s
        # 8080 (host.docker.internal, from the hosts file, is the internet ns).
        status, body, _, p = curl(self.topo, f"http://{PROXY_IP}:8080/forwarded")
        self.assertEqual(status, 200, p.stderr)
        self.assertEqual(body, "origin /forwarded\n")
        self.assertEqual(probe(self.topo.agent, PROXY_IP, 15432), "ok")
        run = self.ep.dir / "run"
        self.assertIn("forward 0.0.0.0:8080 host.docker.internal:8080",
                      (run / "forwards.conf").read_text())
        self.assertIn("forward 0.0.0.0:15432 host.docker.internal:15432",
                      (run / "forwards.conf").read_text())

    def test_admin_open_only_to_its_allow_networks(self):
        # The agents never reach /metrics or /v1/: dropped, not refused.
        t = self.topo
        self.assertEqual(probe(t.agent, PROXY_IP, 9090), "timeout")
        # The allow= network (here the egress one) does.
        p = t.exec(t.inet, "curl", "-q", "-sS", "--max-time", "10", "-o", "/dev/null", "-w",
                   "%{http_code}", f"http://{PROXY_OUT_IP}:9090/readyz", check=False)
        self.assertEqual(p.stdout, "200", p.stderr)
        self.assertIn(f"admin 9090 from {EGRESS_NET}", self.ep.stderr())
        self.assertIn(f"admin 9090 from {EGRESS_NET6}", self.ep.stderr())
        self.assertIn(f"admin: 0.0.0.0:9090 allow={EGRESS_NET},{EGRESS_NET6}", self.ep.stderr())

    def test_generated_config_includes_the_mounted_file(self):
        text = (self.ep.dir / "run" / "egressd.conf").read_text()
        self.assertIn(f"include {self.ep.conf_path}\n", text)
        self.assertIn(f"config: {self.ep.conf_path}", self.ep.stderr())

    def test_sighup_reloads_the_mounted_file(self):
        t = self.topo
        self.dns.add("added.test", a=[INET_IP])
        status, *_ = curl(t, "-x", f"http://{PROXY_IP}:3128", f"http://added.test:{ORIGIN_PORT}/a")
        self.assertEqual(status, 403)
        original = self.ep.conf_path.read_text()
        try:
            self.ep.conf_path.write_text(original + f"allow added.test ports={ORIGIN_PORT}\n")
            self.ep.proc.send_signal(signal.SIGHUP)

            def allowed():
                return curl(t, "-x", f"http://{PROXY_IP}:3128",
                            f"http://added.test:{ORIGIN_PORT}/b")[0] == 200
            wait_until(allowed, timeout=10, interval=0.2, what="the reloaded allowlist")
        finally:
            self.ep.conf_path.write_text(original)
            self.ep.proc.send_signal(signal.SIGHUP)

    def test_egressd_runs_unprivileged(self):
        if not self.ep.privdrop:
            self.skipTest(f"{egressd_bin()} is not executable by uid {EGRESSD_UID} "
                          "(a directory on its path is closed to others)")
        pid = self.ep.proc.pid
        self.assertEqual(Path(f"/proc/{pid}/exe").resolve(), Path(egressd_bin()).resolve())
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        self.assertEqual(fields["Uid"].split(), [str(EGRESSD_UID)] * 4)
        self.assertEqual(fields["Gid"].split(), [str(EGRESSD_UID)] * 4)
        self.assertEqual(fields["Groups"].split(), [])
        for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            self.assertEqual(int(fields[caps].strip(), 16), 0, caps)
        self.assertEqual(fields["NoNewPrivs"].strip(), "1")


# --------------------------------------------------------------------------
# entrypoint paths that need no traffic: one lone namespace each


class EntrypointModes(unittest.TestCase):
    count = 0

    def setUp(self):
        require_netns()
        EntrypointModes.count += 1
        self.topo = Topology(f"s{EntrypointModes.count}", links=False)
        self.addCleanup(self.topo.destroy)
        self.topo.create()

    def entrypoint(self, **kw):
        ep = Entrypoint(self.topo.proxy, **kw)
        self.addCleanup(ep.cleanup)
        return ep

    def test_broken_config_exits_1_with_file_line(self):
        ep = self.entrypoint(egressd_conf="listen 0.0.0.0:3128\nallow x.test bogus=1\n")
        p = ep.run()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"{ep.conf_path}:2:", p.stderr)
        self.assertIn("egressd was not started", p.stderr)
        # It stopped before the firewall, and nothing was started.
        self.assertNotIn("EGRESSD-INPUT", self.topo.exec(self.topo.proxy, "iptables", "-S").stdout)
        self.assertEqual(sh("ip", "netns", "pids", self.topo.proxy).stdout.split(), [])

    def test_broken_forwards_env_exits_1(self):
        ep = self.entrypoint(egressd_conf=test_config(), forwards="5432 abc")
        p = ep.run()
        self.assertEqual(p.returncode, 1)
        self.assertIn("EGRESSD_HOST_FORWARDS: 'abc'", p.stderr)
        ep = self.entrypoint(egressd_conf=test_config(), forwards="70000")
        self.assertEqual(ep.run().returncode, 1)

    def test_duplicate_forward_port_is_a_config_error(self):
        ep = self.entrypoint(egressd_conf=test_config(), forwards="3128")
        p = ep.run("--check")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("egressd was not started", p.stderr)

    def test_default_conf_served_on_all_interfaces(self):
        ep = self.entrypoint()  # nothing mounted
        ep.start()
        self.assertIn("the default allowlist", ep.stderr())
        self.assertIn("listen: 0.0.0.0:3128 mode=proxy", ep.stderr())
        self.assertIn("admin: 127.0.0.1:9090", ep.stderr())
        default = (ep.dir / "run" / "default.conf").read_text()
        shipped = (SOURCE / "conf" / "egressd.conf").read_text()
        self.assertEqual(default, shipped.replace("\nlisten 127.0.0.1:3128\n", "\nlisten 0.0.0.0:3128\n"))
        rules = self.topo.exec(self.topo.proxy, "iptables", "-S", "EGRESSD-INPUT").stdout
        self.assertIn("--dport 3128 -j ACCEPT", rules)
        self.assertNotIn("9090", rules)  # the admin endpoint stays on loopback
        self.assertEqual(ep.stop(), 0)

    def test_mounted_egressd_conf_wins_over_squid_conf(self):
        ep = self.entrypoint(egressd_conf=test_config(), squid_conf="http_port 3128\n")
        ep.write("hosts", "")
        p = ep.run("--check")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("ignoring", p.stderr)
        self.assertIn(f"include {ep.conf_path}", (ep.dir / "run" / "egressd.conf").read_text())

    def test_started_as_non_root_skips_firewall_and_serves(self):
        # Kubernetes: runAsUser 10001, no capabilities.
        ep = self.entrypoint(egressd_conf=test_config(), wrap=(
            "setpriv", f"--reuid={EGRESSD_UID}", f"--regid={EGRESSD_UID}", "--clear-groups",
            "--inh-caps=-all", "--"))
        if not ep.privdrop:
            self.skipTest(f"{egressd_bin()} is not executable by uid {EGRESSD_UID}")
        ep.write("hosts", "")
        os.chown(ep.dir / "run", EGRESSD_UID, EGRESSD_UID)
        ep.start()
        self.assertIn("firewall not installed: the entrypoint runs as uid 10001", ep.stderr())
        self.assertIn("defense in depth", ep.stderr())
        self.assertNotIn("EGRESSD-INPUT", self.topo.exec(self.topo.proxy, "iptables", "-S").stdout)
        self.assertEqual(ep.stop(), 0)

    def test_root_without_net_admin_warns_and_serves(self):
        # docker run without --cap-add NET_ADMIN: iptables is refused.
        ep = self.entrypoint(egressd_conf=test_config(), wrap=(
            "setpriv", "--bounding-set=-net_admin", "--"))
        ep.write("hosts", "")
        ep.start()
        err = ep.stderr()
        self.assertIn("firewall not installed: iptables refused the rules", err)
        self.assertIn("NET_ADMIN", err)
        self.assertNotIn("EGRESSD-INPUT", self.topo.exec(self.topo.proxy, "iptables", "-S").stdout)
        self.assertEqual(ep.stop(), 0)

    def test_firewall_on_makes_failure_fatal(self):
        ep = self.entrypoint(egressd_conf=test_config(), env={"EGRESSD_FIREWALL": "on"},
                             wrap=("setpriv", "--bounding-set=-net_admin", "--"))
        ep.write("hosts", "")
        p = ep.run()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("EGRESSD_FIREWALL=on", p.stderr)

    def test_restart_does_not_stack_rules(self):
        ep = self.entrypoint(egressd_conf=test_config())
        ep.write("hosts", "")
        for _ in range(2):
            ep.start()
            self.assertEqual(ep.stop(), 0)
        rules = self.topo.exec(self.topo.proxy, "iptables", "-S").stdout
        self.assertEqual(rules.count("-A INPUT -j EGRESSD-INPUT"), 1)
        self.assertEqual(rules.count("--dport 3128 -j ACCEPT"), 1)

    def squid_stand_in(self, ep):
        """EGRESSD_BIN replaced by a script that answers `import-squid` with a
        fixed translation (no listen line) or, for a squid.conf containing
        FAIL, a FILE:LINE error; everything else goes to the real binary.
        Tests the entrypoint's side of the squid path on its own."""
        script = ep.write("egressd-stand-in", f"""#!/bin/sh
if [ "$1" = import-squid ]; then
  if grep -q FAIL "$2"; then echo "$2:1: stand-in translation error" >&2; exit 1; fi
  echo "allow allowed.test ports={ORIGIN_PORT}"
  exit 0
fi
exec {egressd_bin()} "$@"
""")
        script.chmod(0o755)
        ep.env["EGRESSD_BIN"] = str(script)

    def test_squid_translation_gets_the_container_listener(self):
        ep = self.entrypoint(squid_conf="http_port 3128\n")
        self.squid_stand_in(ep)
        p = ep.run("--check")
        self.assertEqual(p.returncode, 0, p.stderr)
        run = ep.dir / "run"
        self.assertEqual((run / "squid-import.conf").read_text(),
                         f"allow allowed.test ports={ORIGIN_PORT}\n")
        conf = (run / "egressd.conf").read_text()
        self.assertIn(f"listen 0.0.0.0:3128\ninclude {run}/squid-import.conf\n", conf)
        self.assertIn("listen: 0.0.0.0:3128 mode=proxy", p.stderr)

    def test_squid_translation_failure_exits_1(self):
        ep = self.entrypoint(squid_conf="FAIL\n")
        self.squid_stand_in(ep)
        p = ep.run()
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{ep.squid_path}:1: stand-in translation error", p.stderr)
        self.assertIn("egressd was not started", p.stderr)
        self.assertFalse((ep.dir / "run" / "squid-import.conf").exists())

    def test_loopback_only_listener_warns_and_opens_no_port(self):
        ep = self.entrypoint(egressd_conf="listen 127.0.0.1:3128\nadmin 127.0.0.1:9090\n"
                                          "hosts off\n")
        ep.start()
        self.assertIn("listens on loopback only", ep.stderr())
        rules = self.topo.exec(self.topo.proxy, "iptables", "-S", "EGRESSD-INPUT").stdout
        self.assertNotIn("--dport", rules)
        self.assertTrue(rules.rstrip().endswith("-A EGRESSD-INPUT -j DROP"), rules)
        self.assertEqual(ep.stop(), 0)

    def test_admin_without_allow_stays_closed(self):
        # Fail closed: an admin endpoint beyond loopback that names no
        # networks is reachable only from inside the container.
        ep = self.entrypoint(egressd_conf="listen 0.0.0.0:3128\nadmin 0.0.0.0:9090\nhosts off\n")
        ep.start(ports=(3128, 9090))
        err = ep.stderr()
        self.assertIn("the admin endpoint listens beyond loopback without allow=", err)
        self.assertIn("keeps port 9090", err)
        for ipt in ("iptables", "ip6tables"):
            rules = self.topo.exec(self.topo.proxy, ipt, "-S", "EGRESSD-INPUT").stdout
            self.assertIn("--dport 3128 -j ACCEPT", rules)
            self.assertNotIn("9090", rules)
        self.assertEqual(ep.stop(), 0)
        # Without NET_ADMIN nothing is closed: no claim that it is.
        ep = self.entrypoint(egressd_conf="listen 0.0.0.0:3128\nadmin 0.0.0.0:9090\nhosts off\n",
                             wrap=("setpriv", "--bounding-set=-net_admin", "--"))
        ep.start(ports=(3128, 9090))
        self.assertIn("firewall not installed", ep.stderr())
        self.assertNotIn("keeps port", ep.stderr())
        self.assertEqual(ep.stop(), 0)

    def test_admin_allow_both_families(self):
        ep = self.entrypoint(egressd_conf="listen 0.0.0.0:3128\nhosts off\n"
                                          "admin [::]:9090 allow=10.1.0.0/16,192.168.5.0/24,fd00:1::/64\n")
        ep.start(ports=(3128, 9090))
        v4 = self.topo.exec(self.topo.proxy, "iptables", "-S", "EGRESSD-INPUT").stdout
        v6 = self.topo.exec(self.topo.proxy, "ip6tables", "-S", "EGRESSD-INPUT").stdout
        self.assertIn("-s 10.1.0.0/16 -p tcp -m tcp --dport 9090 -j ACCEPT", v4)
        self.assertIn("-s 192.168.5.0/24 -p tcp -m tcp --dport 9090 -j ACCEPT", v4)
        self.assertIn("-s fd00:1::/64 -p tcp -m tcp --dport 9090 -j ACCEPT", v6)
        self.assertEqual(v4.count("9090"), 2)
        self.assertEqual(v6.count("9090"), 1)
        self.assertNotIn("without allow=", ep.stderr())
        self.assertEqual(ep.stop(), 0)

    def test_run_dir_without_dac_override(self):
        # The documented capability set has no CAP_DAC_OVERRIDE: root writes
        # a run dir it owns (the image's is root:egressd 0775)...
        wrap = ("setpriv", "--bounding-set=-dac_override", "--")
        ep = self.entrypoint(egressd_conf=test_config(), wrap=wrap)
        ep.write("hosts", "")
        run = ep.dir / "run"
        os.chown(run, 0, EGRESSD_UID)
        run.chmod(0o775)
        p = ep.run("--check")
        self.assertEqual(p.returncode, 0, p.stderr)
        # ...but not one another user owns (the image's old egressd:egressd
        # 0755, which podman's --read-only /run tmpfs copied in): a message
        # that says why, not a silent failure.
        ep = self.entrypoint(egressd_conf=test_config(), wrap=wrap)
        run = ep.dir / "run"
        os.chown(run, EGRESSD_UID, EGRESSD_UID)
        p = ep.run()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"owner {EGRESSD_UID}:{EGRESSD_UID}, mode 755", p.stderr)
        self.assertIn("CAP_DAC_OVERRIDE", p.stderr)

    def test_run_dir_must_be_writable(self):
        ep = self.entrypoint(egressd_conf=test_config())
        ep.env["EGRESSD_RUN_DIR"] = "/proc/egressd-run"
        p = ep.run()
        self.assertEqual(p.returncode, 1)
        self.assertIn("mount a tmpfs", p.stderr)


# --------------------------------------------------------------------------
# a mounted squid.conf


SQUID_CONF = f"""\
# mounted as /etc/squid/squid.conf; the resolver comes from /etc/resolv.conf
http_port 3128
acl allowed_sites dstdomain allowed.test
acl lab dst 10.213.0.64/26
acl Safe_ports port {ORIGIN_PORT}
http_access deny !Safe_ports
http_access allow allowed_sites
http_access allow lab
http_access deny all
"""


def import_squid_unsupported():
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write("http_port 3128\nhttp_access deny all\n")
        f.flush()
        p = sh(egressd_bin(), "import-squid", f.name, check=False)
    if p.returncode != 0 and "not supported" in p.stderr:
        return p.stderr.strip()
    return None


class SquidConf(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        reason = import_squid_unsupported()
        if reason:
            raise unittest.SkipTest(f"`egressd import-squid` is not in this build yet ({reason})")
        cls.topo, cls.dns, cls.origin = build_topology(cls, "q")
        # What a container runtime gives: resolv.conf and hosts.
        cls.topo.etc_file(cls.topo.proxy, "resolv.conf", f"nameserver {INET_IP}\n")
        cls.topo.etc_file(cls.topo.proxy, "hosts", "127.0.0.1 localhost\n"
                          f"{INET_IP} host.docker.internal\n")
        cls.ep = Entrypoint(cls.topo.proxy, squid_conf=SQUID_CONF)
        cls.addClassCleanup(cls.ep.cleanup)
        cls.ep.start()

    def test_translated_and_served(self):
        self.assertIn("translated by 'egressd import-squid'", self.ep.stderr())
        run = self.ep.dir / "run"
        translated = (run / "squid-import.conf").read_text()
        self.assertIn("listen 0.0.0.0:3128", translated)
        # The translation's own listener is used; none is added.
        self.assertNotIn("listen", (run / "egressd.conf").read_text())
        self.assertEqual(probe(self.topo.agent, PROXY_IP, 3128), "ok")
        status, body, _, p = curl(self.topo, "-x", f"http://{PROXY_IP}:3128",
                                  f"http://allowed.test:{ORIGIN_PORT}/squid")
        self.assertEqual(status, 200, p.stderr + translated)
        self.assertEqual(body, "origin /squid\n")
        status, _, head, p = curl(self.topo, "-x", f"http://{PROXY_IP}:3128",
                                  f"http://denied.test:{ORIGIN_PORT}/")
        self.assertEqual(status, 403, p.stderr)
        self.assertIn("x-egressd-reason: not_allowed", head)
        self.assertFalse(self.dns.queried("denied.test"))
        rules = self.topo.exec(self.topo.proxy, "iptables", "-S", "EGRESSD-INPUT").stdout
        self.assertIn("--dport 3128 -j ACCEPT", rules)
        self.assertEqual(probe(self.topo.agent, PROXY_IP, OTHER_PORT), "timeout")

    def test_untranslatable_squid_conf_stops_the_container(self):
        # Squid itself would refuse an undefined ACL: so does the import.
        ep = Entrypoint(self.topo.proxy, squid_conf="http_port 3128\nhttp_access allow nosuch\n")
        self.addCleanup(ep.cleanup)
        p = ep.run()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"{ep.squid_path}:2:", p.stderr)
        self.assertIn("egressd was not started", p.stderr)


# --------------------------------------------------------------------------
# the files themselves (no root needed)


def load_yaml_docs(path):
    if yaml is None:
        raise unittest.SkipTest("python3-yaml is not installed")
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


class ContainerFiles(unittest.TestCase):
    def test_dockerfile(self):
        text = (CONTAINER / "Dockerfile").read_text()
        self.assertRegex(text, r"(?m)^FROM debian:12 AS build$")
        self.assertRegex(text, r"(?m)^FROM debian:12-slim$")
        self.assertRegex(text, r"(?m)^EXPOSE 3128$")
        self.assertRegex(text, r"HEALTHCHECK[^\n]*\\\n\s*CMD nc -z localhost 3128")
        self.assertIn('ENTRYPOINT ["/usr/local/bin/egressd-entrypoint"]', text)
        self.assertIn("--uid 10001", text)
        self.assertIn("chown root:egressd /run/egressd", text)
        for pkg in ("iptables", "netcat-openbsd"):
            self.assertRegex(text, rf"install [^\n]*\n?[^\n]*{pkg}")
        # The build stage installs only what scripts/deps.sh knows about.
        deps = set((SOURCE / "scripts" / "deps.sh").read_text().split())
        build = text.split("FROM debian:12 AS build", 1)[1].split("WORKDIR", 1)[0]
        pkgs = re.findall(r"\b(lib[a-z0-9.+-]+-dev|build-essential|cmake|ninja-build|pkg-config)\b",
                          build)
        self.assertTrue(pkgs)
        self.assertEqual([p for p in pkgs if p not in deps], [])
        ignore = (CONTAINER / "Dockerfile.dockerignore").read_text().split()
        self.assertIn("build-*", ignore)

    def test_entrypoint_is_posix_sh(self):
        self.assertTrue(ENTRYPOINT.read_text().startswith("#!/bin/sh\n"))
        self.assertTrue(os.access(ENTRYPOINT, os.X_OK))
        self.assertEqual(sh("sh", "-n", ENTRYPOINT, check=False).returncode, 0)
        if shutil.which("shellcheck"):
            p = sh("shellcheck", "-s", "sh", ENTRYPOINT, check=False)
            self.assertEqual(p.returncode, 0, p.stdout)

    def test_compose(self):
        c = load_yaml_docs(CONTAINER / "compose.yaml")[0]
        e, a = c["services"]["egressd"], c["services"]["agent"]
        self.assertTrue(c["networks"]["agents"]["internal"])
        self.assertFalse(c["networks"]["egress"].get("internal", False))
        self.assertEqual(sorted(e["networks"]), ["agents", "egress"])
        self.assertEqual(a["networks"], ["agents"])
        self.assertEqual(e["build"], {"context": "..", "dockerfile": "container/Dockerfile"})
        self.assertIs(e["read_only"], True)
        self.assertTrue(any(t.startswith("/run/egressd") for t in e["tmpfs"]))
        self.assertIn("NET_ADMIN", e["cap_add"])
        self.assertIn("host.docker.internal:host-gateway", e["extra_hosts"])
        self.assertIn("EGRESSD_HOST_FORWARDS", e["environment"])
        self.assertEqual(e["healthcheck"]["test"], ["CMD", "nc", "-z", "localhost", "3128"])
        self.assertEqual(a["environment"]["HTTP_PROXY"], "http://egressd:3128")
        self.assertEqual(a["environment"]["HTTPS_PROXY"], "http://egressd:3128")
        self.assertIn("localhost", a["environment"]["NO_PROXY"])

    def k8s(self):
        docs = []
        for f in sorted((CONTAINER / "k8s").glob("*.yaml")):
            if f.name != "kustomization.yaml":
                docs += load_yaml_docs(f)
        return docs

    def test_k8s_deployment(self):
        dep = next(d for d in self.k8s() if d["kind"] == "Deployment")
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertEqual(pod["securityContext"]["runAsUser"], EGRESSD_UID)
        sc = c["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"proxy": 3128, "admin": 9090})
        self.assertEqual(ports[c["livenessProbe"]["tcpSocket"]["port"]], 3128)
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(ports[c["readinessProbe"]["httpGet"]["port"]], 9090)
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        self.assertEqual(mounts, {"/etc/egressd", "/run/egressd"})
        kust = load_yaml_docs(CONTAINER / "k8s" / "kustomization.yaml")[0]
        self.assertEqual(sorted(kust["resources"]),
                         sorted(f.name for f in (CONTAINER / "k8s").glob("*.yaml")
                                if f.name != "kustomization.yaml"))

    def test_k8s_configmap_passes_check(self):
        cm = next(d for d in self.k8s() if d["kind"] == "ConfigMap")
        conf = cm["data"]["egressd.conf"]
        self.assertRegex(conf, r"(?m)^listen 0\.0\.0\.0:3128$")
        self.assertRegex(conf, r"(?m)^admin 0\.0\.0\.0:9090 allow=\S+$")
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(conf)
            f.flush()
            p = sh(egressd_bin(), "-c", f.name, "--check", check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # The same allowlist as the shipped default.
        allows = sorted(re.findall(r"(?m)^allow .*$", conf))
        shipped = sorted(re.findall(r"(?m)^allow .*$", (SOURCE / "conf" / "egressd.conf").read_text()))
        self.assertEqual(allows, shipped)

    def test_k8s_network_policies(self):
        pols = {d["metadata"]["name"]: d for d in self.k8s() if d["kind"] == "NetworkPolicy"}
        agents = next(p for p in pols.values() if p["metadata"]["namespace"] == "agents")
        self.assertEqual(agents["spec"]["podSelector"], {})
        self.assertEqual(sorted(agents["spec"]["policyTypes"]), ["Egress", "Ingress"])
        eg_ports = sorted((p["protocol"], p["port"]) for r in agents["spec"]["egress"]
                          for p in r["ports"])
        self.assertEqual(eg_ports, [("TCP", 53), ("TCP", 3128), ("UDP", 53)])
        proxy_rule = next(r for r in agents["spec"]["egress"] if r["ports"][0]["port"] == 3128)
        self.assertEqual(proxy_rule["to"][0]["podSelector"]["matchLabels"],
                         {"app.kubernetes.io/name": "egressd"})
        ing = next(p for p in pols.values() if p["metadata"]["namespace"] == "egress"
                   and p["spec"]["policyTypes"] == ["Ingress"])
        by_ns = {r["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]:
                 [p["port"] for p in r["ports"]] for r in ing["spec"]["ingress"]}
        self.assertEqual(by_ns, {"agents": [3128], "monitoring": [9090]})
        out = next(p for p in pols.values() if p["metadata"]["namespace"] == "egress"
                   and p["spec"]["policyTypes"] == ["Egress"])
        public = out["spec"]["egress"][0]
        self.assertEqual(sorted(p["port"] for p in public["ports"]), [80, 443])
        v4 = next(t["ipBlock"] for t in public["to"] if t["ipBlock"]["cidr"] == "0.0.0.0/0")
        for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                    "100.64.0.0/10", "127.0.0.0/8"):
            self.assertIn(net, v4["except"])
        v6 = next(t["ipBlock"] for t in public["to"] if t["ipBlock"]["cidr"] == "::/0")
        for net in ("fc00::/7", "fe80::/10"):
            self.assertIn(net, v6["except"])
        dns = out["spec"]["egress"][1]
        self.assertEqual(dns["to"][0]["podSelector"]["matchLabels"], {"k8s-app": "kube-dns"})


if __name__ == "__main__":
    main()
