"""Database: SQLAlchemy engine from ``DATABASE_URL`` (SQLite file by default) and the tables.

``runs`` records each prediction so History and the dashboard can show what was scored.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import (Column, DateTime, Float, Integer, MetaData, String, Table, create_engine,
                        insert, select)
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

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


def init_app(app: Flask) -> None:
    """Create the engine and the tables (idempotent)."""
    eng = make_engine(app.config["DATABASE_URL"])
    metadata.create_all(eng)
    app.extensions["fablens_db"] = eng
