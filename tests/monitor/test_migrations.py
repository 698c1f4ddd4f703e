"""The Alembic migrations, run in code: from empty, from the previous revision with data, twice."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from monitor.store.database import Store
from monitor.store.dead_letters import DeadLetter
from monitor.store.engine import StoreError, make_engine
from monitor.store.migrate import current_revision, downgrade, head_revision, upgrade
from monitor.store.tables import COUNT_COLUMNS, metadata

HEAD = "0006_kafka_checkpoints"
ALL_TABLES = [
    "alembic_version", "alert_transitions", "alerts", "dead_letters", "engine_state", "kafka_offsets",
    "model_checkpoints", "models", "record_counts", "references", "results", "webhook_deliveries",
]  # fmt: skip


LATER_THAN_0004 = ("kafka_offsets", "model_checkpoints", "webhook_deliveries")


def tables(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_head_is_the_kafka_checkpoints_revision() -> None:
    assert head_revision() == HEAD


def test_upgrade_of_an_empty_database_creates_every_table(store_url: str) -> None:
    assert current_revision(store_url) is None
    upgrade(store_url)
    assert current_revision(store_url) == HEAD
    assert tables(store_url) == ALL_TABLES


def test_upgraded_schema_matches_store_tables(store_url: str) -> None:
    upgrade(store_url)
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_upgrade_from_the_previous_revision_keeps_rows(store_url: str) -> None:
    upgrade(store_url, "0001_initial")
    assert current_revision(store_url) == "0001_initial"
    assert tables(store_url) == ["alembic_version", "dead_letters", "models"]
    with Store(store_url, migrate=False) as old:
        old.upsert_model("fraud", {"features": {"amount": {"type": "numeric"}}}, "config")
        old.upsert_model("churn", {}, "registered")
        old.add_dead_letters(
            [
                DeadLetter(1.0 + i, "http", "fraud", i, "inputs.amount", "wrong_type", "must be a number", {"i": i})
                for i in range(3)
            ]
            + [
                DeadLetter(
                    9.0, "kafka", None, 0, "", "invalid_json", "not JSON", None, raw_bytes=b"\xff", headers={"k": "v"}
                )
            ]
        )
        models_before, letters_before = old.models(), old.dead_letters()

    upgrade(store_url)

    assert current_revision(store_url) == HEAD
    assert tables(store_url) == ALL_TABLES
    with Store(store_url, migrate=False) as new:
        assert new.models() == models_before
        assert new.dead_letters() == letters_before
        assert [row["item_index"] for row in letters_before] == [0, 2, 1, 0]
        assert new.counts() == {}
        new.add_counts({("fraud", "http"): {"received": 3}})
        assert new.counts() == {("fraud", "http"): {**dict.fromkeys(COUNT_COLUMNS, 0), "received": 3}}


def test_upgrade_is_idempotent(store_url: str) -> None:
    upgrade(store_url)
    with Store(store_url) as store:  # migrates again: nothing to do
        store.add_counts({("fraud", "http"): {"accepted": 2}})
        store.upsert_model("fraud", {}, "config")
    upgrade(store_url)
    upgrade(store_url, HEAD)
    assert current_revision(store_url) == HEAD
    with Store(store_url) as store:
        assert store.counts()[("fraud", "http")]["accepted"] == 2
        assert [model["name"] for model in store.models()] == ["fraud"]


def test_concurrent_upgrades_of_an_empty_database_both_succeed(store_url: str) -> None:
    # What several workers starting at once do: one migrates, the other then finds nothing to do.
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def migrate() -> None:
        start.wait()
        try:
            upgrade(store_url)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=migrate) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert current_revision(store_url) == HEAD


def test_upgrade_from_0002_keeps_rows_and_adds_references_and_results(store_url: str) -> None:
    upgrade(store_url, "0002_record_counts")
    assert tables(store_url) == ["alembic_version", "dead_letters", "models", "record_counts"]
    with Store(store_url, migrate=False) as old:
        old.upsert_model("fraud", {"features": {"amount": {"type": "numeric"}}}, "config")
        old.add_dead_letters(
            [DeadLetter(5.0, "http", "fraud", 0, "inputs", "wrong_type", "must be a number", {"a": 1})]
        )
        old.add_counts({("fraud", "http"): {"received": 7, "accepted": 6, "rejected": 1}})
        before = (old.models(), old.dead_letters(), old.counts())

    upgrade(store_url)

    assert current_revision(store_url) == HEAD
    assert tables(store_url) == ALL_TABLES
    with Store(store_url, migrate=False) as new:
        assert (new.models(), new.dead_letters(), new.counts()) == before
        assert new.references("fraud") == [] and new.results("fraud") == []
        assert (
            new.save_reference("fraud", b"profile", content_hash="ab" * 32, source="file", summary={"rows": 1}) == "1"
        )
        new.add_results(
            [
                {
                    "model": "fraud",
                    "window_seq": 0,
                    "kind": "quality",
                    "feature": "",
                    "method": "null_rate",
                    "drift": False,
                }
            ]
        )
        assert new.active_reference("fraud") == ("1", b"profile")
        assert [row["kind"] for row in new.results("fraud")] == ["quality"]


def test_downgrade_one_step_drops_references_and_results_only(store_url: str) -> None:
    with Store(store_url) as store:
        store.add_counts({("fraud", "http"): {"received": 1}})
        store.save_reference("fraud", b"profile", content_hash="ab" * 32, source="cli", summary={})
        downgrade(store.engine, "0003_references_results")
        assert tables(store_url) == [
            t for t in ALL_TABLES if t not in ("alert_transitions", "alerts", "engine_state") + LATER_THAN_0004
        ]
        downgrade(store.engine, "0002_record_counts")
        assert current_revision(store.engine) == "0002_record_counts"
        assert store.counts()[("fraud", "http")]["received"] == 1
    assert tables(store_url) == ["alembic_version", "dead_letters", "models", "record_counts"]
    upgrade(store_url)  # and back up: the tables come back empty
    with Store(store_url, migrate=False) as store:
        assert store.references("fraud") == []


def test_downgrade_to_0001_drops_record_counts_too(store_url: str) -> None:
    with Store(store_url) as store:
        store.add_dead_letters([DeadLetter(1.0, "http", "fraud", 0, "", "missing_field", "model is required", {})])
        store.add_counts({("fraud", "http"): {"received": 1}})
        engine = store.engine
        downgrade(engine, "0001_initial")
        assert current_revision(engine) == "0001_initial"
        assert store.count_dead_letters() == 1
    assert tables(store_url) == ["alembic_version", "dead_letters", "models"]
    downgrade(store_url, "base")
    assert current_revision(store_url) is None
    assert tables(store_url) == ["alembic_version"]


def test_a_failed_migration_names_the_database_and_revision(store_url: str) -> None:
    shown = sa.make_url(store_url).render_as_string(hide_password=True)
    with pytest.raises(StoreError) as failure:
        upgrade(store_url, "9999_missing")
    assert str(failure.value).startswith(f"cannot upgrade database {shown} to revision '9999_missing': ")
    assert current_revision(store_url) is None


def test_upgrade_creates_the_sqlite_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'data' / 'monitor.db'}"
    upgrade(url)
    assert (tmp_path / "var" / "data" / "monitor.db").is_file()
    assert current_revision(url) == HEAD


def test_downgrade_to_0004_drops_the_outbox_and_checkpoints_only(store_url: str) -> None:
    with Store(store_url) as store:
        store.apply_alert_transitions([], {"format_version": 1, "rules": [], "states": []})
        downgrade(store.engine, "0004_alerts")
        assert current_revision(store.engine) == "0004_alerts"
        assert store.alert_engine_state() == {"format_version": 1, "rules": [], "states": []}
    assert tables(store_url) == [t for t in ALL_TABLES if t not in LATER_THAN_0004]
    upgrade(store_url)
    with Store(store_url, migrate=False) as store:
        assert store.webhook_deliveries() == []
