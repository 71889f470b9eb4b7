"""The work each task does, as plain functions (tested without Prefect through ``.fn``).

A :class:`RunSession` carries what every step of one run or promotion shares: the spec, the
instance and its workload, the DVC pins, the MLflow parent run, a scratch folder whose files
become the parent run's artifacts, and the execution plane's state: the state store, the
execution log, and the runner that gives each submission its retries.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backends import (
    Backend,
    BackendExecutor,
    ExecutionLog,
    Pub,
    Runner,
    StateStore,
    Submission,
    attempt_once,
    open_backend,
    open_executor,
)
from qhybrid.core import (
    BackendRejectedError,
    BaselineResult,
    BreakerOpenError,
    CircuitRecord,
    DowngradeRecord,
    ExperimentSpec,
    GateResult,
    HardwareGateSpec,
    MitigationRecord,
    PromotionDecision,
    Settings,
    TransportError,
)
from qhybrid.experiments import (
    Execution,
    GraphInstance,
    PauliSumInstance,
    Workload,
    baseline_verdict,
    build_workload,
    degradation,
    derive_seed,
    hardware_verdict,
    ideal_verdict,
    load_instance,
    measure,
    mitigation_improvement,
    optimise_and_measure,
    quality,
    run_baselines,
    statistical_verdict,
    total_variation_distance,
)
from qhybrid.experiments._serialise import bind, write_circuit
from registry import DataPin, Tracker, convergence_png, histogram_png, pin_inputs


@dataclass
class RunSession:
    """Shared state of one run or promotion."""

    spec: ExperimentSpec
    settings: Settings
    instance: GraphInstance | PauliSumInstance
    workload: Workload
    pins: dict[str, DataPin]
    data_overrides: tuple[str, ...]
    tracker: Tracker
    parent_run_id: str
    scratch: Path
    store: StateStore
    flow_run_id: str | None = None
    runner: Runner = attempt_once
    log: ExecutionLog = field(default_factory=ExecutionLog)
    circuits: list[CircuitRecord] = field(default_factory=list)
    backends: dict[str, dict[str, object]] = field(default_factory=dict)
    live: dict[str, Backend] = field(default_factory=dict)


def executor(session: RunSession, name: str, *, field: str = "backend") -> BackendExecutor:
    """An executor on backend ``name`` wired to the session's store, log and runner."""
    opened = open_executor(
        name, session.settings, transpiler_seed=session.spec.seeds.transpiler,
        store=session.store, log=session.log, runner=session.runner,
        flow_run_id=session.flow_run_id, field=field,
    )
    session.live[name] = opened.submitter.backend
    return opened


def open_for_release(session: RunSession, name: str) -> Backend:
    """The live backend ``name`` of this session, or a new one (to release its leases)."""
    return session.live.get(name) or open_backend(
        name, session.settings, transpiler_seed=session.spec.seeds.transpiler, store=session.store)


def prepare_inputs(
    spec: ExperimentSpec, settings: Settings, *, allow_unpinned_data: bool
) -> tuple[GraphInstance | PauliSumInstance, Workload, dict[str, DataPin], tuple[str, ...]]:
    """Check the data against dvc.lock, load it and build the workload. Writes nothing.

    Raises:
        DataError: Missing or unpinned data (unless allowed), or data of the wrong shape.
        SpecError: Data that does not fit the family, or fixed parameters of the wrong length.
    """
    pins = pin_inputs([spec.dataset.path], settings.project_root, allow_unpinned=allow_unpinned_data)
    overrides = tuple(f"{p.path}: md5 {p.md5} != dvc.lock {p.locked_md5}"
                      for p in pins.values() if not p.matches)
    instance = load_instance(settings.project_root / spec.dataset.path)
    workload = build_workload(spec.family, instance)
    if spec.parameters is not None:
        workload.circuit_points(np.array(spec.parameters))
    return instance, workload, pins, overrides


def gate_run(session: RunSession, gate: str, result: GateResult, extra_tags: dict[str, str]) -> str:
    """Record one gate as a nested MLflow run; returns its id."""
    run_id = session.tracker.start_run(
        f"gate:{gate}",
        tags={"qhybrid.gate": gate, "qhybrid.verdict": "pass" if result.passed else "fail",
              "qhybrid.backend": result.backend, **extra_tags},
        parent_run_id=session.parent_run_id,
    )
    session.tracker.log_metrics(run_id, {**result.metrics, "seconds": result.seconds})
    session.tracker.log_dict(run_id, result.model_dump(mode="json"), "gate.json")
    return run_id


def _record_execution(session: RunSession, run_id: str, execution: Execution) -> None:
    if execution.history:
        # The optimiser minimises sign * <observable>; log the objective as users read it.
        series = [session.workload.sign * v for v in execution.history]
        session.tracker.log_series(run_id, "objective", series)
    session.tracker.log_metrics(run_id, {
        "evaluations": execution.evaluations, "batches": execution.batches,
        "quantum_seconds": execution.quantum_seconds,
        "classical_seconds": execution.classical_seconds,
    })


def ideal_gate(session: RunSession) -> tuple[GateResult, Execution]:
    """Gate 1: optimise on the ideal simulator as the spec says."""
    spec = session.spec
    execution, seconds = run_execution_on(session, spec.gates.ideal.backend, "ideal")
    objective = execution.metrics[session.workload.objective]
    result = ideal_verdict(session.workload.objective, objective, spec.gates.statistical.threshold,
                           session.workload.direction, spec.gates.ideal.backend)
    result = result.model_copy(update={"metrics": {**execution.metrics, "shots": float(spec.shots)},
                                       "seconds": seconds})
    run_id = gate_run(session, "ideal", result, {})
    _record_execution(session, run_id, execution)
    return result.model_copy(update={"mlflow_run_id": run_id}), execution


def run_execution_on(session: RunSession, backend_name: str, role: str) -> tuple[Execution, float]:
    """Optimise and sample on one backend with the spec's seeds; the backend is recorded as
    ``role`` (``qhybrid run`` uses this without gates)."""
    spec = session.spec
    backend = executor(session, backend_name)
    session.backends[role] = backend.describe()
    start = time.perf_counter()
    execution = optimise_and_measure(
        session.workload, session.instance, backend, spec,
        optimiser_seed=spec.seeds.optimiser, simulator_seed=spec.seeds.simulator,
    )
    return execution, time.perf_counter() - start


def statistical_gate(session: RunSession) -> GateResult:
    """Gate 2: repeat the ideal optimisation with independent seeds; interval of the objective."""
    spec = session.spec
    policy = spec.gates.statistical
    backend = executor(session, spec.gates.ideal.backend)
    start = time.perf_counter()
    values: list[float] = []
    seeds: list[dict[str, int]] = []
    for k in range(policy.repeats):
        execution = optimise_and_measure(
            session.workload, session.instance, backend, spec,
            optimiser_seed=derive_seed(spec.seeds.optimiser, k + 1),
            simulator_seed=derive_seed(spec.seeds.simulator, k + 1),
        )
        values.append(execution.metrics[session.workload.objective])
        seeds.append(execution.seeds)
    result = statistical_verdict(session.workload.objective, values, policy,
                                 session.workload.direction, spec.gates.ideal.backend)
    result = result.model_copy(update={"seconds": time.perf_counter() - start})
    run_id = gate_run(session, "statistical", result, {"qhybrid.repeat_seeds": json.dumps(seeds)})
    session.tracker.log_series(run_id, "repeat_objective", values)
    return result.model_copy(update={"mlflow_run_id": run_id})


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
    _record_execution(session, run_id, execution)
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
    applied: dict[str, object] = {}
    for arm, mitigation in (("unmitigated", None), ("mitigated", policy)):
        start = time.perf_counter()
        values = []
        for seed in seeds:
            evs, _stds, metadata = backend.estimate_with_stds(
                workload.ansatz, workload.observable, points, seed=seed, mitigation=mitigation)
            values.append(float(evs[0]))
            applied = metadata.get("mitigation") or applied  # type: ignore[assignment]
        arms[arm] = (values, time.perf_counter() - start)
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
    )


def baseline_gate(
    session: RunSession, hardware: Execution
) -> tuple[GateResult, list[BaselineResult]]:
    """Gate 4: classical solvers on the same instance, side by side with the quantum result."""
    spec = session.spec
    start = time.perf_counter()
    baselines = run_baselines(session.instance, spec.gates.baseline.solvers, spec.seeds.optimiser)
    result = baseline_verdict(quality(session.workload, hardware.metrics), baselines,
                              spec.gates.baseline)
    result = result.model_copy(update={"seconds": time.perf_counter() - start})
    run_id = gate_run(session, "baseline", result, {})
    return result.model_copy(update={"mlflow_run_id": run_id}), baselines


def write_artifacts(session: RunSession, execution: Execution, title: str) -> None:
    """Circuits (OpenQASM 3 and QPY), histogram and convergence plot into the scratch folder."""
    workload = session.workload
    folder = session.scratch / "circuits"
    session.circuits = [
        write_circuit(workload.ansatz, folder, "ansatz"),
        write_circuit(bind(workload, workload.measured, execution.parameters), folder, "final"),
    ]
    histogram_png(execution.counts, session.scratch / "plots" / "histogram.png", title=title)
    if execution.history:
        convergence_png([workload.sign * v for v in execution.history],
                        session.scratch / "plots" / "convergence.png",
                        title=f"{session.spec.name} {session.spec.version}",
                        ylabel="expected cut" if workload.family == "qaoa-maxcut"
                        else "energy (Hamiltonian units)")


def ideal_counts(session: RunSession, execution: Execution, backend: str) -> dict[str, int]:
    """The simulator part of a run: ideal Aer counts at the final parameters (replayable).

    An execution that ran on ``aer`` sampled exactly these (same circuit, parameters, shots and
    seed), so its counts are taken as they are; any other backend's are sampled anew on Aer.
    """
    if backend == "aer":
        return execution.counts
    spec = session.spec
    parameters = execution.parameters
    backend = executor(session, "aer")
    return backend.sample(session.workload.measured, session.workload.circuit_points(parameters),
                          shots=spec.shots, seed=spec.seeds.simulator)[0]


def counts_sha256(counts: dict[str, int]) -> str:
    """SHA-256 of counts as canonical JSON."""
    return hashlib.sha256(json.dumps(counts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def new_scratch() -> Path:
    """A fresh scratch folder for one run's artifacts."""
    return Path(tempfile.mkdtemp(prefix="qhybrid-"))


def decision_tags(decision: PromotionDecision) -> dict[str, str]:
    """Tags that summarise a decision on the parent run."""
    return {"qhybrid.decision": "promote" if decision.promote else "refuse",
            "qhybrid.aliases": ",".join(decision.aliases),
            "qhybrid.reasons": " | ".join(decision.reasons)[:5000]}
