"""Classical baselines and instance generation."""

from __future__ import annotations

import itertools

import numpy as np

from qhybrid.experiments import brute_force_maxcut, cut_values, random_regular_graph, run_baselines


def test_brute_force_agrees_with_enumeration() -> None:
    graph = random_regular_graph(8, 3, 2, triangle_free=False, weighted=True)
    best = max(
        cut_values(graph.weights, np.array([bits]))[0]
        for bits in itertools.product([0, 1], repeat=8)
    )
    assert brute_force_maxcut(graph)[0] == best


def test_generation_is_deterministic() -> None:
    a = random_regular_graph(10, 3, 7, triangle_free=True, weighted=False)
    b = random_regular_graph(10, 3, 7, triangle_free=True, weighted=False)
    c = random_regular_graph(10, 3, 8, triangle_free=True, weighted=False)
    assert a == b and a != c


def test_heuristic_never_beats_exact() -> None:
    graph = random_regular_graph(10, 3, 7, triangle_free=True, weighted=True)
    exact, heuristic = run_baselines(graph, ("brute-force", "one-exchange"), seed=1)
    assert exact.exact and not heuristic.exact
    assert heuristic.objective <= exact.objective and heuristic.quality <= 1.0
