"""An alert's change of state: what the engine emits, the store records and webhooks announce."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Transition:
    """One change of an alert's state, caused by the window ``window_seq`` at time ``at``."""

    alert_id: str
    rule: str
    model: str
    feature: str
    severity: str
    from_state: str
    to_state: str
    at: float
    window_seq: int
    value: float | None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["detail"] = dict(self.detail)
        return out
