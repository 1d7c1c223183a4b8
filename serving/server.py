"""Starting the service on uvicorn: one process, or several workers behind one port.

One worker runs the app object in this process. Several workers are separate processes
started by uvicorn from an import string (`app_from_environment`), so their settings come
from the environment (`MLOPS_*`), as `mlops serve` reads them anyway; Prometheus
values of all workers are aggregated through `PROMETHEUS_MULTIPROC_DIR` (a fresh
folder under the state directory). Each worker holds its own models, polls the registry
itself and routes by the same registry state, so workers agree without talking.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys

from mlops.settings import Settings, get_settings
from serving.app import ServingApp, create_app
from serving.metrics import MULTIPROC_ENV, MULTIPROC_ENV_OLD

logger = logging.getLogger(__name__)

TORCH_THREADS = 1
"""Intra-op threads per process: batches of a few hundred rows through a small MLP gain
nothing from more, and on a small machine threads of several workers would fight."""
GIL_SWITCH_INTERVAL_S = 0.001
"""How long a thread may hold the GIL while another waits (Python's default: 5 ms). The
event loop shares the process with the model, online-store, registry-poll and
prediction-log threads; a shorter slice bounds how long a request waits behind them."""
KEEP_ALIVE_S = 75
"""Idle keep-alive connections are kept longer than load balancers' idle timeouts (60 s
on the common ones), so the balancer, not the service, closes them: a request never
races a server-side close (uvicorn's default is 5 s)."""


def configure_process() -> None:
    """Process-wide settings for a serving process (called once, at start)."""
    import torch

    torch.set_num_threads(TORCH_THREADS)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    # Downloads of model versions draw progress bars on stderr otherwise.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def app_from_environment() -> ServingApp:
    """The app for the environment's settings: uvicorn's factory in each of several workers."""
    configure_process()
    return create_app(get_settings(), multiprocess_metrics=True)


def run_server(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    log_level: str = "info",
) -> None:
    """Serve until interrupted; arguments left None come from `settings.serving`."""
    import uvicorn

    host = host or settings.serving.host
    port = port or settings.serving.port
    workers = workers or settings.serving.workers
    options = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
    logger.info(
        "serving model %r on http://%s:%d with %d worker(s)",
        settings.serving.model_name,
        host,
        port,
        workers,
    )
    if workers == 1:
        configure_process()
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
        return
    metrics_dir = settings.home / "serving" / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    # Before the workers import prometheus_client (they are spawned, not forked).
    os.environ[MULTIPROC_ENV] = os.environ[MULTIPROC_ENV_OLD] = str(metrics_dir)
    uvicorn.run(
        "serving.server:app_from_environment",
        factory=True,
        workers=workers,
        **options,  # type: ignore[arg-type]
    )
