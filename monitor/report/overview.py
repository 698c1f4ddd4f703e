"""The models overview's figures, per model, from the store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.store.database import Store

HOUR = 3600.0


def overview_rows(store: Store, models: Iterable[str], now: float) -> list[dict[str, Any]]:
    """Per model: its active reference version, the records of the windows evaluated in the
    hour before ``now`` (epoch s), its latest window's drifted features and breached
    data-quality checks (``feature:check``), and how many of its alerts fire."""
    rows = []
    for model in models:
        latest = store.latest_results(model)
        dataset = [r for r in latest if r["kind"] == "dataset_drift"]
        window = dataset[0]["window_seq"] if dataset else None
        recent = 0
        if window is not None:
            for row in store.results(model, kind="dataset_drift", since_seq=window - 1000, limit=1001):
                if row["created_at"] >= now - HOUR:
                    recent += int(row["n_current"] or 0)
        active = next((r["version"] for r in store.references(model) if r["active"]), None)
        rows.append(
            {
                "name": model,
                "reference_version": active,
                "records_last_hour": recent,
                "latest_window": window,
                "drifted": list((dataset[0].get("detail") or {}).get("drifted") or []) if dataset else [],
                "breaches": [f"{r['feature']}:{r['method']}" for r in latest if r["kind"] == "quality" and r["drift"]],
                "firing": len(store.alerts(state="firing", model=model)),
            }
        )
    return rows
