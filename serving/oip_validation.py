"""Open Inference Protocol (V2) inference requests to feature rows, checked by hand.

An inference request carries tensors, the service scores feature rows: this module
turns one into the other, so that everything after it (feature validation, routing,
scoring, the prediction log, metrics) is the `/v1/predict` path itself. Two forms:

- columnar: one input per feature, named after it, shape `[rows]` or `[rows, 1]`: BYTES
  for a categorical feature, FP32 / FP64 / an integer type / BOOL for a numeric one.
  An input named after the entity key (BYTES or an integer type) makes routing sticky
  per entity, as the key in a `/v1` instance does;
- tensor: one FP32 / FP64 input named `TENSOR_INPUT`, shape `[rows, n]`, the numeric
  features in the model's order (the order of the model metadata's inputs), beside one
  BYTES input per categorical feature (none for an all-numeric model).

`data` is flat (row-major) or nested as the shape. JSON `null` is a missing value, as
in `/v1`. A refusal is a `RequestError` (400, or 413 for too many rows) whose message
names the input and the row, and whose field is the place in the document
(`inputs[2].data[5]`); the service renders it as the protocol's `{"error": message}`.
`serving.openapi_models` documents the same shapes (the agreement test,
tests/unit/test_serving_openapi_agreement.py, keeps the two in step).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from serving.errors import RequestError
from serving.validation import InputSchema, PredictInput, json_kind, validate_instances

TENSOR_INPUT = "numeric_features"
"""The name of the tensor form's `[rows, n_numeric]` input."""
OutputName = Literal["probabilities", "prediction", "model_version"]
OUTPUTS: tuple[str, ...] = get_args(OutputName)
"""Every output, in the order a response lists them when none were requested."""
PROBABILITIES, PREDICTION, MODEL_VERSION = OUTPUTS
Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
_DATATYPES: tuple[str, ...] = get_args(Datatype)
"""The protocol's tensor data types (FP16 has no JSON form: it is refused as unsupported)."""
_INTEGER_RANGES = {
    **{f"INT{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64)},
    **{f"UINT{bits}": (0, 2**bits - 1) for bits in (8, 16, 32, 64)},
}
_FLOATS = ("FP32", "FP64")

_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_KEYS = frozenset({"name", "parameters"})
_NUMERIC_TYPES = ("BOOL", *_INTEGER_RANGES, *_FLOATS)
_ENTITY_TYPES = ("BYTES", *_INTEGER_RANGES)
_INTEGERS = "an integer type (INT8 to INT64, UINT8 to UINT64)"
_BINARY = "binary_data_size"


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A checked inference request: the feature rows, and what the answer must hold."""

    id: str | None
    """The request's `id` (echoed in the answer)."""
    rows: PredictInput
    """The feature rows, checked against the schema as `/v1/predict` checks instances."""
    outputs: tuple[str, ...]
    """The outputs to answer, in order."""


def _refused(
    field: str, message: str, code: str = "invalid_input", status: int = 400
) -> RequestError:
    return RequestError(status, code, message, field)


# --- the document ---------------------------------------------------------------------


def parse_infer(document: Any, schema: InputSchema, max_rows: int) -> InferRequest:
    """Check an inference request against the served model's schema; its feature rows.

    Raises:
        RequestError: 400 naming the input, the row and the field; 413 for more rows
            than `max_rows`.
    """
    if not isinstance(document, dict):
        raise _refused("body", f"expected a JSON object, got {json_kind(document)}", "invalid_body")
    _closed(document, _REQUEST_KEYS, "")
    given_id = document.get("id")
    if given_id is not None and not isinstance(given_id, str):
        raise _refused("id", f"expected a string, got {json_kind(given_id)}", "wrong_type")
    _parameters(document.get("parameters"), "parameters")
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        got = "an empty array" if tensors == [] else json_kind(tensors)
        raise _refused("inputs", f"expected an array of input tensors, got {got}")
    columns = _Columns(schema, max_rows)
    for k, tensor in enumerate(tensors):
        columns.add(tensor, f"inputs[{k}]")
    checked = _feature_rows(columns.rows(), schema, columns.where)
    return InferRequest(given_id, checked, _outputs(document))


def _closed(item: dict[str, Any], keys: frozenset[str], where: str) -> None:
    for key in item:
        if key not in keys:
            field = f"{where}.{key}" if where else str(key)
            raise _refused(
                field, f"unknown field; expected {', '.join(sorted(keys))}", "unknown_field"
            )


def _parameters(value: Any, where: str) -> dict[str, Any]:
    """Parameters: string keys, string, number or boolean values (null: none given)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _refused(where, f"expected an object of parameters, got {json_kind(value)}")
    for key, item in value.items():
        fine = isinstance(item, str | bool | int) or (
            isinstance(item, float) and math.isfinite(item)
        )
        if not fine:
            raise _refused(
                f"{where}.{key}",
                f"a parameter is a string, a number or a boolean, got {json_kind(item)}",
                "wrong_type",
            )
    return value


def _outputs(document: dict[str, Any]) -> tuple[str, ...]:
    requested = document.get("outputs")
    if requested is None:
        return OUTPUTS
    if not isinstance(requested, list):
        raise _refused("outputs", f"expected an array, got {json_kind(requested)}")
    names: list[str] = []
    for k, item in enumerate(requested):
        where = f"outputs[{k}]"
        if not isinstance(item, dict):
            raise _refused(where, f"expected an object, got {json_kind(item)}")
        _closed(item, _OUTPUT_KEYS, where)
        name = _required(item, "name", where)
        if not isinstance(name, str):
            raise _refused(
                f"{where}.name", f"expected a string, got {json_kind(name)}", "wrong_type"
            )
        if name not in OUTPUTS or name in names:
            problem = "requested twice" if name in names else "unknown output"
            raise _refused(
                f"{where}.name", f"{problem} {name!r}: the outputs are {', '.join(OUTPUTS)}"
            )
        _parameters(item.get("parameters"), f"{where}.parameters")
        names.append(name)
    return tuple(names) or OUTPUTS


def _required(item: dict[str, Any], key: str, where: str) -> Any:
    value = item.get(key)
    if value is None:
        raise _refused(f"{where}.{key}", "required field is missing", "missing_field")
    return value


# --- tensors --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    datatype: str
    data: list[Any]
    where: str


def _tensor(item: Any, where: str) -> _Tensor:
    """The structure of one input tensor (what it holds is checked by its role)."""
    if not isinstance(item, dict):
        raise _refused(where, f"expected an input tensor object, got {json_kind(item)}")
    _closed(item, _INPUT_KEYS, where)
    name = _required(item, "name", where)
    if not isinstance(name, str):
        raise _refused(f"{where}.name", f"expected a string, got {json_kind(name)}", "wrong_type")
    shape = _required(item, "shape", where)
    if not isinstance(shape, list):
        raise _refused(
            f"{where}.shape", f"input {name!r}: expected an array, got {json_kind(shape)}"
        )
    for j, size in enumerate(shape):
        if type(size) is not int or size < 0:
            raise _refused(
                f"{where}.shape[{j}]",
                f"input {name!r}: a dimension is a non-negative integer, got {json_kind(size)}",
            )
    datatype = _required(item, "datatype", where)
    if not isinstance(datatype, str):
        raise _refused(
            f"{where}.datatype", f"input {name!r}: expected a string, got {json_kind(datatype)}"
        )
    if datatype not in _DATATYPES:
        raise _refused(
            f"{where}.datatype",
            f"input {name!r}: unknown datatype {datatype!r}; one of {', '.join(_DATATYPES)}",
        )
    parameters = _parameters(item.get("parameters"), f"{where}.parameters")
    if _BINARY in parameters:
        raise _refused(
            f"{where}.parameters.{_BINARY}",
            f"input {name!r}: binary tensor data is not supported; send `data` as JSON "
            "(tritonclient: set_data_from_numpy(array, binary_data=False))",
            "unsupported",
        )
    data = _required(item, "data", where)
    if not isinstance(data, list):
        raise _refused(
            f"{where}.data", f"input {name!r}: expected an array of values, got {json_kind(data)}"
        )
    return _Tensor(name, tuple(shape), datatype, data, where)


def _elements(tensor: _Tensor) -> list[Any]:
    """The tensor's values in row-major order: `data` flat, or nested as the shape."""
    shape, data, name = tensor.shape, tensor.data, tensor.name
    total = math.prod(shape)
    if data and type(data[0]) is list:
        flat: list[Any] = []
        _unnest(data, shape, f"{tensor.where}.data", name, flat)
        return flat
    for j, value in enumerate(data):
        if type(value) is list or type(value) is dict:
            raise _refused(
                f"{tensor.where}.data[{j}]",
                f"input {name!r}: flat data holds values, got {json_kind(value)} "
                "(or nest every row)",
            )
    if len(data) != total:
        raise _refused(
            f"{tensor.where}.data",
            f"input {name!r}: shape {list(shape)} holds {total} values, data has {len(data)}",
            "shape_mismatch",
        )
    return data


def _unnest(value: Any, shape: tuple[int, ...], where: str, name: str, out: list[Any]) -> None:
    if not shape:
        if type(value) is list:
            raise _refused(where, f"input {name!r}: data is nested deeper than the shape")
        out.append(value)
        return
    if type(value) is not list or len(value) != shape[0]:
        got = f"{len(value)} items" if type(value) is list else json_kind(value)
        raise _refused(
            where,
            f"input {name!r}: expected an array of {shape[0]} items (shape {list(shape)}), "
            f"got {got}",
            "shape_mismatch",
        )
    for i, item in enumerate(value):
        _unnest(item, shape[1:], f"{where}[{i}]", name, out)


def _element_field(tensor: _Tensor, index: int) -> str:
    """Where the `index`-th value (row-major) is in the document."""
    if not tensor.data or type(tensor.data[0]) is not list:
        return f"{tensor.where}.data[{index}]"
    parts = []
    for size in reversed(tensor.shape):
        index, at = divmod(index, size)
        parts.append(f"[{at}]")
    return f"{tensor.where}.data" + "".join(reversed(parts))


# --- values ---------------------------------------------------------------------------


def _float_ok(value: Any) -> bool:
    return value is None or type(value) is int or (type(value) is float and math.isfinite(value))


def _checker(datatype: str) -> tuple[Callable[[Any], bool], str]:
    """A test of one value of `datatype` (null passes: a missing value), and its wording."""
    if datatype in _FLOATS:
        return _float_ok, "a finite number or null"
    if datatype == "BOOL":
        return (lambda v: v is None or type(v) is bool), "a boolean or null"
    if datatype == "BYTES":
        return (lambda v: v is None or type(v) is str), "a string or null"
    low, high = _INTEGER_RANGES[datatype]
    return (
        lambda v: v is None or (type(v) is int and low <= v <= high)
    ), f"an integer in [{low}, {high}] or null"


def _checked_values(
    tensor: _Tensor, values: list[Any], columns: int, label: Callable[[int], str]
) -> list[Any]:
    """The values, each checked against the datatype (BOOL as 0 / 1, a numeric feature)."""
    fine, wanted = _checker(tensor.datatype)
    if not all(map(fine, values)):
        index = next(j for j, v in enumerate(values) if not fine(v))
        raise _refused(
            _element_field(tensor, index),
            f"input {tensor.name!r}, row {index // columns}{label(index % columns)}: expected "
            f"{wanted} ({tensor.datatype}), got {json_kind(values[index])}",
            "wrong_type",
        )
    if tensor.datatype == "BOOL":
        return [v if v is None else int(v) for v in values]
    return values


# --- inputs to rows -------------------------------------------------------------------


class _Columns:
    """The inputs of one request, gathered into one column per feature."""

    def __init__(self, schema: InputSchema, max_rows: int) -> None:
        self.schema = schema
        self.max_rows = max_rows
        self.values: dict[str, list[Any]] = {}
        self.where: dict[str, str] = {}
        """The input that gave each feature (for messages)."""
        self.count: int | None = None
        self._first = ""
        self._tensor_form = TENSOR_INPUT not in schema.features and bool(schema.numeric)

    def add(self, item: Any, where: str) -> None:
        tensor = _tensor(item, where)
        schema, name = self.schema, tensor.name
        if name in schema.numeric:
            wanted = f"FP32, FP64, {_INTEGERS} or BOOL"
            self._column(tensor, _NUMERIC_TYPES, f"a numeric feature: datatype {wanted}")
        elif name in schema.categorical:
            self._column(tensor, ("BYTES",), "a categorical feature: datatype BYTES")
        elif name == schema.entity:
            self._column(tensor, _ENTITY_TYPES, f"the entity key: datatype BYTES or {_INTEGERS}")
        elif name == TENSOR_INPUT and self._tensor_form:
            self._numeric_tensor(tensor)
        else:
            raise _refused(
                f"{where}.name",
                f"unknown input {name!r}: the inputs are the features "
                f"{', '.join((*schema.numeric, *schema.categorical))}"
                + (f" (or the tensor {TENSOR_INPUT!r})" if self._tensor_form else "")
                + (f" and the entity key {schema.entity!r}" if schema.entity else ""),
                "unknown_input",
            )

    def _rows_of(self, tensor: _Tensor) -> int:
        rows = tensor.shape[0] if tensor.shape else 0
        if self.count is None:
            if rows == 0:
                raise _refused(
                    f"{tensor.where}.shape", f"input {tensor.name!r}: no rows", "empty_batch"
                )
            if rows > self.max_rows:
                raise _refused(
                    f"{tensor.where}.shape",
                    f"input {tensor.name!r}: {rows} rows exceed the limit of {self.max_rows} "
                    "per request",
                    "too_many_rows",
                    413,
                )
            self.count, self._first = rows, tensor.name
        elif rows != self.count:
            raise _refused(
                f"{tensor.where}.shape",
                f"input {tensor.name!r} has {rows} rows, input {self._first!r} has "
                f"{self.count}: every input holds one value per row",
                "shape_mismatch",
            )
        return rows

    def _kept(self, feature: str, tensor: _Tensor, values: list[Any]) -> None:
        if feature in self.values:
            raise _refused(
                f"{tensor.where}.name",
                f"feature {feature!r} is given twice (by {self.where[feature]!r} and "
                f"{tensor.name!r})",
                "duplicate_input",
            )
        self.values[feature] = values
        self.where[feature] = tensor.name

    def _column(self, tensor: _Tensor, datatypes: tuple[str, ...], role: str) -> None:
        if tensor.datatype not in datatypes:
            raise _refused(
                f"{tensor.where}.datatype",
                f"input {tensor.name!r} is {role}, not {tensor.datatype}",
                "wrong_datatype",
            )
        rows = self._rows_of(tensor)
        if tensor.shape not in ((rows,), (rows, 1)):
            raise _refused(
                f"{tensor.where}.shape",
                f"input {tensor.name!r} is one feature: shape [{rows}] or [{rows}, 1], "
                f"not {list(tensor.shape)}",
                "shape_mismatch",
            )
        values = _checked_values(tensor, _elements(tensor), 1, lambda _: "")
        self._kept(tensor.name, tensor, values)

    def _numeric_tensor(self, tensor: _Tensor) -> None:
        numeric = self.schema.numeric
        if tensor.datatype not in _FLOATS:
            raise _refused(
                f"{tensor.where}.datatype",
                f"input {tensor.name!r}: datatype FP32 or FP64, not {tensor.datatype}",
                "wrong_datatype",
            )
        rows = self._rows_of(tensor)
        if tensor.shape != (rows, len(numeric)):
            raise _refused(
                f"{tensor.where}.shape",
                f"input {tensor.name!r} holds the {len(numeric)} numeric features of each "
                f"row: shape [{rows}, {len(numeric)}], not {list(tensor.shape)}",
                "shape_mismatch",
            )
        values = _checked_values(
            tensor, _elements(tensor), len(numeric), lambda j: f", column {j} ({numeric[j]!r})"
        )
        width = len(numeric)
        for j, feature in enumerate(numeric):
            self._kept(feature, tensor, values[j::width])

    def rows(self) -> list[dict[str, Any]]:
        schema = self.schema
        for feature in (*schema.numeric, *schema.categorical):
            if feature not in self.values:
                kind = "numeric" if feature in schema.numeric else "categorical (BYTES)"
                raise _refused(
                    "inputs",
                    f"missing input {feature!r} (a {kind} feature; null marks a missing value)",
                    "missing_input",
                )
        entity = schema.entity
        keys = self.values.pop(entity) if entity is not None and entity in self.values else None
        names = list(self.values)
        rows = [
            dict(zip(names, row, strict=True)) for row in zip(*self.values.values(), strict=True)
        ]
        if entity is not None and keys is not None:
            for row, key in zip(rows, keys, strict=True):
                if key is not None:  # a row without its key is routed by the request id
                    row[entity] = key
        return rows


_INSTANCE_FIELD = re.compile(r"^instances\[(\d+)\]\.(.+)$")


def _feature_rows(
    rows: list[dict[str, Any]], schema: InputSchema, where: dict[str, str]
) -> PredictInput:
    """`/v1`'s check of the rows against the schema, its refusal worded in inputs and rows.

    What it can refuse here is what the datatypes let through: an integer too large to
    be a feature value, an entity key that is empty or too long.
    """
    try:
        return validate_instances(rows, schema)
    except RequestError as exc:
        first = _INSTANCE_FIELD.match(exc.field or "")
        if first is None:
            raise RequestError(400, exc.code, exc.message, "inputs") from None
        row, feature = first.groups()
        given_by = where.get(feature, feature)
        at = f"input {feature!r}" if given_by == feature else f"input {given_by!r} ({feature!r})"
        issue = exc.issues[0].message if exc.issues else exc.message
        more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
        raise RequestError(400, exc.code, f"{at}, row {row}: {issue}{more}", "inputs") from None
