"""``monitor replay FILE --model M``: evaluate a file against the model's reference, offline.

The file's rows go through the same validation, pipeline and detectors as live traffic,
with a throw-away store, so nothing is written to the service's database. The reference
is ``--reference FILE`` when given, else the model's active one in the configured store if
it has one, else the config's ``reference.file``. The last, partial windows are evaluated
too (drift windows marked partial, and the performance window of the last labels).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url
from tqdm import tqdm

from collectors.files import TableColumns, table_chunks
from detectors.estimation.cbpe import EstimatedPerformance
from detectors.estimation.multivariate import MultivariateDrift
from detectors.evaluation import Evaluation
from detectors.performance import PerformanceResult
from detectors.profiles import ReferenceProfile
from detectors.results import Estimate, Result
from detectors.versions import VersionDivergence
from monitor.cli.config import load_or_exit
from monitor.detection import with_version
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.records import Record
from monitor.reference_files import read_table
from monitor.reference_startup import active_summary, load_references
from monitor.report.report import report_html, view_from_results, write_report
from monitor.settings import Settings
from monitor.store.database import Store
from monitor.validation import Validator


@dataclass
class Collected:
    """A sink that keeps every result, in order."""

    evaluations: list[Evaluation] = field(default_factory=list)
    performance: list[PerformanceResult] = field(default_factory=list)
    estimates: list[Estimate] = field(default_factory=list)  # kept, not yet shown by replay

    def publish(self, model: str, reference_version: str, result: Result | Estimate) -> None:
        if getattr(result, "segment", ""):  # a slice's window (numbered apart): the report is the whole population's
            return
        if isinstance(result, EstimatedPerformance | MultivariateDrift | VersionDivergence):
            self.estimates.append(result)
        elif isinstance(result, PerformanceResult):
            self.performance.append(result)
        else:
            self.evaluations.append(result)


def _copy_active_reference(settings: Settings, model: str, into: Store) -> None:
    """The service's active reference for ``model``, if its store is reachable and has one."""
    url = make_url(settings.storage.url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return  # no service database here: do not create one
    try:
        with Store(settings.storage.url, migrate=False) as live:
            stored = live.active_reference(model)
            summary = active_summary(live, model) if stored else {}
    except Exception:  # no database yet, or an older schema: fall back to the config's file
        return
    if stored is not None:
        version, data = stored
        content_hash = ReferenceProfile.from_bytes(data).content_hash
        into.save_reference(
            model, data, content_hash=content_hash, source="cli", summary={**summary, "live_version": version}
        )


def _save_reference_file(settings: Settings, model: str, path: Path, into: Store) -> None:
    """``--reference FILE``, profiled with the model's config, as the replay's reference."""
    from monitor.reference_files import reference_from_file

    profile, summary = reference_from_file(path, settings.models[model])
    into.save_reference(
        model,
        lambda version: with_version(profile, version).to_bytes(),
        content_hash=profile.content_hash,
        source="cli",
        summary={**summary, "file": str(path)},
    )


def replay(
    settings: Settings,
    model: str,
    path: Path,
    columns: TableColumns,
    *,
    labels: Path | None = None,
    label_id_column: str = "id",
    label_column: str = "label",
    reference: Path | None = None,
    progress: bool = True,
    chunk: int = 1_000,
) -> tuple[Collected, int]:
    """Run the file through a private pipeline; returns the results and the rejected row count."""
    if model not in settings.models:
        raise ValueError(f"model {model!r} is not in the config (models: {', '.join(settings.models) or 'none'})")
    frame = read_table(path)
    collected = Collected()
    rejected = 0
    with tempfile.TemporaryDirectory(prefix="monitor-replay-") as tmp:
        with Store(f"sqlite:///{Path(tmp) / 'replay.db'}") as store:
            if reference is not None:
                _save_reference_file(settings, model, reference, store)
            else:
                _copy_active_reference(settings, model, store)
            pipeline = Pipeline(settings, Metrics(CollectorRegistry()), sinks=[collected])
            load_references(pipeline, store, announce=False)  # only the replayed model matters
            if pipeline.models[model].detector is None:
                raise ValueError(
                    f"model {model!r} has no reference: give one with --reference FILE, set reference.file in "
                    "the config, or upload one to the service"
                )
            # A file is history: no receive time to hold its event times to (1970-2100 still holds).
            validator = Validator(settings.limits, pipeline.configs, check_event_time=False)
            with tqdm(total=len(frame), unit="rows", disable=not progress, file=sys.stderr, desc=path.name) as bar:
                for records, rejections in table_chunks(
                    frame, model, settings.models[model], validator, columns, chunk=chunk
                ):
                    pipeline.ingest(records, [], "file")
                    rejected += len(rejections)
                    bar.update(len(records) + len(rejections))
            if labels is not None:
                truth = read_table(labels)
                for column in (label_id_column, label_column):
                    if column not in truth.columns:
                        raise ValueError(
                            f"{labels}: no column {column!r} (columns: {', '.join(map(str, truth.columns))})"
                        )
                parts = [
                    Record(model=model, id=str(i), label=_plain(y), has_label=True)
                    for i, y in zip(truth[label_id_column], truth[label_column], strict=True)
                ]
                for start in range(0, len(parts), chunk):
                    pipeline.ingest(parts[start : start + chunk], [], "file")
            pipeline.drain()
            pipeline.flush_windows()
            pipeline.close()
    return collected, rejected


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def print_table(collected: Collected, out: TextIO, window_size: int | None) -> None:
    """One line per window and feature: the test, its adjusted p-value, the effect, the verdict."""
    header = (
        f"{'window':>6} {'records':>8} {'feature':<28} {'test':<13} {'p (adj)':>9} {'effect':<23} {'value':>8}  verdict"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for evaluation in collected.evaluations:
        partial = window_size is not None and evaluation.n < window_size
        rows = [*evaluation.drift.features, *([evaluation.prediction] if evaluation.prediction else [])]
        for feature in rows:
            if feature.insufficient:
                verdict, test, p, effect, value = "insufficient", "-", "-", "-", "-"
            else:
                verdict = "DRIFT" if feature.drift else "ok"
                test = feature.test.method if feature.test else "-"
                p = f"{feature.adjusted_pvalue:.2e}" if feature.adjusted_pvalue is not None else "-"
                effect = feature.effect.method if feature.effect else "-"
                value = f"{feature.effect.statistic:.4f}" if feature.effect else "-"
            print(
                f"{evaluation.window_seq:>6} {evaluation.n:>8} {feature.feature:<28} {test:<13} {p:>9} {effect:<23} {value:>8}  {verdict}"
                + (" (partial window)" if partial else ""),
                file=out,
            )
        drift = evaluation.drift
        flag = "DATASET DRIFT" if drift.dataset_drift else "no dataset drift"
        breached = ", ".join(f"{c.channel}:{c.check}" for c in evaluation.quality.breached) or "none"
        print(
            f"{'':>6} {'':>8} -> {drift.n_drifted}/{drift.n_evaluated} features drifted ({flag}); quality breaches: {breached}",
            file=out,
        )
    for result in collected.performance:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if v is not None)
        print(
            f"performance window {result.window_seq} ({result.n} labels): {metrics}"
            + (" DEGRADED" if result.degraded else ""),
            file=out,
        )


def print_json(collected: Collected, out: TextIO) -> None:
    document = {
        "windows": [e.to_dict() for e in collected.evaluations],
        "performance": [p.to_dict() for p in collected.performance],
    }
    out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")


def add_commands(commands: argparse._SubParsersAction) -> None:
    rep = commands.add_parser("replay", help="evaluate a file against a model's reference, offline")
    rep.add_argument("file", help="CSV, Parquet or JSONL (optionally .gz) with one row per prediction")
    rep.add_argument("--model", required=True, help="the model of the config whose traffic the file holds")
    rep.add_argument("--config", required=True, help="YAML config file (the model's features, windows, detectors)")
    rep.add_argument(
        "--reference",
        help="reference file (CSV, Parquet or JSONL) to compare with (default: the model's active reference in "
        "the configured store, else its reference.file)",
    )
    rep.add_argument(
        "--window-size",
        type=int,
        metavar="N",
        help="count windows of N records instead of the model's window config (default: the config's)",
    )
    rep.add_argument("--labels", help="a file of delayed labels (id and label columns) for performance windows")
    rep.add_argument(
        "--prediction-column", default="prediction", help="prediction column of FILE (default: %(default)s)"
    )
    rep.add_argument("--latency-column", help="latency column of FILE, in milliseconds (default: none)")
    rep.add_argument("--id-column", default="id", help="request id column of FILE and --labels (default: %(default)s)")
    rep.add_argument("--timestamp-column", default="timestamp", help="event time column of FILE (default: %(default)s)")
    rep.add_argument("--label-column", default="label", help="the label column of --labels (default: %(default)s)")
    rep.add_argument("--json", action="store_true", help="print the results as JSON (default: a table)")
    rep.add_argument("--html", help="also write the results as a self-contained HTML report to this file")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar (default: one on a terminal)")
    rep.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    settings = load_or_exit(args.config)
    if args.window_size is not None:
        if args.window_size < 1:
            print(f"monitor replay: --window-size must be at least 1, got {args.window_size}", file=sys.stderr)
            return 2
        if args.model in settings.models:
            config = settings.models[args.model]
            config.window = config.window.model_copy(update={"kind": "count", "size": args.window_size})
    logging.basicConfig(level=logging.WARNING)
    columns = TableColumns(
        prediction=args.prediction_column,
        latency_ms=args.latency_column,
        id=args.id_column,
        timestamp=args.timestamp_column,
    )
    try:
        collected, rejected = replay(
            settings,
            args.model,
            Path(args.file),
            columns,
            labels=Path(args.labels) if args.labels else None,
            label_id_column=args.id_column,
            label_column=args.label_column,
            reference=Path(args.reference) if args.reference else None,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except (ValueError, OSError) as exc:
        print(f"monitor replay: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print_json(collected, sys.stdout)
    else:
        window = settings.models[args.model].window
        print_table(collected, sys.stdout, window.size if window.kind == "count" else None)
    if args.html:
        view = view_from_results(args.model, collected.evaluations, collected.performance)
        size = write_report(Path(args.html), report_html(view, source=args.file))
        print(f"wrote {args.html} ({size:,} bytes)", file=sys.stderr)
    if rejected:
        print(f"{rejected} row(s) rejected by validation", file=sys.stderr)
    return 0
