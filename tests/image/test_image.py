#!/usr/bin/env python3
"""The real image, run as users run it (`make test-image`).

Builds container/Dockerfile with podman (base images from tests/image/base.sh
when no registry is reachable) and runs the topology of container/compose.yaml
on `--internal` networks only:

  agent  --(agents, internal)--  egressd  --(inet, internal)--  origin

The `inet` network stands in for the internet: the origin (python3
http.server-like, port 8080) is also the "Docker host" of the host-port
forwards and the monitoring client admitted by `admin ... allow=`. Nothing
leaves the networks this test creates; the only other traffic is apt inside
the builds, to the Debian mirror. Containers and networks are named
egressd-test-PID-* and removed at the end, even on failure.

Also: the finding that `--read-only` plus the documented capability set works
on podman's /run tmpfs, the squid.conf path, `--user 10001` as in Kubernetes,
`podman stop` draining, the image size, and `kubectl kustomize container/k8s`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import podman as pm  # noqa: E402
from topology import (CAPS, CONTAINER, ORIGIN_PORT, Topology, curl, files_dir,  # noqa: E402
                      mount_file, probe, proc_status, state)

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

MAX_IMAGE_BYTES = 120 * 1000 * 1000  # the size `podman images` shows, in MB


def setUpModule():
    # Not a skip: `make test-image` passing must mean the image was tested.
    reason = pm.skip_reason()
    if reason:
        raise AssertionError(f"cannot test the image: {reason}")
    t0 = time.monotonic()
    pm.log(pm.base_images())
    logs = Path(tempfile.gettempdir())
    took = pm.build(pm.IMAGE, CONTAINER / "Dockerfile", pm.SOURCE, logs / "egressd-test-build.log",
                    extra=["--ignorefile", str(CONTAINER / "Dockerfile.dockerignore")])
    pm.log(f"{pm.IMAGE} built in {took:.0f}s ({pm.image_size(pm.IMAGE) / 1e6:.1f} MB; "
           f"log {logs / 'egressd-test-build.log'})")
    ctx = Path(tempfile.mkdtemp(prefix="egressd-test-tools."))
    try:
        (ctx / "Containerfile").write_text(pm.TOOLS_CONTAINERFILE)
        took = pm.build(pm.TOOLS, ctx / "Containerfile", ctx, logs / "egressd-test-tools.log")
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    pm.log(f"{pm.TOOLS} built in {took:.0f}s; images ready after {time.monotonic() - t0:.0f}s")
    files_dir()


def tearDownModule():
    pm.cleanup()
    if "files" in state:
        shutil.rmtree(state["files"], ignore_errors=True)


# --------------------------------------------------------------------------


class Compose(unittest.TestCase):
    """compose.yaml's egressd: tmpfs /run/egressd, a mounted egressd.conf,
    host forwards, and the agent that has no other way out."""

    @classmethod
    def setUpClass(cls):
        cls.t = t = Topology.get()
        cls.e = t.egressd("egressd", conf=t.config(), forwards="8080 15432:8080")
        cls.addClassCleanup(cls.e.remove)
        cls.ip = cls.e.ip(t.agents)
        cls.inet_ip = cls.e.ip(t.inet)
        cls.agent = t.agent(cls.ip)
        # A service in the egressd container that is not egressd's.
        cls.e.exec("nc", "-lk", "9999", detach=True, check=True)

    def proxied(self, url):
        return curl(self.agent, "-x", "http://egressd:3128", url)

    def test_allowed_200(self):
        status, body, _, p = self.proxied(f"http://origin.test:{ORIGIN_PORT}/hello")
        self.assertEqual(status, 200, p.stderr)
        self.assertEqual(body, "origin /hello\n")
        self.assertIn((self.inet_ip, "/hello"), self.t.origin_requests())

    def test_agent_environment_as_in_compose(self):
        # No -x: curl takes http_proxy from the agent's environment.
        status, body, _, p = curl(self.agent, f"http://origin.test:{ORIGIN_PORT}/env")
        self.assertEqual(status, 200, p.stderr)
        self.assertEqual(body, "origin /env\n")

    def test_access_log_on_stdout(self):
        self.proxied(f"http://origin.test:{ORIGIN_PORT}/logged")
        deadline = time.monotonic() + 10
        lines = []
        while time.monotonic() < deadline:
            lines = [json.loads(x) for x in self.e.logs()[0].splitlines() if x.startswith("{")]
            if any(x.get("path") == "/logged" for x in lines):
                break
            time.sleep(0.2)
        e = next(x for x in lines if x.get("path") == "/logged")
        self.assertEqual(e["decision"], "allow")
        self.assertTrue(e["client"].startswith(self.agent.ip(self.t.agents) + ":"), e)

    def test_unlisted_403(self):
        status, body, head, p = self.proxied(f"http://denied.test:{ORIGIN_PORT}/x")
        self.assertEqual(status, 403, p.stderr)
        self.assertIn("x-egressd-reason: not_allowed", head)
        self.assertNotIn("/x", [path for _, path in self.t.origin_requests()])

    def test_metadata_and_lan_403(self):
        for url, reason in (("http://169.254.169.254/latest/meta-data/", "ip_literal"),
                            ("http://metadata.google.internal/computeMetadata/v1/", "not_allowed"),
                            ("http://metadata.test/latest/meta-data/", "non_public_address"),
                            ("http://lan.test/", "non_public_address"),
                            (f"http://{self.t.origin_ip}:22/", "ip_literal")):
            with self.subTest(url=url):
                status, _, head, p = self.proxied(url)
                self.assertEqual(status, 403, p.stderr)
                self.assertIn(f"x-egressd-reason: {reason}", head)

    def test_self_403(self):
        status, _, head, p = self.proxied("http://self.test:9090/metrics")
        self.assertEqual(status, 403, p.stderr)
        self.assertIn("x-egressd-reason: self", head)

    def test_direct_to_origin_no_route(self):
        self.assertEqual(probe(self.agent, self.t.origin_ip, ORIGIN_PORT), "unreachable")
        self.assertEqual(probe(self.agent, self.t.origin_ip6, ORIGIN_PORT), "unreachable")
        status, _, _, p = curl(self.agent, "--noproxy", "*", "--connect-timeout", "3",
                               f"http://{self.t.origin_ip}:{ORIGIN_PORT}/direct")
        self.assertEqual(status, 0)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn("/direct", [path for _, path in self.t.origin_requests()])

    def test_other_ports_dropped(self):
        self.assertEqual(self.e.exec("nc", "-z", "-w", "2", "localhost", "9999").returncode, 0,
                         "the stand-in service listens inside the container")
        self.assertEqual(probe(self.agent, "egressd", 3128), "ok")
        self.assertEqual(probe(self.agent, "egressd", 9999), "timeout")  # dropped, not refused
        self.assertEqual(probe(self.agent, "egressd", 22), "timeout")
        # IPv6: the proxy port is accepted (egressd listens on IPv4 only, so
        # the kernel refuses), anything else is dropped.
        ip6 = self.e.ip6(self.t.agents)
        self.assertEqual(probe(self.agent, ip6, 3128), "refused")
        self.assertEqual(probe(self.agent, ip6, 22), "timeout")
        for ipt in ("iptables", "ip6tables"):
            rules = self.e.exec(ipt, "-S", "EGRESSD-INPUT", check=True).stdout
            self.assertTrue(rules.rstrip().endswith("-A EGRESSD-INPUT -j DROP"), rules)
            self.assertIn("-P FORWARD DROP", self.e.exec(ipt, "-S", "FORWARD").stdout)

    def test_admin_only_from_allow_networks(self):
        # The agents cannot reach /metrics or /v1/; the "monitoring" network can.
        self.assertEqual(probe(self.agent, "egressd", 9090), "timeout")
        self.assertEqual(probe(self.agent, self.e.ip6(self.t.agents), 9090), "timeout")
        for addr in (self.inet_ip, f"[{self.e.ip6(self.t.inet)}]"):
            with self.subTest(addr=addr):
                status, body, _, p = curl(self.t.origin, "-g", f"http://{addr}:9090/metrics")
                self.assertEqual(status, 200, p.stderr)
                self.assertIn("egressd_requests_total", body)
        for ipt, net in (("iptables", self.t.inet_subnet), ("ip6tables", self.t.inet_subnet6)):
            rules = self.e.exec(ipt, "-S", "EGRESSD-INPUT", check=True).stdout
            self.assertIn(f"-A EGRESSD-INPUT -s {net} -p tcp -m tcp --dport 9090 -j ACCEPT", rules)
            self.assertEqual(rules.count("--dport 9090"), 1, rules)
            self.assertIn(f"admin 9090 from {net}", self.e.logs()[1])

    def test_host_forwards(self):
        # EGRESSD_HOST_FORWARDS="8080 15432:8080": egressd:PORT is the
        # "Docker host"'s port (host.docker.internal = the origin here).
        for port in (8080, 15432):
            with self.subTest(port=port):
                status, body, _, p = curl(self.agent, "--noproxy", "*", f"http://egressd:{port}/fwd{port}")
                self.assertEqual(status, 200, p.stderr)
                self.assertEqual(body, f"origin /fwd{port}\n")
        self.assertIn("host forwards: 8080 15432 -> host.docker.internal", self.e.logs()[1])

    def test_read_only_root(self):
        self.assertEqual(self.e.inspect("{{.HostConfig.ReadonlyRootfs}}"), "true")
        p = self.e.exec("sh", "-c", "echo x > /usr/local/bin/x")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("Read-only file system", p.stderr)
        self.assertEqual(self.e.exec("mountpoint", "-q", "/run/egressd").returncode, 0,
                         "compose's tmpfs on /run/egressd")

    def test_egressd_unprivileged(self):
        s = proc_status(self.e)
        self.assertEqual(s["Name"], "egressd")
        self.assertEqual(s["Uid"].split(), ["10001"] * 4)
        self.assertEqual(s["Gid"].split(), ["10001"] * 4)
        self.assertEqual(s["Groups"].split(), [])
        for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            self.assertEqual(int(s[caps], 16), 0, caps)
        self.assertEqual(s["NoNewPrivs"], "1")

    def test_healthcheck(self):
        hc = json.loads(pm.podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}",
                                  pm.IMAGE).stdout)
        self.assertEqual(hc["Test"], ["CMD-SHELL", "nc -z localhost 3128 || exit 1"])
        p = pm.podman("healthcheck", "run", self.e.name, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(self.e.inspect("{{.State.Health.Status}}"), "healthy")


class FindingReadOnlyRun(unittest.TestCase):
    """Finding (a): `--read-only` with the documented capability set and no
    tmpfs of its own: podman's /run tmpfs holds a copy of the image's
    /run/egressd, which root without CAP_DAC_OVERRIDE must be able to
    write. Then `podman stop` drains an open request and exits 0."""

    @classmethod
    def setUpClass(cls):
        cls.t = t = Topology.get()
        cls.e = t.egressd("ro", conf=t.config(), tmpfs=False)
        cls.addClassCleanup(cls.e.remove)
        cls.agent = t.agent(cls.e.ip(t.agents))

    def test_serves_and_stop_drains(self):
        self.assertIn("starting egressd as uid 10001", self.e.logs()[1])
        # podman's copy of the image's root:egressd 0775 dir on its /run
        # tmpfs (group write dropped): root owns it, so root writes it.
        self.assertEqual(self.e.exec("stat", "-c", "%u:%g", "/run/egressd").stdout.strip(), "0:10001")
        self.assertEqual(self.e.exec("mountpoint", "-q", "/run").returncode, 0)
        self.assertNotEqual(self.e.exec("mountpoint", "-q", "/run/egressd").returncode, 0)
        self.assertTrue(self.e.exec("test", "-f", "/run/egressd/egressd.conf").returncode == 0)
        result = {}

        def slow():
            result["r"] = curl(self.agent, "-x", "http://egressd:3128",
                               f"http://origin.test:{ORIGIN_PORT}/slow-drain")
        th = threading.Thread(target=slow)
        th.start()
        deadline = time.monotonic() + 10
        while "/slow-drain" not in [p for _, p in self.t.origin_requests()]:
            self.assertLess(time.monotonic(), deadline, "the slow request did not reach the origin")
            time.sleep(0.1)
        start = time.monotonic()
        stop = pm.podman("stop", "-t", "30", self.e.name, check=False, timeout=60)
        took = time.monotonic() - start
        th.join(30)
        self.assertEqual(stop.returncode, 0, stop.stderr)
        status, body, _, p = result["r"]
        self.assertEqual(status, 200, p.stderr)  # finished during the drain
        self.assertEqual(body, "origin /slow-drain\n")
        self.assertLess(took, 20)
        self.assertEqual(self.e.exit_code(), 0)
        self.assertIn("egressd: stopping (draining for at most 15000 ms)", self.e.logs()[1])


class SquidConf(unittest.TestCase):
    """A mounted /etc/squid/squid.conf, translated at start."""

    @classmethod
    def setUpClass(cls):
        cls.t = t = Topology.get()
        squid = mount_file("squid.conf", "\n".join([
            "http_port 3128",
            "acl allowed_sites dstdomain origin.test",
            f"acl lab dst {t.inet_subnet}",
            f"acl Safe_ports port {ORIGIN_PORT}",
            "http_access deny !Safe_ports",
            "http_access allow allowed_sites",
            "http_access allow lab",
            "http_access deny all"]) + "\n")
        cls.e = t.egressd("squid", "-v", f"{squid}:/etc/squid/squid.conf:ro")
        cls.addClassCleanup(cls.e.remove)
        cls.agent = t.agent(cls.e.ip(t.agents))

    def test_translated_and_served(self):
        self.assertIn("translated by 'egressd import-squid'", self.e.logs()[1])
        status, body, _, p = curl(self.agent, "-x", "http://egressd:3128",
                                  f"http://origin.test:{ORIGIN_PORT}/squid")
        self.assertEqual(status, 200, p.stderr)
        self.assertEqual(body, "origin /squid\n")
        status, _, head, p = curl(self.agent, "-x", "http://egressd:3128",
                                  f"http://denied.test:{ORIGIN_PORT}/")
        self.assertEqual(status, 403, p.stderr)
        self.assertIn("x-egressd-reason: not_allowed", head)
        self.assertEqual(probe(self.agent, "egressd", 9090), "timeout")


class ImageItself(unittest.TestCase):
    def test_size(self):
        size = pm.image_size(pm.IMAGE)
        pm.log(f"image size {size / 1e6:.1f} MB")
        self.assertLessEqual(size, MAX_IMAGE_BYTES)

    def test_runtime_packages_only(self):
        rc, out, err = pm.run_once(pm.IMAGE, "--entrypoint", "sh", cmd=[
            "-c", "command -v python3 perl gcc apt-get curl; dpkg -l ca-certificates iptables "
                  "netcat-openbsd util-linux 2>/dev/null | awk '/^ii/ {print $2}'"])
        lines = out.split()
        self.assertNotIn("/usr/bin/python3", lines)
        self.assertNotIn("/usr/bin/gcc", lines)
        self.assertNotIn("/usr/bin/curl", lines)
        for pkg in ("iptables", "netcat-openbsd", "util-linux"):
            self.assertIn(pkg, lines)

    def test_utility_mode_and_user(self):
        rc, out, err = pm.run_once(pm.IMAGE, "--read-only", cmd=["--version"])
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("egressd "), out)

    def test_root_without_net_admin_warns_and_checks(self):
        rc, out, err = pm.run_once(pm.IMAGE, "--read-only", "--cap-drop", "ALL", "--cap-add", "SETUID",
                                   "--cap-add", "SETGID", cmd=["--check"])
        self.assertEqual(rc, 0, err)
        self.assertIn("listen: 0.0.0.0:3128 mode=proxy", err)

    def test_broken_config_exits_1(self):
        conf = mount_file("broken.conf", "listen 0.0.0.0:3128\nallow x.test bogus=1\n")
        rc, out, err = pm.run_once(pm.IMAGE, "--read-only", *CAPS, "-v",
                                   f"{conf}:/etc/egressd/egressd.conf:ro")
        self.assertEqual(rc, 1, err)
        self.assertIn("/etc/egressd/egressd.conf:2:", err)
        self.assertIn("egressd was not started", err)


def kustomize():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise unittest.SkipTest("kubectl is not installed (scripts/deps.sh --image installs kubernetes-client)")
    if yaml is None:
        raise unittest.SkipTest("python3-yaml is not installed")
    p = subprocess.run([kubectl, "kustomize", str(CONTAINER / "k8s")], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"kubectl kustomize container/k8s failed:\n{p.stderr}")
    return [d for d in yaml.safe_load_all(p.stdout) if d]


class Kubernetes(unittest.TestCase):
    """container/k8s as kubectl renders it, and its pod as the kubelet runs it."""

    @classmethod
    def setUpClass(cls):
        cls.docs = kustomize()

    def one(self, kind):
        # The egressd object of that kind (the Grafana dashboard is a second
        # ConfigMap: the config is the one that holds egressd.conf).
        (d,) = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"].startswith("egressd")
                and (kind != "ConfigMap" or "egressd.conf" in d.get("data", {}))]
        return d

    def test_rendered_objects(self):
        kinds = {d["kind"] for d in self.docs}
        for k in ("Namespace", "ConfigMap", "Deployment", "Service", "NetworkPolicy"):
            self.assertIn(k, kinds)
        names = {d["metadata"]["name"] for d in self.docs if d["kind"] == "Namespace"}
        self.assertLessEqual({"egress", "agents"}, names)
        for d in self.docs:
            if d["kind"] != "Namespace":
                self.assertIn(d["metadata"].get("namespace"), names, d["metadata"])
        dep = self.one("Deployment")
        pod = dep["spec"]["template"]["spec"]
        self.assertEqual(dep["spec"]["selector"]["matchLabels"],
                         {k: v for k, v in dep["spec"]["template"]["metadata"]["labels"].items()
                          if k in dep["spec"]["selector"]["matchLabels"]})
        vols = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual(vols["config"]["configMap"]["name"], self.one("ConfigMap")["metadata"]["name"])
        svc = self.one("Service")
        self.assertEqual(svc["metadata"]["namespace"], dep["metadata"]["namespace"])
        for k, v in svc["spec"]["selector"].items():
            self.assertEqual(dep["spec"]["template"]["metadata"]["labels"][k], v)

    def test_configmap_admin_allow(self):
        conf = self.one("ConfigMap")["data"]["egressd.conf"]
        m = re.search(r"(?m)^admin 0\.0\.0\.0:9090 allow=(\S+)$", conf)
        self.assertIsNotNone(m, conf)

    def test_pod_as_the_kubelet_runs_it(self):
        # runAsUser 10001, readOnlyRootFilesystem, drop ALL, the ConfigMap and
        # the emptyDir: the pod's own config checks and serves.
        Topology.get()
        dep = self.one("Deployment")
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        env = [a for e in c.get("env", []) for a in ("-e", f"{e['name']}={e['value']}")]
        conf = mount_file("k8s.conf", self.one("ConfigMap")["data"]["egressd.conf"])
        empty_dir = files_dir() / "emptydir"  # what the kubelet makes: 0777
        empty_dir.mkdir()
        empty_dir.chmod(0o777)
        rc, out, err = pm.run_once(pm.IMAGE, "--user", "10001:10001", "--read-only", "--cap-drop", "ALL",
                                   "--security-opt", "no-new-privileges", *env,
                                   "-v", f"{empty_dir}:/run/egressd",
                                   "-v", f"{conf}:/etc/egressd/egressd.conf:ro", cmd=["--check"])
        self.assertEqual(rc, 0, err)
        self.assertIn("admin: 0.0.0.0:9090 allow=", err)
        c = pm.Container("k8s", pm.IMAGE, "--user", "10001:10001", "--read-only", "--cap-drop", "ALL",
                         "--security-opt", "no-new-privileges", *env, "-v", f"{empty_dir}:/run/egressd",
                         "-v", f"{conf}:/etc/egressd/egressd.conf:ro", networks=[Topology.get().agents])
        self.addCleanup(c.remove)
        c.wait_healthy()
        self.assertIn("firewall: off (EGRESSD_FIREWALL=off)", c.logs()[1])
        s = proc_status(c)
        self.assertEqual(s["Uid"].split(), ["10001"] * 4)
        self.assertEqual(int(s["CapEff"], 16), 0)
        # The readiness probe the Deployment declares, from inside the pod.
        self.assertEqual(c.exec("nc", "-z", "-w", "2", "127.0.0.1", "9090").returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
