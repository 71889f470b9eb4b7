"""The job API: accept a request, keep a durable job, report its status, stream its events.

``POST /v1/jobs`` validates the request and writes the job row and its first event in one
transaction of the job store; it never waits for Prefect or a backend. The dispatcher (a
separate process under ``qhybrid serve``) turns queued jobs into flow runs. Errors are RFC
9457 problem documents naming the offending field.

Run it with ``uvicorn --factory qhybrid_entrypoints.api:app_from_environment``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Body, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import qhybrid_usecases as usecases
from qhybrid.core import (
    EvaluateJobRequest,
    InvalidInputError,
    JobConflictError,
    JobKind,
    JobNotFoundError,
    JobPage,
    JobRecord,
    JobResult,
    JobStatus,
    ProblemDocument,
    PromoteJobRequest,
    QhybridError,
    RunJobRequest,
    Settings,
    SlaClass,
    SweepJobRequest,
    TrackingError,
    is_trace_id,
    load_settings,
)
from qhybrid_control import JobFilter, JobStore, policies_from
from qhybrid_entrypoints._logs import json_logging
from qhybrid_entrypoints._metrics import ServiceMetrics

log = logging.getLogger("qhybrid.api")

CLIENT_HEADER = "X-Qhybrid-Client"
TRACE_HEADER = "X-Qhybrid-Trace-Id"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\Z")
_CLIENT = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
EVENT_POLL_SECONDS = 0.5
ACCEPT_THREADS = 2

AnyJobRequest = Annotated[
    RunJobRequest | PromoteJobRequest | EvaluateJobRequest | SweepJobRequest,
    Body(discriminator="kind")]

_STATUS_BY_ERROR: tuple[tuple[type[QhybridError], int], ...] = (
    (JobNotFoundError, 404),
    (JobConflictError, 409),
    (InvalidInputError, 422),
    (TrackingError, 503),
)


def _problem(status: int, title: str, detail: str, *, instance: str | None = None,
             field: str | None = None, errors: tuple[dict[str, object], ...] = ()
             ) -> JSONResponse:
    document = ProblemDocument(title=title, status=status, detail=detail, instance=instance,
                               field=field, errors=errors)
    return JSONResponse(document.model_dump(mode="json", exclude_none=True), status_code=status,
                        media_type="application/problem+json")


def trace_from(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header (None if absent or malformed)."""
    if traceparent is None:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or not is_trace_id(match.group(1)):
        return None
    return match.group(1)


def create_app(settings: Settings, *, cancel_flow_run: Callable[[str], None] | None = None,
               health: Callable[[], dict[str, dict[str, object]]] | None = None) -> FastAPI:
    """The job API on the stores ``settings`` names.

    Args:
        settings: Stores and project root (spec paths resolve against it).
        cancel_flow_run: Asks the orchestrator to cancel a flow run (DELETE of a running job).
        health: Extra components for ``/healthz`` (Prefect, MLflow, workers), by name.
    """
    jobs = usecases.job_store(settings)
    policies = policies_from(settings.sla_policies)
    metrics = ServiceMetrics(jobs, usecases.state_store(settings), policies,
                             price_per_qpu_second=settings.qpu_price_per_second,
                             budget=usecases.qpu_budget(settings))
    # Accepts are CPU-bound and write one database: two threads at a time keep the GIL and the
    # write lock uncontended (with 40 threads, p95 doubled at concurrency 8).
    accepting = anyio.CapacityLimiter(ACCEPT_THREADS)
    app = FastAPIOffline(
        title="qhybrid job API", version="1",
        description="Submit hybrid quantum-classical jobs (run, promote, evaluate, sweep), "
        "follow their status, read their results. Errors are RFC 9457 problem documents.")

    _handlers(app)
    _problem_documents_in_openapi(app)

    app.add_middleware(_Observe, metrics=metrics)

    @app.post("/v1/jobs", status_code=202, response_model=JobRecord,
              responses={409: {"model": ProblemDocument}, 422: {"model": ProblemDocument}},
              summary="Submit a job")
    async def submit(request: Request, response: Response, body: AnyJobRequest,
                     client: Annotated[str, Header(alias=CLIENT_HEADER)] = "default"
                     ) -> JobRecord:
        """Accept a job; answers at once with its id and status ``queued``."""
        if not _CLIENT.match(client):
            raise InvalidInputError("a client name is 1-100 of A-Z a-z 0-9 . _ -",
                                    field=CLIENT_HEADER)
        record, created = await anyio.to_thread.run_sync(
            functools.partial(usecases.accept_job, jobs, settings, body, client=client,
                              trace_id=request.state.trace_id),
            limiter=accepting)
        response.headers["Location"] = f"/v1/jobs/{record.id}"
        response.headers[TRACE_HEADER] = record.trace_id
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        else:
            metrics.accepted(record.kind, record.sla)
        request.state.log_fields = {"job_id": record.id, "kind": record.kind,
                                    "sla": record.sla, "replayed": not created}
        return record

    @app.get("/v1/jobs/{job_id}", response_model=JobRecord,
             responses={404: {"model": ProblemDocument}}, summary="A job's status")
    def status(job_id: str, response: Response) -> JobRecord:
        """One status model for every kind and backend."""
        record = usecases.job_status(jobs, job_id)
        response.headers[TRACE_HEADER] = record.trace_id
        return record

    @app.get("/v1/jobs/{job_id}/result", response_model=JobResult,
             responses={404: {"model": ProblemDocument}}, summary="A succeeded job's result")
    def result(job_id: str, client: Annotated[str, Header(alias=CLIENT_HEADER)] = "default"
               ) -> JobResult:
        """The standard result object (404 until the job has succeeded); only to the client
        that submitted the job (404 to any other)."""
        return usecases.job_result(jobs, job_id, client=client)

    @app.get("/v1/jobs/{job_id}/result/data", response_class=Response,
             responses={200: {"content": {"application/json": {
                 "schema": {"$ref": "#/components/schemas/JobResult"}}}},
                 304: {"description": "Not modified (If-None-Match matched)"},
                 404: {"model": ProblemDocument}},
             summary="A large result's full document")
    def result_data(job_id: str, client: Annotated[str, Header(alias=CLIENT_HEADER)] = (
            "default"), if_none_match: Annotated[
            str | None, Header(alias="If-None-Match", max_length=200)] = None) -> Response:
        """The whole result of a job whose result object refers here (``data.href``); only to
        the client that submitted the job (404 to any other)."""
        body, sha256 = usecases.job_result_data(jobs, job_id, client=client)
        etag = f'"{sha256}"'
        if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json",
                        headers={"ETag": etag, "Cache-Control": "private, max-age=86400"})

    @app.get("/v1/jobs/{job_id}/result/parquet", response_class=Response,
             responses={200: {"content": {usecases.PARQUET_MEDIA_TYPE: {
                 "schema": {"type": "string", "format": "binary"}}},
                 "description": "The Parquet file, one row per point (docs/sweeps.md)"},
                 304: {"description": "Not modified (If-None-Match matched)"},
                 404: {"model": ProblemDocument}},
             summary="A sweep job's Parquet file")
    def result_parquet(job_id: str, client: Annotated[str, Header(alias=CLIENT_HEADER)] = (
            "default"), if_none_match: Annotated[
            str | None, Header(alias="If-None-Match", max_length=200)] = None) -> Response:
        """The Parquet file of a succeeded sweep job (``parquet.href`` of its result), streamed;
        only to the client that submitted the job (404 to any other)."""
        download = usecases.sweep_job_parquet(jobs, job_id, client=client)
        etag = f'"{download.data.sha256}"'
        if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
            return Response(status_code=304, headers={"ETag": etag})
        return FileResponse(download.path, media_type=usecases.PARQUET_MEDIA_TYPE,
                            filename=f"{job_id}.parquet",
                            headers={"ETag": etag, "Cache-Control": "private, max-age=86400"})

    @app.delete("/v1/jobs/{job_id}", status_code=202, response_model=JobRecord,
                responses={404: {"model": ProblemDocument}}, summary="Cancel a job")
    def cancel(job_id: str, client: Annotated[str, Header(alias=CLIENT_HEADER)] = "default"
               ) -> JobRecord:
        """Cancel a job, down to its provider jobs and sessions; only the client that
        submitted it can (404 to any other)."""
        record = usecases.cancel_job(jobs, job_id, client=client)
        if (record.status not in ("succeeded", "failed", "cancelled")
                and record.prefect_flow_run_id and record.kind != "evaluate"
                and cancel_flow_run is not None):
            # A run, promotion or sweep has a flow run of its own: cancelling it releases the
            # provider jobs and sessions it holds. Evaluations share a flow run with other
            # jobs; theirs sees the request before it starts.
            cancel_flow_run(record.prefect_flow_run_id)
        return record

    @app.get("/v1/jobs", response_model=JobPage, summary="List jobs")
    def list_jobs(
        status: JobStatus | None = None, kind: JobKind | None = None,
        sla: SlaClass | None = None,
        experiment: Annotated[str | None, Query(max_length=200)] = None,
        since: Annotated[float | None, Query(ge=0, le=1e11,
                                             description="Unix seconds.")] = None,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> JobPage:
        """Jobs newest first, filtered, ``limit`` at a time."""
        return usecases.job_page(jobs, JobFilter(status=status, kind=kind, sla=sla,
                                                 experiment=experiment, since=since),
                                 limit=limit, cursor=cursor)

    @app.get("/v1/events", summary="Status transitions as Server-Sent Events",
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
    async def events(
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
        after: Annotated[int | None, Query(ge=0, description="Start after this event id; "
                                           "default: new events only.")] = None,
        job_id: Annotated[str | None, Query(max_length=36)] = None,
    ) -> StreamingResponse:
        """Every status transition from now on (or after ``after`` / ``Last-Event-ID``)."""
        start = after
        if last_event_id is not None and last_event_id.isdigit():
            start = int(last_event_id)
        if start is None:
            start = await asyncio.to_thread(jobs.last_event_id)
        return StreamingResponse(_event_stream(jobs, start, job_id),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", summary="Each component's health")
    def healthz() -> JSONResponse:
        """The job store, and (under ``qhybrid serve``) Prefect, MLflow and the workers."""
        components: dict[str, dict[str, object]] = {"job_store": _store_health(jobs)}
        if health is not None:
            components |= health()
        ok = all(c.get("ok") for c in components.values())
        return JSONResponse({"ok": ok, "components": components},
                            status_code=200 if ok else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        """Request volume, queue time, batches, backends, retries, webhooks (Prometheus)."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


class _Observe:
    """Per request: the trace id (from ``traceparent`` or new), the request metrics, and one
    JSON log line (with the job's fields when a handler sets ``request.state.log_fields``).

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a task and a wrapped
    response stream per request, a fifth of an accept.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        traceparent = next((value for name, value in scope["headers"]
                            if name == b"traceparent"), None)
        trace = trace_from(traceparent.decode("latin-1") if traceparent else None)
        state = scope.setdefault("state", {})
        state["trace_id"] = trace = trace or uuid.uuid4().hex
        answered = [500]  # an exception escaping the app is answered 500 outside

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered[0] = message["status"]
                headers = MutableHeaders(scope=message)
                if TRACE_HEADER not in headers:
                    headers[TRACE_HEADER] = trace
                else:
                    state["trace_id"] = headers[TRACE_HEADER]
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            seconds = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], route, answered[0], seconds)
            if route != "/metrics":
                log.info("request", extra={"fields": {
                    "method": scope["method"], "path": route, "status": answered[0],
                    "trace_id": state["trace_id"], "seconds": round(seconds, 6),
                    **state.get("log_fields", {})}})


def _store_health(jobs: JobStore) -> dict[str, object]:
    started = time.perf_counter()
    try:
        jobs.last_event_id()
    except TrackingError as exc:
        return {"ok": False, "error": exc.message}
    return {"ok": True, "seconds": round(time.perf_counter() - started, 6)}


async def _event_stream(jobs: JobStore, start: int, job_id: str | None) -> AsyncIterator[str]:
    cursor = start
    yield ": qhybrid job events\n\n"
    while True:
        batch = await asyncio.to_thread(jobs.events, cursor)
        for event in batch:
            cursor = event.id
            if job_id is not None and event.job_id != job_id:
                continue
            data = json.dumps({"job_id": event.job_id, "status": event.status,
                               "sub_status": event.sub_status, "at": event.at})
            yield f"id: {event.id}\nevent: status\ndata: {data}\n\n"
        if not batch:
            yield ": keep-alive\n\n"
            await asyncio.sleep(EVENT_POLL_SECONDS)  # the store has no push channel


def _field(loc: Sequence[object], kind: str) -> str:
    """A validation error's location as the request field's dotted name: without ``body``
    and without the union member's tag (``run``, ``promote``, ``evaluate``, ``sweep``)."""
    if kind.startswith("union_tag"):
        return "kind"
    if kind == "json_invalid":
        return "body"
    parts = [str(p) for p in loc]
    if parts[:1] == ["body"]:
        parts = parts[1:]
        if parts[:1] and parts[0] in ("run", "promote", "evaluate", "sweep"):
            parts = parts[1:]
    return ".".join(parts) or "body"


def _problem_documents_in_openapi(app: FastAPI) -> None:
    """Document what the handlers send: every 4xx and 5xx is an ``application/problem+json``
    ProblemDocument (FastAPI would list ``application/json`` and its own 422 model)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = original()
        problem = {"$ref": "#/components/schemas/ProblemDocument"}
        for methods in document.get("paths", {}).values():
            for operation in methods.values():
                responses = operation.get("responses", {})
                for code, response in responses.items():
                    if code[:1] in ("4", "5"):
                        response["content"] = {"application/problem+json": {"schema": problem}}
                        if code == "422":
                            response["description"] = "Invalid request (the field is named)"
        schemas = document.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(QhybridError)
    async def _qhybrid(request: Request, exc: QhybridError) -> JSONResponse:
        status = next((code for cls, code in _STATUS_BY_ERROR if isinstance(exc, cls)), 500)
        return _problem(status, type(exc).__name__, exc.message, instance=request.url.path,
                        field=exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = tuple({"field": _field(e.get("loc", ()), str(e.get("type", ""))),
                        "message": e.get("msg", "")} for e in exc.errors())
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return _problem(422, "Invalid request", f"{first['field']}: {first['message']}",
                        instance=request.url.path, field=str(first["field"]) or None,
                        errors=errors)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"fields": {"path": request.url.path}})
        return _problem(500, "Internal error", f"{type(exc).__name__}; the service log has "
                        "the details", instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        answer = _problem(exc.status_code, str(exc.detail), str(exc.detail),
                          instance=request.url.path)
        answer.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not just one route's
            answer.headers["Allow"] = ", ".join(sorted({
                method for route in app.routes if isinstance(route, APIRoute)
                and route.path_regex.match(request.url.path) for method in route.methods or ()}))
        return answer


def app_from_environment() -> FastAPI:
    """The app on the ``QHYBRID_*`` settings of this process (uvicorn ``--factory``)."""
    from qhybrid_entrypoints._launcher import PrefectLauncher, service_health

    settings = load_settings(os.environ)
    json_logging()
    launcher = PrefectLauncher()
    return create_app(settings, cancel_flow_run=launcher.cancel,
                      health=lambda: service_health(settings))
