"""The framework ceiling for ``benchmarks/ingest_http.py``: a bare FastAPI endpoint.

    python benchmarks/bare_endpoint.py --port PORT [--host 127.0.0.1]

``POST /bare`` reads the raw body, splits it into lines, parses each non-blank line
with ``orjson.loads`` and answers ``{"count": n}``: the least an NDJSON ingestion
endpoint on this stack can do (no validation, no pipeline, no metrics, no middleware).
``GET /healthz`` answers when the server is up.

It runs under uvicorn with the settings ``monitor serve`` uses: one worker, the default
(``auto``) event loop and HTTP implementation, log level warning (so no access log).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI(title="bare ingestion endpoint", docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/bare")
async def bare(request: Request) -> Response:
    body = await request.body()
    count = 0
    for line in body.split(b"\n"):
        if line.strip():
            orjson.loads(line)
            count += 1
    return Response(orjson.dumps({"count": count}), media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning", timeout_graceful_shutdown=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
