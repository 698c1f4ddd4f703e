"""Every Prometheus family the service exports, in one place.

Names follow Prometheus conventions: a ``monitor_`` prefix, the unit in the name and
``_total`` on counters. Labels are bounded: model (configured names only; items whose
model is unknown count under ``_unknown``), source, reason, route, status, missing,
webhook (configured names only), outcome; segment and version (monitor/slice_metrics.py).
Never ids or values.

Each ``Metrics`` instance registers its families in the registry it is given, so a test
builds a fresh ``CollectorRegistry()`` and reads values with ``get_sample_value``.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from monitor.cardinality import CardinalityGuard
from monitor.slice_metrics import SliceMetrics

UNKNOWN_MODEL = "_unknown"
# The writes that wait in a retry buffer while the store is unreachable (monitor.store.retry_buffer).
STORE_WRITE_KINDS = ("dead_letters", "results", "alerts", "histograms")

# Request latency buckets in seconds: ingestion calls take ~0.2 ms (one record) to tens
# of ms (a 10,000-record batch).
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics(SliceMetrics):
    """The service's metric families, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None, max_series_per_model: int = 5_000):
        # The *_created series (one per labelled counter) double the exposition for nothing
        # dashboards use; prometheus-client only has a process-wide switch for them.
        disable_created_metrics()
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._ingestion(r)
        self._joins(r)
        self._detector_results(r)
        self._quality_latency_performance(r)
        self._estimates(r)
        self._slices(r)  # segments and model versions (monitor/slice_metrics.py)
        self._series_cap(r, max_series_per_model)
        self._alerts(r)
        self._kafka(r)
        self._http(r)
        self._checkpoints(r)

    def _ingestion(self, r: CollectorRegistry) -> None:
        """Ingestion: items in, by how they ended; dead letters."""
        self.records_received = Counter(
            "monitor_records_received_total",
            "Items received by a collector, valid or not.",
            ["model", "source"],
            registry=r,
        )
        self.records_accepted = Counter(
            "monitor_records_accepted_total",
            "Items that passed validation and entered the pipeline.",
            ["model", "source"],
            registry=r,
        )
        self.records_rejected = Counter(
            "monitor_records_rejected_total",
            "Items refused by validation (kept as dead letters), by reason.",
            ["model", "source", "reason"],
            registry=r,
        )
        self.dead_letters_dropped = Counter(
            "monitor_dead_letters_dropped_total",
            "Dead letters deleted to keep the dead-letter table within its row limit (row_limit) or byte limit "
            "(byte_limit), or lost to a store error (store_error).",
            ["cause"],
            registry=r,
        )
        for cause in ("row_limit", "byte_limit", "store_error"):
            # Present from the start at 0, so rate()/increase() see the first drop.
            self.dead_letters_dropped.labels(cause)

    def _joins(self, r: CollectorRegistry) -> None:
        """Joining partial records, and the label buffer."""
        self.records_duplicate = Counter(
            "monitor_records_duplicate_total",
            "Accepted items that repeated a part already joined for the same (model, id); dropped.",
            ["model"],
            registry=r,
        )
        self.records_joined = Counter(
            "monitor_records_joined_total",
            "Records complete (inputs and prediction) handed to the detectors.",
            ["model"],
            registry=r,
        )
        self.join_incomplete = Counter(
            "monitor_join_incomplete_total",
            "Partial records that left the join buffer without their counterpart (time-to-live or capacity), by the part missing.",
            ["model", "missing"],
            registry=r,
        )
        # cause: entries (limits.join_buffer_size), bytes (limits.join_buffer_bytes), oversize
        # (one record over the whole byte budget: not buffered): they call for different fixes.
        self.join_evicted = Counter(
            "monitor_join_evicted_total",
            "Partial records pushed out of the full join buffer before their time-to-live, or not buffered, by cause.",
            ["model", "cause"],
            registry=r,
        )
        self.join_buffer_records = Gauge(
            "monitor_join_buffer_records", "Partial records waiting in the join buffer.", registry=r
        )
        self.join_buffer_bytes = Gauge(
            "monitor_join_buffer_bytes", "Estimated bytes of the partial records in the join buffer.", registry=r
        )
        self.labels_joined = Counter(
            "monitor_labels_joined_total", "Labels matched with their prediction.", ["model"], registry=r
        )
        self.labels_unmatched = Counter(
            "monitor_labels_unmatched_total",
            "Labels whose prediction was never seen or had already left the label buffer.",
            ["model"],
            registry=r,
        )
        # cause: entries, bytes, oversize (as join_evicted) or ttl (limits.label_ttl_seconds).
        self.label_buffer_evicted = Counter(
            "monitor_label_buffer_evicted_total",
            "Predictions dropped from the label buffer (or not taken) before their label came, by cause.",
            ["model", "cause"],
            registry=r,
        )
        self.label_buffer_records = Gauge(
            "monitor_label_buffer_records", "Predictions waiting for their label.", registry=r
        )
        self.label_buffer_bytes = Gauge(
            "monitor_label_buffer_bytes", "Estimated bytes of the predictions in the label buffer.", registry=r
        )

    def _detector_results(self, r: CollectorRegistry) -> None:
        """Detector results: the latest evaluated window of each model, and its drift."""
        self.windows_evaluated = Counter(
            "monitor_windows_evaluated_total",
            "Windows closed and evaluated, by kind (drift, performance, estimated_performance, pca_reconstruction, domain_classifier).",
            ["model", "kind"],
            registry=r,
        )
        self.window_records = Gauge(
            "monitor_window_records", "Records in the latest evaluated window.", ["model"], registry=r
        )
        self.window_end = Gauge(
            "monitor_window_end_timestamp_seconds",
            "Event time at the end of the latest evaluated window.",
            ["model"],
            registry=r,
        )
        self.reference_version = Gauge(
            "monitor_reference_version",
            "Version number of the reference the model is compared with.",
            ["model"],
            registry=r,
        )
        self.feature_drift_score = Gauge(
            "monitor_feature_drift_score",
            "Effect size of the latest window against the reference (unit of the method: reference SDs for wasserstein_normed, a distance for jensenshannon).",
            ["model", "feature", "method"],
            registry=r,
        )
        self.feature_drift_pvalue = Gauge(
            "monitor_feature_drift_pvalue",
            "p-value of the latest window's two-sample test, adjusted for multiple testing across the model's features.",
            ["model", "feature", "method"],
            registry=r,
        )
        self.feature_drift = Gauge(
            "monitor_feature_drift",
            "1 when the feature drifted in the latest window (significant and large enough).",
            ["model", "feature"],
            registry=r,
        )
        self.drifted_features = Gauge(
            "monitor_drifted_features", "Features that drifted in the latest window.", ["model"], registry=r
        )
        self.dataset_drift_share = Gauge(
            "monitor_dataset_drift_share",
            "Share of the evaluated features that drifted in the latest window.",
            ["model"],
            registry=r,
        )
        self.dataset_drift = Gauge(
            "monitor_dataset_drift",
            "1 when the drifted share reached the dataset-drift threshold.",
            ["model"],
            registry=r,
        )
        self.prediction_drift_score = Gauge(
            "monitor_prediction_drift_score",
            "Effect size of the prediction distribution's change.",
            ["model", "method"],
            registry=r,
        )
        self.prediction_drift_pvalue = Gauge(
            "monitor_prediction_drift_pvalue",
            "p-value of the prediction distribution's test.",
            ["model", "method"],
            registry=r,
        )
        self.prediction_drift = Gauge(
            "monitor_prediction_drift",
            "1 when the prediction distribution drifted in the latest window.",
            ["model"],
            registry=r,
        )

    def _quality_latency_performance(self, r: CollectorRegistry) -> None:
        """Data quality, latency and performance of the latest evaluated window."""
        self.quality_ratio = Gauge(
            "monitor_quality_ratio",
            "Share of the latest window's records failing a data-quality check (out_of_range, null_increase, non_finite, wrong_type, unseen).",
            ["model", "feature", "check"],
            registry=r,
        )
        self.quality_breach = Gauge(
            "monitor_quality_breach",
            "1 when a data-quality rate is over its threshold.",
            ["model", "feature", "check"],
            registry=r,
        )
        self.latency = Gauge(
            "monitor_model_latency_seconds",
            "Model latency quantiles in the latest window, q = 0.5, 0.95, 0.99 (from a sketch, 1% relative error).",
            # Not "quantile": Prometheus keeps that label for summaries (promtool check metrics).
            ["model", "q"],
            registry=r,
        )
        self.latency_slo_breach = Gauge(
            "monitor_latency_slo_breach",
            "1 when the configured latency quantile is over the SLO.",
            ["model"],
            registry=r,
        )
        self.performance = Gauge(
            "monitor_performance",
            "Model performance in the latest labelled window (accuracy, roc_auc, f1, mae, ...).",
            ["model", "metric"],
            registry=r,
        )
        self.performance_degraded = Gauge(
            "monitor_performance_degraded",
            "1 when a performance metric dropped more than allowed below the reference's.",
            ["model"],
            registry=r,
        )

    def _estimates(self, r: CollectorRegistry) -> None:
        """Before labels come: estimated performance (CBPE) and multivariate drift of the
        latest window (detectors.estimation)."""
        self.estimated_performance = Gauge(
            "monitor_estimated_performance",
            "Performance estimated without labels (CBPE) in the latest window, by metric and bound (estimate, lower, upper, threshold).",
            ["model", "metric", "bound"],
            registry=r,
        )
        self.estimated_performance_drop = Gauge(
            "monitor_estimated_performance_drop",
            "1 when an estimated metric fell below the reference minus its sampling band.",
            ["model"],
            registry=r,
        )
        self.multivariate_drift_score = Gauge(
            "monitor_multivariate_drift_score",
            "Multivariate drift statistic of the latest window (pca_reconstruction: mean error; domain_classifier: ROC AUC).",
            ["model", "method"],
            registry=r,
        )
        self.multivariate_drift = Gauge(
            "monitor_multivariate_drift",
            "1 when the multivariate method flags drift in the latest window.",
            ["model", "method"],
            registry=r,
        )
        # Champion vs challenger (detectors.versions), per whole-population window.
        self.version_divergence = Gauge(
            "monitor_version_divergence",
            "1 when the challenger's predictions diverged from the champion's in the latest window.",
            ["model"],
            registry=r,
        )
        self.version_agreement_ratio = Gauge(
            "monitor_version_agreement_ratio",
            "Share of the ids both champion and challenger scored on which they agreed, latest window (NaN: none).",
            ["model"],
            registry=r,
        )

    def _series_cap(self, r: CollectorRegistry, max_series_per_model: int) -> None:
        """The cap on each model's result series (see monitor/cardinality.py)."""
        self.series_dropped = Counter(
            "monitor_metric_series_dropped_total",
            "Per-model result series not created because the model reached its series cap (limits.max_series_per_model).",
            ["model"],
            registry=r,
        )
        # Caps the per-feature result families (see monitor/cardinality.py).
        self.guard = CardinalityGuard(max_series_per_model, self.series_dropped)

    def _alerts(self, r: CollectorRegistry) -> None:
        """Alerts and retraining webhooks (alerts.dispatcher)."""
        self.alerts_firing = Gauge(
            "monitor_alerts_firing",
            "Alerts currently firing, by model and severity.",
            ["model", "severity"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "monitor_webhook_deliveries_total",
            "Webhook delivery outcomes: delivered, failed_attempt (will retry), dead (gave up), suppressed (cooldown).",
            ["webhook", "outcome"],
            registry=r,
        )
        self.webhook_outbox_pending = Gauge(
            "monitor_webhook_outbox_pending", "Webhook deliveries waiting to be sent or retried.", registry=r
        )

    def _kafka(self, r: CollectorRegistry) -> None:
        # Kafka collector (collectors/kafka.py). Topic and partition label values come
        # from the configured topics, so they stay bounded.
        self.kafka_messages = Counter(
            "monitor_kafka_messages_total",
            'Kafka messages consumed and applied (records/s: rate of monitor_records_accepted_total{source="kafka"}).',
            ["topic"],
            registry=r,
        )
        self.kafka_lag = Gauge(
            "monitor_kafka_consumer_lag",
            "Messages in the partition not yet consumed (high watermark minus position), per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.kafka_connected = Gauge(
            "monitor_kafka_connected", "1 while the Kafka broker answers the consumer, else 0.", registry=r
        )
        self.kafka_checkpoints = Counter(
            "monitor_kafka_checkpoints_total",
            "Checkpoints of window state with consumed offsets, by outcome (written, failed).",
            ["outcome"],
            registry=r,
        )
        self.kafka_rebalances = Counter(
            "monitor_kafka_rebalances_total", "Partition assignments received from the consumer group.", registry=r
        )
        self.kafka_dead_letters_published = Counter(
            "monitor_kafka_dead_letters_published_total",
            "Bad messages copied to the dead-letter topic, by outcome (published, failed).",
            ["outcome"],
            registry=r,
        )

    def _checkpoints(self, r: CollectorRegistry) -> None:
        """Checkpoints of the models no Kafka partition owns (monitor/checkpointer.py)."""
        self.state_checkpoints = Counter(
            "monitor_state_checkpoints_total",
            "Checkpoints of the state of the models fed over HTTP (not owned by a Kafka partition), by outcome "
            "(written, failed).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("written", "failed"):
            self.state_checkpoints.labels(outcome)
        self.state_checkpoint_timestamp = Gauge(
            "monitor_state_checkpoint_timestamp_seconds",
            "When the state in the last checkpoint written was taken (epoch s): what was accepted before it "
            "survives a crash.",
            registry=r,
        )
        self.state_checkpoint_bytes = Gauge(
            "monitor_state_checkpoint_bytes", "Bytes of model state written by the last checkpoint.", registry=r
        )

    def _http(self, r: CollectorRegistry) -> None:
        """HTTP requests."""
        self.request_duration = Histogram(
            "monitor_http_request_duration_seconds",
            "HTTP request handling time, by route template and status code.",
            ["route", "status"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.requests_refused = Counter(
            "monitor_http_requests_refused_total",
            "Requests refused before they were read whole: request_timeout (not received within "
            "server.request_timeout_seconds), body_budget (limits.max_inflight_body_bytes reached).",
            ["cause"],
            registry=r,
        )
        for cause in ("request_timeout", "body_budget"):
            self.requests_refused.labels(cause)
        self.inflight_body_bytes = Gauge(
            "monitor_http_inflight_body_bytes",
            "Bytes of ingestion request bodies being received now (bounded by limits.max_inflight_body_bytes).",
            registry=r,
        )


class StoreAvailability(Protocol):
    @property
    def available(self) -> bool: ...


class StoreMetrics:
    """``monitor_store_up``, ``monitor_store_writes_pending{kind}``, ``monitor_store_writes_dropped_total{kind}``."""

    def __init__(self, registry: CollectorRegistry, store: StoreAvailability):
        self.up = Gauge("monitor_store_up", "1 while the store answers, 0 while it is marked unreachable.",
                        registry=registry)  # fmt: skip
        self.up.set_function(lambda: 1.0 if store.available else 0.0)
        self.pending = Gauge(
            "monitor_store_writes_pending",
            "Writes waiting in memory for the store to answer again (dead letters, result rows, alert updates).",
            ["kind"],
            registry=registry,
        )
        self.dropped = Counter(
            "monitor_store_writes_dropped_total",
            "Writes lost: the retry buffer was full while the store was unreachable, or the store refused them.",
            ["kind"],
            registry=registry,
        )
        for kind in STORE_WRITE_KINDS:
            self.pending.labels(kind)
            self.dropped.labels(kind)
