"""A few threads that work through a table's columns together.

Sorting, hashing and counting a column release the GIL, so the columns of a table can be
worked on by a few threads at once. :class:`Workers` of ``count`` threads are the calling
thread and ``count - 1`` helpers: the caller takes its share of the columns instead of
waiting, so ``count`` threads are runnable at a time, no more (on a busy machine more
threads than cores only add switching). Each task runs in a copy of the caller's context,
so numpy's error state (``np.errstate``, a context variable) applies in the helpers too.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Workers:
    """``count`` threads (the caller and ``count - 1`` helpers) for per-column work."""

    def __init__(self, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"workers must be an integer >= 1, got {count!r}")
        self.count = count
        self._helpers = ThreadPoolExecutor(count - 1, "monitor-columns") if count > 1 else None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, the items claimed one by one by every thread."""
        todo = list(items)
        if self._helpers is None or len(todo) < 2:
            return [fn(item) for item in todo]
        results: list[Any] = [None] * len(todo)
        claims = itertools.count()  # next() of a count is atomic under the GIL

        def work() -> None:
            while (i := next(claims)) < len(todo):
                results[i] = fn(todo[i])

        helpers = [self.submit(work) for _ in range(min(self.count, len(todo)) - 1)]
        try:
            work()
        finally:
            # A helper still queued behind earlier work (see :meth:`start`) has nothing
            # left to claim: withdrawn, not waited for.
            for helper in helpers:
                if not helper.cancel():
                    helper.exception()  # wait: no helper outlives the call
        for helper in helpers:
            if not helper.cancelled():
                helper.result()  # a helper's error, raised here
        return results

    def start(self, fn: Callable[[T], R], items: Iterable[T]) -> Started[R]:
        """Begin ``fn(item)`` for each item on the helper threads, in order, while the caller
        goes on with other work (e.g. a :meth:`map`, whose helpers join once these are
        taken); :meth:`Started.results` collects them, the caller running those no helper
        has begun."""
        return Started(fn, list(items), self)

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Run ``fn(*args)`` on a helper thread (in a copy of the caller's context)."""
        if self._helpers is None:
            raise ValueError("one worker has no helper thread to submit to")
        return self._helpers.submit(contextvars.copy_context().run, fn, *args)

    def close(self) -> None:
        if self._helpers is not None:
            self._helpers.shutdown(wait=True)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class Started(Generic[R]):
    """Work begun by :meth:`Workers.start`."""

    def __init__(self, fn: Callable[[Any], R], items: list[Any], workers: Workers | None) -> None:
        self._fn, self._items = fn, items
        self._futures = [None if workers is None else workers.submit(fn, item) for item in items]

    def results(self) -> list[R]:
        """``[fn(item) for item in items]``: the caller takes the items no helper has begun,
        from the last one back (the helpers take them from the first one on)."""
        out: list[Any] = [None] * len(self._items)
        pending = []
        for i in reversed(range(len(self._items))):
            future = self._futures[i]
            if future is None or future.cancel():
                out[i] = self._fn(self._items[i])
            else:
                pending.append((i, future))
        for i, future in pending:
            out[i] = future.result()
        return out


def run_all(workers: Workers | None, jobs: Iterable[Callable[[], R]]) -> list[R]:
    """``[job() for job in jobs]``, on ``workers`` when given."""
    return map_columns(workers, _call, jobs)


def _call(job: Callable[[], R]) -> R:
    return job()


def map_columns(workers: Workers | None, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, on ``workers`` when given."""
    return [fn(item) for item in items] if workers is None else workers.map(fn, items)


@contextmanager
def workers_for(workers: Workers | int | None) -> Iterator[Workers | None]:
    """``workers`` as given, or as many threads as an int asks for, for one call (None or 1:
    the calling thread alone)."""
    if workers is None or isinstance(workers, Workers):
        yield workers
        return
    with Workers(workers) as made:
        yield made if made.count > 1 else None
