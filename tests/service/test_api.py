"""The job API over HTTP: a real uvicorn server on loopback in front of a real SQLite job store,
driven by httpx clients, hypothesis and schemathesis. No Prefect: the tests move jobs through
the store as a flow run would."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import schemathesis
import uvicorn
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

import qhybrid_usecases as usecases
from backends import StateStore
from qhybrid.core import (
    JOB_REQUEST,
    SLA_CLASSES,
    EvaluateJobRequest,
    JobKind,
    JobResult,
    MitigationSpec,
    ProblemDocument,
    PromoteJobRequest,
    RunJobRequest,
    SweepJobRequest,
    SweepReport,
    load_settings,
)
from qhybrid_control import JobFilter, JobStore
from qhybrid_entrypoints.api import create_app
from tests.conftest import REPO

HOOKED = "hooked"  # the one client with a webhook secret
README = {"kind": "run", "spec_path": "specs/vqe-h2.yaml", "backend": "aer",
          "sla": "interactive", "idempotency_key": "readme-1"}
EVALUATE = {"kind": "evaluate", "model": "vqe-h2@champion", "parameter_sets": [[0.1, -0.2]]}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PROBLEM = "application/problem+json"
DEADLINE_SECONDS = 15.0  # bounds every wait on the server; no assertion depends on timing


@dataclass
class Service:
    """The API on loopback, its store, and what it asked Prefect to cancel."""

    url: str
    jobs: JobStore
    http: httpx.Client
    cancelled_flow_runs: list[str] = field(default_factory=list)

    def stored(self) -> list[str]:
        """The ids of every stored job, newest first, read from the store itself."""
        items, _ = self.jobs.page(JobFilter(), limit=10_000, cursor=None)
        return [job.id for job in items]

    def submit(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.http.post("/v1/jobs", json=body, headers=headers)


@pytest.fixture
def service(qhybrid_env: dict[str, str]) -> Iterator[Service]:
    """A fresh store and a real uvicorn server on a port bound before it starts."""
    settings = load_settings({**qhybrid_env, "QHYBRID_WEBHOOK_SECRETS": f"{HOOKED}=s3cret"})
    engine = StateStore(settings.state_store_url).engine
    cancelled: list[str] = []
    app = create_app(settings, cancel_flow_run=cancelled.append)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # uvicorn logs an unhandled error again after the 500 has gone out, from the server thread,
    # while this thread may be building a report; both format tracebacks with `ast`, which is
    # not thread-safe on CPython 3.11 (gh-106905: "AST constructor recursion depth mismatch"
    # crashed a run). The API logs the error itself before it answers; that copy is enough.
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off",
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the job API did not start")
            time.sleep(0.01)  # uvicorn offers no readiness hook but `started`
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=DEADLINE_SECONDS) as http:
            yield Service(url, JobStore(engine), http, cancelled)
    finally:
        server.should_exit = True
        thread.join(DEADLINE_SECONDS)
        sock.close()


def _problem(response: httpx.Response, status: int) -> ProblemDocument:
    """The response as a problem document with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    document = ProblemDocument.model_validate(response.json())
    assert document.status == status
    return document


# -- accept -----------------------------------------------------------------------------------

def test_readme_exchange_accepts_a_queued_job_and_stores_it(service: Service) -> None:
    response = service.submit(README)

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["location"] == f"/v1/jobs/{body['id']}"
    assert "idempotent-replayed" not in response.headers
    assert (body["kind"], body["sla"], body["backend"], body["experiment"], body["family"]) == (
        "run", "interactive", "aer", "vqe-h2", "vqe")
    assert [t["status"] for t in body["transitions"]] == ["queued"]
    again = service.http.get(response.headers["location"])
    assert again.status_code == 200
    assert again.json() == body
    assert service.stored() == [body["id"]]
    assert service.jobs.get(body["id"]).idempotency_key == "readme-1"


def test_an_idempotency_key_replays_its_job_and_refuses_another_body(service: Service) -> None:
    first = service.submit(README)
    job_id = first.json()["id"]

    # The same request: spelt with a default made explicit, under another trace.
    replay = service.submit({**README, "schema_version": 1},
                            traceparent=f"00-{TRACE}-00f067aa0ba902b7-01")
    conflict = service.submit({**README, "sla": "batch-research"})

    assert (first.status_code, replay.status_code) == (202, 202)
    assert replay.json()["id"] == job_id
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == f"/v1/jobs/{job_id}"
    assert _problem(conflict, 409).field == "idempotency_key"
    assert job_id in (_problem(conflict, 409).detail or "")
    assert service.stored() == [job_id]
    # Keys are per client: another client's same key is another job.
    other = service.submit(README, **{"X-Qhybrid-Client": HOOKED})
    assert other.status_code == 202
    assert other.json()["id"] != job_id
    assert len(service.stored()) == 2


def _deep_spec(depth: int) -> str:
    return '{"kind": "run", "spec": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


SPEC = "specs/vqe-h2.yaml"


def _without(*gates: str) -> dict[str, object]:
    spec = yaml.safe_load((REPO / SPEC).read_text())
    for gate in gates:
        del spec["gates"][gate]
    return spec


BAD_BODIES = [
    pytest.param(json.dumps({"kind": "promote", "spec": _without("statistical")}), 422,
                 "gates.statistical", id="promote-without-a-statistical-policy"),
    pytest.param(json.dumps({"kind": "promote", "spec": _without("baseline")}), 422,
                 "gates.baseline", id="promote-without-a-baseline-policy"),
    pytest.param(json.dumps({"kind": "sweep", "spec_path": SPEC}), 422, "spec.sweep",
                 id="sweep-of-a-spec-without-a-sweep-section"),
    pytest.param(json.dumps({"kind": "sweep", "spec": _without()}), 422, "spec.sweep",
                 id="sweep-of-an-inline-spec-without-a-sweep-section"),
    pytest.param('{"kind": "resume", "spec_path": "specs/vqe-h2.yaml"}', 422, "kind",
                 id="unknown-kind"),
    pytest.param(json.dumps({"kind": "run", "spec_path": SPEC, "priority": 1}), 422, "priority",
                 id="extra-field"),
    pytest.param(json.dumps({"kind": "run", "spec_path": SPEC, "spec": {"name": "x"}}), 422,
                 None, id="spec-and-spec_path"),
    pytest.param(json.dumps({"kind": "promote"}), 422, None, id="neither-spec-nor-spec_path"),
    pytest.param(json.dumps({"kind": "run", "spec_path": "../x"}), 422, "spec_path",
                 id="spec_path-outside-the-project"),
    pytest.param(json.dumps({"kind": "run", "spec_path": "/etc/hostname"}), 422, "spec_path",
                 id="absolute-spec_path"),
    pytest.param(json.dumps({"kind": "run", "spec_path": "specs/missing.yaml"}), 422,
                 "spec_path", id="missing-spec-file"),
    pytest.param(json.dumps({"kind": "run", "spec_path": SPEC + "\u0000"}), 422, "spec_path",
                 id="nul-in-spec_path"),
    pytest.param(json.dumps({"kind": "run", "spec_path": "pyproject.toml"}), 422, "spec_path",
                 id="spec_path-not-a-spec"),
    pytest.param(json.dumps({"kind": "run", "spec": {"name": "Not A Name", "version": "1"}}),
                 422, "spec", id="invalid-inline-spec"),
    pytest.param(json.dumps({"kind": "run", "spec_path": SPEC, "backend": "aer:x"}), 422,
                 "backend", id="bad-backend"),
    pytest.param(json.dumps({"kind": "run", "spec_path": SPEC, "shots": 0}), 422, "shots",
                 id="zero-shots"),
    pytest.param(json.dumps({"kind": "run", "spec_path": SPEC, "shots": 10**6 + 1}), 422,
                 "shots", id="too-many-shots"),
    # JSON has no NaN; 1e999 parses to infinity.
    pytest.param('{"kind": "evaluate", "model": "vqe-h2@champion", "parameter_sets": [[1e999]]}',
                 422, "parameter_sets", id="infinite-parameter"),
    pytest.param(json.dumps({"kind": "run", "spec_path": SPEC, "callback_url": "http://x.test/"}),
                 422, "callback_url", id="callback-without-a-secret"),
    pytest.param(json.dumps({"kind": "evaluate", "model": "vqe-h2"}), 422, "model",
                 id="model-without-alias"),
    pytest.param(json.dumps({"kind": "evaluate", "model": "a@b@c"}), 422, "model",
                 id="model-with-two-aliases"),
    pytest.param(json.dumps({**README, "trace_id": "0" * 32}), 422, "trace_id",
                 id="all-zero-trace-id"),
    pytest.param("kind=run", 422, "body", id="not-json"),
    pytest.param("[" * 100_000 + "]" * 100_000, 400, None, id="too-deep-for-the-parser"),
    pytest.param(_deep_spec(300), 422, "spec", id="too-deep-to-store"),
]


@pytest.mark.parametrize(("content", "status", "field"), BAD_BODIES)
def test_bad_input_is_a_problem_naming_its_field_and_stores_no_job(
        service: Service, content: str, status: int, field: str | None) -> None:
    response = service.http.post("/v1/jobs", content=content,
                                 headers={"content-type": "application/json"})

    assert service.stored() == []
    document = _problem(response, status)
    if field is None:  # no one field is at fault; the field must still be a request's
        assert document.field in (None, "body"), document
    else:
        assert document.field is not None, document
        assert document.field == field or document.field.startswith(f"{field}."), document


# -- follow -----------------------------------------------------------------------------------

def _sse(response: httpx.Response, deadline: float) -> Iterator[dict[str, Any]]:
    """Server-sent events as they arrive (comments are keep-alives: they bound each wait)."""
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        assert time.monotonic() < deadline, "the expected events did not arrive"
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")
            continue
        if event:
            yield {"id": int(event["id"]), "event": event["event"],
                   **json.loads(event["data"])}
            event = {}


def test_a_job_walks_its_statuses_and_the_event_stream_follows(service: Service) -> None:
    job_id = service.submit(README).json()["id"]
    result = JobResult(job_id=job_id, kind="run", source="simulator", backend="aer",
                       parameter_names=("theta_0", "theta_1"), shots=4000)
    deadline = time.monotonic() + DEADLINE_SECONDS
    seen: list[dict[str, Any]] = []
    with service.http.stream("GET", "/v1/events",
                             params={"after": 0, "job_id": job_id}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = _sse(stream, deadline)
        seen.append(next(events))
        _problem(service.http.get(f"/v1/jobs/{job_id}/result"), 404)

        work = usecases.begin_job(service.jobs, job_id, "flow-run-1")
        assert work is not None and work.spec is not None and work.spec.name == "vqe-h2"
        seen.append(next(events))
        for status in ("running", "post-processing"):
            service.jobs.transition(job_id, status)
            seen.append(next(events))
        _problem(service.http.get(f"/v1/jobs/{job_id}/result"), 404)
        service.jobs.transition(job_id, "succeeded", result=result.model_dump(mode="json"),
                                mlflow_run_id="mlflow-run-1")
        seen.append(next(events))

    walk = ["queued", "validating", "running", "post-processing", "succeeded"]
    assert [e["status"] for e in seen] == walk
    assert {e["event"] for e in seen} == {"status"}
    assert {e["job_id"] for e in seen} == {job_id}
    assert [e["id"] for e in seen] == sorted({e["id"] for e in seen})
    record = service.http.get(f"/v1/jobs/{job_id}").json()
    assert [t["status"] for t in record["transitions"]] == walk
    times = [datetime.fromisoformat(t["at"]) for t in record["transitions"]]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    assert (record["status"], record["prefect_flow_run_id"], record["mlflow_run_id"]) == (
        "succeeded", "flow-run-1", "mlflow-run-1")
    assert record["result_url"] == f"/v1/jobs/{job_id}/result"
    answer = service.http.get(record["result_url"])
    assert answer.status_code == 200
    assert JobResult.model_validate(answer.json()) == result


def test_a_large_result_comes_by_reference_with_an_etag(service: Service) -> None:
    job_id = service.submit(EVALUATE).json()["id"]
    values = tuple(0.001 * i for i in range(2000))
    result = JobResult(job_id=job_id, kind="evaluate", source="simulator", backend="aer",
                       parameter_names=("theta_0", "theta_1"), values=values)
    # Written as a flow run with a 1 KiB inline limit writes it.
    JobStore(service.jobs.engine, inline_max_bytes=1024).transition(
        job_id, "succeeded", result=result.model_dump(mode="json"))

    summary = service.http.get(f"/v1/jobs/{job_id}/result")
    data = summary.json()["data"]
    whole = service.http.get(data["href"])
    again = service.http.get(data["href"], headers={"If-None-Match": whole.headers["etag"]})
    small = service.submit(EVALUATE).json()["id"]
    service.jobs.transition(small, "succeeded", result={**result.model_dump(mode="json"),
                                                        "job_id": small, "values": [1.0]})

    assert summary.status_code == 200 and summary.json()["values"] is None
    assert whole.status_code == 200
    assert JobResult.model_validate_json(whole.content).values == values
    assert (data["bytes"], data["sha256"]) == (len(whole.content),
                                                whole.headers["etag"].strip('"'))
    assert again.status_code == 304 and again.content == b""
    assert service.http.get(f"/v1/jobs/{small}/result").json()["values"] == [1.0]
    _problem(service.http.get(f"/v1/jobs/{small}/result/data"), 404)


SWEEP = {"kind": "sweep", "spec_path": "specs/qaoa-sweep.yaml", "backend": "aer",
         "idempotency_key": "sweep-1"}


def _finish_sweep(service: Service, job_id: str, folder: Path) -> tuple[SweepReport, bytes]:
    """Finish a sweep job as its flow run would: a Parquet file, then its report."""
    work = usecases.begin_job(service.jobs, job_id, "flow-run-1")
    assert work is not None and work.kind == "sweep" and work.options is not None
    assert work.options.backend == "aer"
    path = folder / f"{job_id}.parquet"
    pq.write_table(pa.table({"point": pa.array([0, 1], pa.int64()),
                             "gamma[0]": [0.0, 0.5], "expected_cut": [4.5, 5.25]}), path)
    report = SweepReport(
        experiment="qaoa-sweep-3reg-6", version="1.0.0", family="qaoa-maxcut", backend="aer",
        parameters=("gamma[0]", "beta[0]"), observables=("expected_cut",), points=2, chunks=1,
        chunk_size=2, chunk_size_reason="given", canary_points=2, exact=True, seconds=0.1,
        output=str(path), columns=("point", "gamma[0]", "expected_cut"),
        mlflow_run_id="mlflow-run-1")
    usecases.finish_sweep_job(service.jobs, work, report)
    return report, path.read_bytes()


def test_a_sweep_job_streams_its_parquet_file_to_its_own_client_only(
        service: Service, tmp_path: Path) -> None:
    first = service.submit(SWEEP)
    replay = service.submit(SWEEP)
    job_id = first.json()["id"]
    assert (first.status_code, replay.status_code, replay.json()["id"]) == (202, 202, job_id)
    assert (first.json()["kind"], first.json()["experiment"]) == ("sweep", "qaoa-sweep-3reg-6")
    report, content = _finish_sweep(service, job_id, tmp_path)

    record = service.http.get(f"/v1/jobs/{job_id}").json()
    result = JobResult.model_validate(service.http.get(f"/v1/jobs/{job_id}/result").json())
    download = service.http.get(f"/v1/jobs/{job_id}/result/parquet")
    again = service.http.get(f"/v1/jobs/{job_id}/result/parquet",
                             headers={"If-None-Match": download.headers["etag"]})
    other = service.http.get(f"/v1/jobs/{job_id}/result/parquet",
                             headers={"X-Qhybrid-Client": HOOKED})

    assert [t["status"] for t in record["transitions"]] == [
        "queued", "validating", "post-processing", "succeeded"]
    assert record["mlflow_run_id"] == "mlflow-run-1"
    assert (result.kind, result.sweep, result.report) == ("sweep", report, None)
    assert result.parquet is not None
    assert result.parquet.href == f"/v1/jobs/{job_id}/result/parquet"
    assert (result.parquet.media_type, result.parquet.bytes, result.parquet.sha256) == (
        "application/vnd.apache.parquet", len(content), hashlib.sha256(content).hexdigest())
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/vnd.apache.parquet"
    assert download.headers["etag"] == f'"{result.parquet.sha256}"'
    assert download.content == content
    assert again.status_code == 304 and again.content == b""
    assert _problem(other, 404).field == "id"  # another client's job is not there for it
    stranger = {"X-Qhybrid-Client": HOOKED}
    _problem(service.http.get(f"/v1/jobs/{job_id}/result", headers=stranger), 404)
    _problem(service.http.delete(f"/v1/jobs/{job_id}", headers=stranger), 404)

    # A run has no Parquet file; a file rewritten since the job ended is not served.
    run_id = service.submit(README).json()["id"]
    service.jobs.transition(run_id, "succeeded", result=JobResult(
        job_id=run_id, kind="run", source="simulator", backend="aer").model_dump(mode="json"))
    _problem(service.http.get(f"/v1/jobs/{run_id}/result/parquet"), 404)
    Path(report.output).write_bytes(content + b"tampered")
    _problem(service.http.get(f"/v1/jobs/{job_id}/result/parquet"), 404)


def test_the_event_stream_resumes_after_an_id_and_filters_by_job(service: Service) -> None:
    first = service.submit(README).json()["id"]
    second = service.submit(EVALUATE).json()["id"]
    service.http.delete(f"/v1/jobs/{first}")  # events: 1 first queued, 2 second, 3 first
    deadline = time.monotonic() + DEADLINE_SECONDS

    def take(n: int, **kwargs: Any) -> list[tuple[int, str, str]]:
        with service.http.stream("GET", "/v1/events", **kwargs) as stream:
            events = _sse(stream, deadline)
            return [(e["id"], e["job_id"], e["status"]) for e in (next(events)
                                                                  for _ in range(n))]

    assert take(2, headers={"Last-Event-ID": "1"}) == [(2, second, "queued"),
                                                        (3, first, "cancelled")]
    assert take(1, params={"after": 2}) == [(3, first, "cancelled")]
    assert take(2, params={"after": 0, "job_id": first}) == [(1, first, "queued"),
                                                             (3, first, "cancelled")]


# -- cancel -----------------------------------------------------------------------------------

def test_delete_cancels_a_queued_job_at_once_and_twice_harmlessly(service: Service) -> None:
    job_id = service.submit(README).json()["id"]

    cancelled = service.http.delete(f"/v1/jobs/{job_id}")
    events = service.jobs.last_event_id()
    again = service.http.delete(f"/v1/jobs/{job_id}")

    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert [t["status"] for t in cancelled.json()["transitions"]] == ["queued", "cancelled"]
    assert again.status_code == 202
    assert again.json() == service.http.get(f"/v1/jobs/{job_id}").json()
    assert again.json()["transitions"] == cancelled.json()["transitions"]
    assert service.jobs.last_event_id() == events
    assert service.jobs.queued() == []
    assert service.cancelled_flow_runs == []  # it had none
    assert _problem(service.http.delete("/v1/jobs/no-such-job"), 404).field == "id"


def test_delete_of_a_dispatched_run_cancels_its_flow_run(service: Service) -> None:
    job_id = service.submit(README).json()["id"]
    assert service.jobs.claim([job_id], "dispatch-1") == [job_id]
    service.jobs.started("dispatch-1", [job_id], "flow-run-7", sla="interactive", kind="run",
                         backend="aer", family="vqe")

    response = service.http.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 202
    assert response.json()["status"] == "queued"  # the flow run ends it
    assert service.cancelled_flow_runs == ["flow-run-7"]
    assert service.jobs.cancel_requested(job_id)
    assert usecases.begin_job(service.jobs, job_id, "flow-run-7") is None
    assert service.jobs.get(job_id).status == "cancelled"


# -- list -------------------------------------------------------------------------------------

def test_list_filters_and_pages_newest_first(service: Service) -> None:
    made: list[dict[str, Any]] = []
    for i in range(25):
        sla = SLA_CLASSES[i % 3]
        body = ({**EVALUATE, "sla": sla} if i % 5 == 0 else
                {"kind": "run", "sla": sla,
                 "spec_path": "specs/qaoa-maxcut-small.yaml" if i % 2 else SPEC})
        response = service.submit(body)
        assert response.status_code == 202, response.text
        made.append(response.json())
    for job in made[3:6]:
        service.http.delete(f"/v1/jobs/{job['id']}")
    newest_first = [job["id"] for job in reversed(made)]

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        page = service.http.get("/v1/jobs", params=params).json()
        pages.append([job["id"] for job in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 5, "paging does not end"

    assert [len(p) for p in pages] == [10, 10, 5]
    assert [job_id for p in pages for job_id in p] == newest_first

    def ids(**filters: Any) -> list[str]:
        page = service.http.get("/v1/jobs", params={"limit": 500, **filters})
        assert page.status_code == 200, page.text
        return [job["id"] for job in page.json()["items"]]

    def expected(keep: Any) -> list[str]:
        return [job["id"] for job in reversed(made) if keep(made.index(job))]

    assert ids(kind="evaluate") == expected(lambda i: i % 5 == 0)
    assert ids(sla="near-real-time") == expected(lambda i: i % 3 == 1)
    assert ids(status="cancelled") == expected(lambda i: 3 <= i < 6)
    assert ids(experiment="qaoa-maxcut-small") == expected(lambda i: i % 5 and i % 2)
    assert ids(kind="run", sla="interactive", status="queued") == expected(
        lambda i: i % 5 and i % 3 == 0 and not 3 <= i < 6)
    created = [datetime.fromisoformat(job["created_at"]).timestamp() for job in made]
    assert ids(since=(created[9] + created[10]) / 2) == expected(lambda i: i >= 10)


@pytest.mark.parametrize("cursor", ["forged", "bm90LWEtZmxvYXR8am9i", "!!!!"])
def test_a_forged_cursor_is_a_problem_naming_cursor(service: Service, cursor: str) -> None:
    assert _problem(service.http.get("/v1/jobs", params={"cursor": cursor}), 422).field == (
        "cursor")


# -- observe ----------------------------------------------------------------------------------

def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_accepts_and_jobs(service: Service) -> None:
    service.submit(README)
    service.submit(README)  # a replay: a request, not an accept
    service.submit(EVALUATE)
    service.submit({"kind": "run"})
    evaluation = service.submit({**EVALUATE, "sla": "interactive"}).json()["id"]
    service.http.delete(f"/v1/jobs/{evaluation}")
    service.http.get("/v1/jobs/no-such-job")

    response = service.http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    requests = "qhybrid_http_requests_total"
    assert value(requests, method="POST", route="/v1/jobs", status="202") == 4
    assert value(requests, method="POST", route="/v1/jobs", status="422") == 1
    assert value(requests, method="DELETE", route="/v1/jobs/{job_id}", status="202") == 1
    assert value(requests, method="GET", route="/v1/jobs/{job_id}", status="404") == 1
    accepted = "qhybrid_jobs_accepted_total"
    assert value(accepted, kind="run", sla="interactive") == 1
    assert value(accepted, kind="evaluate", sla="batch-research") == 1
    assert value(accepted, kind="evaluate", sla="interactive") == 1
    assert sum(v for (name, _), v in samples.items() if name == accepted) == 3
    assert value("qhybrid_jobs", status="queued", kind="run", sla="interactive") == 1
    assert value("qhybrid_jobs", status="queued", kind="evaluate", sla="batch-research") == 1
    assert value("qhybrid_jobs", status="cancelled", kind="evaluate", sla="interactive") == 1
    assert sum(v for (name, _), v in samples.items() if name == "qhybrid_jobs") == 3
    assert value("qhybrid_http_request_seconds_count", method="POST", route="/v1/jobs") == 5


def test_metrics_estimate_qpu_seconds_and_cost_per_completed_job(service: Service) -> None:
    for qpu in (2.5, 0.5):
        job_id = service.submit(EVALUATE).json()["id"]
        service.jobs.transition(job_id, "succeeded", metrics={"qpu_seconds": qpu})

    samples = _samples(service.http.get("/metrics").text)

    price = load_settings({}).qpu_price_per_second
    assert price > 0
    assert samples[("qhybrid_qpu_seconds_total", frozenset())] == 3.0
    assert samples[("qhybrid_cost_total", frozenset())] == pytest.approx(3.0 * price)
    assert samples[("qhybrid_job_cost_count", frozenset())] == 2
    assert samples[("qhybrid_job_cost_sum", frozenset())] == pytest.approx(3.0 * price)


def test_healthz_reports_the_job_store(service: Service) -> None:
    response = service.http.get("/healthz")

    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert response.json()["components"]["job_store"]["ok"] is True


def test_a_traceparent_names_the_trace_and_a_bad_one_is_ignored(service: Service) -> None:
    traced = service.submit(README, traceparent=f"00-{TRACE}-00f067aa0ba902b7-01")
    forged = service.submit({**README, "idempotency_key": "readme-2"},
                            traceparent=f"00-{TRACE[:-1]}g-00f067aa0ba902b7-01")
    zeros = service.submit({**README, "idempotency_key": "readme-3"},
                           traceparent=f"00-{'0' * 32}-00f067aa0ba902b7-01")

    assert traced.json()["trace_id"] == traced.headers["x-qhybrid-trace-id"] == TRACE
    assert service.jobs.get(traced.json()["id"]).trace_id == TRACE
    for response in (forged, zeros):
        trace = response.json()["trace_id"]
        assert response.headers["x-qhybrid-trace-id"] == trace
        assert len(trace) == 32 and int(trace, 16) and trace != TRACE
    assert forged.json()["trace_id"] != zeros.json()["trace_id"]
    status = service.http.get(f"/v1/jobs/{traced.json()['id']}")
    assert status.headers["x-qhybrid-trace-id"] == TRACE


class _Lines(logging.Handler):
    """The API's log records, as its JSON formatter gets them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.fields: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.fields.append({"message": record.getMessage(), **getattr(record, "fields", {})})


def test_each_request_logs_one_line_with_its_trace_and_job(service: Service) -> None:
    lines = _Lines()
    logger = logging.getLogger("qhybrid.api")
    logger.addHandler(lines)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        accepted = service.submit(README, traceparent=f"00-{TRACE}-00f067aa0ba902b7-01")
        replayed = service.submit(README)  # answered with the first job's trace
        refused = service.submit({"kind": "run"})
        service.http.get("/metrics")  # scrapes are not logged
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)

    job = accepted.json()["id"]
    assert lines.fields == [
        {"message": "request", "method": "POST", "path": "/v1/jobs", "status": 202,
         "trace_id": TRACE, "seconds": lines.fields[0]["seconds"], "job_id": job,
         "kind": "run", "sla": "interactive", "replayed": False},
        {"message": "request", "method": "POST", "path": "/v1/jobs", "status": 202,
         "trace_id": TRACE, "seconds": lines.fields[1]["seconds"], "job_id": job,
         "kind": "run", "sla": "interactive", "replayed": True},
        {"message": "request", "method": "POST", "path": "/v1/jobs", "status": 422,
         "trace_id": refused.headers["x-qhybrid-trace-id"],
         "seconds": lines.fields[2]["seconds"]},
    ]
    assert replayed.headers["x-qhybrid-trace-id"] == TRACE
    assert refused.headers["x-qhybrid-trace-id"] != TRACE


# -- contracts --------------------------------------------------------------------------------

_VISIBLE_ASCII = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=10)
_COMMON = {
    "sla": st.sampled_from(SLA_CLASSES),
    "shots": st.none() | st.integers(1, 1_000_000),
    "idempotency_key": st.none() | st.text(_VISIBLE_ASCII, min_size=1, max_size=200),
    "backend": st.sampled_from([None, "aer", "aer:matrix_product_state", "aer-noisy:fake_manila",
                                "ibm:fake_manila", "ibm:ibm_torino"]),
    "mitigation": st.none() | st.builds(MitigationSpec, readout=st.just(True),
                                        zne=st.booleans(), twirling=st.booleans(),
                                        repeats=st.integers(2, 50)),
    "callback_url": st.sampled_from([None, "https://hooks.example.com/qhybrid?x=1",
                                     "http://127.0.0.1:8080/cb"]),
    "trace_id": st.none() | st.text("0123456789abcdef", min_size=32, max_size=32).filter(
        lambda t: t != "0" * 32),
}
_MODELS = {"run": RunJobRequest, "promote": PromoteJobRequest, "evaluate": EvaluateJobRequest,
           "sweep": SweepJobRequest}
_SPEC_SOURCES = ({"spec": st.dictionaries(st.text(max_size=8), _JSON, max_size=4)},
                 {"spec_path": st.text(min_size=1, max_size=40)})
_JOB_REQUESTS = st.one_of(
    *(st.builds(model, kind=st.just(kind), **_COMMON, **source)
      for kind, model in _MODELS.items() if kind != "evaluate" for source in _SPEC_SOURCES),
    st.builds(EvaluateJobRequest, kind=st.just("evaluate"), **_COMMON,
              model=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}@[A-Za-z0-9][A-Za-z0-9_-]{0,20}",
                                  fullmatch=True),
              parameter_sets=st.none() | st.lists(
                  st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1,
                           max_size=6),
                  min_size=1, max_size=4),
              instance=st.none() | st.dictionaries(st.text(max_size=8), _JSON, max_size=4),
              output=st.sampled_from(["values", "samples"])),
)


def test_the_strategies_generate_every_kind() -> None:
    assert set(_MODELS) == set(get_args(JobKind))


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(job_request=_JOB_REQUESTS)
def test_job_requests_round_trip_through_json(
        job_request: RunJobRequest | PromoteJobRequest | EvaluateJobRequest | SweepJobRequest
) -> None:
    assert JOB_REQUEST.validate_json(job_request.model_dump_json()) == job_request


# -- the OpenAPI contract --------------------------------------------------------------------

def test_a_wrong_method_is_a_problem_naming_the_allowed_methods(service: Service) -> None:
    response = service.http.put("/v1/jobs")

    _problem(response, 405)
    assert {m.strip() for m in response.headers.get("allow", "").split(",")} == {"GET", "POST"}


def test_the_openapi_document_describes_every_error_as_a_problem(service: Service) -> None:
    paths = service.http.get("/openapi.json").json()["paths"]
    errors = {(method, path, code): response.get("content", {})
              for path, operations in paths.items() for method, operation in operations.items()
              for code, response in operation["responses"].items() if code[0] in "45"}

    assert len(errors) >= 10
    problem = {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}
    assert {where: content for where, content in errors.items()
            if content != {PROBLEM: problem}} == {}


@pytest.fixture
def api_schema(request: pytest.FixtureRequest, service: Service) -> Any:
    # schemathesis 4.32 renames the running test through `Node._nodeid`, which pytest 9.2 no
    # longer has (pytest's `nodeid` is a property now); give it the attribute it reads.
    request.node._nodeid = request.node.nodeid
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json", timeout=10)
    schema.config.update(base_url=service.url)
    return schema


openapi = schemathesis.pytest.from_fixture("api_schema").exclude(path="/v1/events")


@openapi.parametrize()
@settings(max_examples=30, derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_every_client_error_is_a_problem(case: Any) -> None:
    response = case.call(timeout=10)

    assert response.status_code < 500, (case.as_curl_command(), response.text)
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]  # lowercase keys, lists
        assert content_type.startswith(PROBLEM), case.as_curl_command()
        document = ProblemDocument.model_validate(response.json())
        assert document.status == response.status_code
