"""A sweep's chunks on a local Dask cluster of two worker processes, through the real flow: the
same file, bit for bit, as the sweep in one process, and a failed chunk fails the sweep with
its own class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from qhybrid.core import (
    ExecutionError,
    ExperimentSpec,
    RunOptions,
    Settings,
    SweepReport,
    spec_from_mapping,
)
from registry import Tracker

# A sampled estimator (the fake device's noise and shots, in qiskit-ibm-runtime's local mode),
# so that every value and standard error depends on its chunk's seed.
BACKEND = "ibm:fake_lagos"


def _spec(count: int) -> ExperimentSpec:
    return spec_from_mapping({
        "name": "qaoa-sweep-dask", "version": "1.0.0", "family": {"kind": "qaoa-maxcut"},
        "dataset": {"path": "data/maxcut_3reg_6.json"}, "seeds": {"simulator": 11},
        "sweep": {"points": {"kind": "random", "count": count, "seed": 4},
                  "chunk_size": 12, "canary": 5}})


def _sweep(spec: ExperimentSpec, out: Path) -> SweepReport:
    from flows import sweep_experiment

    report = sweep_experiment(spec, RunOptions(backend=BACKEND), str(out))
    assert isinstance(report, SweepReport)
    return report


def _chunk_task_runs(flow_run_id: str) -> list[str]:
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[UUID(flow_run_id)])))
    return sorted(r.name for r in runs if r.name.startswith("sweep-chunk"))


@pytest.mark.slow
def test_a_two_worker_dask_sweep_writes_the_same_file_as_the_sweep_in_one_process(
        prefect_server, configure, tmp_path: Path) -> None:
    spec = _spec(53)  # a canary of 5, then 4 chunks of 12: 5 chunks
    configure(sweep_runner="serial")
    serial = _sweep(spec, tmp_path / "serial.parquet")
    # A state store of its own: on the first one every chunk would re-attach to the serial
    # sweep's jobs (same idempotency keys) instead of being evaluated again.
    settings: Settings = configure(sweep_runner="dask", dask_workers=2,
                                   state_url=f"sqlite:///{tmp_path}/dask-state.db")
    parallel = _sweep(spec, tmp_path / "dask.parquet")

    one, two = pq.read_table(serial.output), pq.read_table(parallel.output)
    # Every column, including each value, standard error, chunk and backend: bit for bit.
    assert two.schema == one.schema and two.num_rows == one.num_rows == 53
    for name in one.column_names:
        assert two.column(name).equals(one.column(name)), name
    assert pq.ParquetFile(parallel.output).metadata.num_row_groups == 5
    assert two.column("chunk").to_pylist() == [0] * 5 + [1] * 12 + [2] * 12 + [3] * 12 + [4] * 12
    # The values are sampled: a chunk evaluated with another seed would differ.
    assert (one.column("expected_cut.stderr").to_numpy() > 0).all()
    assert not parallel.exact and parallel.backend == BACKEND
    assert (parallel.chunks, parallel.chunk_size, parallel.canary_points) == (5, 12, 5)

    # Each chunk was a task run of its own on a worker, and the sweep's execution record
    # counts the workers' submissions: one per chunk, each evaluated (none re-attached).
    assert parallel.prefect_flow_run_id is not None
    assert len(_chunk_task_runs(parallel.prefect_flow_run_id)) == 5
    assert serial.prefect_flow_run_id is not None
    assert _chunk_task_runs(serial.prefect_flow_run_id) == []
    tracker = Tracker.for_settings(settings)
    for report in (serial, parallel):
        run = tracker.get_run(report.mlflow_run_id)
        assert run.status == "FINISHED"
        assert run.metrics["sweep.provider_submissions"] == 5
        execution = json.loads(tracker.read_text(report.mlflow_run_id, "execution.json") or "")
        assert (execution["provider_submissions"], execution["distinct_jobs"],
                execution["reattachments"]) == (5, 5, 0)


@pytest.mark.slow
def test_a_failed_chunk_on_a_worker_fails_the_sweep_with_its_class(
        prefect_server, configure, tmp_path: Path) -> None:
    # Each worker draws its faults from its own generator seeded with 0: the first submission
    # a worker makes passes (draw 0.64), its second fails (0.04). Five chunks on two workers:
    # the canary passes and some later chunk fails, whichever worker takes it.
    settings: Settings = configure(sweep_runner="dask", dask_workers=2,
                                   faults="execution=0.5,seed=0", submission_retries=0)
    assert np.random.default_rng(0).random(3)[[0, 2]].tolist() == pytest.approx([0.637, 0.040],
                                                                                abs=1e-3)
    out = tmp_path / "failed.parquet"
    with pytest.raises(ExecutionError) as failed:
        _sweep(_spec(53), out)

    assert "injected" in failed.value.message
    assert not failed.value.message.startswith("sweep canary failed")
    tracker = Tracker.for_settings(settings)
    [run] = tracker.client.search_runs([tracker.experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["qhybrid.kind"] == "sweep"
    assert run.data.tags["qhybrid.failure"] == "flow failed: ExecutionError"
    # The failed chunk's submission and failure count, though its worker never returned it.
    execution = json.loads(Path(tracker.client.download_artifacts(
        run.info.run_id, "execution.json", str(tmp_path))).read_text())
    assert execution["failures_by_class"] == {"ExecutionError": 1}, execution
    assert execution["provider_submissions"] == len(execution["job_ids"]) >= 2
    # The rows of the chunks before the failed one, in point order, canary first.
    table = pq.read_table(out)
    assert 5 <= table.num_rows < 53
    assert table.column("point").to_pylist() == list(range(table.num_rows))
