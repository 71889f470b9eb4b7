"""The experiment spec: what a data scientist writes in YAML, validated at the edge.

The spec's sections live in their own modules: the circuit families (``_spec_family``), the
gates' policies (``_spec_gates``) with the noise and mitigation sections (``_spec_noise``),
and the sweep (``_spec_sweep``), on the common base of ``_spec_model``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from qhybrid.core._errors import SpecError
from qhybrid.core._inputs import parse_yaml, read_input
from qhybrid.core._spec_family import FAMILY_KINDS, CircuitFamily, FamilySpec
from qhybrid.core._spec_gates import GatesSpec
from qhybrid.core._spec_model import SpecModel, project_path
from qhybrid.core._spec_sweep import SWEEP_POINT_KINDS, FilePointsSpec, SweepSpec

SPEC_SCHEMA_VERSION: Final = 1


class DatasetSpec(SpecModel):
    """An input file pinned by dvc.lock."""

    path: str = Field(description="Path relative to the project root, an output of dvc.yaml.")

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        return project_path(value, field="dataset.path")


class OptimiserSpec(SpecModel):
    """The classical optimiser: scipy.optimize.minimize fed by batched evaluations.

    Every gradient is one Estimator PUB holding the point and its finite-difference
    neighbours; the multi-start screen is one PUB holding all start points.
    """

    method: Literal["L-BFGS-B", "SLSQP"] = "L-BFGS-B"
    maxiter: int = Field(default=60, ge=1, le=10_000)
    starts: int = Field(default=16, ge=1, le=4096, description="Random start points screened.")
    finite_difference_step: float = Field(default=1e-3, gt=0, le=0.5)


class SeedSpec(SpecModel):
    """Every random source of a run."""

    transpiler: int = Field(default=11, ge=0, le=2**31 - 1)
    simulator: int = Field(default=12, ge=0, le=2**31 - 1)
    optimiser: int = Field(default=13, ge=0, le=2**31 - 1)


class ExperimentSpec(SpecModel):
    """A versioned experiment: circuit family, data, optimiser, seeds and gate policies."""

    schema_version: Literal[1] = SPEC_SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$", description="Semantic version.")
    description: str = ""
    family: FamilySpec
    dataset: DatasetSpec
    optimiser: OptimiserSpec = OptimiserSpec()
    parameters: tuple[float, ...] | None = Field(
        default=None, description="Fixed parameters instead of optimising; family order."
    )
    shots: int = Field(default=4000, ge=1, le=1_000_000)
    seeds: SeedSpec = SeedSpec()
    gates: GatesSpec = GatesSpec()
    sweep: SweepSpec | None = Field(
        default=None, description="A parameter sweep, for `qhybrid sweep` (docs/sweeps.md).")

    @model_validator(mode="after")
    def _baselines_fit_family(self) -> ExperimentSpec:
        if self.gates.baseline is None:
            return self
        wrong = set(self.gates.baseline.solvers) - set(self.family.baseline_solvers)
        if wrong:
            raise ValueError(
                f"gates.baseline.solvers: {sorted(wrong)} do not apply to {self.family.kind}"
            )
        return self

    def input_paths(self) -> dict[str, str]:
        """Every input file the spec names, by its field: ``dataset.path``, and
        ``family.observables_path`` and ``sweep.points.path`` when given. Each is pinned by
        dvc.lock and recorded on the run."""
        paths = {"dataset.path": self.dataset.path}
        if isinstance(self.family, CircuitFamily) and self.family.observables_path is not None:
            paths["family.observables_path"] = self.family.observables_path
        if self.sweep is not None and isinstance(self.sweep.points, FilePointsSpec):
            paths["sweep.points.path"] = self.sweep.points.path
        return paths

    def canonical_json(self) -> str:
        """The spec as canonical JSON (sorted keys, no whitespace), the input of its hash."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def flat_params(self) -> dict[str, str]:
        """The spec flattened to dotted keys, for MLflow params."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: object) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    # MLflow keys take no brackets: a parameter gamma[0] becomes gamma.0.
                    key = str(key).replace("[", ".").replace("]", "")
                    walk(f"{prefix}.{key}" if prefix else key, item)
            else:
                out[prefix] = json.dumps(value) if isinstance(value, list) else str(value)

        walk("", self.model_dump(mode="json"))
        return out


_UNION_TAGS: Final = {"family": frozenset(FAMILY_KINDS), "points": frozenset(SWEEP_POINT_KINDS)}


def _location(loc: tuple[int | str, ...]) -> str:
    # Drop the discriminator tag pydantic puts after a union's field (family.<kind>...,
    # sweep.points.<kind>...): users never write it as a key.
    parts = [str(p) for i, p in enumerate(loc)
             if not (i > 0 and isinstance(p, str)
                     and p in _UNION_TAGS.get(str(loc[i - 1]), frozenset()))]
    return ".".join(parts) or "<spec>"


def spec_from_mapping(data: object, *, source: str = "<spec>") -> ExperimentSpec:
    """Validate a parsed document as an :class:`ExperimentSpec`.

    Raises:
        SpecError: Naming the first offending field, with every problem in the message.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the document must be a mapping of spec fields", field="<spec>")
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        lines = [f"{_location(e['loc'])}: {e['msg']}" for e in errors]
        raise SpecError(
            f"{source}: invalid spec\n  " + "\n  ".join(lines), field=_location(errors[0]["loc"])
        ) from exc


def load_spec(path: Path) -> ExperimentSpec:
    """Read and validate a YAML spec file.

    Raises:
        SpecError: The file is missing, not a regular file, too large, not UTF-8, not YAML
            (or repeats a key, or nests too deeply), or does not validate.
    """
    text = read_input(path, field="SPEC", what="spec file", error=SpecError)
    data = parse_yaml(text, source=str(path), field="SPEC", error=SpecError)
    return spec_from_mapping(data, source=str(path))
