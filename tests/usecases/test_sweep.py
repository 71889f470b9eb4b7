"""Parameter sweeps through the use case alone: every value against a statevector computed
here, the points against numpy, the Parquet file's shape, and a canary that stops a sweep."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from qiskit.quantum_info import Statevector

import qhybrid_usecases as usecases
from qhybrid.core import (
    ExecutionError,
    ExperimentSpec,
    PostProcessingError,
    QaoaMaxcutFamily,
    RunOptions,
    Settings,
    SpecError,
    spec_from_mapping,
)
from qhybrid.experiments import Workload, build_workload, load_instance
from qhybrid_usecases import Services

DATASET = "data/maxcut_3reg_6.json"
GAMMA = {"start": 0.1, "stop": 2.9, "num": 5}
BETA = {"start": -0.4, "stop": 1.2, "num": 4}


def _spec(points: dict[str, object], **sweep: object) -> ExperimentSpec:
    return spec_from_mapping({
        "name": "qaoa-sweep-test", "version": "1.0.0", "family": {"kind": "qaoa-maxcut"},
        "dataset": {"path": DATASET}, "sweep": {"points": points, **sweep}})


def _grid(**sweep: object) -> ExperimentSpec:
    return _spec({"kind": "grid", "grid": {"gamma[0]": GAMMA, "beta[0]": BETA}}, **sweep)


@pytest.fixture(scope="module")
def workload(repo: Path) -> Workload:
    return build_workload(QaoaMaxcutFamily(), load_instance(repo / DATASET))


def _sweep(spec: ExperimentSpec, settings: Settings, out: Path,
           options: RunOptions | None = None) -> tuple[usecases.SweepOutcome, pa.Table, Services]:
    services = Services.open(settings)
    run = usecases.open_run(spec, options or RunOptions(), services, kind="run",
                            flow_run_id=None)
    outcome = usecases.sweep_points(run, services, out)
    return outcome, pq.read_table(out), services


def _reference(workload: Workload, gamma: float, beta: float) -> dict[str, float]:
    """Each named observable's exact expectation, from a statevector computed here (the
    parameters bound by their names in the circuit: qaoa_ansatz calls them γ[0] and β[0])."""
    values = {"γ[0]": gamma, "β[0]": beta}
    bound = workload.ansatz.assign_parameters(
        {p: values[p.name] for p in workload.ansatz.parameters})
    state = Statevector(bound)
    return {name: float(state.expectation_value(op).real)
            for name, op in workload.observables.items()}


def test_a_grid_gives_exact_values_at_the_linspace_points_in_order(
        settings: Settings, workload: Workload, tmp_path: Path) -> None:
    outcome, table, _ = _sweep(_grid(chunk_size=6, canary=3), settings, tmp_path / "grid.parquet")

    gammas, betas = np.meshgrid(np.linspace(**GAMMA), np.linspace(**BETA), indexing="ij")
    assert table.num_rows == 20 == outcome.points
    assert table.column("point").to_pylist() == list(range(20))
    assert table.column("gamma[0]").to_pylist() == gammas.ravel().tolist()
    assert table.column("beta[0]").to_pylist() == betas.ravel().tolist()
    assert table.column_names == [
        "point", "gamma[0]", "beta[0]", "expected_cut", "expected_cut.stderr",
        "optimum_probability", "optimum_probability.stderr", "chunk", "backend"]
    # Canary of 3, then chunks of 6: 3 + 6 + 6 + 5.
    assert table.column("chunk").to_pylist() == [0] * 3 + [1] * 6 + [2] * 6 + [3] * 5
    assert pq.ParquetFile(tmp_path / "grid.parquet").metadata.num_row_groups == 4
    assert set(table.column("backend").to_pylist()) == {"aer"}
    for row in table.to_pylist()[::3]:
        expected = _reference(workload, row["gamma[0]"], row["beta[0]"])
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, abs=1e-10)
            assert row[f"{name}.stderr"] == 0.0


def test_random_points_are_reproducible_from_the_seed_and_inside_the_bounds(
        settings: Settings, workload: Workload, tmp_path: Path) -> None:
    spec = _spec({"kind": "random", "count": 40, "seed": 5}, chunk_size=7, canary=4)
    _, table, _ = _sweep(spec, settings, tmp_path / "a.parquet")
    other = spec.model_copy(update={"sweep": spec.sweep.model_copy(  # type: ignore[union-attr]
        update={"chunk_size": 40, "canary": 1})})
    _, again, _ = _sweep(other, settings, tmp_path / "b.parquet")

    lows, highs = np.array(workload.bounds).T
    expected = np.random.default_rng(5).uniform(lows, highs, size=(40, 2))
    got = np.column_stack([table.column("gamma[0]").to_numpy(),
                           table.column("beta[0]").to_numpy()])
    assert np.array_equal(got, expected)
    assert ((got >= lows) & (got <= highs)).all()
    assert again.drop(["chunk"]).equals(table.drop(["chunk"]))  # chunking changes nothing


def test_a_sweep_of_four_parameters_is_recorded_with_its_plot(settings: Settings,
                                                              tmp_path: Path) -> None:
    # p=2: gamma[0], gamma[1], beta[0], beta[1]; the plot shows the first two, averaged over
    # the others.
    spec = spec_from_mapping({
        "name": "qaoa-sweep-test", "version": "1.0.0",
        "family": {"kind": "qaoa-maxcut", "reps": 2}, "dataset": {"path": DATASET},
        "sweep": {"points": {"kind": "random", "count": 60, "seed": 2}}})
    services = Services.open(settings)
    run = usecases.open_run(spec, RunOptions(), services, kind="run", flow_run_id=None)
    outcome = usecases.sweep_points(run, services, tmp_path / "four.parquet")
    report = usecases.finish_sweep(run, services, outcome)

    assert len(outcome.swept) == 4 and report.points == 60
    artifacts = Path(services.tracker.artifact_uri(run.mlflow_run_id).removeprefix("file://"))
    for name in outcome.observables:
        assert (artifacts / "plots" / f"sweep-{name}.png").stat().st_size > 0


@pytest.fixture
def in_project(repo: Path) -> Iterator[Path]:
    """A folder inside the project (file points are project paths), removed afterwards."""
    folder = repo / "sweeps" / f"test-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    yield folder
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_a_file_of_points_gives_the_values_of_the_same_points_on_a_grid(
        settings: Settings, repo: Path, in_project: Path, tmp_path: Path, suffix: str) -> None:
    _, grid, _ = _sweep(_grid(), settings, tmp_path / "grid.parquet")
    points = np.column_stack([grid.column("gamma[0]").to_numpy(),
                              grid.column("beta[0]").to_numpy()])
    path = in_project / f"points{suffix}"
    if suffix == ".npy":
        np.save(path, points)
    else:  # columns by name, in an order of their own
        pq.write_table(pa.table({"beta[0]": points[:, 1], "gamma[0]": points[:, 0]}), path)
    spec = _spec({"kind": "file", "path": str(path.relative_to(repo))})
    _, table, _ = _sweep(spec, settings, tmp_path / "file.parquet",
                         RunOptions(allow_unpinned_data=True))

    assert table.drop(["chunk"]).equals(grid.drop(["chunk"]))


def test_a_failing_canary_stops_the_sweep_and_submits_nothing_more(
        configure, tmp_path: Path) -> None:
    healthy_settings = configure()
    _, _, healthy = _sweep(_grid(chunk_size=5, canary=2), healthy_settings,
                           tmp_path / "ok.parquet")
    assert healthy.log.record().provider_submissions == 5  # canary, then 4 chunks

    # A state store of its own: the ledger would hand back the healthy sweep's results.
    faulty = configure(faults="execution=1,seed=3", state_url=f"sqlite:///{tmp_path}/faulty.db")
    services = Services.open(faulty)
    run = usecases.open_run(_grid(chunk_size=5, canary=2), RunOptions(), services, kind="run",
                            flow_run_id=None)
    with pytest.raises(ExecutionError, match="sweep canary failed, nothing more submitted"):
        usecases.sweep_points(run, services, tmp_path / "failed.parquet")
    assert services.log.record().provider_submissions == 1
    assert pq.read_table(tmp_path / "failed.parquet").num_rows == 0  # a valid, empty file


def test_the_canary_refuses_values_that_cannot_be_right() -> None:
    points = np.zeros((3, 2))
    zeros = {"cut": np.zeros(3)}
    with pytest.raises(PostProcessingError, match="cut is not finite"):
        usecases.check_canary({"cut": np.array([1.0, np.nan, 2.0])}, zeros, {"cut": 9.0}, points)
    with pytest.raises(PostProcessingError, match="outside its spectral bound"):
        usecases.check_canary({"cut": np.array([1.0, 9.5, 2.0])}, zeros, {"cut": 9.0}, points)
    usecases.check_canary({"cut": np.array([-9.0, 9.0, 0.0])}, zeros, {"cut": 9.0}, points)


@pytest.mark.parametrize(("points", "field"), [
    ({"kind": "grid", "grid": {"gamma[1]": GAMMA, "beta[0]": BETA}}, "sweep.points.grid.gamma[1]"),
    ({"kind": "grid", "grid": {"beta[0]": BETA}}, "sweep.points.grid"),
])
def test_points_that_do_not_fit_the_family_name_the_field(
        settings: Settings, points: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        usecases.preflight(_spec(points), settings, RunOptions(), kind="sweep")
    assert info.value.field == field


def test_an_unswept_parameter_takes_its_fixed_value(settings: Settings, workload: Workload,
                                                    tmp_path: Path) -> None:
    spec = spec_from_mapping({**_grid().model_dump(mode="json"), "parameters": [0.7, 0.3],
                              "sweep": {"points": {"kind": "grid", "grid": {"beta[0]": BETA}}}})
    _, table, _ = _sweep(spec, settings, tmp_path / "one.parquet")
    assert table.column("gamma[0]").to_pylist() == [0.7] * 4
    row = table.to_pylist()[2]
    assert row["expected_cut"] == pytest.approx(
        _reference(workload, 0.7, row["beta[0]"])["expected_cut"], abs=1e-10)


def test_the_chunk_size_is_chosen_from_the_row_limit_and_the_memory_budget() -> None:
    by_rows = usecases.choose_chunk_size(None, num_qubits=6, observables=2, max_rows=10_000,
                                         memory_bytes=2**30, count=10**6)
    assert by_rows.size == 5_000 and "row limit binds" in by_rows.reason
    # 20 qubits: 2^20 * 16 B = 16 MiB per point, so 256 MiB holds 16 points.
    by_memory = usecases.choose_chunk_size(None, num_qubits=20, observables=2, max_rows=10_000,
                                           memory_bytes=256 * 2**20, count=10**6)
    assert by_memory.size == 16 and "memory budget binds" in by_memory.reason
    given = usecases.choose_chunk_size(300, num_qubits=6, observables=2, max_rows=10_000,
                                       memory_bytes=2**30, count=10**6)
    assert given.size == 300 and "given" in given.reason
