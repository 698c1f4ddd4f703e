"""Model version routes (monitor/version_state.py, README "Versions").

GET /v1/models/{model}/versions                    (read)  the versions with windows of their own, most recently seen first
PUT /v1/models/{model}/versions/{version}/reference  (admin) attach a reference to one version; 201
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from detectors.profiles import ReferenceProfile
from monitor.api.auth import require
from monitor.api.availability import require_store
from monitor.api.models import MAX_NAME, REFERENCE_MAX_BYTES, read_reference_body, reference_format
from monitor.api.responses import JSONResponse
from monitor.detection import with_version
from monitor.pipeline import Pipeline
from monitor.reference_files import build_reference
from monitor.version_state import ModelVersions

log = logging.getLogger(__name__)

router = APIRouter(tags=["models"])

ModelName = Annotated[str, Path(min_length=1, max_length=256)]
VersionName = Annotated[str, Path(min_length=1, max_length=1024)]


def _versions(request: Request, model: str) -> ModelVersions:
    pipeline: Pipeline = request.app.state.pipeline
    state = pipeline.models.get(model)
    if state is None:
        raise HTTPException(404, f"model {model!r} is not configured")
    if state.versions is None:
        raise HTTPException(404, f"model {model!r} has no per-version windows: configure `versions:` for it")
    return state.versions


@router.get("/v1/models/{model}/versions", dependencies=[Depends(require("read"))], responses={404: {}})
async def list_versions(request: Request, model: ModelName) -> dict[str, Any]:
    """The model's versions with windows of their own (at most ``versions.max_active``),
    each with its record and window counts, when it was first and last seen (event time,
    epoch s) and the reference its windows use; ``retired``: versions whose windows were
    dropped to keep within the bound; ``champion`` / ``challenger`` as configured."""
    versions = _versions(request, model)
    state = request.app.state.pipeline.models[model]
    config = state.config.versions
    assert config is not None  # versions exist only with the config
    return {
        "model": model,
        "max_active": versions.max_active,
        "retired": versions.retired,
        "champion": config.champion,
        "challenger": config.challenger,
        "versions": versions.public(state.reference_version),
        "references": versions.attached_references(),
    }


@router.put(
    "/v1/models/{model}/versions/{version}/reference",
    status_code=201,
    summary="Upload one model version's reference data (CSV, Parquet or JSONL)",
    dependencies=[Depends(require("admin")), Depends(require_store)],
    responses={code: {"description": "Refused"} for code in (400, 401, 403, 404, 413, 415, 503)},
)
async def put_version_reference(
    request: Request,
    model: ModelName,
    version: VersionName,
    fmt: str | None = Query(None, alias="format", pattern="^(csv|parquet|jsonl)$"),
    prediction_column: str | None = Query(None, min_length=1, max_length=MAX_NAME),
    latency_column: str | None = Query(None, min_length=1, max_length=MAX_NAME),
) -> JSONResponse:
    """The file as for ``PUT /v1/models/{model}/reference``; it becomes ``version``'s active
    reference (the model's own stays as it is): that version's windows start over against it."""
    versions = _versions(request, model)
    config = request.app.state.pipeline.configs[model]
    fmt = reference_format(request, fmt)
    if fmt == "profile":
        raise HTTPException(415, "a version's reference is a CSV, Parquet or JSONL file, not a saved profile")
    state = request.app.state
    body = await read_reference_body(request, max(REFERENCE_MAX_BYTES, state.settings.limits.max_body_bytes))
    try:
        profile, summary = await asyncio.to_thread(
            build_reference, body, fmt, config, prediction_column=prediction_column, latency_column=latency_column
        )
    except ValueError as exc:  # ReferenceDataError, or a column name the Schema refuses
        raise HTTPException(400, f"reference for model {model!r} version {version!r}: {exc}") from None
    labelled: list[ReferenceProfile] = []

    def encode(number: str) -> bytes:
        labelled[:] = [with_version(profile, number)]
        return labelled[0].to_bytes()

    number = await asyncio.to_thread(
        state.store.save_reference, model, encode, content_hash=profile.content_hash, source="upload",
        summary=summary, model_version=version,
    )  # fmt: skip
    versions.attach(version, labelled[0])
    log.info("model %r version %r: reference %s stored (%d rows, %s)", model, version, number, summary["rows"], fmt)
    out = {"model": model, "model_version": version, "version": number, "rows": summary["rows"],
           "content_hash": profile.content_hash}  # fmt: skip
    return JSONResponse(out, status_code=201)
