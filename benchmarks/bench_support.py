"""What the Kafka benchmarks share. Import it before anything from the project:

* ``benchmarks/detectors.py`` has the name of the package it measures, so with this
  directory first on the import path ``import detectors`` would load it: the directory is
  taken off the path, and ``tests/`` put on it for the brokers' and servers' helpers;
* :data:`http_bench` is ``benchmarks/ingest_http.py`` as a module, for its 25-feature
  records and service config.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
for folder in (ROOT, ROOT / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


http_bench = _load("ingest_http")


def start_kafka_service(
    workdir: Path, name: str, bootstrap: str, topic: str, group: str, storage_url: str,
    models: list[str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    """``monitor serve`` (the HTTP benchmark's service config) consuming ``topic`` in
    ``group``, for ``models`` (each the benchmark model) or the one benchmark model; returns
    the process and its base URL. The log goes to ``workdir/service-<name>.log``."""
    port = http_bench.free_port()
    config = http_bench.service_config(workdir, port)
    if models is not None:
        model = config["models"].pop(http_bench.MODEL)
        config["models"] = {each: model for each in models}
    config["storage"]["url"] = storage_url
    config["kafka"] = {
        "bootstrap_servers": [bootstrap], "topics": [topic], "group_id": group,
        "session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_000, "max_poll_interval_ms": 30_000,
    }  # fmt: skip
    path = workdir / f"config-{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = (workdir / f"service-{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "serve", "--config", str(path)], stdout=log, stderr=subprocess.STDOUT,
        cwd=ROOT,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"
