"""Site-wide JSON endpoints: liveness, readiness, and every released model's metadata."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, current_app, jsonify

from pipelines.core.artifacts import BundleError, read_manifest
from webapp import __version__, db
from webapp.modules import ready_modules, registered
from webapp.predictors import get_predictor

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


@bp.get("/health")
def health():
    """Liveness: the process answers. Models load lazily; readiness is ``/health/ready``."""
    return jsonify(status="ok", version=__version__)


def _without_paths(message: str) -> str:
    artifacts = str(Path(current_app.config["ARTIFACTS_DIR"]))
    return message.replace(artifacts, "artifacts")


@bp.get("/health/ready")
def ready():
    """Readiness: every ready module's release loads (hashes checked) and the schema is current.

    503 with the list of what is missing otherwise, so a deploy that would serve empty fails
    its health check instead.
    """
    problems: list[str] = []
    modules = {}
    for spec in ready_modules():
        try:
            predictor = get_predictor(spec.name)
        except (BundleError, OSError, ValueError, KeyError) as exc:
            problems.append(f"{spec.name}: {_without_paths(str(exc))}")
            modules[spec.name] = {"ready": False}
            continue
        modules[spec.name] = {"ready": True, "models": sorted(predictor.models),
                              "default_model": predictor.default_model}
    database = db.schema_problem(db.engine())
    if database:
        problems.append(f"database: {database}")
    status = 503 if problems else 200
    return jsonify(status="ready" if status == 200 else "not ready", version=__version__,
                   modules=modules, database={"ready": database is None},
                   problems=problems), status


MODEL_FIELDS = ("module", "name", "model", "role", "version", "created", "params",
                "training_data", "preprocessing", "metrics", "libraries", "git_commit")


@bp.get("/api/v1/models")
def models():
    """Every released model's metadata, threshold and metrics, read from the manifests."""
    out = []
    artifacts = Path(current_app.config["ARTIFACTS_DIR"])
    for spec in ready_modules():
        try:
            release = read_manifest(artifacts / spec.name)
            manifests = [read_manifest(artifacts / spec.name / m) for m in release["models"]]
        except (BundleError, KeyError) as exc:
            logger.warning("skipping %s: %s", spec.name, exc)
            continue
        for manifest in manifests:
            threshold = dict(manifest.get("threshold", {}))
            threshold.pop("normal_score_quantiles", None)
            out.append({key: manifest.get(key) for key in MODEL_FIELDS}
                       | {"threshold": threshold, "shipped": release.get("default_model")})
    return jsonify(models=out, modules=[{"name": s.name, "title": s.title, "ready": s.ready}
                                        for s in registered()])
