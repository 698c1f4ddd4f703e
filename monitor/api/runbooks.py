"""Runbooks served by the service itself, so that the ``runbook_url`` of every shipped
Prometheus rule opens without a wiki or a copy of the README to set up first.

The text is ``monitor/data/runbooks.md``, packaged with the service: a preamble, then one
``## <AlertName>`` section per alert of :mod:`alerts.prometheus_rules`.
``GET /runbooks`` renders them all on one page (each section anchored by its alert name),
``GET /runbooks/{alert}`` one of them (the name matched ignoring case).

No token is asked for: the pages are documentation shipped in the package and say nothing
of this service's models or data, and they are opened from Alertmanager notifications and
Grafana by browsers, which send no bearer token.

The file uses a small Markdown subset, rendered here: headings, paragraphs, ``- `` lists,
```code``` and ``**bold**`` (a Markdown library would be a dependency for twelve paragraphs).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

RUNBOOKS_FILE = Path(__file__).resolve().parent.parent / "data" / "runbooks.md"
PATH = "/runbooks"
router = APIRouter(include_in_schema=False)

_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em;line-height:1.5}"
    "code{background:#f2f2f2;padding:0 .2em;border-radius:3px}h2{margin-top:1.6em}"
)


@dataclass(frozen=True)
class Runbooks:
    """The parsed file: its title, the preamble's lines and each alert's lines, in file order."""

    title: str
    preamble: list[str]
    sections: dict[str, list[str]]

    def find(self, alert: str) -> str | None:
        """The alert's name as the file spells it, matched ignoring case; None if it has no section."""
        lowered = alert.lower()
        return next((name for name in self.sections if name.lower() == lowered), None)


def parse(text: str) -> Runbooks:
    """``# Title``, preamble, then ``## Name`` sections."""
    title = "Runbooks"
    preamble: list[str] = []
    sections: dict[str, list[str]] = {}
    current = preamble
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif line.startswith("# ") and not sections:
            title = line[2:].strip()
        else:
            current.append(line)
    return Runbooks(title, preamble, sections)


@lru_cache(maxsize=1)
def runbooks() -> Runbooks:
    """The packaged runbooks, read once."""
    return parse(RUNBOOKS_FILE.read_text(encoding="utf-8"))


def inline(text: str) -> str:
    """One line of text as HTML: escaped, with code spans and bold."""
    out, last = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        code, bold = match.groups()
        out.append(f"<code>{html.escape(code)}</code>" if code is not None else f"<strong>{html.escape(bold)}</strong>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def blocks(lines: list[str]) -> str:
    """Paragraphs (runs of lines) and ``- `` lists (an item goes on over indented lines) as HTML."""
    out: list[str] = []
    paragraph: list[str] = []
    items: list[list[str]] = []

    def close() -> None:
        if paragraph:
            out.append(f"<p>{inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(' '.join(item))}</li>" for item in items) + "</ul>")
            items.clear()

    for raw in lines:
        line = raw.strip()
        if not line:
            close()
        elif line.startswith("- "):
            if paragraph:
                close()
            items.append([line[2:]])
        elif items and raw.startswith(" "):
            items[-1].append(line)
        else:
            if items:
                close()
            paragraph.append(line)
    close()
    return "\n".join(out)


def page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body>{body}</body></html>"
    )


@router.get(PATH)
async def all_runbooks() -> HTMLResponse:
    book = runbooks()
    # Relative links: right behind a reverse proxy that serves the service under a path prefix.
    names = {name: html.escape(name, quote=True) for name in book.sections}
    toc = "".join(f'<li><a href="#{shown}">{shown}</a></li>' for shown in names.values())
    sections = "".join(
        f'<section id="{names[name]}"><h2><a href="runbooks/{names[name]}">{names[name]}</a></h2>'
        f"{blocks(lines)}</section>"
        for name, lines in book.sections.items()
    )
    return page(book.title, f"<h1>{html.escape(book.title)}</h1>{blocks(book.preamble)}<ul>{toc}</ul>{sections}")


@router.get(PATH + "/{alert}")
async def one_runbook(alert: str) -> HTMLResponse:
    book = runbooks()
    name = book.find(alert)
    if name is None:
        raise HTTPException(404, f"no runbook for alert {alert[:100]!r}; runbooks: {', '.join(book.sections)}")
    shown = html.escape(name, quote=True)
    body = f'<p><a href="../runbooks">All runbooks</a></p><h1 id="{shown}">Runbook: {shown}</h1>'
    return page(f"Runbook: {name}", body + blocks(book.sections[name]))
