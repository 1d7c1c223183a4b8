"""The smoke test a model version passes before it serves (`serving.loader` runs it).

Reference rows (the input example MLflow logged with the pyfunc model, an all-null row
and a row of unseen categories) are scored in one batch, one by one, and at the warm-up
batch sizes: this warms the model, and refuses a version whose probabilities are not
finite, do not sum to 1, or depend on the batch (micro-batching relies on it). Kept
apart from the loader's slot and hot-swap logic because it only needs the served model.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlops.errors import PipelineError
from quantization.schemes import BATCH_DEPENDENT
from quantization.served import ServedModel, scheme_of

logger = logging.getLogger(__name__)

INPUT_EXAMPLE = "input_example.json"
"""The rows MLflow logged with the pyfunc model: the first reference rows of the smoke test."""
WARM_BATCH_SIZES = (1, 8, 64, 256)
SMOKE_TOLERANCE = 1e-4


class ModelRefused(PipelineError):
    """A model version failed to load or its smoke test; the current model keeps serving."""


def reference_rows(root: Path, model: ServedModel) -> list[dict[str, Any]]:
    """Rows to smoke-test on: the logged input example (if any), an all-null row, and a row
    of unseen categories."""
    schema = model.schema
    rows: list[dict[str, Any]] = []
    for path in sorted(root.rglob(INPUT_EXAMPLE))[:1]:
        try:
            document = json.loads(path.read_text())
            columns = list(document["columns"])
            for values in document["data"]:
                row = dict(zip(columns, values, strict=True))
                rows.append({name: row.get(name) for name in schema.columns})
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable input example %s: %s", path, exc)
    rows.append(dict.fromkeys(schema.columns))
    unseen: dict[str, Any] = dict.fromkeys(schema.numeric, 0.0)
    unseen.update(dict.fromkeys(schema.categorical, "\x00never-seen"))
    rows.append(unseen)
    return rows


def smoke_test(model: ServedModel, rows: Sequence[Mapping[str, Any]]) -> int:
    """Score the rows in one batch and one by one (this warms the model too).

    Probabilities must be finite, within [0, 1], sum to 1, and not depend on the batch
    (micro-batching relies on it; see `quantization.schemes.BATCH_DEPENDENT`). Returns
    the number of rows checked.

    Raises:
        ModelRefused: any check fails, or scoring raises.
    """
    n_classes = len(model.classes)
    try:
        batch = model.predict_proba_arrays(model.preprocessor.transform_records(rows))
        single = [
            model.predict_proba_arrays(model.preprocessor.transform_records([row]))[0]
            for row in rows
        ]
        for size in WARM_BATCH_SIZES:
            repeated = [rows[i % len(rows)] for i in range(size)]
            model.predict_proba_arrays(model.preprocessor.transform_records(repeated))
    except Exception as exc:
        raise ModelRefused(f"smoke test: scoring reference rows raised {exc!r}") from exc
    if batch.shape != (len(rows), n_classes):
        raise ModelRefused(
            f"smoke test: output shape {batch.shape}, expected ({len(rows)}, {n_classes})"
        )
    for i, probabilities in enumerate(batch.tolist()):
        if not all(
            math.isfinite(p) and -SMOKE_TOLERANCE <= p <= 1 + SMOKE_TOLERANCE for p in probabilities
        ):
            raise ModelRefused(f"smoke test: row {i} has probabilities {probabilities}")
        if abs(sum(probabilities) - 1.0) > SMOKE_TOLERANCE:
            raise ModelRefused(f"smoke test: row {i} probabilities sum to {sum(probabilities)}")
        if (
            max(abs(a - b) for a, b in zip(probabilities, single[i].tolist(), strict=True))
            > SMOKE_TOLERANCE
        ):
            scheme = scheme_of(model)
            why = (
                f": {scheme.value} scores depend on the batch, serve another variant"
                if scheme in BATCH_DEPENDENT
                else ""
            )
            raise ModelRefused(f"smoke test: row {i} scores differently alone and in a batch{why}")
    return len(rows)
