"""Where a sweep's points come from, chunk by chunk, and how many go in one chunk.

A grid or a random sweep never holds all its points: each chunk is computed from its index
range (a grid) or drawn next from one seeded generator (random), so memory stays bounded by
the chunk whatever the point count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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


def choose_chunk_size(given: int | None, *, num_qubits: int, observables: int, max_rows: int,
                      memory_bytes: int, count: int) -> ChunkSize:
    """``given``, or the largest chunk the backend takes in one job and memory holds.

    One chunk is one submission of ``observables`` PUBs over the chunk's points, so it holds
    ``observables * size`` rows (the backend splits beyond ``max_rows``); a simulator keeps up
    to one statevector (``2^num_qubits * 16`` bytes) per point of a PUB.
    """
    if given is not None:
        return ChunkSize(min(given, count), f"given (sweep.chunk_size = {given})")
    by_rows = max(1, max_rows // observables)
    per_point = 2**num_qubits * STATEVECTOR_BYTES_PER_AMPLITUDE
    by_memory = max(1, memory_bytes // per_point)
    size = max(1, min(by_rows, by_memory, MAX_CHUNK, count))
    binding = min((by_rows, "the backend's row limit"), (by_memory, "the memory budget"),
                  (MAX_CHUNK, "the largest chunk"), (count, "the point count"))[1]
    return ChunkSize(size, (
        f"chosen: {binding} binds; backend limit {max_rows} rows / {observables} observables "
        f"= {by_rows}; memory budget {memory_bytes} B / (2^{num_qubits} * 16 B) = {by_memory} "
        f"(QHYBRID_SWEEP_MEMORY_BYTES); at most {MAX_CHUNK}; {count} points"))
