"""The whole service, as `make serve` starts it: a real Prefect server and workers, the job API,
the dispatcher and the MLflow UI, on loopback; a real webhook receiver that refuses bad
signatures. Ctrl-C at the end must leave no process behind.
"""

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
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from qhybrid_control import verify

pytestmark = pytest.mark.slow

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


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
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
    deadline = time.monotonic() + 240
    while "Press Ctrl-C" not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)  # reading the service's own report; it has no other readiness hook
    svc = Service(api=f"http://127.0.0.1:{api_port}",
                  prefect_api=f"http://127.0.0.1:{prefect_port}/api", env=env, token=token,
                  process=process, log=log, state_url=env["QHYBRID_STATE_URL"],
                  tracking_uri=env["QHYBRID_MLFLOW_TRACKING_URI"])
    try:
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


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("service")) as svc:
        yield svc


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


def test_every_kind_of_job_ends_with_a_signed_callback_and_its_records(
        service: Service, receiver: Receiver) -> None:
    trace = uuid.uuid4().hex
    promote = submit(service, {"kind": "promote", "spec_path": "specs/qaoa-maxcut-small.yaml",
                                "sla": "batch-research", "callback_url": receiver.url},
                      traceparent=f"00-{trace}-{'1' * 16}-01")
    assert promote["trace_id"] == trace and promote["status"] == "queued"
    promoted = service.wait_ended(promote["id"])
    assert promoted["status"] == "succeeded", promoted
    run = submit(service, {"kind": "run", "spec_path": "specs/vqe-h2.yaml", "backend": "aer",
                            "sla": "near-real-time", "callback_url": receiver.url,
                            "idempotency_key": "run-1"})
    evaluations = [submit(service, {
        "kind": "evaluate", "model": "qaoa-maxcut-small@champion", "sla": "interactive",
        "parameter_sets": [[0.1 * i, 0.2], [0.3, 0.1 * i]], "callback_url": receiver.url})
        for i in range(1, 4)]
    hurried, patient = (submit(service, {
        "kind": "evaluate", "model": "qaoa-maxcut-small@champion", "sla": sla,
        "backend": "ibm:fake_manila"}) for sla in ("interactive", "near-real-time"))
    ended = {j["id"]: service.wait_ended(j["id"]) for j in [run, *evaluations]}
    assert {j["status"] for j in ended.values()} == {"succeeded"}, ended

    # Behind a 50-job hardware queue, the interactive job is answered from the simulator path
    # and says so; the near-real-time one waits for the device.
    hurried, patient = service.wait_ended(hurried["id"]), service.wait_ended(patient["id"])
    assert hurried["status"] == patient["status"] == "succeeded", (hurried, patient)
    assert "ibm:fake_manila has 50 jobs queued" in (hurried["downgrade"] or ""), hurried
    assert patient["downgrade"] is None
    with service.client() as client:
        assert client.get(f"/v1/jobs/{hurried['id']}/result").json()["backend"] == "aer"
        assert client.get(f"/v1/jobs/{patient['id']}/result").json()["backend"] == (
            "ibm:fake_manila")

    with service.client() as client:
        again = client.post("/v1/jobs", json={"kind": "run", "spec_path": "specs/vqe-h2.yaml",
                                              "backend": "aer", "sla": "near-real-time",
                                              "callback_url": receiver.url,
                                              "idempotency_key": "run-1"})
        assert again.status_code == 202 and again.json()["id"] == run["id"]
        results = {i: client.get(f"/v1/jobs/{i}/result").json() for i in ended}
        metrics = client.get("/metrics").text
        health = client.get("/healthz")
    for evaluation in evaluations:
        result = results[evaluation["id"]]
        assert result["source"] == "simulator" and result["backend"] == "aer"
        assert len(result["values"]) == 2
    report = results[run["id"]]["report"]
    assert report["experiment"] == "vqe-h2" and report["backend"] == "aer"

    # The statuses walk the model, each with its time; a promotion names each gate.
    for job in [promoted, *ended.values()]:
        walked = [t["status"] for t in job["transitions"]]
        assert walked[0] == "queued" and walked[-1] == "succeeded"
        assert "validating" in walked and "running" in walked, walked
        assert "post-processing" in walked, walked
    steps = [t["sub_status"] for t in promoted["transitions"]]
    assert [s.split()[1] for s in steps if s and s.startswith("gate ")] == [
        "ideal", "statistical", "hardware", "baseline"], steps

    # One signed callback per job, carrying the job's trace id.
    for job in [promoted, *ended.values()]:
        delivery = receiver.wait_for(job["id"], time.monotonic() + 60)
        assert delivery["body"]["status"] == "succeeded"
        assert delivery["headers"]["x-qhybrid-trace-id"] == job["trace_id"]
        assert delivery["headers"]["traceparent"].split("-")[1] == job["trace_id"]
    assert receiver.refused == 0

    # Prefect holds one flow run per group, on its class's queue, tagged with job and trace.
    runs = flow_runs(service)
    for job in [promoted, *ended.values()]:
        served = [r for r in runs if f"job:{job['id']}" in r.tags
                  and r.name.split()[0] in ("run", "promote", "evaluate")
                  and r.work_queue_name is not None]
        assert served, job["id"]
        assert served[0].work_queue_name == job["sla"]
        assert f"trace:{job['trace_id']}" in served[0].tags
        assert str(served[0].id) == job["prefect_flow_run_id"]
    evaluate_runs = {r.id for r in runs if any(f"job:{e['id']}" in r.tags for e in evaluations)}
    assert 1 <= len(evaluate_runs) <= len(evaluations)  # evaluations may share a flow run

    # MLflow holds each run's records, tagged with its job and trace.
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=service.tracking_uri)
    for job in (promoted, ended[run["id"]]):
        tags = mlflow.get_run(job["mlflow_run_id"]).data.tags
        assert tags["qhybrid.job_id"] == job["id"]
        assert tags["qhybrid.trace_id"] == job["trace_id"]
    for evaluation in evaluations:
        tags = mlflow.get_run(ended[evaluation["id"]]["mlflow_run_id"]).data.tags
        assert evaluation["id"] in tags["qhybrid.job_ids"]

    assert 'qhybrid_jobs{kind="evaluate",sla="interactive",status="succeeded"} 3.0' in metrics
    assert "qhybrid_job_queue_seconds_count" in metrics
    assert health.status_code == 200, health.text
    assert set(health.json()["components"]) == {"job_store", "prefect", "workers", "mlflow"}


def test_the_cli_uses_the_running_service(service: Service) -> None:
    env = {k: v for k, v in service.env.items() if k != MARKER}
    done = subprocess.run(
        [sys.executable, "-m", "qhybrid_entrypoints.cli", "run", "specs/vqe-h2.yaml", "--json"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=JOB_SECONDS, check=False)
    assert done.returncode == 0, done.stderr
    assert "using the Prefect server of the running qhybrid service" in done.stderr
    report = json.loads(done.stdout)
    assert report["prefect_flow_run_id"] in {str(r.id) for r in flow_runs(service)}


def _service_child(svc: Service, needle: str) -> psutil.Process:
    for proc in svc.processes():
        with contextlib.suppress(psutil.Error):
            if needle in " ".join(proc.cmdline()) and "-c" not in proc.cmdline()[1:2]:
                return proc
    raise AssertionError(f"no service process runs {needle!r}")


def test_a_killed_dispatcher_and_worker_lose_no_job_and_pay_nothing_twice(
        service: Service) -> None:
    from backends import StateStore

    jobs = [submit(service, {"kind": "run", "spec_path": "specs/vqe-h2.yaml",
                              "backend": "aer", "sla": "interactive"})]
    # The worker's flow run is under way: kill the worker with its flow run process, and the
    # dispatcher; the service starts both again.
    deadline = time.monotonic() + JOB_SECONDS
    with service.client() as client:
        while client.get(f"/v1/jobs/{jobs[0]['id']}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)  # the status is the only signal a client has
    worker = _service_child(service, "--work-queue interactive")
    dispatcher = _service_child(service, "qhybrid_entrypoints.dispatcher")
    os.killpg(worker.pid, signal.SIGKILL)
    dispatcher.kill()
    jobs += [submit(service, {"kind": "run", "spec_path": "specs/vqe-h2.yaml", "shots": 1000 + i,
                               "sla": "near-real-time"}) for i in range(2)]
    ended = [service.wait_ended(j["id"]) for j in jobs]
    assert [j["status"] for j in ended] == ["succeeded"] * 3, [
        (j["status"], j["error"], j["transitions"]) for j in ended]
    assert ended[0]["dispatch_attempts"] == 2, ended[0]
    assert "restart" in service.log.read_text() or "again" in service.log.read_text()

    # The killed attempt's MLflow run was ended by the restarted dispatcher, not left RUNNING.
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=service.tracking_uri)
    experiments = [e.experiment_id for e in mlflow.search_experiments()]
    statuses = sorted(r.info.status for r in mlflow.search_runs(
        experiments, filter_string=f"tags.`qhybrid.job_id` = '{jobs[0]['id']}'"))
    assert statuses in (["FINISHED"], ["FINISHED", "KILLED"]), statuses

    store = StateStore(service.state_url)
    assert store.leases(status="open") == []
    counts = store.ledger_counts()
    assert counts.get("submitting", 0) == 0
    assert store.count_local_jobs() == sum(counts.values())  # no key executed twice


def test_cancel_stops_a_promotion_and_releases_its_provider_jobs(service: Service) -> None:
    from backends import StateStore

    job = submit(service, {"kind": "promote", "spec_path": "specs/qaoa-maxcut.yaml",
                            "sla": "batch-research"})
    deadline = time.monotonic() + JOB_SECONDS
    with service.client() as client:
        while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)  # the status is the only signal a client has
        cancelled = client.delete(f"/v1/jobs/{job['id']}")
        assert cancelled.status_code == 202
    ended = service.wait_ended(job["id"])
    assert ended["status"] == "cancelled", ended
    assert StateStore(service.state_url).leases(status="open") == []
    runs = {str(r.id): r for r in flow_runs(service)}
    assert runs[ended["prefect_flow_run_id"]].state_type.value in ("CANCELLED", "CRASHED")
