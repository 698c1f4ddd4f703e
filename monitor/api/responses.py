"""``JSONResponse``: a response rendered with orjson (FastAPI deprecated its own
ORJSONResponse in favour of response models; our ingestion answers are plain dicts built
on the hot path, for which orjson is the fastest honest choice)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
