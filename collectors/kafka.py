"""Kafka collector: records and model-server CloudEvents from Kafka topics, each counted
exactly once across crashes, restarts and consumer-group rebalances.

Messages: our JSON record format (one record or a JSON array of records per message), or
CloudEvents through the Kafka protocol binding: binary mode (``ce_*`` headers, the data as
the value, its type in ``content-type``) or structured mode (``content-type:
application/cloudevents+json``), including KServe's request/response pairs, which join as
they do over HTTP. Producers should key messages by model, so that each model lives on one
partition and so on one instance of the group.

The guarantee, and how it is kept: a poll batch is applied to the window state, then the
state of the models it touched is checkpointed *together with* the next offset of each
partition (and what the batches added to ``record_counts``) in one database transaction
(``monitor.store.kafka_checkpoints``), and only then are the offsets committed to Kafka (for lag
tools; the database's offsets are the truth).

* A crash (even ``kill -9``) loses at most what came after the last checkpoint, and
  exactly that is read again: on assignment the consumer seeks to the stored offsets, and
  the first record of a model restores the model's stored state.
* A rebalance checkpoints before the partitions are given up and forgets the models they
  fed; the next owner restores them from that checkpoint.
* Whenever this instance stops owning its state for any other reason (broker gone, a
  failed assignment), it checkpoints if it can and forgets the rest, so the in-memory state
  always matches the offsets it will read from.

Bad messages never block a partition: undecodable or invalid ones are counted by reason,
stored as dead letters (original bytes and headers) and, when ``kafka.dead_letter_topic``
is set, copied there with ``monitor-reason`` / ``monitor-error`` / ``monitor-origin``
headers; consumption moves on. The dead-letter copy is at least once: a crash between it
and the next checkpoint copies those messages again.

Where the work is done: kafka-python's consumer runs in a child process
(:mod:`collectors.kafka_consumer`), so that fetching and parsing the next poll batch takes
the other core while this process applies the last one; its rebalance callbacks are
answered here, in order, as if it ran in this process. Here one thread talks to the child
(poll, commit, seek) and another applies the batches and writes the checkpoints.

Only the plain Kafka protocol is used (kafka-python), so the same code runs against Apache
Kafka, Redpanda, managed Kafka or the tansu broker the tests start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from bisect import bisect_right
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple

import orjson
from kafka import KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from collectors import cloudevents
from collectors.body import json_error
from collectors.kafka_consumer import ConsumerProcess, Fetched, Message
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.records import Reason, Record, Rejection, Validator
from monitor.settings import KafkaConfig, LimitsConfig
from monitor.store.database import Store

log = logging.getLogger(__name__)

SOURCE = "kafka"
CLOUDEVENTS_JSON = "application/cloudevents"
BATCHES_AHEAD = 1  # poll batches waiting to be applied, besides the one being applied
# Headers added to a message copied to the dead-letter topic.
REASON_HEADER, ERROR_HEADER, ORIGIN_HEADER = "monitor-reason", "monitor-error", "monitor-origin"


# -- decoding ---------------------------------------------------------------------------------
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


def decode_value(value: bytes | None, headers: dict[str, str], received_at: float, validator: Validator) -> Decoded:
    """One message's value, decoded but not validated. Never raises on bad input.

    A record without a ``timestamp`` gets ``received_at`` (the message's timestamp), written
    into the item, so a record read again after a crash falls in the same time window."""
    content_type = headers.get("content-type", "")
    if headers and (content_type.startswith(CLOUDEVENTS_JSON) or any(name.startswith("ce_") for name in headers)):
        records, rejections = _decode_cloudevent(value or b"", headers, content_type, received_at, validator)
        return Decoded(records=records, rejections=rejections)
    if not value:
        return Decoded(rejections=[Rejection(0, "", Reason.INVALID_JSON, "message value is empty", None)])
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Decoded(
            rejections=[Rejection(0, "", Reason.INVALID_JSON, json_error(exc, "message value"), _text(value))]
        )
    return decode_document(document, value, received_at, validator.limits)


def decode_document(document: Any, value: bytes, received_at: float, limits: LimitsConfig) -> Decoded:
    """A message's parsed value: one record of ours or an array of them (``value`` is kept
    in a rejection); records without a ``timestamp`` get ``received_at``."""
    items = document if type(document) is list else [document]
    if len(items) > limits.max_items_per_request:
        limit = limits.max_items_per_request
        message = f"{len(items)} records in one message; at most {limit} (limits.max_items_per_request)"
        return Decoded(rejections=[Rejection(0, "", Reason.TOO_MANY, message, _text(value))])
    if not _objects_with_timestamps(items):
        for item in items:
            if type(item) is dict and "timestamp" not in item:
                item["timestamp"] = received_at
    return Decoded(items=items)


def decode_message(
    value: bytes | None, headers: dict[str, str], received_at: float, validator: Validator
) -> tuple[list[Record], list[Rejection]]:
    """One message -> (records, rejections), validated on its own (the collector validates
    a whole poll batch at once instead)."""
    decoded = decode_value(value, headers, received_at, validator)
    records, rejections = decoded.records, decoded.rejections
    validate = validator.validate
    for index, item in enumerate(decoded.items):
        outcome = validate(item, index, received_at)
        if type(outcome) is Record:
            records.append(outcome)
        else:
            rejections.append(outcome)  # type: ignore[arg-type]
    return records, rejections


def _decode_cloudevent(
    value: bytes, headers: dict[str, str], content_type: str, received_at: float, validator: Validator
) -> tuple[list[Record], list[Rejection]]:
    # The Kafka binding names attributes ce_<name>; the HTTP parser reads ce-<name>.
    http_headers = {("ce-" + name[3:] if name.startswith("ce_") else name): text for name, text in headers.items()}
    try:
        return cloudevents.parse_http(
            http_headers, value, models=validator.known_models, limits=validator.limits,
            received_at=received_at, accept_unknown=validator.accept_unknown,
        )  # fmt: skip
    except cloudevents.EventEnvelopeError as exc:
        reason = Reason.TOO_MANY if exc.status == 413 else Reason.INVALID_EVENT
        return [], [Rejection(0, "", reason, exc.message, _text(value))]


def _epoch_seconds(timestamp: int | None) -> float:
    """A message's own timestamp (epoch ms) in seconds, so that a record read again gets the
    same time; now when the producer set none."""
    return timestamp / 1000 if timestamp and timestamp > 0 else time.time()


def _origin(message: Message) -> str:
    return f"{message.topic}/{message.partition}/{message.offset}"


def _text(value: bytes) -> str:
    return value[:4096].decode("utf-8", "replace")


def _decode_all(values: list[bytes | None]) -> list[Any] | None:
    """Every value parsed as JSON, or None if one is not JSON (or empty)."""
    try:
        return list(map(orjson.loads, values))
    except (orjson.JSONDecodeError, TypeError):
        return None


def _objects_with_timestamps(documents: list[Any]) -> bool:
    """Every one a JSON object with a ``timestamp``: records of ours to take as they are."""
    return set(map(type, documents)) == {dict} and all(map(dict.__contains__, documents, repeat("timestamp")))


def _stamp(records: list[dict[str, Any]], timestamps: list[int]) -> None:
    """One record per message: those without a ``timestamp`` get their message's, as
    :func:`decode_document` gives them."""
    if not all(map(dict.__contains__, records, repeat("timestamp"))):
        for record, timestamp in zip(records, timestamps, strict=True):
            if "timestamp" not in record:
                record["timestamp"] = _epoch_seconds(timestamp)


def _models(items: list[Any]) -> Iterable[Any]:
    """The ``model`` of each decoded item that is an object."""
    if set(map(type, items)) == {dict}:
        return map(dict.get, items, repeat("model"))
    return (item.get("model") for item in items if type(item) is dict)


# -- the consumer -------------------------------------------------------------------------------
class _Shared(NamedTuple):
    """Where the items of a message that was not one plain record came from."""

    message: Message
    headers: dict[str, str]
    items: int


class _Origins:
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
        if type(source) is _Shared:
            return source
        return source.message(position + item - self._firsts[run])  # type: ignore[union-attr]


class _AssignmentFailed(RuntimeError):
    """The checkpointed offsets could not be read on assignment: reading on would risk
    counting records twice, so the consumer is rebuilt."""


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, collector: KafkaCollector, consumer: ConsumerProcess):
        self.collector, self.consumer = collector, consumer

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.collector._revoked(self.consumer, set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.collector._assigned(self.consumer, set(assigned))

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        # Evicted from the group: another member may already be reading these partitions
        # from the last checkpoint, so ours must not overwrite it. Forget and move on.
        self.collector._lost(set(lost))


class KafkaCollector:
    """Runs one Kafka consumer on its own thread, feeding the pipeline."""

    def __init__(
        self,
        config: KafkaConfig,
        pipeline: Pipeline,
        store: Store,
        metrics: Metrics,
    ):
        self.config = config
        self.pipeline = pipeline
        self.store = store
        self.metrics = metrics
        self.connected = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: KafkaProducer | None = None
        # The partitions each model's records came from, for the models whose state this
        # instance owns (restored or started here); forgotten when the partitions go.
        self._owned: dict[str, set[TopicPartition]] = {}
        # Next offset to read per partition, matching the in-memory state.
        self._positions: dict[TopicPartition, int] = {}
        self._dirty: set[str] = set()
        self._checkpointed_positions: dict[TopicPartition, int] = {}
        self._last_checkpoint = time.monotonic()
        self._assignment_error: Exception | None = None
        # Poll batches are applied, and the periodic checkpoints written, on this thread in
        # order, while the consumer thread polls for the next batch: kafka-python sends the
        # next fetch request only when poll() is called, so work done on the consumer thread
        # left every fetch's round trip unused (~20% of the time at 100 records per message).
        # Up to BATCHES_AHEAD batches wait behind the one being applied, so that the applying
        # thread has work while the consumer waits out a fetch round trip (kafka-python sends
        # the next fetch only once the last one's records are all polled); rebalances and
        # the end wait for all of it before they touch the state or the offsets.
        self._applier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-apply")
        self._applying: deque[Future[None]] = deque()  # the batches handed over, oldest first
        self._last_job: Future[None] | None = None  # the latest batch or checkpoint handed over
        # Offsets checkpointed on the applying thread, for the consumer thread to commit.
        self._saved_offsets: queue.SimpleQueue[dict[TopicPartition, int]] = queue.SimpleQueue()
        # Why applying a batch or writing a checkpoint failed: the state may hold part of a
        # batch, so until the consumer is rebuilt nothing more is applied or checkpointed and
        # the state it fed is forgotten.
        self._apply_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kafka-collector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand, checkpoint, commit and leave the group."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("Kafka consumer did not stop within %.0f s", timeout)
        self._applier.shutdown(wait=False)
        if self._producer is not None:
            self._producer.close(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            consumer = None
            try:
                consumer = self._connect()
                self._consume(consumer)
                backoff = 0.5
            except Exception as exc:  # broker gone, store gone, anything: rebuild and go on
                log.warning("Kafka consumer failed (%s: %s); reconnecting in %.1f s", type(exc).__name__, exc, backoff)
            finally:
                if consumer is not None:
                    self._let_go(consumer)
            self.connected = False
            self.metrics.kafka_connected.set(0)
            if self._stopping.wait(backoff):
                break
            backoff = min(backoff * 2, self.config.reconnect_backoff_max_seconds)

    def _connect(self) -> ConsumerProcess:
        c = self.config
        self._assignment_error = self._apply_error = None
        self._saved_offsets = queue.SimpleQueue()  # what the last consumer could not commit is stale
        consumer = ConsumerProcess(dict(
            bootstrap_servers=c.bootstrap_servers,
            group_id=c.group_id,
            client_id=c.client_id,
            enable_auto_commit=False,
            auto_offset_reset=c.auto_offset_reset,
            max_poll_records=c.max_poll_records,
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=c.heartbeat_interval_ms,
            max_poll_interval_ms=c.max_poll_interval_ms,
            reconnect_backoff_max_ms=int(c.reconnect_backoff_max_seconds * 1000),
            **c.security,
        ))  # fmt: skip
        consumer.subscribe(c.topics, listener=_Rebalance(self, consumer))
        return consumer

    def _consume(self, consumer: ConsumerProcess) -> None:
        interval = self.config.checkpoint_interval_seconds
        while not self._stopping.is_set():
            batch = consumer.poll(timeout_ms=200)
            if self._assignment_error is not None:
                error, self._assignment_error = self._assignment_error, None
                raise _AssignmentFailed(f"reading the checkpointed offsets failed: {error}")
            if self._apply_error is not None:  # set on the applying thread, or seen by a rebalance callback
                raise self._apply_error
            self._note_connection(consumer)
            if batch:
                while len(self._applying) > BATCHES_AHEAD:
                    self._applying.popleft().exception()
                self._applying.append(self._hand_over(self._apply, batch))
            if time.monotonic() - self._last_checkpoint >= interval:
                # Written after the batches handed over before it, on the applying thread, so
                # the next batch is fetched and decoded meanwhile; committed below when done.
                self._last_checkpoint = time.monotonic()
                self._hand_over(self._save_checkpoint)
            self._commit(consumer)
            self._update_lag(consumer)

    def _hand_over(self, job: Callable[..., Any], *args: Any) -> Future[None]:
        """Run ``job`` on the applying thread after what was handed over before it."""

        def run() -> None:
            if self._apply_error is not None:  # the state may hold part of a batch: leave it be
                return
            try:
                job(*args)
            except BaseException as exc:
                self._apply_error = exc
                raise

        self._last_job = self._applier.submit(run)
        return self._last_job

    def _applied(self) -> None:
        """Wait until every batch and checkpoint handed over is done; raise if applying a
        batch or writing a checkpoint failed since this consumer was built."""
        last, self._last_job = self._last_job, None
        self._applying.clear()
        if last is not None:
            last.exception()
        if self._apply_error is not None:
            raise self._apply_error

    def _let_go(self, consumer: ConsumerProcess) -> None:
        """This consumer ends (stop or failure): checkpoint what it applied if the store
        allows, forget the rest, then leave the group."""
        try:
            self._applied()
            self._checkpoint(consumer, handed=set(self._owned))
        except Exception as exc:  # the store is down, most likely: said once more, without a traceback
            log.warning("final Kafka checkpoint failed (%s): what came after the last one will be read again", exc)
        self._forget(set(self._positions) | {tp for tps in self._owned.values() for tp in tps})
        try:
            consumer.close(timeout_ms=5_000)
        except Exception:
            log.warning("Kafka consumer did not close cleanly", exc_info=True)

    # -- applying messages ---------------------------------------------------------------------
    def _apply(self, batch: Mapping[TopicPartition, Fetched]) -> None:
        items: list[Any] = []  # our records from every message of the batch, validated in one call
        origins = _Origins()
        events: list[Record] = []  # records from CloudEvents
        bad: list[tuple[Message, dict[str, str], list[Rejection]]] = []
        sources: dict[str, set[TopicPartition]] = defaultdict(set)
        positions: dict[TopicPartition, int] = {}
        for tp, part in batch.items():
            # Every value decoded in one C-level pass, unless one is not JSON or has headers.
            documents = None if part.headers else _decode_all(part.values)
            if documents is not None and set(map(type, documents)) == {dict}:  # the usual partition
                _stamp(documents, part.timestamps)
                origins.add(len(items), part)
                items.extend(documents)
                fed = set(map(dict.get, documents, repeat("model")))
            else:
                fed = self._decode_each(part, documents, items, origins, events, bad)
            for model in fed:
                if type(model) is str:
                    sources[model].add(tp)
            positions[tp] = part.offsets[-1] + 1
            self.metrics.kafka_messages.labels(tp.topic).inc(len(part.offsets))
        for model in sources:  # restore before the first record: a failure aborts the batch unapplied
            if model not in self._owned and self._may_own(model):
                self._acquire(model)
        for model, tps in sources.items():
            if model in self._owned:
                self._owned[model].update(tps)
                self._dirty.add(model)

        def origin(rejection: Rejection) -> tuple[bytes | None, dict[str, str] | None]:
            owner = origins.of(rejection.index)
            if type(owner) is _Shared:  # the message's bytes when it held this one item (the item is kept anyway)
                value = owner.message.value if owner.items == 1 else None
                return value, {**owner.headers, ORIGIN_HEADER: _origin(owner.message)}
            return owner.value, {ORIGIN_HEADER: _origin(owner)}

        if items:
            result = self.pipeline.ingest_items(items, SOURCE, time.time(), origin=origin)
            first_rejection: dict[str, tuple[Message, Rejection]] = {}  # one copy per message
            for rejection in result.rejected:
                owner = origins.of(rejection.index)
                message = owner.message if type(owner) is _Shared else owner
                first_rejection.setdefault(_origin(message), (message, rejection))
            for message, rejection in first_rejection.values():
                self._copy_to_dead_letter_topic(message, rejection)
        if events:
            self.pipeline.ingest(events, [], SOURCE)
        for message, headers, rejected in bad:
            self.pipeline.ingest(
                [], rejected, SOURCE, raw_bytes=message.value, headers={**headers, ORIGIN_HEADER: _origin(message)}
            )
            self._copy_to_dead_letter_topic(message, rejected[0])
        self._positions.update(positions)

    def _decode_each(
        self,
        part: Fetched,
        documents: list[Any] | None,
        items: list[Any],
        origins: _Origins,
        events: list[Record],
        bad: list[tuple[Message, dict[str, str], list[Rejection]]],
    ) -> set[Any]:
        """A partition's messages one by one (``documents``: their values decoded, if that
        is done), when they are not all one plain record each: our records go to ``items``
        (their origins to ``origins``), CloudEvents' records to ``events``, what cannot be
        decoded to ``bad``. Returns the models they name."""
        validator = self.pipeline.validator
        fed: set[Any] = set()
        for i, value in enumerate(part.values):
            message = part.message(i)
            headers = message_headers(message.headers)
            received_at = _epoch_seconds(message.timestamp)
            if documents is None:
                decoded = decode_value(value, headers, received_at, validator)
            else:
                decoded = decode_document(documents[i], value or b"", received_at, validator.limits)
            if decoded.rejections:
                bad.append((message, headers, decoded.rejections))
            fed.update(record.model for record in decoded.records)
            events.extend(decoded.records)
            if decoded.items:
                if len(decoded.items) == 1 and not headers:
                    origins.add(len(items), part, i)
                else:
                    origins.add(len(items), _Shared(message, headers, len(decoded.items)))
                fed.update(_models(decoded.items))
                items.extend(decoded.items)
        return fed

    def _may_own(self, model: str) -> bool:
        """A configured model, or one the pipeline may still register: names from bad
        messages must not grow the ownership table."""
        configs = self.pipeline.configs
        validator = self.pipeline.validator
        return model in configs or (validator.accept_unknown and len(configs) < validator.limits.max_models)

    def _acquire(self, model: str) -> None:
        """Take ownership of ``model``: its checkpointed state, if the group has one."""
        state = self.store.model_checkpoint(self.config.group_id, model)
        if state is not None:
            self.pipeline.restore(model, state)
            log.info("model %s: state restored from the group's checkpoint", model)
        self._owned[model] = set()

    def _copy_to_dead_letter_topic(self, message: Message, rejection: Rejection) -> None:
        """The original message (bytes, key, headers) plus why, when a dead-letter topic is set."""
        topic = self.config.dead_letter_topic
        if topic is None:
            return
        extra = [
            (REASON_HEADER, rejection.reason.encode()),
            (ERROR_HEADER, f"{rejection.path}: {rejection.message}"[:1000].encode()),
            (ORIGIN_HEADER, _origin(message).encode()),
        ]
        try:
            self._dead_letter_producer().send(
                topic, value=message.value, key=message.key, headers=list(message.headers or []) + extra
            )
            self.metrics.kafka_dead_letters_published.labels("published").inc()
        except Exception:
            log.exception("could not copy a bad message (%s) to dead-letter topic %s", _origin(message), topic)
            self.metrics.kafka_dead_letters_published.labels("failed").inc()

    def _dead_letter_producer(self) -> KafkaProducer:
        if self._producer is None:
            c = self.config
            self._producer = KafkaProducer(
                bootstrap_servers=c.bootstrap_servers, client_id=f"{c.client_id}-dead-letters", acks="all",
                **c.security,
            )  # fmt: skip
        return self._producer

    # -- checkpoints and rebalances ---------------------------------------------------------------
    def _checkpoint(self, consumer: ConsumerProcess, handed: set[str]) -> None:
        """Write the touched models' state with the offsets, then commit those to Kafka
        (on the consumer thread, with nothing handed over still running)."""
        self._last_checkpoint = time.monotonic()
        self._save_checkpoint(handed)
        self._commit(consumer)

    def _save_checkpoint(self, handed: AbstractSet[str] = frozenset()) -> None:
        """Write the touched models' state with the offsets in one transaction; the offsets
        then wait for :meth:`_commit`. The ``handed`` models (leaving this instance) are
        written whether touched or not, with their predictions awaiting labels."""
        offsets = {tp: pos for tp, pos in self._positions.items() if self._checkpointed_positions.get(tp) != pos}
        if not offsets and not self._dirty and not handed:
            return  # (counts come only from batches, which move an offset)
        states = self.pipeline.checkpoint(self._dirty - handed)
        if handed:
            states.update(self.pipeline.checkpoint(handed, handover=True))
        if self._producer is not None:  # dead-letter copies are out before their offsets are behind us
            self._producer.flush(timeout=10)
        # What the batches applied so far counted, stored with their offsets: the records
        # read again after a crash are then counted in record_counts once.
        counts = self.pipeline.take_count_deltas(SOURCE)
        try:
            self.store.save_checkpoint(
                self.config.group_id,
                {(tp.topic, tp.partition): pos for tp, pos in offsets.items()},
                states,
                {model: [(tp.topic, tp.partition) for tp in self._owned.get(model, ())] for model in states},
                counts,
            )
        except Exception:
            self.pipeline.restore_count_deltas(counts)  # for the next checkpoint, or dropped by _forget
            self.metrics.kafka_checkpoints.labels("failed").inc()
            raise
        self.metrics.kafka_checkpoints.labels("written").inc()
        self._dirty.clear()
        self._checkpointed_positions.update(offsets)
        if offsets:
            self._saved_offsets.put(offsets)

    def _commit(self, consumer: ConsumerProcess) -> None:
        """Commit the offsets of the checkpoints written so far to Kafka (for lag tools:
        the database's offsets are the ones this group resumes from)."""
        offsets: dict[TopicPartition, int] = {}
        while not self._saved_offsets.empty():
            offsets.update(self._saved_offsets.get())
        offsets = {tp: pos for tp, pos in offsets.items() if tp in self._positions}  # not those given up since
        if not offsets:
            return
        try:
            consumer.commit({tp: OffsetAndMetadata(pos, "", -1) for tp, pos in offsets.items()}, timeout_ms=5_000)
        except Exception as exc:  # informational only: the database holds the offsets we resume from
            log.warning("could not commit offsets to Kafka (%s); the checkpoint is stored", exc)

    def _revoked(self, consumer: ConsumerProcess, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        leaving = {model for model, tps in self._owned.items() if tps <= revoked}  # released by _forget below
        try:
            self._applied()
            self._checkpoint(consumer, handed=leaving)
        except Exception as exc:
            log.warning(
                "checkpoint before giving up partitions failed (%s): the next owner reads again from the last one", exc
            )
        self._forget(revoked)

    def _lost(self, lost: set[TopicPartition]) -> None:
        try:
            self._applied()
        except Exception as exc:  # what it had applied is forgotten below anyway
            log.warning("applying a batch failed (%s) as the partitions were lost", exc)
        self._forget(lost)

    def _forget(self, partitions: set[TopicPartition]) -> None:
        """Drop the state fed by ``partitions``; whoever reads them next restores it."""
        for model, tps in list(self._owned.items()):
            tps -= partitions
            if not tps:
                self.pipeline.release(model)
                self.pipeline.drop_count_deltas(model, SOURCE)  # not checkpointed: read again
                del self._owned[model]
                self._dirty.discard(model)
        for tp in partitions:
            self._positions.pop(tp, None)
            self._checkpointed_positions.pop(tp, None)
            try:
                self.metrics.kafka_lag.remove(tp.topic, str(tp.partition))
            except KeyError:
                pass

    def _assigned(self, consumer: ConsumerProcess, assigned: set[TopicPartition]) -> None:
        self.metrics.kafka_rebalances.inc()
        try:
            self._applied()
            stored = self.store.checkpoint_offsets(self.config.group_id)
            # The models these partitions fed come back now, not at their next record: the
            # read API shows them, and time-based windows go on.
            fed = self.store.models_fed_by(self.config.group_id, [(tp.topic, tp.partition) for tp in assigned])
            for model, (state, sources) in fed.items():
                if model not in self._owned:
                    self.pipeline.restore(model, state)
                    self._owned[model] = {TopicPartition(topic, partition) for topic, partition in sources}
                    log.info("model %s: state restored from the group's checkpoint", model)
        except Exception as exc:  # raised after poll() returns: the listener's caller swallows errors
            self._assignment_error = exc
            return
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                consumer.seek(tp, offset)
                self._positions[tp] = self._checkpointed_positions[tp] = offset
        log.info("assigned %s", ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)) or "nothing")

    # -- operations -------------------------------------------------------------------------------
    def _note_connection(self, consumer: ConsumerProcess) -> None:
        age = consumer.heartbeat_age  # the group coordinator answered lately: the broker is there
        connected = age is not None and 0 <= age < self.config.session_timeout_ms / 1000
        if connected != self.connected:
            log.log(
                logging.INFO if connected else logging.WARNING,
                "Kafka broker %s",
                "reachable" if connected else "unreachable",
            )
        self.connected = connected
        self.metrics.kafka_connected.set(1 if connected else 0)

    def _update_lag(self, consumer: ConsumerProcess) -> None:
        for tp, position in list(self._positions.items()):  # a copy: the applying thread updates it
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self.metrics.kafka_lag.labels(tp.topic, str(tp.partition)).set(max(highwater - position, 0))

