"""Train -> release -> evaluate -> predict on a tiny synthetic data set (fast)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines.core.artifacts import load_bundle, load_release, read_manifest, save_bundle
from pipelines.core.onnx import onnx_session
from pipelines.core.problems import SchemaError
from pipelines.wafermap.detectors.cnn import BLEND_WEIGHTS, CNNDetector, blend, single_view_onnx
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
    assert set(manifest["files"]) == {"model.onnx", "calibration.json", "trees.ubj"}
    assert manifest["params"]["blend_features"] and manifest["params"]["tta"] == 1
    assert evaluation["calibration"]["blend_network_weight"] in BLEND_WEIGHTS
    assert "map-feature trees" in manifest["metrics"]["protocol"]


def test_a_single_view_graph_scores_the_first_orientation_only():
    import torch

    X, y = synthetic(n=40, size=32, seed=5)
    detector = CNNDetector(**{**FAST, "tta": 4}).fit(X, y)
    one = single_view_onnx(detector.onnx_)
    probabilities = onnx_session(one, 1).run(None, {"maps": X.astype(np.float32)})[0]
    with torch.no_grad():
        expected = torch.softmax(detector.module_.logits(torch.from_numpy(X).float())
                                 / detector.temperature_, dim=1).numpy()
    assert probabilities.shape == (40, len(CLASSES))
    assert np.abs(probabilities - expected).max() < 1e-5
    assert single_view_onnx(one) == one  # one orientation already: unchanged


def test_the_blend_weight_is_the_best_on_validation_and_survives_a_bundle(tmp_path):
    X, y = synthetic(n=120, size=32, seed=6)
    detector = CNNDetector(**{**FAST, "blend_features": True}).fit(
        X[:80], y[:80], validation=(X[80:], y[80:]))
    by_weight = detector.blend_val_["by_weight"]
    assert set(by_weight) == {str(w) for w in BLEND_WEIGHTS}
    assert by_weight[str(detector.blend_weight_)] == max(by_weight.values())
    p_net, p_trees = detector._network(X), detector._trees(X)
    expected = blend(p_net, p_trees, detector.blend_weight_, detector.blend_temperature_)
    np.testing.assert_allclose(detector.score(X), expected, atol=1e-6)
    assert not np.allclose(detector.score(X), p_net, atol=1e-3)  # the trees count
    save_bundle(detector, tmp_path / "cnn", module="wafermap", manifest_fields={"name": "cnn"})
    loaded, _ = load_bundle(tmp_path / "cnn")
    np.testing.assert_array_equal(loaded.score(X), detector.score(X))
    two = CNNDetector(**{**FAST, "tta": 2, "blend_features": True}).fit(X, y)  # any tta blends
    np.testing.assert_allclose(two.score(X).sum(axis=1), 1.0, atol=1e-5)


def test_the_blend_weight_goes_to_the_part_that_is_right():
    from pipelines.wafermap.detectors.cnn import choose_blend_weight

    y = np.arange(90) % 9
    right, wrong = np.full((90, 9), 0.1 / 8), np.full((90, 9), 0.1 / 8)
    right[np.arange(90), y] = 0.9
    wrong[np.arange(90), (y + 1) % 9] = 0.9
    weight, f1 = choose_blend_weight(right, wrong, y, 9)  # the network is right: w > 0.5
    assert (weight, f1[0.4], f1[0.8]) == (0.6, 0.0, 1.0)
    weight, f1 = choose_blend_weight(wrong, right, y, 9)  # the trees are
    assert (weight, f1[0.6], f1[0.2]) == (0.4, 0.0, 1.0)


def test_a_trained_network_is_blended_without_training_it_again(tmp_path):
    from pipelines.wafermap.train import network_from

    X, y = synthetic(n=120, size=32, seed=7)
    four = CNNDetector(**{**FAST, "tta": 4}).fit(X[:80], y[:80])
    save_bundle(four, tmp_path / "cnn", module="wafermap", manifest_fields={"name": "cnn"})
    network = network_from(tmp_path / "cnn", {"trees": 10})
    assert network.tta == 1 and network.trees_ is None
    one_view = onnx_session(single_view_onnx(four.onnx_), 1).run(
        None, {"maps": X.astype(np.float32)})[0]
    np.testing.assert_allclose(network.score(X), one_view, atol=1e-6)
    network.fit_blend(X[:80], y[:80], validation=(X[80:], y[80:]))
    assert network.trees_ is not None and network.blend_weight_ in BLEND_WEIGHTS


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


def test_a_test_split_run_is_recorded_and_counted(tmp_path, tiny_data, tiny_release):
    """Scoring a visible test split is recorded (evaluations/wafermap.jsonl by default); other
    splits are not: a test set is meant to be scored once, at the end."""
    from pipelines.wafermap.ingest import write_npz

    artifacts, _ = tiny_release
    data = tmp_path / "maps.npz"
    split = ["test" if i % 2 else "val" for i in range(len(tiny_data["maps"]))]
    write_npz(data, tiny_data["maps"], tiny_data["labels"], layout="flat", split=split)
    record = tmp_path / "runs" / "wafermap.jsonl"

    def evaluate(part: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "pipelines.evaluate", "wafermap", "--data",
                              str(data), "--split", part, "--artifacts", str(artifacts),
                              "--record", str(record)], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout)

    assert "record" not in evaluate("val") and not record.exists()
    first, second = evaluate("test"), evaluate("test")
    assert [first["record"]["runs_on_this_test_file"],
            second["record"]["runs_on_this_test_file"]] == [1, 2]
    lines = [json.loads(t) for t in record.read_text().splitlines()]
    assert [(line["data"]["file"], line["part"], line["maps"]) for line in lines] == \
        [("maps.npz", "test", len(split) // 2)] * 2
    assert lines[0]["macro_f1"] == first["macro_f1"]
    assert lines[0]["release"]["default_model"] == "cnn"
