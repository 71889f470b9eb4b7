"""SLA classes and how queued jobs become dispatch groups (pure: no store, no clock).

Each class maps to a Prefect work queue with its own priority and concurrency limit, and has
its own batching window: a group is dispatched once its oldest job has waited ``window`` or it
holds ``max_batch`` jobs. Jobs are grouped by class, kind, backend and experiment, so that one
flow run serves jobs whose circuits can share PUBs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qhybrid.core import InvalidInputError, parse_json
from qhybrid_control._store import QueuedJob


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
    simulator_fallback: bool = Field(
        description="Answer from the ideal simulator when the hardware queue is long.")
    max_hardware_queue: int = Field(
        default=0, ge=0, description="Jobs ahead on hardware beyond which the simulator path "
        "answers (with simulator_fallback).")


DEFAULT_POLICIES: Final[Mapping[str, SlaPolicy]] = {
    "interactive": SlaPolicy(queue="interactive", priority=1, concurrency=2, window_seconds=0,
                             max_batch=32, max_dispatch_attempts=3, queue_target_seconds=15,
                             simulator_fallback=True, max_hardware_queue=10),
    "near-real-time": SlaPolicy(queue="near-real-time", priority=2, concurrency=2,
                                window_seconds=2, max_batch=64, max_dispatch_attempts=3,
                                queue_target_seconds=120, simulator_fallback=False),
    "batch-research": SlaPolicy(queue="batch-research", priority=3, concurrency=1,
                                window_seconds=10, max_batch=256, max_dispatch_attempts=5,
                                queue_target_seconds=3600, simulator_fallback=False),
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
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInputError(f"{name}.{where}: {first['msg']}", field=field) from None
    return policies


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

    A run or promotion is its own group (each is a whole flow of gates); evaluate jobs of one
    experiment and backend share a group up to ``max_batch``.
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
