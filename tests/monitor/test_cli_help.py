"""Issue 17, item 9: ``monitor --version``, help texts that state defaults, and a package
definition that pip installs without deprecation warnings."""

from __future__ import annotations

import argparse
import tomllib
from importlib.metadata import version

import pytest
from support import ROOT

from monitor.cli import build_parser, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"monitor {version('model-monitor')}\n"
    assert version("model-monitor") == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = sub
                found.update(commands(sub, f"{prefix}{name} "))
    return found


def test_every_option_has_help_and_defaults_are_stated() -> None:
    missing, unstated = [], []
    for name, parser in commands(build_parser()).items():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            where = f"monitor {name} {action.dest}"
            if not action.help:
                missing.append(where)
            elif action.default not in (None, False) and "default" not in action.help:
                unstated.append(where)
    assert (missing, unstated) == ([], [])


def test_the_license_is_an_spdx_string() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"  # a TOML table makes setuptools warn ~50 lines
    assert "setuptools>=77" in project["build-system"]["requires"]
    assert "data/*" in project["tool"]["setuptools"]["package-data"]["monitor"]  # the bundled reference
