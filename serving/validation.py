"""Request parsing and hand validation: a malformed request becomes a 4xx naming the field.

Requests are parsed with orjson and checked by hand against the served model's input
schema rather than by a pydantic model: the checks name the exact field
(`instances[3].amount`), know the model's features and its data contract (which
features are never null), and cost a few microseconds per row on the hot path. A
feature number must fit the model's 32-bit floats (`LARGEST_NUMBER`): a larger one, an
infinity or a NaN would be imputed silently, so it is refused. `serving.openapi_models`
documents the same shapes in the OpenAPI document, for the served model
(tests/unit/test_serving_openapi_agreement.py checks that the two accept the same
requests); refusals are `serving.errors.RequestError`. The body is parsed, and its
numbers told apart, by `serving.json_values`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from serving.errors import MAX_ISSUES, FieldIssue, RequestError
from serving.json_values import LARGEST_NUMBER, HugeInteger, as_integer, is_non_finite, json_kind

# --- the input schema -------------------------------------------------------------------


EntityType = Literal["string", "int64"]


Getter = Callable[[dict[str, Any]], tuple[Any, ...]]


def _getter(names: tuple[str, ...]) -> Getter:
    """The row's values of `names`, as a tuple, in one C call."""
    if not names:
        return lambda row: ()
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    get: Getter = operator.itemgetter(*names)
    return get


@dataclass(frozen=True)
class InputSchema:
    """What a feature row must hold: numeric and categorical features, the entity key, and
    the features the model's data contract says are never null."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    entity: str | None
    never_null: frozenset[str] = frozenset()
    """Features with no null in the contract learned at ingestion (none without a contract)."""
    features: frozenset[str] = field(init=False, repr=False, compare=False)
    """Every feature name."""
    numbers_of: Getter = field(init=False, repr=False, compare=False)
    """A row's numeric values, in one C call (built once: the hot path reads them)."""
    texts_of: Getter = field(init=False, repr=False, compare=False)
    """A row's categorical values."""
    required_texts_of: Getter = field(init=False, repr=False, compare=False)
    """A row's categorical values that may not be null (numeric nulls are always checked)."""

    def __post_init__(self) -> None:
        required_texts = tuple(n for n in self.categorical if n in self.never_null)
        for name, value in (
            ("features", frozenset((*self.numeric, *self.categorical))),
            ("numbers_of", _getter(self.numeric)),
            ("texts_of", _getter(self.categorical)),
            ("required_texts_of", _getter(required_texts)),
        ):
            object.__setattr__(self, name, value)

    def describe(self) -> dict[str, object]:
        """Feature names, JSON types and whether the contract allows null, as `GET /v1/models`
        shows them."""
        never = self.never_null
        features = [
            {"name": n, "type": kind, "nullable": n not in never}
            for names, kind in ((self.numeric, "number"), (self.categorical, "string"))
            for n in names
        ]
        return {"features": features, "entity": self.entity}


# --- predict requests -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PredictInput:
    """A validated predict request: feature rows or entity ids, and each row's entity."""

    mode: Literal["instances", "entities"]
    rows: list[dict[str, Any]]
    """Feature rows (instances mode); empty in entities mode until features are read."""
    entities: list[str | int | None]
    """Each row's entity value (None when an instance does not carry one)."""
    imputed: dict[int, list[str]] = field(default_factory=dict)
    """Per row (by index), the never-null features whose null is imputed (`impute_nulls`)."""


PredictMode = Literal["instances", "entities"]


def split_predict(document: Any, max_rows: int) -> tuple[PredictMode, list[Any]]:
    """Check the shape of a predict document: exactly one of the two modes, a sized batch.

    Raises:
        RequestError: 422 for a wrong shape or an empty batch; 413 for more rows than
            `max_rows`.
    """
    if not isinstance(document, dict):
        raise RequestError(
            422, "invalid_body", f"expected a JSON object, got {json_kind(document)}", "body"
        )
    unknown = [key for key in document if key not in ("instances", "entities")]
    if unknown:
        raise RequestError(
            422,
            "unknown_field",
            "unknown field: a predict request holds `instances` or `entities`",
            str(unknown[0]),
        )
    has_instances = document.get("instances") is not None
    has_entities = document.get("entities") is not None
    if has_instances == has_entities:
        which = "both were given" if has_instances else "neither was given"
        raise RequestError(
            422,
            "invalid_body",
            f"give exactly one of `instances` (feature rows) or `entities` (keys): {which}",
            "entities" if has_instances else "instances",
        )
    mode: PredictMode = "instances" if has_instances else "entities"
    items = document[mode]
    if not isinstance(items, list):
        raise RequestError(422, "wrong_type", f"expected an array, got {json_kind(items)}", mode)
    if not items:
        raise RequestError(422, "empty_batch", "at least one row is needed", mode)
    if len(items) > max_rows:
        raise RequestError(
            413,
            "too_many_rows",
            f"{len(items)} rows exceed the limit of {max_rows} per request",
            mode,
        )
    return mode, items


def validate_instances(
    items: list[Any], schema: InputSchema, impute_nulls: bool = False
) -> PredictInput:
    """Check feature rows: every feature, nothing else but the entity, JSON types, numbers
    a 32-bit float holds, and no null where the data contract allows none.

    A row of well-typed values in range passes on a fast path (a few C-level calls per
    row); only a row that fails it is examined value by value to name what is wrong.

    Args:
        impute_nulls: accept a null the contract forbids (the model imputes it) and list
            it in `PredictInput.imputed`, instead of refusing it.

    Raises:
        RequestError: 422 naming each bad field (up to `MAX_ISSUES`).
    """
    features = schema.features
    wanted = len(features)
    entity = schema.entity
    numbers_of = schema.numbers_of
    texts_of = schema.texts_of
    required_texts_of = schema.required_texts_of
    issues: list[FieldIssue] = []
    entities: list[str | int | None] = []
    imputed: dict[int, list[str]] = {}
    for i, row in enumerate(items):
        if type(row) is not dict:
            issues.append(
                FieldIssue(
                    f"instances[{i}]", "wrong_type", f"expected an object, got {json_kind(row)}"
                )
            )
            entities.append(None)
            continue
        key: str | int | None = None
        if entity is not None and entity in row:
            key = _entity_key(row[entity], None)
            if key is None:
                issues.append(_entity_issue(f"instances[{i}].{entity}", row[entity], None))
            keys_ok = len(row) == wanted + 1 and row.keys() - {entity} == features
        else:
            keys_ok = len(row) == wanted and row.keys() == features
        entities.append(key)
        if (
            keys_ok
            and _fine_numbers(numbers_of(row))  # a null always takes the slow path here
            and _fine_texts(texts_of(row))
            and None not in required_texts_of(row)
        ):
            continue
        if not keys_ok:
            _key_issues(row, schema, i, issues)
        nulls = _value_issues(row, schema, i, issues)
        if nulls:
            if impute_nulls:
                imputed[i] = nulls
            else:
                issues.extend(
                    FieldIssue(
                        f"instances[{i}].{name}",
                        "null_not_allowed",
                        "null is not allowed: the model's data contract says this feature "
                        "is never null",
                    )
                    for name in nulls
                )
        if len(issues) >= MAX_ISSUES:
            break
    if issues:
        raise RequestError.from_issues(422, issues[:MAX_ISSUES], max(0, len(issues) - MAX_ISSUES))
    return PredictInput("instances", items, entities, imputed)


_NUMBER_TYPES = frozenset({float, int})
_TEXT_TYPES = frozenset({str, type(None)})


def _fine_numbers(values: tuple[Any, ...]) -> bool:
    """All ints or floats within ±LARGEST_NUMBER, no NaN (None sends the row to the slow path).

    One sum of magnitudes answers it: a NaN, an infinity or too large a value makes it
    fail the bound (a NaN compares false). A row whose values are each in range but
    whose magnitudes add up past it takes the slow path, which checks them one by one.
    """
    if not set(map(type, values)) <= _NUMBER_TYPES:
        return False
    try:
        magnitude: float = sum(map(abs, values))
    except OverflowError:  # an integer beyond any float, added to a float
        return False
    return magnitude <= LARGEST_NUMBER


def _fine_texts(values: tuple[Any, ...]) -> bool:
    return set(map(type, values)) <= _TEXT_TYPES


def _value_issues(
    row: dict[str, Any], schema: InputSchema, i: int, issues: list[FieldIssue]
) -> list[str]:
    """Append the row's bad values to `issues`; return the features null against the contract."""
    never_null = schema.never_null
    nulls: list[str] = []
    for name in schema.numeric:
        if name not in row:
            continue  # named by `_key_issues`
        value: Any = row[name]
        kind = type(value)
        if kind is float or kind is int:
            if value != value or (kind is float and math.isinf(value)):
                issues.append(_number_issue(f"instances[{i}].{name}", value))
            elif abs(value) > LARGEST_NUMBER:
                issues.append(_too_large(f"instances[{i}].{name}", value))
        elif kind is HugeInteger:
            issues.append(_too_large(f"instances[{i}].{name}", value))
        elif value is None:
            if name in never_null:
                nulls.append(name)
        else:
            issues.append(_number_issue(f"instances[{i}].{name}", value))
    for name in schema.categorical:
        if name not in row:
            continue
        text: Any = row[name]
        if text is None:
            if name in never_null:
                nulls.append(name)
        elif type(text) is not str:
            issues.append(
                FieldIssue(
                    f"instances[{i}].{name}",
                    "wrong_type",
                    f"expected a string or null, got {json_kind(text)}",
                )
            )
    return sorted(nulls)


def _too_large(field: str, value: int | float | HugeInteger) -> FieldIssue:
    shown = repr(value) if isinstance(value, HugeInteger) else f"{value:.6g}"
    return FieldIssue(
        field,
        "out_of_range",
        f"{shown} is too large to be a feature value: at most ±{LARGEST_NUMBER:.8g} "
        "(the model computes in 32-bit floats)",
    )


def _key_issues(row: dict[str, Any], schema: InputSchema, i: int, out: list[FieldIssue]) -> None:
    features = schema.features
    for name in row:
        if name not in features and name != schema.entity:
            out.append(FieldIssue(f"instances[{i}].{name}", "unknown_feature", "unknown feature"))
    for name in sorted(features - row.keys()):
        hint = "" if name in schema.never_null else " (send null if unknown)"
        field = f"instances[{i}].{name}"
        out.append(FieldIssue(field, "missing_feature", f"missing feature{hint}"))


def _number_issue(field: str, value: object) -> FieldIssue:
    if is_non_finite(value):
        return FieldIssue(
            field, "not_finite", f"{json_kind(value)} is not allowed; send null if unknown"
        )
    return FieldIssue(field, "wrong_type", f"expected a number or null, got {json_kind(value)}")


def _entity_key(value: object, entity_type: EntityType | None) -> str | int | None:
    """The entity key a JSON value is, if it is one of the key type (None if not)."""
    if type(value) is str:
        return value if entity_type != "int64" and 0 < len(value) <= 256 else None
    number = as_integer(value)
    if number is not None and entity_type != "string" and -(2**63) <= number < 2**63:
        return number
    return None


def _entity_issue(field: str, value: object, entity_type: EntityType | None) -> FieldIssue:
    wanted = {"int64": "an integer", "string": "a non-empty string"}.get(
        entity_type or "", "a non-empty string or an integer"
    )
    return FieldIssue(field, "wrong_type", f"expected {wanted}, got {json_kind(value)}")


def validate_entities(
    items: list[Any], entity: str, entity_type: EntityType | None
) -> PredictInput:
    """Check entity rows: exactly the entity key, of the online store's key type.

    Raises:
        RequestError: 422 naming each bad field (up to `MAX_ISSUES`).
    """
    issues: list[FieldIssue] = []
    keys: list[str | int | None] = []
    for i, item in enumerate(items):
        if type(item) is not dict:
            issues.append(
                FieldIssue(
                    f"entities[{i}]", "wrong_type", f"expected an object, got {json_kind(item)}"
                )
            )
            continue
        for name in item:
            if name != entity:
                issues.append(
                    FieldIssue(
                        f"entities[{i}].{name}",
                        "unknown_key",
                        f"unknown key: an entity row holds only {entity!r}",
                    )
                )
        if entity not in item:
            issues.append(
                FieldIssue(f"entities[{i}].{entity}", "missing_key", "missing entity key")
            )
            continue
        value = item[entity]
        key = _entity_key(value, entity_type)
        if key is None:
            issues.append(_entity_issue(f"entities[{i}].{entity}", value, entity_type))
            continue
        keys.append(key)
        if len(issues) >= MAX_ISSUES:
            break
    if issues:
        raise RequestError.from_issues(422, issues[:MAX_ISSUES], max(0, len(issues) - MAX_ISSUES))
    return PredictInput("entities", [], keys)


# --- feedback -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedbackLabel:
    """A validated late label."""

    prediction_id: str
    label: str


def validate_feedback(
    document: Any, max_rows: int, classes: frozenset[str] | None
) -> list[FeedbackLabel]:
    """Check a feedback document; labels must be among `classes` when they are known.

    Raises:
        RequestError: 422 for a wrong shape, type or unknown class; 413 when too long.
    """
    _one_field_object(document, "labels", "a JSON object")
    items = document.get("labels")
    if items is None:
        raise RequestError(422, "invalid_body", "`labels` is required", "labels")
    if not isinstance(items, list):
        raise RequestError(
            422, "wrong_type", f"expected an array, got {json_kind(items)}", "labels"
        )
    if not items:
        raise RequestError(422, "empty_batch", "at least one label is needed", "labels")
    if len(items) > max_rows:
        raise RequestError(
            413, "too_many_rows", f"{len(items)} labels exceed the limit of {max_rows}", "labels"
        )
    issues: list[FieldIssue] = []
    out: list[FeedbackLabel] = []
    for i, item in enumerate(items):
        where = f"labels[{i}]"
        if type(item) is not dict:
            issues.append(
                FieldIssue(where, "wrong_type", f"expected an object, got {json_kind(item)}")
            )
            continue
        for name in item:
            if name not in ("prediction_id", "label"):
                issues.append(FieldIssue(f"{where}.{name}", "unknown_field", "unknown field"))
        prediction_id = item.get("prediction_id")
        label = item.get("label")
        if type(prediction_id) is not str or not 0 < len(prediction_id) <= 200:
            issues.append(
                FieldIssue(
                    f"{where}.prediction_id",
                    "missing_key" if prediction_id is None else "wrong_type",
                    f"expected the prediction_id of an answer, got {json_kind(prediction_id)}",
                )
            )
            continue
        number = as_integer(label)
        if number is not None:
            label = str(number)
        if type(label) is not str:
            issues.append(
                FieldIssue(
                    f"{where}.label",
                    "missing_key" if label is None else "wrong_type",
                    f"expected a class (string or integer), got {json_kind(label)}",
                )
            )
            continue
        if classes is not None and label not in classes:
            issues.append(
                FieldIssue(
                    f"{where}.label",
                    "unknown_class",
                    f"{label!r} is not one of the model's classes {sorted(classes)}",
                )
            )
            continue
        out.append(FeedbackLabel(prediction_id, label))
        if len(issues) >= MAX_ISSUES:
            break
    if issues:
        raise RequestError.from_issues(422, issues[:MAX_ISSUES], max(0, len(issues) - MAX_ISSUES))
    return out


# --- admin --------------------------------------------------------------------------------


def validate_pause(document: Any) -> str | None:
    """The reason of a pause request, `{"reason": "..."}` (null or left out: none given).

    Raises:
        RequestError: 422 for another shape.
    """
    _one_field_object(document, "reason", '{"reason": "..."}')
    reason = document.get("reason")
    if reason is not None and type(reason) is not str:
        raise RequestError(
            422, "wrong_type", f"expected a string, got {json_kind(reason)}", "reason"
        )
    return reason


def _one_field_object(document: Any, field: str, expected: str) -> None:
    """A body that is a JSON object holding at most `field` (feedback, a pause reason).

    Raises:
        RequestError: 422 naming the body or the unknown field.
    """
    if not isinstance(document, dict):
        raise RequestError(
            422, "invalid_body", f"expected {expected}, got {json_kind(document)}", "body"
        )
    for key in document:
        if key != field:
            raise RequestError(422, "unknown_field", f"unknown field: send `{field}`", str(key))
