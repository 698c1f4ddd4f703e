"""Decoding ingestion bodies (JSON, NDJSON) into items.

JSON errors carry their position, and NDJSON is split so that one broken line rejects
only that line. What makes a whole body unusable raises :class:`BodyError` with the HTTP
status it deserves; the routes (:mod:`monitor.api.ingest`) answer with it.
"""

from __future__ import annotations

from typing import Any

import orjson

from monitor.records import Reason, Rejection


class BodyError(ValueError):
    """The body as a whole cannot be used: ``status`` 400 (empty, not JSON) or 413 (too many items)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def json_error(exc: orjson.JSONDecodeError, what: str = "request body") -> str:
    """Where the JSON broke, then why: ``request body is not valid JSON at line 1, column 7 (char 6): ...``."""
    return f"{what} is not valid JSON at line {exc.lineno}, column {exc.colno} (char {exc.pos}): {exc.msg}"


def decode_json(body: bytes) -> Any:
    """A JSON document; BodyError 400 with the position of the first error."""
    if not body.strip():
        raise BodyError(400, "request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, json_error(exc)) from None


def decode_json_items(body: bytes, max_items: int) -> list[Any]:
    """A JSON object as one item, a JSON array as its items; BodyError 413 beyond ``max_items``."""
    document = decode_json(body)
    if not isinstance(document, list):
        return [document]
    if len(document) > max_items:
        raise BodyError(
            413, f"{len(document)} items in one request; the limit is {max_items} (limits.max_items_per_request)"
        )
    return document


def decode_ndjson(body: bytes, max_items: int) -> tuple[list[Any], list[int] | None, list[Rejection]]:
    """NDJSON lines as ``(items, indices, rejections)``; a line that is not JSON is a
    Rejection of its own, and ``indices[i]`` is item i's index (None when item i has
    index i, i.e. every line was JSON).

    Blank lines are skipped and do not take an index.
    """
    lines = body.split(b"\n")
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # the final newline
    if len(lines) <= max_items:
        try:
            # The common body: every line one JSON value, no blank line (orjson refuses an
            # empty one), parsed without a Python loop.
            return list(map(orjson.loads, lines)), None, []
        except orjson.JSONDecodeError:
            pass
    items: list[Any] = []
    indices: list[int] = []
    rejections: list[Rejection] = []
    index = 0
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if index >= max_items:
            raise BodyError(413, f"more than {max_items} items in one request (limits.max_items_per_request)")
        try:
            items.append(orjson.loads(line))
            indices.append(index)
        except orjson.JSONDecodeError as exc:
            raw = line.decode("utf-8", errors="replace")
            rejections.append(Rejection(index, "", Reason.INVALID_JSON, json_error(exc, f"line {line_number}"), raw))
        index += 1
    if index == 0:
        raise BodyError(400, "request body is empty")
    return items, (indices if rejections else None), rejections
