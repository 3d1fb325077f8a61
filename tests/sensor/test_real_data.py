"""Real-data tests: a short cross-validation run, the evaluate command, the committed bundles."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines.core.artifacts import load_bundle, read_manifest, sha256
from pipelines.sensor.ingest.batches import batch_files, validate_batch_files
from pipelines.sensor.ingest.table import parse_sensor_frame
from pipelines.sensor.predict import SensorPredictor
from pipelines.sensor.schema import SENSOR_COLUMNS
from pipelines.sensor.train import load_sensor_data, train_sensor
from tests.conftest import ROOT

ARTIFACTS = ROOT / "artifacts" / "sensor"
METRICS = {"roc_auc", "pr_auc", "balanced_accuracy", "precision", "recall", "f1"}

pytestmark = pytest.mark.slow


def test_short_cross_validation_on_secom(data_dir):
    doc = train_sensor(data_dir, ROOT / "unused", candidates=["xgboost"], n_repeats=1,
                       evaluate_only=True, overrides={"xgboost": {"n_estimators": 60}})
    result = doc["models"]["xgboost"]
    assert doc["shipped"] == "xgboost"
    assert METRICS <= set(result["cv"]) and METRICS <= set(result["time_split"])
    assert 0.6 < result["cv"]["roc_auc"] < 0.95  # far above chance, far below a leak
    assert result["time_split"]["n_train"] == 1175 and result["time_split"]["n_test"] == 392


def test_evaluate_command_prints_one_json_document(data_dir):
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.evaluate", "sensor", "--data",
         str(data_dir / "sensor_fault"), "--models", "autoencoder", "--repeats", "1",
         "--epochs", "3"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["shipped"] is None  # no supervised candidate was asked for
    assert METRICS <= set(doc["models"]["autoencoder"]["cv"])
    assert doc["models"]["autoencoder"]["cv"]["n_rows"] == 1537
    assert doc["models"]["autoencoder"]["time_split"] is None  # batch files carry no timestamps
    assert "fold 5/5" in out.stderr


def test_committed_bundles_are_intact_and_documented(data_dir):
    evaluation = json.loads((ARTIFACTS / "evaluation.json").read_text())
    shipped = evaluation["shipped"]
    assert {shipped, "autoencoder"} == {p.parent.name for p in ARTIFACTS.glob("*/manifest.json")}
    release = read_manifest(ARTIFACTS)
    assert release["default_model"] == shipped and set(release["models"]) == {shipped, "autoencoder"}
    assert set(release["files"]) == {"evaluation.json", "sample_model.json"}
    for name, entry in release["files"].items():
        assert sha256(ARTIFACTS / name) == entry["sha256"]
    assert "path" not in release["training_data"] and "/" not in json.dumps(release["training_data"])
    for name in (shipped, "autoencoder"):
        manifest = read_manifest(ARTIFACTS / name)
        assert manifest["metrics"] == evaluation["models"][name]
        assert manifest["threshold"]["target_false_alarm_rate"] == 0.05
        assert manifest["feature_schema"]["names"] == SENSOR_COLUMNS
        data = manifest["training_data"]
        assert data["class_counts"] == {"pass": 1463, "fail": 104}
        assert data["sha256"] == sha256(data_dir / "secom" / data["file"])
        load_bundle(ARTIFACTS / name, SENSOR_COLUMNS)
    # the bar for the shipped supervised model
    cv = evaluation["models"][shipped]["cv"]
    assert cv["roc_auc"] >= 0.75 and cv["pr_auc"] >= 0.20
    # the shipped model is the best supervised candidate by cross-validated ROC-AUC
    supervised = {n: m["cv"]["roc_auc"] for n, m in evaluation["models"].items()
                  if n != "autoencoder"}
    assert shipped == max(supervised, key=supervised.get)


def test_committed_bundles_predict_real_batches(data_dir):
    predictor = SensorPredictor(ARTIFACTS)
    folder = data_dir / "sensor_fault" / "Prediction_Batch_files"
    reports, frames = validate_batch_files(batch_files(folder), with_labels=False)
    name = sorted(frames)[0]
    table = parse_sensor_frame(frames[name], name)
    results = predictor.predict(table)
    assert len(results) == len(table) and results["id"].tolist() == table.ids
    assert results["fault_probability"].between(0, 1).all()
    assert (results["anomaly_score"] > 0).all()
    assert results["top_sensor_1"].isin(SENSOR_COLUMNS).all()


def test_committed_classifier_ranks_known_fails_higher(data_dir):
    """In-sample, so only a sanity check: fails must score above passes on average."""
    table, _ = load_sensor_data(data_dir)
    results = SensorPredictor(ARTIFACTS).predict(table)
    fails = results["fault_probability"][table.labels == 1].mean()
    passes = results["fault_probability"][table.labels == 0].mean()
    assert fails > passes
    flagged_passes = results["is_fault"][table.labels == 0].mean()
    assert flagged_passes < 0.2
