"""Helpers for the integration tests of the listener modes and policy modes
(transparent sni/http listeners, forwards, upstream_proxy, mode report,
client groups, SIGHUP reload, SIGUSR1 log reopen). Built on harness.py, which
it does not change.
"""

import contextlib
import os
import re
import signal
import socket
import ssl
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DEFAULT_TIMEOUT, BufferedSocket, TlsClient, port_listening,  # noqa: E402
                     read_response, wait_until)


def source_bindable(addr):
    """True if a socket can be bound to addr (Linux routes all of 127/8 to lo)."""
    try:
        with socket.socket() as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


def connect_from(port, source=None, timeout=DEFAULT_TIMEOUT):
    """A TCP connection to 127.0.0.1:port, from `source` (an address in 127/8)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def wait_listening(*ports, timeout=10.0):
    """Every port is in LISTEN state (the harness only waits for the first listener)."""
    for p in ports:
        wait_until(lambda: port_listening(p), timeout, what=f"a listener on port {p}")


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


def exchange(port, data, method="GET", source=None, timeout=DEFAULT_TIMEOUT):
    """Send bytes on a new connection, read one response. Returns Response or
    None when egressd closed without one."""
    s = connect_from(port, source, timeout)
    with contextlib.closing(s):
        s.sendall(data)
        try:
            return read_response(BufferedSocket(s), method)
        except (ConnectionResetError, EOFError):
            return None


def proxy_get(port, url, method="GET", body=b"", headers=(), source=None, timeout=DEFAULT_TIMEOUT):
    """An absolute-form request through an explicit proxy listener."""
    u = urllib.parse.urlsplit(url)
    return exchange(port, request_bytes(method, url, u.netloc, headers, body), method, source, timeout)


def connect_via(port, authority, source=None, timeout=DEFAULT_TIMEOUT):
    """CONNECT through an explicit proxy listener. Returns (Response|None, sock, bs)."""
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


def read_all_until_close(sock, timeout=10.0):
    """Everything the peer sends until it closes (EOF or reset); fails if it
    stays open for `timeout` s."""
    deadline = time.monotonic() + timeout
    got = bytearray()
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


def tls_request(port, sni, cafile, raw, source=None, pieces=1, gap=0.0, timeout=DEFAULT_TIMEOUT):
    """TLS straight to a (transparent sni) listener with this SNI, verified
    against cafile, then one raw HTTP request. Returns (Response, TlsClient, sock)."""
    s = connect_from(port, source, timeout)
    t = TlsClient(s, sni, cafile=cafile)
    t.handshake(first_flight_pieces=pieces, gap=gap)
    r = t.request(raw)
    return r, t, s


def replace_sni(hello, old, new):
    """A ClientHello with the SNI bytes `old` replaced by `new` (same length,
    so every length field stays right)."""
    old_b, new_b = old.encode(), new.encode()
    assert len(old_b) == len(new_b), "replace_sni needs names of the same length"
    assert hello.count(old_b) == 1, "the name must occur once in the ClientHello"
    return hello.replace(old_b, new_b)


def entries(e, pred):
    """Access-log lines of Egressd e that satisfy pred."""
    return [x for x in e.read_log() if pred(x)]


# --------------------------------------------------------------------------
# Reload


def reload_count(e):
    return e.stderr().count("configuration reloaded")


def reload_failures(e):
    return e.stderr().count("failed; the previous configuration keeps serving")


def write_config(e, text):
    """Replace e's config file (placeholders filled in like at start), atomically."""
    filled = e.fill(text, _resolver_of(e))
    tmp = e.conf_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(filled)
    os.replace(tmp, e.conf_path)
    e.conf_text = filled


def _resolver_of(e):
    m = re.search(r"^resolver (\S+)", e.conf_text, re.M)
    return m.group(1) if m else ""


def sighup_and_wait(e, ok=True, timeout=10.0):
    """SIGHUP, then wait for egressd's stderr to say the reload succeeded
    (ok=True) or failed (ok=False)."""
    before_ok, before_fail = reload_count(e), reload_failures(e)
    e.send_signal(signal.SIGHUP)
    if ok:
        wait_until(lambda: reload_count(e) > before_ok or reload_failures(e) > before_fail,
                   timeout, what="the reload to be reported on stderr")
        if reload_failures(e) > before_fail:
            raise AssertionError(f"reload failed:\n{e.stderr()[-2000:]}")
    else:
        wait_until(lambda: reload_failures(e) > before_fail or reload_count(e) > before_ok,
                   timeout, what="the failed reload to be reported on stderr")
        if reload_count(e) > before_ok:
            raise AssertionError(f"an invalid config was accepted on reload:\n{e.stderr()[-2000:]}")


# --------------------------------------------------------------------------
# Admin endpoint


def scrape(admin_port, path="/metrics", timeout=DEFAULT_TIMEOUT):
    s = socket.create_connection(("127.0.0.1", admin_port), timeout=timeout)
    with contextlib.closing(s):
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        r = read_response(BufferedSocket(s))
    return r.body.decode("utf-8", "replace") if r is not None else ""


def metric_value(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
            found = True
    return total if found else None


def ssl_available():
    return hasattr(ssl, "MemoryBIO")
