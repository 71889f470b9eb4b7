"""The job store's rows as its callers see them (a new job, a queued one, an active one, an
event, a due webhook delivery, the filters of a page) and the cursor of a page of jobs."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

from qhybrid.core import InvalidInputError


def iso(at: float) -> str:
    """A unix time as ISO 8601 in UTC, always to the microsecond (so strings sort as times)."""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class NewJob:
    """A validated request, ready to be stored."""

    id: str
    client: str
    kind: str
    sla: str
    experiment: str | None
    family: str | None
    backend: str | None
    idempotency_key: str | None
    request: dict[str, Any]
    request_sha256: str
    trace_id: str
    callback_url: str | None


@dataclass(frozen=True)
class QueuedJob:
    """What the dispatcher needs to group a queued job."""

    id: str
    kind: str
    sla: str
    backend: str | None
    family: str | None
    experiment: str | None
    created: float
    trace_id: str


@dataclass(frozen=True)
class ActiveJob:
    """A dispatched job that has not ended: the dispatcher watches its flow run."""

    id: str
    status: str
    sla: str
    flow_run_id: str | None
    dispatch_id: str | None
    dispatch_attempts: int
    cancel_requested: bool
    updated: float


@dataclass(frozen=True)
class JobEvent:
    """One status transition, as the event stream sends it."""

    id: int
    job_id: str
    status: str
    sub_status: str | None
    at: float


@dataclass(frozen=True)
class DueDelivery:
    """A webhook call that is due."""

    id: str
    job_id: str
    client: str
    url: str
    body: str
    trace_id: str
    attempts: int


@dataclass(frozen=True)
class JobFilter:
    """The filters of ``GET /v1/jobs``."""

    status: str | None = None
    kind: str | None = None
    sla: str | None = None
    experiment: str | None = None
    since: float | None = None


def encode_cursor(created: float, job_id: str) -> str:
    """The opaque cursor of ``GET /v1/jobs`` after the job created at ``created``."""
    return base64.urlsafe_b64encode(f"{created!r}|{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The creation time and job id a cursor of :func:`encode_cursor` holds.

    Raises:
        InvalidInputError: Naming ``cursor``: not one this service issued.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, job_id = base64.urlsafe_b64decode(padded.encode()).decode().split("|", 1)
        return float(created), job_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("not a cursor this service issued", field="cursor") from None
