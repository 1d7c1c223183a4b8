"""Registering, materializing and serving a dataset's features on Feast.

`apply_and_materialize` is what the training pipeline calls after a batch is written to
the offline store; `read_online_features` is what serving calls; `teardown_store`
removes a project's online data and registry entries (tests and operations).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from feast import FeatureStore, ValueType
from feast.errors import FeastObjectNotFoundException, ProjectNotFoundException
from feast.feast_object import FeastObject

from mlops.contracts import FeatureSetRef
from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.errors import FeatureStoreError
from mlops.features.config import repo_config
from mlops.features.definitions import (
    FeatureDefinitions,
    feature_definitions,
    feature_service_name,
    feature_view_name,
)
from mlops.features.offline import (
    TIMESTAMP_TYPE,
    event_time_range,
    feature_batches,
    offline_uri,
)
from mlops.settings import Settings
from mlops.timestamps import as_utc

logger = logging.getLogger(__name__)


def feature_store(settings: Settings) -> FeatureStore:
    """A Feast store for these settings; creates the local state folder when the registry
    or the online store is a file there (nothing local with a SQL registry and Redis or
    PostgreSQL)."""
    _release_offline_engine_at_exit()
    config = repo_config(settings)
    if config.registry.registry_type == "file" or config.online_store.type == "sqlite":
        settings.feast_dir.mkdir(parents=True, exist_ok=True)
    if config.online_store.type == "sqlite":
        _use_wal(Path(config.online_store.path))
    return FeatureStore(config=config)


@cache
def _release_offline_engine_at_exit() -> None:
    """Close the DuckDB connection Feast's offline store opens through ibis, at exit.

    Left open, the interpreter tears DuckDB down with live objects and its bindings
    print dozens of "nanobind: leaked ..." lines over every command's output.
    """
    atexit.register(_close_offline_engine)


def _close_offline_engine() -> None:
    import ibis

    backend = ibis.options.default_backend
    if backend is not None:
        backend.disconnect()
        ibis.options.default_backend = None
    gc.collect()


def _use_wal(path: Path) -> None:
    """Put the SQLite online store in WAL mode (persistent in the file), so serving reads
    are not refused with "database is locked" while a materialization writes."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")


def apply_definitions(
    spec: DatasetSpec, schema: FeatureSchema, settings: Settings, store: FeatureStore | None = None
) -> FeatureDefinitions:
    """Register the dataset's Feast objects (idempotent: unchanged objects stay as they are)."""
    store = store or feature_store(settings)
    definitions = feature_definitions(spec, schema, settings)
    store.apply(list(definitions.objects))
    return definitions


def apply_and_materialize(
    spec: DatasetSpec,
    schema: FeatureSchema,
    settings: Settings,
    until: datetime,
    since: datetime | None = None,
) -> FeatureSetRef:
    """Register the definitions and load the latest values up to `until` into the online store.

    The first run materializes from the earliest stored event: `materialize_incremental`
    alone would start at `now - ttl` and silently skip older data. Later runs are
    incremental from the previous end. A batch holding events older than that end (late
    data) passes `since` (its earliest event) to widen the window back. Both ends are
    inclusive, so an event stamped exactly at `until` is served.

    Args:
        until: Upper bound of the event times to materialize (naive means UTC).
        since: Earliest event time of data written since the last run, if known.

    Returns:
        The feature-set reference; `rows_written` counts the entity rows written to the
        online store (one per entity with an event in the materialized window).

    Raises:
        FeatureStoreError: the offline store holds no batch of the dataset.
    """
    started = time.perf_counter()
    until = as_utc(until)
    if not feature_batches(spec, settings):  # also brings an S3 store's mirror up to date
        raise FeatureStoreError(
            f"dataset {spec.name!r}: nothing to materialize, "
            f"no batch in {offline_uri(spec, settings)}"
        )
    store = feature_store(settings)
    definitions = apply_definitions(spec, schema, settings, store)
    view = feature_view_name(spec)
    previous_end = store.get_feature_view(view).most_recent_end_time
    if previous_end is None:
        stored = event_time_range(spec, settings)
        if stored is None:
            raise FeatureStoreError(f"dataset {spec.name!r}: the offline batches hold no rows")
        start = stored[0]
        mode = "full"
    else:
        start = as_utc(previous_end)
        mode = "incremental"
        if since is not None and as_utc(since) < start:
            start = as_utc(since)
            mode = "widened"
    rows = 0
    if start > until:
        logger.warning("%s: nothing to materialize, window starts %s after %s", view, start, until)
    else:
        if mode == "incremental":
            store.materialize_incremental(end_date=until, feature_views=[view])
        else:
            store.materialize(start_date=start, end_date=until, feature_views=[view])
        rows = _entities_in_window(spec, settings, start, until)
    duration = time.perf_counter() - started
    logger.info(
        "materialized %s (%s) from %s to %s: %d entity rows in %.2fs",
        view,
        mode,
        start,
        until,
        rows,
        duration,
    )
    return FeatureSetRef(
        dataset=spec.name,
        project=settings.feast.project,
        feature_service=definitions.feature_service.name,
        feature_view=view,
        entity=spec.entity,
        features=schema.columns,
        offline_uri=offline_uri(spec, settings),
        online_store=settings.feast.online_store,
        rows_written=rows,
        materialized_until=until,
        duration_s=duration,
    )


def read_online_features(
    spec: DatasetSpec,
    schema: FeatureSchema,
    settings: Settings,
    entity_ids: Sequence[object],
    store: FeatureStore | None = None,
) -> pd.DataFrame:
    """The latest materialized feature values of each entity, one row per id in order.

    Unknown entities come back with null features. Pass a long-lived `store` on hot paths
    (serving) to skip building one per call.

    Raises:
        FeatureStoreError: the dataset's definitions were never applied.
    """
    store = store or feature_store(settings)
    try:
        service = store.get_feature_service(feature_service_name(spec))
        value_type = store.get_entity(spec.entity).value_type
    except (FeastObjectNotFoundException, ProjectNotFoundException) as exc:
        raise FeatureStoreError(
            f"dataset {spec.name!r} has no features in project {settings.feast.project!r}: {exc}"
        ) from exc
    cast = int if value_type == ValueType.INT64 else str
    rows = [{spec.entity: cast(entity_id)} for entity_id in entity_ids]  # type: ignore[call-overload]
    if not rows:
        return pd.DataFrame(columns=[spec.entity, *schema.columns])
    frame = store.get_online_features(features=service, entity_rows=rows).to_df()
    return frame[[spec.entity, *schema.columns]]


def teardown_store(settings: Settings) -> None:
    """Remove the project's online data and registry entries; offline files stay.

    Only this project is touched (Feast's own `FeatureStore.teardown` deletes every
    project of a shared registry and the whole SQLite file). Online rows go through
    Feast's infra update: Redis hashes of the project's views, SQLite or PostgreSQL
    tables `<project>_<view>`.
    """
    store = feature_store(settings)
    objects: list[FeastObject] = [
        *store.list_feature_services(),
        *store.list_feature_views(),
        *store.list_data_sources(),
        *store.list_entities(),
    ]
    if objects:
        store.apply([], objects_to_delete=objects, partial=False)
    try:
        store.registry.delete_project(settings.feast.project, commit=True)
    except ProjectNotFoundException:
        pass
    logger.info("tore down Feast project %s (%d objects)", settings.feast.project, len(objects))


def _entities_in_window(
    spec: DatasetSpec, settings: Settings, start: datetime, end: datetime
) -> int:
    """How many entities have an event in [start, end]: the rows materialize writes."""
    dataset = ds.dataset([str(p) for p in feature_batches(spec, settings)])
    stamp = ds.field(spec.timestamp)
    window = (stamp >= pa.scalar(start, TIMESTAMP_TYPE)) & (stamp <= pa.scalar(end, TIMESTAMP_TYPE))
    table = dataset.to_table(columns=[spec.entity], filter=window)
    return int(pc.count_distinct(table[spec.entity]).as_py())
