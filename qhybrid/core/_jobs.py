"""The job service's wire contracts: what a client sends, what it reads back.

A client sends a :data:`JobRequest` (one closed model per ``kind``), gets a :class:`JobRecord`
(one status model for every kind and backend) and, once the job has succeeded, a
:class:`JobResult` (a sweep's also names its Parquet file, downloaded by reference). Errors are
RFC 9457 :class:`ProblemDocument` objects.
"""

from __future__ import annotations

import math
from typing import Annotated, Final, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from qhybrid.core._backend_name import check_backend_name, is_trace_id
from qhybrid.core._reports import ErrorRecord, SweepReport
from qhybrid.core._results import RunReport
from qhybrid.core._spec_noise import MitigationSpec

JOBS_SCHEMA_VERSION: Final = 1

JobKind = Literal["run", "promote", "evaluate", "sweep"]
JobStatus = Literal["queued", "validating", "waiting-backend", "running", "post-processing",
                    "succeeded", "failed", "cancelled"]
SlaClass = Literal["interactive", "near-real-time", "batch-research"]
WebhookState = Literal["pending", "delivered", "failed"]

JOB_STATUSES: Final[tuple[JobStatus, ...]] = (
    "queued", "validating", "waiting-backend", "running", "post-processing", "succeeded",
    "failed", "cancelled")
TERMINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})
SLA_CLASSES: Final[tuple[SlaClass, ...]] = ("interactive", "near-real-time", "batch-research")

_MODEL_REF = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}@[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
MAX_PARAMETER_SETS: Final = 10_000


MAX_DOCUMENT_DEPTH: Final = 64
"""How deeply an inline spec or instance may nest (a spec nests about 4 levels)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_document(value: dict[str, object]) -> dict[str, object]:
    """Refuse a document nested deeper than MAX_DOCUMENT_DEPTH or holding a non-finite number
    (JSON has none; a parser may still read 1e999 as infinity)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DOCUMENT_DEPTH:
            raise ValueError(f"nests deeper than {MAX_DOCUMENT_DEPTH} levels")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("holds a non-finite number")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


class _JobRequestBase(_Model):
    """What every kind of job takes besides its own inputs."""

    schema_version: Literal[1] = JOBS_SCHEMA_VERSION
    backend: str | None = Field(
        default=None,
        description="Backend preference (aer, aer-noisy:<fake>, ibm:<device>); default: the "
        "experiment's own. A run or sweep runs there; a promotion uses it for its hardware "
        "gate.",
    )
    shots: int | None = Field(default=None, ge=1, le=1_000_000,
                              description="Shots per circuit; default: the experiment's.")
    mitigation: MitigationSpec | None = Field(
        default=None, description="Error mitigation for hardware; default: the experiment's.")
    sla: SlaClass = Field(default="batch-research",
                          description="Service class: its queue, batching window and retries.")
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
        description="The same key with the same body returns the same job; a different body "
        "is refused (409).",
    )
    callback_url: AnyHttpUrl | None = Field(
        default=None, description="Called (signed, retried) when the job ends.")
    trace_id: str | None = Field(
        default=None, description="The client's trace id (32 lowercase hex digits); a W3C "
        "traceparent header is taken too. Default: a new one.")

    _backend = field_validator("backend")(check_backend_name)

    @field_validator("trace_id")
    @classmethod
    def _trace(cls, value: str | None) -> str | None:
        if value is not None and not is_trace_id(value):
            raise ValueError("a trace id is 32 lowercase hex digits, not all zero")
        return value


class _SpecJobRequest(_JobRequestBase):
    spec: dict[str, object] | None = Field(
        default=None, description="The experiment spec inline, as the CLI's YAML file holds it.")
    spec_path: str | None = Field(
        default=None, min_length=1, max_length=4096,
        description="Or the spec's path, relative to the service's project root.")

    @field_validator("spec")
    @classmethod
    def _spec_document(cls, value: dict[str, object] | None) -> dict[str, object] | None:
        return None if value is None else _check_document(value)

    @model_validator(mode="after")
    def _one_spec(self) -> _SpecJobRequest:
        if (self.spec is None) == (self.spec_path is None):
            raise ValueError("give exactly one of spec and spec_path")
        return self


class RunJobRequest(_SpecJobRequest):
    """One run of an experiment on one backend, tracked in MLflow, without gates."""

    kind: Literal["run"]


class PromoteJobRequest(_SpecJobRequest):
    """Every gate of an experiment, promoting it in the registry if all pass."""

    kind: Literal["promote"]


class SweepJobRequest(_SpecJobRequest):
    """A parameter sweep: every named observable of the experiment at every point of its
    spec's ``sweep`` section, on one backend, to a Parquet file (docs/sweeps.md)."""

    kind: Literal["sweep"]


class EvaluateJobRequest(_JobRequestBase):
    """A promoted experiment on new inputs: its circuit family and parameters, by alias."""

    kind: Literal["evaluate"]
    model: str = Field(pattern=_MODEL_REF,
                       description="A registered experiment and alias, e.g. maxcut@champion.")
    parameter_sets: list[Annotated[list[float], Field(min_length=1)]] | None = Field(
        default=None, min_length=1, max_length=MAX_PARAMETER_SETS,
        description="Parameter arrays, in the experiment's parameter order; default: the "
        "promoted parameters.")
    instance: dict[str, object] | None = Field(
        default=None, description="A new problem instance, as the experiment's dataset holds "
        "it; default: the promoted experiment's own.")
    output: Literal["values", "samples"] = Field(
        default="values", description="Expectation values of the objective, or measured counts.")

    @field_validator("instance")
    @classmethod
    def _instance_document(cls, value: dict[str, object] | None) -> dict[str, object] | None:
        return None if value is None else _check_document(value)

    @field_validator("parameter_sets")
    @classmethod
    def _finite(cls, value: list[list[float]] | None) -> list[list[float]] | None:
        if value is not None:
            for i, row in enumerate(value):
                if not all(math.isfinite(x) for x in row):
                    raise ValueError(f"parameter set {i} holds a non-finite number")
        return value


AnyJobRequest = RunJobRequest | PromoteJobRequest | EvaluateJobRequest | SweepJobRequest
"""Any job request, undiscriminated (a function's parameter type)."""
JobRequest = Annotated[AnyJobRequest, Field(discriminator="kind")]
JOB_REQUEST: Final[TypeAdapter[AnyJobRequest]] = TypeAdapter(JobRequest)


class JobTransition(_Model):
    """A status a job entered, and when."""

    status: JobStatus
    sub_status: str | None = Field(default=None, description="e.g. the gate under way.")
    at: str = Field(description="ISO 8601, UTC.")


class WebhookAttemptRecord(_Model):
    """One attempt to call a job's callback URL."""

    attempt: int
    at: str
    status_code: int | None = None
    error: str | None = None
    delivered: bool


class WebhookRecord(_Model):
    """Where a job's callback goes and how it went."""

    url: str
    state: WebhookState
    attempts: tuple[WebhookAttemptRecord, ...] = ()


class JobRecord(_Model):
    """A job's status: one model for every kind and backend."""

    schema_version: Literal[1] = JOBS_SCHEMA_VERSION
    id: str
    kind: JobKind
    status: JobStatus
    sub_status: str | None = None
    sla: SlaClass
    client: str
    experiment: str | None = Field(default=None, description="The experiment (or model) name.")
    family: str | None = None
    backend: str | None = Field(default=None, description="The backend asked for, if any.")
    idempotency_key: str | None = None
    trace_id: str
    created_at: str
    updated_at: str
    transitions: tuple[JobTransition, ...]
    prefect_flow_run_id: str | None = None
    mlflow_run_id: str | None = None
    provider_job_ids: tuple[str, ...] = ()
    dispatch_attempts: int = Field(default=0, description="Flow runs started for the job.")
    downgrade: str | None = Field(
        default=None, description="Why the job ran elsewhere or later than asked: answered "
        "from the simulator path, or delivered asynchronously under a slower SLA class (an "
        "interactive job behind a long hardware queue), or a hardware fallback.")
    error: ErrorRecord | None = None
    result_url: str | None = None
    webhook: WebhookRecord | None = None


class JobPage(_Model):
    """One page of ``GET /v1/jobs``."""

    schema_version: Literal[1] = JOBS_SCHEMA_VERSION
    items: tuple[JobRecord, ...]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for more.")


class ResultData(_Model):
    """Where a result's data is kept apart from the result object (``GET`` it): the full
    document of a large result, or a sweep's Parquet file."""

    href: str = Field(description="The URL path of the data.")
    media_type: str = "application/json"
    bytes: int = Field(ge=0, description="Its size.")
    sha256: str = Field(description="Its SHA-256, hex (also the response's ETag).")


class JobResult(_Model):
    """The standard result object of a succeeded job.

    A result larger than the service's inline limit comes by reference: ``values``,
    ``samples``, ``metrics`` and ``report`` are left out here, and ``data`` names the URL of
    the full document (this same model, with every field).
    """

    schema_version: Literal[1] = JOBS_SCHEMA_VERSION
    job_id: str
    kind: JobKind
    source: Literal["simulator", "hardware"]
    backend: str = Field(description="Where the work ran.")
    downgrade: str | None = None
    parameter_names: tuple[str, ...] = ()
    values: tuple[float, ...] | None = Field(
        default=None, description="evaluate: the objective's expectation value per parameter set.")
    samples: tuple[dict[str, int], ...] | None = Field(
        default=None, description="evaluate with output=samples: counts per parameter set.")
    metrics: tuple[dict[str, float], ...] | None = Field(
        default=None, description="evaluate with output=samples: the family's metrics per set.")
    shots: int | None = None
    report: RunReport | None = Field(default=None, description="run and promote: the report.")
    sweep: SweepReport | None = Field(
        default=None, description="sweep: the report (its ``output`` is the service's own "
        "path; download the file from ``parquet``).")
    parquet: ResultData | None = Field(
        default=None, description="sweep: where to download the Parquet file, one row per "
        "point (application/vnd.apache.parquet), with its size and SHA-256.")
    data: ResultData | None = Field(
        default=None, description="Set when the result is too large to embed: where it is.")


class ProblemDocument(_Model):
    """An RFC 9457 problem document: every 4xx and 5xx of the job API."""

    model_config = ConfigDict(frozen=True, extra="allow")

    schema_version: Literal[1] = JOBS_SCHEMA_VERSION
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = Field(default=None, description="The offending request field.")
    errors: tuple[dict[str, object], ...] = ()
