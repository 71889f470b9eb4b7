"""`qhybrid sweep` as users run it: bad sweep sections exit 2 naming the field, and a sweep
runs as a Prefect flow that writes its Parquet file and records it in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from qhybrid.core import Settings, SweepReport
from qhybrid_entrypoints.cli import app
from registry import Tracker

REPO = Path(__file__).resolve().parents[2]


def _spec(tmp_path: Path, sweep: object | None) -> Path:
    data = yaml.safe_load((REPO / "specs" / "qaoa-sweep.yaml").read_text())
    if sweep is None:
        del data["sweep"]
    else:
        data["sweep"] = sweep
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


AXIS = {"start": 0.0, "stop": 1.0, "num": 3}


@pytest.mark.parametrize(("sweep", "field"), [
    ({"points": {"kind": "grid", "grid": {"gamma[0]": {**AXIS, "num": 0}}}},
     "sweep.points.grid.gamma[0].num"),
    ({"points": {"kind": "grid", "grid": {"gamma[0]": AXIS, "delta": AXIS}}},
     "sweep.points.grid.delta"),
    ({"points": {"kind": "grid", "grid": {"beta[0]": AXIS}}}, "sweep.points.grid"),
    ({"points": {"kind": "grid", "grid": {"gamma[0]": {**AXIS, "num": 1001},
                                          "beta[0]": {**AXIS, "num": 1000}}}}, "sweep.points"),
    ({"points": {"kind": "random", "count": 0}}, "sweep.points.count"),
    ({"points": {"kind": "file", "path": "data/points.csv"}}, "sweep.points.path"),
    ({"points": {"kind": "file", "path": "data/no-such-points.npy"}}, "sweep.points.path"),
    ({"points": {"kind": "lattice"}}, "sweep.points"),
    ({"points": {"kind": "random", "count": 5}, "chunk_size": 0}, "sweep.chunk_size"),
    (None, "sweep"),
])
def test_a_bad_sweep_section_exits_2_naming_the_field(
        qhybrid_env: dict[str, str], tmp_path: Path, sweep: object, field: str) -> None:
    result = CliRunner().invoke(app, ["sweep", str(_spec(tmp_path, sweep)), "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["field"] == field
    assert not Path(qhybrid_env["QHYBRID_MLFLOW_TRACKING_URI"].removeprefix(
        "sqlite:///")).exists()  # refused before anything was recorded


def test_a_sweep_runs_as_a_flow_and_is_recorded(prefect_server, qhybrid_env: dict[str, str],
                                                tmp_path: Path) -> None:
    sweep = {"points": {"kind": "grid", "grid": {"gamma[0]": {**AXIS, "num": 4},
                                                 "beta[0]": {**AXIS, "num": 5}}},
             "chunk_size": 8, "canary": 4}
    out = tmp_path / "landscape.parquet"
    result = CliRunner().invoke(app, ["sweep", str(_spec(tmp_path, sweep)), "--json",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output

    report = SweepReport.model_validate_json(result.stdout)
    assert (report.points, report.chunks, report.chunk_size, report.canary_points) == (20, 3, 8, 4)
    assert report.exact and report.backend == "aer" and report.output == str(out)
    assert report.chunk_size_reason.startswith("given")
    table = pq.read_table(out)
    assert table.num_rows == 20 and table.column_names == list(report.columns)
    gammas, betas = np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 5), indexing="ij")
    assert table.column("gamma[0]").to_pylist() == gammas.ravel().tolist()
    assert table.column("beta[0]").to_pylist() == betas.ravel().tolist()

    tracker = Tracker.for_settings(Settings())
    run = tracker.get_run(report.mlflow_run_id)
    assert run.status == "FINISHED" and run.tags["qhybrid.kind"] == "sweep"
    assert run.metrics["sweep.points"] == 20
    assert run.tags["qhybrid.sweep.chunk_size_reason"] == report.chunk_size_reason
    artifacts = Path(qhybrid_env["QHYBRID_MLFLOW_ARTIFACT_ROOT"])
    logged = {p.relative_to(artifacts).parts[-2:] for p in artifacts.rglob("*") if p.is_file()}
    assert ("sweep", "landscape.parquet") in logged
    assert ("plots", "sweep-expected_cut.png") in logged
    assert report.prefect_flow_run_id is not None


def test_a_failed_canary_exits_4_and_ends_the_run_failed(
        prefect_server, qhybrid_env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QHYBRID_FAULTS", "execution=1,seed=3")
    monkeypatch.setenv("QHYBRID_SUBMISSION_RETRIES", "0")
    sweep = {"points": {"kind": "random", "count": 30, "seed": 1}, "chunk_size": 10}
    result = CliRunner().invoke(app, ["sweep", str(_spec(tmp_path, sweep)), "--json",
                                      "--out", str(tmp_path / "failed.parquet")])
    assert result.exit_code == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert error["error"] == "ExecutionError"
    assert error["message"].startswith("sweep canary failed, nothing more submitted")
    tracker = Tracker.for_settings(Settings())
    [run] = tracker.client.search_runs([tracker.experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["qhybrid.kind"] == "sweep"
    assert run.data.tags["qhybrid.execution"].startswith("1 provider submissions")
    assert pq.read_table(tmp_path / "failed.parquet").num_rows == 0


@pytest.mark.slow
def test_runner_dask_evaluates_the_chunks_on_two_worker_processes(
        prefect_server, qhybrid_env: dict[str, str], tmp_path: Path) -> None:
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    sweep = {"points": {"kind": "grid", "grid": {"gamma[0]": {**AXIS, "num": 4},
                                                 "beta[0]": {**AXIS, "num": 5}}},
             "chunk_size": 8, "canary": 4}
    out = tmp_path / "landscape.parquet"
    result = CliRunner().invoke(app, ["sweep", str(_spec(tmp_path, sweep)), "--json",
                                      "--out", str(out), "--runner", "dask", "--workers", "2"])
    assert result.exit_code == 0, result.output

    report = SweepReport.model_validate_json(result.stdout)
    assert (report.points, report.chunks) == (20, 3)
    table = pq.read_table(out)
    assert table.column("point").to_pylist() == list(range(20))
    gammas, betas = np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 5), indexing="ij")
    assert table.column("gamma[0]").to_pylist() == gammas.ravel().tolist()
    assert table.column("beta[0]").to_pylist() == betas.ravel().tolist()
    assert report.prefect_flow_run_id is not None
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[UUID(report.prefect_flow_run_id)])))
    assert sorted(r.name.rsplit("-", 1)[0] for r in runs if r.name.startswith("sweep-")) == [
        "sweep-chunk"] * 3  # one task run per chunk on the workers, no sweep-points task


@pytest.mark.parametrize(("option", "value"), [("--runner", "threads"), ("--workers", "0")])
def test_a_bad_runner_option_exits_2(qhybrid_env: dict[str, str], tmp_path: Path, option: str,
                                     value: str) -> None:
    sweep = {"points": {"kind": "random", "count": 5}}
    result = CliRunner().invoke(app, ["sweep", str(_spec(tmp_path, sweep)), option, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output  # the option exists, refuses it
