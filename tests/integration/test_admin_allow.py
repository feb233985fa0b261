#!/usr/bin/env python3
"""`admin ADDR:PORT allow=CIDR,...` through the real binary (SPEC
"Configuration", the admin row): a client outside the allowed networks is
closed at accept, before egressd reads a byte, and counted in
egressd_admin_refused_total; a client inside is served; without allow=
everyone is; a reload applies a changed allow= to new connections."""

import contextlib
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BufferedSocket, Egressd, EgressdTestCase, base_config, free_port,  # noqa: E402
                     main, read_response, source_bindable, wait_until)
from modes_util import metric_value, sighup_and_wait, wait_listening, write_config  # noqa: E402

REFUSED = "egressd_admin_refused_total"


def admin_from(port, source, path="/metrics"):
    """GET path from the admin endpoint with the client bound to `source`.
    Returns the Response, or None when egressd closed without a byte."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with contextlib.closing(s):
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            return None
        try:
            return read_response(BufferedSocket(s))
        except (ConnectionResetError, AssertionError):
            return None


class AdminAllow(EgressdTestCase):
    def setUp(self):
        if not source_bindable("127.0.0.2"):
            self.skipTest("cannot bind 127.0.0.2 as a source address")

    def start(self, allow):
        self.admin_port = free_port()
        opt = f" allow={allow}" if allow else ""
        self.extra = f"admin 127.0.0.1:{self.admin_port}{opt}"
        e = Egressd(base_config("allow a.test\n", extra=self.extra))
        self.addCleanup(e.cleanup)
        e.start()
        wait_listening(self.admin_port)
        return e

    def refused(self, source="127.0.0.2"):
        r = admin_from(self.admin_port, source)
        self.assertIsNotNone(r, f"a client from {source} (inside allow=) was not served")
        self.assertEqual(r.status, 200, r)
        return metric_value(r.body.decode(), REFUSED)

    def test_outside_closed_at_accept_and_counted_inside_served(self):
        e = self.start("127.0.0.2/32")
        self.assertEqual(self.refused(), 0)
        for _ in range(3):
            self.assertIsNone(admin_from(self.admin_port, "127.0.0.1"),
                              "a client outside allow= got an answer")
        self.assertEqual(self.refused(), 3)
        # Closed before a byte is read: the peer sees EOF without sending anything.
        s = socket.create_connection(("127.0.0.1", self.admin_port), timeout=10)
        with contextlib.closing(s):
            self.assertEqual(s.recv(1), b"")
        self.assertEqual(self.refused(), 4)
        e.stop()

    def test_several_networks(self):
        e = self.start("10.0.0.0/8,127.0.0.1/32")
        self.assertIsNotNone(admin_from(self.admin_port, "127.0.0.1"))
        self.assertIsNone(admin_from(self.admin_port, "127.0.0.2"))
        self.assertEqual(self.refused("127.0.0.1"), 1)
        e.stop()

    def test_without_allow_everyone_is_served(self):
        e = self.start("")
        for src in ("127.0.0.1", "127.0.0.2"):
            r = admin_from(self.admin_port, src)
            self.assertIsNotNone(r, src)
            self.assertEqual(r.status, 200)
        self.assertEqual(metric_value(r.body.decode(), REFUSED), 0)
        e.stop()

    def test_reload_narrows_allow(self):
        e = self.start("127.0.0.0/8")
        self.assertIsNotNone(admin_from(self.admin_port, "127.0.0.1"))
        write_config(e, base_config("allow a.test\n",
                                    extra=f"admin 127.0.0.1:{self.admin_port} allow=127.0.0.2/32"))
        sighup_and_wait(e)
        wait_until(lambda: admin_from(self.admin_port, "127.0.0.1") is None, what="the narrowed allow=")
        self.assertGreaterEqual(self.refused(), 1)
        e.stop()

    def test_bad_cidr_is_a_config_error(self):
        e = Egressd(base_config("allow a.test\n", extra="admin 127.0.0.1:0 allow=127.0.0.1/33"))
        self.addCleanup(e.cleanup)
        e.start(wait=False)
        self.assertEqual(e.proc.wait(10), 1)
        self.assertIn("admin allow=", e.stderr())


if __name__ == "__main__":
    main()
