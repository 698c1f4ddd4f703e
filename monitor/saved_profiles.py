"""A saved notebook profile (``monitor.profile(df).save(path)``) as a model's reference.

The service takes one instead of reference rows (``PUT /v1/models/{model}/reference`` with
``Content-Type: application/vnd.monitor.profile``, ``monitor reference set MODEL FILE``,
``MonitorClient.set_reference(model, profile)``): nothing is re-read or re-profiled, so a
reference profiled from a 50-million-row file uploads in a few hundred kilobytes.

The profile must fit the model's config: every feature profiled with the model's kind
(numeric, categorical, boolean; a boolean column can be a categorical feature: its
categories are 'false' and 'true', as the service counts booleans), the prediction column (``reference.prediction_column``,
``prediction`` by default) when the model has a prediction, the latency column when one is
configured, and no other column. Anything else, and bytes that are no saved profile, is a
:class:`SavedProfileError` naming what is wrong.
"""

from __future__ import annotations

from typing import Any

from detectors.profiles import Profile as ChannelProfile
from detectors.profiles import ReferenceProfile
from detectors.schema import LATENCY, NUMERIC, PREDICTION
from detectors.sketches import pack
from monitor.detection import schema_for
from monitor.frames import BOOLEAN, CATEGORICAL, TableError
from monitor.profiling import Profile
from monitor.reference_files import profile_summary
from monitor.settings import ModelConfig

MEDIA_TYPE = "application/vnd.monitor.profile"
# Saved profiles are packed detector state: they open with its 4-byte magic.
_OPENING = pack({}, {})[:4]


class SavedProfileError(ValueError):
    """The bytes are no saved profile, or the profile does not fit the model: the message says which."""


def is_saved_profile(data: bytes) -> bool:
    """Whether ``data`` starts as a saved profile does (the detector-state magic)."""
    return data[: len(_OPENING)] == _OPENING


def reference_from_saved(
    data: bytes,
    config: ModelConfig,
    *,
    prediction_column: str | None = None,
    latency_column: str | None = None,
) -> tuple[ReferenceProfile, dict[str, Any]]:
    """The model's reference (version label "new", as :func:`monitor.reference_files.build_reference`
    gives it) made of a saved profile's channels, and its summary."""
    if not is_saved_profile(data):  # e.g. reference rows sent as application/octet-stream
        raise SavedProfileError(
            "not a saved monitor profile (reference rows go as text/csv, application/vnd.apache.parquet "
            "or application/x-ndjson, or with ?format=csv|parquet|jsonl)"
        )
    try:
        saved = Profile.from_bytes(data)
    except TableError as exc:
        raise SavedProfileError(str(exc)) from None
    schema = schema_for(config, prediction_column=prediction_column, latency_column=latency_column)
    kinds = dict(saved.kinds or {})
    wanted = {name: feature.type for name, feature in config.features.items()}
    problems = []
    if schema.prediction_type is not None:
        wanted[schema.prediction_column] = schema.prediction_type
    if schema.latency_column is not None:
        wanted[schema.latency_column] = NUMERIC
    for name, kind in wanted.items():
        have = kinds.get(name)
        if have is None:
            problems.append(f"no column {name!r} ({kind})")
        elif have != kind and not (kind == CATEGORICAL and have == BOOLEAN):  # booleans: categories 'false', 'true'
            problems.append(f"column {name!r} is {have}, the model's is {kind}")
    extra = [name for name in kinds if name not in wanted]
    if extra:
        problems.append(f"columns the model does not have: {extra}")
    if problems:
        raise SavedProfileError(f"the saved profile does not fit the model's config: {'; '.join(problems)}")
    profiled = saved.reference.channels
    channels: dict[str, ChannelProfile] = {name: profiled[name] for name in schema.features}
    if schema.prediction_type is not None:
        channels[PREDICTION] = profiled[schema.prediction_column]
    if schema.latency_column is not None:
        channels[LATENCY] = profiled[schema.latency_column]
    reference = ReferenceProfile(schema, channels, version="new", params=saved.reference.params)
    summary = profile_summary(reference, saved.rows, "profile")
    summary["estimation"] = {
        "methods": [],
        "label_column": None,
        "error": "a saved profile holds no rows to fit estimators on" if _estimates(config) else None,
    }
    return reference, summary


def _estimates(config: ModelConfig) -> bool:
    options = config.estimation
    return bool(options.performance or options.multivariate or options.domain_classifier)
