"""Prefect tasks: thin wrappers that add artifacts and names to the work functions.

Gates do not retry as a whole: their unit of retry is each provider submission (the
``submit-job`` task in :mod:`tasks.submission`), retried only for transient errors and
re-attached through the idempotency ledger.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from qhybrid.core import (
    BaselineResult,
    ExperimentSpec,
    GateResult,
    PromotionDecision,
    RunReport,
    Settings,
)
from qhybrid.experiments import Execution, decide
from tasks import _hardware, _records, _work
from tasks._markdown import decision_markdown, gate_markdown
from tasks._secrets import resolve_ibm_token
from tasks.submission import prefect_runner


def _artifact_key(session: _work.RunSession, what: str) -> str:
    return f"{session.spec.name}-{what}".lower()


def _publish(session: _work.RunSession, result: GateResult) -> None:
    create_markdown_artifact(
        key=_artifact_key(session, f"gate-{result.gate}"),
        markdown=gate_markdown(result, f"{session.spec.name} {session.spec.version}"),
        description=f"gate {result.gate}: {'pass' if result.passed else 'fail'}",
    )


@task(name="open-records", cache_policy=NO_CACHE)
def open_records(
    spec: ExperimentSpec, settings: Settings, kind: str, allow_unpinned_data: bool,
    flow_run_id: str | None,
) -> _work.RunSession:
    """Check the inputs against dvc.lock and open the MLflow parent run."""
    settings = resolve_ibm_token(settings)
    session = _records.open_session(spec, settings, kind=kind,
                                    allow_unpinned_data=allow_unpinned_data, flow_run_id=flow_run_id)
    session.runner = prefect_runner(settings)
    return session


@task(name="run-on-backend", cache_policy=NO_CACHE)
def run_on_backend(session: _work.RunSession, backend: str) -> Execution:
    """One optimisation and sampling on one backend, without gates."""
    execution, _seconds = _work.run_execution_on(session, backend, "run")
    return execution


@task(name="ideal-gate", cache_policy=NO_CACHE)
def ideal_gate(session: _work.RunSession) -> tuple[GateResult, Execution]:
    """Gate 1: optimise on the ideal simulator."""
    result, execution = _work.ideal_gate(session)
    _publish(session, result)
    return result, execution


@task(name="statistical-gate", cache_policy=NO_CACHE)
def statistical_gate(session: _work.RunSession) -> GateResult:
    """Gate 2: independent repeats and a confidence interval."""
    result = _work.statistical_gate(session)
    _publish(session, result)
    return result


@task(name="hardware-gate", cache_policy=NO_CACHE)
def hardware_gate(session: _work.RunSession, ideal: Execution) -> tuple[GateResult, Execution]:
    """Gate 3: the optimised circuit on the hardware target."""
    result, execution = _hardware.hardware_gate(session, ideal)
    _publish(session, result)
    return result, execution


@task(name="baseline-gate", cache_policy=NO_CACHE)
def baseline_gate(
    session: _work.RunSession, hardware: Execution
) -> tuple[GateResult, list[BaselineResult]]:
    """Gate 4: classical baselines side by side."""
    result, baselines = _work.baseline_gate(session, hardware)
    _publish(session, result)
    return result, baselines


@task(name="decide-promotion", cache_policy=NO_CACHE)
def decide_promotion(
    session: _work.RunSession, gates: list[GateResult], hardware: Execution,
    baselines: list[BaselineResult],
) -> PromotionDecision:
    """The pure decision, fed with the current champion's score."""
    champion = session.tracker.champion_score(session.spec.name)
    score = hardware.metrics[session.workload.objective]
    decision = decide(gates, score, champion, session.workload.direction)
    create_markdown_artifact(
        key=_artifact_key(session, "decision"),
        markdown=decision_markdown(decision, baselines, f"{session.spec.name} {session.spec.version}"),
        description="promotion decision",
    )
    return decision


@task(name="close-records", cache_policy=NO_CACHE)
def close_records(
    session: _work.RunSession, kind: str, backend: str, execution: Execution,
    gates: list[GateResult], baselines: list[BaselineResult],
    decision: PromotionDecision | None, flow_run_id: str | None,
) -> RunReport:
    """Manifest, artifacts, registry and promotion log; the parent run ends FINISHED."""
    return _records.close_session(
        session, kind=kind, backend=backend, execution=execution, gates=gates,
        baselines=baselines, decision=decision, flow_run_id=flow_run_id,
    )
