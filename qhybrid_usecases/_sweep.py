"""A parameter sweep: every named observable of a workload at many points, streamed to Parquet.

Each chunk of points is one estimator submission through the run's executor (one PUB per
named observable over the chunk's points), so it is an idempotent submission of the execution
plane like any other: retried when transient, re-attached after a crash. The first chunk (the
canary, ``sweep.canary`` points) runs alone and is checked before anything else is submitted.
Rows go to a Parquet file one row group per chunk; memory is bounded by the chunk.

Columns of the Parquet file, one row per point:
    ``point`` (int64, the point's index), each parameter by name (float64, family order),
    each observable's value ``<name>`` and standard error ``<name>.stderr`` (float64; 0 on an
    exact simulator), ``chunk`` (int32, 0 is the canary) and ``backend`` (string).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from qiskit.quantum_info import SparsePauliOp

from backends import BackendExecutor
from qhybrid.core import (
    GridPointsSpec,
    PostProcessingError,
    QhybridError,
    SpecError,
    SweepReport,
)
from qhybrid.experiments import Workload, derive_seed, is_exact
from qhybrid_usecases._run import RunHandle, log_plots, report_progress, run_executor
from qhybrid_usecases._services import Services
from qhybrid_usecases._sweep_points import ChunkSize, choose_chunk_size, device_state, point_source
from registry import sweep_png

log = logging.getLogger("qhybrid.sweep")

Progress = Callable[[int, int], None]
"""Told ``(points done, points in all)`` after each chunk."""


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep produced, before it is recorded."""

    output: str
    backend: str
    parameters: tuple[str, ...]
    swept: tuple[str, ...]
    grid_shape: tuple[int, ...] | None
    observables: tuple[str, ...]
    points: int
    chunks: int
    chunk: ChunkSize
    canary_points: int
    exact: bool
    seconds: float
    columns: tuple[str, ...]


def default_output(run: RunHandle, services: Services) -> Path:
    """Where a sweep writes its Parquet file when not told: ``sweeps/<name>-<run id>.parquet``
    under the project root."""
    return (services.settings.project_root / "sweeps"
            / f"{run.spec.name}-{run.spec.version}-{run.mlflow_run_id[:12]}.parquet")


def sweep_points(run: RunHandle, services: Services, output: Path | None = None, *,
                 progress: Progress | None = None) -> SweepOutcome:
    """Evaluate every named observable at every point of ``run.spec.sweep``, canary first.

    Args:
        run: An open run whose spec has a sweep section.
        services: Its collaborators.
        output: The Parquet file to write (default :func:`default_output`).
        progress: Told the points done after each chunk.

    Raises:
        SpecError: No sweep section, or points that do not fit the family.
        PostProcessingError: The canary's values are not finite or exceed an observable's
            spectral bound; nothing after the canary was submitted.
        BackendError: A submission failed (the canary's: with the canary named).
    """
    start = time.perf_counter()
    spec = run.spec
    if spec.sweep is None:
        raise SpecError("the spec has no sweep section; add one (docs/sweeps.md)", field="sweep")
    services.tracker.set_tags(run.mlflow_run_id, {"qhybrid.kind": "sweep"})
    workload = run.workload(services)
    source = point_source(spec, workload, services.settings.project_root)
    executor = run_executor(run, services, run.options.backend or spec.gates.ideal.backend,
                            field="--backend")
    names = tuple(workload.observables)
    chunk = choose_chunk_size(
        spec.sweep.chunk_size, num_qubits=workload.ansatz.num_qubits, observables=len(names),
        max_rows=executor.submitter.backend.limits.max_rows,
        memory_bytes=services.settings.sweep_memory_bytes, count=source.count,
        device=device_state(executor, list(workload.observables.values()), workload.ansatz,
                            max_qpu_seconds=spec.sweep.max_qpu_seconds))
    exact = is_exact(executor)
    schema = _schema(source.names, names)
    path = output or default_output(run, services)
    path.parent.mkdir(parents=True, exist_ok=True)
    bounds = {n: float(np.abs(op.coeffs).sum()) for n, op in workload.observables.items()}
    canary = min(spec.sweep.canary, chunk.size, source.count)
    spans = [(0, canary)] + [(a, min(a + chunk.size, source.count))
                             for a in range(canary, source.count, chunk.size)]
    report_progress(run, services, "running", f"sweep of {source.count} points")
    with pq.ParquetWriter(path, schema) as writer:
        for index, (first, stop) in enumerate(spans):
            points = source.chunk(first, stop)
            try:
                values, stderrs = _evaluate(executor, workload, points, seed=derive_seed(
                    spec.seeds.simulator, index), exact=exact)
            except QhybridError as exc:
                if index == 0:  # same class, so the exit code and retry policy stay its own
                    raise type(exc)(
                        f"sweep canary failed, nothing more submitted: {exc.message}",
                        field=exc.field, provider_status=exc.provider_status,
                        detail=exc.detail) from exc
                raise
            if index == 0:
                check_canary(values, stderrs, bounds, points)
            writer.write_table(_table(schema, first, points, values, stderrs, index,
                                      executor.name), row_group_size=stop - first)
            log.info("sweep chunk %d/%d: %d of %d points", index + 1, len(spans), stop,
                     source.count, extra={"sweep_done": stop, "sweep_total": source.count})
            if progress is not None:
                progress(stop, source.count)
    return SweepOutcome(
        output=str(path), backend=executor.name, parameters=source.names, swept=source.swept,
        grid_shape=source.grid_shape, observables=names, points=source.count, chunks=len(spans),
        chunk=chunk, canary_points=canary, exact=exact, seconds=time.perf_counter() - start,
        columns=tuple(schema.names))


def _schema(parameters: tuple[str, ...], observables: tuple[str, ...]) -> pa.Schema:
    values = [pa.field(c, pa.float64(), nullable=False)
              for n in observables for c in (n, f"{n}.stderr")]
    return pa.schema([pa.field("point", pa.int64(), nullable=False),
                      *(pa.field(p, pa.float64(), nullable=False) for p in parameters),
                      *values, pa.field("chunk", pa.int32(), nullable=False),
                      pa.field("backend", pa.string(), nullable=False)])


def _evaluate(executor: BackendExecutor, workload: Workload, points: np.ndarray, *, seed: int,
              exact: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every named observable at ``points`` in one submission; stderr 0 when exact."""
    ops: list[SparsePauliOp] = list(workload.observables.values())
    evs, stds, _metadata = executor.estimate_observables(
        workload.ansatz, ops, workload.circuit_points(points), seed=seed)
    values, stderrs = {}, {}
    for name, ev, std in zip(workload.observables, evs, stds, strict=True):
        values[name] = np.asarray(ev, dtype=float).reshape(-1)
        stderrs[name] = (np.zeros(len(points)) if exact
                         else np.asarray(std, dtype=float).reshape(-1))
    return values, stderrs


def check_canary(values: dict[str, np.ndarray], stderrs: dict[str, np.ndarray],
                  bounds: dict[str, float], points: np.ndarray) -> None:
    """Refuse the sweep if the canary's values cannot be right.

    An observable ``sum_k c_k P_k`` has expectation values within ``sum_k |c_k|`` (each Pauli's
    lie in [-1, 1]): a cheap spectral bound that needs no diagonalisation.

    Raises:
        PostProcessingError: A non-finite value or standard error, or a value out of bounds.
    """
    for name, vals in values.items():
        for what, array in ((name, vals), (f"{name}.stderr", stderrs[name])):
            bad = np.flatnonzero(~np.isfinite(array))
            if bad.size:
                raise PostProcessingError(
                    f"sweep canary failed, nothing more submitted: {what} is not finite "
                    f"({array[bad[0]]}) at point {int(bad[0])} {points[bad[0]].tolist()}")
        limit = bounds[name] * (1 + 1e-9) + 1e-9
        out = np.flatnonzero(np.abs(vals) > limit)
        if out.size:
            raise PostProcessingError(
                f"sweep canary failed, nothing more submitted: {name} = {vals[out[0]]} at "
                f"point {int(out[0])} lies outside its spectral bound +-{bounds[name]:g}")


def _table(schema: pa.Schema, first: int, points: np.ndarray, values: dict[str, np.ndarray],
           stderrs: dict[str, np.ndarray], chunk: int, backend: str) -> pa.Table:
    rows = len(points)
    columns: list[pa.Array] = [pa.array(np.arange(first, first + rows), pa.int64())]
    columns += [pa.array(points[:, i], pa.float64()) for i in range(points.shape[1])]
    for name in values:
        columns += [pa.array(values[name], pa.float64()), pa.array(stderrs[name], pa.float64())]
    columns += [pa.array(np.full(rows, chunk, dtype=np.int32), pa.int32()),
                pa.array([backend] * rows, pa.string())]
    return pa.Table.from_arrays(columns, schema=schema)


def finish_sweep(run: RunHandle, services: Services, outcome: SweepOutcome) -> SweepReport:
    """Record the sweep on its MLflow run (the Parquet file and a plot per observable as
    artifacts, its size and cost as metrics), end the run, and report it."""
    tracker = services.tracker
    record = services.log.record()
    tracker.log_metrics(run.mlflow_run_id, {
        "sweep.points": outcome.points, "sweep.chunks": outcome.chunks,
        "sweep.chunk_size": outcome.chunk.size, "sweep.seconds": outcome.seconds,
        "sweep.provider_submissions": record.provider_submissions})
    tracker.set_tags(run.mlflow_run_id, {"qhybrid.sweep.chunk_size_reason": outcome.chunk.reason,
                                         "qhybrid.sweep.output": outcome.output,
                                         "qhybrid.backend": outcome.backend})
    tracker.log_dict(run.mlflow_run_id, record.model_dump(mode="json"), "execution.json")
    folder = Path(run.scratch) / "sweep"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(outcome.output, folder / Path(outcome.output).name)
    tracker.log_artifacts(run.mlflow_run_id, folder, "sweep")
    if len(outcome.swept) in (1, 2):
        log_plots(services, run.mlflow_run_id, lambda out: _draw(run, outcome, out))
    services.drawer.wait()
    tracker.end_run(run.mlflow_run_id)
    shutil.rmtree(run.scratch, ignore_errors=True)
    spec = run.spec
    return SweepReport(
        experiment=spec.name, version=spec.version, family=spec.family.kind,
        backend=outcome.backend, parameters=outcome.parameters, observables=outcome.observables,
        points=outcome.points, chunks=outcome.chunks, chunk_size=outcome.chunk.size,
        chunk_size_reason=outcome.chunk.reason, canary_points=outcome.canary_points,
        exact=outcome.exact, seconds=outcome.seconds, output=outcome.output,
        columns=outcome.columns, mlflow_run_id=run.mlflow_run_id,
        prefect_flow_run_id=run.flow_run_id)


def _draw(run: RunHandle, outcome: SweepOutcome, folder: Path) -> None:
    table = pq.read_table(outcome.output, columns=[*outcome.swept, *outcome.observables])
    axes = [(name, table.column(name).to_numpy().tolist()) for name in outcome.swept]
    shape = outcome.grid_shape if (isinstance(run.spec.sweep.points if run.spec.sweep else None,
                                              GridPointsSpec)
                                   and len(outcome.swept) == 2) else None
    for name in outcome.observables:
        sweep_png(axes, table.column(name).to_numpy().tolist(), folder / f"sweep-{name}.png",
                  title=f"{run.spec.name} {run.spec.version}: {name} on {outcome.backend}",
                  label=name, grid_shape=(shape[0], shape[1]) if shape else None)

