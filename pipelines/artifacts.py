"""Artifact bundles: a directory of model files plus ``manifest.json``, hashes checked on load."""
from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from pipelines.detectors.base import get_detector_class

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TRACKED_PACKAGES = ("numpy", "pandas", "scikit-learn", "xgboost", "xgboost-cpu",
                    "imbalanced-learn", "onnxruntime", "torch", "onnx")


class BundleError(RuntimeError):
    """An artifact bundle is missing, altered, or does not fit the expected schema."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a model's behaviour."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit, or None outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def save_bundle(detector, directory: Path, *, module: str, manifest_fields: dict) -> dict:
    """Write the detector's files and a manifest with their hashes; return the manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.is_file():
            old.unlink()
    files = detector.save(directory)
    manifest = {
        "module": module,
        "model": detector.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": detector.get_params(),
        **manifest_fields,
        "files": {name: {"role": role, "sha256": sha256(directory / name),
                         "bytes": (directory / name).stat().st_size}
                  for name, role in files.items()},
        "libraries": library_versions(),
        "git_commit": git_commit(directory),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("wrote %s bundle to %s", detector.name, directory)
    return manifest


def read_manifest(directory: Path) -> dict:
    """Read a bundle's manifest, with a clear error when it is absent or unreadable."""
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"no {MANIFEST} in {directory}: train it with "
                          f"'python -m pipelines.train <module>'") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None


def load_bundle(directory: Path, expected_features: list[str] | None = None):
    """Load a detector from a bundle after checking file hashes and the feature schema.

    Returns ``(detector, manifest)``.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    for name, entry in manifest["files"].items():
        path = directory / name
        if not path.exists():
            raise BundleError(f"{path} is listed in the manifest but missing")
        if sha256(path) != entry["sha256"]:
            raise BundleError(f"{path} does not match the sha256 in its manifest; "
                              f"retrain or restore the committed file")
    features = manifest.get("feature_schema", {}).get("names")
    if expected_features is not None and features != expected_features:
        raise BundleError(f"{directory}: the manifest's feature schema differs from the "
                          f"expected {len(expected_features)} features")
    detector = get_detector_class(manifest["model"]).load(directory, manifest)
    return detector, manifest
