"""A parameter sweep: every named observable of a workload at many points, streamed to Parquet.

Each chunk of points is one estimator submission through the run's executor (one PUB per
named observable over the chunk's points), so it is an idempotent submission of the execution
plane like any other: retried when transient, re-attached after a crash. The first chunk (the
canary, ``sweep.canary`` points) runs alone and is checked before anything else is submitted.
Rows go to a Parquet file one row group per chunk, in point order; memory is bounded by the
chunks being evaluated at once (one, unless they are evaluated in parallel elsewhere:
:mod:`qhybrid_usecases._sweep_chunk`).

Columns of the Parquet file, one row per point:
    ``point`` (int64, the point's index), each parameter by name (float64, family order),
    each observable's value ``<name>`` and standard error ``<name>.stderr`` (float64; 0 on an
    exact simulator), ``chunk`` (int32, 0 is the canary) and ``backend`` (string).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import registry
from qhybrid.core import (
    PostProcessingError,
    QhybridError,
    SpecError,
    SweepReport,
)
from qhybrid.experiments import derive_seed, is_exact
from qhybrid_usecases._drawing import render
from qhybrid_usecases._run import RunHandle, log_plots, report_progress, run_executor
from qhybrid_usecases._services import Services
from qhybrid_usecases._sweep_chunk import (
    ChunkValues,
    EvaluateChunks,
    SweepChunk,
    counting_failures,
    in_process,
)
from qhybrid_usecases._sweep_map import sweep_map
from qhybrid_usecases._sweep_plan import drop_plan, keep_plan, resumed_chunk, sweep_identity
from qhybrid_usecases._sweep_points import ChunkSize, choose_chunk_size, device_state, point_source

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
                 progress: Progress | None = None,
                 evaluate: EvaluateChunks | None = None) -> SweepOutcome:
    """Evaluate every named observable at every point of ``run.spec.sweep``, canary first.

    The chunks, their points and their seeds are decided here, and their rows written here in
    point order, one row group per chunk, whoever evaluates them: by default this process, one
    chunk after the other; ``evaluate`` may hand them to workers elsewhere (a Dask cluster),
    which is told the canary alone first.

    Args:
        run: An open run whose spec has a sweep section.
        services: Its collaborators.
        output: The Parquet file to write (default :func:`default_output`).
        progress: Told the points done after each chunk.
        evaluate: How the chunks are evaluated; default :func:`in_process`, through the
            sweep's executor.

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
    path = output or default_output(run, services)
    path.parent.mkdir(parents=True, exist_ok=True)
    identity = sweep_identity(spec.sha256(), executor.submitter.backend.fingerprint, run.pins,
                              source.count)
    chunk = choose_chunk_size(  # also refuses a sweep over budget, resumed or not
        spec.sweep.chunk_size, num_qubits=workload.ansatz.num_qubits, observables=len(names),
        max_rows=executor.submitter.backend.limits.max_rows,
        memory_bytes=services.settings.sweep_memory_bytes, count=source.count,
        device=device_state(executor, list(workload.observables.values()), workload.ansatz,
                            max_qpu_seconds=spec.sweep.max_qpu_seconds))
    # An interrupted attempt's cut, whatever the device says now: its chunks re-attach.
    chunk = resumed_chunk(path, identity) or chunk
    keep_plan(path, identity, chunk)
    exact = is_exact(executor)
    schema = _schema(source.names, names)
    bounds = {n: float(np.abs(op.coeffs).sum()) for n, op in workload.observables.items()}
    canary = min(spec.sweep.canary, chunk.size, source.count)
    spans = [(0, canary)] + [(a, min(a + chunk.size, source.count))
                             for a in range(canary, source.count, chunk.size)]
    chunks = (SweepChunk(index, first, source.chunk(first, stop),
                         derive_seed(spec.seeds.simulator, index))
              for index, (first, stop) in enumerate(spans))
    evaluate_with = evaluate or in_process(executor, workload)

    def evaluate_chunks(todo: Iterable[SweepChunk]) -> Iterator[ChunkValues]:
        return counting_failures(services.log, evaluate_with(todo))

    report_progress(run, services, "running", f"sweep of {source.count} points")
    with pq.ParquetWriter(path, schema) as writer:
        def write(done: ChunkValues) -> None:
            first, stop = spans[done.chunk.index]
            if done.execution is not None:
                services.log.merge(done.execution, done.keys)
            writer.write_table(_table(schema, done), row_group_size=stop - first)
            log.info("sweep chunk %d/%d: %d of %d points", done.chunk.index + 1, len(spans),
                     stop, source.count, extra={"sweep_done": stop, "sweep_total": source.count})
            if progress is not None:
                progress(stop, source.count)

        # The canary alone: nothing else is generated or submitted until it passed.
        canary_chunk = next(chunks)
        try:
            first_values = next(evaluate_chunks([canary_chunk]))
        except QhybridError as exc:  # same class, so the exit code and retry policy stay its own
            raise type(exc)(
                f"sweep canary failed, nothing more submitted: {exc.message}",
                field=exc.field, provider_status=exc.provider_status,
                detail=exc.detail) from exc
        check_canary(first_values.values, first_values.stderrs, bounds,
                     first_values.chunk.points)
        write(first_values)
        for index, done in enumerate(evaluate_chunks(chunks), start=1):
            if done.chunk.index != index:  # rows must go out in point order
                raise PostProcessingError(f"sweep chunk {done.chunk.index} came back in the "
                                          f"place of chunk {index}")
            write(done)
    drop_plan(path)
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


def _table(schema: pa.Schema, done: ChunkValues) -> pa.Table:
    points, rows = done.chunk.points, len(done.chunk.points)
    columns: list[pa.Array] = [pa.array(np.arange(done.chunk.first, done.chunk.stop),
                                        pa.int64())]
    columns += [pa.array(points[:, i], pa.float64()) for i in range(points.shape[1])]
    for name in done.values:
        columns += [pa.array(done.values[name], pa.float64()),
                    pa.array(done.stderrs[name], pa.float64())]
    columns += [pa.array(np.full(rows, done.chunk.index, dtype=np.int32), pa.int32()),
                pa.array([done.backend] * rows, pa.string())]
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
    if outcome.swept:
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
    mapped = sweep_map(Path(outcome.output), outcome.swept, outcome.observables,
                       outcome.grid_shape)
    for name in outcome.observables:
        title = f"{run.spec.name} {run.spec.version}: {name} on {outcome.backend}"
        render(registry.sweep_png, mapped.axes, mapped.means[name], folder / f"sweep-{name}.png",
               title=f"{title}\n{mapped.note}" if mapped.note else title, label=name)
