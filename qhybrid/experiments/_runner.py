"""One trial of a workload on an executor: optimise (or take fixed parameters), then sample."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from qhybrid.core import OptimiserSpec, TrialResult
from qhybrid.experiments._executor import Counts, Executor, is_exact
from qhybrid.experiments._family import EXACT, Estimate, Workload, sampled_estimate
from qhybrid.experiments._optimise import optimise


def derive_seed(base: int, index: int) -> int:
    """An independent, reproducible seed for repeat ``index`` of a run seeded with ``base``."""
    return int(np.random.SeedSequence([base, index]).generate_state(1)[0] % (2**31 - 1))


class _Timed:
    """Accumulates time spent inside an executor."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.seconds = 0.0

    def estimate(self, workload: Workload, points: np.ndarray, seed: int,
                 observable: SparsePauliOp | None = None) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.executor.estimate(
                workload.ansatz, workload.observable if observable is None else observable,
                workload.circuit_points(points), seed=seed
            )
        finally:
            self.seconds += time.perf_counter() - start

    def estimate_with_stds(self, workload: Workload, point: np.ndarray, seed: int,
                           observable: SparsePauliOp) -> Estimate:
        start = time.perf_counter()
        try:
            evs, stds, metadata = self.executor.estimate_with_stds(
                workload.ansatz, observable, workload.circuit_points(point), seed=seed)
        finally:
            self.seconds += time.perf_counter() - start
        shots = metadata.get("shots")
        return Estimate(float(evs[0]), float(stds[0]), shots if isinstance(shots, int) else None)

    def sample(self, workload: Workload, point: np.ndarray, shots: int, seed: int) -> Counts:
        start = time.perf_counter()
        try:
            return self.executor.sample(
                workload.measured, workload.circuit_points(point), shots=shots, seed=seed
            )[0]
        finally:
            self.seconds += time.perf_counter() - start


def measure(
    workload: Workload,
    executor: Executor,
    parameters: np.ndarray | tuple[float, ...],
    *,
    shots: int,
    seed: int,
) -> TrialResult:
    """Sample the measured circuit at fixed parameters, estimate every named observable, and
    analyse them (no optimisation).

    On an exact executor (:func:`is_exact`) each of ``workload.observables`` is estimated
    exactly (precision 0), and the metrics carry, beside each exact ``<metric>``, the value
    the counts give (``<metric>.sampled``) and its standard error (``<metric>.stderr``),
    with ``exact`` = 1. Elsewhere ``<metric>`` is the counts' sample mean (for observables
    diagonal in the measured basis) or the estimator's value, with its ``<metric>.stderr``.
    Every trial records ``shots`` (and ``<name>.shots`` where an estimator reported other
    shots than the sampler's).
    """
    start = time.perf_counter()
    point = np.asarray(parameters, dtype=float)
    timed = _Timed(executor)
    counts = timed.sample(workload, point, shots, seed)
    exact = is_exact(executor)
    sampled = {name: sampled_estimate(counts, op) for name, op in workload.observables.items()}
    estimates: dict[str, Estimate] = {}
    for name, observable in workload.observables.items():
        from_counts = sampled[name]
        if exact:
            estimates[name] = Estimate(float(timed.estimate(workload, point, seed, observable)[0]))
        elif from_counts is not None:
            estimates[name] = from_counts
        else:
            estimates[name] = timed.estimate_with_stds(workload, point, seed, observable)
    metrics = workload.analyse(counts, estimates)
    if exact:
        metrics |= _sampled_beside_exact(workload, counts, sampled)
    taken = sum(counts.values())
    metrics |= {f"{name}.shots": float(e.shots) for name, e in estimates.items()
                if e.shots is not None and e.shots != taken}
    metrics |= {"shots": float(taken), EXACT: 1.0 if exact else 0.0}
    total = time.perf_counter() - start
    return TrialResult(
        backend=executor.name,
        parameters=tuple(float(x) for x in point.reshape(-1)),
        counts=counts,
        metrics=metrics,
        quantum_seconds=timed.seconds,
        classical_seconds=total - timed.seconds,
        seeds={"simulator": seed},
    )


def _sampled_beside_exact(
    workload: Workload, counts: Counts, sampled: Mapping[str, Estimate | None]
) -> dict[str, float]:
    """``<metric>.sampled`` and ``<metric>.stderr`` from the counts, for an exact trial.

    When every observable is diagonal, the family analyses the sampled estimates as well, so
    that derived metrics (a ratio, say) get their sampled value and propagated error too;
    otherwise only the diagonal observables' own metrics do.
    """
    complete = {name: e for name, e in sampled.items() if e is not None}
    if len(complete) == len(sampled):
        analysed = workload.analyse(counts, complete)
        out: dict[str, float] = {}
        for key, stderr in analysed.items():
            if key.endswith(".stderr"):
                metric = key.removesuffix(".stderr")
                out |= {f"{metric}.sampled": analysed[metric], key: stderr}
        return out
    out = {}
    for name, estimate in complete.items():
        out |= {f"{name}.sampled": estimate.value, f"{name}.stderr": estimate.stderr}
    return out


def optimise_and_measure(
    workload: Workload,
    executor: Executor,
    *,
    optimiser: OptimiserSpec,
    fixed: tuple[float, ...] | None,
    shots: int,
    optimiser_seed: int,
    simulator_seed: int,
) -> TrialResult:
    """Optimise the parameters (or take ``fixed`` ones), then sample at them.

    The objective is the estimator's expectation of ``workload.observable`` (times its sign),
    evaluated in batches: one PUB per optimiser request.

    Raises:
        SpecError: ``fixed`` does not have one value per parameter.
    """
    start = time.perf_counter()
    timed = _Timed(executor)
    history: list[float] = []
    evaluations = batches = 0
    if fixed is not None:
        parameters = np.array(fixed, dtype=float)
        workload.circuit_points(parameters)  # validates the length, naming the field
    else:
        def objective(points: np.ndarray) -> np.ndarray:
            return workload.sign * timed.estimate(workload, points, simulator_seed)

        outcome = optimise(objective, list(workload.bounds), optimiser, optimiser_seed)
        parameters, history = outcome.parameters, outcome.history
        evaluations, batches = outcome.evaluations, outcome.batches
    optimiser_seconds = time.perf_counter() - start
    final = measure(workload, executor, parameters, shots=shots, seed=simulator_seed)
    return final.model_copy(update={
        "history": tuple(history), "evaluations": evaluations, "batches": batches,
        "quantum_seconds": final.quantum_seconds + timed.seconds,
        "classical_seconds": final.classical_seconds + optimiser_seconds - timed.seconds,
        "seeds": {"optimiser": optimiser_seed, "simulator": simulator_seed},
    })
