"""Kafka messages -> decoded items: what the collector takes from a poll batch.

A message holds our JSON record format (one record or a JSON array of records), or a
CloudEvent through the Kafka protocol binding: binary mode (``ce_*`` headers, the data as
the value, its type in ``content-type``) or structured mode (``content-type:
application/cloudevents+json``). :func:`decode_batch` decodes a whole poll batch, our
records still unvalidated (the pipeline validates them in one call), and keeps where each
item came from for its dead letter.

A record or event without a time of its own takes its message's timestamp, which must be
within the accepted range of the moment it is read (``limits.max_future_seconds`` ahead,
``limits.max_age_seconds`` back): else that item is refused here, as
``timestamp_out_of_range`` with the path ``kafka.timestamp``. Times the items carry are
checked by validation, with the path ``timestamp`` (``ce-time`` / ``time`` for events).
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple

import orjson
from kafka import TopicPartition

from collectors import cloudevents
from collectors.body import json_error
from collectors.cloudevents import MESSAGE_TIME_PATH
from collectors.kafka_consumer import Fetched, Message
from monitor.records import Reason, Record, Rejection
from monitor.settings import LimitsConfig
from monitor.timestamps import EventTimeRange
from monitor.validation import Validator

CLOUDEVENTS_JSON = "application/cloudevents"
# The header of a dead letter (and of a dead-letter topic's copy) that names the message.
ORIGIN_HEADER = "monitor-origin"


def message_headers(raw: Any) -> dict[str, str]:
    """Kafka headers (a list of ``(name, bytes)``) as text with lower-case names, for
    CloudEvents and dead letters."""
    return {name.lower(): (value or b"").decode("utf-8", "replace") for name, value in raw or ()}


@dataclass(slots=True)
class Decoded:
    """One message, decoded: our JSON records as decoded items (validated later, in bulk,
    with the rest of the poll batch), or CloudEvents' records; and what was refused."""

    items: list[Any] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def decode_value(
    value: bytes | None,
    headers: dict[str, str],
    received_at: float,
    validator: Validator,
    *,
    now: float | None = None,
    admitted: set[str] | None = None,
) -> Decoded:
    """One message's value, decoded but not validated. Never raises on bad input.

    A record without a ``timestamp`` gets ``received_at`` (the message's timestamp), written
    into the item, so a record read again after a crash falls in the same time window. ``now``
    (default ``received_at``) is when it was read: the message's timestamp must be within
    the accepted range of it. ``admitted``: unknown models the poll batch's events let in."""
    now = received_at if now is None else now
    content_type = headers.get("content-type", "")
    if headers and (content_type.startswith(CLOUDEVENTS_JSON) or any(name.startswith("ce_") for name in headers)):
        records, rejections = _decode_cloudevent(
            value or b"", headers, content_type, (now, received_at), validator, admitted
        )
        return Decoded(records=records, rejections=rejections)
    if not value:
        return Decoded(rejections=[Rejection(0, "", Reason.INVALID_JSON, "message value is empty", None)])
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Decoded(
            rejections=[Rejection(0, "", Reason.INVALID_JSON, json_error(exc, "message value"), _text(value))]
        )
    return decode_document(document, value, received_at, validator.limits, _times(validator, now))


def decode_document(
    document: Any, value: bytes, received_at: float, limits: LimitsConfig, accepted: EventTimeRange | None = None
) -> Decoded:
    """A message's parsed value: one record of ours or an array of them (``value`` is kept
    in a rejection); records without a ``timestamp`` get ``received_at``, or are refused when
    it is outside ``accepted``."""
    items = document if type(document) is list else [document]
    if len(items) > limits.max_items_per_request:
        limit = limits.max_items_per_request
        message = f"{len(items)} records in one message; at most {limit} (limits.max_items_per_request)"
        return Decoded(rejections=[Rejection(0, "", Reason.TOO_MANY, message, _text(value))])
    if _objects_with_timestamps(items):
        return Decoded(items=items)
    if accepted is not None and not accepted.low <= received_at <= accepted.high:
        return _refuse_unstamped(items, received_at, accepted)
    for item in items:
        if type(item) is dict and "timestamp" not in item:
            item["timestamp"] = received_at
    return Decoded(items=items)


def _refuse_unstamped(items: list[Any], message_time: float, accepted: EventTimeRange) -> Decoded:
    """The items of a message whose timestamp is out of range: those without a time of their
    own are refused (the path names the message's timestamp), the others go on."""
    problem = accepted.problem(message_time, MESSAGE_TIME_PATH, "the Kafka message timestamp")
    out = Decoded()
    for index, item in enumerate(items):
        if type(item) is dict and "timestamp" not in item:
            model = item.get("model")
            out.rejections.append(
                Rejection(
                    index, problem.path, problem.reason, problem.message, item, model if type(model) is str else None
                )
            )
        else:
            out.items.append(item)
    return out


def _times(validator: Validator, now: float) -> EventTimeRange:
    return validator.event_times(now)


def decode_message(
    value: bytes | None, headers: dict[str, str], received_at: float, validator: Validator
) -> tuple[list[Record], list[Rejection]]:
    """One message -> (records, rejections), validated on its own (the collector validates
    a whole poll batch at once instead)."""
    decoded = decode_value(value, headers, received_at, validator)
    records, rejections = decoded.records, decoded.rejections
    validate = validator.validate
    admitted: set[str] = set()
    for index, item in enumerate(decoded.items):
        outcome = validate(item, index, received_at, admitted)
        if type(outcome) is Record:
            records.append(outcome)
        else:
            rejections.append(outcome)
    return records, rejections


def _decode_cloudevent(
    value: bytes,
    headers: dict[str, str],
    content_type: str,
    times: tuple[float, float],
    validator: Validator,
    admitted: set[str] | None,
) -> tuple[list[Record], list[Rejection]]:
    """``times``: when the message was read, and its own timestamp (the time of an event
    without one)."""
    # The Kafka binding names attributes ce_<name>; the HTTP parser reads ce-<name>.
    http_headers = {("ce-" + name[3:] if name.startswith("ce_") else name): text for name, text in headers.items()}
    now, message_time = times
    try:
        return cloudevents.parse_http(
            http_headers, value, models=validator.known_models, limits=validator.limits,
            received_at=now, accept_unknown=validator.accept_unknown, message_time=message_time,
            admitted=admitted,
        )  # fmt: skip
    except cloudevents.EventEnvelopeError as exc:
        reason = Reason.TOO_MANY if exc.status == 413 else Reason.INVALID_EVENT
        return [], [Rejection(0, "", reason, exc.message, _text(value))]


def _epoch_seconds(timestamp: int | None) -> float:
    """A message's own timestamp (epoch ms) in seconds, so that a record read again gets the
    same time; now when the producer set none."""
    return timestamp / 1000 if timestamp and timestamp > 0 else time.time()


def message_origin(message: Message) -> str:
    """``topic/partition/offset``."""
    return f"{message.topic}/{message.partition}/{message.offset}"


def _text(value: bytes) -> str:
    return value[:4096].decode("utf-8", "replace")


def _decode_all(values: list[bytes | None]) -> list[Any] | None:
    """Every value parsed as JSON, or None if one is not JSON (or empty)."""
    try:
        return list(map(orjson.loads, values))  # type: ignore[arg-type]  # a None value raises JSONDecodeError: caught
    except (orjson.JSONDecodeError, TypeError):
        return None


def _objects_with_timestamps(documents: list[Any]) -> bool:
    """Every one a JSON object with a ``timestamp``: records of ours to take as they are."""
    return set(map(type, documents)) == {dict} and all(map(dict.__contains__, documents, repeat("timestamp")))


def _stamp(records: list[dict[str, Any]], timestamps: list[int], accepted: EventTimeRange | None) -> bool:
    """One record per message: those without a ``timestamp`` get their message's, as
    :func:`decode_document` gives them; False (nothing stamped) when one of those is out of
    ``accepted``, so the messages are decoded one by one and that one refused."""
    if all(map(dict.__contains__, records, repeat("timestamp"))):
        return True
    missing = [j for j, record in enumerate(records) if "timestamp" not in record]
    seconds = [_epoch_seconds(timestamps[j]) for j in missing]
    if accepted is not None and not all(accepted.low <= t <= accepted.high for t in seconds):
        return False
    for j, t in zip(missing, seconds, strict=True):
        records[j]["timestamp"] = t
    return True


def _models(items: list[Any]) -> Iterable[Any]:
    """The ``model`` of each decoded item that is an object."""
    if set(map(type, items)) == {dict}:
        return map(dict.get, items, repeat("model"))
    return (item.get("model") for item in items if type(item) is dict)


class _Shared(NamedTuple):
    """Where the items of a message that was not one plain record came from."""

    message: Message
    headers: dict[str, str]
    items: int


class Origins:
    """Where each item of a poll batch came from, one entry per run of items: a run of
    one-record messages of a partition (the item after ``first`` is the message after
    ``position``), or the items of one message that was not a plain record (_Shared)."""

    def __init__(self) -> None:
        self._firsts: list[int] = []
        self._runs: list[tuple[Fetched | _Shared, int]] = []

    def add(self, first: int, source: Fetched | _Shared, position: int = 0) -> None:
        self._firsts.append(first)
        self._runs.append((source, position))

    def of(self, item: int) -> Message | _Shared:
        run = bisect_right(self._firsts, item) - 1
        source, position = self._runs[run]
        if isinstance(source, _Shared):
            return source
        return source.message(position + item - self._firsts[run])

    def message_of(self, item: int) -> Message:
        """The message item ``item`` came from."""
        owner = self.of(item)
        return owner.message if isinstance(owner, _Shared) else owner

    def dead_letter_origin(self, rejection: Rejection) -> tuple[bytes | None, dict[str, str] | None]:
        """A rejected item's raw bytes and headers, for its dead letter."""
        owner = self.of(rejection.index)
        if isinstance(owner, _Shared):  # the message's bytes when it held this one item (the item is kept anyway)
            value = owner.message.value if owner.items == 1 else None
            return value, {**owner.headers, ORIGIN_HEADER: message_origin(owner.message)}
        return owner.value, {ORIGIN_HEADER: message_origin(owner)}


@dataclass(slots=True)
class DecodedBatch:
    """A poll batch, decoded: our records as items (validated later, in one call) with
    where each came from, CloudEvents' records, the messages that could not be decoded
    with their rejections, the partitions each named model came from, and the next
    offset of each partition."""

    items: list[Any] = field(default_factory=list)
    origins: Origins = field(default_factory=lambda: Origins())
    events: list[Record] = field(default_factory=list)
    bad: list[tuple[Message, dict[str, str], list[Rejection]]] = field(default_factory=list)
    sources: dict[Any, set[TopicPartition]] = field(default_factory=lambda: defaultdict(set))
    positions: dict[TopicPartition, int] = field(default_factory=dict)


def decode_batch(
    batch: Mapping[TopicPartition, Fetched], validator: Validator, now: float | None = None
) -> DecodedBatch:
    """Every message of a poll batch, decoded. Never raises on bad input. ``now`` (default:
    the clock) is when it was read, for the range of message timestamps accepted."""
    out = DecodedBatch()
    now = time.time() if now is None else now
    accepted = _times(validator, now)
    admitted: set[str] = set()  # unknown models the batch's CloudEvents let in, across its messages
    for tp, part in batch.items():
        # Every value decoded in one C-level pass, unless one is not JSON or has headers.
        documents = None if part.headers else _decode_all(part.values)
        if (
            documents is not None
            and set(map(type, documents)) == {dict}
            and _stamp(documents, part.timestamps, accepted)
        ):  # the usual partition
            out.origins.add(len(out.items), part)
            out.items.extend(documents)
            fed = set(map(dict.get, documents, repeat("model")))
        else:
            fed = _decode_each(part, documents, validator, out, (now, accepted, admitted))
        for model in fed:
            if type(model) is str:
                out.sources[model].add(tp)
        out.positions[tp] = part.offsets[-1] + 1
    return out


def _decode_each(
    part: Fetched,
    documents: list[Any] | None,
    validator: Validator,
    out: DecodedBatch,
    context: tuple[float, EventTimeRange | None, set[str]],
) -> set[Any]:
    """A partition's messages one by one (``documents``: their values decoded, if that
    is done), when they are not all one plain record each: our records go to ``items``
    (their origins to its origins), CloudEvents' records to its events, what cannot be
    decoded to its bad. ``context``: when the batch was read, the range of times accepted
    then, and the unknown models its events let in. Returns the models they name."""
    now, accepted, admitted = context
    fed: set[Any] = set()
    for i, value in enumerate(part.values):
        message = part.message(i)
        headers = message_headers(message.headers)
        received_at = _epoch_seconds(message.timestamp)
        if documents is None:
            decoded = decode_value(value, headers, received_at, validator, now=now, admitted=admitted)
        else:
            decoded = decode_document(documents[i], value or b"", received_at, validator.limits, accepted)
        if decoded.rejections:
            out.bad.append((message, headers, decoded.rejections))
        fed.update(record.model for record in decoded.records)
        out.events.extend(decoded.records)
        if decoded.items:
            if len(decoded.items) == 1 and not headers:
                out.origins.add(len(out.items), part, i)
            else:
                out.origins.add(len(out.items), _Shared(message, headers, len(decoded.items)))
            fed.update(_models(decoded.items))
            out.items.extend(decoded.items)
    return fed
