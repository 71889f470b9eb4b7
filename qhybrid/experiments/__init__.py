"""Pure domain: problem instances, circuit families, optimisation, baselines and verdicts.

Nothing here imports prefect, mlflow or dvc, and nothing here executes a circuit by itself:
execution goes through an :class:`Executor` handed in by the caller.
"""

from qhybrid.experiments._baselines import (
    brute_force_maxcut,
    cut_values,
    exact_ground_energy,
    one_exchange_maxcut,
    run_baselines,
)
from qhybrid.experiments._datagen import h2_hamiltonian, random_regular_graph, write_instance
from qhybrid.experiments._executor import Counts, Executor
from qhybrid.experiments._families import (
    Workload,
    analyse,
    build_workload,
    counts_to_bits,
    degradation,
    quality,
)
from qhybrid.experiments._optimise import OptimisationResult, optimise
from qhybrid.experiments._problems import (
    GraphInstance,
    PauliSumInstance,
    load_instance,
)
from qhybrid.experiments._runner import Execution, derive_seed, measure, optimise_and_measure
from qhybrid.experiments._verdicts import (
    baseline_verdict,
    confidence_interval,
    decide,
    hardware_verdict,
    ideal_verdict,
    mitigation_improvement,
    statistical_verdict,
    total_variation_distance,
)

__all__ = [
    "Counts",
    "Execution",
    "Executor",
    "GraphInstance",
    "OptimisationResult",
    "PauliSumInstance",
    "Workload",
    "analyse",
    "baseline_verdict",
    "brute_force_maxcut",
    "build_workload",
    "confidence_interval",
    "counts_to_bits",
    "cut_values",
    "decide",
    "degradation",
    "derive_seed",
    "exact_ground_energy",
    "h2_hamiltonian",
    "hardware_verdict",
    "ideal_verdict",
    "mitigation_improvement",
    "load_instance",
    "measure",
    "one_exchange_maxcut",
    "optimise",
    "optimise_and_measure",
    "quality",
    "random_regular_graph",
    "run_baselines",
    "statistical_verdict",
    "total_variation_distance",
    "write_instance",
]
