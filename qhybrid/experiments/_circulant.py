"""Circulant graphs, the symmetric MaxCut instances of the sweep benchmarks.

``qhybrid data circulant --nodes 12 --offsets 1,6 --out F`` writes one (a dvc.yaml stage); the
output is canonical JSON like every generated instance (``write_instance``).
"""

from __future__ import annotations

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
