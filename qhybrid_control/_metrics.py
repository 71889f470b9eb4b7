"""What the service's metrics report, read from the job store at scrape time.

The workers' facts (queue time, backends used, retries, QPU seconds, promotions) are written
to the job store by the flow runs that serve the jobs; reading them here gives one consistent
view across every process without a push gateway. Every value only grows as jobs are added
(rows are never deleted), so the counters and histograms built from them are cumulative, as
Prometheus expects.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from qhybrid.core import TERMINAL_STATUSES, TrackingError
from qhybrid_control._tables import DISPATCHES, JOB_EVENTS, JOBS, WEBHOOK_DELIVERIES


@dataclass
class MetricsSnapshot:
    """Aggregates over every job the store holds."""

    jobs: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # status, kind, sla
    queue_seconds: list[tuple[str, float]] = field(default_factory=list)  # sla, seconds
    result_seconds: list[tuple[str, str, float]] = field(default_factory=list)  # kind, sla, s
    batch_sizes: list[tuple[str, int]] = field(default_factory=list)  # sla, size
    backends: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)  # error class
    promotions: Counter[str] = field(default_factory=Counter)  # promoted | refused
    qpu_seconds: list[float] = field(default_factory=list)  # per completed job
    webhooks: Counter[str] = field(default_factory=Counter)  # delivery state
    webhook_attempts: Counter[str] = field(default_factory=Counter)  # delivered | failed
    submissions: dict[str, int] = field(default_factory=dict)  # ledger status (state store)
    breakers: dict[str, tuple[str, int]] = field(default_factory=dict)  # state, trips
    oldest_queued: dict[str, float] = field(default_factory=dict)  # sla -> seconds
    qpu_budget_spent: float | None = None  # charged within the budget's window, if one is set


def snapshot(engine: Engine, *, now: float) -> MetricsSnapshot:
    """Aggregate the job store.

    Raises:
        TrackingError: The store cannot be read.
    """
    out = MetricsSnapshot()
    try:
        with engine.connect() as conn:
            for status, kind, sla, n in conn.execute(
                    select(JOBS.c.status, JOBS.c.kind, JOBS.c.sla, func.count())
                    .group_by(JOBS.c.status, JOBS.c.kind, JOBS.c.sla)):
                out.jobs[(status, kind, sla)] = int(n)
            for sla, oldest in conn.execute(
                    select(JOBS.c.sla, func.min(JOBS.c.created))
                    .where(JOBS.c.status == "queued").group_by(JOBS.c.sla)):
                out.oldest_queued[sla] = max(0.0, now - oldest)
            started = (select(JOB_EVENTS.c.job_id, func.min(JOB_EVENTS.c.at).label("at"))
                       .where(JOB_EVENTS.c.status == "validating")
                       .group_by(JOB_EVENTS.c.job_id).subquery())
            for sla, created, at in conn.execute(
                    select(JOBS.c.sla, JOBS.c.created, started.c.at)
                    .join(started, started.c.job_id == JOBS.c.id)):
                out.queue_seconds.append((sla, max(0.0, at - created)))
            for kind, sla, created, updated, metrics in conn.execute(
                    select(JOBS.c.kind, JOBS.c.sla, JOBS.c.created, JOBS.c.updated,
                           JOBS.c.metrics)
                    .where(JOBS.c.status.in_(list(TERMINAL_STATUSES)))):
                out.result_seconds.append((kind, sla, max(0.0, updated - created)))
                if metrics:
                    _add_job_metrics(out, json.loads(metrics))
            for sla, size in conn.execute(select(DISPATCHES.c.sla, DISPATCHES.c.size)):
                out.batch_sizes.append((sla, int(size)))
            for state, attempts in conn.execute(
                    select(WEBHOOK_DELIVERIES.c.state, WEBHOOK_DELIVERIES.c.attempts)):
                out.webhooks[state] += 1
                for attempt in json.loads(attempts):
                    out.webhook_attempts["delivered" if attempt["delivered"] else "failed"] += 1
    except SQLAlchemyError as exc:
        raise TrackingError(f"job store read failed: {exc}") from exc
    return out


def _add_job_metrics(out: MetricsSnapshot, metrics: dict[str, object]) -> None:
    backend = metrics.get("backend")
    if isinstance(backend, str):
        out.backends[backend] += 1
    retries = metrics.get("retries_by_class")
    if isinstance(retries, dict):
        for error_class, n in retries.items():
            out.retries[str(error_class)] += int(n)
    promoted = metrics.get("promoted")
    if isinstance(promoted, bool):
        out.promotions["promoted" if promoted else "refused"] += 1
    qpu = metrics.get("qpu_seconds")
    if isinstance(qpu, int | float):
        out.qpu_seconds.append(float(qpu))
