"""Dead letters: rejected items kept for inspection (table ``dead_letters``), how one
becomes a row, the store's methods on them, and the pipeline's dead-letter sink."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from monitor.store import tables as t
from monitor.store.tables import MAX_TEXT, MODEL_NAME_LENGTH, REASON_LENGTH, SOURCE_LENGTH

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from monitor.metrics import Metrics
    from monitor.pipeline import DeadLetterItem
    from monitor.store.retry_buffer import RetryBuffer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """A rejected item kept for inspection. ``raw`` is the decoded item (any JSON-able value
    or a string); ``raw_bytes`` keeps a payload that was not valid UTF-8 or JSON."""

    received_at: float  # epoch seconds
    source: str  # "http", "cloudevents", "kafka", "file"
    model: str | None
    item_index: int
    path: str
    reason: str  # a monitor.records.Reason code
    message: str
    raw: Any
    raw_bytes: bytes | None = None
    headers: dict[str, Any] | None = None


class DeadLettersStore:
    """Dead-letter methods of :class:`monitor.store.database.Store`."""

    _engine: Engine

    if TYPE_CHECKING:

        def _write_retrying(
            self, work: Callable[[Connection], None], what: str, *, transient_attempts: int = ...
        ) -> None: ...

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Insert ``letters`` in one transaction (one executemany)."""
        if not letters:
            return
        rows = [dead_letter_row(letter) for letter in letters]

        def work(conn: Connection) -> None:
            conn.execute(t.dead_letters.insert(), rows)

        # Called on the ingestion path: one attempt, no sleeping; on StoreUnavailable the
        # caller keeps the letters and tries again later (monitor.api.availability.RetryBuffer).
        self._write_retrying(work, f"adding {len(rows)} dead letters", transient_attempts=1)

    def dead_letters(
        self, model: str | None = None, reason: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; page on with ``before_id`` = the smallest ``id`` of the previous page."""
        if limit < 1:
            raise ValueError(f"dead_letters: limit must be at least 1, got {limit}")
        c = t.dead_letters.c
        query = sa.select(t.dead_letters).where(*dead_letter_filters(model, reason)).order_by(c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(c.id < before_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "raw": parse_raw(row["raw"])} for row in rows]

    def count_dead_letters(self, model: str | None = None, reason: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.dead_letters).where(*dead_letter_filters(model, reason))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def trim_dead_letters(self, max_rows: int) -> int:
        """Delete all but the ``max_rows`` newest dead letters; returns how many went."""
        if max_rows < 0:
            raise ValueError(f"trim_dead_letters: max_rows must not be negative, got {max_rows}")
        c = t.dead_letters.c
        # The id of the newest row that must go (NULL when there are few enough rows).
        cutoff = sa.select(c.id).order_by(c.id.desc()).offset(max_rows).limit(1).scalar_subquery()
        deleted: list[int] = []

        def work(conn: Connection) -> None:
            deleted[:] = [int(conn.execute(sa.delete(t.dead_letters).where(c.id <= cutoff)).rowcount)]

        self._write_retrying(work, "trimming dead letters")
        return deleted[0]


def dead_letter_sink(buffer: RetryBuffer[DeadLetter], metrics: Metrics) -> Callable[[Sequence[DeadLetterItem]], None]:
    """The pipeline's dead-letter sink: written at once, or kept in ``buffer`` while the store
    is unreachable (and written by the housekeeping loop when it answers again)."""

    def sink(items: Sequence[DeadLetterItem]) -> None:
        letters = [
            DeadLetter(
                received_at=item.received_at,
                source=item.source,
                model=item.rejection.model,
                item_index=item.rejection.index,
                path=item.rejection.path,
                reason=item.rejection.reason,
                message=item.rejection.message,
                raw=item.rejection.raw,
                raw_bytes=item.raw_bytes,
                headers=item.headers,
            )
            for item in items
        ]
        try:
            buffer.submit(letters)
        except Exception:  # the store refused them: still counted and answered; say loudly what was lost
            log.exception("could not store %d dead letters", len(letters))
            metrics.dead_letters_dropped.labels("store_error").inc(len(letters))

    return sink


def dead_letter_filters(model: str | None, reason: str | None) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses for the optional filters of the inspection API."""
    c = t.dead_letters.c
    filters = []
    if model is not None:
        filters.append(c.model == model)
    if reason is not None:
        filters.append(c.reason == reason)
    return filters


def dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    """The ``dead_letters`` row for ``letter``; never raises for odd values (see _json_text)."""
    raw, raw_bytes = letter.raw, letter.raw_bytes
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw_bytes = bytes(raw) if raw_bytes is None else raw_bytes
        raw = bytes(raw).decode("utf-8", errors="replace")
    elif raw is None and raw_bytes is not None:
        raw = raw_bytes.decode("utf-8", errors="replace")
    headers = letter.headers
    if headers is not None:
        headers = json.loads(_json_text(headers))  # e.g. Kafka header values are bytes
    return {
        "received_at": float(letter.received_at),
        "source": _clean(letter.source, SOURCE_LENGTH),
        "model": None if letter.model is None else _clean(letter.model, MODEL_NAME_LENGTH),
        "item_index": int(letter.item_index),
        "path": _clean(letter.path, MAX_TEXT),
        "reason": _clean(letter.reason, REASON_LENGTH),
        "message": _clean(letter.message, MAX_TEXT),
        "raw": _json_text(raw),
        "raw_bytes": raw_bytes,
        "headers": headers,
    }


def _clean(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` and storable anywhere: PostgreSQL refuses NUL characters
    and lone surrogates (which a JSON ``"\\ud800"`` escape can produce)."""
    text = str(text)[:limit]
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def _json_text(value: Any) -> str:
    """``value`` as JSON text, whatever it is (orjson: ten times faster than json here).
    Unserialisable parts become their repr; if the structure itself cannot be JSON
    (lone surrogates, cycles, huge ints), the whole value becomes its repr, as a string.
    orjson escapes NUL and writes NaN as null, so the text is storable anywhere."""
    try:
        return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, ValueError, RecursionError):  # orjson.JSONEncodeError is a TypeError
        pass
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not lose the other letters of the batch
        text = f"<unrepresentable {type(value).__name__}>"
    return json.dumps(text)


def parse_raw(text: str) -> Any:
    """The ``raw`` column back as a value."""
    try:
        return json.loads(text)
    except ValueError:  # written by hand or by an older version: show it as it is
        return text
