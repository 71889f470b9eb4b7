"""Exact metrics on the ideal simulator, sampled ones with honest standard errors.

The references are computed here, independently of the code under test: a numpy statevector
of QAOA (|+>^n, the cost phase exp(-i gamma C) on the diagonal, exp(-i beta X) on every qubit),
never qiskit's ``qaoa_ansatz``, and plain sample statistics of the counts.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from backends import BackendExecutor, open_executor
from qhybrid.core import HardwareGateSpec, QaoaMaxcutFamily, Settings
from qhybrid.experiments import (
    Estimate,
    GraphInstance,
    Workload,
    build_workload,
    hardware_verdict,
    load_instance,
    measure,
    random_regular_graph,
    stderr_of,
)

# Published fixed angles for 3-regular graphs, in this repository's convention (cost layer
# exp(-i gamma C), mixer exp(-i beta sum X), docs/gates.md "QAOA conventions"):
# p=1 gamma = arctan(1/sqrt 2), beta = pi/8 (Farhi, Goldstone & Gutmann 2014);
# p=2 from Wurtz & Lykov (2021).
P1 = ((0.6155,), (np.pi / 8,))
P2 = ((0.4882, 0.8977), (0.5550, 0.2921))


def statevector_reference(
    graph: GraphInstance, gammas: tuple[float, ...], betas: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The QAOA state's outcome probabilities and each outcome's cut (qubit i = bit i)."""
    n = graph.num_nodes
    bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    cut = np.zeros(2**n)
    for i, j, w in graph.edges:
        cut += w * (bits[:, i] != bits[:, j])
    psi = np.full(2**n, 2 ** (-n / 2), dtype=complex)
    for gamma, beta in zip(gammas, betas, strict=True):
        psi = psi * np.exp(-1j * gamma * cut)
        c, s = np.cos(beta), np.sin(beta)
        for q in range(n):  # exp(-i beta X_q) = cos(beta) I - i sin(beta) X_q
            t = psi.reshape(2 ** (n - q - 1), 2, 2**q)
            psi = np.stack([c * t[:, 0] - 1j * s * t[:, 1], c * t[:, 1] - 1j * s * t[:, 0]],
                           axis=1).reshape(-1)
    return np.abs(psi) ** 2, cut


def networkx_graph(nodes: int, seed: int) -> GraphInstance:
    g = nx.random_regular_graph(3, nodes, seed=seed)
    return GraphInstance(num_nodes=nodes, edges=tuple((int(i), int(j), 1.0) for i, j in g.edges))


@pytest.fixture(scope="module")
def aer() -> BackendExecutor:
    return open_executor("aer", Settings(), transpiler_seed=0)


@pytest.fixture(scope="module")
def graphs(repo: Path) -> dict[str, GraphInstance]:
    return {
        "bundled-6": load_instance(repo / "data" / "maxcut_3reg_6.json"),
        "bundled-10": load_instance(repo / "data" / "maxcut_3reg_10.json"),
        "networkx-8": networkx_graph(8, 11),
        "networkx-12-weighted": GraphInstance(num_nodes=12, edges=tuple(
            (int(i), int(j), 0.5 + k / 10) for k, (i, j) in
            enumerate(nx.random_regular_graph(3, 12, seed=5).edges))),
    }


def test_reference_reproduces_the_published_values() -> None:
    # On the Heawood graph (3-regular, girth 6) every edge sees a tree to depth 2, so the cut
    # fraction is the published one: 0.6925 at p=1, 0.7559 at p=2. This pins the angle
    # convention of the reference (swapping gamma and beta, or halving them, misses).
    g = nx.heawood_graph()
    heawood = GraphInstance(num_nodes=14, edges=tuple((i, j, 1.0) for i, j in g.edges))
    for (gammas, betas), published in ((P1, 0.6925), (P2, 0.7559)):
        probabilities, cut = statevector_reference(heawood, gammas, betas)
        assert probabilities @ cut / 21 == pytest.approx(published, abs=1e-4)


@pytest.mark.parametrize("angles", [P1, P2], ids=["p1", "p2"])
@pytest.mark.parametrize("name", ["bundled-6", "bundled-10", "networkx-8",
                                  "networkx-12-weighted"])
def test_exact_metrics_match_an_independent_statevector(
    aer: BackendExecutor, graphs: dict[str, GraphInstance], name: str,
    angles: tuple[tuple[float, ...], tuple[float, ...]],
) -> None:
    graph = graphs[name]
    gammas, betas = angles
    workload = build_workload(QaoaMaxcutFamily(reps=len(gammas)), graph)
    trial = measure(workload, aer, gammas + betas, shots=2000, seed=7)
    probabilities, cut = statevector_reference(graph, gammas, betas)
    expected, best = float(probabilities @ cut), float(cut.max())
    optimum = float(probabilities[np.isclose(cut, best)].sum())
    metrics = trial.metrics
    assert metrics["exact"] == 1.0 and metrics["shots"] == 2000
    assert metrics["max_cut"] == pytest.approx(best, abs=1e-12)
    assert metrics["expected_cut"] == pytest.approx(expected, abs=1e-8)
    assert metrics["approximation_ratio"] == pytest.approx(expected / best, abs=1e-8)
    assert metrics["optimum_probability"] == pytest.approx(optimum, abs=1e-8)
    # Beside each exact value, the counts' value and its standard error, consistent with it.
    for key in ("expected_cut", "approximation_ratio", "optimum_probability"):
        assert metrics[f"{key}.stderr"] > 0
        assert abs(metrics[f"{key}.sampled"] - metrics[key]) < 5 * metrics[f"{key}.stderr"]


def test_stderr_is_the_spread_over_seeds(aer: BackendExecutor,
                                         graphs: dict[str, GraphInstance]) -> None:
    """The reported standard error is the true one (from the exact variance of the cut), and
    the sampled value's spread over 200 seeds agrees with it.

    With 200 seeds the spread's relative error is ~5%, so 20% cannot pass by accident when the
    stderr is off by a factor of sqrt(2) or more (a variance for a standard deviation, shots
    counted twice, the standard deviation not divided by sqrt(shots)).
    """
    graph = graphs["bundled-6"]
    gammas, betas = P1
    workload = build_workload(QaoaMaxcutFamily(reps=1), graph)
    shots = 400
    probabilities, cut = statevector_reference(graph, gammas, betas)
    mean = probabilities @ cut
    true_stderr = float(np.sqrt((probabilities @ cut**2 - mean**2) / shots))
    point = workload.circuit_points(np.array(gammas + betas))
    counts = aer.sample(workload.measured, np.repeat(point, 200, axis=0), shots=shots, seed=3)
    sampled, stderrs = [], []
    for row in counts:
        estimate = workload.sampled_estimates(row)
        assert estimate is not None
        sampled.append(estimate["expected_cut"].value)
        stderrs.append(estimate["expected_cut"].stderr)
        assert estimate["expected_cut"].shots == shots
    assert np.mean(stderrs) == pytest.approx(true_stderr, rel=0.05)
    assert np.std(sampled, ddof=1) == pytest.approx(true_stderr, rel=0.2)
    # And measure reports the same kind of number as the metric's stderr.
    trial = measure(workload, aer, gammas + betas, shots=shots, seed=3)
    assert trial.metrics["expected_cut.stderr"] == pytest.approx(true_stderr, rel=0.15)


def test_sampled_metrics_off_the_exact_simulator(repo: Path) -> None:
    """On a noisy backend the metric is the counts' mean, with its sample standard error."""
    graph = random_regular_graph(4, 3, 2, triangle_free=False, weighted=True)
    workload = build_workload(QaoaMaxcutFamily(reps=1), graph)
    noisy = open_executor("aer-noisy:fake_manila", Settings(), transpiler_seed=0)
    trial = measure(workload, noisy, P1[0] + P1[1], shots=1000, seed=5)
    values, weights = [], []
    for key, n in trial.counts.items():
        bits = [int(key[-1 - i]) for i in range(graph.num_nodes)]
        values.append(sum(w for i, j, w in graph.edges if bits[i] != bits[j]))
        weights.append(n)
    values_array = np.repeat(values, weights)
    assert trial.metrics["exact"] == 0.0 and "expected_cut.sampled" not in trial.metrics
    assert trial.metrics["expected_cut"] == pytest.approx(values_array.mean(), abs=1e-12)
    assert trial.metrics["expected_cut.stderr"] == pytest.approx(
        values_array.std(ddof=1) / np.sqrt(1000), rel=1e-9)


def _degradation_case(aer: BackendExecutor, graph: GraphInstance,
                      ) -> tuple[Workload, dict[str, float], dict[str, float]]:
    workload = build_workload(QaoaMaxcutFamily(reps=1), graph)
    ideal = measure(workload, aer, P1[0] + P1[1], shots=500, seed=11).metrics
    # A sampled "hardware" value: the same ideal state, 500 shots, a seed whose sample falls
    # below the exact value (so the raw degradation is positive, but within sampling noise).
    for seed in range(100):
        counts = aer.sample(workload.measured, workload.circuit_points(np.array(P1[0] + P1[1])),
                            shots=500, seed=seed)[0]
        estimates = workload.sampled_estimates(counts)
        assert estimates is not None
        sampled = workload.analyse(counts, estimates)
        loss = ideal["approximation_ratio"] - sampled["approximation_ratio"]
        if 0.5 * sampled["approximation_ratio.stderr"] < loss < sampled[
                "approximation_ratio.stderr"]:
            return workload, ideal, sampled
    raise AssertionError("no seed gave a sample within one stderr below the exact value")


def test_hardware_gate_allows_two_stderr_of_sampling_noise(
    aer: BackendExecutor, graphs: dict[str, GraphInstance],
) -> None:
    workload, ideal, sampled = _degradation_case(aer, graphs["bundled-10"])
    degradation = workload.family.degradation(ideal, sampled)
    # The ideal value is exact: the degradation's error is the sampled ratio's, over the ideal.
    assert degradation.value == pytest.approx(
        1 - sampled["approximation_ratio"] / ideal["approximation_ratio"], abs=1e-12)
    assert degradation.stderr == pytest.approx(
        sampled["approximation_ratio.stderr"] / ideal["approximation_ratio"], rel=1e-9)
    policy = HardwareGateSpec(max_degradation=0.0, max_distance=1.0)
    allowed = hardware_verdict("approximation_ratio", sampled, degradation, 0.0, policy, "b")
    assert allowed.passed
    criterion = allowed.criteria[0]
    assert criterion.name == "degradation (limit + 2 stderr)"
    assert criterion.limit == pytest.approx(2 * degradation.stderr)
    assert allowed.metrics["degradation.stderr"] == degradation.stderr
    # Without the standard error the same shot noise fails the gate.
    strict = hardware_verdict("approximation_ratio", sampled, Estimate(degradation.value), 0.0,
                              policy, "b")
    assert not strict.passed and strict.criteria[0].name == "degradation"
    # And a loss beyond two standard errors still fails.
    beyond = Estimate(3 * degradation.stderr, degradation.stderr, 500)
    assert not hardware_verdict("approximation_ratio", sampled, beyond, 0.0, policy, "b").passed


def test_above_the_projector_limit_the_optimum_probability_is_sampled(
        aer: BackendExecutor) -> None:
    """16 nodes: the expected cut is still exact; the optimum probability is the counts'
    fraction with its binomial standard error, and is not passed off as exact."""
    graph = networkx_graph(16, 3)
    workload = build_workload(QaoaMaxcutFamily(reps=1), graph)
    assert set(workload.observables) == {"expected_cut"}
    trial = measure(workload, aer, P1[0] + P1[1], shots=3000, seed=2)
    probabilities, cut = statevector_reference(graph, *P1)
    metrics = trial.metrics
    assert metrics["expected_cut"] == pytest.approx(float(probabilities @ cut), abs=1e-8)
    best = float(cut.max())
    hits = sum(n for key, n in trial.counts.items()
               if sum(w for i, j, w in graph.edges if key[-1 - i] != key[-1 - j]) == best)
    p = hits / 3000
    assert metrics["optimum_probability"] == pytest.approx(p, abs=1e-12)
    assert metrics["optimum_probability.stderr"] == pytest.approx(np.sqrt(p * (1 - p) / 2999))
    assert "optimum_probability.sampled" not in metrics
    assert stderr_of(metrics, "optimum_probability") > 0
    assert stderr_of(metrics, "expected_cut") == 0.0
