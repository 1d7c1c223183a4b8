"""Helpers for the prediction-service tests and benchmark: small real models in a real registry.

A few small models are trained in seconds on synthetic transactions (`train_models`),
saved with `mlops.modeling`, logged as MLflow pyfunc models on a run of a temporary
SQLite tracking store and registered with `register_challenger`, exactly as the
training pipeline does. `ServerThread` runs the real service (uvicorn, real sockets) in
a thread of the test process; `start_server_process` runs it as `python -m serving.cli`;
`running_service` serves a champion and a challenger to one test module (`Service`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx
import pandas as pd
import pytest

from devstack.localstack import free_port
from mlops import synthetic
from mlops.contracts import ModelVersionRef
from mlops.dataset_spec import DatasetSpec, FeatureSchema, load_spec
from mlops.modeling import (
    ModelArtifact,
    TabularModel,
    TrainConfig,
    as_training_frame,
    fit,
    save_model,
    split_time_ordered,
)
from mlops.modeling.artifact import WEIGHTS
from mlops.registry.client import register_challenger, registry_client
from mlops.rollout.lock import RolloutLock
from mlops.rollout.state import RolloutState, read_rollout, write_rollout
from mlops.settings import QualitySettings, ServingSettings, Settings
from mlops.validation import learn_profile, save_profile

if TYPE_CHECKING:
    from serving.app import ServingApp

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC: DatasetSpec = load_spec(REPO_ROOT / "datasets" / "card_fraud.yaml")
START = datetime(2024, 1, 1, tzinfo=UTC)
SMALL = TrainConfig(hidden_layers=1, width=32, max_epochs=1, batch_size=256, seed=0)
API_KEY = "test-api-key"
ADMIN = "test-admin-token"
"""The API key and admin token of `running_service`."""


@dataclass(frozen=True)
class SmallModels:
    """Models of one synthetic data set, their artifacts and the data they saw."""

    frame: pd.DataFrame
    """The training-set frame (entity, timestamp, features, label)."""
    raw: pd.DataFrame
    schema: FeatureSchema
    models: tuple[TabularModel, ...]
    artifacts: tuple[ModelArtifact, ...]

    def rows(self, count: int, offset: int = 0) -> list[dict[str, Any]]:
        """`count` feature rows as a client sends them (JSON types, no entity)."""
        return feature_rows(self.frame.iloc[offset : offset + count], self.schema)

    def entity_ids(self, count: int) -> list[str]:
        """Distinct entity ids present in the data."""
        ids: list[str] = self.frame[SPEC.entity].drop_duplicates().head(count).tolist()
        return ids


def feature_rows(frame: pd.DataFrame, schema: FeatureSchema) -> list[dict[str, Any]]:
    """Rows of a frame as JSON objects of the schema's features (floats and strings)."""
    out: list[dict[str, Any]] = []
    numeric = frame[list(schema.numeric)].to_numpy(dtype=float)
    categorical = frame[list(schema.categorical)].astype(object).to_numpy()
    for i in range(len(frame)):
        row: dict[str, Any] = {c: float(v) for c, v in zip(schema.numeric, numeric[i], strict=True)}
        row.update({c: str(v) for c, v in zip(schema.categorical, categorical[i], strict=True)})
        out.append(row)
    return out


def train_models(
    folder: Path, count: int = 2, rows: int = 3_000, config: TrainConfig = SMALL
) -> SmallModels:
    """`count` small models (seeds 0..count-1) on one synthetic batch, saved under `folder`."""
    raw = synthetic.generate(synthetic.Scenario.BASELINE, rows, START, seed=7)
    schema = SPEC.resolve_schema(raw)
    frame = as_training_frame(raw, SPEC, schema)
    splits = split_time_ordered(frame, SPEC)
    models: list[TabularModel] = []
    artifacts: list[ModelArtifact] = []
    for seed in range(count):
        chosen = config.model_copy(update={"seed": seed})
        model = fit(chosen, splits.train, splits.valid, SPEC, schema, device="cpu").model
        models.append(model)
        artifacts.append(save_model(model, folder / f"model-{seed}"))
    return SmallModels(frame, raw, schema, tuple(models), tuple(artifacts))


def registry_settings(home: Path, **serving: Any) -> Settings:
    """Embedded settings on `home` (SQLite tracking store), with serving overrides."""
    base = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    return with_serving(base, **serving)


def with_serving(settings: Settings, **serving: Any) -> Settings:
    """The same settings with other serving settings (validated, so secrets are SecretStr)."""
    merged = ServingSettings.model_validate({**settings.serving.model_dump(), **serving})
    return settings.model_copy(update={"serving": merged})


def register_model(
    settings: Settings,
    name: str,
    models: SmallModels,
    index: int,
    lineage: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ModelVersionRef:
    """Log model `index` as a pyfunc on a new run and register it as `name`'s challenger.

    The first version of a name becomes champion too (as in the pipeline).
    """
    from mlops.registry.pyfunc import log_pyfunc_model
    from mlops.tracking import configure_tracking, start_parent_run

    configure_tracking(settings)
    artifact = models.artifacts[index]
    key = lineage or hashlib.sha256(f"{name}-{index}-{time.time_ns()}".encode()).hexdigest()
    with start_parent_run(
        settings,
        name,
        dataset_sha256="d" * 64,
        validation_verdict="accepted",
        feature_service=f"{SPEC.name}_v1",
    ) as run_id:
        uri = log_pyfunc_model(run_id, artifact, models.models[index], models.frame)
    return register_challenger(
        registry_client(settings),
        name,
        source=uri,
        run_id=run_id,
        artifact_sha256=artifact.sha256,
        lineage_key=key,
        tags={"features.service": f"{SPEC.name}_v1", "features.project": "mlops", **(tags or {})},
    )


def with_contract(settings: Settings, models: SmallModels) -> Settings:
    """The settings, with a data contract learned from the models' batch for serving to read
    (under a dataset name of the served model's own). The synthetic batch has no nulls,
    so the contract says every feature is never null."""
    dataset = f"{SPEC.name}-{settings.serving.model_name}"
    settings = settings.model_copy(update={"quality": QualitySettings(serving_dataset=dataset)})
    profile = learn_profile(SPEC, models.raw, "e" * 64).model_copy(update={"dataset": dataset})
    save_profile(profile, settings)
    return settings


def set_alias(settings: Settings, name: str, alias: str, version: str) -> None:
    """Move `alias` of `name` to `version`."""
    registry_client(settings).set_registered_model_alias(name, alias, version)


def tamper_version(settings: Settings, name: str, version: str) -> None:
    """Flip one bit of a stored version's weights: still a valid file, another digest."""
    client = registry_client(settings)
    uri = urlparse(client.get_model_version_download_uri(name, version))
    (weights,) = Path(url2pathname(uri.path)).rglob(WEIGHTS)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))


def materialize(settings: Settings, models: SmallModels) -> None:
    """Write the batch to the offline store and materialize it into the SQLite online store."""
    from mlops.features.offline import write_offline_batch
    from mlops.features.store import apply_and_materialize

    until = pd.Timestamp(models.raw[SPEC.timestamp].max()).to_pydatetime()
    write_offline_batch(SPEC, models.schema, models.raw, "serving-batch", settings)
    apply_and_materialize(SPEC, models.schema, settings, until=until)


# --- running the service ----------------------------------------------------------------


def wait_ready(url: str, timeout_s: float = 60.0, path: str = "/readyz") -> None:
    """Poll `url + path` until it answers 200 (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(url + path, timeout=2.0)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:300]}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url}{path} not ready after {timeout_s}s: {last}")


class ServerThread:
    """The real service on uvicorn in a background thread, on a free port."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        import uvicorn

        from serving.app import create_app

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="serving", daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        wait_ready(self.url, path="/healthz")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)


class Service:
    """The running service and what the tests need to talk to it."""

    def __init__(self, url: str, settings: Settings, models: SmallModels, app: ServingApp) -> None:
        self.url = url
        self.app = app
        """The app in this process (for its `service`)."""
        self.settings = settings
        self.name = settings.serving.model_name
        self.models = models
        self.client = httpx.Client(base_url=url, headers={"X-API-Key": API_KEY}, timeout=30)
        self.admin = {"Authorization": f"Bearer {ADMIN}"}

    def predict(self, document: Any, **headers: str) -> httpx.Response:
        return self.client.post("/v1/predict", json=document, headers=headers)

    def raw(self, body: bytes) -> httpx.Response:
        return self.client.post(
            "/v1/predict", content=body, headers={"Content-Type": "application/json"}
        )

    def set_rollout(self, **fields: Any) -> None:
        """Write a rollout state to the registry and make the service read it now."""
        client = registry_client(self.settings)
        current = read_rollout(client, self.name)  # compare-and-set: derive from the stored one
        state = RolloutState(model_name=self.name, revision=current.revision, **fields)
        write_rollout(client, state, lock=RolloutLock.for_settings(self.settings))
        answer = self.client.post("/v1/admin/reload", headers=self.admin)
        assert answer.status_code == 200, answer.text
        assert answer.json()["rollout"]["status"] == state.status.value

    def metric(self, name: str, **labels: str) -> float:
        text = self.client.get("/metrics").text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@contextlib.contextmanager
def running_service(store: Settings, models: SmallModels, prefix: str) -> Iterator[Service]:
    """The real service (`ServerThread`) on a new model name with a champion (v1) and a
    challenger (v2), an API key and an admin token: a test module's `service` fixture."""
    name = unique_name(prefix)
    settings = with_serving(
        store.model_copy(update={"admin_token": ADMIN}),
        model_name=name,
        api_key=API_KEY,
        poll_interval_s=60.0,  # the tests reload through the admin endpoint
        max_rows_per_request=50,
        max_body_bytes=64 * 1024,
    )
    settings = Settings.model_validate(settings.model_dump())  # SecretStr admin token
    register_model(settings, name, models, 0)  # v1: champion (and challenger)
    register_model(settings, name, models, 1)  # v2: challenger
    with ServerThread(settings) as server:
        wait_ready(server.url)
        yield Service(server.url, settings, models, server.app)


@contextlib.contextmanager
def start_server_process(
    settings: Settings, *extra: str, port: int | None = None, ready_path: str = "/readyz"
) -> Iterator[str]:
    """`python -m serving.cli serve` as a subprocess on settings' state; yields its URL."""
    port = port or free_port()
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "serving.cli", "serve", "--port", str(port), *extra]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(url, timeout_s=90, path=ready_path)
        except TimeoutError:
            process.terminate()
            output = process.communicate(timeout=30)[0].decode(errors="replace")
            raise TimeoutError(f"server did not start:\n{output[-4000:]}") from None
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def settings_env(settings: Settings) -> dict[str, str]:
    """The `MLOPS_*` variables that reproduce the settings serving reads in another process."""
    serving = settings.serving
    env = {
        "MLOPS_HOME": str(settings.home),
        "MLOPS_TRACKING_URI": settings.resolved_tracking_uri,
        "MLOPS_ADMIN_TOKEN": settings.admin_token.get_secret_value(),
        "MLOPS_FEAST__PROJECT": settings.feast.project,
        "MLOPS_SERVING__MODEL_NAME": serving.model_name,
        "MLOPS_SERVING__POLL_INTERVAL_S": str(serving.poll_interval_s),
        "MLOPS_SERVING__BATCH_WAIT_MS": str(serving.batch_wait_ms),
        "MLOPS_SERVING__BATCH_MAX_ROWS": str(serving.batch_max_rows),
        "MLOPS_SERVING__MAX_ROWS_PER_REQUEST": str(serving.max_rows_per_request),
        "MLOPS_SERVING__MAX_BODY_BYTES": str(serving.max_body_bytes),
        "MLOPS_SERVING__IMPUTE_NULLS": str(serving.impute_nulls).lower(),
    }
    if serving.api_key is not None:
        env["MLOPS_SERVING__API_KEY"] = serving.api_key.get_secret_value()
    return env


# --- pytest fixtures (import them into a test module to use them) ---------------------


@pytest.fixture(scope="session")
def serving_models(tmp_path_factory: pytest.TempPathFactory) -> SmallModels:
    """Three small models of one synthetic batch (seconds to train)."""
    return train_models(tmp_path_factory.mktemp("serving-models"), count=3)


@pytest.fixture(scope="session")
def serving_store(
    tmp_path_factory: pytest.TempPathFactory, serving_models: SmallModels
) -> Settings:
    """Settings on a state directory whose Feast online store holds the batch's features
    (registered models are added per test module, each under its own name)."""
    settings = registry_settings(tmp_path_factory.mktemp("serving-state"))
    materialize(settings, serving_models)
    return settings


def unique_name(prefix: str) -> str:
    """A registered-model name nobody else uses in this store."""
    return f"{prefix}_{time.time_ns() % 10**10}"
