"""One chunk of a sweep: what it evaluates, what it gives back, and how to evaluate it anywhere.

A chunk is plain data (its index, its first point's index, its points and its seed), so it
crosses a process or a machine boundary as it is: a worker of a cluster evaluates it with
services and an executor of its own, opened from the settings where it runs, and hands back
the values with what its execution plane did. The sweep (:mod:`qhybrid_usecases._sweep`)
decides the chunks and writes their values; *how* the chunks are evaluated (one after the
other here, or in parallel elsewhere) is an :data:`EvaluateChunks` it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from backends import BackendExecutor, ExecutionLog
from qhybrid.core import ExecutionRecord
from qhybrid.experiments import Workload, is_exact
from qhybrid_usecases._run import RunHandle, run_executor
from qhybrid_usecases._services import Services


@dataclass(frozen=True)
class SweepChunk:
    """The points of one chunk: one submission of every named observable.

    Attributes:
        index: The chunk's index; 0 is the canary.
        first: The index of its first point in the sweep.
        points: Its points, shape (points, parameters), family order.
        seed: The estimator's seed (``derive_seed(spec.seeds.simulator, index)``).
    """

    index: int
    first: int
    points: np.ndarray
    seed: int

    @property
    def stop(self) -> int:
        """The index after its last point."""
        return self.first + len(self.points)


@dataclass(frozen=True)
class ChunkValues:
    """What one chunk gave: each named observable's values and standard errors at its points.

    Attributes:
        chunk: The chunk evaluated.
        values: Each observable's value at each point, by name.
        stderrs: Each observable's standard error at each point (0 where exact), by name.
        backend: The backend that evaluated it.
        execution: What the execution plane of the process that evaluated it did, when that
            is not the sweep's own (a worker's); None when the sweep's log already counted it.
        keys: The idempotency keys that process attempted (with ``execution``).
    """

    chunk: SweepChunk
    values: dict[str, np.ndarray]
    stderrs: dict[str, np.ndarray]
    backend: str
    execution: ExecutionRecord | None = None
    keys: tuple[str, ...] = field(default=())


EvaluateChunks = Callable[[Iterable[SweepChunk]], Iterator[ChunkValues]]
"""Evaluates chunks, yielding their values in the order of the chunks. It takes the next chunk
from the iterable only when it has room for it, so that points are generated no faster than
they are evaluated; an error of a chunk is raised, with its class, when that chunk's turn
comes."""


def evaluate_chunk(executor: BackendExecutor, workload: Workload, chunk: SweepChunk, *,
                   exact: bool) -> ChunkValues:
    """Every named observable at the chunk's points in one submission; stderr 0 when exact.

    Raises:
        BackendError: The submission failed.
    """
    ops: list[SparsePauliOp] = list(workload.observables.values())
    evs, stds, _metadata = executor.estimate_observables(
        workload.ansatz, ops, workload.circuit_points(chunk.points), seed=chunk.seed)
    values, stderrs = {}, {}
    for name, ev, std in zip(workload.observables, evs, stds, strict=True):
        values[name] = np.asarray(ev, dtype=float).reshape(-1)
        stderrs[name] = (np.zeros(len(chunk.points)) if exact
                         else np.asarray(std, dtype=float).reshape(-1))
    return ChunkValues(chunk, values, stderrs, executor.name)


def in_process(executor: BackendExecutor, workload: Workload) -> EvaluateChunks:
    """Chunks evaluated one after the other through ``executor``, in this process."""
    exact = is_exact(executor)

    def evaluate(chunks: Iterable[SweepChunk]) -> Iterator[ChunkValues]:
        for chunk in chunks:
            yield evaluate_chunk(executor, workload, chunk, exact=exact)

    return evaluate


def evaluate_sweep_chunk(run: RunHandle, services: Services, chunk: SweepChunk,
                         backend: str) -> ChunkValues:
    """One chunk of ``run``'s sweep on ``backend``, wherever this runs (a worker of a cluster):
    the workload rebuilt from the run's pinned data, an executor of its own on ``services``,
    and what its execution plane did, for the sweep to add to its record.

    Args:
        run: The sweep's run.
        services: This process's collaborators, opened from its settings.
        chunk: The chunk.
        backend: The sweep's backend (the run's, or the spec's ideal one).

    Raises:
        DataError: The run's data differs here from what the run pinned.
        BackendError: The submission failed.
    """
    services = replace(services, log=ExecutionLog())  # this chunk's own counts
    try:
        workload = run.workload(services)
        executor = run_executor(run, services, backend, field="--backend")
        values = evaluate_chunk(executor, workload, chunk, exact=is_exact(executor))
    except Exception as exc:
        # A failed chunk's submissions, retries and failure still count in the sweep's record.
        setattr(exc, _CARRIED, (services.log.record(), tuple(sorted(services.log.keys))))
        raise
    return replace(values, execution=services.log.record(),
                   keys=tuple(sorted(services.log.keys)))


_CARRIED = "qhybrid_chunk_execution"


def counting_failures(log: ExecutionLog, chunks: Iterator[ChunkValues]) -> Iterator[ChunkValues]:
    """``chunks``, with what the execution plane did for a chunk that failed in another process
    (:func:`evaluate_sweep_chunk`) added to ``log`` before its error goes on. Chunks that came
    back carry their counts themselves (``ChunkValues.execution``)."""
    try:
        yield from chunks
    except Exception as exc:
        carried: tuple[ExecutionRecord, tuple[str, ...]] | None = getattr(exc, _CARRIED, None)
        if carried is not None:
            log.merge(*carried)
        raise
