"""The circulant graph C12(1,6) of the sweep benchmarks: its edges, and its QAOA p=1 value
against Farhi et al.'s closed form for triangle-free 3-regular graphs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from qiskit import qasm3

from backends import open_executor
from qhybrid.core import QaoaMaxcutFamily, Settings, load_spec
from qhybrid.experiments import build_workload, circulant_graph, load_instance, qaoa_circuit
from tests.experiments.test_qaoa import farhi_cut_fraction


def test_c12_1_6_is_3_regular_with_18_edges() -> None:
    graph = circulant_graph(12, (1, 6))
    pairs = {(i, j) for i, j, _ in graph.edges}
    assert len(pairs) == 18 and all(w == 1.0 for *_, w in graph.edges)
    assert pairs == ({(i, i + 1) for i in range(11)} | {(0, 11)}
                     | {(i, i + 6) for i in range(6)})
    degrees = Counter(v for i, j in pairs for v in (i, j))
    assert set(degrees.values()) == {3} and len(degrees) == 12


@pytest.mark.parametrize("offsets", [(), (0,), (7,), (1, 13)])
def test_offsets_outside_one_to_half_the_nodes_are_refused(offsets: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"offsets must lie in 1\.\.6"):
        circulant_graph(12, offsets)


def test_the_pinned_file_is_the_generated_graph(repo: Path) -> None:
    path = repo / "data" / "maxcut_c12_1_6.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `dvc repro maxcut-c12-1-6` (or `make data`)")
    assert load_instance(path) == circulant_graph(12, (1, 6))
    assert json.loads(path.read_text())["provenance"] == {"generator": "circulant",
                                                          "offsets": [1, 6]}


def test_qaoa_p1_on_c12_matches_the_triangle_free_closed_form() -> None:
    # No three of the steps +-1, +-6 sum to 0 mod 12: the graph has no triangle.
    workload = build_workload(QaoaMaxcutFamily(reps=1), circulant_graph(12, (1, 6)))
    aer = open_executor("aer", Settings(), transpiler_seed=0)
    gamma, beta = 0.6155, np.pi / 8
    value = aer.estimate(workload.ansatz, workload.observable,
                         workload.circuit_points(np.array([[gamma, beta]])), seed=1)[0]
    assert value == pytest.approx(18 * farhi_cut_fraction(gamma, beta), abs=1e-9)


def test_the_qaoa_circuit_file_gives_the_family_s_expected_cut(repo: Path) -> None:
    graph = circulant_graph(12, (1, 6))
    family = build_workload(QaoaMaxcutFamily(reps=2), graph)
    spec = load_spec(repo / "specs" / "qaoa-c12-sweep.yaml")
    path = repo / "data" / "qaoa_c12_1_6_p2.qasm"
    assert path.read_text() == qasm3.dumps(qaoa_circuit(graph, 2))  # the stage's output
    circuit = build_workload(spec.family, load_instance(path))
    assert circuit.parameter_names == ("beta_0", "beta_1", "gamma_0", "gamma_1")
    assert circuit.observables["expected_cut"].simplify() == \
        family.observables["expected_cut"].simplify()
    rng = np.random.default_rng(5)
    gammas, betas = rng.uniform(0, np.pi, (8, 2)), rng.uniform(0, np.pi / 2, (8, 2))
    aer = open_executor("aer", Settings(), transpiler_seed=0)
    expected = aer.estimate(family.ansatz, family.observables["expected_cut"],
                            family.circuit_points(np.hstack([gammas, betas])), seed=1)
    got = aer.estimate(circuit.ansatz, circuit.observables["expected_cut"],
                       circuit.circuit_points(np.hstack([betas, gammas])), seed=1)
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert np.ptp(got) > 1  # the points differ enough for a wrong circuit to show
