"""Artifact bundles and releases: atomic writes, hashes, library versions, no machine paths."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

from pipelines.core import artifacts
from pipelines.core.artifacts import (BundleError, atomic_directory, library_mismatches,
                                      load_bundle, load_release, read_manifest, save_bundle,
                                      write_release)
from pipelines.core.detectors import get_detector_class
from pipelines.sensor.examples import synthetic


def fitted(n_estimators=5, seed=0):
    X, y = synthetic(seed=seed)
    return get_detector_class("sensor", "xgboost")(n_estimators=n_estimators).fit(X, y), X


def test_atomic_directory_replaces_the_whole_folder(tmp_path):
    target = tmp_path / "bundle"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("old")
        (tmp / "stale.txt").write_text("old")
        assert not target.exists()  # nothing visible until the block succeeds
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert (target / "a.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no temporary folder left


def test_a_crash_while_writing_leaves_the_old_bundle_intact(tmp_path):
    detector, X = fitted()
    save_bundle(detector, tmp_path / "b", module="sensor", manifest_fields={})
    before = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}

    class Crash(RuntimeError):
        pass

    def crash(directory):
        (directory / "model.ubj").write_bytes(b"half a model")
        raise Crash("disk full")

    detector.save = crash
    with pytest.raises(Crash):
        save_bundle(detector, tmp_path / "b", module="sensor", manifest_fields={})
    assert {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    load_bundle(tmp_path / "b")  # still loads, hashes intact


def test_the_two_rename_fallback_also_swaps(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "_exchange", lambda a, b: False)
    target = tmp_path / "x"
    for text in ("one", "two"):
        with atomic_directory(target) as tmp:
            (tmp / "f").write_text(text)
    assert (target / "f").read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["x"]


def test_tampered_or_missing_files_are_refused(tmp_path):
    detector, _ = fitted()
    save_bundle(detector, tmp_path, module="sensor", manifest_fields={})
    (tmp_path / "preprocessor.json").write_text("{}")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(tmp_path)
    (tmp_path / "preprocessor.json").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_manifest_records_schema_and_no_machine_path(tmp_path):
    detector, _ = fitted()
    manifest = save_bundle(detector, tmp_path / "b", module="sensor", manifest_fields={
        "feature_schema": {"missing": "allowed"}, "training_data": {"name": "toy", "sha256": "0"}})
    assert manifest["feature_schema"]["names"] == detector.feature_names_in_
    assert manifest["feature_schema"]["missing"] == "allowed"
    assert str(tmp_path) not in json.dumps(manifest)
    with pytest.raises(BundleError, match="feature schema"):
        load_bundle(tmp_path / "b", expected_features=["only", "two"])


def test_library_mismatch_is_logged_on_load(tmp_path, caplog):
    detector, X = fitted()
    save_bundle(detector, tmp_path, module="sensor", manifest_fields={})
    manifest = read_manifest(tmp_path)
    manifest["libraries"]["numpy"] = "0.0.1"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="pipelines.core.artifacts"):
        loaded, _ = load_bundle(tmp_path)
    assert "numpy 0.0.1 (now" in caplog.text
    np.testing.assert_allclose(loaded.score(X), detector.score(X))  # logged, not refused
    assert library_mismatches({"numpy": "1"}, {"numpy": "1"}) == {}
    assert library_mismatches({"torch": "1"}, {"torch": "2"}) == {}  # not used when serving


def test_release_lists_models_and_hashes_module_files(tmp_path):
    detector, X = fitted()
    with atomic_directory(tmp_path / "sensor") as release:
        save_bundle(detector, release / "m1", module="sensor", manifest_fields={})
        (release / "extra.json").write_text("{}")
        write_release(release, module="sensor", models=["m1"], default_model="m1",
                      files={"extra.json": "extra"}, fields={})
    manifest, models = load_release(tmp_path / "sensor")
    assert manifest["default_model"] == "m1" and set(models) == {"m1"}
    (tmp_path / "sensor" / "extra.json").write_text('{"changed": true}')
    with pytest.raises(BundleError, match="sha256"):
        load_release(tmp_path / "sensor")
    with pytest.raises(BundleError, match="no bundle"):
        write_release(tmp_path / "sensor", module="sensor", models=["m2"], default_model="m2",
                      files={}, fields={})


def test_exchange_is_used_on_linux(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not artifacts._exchange(a, b):
        pytest.skip("renameat2 is not available here")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
    assert os.path.isdir(a) and os.path.isdir(b)
