#!/usr/bin/env python3
"""CONNECT tunnels and the SNI check (SPEC: "On a CONNECT to a TLS port,
egressd reads the ClientHello before relaying a byte upstream: its SNI must
equal the CONNECT host"; a failing tunnel is closed, reason sni_mismatch /
no_sni / not_tls in the log). Real clients: curl -p -x / --proxytunnel,
urllib with HTTPS_PROXY, openssl s_client -proxy."""

import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     TcpSink, TlsClient, base_config, clean_env, client_hello, connect_proxy,
                     connect_tunnel, curl_status, expect_closed, main, make_cert, read_response)


class Connect(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="egressd-cert-")
        cls.cert, cls.key = make_cert(cls.tmp)
        cls.dns = cls.own(DnsServer())
        cls.tls = cls.own(HttpOrigin(cls.cert, cls.key))   # TLS origin on a tls_port
        cls.tls_sink = cls.own(TcpSink("sink"))            # never answers; on a tls_port
        cls.echo = cls.own(TcpSink("echo"))                # plain TCP, not a tls_port
        cls.hashsink = cls.own(TcpSink("hash"))
        cls.banner = cls.own(TcpSink("banner"))            # speaks first (SMTP-like)
        T, K, E, H = cls.tls.port, cls.tls_sink.port, cls.echo.port, cls.hashsink.port
        cls.T, cls.K, cls.E, cls.H, cls.B = T, K, E, H, cls.banner.port
        for n in ("allowed.test", "other.test", "tls.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        rules = f"""
allow allowed.test ports={T},{K},{E},{H},{cls.B}
allow other.test ports={T},{K}
"""
        cls.e = cls.own(Egressd(base_config(rules, tls_ports=[443, T, K]), dns=cls.dns)).start()

    def tunnel(self, authority):
        r, s, bs = connect_tunnel(self.e, authority)
        self.assertIsNotNone(r, "no answer to CONNECT")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(bs.buf, b"", "bytes after the 200 before the client said anything")
        return s, bs

    def assert_sink_untouched(self, before):
        time.sleep(0.3)  # anything relayed would arrive within this on loopback
        self.assertEqual(self.tls_sink.snapshot()[1], before, "bytes reached the upstream")

    # ---- real clients

    def test_curl_proxytunnel(self):
        for flag in ("-p", "--proxytunnel"):
            st, body, hdrs, p = curl_status(flag, "-x", self.e.url, "--cacert", self.cert,
                                            f"https://allowed.test:{self.T}/echo/curl{flag}")
            self.assertEqual(st, 200, p.stderr)
            self.assertEqual(json.loads(body)["target"], f"/echo/curl{flag}")
        self.assertIn("allowed.test", self.tls.snis)

    def test_curl_https_via_proxy_without_p(self):
        # curl tunnels https:// through an HTTP proxy with CONNECT anyway.
        st, body, hdrs, p = curl_status("-x", self.e.url, "--cacert", self.cert,
                                        f"https://allowed.test:{self.T}/echo/curl-https")
        self.assertEqual(st, 200, p.stderr)

    def test_urllib_https_proxy_env(self):
        env = {"HTTPS_PROXY": self.e.url, "https_proxy": self.e.url, "NO_PROXY": "", "no_proxy": ""}
        ctx = __import__("ssl").create_default_context(cafile=self.cert)
        with mock.patch.dict(os.environ, env):
            opener = urllib.request.build_opener(urllib.request.ProxyHandler(),
                                                 urllib.request.HTTPSHandler(context=ctx))
            with opener.open(f"https://allowed.test:{self.T}/echo/urllib-tls", timeout=15) as r:
                self.assertEqual(r.status, 200)
                self.assertEqual(json.loads(r.read())["target"], "/echo/urllib-tls")

    def test_openssl_s_client_proxy_good_sni(self):
        p = subprocess.run(
            ["openssl", "s_client", "-proxy", f"127.0.0.1:{self.e.port}", "-connect",
             f"allowed.test:{self.T}", "-servername", "allowed.test", "-CAfile", self.cert,
             "-verify_return_error", "-quiet"],
            input=b"GET /echo/s_client HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n",
            capture_output=True, timeout=30, env=clean_env())
        self.assertIn(b"HTTP/1.1 200", p.stdout, p.stderr)
        self.assertIn(b"/echo/s_client", p.stdout)

    # ---- the SNI check, positive

    def test_fragmented_client_hello_passes(self):
        s, bs = self.tunnel(f"allowed.test:{self.T}")
        try:
            tls = TlsClient(s, "allowed.test", self.cert)
            tls.handshake(first_flight_pieces=5, gap=0.05)  # ClientHello in 5 TCP segments
            r = tls.request(b"GET /echo/frag HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            self.assertEqual(r.status, 200)
        finally:
            s.close()

    def test_client_hello_pipelined_with_connect(self):
        # The ClientHello sent in the same segment as the CONNECT request (read
        # past the request by egressd) is checked and relayed first.
        s = connect_proxy(self.e)
        try:
            tls = TlsClient(s, "allowed.test", self.cert)
            try:
                tls.obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            hello = tls.out.read()
            s.sendall(f"CONNECT allowed.test:{self.T} HTTP/1.1\r\nHost: allowed.test:{self.T}\r\n\r\n".encode()
                      + hello)
            bs = BufferedSocket(s)
            r = read_response(bs, "CONNECT")
            self.assertEqual(r.status, 200, r)
            tls.inc.write(bytes(bs.buf))
            tls.handshake()
            r = tls.request(b"GET /echo/pipelined HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            self.assertEqual(r.status, 200)
        finally:
            s.close()

    def test_bad_client_hello_pipelined_with_connect(self):
        before = self.tls_sink.snapshot()[1]
        s = connect_proxy(self.e)
        try:
            s.sendall(f"CONNECT allowed.test:{self.K} HTTP/1.1\r\nHost: allowed.test:{self.K}\r\n\r\n".encode()
                      + client_hello("other.test"))
            bs = BufferedSocket(s)
            r = read_response(bs, "CONNECT")
            if r is not None:  # a 200 then a close, or a refusal: either way no relay
                self.assertIn(r.status, (200, 400, 403), r)
                expect_closed(bs, 10)
        finally:
            s.close()
        self.assert_sink_untouched(before)

    def test_sni_case_insensitive(self):
        s, bs = self.tunnel(f"Allowed.TEST:{self.T}")
        try:
            tls = TlsClient(s, "allowed.test", self.cert)
            tls.handshake()
            r = tls.request(b"GET /echo/case HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            self.assertEqual(r.status, 200)
        finally:
            s.close()

    # ---- the SNI check, negative: closed, nothing upstream, reason logged

    def _refused_tunnel(self, first_bytes, reason, authority_host="allowed.test"):
        before = self.tls_sink.snapshot()[1]
        s, bs = self.tunnel(f"{authority_host}:{self.K}")
        client_port = s.getsockname()[1]
        try:
            s.sendall(first_bytes)
            extra = expect_closed(bs, 10)
        finally:
            s.close()
        # At most a TLS alert may come back, never upstream bytes (the sink never talks).
        self.assertFalse(extra and extra[:1] != b"\x15", f"unexpected bytes {extra[:40]!r}")
        self.assert_sink_untouched(before)
        line = self.e.log_for_client(client_port)
        self.assertEqual(line.get("reason"), reason, line)
        self.assertEqual(line.get("kind"), "connect", line)
        self.assertEqual(line.get("decision"), "deny", line)
        return line

    def test_sni_mismatch_closed(self):
        # other.test is itself allowed: the check is SNI == CONNECT host.
        line = self._refused_tunnel(client_hello("other.test"), "sni_mismatch")
        self.assertEqual(line.get("host"), "allowed.test")

    def test_sni_subdomain_mismatch_closed(self):
        self._refused_tunnel(client_hello("www.allowed.test"), "sni_mismatch")

    def test_no_sni_closed(self):
        self._refused_tunnel(client_hello(None), "no_sni")

    def test_not_tls_closed(self):
        self._refused_tunnel(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n", "not_tls")

    def test_garbage_handshake_closed(self):
        before = self.tls_sink.snapshot()[1]
        s, bs = self.tunnel(f"allowed.test:{self.K}")
        try:
            s.sendall(b"\x16\x03\x01\x00\x08\x01\x00\x00\x04garb")
            expect_closed(bs, 10)
        finally:
            s.close()
        self.assert_sink_untouched(before)

    def test_oversized_client_hello_closed(self):
        # A handshake claiming 16 MB: egressd caps what it buffers and closes.
        before = self.tls_sink.snapshot()[1]
        s, bs = self.tunnel(f"allowed.test:{self.K}")
        try:
            body = b"\x01\xff\xff\xff" + b"\x03\x03" + b"A" * (0x4000 - 6)
            try:
                s.sendall(b"\x16\x03\x01\x40\x00" + body)
                for _ in range(3):
                    s.sendall(b"\x16\x03\x01\x40\x00" + b"B" * 0x4000)
            except (BrokenPipeError, ConnectionResetError):
                pass
            expect_closed(bs, 10)
        finally:
            s.close()
        self.assert_sink_untouched(before)

    def test_openssl_s_client_sni_mismatch(self):
        before = self.tls_sink.snapshot()[1]
        p = subprocess.run(
            ["openssl", "s_client", "-proxy", f"127.0.0.1:{self.e.port}", "-connect",
             f"allowed.test:{self.K}", "-servername", "other.test"],
            input=b"", capture_output=True, timeout=30, env=clean_env())
        self.assertNotEqual(p.returncode, 0, p.stdout[-500:])
        self.assert_sink_untouched(before)
        self.e.wait_log(lambda e: e.get("reason") == "sni_mismatch" and e.get("sni") == "other.test",
                        what="sni_mismatch line for s_client")

    def test_openssl_s_client_noservername(self):
        before = self.tls_sink.snapshot()[1]
        p = subprocess.run(
            ["openssl", "s_client", "-proxy", f"127.0.0.1:{self.e.port}", "-connect",
             f"allowed.test:{self.K}", "-noservername"],
            input=b"", capture_output=True, timeout=30, env=clean_env())
        self.assertNotEqual(p.returncode, 0, p.stdout[-500:])
        self.assert_sink_untouched(before)

    def test_tls_origin_never_sees_bad_hello(self):
        before = self.tls.conns_with_bytes
        s, bs = self.tunnel(f"allowed.test:{self.T}")
        try:
            s.sendall(client_hello("other.test"))
            expect_closed(bs, 10)
        finally:
            s.close()
        time.sleep(0.3)
        self.assertEqual(self.tls.conns_with_bytes, before)

    # ---- plain tunnels (ports not in tls_ports)

    def test_plain_tunnel_no_tls_required(self):
        s, bs = self.tunnel(f"allowed.test:{self.E}")
        try:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # not TLS, fine on a non-TLS port
            self.assertEqual(bs.read_exact(18), b"GET / HTTP/1.1\r\n\r\n")
        finally:
            s.close()

    def test_server_speaks_first_without_delay(self):
        # egressd dials with quick-ACK off so that the handshake's last ACK
        # rides on the first bytes it sends up; the server only accepts (and
        # speaks) once that ACK arrives. A client that waits for the server's
        # banner sends nothing, so the relay must send the ACK alone within
        # its grace (5 ms) -- not after the kernel's 200 ms delayed-ACK timer.
        waits = []
        for _ in range(5):
            s, bs = self.tunnel(f"allowed.test:{self.B}")
            try:
                t0 = time.monotonic()
                self.assertEqual(bs.read_exact(len(TcpSink.BANNER)), TcpSink.BANNER)
                waits.append(time.monotonic() - t0)
                s.sendall(b"EHLO agent\r\n")  # and the tunnel works both ways after it
                self.assertEqual(bs.read_exact(12), b"EHLO agent\r\n")
            finally:
                s.close()
        waits.sort()
        self.assertLess(waits[2], 0.1, f"banner waits (s): {waits}")

    def test_half_close_relayed(self):
        # Client sends, half-closes; the server answers after seeing EOF.
        s, bs = self.tunnel(f"allowed.test:{self.H}")
        try:
            payload = os.urandom(300_000)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            answer = bs.read_to_eof()
        finally:
            s.close()
        import hashlib
        self.assertEqual(answer.decode(), hashlib.sha256(payload).hexdigest())

    def test_connect_http10(self):
        r, s, bs = connect_tunnel(self.e, f"allowed.test:{self.E}", version="HTTP/1.0")
        try:
            self.assertEqual(r.status, 200, r)
            s.sendall(b"x10")
            self.assertEqual(bs.read_exact(3), b"x10")
        finally:
            s.close()

    def test_tunnel_log_line(self):
        s, bs = self.tunnel(f"allowed.test:{self.T}")
        port = s.getsockname()[1]
        try:
            tls = TlsClient(s, "allowed.test", self.cert)
            tls.handshake()
            r = tls.request(b"GET /echo/logline HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            self.assertEqual(r.status, 200)
        finally:
            s.close()
        line = self.e.log_for_client(port)
        self.assertEqual(line["kind"], "connect")
        self.assertEqual(line["method"], "CONNECT")
        self.assertEqual(line["host"], "allowed.test")
        self.assertEqual(line["port"], self.T)
        self.assertEqual(line["sni"], "allowed.test")
        self.assertEqual(line["decision"], "allow")
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["upstream"], f"127.0.0.1:{self.T}")
        self.assertGreater(line["bytes_up"], 200)
        self.assertGreater(line["bytes_down"], 200)


class RequireSniOff(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="egressd-cert-")
        cls.cert, cls.key = make_cert(cls.tmp)
        cls.dns = cls.own(DnsServer())
        cls.tls = cls.own(HttpOrigin(cls.cert, cls.key))
        T = cls.T = cls.tls.port
        cls.dns.add("allowed.test", a=["127.0.0.1"])
        cls.e = cls.own(Egressd(base_config(f"allow allowed.test ports={T}\n", tls_ports=[T],
                                            extra="require_sni off"), dns=cls.dns)).start()

    def test_no_sni_allowed_when_not_required(self):
        r, s, bs = connect_tunnel(self.e, f"allowed.test:{self.T}")
        try:
            self.assertEqual(r.status, 200, r)
            tls = TlsClient(s, None)
            tls.handshake()
            r = tls.request(b"GET /echo/nosni HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            self.assertEqual(r.status, 200)
        finally:
            s.close()

    def test_mismatch_still_refused(self):
        r, s, bs = connect_tunnel(self.e, f"allowed.test:{self.T}")
        try:
            self.assertEqual(r.status, 200, r)
            s.sendall(client_hello("other.test"))
            expect_closed(bs, 10)
        finally:
            s.close()


if __name__ == "__main__":
    main()
