"""The README's "Python API" examples run as printed: compare, profile, and the client
inside a FastAPI model server against a real `monitor serve`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support import ROOT, ServiceProcess, config


def _examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_three_examples() -> None:
    assert len(_examples()) == 3


@pytest.mark.parametrize("index", [0, 1])
def test_compare_and_profile_examples_print_the_known_drift(index: int) -> None:
    done = subprocess.run([sys.executable, "-c", _examples()[index]], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    expected = ["car_value", "salary_range", "repaid_loan_on_prev_car"] if index == 0 else [
        "car_value", "salary_range", "loan_length", "repaid_loan_on_prev_car"
    ]  # fmt: skip
    assert done.stdout.splitlines()[0] == repr(expected)


def test_model_server_example_delivers_its_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ServiceProcess(tmp_path, config(tmp_path)) as service:
        monkeypatch.setenv("MONITOR_URL", service.url)
        namespace: dict = {}
        exec(compile(_examples()[2], "README.md", "exec"), namespace)
        with TestClient(namespace["app"]) as model_server:
            for i in range(25):
                params = {"request_id": f"q{i}", "car_value": 30_000 + 1_000 * i, "salary_range": "40K - 60K €"}
                assert model_server.post("/predict", params=params).status_code == 200
        # leaving the app closed the client: everything was sent
        assert namespace["monitor_client"].stats["accepted"] == 25
        models = httpx.get(f"{service.url}/v1/models", timeout=30).json()["models"]
        assert next(m["records"] for m in models if m["name"] == "car_loan") == 25
    assert os.environ.get("MONITOR_URL") == service.url  # monkeypatch undoes it after the test
