"""Prefect tasks: one-line wrappers around the use cases, plus what only Prefect shows (the
markdown artifacts of each gate and decision).

Gates do not retry as a whole: their unit of retry is each provider submission (the
``submit-job`` task in :mod:`tasks.submission`), retried only for transient errors and
re-attached through the idempotency ledger.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from typing import TypeVar

from prefect import State, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import TerminationSignal
from prefect.logging import get_run_logger
from prefect.states import Cancelled

import qhybrid_usecases as usecases
from qhybrid.core import (
    ExperimentSpec,
    GateResult,
    LeaseRelease,
    PromotionDecision,
    RunCancelledError,
    RunOptions,
    RunReport,
    TrialResult,
)
from qhybrid_usecases import RecordedRun, RunHandle, Services, StepOutcome, TrialOutcome
from tasks import artifacts
from tasks._markdown import decision_markdown, gate_markdown
from tasks.records import execution_rows
from tasks.stops import remembering_stops, stopped

_Outcome = TypeVar("_Outcome", bound=StepOutcome)
_T = TypeVar("_T")

_ARTIFACTS_WAIT_SECONDS = 10.0
"""How long a failing flow waits for its artifacts (after its records are ended)."""


def _publish(run: RunHandle, outcome: _Outcome) -> _Outcome:
    if outcome.gate is not None:
        artifacts.publish(
            create_markdown_artifact, key=f"{run.spec.name}-gate-{outcome.gate.gate}".lower(),
            markdown=gate_markdown(outcome.gate, f"{run.spec.name} {run.spec.version}"),
            description=f"gate {outcome.gate.gate}: {'pass' if outcome.gate.passed else 'fail'}",
        )
    return outcome


@task(name="open-records", cache_policy=NO_CACHE)
def open_records(spec: ExperimentSpec, options: RunOptions, kind: usecases.RunKind,
                 flow_run_id: str | None, services: Services) -> RunHandle:
    """Check the inputs against dvc.lock and open the MLflow parent run."""
    return usecases.open_run(spec, options, services, kind=kind, flow_run_id=flow_run_id)


@task(name="run-on-backend", cache_policy=NO_CACHE)
def run_on_backend(run: RunHandle, services: Services) -> TrialOutcome:
    """One optimisation and sampling on one backend, without gates."""
    return usecases.run_on_backend(run, services)


@task(name="ideal-gate", cache_policy=NO_CACHE)
def ideal_gate(run: RunHandle, services: Services) -> TrialOutcome:
    """Gate 1: optimise on the ideal simulator."""
    return _publish(run, usecases.ideal_gate(run, services))


@task(name="statistical-gate", cache_policy=NO_CACHE)
def statistical_gate(run: RunHandle, services: Services) -> StepOutcome:
    """Gate 2: independent repeats and a confidence interval."""
    return _publish(run, usecases.statistical_gate(run, services))


@task(name="hardware-gate", cache_policy=NO_CACHE)
def hardware_gate(run: RunHandle, services: Services, ideal: TrialResult) -> TrialOutcome:
    """Gate 3: the optimised circuit on the hardware target."""
    return _publish(run, usecases.hardware_gate(run, services, ideal))


@task(name="baseline-gate", cache_policy=NO_CACHE)
def baseline_gate(run: RunHandle, services: Services, hardware: TrialResult) -> StepOutcome:
    """Gate 4: classical baselines side by side."""
    return _publish(run, usecases.baseline_gate(run, services, hardware))


@task(name="decide-promotion", cache_policy=NO_CACHE)
def decide_promotion(run: RunHandle, services: Services, gates: Sequence[GateResult | None],
                     hardware: TrialResult) -> PromotionDecision:
    """The pure decision on the gates' verdicts (a step without one is skipped), fed with the
    current champion's score."""
    return usecases.decide_promotion(run, services, [g for g in gates if g is not None],
                                     hardware)


@task(name="record-evidence", cache_policy=NO_CACHE)
def record_evidence(run: RunHandle, services: Services, trial: TrialResult,
                    steps: Sequence[StepOutcome],
                    decision: PromotionDecision | None = None) -> RecordedRun:
    """Manifest, circuits, plots, metrics and verdict tags."""
    return usecases.record_evidence(run, services, trial, steps, decision)


@task(name="apply-promotion", cache_policy=NO_CACHE)
def apply_promotion(run: RunHandle, services: Services, decision: PromotionDecision) -> str | None:
    """Register the version, move aliases, append to the promotion log; first, the gates'
    artifacts are waited for: none is applied whose verdicts Prefect could not show."""
    artifacts.settle()
    return usecases.apply_promotion(run, services, decision)


@task(name="finish-run", cache_policy=NO_CACHE)
def finish_run(run: RunHandle, services: Services, recorded: RecordedRun, trial: TrialResult,
               steps: Sequence[StepOutcome], decision: PromotionDecision | None = None,
               registered_version: str | None = None) -> RunReport:
    """The parent run ends FINISHED; the report. Publishes the decision (with the registered
    version and a link to the MLflow run) and the execution summary as artifacts, and waits
    for every artifact of the run (:func:`tasks.artifacts.settle`)."""
    in_run = FlowRunContext.get() is not None or TaskRunContext.get() is not None
    title = f"{run.spec.name} {run.spec.version}"
    url = services.tracker.run_page(run.mlflow_run_id,
                                    local_port=services.settings.mlflow_port)
    if decision is not None and in_run:  # `.fn()` outside a run: no run to attach it to
        baselines = [b for step in steps for b in step.baselines]
        artifacts.publish(
            create_markdown_artifact, key=f"{run.spec.name}-decision".lower(),
            markdown=decision_markdown(decision, baselines, title, registered_version, url),
            description=f"promotion decision: {'promoted' if decision.promote else 'refused'}",
        )
    report = usecases.finish_run(run, services, recorded, trial, steps, decision,
                                 registered_version)
    if report.execution is not None and in_run:
        artifacts.publish(
            create_table_artifact, key=f"{run.spec.name}-execution".lower(),
            table=execution_rows(report.execution),
            description=f"{title}: execution summary ({run.kind}, MLflow run {url})")
    artifacts.settle()  # the gates' artifacts too: none is left behind when the flow ends
    return report


def fail_records(run: RunHandle, services: Services, exc: BaseException) -> list[LeaseRelease]:
    """Release the run's leases and end its MLflow run FAILED or KILLED.

    A plain function, not a task: it runs while the flow is failing, timing out or being
    cancelled, when new task runs may not start.
    """
    released = usecases.fail_run(run, services, exc)
    logger = _logger()
    for lease in released:
        logger.log(logging.INFO if lease.released else logging.WARNING,
                   "lease %s %s on %s: %s", lease.kind, lease.provider_id, lease.backend,
                   "released" if lease.released else f"NOT released ({lease.detail})")
    return released


def guard_records(services: Services, opening: Callable[[], RunHandle],
                  body: Callable[[RunHandle], _T], *, flow_run_id: str | None) -> _T | State:
    """``body(run)``, the flow's work on the run ``opening()`` opens (:func:`open_records`);
    if either does not finish, the records are ended first (:func:`fail_records`: leases
    released, nothing left running or billed).

    A stop can land after ``open_records`` opened the MLflow run but before its task run
    handed the run back (while Prefect ends the task run): then the runs still RUNNING that
    carry ``flow_run_id`` are ended instead (:func:`usecases.fail_unhanded_runs`).

    Returns:
        What ``body`` returns, or a Cancelled state when someone cancelled the flow run.

    Raises:
        BaseException: What ``opening`` or ``body`` raised (bad input, a failure, a timeout,
            SIGTERM); a Ctrl-C or a SIGTERM that Prefect replaced or dropped is raised again
            as KeyboardInterrupt or TerminationSignal, so the flow run ends crashed
            (:mod:`tasks.stops`).
    """
    run: RunHandle | None = None
    try:
        with remembering_stops():
            run = opening()
            return body(run)
    except RunCancelledError as exc:
        _fail(run, services, exc, flow_run_id)
        return Cancelled(message=exc.message)
    except BaseException as exc:
        _fail(run, services, exc, flow_run_id)
        if ((usecases.interrupted(exc) or stopped(signal.SIGINT))
                and not isinstance(exc, KeyboardInterrupt)):
            raise KeyboardInterrupt from exc
        if (usecases.terminated(exc) or stopped()) and not isinstance(exc, TerminationSignal):
            raise TerminationSignal(signal=signal.SIGTERM) from exc
        raise


def _fail(run: RunHandle | None, services: Services, exc: BaseException,
          flow_run_id: str | None) -> None:
    try:
        _end_records(run, services, exc, flow_run_id)
    finally:
        # The finished gates' artifacts are published all the same, after the records are
        # ended (leases first), and for a bounded time: the Prefect API may be why the flow
        # is failing.
        try:
            artifacts.settle(timeout=_ARTIFACTS_WAIT_SECONDS)
        except Exception as error:  # noqa: BLE001 - the flow's own error is the one to raise
            _logger().warning("could not publish the run's Prefect artifacts: %r", error)


def _end_records(run: RunHandle | None, services: Services, exc: BaseException,
                 flow_run_id: str | None) -> None:
    if run is not None:
        fail_records(run, services, exc)
        return
    try:
        ended = usecases.fail_unhanded_runs(services, flow_run_id, exc)
    except Exception as error:  # noqa: BLE001 - the flow's own error is the one to raise
        _logger().warning("could not end the MLflow runs of flow run %s: %r", flow_run_id, error)
        return
    for run_id in ended:
        _logger().warning("MLflow run %s was opened but not handed to the flow: ended", run_id)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except RuntimeError:  # prefect's MissingContextError: called outside a flow run
        return logging.getLogger("qhybrid.run")
