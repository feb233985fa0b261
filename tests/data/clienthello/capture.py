#!/usr/bin/env python3
"""Capture real TLS ClientHello bytes from real clients, for the unit tests.

Runs a one-shot TCP server on 127.0.0.1 (random port) per client, reads the
first bytes of the connection until the ClientHello is complete (record
headers + handshake length) or 2 s pass, writes them to NAME.bin next to this
script, and closes the connection (the client then fails; that is expected).

Usage: python3 capture.py            # re-capture every client below
Needs: openssl, curl, python3 (ssl). Loopback traffic only.
"""
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def hello_complete(buf: bytes) -> bool:
    """True once buf holds a whole handshake message (the ClientHello)."""
    hs = b""
    pos = 0
    while pos + 5 <= len(buf):
        if buf[pos] != 22:
            return True  # not a handshake record: nothing more to wait for
        n = int.from_bytes(buf[pos + 3:pos + 5], "big")
        if pos + 5 + n > len(buf):
            break
        hs += buf[pos + 5:pos + 5 + n]
        pos += 5 + n
        if len(hs) >= 4 and len(hs) >= 4 + int.from_bytes(hs[1:4], "big"):
            return True
    return False


def serve_once(sock: socket.socket, out: list) -> None:
    conn, _ = sock.accept()
    conn.settimeout(0.2)
    buf = b""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and not hello_complete(buf):
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
    conn.close()
    out.append(buf)


def capture(name: str, client) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    out: list = []
    t = threading.Thread(target=serve_once, args=(sock, out))
    t.start()
    client(port)
    t.join(timeout=5)
    sock.close()
    if not out or not hello_complete(out[0]):
        sys.exit(f"{name}: no complete ClientHello captured")
    with open(os.path.join(HERE, name + ".bin"), "wb") as f:
        f.write(out[0])
    print(f"{name}.bin: {len(out[0])} bytes")


def run(cmd: list) -> None:
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=10, check=False)


def openssl(*extra):
    return lambda port: run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *extra])


def curl(port: int) -> None:
    run(["curl", "-sS", "-k", "--max-time", "5", f"https://example.test:{port}/",
         "--resolve", f"example.test:{port}:127.0.0.1"])


def python_ssl(port: int) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="python.example.org"):
                pass
    except (OSError, ssl.SSLError):
        pass


CLIENTS = {
    "openssl_tls13_sni": openssl("-servername", "example.com"),
    "openssl_tls12_sni": openssl("-tls1_2", "-servername", "example.com"),
    "openssl_nosni": openssl("-noservername"),
    "curl_sni": curl,
    "python_sni": python_ssl,
}

if __name__ == "__main__":
    for name, client in CLIENTS.items():
        capture(name, client)
