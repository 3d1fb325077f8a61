"""Train -> release -> evaluate -> predict on a tiny synthetic data set (fast)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines.core.artifacts import load_release, read_manifest
from pipelines.core.problems import SchemaError
from pipelines.wafermap.detectors.cnn import CNNDetector
from pipelines.wafermap.examples import synthetic
from pipelines.wafermap.predict import WafermapPredictor
from pipelines.wafermap.schema import CLASSES
from tests.conftest import ROOT
from tests.wafermap.conftest import FAST, synthetic_maps

METRIC_KEYS = {"accuracy", "macro_f1", "per_class", "confusion_matrix"}


def test_torch_and_onnx_agree_within_1e_4():
    X, y = synthetic(n=48, size=64, seed=3)
    detector = CNNDetector(**FAST).fit(X[:32], y[:32], validation=(X[32:], y[32:]))
    onnx = detector.score(X)
    np.testing.assert_allclose(onnx.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(detector.torch_probabilities(X) - onnx).max() < 1e-4
    assert detector.temperature_ > 0


def test_release_manifest_is_complete_and_has_no_machine_paths(tiny_data, tiny_release):
    artifacts, evaluation = tiny_release
    release, models = load_release(artifacts / "wafermap")  # every hash checked
    assert release["models"] == ["cnn"] and release["default_model"] == "cnn"
    manifest = read_manifest(artifacts / "wafermap" / "cnn")
    data = manifest["training_data"]
    assert data["file"] == "flat.npz" and len(data["sha256"]) == 64
    for text in (json.dumps(manifest), json.dumps(release)):
        assert str(artifacts) not in text and str(tiny_data["folder"]) not in text
    assert manifest["metrics"]["val"] == evaluation["val"] and "protocol" in manifest["metrics"]
    assert 0.0 <= manifest["threshold"]["value"] <= 1.0
    assert manifest["calibration"]["temperature"] > 0
    assert set(manifest["files"]) == {"model.onnx", "calibration.json"}
    assert evaluation["torch_onnx_max_abs_diff"] < 1e-4


@pytest.mark.parametrize("name", ["flat.npz", "x64.npz"])
def test_evaluate_prints_one_json_document(tiny_data, tiny_release, name):
    artifacts, _ = tiny_release
    out = subprocess.run([sys.executable, "-m", "pipelines.evaluate", "wafermap", "--data",
                          str(tiny_data["folder"] / name), "--artifacts", str(artifacts)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)  # the whole of stdout is one document
    assert set(doc) == METRIC_KEYS
    assert list(doc["per_class"]) == list(CLASSES)
    for figures in doc["per_class"].values():
        assert set(figures) == {"precision", "recall", "f1", "support"}
    matrix = np.array(doc["confusion_matrix"])
    assert matrix.shape == (9, 9) and matrix.sum() == len(tiny_data["maps"])  # every split
    assert "scored" in out.stderr


def test_evaluate_one_split_gives_the_same_figures_for_both_layouts(tiny_data, tiny_release):
    from pipelines.wafermap.evaluate import evaluate_npz

    artifacts, evaluation = tiny_release
    docs = [evaluate_npz(tiny_data["folder"] / name, artifacts / "wafermap", split="val")
            for name in ("flat.npz", "x64.npz")]
    assert docs[0] == docs[1]
    assert docs[0]["macro_f1"] == pytest.approx(evaluation["val"]["macro_f1"])
    assert np.array(docs[0]["confusion_matrix"]).sum() == tiny_data["split"].count("val")


def test_predictor_records(tiny_release):
    artifacts, _ = tiny_release
    predictor = WafermapPredictor(artifacts / "wafermap", n_jobs=1)
    maps, _ = synthetic_maps(7, seed=5)
    maps.append(np.ones((212, 84), np.uint8))
    records = predictor.predict(maps)
    assert len(records) == len(maps)
    for record in records:
        assert set(record) == {"class", "confidence", "probabilities", "top3", "needs_review"}
        assert list(record["probabilities"]) == list(CLASSES)
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        top = [t["probability"] for t in record["top3"]]
        assert top == sorted(top, reverse=True) and record["top3"][0]["class"] == record["class"]
        assert record["confidence"] == top[0]
        assert record["needs_review"] == (record["confidence"] < predictor.review_level)
    assert predictor.describe()[0]["classes"] == list(CLASSES)


def test_predictor_saliency_has_each_maps_own_size(tiny_release):
    artifacts, _ = tiny_release
    predictor = WafermapPredictor(artifacts / "wafermap", n_jobs=1)
    maps, _ = synthetic_maps(4, seed=6)
    records = predictor.predict(maps, saliency=True, names=["a", "b", "c", "d"])
    for grid, record in zip(maps, records):
        assert record["name"] in "abcd"
        assert record["saliency"].shape == grid.shape and (record["saliency"] >= 0).all()
    plain = predictor.predict(maps)
    assert [r["class"] for r in plain] == [r["class"] for r in records]


def test_predictor_refuses_bad_maps_with_their_number(tiny_release):
    artifacts, _ = tiny_release
    predictor = WafermapPredictor(artifacts / "wafermap", n_jobs=1)
    good = np.ones((10, 10), np.uint8)
    with pytest.raises(SchemaError) as excinfo:
        predictor.predict([good, np.zeros((5, 5), np.uint8), np.full((3, 3), 7, np.uint8)])
    problems = [p.to_dict() for p in excinfo.value.problems]
    assert problems[0]["index"] == 2 and "off-wafer" in problems[0]["message"]
    assert problems[1]["index"] == 3 and "not a die code" in problems[1]["message"]


def test_serving_never_imports_torch(tiny_data, tiny_release):
    artifacts, _ = tiny_release
    code = f"""
import sys
import numpy as np
from pipelines.wafermap.ingest import read_maps
from pipelines.wafermap.predict import WafermapPredictor
from pipelines.wafermap.evaluate import evaluate_npz
p = WafermapPredictor({str(artifacts / "wafermap")!r}, n_jobs=1)
maps = read_maps({str(tiny_data["folder"] / "flat.npz")!r})
assert len(p.predict(maps.maps[:3], saliency=True)) == 3
evaluate_npz({str(tiny_data["folder"] / "x64.npz")!r}, {str(artifacts / "wafermap")!r})
print("TORCH_IMPORTED", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "TORCH_IMPORTED False"


def test_test_time_symmetry_makes_scores_orientation_free():
    X, y = synthetic(n=40, size=32, seed=4)
    detector = CNNDetector(**{**FAST, "tta": 8}).fit(X, y)
    turned = np.ascontiguousarray(np.rot90(X, 1, axes=(1, 2))[:, :, ::-1])
    np.testing.assert_allclose(detector.score(turned), detector.score(X), atol=1e-5)
    assert np.abs(detector.torch_probabilities(X) - detector.score(X)).max() < 1e-4
    single = CNNDetector(**{**FAST, "tta": 1}).fit(X, y)
    assert np.abs(single.score(turned) - single.score(X)).max() > 1e-4
    with pytest.raises(ValueError, match="tta must be"):
        CNNDetector(**{**FAST, "tta": 9}).fit(X, y)
