"""Alembic revisions of the tenancy schema, oldest first."""
