"""A real Prefect stack for end-to-end tests: `prefect server start`, the deployments of
`prefect.yaml`, a process worker, the same way `make up` starts them (`devstack.localstack`).

Unlike `prefect_test_harness` (no worker, no scheduler), runs here go through the
server's triggers and a real worker, as in production. The server gets a free port and
a temporary PREFECT_HOME (SQLite); the worker's flow runs get a temporary MLOPS_HOME and
the small tuning budget, so a whole training run takes seconds, not minutes.

What the tests do not exercise is switched off in the copy of `prefect.yaml` they
deploy: schedules are inactive (a cron tick must not start runs mid-test) and only the
triggers named by `TRIGGERS_UNDER_TEST` are enabled (a registered model must not start
an hour-long canary rollout).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from devstack.localstack import (
    POOL,
    LocalStack,
    deploy,
    down,
    ensure_pool,
    free_port,
    quiet_prefect_file,
    start_server,
    start_worker,
)
from mlops.settings import Settings
from tests.e2e.conftest import SMALL_BUDGET

REPO = Path(__file__).resolve().parents[2]
TRIGGERS_UNDER_TEST = {"on-drift"}
# The guardrails as the event tests expect them: two days of window (an onset further
# back extends it), 500 new rows at least, the default cooldown (6 h) and debounce.
WORKER_ENV = {
    **SMALL_BUDGET,
    "MLOPS_RETRAINING__WINDOW_DAYS": "2",
    "MLOPS_RETRAINING__MIN_NEW_ROWS": "500",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


@dataclass(frozen=True)
class PrefectStack:
    """A running stack: its API, the deployments it holds and the flow runs' state dir."""

    stack: LocalStack
    mlops_home: Path
    deployments: tuple[str, ...]

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    @property
    def ui_url(self) -> str:
        return self.stack.ui_url

    def settings(self) -> Settings:
        """Settings pointing at the flow runs' state dir (ledger, landing folder, registry)."""
        return Settings(home=self.mlops_home, _env_file=None)  # type: ignore[call-arg]


def _deployable() -> list[str]:
    """Deployments of the local pool whose entrypoint exists in this checkout.

    The production (`mlops-ecs`) twins are not deployed: this stack has no ECS worker.
    """
    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    return [
        d["name"]
        for d in document["deployments"]
        if d["work_pool"]["name"] == POOL and (REPO / d["entrypoint"].split(":", 1)[0]).is_file()
    ]


_SHARED: dict[str, PrefectStack] = {}


@pytest.fixture(scope="session", name="prefect_stack")
def prefect_stack_fixture(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> PrefectStack:
    """Server + pool + deployments + worker, started once per session, stopped at its end.

    Test modules import `prefect_stack_fixture` (or a conftest does, once); each import
    registers a fixture of its own, yet the stack starts once and stops when the test
    session ends.
    """
    if "stack" not in _SHARED:
        _SHARED["stack"] = start_stack(tmp_path_factory.mktemp("prefect-stack"), pytestconfig)
    return _SHARED["stack"]


def start_stack(root: Path, config: pytest.Config) -> PrefectStack:
    """Start the stack under `root`; `config` stops it at the end of the session."""
    mlops_home = root / "mlops"
    stack = LocalStack(
        repo=REPO,
        run_dir=root / "run",
        prefect_home=root / "prefect",
        port=free_port(),
        worker_query_seconds=1.0,
        prefect_file=str(
            quiet_prefect_file(REPO, root / "prefect.test.yaml", triggers=TRIGGERS_UNDER_TEST)
        ),
        env={**WORKER_ENV, "MLOPS_HOME": str(mlops_home)},
    )
    config.add_cleanup(lambda: down(stack))
    start_server(stack)
    ensure_pool(stack)
    deployed = deploy(stack, _deployable())
    start_worker(stack)
    return PrefectStack(stack=stack, mlops_home=mlops_home, deployments=tuple(deployed))
