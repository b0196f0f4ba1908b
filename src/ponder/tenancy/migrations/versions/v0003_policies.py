"""Teams and API keys carry a routing policy of their own: ``teams.policy`` and
``api_keys.policy``, nullable JSON (what ``ponder.config.policy_as_mapping`` gives; NULL: no
policy of its own). Rows already there get NULL.

Both directions are a plain ``ALTER TABLE`` (no batch mode): recreating ``teams`` on SQLite
would drop the table its keys refer to. Dropping a column needs SQLite 3.35 or newer.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = ("teams", "api_keys")


def upgrade() -> None:
    for name in _TABLES:
        op.add_column(name, sa.Column("policy", sa.Text, nullable=True))


def downgrade() -> None:
    for name in reversed(_TABLES):
        op.drop_column(name, "policy")
