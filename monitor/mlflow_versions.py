"""References of model versions from an MLflow registry: a model whose ``reference.mlflow``
URI is a template (``models:/car_loan/{version}``) and which has per-version windows
(``versions:``) gets, for each version seen in its traffic, that registry version's
artifact as the version's reference (README "Versions", "MLflow").

The pipeline's thread only names the new version (:meth:`VersionFetches.request`: a dict
look-up and, the first time, a thread started): the registry is never waited for while
records are ingested. Meanwhile the version's windows use the model's reference. The fetch
is retried as the model's own is (``retry_seconds`` doubling up to ``max_retry_seconds``)
until it succeeds or the service stops (at most ``4 * versions.max_active`` versions a model
are fetched: later ones are logged and not fetched); each attempt's outcome is
in ``GET /v1/models`` (``reference_source.versions``) and the log. Once fetched, the
reference is stored (source ``mlflow``, ``model_version`` set) and attached to the version:
its windows start over against it, and a restart reads it from the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from monitor.detection import with_version
from monitor.mlflow_references import SOURCE, FetchStatus, MlflowReferences, describe, fetch_reference, model_uri
from monitor.model_config import ModelConfig
from monitor.version_state import ModelVersions

log = logging.getLogger(__name__)

# Versions fetched (or retrying) per model at most, as a multiple of versions.max_active: a
# version the registry lacks is retried for as long as the service runs, and traffic naming
# ever new versions must not start ever more threads.
FETCHES_PER_SLOT = 4


class VersionFetches:
    """The per-version fetches of one service (one thread per version being fetched)."""

    def __init__(self, references: MlflowReferences) -> None:
        self.references = references
        self._lock = threading.Lock()

    def start(self) -> None:
        """Watch the new versions of every model with a template URI and per-version windows."""
        pipeline = self.references.pipeline
        for name, config in pipeline.configs.items():
            source = config.reference.mlflow
            state = pipeline.models.get(name)
            if source is None or not source.per_version or state is None or state.versions is None:
                continue
            self.references.version_status[name] = {}
            state.versions.on_new_version = self._requester(name, config, state.versions)

    def _requester(self, model: str, config: ModelConfig, versions: ModelVersions) -> Callable[[str], None]:
        def request(version: str) -> None:
            self.request(model, config, versions, version)

        return request

    def request(self, model: str, config: ModelConfig, versions: ModelVersions, version: str) -> None:
        """``version`` of ``model`` was seen without a reference of its own: fetch it, once."""
        source = config.reference.mlflow
        assert source is not None  # start() picks these models
        statuses = self.references.version_status[model]
        with self._lock:
            if version in statuses:
                return
            if len(statuses) >= FETCHES_PER_SLOT * versions.max_active:
                log.warning("model %s: version %s seen, but %d versions are fetched already: not fetched",
                            model, version, len(statuses))  # fmt: skip
                return
            status = statuses[version] = FetchStatus(model_uri(source, version), source.artifact_path)
        threading.Thread(
            target=self._fetch_until_done, args=(model, config, versions, version, status),
            name=f"mlflow-{model}-{version}", daemon=True,
        ).start()  # fmt: skip

    def _fetch_until_done(
        self, model: str, config: ModelConfig, versions: ModelVersions, version: str, status: FetchStatus
    ) -> None:
        source = config.reference.mlflow
        assert source is not None
        stopped = self.references.stopped
        wait = source.retry_seconds
        while not stopped.is_set():
            status.update(attempts=status.attempts + 1)
            try:
                self._attempt(model, config, versions, version, status)
                return
            except Exception as exc:
                if stopped.is_set():
                    return
                error = describe(exc)
                status.update(state="failed", last_error=error)
                log.warning(
                    "model %s version %s: could not fetch its reference from MLflow (%s), attempt %d: %s; "
                    "next attempt in %gs", model, version, status.model_uri, status.attempts, error, wait,
                )  # fmt: skip
            if stopped.wait(wait):
                return
            wait = min(wait * 2, source.max_retry_seconds)

    def _attempt(
        self, model: str, config: ModelConfig, versions: ModelVersions, version: str, status: FetchStatus
    ) -> None:
        source = config.reference.mlflow
        assert source is not None
        fetched = fetch_reference(
            model, config, version=version, deadline=time.monotonic() + source.attempt_timeout_seconds
        )
        profile, store = fetched.profile, self.references.store
        with self.references.activating:
            if self.references.stopped.is_set():
                return
            number = store.save_reference(
                model, lambda v: with_version(profile, v).to_bytes(), content_hash=profile.content_hash,
                source=SOURCE, summary=fetched.summary, model_version=version,
            )  # fmt: skip
            versions.attach(version, with_version(profile, number))
        located = fetched.located
        status.update(
            state="ready", last_error=None, registry_version=located.version, run_id=located.run_id, reference=number,
            last_checked=time.time(),
        )  # fmt: skip
        log.info(
            "model %s version %s: reference %s fetched from MLflow (%s, %d rows)",
            model, version, number, status.model_uri, fetched.summary["rows"],
        )  # fmt: skip
