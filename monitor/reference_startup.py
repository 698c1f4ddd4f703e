"""Which reference each model is compared with, at start-up and when one is built.

Precedence: the model's active reference in the store (the latest upload or CLI
``reference set``); else the config's ``reference.file``, profiled and stored as a new
version; else, with ``reference.from_first_records: N``, the first N records after
start-up. A model with none of these is counted but not evaluated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detectors.profiles import ReferenceProfile
from monitor.detection import with_version
from monitor.pipeline import Pipeline
from monitor.reference_files import reference_from_file
from monitor.store.database import Store

log = logging.getLogger(__name__)


def active_summary(store: Store, model: str) -> dict[str, Any]:
    for row in store.references(model):
        if row["active"]:
            return dict(row.get("summary") or {})
    return {}


def load_references(pipeline: Pipeline, store: Store) -> None:
    """Give every configured model its reference (see the module docstring)."""
    for name, config in pipeline.configs.items():
        stored = store.active_reference(name)
        if stored is not None:
            version, data = stored
            profile = with_version(ReferenceProfile.from_bytes(data), version)
            pipeline.set_reference(name, profile, active_summary(store, name))
            continue
        if config.reference.file:
            path = Path(config.reference.file)
            profile, summary = reference_from_file(path, config)
            summary["file"] = str(path)
            version = store.save_reference(
                name,
                _versioned_bytes(profile),
                content_hash=profile.content_hash,
                source="file",
                summary=summary,
            )
            pipeline.set_reference(name, with_version(profile, version), summary)
            log.info("model %s: reference version %s built from %s (%d rows)", name, version, path, summary["rows"])


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
