"""A 1,000-point parameter sweep of the bundled QAOA workload on ideal Aer.

Two groups. ``sweep-usecase-1000`` (at the end): the sweep use case against raw Aer. The
first two benchmarks share the group ``sweep-1000``: one batched estimate (a single PUB
holding a (1000, 2) array of points) against 1,000 estimate calls of one point each. A smoke run
(``--benchmark-disable``) sweeps a 10 x 10 grid instead (100 points), with the same checks.

Both go through the executor the domain uses (``open_executor("aer", ...)``: idempotency key,
in-memory state store, local job, result read back). Every round opens a fresh executor, so
its store is empty and every submission executes; nothing re-attaches to an earlier round.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from qiskit import transpile
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

import qhybrid_usecases as usecases
from backends import BackendExecutor, open_executor
from qhybrid.core import ExperimentSpec, QaoaMaxcutFamily, RunOptions, Settings, spec_from_mapping
from qhybrid.experiments import Workload, build_workload, load_instance
from qhybrid_usecases import Services

GRID = (40, 25)  # gamma x beta: 1,000 points when timing
SMOKE_GRID = (10, 10)  # 100 points in a --benchmark-disable smoke run
SEED = 12
TRANSPILER_SEED = 0
GROUP = "sweep-1000"


@pytest.fixture(scope="module")
def workload(project_root: Path) -> Workload:
    instance = load_instance(project_root / "data" / "maxcut_3reg_10.json")
    return build_workload(QaoaMaxcutFamily(reps=1), instance)


@pytest.fixture(scope="module")
def points(workload: Workload, timed: bool) -> np.ndarray:
    """A 40 x 25 grid over the family's bounds (gamma in [0, pi], beta in [0, pi/2]),
    in circuit parameter order, shape (1000, 2); no two points are equal. 10 x 10 in a smoke
    run."""
    n_gamma, n_beta = GRID if timed else SMOKE_GRID
    (g_lo, g_hi), (b_lo, b_hi) = workload.bounds
    gammas, betas = np.meshgrid(np.linspace(g_lo, g_hi, n_gamma),
                                np.linspace(b_lo, b_hi, n_beta), indexing="ij")
    family_order = np.column_stack([gammas.ravel(), betas.ravel()])
    assert family_order.shape == (n_gamma * n_beta, 2)
    assert len(np.unique(family_order, axis=0)) == n_gamma * n_beta
    return workload.circuit_points(family_order)


def fresh_executor(settings: Settings, workload: Workload) -> BackendExecutor:
    """Ideal Aer behind a new executor (empty in-memory store), with the ansatz already
    transpiled, so the timed part pays neither for opening it nor for transpiling."""
    executor = open_executor("aer", settings, transpiler_seed=TRANSPILER_SEED)
    executor.submitter.backend.engine.prepare(workload.ansatz)
    return executor


@pytest.fixture(scope="module")
def reference(tmp_settings: Settings, workload: Workload, points: np.ndarray) -> np.ndarray:
    executor = fresh_executor(tmp_settings, workload)
    return executor.estimate(workload.ansatz, workload.observable, points, seed=SEED)


def _batched(executor: BackendExecutor, workload: Workload, points: np.ndarray) -> np.ndarray:
    return executor.estimate(workload.ansatz, workload.observable, points, seed=SEED)


def _per_point(executor: BackendExecutor, workload: Workload, points: np.ndarray) -> np.ndarray:
    return np.concatenate([
        executor.estimate(workload.ansatz, workload.observable, point[None, :], seed=SEED)
        for point in points
    ])


def _rounds(settings: Settings, workload: Workload, points: np.ndarray,
            opened: list[BackendExecutor]):
    """A pedantic ``setup``: a fresh executor per round (kept in ``opened`` for the checks)."""
    def setup():
        opened.append(fresh_executor(settings, workload))
        return (opened[-1], workload, points), {}
    return setup


@pytest.mark.benchmark(group=GROUP)
def test_sweep_batched_one_pub(benchmark, tmp_settings, workload, points, reference):
    opened: list[BackendExecutor] = []
    values = benchmark.pedantic(_batched, setup=_rounds(tmp_settings, workload, points, opened),
                                rounds=3, iterations=1, warmup_rounds=0)
    log = opened[-1].submitter.log
    benchmark.extra_info |= {"points": len(points), "estimate_calls": 1,
                             "provider_submissions": log.provider_submissions}
    assert values.shape == (len(points),)
    np.testing.assert_allclose(values, reference)
    assert all(e.submitter.log.provider_submissions == 1 for e in opened)
    assert all(e.submitter.log.reattachments == 0 for e in opened)


@pytest.mark.benchmark(group=GROUP)
def test_sweep_per_point_1000_calls(benchmark, tmp_settings, workload, points, reference):
    opened: list[BackendExecutor] = []
    values = benchmark.pedantic(_per_point, setup=_rounds(tmp_settings, workload, points, opened),
                                rounds=1, iterations=1, warmup_rounds=0)
    log = opened[-1].submitter.log
    benchmark.extra_info |= {"points": len(points), "estimate_calls": len(points),
                             "provider_submissions": log.provider_submissions}
    assert values.shape == (len(points),)
    assert np.allclose(values, reference), "per-point values differ from the batched sweep"
    # Every call executed: one provider job per point, none re-attached.
    assert log.provider_submissions == len(points) and log.reattachments == 0
    # The expected cut of a 10-node 3-regular graph (15 edges) lies in [0, 15].
    assert values.min() >= 0.0 and values.max() <= 15.0


# --- The sweep use case against raw Aer (group ``sweep-usecase-1000``) -----------------------
#
# The same 1,000 points (the 40 x 25 grid above; 10 x 10 in a smoke run) and both named
# observables of the workload (expected cut, optimum projector), exact (precision 0):
# ``qhybrid_usecases.sweep_points`` (point generation, canary of 64, then one submission of the
# rest through the executor with its idempotency key and SQLite state store, rows streamed to
# Parquet) against one ``qiskit_aer.primitives.EstimatorV2.run`` call with one PUB (the
# observables broadcast against the points) on the ansatz transpiled in the untimed setup.

USECASE_GROUP = "sweep-usecase-1000"


def _sweep_spec(timed: bool) -> ExperimentSpec:
    n_gamma, n_beta = GRID if timed else SMOKE_GRID
    return spec_from_mapping({
        "name": "sweep-bench", "version": "1.0.0", "family": {"kind": "qaoa-maxcut", "reps": 1},
        "dataset": {"path": "data/maxcut_3reg_10.json"}, "seeds": {"simulator": SEED},
        "sweep": {"points": {"kind": "grid", "grid": {
            "gamma[0]": {"start": 0.0, "stop": float(np.pi), "num": n_gamma},
            "beta[0]": {"start": 0.0, "stop": float(np.pi / 2), "num": n_beta}}}}})


@pytest.fixture(scope="module")
def raw_reference(workload: Workload, points: np.ndarray) -> np.ndarray:
    """Every named observable at every point (observable x point), from raw Aer."""
    return _raw_run(*_raw_setup(workload, points)[0])


def _raw_setup(workload: Workload, points: np.ndarray):
    isa = transpile(workload.ansatz, AerSimulator(), optimization_level=0)
    # Shape (observables, 1): broadcast against the (points,) parameter values.
    observables = [[op.apply_layout(isa.layout) if isa.layout else op]
                   for op in workload.observables.values()]
    estimator = AerEstimatorV2(options={"run_options": {"seed_simulator": SEED}})
    return (estimator, isa, observables, points), {}


def _raw_run(estimator, isa, observables, points) -> np.ndarray:
    result = estimator.run([(isa, observables, points)], precision=0.0).result()
    return np.asarray(result[0].data.evs, dtype=float)


@pytest.mark.benchmark(group=USECASE_GROUP)
def test_sweep_raw_aer_estimator_one_pub(benchmark, workload, points, raw_reference):
    values = benchmark.pedantic(_raw_run, setup=lambda: _raw_setup(workload, points),
                                rounds=3, iterations=1, warmup_rounds=0)
    benchmark.extra_info |= {"points": len(points), "observables": len(workload.observables)}
    assert values.shape == (len(workload.observables), len(points))
    np.testing.assert_allclose(values, raw_reference, atol=1e-10)


@pytest.mark.benchmark(group=USECASE_GROUP)
def test_sweep_usecase(benchmark, fresh_records, timed, workload, raw_reference, tmp_path):
    spec = _sweep_spec(timed)
    outputs: list[tuple[Path, Services]] = []

    def setup():
        # New records (MLflow, state store) each round: no submission re-attaches.
        services = Services.open(fresh_records())
        run = usecases.open_run(spec, RunOptions(), services, kind="run", flow_run_id=None)
        outputs.append((tmp_path / f"sweep-{len(outputs)}.parquet", services))
        return (run, services, outputs[-1][0]), {}

    outcome = benchmark.pedantic(usecases.sweep_points, setup=setup, rounds=3, iterations=1,
                                 warmup_rounds=0)
    path, services = outputs[-1]
    benchmark.extra_info |= {"points": outcome.points, "chunks": outcome.chunks,
                             "provider_submissions": services.log.record().provider_submissions}
    table = pq.read_table(path)
    assert table.num_rows == outcome.points == raw_reference.shape[1]
    got = np.array([table.column(name).to_numpy() for name in workload.observables])
    np.testing.assert_allclose(got, raw_reference, atol=1e-10)
    assert services.log.record().provider_submissions == outcome.chunks == 2
