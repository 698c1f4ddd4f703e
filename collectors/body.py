"""Reading and decoding request bodies within the ingestion limits.

Shared by the HTTP collectors: the size limit is enforced while streaming (a client
cannot make us buffer more than ``max_body_bytes`` by lying in Content-Length), JSON
errors carry their position, and NDJSON is split so that one broken line rejects only
that line.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import HTTPException, Request

from monitor.records import Reason, Rejection

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters such as charset."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or 413 as soon as it exceeds ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"request body is {declared} bytes; the limit is {max_bytes} (limits.max_body_bytes)")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, f"request body exceeds {max_bytes} bytes (limits.max_body_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def json_error(exc: orjson.JSONDecodeError, what: str = "request body") -> str:
    """Where the JSON broke, then why: ``request body is not valid JSON at line 1, column 7 (char 6): ...``."""
    return f"{what} is not valid JSON at line {exc.lineno}, column {exc.colno} (char {exc.pos}): {exc.msg}"


def decode_json(body: bytes) -> Any:
    """A JSON document, or 400 with the position of the first error."""
    if not body.strip():
        raise HTTPException(400, "request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, json_error(exc)) from None


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
            raise HTTPException(413, f"more than {max_items} items in one request (limits.max_items_per_request)")
        try:
            items.append(orjson.loads(line))
            indices.append(index)
        except orjson.JSONDecodeError as exc:
            raw = line.decode("utf-8", errors="replace")
            rejections.append(Rejection(index, "", Reason.INVALID_JSON, json_error(exc, f"line {line_number}"), raw))
        index += 1
    if index == 0:
        raise HTTPException(400, "request body is empty")
    return items, (indices if rejections else None), rejections
