"""SLA classes and how queued jobs become dispatch groups (pure: no store, no clock).

Each class maps to a Prefect work queue with its own priority and concurrency limit, and has
its own batching window: a group is dispatched once its oldest job has waited ``window`` or it
holds ``max_batch`` jobs. Jobs are grouped by class, kind, backend and experiment, so that one
flow run serves jobs whose circuits can share PUBs.

A class also has its own retry policy for provider submissions (:func:`class_settings`) and
its own answer to a long hardware queue (``on_long_queue``): wait for the device, answer from
the simulator path, or hand the job over to a slower class and deliver it asynchronously.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qhybrid.core import InvalidInputError, Settings, SlaClass, parse_json
from qhybrid_control._job_rows import QueuedJob


class SlaPolicy(BaseModel):
    """One service class."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: str = Field(description="The Prefect work queue its flow runs go to.")
    priority: int = Field(ge=1, description="Work queue priority (1 is served first).")
    concurrency: int = Field(ge=1, description="Flow runs of this class at once.")
    window_seconds: float = Field(ge=0, description="Batching window; 0 dispatches at once.")
    max_batch: int = Field(ge=1, le=10_000, description="Jobs per flow run at most.")
    max_dispatch_attempts: int = Field(
        ge=1, description="Flow runs a job may be given before it fails (crashed workers).")
    queue_target_seconds: float = Field(
        gt=0, description="Accept-to-start time the class promises (alerts compare to it).")
    on_long_queue: Literal["wait", "simulator", "asynchronous"] = Field(
        default="wait",
        description="An evaluation asking for IBM hardware with more than max_hardware_queue "
        "jobs queued ahead: wait for the device, answer it from the simulator path (aer), or "
        "hand it over to asynchronous_class (queued again there, delivered when it ends).")
    max_hardware_queue: int = Field(
        default=0, ge=0, description="Jobs ahead on hardware beyond which on_long_queue "
        "applies.")
    asynchronous_class: SlaClass | None = Field(
        default=None, description="The class an evaluation is handed over to when "
        "on_long_queue is 'asynchronous'.")
    submission_retries: int | None = Field(
        default=None, ge=0, le=20, description="Retries per provider submission of this "
        "class's jobs; None: the settings' (QHYBRID_SUBMISSION_RETRIES).")
    retry_backoff_seconds: float | None = Field(
        default=None, ge=0, le=600, description="First retry delay of this class's "
        "submissions (doubling); None: the settings' (QHYBRID_RETRY_BACKOFF_SECONDS).")

    @model_validator(mode="after")
    def _handed_over_somewhere(self) -> SlaPolicy:
        if self.on_long_queue == "asynchronous" and self.asynchronous_class is None:
            raise ValueError("on_long_queue 'asynchronous' needs an asynchronous_class")
        return self


DEFAULT_POLICIES: Final[Mapping[str, SlaPolicy]] = {
    # Interactive callers would rather see a fast failure than a minute of retries.
    "interactive": SlaPolicy(queue="interactive", priority=1, concurrency=2, window_seconds=0,
                             max_batch=32, max_dispatch_attempts=3, queue_target_seconds=15,
                             on_long_queue="simulator", max_hardware_queue=10,
                             asynchronous_class="batch-research", submission_retries=1,
                             retry_backoff_seconds=0.5),
    "near-real-time": SlaPolicy(queue="near-real-time", priority=2, concurrency=2,
                                window_seconds=2, max_batch=64, max_dispatch_attempts=3,
                                queue_target_seconds=120),
    # A research batch has an hour: ride out a provider's bad minutes (5 s, 10 s, ... 160 s).
    "batch-research": SlaPolicy(queue="batch-research", priority=3, concurrency=1,
                                window_seconds=10, max_batch=256, max_dispatch_attempts=5,
                                queue_target_seconds=3600, submission_retries=6,
                                retry_backoff_seconds=5.0),
}


def policies_from(overrides: str) -> dict[str, SlaPolicy]:
    """The default classes with ``overrides`` (JSON: class -> fields) applied.

    Raises:
        InvalidInputError: Not JSON, an unknown class or field, or an invalid value
            (field QHYBRID_SLA_POLICIES).
    """
    policies = dict(DEFAULT_POLICIES)
    if not overrides.strip():
        return policies
    field = "QHYBRID_SLA_POLICIES"
    raw = parse_json(overrides, source=field, field=field, error=InvalidInputError)
    if not isinstance(raw, dict):
        raise InvalidInputError("must be a JSON object: class -> fields", field=field)
    for name, fields in raw.items():
        if name not in policies:
            raise InvalidInputError(f"no SLA class '{name}'; known: {', '.join(policies)}",
                                    field=field)
        if not isinstance(fields, dict):
            raise InvalidInputError(f"{name}: must be an object of policy fields", field=field)
        try:
            policies[name] = SlaPolicy.model_validate(
                policies[name].model_dump() | fields)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = "".join(f".{p}" for p in first["loc"])
            raise InvalidInputError(f"{name}{where}: {first['msg']}", field=field) from None
    for name, policy in policies.items():
        target = policy.asynchronous_class
        if policy.on_long_queue != "asynchronous" or target is None:
            continue
        # One hand-over at most: a job handed over is never handed on, or back.
        if target == name or policies[target].on_long_queue == "asynchronous":
            raise InvalidInputError(
                f"{name}.asynchronous_class: '{target}' must be another class that does not "
                "hand jobs over itself", field=field)
    return policies


def class_settings(settings: Settings, sla: str) -> Settings:
    """The settings a job of class ``sla`` runs with: the class's retry policy (from
    ``settings.sla_policies``) where it sets one, the settings' own elsewhere.

    Raises:
        InvalidInputError: ``sla`` names no class, or QHYBRID_SLA_POLICIES is invalid.
    """
    policies = policies_from(settings.sla_policies)
    if sla not in policies:
        raise InvalidInputError(f"no SLA class '{sla}'; known: {', '.join(policies)}",
                                field="sla")
    policy = policies[sla]
    updates: dict[str, float] = {}
    if policy.submission_retries is not None:
        updates["submission_retries"] = policy.submission_retries
    if policy.retry_backoff_seconds is not None:
        updates["retry_backoff_seconds"] = policy.retry_backoff_seconds
    return settings.model_copy(update=updates)


@dataclass(frozen=True)
class DispatchGroup:
    """Jobs one flow run serves."""

    sla: str
    kind: str
    backend: str | None
    family: str | None
    experiment: str | None
    jobs: tuple[QueuedJob, ...]

    @property
    def job_ids(self) -> list[str]:
        """The jobs' ids, oldest first."""
        return [job.id for job in self.jobs]


def plan_dispatch(queued: Iterable[QueuedJob], policies: Mapping[str, SlaPolicy], *,
                  now: float) -> list[DispatchGroup]:
    """The groups due now, most urgent class first.

    A run, promotion or sweep is its own group (each is a whole flow: of gates, or of a
    sweep's chunks); evaluate jobs of one experiment and backend share a group up to
    ``max_batch``.
    """
    buckets: dict[tuple[str, str, str | None, str | None, str | None], list[QueuedJob]] = (
        defaultdict(list))
    for job in queued:
        buckets[(job.sla, job.kind, job.backend, job.family, job.experiment)].append(job)
    due: list[DispatchGroup] = []
    for (sla, kind, backend, family, experiment), jobs in buckets.items():
        policy = policies[sla]
        jobs.sort(key=lambda j: j.created)
        size = policy.max_batch if kind == "evaluate" else 1
        for start in range(0, len(jobs), size):
            chunk = jobs[start:start + size]
            full = len(chunk) >= size
            if full or now - chunk[0].created >= policy.window_seconds:
                due.append(DispatchGroup(sla=sla, kind=kind, backend=backend, family=family,
                                         experiment=experiment, jobs=tuple(chunk)))
    due.sort(key=lambda g: (policies[g.sla].priority, g.jobs[0].created))
    return due
