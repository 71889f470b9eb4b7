"""Gate 3's work: the hardware target, its fallbacks, and the mitigation arms."""

from __future__ import annotations

import time

import numpy as np

from backends import BackendExecutor, Pub, Submission
from qhybrid.core import (
    BackendRejectedError,
    BreakerOpenError,
    DowngradeRecord,
    GateResult,
    HardwareGateSpec,
    MitigationRecord,
    TransportError,
)
from qhybrid.experiments import (
    Execution,
    degradation,
    derive_seed,
    hardware_verdict,
    measure,
    mitigation_improvement,
    total_variation_distance,
)
from tasks._work import RunSession, executor, gate_run, record_execution

# Failures that mean "this backend cannot take work now": a fallback may take over.
_FALLBACK_ON = (TransportError, BackendRejectedError, BreakerOpenError)


def hardware_gate(session: RunSession, ideal: Execution) -> tuple[GateResult, Execution]:
    """Gate 3: the optimised circuit on the hardware target, compared with the ideal result.

    If the target cannot take work (after its retries, or with its breaker open), the policy's
    fallbacks are tried in order; a fallback's result is recorded as a downgrade and fails
    the gate. With a mitigation policy, mitigated and unmitigated arms run on the target.
    """
    spec = session.spec
    policy = spec.gates.hardware
    start = time.perf_counter()
    targets = (policy.backend, *policy.fallback)
    for index, name in enumerate(targets):
        try:
            execution, mitigation = _on_hardware(session, ideal, name, target=index == 0)
            break
        except _FALLBACK_ON as exc:
            if index + 1 == len(targets):
                raise
            exc.recovery = f"fallback to {targets[index + 1]}"
            session.log.fallbacks.append(DowngradeRecord(
                role="hardware", requested=policy.backend, used=targets[index + 1],
                reason=exc.to_dict(), dropped=_dropped(policy)))
    downgraded = name != policy.backend
    loss = degradation(session.workload, ideal.metrics, execution.metrics)
    distance = total_variation_distance(ideal.counts, execution.counts)
    result = hardware_verdict(
        session.workload.objective, execution.metrics, loss, distance, policy, name,
        downgraded=downgraded, improvement_low=mitigation.improvement_low if mitigation else None,
    )
    metrics = dict(result.metrics)
    if mitigation is not None:
        session.log.mitigation = mitigation
        metrics |= {f"mitigation_{k}": float(getattr(mitigation, k)) for k in (
            "ideal_value", "unmitigated_value", "mitigated_value", "improvement",
            "improvement_low", "improvement_high", "mitigated_qpu_seconds")}
    result = result.model_copy(update={
        "seconds": time.perf_counter() - start, "metrics": metrics,
        "downgraded_from": policy.backend if downgraded else None})
    run_id = gate_run(session, "hardware", result,
                      {"qhybrid.downgraded_from": policy.backend} if downgraded else {})
    record_execution(session, run_id, execution)
    if mitigation is not None:
        session.tracker.log_dict(run_id, mitigation.model_dump(mode="json"), "mitigation.json")
    return result.model_copy(update={"mlflow_run_id": run_id}), execution


def _dropped(policy: HardwareGateSpec) -> tuple[str, ...]:
    dropped = [f"mitigation ({', '.join(policy.mitigation.techniques())})"] if policy.mitigation else []
    return tuple(dropped + ([f"mode={policy.mode}"] if policy.mode != "single" else []))


def _on_hardware(
    session: RunSession, ideal: Execution, name: str, *, target: bool
) -> tuple[Execution, MitigationRecord | None]:
    spec = session.spec
    policy = spec.gates.hardware
    backend = executor(session, name, field="gates.hardware.backend" if target
                       else "gates.hardware.fallback")
    session.backends["hardware"] = backend.describe()
    mitigation = None
    with backend.submitter.mode(policy.mode if target else "single"):
        execution = measure(session.workload, session.instance, backend, ideal.parameters,
                            shots=spec.shots, seed=spec.seeds.simulator)
        if target and policy.mitigation is not None:
            mitigation = mitigation_arms(session, backend, ideal.parameters)
    return execution, mitigation


def mitigation_arms(
    session: RunSession, backend: BackendExecutor, parameters: np.ndarray
) -> MitigationRecord:
    """Unmitigated and mitigated estimates of the objective's observable, seeded repeats each,
    on the same circuit and parameters; the improvement towards the exact value, with an
    interval."""
    spec = session.spec
    policy = spec.gates.hardware.mitigation
    assert policy is not None
    workload = session.workload
    points = workload.circuit_points(parameters)
    exact = float(executor(session, "aer").estimate(
        workload.ansatz, workload.observable, points, seed=spec.seeds.simulator)[0])
    seeds = [derive_seed(spec.seeds.simulator, 1000 + k) for k in range(policy.repeats)]
    arms: dict[str, tuple[list[float], float]] = {}
    shots: dict[str, int | None] = {}
    applied: dict[str, object] = {}
    for arm, mitigation in (("unmitigated", None), ("mitigated", policy)):
        start = time.perf_counter()
        values, reported = [], []
        for seed in seeds:
            evs, _stds, metadata = backend.estimate_with_stds(
                workload.ansatz, workload.observable, points, seed=seed, mitigation=mitigation)
            values.append(float(evs[0]))
            reported.append(metadata.get("shots"))
            applied = metadata.get("mitigation") or applied  # type: ignore[assignment]
        arms[arm] = (values, time.perf_counter() - start)
        shots[arm] = sum(reported) if all(isinstance(n, int) for n in reported) else None  # type: ignore[arg-type]
    qpu = {arm: policy.repeats * backend.submitter.backend.estimate_qpu_seconds(Submission(
        "estimate", (Pub(workload.ansatz, points, workload.observable),), seed=0,
        precision=backend.precision, mitigation=m)) for arm, m in (("unmitigated", None),
                                                                    ("mitigated", policy))}
    confidence = spec.gates.statistical.confidence
    mean, low, high = mitigation_improvement(exact, arms["unmitigated"][0], arms["mitigated"][0],
                                             confidence)
    unmitigated, mitigated = (np.asarray(arms[a][0]) for a in ("unmitigated", "mitigated"))
    return MitigationRecord(
        techniques=policy.techniques(), applied_options=applied, ideal_value=exact,
        unmitigated_value=float(unmitigated.mean()), unmitigated_std=float(unmitigated.std(ddof=1)),
        mitigated_value=float(mitigated.mean()), mitigated_std=float(mitigated.std(ddof=1)),
        improvement=mean, improvement_low=low, improvement_high=high, confidence=confidence,
        repeats=policy.repeats, unmitigated_values=tuple(arms["unmitigated"][0]),
        mitigated_values=tuple(arms["mitigated"][0]),
        unmitigated_seconds=arms["unmitigated"][1], mitigated_seconds=arms["mitigated"][1],
        unmitigated_qpu_seconds=qpu["unmitigated"], mitigated_qpu_seconds=qpu["mitigated"],
        unmitigated_shots=shots["unmitigated"], mitigated_shots=shots["mitigated"],
    )
