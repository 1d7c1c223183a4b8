"""The feature stage on Feast: offline writes, definitions, materialization, training sets.

Modules, one job each:

- `config`: the Feast `RepoConfig` derived from `Settings` (embedded or production).
- `offline`: append validated batches (features and labels) to the parquet offline store.
- `definitions`: the Feast entity, source, feature view and service of a dataset spec.
- `store`: apply + materialize, online reads, teardown.
- `training`: point-in-time correct training sets from the offline store.

Importing this package imports Feast (a few seconds); nothing is created or connected
until a function is called.
"""

from __future__ import annotations

from mlops.features.config import repo_config
from mlops.features.definitions import FeatureDefinitions, feature_definitions
from mlops.features.offline import write_offline_batch
from mlops.features.store import (
    apply_and_materialize,
    feature_store,
    read_online_features,
    teardown_store,
)
from mlops.features.training import build_training_set

__all__ = [
    "FeatureDefinitions",
    "apply_and_materialize",
    "build_training_set",
    "feature_definitions",
    "feature_store",
    "read_online_features",
    "repo_config",
    "teardown_store",
    "write_offline_batch",
]
