"""``POST /api/v1/wafermap/predict`` and the page's endpoints: good input, every bad input a
short 4xx naming the file, item, row or JSON path, zip safety, the map limit, the results CSV."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest

from pipelines.wafermap.examples import synthetic_map
from webapp import create_app
from webapp.db import upgrade
from tests.conftest import sqlite_url

URL = "/api/v1/wafermap/predict"
SMALL = [[0, 1, 1, 0], [1, 2, 2, 1], [1, 2, 1, 1], [0, 1, 1, 0]]


def grid(seed: int = 0, size: int = 24, pattern: str = "Center") -> np.ndarray:
    return synthetic_map(pattern, size, np.random.default_rng(seed))


def csv_grid(g) -> bytes:
    return ("\n".join(",".join(map(str, row)) for row in np.asarray(g).tolist()) + "\n").encode()


def png(g, mode: str = "L") -> bytes:
    from PIL import Image

    levels = np.array([0, 128, 255], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(levels[np.asarray(g)], mode="L").convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


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


# -- good input -----------------------------------------------------------------------------------
def test_json_maps_give_class_confidence_probabilities_and_top3(client):
    response = client.post(URL, json={"maps": [SMALL, grid(1).tolist()], "names": ["a", "b"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    classes = body["classes"]
    assert len(classes) == 9 and body["n_maps"] == 2 and body["run_id"] >= 1
    for record, name in zip(body["predictions"], ["a", "b"]):
        assert record["name"] == name
        assert record["class"] in classes
        assert set(record["probabilities"]) == set(classes)
        assert abs(sum(record["probabilities"].values()) - 1) < 1e-3
        assert [t["class"] for t in record["top3"]][0] == record["class"]
        assert len(record["top3"]) == 3
        assert record["needs_review"] == (record["confidence"] < body["review_level"])
        assert "map" not in record and "saliency" not in record


def test_saliency_comes_at_each_maps_own_size(client):
    g = grid(2, size=30)
    body = client.post(URL, json={"maps": [g.tolist()], "saliency": True}).get_json()
    saliency = np.array(body["predictions"][0]["saliency"])
    assert saliency.shape == g.shape


def test_files_images_csv_json_npz_and_zip_in_one_request(client, tmp_path):
    from pipelines.wafermap.ingest import write_npz

    write_npz(tmp_path / "two.npz", [grid(3), grid(4, 30)], layout="flat")
    files = [("w1.png", png(grid(5))), ("w2.jpg", b""), ("w3.csv", csv_grid(grid(6))),
             ("w4.json", json.dumps(SMALL).encode()), ("two.npz", (tmp_path / "two.npz").read_bytes()),
             ("more.zip", zipped({"a/x.png": png(grid(7), "RGB"), "y.csv": csv_grid(grid(8))}))]
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.array([0, 128, 255], np.uint8)[grid(9)]).convert("RGB").save(
        buffer, format="JPEG", quality=100)
    files[1] = ("w2.jpg", buffer.getvalue())
    response = post_files(client, files)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    names = [p["name"] for p in body["predictions"]]
    assert names == ["w1.png", "w2.jpg", "w3.csv", "w4.json", "two.npz#1", "two.npz#2",
                     "a/x.png", "y.csv"]
    assert body["read"] == {"png": 2, "jpeg": 1, "csv": 2, "json": 1, "npz": 1, "zip": 1}


def test_page_gets_each_map_packed_and_the_check_reads_them(client):
    from webapp.modules.wafermap.service import pack_grid

    g = grid(10, 27)
    response = post_files(client, [("w.csv", csv_grid(g))], include_maps="1")
    packed = response.get_json()["predictions"][0]["map"]
    assert packed == pack_grid(g) and packed["rows"] == 27
    check = post_files(client, [("w.csv", csv_grid(g))], url="/wafermap/check").get_json()
    assert check["n_maps"] == 1 and check["maps"][0]["map"] == packed
    import base64

    raw = np.frombuffer(base64.b64decode(packed["codes"]), np.uint8)
    cells = np.stack([(raw >> s) & 3 for s in (0, 2, 4, 6)], axis=1).ravel()[:g.size]
    assert (cells.reshape(g.shape) == g).all()


def test_results_csv_holds_every_row_with_all_probabilities(client):
    maps = [grid(i, 20 + i % 5).tolist() for i in range(37)]
    names = [f"=m{i}" if i % 2 else f"W{i}" for i in range(37)]
    response = client.post(URL + "?format=csv", json={"maps": maps, "names": names})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 37
    assert [r["name"] for r in rows[:2]] == ["W0", "'=m1"]
    assert {"index", "name", "class", "confidence", "needs_review"} <= set(rows[0])
    assert len([c for c in rows[0] if c.startswith("p_")]) == 9


def test_run_recorded_with_audit_fields_and_redownloaded_at_another_level(client, app):
    response = client.post(URL, json={"maps": [SMALL] * 5})
    body = response.get_json()
    from webapp import db

    with app.app_context():
        run = db.recent_runs(1)[0]
    assert run["module"] == "wafermap" and run["rows"] == 5
    assert len(run["input_sha256"]) == 64 and run["model_version"] == body["model_version"]
    again = client.get(f"{body['results_url']}?threshold=1&flagged=1")
    rows = list(csv.DictReader(io.StringIO(again.get_data(as_text=True))))
    assert len(rows) == 5 and all(r["needs_review"] == "True" and r["review_level"] == "1.0"
                                  for r in rows)
    none = client.get(f"{body['results_url']}?threshold=0&flagged=1")
    assert len(list(csv.DictReader(io.StringIO(none.get_data(as_text=True))))) == 0
    assert "wafermap" in client.get("/history").get_data(as_text=True)


def test_review_level_option_decides_needs_review(client):
    body = client.post(URL, json={"maps": [SMALL], "review_level": 1.0}).get_json()
    assert body["review_level"] == 1.0 and body["predictions"][0]["needs_review"] is True
    files = post_files(client, [("w.csv", csv_grid(grid(1)))], review_level="0").get_json()
    assert files["predictions"][0]["needs_review"] is False


# -- bad JSON -------------------------------------------------------------------------------------
BAD_JSON = [
    ({"maps": [[]]}, "maps[0]"),
    ({"maps": [[[]]]}, "empty"),
    ({"maps": [[[0, 1], [1, 3]]]}, "maps[0][1][1]"),
    ({"maps": [[[0, 1], [1, -1]]]}, "maps[0][1][1]"),
    ({"maps": [SMALL, [[0, 0], [0, 0]]]}, "entirely off-wafer"),
    ({"maps": [[[0, 1, 1], [1, 2]]]}, "maps[0][1]"),
    ({"maps": [[[0, 1], [1, "2"]]]}, "maps[0][1][1]"),
    ({"maps": [[[0, 1], [1, 1.5]]]}, "1.5"),
    ({"maps": [[[0, 1], [1, True]]]}, "true"),
    ({"maps": [[[0, 1], [1, None]]]}, "null"),
    ({"maps": [[0, 1, 2]]}, "maps[0][0]"),
    ({"maps": [[[[0]]]]}, "maps[0][0][0]"),
    ({"maps": "nope"}, "maps"),
    ({"maps": []}, "maps"),
    ({"maps": [SMALL], "saliency": "yes"}, "saliency"),
    ({"maps": [SMALL], "saliency": 1}, "saliency"),
    ({"maps": [SMALL], "review_level": "0.5"}, "review_level"),
    ({"maps": [SMALL], "review_level": 2}, "review_level"),
    ({"maps": [SMALL], "names": "a"}, "names"),
    ({"maps": [SMALL], "names": ["a", "b"]}, "names"),
    ({"maps": [SMALL], "names": [None]}, "names[0]"),
    ({"maps": [SMALL], "model": 3}, "model"),
    ({"maps": [SMALL], "model": "nope"}, "nope"),
    ({"maps": [SMALL], "extra": 1}, "extra"),
    ([[SMALL]], "maps[0][0]"),
    (7, "'maps'"),
]


@pytest.mark.parametrize("body, needle", BAD_JSON, ids=[str(i) for i in range(len(BAD_JSON))])
def test_bad_json_is_a_400_naming_the_path(client, body, needle):
    refused(client.post(URL, json=body), needle)


@pytest.mark.parametrize("raw, needle", [
    ('{"maps": [[[0, 1], [1, NaN]]]}', "maps[0][1][1]"),
    ('{"maps": [[[0, 1], [1, Infinity]]]}', "Infinity"),
    ('{"maps": [[[0, 1], [1, 1]]], "review_level": NaN}', "review_level"),
    ('{"maps": [[[0, 1], [1, 1' + "0" * 500 + ']]]}', "maps[0][1][1]"),
    ('{"maps": ' + "[" * 40 + "]" * 40 + "}", "nests more than"),
    ('{"maps": [[[0, 1]', "not valid JSON"),
    ("", "empty"),
])
def test_bad_json_bodies(client, raw, needle):
    refused(client.post(URL, data=raw, content_type="application/json"), needle)


# -- bad files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, data, needle", [
    ("scan.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "scan.png"),
    ("photo.jpg", b"\xff\xd8\xff\xe0garbage", "photo.jpg"),
    ("w.csv", b"0,1,1\n1,3,1\n", "row 2"),
    ("w.csv", b"0,1,1\n1,1\n", "row 2"),
    ("w.csv", b"0,0\n0,0\n", "entirely off-wafer"),
    ("w.csv", b"\n\n", "w.csv"),
    ("w.json", b"[[0, 1], [1, 7]]", "w.json"),
    ("maps.npz", b"PK\x03\x04 not really", "maps.npz"),
    ("notes.txt", b"hello", "notes.txt"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nests more than"),
    ("nan.json", b"[[0, NaN], [1, 1]]", "NaN"),
    ("cx.npz", None, "cx.npz"),
])
def test_bad_file_is_a_4xx_naming_the_file(client, name, data, needle):
    if data is None:  # an npz of complex numbers
        buffer = io.BytesIO()
        np.savez(buffer, X=np.ones((1, 3, 3), dtype=np.complex64))
        data = buffer.getvalue()
    response = post_files(client, [(name, data)])
    assert 400 <= response.status_code < 500
    refused(response, needle, response.status_code)


def test_bad_files_among_several_are_left_out_with_their_reason_and_the_rest_scored(client, app):
    files = [("ok.csv", csv_grid(grid(1))), ("bad.csv", b"0,1\n1,9\n"),
             ("scan.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
             ("more.zip", zipped({"a.csv": csv_grid(grid(2)), "b.json": b"[[0, 7]]"})),
             ("broken.zip", b"PK\x03\x04 not really"), ("w.png", png(grid(3)))]
    response = post_files(client, files)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert [p["name"] for p in body["predictions"]] == ["ok.csv", "a.csv", "w.png"]
    assert body["n_maps"] == 3 and body["read"] == {"csv": 2, "png": 1, "zip": 1}
    rejected = {r["file"]: r["reason"] for r in body["rejected"]}
    assert list(rejected) == ["bad.csv", "scan.png", "more.zip/b.json", "broken.zip"]
    assert rejected["bad.csv"].startswith("bad.csv, row 2, column 2: '9' is not a die code")
    assert "not a readable PNG or JPEG image" in rejected["scan.png"]
    assert rejected["more.zip/b.json"].startswith("more.zip/b.json")
    assert "not a readable zip archive" in rejected["broken.zip"]
    # the page's check says the same before anything is predicted; the CSV holds the scored maps
    check = post_files(client, files, url="/wafermap/check").get_json()
    assert check["n_maps"] == 3 and check["rejected"] == body["rejected"]
    rows = list(csv.DictReader(io.StringIO(post_files(client, files, url=URL + "?format=csv")
                                           .get_data(as_text=True))))
    assert [r["name"] for r in rows] == ["ok.csv", "a.csv", "w.png"]
    from webapp import db

    with app.app_context():
        run = db.recent_runs(2)[-1]
    assert run["status"] == "ok" and run["rows"] == 3
    assert run["warnings"].count("left out") == 4 and "bad.csv, row 2" in run["warnings"]


def test_an_upload_where_every_file_is_bad_is_a_400_with_every_reason(client):
    body = refused(post_files(client, [("bad.csv", b"0,1\n1,9\n"), ("empty.json", b"[]"),
                                       ("scan.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)]),
                   "none of the 3 files")
    assert [p["file"] for p in body["problems"]] == ["bad.csv", "empty.json", "scan.png"]
    assert "row 2, column 2" in body["problems"][0]["message"]
    # one bad file alone keeps its own answer: the located problems, the 413 of a bomb
    alone = refused(post_files(client, [("bad.csv", b"0,1\n1,9\n")]), "bad.csv")
    assert alone["message"].startswith("bad.csv, row 2, column 2")


def test_image_bomb_is_refused_before_decoding(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG")  # 400 MPixel, a few kB
    refused(post_files(client, [("bomb.png", buffer.getvalue())]), "too large", 413)


def test_an_image_larger_than_a_map_can_be_is_refused(client):
    refused(post_files(client, [("big.png", png(np.ones((600, 20), np.uint8)))]), "at most")


def test_non_image_bytes_named_png_are_refused(client):
    response = post_files(client, [("fake.png", b"GIF89a....")])
    assert response.status_code in (400, 415)
    refused(response, "fake.png", response.status_code)


@pytest.mark.parametrize("member", ["../evil.csv", "a/../../evil.csv", "/etc/evil.csv",
                                    "C:/evil.csv", "..\\evil.csv"])
def test_zip_member_paths_that_climb_out_are_refused(client, member):
    refused(post_files(client, [("maps.zip", zipped({member: csv_grid(SMALL)}))]), "refused")


def test_zip_bomb_is_refused_before_reading(client, app):
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    bomb = zipped({"big.csv": b"0" * (10 * 1024 * 1024)})
    assert len(bomb) < 100_000
    refused(post_files(client, [("bomb.zip", bomb)]), "upload limit", 413)


def test_zip_member_lying_about_its_size_is_refused(client):
    data = bytearray(zipped({"w.csv": b"1," * 5000 + b"1\n"}))
    # shrink the declared size in both headers: the member expands past what it says
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + 22:local + 26] = (10).to_bytes(4, "little")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")
    response = post_files(client, [("liar.zip", bytes(data))])
    assert 400 <= response.status_code < 500
    refused(response, "liar.zip", response.status_code)


def test_zip_inside_zip_and_empty_zip(client):
    inner = zipped({"w.csv": csv_grid(SMALL)})
    refused(post_files(client, [("outer.zip", zipped({"inner.zip": inner}))]), "zip inside a zip")
    refused(post_files(client, [("empty.zip", zipped({}))]), "no files")


def test_npz_with_objects_is_never_unpickled(client, tmp_path):
    np.savez(tmp_path / "evil.npz", X=np.array([object()] * 4, dtype=object).reshape(1, 2, 2))
    refused(post_files(client, [("evil.npz", (tmp_path / "evil.npz").read_bytes())]), "object arrays")


def test_no_file_and_bad_options(client):
    refused(client.post(URL, data={"other": "x"}, content_type="multipart/form-data"), "no file")
    refused(client.post(URL + "?review_level=abc", json={"maps": [SMALL]}), "review_level")
    for field, value in [("saliency", "maybe"), ("review_level", "high"), ("review_level", "1.5"),
                         ("review_level", "nan"), ("include_maps", "2")]:
        refused(post_files(client, [("w.csv", csv_grid(grid(1)))], **{field: value}), field)


# -- limits ---------------------------------------------------------------------------------------
@pytest.fixture
def small_limit_client(tmp_path):
    url = sqlite_url(tmp_path)
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "WAFERMAP_MAX_MAPS": 5,
                      "WAFERMAP_MAX_SALIENCY": 2})
    return app.test_client()


def test_too_many_maps_is_a_413_for_json_files_zip_and_npz(small_limit_client, tmp_path):
    from pipelines.wafermap.ingest import write_npz

    client = small_limit_client
    assert client.post(URL, json={"maps": [SMALL] * 5}).status_code == 200
    refused(client.post(URL, json={"maps": [SMALL] * 6}), "at most 5", 413)
    refused(post_files(client, [(f"w{i}.csv", csv_grid(SMALL)) for i in range(6)]), "at most 5", 413)
    refused(post_files(client, [("m.zip", zipped({f"w{i}.csv": csv_grid(SMALL) for i in range(6)}))]),
            "at most 5", 413)
    write_npz(tmp_path / "six.npz", [np.array(SMALL)] * 6, layout="flat")
    refused(post_files(client, [("six.npz", (tmp_path / "six.npz").read_bytes())]), "six.npz", 413)
    # over the limit is a 413 for the whole request, never one file left out
    refused(post_files(client, [("ok.csv", csv_grid(SMALL)),
                                ("six.npz", (tmp_path / "six.npz").read_bytes())]), "six.npz", 413)
    refused(post_files(client, [("bad.csv", b"0,9\n")] + [(f"w{i}.csv", csv_grid(SMALL))
                                                          for i in range(5)]), "at most 5", 413)
    batch = b"\n".join(csv_grid(SMALL) for _ in range(6))
    refused(post_files(client, [("batch.csv", batch)]), "batch.csv", 413)
    refused(client.post(URL, json={"maps": [SMALL] * 3, "saliency": True}), "saliency", 413)


def test_default_limit_is_1000_maps(client):
    refused(client.post(URL, json={"maps": [SMALL] * 1001}), "at most 1000", 413)


# -- the page's endpoints ---------------------------------------------------------------------------
def test_page_sample_template_and_explain(client):
    html = client.get("/wafermap/").get_data(as_text=True)
    assert 'id="page-config"' in html and "js/wafermap.js" in html
    sample = client.get("/wafermap/sample.csv")
    assert sample.status_code == 200
    body = post_files(client, [("s.csv", sample.data)]).get_json()
    assert body["n_maps"] == 24
    assert client.get("/wafermap/template.csv").status_code == 200
    explained = client.post("/wafermap/explain", json={"map": grid(3, 22).tolist()}).get_json()
    assert np.array(explained["saliency"]).shape == (22, 22)
    fetch = {"X-Requested-With": "fetch"}
    refused(client.post("/wafermap/explain", json={"map": [[0, 5]]}, headers=fetch), "map[0][1]")
    refused(client.post("/wafermap/explain", json={"maps": []}, headers=fetch), "one map")
