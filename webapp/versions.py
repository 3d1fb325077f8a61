"""The model registry's API: each module's versions, and which one is live.

``GET /api/v1/registry/<module>`` lists the versions (:mod:`pipelines.core.versions`: the
committed release first, then the model store's), each with ``live``, and the history of live
switches (who, when, why). ``POST /api/v1/registry/<module>/live`` with ``{"version": "<id>",
"reason": "..."}`` switches (engineer or admin, the access table says): every worker serves
the new version within ``LIVE_CHECK_SECONDS`` without a restart (``webapp.predictors``), a
request already running finishes on its version, and every run records the version that
scored it (``runs.release``). A rollback is a switch back to an earlier id.
"""
from __future__ import annotations

from pathlib import Path

from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template,
                   request, url_for)
from pydantic import ValidationError
from pydantic import BaseModel, ConfigDict, Field

from pipelines.core.versions import Version, module_versions
from webapp import db
from webapp.errors import InputError
from webapp.openapi import COMMON_ERRORS, documented
from webapp.params import read_json, validate_envelope
from webapp.registry import ready_modules

bp = Blueprint("versions", __name__)


class LiveBody(BaseModel):
    """``{"version": "<id>", "reason": "..."}``: make a version of the module live."""

    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64, description="a version id from the list")
    reason: str = Field(min_length=1, max_length=500, description="why, for the audit trail")


def _versions(module: str) -> list[Version]:
    if module not in {spec.name for spec in ready_modules()}:
        abort(404, description=f"no module '{module}'")
    return module_versions(module, Path(current_app.config["ARTIFACTS_DIR"]) / module,
                           Path(current_app.config["MODEL_STORE"]))


def _listing(module: str, versions: list[Version]) -> dict:
    history = db.live_history(module)
    live = history[0]["version"] if history else versions[0].id
    return {"module": module, "live": live,
            "versions": [v.to_dict() | {"live": v.id == live, "shadow": False}
                         for v in versions],
            "history": [{k: (v.isoformat() if hasattr(v, "isoformat") else v)
                         for k, v in row.items() if k != "module"} for row in history]}


@bp.get("/api/v1/registry/<module>")
@documented(errors=(*COMMON_ERRORS, 404), tags=("registry",))
def list_versions(module: str):
    """The module's versions (id, created, source, models, live) and its live switches."""
    return jsonify(_listing(module, _versions(module)))


def _switch(module: str, versions: list[Version], body: LiveBody) -> None:
    if body.version not in {v.id for v in versions}:
        raise InputError(f"version: {module} has no version '{body.version}'; choose one of "
                         f"{', '.join(v.id for v in versions)}")
    db.set_live(module, body.version, body.reason)


@bp.get("/registry")
def page():
    """Every module's versions: which is live, who set it and why; switch or roll back."""
    listings = [_listing(spec.name, _versions(spec.name)) for spec in ready_modules()]
    return render_template("registry.html", listings=listings)


@bp.post("/registry/<module>/live")
def set_live_page(module: str):
    """The page's switch: the same rule as the API, then back to the module's section."""
    versions = _versions(module)
    try:
        body = LiveBody(version=request.form.get("version", ""),
                        reason=request.form.get("reason", "").strip())
        _switch(module, versions, body)
    except ValidationError:
        flash(f"{module}: say why you switch (a reason is required).", "error")
    except InputError as exc:
        flash(exc.description, "error")
    else:
        flash(f"{module}: version {body.version} is live; every worker serves it within "
              f"{current_app.config['LIVE_CHECK_SECONDS']:g} s.", "notice")
    return redirect(url_for("versions.page") + f"#registry-{module}")


@bp.post("/api/v1/registry/<module>/live")
@documented(body=LiveBody, errors=(*COMMON_ERRORS, 404), tags=("registry",))
def set_live(module: str):
    """Make a version live (and later ones see it within seconds); a rollback is the same."""
    versions = _versions(module)
    _switch(module, versions, validate_envelope(LiveBody, read_json(request)))
    return jsonify(_listing(module, versions))
