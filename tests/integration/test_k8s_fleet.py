#!/usr/bin/env python3
"""container/k8s for a fleet: the PodDisruptionBudget, topology spread, the
HPA, the PrometheusRule and the Grafana dashboard load (YAML/JSON), fit the
Deployment, and every PromQL expression names only metrics — and labels —
that a running egressd exports (its /metrics, scraped here), plus the few
that other parts of the fleet work add, listed in EXPECTED_ELSEWHERE.
`kubectl kustomize` renders the whole directory when kubectl is installed."""

import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SOURCE, DnsServer, Egressd, EgressdTestCase, base_config, free_port,  # noqa: E402
                     main, proxy_get)
from modes_util import scrape, wait_listening  # noqa: E402

K8S = SOURCE / "container" / "k8s"

# Series other work exports (SPEC "State shared by a fleet", grants, agents):
# allowed in expressions although this build's /metrics lacks them.
EXPECTED_ELSEWHERE = {
    "egressd_grants_active": "the grant store and /v1/ admin API (grants branch)",
    "egressd_agent_requests_total": "agent credentials (agents branch)",
}
# Labels Prometheus adds to every target (kubernetes_sd relabeling) or uses itself.
TARGET_LABELS = {"namespace", "pod", "instance", "job", "le", "container", "service"}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "and", "or", "unless", "offset", "topk", "max", "min",
                "avg", "count", "histogram_quantile", "without", "on", "ignoring", "bool", "label_values"}


def load_yaml_docs(path):
    import yaml  # python3-yaml, installed by scripts/deps.sh
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def exported(admin_port):
    """{family: {label: {values}}} from a live /metrics (histograms also
    under their _bucket/_sum/_count names)."""
    text = scrape(admin_port)
    fams = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            name, kind = m.groups()
            fams.setdefault(name, {})
            if kind == "histogram":
                for suf in ("_bucket", "_sum", "_count"):
                    fams.setdefault(name + suf, {})
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
        if not m or line.startswith("#"):
            continue
        labels = fams.setdefault(m.group(1), {})
        for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
            labels.setdefault(k, set()).add(v)
    return fams


def metric_names(expr):
    return set(re.findall(r"\begressd_[a-z0-9_]+\b", expr))


def selectors(expr):
    """(metric, [(label, op, value)]) for every metric{...} selector."""
    out = []
    for name, body in re.findall(r"\b(egressd_[a-z0-9_]+)\{([^}]*)\}", expr):
        out.append((name, re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)"', body)))
    return out


def grouping_labels(expr):
    labels = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {x.strip() for x in group.split(",") if x.strip()}
    return labels


class K8sFleet(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = []
        for f in sorted(K8S.glob("*.yaml")):
            if f.name != "kustomization.yaml":
                cls.docs += load_yaml_docs(f)
        cls.kust = load_yaml_docs(K8S / "kustomization.yaml")[0]
        with open(K8S / "grafana-dashboard.json") as f:
            cls.dashboard = json.load(f)
        # A live egressd: the source of truth for what /metrics exports. One
        # denied request and one allowed rule fill the sparse families.
        # With state redis:// (a redis-server of the test's own) so that the
        # egressd_state_* series are real too.
        cls.dns = cls.own(DnsServer())
        admin = free_port()
        from test_fleet_redis import REDIS, RedisServer
        if not REDIS:
            raise unittest.SkipTest("redis-server is not installed (scripts/deps.sh)")
        cls.redis = RedisServer().start()
        cls.addClassCleanup(cls.redis.close)
        e = Egressd(base_config("allow a.test\n", extra=f"admin 127.0.0.1:{admin}\n"
                                f"state redis://127.0.0.1:{cls.redis.port}"), dns=cls.dns)
        e.start()
        try:
            wait_listening(admin)
            proxy_get(e.port, "http://denied.test/x")
            cls.metrics = exported(admin)
        finally:
            e.stop()
            e.cleanup()

    def kind(self, k):
        return [d for d in self.docs if d["kind"] == k]

    def deployment(self):
        (d,) = self.kind("Deployment")
        return d

    # ------------------------------------------------------------ objects

    def test_pdb_selects_the_deployment_and_keeps_one(self):
        (pdb,) = self.kind("PodDisruptionBudget")
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        dep = self.deployment()
        self.assertEqual(pdb["metadata"]["namespace"], dep["metadata"]["namespace"])
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], dep["spec"]["selector"]["matchLabels"])
        self.assertGreaterEqual(pdb["spec"]["minAvailable"], 1)

    def test_topology_spread_across_nodes(self):
        dep = self.deployment()
        tsc = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
        by_key = {c["topologyKey"]: c for c in tsc}
        node = by_key["kubernetes.io/hostname"]
        self.assertEqual(node["maxSkew"], 1)
        self.assertEqual(node["whenUnsatisfiable"], "DoNotSchedule")
        self.assertEqual(node["labelSelector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"])
        self.assertIn("topology.kubernetes.io/zone", by_key)

    def test_hpa_on_cpu_owns_the_replica_count(self):
        (hpa,) = self.kind("HorizontalPodAutoscaler")
        dep = self.deployment()
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        ref = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((ref["kind"], ref["name"]), ("Deployment", dep["metadata"]["name"]))
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
        self.assertGreater(hpa["spec"]["maxReplicas"], hpa["spec"]["minReplicas"])
        (m,) = hpa["spec"]["metrics"]
        self.assertEqual((m["type"], m["resource"]["name"]), ("Resource", "cpu"))
        self.assertNotIn("replicas", dep["spec"], "a fixed replica count fights the HPA on every apply")
        # The HPA scales on CPU utilization, which needs a CPU request.
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        self.assertIn("cpu", c["resources"]["requests"])

    def test_configmap_admin_allow_reload_and_state_note(self):
        (cm,) = [d for d in self.kind("ConfigMap") if "egressd.conf" in d.get("data", {})]
        conf = cm["data"]["egressd.conf"]
        self.assertRegex(conf, r"(?m)^admin 0\.0\.0\.0:9090 allow=\S+$")
        self.assertRegex(conf, r"(?m)^reload auto$")
        self.assertRegex(conf, r"(?m)^\s*# state redis://\S+")
        self.assertIn("per replica", conf)

    def test_kustomization_lists_every_object(self):
        self.assertEqual(sorted(self.kust["resources"]),
                         sorted(f.name for f in K8S.glob("*.yaml") if f.name != "kustomization.yaml"))
        (gen,) = self.kust["configMapGenerator"]
        self.assertEqual(gen["files"], ["grafana-dashboard.json"])
        self.assertEqual(gen["options"]["labels"], {"grafana_dashboard": "1"})

    def test_kubectl_kustomize_renders(self):
        kubectl = shutil.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl is not installed (Debian: kubernetes-client)")
        p = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        import yaml
        objs = [d for d in yaml.safe_load_all(p.stdout) if d]
        kinds = sorted(d["kind"] for d in objs)
        for k in ("Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler", "PrometheusRule", "Service"):
            self.assertIn(k, kinds)
        dash = next(d for d in objs if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"] == "egressd-grafana-dashboard")
        self.assertEqual(dash["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(json.loads(dash["data"]["grafana-dashboard.json"]), self.dashboard)
        self.assertTrue(all(d["metadata"].get("namespace") in ("egress", "agents", None) for d in objs))

    # ------------------------------------------------------------ PromQL

    def rule_exprs(self):
        (pr,) = self.kind("PrometheusRule")
        return {r["alert"]: r["expr"] for g in pr["spec"]["groups"] for r in g["rules"]}

    def dashboard_exprs(self):
        out = []
        for p in self.dashboard["panels"]:
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
        for v in self.dashboard["templating"]["list"]:
            if isinstance(v.get("query"), dict):
                out.append((v["name"], v["query"]["query"]))
        return out

    def check_expr(self, where, expr):
        names = metric_names(expr)
        self.assertTrue(names, f"{where}: no egressd metric in {expr!r}")
        known_labels = set(TARGET_LABELS)
        for n in names:
            if n in EXPECTED_ELSEWHERE:
                continue
            self.assertIn(n, self.metrics, f"{where}: {n} is not exported by egressd ({expr!r})")
            known_labels |= set(self.metrics[n])
        expected = names & set(EXPECTED_ELSEWHERE)
        for name, matchers in selectors(expr):
            for label, op, value in matchers:
                if name in EXPECTED_ELSEWHERE or label in TARGET_LABELS:
                    continue
                self.assertIn(label, self.metrics[name], f"{where}: {name} has no label {label!r}")
                if op == "=" and "$" not in value:
                    self.assertIn(value, self.metrics[name][label],
                                  f"{where}: {name}{{{label}}} never takes the value {value!r}")
        if not expected:
            for label in grouping_labels(expr):
                self.assertIn(label, known_labels, f"{where}: grouping by {label!r}, which no series has")

    def test_alerts_cover_the_fleet_risks(self):
        rules = self.rule_exprs()
        joined = "\n".join(rules.values())
        self.assertIn('egressd_requests_total{decision="deny"}', joined)
        self.assertIn("egressd_anomaly_alerts_total", joined)
        self.assertRegex(joined, r"egressd_state_up\s*==\s*0")
        self.assertIn('egressd_config_reloads_total{result="error"}', joined)
        for alert, expr in rules.items():
            self.check_expr(f"alert {alert}", expr)

    def test_dashboard_queries_name_exported_metrics(self):
        exprs = self.dashboard_exprs()
        self.assertGreaterEqual(len(exprs), 10)
        for where, expr in exprs:
            self.check_expr(f"panel {where!r}", expr)
        ids = [p["id"] for p in self.dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        used = set().union(*(metric_names(e) for _, e in exprs))
        # Every family egressd exports is on the dashboard somewhere.
        base = {n for n in self.metrics if not re.search(r"_(bucket|sum|count)$", n)}
        for n in base:
            self.assertTrue(any(u == n or u.startswith(n + "_") for u in used), f"{n} is on no panel")

    def test_checker_catches_a_wrong_name(self):
        with self.assertRaises(AssertionError):
            self.check_expr("probe", "rate(egressd_request_total[5m])")
        with self.assertRaises(AssertionError):
            self.check_expr("probe", 'rate(egressd_requests_total{decison="deny"}[5m])')
        with self.assertRaises(AssertionError):
            self.check_expr("probe", 'rate(egressd_config_reloads_total{result="failed"}[5m])')


if __name__ == "__main__":
    main()
