"""One execution of a workload on an executor: optimise (or take fixed parameters), then sample."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from qhybrid.core import ExperimentSpec
from qhybrid.experiments._executor import Counts, Executor
from qhybrid.experiments._families import Workload, analyse
from qhybrid.experiments._optimise import optimise
from qhybrid.experiments._problems import GraphInstance, PauliSumInstance


def derive_seed(base: int, index: int) -> int:
    """An independent, reproducible seed for repeat ``index`` of a run seeded with ``base``."""
    return int(np.random.SeedSequence([base, index]).generate_state(1)[0] % (2**31 - 1))


@dataclass
class Execution:
    """The record of one execution.

    Attributes:
        parameters: Final parameters in the family's order.
        counts: Counts of the measured circuit at ``parameters``.
        metrics: The family's analysis of the execution.
        history: Objective (as the optimiser minimised it) per iteration; empty when fixed.
        evaluations: Parameter points evaluated by the optimiser.
        batches: Batched estimator calls (PUBs) made by the optimiser.
        quantum_seconds: Wall time inside the executor.
        classical_seconds: Wall time in the optimiser and analysis outside the executor.
        seeds: The seeds this execution used.
    """

    parameters: np.ndarray
    counts: Counts
    metrics: dict[str, float]
    history: list[float] = field(default_factory=list)
    evaluations: int = 0
    batches: int = 0
    quantum_seconds: float = 0.0
    classical_seconds: float = 0.0
    seeds: dict[str, int] = field(default_factory=dict)


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
    instance: GraphInstance | PauliSumInstance,
    executor: Executor,
    parameters: np.ndarray,
    *,
    shots: int,
    seed: int,
) -> Execution:
    """Sample the measured circuit at fixed parameters and analyse it (no optimisation)."""
    start = time.perf_counter()
    timed = _Timed(executor)
    counts = timed.sample(workload, parameters, shots, seed)
    energy = None
    if workload.family == "vqe":
        energy = float(timed.estimate(workload, parameters, seed)[0])
    metrics = analyse(workload, instance, counts, energy)
    total = time.perf_counter() - start
    return Execution(
        parameters=np.asarray(parameters, dtype=float),
        counts=counts,
        metrics=metrics,
        quantum_seconds=timed.seconds,
        classical_seconds=total - timed.seconds,
        seeds={"simulator": seed},
    )


def optimise_and_measure(
    workload: Workload,
    instance: GraphInstance | PauliSumInstance,
    executor: Executor,
    spec: ExperimentSpec,
    *,
    optimiser_seed: int,
    simulator_seed: int,
) -> Execution:
    """Optimise the parameters as the spec says (or take its fixed ones), then sample.

    The objective is the estimator's expectation of ``workload.observable`` (times its sign),
    evaluated in batches: one PUB per optimiser request.
    """
    start = time.perf_counter()
    timed = _Timed(executor)
    history: list[float] = []
    evaluations = batches = 0
    if spec.parameters is not None:
        parameters = np.array(spec.parameters, dtype=float)
        workload.circuit_points(parameters)  # validates the length, naming the field
    else:
        def objective(points: np.ndarray) -> np.ndarray:
            return workload.sign * timed.estimate(workload, points, simulator_seed)

        outcome = optimise(objective, list(workload.bounds), spec.optimiser, optimiser_seed)
        parameters, history = outcome.parameters, outcome.history
        evaluations, batches = outcome.evaluations, outcome.batches
    optimiser_seconds = time.perf_counter() - start
    final = measure(workload, instance, executor, parameters, shots=spec.shots, seed=simulator_seed)
    final.history, final.evaluations, final.batches = history, evaluations, batches
    final.quantum_seconds += timed.seconds
    final.classical_seconds += optimiser_seconds - timed.seconds
    final.seeds = {"optimiser": optimiser_seed, "simulator": simulator_seed}
    return final
