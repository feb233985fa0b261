#!/usr/bin/env python3
"""Soak: egressd under SOAK_SECONDS (default 600) of mixed traffic at a bounded
rate, its RSS and fd count sampled every SOAK_SAMPLE (30) s, asserted flat.

Traffic, all on loopback against the test harness's own servers
(tests/integration/harness.py: DnsServer, HttpOrigin, TcpSink):
  http     plain HTTP through the proxy: keep-alive runs of 5 GETs of 0-16 KiB,
           one Connection: close GET, one denied request (403); ~60 req/s
  tunnel   CONNECT to an echo server, 16 KiB echoed, closed; ~10/s
  scrape   GET /metrics on the admin endpoint; 2/s
  reload   the config rewritten (a rule added/removed) and SIGHUP; every 10 s,
           each checked in egressd_config_reloads_total{result="ok"}

Sampling: at each sample point the load threads pause between operations,
so the fd count is the idle one (listeners, log, resolver, pooled upstream
connections), not whatever is in flight. Flat means, for the last sample
against the reference (the sample at 120 s, or a third of a shorter run):
  RSS  last <= reference * (1 + SOAK_RSS_PCT/100) + 1 MiB   (default 10 %)
  fds  last <= reference + SOAK_FD_SLACK                    (default 4)
and no operation failed. Exit status 0 if so, 1 otherwise.

  bench/soak.py [--egressd build/egressd]      # or make soak
  SOAK_SECONDS=60 bench/soak.py                # a short one
"""

import argparse
import contextlib
import faulthandler
import os
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from harness import (BufferedSocket, DnsServer, Egressd, HttpOrigin, TcpSink,  # noqa: E402
                     base_config, connect_via, echo_roundtrip, free_port, gen_bytes,
                     read_response, request_bytes)
from limits_util import scrape  # noqa: E402

faulthandler.cancel_dump_traceback_later()  # the harness's 240 s test watchdog


def env_num(name, default):
    v = os.environ.get(name)
    return type(default)(v) if v else default


class Pacer:
    """At most `rate` operations a second for one thread (sleeps the rest)."""

    def __init__(self, rate):
        self.interval = 1.0 / rate
        self.next = time.monotonic()

    def wait(self):
        self.next += self.interval
        d = self.next - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            self.next = time.monotonic()  # behind: do not burst to catch up


class Soak:
    """Owns the servers, egressd and the load threads; the main thread samples."""

    def __init__(self, args):
        self.args = args
        self.stop = threading.Event()
        self.pause = False  # under lock: the load threads wait while set
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.busy = 0
        self.counts = {}
        self.errors = []
        self.generation = 0

    # ---- setup

    def rules(self, gen):
        extra = f"allow reload-{gen}.test ports={self.origin.port}\n" if gen % 2 else ""
        return (f"allow allowed.test ports={self.origin.port},{self.echo.port}\n"
                f"deny evil.test\n{extra}admin 127.0.0.1:{self.admin_port}\n")

    def start(self):
        self.dns = DnsServer()
        for name in ("allowed.test", "evil.test"):
            self.dns.add(name, a=["127.0.0.1"], ttl=5)
        self.origin = HttpOrigin()
        self.echo = TcpSink("echo")
        self.admin_port = free_port()
        if self.args.egressd:
            os.environ["EGRESSD_BIN"] = os.path.abspath(self.args.egressd)  # egressd runs in its temp dir
        self.e = Egressd(base_config(self.rules(0)), dns=self.dns)
        self.e.start()
        self.pid = self.e.proc.pid

    def close(self):
        rc = self.e.stop(timeout=30)
        for s in (self.echo, self.origin, self.dns):
            s.close()
        self.e.cleanup()
        return rc

    # ---- load threads

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def fail(self, what, e):
        with self.lock:
            self.errors.append(f"{time.strftime('%H:%M:%S')} {what}: {e!r}")
        self.count(what + "_error")

    def loop(self, what, rate, op):
        pacer = Pacer(rate)
        rnd = random.Random(what)
        while not self.stop.is_set():
            with self.lock:  # not while a sample is being taken
                while self.pause and not self.stop.is_set():
                    self.idle.wait(0.1)
                self.busy += 1
            try:
                op(rnd)
                self.count(what)
            except Exception as e:  # noqa: BLE001: counted, reported at the end
                self.fail(what, e)
            finally:
                with self.lock:
                    self.busy -= 1
                    self.idle.notify_all()
            pacer.wait()

    def http_op(self, rnd):
        """5 keep-alive GETs, one Connection: close GET, one denied."""
        host = f"allowed.test:{self.origin.port}"
        with contextlib.closing(socket.create_connection(self.e.address, timeout=15)) as s:
            bs = BufferedSocket(s)
            for i in range(5):
                n = rnd.choice((0, 100, 4096, 16384))
                close = i == 4
                s.sendall(request_bytes("GET", f"http://{host}/bytes?n={n}", host, close=close))
                r = read_response(bs, "GET")
                if r is None or r.status != 200 or r.body != gen_bytes(n):
                    raise AssertionError(f"keep-alive GET {i}: {r!r}")
        for target, want in ((f"http://{host}/echo/soak", 200),
                             (f"http://evil.test:{self.origin.port}/x", 403)):
            with contextlib.closing(socket.create_connection(self.e.address, timeout=15)) as s:
                u = target.split("/")[2]
                s.sendall(request_bytes("GET", target, u))
                r = read_response(BufferedSocket(s), "GET")
                if r is None or r.status != want:
                    raise AssertionError(f"GET {target}: want {want}, got {r!r}")
        self.count("requests", 7)

    def tunnel_op(self, rnd):
        r, s, bs = connect_via(self.e.port, f"allowed.test:{self.echo.port}")
        with contextlib.closing(s):
            if r is None or r.status != 200:
                raise AssertionError(f"CONNECT: {r!r}")
            payload = rnd.randbytes(16384)
            if echo_roundtrip(s, bs, payload) != payload:
                raise AssertionError("tunnel: echo differs")

    def scrape_op(self, rnd):
        m = scrape(self.admin_port)
        if not m.samples:
            raise AssertionError("/metrics: empty")

    def reload_op(self, rnd):
        before = scrape(self.admin_port).get("egressd_config_reloads_total", result="ok")
        self.generation += 1
        with open(self.e.conf_path, "w") as f:
            f.write(self.e.fill(base_config(self.rules(self.generation)), self.dns.address))
        self.e.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while scrape(self.admin_port).get("egressd_config_reloads_total", result="ok") <= before:
            if time.monotonic() > deadline:
                raise AssertionError(f"reload {self.generation} not counted within 10 s")
            time.sleep(0.05)

    # ---- sampling

    def sample(self):
        """RSS (KiB) and open fds of egressd with the load paused."""
        with self.lock:
            self.pause = True
            self.idle.wait_for(lambda: self.busy == 0, timeout=30)
        try:
            time.sleep(0.3)  # egressd closes its side of what the clients closed
            with open(f"/proc/{self.pid}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
            return rss, fds
        finally:
            with self.lock:
                self.pause = False
                self.idle.notify_all()

    def run(self):
        seconds = self.args.seconds
        every = min(self.args.sample, seconds / 4)  # at least 4 samples
        ref_at = min(120, seconds / 3)
        threads = [threading.Thread(target=self.loop, args=a, daemon=True) for a in (
            ("http", 4.0, self.http_op), ("http", 4.0, self.http_op),
            ("tunnel", 10.0, self.tunnel_op), ("scrape", 2.0, self.scrape_op),
            ("reload", 0.1, self.reload_op))]
        t0 = time.monotonic()
        samples = [(0.0,) + self.sample()]
        print(f"soak: {seconds:.0f} s, egressd pid {self.pid} ({os.environ.get('EGRESSD_BIN')}), "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'t (s)':>6} {'RSS (KiB)':>10} {'fds':>5} {'requests':>9} {'tunnels':>8} "
              f"{'scrapes':>8} {'reloads':>8} {'errors':>7}")
        self.report(samples[-1])
        for t in threads:
            t.start()
        next_at = every
        while True:
            now = time.monotonic() - t0
            if now >= seconds:
                break
            if not self.e.running():
                self.errors.append(f"egressd exited with {self.e.proc.returncode}")
                break
            wake = min(next_at, seconds)
            time.sleep(max(0.0, min(1.0, wake - now)))
            now = time.monotonic() - t0
            if now >= next_at:
                samples.append((now,) + self.sample())
                self.report(samples[-1])
                next_at += every
        self.stop.set()
        for t in threads:
            t.join(30)
        if self.e.running():
            samples.append((time.monotonic() - t0,) + self.sample())
            self.report(samples[-1])
        return self.verdict(samples, ref_at)

    def report(self, s):
        with self.lock:
            c = dict(self.counts)
            errs = len(self.errors)
        print(f"{s[0]:6.0f} {s[1]:10d} {s[2]:5d} {c.get('requests', 0):9d} {c.get('tunnel', 0):8d} "
              f"{c.get('scrape', 0):8d} {c.get('reload', 0):8d} {errs:7d}", flush=True)

    def verdict(self, samples, ref_at):
        ok = True
        ref = next((s for s in samples if s[0] >= ref_at), samples[-1])
        last = samples[-1]
        rss_limit = ref[1] * (1 + self.args.rss_pct / 100) + 1024
        fd_limit = ref[2] + self.args.fd_slack
        print(f"reference at {ref[0]:.0f} s: RSS {ref[1]} KiB, {ref[2]} fds; "
              f"last at {last[0]:.0f} s: RSS {last[1]} KiB ({(last[1] - ref[1]) / ref[1] * 100:+.1f} %), "
              f"{last[2]} fds ({last[2] - ref[2]:+d})")
        if last[1] > rss_limit:
            print(f"FAIL: RSS grew past {rss_limit:.0f} KiB (+{self.args.rss_pct} % + 1 MiB)")
            ok = False
        if last[2] > fd_limit:
            print(f"FAIL: fds grew past {fd_limit} (+{self.args.fd_slack})")
            ok = False
        if self.errors:
            print(f"FAIL: {len(self.errors)} operations failed; first ones:")
            for e in self.errors[:10]:
                print("  " + e)
            ok = False
        if self.generation and not self.counts.get("reload"):
            print("FAIL: no reload succeeded")
            ok = False
        print("soak: " + ("flat, no errors" if ok else "FAILED"))
        return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--egressd", default=os.environ.get("EGRESSD_BIN") or str(ROOT / "build" / "egressd"))
    ap.add_argument("--seconds", type=float, default=env_num("SOAK_SECONDS", 600.0))
    ap.add_argument("--sample", type=float, default=env_num("SOAK_SAMPLE", 30.0))
    ap.add_argument("--rss-pct", type=float, default=env_num("SOAK_RSS_PCT", 10.0))
    ap.add_argument("--fd-slack", type=int, default=env_num("SOAK_FD_SLACK", 4))
    args = ap.parse_args()
    soak = Soak(args)
    soak.start()
    ok = False
    try:
        ok = soak.run()
    finally:
        rc = soak.close()
        if rc != 0:
            print(f"FAIL: egressd exited with {rc}")
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
