"""Model versions: every release of a module is an immutable version named by its content.

A version is a release directory (a module manifest and its model bundles, as training writes
them). Its id is derived from what decides its answers, never from when it was written: the
sha256 of every file the release and bundle manifests list (by name and hash) and of each
bundle's threshold section, shortened to 12 hex digits. A copy of a release has the same id;
retraining to the same files does too; a new threshold or a changed file gives a new one.

The committed release (``artifacts/<module>``) is always the first version. Versions made at
run time (a training job, an admin's upload) live in the model store, ``<store>/<module>/<id>/``
(``FABLENS_MODEL_STORE``, by default under the instance folder, never inside the installed
package), each with a ``source.json`` saying where it came from.

A threshold is part of a version, so changing one makes a new version
(:func:`with_threshold`): a copy of the old one with that bundle's threshold section
replaced, its false-alarm figure read off the same normal-score curve the pages use, and the
change (who, why, the value before) written into the section itself.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core.artifacts import (BundleError, now, read_manifest, verify_files,
                                      write_manifest)
from pipelines.core.thresholds import (MEASURED_KEYS, false_alarm_curve,
                                       measured_false_alarm_rate, rate_on_curve)

ID_LENGTH = 12
SOURCE_FILE = "source.json"
COMMITTED = "committed release"
CHANGED = "changed"  # a threshold section's record of who moved it, when and why


def _content(directory: Path) -> dict:
    release = read_manifest(directory)
    bundles = {}
    for model in release.get("models", []):
        manifest = read_manifest(Path(directory) / model)
        threshold = manifest.get("threshold")
        if isinstance(threshold, dict):  # when and by whom a level was set is not content
            threshold = {k: v for k, v in threshold.items() if k != CHANGED}
        bundles[model] = {"files": {n: e["sha256"] for n, e in manifest.get("files", {}).items()},
                          "threshold": threshold}
    return {"module": release.get("module"), "default_model": release.get("default_model"),
            "files": {n: e["sha256"] for n, e in release.get("files", {}).items()},
            "bundles": bundles}


def version_id(directory: Path) -> str:
    """The content id of the release in ``directory`` (see the module docstring)."""
    canonical = json.dumps(_content(directory), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True)
class Version:
    """One version of a module: its id, where it lives, where it came from."""

    id: str
    module: str
    path: Path
    source: str
    created: str | None
    default_model: str | None
    models: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"id": self.id, "module": self.module, "source": self.source,
                "created": self.created, "default_model": self.default_model,
                "models": list(self.models)}


def read_version(directory: Path, source: str | None = None) -> Version:
    """The version in ``directory``; its source from ``source.json`` unless given."""
    directory = Path(directory)
    release = read_manifest(directory)
    try:
        recorded = json.loads((directory / SOURCE_FILE).read_text())
        recorded = recorded if isinstance(recorded, dict) else {}
    except (OSError, ValueError):
        recorded = {}
    if source is None:
        source = str(recorded.get("source", "model store"))
    # when it became a version (a threshold change copies an older release's manifest)
    created = recorded.get("created") or release.get("created")
    return Version(id=version_id(directory), module=release.get("module", directory.parent.name),
                   path=directory, source=source, created=created,
                   default_model=release.get("default_model"),
                   models=list(release.get("models", [])))


def module_versions(module: str, committed: Path, store: Path | None = None) -> list[Version]:
    """Every version of ``module``: the committed release first, then the model store's,
    oldest first; a store directory that is not a readable release is left out."""
    found = [read_version(committed, COMMITTED)]
    seen = {found[0].id}
    folder = Path(store) / module if store else None
    if folder and folder.is_dir():
        stored = []
        for directory in sorted(p for p in folder.iterdir() if p.is_dir()):
            try:
                version = read_version(directory)
            except (BundleError, KeyError, ValueError):
                continue
            if version.id not in seen:
                seen.add(version.id)
                stored.append(version)
        found += sorted(stored, key=lambda v: (v.created or "", v.id))
    return found


# what a threshold section says about the level training chose, untrue of any other level
LEVEL_FACTS = (*MEASURED_KEYS, "rule", "note", "val_flagged_share", "val_accuracy_flagged",
               "val_accuracy_not_flagged", "later_period", "measured_on", "selection")


def threshold_section(old: dict, value: float, *, by: str, reason: str, base: str) -> dict:
    """``old`` (a bundle's threshold section) moved to ``value`` by ``by`` for ``reason``.

    What was measured at the old level is dropped; where the section holds normal-score
    quantiles, ``target_false_alarm_rate`` becomes the new level's figure on the curve through
    the old measured point (:mod:`pipelines.core.thresholds`), so every page shows one figure.
    """
    section = {k: v for k, v in old.items() if k not in LEVEL_FACTS}
    previous = float(old["value"])
    section["value"] = float(value)
    if old.get("normal_score_quantiles"):
        measured = measured_false_alarm_rate(old)
        curve = false_alarm_curve(old["normal_score_quantiles"],
                                  None if measured is None else (previous, measured))
        section["target_false_alarm_rate"] = rate_on_curve(curve, float(value))
    section["source"] = f"set by {by} from {previous:.6g} (version {base}): {reason}"
    section[CHANGED] = {"at": now(), "by": by, "reason": reason, "previous": previous,
                          "from_version": base}
    return section


def with_threshold(version: Version, store: Path, model: str, value: float, *, by: str,
                   reason: str) -> Version:
    """The version that is ``version`` with ``model``'s threshold at ``value``, written to the
    model store (once: the same change again finds the same version)."""
    if model not in version.models:
        raise KeyError(f"{version.module} version {version.id} has no model '{model}'")
    folder = Path(store) / version.module
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".threshold-", dir=folder))
    try:
        draft = tmp / "release"
        shutil.copytree(version.path, draft, ignore=shutil.ignore_patterns(SOURCE_FILE))
        bundle = read_manifest(draft / model)
        write_manifest(draft / model, bundle | {"threshold": threshold_section(
            bundle["threshold"], value, by=by, reason=reason, base=version.id)})
        (draft / SOURCE_FILE).write_text(json.dumps(
            {"source": f"threshold change of {version.id}", "base_version": version.id,
             "model": model, "by": by, "created": now()}) + "\n")
        final = folder / version_id(draft)
        if not final.exists():
            os.rename(draft, final)
        return read_version(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _listed_names(manifest: dict, where: Path) -> list[str]:
    names = list(manifest.get("files", {}))
    for name in names:
        parts = Path(name).parts
        if not name or Path(name).is_absolute() or ".." in parts or "\\" in name:
            raise BundleError(f"{where}: the manifest lists '{name[:80]}', which is not a file "
                              f"inside the release")
    return names


def check_release(directory: Path, module: str) -> dict:
    """The release manifest in ``directory``, after checking that it is a release of
    ``module`` and that every file it and its bundles list is inside it, present, and matches
    its sha256 (:func:`pipelines.core.artifacts.verify_files`); a :class:`BundleError` saying
    what is wrong otherwise."""
    directory = Path(directory)
    release = read_manifest(directory)
    if not isinstance(release, dict) or not isinstance(release.get("models"), list) \
            or not release["models"]:
        raise BundleError("manifest.json is not a module release manifest (no 'models' list)")
    if release.get("module") != module:
        raise BundleError(f"this is a release of '{release.get('module')}', not of '{module}'")
    _listed_names(release, directory)
    verify_files(directory, release)
    for model in release["models"]:
        if not isinstance(model, str) or not model or "/" in model or model.startswith("."):
            raise BundleError(f"the release lists a model named '{str(model)[:40]}'")
        bundle = read_manifest(directory / model)
        if bundle.get("module") != module or bundle.get("model") != model:
            raise BundleError(f"{model}/manifest.json is not the '{model}' bundle of '{module}'")
        _listed_names(bundle, directory / model)
        verify_files(directory / model, bundle)
    if release.get("default_model") not in release["models"]:
        raise BundleError(f"the default model '{release.get('default_model')}' is not one of "
                          f"the release's models")
    return release


def add_to_store(directory: Path, store: Path, module: str, source: dict) -> Version:
    """Copy the release in ``directory`` (checked by :func:`check_release`) into the model
    store as a new version of ``module``, with ``source`` (``{"source": text, ...}``: where it
    came from, who added it) as its ``source.json``. The copy is renamed into place whole, so a
    worker never sees half a version; adding the same content again finds the same version."""
    check_release(directory, module)
    folder = Path(store) / module
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".add-", dir=folder))
    try:
        draft = tmp / "release"
        shutil.copytree(directory, draft, ignore=shutil.ignore_patterns(SOURCE_FILE))
        check_release(draft, module)  # the copy, as it will be served
        (draft / SOURCE_FILE).write_text(json.dumps({"created": now()} | source) + "\n")
        final = folder / version_id(draft)
        if not final.exists():
            os.rename(draft, final)
        return read_version(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
