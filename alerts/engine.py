"""The alert state machine: signals from published results in, state transitions out.

Every (rule, model, feature) key has one :class:`AlertState`. States::

    inactive --breach--> pending --breach x for_windows--> firing --clean x resolve_windows--> resolved
        ^                  |                                                                      |
        +-----clean--------+                     (resolved behaves like inactive, after the cooldown)

* A breaching signal in ``inactive`` or ``resolved`` opens a new alert episode with a new id
  ``f"{rule}:{model}:{feature}:{n}"`` (``n`` counts the key's episodes, 1, 2, ...) and goes
  to ``pending``, or straight to ``firing`` when ``for_windows == 1`` (one transition).
* ``pending`` fires once ``for_windows`` consecutive windows breached; a clean window
  returns it to ``inactive`` (a transition; no alert ever fired).
* ``firing`` stays firing while breaching (no transition: one open alert per key) and
  resolves after ``resolve_windows`` consecutive clean windows.
* After a resolve, a breaching signal less than ``cooldown_seconds`` later (``now -
  resolved_at < cooldown_seconds``) is suppressed: counted in ``suppressed``, no episode.
* No signal (an insufficient verdict) changes nothing: the window is skipped, it neither
  advances nor breaks a run of breaching or clean windows.

The engine is pure: time is the ``now`` argument, ids are counters, and :meth:`AlertEngine.to_dict`
/ :meth:`AlertEngine.from_dict` carry the whole state as JSON, so a restored engine
continues exactly like an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from alerts.rules import AlertRuleConfig, Signal, signals, validate_rules
from alerts.transition import Transition
from detectors.results import Estimate, Result

STATES = ("inactive", "pending", "firing", "resolved")
FORMAT_VERSION = 1
Key = tuple[str, str, str]  # (rule, model, feature)


@dataclass(frozen=True)
class AlertState:
    """Where one key stands. ``alert_id`` is the open episode's id (or the last one's);
    ``alerts`` how many episodes the key has had; ``since`` when it entered ``state``;
    ``breaching_windows`` / ``clean_windows`` the current runs of consecutive breaching /
    clean windows; ``last_*`` the latest signal; ``suppressed`` breaches ignored in cooldowns."""

    rule: str
    model: str
    feature: str
    severity: str
    state: str = "inactive"
    alert_id: str | None = None
    alerts: int = 0
    since: float | None = None
    breaching_windows: int = 0
    clean_windows: int = 0
    last_value: float | None = None
    last_seq: int | None = None
    last_at: float | None = None
    last_detail: Mapping[str, Any] = field(default_factory=dict)
    resolved_at: float | None = None
    suppressed: int = 0

    @property
    def key(self) -> Key:
        return (self.rule, self.model, self.feature)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["last_detail"] = dict(self.last_detail)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"alert state has unknown keys {unknown}")
        state = cls(**data)
        if state.state not in STATES:
            raise ValueError(f"alert state must be one of {', '.join(STATES)}, got {state.state!r}")
        return state


def _check_now(now: Any) -> float:
    if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
        raise ValueError(f"now must be a finite number of epoch seconds, got {now!r}")
    return float(now)


class AlertEngine:
    """Turns results into alert transitions with the rules' debouncing (module docstring)."""

    def __init__(self, rules: Iterable[AlertRuleConfig | Mapping[str, Any]]):
        self.rules: list[AlertRuleConfig] = validate_rules(rules)
        self._order = {r.name: i for i, r in enumerate(self.rules)}
        self._states: dict[Key, AlertState] = {}

    # -- input ------------------------------------------------------------------------------
    def observe(self, model: str, reference_version: str, result: Result | Estimate, now: float) -> list[Transition]:
        """Apply one published result at time ``now``; the transitions it caused, in rule
        order then result order (features as the result lists them)."""
        now = _check_now(now)
        out: list[Transition] = []
        for rule in self.rules:
            for signal in signals(rule, model, result):
                transition = self._step(rule, signal, now, int(result.window_seq), str(reference_version))
                if transition is not None:
                    out.append(transition)
        return out

    def _step(self, rule: AlertRuleConfig, sig: Signal, now: float, seq: int, version: str) -> Transition | None:
        key = (rule.name, sig.model, sig.feature)
        old = self._states.get(key) or AlertState(rule.name, sig.model, sig.feature, rule.severity)
        # Any: the union of these values would match no single field in replace(**latest).
        latest: dict[str, Any] = dict(
            severity=rule.severity, last_value=sig.value, last_seq=seq, last_at=now, last_detail=dict(sig.detail)
        )
        if sig.breaching:
            new = self._breach(rule, old, now, latest)
        elif old.state == "pending":
            # The run ended before for_windows: it never was an alert.
            new = replace(old, **latest, state="inactive", since=now, breaching_windows=0, clean_windows=1)
        elif old.state == "firing":
            clean = old.clean_windows + 1
            new = replace(old, **latest, breaching_windows=0, clean_windows=clean)
            if clean >= rule.resolve_windows:
                new = replace(new, state="resolved", since=now, resolved_at=now)
        else:
            new = replace(old, **latest, breaching_windows=0, clean_windows=old.clean_windows + 1)
        self._states[key] = new
        if new.state == old.state or new.alert_id is None:
            return None
        return Transition(
            alert_id=new.alert_id,
            rule=rule.name,
            model=sig.model,
            feature=sig.feature,
            severity=rule.severity,
            from_state=old.state,
            to_state=new.state,
            at=now,
            window_seq=seq,
            value=sig.value,
            detail={**sig.detail, "reference_version": version},
        )

    @staticmethod
    def _breach(rule: AlertRuleConfig, old: AlertState, now: float, latest: dict[str, Any]) -> AlertState:
        if old.state in ("pending", "firing"):
            runs = old.breaching_windows + 1
            new = replace(old, **latest, breaching_windows=runs, clean_windows=0)
            if old.state == "pending" and runs >= rule.for_windows:
                new = replace(new, state="firing", since=now)
            return new
        if old.state == "resolved" and old.resolved_at is not None and now - old.resolved_at < rule.cooldown_seconds:
            # Within the cooldown: no new episode, and the breach does not count towards one.
            return replace(old, **latest, clean_windows=0, suppressed=old.suppressed + 1)
        n = old.alerts + 1
        return replace(
            old,
            **latest,
            state="firing" if rule.for_windows <= 1 else "pending",
            alert_id=f"{rule.name}:{old.model}:{old.feature}:{n}",
            alerts=n,
            since=now,
            breaching_windows=1,
            clean_windows=0,
        )

    # -- queries ----------------------------------------------------------------------------
    def alerts(self, state: str | None = None, model: str | None = None) -> list[AlertState]:
        """Every key seen so far (optionally one state / one model), in rule order, then by
        model and feature."""
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
        chosen = [
            s
            for s in self._states.values()
            if (state is None or s.state == state) and (model is None or s.model == model)
        ]
        return sorted(chosen, key=lambda s: (self._order[s.rule], s.model, s.feature))

    def get(self, rule: str, model: str, feature: str = "") -> AlertState | None:
        """One key's state; None when it never had a signal."""
        return self._states.get((rule, model, feature))

    def replace_model(self, model: str, states: Iterable[AlertState]) -> None:
        """Put ``model``'s keys in the states given (none: forget the model). Used when a
        model's ownership moves between instances with its checkpoint."""
        self._states = {key: state for key, state in self._states.items() if key[1] != model}
        for state in states:
            if state.model == model and state.rule in self._order:
                self._states[state.key] = state

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The rules and every key's state, JSON-safe."""
        return {
            "format_version": FORMAT_VERSION,
            "rules": [r.model_dump(mode="json") for r in self.rules],
            "states": [s.to_dict() for s in self.alerts()],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], rules: Iterable[AlertRuleConfig | Mapping[str, Any]] | None = None
    ) -> AlertEngine:
        """Restore from :meth:`to_dict`. ``rules`` (e.g. the current config) replace the saved
        ones; states of rules that no longer exist are dropped, the others continue under
        the new settings."""
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"alert engine state format_version must be {FORMAT_VERSION}, got {version!r}")
        engine = cls(data["rules"] if rules is None else rules)
        for item in data.get("states", []):
            state = AlertState.from_dict(item)
            if state.rule in engine._order:
                engine._states[state.key] = state
        return engine


__all__ = ["STATES", "AlertEngine", "AlertState"]
