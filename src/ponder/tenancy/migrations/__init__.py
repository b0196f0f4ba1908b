"""The tenancy store's Alembic migrations (``script_location = ponder.tenancy:migrations``),
run by :func:`ponder.tenancy.engine.migrate` from a configuration built in code: there is no
``alembic.ini``. Revisions are in ``versions/``; each is frozen once released."""
