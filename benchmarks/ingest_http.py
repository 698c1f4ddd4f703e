"""HTTP ingestion: the service's ``POST /v1/records`` against a bare FastAPI endpoint.

    python benchmarks/ingest_http.py [--batches N] [--seconds S] [--rate R] [--connections C]
                                     [--checkpoints on|off|strict] [--quick]
    ./dev bench ingest_http [same options]

Starts two real servers in subprocesses, each uvicorn with one worker on a free
loopback port, with uvicorn's default event loop and HTTP implementation:

* the service: ``python -m monitor.cli serve --config <tmp config>``, SQLite in a temp
  dir, log level warning, one model ``bench`` with 25 features (20 numeric + 5
  categorical) and a binary prediction;
* the framework ceiling: ``benchmarks/bare_endpoint.py``, whose ``POST /bare`` reads
  the body, parses each NDJSON line with orjson and answers ``{"count": n}``.

and measures, for each, with the same client:

(a) throughput: NDJSON batches of 1,000 realistic records (string id, ISO 8601
    timestamp, 25 inputs, prediction, latency_ms; every id distinct) posted back to
    back over keep-alive ``http.client`` connections, after a warm-up; all bodies are
    encoded before the clock starts. 1,000 batches by default: the service's label
    buffer (its 48 MiB byte budget: ~120,000 of these predictions) is full for most of the run, its steady state. With 1 and with 2 client threads (one connection
    each); the better figure per server counts. The four runs go service, bare, bare,
    service so that a drift in machine load hits both servers alike.
(b) single-record latency at a fixed rate (500 requests/s by default) for S seconds,
    open loop: request i is due at t0 + i/rate and goes out on keep-alive connection
    i mod C (``--connections``, default 4, one client thread each: a model server's
    small connection pool; with one connection the client's own turnaround
    serialises the requests and the service cannot keep 500/s), and its latency is
    measured from that due time, so time spent queued behind a slow request counts
    (no coordinated omission). Service time (from the actual send) and the send lag
    (actual send - due time: the connection was still busy, or the client late) are
    reported as well.

Server CPU time (utime + stime of the server process and of its child process that
evaluates windows, from /proc) is reported per 1,000 records and per request: on a
shared machine it is steadier than wall-clock rates. Before stopping the servers (SIGTERM) the script reads the service's
``/metrics`` and checks that ``monitor_records_accepted_total{model="bench",
source="http"}`` equals the number of records sent, so dropped records cannot pass
unnoticed. Targets: service >= 100,000 records/s batched; single-record p99 <= 5 ms
at 500 requests/s; service throughput >= 0.25 x bare. Exit status 0 when every
target and check passes, 1 otherwise.

``--checkpoints``: the service's state checkpoints (monitor/checkpointer.py) ``on`` (the
default config: every 5 s), ``off`` (``storage.checkpoint_seconds: null``) or ``strict``
(``storage.ack_after_checkpoint``: each answer waits for a checkpoint holding its records).

``--quick`` is a smoke run of a few seconds (20 batches, 1 s of single records): it
checks that everything works; its figures are too short to judge the targets by.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HOST = "127.0.0.1"
MODEL = "bench"
BATCH_SIZE = 1_000
NDJSON = "application/x-ndjson"
JSON = "application/json"

NUMERIC_FEATURES = tuple(f"num_{i:02d}" for i in range(20))
CATEGORIES: dict[str, tuple[str, ...]] = {
    "country": ("DE", "FR", "GB", "US", "ES", "IT", "NL", "PL"),
    "device": ("ios", "android", "web", "tablet"),
    "channel": ("organic", "paid_search", "social", "email", "referral"),
    "plan": ("free", "basic", "pro", "enterprise"),
    "payment_method": ("card", "paypal", "sepa", "invoice", "apple_pay", "google_pay"),
}
# Per-feature location and scale, so the numbers look like real columns (amounts, ratios, counts).
_NUM_LOC = np.linspace(-5.0, 5_000.0, len(NUMERIC_FEATURES))
_NUM_SCALE = np.geomspace(0.01, 2_000.0, len(NUMERIC_FEATURES))

TARGET_RECORDS_PER_S = 100_000
TARGET_P99_MS = 5.0
TARGET_BARE_RATIO = 0.25


# -- records ------------------------------------------------------------------------------
class RecordFactory:
    """Realistic, distinct records for the ``bench`` model (ids never repeat in a run)."""

    def __init__(self, seed: int = 20261125):
        self.rng = np.random.default_rng(seed)
        self.next_id = 0
        self.base_time = time.time() - 3_600.0

    def records(self, n: int) -> list[dict]:
        rng = self.rng
        numbers = np.round(rng.normal(size=(n, len(NUMERIC_FEATURES))) * _NUM_SCALE + _NUM_LOC, 4).tolist()
        choices = {name: rng.integers(0, len(values), size=n).tolist() for name, values in CATEGORIES.items()}
        predictions = rng.integers(0, 2, size=n).tolist()
        latencies = np.round(rng.gamma(2.0, 2.5, size=n), 3).tolist()
        out = []
        for j in range(n):
            i = self.next_id + j
            inputs = dict(zip(NUMERIC_FEATURES, numbers[j], strict=True))
            for name, values in CATEGORIES.items():
                inputs[name] = values[choices[name][j]]
            stamp = dt.datetime.fromtimestamp(self.base_time + i * 0.001, dt.UTC)
            out.append(
                {
                    "model": MODEL,
                    "id": f"req-{i:09d}-{rng_hex(i)}",
                    "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "inputs": inputs,
                    "prediction": predictions[j],
                    "latency_ms": latencies[j],
                }
            )
        self.next_id += n
        return out

    def ndjson_batches(self, batches: int, size: int = BATCH_SIZE) -> list[bytes]:
        return [b"\n".join(orjson.dumps(r) for r in self.records(size)) + b"\n" for _ in range(batches)]

    def single_bodies(self, n: int) -> list[bytes]:
        return [orjson.dumps(r) for r in self.records(n)]


def rng_hex(i: int) -> str:
    """A request-id-like suffix (deterministic, so runs are comparable)."""
    return f"{(i * 2_654_435_761) & 0xFFFFFFFF:08x}"


# -- servers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


REFERENCE_ROWS = 20_000
WINDOW_SIZE = 10_000


def service_config(workdir: Path, port: int, checkpoints: str = "on") -> dict:
    """The service with its detectors on: a reference of 20,000 records of the same
    distribution (records-shaped JSONL), tumbling windows of 10,000 records; state
    checkpoints ``on`` (every 5 s, the default), ``off`` or ``strict`` (acks wait for them)."""
    features = {name: {"type": "numeric"} for name in NUMERIC_FEATURES}
    features.update({name: {"type": "categorical"} for name in CATEGORIES})
    reference = workdir / "reference.jsonl"
    reference.write_bytes(b"\n".join(orjson.dumps(r) for r in RecordFactory(seed=7).records(REFERENCE_ROWS)) + b"\n")
    model = {
        "features": features,
        "prediction": {"kind": "binary"},
        "reference": {"file": str(reference)},
        "window": {"kind": "count", "size": WINDOW_SIZE},
    }
    storage: dict = {"url": f"sqlite:///{workdir / 'monitor.db'}"}
    if checkpoints == "off":
        storage["checkpoint_seconds"] = None
    elif checkpoints == "strict":
        storage["ack_after_checkpoint"] = True
    return {
        "server": {"host": HOST, "port": port, "workers": 1, "log_level": "warning"},
        "storage": storage,
        "models": {MODEL: model},
    }


def request(port: int, method: str, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Server:
    """A server subprocess on a free loopback port; its output goes to a log file."""

    def __init__(self, name: str, argv: list[str], port: int, ready_path: str, log_path: Path, env: dict[str, str]):
        self.name, self.argv, self.port, self.ready_path = name, argv, port, ready_path
        self.log_path, self.env = log_path, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if request(self.port, "GET", self.ready_path, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return process_cpu_seconds(self.process.pid)

    def stop(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM, then wait: ``(exit status, seconds to exit)``."""
        assert self.process is not None
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# -- client -------------------------------------------------------------------------------
def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) and of its live child processes (the
    service's evaluation and Kafka consumer children), so that work moved to a child still
    counts."""
    return sum(_own_cpu_seconds(p) for p in [pid, *_children(pid)])


def _own_cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # exited since it was listed
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from each thread's /proc children list)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            kids = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            out += [kid, *_children(kid)]
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its live descendants, in MB (from /proc)."""
    total = 0
    for each in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M)
        total += int(match.group(1)) if match else 0
    return total / 1024


def connect(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def post(conn: http.client.HTTPConnection, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    # A bytes body goes out in the same send() as the headers (http.client joins them).
    conn.request("POST", path, body=body, headers={"Content-Type": content_type})
    resp = conn.getresponse()
    return resp.status, resp.read()


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Throughput:
    threads: int
    records: int
    seconds: float
    server_cpu: float
    client_cpu: float
    responses: list[tuple[int, bytes]] = field(repr=False)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.server_cpu / self.records * 1e6


def run_batches(server: Server, path: str, warmup: list[bytes], bodies: list[bytes], threads: int) -> Throughput:
    """Warm up on one connection, then post ``bodies`` back to back from ``threads`` threads."""
    responses: list[tuple[int, bytes]] = [(0, b"")] * (len(warmup) + len(bodies))
    conn = connect(server.port)
    for i, body in enumerate(warmup):
        responses[i] = post(conn, path, body, NDJSON)
    conn.close()
    conns = [connect(server.port) for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []
    offset = len(warmup)

    def worker(k: int) -> None:
        try:
            c = conns[k]
            barrier.wait()
            for i in range(k, len(bodies), threads):
                responses[offset + i] = post(c, path, bodies[i], NDJSON)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    cpu0, ccpu0 = server.cpu_seconds(), client_cpu()
    barrier.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    cpu1, ccpu1 = server.cpu_seconds(), client_cpu()
    for c in conns:
        c.close()
    if errors:
        raise RuntimeError(f"client thread failed against {server.name}: {errors[0]!r}") from errors[0]
    return Throughput(threads, len(bodies) * BATCH_SIZE, elapsed, cpu1 - cpu0, ccpu1 - ccpu0, responses)


@dataclass
class Latency:
    rate: float
    latency: np.ndarray  # from the due time (includes queueing), seconds
    service: np.ndarray  # from the actual send, seconds
    lag: np.ndarray  # actual send - due time, seconds
    achieved_rate: float
    server_cpu: float
    responses: list[tuple[int, bytes]] = field(repr=False)

    def ms(self, which: str, q: float) -> float:
        return float(np.percentile(getattr(self, which), q)) * 1e3

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu / len(self.latency) * 1e6


def run_open_loop(
    server: Server, path: str, bodies: list[bytes], rate: float, warmup: int, connections: int
) -> Latency:
    """Request i is due at t0 + i/rate (open loop) and goes out on keep-alive connection
    i mod ``connections``, each served by its own client thread."""
    n = len(bodies)
    due = time.perf_counter() + 0.05 + np.arange(n) / rate
    sent = np.zeros(n)
    done = np.zeros(n)
    responses: list[tuple[int, bytes]] = [(0, b"")] * n
    conns = [connect(server.port) for _ in range(connections)]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            c = conns[k]
            for i in range(k, n, connections):
                delay = due[i] - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent[i] = time.perf_counter()
                responses[i] = post(c, path, bodies[i], JSON)
                done[i] = time.perf_counter()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(connections)]
    for w in workers:
        w.start()
    # Server CPU from the first timed request's due time to the end.
    delay = due[warmup] - time.perf_counter() if warmup < n else 0.0
    if delay > 0:
        time.sleep(delay)
    cpu0 = server.cpu_seconds()
    for w in workers:
        w.join()
    cpu1 = server.cpu_seconds()
    for c in conns:
        c.close()
    if errors:
        raise RuntimeError(f"client thread failed against {server.name}: {errors[0]!r}") from errors[0]
    m = slice(warmup, n)
    achieved = (n - warmup) / (done[m].max() - due[warmup])
    return Latency(rate, (done - due)[m], (done - sent)[m], (sent - due)[m], achieved, cpu1 - cpu0, responses)


# -- checks ---------------------------------------------------------------------------------
def count_items(responses: list[tuple[int, bytes]], key: str) -> tuple[int, list[str]]:
    """Sum ``key`` over the answers; list what is wrong (status, rejections)."""
    total, problems = 0, []
    for i, (status, data) in enumerate(responses):
        if status != 200:
            problems.append(f"request {i}: HTTP {status}: {data[:200]!r}")
            continue
        answer = orjson.loads(data)
        total += answer[key]
        if answer.get("rejected") or answer.get("duplicates"):
            problems.append(f"request {i}: {answer.get('rejected')} rejected, {answer.get('duplicates')} duplicates")
    return total, problems[:5]


ACCEPTED_RE = re.compile(rf'^monitor_records_accepted_total\{{model="{MODEL}",source="http"\}} (\S+)$', re.MULTILINE)


def accepted_metric(port: int) -> float | None:
    status, data = request(port, "GET", "/metrics")
    if status != 200:
        return None
    match = ACCEPTED_RE.search(data.decode())
    return float(match.group(1)) if match else 0.0


def stored_accepted(db_path: Path) -> int | str:
    """What the service persisted at shutdown for (bench, http), read with the stdlib."""
    try:
        with sqlite3.connect(db_path) as db:
            row = db.execute(
                "SELECT accepted FROM record_counts WHERE model = ? AND source = 'http'", (MODEL,)
            ).fetchone()
        return int(row[0]) if row else 0
    except sqlite3.Error as exc:
        return f"unreadable ({exc})"


# -- report ---------------------------------------------------------------------------------
def machine() -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio (uvloop not installed)"
    http_impl = "httptools" if importlib.util.find_spec("httptools") else "h11 (httptools not installed)"

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {cores} cores ({usable} usable), CPU {model}, {platform.system()} {platform.release()}",
        f"python: {platform.python_version()} ({platform.python_implementation()}), "
        f"uvicorn {version('uvicorn')}, fastapi {version('fastapi')}, starlette {version('starlette')}, "
        f"orjson {version('orjson')}",
        f"uvicorn defaults (both servers): loop {loop}, http {http_impl}, 1 worker, loopback",
        f"load average at start: {load}",
    ]


def table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("figure", "service", "bare", "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = []
    for k, row in enumerate([header, *rows]):
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 4)]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, help="timed batches of 1,000 records per run (default 1,000; quick: 20)")
    parser.add_argument("--seconds", type=float, help="seconds of single-record requests (default 5; quick: 1)")
    parser.add_argument("--rate", type=float, default=500.0, help="single-record requests per second (default 500)")
    parser.add_argument(
        "--connections", type=int, default=4, help="keep-alive connections for single records (default 4)"
    )
    parser.add_argument(
        "--checkpoints", choices=("on", "off", "strict"), default="on",
        help="state checkpoints: on (every 5 s, default), off, or strict (answers wait for them)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds; too short for the targets")
    args = parser.parse_args(argv)
    batches = args.batches if args.batches is not None else (20 if args.quick else 1_000)
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 5.0)
    warmup_batches = max(2, batches // 10)
    warmup_singles = int(args.rate * (0.2 if args.quick else 0.5))
    if batches < 1 or seconds <= 0 or args.rate <= 0 or args.connections < 1:
        parser.error("--batches, --seconds, --rate and --connections must be positive")

    for line in machine():
        print(line)
    command = "python benchmarks/ingest_http.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"command: {command.strip()}")
    started = time.perf_counter()

    factory = RecordFactory()
    sample = factory.ndjson_batches(1, 100)[0]
    print(
        f"records: model {MODEL!r}, {len(NUMERIC_FEATURES)} numeric + {len(CATEGORIES)} categorical features, "
        f"binary prediction, ~{len(sample) / 100:.0f} bytes per NDJSON line; batches of {BATCH_SIZE:,}, "
        f"{batches} timed after {warmup_batches} warm-up; single records at {args.rate:g}/s for {seconds:g} s "
        f"after {warmup_singles} warm-up requests, over {args.connections} connection(s); "
        f"state checkpoints {args.checkpoints}"
    )
    print()

    # Client threads spend their time in socket calls; let one that wakes up take the GIL
    # quickly rather than after the default 5 ms, so client-side lag stays small.
    sys.setswitchinterval(0.0005)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}  # the config file alone decides
    with tempfile.TemporaryDirectory(prefix="bench-ingest-http-") as tmp:
        workdir = Path(tmp)
        service_port, bare_port = free_port(), free_port()
        config_path = workdir / "bench.yaml"
        config = service_config(workdir, service_port, args.checkpoints)
        config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        service = Server(
            "service",
            [PYTHON, "-m", "monitor.cli", "serve", "--config", str(config_path)],
            service_port, "/readyz", workdir / "service.log", env,
        )  # fmt: skip
        bare = Server(
            "bare",
            [PYTHON, str(ROOT / "benchmarks" / "bare_endpoint.py"), "--host", HOST, "--port", str(bare_port)],
            bare_port, "/healthz", workdir / "bare.log", env,
        )  # fmt: skip
        try:
            progress("starting the service and the bare endpoint")
            service.start()
            bare.start()
            return measure(
                args, service, bare, workdir / "monitor.db", factory, batches, warmup_batches, seconds,
                warmup_singles, started,
            )  # fmt: skip
        finally:
            service.kill()
            bare.kill()


def measure(
    args: argparse.Namespace,
    service: Server,
    bare: Server,
    service_db: Path,
    factory: RecordFactory,
    batches: int,
    warmup_batches: int,
    seconds: float,
    warmup_singles: int,
    started: float,
) -> int:
    svc_path, bare_path = "/v1/records", "/bare"
    sent_service = 0
    sent_bare = 0
    checks: list[tuple[str, bool, str]] = []
    service_answers: list[tuple[int, bytes]] = []
    bare_answers: list[tuple[int, bytes]] = []
    single_service_answers: list[tuple[int, bytes]] = []
    single_bare_answers: list[tuple[int, bytes]] = []

    def batched(server: Server, path: str, warm: list[bytes], bodies: list[bytes], threads: int) -> Throughput:
        progress(f"{server.name}: {len(warm) + len(bodies)} batches of {BATCH_SIZE:,}, {threads} client thread(s)")
        return run_batches(server, path, warm, bodies, threads)

    # (a) throughput, in the order service, bare, bare, service.
    progress("encoding batches (1 client thread)")
    warm1, bodies1 = factory.ndjson_batches(warmup_batches), factory.ndjson_batches(batches)
    s1 = batched(service, svc_path, warm1, bodies1, 1)
    b1 = batched(bare, bare_path, warm1, bodies1, 1)
    del warm1, bodies1
    progress("encoding batches (2 client threads)")
    warm2, bodies2 = factory.ndjson_batches(warmup_batches), factory.ndjson_batches(batches)
    b2 = batched(bare, bare_path, warm2, bodies2, 2)
    s2 = batched(service, svc_path, warm2, bodies2, 2)
    del warm2, bodies2
    for result in (s1, s2):
        sent_service += len(result.responses) * BATCH_SIZE
        service_answers += result.responses
    for result in (b1, b2):
        sent_bare += len(result.responses) * BATCH_SIZE
        bare_answers += result.responses

    # (b) single records at a fixed rate, open loop.
    progress("encoding single records")
    singles = factory.single_bodies(warmup_singles + int(round(args.rate * seconds)))
    progress(f"service: {len(singles)} single records at {args.rate:g}/s")
    ls = run_open_loop(service, svc_path, singles, args.rate, warmup_singles, args.connections)
    progress(f"bare: {len(singles)} single records at {args.rate:g}/s")
    lb = run_open_loop(bare, bare_path, singles, args.rate, warmup_singles, args.connections)
    sent_service += len(singles)
    sent_bare += len(singles)
    single_service_answers, single_bare_answers = ls.responses, lb.responses

    # Integrity: every record answered as accepted, and counted by the service's metrics.
    answered_service, problems_s = count_items(service_answers + single_service_answers, "accepted")
    answered_bare, problems_b = count_items(bare_answers + single_bare_answers, "count")
    metric = accepted_metric(service.port)
    progress("stopping the servers (SIGTERM)")
    code_s, secs_s = service.stop()
    code_b, secs_b = bare.stop()
    stored = stored_accepted(service_db)

    # -- report --
    best_s = max((s1, s2), key=lambda r: r.records_per_s)
    best_b = max((b1, b2), key=lambda r: r.records_per_s)
    ratio = best_s.records_per_s / best_b.records_per_s

    def rate_row(label: str, s: Throughput, b: Throughput) -> tuple[str, str, str, str]:
        return (label, f"{s.records_per_s:,.0f}", f"{b.records_per_s:,.0f}", f"{s.records_per_s / b.records_per_s:.2f}")

    def num_row(label: str, s: float, b: float, fmt: str = "{:.2f}") -> tuple[str, str, str, str]:
        return (label, fmt.format(s), fmt.format(b), f"{s / b:.2f}" if b else "-")

    r = f"{args.rate:g}/s"
    rows = [
        rate_row("batched NDJSON, 1 client thread (records/s)", s1, b1),
        rate_row("batched NDJSON, 2 client threads (records/s)", s2, b2),
        (
            "batched NDJSON, best (records/s)",
            f"{best_s.records_per_s:,.0f}",
            f"{best_b.records_per_s:,.0f}",
            f"{ratio:.2f}",
        ),
        num_row(
            "server CPU per 1,000 records, batched (ms)",
            min(s1.cpu_ms_per_1000, s2.cpu_ms_per_1000),
            min(b1.cpu_ms_per_1000, b2.cpu_ms_per_1000),
        ),
        num_row(f"single record @{r}: latency p50 (ms)", ls.ms("latency", 50), lb.ms("latency", 50)),
        num_row(f"single record @{r}: latency p99 (ms)", ls.ms("latency", 99), lb.ms("latency", 99)),
        num_row(f"single record @{r}: latency max (ms)", ls.ms("latency", 100), lb.ms("latency", 100)),
        num_row(f"single record @{r}: service time p50 (ms)", ls.ms("service", 50), lb.ms("service", 50)),
        num_row(f"single record @{r}: service time p99 (ms)", ls.ms("service", 99), lb.ms("service", 99)),
        num_row(f"single record @{r}: achieved rate (req/s)", ls.achieved_rate, lb.achieved_rate, "{:.0f}"),
        num_row("server CPU per single-record request (us)", ls.cpu_us_per_request, lb.cpu_us_per_request, "{:.0f}"),
    ]
    print(table(rows))
    print("ratio = service / bare. latency: from each request's due time (open loop, queueing included);")
    print("service time: from the actual send. Server CPU: utime + stime of the server process and its children.")
    print(
        f"client: send lag (send - due) p99 {ls.ms('lag', 99):.2f} ms (service run), {lb.ms('lag', 99):.2f} ms (bare run); "
        f"client CPU during batched runs {best_s.client_cpu / best_s.seconds:.0%} (service) / "
        f"{best_b.client_cpu / best_b.seconds:.0%} (bare) of one core"
    )
    print()

    checks.append(
        (
            f"service batched throughput >= {TARGET_RECORDS_PER_S:,} records/s",
            best_s.records_per_s >= TARGET_RECORDS_PER_S,
            f"{best_s.records_per_s:,.0f} records/s ({best_s.threads} client thread(s))",
        )
    )
    p99 = ls.ms("latency", 99)
    checks.append(
        (
            f"service single-record p99 <= {TARGET_P99_MS:g} ms at {r}",
            p99 <= TARGET_P99_MS and ls.achieved_rate >= 0.98 * args.rate,
            f"p99 {p99:.2f} ms from due time (service time p99 {ls.ms('service', 99):.2f} ms), "
            f"achieved {ls.achieved_rate:.0f} req/s",
        )
    )
    checks.append(
        (
            f"service throughput >= {TARGET_BARE_RATIO:g} x bare",
            ratio >= TARGET_BARE_RATIO,
            f"{ratio:.2f} x ({best_s.records_per_s:,.0f} / {best_b.records_per_s:,.0f} records/s)",
        )
    )
    metric_text = "missing" if metric is None else f"{metric:,.0f}"
    checks.append(
        (
            'service /metrics monitor_records_accepted_total{model="bench",source="http"} == records sent',
            metric is not None and metric == sent_service and answered_service == sent_service and not problems_s,
            f"{metric_text} counted, {answered_service:,} answered accepted, {sent_service:,} sent"
            + (f"; {'; '.join(problems_s)}" if problems_s else ""),
        )
    )
    checks.append(
        (
            "bare endpoint counted every record sent",
            answered_bare == sent_bare and not problems_b,
            f"{answered_bare:,} counted, {sent_bare:,} sent" + (f"; {'; '.join(problems_b)}" if problems_b else ""),
        )
    )
    # Uvicorn re-raises the SIGTERM it handled once it has shut down, hence -15 as well as 0.
    clean = (0, -signal.SIGTERM)
    log_errors = [line for line in service.log_tail(10_000).splitlines() if "Traceback" in line or " ERROR " in line]
    checks.append(
        (
            "both servers stopped cleanly on SIGTERM, the service's stored count == records sent",
            code_s in clean and code_b in clean and not log_errors and stored == sent_service,
            f"service exit {code_s} in {secs_s:.1f} s, bare exit {code_b} in {secs_b:.1f} s, "
            f"{len(log_errors)} error line(s) in the service log, record_counts.accepted {stored}",
        )
    )
    for text, ok, observed in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}: {observed}")
    if args.quick:
        print("note: --quick is a smoke run; its figures are too short to judge the targets by")
    if code_s not in clean or log_errors:
        print(f"service log:\n{service.log_tail()}")
    print(f"elapsed: {time.perf_counter() - started:.1f} s")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
