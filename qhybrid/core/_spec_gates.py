"""The staged gates' policies: ideal, statistical, hardware and baseline."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from qhybrid.core._backend_name import check_backend_name, parse_backend_name
from qhybrid.core._errors import SpecError
from qhybrid.core._spec_model import SpecModel
from qhybrid.core._spec_noise import MitigationSpec, NoiseSpec


class IdealGateSpec(SpecModel):
    """Gate 1: optimise on an ideal simulator."""

    backend: str = "aer"

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        check_backend_name(value)
        return value


class StatisticalGateSpec(SpecModel):
    """Gate 2: repeat with independent seeds; a confidence interval for the objective."""

    repeats: int = Field(default=5, ge=2, le=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    threshold: float = Field(description="The interval must beat this (objective's direction).")
    tolerance: float = Field(gt=0, description="Largest acceptable interval half-width.")


class HardwareGateSpec(SpecModel):
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


class BaselineGateSpec(SpecModel):
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


class GatesSpec(SpecModel):
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
