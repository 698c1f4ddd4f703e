"""Evaluating closed windows off the ingestion path.

Counting a batch into a window takes microseconds per record; evaluating a closed window
(a rank test and a distance per numeric feature, chi-square per categorical one) takes
tens of milliseconds. Doing it on the request that closed the window would put that
pause in one request's latency, so closed windows go to one worker thread through a
bounded queue: when evaluation falls behind, ingestion waits (backpressure) rather than
memory growing. Each window is evaluated exactly once, in the order windows closed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 64  # closed windows waiting; each is a few MB at most (its sample)


class Evaluator:
    """One worker thread running submitted jobs in order."""

    def __init__(self, queue_size: int = QUEUE_SIZE):
        self._jobs: queue.Queue[Callable[[], Any] | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="monitor-evaluator", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> None:
        """Queue a job; blocks while the queue is full."""
        self._jobs.put(job)

    def settle(self) -> None:
        """Wait until every submitted job has run."""
        self._jobs.join()

    def close(self) -> None:
        """Run what is queued, then stop the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                job()
            except Exception:  # one failing evaluation must not stop the others
                log.exception("evaluating a window failed")
            finally:
                self._jobs.task_done()
