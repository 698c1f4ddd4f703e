"""``monitor report --model M [--windows N] --output report.html --config FILE``: the
self-contained HTML report of a model's last windows, from the configured store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.cli.config import load_or_exit
from monitor.report.report import report_html, write_report
from monitor.report.view import DEFAULT_WINDOWS, MAX_WINDOWS, load_view
from monitor.store.database import Store


def add_commands(commands: argparse._SubParsersAction) -> None:
    rep = commands.add_parser("report", help="write a model's drift report as one self-contained HTML file")
    rep.add_argument("--model", required=True, help="a model of the config")
    rep.add_argument("--config", required=True, help="YAML config file (models and storage)")
    rep.add_argument("--windows", type=int, default=DEFAULT_WINDOWS,
                     help=f"how many of the latest windows (default {DEFAULT_WINDOWS}, at most {MAX_WINDOWS})")  # fmt: skip
    rep.add_argument("--output", required=True, help="the HTML file to write")
    rep.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    settings = load_or_exit(args.config)
    if args.model not in settings.models:
        known = ", ".join(settings.models) or "none"
        print(f"monitor report: model {args.model!r} is not in {args.config} (models: {known})", file=sys.stderr)
        return 2
    try:
        with Store.from_settings(settings.storage) as store:
            view = load_view(store, args.model, windows=args.windows, histograms=True, quality=True)
        size = write_report(Path(args.output), report_html(view, source=store.url))
    except (ValueError, OSError) as exc:
        print(f"monitor report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {len(view.windows)} window(s), {len(view.features)} feature(s), {size:,} bytes")
    return 0
