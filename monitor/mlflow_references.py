"""References from an MLflow model registry (``reference.mlflow`` in a model's config).

A registered model version carries its training data's reference file as an artifact
(``artifact_path``: CSV, Parquet or JSONL). :func:`fetch_reference` resolves the model URI
(a version number, an alias, or the template ``models:/NAME/{version}`` filled with a
version number), downloads the artifact and profiles it with the code every reference
file goes through (:func:`monitor.reference_estimators.build_with_estimators`).

:class:`MlflowReferences` runs that for each configured model in a background thread of
its own, so the registry never holds up start-up or ingestion: the model's records are
counted meanwhile (and compared with the reference already active in the store, if any).
A failed attempt is retried after ``retry_seconds``, doubling up to ``max_retry_seconds``,
for as long as the service runs: a registry that is down comes back. The reference is
stored (source ``mlflow``) and handed to the pipeline as an upload is:
``Store.save_reference`` then ``Pipeline.set_reference``, which takes the pipeline's lock
(safe from any thread). When the active reference already is that registry version's
artifact (a restart), nothing is downloaded or stored again.

An alias (``models:/car_loan@champion``) moves when a new version is promoted: the same
thread asks the registry again every ``refresh_seconds`` (0: never) which version it names,
and when that changed, fetches and activates the new version's artifact as above. A failed
check is retried with the same backoff and shows in the state, while the reference in use
stays the one the alias named before.

The ``mlflow`` client (the ``[mlflow]`` extra, ``mlflow-skinny``) is imported only here,
and only when a model uses it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from detectors.estimation.window import Estimators
from detectors.profiles import ReferenceProfile
from monitor.detection import with_version
from monitor.model_config import MLFLOW_MODEL_URI, MlflowReferenceConfig, ModelConfig
from monitor.pipeline import Pipeline
from monitor.reference_estimators import build_with_estimators
from monitor.reference_files import ReferenceDataError, file_format
from monitor.store.database import Store

log = logging.getLogger(__name__)

SOURCE = "mlflow"  # the stored reference's source
MAX_BYTES = 256 * 1024 * 1024  # an artifact larger than this is refused, as an upload would be
INSTALL_HINT = "pip install 'model-monitor[mlflow]'"
# The client's own HTTP retries would hold one attempt for minutes (7 retries, doubling from
# 2 s) while the state still says nothing: ours retry instead, and say so. Defaults only:
# what the environment sets is kept.
_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a progress bar in a service's log is noise
}
_client_lock = threading.Lock()
T = TypeVar("T")


class MlflowReferenceError(RuntimeError):
    """A reference could not be fetched from the registry; the message says why."""


@dataclass(frozen=True)
class RegistryVersion:
    """One registered model version, as the registry describes it."""

    name: str
    version: str
    run_id: str | None


@dataclass
class FetchedReference:
    """A profiled registry artifact, not stored yet."""

    profile: ReferenceProfile
    summary: dict[str, Any]
    estimators: Estimators | None
    located: RegistryVersion


def mlflow_client(tracking_uri: str | None) -> Any:
    """An ``MlflowClient`` for ``tracking_uri`` (default: MLFLOW_TRACKING_URI). Raises
    MlflowReferenceError when the client is not installed or no tracking URI is known."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise MlflowReferenceError("no tracking URI: set reference.mlflow.tracking_uri or MLFLOW_TRACKING_URI")
    with _client_lock:
        for name, value in _CLIENT_DEFAULTS.items():
            os.environ.setdefault(name, value)
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise MlflowReferenceError(f"the MLflow client is not installed ({exc}): {INSTALL_HINT}") from None
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def model_uri(source: MlflowReferenceConfig, version: str | None = None) -> str:
    """``source.model_uri``, with a template's ``{version}`` filled with ``version``."""
    if source.per_version:
        if version is None:
            raise MlflowReferenceError(f"{source.model_uri} is a template: it needs a model version")
        return source.model_uri.replace("{version}", version)
    return source.model_uri


def locate(client: Any, uri: str) -> RegistryVersion:
    """The registered version a ``models:/`` URI names (an alias resolved to its version)."""
    match = MLFLOW_MODEL_URI.match(uri)
    if match is None or match["version"] == "{version}":
        raise MlflowReferenceError(f"not a registered model version: {uri!r}")
    name = match["name"]
    if match["alias"] is not None:
        found = client.get_model_version_by_alias(name, match["alias"])
    else:
        found = client.get_model_version(name, match["version"])
    return RegistryVersion(name=name, version=str(found.version), run_id=found.run_id or None)


def download(client: Any, located: RegistryVersion, artifact_path: str, folder: Path) -> bytes:
    """The bytes of ``artifact_path`` among ``located``'s artifacts, through ``folder``."""
    from mlflow.artifacts import download_artifacts

    # Through the version's own artifact location: the client resolves a models:/ artifact
    # URI in the process's default registry whatever registry it is given (MLflow 3.17).
    base = client.get_model_version_download_uri(located.name, located.version).rstrip("/")
    uri = f"{base}/{artifact_path}"
    path = Path(download_artifacts(artifact_uri=uri, dst_path=str(folder), tracking_uri=client.tracking_uri))
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise MlflowReferenceError(f"{uri} is {size} bytes; the limit for a reference is {MAX_BYTES}")
    return path.read_bytes()


def profile_artifact(
    model: str, config: ModelConfig, source: MlflowReferenceConfig, located: RegistryVersion, data: bytes
) -> FetchedReference:
    """The profile, summary and estimators of a downloaded artifact; the summary's
    ``mlflow`` entry says where it came from. Raises ReferenceDataError for a bad file."""
    fmt = file_format(source.artifact_path)
    profile, summary, estimators = build_with_estimators(
        data, fmt, config, model=model, label_column=config.reference.label_column
    )
    summary["mlflow"] = {
        "model_uri": source.model_uri,
        "registered_model": located.name,
        "version": located.version,
        "run_id": located.run_id,
        "artifact_path": source.artifact_path,
    }
    return FetchedReference(profile, summary, estimators, located)


def fetch_reference(
    model: str, config: ModelConfig, *, version: str | None = None, deadline: float | None = None
) -> FetchedReference:
    """Resolve, download and profile ``model``'s reference from the registry (blocking).
    ``version`` fills a template URI (the reference of one model version); ``deadline``
    (``time.monotonic()``) bounds the waits on the registry."""
    source = config.reference.mlflow
    if source is None:
        raise MlflowReferenceError(f"model {model!r} has no reference.mlflow")
    client = mlflow_client(source.tracking_uri)
    located = bounded(lambda: locate(client, model_uri(source, version)), deadline)
    with tempfile.TemporaryDirectory(prefix="monitor-mlflow-") as folder:
        data = bounded(lambda: download(client, located, source.artifact_path, Path(folder)), deadline)
    return profile_artifact(model, config, source, located, data)


def bounded(call: Callable[[], T], deadline: float | None) -> T:
    """``call()``, given up on at ``deadline`` (monotonic seconds; None: no limit). The
    call goes on in a daemon thread after that (a socket read has its own timeout:
    MLFLOW_HTTP_REQUEST_TIMEOUT) and its outcome is dropped."""
    if deadline is None:
        return call()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="mlflow-call", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        raise MlflowReferenceError(
            "the registry did not answer within the attempt's deadline (attempt_timeout_seconds)"
        )
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def describe(exc: BaseException) -> str:
    """One line about a failed attempt, for the state and the log (at most 500 characters)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, (MlflowReferenceError, ReferenceDataError)):
        text = f"{type(exc).__name__}: {text}"
    return text[:500]


@dataclass
class FetchStatus:
    """What ``GET /v1/models`` shows of a model's MLflow reference (``reference_source``)."""

    model_uri: str
    artifact_path: str
    # fetching: no outcome yet; failed: the last attempt failed (retrying; an alias's earlier
    # version stays active); ready: active; per version: a template URI, fetched for each model
    # version, not for the model.
    state: str = "fetching"
    attempts: int = 0  # calls on the registry so far: fetches, then an alias's checks
    last_error: str | None = None
    registry_version: str | None = None
    run_id: str | None = None
    reference: str | None = None  # the monitor's reference version it became
    last_checked: float | None = None  # epoch s: when the registry last said which version it is
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def public(self) -> dict[str, Any]:
        with self.lock:
            return {
                "mlflow": self.model_uri,
                "artifact_path": self.artifact_path,
                "state": self.state,
                "attempts": self.attempts,
                "last_error": self.last_error,
                "registry_version": self.registry_version,
                "run_id": self.run_id,
                "reference": self.reference,
                "last_checked": self.last_checked,
            }

    def update(self, **changes: Any) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, value)


class MlflowReferences:
    """The background fetches of this process's models with ``reference.mlflow``."""

    def __init__(self, pipeline: Pipeline, store: Store) -> None:
        self.pipeline = pipeline
        self.store = store
        self.status: dict[str, FetchStatus] = {}
        self._stopped = threading.Event()
        # Held while a fetched reference is stored and activated: once stop() has it, no
        # fetch touches the store or the pipeline again (they close right after).
        self._activating = threading.Lock()
        # The same, for the per-version fetches (monitor/mlflow_versions.py), and their
        # statuses: model -> model version -> its fetch.
        self.stopped, self.activating = self._stopped, self._activating
        self.version_status: dict[str, dict[str, FetchStatus]] = {}

    def start(self) -> None:
        """A fetch thread per model with a registry reference (daemons: a registry call in
        flight never holds up the process's exit)."""
        for name, config in self.pipeline.configs.items():
            source = config.reference.mlflow
            if source is None:
                continue
            status = self.status[name] = FetchStatus(source.model_uri, source.artifact_path)
            if source.per_version:
                status.update(state="per version")
                continue
            threading.Thread(
                target=self._fetch_and_refresh, args=(name, config, status), name=f"mlflow-{name}", daemon=True
            ).start()

    def stop(self) -> None:
        """No fetch stores or activates anything once this returns (it waits for one doing so)."""
        self._stopped.set()
        with self._activating:
            pass

    def public(self, model: str) -> dict[str, Any] | None:
        status = self.status.get(model)
        if status is None:
            return None
        versions = self.version_status.get(model)
        if versions is None:
            return status.public()
        return {**status.public(), "versions": {v: s.public() for v, s in sorted(dict(versions).items())}}

    def _fetch_and_refresh(self, model: str, config: ModelConfig, status: FetchStatus) -> None:
        """Fetch until it succeeds; then, for an alias, check it every ``refresh_seconds``.
        A failure is retried after ``retry_seconds``, doubling up to ``max_retry_seconds``."""
        source = config.reference.mlflow
        assert source is not None  # start() picks these models
        refresh = source.refresh_seconds if source.alias is not None else 0.0
        backoff, failures = source.retry_seconds, 0
        while not self._stopped.is_set():
            status.update(attempts=status.attempts + 1)
            try:
                self._attempt(model, config, source, status, failures)
                if not refresh:
                    return
                wait, backoff, failures = refresh, source.retry_seconds, 0
            except Exception as exc:
                if self._stopped.is_set():
                    return  # the store or the pipeline closed under it: nothing to report
                error, wait = describe(exc), backoff
                backoff, failures = min(backoff * 2, source.max_retry_seconds), failures + 1
                status.update(state="failed", last_error=error)
                kept = f"; reference {status.reference} stays active" if status.reference is not None else ""
                log.warning(
                    "model %s: could not fetch its reference from MLflow (%s, %s), attempt %d: %s%s; next attempt in %gs",
                    model, source.model_uri, source.artifact_path, status.attempts, error, kept, wait,
                )  # fmt: skip
            if self._stopped.wait(wait):
                return

    def _attempt(
        self, model: str, config: ModelConfig, source: MlflowReferenceConfig, status: FetchStatus, failures: int
    ) -> None:
        deadline = time.monotonic() + source.attempt_timeout_seconds
        client = mlflow_client(source.tracking_uri)
        located = bounded(lambda: locate(client, source.model_uri), deadline)
        status.update(last_checked=time.time())
        if status.registry_version is not None and located.version != status.registry_version:
            log.info("model %s: %s moved from registry version %s to %s: fetching its reference",
                     model, source.model_uri, status.registry_version, located.version)  # fmt: skip
        elif status.registry_version is not None:  # an alias checked again: unchanged
            if failures:
                log.info("model %s: %s still names registry version %s after %d failed attempt(s)",
                         model, source.model_uri, located.version, failures)  # fmt: skip
            status.update(state="ready", last_error=None)
            return
        active = self._active_from(model, located, source.artifact_path)
        in_use = self.pipeline.models[model].reference_version
        if active is not None and active == in_use:  # a restart: that artifact is the active reference already
            self._ready(model, status, located, active, failures, fetched=False)
            return
        with tempfile.TemporaryDirectory(prefix="monitor-mlflow-") as folder:
            data = bounded(lambda: download(client, located, source.artifact_path, Path(folder)), deadline)
        fetched = profile_artifact(model, config, source, located, data)
        with self._activating:
            if self._stopped.is_set():
                return
            # Another worker process of the service (server.workers) may have stored it meanwhile.
            version = self._active_from(model, located, source.artifact_path)
            if version is None:
                version = activate(self.pipeline, self.store, model, fetched)
            else:
                profile = with_version(fetched.profile, version)
                self.pipeline.set_reference(model, profile, fetched.summary, estimators=fetched.estimators)
        self._ready(model, status, located, version, failures, fetched=True, rows=fetched.summary["rows"])

    def _active_from(self, model: str, located: RegistryVersion, artifact_path: str) -> str | None:
        """The active reference's version when it is ``located``'s ``artifact_path``."""
        for row in self.store.references(model):
            if row["active"]:
                origin = (row.get("summary") or {}).get("mlflow") or {}
                same = (origin.get("registered_model"), origin.get("version"), origin.get("artifact_path"))
                if row["source"] == SOURCE and same == (located.name, located.version, artifact_path):
                    return str(row["version"])
                return None
        return None

    def _ready(
        self, model: str, status: FetchStatus, located: RegistryVersion, version: str, failures: int, *,
        fetched: bool, rows: int = 0,
    ) -> None:  # fmt: skip
        status.update(
            state="ready", last_error=None, registry_version=located.version, run_id=located.run_id, reference=version
        )
        where = f"models:/{located.name}/{located.version}/{status.artifact_path}"
        after = f" after {failures} failed attempt(s)" if failures else ""
        if fetched:
            log.info(
                "model %s: reference version %s fetched from MLflow (%s, %d rows)%s", model, version, where, rows, after
            )
        else:
            log.info("model %s: the active reference version %s is %s already%s", model, version, where, after)


def activate(pipeline: Pipeline, store: Store, model: str, fetched: FetchedReference) -> str:
    """Store ``fetched`` as ``model``'s next reference version and make the pipeline use
    it, as ``PUT /v1/models/{model}/reference`` does; returns the version."""
    profile = fetched.profile
    estimators = fetched.estimators
    version = store.save_reference(
        model,
        lambda v: with_version(profile, v).to_bytes(),
        content_hash=profile.content_hash,
        source=SOURCE,
        summary=fetched.summary,
        estimators=None if estimators is None else estimators.to_bytes(),
    )
    pipeline.set_reference(model, with_version(profile, version), fetched.summary, estimators=estimators)
    return version
