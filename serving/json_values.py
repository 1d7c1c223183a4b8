"""JSON as the service reads it: request bodies parsed, and what their values are.

Shared by every hand validator (`serving.validation` for `/v1`, `serving.oip_validation`
for `/v2`): the body is parsed with orjson, and what orjson refuses (`NaN`, `Infinity`,
numbers overflowing a double, integers beyond 64 bits) is read again by the standard
parser into stand-ins (`NonFinite`, `HugeInteger`) that validation refuses at their
field, naming it. A number a model reads must fit its 32-bit floats (`LARGEST_NUMBER`);
an integer is what JSON Schema calls one, `487` and `487.0` alike (`as_integer`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from serving.errors import RequestError

LARGEST_NUMBER = 3.4028234663852886e38
"""The largest magnitude a numeric feature may have: the model computes in 32-bit floats,
where a larger number becomes infinite and would be imputed silently."""
EXACT_INTEGER = 2**53
"""Floats hold every integer up to this magnitude exactly."""
_LONGEST_INTEGER = 40
"""Digits beyond which an integer literal is not even parsed (LARGEST_NUMBER has 39)."""


class NonFinite:
    """Stands for a `NaN` / `Infinity` token, so validation can name where it was."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return self.token


class HugeInteger:
    """Stands for an integer literal of more than `_LONGEST_INTEGER` digits.

    Far beyond any number a feature may hold, so it is never turned into an `int`
    (Python refuses more than 4,300 digits, and arithmetic on such numbers is slow);
    validation names where it was.
    """

    __slots__ = ("digits",)

    def __init__(self, token: str) -> None:
        self.digits = len(token.lstrip("-"))

    def __repr__(self) -> str:
        return f"an integer of {self.digits} digits"


def _parse_integer(token: str) -> int | HugeInteger:
    return int(token) if len(token) <= _LONGEST_INTEGER else HugeInteger(token)


def parse_json(body: bytes) -> Any:
    """The request document.

    orjson refuses `NaN`, `Infinity`, numbers overflowing a double and integers beyond
    64 bits outright; the standard parser is then tried so such a value can be reported
    at its field (validation refuses it there). Anything neither parser reads is
    malformed.

    Raises:
        RequestError: 400 `malformed_json` with the parser's position.
    """
    if not body:
        raise RequestError(400, "malformed_json", "the request body is empty: send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        first = exc
    try:
        return json.loads(body, parse_constant=NonFinite, parse_int=_parse_integer)
    except (ValueError, RecursionError):
        raise RequestError(
            400, "malformed_json", f"the request body is not valid JSON: {first}"
        ) from None


def json_kind(value: object) -> str:
    """How a JSON value reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_non_finite(value):
        return f"the non-finite number {value}"
    if isinstance(value, HugeInteger):
        return repr(value)
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_non_finite(value: object) -> bool:
    """A `NaN` or an infinity (a token, or a literal too large for a double)."""
    return isinstance(value, NonFinite) or (isinstance(value, float) and not math.isfinite(value))


def as_integer(value: object) -> int | None:
    """The integer a JSON number is: `487` and `487.0` alike (JSON Schema's "integer").

    An integral float only up to 2**53, where floats hold integers exactly: beyond, it
    may be a rounded literal (orjson reads integers past 64 bits as floats).
    """
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer() and abs(value) <= EXACT_INTEGER:
        return int(value)
    return None
