"""Podman as the image tests use it: rootful, `--runtime runc --cgroup-manager
cgroupfs` (crun fails on these machines' cgroup hybrid mode), ulimits under
the hard limit, Docker image format (OCI drops HEALTHCHECK), and only
`--internal` networks (no route anywhere: the agents network, and a second
one standing in for the internet).

Every network and container made here is named egressd-test-PID-NAME and
recorded; cleanup() removes them, and runs at exit and on SIGTERM/SIGINT too.
The images are kept (the build cache is the point of a second run).
"""

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2]
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
ULIMITS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=8192:8192"]
PREFIX = f"egressd-test-{os.getpid()}-"
IMAGE = "localhost/egressd-test:latest"
TOOLS = "localhost/egressd-test-tools:latest"

# The agent and the origin: curl and python3 on the same slim base.
TOOLS_CONTAINERFILE = """\
FROM docker.io/library/debian:12-slim
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl python3 \\
 && rm -rf /var/lib/apt/lists/*
"""

_made = {"containers": [], "networks": []}


def skip_reason():
    if os.geteuid() != 0:
        return "needs root (rootful podman)"
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (scripts/deps.sh --image installs podman, runc, debootstrap)"
    return None


def podman(*args, check=True, timeout=120, input=None):
    p = subprocess.run(PODMAN + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args))} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout[-4000:]}\nstderr:\n{p.stderr[-4000:]}")
    return p


def log(msg):
    print(f"image-test: {msg}", file=sys.stderr, flush=True)


def build(tag, containerfile, context, log_path, extra=(), timeout=1800):
    """podman build in Docker format with the layer cache; the output goes to
    log_path (its tail is raised on failure). Returns the seconds it took."""
    start = time.monotonic()
    with open(log_path, "w") as out:
        p = subprocess.run(["nice", "-n", "10"] + PODMAN + [
            "build", "--format", "docker", "--layers", *ULIMITS, *extra,
            "-f", str(containerfile), "-t", tag, str(context)],
            stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    took = time.monotonic() - start
    if p.returncode != 0:
        tail = Path(log_path).read_text()[-6000:]
        raise AssertionError(f"podman build of {tag} failed ({p.returncode}), log {log_path}:\n{tail}")
    return took


def base_images():
    p = subprocess.run(["nice", "-n", "10", str(SOURCE / "tests" / "image" / "base.sh")],
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise AssertionError(f"tests/image/base.sh failed:\n{p.stdout}{p.stderr}")
    return p.stderr.strip()


def image_size(tag):
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def network(name):
    """A dual-stack --internal network (no gateway, no route out).
    Returns (name, IPv4 subnet, IPv6 subnet)."""
    full = PREFIX + name
    podman("network", "create", "--internal", "--ipv6", full)
    _made["networks"].append(full)
    info = json.loads(podman("network", "inspect", full).stdout)[0]
    nets = [s["subnet"] for s in info["subnets"]]
    return full, next(n for n in nets if ":" not in n), next(n for n in nets if ":" in n)


class Container:
    """One `podman run -d`; removed by cleanup()."""

    def __init__(self, name, image, *args, networks=(), cmd=()):
        self.name = PREFIX + name
        net_args = [a for n in networks for a in ("--network", n)]
        podman("run", "-d", "--name", self.name, *ULIMITS, *net_args, *args, image, *cmd)
        _made["containers"].append(self.name)
        self.networks = list(networks)

    def inspect(self, fmt=None):
        if fmt:
            return podman("inspect", "--format", fmt, self.name).stdout.strip()
        return json.loads(podman("inspect", self.name).stdout)[0]

    def ip(self, net):
        return self.inspect()["NetworkSettings"]["Networks"][net]["IPAddress"]

    def ip6(self, net):
        return self.inspect()["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"]

    def running(self):
        return self.inspect("{{.State.Running}}") == "true"

    def exit_code(self):
        return int(self.inspect("{{.State.ExitCode}}"))

    def exec(self, *cmd, check=False, timeout=60, detach=False):
        return podman("exec", *(["-d"] if detach else []), self.name, *cmd,
                      check=check, timeout=timeout)

    def logs(self):
        """(stdout, stderr) of the container so far."""
        p = podman("logs", self.name, check=False)
        return p.stdout, p.stderr

    def wait_healthy(self, timeout=30):
        """Runs the image's HEALTHCHECK until it passes (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                out, err = self.logs()
                raise AssertionError(f"{self.name} exited {self.exit_code()}:\n{err}{out}")
            if podman("healthcheck", "run", self.name, check=False).returncode == 0:
                return
            time.sleep(0.3)
        out, err = self.logs()
        raise AssertionError(f"{self.name} not healthy after {timeout}s:\n{err}{out}")

    def remove(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)
        with contextlib.suppress(ValueError):
            _made["containers"].remove(self.name)


def run_once(image, *args, cmd=(), timeout=60):
    """podman run --rm: (returncode, stdout, stderr)."""
    name = PREFIX + f"once{len(_made['containers'])}-{int(time.monotonic() * 1000) % 100000}"
    _made["containers"].append(name)
    try:
        p = podman("run", "--rm", "--name", name, *ULIMITS, *args, image, *cmd,
                   check=False, timeout=timeout)
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
        with contextlib.suppress(ValueError):
            _made["containers"].remove(name)
    return p.returncode, p.stdout, p.stderr


def cleanup():
    for c in list(_made["containers"]):
        podman("rm", "-f", "-t", "0", c, check=False)
    _made["containers"].clear()
    for n in list(_made["networks"]):
        podman("network", "rm", "-f", n, check=False)
    _made["networks"].clear()


def _on_signal(sig, _frame):
    cleanup()
    sys.exit(128 + sig)


atexit.register(cleanup)
for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)
