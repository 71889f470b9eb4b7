"""Circuit families: build circuits and observables from typed options; read results.

A family never executes anything. ``build`` turns spec options and an instance into a
:class:`Workload`; ``analyse`` turns counts (and, where the family needs one, an energy)
into typed metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.circuit.library import efficient_su2, qaoa_ansatz, real_amplitudes
from qiskit.quantum_info import SparsePauliOp

from qhybrid.core import Direction, PostProcessingError, QaoaMaxcutFamily, SpecError, VqeFamily
from qhybrid.experiments._baselines import brute_force_maxcut, cut_values, exact_ground_energy
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._problems import GraphInstance, PauliSumInstance


@dataclass(frozen=True)
class Workload:
    """What to run for one experiment on one instance.

    Attributes:
        family: The family's kind.
        ansatz: Parametrised circuit without measurements.
        measured: ``ansatz`` followed by a measurement of every qubit.
        observable: Its expectation is what the optimiser works on.
        sign: +1 to minimise ``observable``, -1 to maximise it.
        parameter_names: The family's documented parameter order.
        to_circuit: Column permutation: ``points[:, to_circuit]`` is in circuit order.
        bounds: Box bounds per parameter, in family order.
        objective: Name of the primary metric gates judge.
        direction: Whether larger or smaller ``objective`` is better.
        reference: The instance's exact optimum (maximum cut, or ground energy with its
            offset), computed once here so that every analysis can score against it.
    """

    family: str
    ansatz: QuantumCircuit
    measured: QuantumCircuit
    observable: SparsePauliOp
    sign: float
    parameter_names: tuple[str, ...]
    to_circuit: np.ndarray
    bounds: tuple[tuple[float, float], ...]
    objective: str
    direction: Direction
    reference: float

    def circuit_points(self, points: np.ndarray) -> np.ndarray:
        """Reorder (n, k) points from family order to ``circuit.parameters`` order.

        Raises:
            SpecError: The points do not have one value per parameter.
        """
        points = np.atleast_2d(np.asarray(points, dtype=float))
        if points.shape[1] != len(self.parameter_names):
            raise SpecError(
                f"expected {len(self.parameter_names)} values "
                f"({', '.join(self.parameter_names)}), got {points.shape[1]}",
                field="parameters",
            )
        return points[:, self.to_circuit]


def build_workload(
    family: QaoaMaxcutFamily | VqeFamily, instance: GraphInstance | PauliSumInstance
) -> Workload:
    """Build the circuits and observable of ``family`` on ``instance``.

    Raises:
        SpecError: The data does not fit the family (e.g. a Hamiltonian for MaxCut).
    """
    if isinstance(family, QaoaMaxcutFamily):
        if not isinstance(instance, GraphInstance):
            raise SpecError("qaoa-maxcut needs a graph dataset", field="dataset.path")
        return _qaoa_workload(family, instance)
    if not isinstance(instance, PauliSumInstance):
        raise SpecError("vqe needs a pauli-sum dataset", field="dataset.path")
    return _vqe_workload(family, instance)


def _qaoa_workload(family: QaoaMaxcutFamily, graph: GraphInstance) -> Workload:
    n = graph.num_nodes
    zz = [("ZZ", [i, j], w / 2) for i, j, w in graph.edges]
    total = sum(w for _, _, w in graph.edges) / 2
    # C = sum_ij w_ij (1 - Z_i Z_j) / 2 counts the cut weight.
    cut = SparsePauliOp.from_sparse_list([("", [], total)] + [(p, q, -c) for p, q, c in zz], n)
    # The ansatz evolves exp(-i gamma H) with H = -(1/2) sum w Z Z, which is exp(-i gamma C) up
    # to a global phase, so gamma and beta follow Farhi, Goldstone & Gutmann (2014) exactly.
    cost = SparsePauliOp.from_sparse_list([(p, q, -c) for p, q, c in zz], n)
    ansatz = qaoa_ansatz(cost, reps=family.reps)
    # qaoa_ansatz names its vectors β and γ; we document gamma first, then beta.
    names = tuple(f"gamma[{k}]" for k in range(family.reps)) + tuple(
        f"beta[{k}]" for k in range(family.reps)
    )
    ours = {f"γ[{k}]": f"gamma[{k}]" for k in range(family.reps)}
    ours |= {f"β[{k}]": f"beta[{k}]" for k in range(family.reps)}
    index = {name: i for i, name in enumerate(names)}
    order = np.array([index[ours[p.name]] for p in ansatz.parameters])
    return Workload(
        family="qaoa-maxcut",
        ansatz=ansatz,
        measured=_measured(ansatz),
        observable=cut.simplify(),
        sign=-1.0,
        parameter_names=names,
        to_circuit=order,
        bounds=((0.0, np.pi),) * family.reps + ((0.0, np.pi / 2),) * family.reps,
        objective="approximation_ratio",
        direction="maximise",
        reference=brute_force_maxcut(graph)[0],
    )


def _vqe_workload(family: VqeFamily, hamiltonian: PauliSumInstance) -> Workload:
    build = real_amplitudes if family.ansatz == "real-amplitudes" else efficient_su2
    ansatz = build(hamiltonian.num_qubits, reps=family.reps, entanglement=family.entanglement)
    names = tuple(p.name.replace("θ", "theta") for p in ansatz.parameters)
    return Workload(
        family="vqe",
        ansatz=ansatz,
        measured=_measured(ansatz),
        observable=hamiltonian.operator(),
        sign=1.0,
        parameter_names=names,
        to_circuit=np.arange(len(names)),
        bounds=((-np.pi, np.pi),) * len(names),
        objective="energy_error",
        direction="minimise",
        reference=exact_ground_energy(hamiltonian),
    )


def _measured(ansatz: QuantumCircuit) -> QuantumCircuit:
    circuit = ansatz.copy()
    circuit.measure_all()
    return circuit


def counts_to_bits(counts: Counts, num_qubits: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts as a (m, n) 0/1 array (column i is qubit i) and an (m,) array of counts."""
    keys = list(counts)
    bits = np.array([[int(key[-1 - i]) for i in range(num_qubits)] for key in keys], dtype=int)
    return bits, np.array([counts[key] for key in keys], dtype=float)


def analyse(
    workload: Workload,
    instance: GraphInstance | PauliSumInstance,
    counts: Counts,
    energy: float | None = None,
) -> dict[str, float]:
    """Typed metrics of one execution.

    Args:
        workload: What was run.
        instance: The problem instance.
        counts: Measured counts of ``workload.measured``.
        energy: For VQE, the estimated expectation of the Hamiltonian (without offset).

    Returns:
        For ``qaoa-maxcut``: expected_cut, best_sampled_cut, max_cut, approximation_ratio,
        best_sampled_ratio, optimum_probability. For ``vqe``: energy, exact_energy,
        energy_error (Hartree when the data is in Hartree), quality.
    """
    if not counts or sum(counts.values()) <= 0:
        raise PostProcessingError(f"{workload.family}: no measured shots to analyse")
    if isinstance(instance, GraphInstance):
        bits, weights = counts_to_bits(counts, instance.num_nodes)
        values = cut_values(instance.weights, bits)
        max_cut = workload.reference
        shots = weights.sum()
        expected = float(values @ weights / shots)
        return {
            "expected_cut": expected,
            "best_sampled_cut": float(values.max()),
            "max_cut": max_cut,
            "approximation_ratio": expected / max_cut,
            "best_sampled_ratio": float(values.max()) / max_cut,
            "optimum_probability": float(weights[np.isclose(values, max_cut)].sum() / shots),
        }
    if energy is None or not np.isfinite(energy):
        raise PostProcessingError(f"vqe: the estimated energy is missing or not finite ({energy})")
    exact = workload.reference
    total = energy + instance.constant_offset
    error = abs(total - exact)
    return {
        "energy": total,
        "exact_energy": exact,
        "energy_error": error,
        "quality": 1.0 - error / abs(exact),
    }


def quality(workload: Workload, metrics: dict[str, float]) -> float:
    """The objective on a 0..1 scale comparable with classical baselines."""
    return metrics["approximation_ratio"] if workload.family == "qaoa-maxcut" else metrics["quality"]


def degradation(workload: Workload, ideal: dict[str, float], other: dict[str, float]) -> float:
    """Relative loss of the objective from ``ideal`` to ``other``.

    QAOA: the relative drop of the approximation ratio. VQE: the energy shift relative to the
    exact ground energy's magnitude.
    """
    if workload.family == "qaoa-maxcut":
        return (ideal["approximation_ratio"] - other["approximation_ratio"]) / ideal[
            "approximation_ratio"
        ]
    return abs(other["energy"] - ideal["energy"]) / abs(ideal["exact_energy"])
