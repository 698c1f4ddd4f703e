"""Soak: a real service under valid traffic, hostile traffic and a slow webhook receiver.

    python benchmarks/soak.py [--minutes M] [--rate R] [--quick]
    ./dev bench soak [same options]

Starts ``monitor serve`` (one worker, SQLite in a temp dir) and, for ``--minutes``
(default 10; ``--quick``: 1), sends:

* valid traffic: model ``soak``, ``--rate`` complete records per second (default 1,000) in
  NDJSON batches of 100, every id distinct; the model's latency goes above and below its
  SLO every other window, so a latency alert fires and resolves all along and each change
  calls two webhooks;
* a webhook receiver that never finishes an answer (one byte every 0.2 s) and a healthy one;
* hostile traffic, each at a few requests per second or less, as outside testing found it
  (issue 15): partial records with 1,024 features of 1,000 characters (the join buffer);
  records whose prediction has 500 class names of 200 characters (the label buffer);
  uploads that stall half-way; records stamped in year 9999; batches of 1,000 unknown
  model names; rejected items of 1 MiB (dead letters); a process holding the SQLite write
  lock for 3 s every 30 s; a malformed reference upload. Hostile records go to a model of
  their own (``hostile``), so the valid model's count stays exact.

Before the clock starts, valid records are sent as fast as they are taken until the label
buffer holds its byte budget (``limits.label_buffer_bytes``, 48 MiB: ~120,000 predictions,
two minutes of traffic): that memory is the service's steady state by design, and growth
is judged from there (a first run without this warm-up grew 59.5 MB in 10 minutes, 50 of
them while the label buffer filled, then +9.6 MB in the last 5 minutes).

Every 30 s it prints the service's RSS (the uvicorn process and its window-evaluation
child), the 5xx answers so far and the valid records counted vs sent. Targets: RSS growth
after the first minute < 50 MB; no 5xx; the valid records counted exactly; the healthy
webhook receives deliveries while the slow one holds its connection. Exit status 0 when
every target passes.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import socket
import sqlite3
import string
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import bench_support  # noqa: F401  (import path: the project first, benchmarks/ off it)
import orjson
import yaml
from bench_support import http_bench as hb

MIB = 1024 * 1024
VALID, HOSTILE = "soak", "hostile"
FEATURES = {"amount": {"type": "numeric"}, "age": {"type": "numeric"}, "country": {"type": "categorical"}}
WINDOW = 5_000
BATCH = 100
RSS_BOUND_MB = 50.0


class Receivers:
    """Two webhook receivers on loopback: one answers at once, one trickles forever."""

    def __init__(self) -> None:
        self.healthy_port, self.slow_port = hb.free_port(), hb.free_port()
        self.delivered = 0
        self.slow_attempts = 0  # requests the slow receiver got
        self.slow_held = 0  # of which it is holding now
        self._stop = threading.Event()
        for port, handler in ((self.healthy_port, self._healthy), (self.slow_port, self._slow)):
            server = socket.create_server(("127.0.0.1", port))
            threading.Thread(target=self._accept, args=(server, handler), daemon=True).start()

    def _accept(self, server: socket.socket, handler: Callable[[socket.socket], None]) -> None:
        while not self._stop.is_set():
            conn, _ = server.accept()
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += conn.recv(65536)

    def _healthy(self, conn: socket.socket) -> None:
        with conn:
            self._read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            self.delivered += 1

    def _slow(self, conn: socket.socket) -> None:
        with conn:
            self._read_request(conn)
            self.slow_attempts += 1
            self.slow_held += 1
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
                while not self._stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(0.2)
            except OSError:  # the dispatcher gave up on us: as it should
                pass
            finally:
                self.slow_held -= 1


def service_config(workdir: Path, port: int, receivers: Receivers) -> dict:
    model = {
        "features": FEATURES,
        "prediction": {"kind": "binary"},
        "reference": {"from_first_records": 2_000},
        "window": {"kind": "count", "size": WINDOW},
        "latency": {"slo_ms": 50, "quantile": 0.5},
    }
    webhook = {"on": ["firing", "resolved"], "rules": ["slow-model"], "timeout_seconds": 2, "max_attempts": 3}
    return {
        "server": {"host": "127.0.0.1", "port": port, "log_level": "warning", "request_timeout_seconds": 5},
        "storage": {"url": f"sqlite:///{workdir / 'monitor.db'}", "flush_interval_seconds": 1.0},
        "unknown_models": "register",
        "limits": {"max_models": 10},
        "models": {VALID: model, HOSTILE: dict(model)},
        "alerts": {
            "rules": [{"name": "slow-model", "kind": "latency_slo", "models": [VALID], "for_windows": 1}],
            "webhooks": [
                {**webhook, "name": "healthy", "url": f"http://127.0.0.1:{receivers.healthy_port}/hook"},
                {**webhook, "name": "slow", "url": f"http://127.0.0.1:{receivers.slow_port}/hook"},
            ],
        },
    }


class Tally:
    """Answers by status (thread-safe) and the valid records sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.valid_sent = 0

    def add(self, status: int, valid: int = 0) -> None:
        with self._lock:
            self.statuses[status] += 1
            self.valid_sent += valid

    @property
    def server_errors(self) -> int:
        with self._lock:
            return sum(n for status, n in self.statuses.items() if status >= 500)


def post(
    port: int, path: str, body: bytes, content_type: str = "application/json", timeout: float = 30, method: str = "POST"
) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"content-type": content_type})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0  # refused or closed by the service: not an answer, not a 5xx
    finally:
        conn.close()


def valid_traffic(port: int, rate: float, stop: threading.Event, tally: Tally) -> None:
    """``rate`` records/s in batches of BATCH, latency above the SLO every other window."""
    rng = random.Random(1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = 0
    start = time.monotonic()
    while not stop.is_set():
        due = start + sent / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        slow_window = (sent // WINDOW) % 2 == 1
        lines = []
        for i in range(sent, sent + BATCH):
            record = {
                "model": VALID, "id": f"v{i}", "timestamp": time.time(),
                "inputs": {"amount": rng.gauss(100, 20), "age": rng.randint(18, 90), "country": rng.choice("ABCD")},
                "prediction": rng.random(), "latency_ms": rng.uniform(60, 90) if slow_window else rng.uniform(1, 9),
            }  # fmt: skip
            lines.append(orjson.dumps(record))
        conn.request("POST", "/v1/records", body=b"\n".join(lines), headers={"content-type": "application/x-ndjson"})
        response = conn.getresponse()
        accepted = orjson.loads(response.read()).get("accepted", 0) if response.status == 200 else 0
        tally.add(response.status, accepted)
        sent += BATCH


def warm_up(port: int, tally: Tally) -> int:
    """Valid records, as fast as they are taken, until the label buffer is 95% full; how many."""
    rng = random.Random(3)
    budget = 48 * MIB  # limits.label_buffer_bytes' default
    sent = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while gauge(port, "monitor_label_buffer_bytes") < 0.95 * budget:
        lines = []
        for i in range(sent, sent + 1_000):
            record = {
                "model": VALID, "id": f"w{i}", "timestamp": time.time(),
                "inputs": {"amount": rng.gauss(100, 20), "age": rng.randint(18, 90), "country": rng.choice("ABCD")},
                "prediction": rng.random(), "latency_ms": rng.uniform(1, 9),
            }  # fmt: skip
            lines.append(orjson.dumps(record))
        conn.request("POST", "/v1/records", body=b"\n".join(lines), headers={"content-type": "application/x-ndjson"})
        response = conn.getresponse()
        tally.add(response.status, orjson.loads(response.read()).get("accepted", 0) if response.status == 200 else 0)
        sent += 1_000
    return sent


def gauge(port: int, name: str) -> float:
    status, body = hb.request(port, "GET", "/metrics")
    match = re.search(rf"^{name} (\S+)$", body.decode(), re.M)
    return float(match.group(1)) if status == 200 and match else 0.0


def _text(n: int, rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters, k=n))


def hostile_traffic(port: int, db: Path, stop: threading.Event, tally: Tally) -> list[threading.Thread]:
    """One thread per kind of hostile client (module docstring)."""
    rng = random.Random(2)
    wide = orjson.dumps(
        {"model": HOSTILE, "id": "x", "inputs": {f"f{i:04d}_{_text(994, rng)}": 1 for i in range(1024)}}
    )
    classes = {f"c{i:03d}_{_text(196, rng)}": 1 / 500 for i in range(500)}
    counter = iter(range(10**9))

    def every(seconds: float, action: Callable[[], None]) -> Callable[[], None]:
        def loop() -> None:
            while not stop.wait(seconds):
                action()

        return loop

    def join_flood() -> None:
        tally.add(post(port, "/v1/records", wide.replace(b'"id":"x"', f'"id":"w{next(counter)}"'.encode())))

    def class_names() -> None:
        i = next(counter)
        record = {"model": HOSTILE, "id": f"p{i}", "inputs": {"amount": 1, "age": 2, "country": "A"},
                  "prediction": classes}  # fmt: skip
        tally.add(post(port, "/v1/records", orjson.dumps(record)))

    def stalled_upload() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"POST /v1/records HTTP/1.1\r\nHost: m\r\ncontent-type: application/json\r\n"
                             b"content-length: 1048576\r\n\r\n" + b" " * (512 * 1024))  # fmt: skip
                sock.recv(4096)  # the request deadline answers 408 and closes
        except OSError:
            pass

    def far_future() -> None:
        record = {"model": VALID, "id": f"t{next(counter)}", "timestamp": "9999-12-31T00:00:00Z",
                  "inputs": {"amount": 1, "age": 2, "country": "A"}, "prediction": 0.5}  # fmt: skip
        tally.add(post(port, "/v1/records", orjson.dumps(record)))

    def unknown_models() -> None:
        batch = [{"model": f"m{next(counter)}", "inputs": {"a": 1}, "prediction": 0} for _ in range(1_000)]
        tally.add(post(port, "/v1/records", orjson.dumps(batch)))

    def big_rejects() -> None:
        tally.add(post(port, "/v1/records", orjson.dumps({"model": HOSTILE, "junk": "x" * MIB})))

    def sqlite_lock() -> None:
        with sqlite3.connect(db, timeout=30, isolation_level=None) as conn:
            conn.execute("BEGIN IMMEDIATE")
            time.sleep(3)
            conn.execute("ROLLBACK")

    def bad_reference() -> None:
        body = b'{"inputs": {"amount": 1}}\n{"inputs": {"amount": 2}}\n{"inputs": [null]}\n'
        status = post(port, f"/v1/models/{HOSTILE}/reference", body, "application/x-ndjson", method="PUT")
        tally.add(status)

    kinds = {
        "join_flood": every(1.0, join_flood), "class_names": every(0.5, class_names),
        "stalled_upload": every(0.1, stalled_upload), "far_future": every(5.0, far_future),
        "unknown_models": every(10.0, unknown_models), "big_rejects": every(2.0, big_rejects),
        "sqlite_lock": every(30.0, sqlite_lock), "bad_reference": every(10.0, bad_reference),
    }  # fmt: skip
    threads = [threading.Thread(target=loop, name=name, daemon=True) for name, loop in kinds.items()]
    threads += [threading.Thread(target=every(0.1, stalled_upload), daemon=True) for _ in range(3)]  # 4 at once
    for thread in threads:
        thread.start()
    return threads


def accepted(port: int) -> int:
    status, body = hb.request(port, "GET", "/metrics")
    match = re.search(rf'^monitor_records_accepted_total{{model="{VALID}",source="http"}} (\S+)$', body.decode(), re.M)
    return int(float(match.group(1))) if status == 200 and match else -1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1_000.0, help="valid records per second")
    parser.add_argument("--quick", action="store_true", help="one minute")
    args = parser.parse_args(argv)
    minutes = 1.0 if args.quick else args.minutes
    receivers = Receivers()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = Path(tmp)
        port = hb.free_port()
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(service_config(workdir, port, receivers), sort_keys=False))
        argv = [hb.PYTHON, "-m", "monitor.cli", "serve", "--config", str(path)]
        server = hb.Server("service", argv, port, "/readyz", workdir / "service.log", dict(os.environ))
        server.start()
        assert server.process is not None
        stop, tally = threading.Event(), Tally()
        warm = warm_up(port, tally)
        print(
            f"warm-up: {warm:,} valid records, label buffer {gauge(port, 'monitor_label_buffer_bytes') / MIB:.1f} MiB"
        )
        threads = [threading.Thread(target=valid_traffic, args=(port, args.rate, stop, tally), daemon=True)]
        threads[0].start()
        threads += hostile_traffic(port, workdir / "monitor.db", stop, tally)
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        print(f"{'s':>5} {'RSS MB':>8} {'5xx':>5} {'valid counted/sent':>22} {'webhooks ok':>12} {'slow tried':>10}")
        while (elapsed := time.monotonic() - started) < minutes * 60:
            time.sleep(min(30.0, minutes * 60 - elapsed))
            elapsed = time.monotonic() - started
            samples.append((elapsed, hb.rss_mb(server.process.pid)))
            counted = f"{accepted(port):,}/{tally.valid_sent:,}"
            print(f"{elapsed:5.0f} {samples[-1][1]:8.1f} {tally.server_errors:5d} {counted:>22} "
                  f"{receivers.delivered:12d} {receivers.slow_attempts:10d}", flush=True)  # fmt: skip
        stop.set()
        threads[0].join(30)  # the valid sender finishes its batch in flight
        time.sleep(3)  # counts of the last batches reach the metrics at once; this is for the log
        final_counted, final_sent = accepted(port), tally.valid_sent
        server.stop()
    after_first_minute = [rss for at, rss in samples if at >= 60] or [samples[-1][1]]
    growth = max(after_first_minute) - after_first_minute[0]
    results = [
        ("RSS growth after the first minute", f"{growth:.1f} MB", f"< {RSS_BOUND_MB:.0f} MB", growth < RSS_BOUND_MB),
        ("5xx answers", str(tally.server_errors), "0", tally.server_errors == 0),
        ("valid records counted / sent", f"{final_counted:,} / {final_sent:,}", "equal", final_counted == final_sent),
        ("healthy webhook deliveries", str(receivers.delivered), "> 0", receivers.delivered > 0),
        # The precondition of the one above: the slow receiver was called, and held its calls.
        ("slow webhook receiver's calls", str(receivers.slow_attempts), "> 0", receivers.slow_attempts > 0),
    ]
    print(f"\nanswers by status: {dict(sorted(tally.statuses.items()))}")
    for name, value, target, ok in results:
        print(f"{name:<36} {value:>22}  target {target:<8} {'PASS' if ok else 'FAIL'}")
    return 0 if all(ok for *_, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
