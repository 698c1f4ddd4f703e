"""A locked SQLite file does not freeze the event loop (issue 15, case 7), against a real
``monitor serve``: another process holds the write lock (``BEGIN IMMEDIATE`` on the same
file) while hostile rejected items are posted; they are answered with their errors at
once, ``/healthz`` answers while the lock is still held and before any write waiting for it
has given up, and once the lock is released every dead letter is stored, exactly once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import orjson
from support import ServiceProcess, car_loan_record, config, wait_for

NDJSON = {"content-type": "application/x-ndjson"}
REQUESTS = 5
# What a write that waits for the lock logs when it gives up (SQLite's busy timeout, 5 s):
# the store is then marked down (monitor.store.database.Store.mark_down).
GAVE_UP = "is unreachable"


def hostile_batch(request: int) -> tuple[bytes, int]:
    """An NDJSON body of items that are all rejected: invalid JSON, a 200 KB unknown field,
    wrong types, deep nesting, an unknown model. Returns the body and its item count."""
    lines = [
        b'{"model": "car_loan", "id": "broken',
        orjson.dumps(car_loan_record(request, padding="x" * 200_000)),
        orjson.dumps(car_loan_record(request, inputs={"car_value": [[[[1]]]]})),
        orjson.dumps({"model": "car_loan", "id": f"d{request}", "inputs": {"a": {"b": {"c": {"d": {"e": 1}}}}}}),
        orjson.dumps(car_loan_record(request, model="not-configured")),
        orjson.dumps(car_loan_record(request, latency_ms=-1)),
    ]
    return b"\n".join(lines), len(lines)


def dead_letter_count(url: str) -> int:
    rows = httpx.get(f"{url}/v1/dead-letters", params={"limit": 1000}, timeout=60).json()["dead_letters"]
    return len(rows)


def test_healthz_answers_while_another_process_holds_the_sqlite_write_lock(tmp_path: Path) -> None:
    data = config(tmp_path)
    database = tmp_path / "monitor.db"
    with ServiceProcess(tmp_path, data) as service:
        rejected = 0
        clean_attempt = False
        for _attempt in range(3):  # a second try only if the machine was too slow to show the order
            log_before = len(service.log())
            holder = sqlite3.connect(database, isolation_level=None, timeout=60)
            holder.execute("BEGIN IMMEDIATE")  # the write lock, until ROLLBACK
            try:
                before = holder.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
                answered = []
                for request in range(REQUESTS):
                    body, items = hostile_batch(request)
                    answer = httpx.post(f"{service.url}/v1/records", content=body, headers=NDJSON, timeout=60)
                    answered.append(answer.status_code)
                    if answer.status_code == 422:  # every item refused, each with its error
                        assert answer.json()["rejected"] == items and len(answer.json()["errors"]) == items
                        rejected += items
                    else:  # the store was marked down meanwhile (a write gave up): nothing taken
                        assert answer.status_code == 503
                health = httpx.get(f"{service.url}/healthz", timeout=60)
                gave_up = GAVE_UP in service.log()[log_before:]
                assert health.status_code == 200 and health.json() == {"status": "ok"}
                # Still locked: nothing of this attempt is in the table yet.
                assert holder.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == before
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            # The precondition that makes this a proof: no write waiting for the lock had
            # given up when /healthz answered (the old code's event loop sat through that wait
            # on each POST, so its first answer came only after a write had given up).
            if not gave_up and answered == [422] * REQUESTS:
                clean_attempt = True
                break
            wait_for(lambda: dead_letter_count(service.url) == rejected, 60, "the dead letters after the lock")  # noqa: B023
        assert clean_attempt, "every attempt saw a write give up before /healthz answered"

        # Released: everything rejected while it was held is stored, once.
        wait_for(lambda: dead_letter_count(service.url) == rejected, 60, "the dead letters after the lock")
        metrics = httpx.get(f"{service.url}/metrics").text
        assert 'monitor_dead_letters_dropped_total{cause="store_error"} 0.0' in metrics
        assert 'monitor_store_writes_dropped_total{kind="dead_letters"}' not in metrics or (
            'monitor_store_writes_dropped_total{kind="dead_letters"} 0.0' in metrics
        )
        rows = httpx.get(f"{service.url}/v1/dead-letters", params={"limit": 1000}).json()["dead_letters"]
        assert len(rows) == len({row["id"] for row in rows}) == rejected and rejected % 6 == 0
        reasons = sorted({row["reason"] for row in rows})
        assert reasons == ["invalid_json", "invalid_value", "unknown_field", "unknown_model", "wrong_type"]
