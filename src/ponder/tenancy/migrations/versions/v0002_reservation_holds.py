"""A reservation's holds live on its own row (``reservations.holds``, JSON) instead of in the
``reservation_budgets`` and ``reservation_limits`` tables, so that reserving and settling
each write one reservation row instead of inserting, reading and deleting child rows.

The holds of the reservations already there are carried over: an open reservation keeps
its amounts; a swept one keeps its rows with the amounts at 0 (the sweep released them); a
settled one holds nothing (its child rows were deleted when it settled).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import json
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_reservations = sa.table(
    "reservations",
    sa.column("id", sa.String),
    sa.column("state", sa.String),
    sa.column("holds", sa.Text),
)
_reservation_budgets = sa.table(
    "reservation_budgets",
    sa.column("reservation_id", sa.String),
    sa.column("budget_id", sa.Integer),
    sa.column("amount", sa.BigInteger),
)
_reservation_limits = sa.table(
    "reservation_limits",
    sa.column("reservation_id", sa.String),
    sa.column("rate_limit_id", sa.Integer),
    sa.column("tokens", sa.BigInteger),
)


def upgrade() -> None:
    conn = op.get_bind()
    held: dict[str, dict[str, list[list[int]]]] = defaultdict(lambda: {"budgets": [], "limits": []})
    for rid, row_id, amount in conn.execute(
        sa.select(_reservation_budgets).order_by(_reservation_budgets.c.budget_id)
    ):
        held[rid]["budgets"].append([int(row_id), int(amount)])
    for rid, row_id, tokens in conn.execute(
        sa.select(_reservation_limits).order_by(_reservation_limits.c.rate_limit_id)
    ):
        held[rid]["limits"].append([int(row_id), int(tokens)])
    states = dict(conn.execute(sa.select(_reservations.c.id, _reservations.c.state)).all())
    # The child tables go first: recreating ``reservations`` (SQLite's batch mode) drops the
    # old table, which would cascade to them.
    op.drop_table("reservation_limits")
    op.drop_table("reservation_budgets")
    with op.batch_alter_table("reservations") as batch:
        batch.add_column(sa.Column("holds", sa.Text, nullable=True))
    for rid, state in states.items():
        holds = held.get(rid, {"budgets": [], "limits": []})
        if state != "open":  # released by the sweep already
            holds = {kind: [[row_id, 0] for row_id, _ in rows] for kind, rows in holds.items()}
        conn.execute(
            sa.update(_reservations)
            .where(_reservations.c.id == rid)
            .values(holds=json.dumps(holds, separators=(",", ":")))
        )
    with op.batch_alter_table("reservations") as batch:
        batch.alter_column("holds", existing_type=sa.Text, nullable=False)


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_reservations.c.id, _reservations.c.holds).where(
            _reservations.c.state != "settled"  # a settled reservation kept no child rows
        )
    ).all()
    # The column goes first: recreating ``reservations`` would cascade to the child rows.
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("holds")
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
    for rid, stored in rows:
        holds = json.loads(stored)
        for row_id, amount in holds["budgets"]:
            conn.execute(
                sa.insert(_reservation_budgets).values(
                    reservation_id=rid, budget_id=row_id, amount=amount
                )
            )
        for row_id, tokens in holds["limits"]:
            conn.execute(
                sa.insert(_reservation_limits).values(
                    reservation_id=rid, rate_limit_id=row_id, tokens=tokens
                )
            )
