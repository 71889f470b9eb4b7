"""A sweep's chunks on a Dask cluster (``QHYBRID_SWEEP_RUNNER=dask``): one ``sweep-chunk``
task run per chunk, evaluated by the cluster's workers in parallel.

The cluster is a local one of ``QHYBRID_DASK_WORKERS`` processes (one thread each), started
for the sweep and closed after it, or the running cluster whose scheduler
``QHYBRID_DASK_ADDRESS`` names. The runner is chosen from the settings where the flow runs,
so a deployment behaves like the CLI; the flow's own task runner does not change.

A chunk task takes plain data (the run's handle, the chunk with its points and seed, the
backend's name) and opens its collaborators on the worker from the settings there: a worker
needs the project, the same ``QHYBRID_*`` settings, and the same state store and MLflow
store reachable. Its provider submission is a nested ``submit-job`` task run with the
settings' retries, like any other. The sweep (:func:`qhybrid_usecases.sweep_points`) writes the
rows in point order as chunks come back; at most ``QHYBRID_SWEEP_CHUNKS_IN_FLIGHT`` chunks
(default twice the cluster's worker threads) are submitted and not yet written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

import qhybrid_usecases as usecases
from qhybrid.core import Settings
from qhybrid_usecases import (
    ChunkValues,
    EvaluateChunks,
    RunHandle,
    Services,
    SweepChunk,
    SweepOutcome,
)
from tasks.settings import flow_services

if TYPE_CHECKING:  # Dask is imported by the sweeps that use it, not by every command
    from prefect_dask.task_runners import DaskTaskRunner, PrefectDaskFuture

_T = TypeVar("_T")
_F = TypeVar("_F")
_R = TypeVar("_R")
_END = object()


@task(name="sweep-chunk", cache_policy=NO_CACHE, persist_result=False)
def sweep_chunk(run: RunHandle, chunk: SweepChunk, backend: str) -> ChunkValues:
    """One chunk of a sweep where this task runs (a worker): settings read there."""
    return usecases.evaluate_sweep_chunk(run, flow_services(sla=run.options.sla), chunk, backend)


def dask_task_runner(settings: Settings) -> DaskTaskRunner:
    """A task runner on the cluster ``settings`` name: ``dask_address``'s scheduler, or else a
    local cluster of ``dask_workers`` processes of one thread each (started on first use)."""
    from prefect_dask.task_runners import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    # The workers share the flow's terminal: their console shows warnings and errors only
    # (every log line still goes to the Prefect API, as the flow's own do).
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": settings.dask_workers, "threads_per_worker": 1, "processes": True,
        "dashboard_address": None, "env": {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}})


def in_order(submit: Callable[[_T], _F], items: Iterable[_T], window: int, *,
             result: Callable[[_F], _R], cancel: Callable[[_F], object]) -> Iterator[_R]:
    """``result(submit(item))`` for each item, in the items' order, with at most ``window``
    submitted and not yet handed on: the next item is taken only when one was handed on.

    An error of an item is raised when its turn comes; the work still pending is then
    cancelled (and so it is if the consumer stops early).
    """
    pending: deque[_F] = deque()
    source = iter(items)
    try:
        while True:
            while len(pending) < window and (item := next(source, _END)) is not _END:
                pending.append(submit(cast(_T, item)))
            if not pending:
                return
            yield result(pending.popleft())
    finally:
        for future in pending:
            cancel(future)


def on_cluster(runner: DaskTaskRunner, run: RunHandle, settings: Settings) -> EvaluateChunks:
    """Chunks of ``run``'s sweep evaluated by ``runner``'s workers (started), yielded in
    order with at most the window in flight (:func:`in_order`)."""
    backend = run.options.backend or run.spec.gates.ideal.backend

    def submit(chunk: SweepChunk) -> PrefectDaskFuture[ChunkValues]:
        # Not quote()d as elsewhere: Dask would take the annotation for a tuple.
        return runner.submit(sweep_chunk, {"run": run, "chunk": chunk, "backend": backend})

    def result(future: PrefectDaskFuture[ChunkValues]) -> ChunkValues:
        return future.result()

    def cancel(future: PrefectDaskFuture[ChunkValues]) -> None:
        future.wrapped_future.cancel()

    def evaluate(chunks: Iterable[SweepChunk]) -> Iterator[ChunkValues]:
        window = settings.sweep_chunks_in_flight or 2 * (
            settings.dask_workers if not settings.dask_address
            else max(1, sum(runner.client.nthreads().values())))
        return in_order(submit, chunks, window, result=result, cancel=cancel)

    return evaluate


def sweep_on_cluster(run: RunHandle, services: Services, output: str | None) -> SweepOutcome:
    """The sweep of ``run`` with its chunks on the cluster ``services.settings`` name, its
    rows written here.

    A plain function the flow calls, not a task: a task's context (with its parameters, among
    them ``services`` and its database connections) would travel to the workers with every
    chunk; the flow's holds only its JSON parameters.

    Raises:
        QhybridError: As :func:`qhybrid_usecases.sweep_points`, with the class of the chunk
            that failed.
    """
    logger = get_run_logger()
    settings = services.settings
    where = (f"the Dask cluster at {settings.dask_address}" if settings.dask_address
             else f"a local Dask cluster of {settings.dask_workers} worker processes")
    logger.info("sweep: chunks evaluated on %s", where)

    def progress(done: int, total: int) -> None:
        logger.info("sweep: %d of %d points", done, total)

    with dask_task_runner(settings) as runner:
        return usecases.sweep_points(run, services, Path(output) if output else None,
                                     progress=progress,
                                     evaluate=on_cluster(runner, run, settings))
