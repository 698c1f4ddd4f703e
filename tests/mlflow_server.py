"""A throw-away MLflow tracking server and model registry for the tests: ``mlflow server``
(the ``mlflow`` package of the test extra) with a SQLite backend and a local artifact store
in a temp dir, on a free loopback port.

``stop()`` and ``start()`` again keep the data (a registry outage); ``close()`` stops it
and deletes the dir. :meth:`MlflowServer.register` adds a model version whose artifacts
are the given files, as a training pipeline would register one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from support import free_port

# One worker (the default is 4): a handful of test requests, on a shared 2-core machine.
WORKERS = "1"
START_SECONDS = 120.0  # ready in ~6-15 s; generous for a busy machine
# Without MLflow 3's job runner: the registry needs none, and each start would add three
# huey consumer processes (importing mlflow, then polling) and leave a folder in /dev/shm.
ENV = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class MlflowUnavailable(RuntimeError):
    """The ``mlflow`` package is missing or its server would not start."""


class MlflowServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="monitor-mlflow-"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._experiment: str | None = None

    def start(self) -> MlflowServer:
        mlflow = Path(sys.executable).parent / "mlflow"
        if not mlflow.is_file():
            raise MlflowUnavailable(f"{mlflow} is missing: install the test extra (pip install -e '.[test]')")
        command = [
            str(mlflow), "server", "--backend-store-uri", f"sqlite:///{self.dir / 'mlflow.db'}",
            "--artifacts-destination", str(self.dir / "artifacts"), "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", WORKERS,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            # A session of its own: stop() signals the server and its worker processes together.
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True, env=ENV
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise MlflowUnavailable(f"mlflow server exited with {self._process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).text.strip() == "OK":
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise MlflowUnavailable(f"mlflow server not ready after {START_SECONDS}s:\n{self.log()}")

    def stop(self) -> None:
        """The server and its workers gone (connections refused), the data kept."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        # Wait until the port refuses: a worker may outlive its parent for a moment.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/health", timeout=1)
            except httpx.HTTPError:
                return
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def register(self, name: str, files: dict[str, bytes], alias: str | None = None) -> str:
        """A new version of registered model ``name`` (created if new) whose artifacts are
        ``files`` (path -> content), optionally under ``alias``; returns its version."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.url, registry_uri=self.url)
        if self._experiment is None:
            found = client.get_experiment_by_name("references")
            self._experiment = found.experiment_id if found else client.create_experiment("references")
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        run = client.create_run(self._experiment)
        with tempfile.TemporaryDirectory() as folder:
            for path, content in files.items():
                local = Path(folder) / "model" / path
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(content)
            client.log_artifacts(run.info.run_id, str(Path(folder) / "model"), artifact_path="model")
        client.set_terminated(run.info.run_id)
        # A plain folder of files, not a logged MLflow model: registered from the run's artifacts.
        version = client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        if alias is not None:
            client.set_registered_model_alias(name, alias, version.version)
        return str(version.version)

    def __enter__(self) -> MlflowServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.close()
