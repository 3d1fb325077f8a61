"""The model registry: each module's versions, which one is live, thresholds, shadow
candidates, and the audit log of every change.

A version (:mod:`pipelines.core.versions`) is a release named by its content: the committed
release first, then the model store's (a training job's output, a release an admin uploaded,
a threshold change). Every change is one row of ``registry_events`` with who, when and why
(``webapp.db``), and the API and the page make it through the same functions here:

- ``GET /api/v1/registry/<module>``: the versions (id, created, source, models, metrics,
  ``live``, ``shadow``), the live switches, and the attached candidate's comparison;
- ``POST /api/v1/registry/<module>/live`` ``{"version", "reason"}``: switch or roll back.
  Every worker serves the new version within ``LIVE_CHECK_SECONDS`` without a restart, a
  request already running finishes on its version, and every run records the version that
  scored it (``runs.release``);
- ``POST /api/v1/registry/<module>/threshold`` ``{"version", "model", "value", "reason"}``: a
  threshold is part of a version, so this makes a new version (the old one with that model's
  threshold moved, :func:`pipelines.core.versions.with_threshold`), live at once when the old
  one was (unless ``"live": false``);
- ``POST /api/v1/registry/<module>/shadow`` ``{"version", "reason"}`` attaches a candidate
  (``webapp.shadow`` scores live requests with it), ``.../shadow/detach`` ``{"reason"}``
  detaches it, ``.../promote`` ``{"reason"}`` makes it live and detaches it: one click;
- ``POST /registry/<module>/upload`` (admin, the page): a zipped release becomes a version;
  ``flask --app webapp registry add <module> <folder>`` does the same from a training run's
  output folder;
- ``GET /registry/audit`` and ``GET /api/v1/registry/audit``: every change, newest first.

Engineers and admins change the registry; viewers read it (``webapp/access.py``).
"""
from __future__ import annotations

import gzip
import math
import tempfile
from pathlib import Path
from typing import Annotated

import click
from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template,
                   request, url_for)
from flask.cli import AppGroup
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from werkzeug.exceptions import Conflict

from pipelines.core.artifacts import BundleError, read_manifest
from pipelines.core.versions import (Version, add_to_store, check_release, module_versions,
                                     with_threshold)
from webapp import db, shadow
from webapp.errors import InputError
from webapp.openapi import COMMON_ERRORS, documented
from webapp.params import read_json, validate_envelope
from webapp.registry import get_module, ready_modules

bp = Blueprint("versions", __name__)
registry_cli = AppGroup("registry", help="Model versions: add a trained release to the store.")

RELEASE_ZIP_MEMBERS = 200  # files in an uploaded release archive
AUDIT_ROWS = 500


def _said_why(value: str) -> str:
    if not value.strip():
        raise ValueError("say why (a reason is required: it goes into the audit log)")
    return value.strip()


Reason = Annotated[str, Field(max_length=500, description="why, for the audit log"),
                   AfterValidator(_said_why)]


class LiveBody(BaseModel):
    """``{"version": "<id>", "reason": "..."}``: make a version of the module live."""

    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64, description="a version id from the list")
    reason: Reason


class ThresholdBody(BaseModel):
    """A model's threshold in a version moved to ``value``: a new version."""

    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(None, min_length=1, max_length=64,
                                description="the version to start from (default: the live one)")
    model: str | None = Field(None, min_length=1, max_length=64,
                              description="the model (default: the version's default model)")
    value: float = Field(description="the new threshold, inside the scores the model gives")
    reason: Reason
    live: bool | None = Field(None, description="make the new version live (default: when the "
                                                "version it starts from is live)")

    @field_validator("value")
    @classmethod
    def finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("the threshold must be a finite number")
        return value


class ShadowBody(LiveBody):
    """``{"version": "<id>", "reason": "..."}``: attach a candidate for shadow scoring."""


class ReasonBody(BaseModel):
    """``{"reason": "..."}``: detach or promote the module's shadow candidate."""

    model_config = ConfigDict(extra="forbid")
    reason: Reason


# -- reading -------------------------------------------------------------------------------------
def _check_module(module: str) -> None:
    if module not in {spec.name for spec in ready_modules()}:
        abort(404, description=f"no module '{module}'")


def _versions(module: str) -> list[Version]:
    _check_module(module)
    return module_versions(module, Path(current_app.config["ARTIFACTS_DIR"]) / module,
                           Path(current_app.config["MODEL_STORE"]))


def _find(module: str, versions: list[Version], version: str) -> Version:
    for v in versions:
        if v.id == version:
            return v
    raise InputError(f"version: {module} has no version '{version[:64]}'; choose one of "
                     f"{', '.join(v.id for v in versions)}")


def _metrics(version: Version) -> dict:
    """Each model's figures as its manifest records them (the protocol's name and values)."""
    out = {}
    for model in version.models:
        try:
            bundle = read_manifest(version.path / model)
        except BundleError:
            continue
        threshold = bundle.get("threshold") or {}
        out[model] = {"metrics": bundle.get("metrics"),
                      "threshold": threshold.get("value"),
                      "target_false_alarm_rate": threshold.get("target_false_alarm_rate")}
    return out


def _iso(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def _comparison(module: str, version: str | None) -> dict | None:
    if version is None:
        return None
    return {"version": version} | shadow.summary(db.shadow_runs(module, version),
                                                 get_module(module).decision)


def listing(module: str, versions: list[Version] | None = None) -> dict:
    """What ``GET /api/v1/registry/<module>`` answers (and the page shows)."""
    versions = _versions(module) if versions is None else versions
    history = db.live_history(module)
    live = history[0]["version"] if history else versions[0].id
    attached = db.shadow_version(module)
    previous = next((h["version"] for h in history if h["version"] != live), None)
    if previous is None and live != versions[0].id:
        previous = versions[0].id  # never switched back yet: the committed release
    return {"module": module, "live": live, "shadow": attached, "rollback_to": previous,
            "versions": [v.to_dict() | {"live": v.id == live, "shadow": v.id == attached,
                                        "models_detail": _metrics(v)} for v in versions],
            "history": [_iso({k: v for k, v in row.items() if k != "module"})
                        for row in history],
            "comparison": _comparison(module, attached)}


# -- changing ------------------------------------------------------------------------------------
def switch(module: str, body: LiveBody) -> None:
    """Make ``body.version`` live (a switch or a rollback), recorded with who and why."""
    _find(module, _versions(module), body.version)
    db.set_live(module, body.version, body.reason)


def change_threshold(module: str, body: ThresholdBody) -> str:
    """Derive the version with the model's threshold at ``body.value`` (recorded as a
    ``threshold`` event) and make it live when asked or when its base was live; its id."""
    from webapp.runs import _score_range
    from webapp.params import check_threshold_range

    versions = _versions(module)
    live = listing(module, versions)["live"]
    base = _find(module, versions, body.version or live)
    model = body.model or base.default_model
    if model not in base.models:
        raise InputError(f"model: version {base.id} of {module} has no model '{model}'; "
                         f"choose one of {', '.join(base.models)}")
    section = read_manifest(base.path / model).get("threshold")
    if not isinstance(section, dict) or not isinstance(section.get("value"), (int, float)):
        raise InputError(f"model: '{model}' has no threshold to change (it is not a detector "
                         f"that flags)")
    check_threshold_range(body.value, _score_range(module, model), model)
    derived = with_threshold(base, Path(current_app.config["MODEL_STORE"]), model, body.value,
                             by=db.actor(), reason=body.reason)
    db.record_registry_event(module, "threshold", derived.id, reason=body.reason,
                             base_version=base.id, model=model, value=body.value,
                             previous=float(section["value"]))
    if body.live if body.live is not None else base.id == live:
        db.set_live(module, derived.id, f"threshold of {model} {float(section['value']):.6g} "
                                        f"-> {body.value:.6g}: {body.reason}")
    return derived.id


def attach(module: str, body: ShadowBody) -> None:
    """Attach ``body.version`` as the module's shadow candidate (replacing its own earlier
    one); refused (409) when it is live already or the server holds no more candidates."""
    versions = _versions(module)
    _find(module, versions, body.version)
    if body.version == listing(module, versions)["live"]:
        raise Conflict(f"version {body.version} is {module}'s live version; attach another "
                       f"version as its shadow candidate")
    problem = shadow.capacity_problem(module, body.version)
    if problem:
        raise Conflict(f"cannot attach {body.version} to {module}: {problem}")
    old = db.shadow_version(module)
    if old is not None and old != body.version:
        db.record_registry_event(module, "detach", old, reason=f"replaced by {body.version}")
    db.record_registry_event(module, "shadow", body.version, reason=body.reason)


def detach(module: str, body: ReasonBody) -> str:
    """Detach the module's candidate; its id (409 when none is attached)."""
    _check_module(module)
    old = db.shadow_version(module)
    if old is None:
        raise Conflict(f"{module} has no shadow candidate attached")
    db.record_registry_event(module, "detach", old, reason=body.reason)
    return old


def promote(module: str, body: ReasonBody) -> str:
    """Make the module's candidate live and detach it: one step; its id."""
    _check_module(module)
    candidate = db.shadow_version(module)
    if candidate is None:
        raise Conflict(f"{module} has no shadow candidate to promote")
    _find(module, _versions(module), candidate)
    db.set_live(module, candidate, f"promoted from shadow: {body.reason}")
    db.record_registry_event(module, "detach", candidate, reason="promoted to live")
    return candidate


def _release_root(folder: Path) -> Path:
    """The folder holding the release manifest: the archive's top, or its one top folder."""
    if (folder / "manifest.json").is_file():
        return folder
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "manifest.json").is_file():
        return entries[0]
    raise InputError("the archive holds no manifest.json at its top or in its one top folder: "
                     "zip the release folder training wrote (artifacts/<module>)")


def _without(exc: Exception, root: Path, tmp: str) -> str:
    """An error's text without the server's temporary paths."""
    return str(exc).replace(str(root), "the release").replace(tmp + "/", "").replace(tmp, "")


def add_release_archive(module: str, name: str, data: bytes) -> Version:
    """A zipped release (as training writes it) added to the model store as a version of
    ``module``: members checked and read in memory (``webapp.uploads.zip_members``), written
    under their checked paths, every manifest hash verified, and the predictor loaded once to
    prove it serves; a 400 naming the problem otherwise."""
    from webapp.predictors import load_from
    from webapp.uploads import UploadedBytes, zip_members

    members = zip_members(UploadedBytes(name, data), max_members=RELEASE_ZIP_MEMBERS,
                          max_total=int(current_app.config["MAX_CONTENT_LENGTH"]))
    with tempfile.TemporaryDirectory(prefix="fablens-release-") as tmp:
        for member in members:
            relative = member.name[len(name) + 1:].replace("\\", "/")
            target = Path(tmp, *[p for p in relative.split("/") if p])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.data)
        root = _release_root(Path(tmp))
        try:
            check_release(root, module)  # its manifests first: the clearest messages
            load_from(module, root)
            version = add_to_store(root, Path(current_app.config["MODEL_STORE"]), module,
                                   {"source": f"uploaded by {db.actor()}", "file": name[:200]})
        except BundleError as exc:
            raise InputError(f"{name}: {_without(exc, root, tmp)}") from None
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(f"{name}: the release does not load "
                             f"({_without(exc, root, tmp)[:200]})") from None
    return version


# -- the API -------------------------------------------------------------------------------------
@bp.get("/api/v1/registry/<module>")
@documented(errors=(*COMMON_ERRORS, 404), tags=("registry",))
def list_versions(module: str):
    """The module's versions (id, created, source, models, metrics, live, shadow), its live
    switches and the attached candidate's comparison with the live version."""
    return jsonify(listing(module))


@bp.post("/api/v1/registry/<module>/live")
@documented(body=LiveBody, errors=(*COMMON_ERRORS, 404), tags=("registry",))
def set_live(module: str):
    """Make a version live (every worker serves it within seconds); a rollback is the same."""
    switch(module, validate_envelope(LiveBody, read_json(request)))
    return jsonify(listing(module))


@bp.post("/api/v1/registry/<module>/threshold")
@documented(body=ThresholdBody, errors=(*COMMON_ERRORS, 404), tags=("registry",))
def set_threshold(module: str):
    """Move a model's threshold: a new version from the given one (live if that one was)."""
    created = change_threshold(module, validate_envelope(ThresholdBody, read_json(request)))
    return jsonify(listing(module) | {"created": created})


@bp.post("/api/v1/registry/<module>/shadow")
@documented(body=ShadowBody, errors=(*COMMON_ERRORS, 404, 409), tags=("registry",))
def attach_shadow(module: str):
    """Attach a candidate: live requests are also scored by it, off the request's path."""
    attach(module, validate_envelope(ShadowBody, read_json(request)))
    return jsonify(listing(module))


@bp.post("/api/v1/registry/<module>/shadow/detach")
@documented(body=ReasonBody, errors=(*COMMON_ERRORS, 404, 409), tags=("registry",))
def detach_shadow(module: str):
    """Detach the module's shadow candidate (its stored scores stay)."""
    detach(module, validate_envelope(ReasonBody, read_json(request)))
    return jsonify(listing(module))


@bp.post("/api/v1/registry/<module>/promote")
@documented(body=ReasonBody, errors=(*COMMON_ERRORS, 404, 409), tags=("registry",))
def promote_shadow(module: str):
    """Make the shadow candidate live and detach it."""
    promote(module, validate_envelope(ReasonBody, read_json(request)))
    return jsonify(listing(module))


@bp.get("/api/v1/registry/audit")
@documented(tags=("registry",))
def audit_api():
    """Every registry change (live, threshold, shadow, detach), newest first, with who and
    why; ``?module=`` keeps one module's."""
    module = request.args.get("module") or None
    if module is not None:
        _check_module(module)
    return jsonify(events=[_iso(r) for r in db.registry_log(module, limit=AUDIT_ROWS)])


@bp.get("/api/v1/registry/shadow/<id:shadow_id>/results.csv")
def shadow_results(shadow_id: int):
    """Every row the candidate scored in one shadow run, as its results CSV."""
    from webapp.downloads import csv_download

    found = db.shadow_result(shadow_id)
    if found is None or found["csv_gz"] is None:
        abort(404, description=f"shadow score {shadow_id} has no stored results")
    return csv_download(gzip.decompress(found["csv_gz"]),
                        f"{found['module']}_run{found['run_id']}_shadow_{found['version']}.csv")


# -- the pages -------------------------------------------------------------------------------------
@bp.get("/registry")
def page():
    """Every module's versions: live, shadow, thresholds; switch, attach, promote, roll back."""
    listings = [listing(spec.name) for spec in ready_modules()]
    return render_template("registry.html", listings=listings,
                           max_candidates=current_app.config["SHADOW_MAX_CANDIDATES"])


@bp.get("/registry/audit")
def audit_page():
    """The audit log: every registry change, newest first (``?module=`` for one module)."""
    module = request.args.get("module") or None
    if module is not None:
        _check_module(module)
    return render_template("registry_audit.html", module=module,
                           modules=[s.name for s in ready_modules()],
                           events=db.registry_log(module, limit=AUDIT_ROWS))


def _page_action(module: str, action, model: type[BaseModel], fields: dict, done) -> object:
    """Run ``action(module, body)`` with a body made of the form's ``fields``; flash what
    happened (or what was wrong) and go back to the module's section of the page."""
    _check_module(module)
    try:
        body = validate_envelope(model, fields)
        result = action(module, body)
    except (InputError, Conflict) as exc:
        flash(f"{module}: {exc.description}", "error")
    else:
        flash(done(body, result), "notice")
    return redirect(url_for("versions.page") + f"#registry-{module}")


def _reason() -> str:
    return request.form.get("reason", "").strip()


@bp.post("/registry/<module>/live")
def set_live_page(module: str):
    """The page's switch or rollback: the API's rule, then back to the module's section."""
    return _page_action(
        module, switch, LiveBody, {"version": request.form.get("version", ""),
                                   "reason": _reason()},
        lambda body, _: f"{module}: version {body.version} is live; every worker serves it "
                        f"within {current_app.config['LIVE_CHECK_SECONDS']:g} s.")


@bp.post("/registry/<module>/threshold")
def set_threshold_page(module: str):
    """The page's threshold change."""
    value = request.form.get("value", "").strip()
    fields = {"version": request.form.get("version") or None,
              "model": request.form.get("model") or None, "reason": _reason(),
              "value": value or None}
    return _page_action(
        module, change_threshold, ThresholdBody, fields,
        lambda body, created: f"{module}: version {created} has {body.model or 'the default'} "
                              f"model's threshold at {body.value:g}.")


@bp.post("/registry/<module>/shadow")
def attach_shadow_page(module: str):
    """The page's attach button."""
    return _page_action(
        module, attach, ShadowBody, {"version": request.form.get("version", ""),
                                     "reason": _reason()},
        lambda body, _: f"{module}: version {body.version} is the shadow candidate; live "
                        f"requests are scored by it too from now on.")


@bp.post("/registry/<module>/shadow/detach")
def detach_shadow_page(module: str):
    """The page's detach button."""
    return _page_action(module, detach, ReasonBody, {"reason": _reason()},
                        lambda _, old: f"{module}: shadow candidate {old} detached.")


@bp.post("/registry/<module>/promote")
def promote_page(module: str):
    """The page's one-click promotion."""
    return _page_action(module, promote, ReasonBody, {"reason": _reason()},
                        lambda _, new: f"{module}: version {new} is live (promoted from "
                                       f"shadow).")


@bp.post("/registry/<module>/upload")
def upload_page(module: str):
    """An admin adds a zipped release (a training run's output folder) as a version."""
    from webapp.uploads import uploaded_file

    _check_module(module)
    try:
        storage = uploaded_file(request, "release", "a .zip of a release folder")
        version = add_release_archive(module, storage.filename or "release.zip",
                                      storage.stream.read())
    except InputError as exc:
        flash(f"{module}: {exc.description}", "error")
    else:
        flash(f"{module}: version {version.id} added ({version.source}); attach it as the "
              f"shadow candidate or make it live below.", "notice")
    return redirect(url_for("versions.page") + f"#registry-{module}")


# -- the command line ------------------------------------------------------------------------------
@registry_cli.command("add")
@click.argument("module")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--source", default=None, help="where it came from (default: the folder)")
def add_command(module: str, folder: Path, source: str | None) -> None:
    """Add the release in FOLDER (e.g. what 'python -m pipelines.train MODULE --artifacts
    OUT' wrote in OUT/MODULE) to the model store as a version of MODULE; prints its id."""
    from webapp.predictors import load_from

    if module not in {spec.name for spec in ready_modules()}:
        raise click.ClickException(f"no module '{module}'")
    try:
        check_release(folder, module)
        load_from(module, folder)
        version = add_to_store(folder, Path(current_app.config["MODEL_STORE"]), module,
                               {"source": source or f"added from {folder.name} (command line)"})
    except (BundleError, KeyError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(version.id)


def init_app(app) -> None:
    """The ``flask registry`` commands."""
    app.cli.add_command(registry_cli)
