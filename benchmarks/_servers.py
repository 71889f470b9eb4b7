"""Servers for the accept benchmarks and the durability test: real uvicorn processes on
loopback, on a SQLite file or an embedded PostgreSQL (pgserver).

* :class:`ServerProcess`: ``python -m uvicorn --factory APP`` on 127.0.0.1 and a free port, one
  worker, ``--log-level warning --no-access-log``, its stdout and stderr in a log file (the job
  API writes a JSON line per request there). ``kill()`` is ``kill -9``; ``start()`` again
  restarts it on the same port and store.
* :func:`qhybrid_env` / :func:`bare_env`: the environment of the job API
  (``qhybrid_entrypoints.api:app_from_environment``, ``QHYBRID_*`` pointing at a tmp folder and
  the given state store) and of the bare endpoint (``benchmarks/_bare_app.py``).
* :func:`prepare_job_store`: the job store of an environment, with its tables.
* :func:`embedded_postgres`: a throwaway PostgreSQL; yields a function that creates a new
  database and returns its ``postgresql+psycopg://`` URL (over a Unix socket).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType

import httpx
import psutil
from sqlalchemy import Table, select
from sqlalchemy.engine import Engine

import qhybrid_usecases as usecases
from benchmarks._bare_app import URL_VARIABLE as BARE_URL_VARIABLE
from qhybrid.core import load_settings
from qhybrid_control import JOBS, JobStore
from tests.conftest import record_env

REPO = Path(__file__).resolve().parents[1]
QHYBRID_APP = "qhybrid_entrypoints.api:app_from_environment"
BARE_APP = "benchmarks._bare_app:create_app"
STARTUP_SECONDS = 90.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``uvicorn --factory app`` in a process of its own, on loopback.

    Args:
        app: ``module:factory``.
        env: The process's whole environment.
        log: Where its stdout and stderr go (appended to, across restarts).
    """

    def __init__(self, app: str, env: Mapping[str, str], log: Path) -> None:
        self.app = app
        self.env = dict(env)
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User and system CPU time of the process so far (all its threads)."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def start(self) -> None:
        """Start it and wait until it answers HTTP.

        Raises:
            RuntimeError: It exited, or did not answer within STARTUP_SECONDS.
        """
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process; :meth:`wait_ready` waits for it to answer."""
        command = [sys.executable, "-m", "uvicorn", "--factory", self.app,
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                   "--log-level", "warning", "--no-access-log"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, env=self.env, cwd=REPO, stdout=out,
                                            stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        """Wait until the launched process answers HTTP (stopping it if it never does).

        Raises:
            RuntimeError: It exited, or did not answer within STARTUP_SECONDS.
        """
        assert self.process is not None, "not launched"
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app} exited with {self.process.returncode}:\n"
                                   f"{self._log_tail()}")
            try:
                httpx.get(f"{self.url}/docs", timeout=2.0)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return
        self.stop()
        raise RuntimeError(f"{self.app} did not answer in {STARTUP_SECONDS} s:\n"
                           f"{self._log_tail()}")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush."""
        assert self.process is not None, "not started"
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def _log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items()
            if not key.startswith("QHYBRID_") and key != BARE_URL_VARIABLE}


def qhybrid_env(root: Path, state_url: str) -> dict[str, str]:
    """The job API's environment: records under ``root``, the state store at ``state_url``,
    no other ``QHYBRID_*`` variable (the developer's are dropped)."""
    root.mkdir(parents=True, exist_ok=True)
    return _clean_env() | record_env(root) | {"QHYBRID_STATE_URL": state_url,
                                              "PREFECT_HOME": str(root / "prefect")}


def bare_env(url: str) -> dict[str, str]:
    """The bare endpoint's environment: its database at ``url``."""
    return _clean_env() | {BARE_URL_VARIABLE: url}


def prepare_job_store(env: Mapping[str, str]) -> JobStore:
    """The job store ``env`` names, migrated (before the API opens it)."""
    return usecases.job_store(load_settings(env))


def stored_ids(engine: Engine, table: Table = JOBS) -> set[str]:
    """Every id in ``table`` (the job store's jobs by default)."""
    with engine.connect() as conn:
        return {str(row[0]) for row in conn.execute(select(table.c.id))}


@contextlib.contextmanager
def embedded_postgres(folder: Path) -> Iterator[Callable[[str], str]]:
    """A throwaway PostgreSQL server in ``folder`` (stopped on exit).

    Yields:
        ``new_database(name)``: creates the database and returns its
        ``postgresql+psycopg://`` URL.
    """
    from platformdirs.api import RuntimeDirWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)  # pgserver falls back to /tmp
        import pgserver

        server = pgserver.get_server(folder, cleanup_mode="stop")

    def new_database(name: str) -> str:
        server.psql(f"create database {name};")
        uri: str = server.get_uri(name)
        return uri.replace("postgresql://", "postgresql+psycopg://", 1)

    try:
        yield new_database
    finally:
        server.cleanup()
