"""Issue 15, case 1, against a real ``monitor serve``: floods of large partial records and of
large class -> probability predictions stay within the join and label buffers' byte budgets.

RSS is read from /proc/<pid>/status (VmRSS) of the service process before and after each
flood. The bound on its growth comes from the budget: the estimate counts at least the
memory an entry really holds (calibrated in monitor/buffer_bytes.py), plus the allocator's
slack, which is about one request's transient memory (the parsed body, pinned in place by
the entries kept from it: ~4 x the body, measured) - 8 x the largest body here, + 16 MiB.
Without the budgets the same floods grow the process by ~650-690 MiB.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from support import ServiceProcess, config, scrape

from monitor.buffer_bytes import label_entry_bytes, record_bytes
from monitor.records import Record

MIB = 1024 * 1024
NDJSON = {"content-type": "application/x-ndjson"}
WIDE = {"features": {"a": {"type": "numeric"}, "b": {"type": "numeric"}}, "prediction": {"kind": "multiclass"}}


def rss(pid: int) -> int:
    """VmRSS of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def settled_rss(pid: int) -> int:
    """RSS once the service is idle and its memory settled: two readings a second apart
    within 1 MiB (a hang guard stops waiting after 60 readings)."""
    last = rss(pid)
    for _ in range(60):
        time.sleep(1.0)
        now = rss(pid)
        if abs(now - last) < MIB:
            return now
        last = now
    return last


def post(client: httpx.Client, url: str, items: list[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """Post items as NDJSON; (the answer, the body's size)."""
    body = b"\n".join(map(orjson.dumps, items))
    answer = client.post(f"{url}/v1/records", content=body, headers=NDJSON)
    assert answer.status_code == 200, answer.text[:500]
    return answer.json(), len(body)


def test_a_flood_of_large_partial_records_stays_within_the_join_budget(tmp_path: Path) -> None:
    budget, records, per_request = 32 * MIB, 600, 4
    data = config(tmp_path, limits={"join_buffer_bytes": budget})
    # With a checkpoint of the whole buffer every second: each encodes the buffer (~27 MB),
    # and none of those temporaries may stay resident (monitor/allocator.py: before one malloc
    # arena, 6 of 31 runs grew by 53-81 MiB).
    data["storage"]["checkpoint_seconds"] = 1

    def partial(n: int) -> dict[str, Any]:  # 1,024 features of 1,000 characters: ~1 MB
        return {"model": "car_loan", "id": f"p{n:05d}", "inputs": {f"f{j:04d}": f"{n:05d}{j:04d}" + "x" * 991 for j in range(1024)}}  # fmt: skip

    # Every flood record has the same estimated size (as the service parses it: orjson).
    first = orjson.loads(orjson.dumps(partial(0)))
    size = record_bytes(Record(model=first["model"], id=first["id"], inputs=first["inputs"]))
    held = budget // size
    assert 20 < held < records  # the budget binds, and holds some
    with ServiceProcess(tmp_path, data) as service, httpx.Client(timeout=120) as client:
        assert service.process is not None
        pid = service.process.pid
        # Warm-up: the same code paths, nothing buffered (records without id are complete).
        post(
            client, service.url, [{"model": "car_loan", "inputs": partial(0)["inputs"], "prediction": 1}] * per_request
        )
        before = settled_rss(pid)
        largest = 0
        for start in range(0, records, per_request):
            answer, length = post(client, service.url, [partial(n) for n in range(start, start + per_request)])
            assert answer["accepted"] == per_request
            largest = max(largest, length)
        after = settled_rss(pid)
        metrics = scrape(service.url)
        written = metrics['monitor_state_checkpoints_total{outcome="written"}']
        bound = budget + 8 * largest + 16 * MIB
        assert records * size > 4 * bound  # unbounded, the flood would take far more
        assert after - before <= bound, (after - before) / MIB
        # Three more checkpoints of the whole buffer (each after a change: an idle model is not
        # written again) leave nothing more behind; a 27 MB encoding kept would show.
        for _ in range(3):
            post(client, service.url, [{"model": "car_loan", "inputs": {"car_value": 1.0}, "prediction": 1}])
            deadline = time.monotonic() + 120
            while scrape(service.url)['monitor_state_checkpoints_total{outcome="written"}'] <= written:
                assert time.monotonic() < deadline, "no checkpoint after a change"
                time.sleep(0.2)
            written += 1
        assert settled_rss(pid) - after <= 8 * MIB, (settled_rss(pid) - after) / MIB
        # Every eviction counted, by cause; each evicted part went on as incomplete.
        assert metrics['monitor_join_evicted_total{cause="bytes",model="car_loan"}'] == records - held
        assert 'monitor_join_evicted_total{cause="entries",model="car_loan"}' not in metrics
        assert metrics['monitor_join_incomplete_total{missing="prediction",model="car_loan"}'] == records - held
        assert metrics["monitor_join_buffer_records"] == held
        assert metrics["monitor_join_buffer_bytes"] == held * size <= budget

        # Normal traffic still joins, and the oldest flood parts make room for it.
        inputs = {"model": "car_loan", "id": "late", "inputs": {"car_value": 1.0, "loan_length": 20}}
        part = orjson.loads(orjson.dumps(inputs))
        small = record_bytes(Record(model=part["model"], id=part["id"], inputs=part["inputs"]))
        pushed = max(0, math.ceil((held * size + small - budget) / size))
        assert client.post(f"{service.url}/v1/records", json=inputs).json()["accepted"] == 1
        # The oldest flood part still held, with its counterpart, joins too (it was not evicted).
        oldest = records - held + pushed
        prediction = {"model": "car_loan", "id": "late", "prediction": 1}
        answer, _ = post(
            client, service.url, [prediction, {"model": "car_loan", "id": f"p{oldest:05d}", "prediction": 0}]
        )
        assert answer["accepted"] == 2 and answer["duplicates"] == 0
        metrics = scrape(service.url)
        assert (
            metrics['monitor_records_joined_total{model="car_loan"}'] == per_request + 3 + 2
        )  # warm-up, the three changes, the two joins
        assert metrics['monitor_join_evicted_total{cause="bytes",model="car_loan"}'] == records - held + pushed
        assert metrics["monitor_join_buffer_records"] == held - pushed - 1


def test_a_flood_of_large_predictions_stays_within_the_label_budget(tmp_path: Path) -> None:
    budget, records, per_request = 1 * MIB, 4_000, 25
    data = config(tmp_path, limits={"label_buffer_bytes": budget})
    data["models"]["wide"] = WIDE
    classes = [f"class_{k:03d}_" + "c" * 190 for k in range(500)]  # 500 names of 200 characters

    def complete(n: int | None) -> dict[str, Any]:  # ~110 KB of JSON, one winning class
        prediction = {name: ((k * 7 + (n or 0)) % 500) / 1000 for k, name in enumerate(classes)}
        item = {"model": "wide", "inputs": {"a": n or 0, "b": 1.0}, "prediction": prediction}
        return item if n is None else {**item, "id": f"w{n:05d}"}

    # What the label buffer keeps of each: the arg-max class's name (all of one length).
    size = label_entry_bytes(("wide", "w00000"), classes[0])
    held = budget // size
    assert 100 < held < records
    with ServiceProcess(tmp_path, data) as service, httpx.Client(timeout=120) as client:
        assert service.process is not None
        pid = service.process.pid
        post(client, service.url, [complete(None)] * per_request)  # warm-up; no id: nothing remembered
        before = settled_rss(pid)
        largest = 0
        for start in range(0, records, per_request):
            answer, length = post(client, service.url, [complete(n) for n in range(start, start + per_request)])
            assert answer["accepted"] == per_request
            largest = max(largest, length)
        after = settled_rss(pid)
        metrics = scrape(service.url)
        bound = budget + 8 * largest + 16 * MIB
        whole = label_entry_bytes(("wide", "w00000"), orjson.loads(orjson.dumps(complete(0)))["prediction"])
        assert records * whole > 4 * bound  # whole predictions, unbounded, would take far more
        assert after - before <= bound, (after - before) / MIB
        assert metrics['monitor_label_buffer_evicted_total{cause="bytes",model="wide"}'] == records - held
        assert not [
            name for name in metrics if name.startswith("monitor_label_buffer_evicted_total") and "bytes" not in name
        ]
        assert metrics["monitor_label_buffer_records"] == held
        assert metrics["monitor_label_buffer_bytes"] == held * size <= budget

        # Normal traffic: a prediction and its late label meet; the oldest go first, so the
        # oldest prediction still held meets its label and the last one evicted does not.
        small = label_entry_bytes(("wide", "late"), "yes")
        pushed = max(0, math.ceil((held * size + small - budget) / size))
        oldest = records - held + pushed
        late = {"model": "wide", "id": "late", "inputs": {"a": 1, "b": 2.0}, "prediction": {"yes": 0.7, "no": 0.3}}
        assert client.post(f"{service.url}/v1/records", json=late).json()["accepted"] == 1
        labels = [
            {"model": "wide", "id": name, "label": "yes"} for name in ("late", f"w{oldest:05d}", f"w{oldest - 1:05d}")
        ]
        answer, _ = post(client, service.url, labels)
        assert answer["accepted"] == 3 and answer["duplicates"] == 0
        metrics = scrape(service.url)
        assert metrics['monitor_labels_joined_total{model="wide"}'] == 2
        assert metrics["monitor_join_buffer_records"] == 1  # the third label waits for a prediction that left
        assert metrics['monitor_label_buffer_evicted_total{cause="bytes",model="wide"}'] == records - held + pushed
