"""The ``monitor`` command.

monitor --version
monitor serve --config FILE [--host H] [--port P] [--workers N]
monitor consume --config FILE [--metrics-port P]
monitor check-config FILE
monitor db upgrade --config FILE
monitor reference set|show MODEL ... --config FILE
monitor rules export [--output FILE]
monitor replay FILE --model M --config FILE [--html FILE]
monitor report --model M --config FILE [--windows N] --output FILE
monitor demo [--speed N] [--port P] [--keep-running] [--workdir DIR]

Each subcommand lives in its own module, which registers it with ``add_commands``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from monitor.cli import config, demo, reference, replay, report, rules, serve


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml), or "unknown" when run from a
    source tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("model-monitor")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description="Monitor production ML models for drift.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_commands(commands)
    config.add_commands(commands)
    serve.add_db_commands(commands)
    reference.add_commands(commands)
    rules.add_commands(commands)
    replay.add_commands(commands)
    report.add_commands(commands)
    demo.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
