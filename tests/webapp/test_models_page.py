"""The Models page: a card per bundle of every module, read from the committed manifests
(data, every protocol with its intervals, the threshold and its false-alarm figure, versions)."""
from __future__ import annotations

import html as html_lib
import json
import re

import pytest

from pipelines.core.metric_names import METRIC_LABELS
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
    evaluation = json.loads((ARTIFACTS / "inspection" / "evaluation.json").read_text())
    drawn = evaluation["models"][model]["synthetic_validation"]
    assert "42 photos, 10 good, 32 defective" in header
    assert f"{drawn['good']} good, {drawn['defects']} with a synthetic defect" in header
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


# -- the recalibration check ------------------------------------------------------------------
def section(page: str, module: str, model: str) -> str:
    start = page.index(f'id="recalibration-{module}-{model}"')
    return page[start:page.index("</div>", start)]


def zip_of(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def post_photos(client, files: list[tuple[str, bytes]]) -> dict:
    import io

    data = {"file": [(io.BytesIO(b), name) for name, b in files]}
    response = client.post("/api/v1/inspection/predict", data=data,
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return json.loads(response.get_data(as_text=True))


def test_inspection_runs_labelled_by_their_folders_are_left_out_of_the_check(client, app):
    """A zip in the MVTec AD layout (good/ and defect folders) holds real defects: its flags
    are not false alarms, so the check compares only the unlabelled run, and says which."""
    import numpy as np

    from pipelines.inspection.examples import synthetic_parts
    from tests.inspection.conftest import png
    from webapp import db

    photos = [png(p) for p in synthetic_parts(3, 256, seed=5).astype(np.uint8)]
    labelled = post_photos(client, [("mvtec.zip", zip_of({
        "test/good/000.png": photos[0], "test/broken_large/000.png": photos[1],
        "test/contamination/001.png": photos[2]}))])
    plain = post_photos(client, [("a.png", photos[0]), ("b.png", photos[1])])
    with app.app_context():
        runs = {r["id"]: r for r in db.recent_runs()}
        recent = db.recent_flag_rate("inspection", plain["model"])
    assert runs[labelled["run_id"]]["labelled_faulty"] == 2
    assert runs[plain["run_id"]]["labelled_faulty"] is None
    assert recent["runs"] == [plain["run_id"]] and recent["left_out"] == [labelled["run_id"]]
    assert recent["rows"] == 2 and recent["flagged"] == plain["n_anomalies"]

    text = section(client.get("/models").get_data(as_text=True), "inspection", plain["model"])
    compared, left_out = text.split("Left out:")
    assert f'href="/history?run={plain["run_id"]}#run-{plain["run_id"]}">run {plain["run_id"]}</a>' in compared
    assert f"run {labelled['run_id']}<" not in compared
    assert "the latest 1 run at the default" in compared and "of 2" in compared
    assert f'href="/history?run={labelled["run_id"]}#run-{labelled["run_id"]}"' in left_out and "1 run " in left_out
    assert "python -m pipelines.recalibrate inspection" not in text  # no such command


def test_the_inspection_sample_is_labelled_by_its_folders(client, app):
    from webapp import db

    sample = client.get("/inspection/sample.zip").data
    body = post_photos(client, [("fablens_inspection_sample.zip", sample)])
    names = [p["name"] for p in body["predictions"]]
    with app.app_context():
        run = next(r for r in db.recent_runs() if r["id"] == body["run_id"])
    if not any(n.startswith("good/") for n in names):
        assert run["labelled_faulty"] is None  # generated parts, no training photos here
    else:
        assert run["labelled_faulty"] == sum(n.startswith("defective/") for n in names) > 0


def test_wafer_map_runs_record_how_many_maps_their_labels_give_a_pattern(client, app):
    """A labelled CSV of grids (``label,<class>`` lines) marks its run; the review-level
    check still compares every run (defect patterns are what the classifier is for)."""
    import io

    from webapp import db

    grid = "0,1,1,0\n1,2,2,1\n1,2,1,1\n0,1,1,0\n"
    labelled = f"label,Center\n{grid}\nlabel,none\n{grid}\nlabel,Scratch\n{grid}"
    response = client.post("/api/v1/wafermap/predict", content_type="multipart/form-data",
                           data={"file": [(io.BytesIO(labelled.encode()), "maps.csv")]})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    body = json.loads(response.get_data(as_text=True))
    plain = client.post("/api/v1/wafermap/predict", json={"maps": [[[0, 1], [2, 1]]]})
    with app.app_context():
        runs = {r["id"]: r for r in db.recent_runs()}
        recent = db.recent_flag_rate("wafermap", body["model"], leave_out_labelled_faulty=False)
    assert runs[body["run_id"]]["labelled_faulty"] == 2  # Center and Scratch; "none" is none
    assert runs[plain.get_json()["run_id"]]["labelled_faulty"] is None
    assert recent["runs"] == [plain.get_json()["run_id"], body["run_id"]] and recent["rows"] == 4
    text = section(client.get("/models").get_data(as_text=True), "wafermap", "cnn")
    assert "maps to review" in text and "needed review" in text


def test_a_flag_rate_check_says_whether_a_rate_is_in_line():
    from pipelines.core.thresholds import flag_rate_check

    assert flag_rate_check(5, 100, 0.05)["verdict"] == "in line"
    assert flag_rate_check(65, 100, 0.05)["verdict"] == "higher"
    assert flag_rate_check(0, 2000, 0.05)["verdict"] == "lower"
    check = flag_rate_check(3, 4, 0.048)
    assert 0 < check["low"] < 0.75 < check["high"] <= 1
