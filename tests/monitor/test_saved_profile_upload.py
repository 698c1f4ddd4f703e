"""A saved notebook profile (``monitor.profile(df).save(path)``) as a model's reference, on a
real ``monitor serve``: uploaded as bytes, through ``MonitorClient.set_reference`` (a Profile
or its file) and with ``monitor reference set``; it is the very reference the same rows give,
and the service detects drift with it. A profile of another shape, or bytes that are no
saved profile, is a 422 naming the problem, never a 500."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from support import CAR_LOAN_FEATURES, ROOT, ServiceProcess, car_loan_record, config, wait_for

import monitor
from monitor.cli import main
from monitor.client import MonitorClient
from monitor.saved_profiles import MEDIA_TYPE

DATA = ROOT / "tests" / "data" / "car_loan"
KINDS = {name: spec["type"] for name, spec in CAR_LOAN_FEATURES.items()} | {"prediction": "numeric"}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "synthetic_car_loan_reference.csv.gz", nrows=5_000)
    return frame[[*CAR_LOAN_FEATURES, "y_pred_proba"]].rename(columns={"y_pred_proba": "prediction"})


def _put(service: ServiceProcess, body: bytes, content_type: str = MEDIA_TYPE) -> httpx.Response:
    return httpx.put(
        f"{service.url}/v1/models/car_loan/reference", content=body, headers={"content-type": content_type}, timeout=60
    )


def test_a_saved_profile_is_the_reference_its_rows_give(tmp_path: Path, rows: pd.DataFrame) -> None:
    car_loan = {**config(tmp_path)["models"]["car_loan"], "window": {"kind": "count", "size": 500}}
    with ServiceProcess(tmp_path, config(tmp_path, models={"car_loan": car_loan})) as service:
        client = MonitorClient(service.url, flush_seconds=0.1)
        from_rows = client.set_reference("car_loan", rows)  # profiled by the service
        profile = monitor.profile(rows, schema=KINDS)
        path = tmp_path / "car_loan.profile"
        profile.save(path)
        from_profile = client.set_reference("car_loan", profile)
        from_file = client.set_reference("car_loan", path)  # told by its bytes, whatever its name
        generic = _put(service, path.read_bytes(), "application/octet-stream")
        assert generic.status_code == 201, generic.text
        answers = [from_rows, from_profile, from_file, generic.json()]
        assert [a["version"] for a in answers] == ["1", "2", "3", "4"]
        assert [a["rows"] for a in answers] == [5_000] * 4
        assert len({a["content_hash"] for a in answers}) == 1  # the same reference, byte for byte
        active = httpx.get(f"{service.url}/v1/models/car_loan/reference", timeout=30).json()
        assert (active["version"], active["source"], active["summary"]["format"]) == ("4", "upload", "profile")
        assert active["summary"]["prediction_column"] == "prediction"
        assert [c["name"] for c in active["summary"]["channels"]] == [*CAR_LOAN_FEATURES, "__prediction__"]
        models = httpx.get(f"{service.url}/v1/models", timeout=30).json()["models"]
        estimation = next(m["estimation"] for m in models if m["name"] == "car_loan")
        assert estimation == {"methods": [], "error": "a saved profile holds no rows to fit estimators on"}
        # the service detects drift with it: one window of 500 records
        for i in range(500):
            record = car_loan_record(i)
            client.log("car_loan", record["inputs"], 0.5, id=f"r{i}")
        assert client.flush(timeout=120)
        wait_for(lambda: len(client.results("car_loan", kind="feature_drift")), 60, "drift results")
        results = client.results("car_loan", kind="feature_drift")
        assert set(results["window_seq"]) == {0} and set(results["feature"]) == set(CAR_LOAN_FEATURES)
        client.close()


def test_a_profile_of_another_shape_or_corrupt_bytes_is_a_422(tmp_path: Path, rows: pd.DataFrame) -> None:
    good = monitor.profile(rows, schema=KINDS).to_bytes()
    lacking = monitor.profile(rows.drop(columns=["driver_tenure", "prediction"]), schema=None).to_bytes()
    retyped = monitor.profile(rows, schema=KINDS | {"loan_length": "categorical"}).to_bytes()
    extra = monitor.profile(rows.assign(region="eu"), schema=KINDS | {"region": "categorical"}).to_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # inside the profile's arrays: its content hash no longer holds
    rng = np.random.default_rng(0)
    with ServiceProcess(tmp_path, config(tmp_path)) as service:

        def refused(body: bytes, content_type: str = MEDIA_TYPE) -> str:
            answer = _put(service, body, content_type)
            assert answer.status_code == 422, (answer.status_code, answer.text)
            detail = answer.json()["detail"]
            assert detail.startswith("reference for model 'car_loan': ")
            return str(detail.removeprefix("reference for model 'car_loan': "))

        assert refused(lacking) == (
            "the saved profile does not fit the model's config: no column 'driver_tenure' (numeric); "
            "no column 'prediction' (numeric)"
        )
        assert refused(retyped) == (
            "the saved profile does not fit the model's config: column 'loan_length' is categorical, the model's is numeric"
        )
        assert (
            refused(extra)
            == "the saved profile does not fit the model's config: columns the model does not have: ['region']"
        )
        assert refused(bytes(flipped)).startswith("not a readable saved monitor profile")
        assert refused(good[: len(good) // 3]).startswith("not a readable saved monitor profile")
        rows_sent_as_bytes = (
            "not a saved monitor profile (reference rows go as text/csv, application/vnd.apache.parquet "
            "or application/x-ndjson, or with ?format=csv|parquet|jsonl)"
        )
        assert refused(b"") == rows_sent_as_bytes
        assert refused(rows.to_csv().encode(), "application/octet-stream") == rows_sent_as_bytes
        for size in (8, 100, 10_000):  # noise, and noise behind a valid opening
            assert refused(rng.bytes(size)) == rows_sent_as_bytes
            assert refused(good[:10] + rng.bytes(size)).startswith("not a readable saved monitor profile: ")
        # the model's own config wins over the profile's: a prediction column of another name
        answer = httpx.put(
            f"{service.url}/v1/models/car_loan/reference", params={"prediction_column": "score"}, content=good,
            headers={"content-type": MEDIA_TYPE}, timeout=60,
        )  # fmt: skip
        assert answer.status_code == 422 and "no column 'score' (numeric)" in answer.json()["detail"]
        assert httpx.get(f"{service.url}/v1/models/car_loan/references", timeout=30).json()["references"] == []
        assert _put(service, good).status_code == 201  # and the service is none the worse


def test_reference_set_takes_a_saved_profile(
    tmp_path: Path, rows: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    config_file = tmp_path / "monitor.yaml"
    config_file.write_text(yaml.safe_dump(config(tmp_path), sort_keys=False))
    profile = monitor.profile(rows, schema=KINDS)
    saved = tmp_path / "reference.bin"  # any name: a saved profile is told by its bytes
    profile.save(saved)
    assert main(["reference", "set", "car_loan", str(saved), "--config", str(config_file)]) == 0
    out, err = capsys.readouterr()
    with ServiceProcess(tmp_path, config(tmp_path)) as service:
        active = httpx.get(f"{service.url}/v1/models/car_loan/reference", timeout=30).json()
    assert (out, err) == (
        f"model car_loan: reference version 1 stored (5000 rows, content hash {active['content_hash']})\n",
        "",
    )
    assert (active["source"], active["summary"]["rows"], active["summary"]["format"]) == ("cli", 5_000, "profile")
    other = tmp_path / "iris.profile"
    monitor.profile(rows[["car_value"]]).save(other)
    assert main(["reference", "set", "car_loan", str(other), "--config", str(config_file)]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {other}: the saved profile does not fit the model's config: no column 'salary_range' (categorical)"
    )


def test_no_damage_to_a_saved_profile_escapes_as_another_error(tmp_path: Path, rows: pd.DataFrame) -> None:
    from monitor.saved_profiles import SavedProfileError, reference_from_saved
    from monitor.settings import settings_from_mapping

    model = settings_from_mapping(config(tmp_path)).models["car_loan"]
    good = monitor.profile(rows.iloc[:500], schema=KINDS).to_bytes()
    expected = reference_from_saved(good, model)[0].content_hash
    rng = np.random.default_rng(1)
    outcomes = {"refused": 0, "same": 0}
    for trial in range(600):
        damaged = bytearray(good)
        if trial % 3 == 0:
            damaged = damaged[: int(rng.integers(0, len(good)))]
        elif trial % 3 == 1:
            damaged[int(rng.integers(0, len(good)))] ^= int(rng.integers(1, 256))
        else:
            at = int(rng.integers(0, len(good)))
            damaged[at:at] = rng.bytes(int(rng.integers(1, 9)))
        try:
            reference = reference_from_saved(bytes(damaged), model)[0]
        except SavedProfileError:
            outcomes["refused"] += 1
        else:  # only damage to the padding after the arrays could leave what the profile holds
            assert reference.content_hash == expected
            outcomes["same"] += 1
    assert outcomes["refused"] + outcomes["same"] == 600  # nothing else: no other exception escaped
    assert outcomes["refused"] >= 590  # the padding is a few bytes of thousands
