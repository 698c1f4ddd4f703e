"""Service memory: the RSS of a real ``monitor serve`` at 1M and at 10M records over HTTP.

    python benchmarks/service_memory.py [--records N] [--connections C] [--quick]
    ./dev bench service_memory [same options]

Starts the service of ``ingest_http.py`` (one uvicorn worker, SQLite in a temp dir, the
25-feature ``bench`` model with its reference and tumbling windows of 10,000 records, so
detection is on) and posts NDJSON batches of 1,000 distinct records back to back over C
keep-alive connections (default 2) until N records (default 10,000,000) have been sent.
The service's RSS (the uvicorn process and its window-evaluation child, from /proc) is
read after every million records.

Bodies are encoded once: 100 batches of realistic records, each sent again in later
rounds with its ids rewritten (``"req-`` -> ``"rNNNN-``, the same length), so every id is
distinct while the client spends almost no CPU on encoding and the service runs at full
speed. Timestamps repeat from round to round; the windows count records, so that is
harmless.

Before stopping the service it checks that ``/metrics`` counted every record sent.
Target: RSS growth between 1M and 10M records < 50 MB. Exit status 0 when the target and
the count check pass. ``--quick`` sends 200,000 records and reads RSS every 100,000: a
smoke run too short for the target.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import threading
import time
from pathlib import Path

import bench_support  # noqa: F401  (import path: the project first, benchmarks/ off it)
import yaml
from bench_support import http_bench as hb

TARGET_GROWTH_MB = 50.0
POOL = 100  # distinct batch bodies, reused with rewritten ids


class Sender:
    """Sends batch ``k`` of the run as pool body ``k % POOL`` with round ``k // POOL`` in its ids."""

    def __init__(self, port: int, pool: list[bytes], batches: int):
        self.port, self.pool, self.batches = port, pool, batches
        self.next_batch = itertools.count()
        self.done = 0  # batches answered 200
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        conn = hb.connect(self.port)
        while (k := next(self.next_batch)) < self.batches:
            body = self.pool[k % POOL].replace(b'"req-', f'"r{k // POOL:04d}-'.encode())
            status, answer = hb.post(conn, "/v1/records", body, "application/x-ndjson")
            with self.lock:
                if status == 200:
                    self.done += 1
                elif len(self.failures) < 5:
                    self.failures.append(f"{status}: {answer[:200]!r}")
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="records to send (default 10,000,000)")
    parser.add_argument("--connections", type=int, default=2, help="client connections, one thread each (default 2)")
    parser.add_argument("--quick", action="store_true", help="200,000 records: a smoke run")
    args = parser.parse_args(argv)
    records = 200_000 if args.quick else args.records
    every = 100_000 if args.quick else 1_000_000
    batches = records // hb.BATCH_SIZE
    assert records // POOL // hb.BATCH_SIZE < 10_000, "round numbers have four digits"
    print("\n".join(hb.machine()))
    print(f"command: python benchmarks/service_memory.py --records {records:,} --connections {args.connections}")
    with tempfile.TemporaryDirectory(prefix="service-memory-") as tmp:
        workdir = Path(tmp)
        port = hb.free_port()
        config = workdir / "config.yaml"
        config.write_text(yaml.safe_dump(hb.service_config(workdir, port), sort_keys=False))
        argv_ = [hb.PYTHON, "-m", "monitor.cli", "serve", "--config", str(config)]
        server = hb.Server("service", argv_, port, "/readyz", workdir / "service.log", dict(os.environ))
        pool = hb.RecordFactory().ndjson_batches(POOL)
        server.start()
        assert server.process is not None
        try:
            sender = Sender(port, pool, batches)
            threads = [threading.Thread(target=sender.run, daemon=True) for _ in range(args.connections)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            readings: dict[int, float] = {}
            print(f"{'records':>12} {'RSS MB':>8} {'records/s':>10}")
            mark = every
            while any(t.is_alive() for t in threads):
                time.sleep(0.05)
                sent = sender.done * hb.BATCH_SIZE
                if sent >= mark:
                    readings[mark] = hb.rss_mb(server.process.pid)
                    print(
                        f"{mark:>12,} {readings[mark]:>8.1f} {sent / (time.monotonic() - started):>10,.0f}", flush=True
                    )
                    mark += every
            sent = sender.done * hb.BATCH_SIZE
            if sent >= mark:
                readings[mark] = hb.rss_mb(server.process.pid)
                print(f"{mark:>12,} {readings[mark]:>8.1f}")
            counted = hb.accepted_metric(port)
        finally:
            code, _ = server.stop()
    print()
    for failure in sender.failures:
        print(f"refused batch: {failure}")
    first, last = readings.get(every), readings.get(max(readings, default=0))
    growth = (last - first) if first is not None and last is not None else float("nan")
    ok_growth = growth < TARGET_GROWTH_MB
    ok_count = counted == sent == records
    print(f"RSS at {every:,} records: {first or 0:.1f} MB; at {max(readings, default=0):,}: {last or 0:.1f} MB")
    print(f"RSS growth {growth:.1f} MB  target < {TARGET_GROWTH_MB:.0f} MB  {'PASS' if ok_growth else 'FAIL'}")
    print(f"records counted / sent / asked: {counted:,.0f} / {sent:,} / {records:,}  {'PASS' if ok_count else 'FAIL'}")
    # -15 after a clean shutdown: uvicorn raises the signal it caught again once it has shut down.
    print(f"service exit status at SIGTERM: {code}")
    return 0 if ok_count and (ok_growth or args.quick) else 1


if __name__ == "__main__":
    raise SystemExit(main())
