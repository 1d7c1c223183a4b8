"""Feast objects generated from a dataset spec, so a new dataset needs no Python code.

Names follow the Feast templates' suffix style: the entity is named by the spec's
entity column, then `<dataset>_source`, `<dataset>_fv` and the service `<dataset>_v1`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pyarrow as pa
from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, PrimitiveFeastType, String

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.errors import FeatureStoreError
from mlops.features.offline import (
    INGESTED_AT,
    offline_glob,
    stored_entity_type,
    stored_feature_schema,
)
from mlops.settings import Settings


@dataclass(frozen=True)
class FeatureDefinitions:
    """The Feast objects of one dataset, applied together."""

    entity: Entity
    source: FileSource
    feature_view: FeatureView
    feature_service: FeatureService

    @property
    def objects(self) -> list[Entity | FileSource | FeatureView | FeatureService]:
        """Everything `FeatureStore.apply` needs, in dependency order."""
        return [self.entity, self.source, self.feature_view, self.feature_service]

    @property
    def join_key(self) -> str:
        """The entity column the feature view joins on."""
        return self.entity.join_key


def source_name(spec: DatasetSpec) -> str:
    """Name of the dataset's batch source."""
    return f"{spec.name}_source"


def feature_view_name(spec: DatasetSpec) -> str:
    """Name of the dataset's feature view."""
    return f"{spec.name}_fv"


def feature_service_name(spec: DatasetSpec) -> str:
    """Name of the dataset's feature service (the version models are trained against)."""
    return f"{spec.name}_v1"


def feature_definitions(
    spec: DatasetSpec,
    schema: FeatureSchema,
    settings: Settings,
    entity_type: ValueType | None = None,
) -> FeatureDefinitions:
    """The entity, source, feature view and service for a dataset.

    Args:
        spec: The dataset spec (names and key columns).
        schema: The resolved feature columns: numeric ones become Float64 fields,
            categorical ones String fields.
        settings: Where the offline files live and the feature TTL.
        entity_type: STRING or INT64; by default read from the stored batches (the
            data decides), STRING before any batch is stored.
    """
    value_type = entity_type or _stored_value_type(spec, settings)
    entity = Entity(
        name=spec.entity,
        join_keys=[spec.entity],
        value_type=value_type,
        description=f"Entity of dataset {spec.name!r}",
    )
    source = FileSource(
        name=source_name(spec),
        path=offline_glob(spec, settings),
        timestamp_field=spec.timestamp,
        created_timestamp_column=INGESTED_AT,
        description=f"Validated batches of {spec.name!r}, one parquet file per batch hash",
    )
    entity_dtype: PrimitiveFeastType = Int64 if value_type == ValueType.INT64 else String
    feature_view = FeatureView(
        name=feature_view_name(spec),
        entities=[entity],
        ttl=timedelta(days=settings.feast.ttl_days),
        schema=[
            Field(name=spec.entity, dtype=entity_dtype),
            *(Field(name=c, dtype=Float64) for c in schema.numeric),
            *(Field(name=c, dtype=String) for c in schema.categorical),
        ],
        source=source,
        online=True,
        tags={"dataset": spec.name, "task": spec.task.value, "label": spec.label},
        description=spec.description or f"Features of dataset {spec.name!r}",
    )
    service = FeatureService(
        name=feature_service_name(spec),
        features=[feature_view],
        tags={"dataset": spec.name},
        description=f"The features models of {spec.name!r} are trained and served with",
    )
    return FeatureDefinitions(
        entity=entity, source=source, feature_view=feature_view, feature_service=service
    )


def stored_definitions(spec: DatasetSpec, settings: Settings) -> FeatureDefinitions:
    """Definitions rebuilt from the batches already in the offline store.

    What `feature_repo/` uses so the Feast CLI and UI see the same objects the pipeline
    applies, without repeating the schema resolution.

    Raises:
        FeatureStoreError: no batch of the dataset is stored yet.
    """
    schema = stored_feature_schema(spec, settings)
    if schema is None:
        raise FeatureStoreError(
            f"dataset {spec.name!r} has no batch in the offline store under {settings.feast_dir}: "
            "run the training pipeline once first"
        )
    return feature_definitions(spec, schema, settings)


def _stored_value_type(spec: DatasetSpec, settings: Settings) -> ValueType:
    stored = stored_entity_type(spec, settings)
    if stored is not None and pa.types.is_integer(stored):
        return ValueType.INT64
    return ValueType.STRING
