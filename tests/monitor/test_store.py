"""The store: dead letters, models and record counts against a real database file."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from monitor.settings import StorageConfig
from monitor.store import tables as t
from monitor.store.database import Store
from monitor.store.dead_letters import DeadLetter, DeadLetterWriter, dead_letter_row
from monitor.store.engine import StoreError, StoreUnavailable, is_transient
from monitor.store.migrate import current_revision, head_revision
from monitor.store.tables import COUNT_COLUMNS

T0 = 1_700_000_000.0


def letter(i: int, **overrides) -> DeadLetter:
    values = dict(
        received_at=T0 + i,
        source="http",
        model="fraud",
        item_index=i,
        path="inputs.amount",
        reason="wrong_type",
        message=f"item {i}: must be a number",
        raw={"model": "fraud", "id": str(i), "inputs": {"amount": [i]}},
    )
    values.update(overrides)
    return DeadLetter(**values)


# -- dead letters ---------------------------------------------------------------------


def test_dead_letters_round_trip_every_field(store: Store) -> None:
    store.add_dead_letters(
        [
            letter(0, headers={"ce-type": "prediction", "ce-id": "42"}),
            letter(1, source="kafka", model=None, path="", reason="invalid_json", message="not JSON",
                   raw=None, raw_bytes=b"\xff\xfe{oops", headers={"ce_id": b"k\xff", "x-api-key": b"s3cret"}),
            letter(2, source="file", raw=b'{"half": '),
            letter(3, raw="just a string", path="inputs.\x00weird", message="caf\u00e9 \ud800"),
        ]
    )  # fmt: skip
    newest, json_bytes, bad_bytes, item = store.dead_letters()

    assert newest == {
        "id": newest["id"], "received_at": T0 + 3, "source": "http", "model": "fraud", "item_index": 3,
        "path": "inputs.\ufffdweird", "reason": "wrong_type", "message": "caf\u00e9 ?",
        "raw": "just a string", "raw_bytes": None, "headers": None,
        "raw_size": len('"just a string"'), "raw_truncated": False, "raw_bytes_size": None, "raw_bytes_truncated": False,
        "stored_bytes": len('"just a string"') + len("inputs.\ufffdweird".encode()) + len("caf\u00e9 ?".encode()) + 200,
    }  # fmt: skip
    # Bytes given as raw: kept as bytes and shown decoded.
    assert (json_bytes["raw"], json_bytes["raw_bytes"], json_bytes["source"]) == ('{"half": ', b'{"half": ', "file")
    # Undecodable bytes: decoded with replacement characters, originals kept; bytes in headers
    # decoded, and only allow-listed headers kept (never a credential).
    assert bad_bytes["raw"] == "\ufffd\ufffd{oops"
    assert (bad_bytes["raw_bytes"], bad_bytes["raw_bytes_size"]) == (b"\xff\xfe{oops", 7)
    assert bad_bytes["headers"] == {"ce_id": "k\ufffd"}
    assert (bad_bytes["model"], bad_bytes["path"], bad_bytes["reason"]) == (None, "", "invalid_json")
    assert item["raw"] == {"model": "fraud", "id": "0", "inputs": {"amount": [0]}}
    assert item["headers"] == {"ce-type": "prediction", "ce-id": "42"}
    assert [row["id"] for row in (newest, json_bytes, bad_bytes, item)] == sorted(
        (row["id"] for row in (newest, json_bytes, bad_bytes, item)), reverse=True
    )


def test_unserialisable_raw_values_fall_back_to_text(store: Store) -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<Thing>"

    cycle: list = []
    cycle.append(cycle)
    store.add_dead_letters(
        [
            letter(0, raw={"when": Thing(), "tags": {"a"}, "blob": b"ok"}),
            letter(1, raw={(1, 2): "tuple key"}),
            letter(2, raw=cycle),
            letter(3, raw={"x": 10**40}),
        ]
    )
    rows = {row["item_index"]: row["raw"] for row in store.dead_letters()}
    assert rows == {
        0: {"when": "<Thing>", "tags": ["a"], "blob": "ok"},
        1: "{(1, 2): 'tuple key'}",
        2: "[[...]]",
        3: "{'x': " + str(10**40) + "}",
    }


def test_dead_letters_newest_first_with_filters_and_paging(store: Store) -> None:
    store.add_dead_letters(
        [letter(i, model="a" if i % 2 else "b", reason="too_long" if i % 3 == 0 else "wrong_type") for i in range(12)]
    )
    store.add_dead_letters([letter(12, model="a", reason="too_long")])

    assert [row["item_index"] for row in store.dead_letters()] == list(range(12, -1, -1))
    assert [row["item_index"] for row in store.dead_letters(model="a")] == [12, 11, 9, 7, 5, 3, 1]
    assert [row["item_index"] for row in store.dead_letters(model="a", reason="too_long")] == [12, 9, 3]
    assert store.count_dead_letters() == 13
    assert store.count_dead_letters(model="a") == 7
    assert store.count_dead_letters(reason="too_long") == 5
    assert store.count_dead_letters(model="b", reason="too_long") == 2
    assert store.count_dead_letters(model="nobody") == 0

    first = store.dead_letters(limit=5)
    second = store.dead_letters(limit=5, before_id=first[-1]["id"])
    third = store.dead_letters(limit=5, before_id=second[-1]["id"])
    assert [row["item_index"] for row in first + second + third] == list(range(12, -1, -1))
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        store.dead_letters(limit=0)


def test_trim_keeps_exactly_the_newest(store: Store) -> None:
    store.add_dead_letters([letter(i) for i in range(250)])
    assert store.trim_dead_letters(500) == 0
    assert store.trim_dead_letters(100) == 150
    kept = store.dead_letters(limit=1000)
    assert [row["item_index"] for row in kept] == list(range(249, 149, -1))
    assert store.trim_dead_letters(100) == 0
    # Ids are not reused after a trim, so new letters still sort newest.
    store.add_dead_letters([letter(1000)])
    assert store.trim_dead_letters(0) == 101
    store.add_dead_letters([letter(1001)])
    assert store.dead_letters()[0]["id"] > kept[0]["id"]
    with pytest.raises(ValueError, match="max_rows must not be negative, got -1"):
        store.trim_dead_letters(-1)


def statements_sent(store: Store) -> list[tuple[str, bool]]:
    """Every statement ``store`` sends from now on, as ``(first word, executemany)``: what
    makes a write cheap is how many round trips it takes, which a count shows on any machine
    (a stopwatch does not, on a busy one)."""
    sent: list[tuple[str, bool]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        sent.append((statement.split(None, 1)[0].upper(), executemany))

    sa.event.listen(store.engine, "before_cursor_execute", before)
    return sent


def test_a_thousand_dead_letters_in_one_batch(store: Store) -> None:
    letters = [letter(i) for i in range(1000)]
    sent = statements_sent(store)
    store.add_dead_letters(letters)
    assert [s for s in sent if s[0] == "INSERT"] == [("INSERT", True)]  # one executemany, not 1,000 inserts
    assert store.count_dead_letters() == 1000
    store.add_dead_letters([])
    assert store.count_dead_letters() == 1000


# -- models ---------------------------------------------------------------------------


def test_upsert_model_inserts_then_replaces_config_keeping_created_at(store: Store) -> None:
    before = time.time()
    store.upsert_model("fraud", {"features": {"amount": {"type": "numeric"}}}, "config")
    store.upsert_model("churn", {}, "registered")
    (churn, fraud) = store.models()
    assert fraud["name"] == "fraud" and fraud["source"] == "config"
    assert fraud["config"] == {"features": {"amount": {"type": "numeric"}}}
    assert before <= fraud["created_at"] <= time.time()
    assert churn == {"name": "churn", "created_at": churn["created_at"], "config": {}, "source": "registered"}

    store.upsert_model("fraud", {"features": {}}, "registered")
    assert store.models()[1] == {
        "name": "fraud",
        "created_at": fraud["created_at"],
        "config": {"features": {}},
        "source": "registered",
    }


def test_json_columns_read_back_what_was_written(store: Store) -> None:
    # Written with orjson, or with the json module for what orjson refuses (integers beyond
    # 64 bits, non-string keys): read back the same either way.
    config = {"city": "Zürich €", "numbers": [1.5, -0.0, 1e16, 2**63 - 1, None, True], "nested": {"k": [{}]}}
    store.upsert_model("fraud", config, "config")
    store.upsert_model("churn", {"big": 2**70, 1: "one"}, "config")
    churn, fraud = store.models()
    assert fraud["config"] == config
    assert churn["config"] == {"big": 2**70, "1": "one"}


def test_upsert_model_refuses_bad_source_and_unserialisable_config(store: Store) -> None:
    with pytest.raises(ValueError, match=r"model 'fraud': source must be one of config, registered, got 'yaml'"):
        store.upsert_model("fraud", {}, "yaml")
    with pytest.raises(ValueError, match=r"model 'fraud': config is not JSON-serialisable"):
        store.upsert_model("fraud", {"x": object()}, "config")
    assert store.models() == []


# -- record counts --------------------------------------------------------------------


def test_add_counts_inserts_then_adds(store: Store) -> None:
    store.add_counts(
        {("fraud", "http"): {"received": 5, "accepted": 4, "rejected": 1}, ("fraud", "kafka"): {"joined": 2}}
    )
    store.add_counts(
        {("fraud", "http"): {"received": 2, "accepted": 2, "labels_joined": 1}, ("churn", "file"): {"received": 0}}
    )
    zero = dict.fromkeys(COUNT_COLUMNS, 0)
    assert store.counts() == {
        ("fraud", "http"): {**zero, "received": 7, "accepted": 6, "rejected": 1, "labels_joined": 1},
        ("fraud", "kafka"): {**zero, "joined": 2},
    }
    with pytest.raises(ValueError, match=r"unknown counter 'received_total'"):
        store.add_counts({("fraud", "http"): {"received_total": 1}})
    with pytest.raises(ValueError, match=r"received must be a non-negative integer, got -1"):
        store.add_counts({("fraud", "http"): {"received": -1}})
    assert store.counts()[("fraud", "http")]["received"] == 7


def test_add_counts_from_four_threads_is_exact(store: Store) -> None:
    threads, calls = 4, 250
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        start.wait()  # all threads race for the first INSERT of the shared key
        try:
            for _ in range(calls):
                store.add_counts(
                    {("fraud", "http"): {"received": 1, "accepted": 1}, ("fraud", f"thread-{n}"): {"joined": 2}}
                )
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    counts = store.counts()
    assert counts[("fraud", "http")]["received"] == threads * calls
    assert counts[("fraud", "http")]["accepted"] == threads * calls
    assert [counts[("fraud", f"thread-{n}")]["joined"] for n in range(threads)] == [2 * calls] * threads


# -- engine, ping, construction -------------------------------------------------------


def test_sqlite_connections_use_wal_and_the_other_pragmas(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'new' / 'folder' / 'monitor.db'}") as store:
        assert (tmp_path / "new" / "folder" / "monitor.db").is_file()
        with store.engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 1  # NORMAL
            assert pragma("busy_timeout") == 5000
            assert pragma("foreign_keys") == 1
        assert not store.engine.pool._pre_ping  # no server that could drop a connection: no SELECT 1 per checkout


def test_ping(store: Store) -> None:
    assert store.ping() is True


def test_ping_is_false_for_an_unreachable_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    # The parent "folder" is a file: it cannot be created, and SQLite cannot open the database.
    with Store(f"sqlite:///{tmp_path / 'a-file' / 'monitor.db'}", migrate=False) as store:
        assert store.ping() is False


def test_ping_is_false_for_a_postgres_port_nobody_listens_on() -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as sock:  # a port that was free a moment ago, so very likely closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Store(
        f"postgresql+psycopg://monitor:secret@127.0.0.1:{port}/monitor?connect_timeout=1", migrate=False
    ) as store:
        assert store.ping() is False
        assert "secret" not in store.url


def test_migrating_an_unreachable_database_names_it(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    url = f"sqlite:///{tmp_path / 'a-file' / 'monitor.db'}"
    with pytest.raises(StoreError, match=rf"cannot upgrade database {url} to revision 'head': .*unable to open"):
        Store(url)


def test_from_settings_honours_auto_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    with Store.from_settings(StorageConfig(url=url, auto_migrate=False)) as store:
        assert current_revision(store.engine) is None
        assert sa.inspect(store.engine).get_table_names() == []
    with Store.from_settings(StorageConfig(url=url)) as store:
        assert current_revision(store.engine) == head_revision()


# -- pooling, transient errors, availability ------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago, so very likely closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql+psycopg://monitor@127.0.0.1:{port}/monitor?connect_timeout=1"


def test_an_unreachable_database_fails_writes_after_three_attempts_with_store_unavailable_and_marks_it_down() -> None:
    with Store(closed_port_url(), migrate=False) as store:
        assert store.available
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable, match=r"adding record counts .* the database is unreachable \(3 attempt"):
            store.add_counts({("fraud", "http"): {"received": 1}})
        assert time.perf_counter() - started >= 0.6  # three attempts, 0.1 + 0.5 s apart (a floor only)
        assert not store.available and store.down_since is not None
        with pytest.raises(StoreUnavailable, match=r"\(1 attempt"):  # known down: one attempt, no waiting
            store.upsert_model("fraud", {}, "config")
        assert store.ping() is False and not store.available


def test_sqlite_statement_errors_are_not_taken_for_an_outage(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'monitor.db'}", migrate=False) as store:  # no tables
        with pytest.raises(sa.exc.OperationalError, match="no such table") as failure:
            store.add_counts({("fraud", "http"): {"received": 1}})
        assert not is_transient(failure.value)
        assert store.available


def test_a_server_database_gets_a_pinged_queue_pool_of_the_configured_size(postgres_databases) -> None:
    url = postgres_databases.create()
    try:
        config = StorageConfig(url=url, pool_size=2, pool_max_overflow=1, pool_timeout_seconds=0.5)
        with Store.from_settings(config) as store:
            pool = store.engine.pool
            assert isinstance(pool, sa.pool.QueuePool) and pool.size() == 2
            assert store.engine.pool._pre_ping  # a connection broken by a restart is replaced, not used
            held = [store.engine.connect() for _ in range(3)]  # the pool and its overflow
            try:
                started = time.perf_counter()
                with pytest.raises(sa.exc.TimeoutError) as waited:
                    store.engine.connect()
                assert time.perf_counter() - started > 0.4  # it waited out pool_timeout_seconds (a floor only)
                assert is_transient(waited.value)
            finally:
                for conn in held:
                    conn.close()
            assert store.ping()
    finally:
        postgres_databases.drop(url)


def test_connections_cut_by_the_server_are_replaced_and_a_cut_transaction_is_rerun(postgres_databases) -> None:
    url = postgres_databases.create()
    try:
        with Store(url) as store:
            store.add_counts({("fraud", "http"): {"received": 1}})
            # The server ends every other session (as a restart or a failover does): the pooled
            # connection is dead, the pre-ping notices and the write goes through on a new one.
            admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
            with admin.connect() as conn:
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            admin.dispose()
            store.add_counts({("fraud", "http"): {"received": 1}})
            # Cut in the middle of a transaction: rolled back, and run again from scratch.
            runs: list[int] = []

            def work(conn: sa.Connection) -> None:
                runs.append(1)
                conn.execute(sa.update(t.record_counts).values(accepted=t.record_counts.c.accepted + 1))
                if len(runs) == 1:
                    conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

            store._write_retrying(work, "a test write")
            assert len(runs) == 2 and store.available
            assert store.counts()[("fraud", "http")] == {
                **dict.fromkeys(COUNT_COLUMNS, 0),
                "received": 2,
                "accepted": 1,
            }
    finally:
        postgres_databases.drop(url)


# -- dead letters: bounded in bytes ---------------------------------------------------


def test_a_huge_item_is_cut_to_the_cap_and_flagged_with_its_size(store: Store) -> None:
    cap = 4096
    huge = {"model": "fraud", "extra": "\u00e9" * 1_000_000}  # 2,000,000 bytes of text; the cut splits a character
    raw_text = orjson.dumps(huge)
    payload = bytes(range(256)) * 100  # 25,600 raw bytes
    many = {f"ce-x{i}": "v" * 5000 for i in range(50)} | {"x-api-key": "k", "authorization": "Bearer t"}
    store.add_dead_letters(
        [
            letter(0, raw=huge),
            letter(1, source="kafka", raw=None, raw_bytes=payload, headers=many),
            letter(2, raw={"small": 1}),
        ],
        max_item_bytes=cap,
    )
    small, cut_bytes, cut_raw = store.dead_letters()
    assert (cut_raw["raw_truncated"], cut_raw["raw_size"]) == (True, len(raw_text))
    kept = cut_raw["raw"].encode()
    assert kept == raw_text[: len(kept)] and cap - 1 <= len(kept) <= cap  # a whole character less at most
    assert cut_raw["stored_bytes"] == len(kept) + len(b"inputs.amount") + len(b"item 0: must be a number") + 200

    assert (cut_bytes["raw_bytes"], cut_bytes["raw_bytes_size"]) == (payload[:cap], len(payload))
    assert cut_bytes["raw_bytes_truncated"] and cut_bytes["raw_truncated"]  # raw is the decoded bytes, cut too
    assert cut_bytes["raw_size"] == len(orjson.dumps(payload.decode("utf-8", errors="replace")))
    # At most 32 headers, each value cut to 1024 characters; credentials are not on the allow-list.
    assert list(cut_bytes["headers"]) == [f"ce-x{i}" for i in range(32)]
    assert {len(value) for value in cut_bytes["headers"].values()} == {1024}
    assert cut_bytes["stored_bytes"] < 2 * cap + 32 * (1024 + 16) + 400

    assert (small["raw"], small["raw_truncated"], small["raw_size"]) == ({"small": 1}, False, len(b'{"small":1}'))


def test_trim_by_bytes_keeps_the_newest_rows_within_the_limit(store: Store) -> None:
    store.add_dead_letters([letter(i, raw={"pad": "x" * 1000}) for i in range(100)])
    sizes = {row["item_index"]: row["stored_bytes"] for row in store.dead_letters(limit=1000)}
    assert len(set(sizes.values())) <= 2  # item 10-99 one digit longer
    assert store.trim_dead_letter_bytes(sum(sizes.values())) == 0
    limit = sum(sizes[i] for i in range(70, 100))  # exactly the 30 newest
    assert store.trim_dead_letter_bytes(limit) == 70
    assert [row["item_index"] for row in store.dead_letters(limit=1000)] == list(range(99, 69, -1))
    assert store.trim_dead_letter_bytes(limit - 1) == 1  # one byte less: the oldest of them goes
    assert store.trim_dead_letter_bytes(0) == 29
    assert store.count_dead_letters() == 0
    with pytest.raises(ValueError, match="max_bytes must not be negative, got -1"):
        store.trim_dead_letter_bytes(-1)


def test_a_page_stops_at_its_byte_budget_and_says_whether_more_remain(store: Store) -> None:
    store.add_dead_letters([letter(i, raw={"pad": "x" * 1000}) for i in range(20)])
    size = store.dead_letters(limit=1)[0]["stored_bytes"]
    seen: list[int] = []
    before_id = None
    pages = []
    while True:
        rows, more = store.dead_letter_page(None, None, 100, before_id, max_bytes=3 * size)
        pages.append(len(rows))
        seen += [row["item_index"] for row in rows]
        if not more:
            break
        before_id = rows[-1]["id"]
    assert pages == [3, 3, 3, 3, 3, 3, 2] and seen == list(range(19, -1, -1))
    # The row limit still holds; a budget smaller than one row still returns one row.
    rows, more = store.dead_letter_page(None, None, 2, None, max_bytes=10**9)
    assert [row["item_index"] for row in rows] == [19, 18] and more
    rows, more = store.dead_letter_page("fraud", "wrong_type", 100, None, max_bytes=1)
    assert len(rows) == 1 and more
    assert store.dead_letter_page("nobody", None, 100, None, max_bytes=10**9) == ([], False)


def test_the_writer_keeps_the_table_within_both_limits_and_counts_what_went(store: Store) -> None:
    dropped: list[tuple[str, int]] = []
    rows = [dead_letter_row(letter(i, raw={"pad": "x" * 10_000})) for i in range(200)]
    size = rows[-1]["stored_bytes"]  # items 100-199: one size
    writer = DeadLetterWriter(store, max_rows=150, max_bytes=100 * size, dropped=lambda *d: dropped.append(d))
    for start in range(0, 200, 5):  # 5 rows per write: it trims each time it wrote max_bytes / 8
        writer.write(rows[start : start + 5])
    assert store.count_dead_letters() <= 100 + 100 // 8 + 5
    writer.trim()  # the housekeeping round
    assert store.count_dead_letters() == 100
    assert [row["item_index"] for row in store.dead_letters(limit=1)] == [199]
    assert sum(n for cause, n in dropped if cause == "byte_limit") == 100
    writer = DeadLetterWriter(store, max_rows=150, max_bytes=100 * size, dropped=lambda *d: dropped.append(d))
    dropped.clear()
    store.add_dead_letter_rows([dead_letter_row(letter(i)) for i in range(100)])  # small ones: the row limit bites
    writer.trim()
    assert dropped == [("row_limit", 50)] and store.count_dead_letters() == 150
