"""Issue 17, item 5: the results API is as strict as ingestion (422 for an unknown kind or
feature), gives ISO 8601 times, filters by time and pages with a cursor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import client, settings

BASE = 1_714_564_800.0  # 2024-05-01T12:00:00Z


def row(seq: int, kind: str = "feature_drift", feature: str = "car_value", method: str = "ks") -> dict[str, Any]:
    # Windows of one hour: window seq ends at BASE + (seq + 1) hours.
    start = BASE + seq * 3600.0
    return {"model": "car_loan", "window_seq": seq, "window_start": start, "window_end": start + 3600.0,
            "kind": kind, "feature": feature, "method": method, "drift": False, "statistic": 0.1}  # fmt: skip


def test_results_are_strict_dated_filtered_and_paged(tmp_path: Path) -> None:
    with client(settings(tmp_path)) as (http, _):
        store = http.app.state.store  # type: ignore[attr-defined]
        store.add_results([row(seq, method=m) for seq in range(6) for m in ("ks", "wasserstein_normed")])
        store.add_results([row(0, kind="dataset_drift", feature="", method="share")])

        def get(**params: Any) -> Any:
            return http.get("/v1/models/car_loan/results", params=params)

        unknown_kind = get(kind="drift")
        assert unknown_kind.status_code == 422
        assert unknown_kind.json()["detail"] == (
            "query.kind: unknown result kind 'drift'; kinds: dataset_drift, estimated_performance, feature_drift, "
            "latency, multivariate_drift, performance, prediction_drift, quality, version_divergence"
        )
        unknown_feature = get(feature="car_valeu")
        assert unknown_feature.status_code == 422
        assert unknown_feature.json()["detail"] == (
            "query.feature: model 'car_loan' has no feature 'car_valeu'; features: 'car_value', 'salary_range', "
            "'debt_to_income_ratio', 'loan_length', 'repaid_loan_on_prev_car', 'size_of_downpayment', "
            "'driver_tenure', 'prediction', 'latency_ms', ''"
        )
        # A configured feature without rows yet is an empty answer, not an error.
        assert get(feature="driver_tenure").json()["results"] == []
        for name, bad in (("since", "yesterday"), ("until", "2024-13-01"), ("cursor", "x")):
            response = get(**{name: bad})
            assert response.status_code == 422, name
            assert response.json()["detail"].startswith(f"query.{name}: "), response.json()

        first = get(kind="dataset_drift").json()["results"][0]
        assert (first["window_start_iso"], first["window_end_iso"]) == (
            "2024-05-01T12:00:00.000Z", "2024-05-01T13:00:00.000Z",
        )  # fmt: skip
        assert first["window_end"] == BASE + 3600.0  # epoch seconds stay for current clients
        assert first["created_at_iso"].endswith("Z")

        def seqs(**params: Any) -> list[int]:
            response = get(kind="feature_drift", method="ks", **params)
            assert response.status_code == 200, response.text
            return [r["window_seq"] for r in response.json()["results"]]

        # Windows ending at or after 14:00 and before 17:00: windows 1, 2 and 3.
        assert seqs(since="2024-05-01T14:00:00Z", until="2024-05-01T17:00:00+00:00") == [1, 2, 3]
        assert seqs(since=str(BASE + 3 * 3600.0)) == [2, 3, 4, 5]
        assert seqs(until="2024-05-01T12:59:59") == []  # naive times are UTC

        everything = get(kind="feature_drift").json()
        assert everything["next"] is None and len(everything["results"]) == 12
        pages, paged, cursor = [], [], None
        while True:
            page = get(kind="feature_drift", limit=5, **({"cursor": cursor} if cursor else {})).json()
            pages.append(len(page["results"]))
            paged += page["results"]
            cursor = page["next"]
            if cursor is None:
                break
        assert pages == [5, 5, 2]
        assert [r["id"] for r in paged] == [r["id"] for r in everything["results"]]
