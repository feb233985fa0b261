#!/usr/bin/env python3
"""TLS privacy extensions (SPEC "TLS privacy extensions"): `ech deny|allow`,
`bad_sni`, and every ClientHello of a handshake judged (the first-flight
watch), on CONNECT tunnels to TLS ports and on `listen ... mode=sni`.

ClientHellos are built here byte by byte, so each extension and each
server_name form is exactly what the test says. The origins are scripted TLS
"servers" (TlsScript): they record every byte and every ClientHello they get
and answer the first one with a canned ServerHello or HelloRetryRequest, so
a test can assert what reached the server. A real `openssl s_server` /
`s_client` pair with disjoint first key shares proves that a real HRR
handshake still completes through the watch."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, TcpSink, _ServerBase,  # noqa: E402
                     base_config, clean_env, connect_from, connect_tunnel, expect_closed,
                     free_port, main, make_cert, wait_until)
from modes_util import metric_value, scrape, wait_listening  # noqa: E402

HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")


def u16(n):
    return n.to_bytes(2, "big")


def record(content_type, payload, version=0x0301):
    return bytes([content_type]) + u16(version) + u16(len(payload)) + payload


def sni_data(names=("allowed.test",), name_type=0, list_delta=0):
    """server_name extension data: a ServerNameList of these names."""
    entries = b"".join(bytes([name_type]) + u16(len(n)) + n
                       for n in (x.encode("latin-1") if isinstance(x, str) else x for x in names))
    return u16(len(entries) + list_delta) + entries


def client_hello(sni="allowed.test", extra=(), sni_exts=None):
    """A TLS 1.3-shaped ClientHello record. sni_exts: the server_name
    extensions' data (default: one naming `sni`; [] for none); extra:
    (type, data) extensions appended."""
    if sni_exts is None:
        sni_exts = [sni_data((sni,))] if sni else []
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32)
            + u16(6) + b"\x13\x01\x13\x02\xc0\x2f" + b"\x01\x00")
    exts = [(0x000a, b"\x00\x04\x00\x1d\x00\x17")]
    exts += [(0x0000, d) for d in sni_exts]
    exts += [(0x002b, b"\x04\x03\x04\x03\x03"), (0x0033, u16(36) + u16(0x1d) + u16(32) + os.urandom(32))]
    exts += list(extra)
    block = b"".join(u16(t) + u16(len(d)) + d for t, d in exts)
    body += u16(len(block)) + block
    return record(22, b"\x01" + len(body).to_bytes(3, "big") + body)


def server_hello(hrr=False):
    random = HRR_RANDOM if hrr else os.urandom(32)
    exts = u16(0x002b) + u16(2) + b"\x03\x04"
    exts += (u16(0x0033) + u16(2) + u16(0x17)) if hrr else (u16(0x0033) + u16(36) + u16(0x1d) + u16(32) + bytes(32))
    body = b"\x03\x03" + random + b"\x20" + bytes(32) + b"\x13\x01" + b"\x00" + u16(len(exts)) + exts
    return record(22, b"\x02" + len(body).to_bytes(3, "big") + body, version=0x0303)


CCS = record(20, b"\x01", version=0x0303)
HRR_FLIGHT = server_hello(hrr=True) + CCS


def hello_sni(body):
    """The first host_name of a ClientHello body (after the 4-byte header), or None."""
    try:
        p = 2 + 32
        p += 1 + body[p]
        p += 2 + int.from_bytes(body[p:p + 2], "big")
        p += 1 + body[p]
        end = p + 2 + int.from_bytes(body[p:p + 2], "big")
        p += 2
        while p + 4 <= end:
            t, n = int.from_bytes(body[p:p + 2], "big"), int.from_bytes(body[p + 2:p + 4], "big")
            if t == 0:
                ln = int.from_bytes(body[p + 7:p + 9], "big")
                return body[p + 9:p + 9 + ln].decode("latin-1")
            p += 4 + n
    except IndexError:
        pass
    return None


class TlsScript(_ServerBase):
    """A TLS origin that answers by script. mode 'hello': the first
    ClientHello gets a ServerHello; 'hrr': it gets a HelloRetryRequest (+
    ChangeCipherSpec), the second a ServerHello. delay: seconds before the
    first answer. Records, per connection, the SNI of every ClientHello
    received (hellos[cid]) and the byte count (received[cid])."""

    def __init__(self, mode="hello", delay=0.0):
        self.mode, self.delay = mode, delay
        self.hellos, self.received = {}, {}
        super().__init__()

    def last(self):
        with self.lock:
            cid = self.tcp_connections
            return cid, list(self.hellos.get(cid, [])), self.received.get(cid, 0)

    def serve(self, c, cid):
        c.settimeout(30)
        buf, hs = b"", b""
        with self.lock:
            self.hellos[cid], self.received[cid] = [], 0
        while True:
            data = c.recv(1 << 16)
            if not data:
                break
            self._count(data)
            with self.lock:
                self.received[cid] += len(data)
            buf += data
            while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
                n = 5 + int.from_bytes(buf[3:5], "big")
                rec, buf = buf[:n], buf[n:]
                if rec[0] == 22:
                    hs += rec[5:]
            while len(hs) >= 4 and len(hs) >= 4 + int.from_bytes(hs[1:4], "big"):
                n = 4 + int.from_bytes(hs[1:4], "big")
                msg, hs = hs[:n], hs[n:]
                if msg[0] != 1:
                    continue
                with self.lock:
                    self.hellos[cid].append(hello_sni(msg[4:]))
                    count = len(self.hellos[cid])
                if count == 1 and self.delay:
                    time.sleep(self.delay)
                if count == 1 and self.mode == "hrr":
                    c.sendall(HRR_FLIGHT)
                elif count <= 2:
                    c.sendall(server_hello())
        with contextlib.suppress(OSError):
            c.shutdown(socket.SHUT_WR)


ECH_TYPES = (0xfe0d, 0xffce, 0xff02)

BAD_SNI = {
    "two_names_in_one_list": [sni_data(("allowed.test", "other.test"))],
    "two_server_name_extensions": [sni_data(("allowed.test",)), sni_data(("other.test",))],
    "name_type_not_host_name": [sni_data(("allowed.test",), name_type=1)],
    "empty_name": [sni_data(("",))],
    "nul_in_name": [sni_data((b"allowed.test\x00.other.test",))],
    "non_ascii_name": [sni_data((b"allow\xc3\xa9d.test",))],
    "empty_label": [sni_data(("allowed..test",))],
    "list_length_short": [sni_data(("allowed.test",), list_delta=-1)],
    "list_length_long": [sni_data(("allowed.test",), list_delta=+1)],
    "empty_extension": [b""],
}


class TlsPrivacy(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="egressd-tlspriv-")
        cls.cert, cls.key = make_cert(cls.tmp)
        cls.dns = cls.own(DnsServer())
        for n in ("allowed.test", "other.test"):
            cls.dns.add(n, a=["127.0.0.1"])
        cls.hello_srv = cls.own(TlsScript("hello"))
        cls.hrr_srv = cls.own(TlsScript("hrr"))
        cls.slow_srv = cls.own(TlsScript("hello", delay=0.6))
        cls.silent_srv = cls.own(TcpSink("sink"))  # reads, never answers
        cls.s_server_port = free_port()
        ports = [cls.hello_srv.port, cls.hrr_srv.port, cls.slow_srv.port, cls.s_server_port, cls.silent_srv.port]
        rules = (f"allow allowed.test ports={','.join(map(str, ports))}\n"
                 f"allow other.test ports={','.join(map(str, ports))}\n")
        cls.deny_e = cls._start(rules, ports, "")
        cls.allow_e = cls._start(rules, ports, "ech allow")

    @classmethod
    def _start(cls, rules, ports, extra):
        admin, sni_hello, sni_hrr, sni_s = free_port(), free_port(), free_port(), free_port()
        lines = [extra,
                 f"admin 127.0.0.1:{admin}",
                 f"listen 127.0.0.1:{sni_hello} mode=sni port={cls.hello_srv.port}",
                 f"listen 127.0.0.1:{sni_hrr} mode=sni port={cls.hrr_srv.port}",
                 f"listen 127.0.0.1:{sni_s} mode=sni port={cls.s_server_port}"]
        e = cls.own(Egressd(base_config(rules, tls_ports=ports, timeouts={"header": "2s"}, extra="\n".join(lines)),
                            dns=cls.dns)).start()
        wait_listening(admin, sni_hello, sni_hrr, sni_s)
        e.admin, e.sni_hello, e.sni_hrr, e.sni_s = admin, sni_hello, sni_hrr, sni_s
        return e

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers

    def tunnel(self, e, port, host="allowed.test"):
        r, s, bs = connect_tunnel(e, f"{host}:{port}")
        self.assertIsNotNone(r, "no answer to CONNECT")
        self.assertEqual(r.status, 200, r)
        return s, bs

    def metric(self, e, name, **labels):
        return metric_value(scrape(e.admin), name, **labels) or 0

    def assert_nothing_reached(self, srv, before):
        time.sleep(0.3)  # anything relayed would arrive within this on loopback
        self.assertEqual(srv.snapshot()[1], before, "bytes reached the origin")

    def refused_connect(self, e, first_bytes, reason, srv=None):
        """CONNECT, send first_bytes: closed, nothing upstream, log line says reason."""
        srv = srv or self.hello_srv
        before = srv.snapshot()[1]
        s, bs = self.tunnel(e, srv.port)
        port = s.getsockname()[1]
        try:
            s.sendall(first_bytes)
            self.assertEqual(expect_closed(bs, 10), b"", "bytes came back on a refused tunnel")
        finally:
            s.close()
        self.assert_nothing_reached(srv, before)
        line = e.log_for_client(port)
        self.assertEqual((line.get("kind"), line.get("decision"), line.get("reason")), ("connect", "deny", reason),
                         line)
        return line

    def refused_sni(self, e, first_bytes, reason):
        before = self.hello_srv.snapshot()[1]
        s = connect_from(e.sni_hello)
        port = s.getsockname()[1]
        try:
            s.sendall(first_bytes)
            self.assertEqual(expect_closed(s, 10), b"")
        finally:
            s.close()
        self.assert_nothing_reached(self.hello_srv, before)
        line = e.log_for_client(port)
        self.assertEqual((line.get("kind"), line.get("decision"), line.get("reason")), ("sni", "deny", reason), line)
        return line

    def relayed(self, sock_or_bs, hello_bytes, srv):
        """Send a ClientHello, get the scripted ServerHello back; returns what the origin saw."""
        bs = sock_or_bs if isinstance(sock_or_bs, BufferedSocket) else BufferedSocket(sock_or_bs)
        bs.sock.sendall(hello_bytes)
        sh = bs.read_exact(len(server_hello()))
        self.assertEqual(sh[:1], b"\x16", sh)
        self.assertNotEqual(sh[11:43], HRR_RANDOM)
        return srv.last()

    # ---- ech deny (the default)

    def test_ech_denied_on_connect(self):
        for t in ECH_TYPES:
            with self.subTest(ext=hex(t)):
                d0 = self.metric(self.deny_e, "egressd_tls_ech_total", decision="deny")
                r0 = self.metric(self.deny_e, "egressd_requests_total", kind="connect", decision="deny", reason="ech")
                line = self.refused_connect(self.deny_e, client_hello(extra=[(t, os.urandom(60))]), "ech")
                self.assertIs(line.get("ech"), True, line)
                self.assertEqual(line.get("sni"), "allowed.test", line)
                wait_until(lambda: self.metric(self.deny_e, "egressd_tls_ech_total", decision="deny") == d0 + 1,
                           what="egressd_tls_ech_total{decision=deny} += 1")
                self.assertEqual(self.metric(self.deny_e, "egressd_requests_total", kind="connect",
                                             decision="deny", reason="ech"), r0 + 1)

    def test_ech_denied_on_sni_listener(self):
        for t in ECH_TYPES:
            with self.subTest(ext=hex(t)):
                line = self.refused_sni(self.deny_e, client_hello(extra=[(t, os.urandom(40))]), "ech")
                self.assertIs(line.get("ech"), True, line)

    def test_plain_hello_has_no_ech_key(self):
        s, bs = self.tunnel(self.deny_e, self.hello_srv.port)
        port = s.getsockname()[1]
        try:
            _, hellos, _ = self.relayed(bs, client_hello(), self.hello_srv)
        finally:
            s.close()
        self.assertEqual(hellos, ["allowed.test"])
        line = self.deny_e.log_for_client(port)
        self.assertEqual((line.get("decision"), line.get("reason")), ("allow", ""), line)
        self.assertNotIn("ech", line)

    # ---- ech allow

    def test_ech_allowed_is_relayed_logged_and_counted(self):
        e = self.allow_e
        for t in ECH_TYPES:
            with self.subTest(ext=hex(t)):
                a0 = self.metric(e, "egressd_tls_ech_total", decision="allow")
                s, bs = self.tunnel(e, self.hello_srv.port)
                port = s.getsockname()[1]
                try:
                    _, hellos, got = self.relayed(bs, client_hello(extra=[(t, os.urandom(60))]), self.hello_srv)
                finally:
                    s.close()
                self.assertEqual(hellos, ["allowed.test"])
                line = e.log_for_client(port)
                self.assertEqual((line.get("decision"), line.get("reason"), line.get("ech")), ("allow", "", True), line)
                self.assertGreater(line.get("bytes_up"), 100, line)
                wait_until(lambda: self.metric(e, "egressd_tls_ech_total", decision="allow") == a0 + 1,
                           what="egressd_tls_ech_total{decision=allow} += 1")

    def test_ech_allowed_outer_sni_still_checked(self):
        self.refused_connect(self.allow_e, client_hello("other.test", extra=[(0xfe0d, os.urandom(60))]),
                             "sni_mismatch")

    def test_ech_allowed_on_sni_listener(self):
        e = self.allow_e
        s = connect_from(e.sni_hello)
        port = s.getsockname()[1]
        try:
            _, hellos, _ = self.relayed(s, client_hello(extra=[(0xfe0d, os.urandom(60))]), self.hello_srv)
        finally:
            s.close()
        self.assertEqual(hellos, ["allowed.test"])
        line = e.log_for_client(port)
        self.assertEqual((line.get("kind"), line.get("decision"), line.get("ech")), ("sni", "allow", True), line)

    # ---- bad_sni

    def test_bad_sni_forms_on_connect(self):
        for name, exts in BAD_SNI.items():
            with self.subTest(form=name):
                self.refused_connect(self.deny_e, client_hello(sni_exts=exts), "bad_sni")

    def test_bad_sni_forms_on_sni_listener(self):
        for name, exts in BAD_SNI.items():
            with self.subTest(form=name):
                self.refused_sni(self.deny_e, client_hello(sni_exts=exts), "bad_sni")

    def test_not_a_hello_is_still_not_tls(self):
        self.refused_connect(self.deny_e, b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n", "not_tls")
        broken = bytearray(client_hello())
        broken[9:11] = b"\x02\x00"  # legacy_version 2.0: not a TLS ClientHello body
        self.refused_connect(self.deny_e, bytes(broken), "not_tls")

    # ---- every ClientHello judged: a second one before the server answered

    def test_second_hello_pipelined_is_refused(self):
        for srv in (self.hello_srv, self.slow_srv):
            with self.subTest(port=srv.port, delay=srv.delay):
                s, bs = self.tunnel(self.deny_e, srv.port)
                port = s.getsockname()[1]
                try:
                    s.sendall(client_hello("allowed.test") + client_hello("other.test"))
                    self.assertEqual(expect_closed(bs, 10), b"", "the server's answer reached the client")
                finally:
                    s.close()
                time.sleep(0.3)
                _, hellos, _ = srv.last()
                self.assertEqual(hellos, ["allowed.test"], "the second ClientHello reached the origin")
                line = self.deny_e.log_for_client(port)
                self.assertEqual((line.get("decision"), line.get("reason")), ("deny", "sni_mismatch"), line)

    def test_second_hello_sent_while_server_thinks_is_refused(self):
        # The slow origin answers 0.6 s after the first ClientHello; the second
        # arrives 0.2 s in, held, and is refused when the answer comes.
        s, bs = self.tunnel(self.deny_e, self.slow_srv.port)
        port = s.getsockname()[1]
        try:
            s.sendall(client_hello("allowed.test"))
            time.sleep(0.2)
            s.sendall(client_hello("allowed.test"))  # even the same name: no second hello before the answer
            self.assertEqual(expect_closed(bs, 10), b"")
        finally:
            s.close()
        time.sleep(0.3)
        self.assertEqual(self.slow_srv.last()[1], ["allowed.test"])
        line = self.deny_e.log_for_client(port)
        self.assertEqual((line.get("decision"), line.get("reason")), ("deny", "not_tls"), line)

    def test_second_hello_refused_while_server_is_silent(self):
        # The origin never answers: a second ClientHello, at once or later,
        # is refused when it arrives, not when the header timeout fires.
        for gap, split in ((0, False), (0.3, False), (0.3, True)):
            with self.subTest(gap=gap, split=split):
                first, second = client_hello("allowed.test"), client_hello("other.test")
                before = self.silent_srv.snapshot()[1]
                s, bs = self.tunnel(self.deny_e, self.silent_srv.port)
                port = s.getsockname()[1]
                t0 = time.monotonic()
                try:
                    if split:  # the second arrives in two pieces: judged whole
                        s.sendall(first + second[:40])
                        time.sleep(gap)
                        s.sendall(second[40:])
                    elif gap:
                        s.sendall(first)
                        time.sleep(gap)
                        s.sendall(second)
                    else:
                        s.sendall(first + second)
                    self.assertEqual(expect_closed(bs, 10), b"")
                finally:
                    s.close()
                self.assertLess(time.monotonic() - t0, gap + 1.5, "refused only at the header timeout")
                line = self.deny_e.log_for_client(port)
                self.assertEqual((line.get("decision"), line.get("reason")), ("deny", "sni_mismatch"), line)
                time.sleep(0.3)
                self.assertEqual(self.silent_srv.snapshot()[1], before + len(first),
                                 "more than the first ClientHello reached the origin")

    def test_silent_tunnel_closed_at_the_header_timeout(self):
        # After its 200, a tunnel waiting for its ClientHello (held by the
        # tunnel job, not the session) is still bounded by the header timeout
        # (2s here), and nothing goes up.
        before = self.silent_srv.snapshot()[1]
        s, bs = self.tunnel(self.deny_e, self.silent_srv.port)
        port = s.getsockname()[1]
        t0 = time.monotonic()
        try:
            self.assertEqual(expect_closed(bs, 10), b"")
        finally:
            s.close()
        waited = time.monotonic() - t0
        self.assertGreater(waited, 1.5, "closed before the header timeout")
        self.assertLess(waited, 4.5, "not closed at the header timeout")
        line = self.deny_e.log_for_client(port)
        self.assertEqual((line.get("status"), line.get("reason")), (200, "client_closed"), line)
        self.assertEqual(self.silent_srv.snapshot()[1], before)

    def test_late_hello_is_judged(self):
        # A ClientHello that comes a while after the 200 is read and judged
        # as one sent at once: the wrong name is refused, nothing goes up; the
        # right one is relayed and answered.
        before = self.silent_srv.snapshot()[1]
        s, bs = self.tunnel(self.deny_e, self.silent_srv.port)
        port = s.getsockname()[1]
        try:
            time.sleep(0.8)
            s.sendall(client_hello("other.test"))
            self.assertEqual(expect_closed(bs, 5), b"")
        finally:
            s.close()
        line = self.deny_e.log_for_client(port)
        self.assertEqual((line.get("decision"), line.get("reason")), ("deny", "sni_mismatch"), line)
        self.assert_nothing_reached(self.silent_srv, before)
        s, bs = self.tunnel(self.deny_e, self.hello_srv.port)
        try:
            time.sleep(0.8)
            s.sendall(client_hello("allowed.test"))
            s.settimeout(5)
            self.assertEqual(s.recv(1)[:1], b"\x16", "no ServerHello came back")
        finally:
            s.close()

    def test_half_a_second_hello_is_refused_at_the_timeout(self):
        first = client_hello("allowed.test")
        before = self.silent_srv.snapshot()[1]
        s, bs = self.tunnel(self.deny_e, self.silent_srv.port)
        port = s.getsockname()[1]
        try:
            s.sendall(first + client_hello("other.test")[:40])
            self.assertEqual(expect_closed(bs, 10), b"")
        finally:
            s.close()
        line = self.deny_e.log_for_client(port)
        self.assertEqual((line.get("decision"), line.get("reason")), ("deny", "not_tls"), line)
        self.assertEqual(self.silent_srv.snapshot()[1], before + len(first))

    def test_early_data_after_hello_is_relayed(self):
        # ChangeCipherSpec and application_data (0-RTT) records may follow the
        # first ClientHello; they wait for the answer, then go up.
        early = CCS + record(23, b"E" * 300, version=0x0303)
        s, bs = self.tunnel(self.deny_e, self.slow_srv.port)
        try:
            s.sendall(client_hello() + early)
            bs.read_exact(len(server_hello()))
            wait_until(lambda: self.slow_srv.last()[2] >= len(client_hello()) + len(early),
                       what="the early data at the origin")
        finally:
            s.close()
        self.assertEqual(self.slow_srv.last()[1], ["allowed.test"])

    def test_server_that_never_answers_times_out(self):
        # The watch waits for the server's first record at most the header
        # timeout (2 s here); the ClientHello itself did go up.
        hello = client_hello()
        before = self.silent_srv.snapshot()[1]
        s, bs = self.tunnel(self.deny_e, self.silent_srv.port)
        port = s.getsockname()[1]
        t0 = time.monotonic()
        try:
            s.sendall(hello)
            self.assertEqual(expect_closed(bs, 10), b"")
        finally:
            s.close()
        self.assertGreater(time.monotonic() - t0, 1.5)
        line = self.deny_e.log_for_client(port)
        self.assertEqual((line.get("decision"), line.get("reason")), ("allow", "upstream_timeout"), line)
        wait_until(lambda: self.silent_srv.snapshot()[1] == before + len(hello), what="the hello at the origin")

    # ---- every ClientHello judged: after a HelloRetryRequest

    def hrr(self, e, second, connect=True, pre=b""):
        if connect:
            s, bs = self.tunnel(e, self.hrr_srv.port)
        else:
            s = connect_from(e.sni_hrr)
            bs = BufferedSocket(s)
        port = s.getsockname()[1]
        try:
            s.sendall(client_hello("allowed.test"))
            got = bs.read_exact(len(HRR_FLIGHT))
            self.assertEqual(got[11:43], HRR_RANDOM, "the HelloRetryRequest did not reach the client")
            s.sendall(pre + second)
            s.settimeout(10)
            back = b""
            with contextlib.suppress(OSError):
                back = bs.read_some() if not bs.buf else bs.buf
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_WR)
                back += bs.read_to_eof()
        finally:
            s.close()
        time.sleep(0.3)
        return port, back

    def test_hrr_second_hello_other_name_never_reaches_server(self):
        for connect in (True, False):
            with self.subTest(connect=connect):
                port, back = self.hrr(self.deny_e, client_hello("other.test"), connect)
                self.assertEqual(back, b"", "a ServerHello came back: the second ClientHello was relayed")
                cid, hellos, _ = self.hrr_srv.last()
                self.assertEqual(hellos, ["allowed.test"], "the server received the second ClientHello")
                line = self.deny_e.log_for_client(port)
                self.assertEqual((line.get("decision"), line.get("reason")), ("deny", "sni_mismatch"), line)

    def test_hrr_second_hello_same_name_is_relayed(self):
        for connect, pre in ((True, b""), (True, CCS), (False, CCS)):
            with self.subTest(connect=connect, ccs=bool(pre)):
                port, back = self.hrr(self.deny_e, client_hello("allowed.test"), connect, pre)
                self.assertEqual(back[:1], b"\x16", back[:40])
                self.assertNotEqual(back[11:43], HRR_RANDOM)
                _, hellos, got = self.hrr_srv.last()
                self.assertEqual(hellos, ["allowed.test", "allowed.test"])
                line = self.deny_e.log_for_client(port)
                self.assertEqual((line.get("decision"), line.get("reason")), ("allow", ""), line)
                self.assertEqual(line.get("bytes_down"), len(HRR_FLIGHT) + len(server_hello()), line)

    def test_hrr_second_hello_is_judged_like_the_first(self):
        cases = [
            ("ech", client_hello("allowed.test", extra=[(0xfe0d, os.urandom(40))])),
            ("bad_sni", client_hello(sni_exts=BAD_SNI["two_names_in_one_list"])),
            ("sni_mismatch", client_hello(None)),
            ("not_tls", b"\x16\x03\x03\x00\x05\x02\x00\x00\x01\x00"),
        ]
        for reason, second in cases:
            with self.subTest(reason=reason):
                port, back = self.hrr(self.deny_e, second)
                self.assertEqual(back, b"")
                self.assertEqual(self.hrr_srv.last()[1], ["allowed.test"])
                line = self.deny_e.log_for_client(port)
                self.assertEqual((line.get("decision"), line.get("reason")), ("deny", reason), line)

    def test_hrr_second_hello_with_ech_allowed(self):
        port, back = self.hrr(self.allow_e, client_hello("allowed.test", extra=[(0xfe0d, os.urandom(40))]))
        self.assertEqual(back[:1], b"\x16")
        self.assertEqual(self.hrr_srv.last()[1], ["allowed.test", "allowed.test"])
        line = self.allow_e.log_for_client(port)
        self.assertEqual((line.get("decision"), line.get("ech")), ("allow", True), line)

    # ---- a real HelloRetryRequest: openssl on both ends

    def test_openssl_real_hrr_completes(self):
        srv = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.s_server_port}", "-cert", self.cert,
             "-key", self.key, "-groups", "P-384", "-www", "-tls1_3"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
        try:
            wait_until(lambda: _listening(self.s_server_port), what="openssl s_server")
            for via in ("connect", "sni"):
                with self.subTest(via=via):
                    if via == "connect":
                        args = ["-proxy", f"127.0.0.1:{self.deny_e.port}", "-connect",
                                f"allowed.test:{self.s_server_port}"]
                    else:
                        args = ["-connect", f"127.0.0.1:{self.deny_e.sni_s}"]
                    p = subprocess.run(
                        ["openssl", "s_client", *args, "-servername", "allowed.test", "-groups", "X25519:P-384",
                         "-CAfile", self.cert, "-verify_return_error", "-msg", "-ign_eof"],
                        input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=30, env=clean_env())
                    out = p.stdout.decode("latin-1")
                    self.assertEqual(p.returncode, 0, out[-1500:] + p.stderr.decode("latin-1")[-500:])
                    self.assertEqual(out.count(", ClientHello"), 2, "no HelloRetryRequest happened:\n" + out[-1500:])
                    self.assertIn("TLSv1.3", out)
                    self.assertIn("HTTP/1.0 200 ok", out)
        finally:
            srv.terminate()
            srv.wait(10)


def _listening(port):
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


if __name__ == "__main__":
    main()
