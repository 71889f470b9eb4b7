"""The hardware gate's noise model and error mitigation sections of a spec."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from qhybrid.core._spec_model import SpecModel

Probability = Annotated[float, Field(ge=0, le=1)]


class ReadoutNoiseSpec(SpecModel):
    """Readout (measurement) error of a qubit: the chance of reading the other bit."""

    p1_given_0: Probability = Field(description="P(1|0): a prepared 0 read as 1.")
    p0_given_1: Probability = Field(description="P(0|1): a prepared 1 read as 0.")


class DepolarizingNoiseSpec(SpecModel):
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


class ThermalNoiseSpec(SpecModel):
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


class NoiseSpec(SpecModel):
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


class MitigationSpec(SpecModel):
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
