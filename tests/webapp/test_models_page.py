"""The Models page: a card per bundle of every module, read from the committed manifests
(data, every protocol with its intervals, the threshold and its false-alarm figure, versions)."""
from __future__ import annotations

import html as html_lib
import json
import re

import pytest

from pipelines.core.evaluation import METRIC_LABELS
from pipelines.core.locations import artifacts_dir

ARTIFACTS = artifacts_dir({})


def manifest(module: str, model: str) -> dict:
    return json.loads((ARTIFACTS / module / model / "manifest.json").read_text())


@pytest.fixture
def page(client) -> str:
    response = client.get("/models")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def card(page: str, module: str, model: str) -> str:
    """One card's text, tags dropped and spaces folded."""
    start = page.index(f'id="model-{module}-{model}"')
    end = page.find('<li class="card model-card"', start)
    text = re.sub(r"<[^>]+>", " ", page[start:end if end > 0 else None])
    return re.sub(r"\s+", " ", html_lib.unescape(text))


BUNDLES = [(p.parent.parent.name, p.parent.name)
           for p in sorted(ARTIFACTS.glob("*/*/manifest.json"))]


@pytest.mark.parametrize("module, model", BUNDLES)
def test_every_card_names_its_data_hash_counts_and_versions(page, module, model):
    text = card(page, module, model)
    data = manifest(module, model)["training_data"]
    assert "release data" not in text  # the old placeholder
    assert (data.get("name") or data["folder"]) in text
    assert (data.get("sha256") or data["sha256_of_file_hashes"]) in text
    rows = data.get("rows") or data.get("images")
    for n in (rows.values() if isinstance(rows, dict) else [rows]):
        assert f"{n:,} " in text
    if "engines" in data:
        assert f"{data['engines']} engines" in text
    classes = data.get("class_counts") or {}
    for name, n in (next(iter(classes.values())) if classes and isinstance(
            next(iter(classes.values())), dict) else classes).items():
        assert f"{n:,} {name}" in text
    libraries = manifest(module, model)["libraries"]
    assert f"onnxruntime {libraries['onnxruntime']}" in text and f"numpy {libraries['numpy']}" in text
    assert "/work/" not in text and "../shared" not in text  # no machine path


def test_sensor_intervals_are_shown_for_every_protocol(page):
    text = card(page, "sensor", "xgboost")
    for key, protocol in manifest("sensor", "xgboost")["metrics"].items():
        for metric in ("roc_auc", "pr_auc", "false_alarm_rate", "recall"):
            lo, hi = protocol[f"{metric}_ci"]
            assert f"{protocol[metric]:.3f} 95% CI {lo:.3f}–{hi:.3f}" in text, (key, metric)
    assert "Shuffled stratified CV (optimistic: ignores time)" in text


def test_metrics_have_readable_names(page):
    text = re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", page)))
    for raw in ("Rul nasa score", "Torch onnx max abs diff", "Rul rmse", "Image auroc",
                "Macro f1", "Pixel auroc"):
        assert raw not in text
    assert "RUL NASA score" in card(page, "timeseries", "xgboost_rul")
    assert "ONNX export largest difference from torch" in card(page, "timeseries", "patchtst")
    # every metric a committed release records has a readable name, in one place
    keys = set()
    for module, model in BUNDLES:
        for block in manifest(module, model).get("metrics", {}).values():
            if isinstance(block, dict):
                for k, v in block.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool) \
                            and not k.startswith("n_") and k not in ("rul_engines",):
                        keys.add(k)
    assert keys <= set(METRIC_LABELS), keys - set(METRIC_LABELS)


@pytest.mark.parametrize("model", ["radial", "autoencoder"])
def test_inspection_shows_the_test_figures_beside_the_synthetic_ones(page, model):
    text = card(page, "inspection", model)
    test = json.loads((ARTIFACTS / "inspection" / "test_evaluation.json").read_text())
    header = text[text.index("Metric"):text.index("Image AUROC")]
    assert header.index("Synthetic defects, aligned") < header.index("Synthetic defects, rotated") \
        < header.index("Test photos (bottle/test), aligned") \
        < header.index("Test photos (bottle/test), rotated")
    assert "42 photos, 10 good, 32 defective" in header and "42 with a synthetic defect" in header
    synthetic = manifest("inspection", model)["metrics"]
    row = text[text.index("Image AUROC"):text.index("Pixel AUROC")]
    figures = [synthetic["synthetic defects, aligned"]["image_auroc"],
               synthetic["synthetic defects, rotated"]["image_auroc"],
               test["models"][model]["image_auroc"], test["rotated"]["models"][model]["image_auroc"]]
    assert " ".join(f"{v:.3f}" for v in figures) in row


def test_the_wafer_map_card_says_what_it_uses_instead_of_a_threshold(page):
    text = card(page, "wafermap", "cnn")
    review = manifest("wafermap", "cnn")["threshold"]
    assert "Default threshold ." not in text and "Default threshold" not in text
    assert "No threshold decides the class: each map gets its most probable class" in text
    assert f"below {review['value']:.4f} is marked needs review" in text
    assert f"{100 * review['val_flagged_share']:.1f}% needed review" in text
    assert "Macro F1 (mean over classes)" in text and "Per class" in text


@pytest.mark.parametrize("module, model", [b for b in BUNDLES if b[0] != "wafermap"])
def test_the_threshold_states_its_false_alarm_figure_and_its_target(page, module, model):
    from pipelines.core.predictor import LoadedModel

    loaded = LoadedModel(model, None, manifest(module, model))
    text = card(page, module, model)
    figure = f"{100 * loaded.false_alarm_rate(loaded.threshold):.1f}%"
    assert f"Default threshold {loaded.threshold:.4f}" in text
    assert f"False-alarm rate: {figure} of" in text
    if "selection" in loaded.manifest["threshold"]:  # chosen for F1: its "target" is no target
        assert "Not chosen for a false-alarm target" in text
    else:
        assert f"Chosen for a false-alarm target of {100 * loaded.target_far:.1f}%" in text
