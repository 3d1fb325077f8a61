"""``POST /api/v1/inspection/predict`` and the page's endpoints on a tiny release: good input,
conversions said, every bad input a short 4xx naming the file, the limits, CSV and History."""
from __future__ import annotations

import base64
import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipelines.inspection.examples import synthetic_parts
from webapp import create_app
from webapp.db import upgrade
from tests.conftest import sqlite_url
from tests.inspection.conftest import png

URL = "/api/v1/inspection/predict"


@pytest.fixture
def app(tmp_path, tiny_release):
    artifacts, _ = tiny_release
    url = sqlite_url(tmp_path)
    upgrade(url)
    return create_app({"TESTING": True, "DATABASE_URL": url, "ARTIFACTS_DIR": str(artifacts),
                       "INSPECTION_MAX_IMAGES": 5, "INSPECTION_MAX_HEATMAPS": 4})


@pytest.fixture
def client(app):
    return app.test_client()


def parts(n: int = 3, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    return list(synthetic_parts(n, size, seed).astype(np.uint8))


def post_files(client, files: list[tuple[str, bytes]], url: str = URL, **fields):
    data = {"file": [(io.BytesIO(b), n) for n, b in files], **fields}
    return client.post(url, data=data, content_type="multipart/form-data")


def refused(response, needle: str, status: int = 400) -> dict:
    body = response.get_json()
    assert response.status_code == status, (response.status_code, body)
    assert {"error", "message", "problems"} <= set(body)
    assert needle in body["message"] or any(needle in json.dumps(p) for p in body["problems"]), body
    assert len(body["message"]) < 300, body["message"]
    return body


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_predict_scores_each_image_against_the_threshold(client, tiny_release):
    _, evaluation = tiny_release
    images = parts(3)
    response = post_files(client, [(f"p{i}.png", png(im)) for i, im in enumerate(images)])
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["model"] == evaluation["default_model"] and body["n_images"] == 3
    default = evaluation["models"][body["model"]]["threshold"]["value"]
    assert body["threshold"] == pytest.approx(default)
    for p in body["predictions"]:
        assert {"anomaly_score", "threshold", "is_anomaly"} <= set(p)
        assert p["is_anomaly"] == (p["anomaly_score"] >= p["threshold"])
        assert "heatmap_png_base64" not in p and p["converted"] is False and p["notes"] == []
    assert [p["name"] for p in body["predictions"]] == ["p0.png", "p1.png", "p2.png"]


def test_heatmaps_come_as_png_at_the_model_size_when_asked(client):
    from PIL import Image

    response = post_files(client, [("a.png", png(parts(1)[0]))], heatmap="true")
    heat = response.get_json()["predictions"][0]["heatmap_png_base64"]
    image = Image.open(io.BytesIO(base64.b64decode(heat)))
    assert image.format == "PNG" and image.size == (256, 256) and image.mode == "RGBA"


def test_a_threshold_and_a_model_can_be_chosen_per_request(client):
    body = post_files(client, [("a.png", png(parts(1)[0]))], threshold="0",
                      model="autoencoder").get_json()
    assert body["model"] == "autoencoder" and body["threshold"] == 0
    assert body["predictions"][0]["is_anomaly"] is True


@pytest.mark.parametrize("mode, needle", [("L", "converted from L"),
                                          ("RGBA", "converted from RGBA"),
                                          ("RGB", "resized from 90 x 90")])
def test_grayscale_rgba_and_other_sizes_are_converted_and_said(client, mode, needle):
    image = parts(1, size=90)[0]
    body = post_files(client, [("odd.png", png(image, mode))]).get_json()
    p = body["predictions"][0]
    assert p["converted"] is True and any(needle in n for n in p["notes"]), p
    assert p["original_size"] == [90, 90] and body["n_converted"] == 1


def test_jpeg_and_zips_of_images_are_read(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(parts(1)[0]).save(buffer, format="JPEG")
    archive = zipped({"a/one.png": png(parts(1)[0]), "two.jpg": buffer.getvalue()})
    body = post_files(client, [("photos.zip", archive)]).get_json()
    assert [p["name"] for p in body["predictions"]] == ["a/one.png", "two.jpg"]
    assert body["read"] == {"zip": 1, "png": 1, "jpeg": 1}


@pytest.mark.parametrize("name, data, needle, status", [
    ("notes.txt", b"just some text", "not a PNG or JPEG image", 415),
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable PNG or JPEG image", 400),
])
def test_non_images_and_corrupt_files_are_refused_naming_the_file(client, name, data, needle,
                                                                  status):
    body = refused(post_files(client, [(name, data)]), needle, status)
    assert name in body["message"]


def test_bad_files_among_several_are_left_out_with_their_reason_and_the_rest_scored(client, app):
    good = parts(2, 64)
    files = [("ok.png", png(good[0])), ("notes.txt", b"just some text"),
             ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
             ("photos.zip", zipped({"a.png": png(good[1]), "nested.zip": zipped({"x.png": b""})}))]
    response = post_files(client, files)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert [p["name"] for p in body["predictions"]] == ["ok.png", "a.png"]
    assert body["n_images"] == 2 and body["read"] == {"png": 2, "zip": 1}
    rejected = {r["file"]: r["reason"] for r in body["rejected"]}
    assert list(rejected) == ["notes.txt", "broken.png", "photos.zip/nested.zip"]
    assert rejected["notes.txt"].startswith("notes.txt: not a PNG or JPEG image")
    assert rejected["broken.png"].startswith("broken.png: not a readable PNG or JPEG image")
    assert "zip inside a zip" in rejected["photos.zip/nested.zip"]
    check = post_files(client, files, url="/inspection/check").get_json()
    assert [im["name"] for im in check["images"]] == ["ok.png", "a.png"]
    assert check["rejected"] == body["rejected"]
    from webapp import db

    with app.app_context():
        run = db.recent_runs(1)[0]
    assert run["status"] == "ok" and run["rows"] == 2
    assert run["warnings"].count("left out") == 3


def test_an_upload_where_every_file_is_bad_is_a_4xx_with_every_reason(client):
    mixed = refused(post_files(client, [("notes.txt", b"text"),
                                        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)]),
                    "none of the 2 files")
    assert [p["file"] for p in mixed["problems"]] == ["notes.txt", "broken.png"]
    assert "not a PNG or JPEG image" in mixed["problems"][0]["message"]
    # the same refusal for every file keeps its status
    same = refused(post_files(client, [("a.txt", b"text"), ("b.txt", b"more")]),
                   "none of the 2 files", 415)
    assert [p["file"] for p in same["problems"]] == ["a.txt", "b.txt"]


def test_a_truncated_image_is_a_clear_400(client):
    noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    data = png(noisy)
    refused(post_files(client, [("cut.png", data[: len(data) // 2])]), "cut.png")


def test_a_decompression_bomb_is_refused_before_decoding(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (5000, 4000)).save(buffer, format="PNG")  # 20 M pixels in a few kB
    assert len(buffer.getvalue()) < 100_000
    refused(post_files(client, [("bomb.png", buffer.getvalue())]), "bomb.png", 413)


def test_too_many_images_and_too_many_heatmaps_are_413(client):
    images = [(f"p{i}.png", png(im)) for i, im in enumerate(parts(6, 32))]
    refused(post_files(client, images), "at most 5", 413)
    # a bad file does not make room: the limit is on the whole request
    refused(post_files(client, [("bad.txt", b"text")] + images[:5]), "at most 5", 413)
    refused(post_files(client, images[:5], heatmap="1"), "at most 4", 413)


@pytest.mark.parametrize("fields, needle", [
    ({"threshold": "abc"}, "threshold must be a number"),
    ({"threshold": "nan"}, "finite"),
    ({"threshold": "-1"}, "outside the scores"),
    ({"model": "nope"}, "unknown model"),
    ({"heatmap": "maybe"}, "heatmap must be true or false"),
])
def test_bad_options_are_400(client, fields, needle):
    refused(post_files(client, [("a.png", png(parts(1)[0]))], **fields), needle)


def test_no_file_is_400(client):
    refused(client.post(URL, data={}, content_type="multipart/form-data"), "no file was uploaded")


def test_csv_has_every_image_and_history_redecides_it(client):
    images = [(f"p{i}.png", png(im)) for i, im in enumerate(parts(3))]
    response = post_files(client, images, url=URL + "?format=csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["file"] for r in rows] == ["p0.png", "p1.png", "p2.png"]
    assert {"anomaly_score", "threshold", "is_anomaly", "verdict"} <= set(rows[0])
    body = post_files(client, images).get_json()
    again = client.get(body["results_url"] + "?threshold=0")
    redecided = list(csv.DictReader(io.StringIO(again.get_data(as_text=True))))
    assert all(r["is_anomaly"] == "True" and r["verdict"] == "defective" for r in redecided)
    history = client.get("/history").get_data(as_text=True)
    assert "inspection" in history


def test_the_page_check_and_sample_work(client):
    assert client.get("/inspection/").status_code == 200
    check = post_files(client, [("g.png", png(parts(1, 64)[0], "L"))], url="/inspection/check")
    image = check.get_json()["images"][0]
    assert image["mode"] == "L" and image["notes"] and image["image_jpeg_base64"]
    sample = client.get("/inspection/sample.zip")
    assert sample.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(sample.data)).namelist()
    assert names and all(n.endswith((".png", ".jpg")) for n in names)


def test_sample_is_made_from_training_photos_never_test_photos(client, app):
    """Turned good photos and synthetic defects: no sample equals a training photo as it is."""
    from PIL import Image

    from pipelines.inspection.ingest import image_files, read_image_file

    folder = Path(app.config["INSPECTION_SAMPLE_DIR"])
    if not folder.is_dir():
        pytest.skip("no MVTec AD bottle training photos here")
    assert "test" not in folder.parts
    archive = zipfile.ZipFile(io.BytesIO(client.get("/inspection/sample.zip").data))
    names = archive.namelist()
    assert any(n.startswith("good/good_turned_") for n in names)
    assert any(n.startswith("defective/synthetic_") for n in names)
    originals = [read_image_file(p).pixels for p in image_files(folder)[:8]]
    for name in names:
        pixels = np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB"))
        assert not any(np.array_equal(pixels, o) for o in originals), name
