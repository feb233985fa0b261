"""Helpers for the integration tests of the listener modes and policy modes
(transparent sni/http listeners, forwards, upstream_proxy, mode report,
client groups, SIGHUP reload, SIGUSR1 log reopen). Clients live in
harness.py.
"""

import contextlib
import os
import re
import signal
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DEFAULT_TIMEOUT, BufferedSocket, TlsClient, connect_from,  # noqa: E402
                     port_listening, read_response, wait_until)


def wait_listening(*ports, timeout=10.0):
    """Every port is in LISTEN state (the harness only waits for the first listener)."""
    for p in ports:
        wait_until(lambda: port_listening(p), timeout, what=f"a listener on port {p}")


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
