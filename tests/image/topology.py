"""The compose topology of container/compose.yaml on podman: the networks,
the origin, the agents and egressd containers, and the helpers the image
tests share (curl and TCP probes run inside containers)."""

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml  # python3-yaml (scripts/deps.sh)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import podman as pm  # noqa: E402

CONTAINER = pm.SOURCE / "container"
ORIGIN_PORT = 8080
CAPS = ["--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--cap-add", "SETUID",
        "--cap-add", "SETGID", "--cap-add", "SETPCAP"]


def compose_service(name):
    return yaml.safe_load((CONTAINER / "compose.yaml").read_text())["services"][name]


def compose_value(v):
    """"${VAR:-default}" as compose reads it with VAR unset."""
    m = re.fullmatch(r"\$\{\w+:-(.*)\}", str(v))
    return m.group(1) if m else str(v)


def compose_run_args(service, env=None, hosts=None, tmpfs=True):
    """podman run flags for what a compose service declares: read_only,
    tmpfs, cap_drop/cap_add, security_opt, environment (env overrides),
    extra_hosts (host-gateway replaced by hosts["host-gateway"]),
    stop_grace_period. So the test runs what compose.yaml says."""
    args = []
    if service.get("read_only"):
        args.append("--read-only")
    for t in service.get("tmpfs", []) if tmpfs else []:
        args += ["--tmpfs", t]
    for c in service.get("cap_drop", []):
        args += ["--cap-drop", c]
    for c in service.get("cap_add", []):
        args += ["--cap-add", c]
    for o in service.get("security_opt", []):
        args += ["--security-opt", o.removesuffix(":true")]
    merged = {k: compose_value(v) for k, v in (service.get("environment") or {}).items()}
    merged.update(env or {})
    for k, v in merged.items():
        args += ["-e", f"{k}={v}"]
    for h in service.get("extra_hosts", []):
        name, _, addr = h.partition(":")
        args += ["--add-host", f"{name}:{(hosts or {}).get(addr, addr)}"]
    grace = service.get("stop_grace_period")
    if grace:
        args += ["--stop-timeout", str(int(str(grace).rstrip("s")))]
    return args

# The origin: "origin PATH\n" for every GET; /slow answers after 3 s. Each
# request is logged as "CLIENT_IP PATH" on stdout.
ORIGIN = r"""
import http.server, socketserver, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        print(self.client_address[0], self.path, flush=True)
        if self.path.startswith("/slow"):
            time.sleep(3)
        body = ("origin %s\n" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("0.0.0.0", 8080), H).serve_forever()
"""

# One TCP connect: ok, refused, timeout (dropped) or unreachable.
PROBE = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("ok")
except ConnectionRefusedError: print("refused")
except socket.timeout: print("timeout")
except OSError as e: print("unreachable" if e.errno in (101, 113) else "error %d" % e.errno)
"""

# Where the mounted config files live (readable by uid 10001).
state = {}


def files_dir():
    if "files" not in state:
        state["files"] = Path(tempfile.mkdtemp(prefix="egressd-test-files."))
        state["files"].chmod(0o755)
    return state["files"]


def mount_file(name, text):
    path = files_dir() / name
    path.write_text(text)
    path.chmod(0o644)
    return path


def curl(container, *args, timeout=30):
    """curl in a container: (status, body, lower-cased head, CompletedProcess)."""
    p = container.exec("curl", "-q", "-sS", "--max-time", "15", "-D", "-", *args, timeout=timeout)
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    m = re.match(r"HTTP/\S+ (\d+)", head)
    return (int(m.group(1)) if m else 0), body, head.lower(), p


def probe(container, host, port, timeout=2):
    return container.exec("python3", "-c", PROBE, host, str(port), str(timeout)).stdout.strip()


def proc_status(container):
    text = container.exec("cat", "/proc/1/status", check=True).stdout
    return dict((k, v.strip()) for k, _, v in (line.partition(":") for line in text.splitlines()))


class Topology:
    """The networks, the origin and the agent shared by the test classes."""

    _made = None

    @classmethod
    def get(cls):
        if cls._made is None:
            cls._made = cls()
        return cls._made

    def __init__(self):
        self.agents, self.agents_subnet, self.agents_subnet6 = pm.network("agents")
        self.inet, self.inet_subnet, self.inet_subnet6 = pm.network("inet")
        self.origin = pm.Container("origin", pm.TOOLS, networks=[self.inet],
                                   cmd=["python3", "-u", "-c", ORIGIN])
        self.origin_ip = self.origin.ip(self.inet)
        self.origin_ip6 = self.origin.ip6(self.inet)
        deadline = time.monotonic() + 20
        while probe(self.origin, "127.0.0.1", ORIGIN_PORT, 1) != "ok":
            if time.monotonic() > deadline:
                raise AssertionError(f"origin did not listen: {self.origin.logs()}")
            time.sleep(0.2)
        self.agents_by_proxy = {}

    def agent(self, proxy_ip):
        """compose's `agent` service (its environment: HTTP_PROXY=http://egressd:3128
        ...) on the tools image, with `egressd` naming proxy_ip."""
        if proxy_ip not in self.agents_by_proxy:
            self.agents_by_proxy[proxy_ip] = pm.Container(
                f"agent{len(self.agents_by_proxy)}", pm.TOOLS, "--add-host", f"egressd:{proxy_ip}",
                *compose_run_args(compose_service("agent")),
                networks=[self.agents], cmd=["sleep", "infinity"])
        return self.agents_by_proxy[proxy_ip]

    def origin_requests(self):
        return [tuple(line.split(" ", 1)) for line in self.origin.logs()[0].splitlines() if " " in line]

    def hosts(self):
        """Names for the allowlist and the address checks (compose's
        extra_hosts come from compose_run_args)."""
        return ["--add-host", f"origin.test:{self.origin_ip}",
                "--add-host", "lan.test:192.168.77.7",
                "--add-host", "metadata.test:169.254.169.254",
                "--add-host", "self.test:127.0.0.1"]

    def config(self, extra=""):
        """The mounted /etc/egressd/egressd.conf."""
        return "\n".join([
            "listen 0.0.0.0:3128",
            # Dual-stack: the firewall filters both families by allow=.
            f"admin [::]:9090 allow={self.inet_subnet},{self.inet_subnet6}",
            "access_log stdout",
            "threads 2",
            "timeout connect=3s drain=15s dns=2s",
            f"allow origin.test ports={ORIGIN_PORT}",
            "allow lan.test ports=80",
            "allow metadata.test ports=80",
            "allow self.test ports=9090",
            f"allow_net {self.inet_subnet} ports={ORIGIN_PORT}",
            extra]) + "\n"

    def egressd(self, name, *args, conf=None, forwards="", tmpfs=True):
        """egressd as compose.yaml runs it (read_only, its tmpfs unless
        tmpfs=False, cap_drop/cap_add, security_opt, environment,
        extra_hosts with the origin as the Docker host), on both networks."""
        mounts = []
        if conf is not None:
            mounts = ["-v", f"{mount_file(name + '.conf', conf)}:/etc/egressd/egressd.conf:ro"]
        run = compose_run_args(compose_service("egressd"), env={"EGRESSD_HOST_FORWARDS": forwards},
                               hosts={"host-gateway": self.origin_ip}, tmpfs=tmpfs)
        c = pm.Container(name, pm.IMAGE, *run, *self.hosts(), *mounts, *args,
                         networks=[self.agents, self.inet])
        c.wait_healthy()
        return c
