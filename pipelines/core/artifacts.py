"""Artifacts: bundles of model files with a ``manifest.json``, written atomically, checked on load.

Layout of one module's artifacts (``artifacts/<module>/``)::

    manifest.json          the release: models shipped, default model, module files + sha256
    evaluation.json        ... module files (evaluation, sample statistics), hashed above
    <model>/manifest.json  one bundle per model: params, schema, threshold, metrics, files + sha256
    <model>/...            the model's files

A directory is written under a temporary name beside its final place and swapped in with one
rename, so a crash or a worker loading at that moment never sees half of it. Every file a
release uses is hashed and checked on load; a library-version mismatch is logged. Manifests
hold no machine paths: data sets are named and hashed.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Iterator

from pipelines.core.detectors import get_detector_class

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TRACKED_PACKAGES = ("numpy", "pandas", "scikit-learn", "xgboost", "xgboost-cpu",
                    "imbalanced-learn", "onnxruntime", "torch", "onnx")
# packages whose version changes what a loaded model computes at serving time
SERVING_PACKAGES = ("numpy", "xgboost", "xgboost-cpu", "onnxruntime")


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


def library_mismatches(recorded: dict[str, str], installed: dict[str, str] | None = None
                       ) -> dict[str, tuple[str, str]]:
    """Serving libraries whose installed version differs from the one a bundle was made with."""
    installed = library_versions() if installed is None else installed
    return {name: (recorded[name], installed[name]) for name in SERVING_PACKAGES
            if name in recorded and name in installed and recorded[name] != installed[name]}


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit, or None outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def now() -> str:
    """The current UTC time as an ISO string (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def provenance() -> dict:
    """What every manifest records about how it was made: library versions and git commit."""
    return {"libraries": library_versions(), "git_commit": git_commit(Path(__file__).parent)}


# -- atomic directories -------------------------------------------------------------------------
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2); False where that is not available."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _swap_into_place(new: Path, final: Path) -> None:
    """Put directory ``new`` at ``final``; the old ``final`` (if any) is removed afterwards."""
    if not final.exists():
        os.rename(new, final)
        return
    if _exchange(new, final):  # ``new`` now holds the old contents
        shutil.rmtree(new)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    os.rename(final, old)  # fallback: two renames, a moment without ``final``
    os.rename(new, final)
    shutil.rmtree(old)


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``final``; on success it replaces ``final``.

    On an exception the temporary directory is removed and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- manifests ------------------------------------------------------------------------------------
def file_entries(directory: Path, files: dict[str, str]) -> dict[str, dict]:
    """``{name: {role, sha256, bytes}}`` for files written in ``directory``."""
    directory = Path(directory)
    return {name: {"role": role, "sha256": sha256(directory / name),
                   "bytes": (directory / name).stat().st_size}
            for name, role in files.items()}


def write_manifest(directory: Path, manifest: dict) -> dict:
    """Write ``manifest.json`` in ``directory``; return the manifest."""
    (Path(directory) / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(directory: Path) -> dict:
    """Read a manifest, with a clear error when it is absent or unreadable."""
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"no {MANIFEST} in {directory}: train it with "
                          f"'python -m pipelines.train <module>'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None


def verify_files(directory: Path, manifest: dict) -> None:
    """Check every file the manifest lists exists and matches its sha256."""
    directory = Path(directory)
    for name, entry in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{path} is listed in the manifest but missing")
        if sha256(path) != entry["sha256"]:
            raise BundleError(f"{path} does not match the sha256 in its manifest; "
                              f"retrain or restore the committed file")


def check_libraries(manifest: dict, where: str) -> dict[str, tuple[str, str]]:
    """Log (and return) serving libraries whose versions differ from the manifest's."""
    mismatches = library_mismatches(manifest.get("libraries", {}))
    if mismatches:
        logger.warning("%s was made with other library versions than installed: %s", where,
                       ", ".join(f"{n} {a} (now {b})" for n, (a, b) in sorted(mismatches.items())))
    return mismatches


# -- model bundles ---------------------------------------------------------------------------------
def save_bundle(detector, directory: Path, *, module: str, manifest_fields: dict) -> dict:
    """Write a fitted detector's files and manifest atomically; return the manifest.

    ``manifest_fields`` add to the manifest; a ``feature_schema`` there adds to the detector's
    own (names and input shape).
    """
    directory = Path(directory)
    fields = dict(manifest_fields)
    schema = detector.feature_schema() | fields.pop("feature_schema", {})
    with atomic_directory(directory) as tmp:
        files = detector.save(tmp)
        manifest = {
            "module": module,
            "model": detector.name,
            "created": now(),
            "params": detector.get_params(),
            "feature_schema": schema,
            **fields,
            "files": file_entries(tmp, files),
            **provenance(),
        }
        write_manifest(tmp, manifest)
    logger.info("wrote %s/%s bundle to %s", module, detector.name, directory)
    return manifest


def load_bundle(directory: Path, expected_features: list[str] | None = None, **overrides):
    """Load a detector after checking file hashes, the feature schema and library versions.

    ``overrides`` replace constructor parameters (serving thread counts). Returns
    ``(detector, manifest)``.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    features = manifest.get("feature_schema", {}).get("names")
    if expected_features is not None and features != list(expected_features):
        raise BundleError(f"{directory}: the manifest's feature schema differs from the "
                          f"expected {len(expected_features)} features")
    check_libraries(manifest, f"{manifest.get('module')}/{directory.name}")
    cls = get_detector_class(manifest["module"], manifest["model"])
    return cls.load(directory, manifest, **overrides), manifest


# -- module releases -------------------------------------------------------------------------------
def write_release(directory: Path, *, module: str, models: list[str], default_model: str | None,
                  files: dict[str, str], fields: dict) -> dict:
    """Write the module-level manifest into ``directory`` (already holding the model bundles).

    ``files`` are module-level files already written there, ``{name: role}``.
    """
    missing = [m for m in models if not (Path(directory) / m / MANIFEST).is_file()]
    if missing:
        raise BundleError(f"cannot release {module}: no bundle for {missing}")
    return write_manifest(directory, {
        "module": module, "created": now(), "models": list(models),
        "default_model": default_model, **fields, "files": file_entries(directory, files),
        **provenance()})


def add_release_files(directory: Path, files: dict[str, str]) -> dict:
    """List more module-level files (already written in ``directory``) in its release manifest,
    ``{name: role}``; every other field stays as it was."""
    manifest = read_manifest(directory)
    manifest["files"] = {**manifest.get("files", {}), **file_entries(directory, files)}
    return write_manifest(directory, manifest)


def load_release(directory: Path, expected_features: list[str] | None = None,
                 broken: dict[str, str] | None = None, **overrides
                 ) -> tuple[dict, dict[str, tuple[object, dict]]]:
    """Load a module release: its manifest (files checked) and every model bundle in it.

    ``expected_features`` and ``overrides`` go to :func:`load_bundle` for every model.
    Returns ``(release_manifest, {model: (detector, bundle_manifest)})``.

    Without ``broken``, one bad bundle fails the whole release. Given a dict, a bundle that
    does not load (a file altered or missing, an unreadable manifest, a detector that refuses
    its files) is left out and recorded there instead, ``{model: reason}``, so one corrupt
    model costs only itself; the reason names the file relative to the release (no machine
    path). The release manifest and its module-level files are shared by every model, so
    they still fail the whole load.
    """
    directory = Path(directory)
    release = read_manifest(directory)
    if "models" not in release:
        raise BundleError(f"{directory / MANIFEST} is not a module release manifest")
    verify_files(directory, release)
    models = {}
    for name in release["models"]:
        try:
            models[name] = load_bundle(directory / name, expected_features, **overrides)
        except Exception as exc:
            if broken is None:
                raise
            broken[name] = _broken_reason(exc, directory / name, release.get("module"))
            logger.warning("%s/%s is left out: %s", release.get("module"), name, broken[name])
    return release, models


def _broken_reason(exc: Exception, bundle: Path, module: str | None) -> str:
    """Why ``bundle`` did not load, its paths relative to the release (``<module>/<model>/...``)."""
    reason = str(exc) if isinstance(exc, BundleError) else \
        f"{bundle} did not load ({type(exc).__name__}: {exc})"
    release = bundle.parent
    for where in sorted({str(release.resolve()), str(release)}, key=len, reverse=True):
        reason = reason.replace(where, module or release.name)
    return reason
