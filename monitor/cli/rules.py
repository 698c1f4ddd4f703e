"""The ``monitor rules`` command: the Prometheus alerting rules for the service's metrics.

monitor rules export [--output FILE] [--runbook-base URL] [--window-period 5m --for-windows N]

``export`` prints the rules file (YAML, one group ``monitor``; see
:mod:`alerts.prometheus_rules`) or writes it to FILE. ``--runbook-base`` points the
``runbook_url`` annotations at another copy of the README (a fork, an internal wiki that
keeps the ``#runbook-<alertname>`` anchors). ``--window-period`` (how often a model's
windows close) with ``--for-windows N`` sets the ``for:`` of the alerts on detector
verdicts to N windows, without editing :mod:`alerts.prometheus_rules`. A FILE that cannot
be written, or a bad duration, prints one ``error:`` line and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alerts.prometheus_rules import DRIFT_FOR, RUNBOOK_BASE, alerts, render, windows_for


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``rules export`` on the ``monitor`` parser."""
    rules = commands.add_parser("rules", help="Prometheus alerting rules for the exported metrics")
    sub = rules.add_subparsers(dest="rules_command", required=True)
    export = sub.add_parser("export", help="print the alerting rules as a Prometheus rules file (YAML)")
    export.add_argument("--output", "-o", metavar="FILE", help="write the rules to FILE instead of standard output")
    export.add_argument(
        "--runbook-base",
        default=RUNBOOK_BASE,
        metavar="URL",
        help="document the runbook_url annotations point into, before #runbook-<alert> (default: %(default)s)",
    )
    export.add_argument(
        "--window-period",
        metavar="DURATION",
        help="how often a model's windows close, as a Prometheus duration (5m); with --for-windows",
    )
    export.add_argument(
        "--for-windows",
        type=int,
        metavar="N",
        help="fire the drift, quality, latency and performance alerts after N windows in breach: for: = N x "
        f"--window-period (default: the shipped for:, e.g. {DRIFT_FOR} for drift)",
    )
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    result_for = None
    if (args.window_period is None) != (args.for_windows is None):
        print("error: give --window-period and --for-windows together", file=sys.stderr)
        return 2
    if args.window_period is not None:
        try:
            result_for = windows_for(args.window_period, args.for_windows)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    text = render(args.runbook_base, result_for)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    # The confirmation goes to stderr so that stdout stays empty when writing a file.
    print(f"{path}: {len(alerts())} alerting rules written", file=sys.stderr)
    return 0
