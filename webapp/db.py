"""Database: SQLAlchemy engine from ``DATABASE_URL`` (a SQLite file by default) and the tables.

The schema is created and migrated with Alembic (``webapp/migrations``), once, before any
worker starts: gunicorn's ``on_starting`` hook (``webapp.gunicorn_conf``) or
``flask --app webapp db upgrade``. The app itself never creates tables, so two workers can
never race to do it; ``/health/ready`` reports a database that is not at the latest revision.

``runs`` records each prediction run, failed ones too, with who made it and what it used (model version,
threshold, the input's sha256, how many cells the user edited and rows removed, and how many
items the upload's own labels mark faulty);
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
from datetime import datetime, timezone
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import (Boolean, Column, DateTime, Float, ForeignKey, Index, Integer,
                        LargeBinary, MetaData, String, Table, Text, create_engine, delete, event,
                        func, inspect, insert, select, text)
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


def _now() -> datetime:
    return datetime.now(timezone.utc)


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
    row = {"module": module, "kind": kind, "version": version, "created": _now(),
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
            run_id=run_id, created=_now(), module=module, version=version, status=status,
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


def record_run(module: str, model: str, model_version: str | None, source: str | None,
               rows: int, flagged: int, threshold: float | None, *,
               default_threshold: float | None = None, input_sha256: str | None = None,
               edited_cells: int | None = None, removed_rows: int | None = None,
               warnings: list[str] | None = None, status: str = "ok",
               error: str | None = None, results: tuple[str, bytes] | None = None,
               keep: int = 100, labelled_faulty: int | None = None,
               user: str | None = None, release: str | None = None,
               drift: dict | None = None) -> int:
    """Store one prediction run (or a failed one, with its reason); return its id.

    ``results`` (score column, gzipped results CSV) are stored in the same transaction, and
    only the latest ``keep`` runs keep theirs. ``labelled_faulty``: how many items the
    upload's own labels mark faulty (None when it carried no labels). ``user``: who made the
    run, by default the request's principal (:func:`webapp.access.current_actor`). ``drift``:
    the module's drift figures of the batch (JSON-able, no NaN).
    """
    user = actor() if user is None else user
    with engine().begin() as conn:
        result = conn.execute(insert(runs).values(
            created=_now(), module=module, model=model or "", model_version=model_version,
            source=(source or "")[:256], rows=rows, flagged=flagged, threshold=threshold,
            default_threshold=default_threshold, input_sha256=input_sha256,
            edited_cells=edited_cells, removed_rows=removed_rows,
            warnings="\n".join(warnings or [])[:4000] or None, status=status,
            error=(error or "")[:500] or None,
            labelled_faulty=None if labelled_faulty is None else int(labelled_faulty),
            user=user, release=release,
            drift=None if drift is None else json.dumps(drift, allow_nan=False)))
        run_id = int(result.inserted_primary_key[0])
        if results is not None:
            _store_results(conn, run_id, *results, keep=keep)
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
        conn.execute(insert(run_downloads).values(run_id=run_id, created=_now(),
                                                  threshold=threshold, flagged=flagged,
                                                  rows=rows, flagged_only=flagged_only,
                                                  user=actor()))


def recent_runs(limit: int = 50, run_id: int | None = None) -> list[dict]:
    """The latest runs (or only run ``run_id``), newest first, each with ``downloads`` and
    ``has_results``."""
    query = (select(runs, run_results.c.run_id.is_not(None).label("has_results"))
             .outerjoin(run_results, run_results.c.run_id == runs.c.id))
    if run_id is not None:
        query = query.where(runs.c.id == run_id)
    with engine().connect() as conn:
        rows = [dict(r) for r in conn.execute(
            query.order_by(runs.c.id.desc()).limit(limit)).mappings()]
        ids = [r["id"] for r in rows]
        downloads: dict[int, list[dict]] = {i: [] for i in ids}
        if ids:
            for d in conn.execute(select(run_downloads).where(run_downloads.c.run_id.in_(ids))
                                  .order_by(run_downloads.c.id)).mappings():
                downloads[d["run_id"]].append(dict(d))
        for r in rows:
            r["downloads"] = downloads[r["id"]]
        return rows


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


def count_runs() -> int:
    """How many runs are recorded."""
    with engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(runs)).scalar())


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
