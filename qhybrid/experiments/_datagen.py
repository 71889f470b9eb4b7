"""Deterministic problem-instance generators, run by dvc.yaml stages.

The ``qhybrid data maxcut`` and ``qhybrid data h2`` commands call them, e.g.
``qhybrid data maxcut --nodes 10 --degree 3 --seed 7 --out F``. The output is canonical JSON
(sorted keys, fixed float formatting), so the same arguments give the same bytes and the same
DVC hash on every machine.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from qhybrid.core import write_whole
from qhybrid.experiments._problems import GraphInstance, PauliSumInstance

# Parity-mapped, two-qubit-reduced H2 Hamiltonian in STO-3G at 0.735 Angstrom (Hartree), as
# PySCF + qiskit-nature compute it (`qhybrid data molecule` gives the same spectrum to 1e-6).
# Its lowest eigenvalue plus the nuclear repulsion is the FCI energy, -1.137306035753 Ha, the
# value qiskit-nature's tutorial 01_electronic_structure prints for this geometry.
_H2_0735 = (
    ("II", -1.052373245772859),
    ("IZ", 0.39793742484318045),
    ("ZI", -0.39793742484318045),
    ("ZZ", -0.01128010425623538),
    ("XX", 0.18093119978423156),
)
_H2_NUCLEAR_REPULSION = 0.7199689944489797


def _has_triangle(edges: list[tuple[int, int]], n: int) -> bool:
    adj: list[set[int]] = [set() for _ in range(n)]
    for i, j in edges:
        adj[i].add(j)
        adj[j].add(i)
    return any(adj[i] & adj[j] for i, j in edges)


def random_regular_graph(
    nodes: int, degree: int, seed: int, *, triangle_free: bool, weighted: bool
) -> GraphInstance:
    """A random d-regular graph by the pairing model, redrawn until simple (and triangle-free).

    Pure Python with ``random.Random(seed)``, so the result does not depend on numpy or
    networkx versions.

    Raises:
        ValueError: No such graph exists, or none was found in 10,000 draws.
    """
    if nodes * degree % 2 or degree >= nodes:
        raise ValueError(f"no {degree}-regular graph on {nodes} nodes")
    rng = random.Random(seed)  # noqa: S311 - a seeded, reproducible draw, not a secret
    for attempt in range(10_000):
        stubs = [v for v in range(nodes) for _ in range(degree)]
        rng.shuffle(stubs)
        pairs = {
            (min(stubs[k], stubs[k + 1]), max(stubs[k], stubs[k + 1]))
            for k in range(0, len(stubs), 2)
        }
        if len(pairs) * 2 != len(stubs) or any(i == j for i, j in pairs):
            continue
        edges = sorted(pairs)
        if triangle_free and _has_triangle(edges, nodes):
            continue
        weights = [round(rng.uniform(0.5, 1.5), 3) if weighted else 1.0 for _ in edges]
        return GraphInstance(
            num_nodes=nodes,
            edges=tuple((i, j, w) for (i, j), w in zip(edges, weights, strict=True)),
            provenance={
                "generator": "pairing-model",
                "degree": degree,
                "seed": seed,
                "attempt": attempt,
                "triangle_free": triangle_free,
                "weighted": weighted,
            },
        )
    raise ValueError("no graph found in 10,000 draws")


def h2_hamiltonian() -> PauliSumInstance:
    """The bundled H2 (STO-3G, 0.735 Angstrom) two-qubit Hamiltonian."""
    return PauliSumInstance(
        num_qubits=2,
        terms=_H2_0735,
        constant_offset=_H2_NUCLEAR_REPULSION,
        provenance={
            "molecule": "H2",
            "basis": "sto-3g",
            "bond_length_angstrom": 0.735,
            "mapping": "parity, two-qubit reduction",
            "units": "hartree",
        },
    )


def write_instance(instance: GraphInstance | PauliSumInstance, out: Path) -> None:
    """Write canonical JSON, atomically (a partial file never replaces a good one)."""
    text = json.dumps(instance.model_dump(mode="json"), sort_keys=True, indent=1) + "\n"
    write_whole(out, text)
