"""The Kafka consumer of the collector, run in a child process.

kafka-python fetches, checks and parses records in Python: as much interpreter time per
message as the monitor's own decoding, validation and counting of a one-record message
(benchmarks/RESULTS.md). In the monitor's process the two took turns on one interpreter lock and one core.
Here the consumer runs in a child process (``python -m collectors.kafka_consumer``, over
its stdin/stdout, :mod:`monitor.pipes`) and fetches the next batch on the other core while
the monitor applies the last one.

:class:`ConsumerProcess` is the monitor's side: the calls of ``KafkaConsumer`` the
collector makes (subscribe, poll, commit, seek, close), each answered by the child. A
consumer-group rebalance in the child's poll comes back as a call of the collector's
listener in the monitor, in the middle of :meth:`ConsumerProcess.poll` as kafka-python
makes it, and the child waits in its own listener until the monitor's one has returned
(its commits and seeks included): the guarantee's order of checkpoint, commit and seek
is the same as with a consumer in the monitor's process.

kafka-python 3 calls rebalance listeners on its IO thread, the one that sends heartbeats
and every request. The child's listener is therefore a coroutine (an
``AsyncConsumerRebalanceListener``), awaited on that loop while a thread of the child
relays the callback to the monitor: the loop goes on heartbeating meanwhile, and the
monitor's commit, which waits on that loop, can run. (A plain listener held the IO thread
for as long as the monitor took to checkpoint, and kafka-python refused the commit made
from it: "Cannot block on net.run() from the IO thread itself".)

A poll's records travel column by column (:class:`Fetched`): one list of values, of
offsets, of timestamps and of keys per partition pickle and unpickle in C, where a Python
object per message would cost the monitor a large part of what the child saves it.

The child ends when its stdin closes (the monitor exited, even by SIGKILL): its group
membership then lapses after the session timeout, as the monitor's own would. It ignores
SIGINT and SIGTERM, which a terminal or a service manager may send to the whole process
group: the monitor stops it in order (last batch applied, checkpoint, commit, close).
"""

from __future__ import annotations

import logging
import logging.config
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from operator import attrgetter
from typing import Any, BinaryIO, NamedTuple

import kafka.future
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener, ConsumerRebalanceListener
from kafka.structs import MemberState, OffsetAndMetadata

from monitor import pipes
from monitor.gc_tuning import tune_garbage_collector
from monitor.logs import JsonLineFormatter, log_config

log = logging.getLogger(__name__)

CHILD_EXIT_SECONDS = 10.0  # after close() has answered: the child only has to return


class Message(NamedTuple):
    """One message, for what looks at a message on its own (decoding an odd one, a dead letter)."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # epoch ms; -1 when the producer set none
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class Fetched(NamedTuple):
    """One partition's messages from one poll, field by field."""

    topic: str
    partition: int
    offsets: list[int]
    timestamps: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    headers: dict[int, list[tuple[str, bytes]]]  # by position, for the messages that have any

    def message(self, i: int) -> Message:
        return Message(
            self.topic, self.partition, self.offsets[i], self.timestamps[i], self.keys[i], self.values[i],
            self.headers.get(i, []),
        )  # fmt: skip


class ConsumerProcessError(RuntimeError):
    """The consumer in the child process raised, or the child is gone."""


class ConsumerProcess:
    """A ``KafkaConsumer(**options)`` in a child process, driven from this one."""

    def __init__(self, options: dict[str, Any]):
        self._process = pipes.start_child(__name__)
        self._listener: ConsumerRebalanceListener | None = None
        self._highwaters: dict[TopicPartition, int | None] = {}
        # As of the last poll: seconds since the group coordinator last answered this member
        # (:func:`_coordinator_age`), and whether the member was (re)joining the group.
        self.heartbeat_age: float | None = None
        self.rebalancing = False
        # The child logs to the same stderr, in this process's format and at its level.
        root = logging.getLogger()
        log_format = "json" if any(isinstance(h.formatter, JsonLineFormatter) for h in root.handlers) else "text"
        try:
            self._call("start", options, log_format, logging.getLevelName(root.getEffectiveLevel()))
        except BaseException:
            self._end()
            raise

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        self._listener = listener
        self._call("subscribe", topics)

    def poll(self, timeout_ms: int) -> dict[TopicPartition, Fetched]:
        batch, self._highwaters, self.heartbeat_age, self.rebalancing = self._call("poll", timeout_ms)
        return batch

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int) -> None:
        self._call("commit", offsets, timeout_ms)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._call("seek", partition, offset)

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end offset as of the last poll."""
        return self._highwaters.get(partition)

    def close(self, timeout_ms: int) -> None:
        """Leave the group (nothing committed) and end the child."""
        try:
            self._call("close", timeout_ms)
        finally:
            self._end()

    def _call(self, *request: Any) -> Any:
        """Send ``request`` and return the child's answer; a rebalance on the way is the
        listener's, here."""
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        try:
            pipes.write(process.stdin, request)
            while True:
                kind, value = pipes.read(process.stdout)
                if kind != "rebalance":
                    break
                method, partitions = value
                try:
                    getattr(self._listener, method)(partitions)
                except Exception:  # as kafka-python does with a listener's error: said, and the poll goes on
                    log.exception("the Kafka rebalance listener failed in %s", method)
                pipes.write(process.stdin, ("resume", None))
        except (OSError, EOFError) as exc:
            raise ConsumerProcessError(f"the Kafka consumer process is gone ({exc})") from None
        if kind == "error":
            raise ConsumerProcessError(value)
        return value

    def _end(self) -> None:
        process = self._process
        if process.stdin is not None:
            try:
                process.stdin.close()  # the child's cue to end, if close() did not reach it
            except OSError:
                pass
        try:
            process.wait(CHILD_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# -- the child ----------------------------------------------------------------------------------
_FIELDS = tuple(map(attrgetter, ("offset", "timestamp", "key", "value")))


def _columns(batch: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, Fetched]:
    out = {}
    for tp, records in batch.items():
        offsets, timestamps, keys, values = (list(map(field, records)) for field in _FIELDS)
        headers = {i: list(record.headers) for i, record in enumerate(records) if record.headers}
        out[tp] = Fetched(tp.topic, tp.partition, offsets, timestamps, keys, values, headers)
    return out


def _coordinator_age(consumer: KafkaConsumer, assigned_at: float | None) -> float | None:
    """Seconds since the group coordinator last answered: the last heartbeat, or the join
    that assigned the partitions (kafka-python sends no heartbeat while it (re)joins, and
    the first one only a heartbeat interval after: a long join is not a silent broker)."""
    ages = [time.monotonic() - assigned_at] if assigned_at is not None else []
    for group in consumer.metrics().values():
        seconds = group.get("last-heartbeat-seconds-ago") if isinstance(group, dict) else None
        if seconds is not None:
            ages.append(float(seconds))
            break
    return min(ages, default=None)


class _Relay(AsyncConsumerRebalanceListener):
    """In the child: each rebalance callback goes to the monitor, which answers the calls
    its listener makes until it sends ``resume``; awaited on kafka-python's IO loop, which
    keeps heartbeating and serves the monitor's commits meanwhile."""

    def __init__(self, server: _Server):
        self.server = server

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.server.rebalance("on_partitions_revoked", revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.server.rebalance("on_partitions_assigned", assigned)

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        await self.server.rebalance("on_partitions_lost", lost)


class _Server:
    def __init__(self, requests: BinaryIO, answers: BinaryIO):
        self.requests, self.answers = requests, answers
        self.consumer: KafkaConsumer | None = None
        self._assigned_at: float | None = None  # time.monotonic() of the last assignment
        # Relays a rebalance callback to the monitor. The thread that called poll() or
        # close() waits in kafka-python until the callback is done, so only one of the
        # two reads requests at a time.
        self._relayer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-rebalance")

    def run(self) -> None:
        while True:
            kind, *args = self._next_request()
            self._handle(kind, args)
            if kind == "close":
                return

    def rebalance(self, method: str, partitions: set[TopicPartition]) -> kafka.future.Future:
        """Relay a callback on the relaying thread; what the IO loop awaits, done once the
        monitor has sent ``resume``."""
        consumer = self.consumer
        assert consumer is not None
        done = kafka.future.Future()

        def relayed(job: Future[None]) -> None:
            error = job.exception()

            def resolve() -> None:
                if error is None:
                    done.success(None)
                else:
                    done.failure(error)

            # A kafka-python future wakes the task awaiting it only when resolved on the
            # IO loop, which is not thread-safe: resolved through the loop's call_soon,
            # the one way in from another thread (private: KafkaConsumer has no public one).
            consumer._manager.call_soon(resolve)

        self._relayer.submit(self._relay, method, partitions).add_done_callback(relayed)
        return done

    def _relay(self, method: str, partitions: set[TopicPartition]) -> None:
        if method == "on_partitions_assigned":  # the coordinator has just answered the join
            self._assigned_at = time.monotonic()
        self._answer("rebalance", (method, set(partitions)))
        while True:
            kind, *args = self._next_request()
            if kind == "resume":
                return
            self._handle(kind, args)

    def _handle(self, kind: str, args: list[Any]) -> None:
        try:
            value = None
            if kind == "start":
                options, log_format, level = args
                logging.config.dictConfig(log_config(log_format, level))
                self.consumer = KafkaConsumer(**options)
            else:
                consumer = self.consumer
                assert consumer is not None, f"{kind} before start"
                if kind == "subscribe":
                    consumer.subscribe(args[0], listener=_Relay(self))
                elif kind == "poll":
                    batch = consumer.poll(timeout_ms=args[0])
                    highwaters = {tp: consumer.highwater(tp) for tp in consumer.assignment()}
                    rebalancing = consumer.group_metadata().state == MemberState.REBALANCING
                    value = (_columns(batch), highwaters, _coordinator_age(consumer, self._assigned_at), rebalancing)
                elif kind == "commit":
                    consumer.commit(args[0], timeout_ms=args[1])
                elif kind == "seek":
                    consumer.seek(*args)
                elif kind == "close":
                    consumer.close(autocommit=False, timeout_ms=args[0])
                else:
                    raise ValueError(f"unknown request {kind!r}")
        except Exception as exc:
            text = str(exc)  # kafka-python's errors start with their class name already
            self._answer("error", text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}")
        else:
            self._answer("done", value)

    def _next_request(self) -> Any:
        try:
            return pipes.read(self.requests)
        except EOFError:  # the monitor is gone: so is this consumer (its membership lapses)
            os._exit(0)

    def _answer(self, kind: str, value: Any) -> None:
        try:
            pipes.write(self.answers, (kind, value))
        except OSError:  # BrokenPipeError: the monitor is gone
            os._exit(0)


def _main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_garbage_collector()
    _Server(sys.stdin.buffer, pipes.answers_stream()).run()


if __name__ == "__main__":
    # Run from the module under its own name, so that what it pickles (Fetched) is the
    # monitor's collectors.kafka_consumer.Fetched, not __main__.Fetched.
    from collectors.kafka_consumer import _main as main

    main()
