"""The ``--json`` documents of the inspection commands and of every error, as contracts.

Each carries ``schema_version``; its JSON Schema is generated into docs/schema/ with the rest.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from qhybrid.core._results import (
    GateResult,
    ModelVersionRecord,
    PromotionLogRecord,
    RunManifest,
)

REPORTS_SCHEMA_VERSION: Final = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorRecord(_Model):
    """A classified error, as every entry point reports it."""

    error: str = Field(description="The qhybrid error class, e.g. SpecError.")
    layer: str = Field(description="validation, transport, submission, execution, ...")
    transient: bool = Field(description="Whether the same call may succeed if retried.")
    field: str | None = Field(default=None, description="The offending input field, if known.")
    message: str
    provider_status: str | None = None
    recovery: str | None = Field(default=None, description="What was done about it.")
    detail: dict[str, object] | None = Field(default=None, description="Evidence, if any.")


class ErrorReport(_Model):
    """The one JSON document a failed command prints with ``--json``."""

    schema_version: Literal[1] = REPORTS_SCHEMA_VERSION
    error: ErrorRecord


NoisyReplayStatus = Literal["identical", "different", "not-applicable", "not-recorded"]


class NoisyReplayResult(_Model):
    """The hardware gate's noisy sampling, executed again (``manifest.hardware``).

    ``identical`` or ``different`` when the gate ran on Aer (a noise section, or an
    ``aer-noisy:`` device): sampled again with the recorded noise, seeds and shots.
    ``not-applicable`` when it ran on an ``ibm:`` backend, which cannot be executed again
    here; ``not-recorded`` when the manifest holds no hardware counts (a plain run, or a
    manifest written before they were recorded).
    """

    status: NoisyReplayStatus
    reason: str = Field(description="Why, in a sentence.")
    backend: str | None = Field(default=None, description="Where the gate's counts came from.")
    noise_sha256: str | None = Field(default=None, description="The noise simulated again.")
    recorded_sha256: str | None = None
    replayed_sha256: str | None = None
    differing_outcomes: int | None = Field(default=None,
                                           description="Bitstrings whose counts differ.")


_NOT_RECORDED = NoisyReplayResult(status="not-recorded",
                                  reason="the manifest records no hardware counts")


class ReplayReport(_Model):
    """What ``qhybrid replay`` found."""

    schema_version: Literal[1] = REPORTS_SCHEMA_VERSION
    manifest: str = Field(description="The manifest replayed.")
    mlflow_run_id: str | None = None
    identical: bool = Field(description="The replayed counts equal the recorded ones exactly.")
    circuit_identical: bool = Field(description="The final circuit's OpenQASM 3 hash matches.")
    recorded_sha256: str
    replayed_sha256: str
    differing_outcomes: int = Field(description="Bitstrings whose counts differ.")
    noisy: NoisyReplayResult = Field(
        default=_NOT_RECORDED, description="The hardware gate's noisy counts, sampled again.")

    @property
    def reproduced(self) -> bool:
        """Counts and circuit as recorded, and the noisy counts too where they could be
        sampled again."""
        return self.identical and self.circuit_identical and self.noisy.status != "different"


class LeaseRecord(_Model):
    """A provider job, session or batch a flow run opened."""

    id: int
    flow_run_id: str | None
    backend: str
    kind: str = Field(description="job, session or batch.")
    provider_id: str
    status: str = Field(description="open, closed or cancelled.")


class LeaseRelease(_Model):
    """What happened to one lease on release."""

    kind: str
    provider_id: str
    backend: str
    released: bool = Field(description="False when releasing failed; the lease stays open.")
    detail: str

    def __str__(self) -> str:
        outcome = "cancelled" if self.released else "release failed, still open"
        return f"{self.kind} {self.provider_id} on {self.backend}: {outcome} ({self.detail})"


class LeasesReport(_Model):
    """``qhybrid leases``: what was released, and what is still open."""

    schema_version: Literal[1] = REPORTS_SCHEMA_VERSION
    released: tuple[LeaseRelease, ...] = ()
    open: tuple[LeaseRecord, ...] = ()


class RunRecord(_Model):
    """An MLflow run as qhybrid reads it back."""

    run_id: str
    name: str | None
    status: str
    start_time: int | None = Field(description="Epoch milliseconds.")
    end_time: int | None = None
    artifact_uri: str | None = None
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    tags: dict[str, str] = Field(default={}, description="Without MLflow's own mlflow.* tags.")


class ShowReport(_Model):
    """``qhybrid show``: a promoted version or a run, with its gate runs."""

    schema_version: Literal[1] = REPORTS_SCHEMA_VERSION
    version: ModelVersionRecord | None = Field(description="When shown by NAME@ALIAS.")
    run: RunRecord
    gates: tuple[RunRecord, ...] = Field(description="The nested gate runs, in start order.")
    manifest: RunManifest | None = Field(
        default=None, description="The run's manifest, from the shared state store or the "
        "tracking store's artifacts; null if the run recorded none.")
    promotions: tuple[PromotionLogRecord, ...] = Field(
        default=(), description="Every promotion decision about the run's experiment, oldest "
        "first: the shared promotion log (the run's promotion.json artifact if the state store "
        "holds none).")
    gate_results: tuple[GateResult, ...] = Field(
        default=(), description="Each gate's verdict with its criteria (value, op, limit), "
        "from the gate runs' gate.json artifacts, in the order of ``gates``.")


class RegisteredExperiment(_Model):
    """One registered experiment and its versions, newest first."""

    name: str
    versions: tuple[ModelVersionRecord, ...]


class ExperimentsReport(_Model):
    """``qhybrid experiments``: every registered experiment."""

    schema_version: Literal[1] = REPORTS_SCHEMA_VERSION
    experiments: tuple[RegisteredExperiment, ...] = ()


class SweepReport(_Model):
    """What ``qhybrid sweep --json`` prints: a parameter sweep streamed to Parquet."""

    schema_version: Literal[1] = REPORTS_SCHEMA_VERSION
    experiment: str
    version: str
    family: str
    backend: str
    parameters: tuple[str, ...] = Field(description="Swept parameters, family order.")
    observables: tuple[str, ...] = Field(description="Estimated observables, by metric name.")
    points: int = Field(ge=0)
    chunks: int = Field(ge=0, description="Submissions, the canary's included.")
    chunk_size: int = Field(ge=1)
    chunk_size_reason: str = Field(description="Why that chunk size (given, or chosen how).")
    canary_points: int = Field(ge=0, description="Points of the first chunk, checked alone.")
    exact: bool = Field(description="Values are exact expectation values (stderr 0).")
    seconds: float = Field(ge=0)
    output: str = Field(description="The Parquet file, one row per point.")
    columns: tuple[str, ...] = Field(description="The Parquet file's columns.")
    mlflow_run_id: str
    prefect_flow_run_id: str | None = None
