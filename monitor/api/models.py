"""Model routes: the models, their reference profiles and detector results.

GET /v1/models                     (read)  models known to this instance, with their record counts
PUT /v1/models/{model}/reference   (admin) upload reference rows (CSV, Parquet or JSONL) or a saved profile; 201
GET /v1/models/{model}/reference   (read)  the active reference's version and summary
GET /v1/models/{model}/references  (read)  every version, newest first
GET /v1/models/{model}/results     (read)  detector results as a time series (monitor/api/results.py)

The reference file is profiled with the model's schema (:func:`schema_for`) and stored as
the model's next version, which becomes the active one; the pipeline is told through
``app.state.pipeline.set_reference(model, version, profile)`` when it has that hook.
Reading and profiling run in a worker thread: a large file must not stall ingestion.
Everything a client can get wrong in the file is a 400 that names the problem.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from detectors.profiles import ReferenceProfile
from monitor.api.auth import require
from monitor.api.availability import require_store
from monitor.api.body import NDJSON_TYPES, media_type
from monitor.api.responses import JSONResponse
from monitor.api.results import check_filters, parse_cursor, parse_segment, parse_time
from monitor.api.results import query as query_results
from monitor.detection import with_version
from monitor.pipeline import Pipeline
from monitor.reference_estimators import build_with_estimators
from monitor.reference_startup import detection_state
from monitor.saved_profiles import MEDIA_TYPE as PROFILE_TYPE
from monitor.saved_profiles import SavedProfileError, reference_from_saved
from monitor.settings import ModelConfig

log = logging.getLogger(__name__)
router = APIRouter(tags=["models"])

# Reference files are whole training sets, far bigger than ingestion batches.
REFERENCE_MAX_BYTES = 256 * 1024 * 1024
MAX_NAME = 256
# An upload's format, by its Content-Type.
CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    **dict.fromkeys(NDJSON_TYPES, "jsonl"),
    # a saved monitor.profile(...) (monitor/saved_profiles.py); octet-stream: what generic clients send
    PROFILE_TYPE: "profile",
    "application/octet-stream": "profile",
}


def _config(request: Request, model: str) -> ModelConfig:
    configs = getattr(request.app.state.pipeline, "configs", {})
    config = configs.get(model)
    if config is None:
        known = ", ".join(sorted(configs)) or "none"
        raise HTTPException(404, f"unknown model {model!r}: not in this service's models (configured: {known})")
    return config


def reference_format(request: Request, requested: str | None) -> str:
    if requested is not None:
        return requested
    kind = media_type(request)
    fmt = CONTENT_TYPES.get(kind)
    if fmt is None:
        accepted = f"text/csv, application/vnd.apache.parquet, application/x-ndjson, {PROFILE_TYPE}"
        raise HTTPException(
            415,
            f"content type {kind or '(none)'!r} is not a reference format; send {accepted}, "
            "or any type with ?format=csv|parquet|jsonl|profile",
        )
    return fmt


async def read_reference_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"reference file is {declared} bytes; the limit for reference uploads is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():  # counted while streaming: Content-Length may lie
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"reference file exceeds {limit} bytes, the limit for reference uploads")
        chunks.append(chunk)
    return b"".join(chunks)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "id"}


ModelName = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]


@router.get("/v1/models", dependencies=[Depends(require("read"))])
async def list_models(request: Request) -> dict[str, Any]:
    """Models known to this instance, with their record counts since start-up, their active
    reference version (null: none) and what detection does: ``active``, ``building a
    reference from the first N records`` or ``waiting for a reference``; ``estimation``:
    the estimators fitted on the reference (``methods``: ``cbpe``, ``direct_loss``,
    ``pca_reconstruction``, ``domain_classifier``) or why fitting them failed (``error``);
    ``reference_source``: for a reference from MLflow, its fetch (``state``: ``fetching``,
    ``failed`` while retrying, ``ready``; ``attempts``, ``last_error``), else null;
    ``segments``: the slices (``segment``, the ``reference`` it is compared with: its own
    rows or ``whole``, ``open_window_records``), the rows ``pooled`` per key as
    ``__other__`` and the slice windows evaluated; null without ``segments:``."""
    pipeline: Pipeline = request.app.state.pipeline
    mlflow = getattr(getattr(request.app.state, "service", None), "mlflow_references", None)
    return {
        "models": [
            {
                "name": state.name,
                "features": state.config.feature_names,
                "prediction": state.config.prediction.kind,
                "records": state.records,
                "incomplete": state.incomplete,
                "labelled": state.labelled,
                "windows_evaluated": state.windows_evaluated,
                "open_window_records": state.detector.open_records if state.detector is not None else 0,
                "reference": state.reference_version,
                "detection": detection_state(pipeline, state.name),
                # Where the reference is fetched from, when not a file or upload (README "MLflow").
                "reference_source": None if mlflow is None else mlflow.public(state.name),
                "estimation": state.estimation,
                # Segment analysis (README "Segments"): the slices with windows, the pooled rows; null without.
                "segments": None if state.segments is None else state.segments.public(),
            }
            for state in pipeline.models.values()
        ]
    }


@router.put(
    "/v1/models/{model}/reference",
    status_code=201,
    summary="Upload a model's reference data (CSV, Parquet or JSONL); it becomes the active reference",
    dependencies=[Depends(require("admin")), Depends(require_store)],  # 503 + Retry-After while the store is down
    responses={code: {"description": "Refused"} for code in (400, 401, 403, 404, 413, 415, 422, 503)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
                PROFILE_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def put_reference(
    request: Request,
    model: ModelName,
    fmt: str | None = Query(None, alias="format", pattern="^(csv|parquet|jsonl|profile)$"),
    prediction_column: str | None = Query(None, min_length=1, max_length=MAX_NAME),
    latency_column: str | None = Query(None, min_length=1, max_length=MAX_NAME),
    label_column: str | None = Query(None, min_length=1, max_length=MAX_NAME),
) -> JSONResponse:
    """The file's columns are named as the model's features; the prediction column is
    ``prediction`` unless ``?prediction_column=`` (or the model's ``reference`` config) says
    otherwise; a latency channel is profiled only with ``?latency_column=``; with
    ``?label_column=`` the reference's own performance is kept for comparison."""
    config = _config(request, model)
    fmt = reference_format(request, fmt)
    state = request.app.state
    body = await read_reference_body(request, max(REFERENCE_MAX_BYTES, state.settings.limits.max_body_bytes))
    try:
        if fmt != "profile":  # profiling and fitting the estimators in a worker thread (seconds for a large file)
            profile, summary, estimators = await asyncio.to_thread(
                build_with_estimators, body, fmt, config, model=model, prediction_column=prediction_column,
                latency_column=latency_column, label_column=label_column,
            )  # fmt: skip
        else:  # a saved profile: checked against the model's config; no rows to fit estimators on
            profile, summary = await asyncio.to_thread(
                reference_from_saved, body, config, prediction_column=prediction_column, latency_column=latency_column
            )
            estimators = None
    except SavedProfileError as exc:  # a readable upload that is no saved profile, or not this model's
        raise HTTPException(422, f"reference for model {model!r}: {exc}") from None
    except ValueError as exc:  # ReferenceDataError, or a column name the Schema refuses
        raise HTTPException(400, f"reference for model {model!r}: {exc}") from None
    labelled: list[ReferenceProfile] = []

    def encode(version: str) -> bytes:
        labelled[:] = [with_version(profile, version)]
        return labelled[0].to_bytes()

    rows = summary["rows"]
    version = await asyncio.to_thread(
        state.store.save_reference, model, encode, content_hash=profile.content_hash, source="upload", summary=summary,
        estimators=None if estimators is None else estimators.to_bytes(),
    )  # fmt: skip
    set_reference = getattr(getattr(state, "pipeline", None), "set_reference", None)
    if callable(set_reference):
        try:
            set_reference(model, labelled[0], summary, estimators)
        except Exception:  # stored already: a 500 would make the client upload it again
            log.exception("reference %s of model %r was stored but the pipeline did not take it", version, model)
    log.info("model %r: reference version %s stored (%d rows, %s)", model, version, rows, fmt)
    body_out = {"model": model, "version": version, "rows": rows, "content_hash": profile.content_hash}
    return JSONResponse(body_out, status_code=201)


@router.get("/v1/models/{model}/reference", dependencies=[Depends(require("read"))], responses={404: {}})
async def get_reference(request: Request, model: ModelName) -> dict[str, Any]:
    """The active reference: version, source, content hash and summary."""
    rows = await asyncio.to_thread(request.app.state.store.references, model)
    active = next((row for row in rows if row["active"]), None)
    if active is None:
        _config(request, model)  # 404 for a model that is not configured either
        raise HTTPException(404, f"model {model!r} has no reference yet: PUT /v1/models/{model}/reference")
    return _public(active)


@router.get("/v1/models/{model}/references", dependencies=[Depends(require("read"))], responses={404: {}})
async def list_references(request: Request, model: ModelName) -> dict[str, Any]:
    """Every reference version of the model, newest first (without the profiles)."""
    rows = await asyncio.to_thread(request.app.state.store.references, model)
    if not rows:
        _config(request, model)  # nothing stored: 404 unless the model is configured
    return {"model": model, "references": [_public(row) for row in rows]}


@router.get("/v1/models/{model}/results", dependencies=[Depends(require("read"))], responses={404: {}, 422: {}})
async def get_results(
    request: Request,
    model: ModelName,
    kind: str | None = Query(None, max_length=32, description="one kind of row, e.g. feature_drift"),
    feature: str | None = Query(None, max_length=MAX_NAME, description="a feature, prediction, latency_ms"),
    method: str | None = Query(None, max_length=64, description="a test, effect, check or metric, e.g. ks"),
    since_seq: int | None = Query(None, ge=-(2**62), le=2**62, description="from this window on (inclusive)"),
    since: str | None = Query(None, max_length=64, description="windows that ended at or after (ISO 8601 or epoch s)"),
    until: str | None = Query(None, max_length=64, description="windows that ended before (ISO 8601 or epoch s)"),
    cursor: str | None = Query(None, max_length=64, description="the `next` of the previous page"),
    limit: int = Query(1000, ge=1, le=10_000, description="rows per page"),
    segment: str | None = Query(
        None, max_length=4096, description="a slice, e.g. region:eu (default: whole population)"
    ),
    version: str | None = Query(
        None, min_length=1, max_length=4096, description="a model version's own windows (default: every version)"
    ),
) -> dict[str, Any]:
    """Detector results by window then id. ``next`` is the ``cursor`` of the following
    page (null on the last); each time is in epoch seconds and, as ``*_iso``, ISO 8601."""
    store = request.app.state.store
    configs = getattr(request.app.state.pipeline, "configs", {})
    config = configs.get(model)
    features = config.feature_names if config is not None else []
    begin, end, after = parse_time(since, "since"), parse_time(until, "until"), parse_cursor(cursor)
    await asyncio.to_thread(check_filters, store, model, features, kind, feature)
    rows, following = await asyncio.to_thread(
        query_results, store, model, kind=kind, feature=feature, method=method, since_seq=since_seq,
        since=begin, until=end, after=after, limit=limit, segment=parse_segment(segment),
        model_version=version or "",
    )  # fmt: skip
    if not rows and config is None:
        _config(request, model)  # nothing stored: 404 unless the model is configured
    return {"model": model, "results": rows, "next": following}
