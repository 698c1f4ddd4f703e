"""``monitor.profile``: a reference profile from a table, a file or chunks of rows, for
notebooks and batch jobs; saved, loaded and handed to :func:`monitor.compare.compare`.

Column kinds are inferred from the first rows (see :func:`monitor.frames.infer_kinds`)
unless given; booleans are compared as the categories 'false' / 'true'. A whole
in-memory table is profiled exactly as the service profiles a reference file; a file is
read in chunks and profiled in bounded memory (:mod:`monitor.profile_builder`), as is
anything fed through :meth:`Profile.update`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from detectors.columns import Batch
from detectors.frame_columns import frame_column
from detectors.profiles import Profile as ChannelProfile
from detectors.profiles import ReferenceProfile, channel_profile
from detectors.schema import CATEGORICAL, NUMERIC, Schema
from detectors.sketches import pack, unpack
from detectors.threads import Started, Workers, map_columns
from monitor.frames import (
    BOOLEAN,
    Table,
    TableError,
    as_boolean,
    check_kinds,
    chunks,
    head,
    infer_kinds,
    is_columnar_file,
)
from monitor.profile_builder import ProfileBuilder

_OPTIONS = {"bins": 10, "sample_size": 10_000, "top_k": 50, "max_tracked_categories": 10_000, "seed": 0}


def detector_schema(kinds: Mapping[str, str]) -> Schema:
    return Schema(features={name: NUMERIC if kind == NUMERIC else CATEGORICAL for name, kind in kinds.items()})


Column = tuple[np.ndarray | None, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]  # see frame_column


def read_column(frame: pd.DataFrame, name: str, kind: str, where: str) -> Column:
    """Column ``name`` of ``frame`` as the detectors count it (:func:`detectors.frame_columns.frame_column`,
    a categorical column left to its codes; booleans as 'false' / 'true'); ``where`` names
    the table in messages."""
    try:
        col = as_boolean(frame[name]) if kind == BOOLEAN else frame[name]
        return frame_column(col, NUMERIC if kind == NUMERIC else CATEGORICAL, spelled=False)
    except TableError:
        raise
    except ValueError as exc:
        raise TableError(f"{where}: {exc}") from None


def check_columns(frame: pd.DataFrame, kinds: Mapping[str, str], where: str) -> None:
    """TableError naming the first column of ``kinds`` that ``frame`` lacks."""
    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        shown = ", ".join(map(str, list(frame.columns)[:20]))
        raise TableError(f"column {missing[0]!r} is not in the {where} (its columns: {shown or 'none'})")


def _longest_first(kinds: Mapping[str, str]) -> list[str]:
    # Categorical columns take longest to read (their strings are hashed); started first,
    # they do not leave one thread working alone at the end.
    return sorted(kinds, key=lambda name: kinds[name] == NUMERIC)


class ColumnReads:
    """The columns of ``frame`` in ``kinds`` being read: on the helper threads of ``workers``
    while the caller does other work, or by the caller when it asks for the :meth:`batch`
    (hashing strings and copying numbers release the GIL)."""

    def __init__(self, frame: pd.DataFrame, kinds: Mapping[str, str], where: str, workers: Workers | None) -> None:
        check_columns(frame, kinds, where)
        self.kinds, self.rows = dict(kinds), len(frame)
        self._names = _longest_first(kinds)
        self._reads = Started(lambda name: read_column(frame, name, kinds[name], where), self._names, workers)

    def batch(self) -> Batch:
        """The rows as a detector batch of the columns (in ``kinds`` order)."""
        read = dict(zip(self._names, self._reads.results(), strict=True))
        columns = {name: read[name] for name in self.kinds}
        return Batch(
            timestamps=np.zeros(self.rows),
            inputs={name: values for name, (values, _, _) in columns.items() if values is not None},
            status={name: status for name, (_, status, _) in columns.items() if status is not None},
            codes={name: coded for name, (_, _, coded) in columns.items() if coded is not None},
        )


def to_batch(frame: pd.DataFrame, kinds: Mapping[str, str], where: str) -> Batch:
    """Rows of ``frame`` as a detector batch of the columns in ``kinds`` (booleans as
    'false' / 'true'); ``where`` names the table in messages."""
    return ColumnReads(frame, kinds, where, None).batch()


def _checked_options(options: Mapping[str, int]) -> dict[str, int]:
    """The profile's options, the defaults filled in; a wrong one is refused by name."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"unknown profile option {unknown[0]!r} (options: {', '.join(_OPTIONS)})")
    for name, value in options.items():
        least = 0 if name in ("max_tracked_categories", "seed") else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return {**_OPTIONS, **{name: int(value) for name, value in options.items()}}


def table_kinds(source: Table, schema: Mapping[str, str] | None) -> dict[str, str]:
    """The column kinds of a table: ``schema`` checked, or inferred from its first rows."""
    if schema is not None:
        return check_kinds(schema)
    first = head(source)
    if first.empty:
        raise TableError("the reference table has no rows")
    return check_kinds(infer_kinds(first))


class Profile:
    """A reference profile under construction or finished (see the module docstring).

    ``schema`` maps column -> 'numeric' | 'categorical' | 'boolean' (inferred from the
    first chunk when None); ``options`` are the profile's ``bins``, ``sample_size``,
    ``top_k``, ``max_tracked_categories`` and ``seed``."""

    def __init__(self, schema: Mapping[str, str] | None = None, **options: int) -> None:
        self.options = _checked_options(options)
        self.kinds: dict[str, str] | None = None if schema is None else check_kinds(schema)
        self._builder: ProfileBuilder | None = None
        self._final: ReferenceProfile | None = None
        self.rows = 0

    def update(self, chunk: pd.DataFrame | pa.Table, columns: Mapping[str, str] | None = None) -> Profile:
        """Count a chunk of rows into the profile (bounded memory, whatever the total);
        ``columns``: only these of the profile's columns are in the chunk."""
        if self._final is not None and self._builder is None:
            raise TableError("this profile is final (built from a whole table or loaded): start a new Profile()")
        if isinstance(chunk, pa.Table):
            chunk = chunk.to_pandas(types_mapper=pd.ArrowDtype)
        if self.kinds is None:
            self.kinds = check_kinds(infer_kinds(chunk))
        if self._builder is None:
            self._builder = ProfileBuilder(detector_schema(self.kinds), **self.options)
        if len(chunk):
            part = self.kinds if columns is None else dict(columns)
            batch = to_batch(chunk, part, "reference chunk")
            with np.errstate(over="ignore", invalid="ignore"):
                self._builder.update(batch, None if columns is None else list(part))
            self.rows = self._builder.rows
            self._final = None
        return self

    @property
    def reference(self) -> ReferenceProfile:
        """The detector's profile of what was seen so far."""
        if self._final is None:
            if self._builder is None or not self.rows:
                raise TableError("the profile has no rows: the reference table is empty")
            self._final = self._builder.reference(version="notebook")
            check_values(self._final, "reference")
        return self._final

    @classmethod
    def exact(
        cls,
        frame: pd.DataFrame,
        schema: Mapping[str, str] | None = None,
        *,
        workers: Workers | None = None,
        **options: int,
    ) -> Profile:
        """Of a whole in-memory table, exactly as the service profiles a reference file
        (``workers``: columns read and profiled on several threads, the same profile)."""
        out = cls(schema, **options)
        if not len(frame):
            raise TableError("the reference table has no rows")
        kinds = out.kinds = out.kinds or table_kinds(frame, None)
        check_columns(frame, kinds, "reference table")
        columns_schema = detector_schema(kinds)
        channels = columns_schema.channels()

        def one(name: str) -> ChannelProfile:
            column = read_column(frame, name, kinds[name], "reference table")
            return channel_profile(name, channels[name], column, **out.options)

        with np.errstate(over="ignore", invalid="ignore"):
            names = _longest_first(kinds)
            profiled = dict(zip(names, map_columns(workers, one, names), strict=True))
        reference = ReferenceProfile(
            columns_schema, {name: profiled[name] for name in channels}, version="notebook", params=out.options
        )
        check_values(reference, "reference")
        out._final, out.rows = reference, len(frame)
        return out

    def to_bytes(self) -> bytes:
        header = {"kind": "monitor.profile", "format_version": 1, "kinds": list(map(list, (self.kinds or {}).items()))}
        header["rows"] = self.rows
        return pack(header, {"reference": np.frombuffer(self.reference.to_bytes(), np.uint8)})

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """A saved profile; TableError naming the problem for anything else (other bytes,
        a truncated or edited file: the detector profile inside is checked by its hash)."""
        try:
            header, arrays = unpack(data)
            if not isinstance(header, dict) or header.get("kind") != "monitor.profile":
                raise TableError("not a saved monitor profile")
            if header.get("format_version") != 1:
                raise TableError(f"saved profile format {header.get('format_version')!r} is not 1")
            out = cls({str(name): kind for name, kind in header["kinds"]})
            out._final = ReferenceProfile.from_bytes(arrays["reference"].tobytes())
            out.rows = int(header["rows"])
        except TableError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
            raise TableError(f"not a readable saved monitor profile: {str(exc)[:300] or type(exc).__name__}") from None
        if detector_schema(out.kinds or {}).channels() != out._final.schema.channels() or out.rows < 0:
            raise TableError("not a consistent saved monitor profile: its columns and its channels differ")
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        return cls.from_bytes(Path(path).read_bytes())

    def __repr__(self) -> str:
        kinds = ", ".join(f"{name}: {kind}" for name, kind in (self.kinds or {}).items())
        return f"Profile({self.rows} rows; {kinds or 'no columns yet'})"


def check_values(reference: ReferenceProfile, where: str) -> None:
    """A column with no value at all (only nulls) cannot be compared: say which."""
    for name, channel in reference.channels.items():
        if channel.count and channel.null_count + channel.wrong_type_count == channel.count:
            raise TableError(f"column {name!r} of the {where} has no values (all {channel.count} rows are null)")


def profile(
    source: Table | Profile,
    schema: Mapping[str, str] | None = None,
    *,
    workers: Workers | None = None,
    **options: int,
) -> Profile:
    """A reference profile of a DataFrame, a pyarrow Table or a file (.csv, .parquet,
    .jsonl, optionally .gz). Files are read in chunks (bounded memory). ``workers``
    (what :func:`monitor.compare` passes): an in-memory table's columns are read and
    profiled on several threads, giving the same profile."""
    if isinstance(source, Profile):
        return source
    _checked_options(options)  # before any row is read
    if isinstance(source, pd.DataFrame):
        return Profile.exact(source, schema, workers=workers, **options)
    if isinstance(source, pa.Table):
        return Profile.exact(source.to_pandas(types_mapper=pd.ArrowDtype), schema, workers=workers, **options)
    out = Profile(table_kinds(source, schema), **options)
    kinds = dict(out.kinds or {})
    if is_columnar_file(source):
        # Parquet is stored by column: one column at a time keeps one column of one row
        # group in memory, however wide the file and however large its row groups.
        for name, kind in kinds.items():
            for chunk in chunks(source, columns=[name]):
                out.update(chunk, {name: kind})
    else:
        for chunk in chunks(source, columns=list(kinds)):
            out.update(chunk)
    out.reference  # noqa: B018  # built now, so an empty or all-null file fails here
    return out
