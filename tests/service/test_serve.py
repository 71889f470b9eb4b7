"""The whole service, as `make serve` starts it, driven as its clients would: every kind of job,
signed callbacks, the CLI on the running service, killed processes, cancellation."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
from sqlalchemy import text

from tests.service._harness import (
    JOB_SECONDS,
    MARKER,
    REPO,
    Receiver,
    Service,
    flow_runs,
    running_receiver,
    submit,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as rec:
        yield rec


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
        "backend": "ibm:fake_lagos"}) for sla in ("interactive", "near-real-time"))
    ended = {j["id"]: service.wait_ended(j["id"]) for j in [run, *evaluations]}
    assert {j["status"] for j in ended.values()} == {"succeeded"}, ended

    # Behind a 50-job hardware queue, the interactive job is answered from the simulator path
    # and says so; the near-real-time one waits for the device.
    hurried, patient = service.wait_ended(hurried["id"]), service.wait_ended(patient["id"])
    assert hurried["status"] == patient["status"] == "succeeded", (hurried, patient)
    assert "ibm:fake_lagos has 50 jobs queued" in (hurried["downgrade"] or ""), hurried
    assert patient["downgrade"] is None
    with service.client() as client:
        assert client.get(f"/v1/jobs/{hurried['id']}/result").json()["backend"] == "aer"
        assert client.get(f"/v1/jobs/{patient['id']}/result").json()["backend"] == (
            "ibm:fake_lagos")

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

    from prometheus_client.parser import text_string_to_metric_families

    succeeded = {s.labels["kind"]: s.value for f in text_string_to_metric_families(metrics)
                 if f.name == "qhybrid_jobs" for s in f.samples
                 if s.labels["status"] == "succeeded" and s.labels["sla"] == "interactive"}
    assert succeeded["evaluate"] >= len(evaluations)
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
    assert store.ledger_counts().get("submitting", 0) == 0
    with store.engine.connect() as conn:  # no idempotency key executed twice
        twice = conn.execute(text("select tag from local_jobs group by tag "
                                  "having count(*) > 1")).all()
    assert twice == []


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
