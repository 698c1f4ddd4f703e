"""Inference request/response bodies -> one inputs dict or one prediction per row.

Bodies are what the model server received or returned, decoded from JSON:

* KServe V1 / TensorFlow-serving rows: request ``{"instances": [...]}`` (or ``inputs`` as
  a list of rows), response ``{"predictions": [...]}``. Columnar bodies are refused.
* V2 / Open Inference Protocol: request ``{"inputs": [tensor, ...]}``, response
  ``{"outputs": [tensor, ...]}``; a tensor is ``{"name", "shape", "datatype", "data"}``,
  ``shape`` ``[N]`` or ``[N, F]``, ``data`` flat (row-major) or nested.
* Seldon protocol: ``{"data": {"names": [...], "ndarray": [[...]]}}`` or
  ``{"data": {"names": [...], "tensor": {"shape": [N, F], "values": [...]}}}``;
  ``jsonData``, ``strData`` and ``binData`` are refused.

Inputs: positional rows (V1 lists, one V2 tensor not named like a feature, Seldon rows
without ``names``) take the configured feature names in config order; a model with no
configured features gets ``f0``, ``f1``, ... (so models registered on the fly still give
records; configure the features to get real names). Named rows (V1 objects, V2 tensors
named like features, Seldon ``names``) keep their names.

Predictions: a number, boolean or string is kept; a list of C > 1 numbers (V1 list, V2
``[N, C]`` output, Seldon row) is class probabilities named by ``prediction.classes``,
else by Seldon ``names``, else "0".."C-1"; ``[p]`` is ``p``; an object maps class ->
probability. With several V2 outputs, ``prediction.output`` picks one (else the first).
Every name a client sends (features, classes, Seldon ``names``, tensors) is held to
``limits.max_string_length``, and a row to ``limits.max_inputs_per_record`` names.

Problems raise :class:`monitor.records.Invalid` with a path rooted at ``data`` (the event's
data): ``data.instances[3][2]``, ``data.inputs[0].data[7]`` (flat index), ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from monitor.model_config import PredictionConfig
from monitor.records import Invalid, Reason, json_type, shown_name
from monitor.settings import LimitsConfig

V2_DATATYPES = frozenset(
    ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES")
)
Locate = Callable[[int], str]  # index -> path of that item; called only to report a problem


# Locate factories (rather than lambdas binding loop variables as defaults, which mypy
# cannot type): each call gets its own binding.
def _item_at(path: str, offset: int = 0) -> Locate:
    """Item c of the array at ``path``: ``path[offset + c]`` (offset: a row's start in a flat array)."""
    return lambda c: f"{path}[{offset + c}]"


def _whole(path: str) -> Locate:
    """Every item is the value at ``path`` itself (a bare value taken as a one-column row)."""
    return lambda c: path


def _in_row(cell: Callable[[int, int], str], r: int) -> Locate:
    """Column c of row ``r``."""
    return lambda c: cell(r, c)


def request_rows(body: dict[str, Any], features: Sequence[str], limits: LimitsConfig) -> list[dict[str, Any]]:
    """The inputs of each row of an inference request body."""
    if "instances" in body:
        return _v1_rows(body["instances"], "data.instances", features, limits)
    if "inputs" in body:
        if _looks_v2(body["inputs"]):
            return _v2_rows(body["inputs"], features, limits)
        if isinstance(body["inputs"], dict):
            raise Invalid("data.inputs", Reason.WRONG_TYPE, "columnar inputs are not supported; send rows")
        return _v1_rows(body["inputs"], "data.inputs", features, limits)
    if "data" in body:
        return _seldon_rows(body["data"], features, limits)
    members = ", ".join(sorted(body)[:8]) or "none"
    message = f"not a V1, V2 or Seldon request: no instances, inputs or data member (members: {members})"
    raise Invalid("data", Reason.MISSING_FIELD, message)


def response_predictions(body: dict[str, Any], config: PredictionConfig, limits: LimitsConfig) -> list[Any]:
    """The prediction of each row of an inference response body."""
    if "predictions" in body:
        preds = _rows(body["predictions"], "data.predictions", limits)
        return [_prediction(p, f"data.predictions[{i}]", config, limits) for i, p in enumerate(preds)]
    if "outputs" in body:
        if not _looks_v2(body["outputs"]):
            raise Invalid(
                "data.outputs", Reason.WRONG_TYPE, "must be an array of V2 tensors; columnar outputs are not supported"
            )
        return _v2_predictions(body["outputs"], config, limits)
    if "data" in body:
        return _seldon_predictions(body["data"], config, limits)
    members = ", ".join(sorted(body)[:8]) or "none"
    message = f"not a V1, V2 or Seldon response: no predictions, outputs or data member (members: {members})"
    raise Invalid("data", Reason.MISSING_FIELD, message)


def _looks_v2(value: Any) -> bool:
    # V1 rows may be objects too; a V2 tensor is told apart by its required shape and datatype.
    first = value[0] if isinstance(value, list) and value else None
    return isinstance(first, dict) and "shape" in first and "datatype" in first


def _rows(rows: Any, path: str, limits: LimitsConfig) -> list[Any]:
    if not isinstance(rows, list):
        raise Invalid(path, Reason.WRONG_TYPE, f"must be an array with one item per row, got {json_type(rows)}")
    _check_row_count(len(rows), path, limits)
    return rows


def _check_row_count(n: int, path: str, limits: LimitsConfig) -> None:
    if n == 0:
        raise Invalid(path, Reason.INVALID_VALUE, "has no rows: nothing to record")
    if n > limits.max_items_per_request:
        limit = limits.max_items_per_request
        raise Invalid(path, Reason.TOO_MANY, f"{n} rows in one event; at most {limit} (limits.max_items_per_request)")


def _check_length(text: str, path: str, limits: LimitsConfig, what: str = "strings") -> None:
    if len(text) > limits.max_string_length:
        limit = limits.max_string_length
        raise Invalid(path, Reason.TOO_LONG, f"{what} must be at most {limit} characters, got {len(text)}")


def _check_scalar(value: Any, path: str, limits: LimitsConfig) -> None:
    """Feature values: numbers, strings, booleans or null, as in the records API."""
    if value is None or isinstance(value, (int, float)):  # orjson already refused NaN and Infinity
        return
    if not isinstance(value, str):
        message = f"feature values must be a number, string, boolean or null, got {json_type(value)}"
        raise Invalid(path, Reason.WRONG_TYPE, message)
    _check_length(value, path, limits)


def _check_width(n: int, path: str, limits: LimitsConfig) -> None:
    if n > limits.max_inputs_per_record:
        raise Invalid(path, Reason.TOO_MANY, f"at most {limits.max_inputs_per_record} features, got {n}")


def _feature_names(n: int, features: Sequence[str], path: str, limits: LimitsConfig) -> Sequence[str]:
    """Names for a positional row of ``n`` values."""
    if not features:
        _check_width(n, path, limits)
        return [f"f{i}" for i in range(n)]
    if n != len(features):
        shown = ", ".join(features[:10]) + (", ..." if len(features) > 10 else "")
        message = f"row has {n} values but the model has {len(features)} features ({shown}); positional rows list them all in config order"
        raise Invalid(path, Reason.INVALID_VALUE, message)
    return features


def _positional(
    values: list[Any], path: str, at: Locate, features: Sequence[str], limits: LimitsConfig
) -> dict[str, Any]:
    names = _feature_names(len(values), features, path, limits)
    for i, value in enumerate(values):
        _check_scalar(value, at(i), limits)
    return dict(zip(names, values, strict=True))


def _named(row: dict[str, Any], path: str, at: Locate | None, limits: LimitsConfig) -> dict[str, Any]:
    """A row of feature -> value; ``at(i)`` locates value i when the names came from elsewhere."""
    _check_width(len(row), path, limits)
    for i, (name, value) in enumerate(row.items()):
        _check_length(name, path, limits, "feature names")
        _check_scalar(value, at(i) if at else f"{path}.{name}", limits)
    return row


def _v1_rows(rows: Any, path: str, features: Sequence[str], limits: LimitsConfig) -> list[dict[str, Any]]:
    out = []
    for r, row in enumerate(_rows(rows, path, limits)):
        row_path = f"{path}[{r}]"
        if isinstance(row, dict):
            out.append(_named(row, row_path, None, limits))
        elif isinstance(row, list):
            out.append(_positional(row, row_path, _item_at(row_path), features, limits))
        else:  # a bare value is a one-column row
            out.append(_positional([row], row_path, _whole(row_path), features, limits))
    return out


# -- V2 (Open Inference Protocol) -------------------------------------------------------


def _tensor(tensor: Any, path: str, limits: LimitsConfig) -> tuple[str, list[int], list[Any]]:
    """A V2 tensor -> (name, shape, flat row-major values)."""
    if not isinstance(tensor, dict):
        raise Invalid(path, Reason.WRONG_TYPE, f"a V2 tensor must be an object, got {json_type(tensor)}")
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise Invalid(f"{path}.{key}", Reason.MISSING_FIELD, f"a V2 tensor needs {key}")
    name = tensor["name"]
    if not isinstance(name, str) or not name:
        raise Invalid(f"{path}.name", Reason.WRONG_TYPE, f"must be a non-empty string, got {json_type(name)}")
    _check_length(name, f"{path}.name", limits, "tensor names")
    if tensor["datatype"] not in V2_DATATYPES:
        raise Invalid(f"{path}.datatype", Reason.INVALID_VALUE, f"unknown V2 datatype {tensor['datatype']!r}")
    shape, values = _shaped(tensor["shape"], tensor["data"], f"{path}.shape", f"{path}.data", limits)
    return name, shape, values


def _shaped(
    shape: Any, data: Any, shape_path: str, data_path: str, limits: LimitsConfig
) -> tuple[list[int], list[Any]]:
    """Check a [N] or [N, F] shape against its (flat or nested) data; the flat values."""
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise Invalid(shape_path, Reason.WRONG_TYPE, "must be an array of non-negative integers")
    if not 1 <= len(shape) <= 2:
        raise Invalid(shape_path, Reason.INVALID_VALUE, f"must be [N] or [N, F] (rows first), got {shape}")
    _check_row_count(shape[0], shape_path, limits)
    values = _flatten(data, data_path, limits.max_depth)
    if len(values) != math.prod(shape):
        raise Invalid(
            data_path, Reason.INVALID_VALUE, f"shape {shape} needs {math.prod(shape)} values, got {len(values)}"
        )
    return shape, values


def _flatten(data: Any, path: str, max_depth: int) -> list[Any]:
    if not isinstance(data, list):
        raise Invalid(path, Reason.WRONG_TYPE, f"must be an array, got {json_type(data)}")
    if not any(isinstance(v, list) for v in data):
        return data  # already flat: the common case, no copy
    flat: list[Any] = []

    def walk(items: list[Any], depth: int) -> None:
        if depth > max_depth:
            raise Invalid(path, Reason.INVALID_VALUE, f"nested deeper than {max_depth} levels (limits.max_depth)")
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            else:
                flat.append(item)

    walk(data, 1)
    return flat


def _v2_rows(tensors: list[Any], features: Sequence[str], limits: LimitsConfig) -> list[dict[str, Any]]:
    parsed = [_tensor(t, f"data.inputs[{k}]", limits) for k, t in enumerate(tensors)]
    if len(parsed) == 1 and parsed[0][0] not in features:
        # One tensor not named like a feature: its columns are the features, in config order.
        _, shape, values = parsed[0]
        width = shape[1] if len(shape) == 2 else 1
        names = _feature_names(width, features, "data.inputs[0].shape", limits)
        for k, value in enumerate(values):
            _check_scalar(value, f"data.inputs[0].data[{k}]", limits)
        return [dict(zip(names, values[r * width : (r + 1) * width], strict=True)) for r in range(shape[0])]
    # Several tensors (or one named like a feature): one feature per tensor.
    _check_width(len(parsed), "data.inputs", limits)
    n = parsed[0][1][0]
    columns: dict[str, list[Any]] = {}
    for k, (name, shape, values) in enumerate(parsed):
        path = f"data.inputs[{k}]"
        if len(shape) == 2 and shape[1] != 1:
            message = f"tensor {name!r} has shape {shape}; with one tensor per feature each must be [N] or [N, 1]"
            raise Invalid(f"{path}.shape", Reason.INVALID_VALUE, message)
        if shape[0] != n:
            message = f"tensor {name!r} has {shape[0]} rows but data.inputs[0] has {n}"
            raise Invalid(f"{path}.shape", Reason.INVALID_VALUE, message)
        if name in columns:
            raise Invalid(f"{path}.name", Reason.INVALID_VALUE, f"tensor name {name!r} is repeated")
        for i, value in enumerate(values):
            _check_scalar(value, f"{path}.data[{i}]", limits)
        columns[name] = values
    return [{name: values[r] for name, values in columns.items()} for r in range(n)]


def _v2_predictions(outputs: list[Any], config: PredictionConfig, limits: LimitsConfig) -> list[Any]:
    k = 0
    if config.output is not None:
        names = [t.get("name") if isinstance(t, dict) else None for t in outputs]
        if config.output not in names:
            message = f"no output tensor named {config.output!r} (prediction.output); outputs are {names}"
            raise Invalid("data.outputs", Reason.INVALID_VALUE, message[:300])
        k = names.index(config.output)
    path = f"data.outputs[{k}]"
    _, shape, values = _tensor(outputs[k], path, limits)
    if len(shape) == 1 or shape[1] == 1:
        return [_prediction(v, f"{path}.data[{r}]", config, limits) for r, v in enumerate(values)]
    w = shape[1]
    return [
        _probabilities(values[r * w : (r + 1) * w], _item_at(f"{path}.data", r * w), config, None, limits)
        for r in range(shape[0])
    ]


# -- Seldon protocol --------------------------------------------------------------------


def _seldon_matrix(message: Any, limits: LimitsConfig) -> tuple[list[Any], list[str], Callable[[int, int], str]]:
    """Seldon ``data`` -> (rows, column names, path of the value at row r, column c)."""
    if not isinstance(message, dict):
        raise Invalid(
            "data.data", Reason.WRONG_TYPE, f"a Seldon message's data must be an object, got {json_type(message)}"
        )
    names = message.get("names") or []
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise Invalid("data.data.names", Reason.WRONG_TYPE, "must be an array of strings")
    # Names become feature or class names (kept in memory, compared with the reference).
    _check_width(len(names), "data.data.names", limits)
    for i, name in enumerate(names):
        _check_length(name, f"data.data.names[{i}]", limits, "names")
    if "ndarray" in message:
        rows = _rows(message["ndarray"], "data.data.ndarray", limits)
        return rows, names, lambda r, c: f"data.data.ndarray[{r}]" + (f"[{c}]" if isinstance(rows[r], list) else "")
    if "tensor" in message:
        tensor = message["tensor"]
        if not isinstance(tensor, dict):
            raise Invalid("data.data.tensor", Reason.WRONG_TYPE, f"must be an object, got {json_type(tensor)}")
        path = "data.data.tensor"
        shape, values = _shaped(tensor.get("shape"), tensor.get("values"), f"{path}.shape", f"{path}.values", limits)
        w = shape[1] if len(shape) == 2 else 1
        rows = values if len(shape) == 1 else [values[r * w : (r + 1) * w] for r in range(shape[0])]
        return rows, names, lambda r, c: f"{path}.values[{r * w + c}]"
    kinds = ", ".join(k for k in ("jsonData", "strData", "binData") if k in message) or "nothing"
    raise Invalid(
        "data.data", Reason.INVALID_VALUE, f"only ndarray and tensor Seldon payloads are supported, got {kinds}"
    )


def _seldon_rows(message: Any, features: Sequence[str], limits: LimitsConfig) -> list[dict[str, Any]]:
    rows, names, cell = _seldon_matrix(message, limits)
    out = []
    for r, row in enumerate(rows):
        values = row if isinstance(row, list) else [row]
        at = _in_row(cell, r)
        if not names:
            out.append(_positional(values, cell(r, 0), at, features, limits))
            continue
        # The client named its columns: those names beat the config order.
        if len(values) != len(names):
            message = f"row {r} has {len(values)} values but data.data.names lists {len(names)}"
            raise Invalid(cell(r, 0), Reason.INVALID_VALUE, message)
        out.append(_named(dict(zip(names, values, strict=True)), cell(r, 0), at, limits))
    return out


def _seldon_predictions(message: Any, config: PredictionConfig, limits: LimitsConfig) -> list[Any]:
    rows, names, cell = _seldon_matrix(message, limits)
    return [_prediction(row, cell(r, 0), config, limits, names, _in_row(cell, r)) for r, row in enumerate(rows)]


# -- predictions ------------------------------------------------------------------------


def _prediction(
    value: Any,
    path: str,
    config: PredictionConfig,
    limits: LimitsConfig,
    names: list[str] | None = None,
    at: Locate | None = None,
) -> Any:
    """One row's prediction; ``at(i)`` locates item i when ``value`` is a list."""
    if isinstance(value, (int, float)):  # includes booleans; finite, as orjson refuses NaN
        return value
    if isinstance(value, str):
        _check_length(value, path, limits)
        return value
    if isinstance(value, list):
        at = at or (lambda i: f"{path}[{i}]")
        if len(value) != 1:
            return _probabilities(value, at, config, names, limits)
        if isinstance(value[0], (list, dict)):  # [p] is p, but nesting stops here
            message = f"a one-item prediction list must hold a number, string or boolean, got {json_type(value[0])}"
            raise Invalid(at(0), Reason.WRONG_TYPE, message)
        return _prediction(value[0], at(0), config, limits)
    if isinstance(value, dict):
        if len(value) > limits.max_inputs_per_record:
            raise Invalid(path, Reason.TOO_MANY, f"at most {limits.max_inputs_per_record} classes, got {len(value)}")
        for name, prob in value.items():
            _check_length(name, f"{path}.{shown_name(name)}", limits, "class names")
            _check_probability(prob, f"{path}.{name}")
        return value
    expected = "a number, string, boolean, list of class probabilities or object of class -> probability"
    message = f"a prediction must be {expected}, got {json_type(value)}"
    raise Invalid(path, Reason.WRONG_TYPE, message)


def _probabilities(
    values: list[Any], at: Locate, config: PredictionConfig, names: list[str] | None, limits: LimitsConfig
) -> dict[str, Any]:
    """A row of C > 1 class probabilities -> {class: probability}."""
    if len(values) > limits.max_inputs_per_record:
        message = f"at most {limits.max_inputs_per_record} classes, got {len(values)}"
        raise Invalid(at(0), Reason.TOO_MANY, message)
    if config.kind == "regression":
        message = f"got {len(values)} values for one row, but the model is configured as regression (one value per row)"
        raise Invalid(at(0), Reason.INVALID_VALUE, message)
    classes: Sequence[str] = config.classes or (names if names and len(names) == len(values) else [])
    if config.classes and len(config.classes) != len(values):
        message = f"got {len(values)} class probabilities but prediction.classes lists {len(config.classes)}"
        raise Invalid(at(0), Reason.INVALID_VALUE, message)
    for i, prob in enumerate(values):
        _check_probability(prob, at(i))
    return dict(zip(classes or [str(i) for i in range(len(values))], values, strict=True))


def _check_probability(prob: Any, path: str) -> None:
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
        shown = json_type(prob) if isinstance(prob, (list, dict)) else repr(prob)[:40]
        raise Invalid(path, Reason.INVALID_VALUE, f"class probabilities must be numbers in [0, 1], got {shown}")
