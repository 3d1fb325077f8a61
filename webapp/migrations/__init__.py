"""Alembic migrations of the FabLens database (run by ``webapp.db.upgrade``)."""
