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

`data` is flat (row-major) or nested as the shape (one tensor's structure and values:
`serving.oip_tensors`). The rows then pass `/v1`'s feature check, so the data contract
holds as it does there: JSON `null` is a missing value where the contract allows one
(else refused, or imputed and listed in the `imputed` output with
`serving.impute_nulls`), and a number must fit a 32-bit float. A refusal is a
`RequestError` (400, or 413 for too many rows) whose message names the input and the
row, and whose field is the place in the document (`inputs[2].data[5]`); the service
renders it as the protocol's `{"error": message}`. `serving.oip_models` documents the
same shapes for the served model (the agreement test,
tests/unit/test_serving_openapi_agreement.py, keeps the two in step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from serving.errors import RequestError
from serving.json_values import json_kind
from serving.oip_tensors import (
    ENTITY_TYPES,
    FLOATS,
    INTEGERS,
    NUMERIC_TYPES,
    Tensor,
    checked_values,
    closed,
    element_field,
    elements,
    parameters,
    refused,
    required,
    tensor,
)
from serving.validation import InputSchema, PredictInput, validate_instances

TENSOR_INPUT = "numeric_features"
"""The name of the tensor form's `[rows, n_numeric]` input."""
OutputName = Literal["probabilities", "prediction", "model_version", "imputed"]
OUTPUTS: tuple[str, ...] = get_args(OutputName)
"""Every output, in the order a response lists them when none were requested."""
PROBABILITIES, PREDICTION, MODEL_VERSION, IMPUTED = OUTPUTS

_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_OUTPUT_KEYS = frozenset({"name", "parameters"})


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A checked inference request: the feature rows, and what the answer must hold."""

    id: str | None
    """The request's `id` (echoed in the answer)."""
    rows: PredictInput
    """The feature rows, checked against the schema as `/v1/predict` checks instances."""
    outputs: tuple[str, ...]
    """The outputs to answer, in order."""


# --- the document ---------------------------------------------------------------------


def parse_infer(
    document: Any, schema: InputSchema, max_rows: int, impute_nulls: bool = False
) -> InferRequest:
    """Check an inference request against the served model's schema; its feature rows.

    Args:
        impute_nulls: accept a null the data contract forbids (the model imputes it; the
            rows' `imputed` lists it), as `/v1/predict` does, instead of refusing it.

    Raises:
        RequestError: 400 naming the input, the row and the field; 413 for more rows
            than `max_rows`.
    """
    if not isinstance(document, dict):
        raise refused("body", f"expected a JSON object, got {json_kind(document)}", "invalid_body")
    closed(document, _REQUEST_KEYS, "")
    given_id = document.get("id")
    if given_id is not None and not isinstance(given_id, str):
        raise refused("id", f"expected a string, got {json_kind(given_id)}", "wrong_type")
    parameters(document.get("parameters"), "parameters")
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        got = "an empty array" if tensors == [] else json_kind(tensors)
        raise refused("inputs", f"expected an array of input tensors, got {got}")
    columns = _Columns(schema, max_rows)
    for k, item in enumerate(tensors):
        columns.add(item, f"inputs[{k}]")
    checked = _feature_rows(columns.rows(), schema, columns, impute_nulls)
    return InferRequest(given_id, checked, _outputs(document))


def _outputs(document: dict[str, Any]) -> tuple[str, ...]:
    requested = document.get("outputs")
    if requested is None:
        return OUTPUTS
    if not isinstance(requested, list):
        raise refused("outputs", f"expected an array, got {json_kind(requested)}")
    names: list[str] = []
    for k, item in enumerate(requested):
        where = f"outputs[{k}]"
        if not isinstance(item, dict):
            raise refused(where, f"expected an object, got {json_kind(item)}")
        closed(item, _OUTPUT_KEYS, where)
        name = required(item, "name", where)
        if not isinstance(name, str):
            raise refused(
                f"{where}.name", f"expected a string, got {json_kind(name)}", "wrong_type"
            )
        if name not in OUTPUTS or name in names:
            problem = "requested twice" if name in names else "unknown output"
            raise refused(
                f"{where}.name", f"{problem} {name!r}: the outputs are {', '.join(OUTPUTS)}"
            )
        parameters(item.get("parameters"), f"{where}.parameters")
        names.append(name)
    return tuple(names) or OUTPUTS


# --- inputs to rows -------------------------------------------------------------------


class _Columns:
    """The inputs of one request, gathered into one column per feature."""

    def __init__(self, schema: InputSchema, max_rows: int) -> None:
        self.schema = schema
        self.max_rows = max_rows
        self.values: dict[str, list[Any]] = {}
        self.source: dict[str, tuple[Tensor, int, int]] = {}
        """The input that gave each feature, its column in it and its width (to name
        where a value the feature check refuses is)."""
        self.count: int | None = None
        self._first = ""
        self._tensor_form = TENSOR_INPUT not in schema.features and bool(schema.numeric)

    def add(self, item: Any, where: str) -> None:
        given = tensor(item, where)
        schema, name = self.schema, given.name
        if name in schema.numeric:
            wanted = f"FP32, FP64, {INTEGERS} or BOOL"
            self._column(given, NUMERIC_TYPES, f"a numeric feature: datatype {wanted}")
        elif name in schema.categorical:
            self._column(given, ("BYTES",), "a categorical feature: datatype BYTES")
        elif name == schema.entity:
            self._column(given, ENTITY_TYPES, f"the entity key: datatype BYTES or {INTEGERS}")
        elif name == TENSOR_INPUT and self._tensor_form:
            self._numeric_tensor(given)
        else:
            raise refused(
                f"{where}.name",
                f"unknown input {name!r}: the inputs are the features "
                f"{', '.join((*schema.numeric, *schema.categorical))}"
                + (f" (or the tensor {TENSOR_INPUT!r})" if self._tensor_form else "")
                + (f" and the entity key {schema.entity!r}" if schema.entity else ""),
                "unknown_input",
            )

    def _rows_of(self, tensor: Tensor) -> int:
        if not tensor.shape:
            raise refused(
                f"{tensor.where}.shape", f"input {tensor.name!r}: the shape has no dimensions"
            )
        rows = tensor.shape[0]
        if self.count is None:
            if rows == 0:
                raise refused(
                    f"{tensor.where}.shape[0]", f"input {tensor.name!r}: no rows", "empty_batch"
                )
            if rows > self.max_rows:
                raise refused(
                    f"{tensor.where}.shape[0]",
                    f"input {tensor.name!r}: {rows} rows exceed the limit of {self.max_rows} "
                    "per request",
                    "too_many_rows",
                    413,
                )
            self.count, self._first = rows, tensor.name
        elif rows != self.count:
            raise refused(
                f"{tensor.where}.shape[0]",
                f"input {tensor.name!r} has {rows} rows, input {self._first!r} has "
                f"{self.count}: every input holds one value per row",
                "shape_mismatch",
            )
        return rows

    def _kept(
        self, feature: str, tensor: Tensor, values: list[Any], column: int = 0, width: int = 1
    ) -> None:
        if feature in self.values:
            raise refused(
                f"{tensor.where}.name",
                f"feature {feature!r} is given twice (by {self.source[feature][0].name!r} and "
                f"{tensor.name!r})",
                "duplicate_input",
            )
        self.values[feature] = values
        self.source[feature] = (tensor, column, width)

    def _column(self, tensor: Tensor, datatypes: tuple[str, ...], role: str) -> None:
        if tensor.datatype not in datatypes:
            raise refused(
                f"{tensor.where}.datatype",
                f"input {tensor.name!r} is {role}, not {tensor.datatype}",
                "wrong_datatype",
            )
        rows = self._rows_of(tensor)
        if tensor.shape not in ((rows,), (rows, 1)):
            raise refused(
                f"{tensor.where}.shape",
                f"input {tensor.name!r} is one feature: shape [{rows}] or [{rows}, 1], "
                f"not {list(tensor.shape)}",
                "shape_mismatch",
            )
        values = checked_values(tensor, elements(tensor), 1, lambda _: "")
        self._kept(tensor.name, tensor, values)

    def _numeric_tensor(self, tensor: Tensor) -> None:
        numeric = self.schema.numeric
        if tensor.datatype not in FLOATS:
            raise refused(
                f"{tensor.where}.datatype",
                f"input {tensor.name!r}: datatype FP32 or FP64, not {tensor.datatype}",
                "wrong_datatype",
            )
        rows = self._rows_of(tensor)
        if tensor.shape != (rows, len(numeric)):
            raise refused(
                f"{tensor.where}.shape",
                f"input {tensor.name!r} holds the {len(numeric)} numeric features of each "
                f"row: shape [{rows}, {len(numeric)}], not {list(tensor.shape)}",
                "shape_mismatch",
            )
        values = checked_values(
            tensor, elements(tensor), len(numeric), lambda j: f", column {j} ({numeric[j]!r})"
        )
        width = len(numeric)
        for j, feature in enumerate(numeric):
            self._kept(feature, tensor, values[j::width], j, width)

    def rows(self) -> list[dict[str, Any]]:
        schema = self.schema
        for feature in (*schema.numeric, *schema.categorical):
            if feature not in self.values:
                kind = "numeric" if feature in schema.numeric else "categorical (BYTES)"
                raise refused(
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
    rows: list[dict[str, Any]], schema: InputSchema, columns: _Columns, impute_nulls: bool
) -> PredictInput:
    """`/v1`'s check of the rows against the schema, its refusal worded in inputs and rows
    and placed at the value it refuses (`inputs[0].data[3]`).

    What it can refuse here is what the datatypes let through: a number beyond a 32-bit
    float, a null the data contract forbids (unless `impute_nulls`), an entity key that
    is empty or too long.
    """
    try:
        return validate_instances(rows, schema, impute_nulls)
    except RequestError as exc:
        first = _INSTANCE_FIELD.match(exc.field or "")
        if first is None or first.group(2) not in columns.source:
            raise RequestError(400, exc.code, exc.message, "inputs") from None
        row, feature = int(first.group(1)), first.group(2)
        given, column, width = columns.source[feature]
        named = given.name
        at = f"input {feature!r}" if named == feature else f"input {named!r} ({feature!r})"
        issue = exc.issues[0].message if exc.issues else exc.message
        more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
        field = element_field(given, row * width + column)
        raise RequestError(400, exc.code, f"{at}, row {row}: {issue}{more}", field) from None
