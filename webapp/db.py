"""Database: SQLAlchemy engine from ``DATABASE_URL`` (a SQLite file by default) and the tables.

The schema is created and migrated with Alembic (``webapp/migrations``), once, before any
worker starts: gunicorn's ``on_starting`` hook (``webapp.gunicorn_conf``) or
``flask --app webapp db upgrade``. The app itself never creates tables, so two workers can
never race to do it; ``/health/ready`` reports a database that is not at the latest revision.

``runs`` records each prediction so History can show what was scored.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import (Column, DateTime, Float, Integer, MetaData, String, Table, create_engine,
                        inspect, insert, select, text)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("module", String(32), nullable=False),
    Column("model", String(64), nullable=False),
    Column("model_version", String(128)),
    Column("source", String(256)),
    Column("rows", Integer, nullable=False),
    Column("flagged", Integer, nullable=False),
    Column("threshold", Float),
)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the parent folder of a SQLite file."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, pool_pre_ping=True)


# -- migrations ---------------------------------------------------------------------------------
def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest migration in ``webapp/migrations``."""
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)
    return ScriptDirectory.from_config(cfg).get_current_head()


VERSION_TABLE = "alembic_version"


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(url: str) -> str:
    """Create or migrate the schema to the newest revision; return it.

    A database whose tables were made before migrations existed (``create_all``, no
    ``alembic_version``) is stamped at the first revision, then upgraded.
    """
    from alembic import command

    engine = make_engine(url)
    try:
        cfg = _alembic_config(engine)
        if current_revision(engine) is None and inspect(engine).has_table("runs"):
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")
        revision = current_revision(engine)
    finally:
        engine.dispose()
    logger.info("database schema at revision %s", revision)
    return revision


def schema_problem(engine: Engine) -> str | None:
    """None when the database answers and is at the newest revision, else what is wrong."""
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        return f"the database does not answer ({type(exc).__name__})"
    head = head_revision()
    if revision != head:
        return (f"the database schema is at revision {revision or 'none'}, not {head}: run "
                f"'flask --app webapp db upgrade' (gunicorn's start hook does this)")
    return None


# -- data ---------------------------------------------------------------------------------------
def engine() -> Engine:
    """This app's engine."""
    return current_app.extensions["fablens_db"]


def record_run(module: str, model: str, model_version: str | None, source: str | None,
               rows: int, flagged: int, threshold: float | None) -> None:
    """Store one prediction run."""
    with engine().begin() as conn:
        conn.execute(insert(runs).values(
            created=datetime.now(timezone.utc), module=module, model=model,
            model_version=model_version, source=(source or "")[:256], rows=rows,
            flagged=flagged, threshold=threshold))


def recent_runs(limit: int = 50) -> list[dict]:
    """The latest prediction runs, newest first."""
    with engine().connect() as conn:
        rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows]


db_cli = AppGroup("db", help="Database commands.")


@db_cli.command("upgrade")
def upgrade_command() -> None:
    """Create or migrate the database schema to the newest revision."""
    revision = upgrade(current_app.config["DATABASE_URL"])
    click.echo(f"database schema at revision {revision}")


def init_app(app: Flask) -> None:
    """Create the engine (no schema work here) and register ``flask db upgrade``."""
    app.extensions["fablens_db"] = make_engine(app.config["DATABASE_URL"])
    app.cli.add_command(db_cli)
