"""Pure domain: problem instances, circuit families, optimisation, baselines and verdicts.

Nothing here imports prefect, mlflow or dvc, and nothing here executes a circuit by itself:
execution goes through an :class:`Executor` handed in by the caller. Each circuit family is
one module implementing :class:`Family`, registered by its ``kind``.
"""

from qhybrid.experiments._baselines import (
    brute_force_maxcut,
    cut_values,
    exact_ground_energy,
    one_exchange_maxcut,
)
from qhybrid.experiments._datagen import h2_hamiltonian, random_regular_graph, write_instance
from qhybrid.experiments._executor import Counts, Executor, is_exact
from qhybrid.experiments._family import (
    EXACT,
    Estimate,
    Family,
    Workload,
    build_workload,
    counts_to_bits,
    families,
    family_for,
    is_diagonal,
    register,
    run_baselines,
    sampled_estimate,
    stderr_of,
)
from qhybrid.experiments._optimise import OptimisationResult, optimise
from qhybrid.experiments._problems import (
    GraphInstance,
    Instance,
    PauliSumInstance,
    load_instance,
    parse_instance,
)
from qhybrid.experiments._qaoa_maxcut import QAOA_MAXCUT, QaoaMaxcut, optimum_projector
from qhybrid.experiments._runner import derive_seed, measure, optimise_and_measure
from qhybrid.experiments._serialise import bind, qasm3_sha256, write_circuit
from qhybrid.experiments._verdicts import (
    ALLOWANCE,
    baseline_verdict,
    confidence_interval,
    decide,
    hardware_verdict,
    ideal_verdict,
    mitigation_improvement,
    statistical_verdict,
    total_variation_distance,
)
from qhybrid.experiments._vqe import VQE, Vqe

__all__ = [
    "ALLOWANCE",
    "EXACT",
    "QAOA_MAXCUT",
    "VQE",
    "Counts",
    "Estimate",
    "Executor",
    "Family",
    "GraphInstance",
    "Instance",
    "OptimisationResult",
    "PauliSumInstance",
    "QaoaMaxcut",
    "Vqe",
    "Workload",
    "baseline_verdict",
    "bind",
    "brute_force_maxcut",
    "build_workload",
    "confidence_interval",
    "counts_to_bits",
    "cut_values",
    "decide",
    "derive_seed",
    "exact_ground_energy",
    "families",
    "family_for",
    "h2_hamiltonian",
    "hardware_verdict",
    "ideal_verdict",
    "is_diagonal",
    "is_exact",
    "load_instance",
    "measure",
    "mitigation_improvement",
    "one_exchange_maxcut",
    "optimise",
    "optimise_and_measure",
    "optimum_projector",
    "parse_instance",
    "qasm3_sha256",
    "random_regular_graph",
    "register",
    "run_baselines",
    "sampled_estimate",
    "statistical_verdict",
    "stderr_of",
    "total_variation_distance",
    "write_circuit",
    "write_instance",
]
