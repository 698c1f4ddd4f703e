"""Evaluating closed windows off the ingestion path.

Counting a batch into a window takes microseconds per record; evaluating a closed window
(a rank test and a distance per numeric feature, chi-square per categorical one) takes
tens of milliseconds. Doing it on the request that closed the window would put that
pause in one request's latency, so closed windows go to one worker thread through a
bounded queue: when evaluation falls behind, ingestion waits (backpressure) rather than
memory growing. Each window is evaluated exactly once, in the order windows closed.

Where the numbers are crunched (``server.evaluation``):

* ``process`` (the default): the worker thread hands each window (its counts and sample,
  ~2 MB at most) to a child process and waits for the verdicts. The evaluation's Python
  work then holds the child's interpreter lock, not ours, so ingestion keeps its core
  (in the ingestion benchmarks the evaluator thread held the lock a fifth to a quarter of
  the time). One child per process, started when a model gets a reference and sent that
  reference's layout (samples, bins) then, so a window costs one copy of its own state.
  If the child dies, that window is evaluated on the thread and the next one starts a
  new child.
* ``thread``: on the worker thread itself, in this process (no child, ~100 MB less
  memory; evaluation then competes with ingestion for the interpreter).

Estimates before labels come (:meth:`Evaluator.submit_estimates`: CBPE, PCA
reconstruction error, the domain classifier, direct loss estimation) run on the worker
thread in both places, queued right after their window's evaluation, so they are
published after it and in window order. Not in the child: the estimators belong to a
model's reference (the domain classifier and the loss model hold up to 50,000 rows) and
would have to be sent to it like a layout, while their work is a few vectorised numpy
calls (CBPE and PCA: a few ms per 5,000-row window) or scikit-learn's compiled tree code
for the domain classifier and the loss model, which mostly runs outside the interpreter lock.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np

from detectors.evaluation import Evaluation, EvaluationSettings, evaluate_window
from detectors.results import Estimate
from detectors.windows.state import WindowLayout, WindowState
from monitor import pipes

log = logging.getLogger(__name__)

QUEUE_SIZE = 64  # closed windows waiting; each is a few MB at most (its sample)
EvaluationPlace = Literal["process", "thread"]


class Evaluator:
    """One worker thread evaluating closed windows (and running other jobs) in order."""

    def __init__(self, queue_size: int = QUEUE_SIZE, place: EvaluationPlace = "thread"):
        self.place = place
        self._jobs: queue.Queue[Callable[[], Any] | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="monitor-evaluator", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> None:
        """Queue a job; blocks while the queue is full."""
        self._jobs.put(job)

    def submit_window(
        self, window: WindowState, settings: EvaluationSettings, then: Callable[[Evaluation], Any]
    ) -> None:
        """Queue a closed window's evaluation; ``then`` receives the verdicts on the worker thread."""
        self.submit(lambda: then(self.evaluate(window, settings)))

    def submit_estimates(
        self,
        window: WindowState,
        estimate: Callable[[WindowState], Sequence[Estimate]],
        then: Callable[[Sequence[Estimate]], Any],
    ) -> None:
        """Queue a closed window's estimates (``estimate``, e.g. ``ModelDetector.estimate``)
        on the worker thread (module docstring: why not in the child); ``then`` receives them
        there. Submitted after the window's evaluation, they are published after it."""
        self.submit(lambda: then(estimate(window)))

    def prepare(self, layout: WindowLayout) -> None:
        """Windows of ``layout`` will come: start the child and send it the layout now, so
        that the first window does not wait for either."""
        if self.place == "process":
            self.submit(lambda: _CHILD.prepare(layout))

    def evaluate(self, window: WindowState, settings: EvaluationSettings) -> Evaluation:
        if self.place == "process":
            return _CHILD.evaluate(window, settings)
        return evaluate_window(window, settings)

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


# -- the child process ---------------------------------------------------------------------------
_NEED_LAYOUT = "need-layout"
_LAYOUTS_KEPT = 32  # in the child; a layout is the reference's samples and bins, a few MB
# A request to the child: (layout key, the layout or None, a window's WindowState.state()
# or None, its settings or None).
_Request = tuple[
    str, WindowLayout | None, tuple[dict[str, Any], dict[str, np.ndarray]] | None, EvaluationSettings | None
]


class _EvaluationChild:
    """The process-wide child (``python -m monitor.evaluator``) that evaluates windows,
    shared by every pipeline of the process; one window at a time, over its stdin/stdout
    (:mod:`monitor.pipes`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def evaluate(self, window: WindowState, settings: EvaluationSettings) -> Evaluation:
        key = _layout_key(window.layout)
        state = window.state()  # its arrays go to the pipe as they are: no packed copy
        with self._lock:
            try:
                result = self._ask((key, None, state, settings))
                if isinstance(result, str) and result == _NEED_LAYOUT:  # a new layout, or a new child
                    result = self._ask((key, window.layout, state, settings))
            except Exception as exc:  # the child died, or the layout would not pickle
                log.warning("the evaluation process failed (%s); evaluating this window here", exc)
                self._stop()
                result = None
        if isinstance(result, _ChildError):  # raised over there: evaluated here, where it raises with a traceback
            log.warning("evaluating a window in the child process failed; evaluating it here:\n%s", result.traceback)
            result = None
        return evaluate_window(window, settings) if result is None else result

    def prepare(self, layout: WindowLayout) -> None:
        with self._lock:
            try:
                self._ask((_layout_key(layout), layout, None, None))
            except Exception as exc:  # the first window tries again
                log.warning("could not start the evaluation process or send it a layout (%s)", exc)
                self._stop()

    def pid(self) -> int | None:
        """The child's process id while it runs (for tests and diagnostics)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def _ask(self, request: _Request) -> Any:
        process = self._process
        if process is None or process.poll() is not None:
            process = self._process = pipes.start_child("monitor.evaluator")
        assert process.stdin is not None and process.stdout is not None
        pipes.write(process.stdin, request)
        return pipes.read(process.stdout)

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


_CHILD = _EvaluationChild()


def _layout_key(layout: WindowLayout) -> str:
    # The fingerprint covers the reference's content and the layout's settings; the version
    # is part of every verdict, and one content can be uploaded as several versions.
    return f"{layout.fingerprint}:{layout.reference.version}"


@dataclass(frozen=True)
class _ChildError:
    traceback: str


def _serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The child's loop: evaluate each window it is sent until its input closes."""
    layouts: OrderedDict[str, WindowLayout] = OrderedDict()
    while True:
        try:
            request: _Request = pipes.read(requests)
        except EOFError:
            return
        key, layout, state, settings = request
        try:
            if layout is not None:
                layouts[key] = layout
                while len(layouts) > _LAYOUTS_KEPT:
                    layouts.popitem(last=False)
            if state is None:  # only the layout, ahead of its windows
                answer: Any = None
            elif key not in layouts:
                answer = _NEED_LAYOUT
            else:
                layouts.move_to_end(key)
                answer = evaluate_window(WindowState.from_state(*state, layouts[key]), settings)
        except Exception:
            answer = _ChildError(traceback.format_exc())
        pipes.write(answers, answer)


if __name__ == "__main__":
    # Served by the module under its own name, so that a _ChildError it pickles is the
    # monitor's monitor.evaluator._ChildError, not __main__._ChildError.
    from monitor.evaluator import _serve as serve

    serve(sys.stdin.buffer, pipes.answers_stream())
