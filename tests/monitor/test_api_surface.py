"""What a real ``monitor serve`` shows the outside: its /metrics pass Prometheus' own lint,
and with tokens configured its API documentation needs one like every other route."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from support import ServiceProcess, car_loan_record, config, wait_for

TOKENS = {"tokens": [{"name": "oncall", "token": "read-secret", "scopes": ["read"]}]}
DOCS = ("/openapi.json", "/docs", "/redoc")


def test_the_metrics_pass_promtool_check_metrics(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH: `./dev test` installs Debian's prometheus package")
    car_loan = {
        "features": {"car_value": {"type": "numeric"}, "salary_range": {"type": "categorical"}},
        "prediction": {"kind": "binary"},
        "reference": {"from_first_records": 200},
        "window": {"kind": "count", "size": 200},
        "latency": {"slo_ms": 100},
    }
    with ServiceProcess(tmp_path, config(tmp_path, models={"car_loan": car_loan})) as service:
        records = [car_loan_record(i, latency_ms=float(i % 50)) for i in range(400)]
        assert httpx.post(f"{service.url}/v1/records", json=records, timeout=30).json()["accepted"] == 400
        # Every family populated, latency quantiles included (they were the lint's finding).
        wait_for(
            lambda: (
                'monitor_windows_evaluated_total{kind="drift",model="car_loan"} 1.0'
                in httpx.get(f"{service.url}/metrics").text
            ),
            60,
            "the first window evaluated",
        )
        exposition = httpx.get(f"{service.url}/metrics", timeout=30).text
    lint = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")
    assert 'monitor_model_latency_seconds{model="car_loan",q="0.99"}' in exposition


def test_the_api_docs_need_a_token_when_auth_is_on(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, config(tmp_path, auth=TOKENS)) as service:
        for path in DOCS:
            assert httpx.get(f"{service.url}{path}", timeout=30).status_code == 401, path
            authorized = httpx.get(f"{service.url}{path}", headers={"authorization": "Bearer read-secret"}, timeout=30)
            assert authorized.status_code == 200, path
        spec = httpx.get(f"{service.url}/openapi.json", headers={"authorization": "Bearer read-secret"}).json()
        assert "/v1/records" in spec["paths"] and not set(DOCS) & set(spec["paths"])
    # Listed in auth.open_paths, they are open, and only they.
    opened = {**TOKENS, "open_paths": ["/healthz", "/readyz", "/docs", "/openapi.json"]}
    with ServiceProcess(tmp_path, config(tmp_path, auth=opened)) as service:
        assert [httpx.get(f"{service.url}{path}").status_code for path in DOCS] == [200, 200, 401]
