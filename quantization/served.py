"""Load whatever a registered version holds: the fp32 model or one of its quantized variants.

The training pipeline registers the variant its selection policy chose, so a version's
artifact folder holds either `mlops.modeling`'s format or `QUANTIZED_FORMAT`. Serving
and the MLflow pyfunc call `load_served_model` and get one interface either way; the
digest is checked before a byte is parsed, whichever the format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlops.dataset_spec import FeatureSchema
from mlops.errors import ArtifactIntegrityError
from mlops.modeling import TabularModel, load_model
from mlops.modeling.artifact import MODEL_JSON
from mlops.modeling.data import LabelEncoding, TabularArrays
from mlops.modeling.preprocessing import Preprocessor
from quantization.artifact import QUANTIZED_FORMAT, load_quantized
from quantization.model import QuantizedModel
from quantization.schemes import Scheme

__all__ = ["ServedModel", "load_served_model", "scheme_of"]


class ServedModel(Protocol):
    """What serving needs of a model, fp32 or quantized."""

    @property
    def preprocessor(self) -> Preprocessor: ...

    @property
    def schema(self) -> FeatureSchema: ...

    @property
    def classes(self) -> tuple[int | str, ...]: ...

    @property
    def labels(self) -> LabelEncoding: ...

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]: ...

    def predict_proba_records(
        self, records: Sequence[Mapping[str, Any]]
    ) -> npt.NDArray[np.float64]: ...

    def predict_proba_arrays(self, arrays: TabularArrays) -> npt.NDArray[np.float64]: ...


def load_served_model(directory: Path, expected_sha256: str | None) -> ServedModel:
    """The model stored in `directory`, in whichever of the two formats it was saved.

    Raises:
        ArtifactIntegrityError: a missing or unreadable `model.json`, a digest other
            than `expected_sha256`, or malformed content.
    """
    if _format_of(directory) == QUANTIZED_FORMAT:
        return load_quantized(directory, expected_sha256)
    return load_model(directory, expected_sha256)


def scheme_of(model: ServedModel) -> Scheme:
    """The quantization scheme of a loaded model (fp32 for the parent format)."""
    if isinstance(model, QuantizedModel):
        return model.scheme
    if isinstance(model, TabularModel):
        return Scheme.FP32
    raise TypeError(f"not a served model: {type(model).__name__}")


def _format_of(directory: Path) -> str | None:
    """The `format` field of the folder's model.json (the digest is checked afterwards)."""
    try:
        document: Any = json.loads((directory / MODEL_JSON).read_bytes())
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(f"model artifact {directory} lacks {MODEL_JSON}") from exc
    except ValueError as exc:
        message = f"model artifact {directory}: unreadable {MODEL_JSON}"
        raise ArtifactIntegrityError(message) from exc
    return document.get("format") if isinstance(document, dict) else None
