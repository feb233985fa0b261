"""Helpers for the integration tests of limits, metrics and anomalies: the
admin endpoint, a Prometheus text-format parser, access-log selections.
Clients (from a chosen loopback source address too) live in harness.py.
"""

import contextlib
import json
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEFAULT_TIMEOUT, BufferedSocket, read_response, wait_until  # noqa: E402


def retry_after_ok(r):
    """Retry-After is a whole number of seconds (RFC 9110 delay-seconds)."""
    v = r.header("Retry-After")
    return v is not None and re.fullmatch(r"[0-9]+", v.strip()) is not None


# --------------------------------------------------------------------------
# Admin endpoint


def admin_get(port, path, method="GET", timeout=DEFAULT_TIMEOUT):
    """GET path from the admin endpoint directly (no proxy); returns Response."""
    with contextlib.closing(socket.create_connection(("127.0.0.1", port), timeout=timeout)) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                  .encode())
        r = read_response(BufferedSocket(s), method)
    if r is None:
        raise AssertionError(f"admin endpoint closed without answering {path}")
    return r


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?[0-9]+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(v):
    out, i = [], 0
    while i < len(v):
        c = v[i]
        if c == "\\" and i + 1 < len(v):
            n = v[i + 1]
            if n not in ("n", "\\", '"'):
                raise AssertionError(f"/metrics: invalid escape \\{n} in label value {v!r}")
            out.append({"n": "\n", "\\": "\\", '"': '"'}[n])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _value(text):
    if text in ("+Inf", "Inf"):
        return float("inf")
    if text == "-Inf":
        return float("-inf")
    if text == "NaN":
        return float("nan")
    return float(text)


class Metrics:
    """A parsed /metrics page (Prometheus text format 0.0.4).

    samples: list of (name, {label: value}, float)
    types:   {family: type} from # TYPE lines
    A line that is neither a comment, blank, nor a well-formed sample fails.
    """

    def __init__(self, text):
        self.text = text
        self.samples = []
        self.types = {}
        self.helps = {}
        for line in text.split("\n"):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3].strip() if len(parts) > 3 else ""
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            m = _SAMPLE.match(line)
            if not m:
                raise AssertionError(f"/metrics: malformed sample line {line!r}")
            name, _, lab, val = m.group(1), m.group(2), m.group(3), m.group(4)
            labels = {}
            if lab:
                pos = 0
                while pos < len(lab):
                    lm = _LABEL.match(lab, pos)
                    if not lm:
                        raise AssertionError(f"/metrics: malformed labels in {line!r}")
                    if lm.group(1) in labels:
                        raise AssertionError(f"/metrics: duplicate label in {line!r}")
                    labels[lm.group(1)] = _unescape(lm.group(2))
                    pos = lm.end()
            try:
                v = _value(val)
            except ValueError:
                raise AssertionError(f"/metrics: bad value in {line!r}")
            self.samples.append((name, labels, v))

    def find(self, name, **labels):
        """Samples of `name` whose labels include `labels`."""
        return [(lb, v) for n, lb, v in self.samples
                if n == name and all(lb.get(k) == str(x) for k, x in labels.items())]

    def get(self, name, **labels):
        """The value of the one sample with exactly these labels (le excluded
        from the comparison only if not given); 0 if the series is absent."""
        hits = [v for n, lb, v in self.samples if n == name and lb == {k: str(x) for k, x in labels.items()}]
        if len(hits) > 1:
            raise AssertionError(f"/metrics: {name}{labels} appears {len(hits)} times")
        return hits[0] if hits else 0.0

    def has(self, name, **labels):
        return any(n == name and lb == {k: str(x) for k, x in labels.items()}
                   for n, lb, _ in self.samples)

    def total(self, name, **labels):
        return sum(v for _, v in self.find(name, **labels))

    def label_values(self):
        """Every label value on the page."""
        return {v for _, lb, _ in self.samples for v in lb.values()}

    def families(self):
        return {n for n, _, _ in self.samples}


def scrape(admin_port):
    r = admin_get(admin_port, "/metrics")
    if r.status != 200:
        raise AssertionError(f"/metrics answered {r.status}")
    return Metrics(r.body.decode("utf-8"))


def wait_metrics(admin_port, pred, timeout=10.0, what="metrics condition"):
    """Scrape until pred(Metrics) is true; return that Metrics."""
    last = [None]

    def probe():
        m = scrape(admin_port)
        last[0] = m
        return m if pred(m) else None
    try:
        return wait_until(probe, timeout, 0.05, what)
    except AssertionError as e:
        raise AssertionError(f"{e}; last scrape:\n{last[0].text if last[0] else ''}") from None


def alert_lines(egressd):
    """The anomaly-alert lines of the access log."""
    return [x for x in egressd.read_log() if "alert" in x]


def request_lines(egressd):
    return [x for x in egressd.read_log() if "alert" not in x]


def admin_alerts(admin_port):
    r = admin_get(admin_port, "/alerts")
    if r.status != 200:
        raise AssertionError(f"/alerts answered {r.status}")
    data = json.loads(r.body)
    if not isinstance(data, list):
        raise AssertionError(f"/alerts is not a JSON array: {r.body[:200]!r}")
    return data
