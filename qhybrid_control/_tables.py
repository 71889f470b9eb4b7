"""The job service's tables, in the state store's database (created by its migrations).

Every name starts with ``qhybrid_``: MLflow's store, which a team may keep in the same
database, has a ``jobs`` table of its own.

- ``jobs``: one row per accepted job: the request as accepted (its spec resolved inline, so a
  later edit of a spec file changes no job), its status, and what ran it.
- ``job_events``: every status transition, in order: the outbox the event stream and the
  metrics read, written in the same transaction as the job row.
- ``webhook_deliveries``: one callback per ended job, with its attempts; a restarted service
  delivers what is due.
- ``dispatches``: one row per flow run started for a group of jobs (the batch sizes).
- ``job_results``: a result too large to keep in its job row (``result_inline_max_bytes``):
  the row keeps a summary that refers to it, and the API serves it on its own URL.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

JOBS_META = MetaData()

JOBS = Table(
    "qhybrid_jobs", JOBS_META,
    Column("id", String(36), primary_key=True),
    Column("client", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(20), nullable=False),
    Column("sub_status", Text),
    Column("sla", String(32), nullable=False),
    Column("experiment", String(200)),
    Column("family", String(64)),
    Column("backend", String(200)),
    Column("idempotency_key", String(200)),
    Column("request_sha256", String(64), nullable=False),
    Column("request", Text, nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("callback_url", Text),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("transitions", Text, nullable=False),
    Column("dispatch_id", String(36)),
    Column("flow_run_id", String(64)),
    Column("mlflow_run_id", String(64)),
    Column("provider_job_ids", Text, nullable=False, default="[]"),
    Column("dispatch_attempts", Integer, nullable=False, default=0),
    Column("cancel_requested", Integer, nullable=False, default=0),
    Column("downgrade", Text),
    Column("error", Text),
    Column("result", Text),
    Column("metrics", Text),  # JSON: QPU seconds, retries by class, ... for /metrics
    UniqueConstraint("client", "idempotency_key",
                     name="uq_qhybrid_jobs_client_idempotency_key"),
    Index("ix_qhybrid_jobs_status_sla_created", "status", "sla", "created"),
    Index("ix_qhybrid_jobs_created", "created"),
)

JOB_EVENTS = Table(
    "qhybrid_job_events", JOBS_META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("sub_status", Text),
    Column("at", Float, nullable=False),
)

WEBHOOK_DELIVERIES = Table(
    "qhybrid_webhook_deliveries", JOBS_META,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), nullable=False, index=True),
    Column("client", String(100), nullable=False),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("state", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Text, nullable=False, default="[]"),
    Column("next_at", Float, nullable=False),
    Column("created", Float, nullable=False),
    Index("ix_qhybrid_webhook_deliveries_state_next_at", "state", "next_at"),
)

DISPATCHES = Table(
    "qhybrid_dispatches", JOBS_META,
    Column("id", String(36), primary_key=True),
    Column("sla", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("backend", String(200)),
    Column("family", String(64)),
    Column("size", Integer, nullable=False),
    Column("flow_run_id", String(64)),
    Column("created", Float, nullable=False),
)

JOB_RESULTS = Table(
    "qhybrid_job_results", JOBS_META,
    Column("job_id", String(36), primary_key=True),
    Column("media_type", String(100), nullable=False),
    Column("body", Text, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created", Float, nullable=False),
)
