"""Ingest, transforms, the two detectors, training, the release and the evaluate command."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines.core.problems import SchemaError
from pipelines.inspection.detectors.radial import RadialGaussianDetector
from pipelines.inspection.evaluate import evaluate_category
from pipelines.inspection.examples import synthetic_parts
from pipelines.inspection.ingest import decode_image, read_test_set
from pipelines.inspection.predict import InspectionPredictor, heatmap_rgba
from pipelines.inspection.transform import background_colour, rotate_image
from tests.conftest import ROOT
from tests.inspection.conftest import FAST, png


# -- ingest -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, note", [("L", "converted from L to RGB"),
                                        ("RGBA", "converted from RGBA to RGB"),
                                        ("RGB", None)])
def test_images_are_converted_to_rgb_and_resized_and_say_so(mode, note):
    part = synthetic_parts(1, 100)[0].astype(np.uint8)
    image = decode_image(png(part, mode), "part.png")
    assert image.pixels.shape == (256, 256, 3) and image.pixels.dtype == np.uint8
    assert "resized from 100 x 100 to 256 x 256" in image.notes
    assert (note in image.notes[0]) if note else len(image.notes) == 1


def test_an_image_at_model_size_is_used_as_sent():
    part = synthetic_parts(1, 256)[0].astype(np.uint8)
    image = decode_image(png(part), "part.png")
    assert image.notes == []
    np.testing.assert_array_equal(image.pixels, part)


NOISE = np.random.default_rng(0).integers(0, 255, (32, 32, 3))


@pytest.mark.parametrize("data, needle", [(b"hello, not an image", "not an image"),
                                          (png(NOISE)[:1500], "corrupt")])
def test_unreadable_bytes_are_a_located_problem(data, needle):
    with pytest.raises(SchemaError, match=needle) as info:
        decode_image(data, "bad.png")
    assert info.value.problems[0].file == "bad.png"


def test_an_image_over_the_pixel_limit_is_refused_before_decoding():
    with pytest.raises(SchemaError, match="more than"):
        decode_image(png(np.zeros((40, 40, 3))), "big.png", max_pixels=1000)


def test_the_test_set_reads_labels_and_masks(tiny_category):
    test = read_test_set(tiny_category)
    assert test.labels.tolist() == [0] * 4 + [1] * 4
    assert not test.masks[:4].any() and all(m.any() for m in test.masks[4:])


def test_a_defect_without_its_mask_is_an_error(tiny_category, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_category, copy)
    (copy / "ground_truth/spot/001_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match="001_mask.png"):
        read_test_set(copy)


# -- transforms ---------------------------------------------------------------------------------
def test_rotation_fills_the_corners_with_the_sampled_background():
    image = np.full((64, 64, 3), (200, 190, 180), dtype=np.uint8)
    image[16:48, 16:48] = 30
    assert background_colour(image) == (200, 190, 180)
    turned = rotate_image(image, 45)
    assert tuple(turned[0, 0]) == (200, 190, 180)  # not pure white: the photo's own background
    assert tuple(turned[32, 32]) == (30, 30, 30)


def test_heatmap_puts_the_threshold_at_the_same_colour():
    rgba = heatmap_rgba(np.array([[0.0, 1.0, 2.0, 10.0]]), threshold=1.0)
    assert rgba.shape == (1, 4, 4)
    assert tuple(rgba[0, 1, :3]) == (255, 230, 0)  # at the threshold: yellow
    assert tuple(rgba[0, 2]) == tuple(rgba[0, 3])  # twice the threshold and beyond: the top


# -- the radial model is rotation-invariant by construction ---------------------------------------
@pytest.mark.parametrize("oriented", [False, True])
def test_radial_scores_do_not_change_under_a_quarter_turn(oriented):
    X = synthetic_parts(16, 64, seed=1)
    detector = RadialGaussianDetector(work_size=32, sigmas=(1.0, 2.0), rotations=0, top_k=3,
                                      components=4, samples_per_bin=2000, oriented=oriented,
                                      n_jobs=1).fit(X[:12])
    test = X[12:]
    turned = np.rot90(test, k=1, axes=(1, 2)).copy()  # exact: a permutation of the pixels
    a, b = detector.explain(test), detector.explain(turned)
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-3)
    np.testing.assert_allclose(b.maps, np.rot90(a.maps, k=1, axes=(1, 2)), atol=1e-3)


@pytest.mark.parametrize("size, chunk", [(32, 8), (128, 64), (7, 5)])
def test_the_ring_layout_puts_every_pixel_back_in_place(size, chunk):
    from pipelines.inspection.detectors.radial import ring_layout, slot_of_pixel

    ring, slots, chunk_ring, n_rings = ring_layout(size, chunk)
    assert len(slots) == len(chunk_ring) * chunk and set(slots) == set(range(size * size))
    # every chunk holds pixels of one ring only, the ring its parameters are taken from
    np.testing.assert_array_equal(ring[slots].reshape(-1, chunk),
                                  np.repeat(chunk_ring[:, None], chunk, axis=1))
    assert n_rings == ring.max() + 1
    values = np.random.default_rng(0).normal(size=size * size)
    np.testing.assert_array_equal(values[slots][slot_of_pixel(slots)], values)


def test_radial_finds_a_blob_where_it_is():
    from pipelines.inspection.synthetic import spot

    X = synthetic_parts(20, 64, seed=2)
    detector = RadialGaussianDetector(work_size=32, sigmas=(1.0, 2.0), top_k=3, components=4,
                                      samples_per_bin=2000, n_jobs=1).fit(X[:16])
    defective, mask = spot(X[16].astype(np.uint8), np.random.default_rng(4))
    explanation = detector.explain(np.stack([X[17], defective]).astype(np.float32))
    assert explanation.scores[1] > explanation.scores[0]
    peak = np.unravel_index(np.argmax(explanation.maps[1]), mask.shape)
    ys, xs = np.nonzero(mask)
    assert ys.min() - 6 <= peak[0] <= ys.max() + 6 and xs.min() - 6 <= peak[1] <= xs.max() + 6


# -- training, release, evaluation ----------------------------------------------------------------
def test_training_writes_a_release_with_thresholds_and_parity(tiny_release):
    artifacts, evaluation = tiny_release
    predictor = InspectionPredictor(artifacts / "inspection")
    assert set(predictor.models) == {"radial", "autoencoder"}
    assert predictor.default_model == evaluation["default_model"]
    for name, result in evaluation["models"].items():
        model = predictor.models[name]
        assert model.threshold == result["threshold"]["value"] > 0
        assert result["threshold"]["normal_false_alarm_rate"] <= 0.05 + 1e-9
        assert max(result["torch_onnx_max_abs_diff"].values()) < 1e-3
        assert model.manifest["params"]["work_size"] == FAST[name]["work_size"]
    data = evaluation["training_data"]
    assert len(data["val_images"]) == 4 and data["fit_images"] == 16  # 20% of 20 held out


def test_evaluate_gives_the_documented_json(tiny_release, tiny_category):
    artifacts, evaluation = tiny_release
    document = evaluate_category(tiny_category, artifacts / "inspection")
    assert set(document) == {"shipped", "models", "rotated"}
    assert document["shipped"] == evaluation["default_model"]
    assert document["rotated"]["seed"] == 2026
    for block in (document["models"], document["rotated"]["models"]):
        assert set(block) == {"radial", "autoencoder"}
        for metrics in block.values():
            assert set(metrics) == {"image_auroc", "pixel_auroc", "f1"}
            assert 0 <= metrics["image_auroc"] <= 1 and 0 <= metrics["pixel_auroc"] <= 1
    assert document["models"]["radial"]["image_auroc"] >= 0.75
    assert document["rotated"]["models"]["radial"]["image_auroc"] >= 0.75


def test_the_evaluate_command_prints_json_on_stdout_only(tiny_release, tiny_category):
    artifacts, _ = tiny_release
    out = subprocess.run([sys.executable, "-m", "pipelines.evaluate", "inspection", "--data",
                          str(tiny_category), "--artifacts", str(artifacts), "--no-rotated"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    document = json.loads(out.stdout)
    assert set(document) == {"shipped", "models"}
    assert set(document["models"]["radial"]) == {"image_auroc", "pixel_auroc", "f1"}
    assert "read 8 test images" in out.stderr


def test_evaluate_record_stores_the_test_figures_in_the_release(tiny_release, tiny_category,
                                                                tmp_path):
    """``--record`` keeps the test figures (and what was scored) in the release, hashed."""
    import shutil

    from pipelines.inspection.evaluate import TEST_EVALUATION_FILE

    artifacts, _ = tiny_release
    release = tmp_path / "inspection"
    shutil.copytree(artifacts / "inspection", release)
    document = evaluate_category(tiny_category, release, record=True)
    predictor = InspectionPredictor(release)  # every file, the new one too, hash-checked
    stored = predictor.module_json(TEST_EVALUATION_FILE)
    assert stored["models"] == document["models"] and stored["rotated"] == document["rotated"]
    assert stored["data"]["images"] == 8 and stored["data"]["good"] + stored["data"]["defective"] == 8
    assert len(stored["data"]["sha256_of_file_hashes"]) == 64 and stored["protocol"]
    assert "/" + str(tmp_path).strip("/") not in json.dumps(stored)  # no machine path


def test_evaluate_needs_only_the_test_part(tiny_release, tiny_category, tmp_path):
    import shutil

    artifacts, _ = tiny_release
    held_out = tmp_path / "held_out"
    for sub in ("test", "ground_truth"):
        shutil.copytree(tiny_category / sub, held_out / sub)
    document = evaluate_category(held_out, artifacts / "inspection", rotated=False)
    assert set(document["models"]["radial"]) == {"image_auroc", "pixel_auroc", "f1"}
    with pytest.raises(FileNotFoundError, match="no test/ folder"):
        evaluate_category(tmp_path / "nothing", artifacts / "inspection")


def test_tune_scores_a_fitted_bundle_as_training_recorded_it(tiny_category, tiny_release, capsys):
    from pipelines.inspection import tune

    artifacts, evaluation = tiny_release
    assert tune.main(["--data", str(tiny_category), "--threads", "1",
                      "--bundle", str(artifacts / "inspection" / "radial")]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    recorded = evaluation["models"]["radial"]["synthetic_validation"]
    assert line["image_auroc"] == round(recorded["image_auroc"], 4)
    assert line["rotated"]["pixel_auroc"] == round(recorded["rotated"]["pixel_auroc"], 4)
