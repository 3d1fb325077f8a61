"""The one place configuration defaults live; environment variables override them.

``create_app`` applies: these defaults -> ``FABLENS_*``/``DATABASE_URL`` environment -> test_config.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict = {
    "ARTIFACTS_DIR": str(ROOT / "artifacts"),
    "DATA_DIR": str((ROOT.parent / "shared" / "data").resolve()),
    "DATABASE_URL": "sqlite:///" + str(ROOT / "instance" / "fablens.sqlite"),
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,  # bytes; larger uploads get HTTP 413
    "MAX_ROWS": 100_000,
    "SECRET_KEY": "dev-only-change-me",
    "DEFAULT_SENSOR_MODEL": None,  # None: the model the training run shipped
    "ONNX_THREADS": 1,
}

# environment variable -> (config key, type)
ENVIRONMENT: dict[str, tuple[str, type]] = {
    "FABLENS_ARTIFACTS_DIR": ("ARTIFACTS_DIR", str),
    "FABLENS_DATA_DIR": ("DATA_DIR", str),
    "DATABASE_URL": ("DATABASE_URL", str),
    "FABLENS_MAX_UPLOAD_MB": ("MAX_CONTENT_LENGTH", lambda v: int(float(v) * 1024 * 1024)),
    "FABLENS_MAX_ROWS": ("MAX_ROWS", int),
    "SECRET_KEY": ("SECRET_KEY", str),
    "FABLENS_SENSOR_MODEL": ("DEFAULT_SENSOR_MODEL", str),
    "FABLENS_ONNX_THREADS": ("ONNX_THREADS", int),
}


def from_environment(environ: dict | None = None) -> dict:
    """Config values set through environment variables."""
    environ = os.environ if environ is None else environ
    out = {}
    for variable, (key, cast) in ENVIRONMENT.items():
        if environ.get(variable):
            out[key] = cast(environ[variable])
    if out.get("DATABASE_URL", "").startswith("postgres://"):  # Render's form
        out["DATABASE_URL"] = "postgresql://" + out["DATABASE_URL"][len("postgres://"):]
    return out
