"""The Alembic migrations, run in code: from empty, from the previous revision with data, twice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from monitor.store.database import Store
from monitor.store.dead_letters import ROW_OVERHEAD_BYTES, DeadLetter, dead_letter_row
from monitor.store.engine import StoreError, make_engine
from monitor.store.migrate import current_revision, downgrade, head_revision, upgrade
from monitor.store.tables import COUNT_COLUMNS, metadata

HEAD = "0014_histogram_slices"
# The dead_letters columns before 0007: what older code wrote and read.
OLD_DEAD_LETTER_COLUMNS = (
    "id", "received_at", "source", "model", "item_index", "path", "reason", "message", "raw", "raw_bytes", "headers",
)  # fmt: skip
SIZE_COLUMNS = ("raw_size", "raw_truncated", "raw_bytes_size", "raw_bytes_truncated", "stored_bytes")
ALL_TABLES = [
    "alembic_version", "alert_transitions", "alerts", "dead_letters", "engine_state", "histograms",
    "instance_checkpoints", "instance_label_segments", "kafka_offsets", "model_checkpoints", "models", "record_counts",
    "references", "results", "webhook_deliveries",
]  # fmt: skip


LATER_THAN_0004 = (
    "histograms", "instance_checkpoints", "instance_label_segments", "kafka_offsets", "model_checkpoints",
    "webhook_deliveries",
)  # fmt: skip


def tables(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def add_old_dead_letters(url: str, letters: list[DeadLetter]) -> None:
    """Insert dead letters as code before 0007 did (no size columns)."""
    typed = {"raw_bytes": sa.LargeBinary(), "headers": sa.JSON(none_as_null=True)}
    table = sa.table("dead_letters", *(sa.column(name, typed.get(name)) for name in OLD_DEAD_LETTER_COLUMNS[1:]))
    # Uncut: code before 0007 kept items whole.
    rows = [{k: v for k, v in dead_letter_row(letter, 2**40).items() if k not in SIZE_COLUMNS} for letter in letters]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(table), rows)
    finally:
        engine.dispose()


def old_dead_letters(url: str) -> list[dict[str, Any]]:
    """The dead letters as code before 0007 read them, oldest first."""
    engine = make_engine(url)
    columns = ", ".join(OLD_DEAD_LETTER_COLUMNS)
    try:
        with engine.connect() as conn:
            return [
                dict(row) for row in conn.execute(sa.text(f"SELECT {columns} FROM dead_letters ORDER BY id")).mappings()
            ]
    finally:
        engine.dispose()


def test_head_is_the_dead_letter_sizes_revision() -> None:
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
        models_before = old.models()
    add_old_dead_letters(
        store_url,
        [
            DeadLetter(1.0 + i, "http", "fraud", i, "inputs.amount", "wrong_type", "must be a number", {"i": i})
            for i in range(3)
        ]
        + [
            DeadLetter(
                9.0, "kafka", None, 0, "", "invalid_json", "not JSON", None, raw_bytes=b"\xff", headers={"ce_id": "v"}
            )
        ],
    )
    letters_before = old_dead_letters(store_url)

    upgrade(store_url)

    assert current_revision(store_url) == HEAD
    assert tables(store_url) == ALL_TABLES
    assert old_dead_letters(store_url) == letters_before
    with Store(store_url, migrate=False) as new:
        assert new.models() == models_before
        assert [row["item_index"] for row in new.dead_letters()] == [0, 2, 1, 0]
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
        old.add_counts({("fraud", "http"): {"received": 7, "accepted": 6, "rejected": 1}})
        before = (old.models(), old.counts())
    add_old_dead_letters(
        store_url, [DeadLetter(5.0, "http", "fraud", 0, "inputs", "wrong_type", "must be a number", {"a": 1})]
    )
    letters_before = old_dead_letters(store_url)

    upgrade(store_url)

    assert current_revision(store_url) == HEAD
    assert tables(store_url) == ALL_TABLES
    assert old_dead_letters(store_url) == letters_before
    with Store(store_url, migrate=False) as new:
        assert (new.models(), new.counts()) == before
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


def test_upgrade_to_0007_measures_the_dead_letters_already_stored(store_url: str) -> None:
    """Rows from before 0007 get their sizes (so the byte limit counts them) and stay as they
    were; a downgrade drops the size columns and keeps the rows."""
    upgrade(store_url, "0006_kafka_checkpoints")
    huge = "\u00e9" * 300_000  # 600,000 bytes in UTF-8: such rows are why 0007 exists
    letters = [
        DeadLetter(1.0, "http", "fraud", 0, "inputs.amount", "wrong_type", "must be a number", {"note": huge}),
        DeadLetter(
            2.0, "kafka", None, 3, "", "invalid_json", "not JSON", None, raw_bytes=b"\xff{", headers={"ce_id": "7"}
        ),
    ]
    add_old_dead_letters(store_url, letters)
    before = old_dead_letters(store_url)

    upgrade(store_url)

    with Store(store_url, migrate=False) as new:
        first, second = reversed(new.dead_letters())
        text = orjson.dumps({"note": huge})
        assert (first["raw"], first["raw_size"], first["raw_truncated"]) == ({"note": huge}, len(text), False)
        path_message = len(b"inputs.amount") + len(b"must be a number")
        assert first["stored_bytes"] == len(text) + path_message + ROW_OVERHEAD_BYTES
        assert (second["raw_bytes"], second["raw_bytes_size"], second["raw_bytes_truncated"]) == (b"\xff{", 2, False)
        headers = len(orjson.dumps(second["headers"])) if store_url.startswith("sqlite") else None
        if headers is not None:  # PostgreSQL's JSON text spaces differently: measured by the database itself
            assert second["stored_bytes"] == len('"\ufffd{"'.encode()) + 2 + headers + len(b"not JSON") + 200
        assert new.trim_dead_letter_bytes(1000) == 1  # the huge old row counts and goes
        assert [row["item_index"] for row in new.dead_letters()] == [3]
    downgrade(store_url, "0006_kafka_checkpoints")
    assert old_dead_letters(store_url) == before[1:]
