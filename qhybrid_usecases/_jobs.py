"""Jobs: accept a request, start it, record how it ended, cancel it.

The HTTP API calls :func:`accept_job` (one transaction in the job store, nothing else); the
``serve-jobs`` flow calls :func:`begin_job`, runs the work, then :func:`finish_job` (a sweep:
``finish_sweep_job``) or :func:`fail_job`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backends import QpuBudget, StateStore
from backends import qpu_budget as qpu_budget  # the settings' budget, for entry points
from qhybrid.core import (
    JOB_REQUEST,
    AnyJobRequest,
    ErrorRecord,
    EvaluateJobRequest,
    ExperimentSpec,
    InvalidInputError,
    JobNotFoundError,
    JobPage,
    JobRecord,
    JobResult,
    PromoteJobRequest,
    QhybridError,
    RunCancelledError,
    RunJobRequest,
    RunOptions,
    RunReport,
    Settings,
    SpecError,
    SweepJobRequest,
    load_spec,
    parse_backend_name,
    spec_from_mapping,
)
from qhybrid_control import JobFilter, JobStore, MetricsSnapshot, NewJob, metrics_snapshot

SpecJobRequest = RunJobRequest | PromoteJobRequest | SweepJobRequest


def job_store(settings: Settings) -> JobStore:
    """The job store, in the state store's database.

    Raises:
        InvalidInputError: The state store URL is unusable.
        TrackingError: The state store cannot be opened.
    """
    return JobStore(StateStore(settings.state_store_url).engine,
                    inline_max_bytes=settings.result_inline_max_bytes)


def state_store(settings: Settings) -> StateStore:
    """The execution state store (ledger, breakers, leases) ``settings`` name.

    Raises:
        InvalidInputError: The state store URL is unusable.
        TrackingError: The state store cannot be opened.
    """
    return StateStore(settings.state_store_url)


def _request_sha256(request: AnyJobRequest) -> str:
    # The trace id is transport metadata: a retry with a new one is the same request.
    body = request.model_dump(mode="json", exclude={"trace_id"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


SPEC_SUFFIXES = (".yaml", ".yml")
_SPECS: dict[Path, tuple[tuple[int, int], ExperimentSpec]] = {}
_SPECS_MAX = 64
_CACHE_LOCK = threading.Lock()
_DOCUMENTS: dict[int, tuple[ExperimentSpec, dict[str, Any]]] = {}


def _load_spec_cached(path: Path) -> ExperimentSpec:
    """``load_spec``, remembered while the file's size and modification time stay the same:
    an accept reads the same few spec files again and again (half its time, uncached)."""
    try:
        stat = path.stat()
    except OSError:
        return load_spec(path)  # which says what is wrong with the path
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _SPECS.get(path)
    if cached is not None and cached[0] == version:
        return cached[1]
    spec = load_spec(path)
    with _CACHE_LOCK:  # accepts run in several threads
        if len(_SPECS) >= _SPECS_MAX:
            _SPECS.pop(next(iter(_SPECS)))
        _SPECS[path] = (version, spec)
    return spec


@functools.lru_cache(maxsize=256)
def _spec_file(root: Path, spec_path: str) -> Path:
    """The spec file ``spec_path`` names inside the project ``root`` (resolved once per path:
    resolving costs a system call per path component).

    Raises:
        SpecError: Not a relative path to a YAML file inside the project (field spec_path).
    """
    resolved_root = root.resolve()
    relative = Path(spec_path)
    # Only YAML files inside the project: a path must not probe other files.
    if ("\x00" in spec_path or relative.is_absolute() or relative.suffix not in SPEC_SUFFIXES
            or any(part.startswith(".") for part in relative.parts)):
        raise SpecError(f"not a spec file of the project: {spec_path!r} (a relative "
                        "path to a .yaml file)", field="spec_path")
    try:
        full = (resolved_root / relative).resolve()
    except (OSError, ValueError):
        full = resolved_root.parent  # not resolvable: refused below
    if not full.is_relative_to(resolved_root):
        raise SpecError(f"{spec_path} is not a path inside the service's project",
                        field="spec_path")
    return full


def _spec_document(spec: ExperimentSpec) -> dict[str, Any]:
    """``spec`` as JSON data, dumped once per spec object (accepts share cached specs)."""
    cached = _DOCUMENTS.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    document = spec.model_dump(mode="json")
    with _CACHE_LOCK:  # accepts run in several threads
        if len(_DOCUMENTS) >= _SPECS_MAX:
            _DOCUMENTS.pop(next(iter(_DOCUMENTS)))
        _DOCUMENTS[id(spec)] = (spec, document)  # holding the spec keeps its id unused
    return document


def _spec_of(request: SpecJobRequest, settings: Settings) -> ExperimentSpec:
    if request.spec_path is not None:
        full = _spec_file(settings.project_root, request.spec_path)
        try:
            return _load_spec_cached(full)
        except SpecError as exc:
            # The message names the project's relative path, never the server's folders.
            root = settings.project_root.resolve()
            raise SpecError(exc.message.replace(f"{root}/", ""), field="spec_path") from None
    try:
        return spec_from_mapping(request.spec, source="spec")
    except SpecError as exc:
        raise SpecError(exc.message, field=f"spec.{exc.field}") from None


def _with_overrides(spec: ExperimentSpec, request: SpecJobRequest) -> ExperimentSpec:
    """The spec with the request's shots, mitigation and (for a promotion) hardware backend,
    validated again as a whole (``spec`` itself when the request overrides nothing)."""
    if (request.shots is None and request.mitigation is None
            and (request.kind != "promote" or request.backend is None)):
        return spec
    data = spec.model_dump(mode="json")
    if request.shots is not None:
        data["shots"] = request.shots
    hardware = data["gates"]["hardware"]
    if request.mitigation is not None:
        hardware["mitigation"] = request.mitigation.model_dump(mode="json")
    if request.kind == "promote" and request.backend is not None:
        hardware["backend"] = request.backend
        hardware["fallback"] = [b for b in hardware.get("fallback", ()) if b != request.backend]
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        field = {"shots": "shots", "gates.hardware.mitigation": "mitigation"}.get(
            where, "backend" if where.startswith("gates.hardware") else where)
        raise SpecError(f"with this request's overrides, {where}: {first['msg']}",
                        field=field) from None


def accept_job(jobs: JobStore, settings: Settings, request: AnyJobRequest, *, client: str,
               trace_id: str | None = None) -> tuple[JobRecord, bool]:
    """Validate a request and store it as a queued job, in one transaction; never waits for
    Prefect or a backend.

    Args:
        jobs: The job store.
        settings: Where the project (and its spec files) is.
        request: The validated request.
        client: Who asks (idempotency keys and webhook secrets are per client).
        trace_id: The caller's trace id (e.g. from a traceparent header), if the request
            names none.

    Returns:
        The job, and whether it is new (False: the idempotency key's earlier job).

    Raises:
        SpecError: The spec (inline or by path) is invalid, naming the field; a sweep's spec
            has no ``sweep`` section (field ``spec.sweep``).
        InvalidInputError: A callback URL without a webhook secret for the client.
        JobConflictError: The idempotency key names a job with a different request.
    """
    if request.callback_url is not None and client not in settings.client_secrets:
        raise InvalidInputError(
            f"client '{client}' has no webhook secret to sign callbacks with; ask the "
            "operator to add it to QHYBRID_WEBHOOK_SECRETS", field="callback_url")
    stored: dict[str, Any] = {"request": request.model_dump(mode="json")}
    if isinstance(request, EvaluateJobRequest):
        experiment, family = request.model.split("@", 1)[0], None
    else:
        spec = _with_overrides(_spec_of(request, settings), request)
        if request.kind == "promote":
            spec.gates.check_promotable()
        if request.kind == "sweep" and spec.sweep is None:
            named = "spec" if request.spec is not None else f"the spec {request.spec_path}"
            raise SpecError(f"{named} has no sweep section: a sweep job needs one (the points "
                            "to evaluate, docs/sweeps.md)", field="spec.sweep")
        experiment, family = spec.name, spec.family.kind
        stored["spec"] = _spec_document(spec)
    job = NewJob(
        id=str(uuid.uuid4()), client=client, kind=request.kind, sla=request.sla,
        experiment=experiment, family=family, backend=request.backend,
        idempotency_key=request.idempotency_key, request=stored,
        request_sha256=_request_sha256(request),
        trace_id=request.trace_id or trace_id or uuid.uuid4().hex,
        callback_url=None if request.callback_url is None else str(request.callback_url))
    return jobs.accept(job)


@dataclass(frozen=True)
class JobWork:
    """A started job: what its flow run must do."""

    job_id: str
    kind: str
    sla: str
    trace_id: str
    spec: ExperimentSpec | None
    options: RunOptions | None
    evaluate: EvaluateJobRequest | None
    downgrade: str | None = None  # already on the job (handed over to a slower class)


def begin_job(jobs: JobStore, job_id: str, flow_run_id: str | None) -> JobWork | None:
    """Move a job to ``validating`` and return its work; None if it was cancelled or has
    already ended (a re-dispatched job another flow run finished)."""
    record = jobs.get(job_id)
    if record.status in ("succeeded", "failed", "cancelled"):
        return None
    if jobs.cancel_requested(job_id):
        jobs.transition(job_id, "cancelled", sub_status="cancelled before it started")
        return None
    jobs.transition(job_id, "validating", flow_run_id=flow_run_id,
                    sub_status=f"flow run {flow_run_id}" if flow_run_id else None)
    stored = jobs.request_of(job_id)
    request = JOB_REQUEST.validate_python(stored["request"])
    # The job's class, not the request's: a job handed over to another class is served there.
    if isinstance(request, EvaluateJobRequest):
        return JobWork(job_id=job_id, kind=request.kind, sla=record.sla,
                       trace_id=record.trace_id, spec=None, options=None, evaluate=request,
                       downgrade=record.downgrade)
    spec = ExperimentSpec.model_validate(stored["spec"])
    # A promotion's backend is its hardware gate's, already in the spec (_with_overrides).
    options = RunOptions(backend=request.backend if request.kind != "promote" else None,
                         job_id=job_id, trace_id=record.trace_id, sla=record.sla)
    return JobWork(job_id=job_id, kind=request.kind, sla=record.sla, trace_id=record.trace_id,
                   spec=spec, options=options, evaluate=None)


def source_of(backend: str) -> str:
    """``hardware`` for a real device, else ``simulator`` (Aer, or a fake IBM device)."""
    return "hardware" if parse_backend_name(backend).is_real_hardware else "simulator"


def finish_job(jobs: JobStore, work: JobWork, report: RunReport) -> JobRecord:
    """Record a run's or promotion's report as the job's result; the job has succeeded."""
    execution = report.execution
    downgrade = None
    if execution is not None and execution.fallbacks:
        f = execution.fallbacks[0]
        downgrade = f"{f.role} ran on {f.used} instead of {f.requested}"
    result = {
        "job_id": work.job_id, "kind": work.kind, "source": source_of(report.backend),
        "backend": report.backend, "downgrade": downgrade,
        "parameter_names": list(report.parameters), "report": report.model_dump(mode="json"),
    }
    metrics: dict[str, Any] = {"backend": report.backend}
    if execution is not None:
        metrics |= {"qpu_seconds": execution.qpu_seconds_estimate,
                    "provider_submissions": execution.provider_submissions,
                    "retries_by_class": dict(execution.retries_by_class),
                    "breaker_trips": execution.breaker_trips}
    if report.decision is not None:
        metrics["promoted"] = report.decision.promote
    return jobs.transition(work.job_id, "succeeded", result=result,
                           mlflow_run_id=report.mlflow_run_id, downgrade=downgrade,
                           metrics=metrics,
                           provider_job_ids=execution.job_ids if execution else ())


def fail_job(jobs: JobStore, job_id: str, exc: BaseException) -> JobRecord:
    """Record why a job failed (or that it was cancelled)."""
    if isinstance(exc, RunCancelledError) or jobs.cancel_requested(job_id):
        return jobs.transition(job_id, "cancelled", sub_status=str(exc) or "cancelled")
    if isinstance(exc, QhybridError):
        error = ErrorRecord.model_validate(exc.to_dict())
    else:
        error = ErrorRecord(error=type(exc).__name__, layer="internal", transient=False,
                            message=str(exc) or type(exc).__name__)
    return jobs.transition(job_id, "failed", error=error, sub_status=error.layer)


def owned_job(jobs: JobStore, job_id: str, *, client: str) -> JobRecord:
    """The job ``job_id`` if ``client`` submitted it.

    A job's results and its cancellation belong to the client that submitted it; another
    client is answered as if the job did not exist (a job id is not a secret, a result is).

    Raises:
        JobNotFoundError: No job has that id, or another client submitted it.
    """
    record = jobs.get(job_id)
    if record.client != client:
        raise JobNotFoundError(f"no job {job_id} of client '{client}'", field="id")
    return record


def cancel_job(jobs: JobStore, job_id: str, *, client: str) -> JobRecord:
    """Cancel a job of ``client``: at once if it has not been dispatched, else through its
    flow run (the caller cancels that run; the flow releases its provider jobs and sessions).

    Raises:
        JobNotFoundError: No job has that id, or another client submitted it.
    """
    owned_job(jobs, job_id, client=client)
    return jobs.request_cancel(job_id)


def job_status(jobs: JobStore, job_id: str) -> JobRecord:
    """The job's status.

    Raises:
        JobNotFoundError: No job has that id.
    """
    return jobs.get(job_id)


def job_page(jobs: JobStore, where: JobFilter, *, limit: int, cursor: str | None) -> JobPage:
    """One page of jobs, newest first.

    Raises:
        InvalidInputError: A cursor this service did not issue.
    """
    items, next_cursor = jobs.page(where, limit=limit, cursor=cursor)
    return JobPage(items=tuple(items), next_cursor=next_cursor)


def job_result(jobs: JobStore, job_id: str, *, client: str) -> JobResult:
    """The result of a succeeded job of ``client``.

    Raises:
        JobNotFoundError: No job has that id, another client submitted it, or it has no
            result (yet).
    """
    record = owned_job(jobs, job_id, client=client)
    stored = jobs.result_of(job_id)
    if record.status != "succeeded" or stored is None:
        raise JobNotFoundError(f"job {job_id} has no result: it is {record.status}",
                               field="id")
    return JobResult.model_validate(stored)


def job_result_data(jobs: JobStore, job_id: str, *, client: str) -> tuple[str, str]:
    """The full result document of a job of ``client`` whose result is served by reference:
    its JSON text and SHA-256.

    Raises:
        JobNotFoundError: No job has that id, another client submitted it, or its result is
            not stored by reference.
    """
    record = owned_job(jobs, job_id, client=client)
    data = jobs.result_data(job_id)
    if data is None:
        raise JobNotFoundError(f"job {job_id} has no result stored by reference: it is "
                               f"{record.status}, and its result (if any) is inline at "
                               f"/v1/jobs/{job_id}/result", field="id")
    return data[0], data[1]


def service_metrics(jobs: JobStore, store: StateStore,
                    budget: QpuBudget | None = None) -> MetricsSnapshot:
    """Every worker's work as the stores hold it: jobs, batches, callbacks, the provider
    submission ledger and the circuit breakers; with a QPU ``budget``, what its window spent.

    Raises:
        TrackingError: A store cannot be read.
    """
    snap = metrics_snapshot(jobs.engine, now=jobs.clock())
    snap.submissions = store.ledger_counts()
    snap.breakers = {b.backend: (b.state, b.trips) for b in store.breakers()}
    if budget is not None:
        snap.qpu_budget_spent = store.qpu_spent(jobs.clock() - budget.window_seconds)
    return snap
