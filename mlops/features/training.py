"""Point-in-time correct training sets from the offline store.

The entity frame is the stored label rows: each gets the latest feature values stamped
at or before its own timestamp (and within the feature view's TTL), never a later one.
Feast's duckdb store keeps every entity row but returns them in another order, so a
row number travels through the join; the result is checked row for row and put back
in the entity frame's order before it is written.
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast.errors import FeastObjectNotFoundException, ProjectNotFoundException

from mlops.contracts import TrainingSetRef
from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.errors import FeatureStoreError
from mlops.features.definitions import feature_service_name
from mlops.features.offline import feature_batches, read_labels
from mlops.features.store import feature_store
from mlops.settings import Settings
from mlops.sources import sha256_file
from mlops.storage import Location, locate, publish_file, staging_file

logger = logging.getLogger(__name__)

ROW_NUMBER = "__entity_row"
"""Carried through the point-in-time join to restore order and prove no row was lost."""


def build_training_set(
    spec: DatasetSpec,
    schema: FeatureSchema,
    settings: Settings,
    start: datetime | None = None,
    end: datetime | None = None,
) -> TrainingSetRef:
    """Join the label rows with their point-in-time features and store the result.

    Columns: entity, timestamp, the schema's features (numeric first), label; one row
    per label row, in the label rows' order (by timestamp, stable). The file is named
    by the sha256 of its bytes, so the same inputs give the same reference; it is stored
    under `training_sets/<dataset>/` of the state directory, or of the bucket.

    Args:
        start: Only label rows stamped at or after this time (naive means UTC).
        end: Only label rows stamped at or before this time.

    Raises:
        FeatureStoreError: no label rows in the window, definitions not applied, or
            Feast returned a different number of rows than it was given.
    """
    labels = read_labels(spec, settings, start, end)
    if labels.empty:
        raise FeatureStoreError(f"dataset {spec.name!r}: no label rows between {start} and {end}")
    store = feature_store(settings)
    try:
        service = store.get_feature_service(feature_service_name(spec))
    except (FeastObjectNotFoundException, ProjectNotFoundException) as exc:
        raise FeatureStoreError(
            f"dataset {spec.name!r}: features were never applied in project "
            f"{settings.feast.project!r} ({exc})"
        ) from exc

    feature_batches(spec, settings)  # an S3 store's mirror is what DuckDB reads: update it
    rows_in = len(labels)
    entity_frame = labels[[spec.entity, spec.timestamp]].copy()
    entity_frame[ROW_NUMBER] = np.arange(rows_in, dtype="int64")
    joined = store.get_historical_features(entity_df=entity_frame, features=service).to_df()
    features = _in_entity_order(joined, rows_in, schema, spec)

    training = pd.concat(
        [labels[[spec.entity, spec.timestamp]], features, labels[[spec.label]]], axis=1
    )
    folder = locate(settings, settings.training_sets_dir / spec.name)
    path, digest = _write_content_addressed(training, folder)
    counts = training[spec.label].value_counts(sort=False)
    stamps = training[spec.timestamp]
    logger.info("training set %s of %s: %d rows", digest[:12], spec.name, rows_in)
    return TrainingSetRef(
        dataset=spec.name,
        uri=str(path),
        sha256=digest,
        rows=rows_in,
        features=schema.columns,
        label=spec.label,
        feature_service=service.name,
        start=stamps.min().to_pydatetime(),
        end=stamps.max().to_pydatetime(),
        label_counts={str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))},
    )


def _in_entity_order(
    joined: pd.DataFrame, rows_in: int, schema: FeatureSchema, spec: DatasetSpec
) -> pd.DataFrame:
    """The feature columns of Feast's result, one row per entity row, in entity order."""
    if len(joined) != rows_in:
        raise FeatureStoreError(
            f"dataset {spec.name!r}: Feast returned {len(joined)} training rows for "
            f"{rows_in} entity rows"
        )
    missing = [c for c in schema.columns if c not in joined.columns]
    if missing:
        raise FeatureStoreError(
            f"dataset {spec.name!r}: the feature service lacks {missing}; "
            "apply the definitions first"
        )
    ordered = joined.sort_values(ROW_NUMBER, kind="stable", ignore_index=True)
    if not np.array_equal(ordered[ROW_NUMBER].to_numpy(), np.arange(rows_in)):
        raise FeatureStoreError(
            f"dataset {spec.name!r}: Feast returned {rows_in} rows but not one per entity row "
            f"({rows_in} in, {ordered[ROW_NUMBER].nunique()} distinct out)"
        )
    frame = ordered[list(schema.columns)].copy()
    for column in schema.numeric:
        frame[column] = frame[column].astype("float64")
    for column in schema.categorical:
        frame[column] = frame[column].astype("string")
    return frame


def _write_content_addressed(frame: pd.DataFrame, folder: Location) -> tuple[Location, str]:
    """Write a frame as parquet named by the sha256 of the file's bytes."""
    with staging_file(folder / "training.parquet") as partial:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), partial)
        digest = sha256_file(partial)
        target = folder / f"{digest}.parquet"
        publish_file(partial, target)  # an existing file holds the same bytes: kept
    return target, digest
