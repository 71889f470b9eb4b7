"""Classical solvers for the same instances the quantum circuits attack."""

from __future__ import annotations

import networkx as nx
import numpy as np
from networkx.algorithms.approximation import one_exchange

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
    g: nx.Graph[int] = nx.Graph()
    g.add_nodes_from(range(graph.num_nodes))
    g.add_weighted_edges_from(graph.edges)
    value, _partition = one_exchange(g, weight="weight", seed=seed)
    return float(value)


def exact_ground_energy(hamiltonian: PauliSumInstance) -> float:
    """Lowest eigenvalue of the Hamiltonian plus its constant offset."""
    matrix = hamiltonian.operator().to_matrix()
    return float(np.linalg.eigvalsh(matrix)[0]) + hamiltonian.constant_offset
