"""What a problem instance is, in numbers a user tracks with ``dvc metrics``.

The ``instance-metrics`` stage of dvc.yaml writes them for every bundled instance, so
``dvc metrics show`` lists each instance's size and exact optimum, and ``dvc metrics diff``
shows what a regenerated instance changed (e.g. after ``dvc exp run -S maxcut_3reg_10.seed=8``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from qhybrid.core import write_whole
from qhybrid.experiments._baselines import brute_force_maxcut, exact_ground_energy
from qhybrid.experiments._problems import GraphInstance, Instance, PauliSumInstance, load_instance


def instance_metrics(instance: Instance) -> dict[str, float]:
    """Size and exact optimum of ``instance``: for a graph its nodes, edges, total weight and
    maximum cut; for a Hamiltonian its qubits, terms and ground energy (with its offset)."""
    if isinstance(instance, GraphInstance):
        return {
            "nodes": instance.num_nodes,
            "edges": len(instance.edges),
            "total_weight": round(sum(w for _, _, w in instance.edges), 12),
            "max_cut": round(brute_force_maxcut(instance)[0], 12),
        }
    assert isinstance(instance, PauliSumInstance), instance.kind
    return {
        "qubits": instance.num_qubits,
        "terms": len(instance.terms),
        "ground_energy": round(exact_ground_energy(instance), 12),
    }


def write_instance_metrics(paths: Sequence[Path], out: Path) -> dict[str, dict[str, float]]:
    """The metrics of each instance file, keyed by its file name without suffix, written to
    ``out`` as canonical JSON, atomically.

    Raises:
        DataError: An instance file is missing or invalid (naming it).
    """
    metrics = {path.stem: instance_metrics(load_instance(path, field="INSTANCE"))
               for path in paths}
    text = json.dumps(metrics, sort_keys=True, indent=1) + "\n"
    write_whole(out, text)
    return metrics
