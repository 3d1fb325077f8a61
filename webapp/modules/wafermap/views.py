"""The wafer-map page: bring maps, review them as thumbnails, classify, explain one, download."""
from __future__ import annotations

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request, url_for

from pipelines.core.problems import SchemaError
from pipelines.wafermap.examples import PATTERNS, synthetic_map
from pipelines.wafermap.ingest import EXTENSIONS
from pipelines.wafermap.schema import DIE_CODES, MAX_SIDE
from webapp.errors import InputError
from webapp.limits import heavy_slot
from webapp.modules import get_module
from webapp.modules.wafermap.parsing import json_grid, wafermap_request
from webapp.modules.wafermap.service import pack_grid
from webapp.pagekit import page_config, render_module_page
from webapp.params import read_json
from webapp.predictors import get_predictor

bp = Blueprint("wafermap", __name__, url_prefix="/wafermap")

SAMPLE_SIZES = (26, 34, 40, 52)


def grid_csv(maps) -> str:
    """Maps as a CSV grid batch: one row of die codes per line, a blank line between maps."""
    return "\n".join("\n".join(",".join(map(str, row)) for row in np.asarray(grid).tolist())
                     + "\n" for grid in maps)


@bp.get("/")
def page():
    """The wafer-map page."""
    spec = get_module("wafermap")
    predictor = get_predictor("wafermap")
    model = predictor.describe()[0]
    config = page_config(
        spec, predictor, classes=predictor.classes, review_level=predictor.review_level,
        review=model.get("review", {}), die_codes={str(k): v for k, v in DIE_CODES.items()},
        max_maps=current_app.config["WAFERMAP_MAX_MAPS"], max_side=MAX_SIDE,
        map_extensions=[*EXTENSIONS, ".zip"], check_url=url_for("wafermap.check"),
        explain_url=url_for("wafermap.explain"), sample_url=url_for("wafermap.sample"),
        models_url=url_for("pages.models"))
    return render_module_page(spec, "wafermap.html", config, item_label="Maps")


@bp.post("/check")
def check():
    """Read uploaded files without predicting: each map (packed) and its name, and the files
    left out with their reason; a 4xx when no file can be read."""
    with heavy_slot():
        req = wafermap_request(request)
    return jsonify(n_maps=len(req.maps), read=req.kinds, problems=[], warnings=[],
                   rejected=req.rejected.to_list(),
                   maps=[{"name": n, "map": pack_grid(g)} for n, g in zip(req.names, req.maps)])


@bp.post("/explain")
def explain():
    """The occlusion saliency of one map (``{"map": grid}``): how much each die drove the
    predicted class, at the map's own size. Not a run: the page explains a map it scored."""
    body = read_json(request)
    if not isinstance(body, dict) or set(body) != {"map"}:
        raise InputError("send {\"map\": [[0, 1, 2, ...], ...]}: one map")
    grid = json_grid(body["map"], "map")
    if isinstance(grid, list):
        raise SchemaError(grid)
    record = get_predictor("wafermap").predict([grid], saliency=True)[0]
    return jsonify({"class": record["class"], "confidence": record["confidence"],
                    "saliency": np.round(record["saliency"], 4).tolist()})


@bp.get("/sample.csv")
def sample():
    """Generated maps (synthetic patterns, never data rows) as a CSV grid batch."""
    n = max(1, min(request.args.get("maps", 24, type=int), 1000))
    rng = np.random.default_rng(request.args.get("seed", 11, type=int))
    maps = [synthetic_map(PATTERNS[i % len(PATTERNS)], SAMPLE_SIZES[i % len(SAMPLE_SIZES)], rng)
            for i in range(n)]
    return Response(grid_csv(maps), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=fablens_wafermap_sample.csv"})


@bp.get("/template.csv")
def template():
    """One small map in the CSV grid layout: 0 off-wafer, 1 pass, 2 fail."""
    grid = synthetic_map("none", 12, np.random.default_rng(0))
    return Response(grid_csv([grid]), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=fablens_wafermap_template.csv"})
