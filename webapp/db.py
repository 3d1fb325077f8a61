"""Database: SQLAlchemy engine from ``DATABASE_URL`` (a SQLite file by default) and the tables.

The schema is created and migrated with Alembic (``webapp/migrations``), once, before any
worker starts: gunicorn's ``on_starting`` hook (``webapp.gunicorn_conf``) or
``flask --app webapp db upgrade``. The app itself never creates tables, so two workers can
never race to do it; ``/health/ready`` reports a database that is not at the latest revision.

``runs`` records each prediction run, failed ones too, with who made it and what it used (model version,
threshold, the input's sha256, how many cells the user edited and rows removed, and how many
items the upload's own labels mark faulty). A run is written when it starts (``running``, with
the worker serving it) and closed when it ends, ``ok`` or ``failed`` with its reason and the
HTTP status it answered (a 4xx: *refused*), so a worker that dies mid-run leaves a row that is
closed for it later (:func:`close_worker_runs`, :func:`close_abandoned_runs`). Retention
(:func:`prune`) keeps the records bounded;
``run_results`` keeps the results of recent runs so History can download them again, and
``run_downloads`` records each download, by whom, and the threshold it was decided at. ``events``
holds one row per episode of the time-series module: a machine's unbroken stretch of flagged
cycles, unique per module, machine, model, version and start (``webapp/events.py``), and who
acknowledged it. ``users``, ``tokens`` and ``logins`` hold the accounts (``webapp/access.py``).
``registry_events`` is the model registry's audit log (live switches, threshold changes, shadow
candidates; the newest ``live`` row of a module is its live version) and ``shadow_scores`` a
candidate's scores of live runs (``webapp/versions.py``, ``webapp/shadow.py``). Each run keeps
its ``drift`` against the training data, as its module measured it.
Who did something is read from :func:`webapp.access.current_actor` here, never passed by callers.
"""
from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Mapping

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import (Boolean, Column, DateTime, Float, ForeignKey, Index, Integer,
                        LargeBinary, MetaData, String, Table, Text, and_, case, create_engine,
                        delete, event, func, inspect, insert, not_, or_, select, text,
                        true, update)
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
    Column("status", String(16), nullable=False, server_default="ok"),
    Column("error", String(500)),
    Column("default_threshold", Float),
    Column("input_sha256", String(64)),
    Column("edited_cells", Integer),
    Column("removed_rows", Integer),
    Column("warnings", Text),
    # how many items the upload's own labels mark faulty (failing wafers, maps with a defect
    # pattern, photos in a defect folder); NULL: the upload carried no labels
    Column("labelled_faulty", Integer),
    Column("user", String(128)),  # who ran it (webapp.access.current_actor); NULL before 0006
    Column("release", String(12)),  # the model version (pipelines.core.versions) that scored it
    Column("drift", Text),  # JSON: the batch against the training data (statistic, value, ...)
    Column("worker", String(128)),  # the process that serves it (worker_marker: host:pid)
    Column("http_status", Integer),  # a failed run: the 4xx/5xx it answered (NULL: none)
    Index("ix_runs_status", "status", "id"),
    Index("ix_runs_created", "created"),
)

run_results = Table(
    "run_results", metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("score_column", String(64), nullable=False),
    Column("csv_gz", LargeBinary, nullable=False),
)

run_downloads = Table(
    "run_downloads", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("flagged", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("flagged_only", Boolean, nullable=False, server_default="0"),
    Column("user", String(128)),
    Index("ix_run_downloads_run_id", "run_id"),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("module", String(32), nullable=False),
    Column("machine_id", String(128), nullable=False),
    Column("first_cycle", Float),
    Column("last_cycle", Float),
    Column("peak_cycle", Float),
    Column("n_cycles", Integer, nullable=False, server_default="1"),
    Column("first_timestamp", String(64)),
    Column("last_timestamp", String(64)),
    Column("start_key", String(64)),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("rul", Float),
    Column("model", String(64), nullable=False),
    Column("model_version", String(128)),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="SET NULL")),
    Column("acknowledged", Boolean, nullable=False, server_default="0"),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", String(128)),
    Column("updated", DateTime(timezone=True)),
    Index("uq_events_episode", "module", "machine_id", "model", "model_version", "start_key",
          unique=True),
    Index("ix_events_created", "created"),
    Index("ix_events_run_id", "run_id"),
)

# accounts (webapp/access.py): roles viewer < engineer < admin; API tokens are stored as the
# sha256 of the token (shown once, never stored in clear); every login attempt is a row
users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", String(256)),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created", DateTime(timezone=True), nullable=False),
)

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True)),
    Column("revoked", DateTime(timezone=True)),
    Column("last_used", DateTime(timezone=True)),
)

# every change to a module's registry, newest last (append-only: the audit log): ``live``
# (version made live), ``threshold`` (a version derived from ``base_version`` with ``model``'s
# threshold ``previous`` -> ``value``), ``shadow`` (candidate attached) and ``detach``
REGISTRY_KINDS = ("live", "threshold", "shadow", "detach")
registry_events = Table(
    "registry_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("module", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("version", String(12)),
    Column("base_version", String(12)),
    Column("model", String(64)),
    Column("value", Float),
    Column("previous", Float),
    Column("user", String(128)),
    Column("reason", String(500)),
)

# a shadow candidate's scores of a live run: its counts, how many decisions agree with the
# live ones, its figures on the items the upload labelled, how long after the live answer
shadow_scores = Table(
    "shadow_scores", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("module", String(32), nullable=False),
    Column("version", String(12), nullable=False),
    Column("model", String(64)),
    Column("threshold", Float),
    Column("status", String(16), nullable=False),
    Column("error", String(500)),
    Column("n_items", Integer),
    Column("n_flagged", Integer),
    Column("n_agree", Integer),
    Column("labelled", Text),  # JSON: {"n", "live": {...}, "shadow": {...}}
    Column("lag_seconds", Float),
    Column("csv_gz", LargeBinary),
    Index("ix_shadow_scores_run_id", "run_id"),
)

logins = Table(
    "logins", metadata,
    Column("id", Integer, primary_key=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("name", String(64), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("success", Boolean, nullable=False),
    Column("remote_addr", String(64)),
)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Write-ahead log, synced at checkpoints: a run is one cheap commit, readers never wait."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the parent folder of a SQLite file (WAL mode)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


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


def utcnow() -> datetime:
    """Now, in UTC: the time every table stores."""
    return datetime.now(timezone.utc)


def aware(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC time: SQLite hands datetimes back naive (they were
    written in UTC), PostgreSQL aware."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def actor() -> str:
    """Who the current request acts as (the one place that says; see webapp.access)."""
    from webapp.access import current_actor

    return current_actor()


def record_registry_event(module: str, kind: str, version: str | None, *,
                          reason: str | None = None, base_version: str | None = None,
                          model: str | None = None, value: float | None = None,
                          previous: float | None = None) -> dict:
    """Record one registry change of ``module`` (``REGISTRY_KINDS``) with who, when and why."""
    if kind not in REGISTRY_KINDS:
        raise ValueError(f"unknown registry change '{kind}'")
    row = {"module": module, "kind": kind, "version": version, "created": utcnow(),
           "user": actor(), "reason": (reason or "")[:500] or None,
           "base_version": base_version, "model": model, "value": value, "previous": previous}
    with engine().begin() as conn:
        row["id"] = int(conn.execute(insert(registry_events).values(**row))
                        .inserted_primary_key[0])
    return row


def set_live(module: str, version: str, reason: str | None = None) -> dict:
    """Make ``version`` the live one of ``module`` (recorded with who, when and why)."""
    return record_registry_event(module, "live", version, reason=reason)


def registry_log(module: str | None = None, kinds: tuple[str, ...] = REGISTRY_KINDS,
                 limit: int = 200) -> list[dict]:
    """Registry changes (of ``module``, or every module), newest first."""
    query = select(registry_events).where(registry_events.c.kind.in_(kinds))
    if module is not None:
        query = query.where(registry_events.c.module == module)
    with engine().connect() as conn:
        return [dict(r) for r in conn.execute(
            query.order_by(registry_events.c.id.desc()).limit(limit)).mappings()]


def live_history(module: str, limit: int = 50) -> list[dict]:
    """The live versions set for ``module``, newest (the live one) first."""
    return registry_log(module, ("live",), limit)


def live_version(module: str) -> str | None:
    """The version set live for ``module``; None: none was ever set (the committed release)."""
    history = live_history(module, limit=1)
    return history[0]["version"] if history else None


def shadow_version(module: str) -> str | None:
    """The candidate attached to ``module`` for shadow scoring, or None."""
    last = registry_log(module, ("shadow", "detach"), limit=1)
    return last[0]["version"] if last and last[0]["kind"] == "shadow" else None


def shadowed_modules() -> dict[str, str]:
    """Every module with a shadow candidate attached: module -> candidate version."""
    with engine().connect() as conn:
        modules = [r[0] for r in conn.execute(select(registry_events.c.module).distinct())]
    return {m: v for m in modules if (v := shadow_version(m)) is not None}


def record_shadow(run_id: int, module: str, version: str, *, status: str = "ok",
                  error: str | None = None, model: str | None = None,
                  threshold: float | None = None, n_items: int | None = None,
                  n_flagged: int | None = None, n_agree: int | None = None,
                  labelled: dict | None = None, lag_seconds: float | None = None,
                  csv_gz: bytes | None = None) -> int:
    """Store a shadow candidate's scores of run ``run_id`` (or why it could not score it)."""
    with engine().begin() as conn:
        return int(conn.execute(insert(shadow_scores).values(
            run_id=run_id, created=utcnow(), module=module, version=version, status=status,
            error=(error or "")[:500] or None, model=model, threshold=threshold,
            n_items=n_items, n_flagged=n_flagged, n_agree=n_agree,
            labelled=None if labelled is None else json.dumps(labelled),
            lag_seconds=lag_seconds, csv_gz=csv_gz)).inserted_primary_key[0])


def shadow_result(shadow_id: int) -> dict | None:
    """One shadow score's run, module, version and results CSV (gzipped), or None."""
    query = select(shadow_scores.c.run_id, shadow_scores.c.module, shadow_scores.c.version,
                   shadow_scores.c.csv_gz).where(shadow_scores.c.id == shadow_id)
    with engine().connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def shadow_runs(module: str, version: str, limit: int = 500) -> list[dict]:
    """The candidate's shadow scores of ``module``'s runs, newest first, each with the live
    run's counts (``live_flagged``, ``live_items``, ``live_release``)."""
    query = (select(shadow_scores.c.id, shadow_scores.c.run_id, shadow_scores.c.created,
                    shadow_scores.c.status, shadow_scores.c.error, shadow_scores.c.model,
                    shadow_scores.c.threshold, shadow_scores.c.n_items,
                    shadow_scores.c.n_flagged, shadow_scores.c.n_agree,
                    shadow_scores.c.labelled, shadow_scores.c.lag_seconds,
                    runs.c.rows.label("live_items"), runs.c.flagged.label("live_flagged"),
                    runs.c.release.label("live_release"))
             .join(runs, runs.c.id == shadow_scores.c.run_id)
             .where(shadow_scores.c.module == module, shadow_scores.c.version == version)
             .order_by(shadow_scores.c.id.desc()).limit(limit))
    with engine().connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for r in rows:
        r["labelled"] = json.loads(r["labelled"]) if r["labelled"] else None
    return rows


# -- runs: started, then closed ------------------------------------------------------------------
# A run is written when its work begins (``running``) and closed when it ends: ``ok`` with its
# counts and results, or ``failed`` with its reason and the HTTP status it answered. A failed
# run that answered a 4xx was *refused*: the request's own input was wrong (400), too large
# (413), of the wrong type (415). History keeps those apart and retention prunes them sooner.
RUN_STATUSES = ("running", "ok", "failed")  # what ``runs.status`` holds
OUTCOMES = ("ok", "failed", "running", "refused")  # how History sorts runs (refused: a 4xx)
WORKER_STOPPED = "the worker stopped before the run finished"


def worker_marker(pid: int | None = None) -> str:
    """The process that serves a run, as ``host:pid`` (this process, or worker ``pid``), so
    the one place that can tell whether it still lives (its master, or a restart on the same
    host) can close its runs when it died."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"[:128]


def _refused():
    return and_(runs.c.status == "failed",
                func.coalesce(runs.c.http_status, 0).between(400, 499))


def _outcome_clause(outcome: str):
    """The one rule that sorts a run into an outcome (``OUTCOMES``)."""
    if outcome == "refused":
        return _refused()
    if outcome == "failed":
        return and_(runs.c.status == "failed", not_(_refused()))
    if outcome in RUN_STATUSES:
        return runs.c.status == outcome
    raise ValueError(f"unknown outcome '{outcome}'")


def _run_outcome():
    return case((_refused(), "refused"), else_=runs.c.status).label("outcome")


def _closing_values(model: str, model_version: str | None, source: str | None, rows: int,
                    flagged: int, threshold: float | None, *,
                    default_threshold: float | None = None, input_sha256: str | None = None,
                    edited_cells: int | None = None, removed_rows: int | None = None,
                    warnings: list[str] | None = None, labelled_faulty: int | None = None,
                    release: str | None = None, drift: dict | None = None) -> dict:
    """The columns a run's end sets (what it used and what it found)."""
    return dict(
        model=model or "", model_version=model_version, source=(source or "")[:256],
        rows=rows, flagged=flagged, threshold=threshold, default_threshold=default_threshold,
        input_sha256=input_sha256, edited_cells=edited_cells, removed_rows=removed_rows,
        warnings="\n".join(warnings or [])[:4000] or None,
        labelled_faulty=None if labelled_faulty is None else int(labelled_faulty),
        release=release, drift=None if drift is None else json.dumps(drift, allow_nan=False))


def _start(conn, module: str, source: str | None, user: str | None) -> int:
    return int(conn.execute(insert(runs).values(
        created=utcnow(), module=module, model="", source=(source or "")[:256], rows=0,
        flagged=0, status="running", user=actor() if user is None else user,
        worker=worker_marker())).inserted_primary_key[0])


def start_run(module: str, source: str | None, *, user: str | None = None) -> int:
    """Record that a run of ``module`` on ``source`` (the upload's file name) has begun, by
    ``user`` (default: the request's principal), on this worker; its id.

    Written before the work, so a worker that dies mid-run leaves a ``running`` row that says
    so (:func:`close_worker_runs`, :func:`close_abandoned_runs`) rather than nothing.
    """
    with engine().begin() as conn:
        return _start(conn, module, source, user)


def _finish(conn, run_id: int, status: str, error: str | None, http_status: int | None,
            results: tuple[str, bytes] | None, keep: int, values: dict) -> None:
    conn.execute(update(runs).where(runs.c.id == run_id).values(
        status=status, error=(error or "")[:500] or None, http_status=http_status, **values))
    if results is not None:
        _store_results(conn, run_id, *results, keep=keep)


def finish_run(run_id: int, model: str, model_version: str | None, source: str | None,
               rows: int, flagged: int, threshold: float | None, *,
               results: tuple[str, bytes] | None = None, keep: int = 100, **fields) -> None:
    """Close run ``run_id`` as done (``ok``) with what it used and found, and its results.

    ``results`` (score column, gzipped results CSV) are stored in the same transaction, and
    only the latest ``keep`` runs keep theirs. ``fields``: ``default_threshold``,
    ``input_sha256``, ``edited_cells``, ``removed_rows``, ``warnings``, ``labelled_faulty``
    (items the upload's own labels mark faulty; None: no labels), ``release`` (the model
    version that scored it), ``drift`` (the module's drift figures, JSON-able, no NaN). A run
    a sweep had guessed dead is closed as done all the same: the work did finish.
    """
    values = _closing_values(model, model_version, source, rows, flagged, threshold, **fields)
    with engine().begin() as conn:
        _finish(conn, run_id, "ok", None, None, results, keep, values)


def fail_run(run_id: int, reason: str, http_status: int | None = None) -> bool:
    """Close run ``run_id`` as failed with ``reason`` and the HTTP status it answered (a 4xx:
    refused); a run already closed is left as it is. Whether it was closed now."""
    with engine().begin() as conn:
        return conn.execute(update(runs).where(runs.c.id == run_id,
                                               runs.c.status == "running")
                            .values(status="failed", error=(reason or "")[:500] or None,
                                    http_status=http_status)).rowcount == 1


def record_run(module: str, model: str, model_version: str | None, source: str | None,
               rows: int, flagged: int, threshold: float | None, *, status: str = "ok",
               error: str | None = None, http_status: int | None = None,
               results: tuple[str, bytes] | None = None, keep: int = 100,
               user: str | None = None, **fields) -> int:
    """Store a run that is already over (``status`` ``ok``, or ``failed`` with ``error`` and
    the ``http_status`` it answered) in one go, as :func:`start_run` then :func:`finish_run`
    would; its id. For imports and seeding: a request records its run as it goes."""
    values = _closing_values(model, model_version, source, rows, flagged, threshold, **fields)
    with engine().begin() as conn:
        run_id = _start(conn, module, source, user)
        _finish(conn, run_id, status, error, http_status, results, keep, values)
        return run_id


def _store_results(conn, run_id: int, score_column: str, csv_gz: bytes, keep: int) -> None:
    conn.execute(insert(run_results).values(run_id=run_id, score_column=score_column,
                                            csv_gz=csv_gz))
    cutoff = conn.execute(select(run_results.c.run_id).order_by(run_results.c.run_id.desc())
                          .offset(keep).limit(1)).scalar()
    if cutoff is not None:
        conn.execute(delete(run_results).where(run_results.c.run_id <= cutoff))


def load_results(run_id: int) -> dict | None:
    """A stored run with its results: run fields plus ``score_column`` and ``csv_gz``; or None."""
    with engine().connect() as conn:
        row = conn.execute(select(runs, run_results.c.score_column, run_results.c.csv_gz)
                           .join(run_results, run_results.c.run_id == runs.c.id)
                           .where(runs.c.id == run_id)).mappings().first()
        return dict(row) if row else None


def record_download(run_id: int, threshold: float, flagged: int, rows: int,
                    flagged_only: bool) -> None:
    """Record that a run's results were downloaded, decided at ``threshold``, and by whom."""
    with engine().begin() as conn:
        conn.execute(insert(run_downloads).values(run_id=run_id, created=utcnow(),
                                                  threshold=threshold, flagged=flagged,
                                                  rows=rows, flagged_only=flagged_only,
                                                  user=actor()))


def _with_downloads(conn, rows: list[dict]) -> list[dict]:
    ids = [r["id"] for r in rows]
    downloads: dict[int, list[dict]] = {i: [] for i in ids}
    if ids:
        for d in conn.execute(select(run_downloads).where(run_downloads.c.run_id.in_(ids))
                              .order_by(run_downloads.c.id)).mappings():
            downloads[d["run_id"]].append(dict(d))
    for r in rows:
        r["downloads"] = downloads[r["id"]]
    return rows


def _run_filter(module: str | None = None, outcomes: tuple[str, ...] | None = None,
                who: str | None = None):
    clauses = []
    if module:
        clauses.append(runs.c.module == module)
    if outcomes is not None:
        # one expression over the rows in id order: a page stops at its last run, where an
        # OR of statuses sends SQLite through the status index and a sort of every match
        clauses.append(_run_outcome().in_(outcomes) if len(outcomes) > 1
                       else _outcome_clause(outcomes[0]))
    if who:  # a user, and the same user through a token ("vic (token 3)")
        pattern = who.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(or_(runs.c.user == who,
                           runs.c.user.like(pattern + " (token %", escape="\\")))
    return and_(true(), *clauses)


def list_runs(*, module: str | None = None, outcomes: tuple[str, ...] | None = None,
              who: str | None = None, before: int | None = None, after: int | None = None,
              limit: int = 50) -> dict:
    """One page of runs matching the filters, newest first: the ``limit`` runs just older than
    run ``before`` (or the newest), or with ``after`` the ``limit`` just newer than it. Each
    run has its ``outcome`` (``OUTCOMES``), ``downloads`` and ``has_results``. Returns
    ``{"runs", "older": another page follows, "newer": one comes before}``; pages are found
    by id, so runs recorded meanwhile never shift them.
    """
    where = _run_filter(module, outcomes, who)
    query = (select(runs, _run_outcome(), run_results.c.run_id.is_not(None).label("has_results"))
             .outerjoin(run_results, run_results.c.run_id == runs.c.id).where(where))
    if after is not None:
        query = query.where(runs.c.id > after).order_by(runs.c.id.asc())
    else:
        if before is not None:
            query = query.where(runs.c.id < before)
        query = query.order_by(runs.c.id.desc())
    with engine().connect() as conn:
        rows = [dict(r) for r in conn.execute(query.limit(limit)).mappings()]
        if after is not None:
            rows.reverse()
        older = newer = False
        if rows:
            def exists(clause) -> bool:
                return conn.execute(select(runs.c.id).where(where, clause).limit(1)).first() \
                    is not None
            older = exists(runs.c.id < rows[-1]["id"])
            newer = exists(runs.c.id > rows[0]["id"])
        elif after is not None:  # past the newest: the newest page is older than here
            older = True
        return {"runs": _with_downloads(conn, rows), "older": older, "newer": newer}


def recent_runs(limit: int = 50, run_id: int | None = None) -> list[dict]:
    """The latest runs of every outcome (or only run ``run_id``), newest first, each with
    ``outcome``, ``downloads`` and ``has_results``."""
    if run_id is None:
        return list_runs(limit=limit)["runs"]
    query = (select(runs, _run_outcome(), run_results.c.run_id.is_not(None).label("has_results"))
             .outerjoin(run_results, run_results.c.run_id == runs.c.id)
             .where(runs.c.id == run_id))
    with engine().connect() as conn:
        return _with_downloads(conn, [dict(r) for r in conn.execute(query).mappings()])


def run_users(recent: int = 5000, limit: int = 200) -> list[str]:
    """Who made the latest ``recent`` runs (for History's picker: a hint, any name can be
    typed), by name; reading only those keeps it cheap however many runs are kept."""
    latest = select(runs.c.user).order_by(runs.c.id.desc()).limit(recent).subquery()
    with engine().connect() as conn:
        return [r[0] for r in conn.execute(select(latest.c.user).distinct()
                                           .where(latest.c.user.is_not(None))
                                           .order_by(latest.c.user).limit(limit))]


def recent_flag_rate(module: str, model: str, limit: int = 20,
                     leave_out_labelled_faulty: bool = True) -> dict | None:
    """What the latest ``limit`` successful runs of a model at its default threshold flagged,
    for the recalibration check; None when the model has no such run.

    On data like the training data's normal items the flag rate should be close to the
    threshold's false-alarm rate, so runs whose upload labels some items faulty (they hold
    real faults: their flags are not false alarms) are left out and listed apart
    (``leave_out_labelled_faulty``). Returns ``{"runs": [ids compared, newest first], "rows",
    "flagged", "rate" (None when nothing is compared), "left_out": [ids labelled faulty],
    "other_threshold": how many runs used another threshold}``.
    """
    with engine().connect() as conn:
        rows = conn.execute(select(runs.c.id, runs.c.rows, runs.c.flagged, runs.c.threshold,
                                   runs.c.default_threshold, runs.c.labelled_faulty)
                            .where(runs.c.module == module, runs.c.model == model,
                                   runs.c.status == "ok")
                            .order_by(runs.c.id.desc()).limit(limit)).all()
    if not rows:
        return None
    at_default = [r for r in rows if r.threshold is not None and r.default_threshold is not None
                  and abs(r.threshold - r.default_threshold) < 1e-12]
    left_out = [r for r in at_default if leave_out_labelled_faulty and r.labelled_faulty]
    compared = [r for r in at_default if r not in left_out]
    total = sum(r.rows for r in compared)
    flagged = sum(r.flagged for r in compared)
    return {"runs": [r.id for r in compared], "rows": total, "flagged": flagged,
            "rate": flagged / total if total else None, "left_out": [r.id for r in left_out],
            "other_threshold": len(rows) - len(at_default)}


DASHBOARD_ROWS = 20_000  # runs one dashboard query reads at most (the newest, if more)


def runs_per_day_since(module: str, since: datetime,
                       limit: int = DASHBOARD_ROWS) -> tuple[list[dict], bool]:
    """``module``'s successful runs created at or after ``since``, oldest first, for the
    dashboard's days (``id``, ``created``, ``rows``, ``flagged``; bucketed by the caller, so no
    dialect's date functions), and whether ``limit`` cut older ones off."""
    query = (select(runs.c.id, runs.c.created, runs.c.rows, runs.c.flagged)
             .where(runs.c.module == module, runs.c.status == "ok", runs.c.created >= since)
             .order_by(runs.c.created.desc(), runs.c.id.desc()).limit(limit + 1))
    with engine().connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    return rows[:limit][::-1], len(rows) > limit


def drift_since(module: str, since: datetime,
                limit: int = DASHBOARD_ROWS) -> tuple[list[dict], bool]:
    """``module``'s successful runs since ``since`` that stored a drift record, oldest first
    (``id``, ``created``, ``drift`` parsed), and whether ``limit`` cut older ones off."""
    query = (select(runs.c.id, runs.c.created, runs.c.drift)
             .where(runs.c.module == module, runs.c.status == "ok", runs.c.created >= since,
                    runs.c.drift.is_not(None))
             .order_by(runs.c.created.desc(), runs.c.id.desc()).limit(limit + 1))
    with engine().connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    out = []
    for r in rows[:limit][::-1]:
        try:
            r["drift"] = json.loads(r["drift"])
        except ValueError:
            continue
        if isinstance(r["drift"], dict) and isinstance(r["drift"].get("value"), (int, float)):
            out.append(r)
    return out, len(rows) > limit


def count_runs(module: str | None = None, outcomes: tuple[str, ...] | None = None,
               who: str | None = None) -> int:
    """How many runs are recorded (matching the filters of :func:`list_runs`): one count per
    outcome, each a range of the status index."""
    with engine().connect() as conn:
        return sum(int(conn.execute(select(func.count()).select_from(runs)
                                    .where(_run_filter(module, part, who))).scalar())
                   for part in ([None] if outcomes is None else [(o,) for o in outcomes]))


# -- runs a dead worker left, and retention ------------------------------------------------------
# Called with an engine (gunicorn's master has no app): at start, when a worker exits, and at
# most every PRUNE_MINUTES in each worker (webapp.runs.keep_records_tidy).
CHUNK = 500  # ids in one IN (...) list
PRUNE_BATCH = 5000  # rows one pruning round removes at most, of runs and of events


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host still runs. A zombie does not: a worker killed
    with its master is reparented, and where PID 1 does not reap (a container's shell) it
    stays in the process table, answering signal 0, until the container ends."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and is someone else's
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc (not Linux): the signal's answer; or it ended
        return not os.path.isdir("/proc/self") or os.path.exists(f"/proc/{pid}")
    return state not in (b"Z", b"X")


def _close_dead(conn, ids: list[int]) -> int:
    closed = 0
    for start in range(0, len(ids), CHUNK):
        closed += conn.execute(update(runs).where(runs.c.id.in_(ids[start:start + CHUNK]),
                                                  runs.c.status == "running")
                               .values(status="failed", error=WORKER_STOPPED)).rowcount
    return closed


def close_worker_runs(eng: Engine, marker: str) -> int:
    """Mark failed the runs still ``running`` on the worker named ``marker``
    (:func:`worker_marker`), which has exited; how many. Its master calls this: it knows."""
    with eng.begin() as conn:
        ids = [r[0] for r in conn.execute(select(runs.c.id).where(
            runs.c.status == "running", runs.c.worker == marker))]
        return _close_dead(conn, ids)


def close_abandoned_runs(eng: Engine, stale_after: timedelta, *, now: datetime | None = None,
                         serving: Callable[[int], bool] = pid_alive) -> int:
    """Mark failed (:data:`WORKER_STOPPED`) the runs left ``running`` by a worker that died;
    how many.

    Safe with several servers on one database: a run is closed only when its worker was on
    this host and its process is gone (``serving(pid)`` is False), or when it started longer
    than ``stale_after`` ago (no request lasts that long: a worker elsewhere that still serves
    it has long been timed out). A run of a live worker elsewhere is never touched.
    """
    cutoff = (now or utcnow()) - stale_after
    here = socket.gethostname() + ":"
    with eng.begin() as conn:
        found = conn.execute(select(runs.c.id, runs.c.worker, runs.c.created < cutoff)
                             .where(runs.c.status == "running")).all()
        dead = []
        for run_id, worker, stale in found:
            pid = (worker or "")[len(here):] if (worker or "").startswith(here) else ""
            if stale or (pid.isdigit() and not serving(int(pid))):
                dead.append(run_id)
        return _close_dead(conn, dead)


def _doomed_runs(conn, cutoff: datetime, keep: int, keep_refused: int, limit: int) -> list[int]:
    finished = runs.c.status != "running"  # a run in progress is never pruned
    ids: set[int] = set()
    for query in (
            select(runs.c.id).where(finished, runs.c.created < cutoff),
            select(runs.c.id).where(finished).order_by(runs.c.id.desc()).offset(keep),
            select(runs.c.id).where(_refused()).order_by(runs.c.id.desc()).offset(keep_refused)):
        ids.update(r[0] for r in conn.execute(query.limit(limit)))
    return sorted(ids)[:limit]


def _delete_runs(conn, ids: list[int]) -> None:
    """Delete runs with what hangs off them; their events stay, no longer naming them (the
    foreign keys say so, but SQLite enforces none unless asked, so it is done here)."""
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        for table in (run_results, run_downloads, shadow_scores):
            conn.execute(delete(table).where(table.c.run_id.in_(part)))
        conn.execute(update(events).where(events.c.run_id.in_(part)).values(run_id=None))
        conn.execute(delete(runs).where(runs.c.id.in_(part)))


def _doomed_events(conn, cutoff: datetime, keep: int, limit: int) -> list[int]:
    ids: set[int] = set()
    for query in (
            select(events.c.id).where(events.c.created < cutoff,
                                      or_(events.c.updated.is_(None), events.c.updated < cutoff)),
            select(events.c.id).order_by(events.c.id.desc()).offset(keep)):
        ids.update(r[0] for r in conn.execute(query.limit(limit)))
    return sorted(ids)[:limit]


def prune(eng: Engine, settings: Mapping, *, now: datetime | None = None) -> dict:
    """Apply the retention settings (``webapp.config``): runs older than ``RETAIN_RUNS_DAYS``,
    beyond the newest ``RETAIN_RUNS``, and refused runs beyond the newest ``RETAIN_REFUSED``
    go, with their results, downloads and shadow scores; events last carried on more than
    ``RETAIN_EVENTS_DAYS`` ago, or beyond the newest ``RETAIN_EVENTS``, go. Runs in progress
    stay. Each transaction removes at most ``PRUNE_BATCH`` runs and events, so the database
    is never held long; it goes on until nothing is left to remove, so the work is what came
    in since the last pass. Returns what was removed: ``{"runs", "events"}``."""
    now = now or utcnow()
    run_cutoff = now - timedelta(days=settings["RETAIN_RUNS_DAYS"])
    event_cutoff = now - timedelta(days=settings["RETAIN_EVENTS_DAYS"])
    removed = {"runs": 0, "events": 0}
    while True:
        with eng.begin() as conn:
            run_ids = _doomed_runs(conn, run_cutoff, settings["RETAIN_RUNS"],
                                   settings["RETAIN_REFUSED"], PRUNE_BATCH)
            _delete_runs(conn, run_ids)
            event_ids = _doomed_events(conn, event_cutoff, settings["RETAIN_EVENTS"],
                                       PRUNE_BATCH)
            for start in range(0, len(event_ids), CHUNK):
                conn.execute(delete(events).where(events.c.id.in_(event_ids[start:start + CHUNK])))
        removed["runs"] += len(run_ids)
        removed["events"] += len(event_ids)
        if len(run_ids) < PRUNE_BATCH and len(event_ids) < PRUNE_BATCH:
            break
    if removed["runs"] or removed["events"]:
        logger.info("retention removed %d runs and %d events", removed["runs"], removed["events"])
    return removed


def tidy_records(eng: Engine, settings: Mapping) -> dict:
    """Close the runs dead workers left (:func:`close_abandoned_runs`, ``STALE_RUN_MINUTES``),
    then prune (:func:`prune`); ``{"closed", "runs", "events"}``."""
    closed = close_abandoned_runs(eng, timedelta(minutes=settings["STALE_RUN_MINUTES"]))
    if closed:
        logger.warning("%d runs left running by a worker that stopped were marked failed",
                       closed)
    return {"closed": closed, **prune(eng, settings)}


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
