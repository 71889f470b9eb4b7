"""A killed sweep resumes where it stopped: `qhybrid sweep` killed hard (SIGKILL) after some of
its chunks are stored, then run again with the same command, pays for no chunk twice and writes
the same Parquet file as a sweep that was never interrupted.

The kill is the process's own: the fault plan ``crash=N`` sends SIGKILL while the sweep waits
for the result of the N-th job it submitted, after that job's id is stored (a hook on the
execution plane, not a timer).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from qhybrid.core import ExecutionRecord, Settings, SweepReport
from registry import Tracker
from tests.conftest import REPO, record_env

pytestmark = pytest.mark.slow

KILLED_AT = 3
"""The chunk whose result the first sweep is killed waiting for (its job is stored)."""
SWEEP = {"points": {"kind": "grid", "grid": {
    "gamma[0]": {"start": 0.0, "stop": 3.0, "num": 6},
    "beta[0]": {"start": 0.0, "stop": 1.5, "num": 6}}}, "chunk_size": 6, "canary": 6}
CHUNKS = 6


def _spec(folder: Path) -> Path:
    data = yaml.safe_load((REPO / "specs" / "qaoa-sweep.yaml").read_text())
    data["sweep"] = SWEEP
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _sweep(spec: Path, out: Path, records: dict[str, str], prefect: Path,
           **extra: str) -> subprocess.CompletedProcess[str]:
    """`qhybrid sweep SPEC --out OUT --json` on the records ``records`` name; its process group
    is killed afterwards (a SIGKILL leaves the command's Prefect server behind)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QHYBRID_", "PREFECT_"))}
    env |= {**records, **extra, "PREFECT_HOME": str(prefect),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
            "QH_TEST_RESUME": uuid.uuid4().hex}
    process = subprocess.Popen(
        [sys.executable, "-m", "qhybrid_entrypoints.cli", "sweep", str(spec), "--out", str(out),
         "--json"], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _ledger(records: dict[str, str]) -> list[tuple[str, str | None]]:
    path = records["QHYBRID_STATE_URL"].removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        return list(db.execute("select status, job_id from submissions order by created"))


def _local_jobs(records: dict[str, str]) -> int:
    path = records["QHYBRID_STATE_URL"].removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("select count(*) from local_jobs").fetchone()[0])


def _execution(records: dict[str, str], run_id: str) -> ExecutionRecord:
    artifacts = Path(records["QHYBRID_MLFLOW_ARTIFACT_ROOT"])
    [path] = [p for p in artifacts.rglob("execution.json") if run_id in p.parts]
    return ExecutionRecord.model_validate_json(path.read_text())


def test_a_killed_sweep_resumes_where_it_stopped_and_pays_for_no_chunk_twice(
        tmp_path: Path, qhybrid_env: dict[str, str]) -> None:
    spec, out = _spec(tmp_path), tmp_path / "landscape.parquet"
    prefect = tmp_path / "prefect"

    killed = _sweep(spec, out, qhybrid_env, prefect, QHYBRID_FAULTS=f"crash={KILLED_AT}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    stored = [status for status, job_id in _ledger(qhybrid_env) if job_id]
    # Chunks 1 .. KILLED_AT - 1 finished; chunk KILLED_AT's job is stored, its result unread.
    assert stored == ["done"] * (KILLED_AT - 1) + ["submitted"], _ledger(qhybrid_env)

    resumed = _sweep(spec, out, qhybrid_env, prefect)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = SweepReport.model_validate_json(resumed.stdout)
    assert (report.points, report.chunks, report.output) == (36, CHUNKS, str(out))
    execution = _execution(qhybrid_env, report.mlflow_run_id)
    assert execution.reattachments == KILLED_AT  # every chunk whose job was stored
    assert execution.provider_submissions == CHUNKS - KILLED_AT  # only the others
    assert execution.distinct_jobs == CHUNKS
    run = Tracker.for_settings(Settings()).get_run(report.mlflow_run_id)
    assert run.metrics["sweep.provider_submissions"] == CHUNKS - KILLED_AT
    assert _local_jobs(qhybrid_env) == CHUNKS  # no chunk paid twice, over both commands
    assert [s for s, _ in _ledger(qhybrid_env)] == ["done"] * CHUNKS

    (tmp_path / "fresh").mkdir()
    fresh = record_env(tmp_path / "fresh")
    whole = _sweep(spec, tmp_path / "whole.parquet", fresh, tmp_path / "fresh-prefect")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert _execution(fresh, SweepReport.model_validate_json(whole.stdout).mlflow_run_id
                      ).provider_submissions == CHUNKS
    resumed_table, whole_table = pq.read_table(out), pq.read_table(tmp_path / "whole.parquet")
    assert resumed_table.num_rows == 36
    assert resumed_table.equals(whole_table)  # bit for bit: float64 columns compared exactly
    for name in report.columns:
        left, right = resumed_table.column(name), whole_table.column(name)
        if pa.types.is_floating(left.type) or pa.types.is_integer(left.type):
            assert left.to_numpy().tobytes() == right.to_numpy().tobytes(), name
        else:
            assert left.to_pylist() == right.to_pylist(), name
    assert json.loads(resumed.stdout)["columns"] == list(resumed_table.column_names)
