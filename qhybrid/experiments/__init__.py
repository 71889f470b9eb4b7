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
    spectrum_bounds,
)
from qhybrid.experiments._circuit import USER_CIRCUIT, UserCircuit
from qhybrid.experiments._circuit_data import ghz_circuit, write_qasm3
from qhybrid.experiments._circuit_file import CIRCUIT_SUFFIXES, CircuitInstance, load_circuit
from qhybrid.experiments._circulant import circulant_graph, cut_terms, qaoa_circuit
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
from qhybrid.experiments._molecules import (
    MAPPINGS,
    diatomic_coordinates,
    molecule_hamiltonian,
)
from qhybrid.experiments._observables_data import ghz_observables, write_observables
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
from qhybrid.experiments._summary import instance_metrics, write_instance_metrics
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
    "CIRCUIT_SUFFIXES",
    "EXACT",
    "MAPPINGS",
    "QAOA_MAXCUT",
    "USER_CIRCUIT",
    "VQE",
    "CircuitInstance",
    "Counts",
    "Estimate",
    "Executor",
    "Family",
    "GraphInstance",
    "Instance",
    "OptimisationResult",
    "PauliSumInstance",
    "QaoaMaxcut",
    "UserCircuit",
    "Vqe",
    "Workload",
    "baseline_verdict",
    "bind",
    "brute_force_maxcut",
    "build_workload",
    "circulant_graph",
    "confidence_interval",
    "counts_to_bits",
    "cut_terms",
    "cut_values",
    "decide",
    "derive_seed",
    "diatomic_coordinates",
    "exact_ground_energy",
    "families",
    "family_for",
    "ghz_circuit",
    "ghz_observables",
    "h2_hamiltonian",
    "hardware_verdict",
    "ideal_verdict",
    "instance_metrics",
    "is_diagonal",
    "is_exact",
    "load_circuit",
    "load_instance",
    "measure",
    "mitigation_improvement",
    "molecule_hamiltonian",
    "one_exchange_maxcut",
    "optimise",
    "optimise_and_measure",
    "optimum_projector",
    "parse_instance",
    "qaoa_circuit",
    "qasm3_sha256",
    "random_regular_graph",
    "register",
    "run_baselines",
    "sampled_estimate",
    "spectrum_bounds",
    "statistical_verdict",
    "stderr_of",
    "total_variation_distance",
    "write_circuit",
    "write_instance",
    "write_instance_metrics",
    "write_observables",
    "write_qasm3",
]
