"""The idempotency ledger keeps the provider job tags of each submission.

Revision 0003, after 0002. A row's ``tags`` (a JSON list; NULL for none, as every row written
before this revision) are those its provider job was submitted with: ``qhybrid``, and the trace
and job ids of the requests it serves. The ledger is also looked up by provider job id now, so
``job_id`` gets an index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``submissions.tags`` and an index on ``submissions.job_id``."""
    # Batch mode: SQLite copies the table where it cannot ALTER; PostgreSQL runs plain ALTERs.
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("tags", sa.Text))
        batch.create_index("ix_submissions_job_id", ["job_id"])


def downgrade() -> None:
    """Drop the index and the column (the tags are lost)."""
    with op.batch_alter_table("submissions") as batch:
        batch.drop_index("ix_submissions_job_id")
        batch.drop_column("tags")
