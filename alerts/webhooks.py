"""Retraining webhooks: their config, the request bodies they send, and how bodies are signed.

A webhook (``alerts: webhooks: [...]`` in the YAML config) is called when an alert of a
covered rule and model enters a state listed in ``on``. The body is rendered once, when
the transition is stored (:mod:`monitor.store.outbox`), and sent unchanged on every
attempt by :mod:`alerts.dispatcher`, so its ``Idempotency-Key`` is stable; each attempt signs
it with that attempt's timestamp (:func:`signature`).

Templates:

* ``generic``: the alert as one JSON object (see :func:`payload`).
* ``airflow``: ``{"conf": {...the generic payload...}}`` for Airflow's
  ``POST /api/v1/dags/{dag_id}/dagRuns`` (the DAG id is in the URL); ``template_options:
  conf`` adds static entries to ``conf``.
* ``github``: ``{"ref": ..., "inputs": {...}}`` for GitHub's ``workflow_dispatch``
  (``POST /repos/{owner}/{repo}/actions/workflows/{id}/dispatches``). ``template_options:
  ref`` (default ``main``) and ``inputs``: input name -> text in which ``{model}``,
  ``{alert_id}``... (:data:`FIELDS`) are replaced; GitHub only accepts string inputs.

Secrets never enter the config or the database: ``secret_env`` and ``${ENV}`` in header
values name environment variables that are read when a request is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from alerts.selection import ALL, plain_name, selection
from alerts.transition import Transition

Template = Literal["generic", "airflow", "github"]
Event = Literal["firing", "resolved"]
# The fields of the generic payload, usable as ``{name}`` in github inputs.
FIELDS = (
    "alert_id", "rule", "state", "severity", "model", "reference_version", "feature", "value", "window_seq", "at",
)  # fmt: skip
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_FIELD_REF = re.compile(r"\{([A-Za-z_]+)\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Set by the dispatcher on every request; a configured header may not replace them.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "idempotency-key", "x-monitor-signature",
                              "x-monitor-timestamp", "x-monitor-delivery"})  # fmt: skip
_TEMPLATE_OPTIONS = {"generic": set(), "airflow": {"conf"}, "github": {"ref", "inputs"}}


class WebhookConfig(BaseModel):
    """One webhook (``alerts: webhooks: [...]``); see the module docstring and the README."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    rules: list[str] = [ALL]
    models: list[str] = [ALL]
    on: list[Event] = ["firing"]
    secret_env: str | None = None
    headers: dict[str, str] = {}
    template: Template = "generic"
    template_options: dict[str, Any] = {}
    timeout_seconds: float = 10.0
    max_attempts: int = 8
    max_age_seconds: float = 86_400.0
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 600.0
    cooldown_seconds: float = 0.0  # per model: "retrain at most once per ..."

    @field_validator("name", mode="before")
    @classmethod
    def _plain_name(cls, value: Any) -> Any:
        return plain_name(value)

    @field_validator("url", mode="before")
    @classmethod
    def _http_url(cls, value: Any) -> Any:
        if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value) or any(c.isspace() for c in value):
            raise ValueError("url must be an http:// or https:// URL without spaces")  # the URL may hold a token
        return value

    @field_validator("rules", "models", mode="before")
    @classmethod
    def _names(cls, value: Any, info: Any) -> Any:
        return selection(info.field_name, value)

    @field_validator("on", mode="before")
    @classmethod
    def _events(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value or len(set(map(str, value))) != len(value):
            raise ValueError(f"on must be a non-empty list of firing, resolved without repeats, got {value!r}")
        return value

    @field_validator("secret_env", mode="before")
    @classmethod
    def _env_name(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, str) or not _ENV_NAME.match(value)):
            raise ValueError(f"secret_env must name an environment variable, got {value!r}")
        return value

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("headers must be a mapping of header name to value")
        for name, text in value.items():
            if not isinstance(name, str) or not _HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
                raise ValueError(f"headers: {name!r} is not a header name that may be set here")
            if not isinstance(text, str) or "\r" in text or "\n" in text:
                raise ValueError(f"headers: the value of {name} must be one line of text")
            for ref in _ENV_REF.findall(text):
                if not _ENV_NAME.match(ref):
                    raise ValueError(f"headers: the value of {name} references ${{{ref}}}, not an environment variable")
        return value

    @field_validator("timeout_seconds", "max_age_seconds", "backoff_base_seconds", "backoff_max_seconds")
    @classmethod
    def _positive(cls, value: float, info: Any) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{info.field_name} must be a finite number > 0, got {value!r}")
        return value

    @field_validator("cooldown_seconds")
    @classmethod
    def _cooldown(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"cooldown_seconds must be a finite number >= 0, got {value!r}")
        return value

    @field_validator("max_attempts")
    @classmethod
    def _attempts(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"max_attempts must be >= 1, got {value!r}")
        return value

    @model_validator(mode="after")
    def _options_fit_template(self) -> WebhookConfig:
        opts = self.template_options
        unknown = sorted(set(opts) - _TEMPLATE_OPTIONS[self.template])
        if unknown:
            raise ValueError(f"template_options {unknown} do not apply to template {self.template!r}")
        if "conf" in opts and not isinstance(opts["conf"], dict):
            raise ValueError("template_options.conf must be a mapping")
        if "ref" in opts and (not isinstance(opts["ref"], str) or not opts["ref"]):
            raise ValueError("template_options.ref must be a branch or tag name")
        inputs = opts.get("inputs", {})
        if not isinstance(inputs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()
        ):
            raise ValueError("template_options.inputs must map input names to text")
        for key, text in inputs.items():
            bad = sorted(set(_FIELD_REF.findall(text)) - set(FIELDS))
            if bad:
                raise ValueError(f"template_options.inputs.{key}: unknown field(s) {bad}; fields are {list(FIELDS)}")
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_base_seconds")
        return self

    def matches(self, transition: Transition) -> bool:
        """Does this webhook want ``transition``?"""
        return (
            transition.to_state in self.on
            and (self.rules == [ALL] or transition.rule in self.rules)
            and (self.models == [ALL] or transition.model in self.models)
        )


def idempotency_key(webhook: str, transition: Transition) -> str:
    """One key per (alert episode, state entered, webhook): the same on every attempt."""
    return f"{transition.alert_id}:{transition.to_state}:{webhook}"


def payload(transition: Transition) -> dict[str, Any]:
    """The generic body: the alert, what it looked at (``detail``) and when."""
    detail = dict(transition.detail)
    version = detail.pop("reference_version", None)
    # The page showing what moved, when the service knows its public address (server.public_base_url).
    url = detail.pop("url", None)
    value = transition.value
    return {
        **({"url": url} if url else {}),
        "alert_id": transition.alert_id,
        "rule": transition.rule,
        "state": transition.to_state,
        "severity": transition.severity,
        "model": transition.model,
        "reference_version": version,
        "feature": transition.feature,
        "value": value if value is None or math.isfinite(value) else None,
        "window_seq": transition.window_seq,
        "detail": detail,
        "at": transition.at,
    }


def _github_inputs(template: Mapping[str, str], data: Mapping[str, Any]) -> dict[str, str]:
    def field(match: re.Match[str]) -> str:
        value = data[match.group(1)]
        return "" if value is None else str(value)

    return {key: _FIELD_REF.sub(field, text) for key, text in template.items()}


DEFAULT_GITHUB_INPUTS = {"alert_id": "{alert_id}", "model": "{model}", "rule": "{rule}", "state": "{state}"}


def render(webhook: WebhookConfig, transition: Transition) -> dict[str, Any]:
    """The body of ``webhook``'s request for ``transition``, as a value."""
    data = payload(transition)
    if webhook.template == "airflow":
        return {"conf": {**webhook.template_options.get("conf", {}), **data}}
    if webhook.template == "github":
        inputs = webhook.template_options.get("inputs", DEFAULT_GITHUB_INPUTS)
        return {"ref": webhook.template_options.get("ref", "main"), "inputs": _github_inputs(inputs, data)}
    return data


def render_body(webhook: WebhookConfig, transition: Transition) -> bytes:
    """The body as bytes: keys sorted, so the same alert always gives the same bytes."""
    # numpy numbers in a detail serialise as numbers; anything else odd as its repr, never an error
    # (an error would fail the alert's whole transaction).
    options = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    return orjson.dumps(render(webhook, transition), default=repr, option=options)


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``, sent as ``X-Monitor-Signature``
    with ``timestamp`` (epoch seconds of the attempt) as ``X-Monitor-Timestamp``.

    The timestamp is signed so that a captured request cannot be replayed later: the
    receiver rejects a timestamp outside its tolerance (README, "Retraining webhooks"), and
    within it deduplicates on the ``Idempotency-Key``. The body-only form is not sent: it
    would stay replayable forever, whatever the receiver does.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


class WebhookEnvError(RuntimeError):
    """An environment variable a webhook needs is unset (the message names it, never a value)."""


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise WebhookEnvError(f"environment variable {name} ({what}) is not set")
    return value


def secret(webhook: WebhookConfig) -> str | None:
    """The HMAC secret from ``secret_env``; None when the webhook is unsigned."""
    return None if webhook.secret_env is None else _env(webhook.secret_env, f"secret of webhook {webhook.name}")


def expand_headers(webhook: WebhookConfig) -> dict[str, str]:
    """The configured headers with ``${ENV}`` replaced by the variables' values."""
    return {name: _expand(text, f"header {name} of webhook {webhook.name}") for name, text in webhook.headers.items()}


def _expand(text: str, what: str) -> str:
    return _ENV_REF.sub(lambda m: _env(m.group(1), what), text)


def validate_webhooks(webhooks: list[WebhookConfig], rule_names: set[str]) -> None:
    """Names unique; named rules exist."""
    seen: set[str] = set()
    for webhook in webhooks:
        if webhook.name in seen:
            raise ValueError(f"webhook names must be unique, got {webhook.name!r} twice")
        seen.add(webhook.name)
        missing = [r for r in webhook.rules if r != ALL and r not in rule_names]
        if missing:
            raise ValueError(f"webhook {webhook.name!r} names unknown rule(s) {missing}")


__all__ = [
    "FIELDS", "WebhookConfig", "WebhookEnvError", "expand_headers", "idempotency_key", "payload", "render",
    "render_body", "secret", "signature", "validate_webhooks",
]  # fmt: skip
