"""Hot swap under load, refusal of a broken artifact, and `serve` as a real process."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from mlops.registry.client import CHAMPION
from mlops.settings import Settings
from tests.polling import wait_for
from tests.serving_support import (  # noqa: F401  (fixtures)
    ServerThread,
    SmallModels,
    register_model,
    serving_models,
    serving_store,
    set_alias,
    start_server_process,
    tamper_version,
    unique_name,
    wait_ready,
    with_serving,
)

POLL_S = 0.3


@dataclass
class Hammer:
    """Clients sending predictions back to back until stopped; every answer is kept."""

    url: str
    body: dict[str, object]
    clients: int = 4
    statuses: Counter[int] = field(default_factory=Counter)
    versions: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Hammer:
        for k in range(self.clients):
            thread = threading.Thread(target=self._run, name=f"hammer-{k}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post("/v1/predict", json=self.body)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                with self._lock:
                    self.statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        version = answer.json()["predictions"][0]["model_version"]
                        self.versions.append((time.monotonic(), version))
                    else:
                        self.failures.append(answer.text[:300])

    def latest_version(self) -> str | None:
        with self._lock:
            return self.versions[-1][1] if self.versions else None


@pytest.fixture(scope="module")
def swap_settings(serving_store: Settings) -> Settings:  # noqa: F811
    return with_serving(serving_store, model_name=unique_name("swap"), poll_interval_s=POLL_S)


@pytest.fixture(scope="module")
def server(swap_settings: Settings, serving_models: SmallModels) -> Iterator[str]:  # noqa: F811
    register_model(swap_settings, swap_settings.serving.model_name, serving_models, 0)
    with ServerThread(swap_settings) as running:
        wait_ready(running.url)
        yield running.url


def models_info(url: str) -> dict[str, object]:
    info: dict[str, object] = httpx.get(url + "/v1/models", timeout=30).json()
    return info


def test_hot_swap_under_load_fails_no_request(
    server: str,
    swap_settings: Settings,
    serving_models: SmallModels,  # noqa: F811
) -> None:
    name = swap_settings.serving.model_name
    new = register_model(swap_settings, name, serving_models, 1)  # v2: challenger only
    body = {"instances": serving_models.rows(8)}
    with Hammer(server, body) as hammer:
        wait_for(lambda: len(hammer.versions) >= 50, "traffic on the old champion", 30)
        assert hammer.latest_version() == "1"
        moved_at = time.monotonic()
        set_alias(swap_settings, name, CHAMPION, new.version)
        wait_for(lambda: hammer.latest_version() == new.version, "the new champion", 15)
        swapped_after = time.monotonic() - moved_at
        settled = len(hammer.versions)
        wait_for(lambda: len(hammer.versions) >= settled + 50, "traffic after the swap", 30)
    assert not hammer.failures, hammer.failures[:5]
    assert set(hammer.statuses) == {200}, hammer.statuses
    assert swapped_after < 5.0  # noticed within a few poll intervals
    versions = [v for _, v in hammer.versions]
    first_new = versions.index(new.version)
    assert set(versions[:first_new]) == {"1"}
    # Once the new version answered, each other client has at most one request in
    # flight on the old model (which completes on it); after those, only the new one.
    assert set(versions[settled + hammer.clients :]) == {new.version}
    info = models_info(server)
    assert [(m["variant"], m["version"]) for m in info["models"]] == [  # type: ignore[attr-defined]
        ("champion", new.version)
    ]


def test_a_broken_artifact_is_refused_and_the_current_model_keeps_serving(
    server: str,
    swap_settings: Settings,
    serving_models: SmallModels,  # noqa: F811
) -> None:
    name = swap_settings.serving.model_name
    serving = str(models_info(server)["models"][0]["version"])  # type: ignore[index]
    broken = register_model(swap_settings, name, serving_models, 2)
    tamper_version(swap_settings, name, broken.version)
    body = {"instances": serving_models.rows(2)}
    with Hammer(server, body, clients=2) as hammer:
        wait_for(lambda: len(hammer.versions) >= 20, "traffic", 30)
        set_alias(swap_settings, name, CHAMPION, broken.version)
        wait_for(
            lambda: any(r["version"] == broken.version for r in models_info(server)["refused"]),  # type: ignore[attr-defined]
            "the refusal",
            15,
        )
        count = len(hammer.versions)
        wait_for(lambda: len(hammer.versions) >= count + 20, "traffic after the refusal", 30)
    assert set(hammer.statuses) == {200} and not hammer.failures
    assert {v for _, v in hammer.versions} == {serving}
    info = models_info(server)
    (refusal,) = [r for r in info["refused"] if r["version"] == broken.version]  # type: ignore[attr-defined]
    assert "ArtifactIntegrityError" in refusal["reason"] and "sha256" in refusal["reason"]
    assert [m["version"] for m in info["models"]] == [serving]  # type: ignore[attr-defined]
    assert "refused" in str(info["last_error"])
    metrics = httpx.get(server + "/metrics", timeout=30).text
    assert f'result="refused",version="{broken.version}"' in metrics
    # a forced reload tries again, and refuses again
    admin = {"Authorization": f"Bearer {swap_settings.admin_token.get_secret_value()}"}
    report = httpx.post(server + "/v1/admin/reload?force=true", headers=admin, timeout=60).json()
    assert report["report"]["refused"] == [broken.version]
    set_alias(swap_settings, name, CHAMPION, serving)  # leave the store as found


def test_serve_command_serves_from_a_real_process(
    swap_settings: Settings,
    serving_models: SmallModels,  # noqa: F811
) -> None:
    settings = with_serving(swap_settings, model_name=unique_name("cli"), poll_interval_s=1.0)
    register_model(settings, settings.serving.model_name, serving_models, 0)
    with start_server_process(settings, "--workers", "1", "--log-level", "warning") as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            answers = [
                client.post("/v1/predict", json={"instances": serving_models.rows(1)})
                for _ in range(20)
            ]
            assert {a.status_code for a in answers} == {200}
            assert {a.json()["predictions"][0]["model_version"] for a in answers} == {"1"}
            bad = client.post(
                "/v1/predict", content=b"{", headers={"Content-Type": "application/json"}
            )
            assert bad.status_code == 400
            metrics = client.get("/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("mlops_serving_requests_total{") and 'status="ok"' in line
    )
    assert total == 20
    assert 'mlops_serving_http_responses_total{code="400",route="/v1/predict"} 1.0' in metrics
