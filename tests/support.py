"""Helpers shared by the tests: settings, an in-process app client, real server processes,
and a real webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from monitor.api.app import create_app
from monitor.settings import Settings, settings_from_mapping

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

CAR_LOAN_FEATURES = {
    "car_value": {"type": "numeric", "min": 0},
    "salary_range": {"type": "categorical"},
    "debt_to_income_ratio": {"type": "numeric", "min": 0, "max": 1},
    "loan_length": {"type": "numeric", "min": 0},
    "repaid_loan_on_prev_car": {"type": "categorical"},
    "size_of_downpayment": {"type": "categorical"},
    "driver_tenure": {"type": "numeric", "min": 0},
}


def config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A config mapping with a SQLite file in ``tmp_path`` and two models."""
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp_path / 'monitor.db'}", "flush_interval_seconds": 0.2},
        "models": {
            "car_loan": {"features": CAR_LOAN_FEATURES, "prediction": {"kind": "binary"}},
            "iris": {
                "features": {
                    n: {"type": "numeric"} for n in ("sepal_length", "sepal_width", "petal_length", "petal_width")
                },
                "prediction": {"kind": "multiclass", "classes": ["setosa", "versicolor", "virginica"]},
            },
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return settings_from_mapping(config(tmp_path, **overrides))


@contextmanager
def client(settings: Settings) -> Iterator[tuple[TestClient, CollectorRegistry]]:
    """The real app in-process (lifespan included), with a fresh metrics registry."""
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry)
    with TestClient(app) as test_client:
        yield test_client, registry


def scrape(url: str) -> dict[str, float]:
    """Sample name with labels -> value, from the text exposition."""
    samples = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        match = re.match(r"^(\w+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples


GaugeKey = tuple[str, tuple[tuple[str, str], ...]]


def gauge_values(registry: CollectorRegistry, names: Collection[str]) -> dict[GaugeKey, float]:
    """Every sample of the metric families ``names``, by (sample name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        if family.name in names
        for sample in family.samples
    }


def changed_gauges(before: dict[GaugeKey, float], after: dict[GaugeKey, float]) -> list[GaugeKey]:
    """The keys of ``before`` whose value ``after`` differs (NaN equals NaN; a key gone is changed)."""
    return [
        key
        for key, value in before.items()
        if key not in after or not (value == after[key] or (math.isnan(value) and math.isnan(after[key])))
    ]


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def car_loan_record(i: int, **extra: Any) -> dict[str, Any]:
    record = {
        "model": "car_loan",
        "id": f"r{i}",
        "inputs": {
            "car_value": 10_000 + i,
            "salary_range": "20K - 40K €",
            "debt_to_income_ratio": 0.4,
            "loan_length": 20,
            "repaid_loan_on_prev_car": False,
            "size_of_downpayment": "10%",
            "driver_tenure": 3.5,
        },
        "prediction": 1,
        "latency_ms": 4.2,
    }
    record.update(extra)
    return record


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """``monitor serve`` in a real process on a free loopback port."""

    def __init__(self, tmp_path: Path, config_data: dict[str, Any], env: dict[str, str] | None = None):
        self.port = free_port()
        config_data = {
            **config_data,
            "server": {**config_data.get("server", {}), "host": "127.0.0.1", "port": self.port},
        }
        self.config_path = tmp_path / f"config-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config_data, sort_keys=False))  # feature order matters
        self.log_path = tmp_path / f"service-{self.port}.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> ServiceProcess:
        """Start and wait for ``/readyz``; generous: 20 s once ran out on a busy 2-core machine."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "monitor.cli", "serve", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.process.kill()  # not left running behind the failed test
        self.process.wait(10)
        raise TimeoutError(f"service not ready after {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Receiver:
    """A webhook receiver: records every request (headers, body, whether the signature of
    ``<X-Monitor-Timestamp>.<body>`` matched ``secret``), answers ``statuses`` in turn
    (then 200), sleeping ``delay`` first."""

    def __init__(self, port: int | None = None, statuses: list[int] | None = None, delay: float = 0.0,
                 secret: str = "receiver-shared-secret"):  # fmt: skip
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.statuses = list(statuses or [])
        self.delay = delay
        self.secret = secret.encode()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                signed = self.headers.get("x-monitor-timestamp", "").encode() + b"." + body  # README's recipe
                expected = "sha256=" + hmac.new(receiver.secret, signed, hashlib.sha256).hexdigest()
                with receiver._lock:
                    receiver.requests.append({
                        "headers": dict(self.headers), "body": body, "at": time.monotonic(),
                        "signed": hmac.compare_digest(self.headers.get("x-monitor-signature", ""), expected),
                    })  # fmt: skip
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> Receiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


GENEROUS_WAIT = 60.0  # seconds: the shortest wait_for deadline, whatever a caller asks


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy, and return that. The deadline is at
    least :data:`GENEROUS_WAIT`: a wait is for a condition, never a speed limit, and the
    suite must pass on a busy machine."""
    timeout = max(timeout, GENEROUS_WAIT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
