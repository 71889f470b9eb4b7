"""A 1,000-point parameter sweep of the bundled QAOA workload on ideal Aer.

Both benchmarks share the group ``sweep-1000``: one batched estimate (a single PUB holding a
(1000, 2) array of points) against 1,000 estimate calls of one point each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends import AerBackend
from qhybrid.core import QaoaMaxcutFamily, parse_backend_name
from qhybrid.experiments import Workload, build_workload, load_instance

POINTS = 1000
SEED = 12
GROUP = "sweep-1000"


@pytest.fixture(scope="module")
def workload(project_root: Path) -> Workload:
    instance = load_instance(project_root / "data" / "maxcut_3reg_10.json")
    return build_workload(QaoaMaxcutFamily(reps=1), instance)


@pytest.fixture(scope="module")
def points(workload: Workload) -> np.ndarray:
    """A 40 x 25 grid over the family's bounds (gamma in [0, pi], beta in [0, pi/2]),
    in circuit parameter order, shape (1000, 2)."""
    (g_lo, g_hi), (b_lo, b_hi) = workload.bounds
    gammas, betas = np.meshgrid(np.linspace(g_lo, g_hi, 40), np.linspace(b_lo, b_hi, 25),
                                indexing="ij")
    family_order = np.column_stack([gammas.ravel(), betas.ravel()])
    assert family_order.shape == (POINTS, 2)
    return workload.circuit_points(family_order)


@pytest.fixture(scope="module")
def backend(workload: Workload) -> AerBackend:
    """Ideal Aer with the ansatz already transpiled, so neither variant pays for it."""
    aer = AerBackend(parse_backend_name("aer"))
    aer.prepare(workload.ansatz)
    return aer


@pytest.fixture(scope="module")
def reference(workload: Workload, backend: AerBackend, points: np.ndarray) -> np.ndarray:
    return backend.estimate(workload.ansatz, workload.observable, points, seed=SEED)


def _batched(backend: AerBackend, workload: Workload, points: np.ndarray) -> np.ndarray:
    return backend.estimate(workload.ansatz, workload.observable, points, seed=SEED)


def _per_point(backend: AerBackend, workload: Workload, points: np.ndarray) -> np.ndarray:
    return np.concatenate([
        backend.estimate(workload.ansatz, workload.observable, point[None, :], seed=SEED)
        for point in points
    ])


@pytest.mark.benchmark(group=GROUP)
def test_sweep_batched_one_pub(benchmark, backend, workload, points, reference):
    values = benchmark.pedantic(_batched, args=(backend, workload, points),
                                rounds=3, iterations=1, warmup_rounds=0)
    benchmark.extra_info |= {"points": POINTS, "estimate_calls": 1}
    assert values.shape == (POINTS,)
    np.testing.assert_allclose(values, reference)


@pytest.mark.benchmark(group=GROUP)
def test_sweep_per_point_1000_calls(benchmark, backend, workload, points, reference):
    values = benchmark.pedantic(_per_point, args=(backend, workload, points),
                                rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info |= {"points": POINTS, "estimate_calls": POINTS}
    assert values.shape == (POINTS,)
    assert np.allclose(values, reference), "per-point values differ from the batched sweep"
    # The expected cut of a 10-node 3-regular graph (15 edges) lies in [0, 15].
    assert 0.0 <= values.min() and values.max() <= 15.0
