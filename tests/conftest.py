"""Shared fixtures: a fresh app and SQLite database per test, the real data directory."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.schema import SENSOR_COLUMNS
from webapp import create_app

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("FABLENS_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real public datasets (../shared/data); CI always has them."""
    assert (DATA_DIR / "secom").is_dir(), f"real data not found at {DATA_DIR}; set FABLENS_DATA_DIR"
    return DATA_DIR


@pytest.fixture
def app(tmp_path):
    return create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite'}"})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


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
