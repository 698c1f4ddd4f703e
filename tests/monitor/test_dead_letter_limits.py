"""Dead letters cannot fill the disk (issue 15, case 6), against a real ``monitor serve``:
huge rejected items are cut to ``storage.dead_letter_max_item_bytes`` and flagged, the
SQLite file grows by their cut size only, the table is kept within
``storage.dead_letter_max_bytes`` (the oldest go, counted), ``GET /v1/dead-letters`` pages
within its byte cap, and CloudEvents dead letters keep allow-listed headers only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from support import ServiceProcess, car_loan_record, config, wait_for

from monitor.api.dead_letters import RESPONSE_MAX_BYTES

MiB = 1024 * 1024
ITEM_BYTES = 15 * MiB
ITEMS = 20


def store_bytes(tmp_path: Path) -> int:
    """The SQLite database as it takes the disk: the file and its write-ahead log."""
    return sum(path.stat().st_size for path in tmp_path.glob("monitor.db*") if not path.name.endswith("-shm"))


def huge_record(i: int) -> bytes:
    """A record refused for an unknown field holding 15 MiB: the whole item is its raw."""
    record = car_loan_record(i)
    record["padding"] = "p" * (ITEM_BYTES - 300)
    return orjson.dumps(record)


def pages(url: str, **params: Any) -> list[httpx.Response]:
    """Every page of GET /v1/dead-letters, following next_before_id."""
    answers = []
    before_id = None
    while True:
        query = {**params, **({"before_id": before_id} if before_id is not None else {})}
        answer = httpx.get(f"{url}/v1/dead-letters", params=query, timeout=60)
        assert answer.status_code == 200, answer.text
        answers.append(answer)
        before_id = answer.json()["next_before_id"]
        if before_id is None:
            assert answer.json()["stopped"] is None
            return answers


def metric(url: str, sample: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not exported")


@pytest.mark.parametrize("item_cap", [None, MiB], ids=["default-64KiB", "1MiB"])
def test_huge_rejected_items_are_cut_and_the_store_grows_by_the_cut_size_only(
    tmp_path: Path, item_cap: int | None
) -> None:
    storage = {} if item_cap is None else {"dead_letter_max_item_bytes": item_cap}
    cap = item_cap or 64 * 1024
    data = config(tmp_path, storage=storage, limits={"max_body_bytes": 16 * MiB})
    with ServiceProcess(tmp_path, data) as service:
        assert pages(service.url)[0].json()["dead_letters"] == []
        before = store_bytes(tmp_path)
        for i in range(ITEMS):
            body = huge_record(i)
            answer = httpx.post(
                f"{service.url}/v1/records", content=body, headers={"content-type": "application/json"}, timeout=60
            )
            assert answer.status_code == 422 and answer.json()["errors"][0]["reason"] == "unknown_field"
        answers = pages(service.url, limit=100)
        after = store_bytes(tmp_path)
        letters = [row for answer in answers for row in answer.json()["dead_letters"]]

        assert len(letters) == ITEMS and [row["item_index"] for row in letters] == [0] * ITEMS
        ids = [int(re.search(r'"id":"r(\d+)"', row["raw"])[1]) for row in letters]  # type: ignore[index]
        assert ids == list(range(ITEMS - 1, -1, -1))  # newest first, each once
        for i, row in zip(ids, letters, strict=True):
            assert row["raw_truncated"] is True and row["raw_size"] == len(huge_record(i))
            assert len(row["raw"].encode()) == cap  # cut in the ASCII padding: exactly at the cap
        sizes = [len(answer.content) for answer in answers]
        assert max(sizes) <= RESPONSE_MAX_BYTES
        if item_cap == MiB:  # 20 MiB of rows: several pages, each stopped by its byte cap
            assert len(answers) == 7 and {a.json()["stopped"] for a in answers[:-1]} == {"byte_limit"}
        grew = after - before
        # The rows (20 x the cap), and as much again at most in the write-ahead log's copy.
        print(f"store grew by {grew} bytes for {ITEMS} items of {ITEM_BYTES} bytes (cap {cap}); pages {sizes}")
        assert grew < 2 * ITEMS * cap + MiB
        assert (
            metric(service.url, 'monitor_records_rejected_total{model="car_loan",reason="unknown_field",source="http"}')
            == ITEMS
        )


def test_the_table_is_kept_within_its_byte_limit_the_oldest_going_first(tmp_path: Path) -> None:
    limit = MiB
    data = config(tmp_path, storage={"dead_letter_max_bytes": limit})
    posted = 40
    with ServiceProcess(tmp_path, data) as service:
        for i in range(posted):  # 200 KB each, cut to 64 KiB: 40 rows of ~66 KB are 2.6 MB
            body = orjson.dumps(car_loan_record(i, padding="q" * 200_000))
            answer = httpx.post(f"{service.url}/v1/records", content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 422
        dropped = 'monitor_dead_letters_dropped_total{cause="byte_limit"}'

        def kept() -> list[dict[str, Any]]:
            rows = [row for answer in pages(service.url, limit=1000) for row in answer.json()["dead_letters"]]
            trimmed = sum(row["stored_bytes"] for row in rows) <= limit
            return rows if trimmed and len(rows) + metric(service.url, dropped) == posted else []

        rows = wait_for(kept, 60, "the trim after the last write")
        sizes = [row["stored_bytes"] for row in rows]
        # The newest rows that fit, no fewer: one more would not have fitted.
        assert sum(sizes) <= limit < sum(sizes) + min(sizes)
        ids = [int(re.search(r'"id":"r(\d+)"', row["raw"])[1]) for row in rows]  # type: ignore[index]
        assert ids == list(range(posted - 1, posted - 1 - len(rows), -1))
        assert metric(service.url, dropped) == posted - len(rows) > 0
        assert metric(service.url, 'monitor_dead_letters_dropped_total{cause="store_error"}') == 0
        print(f"kept {len(rows)} dead letters, {sum(sizes)} bytes of {limit}; dropped {posted - len(rows)}")


def test_cloudevent_dead_letters_keep_allow_listed_headers_only(tmp_path: Path) -> None:
    tokens = [
        {"name": "server", "token": "ingest-secret", "scopes": ["ingest"]},
        {"name": "ops", "token": "admin-secret", "scopes": ["admin"]},
    ]
    data = config(tmp_path, auth={"tokens": tokens})
    headers = {
        "content-type": "application/json", "ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "http://kserve/",
        "ce-type": "org.kubeflow.serving.inference.request", "ce-inferenceservicename": "not-configured",
        "authorization": "Bearer ingest-secret", "x-api-key": "api-key-secret", "cookie": "session=cookie-secret",
        "x-auth-token": "token-secret", "x-request-id": "req-7", "user-agent": "kserve-logger/0.11",
    }  # fmt: skip
    with ServiceProcess(tmp_path, data) as service:
        answer = httpx.post(f"{service.url}/v1/cloudevents", content=b'{"instances": [[1, 2]]}', headers=headers)
        assert answer.status_code == 422 and answer.json()["errors"][0]["reason"] == "unknown_model"
        listed = httpx.get(f"{service.url}/v1/dead-letters", headers={"authorization": "Bearer admin-secret"})
        (letter,) = listed.json()["dead_letters"]
    assert letter["headers"] == {
        "content-type": "application/json", "content-length": "23", "ce-specversion": "1.0", "ce-id": "e-1",
        "ce-source": "http://kserve/", "ce-type": "org.kubeflow.serving.inference.request",
        "ce-inferenceservicename": "not-configured", "x-request-id": "req-7", "user-agent": "kserve-logger/0.11",
    }  # fmt: skip
    stored = (tmp_path / "monitor.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("monitor.db-wal"))
    for secret in (b"ingest-secret", b"api-key-secret", b"cookie-secret", b"token-secret"):
        assert secret not in stored  # nowhere in the database, not only not in the API's answer
