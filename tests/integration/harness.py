"""Integration-test harness for egressd: the real binary, real clients, and
servers of the test's own on loopback (127.0.0.0/8 only, nothing else is ever
contacted).

Pieces:
  free_port()            a TCP port that is free right now on 127.0.0.1
  Egressd                writes a config into a temp dir, starts the binary,
                         waits for its listener, stops it with SIGTERM (exit 0),
                         reads the JSON access log
  base_config()          the config lines every test needs (listen, resolver,
                         hosts off, access_log, allow_net 127.0.0.0/8, ...)
  DnsServer              UDP+TCP DNS server answering per name (A/AAAA+TTL,
                         NXDOMAIN, SERVFAIL, silent) and recording every query
  HttpOrigin             threaded HTTP/1.1 origin (plain or TLS) recording every
                         request and every byte it receives
  TcpSink                raw TCP server: sink (never answers), echo, or hash
                         (answers sha256 of everything received after EOF)
  make_cert()            self-signed EC cert for *.allowed.test etc. (openssl)
  raw HTTP helpers       send bytes to the proxy, parse the response, CONNECT,
                         ClientHello bytes, TLS over an existing socket
  curl()                 runs curl with a clean environment

Every wait is a poll bounded in time; every socket has a timeout.
"""

import calendar
import contextlib
import ctypes
import faulthandler
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = Path(os.environ.get("EGRESSD_SOURCE") or HERE.parents[1])

# Set (to "address" or "thread") when EGRESSD_BIN is a sanitizer build (make
# test-sanitize): everything runs several times slower, and a sanitizer report
# in egressd's stderr fails the test (Egressd.check_sanitizer).
SANITIZER = os.environ.get("EGRESSD_SANITIZE", "").strip()
if SANITIZER.upper() in ("", "OFF", "0", "FALSE", "NO"):
    SANITIZER = ""
SLOW = 3 if SANITIZER else 1

# A hung test must not hang ctest: dump every thread's stack and exit.
faulthandler.dump_traceback_later(240 * SLOW, exit=True)

# What ASan, LSan, UBSan and TSan print when they find something. UBSan's
# "FILE:LINE:COL: runtime error: ..." is only looked for in a sanitizer build.
_SANITIZER_REPORT = re.compile(
    r"^==\d+==ERROR: (?:Address|Leak)Sanitizer|^WARNING: ThreadSanitizer|"
    r"^SUMMARY: (?:Address|Leak|UndefinedBehavior|Thread)Sanitizer", re.M)
_UBSAN_REPORT = re.compile(r"^\S+:\d+:\d+: runtime error: ", re.M)


def assert_no_sanitizer_report(completed):
    """For a subprocess.run() of egressd with capture_output: raise if its
    stderr holds a sanitizer report; returns `completed`."""
    err = completed.stderr
    report = sanitizer_report(err.decode("utf-8", "replace") if isinstance(err, bytes) else err or "")
    if report is not None:
        raise AssertionError(f"{completed.args} printed a sanitizer report "
                             f"(exit status {completed.returncode}):\n{report}")
    return completed


def sanitizer_report(text):
    """The first sanitizer report in `text` (egressd's stderr) with what
    follows it, or None."""
    m = _SANITIZER_REPORT.search(text)
    if SANITIZER:
        u = _UBSAN_REPORT.search(text)
        if u and (m is None or u.start() < m.start()):
            m = u
    return None if m is None else text[m.start():m.start() + 6000]

DEFAULT_TIMEOUT = 15.0  # seconds for any single socket operation in tests


def egressd_bin():
    b = os.environ.get("EGRESSD_BIN")
    if b:
        return b
    for cand in ("build-it/egressd", "build/egressd"):
        p = SOURCE / cand
        if p.exists():
            return str(p)
    raise unittest.SkipTest("EGRESSD_BIN is not set and no built egressd was found")


def free_port(kind=socket.SOCK_STREAM):
    """A port nothing listens on right now (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A port on 127.0.0.1 where a connect() is refused."""
    return free_port()


def gen_bytes(n, seed=None):
    """Deterministic pseudo-random bytes (the origin's /bytes body)."""
    return random.Random(n if seed is None else seed).randbytes(n)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def clean_env(**extra):
    """The environment without any proxy variables (curl, urllib honour them)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(extra)
    return env


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


try:
    _prctl = ctypes.CDLL(None).prctl  # loaded here: the child must not load libraries
except Exception:  # pragma: no cover
    _prctl = None


def _set_pdeathsig():
    # Runs in the child between fork and exec: die with the test process
    # (ctest kills python on timeout; an orphaned egressd must not keep its
    # ports). Only a pre-resolved C call, nothing that could take a lock.
    if _prctl is not None:
        _prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def port_listening(port):
    """True if a TCP socket on this port is in LISTEN state (/proc/net/tcp*).
    Used instead of a probing connect(), which egressd would see as a client."""
    found_table = False
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            f = line.split()
            if len(f) > 3 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    if not found_table:  # no procfs: fall back to a probe
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False
    return False


# --------------------------------------------------------------------------
# egressd process


def base_config(rules="", *, allow_net="127.0.0.0/8", timeouts=None, limits=None,
                tls_ports=None, hosts="off", extra=""):
    """The config lines every test needs, plus `rules` (text, one per line).
    Placeholders filled in by Egressd: {listen} {port} {resolver} {access_log} {dir}."""
    t = {"drain": "5s"}
    t.update(timeouts or {})
    lines = [
        "# written by tests/integration/harness.py",
        "listen {listen}",
        "resolver {resolver}",
        f"hosts {hosts}",
        "access_log {access_log}",
        "threads 2",
        "timeout " + " ".join(f"{k}={v}" for k, v in t.items()),
    ]
    if allow_net:
        lines.append(f"allow_net {allow_net}")
    if limits:
        lines.append("limit " + " ".join(f"{k}={v}" for k, v in limits.items()))
    if tls_ports:
        lines.append("tls_ports " + ",".join(str(p) for p in tls_ports))
    if extra:
        lines.append(extra.strip("\n"))
    if rules:
        lines.append(rules.strip("\n"))
    return "\n".join(lines) + "\n"


class Egressd:
    """One egressd process with its own temp dir, config, logs and port."""

    def __init__(self, conf, *, dns=None, resolver=None, files=None, port=None):
        self.dir = tempfile.mkdtemp(prefix="egressd-it-")
        self.port = port or free_port()
        self.access_log = os.path.join(self.dir, "access.log")
        if resolver is None:
            resolver = dns.address if dns is not None else f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
        for name, text in (files or {}).items():
            p = os.path.join(self.dir, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(self.fill(text, resolver))
        self.conf_path = os.path.join(self.dir, "egressd.conf")
        self.conf_text = self.fill(conf, resolver)
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text)
        self.stdout_path = os.path.join(self.dir, "stdout.txt")
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        self.proc = None

    def fill(self, text, resolver):
        # str.replace, not format(): configs may contain braces (regexes).
        for k, v in (("{listen}", f"127.0.0.1:{self.port}"), ("{port}", str(self.port)),
                     ("{resolver}", resolver), ("{access_log}", self.access_log),
                     ("{dir}", self.dir)):
            text = text.replace(k, v)
        return text

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait=True, args=None):
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [egressd_bin(), "-c", self.conf_path] + list(args or []),
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
            cwd=self.dir, preexec_fn=_set_pdeathsig, env=clean_env())
        _live_procs.add(self.proc)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    f"egressd exited with {rc} during start-up\nconfig:\n{self.conf_text}\n"
                    f"stderr:\n{self.stderr()}\nstdout:\n{self.stdout()}")
            if port_listening(self.port):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"egressd did not listen on {self.port} within {timeout}s\n"
                                     f"stderr:\n{self.stderr()}")
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10.0, expect=0, sig=signal.SIGTERM):
        """SIGTERM, then require exit status `expect` within `timeout` s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"egressd did not exit within {timeout}s of {sig.name}\n"
                                 f"stderr:\n{self.stderr()[-4000:]}")
        finally:
            _live_procs.discard(self.proc)
            for f in (self._out, self._err):
                f.close()
        self.check_sanitizer()
        if expect is not None and rc != expect:
            raise AssertionError(f"egressd exited with {rc}, expected {expect}\n"
                                 f"stderr:\n{self.stderr()[-4000:]}")
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        _live_procs.discard(self.proc)
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f is not None and not f.closed:
                f.close()

    def check_sanitizer(self):
        """Fail if egressd's stderr holds a sanitizer report (ASan, LSan, UBSan,
        TSan): run at every stop and cleanup, so a report fails the test even
        when the test expected egressd to die or never stops it itself."""
        if self.proc is None or getattr(self, "_sanitizer_checked", False):
            return
        report = sanitizer_report(self.stderr())
        if report is not None:
            self._sanitizer_checked = True  # reported once, not again at cleanup
            raise AssertionError(f"egressd ({self.conf_path}) printed a sanitizer report "
                                 f"(exit status {self.proc.returncode}):\n{report}")

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def cleanup(self):
        self.kill()
        try:
            self.check_sanitizer()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- access log

    def read_log(self):
        """Every complete JSON line of the access log, parsed (a line that is
        not valid JSON fails the test: the log is one object per line)."""
        try:
            with open(self.access_log, "rb") as f:
                data = f.read().decode("utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in data.split("\n")[:-1]:  # the last piece is "" or an incomplete line
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise AssertionError(f"access log line is not JSON: {line!r}: {e}")
            if not isinstance(obj, dict):
                raise AssertionError(f"access log line is not a JSON object: {line!r}")
            out.append(obj)
        return out

    def wait_log_lines(self, n, timeout=10.0):
        """Wait until the access log has at least n lines; return them all."""
        wait_until(lambda: len(self.read_log()) >= n, timeout,
                   what=f"{n} access-log lines (have {len(self.read_log())})")
        return self.read_log()

    def wait_log(self, pred, timeout=10.0, what="access-log line"):
        """Wait for the first access-log line satisfying pred(entry); return it."""
        found = []

        def probe():
            for e in self.read_log():
                if pred(e):
                    found.append(e)
                    return True
            return False
        try:
            wait_until(probe, timeout, what=what)
        except AssertionError:
            raise AssertionError(f"no {what} within {timeout}s; log:\n" +
                                 "\n".join(json.dumps(e) for e in self.read_log()[-20:]))
        return found[0]

    def log_for_client(self, sock_or_port, timeout=10.0, kind=None):
        """The access-log line of the client connection `sock` (by its port).
        A port is reused by later connections: when connect_from or
        connect_proxy opened this one, lines written before it are skipped."""
        port = sock_or_port if isinstance(sock_or_port, int) else sock_or_port.getsockname()[1]
        suffix = f":{port}"
        since = _connected_at.get(port)

        def mine(e):
            if not str(e.get("client", "")).endswith(suffix) or (kind is not None and e.get("kind") != kind):
                return False
            return since is None or log_time(e) >= since - 0.0015  # ts is cut to the millisecond
        return self.wait_log(mine, timeout, what=f"access-log line for client port {port}")


# When each client connection opened by this harness was made, by its local
# port: log_for_client must not take an earlier connection's line.
_connected_at = {}


def _note_connected(s):
    _connected_at[s.getsockname()[1]] = time.time()
    return s


def log_time(e):
    """An access-log line's ts as seconds since the epoch."""
    return calendar.timegm(time.strptime(e["ts"][:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + e["ts"][19:-1])


_live_procs = set()


def _kill_leftovers():
    for p in list(_live_procs):
        with contextlib.suppress(Exception):
            p.kill()
            p.wait(5)


import atexit  # noqa: E402
atexit.register(_kill_leftovers)


# --------------------------------------------------------------------------
# DNS server


QTYPES = {1: "A", 28: "AAAA", 5: "CNAME", 15: "MX", 16: "TXT", 33: "SRV", 65: "HTTPS", 255: "ANY"}


class DnsServer:
    """A DNS server on 127.0.0.1:PORT (UDP and TCP) answering from a table.

    add(name, a=[...], aaaa=[...], ttl=N)  answers A/AAAA (the other type: NODATA)
    nxdomain(name) / servfail(name) / silent(name)
    Unknown names get NXDOMAIN. Names are case-insensitive, one trailing dot
    ignored. Every query is recorded as (name-lower-case, type, transport).
    """

    def __init__(self, addr="127.0.0.1", port=0):
        """port=0: a free port (the same number for UDP and TCP) on addr."""
        self.lock = threading.Lock()
        self.zone = {}
        self.queries = []
        self.closed = False
        for _ in range(50 if port == 0 else 1):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((addr, port))
            bound = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((addr, bound))
            except OSError:
                udp.close()
                tcp.close()
                if port:
                    raise
                continue
            break
        else:
            raise RuntimeError("no port free for UDP and TCP DNS")
        tcp.listen(16)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        self.udp, self.tcp, self.addr, self.port = udp, tcp, addr, bound
        self.threads = [threading.Thread(target=self._udp_loop, daemon=True),
                        threading.Thread(target=self._tcp_loop, daemon=True)]
        for t in self.threads:
            t.start()

    @property
    def address(self):
        return f"{self.addr}:{self.port}"

    @staticmethod
    def norm(name):
        name = name.lower()
        return name[:-1] if name.endswith(".") else name

    def add(self, name, a=(), aaaa=(), ttl=60):
        with self.lock:
            self.zone[self.norm(name)] = ("records", list(a), list(aaaa), ttl)

    def nxdomain(self, name):
        with self.lock:
            self.zone[self.norm(name)] = ("nxdomain",)

    def servfail(self, name):
        with self.lock:
            self.zone[self.norm(name)] = ("servfail",)

    def silent(self, name):
        with self.lock:
            self.zone[self.norm(name)] = ("silent",)

    def query_log(self):
        with self.lock:
            return list(self.queries)

    def queried(self, name):
        """True if any query for name (or a search-domain extension of it) arrived."""
        n = self.norm(name)
        return any(q == n or q.startswith(n + ".") for q, _, _ in self.query_log())

    def count(self, name, qtype=None):
        n = self.norm(name)
        return sum(1 for q, t, _ in self.query_log() if q == n and (qtype is None or t == qtype))

    def close(self):
        self.closed = True
        for s in (self.udp, self.tcp):
            with contextlib.suppress(OSError):
                s.close()

    def _udp_loop(self):
        while not self.closed:
            try:
                data, peer = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            resp = self._answer(data, "udp")
            if resp is not None:
                with contextlib.suppress(OSError):
                    self.udp.sendto(resp, peer)

    def _tcp_loop(self):
        while not self.closed:
            try:
                c, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(c,), daemon=True).start()

    def _tcp_conn(self, c):
        c.settimeout(30)
        bs = BufferedSocket(c)
        with contextlib.closing(c):
            try:
                while True:
                    hdr = bs.read_exact(2)
                    if hdr is None:
                        return
                    msg = bs.read_exact(struct.unpack("!H", hdr)[0])
                    if msg is None:
                        return
                    resp = self._answer(msg, "tcp")
                    if resp is not None:
                        c.sendall(struct.pack("!H", len(resp)) + resp)
            except OSError:
                return

    def _answer(self, data, transport):
        if len(data) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", data[:6])
        if flags & 0x8000 or qdcount < 1:
            return None
        off, labels = 12, []
        try:
            while True:
                ln = data[off]
                off += 1
                if ln == 0:
                    break
                if ln & 0xC0:
                    return None
                labels.append(data[off:off + ln])
                off += ln
            qtype, _qclass = struct.unpack("!HH", data[off:off + 4])
        except (IndexError, struct.error):
            return None
        off += 4
        question = data[12:off]
        name = b".".join(labels).decode("ascii", "replace").lower()
        with self.lock:
            self.queries.append((name, QTYPES.get(qtype, str(qtype)), transport))
            entry = self.zone.get(name, ("nxdomain",))
        kind = entry[0]
        if kind == "silent":
            return None
        rcode, answers = 0, []
        if kind == "nxdomain":
            rcode = 3
        elif kind == "servfail":
            rcode = 2
        else:
            _, a, aaaa, ttl = entry
            if qtype == 1:
                for ip in a:
                    answers.append(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) +
                                   socket.inet_pton(socket.AF_INET, ip))
            elif qtype == 28:
                for ip in aaaa:
                    answers.append(b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, ttl, 16) +
                                   socket.inet_pton(socket.AF_INET6, ip))
        rflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        return struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0) + question + b"".join(answers)


# --------------------------------------------------------------------------
# Buffered socket reading and HTTP message parsing


class BufferedSocket:
    """Reads from a socket through a buffer; counts bytes through on_bytes."""

    def __init__(self, sock, on_bytes=None):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.on_bytes = on_bytes

    def fill(self, n=1 << 16):
        if self.eof:
            return False
        data = self.sock.recv(n)
        if not data:
            self.eof = True
            return False
        if self.on_bytes:
            self.on_bytes(data)
        self.buf += data
        return True

    def read_until(self, delim, limit=1 << 20):
        """Bytes up to and including delim; None on EOF before any byte;
        raises EOFError on EOF inside, ValueError beyond limit."""
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ValueError("line too long")
            start = max(0, len(self.buf) - len(delim) + 1)
            if not self.fill():
                if not self.buf:
                    return None
                raise EOFError(f"EOF inside a message ({len(self.buf)} bytes buffered)")

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self.fill(max(1 << 16, min(n - len(self.buf), 1 << 20))):
                if not self.buf:
                    return None
                raise EOFError(f"EOF after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, n=1 << 16):
        if not self.buf:
            self.fill(n)
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_to_eof(self, limit=1 << 30):
        while self.fill(1 << 20):
            if len(self.buf) > limit:
                raise ValueError("too much data")
        out = bytes(self.buf)
        self.buf.clear()
        return out


def parse_head(head):
    """head bytes (ending CRLFCRLF) -> (start-line parts, [(name, value)])."""
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name, value.strip(" \t")))
    return start, headers


def hget(headers, name, default=None):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return default


def hall(headers, name):
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


def read_chunked(bs, limit=1 << 30):
    """Decode a chunked body (trailers skipped); raises ValueError on bad framing."""
    body = bytearray()
    while True:
        line = bs.read_until(b"\r\n", 4096)
        if line is None:
            raise EOFError("EOF before chunk size")
        size_txt = line[:-2].split(b";", 1)[0].strip()
        if not size_txt or not re.fullmatch(rb"[0-9a-fA-F]+", size_txt):
            raise ValueError(f"bad chunk size {line!r}")
        size = int(size_txt, 16)
        if size == 0:
            while True:
                t = bs.read_until(b"\r\n", 1 << 16)
                if t is None:
                    raise EOFError("EOF in trailers")
                if t == b"\r\n":
                    return bytes(body)
        data = bs.read_exact(size)
        if data is None:
            raise EOFError("EOF in chunk")
        body += data
        if len(body) > limit:
            raise ValueError("body too large")
        if bs.read_exact(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")


class Response:
    def __init__(self, version, status, phrase, headers, body, head):
        self.version, self.status, self.phrase = version, status, phrase
        self.headers, self.body, self.head = headers, body, head

    def header(self, name, default=None):
        return hget(self.headers, name, default)

    @property
    def reason(self):
        """The X-Egressd-Reason header."""
        return self.header("X-Egressd-Reason")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} reason={self.reason!r} head={self.head[:300]!r} body={self.body[:200]!r}>"


def read_response(bs, method="GET"):
    """Read one HTTP response from a BufferedSocket; None on clean EOF."""
    interim = []
    while True:
        head = bs.read_until(b"\r\n\r\n", 1 << 20)
        if head is None:
            return None
        start, headers = parse_head(head)
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"bad status line {start!r}")
        version, status = parts[0], int(parts[1])
        if 100 <= status < 200 and status != 101:
            interim.append(head)  # 100 Continue etc.: the final response follows
            continue
        break
    phrase = parts[2] if len(parts) > 2 else ""
    te = (hget(headers, "transfer-encoding") or "").lower()
    cl = hget(headers, "content-length")
    if method == "HEAD" or status in (101, 204, 304) or 100 <= status < 200 or \
            (method == "CONNECT" and 200 <= status < 300):
        body = b""
    elif "chunked" in te:
        body = read_chunked(bs)
    elif cl is not None:
        body = bs.read_exact(int(cl)) or b""
    else:
        body = bs.read_to_eof()
    r = Response(version, status, phrase, headers, body, head)
    r.interim = interim
    return r


def connect_proxy(egressd_or_port, timeout=DEFAULT_TIMEOUT):
    port = egressd_or_port if isinstance(egressd_or_port, int) else egressd_or_port.port
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _note_connected(s)


def request_raw(egressd_or_port, data, method="GET", timeout=DEFAULT_TIMEOUT, sock=None):
    """Send raw bytes to the proxy, read one response. Returns (Response, sock, bs)."""
    s = sock or connect_proxy(egressd_or_port, timeout)
    s.sendall(data)
    bs = BufferedSocket(s)
    try:
        r = read_response(bs, method)
    except ConnectionResetError:
        r = None
    return r, s, bs


def http_request(egressd, url, method="GET", headers=(), body=b"", timeout=DEFAULT_TIMEOUT,
                 version="HTTP/1.1", close=True):
    """An absolute-form request through the proxy on a new connection.
    Returns the Response (the connection is closed unless close=False, then
    (Response, sock, bs))."""
    u = urllib.parse.urlsplit(url)
    lines = [f"{method} {url} {version}", f"Host: {u.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    if close and not any(k.lower() == "connection" for k, _ in headers):
        lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    r, s, bs = request_raw(egressd, data, method, timeout)
    if close:
        s.close()
        if r is None:
            raise AssertionError(f"no response to {method} {url}")
        return r
    return r, s, bs


def expect_closed(sock_or_bs, timeout=10.0):
    """Read until the peer closes (EOF or reset) within timeout; returns the
    bytes read meanwhile. Fails if the connection stays open."""
    bs = sock_or_bs if isinstance(sock_or_bs, BufferedSocket) else BufferedSocket(sock_or_bs)
    sock = bs.sock
    old = sock.gettimeout()
    deadline = time.monotonic() + timeout
    got = bytearray(bs.buf)
    bs.buf.clear()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open after {timeout}s (read {bytes(got[:200])!r})")
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return bytes(got)
            if not data:
                return bytes(got)
            got += data
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(old)


def connect_tunnel(egressd, authority, headers=(), timeout=DEFAULT_TIMEOUT, version="HTTP/1.1"):
    """CONNECT through the proxy. Returns (Response, sock, bs); on 200 the
    socket is the tunnel (bs.buf holds any bytes read past the response)."""
    lines = [f"CONNECT {authority} {version}", f"Host: {authority}"]
    lines += [f"{k}: {v}" for k, v in headers]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return request_raw(egressd, data, "CONNECT", timeout)


def assert_denied(test, r, status, reason, name=None):
    """A refusal per SPEC: status, X-Egressd-Reason, a one-line text body."""
    test.assertIsNotNone(r, "no response at all")
    test.assertEqual(r.status, status, repr(r))
    test.assertEqual(r.reason, reason, repr(r))
    text = r.body.decode("utf-8", "replace")
    line = text[:-1] if text.endswith("\n") else text
    line = line[:-1] if line.endswith("\r") else line
    test.assertTrue(line.strip(), f"empty body: {r!r}")
    test.assertNotIn("\n", line, f"body is more than one line: {text!r}")
    if name is not None:
        test.assertIn(name.lower(), line.lower(), f"body does not name {name}: {text!r}")


# --------------------------------------------------------------------------
# Clients with a chosen source address (Linux routes all of 127/8 to lo)


def source_bindable(addr):
    """True if a socket can be bound to addr."""
    try:
        with socket.socket() as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


def connect_from(port, source=None, timeout=DEFAULT_TIMEOUT):
    """A TCP connection to 127.0.0.1:port, bound to `source` (an address in
    127/8) when given."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _note_connected(s)


def request_bytes(method, target, host, headers=(), body=b"", close=True, version="HTTP/1.1"):
    """A request head (+ body). `target` is written as given (origin or absolute form);
    host=None leaves out the Host header."""
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    if (body or method in ("POST", "PUT")) and \
            not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    if close and not any(k.lower() == "connection" for k, _ in headers):
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def request_head(method, url, headers=(), body=b"", close=True, absolute=True):
    """request_bytes for a URL: absolute form (to a proxy) or origin form."""
    u = urllib.parse.urlsplit(url)
    target = url if absolute else (u.path or "/") + (f"?{u.query}" if u.query else "")
    return request_bytes(method, target, u.netloc, headers, body, close)


def exchange(port, data, method="GET", source=None, timeout=DEFAULT_TIMEOUT):
    """Send bytes on a new connection, read one response. Returns Response
    (with .client_port, the connection's local port: Egressd.log_for_client
    finds its access-log line by it) or None when the server closed without one."""
    s = connect_from(port, source, timeout)
    with contextlib.closing(s):
        client_port = s.getsockname()[1]
        s.sendall(data)
        try:
            r = read_response(BufferedSocket(s), method)
        except (ConnectionResetError, EOFError):
            return None
        if r is not None:
            r.client_port = client_port
        return r


def proxy_get(port, url, method="GET", body=b"", headers=(), source=None, timeout=DEFAULT_TIMEOUT):
    """One absolute-form request through an explicit proxy listener on a new
    connection from `source`; the Response, or None if closed without one."""
    return exchange(port, request_head(method, url, headers, body), method, source, timeout)


def connect_via(port, authority, source=None, timeout=DEFAULT_TIMEOUT):
    """CONNECT through an explicit proxy listener from `source`. Returns
    (Response or None, sock, bs); on 200 the socket is the tunnel."""
    s = connect_from(port, source, timeout)
    s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode("latin-1"))
    bs = BufferedSocket(s)
    try:
        r = read_response(bs, "CONNECT")
    except (ConnectionResetError, EOFError):
        r = None
    return r, s, bs


def echo_roundtrip(sock, bs, payload, timeout=10.0):
    """Send payload to an echo server (through a tunnel) and read it back."""
    sock.sendall(payload)
    deadline = time.monotonic() + timeout
    while len(bs.buf) < len(payload):
        if time.monotonic() > deadline:
            raise AssertionError(f"echo: got {len(bs.buf)} of {len(payload)} bytes")
        if not bs.fill():
            break
    got = bytes(bs.buf[:len(payload)])
    del bs.buf[:len(payload)]
    return got


# --------------------------------------------------------------------------
# Origins


def make_cert(directory, names=("allowed.test", "*.allowed.test", "other.test", "tls.test")):
    """Self-signed EC P-256 cert for names; returns (cert_path, key_path)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    san = ",".join(f"DNS:{n}" for n in names) + ",IP:127.0.0.1"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={names[0]}",
         "-addext", f"subjectAltName={san}"],
        check=True, capture_output=True, timeout=30)
    return cert, key


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


class _ServerBase:
    def __init__(self, addr="127.0.0.1"):
        self.lock = threading.Lock()
        self.closed = False
        self.sock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.tcp_connections = 0
        self.bytes_received = 0
        self.conns = []  # every accepted socket, closed in close()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while not self.closed:
            try:
                c, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.tcp_connections += 1
                cid = self.tcp_connections
                self.conns.append(c)
            threading.Thread(target=self._serve_guarded, args=(c, cid), daemon=True).start()

    def _serve_guarded(self, c, cid):
        try:
            self.serve(c, cid)
        except (OSError, EOFError, ValueError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError):
                c.close()

    def _count(self, data):
        with self.lock:
            self.bytes_received += len(data)

    def close(self):
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()

    def snapshot(self):
        with self.lock:
            return (self.tcp_connections, self.bytes_received)


class HttpOrigin(_ServerBase):
    """Threaded HTTP/1.1 origin on 127.0.0.1, or addr (e.g. "::1"); TLS if cert is given.

    Endpoints (by first path segment; /echo/anything works too):
      /echo          JSON: method, target, version, headers, body_len, body_sha256, conn
      /bytes?n=N     N bytes of gen_bytes(N) (&chunked=1 for chunked framing)
      /upload        reads the body; JSON: len, sha256, chunked
      /sse           text/event-stream: an event every 200 ms for ~1.5 s (chunked)
      /ws            Upgrade: websocket -> 101, then echoes raw bytes until EOF
      /delay?ms=N    answers after N ms
      /reset         closes the connection with RST without answering
      /status?code=N answers with that status (204/304 without a body)
      /raw10         HTTP/1.0 response delimited by closing the connection
      /closeafter    answers with Connection: close and closes
      HEAD anything  200 with Content-Length: 1234 and no body
      anything else  200 "ok\n"
    Records every request (dict) in .requests; .bytes_received counts every
    byte read (after TLS decryption), .tcp_connections every accept, and for
    TLS .conns_with_bytes / .snis / .tls_errors.
    """

    def __init__(self, cert=None, key=None, addr="127.0.0.1"):
        self.requests = []
        self.snis = []
        self.tls_errors = []
        self.conns_with_bytes = 0
        self.tls = None
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)

            def on_sni(sslobj, name, _ctx):
                with self.lock:
                    self.snis.append(name)
            ctx.sni_callback = on_sni
            self.tls = ctx
        super().__init__(addr)

    def complete_requests(self):
        with self.lock:
            return [r for r in self.requests if r["complete"]]

    def serve(self, c, cid):
        c.settimeout(60)
        if self.tls:
            first = c.recv(1, socket.MSG_PEEK)
            if not first:
                return
            with self.lock:
                self.conns_with_bytes += 1
            try:
                c = self.tls.wrap_socket(c, server_side=True)
            except (ssl.SSLError, OSError) as e:
                with self.lock:
                    self.tls_errors.append(str(e))
                return
        bs = BufferedSocket(c, self._count)
        index = 0
        while True:
            head = bs.read_until(b"\r\n\r\n", 1 << 20)
            if head is None:
                return
            start, headers = parse_head(head)
            parts = start.split(" ")
            req = {"method": parts[0], "target": parts[1] if len(parts) > 1 else "",
                   "version": parts[2] if len(parts) > 2 else "", "headers": headers,
                   "raw_head": head, "conn": cid, "index": index, "complete": False,
                   "body_len": 0, "body_sha256": sha256(b""), "chunked": False}
            index += 1
            with self.lock:
                self.requests.append(req)
            if not self.handle(c, bs, req):
                return

    def read_body(self, bs, req):
        h = req["headers"]
        if "chunked" in (hget(h, "transfer-encoding") or "").lower():
            req["chunked"] = True
            body = read_chunked(bs)
        elif hget(h, "content-length") is not None:
            n = int(hget(h, "content-length"))
            body = bs.read_exact(n) if n else b""
            if body is None:
                raise EOFError("EOF in body")
        else:
            body = b""
        req["body_len"] = len(body)
        req["body_sha256"] = sha256(body)
        req["complete"] = True
        return body

    @staticmethod
    def send(c, status, body=b"", headers=(), keep=True, phrase=None, head_only=False):
        phrase = phrase or {200: "OK", 101: "Switching Protocols", 404: "Not Found"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {phrase}"] + [f"{k}: {v}" for k, v in headers]
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
            lines.append(f"Content-Length: {len(body)}")
        if not keep:
            lines.append("Connection: close")
        if head_only or no_body:
            body = b""
        c.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def handle(self, c, bs, req):
        target = req["target"]
        u = urllib.parse.urlsplit(target)
        q = urllib.parse.parse_qs(u.query)
        seg = "/" + u.path.lstrip("/").split("/", 1)[0]
        h = req["headers"]
        conn_hdr = (hget(h, "connection") or "").lower()
        keep = req["version"] == "HTTP/1.1" and "close" not in conn_hdr
        if seg == "/ws" and "websocket" in (hget(h, "upgrade") or "").lower():
            self.read_body(bs, req)
            self.send(c, 101, headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                       ("Sec-WebSocket-Accept", "x")], keep=True)
            leftover = bs.read_some() if bs.buf else b""
            if leftover:
                c.sendall(leftover)
            while True:
                data = c.recv(1 << 16)
                if not data:
                    break
                self._count(data)
                c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            return False
        if seg == "/reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if (hget(h, "expect") or "").lower() == "100-continue":
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.read_body(bs, req)
        if seg == "/echo":
            info = {"method": req["method"], "target": target, "version": req["version"],
                    "headers": h, "body_len": len(body), "body_sha256": sha256(body),
                    "conn": req["conn"], "index": req["index"]}
            self.send(c, 200, json.dumps(info).encode(), [("Content-Type", "application/json")], keep)
        elif seg == "/upload":
            info = {"len": len(body), "sha256": sha256(body), "chunked": req["chunked"]}
            self.send(c, 200, json.dumps(info).encode(), [("Content-Type", "application/json")], keep)
        elif seg == "/bytes":
            n = int(q.get("n", ["0"])[0])
            data = gen_bytes(n)
            if q.get("chunked"):
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          b"Transfer-Encoding: chunked\r\n" + (b"" if keep else b"Connection: close\r\n") + b"\r\n")
                for i in range(0, n, 1 << 16):
                    piece = data[i:i + (1 << 16)]
                    c.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                c.sendall(b"0\r\n\r\n")
            else:
                self.send(c, 200, data, [("Content-Type", "application/octet-stream"),
                                         ("X-Sha256", sha256(data))], keep)
        elif seg == "/sse":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(8):
                ev = f"id: {i}\ndata: event {i} at {time.monotonic():.3f}\n\n".encode()
                c.sendall(b"%x\r\n" % len(ev) + ev + b"\r\n")
                if i < 7:
                    time.sleep(0.2)
            c.sendall(b"0\r\n\r\n")
        elif seg == "/raw10":
            # HTTP/1.0 response delimited by closing the connection
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + gen_bytes(50_000))
            return False
        elif seg == "/closeafter":
            self.send(c, 200, b"closing\n", [("Content-Type", "text/plain")], keep=False)
            return False
        elif req["method"] == "HEAD":
            self.send(c, 200, gen_bytes(1234), [("Content-Type", "application/octet-stream")], keep,
                      head_only=True)
        elif seg == "/delay":
            time.sleep(int(q.get("ms", ["0"])[0]) / 1000.0)
            self.send(c, 200, b"ok\n", [("Content-Type", "text/plain")], keep)
        elif seg == "/status":
            self.send(c, int(q.get("code", ["200"])[0]), b"status\n", [("Content-Type", "text/plain")], keep)
        else:
            self.send(c, 200, b"ok\n", [("Content-Type", "text/plain")], keep)
        return keep


class TcpSink(_ServerBase):
    """Raw TCP server. mode: 'sink' (reads, never answers), 'echo' (echoes,
    half-closes after the client's EOF), 'hash' (reads to EOF, then answers
    the sha256 hex of everything and closes), 'banner' (speaks first: sends
    BANNER as soon as it has accepted, then echoes). Records .data_hashes per
    connection (sha256 of what it received) and .bytes_received."""

    BANNER = b"220 egressd-test ready\r\n"

    def __init__(self, mode="sink"):
        self.mode = mode
        self.received = {}  # cid -> (len, sha256) once EOF
        super().__init__()

    def serve(self, c, cid):
        c.settimeout(120)
        if self.mode == "banner":
            c.sendall(self.BANNER)
        h = hashlib.sha256()
        n = 0
        while True:
            try:
                data = c.recv(1 << 20)
            except ConnectionResetError:
                break
            if not data:
                break
            n += len(data)
            h.update(data)
            self._count(data)
            if self.mode in ("echo", "banner"):
                c.sendall(data)
        with self.lock:
            self.received[cid] = (n, h.hexdigest())
        if self.mode == "hash":
            c.sendall(h.hexdigest().encode())
        with contextlib.suppress(OSError):
            c.shutdown(socket.SHUT_WR)


# --------------------------------------------------------------------------
# TLS helpers (stdlib ssl over MemoryBIO: exact control of the ClientHello)


def client_hello(sni, alpn=None):
    """The bytes of a real ClientHello (Python's OpenSSL) for sni (None: no SNI)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=False, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


class TlsClient:
    """TLS over an already-connected socket (e.g. a CONNECT tunnel), pumping
    MemoryBIOs so the first flight can be sent in pieces."""

    def __init__(self, sock, sni, cafile=None, leftover=b""):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cafile and sni is not None:
            ctx.load_verify_locations(cafile)  # verifies the cert and the name
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=False, server_hostname=sni)
        if leftover:
            self.inc.write(leftover)

    def _flush(self, pieces=1, gap=0.0):
        data = self.out.read()
        if not data:
            return
        if pieces <= 1:
            self.sock.sendall(data)
            return
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])
            if gap:
                time.sleep(gap)

    def _feed(self):
        data = self.sock.recv(1 << 16)
        if not data:
            self.inc.write_eof()
            raise ConnectionAbortedError("EOF from the tunnel during TLS")
        self.inc.write(data)

    def handshake(self, first_flight_pieces=1, gap=0.0):
        first = True
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush(first_flight_pieces if first else 1, gap if first else 0.0)
                first = False
                self._feed()

    def sendall(self, data):
        self.obj.write(data)
        self._flush()

    def recv(self, n=1 << 16):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                try:
                    self._feed()
                except ConnectionAbortedError:
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    def request(self, raw):
        """Send a raw HTTP request, read one response."""
        self.sendall(raw)
        return read_response(BufferedSocket(_TlsAsSocket(self)))


class _TlsAsSocket:
    def __init__(self, tls):
        self.tls = tls

    def recv(self, n):
        return self.tls.recv(n)


# --------------------------------------------------------------------------
# Real clients


def curl(*args, timeout=60):
    """Run curl (no ~/.curlrc, no proxy env). Returns CompletedProcess (bytes)."""
    cmd = ["curl", "-q", "-sS", "--max-time", "30"] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=clean_env())


def curl_status(*args, timeout=60):
    """Run curl with -o body -w status; returns (status:int, body:bytes, headers:str, proc)."""
    with tempfile.TemporaryDirectory() as d:
        body_path = os.path.join(d, "body")
        hdr_path = os.path.join(d, "headers")
        p = curl("-o", body_path, "-D", hdr_path, "-w", "%{http_code}", *args, timeout=timeout)
        body = Path(body_path).read_bytes() if os.path.exists(body_path) else b""
        hdrs = Path(hdr_path).read_text("latin-1") if os.path.exists(hdr_path) else ""
    try:
        status = int(p.stdout.decode().strip() or "0")
    except ValueError:
        status = 0
    return status, body, hdrs, p


class EgressdTestCase(unittest.TestCase):
    """Base class: tearDownClass stops every Egressd registered with
    cls.own(...) (asserting exit 0) and closes servers registered likewise."""

    _owned = None

    @classmethod
    def own(cls, obj):
        if "_owned" not in cls.__dict__ or cls._owned is None:
            cls._owned = []
        cls._owned.append(obj)
        return obj

    @classmethod
    def tearDownClass(cls):
        errors = []
        for obj in reversed(cls._owned or []):
            try:
                if isinstance(obj, Egressd):
                    if obj.proc is not None:
                        err = obj.stderr()
                        if err.strip():
                            sys.stderr.write(f"--- egressd stderr ({obj.conf_path}):\n{err[-3000:]}\n")
                        obj.stop()
                    obj.cleanup()
                else:
                    obj.close()
            except Exception as e:  # report all, raise the first
                errors.append(e)
        cls._owned = None
        if errors:
            raise errors[0]


def main():
    unittest.main(verbosity=2)
