"""Model servers' payload-logger CloudEvents -> partial records.

Senders (checked against their sources):

* KServe's payload logger (``pkg/logger``): one CloudEvent per inference request and one
  per response, binary mode, types ``org.kubeflow.serving.inference.request`` and
  ``.response``; ``ce-id`` is the request id, shared by the pair; the model is
  ``ce-inferenceservicename``. The data is the request or response body unchanged, with
  the *client's* Content-Type (often missing or ``application/x-www-form-urlencoded`` when
  the client was curl), so binary-mode bodies are parsed as JSON whatever their type says.
* Seldon core v1's executor logger: types ``io.seldon.serving.inference.request`` and
  ``.response``. Its ``ce-id`` is a fresh UUID per event, so request and response are
  joined on ``ce-requestid`` (the Seldon puid) instead. The model is
  ``ce-inferenceservicename`` (the SeldonDeployment), else ``ce-modelid`` (the graph
  node): in a graph where several nodes log, their events share model and id and only the
  first of each part is kept by the join. ``io.seldon.serving.feedback`` is refused.

Bodies: KServe V1, V2 / Open Inference Protocol and Seldon ``ndarray``/``tensor``
messages, see :mod:`collectors.inference_protocol`.

Content modes (HTTP binding of CloudEvents 1.0): binary (attributes in ``ce-*`` headers,
the body is the data), structured (``application/cloudevents+json``) and batched
(``application/cloudevents-batch+json``, a JSON array of structured events). Other event
formats (``+avro``, ``+protobuf``) and CloudEvents 0.3 are not supported; ``ce-*`` headers
must be valid attribute names (lowercase letters and digits), as the spec requires.

Records: each row of an event is one partial record: ``Record(inputs=...)`` for a
request, ``Record(prediction=..., has_prediction=True)`` for a response. Its id is the
event id with one row and ``f"{event_id}:{row}"`` (row 0..N-1) with N > 1; request and
response follow the same rule, so they join when both have N rows. Model:
``inferenceservicename``, else ``modelid``, else the V2 response's ``model_name``.
Timestamp: the ``time`` attribute, else ``message_time`` (Kafka: the message's timestamp),
else ``received_at``; a time outside ``limits.max_future_seconds`` ahead of /
``limits.max_age_seconds`` before ``received_at`` is refused (``timestamp_out_of_range``,
path ``ce-time``, ``time`` or ``kafka.timestamp``). One HTTP request yields at most
``limits.max_items_per_request`` records (rows of all its events together); string, id,
feature-count and ``limits.max_models`` limits are those of the records API (models an
earlier event of the request will register count against the last).

An event is accepted or rejected as a whole. Rejection paths name what was sent:
``ce-type`` (a binary-mode header), ``type`` (a structured-mode member) or
``data.instances[3][2]`` (inside the data); a value that is not a boolean for a feature
declared ``type: boolean`` is named by its row and feature, ``data.rows[3].flag``, as rows
are read the same way from V1, V2 and Seldon bodies. Only problems that belong to no event raise
:class:`EventEnvelopeError`: unreadable JSON or a non-object/non-array envelope (400), a
binary-mode request missing a required ``ce-*`` header (400: without them it is probably
not an event at all), a content type that is neither (415), too many events or bytes (413).

The ``cloudevents`` SDK (2.x, ``cloudevents.core``): binary mode goes through
``bindings.http.from_binary`` (header names, percent-decoding, ``time`` parsing), and every
event, whatever its mode, is built as a ``core.v1.event.CloudEvent``, which checks the
attributes (spec version 1.0, non-empty id/source/type, extension names). The SDK has no
batched mode and its JSON format parses with the stdlib (which accepts NaN and cannot say
which event of a batch is broken), so structured and batched envelopes are parsed here
with orjson and each event object is handed to the SDK.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_binary
from cloudevents.core.exceptions import (
    CloudEventValidationError,
    InvalidAttributeTypeError,
    InvalidAttributeValueError,
    MissingRequiredAttributeError,
)
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import REQUIRED_ATTRIBUTES, CloudEvent
from dateutil.parser import isoparse  # the SDK's own time parser: both modes read times alike

from collectors.inference_protocol import request_rows, response_predictions
from monitor.model_config import ModelConfig, PredictionConfig
from monitor.records import (
    MAX_MODEL_NAME,
    RESERVED_MODEL_NAME,
    Invalid,
    Reason,
    Record,
    Rejection,
    reserved_model_name,
)
from monitor.records import json_type as json_type
from monitor.settings import LimitsConfig
from monitor.timestamps import EventTimeRange
from monitor.validation import spelled_booleans

KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"
SELDON_REQUEST = "io.seldon.serving.inference.request"
SELDON_RESPONSE = "io.seldon.serving.inference.response"
SELDON_FEEDBACK = "io.seldon.serving.feedback"
REQUEST_TYPES = frozenset((KSERVE_REQUEST, SELDON_REQUEST))
RESPONSE_TYPES = frozenset((KSERVE_RESPONSE, SELDON_RESPONSE))
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
# The path of a Kafka message's own timestamp, when an event without a time takes it.
MESSAGE_TIME_PATH = "kafka.timestamp"


class EventEnvelopeError(Exception):
    """The HTTP request as a whole is unusable; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def parse_http(
    headers: Mapping[str, str],
    body: bytes,
    *,
    models: Mapping[str, ModelConfig],
    limits: LimitsConfig,
    received_at: float,
    accept_unknown: bool = False,
    message_time: float | None = None,
    admitted: set[str] | None = None,
) -> tuple[list[Record], list[Rejection]]:
    """One HTTP request carrying CloudEvents -> (partial records, rejected events).

    ``received_at`` is when it arrived; ``message_time`` the time of events without a
    ``time`` attribute, when not that (a Kafka message's timestamp). ``admitted`` holds the
    unknown models accepted so far by the caller's batch (Kafka: one poll batch), to which
    this request's are added."""
    lowered = {name.lower(): value for name, value in headers.items()}
    content_type = lowered.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if len(body) > limits.max_body_bytes:
        raise EventEnvelopeError(
            413, f"body is {len(body)} bytes; at most {limits.max_body_bytes} (limits.max_body_bytes)"
        )
    parser = _Parser(models, limits, received_at, accept_unknown, message_time)
    if admitted is not None:
        parser.admitted = admitted
    if media == BATCH:
        events = _load_envelope(body)
        if not isinstance(events, list):
            raise EventEnvelopeError(400, f"a batch ({BATCH}) must be a JSON array of events, got {json_type(events)}")
        if len(events) > limits.max_items_per_request:
            limit = limits.max_items_per_request
            raise EventEnvelopeError(
                413, f"{len(events)} events in one batch; at most {limit} (limits.max_items_per_request)"
            )
        for index, event in enumerate(events):
            parser.structured(index, event)
    elif media == STRUCTURED:
        event = _load_envelope(body)
        if not isinstance(event, dict):
            hint = f" (send arrays as {BATCH})" if isinstance(event, list) else ""
            raise EventEnvelopeError(400, f"a structured event must be a JSON object, got {json_type(event)}{hint}")
        parser.structured(0, event)
    elif media.startswith("application/cloudevents"):
        raise EventEnvelopeError(415, f"unsupported CloudEvents format {media[:100]!r}: only {STRUCTURED} and {BATCH}")
    else:
        parser.binary(lowered, body, content_type)
    return parser.records, parser.rejections


def _load_envelope(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EventEnvelopeError(400, f"body is not valid JSON: {_json_error(exc)}") from None


def _json_error(exc: orjson.JSONDecodeError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"


class _KeepBody(JSONFormat):
    """Hands the binary-mode body over undecoded: it is parsed here with orjson (the SDK's
    stdlib parsing accepts NaN and turns a broken body into a string silently)."""

    def read_data(self, body: bytes, datacontenttype: str | None) -> bytes:
        return body


_KEEP_BODY = _KeepBody()


def _new_event(attributes: dict[str, Any], data: Any) -> CloudEvent:
    """The SDK's v1 event, without its defaults: it would invent an id (a uuid that never
    joins) and a time (now, not ``received_at``) when they are missing."""
    for name in REQUIRED_ATTRIBUTES:
        if name not in attributes:
            raise CloudEventValidationError({name: [MissingRequiredAttributeError(name)]})
    time = attributes.get("time")
    if isinstance(time, datetime) and time.tzinfo is None:
        attributes["time"] = time.replace(tzinfo=UTC)  # naive means UTC, as in the records API
    return CloudEvent(attributes, data)


def _attribute_problem(exc: CloudEventValidationError, prefix: str, attributes: Mapping[str, Any]) -> Invalid:
    """The first attribute the SDK refused, as our path, reason and message."""
    name, errors = next(iter(exc.errors.items()))
    error = errors[0]
    if isinstance(error, InvalidAttributeTypeError):  # time is parsed before: the rest are strings
        return Invalid(prefix + name, Reason.WRONG_TYPE, f"must be a string, got {json_type(attributes.get(name))}")
    if isinstance(error, MissingRequiredAttributeError):
        reason = Reason.MISSING_FIELD
    elif isinstance(error, InvalidAttributeValueError) and name != "specversion":
        reason = Reason.INVALID_VALUE
    else:  # a spec version other than 1.0, or a malformed extension name: not an event we read
        reason = Reason.INVALID_EVENT
    return Invalid(prefix + name, reason, f"{prefix}{name}: {error}")


class _Parser:
    """Turns events into records, sharing one row budget across the request."""

    def __init__(
        self,
        models: Mapping[str, ModelConfig],
        limits: LimitsConfig,
        received_at: float,
        accept_unknown: bool,
        message_time: float | None = None,
    ):
        self.models, self.limits, self.received_at, self.accept_unknown = models, limits, received_at, accept_unknown
        self.message_time = message_time
        self.accepted_times = EventTimeRange.of(received_at, limits)
        self.admitted: set[str] = set()  # unknown models of accepted events: the pipeline registers them
        self.remaining = limits.max_items_per_request
        self.records: list[Record] = []
        self.rejections: list[Rejection] = []

    def binary(self, headers: dict[str, str], body: bytes, content_type: str) -> None:
        attributes = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
        if not attributes:
            message = (
                f"content type {content_type[:100] or '(none)'!r} is not a CloudEvents format and there are no ce-*"
            )
            raise EventEnvelopeError(415, f"{message} headers: send a binary-mode event (ce-* headers) or {STRUCTURED}")
        missing = [f"ce-{name}" for name in REQUIRED_ATTRIBUTES if name not in attributes]
        if missing:
            raise EventEnvelopeError(400, f"binary-mode CloudEvent is missing header {', '.join(missing)}")
        if not content_type:  # an empty Content-Type would become an (invalid) empty datacontenttype
            headers = {name: value for name, value in headers.items() if name != "content-type"}
        raw: dict[str, Any] = {**attributes, "datacontenttype": content_type} if content_type else dict(attributes)
        raw["data"], problem = None, None
        if body:
            try:
                raw["data"] = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raw["data"] = body.decode("utf-8", "replace")
                problem = f"body ({content_type or 'no content type'}) is not valid JSON: {_json_error(exc)}"
        try:
            event = from_binary(HTTPMessage(headers=headers, body=body), _KEEP_BODY, _new_event)
        except CloudEventValidationError as exc:
            self._reject(0, _attribute_problem(exc, "ce-", attributes), raw, None)
            return
        except ValueError as exc:  # from_binary parses nothing but ce-time itself
            message = f"must be an RFC 3339 time, got {headers.get('ce-time', '')[:64]!r} ({exc})"
            self._reject(0, Invalid("ce-time", Reason.INVALID_VALUE, message), raw, None)
            return
        self._convert(0, event, raw["data"], "ce-", raw, "time" in attributes, problem)

    def structured(self, index: int, item: Any) -> None:
        try:
            if not isinstance(item, dict):
                raise Invalid("", Reason.NOT_AN_OBJECT, f"an event must be a JSON object, got {json_type(item)}")
            attributes = dict(item)
            data = attributes.pop("data", None)
            encoded = attributes.pop("data_base64", None)
            if data is None and encoded is not None:
                data = _decode_base64(encoded)
            if "time" in attributes:
                attributes["time"] = _parse_time(attributes["time"])
            try:
                event = _new_event(attributes, data)
            except CloudEventValidationError as exc:
                raise _attribute_problem(exc, "", attributes) from None
        except Invalid as exc:
            self._reject(index, exc, item, None)
            return
        self._convert(index, event, data, "", item, "time" in item, None)

    def _convert(
        self,
        index: int,
        event: BaseCloudEvent,
        data: Any,
        prefix: str,
        raw: Any,
        has_time: bool,
        body_problem: str | None,
    ) -> None:
        model = None
        try:
            kind = event.get_type()
            if kind not in REQUEST_TYPES and kind not in RESPONSE_TYPES:
                expected = ", ".join(sorted(REQUEST_TYPES | RESPONSE_TYPES))
                message = f"unsupported event type {kind[:128]!r}; expected one of {expected}"
                if kind == SELDON_FEEDBACK:
                    message = f"Seldon feedback events ({kind}) are not supported; post labels to the records API"
                raise Invalid(f"{prefix}type", Reason.INVALID_EVENT, message)
            model, model_path = self._model_name(event, data if isinstance(data, dict) else {}, prefix)
            config = self.models.get(model)
            if config is None:
                self._check_unknown(model, model_path)
            timestamp = self._timestamp(event, has_time, prefix)
            if body_problem is not None:  # reported after type and model, so the dead letter names its model
                raise Invalid("data", Reason.INVALID_JSON, body_problem)
            if not isinstance(data, dict):
                reason = Reason.MISSING_FIELD if data is None else Reason.NOT_AN_OBJECT
                message = f"the data must be a JSON object (an inference request or response), got {json_type(data)}"
                raise Invalid("data", reason, message)
            base_id, id_path = self._base_id(event, kind, prefix)
            if kind in REQUEST_TYPES:
                rows = request_rows(data, config.feature_names if config else [], self.limits)
                booleans = config.boolean_features if config else frozenset()
                rows = [spelled_booleans(row, booleans, f"data.rows[{r}]") for r, row in enumerate(rows)]
            else:
                rows = response_predictions(data, config.prediction if config else PredictionConfig(), self.limits)
            self._check_budget(len(rows), base_id, id_path)
        except Invalid as exc:
            self._reject(index, exc, raw, model)
            return
        if config is None:
            self.admitted.add(model)
        for r, row in enumerate(rows):
            record = Record(model=model, id=base_id if len(rows) == 1 else f"{base_id}:{r}", timestamp=timestamp)
            if kind in REQUEST_TYPES:
                record.inputs = row
            else:
                record.prediction, record.has_prediction = row, True
            self.records.append(record)

    def _check_unknown(self, model: str, path: str) -> None:
        """A model not configured: refused, or let through while there is room for it."""
        if not self.accept_unknown:
            message = f"model {model!r} is not configured (add it under models:, or set unknown_models: register)"
            raise Invalid(path, Reason.UNKNOWN_MODEL, message)
        limit = self.limits.max_models
        if model not in self.admitted and len(self.models) + len(self.admitted) >= limit:
            message = (
                f"model {model!r} is not configured and the limit of {limit} models is reached (limits.max_models)"
            )
            raise Invalid(path, Reason.UNKNOWN_MODEL, message)

    def _timestamp(self, event: BaseCloudEvent, has_time: bool, prefix: str) -> float:
        """The event's time (its ``time`` attribute, else the message's, else the receive
        time), checked against the accepted range."""
        time = event.get_time()
        if has_time and time is not None:
            return self.accepted_times.check(time.timestamp(), f"{prefix}time")
        if self.message_time is not None:
            return self.accepted_times.check(self.message_time, MESSAGE_TIME_PATH, "the Kafka message timestamp")
        return self.received_at

    @staticmethod
    def _model_name(event: BaseCloudEvent, data: dict[str, Any], prefix: str) -> tuple[str, str]:
        """The model's name, checked, and the path it was read from."""
        for name in ("inferenceservicename", "modelid"):
            value, path = event.get_extension(name), f"{prefix}{name}"
            if value is not None and value != "":  # Seldon sends an empty name outside a cluster
                break
        else:
            value, path = data.get("model_name"), "data.model_name"  # only V2 responses carry it
            if value is None:
                message = (
                    f"no model name: no {prefix}inferenceservicename or {prefix}modelid attribute, nor a V2 model_name"
                )
                raise Invalid(f"{prefix}inferenceservicename", Reason.MISSING_FIELD, message)
        if not isinstance(value, str) or not value:
            raise Invalid(path, Reason.WRONG_TYPE, f"the model name must be a non-empty string, got {json_type(value)}")
        if len(value) > MAX_MODEL_NAME:
            message = f"the model name must be at most {MAX_MODEL_NAME} characters, got {len(value)}"
            raise Invalid(path, Reason.TOO_LONG, message)
        if value == RESERVED_MODEL_NAME:
            raise reserved_model_name(value, path)
        return value, path

    @staticmethod
    def _base_id(event: BaseCloudEvent, kind: str, prefix: str) -> tuple[str, str]:
        if kind in (SELDON_REQUEST, SELDON_RESPONSE):
            # Seldon's ce-id differs between request and response; the puid is what they share.
            request_id = event.get_extension("requestid")
            if request_id is not None and request_id != "":
                if not isinstance(request_id, str):
                    raise Invalid(
                        f"{prefix}requestid", Reason.WRONG_TYPE, f"must be a string, got {json_type(request_id)}"
                    )
                return request_id, f"{prefix}requestid"
        return event.get_id(), f"{prefix}id"

    def _check_budget(self, n: int, base_id: str, id_path: str) -> None:
        """At most max_items_per_request records per HTTP request, and ids within max_id_length."""
        limit = self.limits.max_items_per_request
        if n > self.remaining:
            message = f"{n} rows would pass the {limit} records allowed per request (limits.max_items_per_request)"
            raise Invalid("data", Reason.TOO_MANY, f"{message}; earlier events took {limit - self.remaining}")
        longest = base_id if n == 1 else f"{base_id}:{n - 1}"
        if len(longest) > self.limits.max_id_length:
            message = f"record ids must be at most {self.limits.max_id_length} characters, got {len(longest)}"
            raise Invalid(id_path, Reason.TOO_LONG, f"{message} for {longest[:32]!r}...")
        self.remaining -= n

    def _reject(self, index: int, exc: Invalid, raw: Any, model: str | None) -> None:
        self.rejections.append(Rejection(index, exc.path, exc.reason, exc.message, raw, model))


def _decode_base64(encoded: Any) -> Any:
    """``data_base64`` (binary data in the JSON format) holding a JSON body."""
    if not isinstance(encoded, str):
        raise Invalid("data_base64", Reason.WRONG_TYPE, f"must be a base64 string, got {json_type(encoded)}")
    try:
        return orjson.loads(base64.b64decode(encoded, validate=True))
    except orjson.JSONDecodeError as exc:
        raise Invalid(
            "data_base64", Reason.INVALID_JSON, f"must be base64 of a JSON body: {_json_error(exc)}"
        ) from None
    except (binascii.Error, ValueError):
        raise Invalid("data_base64", Reason.INVALID_VALUE, "must be base64 of a JSON body: not valid base64") from None


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise Invalid("time", Reason.WRONG_TYPE, f"must be an RFC 3339 time string, got {json_type(value)}")
    try:
        return isoparse(value)
    except ValueError as exc:
        raise Invalid("time", Reason.INVALID_VALUE, f"must be an RFC 3339 time, got {value[:64]!r} ({exc})") from None
