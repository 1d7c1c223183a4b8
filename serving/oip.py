"""The Open Inference Protocol (V2 REST) in the service's words: paths, answers, metadata.

KServe, Seldon MLServer and Triton speak this protocol, so their clients (tritonclient,
the kserve SDK, MLServer's types) talk to the service unchanged. The endpoints are in
`serving.oip_routes`, the request's tensors become feature rows in
`serving.oip_validation`; this module writes what the protocol answers:

- an inference response: outputs `probabilities` (FP32 `[rows, n_classes]`, columns in
  the order of the metadata's `classes`), `prediction` (the most probable class: INT64,
  or BYTES for text classes), `model_version` (BYTES `[rows]`: the version that
  answered each row) and `imputed` (BYTES `[rows]`: the features whose null the data
  contract forbids and the model imputed, comma-separated, empty for none; only with
  `serving.impute_nulls`, else such a null is refused). The top-level `model_version`
  is the version that answered; when a canary split the rows of one request (by their
  entity keys), it lists the versions that did, comma-separated. `id` echoes the
  request's, else the request id; `parameters.request_id` is the request id, which
  `prediction_id`s (`<request id>-<row>`, for `POST /v1/feedback`) are made of;
- model metadata: one input per feature (FP32 or BYTES, shape `[-1]`) and the outputs;
- an error: `{"error": "<message>"}` with the HTTP status of the refusal.

Health answers carry an empty body, as the protocol asks: 200 for true, 400 for false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import orjson

from serving.asgi import Answer
from serving.errors import RequestError
from serving.loader import LoadedModel
from serving.oip_validation import IMPUTED, MODEL_VERSION, OUTPUTS, PREDICTION, PROBABILITIES

OIP_PREFIX = "/v2"
INFER_ROUTE = "/v2/models/{name}/infer"
VERSION_INFER_ROUTE = "/v2/models/{name}/versions/{version}/infer"
INFERENCE_HEADER = b"inference-header-content-length"
"""Sent by clients that append binary tensor data to the JSON (not supported)."""
SERVER_NAME = "mlops-serving"
PLATFORM = "pytorch"
_INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")


@dataclass(frozen=True, slots=True)
class InferTarget:
    """The model (and version) an inference request names in its path."""

    name: str
    version: str | None

    @property
    def route(self) -> str:
        """The route's template (a metrics label)."""
        return INFER_ROUTE if self.version is None else VERSION_INFER_ROUTE


def infer_target(path: str) -> InferTarget | None:
    """The target of an inference path; None for any other path (cheap for those)."""
    if not path.startswith("/v2/models/"):
        return None
    found = _INFER_PATH.match(path)
    if found is None:
        return None
    return InferTarget(found.group(1), found.group(2))


def refused(exc: RequestError, request_id: str) -> Answer:
    """The protocol's error document of a refused request, with the headers it asks for."""
    body = orjson.dumps({"error": exc.message})
    return Answer(exc.status, body, {"x-request-id": request_id, **exc.headers})


def _label_datatype(labels: tuple[int | str, ...] | list[int | str]) -> str:
    return "INT64" if all(type(label) is int for label in labels) else "BYTES"


def infer_body(
    model_name: str,
    response_id: str,
    request_id: str,
    outputs: tuple[str, ...],
    versions: list[str],
    probabilities: list[list[float]],
    labels: list[int | str],
    imputed: dict[int, list[str]] | None = None,
) -> bytes:
    """The inference response: the requested `outputs`, in order.

    Args:
        versions: the version that answered each row.
        imputed: per row (by index), the features whose null was imputed.
    """
    imputed = imputed or {}
    rows = len(labels)
    datatype = _label_datatype(labels)
    tensors = {
        PROBABILITIES: {
            "name": PROBABILITIES,
            "datatype": "FP32",
            "shape": [rows, len(probabilities[0])],
            "data": [p for row in probabilities for p in row],
        },
        PREDICTION: {
            "name": PREDICTION,
            "datatype": datatype,
            "shape": [rows],
            "data": labels if datatype == "INT64" else [str(label) for label in labels],
        },
        MODEL_VERSION: {
            "name": MODEL_VERSION,
            "datatype": "BYTES",
            "shape": [rows],
            "data": versions,
        },
        IMPUTED: {
            "name": IMPUTED,
            "datatype": "BYTES",
            "shape": [rows],
            "data": [",".join(imputed.get(i, ())) for i in range(rows)],
        },
    }
    return orjson.dumps(
        {
            "model_name": model_name,
            "model_version": ",".join(dict.fromkeys(versions)),
            "id": response_id,
            "parameters": {"request_id": request_id},
            "outputs": [tensors[name] for name in outputs],
        }
    )


def model_metadata(model_name: str, model: LoadedModel, versions: list[str]) -> dict[str, object]:
    """What `GET /v2/models/{name}[/versions/{version}]` answers for a loaded model.

    Args:
        versions: every version loaded here (they may be named in a path).
    """
    schema = model.schema
    inputs = [{"name": name, "datatype": "FP32", "shape": [-1]} for name in schema.numeric]
    inputs += [{"name": name, "datatype": "BYTES", "shape": [-1]} for name in schema.categorical]
    tensors = {
        PROBABILITIES: {
            "name": PROBABILITIES,
            "datatype": "FP32",
            "shape": [-1, len(model.classes)],
            "parameters": {"classes": orjson.dumps(list(model.classes)).decode()},
        },
        PREDICTION: {"name": PREDICTION, "datatype": _label_datatype(model.classes), "shape": [-1]},
        MODEL_VERSION: {"name": MODEL_VERSION, "datatype": "BYTES", "shape": [-1]},
        IMPUTED: {"name": IMPUTED, "datatype": "BYTES", "shape": [-1]},
    }
    return {
        "name": model_name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": [tensors[name] for name in OUTPUTS],
    }


def server_metadata() -> dict[str, object]:
    """What `GET /v2` answers: no protocol extension is supported."""
    try:
        installed = version("mlops-loop")
    except PackageNotFoundError:  # run from a checkout that was never installed
        installed = "unknown"
    return {"name": SERVER_NAME, "version": installed, "extensions": []}
