"""Circulant graphs and the QAOA circuit on them, the 12-qubit instances of the sweep
benchmarks.

``qhybrid data circulant --nodes 12 --offsets 1,6 --out F`` writes a graph (canonical JSON like
every generated instance, ``write_instance``); ``qhybrid data qaoa-circuit --graph F --reps 2
--out G.qasm`` its QAOA circuit as OpenQASM 3 for a ``kind: circuit`` spec, whose one named
observable is the cut (:func:`cut_terms`): a sweep of that spec evaluates the expected cut
alone, without the ``optimum_probability`` projector of the QAOA family (1,408 Pauli terms on
C12(1,6)). Both are dvc.yaml stages.
"""

from __future__ import annotations

from qiskit.circuit import Parameter, QuantumCircuit

from qhybrid.experiments._problems import GraphInstance


def circulant_graph(nodes: int, offsets: tuple[int, ...]) -> GraphInstance:
    """The circulant graph C_n(offsets): node i joined to i + k (mod n) for every offset k,
    unweighted. C_12(1, 6) is 3-regular with 18 edges (offset 6 = n/2 joins each node to its
    opposite once).

    Raises:
        ValueError: No offsets, or an offset outside 1..n/2.
    """
    if not offsets or any(not 1 <= k <= nodes // 2 for k in offsets):
        raise ValueError(f"offsets must lie in 1..{nodes // 2} (n/2), got {list(offsets)}")
    edges = sorted({(min(i, (i + k) % nodes), max(i, (i + k) % nodes))
                    for i in range(nodes) for k in offsets})
    return GraphInstance(
        num_nodes=nodes, edges=tuple((i, j, 1.0) for i, j in edges),
        provenance={"generator": "circulant", "offsets": list(offsets)})


def qaoa_circuit(graph: GraphInstance, reps: int) -> QuantumCircuit:
    """The QAOA circuit of the ``qaoa-maxcut`` family as plain gates: Hadamards, then per layer
    ``rzz(-gamma_k w)`` on every edge (``exp(i gamma_k w Z_i Z_j / 2)``, the family's cost
    evolution up to a global phase) and ``rx(2 beta_k)`` on every qubit. Parameters
    ``gamma_0..`` and ``beta_0..``; the same state as the family's ansatz at the same values.

    Raises:
        ValueError: ``reps`` below 1.
    """
    if reps < 1:
        raise ValueError(f"reps must be at least 1, not {reps}")
    n = graph.num_nodes
    circuit = QuantumCircuit(n, name=f"qaoa_p{reps}")
    circuit.h(range(n))
    for k in range(reps):
        gamma, beta = Parameter(f"gamma_{k}"), Parameter(f"beta_{k}")
        for i, j, w in graph.edges:
            circuit.rzz(-w * gamma, i, j)
        circuit.rx(2 * beta, range(n))
    return circuit


def cut_terms(graph: GraphInstance) -> tuple[tuple[str, float], ...]:
    """The cut operator ``sum_ij w_ij (1 - Z_i Z_j) / 2`` as [label, coefficient] terms (Qiskit
    order: the rightmost letter acts on qubit 0), for a ``kind: circuit`` spec."""
    n = graph.num_nodes
    terms = [("I" * n, sum(w for _, _, w in graph.edges) / 2)]
    for i, j, w in graph.edges:
        label = ["I"] * n
        label[n - 1 - i] = label[n - 1 - j] = "Z"
        terms.append(("".join(label), -w / 2))
    return tuple(terms)
