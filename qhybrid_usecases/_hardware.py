"""Gate 3: the hardware target, its fallbacks, and the mitigated and unmitigated arms."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from qiskit.quantum_info import SparsePauliOp

import registry
from backends import DEFAULT_PRECISION, BackendExecutor, Pub, Submission
from qhybrid.core import (
    BackendRejectedError,
    BreakerOpenError,
    DowngradeRecord,
    HardwareGateSpec,
    MitigationRecord,
    MitigationSpec,
    TransportError,
    TrialResult,
)
from qhybrid.experiments import (
    Workload,
    derive_seed,
    hardware_verdict,
    measure,
    mitigation_improvement,
    total_variation_distance,
)
from qhybrid_usecases._drawing import render
from qhybrid_usecases._run import (
    RunHandle,
    TrialOutcome,
    gate_run,
    log_plots,
    report_progress,
    run_executor,
)
from qhybrid_usecases._services import Services

# Failures that mean "this backend cannot take work now": a fallback may take over.
_FALLBACK_ON = (TransportError, BackendRejectedError, BreakerOpenError)


def hardware_gate(run: RunHandle, services: Services, ideal: TrialResult) -> TrialOutcome:
    """Gate 3: the optimised circuit on the hardware target, compared with the ideal result.

    If the target cannot take work (after its retries, or with its breaker open), the policy's
    fallbacks are tried in order; a fallback's result is recorded as a downgrade and fails
    the gate. With a mitigation policy, mitigated and unmitigated arms run on the target.

    Raises:
        BackendError: The target and every fallback failed (the last failure).
    """
    report_progress(run, services, "running", f"gate hardware on {run.spec.gates.hardware.backend}")
    spec = run.spec
    policy = spec.gates.hardware
    workload = run.workload(services)
    start = time.perf_counter()
    targets = (policy.backend, *policy.fallback)
    for index, name in enumerate(targets):
        try:
            trial, mitigation, described = _on_hardware(run, services, workload, ideal, name,
                                                        target=index == 0)
            break
        except _FALLBACK_ON as exc:
            if index + 1 == len(targets):
                raise
            exc.recovery = f"fallback to {targets[index + 1]}"
            services.log.fallbacks.append(DowngradeRecord(
                role="hardware", requested=policy.backend, used=targets[index + 1],
                reason=exc.to_dict(), dropped=_dropped(policy)))
    downgraded = name != policy.backend
    loss = workload.family.degradation(ideal.metrics, trial.metrics)
    distance = total_variation_distance(ideal.counts, trial.counts)
    result = hardware_verdict(
        workload.objective, trial.metrics, loss, distance, policy, name,
        downgraded=downgraded, improvement_low=mitigation.improvement_low if mitigation else None,
    )
    metrics = dict(result.metrics)
    if mitigation is not None:
        services.log.mitigation = mitigation
        metrics |= {f"mitigation_{k}": float(getattr(mitigation, k)) for k in (
            "ideal_value", "unmitigated_value", "mitigated_value", "improvement",
            "improvement_low", "improvement_high", "mitigated_qpu_seconds")}
        metrics |= _observable_metrics(mitigation)
    result = result.model_copy(update={
        "seconds": time.perf_counter() - start, "metrics": metrics,
        "downgraded_from": policy.backend if downgraded else None})
    with gate_run(run, services, result,
                  {"qhybrid.downgraded_from": policy.backend} if downgraded else {},
                  trial=(workload, trial)) as run_id:
        if mitigation is not None:
            services.tracker.log_dict(run_id, mitigation.model_dump(mode="json"),
                                      "mitigation.json")
        log_plots(services, run_id, lambda folder: _plots(
            folder, f"{spec.name} {spec.version}: hardware", workload, ideal, trial, name,
            mitigation))
    return TrialOutcome(gate=result.model_copy(update={"mlflow_run_id": run_id}), trial=trial,
                       backends={"hardware": described})


def _plots(folder: Path, title: str, workload: Workload, ideal: TrialResult,
           hardware: TrialResult, backend: str, mitigation: MitigationRecord | None) -> None:
    """Ideal vs hardware counts side by side; the mitigated and unmitigated arms, if any."""
    render(registry.distributions_png, ideal.counts, hardware.counts,
           folder / "ideal_vs_hardware.png", title=title, hardware_label=backend)
    if mitigation is not None:
        render(registry.arms_png, mitigation.ideal_value,
               {"unmitigated": mitigation.unmitigated_values,
                "mitigated": mitigation.mitigated_values},
               folder / "mitigation.png",
               title=f"{title}: {', '.join(mitigation.techniques)} "
               f"({mitigation.repeats} repeats per arm)",
               ylabel="expectation value of the objective's observable")


def _dropped(policy: HardwareGateSpec) -> tuple[str, ...]:
    dropped = ([f"mitigation ({', '.join(policy.mitigation.techniques())})"]
               if policy.mitigation else [])
    return tuple(dropped + ([f"mode={policy.mode}"] if policy.mode != "single" else []))


def _on_hardware(
    run: RunHandle, services: Services, workload: Workload, ideal: TrialResult, name: str, *,
    target: bool,
) -> tuple[TrialResult, MitigationRecord | None, dict[str, object]]:
    spec = run.spec
    policy = spec.gates.hardware
    backend = run_executor(
        run, services, name,
        field="gates.hardware.backend" if target else "gates.hardware.fallback",
        noise=policy.noise if target else None)
    mitigation = None
    with backend.submitter.mode(policy.mode if target else "single"):
        trial = measure(workload, backend, ideal.parameters, shots=spec.shots,
                        seed=spec.seeds.simulator)
        if target and policy.mitigation is not None:
            mitigation = mitigation_arms(run, services, workload, backend, policy.mitigation,
                                         ideal.parameters)
    return trial, mitigation, backend.describe()


def mitigation_arms(
    run: RunHandle, services: Services, workload: Workload, backend: BackendExecutor,
    policy: MitigationSpec, parameters: tuple[float, ...],
) -> MitigationRecord:
    """Unmitigated and mitigated estimates of every observable the experiment estimates (the
    objective's and ``workload.observables``), seeded repeats each, on the same circuit and
    parameters; the improvement of the objective's observable towards the exact value, with
    an interval over the repeats.

    Every repeat of an arm is one submission holding all the observables (one PUB each), so
    mitigation applies to each of them alike; the objective's is the first.
    """
    spec = run.spec
    points = workload.circuit_points(parameters)
    observables = _observables(workload)
    names = list(observables)
    exact_backend = run_executor(run, services, "aer")
    exact = [float(e[0]) for e in exact_backend.estimate_observables(
        workload.ansatz, list(observables.values()), points, seed=spec.seeds.simulator)[0]]
    seeds = [derive_seed(spec.seeds.simulator, 1000 + k) for k in range(policy.repeats)]
    # Both arms sample at the same precision, so the raw arm sees readout errors and shot
    # noise like the mitigated one (a simulator would otherwise give its exact expectation).
    precision = backend.precision or DEFAULT_PRECISION
    arms: dict[str, tuple[np.ndarray, float]] = {}
    shots: dict[str, int | None] = {}
    applied: dict[str, object] = {}
    arm_policies: tuple[tuple[str, MitigationSpec | None], ...] = (
        ("unmitigated", None), ("mitigated", policy))
    for arm, mitigation in arm_policies:
        start = time.perf_counter()
        values: list[list[float]] = []  # one row per repeat, one column per observable
        reported: list[object] = []
        for seed in seeds:
            evs, _stds, metadata = backend.estimate_observables(
                workload.ansatz, list(observables.values()), points, seed=seed,
                mitigation=mitigation, precision=precision)
            values.append([float(e[0]) for e in evs])
            reported.append(metadata.get("shots"))
            options = metadata.get("mitigation")
            if isinstance(options, dict):
                applied = options
        arms[arm] = (np.asarray(values), time.perf_counter() - start)
        counted = [n for n in reported if isinstance(n, int)]
        shots[arm] = sum(counted) if len(counted) == len(reported) else None
    qpu = {arm: policy.repeats * backend.submitter.backend.estimate_qpu_seconds(Submission(
        "estimate", tuple(Pub(workload.ansatz, points, o) for o in observables.values()),
        seed=0, precision=precision, mitigation=m)) for arm, m in arm_policies}
    confidence = spec.gates.statistical_policy.confidence
    unmitigated, mitigated = (arms[a][0][:, 0] for a in ("unmitigated", "mitigated"))
    mean, low, high = mitigation_improvement(exact[0], list(unmitigated), list(mitigated),
                                             confidence)
    per_observable = {name: _observable_arms(exact[i], arms["unmitigated"][0][:, i],
                                             arms["mitigated"][0][:, i], confidence)
                      for i, name in enumerate(names)}
    return MitigationRecord(
        techniques=policy.techniques(), applied_options=applied, ideal_value=exact[0],
        unmitigated_value=float(unmitigated.mean()), unmitigated_std=float(unmitigated.std(ddof=1)),
        mitigated_value=float(mitigated.mean()), mitigated_std=float(mitigated.std(ddof=1)),
        improvement=mean, improvement_low=low, improvement_high=high, confidence=confidence,
        repeats=policy.repeats, unmitigated_values=tuple(float(v) for v in unmitigated),
        mitigated_values=tuple(float(v) for v in mitigated),
        unmitigated_seconds=arms["unmitigated"][1], mitigated_seconds=arms["mitigated"][1],
        unmitigated_qpu_seconds=qpu["unmitigated"], mitigated_qpu_seconds=qpu["mitigated"],
        unmitigated_shots=shots["unmitigated"], mitigated_shots=shots["mitigated"],
        observables=per_observable,
    )


def _observable_arms(ideal: float, unmitigated: np.ndarray, mitigated: np.ndarray,
                     confidence: float) -> dict[str, float]:
    """One observable's ideal value, each arm's mean and mean distance from the ideal value
    over the repeats, and the improvement (the distances' difference) with its interval."""
    mean, low, high = mitigation_improvement(ideal, list(unmitigated), list(mitigated),
                                             confidence)
    return {"ideal": ideal,
            "unmitigated": float(unmitigated.mean()), "mitigated": float(mitigated.mean()),
            "unmitigated_distance": float(np.abs(unmitigated - ideal).mean()),
            "mitigated_distance": float(np.abs(mitigated - ideal).mean()),
            "improvement": mean, "improvement_low": low, "improvement_high": high}


def _observable_metrics(mitigation: MitigationRecord) -> dict[str, float]:
    """Every estimated observable's improvement, as gate metrics
    ``mitigation.<name>.<what>`` (``objective`` is the optimiser's observable). Recorded for
    reading only: the verdict judges the objective's improvement alone (docs/mitigation.md)."""
    keys = ("unmitigated_distance", "mitigated_distance", "improvement", "improvement_low",
            "improvement_high")
    return {f"mitigation.{name}.{key}": values[key]
            for name, values in mitigation.observables.items() for key in keys if key in values}


def _observables(workload: Workload) -> dict[str, SparsePauliOp]:
    """What the experiment estimates, by name: the objective's observable (what the optimiser
    works on) first, then every named observable of the family."""
    return {"objective": workload.observable, **workload.observables}
