"""QAOA MaxCut against Farhi, Goldstone & Gutmann (2014): p=1 on triangle-free 3-regular graphs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from backends import BackendExecutor, open_executor
from qhybrid.core import QaoaMaxcutFamily, Settings, SpecError, spec_from_mapping
from qhybrid.experiments import (
    Estimate,
    brute_force_maxcut,
    build_workload,
    load_instance,
    optimise_and_measure,
    random_regular_graph,
)

# Farhi et al.: for a triangle-free 3-regular graph at p=1 each edge is cut with probability
# 1/2 + (1/2) sin(4 beta) sin(gamma) cos^2(gamma); the optimum, at tan(gamma) = 1/sqrt(2) and
# beta = pi/8, is 1/2 + 1/(3 sqrt 3) = 0.6924.
FARHI_OPTIMUM = 0.5 + 1 / (3 * np.sqrt(3))


def farhi_cut_fraction(gamma: float, beta: float) -> float:
    return 0.5 + 0.5 * np.sin(4 * beta) * np.sin(gamma) * np.cos(gamma) ** 2


@pytest.fixture(scope="module")
def graph():
    return random_regular_graph(10, 3, 7, triangle_free=True, weighted=False)


@pytest.fixture(scope="module")
def aer() -> BackendExecutor:
    return open_executor("aer", Settings(), transpiler_seed=0)


@pytest.mark.parametrize(("gamma", "beta"),
                         [(0.3, 0.2), (0.6155, np.pi / 8), (2.0, 1.3), (1.1, 0.7)])
def test_expected_cut_matches_farhi_formula(graph, aer, gamma: float, beta: float) -> None:
    workload = build_workload(QaoaMaxcutFamily(reps=1), graph)
    value = aer.estimate(workload.ansatz, workload.observable,
                         workload.circuit_points(np.array([[gamma, beta]])), seed=1)[0]
    assert value == pytest.approx(len(graph.edges) * farhi_cut_fraction(gamma, beta), abs=1e-9)


def test_parameter_order_is_gamma_then_beta(graph, aer) -> None:
    workload = build_workload(QaoaMaxcutFamily(reps=2), graph)
    assert workload.parameter_names == ("gamma[0]", "gamma[1]", "beta[0]", "beta[1]")
    assert [p.name for p in workload.ansatz.parameters] == ["β[0]", "β[1]", "γ[0]", "γ[1]"]
    assert list(workload.circuit_points(np.array([[1, 2, 3, 4]]))[0]) == [3, 4, 1, 2]
    with pytest.raises(SpecError, match="expected 4 values") as info:
        workload.circuit_points(np.array([[1, 2, 3]]))
    assert info.value.field == "parameters"


def _spec(**overrides):
    data = {"name": "t-qaoa", "version": "1.0.0", "family": {"kind": "qaoa-maxcut"},
            "dataset": {"path": "data/maxcut_3reg_10.json"}, "shots": 4000,
            "gates": {"statistical": {"threshold": 0.7, "tolerance": 0.05},
                      "baseline": {"solvers": ["brute-force"]}}}
    return spec_from_mapping({**data, **overrides})


def test_optimiser_reaches_published_optimum(graph, aer) -> None:
    workload = build_workload(QaoaMaxcutFamily(reps=1), graph)
    spec = _spec()
    execution = optimise_and_measure(workload, aer, optimiser=spec.optimiser, fixed=None,
                                     shots=spec.shots, optimiser_seed=3, simulator_seed=4)
    best_expected = -execution.history[-1]
    assert best_expected / len(graph.edges) == pytest.approx(FARHI_OPTIMUM, abs=1e-5)
    # Every optimiser request was one batched PUB.
    assert execution.batches < execution.evaluations
    # The sampled estimate agrees with the exact value within shot noise (4000 shots).
    per_edge = execution.metrics["expected_cut"] / len(graph.edges)
    assert per_edge == pytest.approx(FARHI_OPTIMUM, abs=0.02)


def test_fixed_parameters_skip_optimisation(graph, aer) -> None:
    workload = build_workload(QaoaMaxcutFamily(reps=1), graph)
    spec = _spec(parameters=[0.6155, 0.3927])
    execution = optimise_and_measure(workload, aer, optimiser=spec.optimiser,
                                     fixed=spec.parameters, shots=spec.shots, optimiser_seed=3,
                                     simulator_seed=4)
    assert execution.history == () and execution.evaluations == 0
    assert execution.parameters == (0.6155, 0.3927)


def test_same_seed_same_counts(graph, aer) -> None:
    workload = build_workload(QaoaMaxcutFamily(reps=1), graph)
    point = workload.circuit_points(np.array([0.5, 0.3]))
    first = aer.sample(workload.measured, point, shots=2000, seed=99)[0]
    second = open_executor("aer", Settings(), transpiler_seed=0).sample(
        workload.measured, point, shots=2000, seed=99)[0]
    other = aer.sample(workload.measured, point, shots=2000, seed=100)[0]
    assert first == second
    assert first != other


def plain_cut(edges: tuple[tuple[int, int, float], ...], bits: tuple[int, ...]) -> float:
    """The cut weight, straight from its definition (independent of the code under test)."""
    return sum(w for i, j, w in edges if bits[i] != bits[j])


def test_analysis_of_known_counts(graph) -> None:
    # The maximum cut by plain enumeration, and an optimal assignment as a bitstring.
    best = max(itertools.product((0, 1), repeat=graph.num_nodes),
               key=lambda bits: plain_cut(graph.edges, bits))
    optimum = plain_cut(graph.edges, best)
    assert optimum == 13  # a 3-regular triangle-free graph on 10 nodes: 15 edges, 2 uncut
    assert brute_force_maxcut(graph)[0] == optimum
    workload = build_workload(QaoaMaxcutFamily(reps=1), graph)
    key = "".join(str(b) for b in reversed(best))  # qubit 0 is the rightmost character
    counts = {key: 3, "0" * 10: 1}
    estimates = workload.sampled_estimates(counts)
    assert estimates is not None
    metrics = workload.analyse(counts, estimates)
    assert metrics["max_cut"] == optimum
    assert metrics["expected_cut"] == pytest.approx((3 * optimum + 0) / 4)
    assert metrics["optimum_probability"] == pytest.approx(0.75)


def test_bundled_instance_is_triangle_free_3_regular(repo: Path) -> None:
    graph = load_instance(repo / "data" / "maxcut_3reg_10.json")
    degree = np.count_nonzero(graph.weights, axis=1)
    assert graph.num_nodes == 10 and set(degree) == {3}
    assert graph.provenance["triangle_free"] is True


def test_empty_results_are_post_processing_errors(graph) -> None:
    from qhybrid.core import PostProcessingError, VqeFamily
    from qhybrid.experiments import h2_hamiltonian

    with pytest.raises(PostProcessingError):
        build_workload(QaoaMaxcutFamily(reps=1), graph).analyse({}, {})
    with pytest.raises(PostProcessingError, match="not finite"):
        build_workload(VqeFamily(), h2_hamiltonian()).analyse(
            {"00": 1}, {"energy": Estimate(float("nan"))})
    with pytest.raises(PostProcessingError, match="'energy' is missing"):
        build_workload(VqeFamily(), h2_hamiltonian()).analyse({"00": 1}, {})
