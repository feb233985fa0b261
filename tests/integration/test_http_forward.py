#!/usr/bin/env python3
"""Plain-HTTP forwarding through egressd (SPEC: "A plain-HTTP request in
absolute form is sent to the host of its request target, and the Host header
is replaced with it"; hop-by-hop and Proxy-* removed; no X-Forwarded-For;
keep-alive; bodies streamed both ways; SSE; Upgrade relayed after a 101)."""

import fcntl
import http.client
import json
import os
import socket
import sys
import tempfile
import termios
import threading
import time
import urllib.request
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, DnsServer, Egressd, EgressdTestCase, HttpOrigin,  # noqa: E402
                     assert_denied, base_config, connect_proxy, curl_status, expect_closed,
                     gen_bytes, hall, hget, http_request, main, read_response, request_raw, sha256)

MiB = 1024 * 1024


class HttpForward(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.origin = cls.own(HttpOrigin())
        cls.origin2 = cls.own(HttpOrigin())
        cls.dns.add("allowed.test", a=["127.0.0.1"])
        cls.dns.add("second.test", a=["127.0.0.1"])
        cls.P = cls.origin.port
        cls.P2 = cls.origin2.port
        cls.base = f"http://allowed.test:{cls.P}"
        rules = f"allow allowed.test ports={cls.P}\nallow second.test ports={cls.P2}\n"
        cls.e = cls.own(Egressd(base_config(rules), dns=cls.dns)).start()

    def origin_request(self, marker):
        """The request the origin received whose target contains marker."""
        for r in self.origin.requests:
            if marker in r["target"]:
                return r
        self.fail(f"origin never received a request for {marker}; got "
                  f"{[r['target'] for r in self.origin.requests]}")

    # ---- real clients

    def test_curl_x_plain_http(self):
        st, body, hdrs, p = curl_status("-x", self.e.url, f"{self.base}/echo/curl-x?q=1")
        self.assertEqual(st, 200, p.stderr)
        info = json.loads(body)
        self.assertEqual(info["method"], "GET")
        # forwarded in origin-form, query kept
        self.assertEqual(info["target"], "/echo/curl-x?q=1")
        self.assertEqual(hall(info["headers"], "host"), [f"allowed.test:{self.P}"])

    def test_urllib_http_proxy_env(self):
        env = {"HTTP_PROXY": self.e.url, "http_proxy": self.e.url, "NO_PROXY": "", "no_proxy": ""}
        with mock.patch.dict(os.environ, env):
            opener = urllib.request.build_opener(urllib.request.ProxyHandler())
            with opener.open(f"{self.base}/echo/urllib", timeout=15) as r:
                self.assertEqual(r.status, 200)
                info = json.loads(r.read())
        self.assertEqual(info["target"], "/echo/urllib")
        self.assertEqual(hall(info["headers"], "host"), [f"allowed.test:{self.P}"])

    # ---- what the origin sees

    def test_host_replaced_from_target(self):
        raw = (f"GET {self.base}/echo/host-lie HTTP/1.1\r\nHost: evil.test\r\n"
               "Connection: close\r\n\r\n").encode()
        r, s, _ = request_raw(self.e, raw)
        s.close()
        self.assertEqual(r.status, 200, r)
        got = self.origin_request("/echo/host-lie")
        self.assertEqual(hall(got["headers"], "host"), [f"allowed.test:{self.P}"])
        self.assertEqual(got["target"], "/echo/host-lie")

    def test_hop_by_hop_and_proxy_headers_removed(self):
        raw = (f"GET {self.base}/echo/hop HTTP/1.1\r\n"
               f"Host: allowed.test:{self.P}\r\n"
               "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
               "Proxy-Connection: keep-alive\r\n"
               "Connection: keep-alive, X-Hop-Secret\r\n"
               "X-Hop-Secret: must-not-pass\r\n"
               "Keep-Alive: timeout=5\r\n"
               "TE: trailers\r\n"
               "Trailer: X-Checksum\r\n"
               "Upgrade: websocket\r\n"
               "X-End-To-End: kept\r\n"
               "\r\n").encode()
        r, s, _ = request_raw(self.e, raw)
        s.close()
        self.assertEqual(r.status, 200, r)
        got = self.origin_request("/echo/hop")
        names = {k.lower() for k, _ in got["headers"]}
        for h in ("proxy-authorization", "proxy-connection", "x-hop-secret", "keep-alive", "te",
                  "trailer", "upgrade"):
            self.assertNotIn(h, names, f"{h} reached the origin: {got['raw_head']!r}")
        self.assertEqual(hget(got["headers"], "x-end-to-end"), "kept")
        for v in hall(got["headers"], "connection"):
            self.assertNotIn("x-hop-secret", v.lower())
            self.assertNotIn("upgrade", v.lower())
        self.assertNotIn(b"dXNlcjpwYXNz", got["raw_head"])

    def test_every_field_named_by_any_connection_header_removed(self):
        # Ten names over two Connection headers, in mixed case.
        names = [f"X-Named-{i}" for i in range(10)]
        raw = (f"GET {self.base}/echo/named HTTP/1.1\r\n"
               f"Host: allowed.test:{self.P}\r\n"
               f"Connection: keep-alive, {', '.join(n.lower() for n in names[:6])}\r\n"
               + "".join(f"{n}: secret\r\n" for n in names)
               + f"Connection: {', '.join(n.upper() for n in names[6:])}\r\n"
               "X-Not-Named: kept\r\n"
               "\r\n").encode()
        r, s, _ = request_raw(self.e, raw)
        s.close()
        self.assertEqual(r.status, 200, r)
        got = self.origin_request("/echo/named")
        sent = {k.lower() for k, _ in got["headers"]}
        for n in names:
            self.assertNotIn(n.lower(), sent, f"{n} reached the origin: {got['raw_head']!r}")
        self.assertEqual(hget(got["headers"], "x-not-named"), "kept")

    def test_no_client_address_leaks(self):
        s = connect_proxy(self.e)
        client_port = s.getsockname()[1]
        raw = f"GET {self.base}/echo/xff HTTP/1.1\r\nHost: allowed.test:{self.P}\r\nConnection: close\r\n\r\n"
        r, s, _ = request_raw(self.e, raw.encode(), sock=s)
        s.close()
        self.assertEqual(r.status, 200, r)
        got = self.origin_request("/echo/xff")
        names = {k.lower() for k, _ in got["headers"]}
        for h in ("x-forwarded-for", "forwarded", "via", "x-real-ip", "x-forwarded-host",
                  "x-client-ip"):
            self.assertNotIn(h, names, got["raw_head"])
        head = got["raw_head"].decode("latin-1")
        self.assertNotIn("127.0.0.1", head)
        self.assertNotIn(str(client_port), head)

    # ---- connections

    def test_keep_alive_many_requests_one_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.e.port, timeout=15)
        try:
            first_sock = None
            for i in range(6):
                method = "POST" if i % 2 else "GET"
                body = f"body-{i}".encode() if method == "POST" else None
                conn.request(method, f"{self.base}/echo/ka-{i}?i={i}", body=body)
                r = conn.getresponse()
                data = r.read()
                self.assertEqual(r.status, 200, data)
                info = json.loads(data)
                self.assertEqual(info["target"], f"/echo/ka-{i}?i={i}")
                self.assertEqual(info["method"], method)
                if body:
                    self.assertEqual(info["body_sha256"], sha256(body))
                self.assertIsNotNone(conn.sock, "egressd closed the keep-alive connection")
                if first_sock is None:
                    first_sock = conn.sock
                self.assertIs(conn.sock, first_sock, "the client connection was not kept alive")
        finally:
            conn.close()

    def test_upstream_connection_reused_for_same_host(self):
        # Issue 2: "reuse of the upstream connection while the client keeps
        # asking the same host".
        conn = http.client.HTTPConnection("127.0.0.1", self.e.port, timeout=15)
        try:
            for i in range(4):
                conn.request("GET", f"{self.base}/echo/reuse-{i}")
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
        finally:
            conn.close()
        conns = {self.origin_request(f"/echo/reuse-{i}")["conn"] for i in range(4)}
        self.assertEqual(len(conns), 1, f"upstream connections used: {conns}")

    def test_http10_request(self):
        raw = f"GET {self.base}/echo/http10 HTTP/1.0\r\nHost: allowed.test:{self.P}\r\n\r\n"
        r, s, bs = request_raw(self.e, raw.encode())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body)["target"], "/echo/http10")
        expect_closed(bs, 10)  # HTTP/1.0 without keep-alive: closed after the response
        s.close()

    def keepalive_exchange(self, requests):
        """Send each (method, url) on one client connection; return the responses."""
        s = connect_proxy(self.e)
        bs = BufferedSocket(s)
        out = []
        try:
            for method, url in requests:
                host = url.split("/")[2]
                s.sendall(f"{method} {url} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                r = read_response(bs, method)
                self.assertIsNotNone(r, f"connection closed before the answer to {method} {url}")
                out.append(r)
        finally:
            s.close()
        return out

    def test_host_switch_on_keep_alive_goes_to_the_right_origin(self):
        # The upstream connection may be reused only for the same host.
        urls = [f"{self.base}/echo/sw-a1", f"http://second.test:{self.P2}/echo/sw-b1",
                f"{self.base}/echo/sw-a2", f"http://second.test:{self.P2}/echo/sw-b2"]
        rs = self.keepalive_exchange([("GET", u) for u in urls])
        for u, r in zip(urls, rs):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], "/" + u.split("/", 3)[3])
        self.assertEqual(sorted(x["target"] for x in self.origin2.requests if "/sw-" in x["target"]),
                         ["/echo/sw-b1", "/echo/sw-b2"])
        self.assertEqual(sorted(x["target"] for x in self.origin.requests if "/sw-" in x["target"]),
                         ["/echo/sw-a1", "/echo/sw-a2"])

    def test_head_204_304_keep_alive(self):
        # Responses without a body despite Content-Length (HEAD) or by status
        # (204, 304) must not make egressd wait for a body.
        rs = self.keepalive_exchange([("HEAD", f"{self.base}/head"),
                                      ("GET", f"{self.base}/status?code=204"),
                                      ("GET", f"{self.base}/status?code=304"),
                                      ("GET", f"{self.base}/echo/after-nobody")])
        self.assertEqual([r.status for r in rs], [200, 204, 304, 200])
        self.assertEqual(rs[0].header("content-length"), "1234")
        self.assertEqual(rs[0].body, b"")
        self.assertEqual(rs[3].json()["target"], "/echo/after-nobody")

    def test_close_delimited_response(self):
        r = http_request(self.e, f"{self.base}/raw10")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, gen_bytes(50_000))

    def test_origin_closing_does_not_break_client_connection(self):
        rs = self.keepalive_exchange([("GET", f"{self.base}/closeafter"),
                                      ("GET", f"{self.base}/echo/after-close")])
        self.assertEqual(rs[0].body, b"closing\n")
        self.assertEqual(rs[1].status, 200, rs[1])

    def test_pipelined_requests_answered_in_order(self):
        s = connect_proxy(self.e)
        bs = BufferedSocket(s)
        try:
            s.sendall("".join(f"GET {self.base}/echo/pipe-{i} HTTP/1.1\r\nHost: allowed.test:{self.P}\r\n\r\n"
                              for i in range(3)).encode())
            for i in range(3):
                r = read_response(bs)
                self.assertIsNotNone(r)
                self.assertEqual(r.json()["target"], f"/echo/pipe-{i}")
        finally:
            s.close()

    def test_userinfo_never_forwarded_nor_confusing(self):
        # RFC 9110 4.2.4: userinfo in an http URI is best treated as an error;
        # egressd may refuse it (400) or strip it, but never forward it, and
        # the host after the '@' is the one decided on.
        r = http_request(self.e, f"http://user:secret@allowed.test:{self.P}/echo/userinfo")
        self.assertIn(r.status, (200, 400), r)
        if r.status == 200:
            got = self.origin_request("/echo/userinfo")
            self.assertEqual(hall(got["headers"], "host"), [f"allowed.test:{self.P}"])
        self.assertFalse(any(b"secret" in x["raw_head"] for x in self.origin.requests))
        r = http_request(self.e, f"http://allowed.test:{self.P}@evil.test:{self.P}/echo/userinfo-evil")
        self.assertIn(r.status, (400, 403), r)
        self.assertFalse(any("userinfo-evil" in x["target"] for x in self.origin.requests))

    def test_many_concurrent_clients(self):
        results = []

        def one(i):
            try:
                r = http_request(self.e, f"{self.base}/bytes?n={1000 + i}", timeout=30)
                results.append((r.status, r.body == gen_bytes(1000 + i)))
            except Exception as e:  # recorded, asserted below
                results.append((repr(e), False))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(results, [(200, True)] * 40)

    # ---- bodies

    def test_upload_5mib_content_length(self):
        data = gen_bytes(5 * MiB, seed=1)
        conn = http.client.HTTPConnection("127.0.0.1", self.e.port, timeout=30)
        try:
            conn.request("POST", f"{self.base}/upload/cl", body=data,
                         headers={"Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            info = json.loads(r.read())
        finally:
            conn.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(info["len"], len(data))
        self.assertEqual(info["sha256"], sha256(data))

    def test_upload_5mib_chunked(self):
        data = gen_bytes(5 * MiB, seed=2)
        pieces = (data[i:i + 100_000] for i in range(0, len(data), 100_000))
        conn = http.client.HTTPConnection("127.0.0.1", self.e.port, timeout=30)
        try:
            conn.request("POST", f"{self.base}/upload/chunked", body=pieces, encode_chunked=True,
                         headers={"Transfer-Encoding": "chunked"})
            r = conn.getresponse()
            raw = r.read()
        finally:
            conn.close()
        self.assertEqual(r.status, 200, raw[:300])
        info = json.loads(raw)
        self.assertEqual(info["len"], len(data))
        self.assertEqual(info["sha256"], sha256(data))

    def test_chunked_framing_preserved_small(self):
        # A chunked request body must reach the origin as the body of that
        # request (re-chunked or not), never as bytes after an empty body
        # (which the origin would parse as a second, smuggled request).
        raw = (f"POST {self.base}/upload/small-chunked HTTP/1.1\r\nHost: allowed.test:{self.P}\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").encode()
        r, s, _ = request_raw(self.e, raw)
        s.close()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["len"], 11, r)
        got = self.origin_request("/upload/small-chunked")
        after = [x for x in self.origin.requests if x["conn"] == got["conn"] and x["index"] > got["index"]]
        self.assertEqual(after, [], "the body was parsed by the origin as another request")
        # and a chunked response reaches the client decoded to the same bytes
        r = http_request(self.e, f"{self.base}/bytes?n=10&chunked=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, gen_bytes(10), r)

    def test_curl_upload_5mib_expect_100_continue(self):
        # curl sends "Expect: 100-continue" for big uploads; the origin
        # answers 100 Continue; the interim response must not confuse egressd.
        data = gen_bytes(5 * MiB, seed=3)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            st, body, hdrs, p = curl_status("-x", self.e.url, "--data-binary", f"@{f.name}",
                                            "-H", "Expect: 100-continue",
                                            f"{self.base}/upload/curl")
        self.assertEqual(st, 200, p.stderr)
        info = json.loads(body)
        self.assertEqual(info["len"], len(data))
        self.assertEqual(info["sha256"], sha256(data))

    def test_download_5mib_curl(self):
        n = 5 * MiB
        st, body, hdrs, p = curl_status("-x", self.e.url, f"{self.base}/bytes?n={n}")
        self.assertEqual(st, 200, p.stderr)
        self.assertEqual(len(body), n)
        self.assertEqual(sha256(body), sha256(gen_bytes(n)))

    def test_download_to_a_slow_reader(self):
        # The client reads nothing for a while: egressd's writes find the
        # socket full, and what the kernel did not take must still arrive,
        # whole and in order (the timed slow path after the direct send).
        for chunked in ("0", "1"):
            n = 16 * MiB + 3  # more than loopback's socket buffers hold unread
            s = connect_proxy(self.e)
            try:
                s.sendall(f"GET {self.base}/bytes?n={n}&chunked={chunked} HTTP/1.1\r\n"
                          f"Host: {self.base[len('http://'):]}\r\nConnection: close\r\n\r\n".encode())
                # Unread bytes pile up until both socket buffers are full:
                # then egressd's direct send found EAGAIN and the rest waits
                # in the slow path. Wait for that stall (bounded).
                queued, steady_since, deadline = -1, time.monotonic(), time.monotonic() + 20
                while time.monotonic() < deadline:
                    q = int.from_bytes(fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0"), "little")
                    if q != queued:
                        queued, steady_since = q, time.monotonic()
                    elif q > 0 and time.monotonic() - steady_since > 0.3:
                        break
                    time.sleep(0.05)
                self.assertGreater(queued, 0)
                self.assertLess(queued, n, "the whole body fit in the socket buffers: nothing was left to send later")
                r = read_response(BufferedSocket(s))
            finally:
                s.close()
            self.assertIsNotNone(r)
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.body), n)
            self.assertEqual(sha256(r.body), sha256(gen_bytes(n)))

    def test_download_5mib_chunked(self):
        n = 5 * MiB + 17
        conn = http.client.HTTPConnection("127.0.0.1", self.e.port, timeout=30)
        try:
            conn.request("GET", f"{self.base}/bytes?n={n}&chunked=1")
            r = conn.getresponse()
            body = r.read()
        finally:
            conn.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(len(body), n)
        self.assertEqual(sha256(body), sha256(gen_bytes(n)))

    def test_sse_streams_as_produced(self):
        s = connect_proxy(self.e, timeout=15)
        t0 = time.monotonic()
        s.sendall(f"GET {self.base}/sse HTTP/1.1\r\nHost: allowed.test:{self.P}\r\n"
                  "Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode())
        buf = b""
        first_event = None
        while True:
            data = s.recv(65536)
            if not data:
                break
            buf += data
            if first_event is None and b"data: event 0" in buf:
                first_event = time.monotonic() - t0
        total = time.monotonic() - t0
        s.close()
        self.assertIn(b" 200 ", buf.split(b"\r\n", 1)[0])
        self.assertIn(b"data: event 7", buf)
        self.assertIsNotNone(first_event)
        self.assertGreater(total, 1.2, "the origin streams for ~1.4 s")
        self.assertLess(first_event, 1.0,
                        f"first event after {first_event:.2f}s of a {total:.2f}s stream: buffered")

    def test_websocket_upgrade_relayed(self):
        s = connect_proxy(self.e, timeout=15)
        s.sendall(f"GET {self.base}/ws HTTP/1.1\r\nHost: allowed.test:{self.P}\r\n"
                  "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        bs = BufferedSocket(s)
        r = read_response(bs)
        self.assertEqual(r.status, 101, r)
        self.assertIn("websocket", (r.header("upgrade") or "").lower())
        got = self.origin_request("/ws")
        self.assertIn("websocket", (hget(got["headers"], "upgrade") or "").lower())
        self.assertIn("upgrade", (hget(got["headers"], "connection") or "").lower())
        # bytes both ways after the 101
        for msg in (b"\x81\x05hello", gen_bytes(200_000, seed=4)):
            s.sendall(msg)
            echoed = bs.read_exact(len(msg))
            self.assertEqual(echoed, msg)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(expect_closed(bs, 10), b"")
        s.close()

    # ---- refusals on the forward path

    def test_origin_form_on_proxy_port_is_400(self):
        raw = f"GET /echo/origin-form HTTP/1.1\r\nHost: allowed.test:{self.P}\r\n\r\n".encode()
        r, s, _ = request_raw(self.e, raw)
        s.close()
        assert_denied(self, r, 400, "bad_request")
        self.assertFalse(any("origin-form" in x["target"] for x in self.origin.requests))

    def test_upstream_reset_is_502(self):
        r = http_request(self.e, f"{self.base}/reset")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(r.reason, "upstream_reset", r)

    def test_still_serving(self):
        st, body, _, p = curl_status("-x", self.e.url, f"{self.base}/echo/alive")
        self.assertEqual(st, 200, p.stderr)


if __name__ == "__main__":
    main()
