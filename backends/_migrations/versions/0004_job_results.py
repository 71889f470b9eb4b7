"""Results too large for their job row get a table of their own.

Revision 0004, after 0003. ``qhybrid_job_results`` holds one result document per job whose
result is larger than ``QHYBRID_RESULT_INLINE_MAX_BYTES``; the job row keeps a summary with a
reference to it. No existing row changes: results stored inline before stay inline.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``qhybrid_job_results``."""
    op.create_table(
        "qhybrid_job_results",
        sa.Column("job_id", sa.String(36), primary_key=True),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop ``qhybrid_job_results`` (large results are lost)."""
    op.drop_table("qhybrid_job_results")
