"""The idempotency ledger keeps each submission's QPU seconds, which the QPU budget counts.

Revision 0006, after 0005. A row's ``qpu_seconds`` is the backend's estimate for its submission
(NULL for nothing charged: a simulator, a submission the provider never took, and every row
written before this revision). An index on ``created`` serves the budget's window.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``submissions.qpu_seconds`` and an index on ``submissions.created``."""
    # Batch mode: SQLite copies the table where it cannot ALTER; PostgreSQL runs plain ALTERs.
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("qpu_seconds", sa.Float))
        batch.create_index("ix_submissions_created", ["created"])


def downgrade() -> None:
    """Drop the index and the column (the charges are lost)."""
    with op.batch_alter_table("submissions") as batch:
        batch.drop_index("ix_submissions_created")
        batch.drop_column("qpu_seconds")
