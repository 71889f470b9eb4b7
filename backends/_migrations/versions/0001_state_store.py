"""State store: the four tables qhybrid made with ``create_all`` before it had migrations.

Revision 0001, the first. A store made before migrations is stamped at this revision instead of
running it (``backends._schema``), so it must describe exactly those tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the idempotency ledger, the local job table, the breakers and the leases."""
    op.create_table(
        "submissions",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("backend", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(200)),
        sa.Column("error", sa.Text),
        sa.Column("owner", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
    )
    op.create_table(
        "local_jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("backend", sa.String(200), nullable=False),
        sa.Column("tag", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("ix_local_jobs_tag", "local_jobs", ["tag"])
    op.create_table(
        "breakers",
        sa.Column("backend", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("opened_at", sa.Float),
        sa.Column("trips", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
    )
    op.create_table(
        "leases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("backend", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened", sa.Float, nullable=False),
        sa.Column("closed", sa.Float),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_leases_flow_run_id", "leases", ["flow_run_id"])


def downgrade() -> None:
    """Drop the four tables, and every row in them (qhybrid never runs it)."""
    op.drop_index("ix_leases_flow_run_id", table_name="leases")
    op.drop_table("leases")
    op.drop_table("breakers")
    op.drop_index("ix_local_jobs_tag", table_name="local_jobs")
    op.drop_table("local_jobs")
    op.drop_table("submissions")
