"""Where a sweep's points come from, chunk by chunk, and how many go in one chunk.

A grid or a random sweep never holds all its points: each chunk is computed from its index
range (a grid) or drawn next from one seeded generator (random), so memory stays bounded by
the chunk whatever the point count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from backends import BackendExecutor, Pub, ReportsQueue, Submission
from qhybrid.core import (
    ExperimentSpec,
    FilePointsSpec,
    GridPointsSpec,
    RandomPointsSpec,
    SpecError,
)
from qhybrid.experiments import Workload

STATEVECTOR_BYTES_PER_AMPLITUDE = 16
"""A complex128 amplitude: a simulator holds 2^n of them per point it evaluates at once."""

MAX_CHUNK = 100_000


class PointSource:
    """The points of one sweep, in family parameter order, read chunk by chunk.

    Attributes:
        names: Every family parameter, in family order (the columns of each chunk).
        swept: The parameters that vary (a grid's axes with more than one value, every
            parameter of a random or file sweep).
        count: How many points.
        grid_shape: The number of values of each swept parameter, for a grid.
    """

    def __init__(self, names: tuple[str, ...], swept: tuple[str, ...], count: int,
                 grid_shape: tuple[int, ...] | None = None) -> None:
        self.names, self.swept, self.count, self.grid_shape = names, swept, count, grid_shape

    def chunk(self, start: int, stop: int) -> np.ndarray:
        """Points ``start`` (inclusive) to ``stop`` (exclusive), shape (stop - start, k)."""
        raise NotImplementedError


class _Grid(PointSource):
    def __init__(self, names: tuple[str, ...], axes: list[np.ndarray]) -> None:
        shape = tuple(len(a) for a in axes)
        swept = tuple(n for n, a in zip(names, axes, strict=True) if len(a) > 1)
        super().__init__(names, swept, int(np.prod(shape)),
                         tuple(len(a) for a in axes if len(a) > 1))
        self.axes, self.shape = axes, shape

    def chunk(self, start: int, stop: int) -> np.ndarray:
        # Row-major (C) order: the last parameter in family order varies fastest.
        index = np.unravel_index(np.arange(start, stop), self.shape)
        return np.column_stack([axis[i] for axis, i in zip(self.axes, index, strict=True)])


class _Random(PointSource):
    def __init__(self, names: tuple[str, ...], bounds: tuple[tuple[float, float], ...],
                 count: int, seed: int) -> None:
        super().__init__(names, names, count)
        self.low = np.array([b[0] for b in bounds])
        self.high = np.array([b[1] for b in bounds])
        self.rng, self.cursor = np.random.default_rng(seed), 0

    def chunk(self, start: int, stop: int) -> np.ndarray:
        # Successive draws from one generator equal one draw of all the points at once, so the
        # points do not depend on the chunk size.
        if start != self.cursor:
            raise ValueError(f"random points are drawn in order: chunk at {start}, not "
                             f"{self.cursor}")
        self.cursor = stop
        return self.rng.uniform(self.low, self.high, size=(stop - start, len(self.names)))


class _Array(PointSource):
    def __init__(self, names: tuple[str, ...], points: np.ndarray) -> None:
        super().__init__(names, names, len(points))
        self.points = points

    def chunk(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.points[start:stop], dtype=float)


def point_source(spec: ExperimentSpec, workload: Workload, project_root: Path) -> PointSource:
    """The points ``spec.sweep`` describes, for ``workload``'s parameters.

    A grid names each family parameter it sweeps; any other takes its value from the spec's
    ``parameters``. A ``.npy`` file holds one column per parameter in family order; a
    ``.parquet`` file one column per parameter, by name (others taken from ``parameters``).

    Raises:
        SpecError: No sweep section, an axis or column naming no parameter, a parameter
            neither swept nor fixed, a file of the wrong shape or with non-finite values.
    """
    if spec.sweep is None:
        raise SpecError("the spec has no sweep section; add one (docs/sweeps.md)", field="sweep")
    names = workload.parameter_names
    points = spec.sweep.points
    if isinstance(points, GridPointsSpec):
        _known(points.grid, names, "sweep.points.grid")
        axes = [np.linspace(a.start, a.stop, a.num) if (a := points.grid.get(n)) is not None
                else np.array([_fixed(spec, names, n, "sweep.points.grid")]) for n in names]
        return _Grid(names, axes)
    if isinstance(points, RandomPointsSpec):
        return _Random(names, workload.bounds, points.count, points.seed)
    return _Array(names, _read_file(spec, points, names, project_root))


def _known(given: Iterable[str], names: tuple[str, ...], field: str) -> None:
    unknown = [n for n in given if n not in names]
    if unknown:
        raise SpecError(f"{unknown[0]!r} is not a parameter of the family (its parameters: "
                        f"{', '.join(names)})", field=f"{field}.{unknown[0]}")


def _fixed(spec: ExperimentSpec, names: tuple[str, ...], name: str, field: str) -> float:
    if spec.parameters is None:
        raise SpecError(f"{name} is neither swept nor fixed: sweep it here or give every "
                        f"parameter in `parameters` ({', '.join(names)})", field=field)
    if len(spec.parameters) != len(names):
        raise SpecError(f"expected {len(names)} values ({', '.join(names)}), got "
                        f"{len(spec.parameters)}", field="parameters")
    return spec.parameters[names.index(name)]


def _read_file(spec: ExperimentSpec, points: FilePointsSpec, names: tuple[str, ...],
               project_root: Path) -> np.ndarray:
    field = "sweep.points.path"
    path = project_root / points.path
    try:
        if path.suffix == ".npy":
            # Memory-mapped: a chunk reads only its rows from disk.
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            if array.ndim != 2 or array.shape[1] != len(names):
                raise SpecError(f"{points.path}: shape {array.shape}, expected (points, "
                                f"{len(names)}) with columns {', '.join(names)}", field=field)
        else:
            table = pq.read_table(path)
            _known(table.column_names, names, field)
            array = np.column_stack([
                table.column(n).to_numpy().astype(float) if n in table.column_names
                else np.full(table.num_rows, _fixed(spec, names, n, field)) for n in names])
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise SpecError(f"{points.path}: cannot read points ({exc})", field=field) from exc
    if not 1 <= len(array) <= 1_000_000:
        raise SpecError(f"{points.path}: {len(array)} points; a sweep takes 1 to 1000000",
                        field=field)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise SpecError(f"{points.path}: point {int(bad[0])} is not finite "
                        f"({np.asarray(array[bad[0]]).tolist()})", field=field)
    return np.asarray(array)


@dataclass(frozen=True)
class ChunkSize:
    """Points per submission, and why."""

    size: int
    reason: str


@dataclass(frozen=True)
class DeviceState:
    """What a backend tells, before a sweep, that bears on its chunk size.

    Attributes:
        remote: Jobs run at a remote provider: no local statevector, so no memory limit.
        queue_depth: Jobs queued ahead on the device; None for a local simulator.
        breaker: The backend's circuit breaker: closed, open or half-open.
        qpu_seconds_per_point: The backend's estimate for one point of every observable
            (0 on a simulator).
        qpu_seconds_left: What the sweep may still spend (``sweep.max_qpu_seconds`` less what
            the run has spent); None for no limit.
    """

    remote: bool = False
    queue_depth: int | None = None
    breaker: str = "closed"
    qpu_seconds_per_point: float = 0.0
    qpu_seconds_left: float | None = None


LOCAL = DeviceState()
"""A local simulator with a closed breaker and no QPU budget."""

BREAKER_CHUNK = 16
"""Points per chunk while the backend's breaker is open or half-open: the submission that
probes a sick backend risks little work."""

QUEUE_WAITS = 16
"""Chunks go one after another and each waits behind the device's queue: with jobs queued
ahead, the small chunk of a tripped breaker grows so that the sweep queues at most this often."""


def device_state(executor: BackendExecutor, observables: Sequence[SparsePauliOp],
                 circuit: QuantumCircuit, *, max_qpu_seconds: float | None) -> DeviceState:
    """Ask ``executor``'s backend what :func:`choose_chunk_size` needs (its queue, breaker,
    and the QPU time of one point), before anything of the sweep is submitted.

    Raises:
        TransportError: The device's queue could not be read.
    """
    submitter = executor.submitter
    backend = submitter.backend
    one = np.zeros((1, circuit.num_parameters))
    per_point = backend.estimate_qpu_seconds(Submission(
        "estimate", tuple(Pub(circuit, one, o) for o in observables), seed=0,
        precision=executor.precision, mitigation=executor.mitigation))
    return DeviceState(
        remote=backend.remote,
        queue_depth=backend.queue_depth() if isinstance(backend, ReportsQueue) else None,
        breaker=submitter.breaker.state, qpu_seconds_per_point=per_point,
        qpu_seconds_left=(None if max_qpu_seconds is None
                          else max_qpu_seconds - submitter.log.qpu_seconds))


def choose_chunk_size(given: int | None, *, num_qubits: int, observables: int, max_rows: int,
                      memory_bytes: int, count: int, device: DeviceState = LOCAL) -> ChunkSize:
    """``given``, or the largest chunk the backend takes in one job, memory holds and the QPU
    budget pays for; small while the backend's breaker is not closed.

    One chunk is one submission of ``observables`` PUBs over the chunk's points, so it holds
    ``observables * size`` rows (the backend splits beyond ``max_rows``); a local simulator
    keeps up to one statevector (``2^num_qubits * 16`` bytes) per point of a PUB. A chunk never
    costs more QPU time than is left, and a sweep whose points cost more than is left is
    refused before anything is submitted. With the breaker open or half-open a chunk holds
    :data:`BREAKER_CHUNK` points, or ``count / QUEUE_WAITS`` with jobs queued ahead.

    The reason names every limit that binds and every input, with its number.

    Raises:
        SpecError: The QPU budget left does not pay for the sweep (``sweep.max_qpu_seconds``).
    """
    budget = _budget(device, count)
    if given is not None:
        return ChunkSize(min(given, count), f"given (sweep.chunk_size = {given}); {budget}")
    by_rows = max(1, max_rows // observables)
    limits = {"the backend's row limit": by_rows,
              "the largest chunk": MAX_CHUNK, "the point count": count}
    per_point = 2**num_qubits * STATEVECTOR_BYTES_PER_AMPLITUDE
    by_memory = max(1, memory_bytes // per_point)
    if not device.remote:
        limits["the memory budget"] = by_memory
    affordable = _affordable(device)
    if affordable is not None:
        limits["the QPU budget left"] = affordable
    size = max(1, min(limits.values()))
    bound = [name for name, value in limits.items() if value == size]
    if device.breaker != "closed":
        small = BREAKER_CHUNK
        why = [f"the {device.breaker} breaker"]
        if device.queue_depth:
            by_queue = -(-count // QUEUE_WAITS)
            if by_queue > small:
                small, why = by_queue, [*why, "the queue depth"]
        if small < size:
            size, bound = small, why
    memory = (f"memory budget {memory_bytes} B / (2^{num_qubits} * 16 B) = {by_memory}"
              + (" (not applied: remote)" if device.remote else "")
              + " (QHYBRID_SWEEP_MEMORY_BYTES)")
    queue = "none (local)" if device.queue_depth is None else f"{device.queue_depth} jobs"
    return ChunkSize(size, (
        f"chosen: {' and '.join(bound)} {'bind' if len(bound) > 1 else 'binds'}; backend "
        f"limit {max_rows} rows / {observables} observables = "
        f"{by_rows}; {memory}; {budget}; breaker {device.breaker} "
        f"(small chunk {BREAKER_CHUNK}); queue {queue}; at most {MAX_CHUNK}; {count} points"))


def _budget(device: DeviceState, count: int) -> str:
    """The QPU budget's part of the reason; refuses a sweep it cannot pay for."""
    per_point, left = device.qpu_seconds_per_point, device.qpu_seconds_left
    if left is None:
        return f"QPU {per_point:.6g} s per point, no budget (sweep.max_qpu_seconds)"
    need = per_point * count
    if need > left:
        what = ("no QPU budget left" if left < per_point
                else f"the QPU budget left pays for {_affordable(device)} of {count} points")
        raise SpecError(
            f"{what}: the sweep needs {need:.6g} s ({count} points * {per_point:.6g} s, the "
            f"backend's estimate) and {max(left, 0):.6g} s are left; nothing was submitted "
            "(raise sweep.max_qpu_seconds or sweep fewer points)", field="sweep.max_qpu_seconds")
    affordable = _affordable(device)
    by_budget = "unbounded" if affordable is None else str(affordable)
    return (f"QPU budget left {left:.6g} s / {per_point:.6g} s per point = {by_budget} "
            f"(sweep.max_qpu_seconds)")


def _affordable(device: DeviceState) -> int | None:
    """Points the QPU budget left pays for; None when it is no limit (none set, no QPU time
    per point, or more points than any sweep has)."""
    left, per_point = device.qpu_seconds_left, device.qpu_seconds_per_point
    if left is None or per_point <= 0 or left / per_point > MAX_CHUNK * 1_000:
        return None
    return max(0, int(left // per_point))
