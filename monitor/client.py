"""A client for model servers: send what a model saw and said to a running monitor
without slowing the model's requests.

    client = MonitorClient("http://monitor:8080", token="...")
    client.log("car_loan", inputs, prediction, id=request_id, latency_ms=12.5)

:meth:`MonitorClient.log` only puts a record on a bounded in-memory queue (a few
microseconds). A background thread sends the queue as NDJSON batches, when a batch is
full or ``flush_seconds`` after the oldest queued record, and retries a batch until it
is delivered: with exponential backoff, and after the service's ``Retry-After`` when it
answers 503 or 429. While it retries, new records wait in the queue; when the queue is
full, new records are dropped and counted (``client.stats["dropped"]``), never blocking
the caller. :meth:`close` (also run at interpreter exit) sends what is queued.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class MonitorClient:
    """Records to one monitor service (see the module docstring).

    ``queue_size``: records held while the service is slow or away (beyond it, dropped);
    ``batch_size``: records per request (keep it under the service's
    ``limits.max_items_per_request``); ``flush_seconds``: the longest a record waits for
    its batch to fill; ``max_backoff_seconds``: the longest wait between two retries."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        queue_size: int = 100_000,
        batch_size: int = 1_000,
        flush_seconds: float = 1.0,
        timeout_seconds: float = 30.0,
        max_backoff_seconds: float = 10.0,
    ) -> None:
        for name, value in (("queue_size", queue_size), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.url = url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_seconds)
        self.queue_size, self.batch_size = queue_size, batch_size
        self.flush_seconds, self.max_backoff_seconds = float(flush_seconds), float(max_backoff_seconds)
        self._queue: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._in_flight = 0
        self._closing = False
        self._flushing = False
        self._counts = {"queued": 0, "sent": 0, "accepted": 0, "rejected": 0, "dropped": 0, "retries": 0}
        self._counts.update(batches=0, failed_batches=0)
        self._thread = threading.Thread(target=self._run, name="monitor-client", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # ---- the caller's side: never blocks on the network ---------------------------------------
    def log(
        self,
        model: str,
        inputs: Mapping[str, Any],
        prediction: Any = None,
        *,
        id: str | None = None,  # noqa: A002  # the record field's name
        latency_ms: float | None = None,
        segment: Mapping[str, str] | None = None,
        version: str | None = None,
        timestamp: float | str | None = None,
    ) -> bool:
        """Queue one record; False when the queue was full and the record was dropped."""
        record: dict[str, Any] = {"model": model, "inputs": inputs}
        if prediction is not None:
            record["prediction"] = prediction
        if id is not None:
            record["id"] = id
        if latency_ms is not None:
            record["latency_ms"] = latency_ms
        if segment is not None:
            record["segment"] = segment
        if version is not None:
            record["version"] = version
        if timestamp is not None:
            record["timestamp"] = timestamp
        return self._put(record)

    def log_label(self, model: str, id: str, label: Any) -> bool:  # noqa: A002
        """Queue the ground truth of an earlier record (joined by ``id``)."""
        return self._put({"model": model, "id": id, "label": label})

    def _put(self, record: dict[str, Any]) -> bool:
        with self._lock:
            if self._closing or len(self._queue) >= self.queue_size:
                self._counts["dropped"] += 1
                return False
            self._queue.append(record)
            self._counts["queued"] += 1
            if len(self._queue) == self.batch_size:
                self._wake.notify()
        return True

    @property
    def stats(self) -> dict[str, int]:
        """Records queued, sent, accepted / rejected by the service, dropped (queue full,
        or undelivered at close), retries, batches and failed batches (refused with a 4xx)."""
        with self._lock:
            return {**self._counts, "pending": len(self._queue) + self._in_flight}

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is delivered (True) or ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._flushing = True  # send a part-filled batch now
            self._wake.notify_all()
            while self._queue or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self._flushing = False
                    return False
                self._wake.wait(0.05 if left is None else min(left, 0.05))
            self._flushing = False
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Send what is queued (for at most ``timeout`` seconds), then stop; what could not
        be delivered by then is counted as dropped."""
        if self._closing:
            return
        self.flush(timeout)
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(max(timeout, 1.0))
        with self._lock:
            self._counts["dropped"] += len(self._queue) + self._in_flight
            self._queue.clear()
            self._in_flight = 0
        self._http.close()
        atexit.unregister(self.close)

    def __enter__(self) -> MonitorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the sender thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                due = time.monotonic() + self.flush_seconds
                while not self._closing and len(self._queue) < self.batch_size:
                    left = due - time.monotonic()
                    if self._queue and (left <= 0 or self._flushing):
                        break
                    self._wake.wait(max(left, 0.01) if self._queue else self.flush_seconds)
                    if not self._queue:
                        due = time.monotonic() + self.flush_seconds
                if self._closing:
                    return
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                self._in_flight = len(batch)
            self._deliver(batch)
            with self._lock:
                self._in_flight = 0
                self._wake.notify_all()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        body = b"\n".join(map(orjson.dumps, batch))
        backoff = 0.1
        while not self._closing:
            wait = backoff
            try:
                answer = self._http.post("/v1/records", content=body, headers={"content-type": "application/x-ndjson"})
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code not in RETRY_STATUSES:
                self._count_answer(answer, len(batch))
                return
            if answer is not None:
                wait = max(wait, _retry_after(answer))
            with self._lock:
                self._counts["retries"] += 1
                self._wake.wait(min(wait, self.max_backoff_seconds))  # woken early by close()
            backoff = min(backoff * 2, self.max_backoff_seconds)

    def _count_answer(self, answer: httpx.Response, size: int) -> None:
        try:
            result = answer.json()
        except ValueError:
            result = {}
        with self._lock:
            self._counts["batches"] += 1
            self._counts["sent"] += size
            if answer.status_code >= 400 and answer.status_code != 422:
                self._counts["failed_batches"] += 1
                self._counts["rejected"] += size
            else:
                self._counts["accepted"] += int(result.get("accepted", 0))
                self._counts["rejected"] += int(
                    result.get("rejected", 0) if isinstance(result.get("rejected"), int) else 0
                )

    # ---- reading and configuring the service --------------------------------------------------
    def set_reference(self, model: str, table: Any, **query: str) -> dict[str, Any]:
        """Upload reference data for ``model``: a DataFrame or pyarrow Table (sent as Parquet),
        a .csv / .parquet / .jsonl file path, or a profile (a :class:`monitor.Profile` or a
        file saved by ``Profile.save``, sent as it is: nothing is read again); ``query``:
        ``prediction_column``, ``latency_column``, ``label_column``. The service profiles rows
        with the model's schema, and checks a profile against it (422 naming a mismatch)."""
        from monitor.profiling import Profile
        from monitor.saved_profiles import MEDIA_TYPE, is_saved_profile

        if isinstance(table, Profile):
            fmt, content = "profile", table.to_bytes()
        elif isinstance(table, (str, Path)):
            path = Path(table)
            name = path.name.lower().removesuffix(".gz")
            content = path.read_bytes()
            fmt = (
                "profile"
                if is_saved_profile(content)
                else "parquet"
                if name.endswith((".parquet", ".pq"))
                else "jsonl"
                if name.endswith((".jsonl", ".ndjson"))
                else "csv"
            )
        else:
            import io

            import pyarrow as pa
            import pyarrow.parquet as pq

            buffer = io.BytesIO()
            arrow = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
            pq.write_table(arrow, buffer)
            fmt, content = "parquet", buffer.getvalue()
        headers = {"content-type": MEDIA_TYPE} if fmt == "profile" else {}
        answer = self._http.put(
            f"/v1/models/{model}/reference", params={"format": fmt, **query}, content=content, headers=headers
        )
        _raise_for(answer)
        return dict(answer.json())

    def results(self, model: str, kind: str | None = None, **query: Any) -> Any:
        """Detector results as a DataFrame (``kind``, ``feature``, ``method``, ``since_seq``, ``limit``)."""
        import pandas as pd

        params = {k: v for k, v in {"kind": kind, **query}.items() if v is not None}
        answer = self._http.get(f"/v1/models/{model}/results", params=params)
        _raise_for(answer)
        return pd.DataFrame(answer.json()["results"])

    def alerts(self, **query: Any) -> Any:
        """Alerts as a DataFrame (``state``, ``model``, ``limit``)."""
        import pandas as pd

        answer = self._http.get("/v1/alerts", params={k: v for k, v in query.items() if v is not None})
        _raise_for(answer)
        return pd.DataFrame(answer.json()["alerts"])


def _retry_after(answer: httpx.Response) -> float:
    value = answer.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def _raise_for(answer: httpx.Response) -> None:
    if answer.status_code >= 400:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        raise RuntimeError(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {detail}")
