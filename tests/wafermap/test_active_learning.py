"""Wafer maps for active learning: packed die codes, map features, labelled maps read from a
COCO export into training, and the simulation (``python -m pipelines.active_learning
simulate``) on a tiny subset, with its JSON shape."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.core.problems import SchemaError
from pipelines.wafermap.annotations import map_sha256, read_coco_maps
from pipelines.wafermap.codes import pack_grid, unpack_grid
from pipelines.wafermap.examples import synthetic_map
from pipelines.wafermap.features import FEATURE_NAMES, grid_features, map_features
from pipelines.wafermap.ingest import write_npz
from pipelines.wafermap.schema import CLASSES
from tests.wafermap.conftest import FAST, synthetic_maps


def test_packed_codes_round_trip_and_refuse_what_does_not_fit():
    rng = np.random.default_rng(0)
    for shape in ((1, 1), (3, 5), (27, 31), (64, 64)):
        grid = rng.integers(0, 3, shape).astype(np.uint8)
        packed = pack_grid(grid)
        assert (packed["rows"], packed["cols"]) == shape
        assert np.array_equal(unpack_grid(packed), grid)
    good = pack_grid(np.ones((4, 4), np.uint8))
    for bad in ({**good, "rows": 5}, {**good, "codes": "!!"}, {**good, "rows": "4"},
                {"rows": 4}, {**good, "rows": 0}):
        with pytest.raises(ValueError):
            unpack_grid(bad)


def test_features_read_where_the_fails_are_whichever_way_a_map_is_turned():
    rng = np.random.default_rng(1)
    edge = synthetic_map("Edge-Ring", 40, rng)
    centre = synthetic_map("Center", 40, rng)
    clean = synthetic_map("none", 40, rng)
    F = map_features([edge, centre, clean, np.rot90(centre), np.fliplr(edge)])
    assert F.shape == (5, len(FEATURE_NAMES)) and F.dtype == np.float32
    ring = {n: FEATURE_NAMES.index(n) for n in ("density", "ring_1", "ring_8")}
    assert F[0, ring["ring_8"]] > F[0, ring["ring_1"]]  # an edge ring fails at the edge
    assert F[1, ring["ring_1"]] > F[1, ring["ring_8"]]  # a centre pattern in the middle
    assert F[2, ring["density"]] < min(F[0, ring["density"]], F[1, ring["density"]])
    assert np.allclose(F[3], F[1], atol=0.05) and np.allclose(F[4], F[0], atol=0.05)
    assert not grid_features(np.zeros((1, 8, 8), np.uint8)).any()  # no wafer: zeros


def test_features_on_threads_are_the_features_one_chunk_at_a_time():
    rng = np.random.default_rng(3)
    patterns = ("Edge-Ring", "Center", "Scratch", "Loc", "none")
    grids = np.stack([synthetic_map(patterns[k % 5], 64, rng) for k in range(200)])  # 4 chunks
    serial = grid_features(grids)
    assert np.array_equal(grid_features(grids, threads=2), serial)
    assert np.array_equal(grid_features(grids[:1], threads=2), serial[:1])
    full = np.where(grids[:1] > 0, 2, 0).astype(np.uint8)  # every on-wafer die fails
    shares = grid_features(full)[0, 1:1 + 24]  # the rings and both zones' sectors
    assert set(np.round(shares, 6)) <= {0.0, 1.0} and shares[:8].min() == 1.0


def coco_of(maps, labels) -> dict:
    return {"images": [{"id": k + 1, "file_name": f"m{k}.png", "width": int(g.shape[1]),
                        "height": int(g.shape[0]), "fablens": {"die_codes": pack_grid(g)}}
                       for k, g in enumerate(maps)],
            "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CLASSES)],
            "annotations": [{"id": k + 1, "image_id": k + 1,
                             "category_id": CLASSES.index(label) + 1,
                             "bbox": [0, 0, int(g.shape[1]), int(g.shape[0])],
                             "segmentation": [], "attributes": {"scope": "image"}}
                            for k, (g, label) in enumerate(zip(maps, labels))]}


def test_labelled_maps_are_read_from_a_coco_export(tmp_path):
    maps, labels = synthetic_maps(6, seed=3)
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(coco_of(maps, labels)))
    read = read_coco_maps(path)
    assert list(read.labels) == labels
    assert all(np.array_equal(a, b) for a, b in zip(read.maps, maps))
    assert map_sha256(maps[0]) == map_sha256(maps[0].copy()) != map_sha256(maps[1])
    doc = coco_of(maps[:2], labels[:2])
    doc["categories"][CLASSES.index(labels[0])]["name"] = "Blob"
    doc["images"][1]["fablens"]["die_codes"]["codes"] = "AAAA"
    with pytest.raises(SchemaError) as caught:
        read_coco_maps(doc)
    messages = " ".join(p.text() for p in caught.value.problems)
    assert "'Blob' is not a wafer-map class" in messages and "images[1]" in messages
    with pytest.raises(SchemaError, match="not a JSON document"):
        read_coco_maps(b"{nope")


def test_training_adds_the_labelled_maps_to_the_train_split(tiny_data, tmp_path):
    from pipelines.wafermap.train import train_wafermap

    extra, labels = synthetic_maps(12, seed=9)
    val_map = tiny_data["maps"][0]  # a val map labelled again must not leak into training
    assert tiny_data["split"][0] == "val"
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(coco_of(extra + [val_map], labels + [tiny_data["labels"][0]])))
    out = tmp_path / "artifacts"
    train_wafermap(tiny_data["folder"] / "flat.npz", out, params=FAST, annotations=path)
    manifest = json.loads((out / "wafermap" / "manifest.json").read_text())
    added = manifest["training_data"]["annotations"]
    assert added["maps"] == 12 and added["left_out_as_val_maps"] == 1
    assert added["file"] == "labels.json" and len(added["sha256"]) == 64
    assert sum(added["class_counts"].values()) == 12
    assert str(tmp_path) not in json.dumps(manifest)  # no machine path in the manifest


@pytest.fixture(scope="module")
def tiny_wm811k(tmp_path_factory):
    """An npz in WM-811K's layout: 288 train and 72 val maps of each synthetic pattern."""
    maps, labels = synthetic_maps(360, seed=5)
    split = ["val" if i % 5 == 0 else "train" for i in range(len(maps))]
    path = tmp_path_factory.mktemp("al") / "tiny.npz"
    write_npz(path, maps, labels, layout="flat", split=split)
    return path


def test_the_simulation_prints_one_json_document_of_the_promised_shape(tiny_wm811k, capsys):
    from pipelines.active_learning import main

    assert main(["simulate", "--data", str(tiny_wm811k), "--seed-size", "40", "--growth", "1.6",
                 "--repeats", "2", "--after", "-1"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert 0 < doc["full_macro_f1"] <= 1
    assert set(doc["strategies"]) == {"random", "margin_diverse"}
    for name, strategy in doc["strategies"].items():
        assert {"labels", "macro_f1", "labels_to_95"} <= set(strategy)
        assert len(strategy["labels"]) == len(strategy["macro_f1"]) == len(doc["rounds"])
        assert strategy["labels"] == doc["rounds"] and strategy["labels"][-1] == doc["pool"]
        assert strategy["labels"][0] == doc["seed_labels"]
        reached = [n for n, f in zip(strategy["labels"], strategy["macro_f1"])
                   if f >= 0.95 * doc["full_macro_f1"] - 1e-4]
        assert strategy["labels_to_95"] == (reached[0] if reached else None)
        assert len(strategy["repeats"]) == 2
    assert doc["pool"] == 288 and doc["eval"] == 72
    # the same seed labels start both strategies: the first round's figures are equal
    assert doc["strategies"]["random"]["macro_f1"][0] == \
        doc["strategies"]["margin_diverse"]["macro_f1"][0]


def test_the_simulation_stops_a_strategy_after_it_reaches_the_target(tiny_wm811k):
    from pipelines.active_learning import labels_to, schedule, simulate

    assert schedule(10, 40, 1.5) == [10, 15, 22, 33, 40]
    assert labels_to(0.9, [10, 20, 30], [0.5, 0.95, 0.8]) == 20
    assert labels_to(0.99, [10, 20], [0.5, 0.95]) is None
    doc = simulate(tiny_wm811k, seed_size=40, growth=1.6, pool=200, evaluation=60, after=0,
                   repeats=1, strategies=("margin_diverse",))
    strategy = doc["strategies"]["margin_diverse"]
    assert 200 <= doc["pool"] <= 204 and 60 <= doc["eval"] <= 64  # stratified: per class
    if strategy["labels_to_95"] is not None:  # stopped at the round that reached it
        assert strategy["labels"][-1] == strategy["labels_to_95"]
    with pytest.raises(ValueError):
        schedule(10, 40, 1.0)


def test_the_recorded_simulation_and_its_chart_agree():
    """benchmarks/active_learning_wm811k.json is the simulation's document (its shape, each
    labels_to_95 the first round at 95%), and the committed SVG is what
    ``python -m benchmarks.active_learning_chart`` draws from it."""
    from benchmarks.active_learning_chart import HERE, svg, table

    doc = json.loads((HERE / "active_learning_wm811k.json").read_text())
    assert set(doc["strategies"]) == {"random", "margin_diverse"}
    for strategy in doc["strategies"].values():
        assert len(strategy["labels"]) == len(strategy["macro_f1"])
        reached = [n for n, f in zip(strategy["labels"], strategy["macro_f1"])
                   if f >= 0.95 * doc["full_macro_f1"] - 1e-4]
        assert strategy["labels_to_95"] == reached[0]
    # the bar: at most half the labels random sampling needs
    assert doc["strategies"]["margin_diverse"]["labels_to_95"] <= \
        doc["strategies"]["random"]["labels_to_95"] / 2
    assert (HERE / "active_learning_wm811k.svg").read_text() == svg(doc)
    assert svg(doc).count("<polyline") == 2
    assert f"| {doc['strategies']['random']['labels_to_95']:,} |" in table(doc)
