"""Job service: jobs, their events, their callbacks and the dispatches that served them.

Revision 0002. The tables are defined in ``qhybrid_control._tables`` (the control plane owns
them; the state store's database holds them, so one transaction covers a job and its event).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``qhybrid_jobs``, ``qhybrid_job_events``, ``qhybrid_webhook_deliveries`` and
    ``qhybrid_dispatches`` (prefixed: MLflow's store, which may share the database, has a
    ``jobs`` table of its own)."""
    op.create_table(
        "qhybrid_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("sub_status", sa.Text),
        sa.Column("sla", sa.String(32), nullable=False),
        sa.Column("experiment", sa.String(200)),
        sa.Column("family", sa.String(64)),
        sa.Column("backend", sa.String(200)),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("callback_url", sa.Text),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
        sa.Column("transitions", sa.Text, nullable=False),
        sa.Column("dispatch_id", sa.String(36)),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("mlflow_run_id", sa.String(64)),
        sa.Column("provider_job_ids", sa.Text, nullable=False),
        sa.Column("dispatch_attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Integer, nullable=False),
        sa.Column("downgrade", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("metrics", sa.Text),
        sa.UniqueConstraint("client", "idempotency_key",
                            name="uq_qhybrid_jobs_client_idempotency_key"),
    )
    op.create_index("ix_qhybrid_jobs_status_sla_created", "qhybrid_jobs",
                    ["status", "sla", "created"])
    op.create_index("ix_qhybrid_jobs_created", "qhybrid_jobs", ["created"])
    op.create_table(
        "qhybrid_job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("sub_status", sa.Text),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_qhybrid_job_events_job_id", "qhybrid_job_events", ["job_id"])
    op.create_table(
        "qhybrid_webhook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("client", sa.String(100), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Text, nullable=False),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("ix_qhybrid_webhook_deliveries_job_id", "qhybrid_webhook_deliveries",
                    ["job_id"])
    op.create_index("ix_qhybrid_webhook_deliveries_state_next_at", "qhybrid_webhook_deliveries",
                    ["state", "next_at"])
    op.create_table(
        "qhybrid_dispatches",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("sla", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("backend", sa.String(200)),
        sa.Column("family", sa.String(64)),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("created", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop the job service's tables (their rows are lost)."""
    for table in ("qhybrid_dispatches", "qhybrid_webhook_deliveries", "qhybrid_job_events",
                  "qhybrid_jobs"):
        op.drop_table(table)
