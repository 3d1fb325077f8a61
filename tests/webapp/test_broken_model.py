"""One broken model costs only itself (issue 21): a release with one corrupt bundle still loads,
its other models serve as before, and the broken one answers 503 naming it and why, recorded as
a failed run; the module page, the Models page and readiness name it. A release whose shared
files are broken still fails as a whole, with readiness's 503."""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.core import locations
from pipelines.core.artifacts import sha256
from pipelines.core.predictor import ModelUnavailableError
from pipelines.timeseries.examples import history_csv, synthetic_history
from pipelines.timeseries.predict import TimeseriesPredictor
from tests.conftest import make_batch_frame, settled_readiness, sqlite_url, to_csv_bytes
from webapp import create_app, db
from webapp.db import upgrade


def committed() -> Path:
    return locations.artifacts_dir(os.environ)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def artifacts_with(root: Path, module: str) -> Path:
    """An artifacts root holding a copy of ``module``'s committed release (to break) and the
    other modules' releases as they are; the copy's folder."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in committed().iterdir():
        if entry.is_dir() and entry.name != module:
            (root / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    shutil.copytree((committed() / module).resolve(), root / module)
    return root / module


def app_on(root: Path, tmp: Path):
    upgrade(sqlite_url(tmp))
    return create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp), "ARTIFACTS_DIR": str(root)})


@pytest.fixture(scope="module")
def sensor_autoencoder_broken(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sensor-ae")
    release = artifacts_with(tmp / "artifacts", "sensor")
    flip_byte(release / "autoencoder" / "model.onnx")
    return app_on(tmp / "artifacts", tmp)


@pytest.fixture(scope="module")
def sensor_default_broken(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sensor-default")
    release = artifacts_with(tmp / "artifacts", "sensor")
    flip_byte(release / "xgboost" / "model.ubj")
    return app_on(tmp / "artifacts", tmp)


@pytest.fixture(scope="module")
def timeseries_patchtst_broken(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ts-patchtst")
    release = artifacts_with(tmp / "artifacts", "timeseries")
    flip_byte(release / "patchtst" / "model.onnx")
    return app_on(tmp / "artifacts", tmp)


def sensor_predict(client, **query):
    return client.post("/api/v1/sensor/predict", query_string=query, data={
        "file": (io.BytesIO(to_csv_bytes(make_batch_frame(4))), "w.csv")},
        content_type="multipart/form-data")


def timeseries_predict(client, **fields):
    scaler = json.loads((committed() / "timeseries" / "scaler.json").read_text())
    text = history_csv(synthetic_history(scaler, 2, seed=0, min_cycles=40, max_cycles=40))
    return client.post("/api/v1/timeseries/predict", data={
        "file": (io.BytesIO(text.encode()), "history.csv"), **fields},
        content_type="multipart/form-data")


def assert_unavailable(response, model: str, file: str, where: Path) -> str:
    """A 503 in JSON naming ``model`` and its broken ``file``, with no machine path."""
    assert response.status_code == 503, response.get_data(as_text=True)[:500]
    message = response.get_json()["message"]
    assert f"model '{model}' is unavailable" in message
    assert f"{file} does not match the sha256 in its manifest" in message
    assert str(where) not in message
    return message


def page_names(app, url: str, *texts: str) -> str:
    response = app.test_client().get(url)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="models-unavailable"' in html
    for text in texts:
        assert text in html, text
    return html


def readiness(app) -> dict:
    response = settled_readiness(app.test_client())
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_broken_sensor_autoencoder_costs_only_itself(sensor_autoencoder_broken, tmp_path):
    app = sensor_autoencoder_broken
    client = app.test_client()
    answer = sensor_predict(client)
    assert answer.status_code == 200 and answer.get_json()["model"] == "xgboost"

    assert_unavailable(sensor_predict(client, model="autoencoder"), "autoencoder",
                       "sensor/autoencoder/model.onnx", tmp_path.parent)
    form = client.post("/api/v1/sensor/predict", data={
        "file": (io.BytesIO(to_csv_bytes(make_batch_frame(4))), "w.csv"), "model": "autoencoder"},
        content_type="multipart/form-data")
    assert_unavailable(form, "autoencoder", "sensor/autoencoder/model.onnx", tmp_path.parent)
    with app.app_context():
        run = db.recent_runs()[0]
    assert run["status"] == "failed"
    assert run["error"].startswith("HTTP 503: model 'autoencoder' is unavailable")

    page_names(app, "/sensor/", "autoencoder", "sensor/autoencoder/model.onnx does not match")
    html = page_names(app, "/models", 'id="model-sensor-xgboost"',
                      "sensor/autoencoder/model.onnx does not match")
    assert html.count("model-card model-unavailable") == 1

    body = readiness(app)
    sensor = body["modules"]["sensor"]
    assert body["status"] == "degraded" and sensor["ready"] and sensor["degraded"]
    assert sensor["models"] == ["xgboost"]
    assert [m["name"] for m in sensor["unavailable"]] == ["autoencoder"]
    assert "sensor/autoencoder/model.onnx" in sensor["unavailable"][0]["reason"]
    assert body["degraded"] == [f"sensor: model 'autoencoder' is unavailable: "
                                f"{sensor['unavailable'][0]['reason']}"]
    assert not body["modules"]["timeseries"]["degraded"]


def test_a_broken_timeseries_patchtst_costs_only_itself(timeseries_patchtst_broken, tmp_path):
    app = timeseries_patchtst_broken
    client = app.test_client()
    answer = timeseries_predict(client)
    assert answer.status_code == 200 and answer.get_json()["model"] == "xgboost_eol"
    assert timeseries_predict(client, model="isolation_forest").status_code == 200
    assert_unavailable(timeseries_predict(client, model="patchtst"), "patchtst",
                       "timeseries/patchtst/model.onnx", tmp_path.parent)

    page_names(app, "/timeseries/", "patchtst", "timeseries/patchtst/model.onnx does not match")
    page_names(app, "/models", 'id="model-timeseries-xgboost_eol"', 'id="model-sensor-xgboost"',
               "timeseries/patchtst/model.onnx does not match")

    timeseries = readiness(app)["modules"]["timeseries"]
    assert timeseries["ready"] and timeseries["degraded"]
    assert [m["name"] for m in timeseries["unavailable"]] == ["patchtst"]
    assert "patchtst" not in timeseries["models"] and "lstm_autoencoder" in timeseries["models"]


def test_a_broken_default_model_refuses_default_predictions_only(sensor_default_broken, tmp_path):
    app = sensor_default_broken
    client = app.test_client()
    message = assert_unavailable(sensor_predict(client), "xgboost", "sensor/xgboost/model.ubj",
                                 tmp_path.parent)
    assert "name another: autoencoder" in message
    named = sensor_predict(client, model="autoencoder")
    assert named.status_code == 200 and named.get_json()["model"] == "autoencoder"
    page_names(app, "/sensor/", "(the default)", "sensor/xgboost/model.ubj")
    page_names(app, "/models", 'id="model-sensor-autoencoder"', "sensor/xgboost/model.ubj")
    sensor = readiness(app)["modules"]["sensor"]
    assert sensor["unavailable"][0]["name"] == "xgboost" and sensor["unavailable"][0]["default"]


def test_a_model_whose_files_do_not_load_is_unavailable_with_the_reason(tmp_path):
    """Hashes intact but the file is no ONNX model (it was written wrong): left out, named."""
    release = tmp_path / "timeseries"
    shutil.copytree((committed() / "timeseries").resolve(), release)
    onnx = release / "patchtst" / "model.onnx"
    onnx.write_bytes(b"not an onnx model")
    manifest = json.loads((release / "patchtst" / "manifest.json").read_text())
    manifest["files"]["model.onnx"]["sha256"] = sha256(onnx)
    (release / "patchtst" / "manifest.json").write_text(json.dumps(manifest))
    predictor = TimeseriesPredictor(release, n_jobs=1)
    assert "patchtst" not in predictor.models and "xgboost_eol" in predictor.models
    with pytest.raises(ModelUnavailableError, match="model 'patchtst' is unavailable: "
                                                    "timeseries/patchtst did not load") as caught:
        predictor.get("patchtst")
    assert str(tmp_path) not in str(caught.value)


def test_a_broken_rul_model_is_named_by_every_answer_that_needs_it(tmp_path):
    release = tmp_path / "timeseries"
    shutil.copytree((committed() / "timeseries").resolve(), release)
    flip_byte(release / "xgboost_rul" / "model.json")
    predictor = TimeseriesPredictor(release, n_jobs=1)
    X = np.zeros((2, predictor.window, len(predictor.sensors)))
    with pytest.raises(ModelUnavailableError, match="model 'xgboost_rul' is unavailable"):
        predictor.score_windows(X, "isolation_forest", explain=False)


def test_a_broken_shared_file_still_fails_the_whole_module(tmp_path):
    release = artifacts_with(tmp_path / "artifacts", "timeseries")
    flip_byte(release / "scaler.json")
    app = app_on(tmp_path / "artifacts", tmp_path)
    response = settled_readiness(app.test_client())
    body = response.get_json()
    assert response.status_code == 503 and body["modules"]["timeseries"]["state"] == "failed"
    assert any(p.startswith("timeseries:") and "scaler.json" in p for p in body["problems"])
    models = app.test_client().get("/models")
    assert models.status_code == 200
    assert "Time series: no model could be loaded" in models.get_data(as_text=True)
