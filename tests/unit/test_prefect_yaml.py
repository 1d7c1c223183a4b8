"""`prefect.yaml` against the code: event names, entrypoints, pools and templated triggers.

Each deployment exists twice: on the local `process` pool (`make up`) and, named
`<purpose>-ecs`, on the production `ecs` pool with the image's working directory.

Trigger parameters are rendered with Prefect's own server-side code path (the one a
`run-deployment` action takes), then validated by the flow's parameter model: a typo
in a template or a payload key shows up here, not as a trigger that silently starts
nothing.
"""

from __future__ import annotations

import copy
import importlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.cli.deploy._models import DeploymentConfig, RawScheduleConfig
from prefect.client.schemas.objects import ConcurrencyLimitStrategy
from prefect.server.events.actions import RunDeployment
from prefect.server.events.schemas.events import ReceivedEvent
from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

import mlops.events
from devstack.localstack import quiet_prefect_file
from mlops.events import DRIFT_DETECTED, MODEL_REGISTERED, model_resource, model_resource_id
from mlops.settings import RowPolicy

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS = {d["name"]: d for d in DOCUMENT["deployments"]}
LOCAL_POOL, ECS_POOL, ECS_SUFFIX = "mlops-local", "mlops-ecs", "-ecs"
LOCAL = {n: d for n, d in DEPLOYMENTS.items() if d["work_pool"]["name"] == LOCAL_POOL}
ECS = {n: d for n, d in DEPLOYMENTS.items() if d["work_pool"]["name"] == ECS_POOL}
EVENT_NAMES = {
    value
    for name, value in vars(mlops.events).items()
    if name.isupper() and isinstance(value, str) and value.startswith("mlops.")
}
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def load_flow(entrypoint: str) -> Flow[Any, Any]:
    path, name = entrypoint.split(":")
    if not (ROOT / path).is_file():
        pytest.fail(f"entrypoint {entrypoint}: no file {path}")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow), f"{entrypoint} is not a Prefect flow"
    return flow


def render(parameters: dict[str, Any], event: ReceivedEvent) -> dict[str, Any]:
    """Trigger parameters as the server renders them for a `run-deployment` action."""
    rendered = copy.deepcopy(parameters)
    RunDeployment._upgrade_v1_templates(rendered)
    context = HydrationContext(
        raise_on_error=True, render_jinja=True, jinja_context={"event": event}
    )
    return hydrate(rendered, context)


def received(name: str, payload: dict[str, Any], model: str = "card_fraud") -> ReceivedEvent:
    return ReceivedEvent(
        id=uuid.uuid4(),
        occurred=NOW,
        event=name,
        resource=model_resource(model),
        payload=payload,
    )


def trigger(deployment: str) -> dict[str, Any]:
    [only] = DEPLOYMENTS[deployment]["triggers"]
    return dict(only)


def test_the_deployments_of_the_loop_are_all_there() -> None:
    names = {f"{load_flow(d['entrypoint']).name}/{d['name']}" for d in LOCAL.values()}
    assert names == {
        "training-pipeline/manual",
        "training-pipeline/scheduled",
        "training-pipeline/on-drift",
        "drift-monitor/hourly",
        "canary-rollout/on-registered",
        "canary-rollout/resume",
        "batch-scoring/on-demand",
        "sweep-silent-runs/every-5-minutes",
    }
    assert set(LOCAL) | set(ECS) == set(DEPLOYMENTS), "every deployment is on one of the pools"
    assert len(DEPLOYMENTS) == len(DOCUMENT["deployments"]), "deployment names are unique"


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_each_deployment_runs_a_flow_with_valid_parameters(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    flow = load_flow(deployment["entrypoint"])
    assert deployment.get("description"), "people read it in the UI"
    # Parameters given in the YAML are valid for the flow (pydantic models: a UI form).
    if deployment.get("parameters"):
        flow.validate_parameters(deployment["parameters"])


def test_flow_parameters_are_one_pydantic_model_so_the_ui_renders_a_form() -> None:
    for deployment in LOCAL.values():
        flow = load_flow(deployment["entrypoint"])
        schema = flow.parameters.model_dump()
        assert list(schema["properties"]) == ["params"], deployment["name"]
        assert "$ref" in str(schema["properties"]["params"]), deployment["name"]


def test_the_local_pool_works_in_the_checkout_the_worker_runs_in() -> None:
    [step] = DOCUMENT["pull"]
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $PWD }}"
    for deployment in LOCAL.values():
        assert "pull" not in deployment, "the local deployments use the top-level pull step"
        assert deployment["work_pool"]["work_queue_name"] == "default"


def test_each_local_deployment_has_an_ecs_twin_working_in_the_image() -> None:
    pools = DOCUMENT["definitions"]["work_pools"]
    assert pools["ecs"]["name"] == ECS_POOL
    assert "image" not in (pools["ecs"].get("job_variables") or {}), "image: the task def's"
    assert set(ECS) == {name + ECS_SUFFIX for name in LOCAL}
    for name, local in LOCAL.items():
        twin = ECS[name + ECS_SUFFIX]
        assert twin["pull"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/mlops"}}
        ]
        assert twin["work_pool"] == {"name": ECS_POOL, "work_queue_name": "default"} | {
            "job_variables": {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}}
        }
        # Everything else is the local deployment's: same flow, parameters, triggers.
        strip = {"name", "work_pool", "pull"}
        assert {k: v for k, v in twin.items() if k not in strip} == {
            k: v for k, v in local.items() if k not in strip
        }


def test_batch_scoring_is_started_from_a_form() -> None:
    deployment = DEPLOYMENTS["on-demand"]
    flow = load_flow(deployment["entrypoint"])
    assert flow.name == "batch-scoring" and "parameters" not in deployment
    params = flow.validate_parameters({"params": {"data": "s3://bucket/inbox/x.parquet"}})
    assert params["params"].alias == "champion"


def test_triggers_use_the_event_names_of_mlops_events() -> None:
    triggers = [t for d in DOCUMENT["deployments"] for t in d.get("triggers") or []]
    assert triggers
    for spec in triggers:
        assert spec["type"] == "event" and spec["posture"] == "Reactive"
        assert set(spec["expect"]) <= EVENT_NAMES, spec["expect"]
        assert spec["match"]["prefect.resource.id"] == model_resource_id("*")


def test_the_schedules_are_in_utc() -> None:
    nightly = DEPLOYMENTS["scheduled"]["schedules"]
    hourly = DEPLOYMENTS["hourly"]["schedules"]
    assert [(s["cron"], s["timezone"]) for s in nightly] == [("0 2 * * *", "UTC")]
    assert [(s["cron"], s["timezone"]) for s in hourly] == [("0 * * * *", "UTC")]


def test_a_drift_event_is_templated_into_a_retraining_request() -> None:
    onset = NOW - timedelta(days=3)
    # What the drift monitor sends (mlops.monitoring.drift_payload) plus an onset.
    event = received(
        DRIFT_DETECTED,
        {
            "model_name": "card_fraud",
            "drift_share": 0.75,
            "drifted_features": ["amount", "channel"],
            "window_start": (NOW - timedelta(hours=1)).isoformat(),
            "window_end": NOW.isoformat(),
            "reason": "3 of 4 features drifted",
            "onset": onset.isoformat(),
            "rows": 5000,
        },
    )
    spec = trigger("on-drift")
    assert spec["expect"] == [DRIFT_DETECTED]
    parameters = render(spec["parameters"], event)
    flow = load_flow(DEPLOYMENTS["on-drift"]["entrypoint"])
    params = flow.validate_parameters(parameters)["params"]
    request = params.retrain
    assert params.data is None and params.train
    assert request.event_id == str(event.id) and request.trigger.value == "drift"
    assert request.model_name == "card_fraud" and request.drift_share == 0.75
    assert request.drifted_features == ("amount", "channel")
    assert request.onset == onset and request.reason == "3 of 4 features drifted"
    assert params.policy is RowPolicy.QUARANTINE_ROWS


def test_unattended_retraining_quarantines_bad_rows_instead_of_refusing_the_window() -> None:
    # A soak found one plausible outlier (0.01 % of a window) rejecting every retraining
    # while it stayed in the window; a person's own batch keeps the settings' policy.
    for name in ("scheduled", "on-drift", "scheduled-ecs", "on-drift-ecs"):
        deployment = DEPLOYMENTS[name]
        parameters = trigger(name)["parameters"] if "triggers" in deployment else None
        params = (parameters or deployment["parameters"])["params"]
        assert params["policy"] == RowPolicy.QUARANTINE_ROWS.value, name
    assert "policy" not in DEPLOYMENTS["manual"]["parameters"]["params"]


def test_a_minimal_drift_event_still_starts_a_run() -> None:
    # Without an onset the drifted window's start is used; without anything, defaults.
    start = NOW - timedelta(hours=1)
    flow = load_flow(DEPLOYMENTS["on-drift"]["entrypoint"])
    spec = trigger("on-drift")
    windowed = flow.validate_parameters(
        render(spec["parameters"], received(DRIFT_DETECTED, {"window_start": start.isoformat()}))
    )
    assert windowed["params"].retrain.onset == start
    bare = flow.validate_parameters(render(spec["parameters"], received(DRIFT_DETECTED, {})))
    request = bare["params"].retrain
    assert request.onset is None and request.drift_share is None
    assert request.drifted_features == () and request.reason == "drift detected"


def test_a_registered_model_is_templated_into_a_canary_rollout() -> None:
    spec = trigger("on-registered")
    assert spec["expect"] == [MODEL_REGISTERED]
    # tasks/training.py register_model_task's payload.
    event = received(MODEL_REGISTERED, {"version": "7", "aliases": ["challenger"]})
    flow = load_flow(DEPLOYMENTS["on-registered"]["entrypoint"])
    params = flow.validate_parameters(render(spec["parameters"], event))["params"]
    assert (params.model_name, params.version) == ("card_fraud", "7")
    assert params.watch_seconds > 0
    assert 0 < params.watch_seconds <= MAX_WATCH_SECONDS, "a short watch, never an hour"
    assert params.start


MAX_WATCH_SECONDS = 300
CANARY = {n: d for n, d in DEPLOYMENTS.items() if d["entrypoint"].startswith("flows/canary.py")}


def test_every_canary_deployment_validates_as_prefect_reads_it() -> None:
    assert set(CANARY) == {"on-registered", "resume", "on-registered-ecs", "resume-ecs"}
    for name, deployment in CANARY.items():
        config = DeploymentConfig.model_validate(deployment)
        assert config.name == name


def test_active_rollouts_are_advanced_by_a_short_schedule_that_starts_nothing() -> None:
    resume = DEPLOYMENTS["resume"]
    [schedule] = resume["schedules"]
    interval = RawScheduleConfig.model_validate(schedule).interval
    assert interval is not None and timedelta(minutes=1) <= interval <= timedelta(minutes=10)
    flow = load_flow(resume["entrypoint"])
    assert flow.name == "canary-rollout"
    params = flow.validate_parameters(resume["parameters"])["params"]
    assert (params.model_name, params.start, params.version) == ("card_fraud", False, None)
    assert params.watch_seconds == 0, "one step per run"
    assert "triggers" not in resume


def test_no_canary_run_watches_for_long() -> None:
    flow = load_flow(DEPLOYMENTS["resume"]["entrypoint"])
    for deployment in CANARY.values():
        specs = [deployment.get("parameters") or {}] + [
            t["parameters"] for t in deployment.get("triggers") or []
        ]
        for spec in specs:
            watch = (spec.get("params") or {}).get("watch_seconds", 0)
            assert watch <= MAX_WATCH_SECONDS, deployment["name"]
    default = flow.validate_parameters({})["params"]
    assert default.watch_seconds == 0, "a run started by hand takes one step"
    with pytest.raises(Exception, match="watch_seconds"):
        flow.validate_parameters({"params": {"watch_seconds": 3600}})


def test_canary_deployments_run_one_at_a_time() -> None:
    strategies = {}
    for name, deployment in CANARY.items():
        limit = deployment["concurrency_limit"]
        assert limit["limit"] == 1, name
        strategies[name] = ConcurrencyLimitStrategy(limit["collision_strategy"])
    # a registration is never dropped; a scheduled step is skipped while one runs
    assert strategies["on-registered"] is ConcurrencyLimitStrategy.ENQUEUE
    assert strategies["resume"] is ConcurrencyLimitStrategy.CANCEL_NEW


def test_the_quiet_copy_keeps_the_resume_deployment_with_its_schedule_off(
    tmp_path: Path,
) -> None:
    path = quiet_prefect_file(ROOT, tmp_path / "prefect.yaml", triggers=())
    quiet = {d["name"]: d for d in yaml.safe_load(path.read_text())["deployments"]}
    assert set(quiet) == set(LOCAL)
    resume = quiet["resume"]
    assert [s["active"] for s in resume["schedules"]] == [False]
    assert RawScheduleConfig.model_validate(resume["schedules"][0]).interval is not None
    assert resume["concurrency_limit"] == DEPLOYMENTS["resume"]["concurrency_limit"]
    assert DeploymentConfig.model_validate(resume).name == "resume"
    # the original's schedule (shared by the ECS twin through the merge key) is untouched
    assert "active" not in DEPLOYMENTS["resume-ecs"]["schedules"][0]
