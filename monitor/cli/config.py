"""``monitor check-config FILE``, and loading the config for the other commands."""

from __future__ import annotations

import argparse
import sys

from monitor.settings import ConfigError, Settings, load_settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("check-config", help="validate a config file and list every problem")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)


def load_or_exit(path: str | None) -> Settings:
    """The settings of ``path``; an invalid config prints every problem and exits with 2."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"{exc.source}: invalid configuration", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    features = sum(len(m.features) for m in settings.models.values())
    print(f"{args.file}: OK ({len(settings.models)} model(s), {features} feature(s), storage {settings.storage.url})")
    return 0


def redact(url: str) -> str:
    """A storage URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
