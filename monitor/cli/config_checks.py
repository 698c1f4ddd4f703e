"""Every problem of a config file in one pass: what ``monitor check-config`` reports and
what ``monitor serve`` / ``consume`` refuse to start with.

Three layers, all run whatever the others find, so fixing one problem never reveals the
next: the schema (pydantic, :func:`monitor.settings.settings_from_mapping`); the
cross-references, read from the raw mapping so that a broken key elsewhere in the same
rule or webhook hides nothing (rules and webhooks -> models, webhooks -> rules, rules ->
features); and each model's reference file, opened and profiled as start-up would (or,
for a reference from MLflow, what can be checked without the registry).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from alerts.selection import ALL
from monitor.model_config import ModelConfig
from monitor.settings import ConfigError, Settings, _read_yaml, settings_from_mapping

# pydantic's wording of the webhook -> rule check, which only runs when every other key of
# the alerts section is valid; check_mapping reports it itself, always.
_LAYERED = "names unknown rule(s)"
_WHAT = {"numeric": "numbers", "categorical": "categories", "boolean": "booleans"}


def check_file(path: str | Path) -> tuple[Settings | None, list[str]]:
    """The settings of ``path`` (None when the schema refuses it) and every problem found,
    each as ``dotted.path: reason``."""
    try:
        data = _read_yaml(Path(path))
    except ConfigError as exc:
        return None, exc.problems
    settings: Settings | None = None
    try:
        settings = settings_from_mapping(data, str(path))
        problems: list[str] = []
    except ConfigError as exc:
        problems = [p for p in exc.problems if _LAYERED not in p]
    problems += cross_references(data)
    problems += reference_problems(data, Path(path).resolve().parent)
    problems += mlflow_problems(data)
    return (settings if not problems else None), list(dict.fromkeys(problems))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names(value: Any) -> list[str]:
    """A selection as written (a name, a list of names or ``"*"``), without ``*``."""
    values = [value] if isinstance(value, str) else _items(value)
    return [v for v in values if isinstance(v, str) and v != ALL]


def cross_references(data: dict[str, Any]) -> list[str]:
    """Rules and webhooks naming models, rules or features that the config does not have."""
    models = _mapping(data.get("models"))
    register = data.get("unknown_models") == "register"  # then unknown models arrive by traffic
    alerts = _mapping(data.get("alerts"))
    problems: list[str] = []
    rule_names: set[str] = set()
    for i, rule in enumerate(_items(alerts.get("rules"))):
        rule = _mapping(rule)
        if isinstance(rule.get("name"), str):
            rule_names.add(rule["name"])
        covered = _names(rule.get("models", ALL)) or list(models)
        if not register:
            problems += [
                f"alerts.rules.{i}.models: unknown model {m!r} (models: {', '.join(models) or 'none'})"
                for m in _names(rule.get("models"))
                if m not in models
            ]
        declared = {f for m in covered for f in _mapping(_mapping(models.get(m)).get("features"))}
        if declared and not register:
            problems += [
                f"alerts.rules.{i}.features: no covered model has feature {f!r}"
                for f in _names(rule.get("features"))
                if f not in declared
            ]
    for j, webhook in enumerate(_items(alerts.get("webhooks"))):
        webhook = _mapping(webhook)
        problems += [
            f"alerts.webhooks.{j}.rules: unknown rule {r!r} (rules: {', '.join(sorted(rule_names)) or 'none'})"
            for r in _names(webhook.get("rules"))
            if r not in rule_names
        ]
        if not register:
            problems += [
                f"alerts.webhooks.{j}.models: unknown model {m!r}"
                for m in _names(webhook.get("models"))
                if m not in models
            ]
    return problems


def reference_problems(data: dict[str, Any], folder: Path) -> list[str]:
    """Each model's ``reference.file``: it exists, reads, has every feature (and the
    prediction, latency and label columns configured) and profiles with the declared types."""
    problems: list[str] = []
    for name, raw in _mapping(data.get("models")).items():
        reference = _mapping(_mapping(raw).get("reference"))
        if not isinstance(reference.get("file"), str):
            continue
        try:
            config = ModelConfig.model_validate(raw)
        except ValidationError:
            continue  # the schema layer already reports this model's keys
        path = Path(reference["file"])
        path = path if path.is_absolute() else folder / path
        problems += [f"models.{name}.reference.file: {p}" for p in file_problems(path, config)]
    return problems


def mlflow_problems(data: dict[str, Any]) -> list[str]:
    """Each model's ``reference.mlflow``: the client is installed, a tracking URI is known
    and the artifact's format is one the service reads. The registry is not asked: it may
    be down at start-up, which the service rides out (README "MLflow")."""
    from monitor.mlflow_references import INSTALL_HINT
    from monitor.reference_files import ReferenceDataError, file_format

    problems: list[str] = []
    for name, raw in _mapping(data.get("models")).items():
        source = _mapping(_mapping(_mapping(raw).get("reference")).get("mlflow"))
        if not source:
            continue
        where = f"models.{name}.reference.mlflow"
        if importlib.util.find_spec("mlflow") is None:
            problems.append(f"{where}: the MLflow client is not installed: {INSTALL_HINT}")
        if not source.get("tracking_uri") and not os.environ.get("MLFLOW_TRACKING_URI"):
            problems.append(
                f"{where}.tracking_uri: not set, and neither is the MLFLOW_TRACKING_URI environment variable"
            )
        artifact = source.get("artifact_path")
        if isinstance(artifact, str):
            try:
                file_format(artifact)
            except ReferenceDataError as exc:
                problems.append(f"{where}.artifact_path: {exc}")
    return problems


def file_problems(path: Path, config: ModelConfig) -> list[str]:
    """What is wrong with ``path`` as ``config``'s reference (none: it profiles cleanly)."""
    from monitor.reference_files import ReferenceDataError, read_table, reference_from_file

    if not path.is_file():
        return [f"{path}: no such file" if not path.exists() else f"{path}: not a file"]
    try:
        _profile, summary = reference_from_file(path, config)
    except (ReferenceDataError, OSError) as exc:
        message = str(exc)  # some messages name the file already
        return [message if message.startswith(f"{path}:") else f"{path}: {message}"]
    problems = []
    label = config.reference.label_column
    if label and label not in read_table(path).columns:
        problems.append(f"{path}: missing label column {label!r} (reference.label_column)")
    for channel in summary["channels"]:
        if channel["wrong_type_rate"] > 0 and channel["name"] in config.features:
            declared = config.features[channel["name"]].type
            problems.append(
                f"{path}: column {channel['name']!r} is declared {declared} but "
                f"{channel['wrong_type_rate']:.1%} of its values are not {_WHAT[declared]}"
            )
    return problems
