"""The promotion log and the run manifests get tables of their own, for a team to read.

Revision 0005, after 0004. ``qhybrid_promotions`` holds one promotion decision per row, in the
order they were made; ``qhybrid_manifests`` one run manifest per MLflow run. The local JSONL
log and manifest files stay as mirrors; no existing row changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``qhybrid_promotions`` and ``qhybrid_manifests``."""
    op.create_table(
        "qhybrid_promotions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("experiment", sa.String(200), nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
    )
    op.create_index("ix_qhybrid_promotions_experiment", "qhybrid_promotions", ["experiment"])
    op.create_table(
        "qhybrid_manifests",
        sa.Column("mlflow_run_id", sa.String(64), primary_key=True),
        sa.Column("experiment", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )


def downgrade() -> None:
    """Drop both tables (the shared log and manifests are lost; the local mirrors stay)."""
    op.drop_table("qhybrid_manifests")
    op.drop_index("ix_qhybrid_promotions_experiment", table_name="qhybrid_promotions")
    op.drop_table("qhybrid_promotions")
