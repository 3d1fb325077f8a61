"""Shared fixtures: a fresh app and migrated database per test, the real data, PostgreSQL.

PostgreSQL tests use the server named by ``FABLENS_TEST_POSTGRES_URL`` (``make test`` starts
one on loopback and sets it; see the README). Without it they are skipped, except under CI,
where a missing server is a failure.
"""
from __future__ import annotations

import os
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from pipelines.core import locations
from pipelines.sensor.schema import SENSOR_COLUMNS
from webapp import create_app
from webapp.db import upgrade

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = locations.data_dir(os.environ)
POSTGRES_URL = os.environ.get("FABLENS_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real public datasets (../shared/data); CI always has them."""
    assert (DATA_DIR / "secom").is_dir(), f"real data not found at {DATA_DIR}; set FABLENS_DATA_DIR"
    return DATA_DIR


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'test.sqlite'}"


@pytest.fixture
def app(tmp_path):
    url = sqlite_url(tmp_path)
    upgrade(url)
    return create_app({"TESTING": True, "DATABASE_URL": url})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database on the test server, dropped afterwards."""
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("CI needs FABLENS_TEST_POSTGRES_URL: `make test` starts PostgreSQL")
        pytest.skip("no PostgreSQL server: set FABLENS_TEST_POSTGRES_URL (make test does)")
    from sqlalchemy import create_engine, text

    from webapp.config import normalise_database_url

    server = normalise_database_url(POSTGRES_URL)
    name = f"fablens_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = server.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each database test runs on the embedded SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return request.getfixturevalue("postgres_url")


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` served by werkzeug on 127.0.0.1 (a free port) in a thread; its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def settled_readiness(client, seconds: float = 180):
    """``GET /health/ready`` once no module is still loading (the loader runs in the background)."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        response = client.get("/health/ready")
        if response.get_json()["status"] != "loading" or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def stand_in_master(monkeypatch, database_url: str, tmp_path: Path):
    """gunicorn's master as far as its hooks (webapp.gunicorn_conf) see it: the environment
    they read (this database, open mode, a metrics folder), and a ``log`` whose calls land in
    ``logs`` as ``(level, args)``."""
    from types import SimpleNamespace

    from webapp import gunicorn_conf

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FABLENS_AUTH", "open")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    monkeypatch.setattr(gunicorn_conf, "_database", [])
    logs: list = []
    log = SimpleNamespace(**{level: (lambda *a, level=level: logs.append((level, a)))
                             for level in ("info", "warning", "exception")})
    return SimpleNamespace(log=log, logs=logs)


def make_batch_frame(n_rows: int = 5, seed: int = 0, labels: bool = False) -> pd.DataFrame:
    """A tiny batch-layout frame: Wafer id, Sensor-1..590 (and Good/Bad)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n_rows, len(SENSOR_COLUMNS))).round(4),
                         columns=SENSOR_COLUMNS)
    frame.insert(0, "Wafer", [f"W-{i + 1}" for i in range(n_rows)])
    if labels:
        frame["Good/Bad"] = np.where(np.arange(n_rows) % 3 == 0, 1, -1)
    return frame


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


@pytest.fixture(scope="session", autouse=True)
def wafermap_release(tmp_path_factory):
    """Serve a wafer-map release while the real one (``artifacts/wafermap``) is not committed.

    Without it, a tiny release is trained on synthetic maps (a few seconds) and
    ``FABLENS_ARTIFACTS_DIR`` points at a folder holding the real sensor release beside it,
    so every app the tests create (and the subprocesses they start) serves both modules.
    """
    artifacts = locations.artifacts_dir(os.environ)
    if artifacts is None or (artifacts / "wafermap" / "manifest.json").is_file():
        yield artifacts
        return
    from pipelines.wafermap.ingest import write_npz
    from pipelines.wafermap.train import train_wafermap
    from tests.wafermap.conftest import FAST, synthetic_maps

    folder = tmp_path_factory.mktemp("serving-artifacts")
    for entry in artifacts.iterdir():
        if entry.is_dir() and entry.name != "wafermap":
            (folder / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    maps, labels = synthetic_maps(96, seed=0)
    split = ["train" if i % 3 else "val" for i in range(len(maps))]
    data = tmp_path_factory.mktemp("serving-wafermap-data") / "synthetic.npz"
    write_npz(data, maps, labels, layout="flat", split=split)
    train_wafermap(data, folder, params=FAST)
    previous = os.environ.get("FABLENS_ARTIFACTS_DIR")
    os.environ["FABLENS_ARTIFACTS_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("FABLENS_ARTIFACTS_DIR", None)
        else:
            os.environ["FABLENS_ARTIFACTS_DIR"] = previous
