"""What a sweep's plot shows, read from its Parquet file a batch at a time.

Each observable's mean over cells of the first one or two swept parameters: a grid axis keeps
its own values as cells while there are few enough of them to see; random or file points, and
long axes, fall into equal cells over the axis's range, a few points to a cell. Further swept
parameters are averaged over. Memory is bounded by the cells and one batch of rows, whatever
the number of points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

MAX_CELLS = {1: 400, 2: 120}
"""Cells per axis at most: a line over one parameter, a heat map over two."""

MIN_CELLS = 8
"""Cells per axis at least, for a sweep of few random or file points."""

POINTS_PER_CELL = 10
"""About how many random or file points a cell averages (so that few cells are empty)."""

BATCH_ROWS = 65_536


@dataclass(frozen=True)
class SweepMap:
    """Each observable's mean per cell.

    Attributes:
        axes: ``(parameter, cell centres)`` of the one or two parameters shown.
        means: Observable -> mean per cell, NaN where no point fell; shape (cells,) for one
            parameter, (cells of the first, cells of the second) for two.
        note: What a value is when it is not one point's (``mean per cell``,
            ``mean over theta[2]``), or "".
    """

    axes: tuple[tuple[str, np.ndarray], ...]
    means: dict[str, np.ndarray]
    note: str


def sweep_map(path: Path, swept: Sequence[str], observables: Sequence[str],
              grid_shape: Sequence[int] | None, *, batch_rows: int = BATCH_ROWS) -> SweepMap:
    """The plot's cells and means for the sweep written at ``path``.

    Args:
        path: The sweep's Parquet file.
        swept: The parameters that vary, in family order; the first two whose points do
            vary are shown (a file's column may hold one value throughout).
        observables: The observables to map.
        grid_shape: The number of values of each swept parameter, for a grid; None otherwise.
        batch_rows: Rows read at a time.

    Raises:
        ValueError: No swept parameter, or no point.
    """
    if not swept:
        raise ValueError("a sweep with no swept parameter has nothing to plot")
    with pq.ParquetFile(path) as file:
        count = file.metadata.num_rows
        if count == 0:
            raise ValueError(f"{path}: no point to plot")
        low, high = _ranges(file, tuple(swept), batch_rows)
        varying = [i for i in range(len(swept)) if high[i] > low[i]]
        shown = varying[:2] or [0]
        cap = MAX_CELLS[len(shown)]
        # A grid axis of few enough values keeps them; the others share what is left of
        # about one cell per POINTS_PER_CELL points (at least a few cells each).
        values = [grid_shape[i] if grid_shape is not None and grid_shape[i] <= cap else None
                  for i in shown]
        kept = [v for v in values if v is not None]
        binned = len(shown) - len(kept)
        per_axis = int((count / POINTS_PER_CELL / max(1, int(np.prod(kept)))) **
                       (1 / max(1, binned)))
        per_axis = min(cap, max(per_axis, min(count, MIN_CELLS)))
        centres, inner = zip(*(_cells(low[i], high[i], n, per_axis)
                               for i, n in zip(shown, values, strict=True)), strict=True)
        shape = tuple(len(c) for c in centres)
        cells = int(np.prod(shape))
        names = [swept[i] for i in shown]

        hits = np.zeros(cells)
        sums = {name: np.zeros(cells) for name in observables}
        for batch in file.iter_batches(batch_size=batch_rows, columns=[*names, *observables]):
            index = [np.searchsorted(edges, batch.column(name).to_numpy(), side="right")
                     for name, edges in zip(names, inner, strict=True)]
            flat = np.ravel_multi_index(index, shape) if len(shown) == 2 else index[0]
            hits += np.bincount(flat, minlength=cells)
            for name in observables:
                sums[name] += np.bincount(flat, weights=batch.column(name).to_numpy(),
                                          minlength=cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {name: np.where(hits > 0, total / hits, np.nan).reshape(shape)
                 for name, total in sums.items()}
    averaged = [swept[i] for i in varying if i not in shown]
    note = (f"mean over {', '.join(averaged)}" if averaged
            else "" if hits.max(initial=0) <= 1 else "mean per cell")
    return SweepMap(axes=tuple(zip(names, centres, strict=True)), means=means, note=note)


def _cells(low: float, high: float, values: int | None,
           count: int) -> tuple[np.ndarray, np.ndarray]:
    """One axis's cell centres and the edges between cells: a grid's own ``values`` (a
    linspace from ``low`` to ``high``), else ``count`` equal cells; one cell for one value."""
    if high == low:
        return np.array([low]), np.array([])
    if values is not None:
        centres = np.linspace(low, high, values)
        return centres, (centres[:-1] + centres[1:]) / 2
    bounds = np.linspace(low, high, count + 1)
    return (bounds[:-1] + bounds[1:]) / 2, bounds[1:-1]


def _ranges(file: pq.ParquetFile, names: tuple[str, ...],
            batch_rows: int) -> tuple[list[float], list[float]]:
    low, high = [np.inf] * len(names), [-np.inf] * len(names)
    for batch in file.iter_batches(batch_size=batch_rows, columns=list(names)):
        for i, name in enumerate(names):
            column = batch.column(name).to_numpy()
            if column.size:
                low[i], high[i] = min(low[i], float(column.min())), max(high[i],
                                                                           float(column.max()))
    return low, high
