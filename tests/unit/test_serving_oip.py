"""Open Inference Protocol requests to feature rows, and answers back (pure functions)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from serving.errors import RequestError
from serving.json_values import parse_json
from serving.oip import InferTarget, infer_body, infer_target, refused
from serving.oip_validation import OUTPUTS, TENSOR_INPUT, parse_infer
from serving.validation import InputSchema

SCHEMA = InputSchema(numeric=("amount", "hour"), categorical=("channel",), entity="card_id")
ROWS = [
    {"amount": 12.5, "hour": 3, "channel": "pos"},
    {"amount": None, "hour": 23, "channel": None},
]


def column(
    name: str, datatype: str, data: list[Any], shape: list[int] | None = None
) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def columnar() -> dict[str, Any]:
    return {
        "inputs": [
            column("amount", "FP64", [12.5, None]),
            column("hour", "INT64", [[3], [23]], [2, 1]),
            column("channel", "BYTES", ["pos", None]),
        ]
    }


def parsed(document: Any, max_rows: int = 10) -> Any:
    return parse_infer(document, SCHEMA, max_rows)


def refusal(document: Any, max_rows: int = 10) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parsed(document, max_rows)
    return caught.value


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/v2/models/fraud/infer", InferTarget("fraud", None)),
        ("/v2/models/fraud/versions/3/infer", InferTarget("fraud", "3")),
        ("/v2/models/fraud", None),
        ("/v2/models/fraud/versions/3/infer/", None),
        ("/v2/models//infer", None),
        ("/v1/predict", None),
    ],
)
def test_inference_paths_name_the_model_and_the_version(
    path: str, target: InferTarget | None
) -> None:
    assert infer_target(path) == target
    if target is not None:
        assert target.route.endswith("/infer") and "{name}" in target.route


def test_one_input_per_feature_becomes_the_rows_of_v1() -> None:
    request = parsed({**columnar(), "id": "abc"})
    assert request.rows.rows == ROWS
    assert request.rows.entities == [None, None]
    assert (request.id, request.outputs) == ("abc", OUTPUTS)


def test_the_numeric_tensor_flat_or_nested_gives_the_same_rows() -> None:
    categorical = column("channel", "BYTES", ["pos", None])
    for data in ([12.5, 3, None, 23], [[12.5, 3], [None, 23]]):
        tensor = column(TENSOR_INPUT, "FP32", data, [2, 2])
        assert parsed({"inputs": [tensor, categorical]}).rows.rows == ROWS


def test_booleans_integers_and_the_entity_key() -> None:
    document = columnar()
    document["inputs"][1] = column("hour", "BOOL", [True, False])
    document["inputs"].append(column("card_id", "BYTES", ["card_1", None]))
    request = parsed(document)
    assert [row["hour"] for row in request.rows.rows] == [1, 0]
    assert request.rows.entities == ["card_1", None]
    assert "card_id" not in request.rows.rows[1]  # routed by the request id
    document["inputs"][3] = column("card_id", "UINT8", [7, 8])
    assert parsed(document).rows.entities == [7, 8]


def test_requested_outputs_are_answered_in_their_order() -> None:
    document = {**columnar(), "outputs": [{"name": "prediction"}, {"name": "probabilities"}]}
    assert parsed(document).outputs == ("prediction", "probabilities")


def changed(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    document = columnar()
    target: Any = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return document


def added(*inputs: dict[str, Any]) -> dict[str, Any]:
    document = columnar()
    document["inputs"] += list(inputs)
    return document


HUGE = parse_json(b"1" + b"0" * 400)
"""An integer literal of 401 digits, as the service reads it."""
BAD: list[tuple[str, Any, int, str, tuple[str, ...]]] = [
    ("not an object", [], 400, "body", ("JSON object",)),
    ("unknown field", {**columnar(), "inputz": 1}, 400, "inputz", ("unknown field",)),
    ("id not a string", {**columnar(), "id": 7}, 400, "id", ("string",)),
    ("no inputs", {"inputs": []}, 400, "inputs", ("empty",)),
    (
        "unknown input",
        added(column("colour", "BYTES", ["a", "b"])),
        400,
        "inputs[3].name",
        ("'colour'", "amount, hour, channel", TENSOR_INPUT, "'card_id'"),
    ),
    (
        "given twice",
        added(column(TENSOR_INPUT, "FP32", [1, 2, 3, 4], [2, 2])),
        400,
        "inputs[3].name",
        ("'amount'", "twice"),
    ),
    ("missing feature", {"inputs": columnar()["inputs"][1:]}, 400, "inputs", ("'amount'",)),
    (
        "unknown datatype",
        changed(("inputs", 0, "datatype"), "FP99"),
        400,
        "inputs[0].datatype",
        ("'FP99'",),
    ),
    (
        "bytes for a number",
        changed(("inputs", 0, "datatype"), "BYTES"),
        400,
        "inputs[0].datatype",
        ("'amount'", "numeric"),
    ),
    (
        "number for a category",
        changed(("inputs", 2, "datatype"), "FP32"),
        400,
        "inputs[2].datatype",
        ("'channel'", "BYTES"),
    ),
    ("fp16", changed(("inputs", 0, "datatype"), "FP16"), 400, "inputs[0].datatype", ("FP16",)),
    (
        "negative dimension",
        changed(("inputs", 0, "shape"), [-1]),
        400,
        "inputs[0].shape[0]",
        ("non-negative",),
    ),
    (
        "rows disagree",
        changed(("inputs", 2), column("channel", "BYTES", ["a"])),
        400,
        "inputs[2].shape[0]",
        ("'channel' has 1 rows", "'amount' has 2"),
    ),
    (
        "shape of a feature",
        changed(("inputs", 0, "shape"), [2, 2]),
        400,
        "inputs[0].shape",
        ("[2] or [2, 1]",),
    ),
    (
        "data shorter",
        changed(("inputs", 0, "data"), [1.5]),
        400,
        "inputs[0].data",
        ("holds 2 values", "has 1"),
    ),
    (
        "nested rows of the wrong size",
        changed(("inputs", 1, "data"), [[3], [4, 5]]),
        400,
        "inputs[1].data[1]",
        ("array of 1 items",),
    ),
    (
        "nested too deep",
        changed(("inputs", 1, "data"), [[3], [[4]]]),
        400,
        "inputs[1].data[1][0]",
        ("deeper",),
    ),
    (
        "mixed flat and nested",
        changed(("inputs", 0, "data"), [1.5, [2.5]]),
        400,
        "inputs[0].data[1]",
        ("flat data",),
    ),
    (
        "a string for FP64",
        changed(("inputs", 0, "data"), [1.5, "2"]),
        400,
        "inputs[0].data[1]",
        ("'amount', row 1", "a string"),
    ),
    (
        "a boolean for FP64",
        changed(("inputs", 0, "data"), [True, 1.0]),
        400,
        "inputs[0].data[0]",
        ("row 0", "a boolean"),
    ),
    (
        "a float for INT64",
        changed(("inputs", 1, "data"), [[3], [2.5]]),
        400,
        "inputs[1].data[1][0]",
        ("'hour', row 1", "integer"),
    ),
    (
        "INT8 out of range",
        changed(("inputs", 1), column("hour", "INT8", [3, 300])),
        400,
        "inputs[1].data[1]",
        ("[-128, 127]",),
    ),
    (
        "a number for BYTES",
        changed(("inputs", 2, "data"), ["pos", 7]),
        400,
        "inputs[2].data[1]",
        ("'channel', row 1",),
    ),
    (
        "too large for a 32-bit float",
        changed(("inputs", 0, "data"), [12.5, 1e39]),
        400,
        "inputs[0].data[1]",
        ("'amount', row 1", "too large", "32-bit"),
    ),
    (
        "too large in the tensor",
        {
            "inputs": [
                column(TENSOR_INPUT, "FP64", [[1, 2], [3, 4e38]], [2, 2]),
                column("channel", "BYTES", ["a", "b"]),
            ]
        },
        400,
        "inputs[0].data[1][1]",
        (f"input {TENSOR_INPUT!r} ('hour'), row 1", "too large"),
    ),
    (
        "an integer of 401 digits",
        changed(("inputs", 1, "data"), [[3], [HUGE]]),
        400,
        "inputs[1].data[1][0]",
        ("'hour', row 1", "401 digits"),
    ),
    (
        "an empty entity key",
        added(column("card_id", "BYTES", ["c", ""])),
        400,
        "inputs[3].data[1]",
        ("'card_id', row 1",),
    ),
    (
        "binary data",
        changed(("inputs", 0, "parameters"), {"binary_data_size": 16}),
        400,
        "inputs[0].parameters.binary_data_size",
        ("binary",),
    ),
    (
        "a parameter that is an array",
        {**columnar(), "parameters": {"x": [1]}},
        400,
        "parameters.x",
        ("string, a number or a boolean",),
    ),
    (
        "unknown output",
        {**columnar(), "outputs": [{"name": "logits"}]},
        400,
        "outputs[0].name",
        ("'logits'",),
    ),
    (
        "output twice",
        {**columnar(), "outputs": [{"name": "prediction"}] * 2},
        400,
        "outputs[1].name",
        ("twice",),
    ),
    (
        "no rows",
        {"inputs": [column("amount", "FP32", [], [0])]},
        400,
        "inputs[0].shape[0]",
        ("no rows",),
    ),
]


@pytest.mark.parametrize(
    ("document", "status", "field", "words"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_a_bad_request_is_refused_naming_the_input_and_the_row(
    document: Any, status: int, field: str, words: tuple[str, ...]
) -> None:
    error = refusal(copy.deepcopy(document))
    assert (error.status, error.field) == (status, field), error.message
    for word in words:
        assert word in error.message, (word, error.message)


def test_too_many_rows_is_a_413_and_non_finite_numbers_are_named() -> None:
    assert refusal(columnar(), max_rows=1).status == 413
    for token in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        body = orjson.dumps(columnar()).replace(b"12.5", token, 1)
        error = refusal(parse_json(body))
        assert (error.status, error.field) == (400, "inputs[0].data[0]")
        assert "row 0" in error.message and "finite" in error.message


CONTRACT = InputSchema(
    numeric=("amount", "hour"),
    categorical=("channel",),
    entity="card_id",
    never_null=frozenset({"amount", "channel"}),
)
"""The data contract says `amount` and `channel` are never null; `hour` may be."""


def test_nulls_follow_the_data_contract_as_in_v1() -> None:
    """Refused at the value (`columnar()` has a null `amount` and `channel` in row 1), or
    imputed and flagged with `impute_nulls`; a null where the contract allows one passes."""
    with pytest.raises(RequestError) as caught:
        parse_infer(columnar(), CONTRACT, 10)
    error = caught.value
    assert (error.status, error.code, error.field) == (400, "null_not_allowed", "inputs[0].data[1]")
    assert "'amount', row 1" in error.message and "(and 1 more)" in error.message
    assert parse_infer(columnar(), CONTRACT, 10, impute_nulls=True).rows.imputed == {
        1: ["amount", "channel"]
    }
    tensor = column(TENSOR_INPUT, "FP32", [[12.5, 3], [None, 23]], [2, 2])
    refused = refusal_of({"inputs": [tensor, column("channel", "BYTES", ["a", "b"])]})
    assert (refused.code, refused.field) == ("null_not_allowed", "inputs[0].data[1][0]")
    assert f"input {TENSOR_INPUT!r} ('amount'), row 1" in refused.message
    hour_only = {"inputs": [*columnar()["inputs"][1:2], column("amount", "FP32", [1, 2])]}
    hour_only["inputs"].append(column("channel", "BYTES", ["a", "b"]))
    assert parse_infer(hour_only, CONTRACT, 10).rows.rows[1]["hour"] == 23


def refusal_of(document: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse_infer(document, CONTRACT, 10)
    return caught.value


def test_integral_numbers_are_integers_and_non_finite_ones_are_not_finite() -> None:
    """`3.0` is the integer 3 (JSON Schema's meaning), for an integer type and a dimension;
    a `NaN` is `not_finite`, as in `/v1`."""
    document = columnar()
    document["inputs"][1] = column("hour", "INT64", [3.0, 23], [2.0])
    rows = parsed(document).rows.rows
    assert [row["hour"] for row in rows] == [3, 23] and type(rows[0]["hour"]) is int
    document["inputs"][1] = column("hour", "INT64", [3.0, 2.0**60])
    assert refusal(document).field == "inputs[1].data[1]"
    body = orjson.dumps(columnar()).replace(b"12.5", b"NaN", 1)
    assert refusal(parse_json(body)).code == "not_finite"


def test_the_answer_holds_the_requested_outputs_and_who_answered() -> None:
    body = orjson.loads(
        infer_body(
            "fraud",
            "client-id",
            "req-1",
            OUTPUTS,
            ["1", "2", "1"],
            [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]],
            [0, 1, 0],
        )
    )
    assert (body["model_name"], body["model_version"], body["id"]) == ("fraud", "1,2", "client-id")
    assert body["parameters"] == {"request_id": "req-1"}
    probabilities, prediction, version, imputed = body["outputs"]
    assert probabilities == {
        "name": "probabilities",
        "datatype": "FP32",
        "shape": [3, 2],
        "data": [0.9, 0.1, 0.2, 0.8, 0.6, 0.4],
    }
    assert (prediction["datatype"], prediction["data"]) == ("INT64", [0, 1, 0])
    assert (version["datatype"], version["shape"], version["data"]) == (
        "BYTES",
        [3],
        ["1", "2", "1"],
    )
    assert (imputed["name"], imputed["datatype"], imputed["data"]) == ("imputed", "BYTES", [""] * 3)
    flagged = infer_body(
        "m", "r", "r", ("imputed",), ["1"] * 2, [[1.0, 0.0]] * 2, [0, 0], {1: ["a", "b"]}
    )
    assert orjson.loads(flagged)["outputs"][0]["data"] == ["", "a,b"]
    text = orjson.loads(infer_body("m", "r", "r", ("prediction",), ["1"], [[1.0, 0.0]], ["cat"]))
    assert text["model_version"] == "1"
    assert text["outputs"] == [
        {"name": "prediction", "datatype": "BYTES", "shape": [1], "data": ["cat"]}
    ]


def test_a_refusal_is_the_protocols_error_document() -> None:
    error = RequestError(401, "unauthorized", "header X-API-Key is required", "X-API-Key")
    answer = refused(error, "req-1")
    assert answer.status == 401
    assert orjson.loads(answer.body) == {"error": "X-API-Key: header X-API-Key is required"}
    assert answer.headers["x-request-id"] == "req-1"
