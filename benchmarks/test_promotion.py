"""The bundled promotion (specs/qaoa-maxcut.yaml) end to end, split into parts.

Group ``promotion``:

* ``test_promotion_quantum_execution``: every circuit execution of the promotion, through
  ``backends.open_executor`` with the plain ``attempt_once`` runner and a fresh in-memory state
  store per round (no Prefect, no MLflow, nothing re-attached from an earlier round): the ideal
  optimise-and-measure, the statistical repeats and the hardware-target measurement on the
  spec's backends.
* ``test_promotion_classical_computation``: classical baselines plus the analysis that turns
  the executions into gate verdicts and the promotion decision.
* ``test_promotion_full_flow``: ``flows.promote_experiment(spec, settings)`` under Prefect with
  MLflow and the records in a tmp folder, i.e. the whole.

Orchestration + tracking overhead = full - (quantum + classical); see docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from backends import BackendExecutor, ExecutionLog, memory_store, open_executor
from qhybrid.core import ExperimentSpec, GateResult, PromotionDecision, Settings
from qhybrid.experiments import (
    Execution,
    GraphInstance,
    Workload,
    baseline_verdict,
    build_workload,
    decide,
    degradation,
    derive_seed,
    hardware_verdict,
    ideal_verdict,
    load_instance,
    measure,
    optimise_and_measure,
    quality,
    run_baselines,
    statistical_verdict,
    total_variation_distance,
)

GROUP = "promotion"


@dataclass
class QuantumEvidence:
    ideal: Execution
    repeats: list[Execution]
    hardware: Execution
    log: ExecutionLog


@pytest.fixture(scope="module")
def problem(promotion_spec: ExperimentSpec, tmp_settings: Settings) -> tuple[GraphInstance, Workload]:
    instance = load_instance(tmp_settings.project_root / promotion_spec.dataset.path)
    assert isinstance(instance, GraphInstance)
    return instance, build_workload(promotion_spec.family, instance)


@pytest.fixture(scope="module")
def evidence_cache() -> dict[str, QuantumEvidence]:
    """The quantum benchmark leaves its evidence here for the classical one."""
    return {}


def quantum_part(spec: ExperimentSpec, settings: Settings, instance: GraphInstance,
                 workload: Workload) -> QuantumEvidence:
    """What the ideal, statistical and hardware gates execute, with the same seeds and backends
    as tasks._work: one executor per gate, all on one state store and execution log as in a
    run session. The store is a new in-memory one per call, so every submission executes."""
    # The hardware gate's mitigation arms are not reproduced here; the bundled spec has none.
    assert spec.gates.hardware.mitigation is None, "quantum_part runs no mitigation arms"
    seeds = spec.seeds
    store, log = memory_store(), ExecutionLog()

    def executor(name: str, field: str = "backend") -> BackendExecutor:
        return open_executor(name, settings, transpiler_seed=seeds.transpiler, store=store,
                             log=log, field=field)

    ideal = optimise_and_measure(workload, instance, executor(spec.gates.ideal.backend), spec,
                                 optimiser_seed=seeds.optimiser, simulator_seed=seeds.simulator)
    repeat_backend = executor(spec.gates.ideal.backend)
    repeats = [
        optimise_and_measure(workload, instance, repeat_backend, spec,
                             optimiser_seed=derive_seed(seeds.optimiser, k + 1),
                             simulator_seed=derive_seed(seeds.simulator, k + 1))
        for k in range(spec.gates.statistical.repeats)
    ]
    hardware_backend = executor(spec.gates.hardware.backend, field="gates.hardware.backend")
    with hardware_backend.submitter.mode(spec.gates.hardware.mode):
        hardware = measure(workload, instance, hardware_backend, ideal.parameters,
                           shots=spec.shots, seed=seeds.simulator)
    return QuantumEvidence(ideal=ideal, repeats=repeats, hardware=hardware, log=log)


def classical_part(spec: ExperimentSpec, instance: GraphInstance, workload: Workload,
                   evidence: QuantumEvidence) -> tuple[list[GateResult], PromotionDecision]:
    """Baselines, every gate verdict and the decision (against no champion), as the flow does."""
    gates = spec.gates
    objective, direction = workload.objective, workload.direction
    ideal = ideal_verdict(objective, evidence.ideal.metrics[objective], gates.statistical.threshold,
                          direction, gates.ideal.backend)
    statistical = statistical_verdict(objective, [e.metrics[objective] for e in evidence.repeats],
                                      gates.statistical, direction, gates.ideal.backend)
    loss = degradation(workload, evidence.ideal.metrics, evidence.hardware.metrics)
    distance = total_variation_distance(evidence.ideal.counts, evidence.hardware.counts)
    hardware = hardware_verdict(objective, evidence.hardware.metrics, loss, distance,
                                gates.hardware, gates.hardware.backend)
    baselines = run_baselines(instance, gates.baseline.solvers, spec.seeds.optimiser)
    baseline = baseline_verdict(quality(workload, evidence.hardware.metrics), baselines, gates.baseline)
    results = [ideal, statistical, hardware, baseline]
    decision = decide(results, evidence.hardware.metrics[objective], None, direction)
    return results, decision


def _seconds(evidence: QuantumEvidence) -> dict[str, float]:
    runs = [evidence.ideal, *evidence.repeats, evidence.hardware]
    return {"executor_seconds": sum(e.quantum_seconds for e in runs),
            "optimiser_and_analysis_seconds": sum(e.classical_seconds for e in runs)}


@pytest.mark.benchmark(group=GROUP)
def test_promotion_quantum_execution(benchmark, promotion_spec, tmp_settings, problem,
                                     evidence_cache):
    instance, workload = problem
    evidence = benchmark.pedantic(quantum_part, args=(promotion_spec, tmp_settings, instance, workload),
                                  rounds=1, iterations=1, warmup_rounds=0)
    evidence_cache["quantum"] = evidence
    record = evidence.log.record()
    benchmark.extra_info |= _seconds(evidence) | {
        "optimiser_batches": sum(e.batches for e in [evidence.ideal, *evidence.repeats]),
        "optimiser_points": sum(e.evaluations for e in [evidence.ideal, *evidence.repeats]),
        "provider_submissions": record.provider_submissions,
        "reattachments": record.reattachments,
    }
    # Executed for real: every distinct submission reached the simulator once, none failed.
    assert record.provider_submissions == record.distinct_jobs > 0
    assert not record.failures_by_class
    assert len(evidence.repeats) == promotion_spec.gates.statistical.repeats
    assert evidence.ideal.evaluations > 0
    assert sum(evidence.hardware.counts.values()) == promotion_spec.shots
    assert 0.0 < evidence.ideal.metrics["approximation_ratio"] <= 1.0


@pytest.mark.benchmark(group=GROUP)
def test_promotion_classical_computation(benchmark, promotion_spec, tmp_settings, problem,
                                         evidence_cache):
    instance, workload = problem
    evidence = evidence_cache.get("quantum") or quantum_part(promotion_spec, tmp_settings,
                                                             instance, workload)
    gates, decision = benchmark.pedantic(classical_part,
                                         args=(promotion_spec, instance, workload, evidence),
                                         rounds=5, iterations=1, warmup_rounds=0)
    assert [g.gate for g in gates] == ["ideal", "statistical", "hardware", "baseline"]
    assert decision.promote == all(g.passed for g in gates)


@pytest.mark.benchmark(group=GROUP)
def test_promotion_full_flow(benchmark, prefect_harness, promotion_spec, tmp_settings):
    from flows import promote_experiment

    report = benchmark.pedantic(promote_experiment, args=(promotion_spec, tmp_settings),
                                rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info |= {"promoted": bool(report.decision and report.decision.promote),
                             "gate_seconds": {g.gate: round(g.seconds, 3) for g in report.gates}}
    if report.execution is not None:
        benchmark.extra_info |= {"provider_submissions": report.execution.provider_submissions,
                                 "reattachments": report.execution.reattachments}
        assert report.execution.provider_submissions > 0
    assert [g.gate for g in report.gates] == ["ideal", "statistical", "hardware", "baseline"]
    assert report.decision is not None
    assert report.mlflow_run_id
    assert tmp_settings.promotion_log_path.exists()
    assert tmp_settings.manifests_path.joinpath(f"{report.mlflow_run_id}.json").exists()
