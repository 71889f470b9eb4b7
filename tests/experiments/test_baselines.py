"""Classical baselines and instance generation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qhybrid.core import QaoaMaxcutFamily
from qhybrid.experiments import (
    brute_force_maxcut,
    build_workload,
    cut_values,
    random_regular_graph,
    run_baselines,
)


def test_brute_force_agrees_with_enumeration() -> None:
    graph = random_regular_graph(8, 3, 2, triangle_free=False, weighted=True)
    assignments = list(itertools.product([0, 1], repeat=8))
    # The cut from its definition, in plain Python: independent of cut_values.
    plain = [sum(w for i, j, w in graph.edges if bits[i] != bits[j]) for bits in assignments]
    assert brute_force_maxcut(graph)[0] == pytest.approx(max(plain))
    assert np.allclose(cut_values(graph.weights, np.array(assignments)), plain)


def test_generation_is_deterministic() -> None:
    a = random_regular_graph(10, 3, 7, triangle_free=True, weighted=False)
    b = random_regular_graph(10, 3, 7, triangle_free=True, weighted=False)
    c = random_regular_graph(10, 3, 8, triangle_free=True, weighted=False)
    assert a == b and a != c


def test_heuristic_never_beats_exact() -> None:
    graph = random_regular_graph(10, 3, 7, triangle_free=True, weighted=True)
    workload = build_workload(QaoaMaxcutFamily(), graph)
    exact, heuristic = run_baselines(workload, ("brute-force", "one-exchange"), seed=1)
    assert exact.exact and not heuristic.exact
    assert heuristic.objective <= exact.objective and heuristic.quality <= 1.0


def test_a_dataset_path_no_file_system_holds_is_a_data_error(tmp_path) -> None:
    from qhybrid.core import DataError
    from qhybrid.experiments import load_instance

    with pytest.raises(DataError, match="longer than 255 bytes") as info:
        load_instance(tmp_path / ("n" * 300 + ".json"))
    assert info.value.field == "dataset.path"
    with pytest.raises(DataError, match="dvc repro"):
        load_instance(tmp_path / "absent.json")
