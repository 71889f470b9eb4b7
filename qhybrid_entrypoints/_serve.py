"""``qhybrid serve``: the whole service on loopback, supervised by one process.

Started in order: the Prefect server (its UI included), the work pool with one queue per SLA
class and the three deployments, one process worker per queue, the MLflow UI (for a local
tracking store), the job API and the dispatcher. A child that dies is started again (a killed
dispatcher or worker loses no job: the dispatcher re-attaches jobs whose flow run died). Ctrl-C
or SIGTERM stops every child, newest first, each with its process group, so nothing is left
behind; every child also gets SIGTERM from the kernel if this process is killed.

While it runs, ``.qhybrid/serve/<state store hash>/service.json`` names its URLs, so
``qhybrid run`` and ``promote`` with the same settings use its Prefect server instead of
starting a temporary one. One service runs per state store.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from qhybrid.core import InvalidInputError, Settings, redact_url
from qhybrid_control import SlaPolicy

SERVICE_FOLDER = Path(".qhybrid/serve")


def service_folder(settings: Settings) -> Path:
    """Where the service of these settings keeps its file and logs: one service per state
    store (a second would dispatch the same jobs), several per project for tests."""
    digest = hashlib.sha256(settings.state_store_url.encode()).hexdigest()[:12]
    return settings.resolve(SERVICE_FOLDER / digest)
_START_SECONDS = 180.0
_STOP_SECONDS = 20.0
_RESTART_LIMIT = 5  # restarts of one child within _RESTART_WINDOW before the service stops
_RESTART_WINDOW = 300.0

# Runs in each child before its program: SIGTERM from the kernel when the supervisor dies.
_WRAPPER = """
import ctypes, os, signal, sys
parent = int(sys.argv[1])
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != parent:
    sys.exit(0)
os.execvp(sys.argv[2], sys.argv[2:])
"""


@dataclass
class _Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WRAPPER, str(os.getpid()), *self.argv], env=self.env,
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # Flow-run processes a worker started live in its group; make sure none outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass(frozen=True)
class ServiceUrls:
    """Where the running service answers."""

    api: str
    prefect_api: str
    prefect_ui: str
    mlflow_ui: str | None
    pid: int

    def as_json(self) -> dict[str, object]:
        """The service file's content."""
        return {"api": self.api, "prefect_api": self.prefect_api, "prefect_ui": self.prefect_ui,
                "mlflow_ui": self.mlflow_ui, "pid": self.pid}


def running_service(settings: Settings) -> ServiceUrls | None:
    """The service ``qhybrid serve`` runs for this project, if its process is alive."""
    path = service_folder(settings) / "service.json"
    try:
        data = json.loads(path.read_text())
        pid = int(data["pid"])
        os.kill(pid, 0)
        return ServiceUrls(api=str(data["api"]), prefect_api=str(data["prefect_api"]),
                           prefect_ui=str(data["prefect_ui"]),
                           mlflow_ui=data.get("mlflow_ui"), pid=pid)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _port_free(host: str, port: int, field: str) -> None:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise InvalidInputError(f"port {port} on {host} is in use; stop what holds it or "
                                    f"choose another with {field}", field=field) from None


def _wait_healthy(url: str, child: _Child, what: str) -> None:
    deadline = time.monotonic() + _START_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{what} exited at start; see {child.log}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.2)  # a child has no readiness hook but its health endpoint
    raise RuntimeError(f"{what} did not answer {url} within {_START_SECONDS:.0f} s; see "
                       f"{child.log}")


def serve(settings: Settings, policies: Mapping[str, SlaPolicy],
          note: Callable[[str], None], stop: threading.Event) -> None:
    """Start everything, print where it answers, supervise until ``stop`` is set.

    Raises:
        InvalidInputError: A port is taken, or a service already runs for this project.
        RuntimeError: A component did not start.
    """
    import qhybrid_usecases as usecases
    from qhybrid_entrypoints._launcher import WORK_POOL, backend_limits, deploy_service

    if (other := running_service(settings)) is not None:
        raise InvalidInputError(f"qhybrid serve already runs on this state store (pid "
                                f"{other.pid}, API {other.api})", field="serve")
    host = settings.api_host
    local_mlflow = not settings.tracking_uri.startswith(("http://", "https://"))
    ports = [(settings.prefect_port, "QHYBRID_PREFECT_PORT"),
             (settings.api_port, "QHYBRID_API_PORT")]
    if local_mlflow:
        ports.append((settings.mlflow_port, "QHYBRID_MLFLOW_PORT"))
    for port, name in ports:
        _port_free("127.0.0.1" if name != "QHYBRID_API_PORT" else host, port, name)
    # Migrate both stores here, once, before children open them at the same moment (MLflow's
    # own migrations of a new SQLite store break when two processes run them at once).
    usecases.job_store(settings)
    if local_mlflow:
        note("preparing the MLflow store ...")
        _ = usecases.Services.open(settings).tracker.experiment_id

    bin_dir = Path(sys.executable).parent
    logs = service_folder(settings) / "logs"
    prefect_api = f"http://127.0.0.1:{settings.prefect_port}/api"
    base = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}
    base.pop("PREFECT_API_URL", None)
    with_api = {**base, "PREFECT_API_URL": prefect_api}
    # The UI asks the API at this address (--port alone leaves it at 4200).
    server_env = {**base, "PREFECT_SERVER_UI_API_URL": prefect_api}
    if settings.prefect_database_url is not None:
        server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = (
            settings.prefect_database_url.get_secret_value())
    children: list[_Child] = []

    def start(child: _Child) -> _Child:
        child.start()
        children.append(child)
        return child

    try:
        server = start(_Child("prefect-server", [
            str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
            str(settings.prefect_port), "--no-late-runs", "--no-scheduler", "--analytics-off"],
            server_env, logs / "prefect-server.log"))
        note(f"starting the Prefect server on port {settings.prefect_port} ...")
        _wait_healthy(f"{prefect_api}/health", server, "the Prefect server")

        from prefect.settings import PREFECT_API_URL, temporary_settings

        flow_env = {k: v for k, v in os.environ.items() if k.startswith("QHYBRID_")}
        flow_env |= {"QHYBRID_PROJECT_ROOT": str(settings.project_root),
                     "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                     "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}
        limits = backend_limits(settings)
        for unread in limits.unread:
            note(f"no backend limit from specs/{unread}")
        with (temporary_settings(updates={PREFECT_API_URL: prefect_api}),
              contextlib.redirect_stdout(io.StringIO())):  # Prefect prints a table per deploy
            deployments = deploy_service(settings.project_root, policies, flow_env,
                                         limits.limits)
        for name, policy in policies.items():
            worker_env = {**with_api,
                          "PREFECT_WORKER_QUERY_SECONDS": "1" if policy.priority == 1 else "5",
                          "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
            start(_Child(f"worker-{name}", [
                str(bin_dir / "prefect"), "worker", "start", "--pool", WORK_POOL,
                "--work-queue", policy.queue, "--type", "process", "--name",
                f"qhybrid-{name}-{os.getpid()}", "--install-policy", "never",
                "--limit", str(policy.concurrency)], worker_env, logs / f"worker-{name}.log"))
        mlflow_ui = None
        if local_mlflow:
            mlflow_ui = f"http://127.0.0.1:{settings.mlflow_port}"
            start(_Child("mlflow-ui", [
                str(bin_dir / "mlflow"), "ui", "--backend-store-uri", settings.tracking_uri,
                "--host", "127.0.0.1", "--port", str(settings.mlflow_port)],
                base, logs / "mlflow-ui.log"))
        api = start(_Child("api", [
            str(bin_dir / "uvicorn"), "--factory", "qhybrid_entrypoints.api:app_from_environment",
            "--host", host, "--port", str(settings.api_port), "--log-level", "warning",
            "--no-access-log"], with_api, logs / "api.log"))
        start(_Child("dispatcher", [str(Path(sys.executable)), "-m",
                                    "qhybrid_entrypoints.dispatcher"],
                     with_api, logs / "dispatcher.log"))
        api_url = f"http://{host}:{settings.api_port}"
        _wait_healthy(f"{api_url}/openapi.json", api, "the job API")
        urls = ServiceUrls(api=api_url, prefect_api=prefect_api,
                           prefect_ui=f"http://127.0.0.1:{settings.prefect_port}",
                           mlflow_ui=mlflow_ui, pid=os.getpid())
        service_file = service_folder(settings) / "service.json"
        service_file.parent.mkdir(parents=True, exist_ok=True)
        service_file.write_text(json.dumps(urls.as_json(), indent=1))
        note(_banner(urls, deployments, policies, limits.limits, settings, logs))
        try:
            _supervise(children, note, stop)
        finally:
            with contextlib.suppress(FileNotFoundError):
                service_file.unlink()
    finally:
        note("stopping: " + ", ".join(c.name for c in reversed(children)))
        for child in reversed(children):
            child.stop()
        note("stopped; nothing left running")


def _supervise(children: list[_Child], note: Callable[[str], None],
               stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for child in children:
            if child.alive():
                continue
            code = child.process.returncode if child.process else None
            if child.name == "prefect-server":
                raise RuntimeError(f"the Prefect server exited ({code}); see {child.log}")
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < _RESTART_WINDOW]
            if len(child.restarts) >= _RESTART_LIMIT:
                raise RuntimeError(f"{child.name} exited {_RESTART_LIMIT} times in "
                                   f"{_RESTART_WINDOW:.0f} s; see {child.log}")
            child.restarts.append(now)
            note(f"{child.name} exited ({code}); starting it again")
            child.start()


def _banner(urls: ServiceUrls, deployments: list[str], policies: Mapping[str, SlaPolicy],
            limits: Mapping[str, int], settings: Settings, logs: Path) -> str:
    queues = ", ".join(f"{name} (priority {p.priority}, {p.concurrency} at once)"
                       for name, p in policies.items())
    backends = ", ".join(f"{tag} ({n} at once)" for tag, n in limits.items()) or "none"
    lines = [
        "qhybrid is serving on loopback:",
        f"  job API       {urls.api}   (docs: {urls.api}/docs)",
        f"  metrics       {urls.api}/metrics",
        f"  health        {urls.api}/healthz",
        f"  Prefect UI    {urls.prefect_ui}",
        f"  MLflow UI     {urls.mlflow_ui or redact_url(settings.tracking_uri)}",
        f"  deployments   {', '.join(deployments)}",
        f"  work queues   {queues}",
        f"  tag limits    {backends}",
        f"  state store   {redact_url(settings.state_store_url)}",
        f"  logs          {logs}/",
        "Press Ctrl-C to stop everything.",
    ]
    return "\n".join(lines)
