"""The review queue (webapp/annotation): items kept from runs, the queue's order, labels with
their history and conflicts, roles, COCO and CSV out and back in, retention, retraining."""
from __future__ import annotations

import base64
import io
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.coco import check_document, rle_decode
from pipelines.wafermap.codes import pack_grid
from pipelines.wafermap.examples import synthetic_map
from tests.conftest import sqlite_url
from tests.wafermap.conftest import synthetic_maps
from webapp import accounts, create_app, jobs
from webapp.db import upgrade, utcnow

MVTEC = "mvtec/bottle/test"


def make_app(tmp_path: Path, name: str = "a", **config):
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    url = sqlite_url(folder)
    upgrade(url)
    return create_app({"TESTING": True, "DATABASE_URL": url, "JOBS_DIR": str(folder / "jobs"),
                       "MODEL_STORE": str(folder / "models"), **config})


def predict_maps(client, maps, names=None):
    body = {"maps": [np.asarray(g).tolist() for g in maps]}
    if names:
        body["names"] = names
    response = client.post("/api/v1/wafermap/predict", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def predict_photos(client, paths):
    files = [(io.BytesIO(p.read_bytes()), f"{p.parent.name}-{p.name}") for p in paths]
    response = client.post("/api/v1/inspection/predict", data={"file": files},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def queue(client, module="wafermap", **params):
    query = "&".join(f"{k}={v}" for k, v in {"module": module, **params}.items())
    response = client.get(f"/api/v1/active-learning/queue?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def label(client, item_id, label, headers=None, **more):
    return client.post(f"/api/v1/active-learning/items/{item_id}/annotations",
                       json={"label": label, **more}, headers=headers or {})


def margin(probabilities: dict) -> float:
    top = sorted(probabilities.values(), reverse=True)
    return 1 - (top[0] - top[1])


def mask_png(shape, box) -> str:
    from PIL import Image

    pixels = np.zeros((*shape, 4), np.uint8)
    x, y, w, h = box
    pixels[y:y + h, x:x + w] = (213, 94, 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# -- items kept from runs ------------------------------------------------------------------------
def test_a_wafermap_run_keeps_its_least_sure_maps_once(tmp_path):
    app = make_app(tmp_path, REVIEW_PER_RUN=10)
    client = app.test_client()
    maps, _ = synthetic_maps(30, seed=4)
    answer = predict_maps(client, maps, [f"W{k}" for k in range(30)])
    margins = {p["name"]: margin(p["probabilities"]) for p in answer["predictions"]}
    data = queue(client, state="all", limit=50)
    assert data["counts"]["total"] == 10 and data["n_items"] == 10
    kept = {item["name"] for item in data["items"]}
    least_sure = sorted(margins, key=margins.get, reverse=True)[:10]
    assert kept == set(least_sure)
    item = data["items"][0]
    assert item["run_id"] == answer["run_id"] and item["state"] == "pending"
    assert item["uncertainty"] == pytest.approx(margins[item["name"]], abs=1e-5)
    assert item["map"]["rows"] == maps[int(item["name"][1:])].shape[0]
    predict_maps(client, maps)  # the same maps again: no second copy
    assert queue(client, state="all")["counts"]["total"] == 10
    off = make_app(tmp_path, "off", REVIEW_PER_RUN=0).test_client()
    predict_maps(off, maps)
    assert queue(off, state="all")["counts"]["total"] == 0
    assert data["progress"] == "0 of 10 maps reviewed"


def test_an_inspection_run_keeps_the_photos_nearest_its_threshold(tmp_path, data_dir):
    app = make_app(tmp_path, REVIEW_PER_RUN=3)
    client = app.test_client()
    paths = sorted((data_dir / MVTEC).glob("*/*.png"))[::7][:6]
    answer = predict_photos(client, paths)
    distance = {p["name"]: abs(p["anomaly_score"] - p["threshold"])
                for p in answer["predictions"]}
    data = queue(client, module="inspection", state="all")
    assert {i["name"] for i in data["items"]} == set(sorted(distance, key=distance.get)[:3])
    item = data["items"][0]
    assert item["details"]["spread"] > 0
    assert item["details"]["distance"] == pytest.approx(
        distance[item["name"]] / item["details"]["spread"], rel=1e-3)
    assert item["predicted"] in ("good", "defective")
    image = client.get(item["image_url"])
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert client.get("/review/items/999999/image.png").status_code == 404


def test_a_photo_is_stored_packed_and_its_numbers_wait_for_the_queue(tmp_path, data_dir,
                                                                     monkeypatch):
    """What a prediction pays stays small: a photo is packed (not a PNG) only when it is new;
    the diversity step's numbers are computed when the queue first clusters the item."""
    from sqlalchemy import select

    from webapp import db
    from webapp.annotation import kinds, store

    packed = []
    real = kinds.pack_photo
    monkeypatch.setattr(kinds, "pack_photo", lambda pixels: packed.append(1) or real(pixels))
    app = make_app(tmp_path, REVIEW_PER_RUN=5)
    client = app.test_client()
    paths = sorted((data_dir / MVTEC).glob("*/*.png"))[::9][:3]
    predict_photos(client, paths)
    assert len(packed) == 3
    predict_photos(client, paths)  # the same photos again: nothing packed, nothing added
    assert len(packed) == 3

    def stored():
        items = store.review_items
        with app.app_context(), db.engine().connect() as conn:
            return [dict(r) for r in conn.execute(select(
                items.c.id, items.c.data, items.c.rows, items.c.cols, items.c.features)
                .order_by(items.c.id)).mappings()]

    rows = stored()
    assert len(rows) == 3 and all(r["features"] is None for r in rows)
    assert not any(r["data"].startswith(b"\x89PNG") for r in rows)
    data = queue(client, module="inspection")
    assert all(r["features"] is not None for r in stored())
    image = client.get(data["items"][0]["image_url"])
    from PIL import Image

    shown = np.asarray(Image.open(io.BytesIO(image.data)))
    row = next(r for r in rows if r["id"] == data["items"][0]["id"])
    assert np.array_equal(shown, kinds.unpack_photo(row["data"], row["rows"], row["cols"]))


def test_packed_photos_round_trip_and_refuse_what_does_not_fit():
    from webapp.annotation.kinds import pack_photo, unpack_photo

    pixels = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    pixels[2:4] = 255  # runs, and differences that wrap around
    data = pack_photo(pixels)
    assert np.array_equal(unpack_photo(data, 5, 7), pixels)
    for bad in ((data, 5, 8), (data, 4, 7), (data[:-3], 5, 7), (b"not zlib", 5, 7),
                (data, 0, 7)):
        with pytest.raises(ValueError):
            unpack_photo(*bad)
    with pytest.raises(ValueError):
        pack_photo(pixels[..., 0])


def test_the_queue_puts_the_least_sure_first_and_spreads_near_copies(tmp_path, monkeypatch):
    """Near-copies of one map, the least sure of all, and distinct maps a little surer: the
    head of the queue holds one copy, then the others, each round by uncertainty."""
    from webapp.annotation import store, views
    from webapp.annotation.kinds import wafermap_items

    monkeypatch.setattr(views, "PER_ROUND", 4)
    monkeypatch.setattr(views, "CANDIDATES", 3)
    rng = np.random.default_rng(0)
    base = synthetic_map("Center", 40, rng)
    passing = np.argwhere(base == 1)
    copies = []
    for k in range(6):  # one more fail die each, at a different place: near-copies
        grid = base.copy()
        grid[tuple(passing[k * 7])] = 2
        copies.append(grid)
    others = [synthetic_map(p, 40, rng) for p in ("Edge-Ring", "Scratch", "none", "Edge-Ring",
                                                   "Scratch", "none")]
    maps = copies + others
    classes = ["a", "b"]
    margins = [0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.9, 0.89, 0.88, 0.87, 0.86, 0.85]
    records = [{"class": "a", "confidence": 0.5, "top3": [],
                "probabilities": {"a": (2 - m) / 2, "b": m / 2}} for m in margins]
    app = make_app(tmp_path)
    with app.test_request_context():
        items = list(wafermap_items(maps, [f"m{k}" for k in range(12)], records, classes, 0.9,
                                    None, None, None, 50))
        store.add_items("wafermap", None, items, keep_days=30, keep_items=100)
    data = queue(app.test_client(), limit=12)
    names = [i["name"] for i in data["items"]]
    assert names[0] == "m0"  # the least sure first
    head = names[:4]
    assert sum(n in {f"m{k}" for k in range(6)} for n in head) == 1, names
    uncertainty = [i["uncertainty"] for i in data["items"][:4]]
    assert uncertainty == sorted(uncertainty, reverse=True)
    assert sorted(names) == sorted(f"m{k}" for k in range(12))


# -- labels, history, conflicts, roles --------------------------------------------------------
@pytest.fixture
def world(tmp_path):
    """Accounts on: two engineers and a viewer, with tokens; 8 maps in the queue."""
    app = make_app(tmp_path, AUTH="on", WTF_CSRF_ENABLED=False, REVIEW_PER_RUN=8)
    tokens = {}
    with app.app_context():
        for name, role in (("ann", "engineer"), ("bob", "engineer"), ("vic", "viewer"),
                           ("ada", "admin")):
            accounts.create_user(name, role, f"password-{name}")
            tokens[name] = {"Authorization": f"Bearer {accounts.create_token(name)[1]}"}
    client = app.test_client()
    maps, _ = synthetic_maps(8, seed=6)
    body = {"maps": [g.tolist() for g in maps]}
    assert client.post("/api/v1/wafermap/predict", json=body,
                       headers=tokens["ann"]).status_code == 200
    return app, client, tokens


def test_labels_keep_their_history_and_disagreement_is_a_conflict_to_settle(world):
    app, client, tokens = world
    ids = [i["id"] for i in client.get("/api/v1/active-learning/queue?limit=8",
                                       headers=tokens["vic"]).get_json()["items"]]
    first, second = ids[0], ids[1]
    answer = label(client, first, "Center", tokens["ann"])
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["state"] == "annotated" and body["label"] == "Center"
    assert body["progress"] == "1 of 8 maps reviewed"
    assert body["history"][0]["user"] == "ann (token 1)"
    assert body["history"][0]["created"]
    # the same annotator changing their mind: history kept, no conflict
    body = label(client, first, "Donut", tokens["ann"]).get_json()
    assert body["state"] == "annotated" and body["label"] == "Donut"
    assert [h["label"] for h in body["history"]] == ["Center", "Donut"]
    # another engineer disagrees: a conflict, listed as one
    body = label(client, first, "Loc", tokens["bob"]).get_json()
    assert body["state"] == "conflict" and body["label"] is None
    assert body["annotators"] == {"ann (token 1)": "Donut", "bob (token 2)": "Loc"}
    conflicts = client.get("/api/v1/active-learning/queue?state=conflict",
                           headers=tokens["vic"]).get_json()
    assert [i["id"] for i in conflicts["items"]] == [first]
    assert conflicts["counts"]["conflict"] == 1
    pending = client.get("/api/v1/active-learning/queue", headers=tokens["vic"]).get_json()
    assert first not in [i["id"] for i in pending["items"]] and pending["counts"]["pending"] == 7
    # settling needs a conflict
    refused = label(client, second, "none", tokens["bob"], settle=True)
    assert refused.status_code == 409 and "not in conflict" in refused.get_json()["message"]
    settled = label(client, first, "Loc", tokens["ada"], settle=True).get_json()
    assert settled["state"] == "settled" and settled["label"] == "Loc"
    assert settled["history"][-1]["settles"] and len(settled["history"]) == 4
    assert client.get("/api/v1/active-learning/queue?state=conflict",
                      headers=tokens["vic"]).get_json()["items"] == []
    labelled = client.get("/api/v1/active-learning/queue?state=labelled",
                          headers=tokens["vic"]).get_json()
    assert [i["id"] for i in labelled["items"]] == [first]


def test_a_viewer_reads_and_exports_but_cannot_label_import_or_retrain(world):
    app, client, tokens = world
    viewer = tokens["vic"]
    item_id = client.get("/api/v1/active-learning/queue", headers=viewer).get_json()[
        "items"][0]["id"]
    assert client.get(f"/api/v1/active-learning/items/{item_id}", headers=viewer
                      ).status_code == 200
    assert label(client, item_id, "Center", viewer).status_code == 403
    assert client.post("/api/v1/active-learning/import?module=wafermap", json={},
                       headers=viewer).status_code == 403
    assert client.post("/api/v1/active-learning/retrain", json={},
                       headers=viewer).status_code == 403
    assert client.get("/api/v1/active-learning/export?module=wafermap",
                      headers=viewer).status_code == 200
    with client.session_transaction() as session:  # the page: shown, labels disabled
        with app.app_context():
            session["_user_id"] = str(accounts.get_user("vic")["id"])
        session["_fresh"] = True
    page = client.get("/review/wafermap").get_data(as_text=True)
    assert "Labelling needs the engineer role" in page
    assert '"can_annotate": false' in page


# -- COCO and CSV, out and back in -------------------------------------------------------------
def labelled_world(tmp_path, data_dir):
    app = make_app(tmp_path, "source", REVIEW_PER_RUN=6)
    client = app.test_client()
    maps, _ = synthetic_maps(6, seed=8)
    predict_maps(client, maps, ["=1+1", "W-2", "W3", "W4", "W5", "W6"])
    predict_photos(client, sorted((data_dir / MVTEC).glob("*/*.png"))[::9][:3])
    map_ids = [i["id"] for i in queue(client, state="all")["items"]]
    photo_ids = [i["id"] for i in queue(client, module="inspection", state="all")["items"]]
    assert label(client, map_ids[0], "Center").status_code == 201
    assert label(client, map_ids[1], "Scratch").status_code == 201
    assert label(client, map_ids[1], "Loc").status_code == 201  # re-labelled: history of two
    box = [12, 20, 40, 30]
    answer = label(client, photo_ids[0], "defective", boxes=[[10.5, 20, 30, 40]],
                   mask=mask_png((256, 256), box))
    assert answer.status_code == 201, answer.get_json()
    assert label(client, photo_ids[1], "good").status_code == 201
    return app, client, map_ids, photo_ids


def strip(doc: dict) -> list:
    """What a document says, without its ids and the rows' source (an import says so)."""
    images = {i["id"]: i["fablens"]["sha256"] for i in doc["images"]}
    out = []
    for a in doc["annotations"]:
        a = {k: v for k, v in a.items() if k not in ("id", "image_id")} | {
            "image": images[a["image_id"]]}
        if "history" in a.get("attributes", {}):
            a["attributes"] = a["attributes"] | {"history": [
                {k: v for k, v in h.items() if k != "source"} for h in a["attributes"]["history"]]}
        out.append(a)
    return sorted(out, key=lambda a: (a["image"], json.dumps(a, sort_keys=True)))


def test_coco_export_is_valid_and_importing_it_gives_the_same_annotations(tmp_path, data_dir):
    app, client, map_ids, photo_ids = labelled_world(tmp_path, data_dir)
    maps_doc = json.loads(client.get("/api/v1/active-learning/export?module=wafermap").data)
    photos_doc = json.loads(client.get(
        "/api/v1/active-learning/export?module=inspection&images=1").data)
    for doc in (maps_doc, photos_doc):  # the COCO layout, checked
        check_document(doc)
        assert set(doc) == {"info", "licenses", "images", "categories", "annotations"}
        for image in doc["images"]:
            assert {"id", "file_name", "width", "height"} <= set(image)
        for a in doc["annotations"]:
            assert {"id", "image_id", "category_id", "bbox", "area", "iscrowd",
                    "segmentation"} <= set(a)
    assert [c["name"] for c in maps_doc["categories"]][:2] == ["Center", "Donut"]
    assert len(maps_doc["images"]) == 2 and len(maps_doc["annotations"]) == 2
    image_level = {a["image_id"]: a for a in maps_doc["annotations"]}
    assert image_level[map_ids[1]]["category_id"] == 5  # Loc, the latest label
    assert [h["label"] for h in image_level[map_ids[1]]["attributes"]["history"]] == \
        ["Scratch", "Loc"]
    assert "die_codes" in maps_doc["images"][0]["fablens"]
    regions = [a for a in photos_doc["annotations"] if a["attributes"]["scope"] == "region"]
    box = next(a for a in regions if a["attributes"]["shape"] == "box")
    assert box["bbox"] == [10.5, 20.0, 30.0, 40.0] and len(box["segmentation"][0]) == 8
    mask = next(a for a in regions if a["attributes"]["shape"] == "mask")
    assert mask["bbox"] == [12, 20, 40, 30] and mask["area"] == 1200 and mask["iscrowd"] == 1
    assert rle_decode(mask["segmentation"]).sum() == 1200
    good = next(a for a in photos_doc["annotations"] if a["image_id"] == photo_ids[1])
    assert photos_doc["categories"][good["category_id"] - 1]["name"] == "good"

    fresh = make_app(tmp_path, "fresh").test_client()
    for module, doc in (("wafermap", maps_doc), ("inspection", photos_doc)):
        done = fresh.post(f"/api/v1/active-learning/import?module={module}", json=doc)
        assert done.status_code == 200, done.get_json()
        assert done.get_json()["items_added"] == len(doc["images"])
        again = fresh.post(f"/api/v1/active-learning/import?module={module}", json=doc)
        assert again.get_json()["annotations_added"] == 0  # twice adds nothing
    back_maps = json.loads(fresh.get("/api/v1/active-learning/export?module=wafermap").data)
    back_photos = json.loads(fresh.get(
        "/api/v1/active-learning/export?module=inspection&images=1").data)
    assert strip(back_maps) == strip(maps_doc)
    assert strip(back_photos) == strip(photos_doc)
    # the same document into the server it came from: nothing new
    same = client.post("/api/v1/active-learning/import?module=wafermap", json=maps_doc)
    assert same.get_json()["annotations_added"] == 0
    # as a file too
    upload = fresh.post("/api/v1/active-learning/import", data={
        "module": "wafermap", "file": (io.BytesIO(json.dumps(maps_doc).encode()), "c.json")},
        content_type="multipart/form-data")
    assert upload.status_code == 200 and upload.get_json()["already_there"] == 3


def test_the_csv_export_lists_every_labelled_item_formula_safe(tmp_path, data_dir):
    app, client, map_ids, photo_ids = labelled_world(tmp_path, data_dir)
    response = client.get("/api/v1/active-learning/export?module=wafermap&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    lines = text.strip().splitlines()
    assert lines[0].startswith("item,name,sha256,run_id,state,label,annotated_by")
    assert len(lines) == 3
    assert "'=1+1" in text or "=1+1" not in text  # a formula-like name is neutralised
    assert "Scratch" not in lines[0] and ",Loc," in text


def test_imports_that_do_not_fit_are_400s_naming_where(tmp_path, data_dir):
    app, client, map_ids, photo_ids = labelled_world(tmp_path, data_dir)
    doc = json.loads(client.get("/api/v1/active-learning/export?module=wafermap").data)
    bad = json.loads(json.dumps(doc))
    bad["annotations"][0]["bbox"] = [0, 0, -1]
    answer = client.post("/api/v1/active-learning/import?module=wafermap", json=bad)
    assert answer.status_code == 400
    assert answer.get_json()["problems"][0]["path"] == "annotations[0].bbox"
    bad = json.loads(json.dumps(doc))
    bad["annotations"][0]["attributes"]["history"][0]["label"] = "Blob"
    answer = client.post("/api/v1/active-learning/import?module=wafermap", json=bad)
    assert answer.status_code == 400 and "'Blob' is not a label here" in answer.get_json()[
        "message"]
    answer = client.post("/api/v1/active-learning/import?module=inspection", json=doc)
    assert answer.status_code == 400 and "wafermap labels, not inspection" in \
        answer.get_json()["message"]
    photos = json.loads(client.get("/api/v1/active-learning/export?module=inspection").data)
    elsewhere = make_app(tmp_path, "elsewhere").test_client()
    answer = elsewhere.post("/api/v1/active-learning/import?module=inspection", json=photos)
    assert answer.status_code == 400 and "export with images" in answer.get_json()["message"]
    answer = client.post("/api/v1/active-learning/import?module=wafermap", data={
        "file": (io.BytesIO(b"{not json"), "c.json")}, content_type="multipart/form-data")
    assert answer.status_code == 400 and "not a JSON document" in answer.get_json()["message"]
    before = client.get("/api/v1/active-learning/queue?state=labelled").get_json()["counts"]
    assert before["annotated"] == 2  # nothing written by the refused imports


def test_bad_requests_are_400s_and_missing_items_404s(tmp_path, data_dir):
    app, client, map_ids, photo_ids = labelled_world(tmp_path, data_dir)
    for query, needle in (("module=sensor", "module must be one of"),
                          ("state=done", "state must be one of"),
                          ("limit=0", "limit must be a whole number"),
                          ("offset=-1", "offset must be a whole number")):
        answer = client.get(f"/api/v1/active-learning/queue?{query}")
        assert answer.status_code == 400 and needle in answer.get_json()["message"], query
    assert client.get("/api/v1/active-learning/items/999999").status_code == 404
    assert label(client, 999999, "Center").status_code == 404
    cases = [(map_ids[2], {"label": "Nope"}, "is not a label here"),
             (map_ids[2], {"label": "Loc", "boxes": [[0, 0, 1, 1]]}, "has no regions"),
             (photo_ids[2], {"label": "defective"}, "mark the defect"),
             (photo_ids[2], {"label": "good", "boxes": [[0, 0, 5, 5]]}, "only a defective"),
             (photo_ids[2], {"label": "defective", "boxes": [[250, 0, 10, 5]]}, "not inside"),
             (photo_ids[2], {"label": "defective", "mask": mask_png((10, 10), [1, 1, 2, 2])},
              "the mask is 10 x 10"),
             (photo_ids[2], {"label": "defective", "mask": "nope!"}, "not a base64 PNG"),
             (photo_ids[2], {"label": "defective", "color": 1}, "color")]
    for item_id, body, needle in cases:
        answer = client.post(f"/api/v1/active-learning/items/{item_id}/annotations", json=body)
        assert answer.status_code == 400 and needle in answer.get_json()["message"], body
    answer = client.post(f"/api/v1/active-learning/items/{map_ids[2]}/annotations",
                         data="{", content_type="application/json")
    assert answer.status_code == 400


def test_retention_prunes_unlabelled_items_and_keeps_labelled_ones(tmp_path):
    from webapp.annotation import store

    app = make_app(tmp_path, REVIEW_PER_RUN=5, REVIEW_KEEP_ITEMS=3)
    client = app.test_client()
    first, _ = synthetic_maps(5, seed=10)
    predict_maps(client, first)
    data = queue(client, state="all")
    assert data["counts"]["total"] == 3  # the newest three unlabelled of five
    kept = data["items"][0]["id"]
    assert label(client, kept, "Center").status_code == 201
    second, _ = synthetic_maps(5, seed=11)
    predict_maps(client, second)
    data = queue(client, state="all")
    assert data["counts"]["total"] == 4 and data["counts"]["annotated"] == 1
    with app.app_context():  # older than REVIEW_KEEP_DAYS: the unlabelled go, the label stays
        removed = store.prune("wafermap", keep_days=1, keep_items=100,
                              when=utcnow() + timedelta(days=2))
    assert removed == 3
    data = queue(client, state="all")
    assert [i["id"] for i in data["items"]] == [kept]


# -- retraining ------------------------------------------------------------------------------
def test_retraining_with_the_labels_makes_a_candidate_with_its_figures(tmp_path):
    from pipelines.wafermap.ingest import write_npz

    data = tmp_path / "data" / "wm811k"
    data.mkdir(parents=True)
    maps, labels = synthetic_maps(96, seed=0)
    write_npz(data / "wafer_maps_orig.npz", maps, labels, layout="flat",
              split=["train" if i % 3 else "val" for i in range(len(maps))])
    app = make_app(tmp_path, DATA_DIR=str(tmp_path / "data"), JOBS_HEARTBEAT_SECONDS=0.2,
                   JOBS_TRAIN_COMMAND=[sys.executable, "-m", "pipelines.train"],
                   JOBS_QUEUE=f"review-{time.time_ns()}", REVIEW_PER_RUN=10)
    client = app.test_client()
    refused = client.post("/api/v1/active-learning/retrain", json={"module": "wafermap"})
    assert refused.status_code == 409 and "no labelled maps yet" in refused.get_json()["message"]
    fresh, fresh_labels = synthetic_maps(10, seed=12)
    predict_maps(client, fresh)
    items = queue(client, state="all")["items"]
    packed = [pack_grid(g) for g in fresh]
    for item in items[:6]:
        assert label(client, item["id"], fresh_labels[packed.index(item["map"])]
                     ).status_code == 201
    started = client.post("/api/v1/active-learning/retrain", json={
        "module": "wafermap", "options": {"epochs": 2, "epoch_size": 64, "threads": 1,
                                          "params": {"channels": [4, 8, 8, 8],
                                                     "batch_size": 32, "tta": 1, "trees": 5,
                                                     "occlusion_stride": 8}}})
    assert started.status_code == 202, started.get_json()
    job_id = started.get_json()["id"]
    assert started.get_json()["labelled"] == 6
    jobs.start_worker(app)
    try:
        deadline = time.monotonic() + 400
        while True:
            job = client.get(f"/api/v1/jobs/{job_id}?log=200").get_json()
            if job["state"] in ("done", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
    finally:
        jobs.stop_worker(app)
    assert job["state"] == "done", job
    assert any("added 6 annotated maps" in line for line in job["log"])
    version = job["result"]["version"]
    manifest = json.loads((Path(app.config["MODEL_STORE"]) / "wafermap" / version /
                           "manifest.json").read_text())
    assert manifest["training_data"]["annotations"]["maps"] == 6
    listing = client.get("/api/v1/registry/wafermap").get_json()
    assert next(v for v in listing["versions"] if v["id"] == version)["live"] is False
    page = client.get("/review?module=wafermap").get_data(as_text=True)
    assert version in page and "Labelled maps added" in page


def test_items_labels_export_and_import_on_each_database(database_url, tmp_path):
    """The same round on SQLite and PostgreSQL: items stored once, labels with their times,
    conflicts, the export, an import into the same database adding nothing, retention."""
    from webapp.annotation import store

    upgrade(database_url)
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "REVIEW_PER_RUN": 4,
                      "JOBS_DIR": str(tmp_path / "jobs")})
    client = app.test_client()
    maps, _ = synthetic_maps(6, seed=30)
    predict_maps(client, maps)
    predict_maps(client, maps)  # the same content twice: stored once
    ids = [i["id"] for i in queue(client, state="all")["items"]]
    assert len(ids) == 4
    assert label(client, ids[0], "Center").status_code == 201
    with app.test_request_context():  # a second annotator, stored as such
        store.add_annotation(ids[0], "Donut", user="bob")
    assert client.get(f"/api/v1/active-learning/items/{ids[0]}").get_json()["state"] == \
        "conflict"
    assert label(client, ids[0], "Donut", settle=True).get_json()["state"] == "settled"
    assert label(client, ids[1], "none").status_code == 201
    doc = json.loads(client.get("/api/v1/active-learning/export?module=wafermap").data)
    assert len(doc["images"]) == 2
    again = client.post("/api/v1/active-learning/import?module=wafermap", json=doc).get_json()
    assert again["annotations_added"] == 0 and again["already_there"] == 4
    with app.app_context():
        from webapp import db

        raced = {"module": "wafermap", "sha256": "f" * 64, "rows": 1, "cols": 1,
                 "data": b"\x01", "uncertainty": 0.5, "created": utcnow()}
        with db.engine().begin() as conn:  # two workers storing one content: one row, no error
            store._insert_new(conn, [raced])
            store._insert_new(conn, [raced])
        assert store.count_items("wafermap") == 5
        # 3 unlabelled: the oldest 2 go beyond the newest 1; labelled ones stay
        assert store.prune("wafermap", keep_days=30, keep_items=1) == 2
        assert store.find_item("wafermap", "f" * 64) is not None
        assert store.prune("wafermap", keep_days=1, keep_items=100,
                           when=utcnow() + timedelta(days=3)) == 1
    assert queue(client, state="all")["counts"] == {
        "pending": 0, "annotated": 1, "conflict": 0, "settled": 1, "total": 2, "reviewed": 2}
