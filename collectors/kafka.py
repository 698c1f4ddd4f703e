"""Kafka collector: records and model-server CloudEvents from Kafka topics, each counted
exactly once across crashes, restarts and consumer-group rebalances.

Messages: our JSON record format or CloudEvents through the Kafka protocol binding,
including KServe's request/response pairs, which join as they do over HTTP (decoding:
:mod:`collectors.kafka_messages`). Producers should key messages by model, so that each
model lives on one partition and so on one instance of the group.

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
from collections import deque
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from collectors.kafka_consumer import ConsumerProcess, Fetched, Message
from collectors.kafka_messages import ORIGIN_HEADER, decode_batch, message_origin
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.records import Rejection
from monitor.settings import KafkaConfig
from monitor.store.database import Store

log = logging.getLogger(__name__)

SOURCE = "kafka"
BATCHES_AHEAD = 1  # poll batches waiting to be applied, besides the one being applied
# Headers added to a message copied to the dead-letter topic.
REASON_HEADER, ERROR_HEADER = "monitor-reason", "monitor-error"


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
        # left every fetch's round trip unused (benchmarks/RESULTS.md, figures from code comments).
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
        decoded = decode_batch(batch, self.pipeline.validator)
        for tp, part in batch.items():
            self.metrics.kafka_messages.labels(tp.topic).inc(len(part.offsets))
        for model in decoded.sources:  # restore before the first record: a failure aborts the batch unapplied
            if model not in self._owned and self._may_own(model):
                self._acquire(model)
        for model, tps in decoded.sources.items():
            if model in self._owned:
                self._owned[model].update(tps)
                self._dirty.add(model)
        origins = decoded.origins
        if decoded.items:
            result = self.pipeline.ingest_items(decoded.items, SOURCE, time.time(), origin=origins.dead_letter_origin)
            first_rejection: dict[str, tuple[Message, Rejection]] = {}  # one copy per message
            for rejection in result.rejected:
                message = origins.message_of(rejection.index)
                first_rejection.setdefault(message_origin(message), (message, rejection))
            for message, rejection in first_rejection.values():
                self._copy_to_dead_letter_topic(message, rejection)
        if decoded.events:
            self.pipeline.ingest(decoded.events, [], SOURCE)
        for message, headers, rejected in decoded.bad:
            self.pipeline.ingest(
                [], rejected, SOURCE, raw_bytes=message.value,
                headers={**headers, ORIGIN_HEADER: message_origin(message)},
            )  # fmt: skip
            self._copy_to_dead_letter_topic(message, rejected[0])
        self._positions.update(decoded.positions)

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
            (ORIGIN_HEADER, message_origin(message).encode()),
        ]
        try:
            self._dead_letter_producer().send(
                topic, value=message.value, key=message.key, headers=list(message.headers or []) + extra
            )
            self.metrics.kafka_dead_letters_published.labels("published").inc()
        except Exception:
            log.exception("could not copy a bad message (%s) to dead-letter topic %s", message_origin(message), topic)
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
        # Said before the checkpoint below: an operator (and the crash tests) can tell a
        # rebalance in progress from one done.
        log.info("giving up %s: checkpointing first", ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in revoked)))
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
        silence = self.config.session_timeout_ms / 1000
        if consumer.rebalancing:  # the coordinator may hold a JoinGroup up to the rebalance timeout
            silence += self.config.max_poll_interval_ms / 1000
        connected = age is not None and 0 <= age < silence
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
