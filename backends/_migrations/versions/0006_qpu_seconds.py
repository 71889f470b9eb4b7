"""The idempotency ledger keeps each key's QPU charge, which the QPU budget counts.

Revision 0006, after 0005. A row's ``qpu_seconds`` is what the backend estimated for the key's
attempts that count, ``charged_at`` when the last was charged (the budget's window; indexed).
Both are NULL for nothing charged: a simulator, an attempt the provider refused, and every row
written before this revision, so a budget starts empty on an upgraded store.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``submissions.qpu_seconds`` and ``submissions.charged_at``, with an index on it."""
    # Batch mode: SQLite copies the table where it cannot ALTER; PostgreSQL runs plain ALTERs.
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("qpu_seconds", sa.Float))
        batch.add_column(sa.Column("charged_at", sa.Float))
        batch.create_index("ix_submissions_charged_at", ["charged_at"])


def downgrade() -> None:
    """Drop the index and both columns (the charges are lost)."""
    with op.batch_alter_table("submissions") as batch:
        batch.drop_index("ix_submissions_charged_at")
        batch.drop_column("charged_at")
        batch.drop_column("qpu_seconds")
