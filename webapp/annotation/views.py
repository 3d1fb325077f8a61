"""The review queue's API and pages.

- ``GET /api/v1/active-learning/queue?module=wafermap&state=pending&limit=50&offset=0``: the
  items in the order to label them (pending: least sure first, one of each cluster of
  near-copies per round, :func:`pipelines.core.active.diverse_order`), the counts and the
  progress; ``state``: ``pending``, ``conflict``, ``labelled`` (annotated or settled), ``all``.
- ``GET /api/v1/active-learning/items/<id>``: one item, what the model said when it was scored,
  every label given to it and its state; ``?explain=1`` adds the live model's answer for it
  now (a map's top 3 and saliency, a photo's score and heatmap).
- ``GET /review/items/<id>/image.png``: the photo, or the map drawn one pixel per die in the
  FabLens palette (the wafer-map page reads that image back).
- ``POST /api/v1/active-learning/items/<id>/annotations`` ``{"label", "boxes", "mask",
  "settle"}``: label it (engineers and admins; ``settle`` decides a conflict).
- ``GET /api/v1/active-learning/export?module=...&format=coco|csv[&images=1]`` and
  ``POST /api/v1/active-learning/import?module=...`` (a COCO document as the body, or a file
  in the form field ``file``): :mod:`webapp.annotation.coco`.
- ``POST /api/v1/active-learning/retrain`` ``{"module": "wafermap", "options": {...}}``: a
  training job (``webapp.jobs``) on the shared data plus every labelled map; its model becomes
  a candidate version in the registry.
- ``/review`` (the queue, conflicts, export, import, retrain and the measured savings) and
  ``/review/<module>`` (one item at a time, by keyboard).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from flask import (Blueprint, Response, abort, current_app, jsonify, render_template, request,
                   url_for)
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from pipelines.core.active import clustered, diverse_order
from webapp import db
from webapp.annotation import store
from webapp.annotation.coco import check_label, export_document, export_frame, import_document
from webapp.annotation.kinds import KINDS, Kind, map_grid
from webapp.downloads import csv_response
from webapp.errors import InputError
from webapp.openapi import COMMON_ERRORS, documented
from webapp.params import json_depth_problem, read_json, validate_envelope
from webapp.registry import ready_modules

bp = Blueprint("annotation", __name__)

PER_ROUND = 20  # the head of the queue holds one item of each of this many clusters
# among this many times PER_ROUND least sure items (the simulation clusters 4 x its batch: a
# batch of hundreds; a queue's head of 20 stays nearer the top with 2)
CANDIDATES = 2
MAX_LIMIT = 200
QUEUE_STATES = {"pending": ("pending",), "conflict": ("conflict",),
                "labelled": store.LABELLED, "all": store.STATES}
SIMULATION_FILE = Path("benchmarks") / "active_learning_wm811k.json"
MAP_COLOURS = np.array([(255, 255, 255), (76, 175, 80), (229, 57, 53)], dtype=np.uint8)


class AnnotationBody(BaseModel):
    """``POST /api/v1/active-learning/items/<id>/annotations``."""

    model_config = ConfigDict(extra="forbid")
    label: StrictStr = Field(max_length=64, description="a class (maps) or good/defective")
    boxes: list[list[Any]] | None = Field(None, description="defective photos: boxes "
                                                             "[x, y, width, height] in pixels")
    mask: StrictStr | None = Field(None, max_length=4_000_000,
                                   description="defective photos: a brush mask, a base64 PNG "
                                               "of the photo's size (non-zero = defect)")
    settle: StrictBool = Field(False, description="decide a conflict between annotators")


class QueueQuery(BaseModel):
    """``GET /api/v1/active-learning/queue``'s options."""

    module: str | None = Field(None, description="wafermap (default) or inspection")
    state: Literal["pending", "conflict", "labelled", "all"] | None = Field(
        None, description="which items: pending (default, in the order to label them), "
                          "conflict, labelled (annotated or settled), all")
    limit: int | None = Field(None, ge=1, le=200, description="items in the answer (50)")
    offset: int | None = Field(None, ge=0, description="items skipped (0)")


class ExportQuery(BaseModel):
    """``GET /api/v1/active-learning/export``'s options."""

    module: str | None = Field(None, description="wafermap (default) or inspection")
    format: Literal["coco", "csv"] | None = Field(None, description="coco (default) or csv")
    images: bool | None = Field(None, description="1: COCO images carry the photos too")


class CocoDocument(BaseModel):
    """A COCO document (``pipelines.core.coco``: image-level and region annotations)."""

    model_config = ConfigDict(extra="allow")
    images: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    annotations: list[dict[str, Any]]


class ImportForm(BaseModel):
    """``POST /api/v1/active-learning/import`` as a file."""

    file: bytes = Field(description="a COCO JSON file (an export of this or another FabLens)")
    module: str | None = Field(None, description="wafermap (default) or inspection")


class RetrainBody(BaseModel):
    """``POST /api/v1/active-learning/retrain``."""

    model_config = ConfigDict(extra="forbid")
    module: StrictStr = "wafermap"
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="the training command's options, as for a job")


# -- helpers --------------------------------------------------------------------------------------
def _kind(module: str | None) -> Kind:
    names = [n for n in KINDS if n in {s.name for s in ready_modules()}]
    if not module:
        module = names[0] if names else ""
    if module not in names:
        raise InputError(f"module must be one of {', '.join(names)}, got '{str(module)[:40]}'")
    return KINDS[module]


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high:,}, got "
                         f"'{raw[:20]}'")
    return int(raw)


def _iso(when) -> str | None:
    return when.isoformat() if when else None


def _entry(row: dict) -> dict:
    regions = json.loads(row["regions"]) if row["regions"] else {}
    out = {"id": row["id"], "user": row["user"], "label": row["label"],
           "created": _iso(row["created"]), "settles": bool(row["settles"]),
           "source": row["source"], "recorded_by": row["recorded_by"],
           "boxes": regions.get("boxes", [])}
    if row["mask"]:
        import base64

        out["mask_png_base64"] = base64.b64encode(row["mask"]).decode()
    return out


def described(item: dict, kind: Kind, history: bool = False) -> dict:
    """An item as the API and the pages receive it."""
    from webapp.runs import run_url

    state = store.item_state(item["history"])
    out = {"id": item["id"], "module": kind.module, "name": item["name"],
           "run_id": item["run_id"], "run_url": run_url(item["run_id"]),
           "position": item["position"], "created": _iso(item["created"]),
           "predicted": item["predicted"], "score": item["score"],
           "threshold": item["threshold"], "uncertainty": round(item["uncertainty"], 6),
           "model_version": item["model_version"], "release": item["release"],
           "upload_label": item["upload_label"],
           "details": json.loads(item["details"]) if item.get("details") else {},
           "state": state["state"], "label": state["label"], "annotators": state["users"],
           "n_annotations": len(item["history"]),
           "image_url": url_for("annotation.item_image", item_id=item["id"]),
           "url": url_for("annotation.annotate_page", module=kind.module, item=item["id"])}
    if item.get("data") is not None:
        out |= kind.payload(item)
    if history:
        out["history"] = [_entry(r) for r in item["history"]]
    return out


def ranked(kind: Kind) -> dict:
    """The module's items by state, pending ones in the order to label them, and the counts."""
    rows = store.module_items(kind.module,
                              keep_days=int(current_app.config["REVIEW_KEEP_DAYS"]))
    by_state: dict[str, list[dict]] = {s: [] for s in store.STATES}
    for row in rows:
        by_state[store.item_state(row["history"])["state"]].append(row)
    pending = by_state["pending"]
    if pending:
        uncertainty = [r["uncertainty"] for r in pending]
        pool = [pending[i] for i in clustered(uncertainty, per_round=PER_ROUND,
                                              candidates=CANDIDATES)]
        missing = [r["id"] for r in pool if not r["features"]]
        if missing:  # computed once, for the items clustered, and kept
            stored = store.items_data(missing)
            numbers = kind.features(stored) if stored else []
            found = {r["id"]: f.astype(np.float32).tobytes() for r, f in zip(stored, numbers)}
            store.set_features(found)
            for row in pool:
                row["features"] = row["features"] or found.get(row["id"])
        width = max((len(r["features"]) for r in pool if r["features"]), default=0) // 4
        features = np.zeros((len(pending), max(width, 1)), np.float32)
        for i, row in enumerate(pending):
            if row["features"] and len(row["features"]) == width * 4:
                features[i] = np.frombuffer(row["features"], np.float32)
        order = diverse_order(uncertainty, features,
                              per_round=PER_ROUND, candidates=CANDIDATES)
        by_state["pending"] = [pending[i] for i in order]
    counts = {s: len(v) for s, v in by_state.items()}
    counts["total"] = len(rows)
    counts["reviewed"] = counts["total"] - counts["pending"]
    return {"by_state": by_state, "counts": counts}


def progress_text(counts: dict, kind: Kind) -> str:
    """"38 of 200 maps reviewed" (the one wording, sent to the pages)."""
    return f"{counts['reviewed']:,} of {counts['total']:,} {kind.nouns} reviewed"


# -- API ------------------------------------------------------------------------------------------
@bp.get("/api/v1/active-learning/queue")
@documented(query=QueueQuery, errors=COMMON_ERRORS, tags=("active learning",))
def queue_api():
    """The review queue of a module: items in the order to label them, counts, progress."""
    kind = _kind(request.args.get("module"))
    state = request.args.get("state") or "pending"
    if state not in QUEUE_STATES:
        raise InputError(f"state must be one of {', '.join(QUEUE_STATES)}, got "
                         f"'{state[:20]}'")
    limit = _int_arg("limit", 50, 1, MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, 10**9)
    queue = ranked(kind)
    chosen = [r for s in QUEUE_STATES[state] for r in queue["by_state"][s]]
    if state != "pending":
        chosen.sort(key=lambda r: -r["id"])
    page = chosen[offset:offset + limit]
    full = store.items_by_id([r["id"] for r in page], with_data=kind.module == "wafermap")
    return jsonify(module=kind.module, state=state, counts=queue["counts"],
                   progress=progress_text(queue["counts"], kind), n_items=len(chosen),
                   offset=offset, limit=limit,
                   next_offset=offset + limit if offset + limit < len(chosen) else None,
                   items=[described(full[r["id"]], kind) for r in page if r["id"] in full])


def _item(item_id: int) -> tuple[dict, Kind]:
    item = store.get_item(item_id)
    if item is None or item["module"] not in KINDS:
        abort(404, description=f"no review item {item_id} (unlabelled items are pruned after "
                               f"REVIEW_KEEP_DAYS)")
    return item, KINDS[item["module"]]


def explain(item: dict, kind: Kind) -> dict:
    """The live model's answer for the item now: a map's class, top 3 and saliency; a photo's
    score, threshold, verdict and heatmap."""
    from webapp.predictors import get_predictor

    predictor = get_predictor(kind.module)
    version = getattr(predictor, "release_version", None)
    if kind.module == "wafermap":
        record = predictor.predict([map_grid(item)], saliency=True)[0]
        return {"release": version, "model_version": predictor.model.version,
                "class": record["class"], "confidence": record["confidence"],
                "top3": record["top3"],
                "saliency": np.round(record["saliency"], 4).tolist()}
    import base64

    from pipelines.inspection.predict import heatmap_rgba, png_bytes
    from webapp.annotation.kinds import stored_photo

    model = predictor.get(None)
    pixels = stored_photo(item)
    record = predictor.predict([pixels], model=model.name, maps=True)[0]
    return {"release": version, "model_version": model.version,
            "anomaly_score": record["anomaly_score"], "threshold": record["threshold"],
            "is_anomaly": record["is_anomaly"],
            "heatmap_png_base64": base64.b64encode(png_bytes(heatmap_rgba(
                record["map"], record["threshold"]))).decode()}


@bp.get("/api/v1/active-learning/items/<id:item_id>")
@documented(errors=(*COMMON_ERRORS, 404), tags=("active learning",))
def item_api(item_id: int):
    """One review item: what the model said, every label given, its state; ``?explain=1``:
    the live model's explanation too."""
    item, kind = _item(item_id)
    out = described(item, kind, history=True)
    if request.args.get("explain") in ("1", "true"):
        out["live"] = explain(item, kind)
    return jsonify(out)


@bp.get("/review/items/<id:item_id>/image.png")
def item_image(item_id: int):
    """The item as an image: the photo, or the map one pixel per die (white off-wafer, green
    pass, red fail: the wafer-map page's palette)."""
    from pipelines.inspection.predict import png_bytes
    from webapp.annotation.kinds import png_of, stored_photo

    found = store.item_data(item_id)
    if found is None:
        abort(404, description=f"no review item {item_id}")
    if found["module"] == "wafermap":
        data = png_bytes(MAP_COLOURS[np.minimum(map_grid(found), 2)])
    else:  # made now: a run stores its photos packed, not as PNG (kinds.pack_photo)
        data = png_of(stored_photo(found))
    return Response(data, mimetype="image/png", headers={
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": f"inline; filename={found['module']}-{item_id}.png"})


@bp.post("/api/v1/active-learning/items/<id:item_id>/annotations")
@documented(body=AnnotationBody, errors=(*COMMON_ERRORS, 404, 409), tags=("active learning",))
def annotate_api(item_id: int):
    """Label an item (a new row: the history stays); ``settle`` decides a conflict."""
    body = validate_envelope(AnnotationBody, read_json(request))
    item, kind = _item(item_id)
    if body.settle and item["state"]["state"] not in ("conflict", "settled"):
        raise InputError(f"item {item_id} is {item['state']['state']}, not in conflict: there "
                         f"is nothing to settle; label it without 'settle'", code=409)
    label, regions, mask = check_label(kind, item, body.label, body.boxes, body.mask)
    via_api = request.path.startswith("/api/") and request.headers.get(
        "X-Requested-With") != "fetch"
    store.add_annotation(item_id, label, user=db.actor(), regions=regions, mask=mask,
                         settles=body.settle, source="api" if via_api else "page")
    item, kind = _item(item_id)
    queue = ranked(kind)
    response = jsonify(described(item, kind, history=True) | {
        "counts": queue["counts"], "progress": progress_text(queue["counts"], kind)})
    response.status_code = 201
    return response


@bp.get("/api/v1/active-learning/export")
@documented(query=ExportQuery, csv=True, errors=COMMON_ERRORS, tags=("active learning",))
def export_api():
    """The labels of a module: ``format=coco`` (default; ``images=1`` carries the photos
    too) or ``format=csv``."""
    kind = _kind(request.args.get("module"))
    fmt = request.args.get("format") or "coco"
    stamp = time.strftime("%Y%m%d")
    if fmt == "csv":
        return csv_response(export_frame(kind.module), f"fablens_{kind.module}_labels_"
                                                       f"{stamp}.csv", float_decimals=None)
    if fmt != "coco":
        raise InputError(f"format must be coco or csv, got '{fmt[:20]}'")
    images = request.args.get("images") in ("1", "true")
    doc = export_document(kind.module, images=images)
    return Response(json.dumps(doc, separators=(",", ":")), mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename=fablens_"
                                                    f"{kind.module}_coco_{stamp}.json"})


def _document() -> Any:
    """The COCO document of an import: the JSON body, or the file in the form field ``file``
    (up to the upload limit; values counted and nesting checked before it is parsed)."""
    if not (request.mimetype or "").startswith("multipart/"):
        return read_json(request)
    files = [f for f in request.files.getlist("file") if f.filename]
    if len(files) != 1:
        raise InputError("send one COCO JSON file in the form field 'file'")
    raw = files[0].read()
    if not raw.strip():
        raise InputError(f"{files[0].filename}: the file is empty")
    limit = int(current_app.config["MAX_JSON_ITEMS"])
    if raw.count(b",") + 1 > limit:
        raise InputError(f"{files[0].filename}: more than {limit:,} values", code=413)
    deep = json_depth_problem(raw)
    if deep:
        raise InputError(f"{files[0].filename}: {deep}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{files[0].filename}: not a JSON document "
                         f"({str(exc)[:120]})") from None


@bp.post("/api/v1/active-learning/import")
@documented(body=CocoDocument, form=ImportForm, errors=(*COMMON_ERRORS, 413),
            tags=("active learning",))
def import_api():
    """Record the labels of a COCO document (an export of this or another FabLens)."""
    kind = _kind(request.args.get("module") or request.form.get("module"))
    doc = _document()
    if isinstance(doc, dict) and isinstance(doc.get("info"), dict) \
            and doc["info"].get("module") not in (None, kind.module):
        raise InputError(f"this document holds {str(doc['info']['module'])[:32]} labels, not "
                         f"{kind.module}")
    done = import_document(kind.module, doc, actor=db.actor())
    return jsonify(module=kind.module, **done)


@bp.post("/api/v1/active-learning/retrain")
@documented(body=RetrainBody, errors=(*COMMON_ERRORS, 409), tags=("active learning",))
def retrain_api():
    """Train the module on its data plus every labelled item, as a job; the trained model
    becomes a candidate version in the registry (never live by itself)."""
    from webapp.jobs.views import JobBody, described as job_described, submit

    body = validate_envelope(RetrainBody, read_json(request))
    if body.module != "wafermap":
        raise InputError("retraining with labels is for wafer maps (the inspection models "
                         "learn from good photos only)")
    kind = _kind(body.module)
    doc = export_document(kind.module)
    if not doc["images"]:
        raise InputError(f"no labelled {kind.nouns} yet: label some in the review queue first",
                         code=409)
    data = json.dumps(doc, separators=(",", ":")).encode()
    folder = Path(current_app.config["JOBS_DIR"]) / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind.module}-{time.strftime('%Y%m%d-%H%M%S')}-" \
                    f"{hashlib.sha256(data).hexdigest()[:8]}.json"
    path.write_bytes(data)
    if "annotations" in body.options:
        raise InputError("options: 'annotations' is set by the review queue")
    job = submit(validate_envelope(JobBody, {"kind": "train", "module": kind.module,
                                             "options": {**body.options,
                                                         "annotations": str(path.resolve())}}))
    response = jsonify(job_described(job) | {"labelled": len(doc["images"]),
                                             "annotations_file": path.name})
    response.status_code = 202
    return response


# -- pages ----------------------------------------------------------------------------------------
def simulation() -> dict | None:
    """The recorded simulation (``python -m pipelines.active_learning simulate``), if any."""
    path = Path(current_app.config["HOME_DIR"]) / SIMULATION_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _plotly_url() -> str | None:
    return url_for("timeseries.plotly") if "timeseries.plotly" in current_app.view_functions \
        else None


def _config(kind: Kind) -> dict:
    from webapp.access import current_principal

    principal = current_principal()
    return {"module": kind.module, "noun": kind.noun, "nouns": kind.nouns,
            "labels": list(kind.labels), "regions": kind.regions,
            "uncertainty": kind.uncertainty,
            "can_annotate": bool(principal and principal.may("engineer")),
            "queue_url": url_for("annotation.queue_api"),
            "item_url": url_for("annotation.item_api", item_id=999999999).replace(
                "999999999", "{id}"),
            "page_url": url_for("annotation.page", module=kind.module),
            "modules": [{"name": k.module, "title": k.nouns.title(),
                         "url": url_for("annotation.annotate_page", module=k.module)}
                        for k in KINDS.values()]}


def candidates(module: str) -> list[dict]:
    """The live version and every version trained with labels, with their val figures (the
    registry holds them; here they stand side by side)."""
    from pipelines.core.artifacts import BundleError, read_manifest
    from pipelines.core.versions import module_versions

    versions = module_versions(module, Path(current_app.config["ARTIFACTS_DIR"]) / module,
                               Path(current_app.config["MODEL_STORE"]))
    live = db.live_version(module) or versions[0].id
    out = []
    for version in versions:
        try:
            release = read_manifest(version.path)
            bundle = read_manifest(version.path / version.default_model)
        except (BundleError, OSError, ValueError):
            continue
        labelled = (release.get("training_data") or {}).get("annotations")
        if labelled is None and version.id != live:
            continue
        val = (bundle.get("metrics") or {}).get("val") or {}
        out.append({"id": version.id, "source": version.source, "live": version.id == live,
                    "annotated": (labelled or {}).get("maps"),
                    "macro_f1": val.get("macro_f1"), "accuracy": val.get("accuracy")})
    return out


@bp.get("/review")
def page():
    """The review queue: progress, the next items, conflicts, export, import, retrain, and the
    labels active learning saved in the simulation."""
    kind = _kind(request.args.get("module"))
    from webapp.jobs.work import training_problem

    config = _config(kind) | {
        "export_url": url_for("annotation.export_api"),
        "import_url": url_for("annotation.import_api"),
        "retrain_url": url_for("annotation.retrain_api"),
        "simulation": simulation(), "plotly_url": _plotly_url(),
        "annotate_url": url_for("annotation.annotate_page", module=kind.module)}
    return render_template("review.html", kind=kind, config=config, kinds=KINDS,
                           training_problem=training_problem(),
                           candidates=candidates(kind.module) if kind.module == "wafermap" else [],
                           keep_days=current_app.config["REVIEW_KEEP_DAYS"],
                           keep_items=current_app.config["REVIEW_KEEP_ITEMS"],
                           simulation_command="python -m pipelines.active_learning simulate "
                                              "--data ../shared/data/wm811k/wafer_maps_orig.npz")


@bp.get("/review/<module>")
def annotate_page(module: str):
    """One item at a time, large: keys pick the label, Enter confirms, arrows move."""
    if module not in KINDS:
        abort(404, description=f"no review queue for '{module[:32]}'")
    kind = _kind(module)
    item = request.args.get("item")
    if item is not None and not item.isdigit():
        raise InputError(f"item must be an item's id, got '{item[:20]}'")
    config = _config(kind) | {"item": int(item) if item else None,
                              "state": request.args.get("state") or "pending"}
    if config["state"] not in QUEUE_STATES:
        raise InputError(f"state must be one of {', '.join(QUEUE_STATES)}")
    return render_template("annotate.html", kind=kind, config=config)
