"""Alembic's environment for the tenancy schema.

Only online migrations on a connection the caller already opened are supported:
:func:`ponder.tenancy.engine.migrate` passes a synchronous connection (from
``AsyncConnection.run_sync``) in ``config.attributes["connection"]``, inside the transaction
that also holds the migration lock. No logging configuration is read or installed.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "ponder's tenancy migrations run through ponder.tenancy.engine.migrate, "
            "which passes a connection"
        )
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode recreates tables.
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
