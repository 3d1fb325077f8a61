"""Real-data tests: a short evaluation run, the evaluate and recalibrate commands, the committed
release (bundles, evaluation, training profile, row hashes) and the predictor's questions."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pipelines.core.artifacts import load_bundle, read_manifest, sha256
from pipelines.sensor.ingest.batches import batch_files, load_sensor_fault, validate_batch_files
from pipelines.sensor.ingest.secom import load_secom
from pipelines.sensor.ingest.table import parse_sensor_frame, table_to_frame
from pipelines.sensor.predict import SCORE_COLUMNS, SensorPredictor
from pipelines.sensor.schema import SENSOR_COLUMNS
from pipelines.sensor.story import ROW_KEYS_FILE
from pipelines.sensor.train import PROTOCOLS, load_sensor_data, train_sensor
from tests.conftest import ROOT

ARTIFACTS = ROOT / "artifacts" / "sensor"
HEADLINE = {"roc_auc", "roc_auc_ci", "pr_auc", "pr_auc_ci", "base_rate", "false_alarm_rate",
            "recall", "protocol", "label"}
FAULT = SCORE_COLUMNS["classifier"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def predictor():
    return SensorPredictor(ARTIFACTS)


def test_short_evaluation_on_secom_runs_every_protocol(data_dir):
    doc = train_sensor(data_dir, ROOT / "unused", candidates=["xgboost"], n_repeats=1,
                       n_resamples=200, evaluate_only=True,
                       overrides={"xgboost": {"n_estimators": 60}})
    metrics = doc["models"]["xgboost"]["metrics"]
    assert doc["shipped"] == "xgboost" and doc["selection"]["chosen"] == "xgboost"
    assert set(metrics) == set(PROTOCOLS)
    for name in PROTOCOLS:
        m = metrics[name]
        assert HEADLINE <= set(m), name
        assert m["roc_auc_ci"][0] <= m["roc_auc"] <= m["roc_auc_ci"][1]
        assert "whole days" in m["protocol"]
    assert metrics["cv"]["label"] == "day-blocked CV" and not metrics["cv"]["optimistic"]
    assert metrics["shuffled_cv"]["optimistic"]
    assert 0.55 < metrics["cv"]["roc_auc"] < 0.9  # above chance, far below a leak
    assert metrics["cv"]["base_rate"] == pytest.approx(104 / 1567, abs=1e-4)
    assert len(metrics["rolling_origin"]["origins"]) == 4
    assert metrics["time_split"]["n_train"] + metrics["time_split"]["n_test"] == 1567
    assert doc["period"] == {"from": "2008-07-19", "to": "2008-10-17"}


def test_evaluate_command_without_timestamps_falls_back_to_labelled_shuffled_cv(data_dir):
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.evaluate", "sensor", "--data",
         str(data_dir / "sensor_fault"), "--models", "autoencoder", "--repeats", "1",
         "--epochs", "3", "--bootstrap", "100"], cwd=ROOT, capture_output=True, text=True,
        timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["shipped"] is None  # no supervised candidate was asked for
    metrics = doc["models"]["autoencoder"]["metrics"]
    assert metrics["cv"]["n_rows"] == 1537 and metrics["cv"]["optimistic"]
    assert "no timestamps" in metrics["cv"]["label"]
    assert metrics["time_split"] is None and metrics["rolling_origin"] is None
    assert "fold 5/5" in out.stderr


def test_committed_release_is_intact_and_documented(data_dir):
    evaluation = json.loads((ARTIFACTS / "evaluation.json").read_text())
    shipped = evaluation["shipped"]
    assert {shipped, "autoencoder"} == {p.parent.name for p in ARTIFACTS.glob("*/manifest.json")}
    release = read_manifest(ARTIFACTS)
    assert release["default_model"] == shipped and set(release["models"]) == {shipped, "autoencoder"}
    assert set(release["files"]) == {"evaluation.json", "sample_model.json",
                                     "training_profile.json", "training_rows.npy",
                                     ROW_KEYS_FILE}
    for name, entry in release["files"].items():
        assert sha256(ARTIFACTS / name) == entry["sha256"]
    assert "/" not in json.dumps(release["training_data"])
    assert "/work" not in json.dumps(evaluation)
    for name in (shipped, "autoencoder"):
        manifest = read_manifest(ARTIFACTS / name)
        assert manifest["metrics"] == evaluation["models"][name]["metrics"]
        threshold = manifest["threshold"]
        assert threshold["target_false_alarm_rate"] == 0.05
        assert "2008-07-19..2008-10-17" in threshold["note"] and "day-blocked" in threshold["note"]
        assert {"time_split", "rolling_origin"} <= set(threshold["later_period"])
        assert manifest["feature_schema"]["names"] == SENSOR_COLUMNS
        assert manifest["shown"] is (name == shipped)
        data = manifest["training_data"]
        assert data["class_counts"] == {"pass": 1463, "fail": 104}
        assert data["sha256"] == sha256(data_dir / "secom" / data["file"])
        load_bundle(ARTIFACTS / name, SENSOR_COLUMNS)
    # every configuration tried is recorded with its parameters and every protocol's figures
    assert {"xgboost", "xgboost_smote", "extra_trees", "xgboost_forest",
            "autoencoder"} <= set(evaluation["models"])
    for entry in evaluation["models"].values():
        assert entry["params"] and set(entry["metrics"]) == set(PROTOCOLS)
    # the shipped model is the one the stated rule picks
    selection = evaluation["selection"]
    assert selection["chosen"] == shipped and shipped in selection["tied"]
    assert "paired-bootstrap" in selection["rule"]


def test_committed_bundles_predict_real_batches(data_dir, predictor):
    folder = data_dir / "sensor_fault" / "Prediction_Batch_files"
    reports, frames = validate_batch_files(batch_files(folder), with_labels=False)
    name = sorted(frames)[0]
    table = parse_sensor_frame(frames[name], name)
    results = predictor.predict(table)
    assert len(results) == len(table) and results["id"].tolist() == table.ids
    assert results[FAULT].between(0, 1).all()
    assert "anomaly_score" not in results  # hidden: scored only when asked for
    assert results["top_sensor_1"].isin(SENSOR_COLUMNS).all()
    anomaly = predictor.predict(table, model="autoencoder")
    assert (anomaly["anomaly_score"] > 0).all() and anomaly[FAULT].between(0, 1).all()


def test_committed_classifier_ranks_known_fails_higher(data_dir, predictor):
    """In-sample, so only a sanity check: fails must score above passes on average."""
    table, _ = load_sensor_data(data_dir)
    results = predictor.predict(table)
    assert results[FAULT][table.labels == 1].mean() > results[FAULT][table.labels == 0].mean()
    assert results["is_fault"][table.labels == 0].mean() < 0.2


def test_top_sensors_equal_xgboost_own_contributions_on_secom(data_dir, predictor):
    """The classifier's per-sensor contributions come from each row's leaves
    (``pipelines.core.xgb_paths``); on every real SECOM wafer they equal XGBoost's own tree-path
    contributions (``pred_contribs`` with ``approx_contribs``, how they were computed before)
    bit for bit, so the fault scores, the top sensors and their contributions are unchanged."""
    import xgboost as xgb

    from pipelines.core.detectors import top_k

    secom = load_secom(data_dir / "secom")
    X = secom.values
    detector = predictor.models[predictor.classifier].detector
    assert detector._paths() is not None  # the leaves' path is the one serving
    own = detector.booster_.predict(xgb.DMatrix(detector._features(X)), pred_contribs=True,
                                    approx_contribs=True)
    before = np.zeros(X.shape)
    before[:, detector.preprocessor_["kept"]] = own[:, :-1]
    explanation = detector.explain(X)
    assert np.array_equal(explanation.contributions, before)
    assert np.array_equal(explanation.scores,
                          1.0 / (1.0 + np.exp(-own.sum(axis=1, dtype=np.float64))))
    top = top_k(before, 3)
    assert np.array_equal(explanation.top(3), top)
    results = predictor.predict(secom)
    names = np.asarray(secom.sensor_labels)
    for k in range(3):
        assert results[f"top_sensor_{k + 1}"].tolist() == names[top[:, k]].tolist()
        assert np.array_equal(results[f"top_sensor_{k + 1}_contribution"].to_numpy(),
                              before[np.arange(len(X)), top[:, k]])


def test_training_batch_files_are_found_in_sample(data_dir, predictor):
    """The sensor-fault training batches repeat SECOM rows: every one of them is in-sample
    (found through the release's row keys, then the row hashes)."""
    assert ROW_KEYS_FILE in predictor.release["files"]
    batches, _ = load_sensor_fault(data_dir / "sensor_fault")
    found = predictor.in_sample(batches.values)
    assert len(batches) == 1537 and found.sum() == 1537
    secom = load_secom(data_dir / "secom")
    assert predictor.in_sample(secom.values).all()
    assert not predictor.in_sample(secom.values[:50] * 1.001).any()


def test_drift_and_profile_on_real_data(data_dir, predictor):
    profile = predictor.training_profile()
    assert set(profile) == {"features", "p01", "p99", "median", "missing_rate"}
    assert profile["features"] == SENSOR_COLUMNS and len(profile["p01"]) == 590
    secom = load_secom(data_dir / "secom")
    same = predictor.drift(secom.values)
    assert 0.01 < same["share_outside"] < 0.03
    assert same["share_imputed"] == pytest.approx(np.isnan(secom.values).mean())
    shifted = secom.values.copy()
    shifted[:, 21] *= 3.0
    top = predictor.drift(shifted)["top_drifted"]
    assert top[0]["sensor"] == "Sensor-22" and len(top) == 5
    assert {"sensor", "share_outside", "median", "train_p01", "train_p99"} == set(top[0])


def test_describe_tells_the_page_what_scores_and_thresholds_mean(predictor):
    described = {d["name"]: d for d in predictor.describe()}
    json.dumps(described, allow_nan=False)  # JSON-safe
    classifier = described[predictor.default_model]
    assert classifier["score"] == FAULT and classifier["shown"] is True
    assert "not a calibrated probability" in classifier["score_meaning"]
    assert "passing" in classifier["threshold_note"]
    assert set(classifier["evaluation"]) == set(PROTOCOLS)
    assert HEADLINE <= set(classifier["evaluation"]["cv"])
    assert described["autoencoder"]["shown"] is False
    assert "not a fault predictor" in described["autoencoder"]["score_meaning"]
    assert "/work" not in json.dumps(described)


def test_recalibrate_command_rewrites_the_threshold_of_a_release_copy(data_dir, tmp_path):
    release = tmp_path / "artifacts" / "sensor"
    shutil.copytree(ARTIFACTS, release)
    secom = load_secom(data_dir / "secom")
    recent = np.flatnonzero(secom.labels == 0)[-400:]  # the latest 400 passing wafers
    frame = table_to_frame(secom)
    csv = tmp_path / "recent_passing.csv"
    frame.iloc[recent].drop(columns="Good/Bad").to_csv(csv, index=False)
    before = SensorPredictor(release)
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.recalibrate", "sensor", "--data", str(csv),
         "--artifacts", str(tmp_path / "artifacts"), "--target-far", "0.05"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    after = SensorPredictor(release)  # loads: every hash still matches
    model = after.get(None)
    assert model.threshold != before.get(None).threshold
    flagged = (model.detector.score(secom.values[recent]) >= model.threshold).mean()
    assert flagged == pytest.approx(0.05, abs=0.005)
    record = read_manifest(release)["recalibrations"][-1]
    assert record["data"] == {"name": "recent_passing.csv", "sha256": sha256(csv), "rows": 400,
                              "rows_left_out_as_failing": 0}
    assert "recent_passing.csv" in model.manifest["threshold"]["note"]
    assert json.loads(out.stdout)["value"] == model.threshold
    assert read_manifest(ARTIFACTS) != read_manifest(release)  # the committed release is untouched
    too_few = tmp_path / "few.csv"
    frame.iloc[recent[:20]].to_csv(too_few, index=False)
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.recalibrate", "sensor", "--data", str(too_few),
         "--artifacts", str(tmp_path / "artifacts")], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert out.returncode != 0 and "at least 100 are needed" in out.stderr
