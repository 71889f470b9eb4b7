"""A run's records: open it, record its evidence, finish it, or fail it leaving nothing open.

A :class:`RunHandle` is what the steps of one run share: plain data (the spec, the options,
the MLflow parent run, the DVC pins), so that it can cross a process or a task boundary.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field

import registry
from backends import BackendExecutor, release_leases
from qhybrid.core import (
    BaselineResult,
    ExperimentSpec,
    GateResult,
    JobNotFoundError,
    JobStatus,
    LeaseRelease,
    NoiseSpec,
    RunCancelledError,
    RunOptions,
    Settings,
    TrialResult,
)
from qhybrid.experiments import Workload
from qhybrid_control import JobStore
from qhybrid_usecases._drawing import render
from qhybrid_usecases._inputs import load_inputs, reload_workload
from qhybrid_usecases._services import Services
from registry import git_commit, package_versions

log = logging.getLogger("qhybrid.run")

RunKind = Literal["run", "promotion"]


class RunHandle(BaseModel):
    """What every step of one run or promotion reads; immutable and JSON-serialisable.

    Attributes:
        kind: ``run`` or ``promotion``.
        spec: The experiment.
        options: How it runs.
        flow_run_id: The Prefect flow run, when orchestrated.
        mlflow_run_id: The MLflow parent run.
        scratch: A folder whose files become the parent run's artifacts.
        pins: The DVC pin of every input at the start of the run.
        data_overrides: Inputs that did not match dvc.lock (allowed and recorded).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: RunKind
    spec: ExperimentSpec
    options: RunOptions
    flow_run_id: str | None
    mlflow_run_id: str
    scratch: str
    pins: dict[str, dict[str, object]]
    data_overrides: tuple[str, ...] = ()

    def workload(self, services: Services) -> Workload:
        """The workload of the pinned data, built once for the run's services.

        Raises:
            DataError: An input changed since the run started.
        """
        return reload_workload(self.spec, services.settings, self.pins, services.workloads)


class StepOutcome(BaseModel):
    """What one step of a run produced: a gate's verdict, the trial behind it, baselines, and
    the backends it ran on (by role), for the manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gate: GateResult | None = None
    trial: TrialResult | None = None
    baselines: tuple[BaselineResult, ...] = ()
    backends: dict[str, dict[str, object]] = Field(default_factory=dict)


class TrialOutcome(StepOutcome):
    """A step that always measures a trial: a plain run, the ideal and the hardware gate."""

    trial: TrialResult


def open_run(
    spec: ExperimentSpec, options: RunOptions, services: Services, *, kind: RunKind,
    flow_run_id: str | None,
) -> RunHandle:
    """Validate the inputs, then open the MLflow parent run. Nothing is written if validation
    fails.

    Raises:
        InvalidInputError: Bad data or a spec that does not fit its data.
        TrackingError: MLflow could not be written.
    """
    inputs = load_inputs(spec, services.settings, allow_unpinned_data=options.allow_unpinned_data)
    commit = git_commit(services.settings.project_root)
    tags = {
        "qhybrid.kind": kind,
        "qhybrid.experiment": spec.name,
        "qhybrid.version": spec.version,
        "qhybrid.family": spec.family.kind,
        "qhybrid.spec_sha256": spec.sha256(),
        "qhybrid.git_commit": commit or "unknown",
        "qhybrid.prefect_flow_run_id": flow_run_id or "none",
        "qhybrid.data_overrides": "; ".join(inputs.overrides) or "none",
        **{f"dvc.md5.{path}": pin.md5 for path, pin in inputs.pins.items()},
        **{f"package.{name}": version for name, version in package_versions().items()},
        **owner_tags(),  # so that a later command can tell the run's process was killed
        **({"qhybrid.job_id": options.job_id} if options.job_id else {}),
        **({"qhybrid.trace_id": options.trace_id} if options.trace_id else {}),
        "qhybrid.retry_policy": retry_policy(services.settings, options.sla),
    }
    tracker = services.tracker
    parent = tracker.start_run(f"{kind}:{spec.name}@{spec.version}", tags=tags)
    pins = {path: pin.to_dict() for path, pin in inputs.pins.items()}
    try:
        tracker.log_params(parent, spec.flat_params())
        tracker.log_datasets(parent, pins)
    except BaseException as exc:  # the run is not handed over yet: no one else can end it
        tracker.end_run(parent, failure_reason(exc)[1])
        raise
    return RunHandle(
        kind=kind, spec=spec, options=options, flow_run_id=flow_run_id, mlflow_run_id=parent,
        scratch=tempfile.mkdtemp(prefix=_scratch_prefix(parent)), pins=pins,
        data_overrides=inputs.overrides,
    )


def _scratch_prefix(mlflow_run_id: str) -> str:
    """The start of the name of a run's scratch folder (in the system's temporary folder)."""
    return f"qhybrid-{mlflow_run_id}-"


def retry_policy(settings: Settings, sla: str | None) -> str:
    """How a run's provider submissions are retried under ``settings`` (already those of
    class ``sla``, if any), e.g. ``submission_retries=1, retry_backoff_seconds=0.5 (SLA class
    interactive)``."""
    whose = f"SLA class {sla}" if sla else "settings"
    return (f"submission_retries={settings.submission_retries}, "
            f"retry_backoff_seconds={settings.retry_backoff_seconds:g} ({whose})")


def run_executor(
    run: RunHandle, services: Services, backend: str, *, field: str = "backend",
    noise: NoiseSpec | None = None,
) -> BackendExecutor:
    """An executor on ``backend`` for a step of ``run``: the spec's transpiler seed, the run's
    flow run, and provider jobs tagged with the trace id and job id of the request behind it;
    ``noise`` is the noise an Aer backend simulates.

    Raises:
        BackendNameError: Unknown backend or device, or a real device without a token.
        SpecError: A noise section that cannot be built.
    """
    return services.executor(backend, transpiler_seed=run.spec.seeds.transpiler,
                             flow_run_id=run.flow_run_id, field=field,
                             traces=[(run.options.trace_id, run.options.job_id)], noise=noise)


def owner_tags() -> dict[str, str]:
    """Tags naming this process as the owner of a run."""
    me = psutil.Process()
    return {"qhybrid.host": socket.gethostname(), "qhybrid.pid": str(me.pid),
            "qhybrid.process_started": f"{me.create_time():.3f}"}



@contextlib.contextmanager
def gate_run(run: RunHandle, services: Services, result: GateResult,
             extra_tags: dict[str, str] | None = None, *,
             trial: tuple[Workload, TrialResult] | None = None,
             series: Mapping[str, Sequence[float]] | None = None) -> Iterator[str]:
    """Record one gate as a nested MLflow run (its verdict, metrics and inputs; the
    optimiser's history and the cost of a ``(workload, trial)``; metric ``series``) and yield
    its id for the gate to add to; the run ends FINISHED when the block completes, FAILED or
    KILLED (as :func:`failure_reason` says) when it raises or is interrupted."""
    tracker = services.tracker
    run_id = tracker.start_run(
        f"gate:{result.gate}",
        tags={"qhybrid.gate": result.gate, "qhybrid.verdict": "pass" if result.passed else "fail",
              "qhybrid.backend": result.backend, **(extra_tags or {})},
        parent_run_id=run.mlflow_run_id,
    )
    try:
        history, cost = trial_values(*trial) if trial is not None else ({}, {})
        tracker.log_values(run_id, series={**history, **(series or {})}, metrics={
            **result.metrics, "seconds": result.seconds, "passed": float(result.passed), **cost})
        tracker.log_dict(run_id, result.model_dump(mode="json"), "gate.json")
        tracker.log_datasets(run_id, run.pins)
        yield run_id
    except BaseException as exc:
        tracker.end_run(run_id, failure_reason(exc)[1])
        raise
    tracker.end_run(run_id)


def log_plots(services: Services, run_id: str, draw: Callable[[Path], object]) -> None:
    """Let ``draw`` write PNG files into a fresh folder, and log them under ``plots/`` of
    MLflow run ``run_id``: in the run's plot thread (``services.drawer``), which the run waits
    for before it applies a promotion or ends. The files stay with the drawer under
    ``run_id`` (``services.drawer.kept(run_id, "convergence.png")``) until that wait."""
    services.drawer.submit(
        draw, lambda folder: services.tracker.log_artifacts(run_id, folder, "plots"),
        keep_as=run_id)


def draw_trial(workload: Workload, trial: TrialResult, folder: Path, title: str, *,
               drawn: Callable[[str], bool] = lambda name: False) -> None:
    """The trial's counts (``histogram.png``) and, when it was optimised, the objective per
    iteration (``convergence.png``) in ``folder``; a file ``drawn`` says is there already is
    not drawn again."""
    if not drawn("histogram.png"):
        render(registry.histogram_png, trial.counts, folder / "histogram.png", title=title)
    if trial.history and not drawn("convergence.png"):
        render(registry.convergence_png, [workload.sign * v for v in trial.history],
               folder / "convergence.png", title=title, ylabel=workload.family.axis_label)


def trial_values(workload: Workload,
                 trial: TrialResult) -> tuple[dict[str, list[float]], dict[str, float]]:
    """The optimiser's history (a metric series) and the trial's cost (metrics), as an MLflow
    run records them."""
    # The optimiser minimises sign * <observable>; log the objective as users read it.
    history = {"objective": [workload.sign * v for v in trial.history]} if trial.history else {}
    return history, {"evaluations": trial.evaluations, "batches": trial.batches,
                     "quantum_seconds": trial.quantum_seconds,
                     "classical_seconds": trial.classical_seconds}


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or while handling, newest first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def interrupted(exc: BaseException) -> bool:
    """Whether a Ctrl-C is behind ``exc``, even one Prefect replaced with an error of its own."""
    return any(isinstance(cause, KeyboardInterrupt) for cause in _causes(exc))


def terminated(exc: BaseException) -> bool:
    """Whether a SIGTERM is behind ``exc``, even one Prefect replaced with an error of its own
    (it can, when the signal lands while it creates a task run)."""
    return any(type(cause).__name__ == "TerminationSignal" for cause in _causes(exc))


def failure_reason(exc: BaseException) -> tuple[str, str]:
    """Why a run stopped, and the MLflow status for it: ``(reason, FAILED | KILLED)``.

    A signal anywhere in the chain wins: Prefect can replace a ``KeyboardInterrupt`` with an
    error of its own when the signal lands while it creates a task run.
    """
    for cause in _causes(exc):
        if isinstance(cause, RunCancelledError):
            return "flow cancelled", "KILLED"
        if type(cause).__name__ == "TerminationSignal":  # SIGTERM: a worker cancelling, shutdown
            return "flow terminated", "KILLED"
        if isinstance(cause, KeyboardInterrupt):
            return "flow interrupted", "KILLED"
    name = type(exc).__name__
    if isinstance(exc, TimeoutError) or name == "CancelledError":  # timeout_seconds exceeded
        return "flow timed out", "FAILED"
    return f"flow failed: {name}", "FAILED"


def release_flow_run_leases(services: Services, flow_run_id: str, mlflow_run_id: str, *,
                            reason: str, transpiler_seed: int = 0) -> list[LeaseRelease]:
    """Cancel every lease a flow run still holds.

    A lease whose release fails stays open (``qhybrid leases --release`` can try again); it is
    logged and tagged on the MLflow run, never dropped silently.
    """
    outcomes = release_leases(
        services.store, flow_run_id,
        lambda name: services.backend(name, transpiler_seed=transpiler_seed), reason=reason)
    services.log.count("leases_closed", sum(1 for o in outcomes if o.released))
    failed = [o for o in outcomes if not o.released]
    for outcome in failed:
        log.warning("lease not released, still open: %s", outcome)
    if failed:
        services.tracker.set_tags(mlflow_run_id, {
            "qhybrid.lease_release_failed": "; ".join(str(o) for o in failed)[:5000]})
    return outcomes


def end_open_gate_runs(services: Services, mlflow_run_id: str, status: str) -> None:
    """End, with ``status``, every run nested under ``mlflow_run_id`` that is still RUNNING (a
    gate a stop cut short between opening its run and ending it)."""
    for child in services.tracker.child_runs(mlflow_run_id):
        if child.status == "RUNNING":
            services.tracker.end_run(child.run_id, status)


def fail_run(run: RunHandle, services: Services, exc: BaseException) -> list[LeaseRelease]:
    """Release every lease the run holds, keep its execution record, end any gate run still
    open and the parent run FAILED (KILLED when cancelled, interrupted or terminated), drop the
    scratch folder.

    Returns:
        What happened to each lease.
    """
    reason, status = failure_reason(exc)
    try:
        released = [] if run.flow_run_id is None else release_flow_run_leases(
            services, run.flow_run_id, run.mlflow_run_id, reason=reason,
            transpiler_seed=run.spec.seeds.transpiler)
    finally:
        # The plots handed over so far are logged (their errors only logged), leases first.
        services.drawer.settle()
        record = services.log.record()
        tracker = services.tracker
        tracker.set_tags(run.mlflow_run_id, {
            "qhybrid.failure": reason,
            "qhybrid.execution": f"{record.provider_submissions} provider submissions, "
                                 f"{len(record.fallbacks)} fallbacks, "
                                 f"{record.breaker_trips} breaker trips"})
        tracker.log_dict(run.mlflow_run_id, record.model_dump(mode="json"), "execution.json")
        try:
            end_open_gate_runs(services, run.mlflow_run_id, status)
        finally:
            tracker.end_run(run.mlflow_run_id, status)
        shutil.rmtree(run.scratch, ignore_errors=True)
    return released


def fail_unhanded_runs(services: Services, flow_run_id: str | None,
                       exc: BaseException) -> list[str]:
    """End FAILED (KILLED when interrupted or terminated) the runs still RUNNING that this
    process opened for flow run ``flow_run_id`` but never got a handle to, and drop their
    scratch folders: a stop that lands as the task that opened the parent run ends leaves no
    :class:`RunHandle` to :func:`fail_run`. No lease is taken before the handle exists.

    Returns:
        The MLflow run ids ended (none without a flow run).
    """
    if flow_run_id is None:
        return []
    reason, status = failure_reason(exc)
    tracker = services.tracker
    ended = []
    # This process's only: an earlier attempt at the same flow run is the reaper's to end.
    for run in tracker.running({"qhybrid.prefect_flow_run_id": flow_run_id, **owner_tags()}):
        tracker.set_tags(run.run_id, {"qhybrid.failure": reason})
        tracker.end_run(run.run_id, status)
        for folder in Path(tempfile.gettempdir()).glob(f"{_scratch_prefix(run.run_id)}*"):
            shutil.rmtree(folder, ignore_errors=True)
        ended.append(run.run_id)
    return ended


def scratch(run: RunHandle) -> Path:
    """The run's scratch folder."""
    return Path(run.scratch)


def report_progress(run: RunHandle, services: Services, status: JobStatus, step: str) -> None:
    """Tell the job a run serves (if any) which step it is at, e.g. ``gate hardware``."""
    if run.options.job_id is None:
        return
    try:
        JobStore(services.store.engine).transition(run.options.job_id, status, sub_status=step)
    except JobNotFoundError:  # a run started by hand with a job id the store does not hold
        log.warning("run options name job %s, which the job store does not hold",
                    run.options.job_id)
