"""The ``monitor reference`` commands: set and list a model's reference data from the shell.

monitor reference set MODEL FILE --config CONFIG [--prediction-column C] [--latency-column C] [--label-column C]
                      [--version V]
monitor reference show MODEL --config CONFIG

``set`` profiles a CSV, Parquet or JSONL file (by its suffix) with the model's schema from
the config, or takes a saved profile (``monitor.profile(df).save(path)``, any name; checked
against the model's config), and stores it as the model's next, active, reference version (source ``cli``),
exactly as ``PUT /v1/models/{model}/reference`` does; with ``--version V``, as model version
V's reference (``PUT /v1/models/{model}/versions/{V}/reference``, README "Versions"). A
running service learns of it when it next loads the model's active references. Mistakes
in the arguments, the config or the file print one ``error:`` line and exit with 2; a
database failure exits with 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from monitor.settings import ConfigError, ModelConfig, Settings, load_settings

if TYPE_CHECKING:
    from monitor.store.database import Store

T = TypeVar("T")
HASH_SHOWN = 16  # characters of the content hash in `show`'s table


class UsageError(Exception):
    """A mistake of the caller's (arguments, config, file): exit code 2."""


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``reference set`` and ``reference show`` on the ``monitor`` parser."""
    reference = commands.add_parser("reference", help="a model's reference data (what drift is measured against)")
    sub = reference.add_subparsers(dest="reference_command", required=True)

    set_ = sub.add_parser("set", help="profile a CSV, Parquet or JSONL file and make it the model's reference")
    set_.add_argument("model", help="a model of the config")
    set_.add_argument(
        "file", help="reference rows (.csv, .parquet/.pq or .jsonl/.ndjson, optionally .gz) or a saved monitor.profile"
    )
    set_.add_argument("--config", required=True, help="YAML config file (models and storage)")
    set_.add_argument(
        "--prediction-column", help="column of the predictions (default: the model's reference config, or prediction)"
    )
    set_.add_argument("--latency-column", help="column of the latency in milliseconds (default: none)")
    set_.add_argument(
        "--label-column", help="column of the labels: keeps the reference's own performance (default: none)"
    )
    set_.add_argument(
        "--version", dest="model_version", help="attach it to this model version only (config `versions:`)"
    )
    set_.set_defaults(func=cmd_set)

    show = sub.add_parser("show", help="list a model's reference versions, newest first")
    show.add_argument("model", help="a model of the config")
    show.add_argument("--config", required=True, help="YAML config file (models and storage)")
    show.set_defaults(func=cmd_show)


def cmd_set(args: argparse.Namespace) -> int:
    from monitor.detection import with_version
    from monitor.reference_estimators import build_with_estimators
    from monitor.reference_files import ReferenceDataError, file_format
    from monitor.saved_profiles import is_saved_profile, reference_from_saved

    try:
        settings, config = _model(args.config, args.model)
        if args.model_version and config.versions is None:
            raise UsageError(f"model {args.model!r} has no per-version windows: configure `versions:` for it first")
        path = Path(args.file)
        try:
            fmt = "profile" if is_saved_profile(_opening(path)) else file_format(path)
        except ReferenceDataError as exc:
            raise UsageError(str(exc)) from None
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            if fmt != "profile":
                profile, summary, estimators = build_with_estimators(
                    data, fmt, config, model=args.model, prediction_column=args.prediction_column,
                    latency_column=args.latency_column, label_column=args.label_column,
                )  # fmt: skip
            else:
                profile, summary = reference_from_saved(
                    data, config, prediction_column=args.prediction_column, latency_column=args.latency_column
                )
                estimators = None
        except ValueError as exc:  # ReferenceDataError, SavedProfileError: unreadable file, missing column, no rows
            raise UsageError(f"{path}: {exc}") from None
    except UsageError as exc:
        return _fail(str(exc), 2)

    def encode(version: str) -> bytes:
        return with_version(profile, version).to_bytes()

    rows = summary["rows"]
    fitted = None if estimators is None else estimators.to_bytes()
    try:
        version = _on_store(
            settings,
            lambda store: store.save_reference(
                args.model,
                encode,
                content_hash=profile.content_hash,
                source="cli",
                summary=summary,
                estimators=None if args.model_version else fitted,
                model_version=args.model_version,
            ),
        )
    except StoreFailure as exc:
        return _fail(str(exc), 1)
    of = f" of model version {args.model_version}" if args.model_version else ""
    print(
        f"model {args.model}: reference version {version}{of} stored ({rows} rows, content hash {profile.content_hash})"
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    try:
        settings, _config = _model(args.config, args.model)
    except UsageError as exc:
        return _fail(str(exc), 2)
    try:
        references = _on_store(settings, lambda store: store.references(args.model))
    except StoreFailure as exc:
        return _fail(str(exc), 1)
    if not references:
        print(f"model {args.model} has no reference yet (set one with `monitor reference set`)")
        return 0
    table = [["VERSION", "ACTIVE", "CREATED (UTC)", "SOURCE", "ROWS", "CONTENT HASH"]]
    table += [_show_row(row) for row in references]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0


def _show_row(row: dict[str, Any]) -> list[str]:
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["created_at"]))
    rows = (row.get("summary") or {}).get("rows")
    return [
        row["version"],
        "yes" if row["active"] else "no",
        created,
        row["source"],
        "?" if rows is None else str(rows),
        row["content_hash"][:HASH_SHOWN],
    ]


def _opening(path: Path) -> bytes:
    """The first bytes of a file (what tells a saved profile); none when it cannot be read."""
    try:
        with path.open("rb") as file:
            return file.read(16)
    except OSError:
        return b""


def _model(config_path: str, model: str) -> tuple[Settings, ModelConfig]:
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise UsageError(f"{exc.source}: invalid configuration: {'; '.join(exc.problems)}") from None
    config = settings.models.get(model)
    if config is None:
        known = ", ".join(sorted(settings.models)) or "none"
        raise UsageError(f"unknown model {model!r}: not in {config_path} (models: {known})")
    return settings, config


class StoreFailure(Exception):
    """The database could not be opened, migrated or written: exit code 1."""


def _on_store(settings: Settings, work: Callable[[Store], T]) -> T:
    """``work`` on the configured Store, closed afterwards; database errors become StoreFailure."""
    from sqlalchemy.exc import DBAPIError

    from monitor.store.database import Store
    from monitor.store.engine import StoreError

    try:
        store = Store(settings.storage.url, migrate=settings.storage.auto_migrate)
    except StoreError as exc:
        raise StoreFailure(str(exc)) from None
    try:
        return work(store)
    except DBAPIError as exc:
        hint = "" if settings.storage.auto_migrate else "; run `monitor db upgrade --config FILE` first"
        raise StoreFailure(f"database {store.url}: {str(exc.orig).strip().splitlines()[0]}{hint}") from None
    except StoreError as exc:
        raise StoreFailure(str(exc)) from None
    finally:
        store.close()


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
