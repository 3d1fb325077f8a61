"""The backfill commands: a derived file added to an existing release without retraining, only
from the data the release was trained on (pipelines.core.backfill)."""
from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from pipelines.core.artifacts import read_manifest, verify_files
from pipelines.core.drift import REFERENCE_FILE
from pipelines.core.locations import data_dir
from tests.conftest import ROOT

CMAPSS = data_dir(os.environ) / "cmapss" / "train_FD001.txt.gz"
needs_cmapss = pytest.mark.skipif(not CMAPSS.is_file(), reason=f"no {CMAPSS}")


def _release_without(tmp_path: Path, name: str) -> Path:
    """A copy of the committed time-series release with ``name`` unlisted and removed."""
    artifacts = tmp_path / "artifacts"
    shutil.copytree(ROOT / "artifacts" / "timeseries", artifacts / "timeseries")
    release = artifacts / "timeseries"
    manifest = read_manifest(release)
    manifest["files"].pop(name)
    (release / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (release / name).unlink()
    return artifacts


@needs_cmapss
@pytest.mark.parametrize("command, name", [("reference", REFERENCE_FILE),
                                           ("fingerprint", "training_rows.npy")])
def test_a_backfill_writes_and_lists_the_file_from_the_training_data(tmp_path, capsys,
                                                                    command, name):
    from importlib import import_module

    original = (ROOT / "artifacts" / "timeseries" / name).read_bytes()
    artifacts = _release_without(tmp_path, name)
    main = import_module(f"pipelines.timeseries.{command}").main
    assert main(["--data", str(CMAPSS.parent.parent), "--artifacts", str(artifacts)]) == 0
    release = artifacts / "timeseries"
    assert name in read_manifest(release)["files"]
    verify_files(release, read_manifest(release))  # every listed hash holds
    assert (release / name).read_bytes() == original  # what training wrote, again
    assert str(release / name) in capsys.readouterr().out


@needs_cmapss
def test_other_data_than_the_training_file_writes_nothing(tmp_path, capsys):
    from pipelines.timeseries.reference import main

    artifacts = _release_without(tmp_path, REFERENCE_FILE)
    other = tmp_path / "cmapss" / "train_FD001.txt.gz"
    other.parent.mkdir()
    lines = gzip.decompress(CMAPSS.read_bytes()).splitlines(keepends=True)
    other.write_bytes(gzip.compress(b"".join(lines[:-1])))  # one row short
    before = read_manifest(artifacts / "timeseries")
    assert main(["--data", str(tmp_path), "--artifacts", str(artifacts)]) == 2
    assert "is not the file the release was trained on" in capsys.readouterr().err
    assert read_manifest(artifacts / "timeseries") == before
    assert not (artifacts / "timeseries" / REFERENCE_FILE).exists()
