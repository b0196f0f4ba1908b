"""Stored responses of ``/v1/responses``: one row per response made with ``store`` (the
default), holding what a later request needs to continue it with ``previous_response_id`` and
what ``GET /v1/responses/{id}`` returns: its owner (key and team), model, status, the
request's echoed parameters, its input items and output items (JSON), its usage (JSON) and
the response it continued.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(40)),
        sa.Column("team", sa.String(200)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous_response_id", sa.String(64)),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("input_items", sa.Text, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("usage", sa.Text),
    )
    op.create_index("ix_responses_key_id", "responses", ["key_id"])
    op.create_index("ix_responses_team", "responses", ["team"])


def downgrade() -> None:
    op.drop_index("ix_responses_team", "responses")
    op.drop_index("ix_responses_key_id", "responses")
    op.drop_table("responses")
