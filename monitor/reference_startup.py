"""Which reference each model is compared with, at start-up and when one is built.

Precedence: the model's active reference in the store (the latest upload or CLI
``reference set``); else the config's ``reference.file``, profiled and stored as a new
version; else, with ``reference.from_first_records: N``, the first N records after
start-up. A model with none of these is counted but not evaluated. A model with
``reference.mlflow`` gets its reference from the registry in the background after
start-up (:mod:`monitor.mlflow_references`), the stored one meanwhile.

A reference file also gets its estimators fitted (:mod:`monitor.reference_estimators`),
stored with it, so a restart restores them from the store without the file.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detectors.profiles import ReferenceProfile
from monitor.detection import with_version
from monitor.pipeline import Pipeline
from monitor.reference_estimators import fit_reference_estimators, restore_estimators
from monitor.reference_files import build_reference, file_format
from monitor.store.database import Store
from monitor.version_state import load_version_references

log = logging.getLogger(__name__)

# How often a model still without a reference is named in the log again.
REMINDER_SECONDS = 3600.0
WAITING = "waiting for a reference"


def detection_state(pipeline: Pipeline, model: str) -> str:
    """What the model's detection is doing: "active", building its reference from the
    first records, or waiting for a reference (records counted, nothing compared)."""
    state = pipeline.models[model]
    if state.detector is not None:
        return "active"
    wanted = state.config.reference.from_first_records
    if wanted > 0:
        return f"building a reference from the first {wanted} records"
    if state.config.reference.mlflow is not None:  # fetched in the background (monitor.mlflow_references)
        return "waiting for its reference from MLflow"
    return WAITING


def waiting_models(pipeline: Pipeline) -> list[str]:
    return [name for name in list(pipeline.models) if detection_state(pipeline, name) == WAITING]


def log_waiting(pipeline: Pipeline) -> list[str]:
    """One warning per model without a reference (what start-up and the hourly reminder say)."""
    waiting = waiting_models(pipeline)
    for name in waiting:
        log.warning(
            "model %s: %s: its records are counted but not compared with anything; give it one with "
            "reference.file or reference.from_first_records in the config, PUT /v1/models/%s/reference "
            "or `monitor reference set %s FILE`",
            name, WAITING, name, name,
        )  # fmt: skip
    return waiting


# The pipelines of this process to remind about; one daemon thread for all of them, so a
# pipeline that is gone (a stopped app, a finished test) is simply forgotten.
_watched: weakref.WeakSet[Pipeline] = weakref.WeakSet()
_reminder: threading.Thread | None = None
_lock = threading.Lock()


def _remind_forever() -> None:
    while True:
        threading.Event().wait(REMINDER_SECONDS)
        for pipeline in list(_watched):
            try:
                log_waiting(pipeline)
            except Exception:  # e.g. a model registered mid-read: the next hour tells
                log.debug("reference reminder skipped a round", exc_info=True)


def remind_hourly(pipeline: Pipeline) -> None:
    """Name ``pipeline``'s models without a reference in the log every REMINDER_SECONDS."""
    global _reminder
    with _lock:
        _watched.add(pipeline)
        if _reminder is None:
            _reminder = threading.Thread(target=_remind_forever, name="reference-reminder", daemon=True)
            _reminder.start()


def active_summary(store: Store, model: str) -> dict[str, Any]:
    for row in store.references(model):
        if row["active"]:
            return dict(row.get("summary") or {})
    return {}


def load_references(pipeline: Pipeline, store: Store, *, announce: bool = True) -> None:
    """Give every configured model its reference (see the module docstring). ``announce``:
    warn about each model left without one, now and hourly (a service; not a replay)."""
    for name, config in pipeline.configs.items():
        state = pipeline.models.get(name)
        if state is not None and state.versions is not None:  # references attached to versions
            load_version_references(state.versions, store.version_references(name))
        stored = store.active_reference(name)
        if stored is not None:
            version, data = stored
            profile = with_version(ReferenceProfile.from_bytes(data), version)
            # The estimators fitted when the reference was stored: no file needed now.
            estimators = restore_estimators(store.reference_estimators(name, version), name)
            pipeline.set_reference(name, profile, active_summary(store, name), estimators=estimators)
            continue
        if config.reference.file:
            path = Path(config.reference.file)
            fmt = file_format(path)
            content = path.read_bytes()
            profile, summary = build_reference(content, fmt, config, label_column=config.reference.label_column)
            summary["file"] = str(path)
            estimators, summary["estimation"] = fit_reference_estimators(content, fmt, config, model=name)
            version = store.save_reference(
                name,
                _versioned_bytes(profile),
                content_hash=profile.content_hash,
                source="file",
                summary=summary,
                estimators=None if estimators is None else estimators.to_bytes(),
            )
            pipeline.set_reference(name, with_version(profile, version), summary, estimators=estimators)
            log.info("model %s: reference version %s built from %s (%d rows)", name, version, path, summary["rows"])
    if announce and log_waiting(pipeline):
        remind_hourly(pipeline)


def _versioned_bytes(profile: ReferenceProfile) -> Callable[[str], bytes]:
    # A function of its own, not a lambda binding the loop's profile as a default (which
    # mypy cannot type): the store calls it with the version it picks.
    return lambda version: with_version(profile, version).to_bytes()


def reference_saver(store: Store):
    """The pipeline's hook for references built from the first records."""

    def save(model: str, profile_bytes: bytes, content_hash: str, summary: dict[str, Any]) -> str:
        profile = ReferenceProfile.from_bytes(profile_bytes)
        return store.save_reference(
            model,
            lambda v: with_version(profile, v).to_bytes(),
            content_hash=content_hash,
            source="first_records",
            summary=summary,
        )

    return save
