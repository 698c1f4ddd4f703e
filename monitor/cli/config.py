"""``monitor check-config FILE``, and loading the config for the other commands."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from monitor.cli.config_checks import check_file
from monitor.settings import ConfigError, Settings, load_settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("check-config", help="validate a config file and list every problem")
    check.add_argument("file", help="YAML config file")
    check.set_defaults(func=cmd_check_config)


def load_or_exit(path: str | None, *, references: bool = False) -> Settings:
    """The settings of ``path``; an invalid config prints every problem (no traceback) and
    exits with 2. ``references``: also open and profile each model's reference file, as
    ``check-config`` does (the commands that start a service)."""
    if references and path is not None:
        settings, problems = check_file(path)
        if problems or settings is None:
            _exit_invalid(path, problems)
    try:
        return load_settings(path)
    except ConfigError as exc:
        _exit_invalid(exc.source, exc.problems)


def _exit_invalid(source: str, problems: list[str]) -> NoReturn:
    print(f"{source}: invalid configuration ({len(problems)} problem(s))", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    raise SystemExit(2)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings, problems = check_file(args.file)
    if problems or settings is None:
        for problem in problems:
            print(problem)
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    settings = load_settings(args.file)  # with reference paths resolved
    features = sum(len(m.features) for m in settings.models.values())
    print(f"{args.file}: OK ({len(settings.models)} model(s), {features} feature(s), storage {settings.storage.url})")
    return 0


def redact(url: str) -> str:
    """A storage URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
