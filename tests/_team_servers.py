"""Servers of the team set-up (docs/team.md) for tests: a throwaway PostgreSQL cluster from
Debian's binaries (Prefect's server needs its ``pg_trgm`` extension, which pgserver's embedded
build lacks) and ``mlflow server`` with proxied artifacts on a shared path."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks._servers import free_port

STARTUP_SECONDS = 180.0


def _debian_postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.skip("Prefect's server needs PostgreSQL with pg_trgm: apt-get install "
                    "postgresql (scripts/system-deps.sh); pgserver's build lacks it")
    return found[-1].parent


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextlib.contextmanager
def debian_postgres(databases: tuple[str, ...]) -> Iterator[Callable[[str, str], str]]:
    """A throwaway PostgreSQL cluster on a unix socket with ``databases``: yields
    ``url(driver, database)``."""
    bin_dir = _debian_postgres_bin()
    # Not under pytest's tmp folders: those are private to this user, and the server runs as
    # the postgres user when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="qhybrid-pg-"))
    data, socket_dir = folder / "data", folder / "socket"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(socket_dir, "postgres")
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                                 "--auth=trust"]), check=True, capture_output=True)
    subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l",
                                 str(folder / "log"), "-o", f"-k {socket_dir} -h ''",
                                 "start"]), check=True, capture_output=True)
    try:
        for database in databases:
            subprocess.run(_as_postgres([str(bin_dir / "createdb"), "-h", str(socket_dir),
                                         "-U", "postgres", database]),
                           check=True, capture_output=True)
        yield lambda driver, database: (f"postgresql+{driver}://postgres@/{database}"
                                        f"?host={socket_dir}")
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                     "stop"]), check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend_store: str, artifacts: Path, log: Path) -> Iterator[str]:
    """``mlflow server`` on a free loopback port, its backend store at ``backend_store`` and
    artifacts proxied to ``artifacts``; yields its URL once it answers ``/health``."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "server",
               "--backend-store-uri", backend_store, "--serve-artifacts",
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(server, url, log)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its worker processes
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _wait_healthy(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Until the server answers /health (it migrates its database first)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling the server's own health route: it has no readiness hook
    pytest.fail(f"mlflow server did not answer in {STARTUP_SECONDS} s:\n"
                f"{log.read_text()[-3000:]}")
