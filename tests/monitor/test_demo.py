"""`monitor demo`: the service in a real process, fed the car-loan analysis period over
HTTP; the output names the alerts that fired and the drifted features with scores."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from monitor.cli import build_parser, demo

DRIFTING = ["car_value", "loan_length", "repaid_loan_on_prev_car", "salary_range"]
STABLE = ["debt_to_income_ratio", "size_of_downpayment", "driver_tenure"]


def test_demo_fires_the_drift_alerts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--speed", "0", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    alerts, drifted = out.split("Alerts firing (5):", 1)[1].split("Drifted features in the latest window (4", 1)
    assert re.search(r"dataset-drift\s+critical\s+car_loan\s+-\s+5\s+0\.\d+", alerts)
    for feature in DRIFTING:
        assert re.search(rf"feature-drift\s+warning\s+car_loan\s+{feature}\s+6\s+0\.\d+", alerts), feature
        assert re.search(rf"^\s+{feature}\s+(wasserstein_normed|jensen_shannon_debiased)=\d+\.\d+", drifted, re.M)
    for feature in STABLE:
        assert feature not in out
    assert "Accepted 50,000 predictions and 50,000 labels; 10 drift windows" in out
    assert "Service stopped cleanly" in out
    # The latest labelled window beside the reference's figures, and a verdict (issue 17, item 9).
    performance = out.split("Performance of the latest labelled window (5,000 labels) against the reference:\n", 1)[1]
    assert performance.splitlines()[:4] == [
        "  accuracy  0.9118  reference 0.9477  drop 0.0359  allowed 0.0500  ok",
        "  roc_auc   0.9576  reference 0.9710  drop 0.0134  allowed 0.0500  ok",
        "  f1        0.9161  reference 0.9478  drop 0.0317  no limit        ok",
        "Verdict: performance holds (no metric dropped more than allowed)",
    ]
    assert (tmp_path / "service.log").exists() and (tmp_path / "monitor.db").exists()


def test_demo_reports_a_service_that_does_not_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:  # the port is taken: uvicorn cannot bind and exits
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = demo.main(["--speed", "0", "--workdir", str(tmp_path), "--port", str(busy.getsockname()[1])])
    assert code == 1
    err = capsys.readouterr().err
    assert "the service exited with code" in err and "service log" in err


def test_demo_is_a_cli_subcommand() -> None:
    args = build_parser().parse_args(["demo", "--speed", "500", "--keep-running"])
    assert args.speed == 500 and args.keep_running and args.port is None and args.workdir is None
