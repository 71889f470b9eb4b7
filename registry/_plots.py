"""PNG figures for the MLflow UI: a counts histogram and an optimiser convergence curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or CI
import matplotlib.pyplot as plt


def histogram_png(counts: dict[str, int], path: Path, *, title: str, top: int = 24) -> Path:
    """Bar chart of the ``top`` most frequent bitstrings, written to ``path``."""
    shots = sum(counts.values()) or 1
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    ax.bar([k for k, _ in items], [v / shots for _, v in items], color="#3b6ea8")
    ax.set_ylabel("probability")
    ax.set_title(f"{title} (top {len(items)} of {len(counts)} outcomes, {shots} shots)")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def convergence_png(history: list[float], path: Path, *, title: str, ylabel: str) -> Path:
    """The objective per optimiser iteration, written to ``path``."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(range(len(history)), history, marker="o", color="#a83b3b")
    ax.set_xlabel("optimiser iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
