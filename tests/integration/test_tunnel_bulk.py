#!/usr/bin/env python3
"""64 MiB each way through one CONNECT tunnel (a port not in tls_ports) to an
echo server: identical sha256 in both directions, half-close carried through,
bounded time, and bytes_up/bytes_down in the access log."""

import hashlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DnsServer, Egressd, EgressdTestCase, TcpSink, base_config,  # noqa: E402
                     connect_tunnel, main)

MiB = 1024 * 1024
SIZE = 64 * MiB
TIME_LIMIT = 45.0


class TunnelBulk(EgressdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = cls.own(DnsServer())
        cls.echo = cls.own(TcpSink("echo"))
        cls.dns.add("bulk.test", a=["127.0.0.1"])
        cls.e = cls.own(Egressd(base_config(f"allow bulk.test ports={cls.echo.port}\n"),
                                dns=cls.dns)).start()

    def test_64mib_both_ways(self):
        payload = os.urandom(SIZE)
        sent_hash = hashlib.sha256(payload).hexdigest()
        r, s, bs = connect_tunnel(self.e, f"bulk.test:{self.echo.port}", timeout=TIME_LIMIT)
        self.assertEqual(r.status, 200, r)
        client_port = s.getsockname()[1]
        send_error = []
        t0 = time.monotonic()

        def sender():
            try:
                view = memoryview(payload)
                for i in range(0, SIZE, MiB):
                    s.sendall(view[i:i + MiB])
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                send_error.append(e)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        h = hashlib.sha256(bs.buf)
        got = len(bs.buf)
        bs.buf.clear()
        try:
            while True:
                if time.monotonic() - t0 > TIME_LIMIT:
                    self.fail(f"only {got} of {SIZE} bytes back after {TIME_LIMIT}s")
                data = s.recv(4 * MiB)
                if not data:
                    break
                h.update(data)
                got += len(data)
        finally:
            t.join(TIME_LIMIT)
            s.close()
        elapsed = time.monotonic() - t0
        self.assertEqual(send_error, [])
        self.assertEqual(got, SIZE, "bytes back through the tunnel")
        self.assertEqual(h.hexdigest(), sent_hash, "downstream sha256")
        # The echo server saw exactly what was sent (upstream direction), and
        # saw EOF (the client's half-close reached it).
        (n_up, up_hash), = [v for v in self.echo.received.values() if v[0] == SIZE] or [(None, None)]
        self.assertEqual(n_up, SIZE, f"echo server received {self.echo.received}")
        self.assertEqual(up_hash, sent_hash, "upstream sha256")
        sys.stderr.write(f"64 MiB each way in {elapsed:.2f}s\n")

        line = self.e.log_for_client(client_port, timeout=15)
        self.assertEqual(line["kind"], "connect")
        self.assertEqual(line["decision"], "allow")
        self.assertGreaterEqual(line["bytes_up"], SIZE)
        self.assertLess(line["bytes_up"], SIZE + 4096)
        self.assertGreaterEqual(line["bytes_down"], SIZE)
        self.assertLess(line["bytes_down"], SIZE + 4096)
        self.assertGreaterEqual(line["duration_ms"], 0)


if __name__ == "__main__":
    main()
