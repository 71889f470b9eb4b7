"""What the service tests share: `qhybrid serve` started as `make serve` starts it (a real
Prefect server and workers, the job API, the dispatcher and the MLflow UI, on loopback; Ctrl-C
at the end must leave no process behind), and a real webhook receiver that refuses bad
signatures."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvicorn
from fastapi import FastAPI, Request, Response

from qhybrid_control import verify

REPO = Path(__file__).resolve().parents[2]
MARKER = "QH_TEST_SERVICE"  # tags every process the service starts
SECRET = "receiver-secret"
JOB_SECONDS = 300.0


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Receiver:
    """A webhook endpoint on loopback that checks signatures as a client would."""

    url: str
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, job_id: str, deadline: float) -> dict[str, Any]:
        with self.arrived:
            while True:
                for d in self.deliveries:
                    if d["body"]["id"] == job_id:
                        return d
                left = deadline - time.monotonic()
                assert left > 0, f"no callback for job {job_id}"
                self.arrived.wait(left)


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A webhook endpoint on loopback, for the block."""
    port = _free_port()
    app = FastAPI()
    rec = Receiver(url=f"http://127.0.0.1:{port}/hook")

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        try:
            verify(SECRET.encode(), request.headers.get("x-qhybrid-signature", ""), body,
                   now=time.time())
        except ValueError:
            rec.refused += 1
            return Response(status_code=401)
        with rec.arrived:
            rec.deliveries.append({"body": json.loads(body), "headers": dict(request.headers)})
            rec.arrived.notify_all()
        return Response(status_code=204)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.05)  # uvicorn offers no readiness hook but `started`
    yield rec
    server.should_exit = True
    thread.join(10)


@dataclass
class Service:
    """The running service and what the tests need to reach it."""

    api: str
    prefect_api: str
    env: dict[str, str]
    token: str
    process: subprocess.Popen[bytes]
    log: Path
    state_url: str
    tracking_uri: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=30.0)

    def processes(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(MARKER) == self.token:
                    found.append(proc)
        return found

    def wait_ended(self, job_id: str, timeout: float = JOB_SECONDS) -> dict[str, Any]:
        """Follow the job's events (Server-Sent Events) until it ends."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    return job
                with contextlib.suppress(httpx.ReadTimeout), client.stream(
                        "GET", "/v1/events", params={"job_id": job_id, "after": 0},
                        timeout=httpx.Timeout(30.0, read=10.0)) as events:
                    for line in events.iter_lines():
                        if line.startswith("data:") and json.loads(line[5:])["status"] in (
                                "succeeded", "failed", "cancelled"):
                            break
                        if time.monotonic() > deadline:
                            break
        raise AssertionError(f"job {job_id} did not end in {timeout:.0f} s:\n"
                             f"{self.log.read_text()[-3000:]}")


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "qhybrid_entrypoints.cli", "serve"],
                                env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)


@contextlib.contextmanager
def running_service(tmp: Path, **overrides: str) -> Iterator[Service]:
    """`qhybrid serve` on free loopback ports and stores under ``tmp`` (``overrides`` replace
    QHYBRID_* values); Ctrl-C at the end must leave no process behind."""
    token = uuid.uuid4().hex
    api_port, prefect_port, mlflow_port = _free_port(), _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QHYBRID_", "PREFECT_"))}
    env |= {
        "QHYBRID_PROJECT_ROOT": str(REPO),
        "QHYBRID_STATE_URL": f"sqlite:///{tmp / 'state.db'}",
        "QHYBRID_MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "QHYBRID_MLFLOW_ARTIFACT_ROOT": str(tmp / "artifacts"),
        "QHYBRID_PROMOTION_LOG": str(tmp / "promotion-log.jsonl"),
        "QHYBRID_MANIFESTS_DIR": str(tmp / "manifests"),
        "QHYBRID_JOB_SWEEPS_DIR": str(tmp / "sweeps"),
        "QHYBRID_API_PORT": str(api_port),
        "QHYBRID_PREFECT_PORT": str(prefect_port),
        "QHYBRID_MLFLOW_PORT": str(mlflow_port),
        "QHYBRID_WEBHOOK_SECRETS": f"default={SECRET}",
        "QHYBRID_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "QHYBRID_SLA_POLICIES": json.dumps({"batch-research": {"window_seconds": 1}}),
        # A long queue on the fake IBM devices (no other fault): interactive jobs must not wait.
        "QHYBRID_FAULTS": "queue=50,target=ibm:fake_",
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        MARKER: token,
    } | overrides
    log = tmp / "serve.log"
    process = _start(env, log)
    svc = Service(api=f"http://127.0.0.1:{api_port}",
                  prefect_api=f"http://127.0.0.1:{prefect_port}/api", env=env, token=token,
                  process=process, log=log, state_url=env["QHYBRID_STATE_URL"],
                  tracking_uri=env["QHYBRID_MLFLOW_TRACKING_URI"])
    try:
        deadline = time.monotonic() + 240
        while "Press Ctrl-C" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)  # reading the service's own report; it has no other readiness hook
        yield svc
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # Ctrl-C
        code = process.wait(timeout=120)
        leftovers = svc.processes()
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    assert code == 0, log.read_text()[-3000:]
    assert leftovers == [], [p.cmdline() for p in leftovers]


def submit(svc: Service, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    with svc.client() as client:
        answer = client.post("/v1/jobs", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == f"/v1/jobs/{answer.json()['id']}"
    job: dict[str, Any] = answer.json()
    return job


def flow_runs(svc: Service) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: svc.prefect_api}), get_client(
            sync_client=True) as client:
        return list(client.read_flow_runs(limit=200))


