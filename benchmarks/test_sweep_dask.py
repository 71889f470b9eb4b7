"""An 8,000-point sweep of a 12-qubit circuit on ideal Aer through the flow ``sweep-experiment``,
side by side (group ``sweep-dask``): its chunks evaluated in the flow's process
(``QHYBRID_SWEEP_RUNNER=serial``), on a local Dask cluster of 2 worker processes that the flow
starts and closes (what ``qhybrid sweep --runner dask --workers 2`` does), and on a running
cluster of 2 worker processes (``QHYBRID_DASK_ADDRESS``, started and warmed up untimed).

The circuit (written to a throwaway project's ``data/``) is 12 qubits: RY layer, CX ladder, RZ
layer, CX ladder back, RX layer, over 4 parameters; two observables (mean nearest-neighbour ZZ,
11 terms; mean X, 12 terms). 8,000 random points in chunks of 1,000 after a 50-point canary: 9
chunks, 9 provider submissions (a chunk costs about 2 s of Aer, well above the cost of its task
runs). A smoke run (``--benchmark-disable``) sweeps 200 points in
chunks of 50 after a canary of 10.

Every round is on fresh records (MLflow, state store) with its own simulator seed, so no chunk
re-attaches to an earlier round's job (checked: one provider submission per chunk, none
re-attached); the values are exact, so the seed does not change them. Checked each round: every
row in point order, values equal to a statevector computed here at some points (1e-10), and
the Dask variants' values bit for bit those of the serial sweep.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from qiskit.qasm3 import loads
from qiskit.quantum_info import SparsePauliOp, Statevector

from qhybrid.core import ExperimentSpec, RunOptions, Settings, SweepReport, spec_from_mapping
from registry import Tracker

QUBITS = 12
POINTS, CHUNK, CANARY = 8000, 1000, 50
SMOKE = (200, 50, 10)
GROUP = "sweep-dask"
OBSERVABLES = {
    "zz": [["I" * (QUBITS - i - 2) + "ZZ" + "I" * i, 1 / (QUBITS - 1)] for i in range(QUBITS - 1)],
    "x": [["I" * (QUBITS - i - 1) + "X" + "I" * i, 1 / QUBITS] for i in range(QUBITS)],
}
_SEEDS = itertools.count(100)  # a simulator seed per round, across the three benchmarks
_TABLES: dict[str, pa.Table] = {}  # the last round's file of each variant


def _qasm() -> str:
    gates = [f"ry({'a' if i % 2 == 0 else 'b'}) q[{i}];" for i in range(QUBITS)]
    gates += [f"cx q[{i}], q[{i + 1}];" for i in range(QUBITS - 1)]
    gates += [f"rz(c) q[{i}];" for i in range(QUBITS)]
    gates += [f"cx q[{i}], q[{i - 1}];" for i in range(QUBITS - 1, 0, -1)]
    gates += [f"rx(d) q[{i}];" for i in range(QUBITS)]
    return "\n".join(["OPENQASM 3.0;", 'include "stdgates.inc";',
                      *(f"input float[64] {p};" for p in "abcd"), f"qubit[{QUBITS}] q;",
                      *gates]) + "\n"


@pytest.fixture(scope="module")
def project(project_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway project: the repo's DVC files and the 12-qubit circuit (unpinned)."""
    root = tmp_path_factory.mktemp("sweep-dask-project")
    (root / "data").mkdir()
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        shutil.copy(project_root / name, root / name)
    (root / "data" / "ansatz_12.qasm").write_text(_qasm())
    return root


def _spec(timed: bool) -> ExperimentSpec:
    points, chunk, canary = (POINTS, CHUNK, CANARY) if timed else SMOKE
    return spec_from_mapping({
        "name": "sweep-dask-bench", "version": "1.0.0",
        "family": {"kind": "circuit", "observables": OBSERVABLES, "objective": "zz"},
        "dataset": {"path": "data/ansatz_12.qasm"}, "seeds": {"simulator": next(_SEEDS)},
        "sweep": {"points": {"kind": "random", "count": points, "seed": 4},
                  "chunk_size": chunk, "canary": canary}})


@pytest.fixture
def sweep_rounds(fresh_records: Callable[[], Settings], project: Path, timed: bool,
                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 ) -> Callable[..., tuple[Callable[[], object], list[tuple[Path, Settings]]]]:
    """``sweep_rounds(QHYBRID_X=value, ...)``: a pedantic ``setup`` that points ``QHYBRID_*``
    at fresh records in the project with those settings, and the list of (file, settings)
    of each round."""

    def make(**variables: str) -> tuple[Callable[[], object], list[tuple[Path, Settings]]]:
        done: list[tuple[Path, Settings]] = []

        def setup() -> tuple[tuple[object, ...], dict[str, object]]:
            fresh_records()
            monkeypatch.setenv("QHYBRID_PROJECT_ROOT", str(project))
            for key, value in variables.items():
                monkeypatch.setenv(key, value)
            done.append((tmp_path / f"sweep-{len(done)}.parquet", Settings()))
            return (_spec(timed), RunOptions(allow_unpinned_data=True), str(done[-1][0])), {}

        return setup, done

    return make


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def _run(benchmark, setup: Callable[[], object]) -> SweepReport:
    from flows import sweep_experiment

    before = _load()
    report = benchmark.pedantic(sweep_experiment, setup=setup, rounds=3, iterations=1,
                                warmup_rounds=1)
    benchmark.extra_info |= {"load_average_1min_before": before,
                             "load_average_1min_after": _load()}
    assert isinstance(report, SweepReport)
    return report


def _check(name: str, report: SweepReport, rounds: list[tuple[Path, Settings]],
           project: Path, benchmark) -> None:
    path, _settings = rounds[-1]
    table = pq.read_table(path)
    benchmark.extra_info |= {"points": report.points, "chunks": report.chunks,
                             "rounds_with_warmup": len(rounds)}
    assert table.num_rows == report.points
    assert table.column("point").to_pylist() == list(range(report.points))
    # Every round of every variant evaluated every chunk: one submission each, no re-attachment.
    for _path, round_settings in rounds:
        tracker = Tracker.for_settings(round_settings)
        [run] = tracker.client.search_runs([tracker.experiment_id])
        execution = json.loads(tracker.read_text(run.info.run_id, "execution.json") or "")
        assert (execution["provider_submissions"], execution["reattachments"]) == (
            report.chunks, 0)
    # Exact values: a statevector computed here, at some of the points.
    circuit = loads((project / "data" / "ansatz_12.qasm").read_text())
    ops = {n: SparsePauliOp.from_list([(label, c) for label, c in terms])
           for n, terms in OBSERVABLES.items()}
    for row in table.slice(0, report.points).to_pylist()[:: max(1, report.points // 8)]:
        state = Statevector(circuit.assign_parameters(
            {p: row[p.name] for p in circuit.parameters}))
        for n, op in ops.items():
            assert row[n] == pytest.approx(float(state.expectation_value(op).real), abs=1e-10)
            assert row[f"{n}.stderr"] == 0.0
    _TABLES[name] = table.drop(["chunk"]).select(
        ["point", "a", "b", "c", "d", "zz", "zz.stderr", "x", "x.stderr"])
    if name != "serial" and "serial" in _TABLES:
        assert _TABLES[name].equals(_TABLES["serial"]), f"{name} differs from the serial sweep"


@pytest.mark.benchmark(group=GROUP)
def test_sweep_serial_one_process(benchmark, prefect_harness, sweep_rounds, project) -> None:
    setup, rounds = sweep_rounds(QHYBRID_SWEEP_RUNNER="serial")
    _check("serial", _run(benchmark, setup), rounds, project, benchmark)


@pytest.mark.benchmark(group=GROUP)
def test_sweep_dask_local_cluster_2_workers(benchmark, prefect_harness, sweep_rounds,
                                            project) -> None:
    setup, rounds = sweep_rounds(QHYBRID_SWEEP_RUNNER="dask", QHYBRID_DASK_WORKERS="2")
    _check("dask-local", _run(benchmark, setup), rounds, project, benchmark)


@pytest.fixture(scope="module")
def running_cluster(project: Path, qhybrid_env: dict[str, str]) -> Iterator[str]:
    """A local cluster of 2 worker processes (one thread each), running before the benchmark:
    its workers' environment is the session's, in the project (their state store is the
    session's: each round's own seed keeps its keys apart)."""
    from distributed import LocalCluster

    with pytest.MonkeyPatch.context() as env:
        env.setenv("QHYBRID_PROJECT_ROOT", str(project))
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    with cluster:
        yield str(cluster.scheduler_address)


@pytest.mark.benchmark(group=GROUP)
def test_sweep_dask_running_cluster_2_workers(benchmark, prefect_harness, sweep_rounds, project,
                                              running_cluster: str) -> None:
    setup, rounds = sweep_rounds(QHYBRID_SWEEP_RUNNER="dask", QHYBRID_DASK_ADDRESS=running_cluster)
    _check("dask-running", _run(benchmark, setup), rounds, project, benchmark)
    assert np.isfinite(_TABLES["dask-running"].column("zz").to_numpy()).all()
