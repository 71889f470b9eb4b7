"""The reviewer's plots: iterations and repeats are counted in whole steps on their axes;
figures never enter pyplot's global registry (runs draw them in a worker thread)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from registry import (
    arms_png,
    circuit_png,
    convergence_png,
    distributions_png,
    histogram_png,
    repeats_png,
    sweep_png,
)


@pytest.fixture
def drawn(monkeypatch) -> list[Figure]:
    """Every figure the plot functions save, for inspection."""
    figures: list[Figure] = []
    savefig = Figure.savefig

    def save(figure: Figure, *args: object, **kwargs: object) -> None:
        figures.append(figure)
        savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", save)
    return figures


def _x_ticks(figure: Figure) -> list[float]:
    (ax,) = figure.axes
    low, high = ax.get_xlim()
    return [t for t in ax.get_xticks() if low <= t <= high]


def test_convergence_ticks_are_whole_iterations(tmp_path: Path, drawn) -> None:
    # Three iterations: a default axis would tick 0, 0.25, 0.5, ... between them.
    path = convergence_png([3.0, 2.0, 1.5], tmp_path / "c.png", title="t", ylabel="y")
    assert path.stat().st_size > 0
    ticks = _x_ticks(drawn[-1])
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_repeat_ticks_are_whole_repeats(tmp_path: Path, drawn) -> None:
    repeats_png([0.7, 0.72], (0.71, 0.69, 0.73), tmp_path / "r.png", threshold=0.6,
                confidence=0.95, title="t", ylabel="y")
    ticks = _x_ticks(drawn[-1])
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_no_plot_goes_through_pyplot(tmp_path: Path, drawn, monkeypatch) -> None:
    # pyplot keeps every figure it makes in one global registry, unsafe across threads.
    def through_pyplot(*args: object, **kwargs: object) -> None:
        raise AssertionError("a figure made through pyplot")

    monkeypatch.setattr(plt, "figure", through_pyplot)
    histogram_png({"01": 3, "10": 5}, tmp_path / "h.png", title="t")
    distributions_png({"01": 3}, {"01": 2, "11": 1}, tmp_path / "d.png", title="t",
                      hardware_label="hw")
    convergence_png([1.0, 0.5], tmp_path / "c.png", title="t", ylabel="y")
    repeats_png([0.7], (0.7, 0.6, 0.8), tmp_path / "r.png", threshold=0.6, confidence=0.95,
                title="t", ylabel="y")
    arms_png(1.0, {"a": [0.9, 1.0], "b": [1.0]}, tmp_path / "a.png", title="t", ylabel="y")
    circuit_png("q0: -H-", tmp_path / "q.png", title="t")
    sweep_png([("x", [0.0, 1.0])], [1.0, 2.0], tmp_path / "s.png", title="t", label="v")
    assert len(drawn) == 6 and all((tmp_path / f"{n}.png").stat().st_size > 0 for n in "hdcraqs")


def test_a_circuit_diagram_shows_its_whole_text(tmp_path: Path) -> None:
    from PIL import Image

    row = "q_0: ─┤ H ├──■──┤ Rx(2*β[0]) ├─"
    small = circuit_png(row, tmp_path / "small.png", title="ansatz")
    large = circuit_png("\n".join([row * 3] * 40), tmp_path / "large.png", title="ansatz")
    with Image.open(small) as one, Image.open(large) as many:
        assert one.format == many.format == "PNG"
        # Monospace at 8 pt, 100 dpi: about 7 px a character and 13 px a line.
        assert 6 * len(row) <= one.width - 20 <= 8 * len(row)
        assert 6 * 3 * len(row) <= many.width - 20 <= 8 * 3 * len(row)
        assert 11 * 42 <= many.height - 20 <= 15 * 42
        # Ink on the page: not a blank image.
        assert many.convert("L").getextrema()[0] < 128


def test_a_sweep_map_leaves_empty_cells_blank_and_refuses_values_of_another_shape(
        tmp_path: Path) -> None:
    axes = [("gamma", [0.0, 0.5, 1.0]), ("beta", [0.0, 1.0])]
    values = [[1.0, float("nan")], [2.0, 3.0], [float("nan"), 4.0]]
    path = sweep_png(axes, values, tmp_path / "map.png", title="t", label="v")
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match=r"shape \(2, 3\) for cells of shape \(3, 2\)"):
        sweep_png(axes, [[1.0, 2.0, 3.0]] * 2, tmp_path / "bad.png", title="t", label="v")
