#!/usr/bin/env python3
"""Smoke of the load benchmark (bench/load.sh --smoke).

Runs the real script against the real binary (EGRESSD_BIN) with 1-second runs,
one repeat, a 16 MiB file and 100 idle tunnels, and checks that it printed one
complete markdown table: every row a-f, cu and c2-c4 present, egressd's column numeric in
every row, every other cell either numeric or one of the documented markers.
No timing assertions: the numbers of a smoke run mean nothing.

The smoke needs none of the Debian bench packages: without nginx it uses its
Python origin, without wrk its own C load generator, and proxies that are not
installed show "n/a".
"""
import os
import re
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get("EGRESSD_SOURCE") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("EGRESSD_BIN") or os.path.join(SOURCE, "build", "egressd")

ROWS = [
    "a. keep-alive req/s",
    "a. p50 latency, ms",
    "a. p99 latency, ms",
    "a. proxy CPU µs/req",
    "b. Connection: close req/s",
    "b. proxy CPU µs/req",
    "c. tunnel MB/s, plain HTTP inside",
    "c. proxy CPU s/GB, plain inside",
    "c. tunnel MB/s, TLS inside",
    "c. proxy CPU s/GB, TLS inside",
    "cu. tunnel MB/s, upload (plain HTTP inside)",
    "cu. proxy CPU s/GB, upload in a tunnel",
    "c2. forward MB/s, download (Content-Length)",
    "c2. proxy CPU s/GB, download",
    "c3. forward MB/s, upload (Content-Length)",
    "c3. proxy CPU s/GB, upload",
    "c4. forward MB/s, chunked download",
    "c4. proxy CPU s/GB, chunked download",
    "d. CONNECT+GET+close cycles/s",
    "d. proxy CPU µs/cycle",
    "e0. KiB RSS per tunnel waiting for its ClientHello",
    "e. KiB RSS per idle tunnel",
    "f. denied req/s (403, keep-alive)",
    "f. proxy CPU µs/req",
]
COLUMNS = ["direct", "HAProxy", "Squid", "ATS", "tinyproxy", "egressd",
           "egressd/Squid", "egressd/ATS", "egressd/tinyproxy", "egressd/HAProxy", "egressd/direct"]
NUMBER = re.compile(r"^-?[0-9][0-9,]*(\.[0-9]+)?×?$")
MARKERS = {"—", "n/a", "err", "skipped"}
# Reference rows that only HAProxy fills: egressd's cell is "—" there.
REFERENCE_ROWS = [
    "d. (reference) TCP relay, connect+GET+close cycles/s",
    "d. (reference) TCP relay CPU µs/cycle",
]


def parse_table(text):
    """Returns (header cells, {row label: cells}) of the first markdown table."""
    header, rows = None, {}
    for line in text.splitlines():
        if not line.startswith("|"):
            if header is not None and rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif set(cells[0]) <= {"-"} and cells[0]:
            continue
        else:
            rows[cells[0]] = cells[1:]
    return header, rows


SANITIZED = os.environ.get("EGRESSD_SANITIZE", "").strip().upper() not in ("", "OFF", "0", "FALSE", "NO")


@unittest.skipIf(SANITIZED, "a benchmark script's smoke: under a sanitizer build its numbers mean "
                 "nothing and load.sh does not read egressd's stderr, so a report would go unseen; "
                 "the same traffic runs under ASan in the other integration tests")
class BenchSmoke(unittest.TestCase):
    def test_smoke_prints_a_complete_table(self):
        self.assertTrue(os.access(BINARY, os.X_OK), f"no egressd binary at {BINARY}")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "latest.md")
            env = dict(os.environ, EGRESSD_BIN=BINARY, BENCH_OUT=out)
            for k in ("BENCH_REPEAT", "BENCH_SECONDS", "BENCH_FILE_MB", "BENCH_IDLE",
                      "BENCH_PROXIES", "BENCH_PERF", "BENCH_KEEP"):
                env.pop(k, None)  # the smoke's own settings, whatever the caller has
            proc = subprocess.run(
                ["bash", os.path.join(SOURCE, "bench", "load.sh"), "--smoke"],
                env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=240)
            log = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
            self.assertEqual(proc.returncode, 0, log)
            self.assertTrue(os.path.exists(out), log)
            with open(out, encoding="utf-8") as f:
                table = f.read()
        # The same table goes to stdout and to BENCH_OUT.
        self.assertIn("| a. keep-alive req/s |", proc.stdout)

        header, rows = parse_table(table)
        self.assertIsNotNone(header, table)
        self.assertEqual(header[1:], COLUMNS, table)
        for label in ROWS:
            self.assertIn(label, rows, f"row {label!r} missing\n{table}\n{log}")
            cells = rows[label]
            self.assertEqual(len(cells), len(COLUMNS), f"row {label!r}: {cells}")
            egressd = cells[COLUMNS.index("egressd")]
            self.assertRegex(egressd, NUMBER,
                             f"egressd's cell in {label!r} is {egressd!r}\n{table}\n{log}")
            for col, cell in zip(COLUMNS, cells):
                self.assertTrue(NUMBER.match(cell) or cell in MARKERS,
                                f"{col} in {label!r} is {cell!r}\n{table}")
        for label in REFERENCE_ROWS:
            self.assertIn(label, rows, f"row {label!r} missing\n{table}\n{log}")
            cells = rows[label]
            self.assertEqual(len(cells), len(COLUMNS), f"row {label!r}: {cells}")
            self.assertEqual(cells[COLUMNS.index("egressd")], "—", label)
            for col, cell in zip(COLUMNS, cells):
                self.assertTrue(NUMBER.match(cell) or cell in MARKERS,
                                f"{col} in {label!r} is {cell!r}\n{table}")
        self.assertEqual(set(rows), set(ROWS) | set(REFERENCE_ROWS), table)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
