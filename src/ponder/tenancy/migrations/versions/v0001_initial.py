"""The first tenancy schema: teams, API keys, budgets, rate limits, reservations, the request
ledger and its calls, traces.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("allowed_models", sa.Text),
        sa.Column("allowed_strategies", sa.Text),
        sa.Column("max_effort", sa.String(32)),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("team", sa.String(200), sa.ForeignKey("teams.name"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("team_admin", sa.Boolean, nullable=False),
        sa.Column("allowed_models", sa.Text),
        sa.Column("allowed_strategies", sa.Text),
        sa.Column("max_effort", sa.String(32)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime),
    )
    op.create_index("ix_api_keys_team", "api_keys", ["team"])
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("amount_limit", sa.BigInteger, nullable=False),
        sa.Column("spent", sa.BigInteger, nullable=False),
        sa.Column("reserved", sa.BigInteger, nullable=False),
        sa.Column("period_start", sa.DateTime, nullable=False),
        sa.UniqueConstraint("scope", "owner", "unit", "period", name="uq_budgets_owner"),
    )
    op.create_table(
        "rate_limits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.BigInteger),
        sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("reserved_tokens", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("scope", "owner", name="uq_rate_limits_owner"),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("usd_micros", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("closed_at", sa.DateTime),
    )
    op.create_index("ix_reservations_state", "reservations", ["state"])
    op.create_table(
        "reservation_budgets",
        sa.Column(
            "reservation_id",
            sa.String(40),
            sa.ForeignKey("reservations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("budget_id", sa.Integer, sa.ForeignKey("budgets.id"), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "reservation_limits",
        sa.Column(
            "reservation_id",
            sa.String(40),
            sa.ForeignKey("reservations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("rate_limit_id", sa.Integer, sa.ForeignKey("rate_limits.id"), primary_key=True),
        sa.Column("tokens", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "requests",
        sa.Column("request_id", sa.String(100), primary_key=True),
        sa.Column("key_id", sa.String(40)),
        sa.Column("team", sa.String(200)),
        sa.Column("model", sa.String(300)),
        sa.Column("strategy", sa.String(100)),
        sa.Column("effort", sa.String(32)),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("cost_micros", sa.BigInteger, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("trace_id", sa.String(100)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
    )
    op.create_index("ix_requests_key_id", "requests", ["key_id"])
    op.create_index("ix_requests_team", "requests", ["team"])
    op.create_index("ix_requests_created_at", "requests", ["created_at"])
    op.create_table(
        "request_calls",
        sa.Column(
            "request_id",
            sa.String(100),
            sa.ForeignKey("requests.request_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("backend", sa.String(300), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
    )
    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String(100), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("key_id", sa.String(40)),
        sa.Column("team", sa.String(200)),
        sa.Column("model", sa.String(300)),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_traces_key_id", "traces", ["key_id"])
    op.create_index("ix_traces_team", "traces", ["team"])


def downgrade() -> None:
    for table in (
        "traces",
        "request_calls",
        "requests",
        "reservation_limits",
        "reservation_budgets",
        "reservations",
        "rate_limits",
        "budgets",
        "api_keys",
        "teams",
    ):
        op.drop_table(table)
