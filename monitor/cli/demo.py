"""``monitor demo``: the service, live, on the bundled car-loan drift case.

Starts ``monitor serve`` in a subprocess with the config of ``monitor/demo.yaml`` (SQLite
in a work dir), replays the analysis period over HTTP in time order as NDJSON batches at
``--speed`` records per second, posts the delayed labels, then prints the alerts that
fired and the drifted features. Without ``--keep-running`` the service is stopped
(SIGTERM) at the end.

monitor demo [--speed N] [--port P] [--keep-running] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "car_loan"
TEMPLATE = Path(__file__).resolve().parents[1] / "demo.yaml"
MODEL = "car_loan"
REFERENCE = "synthetic_car_loan_reference.csv.gz"
ANALYSIS = "synthetic_car_loan_analysis.csv.gz"
TARGETS = "synthetic_car_loan_analysis_target.csv.gz"
BATCH = 500


class DemoError(Exception):
    """A failure with a message for the user (and, optionally, the service log)."""


def add_commands(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="run the service on the bundled car-loan drift case and show the alerts")
    add_arguments(demo)
    demo.set_defaults(func=main)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speed", type=float, default=10_000,
                        help="records per second (default 10000; 0: as fast as possible)")  # fmt: skip
    parser.add_argument("--port", type=int, help="listen port on 127.0.0.1 (default: a free port)")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the service running at the end (Ctrl-C stops it)")  # fmt: skip
    parser.add_argument("--workdir", help="where the config, SQLite file and service log go (default: a temp dir)")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="monitor demo", description="Run the service on the car-loan drift case.")
    add_arguments(parser)
    return parser.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(workdir: Path, port: int) -> Path:
    """The demo config: ``demo.yaml`` with this port, a SQLite file in ``workdir`` and the
    reference file's absolute path."""
    for name in (REFERENCE, ANALYSIS, TARGETS):
        if not (DATA / name).is_file():
            raise DemoError(
                f"the demo data is missing: {DATA / name} not found (the demo runs from a source checkout "
                "of the repository, which ships tests/data/car_loan)"
            )
    config: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    config["server"] = {**config.get("server", {}), "host": "127.0.0.1", "port": port}
    config["storage"] = {**config.get("storage", {}), "url": f"sqlite:///{workdir / 'monitor.db'}"}
    config["models"][MODEL]["reference"]["file"] = str(DATA / REFERENCE)
    path = workdir / "demo-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # feature order matters
    return path


class Service:
    """``monitor serve`` in a subprocess, its output in ``workdir/service.log``."""

    def __init__(self, config: Path, port: int, log_path: Path):
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "serve", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DemoError(f"the service exited with code {self.process.returncode} during start-up")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise DemoError(f"the service was not ready after {timeout:.0f}s")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait(10)
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no service log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def post_paced(http: httpx.Client, rows: list[dict[str, Any]], speed: float, desc: str) -> int:
    """POST ``rows`` as NDJSON batches at ``speed`` records per second; returns how many were accepted."""
    accepted = 0
    began = time.monotonic()
    sent = 0
    with tqdm(total=len(rows), unit="rec", desc=desc, file=sys.stderr) as bar:
        for batch in _batches(rows, BATCH):
            body = b"\n".join(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) for row in batch)
            response = http.post("/v1/records", content=body, headers={"content-type": "application/x-ndjson"})
            if response.status_code not in (200, 422):
                raise DemoError(f"POST /v1/records answered {response.status_code}: {response.text[:500]}")
            accepted += int(response.json().get("accepted", 0))
            sent += len(batch)
            bar.update(len(batch))
            if speed > 0:
                ahead = began + sent / speed - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    return accepted


def analysis_records() -> list[dict[str, Any]]:
    """The analysis period, in time order, as records with inputs and a prediction score."""
    features = list(yaml.safe_load(TEMPLATE.read_text())["models"][MODEL]["features"])
    frame = pd.read_csv(DATA / ANALYSIS).sort_values(["timestamp", "id"], kind="stable")
    frame = frame.astype(object).where(frame.notna(), None)  # NaN -> null, numpy -> Python
    return [
        {"model": MODEL, "id": str(row["id"]), "timestamp": row["timestamp"],
         "inputs": {f: row[f] for f in features}, "prediction": row["y_pred_proba"]}
        for row in frame.to_dict("records")
    ]  # fmt: skip


def label_records() -> list[dict[str, Any]]:
    truth = pd.read_csv(DATA / TARGETS)
    return [{"model": MODEL, "id": str(i), "label": int(y)} for i, y in zip(truth["id"], truth["repaid"], strict=True)]


def scrape(http: httpx.Client) -> list[tuple[str, dict[str, str], float]]:
    text = http.get("/metrics").text
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def _windows(samples: list[tuple[str, dict[str, str], float]], kind: str) -> int:
    return int(sum(v for n, labels, v in samples
                   if n == "monitor_windows_evaluated_total" and labels.get("model") == MODEL and labels.get("kind") == kind))  # fmt: skip


def wait_windows(http: httpx.Client, kind: str, expected: int, timeout: float = 60.0) -> int:
    """Wait until ``expected`` windows of ``kind`` were evaluated (returns how many were)."""
    deadline = time.monotonic() + timeout
    while True:
        done = _windows(scrape(http), kind)
        if done >= expected or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def report(http: httpx.Client, out: Any) -> None:
    firing = http.get("/v1/alerts", params={"state": "firing", "model": MODEL}).json()["alerts"]
    firing.sort(key=lambda a: (a["rule"], a["feature"]))
    print(f"\nAlerts firing ({len(firing)}):", file=out)
    if not firing:
        print("  none", file=out)
    print(f"  {'rule':<15} {'severity':<9} {'model':<9} {'feature':<25} {'window':>6} {'value':>9}", file=out)
    for a in firing:
        value = f"{a['value']:.4f}" if a.get("value") is not None else "-"
        window = a["window_seq"] if a.get("window_seq") is not None else "-"
        print(f"  {a['rule']:<15} {a['severity']:<9} {a['model']:<9} {a['feature'] or '-':<25} {window:>6} {value:>9}",
              file=out)  # fmt: skip

    samples = scrape(http)
    drifted = sorted(labels["feature"] for n, labels, v in samples
                     if n == "monitor_feature_drift" and labels.get("model") == MODEL and v == 1)  # fmt: skip
    scores = {(labels["feature"], labels.get("method", "")): v for n, labels, v in samples
              if n == "monitor_feature_drift_score" and labels.get("model") == MODEL}  # fmt: skip
    print(f"\nDrifted features in the latest window ({len(drifted)}, from /metrics):", file=out)
    if not drifted:
        print("  none", file=out)
    for feature in drifted:
        methods = ", ".join(f"{m}={v:.4f}" for (f, m), v in sorted(scores.items()) if f == feature) or "no score"
        print(f"  {feature:<25} {methods}", file=out)
    performance_verdict(http, out)


SHOWN_METRICS = ("accuracy", "roc_auc", "f1")


def performance_verdict(http: httpx.Client, out: Any) -> None:
    """The latest labelled window's metrics beside the reference's, and whether any
    dropped by more than the model allows (``performance.max_drop``)."""
    rows = http.get(f"/v1/models/{MODEL}/results", params={"kind": "performance", "limit": 10_000}).json()["results"]
    if not rows:
        return
    latest = [row for row in rows if row["window_seq"] == rows[-1]["window_seq"]]
    by_metric = {row["method"]: row for row in latest}
    print(f"\nPerformance of the latest labelled window ({latest[0]['n_current']:,} labels) against the reference:",
          file=out)  # fmt: skip
    for metric in (m for m in SHOWN_METRICS if m in by_metric):
        row = by_metric[metric]
        reference, drop = row["detail"].get("reference"), row["detail"].get("drop")
        allowed = f"allowed {row['threshold']:.4f}" if row["threshold"] is not None else "no limit"
        verdict = "DEGRADED" if row["drift"] else "ok"
        print(f"  {metric:<9} {_number(row['statistic'])}  reference {_number(reference)}  drop {_number(drop)}  "
              f"{allowed:<15} {verdict}", file=out)  # fmt: skip
    degraded = sorted(row["method"] for row in latest if row["drift"])
    if degraded:
        print(f"Verdict: DEGRADED ({', '.join(degraded)} dropped more than allowed)", file=out)
    else:
        print("Verdict: performance holds (no metric dropped more than allowed)", file=out)


def _number(value: float | None) -> str:
    return "     -" if value is None else f"{value:.4f}"


def _keep_running_help(url: str, port: int, out: Any) -> None:
    print(f"""
The service keeps running on {url} (Ctrl-C stops it).
  Alerts:  curl -s '{url}/v1/alerts?state=firing'
  Results: curl -s '{url}/v1/models/{MODEL}/results?kind=feature_drift&feature=car_value'
  Metrics: curl -s {url}/metrics | grep monitor_feature_drift
Prometheus: prometheus --config.file {ROOT / 'grafana' / 'prometheus.yml'}
  (it scrapes localhost:8000{'' if port == 8000 else f'; this demo listens on {port}: edit its target, or rerun with --port 8000'})
Grafana (datasource: a Prometheus on localhost:9090):
  docker run --network host -v {ROOT / 'grafana' / 'provisioning'}:/etc/grafana/provisioning \\
    -v {ROOT / 'grafana' / 'dashboards'}:/var/lib/grafana/dashboards/model-monitor grafana/grafana
  then open http://localhost:3000 (dashboard uids model-monitor-overview and model-monitor-detail).""", file=out)  # fmt: skip


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace, out: Any = None) -> int:
    out = out or sys.stdout
    if args.speed < 0:
        print("monitor demo: --speed must be >= 0", file=sys.stderr)
        return 2
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="monitor-demo-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port = args.port or _free_port()
    service: Service | None = None
    stopped = False
    try:
        config = write_config(workdir, port)
        service = Service(config, port, workdir / "service.log")
        print(f"Starting the service on {service.url} (config {config}, log {service.log_path})", file=out)
        try:
            service.start()
        except DemoError as exc:
            print(f"monitor demo: {exc}; service log ({service.log_path}):\n{service.log_tail()}", file=sys.stderr)
            return 1
        began = time.monotonic()
        records = analysis_records()
        labels = label_records()
        speed = "as fast as possible" if args.speed == 0 else f"{args.speed:,.0f} records/s"
        print(
            f"Replaying {len(records):,} car-loan predictions ({speed}), then {len(labels):,} delayed labels", file=out
        )
        with httpx.Client(base_url=service.url, timeout=60) as http:
            accepted = post_paced(http, records, args.speed, "predictions")
            windows = wait_windows(http, "drift", len(records) // 5000)
            labelled = post_paced(http, labels, args.speed, "labels")
            wait_windows(http, "performance", len(labels) // 5000)
            print(f"Accepted {accepted:,} predictions and {labelled:,} labels; {windows} drift windows evaluated "
                  f"in {time.monotonic() - began:.1f}s", file=out)  # fmt: skip
            report(http, out)
        if args.keep_running:
            _keep_running_help(service.url, port, out)
            out.flush()
            previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the service too
            try:
                while service.process is not None and service.process.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
        code = service.stop()
        stopped = True
        how = "cleanly" if code in (0, -signal.SIGTERM) else f"with exit code {code}"  # uvicorn re-raises SIGTERM
        print(f"\nService stopped {how}; work dir {'removed' if own_workdir else workdir}", file=out)
        return 0
    except DemoError as exc:
        print(f"monitor demo: {exc}", file=sys.stderr)
        if service is not None and service.process is not None:
            print(f"service log ({service.log_path}):\n{service.log_tail()}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"monitor demo: HTTP error talking to the service: {exc}", file=sys.stderr)
        if service is not None:
            print(f"service log ({service.log_path}):\n{service.log_tail()}", file=sys.stderr)
        return 1
    finally:
        if service is not None and not stopped:
            service.stop()
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Entry point: an argparse namespace (from ``monitor demo``) or an argument list."""
    if not isinstance(args, argparse.Namespace):
        args = _parse(args)
    return run(args)
