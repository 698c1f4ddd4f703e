"""The composition root: what the app runs besides its routes.

:class:`Service` wires the store, the metrics and the pipeline with its result sinks (the
store, the metrics, the alert engine) and its dead-letter sink, each write going through
a retry buffer while the database is unreachable, and handed to a writer thread when an
ingestion route makes it (the event loop never waits for the database).
:meth:`Service.start` and :meth:`Service.stop` run in the app's lifespan: the Kafka
collector, the webhook dispatcher and the housekeeping loop. ``monitor consume`` runs the same lifespan
without serving HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from alerts.dispatcher import WebhookDispatcher
from alerts.sink import AlertSink
from collectors.kafka import SOURCE as KAFKA_SOURCE
from collectors.kafka import KafkaCollector
from monitor.checkpointer import Checkpointer
from monitor.metrics import Metrics, StoreMetrics
from monitor.mlflow_references import MlflowReferences
from monitor.mlflow_versions import VersionFetches
from monitor.pipeline import Pipeline
from monitor.reference_startup import load_references, reference_saver
from monitor.result_gauges import MetricsSink
from monitor.settings import Settings
from monitor.store.alert_persister import AlertPersister
from monitor.store.database import Store
from monitor.store.dead_letters import DeadLetterWriter, dead_letter_sink
from monitor.store.engine import is_transient
from monitor.store.result_sink import StoreSink
from monitor.store.retry_buffer import BackgroundWriter, RetryBuffer
from monitor.version_gauges import pipeline_versions
from monitor.window_numbering import continue_stored_numbering

log = logging.getLogger(__name__)


def flush_counts(pipeline: Pipeline, store: Store, *, besides: str | None = None, local: bool = True) -> None:
    """Write the pipeline's count deltas (of every source but ``besides``; without ``local``,
    not those of local models, which go with their checkpoints) to the store; on failure
    keep them for next time."""
    deltas = pipeline.take_count_deltas(besides=besides, local=local)
    if not deltas:
        return
    try:
        store.add_counts(deltas)
    except Exception as exc:
        if is_transient(exc):
            log.warning("could not write record counts, the store is unreachable; will retry: %s", exc)
        else:
            log.exception("could not write record counts; will retry")
        pipeline.restore_count_deltas(deltas)


class Service:
    """The pipeline and everything around it, for one process."""

    def __init__(self, settings: Settings, metrics: Metrics, store: Store):
        self.settings = settings
        self.metrics = metrics
        self.store = store
        store_metrics = StoreMetrics(metrics.registry, store)
        storage = settings.storage
        size = storage.retry_buffer_size
        # What an ingestion route would write (dead letters; results and alert transitions of
        # windows closed by the request) goes to this thread: the event loop never waits for
        # the database (monitor.store.retry_buffer).
        self.writer = BackgroundWriter()
        metrics.dead_letters_dropped.labels("byte_limit")  # at 0 from the start, like the other causes
        self.dead_letter_writer = DeadLetterWriter(
            store, storage.dead_letter_max_rows, storage.dead_letter_max_bytes,
            lambda cause, n: metrics.dead_letters_dropped.labels(cause).inc(n),
        )  # fmt: skip
        self.dead_letter_buffer: RetryBuffer[dict[str, Any]] = RetryBuffer(
            "dead_letters", self.dead_letter_writer.write, store, store_metrics, max_items=size,
            on_drop=metrics.dead_letters_dropped.labels("store_error").inc,
            max_bytes=storage.dead_letter_buffer_max_bytes, size=_stored_bytes, writer=self.writer,
        )  # fmt: skip
        results_buffer: RetryBuffer[dict[str, Any]] = RetryBuffer(
            "results", store.add_results, store, store_metrics, max_items=size, writer=self.writer
        )
        keep_histograms = storage.histogram_retention_days * 86_400.0
        histograms_buffer: RetryBuffer[dict[str, Any]] = RetryBuffer(
            "histograms", lambda rows: store.add_histograms(rows, keep_seconds=keep_histograms),
            store, store_metrics, max_items=size, writer=self.writer,
        )  # fmt: skip
        persist_alerts = AlertPersister(store, settings, metrics, store_metrics)
        assert persist_alerts.buffer is not None  # made from store_metrics
        persist_alerts.buffer.writer = self.writer
        self.retry_buffers: tuple[RetryBuffer[Any], ...] = (
            self.dead_letter_buffer, results_buffer, persist_alerts.buffer, histograms_buffer,
        )  # fmt: skip
        self.gauges = MetricsSink(metrics)
        self.pipeline = Pipeline(
            settings,
            metrics,
            dead_letters=dead_letter_sink(self.dead_letter_buffer, metrics, storage.dead_letter_max_item_bytes),
            sinks=[
                StoreSink(store, results_buffer, histograms=histograms_buffer),
                self.gauges,
                AlertSink(settings.alerts.rules, metrics, persist_alerts, store.alert_engine_state()),
            ],
            save_reference=reference_saver(store),
            external_source=KAFKA_SOURCE,
        )
        self.gauges.versions.versions_of = pipeline_versions(self.pipeline)  # bounds the version gauges
        # The models no Kafka partition owns are checkpointed here (monitor/checkpointer.py).
        self.checkpointer = (
            None if storage.checkpoint_seconds is None
            else Checkpointer(self.pipeline, store, metrics, storage.instance_id)
        )  # fmt: skip
        self._checkpoints: asyncio.Task[None] | None = None
        self.kafka: KafkaCollector | None = None
        self._dispatcher: WebhookDispatcher | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        # References from an MLflow registry, fetched in threads of their own after start-up.
        self.mlflow_references = MlflowReferences(self.pipeline, store)

    async def start(self) -> None:
        settings, store = self.settings, self.store
        for name, config in settings.models.items():
            await asyncio.to_thread(store.upsert_model, name, config.model_dump(), "config")
        await asyncio.to_thread(load_references, self.pipeline, store)
        VersionFetches(self.mlflow_references).start()  # before traffic: versions seen from now on
        await asyncio.to_thread(self.gauges.restore, store, list(settings.models))  # restart-safe
        if self.checkpointer is not None:  # before Kafka: its own checkpoints replace these
            await asyncio.to_thread(self.checkpointer.restore)
        # Past every stored window, a restored checkpoint's numbers included (monitor/window_numbering.py).
        await asyncio.to_thread(continue_stored_numbering, self.pipeline, store)
        if self.checkpointer is not None:
            interval = settings.storage.checkpoint_seconds
            assert interval is not None  # a checkpointer is made only then
            self._checkpoints = asyncio.create_task(self.checkpointer.run(interval))
        if settings.kafka.topics:
            self.kafka = KafkaCollector(settings.kafka, self.pipeline, store, self.metrics)
            self.kafka.start()
        self._housekeeping = asyncio.create_task(self._housekeeping_loop())
        if settings.alerts.webhooks:
            self._dispatcher = WebhookDispatcher(store, settings.alerts.webhooks, self.metrics)
            self._dispatcher.start()
        self.mlflow_references.start()  # never waited for: the registry may be down

    async def stop(self) -> None:
        await asyncio.to_thread(self.mlflow_references.stop)  # no fetch stores anything after this
        for task in (self._housekeeping, self._checkpoints):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._dispatcher is not None:  # after the attempt in flight; the outbox keeps the rest
            await asyncio.to_thread(self._dispatcher.stop)
        if self.kafka is not None:  # the batch in hand is applied, checkpointed and committed
            await asyncio.to_thread(self.kafka.stop)
        # Uvicorn has finished the requests in flight: checkpoint the state (open windows, partial
        # records included) or, without checkpoints, hand every buffered part on and persist the
        # counts, so no accepted record is lost.
        pipeline = self.pipeline
        if self.checkpointer is None:
            pipeline.drain()
        else:
            try:
                await asyncio.to_thread(self.checkpointer.checkpoint)
            except Exception as exc:
                log.error("final checkpoint failed: the state since the last one is lost: %s", exc)
        await asyncio.to_thread(pipeline.close)  # windows already closed are evaluated and stored
        await asyncio.to_thread(self.writer.stop)  # what it was asked to write; the rest just below
        await self.flush_waiting_writes()
        waiting = {buffer.kind: buffer.pending for buffer in self.retry_buffers if buffer.pending}
        counts = pipeline.take_count_deltas()  # flush_counts put them back: not written
        if waiting or counts:
            log.error("shutting down with the store unreachable: lost the waiting writes %s and the counts %s",
                      waiting, counts)  # fmt: skip
        self.store.close()
        log.info("shut down cleanly")

    async def flush_waiting_writes(self) -> None:
        """Writes kept while the store was unreachable, then the count deltas."""
        for buffer in self.retry_buffers:
            await asyncio.to_thread(buffer.flush)
        # The Kafka collector writes its counts with its checkpoints: see collectors/kafka.py.
        besides = None if self.kafka is None else KAFKA_SOURCE
        local = self.checkpointer is None  # else the checkpoints write them, with the state that counted them
        await asyncio.to_thread(lambda: flush_counts(self.pipeline, self.store, besides=besides, local=local))

    async def _housekeeping_loop(self) -> None:
        """Periodically release expired partial records, check that the store answers (marking
        it up or down), write what waited for it, persist counts and trim dead letters."""
        interval = self.settings.storage.flush_interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                self.pipeline.expire()
                if not await asyncio.to_thread(self.store.ping):
                    continue  # counts stay in the pipeline, other writes in the retry buffers
                await self.flush_waiting_writes()
                await asyncio.to_thread(self.dead_letter_writer.trim)
            except Exception as exc:  # keep the loop alive whatever one round hit
                if is_transient(exc):
                    log.warning("housekeeping round: the store is unreachable: %s", exc)
                else:
                    log.exception("housekeeping round failed")


def _stored_bytes(row: dict[str, Any]) -> int:
    """A dead-letter row's size, for the retry buffer's byte bound."""
    return int(row["stored_bytes"])
