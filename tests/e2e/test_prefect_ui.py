"""The Prefect UI of the local stack, in a headless browser: what a person sees.

The deployments page must list the deployments of `prefect.yaml`, and a flow run's
page must show the artifacts it left (here the retraining guardrails' report, which a
person reads instead of the logs). Screenshots go to the test's tmp directory.

Needs Chromium and Python Playwright (`apt-get install -y chromium`,
`pip install playwright==1.65.2`; no browser download). Without them the test skips,
except under `CI=true`, where it fails.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from tests.e2e.prefect_stack import REPO, PrefectStack, prefect_stack_fixture  # noqa: F401

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


DATASET = "card_fraud_ui"
ARTIFACT_KEY = "retraining-guardrails-card-fraud-ui"


def _chromium() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    reason = None
    if not Path(path).is_file():
        reason = f"no Chromium at {path} (apt-get install -y chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            reason = "Python Playwright is not installed (pip install playwright==1.65.2)"
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: the browser test must run)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium; checked before the stack starts, so a missing browser skips fast."""
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()


def guarded_run(stack: PrefectStack, root: Path) -> dict[str, Any]:
    """Start `training-pipeline/on-drift` for a dataset with no landed data; wait for it.

    The guardrails hold it back (insufficient data) within seconds, leaving their report
    as an artifact: a quick run whose page has something for a person to read.
    """
    spec = yaml.safe_load((REPO / "datasets" / "card_fraud.yaml").read_text())
    spec["name"] = DATASET
    spec_path = root / f"{DATASET}.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    with httpx.Client(base_url=stack.api_url, timeout=10.0) as api:
        deployment = api.get("/deployments/name/training-pipeline/on-drift").json()
        parameters = {
            "params": {
                "dataset_config": str(spec_path),
                "retrain": {"trigger": "manual", "reason": "started by the UI test"},
            }
        }
        run = api.post(
            f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": parameters}
        ).json()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            run = api.get(f"/flow_runs/{run['id']}").json()
            if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return dict(run)
            time.sleep(0.5)
    raise AssertionError(f"the run did not finish: {run['state_type']}")


def test_the_ui_shows_the_deployments_and_a_runs_artifacts(
    browser: Browser, prefect_stack: PrefectStack, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    run = guarded_run(prefect_stack, tmp_path)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["state"]["message"].startswith("suppressed: insufficient data")

    page.goto(f"{prefect_stack.ui_url}/deployments")
    for name in prefect_stack.deployments:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    page.screenshot(path=tmp_path / "deployments.png", full_page=True)

    page.goto(f"{prefect_stack.ui_url}/runs/flow-run/{run['id']}")
    expect(page.get_by_text(run["name"]).first).to_be_visible()
    page.locator(".p-tab", has_text="Artifacts").click()
    card = page.locator(".artifact-card", has_text=ARTIFACT_KEY)
    expect(card).to_be_visible()
    page.screenshot(path=tmp_path / "flow-run-artifacts.png", full_page=True)

    card.click()
    expect(page.get_by_text("Retraining guardrails: no retraining").first).to_be_visible()
    expect(page.get_by_text("insufficient data: 0 new rows").first).to_be_visible()
    page.screenshot(path=tmp_path / "artifact.png", full_page=True)
    print(f"\nscreenshots: {tmp_path}")  # noqa: T201 - where to look
