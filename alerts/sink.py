"""The alert engine as a result sink: each published result advances the alert states,
the transitions are persisted (with the engine's state, in one transaction), and the
``monitor_alerts_firing`` gauge follows.

Results arrive from two threads (the window evaluator and, for performance windows, the
ingestion path), so one lock orders them through the engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import Gauge

from alerts.engine import AlertEngine, AlertState
from alerts.rules import AlertRuleConfig
from alerts.transition import Transition
from detectors.results import Estimate, Result

log = logging.getLogger(__name__)

# Persists transitions together with the engine state; raises if it could not.
Persist = Callable[[Sequence[Transition], Mapping[str, Any]], None]


class AlertMetrics(Protocol):
    """The family the sink sets (:class:`monitor.metrics.Metrics` has it)."""

    alerts_firing: Gauge  # labels: model, severity


class AlertSink:
    def __init__(
        self,
        rules: Sequence[AlertRuleConfig],
        metrics: AlertMetrics,
        persist: Persist,
        saved_state: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.engine = AlertEngine.from_dict(saved_state, rules) if saved_state else AlertEngine(rules)
        self.metrics = metrics
        self._persist = persist
        self._clock = clock
        self._lock = threading.Lock()
        self._firing_series: set[tuple[str, str]] = set()
        self._update_gauge()

    def publish(self, model: str, reference_version: str, result: Result | Estimate) -> None:
        with self._lock:
            before = self.engine.to_dict()
            transitions = self.engine.observe(model, reference_version, result, self._clock())
            try:
                self._persist(transitions, self.engine.to_dict())
            except Exception:
                # Not stored: roll the engine back so the next window sees the same states
                # (and the transitions are made again) rather than losing them.
                self.engine = AlertEngine.from_dict(before, self.engine.rules)
                raise
            for transition in transitions:
                log.warning(
                    "alert %s %s -> %s (rule %s, model %s, feature %s, value %s)",
                    transition.alert_id, transition.from_state, transition.to_state,
                    transition.rule, transition.model, transition.feature or "-", transition.value,
                )  # fmt: skip
            if transitions:
                self._update_gauge()

    # -- a model's alert states travel with its checkpoint (monitor/model_snapshots.py) -------------
    def model_state(self, model: str) -> list[dict[str, Any]]:
        with self._lock:
            return [state.to_dict() for state in self.engine.alerts(model=model)]

    def restore_model(self, model: str, states: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self.engine.replace_model(model, [AlertState.from_dict(s) for s in states])
            self._update_gauge()

    def _update_gauge(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for alert in self.engine.alerts(state="firing"):
            key = (alert.model, alert.severity)
            counts[key] = counts.get(key, 0) + 1
        for key in self._firing_series - set(counts):
            self.metrics.alerts_firing.labels(*key).set(0)
        for key, n in counts.items():
            self.metrics.alerts_firing.labels(*key).set(n)
        self._firing_series |= set(counts)
