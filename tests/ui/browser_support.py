"""What the browser tests share: Debian's Chromium, the page recorder, the hostile names."""

from __future__ import annotations

import os
import tempfile
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
    """The README's pictures, taken from the demo data by these tests. They are written
    into docs/ only with MONITOR_UPDATE_SCREENSHOTS=1 (a test run must not change tracked
    files), else into a temporary directory, so the screenshot itself is still exercised.
    Rows naming the hostile test model are removed first: they are the tests' business,
    not the reader's."""
    page.evaluate(
        "name => document.querySelectorAll('tr').forEach(row => { if (row.textContent.includes(name)) row.remove(); })",
        XSS_MODEL,
    )
    update = os.environ.get("MONITOR_UPDATE_SCREENSHOTS") == "1"
    folder = DOCS if update else Path(tempfile.gettempdir()) / "monitor-screenshots"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=False)
