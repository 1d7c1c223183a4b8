"""What a tuning worker needs to find its data: a reference, not a frame.

The flow hands each worker the training set's URI and content hash; the worker reads
and splits it itself. Tasks stay small to serialize, and a worker can never tune on a
file that changed after the flow looked at it: the hash is checked on load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mlops.contracts import TrainingSetRef
from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.errors import ConfigError, SourceError
from mlops.modeling.data import split_time_ordered
from mlops.settings import get_settings
from mlops.sources import read_frame, sha256_file
from mlops.storage import local_path

logger = logging.getLogger(__name__)


class TuningData(BaseModel):
    """A training set by reference, plus how to cut it; the holdout is never tuned on."""

    model_config = ConfigDict(frozen=True)

    uri: str = Field(description="Path, file:// or s3:// URI of the training-set parquet.")
    sha256: str
    spec: DatasetSpec
    feature_schema: FeatureSchema
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)

    @classmethod
    def from_training_set(
        cls,
        ref: TrainingSetRef,
        spec: DatasetSpec,
        schema: FeatureSchema,
        *,
        holdout_fraction: float = 0.2,
        validation_fraction: float = 0.2,
    ) -> TuningData:
        """Reference a training set built by the feature stage."""
        return cls(
            uri=ref.uri,
            sha256=ref.sha256,
            spec=spec,
            feature_schema=schema,
            holdout_fraction=holdout_fraction,
            validation_fraction=validation_fraction,
        )

    @property
    def path(self) -> Path:
        """The local file behind `uri` (an `s3://` training set is cached locally once)."""
        parsed = urlparse(self.uri)
        if parsed.scheme == "file":
            return Path(url2pathname(parsed.path))
        if not parsed.scheme:
            return Path(self.uri)
        if parsed.scheme == "s3":
            return local_path(self.uri, get_settings(), self.sha256)
        raise ConfigError(f"tuning reads local or s3:// training sets, not {self.uri!r}")

    def load(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Read, verify and split: returns (train, valid); the holdout is dropped here.

        Raises:
            SourceError: the file is missing or its content hash differs from `sha256`.
            ConfigError: the split is impossible (see `split_time_ordered`).
        """
        path = self.path
        if not path.is_file():
            raise SourceError(f"training set not found: {path}")
        actual = sha256_file(path)
        if actual != self.sha256:
            raise SourceError(
                f"training set {path} changed: sha256 {actual[:12]}, expected {self.sha256[:12]}"
            )
        splits = split_time_ordered(
            read_frame(path),
            self.spec,
            holdout_fraction=self.holdout_fraction,
            validation_fraction=self.validation_fraction,
        )
        logger.debug(
            "tuning data %s: %d train, %d valid rows",
            self.sha256[:12],
            len(splits.train),
            len(splits.valid),
        )
        return splits.train, splits.valid
