"""The reviewer's plots: iterations and repeats are counted in whole steps on their axes."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from registry import convergence_png, repeats_png


@pytest.fixture
def drawn(monkeypatch) -> list[Figure]:
    """Every figure the plot functions close, kept open for inspection."""
    figures: list[Figure] = []
    close = plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    yield figures
    for figure in figures:
        close(figure)


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
