"""The database on SQLite and on a real PostgreSQL server: migrations, runs, readiness."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table
from sqlalchemy import MetaData, inspect

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
    assert client.get("/health/ready").status_code == 200


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
