"""Classical solvers for the same instances the quantum circuits attack."""

from __future__ import annotations

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from qhybrid.experiments._problems import GraphInstance, PauliSumInstance


def cut_values(weights: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Cut weight of each assignment.

    Args:
        weights: Symmetric (n, n) weight matrix.
        bits: (m, n) array of 0/1; column i is node i.

    Returns:
        (m,) cut weights: the sum of w_ij over edges whose ends differ.
    """
    spins = 1 - 2 * bits.astype(float)
    # sum_{i<j} w_ij (1 - s_i s_j) / 2, written over the full symmetric matrix.
    total = weights.sum() / 2
    quadratic = np.einsum("mi,ij,mj->m", spins, weights, spins) / 2
    cuts: np.ndarray = (total - quadratic) / 2
    return cuts


def brute_force_maxcut(graph: GraphInstance) -> tuple[float, np.ndarray]:
    """Exact MaxCut by enumerating every assignment (fine up to ~22 nodes).

    Returns:
        The optimum cut weight and one optimal assignment (0/1 per node).
    """
    n = graph.num_nodes
    best_value, best_bits = -np.inf, np.zeros(n, dtype=int)
    chunk = 1 << min(n, 16)
    for start in range(0, 1 << n, chunk):
        idx = np.arange(start, min(start + chunk, 1 << n))
        bits = (idx[:, None] >> np.arange(n)[None, :]) & 1
        values = cut_values(graph.weights, bits)
        k = int(np.argmax(values))
        if values[k] > best_value:
            best_value, best_bits = float(values[k]), bits[k].copy()
    return best_value, best_bits


def one_exchange_maxcut(graph: GraphInstance, seed: int) -> float:
    """The one-exchange local search of networkx: a fast heuristic, no optimality guarantee."""
    import networkx as nx  # 0.2 s, for the baseline gate only
    from networkx.algorithms.approximation import one_exchange

    g: nx.Graph[int] = nx.Graph()
    g.add_nodes_from(range(graph.num_nodes))
    g.add_weighted_edges_from(graph.edges)
    value, _partition = one_exchange(g, weight="weight", seed=seed)
    return float(value)


def exact_ground_energy(hamiltonian: PauliSumInstance) -> float:
    """Lowest eigenvalue of the Hamiltonian plus its constant offset."""
    matrix = hamiltonian.operator().to_matrix()
    return float(np.linalg.eigvalsh(matrix)[0]) + hamiltonian.constant_offset


_DENSE_MAX_QUBITS = 10  # above this a dense matrix costs more than a sparse eigensolver


def spectrum_bounds(observable: SparsePauliOp) -> tuple[float, float]:
    """Lowest and highest eigenvalue of a Hermitian Pauli sum.

    A diagonal observable (only I and Z) is read off its diagonal; otherwise the dense
    spectrum up to 10 qubits, and ARPACK's extreme eigenvalues of the sparse matrix above.
    """
    n = observable.num_qubits
    paulis = observable.paulis
    if not paulis.x.any():
        states = np.arange(1 << n)
        bits = (states[:, None] >> np.arange(n)[None, :]) & 1
        signs = 1 - 2 * ((bits @ paulis.z.T.astype(int)) % 2)
        diagonal = signs @ np.real(np.asarray(observable.coeffs))
        return float(diagonal.min()), float(diagonal.max())
    if n <= _DENSE_MAX_QUBITS:
        values = np.linalg.eigvalsh(observable.to_matrix())
        return float(values[0]), float(values[-1])
    from scipy.sparse.linalg import eigsh  # for wide observables only

    matrix = observable.to_matrix(sparse=True)
    low = eigsh(matrix, k=1, which="SA", return_eigenvectors=False)[0]
    high = eigsh(matrix, k=1, which="LA", return_eigenvectors=False)[0]
    return float(np.real(low)), float(np.real(high))
