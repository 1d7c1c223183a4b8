"""Feast definitions of the demo dataset `card_fraud`, for `feast plan` and the Feast UI.

The pipeline does not import this file: it generates these objects from the dataset
spec `datasets/card_fraud.yaml` (`mlops.features.definitions.feature_definitions`) and
applies them in code on every run. This module rebuilds the very same objects from the
spec and the schema of the batches already in the offline store, so the CLI and the
pipeline agree without a second copy of the schema. Run the pipeline once first.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mlops.dataset_spec import load_spec
from mlops.features.definitions import stored_definitions
from mlops.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# The Feast CLI runs from this folder; settings (`.env`, the default `.mlops` home)
# resolve against the project root, as they do for the pipeline.
with contextlib.chdir(ROOT):
    _settings = Settings()

_definitions = stored_definitions(load_spec(ROOT / "datasets" / "card_fraud.yaml"), _settings)

card_id = _definitions.entity
card_fraud_source = _definitions.source
card_fraud_fv = _definitions.feature_view
card_fraud_v1 = _definitions.feature_service
