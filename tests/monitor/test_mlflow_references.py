"""References from an MLflow model registry, against a real ``mlflow server`` (SQLite
backend, local artifact store) started by the suite: two registered versions of car_loan,
each with its own reference artifact (halves of the bundled car-loan reference, as
Parquet); a service configured with ``models:/car_loan/2`` gets version 2's; with the
registry down, ingestion goes on and the failure shows until the registry is back."""

from __future__ import annotations

import copy
import io
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from mlflow_server import MlflowServer
from support import ROOT, ServiceProcess, car_loan_record, config, wait_for

from monitor.cli.config_checks import check_file
from monitor.mlflow_references import MlflowReferenceError, fetch_reference
from monitor.model_config import ModelConfig
from monitor.reference_files import build_reference

BUNDLED = ROOT / "monitor" / "data" / "car_loan_reference.csv.gz"
ARTIFACT = "reference.parquet"
HALF = 2_500  # rows of each version's reference (the bundled file has 5,000)


class Registered:
    """car_loan's two registered versions: their run ids and expected profiles."""

    def __init__(self, server: MlflowServer) -> None:
        frame = pd.read_csv(BUNDLED)
        self.files = {v: _parquet(part) for v, part in (("1", frame.iloc[:HALF]), ("2", frame.iloc[HALF:]))}
        self.versions = [server.register("car_loan", {ARTIFACT: self.files[v]}) for v in ("1", "2")]
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        client.set_registered_model_alias("car_loan", "champion", "1")
        self.run_ids = {v: client.get_model_version("car_loan", v).run_id for v in ("1", "2")}

    def content_hash(self, version: str, model: ModelConfig) -> str:
        profile, _summary = build_reference(self.files[version], "parquet", model, label_column="repaid")
        return profile.content_hash


def _parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(out, index=False)
    return out.getvalue()


@pytest.fixture(scope="module")
def registered(mlflow_server: MlflowServer) -> Registered:
    return Registered(mlflow_server)


def service_config(tmp_path: Path, tracking_uri: str, uri: str) -> dict[str, Any]:
    data = config(tmp_path)
    data["models"]["car_loan"]["reference"] = {
        "prediction_column": "y_pred",
        "label_column": "repaid",
        # Short waits: the outage test waits for the retry after the registry is back.
        "mlflow": {"model_uri": uri, "artifact_path": ARTIFACT, "tracking_uri": tracking_uri,
                   "retry_seconds": 0.2, "max_retry_seconds": 1.0},
    }  # fmt: skip
    return data


def model_config(data: dict[str, Any]) -> ModelConfig:
    return ModelConfig.model_validate(data["models"]["car_loan"])


def car_loan(url: str) -> dict[str, Any]:
    models = httpx.get(f"{url}/v1/models", timeout=30).json()["models"]
    return next(m for m in models if m["name"] == "car_loan")


def fetch_state(url: str, state: str) -> dict[str, Any] | None:
    """car_loan's entry in ``/v1/models`` once its MLflow fetch is in ``state``."""
    model = car_loan(url)
    return model if model["reference_source"]["state"] == state else None


def test_registry_and_versions_are_distinct(registered: Registered) -> None:
    """The precondition of the tests below: the two versions' references differ."""
    assert registered.versions == ["1", "2"]
    model = model_config(service_config(Path("/unused"), "http://127.0.0.1:1", "models:/x/1"))
    assert registered.content_hash("1", model) != registered.content_hash("2", model)


def test_service_gets_version_2s_reference_once(
    tmp_path: Path, mlflow_server: MlflowServer, registered: Registered
) -> None:
    data = service_config(tmp_path, mlflow_server.url, "models:/car_loan/2")
    data["models"]["per_version"] = copy.deepcopy(data["models"]["car_loan"])
    data["models"]["per_version"]["reference"]["mlflow"]["model_uri"] = "models:/car_loan/{version}"
    expected_hash = registered.content_hash("2", model_config(data))
    source = {
        "mlflow": "models:/car_loan/2", "artifact_path": ARTIFACT, "state": "ready", "attempts": 1,
        "last_error": None, "registry_version": "2", "run_id": registered.run_ids["2"], "reference": "1",
    }  # fmt: skip
    started = time.time()
    with ServiceProcess(tmp_path, data) as service:
        model = wait_for(lambda: fetch_state(service.url, "ready"), 60, "the reference fetched")
        assert started <= model["reference_source"].pop("last_checked") <= time.time()  # when the registry answered
        assert model["reference_source"] == source
        assert (model["reference"], model["detection"]) == ("1", "active")
        active = httpx.get(f"{service.url}/v1/models/car_loan/reference", timeout=30).json()
        assert (active["version"], active["source"], active["content_hash"]) == ("1", "mlflow", expected_hash)
        assert active["summary"]["rows"] == HALF
        assert active["summary"]["mlflow"] == {
            "model_uri": "models:/car_loan/2", "registered_model": "car_loan", "version": "2",
            "run_id": registered.run_ids["2"], "artifact_path": ARTIFACT,
        }  # fmt: skip
        others = {m["name"]: m for m in httpx.get(f"{service.url}/v1/models", timeout=30).json()["models"]}
        assert others["iris"]["reference_source"] is None
        assert others["per_version"]["reference_source"] == {
            "mlflow": "models:/car_loan/{version}", "artifact_path": ARTIFACT, "state": "per version", "attempts": 0,
            "last_error": None, "registry_version": None, "run_id": None, "reference": None, "last_checked": None,
        }  # fmt: skip
    # A restart finds that artifact active already: it neither downloads nor stores it again.
    with ServiceProcess(tmp_path, data) as service:
        model = wait_for(lambda: fetch_state(service.url, "ready"), 60, "the reference fetched")
        assert model["reference_source"].pop("last_checked") >= started
        assert model["reference_source"] == source
        references = httpx.get(f"{service.url}/v1/models/car_loan/references", timeout=30).json()["references"]
        assert [r["version"] for r in references] == ["1"]
        assert "the active reference version 1 is models:/car_loan/2/reference.parquet already" in service.log()


def test_ingestion_goes_on_while_the_registry_is_down(
    tmp_path: Path, mlflow_server: MlflowServer, registered: Registered
) -> None:
    data = service_config(tmp_path, mlflow_server.url, "models:/car_loan/2")
    expected_hash = registered.content_hash("2", model_config(data))
    mlflow_server.stop()
    try:
        with ServiceProcess(tmp_path, data) as service:
            # Down: two failed attempts seen (the retry runs), connections refused.
            model = wait_for(
                lambda: (m := car_loan(service.url))["reference_source"]["attempts"] >= 2 and m, 60, "two failures"
            )
            source = model["reference_source"]
            assert (source["state"], source["reference"], source["registry_version"]) == ("failed", None, None)
            assert "Connection refused" in source["last_error"], source
            assert (model["reference"], model["detection"]) == (None, "waiting for its reference from MLflow")
            for start in range(0, 300, 100):
                batch = [car_loan_record(i) for i in range(start, start + 100)]
                answer = httpx.post(f"{service.url}/v1/records", json=batch, timeout=30)
                assert (answer.status_code, answer.json()["accepted"]) == (200, 100)
            assert car_loan(service.url)["records"] == 300
            assert "could not fetch its reference from MLflow (models:/car_loan/2, reference.parquet)" in service.log()

            mlflow_server.start()  # the registry is back: the next retry gets the reference
            model = wait_for(lambda: fetch_state(service.url, "ready"), 60, "the reference fetched")
            source = model["reference_source"]
            assert source["attempts"] >= 3 and source["last_error"] is None
            assert (source["registry_version"], source["reference"], model["detection"]) == ("2", "1", "active")
            active = httpx.get(f"{service.url}/v1/models/car_loan/reference", timeout=30).json()
            assert (active["content_hash"], active["summary"]["rows"]) == (expected_hash, HALF)
            answer = httpx.post(f"{service.url}/v1/records", json=[car_loan_record(1000)], timeout=30)
            assert answer.status_code == 200 and car_loan(service.url)["records"] == 301
    finally:
        if not mlflow_server.running:
            mlflow_server.start()


def test_fetch_by_alias_and_by_version_template(mlflow_server: MlflowServer, registered: Registered) -> None:
    """An alias resolves to its version; a template is filled with the version asked for
    (what attaching a reference to a model version will call)."""
    data = service_config(Path("/unused"), mlflow_server.url, "models:/car_loan@champion")
    by_alias = fetch_reference("car_loan", model_config(data))
    assert (by_alias.located.version, by_alias.located.run_id) == ("1", registered.run_ids["1"])
    assert by_alias.profile.content_hash == registered.content_hash("1", model_config(data))
    data["models"]["car_loan"]["reference"]["mlflow"]["model_uri"] = "models:/car_loan/{version}"
    template = model_config(data)
    for version in ("1", "2"):
        fetched = fetch_reference("car_loan", template, version=version)
        assert fetched.summary["mlflow"]["version"] == version and fetched.summary["rows"] == HALF
        assert fetched.profile.content_hash == registered.content_hash(version, template)
    with pytest.raises(
        MlflowReferenceError, match=r"models:/car_loan/\{version\} is a template: it needs a model version"
    ):
        fetch_reference("car_loan", template)
    missing = service_config(Path("/unused"), mlflow_server.url, "models:/car_loan/7")
    with pytest.raises(Exception, match="RESOURCE_DOES_NOT_EXIST"):
        fetch_reference("car_loan", model_config(missing))


def test_an_attempt_gives_up_on_a_registry_that_never_answers() -> None:
    """A registry that takes the connection and never answers holds an attempt only until
    its deadline (attempt_timeout_seconds), not for the client's own timeouts."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # connections complete in the kernel's backlog; nothing reads them
        data = service_config(Path("/unused"), f"http://127.0.0.1:{listener.getsockname()[1]}", "models:/car_loan/2")
        with pytest.raises(MlflowReferenceError, match=r"did not answer within the attempt's deadline"):
            fetch_reference("car_loan", model_config(data), deadline=time.monotonic() + 1.0)
        listener.settimeout(60)
        connection, _ = listener.accept()  # the precondition: the request did reach the "registry"
        with connection:
            connection.settimeout(60)
            assert connection.recv(64).startswith(b"GET /api/2.0/mlflow/model-versions/get?name=car_loan&version=2")


def test_check_config_words_each_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the registry: the URI's form, the artifact's path and type, the waits, a
    tracking URI, and one source per model."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    features = {"x": {"type": "numeric"}}
    models = {
        "a": {"mlflow": {"model_uri": "models:/a/2", "artifact_path": "ref.txt"}},
        "b": {"file": "ref.csv", "mlflow": {"model_uri": "models:/b@champion", "artifact_path": "r.csv"}},
        "c": {"mlflow": {"model_uri": "runs:/abc/model", "artifact_path": "../ref.csv", "tracking_uri": "http://x",
                         "retry_seconds": 10, "max_retry_seconds": 5}},
        "d": {"mlflow": {"model_uri": "models:/d/{version}", "artifact_path": "data/r.parquet", "tracking_uri": "http://x"}},
        "e": {"from_first_records": 100, "mlflow": {"model_uri": "models:/e/1", "artifact_path": "r.csv"}},
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"models": {n: {"features": features, "reference": r} for n, r in models.items()}}))
    settings, problems = check_file(path)
    assert settings is None
    assert problems == [
        "models.b.reference: file and mlflow are two sources of the reference: set one",
        "models.c.reference.mlflow.model_uri: must be models:/NAME/VERSION, models:/NAME@ALIAS or "
        "models:/NAME/{version}, got 'runs:/abc/model'",
        "models.c.reference.mlflow.artifact_path: must be a relative path inside the model version's artifacts, "
        "got '../ref.csv'",
        "models.c.reference.mlflow.max_retry_seconds: must not be below retry_seconds (10.0), got 5.0",
        "models.e.reference: from_first_records and mlflow are two sources of the reference: set one",
        "models.a.reference.mlflow.tracking_uri: not set, and neither is the MLFLOW_TRACKING_URI environment variable",
        "models.a.reference.mlflow.artifact_path: ref.txt: unknown file type (expected .csv, .parquet or .jsonl, "
        "optionally .gz)",
        "models.b.reference.mlflow.tracking_uri: not set, and neither is the MLFLOW_TRACKING_URI environment variable",
        "models.e.reference.mlflow.tracking_uri: not set, and neither is the MLFLOW_TRACKING_URI environment variable",
    ]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    del models["a"], models["b"], models["c"], models["e"]
    path.write_text(yaml.safe_dump({"models": {n: {"features": features, "reference": r} for n, r in models.items()}}))
    assert check_file(path)[1] == []
