"""The local stack behind `make up` / `make down`: a Prefect server, the deployments, a worker.

`up` starts `prefect server start` (its UI at http://127.0.0.1:4200) with PREFECT_HOME
under the state directory, waits until `/api/health` answers, creates the `process`
work pool if it is missing, registers the deployments of `prefect.yaml` on that pool,
creates the notification automations of `infra/prefect/automations.yaml` when a
destination is configured (`devstack.notifications_setup`), starts one worker on the pool
or several (`--workers N`: they share the pool's runs) and, with `--serve`, the
prediction service. Each process runs in a session of its
own, detached from the terminal, with its pid file and log under `<state dir>/run/`;
`down` stops them by pid: SIGTERM, then SIGINT, then SIGKILL.

Two profiles, as the settings say (`MLOPS_PROFILE`, or `up --profile`):
- embedded: the server keeps SQLite under PREFECT_HOME; flow runs use the embedded
  backends (SQLite, local files).
- production: the server runs on PostgreSQL (`MLOPS_PREFECT_DATABASE_URL`, passed as
  `PREFECT_API_DATABASE_CONNECTION_URL` with the asyncpg driver), and the worker's flow
  runs get `MLOPS_PROFILE=production`, so they use the production settings: MLflow and
  Optuna on PostgreSQL, artifacts in S3 (`MLOPS_S3_ENDPOINT_URL`, also exported as
  `MLFLOW_S3_ENDPOINT_URL`), the Feast SQL registry and the Redis online store.

Only subprocess management lives here (no Prefect import): the end-to-end tests start
the same stack on a free port through `LocalStack`.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from pydantic import SecretStr, ValidationError

from mlops.errors import ConfigError, PipelineError
from mlops.notifications import AUTOMATIONS_FILE, load_automations
from mlops.settings import (
    FlowRunSettings,
    NotificationSettings,
    Profile,
    Settings,
    get_settings,
)

POOL = "mlops-local"
SERVER, WORKER, SERVING = "server", "worker", "serving"
_MARKERS = {
    SERVER: ("prefect", "server"),
    WORKER: ("devstack.worker",),
    SERVING: ("serving.cli", "serve"),
}
"""Words the command line of each component holds: a pid file naming another process
(the pid was reused after a reboot) is ignored instead of killing a stranger."""


class StackError(PipelineError):
    """A part of the local stack did not start (its log says why)."""


def _kind(component: str) -> str:
    """`worker-2` -> `worker`: the kind of a component (extra workers are numbered)."""
    return component.partition("-")[0]


def worker_component(index: int) -> str:
    """The component name of the `index`-th worker (1-based): worker, worker-2, ..."""
    return WORKER if index == 1 else f"{WORKER}-{index}"


@dataclass(frozen=True)
class LocalStack:
    """Where the stack keeps its state and how it is reached.

    Attributes:
        repo: the checkout holding `prefect.yaml`; deployments and the worker run there.
        run_dir: pid files and logs.
        prefect_home: PREFECT_HOME of the server (its SQLite database when
            `database_url` is unset).
        env: extra environment of every process (the worker's flow runs inherit it).
        workers: process workers started on the pool; they share its flow runs.
        worker_limit: flow runs one worker runs at a time (`prefect worker start
            --limit`); unlimited when None.
        profile: the settings profile the flow runs get (`MLOPS_PROFILE`).
        database_url: the server's database (`postgresql+asyncpg://...`); None: SQLite.
    """

    repo: Path
    run_dir: Path
    prefect_home: Path
    host: str = "127.0.0.1"
    port: int = 4200
    pool: str = POOL
    worker_query_seconds: float = 2.0
    prefect_file: str = "prefect.yaml"
    serving_port: int = 8000
    env: Mapping[str, str] = field(default_factory=dict)
    workers: int = 1
    worker_limit: int | None = None
    profile: Profile = Profile.EMBEDDED
    database_url: str | None = None
    flow_heartbeat_s: int = FlowRunSettings().heartbeat_s

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        repo: Path | None = None,
        port: int | None = None,
        workers: int = 1,
    ) -> LocalStack:
        """The stack of `make up`: state under the settings' home, in their profile.

        The port is the one given, else the one `up` last used (remembered in the run
        directory), else 4200. In the production profile the server's database is
        `settings.prefect_database_url` (`up` refuses to start without it), and every
        process gets the profile and the S3 endpoint explicitly: the rest of the
        production settings reach the flow runs through the inherited environment (and
        `.env` in the checkout they run in).
        """
        run_dir = settings.home / "run"
        if port is None:
            try:
                port = int((run_dir / "port").read_text())
            except (OSError, ValueError):
                port = 4200
        env = {"MLOPS_PROFILE": settings.profile.value, "MLOPS_HOME": str(settings.home)}
        if settings.s3_endpoint_url:
            env["MLOPS_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
            env["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
        production = settings.profile is Profile.PRODUCTION
        return cls(
            repo=(repo or Path.cwd()).resolve(),
            run_dir=run_dir,
            prefect_home=settings.prefect_home,
            port=port,
            serving_port=settings.serving.port,
            env=env,
            workers=workers,
            profile=settings.profile,
            database_url=settings.prefect_server_database_url if production else None,
            flow_heartbeat_s=settings.runs.heartbeat_s,
        )

    @property
    def api_url(self) -> str:
        """What clients set as PREFECT_API_URL."""
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        """The Prefect UI."""
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The environment of the stack's processes."""
        env = dict(os.environ)
        env.update(self.env)
        env.update(
            {
                "PREFECT_HOME": str(self.prefect_home),
                "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_WORKER_QUERY_SECONDS": f"{self.worker_query_seconds:g}",
                # The deployments' pull step works in "{{ $PWD }}": the checkout.
                "PWD": str(self.repo),
            }
        )
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        # Flow runs beat, so a run whose worker was killed is noticed (FlowRunSettings).
        env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(self.flow_heartbeat_s))
        # Long-lived threaded processes (server, worker, service) otherwise keep growing
        # glibc's per-thread malloc arenas for hours: fragmentation that reads as a leak.
        env.setdefault("MALLOC_ARENA_MAX", "2")
        return env

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        """Where a component writes its output."""
        return self.run_dir / f"{name}.log"


def _bin(tool: str) -> str:
    """A console script of the running interpreter's environment (the venv's prefect)."""
    candidate = Path(sys.executable).parent / tool
    return str(candidate) if candidate.exists() else tool


# --------------------------------------------------------------------------- processes


def _spawn(stack: LocalStack, name: str, command: Sequence[str]) -> int:
    """Start a detached component (its own session) and record its pid."""
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    stack.prefect_home.mkdir(parents=True, exist_ok=True)
    with stack.log_file(name).open("ab") as log:
        process = subprocess.Popen(
            list(command),
            cwd=stack.repo,
            env=stack.environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack._pid_file(name).write_text(f"{process.pid}\n")
    return process.pid


def running_pid(stack: LocalStack, name: str) -> int | None:
    """The pid of a running component started by this stack, or None."""
    path = stack._pid_file(name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if not _alive(pid) or not _is_ours(pid, name):
        return None
    return pid


def _alive(pid: int) -> bool:
    try:  # our own child (the tests' stack): reap it if it has exited
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _is_ours(pid: int, name: str) -> bool:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no /proc (macOS): trust the pid file
    return all(marker in words for marker in _MARKERS[_kind(name)])


def stop(stack: LocalStack, name: str, timeout: float = 15.0) -> bool:
    """Stop a component and its children: SIGTERM, then SIGINT, then SIGKILL.

    The component leads its own process group, so the signal reaches what it started
    (uvicorn's workers, the worker's flow-run processes). Returns False when it was
    not running.
    """
    pid = running_pid(stack, name)
    stack._pid_file(name).unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGINT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.1)
    return not _alive(pid)


def _wait_until(
    ready: Callable[[], bool],
    what: str,
    timeout: float,
    stack: LocalStack,
    name: str,
    pid: int | None,
) -> None:
    """Poll `ready` until it is true; fail early (with the log's tail) if `pid` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if pid is not None and not _alive(pid):
            raise StackError(f"{what}: the process exited\n{_tail(stack.log_file(name))}")
        time.sleep(0.25)
    raise StackError(f"{what}: not ready after {timeout:.0f} s\n{_tail(stack.log_file(name))}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return None


# --------------------------------------------------------------------------- components


def api_healthy(stack: LocalStack) -> bool:
    """The server answers `/api/health`."""
    response = _get(f"{stack.api_url}/health")
    return response is not None and response.status_code == 200


def start_server(stack: LocalStack, timeout: float = 180.0) -> int:
    """Start the Prefect server (unless running) and wait until it is healthy.

    In the production profile the server migrates and uses the PostgreSQL database of
    `stack.database_url`. A running server of the other profile is not reused.
    """
    if stack.profile is Profile.PRODUCTION and not stack.database_url:
        raise StackError(
            "the production profile runs the Prefect server on PostgreSQL: "
            "set MLOPS_PREFECT_DATABASE_URL=postgresql://..."
        )
    profile_file = stack.run_dir / "server.profile"
    pid = running_pid(stack, SERVER)
    if pid is not None:
        running = profile_file.read_text().strip() if profile_file.is_file() else "embedded"
        if running != stack.profile.value:
            raise StackError(
                f"a Prefect server of the {running} profile runs (pid {pid}): "
                "stop it first (`make down`)"
            )
    else:
        if api_healthy(stack):
            raise StackError(f"another Prefect server already answers at {stack.api_url}")
        command = [_bin("prefect"), "server", "start", "--host", stack.host]
        command += ["--port", str(stack.port), "--analytics-off"]
        pid = _spawn(stack, SERVER, command)
        profile_file.write_text(f"{stack.profile.value}\n")
    _wait_until(lambda: api_healthy(stack), "Prefect server", timeout, stack, SERVER, pid)
    return pid


def ensure_pool(stack: LocalStack) -> bool:
    """Create the `process` work pool when it does not exist; True when created."""
    response = _get(f"{stack.api_url}/work_pools/{stack.pool}")
    if response is not None and response.status_code == 200:
        return False
    _run(
        stack,
        "work-pool",
        [_bin("prefect"), "work-pool", "create", stack.pool, "--type", "process"],
    )
    return True


def deployments_in(stack: LocalStack) -> list[tuple[str, str]]:
    """(deployment name, entrypoint) of the prefect file's deployments on the stack's pool.

    Deployments of other pools (the production `mlops-ecs` pool) are not this stack's.
    """
    document = yaml.safe_load((stack.repo / stack.prefect_file).read_text())
    return [
        (d["name"], d["entrypoint"])
        for d in document.get("deployments") or []
        if (d.get("work_pool") or {}).get("name") in (None, stack.pool)
    ]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def quiet_prefect_file(
    repo: Path,
    path: Path,
    *,
    triggers: Collection[str] | None = None,
    adjust: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Write `prefect.yaml`'s local deployments with their schedules off, for a driven stack.

    Tests and scenarios drive the clock themselves: a cron tick must not start runs
    under them. Only the local pool's deployments are kept, each a deep copy (the
    production twins share schedules and triggers with them through YAML merge keys).

    Args:
        repo: the checkout holding `prefect.yaml`.
        path: where the copy goes.
        triggers: deployments whose triggers stay enabled (None: all of them).
        adjust: called with each kept deployment, to edit it in place.
    """
    document = yaml.safe_load((repo / "prefect.yaml").read_text())
    document["deployments"] = [
        copy.deepcopy(d) for d in document["deployments"] if d["work_pool"]["name"] == POOL
    ]
    for deployment in document["deployments"]:
        for schedule in deployment.get("schedules") or []:
            schedule["active"] = False
        for trigger in deployment.get("triggers") or []:
            trigger["enabled"] = triggers is None or deployment["name"] in triggers
        if adjust is not None:
            adjust(deployment)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def deploy(stack: LocalStack, names: Sequence[str] | None = None) -> list[str]:
    """Register deployments (all by default) on the server; returns those registered.

    A deployment whose entrypoint file does not exist (yet) is left out with a
    warning instead of failing the others.
    """
    wanted = []
    for name, entrypoint in deployments_in(stack):
        if names is not None and name not in names:
            continue
        if not (stack.repo / entrypoint.split(":", 1)[0]).is_file():
            typer.secho(f"skipping deployment {name!r}: {entrypoint} not found", err=True)
            continue
        wanted.append(name)
    if not wanted:
        return []
    command = [_bin("prefect"), "deploy", "--no-prompt", "--prefect-file", stack.prefect_file]
    for name in wanted:
        command += ["--name", name]
    _run(stack, "deploy", command)
    return wanted


_NOTIFY_ENV = "MLOPS_NOTIFICATIONS__"


def deploy_notifications(stack: LocalStack, settings: NotificationSettings) -> str:
    """Create the notification block and the automations of `infra/prefect/automations.yaml`.

    Runs `python -m devstack.notifications_setup` against the stack's server (its output
    in `notifications.log`): automations are updated by name, never duplicated. Without
    a destination in the settings nothing is created. Returns the line `up` and
    `deploy` print.
    """
    path = stack.repo / AUTOMATIONS_FILE
    rules = load_automations(path).automations
    ui_url = settings.ui_url or stack.ui_url
    command = [sys.executable, "-m", "devstack.notifications_setup", "--file", str(path)]
    # The child reads these settings, not whatever its environment would give. It always
    # creates the automation that crashes silent flow runs; the rest needs a destination.
    env = {k: v for k, v in stack.environment().items() if not k.startswith(_NOTIFY_ENV)}
    for name, value in settings.model_dump().items():
        if value is not None:
            secret = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[f"{_NOTIFY_ENV}{name.upper()}"] = str(secret)
    _run(stack, "notifications", [*command, "--ui-url", ui_url], env=env)
    return notifications_line(settings, len(rules))


def notifications_line(settings: NotificationSettings, rules: int) -> str:
    """What `up` and `deploy` print about notifications: where they go, or how to turn
    them on."""
    if not settings.configured:
        return (
            "notifications   off: set MLOPS_NOTIFICATIONS__URL (a webhook; or Slack, e-mail: "
            "docs/runbook.md) to be told of promotions, rollbacks and failed runs"
        )
    return (
        f"notifications   {rules} automations -> {settings.destination()} "
        f"(block {settings.block_name})"
    )


def _run(
    stack: LocalStack, name: str, command: Sequence[str], env: Mapping[str, str] | None = None
) -> None:
    """Run a short CLI step to completion, its output appended to `<name>.log`.

    `env`: the step's whole environment; the stack's (`LocalStack.environment`) if None.
    """
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    with stack.log_file(name).open("ab") as log:
        done = subprocess.run(
            list(command),
            cwd=stack.repo,
            env=dict(env) if env is not None else stack.environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise StackError(f"{' '.join(command[1:])} failed\n{_tail(stack.log_file(name))}")


def workers_online(stack: LocalStack, name: str | None = None) -> int:
    """Workers of the pool with a recent heartbeat (only the one called `name` if given)."""
    try:
        response = httpx.post(
            f"{stack.api_url}/work_pools/{stack.pool}/workers/filter", json={}, timeout=2.0
        )
    except httpx.HTTPError:
        return 0
    if response.status_code != 200:
        return 0
    return sum(
        1
        for worker in response.json()
        if worker.get("status") == "ONLINE" and name in (None, worker.get("name"))
    )


def _launch_worker(stack: LocalStack, index: int) -> tuple[int, str | None]:
    """Start the `index`-th process worker unless it runs; (pid, worker name)."""
    component = worker_component(index)
    name_file = stack.run_dir / f"{component}.name"
    pid = running_pid(stack, component)
    if pid is None:
        fresh = f"{stack.pool}-{uuid.uuid4().hex[:8]}"
        # `prefect worker start`, collecting the garbage each submitted run leaves.
        command = [sys.executable, "-m", "devstack.worker", "--pool", stack.pool, "--name", fresh]
        if stack.worker_limit is not None:
            command += ["--limit", str(stack.worker_limit)]
        pid = _spawn(stack, component, command)
        name_file.write_text(fresh)
    name = name_file.read_text().strip() if name_file.is_file() else None
    return pid, name


def _wait_worker(stack: LocalStack, index: int, pid: int, name: str | None, timeout: float) -> None:
    def online() -> bool:
        return workers_online(stack, name) > 0

    what = "Prefect worker" if index == 1 else f"Prefect worker {index}"
    _wait_until(online, what, timeout, stack, worker_component(index), pid)


def start_worker(stack: LocalStack, timeout: float = 120.0, index: int = 1) -> int:
    """Start a process worker on the pool (unless running); wait until it is online.

    The worker gets a name of its own, so a heartbeat left by an earlier worker of the
    pool is not taken for this one's.
    """
    pid, name = _launch_worker(stack, index)
    _wait_worker(stack, index, pid, name, timeout)
    return pid


def start_workers(stack: LocalStack, timeout: float = 120.0) -> list[int]:
    """Start `stack.workers` process workers on the pool (all launched, then awaited).

    They poll the same pool: the server hands each scheduled run to one of them, so
    runs spread over the workers (with `worker_limit`, none takes more than its share).
    """
    launched = [(i, *_launch_worker(stack, i)) for i in range(1, stack.workers + 1)]
    for index, pid, name in launched:
        _wait_worker(stack, index, pid, name, timeout)
    return [pid for _, pid, _ in launched]


def worker_names(stack: LocalStack) -> dict[str, str]:
    """Component -> Prefect worker name of the workers this stack started."""
    names: dict[str, str] = {}
    for path in sorted(stack.run_dir.glob(f"{WORKER}*.name")):
        names[path.stem] = path.read_text().strip()
    return names


def _worker_components(stack: LocalStack) -> list[str]:
    """Workers with a pid file in the run directory (also those of an earlier `up`)."""
    found = {path.stem for path in stack.run_dir.glob(f"{WORKER}*.pid")}
    found.update(worker_component(i) for i in range(1, stack.workers + 1))
    return sorted(found, key=lambda c: (len(c), c))


def start_serving(stack: LocalStack, timeout: float = 120.0) -> int | None:
    """Start the prediction service if this checkout has one; None when it has not."""
    if not (stack.repo / "serving" / "cli.py").is_file():
        return None
    pid = running_pid(stack, SERVING)
    if pid is None:
        command = [sys.executable, "-m", "serving.cli", "serve", "--port", str(stack.serving_port)]
        pid = _spawn(stack, SERVING, command)
    url = f"http://{stack.host}:{stack.serving_port}/healthz"

    def alive() -> bool:
        response = _get(url)
        return response is not None and response.status_code == 200

    _wait_until(alive, "prediction service", timeout, stack, SERVING, pid)
    return pid


def up(
    stack: LocalStack,
    *,
    serve: bool = False,
    notifications: NotificationSettings | None = None,
) -> str:
    """Server, work pool, deployments, automations, workers (and the prediction service).

    Returns the line saying where notifications go (`deploy_notifications`); the
    process settings' `notifications` when none are given.
    """
    start_server(stack)
    ensure_pool(stack)
    deploy(stack)
    told = deploy_notifications(stack, notifications or get_settings().notifications)
    start_workers(stack)
    if serve:
        start_serving(stack)
    return told


def down(stack: LocalStack, timeout: float = 15.0) -> list[str]:
    """Stop every component (workers first); returns the names that were running."""
    order = [SERVING, *_worker_components(stack), SERVER]
    return [name for name in order if stop(stack, name, timeout)]


# --------------------------------------------------------------------------- CLI

localstack_app = typer.Typer(
    help="The local stack: Prefect server and UI, deployments, workers.", no_args_is_help=True
)


def _stack(port: int | None = None, profile: Profile | None = None, workers: int = 1) -> LocalStack:
    settings = get_settings()
    if profile is not None and profile is not settings.profile:
        # The environment's settings, in the profile asked for (validated as such).
        settings = Settings(profile=profile)
    return LocalStack.from_settings(settings, port=port, workers=workers)


@localstack_app.command("up")
def up_command(
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Also start the prediction service.")
    ] = False,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Server port (default 4200).")
    ] = None,
    profile: Annotated[
        Profile | None,
        typer.Option(
            help="Settings profile (default: MLOPS_PROFILE). production: the server on "
            "PostgreSQL, flow runs on PostgreSQL, Redis and S3."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=16, help="Process workers sharing the pool's runs.")
    ] = 1,
) -> None:
    """Start the Prefect server (UI), register the deployments and start the workers.

    `make up` runs it; `make up PROFILE=production WORKERS=2` passes `--profile
    production --workers 2`. The production profile reads its settings from the
    environment or `.env` (see `.env.example`): the server runs on
    MLOPS_PREFECT_DATABASE_URL (migrated on start); the workers' flow runs use
    MLOPS_DATABASE_URL, MLOPS_TRACKING_URI, MLOPS_OPTUNA_STORAGE,
    MLOPS_FEAST__REGISTRY_URL, MLOPS_FEAST__ONLINE_STORE=redis, MLOPS_S3_BUCKET and
    MLOPS_S3_ENDPOINT_URL (also MLFLOW_S3_ENDPOINT_URL). `make down` stops it.
    """
    try:
        stack = _stack(port, profile, workers)
    except ValidationError as exc:
        typer.secho(f"settings: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    (stack.run_dir / "port").write_text(f"{stack.port}\n")
    try:
        told = up(stack, serve=serve)
    except (StackError, ConfigError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    database = "PostgreSQL" if stack.database_url else f"SQLite under {stack.prefect_home}"
    typer.echo(
        f"profile         {stack.profile.value} (Prefect server on {database})\n"
        f"Prefect UI      {stack.ui_url}\n"
        f"deployments     {', '.join(n for n, _ in deployments_in(stack))}\n"
        f"workers         {stack.workers} on pool {stack.pool}, logs in {stack.run_dir}\n"
        f"{told}\n"
        f"use it          export PREFECT_API_URL={stack.api_url}\n"
        "stop            make down"
    )


@localstack_app.command("deploy")
def deploy_command() -> None:
    """(Re-)register the deployments of prefect.yaml and the automations on the running server."""
    stack = _stack()
    if not api_healthy(stack):
        typer.secho(f"no Prefect server at {stack.api_url}: run `make up`", err=True)
        raise typer.Exit(1)
    try:
        ensure_pool(stack)
        typer.echo(f"deployed: {', '.join(deploy(stack))}")
        typer.echo(deploy_notifications(stack, get_settings().notifications))
    except (StackError, ConfigError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


@localstack_app.command("down")
def down_command() -> None:
    """Stop what `up` started (by pid)."""
    stopped = down(_stack())
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@localstack_app.command("status")
def status_command() -> None:
    """Which components run, and whether the API answers."""
    stack = _stack()
    for name in (SERVER, *_worker_components(stack), SERVING):
        pid = running_pid(stack, name)
        typer.echo(f"{name:8} {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")
    healthy = api_healthy(stack)
    typer.echo(f"api      {stack.api_url} {'healthy' if healthy else 'unreachable'}")
    if healthy:
        typer.echo(f"workers  {workers_online(stack)} online on {stack.pool}")


if __name__ == "__main__":
    localstack_app()
