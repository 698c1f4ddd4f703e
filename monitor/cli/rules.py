"""The ``monitor rules`` command: the Prometheus alerting rules for the service's metrics.

monitor rules export [--output FILE] [--runbook-base URL]

``export`` prints the rules file (YAML, one group ``monitor``; see
:mod:`alerts.prometheus_rules`) or writes it to FILE. ``--runbook-base`` points the
``runbook_url`` annotations at another copy of the README (a fork, an internal wiki that
keeps the ``#runbook-<alertname>`` anchors). A FILE that cannot be written prints one
``error:`` line and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alerts.prometheus_rules import RUNBOOK_BASE, alerts, render


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
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    text = render(args.runbook_base)
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
