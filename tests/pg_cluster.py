"""A private, throwaway PostgreSQL cluster that a test may stop and start at will.

The shared server at 127.0.0.1:5432 must never be stopped by a test, so tests that
need a database outage run their own cluster: `initdb` into a temporary directory,
`pg_ctl start` on a free port (trust auth, unix socket in the same directory,
`fsync=off`), and `destroy()` removes everything. PostgreSQL refuses to run as
root: when the tests run as root, the cluster runs as the `postgres` system user
through `runuser` and the temporary directory belongs to that user.

`TEST_PG_BIN` overrides the binaries' folder (default: PostgreSQL 15 on Debian).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

from devstack.localstack import free_port

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVICE_USER = "postgres"
_READY_TIMEOUT_S = 30.0


class ClusterUnavailable(RuntimeError):
    """The private cluster could not be created or started; the message says why."""


class PrivateCluster:
    """One PostgreSQL cluster in its own temporary directory, on its own port."""

    def __init__(self, root: Path, port: int, run_as: str | None) -> None:
        self.root = root
        self.port = port
        self.run_as = run_as
        self.data = root / "data"
        self.logfile = root / "server.log"

    @classmethod
    def create(cls, attempts: int = 3) -> PrivateCluster:
        """initdb + start; raises `ClusterUnavailable` with the reason if impossible."""
        if not (PG_BIN / "initdb").exists():
            raise ClusterUnavailable(f"no initdb in {PG_BIN} (set TEST_PG_BIN)")
        run_as: str | None = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SERVICE_USER)
            except KeyError as exc:
                raise ClusterUnavailable(
                    f"running as root and there is no {SERVICE_USER!r} user to run "
                    "PostgreSQL as (initdb refuses root)"
                ) from exc
            if shutil.which("runuser") is None:
                raise ClusterUnavailable("running as root and `runuser` is missing")
            run_as = SERVICE_USER
        root = Path(tempfile.mkdtemp(prefix="mlops-pgcluster-"))
        if run_as is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        cluster = cls(root, free_port(), run_as)
        try:
            cluster._initdb()
            for attempt in range(attempts):
                try:
                    cluster.start()
                    return cluster
                except ClusterUnavailable:
                    if attempt == attempts - 1:
                        raise
                    cluster.port = free_port()  # the port was taken meanwhile
        except BaseException:
            cluster.destroy()
            raise
        raise AssertionError("unreachable")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, args: Sequence[str], timeout: float = 60.0) -> None:
        command = [str(PG_BIN / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnavailable(f"{tool} failed: {exc}") from exc
        if done.returncode != 0:
            log = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            raise ClusterUnavailable(
                f"{tool} exited {done.returncode}: {done.stderr.strip()} {log}".strip()
            )

    def _initdb(self) -> None:
        self._pg(
            "initdb",
            ["-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
            + ["--locale=C", "--no-sync"],
        )

    def start(self) -> None:
        """Start and wait until it accepts connections (pg_ctl -w, then a poll)."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._pg(
            "pg_ctl",
            ["-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "-t", "30"]
            + ["start"],
        )
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ClusterUnavailable(f"started but not reachable: {exc}") from exc
                time.sleep(0.05)  # polling readiness, not waiting a fixed time

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m <mode>` (fast: disconnects clients, aborts transactions)."""
        self._pg("pg_ctl", ["-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"])

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop (immediately) if running and delete the directory."""
        try:
            if self.is_running():
                self.stop("immediate")
        except ClusterUnavailable:
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
