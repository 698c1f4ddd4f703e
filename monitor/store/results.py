"""Reference profiles and detector results in the store.

:class:`ResultsStore` is a mixin of :class:`monitor.store.database.Store`: it adds the methods on
the ``references`` and ``results`` tables (see :mod:`monitor.store.tables`) and uses the
Store's engine and its conflict-retrying write transaction. Like the rest of the Store,
every method is synchronous and short.

The store knows nothing of :class:`detectors.profiles.ReferenceProfile`: a profile is
stored as the bytes of ``to_bytes()``, with the caller's content hash and display summary.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import sqlalchemy as sa

from monitor.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# The columns a caller gives in a results row: required, then optional (None when absent).
RESULT_REQUIRED = ("model", "window_seq", "kind", "feature", "method", "drift")
RESULT_OPTIONAL = (
    "window_start",
    "window_end",
    "reference_version",
    "statistic",
    "pvalue",
    "threshold",
    "n_reference",
    "n_current",
    "detail",
    "created_at",
    "segment",
    "model_version",
)
# Every column, in order, None; the slice columns '' (the whole population, all versions).
_NO_RESULT_VALUES = {**dict.fromkeys((*RESULT_REQUIRED, *RESULT_OPTIONAL)), "segment": "", "model_version": ""}
_RESULT_COLUMN_SET = frozenset(_NO_RESULT_VALUES)
_RESULT_REQUIRED_SET = frozenset(RESULT_REQUIRED)
_WIDTHS = {
    "model": t.MODEL_NAME_LENGTH,
    "kind": t.RESULT_KIND_LENGTH,
    "feature": t.MODEL_NAME_LENGTH,
    "method": t.METHOD_LENGTH,
    "reference_version": t.VERSION_LENGTH,
    "segment": 4096,  # "key:value", each at most limits.max_string_length (1024 by default)
    "model_version": 4096,
}
_NON_EMPTY = frozenset({"model", "kind", "content_hash"})
_FLOATS = ("window_start", "window_end", "statistic", "pvalue", "threshold")
_COUNTS = ("n_reference", "n_current")
# What identifies a stored result (add_results does not store it twice).
_RESULT_KEY = ("model", "reference_version", "window_seq", "kind", "feature", "method", "segment", "model_version")
_result_key = operator.itemgetter(*_RESULT_KEY)
# The keys stored already among those of a batch, given each column's values. Every column
# of the index ix_results_model_kind_feature_seq is constrained, so the look-up is a few
# index probes however many results a model has (on model and window_seq alone, SQLite
# read all of the model's rows, a cost growing with every window).
_INDEXED = ("model", "kind", "feature", "window_seq")
_STORED_RESULT_KEYS = sa.select(*(t.results.c[name] for name in _RESULT_KEY)).where(
    *(t.results.c[name].in_(sa.bindparam(name, expanding=True)) for name in _INDEXED)
)
_PG_REFERENCE_LOCK = 0x72656673  # advisory lock namespace of save_reference (with the model's hash)
# A profile's bytes, or a function of the version the store assigns that returns them
# (so the stored profile can carry its own version label).
ProfileBytes = bytes | Callable[[str], bytes]


class ResultsStore:
    """Reference and result methods of :class:`monitor.store.database.Store`."""

    _engine: Engine
    url: str

    if TYPE_CHECKING:

        def _write_retrying(self, work: Callable[[Connection], None], what: str) -> None: ...

    # -- references -----------------------------------------------------------------

    def save_reference(
        self, model: str, profile_bytes: ProfileBytes, *, content_hash: str, source: str, summary: dict[str, Any],
        estimators: bytes | None = None, model_version: str | None = None,
    ) -> str:  # fmt: skip
        """Store a new reference for ``model`` as the next version ("1", "2", ...), make it
        the active one and the previous active one inactive, in one transaction.
        ``estimators``: what was fitted on it for estimates before labels come (or None).
        ``model_version``: a reference of that model version only (monitor/version_state.py),
        active beside the model's own; numbers are one sequence per model either way.

        ``profile_bytes`` may be a function of the new version returning the bytes; it
        may be called more than once (when a concurrent save took the version first)."""
        where = f"reference of model {model!r}" + ("" if model_version is None else f" version {model_version!r}")
        _check_text(model, "model", t.MODEL_NAME_LENGTH, where)
        if model_version is not None:
            _check_text(model_version, "model_version", 4096, where)
        _check_text(content_hash, "content_hash", 64, where)
        if source not in t.REFERENCE_SOURCES:
            raise ValueError(f"{where}: source must be one of {', '.join(t.REFERENCE_SOURCES)}, got {source!r}")
        try:
            json.dumps(summary, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: summary is not JSON-serialisable: {exc}") from None
        now = time.time()
        saved: list[str] = []
        c = t.references.c

        def work(conn: Connection) -> None:
            saved.clear()
            if conn.dialect.name == "postgresql":
                # Saves of one model queue here instead of racing for the same version (SQLite's
                # BEGIN IMMEDIATE already serialises writers); the lock ends with the transaction.
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key, hashtext(:model))"),
                    {"key": _PG_REFERENCE_LOCK, "model": model},
                )
            existing = conn.execute(sa.select(c.version).where(c.model == model)).scalars().all()
            # Versions are compared as numbers ("10" > "9"); the store only ever writes digits.
            version = str(max((int(v) for v in existing if v.isdigit()), default=0) + 1)
            data = profile_bytes(version) if callable(profile_bytes) else profile_bytes
            if not isinstance(data, bytes) or not data:
                raise ValueError(f"{where}: the profile must be non-empty bytes, got {type(data).__name__}")
            conn.execute(
                sa.update(t.references)
                .where(c.model == model, c.active == sa.true(), _of_version(model_version))
                .values(active=False)
            )
            # Should two saves still meet (a writer without the lock), the unique (model, version)
            # refuses one here and _write_retrying runs it again with the next version.
            conn.execute(
                sa.insert(t.references).values(
                    model=model,
                    version=version,
                    created_at=now,
                    source=source,
                    content_hash=content_hash,
                    profile=data,
                    summary=summary,
                    active=True,
                    estimators=estimators,
                    model_version=model_version,
                )
            )
            saved.append(version)

        self._write_retrying(work, f"saving the {where}")
        return saved[0]

    def active_reference(self, model: str) -> tuple[str, bytes] | None:
        """``(version, profile bytes)`` of the model's active reference, or None."""
        c = t.references.c
        query = sa.select(c.version, c.profile).where(c.model == model, c.active == sa.true(), _of_version(None))
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row.version, bytes(row.profile))

    def version_references(self, model: str) -> dict[str, tuple[str, bytes]]:
        """Model version -> ``(reference version, profile bytes)`` of each version's active reference."""
        c = t.references.c
        query = sa.select(c.model_version, c.version, c.profile).where(
            c.model == model, c.active == sa.true(), c.model_version.is_not(None)
        )
        with self._engine.connect() as conn:
            return {row.model_version: (row.version, bytes(row.profile)) for row in conn.execute(query)}

    def reference_estimators(self, model: str, version: str) -> bytes | None:
        """The estimators stored with ``model``'s reference ``version`` (None: none fitted)."""
        c = t.references.c
        query = sa.select(c.estimators).where(c.model == model, c.version == version)
        with self._engine.connect() as conn:
            data = conn.execute(query).scalar()
        return None if data is None else bytes(data)

    def references(self, model: str) -> list[dict[str, Any]]:
        """Every reference of ``model`` (not those of one of its versions), newest first, without
        the profile and estimator bytes."""
        columns = [column for column in t.references.c if column.name not in ("profile", "estimators", "model_version")]
        query = (
            sa.select(*columns)
            .where(t.references.c.model == model, _of_version(None))
            .order_by(t.references.c.id.desc())
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "active": bool(row["active"])} for row in rows]

    # -- results --------------------------------------------------------------------

    def add_results(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert detector results in one transaction (one executemany).

        Each row has the ``results`` columns but ``id``; ``created_at`` is optional (now).
        Non-finite numbers are stored as NULL and ``detail`` as JSON-safe values.

        A window's result stored already (same model, reference version, window, kind,
        feature and method) is not stored again: after a crash, the instance that takes
        over a Kafka partition evaluates again the windows that closed after the last
        checkpoint, and they must not count twice."""
        if not rows:
            return
        now = time.time()
        clean = [result_row(row, index, now) for index, row in enumerate(rows)]
        wanted = {name: list({row[name] for row in clean}) for name in _INDEXED}

        def work(conn: Connection) -> None:
            seen = {tuple(found) for found in conn.execute(_STORED_RESULT_KEYS, wanted)}
            new = [row for row in clean if _result_key(row) not in seen]
            if new:
                conn.execute(sa.insert(t.results), new)

        self._write_retrying(work, f"adding {len(clean)} results")

    def results(
        self,
        model: str,
        *,
        kind: str | None = None,
        feature: str | None = None,
        method: str | None = None,
        since_seq: int | None = None,
        since: float | None = None,
        until: float | None = None,
        after: tuple[int, int] | None = None,
        limit: int = 1000,
        segment: str = "",
        model_version: str = "",
    ) -> list[dict[str, Any]]:
        """A time series: the first ``limit`` matching rows by ``window_seq`` then ``id``,
        from window ``since_seq`` on (inclusive). ``since`` / ``until``: windows that ended
        at or after / before (epoch seconds); ``after``: rows past this ``(window_seq, id)``;
        ``segment``: the slice ("region:eu"; '' the whole population); ``model_version``: the
        version's own windows ('' every version together)."""
        if limit < 1:
            raise ValueError(f"results: limit must be at least 1, got {limit}")
        c = t.results.c
        filters = [c.model == model, c.segment == segment, c.model_version == model_version]
        for column, value in ((c.kind, kind), (c.feature, feature), (c.method, method)):
            if value is not None:
                filters.append(column == value)
        if since_seq is not None:
            filters.append(c.window_seq >= since_seq)
        ended = sa.func.coalesce(c.window_end, c.created_at)
        if since is not None:
            filters.append(ended >= since)
        if until is not None:
            filters.append(ended < until)
        if after is not None:
            filters.append(sa.or_(c.window_seq > after[0], sa.and_(c.window_seq == after[0], c.id > after[1])))
        query = sa.select(t.results).where(*filters).order_by(c.window_seq, c.id).limit(limit)
        with self._engine.connect() as conn:
            return [_result_out(row) for row in conn.execute(query).mappings()]

    def latest_results(self, model: str) -> list[dict[str, Any]]:
        """For each kind, the rows of its newest whole-population window, by kind, feature, method and id."""
        c = t.results.c
        newest = (
            sa.select(c.kind, sa.func.max(c.window_seq).label("seq"))
            .where(c.model == model, c.segment == "", c.model_version == "")
            .group_by(c.kind)
            .subquery()
        )
        query = (
            sa.select(t.results)
            .join(newest, sa.and_(c.kind == newest.c.kind, c.window_seq == newest.c.seq))
            .where(c.model == model, c.segment == "", c.model_version == "")
            .order_by(c.kind, c.feature, c.method, c.id)
        )
        with self._engine.connect() as conn:
            return [_result_out(row) for row in conn.execute(query).mappings()]

    def window_numbers(self, model: str) -> dict[tuple[str, str, str], int]:
        """``(segment, model_version, kind)`` -> the highest ``window_seq`` stored for ``model``:
        where its numbering continues after a restart (monitor/window_numbering.py)."""
        c = t.results.c
        query = (
            sa.select(c.segment, c.model_version, c.kind, sa.func.max(c.window_seq))
            .where(c.model == model)
            .group_by(c.segment, c.model_version, c.kind)
        )
        with self._engine.connect() as conn:
            return {(segment, version, kind): int(seq) for segment, version, kind, seq in conn.execute(query)}

    def latest_slice_results(self, model: str) -> list[dict[str, Any]]:
        """For each segment (detectors.segments) and kind, the rows of its newest window, by
        segment, kind, feature, method and id (what the segment gauges showed)."""
        return self._latest_per(model, "segment", other="model_version")

    def latest_version_results(self, model: str) -> list[dict[str, Any]]:
        """For each model version (monitor/version_state.py) and kind, the rows of its newest
        window, by version, kind, feature, method and id (what the version gauges showed)."""
        return self._latest_per(model, "model_version", other="segment")

    def _latest_per(self, model: str, column: str, *, other: str) -> list[dict[str, Any]]:
        """The newest window's rows for each value of ``column`` (a slice: segment or
        model_version) and kind, among the rows whose ``other`` slice column is empty."""
        c = t.results.c
        by, empty = c[column], c[other] == ""
        newest = (
            sa.select(by, c.kind, sa.func.max(c.window_seq).label("seq"))
            .where(c.model == model, by != "", empty)
            .group_by(by, c.kind)
            .subquery()
        )
        query = (
            sa.select(t.results)
            .join(newest, sa.and_(by == newest.c[column], c.kind == newest.c.kind, c.window_seq == newest.c.seq))
            .where(c.model == model, empty)
            .order_by(by, c.kind, c.feature, c.method, c.id)
        )
        with self._engine.connect() as conn:
            return [_result_out(row) for row in conn.execute(query).mappings()]


def _of_version(model_version: str | None) -> Any:
    """The references of ``model_version`` (None: the model's own)."""
    c = t.references.c
    return c.model_version.is_(None) if model_version is None else c.model_version == model_version


def result_row(row: Mapping[str, Any], index: int, now: float) -> dict[str, Any]:
    """The ``results`` row for one caller's row; ValueError naming the row and column."""
    # A window's rows go through here on the evaluator's thread: the usual values (str, int,
    # float, bool) pass exact-type tests first, the slower generic checks see the rest.
    where = f"add_results row {index}"
    if not _RESULT_COLUMN_SET.issuperset(row):
        unknown = sorted(set(row) - _RESULT_COLUMN_SET)
        raise ValueError(f"{where}: unknown column(s) {', '.join(map(repr, unknown))}")
    if not row.keys() >= _RESULT_REQUIRED_SET:
        missing = [name for name in RESULT_REQUIRED if name not in row]
        raise ValueError(f"{where}: missing column(s) {', '.join(map(repr, missing))}")
    out: dict[str, Any] = {**_NO_RESULT_VALUES, **row}
    version = out["reference_version"]
    if type(version) is not str and isinstance(version, numbers.Integral) and not isinstance(version, bool):
        out["reference_version"] = str(version)
    for name, width in _WIDTHS.items():
        if name != "reference_version" or out[name] is not None:
            _check_text(out[name], name, width, where)
    out["window_seq"] = _integer(out["window_seq"], "window_seq", "an integer", where)
    drift = out["drift"]
    if not isinstance(drift, (bool, np.bool_)):
        raise ValueError(f"{where}: drift must be a boolean, got {drift!r}")
    out["drift"] = bool(drift)
    for name in _FLOATS:
        out[name] = _finite_or_none(out[name], name, where)
    for name in _COUNTS:
        value = out[name]
        if value is not None:
            out[name] = _integer(value, name, "an integer or None", where)
    created = _finite_or_none(out["created_at"], "created_at", where)
    out["created_at"] = now if created is None else created
    out["detail"] = None if out["detail"] is None else json_safe(out["detail"])
    return out


def estimate_rows(model: str, estimate: Any) -> list[dict[str, Any]]:
    """Results rows of an estimate made before labels come (:data:`detectors.results.Estimate`,
    read through its ``to_dict()``): kind ``estimated_performance``, one row per metric
    (statistic = the estimate, threshold = the alert threshold, drift = the alert), or kind
    ``multivariate_drift``, one row per method (threshold = the upper bound)."""
    d = estimate.to_dict()
    base = {"model": model, "window_seq": d["window_seq"], "window_start": d["window_start"],
            "window_end": d["window_end"], "reference_version": d["reference_version"], "feature": ""}  # fmt: skip
    if d["result"] == "multivariate_drift":
        detail = {"lower": d["lower"], "upper": d["upper"], "reference": d["reference"]}
        return [{**base, "kind": "multivariate_drift", "method": d["method"], "statistic": d["statistic"],
                 "threshold": d["upper"], "drift": d["drift"], "n_reference": d["n_reference"],
                 "n_current": d["n"], "detail": detail}]  # fmt: skip
    return [
        {**base, "kind": "estimated_performance", "method": name, "statistic": m["value"], "threshold": m["threshold"],
         "drift": m["alert"], "n_current": d["n"],
         "detail": {k: m[k] for k in ("lower", "upper", "sampling_error", "reference")} | {"model_kind": d["kind"]}}
        for name, m in d["metrics"].items()
    ]  # fmt: skip


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON values: numpy scalars and arrays become numbers and lists,
    NaN and infinities null, other objects their repr (PostgreSQL's JSON has no NaN)."""
    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    return orjson.loads(orjson.dumps(value, default=repr, option=options))


def _integer(value: Any, name: str, expected: str, where: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{where}: {name} must be {expected}, got {value!r}")
    return int(value)


def _finite_or_none(value: Any, name: str, where: str) -> float | None:
    if type(value) is float:
        return value if math.isfinite(value) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}: {name} must be a number or None, got {value!r}")
    number = float(value)
    return number if math.isfinite(number) else None


def _check_text(value: Any, name: str, width: int, where: str) -> None:
    # Checked here: SQLite would store an over-long value and PostgreSQL refuse the batch.
    if not isinstance(value, str) or len(value) > width or "\x00" in value:
        raise ValueError(f"{where}: {name} must be a string of at most {width} characters, got {value!r:.80}")
    if not value and name in _NON_EMPTY:
        raise ValueError(f"{where}: {name} must not be empty")


def _result_out(row: sa.RowMapping) -> dict[str, Any]:
    return {**row, "drift": bool(row["drift"])}
