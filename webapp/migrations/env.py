"""Alembic environment: migrate the engine ``webapp.db.upgrade`` hands over."""
from __future__ import annotations

from alembic import context

from webapp.db import metadata


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("FabLens migrations run online only (webapp.db.upgrade)")
run_migrations_online()
