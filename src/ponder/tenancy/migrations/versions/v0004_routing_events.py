"""A request's routing decisions in the ledger: ``requests.routing``, nullable JSON, the list
of what routing noted on the way (a deployment policy skipped, a fallback taken, a failed
attempt, a cooldown) or the reason policy refused the request. NULL: nothing to note.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("routing", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("requests", "routing")
