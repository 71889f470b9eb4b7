"""A sweep's plot data read from its Parquet file in batches, against numpy on the whole file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qhybrid_usecases._sweep_map import sweep_map


def _write(path: Path, columns: dict[str, np.ndarray], row_group: int = 1_000) -> Path:
    pq.write_table(pa.table(columns), path, row_group_size=row_group)
    return path


def _grid(*axes: np.ndarray) -> list[np.ndarray]:
    """Row-major points of a grid, as a sweep writes them (the last axis fastest)."""
    return [m.ravel() for m in np.meshgrid(*axes, indexing="ij")]


def test_a_grid_shows_each_point_in_its_own_cell(tmp_path: Path) -> None:
    a_values, b_values = np.linspace(0.1, 2.9, 7), np.linspace(-0.4, 1.2, 5)
    a, b = _grid(a_values, b_values)
    value = np.sin(a) * np.cos(3 * b)
    path = _write(tmp_path / "grid.parquet", {"a": a, "b": b, "v": value}, row_group=4)

    mapped = sweep_map(path, ("a", "b"), ("v",), (7, 5), batch_rows=3)

    assert [name for name, _ in mapped.axes] == ["a", "b"]
    np.testing.assert_allclose(mapped.axes[0][1], a_values)
    np.testing.assert_allclose(mapped.axes[1][1], b_values)
    np.testing.assert_allclose(mapped.means["v"], value.reshape(7, 5), rtol=0, atol=1e-15)
    assert mapped.note == ""


def test_random_points_are_averaged_per_cell_as_numpy_bins_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0, np.pi, 5_000), rng.uniform(-1, 1, 5_000)
    value, other = np.cos(a) + b ** 2, a * b
    path = _write(tmp_path / "random.parquet", {"a": a, "b": b, "v": value, "w": other})

    mapped = sweep_map(path, ("a", "b"), ("v", "w"), None, batch_rows=97)

    cells = mapped.means["v"].shape
    assert 10 <= cells[0] == cells[1] <= 120  # a few points to a cell
    edges = [np.linspace(a.min(), a.max(), cells[0] + 1),
             np.linspace(b.min(), b.max(), cells[1] + 1)]
    hits, _, _ = np.histogram2d(a, b, bins=edges)
    for name, column in (("v", value), ("w", other)):
        sums, _, _ = np.histogram2d(a, b, bins=edges, weights=column)
        with np.errstate(invalid="ignore"):
            np.testing.assert_allclose(mapped.means[name], sums / hits, rtol=1e-12)
    np.testing.assert_allclose(mapped.axes[0][1], (edges[0][:-1] + edges[0][1:]) / 2)
    assert mapped.note == "mean per cell"


def test_more_swept_parameters_are_averaged_over(tmp_path: Path) -> None:
    axes = np.linspace(0, 1, 3), np.linspace(0, 2, 4), np.linspace(-1, 1, 6)
    a, b, c = _grid(*axes)
    value = a + 10 * b + c ** 3 + a * c
    path = _write(tmp_path / "three.parquet", {"a": a, "b": b, "c": c, "v": value}, 10)

    mapped = sweep_map(path, ("a", "b", "c"), ("v",), (3, 4, 6), batch_rows=11)

    np.testing.assert_allclose(mapped.means["v"], value.reshape(3, 4, 6).mean(axis=2),
                               atol=1e-12)
    assert mapped.note == "mean over c"


def test_a_cell_with_no_point_is_left_blank(tmp_path: Path) -> None:
    x = np.concatenate([np.linspace(0, 1, 50), np.linspace(9, 10, 50)])  # nothing in between
    path = _write(tmp_path / "gap.parquet", {"x": x, "v": x ** 2})

    mapped = sweep_map(path, ("x",), ("v",), None)

    means = mapped.means["v"]
    edges = np.linspace(0, 10, len(means) + 1)
    assert len(means) >= 4 and np.isnan(means).any() and np.isfinite(means).sum() >= 2
    assert np.isnan(means[(edges[:-1] > 1) & (edges[1:] <= 9)]).all()  # 1.0 opens [1, 2)
    assert means[0] == pytest.approx(np.mean(x[x < edges[1]] ** 2))


def test_a_sweep_with_nothing_swept_has_no_plot(tmp_path: Path) -> None:
    path = _write(tmp_path / "one.parquet", {"x": np.array([1.0]), "v": np.array([2.0])})
    with pytest.raises(ValueError, match="no swept parameter"):
        sweep_map(path, (), ("v",), None)


def test_a_parameter_that_does_not_vary_is_not_shown(tmp_path: Path) -> None:
    # A file of points holds every parameter; here the first one stays put.
    rng = np.random.default_rng(3)
    a, b, c = np.full(2_000, 0.7), rng.uniform(0, 1, 2_000), rng.uniform(-1, 1, 2_000)
    path = _write(tmp_path / "file.parquet", {"a": a, "b": b, "c": c, "v": b - c})

    mapped = sweep_map(path, ("a", "b", "c"), ("v",), None)

    assert [name for name, _ in mapped.axes] == ["b", "c"] and mapped.note == "mean per cell"
    assert np.isfinite(mapped.means["v"]).mean() > 0.9


def test_a_small_sweep_still_has_a_few_cells_each_way(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    a, b = rng.uniform(0, 1, 30), rng.uniform(0, 1, 30)
    path = _write(tmp_path / "small.parquet", {"a": a, "b": b, "v": a + b})

    assert sweep_map(path, ("a", "b"), ("v",), None).means["v"].shape == (8, 8)


def test_a_long_grid_axis_shares_the_cells_the_kept_axis_leaves(tmp_path: Path) -> None:
    a, b = _grid(np.linspace(0, 1, 3), np.linspace(0, 1, 2_000))
    path = _write(tmp_path / "long.parquet", {"a": a, "b": b, "v": a * b}, row_group=4_096)

    mapped = sweep_map(path, ("a", "b"), ("v",), (3, 2_000))

    assert mapped.means["v"].shape == (3, 120)  # 6,000 points / 10 per cell / 3 rows > 120
    np.testing.assert_allclose(mapped.axes[0][1], [0, 0.5, 1])
