"""One trial of a workload on an executor: optimise (or take fixed parameters), then sample."""

from __future__ import annotations

import time

import numpy as np

from qhybrid.core import OptimiserSpec, TrialResult
from qhybrid.experiments._executor import Counts, Executor
from qhybrid.experiments._family import Workload
from qhybrid.experiments._optimise import optimise


def derive_seed(base: int, index: int) -> int:
    """An independent, reproducible seed for repeat ``index`` of a run seeded with ``base``."""
    return int(np.random.SeedSequence([base, index]).generate_state(1)[0] % (2**31 - 1))


class _Timed:
    """Accumulates time spent inside an executor."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.seconds = 0.0

    def estimate(self, workload: Workload, points: np.ndarray, seed: int) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.executor.estimate(
                workload.ansatz, workload.observable, workload.circuit_points(points), seed=seed
            )
        finally:
            self.seconds += time.perf_counter() - start

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
    """Sample the measured circuit at fixed parameters and analyse it (no optimisation).

    A family that needs an energy also gets the estimator's value of its observable.
    """
    start = time.perf_counter()
    point = np.asarray(parameters, dtype=float)
    timed = _Timed(executor)
    counts = timed.sample(workload, point, shots, seed)
    energy = None
    if workload.family.needs_energy:
        energy = float(timed.estimate(workload, point, seed)[0])
    metrics = workload.analyse(counts, energy)
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
