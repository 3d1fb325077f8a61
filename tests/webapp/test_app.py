"""The app factory, configuration, readiness, the results-CSV writer and the page config."""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from pipelines.core import locations
from pipelines.core.problems import NUMBER_PATTERN
from webapp import config, create_app
from webapp.config import ConfigError
from webapp.db import upgrade
from webapp.downloads import FORMULA_TRIGGERS, ChunkedCsv, csv_bytes, neutralise
from webapp.predictors import get_predictor
from tests.conftest import ROOT, settled_readiness, sqlite_url


def test_defaults_then_environment_then_test_config(tmp_path):
    env = {"FABLENS_MAX_ROWS": "7", "FABLENS_MAX_UPLOAD_MB": "1.5", "FABLENS_MODEL_THREADS": "3",
           "DATABASE_URL": "postgres://db/x"}
    settings = config.load(env, {"MAX_ROWS": 9})
    assert settings["MAX_ROWS"] == 9 and settings["MODEL_THREADS"] == 3
    assert settings["MAX_CONTENT_LENGTH"] == int(1.5 * 1024 * 1024)
    assert settings["DATABASE_URL"] == "postgresql+psycopg://db/x"
    assert config.load({})["DATABASE_URL"].endswith("instance/fablens.sqlite")
    for bad in ({"FABLENS_MAX_ROWS": "many"}, {"FABLENS_MODEL_THREADS": "0"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            config.load(bad)


def test_dead_settings_are_gone():
    keys = set(config.defaults()) | {key for key, _ in config.ENVIRONMENT.values()}
    # (DATA_DIR is alive again: training jobs read the shared data from it, webapp/jobs)
    assert not keys & {"DEFAULT_SENSOR_MODEL", "ONNX_THREADS"}
    text = "\n".join(p.read_text() for p in (ROOT / "webapp").rglob("*.py"))
    assert "FABLENS_SENSOR_MODEL" not in text and "FABLENS_ONNX_THREADS" not in text


def test_one_default_for_the_data_directory(monkeypatch):
    monkeypatch.delenv("FABLENS_DATA_DIR", raising=False)
    assert locations.data_dir({}) == (ROOT.parent / "shared" / "data").resolve()
    assert locations.data_dir({"FABLENS_DATA_DIR": "/x"}).as_posix() == "/x"
    sources = [p for d in ("pipelines", "webapp", "benchmarks") for p in (ROOT / d).rglob("*.py")]
    mentions = [p.relative_to(ROOT).as_posix() for p in sources
                if '"shared" / "data"' in p.read_text() or "'shared' / 'data'" in p.read_text()]
    assert mentions == ["pipelines/core/locations.py"]


def test_serving_threads_come_from_config(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path), "MODEL_THREADS": 1})
    with app.app_context():
        models = get_predictor("sensor").models
    for model in models.values():
        assert model.detector.n_jobs == 1  # trained with n_jobs=2
        session = getattr(model.detector, "session_", None)
        if session is not None:
            assert session.get_session_options().intra_op_num_threads == 1


def test_missing_artifacts_or_templates_refuse_to_start(tmp_path):
    with pytest.raises(ConfigError, match="artifacts"):
        create_app({"ARTIFACTS_DIR": str(tmp_path / "none")})
    with pytest.raises(ConfigError, match="templates"):
        create_app({"HOME_DIR": str(tmp_path)})


def test_readiness_names_a_broken_release_file(tmp_path):
    """A file every model shares fails the module (one model's broken bundle only degrades it:
    tests/webapp/test_broken_model.py)."""
    artifacts = tmp_path / "artifacts"
    shutil.copytree(locations.artifacts_dir(os.environ), artifacts)  # the releases served
    (artifacts / "sensor" / "training_profile.json").write_text("{}")
    upgrade(sqlite_url(tmp_path))
    client = create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path),
                         "ARTIFACTS_DIR": str(artifacts)}).test_client()
    response = settled_readiness(client)
    assert response.status_code == 503
    problems = response.get_json()["problems"]
    assert problems == ["sensor: artifacts/sensor/training_profile.json does not match "
                        "the sha256 in its manifest; retrain or restore the committed file"]
    assert client.get("/health").status_code == 200


def test_readiness_reports_a_slow_load_at_once_and_never_loads_itself(tmp_path, monkeypatch):
    """The loader works in the background; /health/ready only reports how far it got."""
    import dataclasses
    import threading

    from webapp import predictors

    release, calls = threading.Event(), []
    real = predictors.get_module

    def slow_module(name):
        spec = real(name)

        def load(directory, n_jobs):
            calls.append(threading.current_thread().name)
            assert release.wait(120), "the test never released the load"
            return spec.predictor(directory, n_jobs=n_jobs)
        return dataclasses.replace(spec, predictor=load) if name == "sensor" else spec

    monkeypatch.setattr(predictors, "get_module", slow_module)
    upgrade(sqlite_url(tmp_path))
    client = create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path),
                         "READY_WAIT_SECONDS": 0.2}).test_client()
    deadline = time.monotonic() + 60
    try:
        first = client.get("/health/ready")
        body = first.get_json()
        assert first.status_code == 503 and body["status"] == "loading"
        # the loader may not have reached the sensor yet ("waiting") on a busy machine
        assert body["modules"]["sensor"]["state"] in ("waiting", "loading")
        assert not body["modules"]["sensor"]["ready"]
        assert "sensor" in body["loading"] and body["problems"] == []
        while body["modules"]["sensor"]["state"] != "loading":  # each answer at once, held load
            assert time.monotonic() < deadline, body
            body = client.get("/health/ready").get_json()
        assert body["modules"]["sensor"] == {"ready": False, "state": "loading"}
        assert client.get("/health/ready").status_code == 503
    finally:
        release.set()
    assert settled_readiness(client).status_code == 200
    assert calls == ["fablens-model-loader"]  # loaded once, by the loader, not by a probe


def test_readiness_is_ready_with_the_committed_artifacts(client):
    body = settled_readiness(client).get_json()
    assert body["status"] == "ready" and body["modules"]["sensor"]["default_model"]


@pytest.mark.parametrize("text,safe", [
    ("=1+1", "'=1+1"), ("+SUM(A1)", "'+SUM(A1)"), ("-x", "'-x"), ("@cmd", "'@cmd"),
    ("\tTAB", "'\tTAB"), ("\rCR", "'\rCR"), ("-5", "-5"), ("+3.25e2", "+3.25e2"),
    ("W-1", "W-1"), ("", ""),
])
def test_formula_guard(text, safe):
    assert neutralise(text) == safe


def test_results_csv_keeps_every_row_and_numbers(tmp_path):
    frame = pd.DataFrame({"id": ["=A1", "-7", "ok"] * 1000, "score": [-0.5, 1.23456789, 3.0] * 1000,
                          "flag": [True, False, True] * 1000})
    back = pd.read_csv(io.BytesIO(csv_bytes(frame)), dtype={"id": str})
    assert len(back) == 3000
    assert back["id"].tolist()[:3] == ["'=A1", "-7", "ok"]
    assert back["score"].tolist()[:3] == [-0.5, 1.234568, 3.0]  # numbers untouched (rounded)


def test_chunked_results_csv_is_the_whole_file_and_its_gzip():
    frame = pd.DataFrame({"=id": ["=A1", "-7", "ok", "@x", "W"] * 7, "score": np.arange(35) / 7,
                          "flag": [True, False, True, False, False] * 7})
    writer = ChunkedCsv(float_decimals=None)
    for start in range(0, 35, 10):
        writer.add(frame.iloc[start:start + 10])
    assert writer.data() == csv_bytes(frame, float_decimals=None)  # one header, every row
    assert gzip.decompress(writer.gzipped()) == writer.data()


def test_page_receives_the_server_rules(client):
    html = client.get("/sensor/").get_data(as_text=True)
    cfg = json.loads(re.search(r'id="page-config">(.*?)</script>', html, re.S).group(1))
    assert cfg["number_pattern"] == NUMBER_PATTERN
    assert "formula_triggers" not in cfg  # downloads are written on the server only
    assert cfg["label_columns"] == ["Pass/Fail", "Good/Bad"]
    assert cfg["csv_extensions"] == [".csv", ".txt", ".tsv"] and [0x89, 0x50, 0x4E, 0x47] in cfg["binary_signatures"]
    for model in cfg["models"]:
        curve = model["far_curve"]
        assert len(curve["thresholds"]) == len(curve["rates"]) == 101
    assert "/work/" not in html  # no machine path reaches the page


def test_js_does_not_restate_server_rules():
    """The rules the server hands over are not written again in the page scripts."""
    js = "\n".join(p.read_text() for p in (ROOT / "static" / "js").rglob("*.js"))
    assert "Good/Bad" not in js and "Pass/Fail" not in js
    assert "[+-]?(?:\\d+" not in js  # the numeric-cell pattern
    assert "quantiles" not in js  # the false-alarm rule: the page reads the server's curve
    assert "0x89" not in js and "csv|txt" not in js  # what counts as a CSV file
