"""One Open Inference Protocol (V2) tensor, checked by hand: its structure and its values.

A tensor is `{"name", "shape", "datatype", "data", "parameters"}`; `data` is flat
(row-major) or nested as the shape. Its values must be of its datatype: a number for
FP32 / FP64 (JSON `null` is a missing value, a `NaN` or an infinity is refused as in
`/v1`), an integer in range for an integer type (`487.0` is the integer 487, as JSON
Schema says, up to 2**53), a boolean for BOOL, a string for BYTES. What the values mean
(which feature, which row) is `serving.oip_validation`'s; refusals are `RequestError`s
(400) whose field is the place in the document (`inputs[2].data[5]`) and whose message
names the input and the row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from serving.errors import RequestError
from serving.json_values import HugeInteger, as_integer, is_non_finite, json_kind

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
DATATYPES: tuple[str, ...] = get_args(Datatype)
"""The protocol's tensor data types (FP16 has no JSON form: it is refused as unsupported)."""
INTEGER_RANGES = {
    **{f"INT{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64)},
    **{f"UINT{bits}": (0, 2**bits - 1) for bits in (8, 16, 32, 64)},
}
FLOATS = ("FP32", "FP64")
NUMERIC_TYPES = ("BOOL", *INTEGER_RANGES, *FLOATS)
"""What a numeric feature may be sent as."""
ENTITY_TYPES = ("BYTES", *INTEGER_RANGES)
"""What the entity key may be sent as."""
INTEGERS = "an integer type (INT8 to INT64, UINT8 to UINT64)"
BINARY = "binary_data_size"
"""The parameter of a tensor whose data is appended in binary (not supported)."""
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})


def refused(
    field: str, message: str, code: str = "invalid_input", status: int = 400
) -> RequestError:
    return RequestError(status, code, message, field)


def closed(item: dict[str, Any], keys: frozenset[str], where: str) -> None:
    """Refuse a key of `item` not among `keys`."""
    for key in item:
        if key not in keys:
            field = f"{where}.{key}" if where else str(key)
            raise refused(
                field, f"unknown field; expected {', '.join(sorted(keys))}", "unknown_field"
            )


def required(item: dict[str, Any], key: str, where: str) -> Any:
    value = item.get(key)
    if value is None:
        raise refused(f"{where}.{key}", "required field is missing", "missing_field")
    return value


def parameters(value: Any, where: str) -> dict[str, Any]:
    """Parameters: string keys, string, number or boolean values (null: none given). They
    are ignored, so any JSON number will do, but not a `NaN` or an infinity."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise refused(where, f"expected an object of parameters, got {json_kind(value)}")
    for key, item in value.items():
        fine = isinstance(item, str | bool | int | HugeInteger) or (
            isinstance(item, float) and math.isfinite(item)
        )
        if not fine:
            raise refused(
                f"{where}.{key}",
                f"a parameter is a string, a number or a boolean, got {json_kind(item)}",
                "wrong_type",
            )
    return value


# --- the structure ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    datatype: str
    data: list[Any]
    where: str
    """Its place in the document: `inputs[2]`."""


def tensor(item: Any, where: str) -> Tensor:
    """The structure of one input tensor (what it holds is checked by its role)."""
    if not isinstance(item, dict):
        raise refused(where, f"expected an input tensor object, got {json_kind(item)}")
    closed(item, _INPUT_KEYS, where)
    name = required(item, "name", where)
    if not isinstance(name, str):
        raise refused(f"{where}.name", f"expected a string, got {json_kind(name)}", "wrong_type")
    shape = required(item, "shape", where)
    if not isinstance(shape, list):
        raise refused(
            f"{where}.shape", f"input {name!r}: expected an array, got {json_kind(shape)}"
        )
    dimensions = [as_integer(size) for size in shape]
    for j, size in enumerate(dimensions):
        if size is None or size < 0:
            raise refused(
                f"{where}.shape[{j}]",
                f"input {name!r}: a dimension is a non-negative integer, got {json_kind(shape[j])}",
            )
    datatype = required(item, "datatype", where)
    if not isinstance(datatype, str):
        raise refused(
            f"{where}.datatype", f"input {name!r}: expected a string, got {json_kind(datatype)}"
        )
    if datatype not in DATATYPES:
        raise refused(
            f"{where}.datatype",
            f"input {name!r}: unknown datatype {datatype!r}; one of {', '.join(DATATYPES)}",
        )
    if BINARY in parameters(item.get("parameters"), f"{where}.parameters"):
        raise refused(
            f"{where}.parameters.{BINARY}",
            f"input {name!r}: binary tensor data is not supported; send `data` as JSON "
            "(tritonclient: set_data_from_numpy(array, binary_data=False))",
            "unsupported",
        )
    data = required(item, "data", where)
    if not isinstance(data, list):
        raise refused(
            f"{where}.data", f"input {name!r}: expected an array of values, got {json_kind(data)}"
        )
    return Tensor(name, tuple(d for d in dimensions if d is not None), datatype, data, where)


def elements(tensor: Tensor) -> list[Any]:
    """The tensor's values in row-major order: `data` flat, or nested as the shape."""
    shape, data, name = tensor.shape, tensor.data, tensor.name
    total = math.prod(shape)
    if data and type(data[0]) is list:
        flat: list[Any] = []
        _unnest(data, shape, f"{tensor.where}.data", name, flat)
        return flat
    for j, value in enumerate(data):
        if type(value) is list or type(value) is dict:
            raise refused(
                f"{tensor.where}.data[{j}]",
                f"input {name!r}: flat data holds values, got {json_kind(value)} "
                "(or nest every row)",
            )
    if len(data) != total:
        raise refused(
            f"{tensor.where}.data",
            f"input {name!r}: shape {list(shape)} holds {total} values, data has {len(data)}",
            "shape_mismatch",
        )
    return data


def _unnest(value: Any, shape: tuple[int, ...], where: str, name: str, out: list[Any]) -> None:
    if not shape:
        if type(value) is list:
            raise refused(where, f"input {name!r}: data is nested deeper than the shape")
        out.append(value)
        return
    if type(value) is not list or len(value) != shape[0]:
        got = f"{len(value)} items" if type(value) is list else json_kind(value)
        raise refused(
            where,
            f"input {name!r}: expected an array of {shape[0]} items (shape {list(shape)}), "
            f"got {got}",
            "shape_mismatch",
        )
    for i, item in enumerate(value):
        _unnest(item, shape[1:], f"{where}[{i}]", name, out)


def element_field(tensor: Tensor, index: int) -> str:
    """Where the `index`-th value (row-major) is in the document."""
    if not tensor.data or type(tensor.data[0]) is not list:
        return f"{tensor.where}.data[{index}]"
    parts = []
    for size in reversed(tensor.shape):
        index, at = divmod(index, size)
        parts.append(f"[{at}]")
    return f"{tensor.where}.data" + "".join(reversed(parts))


# --- the values -------------------------------------------------------------------------


def _float_ok(value: Any) -> bool:
    return value is None or type(value) is int or (type(value) is float and math.isfinite(value))


def _integer_ok(low: int, high: int) -> Callable[[Any], bool]:
    def fine(value: Any) -> bool:
        if value is None:
            return True
        number = as_integer(value)
        return number is not None and low <= number <= high

    return fine


def _checker(datatype: str) -> tuple[Callable[[Any], bool], str]:
    """A test of one value of `datatype` (null passes: a missing value), and its wording."""
    if datatype in FLOATS:
        return _float_ok, "a finite number or null"
    if datatype == "BOOL":
        return (lambda v: v is None or type(v) is bool), "a boolean or null"
    if datatype == "BYTES":
        return (lambda v: v is None or type(v) is str), "a string or null"
    low, high = INTEGER_RANGES[datatype]
    return _integer_ok(low, high), f"an integer in [{low}, {high}] or null"


def checked_values(
    tensor: Tensor, values: list[Any], columns: int, label: Callable[[int], str]
) -> list[Any]:
    """The values, each checked against the datatype (BOOL as 0 / 1, integral floats of
    an integer type as integers).

    Args:
        columns: values per row (for the row a refusal names); `label(column)` words
            the column.
    """
    datatype = tensor.datatype
    fine, wanted = _checker(datatype)
    if not all(map(fine, values)):
        index = next(j for j, v in enumerate(values) if not fine(v))
        value = values[index]
        where = f"input {tensor.name!r}, row {index // columns}{label(index % columns)}"
        if datatype != "BYTES" and is_non_finite(value):
            code, message = "not_finite", f"{json_kind(value)} is not allowed; send null if unknown"
        elif datatype != "BYTES" and (
            isinstance(value, HugeInteger) or (datatype not in FLOATS and type(value) is int)
        ):
            code, message = "out_of_range", f"expected {wanted} ({datatype}), got {value!r}"
        else:
            code, message = "wrong_type", f"expected {wanted} ({datatype}), got {json_kind(value)}"
        raise refused(element_field(tensor, index), f"{where}: {message}", code)
    if datatype == "BOOL":
        return [v if v is None else int(v) for v in values]
    if datatype in INTEGER_RANGES and any(type(v) is float for v in values):
        return [v if v is None else as_integer(v) for v in values]
    return values
