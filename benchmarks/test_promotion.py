"""The bundled promotion (specs/qaoa-maxcut.yaml), three ways, on the same set-up.

Group ``promotion``. Each benchmark runs the promotion of ``specs/qaoa-maxcut.yaml`` with one
untimed warm-up round, and before every round (warm-up included) the same untimed ``setup``
(:func:`fresh_store`): a new records folder (MLflow SQLite DB and artifacts, manifests,
promotion log, SQLite state store), ``QHYBRID_*`` pointing at it, and both databases created.
All three run in the same session, with the Prefect test server up:

* ``test_promotion_domain_only``: what the gates compute, and nothing else. The executions
  (ideal ``optimise_and_measure``, the statistical repeats with ``derive_seed``, the hardware
  ``measure`` in the spec's mode), the baselines, every verdict and ``decide``, with the gates'
  seeds and backends, through ``Services.open(settings)`` executors (``attempt_once`` runner,
  the round's SQLite state store). No MLflow, no records, no DVC pins.
* ``test_promotion_use_cases``: the whole promotion through ``qhybrid_usecases``, in the
  flow's order (``open_run`` ... ``finish_run``, ``fail_run`` on an error), with
  ``Services.open(settings)``: everything ``flows.promote_experiment`` does except Prefect.
* ``test_promotion_flow``: ``flows.promote_experiment(spec)`` under the session's Prefect
  harness; the flow reads its settings from ``QHYBRID_*``.

Prefect overhead = flow - use_cases; tracking and records overhead = use_cases - domain_only.
All three must compute the same gates and decision with the same number of provider
submissions. ``extra_info["rounds"]`` has one entry per round, warm-up first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from backends import BackendExecutor
from qhybrid.core import (
    ExecutionRecord,
    ExperimentSpec,
    GateResult,
    PromotionDecision,
    RunOptions,
    RunReport,
    Settings,
    TrialResult,
)
from qhybrid.experiments import (
    baseline_verdict,
    build_workload,
    decide,
    derive_seed,
    hardware_verdict,
    ideal_verdict,
    load_instance,
    measure,
    optimise_and_measure,
    run_baselines,
    statistical_verdict,
    total_variation_distance,
)
from qhybrid_usecases import (
    RunHandle,
    Services,
    apply_promotion,
    baseline_gate,
    decide_promotion,
    fail_run,
    finish_run,
    hardware_gate,
    ideal_gate,
    open_run,
    record_evidence,
    statistical_gate,
)
from registry import Tracker

GROUP = "promotion"
_T = TypeVar("_T")
ROUNDS = 5
WARMUP_ROUNDS = 1
GATES = ("ideal", "statistical", "hardware", "baseline")


@dataclass(frozen=True)
class Outcome:
    """What a round decided, compared across the three benchmarks."""

    gates: tuple[tuple[str, bool], ...]
    promote: bool
    aliases: tuple[str, ...]
    score: float | None
    provider_submissions: int
    distinct_jobs: int


@dataclass(frozen=True)
class DomainRound:
    ideal: TrialResult
    repeats: tuple[TrialResult, ...]
    hardware: TrialResult
    gates: tuple[GateResult, ...]
    decision: PromotionDecision
    execution: ExecutionRecord


@dataclass(frozen=True)
class UseCaseRound:
    report: RunReport
    ideal: TrialResult
    hardware: TrialResult


# Outcome of each benchmark that has run in this session; each compares with the others.
_OUTCOMES: dict[str, Outcome] = {}


def fresh_store(fresh_records: Callable[[], Settings], spec: ExperimentSpec) -> Settings:
    """The per-round set-up shared by the three benchmarks (untimed): ``QHYBRID_*`` pointing at
    a new records folder, its MLflow SQLite DB created (schema, experiment, tracking and
    registry stores opened) and its SQLite state store created."""
    settings = fresh_records()
    services = Services.open(settings)
    assert services.tracker.experiment_id
    assert services.tracker.champion_score(spec.name) is None  # registry store open and empty
    assert services.store.count_local_jobs() == 0
    return settings


def domain_only(spec: ExperimentSpec) -> DomainRound:
    """The gates' executions, baselines, verdicts and decision, as ``qhybrid_usecases`` computes
    them (same seeds, backends, executor fields and execution mode), without MLflow, records
    or DVC pins. The champion is None, as in a fresh registry."""
    # The hardware gate's mitigation arms and fallbacks are not reproduced here; the bundled
    # spec has no mitigation, and the fake target does not fail.
    assert spec.gates.hardware.mitigation is None, "domain_only runs no mitigation arms"
    services = Services.open(Settings())
    seeds, gates = spec.seeds, spec.gates
    workload = build_workload(
        spec.family, load_instance(services.settings.project_root / spec.dataset.path))
    objective, direction = workload.objective, workload.direction

    def trial(executor: BackendExecutor, optimiser_seed: int, simulator_seed: int) -> TrialResult:
        return optimise_and_measure(
            workload, executor, optimiser=spec.optimiser, fixed=spec.parameters, shots=spec.shots,
            optimiser_seed=optimiser_seed, simulator_seed=simulator_seed)

    def executor(name: str, field: str) -> BackendExecutor:
        return services.executor(name, transpiler_seed=seeds.transpiler, flow_run_id=None,
                                 field=field)

    ideal = trial(executor(gates.ideal.backend, "gates.ideal.backend"), seeds.optimiser,
                  seeds.simulator)
    ideal_result = ideal_verdict(objective, ideal.metrics[objective], gates.statistical.threshold,
                                 direction, gates.ideal.backend)

    repeat_executor = executor(gates.ideal.backend, "gates.ideal.backend")
    repeats = tuple(trial(repeat_executor, derive_seed(seeds.optimiser, k + 1),
                          derive_seed(seeds.simulator, k + 1))
                    for k in range(gates.statistical.repeats))
    statistical_result = statistical_verdict(objective, [t.metrics[objective] for t in repeats],
                                             gates.statistical, direction, gates.ideal.backend)

    hardware_executor = executor(gates.hardware.backend, "gates.hardware.backend")
    with hardware_executor.submitter.mode(gates.hardware.mode):
        hardware = measure(workload, hardware_executor, ideal.parameters, shots=spec.shots,
                           seed=seeds.simulator)
    hardware_result = hardware_verdict(
        objective, hardware.metrics, workload.family.degradation(ideal.metrics, hardware.metrics),
        total_variation_distance(ideal.counts, hardware.counts), gates.hardware,
        gates.hardware.backend)

    baselines = run_baselines(workload, gates.baseline.solvers, seeds.optimiser)
    baseline_result = baseline_verdict(workload.family.quality(hardware.metrics), baselines,
                                       gates.baseline)

    results = (ideal_result, statistical_result, hardware_result, baseline_result)
    decision = decide(results, hardware.metrics[objective], None, direction)
    return DomainRound(ideal=ideal, repeats=repeats, hardware=hardware, gates=results,
                       decision=decision, execution=services.log.record())


def use_cases(spec: ExperimentSpec) -> UseCaseRound:
    """The promotion through the application layer, step for step as
    ``flows.promote_experiment`` runs it, with settings read from ``QHYBRID_*`` and a single
    attempt per submission (no Prefect task runs)."""
    services = Services.open(Settings())
    run: RunHandle = open_run(spec, RunOptions(), services, kind="promotion", flow_run_id=None)
    try:
        ideal = ideal_gate(run, services)
        statistical = statistical_gate(run, services)
        hardware = hardware_gate(run, services, ideal.trial)
        baseline = baseline_gate(run, services, hardware.trial)
        steps = [ideal, statistical, hardware, baseline]
        decision = decide_promotion(run, services, [s.gate for s in steps if s.gate],
                                    hardware.trial)
        recorded = record_evidence(run, services, ideal.trial, steps, decision)
        version = apply_promotion(run, services, decision)
        report = finish_run(run, services, recorded, ideal.trial, steps, decision, version)
    except BaseException as exc:
        fail_run(run, services, exc)
        raise
    assert ideal.trial is not None and hardware.trial is not None
    return UseCaseRound(report=report, ideal=ideal.trial, hardware=hardware.trial)


def promotion_flow(spec: ExperimentSpec) -> RunReport:
    from flows import promote_experiment

    return promote_experiment(spec)


def check_outcome(name: str, outcome: Outcome, spec: ExperimentSpec) -> None:
    """What any of the three must have computed, and the same as the others."""
    assert tuple(g for g, _ in outcome.gates) == GATES
    assert outcome.promote == all(passed for _, passed in outcome.gates)
    assert outcome.aliases == (("challenger", "champion") if outcome.promote else ())
    # Executed for real, on the round's new state store: one provider job per distinct key.
    assert outcome.provider_submissions == outcome.distinct_jobs > 0
    for other, seen in _OUTCOMES.items():
        assert outcome == seen, f"{name} computed {outcome}, {other} computed {seen}"
    _OUTCOMES[name] = outcome


def check_execution(execution: ExecutionRecord | None) -> ExecutionRecord:
    assert execution is not None
    assert execution.reattachments == 0 and not execution.failures_by_class
    assert not execution.fallbacks and execution.breaker_trips == 0
    return execution


def check_records(settings: Settings, report: RunReport) -> None:
    """The records a promotion leaves in its round's folder."""
    assert report.mlflow_run_id
    assert settings.promotion_log_path.exists()
    assert settings.manifests_path.joinpath(f"{report.mlflow_run_id}.json").exists()
    assert (report.registered_version is not None) == bool(report.decision
                                                           and report.decision.promote)


def report_outcome(report: RunReport) -> Outcome:
    assert report.decision is not None and report.execution is not None
    return Outcome(
        gates=tuple((g.gate, g.passed) for g in report.gates),
        promote=report.decision.promote, aliases=report.decision.aliases,
        score=report.decision.score,
        provider_submissions=report.execution.provider_submissions,
        distinct_jobs=report.execution.distinct_jobs)


def rounds_info(rounds: list[dict[str, Any]], timed: bool) -> list[dict[str, Any]]:
    """Per-round extra_info; the first round is the untimed warm-up when timing."""
    return [{"warmup": timed and i < WARMUP_ROUNDS, **r} for i, r in enumerate(rounds)]


def _seconds(value: float) -> float:
    return round(value, 4)


def timed_rounds(benchmark, work: Callable[[ExperimentSpec], _T], spec: ExperimentSpec,
                 fresh_records: Callable[[], Settings], timed: bool) -> list[tuple[Settings, _T]]:
    """Run ``work(spec)`` in the benchmark's rounds, each after :func:`fresh_store` (untimed);
    returns each round's settings and result, warm-up first."""
    done: list[tuple[Settings, _T]] = []
    settings: list[Settings] = []

    def target(spec: ExperimentSpec) -> _T:
        done.append((settings[-1], work(spec)))
        return done[-1][1]

    def setup():
        settings.append(fresh_store(fresh_records, spec))
        return (spec,), {}

    benchmark.pedantic(target, setup=setup, rounds=ROUNDS, iterations=1,
                       warmup_rounds=WARMUP_ROUNDS)
    assert len(done) == (ROUNDS + WARMUP_ROUNDS if timed else 1)
    return done


@pytest.mark.benchmark(group=GROUP)
def test_promotion_domain_only(benchmark, prefect_harness, promotion_spec, fresh_records, timed):
    spec = promotion_spec
    done: list[DomainRound] = []

    def target(spec: ExperimentSpec) -> DomainRound:
        done.append(domain_only(spec))
        return done[-1]

    def setup():
        fresh_store(fresh_records, spec)
        return (spec,), {}

    benchmark.pedantic(target, setup=setup, rounds=ROUNDS, iterations=1,
                       warmup_rounds=WARMUP_ROUNDS)

    assert len(done) == (ROUNDS + WARMUP_ROUNDS if timed else 1)
    rounds = []
    for r in done:
        execution = check_execution(r.execution)
        assert len(r.repeats) == spec.gates.statistical.repeats
        assert r.ideal.evaluations > 0 and r.ideal.backend == spec.gates.ideal.backend
        assert r.hardware.backend == spec.gates.hardware.backend
        assert sum(r.hardware.counts.values()) == spec.shots
        assert 0.0 < r.ideal.metrics["approximation_ratio"] <= 1.0
        check_outcome("domain_only", Outcome(
            gates=tuple((g.gate, g.passed) for g in r.gates), promote=r.decision.promote,
            aliases=r.decision.aliases, score=r.decision.score,
            provider_submissions=execution.provider_submissions,
            distinct_jobs=execution.distinct_jobs), spec)
        trials = (r.ideal, *r.repeats, r.hardware)
        rounds.append({
            "executor_seconds": _seconds(sum(t.quantum_seconds for t in trials)),
            "executor_seconds_ideal_hardware": _seconds(r.ideal.quantum_seconds
                                                        + r.hardware.quantum_seconds),
            "optimiser_and_analysis_seconds": _seconds(sum(t.classical_seconds for t in trials)),
            "optimiser_batches": sum(t.batches for t in (r.ideal, *r.repeats)),
            "optimiser_points": sum(t.evaluations for t in (r.ideal, *r.repeats)),
            "provider_submissions": execution.provider_submissions,
        })
    benchmark.extra_info |= {"promoted": done[-1].decision.promote,
                             "rounds": rounds_info(rounds, timed)}


@pytest.mark.benchmark(group=GROUP)
def test_promotion_use_cases(benchmark, prefect_harness, promotion_spec, fresh_records, timed):
    spec = promotion_spec
    done = timed_rounds(benchmark, use_cases, spec, fresh_records, timed)
    rounds = []
    for round_settings, r in done:
        report = r.report
        execution = check_execution(report.execution)
        check_records(round_settings, report)
        assert report.prefect_flow_run_id is None
        check_outcome("use_cases", report_outcome(report), spec)
        rounds.append({
            "executor_seconds_ideal_hardware": _seconds(r.ideal.quantum_seconds
                                                        + r.hardware.quantum_seconds),
            "gate_seconds": {g.gate: _seconds(g.seconds) for g in report.gates},
            "provider_submissions": execution.provider_submissions,
        })
    benchmark.extra_info |= {"promoted": bool(done[-1][1].report.decision.promote),
                             "rounds": rounds_info(rounds, timed)}


@pytest.mark.benchmark(group=GROUP)
def test_promotion_flow(benchmark, prefect_harness, promotion_spec, fresh_records, timed):
    spec = promotion_spec
    done = timed_rounds(benchmark, promotion_flow, spec, fresh_records, timed)
    rounds = []
    for round_settings, report in done:
        assert isinstance(report, RunReport), report
        execution = check_execution(report.execution)
        check_records(round_settings, report)
        assert report.prefect_flow_run_id
        check_outcome("flow", report_outcome(report), spec)
        # The executor seconds of the ideal and hardware TrialResults, as the flow logged them
        # on their gate runs (read after the rounds, untimed).
        tracker = Tracker.for_settings(round_settings)
        quantum = {g.gate: tracker.get_run(g.mlflow_run_id).metrics["quantum_seconds"]
                   for g in report.gates if g.gate in ("ideal", "hardware") and g.mlflow_run_id}
        assert set(quantum) == {"ideal", "hardware"}
        rounds.append({
            "executor_seconds_ideal_hardware": _seconds(sum(quantum.values())),
            "gate_seconds": {g.gate: _seconds(g.seconds) for g in report.gates},
            "provider_submissions": execution.provider_submissions,
        })
    benchmark.extra_info |= {"promoted": bool(done[-1][1].decision.promote),
                             "rounds": rounds_info(rounds, timed)}
