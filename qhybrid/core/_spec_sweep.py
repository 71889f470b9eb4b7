"""A spec's sweep section: where the points come from and how they are chunked."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, field_validator, model_validator

from qhybrid.core._spec_model import SpecModel, project_path

MAX_SWEEP_POINTS: Final = 1_000_000


class GridAxisSpec(SpecModel):
    """One swept parameter of a grid: ``numpy.linspace(start, stop, num)``."""

    start: float
    stop: float
    num: int = Field(ge=1, le=MAX_SWEEP_POINTS, description="Values on the axis.")


class GridPointsSpec(SpecModel):
    """Every combination of the axes' values (the last parameter in family order varies
    fastest); a parameter with no axis takes its value from the spec's ``parameters``."""

    kind: Literal["grid"] = "grid"
    grid: dict[str, GridAxisSpec] = Field(
        min_length=1, description="Axis by family parameter name, e.g. gamma[0].")

    @property
    def count(self) -> int:
        """The number of points."""
        return math.prod(axis.num for axis in self.grid.values())

    @model_validator(mode="after")
    def _bounded(self) -> GridPointsSpec:
        if self.count > MAX_SWEEP_POINTS:
            raise ValueError(f"grid: {self.count} points, more than {MAX_SWEEP_POINTS}")
        return self


class RandomPointsSpec(SpecModel):
    """Points drawn uniformly within the family's bounds:
    ``numpy.random.default_rng(seed).uniform(lows, highs, size=(count, k))``."""

    kind: Literal["random"] = "random"
    count: int = Field(ge=1, le=MAX_SWEEP_POINTS)
    seed: int = Field(default=17, ge=0, le=2**31 - 1)


class FilePointsSpec(SpecModel):
    """Points read from a file pinned by dvc.lock like ``dataset.path``: a ``.npy`` array of
    shape (points, parameters) in family order, or a ``.parquet`` table with one column per
    parameter (named as the family names it)."""

    kind: Literal["file"] = "file"
    path: str = Field(description="Path relative to the project root (.npy or .parquet).")

    @field_validator("path")
    @classmethod
    def _readable(cls, value: str) -> str:
        if Path(value).suffix not in (".npy", ".parquet"):
            raise ValueError("must be a .npy or a .parquet file")
        return project_path(value, field="sweep.points.path")


SweepPointsSpec = Annotated[GridPointsSpec | RandomPointsSpec | FilePointsSpec,
                            Field(discriminator="kind")]
"""Where a sweep's points come from, told apart by ``kind``."""

SWEEP_POINT_KINDS: Final = ("grid", "random", "file")


class SweepSpec(SpecModel):
    """A parameter sweep: every named observable at every point, streamed to Parquet.

    ``chunk_size`` points go to the backend as one submission; left out, it is chosen from the
    backend's limits, the statevector's size (``QHYBRID_SWEEP_MEMORY_BYTES``), the device's
    queue, its circuit breaker and the QPU budget left (docs/sweeps.md).
    """

    points: SweepPointsSpec
    chunk_size: int | None = Field(default=None, ge=1, le=100_000,
                                   description="Points per submission; default: chosen.")
    canary: int = Field(default=64, ge=1, le=10_000,
                        description="Points of the first chunk, run and checked alone.")
    max_qpu_seconds: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="QPU seconds the sweep may use, by the backend's estimate: a sweep that "
        "costs more is refused before anything is submitted; default: no limit.")
