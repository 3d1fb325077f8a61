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
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core.artifacts import BundleError, read_manifest

ID_LENGTH = 12
SOURCE_FILE = "source.json"
COMMITTED = "committed release"


def _content(directory: Path) -> dict:
    release = read_manifest(directory)
    bundles = {}
    for model in release.get("models", []):
        manifest = read_manifest(Path(directory) / model)
        bundles[model] = {"files": {n: e["sha256"] for n, e in manifest.get("files", {}).items()},
                          "threshold": manifest.get("threshold")}
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
    if source is None:
        try:
            source = json.loads((directory / SOURCE_FILE).read_text()).get("source", "model store")
        except (OSError, ValueError):
            source = "model store"
    return Version(id=version_id(directory), module=release.get("module", directory.parent.name),
                   path=directory, source=source, created=release.get("created"),
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
