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
    Runner,
    StateStore,
    attempt_once,
    open_backend,
    open_executor,
)
from qhybrid.core import (
    BaselineResult,
    CircuitRecord,
    ExperimentSpec,
    GateResult,
    PromotionDecision,
    Settings,
)
from qhybrid.experiments import (
    Execution,
    GraphInstance,
    PauliSumInstance,
    Workload,
    baseline_verdict,
    build_workload,
    derive_seed,
    ideal_verdict,
    load_instance,
    optimise_and_measure,
    quality,
    run_baselines,
    statistical_verdict,
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


def record_execution(session: RunSession, run_id: str, execution: Execution) -> None:
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
    record_execution(session, run_id, execution)
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
