"""PNG figures for the MLflow UI: what a reviewer reads before trusting a promotion.

Counts histograms, ideal vs hardware distributions, the optimiser's convergence, the
statistical repeats with their interval, mitigated vs unmitigated arms, and a circuit diagram
(drawn from its text form with Pillow: the registry never imports Qiskit).

Figures are built with matplotlib's object-oriented API (:class:`~matplotlib.figure.Figure`,
rendered by Agg), never through ``pyplot``, whose global figure registry is not thread-safe:
a run draws its plots in a worker thread while its next step runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import get_data_path
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike
from PIL import Image, ImageDraw, ImageFont

_IDEAL, _HARDWARE, _ACCENT = "#3b6ea8", "#a83b3b", "#4a4a4a"
_MONOSPACE = str(Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSansMono.ttf")
_DIAGRAM_FONT_PX = 11  # 8 pt at 100 dpi
_MARGIN_PX = 10


def prepare_plots() -> None:
    """Load what the first figure would otherwise load (Agg's canvas, matplotlib's font list,
    the diagrams' font): for a process that is about to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.font_manager import fontManager

    fontManager.findfont("DejaVu Sans")
    ImageFont.truetype(_MONOSPACE, _DIAGRAM_FONT_PX)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def histogram_png(counts: dict[str, int], path: Path, *, title: str, top: int = 24) -> Path:
    """Bar chart of the ``top`` most frequent bitstrings, written to ``path``."""
    shots = sum(counts.values()) or 1
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.subplots()
    ax.bar([k for k, _ in items], [v / shots for _, v in items], color=_IDEAL)
    ax.set_ylabel("probability")
    ax.set_title(f"{title} (top {len(items)} of {len(counts)} outcomes, {shots} shots)")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    return _save(fig, path)


def distributions_png(ideal: dict[str, int], hardware: dict[str, int], path: Path, *,
                      title: str, hardware_label: str, top: int = 24) -> Path:
    """The ideal and the hardware distributions side by side on the same outcomes: the
    ``top`` outcomes by their larger probability, ideal and hardware bars next to each other."""
    n_ideal, n_hw = sum(ideal.values()) or 1, sum(hardware.values()) or 1
    p_ideal = {k: v / n_ideal for k, v in ideal.items()}
    p_hw = {k: v / n_hw for k, v in hardware.items()}
    outcomes = sorted(set(p_ideal) | set(p_hw),
                      key=lambda k: (-max(p_ideal.get(k, 0.0), p_hw.get(k, 0.0)), k))[:top]
    xs = range(len(outcomes))
    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.subplots()
    ax.bar([x - 0.2 for x in xs], [p_ideal.get(k, 0.0) for k in outcomes], width=0.4,
           color=_IDEAL, label=f"ideal ({n_ideal} shots)")
    ax.bar([x + 0.2 for x in xs], [p_hw.get(k, 0.0) for k in outcomes], width=0.4,
           color=_HARDWARE, label=f"{hardware_label} ({n_hw} shots)")
    ax.set_xticks(list(xs), outcomes)
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.set_ylabel("probability")
    ax.set_title(f"{title}: ideal vs {hardware_label} (top {len(outcomes)} outcomes)")
    ax.legend()
    return _save(fig, path)


def convergence_png(history: list[float], path: Path, *, title: str, ylabel: str) -> Path:
    """The objective per optimiser iteration (integer ticks), written to ``path``."""
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    ax.plot(range(len(history)), history, marker="o", color=_HARDWARE)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimiser iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def repeats_png(values: Sequence[float], interval: tuple[float, float, float], path: Path, *,
                threshold: float, confidence: float, title: str, ylabel: str) -> Path:
    """Each statistical repeat's objective, their mean and ``confidence`` interval
    (``interval`` is mean, low, high), and the gate's threshold."""
    mean, low, high = interval
    repeats = range(1, len(values) + 1)
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    ax.axhspan(low, high, color=_IDEAL, alpha=0.2,
               label=f"{confidence:.0%} interval [{low:.4g}, {high:.4g}]")
    ax.axhline(mean, color=_IDEAL, label=f"mean {mean:.4g}")
    ax.axhline(threshold, color=_HARDWARE, linestyle="--", label=f"threshold {threshold:.4g}")
    ax.plot(list(repeats), list(values), "o", color=_ACCENT, label="repeat")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("repeat (independent seeds)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def arms_png(exact: float, arms: dict[str, Sequence[float]], path: Path, *, title: str,
             ylabel: str) -> Path:
    """Each arm's repeats (e.g. unmitigated and mitigated) with their mean and standard
    deviation, against the exact value."""
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    for x, (arm, values) in enumerate(arms.items()):
        mean = sum(values) / len(values)
        spread = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
        ax.plot([x] * len(values), list(values), "o", color=_ACCENT, alpha=0.5)
        ax.errorbar([x + 0.15], [mean], yerr=[spread], fmt="s", capsize=6,
                    color=(_IDEAL, _HARDWARE)[x % 2], label=f"{arm}: {mean:.4g} ± {spread:.2g}")
    ax.axhline(exact, color="#2e7d32", linestyle="--", label=f"exact {exact:.4g}")
    ax.set_xticks(list(range(len(arms))), list(arms))
    ax.set_xlim(-0.5, len(arms) - 0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def circuit_png(diagram: str, path: Path, *, title: str) -> Path:
    """A circuit's text diagram (as Qiskit's text drawer writes it) as an image: ``title``, a
    blank line, then the diagram, in matplotlib's DejaVu Sans Mono at 8 pt and 100 dpi.

    Drawn with Pillow, a line at a time: matplotlib lays out and renders each of a diagram's
    several thousand characters on its own (about 0.3 s a diagram; this takes 0.03 s).
    """
    text = f"{title}\n\n{diagram}"
    font = ImageFont.truetype(_MONOSPACE, _DIAGRAM_FONT_PX)
    _, _, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).multiline_textbbox(
        (0, 0), text, font=font)
    image = Image.new("RGB", (math.ceil(right) + 2 * _MARGIN_PX,
                              math.ceil(bottom) + 2 * _MARGIN_PX), "white")
    ImageDraw.Draw(image).multiline_text((_MARGIN_PX, _MARGIN_PX), text, font=font,
                                         fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def sweep_png(axes: Sequence[tuple[str, Sequence[float] | np.ndarray]], values: ArrayLike,
              path: Path, *, title: str, label: str) -> Path:
    """A swept observable over cells of one or two swept parameters: a line over one, a heat
    map over two.

    Args:
        axes: ``(name, cell centres)`` of each parameter shown (one or two).
        values: The observable per cell, NaN where there is none (left blank): shape
            (cells,) for one parameter, (cells of the first, cells of the second) for two.
        path: Where to write the PNG.
        title: The figure's title.
        label: What the values are (the colour bar's or the y axis's label).

    Raises:
        ValueError: Not one or two parameters, or values of another shape than the cells.
    """
    if len(axes) not in (1, 2):
        raise ValueError(f"a sweep plot shows one or two swept parameters, not {len(axes)}")
    cells = np.ma.masked_invalid(np.asarray(values, dtype=float))
    shape = tuple(len(centres) for _, centres in axes)
    if cells.shape != shape:
        raise ValueError(f"values of shape {cells.shape} for cells of shape {shape}")
    fig = Figure(figsize=(7, 5), dpi=100)
    ax = fig.subplots()
    if len(axes) == 1:
        (name, xs), = axes
        ax.plot(xs, cells, color=_IDEAL, marker=".")
        ax.set_xlabel(name)
        ax.set_ylabel(label)
    else:
        (x_name, xs), (y_name, ys) = axes
        # pcolormesh takes rows along y: the first parameter's cells are the columns.
        image = ax.pcolormesh(xs, ys, cells.T, shading="nearest", cmap="viridis")
        ax.set_xlabel(x_name)
        ax.set_ylabel(y_name)
        fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title)
    return _save(fig, path)
