"""What ``MonitorClient.log`` costs the caller: per-call time of 100,000 calls.

    python benchmarks/client_log.py [--calls N]

The client points at a loopback port nothing listens on, with a queue large enough for
every call, so the figure is the caller's side alone (building the record, the lock, the
queue) while the sender thread retries in the background. Target: p50 < 10 us.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from collections.abc import Sequence

import bench_support  # noqa: F401  # puts the project first on the import path

from monitor.client import MonitorClient


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args(argv)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = MonitorClient(f"http://127.0.0.1:{port}", queue_size=args.calls, max_backoff_seconds=1.0)
    inputs = {"car_value": 39_811.0, "salary_range": "40K - 60K €", "loan_length": 19.0, "driver_tenure": 0.21}
    took = []
    clock = time.perf_counter_ns
    for i in range(args.calls):
        start = clock()
        client.log("car_loan", inputs, 0.99, id=str(i), latency_ms=1.5)
        took.append(clock() - start)
    took.sort()
    p50, p99 = took[len(took) // 2] / 1e3, took[int(len(took) * 0.99)] / 1e3
    ok = p50 < 10
    print(
        f"log(): p50 {p50:.2f} us, p99 {p99:.2f} us, mean {statistics.mean(took) / 1e3:.2f} us over {args.calls:,} calls"
    )
    print(f"{'PASS' if ok else 'FAIL'}  p50 < 10 us; dropped {client.stats['dropped']}")
    client.close(timeout=0)
    print(json.dumps({"p50_us": p50, "p99_us": p99}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
