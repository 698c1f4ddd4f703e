"""Service settings: a YAML file, overridden by ``MONITOR_*`` environment variables.

The file holds the models (their features and prediction kind), auth tokens, the storage
URL and the ingestion limits. Environment variables win over the file, with ``__``
between nested keys: ``MONITOR_STORAGE__URL=postgresql+psycopg://...`` or
``MONITOR_SERVER__PORT=9000``.

Settings are never built at import time: ``load_settings(path)`` builds them and the app
receives them as an argument (tests build their own).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alerts.config import AlertsConfig
from monitor.model_config import ModelConfig, Strict
from monitor.records import RESERVED_MODEL_NAME

TokenScope = Literal["ingest", "admin", "read"]


def _all_scopes() -> list[TokenScope]:
    # A typed def rather than a lambda, whose list mypy would infer as list[str].
    return ["ingest", "admin", "read"]


class TokenConfig(Strict):
    """A bearer token. Give the secret through ``token_env`` (an environment variable name)
    rather than in the file; ``scopes`` says what it may call."""

    name: str
    token: str | None = None
    token_env: str | None = None
    scopes: list[TokenScope] = Field(default_factory=_all_scopes)

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("give exactly one of token or token_env")
        return self

    def secret(self) -> str:
        """The token value; raises if its environment variable is unset or empty."""
        if self.token is not None:
            return self.token
        value = os.environ.get(self.token_env or "", "")
        if not value:
            raise ValueError(f"environment variable {self.token_env} (token {self.name!r}) is not set")
        return value


class AuthConfig(Strict):
    """Bearer-token auth. With no tokens, every endpoint is open (a local sidecar)."""

    tokens: list[TokenConfig] = Field(default_factory=list)
    open_paths: list[str] = Field(default_factory=lambda: ["/healthz", "/readyz", "/metrics"])
    # Open without a token to clients on the loopback interface only (a payload logger in the
    # same pod, which cannot send a token); anyone else needs one for them.
    loopback_paths: list[str] = Field(default_factory=list)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Where closed windows are evaluated (monitor/evaluator.py): "process", a child process,
    # so that evaluation does not take the interpreter from ingestion; or "thread", in
    # this process (no child process, ~100 MB less memory, lower ingestion throughput).
    evaluation: Literal["process", "thread"] = "process"
    # A request, head and body, must arrive whole within this many seconds of its first byte,
    # or it is answered 408 and its connection closed: a client that trickles holds nothing long.
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    # An idle keep-alive connection is closed after this many seconds.
    keep_alive_seconds: float = Field(default=5.0, gt=0)
    # The service's address as people reach it (e.g. "https://monitor.example.com"): links in
    # alert bodies and webhook payloads to the web page start with it; unset, they are paths.
    public_base_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")


class StorageConfig(Strict):
    url: str = "sqlite:///monitor.db"
    auto_migrate: bool = True
    # Dead letters keep the raw item for inspection; past this many rows the oldest go.
    dead_letter_max_rows: int = Field(default=100_000, ge=100)
    # Bytes kept of a dead letter's raw item (and raw bytes), the table's total bytes (the
    # oldest go), and the memory of those waiting to be written: README, Configuration.
    dead_letter_max_item_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    dead_letter_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    dead_letter_buffer_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    # Counters are written to the store at most this often (and at shutdown).
    flush_interval_seconds: float = Field(default=5.0, gt=0)
    # Connection pool of a database server (PostgreSQL; SQLite ignores them): connections kept
    # open, extra ones allowed under load, how long a request waits for one, and the age at
    # which a connection is replaced (0: never). Each connection is pinged before use.
    pool_size: int = Field(default=5, ge=1, le=1000)
    pool_max_overflow: int = Field(default=10, ge=0, le=1000)
    pool_timeout_seconds: float = Field(default=10.0, gt=0)
    pool_recycle_seconds: float = Field(default=1800.0, ge=0)
    # While the database is unreachable, writes that could not be made (dead letters,
    # detector results, alert transitions) wait in memory, up to this many of each kind.
    retry_buffer_size: int = Field(default=10_000, ge=0)
    # The state of every model not owned by a Kafka partition (open windows, join and label
    # buffers, counts, alert states) is written to the store this often and at shutdown
    # (null: never; open windows then start over at every restart). A kill -9 loses at most
    # what was accepted since the last one: README, "What a 200 means".
    checkpoint_seconds: float | None = Field(default=5.0, gt=0)
    # Whose checkpoints these are: instances sharing one database need one id each (e.g. the
    # StatefulSet pod name); one restarted with the same id takes its state back.
    instance_id: str = Field(default="default", min_length=1, max_length=200)
    # Answer an ingestion request only once its records are in a checkpoint (needs
    # checkpoint_seconds): nothing acknowledged is lost to a crash, at the cost of a write per batch of requests.
    ack_after_checkpoint: bool = False
    # Windows' histograms (what the web page and reports draw) are kept this many days.
    histogram_retention_days: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _strict_acks_need_checkpoints(self) -> StorageConfig:
        if self.ack_after_checkpoint and self.checkpoint_seconds is None:
            raise ValueError("ack_after_checkpoint: true needs checkpoint_seconds (got null)")
        return self


class LimitsConfig(Strict):
    """Ingestion limits. Each one protects memory or CPU from a hostile or broken client."""

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Bytes of ingestion request bodies held while they are read, across every connection
    # of a worker: past it, the request that would take more is refused (503 + Retry-After,
    # counted), so that many slow uploads cannot take the sidecar's memory.
    max_inflight_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_items_per_request: int = Field(default=10_000, ge=1)
    max_string_length: int = Field(default=1024, ge=8)
    max_id_length: int = Field(default=256, ge=8)
    max_inputs_per_record: int = Field(default=1024, ge=1)
    max_depth: int = Field(default=8, ge=2)
    max_models: int = Field(default=100, ge=1)
    # Event times accepted, around the receive time (README, Configuration, says why these).
    max_future_seconds: float = Field(default=300.0, ge=0)
    max_age_seconds: float | None = Field(default=None, gt=0)
    # Per-feature metric series (drift scores, p-values, quality ratios) one model may create.
    max_series_per_model: int = Field(default=5_000, ge=10)
    join_buffer_size: int = Field(default=100_000, ge=1)
    join_ttl_seconds: float = Field(default=60.0, gt=0)
    # Estimated bytes (monitor/buffer_bytes.py) of what the join and label buffers hold of
    # client input: entry counts alone let large entries take the sidecar's memory. How
    # the defaults were sized: README, Configuration.
    join_buffer_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    label_buffer_size: int = Field(default=200_000, ge=1)
    label_ttl_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    label_buffer_bytes: int = Field(default=48 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _inflight_holds_a_body(self) -> LimitsConfig:
        if self.max_inflight_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_inflight_body_bytes ({self.max_inflight_body_bytes}) must be at least max_body_bytes "
                f"({self.max_body_bytes}): a body of the largest size could never be read"
            )
        return self


# Security options handed to kafka-python unchanged (its KafkaConsumer/KafkaProducer names).
KAFKA_SECURITY_OPTIONS = frozenset({
    "security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
    "sasl_kerberos_service_name", "sasl_kerberos_domain_name", "ssl_cafile", "ssl_certfile", "ssl_keyfile",
    "ssl_password", "ssl_crlfile", "ssl_ciphers", "ssl_check_hostname",
})  # fmt: skip


class KafkaConfig(Strict):
    """The Kafka collector (collectors/kafka.py). It runs when ``topics`` is not empty."""

    bootstrap_servers: list[str] = Field(default_factory=lambda: ["localhost:9092"], min_length=1)
    topics: list[str] = Field(default_factory=list)
    group_id: str = Field(default="model-monitor", min_length=1, max_length=200)
    client_id: str = Field(default="model-monitor", min_length=1, max_length=200)
    # Undecodable or invalid messages are copied here (original bytes and headers, plus the
    # reason) besides the dead-letter table; none when unset.
    dead_letter_topic: str | None = None
    # Where a group with no checkpoint starts.
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(default=5_000, ge=1, le=100_000)
    # State and offsets are written together at most this often (and on rebalance and stop).
    checkpoint_interval_seconds: float = Field(default=1.0, gt=0)
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # A poll batch plus its checkpoint must finish within this, or the group evicts us.
    max_poll_interval_ms: int = Field(default=60_000, ge=1_000)
    # Broker gone: reconnect attempts back off exponentially up to this.
    reconnect_backoff_max_seconds: float = Field(default=30.0, gt=0)
    security: dict[str, str | int | bool] = Field(default_factory=dict)

    @field_validator("security")
    @classmethod
    def _known_security_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - KAFKA_SECURITY_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(KAFKA_SECURITY_OPTIONS))}"
            )
        return value

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> KafkaConfig:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        return self


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_nested_delimiter="__", extra="forbid", nested_model_default_partial_update=True
    )

    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    # "reject": records of a model missing from `models` are dead letters;
    # "register": such a model is added with no declared features (types inferred later).
    unknown_models: Literal["reject", "register"] = "reject"
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)

    @field_validator("models", mode="before")
    @classmethod
    def _models_not_null(cls, value: Any) -> Any:
        if isinstance(value, dict) and RESERVED_MODEL_NAME in value:
            raise ValueError(f"{RESERVED_MODEL_NAME!r} is reserved: the metric label of unknown models' traffic")
        return {} if value is None else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first so it overrides the file's values, which arrive as init kwargs.
        return (env_settings, init_settings)


class ConfigError(Exception):
    """The config file is unreadable or invalid; ``problems`` lists ``path: reason`` lines."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as ``dotted.path: reason``, with our own wording for the common kinds."""
    path = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    message = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    elif kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        message = f"must be {expected}, got {error.get('input')!r}"
    else:
        message = f"{message[0].lower()}{message[1:]}, got {error.get('input')!r}"
    return f"{path}: {message}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(str(path), [f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"(top level): must be a mapping, got {type(data).__name__}"])
    return data


def settings_from_mapping(data: dict[str, Any], source: str = "<config>") -> Settings:
    """Validate a parsed config (plus environment overrides); raise ConfigError listing every problem."""
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(err) for err in exc.errors()]) from exc
    problems = [f"auth.tokens.{i}: {p}" for i, token in enumerate(settings.auth.tokens) for p in _token_problems(token)]
    if problems:
        raise ConfigError(source, problems)
    return settings


def _token_problems(token: TokenConfig) -> list[str]:
    try:
        token.secret()
    except ValueError as exc:
        return [str(exc)]
    return []


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a YAML file (or defaults when ``path`` is None) plus the environment.

    Relative reference files are resolved against the config file's folder."""
    if path is None:
        return settings_from_mapping({}, "<defaults>")
    settings = settings_from_mapping(_read_yaml(Path(path)), str(path))
    folder = Path(path).resolve().parent
    for model in settings.models.values():
        if model.reference.file and not Path(model.reference.file).is_absolute():
            model.reference.file = str(folder / model.reference.file)
    return settings
