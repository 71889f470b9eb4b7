"""The experiment spec: what a data scientist writes in YAML, validated at the edge."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, ClassVar, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from qhybrid.core._backend_name import check_backend_name, parse_backend_name
from qhybrid.core._errors import InvalidInputError, SpecError
from qhybrid.core._inputs import check_path, parse_yaml, read_input
from qhybrid.core._results import Direction

SPEC_SCHEMA_VERSION: Final = 1


class _Model(BaseModel):
    # NaN or infinity is never a meaningful spec value (a threshold, a parameter, a weight).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class QaoaMaxcutFamily(_Model):
    """QAOA for weighted or unweighted MaxCut on a graph read from data."""

    kind: Literal["qaoa-maxcut"] = "qaoa-maxcut"
    baseline_solvers: ClassVar[tuple[str, ...]] = ("brute-force", "one-exchange")
    reps: int = Field(default=1, ge=1, le=8, description="QAOA depth p.")


class VqeFamily(_Model):
    """VQE for a qubit Hamiltonian (Pauli sum) read from data."""

    kind: Literal["vqe"] = "vqe"
    baseline_solvers: ClassVar[tuple[str, ...]] = ("exact-diagonalisation",)
    ansatz: Literal["real-amplitudes", "efficient-su2"] = "real-amplitudes"
    reps: int = Field(default=1, ge=1, le=8, description="Ansatz layers.")
    entanglement: Literal["linear", "full", "circular"] = "linear"


PauliTerms = tuple[tuple[str, float], ...]
"""A Pauli sum as (label, real coefficient) terms; labels in Qiskit order (rightmost: qubit 0)."""

ObservableName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]

_RESERVED_METRICS: Final = frozenset({"quality", "optimum", "shots"})

OBSERVABLES_SUFFIXES: Final = (".json", ".yaml", ".yml")
"""The kinds of file ``family.observables_path`` may name."""


class CircuitFamily(_Model):
    """A researcher's own circuit: the dataset is its file (OpenQASM 3 ``.qasm`` or QPY
    ``.qpy``); named observables are measured on it, one of them is the objective.

    The observables are given inline (``observables``) or in a file pinned by dvc.lock like
    the dataset (``observables_path``), never both. A family read from a spec with a file
    holds no observables until the application layer reads the file
    (:meth:`with_observables`); only then can a workload be built on it.
    """

    kind: Literal["circuit"] = "circuit"
    baseline_solvers: ClassVar[tuple[str, ...]] = ("exact-diagonalisation",)
    observables: dict[ObservableName, PauliTerms] | None = Field(
        default=None,
        min_length=1,
        description="Name -> Pauli sum as [label, coefficient] terms; labels as wide as the "
        "circuit, in Qiskit order (the rightmost letter acts on qubit 0). Each name is a metric. "
        "Exclusive with observables_path.",
    )
    observables_path: str | None = Field(
        default=None,
        validate_default=True,
        description="A JSON or YAML file of the same mapping (name -> [[label, coefficient], "
        "...]), relative to the project root and pinned by dvc.lock like dataset.path. "
        "Exclusive with observables.",
    )
    objective: str = Field(description="The observable the optimiser and the gates work on.")
    direction: Direction = Field(default="minimise", description="Minimise or maximise it.")
    bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Box bounds by circuit parameter name; parameters not named get [-pi, pi].",
    )

    @field_validator("observables")
    @classmethod
    def _pauli_sums(cls, value: dict[str, PauliTerms] | None) -> dict[str, PauliTerms] | None:
        for name, terms in (value or {}).items():
            if name in _RESERVED_METRICS:
                raise ValueError(f"'{name}' is a metric of its own; name the observable otherwise")
            if not terms:
                raise ValueError(f"{name}: needs at least one [label, coefficient] term")
            widths = {len(label) for label, _c in terms}
            for label, _c in terms:
                if not label or set(label) - set("IXYZ"):
                    raise ValueError(f"{name}: Pauli label '{label}' is not a string of I, X, Y, Z")
            if len(widths) > 1:
                raise ValueError(f"{name}: labels of different widths {sorted(widths)}")
        return value

    @field_validator("observables_path")
    @classmethod
    def _observables_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Runs on the default too (validate_default), so that a family with neither is refused
        # here, naming this field; "observables" is absent from info.data when it was invalid.
        inline = info.data.get("observables")
        if value is None:
            if "observables" in info.data and inline is None:
                raise ValueError("give the observables inline (observables) or a file of them "
                                 "(observables_path)")
            return None
        if inline is not None:
            raise ValueError("give the observables inline (observables) or in a file "
                             "(observables_path), not both")
        if Path(value).suffix not in OBSERVABLES_SUFFIXES:
            raise ValueError(f"must be a {', '.join(OBSERVABLES_SUFFIXES)} file")
        return _project_path(value, field="family.observables_path")

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, value: str, info: ValidationInfo) -> str:
        names = info.data.get("observables")
        if names is not None and value not in names:
            raise ValueError(f"'{value}' is not one of the observables ({', '.join(names)})")
        return value

    @model_serializer(mode="wrap")
    def _one_source_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # The source not given is left out, so that a spec with inline observables dumps (and
        # hashes: spec_sha256, evidence keys) as it did before observables_path existed.
        data: dict[str, object] = handler(self)
        for key in ("observables", "observables_path"):
            if data.get(key, ...) is None:
                del data[key]
        return data

    def with_observables(self, data: object, *, source: str) -> CircuitFamily:
        """This family with the observables read from its ``observables_path`` file inline
        (the path dropped), checked by the same rules as inline ones.

        Args:
            data: The file's parsed document: name -> [[label, coefficient], ...].
            source: The file, for messages.

        Raises:
            SpecError: Naming ``family.observables_path`` (with the offending entry of the
                file in the message), or ``family.objective`` when the file has no observable
                of that name.
        """
        if not isinstance(data, dict):
            raise SpecError(f"family.observables_path: {source} must be a mapping of observable "
                            "names to [[label, coefficient], ...] terms",
                            field="family.observables_path")
        fields = self.model_dump(exclude={"observables_path"}) | {"observables": data}
        try:
            return CircuitFamily.model_validate(fields)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            first = errors[0]["loc"]
            where = "family.objective" if first and first[0] == "objective" else \
                "family.observables_path"
            lines = [f"{_in_file(e['loc'])}: {e['msg']}" for e in errors]
            raise SpecError(f"{where}: the observables in {source} are invalid\n  "
                            + "\n  ".join(lines), field=where) from exc

    @field_validator("bounds")
    @classmethod
    def _increasing(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (low, high) in value.items():
            if not low < high:
                raise ValueError(f"{name}: the lower bound {low} is not below the upper {high}")
        return value


def _in_file(loc: tuple[int | str, ...]) -> str:
    """Where a validation error of :meth:`CircuitFamily.with_observables` lies: inside the file
    (``zz01.0.0``), or at a spec field (``family.objective``)."""
    if loc[:1] == ("observables",):
        return ".".join(str(p) for p in loc[1:]) or "the document"
    return "family." + ".".join(str(p) for p in loc) if loc else "family"


FamilySpec = Annotated[QaoaMaxcutFamily | VqeFamily | CircuitFamily, Field(discriminator="kind")]
"""Every family's options, told apart by ``kind``. A new family adds its model here."""

FAMILY_KINDS: tuple[str, ...] = tuple(
    str(model.model_fields["kind"].default)
    for model in (QaoaMaxcutFamily, VqeFamily, CircuitFamily)
)


class DatasetSpec(_Model):
    """An input file pinned by dvc.lock."""

    path: str = Field(description="Path relative to the project root, an output of dvc.yaml.")

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        return _project_path(value, field="dataset.path")


def _project_path(value: str, *, field: str) -> str:
    if Path(value).is_absolute() or ".." in Path(value).parts:
        raise ValueError("must be a path inside the project, relative to its root")
    try:
        check_path(Path(value), field=field)
    except InvalidInputError as exc:
        raise ValueError(exc.message) from None
    return value


class OptimiserSpec(_Model):
    """The classical optimiser: scipy.optimize.minimize fed by batched evaluations.

    Every gradient is one Estimator PUB holding the point and its finite-difference
    neighbours; the multi-start screen is one PUB holding all start points.
    """

    method: Literal["L-BFGS-B", "SLSQP"] = "L-BFGS-B"
    maxiter: int = Field(default=60, ge=1, le=10_000)
    starts: int = Field(default=16, ge=1, le=4096, description="Random start points screened.")
    finite_difference_step: float = Field(default=1e-3, gt=0, le=0.5)


class SeedSpec(_Model):
    """Every random source of a run."""

    transpiler: int = Field(default=11, ge=0, le=2**31 - 1)
    simulator: int = Field(default=12, ge=0, le=2**31 - 1)
    optimiser: int = Field(default=13, ge=0, le=2**31 - 1)


class IdealGateSpec(_Model):
    """Gate 1: optimise on an ideal simulator."""

    backend: str = "aer"

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        check_backend_name(value)
        return value


class StatisticalGateSpec(_Model):
    """Gate 2: repeat with independent seeds; a confidence interval for the objective."""

    repeats: int = Field(default=5, ge=2, le=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    threshold: float = Field(description="The interval must beat this (objective's direction).")
    tolerance: float = Field(gt=0, description="Largest acceptable interval half-width.")


Probability = Annotated[float, Field(ge=0, le=1)]


class ReadoutNoiseSpec(_Model):
    """Readout (measurement) error of a qubit: the chance of reading the other bit."""

    p1_given_0: Probability = Field(description="P(1|0): a prepared 0 read as 1.")
    p0_given_1: Probability = Field(description="P(0|1): a prepared 1 read as 0.")


class DepolarizingNoiseSpec(_Model):
    """Depolarising error after every gate of a name, on every qubit (or pair) it acts on."""

    one_qubit: dict[str, Probability] = Field(
        default_factory=dict, description="Rate by one-qubit gate name, e.g. {sx: 0.001}.")
    two_qubit: dict[str, Probability] = Field(
        default_factory=dict, description="Rate by two-qubit gate name, e.g. {cx: 0.01}.")

    @model_validator(mode="after")
    def _disjoint(self) -> DepolarizingNoiseSpec:
        both = sorted(set(self.one_qubit) & set(self.two_qubit))
        if both:
            raise ValueError(f"one_qubit and two_qubit both name {both}")
        return self


class ThermalNoiseSpec(_Model):
    """Thermal relaxation (T1, T2) during every gate that has a duration here."""

    t1_us: float = Field(gt=0, le=1e7, description="Energy relaxation time T1, microseconds.")
    t2_us: float = Field(gt=0, le=2e7, description="Dephasing time T2 (<= 2 T1), microseconds.")
    gate_times_ns: dict[str, Annotated[float, Field(gt=0, le=1e7)]] = Field(
        min_length=1, description="Duration by gate name, nanoseconds, e.g. {sx: 35, cx: 300}.")

    @model_validator(mode="after")
    def _physical(self) -> ThermalNoiseSpec:
        if self.t2_us > 2 * self.t1_us:
            raise ValueError(f"t2_us: {self.t2_us} exceeds 2 * t1_us = {2 * self.t1_us}, "
                             "which no physical qubit reaches")
        return self


class NoiseSpec(_Model):
    """A noise model for an Aer backend, built with qiskit-aer's noise module.

    With ``device``, the fake device's model is the base and each part given here replaces
    the device's: ``readout`` (or ``readout_per_qubit``) its readout errors; ``depolarizing``
    or ``thermal_relaxation`` its gate errors (the device combines both per gate, so either
    replaces both).
    """

    device: str | None = Field(
        default=None, pattern=r"^fake_[a-z0-9_]+$",
        description="A fake IBM device whose noise model is the base, e.g. fake_manila.")
    readout: ReadoutNoiseSpec | None = Field(
        default=None, description="One readout error for every qubit.")
    readout_per_qubit: tuple[ReadoutNoiseSpec, ...] | None = Field(
        default=None, min_length=1,
        description="One readout error per qubit, in qubit index order (all of a device's).")
    depolarizing: DepolarizingNoiseSpec | None = None
    thermal_relaxation: ThermalNoiseSpec | None = None

    @model_validator(mode="after")
    def _something(self) -> NoiseSpec:
        if self.readout is not None and self.readout_per_qubit is not None:
            raise ValueError("readout_per_qubit: give either readout (all qubits) or "
                             "readout_per_qubit, not both")
        if not (self.device or self.readout or self.readout_per_qubit or self.depolarizing
                or self.thermal_relaxation):
            raise ValueError("give at least one of device, readout, readout_per_qubit, "
                             "depolarizing, thermal_relaxation")
        return self

    def canonical_json(self) -> str:
        """The section as canonical JSON (sorted keys, no whitespace), the input of its hash."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON: the noise model's identity in fingerprints and
        manifests."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


class MitigationSpec(_Model):
    """Error mitigation for the hardware gate's mitigated arm.

    On ``ibm:`` backends qiskit-ibm-runtime's executor-based primitives apply every technique
    (on real devices and in local testing mode alike). On a noisy Aer backend (``aer-noisy:``,
    or ``aer`` with a ``noise`` section) readout and zne apply (docs/mitigation.md); twirling
    and dynamical decoupling are refused there. The unmitigated arm runs the same circuits
    with every technique off; both are recorded.
    """

    readout: bool = Field(default=False, description="Measurement (readout) error mitigation.")
    zne: bool = Field(default=False, description="Zero-noise extrapolation.")
    zne_noise_factors: tuple[float, ...] = Field(default=(1.0, 3.0, 5.0), min_length=2)
    zne_extrapolator: Literal[
        "linear", "exponential", "double_exponential", "polynomial_degree_2", "fallback"
    ] = "linear"
    twirling: bool = Field(default=False, description="Pauli twirling of gates and measurements.")
    twirling_randomizations: int = Field(default=8, ge=1, le=1024)
    dynamical_decoupling: bool = Field(default=False, description="Dynamical decoupling.")
    dynamical_decoupling_sequence: Literal["XX", "XpXm", "XY4"] = "XX"
    repeats: int = Field(
        default=3, ge=2, le=50,
        description="Seeded repeats of each arm; the improvement's interval is over them.",
    )
    require_improvement: bool = Field(
        default=False,
        description="Promote only if mitigation brings the objective closer to the ideal value, "
        "with the whole interval of the improvement above zero.",
    )

    @field_validator("zne_noise_factors")
    @classmethod
    def _factors(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if (any(f < 1 for f in value) or sorted(value) != list(value)
                or len(set(value)) != len(value)):
            raise ValueError("must be distinct, increasing and at least 1")
        return value

    @model_validator(mode="after")
    def _something(self) -> MitigationSpec:
        if not (self.readout or self.zne or self.twirling or self.dynamical_decoupling):
            raise ValueError("enable at least one of readout, zne, twirling, dynamical_decoupling")
        return self

    def techniques(self) -> tuple[str, ...]:
        """The enabled techniques, by name."""
        names = ("readout", "zne", "twirling", "dynamical_decoupling")
        return tuple(n for n in names if getattr(self, n))


class HardwareGateSpec(_Model):
    """Gate 3: the optimised circuit on the hardware target, compared with the ideal result."""

    backend: str = "ibm:fake_manila"
    mode: Literal["single", "batch", "session"] = Field(
        default="single",
        description="IBM execution mode: one job per submission, a Batch, or a Session.",
    )
    fallback: tuple[str, ...] = Field(
        default=(),
        description="Backends to try in order when the target fails or its breaker is open, "
        "e.g. [aer-noisy:fake_manila, aer]. A fallback result is a downgrade and never passes.",
    )
    mitigation: MitigationSpec | None = None
    noise: NoiseSpec | None = Field(
        default=None,
        description="The noise the target simulates; only for an Aer target (aer, aer:<method> "
        "or aer-noisy:<device>, whose model it overrides).",
    )
    max_degradation: float = Field(
        default=0.25, ge=0, description="Largest acceptable relative loss of the objective."
    )
    max_distance: float = Field(
        default=0.5, ge=0, le=1, description="Largest total variation distance from ideal counts."
    )

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        check_backend_name(value)
        return value

    @field_validator("fallback")
    @classmethod
    def _fallbacks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            check_backend_name(name)
        if len(set(value)) != len(value):
            raise ValueError("lists a backend twice")
        return value

    @model_validator(mode="after")
    def _parity(self) -> HardwareGateSpec:
        # Strict parity: refuse options the backend would ignore instead of dropping them.
        name = parse_backend_name(self.backend)
        ibm = name.kind == "ibm"
        if self.noise is not None:
            if ibm:
                raise ValueError(f"noise: {self.backend} brings its own noise; a noise section "
                                 "applies only to an Aer target (aer or aer-noisy:<device>)")
            if name.device and self.noise.device not in (None, name.device):
                raise ValueError(f"noise.device: {self.noise.device} differs from the target's "
                                 f"device {name.device}")
        if self.mitigation is not None and not ibm:
            if name.device is None and self.noise is None:
                raise ValueError(
                    f"mitigation: {self.backend} is noiseless, there is nothing to mitigate; add "
                    "a noise section, use aer-noisy:<device> or an ibm: backend"
                )
            refused = [t for t in ("twirling", "dynamical_decoupling")
                       if getattr(self.mitigation, t)]
            if refused:
                raise ValueError(
                    f"mitigation.{refused[0]}: Aer cannot apply {', '.join(refused)} (only "
                    "readout and zne); use an ibm: backend or turn it off"
                )
        if self.mode != "single" and not ibm:
            raise ValueError(f"mode: {self.mode} exists only on ibm: backends, not {self.backend}")
        if self.backend in self.fallback:
            raise ValueError("fallback: must not list the target backend itself")
        return self


class BaselineGateSpec(_Model):
    """Gate 4: classical solvers on the same instance."""

    solvers: tuple[Literal["brute-force", "one-exchange", "exact-diagonalisation"], ...] = Field(
        min_length=1
    )
    min_relative_quality: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Quantum objective must reach this fraction of the best baseline's quality.",
    )


class GatesSpec(_Model):
    """The staged gates and their policies.

    ``qhybrid run`` uses none of the statistical and baseline policies, so a spec may leave them
    out; ``promote`` refuses a spec without them, naming the field.
    """

    ideal: IdealGateSpec = IdealGateSpec()
    statistical: StatisticalGateSpec | None = Field(
        default=None, description="Required to promote; a run does not use it.")
    hardware: HardwareGateSpec = HardwareGateSpec()
    baseline: BaselineGateSpec | None = Field(
        default=None, description="Required to promote; a run does not use it.")

    @property
    def statistical_policy(self) -> StatisticalGateSpec:
        """The statistical gate's policy, which a promotion needs.

        Raises:
            SpecError: The spec has none (``gates.statistical``).
        """
        if self.statistical is None:
            raise SpecError(_MISSING_POLICY.format(gate="statistical",
                                                   example="threshold and tolerance"),
                            field="gates.statistical")
        return self.statistical

    @property
    def baseline_policy(self) -> BaselineGateSpec:
        """The baseline gate's policy, which a promotion needs.

        Raises:
            SpecError: The spec has none (``gates.baseline``).
        """
        if self.baseline is None:
            raise SpecError(_MISSING_POLICY.format(gate="baseline", example="solvers"),
                            field="gates.baseline")
        return self.baseline

    def check_promotable(self) -> None:
        """Refuse a promotion of a spec that lacks a policy a promotion's gates need.

        Raises:
            SpecError: Naming the first missing policy.
        """
        _ = self.statistical_policy, self.baseline_policy


_MISSING_POLICY = ("gates.{gate}: a promotion needs the {gate} gate's policy ({example}); "
                   "add it to the spec (`qhybrid run` does without it)")


MAX_SWEEP_POINTS: Final = 1_000_000


class GridAxisSpec(_Model):
    """One swept parameter of a grid: ``numpy.linspace(start, stop, num)``."""

    start: float
    stop: float
    num: int = Field(ge=1, le=MAX_SWEEP_POINTS, description="Values on the axis.")


class GridPointsSpec(_Model):
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


class RandomPointsSpec(_Model):
    """Points drawn uniformly within the family's bounds:
    ``numpy.random.default_rng(seed).uniform(lows, highs, size=(count, k))``."""

    kind: Literal["random"] = "random"
    count: int = Field(ge=1, le=MAX_SWEEP_POINTS)
    seed: int = Field(default=17, ge=0, le=2**31 - 1)


class FilePointsSpec(_Model):
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
        return _project_path(value, field="sweep.points.path")


SweepPointsSpec = Annotated[GridPointsSpec | RandomPointsSpec | FilePointsSpec,
                            Field(discriminator="kind")]
"""Where a sweep's points come from, told apart by ``kind``."""

SWEEP_POINT_KINDS: Final = ("grid", "random", "file")


class SweepSpec(_Model):
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


class ExperimentSpec(_Model):
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
