"""What the browser tests share: Debian's Chromium, the page recorder, the hostile names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/lib/chromium/chromium"
XSS = "<img src=x onerror=alert(1)>"
XSS_MODEL = 'xss"<i>model'  # no "/": it travels in URL paths too
DRIFTING = {"car_value", "salary_range", "loan_length", "repaid_loan_on_prev_car"}
DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass
class Watched:
    """A page with every request it made, its console errors and its dialogs recorded."""

    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def save_screenshot(page: Any, name: str) -> None:
    """The README's pictures, taken from the demo data by these tests so they stay current."""
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / name), full_page=False)
