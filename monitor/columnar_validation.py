"""The fast path of :meth:`monitor.validation.Validator.validate_items`: the complete records
of a configured model validated column by column, with no Record and no per-value Python
loop where the values allow. Rows any column check finds fault with are left to
item-by-item validation, which words the rejection."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from itertools import repeat
from operator import itemgetter
from typing import Any, cast

import numpy as np

from monitor.records import Invalid, RecordColumns, is_number
from monitor.settings import LimitsConfig
from monitor.timestamps import EventTimeRange, plain_floats, timestamps_column

# Feature values the fast path accepts by exact type (str is checked for length apart).
PLAIN_SCALARS = frozenset({int, float, bool, type(None)})
# monitor.validation.BOOLEAN_WORDS (which imports this module).
_WORDS = frozenset({"true", "false"})
# What a boolean feature's column holds as validated: left as they are.
_BOOLEAN_TYPES = frozenset({bool, type(None)})


class ColumnarValidation:
    """Column-wise checks, mixed into :class:`monitor.validation.Validator` (which provides
    the limits, the known models and the item-by-item checks of a prediction and a segment)."""

    limits: LimitsConfig
    known_models: Any
    _field_set: frozenset[str]

    def _prediction(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def _segment(self, segment: Any) -> dict[str, str]:
        raise NotImplementedError

    def event_times(self, received_at: float) -> EventTimeRange:
        raise NotImplementedError

    def boolean_features(self, model: str) -> frozenset[str]:
        raise NotImplementedError

    def _columnar(
        self, items: Sequence[Any], received_at: float, features: Callable[[str], Mapping[str, str] | None]
    ) -> tuple[list[RecordColumns], list[int]]:
        """Complete records validated per column, and the positions left for :meth:`validate`."""
        n = len(items)
        fields = self._field_set
        # The fields any item has (a dict argument is merged in C without hashing its keys):
        # only those are read column by column.
        all_dicts = set(map(type, items)) == {dict}
        present = set().union(*items) if all_dicts else fields
        if all_dicts and present <= fields:
            positions = list(range(n))
            rows = items if isinstance(items, list) else list(items)
        else:
            present = fields
            positions = [p for p, x in enumerate(items) if type(x) is dict and fields.issuperset(x)]
            rows = [items[p] for p in positions]
        models: list[Any] = list(map(dict.get, rows, repeat("model")))  # any JSON value, or None
        groups: list[tuple[Any, list[int], list[dict[str, Any]]]]  # a model is a str only if valid
        if not rows:
            groups = []
        elif models.count(models[0]) == len(models):
            # One model (the usual call): compared by identity or equality, without hashing
            # every row's string (a set would) nor failing on an unhashable value.
            groups = [(models[0], positions, rows)]
        else:
            by_model: dict[Any, list[int]] = {}
            for j, model in enumerate(models):
                by_model.setdefault(model if type(model) is str else None, []).append(j)
            groups = [(m, [positions[j] for j in js], [rows[j] for j in js]) for m, js in by_model.items()]
        columns: list[RecordColumns] = []
        for model, group_positions, group_rows in groups:
            kinds = features(model) if type(model) is str and model in self.known_models else None
            if kinds and self._names_ok(kinds):
                chunk = self._columns(model, kinds, group_positions, group_rows, received_at, present)
                if chunk is not None and len(chunk):
                    columns.append(chunk)
        taken = sum(len(chunk) for chunk in columns)
        if taken == n:
            return columns, []
        done = set()
        for chunk in columns:
            done.update(chunk.positions)
        return columns, [p for p in range(n) if p not in done]

    def _names_ok(self, names: Collection[str]) -> bool:
        limit = self.limits.max_string_length
        return len(names) <= self.limits.max_inputs_per_record and all(len(name) <= limit for name in names)

    def _columns(
        self,
        model: str,
        kinds: Mapping[str, str],
        positions: list[int],
        rows: list[dict[str, Any]],
        received_at: float,
        present: AbstractSet[str],
    ) -> RecordColumns | None:
        """The rows of one model that pass every column check (the others are left out);
        ``present`` holds every field that any row has."""
        get = dict.get
        names = tuple(kinds)
        width = len(names)
        # Inputs first: they must be dicts with exactly the model's features to be transposed.
        inputs: list[Any] = list(map(get, rows, repeat("inputs")))  # any JSON value, or None
        if set(map(type, inputs)) != {dict} or set(map(len, inputs)) != {width}:
            keep = [j for j, d in enumerate(inputs) if type(d) is dict and len(d) == width]
            positions, rows, inputs = _pick(positions, keep), _pick(rows, keep), _pick(inputs, keep)
        if not rows:
            return None
        # One C-level itemgetter per row, then a transpose of the tuples: cheaper than
        # checking that every row has the keys in one order and transposing dict views
        # (tuple iterators are faster than dict ones), and right whatever the key order.
        # It looks up the first row's own key strings: the JSON parser shares one string per
        # key between rows, so each lookup matches by identity instead of comparing the
        # characters of an equal name from the configuration.
        own_keys = {key: key for key in inputs[0]}
        getter = itemgetter(*[own_keys.get(name, name) for name in names])
        try:
            table = list(map(getter, inputs))
        except KeyError:
            keep = [j for j, d in enumerate(inputs) if all(name in d for name in names)]
            positions, rows, inputs = _pick(positions, keep), _pick(rows, keep), _pick(inputs, keep)
            if not rows:
                return None
            table = list(map(getter, inputs))
        cols: list[Sequence[Any]] = [table] if width == 1 else list(zip(*table, strict=True))
        bad: set[int] = set()
        self._check_inputs(names, kinds, self.boolean_features(model), cols, bad)
        ids = list(map(get, rows, repeat("id")))
        _check_texts(ids, self.limits.max_id_length, bad)
        versions = _optional(rows, "version", present)
        if versions is not None:
            _check_texts(versions, self.limits.max_id_length, bad)
        # Times outside the accepted range: numpy comparisons over the column, the rows left
        # to item-by-item validation, which words the rejection.
        stamps = list(map(get, rows, repeat("timestamp")))
        timestamps = timestamps_column(stamps, received_at, bad, self.event_times(received_at))
        predictions = list(map(get, rows, repeat("prediction")))
        self._check_predictions(predictions, bad)
        labels = _optional(rows, "label", present)
        if labels is not None:
            self._check_each(labels, lambda v: self._prediction(v, "label"), bad)
        latencies = _optional(rows, "latency_ms", present)
        if latencies is not None:
            _check_latencies(latencies, bad)
        segments = _optional(rows, "segment", present)
        if segments is not None:
            self._check_each(segments, self._segment, bad)
        if bad:
            keep = [j for j in range(len(rows)) if j not in bad]
            positions, rows = _pick(positions, keep), _pick(rows, keep)
            cols = [col[keep] if isinstance(col, np.ndarray) else _pick(col, keep) for col in cols]
            ids, timestamps, predictions = _pick(ids, keep), _pick(timestamps, keep), _pick(predictions, keep)
            versions = None if versions is None else _pick(versions, keep)
            labels = None if labels is None else _pick(labels, keep)
            latencies = None if latencies is None else _pick(latencies, keep)
            segments = None if segments is None else _pick(segments, keep)
        return RecordColumns(
            model, positions, rows, names, cols, ids, timestamps, predictions, latencies, versions, labels, segments
        )

    def _check_inputs(
        self,
        names: tuple[str, ...],
        kinds: Mapping[str, str],
        booleans: frozenset[str],
        cols: list[Sequence[Any]],
        bad: set[int],
    ) -> None:
        """Each feature's column: rows with a value item-by-item validation must see go in
        ``bad``; a numeric column of numbers becomes its numpy array in ``cols``."""
        for k, (name, col) in enumerate(zip(names, cols, strict=True)):
            if name in booleans:
                # JSON booleans and nulls are valid as they are; any other spelling (1, "0",
                # "TRUE") or a refused value goes item by item, which turns it into the bool
                # (in a copy of the row's inputs, which RecordColumns.record reads) or words the rejection.
                if not set(map(type, col)) <= _BOOLEAN_TYPES:
                    bad.update(j for j, value in enumerate(col) if type(value) not in _BOOLEAN_TYPES)
                continue
            if kinds[name] == "numeric":
                numbers = _number_array(col)
                if numbers is not None:
                    # Valid, and already what the detector's column needs. cast: RecordColumns.inputs
                    # (and Batch.from_columns) take a 1-D array where they say Sequence.
                    cols[k] = cast(Sequence[Any], numbers)
                    continue
            self._check_values(col, bad)

    def _check_values(self, col: Sequence[Any], bad: set[int]) -> None:
        """Feature values: numbers, booleans, null, or strings within the length limit."""
        kinds = set(map(type, col))
        if kinds <= PLAIN_SCALARS:
            return
        limit = self.limits.max_string_length
        if kinds <= PLAIN_SCALARS | {str}:
            strings = col if kinds == {str} else [v for v in col if type(v) is str]
            # Only 4- and 5-character strings can spell a boolean: no lowered copy of the rest.
            if max(map(len, strings)) <= limit and not any(len(v) in (4, 5) and v.lower() in _WORDS for v in strings):
                return
        for j, value in enumerate(col):
            kind = type(value)
            if kind is str:
                if len(value) > limit or value.lower() in _WORDS:
                    bad.add(j)  # item-by-item validation turns a boolean word into the boolean
            elif kind not in PLAIN_SCALARS:
                bad.add(j)  # item-by-item validation says why (or accepts an odd subclass)

    def _check_predictions(self, predictions: list[Any], bad: set[int]) -> None:
        kinds = set(map(type, predictions))
        if kinds == {int}:
            return
        if kinds <= {int, float}:
            try:
                if all(map(math.isfinite, predictions)):
                    return
            except OverflowError:
                pass
        for j, value in enumerate(predictions):
            if value is None:
                bad.add(j)  # a partial record: joined item by item
            elif not (type(value) is int or (type(value) is float and math.isfinite(value))):
                try:
                    self._prediction(value, "prediction")
                except Invalid:
                    bad.add(j)

    @staticmethod
    def _check_each(values: list[Any], check: Callable[[Any], Any], bad: set[int]) -> None:
        for j, value in enumerate(values):
            if value is not None:
                try:
                    check(value)
                except Invalid:
                    bad.add(j)


def _pick(values: Sequence[Any], keep: list[int]) -> list[Any]:
    return [values[j] for j in keep]


def _number_array(values: Sequence[Any]) -> np.ndarray | None:
    """``np.array(values)`` when every value is a number or boolean (so each is a valid
    feature value) and none is NaN (a NaN in a numpy column would read as null); else None."""
    try:
        # A C-level type guard first: numpy would pad every value to the longest string,
        # and a string is not checked against the length limit yet.
        total = sum(values)
    except (TypeError, OverflowError):
        return None
    try:
        arr = np.array(values)
    except (ValueError, OverflowError, TypeError):
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "fiub":
        return None
    # A NaN makes the sum NaN: a finite float sum needs no look at the values.
    if arr.dtype.kind == "f" and not (type(total) is float and math.isfinite(total)) and np.isnan(arr).any():
        return None
    return arr


def _optional(rows: list[dict[str, Any]], name: str, present: AbstractSet[str]) -> list[Any] | None:
    """Every row's field ``name``, or None when no row has it (not null)."""
    if name not in present:  # no pass over the rows for a field no item has
        return None
    values = list(map(dict.get, rows, repeat(name)))
    return None if values.count(None) == len(values) else values


def _check_texts(values: list[Any], limit: int, bad: set[int]) -> None:
    """Ids and versions: strings within ``limit`` pass; None passes; anything else (an
    integer id, which item-by-item validation turns into a string) goes item by item."""
    kinds = set(map(type, values))
    if kinds == {str} and max(map(len, values)) <= limit:
        return
    for j, value in enumerate(values):
        if value is not None and not (type(value) is str and len(value) <= limit):
            bad.add(j)


def _check_latencies(values: list[Any], bad: set[int]) -> None:
    arr = plain_floats(values, set(map(type, values)))
    if arr is not None and bool(np.all(arr >= 0.0)) and bool(np.isfinite(arr).all()):
        return
    for j, value in enumerate(values):
        if value is not None and not (is_number(value) and value >= 0):
            bad.add(j)
