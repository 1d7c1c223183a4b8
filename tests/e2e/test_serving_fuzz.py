"""Property-based fuzzing of the prediction service from its own OpenAPI document.

Schemathesis reads `/openapi.json` of the real running service (uvicorn on a free port,
a champion and a challenger, an API key, an admin token and a data contract that says
no feature is ever null) and, for every operation, `/v1` and the Open Inference
Protocol's `/v2` alike, sends the documented examples,
boundary and negative cases (coverage phase: missing credentials, undeclared methods,
values just outside every range) and Hypothesis-generated requests, valid and invalid.
Every answer goes through every check: no 5xx, only documented status codes, content
types and headers, bodies that match their documented schema, valid requests accepted,
invalid ones refused, credentials enforced. The run is derandomized (a fixed seed), so
CI sees the same requests every time; its size is set so that it stays within a few
minutes on a 2-core machine while generating well over 1,000 requests.

One rule of the inference request is beyond JSON Schema: every input holds the same
number of rows, and its data as many values as its shape says (the document says so in
words). So that valid inference requests are judged as strictly as the others (accepted,
every one), a `map_case` hook makes each generated *valid* one agree on its rows
(`agreeing_rows`); invalid ones are sent as generated.

The run goes through Schemathesis's engine (what `st run` drives), not its pytest
plugin: a schema read from a service that a fixture starts needs the plugin's lazy
loader (`schemathesis.pytest.from_fixture`), which in 4.32.5 uses `Node._nodeid`, gone
from pytest 9.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from schemathesis import engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from schemathesis.generation.case import Case
from schemathesis.hooks import HookContext
from schemathesis.schemas import BaseSchema

from mlops.settings import Settings
from tests.serving_support import (  # noqa: F401  (fixtures)
    ServerThread,
    SmallModels,
    register_model,
    serving_models,
    serving_store,
    unique_name,
    wait_ready,
    with_contract,
    with_serving,
)

API_KEY = "fuzz-api-key"
ADMIN = "fuzz-admin-token"
MAX_ROWS = 8
"""Rows per request: small, so that generated batches (and overfull ones) stay cheap."""
MAX_EXAMPLES = 25
"""Generated requests per operation in the fuzzing phase (fewer where a schema has fewer)."""
MIN_REQUESTS = 1_000
STATEFUL = "Stateful tests"
"""The label of the stateful phase's requests (sequences of operations)."""
INFER_PATHS = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
SEED = 15
JUDGED_BY = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
}
"""Checks that must have judged answers (Schemathesis runs all of its checks that apply)."""


@dataclass
class Run:
    """What one Schemathesis run sent, got back and found."""

    seconds: float = 0.0
    statuses: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    """Answers per (operation, status); None for a request that got no answer."""
    checks: set[str] = field(default_factory=set)
    """The checks that judged at least one answer."""
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def read(self, event: events.EngineEvent) -> None:
        if isinstance(event, events.ScenarioFinished):
            recorded = event.recorder
            for interaction in recorded.interactions.values():
                response = interaction.response
                status = None if response is None else response.status_code
                self.statuses[(recorded.label, status)] += 1
            for case_id, checks in recorded.checks.items():
                for check in checks:
                    self.checks.add(check.name)
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        answer = recorded.find_response(case_id=case_id)
                        self.failures.append(
                            f"{recorded.label} {check.name}: {failure.title}: {failure.message}\n"
                            f"{check.failure_info.code_sample}\n"
                            f"answered {None if answer is None else answer.status_code}: "
                            f"{None if answer is None else answer.content[:500]!r}"
                        )
        elif isinstance(event, events.NonFatalError):
            self.errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            self.seconds = event.running_time
            self.failures += [f"{f.operation} {f.title}: {f.message}" for f in event.failures]


@pytest.fixture(scope="module")
def fuzzed_url(serving_store: Settings, serving_models: SmallModels) -> Iterator[str]:  # noqa: F811
    name = unique_name("fuzz")
    settings = with_serving(
        serving_store.model_copy(update={"admin_token": ADMIN}),
        model_name=name,
        api_key=API_KEY,
        poll_interval_s=60.0,  # admin reloads re-read the registry
        max_rows_per_request=MAX_ROWS,
    )
    settings = with_contract(Settings.model_validate(settings.model_dump()), serving_models)
    register_model(settings, name, serving_models, 0)  # v1: champion
    register_model(settings, name, serving_models, 1)  # v2: challenger
    with ServerThread(settings) as server:
        wait_ready(server.url)
        yield server.url


@pytest.fixture(scope="module")
def api_schema(fuzzed_url: str) -> BaseSchema:
    """The service's own document, with the run's settings (every check is on by default)."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "auth": {"openapi": {"ApiKey": {"api_key": API_KEY}, "AdminToken": {"bearer": ADMIN}}},
            "checks": {
                # too many rows are refused with the documented 413 (the default list lacks it)
                "negative_data_rejection": {
                    "expected-statuses": ["400", "401", "403", "404", "413", "415", "422"]
                },
            },
        }
    )
    schema = schemathesis.openapi.from_url(f"{fuzzed_url}/openapi.json", config=config)

    @schema.hook
    def map_case(context: HookContext, case: Case) -> Case:
        operation = context.operation
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        if operation is not None and operation.path in INFER_PATHS and positive:
            case.body = agreeing_rows(case.body)
        return case

    return schema


def agreeing_rows(body: Any) -> Any:
    """A valid inference request whose inputs all hold the rows of the first one (its
    shape's first dimension), their data repeated or cut to fit their shapes."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        return body
    rows = int(body["inputs"][0]["shape"][0])
    for tensor in body["inputs"]:
        shape, data = tensor["shape"], tensor["data"]
        values = rows if isinstance(data[0], list) else rows * int(math.prod(shape[1:]))
        tensor["data"] = list(itertools.islice(itertools.cycle(data), values))
        tensor["shape"] = [rows, *shape[1:]]
    return body


def test_every_answer_conforms_to_the_document(api_schema: BaseSchema) -> None:
    run = Run()
    for event in engine.from_schema(api_schema).execute():
        run.read(event)
    operations = {result.ok().label for result in api_schema.get_all_operations()}
    per_operation: dict[str, dict[int | None, int]] = {}
    for (operation, status), count in sorted(run.statuses.items(), key=str):
        per_operation.setdefault(operation, {})[status] = count
    print(  # noqa: T201  (the figures, with -s)
        f"fuzz: {run.requests} requests in {run.seconds:.1f}s, {len(run.failures)} failures",
        f"  checks: {sorted(run.checks)}",
        *(f"  {operation}: {statuses}" for operation, statuses in per_operation.items()),
        sep="\n",
    )
    assert JUDGED_BY <= run.checks, run.checks
    assert not run.errors, run.errors
    assert not run.failures, "\n".join(run.failures[:30])
    # every operation was called on its own; "Stateful tests" chains them along the links
    # Schemathesis infers (a model's metadata names its versions, for instance)
    assert {operation for operation, _ in run.statuses} - {STATEFUL} == operations
    assert run.requests >= MIN_REQUESTS, run.statuses
    assert not [key for key in run.statuses if key[1] is None or key[1] >= 500], run.statuses
    for path in INFER_PATHS:  # valid inferences were scored, not only refused
        assert run.statuses[(f"POST {path}", 200)] > 0, per_operation
