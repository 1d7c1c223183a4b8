"""Batch scoring of a large parquet file as a partitioned job.

The file is cut along its row groups (parquet's own unit of independent reads) into
partitions of about `rows_per_partition` rows; each partition is scored on its own by
a registered model version (fp32 or quantized, loaded through
`mlops.registry.client.load_registered_model` with its digest checked) and written as one
part, `part-<index>.parquet`, holding the input's non-feature columns (ids, times) and
one probability column per class (`p_<class>`, as the MLflow pyfunc returns them).

Partitions are independent, so any number of workers (the Dask runner of the
`batch-scoring` flow) score them in parallel. The output folder is named by the input's
content hash and the model version, so re-running the same job finds the parts it
already wrote and skips them; `_manifest.json` is written last, once every part exists.
Both the input and the output may be local or in S3 (see `mlops.storage`).
"""

from __future__ import annotations

import logging
import threading
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from mlops.errors import ConfigError
from mlops.registry.client import (
    SHA_TAG,
    load_registered_model,
    registry_client,
    version_by_alias,
)
from mlops.settings import Settings
from mlops.storage import (
    Location,
    local_path,
    locate,
    location_of,
    publish_file,
    sha256_of,
    staging_file,
    write_text,
)
from quantization.served import ServedModel

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
DEFAULT_ROWS_PER_PARTITION = 100_000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ScoringModel(_Frozen):
    """The registered version a job scores with, pinned (an alias may move mid-job)."""

    name: str
    version: str
    artifact_sha256: str


class Partition(_Frozen):
    """Consecutive row groups of the input, scored as one unit."""

    index: int
    row_groups: tuple[int, ...]
    rows: int


class ScoringPlan(_Frozen):
    """The input by reference and how it is cut; where the parts go."""

    input_uri: str
    input_sha256: str
    rows: int
    partitions: tuple[Partition, ...]
    output_uri: str


class ScoredPart(_Frozen):
    """One written part."""

    index: int
    uri: str
    rows: int
    seconds: float = Field(description="0 when the part existed already (a re-run).")


class ScoringResult(_Frozen):
    """A finished job: every part, and the manifest naming them."""

    model: ScoringModel
    input_uri: str
    input_sha256: str
    output_uri: str
    manifest_uri: str
    rows: int
    parts: tuple[ScoredPart, ...]


def resolve_model(settings: Settings, name: str, alias: str | None = None) -> ScoringModel:
    """Pin the version `alias` names (or `alias` itself when it is a version number).

    Raises:
        ConfigError: no such alias or version, or the version lacks its digest tag.
    """
    client = registry_client(settings)
    wanted = alias or "champion"
    if wanted.isdigit():
        version = client.get_model_version(name, wanted)
    else:
        found = version_by_alias(client, name, wanted)
        if found is None:
            raise ConfigError(f"model {name!r} has no version with alias {wanted!r}")
        version = found
    sha = (version.tags or {}).get(SHA_TAG)
    if not sha:
        raise ConfigError(f"{name} v{version.version} has no {SHA_TAG} tag: not ours")
    return ScoringModel(name=name, version=str(version.version), artifact_sha256=sha)


def plan_partitions(
    input_uri: str,
    settings: Settings,
    rows_per_partition: int = DEFAULT_ROWS_PER_PARTITION,
    output_uri: str | None = None,
    model: ScoringModel | None = None,
) -> ScoringPlan:
    """Cut a parquet file into partitions of whole row groups (about `rows_per_partition`
    rows each; a row group larger than that is a partition of its own).

    The output folder defaults to `scores/<model>/v<version>/<input sha256[:16]>` of the
    state directory (or bucket).

    Raises:
        ConfigError: `rows_per_partition` is not positive, or no output can be named.
        SourceError: the input is missing.
    """
    if rows_per_partition < 1:
        raise ConfigError("rows_per_partition must be at least 1")
    local = local_path(input_uri, settings)
    digest = sha256_of(local)
    metadata = pq.ParquetFile(local).metadata
    partitions: list[Partition] = []
    groups: list[int] = []
    rows = 0
    for group in range(metadata.num_row_groups):
        groups.append(group)
        rows += metadata.row_group(group).num_rows
        if rows >= rows_per_partition:
            partitions.append(Partition(index=len(partitions), row_groups=tuple(groups), rows=rows))
            groups, rows = [], 0
    if groups:
        partitions.append(Partition(index=len(partitions), row_groups=tuple(groups), rows=rows))
    if output_uri is None:
        if model is None:
            raise ConfigError("name the output folder, or the model to name it after")
        folder = settings.home / "scores" / model.name / f"v{model.version}" / digest[:16]
        output_uri = str(locate(settings, folder))
    return ScoringPlan(
        input_uri=input_uri,
        input_sha256=digest,
        rows=metadata.num_rows,
        partitions=tuple(partitions),
        output_uri=output_uri,
    )


def part_location(plan: ScoringPlan, index: int, settings: Settings) -> Location:
    """Where partition `index` is written."""
    return location_of(plan.output_uri, settings) / f"part-{index:05d}.parquet"


def score_partition(
    plan: ScoringPlan, partition: Partition, model: ScoringModel, settings: Settings
) -> ScoredPart:
    """Score one partition and write its part; a part that exists already is kept.

    Raises:
        ArtifactIntegrityError: the downloaded model does not match its digest.
        ConfigError: the input lacks a feature the model needs.
    """
    target = part_location(plan, partition.index, settings)
    if target.is_file():
        return ScoredPart(index=partition.index, uri=str(target), rows=partition.rows, seconds=0.0)
    started = time.perf_counter()
    source = pq.ParquetFile(local_path(plan.input_uri, settings, plan.input_sha256))
    frame = source.read_row_groups(list(partition.row_groups)).to_pandas()
    scored = score_frame(load_scoring_model(model, settings), frame)
    with staging_file(target) as partial:
        pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), partial)
        publish_file(partial, target, overwrite=True)
    seconds = time.perf_counter() - started
    logger.info("scored partition %d: %d rows in %.2fs", partition.index, len(frame), seconds)
    return ScoredPart(index=partition.index, uri=str(target), rows=len(frame), seconds=seconds)


def score_frame(model: ServedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's non-feature columns and one `p_<class>` column per class."""
    features = set(model.schema.columns)
    kept = frame[[c for c in frame.columns if c not in features]].reset_index(drop=True)
    proba = model.predict_proba(frame)
    scores = pd.DataFrame(proba, columns=[f"p_{c}" for c in model.classes])
    return pd.concat([kept, scores], axis=1)


def write_manifest(
    plan: ScoringPlan, model: ScoringModel, parts: list[ScoredPart], settings: Settings
) -> ScoringResult:
    """Check every partition has its part, then write `_manifest.json` (the job is done).

    Raises:
        ConfigError: a partition has no part, or the parts hold another number of rows.
    """
    done = sorted(parts, key=lambda p: p.index)
    if [p.index for p in done] != [p.index for p in plan.partitions]:
        raise ConfigError(f"parts {[p.index for p in done]} do not cover the plan")
    rows = sum(p.rows for p in done)
    if rows != plan.rows:
        raise ConfigError(f"the parts hold {rows} rows, the input {plan.rows}")
    manifest = location_of(plan.output_uri, settings) / MANIFEST
    result = ScoringResult(
        model=model,
        input_uri=plan.input_uri,
        input_sha256=plan.input_sha256,
        output_uri=plan.output_uri,
        manifest_uri=str(manifest),
        rows=rows,
        parts=tuple(done),
    )
    write_text(manifest, result.model_dump_json(indent=2))
    return result


_MODELS: dict[tuple[str, ScoringModel], ServedModel] = {}
_MODELS_LOCK = threading.Lock()


def load_scoring_model(model: ScoringModel, settings: Settings) -> ServedModel:
    """The model, downloaded and loaded once per process (workers score many partitions).

    The artifact is read into memory from a temporary folder, checked against its digest.
    """
    key = (settings.resolved_tracking_uri, model)
    with _MODELS_LOCK:
        if key not in _MODELS:
            client = registry_client(settings)
            _MODELS[key] = load_registered_model(
                client, model.name, model.version, model.artifact_sha256
            )
            logger.info("loaded %s v%s for scoring", model.name, model.version)
        return _MODELS[key]
