"""Where FabLens finds its files: the one place the path defaults live.

Run from a checkout (or an editable install), templates, static files and artifacts sit at the
repository root. A regular ``pip install .`` copies them to ``<prefix>/share/fablens`` (see
``setup.py``). The data sets are never installed: they are read from ``FABLENS_DATA_DIR``,
by default ``../shared/data`` beside the checkout.

Only the edges read the environment: the web app's config and the command lines pass the
mapping in; pipeline steps receive plain paths.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

SHARE = ("share", "fablens")
ASSETS = ("templates", "static", "artifacts")


def _has_assets(root: Path) -> bool:
    return all((root / name).is_dir() for name in ASSETS)


def checkout_root() -> Path | None:
    """The repository root when the code runs from a checkout, else None."""
    root = Path(__file__).resolve().parents[2]
    return root if _has_assets(root) and (root / "setup.py").is_file() else None


def home() -> Path | None:
    """The folder holding ``templates/``, ``static/`` and ``artifacts/``, or None if none does."""
    root = checkout_root()
    if root is not None:
        return root
    installed = Path(sys.prefix).joinpath(*SHARE)
    return installed if _has_assets(installed) else None


def artifacts_dir(environ: Mapping[str, str]) -> Path | None:
    """``FABLENS_ARTIFACTS_DIR``, else the artifacts beside the templates."""
    if environ.get("FABLENS_ARTIFACTS_DIR"):
        return Path(environ["FABLENS_ARTIFACTS_DIR"])
    root = home()
    return root / "artifacts" if root is not None else None


def instance_dir() -> Path:
    """Where the embedded SQLite database lives: ``instance/`` of the checkout or the current folder."""
    return (checkout_root() or Path.cwd()) / "instance"


def data_dir(environ: Mapping[str, str]) -> Path:
    """``FABLENS_DATA_DIR``, else ``../shared/data`` beside the checkout (or the current folder)."""
    if environ.get("FABLENS_DATA_DIR"):
        return Path(environ["FABLENS_DATA_DIR"])
    base = checkout_root() or Path.cwd()
    return (base.parent / "shared" / "data").resolve()
