"""Names in the alert config: a rule or webhook name, and selections of names (a list of
names, or ``["*"]`` for all)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

ALL = "*"
# Rule and webhook names go into alert ids and idempotency keys (joined with ':').
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def plain_name(value: Any) -> Any:
    """A rule or webhook name: 1-100 letters, digits, '_', '.', '-'."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"name must be 1-100 characters of letters, digits, '_', '.', '-', got {value!r}")
    return value


def selection(name: str, value: Any, allowed: Sequence[str] | None = None) -> list[str]:
    """A list of names or ``["*"]`` (all): non-empty, no duplicates, '*' only alone."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name} must be a non-empty list of names or ['*'], got {value!r}")
    if ALL in value and len(value) > 1:
        raise ValueError(f"{name}: '*' means all and must be the only entry, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{name} lists a name twice, got {value!r}")
    unknown = [v for v in value if v != ALL and allowed is not None and v not in allowed]
    if unknown:
        raise ValueError(f"{name} must name entries of {list(allowed or ())}, got unknown {unknown!r}")
    return value
