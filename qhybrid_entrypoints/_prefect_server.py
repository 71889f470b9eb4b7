"""The Prefect server a command uses: the one ``PREFECT_API_URL`` names, or a temporary local
one that this process owns.

Prefect's own temporary server is a child in the command's process group and outlives a
killed command: Ctrl-C in a terminal reaches it first (the flow then cannot record its own
end), and a SIGKILL leaves it running for ever. The temporary server started here

- runs in its own session, so a Ctrl-C to the terminal's process group does not stop it
  before the flow has recorded how it ended;
- receives SIGTERM from the kernel the moment this process dies, however it dies
  (``PR_SET_PDEATHSIG``), so it never outlives its command;
- starts under an exclusive lock on ``PREFECT_HOME``, so that two first commands in a fresh
  project do not migrate the same new database at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

_START_SECONDS = 120.0

# Runs in the server's process before uvicorn: ask the kernel for SIGTERM when the parent dies,
# and give up at once if the parent already has.
_WRAPPER = """
import ctypes, os, signal, sys
parent = int(sys.argv[1])
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != parent:
    sys.exit(0)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".qhybrid-server.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def configured_api_url() -> str | None:
    """The Prefect server the environment names (``PREFECT_API_URL``), if any."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


@contextlib.contextmanager
def prefect_server(note: Callable[[str], None] | None = None) -> Iterator[str]:
    """Use the configured Prefect server, or run a temporary local one for the block.

    Yields:
        The API URL the block's flows report to.

    Raises:
        RuntimeError: The temporary server did not answer within two minutes.
    """
    configured = configured_api_url()
    if configured:
        if note:
            note(f"using the Prefect server at {configured}")
        yield configured
        return
    import prefect
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    settings = get_current_settings()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    environ = {**os.environ, **settings.to_environment_variables(exclude_unset=True),
               "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}
    command = [sys.executable, "-c", _WRAPPER, str(os.getpid()), "-m", "uvicorn", "--app-dir",
               str(Path(prefect.__file__ or "").parent.parent), "--factory",
               "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port",
               str(port), "--log-level", "error", "--lifespan", "on"]
    with _home_lock(Path(settings.home)):
        process = subprocess.Popen(command, env=environ, start_new_session=True,
                                   stdin=subprocess.DEVNULL)
        try:
            _wait_healthy(url, process)
        except BaseException:
            _stop(process)
            raise
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                _drain()
    finally:
        _stop(process)


def _drain(timeout: float = 10.0) -> None:
    """Send what Prefect still queues (log lines, events) while the server is up; after it
    stops, Prefect's workers would retry for minutes at exit."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the local Prefect server exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/health").status_code == 200:
                    return
            time.sleep(0.1)  # polling a server that has no readiness hook but /health
    raise RuntimeError(f"the local Prefect server did not answer within {_START_SECONDS:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
