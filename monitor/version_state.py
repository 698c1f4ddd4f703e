"""Per-version windows: a model's traffic split by the records' ``version``, each version
with windows of its own against its own reference (config ``versions:``).

A rollout or canary sends traffic to two versions, and each version was trained on its own
data: its windows are compared with the reference attached to it
(``PUT /v1/models/{m}/versions/{v}/reference``), or, without one, with the model's. A
version seen for the first time starts its own windows. These run beside the
whole-population windows (every record, whatever its version); a record without a
version is in the whole population only.

Bounded: at most ``versions.max_active`` versions have windows (one open window each, the
model's window settings); a new version past that retires the least recently seen one,
whose open window is dropped and whose retirement is counted (:attr:`ModelVersions.retired`).
A retired version that comes back starts new windows. Drift, quality and latency run per
version; performance (labels) and the estimates stay whole-population.

Results of a version carry ``model_version`` (store column ``results.model_version``);
queries without a version read the whole population only.

Version windows are in the model's checkpoints (:meth:`ModelVersions.to_bytes`, written by
monitor/model_snapshots.py): the active versions in their least-recently-seen order, each
one's open window and counts, the retired count and the champion's and challenger's rows
still waiting for their whole-population window. After a restart or a hand-over each
version's window resumes where it was, unless the reference it was taken against is no
longer the one the version uses (changed while the service was down): that window is
dropped, its version starts over, and the log says so, as for the model's own window.
The champion's and challenger's rows are kept in monitor/version_pairing.py.

A version's windows are numbered on across its detectors (a reference attached, the model's
changed, a retirement, a restart: :attr:`ModelVersions.numbering`), so (model, version,
window_seq) names one window.
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from detectors.columns import Batch
from detectors.evaluation import Evaluation, evaluate_window
from detectors.model import DetectorSettings, ModelDetector, NumberFloors, WindowNumbers
from detectors.profiles import ReferenceProfile
from detectors.sketches import pack, unpack
from detectors.versions import VersionDivergence
from detectors.windows.state import WindowState
from monitor.detection import with_version
from monitor.evaluator import Evaluator
from monitor.records import Record, RecordColumns
from monitor.routing import plain_id
from monitor.settings import ModelConfig
from monitor.version_pairing import Pairing

log = logging.getLogger(__name__)

Publish = Callable[[Evaluation], None]
PublishDivergence = Callable[[VersionDivergence], None]
# Each pending row's version and id (ids only with a champion and challenger), from take().
VersionRows = tuple[np.ndarray, np.ndarray]
# Of the bytes of ModelVersions.to_bytes.
FORMAT_VERSION = 1


@dataclass
class VersionInfo:
    """What /v1/models/{m}/versions says of one active version."""

    records: int = 0
    windows_evaluated: int = 0
    first_seen: float = float("nan")  # event time (epoch s) of its first record
    last_seen: float = float("nan")


def version_groups(versions: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(version, row indices) for every version present (None: no version), in order of
    first appearance (hashing, as :func:`detectors.segments.tag_columns` users do)."""
    codes, values = pd.factorize(versions, use_na_sentinel=True)
    return [(str(v), np.flatnonzero(codes == i)) for i, v in enumerate(values)]


class ModelVersions:
    """The version side of one model's state: pending versions, per-version detectors."""

    def __init__(self, max_active: int, pairing: Pairing | None = None) -> None:
        self.max_active = max_active
        self.pairing = pairing
        self.reference: ReferenceProfile | None = None
        self.settings: DetectorSettings | None = None
        # Version -> its own reference (attached per version); others use self.reference.
        self.references: dict[str, ReferenceProfile] = {}
        # Least recently seen first: the next to retire.
        self.detectors: OrderedDict[str, ModelDetector] = OrderedDict()
        self.info: dict[str, VersionInfo] = {}
        self.retired = 0
        # Where each version's window numbers continue when it gets a new detector.
        self.numbering = NumberFloors()
        self._versions: list[str | None] = []
        self._ids: list[str | None] = []  # with a pairing only: the rows' ids, for agreement
        # References attached from another thread (an upload, a fetch), taken by the pipeline's
        # thread at its next update: dict set and popitem are atomic, so no lock is shared.
        self._attached: dict[str, ReferenceProfile] = {}
        # Called (on the pipeline's thread; it must not block) with a version that starts
        # windows without a reference of its own: the registry may have one (monitor/mlflow_versions.py).
        self.on_new_version: Callable[[str], None] | None = None

    @classmethod
    def for_config(cls, config: ModelConfig) -> ModelVersions | None:
        v = config.versions
        if v is None:
            return None
        pairing = None
        if v.champion is not None and v.challenger is not None:
            threshold = config.performance.threshold if config.prediction.kind == "binary" else None
            pairing = Pairing(v.champion, v.challenger, config.window.sample_size, threshold, v.agreement_tolerance)
        return cls(v.max_active, pairing)

    def prepare(self, settings: DetectorSettings) -> None:
        """Windows for the versions with a reference of their own, before (or without) one
        of the model's (an MLflow template URI: monitor/mlflow_versions.py)."""
        # Versions run drift, quality and latency; performance and estimators stay whole-population.
        self.settings = replace(settings, performance=None, estimators=None, reference_performance=None)

    @property
    def ready(self) -> bool:
        """Whether rows are counted (settings known; a version still needs a reference)."""
        return self.settings is not None

    def start(self, reference: ReferenceProfile, settings: DetectorSettings) -> None:
        """The model's reference changed: every version without its own starts new windows."""
        self.reference = reference
        self.prepare(settings)
        for version in [v for v in self.detectors if v not in self.references]:
            self._keep_numbers(version, self.detectors.pop(version))

    def attach(self, version: str, profile: ReferenceProfile) -> None:
        """Attach ``profile`` to ``version`` (from any thread): at the pipeline's next update,
        the version's open window (against another reference) is dropped and its next
        records start new windows against ``profile``."""
        self._attached[version] = profile

    def _take_attached(self) -> None:
        while self._attached:
            version, profile = self._attached.popitem()
            self.references[version] = profile
            old = self.detectors.pop(version, None)
            if old is not None:
                self._keep_numbers(version, old)
            self.info.pop(version, None)
            log.info("version %s: reference %s attached, new windows start", version, profile.version)

    def reset(self) -> None:
        """Forget every version's windows and counts and the pairing's waiting rows (the model
        handed over, or a checkpoint restored that has none: written before version windows
        were in checkpoints): records read again must not be counted twice. Their numbering goes on."""
        self.next_numbers()
        self.detectors.clear()
        self.info.clear()
        self.retired = 0
        if self.pairing is not None:
            self.pairing.clear()

    # -- checkpoints ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """A checkpoint (module docstring); the rows still waiting for the detector are not
        in it: :meth:`monitor.model_state.ModelState.feed` first."""
        if self._versions:
            raise ValueError(f"{len(self._versions)} version rows still wait: feed them before a checkpoint")
        versions = []
        for version in self.detectors:
            info = self.info.get(version) or VersionInfo()
            first, last = _finite(info.first_seen), _finite(info.last_seen)
            versions.append([version, info.records, info.windows_evaluated, first, last])
        arrays = {f"d{i}": np.frombuffer(d.to_bytes(), np.uint8) for i, d in enumerate(self.detectors.values())}
        pairing = None
        if self.pairing is not None:
            pairing, rows = self.pairing.state()
            arrays.update({f"pairing.{name}": values for name, values in rows.items()})
        header = {
            "kind": "model_versions",
            "format_version": FORMAT_VERSION,
            "versions": versions,  # least recently seen first, as self.detectors
            "retired": self.retired,
            "pairing": pairing,
            "numbering": self.numbering.to_json(),  # of versions without a detector now
        }
        return pack(header, arrays)

    def restore(self, data: bytes, model: str = "") -> None:
        """Put back the versions of a checkpoint (:meth:`to_bytes`, taken here or by another
        instance), in place of the current ones. The references attached so far (the store's,
        at start-up) are taken first: a version's window comes back only if it was taken against
        the reference the version uses now; otherwise the version starts over (``model``: for the log)."""
        try:
            header, arrays = unpack(data)
            if header.get("kind") != "model_versions" or header.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"not a model versions checkpoint of format {FORMAT_VERSION}")
        except (ValueError, KeyError) as exc:
            log.warning("model %s: version windows of the checkpoint not restored (%s): they start over", model, exc)
            self.reset()
            return
        self._take_attached()
        self.reset()
        if "numbering" in header:  # the checkpoint's: records read again get the same numbers
            self.numbering = NumberFloors.from_json(header["numbering"])
        self.retired = int(header["retired"])
        for i, (version, records, evaluated, first, last) in enumerate(header["versions"]):
            reference = self.reference_of(version)
            if reference is None or self.settings is None:
                log.warning(
                    "model %s version %s: no reference loaded, its checkpointed window is dropped", model, version
                )
                continue
            try:
                detector = ModelDetector.from_bytes(arrays[f"d{i}"].tobytes(), reference, self._seeded(version))
            except (ValueError, KeyError) as exc:
                log.warning("model %s version %s: window of the checkpoint not restored (%s): new windows start",
                            model, version, exc)  # fmt: skip
                continue
            self.detectors[version] = detector
            nan = float("nan")
            self.info[version] = VersionInfo(
                int(records), int(evaluated), nan if first is None else float(first), nan if last is None else float(last)
            )  # fmt: skip
            if version not in self.references:  # its registry fetch may not have finished before the stop
                self._new_version(version)
        while len(self.detectors) > self.max_active:  # versions.max_active lowered meanwhile
            self._retire()
        if self.pairing is not None and header.get("pairing") is not None:
            prefix = "pairing."
            rows = {name[len(prefix) :]: values for name, values in arrays.items() if name.startswith(prefix)}
            self.pairing.restore(header["pairing"], rows)

    def reference_of(self, version: str) -> ReferenceProfile | None:
        own = self._attached.get(version) or self.references.get(version)
        return own if own is not None else self.reference

    # -- versions of the rows waiting for the detector, in the same order -------------------
    def add_records(self, records: Sequence[Record]) -> None:
        self._versions.extend(r.version for r in records)
        if self.pairing is not None:
            self._ids.extend(None if r.id is None else plain_id(r.id) for r in records)

    def add_columns(self, columns: RecordColumns, rows: Sequence[int] | None) -> None:
        versions = columns.versions
        if versions is None:
            self._versions.extend([None] * (len(columns) if rows is None else len(rows)))
        else:
            self._versions.extend(versions if rows is None else [versions[j] for j in rows])
        if self.pairing is not None:
            ids = columns.ids if rows is None else [columns.ids[j] for j in rows]
            self._ids.extend(None if i is None else plain_id(i) for i in ids)

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """The pending rows' versions and ids (empty without a pairing), as object arrays."""
        versions, self._versions = self._versions, []
        ids, self._ids = self._ids, []
        return _objects(versions), _objects(ids)

    # -- windows ----------------------------------------------------------------------------
    def update(self, batch: Batch, versions: VersionRows, evaluator: Evaluator | None, publish: Publish) -> None:
        """Count ``batch``'s rows into their versions' windows (``versions``: from :meth:`take`);
        evaluate and publish those that closed."""
        self._take_attached()
        if self.settings is None:
            return
        column, ids = versions
        for version, rows in version_groups(column):
            pairing = self.pairing
            if (
                pairing is not None
                and version in (pairing.champion, pairing.challenger)
                and batch.prediction is not None
            ):
                pairing.add(version, batch.timestamps[rows], batch.prediction[rows], ids[rows])
            detector = self._detector(version)
            if detector is None:
                continue
            part = batch.select(rows)
            info = self.info[version]
            info.records += len(rows)
            times = part.timestamps
            if len(times):
                info.first_seen = float(times[0]) if info.first_seen != info.first_seen else info.first_seen
                info.last_seen = float(times[-1])
            for window in detector.close(part):
                self._evaluate(version, detector, window, evaluator, publish)

    def window_closed(
        self, window: WindowState, reference: str, evaluator: Evaluator | None, publish: PublishDivergence
    ) -> None:
        """A whole-population window closed: compare the champion and challenger over it."""
        pairing, settings = self.pairing, self.settings
        if pairing is None or settings is None:
            return
        evaluation = settings.evaluation
        comparison = pairing.close(window, reference, evaluation.prediction_drift or evaluation.drift)
        if evaluator is None:
            publish(comparison())
        else:  # the test off the pipeline's thread, published after the window's own evaluation (queued before)
            evaluator.submit(lambda: publish(comparison()))

    def flush(self, evaluator: Evaluator | None, publish: Publish) -> None:
        """Close every version's open window whatever its size (end of a replay)."""
        for version, detector in list(self.detectors.items()):
            window = detector.windower.flush()
            if window is not None and window.n:
                self._evaluate(version, detector, window, evaluator, publish)

    def _detector(self, version: str) -> ModelDetector | None:
        detector = self.detectors.get(version)
        if detector is not None:
            self.detectors.move_to_end(version)
            return detector
        reference, settings = self.reference_of(version), self.settings
        if reference is None or settings is None:
            self._new_version(version)  # rows not counted until its reference comes
            return None
        while len(self.detectors) >= self.max_active:
            self._retire()
        detector = self.detectors[version] = ModelDetector(reference, self._seeded(version))
        detector.continue_numbering(self.numbering.get(version))
        self.info[version] = VersionInfo()
        if version not in self.references:
            self._new_version(version)
        return detector

    def _seeded(self, version: str) -> DetectorSettings:
        settings = self.settings
        assert settings is not None
        return replace(settings, seed=settings.seed ^ zlib.crc32(f"version:{version}".encode()))

    def _keep_numbers(self, version: str, detector: ModelDetector) -> None:
        self.numbering.raise_to(version, detector.next_numbers())

    def next_numbers(self) -> NumberFloors:
        """Where each version's window numbering continues (its detector's next numbers at least)."""
        for version, detector in list(self.detectors.items()):
            self._keep_numbers(version, detector)
        return self.numbering

    def continue_numbering(self, floors: Mapping[str, WindowNumbers]) -> None:
        """Number each version's windows from ``floors`` on at least (the store's, at start-up)."""
        self.numbering.update(floors)
        for version, detector in self.detectors.items():
            detector.continue_numbering(self.numbering.get(version))

    def _retire(self) -> None:
        old, retired = self.detectors.popitem(last=False)
        self._keep_numbers(old, retired)
        self.info.pop(old, None)
        self.retired += 1
        log.info("version %s retired (more than %d versions seen): its open window is dropped", old, self.max_active)

    def _new_version(self, version: str) -> None:
        if self.on_new_version is not None:
            try:
                self.on_new_version(version)
            except Exception:  # a failing hook must not stop the traffic
                log.exception("version %s: the new-version hook failed", version)

    def _evaluate(
        self, version: str, detector: ModelDetector, window: WindowState, evaluator: Evaluator | None, publish: Publish
    ) -> None:
        def done(evaluation: Evaluation) -> None:
            # Histograms are not kept per version: the page draws the whole population.
            publish(replace(evaluation, model_version=version, histograms=()))
            info = self.info.get(version)
            if info is not None:
                info.windows_evaluated += 1

        settings = detector.settings.evaluation
        if evaluator is None:
            done(evaluate_window(window, settings))
        else:
            evaluator.submit_window(window, settings, done)

    # -- reading ----------------------------------------------------------------------------
    def attached_references(self) -> dict[str, str]:
        """Version -> the version of the reference attached to it (seen in traffic or not)."""
        attached = {**self.references, **dict(self._attached)}  # dict(): a copy, see public()
        return {version: str(profile.version) for version, profile in sorted(attached.items())}

    def public(self, model_reference: str | None) -> list[dict[str, Any]]:
        """The active versions, most recently seen first (GET /v1/models/{m}/versions)."""
        out = []
        # A copy first: requests read while the pipeline thread counts (list() of an
        # OrderedDict of str keys runs without releasing the GIL).
        for version, detector in reversed(list(self.detectors.items())):
            info = self.info.get(version) or VersionInfo()
            own = self._attached.get(version) or self.references.get(version)
            out.append(
                {
                    "version": version,
                    "records": info.records,
                    "windows_evaluated": info.windows_evaluated,
                    "open_window_records": detector.open_records,
                    "first_seen": _finite(info.first_seen),
                    "last_seen": _finite(info.last_seen),
                    "reference": str(own.version) if own is not None else model_reference,
                    "own_reference": own is not None,
                }
            )
        return out


def _objects(values: list[str | None]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _finite(x: float) -> float | None:
    return x if x == x else None


def load_version_references(versions: ModelVersions, stored: dict[str, tuple[str, bytes]]) -> None:
    """Attach the store's active version references (``Store.version_references``) at start-up."""
    for version, (number, data) in stored.items():
        versions.attach(version, with_version(ReferenceProfile.from_bytes(data), number))
