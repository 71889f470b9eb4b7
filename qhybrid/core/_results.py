"""Result contracts: gate outcomes, decisions, reports and the run manifest."""

from __future__ import annotations

import math
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

REPORT_SCHEMA_VERSION: Final = 1
MANIFEST_SCHEMA_VERSION: Final = 1

GateName = Literal["ideal", "statistical", "hardware", "baseline"]
Direction = Literal["maximise", "minimise"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrialResult(_Model):
    """One trial on one backend: parameters optimised (or taken from the spec), then sampled
    and analysed.

    Attributes:
        backend: Where it ran.
        parameters: Final parameters, in the family's documented order.
        counts: Counts of the measured circuit at ``parameters``.
        metrics: The family's metrics. An estimate-derived ``<metric>`` carries
            ``<metric>.stderr``, its standard error over ``shots`` shots; on an exact
            simulator (``exact`` = 1) ``<metric>`` is exact and ``<metric>.sampled`` is the
            counts' value that ``<metric>.stderr`` belongs to.
        history: The objective as the optimiser minimised it, per iteration; empty when fixed.
        evaluations: Parameter points the optimiser evaluated.
        batches: Batched estimator calls (PUBs) the optimiser made.
        quantum_seconds: Wall time inside the executor.
        classical_seconds: Wall time in the optimiser and the analysis.
        seeds: The seeds this trial used.
    """

    backend: str
    parameters: tuple[float, ...]
    counts: dict[str, int]
    metrics: dict[str, float]
    history: tuple[float, ...] = ()
    evaluations: int = 0
    batches: int = 0
    quantum_seconds: float = 0.0
    classical_seconds: float = 0.0
    seeds: dict[str, int] = {}


class CriterionResult(_Model):
    """One explicit criterion of a verdict: ``value op limit``."""

    name: str
    value: float
    op: Literal[">=", "<=", "=="]
    limit: float
    passed: bool


class GateResult(_Model):
    """The outcome of one gate."""

    gate: GateName
    passed: bool
    backend: str
    metrics: dict[str, float]
    criteria: tuple[CriterionResult, ...] = ()
    reasons: tuple[str, ...] = ()
    seconds: float = 0.0
    mlflow_run_id: str | None = None
    downgraded_from: str | None = Field(
        default=None, description="The target backend, when a fallback produced this result."
    )


class BaselineResult(_Model):
    """One classical solver's answer on the same instance."""

    solver: str
    objective: float
    quality: float = Field(description="Solution quality on the family's primary scale.")
    seconds: float
    exact: bool


class PromotionDecision(_Model):
    """What the gates' evidence means for the registry."""

    promote: bool
    aliases: tuple[Literal["challenger", "champion"], ...] = ()
    reasons: tuple[str, ...]
    score: float | None = Field(default=None, description="Primary metric compared to champion.")
    champion_score: float | None = None


class ModelVersionRecord(_Model):
    """A registered model version and the aliases it holds."""

    name: str
    version: str
    run_id: str | None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = {}


class PromotionLogRecord(_Model):
    """One line of the append-only promotion log (aliases keep no history)."""

    schema_version: Literal[1] = 1
    timestamp: str
    experiment: str
    version: str
    spec_sha256: str
    mlflow_run_id: str
    promote: bool
    registered_version: str | None
    aliases: tuple[str, ...]
    reasons: tuple[str, ...]
    score: float | None
    champion_score: float | None


class DowngradeRecord(_Model):
    """A fallback: work meant for one backend ran on a lesser one."""

    role: str = Field(description="Which execution was downgraded (e.g. hardware).")
    requested: str
    used: str
    reason: dict[str, object] = Field(description="The error that forced it, classified.")
    dropped: tuple[str, ...] = Field(default=(), description="Options the fallback cannot apply.")


class MitigationRecord(_Model):
    """The hardware gate's mitigated and unmitigated arms on the same circuit and parameters."""

    techniques: tuple[str, ...]
    applied_options: dict[str, object] = Field(
        description="Options as the primitive received them."
    )
    ideal_value: float
    unmitigated_value: float
    unmitigated_std: float = Field(description="Spread over the repeats.")
    mitigated_value: float
    mitigated_std: float
    improvement: float = Field(description="|unmitigated - ideal| - |mitigated - ideal|.")
    improvement_low: float
    improvement_high: float
    confidence: float
    repeats: int
    unmitigated_values: tuple[float, ...] = Field(description="Raw estimates, one per repeat.")
    mitigated_values: tuple[float, ...]
    unmitigated_seconds: float
    mitigated_seconds: float
    unmitigated_qpu_seconds: float
    mitigated_qpu_seconds: float
    unmitigated_shots: int | None = Field(default=None, description="Shots the provider reports.")
    mitigated_shots: int | None = Field(
        default=None, description="Including the extra circuits mitigation runs (calibration, "
        "noise-scaled copies, twirls), as the provider reports them.")
    observables: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Every observable the arms estimated, by name (the "
        "objective's first): its ideal value, each arm's mean and mean distance from it over "
        "the repeats, and the improvement (the distances' difference) with its interval.")


class ExecutionRecord(_Model):
    """How the execution plane behaved during a run: what was paid for and what went wrong."""

    provider_submissions: int = Field(description="Jobs the providers accepted from this run.")
    distinct_jobs: int = Field(description="Distinct idempotency keys executed.")
    job_ids: tuple[str, ...] = ()
    reattachments: int = Field(default=0, description="Results taken from an existing job.")
    retries_by_class: dict[str, int] = {}
    failures_by_class: dict[str, int] = {}
    breaker_trips: int = 0
    fallbacks: tuple[DowngradeRecord, ...] = ()
    leases_opened: int = 0
    leases_closed: int = 0
    qpu_seconds_estimate: float = Field(default=0.0, description="Pre-flight estimate, all jobs.")
    mitigation: MitigationRecord | None = None


class CircuitRecord(_Model):
    """A circuit as executed: its OpenQASM 3 hash and where its files are."""

    role: str
    sha256: str
    num_qubits: int
    depth: int
    qasm3_path: str | None = None
    qpy_path: str | None = None


class ManifestSeeds(_Model):
    """Every seed a run used, as recorded (none may be missing)."""

    transpiler: int = Field(ge=0, le=2**31 - 1)
    simulator: int = Field(ge=0, le=2**31 - 1)
    optimiser: int = Field(ge=0, le=2**31 - 1)


class DataPinRecord(_Model):
    """One input file as a run used it."""

    md5: str = Field(pattern=r"^[0-9a-f]{32}$")
    dvc_lock_md5: str | None = None
    stage: str | None = None
    matches_lock: bool


class HardwareCountsRecord(_Model):
    """The hardware gate's counts as sampled, so that a replay can sample them again where the
    gate ran on a simulator (an Aer target with its noise, or an ``aer-noisy:`` fallback)."""

    backend: str = Field(description="The backend that sampled them: the gate's target, or the "
                         "fallback that stood in for it.")
    noise_applied: bool = Field(description="Whether the manifest's noise section was the noise "
                                "simulated (on the target; a fallback simulates its own).")
    counts: dict[str, Annotated[int, Field(ge=0)]]
    counts_sha256: str = Field(description="SHA-256 of the counts' canonical JSON.")


class RunManifest(_Model):
    """Everything needed to rerun a run."""

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    kind: Literal["run", "promotion"]
    experiment: str
    version: str
    spec: dict[str, object]
    spec_sha256: str
    parameters: tuple[float, ...] = Field(description="Final parameters; finite.")
    parameter_names: tuple[str, ...]
    seeds: ManifestSeeds
    shots: int = Field(ge=1, le=1_000_000)
    backends: dict[str, dict[str, object]]
    circuits: tuple[CircuitRecord, ...]
    ideal_counts: dict[str, Annotated[int, Field(ge=0)]]
    ideal_counts_sha256: str
    data: dict[str, DataPinRecord]
    packages: dict[str, str]
    git_commit: str | None
    prefect_flow_run_id: str | None
    mlflow_run_id: str | None
    created: str
    execution: ExecutionRecord | None = None
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="The recorded execution's metrics: on an ideal simulator each exact value "
        "with '<m>.sampled', '<m>.stderr' and 'shots' beside it; elsewhere the sampled value "
        "with '<m>.stderr'.")
    noise: dict[str, object] | None = Field(
        default=None, description="The hardware gate's noise section, as the spec gave it.")
    noise_sha256: str | None = Field(
        default=None, description="SHA-256 of the noise section's canonical JSON.")
    hardware: HardwareCountsRecord | None = Field(
        default=None, description="The hardware gate's counts (a promotion's); absent from runs "
        "without that gate and from manifests written before they were recorded.")

    @field_validator("parameters")
    @classmethod
    def _finite(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(x) for x in value):
            raise ValueError("parameters must be finite numbers")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RunManifest:
        if len(self.parameters) != len(self.parameter_names):
            raise ValueError(f"{len(self.parameters)} parameters for "
                             f"{len(self.parameter_names)} parameter names")
        return self


class RunReport(_Model):
    """The ``--json`` document of ``qhybrid run`` and ``qhybrid promote``."""

    schema_version: Literal[1] = REPORT_SCHEMA_VERSION
    kind: Literal["run", "promotion"]
    experiment: str
    version: str
    family: str
    objective: str
    direction: Direction
    backend: str = Field(description="Where the recorded execution ran.")
    metrics: dict[str, float] = Field(description=(
        "The recorded execution's metrics: with ``shots``, ``<metric>.stderr`` (standard error "
        "over those shots) for every sampled metric, and, when ``exact`` = 1 (ideal simulator), "
        "exact ``<metric>`` values beside the sampled ``<metric>.sampled``."))
    parameters: dict[str, float] = Field(description="Final parameters by name.")
    gates: tuple[GateResult, ...] = ()
    baselines: tuple[BaselineResult, ...] = ()
    decision: PromotionDecision | None = None
    registered_version: str | None = None
    mlflow_run_id: str | None
    prefect_flow_run_id: str | None
    manifest: str | None
    data_overrides: tuple[str, ...] = ()
    execution: ExecutionRecord | None = None
