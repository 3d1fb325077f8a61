"""The database on SQLite and on a real PostgreSQL server: migrations, runs, readiness."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table
from sqlalchemy import MetaData, inspect

from tests.conftest import settled_readiness
from webapp import create_app
from webapp.config import from_environment, normalise_database_url
from webapp.db import (current_revision, head_revision, make_engine, metadata, recent_runs,
                       record_run, upgrade)


def test_upgrade_creates_the_schema_once(database_url):
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    assert upgrade(database_url) == head_revision()
    assert upgrade(database_url) == head_revision()  # idempotent
    tables = set(inspect(engine).get_table_names())
    assert {"runs", "alembic_version"} <= tables
    engine.dispose()


def test_migrations_build_the_schema_the_code_uses(database_url):
    """The migration chain and ``webapp.db.metadata`` describe the same tables and columns."""
    upgrade(database_url)
    engine = make_engine(database_url)
    reflected = MetaData()
    reflected.reflect(engine)
    engine.dispose()
    for table in metadata.tables.values():
        assert table.name in reflected.tables
        assert {c.name for c in table.columns} == {c.name for c in reflected.tables[table.name].columns}


def test_runs_are_recorded_and_listed_newest_first(database_url):
    upgrade(database_url)
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    with app.app_context():
        record_run("sensor", "xgboost_forest", "v1", "a.csv", 10, 2, 0.25)
        record_run("sensor", "autoencoder", "v2", "b" * 400, 5, 0, None)
        runs = recent_runs()
    assert [r["source"][:1] for r in runs] == ["b", "a"]
    assert len(runs[0]["source"]) == 256  # long sources are cut, not refused
    assert runs[1]["threshold"] == pytest.approx(0.25) and runs[0]["threshold"] is None
    assert runs[1]["created"].replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc)


def test_prediction_records_the_run_and_history_shows_it(database_url):
    from tests.conftest import make_batch_frame

    upgrade(database_url)
    client = create_app({"TESTING": True, "DATABASE_URL": database_url}).test_client()
    frame = make_batch_frame(3)
    response = client.post("/api/v1/sensor/predict",
                           json={"instances": frame.iloc[:, 1:].to_numpy().tolist()})
    assert response.status_code == 200
    page = client.get("/history").get_data(as_text=True)
    assert response.get_json()["model"] in page and "No predictions yet" not in page


def test_a_database_made_before_migrations_is_adopted(database_url):
    """Tables created by the old create_all (no alembic_version) are stamped, then upgraded."""
    engine = make_engine(database_url)
    old = MetaData()  # the runs table as create_all made it before revision 0001
    Table("runs", old, Column("id", Integer, primary_key=True),
          Column("created", DateTime(timezone=True), nullable=False),
          Column("module", String(32), nullable=False), Column("model", String(64), nullable=False),
          Column("model_version", String(128)), Column("source", String(256)),
          Column("rows", Integer, nullable=False), Column("flagged", Integer, nullable=False),
          Column("threshold", Float))
    old.create_all(engine)
    assert current_revision(engine) is None
    assert upgrade(database_url) == head_revision()
    engine.dispose()


def test_readiness_names_an_unmigrated_database(database_url):
    client = create_app({"TESTING": True, "DATABASE_URL": database_url}).test_client()
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert any(p.startswith("database:") and "db upgrade" in p
               for p in response.get_json()["problems"])
    assert client.get("/health").status_code == 200  # liveness does not depend on it
    upgrade(database_url)
    assert settled_readiness(client).status_code == 200


def test_flask_db_upgrade_command(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"revision {head_revision()}" in result.output
    assert current_revision(app.extensions["fablens_db"]) == head_revision()


def test_many_apps_start_at_once_on_a_fresh_database(database_url):
    """Creating apps never touches the schema, so simultaneous starts cannot collide."""
    upgrade(database_url)
    # import every module once first: CPython 3.11 can raise "AST constructor recursion depth
    # mismatch" when threads compile code for their first import at the same moment
    # (python/cpython#106905); a worker process imports once, so the race is the test's own.
    create_app({"TESTING": True, "DATABASE_URL": database_url})
    errors: list[BaseException] = []

    def build():
        for attempt in range(3):
            try:
                create_app({"TESTING": True, "DATABASE_URL": database_url})
                return
            except SystemError as exc:
                # the same CPython race can still hit code compiled per app (not per import);
                # it is the test's threads, never the database, so that one error is retried
                if "AST constructor recursion depth" not in str(exc) or attempt == 2:
                    errors.append(exc)
                    return
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return

    threads = [threading.Thread(target=build) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_render_style_urls_use_psycopg():
    assert normalise_database_url("postgres://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert normalise_database_url("postgresql://h/d") == "postgresql+psycopg://h/d"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert from_environment({"DATABASE_URL": "postgres://h/d"})["DATABASE_URL"] == \
        "postgresql+psycopg://h/d"


def test_migration_0004_folds_per_cycle_events_into_episodes(database_url):
    """Events 0003 stored one per flagged cycle (again at every re-score) become one per
    stretch; re-scoring after the upgrade adds nothing; 0004 downgrades and upgrades again."""
    from alembic import command
    from sqlalchemy import insert, select, text

    from webapp import db
    from webapp.events import record_events

    engine = make_engine(database_url)
    cfg = db._alembic_config(engine)
    command.upgrade(cfg, "0003")
    old = Table("events", MetaData(), autoload_with=engine)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        for run in (1, 2):  # the same history scored twice
            conn.execute(text("INSERT INTO runs (id, created, module, model, model_version, "
                              "rows, flagged) VALUES (:i, :c, 'timeseries', 'm', 'v1', 9, 5)"),
                         {"i": run, "c": now})
            conn.execute(insert(old), [
                {"created": now, "module": "timeseries", "machine_id": "7", "cycle": c,
                 "timestamp": None, "score": s, "threshold": 0.5, "rul": 30 - c, "model": "m",
                 "model_version": "v1", "run_id": run, "acknowledged": run == 1 and c == 11,
                 "acknowledged_at": now if run == 1 and c == 11 else None}
                for c, s in [(10, 0.6), (11, 0.9), (12, 0.7), (20, 0.8)]])
        conn.execute(insert(old), [{"created": now, "module": "timeseries", "machine_id": "p",
                                    "cycle": None, "timestamp": None, "score": 0.7,
                                    "threshold": 0.5, "rul": 1.0, "model": "m",
                                    "model_version": "v1", "run_id": None,
                                    "acknowledged": False}] * 2)
    assert upgrade(database_url) == head_revision()
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(db.events).order_by(db.events.c.id))
                .mappings()]
    machine = [r for r in rows if r["machine_id"] == "7"]
    assert [(r["first_cycle"], r["last_cycle"], r["n_cycles"], r["peak_cycle"], r["run_id"])
            for r in machine] == [(10, 12, 3, 11, 1), (20, 20, 1, 20, 1)]
    assert machine[0]["score"] == pytest.approx(0.9) and machine[0]["rul"] == 18
    assert machine[0]["acknowledged"] and not machine[1]["acknowledged"]
    assert len([r for r in rows if r["machine_id"] == "p"]) == 2  # no cycle: never folded
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    with app.app_context():
        again = record_events("timeseries", [
            {"machine_id": "7", "first_cycle": 10.0, "last_cycle": 12.0, "peak_cycle": 11.0,
             "n_cycles": 3, "score": 0.9, "threshold": 0.5, "rul": 18.0, "model": "m",
             "model_version": "v1"}], run_id=2)
    assert again == {"events": 1, "new": 0, "extended": 0}
    command.downgrade(cfg, "0003")
    assert {c["name"] for c in inspect(engine).get_columns("events")} >= {"cycle", "timestamp"}
    assert upgrade(database_url) == head_revision()
    engine.dispose()
