"""Model versions are named by their content, and the committed release is always first."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipelines.core import locations
from pipelines.core.versions import COMMITTED, SOURCE_FILE, module_versions, version_id

ARTIFACTS = locations.artifacts_dir({})


def copy_release(tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(ARTIFACTS / "sensor", target)
    return target


def edit_manifest(path: Path, change) -> None:
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_a_copy_has_the_same_id_and_when_it_was_written_does_not_count(tmp_path):
    original = version_id(ARTIFACTS / "sensor")
    assert len(original) == 12
    copy = copy_release(tmp_path)
    assert version_id(copy) == original
    edit_manifest(copy / "manifest.json", lambda m: m.update(created="2030-01-01T00:00:00"))
    edit_manifest(copy / "xgboost" / "manifest.json", lambda m: m.update(created="2030-01-01"))
    assert version_id(copy) == original


def test_a_new_threshold_or_a_changed_file_is_a_new_version(tmp_path):
    original = version_id(ARTIFACTS / "sensor")
    threshold = copy_release(tmp_path, "threshold")
    edit_manifest(threshold / "xgboost" / "manifest.json",
                  lambda m: m["threshold"].update(value=m["threshold"]["value"] + 0.01))
    changed = copy_release(tmp_path, "file")
    edit_manifest(changed / "xgboost" / "manifest.json",
                  lambda m: m["files"]["model.ubj"].update(sha256="0" * 64))
    ids = {original, version_id(threshold), version_id(changed)}
    assert len(ids) == 3


def test_the_committed_release_comes_first_then_the_store_oldest_first(tmp_path):
    store = tmp_path / "store"
    newer = copy_release(store / "sensor", "b")
    edit_manifest(newer / "manifest.json", lambda m: m.update(created="2030-01-02"))
    edit_manifest(newer / "xgboost" / "manifest.json",
                  lambda m: m["threshold"].update(value=0.9))
    (newer / SOURCE_FILE).write_text(json.dumps({"source": "training job 7"}))
    older = copy_release(store / "sensor", "a")
    edit_manifest(older / "manifest.json", lambda m: m.update(created="2030-01-01"))
    edit_manifest(older / "xgboost" / "manifest.json",
                  lambda m: m["threshold"].update(value=0.8))
    copy_release(store / "sensor", "same")  # the committed release again: listed once
    (store / "sensor" / "broken").mkdir()
    versions = module_versions("sensor", ARTIFACTS / "sensor", store)
    assert [v.source for v in versions] == [COMMITTED, "model store", "training job 7"]
    assert versions[0].id == version_id(ARTIFACTS / "sensor")
    assert [v.path.name for v in versions[1:]] == ["a", "b"]
    assert versions[0].to_dict()["models"] == ["xgboost", "autoencoder"]
