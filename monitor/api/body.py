"""Reading request bodies within the ingestion limits, and their media types.

The size limit is enforced while streaming: a client cannot make us buffer more than
``max_body_bytes`` by lying in Content-Length.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

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
