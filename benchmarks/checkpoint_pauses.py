"""How long a state checkpoint keeps the event loop from running, with the label buffer full.

    python benchmarks/checkpoint_pauses.py [--records N] [--seconds S] [--interval I] [--rate R]

In one process, as ``monitor serve`` runs them: the ``benchmarks/ingest_http.py`` model
(25 features, binary prediction, its reference, a SQLite store in a temp dir), its label
buffer filled with N records in batches of 1,000 (default 130,000: the buffer's 48 MiB
budget holds ~122,000 of them, as after that benchmark's batched runs), then for S seconds
on one asyncio loop:

* single records ingested at R per second (default 500), each by ``Pipeline.ingest_items``
  on the loop, as the HTTP route does;
* the service's checkpoint task (``Checkpointer.run``) every I seconds (default 1),
  checkpointing on a worker thread;
* a lag probe: ``await asyncio.sleep(0.001)`` in a loop, noting how late each wake-up is.
  A wake-up is late by what held the loop's thread or the GIL meanwhile: a request's own
  work, a garbage collection, or the checkpoint thread holding the GIL.

The probe runs the same S seconds twice, without checkpoints and with them, and reports
the longest lag and its 99.9th percentile for each, with the checkpoints' own figures
(count, ms each, bytes written). The first checkpoint of a process writes the whole label
buffer (monitor/label_checkpoints.py); it is measured apart, as the "first checkpoint"
row. Wall-clock figures: run on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import bench_support  # noqa: F401  (import path: the project first, benchmarks/ off it)
import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from monitor.checkpointer import Checkpointer
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.reference_startup import load_references
from monitor.settings import settings_from_mapping
from monitor.store.database import Store

hb = bench_support.http_bench


async def probe(
    seconds: float, rate: float, pipeline: Pipeline, factory, checkpointer: Checkpointer | None, interval: float
) -> list[float]:
    """Lateness (ms) of each 1 ms sleep while records are ingested (and checkpoints run)."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    bodies = [orjson.dumps(item) for item in factory.records(int(seconds * rate) + 1)]
    end = loop.time() + seconds

    async def sampler() -> None:
        while loop.time() < end:
            before = loop.time()
            await asyncio.sleep(0.001)
            lags.append((loop.time() - before - 0.001) * 1000)

    async def ingest() -> None:
        start = loop.time()
        for i, body in enumerate(bodies):
            due = start + i / rate
            if due > end:
                return
            await asyncio.sleep(max(0.0, due - loop.time()))
            pipeline.ingest_items([orjson.loads(body)], "http", time.time())

    tasks = [asyncio.create_task(sampler()), asyncio.create_task(ingest())]
    runner = None if checkpointer is None else asyncio.create_task(checkpointer.run(interval))
    await asyncio.gather(*tasks)
    if runner is not None:
        runner.cancel()
    return lags


def summary(label: str, lags: list[float]) -> str:
    a = np.array(lags)
    return f"{label:<40} {len(a):>7,} {np.percentile(a, 99):>8.2f} {np.percentile(a, 99.9):>8.2f} {a.max():>8.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records", type=int, default=130_000, help="records in the label buffer first (default 130,000)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each probe run (default 10)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checkpoints (default 1)")
    parser.add_argument("--rate", type=float, default=500.0, help="single records per second (default 500)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-pauses-") as tmp:
        data = hb.service_config(Path(tmp), 0)
        settings = settings_from_mapping(data)
        metrics = Metrics(CollectorRegistry())
        store = Store(data["storage"]["url"])
        pipeline = Pipeline(settings, metrics)
        load_references(pipeline, store, announce=False)
        checkpointer = Checkpointer(pipeline, store, metrics, "default")
        factory = hb.RecordFactory()
        for start in range(0, args.records, 1000):
            items = orjson.loads(
                b"[" + b",".join(map(orjson.dumps, factory.records(min(1000, args.records - start)))) + b"]"
            )
            pipeline.ingest_items(items, "http", time.time())
        pipeline.settle()
        held = metrics.registry.get_sample_value("monitor_label_buffer_records") or 0.0
        size = metrics.registry.get_sample_value("monitor_label_buffer_bytes") or 0.0
        print(f"label buffer: {held:,.0f} predictions, {size / 2**20:.1f} MiB estimated")

        def written() -> float:
            return metrics.registry.get_sample_value("monitor_state_checkpoints_total", {"outcome": "written"}) or 0.0

        # The first checkpoint: the whole buffer, as at start-up.
        first_lags: list[float] = []

        async def first() -> None:
            loop = asyncio.get_running_loop()
            job = asyncio.create_task(asyncio.to_thread(checkpointer.checkpoint))
            started = time.perf_counter()
            while not job.done():
                before = loop.time()
                await asyncio.sleep(0.001)
                first_lags.append((loop.time() - before - 0.001) * 1000)
            await job
            print(f"first checkpoint (whole buffer): {1000 * (time.perf_counter() - started):.0f} ms, "
                  f"{metrics.registry.get_sample_value('monitor_state_checkpoint_bytes') / 1e6:.1f} MB")  # fmt: skip

        asyncio.run(first())
        quiet = asyncio.run(probe(args.seconds, args.rate, pipeline, factory, None, args.interval))
        before = written()
        busy = asyncio.run(probe(args.seconds, args.rate, pipeline, factory, checkpointer, args.interval))
        count = written() - before
        print(f"checkpoints during the probe: {count:.0f}, the last {metrics.registry.get_sample_value('monitor_state_checkpoint_bytes') / 1e3:.0f} KB")  # fmt: skip
        print()
        print(f"{'event loop lag (ms)':<40} {'samples':>7} {'p99':>8} {'p99.9':>8} {'max':>8}")
        print(summary("first checkpoint (whole buffer)", first_lags))
        print(summary(f"{args.rate:g} records/s, no checkpoints", quiet))
        print(summary(f"{args.rate:g} records/s, checkpoint every {args.interval:g} s", busy))
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
