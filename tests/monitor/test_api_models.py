"""Reference upload, reference listing and results routes on the real app, and the
``monitor reference`` commands run in-process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from support import config, settings

from detectors.profiles import ReferenceProfile
from monitor.api.app import create_app
from monitor.cli import main
from monitor.detection import schema_for
from monitor.settings import Settings
from monitor.store.database import Store

CSV = {"content-type": "text/csv"}
PARQUET = {"content-type": "application/vnd.apache.parquet"}
NDJSON = {"content-type": "application/x-ndjson"}
FEATURES = [
    "car_value", "salary_range", "debt_to_income_ratio", "loan_length",
    "repaid_loan_on_prev_car", "size_of_downpayment", "driver_tenure",
]  # fmt: skip


def reference_frame(n: int = 2_000, seed: int = 0) -> pd.DataFrame:
    """Reference rows of the car_loan model, plus a prediction score and a latency."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "car_value": rng.lognormal(10, 0.4, n).round(2),
            "salary_range": rng.choice(["20K - 40K €", "40K - 60K €", "60K+ €"], n),
            "debt_to_income_ratio": rng.beta(2, 5, n),
            "loan_length": rng.integers(12, 84, n),
            "repaid_loan_on_prev_car": rng.choice([True, False], n),
            "size_of_downpayment": rng.choice(["10%", "20%", "30%"], n),
            "driver_tenure": rng.exponential(4, n).round(1),
            "prediction": rng.uniform(0, 1, n),
            "latency_ms": rng.gamma(2, 3, n),
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    return reference_frame()


@pytest.fixture
def csv_file(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "reference.csv"
    frame.to_csv(path, index=False)
    return path


def expected_hash(path: Path, **columns: Any) -> str:
    """What the library's own file reader makes of the file, for the car_loan schema."""
    model = settings(path.parent).models["car_loan"]
    return ReferenceProfile.from_file(path, schema_for(model, **columns), version="expected").content_hash


@contextmanager
def api(test_settings: Settings) -> Iterator[TestClient]:
    """The real app, with a fresh metrics registry."""
    app = create_app(test_settings, registry=CollectorRegistry())
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def http(tmp_path: Path, store_url: str) -> Iterator[TestClient]:
    with api(settings(tmp_path, storage={"url": store_url})) as test_client:
        yield test_client


# -- PUT reference ---------------------------------------------------------------------


def test_upload_as_csv_parquet_and_jsonl_makes_new_active_versions(
    http: TestClient, tmp_path: Path, frame: pd.DataFrame, csv_file: Path
) -> None:
    records = [
        {"inputs": {name: row[name] for name in FEATURES}, "prediction": row["prediction"], "timestamp": "whenever"}
        for row in frame.to_dict(orient="records")
    ]
    uploads = [
        (csv_file.read_bytes(), CSV, {}),
        (frame.to_parquet(index=False), PARQUET, {}),
        (frame.to_parquet(index=False), {"content-type": "application/octet-stream"}, {"format": "parquet"}),
        (frame.to_json(orient="records", lines=True).encode(), NDJSON, {}),
        ("\n".join(json.dumps(record) for record in records).encode(), NDJSON, {}),
    ]
    for number, (body, headers, params) in enumerate(uploads, start=1):
        response = http.put("/v1/models/car_loan/reference", content=body, headers=headers, params=params)
        assert response.status_code == 201, response.text
        assert response.json() == {
            "model": "car_loan",
            "version": str(number),
            "rows": 2000,
            "content_hash": response.json()["content_hash"],
        }
        if number == 1:  # the same profile as the library's own reader builds from the file
            assert response.json()["content_hash"] == expected_hash(csv_file)

    listed = http.get("/v1/models/car_loan/references").json()
    assert listed["model"] == "car_loan"
    assert [(r["version"], r["active"], r["source"]) for r in listed["references"]] == [
        ("5", True, "upload"), ("4", False, "upload"), ("3", False, "upload"), ("2", False, "upload"), ("1", False, "upload"),
    ]  # fmt: skip
    # The same Parquet bytes sent as either content type make the same profile.
    assert listed["references"][2]["content_hash"] == listed["references"][3]["content_hash"]

    active = http.get("/v1/models/car_loan/reference").json()
    assert (active["model"], active["version"], active["active"], active["source"]) == ("car_loan", "5", True, "upload")
    summary = active["summary"]
    assert (summary["rows"], summary["format"], summary["features"]) == (2000, "jsonl", FEATURES)
    assert [(c["name"], c["kind"]) for c in summary["channels"]] == [
        ("car_value", "numeric"), ("salary_range", "categorical"), ("debt_to_income_ratio", "numeric"),
        ("loan_length", "numeric"), ("repaid_loan_on_prev_car", "categorical"), ("size_of_downpayment", "categorical"),
        ("driver_tenure", "numeric"), ("__prediction__", "numeric"),
    ]  # fmt: skip
    tenure = summary["channels"][6]
    assert tenure["min"] == frame["driver_tenure"].min() and tenure["bins"] == 10 and tenure["null_rate"] == 0.0
    repaid = summary["channels"][4]
    assert sorted(category for category, _ in repaid["top"]) == ["false", "true"]
    assert sum(count for _, count in repaid["top"]) == 2000

    version, data = http.app.state.store.active_reference("car_loan")
    stored = ReferenceProfile.from_bytes(data)
    assert (version, stored.version, stored.content_hash) == ("5", "5", active["content_hash"])


def test_prediction_and_latency_columns_can_be_named(http: TestClient, frame: pd.DataFrame, tmp_path: Path) -> None:
    renamed = frame.rename(columns={"prediction": "score", "latency_ms": "took_ms"})
    path = tmp_path / "renamed.csv"
    renamed.to_csv(path, index=False)
    response = http.put(
        "/v1/models/car_loan/reference",
        content=path.read_bytes(),
        headers=CSV,
        params={"prediction_column": "score", "latency_column": "took_ms"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["content_hash"] == expected_hash(path, prediction_column="score", latency_column="took_ms")
    summary = http.get("/v1/models/car_loan/reference").json()["summary"]
    assert (summary["prediction_column"], summary["latency_column"]) == ("score", "took_ms")
    assert [c["name"] for c in summary["channels"]][-2:] == ["__prediction__", "__latency_ms__"]


def test_an_upload_starts_new_windows_against_it(http: TestClient, csv_file: Path) -> None:
    state = http.app.state.pipeline.models["car_loan"]
    assert state.detector is None
    assert http.put("/v1/models/car_loan/reference", content=csv_file.read_bytes(), headers=CSV).status_code == 201
    assert state.reference_version == "1"
    assert state.detector is not None and state.detector.reference.version == "1"
    assert state.detector.reference.content_hash == expected_hash(csv_file)
    assert http.put("/v1/models/car_loan/reference", content=csv_file.read_bytes(), headers=CSV).status_code == 201
    assert state.reference_version == "2" and state.detector.reference.version == "2"


def test_unknown_models_are_404_everywhere(http: TestClient, csv_file: Path) -> None:
    unknown = "unknown model 'fraud': not in this service's models (configured: car_loan, iris)"
    response = http.put("/v1/models/fraud/reference", content=csv_file.read_bytes(), headers=CSV)
    assert (response.status_code, response.json()) == (404, {"detail": unknown})
    for path in ("reference", "references", "results"):
        response = http.get(f"/v1/models/fraud/{path}")
        assert (response.status_code, response.json()) == (404, {"detail": unknown})
    response = http.get("/v1/models/iris/reference")
    assert (response.status_code, response.json()["detail"]) == (
        404,
        "model 'iris' has no reference yet: PUT /v1/models/iris/reference",
    )
    assert http.get("/v1/models/iris/references").json() == {"model": "iris", "references": []}
    assert http.get("/v1/models/iris/results").json() == {"model": "iris", "results": [], "next": None}


def test_bad_files_are_400_naming_the_problem(http: TestClient, frame: pd.DataFrame) -> None:
    def put(body: bytes, headers: dict[str, str] = CSV, **params: str) -> tuple[int, str]:
        response = http.put("/v1/models/car_loan/reference", content=body, headers=headers, params=params)
        return response.status_code, response.json()["detail"]

    prefix = "reference for model 'car_loan': "
    others = (
        "salary_range, debt_to_income_ratio, loan_length, repaid_loan_on_prev_car, size_of_downpayment, driver_tenure"
    )
    assert put(frame.drop(columns=["car_value"]).to_csv(index=False).encode()) == (
        400,
        f"{prefix}missing column 'car_value' (the file has: {others}, prediction, latency_ms)",
    )
    assert put(frame.drop(columns=["car_value", "prediction"]).to_parquet(), PARQUET) == (
        400,
        f"{prefix}missing columns 'car_value', 'prediction' (the file has: {others}, latency_ms)",
    )
    assert put(b'{"inputs": {"car_value": 1}, "prediction": 0.5}\n', NDJSON)[1].startswith(
        f"{prefix}missing columns 'salary_range', 'debt_to_income_ratio'"
    )
    assert put(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage") == (
        400,
        f"{prefix}cannot read the reference as CSV: 'utf-8' codec can't decode byte 0x89 in position 0: invalid start byte",
    )
    status, detail = put(b"PAR1 not really parquet", PARQUET)
    assert status == 400 and detail.startswith(f"{prefix}cannot read the reference as PARQUET: ")
    assert put(b'{"car_value": 1}\n{"car_value": \n', NDJSON) == (
        400,
        f"{prefix}line 2 is not valid JSON: unexpected end of data (column 15)",
    )
    assert put(b"[1, 2]\n", NDJSON) == (400, f"{prefix}line 1 is not a JSON object")
    assert put(b"  \n") == (400, f"{prefix}the reference file is empty")
    header_only = ",".join([*FEATURES, "prediction"]).encode() + b"\n"
    assert put(header_only) == (
        400,
        f"{prefix}cannot profile the reference rows: cannot build a reference profile from 0 rows",
    )
    assert http.get("/v1/models/car_loan/references").json()["references"] == []


def test_unknown_content_types_and_formats_are_refused(http: TestClient, csv_file: Path) -> None:
    body = csv_file.read_bytes()
    response = http.put("/v1/models/car_loan/reference", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 415
    assert response.json()["detail"].startswith(
        "content type 'application/json' is not a reference format; send text/csv"
    )
    response = http.put("/v1/models/car_loan/reference", content=body, params={"format": "xlsx"}, headers=CSV)
    assert response.status_code == 422
    # An explicit format wins over the content type.
    response = http.put(
        "/v1/models/car_loan/reference", content=body, params={"format": "csv"}, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 201


def test_scopes_are_enforced(tmp_path: Path, csv_file: Path) -> None:
    tokens = [
        {"name": "ops", "token": "admin-secret", "scopes": ["admin", "read"]},
        {"name": "dashboard", "token": "read-secret", "scopes": ["read"]},
    ]
    with api(settings(tmp_path, auth={"tokens": tokens})) as http:
        put = lambda token: http.put(  # noqa: E731
            "/v1/models/car_loan/reference",
            content=csv_file.read_bytes(),
            headers={**CSV, **({"authorization": f"Bearer {token}"} if token else {})},
        )
        assert put(None).status_code == 401
        assert put("wrong").status_code == 401
        refused = put("read-secret")
        assert (refused.status_code, refused.json()["detail"]) == (403, "this token may not admin: its scopes are read")
        assert put("admin-secret").status_code == 201
        for path in ("reference", "references", "results"):
            assert http.get(f"/v1/models/car_loan/{path}").status_code == 401
            answer = http.get(f"/v1/models/car_loan/{path}", headers={"authorization": "Bearer read-secret"})
            assert answer.status_code == 200


@pytest.fixture(scope="module")
def shared_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with api(settings(tmp_path_factory.mktemp("uploads"))) as test_client:
        yield test_client


def test_no_5xx_for_any_upload(shared_http: TestClient) -> None:
    cells = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.just({"a": 1})
    rows = st.dictionaries(st.sampled_from([*FEATURES, "prediction", "inputs", "timestamp"]), cells, max_size=9)
    bodies = st.one_of(
        st.binary(max_size=400),
        st.text(alphabet="ab,;\n\"'0123456789.-eTF", max_size=400).map(str.encode),
        st.lists(rows, max_size=5).map(lambda items: "\n".join(json.dumps(item) for item in items).encode()),
    )
    statuses: set[int] = set()

    @hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=bodies, fmt=st.sampled_from(["csv", "parquet", "jsonl"]))
    def upload(body: bytes, fmt: str) -> None:
        response = shared_http.put("/v1/models/car_loan/reference", content=body, params={"format": fmt})
        assert response.status_code in (201, 400), response.text
        statuses.add(response.status_code)

    upload()
    assert 400 in statuses


# -- GET results -----------------------------------------------------------------------


def test_results_route_filters_the_time_series(http: TestClient) -> None:
    def row(seq: int, kind: str = "feature_drift", feature: str = "car_value", method: str = "ks", **more: Any) -> dict:
        return {
            "model": "car_loan",
            "window_seq": seq,
            "kind": kind,
            "feature": feature,
            "method": method,
            "drift": False,
            **more,
        }

    http.app.state.store.add_results(
        [
            row(1, statistic=0.12, pvalue=float("nan"), detail={"edges": [1.0, float("inf")]}),
            row(1, feature="salary_range", method="chi2", drift=True),
            row(2),
            row(2, kind="latency", feature="", method="p99", statistic=41.5),
            row(3),
        ]
    )
    everything = http.get("/v1/models/car_loan/results").json()
    assert everything["model"] == "car_loan"
    assert [(r["window_seq"], r["feature"], r["method"]) for r in everything["results"]] == [
        (1, "car_value", "ks"), (1, "salary_range", "chi2"), (2, "car_value", "ks"), (2, "", "p99"), (3, "car_value", "ks"),
    ]  # fmt: skip
    first = everything["results"][0]
    assert (first["statistic"], first["pvalue"], first["detail"], first["drift"]) == (
        0.12,
        None,
        {"edges": [1.0, None]},
        False,
    )

    def seqs(**params: Any) -> list[tuple[int, str]]:
        response = http.get("/v1/models/car_loan/results", params=params)
        assert response.status_code == 200, response.text
        return [(r["window_seq"], r["method"]) for r in response.json()["results"]]

    assert seqs(kind="latency") == [(2, "p99")]
    assert seqs(feature="car_value", method="ks") == [(1, "ks"), (2, "ks"), (3, "ks")]
    assert seqs(kind="feature_drift", since_seq=2) == [(2, "ks"), (3, "ks")]
    assert seqs(limit=2) == [(1, "ks"), (1, "chi2")]
    assert seqs(method="psi") == []
    for bad in ({"limit": 0}, {"limit": 10_001}, {"since_seq": "x"}, {"kind": "k" * 33}):
        assert http.get("/v1/models/car_loan/results", params=bad).status_code == 422


# -- CLI -------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path), allow_unicode=True, sort_keys=False))  # feature order matters
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_sets_and_shows_references(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config_file: Path, csv_file: Path, frame: pd.DataFrame
) -> None:
    code, out, err = run(capsys, "reference", "show", "car_loan", "--config", config_file)
    assert (code, out, err) == (0, "model car_loan has no reference yet (set one with `monitor reference set`)\n", "")

    first = expected_hash(csv_file)
    code, out, err = run(capsys, "reference", "set", "car_loan", csv_file, "--config", config_file)
    assert (code, out, err) == (
        0,
        f"model car_loan: reference version 1 stored (2000 rows, content hash {first})\n",
        "",
    )

    parquet = tmp_path / "reference.parquet"
    frame.rename(columns={"prediction": "score", "latency_ms": "took_ms"}).head(1500).to_parquet(parquet)
    second = expected_hash(parquet, prediction_column="score", latency_column="took_ms")
    code, out, err = run(
        capsys, "reference", "set", "car_loan", parquet, "--config", config_file,
        "--prediction-column", "score", "--latency-column", "took_ms",
    )  # fmt: skip
    assert (code, out, err) == (
        0,
        f"model car_loan: reference version 2 stored (1500 rows, content hash {second})\n",
        "",
    )

    with Store(f"sqlite:///{tmp_path / 'monitor.db'}") as store:
        created = [
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["created_at"])) for r in store.references("car_loan")
        ]
        assert [r["source"] for r in store.references("car_loan")] == ["cli", "cli"]
    code, out, err = run(capsys, "reference", "show", "car_loan", "--config", config_file)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "VERSION  ACTIVE  CREATED (UTC)        SOURCE  ROWS  CONTENT HASH",
        f"2        yes     {created[0]}  cli     1500  {second[:16]}",
        f"1        no      {created[1]}  cli     2000  {first[:16]}",
    ]

    # The service reads the same database.
    with api(settings(tmp_path)) as http:
        assert http.get("/v1/models/car_loan/reference").json()["source"] == "cli"


def test_cli_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config_file: Path, csv_file: Path, frame: pd.DataFrame
) -> None:
    def fails(*argv: str | Path) -> str:
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "")
        return err

    assert fails("reference", "set", "fraud", csv_file, "--config", config_file) == (
        f"error: unknown model 'fraud': not in {config_file} (models: car_loan, iris)\n"
    )
    assert fails("reference", "show", "fraud", "--config", config_file) == (
        f"error: unknown model 'fraud': not in {config_file} (models: car_loan, iris)\n"
    )
    missing = tmp_path / "nowhere.csv"
    assert fails("reference", "set", "car_loan", missing, "--config", config_file) == (
        f"error: cannot read {missing}: No such file or directory\n"
    )
    lacking = tmp_path / "lacking.csv"
    frame.drop(columns=["car_value", "driver_tenure"]).to_csv(lacking, index=False)
    assert fails("reference", "set", "car_loan", lacking, "--config", config_file) == (
        f"error: {lacking}: missing columns 'car_value', 'driver_tenure' (the file has: salary_range, "
        "debt_to_income_ratio, loan_length, repaid_loan_on_prev_car, size_of_downpayment, prediction, latency_ms)\n"
    )
    sheet = tmp_path / "reference.xlsx"
    sheet.write_bytes(b"PK")
    assert fails("reference", "set", "car_loan", sheet, "--config", config_file) == (
        f"error: {sheet}: unknown file type (expected .csv, .parquet or .jsonl, optionally .gz)\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("models:\n  car_loan:\n    features:\n      x: {type: weird}\n")
    assert fails("reference", "show", "car_loan", "--config", broken) == (
        f"error: {broken}: invalid configuration: models.car_loan.features.x.type: must be one of numeric, categorical, boolean, got 'weird'\n"
    )
    assert fails("reference", "show", "car_loan", "--config", tmp_path / "absent.yaml") == (
        f"error: {tmp_path / 'absent.yaml'}: invalid configuration: cannot read file: No such file or directory\n"
    )
    with pytest.raises(SystemExit) as usage:  # argparse's own usage errors exit with 2 as well
        main(["reference", "set", "car_loan"])
    assert usage.value.code == 2
    assert not (tmp_path / "monitor.db").exists()  # every mistake was found before opening the database


def test_cli_database_failure_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path, csv_file: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    path = tmp_path / "unreachable.yaml"
    path.write_text(
        yaml.safe_dump(config(tmp_path, storage={"url": f"sqlite:///{tmp_path / 'a-file' / 'monitor.db'}"}))
    )
    code, out, err = run(capsys, "reference", "set", "car_loan", csv_file, "--config", path)
    assert (code, out) == (1, "")
    assert err.startswith(
        f"error: cannot upgrade database sqlite:///{tmp_path / 'a-file' / 'monitor.db'} to revision 'head': "
    )
