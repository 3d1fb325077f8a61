"""Site-wide JSON endpoints: liveness, readiness, every released model's metadata, and the
API's own OpenAPI document (``/api/v1/openapi.json``) with its docs page (``/api/docs``)."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, current_app, jsonify, render_template

from pipelines.core.artifacts import BundleError, read_manifest
from webapp import __version__, db
from webapp.registry import ready_modules, registered
from webapp.openapi import document, documented, operations
from webapp.predictors import loading_state

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


@bp.get("/health")
@documented(public=True, errors=(), tags=("health",))
def health():
    """Liveness: the process answers. Models load lazily; readiness is ``/health/ready``."""
    return jsonify(status="ok", version=__version__)


def _without_paths(message: str) -> str:
    artifacts = str(Path(current_app.config["ARTIFACTS_DIR"]))
    return message.replace(artifacts, "artifacts")


@bp.get("/health/ready")
@documented(public=True, errors=(503,), tags=("health",))
def ready():
    """Readiness: every ready module's release is loaded (hashes checked) and the schema is current.

    It never loads a model itself: it waits at most ``READY_WAIT_SECONDS`` for the worker's
    loader, then reports each module's state. 503 while a module is still loading, or with the
    list of what is missing, so a deploy that would serve empty fails its health check instead.
    A module with one broken model still serves the others: it is ready but ``degraded``,
    each model that did not load named with its reason under ``unavailable`` and in
    ``degraded``, and the answer stays 200 (``status`` says "degraded").
    """
    problems: list[str] = []
    degraded: list[str] = []
    modules = {}
    loading = []
    cache = current_app.extensions["fablens_predictors"]
    states = loading_state(current_app._get_current_object(),  # the app, not the proxy
                           wait=float(current_app.config["READY_WAIT_SECONDS"]))
    for name, state in states.items():
        modules[name] = {"ready": state["state"] == "ready", "state": state["state"]}
        if state["state"] == "ready":
            unavailable = [m | {"reason": _without_paths(m["reason"])}
                           for m in state.get("unavailable", [])]
            modules[name] |= {"models": sorted(cache[name].models),
                              "default_model": cache[name].default_model,
                              "degraded": bool(unavailable), "unavailable": unavailable}
            degraded += [f"{name}: model '{m['name']}'{' (the default)' if m['default'] else ''}"
                         f" is unavailable: {m['reason']}" for m in unavailable]
        elif state["state"] == "failed":
            problems.append(f"{name}: {_without_paths(state['error'])}")
        else:
            loading.append(name)
    database = db.schema_problem(db.engine())
    if database:
        problems.append(f"database: {database}")
    status = 503 if problems or loading else 200
    word = ("degraded" if degraded else "ready") if status == 200 else \
        "not ready" if problems else "loading"
    return jsonify(status=word, version=__version__, modules=modules, loading=loading,
                   database={"ready": database is None}, problems=problems,
                   degraded=degraded), status


MODEL_FIELDS = ("module", "name", "model", "role", "version", "created", "params",
                "training_data", "preprocessing", "metrics", "libraries", "git_commit")


@bp.get("/api/v1/models")
@documented(errors=(401, 403), tags=("models",))
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


@bp.get("/api/v1/openapi.json")
@documented(public=True, errors=(), tags=("docs",))
def openapi():
    """This API's OpenAPI 3.1 document, built from the URL map and the request models."""
    return jsonify(document())


@bp.get("/api/docs")
@documented(public=True, errors=(), html=True, tags=("docs",))
def docs():
    """The API reference page: every endpoint, its request schema and its responses."""
    spec = document()
    return render_template("api_docs.html", spec=spec, operations=operations(spec))
