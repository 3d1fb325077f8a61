"""gunicorn settings for FabLens: ``gunicorn -c python:webapp.gunicorn_conf 'webapp:create_app()'``.

The database schema is created or migrated once, in the master process, before any worker
forks, so two workers can never race to create the same table. Worker count, threads,
timeout and bind stay on the command line (render.yaml, the Makefile).
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def on_starting(server) -> None:
    """Migrate the database named by the app's configuration (DATABASE_URL or the default)."""
    from webapp import config
    from webapp.db import upgrade

    url = config.load()["DATABASE_URL"]
    revision = upgrade(url)
    server.log.info("database schema at revision %s", revision)
